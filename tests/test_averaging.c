/* test_averaging: the server's weight averaging (server/siam_averaging) called directly, and
 * SyncWeights / image Similarity / Status through server/siam_service with encoded protobuf
 * requests (no sockets). Averaged parameters equal, byte for byte, a samples-weighted mean
 * computed here in worker-name order, whatever the arrival order; joins wait for min_workers;
 * a round closes at the sync timeout, at once when the last live worker's stream ends, and late
 * updates are answered with the newest global parameters without being averaged; every error
 * has its status code; shutdown and free answer pending calls. After a restart, reports join
 * their workers, reports ahead of the server are averaged and the round numbers go on from the
 * workers', and rounds wait for min_workers until their timeout; a report sent again counts
 * once. Image Similarity answers
 * distances equal to the global model's embeddings computed here. */
#include "test_util.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "siam_averaging.h"
#include "siam_log.h"
#include "siam_loss.h"
#include "siam_model.h"
#include "siam_rng.h"
#include "siam_rpc.h"
#include "siam_service.h"

#include "siam/v1/siam.pb-c.h"

/* ------------------------------------------------------------------------------------------ */
/* Recording answers: a call is a waiter; the reply functions copy what they are told into it
 * (params are valid only during the callback) and wake the test thread. They may run on the
 * averaging timer thread, so they touch only the call, under rec_lock, and never CHECK. */

static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rec_cond = PTHREAD_COND_INITIALIZER;

typedef struct {
    int calls;             /* answers received: must end at exactly 1 */
    double t;              /* siam_now() of the first answer */
    int code;              /* status code */
    int decoded;           /* service level: the GlobalWeights decoded */
    int has_resp_on_error; /* service level: a response came with a failure status */
    char msg[SIAM_ERROR_MSG_MAX];
    uint64_t round;
    char spec[SIAM_SPEC_MAX];
    float *params;
    size_t n_params;
    uint32_t workers;
    uint64_t samples;
    int late;
} call;

static void call_reset(call *c) {
    pthread_mutex_lock(&rec_lock);
    free(c->params);
    memset(c, 0, sizeof *c);
    pthread_mutex_unlock(&rec_lock);
}

static int answered(call *c) {
    pthread_mutex_lock(&rec_lock);
    int n = c->calls;
    pthread_mutex_unlock(&rec_lock);
    return n;
}

/* Waits up to secs for c's answer; returns its number of answers (0: none in time). */
static int wait_for(call *c, double secs) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ns = (long long)ts.tv_nsec + (long long)(secs * 1e9);
    ts.tv_sec += (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    pthread_mutex_lock(&rec_lock);
    while (c->calls == 0)
        if (pthread_cond_timedwait(&rec_cond, &rec_lock, &ts) != 0)
            break;
    int n = c->calls;
    pthread_mutex_unlock(&rec_lock);
    return n;
}

static void sleep_s(double secs) {
    struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* cfg.reply of siam_averaging */
static void record(void *waiter, const siam_averaging_answer *a) {
    call *c = waiter;
    float *p = NULL;
    if (a->params && a->n_params) {
        p = malloc(a->n_params * sizeof *p);
        if (p)
            memcpy(p, a->params, a->n_params * sizeof *p);
    }
    double now = siam_now();
    pthread_mutex_lock(&rec_lock);
    if (c->calls++ == 0) {
        c->t = now;
        c->code = a->code;
        snprintf(c->msg, sizeof c->msg, "%s", a->msg);
        c->round = a->round;
        snprintf(c->spec, sizeof c->spec, "%s", a->spec ? a->spec : "");
        c->params = p;
        c->n_params = p ? a->n_params : 0;
        c->workers = a->workers;
        c->samples = a->samples;
        c->late = a->late;
        p = NULL;
    }
    pthread_cond_broadcast(&rec_cond);
    pthread_mutex_unlock(&rec_lock);
    free(p);
}

/* cfg.on_round: the rounds closed, in order */
static uint64_t rounds_seen[64];
static uint32_t rounds_workers[64];
static int n_rounds_seen;

static void on_round(void *ctx, const siam_averaging_answer *a) {
    (void)ctx;
    pthread_mutex_lock(&rec_lock);
    if (n_rounds_seen < 64) {
        rounds_seen[n_rounds_seen] = a->round;
        rounds_workers[n_rounds_seen] = a->workers;
    }
    n_rounds_seen++;
    pthread_mutex_unlock(&rec_lock);
}

static siam_averaging *make_avg(int min_workers, double timeout, const char *spec,
                                const float *params, size_t n) {
    siam_averaging_config cfg = {min_workers, timeout, record, on_round, NULL};
    siam_averaging *a = NULL;
    siam_error err = {0};
    CHECK(siam_averaging_create(&a, &cfg, &err) == SIAM_OK, "create: %s", err.msg);
    if (a && spec)
        CHECK(siam_averaging_set_model(a, spec, params, n, 0, &err) == SIAM_OK, "set_model: %s",
              err.msg);
    return a;
}

static void submit(siam_averaging *a, call *c, const char *worker, const char *spec, const float *p,
                   size_t n, uint64_t samples, uint64_t base_round) {
    siam_averaging_update u = {worker, spec, p, n, samples, base_round};
    siam_averaging_submit(a, &u, c);
}

/* The samples-weighted mean computed independently: for each j,
 * (float)(sum_i (double)s_i * (double)p_ij / (double)sum s), summed in strcmp order of names. */
static void ref_average(float *out, const char *const *names, const float *const *p,
                        const uint64_t *s, int k, size_t n) {
    int order[16];
    for (int i = 0; i < k; i++)
        order[i] = i;
    for (int i = 1; i < k; i++) /* insertion sort by name */
        for (int j = i; j > 0 && strcmp(names[order[j - 1]], names[order[j]]) > 0; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    uint64_t total = 0;
    for (int i = 0; i < k; i++)
        total += s[i];
    for (size_t j = 0; j < n; j++) {
        double acc = 0;
        for (int r = 0; r < k; r++)
            acc += (double)s[order[r]] * (double)p[order[r]][j];
        out[j] = (float)(acc / (double)total);
    }
}

/* Random floats of very different magnitudes, so that sums are sensitive to rounding. */
static void random_params(siam_rng *rng, float *p, size_t n) {
    static const float scale[4] = {1.0f, 1e-3f, 37.0f, 1e4f};
    for (size_t j = 0; j < n; j++)
        p[j] = (2 * siam_rng_uniform(rng) - 1) * scale[siam_rng_below(rng, 4)];
}

static int same_params(const call *c, const float *want, size_t n) {
    return c->params && c->n_params == n && memcmp(c->params, want, n * sizeof *want) == 0;
}

static size_t first_diff(const call *c, const float *want, size_t n) {
    if (!c->params || c->n_params != n)
        return (size_t)-1;
    for (size_t j = 0; j < n; j++)
        if (memcmp(&c->params[j], &want[j], sizeof *want) != 0)
            return j;
    return n;
}

#define N_PARAMS 1000
static const char *const SPEC = "in=28x28x1 dense8 relu";

/* ------------------------------------------------------------------------------------------ */
/* 1. Bit-exact FedAvg, independent of the arrival order */

/* One round of k workers on a (all joined), reporting in the order given; the answers must be
 * the reference average. Returns the averaged params (malloc'd) from the first answer. */
static float *fedavg_round(siam_averaging *a, int k, const char *const *names,
                           const float *const *p, const uint64_t *s, const int *arrival,
                           uint64_t base_round, uint64_t want_round) {
    call c[16];
    memset(c, 0, sizeof c);
    float *want = malloc(N_PARAMS * sizeof *want);
    ref_average(want, names, p, s, k, N_PARAMS);
    uint64_t total = 0;
    for (int i = 0; i < k; i++)
        total += s[i];
    for (int r = 0; r < k; r++) {
        int i = arrival[r];
        submit(a, &c[i], names[i], SPEC, p[i], N_PARAMS, s[i], base_round);
        if (r < k - 1)
            CHECK(answered(&c[i]) == 0, "k=%d: %s answered before every live worker reported", k,
                  names[i]);
    }
    for (int i = 0; i < k; i++) {
        CHECK(wait_for(&c[i], 5.0) == 1, "k=%d: %s answered %d times", k, names[i], c[i].calls);
        CHECK(c[i].code == SIAM_RPC_OK, "k=%d: %s: code %d %s", k, names[i], c[i].code, c[i].msg);
        CHECK(same_params(&c[i], want, N_PARAMS),
              "k=%d: %s got params that differ from the reference at index %zu", k, names[i],
              first_diff(&c[i], want, N_PARAMS));
        CHECK(c[i].round == want_round, "k=%d: round %llu, expected %llu", k,
              (unsigned long long)c[i].round, (unsigned long long)want_round);
        CHECK(c[i].workers == (uint32_t)k, "k=%d: workers %u", k, c[i].workers);
        CHECK(c[i].samples == total, "k=%d: samples %llu, expected %llu", k,
              (unsigned long long)c[i].samples, (unsigned long long)total);
        CHECK(!c[i].late, "k=%d: %s marked late", k, names[i]);
        CHECK(strcmp(c[i].spec, SPEC) == 0, "k=%d: spec '%s'", k, c[i].spec);
    }
    float *got = NULL;
    if (c[0].params && c[0].n_params == N_PARAMS) {
        got = malloc(N_PARAMS * sizeof *got);
        memcpy(got, c[0].params, N_PARAMS * sizeof *got);
    }
    for (int i = 0; i < k; i++)
        call_reset(&c[i]);
    free(want);
    return got;
}

static void test_fedavg(void) {
    siam_rng rng;
    siam_rng_seed(&rng, 11);
    const char *names[3] = {"w-c", "w-a", "w-b"};
    float *buf = malloc(7 * N_PARAMS * sizeof *buf);
    float *g0 = buf, *p[3] = {buf + N_PARAMS, buf + 2 * N_PARAMS, buf + 3 * N_PARAMS};
    float *q[3] = {buf + 4 * N_PARAMS, buf + 5 * N_PARAMS, buf + 6 * N_PARAMS};
    random_params(&rng, g0, N_PARAMS);
    for (int i = 0; i < 3; i++) {
        random_params(&rng, p[i], N_PARAMS);
        random_params(&rng, q[i], N_PARAMS);
    }
    const uint64_t s1[3] = {300, 1000, 7}, s2[3] = {5, 41, 64}; /* each within 10 x the median */
    /* Every 7th parameter cancels between w-c and w-a (300 * -10 * 2^20 m + 1000 * 3 * 2^20 m
     * = 0 exactly) next to w-b's small value: summed in name order (w-a, w-b, w-c) the small
     * value is rounded at the scale of 3e9 m, summed w-c, w-a, w-b it is not. So the reference
     * depends on the order, and an average in arrival order would not match it. */
    for (size_t j = 0; j < N_PARAMS; j += 7) {
        float m = (float)(1 + siam_rng_below(&rng, 8));
        p[0][j] = -10.0f * 1048576.0f * m;
        p[1][j] = 3.0f * 1048576.0f * m;
        p[2][j] = 1e-3f * (1 + siam_rng_uniform(&rng));
    }
    {
        float by_name[N_PARAMS];
        ref_average(by_name, names, (const float *const *)p, s1, 3, N_PARAMS);
        int differ = 0;
        for (size_t j = 0; j < N_PARAMS; j++) { /* in arrival order w-c, w-a, w-b */
            double acc = 0;
            for (int i = 0; i < 3; i++)
                acc += (double)s1[i] * (double)p[i][j];
            float v = (float)(acc / (double)(s1[0] + s1[1] + s1[2]));
            differ += memcmp(&v, &by_name[j], sizeof v) != 0;
        }
        CHECK(differ > 10, "the test data is not order-sensitive (%d parameters differ)", differ);
    }
    /* arrival orders, permutations of 0..k-1: names in strcmp order are w-a, w-b, w-c */
    const int fwd[2][3] = {{0, 1}, {0, 1, 2}}, rev[2][3] = {{1, 0}, {2, 1, 0}};
    const int mid[3] = {1, 2, 0};

    for (int k = 2; k <= 3; k++) {
        float *res[2] = {NULL, NULL};
        for (int order = 0; order < 2; order++) {
            siam_averaging *a = make_avg(1, 3.0, SPEC, g0, N_PARAMS);
            if (!a)
                return;
            pthread_mutex_lock(&rec_lock);
            n_rounds_seen = 0;
            pthread_mutex_unlock(&rec_lock);
            for (int i = 0; i < k; i++) { /* everyone joins first (min_workers 1: at once) */
                call j = {0};
                submit(a, &j, names[i], SPEC, p[i], N_PARAMS, 0, 0);
                CHECK(answered(&j) == 1, "join of %s not answered at once", names[i]);
                CHECK(j.code == SIAM_RPC_OK && same_params(&j, g0, N_PARAMS) && j.round == 0,
                      "join of %s: code %d round %llu, params %s the global ones", names[i], j.code,
                      (unsigned long long)j.round,
                      same_params(&j, g0, N_PARAMS) ? "equal" : "differ from");
                call_reset(&j);
            }
            siam_averaging_info before;
            siam_averaging_get_info(a, &before);
            res[order] = fedavg_round(a, k, names, (const float *const *)p, s1,
                                      order == 0 ? fwd[k - 2] : (k == 3 ? mid : rev[k - 2]), 0, 1);
            siam_averaging_info info;
            siam_averaging_get_info(a, &info);
            CHECK(info.round == 1, "k=%d: info.round %llu after one round", k,
                  (unsigned long long)info.round);
            CHECK(info.version != before.version, "k=%d: version unchanged by a round", k);
            float *copy = malloc(N_PARAMS * sizeof *copy);
            uint64_t cr = 0, cv = 0;
            siam_error err = {0};
            CHECK(siam_averaging_copy(a, copy, N_PARAMS, &cr, &cv, &err) == SIAM_OK, "copy: %s",
                  err.msg);
            CHECK(res[order] && memcmp(copy, res[order], N_PARAMS * sizeof *copy) == 0 && cr == 1 &&
                      cv == info.version,
                  "k=%d: copy differs from the answers (round %llu)", k, (unsigned long long)cr);
            CHECK(siam_averaging_copy(a, copy, N_PARAMS - 1, NULL, NULL, &err) == SIAM_ERR_ARG,
                  "copy with a wrong count");
            free(copy);

            if (order == 0) { /* a second round, based on round 1: round 2 */
                float *r2 =
                    fedavg_round(a, k, names, (const float *const *)q, s2, rev[k - 2], 1, 2);
                free(r2);
                siam_averaging_get_info(a, &info);
                CHECK(info.round == 2, "k=%d: info.round %llu after two rounds", k,
                      (unsigned long long)info.round);
                for (int i = 0; i < k; i++) {
                    int live = -1;
                    uint64_t last = 0;
                    CHECK(siam_averaging_worker(a, names[i], &live, &last) == 1 && last == 2,
                          "k=%d: %s last_round %llu", k, names[i], (unsigned long long)last);
                }
                pthread_mutex_lock(&rec_lock);
                int nr = n_rounds_seen;
                pthread_mutex_unlock(&rec_lock);
                CHECK(nr == 2 && rounds_seen[0] == 1 && rounds_seen[1] == 2 &&
                          rounds_workers[0] == (uint32_t)k && rounds_workers[1] == (uint32_t)k,
                      "k=%d: on_round saw %d rounds", k, nr);
            }
            siam_averaging_free(a);
        }
        CHECK(res[0] && res[1] && memcmp(res[0], res[1], N_PARAMS * sizeof(float)) == 0,
              "k=%d: the average depends on the arrival order", k);
        free(res[0]);
        free(res[1]);
    }
    free(buf);
}

/* ------------------------------------------------------------------------------------------ */
/* 2. Joins wait for min_workers */

static void test_joins(void) {
    siam_rng rng;
    siam_rng_seed(&rng, 22);
    float g0[N_PARAMS], pa[N_PARAMS], pb[N_PARAMS];
    random_params(&rng, g0, N_PARAMS);
    random_params(&rng, pa, N_PARAMS);
    random_params(&rng, pb, N_PARAMS);
    siam_averaging *a = make_avg(2, 0.3, SPEC, g0, N_PARAMS);
    if (!a)
        return;
    siam_averaging_info info;
    call ja = {0}, jb = {0}, jc = {0};
    submit(a, &ja, "alpha", SPEC, pa, N_PARAMS, 0, 0);
    sleep_s(0.1);
    CHECK(answered(&ja) == 0, "the first join was answered before the second worker joined");
    siam_averaging_get_info(a, &info);
    CHECK(strcmp(info.waiting, "waiting for 1 more worker (1 of 2)") == 0, "waiting '%s'",
          info.waiting);
    CHECK(info.joined == 1 && info.min_workers == 2, "joined %d of %d", info.joined,
          info.min_workers);
    int live = 0;
    uint64_t last = 9;
    CHECK(siam_averaging_worker(a, "alpha", &live, &last) == 1 && live == 1 && last == 0,
          "a waiting joiner: live %d last_round %llu", live, (unsigned long long)last);
    CHECK(siam_averaging_worker(a, "nobody", &live, &last) == 0 && live == 0 && last == 0,
          "an unknown worker is reported");

    submit(a, &jb, "beta", SPEC, pb, N_PARAMS, 0, 0);
    CHECK(wait_for(&ja, 2.0) == 1 && wait_for(&jb, 2.0) == 1, "joins answered %d and %d times",
          ja.calls, jb.calls);
    CHECK(ja.code == SIAM_RPC_OK && jb.code == SIAM_RPC_OK, "join codes %d %d", ja.code, jb.code);
    CHECK(same_params(&ja, g0, N_PARAMS) && same_params(&jb, g0, N_PARAMS),
          "joins did not both get the global params");
    CHECK(ja.round == 0 && jb.round == 0 && !ja.late && !jb.late, "join rounds %llu %llu",
          (unsigned long long)ja.round, (unsigned long long)jb.round);
    siam_averaging_get_info(a, &info);
    CHECK(strcmp(info.waiting, "") == 0 && info.joined == 2, "after the joins: waiting '%s'",
          info.waiting);
    submit(a, &jc, "gamma", SPEC, pa, N_PARAMS, 0, 0);
    CHECK(answered(&jc) == 1 && jc.code == SIAM_RPC_OK && same_params(&jc, g0, N_PARAMS),
          "a third join was not answered at once with the global params");
    siam_averaging_get_info(a, &info);
    CHECK(info.joined == 3 && info.round == 0, "joined %d round %llu", info.joined,
          (unsigned long long)info.round);
    siam_averaging_free(a);
    CHECK(ja.calls == 1 && jb.calls == 1 && jc.calls == 1, "free answered a join again");
    call_reset(&ja);
    call_reset(&jb);
    call_reset(&jc);
}

/* ------------------------------------------------------------------------------------------ */
/* 3. The sync timeout and late updates */

static void test_timeout(void) {
    const double T = 0.3;
    siam_rng rng;
    siam_rng_seed(&rng, 33);
    float g0[N_PARAMS], pa[N_PARAMS], pb[N_PARAMS];
    random_params(&rng, g0, N_PARAMS);
    random_params(&rng, pa, N_PARAMS);
    random_params(&rng, pb, N_PARAMS);
    siam_averaging *a = make_avg(2, T, SPEC, g0, N_PARAMS);
    if (!a)
        return;
    call ja = {0}, jb = {0}, ra = {0}, rb = {0};
    siam_averaging_stream(a, "alpha", +1);
    siam_averaging_stream(a, "beta", +1);
    submit(a, &ja, "alpha", SPEC, pa, N_PARAMS, 0, 0);
    submit(a, &jb, "beta", SPEC, pb, N_PARAMS, 0, 0);
    CHECK(wait_for(&ja, 2.0) == 1 && wait_for(&jb, 2.0) == 1, "joins not answered");

    const uint64_t sa = 4242;
    double t0 = siam_now();
    submit(a, &ra, "alpha", SPEC, pa, N_PARAMS, sa, 0);
    CHECK(answered(&ra) == 0, "a report was answered while a live worker had not reported");
    CHECK(wait_for(&ra, T + 3.0) == 1, "the report was never answered (timeout %g s)", T);
    double dt = ra.t - t0;
    CHECK(dt >= 0.8 * T && dt <= T + 1.0, "answered after %.3f s, expected about %g s", dt, T);
    const char *names[1] = {"alpha"};
    const float *ps[1] = {pa};
    float want[N_PARAMS];
    ref_average(want, names, ps, &sa, 1, N_PARAMS);
    CHECK(memcmp(want, pa, sizeof want) == 0, "a single worker's mean is not its own params");
    CHECK(ra.code == SIAM_RPC_OK && ra.workers == 1 && ra.samples == sa && ra.round == 1 &&
              !ra.late,
          "timed-out round: code %d workers %u samples %llu round %llu late %d", ra.code,
          ra.workers, (unsigned long long)ra.samples, (unsigned long long)ra.round, ra.late);
    CHECK(same_params(&ra, want, N_PARAMS), "timed-out round params differ at %zu",
          first_diff(&ra, want, N_PARAMS));

    siam_averaging_info before, after;
    siam_averaging_get_info(a, &before);
    submit(a, &rb, "beta", SPEC, pb, N_PARAMS, 99, 0); /* based on round 0: late */
    CHECK(answered(&rb) == 1, "the late update was not answered at once");
    CHECK(rb.code == SIAM_RPC_OK && rb.late && rb.round == 1, "late: code %d late %d round %llu",
          rb.code, rb.late, (unsigned long long)rb.round);
    CHECK(same_params(&rb, want, N_PARAMS), "the late update did not get the newest global");
    siam_averaging_get_info(a, &after);
    CHECK(after.round == before.round && after.version == before.version,
          "a late update changed the global model (round %llu -> %llu)",
          (unsigned long long)before.round, (unsigned long long)after.round);
    float copy[N_PARAMS];
    siam_error err = {0};
    CHECK(siam_averaging_copy(a, copy, N_PARAMS, NULL, NULL, &err) == SIAM_OK &&
              memcmp(copy, want, sizeof copy) == 0,
          "the global params changed after a late update");
    sleep_s(T + 0.2); /* nor does the late update open a round that closes later */
    siam_averaging_get_info(a, &after);
    CHECK(after.round == 1 && after.version == before.version, "round %llu after the late update",
          (unsigned long long)after.round);
    int live = 0;
    uint64_t last = 0;
    siam_averaging_worker(a, "alpha", &live, &last);
    CHECK(live == 1 && last == 1, "alpha: live %d last_round %llu", live, (unsigned long long)last);
    siam_averaging_worker(a, "beta", &live, &last);
    CHECK(live == 1 && last == 0, "beta: live %d last_round %llu", live, (unsigned long long)last);
    siam_averaging_stream(a, "alpha", -1);
    siam_averaging_stream(a, "beta", -1);
    siam_averaging_free(a);
    CHECK(ra.calls == 1 && rb.calls == 1, "answered %d and %d times", ra.calls, rb.calls);
    call_reset(&ja);
    call_reset(&jb);
    call_reset(&ra);
    call_reset(&rb);
}

/* ------------------------------------------------------------------------------------------ */
/* 4. Liveness by streams */

static void test_streams(void) {
    const double T = 3.0;
    siam_rng rng;
    siam_rng_seed(&rng, 44);
    float g0[N_PARAMS], pa[N_PARAMS];
    random_params(&rng, g0, N_PARAMS);
    random_params(&rng, pa, N_PARAMS);
    siam_averaging *a = make_avg(1, T, SPEC, g0, N_PARAMS);
    if (!a)
        return;
    call ja = {0}, jb = {0}, ra = {0};
    submit(a, &ja, "alpha", SPEC, pa, N_PARAMS, 0, 0);
    submit(a, &jb, "beta", SPEC, g0, N_PARAMS, 0, 0);
    siam_averaging_stream(a, "alpha", +1);
    siam_averaging_stream(a, "beta", +1);
    const uint64_t sa = 10;
    double t0 = siam_now();
    submit(a, &ra, "alpha", SPEC, pa, N_PARAMS, sa, 0);
    sleep_s(0.15);
    CHECK(answered(&ra) == 0, "the round closed while beta's stream was open");
    int live = 0;
    uint64_t last = 0;
    siam_averaging_worker(a, "beta", &live, &last);
    CHECK(live == 1, "beta with an open stream is not live");
    siam_averaging_stream(a, "beta", -1);
    CHECK(answered(&ra) == 1, "closing beta's stream did not close the round at once");
    CHECK(wait_for(&ra, T + 2.0) == 1 && ra.t - t0 < 0.5 * T,
          "the round closed %.3f s after the report (timeout %g s)", ra.t - t0, T);
    CHECK(ra.code == SIAM_RPC_OK && ra.workers == 1 && ra.samples == sa && ra.round == 1,
          "code %d workers %u samples %llu round %llu", ra.code, ra.workers,
          (unsigned long long)ra.samples, (unsigned long long)ra.round);
    CHECK(same_params(&ra, pa, N_PARAMS), "alpha alone: params are not its own");
    siam_averaging_worker(a, "beta", &live, &last);
    CHECK(live == 0 && last == 0, "beta after its stream ended: live %d last %llu", live,
          (unsigned long long)last);
    siam_averaging_worker(a, "alpha", &live, &last);
    CHECK(live == 1 && last == 1, "alpha: live %d last %llu", live, (unsigned long long)last);
    siam_averaging_stream(a, "alpha", -1);
    siam_averaging_free(a);
    call_reset(&ja);
    call_reset(&jb);
    call_reset(&ra);
}

/* ------------------------------------------------------------------------------------------ */
/* 5. Errors, shutdown and free */

static void test_errors(void) {
    siam_rng rng;
    siam_rng_seed(&rng, 55);
    float g0[N_PARAMS], pa[N_PARAMS], pa2[N_PARAMS], pb[N_PARAMS];
    random_params(&rng, g0, N_PARAMS);
    random_params(&rng, pa, N_PARAMS);
    random_params(&rng, pa2, N_PARAMS);
    random_params(&rng, pb, N_PARAMS);
    const char *other = "in=28x28x1 dense9 relu";
    siam_error err = {0};
    call c = {0};

    { /* bad configurations */
        siam_averaging *a = NULL;
        siam_averaging_config bad = {0, 1.0, record, NULL, NULL};
        CHECK(siam_averaging_create(&a, &bad, &err) == SIAM_ERR_ARG && !a, "min_workers 0");
        bad.min_workers = 1, bad.sync_timeout = 0;
        CHECK(siam_averaging_create(&a, &bad, &err) == SIAM_ERR_ARG && !a, "timeout 0");
        bad.sync_timeout = 1, bad.reply = NULL;
        CHECK(siam_averaging_create(&a, &bad, &err) == SIAM_ERR_ARG && !a, "no reply fn");
        siam_averaging_free(NULL);
    }

    siam_averaging *a = make_avg(1, 3.0, NULL, NULL, 0);
    if (!a)
        return;
    CHECK(!siam_averaging_has_model(a), "a model before set_model");
    submit(a, &c, "alpha", SPEC, pa, N_PARAMS, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_FAILED_PRECONDITION,
          "join without a model: %d calls, code %d (%s)", c.calls, c.code, c.msg);
    call_reset(&c);
    submit(a, &c, "alpha", SPEC, pa, N_PARAMS, 5, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_FAILED_PRECONDITION,
          "report without a model: code %d (%s)", c.code, c.msg);
    call_reset(&c);
    CHECK(siam_averaging_copy(a, pa2, N_PARAMS, NULL, NULL, &err) == SIAM_ERR_ARG,
          "copy without a model");

    CHECK(siam_averaging_set_model(a, SPEC, g0, N_PARAMS, 0, &err) == SIAM_OK, "set_model: %s",
          err.msg);
    siam_averaging_info info;
    siam_averaging_get_info(a, &info);
    uint64_t v0 = info.version;
    CHECK(info.has_model && strcmp(info.spec, SPEC) == 0 && info.n_params == N_PARAMS,
          "info after set_model: spec '%s' n %zu", info.spec, info.n_params);
    CHECK(siam_averaging_set_model(a, other, pa, N_PARAMS, 0, &err) == SIAM_ERR_MISMATCH &&
              strstr(err.msg, SPEC) && strstr(err.msg, other),
          "set_model with another spec: '%s'", err.msg);
    CHECK(siam_averaging_set_model(a, SPEC, pa, N_PARAMS, 7, &err) == SIAM_OK,
          "set_model with the same spec again");
    siam_averaging_get_info(a, &info);
    float copy[N_PARAMS];
    uint64_t cr = 9;
    CHECK(info.version == v0 && info.round == 0 &&
              siam_averaging_copy(a, copy, N_PARAMS, &cr, NULL, &err) == SIAM_OK &&
              memcmp(copy, g0, sizeof copy) == 0 && cr == 0,
          "set_model with the same spec changed the model");

    submit(a, &c, "alpha", other, pa, N_PARAMS, 5, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_FAILED_PRECONDITION && strstr(c.msg, SPEC) &&
              strstr(c.msg, other),
          "spec mismatch: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    submit(a, &c, "alpha", SPEC, pa, N_PARAMS - 1, 5, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT,
          "wrong parameter count: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    submit(a, &c, "alpha", SPEC, pa, N_PARAMS + 1, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT,
          "join with a wrong parameter count: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    siam_averaging_get_info(a, &info);
    CHECK(info.joined == 0, "rejected calls joined %d workers", info.joined);

    /* the same worker twice in one round */
    call ja = {0}, jb = {0}, r1 = {0}, r2 = {0}, rb = {0};
    submit(a, &ja, "alpha", SPEC, pa, N_PARAMS, 0, 0);
    submit(a, &jb, "beta", SPEC, pb, N_PARAMS, 0, 0);
    submit(a, &r1, "alpha", SPEC, pa, N_PARAMS, 30, 0);
    CHECK(answered(&r1) == 0, "alpha answered while beta (live) had not reported");
    submit(a, &r2, "alpha", SPEC, pa2, N_PARAMS, 40, 0);
    CHECK(answered(&r2) == 1 && r2.code == SIAM_RPC_ALREADY_EXISTS,
          "second report of alpha: code %d '%s'", r2.code, r2.msg);
    CHECK(answered(&r1) == 0, "the duplicate closed the round");
    submit(a, &rb, "beta", SPEC, pb, N_PARAMS, 50, 0);
    CHECK(wait_for(&r1, 2.0) == 1 && wait_for(&rb, 2.0) == 1, "round not closed");
    {
        const char *names[2] = {"alpha", "beta"};
        const float *ps[2] = {pa, pb};
        const uint64_t s[2] = {30, 50};
        float want[N_PARAMS];
        ref_average(want, names, ps, s, 2, N_PARAMS);
        CHECK(r1.code == SIAM_RPC_OK && rb.code == SIAM_RPC_OK && r1.workers == 2 &&
                  r1.samples == 80 && same_params(&r1, want, N_PARAMS) &&
                  same_params(&rb, want, N_PARAMS),
              "after a duplicate: the average is not of alpha's first report and beta's "
              "(codes %d %d workers %u samples %llu)",
              r1.code, rb.code, r1.workers, (unsigned long long)r1.samples);
    }
    CHECK(r2.calls == 1, "the duplicate was answered %d times", r2.calls);
    siam_averaging_free(a);
    call_reset(&ja);
    call_reset(&jb);
    call_reset(&r1);
    call_reset(&r2);
    call_reset(&rb);

    /* shutdown answers a waiting join and a waiting report, and every later call */
    a = make_avg(3, 3.0, SPEC, g0, N_PARAMS);
    if (!a)
        return;
    submit(a, &ja, "alpha", SPEC, pa, N_PARAMS, 0, 0);
    submit(a, &r1, "beta", SPEC, pb, N_PARAMS, 10, 0);
    sleep_s(0.05);
    CHECK(answered(&ja) == 0 && answered(&r1) == 0, "answered before shutdown (%d, %d)", ja.calls,
          r1.calls);
    siam_averaging_get_info(a, &info);
    CHECK(strcmp(info.waiting, "waiting for 1 more worker (2 of 3)") == 0, "waiting '%s'",
          info.waiting);
    siam_averaging_shutdown(a);
    CHECK(answered(&ja) == 1 && ja.code == SIAM_RPC_UNAVAILABLE,
          "pending join at shutdown: %d calls, code %d", ja.calls, ja.code);
    CHECK(answered(&r1) == 1 && r1.code == SIAM_RPC_UNAVAILABLE,
          "pending report at shutdown: %d calls, code %d", r1.calls, r1.code);
    submit(a, &r2, "gamma", SPEC, pa, N_PARAMS, 0, 0);
    CHECK(answered(&r2) == 1 && r2.code == SIAM_RPC_UNAVAILABLE, "join after shutdown: code %d",
          r2.code);
    submit(a, &rb, "beta", SPEC, pb, N_PARAMS, 10, 0);
    CHECK(answered(&rb) == 1 && rb.code == SIAM_RPC_UNAVAILABLE, "report after shutdown: code %d",
          rb.code);
    siam_averaging_free(a);
    CHECK(ja.calls == 1 && r1.calls == 1 && r2.calls == 1 && rb.calls == 1,
          "free after shutdown answered again (%d %d %d %d)", ja.calls, r1.calls, r2.calls,
          rb.calls);
    call_reset(&ja);
    call_reset(&r1);
    call_reset(&r2);
    call_reset(&rb);

    /* free with a waiting report and a waiting join answers them */
    a = make_avg(3, 3.0, SPEC, g0, N_PARAMS);
    if (!a)
        return;
    submit(a, &ja, "alpha", SPEC, pa, N_PARAMS, 0, 0);
    submit(a, &r1, "beta", SPEC, pb, N_PARAMS, 10, 0);
    siam_averaging_free(a);
    CHECK(ja.calls == 1 && ja.code == SIAM_RPC_UNAVAILABLE, "free: join %d calls code %d", ja.calls,
          ja.code);
    CHECK(r1.calls == 1 && r1.code == SIAM_RPC_UNAVAILABLE, "free: report %d calls code %d",
          r1.calls, r1.code);
    call_reset(&ja);
    call_reset(&r1);
}

/* ------------------------------------------------------------------------------------------ */
/* 5b. After a restart (a fresh averaging resumed at some round) and when workers retry */

/* A server restarted from a checkpoint of round 5 with min_workers 2; the workers it had were
 * at round 7 (the checkpoint is older). Nobody has joined this server. */
static void test_restart_ahead(void) {
    const double T = 3.0;
    siam_rng rng;
    siam_rng_seed(&rng, 66);
    float g0[N_PARAMS], pa[N_PARAMS], pb[N_PARAMS], pc[N_PARAMS];
    random_params(&rng, g0, N_PARAMS);
    random_params(&rng, pa, N_PARAMS);
    random_params(&rng, pb, N_PARAMS);
    random_params(&rng, pc, N_PARAMS);
    siam_averaging_config cfg = {2, T, record, on_round, NULL};
    siam_averaging *a = NULL;
    siam_error err = {0};
    CHECK(siam_averaging_create(&a, &cfg, &err) == SIAM_OK, "create: %s", err.msg);
    if (!a)
        return;
    CHECK(siam_averaging_set_model(a, SPEC, g0, N_PARAMS, 5, &err) == SIAM_OK, "resume: %s",
          err.msg);
    pthread_mutex_lock(&rec_lock);
    n_rounds_seen = 0;
    pthread_mutex_unlock(&rec_lock);

    /* a fresh worker's join waits for min_workers; reports of returning workers join them */
    call jc = {0}, ra = {0}, rb = {0}, ra2 = {0}, rb2 = {0};
    submit(a, &jc, "gamma", SPEC, pc, N_PARAMS, 0, 0);
    siam_averaging_stream(a, "alpha", +1);
    siam_averaging_stream(a, "beta", +1);
    double t0 = siam_now();
    submit(a, &ra, "alpha", SPEC, pa, N_PARAMS, 30, 7);
    siam_averaging_info info;
    siam_averaging_get_info(a, &info);
    CHECK(info.joined == 2 && info.waiting[0] == '\0',
          "a report from an unknown worker joins it: joined %d, waiting '%s'", info.joined,
          info.waiting);
    CHECK(wait_for(&jc, 2.0) == 1 && jc.code == SIAM_RPC_OK && jc.round == 5 &&
              same_params(&jc, g0, N_PARAMS),
          "the waiting join was released by the report's join: %d calls, code %d, round %llu",
          jc.calls, jc.code, (unsigned long long)jc.round);
    sleep_s(0.2);
    CHECK(answered(&ra) == 0, "alpha's report (ahead of the server) closed a round at once");
    submit(a, &rb, "beta", SPEC, pb, N_PARAMS, 50, 7);
    CHECK(answered(&rb) == 0, "the round closed without gamma (joined, live)");
    call rg = {0}; /* gamma joined this server at round 5: its report is based on round 5 */
    submit(a, &rg, "gamma", SPEC, pc, N_PARAMS, 20, 5);
    CHECK(wait_for(&ra, 2.0) == 1 && wait_for(&rb, 2.0) == 1 && wait_for(&rg, 2.0) == 1,
          "round not closed (%d, %d, %d)", ra.calls, rb.calls, rg.calls);
    CHECK(siam_now() - t0 < 0.5 * T + 0.2, "the round waited for the timeout");
    {
        const char *names[3] = {"alpha", "beta", "gamma"};
        const float *ps[3] = {pa, pb, pc};
        const uint64_t sm[3] = {30, 50, 20};
        float want[N_PARAMS];
        ref_average(want, names, ps, sm, 3, N_PARAMS);
        CHECK(ra.code == SIAM_RPC_OK && rb.code == SIAM_RPC_OK && rg.code == SIAM_RPC_OK &&
                  !ra.late && !rb.late && !rg.late && ra.workers == 3 && ra.samples == 100 &&
                  same_params(&ra, want, N_PARAMS) && same_params(&rb, want, N_PARAMS) &&
                  same_params(&rg, want, N_PARAMS),
              "reports ahead of the server are averaged with one based on its round (codes %d "
              "%d %d, late %d %d %d, workers %u)",
              ra.code, rb.code, rg.code, ra.late, rb.late, rg.late, ra.workers);
    }
    CHECK(rg.round == 8, "gamma's round %llu", (unsigned long long)rg.round);
    call_reset(&rg);
    CHECK(ra.round == 8 && rb.round == 8,
          "the round after the workers' round 7 is 8 (not the server's 6): %llu %llu",
          (unsigned long long)ra.round, (unsigned long long)rb.round);
    siam_averaging_get_info(a, &info);
    CHECK(info.round == 8, "server round %llu", (unsigned long long)info.round);
    pthread_mutex_lock(&rec_lock);
    CHECK(n_rounds_seen == 1 && rounds_seen[0] == 8 && rounds_workers[0] == 3,
          "on_round saw %d rounds (first %llu, %u workers)", n_rounds_seen,
          (unsigned long long)rounds_seen[0], rounds_workers[0]);
    pthread_mutex_unlock(&rec_lock);

    /* the next rounds go on from there, and another report based on round 7 is now late */
    call rl = {0};
    submit(a, &rl, "alpha", SPEC, pb, N_PARAMS, 10, 7);
    CHECK(answered(&rl) == 1 && rl.code == SIAM_RPC_OK && rl.late && rl.round == 8,
          "a report based on round 7 after round 8: code %d late %d round %llu", rl.code, rl.late,
          (unsigned long long)rl.round);
    submit(a, &ra2, "alpha", SPEC, pa, N_PARAMS, 5, 8);
    submit(a, &rb2, "beta", SPEC, pb, N_PARAMS, 5, 8);
    call rc2 = {0};
    submit(a, &rc2, "gamma", SPEC, pc, N_PARAMS, 5, 8);
    CHECK(wait_for(&ra2, 2.0) == 1 && ra2.round == 9 && ra2.workers == 3,
          "round 9 of three workers: %d calls, round %llu, workers %u", ra2.calls,
          (unsigned long long)ra2.round, ra2.workers);
    siam_averaging_stream(a, "alpha", -1);
    siam_averaging_stream(a, "beta", -1);
    siam_averaging_stream(a, "gamma", -1);
    siam_averaging_free(a);
    call_reset(&jc);
    call_reset(&ra);
    call_reset(&rb);
    call_reset(&rl);
    call_reset(&ra2);
    call_reset(&rb2);
    call_reset(&rc2);
}

/* min_workers after a restart: the round waits for the others until its sync timeout, never
 * longer (a worker that does not come back blocks nobody). */
static void test_restart_min_workers(void) {
    const double T = 0.4;
    siam_rng rng;
    siam_rng_seed(&rng, 77);
    float g0[N_PARAMS], pa[N_PARAMS], pb[N_PARAMS];
    random_params(&rng, g0, N_PARAMS);
    random_params(&rng, pa, N_PARAMS);
    random_params(&rng, pb, N_PARAMS);
    siam_averaging *a = make_avg(2, T, SPEC, g0, N_PARAMS);
    if (!a)
        return;
    call ra = {0}, rb = {0}, jd = {0};
    siam_averaging_stream(a, "alpha", +1);
    double t0 = siam_now();
    submit(a, &ra, "alpha", SPEC, pa, N_PARAMS, 12, 0);
    sleep_s(0.1);
    CHECK(answered(&ra) == 0, "alone of 2 min_workers after a restart: answered at once");
    CHECK(wait_for(&ra, T + 2.0) == 1 && ra.code == SIAM_RPC_OK && ra.workers == 1 &&
              ra.round == 1 && same_params(&ra, pa, N_PARAMS),
          "the round closes at its timeout with the one worker: %d calls code %d workers %u",
          ra.calls, ra.code, ra.workers);
    double dt = ra.t - t0;
    CHECK(dt >= 0.8 * T && dt <= T + 1.0, "closed after %.3f s, timeout %g s", dt, T);
    /* beta comes back late: its report (based on round 0) is late, it gets round 1 */
    submit(a, &rb, "beta", SPEC, pb, N_PARAMS, 12, 0);
    CHECK(answered(&rb) == 1 && rb.late && rb.round == 1 && same_params(&rb, pa, N_PARAMS),
          "beta after the timeout: late %d round %llu", rb.late, (unsigned long long)rb.round);
    /* now two have joined: a fresh worker's join is answered at once */
    submit(a, &jd, "delta", SPEC, g0, N_PARAMS, 0, 0);
    CHECK(answered(&jd) == 1 && jd.code == SIAM_RPC_OK && jd.round == 1,
          "a join after two reports joined: %d calls code %d", jd.calls, jd.code);
    siam_averaging_stream(a, "alpha", -1);
    siam_averaging_free(a);
    call_reset(&ra);
    call_reset(&rb);
    call_reset(&jd);
}

/* A worker whose call failed sends the same report again: once while the first still waits in
 * the round (it takes the first call's place; counted once), once after the round closed with
 * it (answered like the first, not late). A different report under the name stays refused. */
static void test_resent_reports(void) {
    siam_rng rng;
    siam_rng_seed(&rng, 88);
    float g0[N_PARAMS], pa[N_PARAMS], pa2[N_PARAMS], pb[N_PARAMS];
    random_params(&rng, g0, N_PARAMS);
    random_params(&rng, pa, N_PARAMS);
    random_params(&rng, pb, N_PARAMS);
    memcpy(pa2, pa, sizeof pa2);
    pa2[N_PARAMS / 2] = nextafterf(pa2[N_PARAMS / 2], 1e30f); /* one ulp apart */
    siam_averaging *a = make_avg(2, 3.0, SPEC, g0, N_PARAMS);
    if (!a)
        return;
    call ja = {0}, jb = {0}, r1 = {0}, r2 = {0}, r3 = {0}, r4 = {0}, rb = {0};
    submit(a, &ja, "alpha", SPEC, pa, N_PARAMS, 0, 0);
    submit(a, &jb, "beta", SPEC, pb, N_PARAMS, 0, 0);
    CHECK(wait_for(&ja, 2.0) == 1 && wait_for(&jb, 2.0) == 1, "joins");
    siam_averaging_stream(a, "alpha", +1);
    siam_averaging_stream(a, "beta", +1);

    submit(a, &r1, "alpha", SPEC, pa, N_PARAMS, 30, 0);
    submit(a, &r2, "alpha", SPEC, pa, N_PARAMS, 30, 0); /* the same report again */
    CHECK(answered(&r1) == 1 && r1.code == SIAM_RPC_ABORTED && strstr(r1.msg, "again"),
          "the first call of a resent report: %d calls, code %d '%s'", r1.calls, r1.code, r1.msg);
    CHECK(answered(&r2) == 0, "the resent report was answered before beta reported");
    submit(a, &r3, "alpha", SPEC, pa2, N_PARAMS, 30, 0); /* one ulp differs: another report */
    CHECK(answered(&r3) == 1 && r3.code == SIAM_RPC_ALREADY_EXISTS,
          "a different report under the same name: code %d '%s'", r3.code, r3.msg);
    submit(a, &r4, "alpha", SPEC, pa, N_PARAMS, 31, 0); /* other samples: another report */
    CHECK(answered(&r4) == 1 && r4.code == SIAM_RPC_ALREADY_EXISTS, "other samples: code %d",
          r4.code);
    call_reset(&r4);
    submit(a, &rb, "beta", SPEC, pb, N_PARAMS, 50, 0);
    CHECK(wait_for(&r2, 2.0) == 1 && wait_for(&rb, 2.0) == 1, "round not closed");
    const char *names[2] = {"alpha", "beta"};
    const float *ps[2] = {pa, pb};
    const uint64_t sm[2] = {30, 50};
    float want[N_PARAMS];
    ref_average(want, names, ps, sm, 2, N_PARAMS);
    CHECK(r2.code == SIAM_RPC_OK && r2.workers == 2 && r2.samples == 80 && r2.round == 1 &&
              same_params(&r2, want, N_PARAMS) && same_params(&rb, want, N_PARAMS),
          "alpha's report counted once: code %d workers %u samples %llu", r2.code, r2.workers,
          (unsigned long long)r2.samples);
    CHECK(r1.calls == 1, "the superseded call was answered %d times", r1.calls);

    /* alpha's answer got lost: it sends the report (based on round 0) again */
    siam_averaging_info before, after;
    siam_averaging_get_info(a, &before);
    call_reset(&r4);
    submit(a, &r4, "alpha", SPEC, pa, N_PARAMS, 30, 0);
    CHECK(answered(&r4) == 1 && r4.code == SIAM_RPC_OK && !r4.late && r4.round == 1 &&
              r4.workers == 2 && r4.samples == 80 && same_params(&r4, want, N_PARAMS),
          "a report sent again after its round closed: code %d late %d round %llu workers %u",
          r4.code, r4.late, (unsigned long long)r4.round, r4.workers);
    siam_averaging_get_info(a, &after);
    CHECK(after.round == before.round && after.version == before.version,
          "answering it again changed the model");
    call_reset(&r4);
    submit(a, &r4, "alpha", SPEC, pa2, N_PARAMS, 30, 0); /* not the report of round 1 */
    CHECK(answered(&r4) == 1 && r4.code == SIAM_RPC_OK && r4.late,
          "another report based on round 0 is late: code %d late %d", r4.code, r4.late);
    call_reset(&r4);
    submit(a, &r4, "beta", SPEC, pb, N_PARAMS, 50, 0);
    CHECK(answered(&r4) == 1 && r4.code == SIAM_RPC_OK && !r4.late && r4.round == 1,
          "beta's report sent again: code %d late %d", r4.code, r4.late);
    siam_averaging_stream(a, "alpha", -1);
    siam_averaging_stream(a, "beta", -1);
    siam_averaging_free(a);
    CHECK(r1.calls == 1 && r2.calls == 1 && r3.calls == 1 && rb.calls == 1,
          "free answered again (%d %d %d %d)", r1.calls, r2.calls, r3.calls, rb.calls);
    call_reset(&ja);
    call_reset(&jb);
    call_reset(&r1);
    call_reset(&r2);
    call_reset(&r3);
    call_reset(&r4);
    call_reset(&rb);
}

/* ------------------------------------------------------------------------------------------ */
/* 9. Poisoned weights: samples are bounded (2^32), a round never publishes a non-finite model,
 * a non-finite model is never adopted, and one worker's weight is capped at 10 x the median. */

static void test_weights(void) {
    const uint64_t max_samples = 4294967296ull; /* SIAM_AVERAGING_MAX_SAMPLES */
    siam_rng rng;
    siam_rng_seed(&rng, 99);
    float g0[N_PARAMS], pa[N_PARAMS], pb[N_PARAMS], pc[N_PARAMS];
    random_params(&rng, g0, N_PARAMS);
    random_params(&rng, pa, N_PARAMS);
    random_params(&rng, pb, N_PARAMS);
    random_params(&rng, pc, N_PARAMS);
    const char *names[3] = {"alpha", "beta", "gamma"};
    const float *ps[3] = {pa, pb, pc};
    call j[3], r[3];
    memset(j, 0, sizeof j);
    memset(r, 0, sizeof r);

    /* samples whose sum wraps a uint64 (2^64-1 + 1 = 0) are refused, naming the field and the
     * limit; the limit itself is accepted, and then capped by the median rule */
    siam_averaging *a = make_avg(1, 3.0, SPEC, g0, N_PARAMS);
    if (!a)
        return;
    for (int i = 0; i < 2; i++) {
        submit(a, &j[i], names[i], SPEC, g0, N_PARAMS, 0, 0);
        CHECK(answered(&j[i]) == 1 && j[i].code == SIAM_RPC_OK, "join %s", names[i]);
    }
    const uint64_t bad[2] = {UINT64_MAX, max_samples + 1};
    for (int i = 0; i < 2; i++) {
        call c = {0};
        submit(a, &c, "alpha", SPEC, pa, N_PARAMS, bad[i], 0);
        CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT &&
                  strstr(c.msg, "samples") && strstr(c.msg, "4294967296"),
              "samples %llu: %s '%s'", (unsigned long long)bad[i], siam_rpc_code_name(c.code),
              c.msg);
        call_reset(&c);
    }
    submit(a, &r[0], "alpha", SPEC, pa, N_PARAMS, max_samples, 0);
    submit(a, &r[1], "beta", SPEC, pb, N_PARAMS, 1, 0);
    {
        const uint64_t used[2] = {10, 1}; /* alpha capped at 10 x the (lower) median, 1 */
        float want[N_PARAMS];
        ref_average(want, names, ps, used, 2, N_PARAMS);
        for (int i = 0; i < 2; i++) {
            CHECK(wait_for(&r[i], 5.0) == 1 && r[i].code == SIAM_RPC_OK && !r[i].late &&
                      r[i].round == 1 && r[i].samples == 11,
                  "%s: %s '%s' round %llu samples %llu late %d", names[i],
                  siam_rpc_code_name(r[i].code), r[i].msg, (unsigned long long)r[i].round,
                  (unsigned long long)r[i].samples, r[i].late);
            CHECK(same_params(&r[i], want, N_PARAMS), "%s: params differ at %zu", names[i],
                  first_diff(&r[i], want, N_PARAMS));
        }
    }
    siam_averaging_free(a);
    for (int i = 0; i < 3; i++) {
        call_reset(&j[i]);
        call_reset(&r[i]);
    }

    /* one huge but legal weight is capped at 10 x the median of the round's weights */
    a = make_avg(1, 3.0, SPEC, g0, N_PARAMS);
    if (!a)
        return;
    for (int i = 0; i < 3; i++)
        submit(a, &j[i], names[i], SPEC, g0, N_PARAMS, 0, 0);
    const uint64_t s[3] = {100, 1000000, 100}, used[3] = {100, 1000, 100};
    for (int i = 0; i < 3; i++)
        submit(a, &r[i], names[i], SPEC, ps[i], N_PARAMS, s[i], 0);
    {
        float want[N_PARAMS];
        ref_average(want, names, ps, used, 3, N_PARAMS);
        for (int i = 0; i < 3; i++) {
            CHECK(wait_for(&r[i], 5.0) == 1 && r[i].code == SIAM_RPC_OK && r[i].samples == 1200,
                  "capped round: %s: %s samples %llu", names[i], siam_rpc_code_name(r[i].code),
                  (unsigned long long)r[i].samples);
            CHECK(same_params(&r[i], want, N_PARAMS),
                  "capped round: %s: params are not the capped mean (first difference at %zu)",
                  names[i], first_diff(&r[i], want, N_PARAMS));
        }
    }
    siam_averaging_free(a);
    for (int i = 0; i < 3; i++) {
        call_reset(&j[i]);
        call_reset(&r[i]);
    }

    /* a round whose mean is not finite (here a report that skipped the service's validation)
     * publishes nothing: the reporters get the previous model, marked late */
    a = make_avg(1, 3.0, SPEC, g0, N_PARAMS);
    if (!a)
        return;
    for (int i = 0; i < 2; i++)
        submit(a, &j[i], names[i], SPEC, g0, N_PARAMS, 0, 0);
    siam_averaging_info before, after;
    siam_averaging_get_info(a, &before);
    float inf_pa[N_PARAMS];
    memcpy(inf_pa, pa, sizeof inf_pa);
    inf_pa[3] = INFINITY;
    submit(a, &r[0], "alpha", SPEC, inf_pa, N_PARAMS, 5, 0);
    submit(a, &r[1], "beta", SPEC, pb, N_PARAMS, 5, 0);
    for (int i = 0; i < 2; i++)
        CHECK(wait_for(&r[i], 5.0) == 1 && r[i].code == SIAM_RPC_OK && r[i].late &&
                  r[i].round == 0 && same_params(&r[i], g0, N_PARAMS),
              "non-finite mean: %s: %s '%s' round %llu late %d", names[i],
              siam_rpc_code_name(r[i].code), r[i].msg, (unsigned long long)r[i].round, r[i].late);
    siam_averaging_get_info(a, &after);
    float copy[N_PARAMS];
    siam_error err = {0};
    CHECK(after.round == 0 && after.version == before.version &&
              siam_averaging_copy(a, copy, N_PARAMS, NULL, NULL, &err) == SIAM_OK &&
              memcmp(copy, g0, sizeof copy) == 0,
          "a non-finite mean became the global model (round %llu)",
          (unsigned long long)after.round);
    siam_averaging_free(a);
    for (int i = 0; i < 3; i++) {
        call_reset(&j[i]);
        call_reset(&r[i]);
    }

    /* a non-finite model is never adopted */
    a = make_avg(1, 3.0, NULL, NULL, 0);
    if (!a)
        return;
    float nan_g[N_PARAMS];
    memcpy(nan_g, g0, sizeof nan_g);
    nan_g[N_PARAMS - 1] = NAN;
    CHECK(siam_averaging_set_model(a, SPEC, nan_g, N_PARAMS, 0, &err) == SIAM_ERR_ARG &&
              !siam_averaging_has_model(a) && strstr(err.msg, "finite"),
          "set_model with a NaN: '%s', has_model %d", err.msg, siam_averaging_has_model(a));
    siam_averaging_free(a);
}

/* ------------------------------------------------------------------------------------------ */
/* 6. Through the service: SyncWeights, image Similarity, Status */

/* the service's SyncWeights reply function: decodes the GlobalWeights (resp is ours to free). */
static void svc_reply(void *waiter, siam_rpc_buf *resp, const siam_rpc_status *st) {
    call *c = waiter;
    Siam__V1__GlobalWeights *g = NULL;
    if (st->code == SIAM_RPC_OK && resp && resp->data)
        g = siam__v1__global_weights__unpack(NULL, resp->len, resp->data);
    float *p = NULL;
    if (g && g->n_params) {
        p = malloc(g->n_params * sizeof *p);
        if (p)
            memcpy(p, g->params, g->n_params * sizeof *p);
    }
    double now = siam_now();
    pthread_mutex_lock(&rec_lock);
    if (c->calls++ == 0) {
        c->t = now;
        c->code = st->code;
        snprintf(c->msg, sizeof c->msg, "%s", st->msg);
        c->decoded = g != NULL;
        c->has_resp_on_error = st->code != SIAM_RPC_OK && resp && resp->data;
        if (g) {
            c->round = g->round;
            snprintf(c->spec, sizeof c->spec, "%s", g->model_spec ? g->model_spec : "");
            c->params = p;
            c->n_params = p ? g->n_params : 0;
            c->workers = g->workers;
            c->samples = g->samples;
            c->late = g->late;
            p = NULL;
        }
    }
    pthread_cond_broadcast(&rec_cond);
    pthread_mutex_unlock(&rec_lock);
    free(p);
    if (g)
        siam__v1__global_weights__free_unpacked(g, NULL);
    if (resp)
        siam_rpc_buf_free(resp);
}

static void sync_bytes(siam_service *svc, call *c, const uint8_t *buf, size_t len) {
    siam_service_sync(svc, buf, len, c);
}

static void sync_call(siam_service *svc, call *c, const char *worker, const char *spec,
                      const float *p, size_t n, uint64_t samples, uint64_t round) {
    Siam__V1__WeightsUpdate u = SIAM__V1__WEIGHTS_UPDATE__INIT;
    u.worker_id = (char *)worker;
    u.model_spec = (char *)spec;
    u.n_params = n, u.params = (float *)p;
    u.samples = samples;
    u.step = 17;
    u.round = round;
    size_t len = siam__v1__weights_update__get_packed_size(&u);
    uint8_t *buf = malloc(len ? len : 1);
    siam__v1__weights_update__pack(&u, buf);
    sync_bytes(svc, c, buf, len);
    free(buf);
}

static int image_similarity(siam_service *svc, const uint8_t *limg, size_t nli, const uint8_t *rimg,
                            size_t nri, uint32_t dim, const float *emb, size_t nemb,
                            Siam__V1__SimilarityResponse **out, siam_rpc_status *st) {
    Siam__V1__SimilarityRequest q = SIAM__V1__SIMILARITY_REQUEST__INIT;
    q.left_images.len = nli, q.left_images.data = (uint8_t *)limg;
    q.right_images.len = nri, q.right_images.data = (uint8_t *)rimg;
    q.dim = dim;
    q.n_left = nemb, q.left = (float *)emb;
    q.n_right = nemb, q.right = (float *)emb;
    size_t len = siam__v1__similarity_request__get_packed_size(&q);
    uint8_t *buf = malloc(len ? len : 1);
    siam__v1__similarity_request__pack(&q, buf);
    siam_rpc_buf resp = {NULL, 0};
    memset(st, 0, sizeof *st);
    int rc = siam_service_similarity(svc, buf, len, &resp, st);
    free(buf);
    *out = NULL;
    CHECK(rc == st->code, "similarity returned %d, status %d", rc, st->code);
    if (rc == SIAM_RPC_OK) {
        *out = siam__v1__similarity_response__unpack(NULL, resp.len, resp.data);
        CHECK(*out != NULL, "SimilarityResponse does not decode");
        siam_rpc_buf_free(&resp);
    } else {
        CHECK(resp.data == NULL && st->msg[0], "failure with a response or without a message");
    }
    return rc;
}

static Siam__V1__StatusResponse *get_status(siam_service *svc) {
    Siam__V1__StatusRequest q = SIAM__V1__STATUS_REQUEST__INIT;
    uint8_t buf[16];
    size_t len = siam__v1__status_request__pack(&q, buf);
    siam_rpc_buf resp = {NULL, 0};
    siam_rpc_status st;
    memset(&st, 0, sizeof st);
    if (siam_service_status(svc, buf, len, &resp, &st) != SIAM_RPC_OK) {
        CHECK(0, "status failed: %s", st.msg);
        return NULL;
    }
    Siam__V1__StatusResponse *r = siam__v1__status_response__unpack(NULL, resp.len, resp.data);
    CHECK(r != NULL, "StatusResponse does not decode");
    siam_rpc_buf_free(&resp);
    return r;
}

static const Siam__V1__WorkerStatus *status_worker(const Siam__V1__StatusResponse *r,
                                                   const char *id) {
    for (size_t i = 0; r && i < r->n_workers; i++)
        if (strcmp(r->workers[i]->worker_id, id) == 0)
            return r->workers[i];
    return NULL;
}

/* One good Train batch on stream ts of worker: the stream counts for the worker's liveness. */
static void train_one(siam_service *svc, siam_train_stream *ts, const char *worker) {
    float left[2] = {0, 0}, right[2] = {1, 0};
    uint32_t label = 1;
    Siam__V1__EmbeddingBatch b = SIAM__V1__EMBEDDING_BATCH__INIT;
    b.dim = 2;
    b.n_left = 2, b.left = left;
    b.n_right = 2, b.right = right;
    b.n_labels = 1, b.labels = &label;
    b.worker_id = (char *)worker;
    uint8_t buf[128];
    size_t len = siam__v1__embedding_batch__pack(&b, buf);
    siam_rpc_buf resp = {NULL, 0};
    siam_rpc_status st;
    memset(&st, 0, sizeof st);
    CHECK(siam_service_train(svc, ts, buf, len, &resp, &st) == SIAM_RPC_OK, "train: %s", st.msg);
    siam_rpc_buf_free(&resp);
}

/* Distances of image pairs computed here: a model of spec with params, pixels / 255, each side
 * embedded on its own. */
static void ref_distances(const char *spec, const float *params, size_t n, const uint8_t *limg,
                          const uint8_t *rimg, size_t B, float *dist) {
    siam_model *m = NULL;
    siam_error err = {0};
    if (siam_model_create(&m, spec, 12345, &err)) {
        CHECK(0, "reference model: %s", err.msg);
        return;
    }
    CHECK(siam_model_num_params(m) == n, "reference model has %zu params",
          siam_model_num_params(m));
    memcpy(siam_model_params(m), params, n * sizeof *params);
    size_t in = (size_t)siam_model_input_size(m);
    int dim = siam_model_output_size(m);
    float *x = malloc(B * in * sizeof *x);
    float *el = malloc(B * (size_t)dim * sizeof *el), *er = malloc(B * (size_t)dim * sizeof *er);
    for (int side = 0; side < 2; side++) {
        const uint8_t *img = side ? rimg : limg;
        for (size_t i = 0; i < B * in; i++)
            x[i] = (float)img[i] / 255.0f;
        CHECK(siam_model_embed(m, x, B, side ? er : el, &err) == SIAM_OK, "embed: %s", err.msg);
    }
    for (size_t i = 0; i < B; i++)
        dist[i] = siam_distance(el + i * (size_t)dim, er + i * (size_t)dim, dim);
    free(x);
    free(el);
    free(er);
    siam_model_free(m);
}

static int bitexact_distances, near_distances;

static void check_image_similarity(siam_service *svc, const char *spec, const float *params,
                                   size_t n, siam_rng *rng, const char *what) {
    enum { B = 6, IMG = 784 };
    uint8_t *l = malloc(B * IMG), *r = malloc(B * IMG);
    for (size_t i = 0; i < (size_t)B * IMG; i++) {
        l[i] = (uint8_t)siam_rng_below(rng, 256);
        r[i] = (uint8_t)siam_rng_below(rng, 256);
    }
    memcpy(r, l, IMG); /* pair 0: the same image, distance 0 */
    float want[B];
    ref_distances(spec, params, n, l, r, B, want);
    Siam__V1__SimilarityResponse *resp = NULL;
    siam_rpc_status st;
    int rc = image_similarity(svc, l, (size_t)B * IMG, r, (size_t)B * IMG, 0, NULL, 0, &resp, &st);
    CHECK(rc == SIAM_RPC_OK, "%s: image similarity: %s", what, st.msg);
    if (resp) {
        CHECK(resp->n_distances == B && resp->n_scores == B && resp->n_same == B,
              "%s: %zu distances", what, resp->n_distances);
        for (size_t i = 0; i < B && i < resp->n_distances; i++) {
            float got = resp->distances[i];
            if (memcmp(&got, &want[i], sizeof got) == 0)
                bitexact_distances++;
            else
                near_distances++;
            double tol = 1e-6 * fmax(fabs((double)got), fabs((double)want[i]));
            CHECK(fabs((double)got - (double)want[i]) <= tol, "%s: pair %zu distance %.9g vs %.9g",
                  what, i, (double)got, (double)want[i]);
            CHECK(resp->scores[i] == siam_score(got, resp->threshold) &&
                      resp->same[i] == (got <= resp->threshold),
                  "%s: pair %zu score/same inconsistent with the distance", what, i);
        }
        CHECK(resp->distances[0] == 0.0f, "%s: identical images at distance %g", what,
              (double)resp->distances[0]);
        siam__v1__similarity_response__free_unpacked(resp, NULL);
    }
    free(l);
    free(r);
}

/* Parameters for spec: its initial ones, trainable ones moved at random, batchnorm running
 * means random and variances in [0.5, 1.5] (so that inference stays finite). */
static float *model_params(const char *spec, uint64_t seed, siam_rng *rng, size_t *n_out) {
    siam_model *m = NULL;
    siam_error err = {0};
    if (siam_model_create(&m, spec, seed, &err)) {
        CHECK(0, "model '%s': %s", spec, err.msg);
        return NULL;
    }
    size_t n = siam_model_num_params(m), nt = siam_model_num_trainable(m);
    float *p = malloc(n * sizeof *p);
    memcpy(p, siam_model_params(m), n * sizeof *p);
    for (size_t j = 0; j < nt; j++)
        p[j] += 0.05f * (2 * siam_rng_uniform(rng) - 1);
    size_t c = (n - nt) / 2; /* one batchnorm: mean (c) then var (c) */
    for (size_t j = 0; j < c; j++) {
        p[nt + j] = 0.2f * (2 * siam_rng_uniform(rng) - 1);
        p[nt + c + j] = 0.5f + siam_rng_uniform(rng);
    }
    siam_model_free(m);
    *n_out = n;
    return p;
}

static void test_service(void) {
    siam_rng rng;
    siam_rng_seed(&rng, 66);
    siam_error err = {0};
    const char *S = "in=28x28x1 dense16 relu batchnorm dropout0.5 dense8";
    siam_model *probe = NULL;
    if (siam_model_create(&probe, S, 1, &err)) {
        CHECK(0, "spec '%s': %s", S, err.msg);
        return;
    }
    CHECK(strcmp(siam_model_spec(probe), S) == 0, "canonical spec '%s'", siam_model_spec(probe));
    siam_model_free(probe);
    size_t n = 0, n2 = 0;
    float *P = model_params(S, 1, &rng, &n), *Q = model_params(S, 2, &rng, &n2);
    float *P1 = model_params(S, 3, &rng, &n2), *P2 = model_params(S, 4, &rng, &n2);
    if (!P || !Q || !P1 || !P2)
        return;

    siam_service *svc = NULL;
    CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "test", &err) == 0, "init: %s",
          err.msg);
    CHECK(siam_service_start_averaging(svc, 2, 5.0, NULL, NULL, svc_reply, &err) == 0,
          "start_averaging: %s", err.msg);

    Siam__V1__StatusResponse *s = get_status(svc);
    CHECK(s && strcmp(s->model_spec, "") == 0 && s->round == 0 && s->min_workers == 2 &&
              s->joined_workers == 0 && s->sync_timeout_seconds == 5.0,
          "status before any model");
    siam__v1__status_response__free_unpacked(s, NULL);

    /* image Similarity before any model */
    uint8_t img[2 * 784];
    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (uint8_t)(i * 7);
    Siam__V1__SimilarityResponse *sr = NULL;
    siam_rpc_status st;
    CHECK(image_similarity(svc, img, 784, img + 784, 784, 0, NULL, 0, &sr, &st) ==
              SIAM_RPC_FAILED_PRECONDITION,
          "images before a model: %d %s", st.code, st.msg);

    /* rejected SyncWeights calls */
    call c = {0};
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    sync_bytes(svc, &c, junk, sizeof junk);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT && !c.has_resp_on_error,
          "malformed bytes: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    sync_call(svc, &c, "", S, P, n, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT && strstr(c.msg, "worker_id"),
          "empty worker_id: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    float saved = P[7];
    P[7] = NAN;
    sync_call(svc, &c, "w1", S, P, n, 0, 0);
    P[7] = saved;
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT && strstr(c.msg, "params[7]"),
          "NaN in params: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    saved = P[n - 1];
    P[n - 1] = -INFINITY;
    sync_call(svc, &c, "w1", S, P, n, 100, 0);
    P[n - 1] = saved;
    char field[64];
    snprintf(field, sizeof field, "params[%zu]", n - 1);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT && strstr(c.msg, field),
          "-inf in params: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    sync_call(svc, &c, "w1", "in=28x28x1 dense16 bogus", P, n, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT,
          "invalid model spec on the first join: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    sync_call(svc, &c, "w1", S, P, 0, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT, "empty params: code %d '%s'",
          c.code, c.msg);
    call_reset(&c);
    s = get_status(svc);
    CHECK(s && strcmp(s->model_spec, "") == 0 && s->joined_workers == 0,
          "rejected calls set a model ('%s') or joined %u", s ? s->model_spec : "?",
          s ? s->joined_workers : 0);
    siam__v1__status_response__free_unpacked(s, NULL);

    /* the first join sets the global model; it waits for the second worker */
    call j1 = {0}, j2 = {0};
    sync_call(svc, &j1, "w1", S, P, n, 0, 0);
    sleep_s(0.05);
    CHECK(answered(&j1) == 0, "the first join was answered with min_workers 2 (code %d %s)",
          j1.code, j1.msg);
    s = get_status(svc);
    if (s) {
        CHECK(strcmp(s->model_spec, S) == 0, "status model_spec '%s'", s->model_spec);
        CHECK(s->round == 0 && s->min_workers == 2 && s->joined_workers == 1,
              "status round %llu min %u joined %u", (unsigned long long)s->round, s->min_workers,
              s->joined_workers);
        CHECK(strcmp(s->waiting, "waiting for 1 more worker (1 of 2)") == 0, "status waiting '%s'",
              s->waiting);
        const Siam__V1__WorkerStatus *w = status_worker(s, "w1");
        CHECK(w && w->live && w->last_round == 0, "status of the waiting w1");
        siam__v1__status_response__free_unpacked(s, NULL);
    }
    sync_call(svc, &j2, "w2", S, Q, n, 0, 0);
    CHECK(wait_for(&j1, 2.0) == 1 && wait_for(&j2, 2.0) == 1, "joins answered %d, %d times",
          j1.calls, j2.calls);
    CHECK(j1.code == SIAM_RPC_OK && j2.code == SIAM_RPC_OK && j1.decoded && j2.decoded,
          "joins: %d '%s', %d '%s'", j1.code, j1.msg, j2.code, j2.msg);
    CHECK(same_params(&j1, P, n) && same_params(&j2, P, n),
          "the joins did not get the first joiner's params");
    CHECK(j1.round == 0 && j2.round == 0 && strcmp(j1.spec, S) == 0 && strcmp(j2.spec, S) == 0 &&
              !j1.late && !j2.late,
          "joins: round %llu spec '%s'", (unsigned long long)j1.round, j1.spec);
    call_reset(&j1);
    call_reset(&j2);
    s = get_status(svc);
    CHECK(s && strcmp(s->waiting, "") == 0 && s->joined_workers == 2,
          "status after the joins: waiting '%s'", s ? s->waiting : "?");
    siam__v1__status_response__free_unpacked(s, NULL);

    /* a spec mismatch once there is a model */
    sync_call(svc, &c, "w3", "in=28x28x1 dense4", P, 3140, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_FAILED_PRECONDITION && strstr(c.msg, S) &&
              strstr(c.msg, "in=28x28x1 dense4"),
          "spec mismatch: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    sync_call(svc, &c, "w3", S, P, n - 1, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT,
          "wrong parameter count: code %d '%s'", c.code, c.msg);
    call_reset(&c);

    /* image Similarity with the global model */
    check_image_similarity(svc, S, P, n, &rng, "first join's model");
    {
        uint8_t *big = calloc(2 * 784, 1);
        CHECK(image_similarity(svc, big, 783, big + 784, 783, 0, NULL, 0, &sr, &st) ==
                  SIAM_RPC_INVALID_ARGUMENT,
              "783-byte images: %d %s", st.code, st.msg);
        CHECK(image_similarity(svc, big, 784, big + 784, 783, 0, NULL, 0, &sr, &st) ==
                  SIAM_RPC_INVALID_ARGUMENT,
              "a 783-byte right image: %d %s", st.code, st.msg);
        float emb[8] = {0};
        CHECK(image_similarity(svc, big, 784, big + 784, 784, 8, emb, 8, &sr, &st) ==
                  SIAM_RPC_INVALID_ARGUMENT,
              "images and embeddings: %d %s", st.code, st.msg);
        CHECK(image_similarity(svc, big, 2 * 784, big, 784, 0, NULL, 0, &sr, &st) ==
                  SIAM_RPC_INVALID_ARGUMENT,
              "2 left and 1 right image: %d %s", st.code, st.msg);
        free(big);
    }

    /* a round through the service */
    call r1 = {0}, r2 = {0};
    sync_call(svc, &r1, "w2", S, P2, n, 300, 0);
    CHECK(answered(&r1) == 0, "w2 answered before w1 reported");
    sync_call(svc, &r2, "w1", S, P1, n, 100, 0);
    CHECK(wait_for(&r1, 2.0) == 1 && wait_for(&r2, 2.0) == 1, "round answers %d %d", r1.calls,
          r2.calls);
    float *want = malloc(n * sizeof *want);
    {
        const char *names[2] = {"w1", "w2"};
        const float *ps[2] = {P1, P2};
        const uint64_t smp[2] = {100, 300};
        ref_average(want, names, ps, smp, 2, n);
    }
    CHECK(r1.code == SIAM_RPC_OK && r2.code == SIAM_RPC_OK && same_params(&r1, want, n) &&
              same_params(&r2, want, n),
          "service round: codes %d %d, params differ at %zu", r1.code, r2.code,
          first_diff(&r1, want, n));
    CHECK(r1.round == 1 && r1.workers == 2 && r1.samples == 400 && !r1.late,
          "service round: round %llu workers %u samples %llu", (unsigned long long)r1.round,
          r1.workers, (unsigned long long)r1.samples);
    call_reset(&r1);
    call_reset(&r2);
    check_image_similarity(svc, S, want, n, &rng, "after round 1");

    /* a late update through the service */
    sync_call(svc, &r1, "w1", S, P, n, 10, 0);
    CHECK(answered(&r1) == 1 && r1.code == SIAM_RPC_OK && r1.late && r1.round == 1 &&
              same_params(&r1, want, n),
          "late update through the service: code %d late %d round %llu", r1.code, r1.late,
          (unsigned long long)r1.round);
    call_reset(&r1);

    /* Status: rounds and liveness; w1's Train stream makes it live, its end not */
    siam_train_stream ts;
    memset(&ts, 0, sizeof ts);
    train_one(svc, &ts, "w1");
    s = get_status(svc);
    if (s) {
        CHECK(strcmp(s->model_spec, S) == 0 && s->round == 1 && s->min_workers == 2 &&
                  s->joined_workers == 2 && strcmp(s->waiting, "") == 0,
              "status after round 1: spec '%s' round %llu joined %u waiting '%s'", s->model_spec,
              (unsigned long long)s->round, s->joined_workers, s->waiting);
        const Siam__V1__WorkerStatus *w1 = status_worker(s, "w1"), *w2 = status_worker(s, "w2");
        CHECK(w1 && w1->live && w1->last_round == 1, "status w1 with a stream: live %d last %llu",
              w1 ? w1->live : -1, w1 ? (unsigned long long)w1->last_round : 0ULL);
        CHECK(w2 && w2->live && w2->last_round == 1, "status w2 (join grace): live %d last %llu",
              w2 ? w2->live : -1, w2 ? (unsigned long long)w2->last_round : 0ULL);
        siam__v1__status_response__free_unpacked(s, NULL);
    }
    siam_service_train_end(svc, &ts);
    s = get_status(svc);
    if (s) {
        const Siam__V1__WorkerStatus *w1 = status_worker(s, "w1");
        CHECK(w1 && !w1->live && w1->last_round == 1,
              "status w1 after its stream ended: live %d last %llu", w1 ? w1->live : -1,
              w1 ? (unsigned long long)w1->last_round : 0ULL);
        siam__v1__status_response__free_unpacked(s, NULL);
    }

    /* a waiting SyncWeights call is answered when the service is freed: w1 (not live now) opens
     * a new stream, so w2's report waits for it */
    siam_train_stream ts2;
    memset(&ts2, 0, sizeof ts2);
    train_one(svc, &ts2, "w1");
    call w = {0};
    sync_call(svc, &w, "w2", S, P2, n, 5, 1);
    CHECK(answered(&w) == 0, "w2's report answered at once, w1 live? (code %d)", w.code);
    siam_service_free(svc);
    CHECK(w.calls == 1 && w.code == SIAM_RPC_UNAVAILABLE, "free: waiting call %d times code %d",
          w.calls, w.code);
    call_reset(&w);
    free(want);
    free(P);
    free(Q);
    free(P1);
    free(P2);
}

/* A rejected first join must not decide the global model: a join with a valid spec but the
 * wrong parameter count is INVALID_ARGUMENT, and then another worker's valid join with another
 * spec becomes the global model (siam_service.h: "the first worker's model becomes the global
 * model"; a rejected call is not a worker's model). Likewise siam_service_set_model afterwards.
 * (A regression test: the service once kept the model it built for the refused spec.) */
static void test_service_rejected_first_join(void) {
    siam_rng rng;
    siam_rng_seed(&rng, 77);
    siam_error err = {0};
    const char *S = "in=28x28x1 dense16 relu batchnorm dropout0.5 dense8";
    const char *S_small = "in=28x28x1 dense4";
    size_t n = 0;
    float *P = model_params(S, 5, &rng, &n);
    if (!P)
        return;
    for (int via_set_model = 0; via_set_model < 2; via_set_model++) {
        siam_service *svc = NULL;
        CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "test", &err) == 0, "init");
        CHECK(siam_service_start_averaging(svc, 1, 5.0, NULL, NULL, svc_reply, &err) == 0, "start");
        call c = {0};
        sync_call(svc, &c, "w1", S_small, P, 10, 0, 0); /* dense4 has 3140 params, not 10 */
        CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT,
              "first join with a wrong count: code %d '%s'", c.code, c.msg);
        call_reset(&c);
        if (via_set_model) {
            int rc = siam_service_set_model(svc, S, P, n, 0, 0, &err);
            CHECK(rc == SIAM_OK,
                  "after a rejected first join (spec "
                  "'%s', wrong count), siam_service_set_model('%s', %zu params) returned %d '%s', "
                  "expected SIAM_OK",
                  S_small, S, n, rc, err.msg);
        } else {
            sync_call(svc, &c, "w2", S, P, n, 0, 0);
            CHECK(answered(&c) == 1 && c.code == SIAM_RPC_OK && same_params(&c, P, n),
                  "after a rejected first join (spec "
                  "'%s', wrong count), a valid join with spec '%s' got code %d '%s', expected OK "
                  "with its own params (there is no global model yet)",
                  S_small, S, c.code, c.msg);
            call_reset(&c);
        }
        Siam__V1__StatusResponse *s = get_status(svc);
        CHECK(s && strcmp(s->model_spec, S) == 0, "Status model_spec '%s', expected '%s'",
              s ? s->model_spec : "?", S);
        siam__v1__status_response__free_unpacked(s, NULL);
        siam_service_free(svc);
    }
    free(P);
}

/* Distinct worker names are bounded: the (MAX+1)-th name is RESOURCE_EXHAUSTED naming the limit,
 * a known name is still served, and nothing else changes. */
static void test_worker_limit(void) {
    float q[5] = {1, 2, 3, 4, 5}; /* in=1x2x2 dense1: 4 weights and a bias */
    siam_averaging *a = make_avg(1, 5.0, "in=1x2x2 dense1", q, 5);
    static call calls[SIAM_AVERAGING_MAX_WORKERS + 1];
    int ok = 0;
    for (int i = 0; i < SIAM_AVERAGING_MAX_WORKERS; i++) {
        char name[32];
        snprintf(name, sizeof name, "w%04d", i);
        submit(a, &calls[i], name, "in=1x2x2 dense1", q, 5, 0, 0);
        ok += wait_for(&calls[i], 2.0) == 1 && calls[i].code == SIAM_RPC_OK;
    }
    CHECK(ok == SIAM_AVERAGING_MAX_WORKERS, "%d of %d joins answered OK", ok,
          SIAM_AVERAGING_MAX_WORKERS);
    call *extra = &calls[SIAM_AVERAGING_MAX_WORKERS];
    submit(a, extra, "one-too-many", "in=1x2x2 dense1", q, 5, 0, 0);
    CHECK(wait_for(extra, 2.0) == 1 && extra->code == SIAM_RPC_RESOURCE_EXHAUSTED &&
              strstr(extra->msg, "at most 1024 distinct workers") &&
              strstr(extra->msg, "one-too-many"),
          "worker beyond the limit: %s: %s", siam_rpc_code_name(extra->code), extra->msg);
    call again = {0};
    submit(a, &again, "w0007", "in=1x2x2 dense1", q, 5, 0, 0);
    CHECK(wait_for(&again, 2.0) == 1 && again.code == SIAM_RPC_OK,
          "known worker after the limit: %s", again.msg);
    call_reset(&again);
    for (int i = 0; i <= SIAM_AVERAGING_MAX_WORKERS; i++)
        call_reset(&calls[i]);
    siam_averaging_free(a);
}

/* First joins found by fuzz_sync:
 * - a spec that describes a huge model (here 785 million parameters) with a few parameters is
 *   refused for its parameter count before anything is allocated for it (before: the service
 *   built the model first, allocating twice 3.1 GB for one SyncWeights call of 60 bytes);
 * - a spec not in canonical form (a double and a trailing space) joins with the model it
 *   describes: OK, and the global model is the canonical spec, which later workers may spell
 *   either way (before: the service adopted the spec as the global model and then refused the
 *   very join that set it as a spec mismatch, leaving a model no worker had joined with). */
static void test_service_first_join_specs(void) {
    siam_rng rng;
    siam_rng_seed(&rng, 78);
    siam_error err = {0};
    const char *S = "in=28x28x1 dense4";
    size_t n = 0;
    float *P = model_params(S, 6, &rng, &n);
    if (!P)
        return;
    siam_service *svc = NULL;
    CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "test", &err) == 0, "init");
    CHECK(siam_service_start_averaging(svc, 1, 5.0, NULL, NULL, svc_reply, &err) == 0, "start");
    call c = {0};
    sync_call(svc, &c, "w0", "in=28x28x1 dense1000000", P, 10, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT &&
              strstr(c.msg, "expected 785000000"),
          "first join of a huge spec with 10 params: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    sync_call(svc, &c, "w1", "in=28x28x1  dense4 ", P, n, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_OK && strcmp(c.spec, S) == 0 &&
              same_params(&c, P, n),
          "first join spelling the spec 'in=28x28x1  dense4 ': code %d '%s', spec '%s'", c.code,
          c.msg, c.spec);
    call_reset(&c);
    sync_call(svc, &c, "w2", "in=28x28x1\tdense4", P, n, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_OK && strcmp(c.spec, S) == 0,
          "second join spelling the spec with a tab: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    sync_call(svc, &c, "w3", "in=28x28x1 dense5", P, n, 0, 0);
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_FAILED_PRECONDITION,
          "another model after the first join: code %d '%s'", c.code, c.msg);
    call_reset(&c);
    Siam__V1__StatusResponse *s = get_status(svc);
    CHECK(s && strcmp(s->model_spec, S) == 0 && s->joined_workers == 2,
          "Status model_spec '%s' joined %u", s ? s->model_spec : "?", s ? s->joined_workers : 0);
    siam__v1__status_response__free_unpacked(s, NULL);
    siam_service_free(svc);
    free(P);
}

/* Poisoned weights through the service: a samples value whose sum with another wraps a uint64
 * (before: the round closed with "0 samples", every global parameter inf, and image Similarity
 * answered distance 0 for every pair) is INVALID_ARGUMENT naming the field and the limit; the
 * round closes with the others, finite; a non-finite model is refused by set_model (the layer
 * that adopts it, also for --resume) and as a first join. */
static void test_service_poisoned_weights(void) {
    siam_rng rng;
    siam_rng_seed(&rng, 79);
    siam_error err = {0};
    const char *S = "in=28x28x1 dense4";
    size_t n = 0;
    float *P = model_params(S, 7, &rng, &n), *Q = model_params(S, 8, &rng, &n);
    if (!P || !Q)
        return;
    siam_service *svc = NULL;
    CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "test", &err) == 0, "init");
    CHECK(siam_service_start_averaging(svc, 1, 5.0, NULL, NULL, svc_reply, &err) == 0, "start");
    float *bad = malloc(n * sizeof *bad);
    memcpy(bad, P, n * sizeof *bad);
    bad[1] = INFINITY;
    call c = {0};
    sync_call(svc, &c, "w0", S, bad, n, 0, 0); /* a first join with inf is no model */
    CHECK(answered(&c) == 1 && c.code == SIAM_RPC_INVALID_ARGUMENT && strstr(c.msg, "params[1]"),
          "first join with inf: %s '%s'", siam_rpc_code_name(c.code), c.msg);
    call_reset(&c);
    int rc = siam_service_set_model(svc, S, bad, n, 3, 0, &err);
    CHECK(rc != SIAM_OK && strstr(err.msg, "finite") &&
              !siam_averaging_has_model(siam_service_averaging(svc)),
          "set_model (--resume) with inf: %d '%s'", rc, err.msg);
    CHECK(siam_service_set_model(svc, S, P, n, 0, 0, &err) == SIAM_OK, "set_model: %s", err.msg);

    call j1 = {0}, j2 = {0}, r1 = {0}, r2 = {0};
    sync_call(svc, &j1, "w1", S, P, n, 0, 0);
    sync_call(svc, &j2, "w2", S, P, n, 0, 0);
    sync_call(svc, &r1, "w1", S, Q, n, UINT64_MAX, 0);
    CHECK(answered(&r1) == 1 && r1.code == SIAM_RPC_INVALID_ARGUMENT && strstr(r1.msg, "samples") &&
              strstr(r1.msg, "4294967296"),
          "samples 2^64-1: %s '%s'", siam_rpc_code_name(r1.code), r1.msg);
    call_reset(&r1);
    sync_call(svc, &r2, "w2", S, Q, n, 1, 0);
    sync_call(svc, &r1, "w1", S, P, n, 1, 0);
    CHECK(wait_for(&r1, 5.0) == 1 && wait_for(&r2, 5.0) == 1 && r1.code == SIAM_RPC_OK &&
              r2.code == SIAM_RPC_OK && r1.round == 1 && r1.samples == 2,
          "round after a refused weight: %s '%s' round %llu samples %llu",
          siam_rpc_code_name(r1.code), r1.msg, (unsigned long long)r1.round,
          (unsigned long long)r1.samples);
    int finite = r1.params != NULL;
    for (size_t i = 0; r1.params && i < r1.n_params; i++)
        finite &= isfinite(r1.params[i]) != 0;
    CHECK(finite, "the global model after the round is not finite");
    /* and image Similarity tells different images apart */
    uint8_t img[2 * 784];
    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (uint8_t)(i < 784 ? 0 : 255);
    Siam__V1__SimilarityResponse *sr = NULL;
    siam_rpc_status st;
    image_similarity(svc, img, 784, img + 784, 784, 0, NULL, 0, &sr, &st);
    CHECK(sr && sr->n_distances == 1 && isfinite(sr->distances[0]) && sr->distances[0] > 0,
          "black vs white image: distance %g",
          sr && sr->n_distances ? (double)sr->distances[0] : -1.0);
    if (sr)
        siam__v1__similarity_response__free_unpacked(sr, NULL);
    call_reset(&j1);
    call_reset(&j2);
    call_reset(&r1);
    call_reset(&r2);
    siam_service_free(svc);
    free(bad);
    free(P);
    free(Q);
}

int main(void) {
    siam_log_set_level(SIAM_LOG_WARN);
    double t0 = siam_now();
    test_fedavg();
    test_joins();
    test_timeout();
    test_streams();
    test_errors();
    test_restart_ahead();
    test_restart_min_workers();
    test_resent_reports();
    test_worker_limit();
    test_weights();
    test_service();
    test_service_rejected_first_join();
    test_service_first_join_specs();
    test_service_poisoned_weights();
    printf("image distances: %d bit-exact, %d within 1e-6 relative; %.2f s\n", bitexact_distances,
           near_distances, siam_now() - t0);
    return tu_finish();
}
