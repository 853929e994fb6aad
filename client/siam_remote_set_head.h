/* siam_remote_set_head: the set loss head as a TrainSet stream to siam-server. Every call sends
 * one EmbeddingSet (the batch's n embeddings and random group ids, and the worker's training
 * progress from siam_remote_head.progress) and waits for its SetResult,
 * checked against the request (step, n x dim gradient) before the trainer backpropagates it. The
 * loss is the server's (siam-server --loss; Status names it).
 *
 * The stream, retries and step numbering are siam_remote_head's (siam_remote_exchange): a set
 * that fails with a transient code is sent again, with the same step, on a new stream, so the
 * trainer takes exactly one optimizer step per batch. */
#ifndef SIAM_REMOTE_SET_HEAD_H
#define SIAM_REMOTE_SET_HEAD_H

#include <stdint.h>

#include "siam_error.h"
#include "siam_remote_head.h"
#include "siam_set_loss.h"

/* A siam_set_head_fn (ctx is a siam_remote_head, whose stream is then a TrainSet stream: use one
 * siam_remote_head per kind of stream). SIAM_ERR_IO for a failed call that is not retried (naming
 * the server and the gRPC status), SIAM_ERR_FORMAT for an answer that does not match the set. */
int siam_remote_set_head_fn(void *ctx, const float *emb, const uint32_t *groups, int n, int dim,
                            float *loss, float *grad, siam_set_loss_stats *stats, siam_error *err);

#endif
