/* siam_rpc_server_calls: the server's call state machines: unary calls (answered at once or
 * later), bidirectional streams that answer each message, UNIMPLEMENTED for unknown methods, the
 * bearer-token and message-size checks, and the completion-queue dispatch.
 *
 * Every tag handed to the core is a `struct tag` embedded in its call's context; every tag comes
 * back exactly once (success or not), and a call's context is freed when its last outstanding
 * tag has come back. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "siam_auth.h"
#include "siam_log.h"
#include "siam_rpc.h"
#include "siam_rpc_internal.h"
#include "siam_rpc_server_internal.h"

#define COMPONENT "rpc"

/* ---- helpers ---------------------------------------------------------------------------- */

static int is_shutting_down(siam_rpc_server *s) {
    pthread_mutex_lock(&s->lock);
    int r = s->shutting_down;
    pthread_mutex_unlock(&s->lock);
    return r;
}

int siam_rpc_server_is_idle(const siam_rpc_server *s) {
    return s->armed == 0 && s->live_calls == 0;
}

static void wake_stop_if_idle(siam_rpc_server *s) {
    if (s->shutting_down && siam_rpc_server_is_idle(s))
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
    if (!s->sec.has_token)
        return SIAM_RPC_OK;
    const grpc_metadata *found = NULL;
    int count = 0;
    for (size_t i = 0; i < md->count; i++)
        if (grpc_slice_str_cmp(md->metadata[i].key, "authorization") == 0) {
            found = &md->metadata[i];
            count++;
        }
    siam_auth_result r =
        count == 0  ? SIAM_AUTH_MISSING
        : count > 1 ? SIAM_AUTH_MALFORMED
                    : siam_auth_check_bearer(&s->sec.secret,
                                             (const char *)GRPC_SLICE_START_PTR(found->value),
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
    siam_log_limited(SIAM_LOG_WARN, COMPONENT, "oversize message", "RESOURCE_EXHAUSTED %s",
                     st->msg);
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
    /* deferred calls learn early that their caller went away (siam_rpc_reply_cancelled): their
     * RECV_CLOSE_ON_SERVER (t_close) is started when they arrive, not with the answer. Then the
     * context is freed once the reply was sent and t_close and t_done are both back; guarded
     * by srv->lock */
    struct tag t_close;
    int watching, tags, replied, gone;
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

/* One of the call's tags is back (or was never handed out): frees the call when it was the last
 * and, for a watched deferred call, the reply has been sent. */
static void unary_tag_back(unary_call *c) {
    siam_rpc_server *s = c->srv;
    int last = 1;
    pthread_mutex_lock(&s->lock);
    if (c->watching)
        last = --c->tags == 0 && c->replied;
    pthread_mutex_unlock(&s->lock);
    if (last) {
        call_ended(s);
        unary_free(c);
    }
}

/* A deferred call's t_close is back: the call is over, cancelled if its caller went away. */
static void unary_closed(unary_call *c) {
    pthread_mutex_lock(&c->srv->lock);
    c->gone = c->cancelled != 0;
    pthread_mutex_unlock(&c->srv->lock);
    unary_tag_back(c);
}

/* Sends the answer (or the status) of a unary call and frees resp. */
static void unary_answer(unary_call *c, siam_rpc_buf *resp, const siam_rpc_status *st) {
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    int n = 0;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (st->code == SIAM_RPC_OK) {
        siam_rpc_meter_count(c->srv->meter, c->m->slot, 0, resp->len, 0, 1, 0);
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
    if (!c->watching) { /* a watched call has it out already (one per call) */
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
    }
    grpc_call_error e = grpc_call_start_batch(c->call, ops, (size_t)n, &c->t_done, NULL);
    grpc_slice_unref(details);
    if (e != GRPC_CALL_OK) {
        LOG_ERROR(COMPONENT, "%s: cannot answer: %s", c->m->path, grpc_call_error_to_string(e));
        unary_tag_back(c);
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
    siam_rpc_meter_count(s->meter, c->m->slot, 1, 0,
                         c->payload ? grpc_byte_buffer_length(c->payload) : 0, 0,
                         c->payload != NULL);
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
        /* watch for the caller going away while the answer is pending */
        c->t_close = (struct tag){T_UNARY_CLOSE, c};
        grpc_op op;
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        op.data.recv_close_on_server.cancelled = &c->cancelled;
        pthread_mutex_lock(&s->lock);
        c->watching = 1;
        c->tags = 1;
        pthread_mutex_unlock(&s->lock);
        if (grpc_call_start_batch(c->call, &op, 1, &c->t_close, NULL) != GRPC_CALL_OK) {
            pthread_mutex_lock(&s->lock);
            c->watching = 0; /* unwatched: the answer's batch receives the close */
            c->tags = 0;
            pthread_mutex_unlock(&s->lock);
        }
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
    unary_call *c = (unary_call *)reply;
    pthread_mutex_lock(&c->srv->lock);
    c->replied = 1;
    c->tags += c->watching; /* t_done */
    pthread_mutex_unlock(&c->srv->lock);
    unary_answer(c, resp ? resp : &empty, st);
}

int siam_rpc_reply_cancelled(const siam_rpc_reply *reply) {
    unary_call *c = (unary_call *)reply;
    pthread_mutex_lock(&c->srv->lock);
    int gone = c->gone;
    pthread_mutex_unlock(&c->srv->lock);
    return gone;
}

static void unary_done(unary_call *c) {
    unary_tag_back(c);
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
        siam_rpc_meter_count(s->meter, c->m->slot, 1, 0, 0, 0, 0);
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
            siam_rpc_meter_count(s->meter, c->m->slot, 0, 0, grpc_byte_buffer_length(c->recv), 0,
                                 1);
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
                siam_rpc_meter_count(s->meter, c->m->slot, 0, resp.len, 0, 1, 0);
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

/* ---- the completion queue --------------------------------------------------------------- */

/* Runs one event of the completion queue (a cq thread's, or the stopping thread's when no cq
 * thread runs). */
void siam_rpc_server_handle_event(siam_rpc_server *s, grpc_event ev) {
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
        case T_UNARY_CLOSE:
            unary_closed(t->owner);
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

void siam_rpc_server_arm_all(siam_rpc_server *s) {
    int armed = s->n_threads < 2 ? 2 : s->n_threads;
    for (int i = 0; i < s->n_methods; i++)
        for (int k = 0; k < armed; k++) {
            if (s->methods[i].stream)
                arm_stream(s, &s->methods[i]);
            else
                arm_unary(s, &s->methods[i]);
        }
    arm_generic(s);
}
