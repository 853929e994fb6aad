/* siam_rpc_internal: helpers the rpc server and client share (gRPC types; not for other
 * modules). */
#ifndef SIAM_RPC_INTERNAL_H
#define SIAM_RPC_INTERNAL_H

#include <grpc/grpc.h>
#include <grpc/support/time.h>

#include "siam_rpc.h"

/* Copies a received message into one malloc'd buffer (*out). 0, or -1 when out of memory. */
int siam_rpc_flatten(grpc_byte_buffer *bb, siam_rpc_buf *out);

/* A byte buffer that takes *b's bytes without a copy (freed when gRPC is done with them);
 * *b is emptied. */
grpc_byte_buffer *siam_rpc_take_payload(siam_rpc_buf *b);

/* An integer channel argument. */
grpc_arg siam_rpc_int_arg(const char *key, int value);

/* The monotonic time seconds from now; never (infinite future) for seconds <= 0. */
gpr_timespec siam_rpc_deadline(double seconds);

/* Shuts cq down, drains what is left in it and destroys it. */
void siam_rpc_cq_destroy(grpc_completion_queue *cq);

/* ---- traffic counters (siam_rpc_meter) ----
 * One per server or channel; the channel's streams hold a reference each. new: NULL when out of
 * memory (then every call below does nothing and counts nothing). slot: the row of a method (found
 * or added; the last row takes every method beyond the table), -1 for a NULL meter. count adds to
 * a row. get copies the rows that saw a call or a message (siam_rpc_server_traffic). All
 * thread-safe. */
typedef struct siam_rpc_meter siam_rpc_meter;
siam_rpc_meter *siam_rpc_meter_new(void);
siam_rpc_meter *siam_rpc_meter_ref(siam_rpc_meter *m);
void siam_rpc_meter_unref(siam_rpc_meter *m);
int siam_rpc_meter_slot(siam_rpc_meter *m, const char *method);
void siam_rpc_meter_count(siam_rpc_meter *m, int slot, int calls, size_t sent, size_t received,
                          int messages_sent, int messages_received);
int siam_rpc_meter_get(siam_rpc_meter *m, siam_rpc_traffic *rows, int max);

/* ---- gRPC's own log (siam_rpc_log) ----
 * Installs the capture of gRPC's log (siam_rpc_init, before grpc_init). core_version is the core
 * that runs (grpc_version_string()); when it is not the one siam was built against, gRPC's lines
 * stay out of siam's log (a warning says so once) and this returns 0; else 1. Either way the
 * TLS lines are kept for the explanations below, scrubbed. */
int siam_rpc_log_capture(const char *core_version);

/* ---- gRPC's own log lines about TLS ----
 * gRPC 1.51 says what went wrong in a TLS handshake or with a certificate or key only in its log
 * (gpr_log), not in a status: siam_rpc_common keeps the last few such lines. */

/* Forgets the lines kept so far. */
void siam_rpc_tls_log_reset(void);
/* The TLS lines seen since the last reset, joined with " | " ("" if none). */
void siam_rpc_tls_log_get(char *buf, size_t n);
/* on: this process serves TLS, so gRPC's handshake errors are the server's refusals of clients,
 * logged as warnings in siam's words. client_ca names the --tls-client-ca file (NULL without
 * mutual TLS). The server calls it at start (on = 1) and stop (on = 0). */
void siam_rpc_tls_server_role(int on, const char *client_ca);
/* A secret (the bearer token, len bytes) that must never reach a log line: gRPC's log lines are
 * scrubbed of it, as sent and as the hex dump of GRPC_TRACE=http ("73 33 63 ..."). add returns a
 * slot for remove (channels with the same token share one, counted), or -1 when out of slots (4
 * different tokens) or memory. */
int siam_rpc_secret_add(const char *secret, size_t len);
void siam_rpc_secret_remove(int slot);

/* A warning that may come once per connection or call (a refused token, a refused certificate):
 * logged at most once per 10 s per kind, with the count of those left out. */
typedef enum {
    SIAM_RPC_WARN_AUTH_MISSING,
    SIAM_RPC_WARN_AUTH_MALFORMED,
    SIAM_RPC_WARN_AUTH_WRONG,
    SIAM_RPC_WARN_TLS_CLIENT_CERT,
    SIAM_RPC_WARN_TLS_NO_CLIENT_CERT,
    SIAM_RPC_WARN_TLS_NOT_TLS,
    SIAM_RPC_WARN_TLS_OTHER,
    SIAM_RPC_WARN_TLS_CLOSED,
    SIAM_RPC_WARN_TLS_SNI,
    SIAM_RPC_WARN_KINDS
} siam_rpc_warn_kind;
void siam_rpc_warn_limited(siam_rpc_warn_kind kind, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
