/* bench_callers.h: N callers, each on its own channel (so its own connection), sending one
 * pre-encoded unary request back to back for a timed window; the latency of every call. Shared by
 * the similarity and search suites. */
#ifndef BENCH_CALLERS_H
#define BENCH_CALLERS_H

#include <stddef.h>
#include <stdint.h>

#include "bench_stats.h"
#include "siam_rpc.h"

/* Checks one answer: OK, or a failure code with what is wrong in st. */
typedef int (*bench_check_fn)(const siam_rpc_buf *resp, const void *ctx, siam_rpc_status *st);

typedef struct {
    const char *server, *method;
    const char *rpc; /* "Similarity": names it in failure messages */
    const uint8_t *req;
    size_t len;
    bench_check_fn check; /* NULL: any OK answer */
    const void *check_ctx;
    int callers;
    double seconds;
} bench_calls;

typedef struct {
    bench_percentiles lat_us; /* over every OK call of every caller in the window */
    double elapsed;           /* seconds from the common start to the last caller's end */
    double calls_per_s;
    uint64_t failures; /* the first one is printed */
} bench_calls_result;

/* Runs the callers: each connects and makes one untimed call (checked), then all start together
 * and call until the window ends. siam_rpc_init must have been called. 0, or -1 when out of
 * memory or a thread cannot start. */
int bench_calls_run(const bench_calls *b, bench_calls_result *out);

#endif
