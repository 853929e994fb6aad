/* siam_error: fills the caller's message buffer; the library never prints or exits. */
#include "siam_error.h"

#include <stdarg.h>
#include <stdio.h>

int siam_error_set(siam_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *siam_error_name(int code) {
    switch (code) {
    case SIAM_OK:
        return "ok";
    case SIAM_ERR_IO:
        return "io";
    case SIAM_ERR_FORMAT:
        return "format";
    case SIAM_ERR_NOMEM:
        return "nomem";
    case SIAM_ERR_ARG:
        return "argument";
    case SIAM_ERR_MISMATCH:
        return "mismatch";
    case SIAM_ERR_LIMIT:
        return "limit";
    }
    return "unknown";
}
