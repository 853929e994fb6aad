/* siam_knn: blockwise k-nearest-neighbour search (sgemm candidates, exact re-ranking), majority
 * and distance-weighted votes. */
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

/* The exact squared distance, in double, components in order: the ranking of record. */
static double exact_d2(const float *q, const float *r, int dim) {
    double s = 0.0;
    for (int k = 0; k < dim; k++) {
        double t = (double)q[k] - (double)r[k];
        s += t * t;
    }
    return s;
}

typedef struct {
    double d;
    uint32_t i;
} cand;

/* Inserts (d, i) into the list c of at most k entries sorted by (d, i), n of them filled. */
static void cand_insert(cand *c, int *n, int k, double d, uint32_t i) {
    if (*n == k && !(d < c[k - 1].d || (d == c[k - 1].d && i < c[k - 1].i)))
        return;
    int p = *n < k ? (*n)++ : k - 1;
    while (p > 0 && (c[p - 1].d > d || (c[p - 1].d == d && c[p - 1].i > i))) {
        c[p] = c[p - 1];
        p--;
    }
    c[p].d = d;
    c[p].i = i;
}

/* One query's answer from its kk sgemm candidates (bd, bi; sorted, kk <= n_r): the candidates
 * within the error window re-ranked exactly, or an exact scan when the window may hold more
 * references than the list (see siam_knn.h). c holds kk + 1 entries of scratch. */
static void rerank(const float *q, double qn, const float *ref, size_t n_r, double rmax, int dim,
                   int k, int kk, const float *bd, const uint32_t *bi, cand *c, uint32_t *idx,
                   float *d2) {
    double e = 2.0 * (dim + 4) * 0x1p-24 * (sqrt(qn) + sqrt(rmax)) * (sqrt(qn) + sqrt(rmax));
    double window = (double)bd[k - 1] + 2.0 * e;
    int n = 0;
    /* an infinite window: float overflowed (finite inputs near FLT_MAX), double does not */
    if (!isfinite(window) || ((size_t)kk < n_r && (double)bd[kk - 1] <= window)) {
        for (size_t j = 0; j < n_r; j++)
            cand_insert(c, &n, k, exact_d2(q, ref + j * (size_t)dim, dim), (uint32_t)j);
    } else {
        for (int j = 0; j < kk && (double)bd[j] <= window; j++)
            cand_insert(c, &n, kk, exact_d2(q, ref + (size_t)bi[j] * (size_t)dim, dim), bi[j]);
    }
    for (int j = 0; j < k; j++) {
        idx[j] = c[j].i;
        if (d2)
            d2[j] = (float)c[j].d;
    }
}

int siam_knn_neighbours_normed(const float *query, size_t n_q, const float *ref, const float *rnorm,
                               size_t n_r, int dim, int k, uint32_t *idx, float *d2,
                               siam_error *err) {
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
    int kk = (size_t)(k + SIAM_KNN_RERANK_EXTRA) < n_r ? k + SIAM_KNN_RERANK_EXTRA : (int)n_r;
    size_t qb_max = n_q < SIAM_KNN_QUERY_BLOCK ? n_q : SIAM_KNN_QUERY_BLOCK;
    size_t rb_max = n_r < SIAM_KNN_REF_BLOCK ? n_r : SIAM_KNN_REF_BLOCK;
    float *qnorm = malloc(qb_max * sizeof *qnorm);
    float *block = siam_alloc_floats(qb_max * rb_max);
    float *bd = malloc(qb_max * (size_t)kk * sizeof *bd);
    uint32_t *bi = malloc(qb_max * (size_t)kk * sizeof *bi);
    cand *c = malloc(((size_t)kk + 1) * sizeof *c);
    int rc = SIAM_OK;
    if (!qnorm || !block || !bd || !bi || !c) {
        rc = siam_error_set(err, SIAM_ERR_NOMEM,
                            "knn: out of memory for a %zu x %zu distance block", qb_max, rb_max);
        goto done;
    }
    double rmax = 0.0;
    for (size_t j = 0; j < n_r; j++)
        if (rnorm[j] > rmax)
            rmax = rnorm[j];
    for (size_t q0 = 0; q0 < n_q; q0 += qb_max) {
        size_t qb = n_q - q0 < qb_max ? n_q - q0 : qb_max;
        const float *qx = query + q0 * (size_t)dim;
        siam_knn_row_norms(qx, qb, dim, qnorm);
        for (size_t i = 0; i < qb * (size_t)kk; i++) {
            bd[i] = INFINITY;
            bi[i] = UINT32_MAX;
        }
        for (size_t r0 = 0; r0 < n_r; r0 += rb_max) {
            size_t rb = n_r - r0 < rb_max ? n_r - r0 : rb_max;
            siam_knn_distances(qx, qnorm, qb, ref + r0 * (size_t)dim, rnorm + r0, rb, dim, block,
                               rb);
            for (size_t i = 0; i < qb; i++) {
                const float *row = block + i * rb;
                float *bdi = bd + i * (size_t)kk;
                uint32_t *bii = bi + i * (size_t)kk;
                for (size_t j = 0; j < rb; j++) {
                    float d = row[j];
                    if (d < bdi[kk - 1])
                        topk_insert(bdi, bii, kk, d, (uint32_t)(r0 + j));
                }
            }
        }
        for (size_t i = 0; i < qb; i++)
            rerank(qx + i * (size_t)dim, qnorm[i], ref, n_r, rmax, dim, k, kk, bd + i * (size_t)kk,
                   bi + i * (size_t)kk, c, idx + (q0 + i) * (size_t)k,
                   d2 ? d2 + (q0 + i) * (size_t)k : NULL);
    }
done:
    free(qnorm);
    siam_free(block);
    free(bd);
    free(bi);
    free(c);
    return rc;
}

int siam_knn_neighbours(const float *query, size_t n_q, const float *ref, size_t n_r, int dim,
                        int k, uint32_t *idx, float *d2, siam_error *err) {
    if (dim < 1 || n_q == 0 || n_r == 0 || n_r > UINT32_MAX)
        return siam_knn_neighbours_normed(query, n_q, ref, NULL, n_r, dim, k, idx, d2, err);
    float *rnorm = malloc(n_r * sizeof *rnorm);
    if (!rnorm)
        return siam_error_set(err, SIAM_ERR_NOMEM, "knn: out of memory for %zu norms", n_r);
    siam_knn_row_norms(ref, n_r, dim, rnorm);
    int rc = siam_knn_neighbours_normed(query, n_q, ref, rnorm, n_r, dim, k, idx, d2, err);
    free(rnorm);
    return rc;
}

uint32_t siam_knn_vote_weighted(const uint32_t *labels, const float *dist, int k, double *share) {
    /* k <= SIAM_KNN_K_MAX in every caller, but any k works: sums per distinct label, O(k^2) */
    double total = 0.0, best = -1.0;
    uint32_t winner = labels[0];
    for (int i = 0; i < k; i++)
        total += 1.0 / ((double)dist[i] + SIAM_KNN_VOTE_EPS);
    for (int i = 0; i < k; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = labels[j] == labels[i];
        if (seen)
            continue; /* its sum was taken at its nearest neighbour */
        double w = 0.0;
        for (int j = i; j < k; j++)
            if (labels[j] == labels[i])
                w += 1.0 / ((double)dist[j] + SIAM_KNN_VOTE_EPS);
        if (w > best) { /* strictly more: a tie keeps the label met first, i.e. nearer */
            best = w;
            winner = labels[i];
        }
    }
    if (share)
        *share = total > 0.0 ? best / total : 1.0;
    return winner;
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
