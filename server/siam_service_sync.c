/* siam_service_sync: SyncWeights, the averaging glue and adopting the global model. */
#include "siam_service_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_encoding.h"
#include "siam_log.h"

#include "siam/v1/siam.pb-c.h"

/* SyncWeights and the global model */

/* One waiting SyncWeights call. */
typedef struct {
    siam_service *svc;
    void *waiter;
    int encoding; /* the update's, for the answer */
} sync_call;

/* The answer's parameters in an encoding other than fp32: g->params_packed and *scales are
 * allocated (the caller frees both), g->params is cleared. */
static int svc_encode_blocks(int enc, const float *params, size_t n, Siam__V1__GlobalWeights *g,
                             float **scales, siam_rpc_status *st) {
    size_t blocks = siam_encoding_blocks(n);
    int scaled = siam_encoding_scaled(enc);
    g->encoding = (Siam__V1__WireEncoding)enc;
    g->n_params = 0, g->params = NULL;
    g->params_packed.len = n * siam_encoding_size(enc);
    g->params_packed.data = malloc(g->params_packed.len ? g->params_packed.len : 1);
    *scales = scaled ? malloc((blocks ? blocks : 1) * sizeof **scales) : NULL;
    if (!g->params_packed.data || (scaled && !*scales)) {
        g->params_packed.len = 0;
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "out of memory encoding %zu parameters as %s", n,
                                   siam_encoding_name(enc));
    }
    siam_encode_blocks((siam_encoding)enc, params, n, g->params_packed.data, *scales);
    g->params_scales = *scales, g->n_params_scales = scaled ? blocks : 0;
    return SIAM_RPC_OK;
}

/* The update's parameters as floats: u->params for fp32, else decoded from params_packed into
 * *decoded (allocated; the caller frees it). The count is checked against the spec, when it
 * parses, before anything is allocated. On failure st says which field is wrong. */
static int update_params(const Siam__V1__WeightsUpdate *u, const float **params, size_t *n,
                         float **decoded, siam_rpc_status *st) {
    int enc = (int)u->encoding;
    *decoded = NULL;
    int rc = svc_check_encoding(enc, st);
    if (rc)
        return rc;
    if (enc == SIAM_ENC_FP32) {
        if (u->params_packed.len || u->n_params_scales)
            return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                       "params_packed has %zu bytes and params_scales %zu values, "
                                       "but the encoding is fp32, which travels in params",
                                       u->params_packed.len, u->n_params_scales);
        if (u->n_params == 0)
            return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT, "params is empty");
        *params = u->params, *n = u->n_params;
        return SIAM_RPC_OK;
    }
    if (u->n_params)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "params has %zu floats, but the encoding is %s, which travels "
                                   "in params_packed: send one or the other",
                                   u->n_params, siam_encoding_name(enc));
    size_t size = siam_encoding_size(enc), len = u->params_packed.len;
    if (len == 0)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT, "params_packed is empty");
    if (len % size)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "params_packed has %zu bytes, not a whole number of %s values "
                                   "(%zu bytes each)",
                                   len, siam_encoding_name(enc), size);
    size_t count = len / size, want = 0;
    siam_error err = {0};
    if (u->model_spec && siam_model_spec_parse(u->model_spec, NULL, &want, &err) == SIAM_OK &&
        count != want)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "params_packed holds %zu %s values, expected %zu for model "
                                   "'%.300s'",
                                   count, siam_encoding_name(enc), want, u->model_spec);
    *decoded = malloc(count * sizeof **decoded);
    if (!*decoded)
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "out of memory decoding %zu parameters", count);
    if (siam_decode_blocks((siam_encoding)enc, u->params_packed.data, len, u->params_scales,
                           u->n_params_scales, count, "params_packed", *decoded, &err)) {
        free(*decoded);
        *decoded = NULL;
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT, "%s", err.msg);
    }
    *params = *decoded, *n = count;
    return SIAM_RPC_OK;
}

static void sync_answer(void *waiter, const siam_averaging_answer *a) {
    sync_call *c = waiter;
    siam_rpc_status st = {SIAM_RPC_OK, ""};
    siam_rpc_buf resp = {0};
    if (a->code != SIAM_RPC_OK) {
        siam_rpc_status_set(&st, a->code, "%s", a->msg);
    } else {
        Siam__V1__GlobalWeights g = SIAM__V1__GLOBAL_WEIGHTS__INIT;
        g.round = a->round;
        g.n_params = a->n_params;
        g.params = (float *)a->params;
        g.model_spec = (char *)a->spec;
        g.workers = a->workers;
        g.samples = a->samples;
        g.late = a->late != 0;
        float *scales = NULL;
        if (c->encoding != SIAM_ENC_FP32)
            svc_encode_blocks(c->encoding, a->params, a->n_params, &g, &scales, &st);
        if (st.code == SIAM_RPC_OK)
            svc_encode(&g.base, "GlobalWeights", &resp, &st);
        free(g.params_packed.data);
        free(scales);
    }
    c->svc->sync_reply(c->waiter, st.code == SIAM_RPC_OK ? &resp : NULL, &st);
    free(c);
}

/* cfg.gone of the averaging: whether the caller of a waiting SyncWeights call has gone. */
static int sync_gone(void *waiter) {
    sync_call *c = waiter;
    return c->svc->sync_cancelled && c->svc->sync_cancelled(c->waiter);
}

void siam_service_set_sync_cancelled(siam_service *svc, int (*cancelled)(void *waiter)) {
    svc->sync_cancelled = cancelled;
}

/* The averaging's on_round: the round's parameters become the newest weights, then the caller's
 * on_round runs (checkpoints). */
static void svc_on_round(void *ctx, const siam_averaging_answer *a) {
    siam_service *svc = ctx;
    svc_publish_weights(svc, a->spec, a->params, a->n_params, a->round);
    if (svc->on_round)
        svc->on_round(svc->round_ctx, a);
}

int siam_service_start_averaging(
    siam_service *svc, int min_workers, double sync_timeout,
    void (*on_round)(void *ctx, const siam_averaging_answer *a), void *round_ctx,
    void (*reply)(void *waiter, siam_rpc_buf *resp, const siam_rpc_status *st), siam_error *err) {
    if (!svc || !reply)
        return siam_error_set(err, SIAM_ERR_ARG, "averaging needs a service and a reply function");
    siam_averaging_config cfg = {min_workers,  sync_timeout, sync_answer,
                                 svc_on_round, svc,          sync_gone};
    svc->sync_reply = reply;
    svc->on_round = on_round;
    svc->round_ctx = round_ctx;
    return siam_averaging_create(&svc->avg, &cfg, err);
}

/* Makes spec the global model with params (model_lock held): checks the parameter count against
 * the spec before anything is allocated for it (a client's spec may describe any size), hands the
 * parameters to the averaging and, when it took them, publishes them as the newest weights
 * (image requests, the gallery). A refused spec leaves no trace. On failure st (code) or err
 * explains. */
static int adopt_model(siam_service *svc, const char *spec, const float *params, size_t n,
                       uint64_t round, siam_rpc_status *st, siam_error *err) {
    size_t want = 0;
    char canon[SIAM_SPEC_MAX];
    if (siam_model_spec_parse(spec, canon, &want, err))
        return siam_rpc_status_set(st,
                                   err->code == SIAM_ERR_NOMEM ? SIAM_RPC_RESOURCE_EXHAUSTED
                                                               : SIAM_RPC_INVALID_ARGUMENT,
                                   "model_spec '%.300s': %s", spec, err->msg);
    if (want != n) {
        siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                            "params has %zu floats, expected %zu for model '%.300s'", n, want,
                            spec);
        siam_error_set(err, SIAM_ERR_MISMATCH, "%s", st->msg);
        return st->code;
    }
    int had = siam_averaging_has_model(svc->avg);
    if (siam_averaging_set_model(svc->avg, canon, params, n, round, err))
        return siam_rpc_status_set(st, SIAM_RPC_FAILED_PRECONDITION, "%s", err->msg);
    if (!had) /* with a model already, the averaging kept its own parameters */
        svc_publish_weights(svc, canon, params, n, round);
    return SIAM_RPC_OK;
}

int siam_service_set_model(siam_service *svc, const char *spec, const float *params, size_t n,
                           uint64_t round, uint64_t global_step, siam_error *err) {
    if (!svc->avg)
        return siam_error_set(err, SIAM_ERR_ARG, "averaging is not started");
    siam_rpc_status st = {SIAM_RPC_OK, ""};
    pthread_mutex_lock(&svc->model_lock);
    int rc = adopt_model(svc, spec, params, n, round, &st, err);
    pthread_mutex_unlock(&svc->model_lock);
    if (rc)
        return err->code ? err->code : SIAM_ERR_MISMATCH;
    pthread_mutex_lock(&svc->lock);
    svc->global_step = global_step;
    pthread_mutex_unlock(&svc->lock);
    return SIAM_OK;
}

static void sync_fail(siam_service *svc, void *waiter, const siam_rpc_status *st) {
    if (svc && svc->sync_reply)
        svc->sync_reply(waiter, NULL, st);
}

void siam_service_sync(siam_service *svc, const uint8_t *req, size_t len, void *waiter) {
    siam_rpc_status st = {SIAM_RPC_OK, ""};
    if (!svc || !svc->avg || !svc->sync_reply) {
        siam_rpc_status_set(&st, SIAM_RPC_UNIMPLEMENTED, "this server does not average weights");
        sync_fail(svc, waiter, &st);
        return;
    }
    decode_alloc da;
    Siam__V1__WeightsUpdate *u = (Siam__V1__WeightsUpdate *)svc_decode(
        &siam__v1__weights_update__descriptor, &da, req, len, &st);
    if (!u) {
        sync_fail(svc, waiter, &st);
        return;
    }
    char id[sizeof(((siam_worker_record *)0)->id)];
    svc_copy_name(id, sizeof id, u->worker_id ? u->worker_id : "");
    if (!id[0])
        siam_rpc_status_set(&st, SIAM_RPC_INVALID_ARGUMENT,
                            "worker_id is empty: SyncWeights needs a name unique to each worker");
    else if (!u->model_spec || !u->model_spec[0])
        siam_rpc_status_set(&st, SIAM_RPC_INVALID_ARGUMENT, "model_spec is empty");
    else if (strlen(u->model_spec) >= SIAM_SPEC_MAX)
        siam_rpc_status_set(&st, SIAM_RPC_INVALID_ARGUMENT,
                            "model_spec has %zu bytes, expected fewer than %d",
                            strlen(u->model_spec), SIAM_SPEC_MAX);
    else if (u->samples > SIAM_AVERAGING_MAX_SAMPLES)
        siam_rpc_status_set(&st, SIAM_RPC_INVALID_ARGUMENT,
                            "samples is %llu, expected at most %llu (the pairs trained since the "
                            "last sync)",
                            (unsigned long long)u->samples,
                            (unsigned long long)SIAM_AVERAGING_MAX_SAMPLES);
    const float *params = NULL;
    size_t n_params = 0;
    float *decoded = NULL;
    if (st.code == SIAM_RPC_OK &&
        update_params(u, &params, &n_params, &decoded, &st) == SIAM_RPC_OK && !decoded)
        svc_check_finite("params", params, n_params, 1, &st);
    /* the spec as the averaging knows specs: canonical ("mlp", extra spaces), when it parses;
     * otherwise as sent (the averaging then names it in its mismatch message) */
    char spec[SIAM_SPEC_MAX] = "";
    if (st.code == SIAM_RPC_OK && siam_model_spec_parse(u->model_spec, spec, NULL, NULL))
        snprintf(spec, sizeof spec, "%s", u->model_spec);
    if (st.code == SIAM_RPC_OK && !siam_averaging_has_model(svc->avg)) {
        /* the first worker's model becomes the global model */
        siam_error err = {0};
        pthread_mutex_lock(&svc->model_lock);
        if (!siam_averaging_has_model(svc->avg) &&
            adopt_model(svc, spec, params, n_params, 0, &st, &err) == SIAM_RPC_OK)
            LOG_INFO("service", "global model from worker %s: %s (%zu parameters)", id, spec,
                     n_params);
        pthread_mutex_unlock(&svc->model_lock);
    }
    if (st.code != SIAM_RPC_OK) {
        free(decoded);
        siam__v1__weights_update__free_unpacked(u, &da.base);
        sync_fail(svc, waiter, &st);
        return;
    }
    double now = siam_now();
    pthread_mutex_lock(&svc->lock);
    siam_worker_record *w = svc_worker_record(svc, id, now);
    if (w)
        w->last_seen = now;
    pthread_mutex_unlock(&svc->lock);

    sync_call *c = malloc(sizeof *c);
    if (!c) {
        free(decoded);
        siam__v1__weights_update__free_unpacked(u, &da.base);
        siam_rpc_status_set(&st, SIAM_RPC_RESOURCE_EXHAUSTED, "out of memory");
        sync_fail(svc, waiter, &st);
        return;
    }
    c->svc = svc;
    c->waiter = waiter;
    c->encoding = (int)u->encoding;
    siam_averaging_update up = {id, spec, params, n_params, u->samples, u->round};
    siam_averaging_submit(svc->avg, &up, c);
    free(decoded);
    siam__v1__weights_update__free_unpacked(u, &da.base);
}
