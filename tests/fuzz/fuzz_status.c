/* fuzz_status: one StatusRequest (the whole input) through siam_service_status.
 *
 * StatusRequest has no fields, so what is fuzzed is the decoding of unknown fields and of
 * malformed bytes, and the encoding of a server's state: the service is made once with weight
 * averaging, a global model, three workers that trained (one also joined for averaging, one
 * named with invalid UTF-8 and a control character) and a live Train stream. Status changes no
 * state.
 *
 * Invariants: the outcome agrees with the return code; the request is answered OK exactly when
 * protobuf-c decodes it as a StatusRequest, INVALID_ARGUMENT otherwise; an OK answer decodes as
 * a StatusResponse that reports that state (version, margin, convention, model spec, workers
 * with valid UTF-8 names, their pairs, the global step). */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "siam_model.h"
#include "siam_service.h"

#include "siam/v1/siam.pb-c.h"

#define FUZZ_MODEL "in=2x2x1 dense2"

static siam_service *svc = NULL;
static siam_train_stream live_stream;

static void sync_reply(void *waiter, siam_rpc_buf *resp, const siam_rpc_status *st) {
    *(int *)waiter = st->code;
    siam_rpc_buf_free(resp);
}

static void train(const char *worker, siam_train_stream *ts) {
    float a[2] = {1, 2}, b[2] = {1, 0};
    uint32_t y = 1;
    Siam__V1__EmbeddingBatch m = SIAM__V1__EMBEDDING_BATCH__INIT;
    m.dim = 2;
    m.n_left = 2, m.left = a;
    m.n_right = 2, m.right = b;
    m.n_labels = 1, m.labels = &y;
    m.worker_id = (char *)worker;
    uint8_t buf[128];
    size_t len = siam__v1__embedding_batch__pack(&m, buf);
    siam_rpc_buf resp = {NULL, 0};
    siam_rpc_status st;
    FUZZ_CHECK(siam_service_train(svc, ts, buf, len, &resp, &st) == SIAM_RPC_OK, "train: %s",
               st.msg);
    siam_rpc_buf_free(&resp);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_quiet_logs();
    siam_model *m = fuzz_service_with_model(&svc, 1.5f, SIAM_LABELS_DISSIMILAR, 2, sync_reply,
                                            FUZZ_MODEL, 1, 4, 10);
    /* a join: with min_workers 2 it waits (answered UNAVAILABLE if the service were freed) */
    Siam__V1__WeightsUpdate u = SIAM__V1__WEIGHTS_UPDATE__INIT;
    u.worker_id = "w-sync";
    u.model_spec = (char *)siam_model_spec(m);
    u.n_params = siam_model_num_params(m), u.params = siam_model_params(m);
    u.round = 4;
    uint8_t buf[256];
    size_t len = siam__v1__weights_update__pack(&u, buf);
    static int join_code = -1;
    siam_service_sync(svc, buf, len, &join_code);
    FUZZ_CHECK(join_code == -1, "a join with min_workers 2 answered %d", join_code);
    siam_model_free(m);
    siam_train_stream done;
    memset(&done, 0, sizeof done);
    train("w-sync", &done);
    siam_service_train_end(svc, &done);
    train("w-\xff\x01z", NULL);
    memset(&live_stream, 0, sizeof live_stream);
    train("w-live", &live_stream); /* stays open */
    return 0;
}

/* Valid UTF-8 without control characters. */
static int clean_utf8(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : 4;
        if (*p < 0x20 || *p == 0x7f || *p >= 0xf8 || (*p >= 0x80 && *p < 0xc2))
            return 0;
        for (size_t k = 1; k < n; k++)
            if ((p[k] & 0xc0) != 0x80)
                return 0;
        p += n;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    siam_rpc_buf resp = fuzz_garbage_buf();
    siam_rpc_status st;
    memset(&st, 0xa5, sizeof st);
    int rc = siam_service_status(svc, data, size, &resp, &st);
    fuzz_check_outcome(rc, &st, &resp, "status");
    Siam__V1__StatusRequest *q = siam__v1__status_request__unpack(NULL, size, data);
    FUZZ_CHECK((rc == SIAM_RPC_OK) == (q != NULL), "status answered %s to a request %s",
               siam_rpc_code_name(rc), q ? "that decodes" : "that does not decode");
    siam__v1__status_request__free_unpacked(q, NULL);
    if (rc != SIAM_RPC_OK) {
        FUZZ_CHECK(rc == SIAM_RPC_INVALID_ARGUMENT, "status failed with %s: %s",
                   siam_rpc_code_name(rc), st.msg);
        return 0;
    }
    Siam__V1__StatusResponse *r = siam__v1__status_response__unpack(NULL, resp.len, resp.data);
    FUZZ_CHECK(r != NULL, "an OK answer (%zu bytes) does not decode as a StatusResponse", resp.len);
    FUZZ_CHECK(strcmp(r->version, "fuzz") == 0 && r->margin == 1.5f &&
                   strcmp(r->label_convention, "dissimilar") == 0 &&
                   strcmp(r->model_spec, FUZZ_MODEL) == 0 && r->round == 4 &&
                   r->global_step == 13 && r->min_workers == 2 && r->joined_workers == 1 &&
                   r->waiting[0] != '\0' && r->sync_timeout_seconds == 3600.0,
               "status: version '%s' margin %g convention '%s' spec '%s' round %llu step %llu "
               "min %u joined %u waiting '%s'",
               r->version, (double)r->margin, r->label_convention, r->model_spec,
               (unsigned long long)r->round, (unsigned long long)r->global_step, r->min_workers,
               r->joined_workers, r->waiting);
    FUZZ_CHECK(r->n_workers == 3, "%zu workers listed, 3 trained", r->n_workers);
    for (size_t i = 0; i < r->n_workers; i++) {
        const Siam__V1__WorkerStatus *w = r->workers[i];
        FUZZ_CHECK(clean_utf8(w->worker_id), "worker %zu's name is not clean UTF-8", i);
        FUZZ_CHECK(w->pairs_trained == 1 && w->last_seen_seconds_ago >= 0.0,
                   "worker '%s': %llu pairs, seen %g s ago", w->worker_id,
                   (unsigned long long)w->pairs_trained, w->last_seen_seconds_ago);
    }
    siam__v1__status_response__free_unpacked(r, NULL);
    siam_rpc_buf_free(&resp);
    return 0;
}
