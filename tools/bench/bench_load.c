/* bench_load.c: suite load, Train streams and Similarity callers at once on a siam-server. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_rss.h"
#include "bench_stats.h"
#include "bench_suites.h"
#include "bench_wire.h"
#include "siam_log.h"
#include "siam_service.h"
#include "siam_wire.h"

/* Similarity request sizes the load callers cycle through (pairs per request). */
static const int load_sim_pairs[] = {1, 10, 100, 1000};
#define LOAD_SIM_SIZES    ((int)(sizeof load_sim_pairs / sizeof load_sim_pairs[0]))
#define LOAD_MAX_PRINTED  50 /* failures printed one by one; the rest are counted */
#define LOAD_CALL_TIMEOUT 30.0
#define LOAD_RETRY_PAUSE  0.2 /* after a failed stream or call, before the next attempt */

typedef struct {
    const bench_config *c;
    int batch;
    enum { CH_CONNECTIONS, CH_PER_THREAD, CH_SHARED } channels; /* --channels */
    double t_start, t_measure, t_end;
    siam_rpc_channel *shared; /* --channels shared: every thread's */
    uint8_t *sim_req[LOAD_SIM_SIZES];
    size_t sim_len[LOAD_SIM_SIZES];
    pthread_mutex_t lock; /* printed */
    int printed;
    atomic_int stop; /* a thread could not start: the others stop early */
} load_run;

typedef struct {
    load_run *run;
    int index, train; /* a Train stream, or a Similarity caller */
    pthread_t tid;
    int started;
    bench_samples lat_ms; /* every OK call that started in the timed window */
    uint64_t pairs;       /* pairs of those calls */
    uint64_t failures;    /* warm-up included */
    uint64_t reopened;    /* Train: streams opened again after a failure */
} load_thread;

static int load_over(load_run *run) {
    return atomic_load(&run->stop) || siam_now() >= run->t_end;
}

/* Sleeps s seconds, less if the run ends first. */
static void load_pause(load_run *run, double s) {
    double until = siam_now() + s;
    bench_sleep_until(until > run->t_end ? run->t_end : until, &run->stop, 0.05);
}

static void load_fail(load_thread *t, const char *what, const siam_rpc_status *st) {
    load_run *run = t->run;
    t->failures++;
    pthread_mutex_lock(&run->lock);
    if (run->printed < LOAD_MAX_PRINTED)
        fprintf(stderr, BENCH_PROG ": %s %d: %s failed at %.1f s: %s: %s\n",
                t->train ? "Train stream" : "Similarity caller", t->index, what,
                siam_now() - run->t_start, siam_rpc_code_name(st->code), st->msg);
    else if (run->printed == LOAD_MAX_PRINTED)
        fprintf(stderr, BENCH_PROG ": more than %d failures: the rest are counted, not printed\n",
                LOAD_MAX_PRINTED);
    run->printed++;
    pthread_mutex_unlock(&run->lock);
}

/* The thread's channel: the shared one, or a new one in *own. gRPC lets the channels of one
 * process that have the same target and settings share one connection (its global subchannel
 * pool), so --channels per-thread still puts every call on one HTTP/2 connection. For
 * --channels connections (the default: 32 workers are 32 processes, each with its connection),
 * every channel gets a message limit a few bytes apart (16 MiB + its thread number; no message
 * here comes near it), which makes its settings, and so its connection, its own. */
static siam_rpc_channel *load_channel(load_thread *t, siam_rpc_channel **own) {
    *own = NULL;
    if (t->run->channels == CH_SHARED)
        return t->run->shared;
    size_t max = 0;
    if (t->run->channels == CH_CONNECTIONS)
        max = SIAM_RPC_DEFAULT_MAX_MESSAGE + (size_t)t->index +
              (t->train ? 0 : (size_t)t->run->c->streams);
    siam_rpc_status st;
    if (bench_channel_create(own, t->run->c->server, max, &st)) {
        load_fail(t, "channel", &st);
        return NULL;
    }
    return *own;
}

static void *load_train_run(void *arg) {
    load_thread *t = arg;
    load_run *run = t->run;
    int B = run->batch, dim = run->c->dim;
    char worker[32];
    snprintf(worker, sizeof worker, "siam-bench-load-%d", t->index);
    /* two requests alternate, so consecutive batches differ */
    size_t len[2] = {0, 0};
    uint8_t *req[2] = {bench_train_request(B, dim, 1000 + 2 * (uint64_t)t->index, worker, &len[0]),
                       bench_train_request(B, dim, 1001 + 2 * (uint64_t)t->index, worker, &len[1])};
    siam_rpc_channel *own = NULL, *ch = NULL;
    siam_rpc_stream *s = NULL;
    siam_rpc_status st = {0};
    if (!req[0] || !req[1]) {
        siam_rpc_status_set(&st, SIAM_RPC_RESOURCE_EXHAUSTED, "out of memory for the batches");
        load_fail(t, "setup", &st);
        goto done;
    }
    if (!(ch = load_channel(t, &own)))
        goto done;
    for (uint64_t k = 0; !load_over(run); k++) {
        if (!s && siam_rpc_stream_open(ch, SIAM_METHOD_TRAIN, LOAD_CALL_TIMEOUT, &s, &st)) {
            load_fail(t, "opening the stream", &st);
            s = NULL;
            load_pause(run, LOAD_RETRY_PAUSE);
            continue;
        }
        siam_rpc_buf msg = {malloc(len[k & 1]), len[k & 1]}, resp = {0};
        if (!msg.data) {
            siam_rpc_status_set(&st, SIAM_RPC_RESOURCE_EXHAUSTED, "out of memory");
            load_fail(t, "exchange", &st);
            break;
        }
        memcpy(msg.data, req[k & 1], msg.len);
        double t0 = siam_now();
        int code = siam_rpc_stream_exchange(s, &msg, &resp, &st);
        double ms = (siam_now() - t0) * 1e3;
        if (code == SIAM_RPC_OK)
            code = bench_check_batch_result(&resp, B, dim, &st);
        siam_rpc_buf_free(&resp);
        if (code != SIAM_RPC_OK) {
            load_fail(t, "exchange", &st);
            siam_rpc_stream_free(s);
            s = NULL;
            t->reopened++;
            load_pause(run, LOAD_RETRY_PAUSE);
            continue;
        }
        if (t0 >= run->t_measure) {
            if (bench_samples_push(&t->lat_ms, ms))
                break;
            t->pairs += (uint64_t)B;
        }
    }
    if (s && siam_rpc_stream_close(s, &st) != SIAM_RPC_OK)
        load_fail(t, "closing the stream", &st);
done:
    siam_rpc_stream_free(s);
    siam_rpc_channel_free(own);
    free(req[0]), free(req[1]);
    return NULL;
}

static void *load_similarity_run(void *arg) {
    load_thread *t = arg;
    load_run *run = t->run;
    siam_rpc_channel *own = NULL, *ch = load_channel(t, &own);
    for (int k = t->index; ch && !load_over(run); k++) {
        int i = k % LOAD_SIM_SIZES;
        siam_rpc_buf resp = {0};
        siam_rpc_status st = {0};
        double t0 = siam_now();
        int code = siam_rpc_call(ch, SIAM_METHOD_SIMILARITY, run->sim_req[i], run->sim_len[i],
                                 LOAD_CALL_TIMEOUT, &resp, &st);
        double ms = (siam_now() - t0) * 1e3;
        if (code == SIAM_RPC_OK)
            code = bench_check_similarity(&resp, load_sim_pairs[i], &st);
        siam_rpc_buf_free(&resp);
        if (code != SIAM_RPC_OK) {
            load_fail(t, "Similarity", &st);
            load_pause(run, LOAD_RETRY_PAUSE);
        } else if (t0 >= run->t_measure) {
            if (bench_samples_push(&t->lat_ms, ms))
                break;
            t->pairs += (uint64_t)load_sim_pairs[i];
        }
    }
    siam_rpc_channel_free(own);
    return NULL;
}

/* Latencies and counts of one kind of thread, gathered. */
typedef struct {
    uint64_t calls, pairs, failures, reopened;
    uint64_t min_calls, max_calls; /* per thread */
    int idle;                      /* threads without one call in the window */
    bench_percentiles lat;
} load_stats;

static int load_gather(load_thread *th, int n, load_stats *s) {
    memset(s, 0, sizeof *s);
    bench_samples all = {0};
    s->min_calls = n ? UINT64_MAX : 0;
    for (int i = 0; i < n; i++) {
        uint64_t k = th[i].lat_ms.n;
        if (bench_samples_append(&all, &th[i].lat_ms)) {
            bench_samples_free(&all);
            return -1;
        }
        s->calls += k;
        s->pairs += th[i].pairs;
        s->failures += th[i].failures;
        s->reopened += th[i].reopened;
        s->min_calls = k < s->min_calls ? k : s->min_calls;
        s->max_calls = k > s->max_calls ? k : s->max_calls;
        s->idle += k == 0;
    }
    bench_percentiles_of(&all, &s->lat);
    bench_samples_free(&all);
    return 0;
}

static void print_load_stats(const char *name, const load_stats *s, double secs) {
    printf("load %s: %llu calls, %llu failed, %.1f calls/s, %.0f pairs/s; latency ms p50 %.2f "
           "p90 %.2f p99 %.2f max %.2f\n",
           name, (unsigned long long)s->calls, (unsigned long long)s->failures,
           (double)s->calls / secs, (double)s->pairs / secs, s->lat.p50, s->lat.p90, s->lat.p99,
           s->lat.max);
}

static void print_load(const bench_config *c, const load_run *run, const load_stats *tr,
                       const load_stats *si, const bench_rss_sampler *rs, const bench_rss_stats *r,
                       int status_ok, const siam_rpc_status *status_st) {
    double secs = c->seconds;
    printf("load %s: %d Train streams (batch %d x dim %d), %d Similarity callers (1/10/100/1000 "
           "pairs), %s; %.0f s warm-up, %.0f s measured\n",
           c->server, c->streams, run->batch, c->dim, c->callers,
           run->channels == CH_CONNECTIONS  ? "a channel and connection per thread"
           : run->channels == CH_PER_THREAD ? "a channel per thread (one connection)"
                                            : "one channel",
           (double)c->warmup, secs);
    print_load_stats("train", tr, secs);
    printf("load train.streams: %llu..%llu exchanges per stream, %d without progress, %llu "
           "reopened after a failure\n",
           (unsigned long long)tr->min_calls, (unsigned long long)tr->max_calls, tr->idle,
           (unsigned long long)tr->reopened);
    print_load_stats("similarity", si, secs);
    if (rs && r->n)
        printf("load rss.server MB (pid %d, %d samples after the warm-up): first %.1f median %.1f "
               "last %.1f max %.1f growth %+.1f; %s (last <= first + %.1f and second-half median "
               "%.1f <= first-half median %.1f + %.1f)\n",
               rs->pid, r->n, r->first, r->median, r->last, r->max, r->growth,
               r->flat ? "flat" : "NOT flat", r->tol, r->half2, r->half1, r->tol);
    else if (rs)
        printf("load rss.server: no samples after the warm-up%s%s\n", rs->error[0] ? ": " : "",
               rs->error);
    printf("load status.after: %s%s%s\n", status_ok ? "OK" : siam_rpc_code_name(status_st->code),
           status_ok ? "" : ": ", status_ok ? "" : status_st->msg);
    if (!c->json)
        return;
    const bench_percentiles *tl = &tr->lat, *sl = &si->lat;
    printf("{\"suite\": \"load\", \"server\": \"%s\", \"streams\": %d, \"callers\": %d, "
           "\"batch\": %d, \"dim\": %d, \"channels\": \"%s\", \"warmup_s\": %.1f, "
           "\"seconds\": %.1f, \"failures\": %llu, "
           "\"train_calls\": %llu, \"train_failures\": %llu, \"train_reopened\": %llu, "
           "\"train_calls_per_s\": %.1f, \"train_pairs_per_s\": %.0f, "
           "\"train_p50_ms\": %.3f, \"train_p90_ms\": %.3f, \"train_p99_ms\": %.3f, "
           "\"train_max_ms\": %.3f, \"stream_min_calls\": %llu, \"stream_max_calls\": %llu, "
           "\"streams_without_progress\": %d, "
           "\"similarity_calls\": %llu, \"similarity_failures\": %llu, "
           "\"similarity_calls_per_s\": %.1f, \"similarity_pairs_per_s\": %.0f, "
           "\"similarity_p50_ms\": %.3f, \"similarity_p90_ms\": %.3f, "
           "\"similarity_p99_ms\": %.3f, \"similarity_max_ms\": %.3f, "
           "\"callers_without_progress\": %d, \"status_after_ok\": %d",
           c->server, c->streams, c->callers, run->batch, c->dim, c->channels, (double)c->warmup,
           secs, (unsigned long long)(tr->failures + si->failures), (unsigned long long)tr->calls,
           (unsigned long long)tr->failures, (unsigned long long)tr->reopened,
           (double)tr->calls / secs, (double)tr->pairs / secs, tl->p50, tl->p90, tl->p99, tl->max,
           (unsigned long long)tr->min_calls, (unsigned long long)tr->max_calls, tr->idle,
           (unsigned long long)si->calls, (unsigned long long)si->failures,
           (double)si->calls / secs, (double)si->pairs / secs, sl->p50, sl->p90, sl->p99, sl->max,
           si->idle, status_ok);
    if (rs) {
        printf(", \"server_pid\": %d, \"rss_samples\": %d, \"rss_first_mb\": %.1f, "
               "\"rss_median_mb\": %.1f, \"rss_last_mb\": %.1f, \"rss_max_mb\": %.1f, "
               "\"rss_growth_mb\": %.1f, \"rss_tolerance_mb\": %.1f, "
               "\"rss_first_half_median_mb\": %.1f, \"rss_second_half_median_mb\": %.1f, "
               "\"rss_flat\": %d, \"rss_mb\": [",
               rs->pid, r->n, r->first, r->median, r->last, r->max, r->growth, r->tol, r->half1,
               r->half2, r->flat);
        for (int i = rs->n - r->n; i < rs->n; i++)
            printf("%s%.1f", i > rs->n - r->n ? ", " : "", rs->mb[i]);
        printf("]");
    }
    printf("}\n");
}

/* Starts n threads of fn over th[0..n); 0, or -1 when one could not start. */
static int load_start(load_thread *th, int n, load_run *run, int train, void *(*fn)(void *)) {
    for (int i = 0; i < n; i++) {
        th[i].run = run, th[i].index = i, th[i].train = train;
        if (pthread_create(&th[i].tid, NULL, fn, &th[i])) {
            fprintf(stderr, BENCH_PROG ": cannot start %s thread %d\n",
                    train ? "Train" : "Similarity", i);
            return -1;
        }
        th[i].started = 1;
    }
    return 0;
}

static void load_join(load_thread *th, int n) {
    for (int i = 0; i < n; i++)
        if (th[i].started)
            pthread_join(th[i].tid, NULL);
}

/* Status answers OK after the load. */
static int status_after(load_run *run, siam_rpc_status *st) {
    siam_rpc_channel *ch = run->shared;
    if (!ch && bench_channel_create(&ch, run->c->server, 0, st))
        return 0;
    siam_rpc_buf resp = {0};
    int ok = siam_rpc_call(ch, SIAM_METHOD_STATUS, NULL, 0, 10.0, &resp, st) == SIAM_RPC_OK;
    siam_rpc_buf_free(&resp);
    if (ch != run->shared)
        siam_rpc_channel_free(ch);
    return ok;
}

int bench_suite_load(const bench_config *c) {
    load_run run;
    memset(&run, 0, sizeof run);
    run.c = c;
    run.batch = c->batch ? c->batch : 128;
    run.channels = strcmp(c->channels, "shared") == 0       ? CH_SHARED
                   : strcmp(c->channels, "per-thread") == 0 ? CH_PER_THREAD
                                                            : CH_CONNECTIONS;
    pthread_mutex_init(&run.lock, NULL);
    atomic_init(&run.stop, 0);
    bench_rss_sampler *rs = NULL;
    if (c->server_pid > 0) {
        if (bench_rss_mb(c->server_pid) < 0) {
            fprintf(stderr,
                    BENCH_PROG ": --server-pid %d: cannot read /proc/%d/status (no such "
                               "process?)\n",
                    c->server_pid, c->server_pid);
            return 2;
        }
        rs = calloc(1, sizeof *rs);
    }
    load_thread *tr = calloc((size_t)c->streams + 1, sizeof *tr);
    load_thread *si = calloc((size_t)c->callers + 1, sizeof *si);
    int rc = (c->server_pid > 0 && !rs) || !tr || !si;
    for (int i = 0; i < LOAD_SIM_SIZES && !rc; i++)
        rc = !(run.sim_req[i] =
                   bench_similarity_request(load_sim_pairs[i], c->dim, &run.sim_len[i]));
    if (rc) {
        fprintf(stderr, BENCH_PROG ": out of memory\n");
        goto out;
    }
    siam_rpc_init();
    siam_rpc_status st = {0};
    if (run.channels == CH_SHARED && bench_channel_create(&run.shared, c->server, 0, &st)) {
        fprintf(stderr, BENCH_PROG ": %s\n", st.msg);
        siam_rpc_shutdown();
        rc = 1;
        goto out;
    }
    fprintf(stderr,
            BENCH_PROG ": load on %s: %d Train streams and %d Similarity callers, %.0f s warm-up "
                       "+ %.0f s\n",
            c->server, c->streams, c->callers, (double)c->warmup, (double)c->seconds);
    run.t_start = siam_now();
    run.t_measure = run.t_start + c->warmup;
    run.t_end = run.t_measure + c->seconds;
    if (rs) {
        rs->pid = c->server_pid, rs->t_start = run.t_start, rs->t_end = run.t_end;
        rs->stop = &run.stop;
        rc = bench_rss_start(rs);
    }
    if (rc || load_start(tr, c->streams, &run, 1, load_train_run) ||
        load_start(si, c->callers, &run, 0, load_similarity_run)) {
        atomic_store(&run.stop, 1);
        rc = 1;
    }
    load_join(tr, c->streams);
    load_join(si, c->callers);
    if (rs)
        bench_rss_join(rs);
    siam_rpc_status status_st = {0};
    int status_ok = !rc && status_after(&run, &status_st);
    siam_rpc_channel_free(run.shared);
    siam_rpc_shutdown();
    if (rc)
        goto out;

    load_stats ts, ss;
    bench_rss_stats r;
    if (load_gather(tr, c->streams, &ts) || load_gather(si, c->callers, &ss)) {
        fprintf(stderr, BENCH_PROG ": out of memory\n");
        rc = 1;
        goto out;
    }
    int skip = (int)(c->warmup + 0.5); /* samples at t = 0..warmup-1 are the warm-up's */
    if (rs)
        bench_rss_summary(rs->mb + (rs->n > skip ? skip : rs->n), rs->n > skip ? rs->n - skip : 0,
                          &r);
    print_load(c, &run, &ts, &ss, rs, &r, status_ok, &status_st);
    if (rs && rs->error[0])
        fprintf(stderr, BENCH_PROG ": %s\n", rs->error);
    rc = ts.failures || ss.failures || ts.idle || ss.idle || !status_ok || (rs && rs->error[0]);
out:
    for (int i = 0; tr && i < c->streams; i++)
        bench_samples_free(&tr[i].lat_ms);
    for (int i = 0; si && i < c->callers; i++)
        bench_samples_free(&si[i].lat_ms);
    for (int i = 0; i < LOAD_SIM_SIZES; i++)
        free(run.sim_req[i]);
    free(tr), free(si), free(rs);
    pthread_mutex_destroy(&run.lock);
    return rc;
}
