/* fuzz_common: what the libFuzzer targets in tests/fuzz/ share.
 *
 * Input format of the targets that take several messages (fuzz_train, fuzz_sync), also written
 * by make_corpus.c: one config byte, then records of
 *     [ctrl: 1 byte][length: 2 bytes, little endian][length bytes: one protobuf message]
 * the last record may be cut short (it then holds what is left). The meaning of the config and
 * ctrl bits is each target's own.
 *
 * A violated invariant prints what went wrong and aborts, which libFuzzer reports as a crash
 * and saves the input. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_log.h"
#include "siam_model.h"
#include "siam_rpc.h"
#include "siam_service.h"

/* At most this many records are read from one input: keeps every input's work bounded. */
#define FUZZ_MAX_RECORDS 64

#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz invariant violated at %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct {
    const uint8_t *p;
    size_t left;
    int records;
} fuzz_reader;

static inline void fuzz_reader_init(fuzz_reader *r, const uint8_t *data, size_t size) {
    r->p = data;
    r->left = size;
    r->records = 0;
}

/* The next record: 1 with *ctrl, *msg and *len set, 0 at the end of the input. */
static inline int fuzz_next(fuzz_reader *r, uint8_t *ctrl, const uint8_t **msg, size_t *len) {
    if (r->left == 0 || r->records >= FUZZ_MAX_RECORDS)
        return 0;
    *ctrl = r->p[0];
    size_t n = 0;
    if (r->left >= 3)
        n = (size_t)r->p[1] | (size_t)r->p[2] << 8;
    size_t head = r->left >= 3 ? 3 : r->left;
    r->p += head;
    r->left -= head;
    if (n > r->left)
        n = r->left;
    *msg = r->p;
    *len = n;
    r->p += n;
    r->left -= n;
    r->records++;
    return 1;
}

/* The answer of a unary call agrees with its return code: OK with a response buffer, or a
 * failure with a message and no buffer. */
static inline void fuzz_check_outcome(int rc, const siam_rpc_status *st, const siam_rpc_buf *resp,
                                      const char *what) {
    FUZZ_CHECK(rc == st->code, "%s: returned %d but the status says %d", what, rc, st->code);
    if (rc == SIAM_RPC_OK) {
        FUZZ_CHECK(resp->data != NULL, "%s: OK without a response buffer", what);
    } else {
        FUZZ_CHECK(resp->data == NULL && resp->len == 0, "%s: %s left a response buffer", what,
                   siam_rpc_code_name(rc));
        FUZZ_CHECK(st->msg[0] != '\0', "%s: %s without a message", what, siam_rpc_code_name(rc));
        FUZZ_CHECK(memchr(st->msg, '\0', sizeof st->msg) != NULL, "%s: unterminated message", what);
    }
}

/* A response buffer the service must overwrite before it returns. */
static inline siam_rpc_buf fuzz_garbage_buf(void) {
    siam_rpc_buf b = {(uint8_t *)(uintptr_t)0x1, 99};
    return b;
}

/* The service logs joins and rounds at INFO; a fuzzer runs them thousands of times a second.
 * SIAM_FUZZ_LOG=1 keeps them and has the targets trace what they call with which outcome (to
 * read what an input does: ./fuzz_sync FILE). */
static int fuzz_trace;

static inline void fuzz_quiet_logs(void) {
    const char *v = getenv("SIAM_FUZZ_LOG");
    fuzz_trace = v && strcmp(v, "1") == 0;
    if (!fuzz_trace)
        siam_log_set_level(SIAM_LOG_ERROR);
}

#define FUZZ_TRACE(...)                                                                            \
    do {                                                                                           \
        if (fuzz_trace)                                                                            \
            fprintf(stderr, "fuzz: " __VA_ARGS__);                                                 \
    } while (0)

/* A service for the targets that keep one for the whole run, created into *out (margin, conv),
 * averaging with min_workers and a 1 h sync timeout (rounds close only when the target says), and
 * the global model `spec` (weights from seed) at round/step. Returns the model built for it (the
 * caller frees it). Any failure aborts. */
static inline siam_model *
fuzz_service_with_model(siam_service **out, float margin, siam_label_convention conv,
                        int min_workers,
                        void (*reply)(void *, siam_rpc_buf *, const siam_rpc_status *),
                        const char *spec, uint64_t seed, uint64_t round, uint64_t step) {
    siam_error err;
    FUZZ_CHECK(siam_service_create(out, margin, conv, 0, "fuzz", &err) == SIAM_OK, "create: %s",
               err.msg);
    siam_service *svc = *out;
    FUZZ_CHECK(siam_service_start_averaging(svc, min_workers, 3600.0, NULL, NULL, reply, &err) ==
                   SIAM_OK,
               "start_averaging: %s", err.msg);
    siam_model *m = NULL;
    FUZZ_CHECK(siam_model_create(&m, spec, seed, &err) == SIAM_OK, "model: %s", err.msg);
    FUZZ_CHECK(siam_service_set_model(svc, siam_model_spec(m), siam_model_params(m),
                                      siam_model_num_params(m), round, step, &err) == SIAM_OK,
               "set_model: %s", err.msg);
    return m;
}

#endif
