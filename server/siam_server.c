/* siam-server: the loss head of split training. Workers stream the embeddings of their image
 * pairs (Train); the server answers every batch with the contrastive loss, the distances and the
 * gradients. Similarity, Status and the standard health check are served to any caller. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_log.h"
#include "siam_options.h"
#include "siam_rpc.h"
#include "siam_service.h"
#include "siam_tensor.h"

#define COMPONENT "server"

typedef struct {
    const char *listen, *labels, *log_level;
    float margin, threshold, grace;
    int threads, max_message_mb;
} config;

/* ---- Train streams: one siam_train_stream per open stream ---- */

typedef struct {
    siam_train_stream ts;
    char peer[128];
    double opened;
} train_stream;

static void *train_open(void *ctx, const siam_rpc_call_info *call) {
    (void)ctx;
    train_stream *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    snprintf(t->peer, sizeof t->peer, "%s", call->peer ? call->peer : "?");
    t->opened = siam_now();
    LOG_DEBUG(COMPONENT, "Train stream opened by %s", t->peer);
    return t;
}

static int train_message(void *ctx, void *stream, const uint8_t *req, size_t len,
                         siam_rpc_buf *resp, siam_rpc_status *st) {
    train_stream *t = stream;
    if (!t)
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "the server is out of memory for a new stream");
    int rc = siam_service_train(ctx, &t->ts, req, len, resp, st);
    if (rc != SIAM_RPC_OK)
        LOG_WARN(COMPONENT, "Train from %s (%s): %s: %s",
                 t->ts.worker_id[0] ? t->ts.worker_id : "?", t->peer, siam_rpc_code_name(rc),
                 st->msg);
    return rc;
}

static void train_close(void *ctx, void *stream, const siam_rpc_status *final) {
    (void)ctx;
    train_stream *t = stream;
    if (!t)
        return;
    double secs = siam_now() - t->opened;
    LOG_INFO(COMPONENT,
             "stream of %s (%s) ended %s%s%s: %llu batches, %llu pairs, mean loss %.4f, %.1f s, "
             "%.0f pairs/s",
             t->ts.worker_id[0] ? t->ts.worker_id : "unnamed worker", t->peer,
             siam_rpc_code_name(final->code), final->code ? ": " : "",
             final->code ? final->msg : "", (unsigned long long)t->ts.batches,
             (unsigned long long)t->ts.pairs,
             t->ts.pairs ? t->ts.loss_sum / (double)t->ts.pairs : 0.0, secs,
             secs > 0 ? (double)t->ts.pairs / secs : 0.0);
    free(t);
}

/* ---- unary methods ---- */

static int similarity(void *ctx, const siam_rpc_call_info *call, const uint8_t *req, size_t len,
                      siam_rpc_buf *resp, siam_rpc_status *st) {
    int rc = siam_service_similarity(ctx, req, len, resp, st);
    if (rc != SIAM_RPC_OK)
        LOG_DEBUG(COMPONENT, "Similarity from %s: %s: %s", call->peer, siam_rpc_code_name(rc),
                  st->msg);
    return rc;
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

/* "host:0" -> "host:PORT" for the ready line. */
static void bound_address(char *out, size_t n, const char *listen, int port) {
    const char *colon = strrchr(listen, ':');
    if (colon && strncmp(listen, "unix:", 5) != 0)
        snprintf(out, n, "%.*s:%d", (int)(colon - listen), listen, port);
    else
        snprintf(out, n, "%s", listen);
}

static int serve(const config *c, siam_error *err) {
    siam_label_convention conv =
        strcmp(c->labels, "dissimilar") == 0 ? SIAM_LABELS_DISSIMILAR : SIAM_LABELS_SIMILAR;
    siam_service *svc = calloc(1, sizeof *svc); /* the worker table is large for a stack */
    if (!svc)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
    int rc = siam_service_init(svc, c->margin, conv, c->threshold, SIAM_VERSION, err);
    if (rc) {
        free(svc);
        return rc;
    }

    /* SIGINT/SIGTERM are taken with sigwait below; block them before gRPC starts its threads so
     * that every thread inherits the mask */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    siam_rpc_init();

    static const siam_rpc_stream_handler train = {train_open, train_message, train_close};
    siam_rpc_server *srv = NULL;
    siam_rpc_server_config sc = {c->listen, c->threads, (size_t)c->max_message_mb << 20};
    int port = 0;
    if ((rc = siam_rpc_server_create(&srv, &sc, err)) ||
        (rc = siam_rpc_server_add_stream(srv, SIAM_METHOD_TRAIN, &train, svc, err)) ||
        (rc = siam_rpc_server_add_unary(srv, SIAM_METHOD_SIMILARITY, similarity, svc, err)) ||
        (rc = siam_rpc_server_add_unary(srv, SIAM_METHOD_STATUS, status, svc, err)) ||
        (rc = siam_rpc_server_add_unary(srv, SIAM_METHOD_HEALTH_CHECK, health, svc, err)) ||
        (rc = siam_rpc_server_start(srv, &port, err))) {
        siam_rpc_server_free(srv);
        siam_rpc_shutdown();
        siam_service_free(svc);
        free(svc);
        return rc;
    }
    char addr[300];
    bound_address(addr, sizeof addr, c->listen, port);
    LOG_INFO(COMPONENT,
             "margin %g, label 1 = %s pairs, similarity threshold %g, %d threads, messages up to "
             "%d MiB, gRPC core %s",
             (double)svc->margin, c->labels, (double)svc->threshold, c->threads, c->max_message_mb,
             siam_rpc_core_version());
    printf("siam-server %s listening on %s\n", SIAM_VERSION, addr);
    fflush(stdout);

    int sig = 0;
    sigwait(&sigs, &sig);
    LOG_INFO(COMPONENT, "%s: no new calls; letting calls in flight finish (up to %.1f s)",
             sig == SIGINT ? "SIGINT" : "SIGTERM", (double)c->grace);
    double t0 = siam_now();
    int cancelled = siam_rpc_server_stop(srv, c->grace);
    siam_rpc_server_free(srv);
    siam_rpc_shutdown();
    LOG_INFO(COMPONENT,
             "stopped in %.2f s (%d call(s) cancelled after the grace period); %llu "
             "batches answered in total; peak_rss_mb=%.1f",
             siam_now() - t0, cancelled, (unsigned long long)svc->global_step, siam_peak_rss_mb());
    siam_service_free(svc);
    free(svc);
    return SIAM_OK;
}

int main(int argc, char **argv) {
    config c = {.listen = "127.0.0.1:50051",
                .labels = "similar",
                .log_level = "info",
                .margin = 1.0f,
                .threshold = 0.0f,
                .grace = 5.0f,
                .threads = 2,
                .max_message_mb = 16};
    const siam_option opts[] = {
        {"listen", SIAM_OPT_STRING, &c.listen, 0, 0, NULL, "ADDR",
         "address to serve on; 0.0.0.0:50051 serves other hosts, port 0 picks a free one"},
        {"margin", SIAM_OPT_FLOAT, &c.margin, 1e-6, 1e6, NULL, "M", "contrastive margin m"},
        {"label-convention", SIAM_OPT_CHOICE, &c.labels, 0, 0, "similar|dissimilar", NULL,
         "which pairs label 1 marks in the loss"},
        {"threshold", SIAM_OPT_FLOAT, &c.threshold, 0, 1e6, NULL, "T",
         "Similarity's same/different distance threshold; 0 = margin/2"},
        {"threads", SIAM_OPT_INT, &c.threads, 1, 256, NULL, "N", "threads serving calls"},
        {"max-message-mb", SIAM_OPT_INT, &c.max_message_mb, 1, 2047, NULL, "MB",
         "largest message accepted (16 MiB holds 4,096 pairs of 128 floats)"},
        {"grace", SIAM_OPT_FLOAT, &c.grace, 0, 3600, NULL, "SECONDS",
         "on SIGINT/SIGTERM, time calls in flight get to finish"},
        {"log-level", SIAM_OPT_CHOICE, &c.log_level, 0, 0, "debug|info|warn|error", NULL,
         "stderr log level"},
    };
    int rc = siam_options_main("siam-server", SIAM_VERSION,
                               "Serve the loss head of split training (Train), Similarity, Status "
                               "and the gRPC health check.\nWorkers (siam-client) send "
                               "embeddings; the server answers loss, distances and gradients.",
                               opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (rc >= 0)
        return rc;
    int level;
    siam_log_parse_level(c.log_level, &level, NULL);
    siam_log_set_level(level);
    siam_malloc_keep_memory();
    siam_error err = {0};
    if (serve(&c, &err)) {
        fprintf(stderr, "siam-server: error: %s\n", err.msg);
        return 1;
    }
    return 0;
}
