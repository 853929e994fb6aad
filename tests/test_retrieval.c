/* test_retrieval: leave-one-out Recall@1 and MAP@R against an O(n^2) brute force written here
 * (every distance in double, a full sort of every row), hand-computed cases, ties, the R = 0 and
 * n < 2 edges, and Recall@1 against siam_knn's own neighbour search. */
#include "test_util.h"

#include <string.h>

#include "siam_knn.h"
#include "siam_retrieval.h"
#include "siam_rng.h"

/* ---- the independent reference: all distances, a full sort, the definitions as written ---- */

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

static void brute(const float *x, const uint8_t *lab, size_t n, int dim, double *recall,
                  double *map, size_t *excluded) {
    cand *c = malloc(n * sizeof *c);
    size_t hits = 0, n_map = 0;
    double ap_sum = 0;
    for (size_t q = 0; q < n; q++) {
        size_t m = 0, r = 0;
        for (size_t j = 0; j < n; j++) {
            if (j == q)
                continue;
            double s = 0;
            for (int k = 0; k < dim; k++) {
                double t = (double)x[q * dim + k] - x[j * dim + k];
                s += t * t;
            }
            c[m].d = s;
            c[m++].i = (uint32_t)j;
            r += lab[j] == lab[q];
        }
        qsort(c, m, sizeof *c, cand_cmp);
        hits += lab[c[0].i] == lab[q];
        if (r == 0)
            continue;
        double sum = 0;
        for (size_t i = 1; i <= r; i++) {
            if (lab[c[i - 1].i] != lab[q])
                continue;
            size_t rel_so_far = 0;
            for (size_t k = 1; k <= i; k++)
                rel_so_far += lab[c[k - 1].i] == lab[q];
            sum += (double)rel_so_far / (double)i; /* P(i) rel(i) */
        }
        ap_sum += sum / (double)r;
        n_map++;
    }
    *recall = (double)hits / (double)n;
    *map = n_map ? ap_sum / (double)n_map : 0.0;
    *excluded = n - n_map;
    free(c);
}

/* Recall@1 from siam_knn_neighbours with k = 2: the first neighbour that is not the query */
static double knn_recall(const float *x, const uint8_t *lab, size_t n, int dim) {
    uint32_t *idx = malloc(n * 2 * sizeof *idx);
    siam_error err = {0};
    CHECK(siam_knn_neighbours(x, n, x, n, dim, 2, idx, NULL, &err) == SIAM_OK, "%s", err.msg);
    size_t hits = 0;
    for (size_t q = 0; q < n; q++) {
        uint32_t nn = idx[2 * q] != q ? idx[2 * q] : idx[2 * q + 1];
        hits += lab[nn] == lab[q];
    }
    free(idx);
    return (double)hits / (double)n;
}

/* Random data: small integer coordinates (every distance exact in float, many real ties, so the
 * tie rule is tested too) must match the brute force exactly; continuous ones within a little
 * (a near tie may round either way). Classes of unequal sizes, one of them a singleton. */
static void test_against_brute(size_t n, int dim, int n_classes, int integer, uint64_t seed) {
    siam_rng r;
    siam_rng_seed(&r, seed);
    float *x = malloc(n * dim * sizeof *x);
    uint8_t *lab = malloc(n);
    for (size_t i = 0; i < n; i++) {
        /* class c drawn with weight c + 1; the last item alone in class n_classes */
        int c = (int)siam_rng_below(&r, (uint64_t)n_classes * (n_classes + 1) / 2), cls = 0;
        while (c > cls) {
            c -= cls + 1;
            cls++;
        }
        lab[i] = (uint8_t)(i + 1 == n ? n_classes : cls);
        for (int k = 0; k < dim; k++) {
            /* a class-dependent offset so the metrics land well inside (0, 1) */
            float base = (float)(lab[i] % 3) * (integer ? 1.0f : 3.0f / sqrtf((float)dim));
            x[i * dim + k] =
                integer ? base + (float)siam_rng_below(&r, 4) : base + 2.0f * siam_rng_uniform(&r);
        }
    }
    siam_retrieval got;
    siam_error err = {0};
    CHECK(siam_retrieval_metrics(x, lab, n, dim, &got, &err) == SIAM_OK, "%s", err.msg);
    double recall, map;
    size_t excluded;
    brute(x, lab, n, dim, &recall, &map, &excluded);
    double tol = integer ? 1e-12 : 2e-3;
    printf("n %zu dim %d classes %d %s: Recall@1 %.6f (brute %.6f) MAP@R %.6f (brute %.6f)\n", n,
           dim, n_classes + 1, integer ? "integer" : "continuous", got.recall_at_1, recall,
           got.map_at_r, map);
    CHECK_NEAR(got.recall_at_1, recall, tol, "Recall@1 vs brute force");
    CHECK_NEAR(got.map_at_r, map, tol, "MAP@R vs brute force");
    CHECK(got.n == n && got.n_map_excluded == excluded && excluded == 1,
          "n %zu excluded %zu (brute %zu, expected 1: the singleton)", got.n, got.n_map_excluded,
          excluded);
    CHECK(got.recall_at_1 > 0.05 && got.recall_at_1 < 0.99 && got.map_at_r > 0.01 &&
              got.map_at_r < 0.99,
          "random data should give figures inside (0,1): %g %g", got.recall_at_1, got.map_at_r);
    if (integer)
        CHECK_NEAR(got.recall_at_1, knn_recall(x, lab, n, dim), 0.0,
                   "Recall@1 vs siam_knn_neighbours k=2");
    free(x);
    free(lab);
}

/* Six points on a line, worked out by hand (squared distances in brackets):
 *   item   0  1  2  3  4  5
 *   x      0  1  2  3  5  6
 *   class  A  A  B  A  B  B        R = 2 for every query
 * q0: 1 A (1), 2 B (4)                    -> AP (1/2)(1)         = 0.5,  hit
 * q1: 0 A (1), 2 B (1) tie: lower index   -> AP 0.5,                     hit
 *     (the other order would give (1/2)(1/2) = 0.25 and a miss)
 * q2: 1 A (1), 3 A (1)                    -> AP 0,                       miss
 * q3: 2 B (1), 1 A (4), 4 B (4)           -> AP (1/2)(1/2)       = 0.25, miss
 * q4: 5 B (1), 3 A (4)                    -> AP 0.5,                     hit
 * q5: 4 B (1), 3 A (9)                    -> AP 0.5,                     hit
 * Recall@1 4/6, MAP@R 2.25/6 = 0.375. A seventh item far away alone in class C has R = 0: it
 * leaves MAP@R as is (excluded), and is a Recall@1 miss: 4/7. */
static void test_by_hand(void) {
    const float x[] = {0, 1, 2, 3, 5, 6, 100};
    const uint8_t lab[] = {0, 0, 1, 0, 1, 1, 2};
    siam_retrieval r;
    siam_error err = {0};
    CHECK(siam_retrieval_metrics(x, lab, 6, 1, &r, &err) == SIAM_OK, "%s", err.msg);
    CHECK_NEAR(r.recall_at_1, 4.0 / 6.0, 1e-15, "Recall@1 by hand");
    CHECK_NEAR(r.map_at_r, 0.375, 1e-15, "MAP@R by hand");
    CHECK(r.n == 6 && r.n_map_excluded == 0, "n %zu excluded %zu", r.n, r.n_map_excluded);
    CHECK(siam_retrieval_metrics(x, lab, 7, 1, &r, &err) == SIAM_OK, "%s", err.msg);
    CHECK_NEAR(r.recall_at_1, 4.0 / 7.0, 1e-15, "Recall@1 with a singleton class");
    CHECK_NEAR(r.map_at_r, 0.375, 1e-15, "MAP@R leaves the singleton out");
    CHECK(r.n == 7 && r.n_map_excluded == 1, "n %zu excluded %zu", r.n, r.n_map_excluded);

    /* R > 1 with interleaving, dim 2: class A at (0,0) (0,1) (0,3), class B at (0,2) (0,4)
     * q = item 0 (A, R = 2): 1 A (1), 3 B (4), 2 A (9) -> AP (1/2)(1 + 0) = 0.5 (rank 3 is
     * past R = 2, so the third A does not count) */
    const float y[] = {0, 0, 0, 1, 0, 3, 0, 2, 0, 4};
    const uint8_t ly[] = {0, 0, 0, 1, 1};
    CHECK(siam_retrieval_metrics(y, ly, 5, 2, &r, &err) == SIAM_OK, "%s", err.msg);
    double rb, mb;
    size_t eb;
    brute(y, ly, 5, 2, &rb, &mb, &eb);
    /* q0 0.5; q1: 0 A, 3 B -> 0.5; q2 (0,3): 3 B (1), 4 B (1), 1 A (4) -> 0;
     * q3 B (0,2): 1 A (1), 2 A (1), 4 B (4) R = 1 -> 0; q4 B (0,4): 2 A (1), 3 B (4) -> 0 */
    CHECK_NEAR(r.map_at_r, (0.5 + 0.5 + 0 + 0 + 0) / 5.0, 1e-15, "MAP@R, 5 points by hand");
    CHECK_NEAR(r.recall_at_1, 2.0 / 5.0, 1e-15, "Recall@1, 5 points by hand");
    CHECK_NEAR(r.map_at_r, mb, 1e-15, "hand case agrees with the brute force");

    /* two items */
    const float two[] = {0, 1};
    const uint8_t same[] = {3, 3}, diff[] = {3, 4};
    CHECK(siam_retrieval_metrics(two, same, 2, 1, &r, &err) == SIAM_OK, "%s", err.msg);
    CHECK(r.recall_at_1 == 1.0 && r.map_at_r == 1.0, "two of a class: %g %g", r.recall_at_1,
          r.map_at_r);
    CHECK(siam_retrieval_metrics(two, diff, 2, 1, &r, &err) == SIAM_OK, "%s", err.msg);
    CHECK(r.recall_at_1 == 0.0 && r.map_at_r == 0.0 && r.n_map_excluded == 2,
          "two singletons: %g %g excluded %zu (MAP@R 0 over no queries)", r.recall_at_1, r.map_at_r,
          r.n_map_excluded);
}

/* Tight, far-apart clusters of unequal sizes: every ranking puts the whole class first. */
static void test_perfect(void) {
    enum { C = 5, DIM = 6 };
    const size_t sizes[C] = {20, 3, 11, 40, 2};
    size_t n = 0;
    for (int c = 0; c < C; c++)
        n += sizes[c];
    float *x = malloc(n * DIM * sizeof *x);
    uint8_t *lab = malloc(n);
    siam_rng r;
    siam_rng_seed(&r, 7);
    size_t i = 0;
    /* interleave the classes so the order of items says nothing */
    size_t left[C];
    memcpy(left, sizes, sizeof left);
    while (i < n) {
        int c = (int)siam_rng_below(&r, C);
        if (!left[c])
            continue;
        left[c]--;
        lab[i] = (uint8_t)(c * 10);
        for (int k = 0; k < DIM; k++)
            x[i * DIM + k] = (k == c ? 100.0f : 0.0f) + siam_rng_uniform(&r);
        i++;
    }
    siam_retrieval res;
    siam_error err = {0};
    CHECK(siam_retrieval_metrics(x, lab, n, DIM, &res, &err) == SIAM_OK, "%s", err.msg);
    CHECK(res.recall_at_1 == 1.0 && res.map_at_r == 1.0 && res.n_map_excluded == 0,
          "perfect clustering: Recall@1 %g MAP@R %g", res.recall_at_1, res.map_at_r);
    free(x);
    free(lab);
}

static void test_refused(void) {
    const float x[] = {0, 1};
    const uint8_t lab[] = {0, 0};
    siam_retrieval r = {.recall_at_1 = 5};
    siam_error err = {0};
    CHECK(siam_retrieval_metrics(x, lab, 1, 1, &r, &err) == SIAM_ERR_ARG, "n = 1 refused");
    CHECK(strstr(err.msg, "need at least 2") != NULL, "message says why: %s", err.msg);
    CHECK(r.recall_at_1 == 0 && r.n == 0, "result zeroed on failure");
    CHECK(siam_retrieval_metrics(x, lab, 0, 1, &r, &err) == SIAM_ERR_ARG, "n = 0 refused");
    CHECK(siam_retrieval_metrics(x, lab, 2, 0, &r, &err) == SIAM_ERR_ARG, "dim 0 refused");
}

int main(void) {
    test_by_hand();
    test_perfect();
    test_refused();
    test_against_brute(300, 4, 4, 1, 1);
    test_against_brute(500, 24, 9, 0, 2);
    /* more than one block of query rows (SIAM_RETRIEVAL_BLOCK_FLOATS / n < n) */
    test_against_brute(2100, 8, 6, 1, 3);
    test_against_brute(2100, 64, 3, 0, 4);
    return tu_finish();
}
