/* bench_rss.c: a process's resident memory, sampled once a second, and whether it stayed flat. */
#include "bench_rss.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_stats.h"

/* The tolerance of "flat": a steady leak of a few hundred bytes per call under the default load
 * of the load suite exceeds it within its 60 s window, while the heap's high-water mark, which
 * steps up by up to 8 MB when large requests coincide, stays within it (docs/BENCHMARKS.md). */
#define RSS_MIN_TOL 16.0
#define RSS_REL_TOL 0.10

double bench_rss_mb(int pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    double mb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long kb;
        if (sscanf(line, "VmRSS: %lu kB", &kb) == 1) {
            mb = (double)kb / 1024.0;
            break;
        }
    }
    fclose(f);
    return mb;
}

static void *rss_run(void *arg) {
    bench_rss_sampler *r = arg;
    for (int k = 0; r->n < BENCH_RSS_MAX_SAMPLES; k++) {
        double at = r->t_start + k;
        if (at > r->t_end + 0.5)
            break;
        bench_sleep_until(at, r->stop, 0.1);
        if (atomic_load(r->stop))
            break;
        double mb = bench_rss_mb(r->pid);
        if (mb < 0) {
            snprintf(r->error, sizeof r->error,
                     "cannot read /proc/%d/status at %d s: the server is gone", r->pid, k);
            break;
        }
        r->mb[r->n++] = mb;
    }
    return NULL;
}

int bench_rss_start(bench_rss_sampler *r) {
    r->started = pthread_create(&r->tid, NULL, rss_run, r) == 0;
    return r->started ? 0 : -1;
}

void bench_rss_join(bench_rss_sampler *r) {
    if (r->started)
        pthread_join(r->tid, NULL);
}

void bench_rss_summary(const double *mb, int n, bench_rss_stats *r) {
    memset(r, 0, sizeof *r);
    r->n = n;
    if (n < 1)
        return;
    double *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return;
    r->first = mb[0], r->last = mb[n - 1];
    for (int i = 0; i < n; i++)
        r->max = mb[i] > r->max ? mb[i] : r->max;
    memcpy(v, mb, (size_t)n * sizeof *v);
    r->median = bench_median(v, (size_t)n);
    int h = n / 2 ? n / 2 : 1;
    memcpy(v, mb, (size_t)h * sizeof *v);
    r->half1 = bench_median(v, (size_t)h);
    memcpy(v, mb + n - h, (size_t)h * sizeof *v);
    r->half2 = bench_median(v, (size_t)h);
    free(v);
    r->growth = r->last - r->first;
    r->tol = RSS_REL_TOL * r->first > RSS_MIN_TOL ? RSS_REL_TOL * r->first : RSS_MIN_TOL;
    r->flat = n >= 2 && r->last <= r->first + r->tol && r->half2 <= r->half1 + r->tol;
}
