/* fuzz_search: one SearchRequest (the whole input) through siam_service_search.
 *
 * The service is made once, with a small global model (FUZZ_MODEL: every layer kind inference
 * runs, 28x28x1 images) and a gallery of GALLERY_N items added through AddToGallery and embedded
 * before the first input, so queries given as images are embedded as well as queries given as
 * embeddings. Search changes no state.
 *
 * Invariants: the outcome agrees with the return code; every failure is INVALID_ARGUMENT (the
 * model and the gallery are there); an OK answer decodes as a SearchResponse with one result per
 * query, min(k, gallery) matches each (k 0 meaning the default), nearest first, distances >= 0 and
 * finite, scores = siam_score(distance, threshold), ids and labels of gallery items, a predicted
 * label among the matches' labels with a confidence in (0, 1], the model round and gallery size
 * of the version searched; an image query equal to a gallery image has a match at distance 0. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "siam_knn.h"
#include "siam_loss.h"
#include "siam_model.h"
#include "siam_service.h"

#include "siam/v1/siam.pb-c.h"

#define FUZZ_MODEL                                                                                 \
    "in=28x28x1 conv3x3x2 elu maxpool2 batchnorm flatten dense8 relu dropout0.5 dense4"
#define GALLERY_N 6

static siam_service *svc = NULL;
static uint8_t gallery[GALLERY_N * 784];
static const char *labels[GALLERY_N] = {"0", "7", "7", "bag", "Sch\xc3\xbch", "0"};

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
                                            FUZZ_MODEL, 42, 3, 0);
    siam_model_free(m);
    for (size_t i = 0; i < sizeof gallery; i++) /* the seed corpus's images: the same bytes */
        gallery[i] = (uint8_t)(i * 37 % 251);
    memcpy(gallery + 784, gallery, 784); /* two identical images: ties */
    Siam__V1__GalleryAddRequest q = SIAM__V1__GALLERY_ADD_REQUEST__INIT;
    q.images.data = gallery, q.images.len = sizeof gallery;
    q.labels = (char **)labels, q.n_labels = GALLERY_N;
    uint8_t buf[sizeof gallery + 256];
    size_t len = siam__v1__gallery_add_request__pack(&q, buf);
    siam_rpc_buf resp = {NULL, 0};
    siam_rpc_status st;
    FUZZ_CHECK(siam_service_add_to_gallery(svc, buf, len, &resp, &st) == SIAM_RPC_OK, "add: %s",
               st.msg);
    siam_rpc_buf_free(&resp);
    FUZZ_CHECK(siam_gallery_wait_embedded(siam_service_gallery(svc), 30), "gallery not embedded");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    siam_rpc_buf resp = fuzz_garbage_buf();
    siam_rpc_status st;
    memset(&st, 0xa5, sizeof st);
    int rc = siam_service_search(svc, data, size, &resp, &st);
    fuzz_check_outcome(rc, &st, &resp, "search");
    FUZZ_TRACE("search: %s %s\n", siam_rpc_code_name(rc), rc ? st.msg : "");
    Siam__V1__SearchRequest *q = siam__v1__search_request__unpack(NULL, size, data);
    if (rc != SIAM_RPC_OK) {
        FUZZ_CHECK(rc == SIAM_RPC_INVALID_ARGUMENT, "search failed with %s: %s",
                   siam_rpc_code_name(rc), st.msg);
        siam__v1__search_request__free_unpacked(q, NULL);
        return 0;
    }
    FUZZ_CHECK(q != NULL, "the service decoded what protobuf-c does not");
    Siam__V1__SearchResponse *r = siam__v1__search_response__unpack(NULL, resp.len, resp.data);
    FUZZ_CHECK(r != NULL, "an OK answer (%zu bytes) does not decode as a SearchResponse", resp.len);
    int images = q->images.len > 0;
    FUZZ_CHECK(images != (q->dim > 0 || q->n_embeddings > 0), "images and embeddings accepted");
    size_t nq = images ? q->images.len / 784 : q->n_embeddings / q->dim;
    FUZZ_CHECK(nq > 0 && nq <= SIAM_SERVICE_MAX_SEARCH_QUERIES && r->n_results == nq,
               "%zu results for %zu queries", r->n_results, nq);
    FUZZ_CHECK(!images || q->images.len % 784 == 0, "%zu image bytes accepted", q->images.len);
    FUZZ_CHECK(q->k <= SIAM_KNN_K_MAX, "k %u accepted", q->k);
    FUZZ_CHECK(r->model_round == 3 && r->gallery_size == GALLERY_N, "round %llu, size %llu",
               (unsigned long long)r->model_round, (unsigned long long)r->gallery_size);
    size_t k = q->k ? q->k : SIAM_SERVICE_SEARCH_K_DEFAULT;
    size_t want = k < GALLERY_N ? k : GALLERY_N;
    float thr = siam_service_threshold(svc);
    for (size_t i = 0; i < nq; i++) {
        const Siam__V1__SearchResult *res = r->results[i];
        FUZZ_CHECK(res->n_matches == want, "query %zu: %zu matches, expected %zu", i,
                   res->n_matches, want);
        int predicted_seen = 0, zero = 0;
        for (size_t j = 0; j < res->n_matches; j++) {
            const Siam__V1__SearchMatch *m = res->matches[j];
            FUZZ_CHECK(m->id < GALLERY_N && strcmp(m->label, labels[m->id]) == 0,
                       "match %zu: id %llu label '%s'", j, (unsigned long long)m->id, m->label);
            FUZZ_CHECK(isfinite(m->distance) && m->distance >= 0.0f &&
                           (j == 0 || m->distance >= res->matches[j - 1]->distance),
                       "match %zu at distance %g", j, (double)m->distance);
            FUZZ_CHECK(m->score == siam_score(m->distance, thr), "score %g at distance %g",
                       (double)m->score, (double)m->distance);
            predicted_seen |= strcmp(m->label, res->predicted_label) == 0;
            zero |= m->distance == 0.0f;
        }
        FUZZ_CHECK(predicted_seen, "predicted '%s' is no match's label", res->predicted_label);
        FUZZ_CHECK(res->confidence > 0.0f && res->confidence <= 1.0f, "confidence %g",
                   (double)res->confidence);
        if (images)
            for (int g = 0; g < GALLERY_N; g++)
                if (memcmp(q->images.data + i * 784, gallery + (size_t)g * 784, 784) == 0)
                    FUZZ_CHECK(zero, "query %zu is gallery image %d but no match is at 0", i, g);
    }
    siam__v1__search_response__free_unpacked(r, NULL);
    siam__v1__search_request__free_unpacked(q, NULL);
    siam_rpc_buf_free(&resp);
    return 0;
}
