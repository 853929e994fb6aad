/* siam_service: the server's request path without the transport. Each function decodes a
 * protobuf request (bytes), validates every field, computes with common/loss and encodes the
 * answer, or returns a status whose message names the field and the value. siam-server wires
 * these to gRPC methods through common/rpc; tests and fuzzers call them directly. */
#ifndef SIAM_SERVICE_H
#define SIAM_SERVICE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "siam_loss.h"
#include "siam_rpc.h"

#define SIAM_SERVICE_MAX_DIM     4096
#define SIAM_SERVICE_MAX_WORKERS 1024

/* Full method paths. */
#define SIAM_METHOD_TRAIN        "/siam.v1.Siamese/Train"
#define SIAM_METHOD_SIMILARITY   "/siam.v1.Siamese/Similarity"
#define SIAM_METHOD_SYNC_WEIGHTS "/siam.v1.Siamese/SyncWeights"
#define SIAM_METHOD_STATUS       "/siam.v1.Siamese/Status"
#define SIAM_METHOD_HEALTH_CHECK "/grpc.health.v1.Health/Check"

/* One worker the server has seen (for Status). */
typedef struct {
    char id[128];
    double last_seen; /* siam_now() of its last batch */
    uint64_t pairs_trained;
} siam_worker_record;

typedef struct {
    float margin;               /* contrastive margin m (> 0) */
    siam_label_convention conv; /* which pairs label 1 marks */
    float threshold;            /* Similarity's same/different threshold; m/2 by default */
    const char *version;        /* reported by Status */

    /* mutable state, guarded by lock */
    pthread_mutex_t lock;
    uint64_t global_step; /* batches answered, all workers */
    siam_worker_record workers[SIAM_SERVICE_MAX_WORKERS];
    int n_workers;
} siam_service;

/* threshold <= 0 means margin / 2. */
int siam_service_init(siam_service *svc, float margin, siam_label_convention conv, float threshold,
                      const char *version, siam_error *err);
void siam_service_free(siam_service *svc);

/* Per Train stream: what the server's one-line summary reports when the stream ends. */
typedef struct {
    char worker_id[128]; /* from the first batch ("" until then) */
    uint32_t dim;        /* dim of the first batch; later batches must match */
    uint64_t batches, pairs;
    double loss_sum; /* sum over batches of loss * batch size */
} siam_train_stream;

/* One EmbeddingBatch -> one BatchResult. Validates: dim in 1..SIAM_SERVICE_MAX_DIM and equal to
 * the stream's first dim, at least one pair (labels non-empty), left and right each
 * labels*dim floats, labels in {0,1}, every float finite. INVALID_ARGUMENT otherwise, e.g.
 * "left has 1000 floats, expected batch*dim = 8*128 = 1024". Updates ts (may be NULL) and the
 * worker table.
 * Also INVALID_ARGUMENT: finite embeddings so large that the loss overflows float (rather than
 * answering inf/NaN gradients). RESOURCE_EXHAUSTED when memory runs out. A failed batch changes
 * neither the worker table nor ts, except that the first decoded batch names the stream
 * (ts->worker_id) even if it fails. Worker names ("" = "anonymous") are stored as valid UTF-8
 * without control characters ('?' replaces the rest), cut to 127 bytes at a character
 * boundary; when the table is full, new workers train but are not listed. */
int siam_service_train(siam_service *svc, siam_train_stream *ts, const uint8_t *req, size_t len,
                       siam_rpc_buf *resp, siam_rpc_status *st);

/* SimilarityRequest -> SimilarityResponse for pairs given as embeddings (dim, left, right):
 * distances, scores (siam_score at the threshold), same (D <= threshold), threshold. Images are
 * answered FAILED_PRECONDITION until the server holds a model. */
int siam_service_similarity(siam_service *svc, const uint8_t *req, size_t len, siam_rpc_buf *resp,
                            siam_rpc_status *st);

/* StatusRequest -> StatusResponse. */
int siam_service_status(siam_service *svc, const uint8_t *req, size_t len, siam_rpc_buf *resp,
                        siam_rpc_status *st);

/* grpc.health.v1.HealthCheckRequest -> HealthCheckResponse: SERVING for "" and
 * "siam.v1.Siamese", NOT_FOUND for other service names. */
int siam_service_health(siam_service *svc, const uint8_t *req, size_t len, siam_rpc_buf *resp,
                        siam_rpc_status *st);

#endif
