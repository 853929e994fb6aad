/* bench_rss.h: a process's resident memory, sampled once a second, and whether it stayed flat. */
#ifndef BENCH_RSS_H
#define BENCH_RSS_H

#include <pthread.h>
#include <stdatomic.h>

#define BENCH_RSS_MAX_SAMPLES 8192

/* A thread reading VmRSS of pid at t_start + k (k = 0, 1, ...) until t_end or *stop. */
typedef struct {
    int pid;
    double t_start, t_end;
    atomic_int *stop;
    pthread_t tid;
    int started;
    double mb[BENCH_RSS_MAX_SAMPLES]; /* one sample a second from t_start */
    int n;
    char error[256]; /* the first sample that could not be read */
} bench_rss_sampler;

/* VmRSS of process pid in MB; -1 when it cannot be read (the process is gone). */
double bench_rss_mb(int pid);

/* Starts r's thread (r's other fields set beforehand): 0, or -1 when it could not start. */
int bench_rss_start(bench_rss_sampler *r);
/* Waits for r's thread, if it started. */
void bench_rss_join(bench_rss_sampler *r);

/* The figures over a run of samples (those after the warm-up). flat: last <= first + tol and
 * the second half's median <= the first half's + tol, with tol = max(16 MB, 10% of first). */
typedef struct {
    int n;
    double first, median, last, max, growth, tol, half1, half2;
    int flat;
} bench_rss_stats;

void bench_rss_summary(const double *mb, int n, bench_rss_stats *r);

#endif
