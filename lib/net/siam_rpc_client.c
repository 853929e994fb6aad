/* siam_rpc_client: a channel, unary calls with a deadline, and a bidirectional stream whose every
 * exchange is bounded by a timeout, on the gRPC C core. Each call owns a completion queue that
 * only its caller's thread drains, so waiting for "whichever op finishes first" is one loop. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "siam_auth.h"
#include "siam_rpc.h"
#include "siam_rpc_diagnose.h"
#include "siam_rpc_internal.h"
#include "siam_rpc_tls.h"

struct siam_rpc_channel {
    grpc_channel *channel;
    char *target;
    siam_rpc_client_tls tls; /* tls.ca NULL: plaintext */
    /* bearer token: "authorization: Bearer <token>" */
    int has_token, secret_slot;
    grpc_metadata auth_md;
    siam_rpc_meter *meter; /* traffic per method; streams hold a reference */
};

static grpc_byte_buffer *copy_payload(const uint8_t *data, size_t len) {
    grpc_slice s =
        len ? grpc_slice_from_copied_buffer((const char *)data, len) : grpc_empty_slice();
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

static void status_from_call(siam_rpc_status *st, grpc_status_code code, grpc_slice details) {
    char *msg = grpc_slice_to_c_string(details);
    siam_rpc_status_set(st, (int)code, "%s", msg && *msg ? msg : siam_rpc_code_name((int)code));
    gpr_free(msg);
}

/* ---- channels ---------------------------------------------------------------------------- */

int siam_rpc_channel_create_ex(siam_rpc_channel **out, const siam_rpc_channel_config *cfg,
                               siam_error *err) {
    *out = NULL;
    if (!cfg || !cfg->target || !*cfg->target)
        return siam_error_set(err, SIAM_ERR_ARG, "no server address given");
    siam_rpc_channel *ch = calloc(1, sizeof *ch);
    if (!ch || !(ch->target = strdup(cfg->target))) {
        free(ch);
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
    }
    ch->secret_slot = -1;
    ch->meter = siam_rpc_meter_new();
    if (!ch->meter) {
        free(ch->target);
        free(ch);
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
    }
    if (cfg->auth_token) {
        size_t len = strlen(cfg->auth_token);
        if (len == 0 || len > SIAM_AUTH_TOKEN_MAX) {
            siam_rpc_channel_free(ch);
            return siam_error_set(err, SIAM_ERR_ARG, "the bearer token must be 1 to %d characters",
                                  SIAM_AUTH_TOKEN_MAX);
        }
        char *value = malloc(len + 8);
        if (!value) {
            siam_rpc_channel_free(ch);
            return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
        }
        memcpy(value, "Bearer ", 7);
        memcpy(value + 7, cfg->auth_token, len + 1);
        ch->auth_md.key = grpc_slice_from_static_string("authorization");
        ch->auth_md.value =
            grpc_slice_new(value, len + 7, siam_rpc_wipe_free); /* wiped when freed */
        ch->has_token = 1;
        ch->secret_slot = siam_rpc_secret_add(cfg->auth_token, len);
    }
    grpc_channel_credentials *creds = NULL;
    if (cfg->tls_ca || cfg->tls_cert || cfg->tls_key || cfg->tls_server_name) {
        creds = siam_rpc_client_tls_load(&ch->tls, cfg, err);
        if (!creds) {
            siam_rpc_channel_free(ch);
            return err ? err->code : SIAM_ERR_ARG;
        }
    } else {
        creds = grpc_insecure_credentials_create();
    }
    size_t max = cfg->max_message_bytes ? cfg->max_message_bytes : SIAM_RPC_DEFAULT_MAX_MESSAGE;
    if (max > 0x7fffffff)
        max = 0x7fffffff;
    grpc_arg args[] = {
        siam_rpc_int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, (int)max),
        siam_rpc_int_arg(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, (int)max),
        /* keepalive: a server (or its host) that vanished is noticed within ~30 s even while
         * this worker only computes; the server accepts pings this often (siam_rpc_server.c) */
        siam_rpc_int_arg(GRPC_ARG_KEEPALIVE_TIME_MS, 20000),
        siam_rpc_int_arg(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000),
        siam_rpc_int_arg(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0),
        {0}, /* the name to check the server's certificate for, when given */
    };
    size_t n_args = sizeof args / sizeof args[0] - 1;
    if (ch->tls.server_name) {
        args[n_args].type = GRPC_ARG_STRING;
        args[n_args].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
        args[n_args++].value.string = ch->tls.server_name;
    }
    grpc_channel_args cargs = {n_args, args};
    ch->channel = grpc_channel_create(cfg->target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    if (!ch->channel) {
        siam_rpc_channel_free(ch);
        return siam_error_set(err, SIAM_ERR_ARG, "cannot create a channel to '%s'", cfg->target);
    }
    *out = ch;
    return SIAM_OK;
}

int siam_rpc_channel_create(siam_rpc_channel **out, const char *target, size_t max_message_bytes,
                            siam_error *err) {
    siam_rpc_channel_config cfg = {.target = target, .max_message_bytes = max_message_bytes};
    return siam_rpc_channel_create_ex(out, &cfg, err);
}

void siam_rpc_channel_free(siam_rpc_channel *ch) {
    if (!ch)
        return;
    if (ch->channel)
        grpc_channel_destroy(ch->channel);
    if (ch->has_token) {
        grpc_slice_unref(ch->auth_md.key);
        grpc_slice_unref(ch->auth_md.value);
    }
    siam_rpc_secret_remove(ch->secret_slot);
    siam_rpc_meter_unref(ch->meter);
    free(ch->target);
    siam_rpc_client_tls_free(&ch->tls);
    free(ch);
}

const char *siam_rpc_channel_target(const siam_rpc_channel *ch) {
    return ch->target;
}

int siam_rpc_channel_traffic(siam_rpc_channel *ch, siam_rpc_traffic *rows, int max) {
    return ch ? siam_rpc_meter_get(ch->meter, rows, max) : 0;
}

int siam_rpc_channel_connect(siam_rpc_channel *ch, double timeout_s) {
    grpc_channel_reset_connect_backoff(ch->channel);
    grpc_connectivity_state state = grpc_channel_check_connectivity_state(ch->channel, 1);
    if (state == GRPC_CHANNEL_READY)
        return 1;
    /* after a failure the state stays TRANSIENT_FAILURE while gRPC tries again ("sticky"), so
     * only READY ends the wait early */
    gpr_timespec deadline = siam_rpc_deadline(timeout_s > 0 ? timeout_s : 1e-3);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    while (state != GRPC_CHANNEL_READY && state != GRPC_CHANNEL_SHUTDOWN &&
           gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), deadline) < 0) {
        grpc_channel_watch_connectivity_state(ch->channel, state, deadline, cq, NULL);
        grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        state = grpc_channel_check_connectivity_state(ch->channel, 1);
    }
    siam_rpc_cq_destroy(cq);
    return state == GRPC_CHANNEL_READY;
}

int siam_rpc_call(siam_rpc_channel *ch, const char *method, const uint8_t *req, size_t len,
                  double timeout_s, siam_rpc_buf *resp, siam_rpc_status *st) {
    resp->data = NULL;
    resp->len = 0;
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    grpc_slice path = grpc_slice_from_copied_string(method);
    grpc_call *call = grpc_channel_create_call(ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, path,
                                               NULL, siam_rpc_deadline(timeout_s), NULL);
    grpc_slice_unref(path);
    if (!call) {
        siam_rpc_cq_destroy(cq);
        return siam_rpc_status_set(st, SIAM_RPC_INTERNAL, "cannot create a call to %s", method);
    }
    grpc_metadata_array md_in, trailing;
    grpc_metadata_array_init(&md_in);
    grpc_metadata_array_init(&trailing);
    grpc_byte_buffer *send = copy_payload(req, len), *recv = NULL;
    int slot = siam_rpc_meter_slot(ch->meter, method);
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (ch->has_token) {
        ops[0].data.send_initial_metadata.count = 1;
        ops[0].data.send_initial_metadata.metadata = &ch->auth_md;
    }
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &md_in;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
    ops[5].data.recv_status_on_client.status = &code;
    ops[5].data.recv_status_on_client.status_details = &details;
    static int tag;
    grpc_call_error e = grpc_call_start_batch(call, ops, 6, &tag, NULL);
    if (e != GRPC_CALL_OK) {
        siam_rpc_status_set(st, SIAM_RPC_INTERNAL, "%s: %s", method, grpc_call_error_to_string(e));
    } else {
        siam_rpc_meter_count(ch->meter, slot, 1, len, 0, 1, 0);
        /* the call's own deadline ends it; this wait only has to outlast it */
        grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (recv)
            siam_rpc_meter_count(ch->meter, slot, 0, 0, grpc_byte_buffer_length(recv), 0, 1);
        if (code != GRPC_STATUS_OK) {
            status_from_call(st, code, details);
            siam_rpc_explain_tls_failure(ch->target, &ch->tls, method, st, timeout_s);
        } else if (!recv)
            siam_rpc_status_set(st, SIAM_RPC_INTERNAL, "%s: the server sent no answer", method);
        else if (siam_rpc_flatten(recv, resp))
            siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                "%s: out of memory for an answer of %zu bytes", method,
                                grpc_byte_buffer_length(recv));
        else
            siam_rpc_status_set(st, SIAM_RPC_OK, "%s", "");
    }
    if (recv)
        grpc_byte_buffer_destroy(recv);
    grpc_byte_buffer_destroy(send);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&md_in);
    grpc_metadata_array_destroy(&trailing);
    grpc_call_unref(call);
    siam_rpc_cq_destroy(cq);
    return st->code;
}

/* ---- streams ---------------------------------------------------------------------------- */

enum { OP_MD = 1, OP_RECV_MD = 2, OP_SEND = 4, OP_RECV = 8, OP_STATUS = 16, OP_CLOSE = 32 };

struct siam_rpc_stream {
    grpc_call *call;
    grpc_completion_queue *cq;
    char *method;
    double op_timeout;
    int pending; /* OP_* bits of batches started and not yet come back */
    grpc_metadata_array md_in, trailing;
    grpc_status_code code;
    grpc_slice details;
    grpc_byte_buffer *send, *recv; /* the message gRPC is sending; the answer being read */
    /* messages sent by the caller that gRPC has not taken yet (one SEND_MESSAGE at a time),
     * oldest first: queue[(head + i) % SIAM_RPC_STREAM_WINDOW] for i < queued */
    grpc_byte_buffer *queue[SIAM_RPC_STREAM_WINDOW];
    int head, queued;
    int awaiting;     /* messages sent whose answers have not been received */
    int status_done;  /* RECV_STATUS_ON_CLIENT has come back */
    int dead;         /* failed: later calls return `failure` */
    int start_failed; /* an op could not be started; the call was cancelled */
    int op_failed;    /* an op came back unsuccessful: the call is over */
    siam_rpc_status failure;
    siam_rpc_meter *meter; /* the channel's (a reference) */
    int slot;              /* this method's row in it */
};

static int start_op(siam_rpc_stream *s, grpc_op *op, size_t n, int bit) {
    grpc_call_error e = grpc_call_start_batch(s->call, op, n, (void *)(intptr_t)bit, NULL);
    if (e != GRPC_CALL_OK)
        return -1;
    s->pending |= bit;
    return 0;
}

/* Hands the oldest queued message to gRPC when no SEND_MESSAGE is in flight (the one that was
 * has come back: its bytes are freed). */
static void pump_sends(siam_rpc_stream *s) {
    if ((s->pending & OP_SEND) || s->start_failed)
        return;
    if (s->send) {
        grpc_byte_buffer_destroy(s->send);
        s->send = NULL;
    }
    if (!s->queued || s->op_failed)
        return;
    s->send = s->queue[s->head];
    s->queue[s->head] = NULL;
    s->head = (s->head + 1) % SIAM_RPC_STREAM_WINDOW;
    s->queued--;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = s->send;
    if (start_op(s, &op, 1, OP_SEND)) { /* receive() reports the call's status */
        s->start_failed = 1;
        grpc_call_cancel(s->call, NULL);
    }
}

/* Waits for one event until `deadline`; returns the OP_* bit that completed (0 on timeout). A
 * SEND_MESSAGE that came back makes room for the next queued message. */
static int next_event(siam_rpc_stream *s, gpr_timespec deadline, int *success) {
    grpc_event ev = grpc_completion_queue_next(s->cq, deadline, NULL);
    if (ev.type != GRPC_OP_COMPLETE)
        return 0;
    int bit = (int)(intptr_t)ev.tag;
    s->pending &= ~bit;
    *success = ev.success;
    if (!ev.success)
        s->op_failed = 1;
    if (bit == OP_STATUS)
        s->status_done = 1;
    if (bit == OP_SEND)
        pump_sends(s);
    return bit;
}

/* The call is over or must end: record why (the server's status when it has one). */
static int stream_fail(siam_rpc_stream *s, siam_rpc_status *st) {
    if (!s->dead) {
        s->dead = 1;
        if (s->status_done && s->code != GRPC_STATUS_OK)
            status_from_call(&s->failure, s->code, s->details);
        else if (s->status_done)
            siam_rpc_status_set(&s->failure, SIAM_RPC_INTERNAL,
                                "%s: the server ended the stream without an answer", s->method);
        else
            siam_rpc_status_set(&s->failure, SIAM_RPC_UNAVAILABLE, "%s: the stream broke",
                                s->method);
    }
    *st = s->failure;
    return st->code;
}

/* Cancels the call with a timeout status and waits for the core to hand back every op. */
static int stream_timeout(siam_rpc_stream *s, siam_rpc_status *st, const char *what) {
    grpc_call_cancel_with_status(s->call, GRPC_STATUS_DEADLINE_EXCEEDED, "client timeout", NULL);
    int ok;
    while (s->pending)
        next_event(s, gpr_inf_future(GPR_CLOCK_REALTIME), &ok);
    s->dead = 1;
    siam_rpc_status_set(&s->failure, SIAM_RPC_DEADLINE_EXCEEDED,
                        "%s: no %s from the server within %.0f s", s->method, what, s->op_timeout);
    *st = s->failure;
    return st->code;
}

/* Waits until none of `bits` is pending or the call ended; on the call's end, waits for the
 * status so the reason is known. Returns 0, or the failure code. */
static int wait_ops(siam_rpc_stream *s, int bits, siam_rpc_status *st, const char *what) {
    gpr_timespec deadline = siam_rpc_deadline(s->op_timeout);
    int failed = s->op_failed;
    while (s->pending & bits) {
        int ok = 1;
        int bit = next_event(s, deadline, &ok);
        if (!bit)
            return stream_timeout(s, st, what);
        if (!ok || bit == OP_STATUS)
            failed = 1;
    }
    if (failed || s->status_done) {
        /* the status tells why; it follows quickly once an op has failed */
        while (!s->status_done) {
            int ok;
            if (!next_event(s, deadline, &ok))
                return stream_timeout(s, st, what);
        }
        return stream_fail(s, st);
    }
    return 0;
}

int siam_rpc_stream_open(siam_rpc_channel *ch, const char *method, double op_timeout_s,
                         siam_rpc_stream **out, siam_rpc_status *st) {
    *out = NULL;
    siam_rpc_stream *s = calloc(1, sizeof *s);
    if (!s || !(s->method = strdup(method))) {
        free(s);
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    s->op_timeout = op_timeout_s;
    s->details = grpc_empty_slice();
    s->meter = siam_rpc_meter_ref(ch->meter);
    s->slot = siam_rpc_meter_slot(s->meter, method);
    siam_rpc_meter_count(s->meter, s->slot, 1, 0, 0, 0, 0);
    grpc_metadata_array_init(&s->md_in);
    grpc_metadata_array_init(&s->trailing);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_slice path = grpc_slice_from_copied_string(method);
    s->call = grpc_channel_create_call(ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq, path,
                                       NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_slice_unref(path);
    if (!s->call) {
        siam_rpc_stream_free(s);
        return siam_rpc_status_set(st, SIAM_RPC_INTERNAL, "cannot create a call to %s", method);
    }
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op.data.recv_status_on_client.trailing_metadata = &s->trailing;
    op.data.recv_status_on_client.status = &s->code;
    op.data.recv_status_on_client.status_details = &s->details;
    int bad = start_op(s, &op, 1, OP_STATUS);
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_INITIAL_METADATA;
    if (ch->has_token) {
        op.data.send_initial_metadata.count = 1;
        op.data.send_initial_metadata.metadata = &ch->auth_md;
    }
    bad = bad || start_op(s, &op, 1, OP_MD);
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_INITIAL_METADATA;
    op.data.recv_initial_metadata.recv_initial_metadata = &s->md_in;
    bad = bad || start_op(s, &op, 1, OP_RECV_MD);
    if (bad) {
        siam_rpc_stream_free(s);
        return siam_rpc_status_set(st, SIAM_RPC_INTERNAL, "cannot start %s", method);
    }
    /* the server's initial metadata proves it is there and serves the method */
    if (wait_ops(s, OP_MD | OP_RECV_MD, st, "answer to the stream's start")) {
        siam_rpc_stream_free(s);
        siam_rpc_explain_tls_failure(ch->target, &ch->tls, method, st, op_timeout_s);
        return st->code;
    }
    *out = s;
    return siam_rpc_status_set(st, SIAM_RPC_OK, "%s", "");
}

int siam_rpc_stream_send(siam_rpc_stream *s, siam_rpc_buf *req, siam_rpc_status *st) {
    if (s->dead) {
        siam_rpc_buf_free(req);
        *st = s->failure;
        return st->code;
    }
    if (s->awaiting >= SIAM_RPC_STREAM_WINDOW) {
        siam_rpc_buf_free(req);
        return siam_rpc_status_set(st, SIAM_RPC_FAILED_PRECONDITION,
                                   "%s: %d messages are already waiting for their answers",
                                   s->method, s->awaiting);
    }
    /* take what has come back meanwhile (a finished send frees its turn), without waiting */
    siam_rpc_meter_count(s->meter, s->slot, 0, req->len, 0, 1, 0);
    int ok;
    while (s->pending && next_event(s, gpr_time_0(GPR_CLOCK_MONOTONIC), &ok))
        ;
    s->queue[(s->head + s->queued) % SIAM_RPC_STREAM_WINDOW] = siam_rpc_take_payload(req);
    s->queued++;
    s->awaiting++;
    pump_sends(s);
    return siam_rpc_status_set(st, SIAM_RPC_OK, "%s", "");
}

int siam_rpc_stream_receive(siam_rpc_stream *s, siam_rpc_buf *resp, siam_rpc_status *st) {
    resp->data = NULL;
    resp->len = 0;
    if (s->dead) {
        *st = s->failure;
        return st->code;
    }
    if (!s->awaiting)
        return siam_rpc_status_set(st, SIAM_RPC_FAILED_PRECONDITION,
                                   "%s: receive without a message sent", s->method);
    s->awaiting--;
    int rc = 0;
    /* read even after a failed op (a send the server no longer took, its status in): answers
     * it sent before it refused a later message are still to be read, and each counts */
    if (!s->start_failed) {
        grpc_op op;
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_RECV_MESSAGE;
        op.data.recv_message.recv_message = &s->recv;
        if (start_op(s, &op, 1, OP_RECV)) {
            s->start_failed = 1;
            grpc_call_cancel(s->call, NULL);
        }
    }
    /* the last message's send must have come back too before its answer counts: it has, unless
     * the call failed (the server answers only what it has read) */
    int bits = s->awaiting || s->queued ? OP_RECV : OP_RECV | OP_SEND;
    gpr_timespec answer_by = siam_rpc_deadline(s->op_timeout);
    while (s->pending & bits) {
        int ok = 1;
        if (!next_event(s, answer_by, &ok))
            return stream_timeout(s, st, "answer");
    }
    if (s->start_failed)
        rc = stream_fail(s, st);
    if (!rc && !s->recv) { /* the server closed the stream instead of answering */
        int ok;
        gpr_timespec deadline = siam_rpc_deadline(s->op_timeout);
        while (!s->status_done)
            if (!next_event(s, deadline, &ok))
                return stream_timeout(s, st, "status");
        rc = stream_fail(s, st);
    }
    if (s->recv) {
        siam_rpc_meter_count(s->meter, s->slot, 0, 0, grpc_byte_buffer_length(s->recv), 0, 1);
        if (!rc && siam_rpc_flatten(s->recv, resp))
            rc = siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                     "%s: out of memory for an answer of %zu bytes", s->method,
                                     grpc_byte_buffer_length(s->recv));
        grpc_byte_buffer_destroy(s->recv);
        s->recv = NULL;
    }
    if (rc) {
        siam_rpc_buf_free(resp);
        return rc;
    }
    return siam_rpc_status_set(st, SIAM_RPC_OK, "%s", "");
}

int siam_rpc_stream_exchange(siam_rpc_stream *s, siam_rpc_buf *req, siam_rpc_buf *resp,
                             siam_rpc_status *st) {
    resp->data = NULL;
    resp->len = 0;
    int rc = siam_rpc_stream_send(s, req, st);
    return rc ? rc : siam_rpc_stream_receive(s, resp, st);
}

int siam_rpc_stream_close(siam_rpc_stream *s, siam_rpc_status *st) {
    if (s->dead) {
        *st = s->failure;
        return st->code;
    }
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    if (start_op(s, &op, 1, OP_CLOSE) == 0) {
        gpr_timespec deadline = siam_rpc_deadline(s->op_timeout);
        while (s->pending & (OP_CLOSE | OP_STATUS)) {
            int ok;
            if (!next_event(s, deadline, &ok))
                return stream_timeout(s, st, "final status");
        }
    }
    if (!s->status_done || s->code != GRPC_STATUS_OK)
        return stream_fail(s, st);
    s->dead = 1;
    siam_rpc_status_set(&s->failure, SIAM_RPC_FAILED_PRECONDITION, "%s: stream already closed",
                        s->method);
    return siam_rpc_status_set(st, SIAM_RPC_OK, "%s", "");
}

void siam_rpc_stream_free(siam_rpc_stream *s) {
    if (!s)
        return;
    if (s->call) {
        if (s->pending)
            grpc_call_cancel(s->call, NULL);
        int ok;
        while (s->pending)
            next_event(s, gpr_inf_future(GPR_CLOCK_REALTIME), &ok);
        grpc_call_unref(s->call);
    }
    if (s->send)
        grpc_byte_buffer_destroy(s->send);
    for (int i = 0; i < s->queued; i++)
        grpc_byte_buffer_destroy(s->queue[(s->head + i) % SIAM_RPC_STREAM_WINDOW]);
    if (s->recv)
        grpc_byte_buffer_destroy(s->recv);
    if (s->cq)
        siam_rpc_cq_destroy(s->cq);
    grpc_slice_unref(s->details);
    grpc_metadata_array_destroy(&s->md_in);
    grpc_metadata_array_destroy(&s->trailing);
    siam_rpc_meter_unref(s->meter);
    free(s->method);
    free(s);
}
