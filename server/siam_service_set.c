/* siam_service_set: TrainSet, one set: validate, the set loss with in-batch mining
 * (lib/nn/siam_set_loss, the service's configured loss as in effect at the worker's progress),
 * encode loss, gradients and mining. */
#include "siam_service_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_encoding.h"
#include "siam_log.h"

#include "siam/v1/siam.pb-c.h"

static int validate_set(const Siam__V1__EmbeddingSet *q, const siam_train_stream *ts,
                        siam_rpc_status *st) {
    int rc = svc_check_dim(q->dim, st);
    if (rc)
        return rc;
    if (ts && ts->dim != 0 && q->dim != ts->dim)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "dim changed from %u to %u within one stream", ts->dim, q->dim);
    if (q->n_groups < 2)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "groups has %zu value%s, expected n >= 2 (one group id per "
                                   "embedding; a set needs a pair)",
                                   q->n_groups, q->n_groups == 1 ? "" : "s");
    /* before the embeddings count: the limit is what the message must tell a worker whose sets
     * are too large, and n * dim below cannot overflow once n and dim are bounded */
    if (q->n_groups > SIAM_SET_LOSS_MAX_N)
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "groups has %zu values: sets of at most SIAM_SET_LOSS_MAX_N = "
                                   "%d embeddings are accepted (the loss holds two n x n "
                                   "matrices); send smaller sets",
                                   q->n_groups, SIAM_SET_LOSS_MAX_N);
    /* isfinite first: an ordered comparison with NaN would raise FE_INVALID */
    if (!isfinite(q->progress) || q->progress < 0.0f || q->progress > 1.0f)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "progress is %g, expected 0..1 (the fraction of the worker's "
                                   "training done)",
                                   (double)q->progress);
    if ((rc = svc_check_encoding((int)q->encoding, st)) != SIAM_RPC_OK)
        return rc;
    if ((int)q->encoding != SIAM_ENC_FP32) /* the packed embeddings are decoded and checked later */
        return SIAM_RPC_OK;
    if ((rc = svc_decode_field(SIAM_ENC_FP32, "embeddings", "embedding", q->n_embeddings,
                               q->embeddings_packed, NULL, q->n_embeddings_scales, 0, q->dim, NULL,
                               st)))
        return rc;
    size_t want = q->n_groups * q->dim;
    if (q->n_embeddings != want)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "embeddings has %zu floats, expected n*dim = %zu*%u = %zu "
                                   "(n = number of groups)",
                                   q->n_embeddings, q->n_groups, q->dim, want);
    return svc_check_finite_rows("embeddings", "embedding", q->embeddings, want, q->dim, st);
}

/* Why a degenerate set trained nothing, for MiningStats.note. */
static void degenerate_note(char *note, size_t cap, const siam_set_loss_stats *s, size_t n) {
    if (s->neg_pairs == 0)
        snprintf(note, cap,
                 "degenerate set: all %zu embeddings share one group id, so there is no negative "
                 "pair and no triplet; loss 0 and zero gradients (send sets with two or more "
                 "groups)",
                 n);
    else
        snprintf(note, cap,
                 "degenerate set: all %zu group ids differ, so there is no positive pair and no "
                 "triplet; loss 0 and zero gradients (send sets with two or more images of a "
                 "group, e.g. P x K sampling)",
                 n);
}

/* Index of the first non-finite float in v[n], or n. */
static size_t first_non_finite(const float *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return i;
    return n;
}

int siam_service_train_set(siam_service *svc, siam_train_stream *ts, const uint8_t *req, size_t len,
                           siam_rpc_buf *resp, siam_rpc_status *st) {
    int rc = svc_begin(svc, resp, st);
    if (rc)
        return rc;
    decode_alloc da;
    Siam__V1__EmbeddingSet *q = (Siam__V1__EmbeddingSet *)svc_decode(
        &siam__v1__embedding_set__descriptor, &da, req, len, st);
    if (!q)
        return st->code;
    char id[sizeof ts->worker_id];
    svc_copy_name(id, sizeof id, q->worker_id && q->worker_id[0] ? q->worker_id : "anonymous");
    if (ts && ts->batches == 0) /* named even if this first set fails, for the server's log */
        memcpy(ts->worker_id, id, sizeof id);
    rc = validate_set(q, ts, st);
    if (rc) {
        siam__v1__embedding_set__free_unpacked(q, &da.base);
        return rc;
    }

    int n = (int)q->n_groups, dim = (int)q->dim; /* both bounded by 4096 above */
    size_t nd = (size_t)n * (size_t)dim;
    int enc = (int)q->encoding;
    /* the gradients, and the decoded embeddings when they came packed */
    float *grad = malloc((enc == SIAM_ENC_FP32 ? nd : 2 * nd) * sizeof *grad);
    if (!grad) {
        siam__v1__embedding_set__free_unpacked(q, &da.base);
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "out of memory for the gradients of a set of %d x %d", n, dim);
    }
    const float *emb = q->embeddings;
    if (enc != SIAM_ENC_FP32) {
        if ((rc = svc_decode_field(enc, "embeddings", "embedding", q->n_embeddings,
                                   q->embeddings_packed, q->embeddings_scales,
                                   q->n_embeddings_scales, (size_t)n, q->dim, grad + nd, st))) {
            free(grad);
            siam__v1__embedding_set__free_unpacked(q, &da.base);
            return rc;
        }
        emb = grad + nd;
    }
    /* one setting for the whole set; facenet: semi-hard or batch-hard by the worker's progress */
    siam_set_loss_config all = siam_service_set_loss(svc);
    siam_set_loss_config cfg = siam_set_loss_at(&all, q->progress);
    siam_set_loss_stats ms;
    siam_error err = {0};
    float loss = 0.0f;
    rc = siam_set_loss(&loss, grad, &ms, emb, q->groups, n, dim, &cfg, &err);
    if (rc) {
        /* validation above covers every argument siam_set_loss refuses: only memory is left */
        int code = rc == SIAM_ERR_NOMEM ? SIAM_RPC_RESOURCE_EXHAUSTED : SIAM_RPC_INTERNAL;
        rc = siam_rpc_status_set(st, code, "set of %d x %d: %s", n, dim, err.msg);
        free(grad);
        siam__v1__embedding_set__free_unpacked(q, &da.base);
        return rc;
    }
    size_t bad = isfinite(loss) ? first_non_finite(grad, nd) : 0;
    if (!isfinite(loss) || bad < nd) {
        /* finite but huge embeddings: a distance or its square overflows float */
        if (!isfinite(loss))
            rc = siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                     "loss is %g: embeddings too large for float (mean norm %g)",
                                     (double)loss, ms.mean_norm);
        else
            rc = siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                     "grad[%zu] is %g (embedding %zu): embeddings too large for "
                                     "float (mean norm %g)",
                                     bad, (double)grad[bad], bad / (size_t)dim, ms.mean_norm);
        free(grad);
        siam__v1__embedding_set__free_unpacked(q, &da.base);
        return rc;
    }

    char note[256] = "";
    if (ms.degenerate)
        degenerate_note(note, sizeof note, &ms, (size_t)n);
    Siam__V1__MiningStats m = SIAM__V1__MINING_STATS__INIT;
    m.positive_pairs = (uint64_t)ms.pos_pairs;
    m.negative_pairs = (uint64_t)ms.neg_pairs;
    m.triplets = (uint64_t)ms.triplets;
    m.terms = (uint64_t)ms.terms;
    m.active = (uint64_t)ms.active;
    m.active_fraction = (float)ms.frac_active;
    m.hardest_positive = (float)ms.hardest_pos;
    m.hardest_negative = (float)ms.hardest_neg;
    m.mean_norm = (float)ms.mean_norm;
    m.degenerate = ms.degenerate != 0;
    m.note = note;
    Siam__V1__SetResult r = SIAM__V1__SET_RESULT__INIT;
    r.step = q->step;
    r.loss = loss;
    r.mining = &m;
    if (enc == SIAM_ENC_FP32)
        r.n_grad = nd, r.grad = grad;
    else
        rc = svc_encode_field(enc, grad, (size_t)n, q->dim, &r.grad_packed, &r.grad_scales,
                              &r.n_grad_scales, st);
    if (rc == SIAM_RPC_OK)
        rc = svc_encode(&r.base, "SetResult", resp, st);
    free(r.grad_packed.data);
    free(r.grad_scales);
    free(grad);
    if (rc) {
        siam__v1__embedding_set__free_unpacked(q, &da.base);
        return rc;
    }

    svc_answered(svc, ts, id, q->dim, (uint64_t)n, loss);
    if (ts) { /* NULL: a single call outside a stream (tests, the benchmark) */
        ts->win_sets++;
        ts->win_degenerate += ms.degenerate != 0;
        ts->win_active += ms.active;
        ts->win_loss += loss;
        ts->win_active_frac += ms.frac_active;
        ts->win_norm += ms.mean_norm;
        if (!ms.degenerate)
            ts->win_hardest_neg += ms.hardest_neg;
    }
    siam__v1__embedding_set__free_unpacked(q, &da.base);
    return SIAM_RPC_OK;
}
