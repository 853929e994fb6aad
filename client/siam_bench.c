/* siam-bench: three suites, each a set of medians.
 *   local       OpenBLAS sgemm at the shapes the models use and the local training rate (both
 *               forward passes + backward + Adam, no network) of each model (the default);
 *   head        the server's loss head alone on one thread: the contrastive loss and its
 *               gradients, and the whole Train request path (decode, validate, compute, encode);
 *   similarity  a load generator for siam-server's Similarity: N callers, each with its own
 *               channel, sending one pre-encoded request back to back. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam/v1/siam.pb-c.h"
#include "siam_dataset.h"
#include "siam_log.h"
#include "siam_loss.h"
#include "siam_model.h"
#include "siam_options.h"
#include "siam_pairs.h"
#include "siam_rng.h"
#include "siam_rpc.h"
#include "siam_service.h"
#include "siam_tensor.h"
#include "siam_trainer.h"

#define PROG "siam-bench"

typedef struct {
    const char *suite, *data, *server;
    int threads, reps, scale, json;
    int batch, dim, callers, pairs;
    float seconds;
    const char *only;
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

int main(int argc, char **argv) {
    bench_config c = {.suite = "local",
                      .data = SIAM_DATA_DIR_DEFAULT,
                      .server = "127.0.0.1:50051",
                      .reps = 5,
                      .scale = 1,
                      .batch = 857,
                      .dim = 128,
                      .callers = 4,
                      .pairs = 1,
                      .seconds = 10.0f,
                      .only = "all"};
    const siam_option opts[] = {
        {"suite", SIAM_OPT_CHOICE, &c.suite, 0, 0, "local|head|similarity", NULL,
         "local: sgemm + local training; head: the server's loss head on one thread; "
         "similarity: load on a siam-server"},
        {"data", SIAM_OPT_STRING, &c.data, 0, 0, NULL, "DIR", "local: Fashion-MNIST directory"},
        {"threads", SIAM_OPT_INT, &c.threads, 0, 256, NULL, "N",
         "local: OpenBLAS threads (0 = library default)"},
        {"reps", SIAM_OPT_INT, &c.reps, 1, 15, NULL, "N", "timed repeats per figure (median)"},
        {"scale", SIAM_OPT_INT, &c.scale, 1, 100, NULL, "K",
         "local: multiply the steps per training timing by K"},
        {"only", SIAM_OPT_CHOICE, &c.only, 0, 0, "all|sgemm|train", NULL,
         "local: which figures to take"},
        {"batch", SIAM_OPT_INT, &c.batch, 1, 65536, NULL, "B", "head: pairs per batch"},
        {"dim", SIAM_OPT_INT, &c.dim, 1, SIAM_SERVICE_MAX_DIM, NULL, "D",
         "head, similarity: embedding dimension"},
        {"server", SIAM_OPT_STRING, &c.server, 0, 0, NULL, "ADDR", "similarity: siam-server"},
        {"callers", SIAM_OPT_INT, &c.callers, 1, 1024, NULL, "N",
         "similarity: concurrent callers, one channel each"},
        {"pairs", SIAM_OPT_INT, &c.pairs, 1, 65536, NULL, "P", "similarity: pairs per request"},
        {"seconds", SIAM_OPT_FLOAT, &c.seconds, 0.1, 3600, NULL, "S",
         "similarity: length of the timed window"},
        {"json", SIAM_OPT_FLAG, &c.json, 0, 0, NULL, NULL,
         "head, similarity: also print the figures as one JSON line"},
    };
    int rc = siam_options_main(PROG, SIAM_VERSION,
                               "Benchmarks, as medians. --suite local: sgemm GFLOP/s at the "
                               "models' shapes and local training\npairs/s; head: the loss head "
                               "alone (pairs/s); similarity: Similarity requests/s and\nlatency "
                               "percentiles from concurrent callers (exit 1 if any call fails).\n"
                               "Output: one 'kind name value unit' line per figure.",
                               opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (rc >= 0)
        return rc;
    if (strcmp(c.suite, "head") == 0)
        return suite_head(&c);
    if (strcmp(c.suite, "similarity") == 0)
        return suite_similarity(&c);
    return suite_local(&c);
}
