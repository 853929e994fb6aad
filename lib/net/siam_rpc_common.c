/* siam_rpc_common: status codes, owned buffers, process start and stop of the gRPC core (its log
 * goes through siam_rpc_log). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

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

int siam_rpc_init(void) {
    /* getaddrinfo instead of c-ares: names resolve as everywhere else on the host (/etc/hosts),
     * and c-ares leaks a few bytes per resolution in Debian's build */
    setenv("GRPC_DNS_RESOLVER", "native", 0);
    siam_rpc_log_capture(grpc_version_string()); /* before grpc_init: its first lines too */
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
