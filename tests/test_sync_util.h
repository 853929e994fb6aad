/* test_sync_util: what test_averaging and test_service_sync share: calls that record the one
 * answer they must get (from the averaging's or the service's reply function, on any thread),
 * waits on CLOCK_MONOTONIC, the reference samples-weighted mean, and random parameters. Each
 * test program includes it once. */
#ifndef TEST_SYNC_UTIL_H
#define TEST_SYNC_UTIL_H

#include "test_util.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "siam_averaging.h"
#include "siam_log.h"
#include "siam_rng.h"
#include "siam_rpc.h"

/* ------------------------------------------------------------------------------------------ */
/* Recording answers: a call is a waiter; the reply functions copy what they are told into it
 * (params are valid only during the callback) and wake the test thread. They may run on the
 * averaging timer thread, so they touch only the call, under rec_lock, and never CHECK. */

static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rec_cond; /* on CLOCK_MONOTONIC: see sync_test_init */

typedef struct {
    int calls;             /* answers received: must end at exactly 1 */
    double t;              /* siam_now() of the first answer */
    int code;              /* status code */
    int decoded;           /* service level: the GlobalWeights decoded */
    int has_resp_on_error; /* service level: a response came with a failure status */
    char msg[SIAM_ERROR_MSG_MAX];
    uint64_t round;
    char spec[SIAM_SPEC_MAX];
    float *params;
    size_t n_params;
    uint32_t workers;
    uint64_t samples;
    int late;
    int encoding; /* service level: the GlobalWeights' (params are decoded from it) */
    int gone;     /* the caller has given up (cfg.gone: call_gone) */
} call;

static inline void call_reset(call *c) {
    pthread_mutex_lock(&rec_lock);
    free(c->params);
    memset(c, 0, sizeof *c);
    pthread_mutex_unlock(&rec_lock);
}

static inline int answered(call *c) {
    pthread_mutex_lock(&rec_lock);
    int n = c->calls;
    pthread_mutex_unlock(&rec_lock);
    return n;
}

/* Waits up to secs for c's answer; returns its number of answers (0: none in time). */
static inline int wait_for(call *c, double secs) {
    struct timespec ts; /* rec_cond waits on CLOCK_MONOTONIC: a clock step cannot stretch this */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long ns = (long long)ts.tv_nsec + (long long)(secs * 1e9);
    ts.tv_sec += (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    pthread_mutex_lock(&rec_lock);
    while (c->calls == 0)
        if (pthread_cond_timedwait(&rec_cond, &rec_lock, &ts) != 0)
            break;
    int n = c->calls;
    pthread_mutex_unlock(&rec_lock);
    return n;
}

static inline void sleep_s(double secs) {
    struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* cfg.reply of siam_averaging */
static inline void record(void *waiter, const siam_averaging_answer *a) {
    call *c = waiter;
    float *p = NULL;
    if (a->params && a->n_params) {
        p = malloc(a->n_params * sizeof *p);
        if (p)
            memcpy(p, a->params, a->n_params * sizeof *p);
    }
    double now = siam_now();
    pthread_mutex_lock(&rec_lock);
    if (c->calls++ == 0) {
        c->t = now;
        c->code = a->code;
        snprintf(c->msg, sizeof c->msg, "%s", a->msg);
        c->round = a->round;
        snprintf(c->spec, sizeof c->spec, "%s", a->spec ? a->spec : "");
        c->params = p;
        c->n_params = p ? a->n_params : 0;
        c->workers = a->workers;
        c->samples = a->samples;
        c->late = a->late;
        p = NULL;
    }
    pthread_cond_broadcast(&rec_cond);
    pthread_mutex_unlock(&rec_lock);
    free(p);
}

/* cfg.on_round: the rounds closed, in order */
static uint64_t rounds_seen[64];
static uint32_t rounds_workers[64];
static int n_rounds_seen;

static inline void on_round(void *ctx, const siam_averaging_answer *a) {
    (void)ctx;
    pthread_mutex_lock(&rec_lock);
    if (n_rounds_seen < 64) {
        rounds_seen[n_rounds_seen] = a->round;
        rounds_workers[n_rounds_seen] = a->workers;
    }
    n_rounds_seen++;
    pthread_mutex_unlock(&rec_lock);
}

/* cfg.gone: a fake cancellation, set with call_give_up */
static inline int call_gone(void *waiter) {
    call *c = waiter;
    pthread_mutex_lock(&rec_lock);
    int g = c->gone;
    pthread_mutex_unlock(&rec_lock);
    return g;
}

static inline void call_give_up(call *c) {
    pthread_mutex_lock(&rec_lock);
    c->gone = 1;
    pthread_mutex_unlock(&rec_lock);
}

static inline siam_averaging *make_avg(int min_workers, double timeout, const char *spec,
                                       const float *params, size_t n) {
    siam_averaging_config cfg = {min_workers, timeout, record, on_round, NULL, call_gone};
    siam_averaging *a = NULL;
    siam_error err = {0};
    CHECK(siam_averaging_create(&a, &cfg, &err) == SIAM_OK, "create: %s", err.msg);
    if (a && spec)
        CHECK(siam_averaging_set_model(a, spec, params, n, 0, &err) == SIAM_OK, "set_model: %s",
              err.msg);
    return a;
}

static inline void submit(siam_averaging *a, call *c, const char *worker, const char *spec,
                          const float *p, size_t n, uint64_t samples, uint64_t base_round) {
    siam_averaging_update u = {worker, spec, p, n, samples, base_round};
    siam_averaging_submit(a, &u, c);
}

/* The samples-weighted mean computed independently: for each j,
 * (float)(sum_i (double)s_i * (double)p_ij / (double)sum s), summed in strcmp order of names. */
static inline void ref_average(float *out, const char *const *names, const float *const *p,
                               const uint64_t *s, int k, size_t n) {
    int order[16];
    for (int i = 0; i < k; i++)
        order[i] = i;
    for (int i = 1; i < k; i++) /* insertion sort by name */
        for (int j = i; j > 0 && strcmp(names[order[j - 1]], names[order[j]]) > 0; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    uint64_t total = 0;
    for (int i = 0; i < k; i++)
        total += s[i];
    for (size_t j = 0; j < n; j++) {
        double acc = 0;
        for (int r = 0; r < k; r++)
            acc += (double)s[order[r]] * (double)p[order[r]][j];
        out[j] = (float)(acc / (double)total);
    }
}

/* Random floats of very different magnitudes, so that sums are sensitive to rounding. */
static inline void random_params(siam_rng *rng, float *p, size_t n) {
    static const float scale[4] = {1.0f, 1e-3f, 37.0f, 1e4f};
    for (size_t j = 0; j < n; j++)
        p[j] = (2 * siam_rng_uniform(rng) - 1) * scale[siam_rng_below(rng, 4)];
}

static inline int same_params(const call *c, const float *want, size_t n) {
    return c->params && c->n_params == n && memcmp(c->params, want, n * sizeof *want) == 0;
}

static inline size_t first_diff(const call *c, const float *want, size_t n) {
    if (!c->params || c->n_params != n)
        return (size_t)-1;
    for (size_t j = 0; j < n; j++)
        if (memcmp(&c->params[j], &want[j], sizeof *want) != 0)
            return j;
    return n;
}

#define N_PARAMS 1000
static const char *const SPEC = "in=28x28x1 dense8 relu";

/* Call first in main: rec_cond's timed waits use CLOCK_MONOTONIC. */
static inline void sync_test_init(void) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rec_cond, &ca);
    pthread_condattr_destroy(&ca);
}

#endif
