/* bench_search.c: suite search (issue 14), against a siam-server with a model and a gallery:
 *   - Search of one random query image (k = 5): latency p50/p99 and queries/s from one caller,
 *     and from --callers callers (their ratio is the concurrency of image inference);
 *   - Similarity of one pair of embeddings (dim 128) from one and from --callers callers (p50);
 *   - Similarity of one pair of images from one and from --callers callers (requests/s, ratio);
 *   - the gallery's re-embedding: this suite joins averaging as a worker (SyncWeights) and
 *     reports the global weights back unchanged, which closes a round; the time from the round's
 *     answer until Status says the gallery is embedded with that round, and the Search latency
 *     of one caller meanwhile (searches are answered from the previous version, not blocked).
 * Each window lasts --seconds (default 5). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_callers.h"
#include "bench_suites.h"
#include "bench_wire.h"
#include "siam/v1/siam.pb-c.h"
#include "siam_log.h"
#include "siam_model.h"
#include "siam_wire.h"

#define SEARCH_K          5
#define SEARCH_DIM        128 /* embedding Similarity: the mlp and cnn embedding size */
#define READY_TIMEOUT_S   900.0
#define REEMBED_LIMIT_S   900.0
#define REEMBED_WORKER    "siam-bench-reembed"
#define STATUS_POLL_S     0.005
#define SYNC_CALL_TIMEOUT 600.0

static void nap(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static int check_search(const siam_rpc_buf *resp, const void *ctx, siam_rpc_status *st) {
    (void)ctx;
    return bench_check_search(resp, 1, SEARCH_K, st);
}

static int check_pair(const siam_rpc_buf *resp, const void *ctx, siam_rpc_status *st) {
    (void)ctx;
    return bench_check_similarity(resp, 1, st);
}

static int get_status(siam_rpc_channel *ch, Siam__V1__StatusResponse **out, siam_rpc_status *st) {
    static const uint8_t empty[1];
    siam_rpc_buf resp = {0};
    *out = NULL;
    int code = siam_rpc_call(ch, SIAM_METHOD_STATUS, empty, 0, 10.0, &resp, st);
    if (code != SIAM_RPC_OK)
        return code;
    *out = siam__v1__status_response__unpack(NULL, resp.len, resp.data);
    siam_rpc_buf_free(&resp);
    return *out ? SIAM_RPC_OK
                : siam_rpc_status_set(st, SIAM_RPC_INTERNAL, "the Status answer does not parse");
}

/* Waits until Search answers (a gallery loaded at start is embedded the first time meanwhile:
 * UNAVAILABLE). 0, or -1 after printing why. */
static int wait_ready(const bench_config *c, siam_rpc_channel *ch, const uint8_t *req, size_t len) {
    double t0 = siam_now();
    int said = 0;
    while (1) {
        siam_rpc_buf resp = {0};
        siam_rpc_status st = {0};
        int code = siam_rpc_call(ch, SIAM_METHOD_SEARCH, req, len, 60.0, &resp, &st);
        if (code == SIAM_RPC_OK)
            code = bench_check_search(&resp, 1, SEARCH_K, &st);
        siam_rpc_buf_free(&resp);
        if (code == SIAM_RPC_OK) {
            if (said)
                printf("search ready_after %.1f s\n", siam_now() - t0);
            return 0;
        }
        if (code != SIAM_RPC_UNAVAILABLE || siam_now() - t0 > READY_TIMEOUT_S) {
            fprintf(stderr,
                    BENCH_PROG ": Search at %s: %s: %s (start siam-server with a model, "
                               "--model or --resume, and a gallery, --gallery IMAGES "
                               "--gallery-labels LABELS)\n",
                    c->server, siam_rpc_code_name(code), st.msg);
            return -1;
        }
        if (!said++)
            fprintf(stderr, BENCH_PROG ": waiting for the gallery: %s\n", st.msg);
        nap(0.5);
    }
}

/* One figure's two runs: 1 caller and c->callers callers. 0, or -1 (out of memory). */
static int run_two(const bench_config *c, bench_calls *b, bench_calls_result *one,
                   bench_calls_result *many) {
    b->callers = 1;
    if (bench_calls_run(b, one))
        return -1;
    b->callers = c->callers;
    return bench_calls_run(b, many);
}

/* A SyncWeights call: the update packed, the answer unpacked into *g. */
static int sync_call(siam_rpc_channel *ch, const Siam__V1__WeightsUpdate *u,
                     Siam__V1__GlobalWeights **g, siam_rpc_status *st) {
    size_t len = siam__v1__weights_update__get_packed_size(u);
    uint8_t *buf = malloc(len ? len : 1);
    siam_rpc_buf resp = {0};
    *g = NULL;
    if (!buf)
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED, "out of memory");
    siam__v1__weights_update__pack(u, buf);
    int code = siam_rpc_call(ch, SIAM_METHOD_SYNC_WEIGHTS, buf, len, SYNC_CALL_TIMEOUT, &resp, st);
    free(buf);
    if (code != SIAM_RPC_OK)
        return code;
    *g = siam__v1__global_weights__unpack(NULL, resp.len, resp.data);
    siam_rpc_buf_free(&resp);
    return *g ? SIAM_RPC_OK
              : siam_rpc_status_set(st, SIAM_RPC_INTERNAL, "the SyncWeights answer does not parse");
}

/* Searches back to back on its own channel until stop, for the latency while re-embedding. */
typedef struct {
    const bench_config *c;
    const uint8_t *req;
    size_t len;
    atomic_int stop;
    bench_samples lat_us;
    uint64_t failures;
} background;

static void *background_run(void *arg) {
    background *bg = arg;
    siam_rpc_channel *ch = NULL;
    siam_rpc_status st = {0};
    if (bench_channel_create(&ch, bg->c->server, 0, &st) != 0) {
        bg->failures++;
        return NULL;
    }
    while (!atomic_load(&bg->stop)) {
        siam_rpc_buf resp = {0};
        double t0 = siam_now();
        int code = siam_rpc_call(ch, SIAM_METHOD_SEARCH, bg->req, bg->len, 60.0, &resp, &st);
        double us = (siam_now() - t0) * 1e6;
        siam_rpc_buf_free(&resp);
        if (code != SIAM_RPC_OK || bench_samples_push(&bg->lat_us, us))
            bg->failures++;
    }
    siam_rpc_channel_free(ch);
    return NULL;
}

typedef struct {
    uint64_t round;
    double seconds;
    bench_percentiles during;
    uint64_t failures;
} reembed_result;

/* Closes one averaging round with the global weights unchanged and times the re-embedding of the
 * gallery. 0, or -1 after printing why. */
static int reembed(const bench_config *c, siam_rpc_channel *ch, const char *spec,
                   const uint8_t *req, size_t len, reembed_result *out) {
    siam_error err = {0};
    siam_rpc_status st = {0};
    size_t n_params = 0;
    if (siam_model_spec_parse(spec, NULL, &n_params, &err) != SIAM_OK) {
        fprintf(stderr, BENCH_PROG ": the server's model spec '%s': %s\n", spec, err.msg);
        return -1;
    }
    float *zeros = calloc(n_params, sizeof *zeros);
    Siam__V1__GlobalWeights *g0 = NULL, *g1 = NULL;
    int rc = -1;
    if (!zeros) {
        fprintf(stderr, BENCH_PROG ": out of memory\n");
        return -1;
    }
    Siam__V1__WeightsUpdate u = SIAM__V1__WEIGHTS_UPDATE__INIT;
    u.worker_id = REEMBED_WORKER;
    u.model_spec = (char *)spec;
    u.n_params = n_params;
    u.params = zeros; /* a join: the server keeps its model and answers it */
    if (sync_call(ch, &u, &g0, &st) != SIAM_RPC_OK || g0->n_params != n_params) {
        fprintf(stderr, BENCH_PROG ": SyncWeights (join) at %s: %s: %s\n", c->server,
                siam_rpc_code_name(st.code), g0 ? "parameter count differs" : st.msg);
        goto done;
    }
    u.params = g0->params; /* reported back unchanged: the round's average is the same model */
    u.samples = 1;
    u.step = 1;
    u.round = g0->round;
    if (sync_call(ch, &u, &g1, &st) != SIAM_RPC_OK) {
        fprintf(stderr, BENCH_PROG ": SyncWeights (report) at %s: %s: %s\n", c->server,
                siam_rpc_code_name(st.code), st.msg);
        goto done;
    }
    double t0 = siam_now();
    background bg = {.c = c, .req = req, .len = len};
    pthread_t tid;
    int bg_started = pthread_create(&tid, NULL, background_run, &bg) == 0;
    out->round = g1->round;
    out->seconds = -1;
    while (siam_now() - t0 < REEMBED_LIMIT_S) {
        Siam__V1__StatusResponse *s = NULL;
        if (get_status(ch, &s, &st) == SIAM_RPC_OK) {
            int done = s->gallery_round >= g1->round;
            siam__v1__status_response__free_unpacked(s, NULL);
            if (done) {
                out->seconds = siam_now() - t0;
                break;
            }
        }
        nap(STATUS_POLL_S);
    }
    atomic_store(&bg.stop, 1);
    if (bg_started)
        pthread_join(tid, NULL);
    bench_percentiles_of(&bg.lat_us, &out->during);
    bench_samples_free(&bg.lat_us);
    out->failures = bg.failures + !bg_started;
    if (out->seconds < 0) {
        fprintf(stderr,
                BENCH_PROG ": the gallery was not re-embedded with round %llu within %.0f s "
                           "(Status gallery_round)\n",
                (unsigned long long)g1->round, REEMBED_LIMIT_S);
        goto done;
    }
    rc = 0;
done:
    free(zeros);
    if (g0)
        siam__v1__global_weights__free_unpacked(g0, NULL);
    if (g1)
        siam__v1__global_weights__free_unpacked(g1, NULL);
    return rc;
}

static void row(const char *name, double value, const char *unit) {
    printf("search %s %.*f %s\n", name, value < 100 ? 3 : 0, value, unit);
}

static uint64_t fails(const bench_calls_result *a, const bench_calls_result *b) {
    return a->failures + b->failures;
}

int bench_suite_search(const bench_config *c) {
    siam_rpc_channel *ch = NULL;
    siam_rpc_status st = {0};
    Siam__V1__StatusResponse *s = NULL;
    uint8_t *search_req = NULL, *emb_req = NULL, *img_req = NULL;
    size_t search_len = 0, emb_len = 0, img_len = 0;
    int rc = 1, h = 0, w = 0, ch_n = 0;
    char tail;
    siam_rpc_init();
    if (bench_channel_create(&ch, c->server, 0, &st) != 0 ||
        get_status(ch, &s, &st) != SIAM_RPC_OK) {
        fprintf(stderr, BENCH_PROG ": siam-server at %s: %s: %s\n", c->server,
                siam_rpc_code_name(st.code), st.msg);
        goto done;
    }
    if (sscanf(s->input_shape, "%dx%dx%d%c", &h, &w, &ch_n, &tail) != 3 || h < 1 || w < 1 ||
        ch_n < 1) {
        fprintf(stderr,
                BENCH_PROG ": siam-server at %s has no model (input shape '%s'): start it with "
                           "--model cnn or --resume CKPT, and --gallery IMAGES --gallery-labels "
                           "LABELS\n",
                c->server, s->input_shape);
        goto done;
    }
    size_t image_bytes = (size_t)h * (size_t)w * (size_t)ch_n;
    search_req = bench_search_request(1, image_bytes, SEARCH_K, 7, &search_len);
    emb_req = bench_similarity_request(1, SEARCH_DIM, &emb_len);
    img_req = bench_similarity_images_request(1, image_bytes, &img_len);
    if (!search_req || !emb_req || !img_req) {
        fprintf(stderr, BENCH_PROG ": out of memory\n");
        goto done;
    }
    if (wait_ready(c, ch, search_req, search_len))
        goto done;
    siam__v1__status_response__free_unpacked(s, NULL);
    if (get_status(ch, &s, &st) != SIAM_RPC_OK) {
        fprintf(stderr, BENCH_PROG ": Status: %s\n", st.msg);
        goto done;
    }
    printf("search gallery %llu items, model %s (%s), round %llu, %d callers, %.1f s windows\n",
           (unsigned long long)s->gallery_size, s->model_spec, s->input_shape,
           (unsigned long long)s->round, c->callers, (double)c->seconds);
    fflush(stdout);

    bench_calls b = {.server = c->server, .seconds = c->seconds};
    bench_calls_result s1, sn, e1, en, i1, in;
    b.method = SIAM_METHOD_SEARCH, b.rpc = "Search", b.req = search_req, b.len = search_len;
    b.check = check_search;
    if (run_two(c, &b, &s1, &sn))
        goto oom;
    b.method = SIAM_METHOD_SIMILARITY, b.rpc = "Similarity", b.req = emb_req, b.len = emb_len;
    b.check = check_pair;
    if (run_two(c, &b, &e1, &en))
        goto oom;
    b.req = img_req, b.len = img_len;
    if (run_two(c, &b, &i1, &in))
        goto oom;
    uint64_t failures = fails(&s1, &sn) + fails(&e1, &en) + fails(&i1, &in);
    row("search.c1.p50", s1.lat_us.p50, "us");
    row("search.c1.p99", s1.lat_us.p99, "us");
    row("search.c1.qps", s1.calls_per_s, "queries/s");
    row("search.cN.qps", sn.calls_per_s, "queries/s");
    row("search.cN.p50", sn.lat_us.p50, "us");
    row("search.cN.p99", sn.lat_us.p99, "us");
    row("search.ratio", s1.calls_per_s > 0 ? sn.calls_per_s / s1.calls_per_s : 0, "x");
    row("similarity_emb.c1.p50", e1.lat_us.p50, "us");
    row("similarity_emb.c1.rps", e1.calls_per_s, "requests/s");
    row("similarity_emb.cN.p50", en.lat_us.p50, "us");
    row("similarity_emb.cN.rps", en.calls_per_s, "requests/s");
    row("similarity_img.c1.p50", i1.lat_us.p50, "us");
    row("similarity_img.c1.rps", i1.calls_per_s, "requests/s");
    row("similarity_img.cN.rps", in.calls_per_s, "requests/s");
    row("similarity_img.ratio", i1.calls_per_s > 0 ? in.calls_per_s / i1.calls_per_s : 0, "x");
    fflush(stdout);

    reembed_result re = {0};
    if (reembed(c, ch, s->model_spec, search_req, search_len, &re))
        goto done;
    failures += re.failures;
    row("reembed.seconds", re.seconds, "s");
    row("reembed.search_p50", re.during.p50, "us");
    row("reembed.search_p99", re.during.p99, "us");
    row("reembed.search_max", re.during.max, "us");
    printf("search reembed.searches %zu calls\n", re.during.n);
    if (c->json)
        printf("{\"suite\": \"search\", \"server\": \"%s\", \"gallery_size\": %llu, "
               "\"input_shape\": \"%s\", \"callers\": %d, \"seconds\": %.2f, \"failures\": %llu, "
               "\"search_c1_p50_us\": %.1f, \"search_c1_p99_us\": %.1f, \"search_c1_qps\": %.1f, "
               "\"search_cN_qps\": %.1f, \"search_cN_p50_us\": %.1f, \"search_cN_p99_us\": %.1f, "
               "\"search_ratio\": %.3f, \"similarity_emb_c1_p50_us\": %.1f, "
               "\"similarity_emb_c1_rps\": %.1f, \"similarity_emb_cN_p50_us\": %.1f, "
               "\"similarity_emb_cN_rps\": %.1f, \"similarity_img_c1_p50_us\": %.1f, "
               "\"similarity_img_c1_rps\": %.1f, \"similarity_img_cN_rps\": %.1f, "
               "\"similarity_img_ratio\": %.3f, \"reembed_round\": %llu, \"reembed_s\": %.3f, "
               "\"reembed_search_p50_us\": %.1f, \"reembed_search_p99_us\": %.1f, "
               "\"reembed_search_max_us\": %.1f, \"reembed_searches\": %zu}\n",
               c->server, (unsigned long long)s->gallery_size, s->input_shape, c->callers,
               (double)c->seconds, (unsigned long long)failures, s1.lat_us.p50, s1.lat_us.p99,
               s1.calls_per_s, sn.calls_per_s, sn.lat_us.p50, sn.lat_us.p99,
               s1.calls_per_s > 0 ? sn.calls_per_s / s1.calls_per_s : 0, e1.lat_us.p50,
               e1.calls_per_s, en.lat_us.p50, en.calls_per_s, i1.lat_us.p50, i1.calls_per_s,
               in.calls_per_s, i1.calls_per_s > 0 ? in.calls_per_s / i1.calls_per_s : 0,
               (unsigned long long)re.round, re.seconds, re.during.p50, re.during.p99,
               re.during.max, re.during.n);
    rc = failures ? 1 : 0;
    goto done;
oom:
    fprintf(stderr, BENCH_PROG ": out of memory\n");
done:
    if (s)
        siam__v1__status_response__free_unpacked(s, NULL);
    free(search_req);
    free(emb_req);
    free(img_req);
    siam_rpc_channel_free(ch);
    siam_rpc_shutdown();
    return rc;
}
