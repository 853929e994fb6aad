/* test_knn: k-nearest neighbours against a brute-force double-precision search and vote, across
 * block boundaries, plus hand-made ties (equal distances, tied votes) and refused arguments. */
#include "test_util.h"

#include <string.h>

#include "siam_knn.h"
#include "siam_rng.h"

/* ---- independent references: every distance in double, a full sort, a plain vote ---- */

typedef struct {
    double d;
    uint32_t i;
} cand;

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->d != y->d)
        return x->d < y->d ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* all n_r candidates of query q, sorted by (distance, index) into c */
static void brute_sorted(const float *q, const float *ref, size_t n_r, int dim, cand *c) {
    for (size_t j = 0; j < n_r; j++) {
        double s = 0.0;
        for (int k = 0; k < dim; k++) {
            double t = (double)q[k] - ref[j * dim + k];
            s += t * t;
        }
        c[j].d = s;
        c[j].i = (uint32_t)j;
    }
    qsort(c, n_r, sizeof *c, cand_cmp);
}

/* majority vote; ties go to the tied class seen first in nearest-first order */
static int brute_vote(const cand *c, int k, const uint8_t *labels) {
    int best_class = -1, best_count = 0;
    for (int i = 0; i < k; i++) {
        int cls = labels[c[i].i], count = 0;
        for (int j = 0; j < k; j++)
            count += labels[c[j].i] == cls;
        if (count > best_count) {
            best_count = count;
            best_class = cls;
        }
    }
    return best_class;
}

static void fill_random(float *x, size_t n, siam_rng *r, float scale) {
    for (size_t i = 0; i < n; i++)
        x[i] = scale * (2.0f * siam_rng_uniform(r) - 1.0f);
}

/* n_q queries against n_r references (several blocks each way): neighbours, distances,
 * predictions and accuracy agree with the brute force wherever the k-th and (k+1)-th
 * distances are not so close that float rounding may order them either way. */
static void test_against_brute(size_t n_q, size_t n_r, int dim, int k, int n_classes, float scale) {
    siam_rng r;
    siam_rng_seed(&r, 1000 + n_q + (size_t)dim);
    float *q = malloc(n_q * dim * sizeof *q), *ref = malloc(n_r * dim * sizeof *ref);
    uint8_t *ql = malloc(n_q), *rl = malloc(n_r), *pred = malloc(n_q);
    uint32_t *idx = malloc(n_q * k * sizeof *idx);
    float *d2 = malloc(n_q * k * sizeof *d2);
    cand *c = malloc(n_r * sizeof *c);
    fill_random(q, n_q * dim, &r, scale);
    fill_random(ref, n_r * dim, &r, scale);
    for (size_t i = 0; i < n_q; i++)
        ql[i] = (uint8_t)siam_rng_below(&r, n_classes);
    for (size_t j = 0; j < n_r; j++)
        rl[j] = (uint8_t)siam_rng_below(&r, n_classes);
    siam_error err = {0};
    CHECK(siam_knn_neighbours(q, n_q, ref, n_r, dim, k, idx, d2, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_knn_classify(q, n_q, ref, rl, n_r, dim, k, pred, &err) == SIAM_OK, "%s", err.msg);
    double acc = -1;
    CHECK(siam_knn_accuracy(q, ql, n_q, ref, rl, n_r, dim, k, &acc, &err) == SIAM_OK, "%s",
          err.msg);

    size_t close = 0, idx_bad = 0, d_bad = 0, pred_bad = 0, right = 0;
    double max_rel = 0.0;
    for (size_t i = 0; i < n_q; i++) {
        brute_sorted(q + i * dim, ref, n_r, dim, c);
        int bv = brute_vote(c, k, rl);
        double tol = 1e-5 * (c[k].d + 1.0); /* float error of ||q||^2+||r||^2-2qr */
        int near_tie = 0;
        for (int j = 0; j < k; j++)
            near_tie |= c[j + 1].d - c[j].d <= tol;
        for (int j = 0; j < k; j++) {
            double rel = fabs((double)d2[i * k + j] - c[j].d) / (c[j].d + 1.0);
            if (rel > max_rel)
                max_rel = rel;
            d_bad += rel > 1e-5;
        }
        if (near_tie) {
            close++;
            right += pred[i] == ql[i]; /* counted as the library did */
            continue;
        }
        for (int j = 0; j < k; j++)
            idx_bad += idx[i * k + j] != c[j].i;
        pred_bad += pred[i] != bv;
        right += bv == ql[i];
    }
    CHECK(idx_bad == 0, "%zu neighbour indices differ from brute force (n_q %zu n_r %zu dim %d)",
          idx_bad, n_q, n_r, dim);
    CHECK(d_bad == 0, "%zu squared distances off by > 1e-5 relative (max %g)", d_bad, max_rel);
    CHECK(pred_bad == 0, "%zu predictions differ from the brute-force vote", pred_bad);
    CHECK(close < n_q / 20 + 1, "%zu of %zu queries had near-tied neighbours (too many to test)",
          close, n_q);
    CHECK_NEAR(acc, (double)right / n_q, 1e-12, "accuracy vs brute force");
    CHECK(acc > 0.0 && acc < 1.0, "accuracy %g of random labels should be in (0,1)", acc);
    free(q);
    free(ref);
    free(ql);
    free(rl);
    free(pred);
    free(idx);
    free(d2);
    free(c);
}

/* Integer coordinates: every distance is exact in float, so ties are real ties. */
static void test_ties(void) {
    /* references on a line, dim 2 (second coordinate 0): positions and classes */
    const float ref[] = {3, 0, -1, 0, 1, 0, -2, 0, 2, 0, 5, 0, -3, 0};
    /*                   r0    r1     r2    r3     r4    r5    r6   */
    const uint8_t lab[] = {7, 1, 2, 2, 1, 9, 4};
    const float q0[] = {0, 0};
    uint32_t idx[5];
    float d2[5];
    siam_error err = {0};
    /* distances from 0: r1 1, r2 1, r3 4, r4 4, r0 9, r6 9, r5 25 */
    CHECK(siam_knn_neighbours(q0, 1, ref, 7, 2, 5, idx, d2, &err) == SIAM_OK, "%s", err.msg);
    const uint32_t want[] = {1, 2, 3, 4, 0};
    const float want_d[] = {1, 1, 4, 4, 9};
    for (int j = 0; j < 5; j++) {
        CHECK(idx[j] == want[j],
              "neighbour %d is r%u, expected r%u (equal distances keep index "
              "order)",
              j, idx[j], want[j]);
        CHECK_NEAR(d2[j], want_d[j], 0.0, "exact squared distance");
    }
    /* k=4: classes 1 (r1, r4) and 2 (r2, r3) both have 2 votes; r1 (class 1) is nearest */
    uint8_t p = 0;
    CHECK(siam_knn_classify(q0, 1, ref, lab, 7, 2, 4, &p, &err) == SIAM_OK, "%s", err.msg);
    CHECK(p == 1, "2-2 tie at k=4: got class %d, expected 1 (the nearest of the tied)", p);
    /* k=5: 1,2,2,1,7 -> classes 1 and 2 tie with 2 votes, r1 (class 1) is nearest */
    CHECK(siam_knn_classify(q0, 1, ref, lab, 7, 2, 5, &p, &err) == SIAM_OK, "%s", err.msg);
    CHECK(p == 1, "2-2-1 tie at k=5: got class %d, expected 1", p);
    /* the nearest neighbour's class not among the tied: labels 9,1,2,2,1 for order r1..r0 */
    const uint8_t lab2[] = {2, 9, 1, 1, 2, 0, 0};
    /* k=5 neighbours r1(9) r2(1) r3(1) r4(2) r0(2): 1 and 2 tie, r2 (class 1) is the nearest */
    CHECK(siam_knn_classify(q0, 1, ref, lab2, 7, 2, 5, &p, &err) == SIAM_OK, "%s", err.msg);
    CHECK(p == 1, "tie among classes other than the nearest's: got %d, expected 1", p);
    /* a clear majority beats a nearer single vote: k=3, r1 class 5, r2 and r3 class 6 */
    const uint8_t lab3[] = {0, 5, 6, 6, 0, 0, 0};
    CHECK(siam_knn_classify(q0, 1, ref, lab3, 7, 2, 3, &p, &err) == SIAM_OK, "%s", err.msg);
    CHECK(p == 6, "majority 2 of 3: got %d, expected 6", p);
    /* k=1: the nearest; of r1 and r2 at the same distance, the lower index */
    CHECK(siam_knn_classify(q0, 1, ref, lab, 7, 2, 1, &p, &err) == SIAM_OK, "%s", err.msg);
    CHECK(p == 1, "k=1 at an equal-distance tie: got %d, expected r1's class 1", p);
    /* a query on a reference: distance exactly 0 */
    const float q1[] = {5, 0};
    CHECK(siam_knn_neighbours(q1, 1, ref, 7, 2, 1, idx, d2, &err) == SIAM_OK, "%s", err.msg);
    CHECK(idx[0] == 5 && d2[0] == 0.0f, "query on r5: got r%u at %g", idx[0], d2[0]);
    /* vote directly */
    const uint32_t vi[] = {0, 1, 2, 3};
    const uint8_t vl[] = {3, 4, 4, 3};
    CHECK(siam_knn_vote(vi, 4, vl) == 3, "vote 3,4,4,3 -> 3 (nearest of the tied)");
    CHECK(siam_knn_vote(vi, 3, vl) == 4, "vote 3,4,4 -> 4 (majority)");
}

static void test_accuracy_exact(void) {
    /* two well separated clusters: every query is classified by its cluster */
    const float ref[] = {0, 0, 0, 1, 1, 0, 10, 10, 10, 11, 11, 10};
    const uint8_t rl[] = {0, 0, 0, 1, 1, 1};
    const float q[] = {0.2f, 0.2f, 10.5f, 10.5f, 9, 9, 1, 1};
    const uint8_t ql[] = {0, 1, 1, 1}; /* the last one is wrong */
    double acc = -1;
    siam_error err = {0};
    CHECK(siam_knn_accuracy(q, ql, 4, ref, rl, 6, 2, 3, &acc, &err) == SIAM_OK, "%s", err.msg);
    CHECK_NEAR(acc, 0.75, 0.0, "3 of 4 right");
    CHECK(siam_knn_accuracy(q, ql, 0, ref, rl, 6, 2, 3, &acc, &err) == SIAM_OK, "%s", err.msg);
    CHECK_NEAR(acc, 0.0, 0.0, "no queries");
}

static void test_refused(void) {
    const float ref[] = {0, 1, 2};
    const uint8_t rl[] = {0, 1, 2};
    uint32_t idx[4];
    uint8_t p;
    siam_error err = {0};
    CHECK(siam_knn_neighbours(ref, 1, ref, 3, 1, 4, idx, NULL, &err) == SIAM_ERR_ARG,
          "k above n_r refused");
    CHECK(strstr(err.msg, "k is 4") != NULL, "message names k: %s", err.msg);
    CHECK(siam_knn_neighbours(ref, 1, ref, 3, 1, 0, idx, NULL, &err) == SIAM_ERR_ARG,
          "k 0 refused");
    CHECK(siam_knn_neighbours(ref, 1, ref, 3, 0, 1, idx, NULL, &err) == SIAM_ERR_ARG,
          "dim 0 refused");
    CHECK(siam_knn_classify(ref, 1, ref, rl, 3, 1, SIAM_KNN_K_MAX + 1, &p, &err) == SIAM_ERR_ARG,
          "k above the maximum refused");
}

int main(void) {
    test_ties();
    test_accuracy_exact();
    test_refused();
    /* one block, several reference blocks, several query blocks, pixel-like dim */
    test_against_brute(50, 300, 8, 5, 3, 1.0f);
    test_against_brute(SIAM_KNN_QUERY_BLOCK + 77, 2 * SIAM_KNN_REF_BLOCK + 123, 16, 5, 10, 1.0f);
    test_against_brute(40, SIAM_KNN_REF_BLOCK + 5, 784, 5, 10, 0.5f);
    test_against_brute(30, 500, 128, 1, 4, 3.0f);
    test_against_brute(30, 500, 32, 9, 4, 1.0f);
    return tu_finish();
}
