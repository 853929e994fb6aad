/* test_retry: the worker's retry policy (client/siam_retry): which gRPC codes are retried, the
 * backoff ceilings (0.2 s doubling to 5 s), full jitter (every wait uniform in [0, ceiling]:
 * bounds, mean, spread, different per seed), the budget (the last attempt at its end, then give
 * up; a good answer ends the outage and the next one gets the whole budget again), and
 * siam_retry_again's decisions and messages. The schedule is driven by a simulated clock. */
#include "test_util.h"

#include <string.h>

#include "siam_log.h"
#include "siam_retry.h"

static void test_codes(void) {
    const int transient[] = {SIAM_RPC_UNAVAILABLE, SIAM_RPC_CANCELLED, SIAM_RPC_DEADLINE_EXCEEDED,
                             SIAM_RPC_ABORTED};
    const int permanent[] = {SIAM_RPC_OK,
                             SIAM_RPC_UNKNOWN,
                             SIAM_RPC_INVALID_ARGUMENT,
                             SIAM_RPC_NOT_FOUND,
                             SIAM_RPC_ALREADY_EXISTS,
                             SIAM_RPC_PERMISSION_DENIED,
                             SIAM_RPC_RESOURCE_EXHAUSTED,
                             SIAM_RPC_FAILED_PRECONDITION,
                             SIAM_RPC_OUT_OF_RANGE,
                             SIAM_RPC_UNIMPLEMENTED,
                             SIAM_RPC_INTERNAL,
                             SIAM_RPC_DATA_LOSS,
                             SIAM_RPC_UNAUTHENTICATED,
                             -1,
                             17};
    for (size_t i = 0; i < sizeof transient / sizeof *transient; i++)
        CHECK(siam_retry_code_is_transient(transient[i]), "%s is retried",
              siam_rpc_code_name(transient[i]));
    for (size_t i = 0; i < sizeof permanent / sizeof *permanent; i++)
        CHECK(!siam_retry_code_is_transient(permanent[i]), "%s (%d) is not retried",
              siam_rpc_code_name(permanent[i]), permanent[i]);
}

static void test_ceilings(void) {
    siam_retry r;
    siam_retry_init(&r, 60, 1);
    const double want[] = {0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0};
    for (int k = 0; k < 8; k++)
        CHECK_NEAR(siam_retry_ceiling(&r, k), want[k], 1e-12, "ceiling");
    CHECK(siam_retry_ceiling(&r, 100000) == 5.0, "a long outage stays at the cap");
}

/* Many outages of the same length: every wait within [0, ceiling(k)], the mean near half the
 * ceiling and the largest near the ceiling (uniform, not a constant or a narrow band). */
static void test_jitter(void) {
    enum { K = 8, RUNS = 4000 };
    double sum[K] = {0}, lo[K], hi[K];
    for (int k = 0; k < K; k++)
        lo[k] = 1e9, hi[k] = -1;
    int out_of_bounds = 0;
    siam_retry r;
    siam_retry_init(&r, 1e6, 12345);
    for (int run = 0; run < RUNS; run++) {
        double now = 1000.0 * run;
        for (int k = 0; k < K; k++) {
            double d = siam_retry_next_delay(&r, now);
            double c = siam_retry_ceiling(&r, k);
            if (!(d >= 0 && d <= c))
                out_of_bounds++;
            sum[k] += d;
            lo[k] = d < lo[k] ? d : lo[k];
            hi[k] = d > hi[k] ? d : hi[k];
            now += d + 0.001;
        }
        CHECK(siam_retry_success(&r, now) >= 0, "a good answer ends the outage");
    }
    CHECK(out_of_bounds == 0, "%d waits outside [0, ceiling]", out_of_bounds);
    for (int k = 0; k < K; k++) {
        double c = siam_retry_ceiling(&r, k), mean = sum[k] / RUNS;
        CHECK(fabs(mean - c / 2) < 0.05 * c, "wait %d: mean %.4f, expected about %.4f", k, mean,
              c / 2);
        CHECK(lo[k] < 0.01 * c && hi[k] > 0.99 * c, "wait %d: from %.4f to %.4f of [0, %.1f]", k,
              lo[k], hi[k], c);
    }
    CHECK(r.reconnects == RUNS, "%llu reconnects counted", (unsigned long long)r.reconnects);

    /* two workers that lost the server at the same moment do not come back in lockstep */
    siam_retry a, b;
    siam_retry_init(&a, 60, 1);
    siam_retry_init(&b, 60, 2);
    int same = 0;
    for (int k = 0; k < 6; k++)
        same += siam_retry_next_delay(&a, 0.0) == siam_retry_next_delay(&b, 0.0);
    CHECK(same == 0, "different seeds gave %d equal waits of 6", same);
}

/* An outage that never ends: attempts until the budget, the last one at its very end. */
static void test_budget(void) {
    for (int seed = 1; seed <= 50; seed++) {
        const double budget = 7.5, cost = 0.003; /* a refused connection fails fast */
        siam_retry r;
        siam_retry_init(&r, budget, (uint64_t)seed);
        double t0 = 500.0, now = t0, d;
        int attempts = 1;
        while ((d = siam_retry_next_delay(&r, now)) >= 0) {
            CHECK(now + d <= t0 + budget + 1e-9, "seed %d: an attempt at %.3f s after the budget",
                  seed, now + d - t0);
            now += d + cost;
            attempts++;
            if (attempts > 1000)
                break;
        }
        CHECK(now - t0 >= budget && now - t0 <= budget + cost + 1e-9,
              "seed %d: gave up %.3f s into a %.1f s budget", seed, now - t0, budget);
        CHECK(attempts >= 4 && attempts < 200, "seed %d: %d attempts in %.1f s", seed, attempts,
              budget);
        CHECK_NEAR(siam_retry_used(&r, now), now - t0, 1e-9, "time used");
    }

    /* a good answer ends the outage; the next outage has the whole budget again */
    siam_retry r;
    siam_retry_init(&r, 2.0, 9);
    CHECK(siam_retry_success(&r, 1.0) < 0 && r.reconnects == 0, "no outage, no reconnect");
    CHECK(siam_retry_next_delay(&r, 10.0) >= 0, "first failure");
    CHECK(siam_retry_next_delay(&r, 11.5) >= 0, "1.5 s into a 2 s budget");
    CHECK_NEAR(siam_retry_success(&r, 11.75), 1.75, 1e-9, "outage length");
    CHECK(r.reconnects == 1 && fabs(r.outage_seconds - 1.75) < 1e-9,
          "reconnects %llu, %.3f s without the server", (unsigned long long)r.reconnects,
          r.outage_seconds);
    CHECK(siam_retry_used(&r, 50.0) == 0.0, "nothing used between outages");
    CHECK(siam_retry_next_delay(&r, 20.0) >= 0 && siam_retry_next_delay(&r, 21.9) >= 0,
          "a new outage starts with the whole budget");
    CHECK(siam_retry_next_delay(&r, 22.0) < 0, "and ends with it");

    siam_retry off;
    siam_retry_init(&off, 0, 1);
    CHECK(siam_retry_next_delay(&off, 3.0) < 0, "budget 0: no retry at all");
}

/* A check that passes once, then refuses. */
static int check_fn(void *ctx, char *why, size_t cap) {
    int *calls = ctx;
    if (++*calls == 1)
        return 0;
    snprintf(why, cap, "; came back changed");
    return 1;
}

/* siam_retry_again: what the callers do (real sleeps, short budget). */
static void test_again(void) {
    siam_rpc_status unavailable = {SIAM_RPC_UNAVAILABLE, "Socket closed"};
    siam_rpc_status denied = {SIAM_RPC_PERMISSION_DENIED, "no"};
    char why[160];
    strcpy(why, "x");
    CHECK(siam_retry_again(NULL, NULL, "h:1", "Status", &unavailable, why, sizeof why) == 0 &&
              why[0] == '\0',
          "no policy: no retry, nothing to add ('%s')", why);
    siam_retry r;
    siam_retry_init(&r, 0.3, 4);
    strcpy(why, "x");
    CHECK(siam_retry_again(&r, NULL, "h:1", "Status", &denied, why, sizeof why) == 0 &&
              why[0] == '\0' && r.failures == 0,
          "a permanent code is not retried and starts no outage");
    double t0 = siam_now();
    int tries = 0;
    while (siam_retry_again(&r, NULL, "h:1", "Train step 3", &unavailable, why, sizeof why))
        if (++tries > 100)
            break;
    double took = siam_now() - t0;
    CHECK(tries >= 1 && took >= 0.3 && took < 1.0, "%d retries in %.3f s of a 0.3 s budget", tries,
          took);
    CHECK(strstr(why, "gave up after retrying for 0.3 s (--retry-for 0.3)") != NULL,
          "budget spent: '%s'", why);
    siam_retry off;
    siam_retry_init(&off, 0, 1);
    CHECK(siam_retry_again(&off, NULL, "h:1", "Status", &unavailable, why, sizeof why) == 0 &&
              why[0] == '\0',
          "--retry-for 0: fails at once ('%s')", why);

    /* the check before every attempt: the server came back changed -> give up with its reason */
    siam_retry_init(&r, 10, 5);
    int calls = 0;
    r.check = check_fn;
    r.check_ctx = &calls;
    CHECK(siam_retry_again(&r, NULL, "h:1", "Train step 3", &unavailable, why, sizeof why) == 1 &&
              calls == 1,
          "the check passes: retry (%d calls)", calls);
    CHECK(siam_retry_again(&r, NULL, "h:1", "Train step 3", &unavailable, why, sizeof why) == 0 &&
              calls == 2 && strcmp(why, "; came back changed") == 0,
          "the check fails: give up with its reason ('%s', %d calls)", why, calls);
    CHECK(siam_retry_again(&r, NULL, "h:1", "Status", &denied, why, sizeof why) == 0 && calls == 2,
          "no check for a permanent code");
}

int main(void) {
    siam_log_set_level(SIAM_LOG_ERROR); /* the retry lines are not this test's output */
    test_codes();
    test_ceilings();
    test_jitter();
    test_budget();
    test_again();
    return tu_finish();
}
