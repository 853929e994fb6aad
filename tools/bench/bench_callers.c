/* bench_callers.c: concurrent callers of one unary method, each with its own channel. */
#include "bench_callers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_suites.h"
#include "bench_wire.h"
#include "siam_log.h"

typedef struct {
    const bench_calls *b;
    pthread_barrier_t *start;
    bench_samples lat_us;
    uint64_t failures;
    siam_rpc_status first_failure;
} caller;

static void caller_fail(caller *k, const siam_rpc_status *st) {
    if (k->failures++ == 0)
        k->first_failure = *st;
}

/* one call: its code, the answer checked */
static int call_once(caller *k, siam_rpc_channel *ch, siam_rpc_status *st) {
    siam_rpc_buf resp = {0};
    int code = siam_rpc_call(ch, k->b->method, k->b->req, k->b->len, 10.0, &resp, st);
    if (code == SIAM_RPC_OK && k->b->check)
        code = k->b->check(&resp, k->b->check_ctx, st);
    siam_rpc_buf_free(&resp);
    return code;
}

static void *caller_run(void *arg) {
    caller *k = arg;
    siam_rpc_channel *ch = NULL;
    siam_rpc_status st = {0};
    int ready = 0;
    if (bench_channel_create(&ch, k->b->server, 0, &st) == 0) {
        ready = call_once(k, ch, &st) == SIAM_RPC_OK; /* untimed: it connects */
        if (!ready)
            caller_fail(k, &st);
    } else {
        caller_fail(k, &st);
    }
    pthread_barrier_wait(k->start);
    double end = siam_now() + k->b->seconds;
    while (ready && siam_now() < end) {
        st = (siam_rpc_status){0};
        double t0 = siam_now();
        int code = call_once(k, ch, &st);
        double us = (siam_now() - t0) * 1e6;
        if (code != SIAM_RPC_OK)
            caller_fail(k, &st);
        else if (bench_samples_push(&k->lat_us, us))
            caller_fail(k, &(siam_rpc_status){SIAM_RPC_RESOURCE_EXHAUSTED, "out of memory"});
    }
    siam_rpc_channel_free(ch);
    return NULL;
}

int bench_calls_run(const bench_calls *b, bench_calls_result *out) {
    *out = (bench_calls_result){0};
    caller *k = calloc((size_t)b->callers, sizeof *k);
    pthread_t *tid = calloc((size_t)b->callers, sizeof *tid);
    pthread_barrier_t start;
    if (!k || !tid || pthread_barrier_init(&start, NULL, (unsigned)b->callers + 1)) {
        free(k);
        free(tid);
        return -1;
    }
    int started = 0;
    for (; started < b->callers; started++) {
        k[started] = (caller){.b = b, .start = &start};
        if (pthread_create(&tid[started], NULL, caller_run, &k[started]))
            break;
    }
    if (started < b->callers) { /* the barrier waits for all of them: give up */
        fprintf(stderr, BENCH_PROG ": cannot start caller thread %d\n", started + 1);
        exit(1);
    }
    pthread_barrier_wait(&start);
    double t0 = siam_now();
    for (int i = 0; i < b->callers; i++)
        pthread_join(tid[i], NULL);
    out->elapsed = siam_now() - t0;
    pthread_barrier_destroy(&start);
    free(tid);
    bench_samples all = {0};
    int rc = 0;
    for (int i = 0; i < b->callers; i++) {
        if (!rc)
            rc = bench_samples_append(&all, &k[i].lat_us);
        if (k[i].failures && !out->failures)
            fprintf(stderr, BENCH_PROG ": %s at %s failed: %s: %s\n", b->rpc, b->server,
                    siam_rpc_code_name(k[i].first_failure.code), k[i].first_failure.msg);
        out->failures += k[i].failures;
        bench_samples_free(&k[i].lat_us);
    }
    free(k);
    if (rc) {
        bench_samples_free(&all);
        return -1;
    }
    bench_percentiles_of(&all, &out->lat_us);
    bench_samples_free(&all);
    out->calls_per_s = out->elapsed > 0 ? (double)out->lat_us.n / out->elapsed : 0.0;
    return 0;
}
