/* siam_rpc_common: status codes, owned buffers, process start and stop of the gRPC core. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "siam_auth.h"
#include "siam_log.h"

#include "siam_rpc.h"
#include "siam_rpc_internal.h"

static const char *const code_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *siam_rpc_code_name(int code) {
    if (code < 0 || code >= (int)(sizeof code_names / sizeof code_names[0]))
        return "UNKNOWN_CODE";
    return code_names[code];
}

int siam_rpc_status_set(siam_rpc_status *st, int code, const char *fmt, ...) {
    if (st) {
        st->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->msg, sizeof st->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void siam_rpc_buf_free(siam_rpc_buf *b) {
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

int siam_rpc_status_is_permanent(const siam_rpc_status *st) {
    switch (st->code) {
    case SIAM_RPC_UNAUTHENTICATED:
    case SIAM_RPC_PERMISSION_DENIED:
    case SIAM_RPC_INVALID_ARGUMENT:
    case SIAM_RPC_FAILED_PRECONDITION:
    case SIAM_RPC_UNIMPLEMENTED:
        return 1;
    default:
        return 0;
    }
}

/* ---- gRPC's log ---------------------------------------------------------------------------- */

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

/* Copies msg to out with every registered secret (in any of its forms) replaced by "[token]".
 * Called with log_lock. */
static void scrub(const char *msg, char *out, size_t n) {
    size_t o = 0;
    while (*msg && o + 1 < n) {
        size_t hit = 0;
        for (int i = 0; i < MAX_SECRETS && !hit; i++)
            for (int f = 0; f < SECRET_FORMS && !hit && secrets[i][0]; f++)
                if (strncmp(msg, secrets[i][f], strlen(secrets[i][f])) == 0)
                    hit = strlen(secrets[i][f]);
        if (hit) {
            o += (size_t)snprintf(out + o, n - o, "[token]");
            msg += hit;
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
 * debug level: the caller reports the failure in its own words. TLS lines are also kept for the
 * rpc layer to explain failures, and a TLS server turns handshake errors into warnings. Every
 * line is scrubbed of the registered secrets first. */
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
    LOG_DEBUG("grpc", "%s:%d: %s", a->file, a->line, msg);
    if (server)
        tls_server_line(msg, client_ca);
}

int siam_rpc_init(void) {
    /* getaddrinfo instead of c-ares: names resolve as everywhere else on the host (/etc/hosts),
     * and c-ares leaks a few bytes per resolution in Debian's build */
    setenv("GRPC_DNS_RESOLVER", "native", 0);
    gpr_set_log_function(grpc_log_to_siam);
    /* gRPC logs the peer of a failed TLS handshake only at debug level; such lines are rare
     * (a few at start, one per failed connection), so take them all unless the user chose */
    if (!getenv("GRPC_VERBOSITY"))
        gpr_set_log_verbosity(GPR_LOG_SEVERITY_DEBUG);
    grpc_init();
    return SIAM_OK;
}

void siam_rpc_shutdown(void) {
    grpc_shutdown();
}

const char *siam_rpc_core_version(void) {
    return grpc_version_string();
}

int siam_rpc_flatten(grpc_byte_buffer *bb, siam_rpc_buf *out) {
    out->data = NULL;
    out->len = 0;
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb))
        return -1;
    size_t n = grpc_byte_buffer_length(bb), off = 0;
    uint8_t *p = malloc(n ? n : 1);
    grpc_slice s;
    while (grpc_byte_buffer_reader_next(&r, &s)) {
        size_t l = GRPC_SLICE_LENGTH(s);
        if (p && off + l <= n)
            memcpy(p + off, GRPC_SLICE_START_PTR(s), l);
        off += l;
        grpc_slice_unref(s);
    }
    grpc_byte_buffer_reader_destroy(&r);
    if (!p || off != n) {
        free(p);
        return -1;
    }
    out->data = p;
    out->len = n;
    return 0;
}

static void free_bytes(void *p) {
    free(p);
}

grpc_byte_buffer *siam_rpc_take_payload(siam_rpc_buf *b) {
    grpc_slice s = b->len ? grpc_slice_new(b->data, b->len, free_bytes) : grpc_empty_slice();
    if (!b->len)
        free(b->data);
    b->data = NULL;
    b->len = 0;
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

grpc_arg siam_rpc_int_arg(const char *key, int value) {
    grpc_arg a;
    memset(&a, 0, sizeof a);
    a.type = GRPC_ARG_INTEGER;
    a.key = (char *)key;
    a.value.integer = value;
    return a;
}

gpr_timespec siam_rpc_deadline(double seconds) {
    if (seconds <= 0)
        return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_micros((int64_t)(seconds * 1e6), GPR_TIMESPAN));
}

void siam_rpc_cq_destroy(grpc_completion_queue *cq) {
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}
