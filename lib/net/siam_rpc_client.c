/* siam_rpc_client: a channel, unary calls with a deadline, and a bidirectional stream whose every
 * exchange is bounded by a timeout, on the gRPC C core. Each call owns a completion queue that
 * only its caller's thread drains, so waiting for "whichever op finishes first" is one loop. */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/string_util.h>
#include <grpc/support/time.h>

#include "siam_auth.h"
#include "siam_log.h"
#include "siam_rpc.h"
#include "siam_rpc_internal.h"
#include "siam_x509.h"

#define MAX_CAS 32 /* CA certificates of --tls-ca summarised for messages */

struct siam_rpc_channel {
    grpc_channel *channel;
    char *target;
    /* TLS (tls_ca NULL: plaintext), for explaining failures */
    char *tls_ca, *tls_cert, *tls_server_name;
    siam_x509_cert *cas; /* the first n_cas certificates of tls_ca */
    int n_cas, total_cas;
    siam_x509_cert client_cert; /* valid when tls_cert */
    /* bearer token: "authorization: Bearer <token>" */
    int has_token, secret_slot;
    grpc_metadata auth_md;
};

static gpr_timespec after(double seconds) {
    if (seconds <= 0)
        return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_micros((int64_t)(seconds * 1e6), GPR_TIMESPAN));
}

static grpc_byte_buffer *copy_payload(const uint8_t *data, size_t len) {
    grpc_slice s =
        len ? grpc_slice_from_copied_buffer((const char *)data, len) : grpc_empty_slice();
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

static void status_from_call(siam_rpc_status *st, grpc_status_code code, grpc_slice details) {
    char *msg = grpc_slice_to_c_string(details);
    siam_rpc_status_set(st, (int)code, "%s", msg && *msg ? msg : siam_rpc_code_name((int)code));
    gpr_free(msg);
}

static void drain_and_destroy(grpc_completion_queue *cq) {
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

/* ---- TLS files ------------------------------------------------------------------------- */

static void wipe_free(void *p) {
    siam_auth_wipe(p, strlen(p));
    free(p);
}

static void free_pem(char *pem) {
    if (pem)
        wipe_free(pem);
}

/* Whether gRPC accepts the client's certificate and key as a pair: it loads them into a server
 * bound to 127.0.0.1:0 and never started (loading checks that the key matches the certificate;
 * a client would only find out when connecting, as an UNAVAILABLE "empty address list"). */
static int check_key_pair(const char *cert_pem, const char *key_pem, const char *cert_path,
                          const char *key_path, siam_error *err) {
    grpc_ssl_pem_key_cert_pair pair = {key_pem, cert_pem};
    grpc_server_credentials *creds = grpc_ssl_server_credentials_create_ex(
        NULL, &pair, 1, GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE, NULL);
    grpc_server *srv = grpc_server_create(NULL, NULL);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_server_register_completion_queue(srv, cq, NULL);
    siam_rpc_tls_log_reset();
    int port = creds ? grpc_server_add_http2_port(srv, "127.0.0.1:0", creds) : 0;
    if (creds)
        grpc_server_credentials_release(creds);
    char lines[1024];
    siam_rpc_tls_log_get(lines, sizeof lines);
    static int tag;
    grpc_server_shutdown_and_notify(srv, cq, &tag);
    grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_server_destroy(srv);
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_completion_queue_destroy(cq);
    if (port > 0)
        return SIAM_OK;
    if (strstr(lines, "Invalid private key"))
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "--tls-key %s does not match the certificate in --tls-cert %s (or is "
                              "damaged): give the key the certificate was made for",
                              key_path, cert_path);
    if (strstr(lines, "cert chain"))
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "--tls-cert %s: gRPC cannot load the certificate (%s)", cert_path,
                              lines);
    return SIAM_OK; /* could not bind (no loopback?): connecting will tell */
}

static char *dup_or_null(const char *p, int *oom) {
    char *d = p ? strdup(p) : NULL;
    if (p && !d)
        *oom = 1;
    return d;
}

/* Reads and checks the TLS files; the credentials, or NULL with *err set. */
static grpc_channel_credentials *
tls_credentials(siam_rpc_channel *ch, const siam_rpc_channel_config *cfg, siam_error *err) {
    if (!cfg->tls_ca) {
        if (cfg->tls_cert || cfg->tls_key || cfg->tls_server_name)
            siam_error_set(err, SIAM_ERR_ARG,
                           "--tls-cert, --tls-key and --tls-server-name need --tls-ca (the CA "
                           "certificate that signed the server's certificate): TLS is off "
                           "without it");
        return NULL;
    }
    if (!cfg->tls_cert != !cfg->tls_key) {
        siam_error_set(err, SIAM_ERR_ARG,
                       "mutual TLS needs both --tls-cert and --tls-key (this client's "
                       "certificate and its private key)");
        return NULL;
    }
    int oom = 0;
    ch->tls_ca = dup_or_null(cfg->tls_ca, &oom);
    ch->tls_cert = dup_or_null(cfg->tls_cert, &oom);
    ch->tls_server_name = dup_or_null(cfg->tls_server_name, &oom);
    ch->cas = calloc(MAX_CAS, sizeof *ch->cas);
    if (oom || !ch->cas) {
        siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    char *ca = NULL, *cert = NULL, *key = NULL;
    char warning[SIAM_ERROR_MSG_MAX] = "";
    grpc_channel_credentials *creds = NULL;
    if (siam_pem_load("--tls-ca", cfg->tls_ca, SIAM_PEM_CERTIFICATES, &ca, NULL, 0, err))
        goto out;
    siam_error e = {0};
    siam_x509_cert c;
    for (int i = 0; siam_x509_parse_pem(ca, i, &c, &e) == SIAM_OK; i++) {
        if (ch->n_cas < MAX_CAS)
            ch->cas[ch->n_cas++] = c;
        ch->total_cas++;
    }
    if (cfg->tls_cert) {
        if (siam_pem_load("--tls-cert", cfg->tls_cert, SIAM_PEM_CERTIFICATES, &cert, NULL, 0,
                          err) ||
            siam_pem_load("--tls-key", cfg->tls_key, SIAM_PEM_PRIVATE_KEY, &key, warning,
                          sizeof warning, err) ||
            siam_x509_parse_pem(cert, 0, &ch->client_cert, err) ||
            check_key_pair(cert, key, cfg->tls_cert, cfg->tls_key, err))
            goto out;
        if (warning[0])
            LOG_WARN("rpc", "%s", warning);
    }
    grpc_ssl_pem_key_cert_pair pair = {key, cert};
    creds = grpc_ssl_credentials_create_ex(ca, cert ? &pair : NULL, NULL, NULL);
    if (!creds)
        siam_error_set(err, SIAM_ERR_ARG, "gRPC refuses the TLS credentials");
out:
    free_pem(ca);
    free_pem(cert);
    free_pem(key);
    return creds;
}

/* ---- channels ---------------------------------------------------------------------------- */

int siam_rpc_channel_create_ex(siam_rpc_channel **out, const siam_rpc_channel_config *cfg,
                               siam_error *err) {
    *out = NULL;
    if (!cfg || !cfg->target || !*cfg->target)
        return siam_error_set(err, SIAM_ERR_ARG, "no server address given");
    siam_rpc_channel *ch = calloc(1, sizeof *ch);
    if (!ch || !(ch->target = strdup(cfg->target))) {
        free(ch);
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
    }
    ch->secret_slot = -1;
    if (cfg->auth_token) {
        size_t len = strlen(cfg->auth_token);
        if (len == 0 || len > SIAM_AUTH_TOKEN_MAX) {
            siam_rpc_channel_free(ch);
            return siam_error_set(err, SIAM_ERR_ARG, "the bearer token must be 1 to %d characters",
                                  SIAM_AUTH_TOKEN_MAX);
        }
        char *value = malloc(len + 8);
        if (!value) {
            siam_rpc_channel_free(ch);
            return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
        }
        memcpy(value, "Bearer ", 7);
        memcpy(value + 7, cfg->auth_token, len + 1);
        ch->auth_md.key = grpc_slice_from_static_string("authorization");
        ch->auth_md.value = grpc_slice_new(value, len + 7, wipe_free); /* wiped when freed */
        ch->has_token = 1;
        ch->secret_slot = siam_rpc_secret_add(cfg->auth_token, len);
    }
    grpc_channel_credentials *creds = NULL;
    if (cfg->tls_ca || cfg->tls_cert || cfg->tls_key || cfg->tls_server_name) {
        creds = tls_credentials(ch, cfg, err);
        if (!creds) {
            siam_rpc_channel_free(ch);
            return err ? err->code : SIAM_ERR_ARG;
        }
    } else {
        creds = grpc_insecure_credentials_create();
    }
    size_t max = cfg->max_message_bytes ? cfg->max_message_bytes : SIAM_RPC_DEFAULT_MAX_MESSAGE;
    if (max > 0x7fffffff)
        max = 0x7fffffff;
    grpc_arg args[] = {
        siam_rpc_int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, (int)max),
        siam_rpc_int_arg(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, (int)max),
        /* keepalive: a server (or its host) that vanished is noticed within ~30 s even while
         * this worker only computes; the server accepts pings this often (siam_rpc_server.c) */
        siam_rpc_int_arg(GRPC_ARG_KEEPALIVE_TIME_MS, 20000),
        siam_rpc_int_arg(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000),
        siam_rpc_int_arg(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0),
        {0}, /* the name to check the server's certificate for, when given */
    };
    size_t n_args = sizeof args / sizeof args[0] - 1;
    if (ch->tls_server_name) {
        args[n_args].type = GRPC_ARG_STRING;
        args[n_args].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
        args[n_args++].value.string = ch->tls_server_name;
    }
    grpc_channel_args cargs = {n_args, args};
    ch->channel = grpc_channel_create(cfg->target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    if (!ch->channel) {
        siam_rpc_channel_free(ch);
        return siam_error_set(err, SIAM_ERR_ARG, "cannot create a channel to '%s'", cfg->target);
    }
    *out = ch;
    return SIAM_OK;
}

int siam_rpc_channel_create(siam_rpc_channel **out, const char *target, size_t max_message_bytes,
                            siam_error *err) {
    siam_rpc_channel_config cfg = {.target = target, .max_message_bytes = max_message_bytes};
    return siam_rpc_channel_create_ex(out, &cfg, err);
}

void siam_rpc_channel_free(siam_rpc_channel *ch) {
    if (!ch)
        return;
    if (ch->channel)
        grpc_channel_destroy(ch->channel);
    if (ch->has_token) {
        grpc_slice_unref(ch->auth_md.key);
        grpc_slice_unref(ch->auth_md.value);
    }
    siam_rpc_secret_remove(ch->secret_slot);
    free(ch->target);
    free(ch->tls_ca);
    free(ch->tls_cert);
    free(ch->tls_server_name);
    free(ch->cas);
    free(ch);
}

const char *siam_rpc_channel_target(const siam_rpc_channel *ch) {
    return ch->target;
}

/* ---- explaining TLS failures --------------------------------------------------------------- */

/* The diagnosis connection: a TLS client that accepts any certificate, records the server's, and
 * then fails the handshake itself, so that nothing of a call is ever sent on it. The state is
 * shared with gRPC's verifier, which may outlive the channel: the last of the two frees it. */
typedef struct {
    pthread_mutex_t lock;
    int refs, called;
    char *leaf_pem; /* the server's certificate */
    grpc_tls_certificate_verifier_external ext;
} probe_state;

static void probe_unref(probe_state *p) {
    pthread_mutex_lock(&p->lock);
    int last = --p->refs == 0;
    pthread_mutex_unlock(&p->lock);
    if (last) {
        pthread_mutex_destroy(&p->lock);
        free(p->leaf_pem);
        free(p);
    }
}

static int probe_verify(void *user_data, grpc_tls_custom_verification_check_request *request,
                        grpc_tls_on_custom_verification_check_done_cb callback, void *callback_arg,
                        grpc_status_code *sync_status, char **sync_error_details) {
    (void)callback;
    (void)callback_arg;
    probe_state *p = user_data;
    pthread_mutex_lock(&p->lock);
    if (!p->called) {
        p->called = 1;
        if (request->peer_info.peer_cert)
            p->leaf_pem = strdup(request->peer_info.peer_cert);
    }
    pthread_mutex_unlock(&p->lock);
    *sync_status = GRPC_STATUS_UNAUTHENTICATED;
    *sync_error_details = gpr_strdup("siam TLS diagnosis: certificate recorded, connection unused");
    return 1;
}

static void probe_cancel(void *user_data, grpc_tls_custom_verification_check_request *request) {
    (void)user_data;
    (void)request;
}

static void probe_destruct(void *user_data) {
    probe_unref(user_data);
}

/* Connects once to target. 1 when the server speaks TLS and sent a certificate (*leaf_pem gets
 * it, malloc'd, or NULL), 0 otherwise (not TLS, gone, or no answer within timeout_s). method is
 * the path the probe's call names: gRPC connects only for a call, but the handshake fails before
 * the call is sent, so the server never sees it. */
static int tls_probe(const char *target, const char *server_name, const char *method,
                     double timeout_s, char **leaf_pem) {
    *leaf_pem = NULL;
    probe_state *p = calloc(1, sizeof *p);
    if (!p)
        return 0;
    pthread_mutex_init(&p->lock, NULL);
    p->refs = 2; /* this function's and the verifier's (dropped in probe_destruct) */
    p->ext.user_data = p;
    p->ext.verify = probe_verify;
    p->ext.cancel = probe_cancel;
    p->ext.destruct = probe_destruct;
    grpc_tls_certificate_verifier *verifier =
        grpc_tls_certificate_verifier_external_create(&p->ext);
    grpc_tls_credentials_options *opts = grpc_tls_credentials_options_create();
    grpc_tls_credentials_options_set_verify_server_cert(opts, 0);
    grpc_tls_credentials_options_set_certificate_verifier(opts, verifier);
    grpc_channel_credentials *creds = grpc_tls_credentials_create(opts); /* takes opts */
    grpc_tls_certificate_verifier_release(verifier);
    int called = 0;
    if (creds) {
        grpc_arg args[2];
        size_t n = 0;
        args[n++] = siam_rpc_int_arg(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
        if (server_name) {
            memset(&args[n], 0, sizeof args[n]);
            args[n].type = GRPC_ARG_STRING;
            args[n].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
            args[n++].value.string = (char *)server_name;
        }
        grpc_channel_args cargs = {n, args};
        grpc_channel *chan = grpc_channel_create(target, creds, &cargs);
        grpc_channel_credentials_release(creds);
        grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
        grpc_slice path = grpc_slice_from_copied_string(method);
        grpc_call *call = chan ? grpc_channel_create_call(chan, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                                          path, NULL, after(timeout_s), NULL)
                               : NULL;
        grpc_slice_unref(path);
        if (call) {
            grpc_metadata_array trailing;
            grpc_metadata_array_init(&trailing);
            grpc_status_code code;
            grpc_slice details = grpc_empty_slice();
            grpc_op ops[2];
            memset(ops, 0, sizeof ops);
            ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
            ops[1].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
            ops[1].data.recv_status_on_client.trailing_metadata = &trailing;
            ops[1].data.recv_status_on_client.status = &code;
            ops[1].data.recv_status_on_client.status_details = &details;
            static int tag;
            if (grpc_call_start_batch(call, ops, 2, &tag, NULL) == GRPC_CALL_OK)
                grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            grpc_slice_unref(details);
            grpc_metadata_array_destroy(&trailing);
            grpc_call_unref(call);
        }
        drain_and_destroy(cq);
        if (chan)
            grpc_channel_destroy(chan);
    }
    pthread_mutex_lock(&p->lock);
    called = p->called;
    *leaf_pem = p->leaf_pem;
    p->leaf_pem = NULL;
    pthread_mutex_unlock(&p->lock);
    probe_unref(p);
    return called;
}

/* snprintf for messages that may be cut short (vsnprintf: no truncation warnings). */
static void say(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

/* "'CN=a'" or "'CN=a', 'CN=b' and 3 more": the CAs of --tls-ca. */
static void ca_names(const siam_rpc_channel *ch, char *buf, size_t n) {
    buf[0] = '\0';
    for (int i = 0; i < ch->n_cas && i < 2; i++)
        say(buf + strlen(buf), n - strlen(buf), "%s'%s'", i ? ", " : "", ch->cas[i].subject);
    if (ch->total_cas > 2)
        say(buf + strlen(buf), n - strlen(buf), " and %d more", ch->total_cas - 2);
}

/* Why the client refused the server's certificate ("certificate verify failed"). */
static void explain_server_cert(const siam_rpc_channel *ch, const char *leaf_pem, char *why,
                                size_t n) {
    siam_x509_cert c;
    siam_error e = {0};
    char t[64], cas[SIAM_X509_TEXT_MAX * 2 + 32];
    if (!leaf_pem || siam_x509_parse_pem(leaf_pem, 0, &c, &e) != SIAM_OK) {
        say(why, n,
            "the client rejected the server's certificate: it is not signed by --tls-ca %s, "
            "or it expired (gRPC: certificate verify failed)",
            ch->tls_ca);
        return;
    }
    int64_t now = (int64_t)time(NULL);
    if (now > c.not_after) {
        siam_x509_format_time(c.not_after, t, sizeof t);
        say(why, n,
            "the client rejected the server's certificate: expired: '%s' expired on %s "
            "(renew the server's --tls-cert)",
            c.subject, t);
        return;
    }
    if (now < c.not_before) {
        siam_x509_format_time(c.not_before, t, sizeof t);
        say(why, n,
            "the client rejected the server's certificate: not yet valid: '%s' is valid from "
            "%s (check the clocks of both hosts)",
            c.subject, t);
        return;
    }
    int known = 0;
    for (int i = 0; i < ch->n_cas; i++)
        known |= siam_x509_issued_by_name(&c, &ch->cas[i]);
    ca_names(ch, cas, sizeof cas);
    if (known)
        say(why, n,
            "the client rejected the server's certificate: '%s' names '%s' as its issuer, "
            "which is in --tls-ca %s, but that CA did not sign it (another CA of the same "
            "name, or an intermediate certificate missing from the server's --tls-cert)",
            c.subject, c.issuer, ch->tls_ca);
    else if (c.issuer_len == c.subject_len && c.issuer_crc == c.subject_crc)
        say(why, n,
            "the client rejected the server's certificate: unknown CA: '%s' is self-signed, "
            "not signed by --tls-ca %s (%s)",
            c.subject, ch->tls_ca, cas);
    else
        say(why, n,
            "the client rejected the server's certificate: unknown CA: '%s' is issued by "
            "'%s', not by --tls-ca %s (%s)",
            c.subject, c.issuer, ch->tls_ca, cas);
}

/* A call to method that failed to connect: if TLS is why, st becomes UNAUTHENTICATED "TLS: ..."
 * saying which side refused what (siam_rpc_status_is_permanent then holds). Other failures stay. */
static void explain_failure(siam_rpc_channel *ch, const char *method, siam_rpc_status *st,
                            double timeout_s) {
    const char *m = st->msg;
    if (st->code != SIAM_RPC_UNAVAILABLE ||
        (!strstr(m, "failed to connect") && !strstr(m, "empty address list")))
        return;
    if (timeout_s <= 0 || timeout_s > 5)
        timeout_s = 5;
    int closed = strstr(m, "Socket closed") || strstr(m, "Connection reset") ||
                 strstr(m, "connection reset") || strstr(m, "Broken pipe");
    char why[SIAM_ERROR_MSG_MAX] = "", t[64];
    char *leaf = NULL;
    siam_x509_cert c;
    siam_error e = {0};
    const char *name = strstr(m, "Peer name ");
    if (!ch->tls_ca) {
        if (closed && tls_probe(ch->target, NULL, method, timeout_s, &leaf)) {
            int parsed = leaf && siam_x509_parse_pem(leaf, 0, &c, &e) == SIAM_OK;
            say(why, sizeof why,
                "the server at %s requires TLS%s%s%s%s%s: give --tls-ca with the CA "
                "certificate that signed it",
                ch->target, parsed ? " (its certificate is '" : "", parsed ? c.subject : "",
                parsed ? "', issued by '" : "", parsed ? c.issuer : "", parsed ? "')" : "");
        }
    } else if (name) {
        char host[200];
        name += strlen("Peer name ");
        const char *end = strstr(name, " is not in peer certificate");
        size_t l = end ? (size_t)(end - name) : strcspn(name, " ");
        say(host, sizeof host, "%.*s", (int)(l < sizeof host ? l : sizeof host - 1), name);
        char certnames[SIAM_X509_TEXT_MAX + 8] = "?";
        if (tls_probe(ch->target, ch->tls_server_name, method, timeout_s, &leaf) && leaf &&
            siam_x509_parse_pem(leaf, 0, &c, &e) == SIAM_OK)
            say(certnames, sizeof certnames, "%s", c.names[0] ? c.names : c.subject);
        say(why, sizeof why,
            "the client rejected the server's certificate: name mismatch: the certificate is "
            "for '%s', connected to '%s' (connect by a name in it, or check one of them with "
            "--tls-server-name)",
            certnames, host);
    } else if (strstr(m, "certificate verify failed")) {
        tls_probe(ch->target, ch->tls_server_name, method, timeout_s, &leaf);
        explain_server_cert(ch, leaf, why, sizeof why);
    } else if (strstr(m, "wrong version number") || strstr(m, "unknown protocol") ||
               strstr(m, "packet length too long") || strstr(m, "record layer failure")) {
        say(why, sizeof why,
            "the server at %s does not speak TLS (started without --tls-cert and "
            "--tls-key?): drop --tls-ca, or start the server with TLS",
            ch->target);
    } else if (closed) {
        if (tls_probe(ch->target, ch->tls_server_name, method, timeout_s, &leaf)) {
            if (!ch->tls_cert)
                say(why, sizeof why,
                    "the server requires a client certificate (mutual TLS): give --tls-cert "
                    "and --tls-key, a certificate signed by the CA of the server's "
                    "--tls-client-ca");
            else if ((int64_t)time(NULL) > ch->client_cert.not_after) {
                siam_x509_format_time(ch->client_cert.not_after, t, sizeof t);
                say(why, sizeof why,
                    "the server rejected this client's certificate (mutual TLS): --tls-cert "
                    "%s expired on %s; renew it",
                    ch->tls_cert, t);
            } else
                say(why, sizeof why,
                    "the server rejected this client's certificate (mutual TLS: --tls-cert "
                    "%s, '%s' issued by '%s', is not signed by the server's "
                    "--tls-client-ca)",
                    ch->tls_cert, ch->client_cert.subject, ch->client_cert.issuer);
        }
    } else if (strstr(m, "empty address list")) {
        char lines[1024];
        siam_rpc_tls_log_get(lines, sizeof lines);
        if (strstr(lines, "root certificates"))
            say(why, sizeof why, "gRPC cannot load the CA certificates of --tls-ca %s", ch->tls_ca);
        else if (strstr(lines, "private key") || strstr(lines, "cert chain"))
            say(why, sizeof why,
                "gRPC cannot load --tls-cert %s with its --tls-key (the key does not match "
                "the certificate?)",
                ch->tls_cert ? ch->tls_cert : "?");
    } else if (strstr(m, "Ssl handshake failed") && strstr(m, "SSL_ERROR_SSL")) {
        const char *r = strstr(m, "SSL routines::");
        say(why, sizeof why, "the TLS handshake with the server at %s failed: %s", ch->target,
            r ? r + strlen("SSL routines::") : m);
    }
    free(leaf);
    if (why[0]) {
        LOG_DEBUG("rpc", "%s: gRPC said UNAVAILABLE: %s", ch->target, m);
        siam_rpc_status_set(st, SIAM_RPC_UNAUTHENTICATED, "TLS: %s", why);
    }
}

int siam_rpc_channel_connect(siam_rpc_channel *ch, double timeout_s) {
    grpc_channel_reset_connect_backoff(ch->channel);
    grpc_connectivity_state state = grpc_channel_check_connectivity_state(ch->channel, 1);
    if (state == GRPC_CHANNEL_READY)
        return 1;
    /* after a failure the state stays TRANSIENT_FAILURE while gRPC tries again ("sticky"), so
     * only READY ends the wait early */
    gpr_timespec deadline = after(timeout_s > 0 ? timeout_s : 1e-3);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    while (state != GRPC_CHANNEL_READY && state != GRPC_CHANNEL_SHUTDOWN &&
           gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), deadline) < 0) {
        grpc_channel_watch_connectivity_state(ch->channel, state, deadline, cq, NULL);
        grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        state = grpc_channel_check_connectivity_state(ch->channel, 1);
    }
    drain_and_destroy(cq);
    return state == GRPC_CHANNEL_READY;
}

int siam_rpc_call(siam_rpc_channel *ch, const char *method, const uint8_t *req, size_t len,
                  double timeout_s, siam_rpc_buf *resp, siam_rpc_status *st) {
    resp->data = NULL;
    resp->len = 0;
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    grpc_slice path = grpc_slice_from_copied_string(method);
    grpc_call *call = grpc_channel_create_call(ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, path,
                                               NULL, after(timeout_s), NULL);
    grpc_slice_unref(path);
    if (!call) {
        drain_and_destroy(cq);
        return siam_rpc_status_set(st, SIAM_RPC_INTERNAL, "cannot create a call to %s", method);
    }
    grpc_metadata_array md_in, trailing;
    grpc_metadata_array_init(&md_in);
    grpc_metadata_array_init(&trailing);
    grpc_byte_buffer *send = copy_payload(req, len), *recv = NULL;
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (ch->has_token) {
        ops[0].data.send_initial_metadata.count = 1;
        ops[0].data.send_initial_metadata.metadata = &ch->auth_md;
    }
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &md_in;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
    ops[5].data.recv_status_on_client.status = &code;
    ops[5].data.recv_status_on_client.status_details = &details;
    static int tag;
    grpc_call_error e = grpc_call_start_batch(call, ops, 6, &tag, NULL);
    if (e != GRPC_CALL_OK) {
        siam_rpc_status_set(st, SIAM_RPC_INTERNAL, "%s: %s", method, grpc_call_error_to_string(e));
    } else {
        /* the call's own deadline ends it; this wait only has to outlast it */
        grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (code != GRPC_STATUS_OK) {
            status_from_call(st, code, details);
            explain_failure(ch, method, st, timeout_s);
        } else if (!recv)
            siam_rpc_status_set(st, SIAM_RPC_INTERNAL, "%s: the server sent no answer", method);
        else if (siam_rpc_flatten(recv, resp))
            siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                "%s: out of memory for an answer of %zu bytes", method,
                                grpc_byte_buffer_length(recv));
        else
            siam_rpc_status_set(st, SIAM_RPC_OK, "%s", "");
    }
    if (recv)
        grpc_byte_buffer_destroy(recv);
    grpc_byte_buffer_destroy(send);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&md_in);
    grpc_metadata_array_destroy(&trailing);
    grpc_call_unref(call);
    drain_and_destroy(cq);
    return st->code;
}

/* ---- streams ---------------------------------------------------------------------------- */

enum { OP_MD = 1, OP_RECV_MD = 2, OP_SEND = 4, OP_RECV = 8, OP_STATUS = 16, OP_CLOSE = 32 };

struct siam_rpc_stream {
    grpc_call *call;
    grpc_completion_queue *cq;
    char *method;
    double op_timeout;
    int pending; /* OP_* bits of batches started and not yet come back */
    grpc_metadata_array md_in, trailing;
    grpc_status_code code;
    grpc_slice details;
    grpc_byte_buffer *send, *recv;
    int status_done;  /* RECV_STATUS_ON_CLIENT has come back */
    int dead;         /* failed: later calls return `failure` */
    int in_flight;    /* a message was sent and its answer not yet received */
    int start_failed; /* its ops could not be started; the call was cancelled */
    siam_rpc_status failure;
};

static int start_op(siam_rpc_stream *s, grpc_op *op, size_t n, int bit) {
    grpc_call_error e = grpc_call_start_batch(s->call, op, n, (void *)(intptr_t)bit, NULL);
    if (e != GRPC_CALL_OK)
        return -1;
    s->pending |= bit;
    return 0;
}

/* Waits for one event until `deadline`; returns the OP_* bit that completed (0 on timeout). */
static int next_event(siam_rpc_stream *s, gpr_timespec deadline, int *success) {
    grpc_event ev = grpc_completion_queue_next(s->cq, deadline, NULL);
    if (ev.type != GRPC_OP_COMPLETE)
        return 0;
    int bit = (int)(intptr_t)ev.tag;
    s->pending &= ~bit;
    *success = ev.success;
    if (bit == OP_STATUS)
        s->status_done = 1;
    return bit;
}

/* The call is over or must end: record why (the server's status when it has one). */
static int stream_fail(siam_rpc_stream *s, siam_rpc_status *st) {
    if (!s->dead) {
        s->dead = 1;
        if (s->status_done && s->code != GRPC_STATUS_OK)
            status_from_call(&s->failure, s->code, s->details);
        else if (s->status_done)
            siam_rpc_status_set(&s->failure, SIAM_RPC_INTERNAL,
                                "%s: the server ended the stream without an answer", s->method);
        else
            siam_rpc_status_set(&s->failure, SIAM_RPC_UNAVAILABLE, "%s: the stream broke",
                                s->method);
    }
    *st = s->failure;
    return st->code;
}

/* Cancels the call with a timeout status and waits for the core to hand back every op. */
static int stream_timeout(siam_rpc_stream *s, siam_rpc_status *st, const char *what) {
    grpc_call_cancel_with_status(s->call, GRPC_STATUS_DEADLINE_EXCEEDED, "client timeout", NULL);
    int ok;
    while (s->pending)
        next_event(s, gpr_inf_future(GPR_CLOCK_REALTIME), &ok);
    s->dead = 1;
    siam_rpc_status_set(&s->failure, SIAM_RPC_DEADLINE_EXCEEDED,
                        "%s: no %s from the server within %.0f s", s->method, what, s->op_timeout);
    *st = s->failure;
    return st->code;
}

/* Waits until none of `bits` is pending or the call ended; on the call's end, waits for the
 * status so the reason is known. Returns 0, or the failure code. */
static int wait_ops(siam_rpc_stream *s, int bits, siam_rpc_status *st, const char *what) {
    gpr_timespec deadline = after(s->op_timeout);
    int failed = 0;
    while (s->pending & bits) {
        int ok = 1;
        int bit = next_event(s, deadline, &ok);
        if (!bit)
            return stream_timeout(s, st, what);
        if (!ok || bit == OP_STATUS)
            failed = 1;
    }
    if (failed || s->status_done) {
        /* the status tells why; it follows quickly once an op has failed */
        while (!s->status_done) {
            int ok;
            if (!next_event(s, deadline, &ok))
                return stream_timeout(s, st, what);
        }
        return stream_fail(s, st);
    }
    return 0;
}

int siam_rpc_stream_open(siam_rpc_channel *ch, const char *method, double op_timeout_s,
                         siam_rpc_stream **out, siam_rpc_status *st) {
    *out = NULL;
    siam_rpc_stream *s = calloc(1, sizeof *s);
    if (!s || !(s->method = strdup(method))) {
        free(s);
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    s->op_timeout = op_timeout_s;
    s->details = grpc_empty_slice();
    grpc_metadata_array_init(&s->md_in);
    grpc_metadata_array_init(&s->trailing);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_slice path = grpc_slice_from_copied_string(method);
    s->call = grpc_channel_create_call(ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq, path,
                                       NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_slice_unref(path);
    if (!s->call) {
        siam_rpc_stream_free(s);
        return siam_rpc_status_set(st, SIAM_RPC_INTERNAL, "cannot create a call to %s", method);
    }
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op.data.recv_status_on_client.trailing_metadata = &s->trailing;
    op.data.recv_status_on_client.status = &s->code;
    op.data.recv_status_on_client.status_details = &s->details;
    int bad = start_op(s, &op, 1, OP_STATUS);
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_INITIAL_METADATA;
    if (ch->has_token) {
        op.data.send_initial_metadata.count = 1;
        op.data.send_initial_metadata.metadata = &ch->auth_md;
    }
    bad = bad || start_op(s, &op, 1, OP_MD);
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_INITIAL_METADATA;
    op.data.recv_initial_metadata.recv_initial_metadata = &s->md_in;
    bad = bad || start_op(s, &op, 1, OP_RECV_MD);
    if (bad) {
        siam_rpc_stream_free(s);
        return siam_rpc_status_set(st, SIAM_RPC_INTERNAL, "cannot start %s", method);
    }
    /* the server's initial metadata proves it is there and serves the method */
    if (wait_ops(s, OP_MD | OP_RECV_MD, st, "answer to the stream's start")) {
        siam_rpc_stream_free(s);
        explain_failure(ch, method, st, op_timeout_s);
        return st->code;
    }
    *out = s;
    return siam_rpc_status_set(st, SIAM_RPC_OK, "%s", "");
}

int siam_rpc_stream_send(siam_rpc_stream *s, siam_rpc_buf *req, siam_rpc_status *st) {
    if (s->dead) {
        siam_rpc_buf_free(req);
        *st = s->failure;
        return st->code;
    }
    if (s->in_flight) {
        siam_rpc_buf_free(req);
        return siam_rpc_status_set(st, SIAM_RPC_FAILED_PRECONDITION,
                                   "%s: a message is already waiting for its answer", s->method);
    }
    s->send = siam_rpc_take_payload(req);
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = s->send;
    int bad = start_op(s, &op, 1, OP_SEND);
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &s->recv;
    bad = bad || start_op(s, &op, 1, OP_RECV);
    if (bad) /* receive() reports the call's status */
        grpc_call_cancel(s->call, NULL);
    s->in_flight = 1;
    s->start_failed = bad;
    return siam_rpc_status_set(st, SIAM_RPC_OK, "%s", "");
}

int siam_rpc_stream_receive(siam_rpc_stream *s, siam_rpc_buf *resp, siam_rpc_status *st) {
    resp->data = NULL;
    resp->len = 0;
    if (!s->in_flight) {
        if (s->dead) {
            *st = s->failure;
            return st->code;
        }
        return siam_rpc_status_set(st, SIAM_RPC_FAILED_PRECONDITION,
                                   "%s: receive without a message sent", s->method);
    }
    s->in_flight = 0;
    int rc = wait_ops(s, OP_SEND | OP_RECV, st, "answer");
    if (!rc && s->start_failed)
        rc = stream_fail(s, st);
    grpc_byte_buffer_destroy(s->send);
    s->send = NULL;
    if (!rc && !s->recv) { /* the server closed the stream instead of answering */
        int ok;
        gpr_timespec deadline = after(s->op_timeout);
        while (!s->status_done)
            if (!next_event(s, deadline, &ok))
                return stream_timeout(s, st, "status");
        rc = stream_fail(s, st);
    }
    if (s->recv) {
        if (!rc && siam_rpc_flatten(s->recv, resp))
            rc = siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                     "%s: out of memory for an answer of %zu bytes", s->method,
                                     grpc_byte_buffer_length(s->recv));
        grpc_byte_buffer_destroy(s->recv);
        s->recv = NULL;
    }
    if (rc) {
        siam_rpc_buf_free(resp);
        return rc;
    }
    return siam_rpc_status_set(st, SIAM_RPC_OK, "%s", "");
}

int siam_rpc_stream_exchange(siam_rpc_stream *s, siam_rpc_buf *req, siam_rpc_buf *resp,
                             siam_rpc_status *st) {
    resp->data = NULL;
    resp->len = 0;
    int rc = siam_rpc_stream_send(s, req, st);
    return rc ? rc : siam_rpc_stream_receive(s, resp, st);
}

int siam_rpc_stream_close(siam_rpc_stream *s, siam_rpc_status *st) {
    if (s->dead) {
        *st = s->failure;
        return st->code;
    }
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    if (start_op(s, &op, 1, OP_CLOSE) == 0) {
        gpr_timespec deadline = after(s->op_timeout);
        while (s->pending & (OP_CLOSE | OP_STATUS)) {
            int ok;
            if (!next_event(s, deadline, &ok))
                return stream_timeout(s, st, "final status");
        }
    }
    if (!s->status_done || s->code != GRPC_STATUS_OK)
        return stream_fail(s, st);
    s->dead = 1;
    siam_rpc_status_set(&s->failure, SIAM_RPC_FAILED_PRECONDITION, "%s: stream already closed",
                        s->method);
    return siam_rpc_status_set(st, SIAM_RPC_OK, "%s", "");
}

void siam_rpc_stream_free(siam_rpc_stream *s) {
    if (!s)
        return;
    if (s->call) {
        if (s->pending)
            grpc_call_cancel(s->call, NULL);
        int ok;
        while (s->pending)
            next_event(s, gpr_inf_future(GPR_CLOCK_REALTIME), &ok);
        grpc_call_unref(s->call);
    }
    if (s->send)
        grpc_byte_buffer_destroy(s->send);
    if (s->recv)
        grpc_byte_buffer_destroy(s->recv);
    if (s->cq)
        drain_and_destroy(s->cq);
    grpc_slice_unref(s->details);
    grpc_metadata_array_destroy(&s->md_in);
    grpc_metadata_array_destroy(&s->trailing);
    free(s->method);
    free(s);
}
