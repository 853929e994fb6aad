/* siam_rpc_common: status codes, owned buffers, process start and stop of the gRPC core. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <grpc/grpc.h>
#include <grpc/support/log.h>

#include "siam_log.h"

#include "siam_rpc.h"

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

/* gRPC's own log lines (e.g. the bind error behind "cannot listen on ...") go to siam's log at
 * debug level: the caller reports the failure in its own words. */
static void grpc_log_to_siam(gpr_log_func_args *a) {
    LOG_DEBUG("grpc", "%s:%d: %s", a->file, a->line, a->message);
}

int siam_rpc_init(void) {
    /* getaddrinfo instead of c-ares: names resolve as everywhere else on the host (/etc/hosts),
     * and c-ares leaks a few bytes per resolution in Debian's build */
    setenv("GRPC_DNS_RESOLVER", "native", 0);
    gpr_set_log_function(grpc_log_to_siam);
    grpc_init();
    return SIAM_OK;
}

void siam_rpc_shutdown(void) {
    grpc_shutdown();
}

const char *siam_rpc_core_version(void) {
    return grpc_version_string();
}
