/* siam_rpc_diagnose: explains a channel's failed connection when TLS is why (internal to
 * lib/net). */
#ifndef SIAM_RPC_DIAGNOSE_H
#define SIAM_RPC_DIAGNOSE_H

#include "siam_rpc.h"
#include "siam_rpc_tls.h"

/* A call to method on target (a channel with the TLS settings tls) that failed to connect: if TLS
 * is why, st becomes UNAUTHENTICATED "TLS: ..." saying which side refused what
 * (siam_rpc_status_is_permanent then holds); other failures stay as they are. To tell the cases
 * apart it may connect once more with a probe that records the server's certificate and hangs up
 * in the handshake, waiting at most timeout_s (5 s when 0 or more). The probe names method: gRPC
 * connects only for a call, but the call is never sent, so the server never sees it. */
void siam_rpc_explain_tls_failure(const char *target, const siam_rpc_client_tls *tls,
                                  const char *method, siam_rpc_status *st, double timeout_s);

#endif
