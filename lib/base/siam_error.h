/* siam_error: error codes and a message buffer that every library call fills on failure. */
#ifndef SIAM_ERROR_H
#define SIAM_ERROR_H

enum {
    SIAM_OK = 0,
    SIAM_ERR_IO = 1,       /* a file could not be opened, read or written */
    SIAM_ERR_FORMAT = 2,   /* a file or message is malformed, truncated or corrupt */
    SIAM_ERR_NOMEM = 3,    /* an allocation failed */
    SIAM_ERR_ARG = 4,      /* a caller passed an invalid argument */
    SIAM_ERR_MISMATCH = 5, /* well-formed but incompatible (model spec, sizes) */
    SIAM_ERR_LIMIT = 6,    /* a documented size limit would be passed (e.g. a store is full) */
};

#define SIAM_ERROR_MSG_MAX 512

typedef struct {
    int code;
    char msg[SIAM_ERROR_MSG_MAX];
} siam_error;

/* Records code and a printf-style message in err (err may be NULL); returns code. */
int siam_error_set(siam_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Short name of a code ("io", "format", ...). */
const char *siam_error_name(int code);

#endif
