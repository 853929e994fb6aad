/* test_service: the server's request path (server/siam_service) called with encoded protobuf
 * requests, as siam-server's gRPC methods call it. Train answers equal lib/nn/siam_loss bit for
 * bit, the loss matches an independent double-precision reference, the gradients match finite
 * differences of the loss the service itself reports; every malformed request gets
 * INVALID_ARGUMENT naming the field and the value, and the service keeps answering afterwards;
 * Similarity, Status and Health by hand; several threads at once. */
#include "test_util.h"

#include <float.h>
#include <pthread.h>
#include <string.h>

#include "siam_loss.h"
#include "siam_rng.h"
#include "siam_service.h"
#include "siam_wire.h"

#include "grpc/health/v1/health.pb-c.h"
#include "siam/v1/siam.pb-c.h"

/* ------------------------------------------------------------------------------------------ */
/* Calling the service with encoded requests */

/* CHECK for the helpers that test_threads calls from several threads at once (test_util's
 * counters are plain ints); the service calls themselves stay outside the lock. */
static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;
#define TCHECK(cond, ...)                                                                          \
    do {                                                                                           \
        int tcheck_ok_ = (cond) ? 1 : 0;                                                           \
        pthread_mutex_lock(&check_lock);                                                           \
        CHECK(tcheck_ok_, __VA_ARGS__);                                                            \
        pthread_mutex_unlock(&check_lock);                                                         \
    } while (0)

/* The service's answer must be consistent with its return code: OK and a message on success,
 * the code in st and no buffer on failure. */
static void check_outcome(int rc, const siam_rpc_status *st, const siam_rpc_buf *resp,
                          const char *what) {
    TCHECK(rc == st->code, "%s: returned %d but status says %d", what, rc, st->code);
    if (rc == SIAM_RPC_OK)
        TCHECK(resp->data != NULL, "%s: OK without a response", what);
    else
        TCHECK(resp->data == NULL && st->msg[0] != '\0',
               "%s: failure %s left a response or no message", what, siam_rpc_code_name(rc));
}

static int train_bytes(siam_service *svc, siam_train_stream *ts, const uint8_t *req, size_t len,
                       Siam__V1__BatchResult **out, siam_rpc_status *st) {
    siam_rpc_buf resp = {(uint8_t *)1, 99}; /* garbage: the service must reset it */
    memset(st, 0, sizeof *st);
    int rc = siam_service_train(svc, ts, req, len, &resp, st);
    check_outcome(rc, st, &resp, "train");
    *out = NULL;
    if (rc == SIAM_RPC_OK) {
        *out = siam__v1__batch_result__unpack(NULL, resp.len, resp.data);
        TCHECK(*out != NULL, "BatchResult does not decode");
    }
    if (rc == SIAM_RPC_OK)
        siam_rpc_buf_free(&resp);
    return rc;
}

/* Packs an EmbeddingBatch and trains on it; *out (NULL on failure) is the decoded answer. */
static int train(siam_service *svc, siam_train_stream *ts, uint32_t dim, const float *left,
                 size_t nl, const float *right, size_t nr, const uint32_t *labels, size_t ny,
                 uint64_t step, const char *worker, Siam__V1__BatchResult **out,
                 siam_rpc_status *st) {
    Siam__V1__EmbeddingBatch b = SIAM__V1__EMBEDDING_BATCH__INIT;
    b.dim = dim;
    b.n_left = nl, b.left = (float *)left;
    b.n_right = nr, b.right = (float *)right;
    b.n_labels = ny, b.labels = (uint32_t *)labels;
    b.step = step;
    b.worker_id = (char *)worker;
    size_t len = siam__v1__embedding_batch__get_packed_size(&b);
    uint8_t *buf = malloc(len ? len : 1);
    siam__v1__embedding_batch__pack(&b, buf);
    int rc = train_bytes(svc, ts, buf, len, out, st);
    free(buf);
    return rc;
}

/* The loss the service reports for a batch (NAN on failure). */
static double served_loss(siam_service *svc, uint32_t dim, const float *left, const float *right,
                          const uint32_t *labels, int B) {
    siam_rpc_status st;
    Siam__V1__BatchResult *r;
    size_t n = (size_t)B * dim;
    if (train(svc, NULL, dim, left, n, right, n, labels, (size_t)B, 0, "fd", &r, &st) != 0) {
        CHECK(0, "finite-difference call failed: %s", st.msg);
        return NAN;
    }
    double l = r->loss;
    siam__v1__batch_result__free_unpacked(r, NULL);
    return l;
}

static int similarity(siam_service *svc, uint32_t dim, const float *left, size_t nl,
                      const float *right, size_t nr, const uint8_t *limg, size_t nli,
                      const uint8_t *rimg, size_t nri, Siam__V1__SimilarityResponse **out,
                      siam_rpc_status *st) {
    Siam__V1__SimilarityRequest q = SIAM__V1__SIMILARITY_REQUEST__INIT;
    q.dim = dim;
    q.n_left = nl, q.left = (float *)left;
    q.n_right = nr, q.right = (float *)right;
    q.left_images.len = nli, q.left_images.data = (uint8_t *)limg;
    q.right_images.len = nri, q.right_images.data = (uint8_t *)rimg;
    size_t len = siam__v1__similarity_request__get_packed_size(&q);
    uint8_t *buf = malloc(len ? len : 1);
    siam__v1__similarity_request__pack(&q, buf);
    siam_rpc_buf resp = {NULL, 0};
    memset(st, 0, sizeof *st);
    int rc = siam_service_similarity(svc, buf, len, &resp, st);
    free(buf);
    check_outcome(rc, st, &resp, "similarity");
    *out = NULL;
    if (rc == SIAM_RPC_OK) {
        *out = siam__v1__similarity_response__unpack(NULL, resp.len, resp.data);
        TCHECK(*out != NULL, "SimilarityResponse does not decode");
        siam_rpc_buf_free(&resp);
    }
    return rc;
}

static Siam__V1__StatusResponse *status(siam_service *svc) {
    Siam__V1__StatusRequest q = SIAM__V1__STATUS_REQUEST__INIT;
    uint8_t buf[16];
    size_t len = siam__v1__status_request__pack(&q, buf);
    siam_rpc_buf resp = {NULL, 0};
    siam_rpc_status st;
    int rc = siam_service_status(svc, buf, len, &resp, &st);
    check_outcome(rc, &st, &resp, "status");
    if (rc != SIAM_RPC_OK) {
        TCHECK(0, "status failed: %s", st.msg);
        return NULL;
    }
    Siam__V1__StatusResponse *r = siam__v1__status_response__unpack(NULL, resp.len, resp.data);
    TCHECK(r != NULL, "StatusResponse does not decode");
    siam_rpc_buf_free(&resp);
    return r;
}

static const Siam__V1__WorkerStatus *find_worker(const Siam__V1__StatusResponse *r,
                                                 const char *id) {
    for (size_t i = 0; i < r->n_workers; i++)
        if (strcmp(r->workers[i]->worker_id, id) == 0)
            return r->workers[i];
    return NULL;
}

static int health(siam_service *svc, const char *service, int *serving, siam_rpc_status *st) {
    Grpc__Health__V1__HealthCheckRequest q = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    q.service = (char *)service;
    uint8_t buf[256];
    size_t len = grpc__health__v1__health_check_request__pack(&q, buf);
    siam_rpc_buf resp = {NULL, 0};
    int rc = siam_service_health(svc, buf, len, &resp, st);
    check_outcome(rc, st, &resp, "health");
    *serving = -1;
    if (rc == SIAM_RPC_OK) {
        Grpc__Health__V1__HealthCheckResponse *r =
            grpc__health__v1__health_check_response__unpack(NULL, resp.len, resp.data);
        CHECK(r != NULL, "HealthCheckResponse does not decode");
        if (r)
            *serving = (int)r->status;
        grpc__health__v1__health_check_response__free_unpacked(r, NULL);
        siam_rpc_buf_free(&resp);
    }
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Train on random batches */

static double worst_dist_rel, worst_loss_rel, worst_fd_rel, worst_fd_ratio;
static int fd_checked, fd_skipped, fd_strong;

/* Pair i of a batch at a chosen distance: kind 0 identical (D = 0), kind 1 beyond the margin
 * (D in 1.5m..2.5m), kinds 2, 3 inside it (D in 0.1m..0.9m). */
static void make_batch(siam_rng *rng, float *a, float *b, uint32_t *y, int B, int dim, float m,
                       int first_kind) {
    for (int i = 0; i < B; i++) {
        float *ai = a + (size_t)i * dim, *bi = b + (size_t)i * dim;
        double u2 = 0;
        for (int k = 0; k < dim; k++) {
            ai[k] = 2 * siam_rng_uniform(rng) - 1;
            bi[k] = 2 * siam_rng_uniform(rng) - 1; /* a direction for now */
            u2 += (double)bi[k] * bi[k];
        }
        if (u2 < 1e-6) { /* a degenerate direction: use the first axis */
            bi[0] = 1, u2 = 1;
        }
        int kind = (i + first_kind) % 4;
        double target = kind == 0   ? 0
                        : kind == 1 ? m * (1.5 + siam_rng_uniform(rng))
                                    : m * (0.1 + 0.8 * siam_rng_uniform(rng));
        for (int k = 0; k < dim; k++)
            bi[k] = (float)(ai[k] + bi[k] * target / sqrt(u2));
        y[i] = (uint32_t)siam_rng_below(rng, 2);
    }
}

static void check_random(siam_service *svc, siam_rng *rng, int B, int dim, int first_kind) {
    float m = siam_service_margin(svc);
    siam_label_convention conv = siam_service_convention(svc);
    size_t n = (size_t)B * dim;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    float *dist = malloc((size_t)B * sizeof *dist), *ga = malloc(n * sizeof *ga),
          *gb = malloc(n * sizeof *gb);
    uint32_t *y = malloc((size_t)B * sizeof *y);
    make_batch(rng, a, b, y, B, dim, m, first_kind);
    char what[96];
    snprintf(what, sizeof what, "B %d dim %d m %g conv %d kind %d", B, dim, (double)m, (int)conv,
             first_kind);

    uint64_t step = siam_rng_u64(rng);
    siam_rpc_status st;
    Siam__V1__BatchResult *r;
    int rc = train(svc, NULL, (uint32_t)dim, a, n, b, n, y, (size_t)B, step, "rand", &r, &st);
    CHECK(rc == SIAM_RPC_OK, "%s: %s %s", what, siam_rpc_code_name(rc), st.msg);
    if (rc != SIAM_RPC_OK)
        goto out;
    CHECK(r->step == step, "%s: step %llu echoed as %llu", what, (unsigned long long)step,
          (unsigned long long)r->step);
    CHECK(r->n_distances == (size_t)B && r->n_grad_left == n && r->n_grad_right == n,
          "%s: answer sizes %zu %zu %zu", what, r->n_distances, r->n_grad_left, r->n_grad_right);
    if (r->n_distances != (size_t)B || r->n_grad_left != n || r->n_grad_right != n) {
        siam__v1__batch_result__free_unpacked(r, NULL);
        goto out;
    }

    /* bit for bit what lib/nn/siam_loss computes */
    float loss = siam_contrastive_forward(dist, a, b, y, B, dim, m, conv);
    siam_contrastive_backward(ga, gb, a, b, dist, y, B, dim, m, conv);
    CHECK(memcmp(&loss, &r->loss, sizeof loss) == 0, "%s: loss %.9g vs lib/nn/siam_loss %.9g", what,
          (double)r->loss, (double)loss);
    CHECK(memcmp(dist, r->distances, (size_t)B * sizeof *dist) == 0, "%s: distances differ", what);
    CHECK(memcmp(ga, r->grad_left, n * sizeof *ga) == 0, "%s: grad_left differs", what);
    CHECK(memcmp(gb, r->grad_right, n * sizeof *gb) == 0, "%s: grad_right differs", what);

    /* distances and loss against double precision computed here */
    for (int i = 0; i < B; i++) {
        double d2 = 0;
        for (int k = 0; k < dim; k++) {
            double t = (double)a[(size_t)i * dim + k] - b[(size_t)i * dim + k];
            d2 += t * t;
        }
        double e = fabs(r->distances[i] - sqrt(d2)) / (sqrt(d2) > 1e-30 ? sqrt(d2) : 1.0);
        if (e > worst_dist_rel)
            worst_dist_rel = e;
        CHECK(e <= 1e-6, "%s: distance %d is %.9g, expected %.9g", what, i, (double)r->distances[i],
              sqrt(d2));
        if (d2 == 0) /* identical embeddings: no gradient under either label, and no NaN */
            for (int k = 0; k < dim; k++)
                CHECK(r->grad_left[(size_t)i * dim + k] == 0.0f &&
                          r->grad_right[(size_t)i * dim + k] == 0.0f,
                      "%s: pair %d at D = 0 has gradient %g", what, i,
                      (double)r->grad_left[(size_t)i * dim + k]);
    }
    double ref = tu_contrastive_ref(a, b, y, B, dim, m, conv == SIAM_LABELS_SIMILAR);
    double le = fabs(r->loss - ref) / (ref > 1e-30 ? ref : 1.0);
    if (le > worst_loss_rel)
        worst_loss_rel = le;
    CHECK(le <= 1e-6, "%s: loss %.9g, double reference %.12g", what, (double)r->loss, ref);

    /* gradients against central differences of the loss as the service reports it, for a
     * sample of components; pairs within reach of the hinge's kink (|D - m|) or of the cone
     * at D = 0 of a hinged pair are skipped (identical pairs, D exactly 0, are kept). */
    const double h = 1e-3;
    int samples = (int)(n < 24 ? 2 * n : 24);
    for (int t = 0; t < samples; t++) {
        int side = (int)siam_rng_below(rng, 2);
        size_t k = (size_t)siam_rng_below(rng, n);
        if (samples == (int)(2 * n)) { /* small batch: every component of both sides */
            side = t & 1;
            k = (size_t)t / 2;
        }
        float d = r->distances[k / dim];
        if ((d > 0 && d < 4 * h) || fabs(d - m) < 4 * h) {
            fd_skipped++;
            continue;
        }
        float *v = side ? b : a;
        float keep = v[k];
        float xp = (float)(keep + h), xm = (float)(keep - h);
        v[k] = xp;
        double lp = served_loss(svc, (uint32_t)dim, a, b, y, B);
        v[k] = xm;
        double lm = served_loss(svc, (uint32_t)dim, a, b, y, B);
        v[k] = keep;
        double step_x = (double)xp - xm;
        double num = (lp - lm) / step_x;
        double g = side ? r->grad_right[k] : r->grad_left[k];
        /* float rounding of the two served losses, amplified by 1/(2h) */
        double lmax = fabs(lp) > fabs(lm) ? fabs(lp) : fabs(lm);
        double abs_tol = 8 * FLT_EPSILON * lmax / step_x + 1e-9;
        double err = fabs(g - num), tol = 1e-2 * fabs(g) + abs_tol;
        if (err / tol > worst_fd_ratio)
            worst_fd_ratio = err / tol;
        if (fabs(g) >= 100 * abs_tol) { /* rounding is under 1% of the gradient */
            fd_strong++;
            if (err / fabs(g) > worst_fd_rel)
                worst_fd_rel = err / fabs(g);
        }
        CHECK(err <= tol,
              "%s: d/d%s[%zu] (pair %zu, D %.6g) analytic %.9g, central difference %.9g", what,
              side ? "right" : "left", k, k / dim, (double)d, g, num);
        fd_checked++;
    }
    siam__v1__batch_result__free_unpacked(r, NULL);
out:
    free(a), free(b), free(dist), free(ga), free(gb), free(y);
}

static void test_random_batches(void) {
    siam_rng rng;
    siam_rng_seed(&rng, 20261124);
    const int Bs[] = {1, 2, 7, 64}, dims[] = {1, 5, 128};
    const float margins[] = {1.0f, 2.0f};
    int runs = 0;
    for (int c = 0; c < 2; c++)
        for (int mi = 0; mi < 2; mi++) {
            siam_service *svc = NULL;
            siam_error err;
            int rc =
                siam_service_create(&svc, margins[mi], (siam_label_convention)c, 0, "test", &err);
            CHECK(rc == SIAM_OK, "init: %s", err.msg);
            if (rc)
                continue;
            for (int bi = 0; bi < 4; bi++)
                for (int di = 0; di < 3; di++) {
                    int trials = Bs[bi] == 1 ? 4 : 2; /* B = 1: each kind of pair once */
                    for (int t = 0; t < trials; t++, runs++)
                        check_random(svc, &rng, Bs[bi], dims[di], t);
                }
            siam_service_free(svc);
        }
    CHECK(fd_checked > 500, "only %d finite-difference checks ran", fd_checked);
    CHECK(fd_strong > 200, "only %d gradient components well above the rounding floor", fd_strong);
    printf("random batches: %d runs; max relative error: distance %.3g, loss vs double %.3g\n"
           "central differences: %d components (%d skipped near a kink), max error / tolerance "
           "%.3g; %d components with |g| >= 100x the rounding floor: max relative error %.3g\n",
           runs, worst_dist_rel, worst_loss_rel, fd_checked, fd_skipped, worst_fd_ratio, fd_strong,
           worst_fd_rel);
}

/* A stream's summary and the stream's dim across batches. */
static void test_stream_stats(void) {
    siam_service *svc = NULL;
    siam_error err;
    CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "test", &err) == 0, "init");
    siam_train_stream ts;
    memset(&ts, 0, sizeof ts);
    float a[6] = {0.5f, 0, 0, 0, 0, 0}, b[6] = {0};
    uint32_t y[3] = {1, 0, 0}; /* dim 2: losses 0.25, 1, 1 -> mean 0.75 */
    double sum = 0;
    for (int s = 0; s < 3; s++) {
        siam_rpc_status st;
        Siam__V1__BatchResult *r;
        int B = 3 - s; /* 3, 2, 1 pairs */
        int rc = train(svc, &ts, 2, a, (size_t)2 * B, b, (size_t)2 * B, y, (size_t)B, (uint64_t)s,
                       "w-stats", &r, &st);
        CHECK(rc == SIAM_RPC_OK, "stream batch %d: %s", s, st.msg);
        if (r) {
            sum += (double)r->loss * B;
            siam__v1__batch_result__free_unpacked(r, NULL);
        }
    }
    CHECK(strcmp(ts.worker_id, "w-stats") == 0, "stream worker_id '%s'", ts.worker_id);
    CHECK(ts.dim == 2 && ts.batches == 3 && ts.pairs == 6, "stream dim %u batches %llu pairs %llu",
          ts.dim, (unsigned long long)ts.batches, (unsigned long long)ts.pairs);
    CHECK_NEAR(ts.loss_sum, sum, 1e-6, "stream loss_sum");
    /* pair losses 0.25 (D = .5, y = 1), 1 and 1 (D = 0, y = 0): batches of 3, 2, 1 pairs */
    CHECK_NEAR(ts.loss_sum, 2.25 + 1.25 + 0.25, 1e-6, "stream loss_sum by hand");
    siam_service_free(svc);
}

/* ------------------------------------------------------------------------------------------ */
/* Validation */

/* A request that must fail with `code` and a message containing both needles; afterwards the
 * same service still trains a good batch. */
static void expect_fail(siam_service *svc, int rc, int code, const siam_rpc_status *st,
                        const char *n1, const char *n2, const char *what) {
    CHECK(rc == code, "%s: got %s (%s), expected %s", what, siam_rpc_code_name(rc), st->msg,
          siam_rpc_code_name(code));
    CHECK(strstr(st->msg, n1) != NULL, "%s: message '%s' lacks '%s'", what, st->msg, n1);
    if (n2)
        CHECK(strstr(st->msg, n2) != NULL, "%s: message '%s' lacks '%s'", what, st->msg, n2);
    float a[2] = {1, 2}, b[2] = {1, 0};
    uint32_t y = 1;
    siam_rpc_status ok;
    Siam__V1__BatchResult *r;
    siam_train_stream ts;
    memset(&ts, 0, sizeof ts);
    int rc2 = train(svc, &ts, 2, a, 2, b, 2, &y, 1, 7, "after", &r, &ok);
    CHECK(rc2 == SIAM_RPC_OK && r && r->loss == 4.0f && r->distances[0] == 2.0f,
          "%s: the next good batch failed: %s", what, ok.msg);
    siam__v1__batch_result__free_unpacked(r, NULL);
}

static void test_train_validation(void) {
    siam_service *svc = NULL;
    siam_error err;
    CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "test", &err) == 0, "init");
    enum { B = 8, DIM = 128, N = B * DIM };
    float *a = calloc(N + 8, sizeof *a), *b = calloc(N + 8, sizeof *b);
    uint32_t y[B] = {0, 1, 0, 1, 1, 0, 0, 1};
    siam_rpc_status st;
    Siam__V1__BatchResult *r;
    int rc;

    rc = train(svc, NULL, 0, a, N, b, N, y, B, 0, "v", &r, &st);
    expect_fail(svc, rc, SIAM_RPC_INVALID_ARGUMENT, &st, "dim is 0", "1..4096", "dim 0");
    rc = train(svc, NULL, 4097, a, N, b, N, y, B, 0, "v", &r, &st);
    expect_fail(svc, rc, SIAM_RPC_INVALID_ARGUMENT, &st, "dim is 4097", "1..4096", "dim 4097");
    rc = train(svc, NULL, DIM, a, 1000, b, N, y, B, 0, "v", &r, &st);
    expect_fail(svc, rc, SIAM_RPC_INVALID_ARGUMENT, &st, "left has 1000 floats", "8*128 = 1024",
                "short left");
    rc = train(svc, NULL, DIM, a, N, b, N - 1, y, B, 0, "v", &r, &st);
    expect_fail(svc, rc, SIAM_RPC_INVALID_ARGUMENT, &st, "right has 1023 floats", "1024",
                "short right");
    rc = train(svc, NULL, DIM, a, N, b, N + 8, y, B, 0, "v", &r, &st);
    expect_fail(svc, rc, SIAM_RPC_INVALID_ARGUMENT, &st, "right has 1032 floats", "1024",
                "long right");
    rc = train(svc, NULL, DIM, a, N, b, N, y, B - 1, 0, "v", &r, &st);
    expect_fail(svc, rc, SIAM_RPC_INVALID_ARGUMENT, &st, "left has 1024 floats", "7*128 = 896",
                "one label missing");
    y[5] = 2;
    rc = train(svc, NULL, DIM, a, N, b, N, y, B, 0, "v", &r, &st);
    expect_fail(svc, rc, SIAM_RPC_INVALID_ARGUMENT, &st, "labels[5] is 2", "0 or 1", "label 2");
    y[5] = 4294967295u;
    rc = train(svc, NULL, DIM, a, N, b, N, y, B, 0, "v", &r, &st);
    expect_fail(svc, rc, SIAM_RPC_INVALID_ARGUMENT, &st, "labels[5] is 4294967295", NULL,
                "label 2^32-1");
    y[5] = 0;
    rc = train(svc, NULL, DIM, a, 0, b, 0, y, 0, 0, "v", &r, &st);
    expect_fail(svc, rc, SIAM_RPC_INVALID_ARGUMENT, &st, "labels is empty", NULL, "empty batch");
    rc = train(svc, NULL, DIM, a, N, b, N, y, 0, 0, "v", &r, &st);
    expect_fail(svc, rc, SIAM_RPC_INVALID_ARGUMENT, &st, "labels is empty", NULL,
                "no labels, embeddings present");

    /* non-finite floats, named by index, pair and component */
    const struct {
        int side;
        size_t index;
        float value;
        const char *n1, *n2;
    } bad[] = {
        {0, 17, NAN, "left[17] is nan", "pair 0, component 17"},
        {1, 17, NAN, "right[17] is nan", "pair 0, component 17"},
        {0, 300, INFINITY, "left[300] is inf", "pair 2, component 44"},
        {1, 1023, -INFINITY, "right[1023] is -inf", "pair 7, component 127"},
        {1, 0, INFINITY, "right[0] is inf", "pair 0, component 0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        float *v = bad[i].side ? b : a;
        v[bad[i].index] = bad[i].value;
        rc = train(svc, NULL, DIM, a, N, b, N, y, B, 0, "v", &r, &st);
        expect_fail(svc, rc, SIAM_RPC_INVALID_ARGUMENT, &st, bad[i].n1, bad[i].n2, bad[i].n1);
        CHECK(strstr(st.msg, "finite") != NULL, "%s: message '%s'", bad[i].n1, st.msg);
        v[bad[i].index] = 0.0f;
    }

    /* dim fixed by a stream's first good batch; a failed batch leaves the stream as it was */
    {
        siam_train_stream ts;
        memset(&ts, 0, sizeof ts);
        y[0] = 3;
        rc = train(svc, &ts, 4, a, 4 * B, b, 4 * B, y, B, 0, "s", &r, &st);
        CHECK(rc == SIAM_RPC_INVALID_ARGUMENT && ts.dim == 0 && ts.batches == 0,
              "a failed first batch fixed the stream: dim %u batches %llu", ts.dim,
              (unsigned long long)ts.batches);
        CHECK(strcmp(ts.worker_id, "s") == 0, "a failed first batch still names the stream: '%s'",
              ts.worker_id);
        y[0] = 0;
        rc = train(svc, &ts, 4, a, 4 * B, b, 4 * B, y, B, 0, "s", &r, &st);
        CHECK(rc == SIAM_RPC_OK && ts.dim == 4, "stream first batch: %s", st.msg);
        siam__v1__batch_result__free_unpacked(r, NULL);
        rc = train(svc, &ts, 2, a, 2 * B, b, 2 * B, y, B, 1, "s", &r, &st);
        expect_fail(svc, rc, SIAM_RPC_INVALID_ARGUMENT, &st, "dim changed from 4 to 2",
                    "within one stream", "dim change");
        rc = train(svc, &ts, 4, a, 4 * B, b, 4 * B, y, B, 2, "s", &r, &st);
        CHECK(rc == SIAM_RPC_OK && ts.batches == 2 && ts.pairs == 2 * B,
              "stream after the failed batch: %s, batches %llu", st.msg,
              (unsigned long long)ts.batches);
        siam__v1__batch_result__free_unpacked(r, NULL);
    }

    /* bytes that are not an EmbeddingBatch */
    {
        uint8_t junk[16];
        memset(junk, 0xff, sizeof junk);
        rc = train_bytes(svc, NULL, junk, sizeof junk, &r, &st);
        expect_fail(svc, rc, SIAM_RPC_INVALID_ARGUMENT, &st, "malformed EmbeddingBatch",
                    "not a valid protobuf message", "junk");
        /* a good batch cut short */
        Siam__V1__EmbeddingBatch eb = SIAM__V1__EMBEDDING_BATCH__INIT;
        eb.dim = DIM, eb.n_left = N, eb.left = a, eb.n_right = N, eb.right = b;
        eb.n_labels = B, eb.labels = y;
        size_t len = siam__v1__embedding_batch__get_packed_size(&eb);
        uint8_t *buf = malloc(len);
        siam__v1__embedding_batch__pack(&eb, buf);
        rc = train_bytes(svc, NULL, buf, len - 5, &r, &st);
        expect_fail(svc, rc, SIAM_RPC_INVALID_ARGUMENT, &st, "malformed EmbeddingBatch", NULL,
                    "truncated");
        free(buf);
        /* an empty message decodes (every field default) and is refused by validation */
        rc = train_bytes(svc, NULL, NULL, 0, &r, &st);
        expect_fail(svc, rc, SIAM_RPC_INVALID_ARGUMENT, &st, "dim is 0", NULL, "empty message");
    }

    /* finite but enormous embeddings: the loss overflows float, refused rather than answered
     * with inf/NaN gradients (IEEE arithmetic expected inside: traps off for this one) */
    {
        float big_a[1] = {3e38f}, big_b[1] = {-3e38f};
        uint32_t y0 = 0;
        fedisableexcept(FE_INVALID | FE_DIVBYZERO);
        rc = train(svc, NULL, 1, big_a, 1, big_b, 1, &y0, 1, 0, "v", &r, &st);
        tu_trap_fp();
        expect_fail(svc, rc, SIAM_RPC_INVALID_ARGUMENT, &st, "too large", "pair 0",
                    "overflowing embeddings");
    }

    /* failures count neither as steps nor as pairs */
    Siam__V1__StatusResponse *s = status(svc);
    if (s) {
        const Siam__V1__WorkerStatus *w = find_worker(s, "v");
        CHECK(w == NULL, "worker 'v' (only failed batches) is listed");
        const Siam__V1__WorkerStatus *after = find_worker(s, "after");
        CHECK(after && s->global_step == after->pairs_trained + 2 && find_worker(s, "s") &&
                  find_worker(s, "s")->pairs_trained == 2 * B,
              "global_step %llu after failures", (unsigned long long)s->global_step);
        siam__v1__status_response__free_unpacked(s, NULL);
    }
    free(a), free(b);
    siam_service_free(svc);
}

/* ------------------------------------------------------------------------------------------ */
/* Similarity */

static void test_similarity(void) {
    siam_service *svc = NULL;
    siam_error err;
    /* margin 10: the default threshold is 5, the hypotenuse of the 3-4-5 triangle */
    CHECK(siam_service_create(&svc, 10.0f, SIAM_LABELS_SIMILAR, 0, "test", &err) == 0, "init");
    CHECK(siam_service_threshold(svc) == 5.0f, "default threshold %g, expected margin/2 = 5",
          (double)siam_service_threshold(svc));
    float l[8] = {0, 0, 1, 1, 0, 0, 0, 0};
    float r[8] = {3, 4, 1, 1, 6, 8, 0, 0};
    r[7] = nextafterf(5.0f, 6.0f); /* pair 3 (0,0)-(0,5+): just beyond the threshold */
    Siam__V1__SimilarityResponse *q;
    siam_rpc_status st;
    int rc = similarity(svc, 2, l, 8, r, 8, NULL, 0, NULL, 0, &q, &st);
    CHECK(rc == SIAM_RPC_OK, "similarity: %s", st.msg);
    if (q) {
        CHECK(q->n_distances == 4 && q->n_scores == 4 && q->n_same == 4, "4 answers");
        CHECK(q->threshold == 5.0f, "threshold %g", (double)q->threshold);
        if (q->n_distances == 4 && q->n_scores == 4 && q->n_same == 4) {
            CHECK(q->distances[0] == 5.0f, "3-4-5: %.9g", (double)q->distances[0]);
            CHECK(q->distances[1] == 0.0f, "identical: %.9g", (double)q->distances[1]);
            CHECK(q->distances[2] == 10.0f, "6-8-10: %.9g", (double)q->distances[2]);
            CHECK(q->distances[3] == nextafterf(5.0f, 6.0f), "5+: %.9g", (double)q->distances[3]);
            CHECK_NEAR(q->scores[0], 0.5, 1e-7, "score at the threshold");
            CHECK(q->scores[1] == 1.0f, "score of identical embeddings %g", (double)q->scores[1]);
            CHECK_NEAR(q->scores[2], 1.0 / (1.0 + 4.0), 1e-7, "score at twice the threshold");
            CHECK(q->scores[3] < 0.5f && q->scores[3] > 0.49f, "score just beyond %g",
                  (double)q->scores[3]);
            CHECK(q->same[0] && q->same[1] && !q->same[2] && !q->same[3],
                  "same: %d %d %d %d (D = threshold counts as same)", q->same[0], q->same[1],
                  q->same[2], q->same[3]);
            for (int i = 0; i < 4; i++)
                CHECK(q->scores[i] >= 0 && q->scores[i] <= 1, "score %d in [0,1]: %g", i,
                      (double)q->scores[i]);
        }
        siam__v1__similarity_response__free_unpacked(q, NULL);
    }
    /* dim 3 and an explicit threshold */
    {
        siam_service *s2 = NULL;
        CHECK(siam_service_create(&s2, 1.0f, SIAM_LABELS_DISSIMILAR, 3.0f, "t", &err) == 0, "init");
        float a[3] = {1, 2, 2}, b[3] = {0, 0, 0};
        rc = similarity(s2, 3, a, 3, b, 3, NULL, 0, NULL, 0, &q, &st);
        CHECK(rc == SIAM_RPC_OK && q && q->n_distances == 1 && q->distances[0] == 3.0f &&
                  q->same[0] && q->threshold == 3.0f,
              "dim 3 with threshold 3: %s", st.msg);
        if (q)
            CHECK_NEAR(q->scores[0], 0.5, 1e-7, "score at the explicit threshold");
        siam__v1__similarity_response__free_unpacked(q, NULL);
        siam_service_free(s2);
    }

    /* images: no model yet */
    uint8_t img[784] = {0};
    rc = similarity(svc, 0, NULL, 0, NULL, 0, img, sizeof img, img, sizeof img, &q, &st);
    CHECK(rc == SIAM_RPC_FAILED_PRECONDITION && strstr(st.msg, "no model") &&
              strstr(st.msg, "embeddings"),
          "images: %s %s", siam_rpc_code_name(rc), st.msg);
    rc = similarity(svc, 2, l, 2, r, 2, NULL, 0, img, 784, &q, &st);
    CHECK(rc == SIAM_RPC_FAILED_PRECONDITION, "right images only: %s", siam_rpc_code_name(rc));

    /* bad requests */
    struct {
        uint32_t dim;
        size_t nl, nr;
        const char *n1, *n2;
    } bad[] = {
        {0, 8, 8, "dim is 0", "1..4096"},
        {4097, 8, 8, "dim is 4097", "1..4096"},
        {3, 8, 8, "left has 8 floats", "multiple of dim = 3"},
        {2, 0, 0, "left has 0 floats", "non-zero multiple"},
        {2, 8, 6, "right has 6 floats", "as many as left (8"},
        {2, 6, 8, "right has 8 floats", "as many as left (6"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = similarity(svc, bad[i].dim, l, bad[i].nl, r, bad[i].nr, NULL, 0, NULL, 0, &q, &st);
        CHECK(rc == SIAM_RPC_INVALID_ARGUMENT && strstr(st.msg, bad[i].n1) &&
                  strstr(st.msg, bad[i].n2),
              "similarity %s: got %s '%s'", bad[i].n1, siam_rpc_code_name(rc), st.msg);
    }
    l[5] = NAN;
    rc = similarity(svc, 2, l, 8, r, 8, NULL, 0, NULL, 0, &q, &st);
    CHECK(rc == SIAM_RPC_INVALID_ARGUMENT && strstr(st.msg, "left[5] is nan") &&
              strstr(st.msg, "pair 2, component 1"),
          "similarity NaN: %s", st.msg);
    l[5] = 0;
    r[6] = -INFINITY;
    rc = similarity(svc, 2, l, 8, r, 8, NULL, 0, NULL, 0, &q, &st);
    CHECK(rc == SIAM_RPC_INVALID_ARGUMENT && strstr(st.msg, "right[6] is -inf"),
          "similarity -inf: %s", st.msg);
    r[6] = 0;
    {
        uint8_t junk[16];
        memset(junk, 0xff, sizeof junk);
        siam_rpc_buf resp = {NULL, 0};
        rc = siam_service_similarity(svc, junk, sizeof junk, &resp, &st);
        check_outcome(rc, &st, &resp, "similarity junk");
        CHECK(rc == SIAM_RPC_INVALID_ARGUMENT && strstr(st.msg, "malformed SimilarityRequest"),
              "similarity junk: %s", st.msg);
    }
    /* still answering */
    rc = similarity(svc, 2, l, 8, r, 8, NULL, 0, NULL, 0, &q, &st);
    CHECK(rc == SIAM_RPC_OK && q && q->distances[0] == 5.0f, "similarity after failures: %s",
          st.msg);
    siam__v1__similarity_response__free_unpacked(q, NULL);
    siam_service_free(svc);
}

/* ------------------------------------------------------------------------------------------ */
/* Status and Health */

static void train_n(siam_service *svc, const char *worker, int batches, int B) {
    float a[4 * 8] = {0}, b[4 * 8] = {0};
    uint32_t y[8] = {0};
    for (int s = 0; s < batches; s++) {
        siam_rpc_status st;
        Siam__V1__BatchResult *r;
        int rc = train(svc, NULL, 4, a, (size_t)4 * B, b, (size_t)4 * B, y, (size_t)B, (uint64_t)s,
                       worker, &r, &st);
        CHECK(rc == SIAM_RPC_OK, "%s batch %d: %s", worker ? worker : "(null)", s, st.msg);
        siam__v1__batch_result__free_unpacked(r, NULL);
    }
}

static void test_status_health(void) {
    siam_service *svc = NULL;
    siam_error err;
    CHECK(siam_service_create(&svc, 2.0f, SIAM_LABELS_DISSIMILAR, 0, "9.8.7", &err) == 0, "init");
    Siam__V1__StatusResponse *s = status(svc);
    if (s) {
        CHECK(strcmp(s->version, "9.8.7") == 0, "version '%s'", s->version);
        CHECK(s->margin == 2.0f, "margin %g", (double)s->margin);
        CHECK(strcmp(s->label_convention, "dissimilar") == 0, "convention '%s'",
              s->label_convention);
        CHECK(strcmp(s->model_spec, "") == 0 && s->round == 0, "model '%s' round %llu",
              s->model_spec, (unsigned long long)s->round);
        CHECK(s->global_step == 0 && s->n_workers == 0, "fresh: step %llu, %zu workers",
              (unsigned long long)s->global_step, s->n_workers);
        siam__v1__status_response__free_unpacked(s, NULL);
    }
    train_n(svc, "w1", 3, 4);
    train_n(svc, "w2", 2, 2);
    train_n(svc, "", 1, 1);
    train_n(svc, "w1", 1, 8);
    s = status(svc);
    if (s) {
        CHECK(s->global_step == 7, "global_step %llu, expected 7",
              (unsigned long long)s->global_step);
        CHECK(s->n_workers == 3, "%zu workers, expected 3", s->n_workers);
        const Siam__V1__WorkerStatus *w1 = find_worker(s, "w1"), *w2 = find_worker(s, "w2"),
                                     *an = find_worker(s, "anonymous");
        CHECK(w1 && w1->pairs_trained == 3 * 4 + 8, "w1 pairs %llu",
              w1 ? (unsigned long long)w1->pairs_trained : 0ull);
        CHECK(w2 && w2->pairs_trained == 4, "w2 pairs %llu",
              w2 ? (unsigned long long)w2->pairs_trained : 0ull);
        CHECK(an && an->pairs_trained == 1, "anonymous pairs %llu",
              an ? (unsigned long long)an->pairs_trained : 0ull);
        for (size_t i = 0; i < s->n_workers; i++)
            CHECK(s->workers[i]->last_seen_seconds_ago >= 0 &&
                      s->workers[i]->last_seen_seconds_ago < 60,
                  "%s last seen %g s ago", s->workers[i]->worker_id,
                  s->workers[i]->last_seen_seconds_ago);
        siam__v1__status_response__free_unpacked(s, NULL);
    }
    /* the other convention's name */
    {
        siam_service *s2 = NULL;
        CHECK(siam_service_create(&s2, 1.0f, SIAM_LABELS_SIMILAR, 0, "v", &err) == 0, "init");
        Siam__V1__StatusResponse *t = status(s2);
        CHECK(t && strcmp(t->label_convention, "similar") == 0 && t->margin == 1.0f,
              "similar convention");
        siam__v1__status_response__free_unpacked(t, NULL);
        siam_service_free(s2);
    }
    /* worker names are echoed as valid UTF-8 without control characters, cut to fit */
    {
        char longname[300], cut[130];
        memset(longname, 'x', sizeof longname - 1);
        longname[sizeof longname - 1] = '\0';
        memset(cut, 'x', 126);
        memcpy(cut + 126, "\xc3\xb6", 3); /* 126 x and an o-umlaut: 128 bytes, too long */
        train_n(svc, longname, 1, 1);
        train_n(svc, cut, 1, 1);
        train_n(svc,
                "\xff\x01"
                "bad\xc3",
                1, 1);
        train_n(svc, "w\xc3\xb6rker-\xe2\x82\xac", 1, 1);
        s = status(svc);
        if (s) {
            char want[128];
            memset(want, 'x', 127);
            want[127] = '\0';
            const Siam__V1__WorkerStatus *w = find_worker(s, want);
            CHECK(w && w->pairs_trained == 1, "300-byte name not cut to 127 bytes");
            want[126] = '\0';
            w = find_worker(s, want);
            CHECK(w && w->pairs_trained == 1, "name not cut at a character boundary");
            CHECK(find_worker(s, "??bad?") != NULL, "invalid UTF-8 and control bytes not replaced");
            CHECK(find_worker(s, "w\xc3\xb6rker-\xe2\x82\xac") != NULL, "valid UTF-8 name changed");
            siam__v1__status_response__free_unpacked(s, NULL);
        }
    }
    /* Status decodes its (empty) request: garbage is refused, no bytes are fine */
    {
        uint8_t junk[16];
        memset(junk, 0xff, sizeof junk);
        siam_rpc_buf resp = {NULL, 0};
        siam_rpc_status st;
        int rc = siam_service_status(svc, junk, sizeof junk, &resp, &st);
        check_outcome(rc, &st, &resp, "status junk");
        CHECK(rc == SIAM_RPC_INVALID_ARGUMENT && strstr(st.msg, "malformed StatusRequest"),
              "status junk: %s", st.msg);
        rc = siam_service_status(svc, NULL, 0, &resp, &st);
        CHECK(rc == SIAM_RPC_OK && resp.data, "status of 0 bytes: %s", st.msg);
        siam_rpc_buf_free(&resp);
    }

    /* Health */
    int serving;
    siam_rpc_status st;
    int rc = health(svc, "", &serving, &st);
    CHECK(rc == SIAM_RPC_OK &&
              serving == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING,
          "health '': %s %d", st.msg, serving);
    rc = health(svc, SIAM_WIRE_SERVICE, &serving, &st);
    CHECK(rc == SIAM_RPC_OK &&
              serving == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING,
          "health siam.v1.Siamese: %s %d", st.msg, serving);
    rc = health(svc, "x", &serving, &st);
    CHECK(rc == SIAM_RPC_NOT_FOUND && strcmp(st.msg, "unknown service 'x'") == 0,
          "health x: %s '%s'", siam_rpc_code_name(rc), st.msg);
    rc = health(svc, "siam.v1.Siamese2", &serving, &st);
    CHECK(rc == SIAM_RPC_NOT_FOUND && strstr(st.msg, "siam.v1.Siamese2"), "health Siamese2: %s",
          st.msg);
    {
        uint8_t junk[16];
        memset(junk, 0xff, sizeof junk);
        siam_rpc_buf resp = {NULL, 0};
        rc = siam_service_health(svc, junk, sizeof junk, &resp, &st);
        check_outcome(rc, &st, &resp, "health junk");
        CHECK(rc == SIAM_RPC_INVALID_ARGUMENT && strstr(st.msg, "malformed HealthCheckRequest"),
              "health junk: %s", st.msg);
        rc = siam_service_health(svc, NULL, 0, &resp, &st); /* service "" */
        CHECK(rc == SIAM_RPC_OK, "health of 0 bytes: %s", st.msg);
        siam_rpc_buf_free(&resp);
    }
    siam_service_free(svc);
}

/* A full worker table: new workers are not listed, their batches still succeed. */
static void test_worker_table_full(void) {
    siam_service *svc = NULL;
    siam_error err;
    CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "t", &err) == 0, "init");
    int n = SIAM_SERVICE_MAX_WORKERS + 6, failed = 0;
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "w%d", i);
        float a = 1, b = 0;
        uint32_t y = 1;
        siam_rpc_status st;
        Siam__V1__BatchResult *r;
        failed += train(svc, NULL, 1, &a, 1, &b, 1, &y, 1, 0, id, &r, &st) != SIAM_RPC_OK;
        siam__v1__batch_result__free_unpacked(r, NULL);
    }
    CHECK(failed == 0, "%d batches failed with a full worker table", failed);
    Siam__V1__StatusResponse *s = status(svc);
    if (s) {
        CHECK(s->n_workers == SIAM_SERVICE_MAX_WORKERS && s->global_step == (uint64_t)n,
              "%zu workers listed, step %llu", s->n_workers, (unsigned long long)s->global_step);
        CHECK(find_worker(s, "w0") && !find_worker(s, "w1025"), "first workers kept");
        siam__v1__status_response__free_unpacked(s, NULL);
    }
    siam_service_free(svc);
}

/* ------------------------------------------------------------------------------------------ */
/* Several threads at once, as the server's completion-queue threads call it */

enum { T_THREADS = 6, T_BATCHES = 40, T_B = 3, T_DIM = 16 };

typedef struct {
    siam_service *svc;
    int id;
    int bad; /* answers that differed from lib/nn/siam_loss, or failed */
} thread_arg;

static void *train_thread(void *p) {
    thread_arg *t = p;
    siam_rng rng;
    siam_rng_seed(&rng, 1000u + (unsigned)t->id);
    char id[16];
    snprintf(id, sizeof id, "t%d", t->id);
    siam_train_stream ts;
    memset(&ts, 0, sizeof ts);
    for (int s = 0; s < T_BATCHES; s++) {
        float a[T_B * T_DIM], b[T_B * T_DIM], d[T_B], ga[T_B * T_DIM], gb[T_B * T_DIM];
        uint32_t y[T_B];
        make_batch(&rng, a, b, y, T_B, T_DIM, siam_service_margin(t->svc), s);
        siam_rpc_status st;
        Siam__V1__BatchResult *r;
        if (train(t->svc, &ts, T_DIM, a, T_B * T_DIM, b, T_B * T_DIM, y, T_B, (uint64_t)s, id, &r,
                  &st) != SIAM_RPC_OK) {
            t->bad++;
            continue;
        }
        float l = siam_contrastive_forward(d, a, b, y, T_B, T_DIM, siam_service_margin(t->svc),
                                           siam_service_convention(t->svc));
        siam_contrastive_backward(ga, gb, a, b, d, y, T_B, T_DIM, siam_service_margin(t->svc),
                                  siam_service_convention(t->svc));
        if (r->step != (uint64_t)s || r->loss != l || memcmp(r->grad_left, ga, sizeof ga) ||
            memcmp(r->grad_right, gb, sizeof gb))
            t->bad++;
        siam__v1__batch_result__free_unpacked(r, NULL);
        if (s % 10 == 0) { /* Status and Similarity interleaved with the training */
            Siam__V1__StatusResponse *q = status(t->svc);
            siam__v1__status_response__free_unpacked(q, NULL);
            Siam__V1__SimilarityResponse *sr;
            if (similarity(t->svc, T_DIM, a, T_B * T_DIM, b, T_B * T_DIM, NULL, 0, NULL, 0, &sr,
                           &st) != SIAM_RPC_OK ||
                memcmp(sr->distances, d, sizeof d))
                t->bad++;
            siam__v1__similarity_response__free_unpacked(sr, NULL);
        }
    }
    if (ts.batches != T_BATCHES || ts.pairs != (uint64_t)T_BATCHES * T_B)
        t->bad++;
    return NULL;
}

static void test_threads(void) {
    siam_service *svc = NULL;
    siam_error err;
    CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "t", &err) == 0, "init");
    pthread_t th[T_THREADS];
    thread_arg args[T_THREADS];
    int started[T_THREADS];
    for (int i = 0; i < T_THREADS; i++) { /* no CHECK here: the threads are counting */
        args[i] = (thread_arg){svc, i, 0};
        started[i] = pthread_create(&th[i], NULL, train_thread, &args[i]) == 0;
    }
    for (int i = 0; i < T_THREADS; i++)
        if (started[i])
            pthread_join(th[i], NULL);
    for (int i = 0; i < T_THREADS; i++) {
        CHECK(started[i], "pthread_create %d", i);
        CHECK(args[i].bad == 0, "thread %d: %d bad answers", i, args[i].bad);
    }
    Siam__V1__StatusResponse *s = status(svc);
    if (s) {
        CHECK(s->global_step == (uint64_t)T_THREADS * T_BATCHES && s->n_workers == T_THREADS,
              "after threads: step %llu, %zu workers", (unsigned long long)s->global_step,
              s->n_workers);
        for (size_t i = 0; i < s->n_workers; i++)
            CHECK(s->workers[i]->pairs_trained == (uint64_t)T_BATCHES * T_B, "%s: %llu pairs",
                  s->workers[i]->worker_id, (unsigned long long)s->workers[i]->pairs_trained);
        siam__v1__status_response__free_unpacked(s, NULL);
    }
    siam_service_free(svc);
}

static void test_init(void) {
    siam_service *svc = NULL;
    siam_error err;
    const float bad_margins[] = {0.0f, -1.0f, NAN, INFINITY};
    for (int i = 0; i < 4; i++) {
        err.msg[0] = '\0';
        CHECK(siam_service_create(&svc, bad_margins[i], SIAM_LABELS_SIMILAR, 0, "v", &err) ==
                      SIAM_ERR_ARG &&
                  strstr(err.msg, "margin"),
              "margin %g accepted (%s)", (double)bad_margins[i], err.msg);
    }
    CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, NAN, "v", &err) == SIAM_ERR_ARG,
          "NaN threshold accepted");
    CHECK(siam_service_create(&svc, 1.0f, (siam_label_convention)2, 0, "v", &err) == SIAM_ERR_ARG,
          "convention 2 accepted");
    CHECK(siam_service_create(&svc, 3.0f, SIAM_LABELS_SIMILAR, -1.0f, NULL, &err) == SIAM_OK &&
              siam_service_threshold(svc) == 1.5f && siam_service_global_step(svc) == 0 &&
              siam_service_worker_count(svc) == 0,
          "threshold <= 0 means margin/2: %g", (double)siam_service_threshold(svc));
    siam_service_free(svc);
}

/* The checkpoint fields of Status: what siam-server reports through the setters. */
static void test_status_checkpoints(void) {
    siam_service *svc = NULL;
    siam_error err;
    CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "1.0.0", &err) == 0, "init");
    Siam__V1__StatusResponse *s = status(svc);
    if (s) {
        CHECK(strcmp(s->checkpoint_path, "") == 0 && s->checkpoint_round == 0 &&
                  s->checkpoint_unix_time == 0.0 && s->checkpoint_failures == 0 &&
                  strcmp(s->checkpoint_error, "") == 0,
              "fresh: no checkpoint, no failure ('%s', '%s')", s->checkpoint_path,
              s->checkpoint_error);
        siam__v1__status_response__free_unpacked(s, NULL);
    }
    siam_service_checkpoint_written(svc, "/ck/global.ckpt", 10, 1000.5);
    siam_service_checkpoint_failed(svc, 20, 2000.25, "/ck/global.ckpt: No space left on device");
    /* a path that is not UTF-8 (the operator's bytes) must still give a valid proto3 string */
    siam_service_checkpoint_failed(svc, 30, 3000.0, "/ck/\xff\xfe: No space left on device");
    s = status(svc);
    if (s) {
        CHECK(strcmp(s->checkpoint_path, "/ck/global.ckpt") == 0 && s->checkpoint_round == 10 &&
                  s->checkpoint_unix_time == 1000.5,
              "newest written: '%s' round %llu at %f", s->checkpoint_path,
              (unsigned long long)s->checkpoint_round, s->checkpoint_unix_time);
        CHECK(s->checkpoint_failures == 2 && s->checkpoint_failed_round == 30 &&
                  s->checkpoint_failed_unix_time == 3000.0,
              "2 failures, the newest of round 30: %llu, %llu, %f",
              (unsigned long long)s->checkpoint_failures,
              (unsigned long long)s->checkpoint_failed_round, s->checkpoint_failed_unix_time);
        CHECK(strcmp(s->checkpoint_error, "/ck/??: No space left on device") == 0,
              "the newest error, as valid UTF-8: '%s'", s->checkpoint_error);
        siam__v1__status_response__free_unpacked(s, NULL);
    }
    siam_service_free(svc);
}

int main(void) {
    tu_trap_fp();
    test_init();
    test_random_batches();
    test_stream_stats();
    test_train_validation();
    test_similarity();
    test_status_health();
    test_status_checkpoints();
    test_worker_table_full();
    test_threads();
    return tu_finish();
}
