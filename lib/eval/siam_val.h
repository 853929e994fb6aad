/* siam_val: FaceNet's VAL at a target FAR with enough pairs to resolve it. Balanced pairs are
 * sampled from the images of two sets (training and test): the threshold is chosen on the
 * training set's pairs (the largest t with FAR_train(t) <= target, siam_metrics_val_at_far) and
 * VAL and FAR are reported at t on the test set's pairs:
 *
 *   VAL = TA / P_same    TA = same-class pairs with D <= t,      P_same = same-class pairs
 *   FAR = FA / P_diff    FA = different-class pairs with D <= t, P_diff = different-class pairs
 *
 * Sampling: n_pos pairs drawn uniformly without replacement from all distinct unordered pairs
 * {i, j} (i != j) of two images of the same class, and n_neg from all pairs of two images of
 * different classes; seeded, so the same labels, counts and seed give the same pairs on every
 * machine. An image is never paired with itself; a class with one image gives no positive
 * pair. With 100,000 negative pairs one false accept moves FAR by 1e-5, a hundredth of 1e-3. */
#ifndef SIAM_VAL_H
#define SIAM_VAL_H

#include <stddef.h>
#include <stdint.h>

#include "siam_error.h"

/* the default number of pairs of each kind on each side */
#define SIAM_VAL_PAIRS_DEFAULT 100000

typedef struct {
    uint32_t *left, *right; /* (n) image indices, left < right */
    uint8_t *labels;        /* (n) 1 same class, 0 different: the n_pos positives come first */
    size_t n, n_pos, n_neg; /* n = n_pos + n_neg */
} siam_val_pairs;

/* The numbers of distinct unordered pairs of two different images of n_images with labels
 * (n_images): of the same class (*pos) and of different classes (*neg). */
void siam_val_pairs_available(const uint8_t *labels, size_t n_images, uint64_t *pos, uint64_t *neg);

/* Samples n_pos same-class and n_neg different-class pairs (as above) into *out (caller frees
 * with siam_val_pairs_free; zeroed on failure). Within each kind the pairs are in a fixed order
 * (by class, then by image index), not in the order drawn. SIAM_ERR_ARG when n_images >= 2^32 or
 * when either count exceeds the distinct pairs available (the message names both numbers:
 * e.g. every class has one image, so there is no positive pair); SIAM_ERR_NOMEM. */
int siam_val_pairs_sample(siam_val_pairs *out, const uint8_t *labels, size_t n_images, size_t n_pos,
                          size_t n_neg, uint64_t seed, siam_error *err);

/* Safe on a zeroed or already freed struct. */
void siam_val_pairs_free(siam_val_pairs *p);

/* dist (p->n) = Euclidean distance of the embeddings emb (n_images, dim, row-major) of each pair,
 * summed in double and rounded to float once. SIAM_ERR_ARG for dim < 1, an index outside
 * n_images or a distance that is not finite (naming the pair and its images). */
int siam_val_distances(const float *emb, size_t n_images, int dim, const siam_val_pairs *p,
                       float *dist, siam_error *err);

/* One side of the evaluation: the embeddings of a set, their classes, and how many pairs of each
 * kind to sample from them with which seed. */
typedef struct {
    const float *emb;      /* (n_images, dim) */
    const uint8_t *labels; /* (n_images) */
    size_t n_images;
    size_t n_pos, n_neg; /* pairs to sample, each >= 1 */
    uint64_t seed;
} siam_val_set;

typedef struct {
    double far_target;
    float threshold;             /* from the training pairs: largest t with FAR_train <= target */
    double train_val, train_far; /* at threshold, on the training pairs */
    size_t train_pos, train_neg; /* training pairs used */
    double val, far;             /* at threshold, on the test pairs */
    size_t test_pos, test_neg;   /* test pairs used */
    size_t true_accepts, false_accepts; /* test pairs with D <= threshold, same / different */
    /* FaceNet's own convention, for comparison with its table: the threshold chosen on the test
     * pairs themselves (largest t with FAR_test <= target), and VAL and FAR there */
    float oracle_threshold;
    double oracle_val, oracle_far;
} siam_val_report;

/* VAL at FAR far_target (in [0, 1]) as above: pairs sampled from train and from test,
 * distances, the threshold on train's, VAL and FAR on test's. *out is zeroed on failure.
 * SIAM_ERR_ARG: a count of 0 or above the pairs available, dim < 1, a non-finite distance, a bad
 * target; SIAM_ERR_NOMEM. */
int siam_val_at_far(const siam_val_set *train, const siam_val_set *test, int dim, double far_target,
                    siam_val_report *out, siam_error *err);

#endif
