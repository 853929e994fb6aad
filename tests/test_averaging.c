/* test_averaging: the server's weight averaging (server/siam_averaging) called directly.
 * Averaged parameters equal, byte for byte, a samples-weighted mean computed here in worker-name
 * order, whatever the arrival order; joins wait for min_workers; a round closes at the sync
 * timeout, at once when the last live worker's stream ends, and late updates are answered with
 * the newest global parameters without being averaged; every error has its status code;
 * shutdown and free answer pending calls. After a restart, reports join their workers, reports
 * ahead of the server are averaged and the round numbers go on from the workers', and rounds
 * wait for min_workers until their timeout; a report sent again counts once. Weights are
 * bounded and capped, and no round publishes a non-finite model. (The service's SyncWeights,
 * Similarity and Status path: test_service_sync.) */
#include "test_sync_util.h"

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
        siam_averaging_config bad = {0, 1.0, record, NULL, NULL, NULL};
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
    siam_averaging_config cfg = {2, T, record, on_round, NULL, call_gone};
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
/* 6. Poisoned weights: samples are bounded (2^32), a round never publishes a non-finite model,
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

/* ------------------------------------------------------------------------------------------ */
/* 7. A join whose caller gave up does not count towards min_workers */

static void test_cancelled_joins(void) {
    float g0[N_PARAMS];
    siam_rng rng;
    siam_rng_seed(&rng, 101);
    random_params(&rng, g0, N_PARAMS);
    siam_averaging *a = make_avg(2, 3.0, SPEC, g0, N_PARAMS);
    if (!a)
        return;
    call ja = {0}, jb = {0}, jc = {0}, ja2 = {0};
    submit(a, &ja, "alpha", SPEC, g0, N_PARAMS, 0, 0);
    call_give_up(&ja); /* alpha's deadline passed: its call is cancelled */
    submit(a, &jb, "beta", SPEC, g0, N_PARAMS, 0, 0);
    sleep_s(0.1);
    CHECK(answered(&jb) == 0,
          "beta was released by alpha's join although alpha's caller had gone (%s)",
          siam_rpc_code_name(jb.code));
    CHECK(answered(&ja) == 1 && ja.code == SIAM_RPC_CANCELLED,
          "the gone join: answered %d times, %s", ja.calls, siam_rpc_code_name(ja.code));
    siam_averaging_info info;
    siam_averaging_get_info(a, &info);
    CHECK(info.joined == 1 && strcmp(info.waiting, "waiting for 1 more worker (1 of 2)") == 0,
          "after a gone join: joined %d, '%s'", info.joined, info.waiting);
    /* a waiting join whose caller goes: Status no longer counts it */
    call_give_up(&jb);
    siam_averaging_get_info(a, &info);
    CHECK(info.joined == 0 && answered(&jb) == 1 && jb.code == SIAM_RPC_CANCELLED,
          "after beta gave up too: joined %d, beta answered %d times (%s)", info.joined, jb.calls,
          siam_rpc_code_name(jb.code));
    /* two live joins release each other; alpha comes back under its name */
    submit(a, &ja2, "alpha", SPEC, g0, N_PARAMS, 0, 0);
    CHECK(answered(&ja2) == 0, "alpha alone was released");
    submit(a, &jc, "gamma", SPEC, g0, N_PARAMS, 0, 0);
    CHECK(wait_for(&ja2, 2.0) == 1 && wait_for(&jc, 2.0) == 1 && ja2.code == SIAM_RPC_OK &&
              jc.code == SIAM_RPC_OK && same_params(&jc, g0, N_PARAMS),
          "two live joins: %s %s", siam_rpc_code_name(ja2.code), siam_rpc_code_name(jc.code));
    siam_averaging_free(a);
    CHECK(ja.calls == 1 && jb.calls == 1 && jc.calls == 1 && ja2.calls == 1,
          "answers: %d %d %d %d (each exactly once)", ja.calls, jb.calls, jc.calls, ja2.calls);
    call_reset(&ja);
    call_reset(&jb);
    call_reset(&jc);
    call_reset(&ja2);
}

/* ------------------------------------------------------------------------------------------ */
/* 8. Invented names: 1,024 of them fill the table, but once quiet for the expiry time they are
 * forgotten and a real worker gets in; a worker with an open stream or a waiting call stays. */

static void test_worker_expiry(void) {
    float q[5] = {1, 2, 3, 4, 5};
    const char *S5 = "in=1x2x2 dense1";
    siam_averaging *a = make_avg(2, 0.05, S5, q, 5);
    if (!a)
        return;
    siam_averaging_set_expiry(a, 0.3);
    siam_averaging_info info;
    siam_averaging_get_info(a, &info);
    CHECK(info.expiry == 0.3, "expiry %g", info.expiry);
    static call calls[SIAM_AVERAGING_MAX_WORKERS];
    /* 1,022 invented names by SyncWeights joins that get released, 2 by Train streams */
    for (int i = 0; i < SIAM_AVERAGING_MAX_WORKERS - 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "fake%04d", i);
        submit(a, &calls[i], name, S5, q, 5, 0, 0);
    }
    siam_averaging_stream(a, "streamer", +1); /* stays open: never forgotten */
    siam_averaging_stream(a, "stream-gone", +1);
    siam_averaging_stream(a, "stream-gone", -1);
    call real = {0}, real2 = {0};
    submit(a, &real, "real", S5, q, 5, 0, 0);
    CHECK(answered(&real) == 1 && real.code == SIAM_RPC_RESOURCE_EXHAUSTED &&
              strstr(real.msg, "forgotten"),
          "a new name in a full table: %s '%s'", siam_rpc_code_name(real.code), real.msg);
    call_reset(&real);
    sleep_s(0.45);
    submit(a, &real, "real", S5, q, 5, 0, 0);
    CHECK(answered(&real) == 1 && real.code == SIAM_RPC_OK,
          "a real worker after the invented names went quiet: %s '%s'",
          siam_rpc_code_name(real.code), real.msg);
    siam_averaging_get_info(a, &info);
    CHECK(info.known == 2 && info.joined == 1 && info.waiting[0] == '\0',
          "after expiry: %zu known (streamer and real), %d joined, waiting '%s'", info.known,
          info.joined, info.waiting);
    /* the streamer survived: it joins (a name the table still holds) */
    submit(a, &real2, "streamer", S5, q, 5, 0, 0);
    CHECK(answered(&real2) == 1 && real2.code == SIAM_RPC_OK, "streamer join: %s",
          siam_rpc_code_name(real2.code));
    int live = 0;
    uint64_t last = 0;
    CHECK(siam_averaging_worker(a, "fake0001", &live, &last) == 0,
          "an invented name is still known after its expiry");
    siam_averaging_stream(a, "streamer", -1);
    siam_averaging_free(a);
    for (int i = 0; i < SIAM_AVERAGING_MAX_WORKERS; i++)
        call_reset(&calls[i]);
    call_reset(&real);
    call_reset(&real2);
}

int main(void) {
    siam_log_set_level(SIAM_LOG_WARN);
    sync_test_init();
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
    test_cancelled_joins();
    test_worker_expiry();
    printf("%.2f s\n", siam_now() - t0);
    return tu_finish();
}
