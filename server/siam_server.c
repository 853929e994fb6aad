/* siam-server: the loss head of split training. Workers stream the embeddings of their image
 * pairs (Train); the server answers every batch with the contrastive loss, the distances and the
 * gradients. Or they stream sets of embeddings with group ids (TrainSet), answered with the set
 * loss of --loss and its in-batch mining. Similarity, Search and AddToGallery (a gallery of
 * labelled images, saved beside the checkpoint), Status and the standard health check are served
 * to any caller (with the token, when tokens are on). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "siam_atomic.h"
#include "siam_auth.h"
#include "siam_checkpoint.h"
#include "siam_log.h"
#include "siam_memory.h"
#include "siam_model.h"
#include "siam_options.h"
#include "siam_recipe.h"
#include "siam_reflection.h"
#include "siam_rpc.h"
#include "siam_service.h"
#include "siam_set_trainer.h"
#include "siam_tensor.h"
#include "siam_wire.h"

#include "siam_server_internal.h"

#define COMPONENT "server"
/* --hard-after: the FaceNet seed's first 40 % semi-hard (siam_set_loss_default's) */
#define HARD_AFTER_DEFAULT 0.4f

/* --resume PATH or --model SPEC: the global model before any worker joins. */
static int initial_model(const config *c, siam_service *svc, siam_error *err) {
    if (c->resume) {
        siam_checkpoint ck;
        int rc = siam_checkpoint_load(&ck, c->resume, err);
        if (rc)
            return rc;
        rc = siam_service_set_model(svc, ck.spec, ck.params, ck.n_params, ck.round, ck.step, err);
        if (rc) { /* name the file: the service does not know where the parameters came from */
            char why[SIAM_ERROR_MSG_MAX];
            snprintf(why, sizeof why, "%s", err->msg);
            siam_error_set(err, rc, "--resume %s: %s", c->resume, why);
        } else
            LOG_INFO(COMPONENT, "resumed from %s: round %llu, global step %llu, model %s",
                     c->resume, (unsigned long long)ck.round, (unsigned long long)ck.step, ck.spec);
        siam_checkpoint_free(&ck);
        return rc;
    }
    if (c->model) {
        siam_model *m = NULL;
        int rc = siam_model_create(&m, c->model, c->seed, err);
        if (!rc)
            rc = siam_service_set_model(svc, siam_model_spec(m), siam_model_params(m),
                                        siam_model_num_params(m), 0, 0, err);
        if (!rc)
            LOG_INFO(COMPONENT, "global model %s initialised with seed %llu", siam_model_spec(m),
                     (unsigned long long)c->seed);
        siam_model_free(m);
        return rc;
    }
    return SIAM_OK;
}

/* ---- Train and TrainSet streams: one siam_train_stream per open stream ---- */

typedef struct {
    siam_train_stream ts;
    const char *method; /* "Train" or "TrainSet", for the log */
    const char *items;  /* what ts.pairs counts: "pairs" or "images" */
    char peer[128];
    double opened;
    double win_started; /* TrainSet: the start of the mining summary's window */
} train_stream;

static train_stream *stream_open(const siam_rpc_call_info *call, const char *method,
                                 const char *items) {
    train_stream *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->method = method;
    t->items = items;
    snprintf(t->peer, sizeof t->peer, "%s", call->peer ? call->peer : "?");
    t->opened = t->win_started = siam_now();
    LOG_DEBUG(COMPONENT, "%s stream opened by %s", method, t->peer);
    return t;
}

/* TrainSet: every SET_REPORT_SECONDS per stream and when it ends, a line with what the mining
 * saw (the loss, the active fraction, the mean norm, the hardest negatives) and, when the
 * embeddings collapse or nothing is active, a warning in plain words: the server sees every
 * worker's embeddings, so it can say so even to a worker that does not. */
#define SET_REPORT_SECONDS 60.0

static void set_window_report(const siam_service *svc, train_stream *t, int final) {
    siam_train_stream *s = &t->ts;
    double now = siam_now();
    if (s->win_sets == 0 || (!final && now - t->win_started < SET_REPORT_SECONDS))
        return;
    uint64_t mined = s->win_sets - s->win_degenerate;
    siam_set_epoch_stats es = {.steps = s->win_sets,
                               .degenerate_steps = s->win_degenerate,
                               .active_terms = s->win_active,
                               .mean_loss = s->win_loss / (double)s->win_sets,
                               .mean_active = s->win_active_frac / (double)s->win_sets,
                               .mean_norm = s->win_norm / (double)s->win_sets,
                               .mean_hardest_neg = mined ? s->win_hardest_neg / (double)mined : 0,
                               .scale = siam_service_margin(svc)};
    const char *who = s->worker_id[0] ? s->worker_id : "unnamed worker";
    LOG_INFO(COMPONENT,
             "TrainSet %s: %llu sets in %.0f s: mean loss %.4f, active %.3f, mean norm %.3f, "
             "hardest negatives %.3f apart, %llu sets without a triplet",
             who, (unsigned long long)s->win_sets, now - t->win_started, es.mean_loss,
             es.mean_active, es.mean_norm, es.mean_hardest_neg,
             (unsigned long long)s->win_degenerate);
    char why[160];
    int alarm = siam_set_epoch_collapse(&es, why, sizeof why);
    if (alarm == SIAM_SET_ALARM_COLLAPSE)
        LOG_WARN(COMPONENT,
                 "TrainSet %s: the embeddings are collapsing: %s; every image is being mapped "
                 "to nearly the same point. Lower the learning rate or the margin, or use "
                 "--loss semi-hard",
                 who, why);
    else if (alarm == SIAM_SET_ALARM_STALLED)
        LOG_WARN(COMPONENT,
                 "TrainSet %s: nothing was trained: %s; every set is already separated by the "
                 "margin. Raise the margin or use a harder loss",
                 who, why);
    s->win_sets = s->win_degenerate = 0;
    s->win_active = 0;
    s->win_loss = s->win_active_frac = s->win_norm = s->win_hardest_neg = 0;
    t->win_started = now;
}

static void *train_open(void *ctx, const siam_rpc_call_info *call) {
    (void)ctx;
    return stream_open(call, "Train", "pairs");
}

static void *train_set_open(void *ctx, const siam_rpc_call_info *call) {
    (void)ctx;
    return stream_open(call, "TrainSet", "images");
}

/* A failed batch or set: any caller can send bad ones as fast as it likes, so at most a few
 * lines per method and code. */
static void stream_refused(const train_stream *t, int rc, const siam_rpc_status *st) {
    char kind[64];
    snprintf(kind, sizeof kind, "%s %s", t->method, siam_rpc_code_name(rc));
    LOG_WARN_LIMITED(COMPONENT, kind, "%s from %s (%s): %s: %s", t->method,
                     t->ts.worker_id[0] ? t->ts.worker_id : "?", t->peer, siam_rpc_code_name(rc),
                     st->msg);
}

static int train_message(void *ctx, void *stream, const uint8_t *req, size_t len,
                         siam_rpc_buf *resp, siam_rpc_status *st) {
    train_stream *t = stream;
    if (!t)
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "the server is out of memory for a new stream");
    int rc = siam_service_train(ctx, &t->ts, req, len, resp, st);
    if (rc != SIAM_RPC_OK)
        stream_refused(t, rc, st);
    return rc;
}

static int train_set_message(void *ctx, void *stream, const uint8_t *req, size_t len,
                             siam_rpc_buf *resp, siam_rpc_status *st) {
    train_stream *t = stream;
    if (!t)
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "the server is out of memory for a new stream");
    int rc = siam_service_train_set(ctx, &t->ts, req, len, resp, st);
    if (rc != SIAM_RPC_OK)
        stream_refused(t, rc, st);
    else
        set_window_report(ctx, t, 0);
    return rc;
}

static void train_close(void *ctx, void *stream, const siam_rpc_status *final) {
    train_stream *t = stream;
    if (!t)
        return;
    siam_service_train_end(ctx, &t->ts);
    set_window_report(ctx, t, 1);
    double secs = siam_now() - t->opened;
    if (SIAM_LOG_INFO < siam_log_threshold) {
        free(t);
        return;
    }
    char line[SIAM_LOG_LIMIT_LINE_MAX];
    snprintf(line, sizeof line,
             "%s stream of %s (%s) ended %s%s%s: %llu batches, %llu %s, mean loss %.4f, %.1f s, "
             "%.0f %s/s",
             t->method, t->ts.worker_id[0] ? t->ts.worker_id : "unnamed worker", t->peer,
             siam_rpc_code_name(final->code), final->code ? ": " : "",
             final->code ? final->msg : "", (unsigned long long)t->ts.batches,
             (unsigned long long)t->ts.pairs, t->items,
             t->ts.pairs ? t->ts.loss_sum / (double)t->ts.pairs : 0.0, secs,
             secs > 0 ? (double)t->ts.pairs / secs : 0.0, t->items);
    /* a stream that trained is summarised always; one that answered no batch is what a flood of
     * bad requests (each ending its stream) looks like, so its line is rate-limited */
    if (t->ts.batches == 0) {
        char kind[64];
        snprintf(kind, sizeof kind, "%s stream without batches %s", t->method,
                 siam_rpc_code_name(final->code));
        siam_log_limited(SIAM_LOG_INFO, COMPONENT, kind, "%s", line);
    } else {
        LOG_INFO(COMPONENT, "%s", line);
    }
    free(t);
}

/* ---- unary methods ---- */

static int similarity(void *ctx, const siam_rpc_call_info *call, const uint8_t *req, size_t len,
                      siam_rpc_buf *resp, siam_rpc_status *st) {
    int rc = siam_service_similarity(ctx, req, len, resp, st);
    if (rc != SIAM_RPC_OK && SIAM_LOG_DEBUG >= siam_log_threshold) {
        char kind[64];
        snprintf(kind, sizeof kind, "Similarity %s", siam_rpc_code_name(rc));
        siam_log_limited(SIAM_LOG_DEBUG, COMPONENT, kind, "Similarity from %s: %s: %s", call->peer,
                         siam_rpc_code_name(rc), st->msg);
    }
    return rc;
}

/* Search and AddToGallery: refusals are the caller's to send at will, so DEBUG and rate-limited
 * like Similarity's; an add that went through is one INFO line (adds change the gallery). */
static void log_refused(const char *method, const siam_rpc_call_info *call, int rc,
                        const siam_rpc_status *st) {
    if (rc == SIAM_RPC_OK || SIAM_LOG_DEBUG < siam_log_threshold)
        return;
    char kind[64];
    snprintf(kind, sizeof kind, "%s %s", method, siam_rpc_code_name(rc));
    siam_log_limited(SIAM_LOG_DEBUG, COMPONENT, kind, "%s from %s: %s: %s", method, call->peer,
                     siam_rpc_code_name(rc), st->msg);
}

static int search(void *ctx, const siam_rpc_call_info *call, const uint8_t *req, size_t len,
                  siam_rpc_buf *resp, siam_rpc_status *st) {
    int rc = siam_service_search(ctx, req, len, resp, st);
    log_refused("Search", call, rc, st);
    return rc;
}

static int add_to_gallery(void *ctx, const siam_rpc_call_info *call, const uint8_t *req, size_t len,
                          siam_rpc_buf *resp, siam_rpc_status *st) {
    int rc = siam_service_add_to_gallery(ctx, req, len, resp, st);
    if (rc == SIAM_RPC_OK) {
        siam_gallery_info info;
        siam_gallery_get_info(siam_service_gallery(ctx), &info);
        siam_log_limited(SIAM_LOG_INFO, COMPONENT, "AddToGallery OK",
                         "AddToGallery from %s: the gallery holds %zu items", call->peer,
                         info.items);
    } else if (rc == SIAM_RPC_RESOURCE_EXHAUSTED) { /* the operator may want a larger limit */
        LOG_WARN_LIMITED(COMPONENT, "AddToGallery RESOURCE_EXHAUSTED", "AddToGallery from %s: %s",
                         call->peer, st->msg);
    } else {
        log_refused("AddToGallery", call, rc, st);
    }
    return rc;
}

static void sync_reply(void *waiter, siam_rpc_buf *resp, const siam_rpc_status *st) {
    if (st->code != SIAM_RPC_OK) {
        /* bad updates are the caller's to send at will: rate-limited per code, like Train */
        char kind[64];
        snprintf(kind, sizeof kind, "SyncWeights %s", siam_rpc_code_name(st->code));
        LOG_WARN_LIMITED(COMPONENT, kind, "SyncWeights: %s: %s", siam_rpc_code_name(st->code),
                         st->msg);
    }
    siam_rpc_reply_send(waiter, resp, st);
}

/* A join whose caller gave up must not count towards --min-workers: the service asks. */
static int sync_cancelled(void *waiter) {
    return siam_rpc_reply_cancelled(waiter);
}

static void sync_weights(void *ctx, const siam_rpc_call_info *call, const uint8_t *req, size_t len,
                         siam_rpc_reply *reply) {
    (void)call;
    siam_service_sync(ctx, req, len, reply);
}

static int status(void *ctx, const siam_rpc_call_info *call, const uint8_t *req, size_t len,
                  siam_rpc_buf *resp, siam_rpc_status *st) {
    (void)call;
    return siam_service_status(ctx, req, len, resp, st);
}

static int health(void *ctx, const siam_rpc_call_info *call, const uint8_t *req, size_t len,
                  siam_rpc_buf *resp, siam_rpc_status *st) {
    (void)call;
    return siam_service_health(ctx, req, len, resp, st);
}

/* Status reports the rpc layer's counts per RPC. */
static int server_traffic(void *ctx, siam_rpc_traffic *rows, int max) {
    return siam_rpc_server_traffic(ctx, rows, max);
}

/* One line per RPC at shutdown: what the server moved (serialized messages; siam_rpc.h). */
static void log_traffic(siam_rpc_server *srv) {
    siam_rpc_traffic rows[SIAM_RPC_TRAFFIC_MAX];
    int n = siam_rpc_server_traffic(srv, rows, SIAM_RPC_TRAFFIC_MAX);
    for (int i = 0; i < n; i++)
        LOG_INFO(COMPONENT,
                 "traffic %s: calls=%llu messages_received=%llu bytes_received=%llu "
                 "messages_sent=%llu bytes_sent=%llu",
                 rows[i].method, (unsigned long long)rows[i].calls,
                 (unsigned long long)rows[i].messages_received,
                 (unsigned long long)rows[i].bytes_received,
                 (unsigned long long)rows[i].messages_sent, (unsigned long long)rows[i].bytes_sent);
}

/* Every connection holds a file descriptor, and the soft limit (often 1024) is what a flood of
 * connections exhausts first: raise it to the hard limit, which needs no privilege. */
static void raise_open_file_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        LOG_WARN(COMPONENT, "cannot read the open-file limit (RLIMIT_NOFILE): %s", strerror(errno));
        return;
    }
    rlim_t was = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            LOG_WARN(COMPONENT, "open files: cannot raise the limit from %llu to %llu: %s",
                     (unsigned long long)was, (unsigned long long)rl.rlim_max, strerror(errno));
            return;
        }
        LOG_INFO(COMPONENT, "open files: limit raised from %llu to the hard limit %llu",
                 (unsigned long long)was, (unsigned long long)rl.rlim_cur);
    } else {
        LOG_INFO(COMPONENT,
                 "open files: limit %llu (the hard limit; raise it with ulimit -Hn or "
                 "LimitNOFILE= to serve more connections)",
                 (unsigned long long)rl.rlim_cur);
    }
}

/* "host:0" -> "host:PORT" for the ready line. */
static void bound_address(char *out, size_t n, const char *listen, int port) {
    const char *colon = strrchr(listen, ':');
    if (colon && strncmp(listen, "unix:", 5) != 0)
        snprintf(out, n, "%.*s:%d", (int)(colon - listen), listen, port);
    else
        snprintf(out, n, "%s", listen);
}

/* Returns SIAM_OK, or an error in *err with *usage set when it is the configuration's (TLS files,
 * exit 2) rather than the run's (exit 1), and *reported set when it is logged already. */
static int serve(const config *c, siam_error *err, int *usage, int *reported) {
    siam_label_convention conv =
        strcmp(c->labels, "dissimilar") == 0 ? SIAM_LABELS_DISSIMILAR : SIAM_LABELS_SIMILAR;
    siam_service *svc = NULL;
    int rc = siam_service_create(&svc, c->margin, conv, c->threshold, SIAM_VERSION, err);
    if (rc)
        return rc;
    /* TrainSet's loss: --loss and --distance at --margin (pair Train keeps its contrastive loss) */
    siam_set_loss_config set_cfg = siam_set_loss_default();
    set_cfg.margin = c->margin;
    set_cfg.distance = strcmp(c->distance, "squared") == 0 ? SIAM_SET_SQUARED : SIAM_SET_EUCLIDEAN;
    set_cfg.hard_after = c->hard_after;
    if ((rc = siam_set_loss_parse(&set_cfg, c->loss, err)) ||
        (rc = siam_service_set_set_loss(svc, &set_cfg, err))) {
        siam_service_free(svc);
        return rc;
    }
    /* one inference replica per serving thread: image requests embed in parallel */
    if ((rc = siam_service_set_inference_replicas(svc, c->threads, err)) ||
        (rc = siam_service_set_gallery_max(svc, (size_t)c->gallery_max, err))) {
        siam_service_free(svc);
        return rc;
    }
    checkpointer ck = {.c = c, .svc = svc};
    siam_service_set_sync_cancelled(svc, sync_cancelled);
    pthread_mutex_init(&ck.lock, NULL);
    /* a checkpoint path that cannot be written fails at start, not at the first round */
    if (c->checkpoint && (rc = siam_atomic_check_writable(c->checkpoint, err))) {
        siam_service_free(svc);
        return rc;
    }
    if ((rc = siam_service_start_averaging(svc, c->min_workers, c->sync_timeout, server_on_round,
                                           &ck, sync_reply, err)) ||
        (rc = initial_model(c, svc, err))) {
        siam_service_free(svc);
        return rc;
    }
    /* after the model: a gallery of another input shape than the model's is refused */
    siam_gallery_options go = {.gallery = c->gallery,
                               .gallery_labels = c->gallery_labels,
                               .resume = c->resume,
                               .checkpoint = c->checkpoint};
    if ((rc = siam_service_open_gallery(svc, &go, err))) {
        *usage = rc == SIAM_ERR_ARG || rc == SIAM_ERR_MISMATCH; /* the flags, not the run */
        siam_service_free(svc);
        return rc;
    }

    /* SIGINT/SIGTERM are taken with sigwait below; block them before gRPC starts its threads so
     * that every thread inherits the mask */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    raise_open_file_limit();
    siam_rpc_init();

    static const siam_rpc_stream_handler train = {train_open, train_message, train_close};
    static const siam_rpc_stream_handler train_set = {train_set_open, train_set_message,
                                                      train_close};
    siam_rpc_server *srv = NULL;
    siam_rpc_server_config sc = {.listen = c->listen,
                                 .threads = c->threads,
                                 .max_message_bytes = (size_t)c->max_message_mb << 20,
                                 .tls_cert = c->tls_cert,
                                 .tls_key = c->tls_key,
                                 .tls_client_ca = c->tls_client_ca,
                                 .auth_token = c->auth_token,
                                 .handshake_timeout_ms = (int)(c->handshake_timeout * 1000.0f)};
    int port = 0;
    if ((rc = siam_rpc_server_create(&srv, &sc, err)) != SIAM_OK)
        *usage = 1; /* the TLS files or the token */
    else
        siam_service_set_traffic(svc, server_traffic, srv);
    if (rc || (rc = siam_rpc_server_add_stream(srv, SIAM_METHOD_TRAIN, &train, svc, err)) ||
        (rc = siam_rpc_server_add_stream(srv, SIAM_METHOD_TRAIN_SET, &train_set, svc, err)) ||
        (rc = siam_rpc_server_add_unary(srv, SIAM_METHOD_SIMILARITY, similarity, svc, err)) ||
        (rc = siam_rpc_server_add_unary(srv, SIAM_METHOD_STATUS, status, svc, err)) ||
        (rc =
             siam_rpc_server_add_deferred(srv, SIAM_METHOD_SYNC_WEIGHTS, sync_weights, svc, err)) ||
        (rc = siam_rpc_server_add_unary(srv, SIAM_METHOD_HEALTH_CHECK, health, svc, err)) ||
        (rc = siam_rpc_server_add_unary(srv, SIAM_METHOD_SEARCH, search, svc, err)) ||
        (rc = siam_rpc_server_add_unary(srv, SIAM_METHOD_ADD_TO_GALLERY, add_to_gallery, svc,
                                        err)) ||
        (rc = siam_reflection_add(srv, err)) || /* grpc.reflection.v1 and v1alpha */
        (rc = siam_rpc_server_start(srv, &port, err))) {
        if (rc == SIAM_ERR_FORMAT) /* gRPC refused the TLS certificate and key */
            *usage = 1;
        siam_service_set_traffic(svc, NULL, NULL);
        siam_rpc_server_free(srv);
        siam_rpc_shutdown();
        siam_service_free(svc);
        return rc;
    }
    char addr[300];
    bound_address(addr, sizeof addr, c->listen, port);
    LOG_INFO(COMPONENT,
             "margin %g, label 1 = %s pairs, similarity threshold %g, %d threads, messages up to "
             "%d MiB, gRPC core %s",
             (double)siam_service_margin(svc), c->labels, (double)siam_service_threshold(svc),
             c->threads, c->max_message_mb, siam_rpc_core_version());
    LOG_INFO(COMPONENT, "TrainSet loss %s, %s distance, margin %g, sets of 2..%d embeddings",
             c->loss, c->distance, (double)c->margin, SIAM_SET_LOSS_MAX_N);
    if (set_cfg.mode == SIAM_SET_FACENET)
        LOG_INFO(COMPONENT,
                 "facenet: semi-hard mining while a worker's progress is below %g, batch-hard "
                 "from it on (workers that send no progress are at 0: semi-hard throughout)",
                 (double)c->hard_after);
    LOG_INFO(COMPONENT,
             "weight averaging: rounds wait for %d worker(s) to join, close %g s after their first "
             "update at the latest; checkpoint %s every %d round(s)",
             c->min_workers, (double)c->sync_timeout, c->checkpoint ? c->checkpoint : "(none)",
             c->checkpoint_every);
    printf("siam-server %s listening on %s\n", SIAM_VERSION, addr);
    fflush(stdout);

    int sig = 0;
    sigwait(&sigs, &sig);
    LOG_INFO(COMPONENT, "%s: no new calls; letting calls in flight finish (up to %.1f s)",
             sig == SIGINT ? "SIGINT" : "SIGTERM", (double)c->grace);
    double t0 = siam_now();
    siam_averaging_shutdown(
        siam_service_averaging(svc)); /* answers waiting SyncWeights calls UNAVAILABLE */
    int cancelled = siam_rpc_server_stop(srv, c->grace);
    siam_service_set_traffic(svc, NULL, NULL); /* no Status call runs any more */
    log_traffic(srv);
    siam_rpc_server_free(srv);
    siam_rpc_shutdown();
    siam_error ck_err = {0}, gal_err = {0};
    /* no call runs any more: every add that was answered is in the store */
    int gal_rc = siam_gallery_flush(siam_service_gallery(svc), &gal_err);
    if (gal_rc)
        LOG_ERROR(COMPONENT,
                  "the gallery could not be saved at shutdown: %s; exiting with status "
                  "1: the items added since its last save are lost",
                  gal_err.msg);
    uint64_t last_round = 0;
    int ck_rc = server_final_checkpoint(&ck, &last_round, &ck_err);
    if (!ck_rc && ck.failures)
        LOG_WARN(COMPONENT,
                 "%llu checkpoint(s) could not be written during the run; the one at shutdown "
                 "(round %llu) was",
                 (unsigned long long)ck.failures, (unsigned long long)last_round);
    siam_log_limited_flush(); /* the counts of rate-limited lines not yet reported */
    LOG_INFO(COMPONENT,
             "stopped in %.2f s (%d call(s) cancelled after the grace period); %llu "
             "batches answered in total; peak_rss_mb=%.1f",
             siam_now() - t0, cancelled, (unsigned long long)siam_service_global_step(svc),
             siam_peak_rss_mb());
    if (ck_rc) {
        rc = server_model_lost(&ck, last_round, &ck_err, err);
        *reported = 1;
    } else if (gal_rc) {
        rc = siam_error_set(err, gal_rc, "%s", gal_err.msg);
        *reported = 1;
    }
    siam_service_free(svc);
    pthread_mutex_destroy(&ck.lock);
    return rc;
}

int main(int argc, char **argv) {
    /* glibc writes what it aborts for (heap corruption) to /dev/tty unless this is set: a server
     * runs without one, and its log is where the reason must be */
    setenv("LIBC_FATAL_STDERR_", "1", 0);
    config c = {.listen = "127.0.0.1:50051",
                .labels = "similar",
                .loss = "semi-hard",
                .distance = "euclidean",
                .log_level = "info",
                .margin = 1.0f,
                .hard_after = HARD_AFTER_DEFAULT,
                .threshold = 0.0f,
                .grace = 5.0f,
                .handshake_timeout = 10.0f,
                .threads = 2,
                .max_message_mb = 16,
                .min_workers = 1,
                .sync_timeout = 30.0f,
                .checkpoint_every = 10,
                .gallery_max = SIAM_GALLERY_MAX_ITEMS_DEFAULT,
                .seed = 42};
    /* --recipe: its loss-head side (loss, distance, margin, the facenet switch) becomes the
     * default that the options parsed below override; the workers take the other side */
    const char *recipe_name = siam_recipe_in_argv(argc, argv);
    if (recipe_name) {
        siam_error rerr = {0};
        const siam_recipe *r;
        if (siam_recipe_lookup(recipe_name, &r, &rerr) != SIAM_OK) {
            fprintf(stderr, "siam-server: --recipe: %s\n", rerr.msg);
            return 2;
        }
        if (r->loss)
            c.loss = r->loss;
        c.distance = r->distance;
        c.margin = r->margin;
        c.hard_after = r->hard_after;
    }
    /* --loss's choices come from lib/nn, so that a new loss needs no change here: siam_options
     * wants them '|'-separated */
    static char loss_choices[256];
    size_t o = 0;
    for (const char *p = siam_set_loss_choices(); *p && o + 1 < sizeof loss_choices; p++)
        if (*p != ' ') /* the names have no spaces: ", " separates them */
            loss_choices[o++] = *p == ',' ? '|' : *p;
    loss_choices[o] = '\0';
    /* the choices in the help text: as --loss's metavar they would not fit --help's column */
    static char loss_help[512];
    snprintf(loss_help, sizeof loss_help,
             "TrainSet's set loss with in-batch mining: %s; Train's pair loss is always "
             "contrastive",
             loss_choices);
    const siam_option opts[] = {
        {"listen", SIAM_OPT_STRING, &c.listen, 0, 0, NULL, "ADDR",
         "address to serve on; 0.0.0.0:50051 serves other hosts, port 0 picks a free one"},
        {"recipe", SIAM_OPT_STRING, &c.recipe, 0, 0, NULL, "pairs|mlp|cnn",
         "the loss side of a training recipe (--loss, --distance, --margin; docs/USAGE.md#recipes) "
         "as defaults that the other options override; start the workers with the same recipe"},
        {"margin", SIAM_OPT_FLOAT, &c.margin, 1e-6, 1e6, NULL, "M",
         "margin m of Train's contrastive loss and of the TrainSet loss"},
        {"loss", SIAM_OPT_CHOICE, &c.loss, 0, 0, loss_choices, "NAME", loss_help},
        {"distance", SIAM_OPT_CHOICE, &c.distance, 0, 0, "euclidean|squared", NULL,
         "TrainSet's distance: ||a-b|| or ||a-b||^2"},
        {"hard-after", SIAM_OPT_FLOAT, &c.hard_after, 0, 1, NULL, "F",
         "--loss facenet: semi-hard mining while a worker's progress is below F, batch-hard "
         "from F on"},
        {"label-convention", SIAM_OPT_CHOICE, &c.labels, 0, 0, "similar|dissimilar", NULL,
         "which pairs label 1 marks in the loss"},
        {"threshold", SIAM_OPT_FLOAT, &c.threshold, 0, 1e6, NULL, "T",
         "Similarity's same/different distance threshold; 0 = margin/2"},
        {"threads", SIAM_OPT_INT, &c.threads, 1, 256, NULL, "N", "threads serving calls"},
        {"max-message-mb", SIAM_OPT_INT, &c.max_message_mb, 1, 2047, NULL, "MB",
         "largest message accepted (16 MiB holds 4,096 pairs of 128 floats)"},
        {"grace", SIAM_OPT_FLOAT, &c.grace, 0, 3600, NULL, "SECONDS",
         "on SIGINT/SIGTERM, time calls in flight get to finish"},
        {"handshake-timeout", SIAM_OPT_FLOAT, &c.handshake_timeout, 0.1, 3600, NULL, "SECONDS",
         "a connection that has not finished its handshake (TLS, HTTP/2) by then is closed"},
        {"min-workers", SIAM_OPT_INT, &c.min_workers, 1, 65536, NULL, "K",
         "training waits until K workers have joined (SyncWeights)"},
        {"sync-timeout", SIAM_OPT_FLOAT, &c.sync_timeout, 0.01, 86400, NULL, "SECONDS",
         "an averaging round closes this long after its first update, with whoever reported"},
        {"checkpoint", SIAM_OPT_STRING, &c.checkpoint, 0, 0, NULL, "PATH",
         "write the global model here (atomically) every few rounds and at shutdown"},
        {"checkpoint-every", SIAM_OPT_INT, &c.checkpoint_every, 0, 1000000, NULL, "N",
         "rounds between checkpoints (0 = only at shutdown)"},
        {"resume", SIAM_OPT_STRING, &c.resume, 0, 0, NULL, "PATH",
         "start from this checkpoint: global model, round, global step"},
        {"model", SIAM_OPT_STRING, &c.model, 0, 0, NULL, "mlp|cnn|SPEC",
         "create the global model at start (default: the first worker's)"},
        {"seed", SIAM_OPT_U64, &c.seed, 0, 9e18, NULL, "N", "initialisation seed for --model"},
        {"gallery", SIAM_OPT_STRING, &c.gallery, 0, 0, NULL, "PATH",
         "Search's gallery at start: IDX images (with --gallery-labels) or a .gallery file; "
         "--resume restores the one saved beside the checkpoint instead"},
        {"gallery-labels", SIAM_OPT_STRING, &c.gallery_labels, 0, 0, NULL, "PATH",
         "IDX labels of --gallery's images (class numbers become the labels \"0\"..\"9\")"},
        {"gallery-max", SIAM_OPT_U64, &c.gallery_max, 1, SIAM_GALLERY_MAX_ITEMS_LIMIT, NULL, "N",
         "most items the gallery holds (AddToGallery beyond is RESOURCE_EXHAUSTED)"},
        {"tls-cert", SIAM_OPT_STRING, &c.tls_cert, 0, 0, NULL, "PEM",
         "serve TLS with this certificate (chain), server's first; needs --tls-key"},
        {"tls-key", SIAM_OPT_STRING, &c.tls_key, 0, 0, NULL, "PEM",
         "the certificate's private key (unencrypted; keep it chmod 600)"},
        {"tls-client-ca", SIAM_OPT_STRING, &c.tls_client_ca, 0, 0, NULL, "PEM",
         "mutual TLS: clients must present a certificate signed by a CA in this file"},
        {"auth-token-file", SIAM_OPT_STRING, &c.auth_token_file, 0, 0, NULL, "PATH",
         "every call needs 'authorization: Bearer <token>', the token on the file's first line"},
        {"log-level", SIAM_OPT_CHOICE, &c.log_level, 0, 0, "debug|info|warn|error", NULL,
         "stderr log level"},
    };
    int rc = siam_options_main("siam-server", SIAM_VERSION,
                               "Serve the loss head of split training (Train: pairs, contrastive; "
                               "TrainSet: sets, --loss), Similarity, Search against a gallery, "
                               "Status and the gRPC health check.\nWorkers (siam-client) send "
                               "embeddings; the server answers "
                               "loss, distances and gradients.",
                               opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (rc >= 0)
        return rc;
    int level;
    siam_log_parse_level(c.log_level, &level, NULL);
    siam_log_set_level(level);
    siam_malloc_keep_memory();
    if (c.hard_after != HARD_AFTER_DEFAULT && strcmp(c.loss, "facenet") != 0) {
        fprintf(stderr,
                "siam-server: --hard-after %g applies to --loss facenet only, and the loss is %s: "
                "add --loss facenet or leave --hard-after out\n",
                (double)c.hard_after, c.loss);
        return 2;
    }
    if (c.resume && c.model) {
        fprintf(stderr, "siam-server: give --resume or --model, not both (a checkpoint holds "
                        "its model)\n");
        return 2;
    }
    if (c.resume && !c.checkpoint)
        c.checkpoint = c.resume; /* go on saving where it was resumed from */
    if (c.gallery_labels && !c.gallery) {
        fprintf(stderr, "siam-server: --gallery-labels needs --gallery (the IDX images they "
                        "label)\n");
        return 2;
    }
    if ((c.tls_key || c.tls_client_ca) && !c.tls_cert) {
        fprintf(stderr, "siam-server: --tls-key and --tls-client-ca need --tls-cert (TLS is on "
                        "with --tls-cert and --tls-key)\n");
        return 2;
    }
    if (c.tls_cert && !c.tls_key) {
        fprintf(stderr, "siam-server: --tls-cert needs --tls-key (the certificate's private "
                        "key)\n");
        return 2;
    }
    siam_error err = {0};
    static char token[SIAM_AUTH_TOKEN_MAX + 64];
    if (c.auth_token_file) {
        char warning[SIAM_ERROR_MSG_MAX];
        if (siam_auth_token_load("--auth-token-file", c.auth_token_file, token, sizeof token,
                                 warning, sizeof warning, &err)) {
            fprintf(stderr, "siam-server: %s\n", err.msg);
            return 2;
        }
        if (warning[0])
            LOG_WARN(COMPONENT, "%s", warning);
        if (!c.tls_cert)
            LOG_WARN(COMPONENT, "--auth-token-file without --tls-cert: the token travels in clear "
                                "text, readable by anyone on the network path; add TLS");
        c.auth_token = token;
    }
    int usage = 0, reported = 0;
    rc = serve(&c, &err, &usage, &reported);
    siam_auth_wipe(token, sizeof token);
    if (rc) {
        if (!reported)
            fprintf(stderr, "siam-server: error: %s\n", err.msg);
        return usage ? 2 : 1;
    }
    return 0;
}
