/* siam_service_internal: the service struct and shared helpers, private to siam_service*.c. */
#ifndef SIAM_SERVICE_INTERNAL_H
#define SIAM_SERVICE_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "siam_gallery.h"
#include "siam_inference.h"
#include "siam_service.h"

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
    /* TrainSet's loss (siam_service_set_set_loss; default batch-hard at the margin above), read
     * under lock: the setter may run while streams are open */
    siam_set_loss_config set_cfg;

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
    /* the caller's on_round of siam_service_start_averaging (the service's own runs first) */
    void (*on_round)(void *ctx, const siam_averaging_answer *a);
    void *round_ctx;
    /* serialises adopting a first global model (--model, --resume, the first join) */
    pthread_mutex_t model_lock;
    /* the global model's newest parameters as immutable weights (NULL before a model): what
     * image Similarity embeds with and what the gallery is embedded with; weights_lock guards the
     * pointer (a reference is taken under it, the weights are read without it) */
    pthread_mutex_t weights_lock;
    siam_weights *weights;
    siam_inference *pool; /* inference replicas for image requests */
    siam_gallery *gallery;

    /* the server's checkpoints (siam_service_checkpoint_*), guarded by lock */
    char ckpt_path[4096]; /* the newest written; "" before */
    uint64_t ckpt_round;
    double ckpt_time;
    uint64_t ckpt_failures;
    uint64_t ckpt_failed_round;
    double ckpt_failed_time;
    char ckpt_error[SIAM_ERROR_MSG_MAX]; /* the newest failure's message; "" before */

    /* the server's traffic per RPC for Status (siam_service_set_traffic), guarded by lock; the
     * function itself is called outside it */
    int (*traffic)(void *ctx, siam_rpc_traffic *rows, int max);
    void *traffic_ctx;
    double traffic_since; /* siam_now() when it was set */
};

/* ---- siam_service_codec.c: decoding, encoding and the validation Train, SyncWeights and
 * Similarity share (see the definitions) ---- */

/* Decoding: an allocator that remembers whether malloc failed, so that an out-of-memory unpack
 * is reported as RESOURCE_EXHAUSTED instead of as a malformed message. */

typedef struct {
    ProtobufCAllocator base;
    int failed;
} decode_alloc;

ProtobufCMessage *svc_decode(const ProtobufCMessageDescriptor *d, decode_alloc *da,
                             const uint8_t *req, size_t len, siam_rpc_status *st);
int svc_encode(const ProtobufCMessage *msg, const char *name, siam_rpc_buf *resp,
               siam_rpc_status *st);
int svc_begin(siam_service *svc, siam_rpc_buf *resp, siam_rpc_status *st);
int svc_check_dim(uint32_t dim, siam_rpc_status *st);
int svc_check_finite(const char *field, const float *v, size_t n, uint32_t dim,
                     siam_rpc_status *st);
/* The same, naming rows `row` in the message ("pair" above, "embedding" for TrainSet). */
int svc_check_finite_rows(const char *field, const char *row, const float *v, size_t n,
                          uint32_t dim, siam_rpc_status *st);
void svc_copy_name(char *dst, size_t cap, const char *src);

/* Wire encodings (siam.v1.WireEncoding, lib/nn/siam_encoding). An encoding outside the enum is
 * FAILED_PRECONDITION naming the accepted ones. */
int svc_check_encoding(int encoding, siam_rpc_status *st);
/* One float field of a Train or TrainSet request (field "left", row "pair"): for fp32 its
 * packed bytes and scales must be empty (the repeated floats, n_floats of them, are checked by
 * the caller); otherwise the repeated floats must be empty and field_packed decodes into out
 * (rows x dim floats). INVALID_ARGUMENT naming the field otherwise. */
int svc_decode_field(int encoding, const char *field, const char *row, size_t n_floats,
                     ProtobufCBinaryData packed, const float *scales, size_t n_scales, size_t rows,
                     uint32_t dim, float *out, siam_rpc_status *st);
/* An answer's float field in a non-fp32 encoding: packed->data and *scales (NULL when the
 * encoding has none) are malloc'd; the caller frees both. RESOURCE_EXHAUSTED. */
int svc_encode_field(int encoding, const float *x, size_t rows, uint32_t dim,
                     ProtobufCBinaryData *packed, float **scales, size_t *n_scales,
                     siam_rpc_status *st);

/* ---- siam_service.c: the global model's weights ---- */

/* The newest weights with a reference (release it), or NULL before a model. */
siam_weights *svc_weights(siam_service *svc);
/* Makes (spec, params, round) the newest weights unless newer ones are set, and hands them to
 * the gallery. Logs an error when out of memory. */
void svc_publish_weights(siam_service *svc, const char *spec, const float *params, size_t n,
                         uint64_t round);
/* The caller-facing text of an image shape: "784 bytes = one 28x28x1 image". */
void svc_image_text(const siam_weights *w, char *buf, size_t n);

/* ---- siam_service.c: the Status worker table, written by Train, TrainSet and SyncWeights ---- */

siam_worker_record *svc_worker_record(siam_service *svc, const char *id, double now);

/* A Train batch or TrainSet set of `items` pairs or images at dim, answered with loss: counts
 * it in the stream ts (may be NULL; its first good batch fixes ts->dim), makes a named stream's
 * worker live for averaging, and counts it in the global step and the worker table under id. */
void svc_answered(siam_service *svc, siam_train_stream *ts, const char *id, uint32_t dim,
                  uint64_t items, float loss);

#endif
