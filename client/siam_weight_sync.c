/* siam_weight_sync: WeightsUpdate -> GlobalWeights, adopted into the model. */
#include "siam_weight_sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam/v1/siam.pb-c.h"
#include "siam_checkpoint.h"
#include "siam_encoding.h"
#include "siam_log.h"
#include "siam_wire.h"

#define COMPONENT   "sync"
#define JOIN_POLL_S 10.0 /* a waiting join is retried (and the wait logged) this often */

/* The server's "waiting for ..." text, or "" (best effort: the join is retried anyway).
 * Returns the Status call's code (st says why it failed). */
static int server_waiting(siam_weight_sync *s, char *out, size_t cap, siam_rpc_status *st) {
    static const uint8_t empty[1];
    siam_rpc_buf resp = {0};
    out[0] = '\0';
    if (siam_rpc_call(s->ch, SIAM_METHOD_STATUS, empty, 0, JOIN_POLL_S, &resp, st) != SIAM_RPC_OK) {
        siam_rpc_buf_free(&resp);
        return st->code;
    }
    Siam__V1__StatusResponse *r = siam__v1__status_response__unpack(NULL, resp.len, resp.data);
    siam_rpc_buf_free(&resp);
    if (r && r->waiting)
        snprintf(out, cap, "%s", r->waiting);
    if (r)
        siam__v1__status_response__free_unpacked(r, NULL);
    return SIAM_RPC_OK;
}

int siam_weight_sync_fn(void *ctx, siam_model *m, uint64_t samples, uint64_t step,
                        siam_error *err) {
    siam_weight_sync *s = ctx;
    const char *server = s->server ? s->server : "?";
    size_t n = siam_model_num_params(m);
    float *params = siam_model_params(m);

    Siam__V1__WeightsUpdate u = SIAM__V1__WEIGHTS_UPDATE__INIT;
    u.worker_id = (char *)s->worker_id;
    u.model_spec = (char *)siam_model_spec(m);
    u.n_params = n;
    u.params = params;
    u.samples = samples;
    u.step = step;
    u.round = s->round;
    int enc = s->encoding;
    float *scales = NULL;
    if (enc != SIAM_ENC_FP32) {
        size_t blocks = siam_encoding_blocks(n);
        u.encoding = (Siam__V1__WireEncoding)enc;
        u.n_params = 0, u.params = NULL;
        u.params_packed.len = n * siam_encoding_size(enc);
        u.params_packed.data = malloc(u.params_packed.len ? u.params_packed.len : 1);
        if (siam_encoding_scaled(enc)) {
            scales = malloc((blocks ? blocks : 1) * sizeof *scales);
            u.params_scales = scales, u.n_params_scales = blocks;
        }
        if (!u.params_packed.data || (siam_encoding_scaled(enc) && !scales)) {
            free(u.params_packed.data);
            free(scales);
            return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory encoding %zu parameters", n);
        }
        siam_encode_blocks((siam_encoding)enc, params, n, u.params_packed.data, scales);
    }
    size_t len = siam__v1__weights_update__get_packed_size(&u);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf)
        siam__v1__weights_update__pack(&u, buf);
    free(u.params_packed.data);
    free(scales);
    if (!buf)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for a %zu-byte update", len);

    double t0 = siam_now();
    siam_rpc_buf resp = {0};
    siam_rpc_status st = {0};
    int code;
    char why[256] = "";
    for (;;) {
        double timeout = samples == 0 ? JOIN_POLL_S : s->timeout;
        code = siam_rpc_call(s->ch, SIAM_METHOD_SYNC_WEIGHTS, buf, len, timeout, &resp, &st);
        if (code == SIAM_RPC_OK)
            break;
        siam_rpc_buf_free(&resp);
        /* a join waits while the server waits for --min-workers: as long as the server
         * answers Status, that is no outage */
        char waiting[160];
        if (samples == 0 && code == SIAM_RPC_DEADLINE_EXCEEDED &&
            server_waiting(s, waiting, sizeof waiting, &st) == SIAM_RPC_OK) {
            double outage = siam_retry_success(s->retry, siam_now());
            if (outage >= 0)
                LOG_INFO(COMPONENT, "siam-server at %s answered again after %.1f s", server,
                         outage);
            LOG_INFO(COMPONENT, "not started yet: siam-server at %s is %s", server,
                     waiting[0] ? waiting : "not answering the join");
            continue;
        }
        code = st.code; /* after a failed Status (a join's), that call's status */
        char what[64];
        snprintf(what, sizeof what, "SyncWeights at step %llu", (unsigned long long)step);
        if (!siam_retry_again(s->retry, s->ch, server, what, &st, why, sizeof why))
            break;
    }
    free(buf);
    double outage = code == SIAM_RPC_OK ? siam_retry_success(s->retry, siam_now()) : -1.0;
    if (outage >= 0)
        LOG_INFO(COMPONENT,
                 "siam-server at %s answered again after %.1f s: the %s of step %llu was sent "
                 "again",
                 server, outage, samples == 0 ? "join" : "update", (unsigned long long)step);
    double waited = siam_now() - t0;
    /* neither the join's wait for the other workers nor an outage is averaging's cost */
    if (samples > 0)
        s->wait_seconds += waited - (outage > 0 ? outage : 0);
    if (code != SIAM_RPC_OK) {
        siam_rpc_buf_free(&resp);
        return siam_error_set(err, SIAM_ERR_IO, "siam-server at %s: SyncWeights: %s: %s%s", server,
                              siam_rpc_code_name(code), st.msg[0] ? st.msg : "no message", why);
    }
    Siam__V1__GlobalWeights *g = siam__v1__global_weights__unpack(NULL, resp.len, resp.data);
    siam_rpc_buf_free(&resp);
    int rc = SIAM_OK;
    if (!g)
        rc = siam_error_set(err, SIAM_ERR_FORMAT,
                            "siam-server at %s: the SyncWeights answer is not GlobalWeights",
                            server);
    else if ((int)g->encoding != enc)
        rc = siam_error_set(
            err, SIAM_ERR_FORMAT, "siam-server at %s: the global weights came in %s, asked for %s",
            server,
            siam_encoding_name((int)g->encoding) ? siam_encoding_name((int)g->encoding)
                                                 : "an unknown encoding",
            siam_encoding_name(enc));
    else if (enc == SIAM_ENC_FP32 && g->n_params != n)
        rc = siam_error_set(err, SIAM_ERR_FORMAT,
                            "siam-server at %s: the global model has %zu parameters, this "
                            "worker's %zu",
                            server, g->n_params, n);
    else if (!g->model_spec || strcmp(g->model_spec, siam_model_spec(m)) != 0)
        rc = siam_error_set(err, SIAM_ERR_FORMAT,
                            "siam-server at %s: the global model is '%.200s', this worker's "
                            "'%.200s'",
                            server, g->model_spec ? g->model_spec : "", siam_model_spec(m));
    if (rc) {
        if (g)
            siam__v1__global_weights__free_unpacked(g, NULL);
        return rc;
    }
    if (enc == SIAM_ENC_FP32) {
        memcpy(params, g->params, n * sizeof *params);
    } else {
        /* decoded aside: a bad answer leaves the model as it was */
        float *dec = malloc((n ? n : 1) * sizeof *dec);
        siam_error derr = {0};
        if (!dec)
            rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory decoding %zu parameters", n);
        else if (siam_decode_blocks((siam_encoding)enc, g->params_packed.data, g->params_packed.len,
                                    g->params_scales, g->n_params_scales, n, "params_packed", dec,
                                    &derr))
            rc = siam_error_set(err, SIAM_ERR_FORMAT,
                                "siam-server at %s: the global weights do not fit this worker's "
                                "%zu parameters: %s",
                                server, n, derr.msg);
        else
            memcpy(params, dec, n * sizeof *params);
        free(dec);
        if (rc) {
            siam__v1__global_weights__free_unpacked(g, NULL);
            return rc;
        }
    }
    s->round = g->round;
    uint32_t crc = siam_params_crc32(params, n);
    if (samples == 0)
        LOG_INFO(COMPONENT,
                 "joined at round %llu after %.2f s: starting from the global model "
                 "(params_crc32=%08x)",
                 (unsigned long long)g->round, waited, crc);
    else if (g->late) {
        s->late++;
        LOG_WARN(COMPONENT,
                 "step %llu: the update came after its round closed and was not averaged; "
                 "adopted round %llu (params_crc32=%08x)",
                 (unsigned long long)step, (unsigned long long)g->round, crc);
    } else {
        s->syncs++;
        LOG_INFO(COMPONENT,
                 "step %llu: round %llu adopted (%u worker(s), %llu samples, waited %.4f s) "
                 "params_crc32=%08x",
                 (unsigned long long)step, (unsigned long long)g->round, g->workers,
                 (unsigned long long)g->samples, waited, crc);
    }
    siam__v1__global_weights__free_unpacked(g, NULL);
    return SIAM_OK;
}
