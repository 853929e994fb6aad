/* siam_rpc_tls: the TLS files and the bearer token of a server or a channel, read and checked
 * before gRPC sees them, so that a wrong file is reported by the flag that named it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "siam_log.h"
#include "siam_rpc_internal.h"
#include "siam_rpc_tls.h"

#define COMPONENT "rpc"

void siam_rpc_wipe_free(void *p) {
    siam_auth_wipe(p, strlen(p));
    free(p);
}

static void free_secret(char *pem) {
    if (pem)
        siam_rpc_wipe_free(pem);
}

static char *dup_or_null(const char *p, int *oom) {
    char *d = p ? strdup(p) : NULL;
    if (p && !d)
        *oom = 1;
    return d;
}

/* gRPC's TLS lines (siam_rpc_tls_log_get) after it refused a certificate and key: when they say
 * that the key does not match the certificate, sets *err so and returns its code, else 0. */
static int key_mismatch(const char *lines, const char *cert_path, const char *key_path,
                        siam_error *err) {
    if (!strstr(lines, "Invalid private key"))
        return 0;
    return siam_error_set(err, SIAM_ERR_FORMAT,
                          "--tls-key %s does not match the certificate in --tls-cert %s (or is "
                          "damaged): give the key the certificate was made for",
                          key_path, cert_path);
}

/* ---- server ---------------------------------------------------------------------------- */

int siam_rpc_server_security_load(siam_rpc_server_security *s, const siam_rpc_server_config *cfg,
                                  siam_error *err) {
    s->secret_slot = -1;
    if (cfg->auth_token) {
        size_t len = strlen(cfg->auth_token);
        if (siam_auth_secret_set(&s->secret, cfg->auth_token, len) != SIAM_OK)
            return siam_error_set(err, SIAM_ERR_ARG, "the bearer token must be 1 to %d characters",
                                  SIAM_AUTH_TOKEN_MAX);
        s->has_token = 1;
        s->secret_slot = siam_rpc_secret_add(cfg->auth_token, len);
    }
    if (!cfg->tls_cert && !cfg->tls_key && !cfg->tls_client_ca)
        return SIAM_OK;
    if (!cfg->tls_cert || !cfg->tls_key)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "TLS needs both --tls-cert and --tls-key (the server's certificate "
                              "and its private key)%s",
                              cfg->tls_client_ca && !cfg->tls_cert && !cfg->tls_key
                                  ? "; --tls-client-ca only adds client certificates to them"
                                  : "");
    int oom = 0;
    s->cert_path = dup_or_null(cfg->tls_cert, &oom);
    s->key_path = dup_or_null(cfg->tls_key, &oom);
    s->client_ca_path = dup_or_null(cfg->tls_client_ca, &oom);
    if (oom)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
    char warning[SIAM_ERROR_MSG_MAX];
    int rc = siam_pem_load("--tls-cert", cfg->tls_cert, SIAM_PEM_CERTIFICATES, &s->cert_pem, NULL,
                           0, err);
    if (!rc)
        rc = siam_pem_load("--tls-key", cfg->tls_key, SIAM_PEM_PRIVATE_KEY, &s->key_pem, warning,
                           sizeof warning, err);
    if (!rc && warning[0])
        LOG_WARN(COMPONENT, "%s", warning);
    if (!rc && cfg->tls_client_ca)
        rc = siam_pem_load("--tls-client-ca", cfg->tls_client_ca, SIAM_PEM_CERTIFICATES,
                           &s->client_ca_pem, NULL, 0, err);
    return rc;
}

void siam_rpc_server_security_log(const siam_rpc_server_security *s) {
    if (s->cert_pem) {
        siam_x509_cert c;
        siam_error e = {0};
        if (siam_x509_parse_pem(s->cert_pem, 0, &c, &e) == SIAM_OK) {
            char until[64], from[64];
            siam_x509_format_time(c.not_after, until, sizeof until);
            siam_x509_format_time(c.not_before, from, sizeof from);
            LOG_INFO(COMPONENT,
                     "TLS: certificate '%s' (%s) issued by '%s', valid until %s, from %s",
                     c.subject, c.names[0] ? c.names : "no subjectAltName", c.issuer, until,
                     s->cert_path);
            time_t now = time(NULL);
            if ((int64_t)now > c.not_after)
                LOG_WARN(COMPONENT,
                         "TLS: --tls-cert %s expired on %s: every client will refuse it; renew "
                         "the certificate",
                         s->cert_path, until);
            else if ((int64_t)now < c.not_before)
                LOG_WARN(COMPONENT,
                         "TLS: --tls-cert %s is valid only from %s: clients will refuse it until "
                         "then (check the clocks)",
                         s->cert_path, from);
            else if (c.not_after - (int64_t)now < 14 * 86400)
                LOG_WARN(COMPONENT, "TLS: --tls-cert %s expires soon, on %s: renew it",
                         s->cert_path, until);
        }
        if (s->client_ca_pem) {
            siam_x509_cert ca;
            char names[SIAM_X509_TEXT_MAX * 2] = "";
            for (int i = 0; siam_x509_parse_pem(s->client_ca_pem, i, &ca, &e) == SIAM_OK; i++)
                if (strlen(names) + strlen(ca.subject) + 8 < sizeof names)
                    snprintf(names + strlen(names), sizeof names - strlen(names), "%s'%s'",
                             i ? ", " : "", ca.subject);
            LOG_INFO(COMPONENT,
                     "TLS: mutual TLS: every client must present a certificate signed by %s "
                     "(--tls-client-ca %s)",
                     names, s->client_ca_path);
        } else {
            LOG_INFO(COMPONENT, "TLS: clients are not asked for certificates (no --tls-client-ca)");
        }
    }
    if (s->has_token)
        LOG_INFO(COMPONENT, "every call needs the bearer token (the health check too)%s",
                 s->cert_pem ? "" : "; without TLS it travels in clear text");
}

int siam_rpc_server_security_bind_error(const siam_rpc_server_security *s, siam_error *err) {
    char lines[1024];
    siam_rpc_tls_log_get(lines, sizeof lines);
    int rc = key_mismatch(lines, s->cert_path, s->key_path, err);
    if (rc)
        return rc;
    if (strstr(lines, "cert chain"))
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "--tls-cert %s: gRPC cannot load the certificate chain (%s)",
                              s->cert_path, lines);
    if (strstr(lines, "root certificate") || strstr(lines, "verification certs"))
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "--tls-client-ca %s: gRPC cannot load CA certificates from it (%s)",
                              s->client_ca_path ? s->client_ca_path : "?", lines);
    if (strstr(lines, "secure server") || strstr(lines, "andshaker factory"))
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "gRPC refuses the TLS files --tls-cert %s / --tls-key %s: %s",
                              s->cert_path, s->key_path, lines);
    return 0;
}

void siam_rpc_server_security_free(siam_rpc_server_security *s) {
    free_secret(s->key_pem);
    free(s->cert_pem);
    free(s->client_ca_pem);
    free(s->cert_path);
    free(s->key_path);
    free(s->client_ca_path);
    siam_auth_secret_clear(&s->secret);
    siam_rpc_secret_remove(s->secret_slot);
    memset(s, 0, sizeof *s);
    s->secret_slot = -1;
}

/* ---- client ---------------------------------------------------------------------------- */

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
    int rc = key_mismatch(lines, cert_path, key_path, err);
    if (rc)
        return rc;
    if (strstr(lines, "cert chain"))
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "--tls-cert %s: gRPC cannot load the certificate (%s)", cert_path,
                              lines);
    return SIAM_OK; /* could not bind (no loopback?): connecting will tell */
}

grpc_channel_credentials *siam_rpc_client_tls_load(siam_rpc_client_tls *t,
                                                   const siam_rpc_channel_config *cfg,
                                                   siam_error *err) {
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
    t->ca = dup_or_null(cfg->tls_ca, &oom);
    t->cert = dup_or_null(cfg->tls_cert, &oom);
    t->server_name = dup_or_null(cfg->tls_server_name, &oom);
    t->cas = calloc(SIAM_RPC_MAX_CAS, sizeof *t->cas);
    if (oom || !t->cas) {
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
        if (t->n_cas < SIAM_RPC_MAX_CAS)
            t->cas[t->n_cas++] = c;
        t->total_cas++;
    }
    if (cfg->tls_cert) {
        if (siam_pem_load("--tls-cert", cfg->tls_cert, SIAM_PEM_CERTIFICATES, &cert, NULL, 0,
                          err) ||
            siam_pem_load("--tls-key", cfg->tls_key, SIAM_PEM_PRIVATE_KEY, &key, warning,
                          sizeof warning, err) ||
            siam_x509_parse_pem(cert, 0, &t->client_cert, err) ||
            check_key_pair(cert, key, cfg->tls_cert, cfg->tls_key, err))
            goto out;
        if (warning[0])
            LOG_WARN(COMPONENT, "%s", warning);
    }
    grpc_ssl_pem_key_cert_pair pair = {key, cert};
    creds = grpc_ssl_credentials_create_ex(ca, cert ? &pair : NULL, NULL, NULL);
    if (!creds)
        siam_error_set(err, SIAM_ERR_ARG, "gRPC refuses the TLS credentials");
out:
    free_secret(ca);
    free_secret(cert);
    free_secret(key);
    return creds;
}

void siam_rpc_client_tls_free(siam_rpc_client_tls *t) {
    free(t->ca);
    free(t->cert);
    free(t->server_name);
    free(t->cas);
    memset(t, 0, sizeof *t);
}
