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
 * predictions and accuracy equal the brute force's (the exact re-ranking makes them so). */
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

    /* the ranking is the exact one: indices and distances equal the brute force, ties included */
    size_t idx_bad = 0, d_bad = 0, pred_bad = 0, right = 0;
    for (size_t i = 0; i < n_q; i++) {
        brute_sorted(q + i * dim, ref, n_r, dim, c);
        int bv = brute_vote(c, k, rl);
        for (int j = 0; j < k; j++) {
            idx_bad += idx[i * k + j] != c[j].i;
            d_bad += d2[i * k + j] != (float)c[j].d;
        }
        pred_bad += pred[i] != bv;
        right += bv == ql[i];
    }
    CHECK(idx_bad == 0, "%zu neighbour indices differ from brute force (n_q %zu n_r %zu dim %d)",
          idx_bad, n_q, n_r, dim);
    CHECK(d_bad == 0, "%zu squared distances differ from the brute force's in double", d_bad);
    CHECK(pred_bad == 0, "%zu predictions differ from the brute-force vote", pred_bad);
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

/* Near-ties that sgemm's rounding orders differently in different layouts: references with
 * many exact duplicates (more than k + SIAM_KNN_RERANK_EXTRA: the exact scan), duplicates moved
 * by one float ulp, and queries on references. Each query's neighbours alone (n_q = 1), in a
 * block of SIAM_KNN_QUERY_BLOCK and in the whole set are the same, and the brute force's. */
static void test_layout(void) {
    enum { NR = 3000, NQ = SIAM_KNN_QUERY_BLOCK + 40, DIM = 24, K = 7 };
    siam_rng r;
    siam_rng_seed(&r, 4242);
    float *ref = malloc((size_t)NR * DIM * sizeof *ref), *q = malloc((size_t)NQ * DIM * sizeof *q);
    fill_random(ref, (size_t)NR * DIM, &r, 1.0f);
    for (int j = 100; j < 140; j++) /* 40 copies of row 7 */
        memcpy(ref + j * DIM, ref + 7 * DIM, DIM * sizeof *ref);
    for (int j = 200; j < 260; j++) { /* row 9 moved by one ulp in one component */
        memcpy(ref + j * DIM, ref + 9 * DIM, DIM * sizeof *ref);
        ref[j * DIM + j % DIM] = nextafterf(ref[j * DIM + j % DIM], 2.0f);
    }
    fill_random(q, (size_t)NQ * DIM, &r, 1.0f);
    for (int i = 0; i < NQ; i += 3) { /* a third on or next to the near-tied references */
        int src = (int[]){7, 9, 120, 230, 11}[i % 5];
        memcpy(q + i * DIM, ref + src * DIM, DIM * sizeof *q);
        if (i % 2)
            q[i * DIM] += 1e-4f;
    }
    uint32_t *all = malloc((size_t)NQ * K * sizeof *all), one[K];
    float *all_d = malloc((size_t)NQ * K * sizeof *all_d), one_d[K];
    cand *c = malloc(NR * sizeof *c);
    siam_error err = {0};
    CHECK(siam_knn_neighbours(q, NQ, ref, NR, DIM, K, all, all_d, &err) == SIAM_OK, "%s", err.msg);
    size_t alone_bad = 0, brute_bad = 0, block_bad = 0;
    for (int i = 0; i < NQ; i++) {
        CHECK(siam_knn_neighbours(q + i * DIM, 1, ref, NR, DIM, K, one, one_d, &err) == SIAM_OK,
              "%s", err.msg);
        alone_bad += memcmp(one, all + i * K, sizeof one) != 0 ||
                     memcmp(one_d, all_d + i * K, sizeof one_d) != 0;
        brute_sorted(q + i * DIM, ref, NR, DIM, c);
        for (int j = 0; j < K; j++)
            brute_bad += one[j] != c[j].i;
    }
    /* the second half of the queries as one block of their own, against the references in a
     * different order of blocks: the first 1000 rows cut off and searched on their own */
    int h = NQ / 2;
    uint32_t *part = malloc((size_t)(NQ - h) * K * sizeof *part);
    CHECK(siam_knn_neighbours(q + h * DIM, NQ - h, ref, NR, DIM, K, part, NULL, &err) == SIAM_OK,
          "%s", err.msg);
    block_bad += memcmp(part, all + h * K, (size_t)(NQ - h) * K * sizeof *part) != 0;
    CHECK(alone_bad == 0, "%zu of %d queries have other neighbours alone than in a block",
          alone_bad, NQ);
    CHECK(brute_bad == 0, "%zu neighbours differ from the brute force", brute_bad);
    CHECK(block_bad == 0, "the second half searched as its own block differs");
    /* the duplicates: a query on row 7 has row 7 first, then copies 100, 101, ... in index
     * order, at distance exactly 0 */
    CHECK(siam_knn_neighbours(ref + 7 * DIM, 1, ref, NR, DIM, K, one, one_d, &err) == SIAM_OK, "%s",
          err.msg);
    for (int j = 0; j < K; j++)
        CHECK(one[j] == (j == 0 ? 7u : (uint32_t)(99 + j)) && one_d[j] == 0.0f,
              "duplicate %d: r%u at %g", j, one[j], (double)one_d[j]);
    free(ref);
    free(q);
    free(all);
    free(all_d);
    free(part);
    free(c);
}

/* Components near FLT_MAX: sgemm's distances overflow to inf, the exact ones in double do not; the
 * neighbours are still the brute force's (an exact scan). */
static void test_overflow(void) {
    enum { NR = 40, DIM = 3 };
    float ref[NR * DIM], q[2 * DIM] = {3e38f, -3e38f, 1e38f, 0, 0, 0};
    for (int i = 0; i < NR * DIM; i++)
        ref[i] = (float)((i * 37) % 23 - 11) * 2.5e37f;
    uint32_t idx[2 * 5];
    float d2[2 * 5];
    cand c[NR];
    siam_error err = {0};
    CHECK(siam_knn_neighbours(q, 2, ref, NR, DIM, 5, idx, d2, &err) == SIAM_OK, "%s", err.msg);
    for (int i = 0; i < 2; i++) {
        brute_sorted(q + i * DIM, ref, NR, DIM, c);
        for (int j = 0; j < 5; j++)
            CHECK(idx[i * 5 + j] == c[j].i, "query %d neighbour %d: r%u, brute force r%u", i, j,
                  idx[i * 5 + j], c[j].i);
    }
}

/* The distance-weighted vote against hand-computed weights 1 / (d + 1e-6). */
static void test_vote_weighted(void) {
    double share = 0;
    /* one near neighbour of label 3 outweighs two far ones of label 5: 1/0.1 vs 2/1 */
    const uint32_t l1[] = {3, 5, 5};
    const float d1[] = {0.1f, 1.0f, 1.0f};
    CHECK(siam_knn_vote_weighted(l1, d1, 3, &share) == 3, "near single vote wins");
    double w3 = 1 / ((double)0.1f + 1e-6), w5 = 2 / (1.0 + 1e-6);
    CHECK_NEAR(share, w3 / (w3 + w5), 1e-12, "share of label 3");
    /* majority at equal distances */
    const uint32_t l2[] = {1, 2, 2};
    const float d2[] = {0.5f, 0.5f, 0.5f};
    CHECK(siam_knn_vote_weighted(l2, d2, 3, &share) == 2, "2 of 3 at equal distances");
    CHECK_NEAR(share, 2.0 / 3.0, 1e-12, "share 2/3");
    /* an exact tie of weights goes to the label of the nearer neighbour */
    const uint32_t l3[] = {8, 4, 4, 8};
    const float d3[] = {0.25f, 0.25f, 0.5f, 0.5f};
    CHECK(siam_knn_vote_weighted(l3, d3, 4, &share) == 8, "tie: the first label seen");
    CHECK_NEAR(share, 0.5, 1e-12, "tie share");
    /* distance 0: weight 1e6, a near-certain vote */
    const uint32_t l4[] = {6, 7, 7, 7};
    const float d4[] = {0.0f, 0.01f, 0.01f, 0.01f};
    CHECK(siam_knn_vote_weighted(l4, d4, 4, &share) == 6, "distance 0 wins");
    CHECK(share > 0.99 && share <= 1.0, "share %g", share);
    /* k = 1 */
    CHECK(siam_knn_vote_weighted(l4 + 1, d4 + 1, 1, &share) == 7 && share == 1.0, "k=1 share 1");
}

int main(void) {
    test_ties();
    test_layout();
    test_overflow();
    test_vote_weighted();
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
