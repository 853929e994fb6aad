/* siam_pairs: positive/negative image pairs as the reference notebook builds them, seeded. */
#ifndef SIAM_PAIRS_H
#define SIAM_PAIRS_H

#include <stddef.h>
#include <stdint.h>

#include "siam_error.h"

typedef struct {
    size_t n;        /* number of pairs */
    uint32_t *left;  /* (n) image index of the left image, owned */
    uint32_t *right; /* (n) image index of the right image, owned */
    uint8_t *labels; /* (n) 1 same class, 0 different, owned */
} siam_pairs;

/* The reference construction: idx[d] = indices of class d in dataset order; n = min class size
 * - 1; for d in 0..n_classes-1, for i in 0..n-1: positive (idx[d][i], idx[d][i+1]) then negative
 * (idx[d][i], idx[dn][i]) with dn = (d + r) mod n_classes, r uniform in 1..n_classes-1 drawn
 * from a siam_rng seeded with seed. Gives 2*n_classes*n pairs in that order (interleaved
 * positive, negative). Labels must be < n_classes, 2 <= n_classes <= 256, n_images < 2^32.
 * SIAM_ERR_ARG when a class has fewer than 2 images. *p is overwritten (free an earlier result
 * first) and left zeroed on failure. */
int siam_pairs_make(siam_pairs *p, const uint8_t *labels, size_t n_images, int n_classes,
                    uint64_t seed, siam_error *err);

/* Reorders the pairs with a seeded Fisher-Yates shuffle: the permutation siam_rng_shuffle_u32
 * applies to 0..n-1 with the same seed, applied to left, right and labels alike. */
void siam_pairs_shuffle(siam_pairs *p, uint64_t seed);

/* out = a copy of pairs [begin, end) of src (see siam_shard_range). */
int siam_pairs_slice(siam_pairs *out, const siam_pairs *src, size_t begin, size_t end,
                     siam_error *err);

void siam_pairs_free(siam_pairs *p);

#endif
