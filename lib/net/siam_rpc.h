/* siam_rpc: the one module that touches the gRPC C core. The server and the client call it in
 * their own terms: methods are byte-in/byte-out handlers (the caller encodes with protobuf-c),
 * statuses are codes with a message. This header includes no gRPC header.
 *
 * Threading: siam_rpc_init() once per process before anything else here (block SIGINT/SIGTERM
 * first if the program waits for them with sigwait: gRPC's threads inherit the mask), and
 * siam_rpc_shutdown() after every server, channel and stream has been freed. */
#ifndef SIAM_RPC_H
#define SIAM_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "siam_error.h"

/* gRPC status codes (the values are the wire values). */
typedef enum {
    SIAM_RPC_OK = 0,
    SIAM_RPC_CANCELLED = 1,
    SIAM_RPC_UNKNOWN = 2,
    SIAM_RPC_INVALID_ARGUMENT = 3,
    SIAM_RPC_DEADLINE_EXCEEDED = 4,
    SIAM_RPC_NOT_FOUND = 5,
    SIAM_RPC_ALREADY_EXISTS = 6,
    SIAM_RPC_PERMISSION_DENIED = 7,
    SIAM_RPC_RESOURCE_EXHAUSTED = 8,
    SIAM_RPC_FAILED_PRECONDITION = 9,
    SIAM_RPC_ABORTED = 10,
    SIAM_RPC_OUT_OF_RANGE = 11,
    SIAM_RPC_UNIMPLEMENTED = 12,
    SIAM_RPC_INTERNAL = 13,
    SIAM_RPC_UNAVAILABLE = 14,
    SIAM_RPC_DATA_LOSS = 15,
    SIAM_RPC_UNAUTHENTICATED = 16,
} siam_rpc_code;

/* "INVALID_ARGUMENT" etc.; "UNKNOWN_CODE" outside 0..16. */
const char *siam_rpc_code_name(int code);

/* A call's outcome: code and a message for people (sent as grpc-message). */
typedef struct {
    int code;
    char msg[SIAM_ERROR_MSG_MAX];
} siam_rpc_status;

/* Sets code and a printf-style message; returns code. st may be NULL. */
int siam_rpc_status_set(siam_rpc_status *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 1 when trying the same call again cannot help, so a caller that retries must not:
 * UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT, FAILED_PRECONDITION, UNIMPLEMENTED.
 * TLS failures are among them: gRPC reports a refused certificate (by either side), a name
 * mismatch, or TLS on one side only as UNAVAILABLE "failed to connect", which looks transient;
 * the client side of this layer recognises those (see siam_rpc_channel_create_ex) and returns
 * UNAUTHENTICATED with a message starting "TLS: " that says which side refused what. Everything
 * else (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ...) may be transient; OK is 0. */
int siam_rpc_status_is_permanent(const siam_rpc_status *st);

/* A message owned by whoever holds it: data is malloc'd (free() it), len bytes. */
typedef struct {
    uint8_t *data;
    size_t len;
} siam_rpc_buf;

void siam_rpc_buf_free(siam_rpc_buf *b);

/* Default limit on one message in each direction: a batch of 4,096 pairs of 128 floats (4 MiB
 * of floats each way) with room to spare. */
#define SIAM_RPC_DEFAULT_MAX_MESSAGE (16u * 1024u * 1024u)

/* What a server or a channel has moved, per method: calls, and the messages and their bytes as
 * the handlers and callers see them (the serialized protobuf messages). Not counted: gRPC's
 * 5-byte prefix of every message, HTTP/2 frames, headers and pings, TLS records, TCP/IP headers
 * (about 3-5 % more on a link for large messages; docs/BENCHMARKS.md "Links" measures it), and
 * calls to methods that are not served. "Sent" counts messages handed to gRPC to send (a call
 * that breaks afterwards may not have delivered them); "received" those read whole. */
#define SIAM_RPC_TRAFFIC_MAX   16 /* methods per server or channel; the last row is "(other)" */
#define SIAM_RPC_TRAFFIC_OTHER "(other)"
typedef struct {
    char method[128]; /* the full path, "/pkg.Service/Method" */
    uint64_t calls;   /* unary calls and streams started (also those refused) */
    uint64_t messages_sent, messages_received;
    uint64_t bytes_sent, bytes_received;
} siam_rpc_traffic;

/* Starts gRPC (grpc_init). Returns SIAM_OK. */
int siam_rpc_init(void);
/* Stops gRPC (grpc_shutdown); after every server, channel and stream is freed. */
void siam_rpc_shutdown(void);
/* The gRPC core version string ("29.0.0" for Debian's 1.51). */
const char *siam_rpc_core_version(void);

/* ------------------------------------------------------------------------------------------ */
/* Server                                                                                       */

typedef struct siam_rpc_server siam_rpc_server;

/* What a handler knows about its call. */
typedef struct {
    const char *method; /* "/pkg.Service/Method" */
    const char *peer;   /* "ipv4:127.0.0.1:60308" */
} siam_rpc_call_info;

/* Unary method: decode req (len bytes), compute, and either fill *resp (malloc'd; the rpc layer
 * sends and frees it) and return SIAM_RPC_OK, or return a non-OK code set in *st (resp is then
 * ignored and freed). Runs on one of the server's threads, several at once: be thread-safe. */
typedef int (*siam_rpc_unary_fn)(void *ctx, const siam_rpc_call_info *call, const uint8_t *req,
                                 size_t len, siam_rpc_buf *resp, siam_rpc_status *st);

/* A unary call whose answer comes later: the handler keeps the reply and calls
 * siam_rpc_reply_send exactly once, from any thread, when the answer is ready (e.g. when an
 * averaging round closes). req is valid only during the handler call. Until every reply has been
 * sent, siam_rpc_server_stop cannot finish: answer pending replies before stopping. */
typedef struct siam_rpc_reply siam_rpc_reply;
typedef void (*siam_rpc_deferred_fn)(void *ctx, const siam_rpc_call_info *call, const uint8_t *req,
                                     size_t len, siam_rpc_reply *reply);
/* Answers: OK with *resp (taken: the rpc layer sends and frees it; may be NULL otherwise), or
 * st's code and message. The reply is gone afterwards. If the client has given up meanwhile,
 * the answer is dropped. */
void siam_rpc_reply_send(siam_rpc_reply *reply, siam_rpc_buf *resp, const siam_rpc_status *st);
/* 1 once the caller of a pending deferred call has gone (cancelled it, its deadline passed, its
 * connection broke): whatever is sent will be dropped. 0 while the caller still waits. The
 * reply stays valid, and must still be sent, until siam_rpc_reply_send. Thread-safe. */
int siam_rpc_reply_cancelled(const siam_rpc_reply *reply);

/* Bidirectional stream that answers every request message with one response, in order. The rpc
 * layer reads the next request only after the previous response has been sent, so one stream
 * holds at most one request and one response in memory. */
typedef struct {
    /* A new stream: returns its state (NULL is allowed and passed back as stream). */
    void *(*open)(void *ctx, const siam_rpc_call_info *call);
    /* One request: as siam_rpc_unary_fn; a non-OK code ends the stream with that status. */
    int (*message)(void *ctx, void *stream, const uint8_t *req, size_t len, siam_rpc_buf *resp,
                   siam_rpc_status *st);
    /* The stream is over: final->code is OK when the client half-closed and every answer went
     * out, the handler's code when message() failed, CANCELLED/UNAVAILABLE when the client went
     * away or the server shut down. Free the state here. Called exactly once per open(). */
    void (*close)(void *ctx, void *stream, const siam_rpc_status *final);
} siam_rpc_stream_handler;

typedef struct {
    const char *listen;       /* "127.0.0.1:50051", "0.0.0.0:50051", "[::]:0" (0 = any port) */
    int threads;              /* completion-queue threads (>= 1) */
    size_t max_message_bytes; /* limit on received messages; 0 = SIAM_RPC_DEFAULT_MAX_MESSAGE */
    /* TLS: paths of PEM files; all NULL = plaintext. tls_cert (the server's certificate, or its
     * chain: the server's first) and tls_key (its unencrypted private key) turn TLS on;
     * tls_client_ca (the CA certificates that sign clients' certificates) also makes every client
     * present a certificate signed by one of them (mutual TLS: required and verified). */
    const char *tls_cert, *tls_key, *tls_client_ca;
    /* Bearer token: the token itself (see siam_auth_token_load), NULL = none. When set, every
     * call (every method, Train streams, the health check and unknown methods too) that lacks
     * the metadata "authorization: Bearer <token>", or carries another token, is answered
     * UNAUTHENTICATED before any handler runs; the message never holds a token. The health check
     * is not exempt: Kubernetes' gRPC probes send no metadata (and speak no TLS), so with a token
     * or TLS use a tcpSocket probe. The token is compared in constant time and never logged. */
    const char *auth_token;
    /* A connection must finish its handshake (TLS, and the HTTP/2 preface and settings) within
     * this many milliseconds or it is closed, so that connections that send nothing cannot hold
     * the server's file descriptors; 0 = SIAM_RPC_DEFAULT_HANDSHAKE_TIMEOUT_MS. */
    int handshake_timeout_ms;
    /* Tests only: siam_rpc_server_start fails as if creating its thread number fail_thread_for_test
     * (1-based) had failed; 0 = never. */
    int fail_thread_for_test;
} siam_rpc_server_config;

/* gRPC's own default is 120 s; a client on the other side of the world handshakes in well under
 * a second. */
#define SIAM_RPC_DEFAULT_HANDSHAKE_TIMEOUT_MS 10000

/* Creates a server; nothing listens before siam_rpc_server_start. With TLS, the files are read
 * and checked here: missing, unreadable, empty, not PEM, not a certificate or a private key, an
 * encrypted key: SIAM_ERR_IO or SIAM_ERR_FORMAT naming the file the way siam-server's flags do
 * (--tls-cert, --tls-key, --tls-client-ca) and what is wrong. A key that does not match the
 * certificate is found by siam_rpc_server_start (gRPC loads the pair when binding). Warnings
 * (an expired certificate, a key readable by others) go to the log. */
int siam_rpc_server_create(siam_rpc_server **out, const siam_rpc_server_config *cfg,
                           siam_error *err);
/* Registers methods by full path ("/pkg.Service/Method"); before start. fn/handler and
 * ctx must outlive the server. Calls to paths not registered get UNIMPLEMENTED at once. */
int siam_rpc_server_add_unary(siam_rpc_server *s, const char *method, siam_rpc_unary_fn fn,
                              void *ctx, siam_error *err);
int siam_rpc_server_add_stream(siam_rpc_server *s, const char *method,
                               const siam_rpc_stream_handler *h, void *ctx, siam_error *err);
int siam_rpc_server_add_deferred(siam_rpc_server *s, const char *method, siam_rpc_deferred_fn fn,
                                 void *ctx, siam_error *err);
/* Binds the address and starts the threads. *port (may be NULL) gets the bound port.
 * While a server runs, connections beyond what the open-file limit (RLIMIT_NOFILE) leaves room
 * for are closed as they arrive, and the server goes on listening (a warning says so, at most
 * every 10 s); see siam_rpc_accept_guard.h.
 * SIAM_ERR_IO naming the address when it cannot be bound; SIAM_ERR_FORMAT naming the files when
 * gRPC refuses the TLS certificate and key (e.g. the key does not match the certificate). A TLS
 * server logs the handshakes it refuses as warnings (a client without a certificate, with one
 * that does not verify, or not speaking TLS; gRPC 1.51 does not say which peer) and, at info
 * level, clients that hung up during the handshake (with their address). */
int siam_rpc_server_start(siam_rpc_server *s, int *port, siam_error *err);
/* Stops accepting new calls, lets calls in flight finish for up to grace_s seconds, cancels the
 * rest, and joins the threads. Returns the number of calls that had to be cancelled. */
int siam_rpc_server_stop(siam_rpc_server *s, double grace_s);
/* Stops (grace 0) if still running, then frees. NULL is fine. */
void siam_rpc_server_free(siam_rpc_server *s);
/* The server's traffic since it was created: one row per registered method that has seen a call,
 * in the order the methods were added, at most max rows; returns the number filled. A server
 * counts a call when it arrives (also one refused for its token), a message received when it
 * has been read, an answer when it is handed to gRPC. Thread-safe, also after stop. */
int siam_rpc_server_traffic(siam_rpc_server *s, siam_rpc_traffic *rows, int max);

/* ------------------------------------------------------------------------------------------ */
/* Client                                                                                       */

typedef struct siam_rpc_channel siam_rpc_channel;
typedef struct siam_rpc_stream siam_rpc_stream;

typedef struct {
    const char *target;       /* "127.0.0.1:50051", "host:port", "ipv4:10.0.0.1:50051" */
    size_t max_message_bytes; /* 0 = SIAM_RPC_DEFAULT_MAX_MESSAGE */
    /* TLS: paths of PEM files; tls_ca NULL = plaintext. tls_ca holds the CA certificate(s) the
     * server's certificate must be signed by; tls_cert and tls_key (both or neither) are this
     * client's certificate and key for a server that requires them (mutual TLS). */
    const char *tls_ca, *tls_cert, *tls_key;
    /* The name the server's certificate must hold, instead of the target's host (e.g. connect to
     * an IP address and check for "siam-server"); NULL = the target's host. */
    const char *tls_server_name;
    /* Sent as "authorization: Bearer <token>" with every call and stream; NULL = none. */
    const char *auth_token;
} siam_rpc_channel_config;

/* A channel. Connects lazily: an unreachable server shows up as UNAVAILABLE on the first call.
 * Keepalive pings detect a server that vanished. With TLS the files are read and checked here
 * (as siam_rpc_server_create does, naming them --tls-ca, --tls-cert, --tls-key), including
 * whether the key matches the certificate (gRPC loads the pair into a server that is bound to
 * 127.0.0.1:0 and never started, since the client side would only find out when connecting).
 *
 * TLS failures: when a call or a stream's start fails because the TLS handshake failed, the
 * status becomes UNAUTHENTICATED "TLS: ..." saying which side refused what, e.g. "the client
 * rejected the server's certificate: unknown CA: ...", "...: expired: ...", "...: name
 * mismatch: ...", "the server rejected this client's certificate (mutual TLS: ...)", "the
 * server requires a client certificate ...", "the server at ADDR does not speak TLS ...", "the
 * server at ADDR requires TLS ...". gRPC 1.51 says only "certificate verify failed" or "Socket
 * closed" for most of these, so to tell them apart this layer connects once more with a TLS
 * check that accepts any certificate, records the server's certificate and hangs up before any
 * byte of a call is sent (gRPC needs a method path to connect: the probe names the failed call's,
 * which never reaches the server); the certificate is then compared with tls_ca and the clock. */
int siam_rpc_channel_create_ex(siam_rpc_channel **out, const siam_rpc_channel_config *cfg,
                               siam_error *err);
/* A plaintext channel without a token: siam_rpc_channel_create_ex with only target and
 * max_message_bytes. */
int siam_rpc_channel_create(siam_rpc_channel **out, const char *target, size_t max_message_bytes,
                            siam_error *err);
void siam_rpc_channel_free(siam_rpc_channel *ch);
/* The channel's traffic since it was created, by its calls and streams (also streams still open
 * or freed after the channel): one row per method called, in the order first called, at most max
 * rows; returns the number filled. A unary call counts its request when it is started and its
 * answer when it arrives; a stream counts at open, at every send and every answer received.
 * Thread-safe. */
int siam_rpc_channel_traffic(siam_rpc_channel *ch, siam_rpc_traffic *rows, int max);
const char *siam_rpc_channel_target(const siam_rpc_channel *ch);
/* Connects now, if not connected, and waits up to timeout_s for the connection; 1 when the
 * channel is connected, 0 when not (yet). Use it before retrying a server that went away: after
 * a failed connection gRPC waits, doubling up to two minutes, before its next attempt, and
 * meanwhile fails every call at once with UNAVAILABLE, even when the server is back; this
 * starts an attempt at once. */
int siam_rpc_channel_connect(siam_rpc_channel *ch, double timeout_s);

/* Unary call with a deadline of timeout_s seconds. Returns st->code; on OK *resp holds the
 * answer (malloc'd, caller frees with siam_rpc_buf_free). */
int siam_rpc_call(siam_rpc_channel *ch, const char *method, const uint8_t *req, size_t len,
                  double timeout_s, siam_rpc_buf *resp, siam_rpc_status *st);

/* Opens a bidirectional stream. op_timeout_s bounds every later exchange/close: if the server
 * does not answer within it, the call is cancelled with DEADLINE_EXCEEDED (never a hang). */
int siam_rpc_stream_open(siam_rpc_channel *ch, const char *method, double op_timeout_s,
                         siam_rpc_stream **out, siam_rpc_status *st);
/* Sends one message and waits for the one answer. The request's bytes are handed to gRPC
 * without a copy: *req is taken (emptied; the rpc layer frees the bytes) whatever the outcome.
 * Returns st->code; on OK *resp holds the answer. After a failure the stream is dead: every
 * later call returns the same status. */
int siam_rpc_stream_exchange(siam_rpc_stream *s, siam_rpc_buf *req, siam_rpc_buf *resp,
                             siam_rpc_status *st);
/* The two halves of an exchange, so that the caller can work while the server computes:
 * send() hands *req over (as exchange does) and returns at once; receive() waits for the oldest
 * answer not yet received (bounded by the stream's op timeout, counted from the call to
 * receive). Up to SIAM_RPC_STREAM_WINDOW messages may await their answers (a worker's batches
 * in flight): gRPC sends them one after the other in order while the caller works or waits; one
 * more is FAILED_PRECONDITION. When the server ends the stream with an error, receive() still
 * returns every answer it sent before, then the error for each message left. */
#define SIAM_RPC_STREAM_WINDOW 8
int siam_rpc_stream_send(siam_rpc_stream *s, siam_rpc_buf *req, siam_rpc_status *st);
int siam_rpc_stream_receive(siam_rpc_stream *s, siam_rpc_buf *resp, siam_rpc_status *st);
/* Half-closes and waits for the server's final status; returns st->code. */
int siam_rpc_stream_close(siam_rpc_stream *s, siam_rpc_status *st);
/* Cancels the stream if it is still open, then frees it. NULL is fine. */
void siam_rpc_stream_free(siam_rpc_stream *s);

#endif
