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

/* The request for one batch, pointing at the caller's buffers (protobuf-c packs straight from
 * them; it only reads them, the casts drop const for the struct fields alone), or at *packed
 * and *scales (the caller frees both) in a compact encoding. */
static int build_batch(const siam_remote_head *h, const float *left, const float *right,
                       const uint32_t *labels, int B, int dim, uint64_t step,
                       Siam__V1__EmbeddingBatch *req, uint8_t **packed, float **scales,
                       siam_error *err) {
    size_t n = (size_t)B * (size_t)dim;
    siam__v1__embedding_batch__init(req);
    req->dim = (uint32_t)dim;
    req->n_left = n;
    req->left = (float *)left;
    req->n_right = n;
    req->right = (float *)right;
    req->n_labels = (size_t)B;
    req->labels = (uint32_t *)labels;
    req->step = step;
    if (h->worker_id)
        req->worker_id = (char *)h->worker_id;
    req->omit_grad_right = h->omit_grad_right != 0;
    *packed = NULL;
    *scales = NULL;
    if (h->encoding == SIAM_ENC_FP32)
        return SIAM_OK;
    size_t bytes = n * siam_encoding_size(h->encoding);
    int scaled = siam_encoding_scaled(h->encoding);
    *packed = malloc(2 * bytes);
    *scales = scaled ? malloc(2 * (size_t)B * sizeof **scales) : NULL;
    if (!*packed || (scaled && !*scales)) {
        free(*packed);
        free(*scales);
        *packed = NULL, *scales = NULL;
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory encoding a batch of %d", B);
    }
    siam_encode_rows(h->encoding, left, (size_t)B, dim, *packed, *scales);
    siam_encode_rows(h->encoding, right, (size_t)B, dim, *packed + bytes,
                     scaled ? *scales + B : NULL);
    req->encoding = (Siam__V1__WireEncoding)h->encoding;
    req->n_left = req->n_right = 0;
    req->left = req->right = NULL;
    req->left_packed = (ProtobufCBinaryData){bytes, *packed};
    req->right_packed = (ProtobufCBinaryData){bytes, *packed + bytes};
    if (scaled) {
        req->n_left_scales = req->n_right_scales = (size_t)B;
        req->left_scales = *scales, req->right_scales = *scales + B;
    }
    return SIAM_OK;
}

/* Checks the answer in resp (freed here) against the batch of step h->step and fills the
 * outputs; h->step advances on success. */
static int take_answer(siam_remote_head *h, siam_rpc_buf *resp, int B, int dim, float *loss,
                       float *dist, float *grad_left, float *grad_right, siam_error *err) {
    const char *server = h->server ? h->server : "?";
    Siam__V1__BatchResult *res = siam__v1__batch_result__unpack(NULL, resp->len, resp->data);
    siam_rpc_buf_free(resp);
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

int siam_remote_head_fn(void *ctx, const float *left, const float *right, const uint32_t *labels,
                        int B, int dim, float *loss, float *dist, float *grad_left,
                        float *grad_right, siam_idle_fn idle, void *idle_ctx, siam_error *err) {
    siam_remote_head *h = ctx;
    if (B <= 0 || dim <= 0)
        return siam_error_set(err, SIAM_ERR_ARG, "remote loss head: batch %d, dim %d", B, dim);
    Siam__V1__EmbeddingBatch req;
    uint8_t *packed;
    float *scales;
    int rc = build_batch(h, left, right, labels, B, dim, h->step, &req, &packed, &scales, err);
    if (rc)
        return rc;
    siam_rpc_buf resp = {0};
    rc = siam_remote_exchange(h, SIAM_METHOD_TRAIN, "Train", &req.base, idle, idle_ctx, &resp, err);
    free(packed);
    free(scales);
    if (rc)
        return rc;
    return take_answer(h, &resp, B, dim, loss, dist, grad_left, grad_right, err);
}

/* ---- the split head (--in-flight) ---- */

/* Hands a copy of kept request i to the stream (which takes the copy). */
static int send_copy(siam_remote_head *h, int i, siam_rpc_status *st) {
    siam_rpc_buf copy = {malloc(h->unanswered[i].len ? h->unanswered[i].len : 1),
                         h->unanswered[i].len};
    if (!copy.data)
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "out of memory for a copy of a %zu-byte batch", copy.len);
    memcpy(copy.data, h->unanswered[i].data, copy.len);
    return siam_rpc_stream_send(h->stream, &copy, st);
}

int siam_remote_head_send(void *ctx, const float *left, const float *right, const uint32_t *labels,
                          int B, int dim, siam_error *err) {
    siam_remote_head *h = ctx;
    if (B <= 0 || dim <= 0 || h->n_unanswered >= SIAM_RPC_STREAM_WINDOW)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "remote loss head: batch %d, dim %d, %d batches unanswered", B, dim,
                              h->n_unanswered);
    Siam__V1__EmbeddingBatch req;
    uint8_t *packed;
    float *scales;
    int rc = build_batch(h, left, right, labels, B, dim, h->step + (uint64_t)h->n_unanswered, &req,
                         &packed, &scales, err);
    if (rc)
        return rc;
    size_t len = siam__v1__embedding_batch__get_packed_size(&req);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf)
        siam__v1__embedding_batch__pack(&req, buf);
    free(packed);
    free(scales);
    if (!buf)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for a %zu-byte batch", len);
    int i = h->n_unanswered++;
    h->unanswered[i] = (siam_rpc_buf){buf, len};
    /* a stream that failed is reopened by receive(), which sends every unanswered batch again */
    siam_rpc_status st = {0};
    if (h->stream && send_copy(h, i, &st) != SIAM_RPC_OK) {
        siam_rpc_stream_free(h->stream);
        h->stream = NULL;
    }
    return SIAM_OK;
}

/* A new stream with every unanswered batch sent on it again. */
static int reopen(siam_remote_head *h, siam_rpc_status *st) {
    siam_rpc_stream_free(h->stream);
    h->stream = NULL;
    int code = siam_rpc_stream_open(h->ch, SIAM_METHOD_TRAIN, h->timeout, &h->stream, st);
    h->opened_after = h->retry ? h->retry->reconnects : 0;
    for (int i = 0; code == SIAM_RPC_OK && i < h->n_unanswered; i++)
        code = send_copy(h, i, st);
    return code;
}

int siam_remote_head_receive(void *ctx, int B, int dim, float *loss, float *dist, float *grad_left,
                             float *grad_right, siam_error *err) {
    siam_remote_head *h = ctx;
    const char *server = h->server ? h->server : "?";
    if (h->n_unanswered == 0)
        return siam_error_set(err, SIAM_ERR_ARG, "remote loss head: receive with no batch sent");
    siam_rpc_status st = {0};
    siam_rpc_buf resp = {0};
    int attempts = 0;
    double t0 = siam_now();
    for (;;) {
        attempts++;
        int code = SIAM_RPC_OK;
        if (!h->stream || (h->retry && h->opened_after != h->retry->reconnects))
            code = reopen(h, &st); /* first use, a failure, or a restart SyncWeights noticed */
        if (code == SIAM_RPC_OK)
            code = siam_rpc_stream_receive(h->stream, &resp, &st);
        if (code == SIAM_RPC_OK)
            break;
        siam_rpc_buf_free(&resp);
        siam_rpc_stream_free(h->stream);
        h->stream = NULL;
        char what[48], why[256];
        snprintf(what, sizeof what, "Train step %llu", (unsigned long long)h->step);
        if (!siam_retry_again(h->retry, h->ch, server, what, &st, why, sizeof why)) {
            h->rpc_seconds += siam_now() - t0;
            return siam_error_set(err, SIAM_ERR_IO, "siam-server at %s: %s: %s (step %llu)%s",
                                  server, siam_rpc_code_name(code),
                                  st.msg[0] ? st.msg : "no message", (unsigned long long)h->step,
                                  why);
        }
    }
    h->rpc_seconds += siam_now() - t0;
    double outage = siam_retry_success(h->retry, siam_now());
    if (h->retry)
        h->opened_after = h->retry->reconnects;
    if (attempts > 1) {
        h->resent += (uint64_t)h->n_unanswered;
        LOG_INFO(COMPONENT,
                 "siam-server at %s answered again after %.1f s: steps %llu..%llu were sent again "
                 "on a new Train stream (%d attempts)",
                 server, outage, (unsigned long long)h->step,
                 (unsigned long long)(h->step + (uint64_t)h->n_unanswered - 1), attempts);
    }
    int rc = take_answer(h, &resp, B, dim, loss, dist, grad_left, grad_right, err);
    if (rc)
        return rc;
    siam_rpc_buf_free(&h->unanswered[0]);
    memmove(h->unanswered, h->unanswered + 1,
            (size_t)(h->n_unanswered - 1) * sizeof *h->unanswered);
    h->n_unanswered--;
    return SIAM_OK;
}

void siam_remote_head_free_unanswered(siam_remote_head *h) {
    for (int i = 0; i < h->n_unanswered; i++)
        siam_rpc_buf_free(&h->unanswered[i]);
    h->n_unanswered = 0;
}
