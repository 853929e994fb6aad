/* siam-linkprobe: measures what a network path does before figures are taken through it (the
 * link benchmark checks every emulated link with it: docs/BENCHMARKS.md "Links").
 *
 *   siam-linkprobe serve --listen HOST:PORT      answers probes (a thread per connection)
 *   siam-linkprobe measure --server HOST:PORT    round trips, then a bulk upload and download
 *
 * The round trip is that of a 9-byte request and a 1-byte answer, timed one at a time after a
 * few to warm up (median, minimum, 90th percentile). A rate is bytes x 8 over the time from the
 * first byte sent to the last byte (or the receipt) back, less one median round trip: the
 * payload rate a TCP connection gets, so on a link shaped at the frame level it is the link's
 * rate less the TCP/IP and Ethernet headers (about 4.4 % with 1448-byte segments). Every byte
 * is checked against the pattern sent, so a path that loses or mangles data is caught too.
 *
 * Protocol, per request: one byte ('P' ping, 'U' upload, 'D' download) and a big-endian 64-bit
 * count. P: the server answers count bytes (1). U: count bytes follow; the server answers with
 * the 64-bit count of bytes that matched the pattern. D: the server sends count pattern bytes. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "siam_bytes.h"
#include "siam_error.h"
#include "siam_log.h"
#include "siam_options.h"

#define PROG       "siam-linkprobe"
#define PATTERN_N  65521 /* a prime: chunks of any power-of-two size shift through it */
#define IO_MAX     (256 * 1024)
#define WARM_PINGS 5

static uint8_t pattern[PATTERN_N];

static void pattern_init(void) {
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < PATTERN_N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        pattern[i] = (uint8_t)(x >> 24);
    }
}

/* The pattern's bytes [off, off + n) into buf. */
static void pattern_fill(uint8_t *buf, uint64_t off, size_t n) {
    size_t p = (size_t)(off % PATTERN_N);
    while (n > 0) {
        size_t k = PATTERN_N - p < n ? PATTERN_N - p : n;
        memcpy(buf, pattern + p, k);
        buf += k;
        n -= k;
        p = 0;
    }
}

/* How many of buf's n bytes match the pattern at off. */
static uint64_t pattern_match(const uint8_t *buf, uint64_t off, size_t n) {
    uint64_t good = 0;
    size_t p = (size_t)(off % PATTERN_N);
    while (n > 0) {
        size_t k = PATTERN_N - p < n ? PATTERN_N - p : n;
        if (memcmp(buf, pattern + p, k) == 0)
            good += k;
        else
            for (size_t i = 0; i < k; i++)
                good += buf[i] == pattern[p + i];
        buf += k;
        n -= k;
        p = 0;
    }
    return good;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int split_hostport(const char *hostport, char *host, size_t cap, const char **port) {
    const char *colon = strrchr(hostport, ':');
    if (!colon || colon == hostport || !colon[1] || (size_t)(colon - hostport) >= cap)
        return -1;
    size_t hl = (size_t)(colon - hostport);
    memcpy(host, hostport, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    *port = colon + 1;
    return 0;
}

/* A connected (connect) or listening (!connect) socket for HOST:PORT; -1 with a message. */
static int open_socket(const char *hostport, int connect_to, double timeout_s) {
    char host[256];
    const char *port;
    if (split_hostport(hostport, host, sizeof host, &port)) {
        fprintf(stderr, PROG ": '%s' is not HOST:PORT\n", hostport);
        return -1;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = connect_to ? 0 : AI_PASSIVE;
    int e = getaddrinfo(host, port, &hints, &res);
    if (e != 0 || !res) {
        fprintf(stderr, PROG ": cannot resolve '%s': %s\n", hostport, gai_strerror(e));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1, ok = fd >= 0;
    if (ok && timeout_s > 0) {
        struct timeval tv = {(time_t)timeout_s, (long)((timeout_s - floor(timeout_s)) * 1e6)};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    if (ok && connect_to)
        ok = connect(fd, res->ai_addr, res->ai_addrlen) == 0;
    else if (ok)
        ok = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
             bind(fd, res->ai_addr, res->ai_addrlen) == 0 && listen(fd, 16) == 0;
    if (!ok) {
        fprintf(stderr, PROG ": cannot %s %s: %s\n", connect_to ? "connect to" : "listen on",
                hostport, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    } else {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    freeaddrinfo(res);
    return fd;
}

/* ---- serve ---- */

static void *serve_conn(void *arg) {
    int fd = (int)(intptr_t)arg;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint8_t *buf = malloc(IO_MAX);
    uint8_t hdr[9];
    while (buf && read_all(fd, hdr, sizeof hdr) == 0) {
        uint64_t n = siam_get_u64(hdr + 1), off = 0, good = 0;
        int bad = 0;
        if (hdr[0] == 'P') {
            memset(buf, 'p', n && n < IO_MAX ? n : 1);
            bad = write_all(fd, buf, n && n < IO_MAX ? n : 1);
        } else if (hdr[0] == 'U') {
            while (off < n && !bad) {
                ssize_t r = recv(fd, buf, n - off < IO_MAX ? (size_t)(n - off) : IO_MAX, 0);
                if (r < 0 && errno == EINTR)
                    continue;
                if (r <= 0) {
                    bad = 1;
                    break;
                }
                good += pattern_match(buf, off, (size_t)r);
                off += (uint64_t)r;
            }
            uint8_t ans[8];
            siam_put_u64(ans, good);
            bad = bad || write_all(fd, ans, sizeof ans);
        } else if (hdr[0] == 'D') {
            while (off < n && !bad) {
                size_t k = n - off < IO_MAX ? (size_t)(n - off) : IO_MAX;
                pattern_fill(buf, off, k);
                bad = write_all(fd, buf, k);
                off += k;
            }
        } else {
            bad = 1;
        }
        if (bad)
            break;
    }
    free(buf);
    close(fd);
    return NULL;
}

static int serve_main(int argc, char **argv) {
    const char *listen_at = "127.0.0.1:0";
    const siam_option opts[] = {
        {"listen", SIAM_OPT_STRING, &listen_at, 0, 0, NULL, "HOST:PORT",
         "where to answer probes (port 0: any free port; the line on stdout names it)"},
    };
    int rc = siam_options_main(PROG " serve", SIAM_VERSION, "Answers siam-linkprobe measure.", opts,
                               1, argc, argv);
    if (rc >= 0)
        return rc;
    int lfd = open_socket(listen_at, 0, 0);
    if (lfd < 0)
        return 1;
    struct sockaddr_storage a;
    socklen_t al = sizeof a;
    char host[NI_MAXHOST], port[NI_MAXSERV];
    if (getsockname(lfd, (struct sockaddr *)&a, &al) != 0 ||
        getnameinfo((struct sockaddr *)&a, al, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        fprintf(stderr, PROG ": cannot read the address bound\n");
        return 1;
    }
    printf(PROG " listening on %s%s%s:%s\n", a.ss_family == AF_INET6 ? "[" : "", host,
           a.ss_family == AF_INET6 ? "]" : "", port);
    fflush(stdout);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
                continue;
            fprintf(stderr, PROG ": accept: %s\n", strerror(errno));
            return 1;
        }
        pthread_t t;
        if (pthread_create(&t, NULL, serve_conn, (void *)(intptr_t)fd) != 0)
            close(fd);
        else
            pthread_detach(t);
    }
}

/* ---- measure ---- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int measure_main(int argc, char **argv) {
    const char *server = NULL;
    int pings = 50, json = 0;
    uint64_t bytes = 8u << 20;
    float timeout = 120.0f;
    const siam_option opts[] = {
        {"server", SIAM_OPT_STRING, &server, 0, 0, NULL, "HOST:PORT",
         "a siam-linkprobe serve, or a relay in front of one (required)"},
        {"pings", SIAM_OPT_INT, &pings, 1, 100000, NULL, "N", "round trips timed"},
        {"bytes", SIAM_OPT_U64, &bytes, 0, 1e12, NULL, "N",
         "bytes sent up, then down (0: round trips only)"},
        {"timeout", SIAM_OPT_FLOAT, &timeout, 1, 3600, NULL, "S",
         "give up when the path is silent this long"},
        {"json", SIAM_OPT_FLAG, &json, 0, 0, NULL, NULL, "print one JSON line"},
    };
    int rc = siam_options_main(PROG " measure", SIAM_VERSION,
                               "Round trips and rates of a path to a siam-linkprobe serve.", opts,
                               (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (rc >= 0)
        return rc;
    if (!server) {
        fprintf(stderr, PROG " measure: --server HOST:PORT is required\n");
        return 2;
    }
    int fd = open_socket(server, 1, (double)timeout);
    if (fd < 0)
        return 1;
    double *rtt = malloc((size_t)pings * sizeof *rtt);
    uint8_t *buf = malloc(IO_MAX);
    if (!rtt || !buf) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    uint8_t hdr[9] = {'P'}, one;
    siam_put_u64(hdr + 1, 1);
    for (int i = -WARM_PINGS; i < pings; i++) {
        double t0 = now_s();
        if (write_all(fd, hdr, sizeof hdr) || read_all(fd, &one, 1)) {
            fprintf(stderr, PROG ": %s: the path broke during the round trips: %s\n", server,
                    strerror(errno));
            return 1;
        }
        if (i >= 0)
            rtt[i] = now_s() - t0;
    }
    qsort(rtt, (size_t)pings, sizeof *rtt, cmp_double);
    double med = pings % 2 ? rtt[pings / 2] : (rtt[pings / 2 - 1] + rtt[pings / 2]) / 2;
    double p90 = rtt[(int)(0.9 * (pings - 1) + 0.5)];

    double up_s = 0, down_s = 0;
    uint64_t up_good = 0, down_good = 0;
    if (bytes > 0) {
        hdr[0] = 'U';
        siam_put_u64(hdr + 1, bytes);
        double t0 = now_s();
        int bad = write_all(fd, hdr, sizeof hdr);
        for (uint64_t off = 0; off < bytes && !bad;) {
            size_t k = bytes - off < IO_MAX ? (size_t)(bytes - off) : IO_MAX;
            pattern_fill(buf, off, k);
            bad = write_all(fd, buf, k);
            off += k;
        }
        uint8_t ans[8];
        bad = bad || read_all(fd, ans, sizeof ans);
        up_s = now_s() - t0;
        if (bad) {
            fprintf(stderr, PROG ": %s: the path broke during the upload: %s\n", server,
                    strerror(errno));
            return 1;
        }
        up_good = siam_get_u64(ans);

        hdr[0] = 'D';
        t0 = now_s();
        bad = write_all(fd, hdr, sizeof hdr);
        for (uint64_t off = 0; off < bytes && !bad;) {
            ssize_t r = recv(fd, buf, bytes - off < IO_MAX ? (size_t)(bytes - off) : IO_MAX, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                bad = 1;
                break;
            }
            down_good += pattern_match(buf, off, (size_t)r);
            off += (uint64_t)r;
        }
        down_s = now_s() - t0;
        if (bad) {
            fprintf(stderr, PROG ": %s: the path broke during the download: %s\n", server,
                    strerror(errno));
            return 1;
        }
    }
    close(fd);
    /* the transfer's own time: less the round trip of its request and its last byte */
    double up_mbit = bytes && up_s > med ? (double)bytes * 8 / (up_s - med) / 1e6 : 0;
    double down_mbit = bytes && down_s > med ? (double)bytes * 8 / (down_s - med) / 1e6 : 0;
    int intact = up_good == bytes && down_good == bytes;
    if (json)
        printf("{\"rtt_ms\": %.4f, \"rtt_min_ms\": %.4f, \"rtt_p90_ms\": %.4f, \"pings\": %d, "
               "\"bytes\": %llu, \"up_seconds\": %.4f, \"down_seconds\": %.4f, \"up_mbit\": %.2f, "
               "\"down_mbit\": %.2f, \"intact\": %d}\n",
               med * 1e3, rtt[0] * 1e3, p90 * 1e3, pings, (unsigned long long)bytes, up_s, down_s,
               up_mbit, down_mbit, intact);
    else
        printf("%s: round trip %.3f ms median (min %.3f, p90 %.3f, %d pings); %llu bytes up in "
               "%.3f s = %.1f Mbit/s, down in %.3f s = %.1f Mbit/s; data %s\n",
               server, med * 1e3, rtt[0] * 1e3, p90 * 1e3, pings, (unsigned long long)bytes, up_s,
               up_mbit, down_s, down_mbit, intact ? "intact" : "DAMAGED");
    free(rtt);
    free(buf);
    if (!intact)
        fprintf(stderr,
                PROG ": %s: %llu of %llu bytes up and %llu down arrived as sent: the path "
                     "damages data\n",
                server, (unsigned long long)up_good, (unsigned long long)bytes,
                (unsigned long long)down_good);
    return intact ? 0 : 1;
}

int main(int argc, char **argv) {
    pattern_init();
    if (argc > 1 && strcmp(argv[1], "serve") == 0)
        return serve_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "measure") == 0)
        return measure_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf(PROG " %s\n", SIAM_VERSION);
        return 0;
    }
    FILE *f =
        argc > 1 && strcmp(argv[1], "--help") != 0 && strcmp(argv[1], "-h") != 0 ? stderr : stdout;
    fprintf(f, "usage: " PROG " serve --listen HOST:PORT\n"
               "       " PROG " measure --server HOST:PORT [--pings N] [--bytes N] [--json]\n"
               "Measures a path's round trip and rate (docs/BENCHMARKS.md \"Links\"); "
               "COMMAND --help for the options.\n");
    return f == stdout ? 0 : 2;
}
