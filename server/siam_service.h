/* siam_service: the server's request path without the transport. Each function decodes a
 * protobuf request (bytes), validates every field, computes with lib/nn/siam_loss and encodes the
 * answer, or returns a status whose message names the field and the value. siam-server wires
 * these to gRPC methods through lib/net; tests and fuzzers call them directly. */
#ifndef SIAM_SERVICE_H
#define SIAM_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "siam_averaging.h"
#include "siam_gallery.h"
#include "siam_loss.h"
#include "siam_model.h"
#include "siam_rpc.h"
#include "siam_set_loss.h"

#define SIAM_SERVICE_MAX_DIM     4096
#define SIAM_SERVICE_MAX_WORKERS 1024
/* Similarity with images: most pairs per request (2 x 4096 images are embedded at once). */
#define SIAM_SERVICE_MAX_IMAGE_PAIRS 4096
/* Search: most queries per request (images or embeddings); each answers at most
 * SIAM_KNN_K_MAX matches. */
#define SIAM_SERVICE_MAX_SEARCH_QUERIES 1024
/* Search: matches per query when the request's k is 0 (= SIAM_KNN_K_DEFAULT). */
#define SIAM_SERVICE_SEARCH_K_DEFAULT 5
/* Inference replicas of a new service (siam-server sets --threads). */
#define SIAM_SERVICE_REPLICAS_DEFAULT 2

/* The request path's state: loss head settings, the worker table, the averaging, the global
 * model's weights, the inference replicas that embed images with them and the gallery. Opaque;
 * thread-safe (every entry point below may be called from any thread at once). */
typedef struct siam_service siam_service;

/* Creates a service. threshold <= 0 means margin / 2. version is reported by Status and must
 * outlive the service. SIAM_ERR_ARG names a bad margin, convention or threshold; SIAM_ERR_NOMEM.
 * Free with siam_service_free (safe on NULL). */
int siam_service_create(siam_service **out, float margin, siam_label_convention conv,
                        float threshold, const char *version, siam_error *err);
void siam_service_free(siam_service *svc);

float siam_service_margin(const siam_service *svc);
float siam_service_threshold(const siam_service *svc);
siam_label_convention siam_service_convention(const siam_service *svc);
/* Train batches and TrainSet sets answered so far, all workers. */
uint64_t siam_service_global_step(siam_service *svc);
/* Workers listed by Status (at most SIAM_SERVICE_MAX_WORKERS). */
int siam_service_worker_count(siam_service *svc);
/* The averaging started by siam_service_start_averaging (NULL before); owned by the service. */
siam_averaging *siam_service_averaging(siam_service *svc);

/* Per Train stream: what the server's one-line summary reports when the stream ends. */
typedef struct {
    char worker_id[128]; /* from the first batch ("" until then) */
    uint32_t dim;        /* dim of the first batch; later batches must match */
    uint64_t batches, pairs;
    double loss_sum; /* sum over batches of loss * batch size */
    int live;        /* counted in the averaging's liveness (after the first good batch) */
    /* TrainSet: what the mining saw since the caller last reset these (the server's periodic
     * per-stream summary and collapse alarm): sets, of them degenerate, active terms, and sums
     * over the sets of loss, active fraction, mean norm and mean hardest-negative distance */
    uint64_t win_sets, win_degenerate;
    int64_t win_active;
    double win_loss, win_active_frac, win_norm, win_hardest_neg;
} siam_train_stream;

/* Starts weight averaging (see siam_averaging.h): min_workers, sync_timeout, an optional
 * on_round callback (checkpoints), and reply, which delivers SyncWeights answers (resp is taken;
 * NULL with a non-OK status). After every round the service first makes the round's parameters
 * its newest weights (image requests use them, the gallery is re-embedded with them), then calls
 * on_round. */
int siam_service_start_averaging(
    siam_service *svc, int min_workers, double sync_timeout,
    void (*on_round)(void *ctx, const siam_averaging_answer *a), void *round_ctx,
    void (*reply)(void *waiter, siam_rpc_buf *resp, const siam_rpc_status *st), siam_error *err);

/* How the service learns that the caller of a waiting SyncWeights call has gone (siam-server:
 * siam_rpc_reply_cancelled on the waiter it passed): such a join stops counting towards
 * min_workers (siam_averaging.h). Set before the first SyncWeights call; NULL = never. */
void siam_service_set_sync_cancelled(siam_service *svc, int (*cancelled)(void *waiter));

/* Sets the global model (siam-server --model or --resume) before any worker joins. The spec is
 * checked by parsing it; n must be its parameter count; every parameter must be finite
 * (SIAM_ERR_ARG naming the first that is not: a checkpoint written from a poisoned round is
 * refused, not served). The gallery is then embedded with it in the background. */
int siam_service_set_model(siam_service *svc, const char *spec, const float *params, size_t n,
                           uint64_t round, uint64_t global_step, siam_error *err);

/* One SyncWeights call (WeightsUpdate -> GlobalWeights), answered through the reply function given
 * to siam_service_start_averaging (waiter passed back), now or when the round closes. Validates:
 * worker_id non-empty, model_spec a model spec, params non-empty and finite, samples at most
 * SIAM_AVERAGING_MAX_SAMPLES (INVALID_ARGUMENT naming the field); then siam_averaging_submit's
 * rules. */
void siam_service_sync(siam_service *svc, const uint8_t *req, size_t len, void *waiter);

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
 * boundary; when the table is full, new workers train but are not listed, unless a listed
 * worker has been quiet for longer than the averaging's expiry (siam_averaging_expiry): it makes
 * room. */
int siam_service_train(siam_service *svc, siam_train_stream *ts, const uint8_t *req, size_t len,
                       siam_rpc_buf *resp, siam_rpc_status *st);

/* The Train stream ts has ended: its worker is no longer live for averaging. */
void siam_service_train_end(siam_service *svc, siam_train_stream *ts);

/* TrainSet's loss (mode, distance, margin, soft, hard_after); the service starts with
 * siam_set_loss_default() at the service's margin. Pair Train keeps its contrastive loss. facenet
 * is answered per set as siam_set_loss_at(cfg, EmbeddingSet.progress). SIAM_ERR_ARG names what cfg
 * gets wrong (an unknown mode or distance, a negative or non-finite margin, soft other than
 * with batch-hard, hard_after outside 0..1). May be called at any time; sets answered afterwards
 * use it. */
int siam_service_set_set_loss(siam_service *svc, const siam_set_loss_config *cfg, siam_error *err);
/* TrainSet's loss as configured. */
siam_set_loss_config siam_service_set_loss(siam_service *svc);

/* One EmbeddingSet -> one SetResult: the set loss over n = len(groups) embeddings (lib/nn/
 * siam_set_loss, the service's configured loss as in effect at the set's progress: facenet mines
 * semi-hard below hard_after, batch-hard from it on), its gradient for every embedding, and the
 * mining's statistics. Validates: dim in 1..SIAM_SERVICE_MAX_DIM and equal to the stream's first
 * dim, n >= 2, embeddings n*dim floats, every float finite (the message names the index and the
 * embedding), progress finite in 0..1: INVALID_ARGUMENT; n > SIAM_SET_LOSS_MAX_N is
 * RESOURCE_EXHAUSTED naming the limit (the loss needs two n x n matrices). A degenerate set (one
 * group only, or all singletons) is answered OK with loss 0, zero gradients, mining.degenerate and
 * a note saying why. Finite embeddings so large that the loss or a gradient overflows float are
 * INVALID_ARGUMENT. ts (may be NULL) is a TrainSet stream's state, kept as for Train (pairs counts
 * images); the worker table counts images as pairs_trained; the stream makes its worker live for
 * averaging as Train does (end it with siam_service_train_end). A failed set changes neither,
 * except that the first decoded set names the stream. */
int siam_service_train_set(siam_service *svc, siam_train_stream *ts, const uint8_t *req, size_t len,
                           siam_rpc_buf *resp, siam_rpc_status *st);

/* SimilarityRequest -> SimilarityResponse for pairs given as embeddings (dim, left, right) or as
 * images (left_images, right_images: pairs x H*W*C bytes of the global model's input shape,
 * embedded with its newest weights in inference mode, pixels / 255 as in training, both sides
 * with the same weights, on one of the inference replicas: concurrent requests run in
 * parallel): distances, scores (siam_score at the threshold), same (D <= threshold), threshold.
 * Images are answered FAILED_PRECONDITION while the server has no model; both kinds at once,
 * lengths that are not whole images ("expected a non-zero multiple of 784 bytes = one 28x28x1
 * image per pair"), unequal sides or more than SIAM_SERVICE_MAX_IMAGE_PAIRS pairs are
 * INVALID_ARGUMENT. */
int siam_service_similarity(siam_service *svc, const uint8_t *req, size_t len, siam_rpc_buf *resp,
                            siam_rpc_status *st);

/* ---- the gallery and Search (siam_service_search.c) ---- */

/* The gallery Search answers from: created with the service (empty, at most
 * SIAM_GALLERY_MAX_ITEMS_DEFAULT items), owned by it. The program loads it and makes it persist
 * (siam_gallery.h) before serving; the service embeds it with every new global model. */
siam_gallery *siam_service_gallery(siam_service *svc);
/* Replaces the empty gallery by one of at most max_items items (siam-server --gallery-max).
 * SIAM_ERR_ARG when the gallery holds items already or max_items is out of range. */
int siam_service_set_gallery_max(siam_service *svc, size_t max_items, siam_error *err);
/* How many image requests embed at once (siam-server: --threads); before serving. 1..256. */
int siam_service_set_inference_replicas(siam_service *svc, int replicas, siam_error *err);

/* The gallery at start (siam-server's flags). */
typedef struct {
    const char *gallery;        /* --gallery: IDX images or a gallery file (NULL: none) */
    const char *gallery_labels; /* --gallery-labels: IDX labels of --gallery's images */
    const char *resume;         /* --resume: RESUME.gallery is restored instead when it exists */
    const char *checkpoint;     /* the gallery is saved to CHECKPOINT.gallery (NULL: memory only) */
} siam_gallery_options;

/* Opens the gallery at start, after the model (siam_service_set_model) and before serving: loads
 * it (RESUME.gallery when it exists, else --gallery: a gallery file by its magic, else IDX images
 * with their labels), checks that its images have the model's input shape, and saves it to
 * CHECKPOINT.gallery after changes (what was loaded from elsewhere at once; siam_gallery_flush at
 * shutdown), or logs that it lives in memory only. SIAM_ERR_ARG for flags that do not go together
 * (IDX images without labels, labels with a gallery file), SIAM_ERR_MISMATCH for another shape
 * than the model's, and the loaders' errors naming the file (prefixed "gallery: "). */
int siam_service_open_gallery(siam_service *svc, const siam_gallery_options *o, siam_error *err);

/* SearchRequest -> SearchResponse: the k nearest gallery items of every query (images of the
 * model's input shape, embedded with the weights of the gallery version searched; or dim and
 * embeddings), nearest first: id, label, Euclidean distance and score (siam_score at the
 * threshold); the label of the distance-weighted vote (siam_knn_vote_weighted) and its share;
 * the model round of that version and its size. Exact search (siam_knn_neighbours_normed).
 * INVALID_ARGUMENT: k above SIAM_KNN_K_MAX (0 means SIAM_SERVICE_SEARCH_K_DEFAULT), images and
 * embeddings both or neither, images not a whole number of the input shape, embeddings not a
 * multiple of dim or not finite, dim not the gallery's, more than
 * SIAM_SERVICE_MAX_SEARCH_QUERIES queries, embeddings so large that a distance overflows float.
 * FAILED_PRECONDITION: images before the server has a model, an empty gallery (each message says
 * how to fix it). UNAVAILABLE: items stored but not embedded yet (the first embedding runs; retry).
 * Fewer than k matches when the gallery holds fewer items. */
int siam_service_search(siam_service *svc, const uint8_t *req, size_t len, siam_rpc_buf *resp,
                        siam_rpc_status *st);

/* GalleryAddRequest -> GalleryAddResponse: stores the images (of the gallery's input shape) with
 * their labels, embeds them with the version being served and publishes a version holding them
 * before answering (searchable when this returns; without a model they are embedded when one
 * comes): the new ids, the gallery's size and model round. INVALID_ARGUMENT: no images, images
 * not a whole number of the input shape, more than SIAM_GALLERY_MAX_ADD, a label count other
 * than the image count, a label of 0 or more than SIAM_GALLERY_LABEL_MAX bytes, not UTF-8 or with
 * control characters (naming labels[i]); FAILED_PRECONDITION: no input shape yet (no model and
 * no gallery); RESOURCE_EXHAUSTED: the gallery is at its limit (naming it and --gallery-max). */
int siam_service_add_to_gallery(siam_service *svc, const uint8_t *req, size_t len,
                                siam_rpc_buf *resp, siam_rpc_status *st);

/* The server's checkpoints of the global model, for Status (the service writes none itself):
 * siam-server calls one of these after every checkpoint it attempts. unix_time is the wall clock
 * (seconds since 1970) of the attempt. Strings are copied (as valid UTF-8, cut to fit). */
void siam_service_checkpoint_written(siam_service *svc, const char *path, uint64_t round,
                                     double unix_time);
/* A checkpoint of `round` that could not be written; why is the error message (naming the path).
 * Counted, and kept as the newest failure. */
void siam_service_checkpoint_failed(siam_service *svc, uint64_t round, double unix_time,
                                    const char *why);

/* Where Status finds the server's traffic per RPC (siam-server: siam_rpc_server_traffic of its
 * rpc server, which counts from its creation): traffic fills up to max rows and returns how many,
 * thread-safe. Status reports the rows and the seconds since this call. NULL (the default)
 * reports none. Set it before serving; clear it (NULL) before the source is freed, once no Status
 * call can run. */
void siam_service_set_traffic(siam_service *svc,
                              int (*traffic)(void *ctx, siam_rpc_traffic *rows, int max),
                              void *ctx);

/* StatusRequest -> StatusResponse: settings, the averaging, the workers, the checkpoints, the
 * traffic per RPC (siam_service_set_traffic). */
int siam_service_status(siam_service *svc, const uint8_t *req, size_t len, siam_rpc_buf *resp,
                        siam_rpc_status *st);

/* grpc.health.v1.HealthCheckRequest -> HealthCheckResponse: SERVING for "" and
 * "siam.v1.Siamese", NOT_FOUND for other service names. */
int siam_service_health(siam_service *svc, const uint8_t *req, size_t len, siam_rpc_buf *resp,
                        siam_rpc_status *st);

#endif
