/* siam-client: one training worker of split learning. It owns the data, the embedding network
 * and the optimizer; siam-server holds the loss head and answers every batch of embeddings on a
 * Train stream with the loss, the distances and the gradients the worker backpropagates. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "siam/v1/siam.pb-c.h"
#include "siam_auth.h"
#include "siam_dataset.h"
#include "siam_eval.h"
#include "siam_log.h"
#include "siam_memory.h"
#include "siam_model.h"
#include "siam_options.h"
#include "siam_encoding.h"
#include "siam_remote_head.h"
#include "siam_remote_set_head.h"
#include "siam_retry.h"
#include "siam_rpc.h"
#include "siam_search.h"
#include "siam_tensor.h"
#include "siam_weight_sync.h"
#include "siam_wire.h"
#include "siam_worker.h"

#define COMPONENT        "client"
#define PROG             "siam-client"
#define STATUS_TIMEOUT_S 10.0

typedef struct {
    siam_worker_config w; /* the options shared with siam-train */
    const char *server, *worker_id, *log_level;
    const char *wire;      /* --wire: the encoding of embeddings up and gradients down */
    const char *sync_wire; /* --sync-wire: the encoding of the parameters both ways */
    const char *tls_ca, *tls_cert, *tls_key, *tls_server_name, *auth_token_file;
    const char *auth_token; /* read from auth_token_file */
    int threads, max_message_mb, sync_every, in_flight;
    float timeout, retry_for;
    const siam_recipe *recipe; /* --recipe, or NULL */
} config;

/* What the server said about itself. */
typedef struct {
    float margin;
    siam_label_convention conv;
    double sync_timeout;
    char loss[32]; /* the TrainSet loss (siam-server --loss); "" from a server without one */
} server_settings;

/* Wraps the remote head to time the span from the first batch sent to the last answer. */
typedef struct {
    siam_remote_head *remote;
    uint64_t batches;
    double first, last;
} timed_head;

/* The same for the set head. */
static int timed_set_head_fn(void *ctx, const float *emb, const uint32_t *groups, int n, int dim,
                             float *loss, float *grad, siam_set_loss_stats *stats,
                             siam_error *err) {
    timed_head *t = ctx;
    double t0 = siam_now();
    if (t->batches == 0)
        t->first = t0;
    int rc = siam_remote_set_head_fn(t->remote, emb, groups, n, dim, loss, grad, stats, err);
    t->last = siam_now();
    if (rc == SIAM_OK)
        t->batches++;
    return rc;
}

static int timed_head_fn(void *ctx, const float *left, const float *right, const uint32_t *labels,
                         int B, int dim, float *loss, float *dist, float *grad_left,
                         float *grad_right, siam_idle_fn idle, void *idle_ctx, siam_error *err) {
    timed_head *t = ctx;
    double t0 = siam_now();
    if (t->batches == 0)
        t->first = t0;
    int rc = siam_remote_head_fn(t->remote, left, right, labels, B, dim, loss, dist, grad_left,
                                 grad_right, idle, idle_ctx, err);
    t->last = siam_now();
    if (rc == SIAM_OK)
        t->batches++;
    return rc;
}

/* The split head's halves (--in-flight), timed the same way: first send to last answer. */
static int timed_send(void *ctx, const float *left, const float *right, const uint32_t *labels,
                      int B, int dim, siam_error *err) {
    timed_head *t = ctx;
    if (t->batches == 0 && t->first == 0.0)
        t->first = siam_now();
    return siam_remote_head_send(t->remote, left, right, labels, B, dim, err);
}

static int timed_receive(void *ctx, int B, int dim, float *loss, float *dist, float *grad_left,
                         float *grad_right, siam_error *err) {
    timed_head *t = ctx;
    int rc = siam_remote_head_receive(t->remote, B, dim, loss, dist, grad_left, grad_right, err);
    t->last = siam_now();
    if (rc == SIAM_OK)
        t->batches++;
    return rc;
}

/* The worker's report and metrics read the channel's counts. */
static int channel_traffic(void *ctx, siam_rpc_traffic *rows, int max) {
    return siam_rpc_channel_traffic(ctx, rows, max);
}

/* One line per RPC at the end: what this worker moved (serialized messages; siam_rpc.h). */
static void log_traffic(siam_rpc_channel *ch) {
    siam_rpc_traffic rows[SIAM_RPC_TRAFFIC_MAX];
    int n = siam_rpc_channel_traffic(ch, rows, SIAM_RPC_TRAFFIC_MAX);
    for (int i = 0; i < n; i++)
        LOG_INFO(COMPONENT,
                 "traffic %s: calls=%llu messages_sent=%llu bytes_sent=%llu "
                 "messages_received=%llu bytes_received=%llu",
                 rows[i].method, (unsigned long long)rows[i].calls,
                 (unsigned long long)rows[i].messages_sent, (unsigned long long)rows[i].bytes_sent,
                 (unsigned long long)rows[i].messages_received,
                 (unsigned long long)rows[i].bytes_received);
}

static void print_unreachable(const char *server, const siam_rpc_status *st, const char *why) {
    fprintf(stderr,
            PROG ": cannot reach siam-server at %s (%s: %s%s). Is it running? Start it with: "
                 "siam-server --listen %s\n",
            server, siam_rpc_code_name(st->code), st->msg[0] ? st->msg : "no message", why, server);
}

/* A failure no retry can fix (TLS refused, token refused, ...): what, and which server. */
static void print_refused(const char *server, const siam_rpc_status *st) {
    fprintf(stderr, PROG ": error: siam-server at %s: %s: %s\n", server,
            siam_rpc_code_name(st->code), st->msg[0] ? st->msg : "no message");
}

/* Whether the server's list (a Status field) has the encoding --flag asks for; says why not. A
 * server older than the field lists nothing and takes fp32 only. */
static int server_accepts(const char *server, const char *flag, const char *want, char *const *list,
                          size_t n) {
    int accepted = strcmp(want, "fp32") == 0; /* every server takes fp32 */
    for (size_t i = 0; i < n; i++)
        accepted |= strcmp(list[i], want) == 0;
    if (accepted)
        return 1;
    char names[128] = "fp32";
    for (size_t i = 0, o = 0; i < n && o < sizeof names; i++)
        o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "", list[i]);
    fprintf(stderr,
            PROG ": error: siam-server at %s does not accept --%s %s: it accepts %s; choose one "
                 "of those or upgrade the server\n",
            server, flag, want, names);
    return 0;
}

/* Status: the server's margin and label convention (the evaluation threshold is margin/2). Returns
 * 0, or 1 after printing why not (one line). */
static int query_status(siam_rpc_channel *ch, const config *c, siam_retry *retry,
                        server_settings *out) {
    static const uint8_t empty[1];
    siam_rpc_buf resp = {0};
    siam_rpc_status st = {0};
    double timeout = c->timeout < STATUS_TIMEOUT_S ? c->timeout : STATUS_TIMEOUT_S;
    int code;
    char why[256] = "";
    /* a worker may be started before its server: the first call retries like any other */
    while ((code = siam_rpc_call(ch, SIAM_METHOD_STATUS, empty, 0, timeout, &resp, &st)) !=
               SIAM_RPC_OK &&
           siam_retry_again(retry, ch, c->server, "Status", &st, why, sizeof why))
        siam_rpc_buf_free(&resp);
    double outage = code == SIAM_RPC_OK ? siam_retry_success(retry, siam_now()) : -1.0;
    if (outage >= 0)
        LOG_INFO(COMPONENT, "siam-server at %s answered after %.1f s", c->server, outage);
    if (siam_rpc_status_is_permanent(&st)) {
        siam_rpc_buf_free(&resp);
        print_refused(c->server, &st);
        return 1;
    }
    if (code == SIAM_RPC_UNAVAILABLE || code == SIAM_RPC_DEADLINE_EXCEEDED) {
        siam_rpc_buf_free(&resp);
        print_unreachable(c->server, &st, why);
        return 1;
    }
    if (code != SIAM_RPC_OK) {
        siam_rpc_buf_free(&resp);
        fprintf(stderr, PROG ": error: siam-server at %s: Status failed: %s: %s\n", c->server,
                siam_rpc_code_name(code), st.msg[0] ? st.msg : "no message");
        return 1;
    }
    Siam__V1__StatusResponse *s = siam__v1__status_response__unpack(NULL, resp.len, resp.data);
    siam_rpc_buf_free(&resp);
    if (!s) {
        fprintf(stderr,
                PROG ": error: siam-server at %s: the Status answer is not a "
                     "StatusResponse\n",
                c->server);
        return 1;
    }
    int rc = 0;
    if (!isfinite(s->margin) || s->margin <= 0.0f) {
        fprintf(stderr,
                PROG ": error: siam-server at %s: margin %g in its Status is not positive\n",
                c->server, (double)s->margin);
        rc = 1;
    } else if (strcmp(s->label_convention, "similar") == 0) {
        out->conv = SIAM_LABELS_SIMILAR;
    } else if (strcmp(s->label_convention, "dissimilar") == 0) {
        out->conv = SIAM_LABELS_DISSIMILAR;
    } else {
        fprintf(stderr,
                PROG ": error: siam-server at %s: label convention '%s' in its Status is not "
                     "similar|dissimilar\n",
                c->server, s->label_convention);
        rc = 1;
    }
    if (rc == 0) {
        out->margin = s->margin;
        out->sync_timeout = s->sync_timeout_seconds;
        snprintf(out->loss, sizeof out->loss, "%s", s->loss ? s->loss : "");
        LOG_INFO(COMPONENT,
                 "siam-server %s at %s: margin=%g label_convention=%s threshold=%g "
                 "global_step=%llu workers=%zu model=%s",
                 s->version[0] ? s->version : "(unknown version)", c->server, (double)s->margin,
                 s->label_convention, (double)s->margin / 2, (unsigned long long)s->global_step,
                 s->n_workers, s->model_spec[0] ? s->model_spec : "(none yet)");
        if (strcmp(c->w.head, "set") == 0) {
            if (!out->loss[0]) {
                fprintf(stderr,
                        PROG ": error: siam-server at %s names no set loss in its Status: it "
                             "has no TrainSet for --head set; upgrade it or use --head pairs\n",
                        c->server);
                rc = 1;
            } else {
                LOG_INFO(COMPONENT,
                         "--head set: the server's set loss is %s (margin %g; siam-server --loss "
                         "decides it)%s",
                         out->loss, (double)s->margin,
                         strcmp(out->loss, "facenet") == 0
                             ? "; semi-hard mining until the server's --hard-after fraction of "
                               "this worker's training (sent with every set), batch-hard after"
                             : "");
            }
        }
        const siam_recipe *r = c->recipe;
        if (r && ((r->loss && strcmp(c->w.head, "set") == 0 && strcmp(out->loss, r->loss) != 0) ||
                  s->margin != r->margin))
            LOG_WARN(
                COMPONENT,
                "--recipe %s expects the loss %s with margin %g, and the server has %s with "
                "margin %g: the figures in docs/BENCHMARKS.md assume both sides run the recipe "
                "(siam-server --recipe %s)",
                r->name, r->loss ? r->loss : "contrastive", (double)r->margin,
                strcmp(c->w.head, "set") == 0 ? out->loss : "contrastive", (double)s->margin,
                r->name);
        if (!server_accepts(c->server, "wire", c->wire, s->wire_encodings, s->n_wire_encodings) ||
            (c->sync_every > 0 && !server_accepts(c->server, "sync-wire", c->sync_wire,
                                                  s->sync_encodings, s->n_sync_encodings)))
            rc = 1;
        const char *mine = siam_model_spec_for(c->w.model);
        if (s->model_spec[0] && mine && strcmp(s->model_spec, mine) != 0)
            LOG_WARN(COMPONENT, "the server's global model is %s; this worker trains %s",
                     s->model_spec, mine);
    }
    siam__v1__status_response__free_unpacked(s, NULL);
    return rc;
}

/* siam_retry's check before every attempt of an outage: a server that answers Status must still
 * have the margin and label convention this worker trains with (restarted with other flags, it
 * would change the loss under the worker). */
typedef struct {
    siam_rpc_channel *ch;
    const config *c;
    const server_settings *srv;
} settings_check;

static int same_settings(void *ctx, char *why, size_t cap) {
    static const uint8_t empty[1];
    const settings_check *k = ctx;
    siam_rpc_buf resp = {0};
    siam_rpc_status st = {0};
    double timeout = k->c->timeout < STATUS_TIMEOUT_S ? k->c->timeout : STATUS_TIMEOUT_S;
    if (siam_rpc_call(k->ch, SIAM_METHOD_STATUS, empty, 0, timeout, &resp, &st) != SIAM_RPC_OK) {
        siam_rpc_buf_free(&resp);
        return 0; /* not back yet: the attempt fails and is retried */
    }
    Siam__V1__StatusResponse *s = siam__v1__status_response__unpack(NULL, resp.len, resp.data);
    siam_rpc_buf_free(&resp);
    if (!s)
        return 0;
    const char *conv = k->srv->conv == SIAM_LABELS_DISSIMILAR ? "dissimilar" : "similar";
    int changed = s->margin != k->srv->margin || strcmp(s->label_convention, conv) != 0;
    /* a set worker's loss is the server's --loss: a restart with another one changes it too */
    if (!changed && strcmp(k->c->w.head, "set") == 0 &&
        strcmp(s->loss ? s->loss : "", k->srv->loss) != 0) {
        snprintf(why, cap,
                 "; the server came back with set loss %.32s, this worker trains with %s: "
                 "restart the workers with it",
                 s->loss ? s->loss : "", k->srv->loss);
        changed = 1;
    } else if (changed)
        snprintf(why, cap,
                 "; the server came back with margin %g and label convention %.16s, this worker "
                 "trains with margin %g and %s: restart the workers with it",
                 (double)s->margin, s->label_convention, (double)k->srv->margin, conv);
    siam__v1__status_response__free_unpacked(s, NULL);
    return changed;
}

/* The whole session on an rpc layer already initialised. Returns the exit code (2 when the TLS
 * files are unusable, as for a bad command line). */
static int session(const config *c) {
    siam_rpc_channel *ch = NULL;
    siam_error err = {0};
    siam_rpc_status st = {0};
    server_settings srv = {0};
    int rc = 1;
    siam_retry retry; /* one budget per outage, shared by every call to the server */
    siam_retry_init(&retry, (double)c->retry_for,
                    (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(siam_now() * 1e6));
    float progress = 0.0f; /* the set trainer's, sent with every set (facenet switches on it) */
    siam_remote_head remote = {.timeout = (double)c->timeout,
                               .retry = &retry,
                               .server = c->server,
                               .worker_id = c->worker_id,
                               .progress = &progress,
                               .omit_grad_right = 1};
    siam_encoding wire = SIAM_ENC_FP32;
    siam_encoding_parse(c->wire, &wire, NULL); /* a choice option: always one of the names */
    remote.encoding = (int)wire;

    siam_rpc_channel_config cc = {.target = c->server,
                                  .max_message_bytes = (size_t)c->max_message_mb * 1024u * 1024u,
                                  .tls_ca = c->tls_ca,
                                  .tls_cert = c->tls_cert,
                                  .tls_key = c->tls_key,
                                  .tls_server_name = c->tls_server_name,
                                  .auth_token = c->auth_token};
    if (siam_rpc_channel_create_ex(&ch, &cc, &err) != SIAM_OK) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        rc = 2;
        goto done;
    }
    if (query_status(ch, c, &retry, &srv) != 0)
        goto done;
    settings_check check = {ch, c, &srv};
    retry.check = same_settings;
    retry.check_ctx = &check;
    LOG_INFO(COMPONENT, "worker %s (%d of %d) training on siam-server at %s", c->worker_id,
             c->w.worker_index, c->w.workers, c->server);

    remote.ch = ch; /* the head opens the Train stream with the first batch */
    timed_head timed = {.remote = &remote};
    siam_worker_config wc = c->w;
    wc.margin = srv.margin;
    wc.conv = srv.conv;
    /* a round may wait the server's sync timeout for the slowest worker, then answer */
    siam_weight_sync sync = {.ch = ch,
                             .retry = &retry,
                             .server = c->server,
                             .worker_id = c->worker_id,
                             .timeout = (double)c->timeout > srv.sync_timeout + 30.0
                                            ? (double)c->timeout
                                            : srv.sync_timeout + 30.0};
    siam_encoding sync_wire = SIAM_ENC_FP32;
    siam_encoding_parse(c->sync_wire, &sync_wire, NULL); /* a choice option, as --wire */
    sync.encoding = (int)sync_wire;
    if (c->sync_every > 0) {
        wc.sync = siam_weight_sync_fn;
        wc.sync_ctx = &sync;
        wc.sync_every = c->sync_every;
    }
    wc.in_flight = c->in_flight;
    wc.split = (siam_split_head){timed_send, timed_receive, &timed};
    wc.set_head = timed_set_head_fn; /* used with --head set: the stream is then TrainSet */
    wc.set_head_ctx = &timed;
    wc.set_progress = &progress;
    wc.traffic = channel_traffic;
    wc.traffic_ctx = ch;
    double t0 = siam_now();
    if (siam_worker_run(&wc, timed_head_fn, &timed, &err) != SIAM_OK) {
        fprintf(stderr, PROG ": error: %s\n", err.msg);
        goto done;
    }
    double run_s = siam_now() - t0;
    int code = remote.stream ? siam_rpc_stream_close(remote.stream, &st) : SIAM_RPC_OK;
    if (code != SIAM_RPC_OK && siam_retry_code_is_transient(code) && c->retry_for > 0) {
        /* every batch was answered: a server gone since then costs nothing */
        LOG_WARN(COMPONENT, "the %s stream ended with %s after the last answer: %s",
                 strcmp(c->w.head, "set") == 0 ? "TrainSet" : "Train", siam_rpc_code_name(code),
                 st.msg[0] ? st.msg : "no message");
    } else if (code != SIAM_RPC_OK) {
        fprintf(stderr, PROG ": error: siam-server at %s: the %s stream ended with %s: %s\n",
                c->server, strcmp(c->w.head, "set") == 0 ? "TrainSet" : "Train",
                siam_rpc_code_name(code), st.msg[0] ? st.msg : "no message");
        goto done;
    }
    double span = timed.batches ? timed.last - timed.first : 0.0;
    LOG_INFO(COMPONENT,
             "done: %llu batches; rpc_seconds=%.2f of train_seconds=%.2f (%.0f%% waiting for the "
             "server; first batch to last answer); %llu averaging round(s) (%llu late), "
             "sync_seconds=%.2f; total %.2f s; peak_rss_mb=%.1f; reconnects=%llu (%.1f s "
             "without the server), resent_batches=%llu",
             (unsigned long long)timed.batches, remote.rpc_seconds, span,
             span > 0 ? 100.0 * remote.rpc_seconds / span : 0.0, (unsigned long long)sync.syncs,
             (unsigned long long)sync.late, sync.wait_seconds, run_s, siam_peak_rss_mb(),
             (unsigned long long)retry.reconnects, retry.outage_seconds,
             (unsigned long long)remote.resent);
    log_traffic(ch);
    rc = 0;

done:
    siam_rpc_stream_free(remote.stream);
    siam_remote_head_free_unanswered(&remote);
    siam_rpc_channel_free(ch);
    return rc;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "evaluate") == 0)
        return siam_eval_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "predict") == 0)
        return siam_predict_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "search") == 0)
        return siam_search_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "gallery-add") == 0)
        return siam_gallery_add_main(argc - 1, argv + 1);
    config c = {.w = {.prog = PROG},
                .server = "127.0.0.1:50051",
                .log_level = "info",
                .wire = "fp32",
                .sync_wire = "fp32",
                .max_message_mb = 16,
                .sync_every = 50,
                .in_flight = 1,
                .timeout = 60.0f,
                .retry_for = 60.0f};
    siam_option opts[SIAM_WORKER_N_OPTIONS + 15];
    int n_opts = 0;
    opts[n_opts++] = (siam_option){"server",  SIAM_OPT_STRING,
                                   &c.server, 0,
                                   0,         NULL,
                                   "ADDR",    "siam-server address (host:port)"};
    siam_worker_options(&c.w, &c.threads, opts + n_opts);
    n_opts += SIAM_WORKER_N_OPTIONS;
    /* the recipe's loss, distance and margin are the server's (siam-server --recipe); the worker
     * takes its side and checks the server's loss against it once connected */
    const siam_recipe *recipe;
    int rc = siam_worker_preset(&c.w, argc, argv, &recipe);
    if (rc >= 0)
        return rc;
    if (recipe)
        c.sync_every = recipe->sync_every;
    c.recipe = recipe;
    opts[n_opts++] = (siam_option){"worker-id",
                                   SIAM_OPT_STRING,
                                   &c.worker_id,
                                   0,
                                   0,
                                   NULL,
                                   "NAME",
                                   "name sent with every batch (default <hostname>-w<I>)"};
    opts[n_opts++] = (siam_option){
        "sync-every",
        SIAM_OPT_INT,
        &c.sync_every,
        0,
        1000000000,
        NULL,
        "K",
        "average weights with the other workers on the server every K steps and at the end of "
        "every epoch (0 = never)"};
    opts[n_opts++] = (siam_option){"wire",
                                   SIAM_OPT_CHOICE,
                                   &c.wire,
                                   0,
                                   0,
                                   "fp32|fp16|bf16|int8",
                                   NULL,
                                   "encoding of the embeddings sent and the gradients received: "
                                   "fp16 and bf16 halve the bytes, int8 quarters them (rounded; "
                                   "accuracy in docs/BENCHMARKS.md)"};
    opts[n_opts++] = (siam_option){"sync-wire",
                                   SIAM_OPT_CHOICE,
                                   &c.sync_wire,
                                   0,
                                   0,
                                   "fp32|fp16|bf16|int8",
                                   NULL,
                                   "encoding of the weights sent to averaging and of the global "
                                   "weights received: fp16 and bf16 halve the bytes of a round, "
                                   "each round rounds the weights once (docs/DISTRIBUTED.md)"};
    opts[n_opts++] = (siam_option){"in-flight",
                                   SIAM_OPT_INT,
                                   &c.in_flight,
                                   1,
                                   SIAM_TRAINER_MAX_IN_FLIGHT,
                                   NULL,
                                   "K",
                                   "--head pairs: send up to K batches before the first answer "
                                   "comes back (hides the link's latency; each batch's gradient "
                                   "is applied up to K-1 steps late)"};
    opts[n_opts++] = (siam_option){
        "timeout", SIAM_OPT_FLOAT, &c.timeout, 0.1,
        86400,     NULL,           "SECONDS",  "longest wait for the server on any call or answer"};
    opts[n_opts++] = (siam_option){"retry-for",
                                   SIAM_OPT_FLOAT,
                                   &c.retry_for,
                                   0,
                                   86400,
                                   NULL,
                                   "SECONDS",
                                   "keep retrying a server that is down or restarting this long "
                                   "per outage, with backoff (0 = fail at once)"};
    opts[n_opts++] = (siam_option){"max-message-mb",
                                   SIAM_OPT_INT,
                                   &c.max_message_mb,
                                   1,
                                   2047,
                                   NULL,
                                   "MB",
                                   "largest gRPC message sent or received"};
    opts[n_opts++] = (siam_option){"tls-ca",
                                   SIAM_OPT_STRING,
                                   &c.tls_ca,
                                   0,
                                   0,
                                   NULL,
                                   "PEM",
                                   "connect with TLS; the server's certificate must be signed by a "
                                   "CA in this file"};
    opts[n_opts++] =
        (siam_option){"tls-cert",  SIAM_OPT_STRING,
                      &c.tls_cert, 0,
                      0,           NULL,
                      "PEM",       "mutual TLS: this worker's certificate (with --tls-key)"};
    opts[n_opts++] =
        (siam_option){"tls-key",  SIAM_OPT_STRING,
                      &c.tls_key, 0,
                      0,          NULL,
                      "PEM",      "mutual TLS: the certificate's private key (unencrypted)"};
    opts[n_opts++] = (siam_option){"tls-server-name",
                                   SIAM_OPT_STRING,
                                   &c.tls_server_name,
                                   0,
                                   0,
                                   NULL,
                                   "NAME",
                                   "the name the server's certificate must hold (default: the "
                                   "host of --server)"};
    opts[n_opts++] = (siam_option){"auth-token-file",
                                   SIAM_OPT_STRING,
                                   &c.auth_token_file,
                                   0,
                                   0,
                                   NULL,
                                   "PATH",
                                   "send 'authorization: Bearer <token>' on every call, the token "
                                   "on the file's first line"};
    opts[n_opts++] =
        (siam_option){"log-level", SIAM_OPT_CHOICE,         &c.log_level, 0,
                      0,           "debug|info|warn|error", NULL,         "stderr log level"};
    rc = siam_options_main(
        PROG, SIAM_VERSION,
        "Train the Siamese embedding network as one worker of split learning: this program owns\n"
        "the data, the network and the optimizer; siam-server computes the contrastive loss and\n"
        "returns its gradients. The evaluation threshold is the server's margin / 2.\n\n"
        "Subcommands (see their --help):\n"
        "  siam-client evaluate --checkpoint PATH   pair metrics and kNN accuracy of a model\n"
        "  siam-client predict --checkpoint PATH (--test-index I J | --image A.pgm B.pgm)\n"
        "                                           distance, score and verdict of one pair\n"
        "  siam-client search (--image A.pgm ... | --test-index LIST) [-k N] [--picture PNG]\n"
        "                                           the nearest items of the server's gallery\n"
        "  siam-client gallery-add (--image A.pgm ... | --test-index LIST) [--label NAME]\n"
        "                                           add labelled images to the server's gallery",
        opts, n_opts, argc, argv);
    if (rc >= 0 || (rc = siam_worker_check_options(&c.w)) >= 0)
        return rc;
    int level;
    siam_log_parse_level(c.log_level, &level, NULL);
    siam_log_set_level(level);
    siam_malloc_keep_memory();
    char worker_id[320];
    if (!c.worker_id) {
        char host[256];
        if (gethostname(host, sizeof host) != 0 || !host[0])
            strcpy(host, "worker");
        host[sizeof host - 1] = '\0';
        snprintf(worker_id, sizeof worker_id, "%s-w%d", host, c.w.worker_index);
        c.worker_id = worker_id;
    }
    siam_blas_set_threads(c.threads);
    if (!c.tls_ca && (c.tls_cert || c.tls_key || c.tls_server_name)) {
        fprintf(stderr, PROG ": --tls-cert, --tls-key and --tls-server-name need --tls-ca (the CA "
                             "certificate that signed the server's certificate)\n");
        return 2;
    }
    if (!c.tls_cert != !c.tls_key) {
        fprintf(stderr, PROG ": mutual TLS needs both --tls-cert and --tls-key\n");
        return 2;
    }
    static char token[SIAM_AUTH_TOKEN_MAX + 64];
    if (c.auth_token_file) {
        char warning[SIAM_ERROR_MSG_MAX];
        siam_error err = {0};
        if (siam_auth_token_load("--auth-token-file", c.auth_token_file, token, sizeof token,
                                 warning, sizeof warning, &err)) {
            fprintf(stderr, PROG ": %s\n", err.msg);
            return 2;
        }
        if (warning[0])
            LOG_WARN(COMPONENT, "%s", warning);
        if (!c.tls_ca)
            LOG_WARN(COMPONENT, "--auth-token-file without --tls-ca: the token is sent in clear "
                                "text, readable by anyone on the network path; use TLS");
        c.auth_token = token;
    }

    siam_rpc_init();
    rc = session(&c);
    siam_rpc_shutdown();
    siam_auth_wipe(token, sizeof token);
    return rc;
}
