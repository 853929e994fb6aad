/* fuzz_similarity: one SimilarityRequest (the whole input) through siam_service_similarity.
 *
 * The service is made once, with weight averaging started and a small global model set
 * (FUZZ_MODEL: conv, elu, maxpool, batchnorm, dense, dropout: every layer kind that inference
 * runs), so pairs given as 28x28 images are embedded as well as pairs given as embeddings.
 * Similarity changes no state but which parameters an inference replica holds.
 *
 * Invariants: the outcome agrees with the return code; bytes that protobuf-c cannot decode and
 * every other failure are INVALID_ARGUMENT; an OK answer decodes as a SimilarityResponse with
 * one distance, score and same flag per pair of the request, the service's threshold, distances
 * >= 0 (for embeddings: exactly lib/nn/siam_loss's siam_distance), scores in [0, 1], same exactly
 * when the distance is <= the threshold, and exactly 0 for two identical images (inference
 * embeds each image by siam_matmul_rows, the same bits at any row of any batch). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "siam_loss.h"
#include "siam_model.h"
#include "siam_service.h"

#include "siam/v1/siam.pb-c.h"

#define FUZZ_MODEL                                                                                 \
    "in=28x28x1 conv3x3x2 elu maxpool2 batchnorm flatten dense8 relu dropout0.5 dense4"

static siam_service *svc = NULL;
static int image_bytes;

static void no_sync_reply(void *waiter, siam_rpc_buf *resp, const siam_rpc_status *st) {
    (void)waiter;
    (void)resp;
    (void)st;
    FUZZ_CHECK(0, "a SyncWeights answer without a SyncWeights call");
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_quiet_logs();
    siam_model *m = fuzz_service_with_model(&svc, 1.0f, SIAM_LABELS_SIMILAR, 1, no_sync_reply,
                                            FUZZ_MODEL, 42, 0, 0);
    image_bytes = siam_model_input_size(m);
    siam_model_free(m);
    /* svc lives until the process exits (it is reachable, so leak checks ignore it) */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    siam_rpc_buf resp = fuzz_garbage_buf();
    siam_rpc_status st;
    memset(&st, 0xa5, sizeof st);
    int rc = siam_service_similarity(svc, data, size, &resp, &st);
    fuzz_check_outcome(rc, &st, &resp, "similarity");
    Siam__V1__SimilarityRequest *q = siam__v1__similarity_request__unpack(NULL, size, data);
    if (rc != SIAM_RPC_OK) {
        FUZZ_CHECK(rc == SIAM_RPC_INVALID_ARGUMENT, "similarity failed with %s: %s",
                   siam_rpc_code_name(rc), st.msg);
        siam__v1__similarity_request__free_unpacked(q, NULL);
        return 0;
    }
    FUZZ_CHECK(q != NULL, "the service decoded what protobuf-c does not");
    Siam__V1__SimilarityResponse *r =
        siam__v1__similarity_response__unpack(NULL, resp.len, resp.data);
    FUZZ_CHECK(r != NULL, "an OK answer (%zu bytes) does not decode as a SimilarityResponse",
               resp.len);
    int images = q->left_images.len > 0;
    size_t B = images ? q->left_images.len / (size_t)image_bytes : q->n_left / q->dim;
    FUZZ_CHECK(B > 0, "an OK answer to a request without pairs");
    if (images)
        FUZZ_CHECK(q->dim == 0 && q->n_left == 0 && q->n_right == 0 &&
                       q->right_images.len == q->left_images.len &&
                       q->left_images.len % (size_t)image_bytes == 0,
                   "images accepted with dim %u, %zu/%zu floats, %zu/%zu bytes", q->dim, q->n_left,
                   q->n_right, q->left_images.len, q->right_images.len);
    FUZZ_CHECK(r->n_distances == B && r->n_scores == B && r->n_same == B,
               "answer sizes %zu %zu %zu for %zu pairs", r->n_distances, r->n_scores, r->n_same, B);
    FUZZ_CHECK(r->threshold == siam_service_threshold(svc), "threshold %g, the service's is %g",
               (double)r->threshold, (double)siam_service_threshold(svc));
    for (size_t i = 0; i < B; i++) {
        float d = r->distances[i], s = r->scores[i];
        FUZZ_CHECK(d >= 0.0f, "distance %zu is %g", i, (double)d);
        FUZZ_CHECK(s >= 0.0f && s <= 1.0f, "score %zu is %g (distance %g)", i, (double)s,
                   (double)d);
        FUZZ_CHECK(!r->same[i] == !(d <= r->threshold), "same %zu is %d at distance %g", i,
                   (int)r->same[i], (double)d);
        if (images) {
            size_t at = i * (size_t)image_bytes;
            if (memcmp(q->left_images.data + at, q->right_images.data + at, (size_t)image_bytes) ==
                0)
                FUZZ_CHECK(d == 0.0f, "identical images %zu at distance %g", i, (double)d);
        } else {
            float want = siam_distance(q->left + i * q->dim, q->right + i * q->dim, (int)q->dim);
            FUZZ_CHECK(memcmp(&d, &want, sizeof d) == 0,
                       "distance %zu is %g, lib/nn/siam_loss says %g", i, (double)d, (double)want);
        }
    }
    siam__v1__similarity_response__free_unpacked(r, NULL);
    siam__v1__similarity_request__free_unpacked(q, NULL);
    siam_rpc_buf_free(&resp);
    return 0;
}
