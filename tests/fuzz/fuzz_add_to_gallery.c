/* fuzz_add_to_gallery: several AddToGallery and Search requests on a fresh service per input.
 *
 * Input: a config byte, then records [ctrl][u16 length][message] (fuzz_common.h). ctrl bit 0:
 * 0 = a GalleryAddRequest, 1 = a SearchRequest. Config bit 0: the service has a global model
 * (MODEL: 3x2x1 images of 6 bytes, so that the fuzzer makes whole images easily) or none (then
 * adds have no shape to check against and are refused). The gallery holds at most LIMIT items.
 *
 * Invariants: the outcome agrees with the return code; an OK add answers one id per image,
 * consecutive from the gallery's size before it, the new size and the model round; its images
 * were whole images, at most SIAM_GALLERY_MAX_ADD, with one valid label each
 * (siam_gallery_check_label), and each is found by a Search with it at distance 0 right after the
 * add returns (searchable when the add returns). A refused add changes nothing (Status's
 * gallery_size); it is RESOURCE_EXHAUSTED exactly when the images would pass LIMIT, else
 * INVALID_ARGUMENT, or FAILED_PRECONDITION without a model. Searches fail only with
 * INVALID_ARGUMENT, or FAILED_PRECONDITION while the gallery is empty or there is no model. */
#include <string.h>

#include "fuzz_common.h"
#include "siam_knn.h"
#include "siam_service.h"

#include "siam/v1/siam.pb-c.h"

#define MODEL "in=3x2x1 dense4 relu dense3"
#define IMG   6
#define LIMIT 16

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
    return 0;
}

static uint64_t gallery_size(siam_service *svc) {
    siam_rpc_buf resp = {NULL, 0};
    siam_rpc_status st;
    FUZZ_CHECK(siam_service_status(svc, (const uint8_t *)"", 0, &resp, &st) == SIAM_RPC_OK,
               "status: %s", st.msg);
    Siam__V1__StatusResponse *r = siam__v1__status_response__unpack(NULL, resp.len, resp.data);
    FUZZ_CHECK(r != NULL, "status does not decode");
    uint64_t n = r->gallery_size;
    FUZZ_CHECK(r->gallery_embedded == n || strcmp(r->input_shape, "") == 0,
               "%llu of %llu items embedded", (unsigned long long)r->gallery_embedded,
               (unsigned long long)n);
    siam__v1__status_response__free_unpacked(r, NULL);
    siam_rpc_buf_free(&resp);
    return n;
}

/* Searches the n images of an OK add: each finds its id at distance 0. */
static void check_searchable(siam_service *svc, const uint8_t *img, size_t n, const uint64_t *ids) {
    Siam__V1__SearchRequest q = SIAM__V1__SEARCH_REQUEST__INIT;
    q.images.data = (uint8_t *)img, q.images.len = n * IMG;
    q.k = SIAM_KNN_K_MAX; /* the whole gallery (LIMIT items) */
    size_t len = siam__v1__search_request__get_packed_size(&q);
    uint8_t *buf = malloc(len);
    siam__v1__search_request__pack(&q, buf);
    siam_rpc_buf resp = {NULL, 0};
    siam_rpc_status st;
    int rc = siam_service_search(svc, buf, len, &resp, &st);
    free(buf);
    FUZZ_CHECK(rc == SIAM_RPC_OK, "search of added images: %s", st.msg);
    Siam__V1__SearchResponse *r = siam__v1__search_response__unpack(NULL, resp.len, resp.data);
    FUZZ_CHECK(r && r->n_results == n, "search of %zu added images", n);
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        for (size_t j = 0; j < r->results[i]->n_matches; j++)
            found |= r->results[i]->matches[j]->id == ids[i] &&
                     r->results[i]->matches[j]->distance == 0.0f;
        FUZZ_CHECK(found, "added item %llu not found at distance 0", (unsigned long long)ids[i]);
    }
    siam__v1__search_response__free_unpacked(r, NULL);
    siam_rpc_buf_free(&resp);
}

static void one_add(siam_service *svc, int model, const uint8_t *msg, size_t len) {
    uint64_t before = gallery_size(svc);
    siam_rpc_buf resp = fuzz_garbage_buf();
    siam_rpc_status st;
    memset(&st, 0xa5, sizeof st);
    int rc = siam_service_add_to_gallery(svc, msg, len, &resp, &st);
    fuzz_check_outcome(rc, &st, &resp, "add");
    FUZZ_TRACE("add: %s %s\n", siam_rpc_code_name(rc), rc ? st.msg : "");
    Siam__V1__GalleryAddRequest *q = siam__v1__gallery_add_request__unpack(NULL, len, msg);
    size_t n = q ? q->images.len / IMG : 0;
    if (rc != SIAM_RPC_OK) {
        FUZZ_CHECK(gallery_size(svc) == before, "a refused add changed the gallery");
        int full = q && model && q->images.len % IMG == 0 && n > 0 && n == q->n_labels &&
                   n <= SIAM_GALLERY_MAX_ADD && before + n > LIMIT;
        for (size_t i = 0; full && i < n; i++) {
            char why[128];
            full =
                siam_gallery_check_label(q->labels[i], strlen(q->labels[i]), why, sizeof why) == 0;
        }
        int want = full                           ? SIAM_RPC_RESOURCE_EXHAUSTED
                   : !model && q && q->images.len ? SIAM_RPC_FAILED_PRECONDITION
                                                  : SIAM_RPC_INVALID_ARGUMENT;
        FUZZ_CHECK(rc == want, "add failed with %s, expected %s: %s", siam_rpc_code_name(rc),
                   siam_rpc_code_name(want), st.msg);
        siam__v1__gallery_add_request__free_unpacked(q, NULL);
        return;
    }
    FUZZ_CHECK(q && model, "an add accepted without a model or undecodable");
    FUZZ_CHECK(q->images.len % IMG == 0 && n > 0 && n <= SIAM_GALLERY_MAX_ADD && n == q->n_labels &&
                   before + n <= LIMIT,
               "an add of %zu bytes with %zu labels accepted at size %llu", q->images.len,
               q->n_labels, (unsigned long long)before);
    for (size_t i = 0; i < n; i++) {
        char why[128];
        FUZZ_CHECK(siam_gallery_check_label(q->labels[i], strlen(q->labels[i]), why, sizeof why) ==
                       0,
                   "labels[%zu] accepted: %s", i, why);
    }
    Siam__V1__GalleryAddResponse *r =
        siam__v1__gallery_add_response__unpack(NULL, resp.len, resp.data);
    FUZZ_CHECK(r && r->n_ids == n && r->gallery_size == before + n && r->model_round == 0,
               "the add's answer");
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(r->ids[i] == before + i, "id %zu is %llu", i, (unsigned long long)r->ids[i]);
    check_searchable(svc, q->images.data, n, r->ids);
    siam__v1__gallery_add_response__free_unpacked(r, NULL);
    siam__v1__gallery_add_request__free_unpacked(q, NULL);
    siam_rpc_buf_free(&resp);
}

static void one_search(siam_service *svc, int model, const uint8_t *msg, size_t len) {
    siam_rpc_buf resp = fuzz_garbage_buf();
    siam_rpc_status st;
    memset(&st, 0xa5, sizeof st);
    int rc = siam_service_search(svc, msg, len, &resp, &st);
    fuzz_check_outcome(rc, &st, &resp, "search");
    FUZZ_TRACE("search: %s %s\n", siam_rpc_code_name(rc), rc ? st.msg : "");
    uint64_t size = gallery_size(svc);
    FUZZ_CHECK(rc == SIAM_RPC_OK || rc == SIAM_RPC_INVALID_ARGUMENT ||
                   (rc == SIAM_RPC_FAILED_PRECONDITION && (size == 0 || !model)),
               "search failed with %s: %s", siam_rpc_code_name(rc), st.msg);
    if (rc == SIAM_RPC_OK) {
        Siam__V1__SearchResponse *r = siam__v1__search_response__unpack(NULL, resp.len, resp.data);
        FUZZ_CHECK(r && r->gallery_size == size && r->n_results > 0, "the search's answer");
        siam__v1__search_response__free_unpacked(r, NULL);
        siam_rpc_buf_free(&resp);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    int model = data[0] & 1;
    siam_service *svc = NULL;
    siam_error err;
    FUZZ_CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "fuzz", &err) == SIAM_OK,
               "%s", err.msg);
    FUZZ_CHECK(siam_service_set_gallery_max(svc, LIMIT, &err) == SIAM_OK, "%s", err.msg);
    FUZZ_CHECK(siam_service_start_averaging(svc, 1, 3600.0, NULL, NULL, no_sync_reply, &err) ==
                   SIAM_OK,
               "%s", err.msg);
    if (model) {
        static float params[64];
        for (int i = 0; i < 64; i++)
            params[i] = (float)((i * 7) % 13 - 6) / 8.0f;
        size_t n = 0;
        FUZZ_CHECK(siam_model_spec_parse(MODEL, NULL, &n, &err) == SIAM_OK && n <= 64, "%s",
                   err.msg);
        FUZZ_CHECK(siam_service_set_model(svc, MODEL, params, n, 0, 0, &err) == SIAM_OK, "%s",
                   err.msg);
    }
    fuzz_reader rd;
    fuzz_reader_init(&rd, data + 1, size - 1);
    uint8_t ctrl;
    const uint8_t *msg;
    size_t len;
    while (fuzz_next(&rd, &ctrl, &msg, &len)) {
        if (ctrl & 1)
            one_search(svc, model, msg, len);
        else
            one_add(svc, model, msg, len);
    }
    siam_service_free(svc);
    return 0;
}
