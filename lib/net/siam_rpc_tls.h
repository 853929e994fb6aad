/* siam_rpc_tls: reading and checking the TLS files and the bearer token of a server or a channel
 * (internal to lib/net: gRPC types). */
#ifndef SIAM_RPC_TLS_H
#define SIAM_RPC_TLS_H

#include <grpc/grpc_security.h>

#include "siam_auth.h"
#include "siam_rpc.h"
#include "siam_x509.h"

/* free() for a secret (a private key, "Bearer <token>"): wipes the string first. Also a
 * grpc_slice_new destroy function. */
void siam_rpc_wipe_free(void *p);

/* ---- server ---- */

/* What a server presents and requires: TLS (cert_pem NULL: plaintext), the files' contents and
 * their paths for messages, and the bearer token. */
typedef struct {
    char *cert_pem, *key_pem, *client_ca_pem;
    char *cert_path, *key_path, *client_ca_path;
    int has_token, secret_slot; /* secret_slot: siam_rpc_secret_add's, -1 = none */
    siam_auth_secret secret;
} siam_rpc_server_security;

/* Takes cfg's token and reads and checks its TLS files (messages name them by siam-server's
 * flags). *sec must be zeroed; free it with siam_rpc_server_security_free also after a failure. */
int siam_rpc_server_security_load(siam_rpc_server_security *sec, const siam_rpc_server_config *cfg,
                                  siam_error *err);
/* After binding: logs what the server presents and asks for, and what will go wrong with it. */
void siam_rpc_server_security_log(const siam_rpc_server_security *sec);
/* gRPC refused the TLS files while binding (its log lines say why): sets *err in terms of the
 * files and returns its code, or 0 when the lines do not name a TLS file. */
int siam_rpc_server_security_bind_error(const siam_rpc_server_security *sec, siam_error *err);
void siam_rpc_server_security_free(siam_rpc_server_security *sec);

/* ---- client ---- */

#define SIAM_RPC_MAX_CAS 32 /* CA certificates of --tls-ca summarised for messages */

/* A channel's TLS settings, kept for explaining failures (ca NULL: plaintext). */
typedef struct {
    char *ca, *cert, *server_name; /* the paths of --tls-ca, --tls-cert; the name checked */
    siam_x509_cert *cas;           /* the first n_cas certificates of ca, of total_cas */
    int n_cas, total_cas;
    siam_x509_cert client_cert; /* valid when cert */
} siam_rpc_client_tls;

/* Reads and checks cfg's TLS files (messages name them --tls-ca, --tls-cert, --tls-key) into *t
 * (zeroed before) and returns the credentials, or NULL with *err set. Free *t with
 * siam_rpc_client_tls_free either way. */
grpc_channel_credentials *siam_rpc_client_tls_load(siam_rpc_client_tls *t,
                                                   const siam_rpc_channel_config *cfg,
                                                   siam_error *err);
void siam_rpc_client_tls_free(siam_rpc_client_tls *t);

#endif
