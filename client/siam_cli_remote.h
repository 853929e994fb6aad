/* siam_cli_remote: what siam-client's one-shot subcommands that call a server (search,
 * gallery-add) share: the connection options (--server, TLS, the token, --timeout), the channel,
 * one unary call whose failure is printed as one line naming the server, the status and the fix,
 * and the server's Status. */
#ifndef SIAM_CLI_REMOTE_H
#define SIAM_CLI_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "siam/v1/siam.pb-c.h"
#include "siam_auth.h"
#include "siam_options.h"
#include "siam_rpc.h"

typedef struct {
    const char *prog; /* "siam-client search": the prefix of every message */
    const char *server, *tls_ca, *tls_cert, *tls_key, *tls_server_name, *auth_token_file;
    float timeout;
    int max_message_mb;
    char token[SIAM_AUTH_TOKEN_MAX + 64]; /* from auth_token_file; wiped by siam_cli_remote_close */
    siam_rpc_channel *ch;
} siam_cli_remote;

/* Options siam_cli_remote_options fills: --server --timeout --max-message-mb --tls-ca --tls-cert
 * --tls-key --tls-server-name --auth-token-file. */
#define SIAM_CLI_REMOTE_N_OPTIONS 8

/* Sets r's defaults (server 127.0.0.1:50051, timeout 60 s, 16 MB) and writes its options to out
 * (SIAM_CLI_REMOTE_N_OPTIONS entries). */
void siam_cli_remote_options(siam_cli_remote *r, const char *prog, siam_option *out);

/* After the command line is parsed: checks that the TLS options hold together and reads the
 * token file. Returns 0, or 2 after printing why (a bad command line). */
int siam_cli_remote_check(siam_cli_remote *r);

/* Creates the channel (siam_rpc_init must have been called). Returns 0, or 2 after printing why
 * (unusable TLS files). */
int siam_cli_remote_open(siam_cli_remote *r);

/* Frees the channel and wipes the token. */
void siam_cli_remote_close(siam_cli_remote *r);

/* One unary call at method with r's timeout, printing nothing: returns the code (st filled);
 * on OK *resp holds the answer. */
int siam_cli_remote_try(siam_cli_remote *r, const char *method, const uint8_t *req, size_t len,
                        siam_rpc_buf *resp, siam_rpc_status *st);

/* Prints the failure st of a call of rpc as one line (see siam_cli_remote_call). An UNAVAILABLE
 * is "cannot reach" only when the server does not answer Status either; otherwise the server's
 * own UNAVAILABLE (e.g. a gallery still being embedded) is passed on with its message. */
void siam_cli_remote_report(siam_cli_remote *r, const char *rpc, const siam_rpc_status *st);

/* One unary call of rpc ("Search") at method with r's timeout. Returns 0 with *resp filled, or 1
 * after printing one line: the server unreachable (and how to start it), a method the server does
 * not have (upgrade it), or the server's status passed on with its message. */
int siam_cli_remote_call(siam_cli_remote *r, const char *rpc, const char *method,
                         const uint8_t *req, size_t len, siam_rpc_buf *resp);

/* The server's Status (*out: free with siam__v1__status_response__free_unpacked). Returns 0, or 1
 * after printing why. */
int siam_cli_remote_status(siam_cli_remote *r, Siam__V1__StatusResponse **out);

/* Parses a Status input_shape "HxWxC" into h, w, c. Returns 0, or -1 when it is not that. */
int siam_cli_parse_shape(const char *s, int *h, int *w, int *c);

#endif
