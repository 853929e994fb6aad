/* siam_rpc_server: a gRPC C core server with one completion queue served by a few threads, a
 * state machine per call (unary, and bidirectional streams that answer each message), an
 * UNIMPLEMENTED answer for unknown methods, and a graceful stop.
 *
 * Every tag handed to the core is a `struct tag` embedded in its call's context; every tag comes
 * back exactly once (success or not), and a call's context is freed when its last outstanding
 * tag has come back. */
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "siam_auth.h"
#include "siam_log.h"
#include "siam_rpc_accept_guard.h"
#include "siam_rpc.h"
#include "siam_rpc_internal.h"
#include "siam_rpc_server_test.h"
#include "siam_x509.h"

#define COMPONENT   "rpc"
#define MAX_METHODS 16

enum tag_kind {
    T_UNARY_NEW,
    T_UNARY_DONE,
    T_STREAM_NEW,
    T_STREAM_MD,
    T_STREAM_CLOSE,
    T_STREAM_READ,
    T_STREAM_WRITE,
    T_STREAM_STATUS,
    T_GENERIC_NEW,
    T_GENERIC_DONE,
    T_SHUTDOWN,
};

struct tag {
    enum tag_kind kind;
    void *owner;
};

typedef struct {
    char *path;
    int stream;
    siam_rpc_unary_fn unary;
    siam_rpc_deferred_fn deferred; /* instead of unary: answers later with siam_rpc_reply_send */
    const siam_rpc_stream_handler *handler;
    void *ctx;
    void *handle; /* grpc_server_register_method */
} method;

struct siam_rpc_server {
    grpc_server *server;
    grpc_completion_queue *cq;
    method methods[MAX_METHODS];
    int n_methods;
    int n_threads;
    pthread_t *threads;
    int started, stopped;
    char listen[256];
    size_t max_message;
    int handshake_timeout_ms;
    int guarding;          /* siam_rpc_accept_guard_enable was called */
    int drained;           /* the cq has been shut down and emptied */
    char unknown_msg[512]; /* the UNIMPLEMENTED message lists the methods served */

    pthread_mutex_t lock; /* shutting_down, shutdown_done, live_calls, armed */
    pthread_cond_t cond;  /* on CLOCK_MONOTONIC: a clock step must not stretch the grace period */
    clockid_t cond_clock;
    int shutting_down, shutdown_done;
    int live_calls;  /* calls handed to this layer and not finished */
    int armed;       /* request_*_call tags out with gRPC: each may come back as a new call */
    int fail_thread; /* tests: creating cq thread fail_thread (1-based) fails */
    struct tag shutdown_tag;

    /* TLS (tls_cert_pem NULL: plaintext): the files' contents and their paths for messages */
    char *tls_cert_pem, *tls_key_pem, *tls_client_ca_pem;
    char *tls_cert_path, *tls_key_path, *tls_client_ca_path;
    int tls_role; /* siam_rpc_tls_server_role is on */
    /* bearer token */
    int has_token, secret_slot;
    siam_auth_secret secret;
};

/* ---- helpers ---------------------------------------------------------------------------- */

static int is_shutting_down(siam_rpc_server *s) {
    pthread_mutex_lock(&s->lock);
    int r = s->shutting_down;
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* Stopping waits for no more than this: after the shutdown began, no request is re-armed, so
 * once the armed ones have come back and the open calls have finished, nothing is left but idle
 * connections. Called with s->lock held. */
static int is_idle(const siam_rpc_server *s) {
    return s->armed == 0 && s->live_calls == 0;
}

static void wake_stop_if_idle(siam_rpc_server *s) {
    if (s->shutting_down && is_idle(s))
        pthread_cond_broadcast(&s->cond);
}

/* A request tag came back: a new call (matched) or the shutdown's refusal. One lock for both
 * counts, so that a call in between is never seen as neither. */
static void request_back(siam_rpc_server *s, int matched) {
    pthread_mutex_lock(&s->lock);
    s->armed--;
    if (matched)
        s->live_calls++;
    wake_stop_if_idle(s);
    pthread_mutex_unlock(&s->lock);
}

/* A call that request_back counted is finished (or a rejected one that reject_call took). */
static void call_ended(siam_rpc_server *s) {
    pthread_mutex_lock(&s->lock);
    s->live_calls--;
    wake_stop_if_idle(s);
    pthread_mutex_unlock(&s->lock);
}

/* ---- bearer token ----------------------------------------------------------------------- */

/* SIAM_RPC_OK when the call may go on (no token configured, or the right one sent); otherwise
 * UNAUTHENTICATED in *st with a message that holds neither the token nor what was sent, and a
 * (rate-limited) warning naming the method and the peer. */
static int check_auth(siam_rpc_server *s, const grpc_metadata_array *md, const char *path,
                      grpc_call *call, siam_rpc_status *st) {
    if (!s->has_token)
        return SIAM_RPC_OK;
    const grpc_metadata *found = NULL;
    int count = 0;
    for (size_t i = 0; i < md->count; i++)
        if (grpc_slice_str_cmp(md->metadata[i].key, "authorization") == 0) {
            found = &md->metadata[i];
            count++;
        }
    siam_auth_result r =
        count == 0 ? SIAM_AUTH_MISSING
        : count > 1
            ? SIAM_AUTH_MALFORMED
            : siam_auth_check_bearer(&s->secret, (const char *)GRPC_SLICE_START_PTR(found->value),
                                     GRPC_SLICE_LENGTH(found->value));
    if (r == SIAM_AUTH_OK)
        return SIAM_RPC_OK;
    const char *why =
        r == SIAM_AUTH_MISSING
            ? "this server requires a bearer token: send the metadata 'authorization: Bearer "
              "<token>' (siam-client --auth-token-file FILE)"
        : r == SIAM_AUTH_MALFORMED
            ? (count > 1 ? "more than one 'authorization' metadata sent; send one, 'Bearer <token>'"
                         : "the 'authorization' metadata is not 'Bearer <token>'")
            : "the bearer token sent is not this server's (client and server must use the same "
              "--auth-token-file)";
    char *peer = grpc_call_get_peer(call);
    siam_rpc_warn_limited(r == SIAM_AUTH_MISSING ? SIAM_RPC_WARN_AUTH_MISSING
                          : r == SIAM_AUTH_WRONG ? SIAM_RPC_WARN_AUTH_WRONG
                                                 : SIAM_RPC_WARN_AUTH_MALFORMED,
                          SIAM_LOG_WARN, "UNAUTHENTICATED %s from %s: %s", path, peer ? peer : "?",
                          r == SIAM_AUTH_MISSING ? "no token"
                          : r == SIAM_AUTH_WRONG ? "wrong token"
                                                 : "malformed authorization metadata");
    gpr_free(peer);
    return siam_rpc_status_set(st, SIAM_RPC_UNAUTHENTICATED, "%s", why);
}

/* A received message above the limit: RESOURCE_EXHAUSTED in *st naming the limit and the fix
 * (gRPC's own check, off in siam_rpc_server_create, says only "Received message larger than max
 * (N vs. M)"). Returns 1 then, else 0. */
static int message_too_big(const siam_rpc_server *s, const char *path, grpc_byte_buffer *bb,
                           siam_rpc_status *st) {
    size_t n = grpc_byte_buffer_length(bb);
    if (n <= s->max_message)
        return 0;
    char setting[64] = "";
    if (s->max_message % (1u << 20) == 0)
        snprintf(setting, sizeof setting, " (--max-message-mb %zu)", s->max_message >> 20);
    siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                        "%s: message of %zu bytes is larger than this server's limit of %zu "
                        "bytes%s: send fewer pairs per batch or request, or raise --max-message-mb "
                        "on siam-server and on siam-client (other callers: their "
                        "max_send_message_length)",
                        path, n, s->max_message, setting);
    return 1;
}

/* ---- unary calls ------------------------------------------------------------------------ */

typedef struct {
    struct tag t_new, t_done;
    siam_rpc_server *srv;
    method *m;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
    grpc_byte_buffer *resp;
    int cancelled;
} unary_call;

static void arm_unary(siam_rpc_server *s, method *m);

static void unary_free(unary_call *c) {
    if (c->payload)
        grpc_byte_buffer_destroy(c->payload);
    if (c->resp)
        grpc_byte_buffer_destroy(c->resp);
    grpc_metadata_array_destroy(&c->md);
    if (c->call)
        grpc_call_unref(c->call);
    free(c);
}

/* Sends the answer (or the status) of a unary call and frees resp. */
static void unary_answer(unary_call *c, siam_rpc_buf *resp, const siam_rpc_status *st) {
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    int n = 0;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (st->code == SIAM_RPC_OK) {
        c->resp = siam_rpc_take_payload(resp);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c->resp;
    } else {
        siam_rpc_buf_free(resp);
    }
    grpc_slice details = grpc_slice_from_copied_string(st->code == SIAM_RPC_OK ? "" : st->msg);
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)st->code;
    ops[n++].data.send_status_from_server.status_details = &details;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, (size_t)n, &c->t_done, NULL);
    grpc_slice_unref(details);
    if (e != GRPC_CALL_OK) {
        LOG_ERROR(COMPONENT, "%s: cannot answer: %s", c->m->path, grpc_call_error_to_string(e));
        call_ended(c->srv);
        unary_free(c);
    }
}

static void unary_new(unary_call *c, int success) {
    siam_rpc_server *s = c->srv;
    request_back(s, success);
    if (!success) { /* the server is shutting down: the request was never matched */
        unary_free(c);
        return;
    }
    arm_unary(s, c->m);

    siam_rpc_status st = {SIAM_RPC_OK, ""};
    siam_rpc_buf resp = {0};
    char *peer = grpc_call_get_peer(c->call);
    siam_rpc_call_info info = {c->m->path, peer};
    siam_rpc_buf req = {0};
    if (check_auth(s, &c->md, c->m->path, c->call, &st) != SIAM_RPC_OK)
        ; /* answered below with st */
    else if (!c->payload)
        siam_rpc_status_set(&st, SIAM_RPC_INVALID_ARGUMENT, "%s: the request has no message",
                            c->m->path);
    else if (message_too_big(s, c->m->path, c->payload, &st))
        ; /* answered below with st */
    else if (siam_rpc_flatten(c->payload, &req))
        siam_rpc_status_set(&st, SIAM_RPC_RESOURCE_EXHAUSTED,
                            "%s: out of memory reading a request of %zu bytes", c->m->path,
                            grpc_byte_buffer_length(c->payload));
    else if (c->m->deferred) {
        /* the handler answers with siam_rpc_reply_send, now or from another thread later */
        c->m->deferred(c->m->ctx, &info, req.data, req.len, (siam_rpc_reply *)c);
        siam_rpc_buf_free(&req);
        gpr_free(peer);
        return;
    } else if (c->m->unary(c->m->ctx, &info, req.data, req.len, &resp, &st) == SIAM_RPC_OK)
        st.code = SIAM_RPC_OK;
    siam_rpc_buf_free(&req);
    gpr_free(peer);
    unary_answer(c, &resp, &st);
}

void siam_rpc_reply_send(siam_rpc_reply *reply, siam_rpc_buf *resp, const siam_rpc_status *st) {
    siam_rpc_buf empty = {0};
    unary_answer((unary_call *)reply, resp ? resp : &empty, st);
}

static void unary_done(unary_call *c) {
    call_ended(c->srv);
    unary_free(c);
}

static void arm_unary(siam_rpc_server *s, method *m) {
    unary_call *c = calloc(1, sizeof *c);
    if (!c) {
        LOG_ERROR(COMPONENT, "out of memory: %s stops accepting calls", m->path);
        return;
    }
    c->t_new = (struct tag){T_UNARY_NEW, c};
    c->t_done = (struct tag){T_UNARY_DONE, c};
    c->srv = s;
    c->m = m;
    grpc_metadata_array_init(&c->md);
    pthread_mutex_lock(&s->lock);
    grpc_call_error e = GRPC_CALL_ERROR;
    if (!s->shutting_down)
        e = grpc_server_request_registered_call(s->server, m->handle, &c->call, &c->deadline,
                                                &c->md, &c->payload, s->cq, s->cq, &c->t_new);
    if (e == GRPC_CALL_OK)
        s->armed++;
    pthread_mutex_unlock(&s->lock);
    if (e != GRPC_CALL_OK)
        unary_free(c);
}

/* ---- bidirectional streams -------------------------------------------------------------- */

typedef struct {
    struct tag t_new, t_md, t_close, t_read, t_write, t_status;
    siam_rpc_server *srv;
    method *m;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *recv; /* RECV_MESSAGE target */
    grpc_byte_buffer *send; /* in-flight response */
    pthread_mutex_t lock;
    int refs; /* outstanding tags */
    int opened, cancelled, status_sent, dead;
    void *state;
    siam_rpc_status final;
} stream_call;

static void arm_stream(siam_rpc_server *s, method *m);
static void reject_call(siam_rpc_server *s, grpc_call *call, const siam_rpc_status *st);

static void stream_destroy(stream_call *c) {
    if (c->opened) {
        if (!c->status_sent && c->final.code == SIAM_RPC_OK)
            siam_rpc_status_set(&c->final, SIAM_RPC_CANCELLED,
                                "the stream was cancelled (client gone or server stopping)");
        c->m->handler->close(c->m->ctx, c->state, &c->final);
        call_ended(c->srv);
    }
    if (c->recv)
        grpc_byte_buffer_destroy(c->recv);
    if (c->send)
        grpc_byte_buffer_destroy(c->send);
    grpc_metadata_array_destroy(&c->md);
    if (c->call)
        grpc_call_unref(c->call);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* Starts one op with tag t; counts it outstanding. Called with c->lock held. */
static int stream_start(stream_call *c, grpc_op *ops, size_t n, struct tag *t) {
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, t, NULL);
    if (e != GRPC_CALL_OK) {
        LOG_ERROR(COMPONENT, "%s: start_batch: %s", c->m->path, grpc_call_error_to_string(e));
        c->dead = 1;
        return -1;
    }
    c->refs++;
    return 0;
}

static void stream_send_status(stream_call *c, const siam_rpc_status *st) {
    if (c->status_sent || c->dead)
        return;
    grpc_op op;
    memset(&op, 0, sizeof op);
    grpc_slice details = grpc_slice_from_copied_string(st->code == SIAM_RPC_OK ? "" : st->msg);
    op.op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    op.data.send_status_from_server.status = (grpc_status_code)st->code;
    op.data.send_status_from_server.status_details = &details;
    c->final = *st;
    if (stream_start(c, &op, 1, &c->t_status) == 0)
        c->status_sent = 1;
    grpc_slice_unref(details);
}

static void stream_read_next(stream_call *c) {
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv;
    stream_start(c, &op, 1, &c->t_read);
}

/* Releases one outstanding tag; frees the call with the last one. Called with c->lock held;
 * returns 1 when c is gone. */
static int stream_release(stream_call *c) {
    if (--c->refs > 0)
        return 0;
    pthread_mutex_unlock(&c->lock);
    stream_destroy(c);
    return 1;
}

static void stream_event(stream_call *c, enum tag_kind kind, int success) {
    siam_rpc_server *s = c->srv;
    if (kind == T_STREAM_NEW) {
        request_back(s, success);
        if (!success) {
            stream_destroy(c);
            return;
        }
        arm_stream(s, c->m);
        siam_rpc_status st = {SIAM_RPC_OK, ""};
        if (check_auth(s, &c->md, c->m->path, c->call, &st) != SIAM_RPC_OK) {
            reject_call(s, c->call, &st); /* takes the call (and its live-call count) */
            c->call = NULL;
            stream_destroy(c);
            return;
        }
        char *peer = grpc_call_get_peer(c->call);
        siam_rpc_call_info info = {c->m->path, peer};
        c->state = c->m->handler->open(c->m->ctx, &info);
        c->opened = 1;
        gpr_free(peer);
        pthread_mutex_lock(&c->lock);
        c->refs = 1; /* held until the three ops below are started */
        grpc_op op;
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_SEND_INITIAL_METADATA;
        stream_start(c, &op, 1, &c->t_md);
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        op.data.recv_close_on_server.cancelled = &c->cancelled;
        stream_start(c, &op, 1, &c->t_close);
        stream_read_next(c);
        if (!stream_release(c))
            pthread_mutex_unlock(&c->lock);
        return;
    }

    pthread_mutex_lock(&c->lock);
    switch (kind) {
    case T_STREAM_READ:
        if (!success) {
            c->dead = 1;
        } else if (!c->recv) { /* the client half-closed: every answer has gone out */
            siam_rpc_status ok = {SIAM_RPC_OK, ""};
            stream_send_status(c, &ok);
        } else {
            siam_rpc_status st = {SIAM_RPC_OK, ""};
            siam_rpc_buf resp = {0};
            siam_rpc_buf req = {0};
            if (message_too_big(s, c->m->path, c->recv, &st))
                ; /* ends the stream with st */
            else if (siam_rpc_flatten(c->recv, &req))
                siam_rpc_status_set(&st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                    "%s: out of memory reading a message of %zu bytes", c->m->path,
                                    grpc_byte_buffer_length(c->recv));
            else
                c->m->handler->message(c->m->ctx, c->state, req.data, req.len, &resp, &st);
            siam_rpc_buf_free(&req);
            grpc_byte_buffer_destroy(c->recv);
            c->recv = NULL;
            if (st.code != SIAM_RPC_OK) {
                siam_rpc_buf_free(&resp);
                stream_send_status(c, &st);
            } else if (!c->dead) {
                c->send = siam_rpc_take_payload(&resp);
                grpc_op op;
                memset(&op, 0, sizeof op);
                op.op = GRPC_OP_SEND_MESSAGE;
                op.data.send_message.send_message = c->send;
                stream_start(c, &op, 1, &c->t_write);
            } else {
                siam_rpc_buf_free(&resp);
            }
        }
        break;
    case T_STREAM_WRITE:
        if (c->send) {
            grpc_byte_buffer_destroy(c->send);
            c->send = NULL;
        }
        if (!success)
            c->dead = 1;
        else if (!c->status_sent && !c->dead)
            stream_read_next(c);
        break;
    case T_STREAM_CLOSE:
        /* a read of "no more messages" is also what a vanished client looks like; only this
         * tells the two apart */
        if (c->cancelled && c->final.code == SIAM_RPC_OK)
            siam_rpc_status_set(&c->final,
                                is_shutting_down(s) ? SIAM_RPC_UNAVAILABLE : SIAM_RPC_CANCELLED,
                                is_shutting_down(s) ? "the server is shutting down"
                                                    : "the client went away mid-stream");
        break;
    case T_STREAM_MD:
    case T_STREAM_STATUS:
    default:
        if (!success)
            c->dead = 1;
        break;
    }
    if (!stream_release(c))
        pthread_mutex_unlock(&c->lock);
}

static void arm_stream(siam_rpc_server *s, method *m) {
    stream_call *c = calloc(1, sizeof *c);
    if (!c) {
        LOG_ERROR(COMPONENT, "out of memory: %s stops accepting calls", m->path);
        return;
    }
    c->t_new = (struct tag){T_STREAM_NEW, c};
    c->t_md = (struct tag){T_STREAM_MD, c};
    c->t_close = (struct tag){T_STREAM_CLOSE, c};
    c->t_read = (struct tag){T_STREAM_READ, c};
    c->t_write = (struct tag){T_STREAM_WRITE, c};
    c->t_status = (struct tag){T_STREAM_STATUS, c};
    c->srv = s;
    c->m = m;
    pthread_mutex_init(&c->lock, NULL);
    grpc_metadata_array_init(&c->md);
    pthread_mutex_lock(&s->lock);
    grpc_call_error e = GRPC_CALL_ERROR;
    if (!s->shutting_down)
        e = grpc_server_request_registered_call(s->server, m->handle, &c->call, &c->deadline,
                                                &c->md, NULL, s->cq, s->cq, &c->t_new);
    if (e == GRPC_CALL_OK)
        s->armed++;
    pthread_mutex_unlock(&s->lock);
    if (e != GRPC_CALL_OK)
        stream_destroy(c);
}

/* ---- unknown methods -------------------------------------------------------------------- */

typedef struct {
    struct tag t_new, t_done;
    siam_rpc_server *srv;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    int cancelled;
} generic_call;

static void arm_generic(siam_rpc_server *s);

static void generic_free(generic_call *c) {
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    if (c->call)
        grpc_call_unref(c->call);
    free(c);
}

/* Answers a call with st's status and nothing else; the answer's tag (T_GENERIC_DONE) ends it. */
static void answer_status(siam_rpc_server *s, generic_call *c, const siam_rpc_status *st) {
    grpc_slice details = grpc_slice_from_copied_string(st->msg);
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[1].data.send_status_from_server.status = (grpc_status_code)st->code;
    ops[1].data.send_status_from_server.status_details = &details;
    ops[2].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[2].data.recv_close_on_server.cancelled = &c->cancelled;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, 3, &c->t_done, NULL);
    grpc_slice_unref(details);
    if (e != GRPC_CALL_OK) {
        call_ended(s);
        generic_free(c);
    }
}

static void reject_call(siam_rpc_server *s, grpc_call *call, const siam_rpc_status *st) {
    generic_call *c = calloc(1, sizeof *c);
    if (!c) {
        grpc_call_cancel_with_status(call, (grpc_status_code)st->code, st->msg, NULL);
        grpc_call_unref(call);
        call_ended(s);
        return;
    }
    c->t_new = (struct tag){T_GENERIC_NEW, c};
    c->t_done = (struct tag){T_GENERIC_DONE, c};
    c->srv = s;
    c->call = call;
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    answer_status(s, c, st);
}

static void generic_new(generic_call *c, int success) {
    siam_rpc_server *s = c->srv;
    request_back(s, success);
    if (!success) {
        generic_free(c);
        return;
    }
    arm_generic(s);
    char *path = grpc_slice_to_c_string(c->details.method);
    siam_rpc_status st = {SIAM_RPC_OK, ""};
    if (check_auth(s, &c->md, path, c->call, &st) == SIAM_RPC_OK) {
        siam_rpc_status_set(&st, SIAM_RPC_UNIMPLEMENTED, "unknown method %s; %s", path,
                            s->unknown_msg);
        LOG_DEBUG(COMPONENT, "UNIMPLEMENTED %s", path);
    }
    gpr_free(path);
    answer_status(s, c, &st);
}

static void arm_generic(siam_rpc_server *s) {
    generic_call *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->t_new = (struct tag){T_GENERIC_NEW, c};
    c->t_done = (struct tag){T_GENERIC_DONE, c};
    c->srv = s;
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    pthread_mutex_lock(&s->lock);
    grpc_call_error e = GRPC_CALL_ERROR;
    if (!s->shutting_down)
        e = grpc_server_request_call(s->server, &c->call, &c->details, &c->md, s->cq, s->cq,
                                     &c->t_new);
    if (e == GRPC_CALL_OK)
        s->armed++;
    pthread_mutex_unlock(&s->lock);
    if (e != GRPC_CALL_OK)
        generic_free(c);
}

/* ---- the completion-queue threads ------------------------------------------------------- */

/* Runs one event of the completion queue (a cq thread's, or the stopping thread's when no cq
 * thread runs). */
static void handle_event(siam_rpc_server *s, grpc_event ev) {
    if (ev.type != GRPC_OP_COMPLETE)
        return;
    {
        struct tag *t = ev.tag;
        switch (t->kind) {
        case T_UNARY_NEW:
            unary_new(t->owner, ev.success);
            break;
        case T_UNARY_DONE:
            unary_done(t->owner);
            break;
        case T_STREAM_NEW:
        case T_STREAM_MD:
        case T_STREAM_CLOSE:
        case T_STREAM_READ:
        case T_STREAM_WRITE:
        case T_STREAM_STATUS:
            stream_event(t->owner, t->kind, ev.success);
            break;
        case T_GENERIC_NEW:
            generic_new(t->owner, ev.success);
            break;
        case T_GENERIC_DONE: {
            generic_call *c = t->owner;
            call_ended(c->srv);
            generic_free(c);
            break;
        }
        case T_SHUTDOWN:
            pthread_mutex_lock(&s->lock);
            s->shutdown_done = 1;
            pthread_cond_broadcast(&s->cond);
            pthread_mutex_unlock(&s->lock);
            break;
        }
    }
}

static void *cq_thread(void *arg) {
    siam_rpc_server *s = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        handle_event(s, ev);
    }
    return NULL;
}

/* ---- TLS and token ---------------------------------------------------------------------- */

static char *dup_or_null(const char *p, int *oom) {
    char *d = p ? strdup(p) : NULL;
    if (p && !d)
        *oom = 1;
    return d;
}

/* Reads and checks the TLS files and takes the token (siam_rpc_server_create). */
static int load_security(siam_rpc_server *s, const siam_rpc_server_config *cfg, siam_error *err) {
    if (cfg->auth_token) {
        size_t len = strlen(cfg->auth_token);
        if (siam_auth_secret_set(&s->secret, cfg->auth_token, len) != SIAM_OK)
            return siam_error_set(err, SIAM_ERR_ARG, "the bearer token must be 1 to %d characters",
                                  SIAM_AUTH_TOKEN_MAX);
        s->has_token = 1;
        s->secret_slot = siam_rpc_secret_add(cfg->auth_token, len);
    }
    if (!cfg->tls_cert && !cfg->tls_key && !cfg->tls_client_ca)
        return SIAM_OK;
    if (!cfg->tls_cert || !cfg->tls_key)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "TLS needs both --tls-cert and --tls-key (the server's certificate "
                              "and its private key)%s",
                              cfg->tls_client_ca && !cfg->tls_cert && !cfg->tls_key
                                  ? "; --tls-client-ca only adds client certificates to them"
                                  : "");
    int oom = 0;
    s->tls_cert_path = dup_or_null(cfg->tls_cert, &oom);
    s->tls_key_path = dup_or_null(cfg->tls_key, &oom);
    s->tls_client_ca_path = dup_or_null(cfg->tls_client_ca, &oom);
    if (oom)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
    char warning[SIAM_ERROR_MSG_MAX];
    int rc = siam_pem_load("--tls-cert", cfg->tls_cert, SIAM_PEM_CERTIFICATES, &s->tls_cert_pem,
                           NULL, 0, err);
    if (!rc)
        rc = siam_pem_load("--tls-key", cfg->tls_key, SIAM_PEM_PRIVATE_KEY, &s->tls_key_pem,
                           warning, sizeof warning, err);
    if (!rc && warning[0])
        LOG_WARN(COMPONENT, "%s", warning);
    if (!rc && cfg->tls_client_ca)
        rc = siam_pem_load("--tls-client-ca", cfg->tls_client_ca, SIAM_PEM_CERTIFICATES,
                           &s->tls_client_ca_pem, NULL, 0, err);
    return rc;
}

/* After binding: what the server presents and asks for, and what will go wrong with it. */
static void log_security(const siam_rpc_server *s) {
    if (s->tls_cert_pem) {
        siam_x509_cert c;
        siam_error e = {0};
        if (siam_x509_parse_pem(s->tls_cert_pem, 0, &c, &e) == SIAM_OK) {
            char until[64], from[64];
            siam_x509_format_time(c.not_after, until, sizeof until);
            siam_x509_format_time(c.not_before, from, sizeof from);
            LOG_INFO(COMPONENT,
                     "TLS: certificate '%s' (%s) issued by '%s', valid until %s, from %s",
                     c.subject, c.names[0] ? c.names : "no subjectAltName", c.issuer, until,
                     s->tls_cert_path);
            time_t now = time(NULL);
            if ((int64_t)now > c.not_after)
                LOG_WARN(COMPONENT,
                         "TLS: --tls-cert %s expired on %s: every client will refuse it; renew "
                         "the certificate",
                         s->tls_cert_path, until);
            else if ((int64_t)now < c.not_before)
                LOG_WARN(COMPONENT,
                         "TLS: --tls-cert %s is valid only from %s: clients will refuse it until "
                         "then (check the clocks)",
                         s->tls_cert_path, from);
            else if (c.not_after - (int64_t)now < 14 * 86400)
                LOG_WARN(COMPONENT, "TLS: --tls-cert %s expires soon, on %s: renew it",
                         s->tls_cert_path, until);
        }
        if (s->tls_client_ca_pem) {
            siam_x509_cert ca;
            char names[SIAM_X509_TEXT_MAX * 2] = "";
            for (int i = 0; siam_x509_parse_pem(s->tls_client_ca_pem, i, &ca, &e) == SIAM_OK; i++)
                if (strlen(names) + strlen(ca.subject) + 8 < sizeof names)
                    snprintf(names + strlen(names), sizeof names - strlen(names), "%s'%s'",
                             i ? ", " : "", ca.subject);
            LOG_INFO(COMPONENT,
                     "TLS: mutual TLS: every client must present a certificate signed by %s "
                     "(--tls-client-ca %s)",
                     names, s->tls_client_ca_path);
        } else {
            LOG_INFO(COMPONENT, "TLS: clients are not asked for certificates (no --tls-client-ca)");
        }
    }
    if (s->has_token)
        LOG_INFO(COMPONENT, "every call needs the bearer token (the health check too)%s",
                 s->tls_cert_pem ? "" : "; without TLS it travels in clear text");
}

/* gRPC refused the TLS files while binding: say which, in terms of the files. */
static int tls_bind_error(siam_rpc_server *s, siam_error *err) {
    char lines[1024];
    siam_rpc_tls_log_get(lines, sizeof lines);
    if (strstr(lines, "Invalid private key"))
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "--tls-key %s does not match the certificate in --tls-cert %s (or "
                              "is damaged): give the key the certificate was made for",
                              s->tls_key_path, s->tls_cert_path);
    if (strstr(lines, "cert chain"))
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "--tls-cert %s: gRPC cannot load the certificate chain (%s)",
                              s->tls_cert_path, lines);
    if (strstr(lines, "root certificate") || strstr(lines, "verification certs"))
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "--tls-client-ca %s: gRPC cannot load CA certificates from it (%s)",
                              s->tls_client_ca_path ? s->tls_client_ca_path : "?", lines);
    if (strstr(lines, "secure server") || strstr(lines, "andshaker factory"))
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "gRPC refuses the TLS files --tls-cert %s / --tls-key %s: %s",
                              s->tls_cert_path, s->tls_key_path, lines);
    return 0;
}

/* ---- public API ------------------------------------------------------------------------- */

int siam_rpc_server_create(siam_rpc_server **out, const siam_rpc_server_config *cfg,
                           siam_error *err) {
    *out = NULL;
    if (!cfg || !cfg->listen || !*cfg->listen)
        return siam_error_set(err, SIAM_ERR_ARG, "no listen address given");
    if (strlen(cfg->listen) >= sizeof(((siam_rpc_server *)0)->listen))
        return siam_error_set(err, SIAM_ERR_ARG, "listen address too long");
    if (cfg->threads < 1 || cfg->threads > 256)
        return siam_error_set(err, SIAM_ERR_ARG, "server threads must be 1..256, got %d",
                              cfg->threads);
    siam_rpc_server *s = calloc(1, sizeof *s);
    if (!s)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
    strcpy(s->listen, cfg->listen);
    s->n_threads = cfg->threads;
    s->max_message = cfg->max_message_bytes ? cfg->max_message_bytes : SIAM_RPC_DEFAULT_MAX_MESSAGE;
    if (s->max_message > 0x7fffffff)
        s->max_message = 0x7fffffff;
    s->handshake_timeout_ms = cfg->handshake_timeout_ms > 0 ? cfg->handshake_timeout_ms
                                                            : SIAM_RPC_DEFAULT_HANDSHAKE_TIMEOUT_MS;
    s->fail_thread = cfg->fail_thread_for_test;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    s->cond_clock =
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 ? CLOCK_MONOTONIC : CLOCK_REALTIME;
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    s->shutdown_tag = (struct tag){T_SHUTDOWN, s};

    s->secret_slot = -1;
    int rc = load_security(s, cfg, err);
    if (rc) {
        siam_rpc_server_free(s);
        return rc;
    }

    grpc_arg args[] = {
        /* the message size limit is this layer's (message_too_big): gRPC's own answer names
         * neither the setting nor the fix, and gRPC 1.51 holds a whole message before checking
         * its size anyway (a 200 MB message against a 1 MiB limit took 200 MB of RSS before it
         * was refused), so the check here costs no memory that the core's would save */
        siam_rpc_int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, -1),
        /* a second server on a port in use must fail, not share the port with the first */
        siam_rpc_int_arg(GRPC_ARG_ALLOW_REUSEPORT, 0),
        /* workers ping every 20 s while training: accept it (the default would send GOAWAY) */
        siam_rpc_int_arg(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000),
        siam_rpc_int_arg(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0),
        /* and ping idle clients ourselves, so a worker host that vanished is noticed */
        siam_rpc_int_arg(GRPC_ARG_KEEPALIVE_TIME_MS, 30000),
        siam_rpc_int_arg(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000),
        /* HTTP/2 flow control bounds what a client can make the server hold: a stream reads its
         * next message only after its answer went out, so a client that sends without reading
         * answers fills its stream's receive window and stops. With gRPC's BDP probing (on by
         * default) the windows grow with the measured bandwidth-delay product, to tens of MB per
         * stream on loopback: 32 such streams made the server hold 1.1 GB. Off, a stream's
         * window stays at HTTP/2's 64 KiB, opened to the length of the message being read when
         * a read is waiting, and the same 32 streams took 18 MB (tests/load_test.sh,
         * docs/BENCHMARKS.md "Load"). */
        siam_rpc_int_arg(GRPC_ARG_HTTP2_BDP_PROBE, 0),
        /* a connection that never sends the HTTP/2 preface is never seen by a TLS or token
         * check: only this bounds how long it holds a file descriptor */
        siam_rpc_int_arg(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, s->handshake_timeout_ms),
    };
    grpc_channel_args cargs = {sizeof args / sizeof args[0], args};
    s->server = grpc_server_create(&cargs, NULL);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    if (!s->server || !s->cq) {
        siam_rpc_server_free(s);
        return siam_error_set(err, SIAM_ERR_NOMEM, "cannot create the gRPC server");
    }
    grpc_server_register_completion_queue(s->server, s->cq, NULL);
    *out = s;
    return SIAM_OK;
}

static int add_method(siam_rpc_server *s, const char *path, int stream, siam_rpc_unary_fn fn,
                      siam_rpc_deferred_fn deferred, const siam_rpc_stream_handler *h, void *ctx,
                      siam_error *err) {
    if (s->started)
        return siam_error_set(err, SIAM_ERR_ARG, "%s: methods must be added before start", path);
    if (s->n_methods == MAX_METHODS)
        return siam_error_set(err, SIAM_ERR_ARG, "too many methods (max %d)", MAX_METHODS);
    if (!path || path[0] != '/')
        return siam_error_set(err, SIAM_ERR_ARG, "method path must start with '/': %s",
                              path ? path : "(null)");
    method *m = &s->methods[s->n_methods];
    memset(m, 0, sizeof *m);
    m->path = strdup(path);
    if (!m->path)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
    m->stream = stream;
    m->unary = fn;
    m->deferred = deferred;
    m->handler = h;
    m->ctx = ctx;
    m->handle = grpc_server_register_method(
        s->server, m->path, NULL,
        stream ? GRPC_SRM_PAYLOAD_NONE : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    if (!m->handle) {
        free(m->path);
        m->path = NULL;
        return siam_error_set(err, SIAM_ERR_ARG, "cannot register method %s (duplicate?)", path);
    }
    s->n_methods++;
    return SIAM_OK;
}

int siam_rpc_server_add_unary(siam_rpc_server *s, const char *method_path, siam_rpc_unary_fn fn,
                              void *ctx, siam_error *err) {
    return add_method(s, method_path, 0, fn, NULL, NULL, ctx, err);
}

int siam_rpc_server_add_deferred(siam_rpc_server *s, const char *method_path,
                                 siam_rpc_deferred_fn fn, void *ctx, siam_error *err) {
    return add_method(s, method_path, 0, NULL, fn, NULL, ctx, err);
}

int siam_rpc_server_add_stream(siam_rpc_server *s, const char *method_path,
                               const siam_rpc_stream_handler *h, void *ctx, siam_error *err) {
    return add_method(s, method_path, 1, NULL, NULL, h, ctx, err);
}

int siam_rpc_server_start(siam_rpc_server *s, int *port, siam_error *err) {
    if (s->started)
        return siam_error_set(err, SIAM_ERR_ARG, "server already started");
    size_t off = (size_t)snprintf(s->unknown_msg, sizeof s->unknown_msg, "this server serves");
    for (int i = 0; i < s->n_methods && off < sizeof s->unknown_msg; i++)
        off += (size_t)snprintf(s->unknown_msg + off, sizeof s->unknown_msg - off, "%s %s",
                                i ? "," : "", s->methods[i].path);

    grpc_server_credentials *creds;
    if (s->tls_cert_pem) {
        grpc_ssl_pem_key_cert_pair pair = {s->tls_key_pem, s->tls_cert_pem};
        creds = grpc_ssl_server_credentials_create_ex(
            s->tls_client_ca_pem, &pair, 1,
            s->tls_client_ca_pem ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                 : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            NULL);
    } else {
        creds = grpc_insecure_server_credentials_create();
    }
    if (!creds)
        return siam_error_set(err, SIAM_ERR_ARG, "gRPC refuses the server credentials");
    siam_rpc_tls_log_reset();
    int bound = grpc_server_add_http2_port(s->server, s->listen, creds);
    grpc_server_credentials_release(creds);
    if (bound <= 0 && s->tls_cert_pem && tls_bind_error(s, err))
        return err ? err->code : SIAM_ERR_FORMAT;
    if (bound <= 0)
        return siam_error_set(err, SIAM_ERR_IO,
                              "cannot listen on %s: the address is in use, not local to this "
                              "host, or malformed (expected HOST:PORT, e.g. 0.0.0.0:50051)",
                              s->listen);
    /* gRPC stops listening for good after an accept4 error such as EMFILE: the guard keeps
     * the descriptors below the limit and turns what is left into EAGAIN */
    siam_rpc_accept_guard_enable();
    s->guarding = 1;
    grpc_server_start(s->server);
    s->started = 1;
    if (s->tls_cert_pem) {
        siam_rpc_tls_server_role(1, s->tls_client_ca_path);
        s->tls_role = 1;
    }
    log_security(s);
    /* from here on a failure leaves a started gRPC server with fewer cq threads than asked for,
     * perhaps none: siam_rpc_server_stop drains the queue itself then */
    int want = s->n_threads;
    s->n_threads = 0;
    s->threads = calloc((size_t)want, sizeof *s->threads);
    if (!s->threads)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < want; i++) {
        int e =
            i + 1 == s->fail_thread ? EAGAIN : pthread_create(&s->threads[i], NULL, cq_thread, s);
        if (e)
            return siam_error_set(err, SIAM_ERR_NOMEM, "cannot start server thread %d of %d: %s",
                                  i + 1, want, strerror(e));
        s->n_threads = i + 1;
    }
    int armed = s->n_threads < 2 ? 2 : s->n_threads;
    for (int i = 0; i < s->n_methods; i++)
        for (int k = 0; k < armed; k++) {
            if (s->methods[i].stream)
                arm_stream(s, &s->methods[i]);
            else
                arm_unary(s, &s->methods[i]);
        }
    arm_generic(s);
    if (port)
        *port = bound;
    return SIAM_OK;
}

/* The stopping thread runs the queue itself for up to 50 ms (no cq thread runs). */
static void pump(siam_rpc_server *s) {
    grpc_event ev = grpc_completion_queue_next(
        s->cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(50, GPR_TIMESPAN)),
        NULL);
    handle_event(s, ev);
}

static int passed(const siam_rpc_server *s, const struct timespec *until) {
    struct timespec now;
    clock_gettime(s->cond_clock, &now);
    return now.tv_sec > until->tv_sec ||
           (now.tv_sec == until->tv_sec && now.tv_nsec >= until->tv_nsec);
}

/* Waits, with s->lock held, until the shutdown tag has come back or (when_idle) no call is open
 * and no request is out, or until *until (on s->cond_clock; NULL = no limit). */
static void stop_wait(siam_rpc_server *s, const struct timespec *until, int when_idle) {
    while (!s->shutdown_done && !(when_idle && is_idle(s))) {
        if (s->n_threads == 0) {
            pthread_mutex_unlock(&s->lock);
            pump(s);
            pthread_mutex_lock(&s->lock);
            if (until && passed(s, until))
                break;
        } else if (!until) {
            pthread_cond_wait(&s->cond, &s->lock);
        } else if (pthread_cond_timedwait(&s->cond, &s->lock, until) == ETIMEDOUT) {
            break;
        }
    }
}

int siam_rpc_server_stop(siam_rpc_server *s, double grace_s) {
    if (!s || !s->started || s->stopped)
        return 0;
    s->stopped = 1;
    pthread_mutex_lock(&s->lock);
    s->shutting_down = 1;
    pthread_mutex_unlock(&s->lock);
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);

    struct timespec until;
    clock_gettime(s->cond_clock, &until);
    double secs = grace_s > 0 ? grace_s : 0;
    until.tv_sec += (time_t)secs;
    until.tv_nsec += (long)((secs - (double)(time_t)secs) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    int cancelled = 0;
    pthread_mutex_lock(&s->lock);
    /* gRPC's shutdown also waits for every connection to close, and a client that does not
     * answer the GOAWAY ping (stopped, or gone from the network) keeps its idle connection:
     * waiting stops as soon as no call is open, and the cancel below closes the connections */
    stop_wait(s, &until, 1);
    if (!s->shutdown_done) {
        cancelled = s->live_calls;
        pthread_mutex_unlock(&s->lock);
        grpc_server_cancel_all_calls(s->server);
        pthread_mutex_lock(&s->lock);
        stop_wait(s, NULL, 0);
    }
    pthread_mutex_unlock(&s->lock);
    grpc_server_destroy(s->server);
    s->server = NULL;
    grpc_completion_queue_shutdown(s->cq);
    if (s->n_threads == 0)
        for (;;) {
            grpc_event ev =
                grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            if (ev.type == GRPC_QUEUE_SHUTDOWN)
                break;
            handle_event(s, ev);
        }
    for (int i = 0; i < s->n_threads; i++)
        pthread_join(s->threads[i], NULL);
    s->drained = 1;
    if (s->guarding) {
        siam_rpc_accept_guard_disable();
        s->guarding = 0;
    }
    return cancelled;
}

void siam_rpc_server_free(siam_rpc_server *s) {
    if (!s)
        return;
    if (s->started)
        siam_rpc_server_stop(s, 0);
    if (s->server) /* created but never started */
        grpc_server_destroy(s->server);
    if (s->cq) {
        if (!s->drained) {
            grpc_completion_queue_shutdown(s->cq);
            while (
                grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
                GRPC_QUEUE_SHUTDOWN)
                ;
        }
        grpc_completion_queue_destroy(s->cq);
    }
    for (int i = 0; i < s->n_methods; i++)
        free(s->methods[i].path);
    free(s->threads);
    if (s->tls_role)
        siam_rpc_tls_server_role(0, NULL);
    if (s->tls_key_pem) {
        siam_auth_wipe(s->tls_key_pem, strlen(s->tls_key_pem));
        free(s->tls_key_pem);
    }
    free(s->tls_cert_pem);
    free(s->tls_client_ca_pem);
    free(s->tls_cert_path);
    free(s->tls_key_path);
    free(s->tls_client_ca_path);
    siam_auth_secret_clear(&s->secret);
    siam_rpc_secret_remove(s->secret_slot);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

clockid_t siam_rpc_server_wait_clock(const siam_rpc_server *s) {
    return s->cond_clock;
}
