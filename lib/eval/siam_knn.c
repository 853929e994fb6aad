/* siam_knn: blockwise k-nearest-neighbour search (sgemm distances) and majority vote. */
#include "siam_knn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "siam_tensor.h"

void siam_knn_row_norms(const float *x, size_t n, int dim, float *out) {
    for (size_t i = 0; i < n; i++) {
        const float *r = x + i * (size_t)dim;
        double s = 0.0;
        for (int k = 0; k < dim; k++)
            s += (double)r[k] * r[k];
        out[i] = (float)s;
    }
}

void siam_knn_distances(const float *query, const float *qnorm, size_t n_q, const float *ref,
                        const float *rnorm, size_t n_r, int dim, float *out, size_t ldo) {
    /* out = -2 Q R^T, then the norms added in the order the neighbour search always used */
    siam_sgemm(0, 1, (int)n_q, (int)n_r, dim, -2.0f, query, dim, ref, dim, 0.0f, out, (int)ldo);
    for (size_t i = 0; i < n_q; i++) {
        float *row = out + i * ldo;
        float qn = qnorm[i];
        for (size_t j = 0; j < n_r; j++) {
            float d = row[j] + qn + rnorm[j];
            row[j] = d < 0.0f ? 0.0f : d;
        }
    }
}

/* Inserts (d, j) into the sorted list (bd, bi) of k entries if it is nearer than the last one;
 * references arrive in increasing index order, so an equal distance stays behind. */
static inline void topk_insert(float *bd, uint32_t *bi, int k, float d, uint32_t j) {
    if (!(d < bd[k - 1]))
        return;
    int p = k - 1;
    while (p > 0 && bd[p - 1] > d) {
        bd[p] = bd[p - 1];
        bi[p] = bi[p - 1];
        p--;
    }
    bd[p] = d;
    bi[p] = j;
}

int siam_knn_neighbours(const float *query, size_t n_q, const float *ref, size_t n_r, int dim,
                        int k, uint32_t *idx, float *d2, siam_error *err) {
    if (dim < 1)
        return siam_error_set(err, SIAM_ERR_ARG, "knn: dim is %d, expected >= 1", dim);
    if (k < 1 || k > SIAM_KNN_K_MAX || (size_t)k > n_r)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "knn: k is %d, expected 1..%d and at most the %zu references", k,
                              SIAM_KNN_K_MAX, n_r);
    if (n_r > UINT32_MAX)
        return siam_error_set(err, SIAM_ERR_ARG, "knn: %zu references, at most %u", n_r,
                              (unsigned)UINT32_MAX);
    if (n_q == 0)
        return SIAM_OK;
    size_t qb_max = n_q < SIAM_KNN_QUERY_BLOCK ? n_q : SIAM_KNN_QUERY_BLOCK;
    size_t rb_max = n_r < SIAM_KNN_REF_BLOCK ? n_r : SIAM_KNN_REF_BLOCK;
    float *rnorm = malloc(n_r * sizeof *rnorm);
    float *qnorm = malloc(qb_max * sizeof *qnorm);
    float *block = siam_alloc_floats(qb_max * rb_max);
    float *bd = malloc(qb_max * (size_t)k * sizeof *bd);
    uint32_t *bi = malloc(qb_max * (size_t)k * sizeof *bi);
    int rc = SIAM_OK;
    if (!rnorm || !qnorm || !block || !bd || !bi) {
        rc = siam_error_set(err, SIAM_ERR_NOMEM,
                            "knn: out of memory for a %zu x %zu distance block", qb_max, rb_max);
        goto done;
    }
    siam_knn_row_norms(ref, n_r, dim, rnorm);
    for (size_t q0 = 0; q0 < n_q; q0 += qb_max) {
        size_t qb = n_q - q0 < qb_max ? n_q - q0 : qb_max;
        const float *qx = query + q0 * (size_t)dim;
        siam_knn_row_norms(qx, qb, dim, qnorm);
        for (size_t i = 0; i < qb * (size_t)k; i++) {
            bd[i] = INFINITY;
            bi[i] = UINT32_MAX;
        }
        for (size_t r0 = 0; r0 < n_r; r0 += rb_max) {
            size_t rb = n_r - r0 < rb_max ? n_r - r0 : rb_max;
            siam_knn_distances(qx, qnorm, qb, ref + r0 * (size_t)dim, rnorm + r0, rb, dim, block,
                               rb);
            for (size_t i = 0; i < qb; i++) {
                const float *row = block + i * rb;
                float *bdi = bd + i * (size_t)k;
                uint32_t *bii = bi + i * (size_t)k;
                for (size_t j = 0; j < rb; j++) {
                    float d = row[j];
                    if (d < bdi[k - 1])
                        topk_insert(bdi, bii, k, d, (uint32_t)(r0 + j));
                }
            }
        }
        memcpy(idx + q0 * (size_t)k, bi, qb * (size_t)k * sizeof *bi);
        if (d2)
            memcpy(d2 + q0 * (size_t)k, bd, qb * (size_t)k * sizeof *bd);
    }
done:
    free(rnorm);
    free(qnorm);
    siam_free(block);
    free(bd);
    free(bi);
    return rc;
}

uint8_t siam_knn_vote(const uint32_t *idx, int k, const uint8_t *ref_labels) {
    int count[256] = {0};
    int best = 0;
    for (int i = 0; i < k; i++) {
        int c = ++count[ref_labels[idx[i]]];
        if (c > best)
            best = c;
    }
    /* the nearest neighbour whose class has the most votes */
    for (int i = 0; i < k; i++)
        if (count[ref_labels[idx[i]]] == best)
            return ref_labels[idx[i]];
    return ref_labels[idx[0]]; /* not reached */
}

int siam_knn_classify(const float *query, size_t n_q, const float *ref, const uint8_t *ref_labels,
                      size_t n_r, int dim, int k, uint8_t *pred, siam_error *err) {
    if (n_q == 0)
        return SIAM_OK;
    /* neighbours a block of queries at a time keeps the index buffer small */
    size_t chunk = n_q < SIAM_KNN_QUERY_BLOCK * 8 ? n_q : SIAM_KNN_QUERY_BLOCK * 8;
    uint32_t *idx = malloc(chunk * (size_t)(k > 0 ? k : 1) * sizeof *idx);
    if (!idx)
        return siam_error_set(err, SIAM_ERR_NOMEM, "knn: out of memory");
    int rc = SIAM_OK;
    for (size_t q0 = 0; q0 < n_q && rc == SIAM_OK; q0 += chunk) {
        size_t qb = n_q - q0 < chunk ? n_q - q0 : chunk;
        rc = siam_knn_neighbours(query + q0 * (size_t)(dim > 0 ? dim : 0), qb, ref, n_r, dim, k,
                                 idx, NULL, err);
        for (size_t i = 0; rc == SIAM_OK && i < qb; i++)
            pred[q0 + i] = siam_knn_vote(idx + i * (size_t)k, k, ref_labels);
    }
    free(idx);
    return rc;
}

int siam_knn_accuracy(const float *query, const uint8_t *q_labels, size_t n_q, const float *ref,
                      const uint8_t *ref_labels, size_t n_r, int dim, int k, double *accuracy,
                      siam_error *err) {
    *accuracy = 0.0;
    if (n_q == 0)
        return siam_knn_neighbours(query, 0, ref, n_r, dim, k, NULL, NULL, err);
    uint8_t *pred = malloc(n_q);
    if (!pred)
        return siam_error_set(err, SIAM_ERR_NOMEM, "knn: out of memory");
    int rc = siam_knn_classify(query, n_q, ref, ref_labels, n_r, dim, k, pred, err);
    if (rc == SIAM_OK) {
        size_t right = 0;
        for (size_t i = 0; i < n_q; i++)
            right += pred[i] == q_labels[i];
        *accuracy = (double)right / (double)n_q;
    }
    free(pred);
    return rc;
}
