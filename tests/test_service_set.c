/* test_service_set: TrainSet through the service (server/siam_service_set) with encoded
 * protobuf requests, as siam-server's gRPC method calls it. Answers equal lib/nn/siam_set_loss
 * computed directly bit for bit (the same function on the same inputs: the service must add
 * nothing but validation and encoding) for every loss and both distances; every bad input gets
 * its status and a message naming the field, the index or the limit; degenerate sets are answered
 * with loss 0, zero gradients and a note; stream and worker-table counts; Status names the loss;
 * facenet answers semi-hard or batch-hard by the request's progress, which must be in 0..1. */
#include "test_util.h"

#include <string.h>

#include "siam_rng.h"
#include "siam_service.h"
#include "siam_set_loss.h"

#include "siam/v1/siam.pb-c.h"

/* Packs an EmbeddingSet with this progress and calls the service; *out (NULL on failure) is the
 * decoded answer. */
static int train_set_at(siam_service *svc, siam_train_stream *ts, uint32_t dim, const float *x,
                        size_t nx, const uint32_t *groups, size_t ng, uint64_t step,
                        const char *worker, float progress, Siam__V1__SetResult **out,
                        siam_rpc_status *st) {
    Siam__V1__EmbeddingSet q = SIAM__V1__EMBEDDING_SET__INIT;
    q.dim = dim;
    q.n_embeddings = nx, q.embeddings = (float *)x;
    q.n_groups = ng, q.groups = (uint32_t *)groups;
    q.step = step;
    q.worker_id = (char *)worker;
    q.progress = progress;
    size_t len = siam__v1__embedding_set__get_packed_size(&q);
    uint8_t *buf = malloc(len ? len : 1);
    siam__v1__embedding_set__pack(&q, buf);
    siam_rpc_buf resp = {(uint8_t *)1, 99}; /* garbage: the service must reset it */
    memset(st, 0, sizeof *st);
    int rc = siam_service_train_set(svc, ts, buf, len, &resp, st);
    free(buf);
    CHECK(rc == st->code, "returned %d but status says %d", rc, st->code);
    *out = NULL;
    if (rc == SIAM_RPC_OK) {
        CHECK(resp.data != NULL, "OK without a response");
        *out = siam__v1__set_result__unpack(NULL, resp.len, resp.data);
        CHECK(*out != NULL, "SetResult does not decode");
        siam_rpc_buf_free(&resp);
    } else {
        CHECK(resp.data == NULL && st->msg[0] != '\0', "failure %s left a response or no message",
              siam_rpc_code_name(rc));
    }
    return rc;
}

/* The same without progress, as a worker that never sets it sends (0). */
static int train_set(siam_service *svc, siam_train_stream *ts, uint32_t dim, const float *x,
                     size_t nx, const uint32_t *groups, size_t ng, uint64_t step,
                     const char *worker, Siam__V1__SetResult **out, siam_rpc_status *st) {
    return train_set_at(svc, ts, dim, x, nx, groups, ng, step, worker, 0.0f, out, st);
}

static siam_service *make_service(float margin) {
    siam_service *svc = NULL;
    siam_error err = {0};
    int rc = siam_service_create(&svc, margin, SIAM_LABELS_SIMILAR, 0, "test", &err);
    CHECK(rc == SIAM_OK, "create: %s", err.msg);
    return svc;
}

/* P groups of K embeddings at dim, random in [-1, 1], group ids random. */
static void random_set(siam_rng *r, float *x, uint32_t *g, int P, int K, int dim) {
    for (int i = 0; i < P * K; i++) {
        g[i] = 1000u + (uint32_t)(i / K) * 7919u;
        for (int k = 0; k < dim; k++)
            x[i * dim + k] = 2.0f * siam_rng_uniform(r) - 1.0f;
    }
}

/* The answer equals siam_set_loss on the same inputs, bit for bit, for every loss and distance. */
static void test_bitwise(void) {
    static const char *names[] = {"contrastive", "batch-all", "batch-hard", "semi-hard",
                                  "batch-hard-soft"};
    siam_rng r;
    siam_rng_seed(&r, 7);
    siam_service *svc = make_service(0.5f);
    enum { P = 4, K = 3, DIM = 5, N = P * K };
    float x[N * DIM], grad[N * DIM];
    uint32_t g[N];
    for (int d = 0; d < 2; d++)
        for (size_t m = 0; m < sizeof names / sizeof names[0]; m++) {
            siam_set_loss_config cfg = siam_set_loss_default();
            siam_error err = {0};
            CHECK(siam_set_loss_parse(&cfg, names[m], &err) == SIAM_OK, "%s", err.msg);
            cfg.distance = d ? SIAM_SET_SQUARED : SIAM_SET_EUCLIDEAN;
            cfg.margin = 0.5f;
            CHECK(siam_service_set_set_loss(svc, &cfg, &err) == SIAM_OK, "%s", err.msg);
            random_set(&r, x, g, P, K, DIM);
            float loss = -1;
            siam_set_loss_stats ms;
            CHECK(siam_set_loss(&loss, grad, &ms, x, g, N, DIM, &cfg, &err) == SIAM_OK, "%s",
                  err.msg);
            Siam__V1__SetResult *res = NULL;
            siam_rpc_status st;
            int rc = train_set(svc, NULL, DIM, x, N * DIM, g, N, 41 + m, "w", &res, &st);
            CHECK(rc == SIAM_RPC_OK, "%s: %s", names[m], st.msg);
            if (!res)
                continue;
            CHECK(res->step == 41 + m, "step %llu", (unsigned long long)res->step);
            CHECK(memcmp(&res->loss, &loss, sizeof loss) == 0, "%s/%d loss %.9g vs %.9g", names[m],
                  d, (double)res->loss, (double)loss);
            CHECK(res->n_grad == N * DIM && memcmp(res->grad, grad, sizeof grad) == 0,
                  "%s/%d gradients differ (%zu values)", names[m], d, res->n_grad);
            Siam__V1__MiningStats *s = res->mining;
            CHECK(s != NULL, "no mining stats");
            if (s) {
                CHECK(s->positive_pairs == (uint64_t)ms.pos_pairs &&
                          s->negative_pairs == (uint64_t)ms.neg_pairs &&
                          s->triplets == (uint64_t)ms.triplets && s->terms == (uint64_t)ms.terms &&
                          s->active == (uint64_t)ms.active,
                      "%s counts differ", names[m]);
                CHECK(s->positive_pairs == P * K * (K - 1) / 2 &&
                          s->negative_pairs == N * (N - 1) / 2 - P * K * (K - 1) / 2,
                      "pairs %llu %llu", (unsigned long long)s->positive_pairs,
                      (unsigned long long)s->negative_pairs);
                CHECK(s->active_fraction == (float)ms.frac_active &&
                          s->hardest_positive == (float)ms.hardest_pos &&
                          s->hardest_negative == (float)ms.hardest_neg &&
                          s->mean_norm == (float)ms.mean_norm,
                      "%s distances differ", names[m]);
                CHECK(!s->degenerate && s->note[0] == '\0', "not degenerate: '%s'", s->note);
            }
            siam__v1__set_result__free_unpacked(res, NULL);
        }
    siam_service_free(svc);
}

/* Every bad input: its status and a message naming what is wrong; nothing counted. */
static void test_validation(void) {
    siam_service *svc = make_service(1.0f);
    siam_train_stream ts;
    memset(&ts, 0, sizeof ts);
    float x[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    uint32_t g[4] = {1, 1, 2, 2};
    Siam__V1__SetResult *res = NULL;
    siam_rpc_status st;
    static const struct {
        uint32_t dim;
        size_t nx, ng;
        int code;
        const char *msg;
    } cases[] = {
        {0, 8, 4, SIAM_RPC_INVALID_ARGUMENT, "dim is 0, expected 1..4096"},
        {4097, 8, 4, SIAM_RPC_INVALID_ARGUMENT, "dim is 4097, expected 1..4096"},
        {2, 8, 0, SIAM_RPC_INVALID_ARGUMENT, "groups has 0 values, expected n >= 2"},
        {2, 2, 1, SIAM_RPC_INVALID_ARGUMENT, "groups has 1 value, expected n >= 2"},
        {2, 7, 4, SIAM_RPC_INVALID_ARGUMENT,
         "embeddings has 7 floats, expected n*dim = 4*2 = 8 (n = number of groups)"},
        {2, 8, 3, SIAM_RPC_INVALID_ARGUMENT, "embeddings has 8 floats, expected n*dim = 3*2 = 6"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc =
            train_set(svc, &ts, cases[i].dim, x, cases[i].nx, g, cases[i].ng, 1, "bad", &res, &st);
        CHECK(rc == cases[i].code && strstr(st.msg, cases[i].msg) != NULL,
              "case %zu: %s: '%s', expected '%s'", i, siam_rpc_code_name(rc), st.msg, cases[i].msg);
    }
    /* non-finite: the index, the embedding and the component named */
    float bad[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    bad[5] = NAN;
    int rc = train_set(svc, &ts, 2, bad, 8, g, 4, 1, "bad", &res, &st);
    CHECK(rc == SIAM_RPC_INVALID_ARGUMENT &&
              strstr(st.msg, "embeddings[5] is nan (embedding 2, component 1)") != NULL,
          "NaN: %s", st.msg);
    bad[5] = 5, bad[6] = -INFINITY;
    rc = train_set(svc, &ts, 2, bad, 8, g, 4, 1, "bad", &res, &st);
    CHECK(rc == SIAM_RPC_INVALID_ARGUMENT &&
              strstr(st.msg, "embeddings[6] is -inf (embedding 3, component 0)") != NULL,
          "-inf: %s", st.msg);
    /* beyond the limit: RESOURCE_EXHAUSTED naming it (dim 1 keeps the request small) */
    size_t big = SIAM_SET_LOSS_MAX_N + 1;
    float *bx = calloc(big, sizeof *bx);
    uint32_t *bg = calloc(big, sizeof *bg);
    rc = train_set(svc, &ts, 1, bx, big, bg, big, 1, "bad", &res, &st);
    CHECK(rc == SIAM_RPC_RESOURCE_EXHAUSTED && strstr(st.msg, "SIAM_SET_LOSS_MAX_N = 4096"),
          "n = 4097: %s: %s", siam_rpc_code_name(rc), st.msg);
    /* at the limit: answered */
    for (size_t i = 0; i < big; i++)
        bx[i] = (float)(i % 7), bg[i] = (uint32_t)(i % 3);
    rc = train_set(svc, NULL, 1, bx, big - 1, bg, big - 1, 1, "edge", &res, &st);
    CHECK(rc == SIAM_RPC_OK, "n = 4096: %s", st.msg);
    siam__v1__set_result__free_unpacked(res, NULL);
    free(bx);
    free(bg);
    /* malformed bytes */
    siam_rpc_buf resp = {NULL, 0};
    static const uint8_t junk[3] = {0xff, 0xff, 0xff};
    rc = siam_service_train_set(svc, &ts, junk, sizeof junk, &resp, &st);
    CHECK(rc == SIAM_RPC_INVALID_ARGUMENT && strstr(st.msg, "malformed EmbeddingSet"), "junk: %s",
          st.msg);
    /* finite but huge: the loss overflows float, refused rather than answered inf/NaN */
    fedisableexcept(FE_INVALID | FE_DIVBYZERO | FE_OVERFLOW);
    float huge[8] = {3e38f, 0, -3e38f, 0, 3e38f, 1, -3e38f, 1};
    rc = train_set(svc, &ts, 2, huge, 8, g, 4, 1, "bad", &res, &st);
    CHECK(rc == SIAM_RPC_INVALID_ARGUMENT && strstr(st.msg, "too large for float"), "huge: %s",
          st.msg);
    tu_trap_fp();
    CHECK(ts.batches == 0 && ts.dim == 0 && strcmp(ts.worker_id, "bad") == 0,
          "failed sets counted: %llu batches, dim %u, name '%s'", (unsigned long long)ts.batches,
          ts.dim, ts.worker_id);
    /* dim fixed by the first good set */
    rc = train_set(svc, &ts, 2, x, 8, g, 4, 1, "bad", &res, &st);
    CHECK(rc == SIAM_RPC_OK, "good set: %s", st.msg);
    siam__v1__set_result__free_unpacked(res, NULL);
    float x3[12] = {0};
    rc = train_set(svc, &ts, 3, x3, 12, g, 4, 2, "bad", &res, &st);
    CHECK(rc == SIAM_RPC_INVALID_ARGUMENT && strstr(st.msg, "dim changed from 2 to 3"), "%s",
          st.msg);
    CHECK(ts.batches == 1 && ts.pairs == 4 && ts.dim == 2, "stream %llu sets, %llu images",
          (unsigned long long)ts.batches, (unsigned long long)ts.pairs);
    siam_service_train_end(svc, &ts);
    /* 2 OK sets (edge and the good one) */
    CHECK(siam_service_global_step(svc) == 2, "global step %llu",
          (unsigned long long)siam_service_global_step(svc));
    siam_service_free(svc);
}

/* One group only, or all singletons: loss 0, zero gradients, degenerate with a note. */
static void test_degenerate(void) {
    siam_service *svc = make_service(1.0f);
    static const char *names[] = {"contrastive", "batch-all", "batch-hard", "semi-hard",
                                  "batch-hard-soft"};
    float x[6] = {0.5f, 1, -2, 3, 0.25f, -1};
    uint32_t one[3] = {9, 9, 9}, single[3] = {1, 2, 3};
    for (size_t m = 0; m < sizeof names / sizeof names[0]; m++) {
        siam_set_loss_config cfg = siam_set_loss_default();
        siam_error err = {0};
        siam_set_loss_parse(&cfg, names[m], &err);
        CHECK(siam_service_set_set_loss(svc, &cfg, &err) == SIAM_OK, "%s", err.msg);
        for (int k = 0; k < 2; k++) {
            Siam__V1__SetResult *res = NULL;
            siam_rpc_status st;
            int rc = train_set(svc, NULL, 2, x, 6, k ? single : one, 3, 5, "w", &res, &st);
            CHECK(rc == SIAM_RPC_OK, "%s: %s", names[m], st.msg);
            if (!res)
                continue;
            CHECK(res->loss == 0.0f && !signbit(res->loss), "%s loss %g", names[m],
                  (double)res->loss);
            int zero = res->n_grad == 6;
            for (size_t i = 0; i < res->n_grad; i++)
                zero &= res->grad[i] == 0.0f;
            CHECK(zero, "%s: gradients not all 0", names[m]);
            CHECK(res->mining && res->mining->degenerate, "%s: not degenerate", names[m]);
            const char *want = k ? "all 3 group ids differ, so there is no positive pair"
                                 : "all 3 embeddings share one group id, so there is no negative";
            CHECK(res->mining && strstr(res->mining->note, want) != NULL, "%s note '%s'", names[m],
                  res->mining ? res->mining->note : "");
            CHECK(res->mining && res->mining->terms == 0 && res->mining->triplets == 0,
                  "%s: terms in a degenerate set", names[m]);
            siam__v1__set_result__free_unpacked(res, NULL);
        }
    }
    siam_service_free(svc);
}

/* The setter refuses bad configurations and keeps the old one; Status names the loss; the
 * worker table counts images. */
static void test_status_setter(void) {
    siam_service *svc = make_service(2.0f);
    siam_set_loss_config c = siam_service_set_loss(svc);
    CHECK(c.mode == SIAM_SET_BATCH_HARD && c.distance == SIAM_SET_EUCLIDEAN && c.margin == 2.0f &&
              !c.soft,
          "default: mode %d distance %d margin %g soft %d", (int)c.mode, (int)c.distance,
          (double)c.margin, c.soft);
    siam_error err = {0};
    siam_set_loss_config bad = c;
    bad.soft = 1, bad.mode = SIAM_SET_BATCH_ALL;
    CHECK(siam_service_set_set_loss(svc, &bad, &err) == SIAM_ERR_ARG && strstr(err.msg, "soft"),
          "soft batch-all: %s", err.msg);
    bad = c, bad.margin = -1;
    CHECK(siam_service_set_set_loss(svc, &bad, &err) == SIAM_ERR_ARG && strstr(err.msg, "margin"),
          "margin -1: %s", err.msg);
    bad = c, bad.distance = (siam_set_distance)7;
    CHECK(siam_service_set_set_loss(svc, &bad, &err) == SIAM_ERR_ARG &&
              strstr(err.msg, "distance is 7"),
          "distance 7: %s", err.msg);
    static const char *names[] = {"batch-hard", "semi-hard", "batch-hard-soft"};
    for (int i = 0; i < 3; i++) {
        if (i > 0) {
            siam_set_loss_config s = siam_service_set_loss(svc);
            siam_set_loss_parse(&s, names[i], &err);
            CHECK(siam_service_set_set_loss(svc, &s, &err) == SIAM_OK, "%s", err.msg);
        }
        siam_rpc_buf resp = {NULL, 0};
        siam_rpc_status st;
        int rc = siam_service_status(svc, NULL, 0, &resp, &st);
        CHECK(rc == SIAM_RPC_OK, "status: %s", st.msg);
        Siam__V1__StatusResponse *s = siam__v1__status_response__unpack(NULL, resp.len, resp.data);
        CHECK(s && strcmp(s->loss, names[i]) == 0, "Status loss '%s', expected '%s'",
              s ? s->loss : "?", names[i]);
        siam__v1__status_response__free_unpacked(s, NULL);
        siam_rpc_buf_free(&resp);
    }
    float x[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    uint32_t g[4] = {3, 4, 3, 4};
    Siam__V1__SetResult *res = NULL;
    siam_rpc_status st;
    CHECK(train_set(svc, NULL, 2, x, 8, g, 4, 1, "", &res, &st) == SIAM_RPC_OK, "%s", st.msg);
    siam__v1__set_result__free_unpacked(res, NULL);
    siam_rpc_buf resp = {NULL, 0};
    siam_service_status(svc, NULL, 0, &resp, &st);
    Siam__V1__StatusResponse *s = siam__v1__status_response__unpack(NULL, resp.len, resp.data);
    CHECK(s && s->n_workers == 1 && strcmp(s->workers[0]->worker_id, "anonymous") == 0 &&
              s->workers[0]->pairs_trained == 4 && s->global_step == 1,
          "Status workers after one set of 4 images");
    siam__v1__status_response__free_unpacked(s, NULL);
    siam_rpc_buf_free(&resp);
    siam_service_free(svc);
}

/* facenet: the request's progress picks the mining. Below the server's hard_after the answer is
 * semi-hard's, bit for bit, at and after it batch-hard's; no progress (an old worker) is 0:
 * semi-hard. A progress outside 0..1 or not finite is refused naming the field; Status names
 * facenet; the setter refuses a hard_after outside 0..1. */
static void test_facenet(void) {
    siam_rng r;
    siam_rng_seed(&r, 17);
    siam_service *svc = make_service(1.0f);
    enum { P = 4, K = 4, DIM = 6, N = P * K };
    float x[N * DIM];
    uint32_t g[N];
    random_set(&r, x, g, P, K, DIM);
    siam_error err = {0};
    siam_set_loss_config f = siam_service_set_loss(svc);
    CHECK(siam_set_loss_parse(&f, "facenet", &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_service_set_set_loss(svc, &f, &err) == SIAM_OK, "%s", err.msg);
    /* the two losses facenet switches between, computed directly */
    siam_set_loss_config semi = f, hard = f;
    semi.mode = SIAM_SET_SEMI_HARD, hard.mode = SIAM_SET_BATCH_HARD;
    float Ls, Lh, gs[N * DIM], gh[N * DIM];
    CHECK(siam_set_loss(&Ls, gs, NULL, x, g, N, DIM, &semi, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_set_loss(&Lh, gh, NULL, x, g, N, DIM, &hard, &err) == SIAM_OK, "%s", err.msg);
    CHECK(Ls != Lh, "semi-hard and batch-hard agree on the input (%g)", (double)Ls);
    static const struct {
        float progress, hard_after;
        int hard;
    } cases[] = {
        {0.1f, 0.4f, 0}, {0.9f, 0.4f, 1}, {0.0f, 0.4f, 0},  {0.39f, 0.4f, 0},
        {0.4f, 0.4f, 1}, {1.0f, 0.4f, 1}, {0.9f, 0.95f, 0}, {0.0f, 0.0f, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f.hard_after = cases[i].hard_after;
        CHECK(siam_service_set_set_loss(svc, &f, &err) == SIAM_OK, "%s", err.msg);
        Siam__V1__SetResult *res = NULL;
        siam_rpc_status st;
        int rc =
            train_set_at(svc, NULL, DIM, x, N * DIM, g, N, 7, "w", cases[i].progress, &res, &st);
        CHECK(rc == SIAM_RPC_OK, "progress %g: %s", (double)cases[i].progress, st.msg);
        if (!res)
            continue;
        const float *want_g = cases[i].hard ? gh : gs;
        float want_l = cases[i].hard ? Lh : Ls;
        CHECK(memcmp(&res->loss, &want_l, sizeof want_l) == 0 && res->n_grad == N * DIM &&
                  memcmp(res->grad, want_g, sizeof gs) == 0,
              "progress %g, hard_after %g: loss %.9g, expected %s's %.9g",
              (double)cases[i].progress, (double)cases[i].hard_after, (double)res->loss,
              cases[i].hard ? "batch-hard" : "semi-hard", (double)want_l);
        /* terms tell the mining apart too: (anchor, positive) pairs vs anchors */
        CHECK(res->mining && res->mining->terms == (cases[i].hard ? N : N * (K - 1)),
              "progress %g: %llu terms", (double)cases[i].progress,
              res->mining ? (unsigned long long)res->mining->terms : 0ULL);
        siam__v1__set_result__free_unpacked(res, NULL);
    }
    /* an old worker: no progress field at all is 0, semi-hard */
    f.hard_after = 0.4f;
    CHECK(siam_service_set_set_loss(svc, &f, &err) == SIAM_OK, "%s", err.msg);
    Siam__V1__SetResult *res = NULL;
    siam_rpc_status st;
    CHECK(train_set(svc, NULL, DIM, x, N * DIM, g, N, 8, "old", &res, &st) == SIAM_RPC_OK, "%s",
          st.msg);
    CHECK(res && memcmp(&res->loss, &Ls, sizeof Ls) == 0, "no progress: loss %g, semi-hard %g",
          res ? (double)res->loss : -1.0, (double)Ls);
    siam__v1__set_result__free_unpacked(res, NULL);
    /* bad progress: refused naming the field, nothing counted */
    siam_train_stream ts;
    memset(&ts, 0, sizeof ts);
    uint64_t before = siam_service_global_step(svc);
    static const struct {
        float progress;
        const char *msg;
    } bad[] = {
        {1.5f, "progress is 1.5, expected 0..1"},     {NAN, "progress is nan, expected 0..1"},
        {-0.1f, "progress is -0.1, expected 0..1"},   {INFINITY, "progress is inf, expected 0..1"},
        {1.0000001f, "progress is 1, expected 0..1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc =
            train_set_at(svc, &ts, DIM, x, N * DIM, g, N, 9, "bad", bad[i].progress, &res, &st);
        CHECK(rc == SIAM_RPC_INVALID_ARGUMENT && strstr(st.msg, bad[i].msg), "progress %g: %s: %s",
              (double)bad[i].progress, siam_rpc_code_name(rc), st.msg);
    }
    /* the other losses refuse it too: the field's range is the wire contract's */
    siam_set_loss_config bh = siam_set_loss_default();
    CHECK(siam_service_set_set_loss(svc, &bh, &err) == SIAM_OK, "%s", err.msg);
    CHECK(train_set_at(svc, &ts, DIM, x, N * DIM, g, N, 9, "bad", 2.0f, &res, &st) ==
                  SIAM_RPC_INVALID_ARGUMENT &&
              strstr(st.msg, "progress is 2"),
          "batch-hard, progress 2: %s", st.msg);
    CHECK(ts.batches == 0 && siam_service_global_step(svc) == before, "refused sets counted");
    /* Status names facenet; hard_after outside 0..1 is refused and the old setting kept */
    CHECK(siam_service_set_set_loss(svc, &f, &err) == SIAM_OK, "%s", err.msg);
    siam_rpc_buf resp = {NULL, 0};
    CHECK(siam_service_status(svc, NULL, 0, &resp, &st) == SIAM_RPC_OK, "%s", st.msg);
    Siam__V1__StatusResponse *s = siam__v1__status_response__unpack(NULL, resp.len, resp.data);
    CHECK(s && strcmp(s->loss, "facenet") == 0, "Status loss '%s'", s ? s->loss : "?");
    siam__v1__status_response__free_unpacked(s, NULL);
    siam_rpc_buf_free(&resp);
    siam_set_loss_config badf = f;
    badf.hard_after = 1.5f;
    CHECK(siam_service_set_set_loss(svc, &badf, &err) == SIAM_ERR_ARG &&
              strstr(err.msg, "hard_after is 1.5"),
          "hard_after 1.5: %s", err.msg);
    badf.hard_after = NAN;
    CHECK(siam_service_set_set_loss(svc, &badf, &err) == SIAM_ERR_ARG, "hard_after NaN");
    CHECK(siam_service_set_loss(svc).hard_after == 0.4f, "the refused setting was kept");
    siam_service_free(svc);
}

int main(void) {
    tu_trap_fp();
    test_bitwise();
    test_validation();
    test_degenerate();
    test_status_setter();
    test_facenet();
    return tu_finish();
}
