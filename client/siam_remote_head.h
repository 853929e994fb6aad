/* siam_remote_head: the loss head as a Train stream to siam-server. Every call sends one
 * EmbeddingBatch and waits for its BatchResult, which is checked against the request (step,
 * number of distances and gradients) before the trainer backpropagates it. */
#ifndef SIAM_REMOTE_HEAD_H
#define SIAM_REMOTE_HEAD_H

#include <stdint.h>

#include "siam_error.h"
#include "siam_rpc.h"
#include "siam_trainer.h"

typedef struct {
    siam_rpc_stream *stream; /* an open Train stream (borrowed) */
    const char *server;      /* the address, for messages */
    const char *worker_id;   /* sent with every batch */
    uint64_t step;           /* step number of the next batch */
    double rpc_seconds;      /* wall time spent on the server's answer (encode, send, wait,
                                decode), not counting the idle work done while it computes */
} siam_remote_head;

/* A siam_loss_head_fn (ctx is a siam_remote_head). Sends the batch, runs idle (the trainer's
 * gather of the next batch) while the server computes, then waits for the answer. A failed call
 * becomes SIAM_ERR_IO with a message naming the server and the gRPC status ("siam-server at
 * 127.0.0.1:50051: UNAVAILABLE:
 * ..."); an answer that does not match the request is SIAM_ERR_FORMAT. */
int siam_remote_head_fn(void *ctx, const float *left, const float *right, const uint32_t *labels,
                        int B, int dim, float *loss, float *dist, float *grad_left,
                        float *grad_right, siam_idle_fn idle, void *idle_ctx, siam_error *err);

#endif
