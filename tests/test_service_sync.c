/* test_service_sync: SyncWeights, image Similarity and Status through server/siam_service with
 * encoded protobuf requests (no sockets), over the averaging that test_averaging tests alone.
 * Image Similarity answers distances equal to the global model's embeddings computed here;
 * rejected first joins decide no model; poisoned weights and non-finite models are refused. */
#include "test_sync_util.h"

#include "siam_encoding.h"
#include "siam_loss.h"
#include "siam_model.h"
#include "siam_service.h"

#include "siam/v1/siam.pb-c.h"

/* ------------------------------------------------------------------------------------------ */
/* 1. Through the service: SyncWeights, image Similarity, Status */

/* the service's SyncWeights reply function: decodes the GlobalWeights (resp is ours to free). */
static void svc_reply(void *waiter, siam_rpc_buf *resp, const siam_rpc_status *st) {
    call *c = waiter;
    Siam__V1__GlobalWeights *g = NULL;
    if (st->code == SIAM_RPC_OK && resp && resp->data)
        g = siam__v1__global_weights__unpack(NULL, resp->len, resp->data);
    float *p = NULL;
    size_t n = 0;
    if (g && g->n_params) {
        n = g->n_params;
        p = malloc(n * sizeof *p);
        if (p)
            memcpy(p, g->params, n * sizeof *p);
    } else if (g && g->encoding != SIAM__V1__WIRE_ENCODING__WIRE_FP32) {
        n = g->params_packed.len / siam_encoding_size((int)g->encoding);
        p = malloc((n ? n : 1) * sizeof *p);
        siam_error err = {0};
        if (p && siam_decode_blocks((siam_encoding)g->encoding, g->params_packed.data,
                                    g->params_packed.len, g->params_scales, g->n_params_scales, n,
                                    "params_packed", p, &err) != SIAM_OK) {
            fprintf(stderr, "the answer's params_packed does not decode: %s\n", err.msg);
            free(p);
            p = NULL;
        }
    }
    double now = siam_now();
    pthread_mutex_lock(&rec_lock);
    if (c->calls++ == 0) {
        c->t = now;
        c->code = st->code;
        snprintf(c->msg, sizeof c->msg, "%s", st->msg);
        c->decoded = g != NULL;
        c->has_resp_on_error = st->code != SIAM_RPC_OK && resp && resp->data;
        if (g) {
            c->round = g->round;
            snprintf(c->spec, sizeof c->spec, "%s", g->model_spec ? g->model_spec : "");
            c->params = p;
            c->n_params = p ? n : 0;
            c->encoding = (int)g->encoding;
            c->workers = g->workers;
            c->samples = g->samples;
            c->late = g->late;
            p = NULL;
        }
    }
    pthread_cond_broadcast(&rec_cond);
    pthread_mutex_unlock(&rec_lock);
    free(p);
    if (g)
        siam__v1__global_weights__free_unpacked(g, NULL);
    if (resp)
        siam_rpc_buf_free(resp);
}

static void sync_bytes(siam_service *svc, call *c, const uint8_t *buf, size_t len) {
    siam_service_sync(svc, buf, len, c);
}

static void sync_call(siam_service *svc, call *c, const char *worker, const char *spec,
                      const float *p, size_t n, uint64_t samples, uint64_t round) {
    Siam__V1__WeightsUpdate u = SIAM__V1__WEIGHTS_UPDATE__INIT;
    u.worker_id = (char *)worker;
    u.model_spec = (char *)spec;
    u.n_params = n, u.params = (float *)p;
    u.samples = samples;
    u.step = 17;
    u.round = round;
    size_t len = siam__v1__weights_update__get_packed_size(&u);
    uint8_t *buf = malloc(len ? len : 1);
    siam__v1__weights_update__pack(&u, buf);
    sync_bytes(svc, c, buf, len);
    free(buf);
}

static int image_similarity(siam_service *svc, const uint8_t *limg, size_t nli, const uint8_t *rimg,
                            size_t nri, uint32_t dim, const float *emb, size_t nemb,
                            Siam__V1__SimilarityResponse **out, siam_rpc_status *st) {
    Siam__V1__SimilarityRequest q = SIAM__V1__SIMILARITY_REQUEST__INIT;
    q.left_images.len = nli, q.left_images.data = (uint8_t *)limg;
    q.right_images.len = nri, q.right_images.data = (uint8_t *)rimg;
    q.dim = dim;
    q.n_left = nemb, q.left = (float *)emb;
    q.n_right = nemb, q.right = (float *)emb;
    size_t len = siam__v1__similarity_request__get_packed_size(&q);
    uint8_t *buf = malloc(len ? len : 1);
    siam__v1__similarity_request__pack(&q, buf);
    siam_rpc_buf resp = {NULL, 0};
    memset(st, 0, sizeof *st);
    int rc = siam_service_similarity(svc, buf, len, &resp, st);
    free(buf);
    *out = NULL;
    CHECK(rc == st->code, "similarity returned %d, status %d", rc, st->code);
    if (rc == SIAM_RPC_OK) {
        *out = siam__v1__similarity_response__unpack(NULL, resp.len, resp.data);
        CHECK(*out != NULL, "SimilarityResponse does not decode");
        siam_rpc_buf_free(&resp);
    } else {
        CHECK(resp.data == NULL && st->msg[0], "failure with a response or without a message");
    }
    return rc;
}

static Siam__V1__StatusResponse *get_status(siam_service *svc) {
    Siam__V1__StatusRequest q = SIAM__V1__STATUS_REQUEST__INIT;
    uint8_t buf[16];
    size_t len = siam__v1__status_request__pack(&q, buf);
    siam_rpc_buf resp = {NULL, 0};
    siam_rpc_status st;
    memset(&st, 0, sizeof st);
    if (siam_service_status(svc, buf, len, &resp, &st) != SIAM_RPC_OK) {
        CHECK(0, "status failed: %s", st.msg);
        return NULL;
    }
    Siam__V1__StatusResponse *r = siam__v1__status_response__unpack(NULL, resp.len, resp.data);
    CHECK(r != NULL, "StatusResponse does not decode");
    siam_rpc_buf_free(&resp);
    return r;
}

static const Siam__V1__WorkerStatus *status_worker(const Siam__V1__StatusResponse *r,
                                                   const char *id) {
    for (size_t i = 0; r && i < r->n_workers; i++)
        if (strcmp(r->workers[i]->worker_id, id) == 0)
            return r->workers[i];
    return NULL;
}

/* One good Train batch on stream ts of worker: the stream counts for the worker's liveness. */
static void train_one(siam_service *svc, siam_train_stream *ts, const char *worker) {
    float left[2] = {0, 0}, right[2] = {1, 0};
    uint32_t label = 1;
    Siam__V1__EmbeddingBatch b = SIAM__V1__EMBEDDING_BATCH__INIT;
    b.dim = 2;
    b.n_left = 2, b.left = left;
    b.n_right = 2, b.right = right;
    b.n_labels = 1, b.labels = &label;
    b.worker_id = (char *)worker;
    uint8_t buf[128];
    size_t len = siam__v1__embedding_batch__pack(&b, buf);
    siam_rpc_buf resp = {NULL, 0};
    siam_rpc_status st;
    memset(&st, 0, sizeof st);
    CHECK(siam_service_train(svc, ts, buf, len, &resp, &st) == SIAM_RPC_OK, "train: %s", st.msg);
    siam_rpc_buf_free(&resp);
}

/* Distances of image pairs computed here: a model of spec with params, pixels / 255, each side
 * embedded on its own. */
static void ref_distances(const char *spec, const float *params, size_t n, const uint8_t *limg,
                          const uint8_t *rimg, size_t B, float *dist) {
    siam_model *m = NULL;
    siam_error err = {0};
    if (siam_model_create(&m, spec, 12345, &err)) {
        CHECK(0, "reference model: %s", err.msg);
        return;
    }
    CHECK(siam_model_num_params(m) == n, "reference model has %zu params",
          siam_model_num_params(m));
    memcpy(siam_model_params(m), params, n * sizeof *params);
    size_t in = (size_t)siam_model_input_size(m);
    int dim = siam_model_output_size(m);
    float *x = malloc(B * in * sizeof *x);
    float *el = malloc(B * (size_t)dim * sizeof *el), *er = malloc(B * (size_t)dim * sizeof *er);
    for (int side = 0; side < 2; side++) {
        const uint8_t *img = side ? rimg : limg;
        for (size_t i = 0; i < B * in; i++)
            x[i] = (float)img[i] / 255.0f;
        CHECK(siam_model_embed(m, x, B, side ? er : el, &err) == SIAM_OK, "embed: %s", err.msg);
    }
    for (size_t i = 0; i < B; i++)
        dist[i] = siam_distance(el + i * (size_t)dim, er + i * (size_t)dim, dim);
    free(x);
    free(el);
    free(er);
    siam_model_free(m);
}

static int bitexact_distances, near_distances;

static void check_image_similarity(siam_service *svc, const char *spec, const float *params,
                                   size_t n, siam_rng *rng, const char *what) {
    enum { B = 6, IMG = 784 };
    uint8_t *l = malloc(B * IMG), *r = malloc(B * IMG);
    for (size_t i = 0; i < (size_t)B * IMG; i++) {
        l[i] = (uint8_t)siam_rng_below(rng, 256);
        r[i] = (uint8_t)siam_rng_below(rng, 256);
    }
    memcpy(r, l, IMG); /* pair 0: the same image, distance 0 */
    float want[B];
    ref_distances(spec, params, n, l, r, B, want);
    Siam__V1__SimilarityResponse *resp = NULL;
    siam_rpc_status st;
    int rc = image_similarity(svc, l, (size_t)B * IMG, r, (size_t)B * IMG, 0, NULL, 0, &resp, &st);
    CHECK(rc == SIAM_RPC_OK, "%s: image similarity: %s", what, st.msg);
    if (resp) {
        CHECK(resp->n_distances == B && resp->n_scores == B && resp->n_same == B,
              "%s: %zu distances", what, resp->n_distances);
        for (size_t i = 0; i < B && i < resp->n_distances; i++) {
            float got = resp->distances[i];
            if (memcmp(&got, &want[i], sizeof got) == 0)
                bitexact_distances++;
            else
                near_distances++;
            double tol = 1e-6 * fmax(fabs((double)got), fabs((double)want[i]));
            CHECK(fabs((double)got - (double)want[i]) <= tol, "%s: pair %zu distance %.9g vs %.9g",
                  what, i, (double)got, (double)want[i]);
            CHECK(resp->scores[i] == siam_score(got, resp->threshold) &&
                      resp->same[i] == (got <= resp->threshold),
                  "%s: pair %zu score/same inconsistent with the distance", what, i);
        }
        CHECK(resp->distances[0] == 0.0f, "%s: identical images at distance %g", what,
              (double)resp->distances[0]);
        siam__v1__similarity_response__free_unpacked(resp, NULL);
    }
    free(l);
    free(r);
}

/* Parameters for spec: its initial ones, trainable ones moved at random, batchnorm running
 * means random and variances in [0.5, 1.5] (so that inference stays finite). */
static float *model_params(const char *spec, uint64_t seed, siam_rng *rng, size_t *n_out) {
    siam_model *m = NULL;
    siam_error err = {0};
    if (siam_model_create(&m, spec, seed, &err)) {
        CHECK(0, "model '%s': %s", spec, err.msg);
        return NULL;
    }
    size_t n = siam_model_num_params(m), nt = siam_model_num_trainable(m);
    float *p = malloc(n * sizeof *p);
    memcpy(p, siam_model_params(m), n * sizeof *p);
    for (size_t j = 0; j < nt; j++)
        p[j] += 0.05f * (2 * siam_rng_uniform(rng) - 1);
    size_t c = (n - nt) / 2; /* one batchnorm: mean (c) then var (c) */
    for (size_t j = 0; j < c; j++) {
        p[nt + j] = 0.2f * (2 * siam_rng_uniform(rng) - 1);
        p[nt + c + j] = 0.5f + siam_rng_uniform(rng);
    }
    siam_model_free(m);
    *n_out = n;
    return p;
}

static void test_service(void) {
    siam_rng rng;
    siam_rng_seed(&rng, 66);
    siam_error err = {0};
    const char *S = "in=28x28x1 dense16 relu batchnorm dropout0.5 dense8";
    siam_model *probe = NULL;
    if (siam_model_create(&probe, S, 1, &err)) {
        CHECK(0, "spec '%s': %s", S, err.msg);
        return;
    }
    CHECK(strcmp(siam_model_spec(probe), S) == 0, "canonical spec '%s'", siam_model_spec(probe));
    siam_model_free(probe);
    size_t n = 0, n2 = 0;
    float *P = model_params(S, 1, &rng, &n), *Q = model_params(S, 2, &rng, &n2);
    float *P1 = model_params(S, 3, &rng, &n2), *P2 = model_params(S, 4, &rng, &n2);
    if (!P || !Q || !P1 || !P2)
        return;

    siam_service *svc = NULL;
    CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "test", &err) == 0, "init: %s",
          err.msg);
    CHECK(siam_service_start_averaging(svc, 2, 5.0, NULL, NULL, svc_reply, &err) == 0,
          "start_averaging: %s", err.msg);

    Siam__V1__StatusResponse *s = get_status(svc);
    CHECK(s && strcmp(s->model_spec, "") == 0 && s->round == 0 && s->min_workers == 2 &&
              s->joined_workers == 0 && s->sync_timeout_seconds == 5.0,
          "status before any model");
    siam__v1__status_response__free_unpacked(s, NULL);

    /* image Similarity before any model */
    uint8_t img[2 * 784];
    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (uint8_t)(i * 7);
    Siam__V1__SimilarityResponse *sr = NULL;
    siam_rpc_status st;
    CHECK(image_similarity(svc, img, 784, img + 784, 784, 0, NULL, 0, &sr, &st) ==
              SIAM_RPC_FAILED_PRECONDITION,
          "images before a model: %d %s", st.code, st.msg);

    /* rejected SyncWeights calls */
    call c = {0};
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    sync_bytes(svc, &c, junk, sizeof junk);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT && !c.has_resp_on_error,
          "malformed bytes: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    sync_call(svc, &c, "", S, P, n, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT && strstr(c.msg, "worker_id"),
          "empty worker_id: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    float saved = P[7];
    P[7] = NAN;
    sync_call(svc, &c, "w1", S, P, n, 0, 0);
    P[7] = saved;
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT && strstr(c.msg, "params[7]"),
          "NaN in params: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    saved = P[n - 1];
    P[n - 1] = -INFINITY;
    sync_call(svc, &c, "w1", S, P, n, 100, 0);
    P[n - 1] = saved;
    char field[64];
    snprintf(field, sizeof field, "params[%zu]", n - 1);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT && strstr(c.msg, field),
          "-inf in params: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    sync_call(svc, &c, "w1", "in=28x28x1 dense16 bogus", P, n, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT,
          "invalid model spec on the first join: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    sync_call(svc, &c, "w1", S, P, 0, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT, "empty params: code %d '%s'",
          c.code, c.msg);
    call_reset(&c);
    s = get_status(svc);
    CHECK(s && strcmp(s->model_spec, "") == 0 && s->joined_workers == 0,
          "rejected calls set a model ('%s') or joined %u", s ? s->model_spec : "?",
          s ? s->joined_workers : 0);
    siam__v1__status_response__free_unpacked(s, NULL);

    /* the first join sets the global model; it waits for the second worker */
    call j1 = {0}, j2 = {0};
    sync_call(svc, &j1, "w1", S, P, n, 0, 0);
    sleep_s(0.05);
    CHECK(answered(&j1) == 0, "the first join was answered with min_workers 2 (code %d %s)",
          j1.code, j1.msg);
    s = get_status(svc);
    if (s) {
        CHECK(strcmp(s->model_spec, S) == 0, "status model_spec '%s'", s->model_spec);
        CHECK(s->round == 0 && s->min_workers == 2 && s->joined_workers == 1,
              "status round %llu min %u joined %u", (unsigned long long)s->round, s->min_workers,
              s->joined_workers);
        CHECK(strcmp(s->waiting, "waiting for 1 more worker (1 of 2)") == 0, "status waiting '%s'",
              s->waiting);
        const Siam__V1__WorkerStatus *w = status_worker(s, "w1");
        CHECK(w && w->live && w->last_round == 0, "status of the waiting w1");
        siam__v1__status_response__free_unpacked(s, NULL);
    }
    sync_call(svc, &j2, "w2", S, Q, n, 0, 0);
    CHECK(wait_for(&j1, 2.0) == 1 && wait_for(&j2, 2.0) == 1, "joins answered %d, %d times",
          j1.calls, j2.calls);
    CHECK(j1.code == SIAM_RPC_OK && j2.code == SIAM_RPC_OK && j1.decoded && j2.decoded,
          "joins: %d '%s', %d '%s'", j1.code, j1.msg, j2.code, j2.msg);
    CHECK(same_params(&j1, P, n) && same_params(&j2, P, n),
          "the joins did not get the first joiner's params");
    CHECK(j1.round == 0 && j2.round == 0 && strcmp(j1.spec, S) == 0 && strcmp(j2.spec, S) == 0 &&
              !j1.late && !j2.late,
          "joins: round %llu spec '%s'", (unsigned long long)j1.round, j1.spec);
    call_reset(&j1);
    call_reset(&j2);
    s = get_status(svc);
    CHECK(s && strcmp(s->waiting, "") == 0 && s->joined_workers == 2,
          "status after the joins: waiting '%s'", s ? s->waiting : "?");
    siam__v1__status_response__free_unpacked(s, NULL);

    /* a spec mismatch once there is a model */
    sync_call(svc, &c, "w3", "in=28x28x1 dense4", P, 3140, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_FAILED_PRECONDITION && strstr(c.msg, S) &&
              strstr(c.msg, "in=28x28x1 dense4"),
          "spec mismatch: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    sync_call(svc, &c, "w3", S, P, n - 1, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT,
          "wrong parameter count: code %d '%s'", c.code, c.msg);
    call_reset(&c);

    /* image Similarity with the global model */
    check_image_similarity(svc, S, P, n, &rng, "first join's model");
    {
        uint8_t *big = calloc(2 * 784, 1);
        CHECK(image_similarity(svc, big, 783, big + 784, 783, 0, NULL, 0, &sr, &st) ==
                  SIAM_RPC_INVALID_ARGUMENT,
              "783-byte images: %d %s", st.code, st.msg);
        CHECK(image_similarity(svc, big, 784, big + 784, 783, 0, NULL, 0, &sr, &st) ==
                  SIAM_RPC_INVALID_ARGUMENT,
              "a 783-byte right image: %d %s", st.code, st.msg);
        float emb[8] = {0};
        CHECK(image_similarity(svc, big, 784, big + 784, 784, 8, emb, 8, &sr, &st) ==
                  SIAM_RPC_INVALID_ARGUMENT,
              "images and embeddings: %d %s", st.code, st.msg);
        CHECK(image_similarity(svc, big, 2 * 784, big, 784, 0, NULL, 0, &sr, &st) ==
                  SIAM_RPC_INVALID_ARGUMENT,
              "2 left and 1 right image: %d %s", st.code, st.msg);
        free(big);
    }

    /* a round through the service */
    call r1 = {0}, r2 = {0};
    sync_call(svc, &r1, "w2", S, P2, n, 300, 0);
    CHECK(answered(&r1) == 0, "w2 answered before w1 reported");
    sync_call(svc, &r2, "w1", S, P1, n, 100, 0);
    CHECK(wait_for(&r1, 2.0) == 1 && wait_for(&r2, 2.0) == 1, "round answers %d %d", r1.calls,
          r2.calls);
    float *want = malloc(n * sizeof *want);
    {
        const char *names[2] = {"w1", "w2"};
        const float *ps[2] = {P1, P2};
        const uint64_t smp[2] = {100, 300};
        ref_average(want, names, ps, smp, 2, n);
    }
    CHECK(r1.code == SIAM_RPC_OK && r2.code == SIAM_RPC_OK && same_params(&r1, want, n) &&
              same_params(&r2, want, n),
          "service round: codes %d %d, params differ at %zu", r1.code, r2.code,
          first_diff(&r1, want, n));
    CHECK(r1.round == 1 && r1.workers == 2 && r1.samples == 400 && !r1.late,
          "service round: round %llu workers %u samples %llu", (unsigned long long)r1.round,
          r1.workers, (unsigned long long)r1.samples);
    call_reset(&r1);
    call_reset(&r2);
    check_image_similarity(svc, S, want, n, &rng, "after round 1");

    /* a late update through the service */
    sync_call(svc, &r1, "w1", S, P, n, 10, 0);
    CHECK(answered(&r1) == 1 && r1.code == SIAM_RPC_OK && r1.late && r1.round == 1 &&
              same_params(&r1, want, n),
          "late update through the service: code %d late %d round %llu", r1.code, r1.late,
          (unsigned long long)r1.round);
    call_reset(&r1);

    /* Status: rounds and liveness; w1's Train stream makes it live, its end not */
    siam_train_stream ts;
    memset(&ts, 0, sizeof ts);
    train_one(svc, &ts, "w1");
    s = get_status(svc);
    if (s) {
        CHECK(strcmp(s->model_spec, S) == 0 && s->round == 1 && s->min_workers == 2 &&
                  s->joined_workers == 2 && strcmp(s->waiting, "") == 0,
              "status after round 1: spec '%s' round %llu joined %u waiting '%s'", s->model_spec,
              (unsigned long long)s->round, s->joined_workers, s->waiting);
        const Siam__V1__WorkerStatus *w1 = status_worker(s, "w1"), *w2 = status_worker(s, "w2");
        CHECK(w1 && w1->live && w1->last_round == 1, "status w1 with a stream: live %d last %llu",
              w1 ? w1->live : -1, w1 ? (unsigned long long)w1->last_round : 0ULL);
        CHECK(w2 && w2->live && w2->last_round == 1, "status w2 (join grace): live %d last %llu",
              w2 ? w2->live : -1, w2 ? (unsigned long long)w2->last_round : 0ULL);
        siam__v1__status_response__free_unpacked(s, NULL);
    }
    siam_service_train_end(svc, &ts);
    s = get_status(svc);
    if (s) {
        const Siam__V1__WorkerStatus *w1 = status_worker(s, "w1");
        CHECK(w1 && !w1->live && w1->last_round == 1,
              "status w1 after its stream ended: live %d last %llu", w1 ? w1->live : -1,
              w1 ? (unsigned long long)w1->last_round : 0ULL);
        siam__v1__status_response__free_unpacked(s, NULL);
    }

    /* a waiting SyncWeights call is answered when the service is freed: w1 (not live now) opens
     * a new stream, so w2's report waits for it */
    siam_train_stream ts2;
    memset(&ts2, 0, sizeof ts2);
    train_one(svc, &ts2, "w1");
    call w = {0};
    sync_call(svc, &w, "w2", S, P2, n, 5, 1);
    CHECK(answered(&w) == 0, "w2's report answered at once, w1 live? (code %d)", w.code);
    siam_service_free(svc);
    CHECK(w.calls == 1 && w.code == SIAM_RPC_UNAVAILABLE, "free: waiting call %d times code %d",
          w.calls, w.code);
    call_reset(&w);
    free(want);
    free(P);
    free(Q);
    free(P1);
    free(P2);
}

/* A rejected first join must not decide the global model: a join with a valid spec but the
 * wrong parameter count is INVALID_ARGUMENT, and then another worker's valid join with another
 * spec becomes the global model (siam_service.h: "the first worker's model becomes the global
 * model"; a rejected call is not a worker's model). Likewise siam_service_set_model afterwards.
 * (A regression test: the service once kept the model it built for the refused spec.) */
static void test_service_rejected_first_join(void) {
    siam_rng rng;
    siam_rng_seed(&rng, 77);
    siam_error err = {0};
    const char *S = "in=28x28x1 dense16 relu batchnorm dropout0.5 dense8";
    const char *S_small = "in=28x28x1 dense4";
    size_t n = 0;
    float *P = model_params(S, 5, &rng, &n);
    if (!P)
        return;
    for (int via_set_model = 0; via_set_model < 2; via_set_model++) {
        siam_service *svc = NULL;
        CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "test", &err) == 0, "init");
        CHECK(siam_service_start_averaging(svc, 1, 5.0, NULL, NULL, svc_reply, &err) == 0, "start");
        call c = {0};
        sync_call(svc, &c, "w1", S_small, P, 10, 0, 0); /* dense4 has 3140 params, not 10 */
        CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT,
              "first join with a wrong count: code %d '%s'", c.code, c.msg);
        call_reset(&c);
        if (via_set_model) {
            int rc = siam_service_set_model(svc, S, P, n, 0, 0, &err);
            CHECK(rc == SIAM_OK,
                  "after a rejected first join (spec "
                  "'%s', wrong count), siam_service_set_model('%s', %zu params) returned %d '%s', "
                  "expected SIAM_OK",
                  S_small, S, n, rc, err.msg);
        } else {
            sync_call(svc, &c, "w2", S, P, n, 0, 0);
            CHECK(answered(&c) == 1 && c.code == SIAM_RPC_OK && same_params(&c, P, n),
                  "after a rejected first join (spec "
                  "'%s', wrong count), a valid join with spec '%s' got code %d '%s', expected OK "
                  "with its own params (there is no global model yet)",
                  S_small, S, c.code, c.msg);
            call_reset(&c);
        }
        Siam__V1__StatusResponse *s = get_status(svc);
        CHECK(s && strcmp(s->model_spec, S) == 0, "Status model_spec '%s', expected '%s'",
              s ? s->model_spec : "?", S);
        siam__v1__status_response__free_unpacked(s, NULL);
        siam_service_free(svc);
    }
    free(P);
}

/* Distinct worker names are bounded: the (MAX+1)-th name is RESOURCE_EXHAUSTED naming the limit,
 * a known name is still served, and nothing else changes. */
static void test_service_first_join_specs(void) {
    siam_rng rng;
    siam_rng_seed(&rng, 78);
    siam_error err = {0};
    const char *S = "in=28x28x1 dense4";
    size_t n = 0;
    float *P = model_params(S, 6, &rng, &n);
    if (!P)
        return;
    siam_service *svc = NULL;
    CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "test", &err) == 0, "init");
    CHECK(siam_service_start_averaging(svc, 1, 5.0, NULL, NULL, svc_reply, &err) == 0, "start");
    call c = {0};
    sync_call(svc, &c, "w0", "in=28x28x1 dense1000000", P, 10, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT &&
              strstr(c.msg, "expected 785000000"),
          "first join of a huge spec with 10 params: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    sync_call(svc, &c, "w1", "in=28x28x1  dense4 ", P, n, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_OK && strcmp(c.spec, S) == 0 &&
              same_params(&c, P, n),
          "first join spelling the spec 'in=28x28x1  dense4 ': code %d '%s', spec '%s'", c.code,
          c.msg, c.spec);
    call_reset(&c);
    sync_call(svc, &c, "w2", "in=28x28x1\tdense4", P, n, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_OK && strcmp(c.spec, S) == 0,
          "second join spelling the spec with a tab: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    sync_call(svc, &c, "w3", "in=28x28x1 dense5", P, n, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_FAILED_PRECONDITION,
          "another model after the first join: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    Siam__V1__StatusResponse *s = get_status(svc);
    CHECK(s && strcmp(s->model_spec, S) == 0 && s->joined_workers == 2,
          "Status model_spec '%s' joined %u", s ? s->model_spec : "?", s ? s->joined_workers : 0);
    siam__v1__status_response__free_unpacked(s, NULL);
    siam_service_free(svc);
    free(P);
}

/* Poisoned weights through the service: a samples value whose sum with another wraps a uint64
 * (before: the round closed with "0 samples", every global parameter inf, and image Similarity
 * answered distance 0 for every pair) is INVALID_ARGUMENT naming the field and the limit; the
 * round closes with the others, finite; a non-finite model is refused by set_model (the layer
 * that adopts it, also for --resume) and as a first join. */
/* A WeightsUpdate with the parameters in enc (blocks of SIAM_ENC_BLOCK, as siam-client sends
 * them); edit, when set, changes the message before it is packed (bad input). */
static void sync_call_enc(siam_service *svc, call *c, const char *worker, const char *spec,
                          const float *p, size_t n, uint64_t samples, uint64_t round, int enc,
                          void (*edit)(Siam__V1__WeightsUpdate *u)) {
    Siam__V1__WeightsUpdate u = SIAM__V1__WEIGHTS_UPDATE__INIT;
    u.worker_id = (char *)worker;
    u.model_spec = (char *)spec;
    u.samples = samples;
    u.step = 17;
    u.round = round;
    u.encoding = (Siam__V1__WireEncoding)enc;
    uint8_t *packed = malloc(n * 4 + 1);
    float *scales = malloc((siam_encoding_blocks(n) + 1) * sizeof *scales);
    siam_encode_blocks((siam_encoding)enc, p, n, packed, scales);
    u.params_packed.data = packed, u.params_packed.len = n * siam_encoding_size(enc);
    if (siam_encoding_scaled(enc))
        u.params_scales = scales, u.n_params_scales = siam_encoding_blocks(n);
    if (edit)
        edit(&u);
    size_t len = siam__v1__weights_update__get_packed_size(&u);
    uint8_t *buf = malloc(len ? len : 1);
    siam__v1__weights_update__pack(&u, buf);
    sync_bytes(svc, c, buf, len);
    free(buf);
    free(packed);
    free(scales);
}

/* p as the server reads it from enc: encoded and decoded */
static float *as_sent(const float *p, size_t n, int enc) {
    uint8_t *packed = malloc(n * 4 + 1);
    float *scales = malloc((siam_encoding_blocks(n) + 1) * sizeof *scales);
    float *out = malloc(n * sizeof *out);
    siam_error err = {0};
    siam_encode_blocks((siam_encoding)enc, p, n, packed, scales);
    int rc = siam_decode_blocks((siam_encoding)enc, packed, n * siam_encoding_size(enc), scales,
                                siam_encoding_scaled(enc) ? siam_encoding_blocks(n) : 0, n, "p",
                                out, &err);
    CHECK(rc == SIAM_OK, "round trip in %s: %s", siam_encoding_name(enc), err.msg);
    free(packed);
    free(scales);
    return out;
}

static void odd_length(Siam__V1__WeightsUpdate *u) {
    u->params_packed.len--;
}
static void one_short(Siam__V1__WeightsUpdate *u) {
    u->params_packed.len -= 2;
}
static void zero_scale(Siam__V1__WeightsUpdate *u) {
    u->params_scales[3] = 0.0f;
}
static void nan_in_tail(Siam__V1__WeightsUpdate *u) {
    u->params_packed.data[u->params_packed.len - 1] = 0x7e; /* fp16 0x7exx: NaN */
}
static void both_fields(Siam__V1__WeightsUpdate *u) {
    static float one = 1.0f;
    u->params = &one, u->n_params = 1;
}
static void unknown_encoding(Siam__V1__WeightsUpdate *u) {
    u->encoding = (Siam__V1__WireEncoding)9;
}
static void fp32_with_packed(Siam__V1__WeightsUpdate *u) {
    u->encoding = SIAM__V1__WIRE_ENCODING__WIRE_FP32;
    u->n_params_scales = 0;
}

/* SyncWeights in fp16, bf16 and int8: each worker gets the global model in its own encoding,
 * the mean of what the server decoded to within the encoding's rounding; every bad field is
 * refused naming it, and a refused update changes nothing. */
static void test_service_encoded_sync(void) {
    siam_rng rng;
    siam_rng_seed(&rng, 83);
    siam_error err = {0};
    const char *S = "in=28x28x1 dense4"; /* 3,140 parameters: 12 blocks and a tail of 68 */
    size_t n = 0;
    float *P = model_params(S, 7, &rng, &n), *Q = model_params(S, 8, &rng, &n),
          *R = model_params(S, 9, &rng, &n);
    if (!P || !Q || !R)
        return;
    CHECK(n % SIAM_ENC_BLOCK != 0, "the test wants a tail block: %zu parameters", n);
    siam_service *svc = NULL;
    CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "test", &err) == 0, "init");
    CHECK(siam_service_start_averaging(svc, 2, 5.0, NULL, NULL, svc_reply, &err) == 0, "start");

    static const struct {
        void (*edit)(Siam__V1__WeightsUpdate *u);
        int enc, code;
        const char *words[3];
    } bad[] = {
        {odd_length, SIAM_ENC_FP16, SIAM_RPC_INVALID_ARGUMENT, {"params_packed", "6279", "fp16"}},
        {one_short, SIAM_ENC_BF16, SIAM_RPC_INVALID_ARGUMENT, {"params_packed", "3139", "3140"}},
        {zero_scale, SIAM_ENC_INT8, SIAM_RPC_INVALID_ARGUMENT, {"params_packed", "block 3", "0"}},
        {nan_in_tail,
         SIAM_ENC_FP16,
         SIAM_RPC_INVALID_ARGUMENT,
         {"params_packed", "block 12", "nan"}},
        {both_fields,
         SIAM_ENC_FP16,
         SIAM_RPC_INVALID_ARGUMENT,
         {"params has 1", "params_packed", ""}},
        {unknown_encoding,
         SIAM_ENC_FP16,
         SIAM_RPC_FAILED_PRECONDITION,
         {"9", "fp16", "--sync-wire"}},
        {fp32_with_packed, SIAM_ENC_BF16, SIAM_RPC_INVALID_ARGUMENT, {"params_packed", "fp32", ""}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        call c = {0};
        sync_call_enc(svc, &c, "w1", S, P, n, 0, 0, bad[i].enc, bad[i].edit);
        int ok = answered(&c) == 1 && c.code == bad[i].code;
        for (int k = 0; k < 3; k++)
            ok &= strstr(c.msg, bad[i].words[k]) != NULL;
        CHECK(ok, "bad update %zu: %s '%s'", i, siam_rpc_code_name(c.code), c.msg);
        call_reset(&c);
    }
    CHECK(!siam_averaging_has_model(siam_service_averaging(svc)),
          "a refused first join made a model");

    /* joins: w1 in fp16 makes the global model; w2 joins in bf16 */
    call j1 = {0}, j2 = {0}, r1 = {0}, r2 = {0};
    sync_call_enc(svc, &j1, "w1", S, P, n, 0, 0, SIAM_ENC_FP16, NULL);
    sync_call_enc(svc, &j2, "w2", S, P, n, 0, 0, SIAM_ENC_BF16, NULL);
    CHECK(wait_for(&j1, 5.0) == 1 && wait_for(&j2, 5.0) == 1 && j1.code == SIAM_RPC_OK &&
              j2.code == SIAM_RPC_OK && j1.encoding == SIAM_ENC_FP16 &&
              j2.encoding == SIAM_ENC_BF16 && j1.n_params == n && j2.n_params == n,
          "joins: %s '%s' / %s '%s', encodings %d %d", siam_rpc_code_name(j1.code), j1.msg,
          siam_rpc_code_name(j2.code), j2.msg, j1.encoding, j2.encoding);
    /* a round: Q in fp16 (1 sample), R in int8 (3 samples) */
    sync_call_enc(svc, &r1, "w1", S, Q, n, 1, j1.round, SIAM_ENC_FP16, NULL);
    sync_call_enc(svc, &r2, "w2", S, R, n, 3, j2.round, SIAM_ENC_INT8, NULL);
    CHECK(wait_for(&r1, 5.0) == 1 && wait_for(&r2, 5.0) == 1 && r1.code == SIAM_RPC_OK &&
              r2.code == SIAM_RPC_OK && r1.workers == 2 && r1.samples == 4 &&
              r1.encoding == SIAM_ENC_FP16 && r2.encoding == SIAM_ENC_INT8 && r1.n_params == n &&
              r2.n_params == n,
          "round: %s '%s' / %s '%s', %u workers, %llu samples", siam_rpc_code_name(r1.code), r1.msg,
          siam_rpc_code_name(r2.code), r2.msg, r1.workers, (unsigned long long)r1.samples);
    float *q = as_sent(Q, n, SIAM_ENC_FP16), *r = as_sent(R, n, SIAM_ENC_INT8);
    double worst16 = 0.0, worst8 = 0.0;
    for (size_t b = 0; r1.params && r2.params && b * SIAM_ENC_BLOCK < n; b++) {
        size_t lo = b * SIAM_ENC_BLOCK, hi = lo + SIAM_ENC_BLOCK < n ? lo + SIAM_ENC_BLOCK : n;
        double mean[SIAM_ENC_BLOCK], top = 0.0;
        for (size_t i = lo; i < hi; i++) {
            mean[i - lo] = (1.0 * q[i] + 3.0 * r[i]) / 4.0;
            top = fabs(mean[i - lo]) > top ? fabs(mean[i - lo]) : top;
        }
        for (size_t i = lo; i < hi && top > 0.0; i++) {
            double e16 = fabs(r1.params[i] - mean[i - lo]) / top,
                   e8 = fabs(r2.params[i] - mean[i - lo]) / top;
            worst16 = e16 > worst16 ? e16 : worst16;
            worst8 = e8 > worst8 ? e8 : worst8;
        }
    }
    /* fp16 keeps 11 significant bits of value / block max; int8 rounds to block max / 127, plus
     * the float mean's own rounding */
    CHECK(worst16 <= 0.5 / 1024.0 + 1e-6 && worst8 <= 0.5 / 127.0 + 1e-6,
          "global vs the mean of the decoded updates: %g (fp16, block max units), %g (int8)",
          worst16, worst8);
    free(q);
    free(r);
    call_reset(&j1);
    call_reset(&j2);
    call_reset(&r1);
    call_reset(&r2);
    siam_service_free(svc);
    free(P);
    free(Q);
    free(R);
}

static void test_service_poisoned_weights(void) {
    siam_rng rng;
    siam_rng_seed(&rng, 79);
    siam_error err = {0};
    const char *S = "in=28x28x1 dense4";
    size_t n = 0;
    float *P = model_params(S, 7, &rng, &n), *Q = model_params(S, 8, &rng, &n);
    if (!P || !Q)
        return;
    siam_service *svc = NULL;
    CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "test", &err) == 0, "init");
    CHECK(siam_service_start_averaging(svc, 1, 5.0, NULL, NULL, svc_reply, &err) == 0, "start");
    float *bad = malloc(n * sizeof *bad);
    memcpy(bad, P, n * sizeof *bad);
    bad[1] = INFINITY;
    call c = {0};
    sync_call(svc, &c, "w0", S, bad, n, 0, 0); /* a first join with inf is no model */
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT && strstr(c.msg, "params[1]"),
          "first join with inf: %s '%s'", siam_rpc_code_name(c.code), c.msg);
    call_reset(&c);
    int rc = siam_service_set_model(svc, S, bad, n, 3, 0, &err);
    CHECK(rc != SIAM_OK && strstr(err.msg, "finite") &&
              !siam_averaging_has_model(siam_service_averaging(svc)),
          "set_model (--resume) with inf: %d '%s'", rc, err.msg);
    CHECK(siam_service_set_model(svc, S, P, n, 0, 0, &err) == SIAM_OK, "set_model: %s", err.msg);

    call j1 = {0}, j2 = {0}, r1 = {0}, r2 = {0};
    sync_call(svc, &j1, "w1", S, P, n, 0, 0);
    sync_call(svc, &j2, "w2", S, P, n, 0, 0);
    sync_call(svc, &r1, "w1", S, Q, n, UINT64_MAX, 0);
    CHECK(answered(&r1) == 1 && r1.code == SIAM_RPC_INVALID_ARGUMENT && strstr(r1.msg, "samples") &&
              strstr(r1.msg, "4294967296"),
          "samples 2^64-1: %s '%s'", siam_rpc_code_name(r1.code), r1.msg);
    call_reset(&r1);
    sync_call(svc, &r2, "w2", S, Q, n, 1, 0);
    sync_call(svc, &r1, "w1", S, P, n, 1, 0);
    CHECK(wait_for(&r1, 5.0) == 1 && wait_for(&r2, 5.0) == 1 && r1.code == SIAM_RPC_OK &&
              r2.code == SIAM_RPC_OK && r1.round == 1 && r1.samples == 2,
          "round after a refused weight: %s '%s' round %llu samples %llu",
          siam_rpc_code_name(r1.code), r1.msg, (unsigned long long)r1.round,
          (unsigned long long)r1.samples);
    int finite = r1.params != NULL;
    for (size_t i = 0; r1.params && i < r1.n_params; i++)
        finite &= isfinite(r1.params[i]) != 0;
    CHECK(finite, "the global model after the round is not finite");
    /* and image Similarity tells different images apart */
    uint8_t img[2 * 784];
    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (uint8_t)(i < 784 ? 0 : 255);
    Siam__V1__SimilarityResponse *sr = NULL;
    siam_rpc_status st;
    image_similarity(svc, img, 784, img + 784, 784, 0, NULL, 0, &sr, &st);
    CHECK(sr && sr->n_distances == 1 && isfinite(sr->distances[0]) && sr->distances[0] > 0,
          "black vs white image: distance %g",
          sr && sr->n_distances ? (double)sr->distances[0] : -1.0);
    if (sr)
        siam__v1__similarity_response__free_unpacked(sr, NULL);
    call_reset(&j1);
    call_reset(&j2);
    call_reset(&r1);
    call_reset(&r2);
    siam_service_free(svc);
    free(bad);
    free(P);
    free(Q);
}

/* Invented names by Train: 1,024 of them fill Status's table; once quiet for the expiry they
 * make room and a real worker is listed. */
static void test_service_worker_expiry(void) {
    siam_error err = {0};
    siam_service *svc = NULL;
    CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "test", &err) == 0, "init");
    CHECK(siam_service_start_averaging(svc, 1, 0.05, NULL, NULL, svc_reply, &err) == 0, "start");
    siam_averaging_set_expiry(siam_service_averaging(svc), 0.3);
    for (int i = 0; i < SIAM_SERVICE_MAX_WORKERS; i++) {
        char name[32];
        snprintf(name, sizeof name, "fake%04d", i);
        siam_train_stream ts;
        memset(&ts, 0, sizeof ts);
        train_one(svc, &ts, name);
        siam_service_train_end(svc, &ts);
    }
    siam_train_stream ts;
    memset(&ts, 0, sizeof ts);
    train_one(svc, &ts, "real");
    Siam__V1__StatusResponse *s = get_status(svc);
    CHECK(s && s->n_workers == SIAM_SERVICE_MAX_WORKERS && !status_worker(s, "real"),
          "full table: %zu listed", s ? s->n_workers : 0);
    siam__v1__status_response__free_unpacked(s, NULL);
    siam_service_train_end(svc, &ts);
    sleep_s(0.45);
    memset(&ts, 0, sizeof ts);
    train_one(svc, &ts, "real");
    s = get_status(svc);
    CHECK(s && status_worker(s, "real") && status_worker(s, "real")->pairs_trained == 1,
          "a real worker is not listed after the invented names went quiet");
    siam__v1__status_response__free_unpacked(s, NULL);
    siam_service_train_end(svc, &ts);
    siam_service_free(svc);
}

int main(void) {
    siam_log_set_level(SIAM_LOG_WARN);
    sync_test_init();
    double t0 = siam_now();
    test_service();
    test_service_rejected_first_join();
    test_service_first_join_specs();
    test_service_poisoned_weights();
    test_service_encoded_sync();
    test_service_worker_expiry();
    printf("image distances: %d bit-exact, %d within 1e-6 relative; %.2f s\n", bitexact_distances,
           near_distances, siam_now() - t0);
    return tu_finish();
}
