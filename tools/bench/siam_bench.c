/* siam-bench: three suites, each a set of medians.
 *   local       OpenBLAS sgemm at the shapes the models use and the local training rate (both
 *               forward passes + backward + Adam, no network) of each model (the default);
 *   head        the server's loss head alone on one thread: the contrastive loss and its
 *               gradients, and the whole Train request path (decode, validate, compute, encode);
 *   similarity  a load generator for siam-server's Similarity: N callers, each with its own
 *               channel, sending one pre-encoded request back to back;
 *   load        siam-server under sustained mixed load: concurrent Train streams (one thread
 *               each) and Similarity callers for a timed window after a warm-up; calls, failures
 *               and latency percentiles per RPC, and the server's RSS sampled every second. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "siam/v1/siam.pb-c.h"
#include "siam_dataset.h"
#include "siam_log.h"
#include "siam_memory.h"
#include "siam_loss.h"
#include "siam_model.h"
#include "siam_options.h"
#include "siam_pairs.h"
#include "siam_rng.h"
#include "siam_rpc.h"
#include "siam_service.h"
#include "siam_tensor.h"
#include "siam_trainer.h"
#include "siam_wire.h"

#define PROG "siam-bench"

typedef struct {
    const char *suite, *data, *server;
    int threads, reps, scale, json;
    int batch, dim, callers, pairs;
    float seconds;
    const char *only;
    int streams, server_pid; /* load */
    float warmup;
    const char *channels;
} bench_config;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile (0 <= q <= 1) of v[0..n), n >= 1, interpolated between the two nearest ranks;
 * sorts v. q = 0.5 is the median (the mean of the two middle values when n is even). */
static double quantile(double *v, size_t n, double q) {
    qsort(v, n, sizeof *v, cmp_double);
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos, hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (pos - (double)lo) * (v[hi] - v[lo]);
}

static double median(double *v, int n) {
    return quantile(v, (size_t)n, 0.5);
}

/* GFLOP/s of C (M,N) = op(A) op(B) with inner dimension K, median of reps timings */
static double bench_sgemm(int ta, int tb, int M, int N, int K, int reps) {
    float *A = siam_alloc_floats((size_t)M * K), *B = siam_alloc_floats((size_t)K * N);
    float *C = siam_alloc_floats((size_t)M * N);
    double t[16];
    if (!A || !B || !C) {
        siam_free(A), siam_free(B), siam_free(C);
        return 0.0;
    }
    for (size_t i = 0; i < (size_t)M * K; i++)
        A[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)K * N; i++)
        B[i] = (float)(i % 5) * 0.1f;
    double flop = 2.0 * M * N * K;
    int inner = (int)(2e8 / flop) + 1; /* ~0.1 s per timing at 2 GFLOP/s upward */
    siam_sgemm(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, C, N);
    for (int r = 0; r < reps; r++) {
        double t0 = siam_now();
        for (int i = 0; i < inner; i++)
            siam_sgemm(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 1.0f, C, N);
        t[r] = flop * inner / (siam_now() - t0) / 1e9;
    }
    siam_free(A), siam_free(B), siam_free(C);
    return median(t, reps);
}

/* pairs/s of local training, median of reps windows of `steps` steps after a warm-up */
static int bench_train(const char *model, int batch, const siam_dataset *ds, const siam_pairs *p,
                       int reps, int steps, double *rate, siam_error *err) {
    siam_model *m = NULL;
    siam_trainer tr;
    int rc = siam_model_create(&m, model, 1, err);
    if (!rc)
        rc = siam_trainer_init(&tr, m, SIAM_OPTIM_ADAM, 1e-3f, batch, err);
    if (rc) {
        siam_model_free(m);
        return rc;
    }
    siam_local_head head = {1.0f, SIAM_LABELS_SIMILAR};
    double t[16];
    size_t pos = 0;
    for (int r = -1; r < reps && !rc; r++) {
        double t0 = siam_now();
        for (int s = 0; s < steps && !rc; s++) {
            if (pos + (size_t)batch > p->n)
                pos = 0;
            float loss;
            rc = siam_trainer_step(&tr, ds, p, pos, batch, siam_local_head_fn, &head, &loss, err);
            pos += (size_t)batch;
        }
        if (r >= 0)
            t[r] = (double)steps * batch / (siam_now() - t0);
    }
    if (!rc)
        *rate = median(t, reps);
    siam_trainer_free(&tr);
    siam_model_free(m);
    return rc;
}

/* ---- suite local: sgemm and local training ------------------------------------------------ */

static void bench_sgemm_shapes(int reps) {
    /* the products of one mlp step at batch B (forward, dW, din), and the cnn's im2col products
     * at batch 128 */
    static const struct {
        const char *name;
        int ta, tb, M, N, K;
    } shapes[] = {
        {"mlp128.dense1.fwd", 0, 0, 128, 128, 784},
        {"mlp128.dense1.dW", 1, 0, 784, 128, 128},
        {"mlp128.dense2.fwd", 0, 0, 128, 128, 128},
        {"mlp128.dense2.din", 0, 1, 128, 128, 128},
        {"mlp857.dense1.fwd", 0, 0, 857, 128, 784},
        {"mlp857.dense1.dW", 1, 0, 784, 128, 857},
        {"cnn128.conv1.fwd", 0, 0, 128 * 676, 32, 9},
        {"cnn128.conv2.fwd", 0, 0, 128 * 121, 64, 288},
        {"cnn128.conv2.dW", 1, 0, 288, 64, 128 * 121},
        {"cnn128.conv2.dcol", 0, 1, 128 * 121, 288, 64},
        {"cnn128.dense.fwd", 0, 0, 128, 128, 1600},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        double g =
            bench_sgemm(shapes[i].ta, shapes[i].tb, shapes[i].M, shapes[i].N, shapes[i].K, reps);
        printf("sgemm %s %.2f GFLOP/s\n", shapes[i].name, g);
        fflush(stdout);
    }
}

static int bench_train_runs(const bench_config *c) {
    siam_error err = {0};
    siam_dataset ds = {0};
    siam_pairs p = {0};
    int rc;
    if ((rc = siam_dataset_load(&ds, c->data, SIAM_SPLIT_TRAIN, 0, &err)) ||
        (rc = siam_pairs_make(&p, ds.labels, ds.n, 10, 1, &err))) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        siam_dataset_free(&ds);
        return 1;
    }
    siam_pairs_shuffle(&p, 1);
    static const struct {
        const char *model;
        int batch, steps;
    } runs[] = {{"mlp", 128, 100}, {"mlp", 857, 20}, {"cnn", 128, 8}};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0] && !rc; i++) {
        double rate = 0;
        rc = bench_train(runs[i].model, runs[i].batch, &ds, &p, c->reps, runs[i].steps * c->scale,
                         &rate, &err);
        if (!rc)
            printf("train %s.b%d %.0f pairs/s\n", runs[i].model, runs[i].batch, rate);
        fflush(stdout);
    }
    siam_pairs_free(&p);
    siam_dataset_free(&ds);
    if (rc) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        return 1;
    }
    return 0;
}

static int suite_local(const bench_config *c) {
    siam_blas_set_threads(c->threads);
    printf("threads %d\n", siam_blas_get_threads());
    if (strcmp(c->only, "train") != 0)
        bench_sgemm_shapes(c->reps);
    if (strcmp(c->only, "sgemm") != 0)
        return bench_train_runs(c);
    return 0;
}

/* ---- shared by head and similarity: random pairs and encoded requests --------------------- */

/* n floats of each side uniform in [-0.1, 0.1]: at dim 128 the distance of a pair is about 0.9,
 * so dissimilar pairs fall on both sides of the margin 1 and both branches of the loss run */
static void random_pairs(siam_rng *r, float *left, float *right, size_t n) {
    for (size_t i = 0; i < n; i++) {
        left[i] = 0.2f * siam_rng_uniform(r) - 0.1f;
        right[i] = 0.2f * siam_rng_uniform(r) - 0.1f;
    }
}

/* msg packed into a malloc'd buffer (*len bytes); NULL when out of memory. */
static uint8_t *pack_message(const ProtobufCMessage *msg, size_t *len) {
    *len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf)
        protobuf_c_message_pack(msg, buf);
    return buf;
}

/* ---- suite head: the loss head on one thread ---------------------------------------------- */

typedef struct {
    int B, dim;
    float *left, *right, *dist, *grad_left, *grad_right;
    uint32_t *labels;
    uint8_t *request; /* the same pairs as a packed EmbeddingBatch */
    size_t request_len;
    siam_service *svc;
    siam_train_stream ts;
    siam_rpc_status st; /* of the last siam_service_train */
} head_bench;

static void head_free(head_bench *h) {
    siam_free(h->left), siam_free(h->right), siam_free(h->dist);
    siam_free(h->grad_left), siam_free(h->grad_right);
    free(h->labels);
    free(h->request);
    if (h->svc)
        siam_service_free(h->svc);
    free(h->svc);
}

static int head_init(head_bench *h, int B, int dim) {
    memset(h, 0, sizeof *h);
    h->B = B, h->dim = dim;
    size_t n = (size_t)B * (size_t)dim;
    h->left = siam_alloc_floats(n), h->right = siam_alloc_floats(n);
    h->grad_left = siam_alloc_floats(n), h->grad_right = siam_alloc_floats(n);
    h->dist = siam_alloc_floats((size_t)B);
    h->labels = malloc((size_t)B * sizeof *h->labels);
    h->svc = calloc(1, sizeof *h->svc); /* its worker table is large for a stack */
    if (!h->left || !h->right || !h->grad_left || !h->grad_right || !h->dist || !h->labels ||
        !h->svc || siam_service_init(h->svc, 1.0f, SIAM_LABELS_SIMILAR, 0.0f, SIAM_VERSION, NULL))
        return -1;
    siam_rng r;
    siam_rng_seed(&r, 1);
    random_pairs(&r, h->left, h->right, n);
    for (int i = 0; i < B; i++)
        h->labels[i] = (uint32_t)(siam_rng_u64(&r) & 1);

    Siam__V1__EmbeddingBatch b = SIAM__V1__EMBEDDING_BATCH__INIT;
    b.dim = (uint32_t)dim;
    b.n_left = b.n_right = n;
    b.left = h->left, b.right = h->right;
    b.n_labels = (size_t)B, b.labels = h->labels;
    b.worker_id = "siam-bench";
    h->request = pack_message(&b.base, &h->request_len);
    return h->request ? 0 : -1;
}

/* what the server computes for one batch: loss and distances, then both gradients */
static int head_loss(void *ctx) {
    head_bench *h = ctx;
    siam_contrastive_forward(h->dist, h->left, h->right, h->labels, h->B, h->dim, 1.0f,
                             SIAM_LABELS_SIMILAR);
    siam_contrastive_backward(h->grad_left, h->grad_right, h->left, h->right, h->dist, h->labels,
                              h->B, h->dim, 1.0f, SIAM_LABELS_SIMILAR);
    return 0;
}

/* the server's whole Train request: decode, validate, compute, encode the answer */
static int head_service_train(void *ctx) {
    head_bench *h = ctx;
    siam_rpc_buf resp = {0};
    int rc = siam_service_train(h->svc, &h->ts, h->request, h->request_len, &resp, &h->st);
    siam_rpc_buf_free(&resp);
    return rc;
}

/* Median over reps windows of calls/s of fn(ctx) (each window ~0.2 s, after a warm-up that
 * sizes it). Returns fn's first non-zero code, or 0. */
static int median_call_rate(int (*fn)(void *), void *ctx, int reps, double *rate) {
    double t[16], el = 0;
    long inner = 1;
    int rc = 0;
    for (;;) { /* warm-up: double the window until it lasts 50 ms */
        double t0 = siam_now();
        for (long i = 0; i < inner && !rc; i++)
            rc = fn(ctx);
        el = siam_now() - t0;
        if (rc || el >= 0.05)
            break;
        inner *= 2;
    }
    inner = (long)((double)inner * 0.2 / el) + 1;
    for (int r = 0; r < reps && !rc; r++) {
        double t0 = siam_now();
        for (long i = 0; i < inner && !rc; i++)
            rc = fn(ctx);
        t[r] = (double)inner / (siam_now() - t0);
    }
    if (!rc)
        *rate = median(t, reps);
    return rc;
}

static int suite_head(const bench_config *c) {
    siam_blas_set_threads(1);  /* one core: no OpenBLAS worker competes with the timed thread */
    siam_malloc_keep_memory(); /* as siam-server does */
    head_bench h;
    if (head_init(&h, c->batch, c->dim)) {
        head_free(&h);
        fprintf(stderr, PROG ": out of memory for a batch of %d x %d\n", c->batch, c->dim);
        return 1;
    }
    double loss_rate = 0, train_rate = 0;
    median_call_rate(head_loss, &h, c->reps, &loss_rate);
    int rc = median_call_rate(head_service_train, &h, c->reps, &train_rate);
    if (rc) {
        fprintf(stderr, PROG ": siam_service_train: %s: %s\n", siam_rpc_code_name(rc), h.st.msg);
        head_free(&h);
        return 1;
    }
    loss_rate *= c->batch, train_rate *= c->batch; /* calls/s -> pairs/s */
    printf("head loss.b%d.d%d %.0f pairs/s\n", c->batch, c->dim, loss_rate);
    printf("head service_train.b%d.d%d %.0f pairs/s\n", c->batch, c->dim, train_rate);
    if (c->json)
        printf("{\"suite\": \"head\", \"batch\": %d, \"dim\": %d, \"request_bytes\": %zu, "
               "\"loss_pairs_per_s\": %.0f, \"service_train_pairs_per_s\": %.0f}\n",
               c->batch, c->dim, h.request_len, loss_rate, train_rate);
    head_free(&h);
    return 0;
}

/* ---- suite similarity: a load generator --------------------------------------------------- */

typedef struct {
    const bench_config *c;
    const uint8_t *req; /* the pre-encoded SimilarityRequest, shared */
    size_t req_len;
    pthread_barrier_t *start;
    double *lat_us; /* latency of every OK call in the timed window */
    size_t n, cap;
    uint64_t failures;
    siam_rpc_status first_failure;
} caller;

static void caller_fail(caller *k, const siam_rpc_status *st) {
    if (k->failures++ == 0)
        k->first_failure = *st;
}

static int caller_record(caller *k, double us) {
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 4096;
        double *p = realloc(k->lat_us, cap * sizeof *p);
        if (!p)
            return -1;
        k->lat_us = p, k->cap = cap;
    }
    k->lat_us[k->n++] = us;
    return 0;
}

/* The untimed first call (it connects): OK and an answer with one distance per pair. */
static int caller_warm_up(caller *k, siam_rpc_channel *ch) {
    siam_rpc_buf resp = {0};
    siam_rpc_status st = {0};
    if (siam_rpc_call(ch, SIAM_METHOD_SIMILARITY, k->req, k->req_len, 10.0, &resp, &st)) {
        caller_fail(k, &st);
        return -1;
    }
    Siam__V1__SimilarityResponse *r =
        siam__v1__similarity_response__unpack(NULL, resp.len, resp.data);
    siam_rpc_buf_free(&resp);
    int ok = r && r->n_distances == (size_t)k->c->pairs;
    if (r)
        siam__v1__similarity_response__free_unpacked(r, NULL);
    if (!ok) {
        siam_rpc_status_set(&st, SIAM_RPC_INTERNAL, "the answer is not %d distances", k->c->pairs);
        caller_fail(k, &st);
    }
    return ok ? 0 : -1;
}

static void *caller_run(void *arg) {
    caller *k = arg;
    siam_rpc_channel *ch = NULL;
    siam_error err = {0};
    int ready = 0;
    if (siam_rpc_channel_create(&ch, k->c->server, 0, &err) == SIAM_OK) {
        ready = caller_warm_up(k, ch) == 0;
    } else {
        siam_rpc_status st;
        siam_rpc_status_set(&st, SIAM_RPC_INTERNAL, "%s", err.msg);
        caller_fail(k, &st);
    }
    pthread_barrier_wait(k->start);
    double end = siam_now() + k->c->seconds;
    while (ready && siam_now() < end) {
        siam_rpc_buf resp = {0};
        siam_rpc_status st = {0};
        double t0 = siam_now();
        int code = siam_rpc_call(ch, SIAM_METHOD_SIMILARITY, k->req, k->req_len, 10.0, &resp, &st);
        double us = (siam_now() - t0) * 1e6;
        siam_rpc_buf_free(&resp);
        if (code != SIAM_RPC_OK)
            caller_fail(k, &st);
        else if (caller_record(k, us))
            caller_fail(k, &(siam_rpc_status){SIAM_RPC_RESOURCE_EXHAUSTED, "out of memory"});
    }
    siam_rpc_channel_free(ch);
    return NULL;
}

/* P random pairs as a packed SimilarityRequest; NULL when out of memory. */
static uint8_t *similarity_request(int pairs, int dim, size_t *len) {
    size_t n = (size_t)pairs * (size_t)dim;
    float *left = malloc(n * sizeof *left), *right = malloc(n * sizeof *right);
    uint8_t *buf = NULL;
    if (left && right) {
        siam_rng r;
        siam_rng_seed(&r, 1);
        random_pairs(&r, left, right, n);
        Siam__V1__SimilarityRequest q = SIAM__V1__SIMILARITY_REQUEST__INIT;
        q.dim = (uint32_t)dim;
        q.n_left = q.n_right = n;
        q.left = left, q.right = right;
        buf = pack_message(&q.base, len);
    }
    free(left);
    free(right);
    return buf;
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
        fprintf(stderr, PROG ": cannot start caller thread %d\n", started + 1);
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

static void print_similarity(const bench_config *c, uint64_t calls, uint64_t failures,
                             double elapsed, double p50, double p99) {
    double rps = (double)calls / elapsed;
    printf("similarity callers=%d pairs=%d dim=%d: %.0f requests/s, %.0f pairs/s, latency p50 "
           "%.0f us, p99 %.0f us (%llu calls in %.1f s, %llu failed)\n",
           c->callers, c->pairs, c->dim, rps, rps * c->pairs, p50, p99, (unsigned long long)calls,
           elapsed, (unsigned long long)failures);
    if (c->json)
        printf("{\"suite\": \"similarity\", \"server\": \"%s\", \"callers\": %d, \"pairs\": %d, "
               "\"dim\": %d, \"seconds\": %.2f, \"calls\": %llu, \"failures\": %llu, "
               "\"requests_per_s\": %.1f, \"pairs_per_s\": %.1f, \"p50_us\": %.1f, "
               "\"p99_us\": %.1f}\n",
               c->server, c->callers, c->pairs, c->dim, elapsed, (unsigned long long)calls,
               (unsigned long long)failures, rps, rps * c->pairs, p50, p99);
}

/* Every caller's latencies in one array (NULL when out of memory; *n of them), so percentiles
 * are over all calls; the failures summed in *failures, the first one printed. Frees the
 * callers' arrays. */
static double *gather_callers(const bench_config *c, caller *k, size_t *n, uint64_t *failures) {
    size_t total = 0;
    for (int i = 0; i < c->callers; i++)
        total += k[i].n;
    double *all = malloc((total ? total : 1) * sizeof *all);
    *n = 0, *failures = 0;
    for (int i = 0; i < c->callers; i++) {
        if (all) {
            memcpy(all + *n, k[i].lat_us, k[i].n * sizeof *all);
            *n += k[i].n;
        }
        if (k[i].failures && !*failures)
            fprintf(stderr, PROG ": Similarity at %s failed: %s: %s\n", c->server,
                    siam_rpc_code_name(k[i].first_failure.code), k[i].first_failure.msg);
        *failures += k[i].failures;
        free(k[i].lat_us);
        k[i].lat_us = NULL;
    }
    return all;
}

static int suite_similarity(const bench_config *c) {
    size_t len = 0, n = 0;
    uint64_t failures = 0;
    uint8_t *req = similarity_request(c->pairs, c->dim, &len);
    caller *k = calloc((size_t)c->callers, sizeof *k);
    double elapsed = 0, *all = NULL;
    siam_rpc_init();
    int rc = !req || !k || run_callers(c, k, req, len, &elapsed);
    siam_rpc_shutdown();
    if (!rc)
        all = gather_callers(c, k, &n, &failures);
    free(req);
    free(k);
    if (!all) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    double p50 = n ? quantile(all, n, 0.50) : 0, p99 = n ? quantile(all, n, 0.99) : 0;
    free(all);
    print_similarity(c, n, failures, elapsed, p50, p99);
    return failures ? 1 : 0;
}

/* ---- suite load: Train streams and Similarity callers at once, and the server's memory ---- */

/* Similarity request sizes the load callers cycle through (pairs per request). */
static const int load_sim_pairs[] = {1, 10, 100, 1000};
#define LOAD_SIM_SIZES    ((int)(sizeof load_sim_pairs / sizeof load_sim_pairs[0]))
#define LOAD_MAX_PRINTED  50 /* failures printed one by one; the rest are counted */
#define LOAD_CALL_TIMEOUT 30.0
#define LOAD_RETRY_PAUSE  0.2 /* after a failed stream or call, before the next attempt */
/* RSS "flat": last <= first + tolerance, and the second half's median <= the first half's +
 * tolerance, with tolerance = max(16 MB, 10% of first). A leak of 250 bytes per call exceeds it
 * within 20 s of the default load (about 3,500 calls/s on 2 cores), one of 80 bytes within
 * 60 s; the heap's high-water mark, which steps up by up to 8 MB when large requests
 * coincide, does not. */
#define LOAD_RSS_MIN_TOL 16.0
#define LOAD_RSS_REL_TOL 0.10

typedef struct {
    double *v;
    size_t n, cap;
} lat_list;

static int lat_push(lat_list *l, double x) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 1024;
        double *p = realloc(l->v, cap * sizeof *p);
        if (!p)
            return -1;
        l->v = p, l->cap = cap;
    }
    l->v[l->n++] = x;
    return 0;
}

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
    lat_list lat_ms;   /* every OK call that started in the timed window */
    uint64_t pairs;    /* pairs of those calls */
    uint64_t failures; /* warm-up included */
    uint64_t reopened; /* Train: streams opened again after a failure */
} load_thread;

typedef struct {
    load_run *run;
    int pid;
    pthread_t tid;
    int started;
    double mb[8192]; /* one sample a second from the start (warm-up included) */
    int n;
    char error[256]; /* the first sample that could not be read */
} rss_sampler;

static int load_over(load_run *run) {
    return atomic_load(&run->stop) || siam_now() >= run->t_end;
}

/* Sleeps s seconds, less if the run ends first. */
static void load_pause(load_run *run, double s) {
    double until = siam_now() + s;
    if (until > run->t_end)
        until = run->t_end;
    for (double now = siam_now(); now < until && !atomic_load(&run->stop); now = siam_now()) {
        double d = until - now > 0.05 ? 0.05 : until - now;
        struct timespec ts = {0, (long)(d * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static void load_fail(load_thread *t, const char *what, const siam_rpc_status *st) {
    load_run *run = t->run;
    t->failures++;
    pthread_mutex_lock(&run->lock);
    if (run->printed < LOAD_MAX_PRINTED)
        fprintf(stderr, PROG ": %s %d: %s failed at %.1f s: %s: %s\n",
                t->train ? "Train stream" : "Similarity caller", t->index, what,
                siam_now() - run->t_start, siam_rpc_code_name(st->code), st->msg);
    else if (run->printed == LOAD_MAX_PRINTED)
        fprintf(stderr, PROG ": more than %d failures: the rest are counted, not printed\n",
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
    siam_error err = {0};
    if (siam_rpc_channel_create(own, t->run->c->server, max, &err) != SIAM_OK) {
        siam_rpc_status st;
        siam_rpc_status_set(&st, SIAM_RPC_INTERNAL, "%s", err.msg);
        load_fail(t, "channel", &st);
        return NULL;
    }
    return *own;
}

/* A packed EmbeddingBatch of B random finite pairs (seeded); NULL when out of memory. */
static uint8_t *train_request(int B, int dim, uint64_t seed, const char *worker, size_t *len) {
    size_t n = (size_t)B * (size_t)dim;
    float *left = malloc(n * sizeof *left), *right = malloc(n * sizeof *right);
    uint32_t *labels = malloc((size_t)B * sizeof *labels);
    uint8_t *buf = NULL;
    if (left && right && labels) {
        siam_rng r;
        siam_rng_seed(&r, seed);
        random_pairs(&r, left, right, n);
        for (int i = 0; i < B; i++)
            labels[i] = (uint32_t)(siam_rng_u64(&r) & 1);
        Siam__V1__EmbeddingBatch b = SIAM__V1__EMBEDDING_BATCH__INIT;
        b.dim = (uint32_t)dim;
        b.n_left = b.n_right = n;
        b.left = left, b.right = right;
        b.n_labels = (size_t)B, b.labels = labels;
        b.worker_id = (char *)worker;
        buf = pack_message(&b.base, len);
    }
    free(left), free(right), free(labels);
    return buf;
}

/* OK when resp is a BatchResult for B pairs of dim floats, with a finite loss. */
static int check_batch_result(const siam_rpc_buf *resp, int B, int dim, siam_rpc_status *st) {
    Siam__V1__BatchResult *r = siam__v1__batch_result__unpack(NULL, resp->len, resp->data);
    size_t n = (size_t)B * (size_t)dim;
    int ok = r && r->n_distances == (size_t)B && r->n_grad_left == n && r->n_grad_right == n &&
             r->loss == r->loss && r->loss >= 0;
    if (r)
        siam__v1__batch_result__free_unpacked(r, NULL);
    if (ok)
        return siam_rpc_status_set(st, SIAM_RPC_OK, "%s", "");
    return siam_rpc_status_set(st, SIAM_RPC_INTERNAL,
                               "the answer is not a BatchResult of %d distances and 2 x %zu "
                               "gradients with a finite loss",
                               B, n);
}

static void *load_train_run(void *arg) {
    load_thread *t = arg;
    load_run *run = t->run;
    int B = run->batch, dim = run->c->dim;
    char worker[32];
    snprintf(worker, sizeof worker, "siam-bench-load-%d", t->index);
    /* two requests alternate, so consecutive batches differ */
    size_t len[2] = {0, 0};
    uint8_t *req[2] = {train_request(B, dim, 1000 + 2 * (uint64_t)t->index, worker, &len[0]),
                       train_request(B, dim, 1001 + 2 * (uint64_t)t->index, worker, &len[1])};
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
            code = check_batch_result(&resp, B, dim, &st);
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
            if (lat_push(&t->lat_ms, ms))
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

/* OK when resp is a SimilarityResponse with one distance per pair. */
static int check_similarity(const siam_rpc_buf *resp, int pairs, siam_rpc_status *st) {
    Siam__V1__SimilarityResponse *r =
        siam__v1__similarity_response__unpack(NULL, resp->len, resp->data);
    int ok = r && r->n_distances == (size_t)pairs && r->n_scores == (size_t)pairs;
    if (r)
        siam__v1__similarity_response__free_unpacked(r, NULL);
    if (ok)
        return siam_rpc_status_set(st, SIAM_RPC_OK, "%s", "");
    return siam_rpc_status_set(st, SIAM_RPC_INTERNAL,
                               "the answer does not have %d distances and scores", pairs);
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
            code = check_similarity(&resp, load_sim_pairs[i], &st);
        siam_rpc_buf_free(&resp);
        if (code != SIAM_RPC_OK) {
            load_fail(t, "Similarity", &st);
            load_pause(run, LOAD_RETRY_PAUSE);
        } else if (t0 >= run->t_measure) {
            if (lat_push(&t->lat_ms, ms))
                break;
            t->pairs += (uint64_t)load_sim_pairs[i];
        }
    }
    siam_rpc_channel_free(own);
    return NULL;
}

/* VmRSS of process pid in MB; -1 when it cannot be read (the process is gone). */
static double read_rss_mb(int pid) {
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

/* One RSS sample a second, at t_start + k, until the end of the run. */
static void *rss_run(void *arg) {
    rss_sampler *r = arg;
    load_run *run = r->run;
    for (int k = 0; r->n < (int)(sizeof r->mb / sizeof r->mb[0]); k++) {
        double at = run->t_start + k;
        if (at > run->t_end + 0.5)
            break;
        for (double now = siam_now(); now < at && !atomic_load(&run->stop); now = siam_now()) {
            double d = at - now > 0.1 ? 0.1 : at - now;
            struct timespec ts = {0, (long)(d * 1e9)};
            nanosleep(&ts, NULL);
        }
        if (atomic_load(&run->stop))
            break;
        double mb = read_rss_mb(r->pid);
        if (mb < 0) {
            snprintf(r->error, sizeof r->error,
                     "cannot read /proc/%d/status at %d s: the server is gone", r->pid, k);
            break;
        }
        r->mb[r->n++] = mb;
    }
    return NULL;
}

/* Latencies and counts of one kind of thread, gathered. */
typedef struct {
    uint64_t calls, pairs, failures, reopened;
    uint64_t min_calls, max_calls; /* per thread */
    int idle;                      /* threads without one call in the window */
    double p50, p90, p99, max;
} load_stats;

static int load_gather(load_thread *th, int n, load_stats *s) {
    memset(s, 0, sizeof *s);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += th[i].lat_ms.n;
    double *all = malloc((total ? total : 1) * sizeof *all);
    if (!all)
        return -1;
    s->min_calls = UINT64_MAX;
    for (int i = 0; i < n; i++) {
        uint64_t k = th[i].lat_ms.n;
        memcpy(all + s->calls, th[i].lat_ms.v, k * sizeof *all);
        s->calls += k;
        s->pairs += th[i].pairs;
        s->failures += th[i].failures;
        s->reopened += th[i].reopened;
        s->min_calls = k < s->min_calls ? k : s->min_calls;
        s->max_calls = k > s->max_calls ? k : s->max_calls;
        s->idle += k == 0;
    }
    if (!n)
        s->min_calls = 0;
    if (total) {
        s->p50 = quantile(all, total, 0.50);
        s->p90 = quantile(all, total, 0.90);
        s->p99 = quantile(all, total, 0.99);
        s->max = quantile(all, total, 1.0);
    }
    free(all);
    return 0;
}

/* The RSS figures over the samples after the warm-up. */
typedef struct {
    int n;
    double first, median, last, max, growth, tol, half1, half2;
    int flat;
} rss_stats;

static void rss_summary(const double *mb, int n, rss_stats *r) {
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
    r->median = median(v, n);
    int h = n / 2 ? n / 2 : 1;
    memcpy(v, mb, (size_t)h * sizeof *v);
    r->half1 = median(v, h);
    memcpy(v, mb + n - h, (size_t)h * sizeof *v);
    r->half2 = median(v, h);
    free(v);
    r->growth = r->last - r->first;
    r->tol = LOAD_RSS_REL_TOL * r->first > LOAD_RSS_MIN_TOL ? LOAD_RSS_REL_TOL * r->first
                                                            : LOAD_RSS_MIN_TOL;
    r->flat = n >= 2 && r->last <= r->first + r->tol && r->half2 <= r->half1 + r->tol;
}

static void print_load_stats(const char *name, const load_stats *s, double secs) {
    printf("load %s: %llu calls, %llu failed, %.1f calls/s, %.0f pairs/s; latency ms p50 %.2f "
           "p90 %.2f p99 %.2f max %.2f\n",
           name, (unsigned long long)s->calls, (unsigned long long)s->failures,
           (double)s->calls / secs, (double)s->pairs / secs, s->p50, s->p90, s->p99, s->max);
}

static void print_load(const bench_config *c, const load_run *run, const load_stats *tr,
                       const load_stats *si, const rss_sampler *rs, const rss_stats *r,
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
           (double)tr->calls / secs, (double)tr->pairs / secs, tr->p50, tr->p90, tr->p99, tr->max,
           (unsigned long long)tr->min_calls, (unsigned long long)tr->max_calls, tr->idle,
           (unsigned long long)si->calls, (unsigned long long)si->failures,
           (double)si->calls / secs, (double)si->pairs / secs, si->p50, si->p90, si->p99, si->max,
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
            fprintf(stderr, PROG ": cannot start %s thread %d\n", train ? "Train" : "Similarity",
                    i);
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
    siam_error err = {0};
    if (!ch && siam_rpc_channel_create(&ch, run->c->server, 0, &err) != SIAM_OK) {
        siam_rpc_status_set(st, SIAM_RPC_INTERNAL, "%s", err.msg);
        return 0;
    }
    siam_rpc_buf resp = {0};
    int ok = siam_rpc_call(ch, SIAM_METHOD_STATUS, NULL, 0, 10.0, &resp, st) == SIAM_RPC_OK;
    siam_rpc_buf_free(&resp);
    if (ch != run->shared)
        siam_rpc_channel_free(ch);
    return ok;
}

static int suite_load(const bench_config *c) {
    load_run run;
    memset(&run, 0, sizeof run);
    run.c = c;
    run.batch = c->batch ? c->batch : 128;
    run.channels = strcmp(c->channels, "shared") == 0       ? CH_SHARED
                   : strcmp(c->channels, "per-thread") == 0 ? CH_PER_THREAD
                                                            : CH_CONNECTIONS;
    pthread_mutex_init(&run.lock, NULL);
    atomic_init(&run.stop, 0);
    rss_sampler *rs = NULL;
    if (c->server_pid > 0) {
        if (read_rss_mb(c->server_pid) < 0) {
            fprintf(stderr,
                    PROG ": --server-pid %d: cannot read /proc/%d/status (no such process?)\n",
                    c->server_pid, c->server_pid);
            return 2;
        }
        rs = calloc(1, sizeof *rs);
    }
    load_thread *tr = calloc((size_t)c->streams + 1, sizeof *tr);
    load_thread *si = calloc((size_t)c->callers + 1, sizeof *si);
    int rc = (c->server_pid > 0 && !rs) || !tr || !si;
    for (int i = 0; i < LOAD_SIM_SIZES && !rc; i++)
        rc = !(run.sim_req[i] = similarity_request(load_sim_pairs[i], c->dim, &run.sim_len[i]));
    if (rc) {
        fprintf(stderr, PROG ": out of memory\n");
        goto out;
    }
    siam_rpc_init();
    siam_error err = {0};
    if (run.channels == CH_SHARED &&
        siam_rpc_channel_create(&run.shared, c->server, 0, &err) != SIAM_OK) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        siam_rpc_shutdown();
        rc = 1;
        goto out;
    }
    fprintf(stderr,
            PROG ": load on %s: %d Train streams and %d Similarity callers, %.0f s warm-up + %.0f "
                 "s\n",
            c->server, c->streams, c->callers, (double)c->warmup, (double)c->seconds);
    run.t_start = siam_now();
    run.t_measure = run.t_start + c->warmup;
    run.t_end = run.t_measure + c->seconds;
    if (rs) {
        rs->run = &run, rs->pid = c->server_pid;
        if (pthread_create(&rs->tid, NULL, rss_run, rs) == 0)
            rs->started = 1;
        else
            rc = -1;
    }
    if (rc || load_start(tr, c->streams, &run, 1, load_train_run) ||
        load_start(si, c->callers, &run, 0, load_similarity_run)) {
        atomic_store(&run.stop, 1);
        rc = 1;
    }
    load_join(tr, c->streams);
    load_join(si, c->callers);
    if (rs && rs->started)
        pthread_join(rs->tid, NULL);
    siam_rpc_status status_st = {0};
    int status_ok = !rc && status_after(&run, &status_st);
    siam_rpc_channel_free(run.shared);
    siam_rpc_shutdown();
    if (rc)
        goto out;

    load_stats ts, ss;
    rss_stats r;
    if (load_gather(tr, c->streams, &ts) || load_gather(si, c->callers, &ss)) {
        fprintf(stderr, PROG ": out of memory\n");
        rc = 1;
        goto out;
    }
    int skip = (int)(c->warmup + 0.5); /* samples at t = 0..warmup-1 are the warm-up's */
    if (rs)
        rss_summary(rs->mb + (rs->n > skip ? skip : rs->n), rs->n > skip ? rs->n - skip : 0, &r);
    print_load(c, &run, &ts, &ss, rs, &r, status_ok, &status_st);
    if (rs && rs->error[0])
        fprintf(stderr, PROG ": %s\n", rs->error);
    rc = ts.failures || ss.failures || ts.idle || ss.idle || !status_ok || (rs && rs->error[0]);
out:
    for (int i = 0; tr && i < c->streams; i++)
        free(tr[i].lat_ms.v);
    for (int i = 0; si && i < c->callers; i++)
        free(si[i].lat_ms.v);
    for (int i = 0; i < LOAD_SIM_SIZES; i++)
        free(run.sim_req[i]);
    free(tr), free(si), free(rs);
    pthread_mutex_destroy(&run.lock);
    return rc;
}

int main(int argc, char **argv) {
    bench_config c = {.suite = "local",
                      .data = SIAM_DATA_DIR_DEFAULT,
                      .server = "127.0.0.1:50051",
                      .reps = 5,
                      .scale = 1,
                      .batch = 0,
                      .dim = 128,
                      .callers = 4,
                      .pairs = 1,
                      .seconds = 0.0f,
                      .only = "all",
                      .streams = 32,
                      .warmup = 5.0f,
                      .channels = "connections"};
    const siam_option opts[] = {
        {"suite", SIAM_OPT_CHOICE, &c.suite, 0, 0, "local|head|similarity|load", NULL,
         "local: sgemm + local training; head: the server's loss head on one thread; "
         "similarity: Similarity load on a siam-server; load: Train streams + Similarity "
         "callers at once on a siam-server, with its RSS"},
        {"data", SIAM_OPT_STRING, &c.data, 0, 0, NULL, "DIR", "local: Fashion-MNIST directory"},
        {"threads", SIAM_OPT_INT, &c.threads, 0, 256, NULL, "N",
         "local: OpenBLAS threads (0 = library default)"},
        {"reps", SIAM_OPT_INT, &c.reps, 1, 15, NULL, "N", "timed repeats per figure (median)"},
        {"scale", SIAM_OPT_INT, &c.scale, 1, 100, NULL, "K",
         "local: multiply the steps per training timing by K"},
        {"only", SIAM_OPT_CHOICE, &c.only, 0, 0, "all|sgemm|train", NULL,
         "local: which figures to take"},
        {"batch", SIAM_OPT_INT, &c.batch, 0, 65536, NULL, "B",
         "head: pairs per batch (0 = 857); load: pairs per Train batch (0 = 128)"},
        {"dim", SIAM_OPT_INT, &c.dim, 1, SIAM_SERVICE_MAX_DIM, NULL, "D",
         "head, similarity, load: embedding dimension"},
        {"server", SIAM_OPT_STRING, &c.server, 0, 0, NULL, "ADDR", "similarity, load: siam-server"},
        {"callers", SIAM_OPT_INT, &c.callers, 0, 1024, NULL, "N",
         "similarity (>= 1), load: concurrent Similarity callers, one thread each"},
        {"pairs", SIAM_OPT_INT, &c.pairs, 1, 65536, NULL, "P",
         "similarity: pairs per request (load cycles through 1, 10, 100 and 1000)"},
        {"seconds", SIAM_OPT_FLOAT, &c.seconds, 0, 3600, NULL, "S",
         "similarity, load: length of the timed window (0 = 10 for similarity, 60 for load)"},
        {"streams", SIAM_OPT_INT, &c.streams, 0, 1024, NULL, "N",
         "load: concurrent Train streams, one thread each"},
        {"warmup", SIAM_OPT_FLOAT, &c.warmup, 0, 600, NULL, "S",
         "load: seconds of load before the timed window, not counted"},
        {"channels", SIAM_OPT_CHOICE, &c.channels, 0, 0, "connections|per-thread|shared", NULL,
         "load: a channel and a connection per thread (as separate workers), a channel per "
         "thread (gRPC puts them on one connection), or one channel for all threads"},
        {"server-pid", SIAM_OPT_INT, &c.server_pid, 0, 2147483647, NULL, "PID",
         "load: sample this process's RSS (/proc/PID/status) every second; 0 = do not"},
        {"json", SIAM_OPT_FLAG, &c.json, 0, 0, NULL, NULL,
         "head, similarity, load: also print the figures as one JSON line"},
    };
    int rc = siam_options_main(
        PROG, SIAM_VERSION,
        "Benchmarks, as medians. --suite local: sgemm GFLOP/s at the models' shapes and local "
        "training\npairs/s; head: the loss head alone (pairs/s); similarity: Similarity "
        "requests/s and\nlatency percentiles from concurrent callers (exit 1 if any call fails).\n"
        "load: --streams Train streams (batch x dim random finite floats) and --callers "
        "Similarity callers\n(1/10/100/1000 pairs per request, in turn) against --server for "
        "--warmup + --seconds;\nreports calls, failures (each printed), latency p50/p90/p99/max "
        "per RPC, throughput, and\nwith --server-pid the server's RSS every second: first/median/"
        "last/max after the warm-up\nand 'flat' when last <= first + max(10%, 16 MB) and the "
        "second half's median is not\nabove the first half's by more; exit 1 if a call failed, "
        "a stream or caller made no progress, or\nStatus does not answer afterwards.\n"
        "Output: one 'kind name value unit' line per figure.",
        opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (rc >= 0)
        return rc;
    if (strcmp(c.suite, "head") == 0) {
        if (!c.batch)
            c.batch = 857;
        return suite_head(&c);
    }
    if (strcmp(c.suite, "similarity") == 0) {
        if (c.callers < 1) {
            fprintf(stderr, PROG ": --suite similarity needs --callers 1 or more\n");
            return 2;
        }
        if (c.seconds <= 0)
            c.seconds = 10.0f;
        return suite_similarity(&c);
    }
    if (strcmp(c.suite, "load") == 0) {
        if (c.seconds <= 0)
            c.seconds = 60.0f;
        if (c.streams + c.callers < 1) {
            fprintf(stderr, PROG ": --suite load needs --streams or --callers above 0\n");
            return 2;
        }
        return suite_load(&c);
    }
    return suite_local(&c);
}
