/* test_metrics: pair metrics against hand-computed values and brute-force recomputation. */
#include "test_util.h"

#include <string.h>

#include "siam_metrics.h"
#include "siam_rng.h"

/* ---- independent O(n^2) / O(n * candidates) references ---- */

/* P(d_pos < d_neg) + 0.5 P(d_pos == d_neg) over all (pos, neg) pairs */
static double brute_auc(const float *d, const uint8_t *y, size_t n) {
    double wins = 0.0, total = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!y[i])
            continue;
        for (size_t j = 0; j < n; j++) {
            if (y[j])
                continue;
            total += 1.0;
            if (d[i] < d[j])
                wins += 1.0;
            else if (d[i] == d[j])
                wins += 0.5;
        }
    }
    return wins / total;
}

/* Best accuracy over every distinct partition: "<= v" for each distance v, and "none". */
static double brute_best_accuracy(const float *d, const uint8_t *y, size_t n) {
    double best = siam_metrics_accuracy(d, y, n, -1.0f); /* all distances here are >= 0 */
    for (size_t i = 0; i < n; i++) {
        double a = siam_metrics_accuracy(d, y, n, d[i]);
        if (a > best)
            best = a;
    }
    return best;
}

static size_t count_le(const float *d, const uint8_t *y, size_t n, int label, float t) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += (y[i] != 0) == label && d[i] <= t;
    return c;
}

/* ---- tests ---- */

static void test_perfect_separation(void) {
    const float d[] = {0.1f, 0.2f, 0.3f, 0.7f, 0.8f, 0.9f};
    const uint8_t y[] = {1, 1, 1, 0, 0, 0};
    const uint8_t rev[] = {0, 0, 0, 1, 1, 1};
    siam_error err = {0};
    double auc = -1, acc = -1;
    float t = -1;

    CHECK(siam_metrics_roc_auc(d, y, 6, &auc, &err) == SIAM_OK, "%s", err.msg);
    CHECK_NEAR(auc, 1.0, 0.0, "AUC, separated");
    CHECK(siam_metrics_best_threshold(d, y, 6, &t, &acc, &err) == SIAM_OK, "%s", err.msg);
    CHECK_NEAR(acc, 1.0, 0.0, "best accuracy, separated");
    CHECK(t > 0.3f && t < 0.7f, "best threshold %g not in the gap (0.3, 0.7)", t);
    CHECK_NEAR(t, 0.5, 1e-6, "best threshold is the midpoint of the gap");
    CHECK_NEAR(siam_metrics_accuracy(d, y, 6, 0.5f), 1.0, 0.0, "accuracy in the gap");
    CHECK_NEAR(siam_metrics_accuracy(d, y, 6, 0.3f), 1.0, 0.0, "accuracy at the last positive");
    CHECK_NEAR(siam_metrics_accuracy(d, y, 6, 0.75f), 5.0 / 6.0, 1e-12, "accuracy past a neg");

    CHECK(siam_metrics_roc_auc(d, rev, 6, &auc, &err) == SIAM_OK, "%s", err.msg);
    CHECK_NEAR(auc, 0.0, 0.0, "AUC, reversed");
    CHECK(siam_metrics_best_threshold(d, rev, 6, &t, &acc, &err) == SIAM_OK, "%s", err.msg);
    CHECK_NEAR(acc, 0.5, 0.0, "best accuracy, reversed (all one way or the other)");
    CHECK_NEAR(siam_metrics_accuracy(d, rev, 6, t), acc, 0.0, "reversed: threshold gives it");
}

static void test_all_equal(void) {
    const float d[] = {0.4f, 0.4f, 0.4f, 0.4f, 0.4f};
    const uint8_t y[] = {1, 0, 1, 0, 0};
    siam_error err = {0};
    double auc = -1, acc = -1;
    float t = -1;
    CHECK(siam_metrics_roc_auc(d, y, 5, &auc, &err) == SIAM_OK, "%s", err.msg);
    CHECK_NEAR(auc, 0.5, 0.0, "AUC, all distances equal");
    /* a tie is never split: either all "different" (3 right) or all "same" (2 right) */
    CHECK(siam_metrics_best_threshold(d, y, 5, &t, &acc, &err) == SIAM_OK, "%s", err.msg);
    CHECK_NEAR(acc, 0.6, 1e-12, "best accuracy, all equal");
    CHECK(t < 0.4f, "threshold %.9g should lie below the tie", t);
    CHECK_NEAR(siam_metrics_accuracy(d, y, 5, t), 0.6, 1e-12, "accuracy at that threshold");
}

/* Classes one float apart: the midpoint of lo = 1 + 2^-23 and hi = 1 + 2^-22 rounds (to even)
 * onto hi, and a threshold of hi would call the negative "same". */
static void test_adjacent_floats(void) {
    const float lo = nextafterf(1.0f, 2.0f), hi = nextafterf(lo, 2.0f);
    const float d[] = {lo, hi, lo, hi};
    const uint8_t y[] = {1, 0, 1, 0};
    siam_error err = {0};
    double acc = -1;
    float t = -1;
    CHECK(siam_metrics_best_threshold(d, y, 4, &t, &acc, &err) == SIAM_OK, "%s", err.msg);
    CHECK_NEAR(acc, 1.0, 0.0, "adjacent floats: best accuracy");
    CHECK(t >= lo && t < hi, "adjacent floats: threshold %.9g not in [lo, hi)", t);
    CHECK_NEAR(siam_metrics_accuracy(d, y, 4, t), 1.0, 0.0, "adjacent floats: accuracy at it");
}

/* 4 positives, 4 negatives, overlapping, with one tie across the classes:
 *   sorted: 0.1P 0.3P 0.4N 0.5P {0.6P 0.6N} 0.8N 1.3N
 * AUC: negatives above each positive: 0.1 -> 4, 0.3 -> 4, 0.5 -> 3, 0.6 -> 2 + 0.5 (tie)
 *   = 13.5 / 16 = 0.84375.
 * Correct pairs per cut: none 4 | 0.1 5 | 0.3 6 | 0.4 5 | 0.5 6 | 0.6 6 | 0.8 5 | 1.3 4:
 *   best accuracy 6/8, first reached between 0.3 and 0.4 -> threshold 0.35.
 * At 0.5: positives 0.1 0.3 0.5 right, negatives 0.6 0.8 1.3 right -> 6/8.
 * VAL at FAR 0.25 (one negative of four): 0.4N fits (1/4), the 0.6 group would make 2/4, so
 *   t is just below 0.6: VAL = 3/4 (0.1 0.3 0.5), FAR = 1/4.
 * VAL at FAR 1e-3: no negative may pass, t just below 0.4: VAL = 2/4, FAR = 0.
 * Stats: pos mean 1.5/4 = 0.375, deviations -.275 -.075 .125 .225, squares sum 0.1475,
 *   std = sqrt(0.1475/4) = sqrt(0.036875); neg mean 3.1/4 = 0.775, deviations -.375 -.175
 *   .025 .525, squares sum 0.4475, std = sqrt(0.111875). */
static void test_hand_case(void) {
    const float d[] = {0.5f, 0.4f, 0.1f, 1.3f, 0.6f, 0.8f, 0.3f, 0.6f};
    const uint8_t y[] = {1, 0, 1, 0, 1, 0, 1, 0};
    siam_error err = {0};
    double auc = -1, acc = -1, val = -1, far = -1;
    float t = -1;

    CHECK_NEAR(siam_metrics_accuracy(d, y, 8, 0.5f), 0.75, 0.0, "accuracy at 0.5");
    CHECK_NEAR(siam_metrics_accuracy(d, y, 8, 0.0f), 0.5, 0.0, "accuracy at 0");
    CHECK(siam_metrics_roc_auc(d, y, 8, &auc, &err) == SIAM_OK, "%s", err.msg);
    CHECK_NEAR(auc, 0.84375, 1e-15, "hand AUC");
    CHECK(siam_metrics_best_threshold(d, y, 8, &t, &acc, &err) == SIAM_OK, "%s", err.msg);
    CHECK_NEAR(acc, 0.75, 0.0, "hand best accuracy");
    CHECK_NEAR(t, 0.35, 1e-6, "hand best threshold");

    CHECK(siam_metrics_val_at_far(d, y, 8, 0.25, &t, &val, &far, &err) == SIAM_OK, "%s", err.msg);
    CHECK(t < 0.6f && t >= 0.5f, "VAL@0.25 threshold %.9g", t);
    CHECK(t == nextafterf(0.6f, 0.0f), "VAL@0.25 threshold %.9g is the largest below 0.6", t);
    CHECK_NEAR(val, 0.75, 0.0, "VAL at FAR 0.25");
    CHECK_NEAR(far, 0.25, 0.0, "FAR achieved at 0.25");
    CHECK(siam_metrics_val_at_far(d, y, 8, 1e-3, &t, &val, &far, &err) == SIAM_OK, "%s", err.msg);
    CHECK(t < 0.4f && t > 0.3f, "VAL@1e-3 threshold %.9g", t);
    CHECK_NEAR(val, 0.5, 0.0, "VAL at FAR 1e-3");
    CHECK_NEAR(far, 0.0, 0.0, "FAR achieved at 1e-3");
    CHECK(siam_metrics_val_at_far(d, y, 8, 1.0, &t, &val, &far, &err) == SIAM_OK, "%s", err.msg);
    CHECK(t == 1.3f && val == 1.0 && far == 1.0, "FAR 1 admits all: t %g val %g far %g", t, val,
          far);

    siam_distance_stats s;
    siam_metrics_distance_stats(d, y, 8, &s);
    CHECK(s.n_pos == 4 && s.n_neg == 4, "counts %zu %zu", s.n_pos, s.n_neg);
    CHECK_NEAR(s.pos_mean, 0.375, 1e-7, "pos mean");
    CHECK_NEAR(s.pos_std, sqrt(0.036875), 1e-7, "pos std");
    CHECK_NEAR(s.neg_mean, 0.775, 1e-7, "neg mean");
    CHECK_NEAR(s.neg_std, sqrt(0.111875), 1e-7, "neg std");

    siam_pair_report r;
    memset(&r, 0xff, sizeof r);
    CHECK(siam_metrics_report(d, y, 8, 0.5f, &r, &err) == SIAM_OK, "%s", err.msg);
    CHECK(r.n == 8 && r.threshold == 0.5f, "report n %zu threshold %g", r.n, r.threshold);
    CHECK_NEAR(r.accuracy, 0.75, 0.0, "report accuracy");
    CHECK_NEAR(r.best_accuracy, 0.75, 0.0, "report best accuracy");
    CHECK_NEAR(r.best_threshold, 0.35, 1e-6, "report best threshold");
    CHECK_NEAR(r.auc, 0.84375, 1e-15, "report AUC");
    CHECK(r.val_threshold < 0.4f && r.val == 0.5 && r.far == 0.0, "report VAL %g FAR %g at %g",
          r.val, r.far, r.val_threshold);
    CHECK(r.stats.n_pos == 4 && r.stats.n_neg == 4, "report stats counts");
    CHECK_NEAR(r.stats.neg_std, sqrt(0.111875), 1e-7, "report neg std");
}

/* distances with many ties (quantised) or none (continuous) */
static void random_pairs(siam_rng *rng, float *d, uint8_t *y, size_t n, int quantised) {
    for (size_t i = 0; i < n; i++) {
        y[i] = (uint8_t)siam_rng_below(rng, 2);
        /* positives drawn a little lower, so the classes overlap but differ */
        float u = quantised ? (float)siam_rng_below(rng, 40) / 16.0f : siam_rng_uniform(rng) * 2.5f;
        d[i] = y[i] ? u * 0.7f : u;
    }
}

static void test_auc_brute_force(void) {
    enum { N = 2000 };
    static float d[N];
    static uint8_t y[N];
    siam_rng rng;
    siam_rng_seed(&rng, 42);
    siam_error err = {0};
    for (int quantised = 1; quantised >= 0; quantised--) {
        random_pairs(&rng, d, y, N, quantised);
        double auc = -1;
        CHECK(siam_metrics_roc_auc(d, y, N, &auc, &err) == SIAM_OK, "%s", err.msg);
        double ref = brute_auc(d, y, N);
        CHECK_NEAR(auc, ref, 1e-12, quantised ? "AUC vs pairwise count, ties" : "AUC vs pairwise");
        CHECK(auc > 0.55 && auc < 0.95, "AUC %g of overlapping classes", auc);
    }
}

static void test_best_threshold_brute_force(void) {
    enum { N = 600 };
    static float d[N];
    static uint8_t y[N];
    siam_rng rng;
    siam_rng_seed(&rng, 7);
    siam_error err = {0};
    for (int trial = 0; trial < 6; trial++) {
        size_t n = trial < 2 ? (size_t)(1 + trial * 4) : N; /* tiny cases too: 1 and 5 pairs */
        random_pairs(&rng, d, y, n, trial % 2);
        float t = -1;
        double acc = -1;
        CHECK(siam_metrics_best_threshold(d, y, n, &t, &acc, &err) == SIAM_OK, "%s", err.msg);
        double ref = brute_best_accuracy(d, y, n);
        CHECK_NEAR(acc, ref, 1e-15, "best accuracy vs every candidate");
        CHECK_NEAR(siam_metrics_accuracy(d, y, n, t), acc, 1e-15,
                   "accuracy at the returned threshold is the one reported");
    }
}

static void test_val_at_far_1000(void) {
    enum { NNEG = 1000, NPOS = 700, N = NNEG + NPOS };
    static float d[N];
    static uint8_t y[N];
    siam_rng rng;
    siam_rng_seed(&rng, 1234);
    siam_error err = {0};
    for (int quantised = 0; quantised < 2; quantised++) {
        for (size_t i = 0; i < N; i++) {
            y[i] = i < NPOS;
            float u = quantised ? (float)siam_rng_below(&rng, 300) / 64.0f
                                : siam_rng_uniform(&rng) * 4.0f;
            d[i] = y[i] ? u * 0.5f : u + 0.05f;
        }
        float t = -1;
        double val = -1, far = -1;
        CHECK(siam_metrics_val_at_far(d, y, N, 1e-3, &t, &val, &far, &err) == SIAM_OK, "%s",
              err.msg);
        size_t neg = count_le(d, y, N, 0, t), pos = count_le(d, y, N, 1, t);
        CHECK(neg <= 1, "threshold %g admits %zu negatives of 1000", t, neg);
        CHECK(count_le(d, y, N, 0, nextafterf(t, INFINITY)) > 1,
              "threshold %g is not the largest admitting <= 1 negative", t);
        CHECK_NEAR(far, (double)neg / NNEG, 0.0, "FAR reported");
        CHECK_NEAR(val, (double)pos / NPOS, 0.0, "VAL reported");
        CHECK(val > 0.0, "some positives pass (val %g)", val);
    }
}

static void test_refusals(void) {
    const float d[] = {0.1f, 0.2f, 0.3f};
    const uint8_t pos[] = {1, 1, 1}, neg[] = {0, 0, 0}, mix[] = {1, 0, 1};
    siam_error err = {0};
    double auc, acc, val, far;
    float t;
    siam_pair_report r;

    err.msg[0] = '\0';
    CHECK(siam_metrics_roc_auc(d, pos, 3, &auc, &err) == SIAM_ERR_ARG, "AUC without negatives");
    CHECK(strstr(err.msg, "0 negative") != NULL, "message: %s", err.msg);
    err.msg[0] = '\0';
    CHECK(siam_metrics_roc_auc(d, neg, 3, &auc, &err) == SIAM_ERR_ARG, "AUC without positives");
    CHECK(strstr(err.msg, "0 positive") != NULL, "message: %s", err.msg);
    err.msg[0] = '\0';
    CHECK(siam_metrics_val_at_far(d, pos, 3, 1e-3, &t, &val, &far, &err) == SIAM_ERR_ARG,
          "VAL without negatives");
    CHECK(strstr(err.msg, "0 negative") != NULL, "message: %s", err.msg);
    err.msg[0] = '\0';
    CHECK(siam_metrics_val_at_far(d, neg, 3, 1e-3, &t, &val, &far, &err) == SIAM_ERR_ARG,
          "VAL without positives");
    CHECK(strstr(err.msg, "0 positive") != NULL, "message: %s", err.msg);
    err.msg[0] = '\0';
    CHECK(siam_metrics_report(d, neg, 3, 0.5f, &r, &err) == SIAM_ERR_ARG, "report, one class");
    CHECK(err.msg[0] != '\0', "report gives a message");
    CHECK(siam_metrics_val_at_far(d, mix, 3, 1.5, &t, &val, &far, &err) == SIAM_ERR_ARG,
          "FAR target above 1");
    CHECK(siam_metrics_val_at_far(d, mix, 3, NAN, &t, &val, &far, &err) == SIAM_ERR_ARG,
          "FAR target NaN");
    CHECK(siam_metrics_roc_auc(d, pos, 0, &auc, &err) == SIAM_ERR_ARG, "AUC of nothing");
    CHECK(siam_metrics_best_threshold(d, mix, 0, &t, &acc, &err) == SIAM_ERR_ARG,
          "best threshold of nothing");

    const float with_nan[] = {0.1f, NAN, 0.3f};
    err.msg[0] = '\0';
    CHECK(siam_metrics_roc_auc(with_nan, mix, 3, &auc, &err) == SIAM_ERR_ARG, "NaN distance");
    CHECK(strstr(err.msg, "dist[1]") != NULL, "message names the index: %s", err.msg);

    /* one class alone still has a best threshold: everything on the right side */
    CHECK(siam_metrics_best_threshold(d, neg, 3, &t, &acc, &err) == SIAM_OK, "%s", err.msg);
    CHECK(acc == 1.0 && t < 0.1f, "all negative: acc %g at %g", acc, t);
    CHECK(siam_metrics_best_threshold(d, pos, 3, &t, &acc, &err) == SIAM_OK, "%s", err.msg);
    CHECK(acc == 1.0 && t >= 0.3f, "all positive: acc %g at %g", acc, t);

    CHECK(siam_metrics_accuracy(d, mix, 0, 0.5f) == 0.0, "accuracy of no pairs is 0");
    siam_distance_stats s;
    siam_metrics_distance_stats(d, mix, 0, &s);
    CHECK(s.n_pos == 0 && s.n_neg == 0 && s.pos_mean == 0.0 && s.pos_std == 0.0 &&
              s.neg_mean == 0.0 && s.neg_std == 0.0,
          "stats of no pairs are zero");
}

/* The size of a real evaluation (19,980 test pairs and more) goes through quickly and agrees
 * with a direct count at the thresholds it reports. */
static void test_large(void) {
    enum { N = 200000 };
    float *d = malloc(N * sizeof *d);
    uint8_t *y = malloc(N);
    CHECK(d && y, "allocation");
    if (!d || !y) {
        free(d);
        free(y);
        return;
    }
    siam_rng rng;
    siam_rng_seed(&rng, 99);
    random_pairs(&rng, d, y, N, 0);
    siam_pair_report r;
    siam_error err = {0};
    CHECK(siam_metrics_report(d, y, N, 0.5f, &r, &err) == SIAM_OK, "%s", err.msg);
    CHECK_NEAR(siam_metrics_accuracy(d, y, N, r.best_threshold), r.best_accuracy, 1e-15,
               "large: best accuracy at its threshold");
    CHECK(r.best_accuracy >= r.accuracy, "large: best %g >= fixed %g", r.best_accuracy, r.accuracy);
    CHECK(r.far <= 1e-3, "large: FAR %g", r.far);
    CHECK(r.stats.n_pos + r.stats.n_neg == N, "large: stats count");
    free(d);
    free(y);
}

int main(void) {
    tu_trap_fp();
    test_perfect_separation();
    test_all_equal();
    test_adjacent_floats();
    test_hand_case();
    test_auc_brute_force();
    test_best_threshold_brute_force();
    test_val_at_far_1000();
    test_refusals();
    test_large();
    return tu_finish();
}
