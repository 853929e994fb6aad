/* siam_service_status: Status (with the checkpoint status it reports) and Health. */
#include "siam_service_internal.h"

#include <stdlib.h>
#include <string.h>

#include "siam_encoding.h"
#include "siam_log.h"
#include "siam_wire.h"

#include "grpc/health/v1/health.pb-c.h"

#include "siam/v1/siam.pb-c.h"

/* Status */

void siam_service_checkpoint_written(siam_service *svc, const char *path, uint64_t round,
                                     double unix_time) {
    if (!svc)
        return;
    pthread_mutex_lock(&svc->lock);
    /* the path is the operator's, but Status must carry valid UTF-8 */
    svc_copy_name(svc->ckpt_path, sizeof svc->ckpt_path, path ? path : "");
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
    svc_copy_name(svc->ckpt_error, sizeof svc->ckpt_error, why && why[0] ? why : "unknown error");
    pthread_mutex_unlock(&svc->lock);
}

void siam_service_set_traffic(siam_service *svc,
                              int (*traffic)(void *ctx, siam_rpc_traffic *rows, int max),
                              void *ctx) {
    if (!svc)
        return;
    pthread_mutex_lock(&svc->lock);
    svc->traffic = traffic;
    svc->traffic_ctx = traffic ? ctx : NULL;
    svc->traffic_since = siam_now();
    pthread_mutex_unlock(&svc->lock);
}

int siam_service_status(siam_service *svc, const uint8_t *req, size_t len, siam_rpc_buf *resp,
                        siam_rpc_status *st) {
    int rc = svc_begin(svc, resp, st);
    if (rc)
        return rc;
    decode_alloc da;
    Siam__V1__StatusRequest *q = (Siam__V1__StatusRequest *)svc_decode(
        &siam__v1__status_request__descriptor, &da, req, len, st);
    if (!q)
        return st->code;
    siam__v1__status_request__free_unpacked(q, &da.base);

    /* snapshot under the lock, encode outside it */
    siam_worker_record *snap = NULL;
    char ckpt_path[sizeof svc->ckpt_path], ckpt_error[sizeof svc->ckpt_error];
    pthread_mutex_lock(&svc->lock);
    uint64_t global_step = svc->global_step;
    const char *loss_name = siam_set_loss_name(&svc->set_cfg); /* a static string */
    memcpy(ckpt_path, svc->ckpt_path, sizeof ckpt_path);
    memcpy(ckpt_error, svc->ckpt_error, sizeof ckpt_error);
    uint64_t ckpt_round = svc->ckpt_round, ckpt_failures = svc->ckpt_failures,
             ckpt_failed_round = svc->ckpt_failed_round;
    double ckpt_time = svc->ckpt_time, ckpt_failed_time = svc->ckpt_failed_time;
    int (*traffic)(void *, siam_rpc_traffic *, int) = svc->traffic;
    void *traffic_ctx = svc->traffic_ctx;
    double traffic_since = svc->traffic_since;
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
    /* small enough for the stack: 16 rows of 168 bytes */
    siam_rpc_traffic rows[SIAM_RPC_TRAFFIC_MAX];
    Siam__V1__RpcTraffic tr[SIAM_RPC_TRAFFIC_MAX], *trp[SIAM_RPC_TRAFFIC_MAX];
    int n_rows = traffic ? traffic(traffic_ctx, rows, SIAM_RPC_TRAFFIC_MAX) : 0;
    for (int i = 0; i < n_rows; i++) {
        Siam__V1__RpcTraffic t = SIAM__V1__RPC_TRAFFIC__INIT;
        t.method = rows[i].method;
        t.calls = rows[i].calls;
        t.messages_received = rows[i].messages_received;
        t.bytes_received = rows[i].bytes_received;
        t.messages_sent = rows[i].messages_sent;
        t.bytes_sent = rows[i].bytes_sent;
        tr[i] = t;
        trp[i] = &tr[i];
    }
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
    r.loss = (char *)loss_name;
    siam_gallery_info gi;
    siam_gallery_get_info(svc->gallery, &gi);
    r.gallery_size = gi.items;
    r.gallery_round = gi.round;
    r.gallery_embedded = gi.embedded;
    char shape[48] = "";
    siam_weights *wt = svc_weights(svc);
    if (wt)
        siam_weights_shape_text(wt, shape, sizeof shape);
    siam_weights_release(wt);
    r.input_shape = shape;
    /* every encoding of siam_encoding, in its order: Train, TrainSet and SyncWeights decode them
     * all */
    static char *const encodings[] = {"fp32", "fp16", "bf16", "int8"};
    _Static_assert(sizeof encodings / sizeof *encodings == SIAM_ENC_COUNT, "one name each");
    r.n_wire_encodings = SIAM_ENC_COUNT, r.wire_encodings = (char **)encodings;
    r.n_sync_encodings = SIAM_ENC_COUNT, r.sync_encodings = (char **)encodings;
    r.n_workers = (size_t)nw;
    r.workers = wp;
    r.n_traffic = (size_t)n_rows;
    r.traffic = n_rows ? trp : NULL;
    r.traffic_seconds = traffic ? now - traffic_since : 0.0;
    rc = svc_encode(&r.base, "StatusResponse", resp, st);
    free(snap);
    free(ws);
    free(wp);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Health */

int siam_service_health(siam_service *svc, const uint8_t *req, size_t len, siam_rpc_buf *resp,
                        siam_rpc_status *st) {
    int rc = svc_begin(svc, resp, st);
    if (rc)
        return rc;
    decode_alloc da;
    Grpc__Health__V1__HealthCheckRequest *q = (Grpc__Health__V1__HealthCheckRequest *)svc_decode(
        &grpc__health__v1__health_check_request__descriptor, &da, req, len, st);
    if (!q)
        return st->code;
    const char *name = q->service ? q->service : "";
    if (name[0] != '\0' && strcmp(name, SIAM_WIRE_SERVICE) != 0) {
        char shown[160];
        svc_copy_name(shown, sizeof shown, name);
        rc = siam_rpc_status_set(st, SIAM_RPC_NOT_FOUND, "unknown service '%s'", shown);
        grpc__health__v1__health_check_request__free_unpacked(q, &da.base);
        return rc;
    }
    grpc__health__v1__health_check_request__free_unpacked(q, &da.base);
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    return svc_encode(&r.base, "HealthCheckResponse", resp, st);
}
