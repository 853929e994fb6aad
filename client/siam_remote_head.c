/* siam_remote_head: the loss head as one EmbeddingBatch -> BatchResult exchange on a Train
 * stream to siam-server, sent again on a new stream after a transient failure. */
#include "siam_remote_head.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam/v1/siam.pb-c.h"
#include "siam_encoding.h"
#include "siam_log.h"
#include "siam_wire.h"

#define COMPONENT "client"

/* One attempt: opens the stream when there is none, sends the batch, runs idle (once per call:
 * *idled) while the server computes, and receives the answer. Returns the gRPC code (st says
 * why), or -1 when memory ran out for the message (err says so). */
static int attempt(siam_remote_head *h, const char *method, const ProtobufCMessage *req,
                   siam_idle_fn idle, void *idle_ctx, int *idled, siam_rpc_buf *resp,
                   siam_rpc_status *st, siam_error *err) {
    double t0 = siam_now();
    int code = SIAM_RPC_OK;
    if (h->stream && h->retry && h->opened_after != h->retry->reconnects) {
        /* the server went away since this stream opened (SyncWeights found out): it is dead */
        siam_rpc_stream_free(h->stream);
        h->stream = NULL;
    }
    if (!h->stream) {
        code = siam_rpc_stream_open(h->ch, method, h->timeout, &h->stream, st);
        h->opened_after = h->retry ? h->retry->reconnects : 0;
    }
    if (code == SIAM_RPC_OK) {
        size_t len = protobuf_c_message_get_packed_size(req);
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf) {
            siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for a %zu-byte batch", len);
            return -1;
        }
        protobuf_c_message_pack(req, buf);
        siam_rpc_buf msg = {buf, len}; /* taken by the stream: no copy */
        code = siam_rpc_stream_send(h->stream, &msg, st);
    }
    if (code == SIAM_RPC_OK) {
        if (idle && !*idled) { /* the server computes meanwhile */
            double t1 = siam_now();
            idle(idle_ctx);
            *idled = 1;
            t0 += siam_now() - t1;
        }
        code = siam_rpc_stream_receive(h->stream, resp, st);
    }
    h->rpc_seconds += siam_now() - t0;
    return code;
}

int siam_remote_exchange(siam_remote_head *h, const char *method, const char *rpc,
                         const ProtobufCMessage *req, siam_idle_fn idle, void *idle_ctx,
                         siam_rpc_buf *resp, siam_error *err) {
    const char *server = h->server ? h->server : "?";
    siam_rpc_status st = {0};
    int idled = 0, attempts = 0;
    for (;;) {
        attempts++;
        int code = attempt(h, method, req, idle, idle_ctx, &idled, resp, &st, err);
        if (code == SIAM_RPC_OK)
            break;
        siam_rpc_buf_free(resp);
        siam_rpc_stream_free(h->stream); /* a failed stream is dead: the next attempt opens one */
        h->stream = NULL;
        if (code < 0)
            return err->code;
        char what[48], why[256];
        snprintf(what, sizeof what, "%s step %llu", rpc, (unsigned long long)h->step);
        if (!siam_retry_again(h->retry, h->ch, server, what, &st, why, sizeof why))
            return siam_error_set(err, SIAM_ERR_IO, "siam-server at %s: %s: %s (step %llu)%s%s",
                                  server, siam_rpc_code_name(code),
                                  st.msg[0] ? st.msg : "no message", (unsigned long long)h->step,
                                  /* the server's own message names the limit and the fix */
                                  code == SIAM_RPC_RESOURCE_EXHAUSTED &&
                                          !strstr(st.msg, "--max-message-mb")
                                      ? "; lower the batch size or raise --max-message-mb on "
                                        "both siam-client and siam-server"
                                      : "",
                                  why);
    }
    double outage = siam_retry_success(h->retry, siam_now());
    if (h->retry) /* this stream has just answered: it is not stale */
        h->opened_after = h->retry->reconnects;
    if (attempts > 1) {
        h->resent++;
        LOG_INFO(COMPONENT,
                 "siam-server at %s answered again after %.1f s: step %llu was sent again on a "
                 "new %s stream (%d attempts)",
                 server, outage, (unsigned long long)h->step, rpc, attempts);
    }
    return SIAM_OK;
}

/* The answer's gradients, in the request's encoding, into grad_left and grad_right; grad_right
 * as -grad_left when the server left it out. */
static int answer_gradients(const siam_remote_head *h, const Siam__V1__BatchResult *res, int B,
                            int dim, float *grad_left, float *grad_right, siam_error *err) {
    const char *server = h->server ? h->server : "?";
    size_t n = (size_t)B * (size_t)dim;
    int omitted = res->grad_right_omitted;
    if (h->encoding == SIAM_ENC_FP32) {
        if (res->n_grad_left != n || (!omitted && res->n_grad_right != n))
            return siam_error_set(err, SIAM_ERR_FORMAT,
                                  "siam-server at %s: step %llu: grad_left has %zu and grad_right "
                                  "%zu floats, expected batch*dim = %zu",
                                  server, (unsigned long long)h->step, res->n_grad_left,
                                  res->n_grad_right, n);
        memcpy(grad_left, res->grad_left, n * sizeof *grad_left);
        if (!omitted)
            memcpy(grad_right, res->grad_right, n * sizeof *grad_right);
    } else {
        siam_error e = {0};
        if (siam_decode_rows(h->encoding, res->grad_left_packed.data, res->grad_left_packed.len,
                             res->grad_left_scales, res->n_grad_left_scales, (size_t)B, dim,
                             "grad_left_packed", "pair", grad_left, &e) ||
            (!omitted &&
             siam_decode_rows(h->encoding, res->grad_right_packed.data, res->grad_right_packed.len,
                              res->grad_right_scales, res->n_grad_right_scales, (size_t)B, dim,
                              "grad_right_packed", "pair", grad_right, &e)))
            return siam_error_set(err, SIAM_ERR_FORMAT, "siam-server at %s: step %llu: %s", server,
                                  (unsigned long long)h->step, e.msg);
    }
    if (omitted)
        for (size_t i = 0; i < n; i++)
            grad_right[i] = -grad_left[i];
    return SIAM_OK;
}

int siam_remote_head_fn(void *ctx, const float *left, const float *right, const uint32_t *labels,
                        int B, int dim, float *loss, float *dist, float *grad_left,
                        float *grad_right, siam_idle_fn idle, void *idle_ctx, siam_error *err) {
    siam_remote_head *h = ctx;
    const char *server = h->server ? h->server : "?";
    if (B <= 0 || dim <= 0)
        return siam_error_set(err, SIAM_ERR_ARG, "remote loss head: batch %d, dim %d", B, dim);
    size_t n = (size_t)B * (size_t)dim;

    /* the message points at the caller's buffers: protobuf-c packs straight from them (it only
     * reads them; the casts drop const for the struct fields alone), so every attempt sends
     * the same bytes */
    Siam__V1__EmbeddingBatch req = SIAM__V1__EMBEDDING_BATCH__INIT;
    req.dim = (uint32_t)dim;
    req.n_left = n;
    req.left = (float *)left;
    req.n_right = n;
    req.right = (float *)right;
    req.n_labels = (size_t)B;
    req.labels = (uint32_t *)labels;
    req.step = h->step;
    if (h->worker_id)
        req.worker_id = (char *)h->worker_id;
    req.omit_grad_right = h->omit_grad_right != 0;
    uint8_t *packed = NULL; /* both sides in a compact encoding, and their scales */
    float *scales = NULL;
    if (h->encoding != SIAM_ENC_FP32) {
        size_t bytes = n * siam_encoding_size(h->encoding);
        int scaled = siam_encoding_scaled(h->encoding);
        packed = malloc(2 * bytes);
        scales = scaled ? malloc(2 * (size_t)B * sizeof *scales) : NULL;
        if (!packed || (scaled && !scales)) {
            free(packed);
            free(scales);
            return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory encoding a batch of %d", B);
        }
        siam_encode_rows(h->encoding, left, (size_t)B, dim, packed, scales);
        siam_encode_rows(h->encoding, right, (size_t)B, dim, packed + bytes,
                         scaled ? scales + B : NULL);
        req.encoding = (Siam__V1__WireEncoding)h->encoding;
        req.n_left = req.n_right = 0;
        req.left = req.right = NULL;
        req.left_packed = (ProtobufCBinaryData){bytes, packed};
        req.right_packed = (ProtobufCBinaryData){bytes, packed + bytes};
        if (scaled) {
            req.n_left_scales = req.n_right_scales = (size_t)B;
            req.left_scales = scales, req.right_scales = scales + B;
        }
    }

    siam_rpc_buf resp = {0};
    int xrc =
        siam_remote_exchange(h, SIAM_METHOD_TRAIN, "Train", &req.base, idle, idle_ctx, &resp, err);
    free(packed);
    free(scales);
    if (xrc)
        return xrc;

    Siam__V1__BatchResult *res = siam__v1__batch_result__unpack(NULL, resp.len, resp.data);
    siam_rpc_buf_free(&resp);
    if (!res)
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "siam-server at %s: step %llu: the answer is not a BatchResult",
                              server, (unsigned long long)h->step);
    int rc = SIAM_OK;
    if (res->step != h->step)
        rc = siam_error_set(err, SIAM_ERR_FORMAT,
                            "siam-server at %s: answered step %llu, expected step %llu", server,
                            (unsigned long long)res->step, (unsigned long long)h->step);
    else if (res->n_distances != (size_t)B)
        rc = siam_error_set(err, SIAM_ERR_FORMAT,
                            "siam-server at %s: step %llu: %zu distances, expected batch = %d",
                            server, (unsigned long long)h->step, res->n_distances, B);
    else
        rc = answer_gradients(h, res, B, dim, grad_left, grad_right, err);
    if (rc == SIAM_OK) {
        *loss = res->loss;
        memcpy(dist, res->distances, (size_t)B * sizeof *dist);
        h->step++;
    }
    siam__v1__batch_result__free_unpacked(res, NULL);
    return rc;
}
