/* test_util: assertions that count failures, FP traps, and finite-difference comparison.
 * Every test program ends with `return tu_finish();` so it exits non-zero on any failure. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#define _GNU_SOURCE
#include <fenv.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int tu_failures;
static int tu_checks;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        tu_checks++;                                                                               \
        if (!(cond)) {                                                                             \
            tu_failures++;                                                                         \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* |a - b| <= tol, with both values printed on failure */
#define CHECK_NEAR(a, b, tol, what)                                                                \
    do {                                                                                           \
        double tu_a_ = (double)(a), tu_b_ = (double)(b);                                           \
        CHECK(fabs(tu_a_ - tu_b_) <= (tol), "%s: %.9g vs %.9g (tol %g)", (what), tu_a_, tu_b_,     \
              (double)(tol));                                                                      \
    } while (0)

/* Relative error used for gradient checks: |a-n| / max(|a|+|n|, floor). The floor keeps
 * gradients that are both ~0 from counting as large relative errors. */
static inline double tu_rel_err(double analytic, double numeric, double floor) {
    double den = fabs(analytic) + fabs(numeric);
    if (den < floor)
        den = floor;
    return fabs(analytic - numeric) / den;
}

/* Mean contrastive loss computed independently in double, labels y = 1 for similar pairs
 * (flip with similar_is_one = 0): the reference that finite differences are taken of. */
static inline double tu_contrastive_ref(const float *a, const float *b, const uint32_t *y, int B,
                                        int dim, double margin, int similar_is_one) {
    double total = 0;
    for (int i = 0; i < B; i++) {
        double d2 = 0;
        for (int k = 0; k < dim; k++) {
            double t = (double)a[i * dim + k] - b[i * dim + k];
            d2 += t * t;
        }
        double s = similar_is_one ? y[i] : 1.0 - y[i];
        double h = margin - sqrt(d2) > 0 ? margin - sqrt(d2) : 0;
        total += s * d2 + (1 - s) * h * h;
    }
    return total / B;
}

/* NaN or division by zero stops the test where it happens (SIGFPE). */
static inline void tu_trap_fp(void) {
    feenableexcept(FE_INVALID | FE_DIVBYZERO);
}

static inline int tu_finish(void) {
    if (tu_failures) {
        fprintf(stderr, "%d of %d checks failed\n", tu_failures, tu_checks);
        return 1;
    }
    printf("all %d checks passed\n", tu_checks);
    return 0;
}

#endif
