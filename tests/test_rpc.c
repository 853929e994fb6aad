/* test_rpc: lib/net over real sockets on 127.0.0.1, in one process: unary and streaming
 * calls, statuses with messages, UNIMPLEMENTED for unknown methods within a second, message
 * size limits, an unreachable server, a server that does not answer in time, many concurrent
 * streams, stopping with streams open, a bearer token (missing, wrong, a prefix, longer, right)
 * on unary calls, streams and unknown methods, which statuses are permanent, and TLS (a call
 * and a stream over TLS; an unknown CA, a name mismatch and a plaintext client explained as
 * permanent UNAUTHENTICATED for calls and for a stream's start), and the traffic counts of a
 * channel and a server (exact bytes both sides; a stream freed after its channel). */
#include "test_util.h"

#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "siam_log.h"
#include "siam_rpc.h"
#include "test_certs.h"

/* Echo: answers the request bytes reversed; "bad" -> INVALID_ARGUMENT; "slow" sleeps 1.5 s. */
static int echo(void *ctx, const siam_rpc_call_info *call, const uint8_t *req, size_t len,
                siam_rpc_buf *resp, siam_rpc_status *st) {
    (void)ctx;
    (void)call;
    if (len == 3 && memcmp(req, "bad", 3) == 0)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT, "request 'bad' is refused");
    if (len == 4 && memcmp(req, "slow", 4) == 0)
        usleep(1500000);
    resp->data = malloc(len ? len : 1);
    if (!resp->data)
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED, "oom");
    for (size_t i = 0; i < len; i++)
        resp->data[i] = req[len - 1 - i];
    resp->len = len;
    return SIAM_RPC_OK;
}

typedef struct {
    pthread_mutex_t lock;
    int opened, closed_ok, closed_other, messages;
} stream_counts;

static void *s_open(void *ctx, const siam_rpc_call_info *call) {
    stream_counts *c = ctx;
    CHECK(call->peer && strstr(call->peer, "127.0.0.1"), "peer %s", call->peer);
    pthread_mutex_lock(&c->lock);
    c->opened++;
    pthread_mutex_unlock(&c->lock);
    int *n = calloc(1, sizeof *n); /* messages seen on this stream */
    return n;
}

static int s_message(void *ctx, void *stream, const uint8_t *req, size_t len, siam_rpc_buf *resp,
                     siam_rpc_status *st) {
    stream_counts *c = ctx;
    int *n = stream;
    (*n)++;
    pthread_mutex_lock(&c->lock);
    c->messages++;
    pthread_mutex_unlock(&c->lock);
    return echo(NULL, NULL, req, len, resp, st);
}

static void s_close(void *ctx, void *stream, const siam_rpc_status *final) {
    stream_counts *c = ctx;
    pthread_mutex_lock(&c->lock);
    if (final->code == SIAM_RPC_OK)
        c->closed_ok++;
    else
        c->closed_other++;
    pthread_mutex_unlock(&c->lock);
    free(stream);
}

static char target[64];

/* The row of method in rows[0..n), or an all-zero row. */
static siam_rpc_traffic row_of(const siam_rpc_traffic *rows, int n, const char *method) {
    siam_rpc_traffic none = {0};
    for (int i = 0; i < n; i++)
        if (strcmp(rows[i].method, method) == 0)
            return rows[i];
    return none;
}

static int exchange_str(siam_rpc_stream *s, const char *msg, char *out, size_t n,
                        siam_rpc_status *st) {
    siam_rpc_buf r, q = {(uint8_t *)strdup(msg), strlen(msg)};
    int rc = siam_rpc_stream_exchange(s, &q, &r, st);
    CHECK(q.data == NULL && q.len == 0, "the request is taken");
    if (rc == SIAM_RPC_OK) {
        snprintf(out, n, "%.*s", (int)r.len, (const char *)r.data);
        siam_rpc_buf_free(&r);
    }
    return rc;
}

static void *stream_worker(void *arg) {
    int id = (int)(intptr_t)arg, ok = 1;
    siam_error err = {0};
    siam_rpc_channel *ch = NULL;
    siam_rpc_stream *s = NULL;
    siam_rpc_status st;
    if (siam_rpc_channel_create(&ch, target, 0, &err) ||
        siam_rpc_stream_open(ch, "/t.Svc/Stream", 10, &s, &st))
        ok = 0;
    for (int i = 0; ok && i < 50; i++) {
        char msg[32], want[32], got[32];
        int n = snprintf(msg, sizeof msg, "w%d-m%d", id, i);
        for (int k = 0; k < n; k++)
            want[k] = msg[n - 1 - k];
        want[n] = 0;
        if (exchange_str(s, msg, got, sizeof got, &st) || strcmp(got, want) != 0)
            ok = 0;
    }
    if (ok && siam_rpc_stream_close(s, &st))
        ok = 0;
    siam_rpc_stream_free(s);
    siam_rpc_channel_free(ch);
    return (void *)(intptr_t)ok;
}

int main(void) {
    siam_log_set_level(SIAM_LOG_WARN);
    siam_rpc_init();
    siam_error err = {0};
    stream_counts counts = {.lock = PTHREAD_MUTEX_INITIALIZER};
    siam_rpc_stream_handler h = {s_open, s_message, s_close};
    siam_rpc_server *srv = NULL;
    siam_rpc_server_config cfg = {
        .listen = "127.0.0.1:0", .threads = 2, .max_message_bytes = 64 * 1024};
    int port = 0;
    CHECK(siam_rpc_server_create(&srv, &cfg, &err) == 0, "%s", err.msg);
    CHECK(siam_rpc_server_add_unary(srv, "/t.Svc/Echo", echo, NULL, &err) == 0, "%s", err.msg);
    CHECK(siam_rpc_server_add_stream(srv, "/t.Svc/Stream", &h, &counts, &err) == 0, "%s", err.msg);
    CHECK(siam_rpc_server_add_unary(srv, "no-slash", echo, NULL, &err) == SIAM_ERR_ARG,
          "a path without '/' is refused");
    CHECK(siam_rpc_server_start(srv, &port, &err) == 0, "%s", err.msg);
    CHECK(port > 0, "bound port %d", port);
    snprintf(target, sizeof target, "127.0.0.1:%d", port);

    /* a second server on the same port is refused with the address in the message */
    {
        siam_rpc_server *s2 = NULL;
        char addr[64];
        snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
        siam_rpc_server_config c2 = {.listen = addr, .threads = 1};
        CHECK(siam_rpc_server_create(&s2, &c2, &err) == 0, "%s", err.msg);
        CHECK(siam_rpc_server_start(s2, NULL, &err) == SIAM_ERR_IO && strstr(err.msg, addr),
              "port in use: %s", err.msg);
        siam_rpc_server_free(s2);
    }

    siam_rpc_channel *ch = NULL;
    CHECK(siam_rpc_channel_create(&ch, target, 0, &err) == 0, "%s", err.msg);
    siam_rpc_status st;
    siam_rpc_buf r;

    /* unary: answer, status with message, empty message */
    CHECK(siam_rpc_call(ch, "/t.Svc/Echo", (const uint8_t *)"abc", 3, 5, &r, &st) == 0, "%s",
          st.msg);
    CHECK(r.len == 3 && memcmp(r.data, "cba", 3) == 0, "echo reversed");
    siam_rpc_buf_free(&r);
    CHECK(siam_rpc_call(ch, "/t.Svc/Echo", (const uint8_t *)"bad", 3, 5, &r, &st) ==
                  SIAM_RPC_INVALID_ARGUMENT &&
              strcmp(st.msg, "request 'bad' is refused") == 0,
          "status + message: %d %s", st.code, st.msg);
    CHECK(r.data == NULL, "no answer with an error status");
    CHECK(siam_rpc_call(ch, "/t.Svc/Echo", NULL, 0, 5, &r, &st) == 0 && r.len == 0,
          "empty message: %s", st.msg);
    siam_rpc_buf_free(&r);

    /* unknown method: UNIMPLEMENTED at once, naming the method and listing the served ones */
    double t0 = siam_now();
    CHECK(siam_rpc_call(ch, "/t.Svc/Nope", (const uint8_t *)"x", 1, 10, &r, &st) ==
              SIAM_RPC_UNIMPLEMENTED,
          "unknown method: %d %s", st.code, st.msg);
    CHECK(siam_now() - t0 < 1.0, "UNIMPLEMENTED took %.3f s", siam_now() - t0);
    CHECK(strstr(st.msg, "/t.Svc/Nope") && strstr(st.msg, "/t.Svc/Echo"), "message: %s", st.msg);

    /* message larger than the server's limit (64 KiB here) */
    {
        size_t big = 100 * 1024;
        uint8_t *p = calloc(big, 1);
        CHECK(siam_rpc_call(ch, "/t.Svc/Echo", p, big, 5, &r, &st) == SIAM_RPC_RESOURCE_EXHAUSTED,
              "oversized request: %d %s", st.code, st.msg);
        free(p);
    }

    /* deadline: the handler takes 1.5 s, the call allows 0.3 s */
    t0 = siam_now();
    CHECK(siam_rpc_call(ch, "/t.Svc/Echo", (const uint8_t *)"slow", 4, 0.3, &r, &st) ==
              SIAM_RPC_DEADLINE_EXCEEDED,
          "deadline: %d %s", st.code, st.msg);
    CHECK(siam_now() - t0 < 1.2, "deadline honoured (%.2f s)", siam_now() - t0);

    /* stream: ordered answers, an error status ends it, close gives OK */
    siam_rpc_stream *s = NULL;
    char got[64];
    CHECK(siam_rpc_stream_open(ch, "/t.Svc/Stream", 5, &s, &st) == 0, "%s", st.msg);
    CHECK(exchange_str(s, "hello", got, sizeof got, &st) == 0 && strcmp(got, "olleh") == 0,
          "stream echo: %s", got);
    CHECK(exchange_str(s, "12", got, sizeof got, &st) == 0 && strcmp(got, "21") == 0, "second");
    CHECK(siam_rpc_stream_close(s, &st) == 0, "close: %s", st.msg);
    siam_rpc_stream_free(s);
    CHECK(siam_rpc_stream_open(ch, "/t.Svc/Stream", 5, &s, &st) == 0, "%s", st.msg);
    CHECK(exchange_str(s, "bad", got, sizeof got, &st) == SIAM_RPC_INVALID_ARGUMENT &&
              strcmp(st.msg, "request 'bad' is refused") == 0,
          "stream error: %d %s", st.code, st.msg);
    CHECK(exchange_str(s, "x", got, sizeof got, &st) == SIAM_RPC_INVALID_ARGUMENT,
          "a dead stream keeps its status");
    siam_rpc_stream_free(s);

    /* several messages in flight: all sent before the first answer is read, answered in order;
     * one more than the window is refused; a message the server refuses ends the stream with
     * its status for the answers still awaited */
    CHECK(siam_rpc_stream_open(ch, "/t.Svc/Stream", 5, &s, &st) == 0, "%s", st.msg);
    for (int i = 0; i < SIAM_RPC_STREAM_WINDOW; i++) {
        char msg[16];
        snprintf(msg, sizeof msg, "m%d-%d", i, i * 7);
        siam_rpc_buf q = {(uint8_t *)strdup(msg), strlen(msg)};
        CHECK(siam_rpc_stream_send(s, &q, &st) == 0 && q.data == NULL, "send %d: %s", i, st.msg);
    }
    {
        siam_rpc_buf q = {(uint8_t *)strdup("over"), 4};
        CHECK(siam_rpc_stream_send(s, &q, &st) == SIAM_RPC_FAILED_PRECONDITION && q.data == NULL,
              "one more than the window: %d %s", st.code, st.msg);
    }
    for (int i = 0; i < SIAM_RPC_STREAM_WINDOW; i++) {
        char want[16], msg[16];
        siam_rpc_buf a;
        snprintf(msg, sizeof msg, "m%d-%d", i, i * 7);
        size_t n = strlen(msg);
        for (size_t k = 0; k < n; k++)
            want[k] = msg[n - 1 - k];
        want[n] = '\0';
        CHECK(siam_rpc_stream_receive(s, &a, &st) == 0 && a.len == n &&
                  memcmp(a.data, want, n) == 0,
              "answer %d in order: %.*s", i, (int)a.len, a.data ? (const char *)a.data : "");
        siam_rpc_buf_free(&a);
    }
    CHECK(siam_rpc_stream_close(s, &st) == 0, "close after the window: %s", st.msg);
    siam_rpc_stream_free(s);
    CHECK(siam_rpc_stream_open(ch, "/t.Svc/Stream", 5, &s, &st) == 0, "%s", st.msg);
    {
        const char *msgs[3] = {"ab", "bad", "cd"};
        for (int i = 0; i < 3; i++) {
            siam_rpc_buf q = {(uint8_t *)strdup(msgs[i]), strlen(msgs[i])};
            CHECK(siam_rpc_stream_send(s, &q, &st) == 0, "send %s: %s", msgs[i], st.msg);
        }
        siam_rpc_buf a;
        CHECK(siam_rpc_stream_receive(s, &a, &st) == 0 && a.len == 2 &&
                  memcmp(a.data, "ba", 2) == 0,
              "the answer before the refused one");
        siam_rpc_buf_free(&a);
        for (int i = 0; i < 2; i++)
            CHECK(siam_rpc_stream_receive(s, &a, &st) == SIAM_RPC_INVALID_ARGUMENT &&
                      strstr(st.msg, "'bad'"),
                  "after the refused message: %d %s", st.code, st.msg);
    }
    siam_rpc_stream_free(s);

    /* stream op timeout: a slow answer is cut at the client's bound, never a hang */
    CHECK(siam_rpc_stream_open(ch, "/t.Svc/Stream", 0.5, &s, &st) == 0, "%s", st.msg);
    t0 = siam_now();
    CHECK(exchange_str(s, "slow", got, sizeof got, &st) == SIAM_RPC_DEADLINE_EXCEEDED,
          "stream timeout: %d %s", st.code, st.msg);
    CHECK(siam_now() - t0 < 1.4, "stream timeout honoured (%.2f s)", siam_now() - t0);
    siam_rpc_stream_free(s);

    /* a stream to an unknown method fails at open */
    CHECK(siam_rpc_stream_open(ch, "/t.Svc/Nope", 5, &s, &st) == SIAM_RPC_UNIMPLEMENTED,
          "unknown stream method: %d %s", st.code, st.msg);

    /* traffic: a fresh channel counts exactly what it sent and received, the server's counts grow
     * by the same, and a stream freed after its channel does not touch freed memory */
    {
        siam_rpc_traffic before[SIAM_RPC_TRAFFIC_MAX], after[SIAM_RPC_TRAFFIC_MAX],
            mine[SIAM_RPC_TRAFFIC_MAX];
        int nb = siam_rpc_server_traffic(srv, before, SIAM_RPC_TRAFFIC_MAX);
        siam_rpc_channel *mc = NULL;
        CHECK(siam_rpc_channel_create(&mc, target, 0, &err) == 0, "%s", err.msg);
        CHECK(siam_rpc_channel_traffic(mc, mine, SIAM_RPC_TRAFFIC_MAX) == 0, "a new channel: none");
        /* unary: 4 bytes answered with 4, 3 refused (no answer), 0 answered with 0 */
        CHECK(siam_rpc_call(mc, "/t.Svc/Echo", (const uint8_t *)"abcd", 4, 5, &r, &st) == 0, "%s",
              st.msg);
        siam_rpc_buf_free(&r);
        CHECK(siam_rpc_call(mc, "/t.Svc/Echo", (const uint8_t *)"bad", 3, 5, &r, &st) ==
                  SIAM_RPC_INVALID_ARGUMENT,
              "%s", st.msg);
        CHECK(siam_rpc_call(mc, "/t.Svc/Echo", NULL, 0, 5, &r, &st) == 0, "%s", st.msg);
        siam_rpc_buf_free(&r);
        /* a stream: 5 and 2 bytes, answered with as many */
        siam_rpc_stream *ms = NULL;
        CHECK(siam_rpc_stream_open(mc, "/t.Svc/Stream", 5, &ms, &st) == 0, "%s", st.msg);
        CHECK(exchange_str(ms, "hello", got, sizeof got, &st) == 0, "%s", st.msg);
        CHECK(exchange_str(ms, "xy", got, sizeof got, &st) == 0, "%s", st.msg);
        int nm = siam_rpc_channel_traffic(mc, mine, SIAM_RPC_TRAFFIC_MAX);
        siam_rpc_traffic e = row_of(mine, nm, "/t.Svc/Echo"), t = row_of(mine, nm, "/t.Svc/Stream");
        CHECK(nm == 2 && strcmp(mine[0].method, "/t.Svc/Echo") == 0, "2 rows, in order: %d", nm);
        CHECK(e.calls == 3 && e.messages_sent == 3 && e.bytes_sent == 7 &&
                  e.messages_received == 2 && e.bytes_received == 4,
              "channel Echo: %llu calls, %llu/%llu sent, %llu/%llu received",
              (unsigned long long)e.calls, (unsigned long long)e.messages_sent,
              (unsigned long long)e.bytes_sent, (unsigned long long)e.messages_received,
              (unsigned long long)e.bytes_received);
        CHECK(t.calls == 1 && t.messages_sent == 2 && t.bytes_sent == 7 &&
                  t.messages_received == 2 && t.bytes_received == 7,
              "channel Stream: %llu calls, %llu/%llu sent, %llu/%llu received",
              (unsigned long long)t.calls, (unsigned long long)t.messages_sent,
              (unsigned long long)t.bytes_sent, (unsigned long long)t.messages_received,
              (unsigned long long)t.bytes_received);
        int na = siam_rpc_server_traffic(srv, after, SIAM_RPC_TRAFFIC_MAX);
        siam_rpc_traffic e0 = row_of(before, nb, "/t.Svc/Echo"),
                         e1 = row_of(after, na, "/t.Svc/Echo");
        siam_rpc_traffic t0r = row_of(before, nb, "/t.Svc/Stream"),
                         t1r = row_of(after, na, "/t.Svc/Stream");
        CHECK(e1.calls - e0.calls == 3 && e1.messages_received - e0.messages_received == 3 &&
                  e1.bytes_received - e0.bytes_received == 7 &&
                  e1.messages_sent - e0.messages_sent == 2 && e1.bytes_sent - e0.bytes_sent == 4,
              "the server's Echo row grew by what the channel counted");
        CHECK(t1r.calls - t0r.calls == 1 && t1r.messages_received - t0r.messages_received == 2 &&
                  t1r.bytes_received - t0r.bytes_received == 7 &&
                  t1r.messages_sent - t0r.messages_sent == 2 &&
                  t1r.bytes_sent - t0r.bytes_sent == 7,
              "the server's Stream row grew by what the channel counted");
        CHECK(row_of(after, na, "/t.Svc/Nope").calls == 0, "unknown methods are not counted");
        siam_rpc_channel_free(mc); /* before its stream: the stream keeps the counts alive */
        siam_rpc_stream_free(ms);
    }

    /* 8 concurrent streams of 50 messages each */
    pthread_t th[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, stream_worker, (void *)(intptr_t)i);
    int all_ok = 1;
    for (int i = 0; i < 8; i++) {
        void *ok;
        pthread_join(th[i], &ok);
        all_ok &= (int)(intptr_t)ok;
    }
    CHECK(all_ok, "8 concurrent streams each got their 50 answers in order");

    /* stop with a stream open: the stream's client sees UNAVAILABLE, not a hang */
    CHECK(siam_rpc_stream_open(ch, "/t.Svc/Stream", 5, &s, &st) == 0, "%s", st.msg);
    CHECK(exchange_str(s, "ab", got, sizeof got, &st) == 0, "before stop");
    t0 = siam_now();
    int cancelled = siam_rpc_server_stop(srv, 0.2);
    CHECK(cancelled == 1, "one open call cancelled after the grace period, got %d", cancelled);
    CHECK(siam_now() - t0 < 2.0, "stop took %.2f s", siam_now() - t0);
    int rc = exchange_str(s, "cd", got, sizeof got, &st);
    CHECK(rc == SIAM_RPC_UNAVAILABLE || rc == SIAM_RPC_CANCELLED, "after stop: %d %s", rc, st.msg);
    siam_rpc_stream_free(s);
    siam_rpc_server_free(srv);

    pthread_mutex_lock(&counts.lock);
    CHECK(counts.opened == counts.closed_ok + counts.closed_other,
          "every opened stream closed once (%d opened, %d + %d closed)", counts.opened,
          counts.closed_ok, counts.closed_other);
    CHECK(counts.closed_ok >= 9, "OK closes %d", counts.closed_ok);
    pthread_mutex_unlock(&counts.lock);

    /* ---- bearer token: checked before any handler runs ---- */
    {
        stream_counts tc = {.lock = PTHREAD_MUTEX_INITIALIZER};
        siam_rpc_server *ts = NULL;
        siam_rpc_server_config tcfg = {
            .listen = "127.0.0.1:0", .threads = 2, .auth_token = "tok-123/+="};
        int tport = 0;
        CHECK(siam_rpc_server_create(&ts, &tcfg, &err) == 0, "%s", err.msg);
        CHECK(siam_rpc_server_add_unary(ts, "/t.Svc/Echo", echo, NULL, &err) == 0, "%s", err.msg);
        CHECK(siam_rpc_server_add_stream(ts, "/t.Svc/Stream", &h, &tc, &err) == 0, "%s", err.msg);
        CHECK(siam_rpc_server_start(ts, &tport, &err) == 0, "%s", err.msg);
        char taddr[64];
        snprintf(taddr, sizeof taddr, "127.0.0.1:%d", tport);
        const char *tokens[] = {NULL, "tok-12", "tok-123/+=x", "tok-123/+="};
        for (int k = 0; k < 4; k++) {
            siam_rpc_channel_config cc = {.target = taddr, .auth_token = tokens[k]};
            siam_rpc_channel *tch = NULL;
            CHECK(siam_rpc_channel_create_ex(&tch, &cc, &err) == 0, "%s", err.msg);
            int want = k == 3 ? SIAM_RPC_OK : SIAM_RPC_UNAUTHENTICATED;
            int trc = siam_rpc_call(tch, "/t.Svc/Echo", (const uint8_t *)"abc", 3, 5, &r, &st);
            CHECK(trc == want, "token %d: unary %s %s", k, siam_rpc_code_name(trc), st.msg);
            CHECK(trc != SIAM_RPC_OK || (r.len == 3 && memcmp(r.data, "cba", 3) == 0),
                  "token %d: answer", k);
            siam_rpc_buf_free(&r);
            if (trc == SIAM_RPC_UNAUTHENTICATED) {
                CHECK(siam_rpc_status_is_permanent(&st), "UNAUTHENTICATED is permanent");
                CHECK(!strstr(st.msg, "tok-12"), "the message holds no token: %s", st.msg);
                CHECK(strstr(st.msg, k == 0 ? "requires a bearer token" : "not this server's"),
                      "token %d: %s", k, st.msg);
            }
            trc = siam_rpc_stream_open(tch, "/t.Svc/Stream", 5, &s, &st);
            CHECK(trc == want, "token %d: stream %s %s", k, siam_rpc_code_name(trc), st.msg);
            if (trc == SIAM_RPC_OK) {
                CHECK(exchange_str(s, "xy", got, sizeof got, &st) == 0 && strcmp(got, "yx") == 0,
                      "authenticated stream");
                CHECK(siam_rpc_stream_close(s, &st) == 0, "%s", st.msg);
            }
            siam_rpc_stream_free(s);
            s = NULL;
            trc = siam_rpc_call(tch, "/t.Svc/Nope", (const uint8_t *)"", 0, 5, &r, &st);
            CHECK(trc == (k == 3 ? SIAM_RPC_UNIMPLEMENTED : SIAM_RPC_UNAUTHENTICATED),
                  "token %d: unknown method %s", k, siam_rpc_code_name(trc));
            siam_rpc_channel_free(tch);
        }
        siam_rpc_server_free(ts);
        pthread_mutex_lock(&tc.lock);
        CHECK(tc.opened == 1 && tc.messages == 1 && tc.closed_ok == 1,
              "only the authenticated stream reached the handler: %d opened, %d messages",
              tc.opened, tc.messages);
        pthread_mutex_unlock(&tc.lock);
        siam_rpc_status perm = {SIAM_RPC_UNAVAILABLE, ""};
        CHECK(!siam_rpc_status_is_permanent(&perm), "UNAVAILABLE may be transient");
        perm.code = SIAM_RPC_DEADLINE_EXCEEDED;
        CHECK(!siam_rpc_status_is_permanent(&perm), "DEADLINE_EXCEEDED may be transient");
        int permanent[] = {SIAM_RPC_UNAUTHENTICATED, SIAM_RPC_PERMISSION_DENIED,
                           SIAM_RPC_INVALID_ARGUMENT, SIAM_RPC_FAILED_PRECONDITION,
                           SIAM_RPC_UNIMPLEMENTED};
        for (int k = 0; k < 5; k++) {
            perm.code = permanent[k];
            CHECK(siam_rpc_status_is_permanent(&perm), "%s is permanent",
                  siam_rpc_code_name(permanent[k]));
        }
    }

    /* ---- TLS in one process: the certificates of test_certs.h; the failures explained, also
     * for a stream's start, and permanent ---- */
    {
        char dir[] = "/tmp/test_rpc_tls.XXXXXX", ca[96], cert[96], key[96], other[96];
        CHECK(mkdtemp(dir) != NULL, "mkdtemp");
        const char *files[][2] = {
            {ca, CA_PEM}, {cert, LEAF_PEM}, {key, LEAF_KEY}, {other, OTHER_CA_PEM}};
        snprintf(ca, sizeof ca, "%s/ca.pem", dir);
        snprintf(other, sizeof other, "%s/other.pem", dir);
        snprintf(cert, sizeof cert, "%s/server.pem", dir);
        snprintf(key, sizeof key, "%s/server.key", dir);
        for (int k = 0; k < 4; k++) {
            FILE *f = fopen(files[k][0], "w");
            if (f) {
                fputs(files[k][1], f);
                fclose(f);
            }
            chmod(files[k][0], 0600);
        }
        siam_rpc_server *ts = NULL;
        siam_rpc_server_config bad = {.listen = "127.0.0.1:0", .threads = 1, .tls_cert = cert};
        CHECK(siam_rpc_server_create(&ts, &bad, &err) == SIAM_ERR_ARG &&
                  strstr(err.msg, "--tls-key"),
              "a certificate without its key: %s", err.msg);
        siam_rpc_server_config tcfg = {
            .listen = "127.0.0.1:0", .threads = 2, .tls_cert = cert, .tls_key = key};
        int tport = 0;
        CHECK(siam_rpc_server_create(&ts, &tcfg, &err) == 0, "%s", err.msg);
        CHECK(siam_rpc_server_add_unary(ts, "/t.Svc/Echo", echo, NULL, &err) == 0, "%s", err.msg);
        CHECK(siam_rpc_server_add_stream(ts, "/t.Svc/Stream", &h, &counts, &err) == 0, "%s",
              err.msg);
        CHECK(siam_rpc_server_start(ts, &tport, &err) == 0, "%s", err.msg);
        char taddr[64];
        snprintf(taddr, sizeof taddr, "127.0.0.1:%d", tport);
        struct {
            const char *tls_ca, *server_name, *words;
        } cases[] = {
            {ca, NULL, NULL},
            {other, NULL,
             "TLS: the client rejected the server's certificate: unknown CA: 'C=DE, O=siam, "
             "CN=localhost' is issued by 'O=siam tests, CN=siam unit CA', not by --tls-ca"},
            {cert, NULL, NULL}, /* the server's own certificate as the CA: gRPC accepts it */
            {ca, "foo.example",
             "TLS: the client rejected the server's certificate: name mismatch: the certificate "
             "is for 'DNS:localhost, DNS:siam-server, IP:127.0.0.1, IP:::1', connected to "
             "'foo.example'"},
            {NULL, NULL, "TLS: the server at 127.0.0.1:"},
        };
        for (int k = 0; k < (int)(sizeof cases / sizeof cases[0]); k++) {
            siam_rpc_channel_config cc = {.target = taddr,
                                          .tls_ca = cases[k].tls_ca,
                                          .tls_server_name = cases[k].server_name};
            siam_rpc_channel *tch = NULL;
            CHECK(siam_rpc_channel_create_ex(&tch, &cc, &err) == 0, "%s", err.msg);
            int want = cases[k].words ? SIAM_RPC_UNAUTHENTICATED : SIAM_RPC_OK;
            int trc = siam_rpc_call(tch, "/t.Svc/Echo", (const uint8_t *)"abc", 3, 5, &r, &st);
            CHECK(trc == want && (!cases[k].words || strstr(st.msg, cases[k].words)),
                  "TLS case %d: unary %s %s", k, siam_rpc_code_name(trc), st.msg);
            CHECK(trc != SIAM_RPC_OK || siam_rpc_status_is_permanent(&st) == 0, "OK");
            CHECK(trc == SIAM_RPC_OK || siam_rpc_status_is_permanent(&st),
                  "TLS refusals are permanent");
            siam_rpc_buf_free(&r);
            trc = siam_rpc_stream_open(tch, "/t.Svc/Stream", 5, &s, &st);
            CHECK(trc == want && (!cases[k].words || strstr(st.msg, cases[k].words)),
                  "TLS case %d: stream %s %s", k, siam_rpc_code_name(trc), st.msg);
            if (trc == SIAM_RPC_OK) {
                CHECK(exchange_str(s, "tls", got, sizeof got, &st) == 0 && strcmp(got, "slt") == 0,
                      "a stream over TLS");
                CHECK(siam_rpc_stream_close(s, &st) == 0, "%s", st.msg);
            }
            siam_rpc_stream_free(s);
            s = NULL;
            siam_rpc_channel_free(tch);
        }
        siam_rpc_server_free(ts);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        CHECK(system(cmd) == 0, "cleanup");
    }

    /* nobody listening: UNAVAILABLE quickly */
    t0 = siam_now();
    CHECK(siam_rpc_call(ch, "/t.Svc/Echo", (const uint8_t *)"a", 1, 5, &r, &st) ==
              SIAM_RPC_UNAVAILABLE,
          "no server: %d %s", st.code, st.msg);
    CHECK(siam_now() - t0 < 3.0, "no server noticed in %.2f s", siam_now() - t0);
    siam_rpc_channel_free(ch);
    siam_rpc_shutdown();
    return tu_finish();
}
