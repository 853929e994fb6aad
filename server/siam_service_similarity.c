/* siam_service_similarity: Similarity, from embeddings or from images through the global model. */
#include "siam_service_internal.h"

#include <stdlib.h>

#include "siam/v1/siam.pb-c.h"

/* Similarity */

static int validate_images(const Siam__V1__SimilarityRequest *q, const siam_weights *w,
                           siam_rpc_status *st) {
    if (q->dim || q->n_left || q->n_right)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "the request has both images and embeddings (dim %u, left %zu "
                                   "floats); give pairs one way or the other",
                                   q->dim, q->n_left);
    size_t image_bytes = siam_weights_image_bytes(w);
    char what[96];
    svc_image_text(w, what, sizeof what);
    const char *names[2] = {"left_images", "right_images"};
    size_t have[2] = {q->left_images.len, q->right_images.len};
    for (int s = 0; s < 2; s++)
        if (have[s] == 0 || have[s] % image_bytes != 0)
            return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                       "%s has %zu bytes, expected a non-zero multiple of %s "
                                       "per pair (the model's input shape)",
                                       names[s], have[s], what);
    if (have[0] != have[1])
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "right_images has %zu bytes (%zu images), expected as many as "
                                   "left_images (%zu images)",
                                   have[1], have[1] / image_bytes, have[0] / image_bytes);
    if (have[0] / image_bytes > SIAM_SERVICE_MAX_IMAGE_PAIRS)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "left_images has %zu images, expected at most %d pairs per "
                                   "request",
                                   have[0] / image_bytes, SIAM_SERVICE_MAX_IMAGE_PAIRS);
    return SIAM_RPC_OK;
}

/* Embeds the image pairs of q with the newest weights, both sides with the same ones, on one
 * inference replica: emb gets (2 B, dim) floats, left images first. */
static int embed_images(siam_service *svc, const Siam__V1__SimilarityRequest *q, float **emb,
                        size_t *B_out, int *dim_out, siam_rpc_status *st) {
    *emb = NULL;
    siam_weights *w = svc_weights(svc);
    if (!w)
        return siam_rpc_status_set(
            st, SIAM_RPC_FAILED_PRECONDITION,
            "the server has no model to embed images yet: it gets one when the first worker "
            "joins with siam-client --sync-every, or from siam-server --model or --resume; send "
            "embeddings (dim, left, right) meanwhile");
    int rc = validate_images(q, w, st);
    if (rc == SIAM_RPC_OK) {
        size_t in = siam_weights_image_bytes(w), B = q->left_images.len / in;
        int dim = siam_weights_dim(w);
        float *out = malloc(2 * B * (size_t)dim * sizeof *out);
        siam_error err = {0};
        if (!out) {
            rc = siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                     "out of memory embedding %zu image pairs", B);
        } else {
            siam_replica *r = siam_inference_acquire(svc->pool, w);
            if (siam_replica_embed(r, w, q->left_images.data, B, out, &err) ||
                siam_replica_embed(r, w, q->right_images.data, B, out + B * (size_t)dim, &err))
                rc = siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED, "embedding: %s", err.msg);
            siam_inference_release(svc->pool, r);
            if (rc) {
                free(out);
            } else {
                *emb = out;
                *B_out = B;
                *dim_out = dim;
            }
        }
    }
    siam_weights_release(w);
    return rc;
}

static int validate_similarity(const Siam__V1__SimilarityRequest *q, siam_rpc_status *st) {
    if (svc_check_dim(q->dim, st))
        return SIAM_RPC_INVALID_ARGUMENT;
    if (q->n_left == 0 || q->n_left % q->dim != 0)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "left has %zu floats, expected a non-zero multiple of dim = %u",
                                   q->n_left, q->dim);
    if (q->n_right != q->n_left)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "right has %zu floats, expected as many as left (%zu = "
                                   "%zu pairs x dim %u)",
                                   q->n_right, q->n_left, q->n_left / q->dim, q->dim);
    if (svc_check_finite("left", q->left, q->n_left, q->dim, st) ||
        svc_check_finite("right", q->right, q->n_right, q->dim, st))
        return SIAM_RPC_INVALID_ARGUMENT;
    return SIAM_RPC_OK;
}

int siam_service_similarity(siam_service *svc, const uint8_t *req, size_t len, siam_rpc_buf *resp,
                            siam_rpc_status *st) {
    int rc = svc_begin(svc, resp, st);
    if (rc)
        return rc;
    decode_alloc da;
    Siam__V1__SimilarityRequest *q = (Siam__V1__SimilarityRequest *)svc_decode(
        &siam__v1__similarity_request__descriptor, &da, req, len, st);
    if (!q)
        return st->code;
    float *emb = NULL; /* image pairs: their embeddings */
    size_t B = 0;
    int dim = 0;
    if (q->left_images.len || q->right_images.len)
        rc = embed_images(svc, q, &emb, &B, &dim, st);
    else
        rc = validate_similarity(q, st);
    if (rc) {
        siam__v1__similarity_request__free_unpacked(q, &da.base);
        return rc;
    }
    const float *left = emb ? emb : q->left, *right = emb ? emb + B * (size_t)dim : q->right;
    if (!emb) {
        B = q->n_left / q->dim;
        dim = (int)q->dim;
    }
    float *f = malloc(2 * B * sizeof *f);
    protobuf_c_boolean *same = malloc(B * sizeof *same);
    if (!f || !same) {
        free(f);
        free(same);
        free(emb);
        siam__v1__similarity_request__free_unpacked(q, &da.base);
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "out of memory for the answer to %zu pairs", B);
    }
    float *dist = f, *score = f + B, thr = svc->threshold;
    for (size_t i = 0; i < B; i++) {
        dist[i] = siam_distance(left + i * (size_t)dim, right + i * (size_t)dim, dim);
        score[i] = siam_score(dist[i], thr);
        same[i] = dist[i] <= thr;
    }
    Siam__V1__SimilarityResponse r = SIAM__V1__SIMILARITY_RESPONSE__INIT;
    r.n_distances = B, r.distances = dist;
    r.n_scores = B, r.scores = score;
    r.n_same = B, r.same = same;
    r.threshold = thr;
    rc = svc_encode(&r.base, "SimilarityResponse", resp, st);
    free(f);
    free(same);
    free(emb);
    siam__v1__similarity_request__free_unpacked(q, &da.base);
    return rc;
}
