/* siam_rpc_log: gRPC's own log lines, captured (gpr_set_log_function), scrubbed of bearer tokens
 * and turned into siam's log; the TLS lines among them are kept to explain TLS failures.
 *
 * Everything here depends on the gRPC C core of Debian's libgrpc-dev 1.51 (core version 29.x):
 * that gpr_set_log_function receives every line (later versions made it a no-op, then removed
 * it: gRPC's lines would then go to stderr unscrubbed) and what the lines say (the TLS texts
 * matched below, the byte dumps of GRPC_TRACE). The build refuses another core major version;
 * at run time a core other than the one built against keeps its lines out of the log. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <grpc/grpc.h>
#include <grpc/support/log.h>

#include "siam_auth.h"
#include "siam_log.h"
#include "siam_rpc_internal.h"

/* CMake passes the version pkg-config reports for grpc: the core version, 29.0.0 for gRPC 1.51.
 * What breaks with another core, and what to re-verify before allowing it, is in the message. */
// clang-format off
#if !defined(SIAM_GRPC_CORE_VERSION) || !defined(SIAM_GRPC_CORE_MAJOR)
#error "siam_rpc_log.c needs SIAM_GRPC_CORE_VERSION and SIAM_GRPC_CORE_MAJOR: CMakeLists.txt sets them from pkg-config's grpc version"
#endif
#if SIAM_GRPC_CORE_MAJOR != 29
#error "gRPC core is not version 29 (see -DSIAM_GRPC_CORE_VERSION): siam_rpc_log.c was verified only with core 29 (gRPC 1.51, Debian 12's libgrpc-dev). Later cores ignore gpr_set_log_function, then remove it: gRPC's log lines, GRPC_TRACE's dumps of the authorization header included, would reach stderr with no bearer token scrubbed. Re-verify before allowing another version: how gRPC's log is captured; tests/log_token_test.sh (no token in any log under GRPC_TRACE=all); the TLS texts matched by is_tls_line and tls_server_line (tests/tls_test.sh)."
#endif
// clang-format on

#define TLS_LINES   4
#define MAX_SECRETS 4

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char tls_lines[TLS_LINES][512]; /* ring of the last TLS lines */
static int tls_next, tls_count;
static int tls_server;          /* this process serves TLS */
static char tls_client_ca[300]; /* its --tls-client-ca ("" without mutual TLS) */
/* each secret as sent and as gRPC's traces dump bytes ("73 33 63", lower and upper case) */
#define SECRET_FORMS 3
static char *secrets[MAX_SECRETS][SECRET_FORMS];
static int secret_refs[MAX_SECRETS]; /* channels and servers with that token */
/* 1 when gRPC's lines go to siam's log (at debug level), 0 when the core that runs is not the
 * one this file was built for and checked with: its lines may then say things (a token in a new
 * form) that the scrubbing does not know, so they are left out. */
static int print_lines = 1;

void siam_rpc_tls_log_reset(void) {
    pthread_mutex_lock(&log_lock);
    tls_next = tls_count = 0;
    pthread_mutex_unlock(&log_lock);
}

void siam_rpc_tls_log_get(char *buf, size_t n) {
    if (!n)
        return;
    buf[0] = '\0';
    pthread_mutex_lock(&log_lock);
    size_t used = 0;
    for (int i = 0; i < tls_count && used + 1 < n; i++) {
        int k = (tls_next - tls_count + i + TLS_LINES) % TLS_LINES;
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? " | " : "", tls_lines[k]);
    }
    pthread_mutex_unlock(&log_lock);
}

void siam_rpc_tls_server_role(int on, const char *client_ca) {
    pthread_mutex_lock(&log_lock);
    tls_server = on;
    snprintf(tls_client_ca, sizeof tls_client_ca, "%s", client_ca ? client_ca : "");
    pthread_mutex_unlock(&log_lock);
}

static char *hex_form(const char *secret, size_t len, const char *digits) {
    char *h = malloc(len * 3);
    if (!h)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)secret[i];
        h[3 * i] = digits[c >> 4];
        h[3 * i + 1] = digits[c & 15];
        h[3 * i + 2] = i + 1 < len ? ' ' : '\0';
    }
    return h;
}

static void free_forms(char **forms) {
    for (int f = 0; f < SECRET_FORMS; f++)
        if (forms[f]) {
            siam_auth_wipe(forms[f], strlen(forms[f]));
            free(forms[f]);
            forms[f] = NULL;
        }
}

int siam_rpc_secret_add(const char *secret, size_t len) {
    if (!len)
        return -1;
    char *forms[SECRET_FORMS] = {malloc(len + 1), hex_form(secret, len, "0123456789abcdef"),
                                 hex_form(secret, len, "0123456789ABCDEF")};
    if (!forms[0] || !forms[1] || !forms[2]) {
        free(forms[0]);
        forms[0] = NULL;
        free_forms(forms);
        return -1;
    }
    memcpy(forms[0], secret, len);
    forms[0][len] = '\0';
    int slot = -1, shared = 0;
    pthread_mutex_lock(&log_lock);
    for (int i = 0; i < MAX_SECRETS && slot < 0; i++) /* the same token again: share its slot */
        if (secrets[i][0] && strcmp(secrets[i][0], forms[0]) == 0) {
            secret_refs[i]++;
            slot = i;
            shared = 1;
        }
    for (int i = 0; i < MAX_SECRETS && slot < 0; i++)
        if (!secrets[i][0]) {
            memcpy(secrets[i], forms, sizeof forms);
            secret_refs[i] = 1;
            slot = i;
        }
    pthread_mutex_unlock(&log_lock);
    if (slot < 0 || shared)
        free_forms(forms);
    if (slot < 0)
        LOG_WARN("rpc",
                 "more than %d different tokens in one process: gRPC's log lines are not "
                 "scrubbed of the newest",
                 MAX_SECRETS);
    return slot;
}

void siam_rpc_secret_remove(int slot) {
    if (slot < 0 || slot >= MAX_SECRETS)
        return;
    char *forms[SECRET_FORMS] = {NULL, NULL, NULL};
    pthread_mutex_lock(&log_lock);
    if (secret_refs[slot] > 0 && --secret_refs[slot] == 0) {
        memcpy(forms, secrets[slot], sizeof forms);
        memset(secrets[slot], 0, sizeof secrets[slot]);
    }
    pthread_mutex_unlock(&log_lock);
    free_forms(forms);
}

/* "authorization" and "Bearer " as gRPC's byte dumps write them (GRPC_TRACE=tcp: "READ DATA: 61
 * 75 ...", api: "key=authorization value=42 65 ..."): what follows them up to the dump's text
 * column is a header value. */
static const char *const dump_marks[] = {"61 75 74 68 6f 72 69 7a 61 74 69 6f 6e",
                                         "42 65 61 72 65 72 20"};

/* The length of the dump mark at msg, or 0. */
static size_t dump_mark(const char *msg) {
    for (size_t i = 0; i < sizeof dump_marks / sizeof dump_marks[0]; i++)
        if (strncasecmp(msg, dump_marks[i], strlen(dump_marks[i])) == 0)
            return strlen(dump_marks[i]);
    return 0;
}

/* The length of the header value at msg that must not be shown (0: none), after *keep bytes
 * that may be: the header name "authorization" (in any case) and a separator (": ", " value=",
 * or one byte of a dump), then "Bearer " (either may come alone). The value ends at a space, a
 * quote or the end of the line; when it is a byte dump, at the dump's text column. This catches
 * tokens that were never registered: the wrong token a client sent to a server (another
 * deployment's, or this one's mistyped) is a secret too. */
static size_t header_value(const char *msg, size_t *keep) {
    static const char name[] = "authorization";
    const char *p = msg;
    if (strncasecmp(p, name, sizeof name - 1) == 0) {
        p += sizeof name - 1;
        if (p[0] == ':' && p[1] == ' ')
            p += 2;
        else if (strncmp(p, " value=", 7) == 0)
            p += 7;
        else if (*p && *p != ' ' && *p != '\'' && *p != '"')
            p++;
        else
            return 0;
        if (dump_mark(p)) {
            *keep = (size_t)(p - msg);
            return strcspn(p, "'\n");
        }
    }
    if (strncasecmp(p, "Bearer ", 7) == 0)
        p += 7;
    else if (p == msg)
        return 0;
    *keep = (size_t)(p - msg);
    return strcspn(p, " '\"\n");
}

/* Copies msg to out with every registered secret (in any of its forms) replaced by "[token]", and
 * every authorization header's value too, as text and in byte dumps (where the bytes after the
 * header's name, up to the dump's text column, go). Called with log_lock. */
static void scrub(const char *msg, char *out, size_t n) {
    size_t o = 0;
    while (*msg && o + 1 < n) {
        size_t hit = 0, keep = 0, value;
        for (int i = 0; i < MAX_SECRETS && !hit; i++)
            for (int f = 0; f < SECRET_FORMS && !hit && secrets[i][0]; f++)
                if (strncmp(msg, secrets[i][f], strlen(secrets[i][f])) == 0)
                    hit = strlen(secrets[i][f]);
        if (hit) {
            o += (size_t)snprintf(out + o, n - o, "[token]");
            msg += hit;
        } else if ((value = header_value(msg, &keep)) > 0) {
            o += (size_t)snprintf(out + o, n - o, "%.*s[token]", (int)keep, msg);
            msg += keep + value;
        } else if ((keep = dump_mark(msg)) > 0) {
            o += (size_t)snprintf(out + o, n - o, "%.*s [token] ", (int)keep, msg);
            msg += keep + strcspn(msg + keep, "'\n");
        } else {
            out[o++] = *msg++;
        }
    }
    out[o < n ? o : n - 1] = '\0';
}

static struct {
    int seen;
    double last;
    unsigned skipped;
} limits[SIAM_RPC_WARN_KINDS];

void siam_rpc_warn_limited(siam_rpc_warn_kind kind, int level, const char *fmt, ...) {
    if (level < siam_log_threshold)
        return;
    double now = siam_now();
    pthread_mutex_lock(&log_lock);
    if (limits[kind].seen && now - limits[kind].last < 10.0) {
        limits[kind].skipped++;
        pthread_mutex_unlock(&log_lock);
        return;
    }
    unsigned skipped = limits[kind].skipped;
    double since = limits[kind].seen ? now - limits[kind].last : 0;
    limits[kind].seen = 1;
    limits[kind].last = now;
    limits[kind].skipped = 0;
    pthread_mutex_unlock(&log_lock);
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (skipped)
        siam_log_write(level, "rpc", "%s (and %u more like it in the last %.0f s)", msg, skipped,
                       since);
    else
        siam_log_write(level, "rpc", "%s", msg);
}

static int is_tls_line(const char *file, const char *msg) {
    return strstr(file, "ssl_transport_security") || strstr(file, "ssl_security_connector") ||
           strstr(file, "tls_security_connector") || strstr(file, "security_handshaker") ||
           (strstr(file, "chttp2_server") && strstr(msg, "andshak"));
}

/* What a server's TLS line means for an operator (logged only when this process serves TLS):
 * gRPC 1.51 names no peer in its handshake errors, except when a client closed the connection. */
static void tls_server_line(const char *msg, const char *client_ca) {
    const char *reason = strstr(msg, "SSL routines::");
    if (strstr(msg, "Handshake failed with fatal error") && reason) {
        char r[200];
        snprintf(r, sizeof r, "%s", reason + strlen("SSL routines::"));
        size_t l = strlen(r);
        while (l && (r[l - 1] == '.' || r[l - 1] == '\n'))
            r[--l] = '\0';
        if (strstr(r, "peer did not return a certificate"))
            siam_rpc_warn_limited(SIAM_RPC_WARN_TLS_NO_CLIENT_CERT, SIAM_LOG_WARN,
                                  "TLS: refused a client without a certificate: mutual TLS "
                                  "(--tls-client-ca %s) requires one (siam-client --tls-cert and "
                                  "--tls-key)",
                                  client_ca);
        else if (strstr(r, "certificate verify failed"))
            siam_rpc_warn_limited(SIAM_RPC_WARN_TLS_CLIENT_CERT, SIAM_LOG_WARN,
                                  "TLS: refused a client's certificate: it does not verify against "
                                  "--tls-client-ca %s (signed by another CA, or expired)",
                                  client_ca[0] ? client_ca : "(none)");
        else if (strstr(r, "wrong version number") || strstr(r, "http request") ||
                 strstr(r, "unknown protocol") || strstr(r, "packet length too long"))
            siam_rpc_warn_limited(
                SIAM_RPC_WARN_TLS_NOT_TLS, SIAM_LOG_WARN,
                "TLS: refused a connection that does not speak TLS (%s): a client "
                "without --tls-ca?",
                r);
        else
            siam_rpc_warn_limited(SIAM_RPC_WARN_TLS_OTHER, SIAM_LOG_WARN,
                                  "TLS: a handshake with a client failed: %s", r);
    } else if (strstr(msg, "Handshaking failed") && strstr(msg, "Socket closed")) {
        const char *a = strstr(msg, "target_address:\"");
        char peer[128] = "a client";
        if (a) {
            a += strlen("target_address:\"");
            const char *q = strchr(a, '"');
            if (q && (size_t)(q - a) < sizeof peer)
                snprintf(peer, sizeof peer, "%.*s", (int)(q - a), a);
        }
        siam_rpc_warn_limited(SIAM_RPC_WARN_TLS_CLOSED, SIAM_LOG_INFO,
                              "TLS: %s closed the connection during the handshake (a client that "
                              "refused this server's certificate or name, or a bare TCP check)",
                              peer);
    } else if (strstr(msg, "No match found for server name: ")) {
        char name[200];
        snprintf(name, sizeof name, "%s", strstr(msg, "server name: ") + strlen("server name: "));
        size_t l = strlen(name);
        if (l && name[l - 1] == '.')
            name[l - 1] = '\0';
        siam_rpc_warn_limited(SIAM_RPC_WARN_TLS_SNI, SIAM_LOG_INFO,
                              "TLS: a client asked for the server name '%s', which this server's "
                              "certificate does not hold: the client will refuse the certificate "
                              "unless it checks a name that is in it (--tls-server-name)",
                              name);
    }
}

/* gRPC's own log lines (e.g. the bind error behind "cannot listen on ...") go to siam's log at
 * debug level: the caller reports the failure in its own words; a failed assertion of gRPC's,
 * after which it aborts the process, at error level, so that the log says why. TLS lines are also
 * kept for the rpc layer to explain failures, and a TLS server turns handshake errors into
 * warnings. Every line is scrubbed of the registered secrets first. */
static void grpc_log_to_siam(gpr_log_func_args *a) {
    char msg[2048];
    int server = 0;
    char client_ca[sizeof tls_client_ca];
    int tls = is_tls_line(a->file, a->message);
    pthread_mutex_lock(&log_lock);
    scrub(a->message, msg, sizeof msg);
    if (tls) {
        size_t l = strlen(msg) < sizeof tls_lines[0] - 1 ? strlen(msg) : sizeof tls_lines[0] - 1;
        memcpy(tls_lines[tls_next], msg, l);
        tls_lines[tls_next][l] = '\0';
        tls_next = (tls_next + 1) % TLS_LINES;
        if (tls_count < TLS_LINES)
            tls_count++;
        server = tls_server;
        memcpy(client_ca, tls_client_ca, sizeof client_ca);
    }
    pthread_mutex_unlock(&log_lock);
    if (strncmp(msg, "assertion failed", 16) == 0) /* gRPC aborts the process next */
        LOG_ERROR("grpc", "%s:%d: %s", a->file, a->line, msg);
    else if (print_lines)
        LOG_DEBUG("grpc", "%s:%d: %s", a->file, a->line, msg);
    if (server)
        tls_server_line(msg, client_ca);
}

int siam_rpc_log_capture(const char *core_version) {
    print_lines = strcmp(core_version, SIAM_GRPC_CORE_VERSION) == 0;
    if (!print_lines)
        LOG_WARN("rpc",
                 "gRPC core %s runs, but siam was built and checked against %s: gRPC's own log "
                 "lines (GRPC_TRACE, GRPC_VERBOSITY) are left out of the log, as they might show "
                 "a bearer token; rebuild siam against this gRPC",
                 core_version, SIAM_GRPC_CORE_VERSION);
    gpr_set_log_function(grpc_log_to_siam);
    /* gRPC logs the peer of a failed TLS handshake only at debug level; such lines are rare
     * (a few at start, one per failed connection), so take them all unless the user chose */
    if (!getenv("GRPC_VERBOSITY"))
        gpr_set_log_verbosity(GPR_LOG_SEVERITY_DEBUG);
    return print_lines;
}
