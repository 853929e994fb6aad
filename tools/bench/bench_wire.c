/* bench_wire.c: what the suites send siam-server and the checks of its answers. */
#include "bench_wire.h"

#include <stdlib.h>

#include "siam/v1/siam.pb-c.h"
#include "siam_error.h"
#include "siam_wire.h"

/* At dim 128 the distance of such a pair is about 0.9, so dissimilar pairs fall on both sides
 * of the margin 1 and both branches of the loss run. */
void bench_random_pairs(siam_rng *r, float *left, float *right, size_t n) {
    for (size_t i = 0; i < n; i++) {
        left[i] = 0.2f * siam_rng_uniform(r) - 0.1f;
        right[i] = 0.2f * siam_rng_uniform(r) - 0.1f;
    }
}

void bench_random_batch(uint64_t seed, int B, int dim, float *left, float *right,
                        uint32_t *labels) {
    siam_rng r;
    siam_rng_seed(&r, seed);
    bench_random_pairs(&r, left, right, (size_t)B * (size_t)dim);
    for (int i = 0; i < B; i++)
        labels[i] = (uint32_t)(siam_rng_u64(&r) & 1);
}

/* msg packed into a malloc'd buffer (*len bytes); NULL when out of memory. */
static uint8_t *pack_message(const ProtobufCMessage *msg, size_t *len) {
    *len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf)
        protobuf_c_message_pack(msg, buf);
    return buf;
}

uint8_t *bench_pack_batch(const float *left, const float *right, const uint32_t *labels, int B,
                          int dim, const char *worker, size_t *len) {
    size_t n = (size_t)B * (size_t)dim;
    /* the message's fields are not const, but packing only reads them */
    Siam__V1__EmbeddingBatch b = SIAM__V1__EMBEDDING_BATCH__INIT;
    b.dim = (uint32_t)dim;
    b.n_left = b.n_right = n;
    b.left = (float *)left, b.right = (float *)right;
    b.n_labels = (size_t)B, b.labels = (uint32_t *)labels;
    b.worker_id = (char *)worker;
    return pack_message(&b.base, len);
}

uint8_t *bench_pack_set(const float *x, const uint32_t *groups, int n, int dim, const char *worker,
                        size_t *len) {
    Siam__V1__EmbeddingSet q = SIAM__V1__EMBEDDING_SET__INIT;
    q.dim = (uint32_t)dim;
    q.n_embeddings = (size_t)n * (size_t)dim, q.embeddings = (float *)x;
    q.n_groups = (size_t)n, q.groups = (uint32_t *)groups;
    q.worker_id = (char *)worker;
    return pack_message(&q.base, len);
}

uint8_t *bench_train_request(int B, int dim, uint64_t seed, const char *worker, size_t *len) {
    size_t n = (size_t)B * (size_t)dim;
    float *left = malloc(n * sizeof *left), *right = malloc(n * sizeof *right);
    uint32_t *labels = malloc((size_t)B * sizeof *labels);
    uint8_t *buf = NULL;
    if (left && right && labels) {
        bench_random_batch(seed, B, dim, left, right, labels);
        buf = bench_pack_batch(left, right, labels, B, dim, worker, len);
    }
    free(left), free(right), free(labels);
    return buf;
}

uint8_t *bench_similarity_request(int pairs, int dim, size_t *len) {
    size_t n = (size_t)pairs * (size_t)dim;
    float *left = malloc(n * sizeof *left), *right = malloc(n * sizeof *right);
    uint8_t *buf = NULL;
    if (left && right) {
        siam_rng r;
        siam_rng_seed(&r, 1);
        bench_random_pairs(&r, left, right, n);
        Siam__V1__SimilarityRequest q = SIAM__V1__SIMILARITY_REQUEST__INIT;
        q.dim = (uint32_t)dim;
        q.n_left = q.n_right = n;
        q.left = left, q.right = right;
        buf = pack_message(&q.base, len);
    }
    free(left), free(right);
    return buf;
}

uint8_t *bench_similarity_images_request(int pairs, size_t image_bytes, size_t *len) {
    size_t n = (size_t)pairs * image_bytes;
    uint8_t *left = malloc(n ? n : 1), *right = malloc(n ? n : 1), *buf = NULL;
    if (left && right) {
        siam_rng r;
        siam_rng_seed(&r, 1);
        for (size_t i = 0; i < n; i++) {
            left[i] = (uint8_t)siam_rng_u64(&r);
            right[i] = (uint8_t)siam_rng_u64(&r);
        }
        Siam__V1__SimilarityRequest q = SIAM__V1__SIMILARITY_REQUEST__INIT;
        q.left_images.len = q.right_images.len = n;
        q.left_images.data = left, q.right_images.data = right;
        buf = pack_message(&q.base, len);
    }
    free(left), free(right);
    return buf;
}

uint8_t *bench_similarity_image_request(int pairs, size_t *len) {
    return bench_similarity_images_request(pairs, BENCH_IMAGE_BYTES, len);
}

uint8_t *bench_search_request(int n, size_t image_bytes, int k, uint64_t seed, size_t *len) {
    size_t bytes = (size_t)n * image_bytes;
    uint8_t *px = malloc(bytes ? bytes : 1), *buf = NULL;
    if (px) {
        siam_rng r;
        siam_rng_seed(&r, seed);
        for (size_t i = 0; i < bytes; i++)
            px[i] = (uint8_t)siam_rng_u64(&r);
        Siam__V1__SearchRequest q = SIAM__V1__SEARCH_REQUEST__INIT;
        q.images.len = bytes;
        q.images.data = px;
        q.k = (uint32_t)k;
        buf = pack_message(&q.base, len);
    }
    free(px);
    return buf;
}

int bench_check_search(const siam_rpc_buf *resp, int n, int k, siam_rpc_status *st) {
    Siam__V1__SearchResponse *r = siam__v1__search_response__unpack(NULL, resp->len, resp->data);
    int ok = r && r->n_results == (size_t)n;
    for (size_t i = 0; ok && i < r->n_results; i++)
        ok = r->results[i]->n_matches >= 1 && r->results[i]->n_matches <= (size_t)k;
    if (r)
        siam__v1__search_response__free_unpacked(r, NULL);
    if (ok)
        return siam_rpc_status_set(st, SIAM_RPC_OK, "%s", "");
    return siam_rpc_status_set(st, SIAM_RPC_INTERNAL,
                               "the answer is not a SearchResponse of %d results of 1..%d "
                               "matches",
                               n, k);
}

int bench_check_batch_result(const siam_rpc_buf *resp, int B, int dim, siam_rpc_status *st) {
    Siam__V1__BatchResult *r = siam__v1__batch_result__unpack(NULL, resp->len, resp->data);
    size_t n = (size_t)B * (size_t)dim;
    int ok = r && r->n_distances == (size_t)B && r->n_grad_left == n && r->n_grad_right == n &&
             r->loss == r->loss && r->loss >= 0;
    if (r)
        siam__v1__batch_result__free_unpacked(r, NULL);
    if (ok)
        return siam_rpc_status_set(st, SIAM_RPC_OK, "%s", "");
    return siam_rpc_status_set(st, SIAM_RPC_INTERNAL,
                               "the answer is not a BatchResult of %d distances and 2 x %zu "
                               "gradients with a finite loss",
                               B, n);
}

int bench_check_set_result(const siam_rpc_buf *resp, int n, int dim, siam_rpc_status *st) {
    Siam__V1__SetResult *r = siam__v1__set_result__unpack(NULL, resp->len, resp->data);
    int ok = r && r->n_grad == (size_t)n * (size_t)dim && r->mining && r->loss == r->loss &&
             r->loss >= 0;
    if (r)
        siam__v1__set_result__free_unpacked(r, NULL);
    if (ok)
        return siam_rpc_status_set(st, SIAM_RPC_OK, "%s", "");
    return siam_rpc_status_set(st, SIAM_RPC_INTERNAL,
                               "the answer is not a SetResult of %d x %d gradients with a finite "
                               "loss and mining statistics",
                               n, dim);
}

int bench_check_similarity(const siam_rpc_buf *resp, int pairs, siam_rpc_status *st) {
    Siam__V1__SimilarityResponse *r =
        siam__v1__similarity_response__unpack(NULL, resp->len, resp->data);
    int ok = r && r->n_distances == (size_t)pairs && r->n_scores == (size_t)pairs;
    if (r)
        siam__v1__similarity_response__free_unpacked(r, NULL);
    if (ok)
        return siam_rpc_status_set(st, SIAM_RPC_OK, "%s", "");
    return siam_rpc_status_set(st, SIAM_RPC_INTERNAL,
                               "the answer does not have %d distances and scores", pairs);
}

int bench_channel_create(siam_rpc_channel **ch, const char *server, size_t max_message,
                         siam_rpc_status *st) {
    siam_error err = {0};
    if (siam_rpc_channel_create(ch, server, max_message, &err) == SIAM_OK)
        return 0;
    siam_rpc_status_set(st, SIAM_RPC_INTERNAL, "%s", err.msg);
    return -1;
}
