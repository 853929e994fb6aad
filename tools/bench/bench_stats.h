/* bench_stats.h: timing and statistics for every siam-bench suite. */
#ifndef BENCH_STATS_H
#define BENCH_STATS_H

#include <stdatomic.h>
#include <stddef.h>

/* Timed windows per figure at most: the upper bound of --reps, and the size of the arrays the
 * medians are taken over. */
#define BENCH_MAX_REPS 15

/* The q-quantile (0 <= q <= 1) of v[0..n), n >= 1, interpolated between the two nearest ranks;
 * sorts v. q = 0.5 is the median (the mean of the two middle values when n is even). */
double bench_quantile(double *v, size_t n, double q);
double bench_median(double *v, size_t n);

/* One timed window: does its work and sets *units to how much it did (calls, pairs, flops);
 * returns 0, or a code that ends the measurement. */
typedef int (*bench_window_fn)(void *ctx, double *units);

/* The median over reps (1..BENCH_MAX_REPS) windows of units per second, after warmups untimed
 * windows. Returns the first non-zero code of window (and leaves *rate alone), or 0. */
int bench_median_rate(bench_window_fn window, void *ctx, int warmups, int reps, double *rate);

/* The median over reps windows of calls/s of fn(ctx): a warm-up doubles the calls per window
 * until one lasts 50 ms, then each timed window is sized to about 0.2 s. Returns fn's first
 * non-zero code (and leaves *rate alone), or 0. */
int bench_call_rate(int (*fn)(void *), void *ctx, int reps, double *rate);

/* Sleeps until siam_now() reaches until, in naps of at most slice seconds so that a set *stop
 * ends it early. */
void bench_sleep_until(double until, atomic_int *stop, double slice);

/* A growing list of samples (latencies), one per call. */
typedef struct {
    double *v;
    size_t n, cap;
} bench_samples;

/* 0, or -1 when out of memory (s unchanged). */
int bench_samples_push(bench_samples *s, double x);
/* Appends part's samples to all: 0, or -1 when out of memory (all unchanged). */
int bench_samples_append(bench_samples *all, const bench_samples *part);
void bench_samples_free(bench_samples *s);

/* Percentiles over a list of samples; all 0 when it is empty. */
typedef struct {
    size_t n;
    double p50, p90, p99, max;
} bench_percentiles;

/* Sorts s. */
void bench_percentiles_of(bench_samples *s, bench_percentiles *p);

/* As bench_call_rate, and when lat is not NULL the duration in seconds of every timed call (not
 * the warm-up's) is appended to it, for percentiles. -1 when lat cannot grow (out of memory). */
int bench_call_rate_lat(int (*fn)(void *), void *ctx, int reps, double *rate, bench_samples *lat);

#endif
