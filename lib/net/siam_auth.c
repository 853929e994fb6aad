/* siam_auth: the token file, the constant-time comparison, the Bearer check. */
#include "siam_auth.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

void siam_auth_wipe(void *p, size_t n) {
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

int siam_auth_secret_set(siam_auth_secret *s, const char *token, size_t len) {
    siam_auth_secret_clear(s);
    if (len == 0 || len > SIAM_AUTH_TOKEN_MAX)
        return SIAM_ERR_ARG;
    memcpy(s->bytes, token, len);
    s->len = len;
    return SIAM_OK;
}

void siam_auth_secret_clear(siam_auth_secret *s) {
    siam_auth_wipe(s->bytes, sizeof s->bytes);
    s->len = 0;
}

int siam_auth_secret_equal(const siam_auth_secret *s, const char *given, size_t glen) {
    if (glen > SIAM_AUTH_TOKEN_MAX) /* public bound: says nothing about the secret */
        return 0;
    /* what was sent, zero-padded like the secret: then every comparison walks the same
     * SIAM_AUTH_TOKEN_MAX bytes (copying depends on glen only, which the caller chose) */
    unsigned char g[SIAM_AUTH_TOKEN_MAX];
    memset(g, 0, sizeof g);
    memcpy(g, given, glen);
    /* lengths: a nonzero difference sets the top bit, without a branch */
    size_t dl = s->len ^ glen;
    uint64_t acc = (uint64_t)((dl | (0 - dl)) >> (sizeof dl * 8 - 1));
    /* OR of the XORs of all words: no early exit */
    for (size_t i = 0; i < SIAM_AUTH_TOKEN_MAX; i += sizeof(uint64_t)) {
        uint64_t a, b;
        memcpy(&a, s->bytes + i, sizeof a);
        memcpy(&b, g + i, sizeof b);
        acc |= a ^ b;
    }
    siam_auth_wipe(g, glen);
    volatile uint64_t result = acc; /* the decision is taken on the whole reduction */
    return result == 0;
}

siam_auth_result siam_auth_check_bearer(const siam_auth_secret *s, const char *value, size_t vlen) {
    static const char scheme[] = "bearer ";
    const size_t n = sizeof scheme - 1;
    if (!value)
        return SIAM_AUTH_MISSING;
    if (vlen <= n)
        return SIAM_AUTH_MALFORMED;
    for (size_t i = 0; i < n; i++) {
        char c = value[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != scheme[i])
            return SIAM_AUTH_MALFORMED;
    }
    return siam_auth_secret_equal(s, value + n, vlen - n) ? SIAM_AUTH_OK : SIAM_AUTH_WRONG;
}

int siam_auth_token_load(const char *flag, const char *path, char *token, size_t size,
                         char *warning, size_t warning_size, siam_error *err) {
    static const char fix[] = "put the token on its first line, e.g. head -c 32 /dev/urandom | "
                              "base64 >FILE; chmod 600 FILE";
    if (warning && warning_size)
        warning[0] = '\0';
    if (size <= SIAM_AUTH_TOKEN_MAX)
        return siam_error_set(err, SIAM_ERR_ARG, "token buffer too small");
    token[0] = '\0';
    struct stat sb;
    if (stat(path, &sb) != 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            return siam_error_set(err, SIAM_ERR_IO, "%s %s: no such file (%s)", flag, path, fix);
        return siam_error_set(err, SIAM_ERR_IO, "%s %s: %s", flag, path, strerror(e));
    }
    if (S_ISDIR(sb.st_mode))
        return siam_error_set(err, SIAM_ERR_IO, "%s %s is a directory, expected a file (%s)", flag,
                              path, fix);
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        if (e == EACCES)
            return siam_error_set(err, SIAM_ERR_IO,
                                  "%s %s: permission denied (make it readable by the user this "
                                  "program runs as, and by nobody else: chmod 600)",
                                  flag, path);
        return siam_error_set(err, SIAM_ERR_IO, "%s %s: %s", flag, path, strerror(e));
    }
    /* the first line, read into the caller's buffer (no copy of the token elsewhere) */
    size_t n = 0;
    int c, too_long = 0;
    while ((c = fgetc(f)) != EOF && c != '\n') {
        if (n + 1 < size)
            token[n++] = (char)c;
        else
            too_long = 1;
    }
    int read_error = ferror(f);
    fclose(f);
    if (read_error) {
        siam_auth_wipe(token, n);
        return siam_error_set(err, SIAM_ERR_IO, "%s %s: read error", flag, path);
    }
    size_t a = 0, b = n;
    while (a < b && (token[a] == ' ' || token[a] == '\t' || token[a] == '\r'))
        a++;
    while (b > a && (token[b - 1] == ' ' || token[b - 1] == '\t' || token[b - 1] == '\r'))
        b--;
    size_t len = b - a;
    int rc = SIAM_OK;
    if (len == 0)
        rc = siam_error_set(err, SIAM_ERR_FORMAT, "%s %s: %s (%s)", flag, path,
                            n == 0 && c == EOF ? "the file is empty" : "its first line is empty",
                            fix);
    else if (too_long || len > SIAM_AUTH_TOKEN_MAX)
        rc = siam_error_set(err, SIAM_ERR_FORMAT,
                            "%s %s: the token is longer than %d characters (%s)", flag, path,
                            SIAM_AUTH_TOKEN_MAX, fix);
    else
        for (size_t i = a; i < b; i++) {
            unsigned char ch = (unsigned char)token[i];
            if (ch < 0x21 || ch > 0x7e) {
                /* the position and the kind of character, never the character itself */
                rc = siam_error_set(
                    err, SIAM_ERR_FORMAT,
                    "%s %s: the token has %s at position %zu; a token is printable ASCII without "
                    "spaces (%s)",
                    flag, path,
                    ch == ' ' || ch == '\t' ? "a space"
                    : ch >= 0x80            ? "a non-ASCII byte"
                                            : "a control character",
                    i - a + 1, fix);
                break;
            }
        }
    if (rc) {
        siam_auth_wipe(token, n);
        return rc;
    }
    memmove(token, token + a, len);
    siam_auth_wipe(token + len, n - len);
    token[len] = '\0';
    if ((sb.st_mode & 077) && warning && warning_size)
        snprintf(warning, warning_size,
                 "%s %s is open to group or others (mode %04o): chmod 600 %s (accepted: secrets "
                 "mounted by Kubernetes and Docker are often 0644)",
                 flag, path, (unsigned)(sb.st_mode & 07777), path);
    return SIAM_OK;
}
