/* bench_similarity.c: suite similarity, a load generator for siam-server's Similarity: pairs of
 * embeddings, or with --images pairs of raw images that the server embeds with its model. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_callers.h"
#include "bench_suites.h"
#include "bench_wire.h"
#include "siam_log.h"
#include "siam_wire.h"

/* bench_check_fn: a SimilarityResponse with one distance and one score per pair */
static int check_pairs(const siam_rpc_buf *resp, const void *ctx, siam_rpc_status *st) {
    return bench_check_similarity(resp, *(const int *)ctx, st);
}

static void print_similarity(const bench_config *c, const bench_calls_result *r) {
    const bench_percentiles *p = &r->lat_us;
    double rps = r->calls_per_s;
    char shape[32]; /* what a pair is: its embedding dimension, or images */
    if (c->images)
        snprintf(shape, sizeof shape, "images=28x28");
    else
        snprintf(shape, sizeof shape, "dim=%d", c->dim);
    printf("similarity callers=%d pairs=%d %s: %.0f requests/s, %.0f pairs/s, latency p50 "
           "%.0f us, p99 %.0f us (%llu calls in %.1f s, %llu failed)\n",
           c->callers, c->pairs, shape, rps, rps * c->pairs, p->p50, p->p99,
           (unsigned long long)p->n, r->elapsed, (unsigned long long)r->failures);
    if (c->json)
        printf("{\"suite\": \"similarity\", \"server\": \"%s\", \"callers\": %d, \"pairs\": %d, "
               "\"%s\": %d, \"seconds\": %.2f, \"calls\": %llu, \"failures\": %llu, "
               "\"requests_per_s\": %.1f, \"pairs_per_s\": %.1f, \"p50_us\": %.1f, "
               "\"p99_us\": %.1f}\n",
               c->server, c->callers, c->pairs, c->images ? "images" : "dim",
               c->images ? 1 : c->dim, r->elapsed, (unsigned long long)p->n,
               (unsigned long long)r->failures, rps, rps * c->pairs, p->p50, p->p99);
}

int bench_suite_similarity(const bench_config *c) {
    size_t len = 0;
    uint8_t *req = c->images ? bench_similarity_image_request(c->pairs, &len)
                             : bench_similarity_request(c->pairs, c->dim, &len);
    bench_calls b = {.server = c->server,
                     .method = SIAM_METHOD_SIMILARITY,
                     .rpc = "Similarity",
                     .req = req,
                     .len = len,
                     .check = check_pairs,
                     .check_ctx = &c->pairs,
                     .callers = c->callers,
                     .seconds = c->seconds};
    bench_calls_result r;
    siam_rpc_init();
    int rc = !req || bench_calls_run(&b, &r);
    siam_rpc_shutdown();
    free(req);
    if (rc) {
        fprintf(stderr, BENCH_PROG ": out of memory\n");
        return 1;
    }
    print_similarity(c, &r);
    return r.failures ? 1 : 0;
}
