/* siam_knn: k-nearest-neighbour classification of query vectors against labelled reference
 * vectors (embeddings, or raw pixels for the baseline), with squared Euclidean distances
 * computed blockwise as ||q||^2 + ||r||^2 - 2 q.r by cblas_sgemm. Memory stays bounded: one
 * block of SIAM_KNN_QUERY_BLOCK x SIAM_KNN_REF_BLOCK distances at a time, plus the k best
 * neighbours of every query of the block. */
#ifndef SIAM_KNN_H
#define SIAM_KNN_H

#include <stddef.h>
#include <stdint.h>

#include "siam_error.h"

#define SIAM_KNN_K_DEFAULT   5
#define SIAM_KNN_K_MAX       64
#define SIAM_KNN_QUERY_BLOCK 512
#define SIAM_KNN_REF_BLOCK   2048

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
 * distances (clamped at 0), nearest first; equal distances keep the lower reference index first.
 * SIAM_ERR_ARG unless 1 <= k <= min(n_r, SIAM_KNN_K_MAX) and dim >= 1; SIAM_ERR_NOMEM. */
int siam_knn_neighbours(const float *query, size_t n_q, const float *ref, size_t n_r, int dim,
                        int k, uint32_t *idx, float *d2, siam_error *err);

/* Majority vote over one query's k neighbours (labels of the references in idx, nearest first):
 * the class with the most votes; among classes with equally many, the class of the nearest
 * neighbour that belongs to one of them. */
uint8_t siam_knn_vote(const uint32_t *idx, int k, const uint8_t *ref_labels);

/* Predicted class of every query (pred, n_q) by siam_knn_vote over its k nearest references. */
int siam_knn_classify(const float *query, size_t n_q, const float *ref, const uint8_t *ref_labels,
                      size_t n_r, int dim, int k, uint8_t *pred, siam_error *err);

/* Fraction of queries whose predicted class equals q_labels (0 when n_q == 0). */
int siam_knn_accuracy(const float *query, const uint8_t *q_labels, size_t n_q, const float *ref,
                      const uint8_t *ref_labels, size_t n_r, int dim, int k, double *accuracy,
                      siam_error *err);

#endif
