/* test_util: assertions that count failures, FP traps, and finite-difference comparison.
 * Every test program ends with `return tu_finish();` so it exits non-zero on any failure. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#define _GNU_SOURCE
#include <fenv.h>
#include <math.h>
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
