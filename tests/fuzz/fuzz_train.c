/* fuzz_train: EmbeddingBatch messages through siam_service_train, as a Train stream delivers them.
 *
 * Input (fuzz_common.h): a config byte (bit 0: label convention dissimilar; bit 1: margin 2
 * instead of 1; bit 2: weight averaging started, so streams count for liveness), then records of
 * one EmbeddingBatch each; ctrl bit 0 ends the stream and opens a new one before the record,
 * bit 1 sends it without stream state (as siam-bench's direct calls do). So one input is a
 * stream whose dim changes mid-way, a stream that goes on after a failed batch, or several
 * streams of one or more workers.
 *
 * Each input gets a fresh service, freed at the end: nothing carries over between inputs.
 * Invariants: the outcome agrees with the return code; bytes that protobuf-c cannot decode are
 * INVALID_ARGUMENT; every failure is INVALID_ARGUMENT (FAILED_PRECONDITION for an encoding
 * outside the enum) and leaves the stream state as it was (but the first batch names the
 * stream); an OK answer decodes as a BatchResult of the request's sizes in the request's
 * encoding, echoes its step, has a finite loss >= 0, distances >= 0 and finite gradients (the
 * negatives of each other, or grad_right left out when the request asked); the stream's counters
 * and the service's global step count exactly the OK answers; Status afterwards decodes and lists
 * the workers that trained. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "siam_encoding.h"
#include "siam_service.h"

#include "siam/v1/siam.pb-c.h"

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

/* The answer to request b (which the service accepted) is consistent with it. */
static void check_result(const Siam__V1__EmbeddingBatch *b, const siam_rpc_buf *resp) {
    Siam__V1__BatchResult *r = siam__v1__batch_result__unpack(NULL, resp->len, resp->data);
    FUZZ_CHECK(r != NULL, "an OK answer (%zu bytes) does not decode as a BatchResult", resp->len);
    size_t B = b->n_labels, n = B * b->dim;
    FUZZ_CHECK(r->step == b->step, "step %llu echoed as %llu", (unsigned long long)b->step,
               (unsigned long long)r->step);
    int enc = (int)b->encoding, omit = b->omit_grad_right;
    FUZZ_CHECK(r->grad_right_omitted == omit, "grad_right_omitted %d, asked %d",
               r->grad_right_omitted, omit);
    size_t want_floats = enc == SIAM_ENC_FP32 ? n : 0;
    FUZZ_CHECK(r->n_distances == B && r->n_grad_left == want_floats &&
                   r->n_grad_right == (omit ? 0 : want_floats),
               "answer sizes %zu %zu %zu for a batch of %zu x %u in %s", r->n_distances,
               r->n_grad_left, r->n_grad_right, B, b->dim, siam_encoding_name(enc));
    FUZZ_CHECK(isfinite(r->loss) && r->loss >= 0.0f, "loss %g", (double)r->loss);
    for (size_t i = 0; i < B; i++)
        FUZZ_CHECK(isfinite(r->distances[i]) && r->distances[i] >= 0.0f, "distance %zu is %g", i,
                   (double)r->distances[i]);
    float *g = calloc(2 * n + 1, sizeof *g); /* both gradients as the worker decodes them */
    FUZZ_CHECK(g != NULL, "out of memory");
    siam_error err = {0};
    if (enc == SIAM_ENC_FP32) {
        memcpy(g, r->grad_left, n * sizeof *g);
        if (!omit)
            memcpy(g + n, r->grad_right, n * sizeof *g);
    } else {
        FUZZ_CHECK(siam_decode_rows(enc, r->grad_left_packed.data, r->grad_left_packed.len,
                                    r->grad_left_scales, r->n_grad_left_scales, B, (int)b->dim,
                                    "grad_left_packed", "pair", g, &err) == SIAM_OK,
                   "the answer's grad_left does not decode: %s", err.msg);
        if (!omit)
            FUZZ_CHECK(siam_decode_rows(enc, r->grad_right_packed.data, r->grad_right_packed.len,
                                        r->grad_right_scales, r->n_grad_right_scales, B,
                                        (int)b->dim, "grad_right_packed", "pair", g + n,
                                        &err) == SIAM_OK,
                       "the answer's grad_right does not decode: %s", err.msg);
        else
            FUZZ_CHECK(r->grad_right_packed.len == 0 && r->n_grad_right_scales == 0,
                       "grad_right sent although left out");
    }
    for (size_t k = 0; k < n; k++) {
        FUZZ_CHECK(isfinite(g[k]), "grad_left[%zu] is %g", k, (double)g[k]);
        /* negation commutes with every encoding's rounding (symmetric codes, equal scales) */
        FUZZ_CHECK(omit || g[n + k] == -g[k], "grad_right[%zu] %g, grad_left %g", k,
                   (double)g[n + k], (double)g[k]);
    }
    free(g);
    siam__v1__batch_result__free_unpacked(r, NULL);
}

/* Status decodes, and every worker it lists trained at least one pair. */
static void check_status(siam_service *svc, int named_workers) {
    siam_rpc_buf resp = fuzz_garbage_buf();
    siam_rpc_status st;
    int rc = siam_service_status(svc, NULL, 0, &resp, &st);
    fuzz_check_outcome(rc, &st, &resp, "status");
    FUZZ_CHECK(rc == SIAM_RPC_OK, "status failed: %s", st.msg);
    Siam__V1__StatusResponse *s = siam__v1__status_response__unpack(NULL, resp.len, resp.data);
    FUZZ_CHECK(s != NULL, "StatusResponse does not decode");
    FUZZ_CHECK(s->n_workers <= (size_t)named_workers,
               "status lists %zu workers, at most %d trained", s->n_workers, named_workers);
    for (size_t i = 0; i < s->n_workers; i++)
        FUZZ_CHECK(s->workers[i]->pairs_trained > 0, "worker %zu listed without pairs", i);
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
    int rc = siam_service_create(&svc, cfg & 2 ? 2.0f : 1.0f,
                                 cfg & 1 ? SIAM_LABELS_DISSIMILAR : SIAM_LABELS_SIMILAR, 0, "fuzz",
                                 &err);
    FUZZ_CHECK(rc == SIAM_OK, "init: %s", err.msg);
    if (cfg & 4) {
        rc = siam_service_start_averaging(svc, 1, 3600.0, NULL, NULL, no_sync_reply, &err);
        FUZZ_CHECK(rc == SIAM_OK, "start_averaging: %s", err.msg);
    }

    siam_train_stream ts;
    memset(&ts, 0, sizeof ts);
    uint64_t ok = 0;
    int named = 0; /* upper bound on distinct workers with an OK batch */
    fuzz_reader rd;
    fuzz_reader_init(&rd, data + 1, size - 1);
    uint8_t ctrl;
    const uint8_t *msg;
    size_t len;
    while (fuzz_next(&rd, &ctrl, &msg, &len)) {
        if (ctrl & 1) { /* a new stream */
            siam_service_train_end(svc, &ts);
            FUZZ_CHECK(!ts.live, "the ended stream is still live");
            memset(&ts, 0, sizeof ts);
        }
        siam_train_stream *tsp = ctrl & 2 ? NULL : &ts;
        siam_train_stream before = ts;
        siam_rpc_buf resp = fuzz_garbage_buf();
        siam_rpc_status st;
        memset(&st, 0xa5, sizeof st);
        rc = siam_service_train(svc, tsp, msg, len, &resp, &st);
        fuzz_check_outcome(rc, &st, &resp, "train");

        Siam__V1__EmbeddingBatch *b = siam__v1__embedding_batch__unpack(NULL, len, msg);
        if (!b)
            FUZZ_CHECK(rc == SIAM_RPC_INVALID_ARGUMENT, "undecodable bytes answered %s",
                       siam_rpc_code_name(rc));
        if (rc == SIAM_RPC_OK) {
            FUZZ_CHECK(b != NULL, "the service decoded what protobuf-c does not");
            check_result(b, &resp);
            ok++;
            named++;
            if (tsp) {
                FUZZ_CHECK(ts.batches == before.batches + 1 &&
                               ts.pairs == before.pairs + b->n_labels,
                           "stream counters %llu/%llu after %llu/%llu + %zu pairs",
                           (unsigned long long)ts.batches, (unsigned long long)ts.pairs,
                           (unsigned long long)before.batches, (unsigned long long)before.pairs,
                           b->n_labels);
                FUZZ_CHECK(ts.dim == b->dim, "stream dim %u after a batch of dim %u", ts.dim,
                           b->dim);
                FUZZ_CHECK(ts.live == (siam_service_averaging(svc) != NULL),
                           "stream live %d, averaging %s", ts.live,
                           siam_service_averaging(svc) ? "on" : "off");
            }
        } else {
            FUZZ_CHECK(rc == SIAM_RPC_INVALID_ARGUMENT ||
                           (rc == SIAM_RPC_FAILED_PRECONDITION && b &&
                            !siam_encoding_name((int)b->encoding)),
                       "train failed with %s: %s", siam_rpc_code_name(rc), st.msg);
            /* a failed batch changes nothing but the name of a stream's first batch */
            FUZZ_CHECK(ts.dim == before.dim && ts.batches == before.batches &&
                           ts.pairs == before.pairs &&
                           memcmp(&ts.loss_sum, &before.loss_sum, sizeof ts.loss_sum) == 0 &&
                           ts.live == before.live,
                       "a failed batch changed the stream");
            if (before.batches != 0 || !b)
                FUZZ_CHECK(strcmp(before.worker_id, ts.worker_id) == 0,
                           "a failed batch renamed the stream '%s' -> '%s'", before.worker_id,
                           ts.worker_id);
        }
        FUZZ_CHECK(strlen(ts.worker_id) < sizeof ts.worker_id, "stream name unterminated");
        siam__v1__embedding_batch__free_unpacked(b, NULL);
        siam_rpc_buf_free(&resp);
        FUZZ_CHECK(siam_service_global_step(svc) == ok, "global step %llu after %llu OK batches",
                   (unsigned long long)siam_service_global_step(svc), (unsigned long long)ok);
    }
    siam_service_train_end(svc, &ts);
    check_status(svc, named);
    siam_service_free(svc);
    return 0;
}
