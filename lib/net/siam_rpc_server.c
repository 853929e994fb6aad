/* siam_rpc_server: the server's lifecycle: create (TLS files, token, gRPC arguments), methods,
 * start (listener, accept guard, completion-queue threads), a graceful stop, free. The calls
 * themselves are siam_rpc_server_calls.c's. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "siam_auth.h"
#include "siam_log.h"
#include "siam_rpc.h"
#include "siam_rpc_accept_guard.h"
#include "siam_rpc_internal.h"
#include "siam_rpc_server_internal.h"
#include "siam_rpc_server_test.h"
#include "siam_rpc_tls.h"

#define COMPONENT "rpc"

/* ---- the completion-queue threads ------------------------------------------------------- */

static void *cq_thread(void *arg) {
    siam_rpc_server *s = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        siam_rpc_server_handle_event(s, ev);
    }
    return NULL;
}

/* ---- public API ------------------------------------------------------------------------- */

int siam_rpc_server_create(siam_rpc_server **out, const siam_rpc_server_config *cfg,
                           siam_error *err) {
    *out = NULL;
    if (!cfg || !cfg->listen || !*cfg->listen)
        return siam_error_set(err, SIAM_ERR_ARG, "no listen address given");
    if (strlen(cfg->listen) >= sizeof(((siam_rpc_server *)0)->listen))
        return siam_error_set(err, SIAM_ERR_ARG, "listen address too long");
    if (cfg->threads < 1 || cfg->threads > 256)
        return siam_error_set(err, SIAM_ERR_ARG, "server threads must be 1..256, got %d",
                              cfg->threads);
    siam_rpc_server *s = calloc(1, sizeof *s);
    if (!s)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
    strcpy(s->listen, cfg->listen);
    s->n_threads = cfg->threads;
    s->max_message = cfg->max_message_bytes ? cfg->max_message_bytes : SIAM_RPC_DEFAULT_MAX_MESSAGE;
    if (s->max_message > 0x7fffffff)
        s->max_message = 0x7fffffff;
    s->handshake_timeout_ms = cfg->handshake_timeout_ms > 0 ? cfg->handshake_timeout_ms
                                                            : SIAM_RPC_DEFAULT_HANDSHAKE_TIMEOUT_MS;
    s->fail_thread = cfg->fail_thread_for_test;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    s->cond_clock =
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 ? CLOCK_MONOTONIC : CLOCK_REALTIME;
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    s->shutdown_tag = (struct tag){T_SHUTDOWN, s};
    s->meter = siam_rpc_meter_new();
    if (!s->meter) {
        siam_rpc_server_free(s);
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
    }

    int rc = siam_rpc_server_security_load(&s->sec, cfg, err);
    if (rc) {
        siam_rpc_server_free(s);
        return rc;
    }

    grpc_arg args[] = {
        /* the message size limit is this layer's (message_too_big): gRPC's own answer names
         * neither the setting nor the fix, and gRPC 1.51 holds a whole message before checking
         * its size anyway, so the check here costs no memory that the core's would save */
        siam_rpc_int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, -1),
        /* a second server on a port in use must fail, not share the port with the first */
        siam_rpc_int_arg(GRPC_ARG_ALLOW_REUSEPORT, 0),
        /* workers ping every 20 s while training: accept it (the default would send GOAWAY) */
        siam_rpc_int_arg(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000),
        siam_rpc_int_arg(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0),
        /* and ping idle clients ourselves, so a worker host that vanished is noticed */
        siam_rpc_int_arg(GRPC_ARG_KEEPALIVE_TIME_MS, 30000),
        siam_rpc_int_arg(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000),
        /* HTTP/2 flow control bounds what a client can make the server hold: a stream reads its
         * next message only after its answer went out, so a client that sends without reading
         * answers fills its stream's receive window and stops. With gRPC's BDP probing (on by
         * default) the windows grow with the bandwidth-delay product, to tens of MB per stream on
         * loopback. Off, a stream's window stays at HTTP/2's 64 KiB, opened to the length of the
         * message being read when a read is waiting (tests/load_test.sh bounds the server's
         * memory under such clients; the figures are in docs/BENCHMARKS.md "Load"). */
        siam_rpc_int_arg(GRPC_ARG_HTTP2_BDP_PROBE, 0),
        /* a connection that never sends the HTTP/2 preface is never seen by a TLS or token
         * check: only this bounds how long it holds a file descriptor */
        siam_rpc_int_arg(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, s->handshake_timeout_ms),
    };
    grpc_channel_args cargs = {sizeof args / sizeof args[0], args};
    s->server = grpc_server_create(&cargs, NULL);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    if (!s->server || !s->cq) {
        siam_rpc_server_free(s);
        return siam_error_set(err, SIAM_ERR_NOMEM, "cannot create the gRPC server");
    }
    grpc_server_register_completion_queue(s->server, s->cq, NULL);
    *out = s;
    return SIAM_OK;
}

static int add_method(siam_rpc_server *s, const char *path, int stream, siam_rpc_unary_fn fn,
                      siam_rpc_deferred_fn deferred, const siam_rpc_stream_handler *h, void *ctx,
                      siam_error *err) {
    if (s->started)
        return siam_error_set(err, SIAM_ERR_ARG, "%s: methods must be added before start", path);
    if (s->n_methods == MAX_METHODS)
        return siam_error_set(err, SIAM_ERR_ARG, "too many methods (max %d)", MAX_METHODS);
    if (!path || path[0] != '/')
        return siam_error_set(err, SIAM_ERR_ARG, "method path must start with '/': %s",
                              path ? path : "(null)");
    method *m = &s->methods[s->n_methods];
    memset(m, 0, sizeof *m);
    m->path = strdup(path);
    if (!m->path)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
    m->stream = stream;
    m->unary = fn;
    m->deferred = deferred;
    m->handler = h;
    m->ctx = ctx;
    m->slot = siam_rpc_meter_slot(s->meter, m->path);
    m->handle = grpc_server_register_method(
        s->server, m->path, NULL,
        stream ? GRPC_SRM_PAYLOAD_NONE : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    if (!m->handle) {
        free(m->path);
        m->path = NULL;
        return siam_error_set(err, SIAM_ERR_ARG, "cannot register method %s (duplicate?)", path);
    }
    s->n_methods++;
    return SIAM_OK;
}

int siam_rpc_server_add_unary(siam_rpc_server *s, const char *method_path, siam_rpc_unary_fn fn,
                              void *ctx, siam_error *err) {
    return add_method(s, method_path, 0, fn, NULL, NULL, ctx, err);
}

int siam_rpc_server_add_deferred(siam_rpc_server *s, const char *method_path,
                                 siam_rpc_deferred_fn fn, void *ctx, siam_error *err) {
    return add_method(s, method_path, 0, NULL, fn, NULL, ctx, err);
}

int siam_rpc_server_add_stream(siam_rpc_server *s, const char *method_path,
                               const siam_rpc_stream_handler *h, void *ctx, siam_error *err) {
    return add_method(s, method_path, 1, NULL, NULL, h, ctx, err);
}

int siam_rpc_server_start(siam_rpc_server *s, int *port, siam_error *err) {
    if (s->started)
        return siam_error_set(err, SIAM_ERR_ARG, "server already started");
    size_t off = (size_t)snprintf(s->unknown_msg, sizeof s->unknown_msg, "this server serves");
    for (int i = 0; i < s->n_methods && off < sizeof s->unknown_msg; i++)
        off += (size_t)snprintf(s->unknown_msg + off, sizeof s->unknown_msg - off, "%s %s",
                                i ? "," : "", s->methods[i].path);

    grpc_server_credentials *creds;
    if (s->sec.cert_pem) {
        grpc_ssl_pem_key_cert_pair pair = {s->sec.key_pem, s->sec.cert_pem};
        creds = grpc_ssl_server_credentials_create_ex(
            s->sec.client_ca_pem, &pair, 1,
            s->sec.client_ca_pem ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                 : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            NULL);
    } else {
        creds = grpc_insecure_server_credentials_create();
    }
    if (!creds)
        return siam_error_set(err, SIAM_ERR_ARG, "gRPC refuses the server credentials");
    siam_rpc_tls_log_reset();
    int bound = grpc_server_add_http2_port(s->server, s->listen, creds);
    grpc_server_credentials_release(creds);
    if (bound <= 0 && s->sec.cert_pem && siam_rpc_server_security_bind_error(&s->sec, err))
        return err ? err->code : SIAM_ERR_FORMAT;
    if (bound <= 0)
        return siam_error_set(err, SIAM_ERR_IO,
                              "cannot listen on %s: the address is in use, not local to this "
                              "host, or malformed (expected HOST:PORT, e.g. 0.0.0.0:50051)",
                              s->listen);
    /* gRPC stops listening for good after an accept4 error such as EMFILE: the guard keeps
     * the descriptors below the limit and turns what is left into EAGAIN */
    siam_rpc_accept_guard_enable();
    s->guarding = 1;
    grpc_server_start(s->server);
    s->started = 1;
    if (s->sec.cert_pem) {
        siam_rpc_tls_server_role(1, s->sec.client_ca_path);
        s->tls_role = 1;
    }
    siam_rpc_server_security_log(&s->sec);
    /* from here on a failure leaves a started gRPC server with fewer cq threads than asked for,
     * perhaps none: siam_rpc_server_stop drains the queue itself then */
    int want = s->n_threads;
    s->n_threads = 0;
    s->threads = calloc((size_t)want, sizeof *s->threads);
    if (!s->threads)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < want; i++) {
        int e =
            i + 1 == s->fail_thread ? EAGAIN : pthread_create(&s->threads[i], NULL, cq_thread, s);
        if (e)
            return siam_error_set(err, SIAM_ERR_NOMEM, "cannot start server thread %d of %d: %s",
                                  i + 1, want, strerror(e));
        s->n_threads = i + 1;
    }
    siam_rpc_server_arm_all(s);
    if (port)
        *port = bound;
    return SIAM_OK;
}

/* The stopping thread runs the queue itself for up to 50 ms (no cq thread runs). */
static void pump(siam_rpc_server *s) {
    grpc_event ev = grpc_completion_queue_next(
        s->cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(50, GPR_TIMESPAN)),
        NULL);
    siam_rpc_server_handle_event(s, ev);
}

static int passed(const siam_rpc_server *s, const struct timespec *until) {
    struct timespec now;
    clock_gettime(s->cond_clock, &now);
    return now.tv_sec > until->tv_sec ||
           (now.tv_sec == until->tv_sec && now.tv_nsec >= until->tv_nsec);
}

/* Waits, with s->lock held, until the shutdown tag has come back or (when_idle) no call is open
 * and no request is out, or until *until (on s->cond_clock; NULL = no limit). */
static void stop_wait(siam_rpc_server *s, const struct timespec *until, int when_idle) {
    while (!s->shutdown_done && !(when_idle && siam_rpc_server_is_idle(s))) {
        if (s->n_threads == 0) {
            pthread_mutex_unlock(&s->lock);
            pump(s);
            pthread_mutex_lock(&s->lock);
            if (until && passed(s, until))
                break;
        } else if (!until) {
            pthread_cond_wait(&s->cond, &s->lock);
        } else if (pthread_cond_timedwait(&s->cond, &s->lock, until) == ETIMEDOUT) {
            break;
        }
    }
}

int siam_rpc_server_stop(siam_rpc_server *s, double grace_s) {
    if (!s || !s->started || s->stopped)
        return 0;
    s->stopped = 1;
    pthread_mutex_lock(&s->lock);
    s->shutting_down = 1;
    pthread_mutex_unlock(&s->lock);
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);

    struct timespec until;
    clock_gettime(s->cond_clock, &until);
    double secs = grace_s > 0 ? grace_s : 0;
    until.tv_sec += (time_t)secs;
    until.tv_nsec += (long)((secs - (double)(time_t)secs) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    int cancelled = 0;
    pthread_mutex_lock(&s->lock);
    /* gRPC's shutdown also waits for every connection to close, and a client that does not
     * answer the GOAWAY ping (stopped, or gone from the network) keeps its idle connection:
     * waiting stops as soon as no call is open, and the cancel below closes the connections */
    stop_wait(s, &until, 1);
    if (!s->shutdown_done) {
        cancelled = s->live_calls;
        pthread_mutex_unlock(&s->lock);
        grpc_server_cancel_all_calls(s->server);
        pthread_mutex_lock(&s->lock);
        stop_wait(s, NULL, 0);
    }
    pthread_mutex_unlock(&s->lock);
    grpc_server_destroy(s->server);
    s->server = NULL;
    grpc_completion_queue_shutdown(s->cq);
    if (s->n_threads == 0)
        for (;;) {
            grpc_event ev =
                grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            if (ev.type == GRPC_QUEUE_SHUTDOWN)
                break;
            siam_rpc_server_handle_event(s, ev);
        }
    for (int i = 0; i < s->n_threads; i++)
        pthread_join(s->threads[i], NULL);
    s->drained = 1;
    if (s->guarding) {
        siam_rpc_accept_guard_disable();
        s->guarding = 0;
    }
    return cancelled;
}

void siam_rpc_server_free(siam_rpc_server *s) {
    if (!s)
        return;
    if (s->started)
        siam_rpc_server_stop(s, 0);
    if (s->server) /* created but never started */
        grpc_server_destroy(s->server);
    if (s->cq) {
        if (!s->drained) {
            grpc_completion_queue_shutdown(s->cq);
            while (
                grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
                GRPC_QUEUE_SHUTDOWN)
                ;
        }
        grpc_completion_queue_destroy(s->cq);
    }
    for (int i = 0; i < s->n_methods; i++)
        free(s->methods[i].path);
    free(s->threads);
    if (s->tls_role)
        siam_rpc_tls_server_role(0, NULL);
    siam_rpc_server_security_free(&s->sec);
    siam_rpc_meter_unref(s->meter);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

int siam_rpc_server_traffic(siam_rpc_server *s, siam_rpc_traffic *rows, int max) {
    return s ? siam_rpc_meter_get(s->meter, rows, max) : 0;
}

clockid_t siam_rpc_server_wait_clock(const siam_rpc_server *s) {
    return s->cond_clock;
}
