/* bench_stats.c: timing and statistics for every siam-bench suite. */
#include "bench_stats.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "siam_log.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_quantile(double *v, size_t n, double q) {
    qsort(v, n, sizeof *v, cmp_double);
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos, hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (pos - (double)lo) * (v[hi] - v[lo]);
}

double bench_median(double *v, size_t n) {
    return bench_quantile(v, n, 0.5);
}

int bench_median_rate(bench_window_fn window, void *ctx, int warmups, int reps, double *rate) {
    double t[BENCH_MAX_REPS];
    if (reps > BENCH_MAX_REPS)
        reps = BENCH_MAX_REPS;
    for (int r = -warmups; r < reps; r++) {
        double units = 0, t0 = siam_now();
        int rc = window(ctx, &units);
        double el = siam_now() - t0;
        if (rc)
            return rc;
        if (r >= 0)
            t[r] = units / el;
    }
    *rate = bench_median(t, (size_t)reps);
    return 0;
}

typedef struct {
    int (*fn)(void *);
    void *ctx;
    long inner;         /* calls per window */
    bench_samples *lat; /* NULL, or where each timed call's duration goes */
} call_window;

static int call_window_run(void *arg, double *units) {
    call_window *w = arg;
    int rc = 0;
    for (long i = 0; i < w->inner && !rc; i++) {
        if (!w->lat) {
            rc = w->fn(w->ctx);
            continue;
        }
        double t0 = siam_now();
        rc = w->fn(w->ctx);
        if (!rc && bench_samples_push(w->lat, siam_now() - t0))
            rc = -1;
    }
    *units = (double)w->inner;
    return rc;
}

int bench_call_rate_lat(int (*fn)(void *), void *ctx, int reps, double *rate, bench_samples *lat) {
    call_window w = {fn, ctx, 1, NULL};
    double el = 0;
    for (;;) { /* warm-up: double the window until it lasts 50 ms */
        double units, t0 = siam_now();
        int rc = call_window_run(&w, &units);
        el = siam_now() - t0;
        if (rc)
            return rc;
        if (el >= 0.05)
            break;
        w.inner *= 2;
    }
    w.inner = (long)((double)w.inner * 0.2 / el) + 1;
    w.lat = lat;
    return bench_median_rate(call_window_run, &w, 0, reps, rate);
}

int bench_call_rate(int (*fn)(void *), void *ctx, int reps, double *rate) {
    return bench_call_rate_lat(fn, ctx, reps, rate, NULL);
}

void bench_sleep_until(double until, atomic_int *stop, double slice) {
    for (double now = siam_now(); now < until && !atomic_load(stop); now = siam_now()) {
        double d = until - now > slice ? slice : until - now;
        struct timespec ts = {0, (long)(d * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static int samples_reserve(bench_samples *s, size_t need) {
    if (need <= s->cap)
        return 0;
    size_t cap = s->cap ? 2 * s->cap : 1024;
    while (cap < need)
        cap *= 2;
    double *p = realloc(s->v, cap * sizeof *p);
    if (!p)
        return -1;
    s->v = p, s->cap = cap;
    return 0;
}

int bench_samples_push(bench_samples *s, double x) {
    if (samples_reserve(s, s->n + 1))
        return -1;
    s->v[s->n++] = x;
    return 0;
}

int bench_samples_append(bench_samples *all, const bench_samples *part) {
    if (!part->n)
        return 0;
    if (samples_reserve(all, all->n + part->n))
        return -1;
    memcpy(all->v + all->n, part->v, part->n * sizeof *part->v);
    all->n += part->n;
    return 0;
}

void bench_samples_free(bench_samples *s) {
    free(s->v);
    *s = (bench_samples){0};
}

void bench_percentiles_of(bench_samples *s, bench_percentiles *p) {
    memset(p, 0, sizeof *p);
    p->n = s->n;
    if (!s->n)
        return;
    p->p50 = bench_quantile(s->v, s->n, 0.50);
    p->p90 = bench_quantile(s->v, s->n, 0.90);
    p->p99 = bench_quantile(s->v, s->n, 0.99);
    p->max = bench_quantile(s->v, s->n, 1.0);
}
