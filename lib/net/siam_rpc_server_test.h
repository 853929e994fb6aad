/* siam_rpc_server_test: what the unit tests look at inside a running server (no gRPC types). */
#ifndef SIAM_RPC_SERVER_TEST_H
#define SIAM_RPC_SERVER_TEST_H

#include <time.h>

#include "siam_rpc.h"

/* The clock of the condition variable that siam_rpc_server_stop waits on for the grace period
 * (CLOCK_MONOTONIC, so that a step of the wall clock neither stretches nor cuts it). */
clockid_t siam_rpc_server_wait_clock(const siam_rpc_server *s);

#endif
