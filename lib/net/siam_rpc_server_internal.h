/* siam_rpc_server_internal: the server's state, shared by its lifecycle (siam_rpc_server.c) and
 * its call state machines (siam_rpc_server_calls.c); not for other modules. */
#ifndef SIAM_RPC_SERVER_INTERNAL_H
#define SIAM_RPC_SERVER_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <time.h>

#include <grpc/grpc.h>

#include "siam_rpc.h"
#include "siam_rpc_internal.h"
#include "siam_rpc_tls.h"

#define MAX_METHODS 16

enum tag_kind {
    T_UNARY_NEW,
    T_UNARY_DONE,
    T_UNARY_CLOSE, /* a deferred call's RECV_CLOSE_ON_SERVER, started when it arrives */
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
    int slot;     /* its row in the server's meter */
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

    siam_rpc_meter *meter;        /* traffic per method */
    siam_rpc_server_security sec; /* TLS files and bearer token */
    int tls_role;                 /* siam_rpc_tls_server_role is on */
};

/* Runs one event of the completion queue: a cq thread's, or the stopping thread's when no cq
 * thread runs. */
void siam_rpc_server_handle_event(siam_rpc_server *s, grpc_event ev);
/* Arms the requests for every method and for unknown methods (at start). */
void siam_rpc_server_arm_all(siam_rpc_server *s);
/* Stopping waits for no more than this: after the shutdown began no request is re-armed, so once
 * the armed ones have come back and the open calls have finished, nothing is left but idle
 * connections. Called with s->lock held. */
int siam_rpc_server_is_idle(const siam_rpc_server *s);

#endif
