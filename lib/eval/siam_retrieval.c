/* siam_retrieval: leave-one-out Recall@1 and MAP@R over sgemm distance rows. */
#include "siam_retrieval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "siam_knn.h"
#include "siam_tensor.h"

/* Rank key of one candidate: the float bits of a non-negative distance order like the distance,
 * so (bits << 32 | index) sorts by distance, then by index, as plain integers, and every key of
 * a row is distinct (which keeps the selection below simple). */
static inline uint64_t rank_key(float d, uint32_t j) {
    uint32_t bits;
    if (isnan(d))
        d = INFINITY; /* NaN last */
    else if (!(d > 0.0f))
        d = 0.0f; /* also turns -0 into +0, whose bits are the smallest */
    memcpy(&bits, &d, sizeof bits);
    return (uint64_t)bits << 32 | j;
}

static inline void swap_u64(uint64_t *a, uint64_t *b) {
    uint64_t t = *a;
    *a = *b;
    *b = t;
}

/* Quickselect (median-of-three pivot, Lomuto partition): afterwards a[0..t] holds the t+1
 * smallest keys, in no particular order. Keys are distinct. Expected O(n). */
static void select_smallest(uint64_t *a, size_t n, size_t t) {
    size_t lo = 0, hi = n; /* the answer's position t lies in [lo, hi) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2, last = hi - 1;
        /* median of a[lo], a[mid], a[last] moved to a[last] as the pivot */
        if (a[mid] < a[lo])
            swap_u64(&a[mid], &a[lo]);
        if (a[last] < a[lo])
            swap_u64(&a[last], &a[lo]);
        if (a[mid] < a[last])
            swap_u64(&a[mid], &a[last]);
        uint64_t p = a[last];
        size_t store = lo;
        for (size_t i = lo; i < last; i++)
            if (a[i] < p)
                swap_u64(&a[i], &a[store++]);
        swap_u64(&a[store], &a[last]);
        if (store == t)
            return;
        if (store < t)
            lo = store + 1;
        else
            hi = store;
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int siam_retrieval_metrics(const float *x, const uint8_t *labels, size_t n, int dim,
                           siam_retrieval *out, siam_error *err) {
    memset(out, 0, sizeof *out);
    if (n < 2)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "retrieval: %zu item(s), need at least 2 (each item queries the "
                              "others)",
                              n);
    if (n > UINT32_MAX)
        return siam_error_set(err, SIAM_ERR_ARG, "retrieval: %zu items, at most %u", n,
                              (unsigned)UINT32_MAX);
    if (dim < 1)
        return siam_error_set(err, SIAM_ERR_ARG, "retrieval: dim is %d, expected >= 1", dim);
    /* rows of the distance block: as many as fit SIAM_RETRIEVAL_BLOCK_FLOATS, at least one;
     * the columns go to the sgemm in slices of int range */
    size_t qb_max = SIAM_RETRIEVAL_BLOCK_FLOATS / n;
    if (qb_max < 1)
        qb_max = 1;
    if (qb_max > n)
        qb_max = n;
    size_t cols_max = (size_t)SIAM_KNN_REF_BLOCK * 64; /* well inside int */
    size_t class_size[256] = {0};
    for (size_t i = 0; i < n; i++)
        class_size[labels[i]]++;

    float *norm = malloc(n * sizeof *norm);
    float *rows = siam_alloc_floats(qb_max * n);
    uint64_t *keys = malloc((n - 1) * sizeof *keys);
    int rc = SIAM_OK;
    if (!norm || !rows || !keys) {
        rc = siam_error_set(err, SIAM_ERR_NOMEM,
                            "retrieval: out of memory for %zu x %zu distances and %zu keys", qb_max,
                            n, n - 1);
        goto done;
    }
    siam_knn_row_norms(x, n, dim, norm);
    size_t hits_at_1 = 0, n_map = 0;
    double ap_sum = 0.0;
    for (size_t q0 = 0; q0 < n; q0 += qb_max) {
        size_t qb = n - q0 < qb_max ? n - q0 : qb_max;
        for (size_t c0 = 0; c0 < n; c0 += cols_max) {
            size_t cb = n - c0 < cols_max ? n - c0 : cols_max;
            siam_knn_distances(x + q0 * (size_t)dim, norm + q0, qb, x + c0 * (size_t)dim, norm + c0,
                               cb, dim, rows + c0, n);
        }
        for (size_t i = 0; i < qb; i++) {
            size_t q = q0 + i;
            const float *row = rows + i * n;
            uint8_t lab = labels[q];
            size_t m = 0;
            for (size_t j = 0; j < n; j++)
                if (j != q) /* leave the query out */
                    keys[m++] = rank_key(row[j], (uint32_t)j);
            size_t r = class_size[lab] - 1;
            if (r == 0) {
                /* no AP@R; Recall@1 is a miss whatever the nearest is */
                continue;
            }
            select_smallest(keys, m, r - 1);
            qsort(keys, r, sizeof *keys, cmp_u64);
            hits_at_1 += labels[(uint32_t)keys[0]] == lab;
            size_t hits = 0;
            double sum = 0.0;
            for (size_t k = 0; k < r; k++)
                if (labels[(uint32_t)keys[k]] == lab)
                    sum += (double)++hits / (double)(k + 1);
            ap_sum += sum / (double)r;
            n_map++;
        }
    }
    out->n = n;
    out->n_map_excluded = n - n_map;
    out->recall_at_1 = (double)hits_at_1 / (double)n;
    out->map_at_r = n_map ? ap_sum / (double)n_map : 0.0;
done:
    free(norm);
    siam_free(rows);
    free(keys);
    return rc;
}
