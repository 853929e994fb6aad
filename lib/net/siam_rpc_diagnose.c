/* siam_rpc_diagnose: why a channel's call failed to connect, when TLS is why: which side refused
 * what, found by comparing a probe's view of the server's certificate with --tls-ca and the
 * clock. */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/string_util.h>
#include <grpc/support/time.h>

#include "siam_log.h"
#include "siam_rpc_diagnose.h"
#include "siam_rpc_internal.h"
#include "siam_x509.h"

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
        grpc_call *call =
            chan ? grpc_channel_create_call(chan, NULL, GRPC_PROPAGATE_DEFAULTS, cq, path, NULL,
                                            siam_rpc_deadline(timeout_s), NULL)
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
        siam_rpc_cq_destroy(cq);
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
static void ca_names(const siam_rpc_client_tls *tls, char *buf, size_t n) {
    buf[0] = '\0';
    for (int i = 0; i < tls->n_cas && i < 2; i++)
        say(buf + strlen(buf), n - strlen(buf), "%s'%s'", i ? ", " : "", tls->cas[i].subject);
    if (tls->total_cas > 2)
        say(buf + strlen(buf), n - strlen(buf), " and %d more", tls->total_cas - 2);
}

/* Why the client refused the server's certificate ("certificate verify failed"). */
static void explain_server_cert(const siam_rpc_client_tls *tls, const char *leaf_pem, char *why,
                                size_t n) {
    siam_x509_cert c;
    siam_error e = {0};
    char t[64], cas[SIAM_X509_TEXT_MAX * 2 + 32];
    if (!leaf_pem || siam_x509_parse_pem(leaf_pem, 0, &c, &e) != SIAM_OK) {
        say(why, n,
            "the client rejected the server's certificate: it is not signed by --tls-ca %s, "
            "or it expired (gRPC: certificate verify failed)",
            tls->ca);
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
    for (int i = 0; i < tls->n_cas; i++)
        known |= siam_x509_issued_by_name(&c, &tls->cas[i]);
    ca_names(tls, cas, sizeof cas);
    if (known)
        say(why, n,
            "the client rejected the server's certificate: '%s' names '%s' as its issuer, "
            "which is in --tls-ca %s, but that CA did not sign it (another CA of the same "
            "name, or an intermediate certificate missing from the server's --tls-cert)",
            c.subject, c.issuer, tls->ca);
    else if (c.issuer_len == c.subject_len && c.issuer_crc == c.subject_crc)
        say(why, n,
            "the client rejected the server's certificate: unknown CA: '%s' is self-signed, "
            "not signed by --tls-ca %s (%s)",
            c.subject, tls->ca, cas);
    else
        say(why, n,
            "the client rejected the server's certificate: unknown CA: '%s' is issued by "
            "'%s', not by --tls-ca %s (%s)",
            c.subject, c.issuer, tls->ca, cas);
}

void siam_rpc_explain_tls_failure(const char *target, const siam_rpc_client_tls *tls,
                                  const char *method, siam_rpc_status *st, double timeout_s) {
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
    if (!tls->ca) {
        if (closed && tls_probe(target, NULL, method, timeout_s, &leaf)) {
            int parsed = leaf && siam_x509_parse_pem(leaf, 0, &c, &e) == SIAM_OK;
            say(why, sizeof why,
                "the server at %s requires TLS%s%s%s%s%s: give --tls-ca with the CA "
                "certificate that signed it",
                target, parsed ? " (its certificate is '" : "", parsed ? c.subject : "",
                parsed ? "', issued by '" : "", parsed ? c.issuer : "", parsed ? "')" : "");
        }
    } else if (name) {
        char host[200];
        name += strlen("Peer name ");
        const char *end = strstr(name, " is not in peer certificate");
        size_t l = end ? (size_t)(end - name) : strcspn(name, " ");
        say(host, sizeof host, "%.*s", (int)(l < sizeof host ? l : sizeof host - 1), name);
        char certnames[SIAM_X509_TEXT_MAX + 8] = "?";
        if (tls_probe(target, tls->server_name, method, timeout_s, &leaf) && leaf &&
            siam_x509_parse_pem(leaf, 0, &c, &e) == SIAM_OK)
            say(certnames, sizeof certnames, "%s", c.names[0] ? c.names : c.subject);
        say(why, sizeof why,
            "the client rejected the server's certificate: name mismatch: the certificate is "
            "for '%s', connected to '%s' (connect by a name in it, or check one of them with "
            "--tls-server-name)",
            certnames, host);
    } else if (strstr(m, "certificate verify failed")) {
        tls_probe(target, tls->server_name, method, timeout_s, &leaf);
        explain_server_cert(tls, leaf, why, sizeof why);
    } else if (strstr(m, "wrong version number") || strstr(m, "unknown protocol") ||
               strstr(m, "packet length too long") || strstr(m, "record layer failure")) {
        say(why, sizeof why,
            "the server at %s does not speak TLS (started without --tls-cert and "
            "--tls-key?): drop --tls-ca, or start the server with TLS",
            target);
    } else if (closed) {
        if (tls_probe(target, tls->server_name, method, timeout_s, &leaf)) {
            if (!tls->cert)
                say(why, sizeof why,
                    "the server requires a client certificate (mutual TLS): give --tls-cert "
                    "and --tls-key, a certificate signed by the CA of the server's "
                    "--tls-client-ca");
            else if ((int64_t)time(NULL) > tls->client_cert.not_after) {
                siam_x509_format_time(tls->client_cert.not_after, t, sizeof t);
                say(why, sizeof why,
                    "the server rejected this client's certificate (mutual TLS): --tls-cert "
                    "%s expired on %s; renew it",
                    tls->cert, t);
            } else
                say(why, sizeof why,
                    "the server rejected this client's certificate (mutual TLS: --tls-cert "
                    "%s, '%s' issued by '%s', is not signed by the server's "
                    "--tls-client-ca)",
                    tls->cert, tls->client_cert.subject, tls->client_cert.issuer);
        }
    } else if (strstr(m, "empty address list")) {
        char lines[1024];
        siam_rpc_tls_log_get(lines, sizeof lines);
        if (strstr(lines, "root certificates"))
            say(why, sizeof why, "gRPC cannot load the CA certificates of --tls-ca %s", tls->ca);
        else if (strstr(lines, "private key") || strstr(lines, "cert chain"))
            say(why, sizeof why,
                "gRPC cannot load --tls-cert %s with its --tls-key (the key does not match "
                "the certificate?)",
                tls->cert ? tls->cert : "?");
    } else if (strstr(m, "Ssl handshake failed") && strstr(m, "SSL_ERROR_SSL")) {
        const char *r = strstr(m, "SSL routines::");
        say(why, sizeof why, "the TLS handshake with the server at %s failed: %s", target,
            r ? r + strlen("SSL routines::") : m);
    }
    free(leaf);
    if (why[0]) {
        LOG_DEBUG("rpc", "%s: gRPC said UNAVAILABLE: %s", target, m);
        siam_rpc_status_set(st, SIAM_RPC_UNAUTHENTICATED, "TLS: %s", why);
    }
}
