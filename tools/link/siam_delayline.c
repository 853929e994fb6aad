/* siam-delayline: a TCP relay that stands in for a slower, longer link, for measuring siam over
 * emulated networks where the kernel has no netem (docs/BENCHMARKS.md "Links").
 *
 * Every connection accepted on --listen is relayed to --connect. In each direction, every chunk
 * read from one side is written to the other once a link of --rate-mbit would have carried it
 * and --delay-ms later: a chunk of n bytes read at time t leaves the "serialiser" at
 *     done = max(t, done of the previous chunk) + 8 n / rate
 * and is written at done + delay (rate 0: at t + delay; the rate then comes from elsewhere, e.g.
 * tbf on the interface). Chunks are cut to about half a millisecond of the rate, so the far side
 * sees the bytes arrive as a paced stream, not in bursts. While more than --queue-ms of data
 * waits for the serialiser (the link's buffer), the relay stops reading, and TCP's flow control
 * pushes back on the sender as a full link would.
 *
 * What it does not emulate: loss, reordering, jitter, and TCP's own behaviour over a long path
 * (each side's TCP sees a short round trip to the relay: slow start and congestion control run
 * on the short hops; flow control above TCP, such as HTTP/2 windows, sees the whole delay). A
 * connection is accepted at once and then connected upstream, so the TCP handshake itself is not
 * delayed; everything after it is, half-closes included.
 *
 * One thread, poll() with nanosecond timeouts (timer slack 1 ns). It prints "siam-delayline
 * listening on ADDR:PORT" on stdout when ready, a line per connection on stderr, and the totals
 * on SIGINT/SIGTERM. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "siam_error.h"
#include "siam_log.h"
#include "siam_options.h"

#define PROG      "siam-delayline"
#define COMPONENT "delayline"

#define READ_MAX     (256 * 1024) /* bytes per read */
#define SEG_MIN      1448         /* a chunk is at least one TCP segment's payload */
#define SEG_MAX      (64 * 1024)
#define CHUNKS_MAX   65536      /* chunks queued per direction; reading stops when full */
#define UNPACED_RING (8u << 20) /* bytes held per direction without a rate */
#define CONNECT_S    5          /* upstream connect timeout */
#define NS           1000000000LL

typedef struct {
    int64_t release; /* CLOCK_MONOTONIC ns at which it may be written */
    uint32_t len;
} chunk;

/* One direction of a connection: bytes read from `from`, held in a ring, written to `to`. */
typedef struct {
    int from, to;
    uint8_t *ring;
    size_t cap, head, used; /* ring: bytes [head, head + used) mod cap, oldest first */
    chunk *q;
    size_t qhead, qn; /* chunk ring of CHUNKS_MAX */
    size_t head_done; /* bytes of q[qhead] written already */
    int64_t busy;     /* the serialiser's clock: when the last chunk read is fully sent */
    int eof;          /* `from` said EOF */
    int64_t eof_at;   /* when to pass it on (after the last chunk, and after the delay) */
    int shut;         /* shutdown(to, SHUT_WR) done */
    int want_out;     /* `to` is full: wait for POLLOUT */
    uint64_t bytes;   /* relayed */
} direction;

typedef struct conn {
    int a, b;       /* the accepted client, the upstream */
    direction d[2]; /* d[0]: a -> b ("up"), d[1]: b -> a ("down") */
    char peer[96];
    double opened;
    struct conn *next;
} conn;

typedef struct {
    const char *listen, *connect, *log_level;
    float delay_ms, rate_mbit, queue_ms;
    int64_t delay_ns, queue_ns;
    double bytes_per_ns; /* rate; 0 = unpaced */
    size_t seg;          /* chunk size at the rate */
    struct sockaddr_storage up;
    socklen_t up_len;
} config;

static volatile sig_atomic_t stopping;
static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

/* "host:port" or "[v6]:port" -> an address (passive: for listening). */
static int resolve(const char *hostport, int passive, struct sockaddr_storage *out, socklen_t *len,
                   siam_error *err) {
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || colon == hostport || !colon[1] || (size_t)(colon - hostport) >= sizeof host)
        return siam_error_set(err, SIAM_ERR_ARG, "'%s' is not HOST:PORT", hostport);
    size_t hl = (size_t)(colon - hostport);
    memcpy(host, hostport, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    int e = getaddrinfo(host, colon + 1, &hints, &res);
    if (e != 0 || !res)
        return siam_error_set(err, SIAM_ERR_ARG, "cannot resolve '%s': %s", hostport,
                              gai_strerror(e));
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return SIAM_OK;
}

static void format_addr(const struct sockaddr_storage *a, char *out, size_t cap) {
    char host[64], port[16]; /* numeric: INET6_ADDRSTRLEN is 46 */
    if (getnameinfo((const struct sockaddr *)a, sizeof *a, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(out, cap, "?");
    else if (a->ss_family == AF_INET6)
        snprintf(out, cap, "[%s]:%s", host, port);
    else
        snprintf(out, cap, "%s:%s", host, port);
}

/* Kernel buffers of the relay's sockets: what a sender's TCP would hold on a long path
 * (Linux's tcp_wmem maximum), so that the sender hands data over without waiting to be scheduled
 * for every few kilobytes, as it would over a real link; without root they stay at
 * net.core.rmem_max/wmem_max. Set before connecting or listening, so the window scale fits. */
#define SOCKET_BUFFER (4 << 20)
static void size_buffers(int fd) {
    int n = SOCKET_BUFFER;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &n, sizeof n) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof n);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &n, sizeof n) != 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &n, sizeof n);
}

static void tune_socket(int fd) {
    int one = 1;
    /* the relay must not add Nagle's delay to what the sender already sent */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static int dir_init(direction *d, int from, int to, const config *c) {
    memset(d, 0, sizeof d[0]);
    d->from = from;
    d->to = to;
    /* what the link holds: the queue and the bytes in flight for the delay, and a read */
    d->cap =
        c->bytes_per_ns > 0
            ? (size_t)(c->bytes_per_ns * (double)(c->queue_ns + c->delay_ns) * 1.25) + 2 * READ_MAX
            : UNPACED_RING;
    d->ring = malloc(d->cap);
    d->q = malloc(CHUNKS_MAX * sizeof *d->q);
    return d->ring && d->q ? 0 : -1;
}

static void dir_free(direction *d) {
    free(d->ring);
    free(d->q);
}

/* May `from` be read now? Not after EOF, not with the ring or the chunk queue full, not while
 * more than the queue waits for the serialiser. */
static int dir_can_read(const direction *d, const config *c, int64_t now) {
    if (d->eof || d->used == d->cap || d->qn + READ_MAX / SEG_MIN + 1 > CHUNKS_MAX)
        return 0;
    return c->bytes_per_ns <= 0 || d->busy - now < c->queue_ns;
}

/* Reads what `from` has (one read) and queues it as chunks. -1 when the connection is over
 * (an error), else 0. */
static int dir_read(direction *d, const config *c, int64_t now) {
    size_t tail = (d->head + d->used) % d->cap, space = d->cap - d->used;
    if (space > READ_MAX)
        space = READ_MAX;
    if (c->bytes_per_ns > 0) { /* no more than the link's buffer has room for */
        int64_t waiting = d->busy > now ? d->busy - now : 0;
        double room = (double)(c->queue_ns - waiting) * c->bytes_per_ns;
        size_t r = room < SEG_MIN ? SEG_MIN : (size_t)room;
        if (space > r)
            space = r;
    }
    struct iovec iov[2];
    size_t first = d->cap - tail < space ? d->cap - tail : space;
    iov[0] = (struct iovec){d->ring + tail, first};
    iov[1] = (struct iovec){d->ring, space - first};
    ssize_t n = readv(d->from, iov, space > first ? 2 : 1);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    if (n == 0) {
        d->eof = 1;
        int64_t last = c->bytes_per_ns > 0 && d->busy > now ? d->busy : now;
        d->eof_at = last + c->delay_ns;
        return 0;
    }
    d->used += (size_t)n;
    d->bytes += (uint64_t)n;
    size_t left = (size_t)n;
    while (left > 0) {
        size_t len = c->bytes_per_ns > 0 && left > c->seg ? c->seg : left;
        int64_t release;
        if (c->bytes_per_ns > 0) {
            int64_t start = d->busy > now ? d->busy : now;
            d->busy = start + (int64_t)((double)len / c->bytes_per_ns);
            release = d->busy + c->delay_ns;
        } else {
            release = now + c->delay_ns;
        }
        d->q[(d->qhead + d->qn) % CHUNKS_MAX] = (chunk){release, (uint32_t)len};
        d->qn++;
        left -= len;
    }
    return 0;
}

/* Writes every byte that is due. -1 when the connection is over (an error), else 0. */
static int dir_flush(direction *d, int64_t now) {
    while (d->qn > 0 && !d->want_out) {
        size_t due = 0;
        for (size_t i = 0; i < d->qn; i++) {
            const chunk *k = &d->q[(d->qhead + i) % CHUNKS_MAX];
            if (k->release > now)
                break;
            due += k->len;
        }
        due -= d->head_done;
        if (due == 0)
            break;
        size_t first = d->cap - d->head < due ? d->cap - d->head : due;
        struct iovec iov[2] = {{d->ring + d->head, first}, {d->ring, due - first}};
        struct msghdr mh;
        memset(&mh, 0, sizeof mh);
        mh.msg_iov = iov;
        mh.msg_iovlen = due > first ? 2 : 1;
        ssize_t n = sendmsg(d->to, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                d->want_out = 1;
                break;
            }
            if (errno == EINTR)
                continue;
            return -1;
        }
        d->head = (d->head + (size_t)n) % d->cap;
        d->used -= (size_t)n;
        size_t w = d->head_done + (size_t)n;
        while (d->qn > 0 && w >= d->q[d->qhead].len) {
            w -= d->q[d->qhead].len;
            d->qhead = (d->qhead + 1) % CHUNKS_MAX;
            d->qn--;
        }
        d->head_done = w;
        if ((size_t)n < due) {
            d->want_out = 1;
            break;
        }
    }
    if (d->eof && d->qn == 0 && !d->shut && now >= d->eof_at) {
        shutdown(d->to, SHUT_WR);
        d->shut = 1;
    }
    return 0;
}

/* The next time something of d becomes due (a chunk, the EOF, reading again), or INT64_MAX. */
static int64_t dir_next(const direction *d, const config *c) {
    int64_t t = INT64_MAX;
    if (d->qn > 0 && !d->want_out)
        t = d->q[d->qhead].release;
    else if (d->eof && !d->shut && d->qn == 0)
        t = d->eof_at;
    if (!d->eof && c->bytes_per_ns > 0 && d->busy - c->queue_ns < t)
        t = d->busy - c->queue_ns; /* may be past: then reading is allowed already */
    return t;
}

static void conn_close(conn *k, const char *why) {
    LOG_INFO(COMPONENT, "connection from %s closed (%s) after %.2f s: %llu bytes up, %llu down",
             k->peer, why, siam_now() - k->opened, (unsigned long long)k->d[0].bytes,
             (unsigned long long)k->d[1].bytes);
    close(k->a);
    close(k->b);
    dir_free(&k->d[0]);
    dir_free(&k->d[1]);
    free(k);
}

/* A new client: connect upstream (blocking, bounded), or close it. */
static conn *conn_open(int fd, const struct sockaddr_storage *peer, const config *c) {
    conn *k = calloc(1, sizeof *k);
    int up = socket(c->up.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (!k || up < 0) {
        LOG_WARN(COMPONENT, "out of memory or sockets: connection refused");
        free(k);
        if (up >= 0)
            close(up);
        close(fd);
        return NULL;
    }
    struct timeval tv = {CONNECT_S, 0};
    setsockopt(up, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    size_buffers(up);
    format_addr(peer, k->peer, sizeof k->peer);
    if (connect(up, (const struct sockaddr *)&c->up, c->up_len) != 0) {
        LOG_WARN(COMPONENT, "connection from %s: cannot connect to %s: %s", k->peer, c->connect,
                 strerror(errno));
        close(up);
        close(fd);
        free(k);
        return NULL;
    }
    tune_socket(fd);
    tune_socket(up);
    k->a = fd;
    k->b = up;
    k->opened = siam_now();
    if (dir_init(&k->d[0], fd, up, c) || dir_init(&k->d[1], up, fd, c)) {
        LOG_WARN(COMPONENT, "out of memory for a connection's buffers: connection refused");
        conn_close(k, "out of memory");
        return NULL;
    }
    LOG_INFO(COMPONENT, "connection from %s relayed to %s", k->peer, c->connect);
    return k;
}

/* SIGINT and SIGTERM are blocked except inside ppoll, so that a signal arriving between the
 * check of `stopping` and the wait still ends the wait. */
static int relay(const config *c, int lfd, const sigset_t *during_wait) {
    conn *conns = NULL;
    int n_conns = 0;
    struct pollfd *pfd = NULL;
    size_t pfd_cap = 0;
    uint64_t total[2] = {0, 0}, served = 0;
    while (!stopping) {
        int64_t now = now_ns();
        /* write what is due; drop connections that are over */
        for (conn **pp = &conns; *pp;) {
            conn *k = *pp;
            int bad = dir_flush(&k->d[0], now) || dir_flush(&k->d[1], now);
            int done = k->d[0].shut && k->d[1].shut;
            if (bad || done) {
                *pp = k->next;
                total[0] += k->d[0].bytes;
                total[1] += k->d[1].bytes;
                conn_close(k, bad ? "reset" : "both sides closed");
                n_conns--;
                continue;
            }
            pp = &k->next;
        }
        size_t need = 1 + 2 * (size_t)n_conns;
        if (need > pfd_cap) {
            struct pollfd *p = realloc(pfd, need * 2 * sizeof *p);
            if (!p) {
                LOG_ERROR(COMPONENT, "out of memory");
                break;
            }
            pfd = p;
            pfd_cap = need * 2;
        }
        pfd[0] = (struct pollfd){lfd, POLLIN, 0};
        size_t np = 1;
        int64_t next = INT64_MAX;
        for (conn *k = conns; k; k = k->next) {
            for (int s = 0; s < 2; s++) {
                /* fd of side s: read by d[s], written by d[1 - s] */
                const direction *rd = &k->d[s], *wr = &k->d[1 - s];
                short ev =
                    (short)((dir_can_read(rd, c, now) ? POLLIN : 0) | (wr->want_out ? POLLOUT : 0));
                /* an fd with nothing asked of it stays out: its POLLHUP would spin the loop */
                pfd[np++] = (struct pollfd){ev ? rd->from : -1, ev, 0};
                int64_t t = dir_next(rd, c);
                if (t < next)
                    next = t;
            }
        }
        /* a sleep here overshoots its deadline by a few to tens of microseconds (timer and
         * wake-up latency, more in a VM); siam-linkprobe measures the path as a whole, and the
         * link benchmark sets the delay from that measurement. Spinning instead was tried: on
         * two shared cores a spinning relay starves the softirqs that carry its own packets */
        struct timespec ts, *tsp = NULL;
        if (next != INT64_MAX) {
            int64_t wait = next - now_ns();
            if (wait < 0)
                wait = 0;
            ts.tv_sec = (time_t)(wait / NS);
            ts.tv_nsec = (long)(wait % NS);
            tsp = &ts;
        }
        int r = ppoll(pfd, np, tsp, during_wait);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            LOG_ERROR(COMPONENT, "poll: %s", strerror(errno));
            break;
        }
        now = now_ns();
        np = 1;
        for (conn *k = conns; k; k = k->next) {
            for (int s = 0; s < 2; s++) {
                short rev = pfd[np++].revents;
                direction *rd = &k->d[s], *wr = &k->d[1 - s];
                if (rev & POLLOUT)
                    wr->want_out = 0;
                if ((rev & (POLLIN | POLLHUP | POLLERR)) && dir_can_read(rd, c, now) &&
                    dir_read(rd, c, now) < 0)
                    rd->eof = 1, rd->eof_at = now; /* a reset: the other side gets EOF */
                if ((rev & (POLLHUP | POLLERR)) && (rev & POLLOUT) == 0 && wr->want_out)
                    wr->want_out = 0; /* the write fails and ends the connection */
            }
        }
        if (pfd[0].revents & POLLIN) {
            for (;;) {
                struct sockaddr_storage peer;
                socklen_t pl = sizeof peer;
                int fd = accept4(lfd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
                if (fd < 0)
                    break;
                conn *k = conn_open(fd, &peer, c);
                if (k) {
                    k->next = conns;
                    conns = k;
                    n_conns++;
                    served++;
                }
            }
        }
    }
    while (conns) {
        conn *k = conns;
        conns = k->next;
        total[0] += k->d[0].bytes;
        total[1] += k->d[1].bytes;
        conn_close(k, "stopping");
    }
    free(pfd);
    LOG_INFO(COMPONENT, "stopped: %llu connection(s), %llu bytes up, %llu down",
             (unsigned long long)served, (unsigned long long)total[0],
             (unsigned long long)total[1]);
    return 0;
}

int main(int argc, char **argv) {
    config c = {.listen = "127.0.0.1:0", .connect = NULL, .log_level = "info", .queue_ms = 50.0f};
    const siam_option opts[] = {
        {"listen", SIAM_OPT_STRING, &c.listen, 0, 0, NULL, "HOST:PORT",
         "where to accept connections (port 0: any free port; the line on stdout names it)"},
        {"connect", SIAM_OPT_STRING, &c.connect, 0, 0, NULL, "HOST:PORT",
         "where to relay every connection to (required)"},
        {"delay-ms", SIAM_OPT_FLOAT, &c.delay_ms, 0, 10000, NULL, "MS",
         "one-way delay added in each direction (a round trip gains twice it)"},
        {"rate-mbit", SIAM_OPT_FLOAT, &c.rate_mbit, 0, 100000, NULL, "MBIT",
         "rate of each direction in Mbit/s of relayed bytes (0: not paced)"},
        {"queue-ms", SIAM_OPT_FLOAT, &c.queue_ms, 0.1, 10000, NULL, "MS",
         "with a rate: data read ahead of the rate at most (the link's buffer, as time)"},
        {"log-level", SIAM_OPT_CHOICE, &c.log_level, 0, 0, "debug|info|warn|error", NULL,
         "log verbosity"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int rc = siam_options_main(PROG, SIAM_VERSION,
                               "A TCP relay that adds a one-way delay and paces each direction to "
                               "a rate: an emulated link for siam's link benchmark.",
                               opts, n_opts, argc, argv);
    if (rc >= 0)
        return rc;
    siam_error err = {0};
    int level;
    if (!c.connect) {
        fprintf(stderr, PROG ": --connect HOST:PORT is required\n");
        return 2;
    }
    if (siam_log_parse_level(c.log_level, &level, &err) != SIAM_OK) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        return 2;
    }
    siam_log_set_level(level);
    struct sockaddr_storage la;
    socklen_t ll;
    if (resolve(c.listen, 1, &la, &ll, &err) || resolve(c.connect, 0, &c.up, &c.up_len, &err)) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        return 2;
    }
    c.delay_ns = (int64_t)((double)c.delay_ms * 1e6);
    c.queue_ns = (int64_t)((double)c.queue_ms * 1e6);
    c.bytes_per_ns = (double)c.rate_mbit * 1e6 / 8.0 / 1e9;
    /* chunks of about half a millisecond at the rate: paced smoothly, without a write per
     * segment at high rates */
    double seg = c.bytes_per_ns * 0.5e6;
    c.seg = seg < SEG_MIN ? SEG_MIN : seg > SEG_MAX ? SEG_MAX : (size_t)seg;

    /* nanosecond timeouts are worth asking for only without the default 50 us of timer slack */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop_sigs, during_wait;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop_sigs, &during_wait);

    int lfd = socket(la.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (lfd >= 0)
        size_buffers(lfd); /* accepted sockets inherit them */
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(lfd, (struct sockaddr *)&la, ll) != 0 || listen(lfd, 64) != 0) {
        fprintf(stderr, PROG ": cannot listen on %s: %s\n", c.listen, strerror(errno));
        return 1;
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    getsockname(lfd, (struct sockaddr *)&bound, &bl);
    char addr[128];
    format_addr(&bound, addr, sizeof addr);
    LOG_INFO(COMPONENT, "relaying to %s: one-way delay %g ms each way, rate %s, queue %g ms",
             c.connect, (double)c.delay_ms, c.rate_mbit > 0 ? "paced" : "not paced",
             (double)c.queue_ms);
    if (c.rate_mbit > 0)
        LOG_INFO(COMPONENT, "rate %g Mbit/s each way, chunks of %zu bytes", (double)c.rate_mbit,
                 c.seg);
    printf(PROG " listening on %s\n", addr);
    fflush(stdout);
    rc = relay(&c, lfd, &during_wait);
    close(lfd);
    return rc;
}
