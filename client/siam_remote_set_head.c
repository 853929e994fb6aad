/* siam_remote_set_head: one EmbeddingSet -> SetResult exchange on a TrainSet stream. */
#include "siam_remote_set_head.h"

#include <stdlib.h>
#include <string.h>

#include "siam_encoding.h"

#include "siam/v1/siam.pb-c.h"
#include "siam_wire.h"

int siam_remote_set_head_fn(void *ctx, const float *emb, const uint32_t *groups, int n, int dim,
                            float *loss, float *grad, siam_set_loss_stats *stats, siam_error *err) {
    siam_remote_head *h = ctx;
    const char *server = h->server ? h->server : "?";
    if (n < 2 || dim <= 0)
        return siam_error_set(err, SIAM_ERR_ARG, "remote set head: %d embeddings, dim %d", n, dim);
    size_t len = (size_t)n * (size_t)dim;

    /* points at the caller's buffers, as the pair head does: packed straight from them */
    Siam__V1__EmbeddingSet req = SIAM__V1__EMBEDDING_SET__INIT;
    req.dim = (uint32_t)dim;
    req.n_embeddings = len;
    req.embeddings = (float *)emb;
    req.n_groups = (size_t)n;
    req.groups = (uint32_t *)groups;
    req.step = h->step;
    req.progress = h->progress ? *h->progress : 0.0f;
    if (h->worker_id)
        req.worker_id = (char *)h->worker_id;
    uint8_t *packed = NULL; /* the embeddings in a compact encoding, and their scales */
    float *scales = NULL;
    if (h->encoding != SIAM_ENC_FP32) {
        int scaled = siam_encoding_scaled(h->encoding);
        packed = malloc(len * siam_encoding_size(h->encoding));
        scales = scaled ? malloc((size_t)n * sizeof *scales) : NULL;
        if (!packed || (scaled && !scales)) {
            free(packed);
            free(scales);
            return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory encoding a set of %d", n);
        }
        siam_encode_rows(h->encoding, emb, (size_t)n, dim, packed, scales);
        req.encoding = (Siam__V1__WireEncoding)h->encoding;
        req.n_embeddings = 0, req.embeddings = NULL;
        req.embeddings_packed =
            (ProtobufCBinaryData){len * siam_encoding_size(h->encoding), packed};
        if (scaled)
            req.n_embeddings_scales = (size_t)n, req.embeddings_scales = scales;
    }

    siam_rpc_buf resp = {0};
    /* no idle work: the set trainer gathers its batch from the sampler at the step's start */
    int rc = siam_remote_exchange(h, SIAM_METHOD_TRAIN_SET, "TrainSet", &req.base, NULL, NULL,
                                  &resp, err);
    free(packed);
    free(scales);
    if (rc)
        return rc;
    Siam__V1__SetResult *res = siam__v1__set_result__unpack(NULL, resp.len, resp.data);
    siam_rpc_buf_free(&resp);
    if (!res)
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "siam-server at %s: step %llu: the answer is not a SetResult", server,
                              (unsigned long long)h->step);
    if (res->step != h->step)
        rc = siam_error_set(err, SIAM_ERR_FORMAT,
                            "siam-server at %s: answered step %llu, expected step %llu", server,
                            (unsigned long long)res->step, (unsigned long long)h->step);
    else if (h->encoding == SIAM_ENC_FP32 && res->n_grad != len)
        rc = siam_error_set(err, SIAM_ERR_FORMAT,
                            "siam-server at %s: step %llu: %zu gradient floats, expected n*dim = "
                            "%zu",
                            server, (unsigned long long)h->step, res->n_grad, len);
    else if (h->encoding == SIAM_ENC_FP32)
        memcpy(grad, res->grad, len * sizeof *grad);
    else {
        siam_error e = {0};
        if (siam_decode_rows(h->encoding, res->grad_packed.data, res->grad_packed.len,
                             res->grad_scales, res->n_grad_scales, (size_t)n, dim, "grad_packed",
                             "embedding", grad, &e))
            rc = siam_error_set(err, SIAM_ERR_FORMAT, "siam-server at %s: step %llu: %s", server,
                                (unsigned long long)h->step, e.msg);
    }
    if (rc == SIAM_OK) {
        *loss = res->loss;
        memset(stats, 0, sizeof *stats);
        const Siam__V1__MiningStats *ms = res->mining;
        if (ms) { /* absent = all zero in proto3; the trainer's summary then shows zeros */
            stats->pos_pairs = (int64_t)ms->positive_pairs;
            stats->neg_pairs = (int64_t)ms->negative_pairs;
            stats->triplets = (int64_t)ms->triplets;
            stats->terms = (int64_t)ms->terms;
            stats->active = (int64_t)ms->active;
            stats->frac_active = ms->active_fraction;
            stats->hardest_pos = ms->hardest_positive;
            stats->hardest_neg = ms->hardest_negative;
            stats->mean_norm = ms->mean_norm;
            stats->degenerate = ms->degenerate;
        }
        h->step++;
    }
    siam__v1__set_result__free_unpacked(res, NULL);
    return rc;
}
