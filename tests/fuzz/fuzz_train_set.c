/* fuzz_train_set: EmbeddingSet messages through siam_service_train_set, as a TrainSet stream
 * delivers them.
 *
 * Input (fuzz_common.h): a config byte (bits 0-2: the loss, value mod 6 in siam_set_loss_choices
 * order, facenet last; bit 3: squared distance; bit 4: weight averaging started, so streams count
 * for
 * liveness; bits 5-6: margin 1, 0, 0.5 or 2), then records of one EmbeddingSet each; ctrl bit 0
 * ends the stream and opens a new one before the record, bit 1 sends it without stream state.
 *
 * Each input gets a fresh service, freed at the end: nothing carries over between inputs.
 * Invariants: the service never crashes; the outcome agrees with the return code; bytes that
 * protobuf-c cannot decode are INVALID_ARGUMENT; a failure is INVALID_ARGUMENT, or
 * RESOURCE_EXHAUSTED for more than SIAM_SET_LOSS_MAX_N group ids, or FAILED_PRECONDITION for an
 * encoding outside the enum, and leaves the stream state as
 * it was (but the first set names the stream); a progress outside 0..1 or not finite is never
 * answered OK; an OK answer decodes as a SetResult that echoes
 * the step, has n x dim gradients in the request's encoding, all finite, a finite loss >= 0, mining
 * statistics that count n (n - 1) / 2 pairs, and for a degenerate set loss 0, zero gradients and a
 * note; the stream's counters and the global step count exactly the OK answers; Status afterwards
 * decodes and names the loss. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "siam_encoding.h"
#include "siam_service.h"

#include "siam/v1/siam.pb-c.h"

/* What one input may make the service compute, so that inputs run fast under ASan: a set costs
 * n^2 x 16 (distances, O(n^2) mining, gradients) or n^3 for batch-all and semi-hard, which mine
 * in O(n^3); sets beyond the budget are skipped, not sent. One set of n = 2,500 fits, or a cubic
 * one of n = 460 (test_service_set answers one at SIAM_SET_LOSS_MAX_N). */
#define WORK_BUDGET 1e8

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

/* The answer to request q (which the service accepted) is consistent with it. */
static void check_result(const Siam__V1__EmbeddingSet *q, const siam_rpc_buf *resp) {
    Siam__V1__SetResult *r = siam__v1__set_result__unpack(NULL, resp->len, resp->data);
    FUZZ_CHECK(r != NULL, "an OK answer (%zu bytes) does not decode as a SetResult", resp->len);
    size_t n = q->n_groups, nd = n * q->dim;
    FUZZ_CHECK(r->step == q->step, "step %llu echoed as %llu", (unsigned long long)q->step,
               (unsigned long long)r->step);
    int enc = (int)q->encoding;
    float *grad = calloc(nd + 1, sizeof *grad); /* as the worker decodes it */
    FUZZ_CHECK(grad != NULL, "out of memory");
    if (enc == SIAM_ENC_FP32) {
        FUZZ_CHECK(r->n_grad == nd, "%zu gradients for a set of %zu x %u", r->n_grad, n, q->dim);
        memcpy(grad, r->grad, nd * sizeof *grad);
    } else {
        siam_error err = {0};
        FUZZ_CHECK(r->n_grad == 0, "%zu fp32 gradients in a %s answer", r->n_grad,
                   siam_encoding_name(enc));
        FUZZ_CHECK(siam_decode_rows(enc, r->grad_packed.data, r->grad_packed.len, r->grad_scales,
                                    r->n_grad_scales, n, (int)q->dim, "grad_packed", "embedding",
                                    grad, &err) == SIAM_OK,
                   "the answer's gradient does not decode: %s", err.msg);
    }
    FUZZ_CHECK(isfinite(r->loss) && r->loss >= 0.0f, "loss %g", (double)r->loss);
    for (size_t k = 0; k < nd; k++)
        FUZZ_CHECK(isfinite(grad[k]), "grad[%zu] is %g", k, (double)grad[k]);
    const Siam__V1__MiningStats *m = r->mining;
    FUZZ_CHECK(m != NULL, "no mining statistics");
    FUZZ_CHECK(m->positive_pairs + m->negative_pairs == n * (n - 1) / 2,
               "%llu + %llu pairs in a set of %zu", (unsigned long long)m->positive_pairs,
               (unsigned long long)m->negative_pairs, n);
    FUZZ_CHECK(m->active <= m->terms, "%llu active of %llu terms", (unsigned long long)m->active,
               (unsigned long long)m->terms);
    FUZZ_CHECK(m->degenerate == (m->positive_pairs == 0 || m->negative_pairs == 0),
               "degenerate %d with %llu positive and %llu negative pairs", m->degenerate,
               (unsigned long long)m->positive_pairs, (unsigned long long)m->negative_pairs);
    if (m->degenerate) {
        FUZZ_CHECK(r->loss == 0.0f && m->note[0] != '\0', "degenerate: loss %g, note '%s'",
                   (double)r->loss, m->note);
        for (size_t k = 0; k < nd; k++)
            FUZZ_CHECK(grad[k] == 0.0f, "degenerate: grad[%zu] is %g", k, (double)grad[k]);
    } else {
        FUZZ_CHECK(m->note[0] == '\0', "a note for a set that is not degenerate: '%s'", m->note);
    }
    free(grad);
    siam__v1__set_result__free_unpacked(r, NULL);
}

/* Status decodes and names the configured loss. */
static void check_status(siam_service *svc, const char *loss) {
    siam_rpc_buf resp = fuzz_garbage_buf();
    siam_rpc_status st;
    int rc = siam_service_status(svc, NULL, 0, &resp, &st);
    fuzz_check_outcome(rc, &st, &resp, "status");
    FUZZ_CHECK(rc == SIAM_RPC_OK, "status failed: %s", st.msg);
    Siam__V1__StatusResponse *s = siam__v1__status_response__unpack(NULL, resp.len, resp.data);
    FUZZ_CHECK(s != NULL, "StatusResponse does not decode");
    FUZZ_CHECK(strcmp(s->loss, loss) == 0, "Status loss '%s', configured '%s'", s->loss, loss);
    for (size_t i = 0; i < s->n_workers; i++)
        FUZZ_CHECK(s->workers[i]->pairs_trained >= 2, "worker %zu listed with %llu images", i,
                   (unsigned long long)s->workers[i]->pairs_trained);
    siam__v1__status_response__free_unpacked(s, NULL);
    siam_rpc_buf_free(&resp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    static const char *losses[6] = {"contrastive", "batch-all",       "batch-hard",
                                    "semi-hard",   "batch-hard-soft", "facenet"};
    static const float margins[4] = {1.0f, 0.0f, 0.5f, 2.0f};
    uint8_t cfg = data[0];
    siam_service *svc = NULL;
    siam_error err;
    int rc = siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "fuzz", &err);
    FUZZ_CHECK(rc == SIAM_OK, "init: %s", err.msg);
    siam_set_loss_config sc = siam_set_loss_default();
    const char *loss = losses[(cfg & 7) % 6];
    rc = siam_set_loss_parse(&sc, loss, &err);
    FUZZ_CHECK(rc == SIAM_OK, "parse %s: %s", loss, err.msg);
    sc.distance = cfg & 8 ? SIAM_SET_SQUARED : SIAM_SET_EUCLIDEAN;
    sc.margin = margins[(cfg >> 5) & 3];
    rc = siam_service_set_set_loss(svc, &sc, &err);
    FUZZ_CHECK(rc == SIAM_OK, "set loss: %s", err.msg);
    /* facenet mines semi-hard (cubic) for part of the training */
    int cubic = sc.mode == SIAM_SET_BATCH_ALL || sc.mode == SIAM_SET_SEMI_HARD ||
                sc.mode == SIAM_SET_FACENET;
    if (cfg & 16) {
        rc = siam_service_start_averaging(svc, 1, 3600.0, NULL, NULL, no_sync_reply, &err);
        FUZZ_CHECK(rc == SIAM_OK, "start_averaging: %s", err.msg);
    }

    siam_train_stream ts;
    memset(&ts, 0, sizeof ts);
    uint64_t ok = 0;
    double work = 0; /* see WORK_BUDGET */
    fuzz_reader rd;
    fuzz_reader_init(&rd, data + 1, size - 1);
    uint8_t ctrl;
    const uint8_t *msg;
    size_t len;
    while (fuzz_next(&rd, &ctrl, &msg, &len)) {
        Siam__V1__EmbeddingSet *q = siam__v1__embedding_set__unpack(NULL, len, msg);
        if (q && q->n_groups <= SIAM_SET_LOSS_MAX_N) {
            double n = (double)q->n_groups, cost = n * n * (cubic ? n : 16.0);
            if (work + cost > WORK_BUDGET) {
                siam__v1__embedding_set__free_unpacked(q, NULL);
                continue; /* see WORK_BUDGET */
            }
            work += cost;
        }
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
        rc = siam_service_train_set(svc, tsp, msg, len, &resp, &st);
        fuzz_check_outcome(rc, &st, &resp, "train_set");
        if (!q)
            FUZZ_CHECK(rc == SIAM_RPC_INVALID_ARGUMENT, "undecodable bytes answered %s",
                       siam_rpc_code_name(rc));
        if (rc == SIAM_RPC_OK) {
            FUZZ_CHECK(q != NULL, "the service decoded what protobuf-c does not");
            FUZZ_CHECK(isfinite(q->progress) && q->progress >= 0.0f && q->progress <= 1.0f,
                       "progress %g answered OK", (double)q->progress);
            check_result(q, &resp);
            ok++;
            if (tsp) {
                FUZZ_CHECK(ts.batches == before.batches + 1 &&
                               ts.pairs == before.pairs + q->n_groups,
                           "stream counters %llu/%llu after %llu/%llu + %zu images",
                           (unsigned long long)ts.batches, (unsigned long long)ts.pairs,
                           (unsigned long long)before.batches, (unsigned long long)before.pairs,
                           q->n_groups);
                FUZZ_CHECK(ts.dim == q->dim, "stream dim %u after a set of dim %u", ts.dim, q->dim);
                FUZZ_CHECK(ts.live == (siam_service_averaging(svc) != NULL),
                           "stream live %d, averaging %s", ts.live,
                           siam_service_averaging(svc) ? "on" : "off");
            }
        } else {
            FUZZ_CHECK(
                rc == SIAM_RPC_INVALID_ARGUMENT ||
                    (rc == SIAM_RPC_RESOURCE_EXHAUSTED && q && q->n_groups > SIAM_SET_LOSS_MAX_N) ||
                    (rc == SIAM_RPC_FAILED_PRECONDITION && q &&
                     !siam_encoding_name((int)q->encoding)),
                "train_set failed with %s: %s", siam_rpc_code_name(rc), st.msg);
            FUZZ_CHECK(ts.dim == before.dim && ts.batches == before.batches &&
                           ts.pairs == before.pairs &&
                           memcmp(&ts.loss_sum, &before.loss_sum, sizeof ts.loss_sum) == 0 &&
                           ts.live == before.live,
                       "a failed set changed the stream");
            if (before.batches != 0 || !q)
                FUZZ_CHECK(strcmp(before.worker_id, ts.worker_id) == 0,
                           "a failed set renamed the stream '%s' -> '%s'", before.worker_id,
                           ts.worker_id);
        }
        FUZZ_CHECK(strlen(ts.worker_id) < sizeof ts.worker_id, "stream name unterminated");
        siam__v1__embedding_set__free_unpacked(q, NULL);
        siam_rpc_buf_free(&resp);
        FUZZ_CHECK(siam_service_global_step(svc) == ok, "global step %llu after %llu OK sets",
                   (unsigned long long)siam_service_global_step(svc), (unsigned long long)ok);
    }
    siam_service_train_end(svc, &ts);
    check_status(svc, loss);
    siam_service_free(svc);
    return 0;
}
