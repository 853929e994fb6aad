/* siam_retry: how a worker rides out a siam-server that went away (killed, restarted, not up
 * yet): which gRPC codes are worth another attempt, and when to make it.
 *
 * Schedule: exponential backoff with full jitter. The k-th wait of an outage (k = 0, 1, ...) is
 * drawn uniformly from [0, min(cap, initial * 2^k)] (0.2 s doubling to a 5 s cap by default),
 * so workers that lost the same server do not come back in lockstep. An outage starts at the
 * first failed call and ends with the first good answer; it may last `budget` seconds
 * (siam-client --retry-for): the last wait is cut so that one attempt is made at the end of the
 * budget, and a failure after that gives up. A new outage gets the whole budget again.
 *
 * Transient (retried): UNAVAILABLE (server down, restarting, shutting down, connection lost),
 * CANCELLED (a stream cut by the server's shutdown), DEADLINE_EXCEEDED (no answer in time) and
 * ABORTED. Every other code is permanent: the same request would fail the same way
 * (UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT, FAILED_PRECONDITION, UNIMPLEMENTED,
 * ALREADY_EXISTS, RESOURCE_EXHAUSTED, ...). */
#ifndef SIAM_RETRY_H
#define SIAM_RETRY_H

#include <stddef.h>
#include <stdint.h>

#include "siam_rng.h"
#include "siam_rpc.h"

#define SIAM_RETRY_INITIAL_S 0.2 /* ceiling of the first wait */
#define SIAM_RETRY_CAP_S     5.0 /* largest ceiling */
#define SIAM_RETRY_CONNECT_S 0.5 /* after a wait, longest wait for the connection itself */

/* Optional check before every attempt of an outage (after the wait): 0 to go on, non-zero with
 * why (cap bytes, appended to the caller's error) to give up, e.g. when the server came back
 * with settings the worker cannot go on with. */
typedef int (*siam_retry_check_fn)(void *ctx, char *why, size_t cap);

typedef struct {
    double budget;             /* seconds one outage may last; 0 = never retry */
    double initial, cap;       /* the ceiling of the k-th wait is min(cap, initial * 2^k) */
    siam_rng rng;              /* jitter */
    int failures;              /* failed attempts in the outage under way (0: none) */
    double started;            /* siam_now() of the outage's first failure */
    uint64_t reconnects;       /* outages that ended with a good answer */
    double outage_seconds;     /* their total length */
    siam_retry_check_fn check; /* may be NULL */
    void *check_ctx;
} siam_retry;

/* budget_s as above; seed the jitter differently in every process (e.g. pid and time). */
void siam_retry_init(siam_retry *r, double budget_s, uint64_t seed);

/* 1 for the codes retried (see above), 0 for the rest. */
int siam_retry_code_is_transient(int code);

/* The ceiling of the k-th wait of an outage: min(cap, initial * 2^k). */
double siam_retry_ceiling(const siam_retry *r, int k);

/* After a failed attempt at time now (siam_now() seconds): the wait before the next attempt,
 * in [0, ceiling(k)] and within the budget left, or -1 when the budget is spent (give up). The
 * first failure of an outage starts it. */
double siam_retry_next_delay(siam_retry *r, double now);

/* A good answer at time now: ends the outage under way, if any, and returns its length in
 * seconds (counted in reconnects and outage_seconds); -1 when there was none. r may be NULL. */
double siam_retry_success(siam_retry *r, double now);

/* Seconds of the budget used by the outage under way at time now (0 when none). */
double siam_retry_used(const siam_retry *r, double now);

/* What a caller does after a failed call to siam-server at `server` with status st (`what`
 * names the call in the log, e.g. "Train step 12"). When st is transient and the budget allows:
 * logs "siam-server at X unavailable (what: CODE: message); retrying in 1.6 s (12.0 s of 60 s
 * used)", waits, then connects the channel (ch may be NULL; up to SIAM_RETRY_CONNECT_S more,
 * within the budget), runs r->check, and returns 1: try again. Otherwise returns 0 and fills
 * why (cap bytes) with what to append to the caller's error message: "" for a permanent code or
 * r NULL / budget 0; "; gave up after retrying for 60.0 s (--retry-for 60)" when the budget ran
 * out; or the check's reason. */
int siam_retry_again(siam_retry *r, siam_rpc_channel *ch, const char *server, const char *what,
                     const siam_rpc_status *st, char *why, size_t cap);

#endif
