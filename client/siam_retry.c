/* siam_retry: the backoff schedule, the transient/permanent split, and the wait between
 * attempts (see the header for the rules). */
#include "siam_retry.h"

#include <math.h>
#include <stdio.h>
#include <time.h>

#include "siam_log.h"

#define COMPONENT "retry"

void siam_retry_init(siam_retry *r, double budget_s, uint64_t seed) {
    *r = (siam_retry){.budget = budget_s > 0 ? budget_s : 0,
                      .initial = SIAM_RETRY_INITIAL_S,
                      .cap = SIAM_RETRY_CAP_S};
    siam_rng_seed(&r->rng, seed);
}

int siam_retry_code_is_transient(int code) {
    return code == SIAM_RPC_UNAVAILABLE || code == SIAM_RPC_CANCELLED ||
           code == SIAM_RPC_DEADLINE_EXCEEDED || code == SIAM_RPC_ABORTED;
}

double siam_retry_ceiling(const siam_retry *r, int k) {
    double c = r->initial;
    for (int i = 0; i < k && c < r->cap; i++)
        c *= 2;
    return c < r->cap ? c : r->cap;
}

double siam_retry_used(const siam_retry *r, double now) {
    return r->failures ? now - r->started : 0.0;
}

double siam_retry_next_delay(siam_retry *r, double now) {
    if (r->failures == 0)
        r->started = now;
    int k = r->failures++;
    double used = now - r->started, left = r->budget - used;
    if (!(left > 0))
        return -1.0;
    /* full jitter: uniform in [0, ceiling), 53 random bits */
    double u = (double)(siam_rng_u64(&r->rng) >> 11) * (1.0 / 9007199254740992.0);
    double d = u * siam_retry_ceiling(r, k);
    return d < left ? d : left;
}

double siam_retry_success(siam_retry *r, double now) {
    if (!r || r->failures == 0)
        return -1.0;
    double secs = now - r->started;
    r->reconnects++;
    r->outage_seconds += secs;
    r->failures = 0;
    return secs;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

int siam_retry_again(siam_retry *r, siam_rpc_channel *ch, const char *server, const char *what,
                     const siam_rpc_status *st, char *why, size_t cap) {
    if (cap)
        why[0] = '\0';
    if (!r || r->budget <= 0 || !siam_retry_code_is_transient(st->code))
        return 0;
    double now = siam_now();
    double d = siam_retry_next_delay(r, now);
    double used = siam_retry_used(r, now);
    if (d < 0) {
        snprintf(why, cap, "; gave up after retrying for %.1f s (--retry-for %g)", used, r->budget);
        return 0;
    }
    LOG_WARN(COMPONENT,
             "siam-server at %s unavailable (%s: %s: %s); retrying in %.1f s (%.1f s of %g s "
             "used)",
             server, what, siam_rpc_code_name(st->code), st->msg[0] ? st->msg : "no message", d,
             used, r->budget);
    sleep_s(d);
    /* gRPC's own reconnect backoff would delay the attempt: connect now, and give the
     * connection a moment (within the budget) before the call */
    double left = r->budget - siam_retry_used(r, siam_now());
    if (ch)
        siam_rpc_channel_connect(ch, left < SIAM_RETRY_CONNECT_S ? left : SIAM_RETRY_CONNECT_S);
    if (r->check && r->check(r->check_ctx, why, cap) != 0)
        return 0;
    return 1;
}
