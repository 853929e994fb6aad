/* siam_service_train: Train, one batch: validate, loss and gradients (lib/nn/siam_loss), encode. */
#include "siam_service_internal.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "siam_encoding.h"
#include "siam_log.h"

#include "siam/v1/siam.pb-c.h"

/* Train */

static int validate_batch(const Siam__V1__EmbeddingBatch *b, const siam_train_stream *ts,
                          siam_rpc_status *st) {
    int rc = svc_check_dim(b->dim, st);
    if (rc)
        return rc;
    if (ts && ts->dim != 0 && b->dim != ts->dim)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "dim changed from %u to %u within one stream", ts->dim, b->dim);
    if (b->n_labels == 0)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT, "empty batch: labels is empty");
    /* B is an int for lib/nn/siam_loss, and the answer's B + 2 B dim floats must be addressable */
    size_t max_batch = SIZE_MAX / sizeof(float) / (2u * b->dim + 1u);
    if (max_batch > (size_t)INT_MAX)
        max_batch = (size_t)INT_MAX;
    if (b->n_labels > max_batch)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "labels has %zu values, expected at most %zu at dim %u",
                                   b->n_labels, max_batch, b->dim);
    for (size_t i = 0; i < b->n_labels; i++)
        if (b->labels[i] > 1)
            return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                       "labels[%zu] is %u, expected 0 or 1", i, b->labels[i]);
    if ((rc = svc_check_encoding((int)b->encoding, st)) != SIAM_RPC_OK)
        return rc;
    if ((int)b->encoding != SIAM_ENC_FP32) /* the packed fields are decoded and checked later */
        return SIAM_RPC_OK;
    if ((rc = svc_decode_field(SIAM_ENC_FP32, "left", "pair", b->n_left, b->left_packed, NULL,
                               b->n_left_scales, 0, b->dim, NULL, st)) ||
        (rc = svc_decode_field(SIAM_ENC_FP32, "right", "pair", b->n_right, b->right_packed, NULL,
                               b->n_right_scales, 0, b->dim, NULL, st)))
        return rc;
    size_t want = b->n_labels * b->dim;
    const char *names[2] = {"left", "right"};
    size_t have[2] = {b->n_left, b->n_right};
    for (int s = 0; s < 2; s++)
        if (have[s] != want)
            return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                       "%s has %zu floats, expected batch*dim = %zu*%u = %zu "
                                       "(batch = number of labels)",
                                       names[s], have[s], b->n_labels, b->dim, want);
    if (svc_check_finite("left", b->left, want, b->dim, st) ||
        svc_check_finite("right", b->right, want, b->dim, st))
        return SIAM_RPC_INVALID_ARGUMENT;
    return SIAM_RPC_OK;
}

int siam_service_train(siam_service *svc, siam_train_stream *ts, const uint8_t *req, size_t len,
                       siam_rpc_buf *resp, siam_rpc_status *st) {
    int rc = svc_begin(svc, resp, st);
    if (rc)
        return rc;
    decode_alloc da;
    Siam__V1__EmbeddingBatch *b = (Siam__V1__EmbeddingBatch *)svc_decode(
        &siam__v1__embedding_batch__descriptor, &da, req, len, st);
    if (!b)
        return st->code;
    char id[sizeof ts->worker_id];
    svc_copy_name(id, sizeof id, b->worker_id && b->worker_id[0] ? b->worker_id : "anonymous");
    if (ts && ts->batches == 0) /* named even if this first batch fails, for the server's log */
        memcpy(ts->worker_id, id, sizeof id);
    rc = validate_batch(b, ts, st);
    if (rc) {
        siam__v1__embedding_batch__free_unpacked(b, &da.base);
        return rc;
    }

    int B = (int)b->n_labels, dim = (int)b->dim, enc = (int)b->encoding;
    size_t n = (size_t)B * (size_t)dim;
    /* distances, both gradients, and the decoded embeddings when they came packed */
    size_t in_floats = enc == SIAM_ENC_FP32 ? 0 : 2 * n;
    float *out = malloc(((size_t)B + 2 * n + in_floats) * sizeof *out);
    if (!out) {
        siam__v1__embedding_batch__free_unpacked(b, &da.base);
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "out of memory for the answer to a batch of %d x %d", B, dim);
    }
    const float *left = b->left, *right = b->right;
    if (enc != SIAM_ENC_FP32) {
        float *in = out + B + 2 * n;
        if ((rc = svc_decode_field(enc, "left", "pair", b->n_left, b->left_packed, b->left_scales,
                                   b->n_left_scales, (size_t)B, b->dim, in, st)) ||
            (rc = svc_decode_field(enc, "right", "pair", b->n_right, b->right_packed,
                                   b->right_scales, b->n_right_scales, (size_t)B, b->dim, in + n,
                                   st))) {
            free(out);
            siam__v1__embedding_batch__free_unpacked(b, &da.base);
            return rc;
        }
        left = in, right = in + n;
    }
    float *dist = out, *grad_left = out + B, *grad_right = out + B + n;
    float loss =
        siam_contrastive_forward(dist, left, right, b->labels, B, dim, svc->margin, svc->conv);
    if (!isfinite(loss)) {
        /* finite but huge embeddings: D or D^2 overflows float */
        int worst = 0;
        for (int i = 1; i < B; i++)
            if (!(dist[i] <= dist[worst]))
                worst = i;
        rc = siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                 "loss is %g: embeddings too large for float (pair %d: distance "
                                 "%g between left and right)",
                                 (double)loss, worst, (double)dist[worst]);
        free(out);
        siam__v1__embedding_batch__free_unpacked(b, &da.base);
        return rc;
    }
    siam_contrastive_backward(grad_left, grad_right, left, right, dist, b->labels, B, dim,
                              svc->margin, svc->conv);

    Siam__V1__BatchResult r = SIAM__V1__BATCH_RESULT__INIT;
    r.step = b->step;
    r.loss = loss;
    r.n_distances = (size_t)B, r.distances = dist;
    r.grad_right_omitted = b->omit_grad_right; /* exact: the loss sets grad_right = -grad_left */
    float *scales[2] = {NULL, NULL};
    if (enc == SIAM_ENC_FP32) {
        r.n_grad_left = n, r.grad_left = grad_left;
        if (!r.grad_right_omitted)
            r.n_grad_right = n, r.grad_right = grad_right;
    } else if ((rc = svc_encode_field(enc, grad_left, (size_t)B, b->dim, &r.grad_left_packed,
                                      &scales[0], &r.n_grad_left_scales, st)) == SIAM_RPC_OK &&
               !r.grad_right_omitted) {
        rc = svc_encode_field(enc, grad_right, (size_t)B, b->dim, &r.grad_right_packed, &scales[1],
                              &r.n_grad_right_scales, st);
    }
    r.grad_left_scales = scales[0], r.grad_right_scales = scales[1];
    if (rc == SIAM_RPC_OK)
        rc = svc_encode(&r.base, "BatchResult", resp, st);
    free(r.grad_left_packed.data);
    free(r.grad_right_packed.data);
    free(scales[0]);
    free(scales[1]);
    free(out);
    if (rc) {
        siam__v1__embedding_batch__free_unpacked(b, &da.base);
        return rc;
    }

    svc_answered(svc, ts, id, b->dim, (uint64_t)B, loss);
    siam__v1__embedding_batch__free_unpacked(b, &da.base);
    return SIAM_RPC_OK;
}

void siam_service_train_end(siam_service *svc, siam_train_stream *ts) {
    if (svc && ts && ts->live && svc->avg) {
        siam_averaging_stream(svc->avg, ts->worker_id, -1);
        ts->live = 0;
    }
}
