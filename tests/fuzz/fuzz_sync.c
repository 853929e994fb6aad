/* fuzz_sync: WeightsUpdate messages through siam_service_sync (SyncWeights), with Train streams
 * in between because they decide which workers a round waits for.
 *
 * Input (fuzz_common.h): a config byte (bit 0: the server starts with a global model, as with
 * siam-server --model, instead of taking the first worker's; bit 1: min_workers 2 instead of 1,
 * so joins wait), then records. ctrl bit 0 clear: the record is a WeightsUpdate for SyncWeights;
 * set: an EmbeddingBatch on Train stream slot (ctrl >> 4) & 3. ctrl bit 1 first ends that
 * stream slot; bit 2 asks Status afterwards.
 *
 * Each input gets a fresh service with averaging started (sync timeout one hour, so the timer
 * thread never closes a round while the input runs): SyncWeights calls are answered at once or
 * stay waiting until siam_service_free at the end answers them UNAVAILABLE. Nothing carries over
 * between inputs. The reply callback checks every answer and frees it.
 *
 * Invariants: every call is answered exactly once, by the end; an answer is OK with a
 * GlobalWeights that decodes, names the global model's spec and has its parameter count and
 * finite parameters in the update's encoding, or a failure with a message and no response;
 * undecodable requests are INVALID_ARGUMENT; only UNAVAILABLE comes after the end; a call that is
 * refused does not set the global model (a refused first join leaves the server without one);
 * Status decodes. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "siam_averaging.h"
#include "siam_encoding.h"
#include "siam_service.h"

#include "siam/v1/siam.pb-c.h"

/* "in=2x2x1 dense2": 4 x 2 weights + 2 biases */
#define FUZZ_MODEL   "in=2x2x1 dense2"
#define FUZZ_NPARAMS 10

typedef struct {
    int answers;
    int code;
    int ended;    /* the service was freed: only UNAVAILABLE may come now */
    int encoding; /* the update's, which an OK answer must use (-1: the update did not decode) */
} sync_slot;

static pthread_mutex_t reply_lock = PTHREAD_MUTEX_INITIALIZER;
static siam_service *current; /* the service of the input running */

static void sync_reply(void *waiter, siam_rpc_buf *resp, const siam_rpc_status *st) {
    sync_slot *s = waiter;
    FUZZ_CHECK(st != NULL, "an answer without a status");
    FUZZ_CHECK(st->msg[0] != '\0' || st->code == SIAM_RPC_OK, "%s without a message",
               siam_rpc_code_name(st->code));
    if (st->code == SIAM_RPC_OK) {
        FUZZ_CHECK(resp && resp->data, "OK without a response");
        Siam__V1__GlobalWeights *g = siam__v1__global_weights__unpack(NULL, resp->len, resp->data);
        FUZZ_CHECK(g != NULL, "an OK answer (%zu bytes) does not decode as GlobalWeights",
                   resp->len);
        siam_averaging_info info;
        siam_averaging_get_info(siam_service_averaging(current), &info);
        FUZZ_CHECK(info.has_model, "weights answered while the server has no model");
        FUZZ_CHECK(g->model_spec && strcmp(g->model_spec, info.spec) == 0,
                   "answer names model '%s', the global model is '%s'",
                   g->model_spec ? g->model_spec : "(null)", info.spec);
        FUZZ_CHECK((int)g->encoding == s->encoding, "answer in encoding %d, the update's %d",
                   (int)g->encoding, s->encoding);
        if (g->encoding == SIAM__V1__WIRE_ENCODING__WIRE_FP32) {
            FUZZ_CHECK(g->n_params == info.n_params && g->params_packed.len == 0,
                       "answer has %zu params and %zu packed bytes, the model %zu params",
                       g->n_params, g->params_packed.len, info.n_params);
            for (size_t i = 0; i < g->n_params; i++)
                FUZZ_CHECK(isfinite(g->params[i]), "params[%zu] is %g", i, (double)g->params[i]);
        } else {
            float *p = malloc(info.n_params * sizeof *p);
            siam_error derr = {0};
            FUZZ_CHECK(p != NULL, "out of memory");
            FUZZ_CHECK(g->n_params == 0 &&
                           siam_decode_blocks((siam_encoding)g->encoding, g->params_packed.data,
                                              g->params_packed.len, g->params_scales,
                                              g->n_params_scales, info.n_params, "params_packed", p,
                                              &derr) == SIAM_OK,
                       "the %s answer does not decode to the model's %zu params: %s",
                       siam_encoding_name((int)g->encoding), info.n_params, derr.msg);
            free(p);
        }
        FUZZ_CHECK(g->round <= info.round, "answer of round %llu, only %llu closed",
                   (unsigned long long)g->round, (unsigned long long)info.round);
        siam__v1__global_weights__free_unpacked(g, NULL);
        siam_rpc_buf_free(resp);
    } else {
        FUZZ_CHECK(resp == NULL, "%s with a response", siam_rpc_code_name(st->code));
    }
    pthread_mutex_lock(&reply_lock);
    s->answers++;
    s->code = st->code;
    int ended = s->ended;
    pthread_mutex_unlock(&reply_lock);
    FUZZ_CHECK(!ended || st->code == SIAM_RPC_UNAVAILABLE, "%s after the end",
               siam_rpc_code_name(st->code));
}

static int answers(const sync_slot *s, int *code) {
    pthread_mutex_lock(&reply_lock);
    int n = s->answers;
    if (code)
        *code = s->code;
    pthread_mutex_unlock(&reply_lock);
    return n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_quiet_logs();
    return 0;
}

static void check_status(siam_service *svc, int calls) {
    siam_rpc_buf resp = fuzz_garbage_buf();
    siam_rpc_status st;
    int rc = siam_service_status(svc, NULL, 0, &resp, &st);
    fuzz_check_outcome(rc, &st, &resp, "status");
    FUZZ_CHECK(rc == SIAM_RPC_OK, "status failed: %s", st.msg);
    Siam__V1__StatusResponse *s = siam__v1__status_response__unpack(NULL, resp.len, resp.data);
    FUZZ_CHECK(s != NULL, "StatusResponse does not decode");
    FUZZ_CHECK(s->joined_workers <= (uint32_t)calls, "%u workers joined in %d calls",
               s->joined_workers, calls);
    siam__v1__status_response__free_unpacked(s, NULL);
    siam_rpc_buf_free(&resp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    uint8_t cfg = data[0];
    siam_service *svc = NULL;
    siam_error err;
    FUZZ_CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "fuzz", &err) == SIAM_OK,
               "init: %s", err.msg);
    FUZZ_CHECK(siam_service_start_averaging(svc, cfg & 2 ? 2 : 1, 3600.0, NULL, NULL, sync_reply,
                                            &err) == SIAM_OK,
               "start_averaging: %s", err.msg);
    current = svc;
    if (cfg & 1) {
        float p[FUZZ_NPARAMS];
        for (int i = 0; i < FUZZ_NPARAMS; i++)
            p[i] = 0.125f * (float)(i - 4);
        FUZZ_CHECK(siam_service_set_model(svc, FUZZ_MODEL, p, FUZZ_NPARAMS, 3, 7, &err) == SIAM_OK,
                   "set_model: %s", err.msg);
    }

    sync_slot slots[FUZZ_MAX_RECORDS];
    memset(slots, 0, sizeof slots);
    int calls = 0;
    siam_train_stream streams[4];
    memset(streams, 0, sizeof streams);
    fuzz_reader rd;
    fuzz_reader_init(&rd, data + 1, size - 1);
    uint8_t ctrl;
    const uint8_t *msg;
    size_t len;
    while (fuzz_next(&rd, &ctrl, &msg, &len)) {
        siam_train_stream *ts = &streams[(ctrl >> 4) & 3];
        if (ctrl & 2) {
            FUZZ_TRACE("end stream %d (%s)\n", (ctrl >> 4) & 3, ts->worker_id);
            siam_service_train_end(svc, ts);
            memset(ts, 0, sizeof *ts);
        }
        if (ctrl & 1) {
            siam_rpc_buf resp = fuzz_garbage_buf();
            siam_rpc_status st;
            int rc = siam_service_train(svc, ts, msg, len, &resp, &st);
            fuzz_check_outcome(rc, &st, &resp, "train");
            FUZZ_TRACE("train on stream %d (%s): %s %s\n", (ctrl >> 4) & 3, ts->worker_id,
                       siam_rpc_code_name(rc), st.msg);
            siam_rpc_buf_free(&resp);
        } else {
            sync_slot *s = &slots[calls++];
            int had_model = siam_averaging_has_model(siam_service_averaging(svc));
            Siam__V1__WeightsUpdate *u = siam__v1__weights_update__unpack(NULL, len, msg);
            s->encoding = u ? (int)u->encoding : -1;
            siam_service_sync(svc, msg, len, s);
            int code = 0, n = answers(s, &code);
            FUZZ_TRACE("sync call %d: %s\n", calls - 1, n ? siam_rpc_code_name(code) : "waits");
            FUZZ_CHECK(n <= 1, "one call answered %d times", n);
            if (!u)
                FUZZ_CHECK(n == 1 && code == SIAM_RPC_INVALID_ARGUMENT,
                           "undecodable bytes: %d answers, %s", n, siam_rpc_code_name(code));
            siam__v1__weights_update__free_unpacked(u, NULL);
            if (n == 1)
                FUZZ_CHECK(code == SIAM_RPC_OK || code == SIAM_RPC_INVALID_ARGUMENT ||
                               code == SIAM_RPC_FAILED_PRECONDITION ||
                               code == SIAM_RPC_ALREADY_EXISTS,
                           "SyncWeights answered %s", siam_rpc_code_name(code));
            if (!had_model && siam_averaging_has_model(siam_service_averaging(svc)))
                FUZZ_CHECK(n == 0 || code == SIAM_RPC_OK, "a call answered %s set the global model",
                           siam_rpc_code_name(code));
        }
        if (ctrl & 4)
            check_status(svc, calls);
    }
    for (int i = 0; i < 4; i++)
        siam_service_train_end(svc, &streams[i]);
    /* calls still waiting (a round or min_workers) are answered UNAVAILABLE by the free */
    pthread_mutex_lock(&reply_lock);
    for (int i = 0; i < calls; i++)
        slots[i].ended = slots[i].answers == 0;
    pthread_mutex_unlock(&reply_lock);
    siam_service_free(svc);
    current = NULL;
    for (int i = 0; i < calls; i++)
        FUZZ_CHECK(answers(&slots[i], NULL) == 1, "call %d answered %d times", i,
                   answers(&slots[i], NULL));
    return 0;
}
