/* test_rpc_server: the server's listener and lifecycle in one process, over real sockets on
 * 127.0.0.1: gRPC's accept4 calls go through siam's guard; connections beyond the guard's cap
 * and beyond the open-file limit (EMFILE) are refused and the server listens on; stopping with an
 * idle HTTP/2 connection that never answers returns at once instead of after the grace period; a
 * start that fails after gRPC started (a cq thread that cannot be created) returns an error and
 * freeing the server returns promptly; the grace period is timed on CLOCK_MONOTONIC. */
#include "test_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "siam_log.h"
#include "siam_rpc.h"
#include "siam_rpc_accept_guard.h"
#include "siam_rpc_server_test.h"

static int echo(void *ctx, const siam_rpc_call_info *call, const uint8_t *req, size_t len,
                siam_rpc_buf *resp, siam_rpc_status *st) {
    (void)ctx;
    (void)call;
    (void)st;
    resp->data = malloc(len ? len : 1);
    if (!resp->data)
        return SIAM_RPC_RESOURCE_EXHAUSTED;
    memcpy(resp->data, req, len);
    resp->len = len;
    return SIAM_RPC_OK;
}

static siam_rpc_server *start(int threads, int *port) {
    siam_rpc_server_config cfg = {.listen = "127.0.0.1:0", .threads = threads};
    siam_rpc_server *s = NULL;
    siam_error err = {0};
    CHECK(siam_rpc_server_create(&s, &cfg, &err) == 0, "%s", err.msg);
    CHECK(siam_rpc_server_add_unary(s, "/t.Svc/Echo", echo, NULL, &err) == 0, "%s", err.msg);
    CHECK(siam_rpc_server_start(s, port, &err) == 0, "%s", err.msg);
    return s;
}

/* One call on a new channel (a new connection); the status code. */
static int call_once(int port, double timeout_s) {
    char target[64];
    snprintf(target, sizeof target, "ipv4:127.0.0.1:%d", port);
    siam_rpc_channel *ch = NULL;
    siam_error err = {0};
    if (siam_rpc_channel_create(&ch, target, 0, &err))
        return -1;
    siam_rpc_buf r = {0};
    siam_rpc_status st = {0};
    int rc = siam_rpc_call(ch, "/t.Svc/Echo", (const uint8_t *)"ab", 2, timeout_s, &r, &st);
    siam_rpc_buf_free(&r);
    siam_rpc_channel_free(ch);
    return rc;
}

/* A TCP connection to port that has sent nothing; -1 when no socket can be had. */
static int tcp_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The lowest free descriptor (what the next accept would get). */
static int lowest_free_fd(void) {
    int fd = dup(0);
    if (fd >= 0)
        close(fd);
    return fd;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

int main(void) {
    siam_log_set_level(SIAM_LOG_WARN);
    siam_rpc_init();
    int port = 0;
    siam_rpc_accept_stats before, after;

    /* ---- the guard is what gRPC's listener calls ---- */
    siam_rpc_accept_guard_stats(&before);
    siam_rpc_server *s = start(2, &port);
    CHECK(call_once(port, 5) == SIAM_RPC_OK, "a call");
    siam_rpc_accept_guard_stats(&after);
    CHECK(after.calls > before.calls && after.accepted > before.accepted,
          "gRPC's accept4 went through the guard: %llu calls, %llu accepted",
          (unsigned long long)after.calls, (unsigned long long)after.accepted);
    CHECK(after.spare >= 0, "a spare descriptor is held");
    CHECK(siam_rpc_server_wait_clock(s) == CLOCK_MONOTONIC,
          "the grace period is on CLOCK_MONOTONIC");

    /* ---- connections above the cap are closed as they arrive; the server listens on ---- */
    int held[64], n = 0;
    siam_rpc_accept_guard_set_cap(lowest_free_fd() + 4);
    for (int i = 0; i < 20; i++)
        if ((held[n] = tcp_connect(port)) >= 0)
            n++;
    sleep_s(0.3);
    siam_rpc_accept_guard_stats(&after);
    CHECK(after.refused >= 5, "20 connections against a cap of 4 more: %llu refused",
          (unsigned long long)after.refused);
    while (n > 0)
        close(held[--n]);
    siam_rpc_accept_guard_set_cap(0);
    sleep_s(0.3); /* gRPC notices the closed connections */
    CHECK(call_once(port, 5) == SIAM_RPC_OK, "a call after the refusals");

    /* ---- out of descriptors (EMFILE): the spare makes room to refuse; the server listens on -- */
    siam_rpc_accept_guard_set_cap(1 << 30);
    siam_rpc_accept_guard_stats(&before);
    /* the client sockets first: connecting them needs no descriptor, accepting them does */
    for (n = 0; n < 40; n++)
        held[n] = socket(AF_INET, SOCK_STREAM, 0);
    struct rlimit rl, low;
    getrlimit(RLIMIT_NOFILE, &rl);
    low = rl;
    low.rlim_cur = (rlim_t)lowest_free_fd() + 4;
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0, "lower the open-file limit");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < n; i++)
        CHECK(held[i] >= 0 && connect(held[i], (struct sockaddr *)&a, sizeof a) == 0,
              "connect %d: %s", i, strerror(errno));
    sleep_s(0.3);
    siam_rpc_accept_guard_stats(&after);
    CHECK(after.refused > before.refused, "refused when out of descriptors: %llu",
          (unsigned long long)(after.refused - before.refused));
    while (n > 0)
        close(held[--n]);
    setrlimit(RLIMIT_NOFILE, &rl);
    siam_rpc_accept_guard_set_cap(0);
    sleep_s(0.3);
    CHECK(call_once(port, 5) == SIAM_RPC_OK, "a call after EMFILE");

    /* ---- stop with an idle connection that does not answer the GOAWAY ping ---- */
    int idle = tcp_connect(port);
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                  "\x00\x00\x00\x04\x00\x00\x00\x00\x00"; /* + empty SETTINGS */
    CHECK(idle >= 0 && write(idle, preface, sizeof preface - 1) == (ssize_t)(sizeof preface - 1),
          "an HTTP/2 connection");
    sleep_s(0.2);
    double t0 = siam_now();
    int cancelled = siam_rpc_server_stop(s, 20);
    double took = siam_now() - t0;
    CHECK(cancelled == 0, "no call to cancel: %d", cancelled);
    CHECK(took < 2.0, "stop with an idle connection and a grace of 20 s took %.2f s", took);
    siam_rpc_server_free(s);
    close(idle);

    /* ---- a start that fails after grpc_server_start: no cq thread, or one of two ---- */
    for (int fail = 1; fail <= 2; fail++) {
        siam_rpc_server_config cfg = {
            .listen = "127.0.0.1:0", .threads = 2, .fail_thread_for_test = fail};
        siam_error err = {0};
        s = NULL;
        CHECK(siam_rpc_server_create(&s, &cfg, &err) == 0, "%s", err.msg);
        CHECK(siam_rpc_server_add_unary(s, "/t.Svc/Echo", echo, NULL, &err) == 0, "%s", err.msg);
        int rc = siam_rpc_server_start(s, &port, &err);
        CHECK(rc == SIAM_ERR_NOMEM && strstr(err.msg, "cannot start server thread"),
              "thread %d fails: start returns %d %s", fail, rc, err.msg);
        t0 = siam_now();
        siam_rpc_server_free(s);
        took = siam_now() - t0;
        CHECK(took < 2.0, "thread %d failed: free took %.2f s", fail, took);
    }
    siam_rpc_accept_guard_stats(&after);
    CHECK(after.spare < 0, "the spare is closed once no server runs");

    siam_rpc_shutdown();
    return tu_finish();
}
