/* bench_similarity.c: suite similarity, a load generator for siam-server's Similarity: pairs of
 * embeddings, or with --images pairs of raw images that the server embeds with its model. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_stats.h"
#include "bench_suites.h"
#include "bench_wire.h"
#include "siam_log.h"
#include "siam_service.h"
#include "siam_wire.h"

/* One caller: its own channel (so its own connection), sending the shared pre-encoded request
 * back to back. */
typedef struct {
    const bench_config *c;
    const uint8_t *req; /* the pre-encoded SimilarityRequest, shared */
    size_t req_len;
    pthread_barrier_t *start;
    bench_samples lat_us; /* latency of every OK call in the timed window */
    uint64_t failures;
    siam_rpc_status first_failure;
} caller;

static void caller_fail(caller *k, const siam_rpc_status *st) {
    if (k->failures++ == 0)
        k->first_failure = *st;
}

/* The untimed first call (it connects): OK and an answer for every pair. */
static int caller_warm_up(caller *k, siam_rpc_channel *ch) {
    siam_rpc_buf resp = {0};
    siam_rpc_status st = {0};
    int code = siam_rpc_call(ch, SIAM_METHOD_SIMILARITY, k->req, k->req_len, 10.0, &resp, &st);
    if (code == SIAM_RPC_OK)
        code = bench_check_similarity(&resp, k->c->pairs, &st);
    siam_rpc_buf_free(&resp);
    if (code != SIAM_RPC_OK)
        caller_fail(k, &st);
    return code == SIAM_RPC_OK ? 0 : -1;
}

static void *caller_run(void *arg) {
    caller *k = arg;
    siam_rpc_channel *ch = NULL;
    siam_rpc_status st = {0};
    int ready = 0;
    if (bench_channel_create(&ch, k->c->server, 0, &st) == 0)
        ready = caller_warm_up(k, ch) == 0;
    else
        caller_fail(k, &st);
    pthread_barrier_wait(k->start);
    double end = siam_now() + k->c->seconds;
    while (ready && siam_now() < end) {
        siam_rpc_buf resp = {0};
        st = (siam_rpc_status){0};
        double t0 = siam_now();
        int code = siam_rpc_call(ch, SIAM_METHOD_SIMILARITY, k->req, k->req_len, 10.0, &resp, &st);
        double us = (siam_now() - t0) * 1e6;
        siam_rpc_buf_free(&resp);
        if (code != SIAM_RPC_OK)
            caller_fail(k, &st);
        else if (bench_samples_push(&k->lat_us, us))
            caller_fail(k, &(siam_rpc_status){SIAM_RPC_RESOURCE_EXHAUSTED, "out of memory"});
    }
    siam_rpc_channel_free(ch);
    return NULL;
}

/* Runs the callers; fills their latencies and failures and *elapsed (s). */
static int run_callers(const bench_config *c, caller *k, const uint8_t *req, size_t len,
                       double *elapsed) {
    pthread_t *tid = calloc((size_t)c->callers, sizeof *tid);
    pthread_barrier_t start;
    if (!tid || pthread_barrier_init(&start, NULL, (unsigned)c->callers + 1)) {
        free(tid);
        return -1;
    }
    int started = 0;
    for (; started < c->callers; started++) {
        k[started] = (caller){.c = c, .req = req, .req_len = len, .start = &start};
        if (pthread_create(&tid[started], NULL, caller_run, &k[started]))
            break;
    }
    if (started < c->callers) { /* the barrier waits for all of them: give up */
        fprintf(stderr, BENCH_PROG ": cannot start caller thread %d\n", started + 1);
        exit(1);
    }
    pthread_barrier_wait(&start);
    double t0 = siam_now();
    for (int i = 0; i < c->callers; i++)
        pthread_join(tid[i], NULL);
    *elapsed = siam_now() - t0;
    pthread_barrier_destroy(&start);
    free(tid);
    return 0;
}

/* Every caller's latencies in all, so the percentiles are over all calls; the failures summed
 * in *failures, the first one printed. Frees the callers' lists. -1 when out of memory. */
static int gather_callers(const bench_config *c, caller *k, bench_samples *all,
                          uint64_t *failures) {
    int rc = 0;
    *failures = 0;
    for (int i = 0; i < c->callers; i++) {
        if (!rc)
            rc = bench_samples_append(all, &k[i].lat_us);
        if (k[i].failures && !*failures)
            fprintf(stderr, BENCH_PROG ": Similarity at %s failed: %s: %s\n", c->server,
                    siam_rpc_code_name(k[i].first_failure.code), k[i].first_failure.msg);
        *failures += k[i].failures;
        bench_samples_free(&k[i].lat_us);
    }
    return rc;
}

static void print_similarity(const bench_config *c, uint64_t failures, double elapsed,
                             const bench_percentiles *p) {
    double rps = (double)p->n / elapsed;
    char shape[32]; /* what a pair is: its embedding dimension, or images */
    if (c->images)
        snprintf(shape, sizeof shape, "images=28x28");
    else
        snprintf(shape, sizeof shape, "dim=%d", c->dim);
    printf("similarity callers=%d pairs=%d %s: %.0f requests/s, %.0f pairs/s, latency p50 "
           "%.0f us, p99 %.0f us (%llu calls in %.1f s, %llu failed)\n",
           c->callers, c->pairs, shape, rps, rps * c->pairs, p->p50, p->p99,
           (unsigned long long)p->n, elapsed, (unsigned long long)failures);
    if (c->json)
        printf("{\"suite\": \"similarity\", \"server\": \"%s\", \"callers\": %d, \"pairs\": %d, "
               "\"%s\": %d, \"seconds\": %.2f, \"calls\": %llu, \"failures\": %llu, "
               "\"requests_per_s\": %.1f, \"pairs_per_s\": %.1f, \"p50_us\": %.1f, "
               "\"p99_us\": %.1f}\n",
               c->server, c->callers, c->pairs, c->images ? "images" : "dim",
               c->images ? 1 : c->dim, elapsed, (unsigned long long)p->n,
               (unsigned long long)failures, rps, rps * c->pairs, p->p50, p->p99);
}

int bench_suite_similarity(const bench_config *c) {
    size_t len = 0;
    uint64_t failures = 0;
    uint8_t *req = c->images ? bench_similarity_image_request(c->pairs, &len)
                             : bench_similarity_request(c->pairs, c->dim, &len);
    caller *k = calloc((size_t)c->callers, sizeof *k);
    bench_samples all = {0};
    double elapsed = 0;
    siam_rpc_init();
    int rc = !req || !k || run_callers(c, k, req, len, &elapsed);
    siam_rpc_shutdown();
    if (!rc)
        rc = gather_callers(c, k, &all, &failures);
    free(req);
    free(k);
    if (rc) {
        bench_samples_free(&all);
        fprintf(stderr, BENCH_PROG ": out of memory\n");
        return 1;
    }
    bench_percentiles p;
    bench_percentiles_of(&all, &p);
    bench_samples_free(&all);
    print_similarity(c, failures, elapsed, &p);
    return failures ? 1 : 0;
}
