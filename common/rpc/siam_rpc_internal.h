/* siam_rpc_internal: helpers the rpc server and client share (gRPC types; not for other
 * modules). */
#ifndef SIAM_RPC_INTERNAL_H
#define SIAM_RPC_INTERNAL_H

#include <grpc/grpc.h>

#include "siam_rpc.h"

/* Copies a received message into one malloc'd buffer (*out). 0, or -1 when out of memory. */
int siam_rpc_flatten(grpc_byte_buffer *bb, siam_rpc_buf *out);

/* A byte buffer that takes *b's bytes without a copy (freed when gRPC is done with them);
 * *b is emptied. */
grpc_byte_buffer *siam_rpc_take_payload(siam_rpc_buf *b);

/* An integer channel argument. */
grpc_arg siam_rpc_int_arg(const char *key, int value);

#endif
