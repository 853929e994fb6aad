/* siam_rpc_accept_guard: keeps gRPC's listening sockets alive when the process runs out of file
 * descriptors (not for other modules than the rpc server and its tests).
 *
 * gRPC 1.51's tcp_server_posix stops listening for good after an accept4 error other than
 * EAGAIN/EINTR: a flood of idle connections up to RLIMIT_NOFILE (EMFILE) leaves the server deaf
 * after the flood ends. This module defines accept4 in the program (libgrpc's calls resolve to
 * the executable's definition, which forwards to libc's). While a server has the guard enabled:
 *   - a connection whose descriptor would be at or above a cap derived from RLIMIT_NOFILE (the
 *     limit less some headroom for checkpoints, logs and gRPC's own descriptors) is closed at
 *     once;
 *   - on EMFILE/ENFILE a spare descriptor held in reserve is closed to accept and close the
 *     excess connections, then reopened;
 *   - in both cases every connection waiting in the backlog is taken (accepted, and kept if a
 *     descriptor below the cap has come free, closed otherwise) until the backlog is empty,
 *     because gRPC's listener is edge-triggered: a connection left there would wait for the next
 *     one to arrive. Then accept4 fails with EAGAIN, which gRPC answers by listening on.
 * Refusals are logged as warnings at most once per 10 s with counts, and once when connections
 * are accepted again. */
#ifndef SIAM_RPC_ACCEPT_GUARD_H
#define SIAM_RPC_ACCEPT_GUARD_H

#include <stdint.h>

/* Turns the guard on (counted: once per running server), reading RLIMIT_NOFILE for the cap and
 * opening the spare descriptor. Logs the limit and the cap at info level the first time. */
void siam_rpc_accept_guard_enable(void);
/* Turns it off again (the last server stopping closes the spare descriptor). */
void siam_rpc_accept_guard_disable(void);

typedef struct {
    uint64_t calls;    /* accept4 calls that went through the guard (enabled or not) */
    uint64_t accepted; /* connections handed to the caller while enabled */
    uint64_t refused;  /* connections closed at once */
    int cap;           /* descriptors at or above this are refused; 0 before the first enable */
    int spare;         /* the spare descriptor, -1 when none is held */
} siam_rpc_accept_stats;
void siam_rpc_accept_guard_stats(siam_rpc_accept_stats *out);

/* Tests: sets the cap (0 = derive it from RLIMIT_NOFILE again). */
void siam_rpc_accept_guard_set_cap(int cap);

#endif
