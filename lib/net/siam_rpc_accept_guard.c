/* siam_rpc_accept_guard: accept4 for gRPC's listener that never reports running out of file
 * descriptors (see siam_rpc_accept_guard.h for why and how). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "siam_log.h"
#include "siam_rpc_accept_guard.h"

#define COMPONENT "rpc"
/* at most this many connections taken from the backlog per accept4 call: a flood that refills
 * the backlog as fast as it is emptied must not hold gRPC's thread for ever (its next connection
 * wakes the listener again) */
#define MAX_DRAIN   4096
#define LOG_EVERY_S 10.0

typedef int (*accept4_fn)(int, struct sockaddr *, socklen_t *, int);

static pthread_once_t resolve_once = PTHREAD_ONCE_INIT;
static accept4_fn next_accept4; /* libc's (or a sanitizer's) accept4 */

static atomic_int enabled;  /* running servers */
static atomic_int cap;      /* descriptors >= cap are refused */
static atomic_int refusing; /* a refusal has been logged and no recovery since */
static atomic_uint_least64_t n_calls, n_accepted, n_refused;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* everything below */
static int users, forced_cap, limit, spare = -1;
static double last_log, last_refusal, episode_start;
static int logged_any;
static uint64_t window_cap, window_emfile, episode_refused;

static void resolve(void) {
    void *p = dlsym(RTLD_NEXT, "accept4");
    memcpy(&next_accept4, &p, sizeof next_accept4);
}

static int call_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    if (next_accept4)
        return next_accept4(fd, addr, len, flags);
    return (int)syscall(SYS_accept4, fd, addr, len, flags);
}

/* Errors of one connection that died in the backlog (man accept(2): "treat them like EAGAIN by
 * retrying"); gRPC 1.51 would stop listening on any of them. */
static int is_connection_error(int e) {
    return e == ECONNABORTED || e == EPROTO || e == ENETDOWN || e == ENOPROTOOPT ||
           e == EHOSTDOWN || e == ENONET || e == EHOSTUNREACH || e == EOPNOTSUPP ||
           e == ENETUNREACH || e == EPERM;
}

static int open_spare(void) {
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Headroom left below RLIMIT_NOFILE for what is not a connection: checkpoint writes, gRPC's
 * eventfds and epoll descriptors, the log, the spare. */
static int cap_for(int lim) {
    int headroom = lim / 8;
    if (headroom < 16)
        headroom = 16;
    if (headroom > 1024)
        headroom = 1024;
    if (headroom > lim / 2)
        headroom = lim / 2;
    return lim - headroom;
}

/* Logs the refusals counted so far, at most once per LOG_EVERY_S. Called with lock held. */
static void log_refusals(double now) {
    if (logged_any && now - last_log < LOG_EVERY_S)
        return;
    char extra[96] = "";
    if (window_emfile)
        snprintf(extra, sizeof extra, " (%llu of them when no descriptor was left at all)",
                 (unsigned long long)window_emfile);
    char when[48] = "";
    if (logged_any)
        snprintf(when, sizeof when, " in the last %.0f s", now - last_log);
    LOG_WARN(COMPONENT,
             "refusing new connections: %llu closed as they arrived%s%s: at least %d files are "
             "open, the cap for the open-file limit (RLIMIT_NOFILE) %d; connections that send "
             "nothing are closed after the handshake timeout (--handshake-timeout), and new ones "
             "are accepted again once others close",
             (unsigned long long)(window_cap + window_emfile), when, extra, atomic_load(&cap),
             limit);
    logged_any = 1;
    last_log = now;
    window_cap = window_emfile = 0;
    atomic_store(&refusing, 1);
}

/* A connection was accepted after a refusal line: say so once (at most one such line per
 * refusal line, so a flood that frees a slot now and then logs no more than the rate limit). */
static void note_accepted(void) {
    pthread_mutex_lock(&lock);
    if (atomic_load(&refusing)) {
        double now = siam_now();
        LOG_INFO(COMPONENT,
                 "accepting connections again: %llu were refused in %.1f s, the last %.1f s ago",
                 (unsigned long long)episode_refused, last_refusal - episode_start,
                 now - last_refusal);
        atomic_store(&refusing, 0);
        episode_refused = 0;
    }
    pthread_mutex_unlock(&lock);
}

/* The listener has a connection for which there is no room (first >= 0: accepted at or above
 * the cap; first < 0: accept4 failed with EMFILE/ENFILE). Empties the backlog, keeping the first
 * connection that gets a descriptor below the cap while the spare is held. */
static int shed(int fd, struct sockaddr *addr, socklen_t *len, int flags, int first,
                int first_errno) {
    pthread_mutex_lock(&lock);
    uint64_t by_cap = 0, by_emfile = 0;
    int kept = -1, result_errno = EAGAIN;
    int c = atomic_load(&cap);
    if (first >= 0) {
        close(first);
        by_cap++;
    }
    int r = first, e = first_errno;
    for (int i = 0; i < MAX_DRAIN; i++) {
        if (i > 0 || first >= 0) {
            r = call_accept4(fd, addr, len, flags);
            e = errno;
        }
        if (r < 0) {
            if (e == EINTR || is_connection_error(e))
                continue;
            if ((e == EMFILE || e == ENFILE) && spare >= 0) {
                close(spare); /* room for one more accept, to close what it returns */
                spare = -1;
                continue;
            }
            if (e != EMFILE && e != ENFILE && e != EAGAIN && e != EWOULDBLOCK)
                result_errno = e; /* the listener's own error (shut down, ...): gRPC's to see */
            break;                /* the backlog is empty, or no descriptor can be had */
        }
        if (spare < 0) { /* r took the spare's place: give it back */
            close(r);
            by_emfile++;
            spare = open_spare();
            continue;
        }
        if (r >= c) {
            close(r);
            by_cap++;
            continue;
        }
        kept = r;
        break;
    }
    if (spare < 0)
        spare = open_spare();
    double now = siam_now();
    if (by_cap + by_emfile) {
        if (episode_refused == 0)
            episode_start = now;
        episode_refused += by_cap + by_emfile;
        last_refusal = now;
        window_cap += by_cap;
        window_emfile += by_emfile;
        atomic_fetch_add(&n_refused, by_cap + by_emfile);
        log_refusals(now);
    }
    pthread_mutex_unlock(&lock);
    if (kept >= 0) {
        atomic_fetch_add(&n_accepted, 1);
        return kept;
    }
    errno = result_errno;
    return -1;
}

/* Every accept4 of the process comes here (the executable's definition comes first in symbol
 * lookup); without a running server it is libc's. The parameters are declared as glibc's
 * <sys/socket.h> declares them (a transparent union for the address). */
int accept4(int fd, __SOCKADDR_ARG addr_arg, socklen_t *restrict len, int flags) {
    struct sockaddr *addr = addr_arg.__sockaddr__;
    pthread_once(&resolve_once, resolve);
    atomic_fetch_add(&n_calls, 1);
    int r = call_accept4(fd, addr, len, flags);
    if (atomic_load(&enabled) == 0)
        return r;
    int e = errno;
    if (r >= 0 && r < atomic_load(&cap)) {
        atomic_fetch_add(&n_accepted, 1);
        if (atomic_load(&refusing))
            note_accepted();
        return r;
    }
    if (r < 0 && e != EMFILE && e != ENFILE && !is_connection_error(e)) {
        errno = e;
        return r;
    }
    return shed(fd, addr, len, flags, r, e);
}

void siam_rpc_accept_guard_enable(void) {
    pthread_mutex_lock(&lock);
    if (users++ == 0) {
        struct rlimit rl;
        limit = 1024;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
            limit = rl.rlim_cur > INT_MAX ? INT_MAX : (int)rl.rlim_cur;
        atomic_store(&cap, forced_cap ? forced_cap : cap_for(limit));
        if (spare < 0)
            spare = open_spare();
        atomic_store(&enabled, 1);
        LOG_DEBUG(COMPONENT,
                  "connections are accepted while fewer than %d files are open (RLIMIT_NOFILE "
                  "%d), more are closed at once",
                  atomic_load(&cap), limit);
    }
    pthread_mutex_unlock(&lock);
}

void siam_rpc_accept_guard_disable(void) {
    pthread_mutex_lock(&lock);
    if (users > 0 && --users == 0) {
        atomic_store(&enabled, 0);
        if (spare >= 0)
            close(spare);
        spare = -1;
    }
    pthread_mutex_unlock(&lock);
}

void siam_rpc_accept_guard_stats(siam_rpc_accept_stats *out) {
    pthread_mutex_lock(&lock);
    out->calls = atomic_load(&n_calls);
    out->accepted = atomic_load(&n_accepted);
    out->refused = atomic_load(&n_refused);
    out->cap = atomic_load(&cap);
    out->spare = spare;
    pthread_mutex_unlock(&lock);
}

void siam_rpc_accept_guard_set_cap(int c) {
    pthread_mutex_lock(&lock);
    forced_cap = c;
    if (users > 0)
        atomic_store(&cap, c ? c : cap_for(limit));
    pthread_mutex_unlock(&lock);
}
