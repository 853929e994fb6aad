/* siam_cli_remote: the connection options, channel and calls of siam-client's one-shot
 * subcommands, with one-line errors that name the server, the status and the fix. */
#include "siam_cli_remote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_log.h"
#include "siam_wire.h"

#define COMPONENT "client"

void siam_cli_remote_options(siam_cli_remote *r, const char *prog, siam_option *out) {
    memset(r, 0, sizeof *r);
    r->prog = prog;
    r->server = "127.0.0.1:50051";
    r->timeout = 60.0f;
    r->max_message_mb = 16;
    int n = 0;
    out[n++] = (siam_option){"server",   SIAM_OPT_STRING,
                             &r->server, 0,
                             0,          NULL,
                             "ADDR",     "siam-server address (host:port)"};
    out[n++] = (siam_option){"timeout",   SIAM_OPT_FLOAT,
                             &r->timeout, 0.1,
                             86400,       NULL,
                             "SECONDS",   "longest wait for the server's answer to each call"};
    out[n++] = (siam_option){"max-message-mb",
                             SIAM_OPT_INT,
                             &r->max_message_mb,
                             1,
                             2047,
                             NULL,
                             "MB",
                             "largest gRPC message sent or received"};
    out[n++] = (siam_option){"tls-ca",
                             SIAM_OPT_STRING,
                             &r->tls_ca,
                             0,
                             0,
                             NULL,
                             "PEM",
                             "connect with TLS; the server's certificate must be signed by a CA "
                             "in this file"};
    out[n++] = (siam_option){"tls-cert",
                             SIAM_OPT_STRING,
                             &r->tls_cert,
                             0,
                             0,
                             NULL,
                             "PEM",
                             "mutual TLS: this client's certificate (with --tls-key)"};
    out[n++] =
        (siam_option){"tls-key",   SIAM_OPT_STRING,
                      &r->tls_key, 0,
                      0,           NULL,
                      "PEM",       "mutual TLS: the certificate's private key (unencrypted)"};
    out[n++] = (siam_option){"tls-server-name",
                             SIAM_OPT_STRING,
                             &r->tls_server_name,
                             0,
                             0,
                             NULL,
                             "NAME",
                             "the name the server's certificate must hold (default: the host of "
                             "--server)"};
    out[n++] = (siam_option){"auth-token-file",
                             SIAM_OPT_STRING,
                             &r->auth_token_file,
                             0,
                             0,
                             NULL,
                             "PATH",
                             "send 'authorization: Bearer <token>' on every call, the token on "
                             "the file's first line"};
}

int siam_cli_remote_check(siam_cli_remote *r) {
    if (!r->tls_ca && (r->tls_cert || r->tls_key || r->tls_server_name)) {
        fprintf(stderr,
                "%s: --tls-cert, --tls-key and --tls-server-name need --tls-ca (the CA "
                "certificate that signed the server's certificate)\n",
                r->prog);
        return 2;
    }
    if (!r->tls_cert != !r->tls_key) {
        fprintf(stderr, "%s: mutual TLS needs both --tls-cert and --tls-key\n", r->prog);
        return 2;
    }
    if (r->auth_token_file) {
        char warning[SIAM_ERROR_MSG_MAX];
        siam_error err = {0};
        if (siam_auth_token_load("--auth-token-file", r->auth_token_file, r->token, sizeof r->token,
                                 warning, sizeof warning, &err)) {
            fprintf(stderr, "%s: %s\n", r->prog, err.msg);
            return 2;
        }
        if (warning[0])
            LOG_WARN(COMPONENT, "%s", warning);
        if (!r->tls_ca)
            LOG_WARN(COMPONENT, "--auth-token-file without --tls-ca: the token is sent in clear "
                                "text, readable by anyone on the network path; use TLS");
    }
    return 0;
}

int siam_cli_remote_open(siam_cli_remote *r) {
    siam_error err = {0};
    siam_rpc_channel_config cc = {.target = r->server,
                                  .max_message_bytes = (size_t)r->max_message_mb * 1024u * 1024u,
                                  .tls_ca = r->tls_ca,
                                  .tls_cert = r->tls_cert,
                                  .tls_key = r->tls_key,
                                  .tls_server_name = r->tls_server_name,
                                  .auth_token = r->token[0] ? r->token : NULL};
    if (siam_rpc_channel_create_ex(&r->ch, &cc, &err) != SIAM_OK) {
        fprintf(stderr, "%s: %s\n", r->prog, err.msg);
        return 2;
    }
    return 0;
}

void siam_cli_remote_close(siam_cli_remote *r) {
    siam_rpc_channel_free(r->ch);
    r->ch = NULL;
    siam_auth_wipe(r->token, sizeof r->token);
}

int siam_cli_remote_try(siam_cli_remote *r, const char *method, const uint8_t *req, size_t len,
                        siam_rpc_buf *resp, siam_rpc_status *st) {
    static const uint8_t empty[1];
    *st = (siam_rpc_status){0};
    int code = siam_rpc_call(r->ch, method, req ? req : empty, len, (double)r->timeout, resp, st);
    if (code != SIAM_RPC_OK)
        siam_rpc_buf_free(resp);
    return code;
}

/* 1 when the server answers Status (so an UNAVAILABLE came from it, not from the network). */
static int server_answers(siam_cli_remote *r) {
    static const uint8_t empty[1];
    siam_rpc_buf resp = {0};
    siam_rpc_status st = {0};
    double timeout = r->timeout < 5.0f ? (double)r->timeout : 5.0;
    int code = siam_rpc_call(r->ch, SIAM_METHOD_STATUS, empty, 0, timeout, &resp, &st);
    siam_rpc_buf_free(&resp);
    return code == SIAM_RPC_OK;
}

void siam_cli_remote_report(siam_cli_remote *r, const char *rpc, const siam_rpc_status *st) {
    int code = st->code;
    const char *msg = st->msg[0] ? st->msg : "no message";
    if (code == SIAM_RPC_UNAVAILABLE && (strcmp(rpc, "Status") == 0 || !server_answers(r)))
        fprintf(stderr,
                "%s: cannot reach siam-server at %s (%s: %s). Is it running? Start it with: "
                "siam-server --listen %s\n",
                r->prog, r->server, siam_rpc_code_name(code), msg, r->server);
    else if (code == SIAM_RPC_DEADLINE_EXCEEDED)
        fprintf(stderr,
                "%s: siam-server at %s did not answer %s within --timeout %g s (%s: %s); is it "
                "overloaded or stopped? Try a longer --timeout\n",
                r->prog, r->server, rpc, (double)r->timeout, siam_rpc_code_name(code), msg);
    else if (code == SIAM_RPC_UNIMPLEMENTED)
        fprintf(stderr,
                "%s: siam-server at %s has no %s (%s: %s): it is older than this client; "
                "upgrade it\n",
                r->prog, r->server, rpc, siam_rpc_code_name(code), msg);
    else if (code == SIAM_RPC_UNAUTHENTICATED && !r->token[0] && strncmp(msg, "TLS: ", 5) != 0)
        fprintf(stderr,
                "%s: error: siam-server at %s: %s: %s: %s (give the token with "
                "--auth-token-file PATH)\n",
                r->prog, r->server, rpc, siam_rpc_code_name(code), msg);
    else
        fprintf(stderr, "%s: error: siam-server at %s: %s: %s: %s\n", r->prog, r->server, rpc,
                siam_rpc_code_name(code), msg);
}

int siam_cli_remote_call(siam_cli_remote *r, const char *rpc, const char *method,
                         const uint8_t *req, size_t len, siam_rpc_buf *resp) {
    siam_rpc_status st;
    if (siam_cli_remote_try(r, method, req, len, resp, &st) == SIAM_RPC_OK)
        return 0;
    siam_cli_remote_report(r, rpc, &st);
    return 1;
}

int siam_cli_remote_status(siam_cli_remote *r, Siam__V1__StatusResponse **out) {
    siam_rpc_buf resp = {0};
    *out = NULL;
    if (siam_cli_remote_call(r, "Status", SIAM_METHOD_STATUS, NULL, 0, &resp))
        return 1;
    *out = siam__v1__status_response__unpack(NULL, resp.len, resp.data);
    siam_rpc_buf_free(&resp);
    if (!*out) {
        fprintf(stderr, "%s: error: siam-server at %s: the Status answer is not a StatusResponse\n",
                r->prog, r->server);
        return 1;
    }
    return 0;
}

int siam_cli_parse_shape(const char *s, int *h, int *w, int *c) {
    char tail;
    if (!s || sscanf(s, "%dx%dx%d%c", h, w, c, &tail) != 3 || *h < 1 || *w < 1 || *c < 1 ||
        *h > 65536 || *w > 65536 || *c > 64)
        return -1;
    return 0;
}
