/* test_set_loss: the in-set mining losses against an independent double-precision brute force
 * (O(n^3) enumeration of every triplet), their gradients against central finite differences of
 * that brute force, the degenerate sets, the argument checks and the loss names.
 * SIAM_SET_LOSS_BENCH=1 also prints the time per call at n = 256 (not a check). */
#include "test_util.h"

#include <string.h>
#include <time.h>

#include "siam_rng.h"
#include "siam_set_loss.h"
#include "siam_tensor.h"

enum { MAXN = 64 };

typedef struct {
    double loss, hp, hn, norm;
    int64_t pos, neg, trip, terms, active;
    int64_t near; /* terms within 1e-5 of a hinge or a choice: float and double may disagree */
} ref_out;

static double softplus_ref(double v) {
    return v > 30 ? v : log(1.0 + exp(v));
}

/* The losses as docs/DESIGN.md states them, written without the module's W matrix: every
 * triplet (a,p,n) or pair enumerated from the definitions. */
static ref_out ref_loss(const double *x, const uint32_t *ids, int n, int dim,
                        const siam_set_loss_config *c) {
    static double D[MAXN][MAXN];
    ref_out r;
    memset(&r, 0, sizeof r);
    const double m = c->margin, tie = 1e-5;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < dim; k++)
            s += x[i * dim + k] * x[i * dim + k];
        r.norm += sqrt(s) / n;
        for (int j = 0; j < n; j++) {
            double q = 0;
            for (int k = 0; k < dim; k++) {
                double t = x[i * dim + k] - x[j * dim + k];
                q += t * t;
            }
            D[i][j] = c->distance == SIAM_SET_SQUARED ? q : sqrt(q);
        }
    }
    int anchors = 0;
    for (int a = 0; a < n; a++) {
        double hp = -1, hn = -1;
        for (int j = 0; j < n; j++) {
            if (j == a)
                continue;
            if (ids[j] == ids[a]) {
                r.pos++;
                hp = D[a][j] > hp ? D[a][j] : hp;
            } else {
                r.neg++;
                hn = hn < 0 || D[a][j] < hn ? D[a][j] : hn;
                for (int p = 0; p < n; p++)
                    r.trip += p != a && ids[p] == ids[a];
            }
        }
        if (hp >= 0 && hn >= 0) {
            anchors++;
            r.hp += hp;
            r.hn += hn;
        }
    }
    r.pos /= 2;
    r.neg /= 2;
    if (anchors)
        r.hp /= anchors, r.hn /= anchors;
    if (r.pos == 0 || r.neg == 0)
        return r;
    double sum = 0;
    switch (c->mode) {
    case SIAM_SET_CONTRASTIVE: {
        double sp = 0, sn = 0;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) {
                double d = D[i][j];
                r.terms++;
                if (ids[i] == ids[j]) {
                    sp += d * d;
                    r.active += d > 0;
                } else {
                    double h = m - d;
                    r.near += fabs(h) < tie;
                    if (h > 0)
                        sn += h * h, r.active++;
                }
            }
        r.loss = 0.5 * sp / r.pos + 0.5 * sn / r.neg;
        return r;
    }
    case SIAM_SET_BATCH_ALL:
        for (int a = 0; a < n; a++)
            for (int p = 0; p < n; p++)
                for (int q = 0; q < n; q++) {
                    if (p == a || ids[p] != ids[a] || ids[q] == ids[a])
                        continue;
                    double v = D[a][p] - D[a][q] + m;
                    r.terms++;
                    r.near += fabs(v) < tie;
                    if (v > 0)
                        sum += v, r.active++;
                }
        r.loss = r.active ? sum / r.active : 0;
        return r;
    case SIAM_SET_BATCH_HARD:
        /* the hinge (and softplus) rise with d_ap - d_an, so the hardest triplet of an anchor is
         * the one with the largest difference among all its triplets */
        for (int a = 0; a < n; a++) {
            double best = -INFINITY, second = -INFINITY;
            for (int p = 0; p < n; p++)
                for (int q = 0; q < n; q++) {
                    if (p == a || ids[p] != ids[a] || ids[q] == ids[a])
                        continue;
                    double v = D[a][p] - D[a][q];
                    if (v > best)
                        second = best, best = v;
                    else if (v > second)
                        second = v;
                }
            if (best == -INFINITY)
                continue;
            r.terms++;
            r.near += best - second < tie; /* two triplets tie, only a kink if they differ */
            if (c->soft) {
                sum += softplus_ref(best), r.active++;
            } else {
                r.near += fabs(best + m) < tie;
                if (best + m > 0)
                    sum += best + m, r.active++;
            }
        }
        r.loss = sum / r.terms;
        return r;
    case SIAM_SET_SEMI_HARD:
        for (int a = 0; a < n; a++)
            for (int p = 0; p < n; p++) {
                if (p == a || ids[p] != ids[a])
                    continue;
                double semi = INFINITY, far = -INFINITY;
                for (int q = 0; q < n; q++) {
                    if (ids[q] == ids[a])
                        continue;
                    if (D[a][q] > D[a][p] && D[a][q] < semi)
                        semi = D[a][q];
                    if (D[a][q] > far)
                        far = D[a][q];
                    r.near += fabs(D[a][q] - D[a][p]) < tie;
                }
                double dn = semi < INFINITY ? semi : far;
                double v = D[a][p] - dn + m;
                r.terms++;
                r.near += fabs(v) < tie;
                if (v > 0)
                    sum += v, r.active++;
            }
        r.loss = sum / r.terms;
        return r;
    case SIAM_SET_FACENET: /* a schedule of semi-hard and batch-hard, checked in test_facenet */
        break;
    }
    return r;
}

static const char *k_modes[] = {"contrastive", "batch-all", "batch-hard", "semi-hard",
                                "batch-hard-soft"};

static void random_set(siam_rng *rng, float *x, uint32_t *ids, int n, int dim, int classes,
                       float scale) {
    for (int i = 0; i < n * dim; i++)
        x[i] = (siam_rng_uniform(rng) - 0.5f) * 2 * scale;
    for (int i = 0; i < n; i++)
        ids[i] = (uint32_t)((i * 7 + 3) % classes) + 100; /* ids need not be small */
}

/* Module vs brute force: loss, counts, hardest distances. */
static void check_mining(const char *what, const float *x, const uint32_t *ids, int n, int dim,
                         const siam_set_loss_config *c) {
    static double xd[MAXN * 32];
    static float grad[MAXN * 32];
    for (int i = 0; i < n * dim; i++)
        xd[i] = x[i];
    ref_out r = ref_loss(xd, ids, n, dim, c);
    float L = -1;
    siam_set_loss_stats st;
    siam_error err = {0};
    int rc = siam_set_loss(&L, grad, &st, x, ids, n, dim, c, &err);
    CHECK(rc == SIAM_OK, "%s: %s", what, err.msg);
    CHECK(st.pos_pairs == r.pos && st.neg_pairs == r.neg && st.triplets == r.trip,
          "%s: pairs %lld/%lld triplets %lld vs %lld/%lld %lld", what, (long long)st.pos_pairs,
          (long long)st.neg_pairs, (long long)st.triplets, (long long)r.pos, (long long)r.neg,
          (long long)r.trip);
    CHECK(st.terms == r.terms, "%s: terms %lld vs %lld", what, (long long)st.terms,
          (long long)r.terms);
    CHECK(llabs(st.active - r.active) <= r.near, "%s: active %lld vs %lld (%lld near a kink)", what,
          (long long)st.active, (long long)r.active, (long long)r.near);
    if (r.near == 0)
        CHECK_NEAR(L, r.loss, 2e-5 * (1 + fabs(r.loss)), what);
    CHECK_NEAR(st.hardest_pos, r.hp, 2e-5 * (1 + r.hp), what);
    CHECK_NEAR(st.hardest_neg, r.hn, 2e-5 * (1 + r.hn), what);
    CHECK_NEAR(st.mean_norm, r.norm, 1e-5 * (1 + r.norm), what);
    CHECK_NEAR(st.frac_active, r.terms ? (double)st.active / r.terms : 0, 1e-12, what);
    CHECK(!st.degenerate, "%s: flagged degenerate", what);
}

/* Analytic gradient vs central differences of the double brute force. A coordinate whose
 * difference quotients at h and h/2 disagree has a kink (hinge, hardest choice, active count)
 * within h: it is skipped. One near-tie touches every coordinate of its two or three embeddings,
 * so up to a quarter may be skipped. */
static void check_gradient(const char *what, const float *x, const uint32_t *ids, int n, int dim,
                           const siam_set_loss_config *c) {
    static double xd[MAXN * 32];
    static float grad[MAXN * 32];
    float L;
    siam_error err = {0};
    int rc = siam_set_loss(&L, grad, NULL, x, ids, n, dim, c, &err);
    CHECK(rc == SIAM_OK, "%s: %s", what, err.msg);
    for (int i = 0; i < n * dim; i++)
        xd[i] = x[i];
    const double h = 1e-4;
    double worst = 0;
    int skipped = 0, nonzero = 0;
    for (int k = 0; k < n * dim; k++) {
        double keep = xd[k], q[4];
        const double steps[4] = {h, -h, h / 2, -h / 2};
        for (int s = 0; s < 4; s++) {
            xd[k] = keep + steps[s];
            q[s] = ref_loss(xd, ids, n, dim, c).loss;
        }
        xd[k] = keep;
        double n1 = (q[0] - q[1]) / (2 * h), n2 = (q[2] - q[3]) / h;
        if (fabs(n1 - n2) > 1e-6 + 1e-4 * fabs(n2)) {
            if (getenv("SIAM_SET_LOSS_DEBUG"))
                fprintf(stderr, "%s: coord %d: %.9g vs %.9g, analytic %.9g\n", what, k, n1, n2,
                        (double)grad[k]);
            skipped++;
            continue;
        }
        nonzero += fabs(n2) > 1e-6;
        double e = tu_rel_err(grad[k], n2, 1e-4);
        if (e > worst)
            worst = e;
    }
    CHECK(worst < 2e-3, "%s: worst relative gradient error %.3g", what, worst);
    CHECK(skipped * 4 <= n * dim, "%s: %d of %d coordinates at a kink", what, skipped, n * dim);
    CHECK(nonzero > 0, "%s: every gradient is zero: the check checked nothing", what);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Times per call at n = 256; and the two ways to the O(n^2 dim) parts, for the record. */
static void bench(void) {
    enum { N = 256, REPS = 40 };
    siam_rng rng;
    siam_rng_seed(&rng, 99);
    float *x = malloc(sizeof(float) * N * 128), *g = malloc(sizeof(float) * N * 128);
    float *D = malloc(sizeof(float) * N * N), *S = malloc(sizeof(float) * N * N);
    uint32_t ids[N];
    for (int dim = 64; dim <= 128; dim += 64) {
        random_set(&rng, x, ids, N, dim, 16, 0.3f);
        for (int m = 0; m < 5; m++) {
            for (int dist = 0; dist < 2; dist++) {
                siam_set_loss_config c = siam_set_loss_default();
                siam_set_loss_parse(&c, k_modes[m], NULL);
                c.distance = (siam_set_distance)dist;
                float L;
                double t0 = now_s();
                for (int r = 0; r < REPS; r++)
                    siam_set_loss(&L, g, NULL, x, ids, N, dim, &c, NULL);
                printf("bench n=%d dim=%d %-16s %-9s %.3f ms/call\n", N, dim, k_modes[m],
                       dist ? "squared" : "euclidean", (now_s() - t0) / REPS * 1e3);
            }
        }
        double t0 = now_s();
        for (int r = 0; r < REPS; r++)
            siam_set_loss_distances(D, x, N, dim, SIAM_SET_EUCLIDEAN);
        double t_gemm = (now_s() - t0) / REPS;
        t0 = now_s();
        for (int r = 0; r < REPS; r++)
            for (int i = 0; i < N; i++)
                for (int j = i + 1; j < N; j++) {
                    float s = 0;
                    for (int k = 0; k < dim; k++) {
                        float t = x[i * dim + k] - x[j * dim + k];
                        s += t * t;
                    }
                    D[i * N + j] = D[j * N + i] = sqrtf(s);
                }
        double t_loop = (now_s() - t0) / REPS;
        for (int i = 0; i < N * N; i++)
            S[i] = D[i] > 1.0f ? 0.0f : 0.01f;
        t0 = now_s();
        for (int r = 0; r < REPS; r++)
            siam_sgemm(0, 0, N, dim, N, -1.0f, S, N, x, dim, 0.0f, g, dim);
        double t_ggemm = (now_s() - t0) / REPS;
        t0 = now_s();
        for (int r = 0; r < REPS; r++)
            for (int i = 0; i < N; i++)
                for (int j = 0; j < N; j++) {
                    float s = S[i * N + j];
                    if (s == 0.0f)
                        continue;
                    for (int k = 0; k < dim; k++)
                        g[i * dim + k] += s * (x[i * dim + k] - x[j * dim + k]);
                }
        double t_gloop = (now_s() - t0) / REPS;
        printf("bench n=%d dim=%d distances: sgemm %.3f ms, loops %.3f ms; gradient: sgemm %.3f "
               "ms, loops %.3f ms\n",
               N, dim, t_gemm * 1e3, t_loop * 1e3, t_ggemm * 1e3, t_gloop * 1e3);
    }
    free(x);
    free(g);
    free(D);
    free(S);
}

/* facenet: names, the switch from semi-hard to batch-hard at hard_after, and its answers equal to
 * the direct calls of those two losses on the same input, bit for bit. */
static void test_facenet(void) {
    siam_error err = {0};
    siam_set_loss_config f = siam_set_loss_default();
    CHECK(f.hard_after == 0.4f, "default hard_after %g", (double)f.hard_after);
    CHECK(siam_set_loss_parse(&f, "facenet", &err) == SIAM_OK && f.mode == SIAM_SET_FACENET &&
              !f.soft,
          "parse facenet: %s", err.msg);
    CHECK(strcmp(siam_set_loss_name(&f), "facenet") == 0, "name %s", siam_set_loss_name(&f));
    CHECK(strstr(siam_set_loss_choices(), "facenet") != NULL, "choices %s",
          siam_set_loss_choices());
    f.distance = SIAM_SET_SQUARED, f.margin = 0.7f;

    /* the effective loss: semi-hard before hard_after, batch-hard at and after; the rest kept */
    static const struct {
        float p, hard_after;
        siam_set_mode want;
    } at[] = {
        {0.0f, 0.4f, SIAM_SET_SEMI_HARD},  {0.39f, 0.4f, SIAM_SET_SEMI_HARD},
        {0.4f, 0.4f, SIAM_SET_BATCH_HARD}, {1.0f, 0.4f, SIAM_SET_BATCH_HARD},
        {0.0f, 0.0f, SIAM_SET_BATCH_HARD}, {0.999f, 1.0f, SIAM_SET_SEMI_HARD},
        {1.0f, 1.0f, SIAM_SET_BATCH_HARD}, {NAN, 0.4f, SIAM_SET_BATCH_HARD},
    };
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        siam_set_loss_config c = f;
        c.hard_after = at[i].hard_after;
        siam_set_loss_config e = siam_set_loss_at(&c, at[i].p);
        CHECK(e.mode == at[i].want && e.distance == SIAM_SET_SQUARED && e.margin == 0.7f &&
                  !e.soft && e.hard_after == at[i].hard_after,
              "facenet at %g (hard_after %g): mode %d, expected %d", (double)at[i].p,
              (double)at[i].hard_after, (int)e.mode, (int)at[i].want);
    }
    /* the double 0.4 a trainer computes switches with the float 0.4 of the config */
    CHECK(siam_set_loss_at(&f, (float)(2.0 / 5.0)).mode == SIAM_SET_BATCH_HARD, "2/5");
    /* every other loss is left as it is at any progress */
    for (int m = 0; m < 5; m++)
        for (int k = 0; k <= 4; k++) {
            siam_set_loss_config c = siam_set_loss_default();
            siam_set_loss_parse(&c, k_modes[m], NULL);
            siam_set_loss_config e = siam_set_loss_at(&c, 0.25f * (float)k);
            CHECK(memcmp(&e, &c, sizeof c) == 0, "%s changed at %g", k_modes[m], 0.25 * k);
        }
    /* siam_set_loss itself is not a schedule: it refuses facenet, naming what to do */
    float x0[8] = {0, 1, 2, 3, 4, 5, 6, 7}, g0[8], L0 = 5.0f;
    uint32_t id0[4] = {1, 1, 2, 2};
    CHECK(siam_set_loss(&L0, g0, NULL, x0, id0, 4, 2, &f, &err) == SIAM_ERR_ARG &&
              strstr(err.msg, "siam_set_loss_at") && L0 == 5.0f,
          "facenet passed to siam_set_loss: %s", err.msg);

    /* on one input: facenet at 0.39 is semi-hard, at 0.4 and 1.0 batch-hard, bit for bit, and
     * the two differ there (so the comparison shows which one ran) */
    siam_rng rng;
    siam_rng_seed(&rng, 13);
    enum { N = 24, DIM = 6 };
    float x[N * DIM];
    uint32_t ids[N];
    random_set(&rng, x, ids, N, DIM, 4, 0.5f);
    for (int dist = 0; dist < 2; dist++) {
        siam_set_loss_config semi = siam_set_loss_default(), hard = siam_set_loss_default();
        siam_set_loss_parse(&semi, "semi-hard", NULL);
        semi.distance = hard.distance = f.distance = (siam_set_distance)dist;
        semi.margin = hard.margin = f.margin = 1.0f;
        float Ls, Lh, gs[N * DIM], gh[N * DIM];
        siam_set_loss_stats ss, sh;
        CHECK(siam_set_loss(&Ls, gs, &ss, x, ids, N, DIM, &semi, &err) == SIAM_OK, "%s", err.msg);
        CHECK(siam_set_loss(&Lh, gh, &sh, x, ids, N, DIM, &hard, &err) == SIAM_OK, "%s", err.msg);
        CHECK(Ls != Lh && ss.terms != sh.terms, "semi-hard and batch-hard agree: %g, %lld terms",
              (double)Ls, (long long)ss.terms);
        static const float progress[] = {0.0f, 0.39f, 0.4f, 1.0f};
        for (int k = 0; k < 4; k++) {
            siam_set_loss_config e = siam_set_loss_at(&f, progress[k]);
            float L, g[N * DIM];
            siam_set_loss_stats st;
            CHECK(siam_set_loss(&L, g, &st, x, ids, N, DIM, &e, &err) == SIAM_OK, "%s", err.msg);
            int is_hard = progress[k] >= 0.4f;
            CHECK(memcmp(&L, is_hard ? &Lh : &Ls, sizeof L) == 0 &&
                      memcmp(g, is_hard ? gh : gs, sizeof g) == 0 &&
                      st.terms == (is_hard ? sh.terms : ss.terms),
                  "facenet at %g (distance %d): loss %.9g, expected %s %.9g", (double)progress[k],
                  dist, (double)L, is_hard ? "batch-hard" : "semi-hard",
                  (double)(is_hard ? Lh : Ls));
        }
    }
}

int main(void) {
    tu_trap_fp();
    test_facenet();
    siam_error err = {0};
    /* names: every name round-trips, a bad one lists the choices */
    for (int m = 0; m < 5; m++) {
        siam_set_loss_config c = siam_set_loss_default();
        CHECK(siam_set_loss_parse(&c, k_modes[m], &err) == SIAM_OK, "parse %s", k_modes[m]);
        CHECK(strcmp(siam_set_loss_name(&c), k_modes[m]) == 0, "name of %s is %s", k_modes[m],
              siam_set_loss_name(&c));
    }
    {
        siam_set_loss_config c = siam_set_loss_default();
        CHECK(strcmp(siam_set_loss_name(&c), "batch-hard") == 0, "default %s",
              siam_set_loss_name(&c));
        CHECK(siam_set_loss_parse(&c, "batch_hard", &err) == SIAM_ERR_ARG, "bad name accepted");
        CHECK(strstr(err.msg, "batch_hard") && strstr(err.msg, siam_set_loss_choices()),
              "message: %s", err.msg);
        CHECK(siam_set_loss_parse(&c, NULL, &err) == SIAM_ERR_ARG, "NULL name accepted");
        c.mode = (siam_set_mode)9;
        CHECK(strcmp(siam_set_loss_name(&c), "invalid") == 0, "name of mode 9");
    }
    /* argument checks */
    {
        float x[8] = {0}, g[8], L = 123.0f;
        uint32_t ids[4] = {0, 0, 1, 1};
        siam_set_loss_config c = siam_set_loss_default();
        CHECK(siam_set_loss(&L, g, NULL, x, ids, 1, 2, &c, &err) == SIAM_ERR_ARG, "n = 1");
        CHECK(strstr(err.msg, "n = 1") != NULL, "message: %s", err.msg);
        CHECK(siam_set_loss(&L, g, NULL, x, ids, SIAM_SET_LOSS_MAX_N + 1, 2, &c, &err) ==
                  SIAM_ERR_ARG,
              "n above the cap");
        CHECK(strstr(err.msg, "SIAM_SET_LOSS_MAX_N") != NULL, "message: %s", err.msg);
        CHECK(siam_set_loss(&L, g, NULL, x, ids, 4, 0, &c, &err) == SIAM_ERR_ARG, "dim = 0");
        CHECK(strstr(err.msg, "dim = 0") != NULL, "message: %s", err.msg);
        c.margin = -1.0f;
        CHECK(siam_set_loss(&L, g, NULL, x, ids, 4, 2, &c, &err) == SIAM_ERR_ARG, "margin < 0");
        c = siam_set_loss_default();
        c.mode = SIAM_SET_BATCH_ALL;
        c.soft = 1;
        CHECK(siam_set_loss(&L, g, NULL, x, ids, 4, 2, &c, &err) == SIAM_ERR_ARG, "soft all");
        CHECK(strstr(err.msg, "batch-all") != NULL, "message: %s", err.msg);
        CHECK(L == 123.0f, "loss written on error");
    }
    /* degenerate sets: finite, zero, flagged. One class; all singletons; n = 2 either way. */
    {
        struct {
            const char *what;
            int n;
            uint32_t ids[5];
        } cases[] = {{"one class", 5, {3, 3, 3, 3, 3}},
                     {"all singletons", 5, {1, 2, 3, 4, 5}},
                     {"n = 2 same", 2, {7, 7}},
                     {"n = 2 different", 2, {7, 8}}};
        siam_rng rng;
        siam_rng_seed(&rng, 3);
        float x[5 * 4], g[5 * 4];
        for (int i = 0; i < 5 * 4; i++)
            x[i] = siam_rng_uniform(&rng);
        for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++)
            for (int m = 0; m < 5; m++)
                for (int dist = 0; dist < 2; dist++) {
                    siam_set_loss_config c = siam_set_loss_default();
                    siam_set_loss_parse(&c, k_modes[m], NULL);
                    c.distance = (siam_set_distance)dist;
                    float L = -1;
                    siam_set_loss_stats st;
                    memset(g, 0xff, sizeof g); /* NaN bytes: every element must be written */
                    int rc = siam_set_loss(&L, g, &st, x, cases[t].ids, cases[t].n, 4, &c, &err);
                    int zero = 1;
                    for (int i = 0; i < cases[t].n * 4; i++)
                        zero &= g[i] == 0.0f;
                    CHECK(rc == SIAM_OK && L == 0.0f && zero && st.degenerate && st.terms == 0 &&
                              st.active == 0 && st.frac_active == 0.0 && isfinite(st.mean_norm),
                          "%s, %s %d: rc %d loss %g degenerate %d", cases[t].what, k_modes[m], dist,
                          rc, (double)L, st.degenerate);
                }
    }
    /* identical embeddings (every D = 0) in two classes: finite, and the Euclidean subgradient at
     * D = 0 and the squared gradient 2 (x_i - x_j) are both exactly 0 */
    for (int m = 0; m < 5; m++)
        for (int dist = 0; dist < 2; dist++) {
            float x[4 * 3], g[4 * 3], L = -1;
            uint32_t ids[4] = {0, 0, 1, 1};
            for (int i = 0; i < 4 * 3; i++)
                x[i] = 0.37f * (float)(i % 3) - 0.2f;
            siam_set_loss_config c = siam_set_loss_default();
            siam_set_loss_parse(&c, k_modes[m], NULL);
            c.distance = (siam_set_distance)dist;
            siam_set_loss_stats st;
            int rc = siam_set_loss(&L, g, &st, x, ids, 4, 3, &c, &err);
            int zero = 1;
            for (int i = 0; i < 4 * 3; i++)
                zero &= g[i] == 0.0f;
            CHECK(rc == SIAM_OK && isfinite(L) && zero && !st.degenerate && st.hardest_pos == 0.0 &&
                      st.hardest_neg == 0.0,
                  "identical embeddings, %s %d: loss %g", k_modes[m], dist, (double)L);
            /* every hinge is at m: the contrastive negatives give m^2 / 2, triplets m */
            double want = m == 0 ? 0.5 : m == 4 ? log(2.0) : 1.0;
            CHECK_NEAR(L, want, 1e-6, k_modes[m]);
        }
    /* the sgemm distance matrix against plain loops in double */
    {
        siam_rng rng;
        siam_rng_seed(&rng, 5);
        enum { N = 40, DIM = 24 };
        static float x[N * DIM], D[N * N];
        uint32_t ids[N];
        random_set(&rng, x, ids, N, DIM, 4, 1.0f);
        memcpy(x + 5 * DIM, x + 9 * DIM, DIM * sizeof(float)); /* an identical pair */
        for (int dist = 0; dist < 2; dist++) {
            siam_set_loss_distances(D, x, N, DIM, (siam_set_distance)dist);
            double worst = 0;
            for (int i = 0; i < N; i++)
                for (int j = 0; j < N; j++) {
                    double q = 0;
                    for (int k = 0; k < DIM; k++) {
                        double t = (double)x[i * DIM + k] - x[j * DIM + k];
                        q += t * t;
                    }
                    double want = dist ? q : sqrt(q);
                    double e = fabs(D[i * N + j] - want) / (1 + want);
                    worst = e > worst ? e : worst;
                }
            CHECK(worst < 1e-5, "distances %d: worst error %.3g", dist, worst);
            CHECK(D[5 * N + 9] == 0.0f && D[9 * N + 5] == 0.0f, "identical pair at %g",
                  (double)D[5 * N + 9]);
        }
    }
    /* every mode x distance: mining against brute force, gradients against finite differences.
     * Scales chosen so some terms are active and some not (distances around the margin 1). */
    siam_rng rng;
    siam_rng_seed(&rng, 11);
    for (int m = 0; m < 5; m++)
        for (int dist = 0; dist < 2; dist++)
            for (int trial = 0; trial < 4; trial++) {
                siam_set_loss_config c = siam_set_loss_default();
                siam_set_loss_parse(&c, k_modes[m], NULL);
                c.distance = (siam_set_distance)dist;
                c.margin = trial == 3 ? 0.3f : 1.0f;
                int n = trial < 2 ? 10 : 14, dim = trial < 2 ? 5 : 7, classes = 2 + trial;
                float x[MAXN * 32];
                uint32_t ids[MAXN];
                random_set(&rng, x, ids, n, dim, classes, 0.25f + 0.1f * (float)trial);
                char what[96];
                snprintf(what, sizeof what, "%s %s trial %d", k_modes[m],
                         dist ? "squared" : "euclidean", trial);
                check_mining(what, x, ids, n, dim, &c);
                check_gradient(what, x, ids, n, dim, &c);
                /* a bigger set for the mining only (the finite differences would be slow) */
                float xb[MAXN * 32];
                uint32_t idb[MAXN];
                random_set(&rng, xb, idb, MAXN, 16, 3 + 3 * trial, 0.2f);
                snprintf(what, sizeof what, "%s %s n=64 trial %d", k_modes[m],
                         dist ? "squared" : "euclidean", trial);
                check_mining(what, xb, idb, MAXN, 16, &c);
            }
    if (getenv("SIAM_SET_LOSS_BENCH"))
        bench();
    return tu_finish();
}
