/* siam_knn: k-nearest-neighbour search and classification of query vectors against labelled
 * reference vectors (embeddings, or raw pixels for the baseline). Candidates come from squared
 * Euclidean distances computed blockwise as ||q||^2 + ||r||^2 - 2 q.r by cblas_sgemm; they are
 * then ranked by the exact distance computed directly in double, so a query's neighbours do not
 * depend on how queries and references are blocked (sgemm's rounding does). Memory stays
 * bounded: one block of SIAM_KNN_QUERY_BLOCK x SIAM_KNN_REF_BLOCK distances at a time, plus the
 * k + SIAM_KNN_RERANK_EXTRA best candidates of every query of the block. */
#ifndef SIAM_KNN_H
#define SIAM_KNN_H

#include <stddef.h>
#include <stdint.h>

#include "siam_error.h"

#define SIAM_KNN_K_DEFAULT   5
#define SIAM_KNN_K_MAX       64
#define SIAM_KNN_QUERY_BLOCK 512
#define SIAM_KNN_REF_BLOCK   2048
/* Candidates kept beyond k for the exact re-ranking (see siam_knn_neighbours). */
#define SIAM_KNN_RERANK_EXTRA 16
/* The distance-weighted vote's weight of a neighbour at Euclidean distance d: 1 / (d + this). */
#define SIAM_KNN_VOTE_EPS 1e-6

/* Squared norms of the n rows of x (dim floats each), accumulated in double, into out (n). */
void siam_knn_row_norms(const float *x, size_t n, int dim, float *out);

/* The (n_q, n_r) squared distances ||q||^2 + ||r||^2 - 2 q.r of query rows against reference
 * rows into out (row stride ldo >= n_r), one cblas_sgemm plus the norms from siam_knn_row_norms;
 * negative results of rounding are clamped to 0. The kernel siam_knn_neighbours and
 * siam_retrieval share, so both rank neighbours by the same float distances. n_q, n_r, dim,
 * ldo must fit an int (callers pass blocks). */
void siam_knn_distances(const float *query, const float *qnorm, size_t n_q, const float *ref,
                        const float *rnorm, size_t n_r, int dim, float *out, size_t ldo);

/* The k nearest references of every query: query (n_q, dim), ref (n_r, dim), both row-major.
 * Fills idx (n_q, k) with reference indices and d2 (n_q, k, may be NULL) with their squared
 * distances, nearest first. The ranking is by the exact squared distance sum_k (q_k - r_k)^2
 * accumulated in double in component order (d2 holds it rounded to float); equal distances put
 * the lower reference index first. So the answer is the brute-force one, the same for a query
 * searched alone or in any block of queries.
 *
 * How: sgemm distances (siam_knn_distances) pick k + SIAM_KNN_RERANK_EXTRA candidates per query.
 * Their rounding error is at most e = 2 (dim + 4) 2^-24 (||q|| + max ||r||)^2 (twice the textbook
 * bound of a dot product in float, plus the norms and the two additions), so every true k nearest
 * has an sgemm distance <= A_k + 2e, where A_k is the k-th smallest sgemm distance. The candidates
 * within A_k + 2e are re-ranked by the exact distance; when more references than the list holds
 * may lie within that window (many near-ties), that query is answered by an exact scan of all
 * references instead (correct, and slower: n_r x dim operations in double); so is a query whose
 * sgemm distances overflow float (components near FLT_MAX).
 * Inputs must be finite. SIAM_ERR_ARG unless 1 <= k <= min(n_r, SIAM_KNN_K_MAX) and dim >= 1;
 * SIAM_ERR_NOMEM. */
int siam_knn_neighbours(const float *query, size_t n_q, const float *ref, size_t n_r, int dim,
                        int k, uint32_t *idx, float *d2, siam_error *err);

/* The same with the references' squared norms given (rnorm, n_r floats, from
 * siam_knn_row_norms): a caller that searches one reference set many times computes them once. */
int siam_knn_neighbours_normed(const float *query, size_t n_q, const float *ref, const float *rnorm,
                               size_t n_r, int dim, int k, uint32_t *idx, float *d2,
                               siam_error *err);

/* Distance-weighted vote over one query's k neighbours: labels[i] is the label of the i-th
 * nearest (any ids), dist[i] its Euclidean distance. Each neighbour weighs
 * 1 / (dist + SIAM_KNN_VOTE_EPS), summed in double per label; the label with the largest sum
 * wins, ties going to the label of the nearest neighbour among the tied ones. *share (may be
 * NULL) gets the winner's share of the total weight, in (0, 1]. k >= 1. */
uint32_t siam_knn_vote_weighted(const uint32_t *labels, const float *dist, int k, double *share);

/* Majority vote over one query's k neighbours (labels of the references in idx, nearest first):
 * the class with the most votes; among classes with equally many, the class of the nearest
 * neighbour that belongs to one of them. The vote of siam_knn_classify and siam_knn_accuracy
 * (siam-client evaluate's kNN accuracy, the offline figure of record); the server's Search
 * predicts by siam_knn_vote_weighted instead. */
uint8_t siam_knn_vote(const uint32_t *idx, int k, const uint8_t *ref_labels);

/* Predicted class of every query (pred, n_q) by siam_knn_vote over its k nearest references. */
int siam_knn_classify(const float *query, size_t n_q, const float *ref, const uint8_t *ref_labels,
                      size_t n_r, int dim, int k, uint8_t *pred, siam_error *err);

/* Fraction of queries whose predicted class equals q_labels (0 when n_q == 0). */
int siam_knn_accuracy(const float *query, const uint8_t *q_labels, size_t n_q, const float *ref,
                      const uint8_t *ref_labels, size_t n_r, int dim, int k, double *accuracy,
                      siam_error *err);

#endif
