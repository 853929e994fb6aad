/* siam_remote_head: the loss head as a Train stream to siam-server. Every call sends one
 * EmbeddingBatch and waits for its BatchResult, which is checked against the request (step,
 * number of distances and gradients) before the trainer backpropagates it.
 *
 * With a retry policy, a stream that fails with a transient code (the server died, restarted
 * or is shutting down) is reopened after the policy's wait and the same batch is sent again,
 * with the same step number; the call returns only with that batch's answer, so the trainer
 * takes exactly one optimizer step per batch however often it was sent. */
#ifndef SIAM_REMOTE_HEAD_H
#define SIAM_REMOTE_HEAD_H

#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

#include "siam_error.h"
#include "siam_retry.h"
#include "siam_rpc.h"
#include "siam_trainer.h"

typedef struct {
    siam_rpc_channel *ch;    /* borrowed: Train streams are opened on it */
    siam_rpc_stream *stream; /* the Train stream: opened by the first call and again after a
                                failure; the caller closes and frees it at the end */
    double timeout;          /* the stream's op timeout (seconds) */
    siam_retry *retry;       /* borrowed; NULL: a failed exchange is an error */
    uint64_t opened_after;   /* retry->reconnects when the stream was opened: a stream older
                                than another call's reconnect is reopened before use */
    const char *server;      /* the address, for messages */
    const char *worker_id;   /* sent with every batch */
    uint64_t step;           /* step number of the next batch */
    uint64_t resent;         /* batches sent again on a new stream after a failure */
    double rpc_seconds;      /* wall time spent on the server's answer (encode, send, wait,
                                decode), not counting the idle work done while it computes */
    const float *progress;   /* TrainSet: read at every set and sent as EmbeddingSet.progress,
                                the fraction of the worker's training done (the server's facenet
                                loss switches on it); NULL sends 0 */
    int encoding;            /* siam_encoding of the embeddings up and the gradients down
                                (siam-client --wire); 0 = fp32 */
    int omit_grad_right;     /* Train: ask the server to leave out grad_right (= -grad_left) */
    /* the split head (--in-flight): the requests sent and not yet answered, oldest first (their
     * steps are step, step + 1, ...), kept to be sent again on a new stream after a failure */
    siam_rpc_buf unanswered[SIAM_RPC_STREAM_WINDOW];
    int n_unanswered;
} siam_remote_head;

/* A siam_loss_head_fn (ctx is a siam_remote_head). Sends the batch, runs idle (the trainer's
 * gather of the next batch) while the server computes, then waits for the answer. A failed call
 * that is not retried becomes SIAM_ERR_IO with a message naming the server and the gRPC status
 * ("siam-server at 127.0.0.1:50051: UNAVAILABLE: ..."); an answer that does not match the
 * request is SIAM_ERR_FORMAT. */
int siam_remote_head_fn(void *ctx, const float *left, const float *right, const uint32_t *labels,
                        int B, int dim, float *loss, float *dist, float *grad_left,
                        float *grad_right, siam_idle_fn idle, void *idle_ctx, siam_error *err);

/* The same head in two halves for several batches in flight (siam_split_head, ctx a
 * siam_remote_head): send() packs the batch (step = the next unanswered step), keeps the bytes
 * and sends them on the Train stream; receive() waits for the oldest batch's answer. After a
 * transient failure receive() reopens the stream and sends every unanswered batch again, in
 * order with their steps, as h->retry allows. At most SIAM_RPC_STREAM_WINDOW unanswered. Errors as
 * siam_remote_head_fn's. Free the kept requests with siam_remote_head_free_unanswered. */
int siam_remote_head_send(void *ctx, const float *left, const float *right, const uint32_t *labels,
                          int B, int dim, siam_error *err);
int siam_remote_head_receive(void *ctx, int B, int dim, float *loss, float *dist, float *grad_left,
                             float *grad_right, siam_error *err);
void siam_remote_head_free_unanswered(siam_remote_head *h);

/* The exchange every remote head makes, whatever its messages: one request on h's stream of
 * `method` (opened when there is none or it is stale), idle run once while the server computes,
 * one answer into resp (the caller frees it); after a transient failure the stream is reopened
 * and req sent again as h->retry allows. rpc names the call in messages ("Train", "TrainSet").
 * Errors as siam_remote_head_fn's. h->step is not advanced: the caller does that once it has
 * checked the answer. */
int siam_remote_exchange(siam_remote_head *h, const char *method, const char *rpc,
                         const ProtobufCMessage *req, siam_idle_fn idle, void *idle_ctx,
                         siam_rpc_buf *resp, siam_error *err);

#endif
