/* siam_service_train: Train, one batch: validate, loss and gradients (lib/nn/siam_loss), encode. */
#include "siam_service_internal.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
    size_t want = b->n_labels * b->dim;
    const char *names[2] = {"left", "right"};
    size_t have[2] = {b->n_left, b->n_right};
    for (int s = 0; s < 2; s++)
        if (have[s] != want)
            return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                       "%s has %zu floats, expected batch*dim = %zu*%u = %zu "
                                       "(batch = number of labels)",
                                       names[s], have[s], b->n_labels, b->dim, want);
    for (size_t i = 0; i < b->n_labels; i++)
        if (b->labels[i] > 1)
            return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                       "labels[%zu] is %u, expected 0 or 1", i, b->labels[i]);
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

    int B = (int)b->n_labels, dim = (int)b->dim;
    size_t n = (size_t)B * (size_t)dim;
    float *out = malloc(((size_t)B + 2 * n) * sizeof *out);
    if (!out) {
        siam__v1__embedding_batch__free_unpacked(b, &da.base);
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "out of memory for the answer to a batch of %d x %d", B, dim);
    }
    float *dist = out, *grad_left = out + B, *grad_right = out + B + n;
    float loss = siam_contrastive_forward(dist, b->left, b->right, b->labels, B, dim, svc->margin,
                                          svc->conv);
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
    siam_contrastive_backward(grad_left, grad_right, b->left, b->right, dist, b->labels, B, dim,
                              svc->margin, svc->conv);

    Siam__V1__BatchResult r = SIAM__V1__BATCH_RESULT__INIT;
    r.step = b->step;
    r.loss = loss;
    r.n_distances = (size_t)B, r.distances = dist;
    r.n_grad_left = n, r.grad_left = grad_left;
    r.n_grad_right = n, r.grad_right = grad_right;
    rc = svc_encode(&r.base, "BatchResult", resp, st);
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
