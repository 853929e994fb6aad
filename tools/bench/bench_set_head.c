/* bench_set_head.c: suite set-head, the set loss head (TrainSet's) on one thread.
 *   loss     siam_set_loss alone (distances, mining, gradients, its n x n workspace) for every
 *            loss and both distances at n = 256 (P x K = 32 x 8 group ids) and dim 64 and 128;
 *            then one loss (semi-hard, Euclidean, dim 64) at n = 1024 and 4096 (K = 8 images per
 *            group, P = n / 8 groups) for its growth with n;
 *   request  the server's whole TrainSet request path in process (siam_service_train_set:
 *            decode, validate, the loss, encode), n = 256, dim 64, every loss (Euclidean);
 *   rpc      TrainSet end to end: one stream over loopback to an in-process server (lib/net with
 *            one completion-queue thread, the handler siam-server registers), each set sent,
 *            computed and answered before the next; n = 256, dim 64, every loss (Euclidean).
 * The sets are random unit vectors (Gaussian, normalised) from a seeded generator, with a random
 * id per group and the images of the groups shuffled over the set, as a worker's P x K batch with
 * fresh ids. Per row: calls/s (the median over --reps windows of about 0.2 s each, after a
 * warm-up), microseconds per call (p50 and p90 over every timed call), images/s (n per call) and
 * the terms the loss covers per second: contrastive pairs n(n-1)/2, batch-all and semi-hard the
 * valid triplets (both scan every one), batch-hard anchors (siam_set_loss_stats). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_stats.h"
#include "bench_suites.h"
#include "bench_wire.h"
#include "siam_memory.h"
#include "siam_rng.h"
#include "siam_service.h"
#include "siam_set_loss.h"
#include "siam_tensor.h"
#include "siam_wire.h"

#define SET_N        256 /* the set size */
#define SET_K        8   /* images per group: P x K = 32 x 8 at n = 256 */
#define SET_SEED     13
#define SET_RPC_DIM  64
#define SET_TIMEOUT  60.0 /* seconds an exchange may take before it counts as failed */
#define SET_GROWTH_N 1024 /* the first growth row; then 4x up to --batch */

static const char *const set_losses[] = {"contrastive", "batch-all", "batch-hard", "semi-hard",
                                         "batch-hard-soft"};
#define SET_LOSSES      ((int)(sizeof set_losses / sizeof set_losses[0]))
#define SET_GROWTH_LOSS "semi-hard"

typedef enum { PATH_LOSS, PATH_REQUEST, PATH_RPC } set_path;
static const char *const path_names[] = {"loss", "request", "rpc"};

/* One measured configuration. */
typedef struct {
    set_path path;
    const char *loss;
    siam_set_distance distance;
    int n, dim;
    double calls_per_s;
    bench_percentiles us; /* per call, microseconds */
    double terms;         /* per call */
    const char *term;     /* what a term is: pairs, triplets, anchors */
    double active;        /* fraction of the terms with a nonzero loss */
} set_row;

static set_row set_row_of(set_path path, const char *loss, siam_set_distance distance, int n,
                          int dim) {
    set_row r;
    memset(&r, 0, sizeof r);
    r.path = path, r.loss = loss, r.distance = distance, r.n = n, r.dim = dim;
    return r;
}

/* What one timed call needs, for every path. */
typedef struct {
    int n, dim;
    float *x, *grad;
    uint32_t *ids;
    siam_set_loss_config cfg;
    siam_set_loss_stats stats;
    siam_error err;
    uint8_t *req; /* the set as a packed EmbeddingSet */
    size_t req_len;
    siam_service *svc;
    siam_train_stream ts; /* request: the stream siam_service_train_set keeps */
    siam_rpc_stream *s;   /* rpc */
    siam_rpc_status st;   /* of the last request or exchange */
} set_bench;

static void set_bench_free(set_bench *b) {
    siam_free(b->x), siam_free(b->grad);
    free(b->ids);
    free(b->req);
    b->x = b->grad = NULL, b->ids = NULL, b->req = NULL;
}

/* n random unit vectors of dim floats and P x K group ids (n / K groups of K), seeded. */
static void random_set(uint64_t seed, int n, int dim, float *x, uint32_t *ids) {
    siam_rng r;
    siam_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        float *row = x + (size_t)i * (size_t)dim;
        double norm = 0;
        for (int k = 0; k < dim; k += 2) { /* Box-Muller: two Gaussians per two uniforms */
            double u1 = 1.0 - (double)siam_rng_uniform(&r), u2 = (double)siam_rng_uniform(&r);
            double rad = sqrt(-2.0 * log(u1)), a = 6.283185307179586 * u2; /* 2 pi */
            row[k] = (float)(rad * cos(a));
            if (k + 1 < dim)
                row[k + 1] = (float)(rad * sin(a));
        }
        for (int k = 0; k < dim; k++)
            norm += (double)row[k] * row[k];
        float inv = norm > 0 ? (float)(1.0 / sqrt(norm)) : 0.0f;
        for (int k = 0; k < dim; k++)
            row[k] *= inv;
    }
    /* a fresh random id per group (distinct), K images each, scattered over the set */
    int P = n / SET_K;
    for (int g = 0; g < P; g++) {
        uint32_t id;
        int dup;
        do {
            id = (uint32_t)siam_rng_u64(&r);
            dup = 0;
            for (int h = 0; h < g && !dup; h++)
                dup = ids[h * SET_K] == id;
        } while (dup);
        for (int k = 0; k < SET_K; k++)
            ids[g * SET_K + k] = id;
    }
    for (int i = P * SET_K; i < n; i++) /* n not a multiple of K: the rest join the last group */
        ids[i] = ids[(P - 1) * SET_K];
    siam_rng_shuffle_u32(&r, ids, (uint64_t)n);
}

/* A set of n x dim (n >= 2 * SET_K) and its packed request: 0, or -1 when out of memory. */
static int set_bench_init(set_bench *b, int n, int dim) {
    set_bench_free(b);
    b->n = n, b->dim = dim;
    size_t nd = (size_t)n * (size_t)dim;
    b->x = siam_alloc_floats(nd), b->grad = siam_alloc_floats(nd);
    b->ids = malloc((size_t)n * sizeof *b->ids);
    if (!b->x || !b->grad || !b->ids)
        return -1;
    random_set(SET_SEED, n, dim, b->x, b->ids);
    b->req = bench_pack_set(b->x, b->ids, n, dim, "siam-bench-set", &b->req_len);
    return b->req ? 0 : -1;
}

/* what TrainSet computes for one set */
static int set_loss_call(void *ctx) {
    set_bench *b = ctx;
    float loss;
    return siam_set_loss(&loss, b->grad, &b->stats, b->x, b->ids, b->n, b->dim, &b->cfg, &b->err);
}

/* the server's whole TrainSet request: decode, validate, the loss, encode the answer */
static int set_request_call(void *ctx) {
    set_bench *b = ctx;
    siam_rpc_buf resp = {0};
    int rc = siam_service_train_set(b->svc, &b->ts, b->req, b->req_len, &resp, &b->st);
    siam_rpc_buf_free(&resp);
    return rc;
}

/* one exchange on the TrainSet stream: send the set, wait for its SetResult, check it */
static int set_rpc_call(void *ctx) {
    set_bench *b = ctx;
    siam_rpc_buf msg = {malloc(b->req_len), b->req_len}, resp = {0};
    if (!msg.data)
        return siam_rpc_status_set(&b->st, SIAM_RPC_RESOURCE_EXHAUSTED, "out of memory");
    memcpy(msg.data, b->req, b->req_len); /* the exchange takes the bytes */
    int rc = siam_rpc_stream_exchange(b->s, &msg, &resp, &b->st);
    if (rc == SIAM_RPC_OK)
        rc = bench_check_set_result(&resp, b->n, b->dim, &b->st);
    siam_rpc_buf_free(&resp);
    return rc;
}

/* The terms the loss covers per call, from the statistics of one call on the same set. */
static void set_terms(set_row *row, const siam_set_loss_stats *s, const siam_set_loss_config *cfg) {
    switch (cfg->mode) {
    case SIAM_SET_CONTRASTIVE:
        row->terms = (double)s->terms, row->term = "pairs";
        break;
    case SIAM_SET_BATCH_ALL:
    case SIAM_SET_SEMI_HARD:
        row->terms = (double)s->triplets, row->term = "triplets";
        break;
    default:
        row->terms = (double)s->terms, row->term = "anchors";
        break;
    }
    row->active = s->frac_active;
}

/* Measures fn on b for row (its loss and distance already in b->cfg): 0, or fn's first code. */
static int set_measure(set_row *row, int (*fn)(void *), set_bench *b, int reps) {
    float loss;
    if (siam_set_loss(&loss, b->grad, &b->stats, b->x, b->ids, b->n, b->dim, &b->cfg, &b->err))
        return -1;
    set_terms(row, &b->stats, &b->cfg);
    bench_samples lat = {0};
    int rc = bench_call_rate_lat(fn, b, reps, &row->calls_per_s, &lat);
    for (size_t i = 0; i < lat.n; i++)
        lat.v[i] *= 1e6;
    bench_percentiles_of(&lat, &row->us);
    bench_samples_free(&lat);
    return rc;
}

static void set_row_print(const set_row *r) {
    char name[128];
    snprintf(name, sizeof name, "%s.%s.%s.n%d.d%d", path_names[r->path], r->loss,
             r->distance == SIAM_SET_SQUARED ? "squared" : "euclidean", r->n, r->dim);
    printf("set-head %s.calls %.1f calls/s\n", name, r->calls_per_s);
    printf("set-head %s.p50 %.1f us\n", name, r->us.p50);
    printf("set-head %s.p90 %.1f us\n", name, r->us.p90);
    printf("set-head %s.images %.0f images/s\n", name, r->calls_per_s * r->n);
    printf("set-head %s.terms %.0f %s/s\n", name, r->calls_per_s * r->terms, r->term);
    printf("set-head %s.active %.3f fraction\n", name, r->active);
    fflush(stdout);
}

static void set_rows_json(const set_row *rows, int n_rows) {
    printf("{\"suite\": \"set-head\", \"max_n\": %d, \"workspace_bytes_at_max_n\": %.0f, "
           "\"rows\": [",
           SIAM_SET_LOSS_MAX_N, 2.0 * SIAM_SET_LOSS_MAX_N * SIAM_SET_LOSS_MAX_N * sizeof(float));
    for (int i = 0; i < n_rows; i++) {
        const set_row *r = &rows[i];
        printf("%s{\"path\": \"%s\", \"loss\": \"%s\", \"distance\": \"%s\", \"n\": %d, "
               "\"dim\": %d, \"calls_per_s\": %.1f, \"p50_us\": %.1f, \"p90_us\": %.1f, "
               "\"images_per_s\": %.0f, \"term\": \"%s\", \"terms_per_call\": %.0f, "
               "\"terms_per_s\": %.0f, \"active_fraction\": %.4f}",
               i ? ", " : "", path_names[r->path], r->loss,
               r->distance == SIAM_SET_SQUARED ? "squared" : "euclidean", r->n, r->dim,
               r->calls_per_s, r->us.p50, r->us.p90, r->calls_per_s * r->n, r->term, r->terms,
               r->calls_per_s * r->terms, r->active);
    }
    printf("]}\n");
}

/* TrainSet's stream handler, as siam-server registers it (without its log lines). */
static void *rpc_open(void *ctx, const siam_rpc_call_info *call) {
    (void)ctx, (void)call;
    return calloc(1, sizeof(siam_train_stream));
}

static int rpc_message(void *ctx, void *stream, const uint8_t *req, size_t len, siam_rpc_buf *resp,
                       siam_rpc_status *st) {
    if (!stream)
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "out of memory for a new stream");
    return siam_service_train_set(ctx, stream, req, len, resp, st);
}

static void rpc_close(void *ctx, void *stream, const siam_rpc_status *final) {
    (void) final;
    if (stream)
        siam_service_train_end(ctx, stream);
    free(stream);
}

/* The rpc rows: an in-process server for b->svc on a loopback port, one stream per loss.
 * Returns 0, or 1 with the reason printed. */
static int set_rpc_rows(set_bench *b, set_row *rows, int *n_rows, int reps) {
    static const siam_rpc_stream_handler handler = {rpc_open, rpc_message, rpc_close};
    siam_rpc_server_config sc = {.listen = "127.0.0.1:0", .threads = 1};
    siam_rpc_server *srv = NULL;
    siam_rpc_channel *ch = NULL;
    siam_error err = {0};
    char target[64];
    int port = 0, rc = 1;
    siam_rpc_init();
    if (siam_rpc_server_create(&srv, &sc, &err) ||
        siam_rpc_server_add_stream(srv, SIAM_METHOD_TRAIN_SET, &handler, b->svc, &err) ||
        siam_rpc_server_start(srv, &port, &err)) {
        fprintf(stderr, BENCH_PROG ": set-head: in-process server: %s\n", err.msg);
        goto done;
    }
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    if (bench_channel_create(&ch, target, 0, &b->st)) {
        fprintf(stderr, BENCH_PROG ": set-head: channel to %s: %s\n", target, b->st.msg);
        goto done;
    }
    for (int l = 0; l < SET_LOSSES; l++) {
        set_row *row = &rows[*n_rows];
        *row = set_row_of(PATH_RPC, set_losses[l], SIAM_SET_EUCLIDEAN, b->n, b->dim);
        b->cfg = siam_set_loss_default();
        siam_set_loss_parse(&b->cfg, row->loss, &err); /* a name from the list above */
        if (siam_service_set_set_loss(b->svc, &b->cfg, &err)) {
            fprintf(stderr, BENCH_PROG ": set-head: %s\n", err.msg);
            goto done;
        }
        if (siam_rpc_stream_open(ch, SIAM_METHOD_TRAIN_SET, SET_TIMEOUT, &b->s, &b->st)) {
            fprintf(stderr, BENCH_PROG ": set-head: opening a TrainSet stream: %s: %s\n",
                    siam_rpc_code_name(b->st.code), b->st.msg);
            goto done;
        }
        int mrc = set_measure(row, set_rpc_call, b, reps);
        if (mrc == SIAM_RPC_OK)
            mrc = siam_rpc_stream_close(b->s, &b->st);
        siam_rpc_stream_free(b->s);
        b->s = NULL;
        if (mrc) {
            fprintf(stderr, BENCH_PROG ": set-head: TrainSet %s over %s: %s: %s\n", row->loss,
                    target, siam_rpc_code_name(b->st.code), b->st.msg);
            goto done;
        }
        set_row_print(row);
        (*n_rows)++;
    }
    rc = 0;
done:
    siam_rpc_channel_free(ch);
    siam_rpc_server_free(srv);
    siam_rpc_shutdown();
    return rc;
}

int bench_suite_set_head(const bench_config *c) {
    siam_blas_set_threads(1);  /* one core: no OpenBLAS worker competes with the timed thread */
    siam_malloc_keep_memory(); /* as siam-server does */
    int max_n = c->batch;      /* the growth rows go 4x from SET_GROWTH_N up to max_n */
    set_row rows[2 * 2 * SET_LOSSES + 8 + 2 * SET_LOSSES];
    int n_rows = 0, rc = 1;
    set_bench b;
    memset(&b, 0, sizeof b);
    printf("set-head max_n %d embeddings\n", SIAM_SET_LOSS_MAX_N);
    printf("set-head workspace.n%d %.1f MiB\n", SIAM_SET_LOSS_MAX_N,
           2.0 * SIAM_SET_LOSS_MAX_N * SIAM_SET_LOSS_MAX_N * sizeof(float) / 1048576.0);
    if (siam_service_create(&b.svc, 1.0f, SIAM_LABELS_SIMILAR, 0.0f, SIAM_VERSION, NULL)) {
        fprintf(stderr, BENCH_PROG ": set-head: out of memory for the service\n");
        return 1;
    }

    /* the loss alone: every loss and distance at n = 256, dim 64 and 128 */
    static const int dims[] = {64, 128};
    for (int d = 0; d < 2; d++) {
        if (set_bench_init(&b, SET_N, dims[d]))
            goto nomem;
        for (int l = 0; l < SET_LOSSES; l++) {
            for (int dist = 0; dist < 2; dist++) {
                set_row *row = &rows[n_rows];
                *row =
                    set_row_of(PATH_LOSS, set_losses[l], (siam_set_distance)dist, SET_N, dims[d]);
                b.cfg = siam_set_loss_default();
                b.cfg.distance = row->distance;
                siam_set_loss_parse(&b.cfg, row->loss, &b.err);
                if (set_measure(row, set_loss_call, &b, c->reps))
                    goto failed;
                set_row_print(row);
                n_rows++;
            }
        }
    }
    /* its growth with n: one loss, K = 8 images per group */
    for (int n = SET_GROWTH_N; n <= max_n; n *= 4) {
        if (set_bench_init(&b, n, SET_RPC_DIM))
            goto nomem;
        set_row *row = &rows[n_rows];
        *row = set_row_of(PATH_LOSS, SET_GROWTH_LOSS, SIAM_SET_EUCLIDEAN, n, SET_RPC_DIM);
        b.cfg = siam_set_loss_default();
        siam_set_loss_parse(&b.cfg, row->loss, &b.err);
        if (set_measure(row, set_loss_call, &b, c->reps))
            goto failed;
        set_row_print(row);
        n_rows++;
    }

    /* the whole request path in process, then over loopback */
    if (set_bench_init(&b, SET_N, SET_RPC_DIM))
        goto nomem;
    for (int l = 0; l < SET_LOSSES; l++) {
        set_row *row = &rows[n_rows];
        *row = set_row_of(PATH_REQUEST, set_losses[l], SIAM_SET_EUCLIDEAN, SET_N, SET_RPC_DIM);
        b.cfg = siam_set_loss_default();
        siam_set_loss_parse(&b.cfg, row->loss, &b.err);
        if (siam_service_set_set_loss(b.svc, &b.cfg, &b.err))
            goto failed;
        int mrc = set_measure(row, set_request_call, &b, c->reps);
        if (mrc) {
            fprintf(stderr, BENCH_PROG ": set-head: siam_service_train_set %s: %s: %s\n", row->loss,
                    siam_rpc_code_name(mrc), b.st.msg);
            goto out;
        }
        set_row_print(row);
        n_rows++;
    }
    siam_service_train_end(b.svc, &b.ts);
    if (set_rpc_rows(&b, rows, &n_rows, c->reps))
        goto out;
    if (c->json)
        set_rows_json(rows, n_rows);
    rc = 0;
    goto out;
nomem:
    fprintf(stderr, BENCH_PROG ": set-head: out of memory for a set of %d x %d\n", b.n, b.dim);
    goto out;
failed:
    fprintf(stderr, BENCH_PROG ": set-head: %s\n", b.err.msg[0] ? b.err.msg : "out of memory");
out:
    set_bench_free(&b);
    siam_service_free(b.svc);
    return rc;
}
