/* siam_auth: bearer tokens. Reading the token file (first line, trimmed, printable ASCII), a
 * constant-time comparison, and the check of an "authorization: Bearer <token>" value. Nothing
 * here ever puts a token (or what a caller sent) into a message or a log line. */
#ifndef SIAM_AUTH_H
#define SIAM_AUTH_H

#include <stddef.h>

#include "siam_error.h"

/* Longest token accepted, in bytes. */
#define SIAM_AUTH_TOKEN_MAX 4096

/* Reads the token from path: the first line, surrounding spaces, tabs and CR trimmed; it must be
 * 1..SIAM_AUTH_TOKEN_MAX characters of printable ASCII without spaces (0x21..0x7e; gRPC sends
 * metadata values as ASCII). token gets it NUL-terminated (size must be > SIAM_AUTH_TOKEN_MAX; a
 * little more leaves room for the whitespace around it). Errors: SIAM_ERR_IO (missing, unreadable,
 * a directory) or SIAM_ERR_FORMAT (empty, too long, a control or non-ASCII character), the message
 * naming flag ("--auth-token-file"), the path and the fix. A file that group or others may read is
 * accepted (Kubernetes and Docker mount secrets 0644 by default) with *warning (may be NULL) saying
 * so; otherwise *warning is "". */
int siam_auth_token_load(const char *flag, const char *path, char *token, size_t size,
                         char *warning, size_t warning_size, siam_error *err);

/* The expected token, zero-padded to a fixed size so that comparing it takes the same time
 * whatever its length and contents. */
typedef struct {
    unsigned char bytes[SIAM_AUTH_TOKEN_MAX];
    size_t len;
} siam_auth_secret;

/* SIAM_ERR_ARG when token is empty or longer than SIAM_AUTH_TOKEN_MAX. */
int siam_auth_secret_set(siam_auth_secret *s, const char *token, size_t len);
/* Overwrites the secret (also what the compiler might otherwise drop as a dead store). */
void siam_auth_secret_clear(siam_auth_secret *s);

/* 1 when given (glen bytes) equals the secret, else 0. Copies given into a zero-padded buffer
 * of SIAM_AUTH_TOKEN_MAX bytes, then ORs the XORs of all SIAM_AUTH_TOKEN_MAX bytes of both (word
 * by word, no early exit) and folds the length difference in without a branch: the time depends
 * on neither the secret's contents nor its length, only on glen (the caller's own input, which
 * is copied and wiped). Its cost is in docs/BENCHMARKS.md. */
int siam_auth_secret_equal(const siam_auth_secret *s, const char *given, size_t glen);

typedef enum {
    SIAM_AUTH_OK = 0,
    SIAM_AUTH_MISSING,   /* no authorization metadata */
    SIAM_AUTH_MALFORMED, /* not "Bearer <token>" */
    SIAM_AUTH_WRONG,     /* a token, not this one */
} siam_auth_result;

/* Checks an authorization value ("Bearer <token>", the scheme case-insensitive; value NULL =
 * none sent) against the secret. */
siam_auth_result siam_auth_check_bearer(const siam_auth_secret *s, const char *value, size_t vlen);

/* Overwrites n bytes at p. */
void siam_auth_wipe(void *p, size_t n);

#endif
