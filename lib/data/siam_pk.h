/* siam_pk: P x K batch sampling for set losses (batch-hard triplet, supervised contrastive...):
 * every batch holds P distinct classes with K distinct images each, drawn from the labels of a
 * data set or of one worker's shard of it, reproducibly from a seed.
 *
 * Groups, not classes, leave the worker: each of a batch's P groups gets a fresh random uint32 id
 * drawn from the sampler's rng (distinct within the batch). Equal ids mean "same class" within
 * that batch only; across batches the ids are unrelated, so whoever sees them (the loss head on
 * the server) learns which images of a batch go together and nothing about the classes.
 *
 * Epoch: a class with m images (m >= K) makes floor(m / K) groups per epoch; an epoch is
 * floor(G / P) batches, G the sum of those over the eligible classes, so about as many images
 * as the eligible ones. Each batch takes the P classes with the most groups left in the epoch
 * (ties broken at random), which keeps the classes' remaining counts level. (A class can give
 * at most one group per batch: when the classes are so unequal that fewer than P have groups
 * left, the batch is completed with classes that have none left, whose images are then drawn
 * beyond their share, and the largest class's last groups wait for the next epoch.) Within a class
 * the images come from a shuffled pass over all of its images, reshuffled when the pass runs out; a
 * pass running out in the middle of a group finishes the group from the next pass without repeating
 * an image. Every image is therefore used once per pass of its class: once per epoch when K divides
 * every m, P divides G and no class has more than G / P groups (the greedy choice above then
 * empties every quota), otherwise the counts after E epochs differ by at most one pass (a few
 * images of a class used once more or less than E times).
 *
 * Classes with fewer than K images cannot give K distinct images: they are skipped (their
 * images are never drawn; siam_pk_skipped tells how many) rather than sampled with replacement,
 * which would make copies of one image count as positives of each other. */
#ifndef SIAM_PK_H
#define SIAM_PK_H

#include <stddef.h>
#include <stdint.h>

#include "siam_error.h"

#define SIAM_PK_BATCH_MAX 65536 /* P * K at most */

typedef struct siam_pk siam_pk;

/* A sampler over labels (n) - a data set's or a shard's: the indices it returns are positions in
 * this array (add the shard's begin for data-set indices). labels is copied. P >= 1, K >= 1,
 * P * K <= SIAM_PK_BATCH_MAX, n < 2^32. SIAM_ERR_ARG when fewer than P classes have K images;
 * SIAM_ERR_NOMEM. *out is NULL on failure. */
int siam_pk_create(siam_pk **out, const uint8_t *labels, size_t n, int p, int k, uint64_t seed,
                   siam_error *err);

/* The next batch: idx (P*K) positions in labels, group (P*K) group ids, laid out group after
 * group (entries [g*K, (g+1)*K) are group g: one class, K distinct images, one id). Batches run
 * through epochs without end; siam_pk_epoch says which epoch the next batch belongs to. */
void siam_pk_next(siam_pk *s, uint32_t *idx, uint32_t *group);

size_t siam_pk_batches_per_epoch(const siam_pk *s);
/* epochs completed so far, which is also the (0-based) epoch of the next batch */
uint64_t siam_pk_epoch(const siam_pk *s);
/* classes present in labels with fewer than K images, and their images (never drawn) */
void siam_pk_skipped(const siam_pk *s, int *classes, size_t *images);

void siam_pk_free(siam_pk *s);

#endif
