/* siam_weight_sync: a worker's side of weight averaging. Sends the model's parameters to
 * siam-server (SyncWeights) and adopts the averaged global parameters it answers with, bit for
 * bit (in fp32; in another encoding, as decoded). The first call (samples 0) joins: the worker
 * starts from the global model, waiting, visibly, while the server waits for --min-workers workers.
 * With a retry policy, a call that fails with a transient code is sent again, the same bytes (same
 * round, samples and parameters), after the policy's wait: the server averages a resent report once
 * (see server/siam_averaging.h). */
#ifndef SIAM_WEIGHT_SYNC_H
#define SIAM_WEIGHT_SYNC_H

#include <stdint.h>

#include "siam_error.h"
#include "siam_model.h"
#include "siam_retry.h"
#include "siam_rpc.h"

typedef struct {
    siam_rpc_channel *ch;  /* borrowed */
    siam_retry *retry;     /* borrowed; NULL: a failed call is an error */
    const char *server;    /* the address, for messages */
    const char *worker_id; /* unique per worker */
    double timeout;        /* longest wait for a round to close (beyond the server's timeout) */
    int encoding;          /* siam_encoding of the parameters both ways (0: fp32) */
    uint64_t round;        /* round of the global parameters last adopted */
    uint64_t syncs, late;  /* rounds taken part in; updates that came too late */
    double wait_seconds;   /* total time spent in SyncWeights reports (not the join) */
} siam_weight_sync;

/* A siam_sync_fn (ctx is a siam_weight_sync). Replaces m's parameters with the global ones.
 * Errors: SIAM_ERR_IO naming the server and the gRPC status (FAILED_PRECONDITION when the
 * server's model differs, with both specs; a transient code once the retry budget is spent);
 * SIAM_ERR_FORMAT when the answer does not fit m. */
int siam_weight_sync_fn(void *ctx, siam_model *m, uint64_t samples, uint64_t step, siam_error *err);

#endif
