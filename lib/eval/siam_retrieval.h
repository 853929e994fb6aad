/* siam_retrieval: how well a set of vectors (embeddings, or raw pixels for the baseline) works
 * as a search index of itself, leave-one-out: every item queries all the OTHER items.
 *
 *   Recall@1  fraction of queries whose nearest other item has the query's class.
 *   MAP@R     (Musgrave et al., "A Metric Learning Reality Check", 2020) mean over queries of
 *             AP@R = (1/R) sum_{i=1..R} P(i) rel(i), where R = the number of other items of the
 *             query's class, rel(i) = 1 when the i-th nearest other item has the query's class
 *             and P(i) = (number of such items among the i nearest) / i. It rewards putting
 *             ALL of a class first, not only the nearest one.
 *
 * Ranking: squared Euclidean distances from siam_knn_distances (the same float kernel as the
 * kNN classifier), ascending; equal distances rank the lower item index first, so results are
 * deterministic. That rule is arbitrary for real ties (duplicate images are the usual source);
 * a pessimistic or averaged rule would differ only on such ties. Distances of near-equal value
 * may rank differently from exact arithmetic because of float rounding in ||a||^2+||b||^2-2ab.
 * NaN distances rank last.
 *
 * Queries whose class has no other item (R = 0) have no AP@R: they are left out of MAP@R (and
 * counted in n_map_excluded) but stay in Recall@1, where they are necessarily misses.
 *
 * Cost: n^2 dim multiply-adds (sgemm) plus a linear-time selection and an R log R sort per
 * query; memory: a block of query rows of distances (at most SIAM_RETRIEVAL_BLOCK_FLOATS floats)
 * and n keys, never n^2. */
#ifndef SIAM_RETRIEVAL_H
#define SIAM_RETRIEVAL_H

#include <stddef.h>
#include <stdint.h>

#include "siam_error.h"

/* at most this many distances (floats) held at once: 256 query rows of a 10,000-item set */
#define SIAM_RETRIEVAL_BLOCK_FLOATS ((size_t)4 << 20)

typedef struct {
    double recall_at_1;    /* over all n queries */
    double map_at_r;       /* over the n - n_map_excluded queries with R >= 1; 0 if none */
    size_t n;              /* queries (= items) */
    size_t n_map_excluded; /* queries with R = 0 (the only item of their class) */
} siam_retrieval;

/* Recall@1 and MAP@R of the n items x (n, dim, row-major) with classes labels (n), leave-one-out.
 * SIAM_ERR_ARG unless n >= 2 (one item has nothing to retrieve), n < 2^32 and dim >= 1;
 * SIAM_ERR_NOMEM. *out is zeroed on failure. */
int siam_retrieval_metrics(const float *x, const uint8_t *labels, size_t n, int dim,
                           siam_retrieval *out, siam_error *err);

#endif
