/* siam_service: decode, validate, compute with lib/nn/siam_loss, encode. No transport, no printing:
 * every outcome is a status code with a message that names the field and the value. */
#include "siam_service.h"

#include <limits.h>
#include <pthread.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_log.h"
#include "siam_wire.h"

#include "grpc/health/v1/health.pb-c.h"
#include "siam/v1/siam.pb-c.h"

/* One worker the server has seen (for Status). */
typedef struct {
    char id[128];
    double last_seen; /* siam_now() of its last batch */
    uint64_t pairs_trained;
} siam_worker_record;

struct siam_service {
    float margin;               /* contrastive margin m (> 0) */
    siam_label_convention conv; /* which pairs label 1 marks */
    float threshold;            /* Similarity's same/different threshold; m/2 by default */
    const char *version;        /* reported by Status */

    /* mutable state, guarded by lock */
    pthread_mutex_t lock;
    uint64_t global_step; /* batches answered, all workers */
    siam_worker_record workers[SIAM_SERVICE_MAX_WORKERS];
    int n_workers;
    int table_level;        /* fill thresholds of the worker table logged (0..4) */
    double refused_logged;  /* siam_now() of the last "not listed" line */
    unsigned refused_since; /* names not listed since that line */

    /* weight averaging and the global model (siam_service_start_averaging); NULL before */
    siam_averaging *avg;
    /* how SyncWeights answers reach their caller (siam-server: siam_rpc_reply_send) */
    void (*sync_reply)(void *waiter, siam_rpc_buf *resp, const siam_rpc_status *st);
    /* whether a SyncWeights caller has gone (siam-server: siam_rpc_reply_cancelled); may be NULL */
    int (*sync_cancelled)(void *waiter);
    /* the global model in inference mode, for Similarity with images; guarded by model_lock */
    pthread_mutex_t model_lock;
    siam_model *model;
    uint64_t model_version; /* of the averaging parameters it holds */

    /* the server's checkpoints (siam_service_checkpoint_*), guarded by lock */
    char ckpt_path[4096]; /* the newest written; "" before */
    uint64_t ckpt_round;
    double ckpt_time;
    uint64_t ckpt_failures;
    uint64_t ckpt_failed_round;
    double ckpt_failed_time;
    char ckpt_error[SIAM_ERROR_MSG_MAX]; /* the newest failure's message; "" before */
};

/* ------------------------------------------------------------------------------------------ */
/* Decoding: an allocator that remembers whether malloc failed, so that an out-of-memory unpack
 * is reported as RESOURCE_EXHAUSTED instead of as a malformed message. */

typedef struct {
    ProtobufCAllocator base;
    int failed;
} decode_alloc;

static void *decode_alloc_fn(void *data, size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p)
        ((decode_alloc *)data)->failed = 1;
    return p;
}

static void decode_free_fn(void *data, void *p) {
    (void)data;
    free(p);
}

static void decode_alloc_init(decode_alloc *a) {
    a->base.alloc = decode_alloc_fn;
    a->base.free = decode_free_fn;
    a->base.allocator_data = a;
    a->failed = 0;
}

/* The status of a failed unpack of message type `name` from len bytes. */
static int decode_failed(const decode_alloc *a, const char *name, size_t len, siam_rpc_status *st) {
    if (a->failed)
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "out of memory decoding %s (%zu bytes)", name, len);
    return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                               "malformed %s: not a valid protobuf message", name);
}

/* unpack never reads data when len is 0, but keep it non-NULL all the same */
static const uint8_t *request_bytes(const uint8_t *req, size_t len) {
    static const uint8_t empty[1] = {0};
    return req && len ? req : empty;
}

/* Unpacks a request of type d with da (initialised here; free the message with da->base);
 * NULL with *st set when it is malformed or memory runs out. */
static ProtobufCMessage *decode(const ProtobufCMessageDescriptor *d, decode_alloc *da,
                                const uint8_t *req, size_t len, siam_rpc_status *st) {
    decode_alloc_init(da);
    ProtobufCMessage *m = protobuf_c_message_unpack(d, &da->base, len, request_bytes(req, len));
    if (!m)
        decode_failed(da, d->short_name, len, st);
    return m;
}

/* Packs msg into a malloc'd resp; INTERNAL or RESOURCE_EXHAUSTED on failure. */
static int encode(const ProtobufCMessage *msg, const char *name, siam_rpc_buf *resp,
                  siam_rpc_status *st) {
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "out of memory encoding %s (%zu bytes)", name, len);
    size_t n = protobuf_c_message_pack(msg, buf);
    if (n != len) {
        free(buf);
        return siam_rpc_status_set(st, SIAM_RPC_INTERNAL,
                                   "encoding %s wrote %zu bytes, expected %zu", name, n, len);
    }
    resp->data = buf;
    resp->len = len;
    return siam_rpc_status_set(st, SIAM_RPC_OK, "%s", "");
}

/* Every call starts with an empty response, so the caller can free it on any path. */
static int begin(siam_service *svc, siam_rpc_buf *resp, siam_rpc_status *st) {
    if (resp) {
        resp->data = NULL;
        resp->len = 0;
    }
    if (!svc || !resp)
        return siam_rpc_status_set(st, SIAM_RPC_INTERNAL, "service called without %s",
                                   !svc ? "a service" : "a response buffer");
    return SIAM_RPC_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Validation shared by Train and Similarity */

static int check_dim(uint32_t dim, siam_rpc_status *st) {
    if (dim < 1 || dim > SIAM_SERVICE_MAX_DIM)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT, "dim is %u, expected 1..%d", dim,
                                   SIAM_SERVICE_MAX_DIM);
    return SIAM_RPC_OK;
}

/* Every float of v (n = batch x dim) finite. */
static int check_finite(const char *field, const float *v, size_t n, uint32_t dim,
                        siam_rpc_status *st) {
    /* the common case in one vectorised pass: OR of "exponent all ones" (NaN or Inf) */
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], sizeof u);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    if (!bad)
        return SIAM_RPC_OK;
    for (size_t i = 0; i < n; i++) /* find the first one for the message */
        if (!isfinite(v[i]))
            return siam_rpc_status_set(
                st, SIAM_RPC_INVALID_ARGUMENT,
                "%s[%zu] is %g (pair %zu, component %zu); every float must be finite", field, i,
                (double)v[i], i / dim, i % dim);
    return SIAM_RPC_OK;
}

/* Copies a client-chosen name into dst[cap] so that it is safe to echo in Status (proto3
 * strings must be valid UTF-8) and in log lines: invalid UTF-8 and control characters become
 * '?', and a name too long for dst is cut at a character boundary. */
static void copy_name(char *dst, size_t cap, const char *src) {
    const unsigned char *s = (const unsigned char *)src;
    size_t o = 0;
    while (*s) {
        size_t n = 0; /* length of the valid sequence at s, 0 if invalid */
        unsigned c = s[0];
        if (c >= 0x20 && c < 0x7f)
            n = 1;
        else if (c >= 0xc2 && c <= 0xdf)
            n = 2;
        else if (c >= 0xe0 && c <= 0xef)
            n = 3;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 4;
        for (size_t k = 1; k < n; k++)
            if ((s[k] & 0xc0) != 0x80)
                n = 0; /* also stops at the terminating NUL */
        if (n == 3 && ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0)))
            n = 0; /* overlong or surrogate */
        if (n == 4 && ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90)))
            n = 0; /* overlong or above U+10FFFF */
        size_t out = n ? n : 1;
        if (o + out >= cap)
            break;
        if (n)
            memcpy(dst + o, s, n);
        else
            dst[o] = '?';
        o += out;
        s += n ? n : 1;
    }
    dst[o] = '\0';
}

/* ------------------------------------------------------------------------------------------ */

int siam_service_create(siam_service **out, float margin, siam_label_convention conv,
                        float threshold, const char *version, siam_error *err) {
    if (!out)
        return siam_error_set(err, SIAM_ERR_ARG, "siam_service_create: out is NULL");
    *out = NULL;
    if (!isfinite(margin) || !(margin > 0.0f))
        return siam_error_set(err, SIAM_ERR_ARG, "margin is %g, expected a finite value > 0",
                              (double)margin);
    if (conv != SIAM_LABELS_SIMILAR && conv != SIAM_LABELS_DISSIMILAR)
        return siam_error_set(err, SIAM_ERR_ARG, "label convention is %d, expected 0 or 1",
                              (int)conv);
    if (isnan(threshold) || isinf(threshold))
        return siam_error_set(err, SIAM_ERR_ARG, "threshold is %g, expected a finite value",
                              (double)threshold);
    siam_service *svc = calloc(1, sizeof *svc); /* the worker table is large for a stack */
    if (!svc)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for the service");
    svc->margin = margin;
    svc->conv = conv;
    svc->threshold = threshold > 0.0f ? threshold : margin / 2.0f;
    svc->version = version ? version : "";
    int rc = pthread_mutex_init(&svc->lock, NULL);
    if (rc == 0 && (rc = pthread_mutex_init(&svc->model_lock, NULL)) != 0)
        pthread_mutex_destroy(&svc->lock);
    if (rc != 0) {
        free(svc);
        return siam_error_set(err, SIAM_ERR_NOMEM, "pthread_mutex_init failed (error %d)", rc);
    }
    *out = svc;
    return SIAM_OK;
}

void siam_service_free(siam_service *svc) {
    if (!svc)
        return;
    siam_averaging_free(svc->avg);
    siam_model_free(svc->model);
    pthread_mutex_destroy(&svc->model_lock);
    pthread_mutex_destroy(&svc->lock);
    free(svc);
}

float siam_service_margin(const siam_service *svc) {
    return svc->margin;
}

float siam_service_threshold(const siam_service *svc) {
    return svc->threshold;
}

siam_label_convention siam_service_convention(const siam_service *svc) {
    return svc->conv;
}

uint64_t siam_service_global_step(siam_service *svc) {
    pthread_mutex_lock(&svc->lock);
    uint64_t step = svc->global_step;
    pthread_mutex_unlock(&svc->lock);
    return step;
}

int siam_service_worker_count(siam_service *svc) {
    pthread_mutex_lock(&svc->lock);
    int n = svc->n_workers;
    pthread_mutex_unlock(&svc->lock);
    return n;
}

siam_averaging *siam_service_averaging(siam_service *svc) {
    return svc->avg;
}

/* ------------------------------------------------------------------------------------------ */
/* Train */

static int validate_batch(const Siam__V1__EmbeddingBatch *b, const siam_train_stream *ts,
                          siam_rpc_status *st) {
    int rc = check_dim(b->dim, st);
    if (rc)
        return rc;
    if (ts && ts->dim != 0 && b->dim != ts->dim)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "dim changed from %u to %u within one stream", ts->dim, b->dim);
    if (b->n_labels == 0)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT, "empty batch: labels is empty");
    /* B is an int for lib/nn/siam_loss, and the answer's B + 2 B dim floats must be addressable */
    size_t max_batch = SIZE_MAX / sizeof(float) / (2u * b->dim + 1u);
    if (max_batch > (size_t)INT_MAX)
        max_batch = (size_t)INT_MAX;
    if (b->n_labels > max_batch)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "labels has %zu values, expected at most %zu at dim %u",
                                   b->n_labels, max_batch, b->dim);
    size_t want = b->n_labels * b->dim;
    const char *names[2] = {"left", "right"};
    size_t have[2] = {b->n_left, b->n_right};
    for (int s = 0; s < 2; s++)
        if (have[s] != want)
            return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                       "%s has %zu floats, expected batch*dim = %zu*%u = %zu "
                                       "(batch = number of labels)",
                                       names[s], have[s], b->n_labels, b->dim, want);
    for (size_t i = 0; i < b->n_labels; i++)
        if (b->labels[i] > 1)
            return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                       "labels[%zu] is %u, expected 0 or 1", i, b->labels[i]);
    if (check_finite("left", b->left, want, b->dim, st) ||
        check_finite("right", b->right, want, b->dim, st))
        return SIAM_RPC_INVALID_ARGUMENT;
    return SIAM_RPC_OK;
}

_Static_assert(sizeof(((siam_worker_record *)0)->id) == sizeof(((siam_train_stream *)0)->worker_id),
               "worker names are copied between the stream and the worker table");

/* The record of worker `id` in the table, added if new. When the table is full, the record
 * quiet longest is reused if it is quiet for longer than the averaging's expiry (not seen by
 * Train or SyncWeights and not live in the averaging, see SIAM_AVERAGING_MAX_WORKERS);
 * otherwise NULL, with a warning at most every 5 s counting the names not listed. The fill is
 * logged at 50/75/90/100 %. Caller holds svc->lock (the averaging's lock is taken inside). */
static siam_worker_record *worker_record(siam_service *svc, const char *id, double now) {
    for (int i = 0; i < svc->n_workers; i++)
        if (strcmp(svc->workers[i].id, id) == 0)
            return &svc->workers[i];
    siam_worker_record *w = NULL;
    if (svc->n_workers < SIAM_SERVICE_MAX_WORKERS) {
        w = &svc->workers[svc->n_workers++];
        static const int pct[4] = {50, 75, 90, 100};
        while (svc->table_level < 4 &&
               svc->n_workers * 100 >= pct[svc->table_level] * SIAM_SERVICE_MAX_WORKERS) {
            LOG_WARN("service",
                     "Status worker table at %d%%: %d of %d names (the newest '%s'); names quiet "
                     "for longer than the expiry are replaced, beyond that new names are not "
                     "listed",
                     pct[svc->table_level], svc->n_workers, SIAM_SERVICE_MAX_WORKERS, id);
            svc->table_level++;
        }
    } else {
        double expiry = svc->avg ? siam_averaging_expiry(svc->avg) : SIAM_AVERAGING_DEFAULT_EXPIRY;
        for (int i = 0; i < svc->n_workers; i++) {
            siam_worker_record *r = &svc->workers[i];
            int live = 0;
            uint64_t last_round = 0;
            if (now - r->last_seen <= expiry || (w && r->last_seen >= w->last_seen))
                continue;
            if (svc->avg)
                siam_averaging_worker(svc->avg, r->id, &live, &last_round);
            if (!live)
                w = r;
        }
        if (!w) {
            svc->refused_since++;
            if (svc->refused_logged == 0 || now - svc->refused_logged >= 5.0) {
                LOG_WARN("service",
                         "Status worker table full (%d names, none quiet for %g s): %u new "
                         "name(s) not listed since the last such line, the latest '%s'",
                         SIAM_SERVICE_MAX_WORKERS, expiry, svc->refused_since, id);
                svc->refused_logged = now;
                svc->refused_since = 0;
            }
            return NULL;
        }
        LOG_DEBUG("service", "Status lists %s in place of %s (not seen for %g s)", id, w->id,
                  now - w->last_seen);
    }
    memset(w, 0, sizeof *w);
    snprintf(w->id, sizeof w->id, "%s", id);
    w->last_seen = now;
    return w;
}

int siam_service_train(siam_service *svc, siam_train_stream *ts, const uint8_t *req, size_t len,
                       siam_rpc_buf *resp, siam_rpc_status *st) {
    int rc = begin(svc, resp, st);
    if (rc)
        return rc;
    decode_alloc da;
    Siam__V1__EmbeddingBatch *b = (Siam__V1__EmbeddingBatch *)decode(
        &siam__v1__embedding_batch__descriptor, &da, req, len, st);
    if (!b)
        return st->code;
    char id[sizeof ts->worker_id];
    copy_name(id, sizeof id, b->worker_id && b->worker_id[0] ? b->worker_id : "anonymous");
    if (ts && ts->batches == 0) /* named even if this first batch fails, for the server's log */
        memcpy(ts->worker_id, id, sizeof id);
    rc = validate_batch(b, ts, st);
    if (rc) {
        siam__v1__embedding_batch__free_unpacked(b, &da.base);
        return rc;
    }

    int B = (int)b->n_labels, dim = (int)b->dim;
    size_t n = (size_t)B * (size_t)dim;
    float *out = malloc(((size_t)B + 2 * n) * sizeof *out);
    if (!out) {
        siam__v1__embedding_batch__free_unpacked(b, &da.base);
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "out of memory for the answer to a batch of %d x %d", B, dim);
    }
    float *dist = out, *grad_left = out + B, *grad_right = out + B + n;
    float loss = siam_contrastive_forward(dist, b->left, b->right, b->labels, B, dim, svc->margin,
                                          svc->conv);
    if (!isfinite(loss)) {
        /* finite but huge embeddings: D or D^2 overflows float */
        int worst = 0;
        for (int i = 1; i < B; i++)
            if (!(dist[i] <= dist[worst]))
                worst = i;
        rc = siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                 "loss is %g: embeddings too large for float (pair %d: distance "
                                 "%g between left and right)",
                                 (double)loss, worst, (double)dist[worst]);
        free(out);
        siam__v1__embedding_batch__free_unpacked(b, &da.base);
        return rc;
    }
    siam_contrastive_backward(grad_left, grad_right, b->left, b->right, dist, b->labels, B, dim,
                              svc->margin, svc->conv);

    Siam__V1__BatchResult r = SIAM__V1__BATCH_RESULT__INIT;
    r.step = b->step;
    r.loss = loss;
    r.n_distances = (size_t)B, r.distances = dist;
    r.n_grad_left = n, r.grad_left = grad_left;
    r.n_grad_right = n, r.grad_right = grad_right;
    rc = encode(&r.base, "BatchResult", resp, st);
    free(out);
    if (rc) {
        siam__v1__embedding_batch__free_unpacked(b, &da.base);
        return rc;
    }

    if (ts) {
        if (ts->batches == 0)
            ts->dim = b->dim; /* fixed by the first good batch */
        ts->batches++;
        ts->pairs += (uint64_t)B;
        ts->loss_sum += (double)loss * B;
    }
    if (ts && !ts->live && svc->avg) { /* a named stream: its worker is live for averaging */
        siam_averaging_stream(svc->avg, ts->worker_id, +1);
        ts->live = 1;
    }
    double now = siam_now();
    pthread_mutex_lock(&svc->lock);
    svc->global_step++;
    siam_worker_record *w = worker_record(svc, id, now);
    if (w) {
        w->last_seen = now;
        w->pairs_trained += (uint64_t)B;
    }
    pthread_mutex_unlock(&svc->lock);
    siam__v1__embedding_batch__free_unpacked(b, &da.base);
    return SIAM_RPC_OK;
}

void siam_service_train_end(siam_service *svc, siam_train_stream *ts) {
    if (svc && ts && ts->live && svc->avg) {
        siam_averaging_stream(svc->avg, ts->worker_id, -1);
        ts->live = 0;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* SyncWeights and the global model */

/* One waiting SyncWeights call. */
typedef struct {
    siam_service *svc;
    void *waiter;
} sync_call;

static void sync_answer(void *waiter, const siam_averaging_answer *a) {
    sync_call *c = waiter;
    siam_rpc_status st = {SIAM_RPC_OK, ""};
    siam_rpc_buf resp = {0};
    if (a->code != SIAM_RPC_OK) {
        siam_rpc_status_set(&st, a->code, "%s", a->msg);
    } else {
        Siam__V1__GlobalWeights g = SIAM__V1__GLOBAL_WEIGHTS__INIT;
        g.round = a->round;
        g.n_params = a->n_params;
        g.params = (float *)a->params;
        g.model_spec = (char *)a->spec;
        g.workers = a->workers;
        g.samples = a->samples;
        g.late = a->late != 0;
        encode(&g.base, "GlobalWeights", &resp, &st);
    }
    c->svc->sync_reply(c->waiter, st.code == SIAM_RPC_OK ? &resp : NULL, &st);
    free(c);
}

/* cfg.gone of the averaging: whether the caller of a waiting SyncWeights call has gone. */
static int sync_gone(void *waiter) {
    sync_call *c = waiter;
    return c->svc->sync_cancelled && c->svc->sync_cancelled(c->waiter);
}

void siam_service_set_sync_cancelled(siam_service *svc, int (*cancelled)(void *waiter)) {
    svc->sync_cancelled = cancelled;
}

int siam_service_start_averaging(
    siam_service *svc, int min_workers, double sync_timeout,
    void (*on_round)(void *ctx, const siam_averaging_answer *a), void *round_ctx,
    void (*reply)(void *waiter, siam_rpc_buf *resp, const siam_rpc_status *st), siam_error *err) {
    if (!svc || !reply)
        return siam_error_set(err, SIAM_ERR_ARG, "averaging needs a service and a reply function");
    siam_averaging_config cfg = {min_workers, sync_timeout, sync_answer,
                                 on_round,    round_ctx,    sync_gone};
    svc->sync_reply = reply;
    return siam_averaging_create(&svc->avg, &cfg, err);
}

/* Makes spec the global model with params (model_lock held): checks the parameter count against
 * the spec before anything is allocated for it (a client's spec may describe any size), builds
 * the inference model, and hands the parameters to the averaging. The inference model is kept
 * only when the averaging took the model, so a refused spec leaves no trace. On failure st
 * (code) or err explains. */
static int adopt_model(siam_service *svc, const char *spec, const float *params, size_t n,
                       uint64_t round, siam_rpc_status *st, siam_error *err) {
    size_t want = 0;
    if (siam_model_spec_parse(spec, NULL, &want, err))
        return siam_rpc_status_set(st,
                                   err->code == SIAM_ERR_NOMEM ? SIAM_RPC_RESOURCE_EXHAUSTED
                                                               : SIAM_RPC_INVALID_ARGUMENT,
                                   "model_spec '%.300s': %s", spec, err->msg);
    if (want != n) {
        siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                            "params has %zu floats, expected %zu for model '%.300s'", n, want,
                            spec);
        siam_error_set(err, SIAM_ERR_MISMATCH, "%s", st->msg);
        return st->code;
    }
    siam_model *m = NULL;
    if (siam_model_create(&m, spec, 0, err))
        return siam_rpc_status_set(st,
                                   err->code == SIAM_ERR_NOMEM ? SIAM_RPC_RESOURCE_EXHAUSTED
                                                               : SIAM_RPC_INVALID_ARGUMENT,
                                   "model_spec '%.300s': %s", spec, err->msg);
    int rc = SIAM_RPC_OK;
    if (siam_averaging_set_model(svc->avg, siam_model_spec(m), params, n, round, err)) {
        rc = siam_rpc_status_set(st, SIAM_RPC_FAILED_PRECONDITION, "%s", err->msg);
    }
    if (rc == SIAM_RPC_OK && !svc->model) {
        svc->model = m; /* its parameters are copied in by the first image Similarity */
        svc->model_version = 0;
    } else {
        siam_model_free(m);
    }
    return rc;
}

int siam_service_set_model(siam_service *svc, const char *spec, const float *params, size_t n,
                           uint64_t round, uint64_t global_step, siam_error *err) {
    if (!svc->avg)
        return siam_error_set(err, SIAM_ERR_ARG, "averaging is not started");
    siam_rpc_status st = {SIAM_RPC_OK, ""};
    pthread_mutex_lock(&svc->model_lock);
    int rc = adopt_model(svc, spec, params, n, round, &st, err);
    pthread_mutex_unlock(&svc->model_lock);
    if (rc)
        return err->code ? err->code : SIAM_ERR_MISMATCH;
    pthread_mutex_lock(&svc->lock);
    svc->global_step = global_step;
    pthread_mutex_unlock(&svc->lock);
    return SIAM_OK;
}

static void sync_fail(siam_service *svc, void *waiter, const siam_rpc_status *st) {
    if (svc && svc->sync_reply)
        svc->sync_reply(waiter, NULL, st);
}

void siam_service_sync(siam_service *svc, const uint8_t *req, size_t len, void *waiter) {
    siam_rpc_status st = {SIAM_RPC_OK, ""};
    if (!svc || !svc->avg || !svc->sync_reply) {
        siam_rpc_status_set(&st, SIAM_RPC_UNIMPLEMENTED, "this server does not average weights");
        sync_fail(svc, waiter, &st);
        return;
    }
    decode_alloc da;
    Siam__V1__WeightsUpdate *u = (Siam__V1__WeightsUpdate *)decode(
        &siam__v1__weights_update__descriptor, &da, req, len, &st);
    if (!u) {
        sync_fail(svc, waiter, &st);
        return;
    }
    char id[sizeof(((siam_worker_record *)0)->id)];
    copy_name(id, sizeof id, u->worker_id ? u->worker_id : "");
    if (!id[0])
        siam_rpc_status_set(&st, SIAM_RPC_INVALID_ARGUMENT,
                            "worker_id is empty: SyncWeights needs a name unique to each worker");
    else if (!u->model_spec || !u->model_spec[0])
        siam_rpc_status_set(&st, SIAM_RPC_INVALID_ARGUMENT, "model_spec is empty");
    else if (strlen(u->model_spec) >= SIAM_SPEC_MAX)
        siam_rpc_status_set(&st, SIAM_RPC_INVALID_ARGUMENT,
                            "model_spec has %zu bytes, expected fewer than %d",
                            strlen(u->model_spec), SIAM_SPEC_MAX);
    else if (u->n_params == 0)
        siam_rpc_status_set(&st, SIAM_RPC_INVALID_ARGUMENT, "params is empty");
    else if (u->samples > SIAM_AVERAGING_MAX_SAMPLES)
        siam_rpc_status_set(&st, SIAM_RPC_INVALID_ARGUMENT,
                            "samples is %llu, expected at most %llu (the pairs trained since the "
                            "last sync)",
                            (unsigned long long)u->samples,
                            (unsigned long long)SIAM_AVERAGING_MAX_SAMPLES);
    else
        check_finite("params", u->params, u->n_params, 1, &st);
    /* the spec as the averaging knows specs: canonical ("mlp", extra spaces), when it parses;
     * otherwise as sent (the averaging then names it in its mismatch message) */
    char spec[SIAM_SPEC_MAX] = "";
    if (st.code == SIAM_RPC_OK && siam_model_spec_parse(u->model_spec, spec, NULL, NULL))
        snprintf(spec, sizeof spec, "%s", u->model_spec);
    if (st.code == SIAM_RPC_OK && !siam_averaging_has_model(svc->avg)) {
        /* the first worker's model becomes the global model */
        siam_error err = {0};
        pthread_mutex_lock(&svc->model_lock);
        if (!siam_averaging_has_model(svc->avg) &&
            adopt_model(svc, spec, u->params, u->n_params, 0, &st, &err) == SIAM_RPC_OK)
            LOG_INFO("service", "global model from worker %s: %s (%zu parameters)", id, spec,
                     u->n_params);
        pthread_mutex_unlock(&svc->model_lock);
    }
    if (st.code != SIAM_RPC_OK) {
        siam__v1__weights_update__free_unpacked(u, &da.base);
        sync_fail(svc, waiter, &st);
        return;
    }
    double now = siam_now();
    pthread_mutex_lock(&svc->lock);
    siam_worker_record *w = worker_record(svc, id, now);
    if (w)
        w->last_seen = now;
    pthread_mutex_unlock(&svc->lock);

    sync_call *c = malloc(sizeof *c);
    if (!c) {
        siam__v1__weights_update__free_unpacked(u, &da.base);
        siam_rpc_status_set(&st, SIAM_RPC_RESOURCE_EXHAUSTED, "out of memory");
        sync_fail(svc, waiter, &st);
        return;
    }
    c->svc = svc;
    c->waiter = waiter;
    siam_averaging_update up = {id, spec, u->params, u->n_params, u->samples, u->round};
    siam_averaging_submit(svc->avg, &up, c);
    siam__v1__weights_update__free_unpacked(u, &da.base);
}

/* ------------------------------------------------------------------------------------------ */
/* Similarity */

static int validate_images(const Siam__V1__SimilarityRequest *q, size_t image_bytes,
                           siam_rpc_status *st) {
    if (q->dim || q->n_left || q->n_right)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "the request has both images and embeddings (dim %u, left %zu "
                                   "floats); give pairs one way or the other",
                                   q->dim, q->n_left);
    const char *names[2] = {"left_images", "right_images"};
    size_t have[2] = {q->left_images.len, q->right_images.len};
    for (int s = 0; s < 2; s++)
        if (have[s] == 0 || have[s] % image_bytes != 0)
            return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                       "%s has %zu bytes, expected a non-zero multiple of %zu "
                                       "(one 28x28 image of bytes per pair)",
                                       names[s], have[s], image_bytes);
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

/* Embeds the image pairs of q with the global model: emb gets (2 B, dim) floats, left images
 * first. */
static int embed_images(siam_service *svc, const Siam__V1__SimilarityRequest *q, float **emb,
                        size_t *B_out, int *dim_out, siam_rpc_status *st) {
    static const char *no_model =
        "the server has no model to embed images yet: it gets one when the first worker "
        "joins with siam-client --sync-every, or from siam-server --model or --resume; send "
        "embeddings (dim, left, right) meanwhile";
    *emb = NULL;
    if (!svc->avg || !siam_averaging_has_model(svc->avg))
        return siam_rpc_status_set(st, SIAM_RPC_FAILED_PRECONDITION, "%s", no_model);
    pthread_mutex_lock(&svc->model_lock);
    int rc = SIAM_RPC_OK;
    siam_error err = {0};
    siam_averaging_info info;
    siam_averaging_get_info(svc->avg, &info);
    if (!svc->model) {
        rc = siam_rpc_status_set(st, SIAM_RPC_FAILED_PRECONDITION, "%s", no_model);
    } else if (svc->model_version != info.version) {
        if (siam_averaging_copy(svc->avg, siam_model_params(svc->model),
                                siam_model_num_params(svc->model), NULL, &svc->model_version, &err))
            rc = siam_rpc_status_set(st, SIAM_RPC_INTERNAL, "global model: %s", err.msg);
    }
    size_t in = rc ? 0 : (size_t)siam_model_input_size(svc->model);
    if (!rc && (rc = validate_images(q, in, st)) == SIAM_RPC_OK) {
        size_t B = q->left_images.len / in, n = 2 * B;
        int dim = siam_model_output_size(svc->model);
        float *x = malloc(n * in * sizeof *x);
        float *out = malloc(n * (size_t)dim * sizeof *out);
        if (!x || !out) {
            free(out);
            rc = siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                     "out of memory embedding %zu image pairs", B);
        } else {
            for (size_t i = 0; i < B * in; i++) {
                x[i] = (float)q->left_images.data[i] / 255.0f;
                x[B * in + i] = (float)q->right_images.data[i] / 255.0f;
            }
            if (siam_model_embed(svc->model, x, n, out, &err)) {
                free(out);
                rc = siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED, "embedding: %s", err.msg);
            } else {
                *emb = out;
                *B_out = B;
                *dim_out = dim;
            }
        }
        free(x);
    }
    pthread_mutex_unlock(&svc->model_lock);
    return rc;
}

static int validate_similarity(const Siam__V1__SimilarityRequest *q, siam_rpc_status *st) {
    if (check_dim(q->dim, st))
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
    if (check_finite("left", q->left, q->n_left, q->dim, st) ||
        check_finite("right", q->right, q->n_right, q->dim, st))
        return SIAM_RPC_INVALID_ARGUMENT;
    return SIAM_RPC_OK;
}

int siam_service_similarity(siam_service *svc, const uint8_t *req, size_t len, siam_rpc_buf *resp,
                            siam_rpc_status *st) {
    int rc = begin(svc, resp, st);
    if (rc)
        return rc;
    decode_alloc da;
    Siam__V1__SimilarityRequest *q = (Siam__V1__SimilarityRequest *)decode(
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
    rc = encode(&r.base, "SimilarityResponse", resp, st);
    free(f);
    free(same);
    free(emb);
    siam__v1__similarity_request__free_unpacked(q, &da.base);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Status */

void siam_service_checkpoint_written(siam_service *svc, const char *path, uint64_t round,
                                     double unix_time) {
    if (!svc)
        return;
    pthread_mutex_lock(&svc->lock);
    /* the path is the operator's, but Status must carry valid UTF-8 */
    copy_name(svc->ckpt_path, sizeof svc->ckpt_path, path ? path : "");
    svc->ckpt_round = round;
    svc->ckpt_time = unix_time;
    pthread_mutex_unlock(&svc->lock);
}

void siam_service_checkpoint_failed(siam_service *svc, uint64_t round, double unix_time,
                                    const char *why) {
    if (!svc)
        return;
    pthread_mutex_lock(&svc->lock);
    svc->ckpt_failures++;
    svc->ckpt_failed_round = round;
    svc->ckpt_failed_time = unix_time;
    copy_name(svc->ckpt_error, sizeof svc->ckpt_error, why && why[0] ? why : "unknown error");
    pthread_mutex_unlock(&svc->lock);
}

int siam_service_status(siam_service *svc, const uint8_t *req, size_t len, siam_rpc_buf *resp,
                        siam_rpc_status *st) {
    int rc = begin(svc, resp, st);
    if (rc)
        return rc;
    decode_alloc da;
    Siam__V1__StatusRequest *q =
        (Siam__V1__StatusRequest *)decode(&siam__v1__status_request__descriptor, &da, req, len, st);
    if (!q)
        return st->code;
    siam__v1__status_request__free_unpacked(q, &da.base);

    /* snapshot under the lock, encode outside it */
    siam_worker_record *snap = NULL;
    char ckpt_path[sizeof svc->ckpt_path], ckpt_error[sizeof svc->ckpt_error];
    pthread_mutex_lock(&svc->lock);
    uint64_t global_step = svc->global_step;
    memcpy(ckpt_path, svc->ckpt_path, sizeof ckpt_path);
    memcpy(ckpt_error, svc->ckpt_error, sizeof ckpt_error);
    uint64_t ckpt_round = svc->ckpt_round, ckpt_failures = svc->ckpt_failures,
             ckpt_failed_round = svc->ckpt_failed_round;
    double ckpt_time = svc->ckpt_time, ckpt_failed_time = svc->ckpt_failed_time;
    int nw = svc->n_workers;
    if (nw > 0) {
        snap = malloc((size_t)nw * sizeof *snap);
        if (snap)
            memcpy(snap, svc->workers, (size_t)nw * sizeof *snap);
    }
    pthread_mutex_unlock(&svc->lock);
    Siam__V1__WorkerStatus *ws = nw > 0 ? malloc((size_t)nw * sizeof *ws) : NULL;
    Siam__V1__WorkerStatus **wp = nw > 0 ? malloc((size_t)nw * sizeof *wp) : NULL;
    if (nw > 0 && (!snap || !ws || !wp)) {
        free(snap);
        free(ws);
        free(wp);
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "out of memory for the status of %d workers", nw);
    }
    double now = siam_now();
    siam_averaging_info info;
    memset(&info, 0, sizeof info);
    info.min_workers = 1;
    if (svc->avg)
        siam_averaging_get_info(svc->avg, &info);
    for (int i = 0; i < nw; i++) {
        Siam__V1__WorkerStatus w = SIAM__V1__WORKER_STATUS__INIT;
        w.worker_id = snap[i].id;
        w.last_seen_seconds_ago = now > snap[i].last_seen ? now - snap[i].last_seen : 0.0;
        w.pairs_trained = snap[i].pairs_trained;
        int live = 0;
        uint64_t last_round = 0;
        if (svc->avg)
            siam_averaging_worker(svc->avg, snap[i].id, &live, &last_round);
        w.live = live != 0;
        w.last_round = last_round;
        ws[i] = w;
        wp[i] = &ws[i];
    }
    Siam__V1__StatusResponse r = SIAM__V1__STATUS_RESPONSE__INIT;
    r.version = (char *)svc->version;
    r.margin = svc->margin;
    r.label_convention = svc->conv == SIAM_LABELS_DISSIMILAR ? "dissimilar" : "similar";
    r.model_spec = info.spec;
    r.round = info.round;
    r.global_step = global_step;
    r.min_workers = (uint32_t)info.min_workers;
    r.joined_workers = (uint32_t)info.joined;
    r.waiting = info.waiting;
    r.sync_timeout_seconds = info.sync_timeout;
    r.checkpoint_path = ckpt_path;
    r.checkpoint_round = ckpt_round;
    r.checkpoint_unix_time = ckpt_time;
    r.checkpoint_failures = ckpt_failures;
    r.checkpoint_failed_round = ckpt_failed_round;
    r.checkpoint_failed_unix_time = ckpt_failed_time;
    r.checkpoint_error = ckpt_error;
    r.n_workers = (size_t)nw;
    r.workers = wp;
    rc = encode(&r.base, "StatusResponse", resp, st);
    free(snap);
    free(ws);
    free(wp);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Health */

int siam_service_health(siam_service *svc, const uint8_t *req, size_t len, siam_rpc_buf *resp,
                        siam_rpc_status *st) {
    int rc = begin(svc, resp, st);
    if (rc)
        return rc;
    decode_alloc da;
    Grpc__Health__V1__HealthCheckRequest *q = (Grpc__Health__V1__HealthCheckRequest *)decode(
        &grpc__health__v1__health_check_request__descriptor, &da, req, len, st);
    if (!q)
        return st->code;
    const char *name = q->service ? q->service : "";
    if (name[0] != '\0' && strcmp(name, SIAM_WIRE_SERVICE) != 0) {
        char shown[160];
        copy_name(shown, sizeof shown, name);
        rc = siam_rpc_status_set(st, SIAM_RPC_NOT_FOUND, "unknown service '%s'", shown);
        grpc__health__v1__health_check_request__free_unpacked(q, &da.base);
        return rc;
    }
    grpc__health__v1__health_check_request__free_unpacked(q, &da.base);
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    return encode(&r.base, "HealthCheckResponse", resp, st);
}
