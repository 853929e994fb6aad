/* test_val: the balanced pair sampler and VAL at FAR against independent computations: every
 * sampled pair checked (distinct images, label = same class, no pair twice), the whole space
 * when all pairs are asked for, uniform frequencies over many seeds, distances against a
 * brute force in double, the threshold and VAL/FAR against a sort written here, a hand-made set
 * whose threshold, VAL and FAR are known exactly, reproducibility, and the bad inputs. */
#include "test_util.h"

#include <string.h>

#include "siam_rng.h"
#include "siam_val.h"

static uint64_t key(uint32_t a, uint32_t b) {
    return (uint64_t)a << 32 | b;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* every pair well-formed; returns the number of pairs that occur more than once */
static size_t check_pairs(const siam_val_pairs *p, const uint8_t *lab, size_t n_images,
                          const char *what) {
    size_t bad = 0, dup = 0;
    uint64_t *keys = malloc((p->n ? p->n : 1) * sizeof *keys);
    for (size_t i = 0; i < p->n; i++) {
        int want = i < p->n_pos;
        if (p->left[i] >= p->right[i] || p->right[i] >= n_images || p->labels[i] != (uint8_t)want ||
            (lab[p->left[i]] == lab[p->right[i]]) != want)
            bad++;
        keys[i] = key(p->left[i], p->right[i]);
    }
    qsort(keys, p->n, sizeof *keys, cmp_u64);
    for (size_t i = 1; i < p->n; i++)
        dup += keys[i] == keys[i - 1];
    free(keys);
    CHECK(bad == 0, "%s: %zu malformed pairs (left < right, label = same class)", what, bad);
    CHECK(p->n == p->n_pos + p->n_neg, "%s: n %zu != %zu + %zu", what, p->n, p->n_pos, p->n_neg);
    return dup;
}

static void random_set(siam_rng *r, uint8_t *lab, float *emb, size_t n, int dim, int classes) {
    for (size_t i = 0; i < n; i++) {
        lab[i] = (uint8_t)siam_rng_below(r, (uint64_t)classes);
        for (int k = 0; k < dim; k++) /* classes apart, with overlap */
            emb[i * dim + k] = (float)(lab[i] * (k % 3 == 0)) + 2.0f * siam_rng_uniform(r) - 1.0f;
    }
}

/* asking for every pair gives every pair, once */
static void test_whole_space(void) {
    enum { N = 60 };
    uint8_t lab[N];
    siam_rng r;
    siam_rng_seed(&r, 3);
    for (int i = 0; i < N; i++) /* uneven classes, one class of one image (class 4) */
        lab[i] = i == 17 ? 4 : (uint8_t)siam_rng_below(&r, 4);
    uint64_t pos = 0, neg = 0, have_pos, have_neg;
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) {
            pos += lab[i] == lab[j];
            neg += lab[i] != lab[j];
        }
    siam_val_pairs_available(lab, N, &have_pos, &have_neg);
    CHECK(have_pos == pos && have_neg == neg, "available %llu/%llu, counted %llu/%llu",
          (unsigned long long)have_pos, (unsigned long long)have_neg, (unsigned long long)pos,
          (unsigned long long)neg);
    siam_val_pairs p;
    siam_error err = {0};
    CHECK(siam_val_pairs_sample(&p, lab, N, pos, neg, 9, &err) == SIAM_OK, "%s", err.msg);
    CHECK(check_pairs(&p, lab, N, "whole space") == 0, "a pair twice");
    /* distinct, well-formed and as many as there are: so every pair */
    CHECK(p.n_pos == pos && p.n_neg == neg, "got %zu/%zu", p.n_pos, p.n_neg);
    size_t with17 = 0;
    for (size_t i = 0; i < p.n_pos; i++)
        with17 += p.left[i] == 17 || p.right[i] == 17;
    CHECK(with17 == 0, "the one-image class is in %zu positive pairs", with17);
    siam_val_pairs_free(&p);
    siam_val_pairs_free(&p); /* twice: safe */
}

/* each pair equally likely: a set with 4 positive and 6 negative pairs, many seeds */
static void test_uniform(void) {
    const uint8_t lab[5] = {0, 0, 1, 0, 1}; /* positives {0,1} {0,3} {1,3} {2,4} */
    enum { RUNS = 40000 };
    size_t pos_hits[5][5] = {{0}}, neg_hits[5][5] = {{0}};
    siam_error err = {0};
    for (uint64_t s = 0; s < RUNS; s++) {
        siam_val_pairs p;
        if (siam_val_pairs_sample(&p, lab, 5, 1, 2, s, &err) != SIAM_OK) {
            CHECK(0, "%s", err.msg);
            return;
        }
        pos_hits[p.left[0]][p.right[0]]++;
        neg_hits[p.left[1]][p.right[1]]++;
        neg_hits[p.left[2]][p.right[2]]++;
        siam_val_pairs_free(&p);
    }
    /* one positive of 4: p = 1/4; two negatives of 6: each pair p = 1/3; within 5 sigma */
    double sp = sqrt(RUNS * 0.25 * 0.75), sn = sqrt(RUNS / 3.0 * 2.0 / 3.0);
    int n_pos = 0, n_neg = 0;
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++) {
            if (lab[i] == lab[j]) {
                n_pos++;
                CHECK(fabs((double)pos_hits[i][j] - RUNS / 4.0) < 5 * sp,
                      "positive pair (%d,%d) drawn %zu times of %d", i, j, pos_hits[i][j], RUNS);
                CHECK(neg_hits[i][j] == 0, "positive pair (%d,%d) drawn as negative", i, j);
            } else {
                n_neg++;
                CHECK(fabs((double)neg_hits[i][j] - RUNS / 3.0) < 5 * sn,
                      "negative pair (%d,%d) drawn %zu times of %d", i, j, neg_hits[i][j], RUNS);
                CHECK(pos_hits[i][j] == 0, "negative pair (%d,%d) drawn as positive", i, j);
            }
        }
    CHECK(n_pos == 4 && n_neg == 6, "the set has %d/%d pairs", n_pos, n_neg);
    for (int i = 0; i < 5; i++)
        CHECK(pos_hits[i][i] == 0 && neg_hits[i][i] == 0, "image %d paired with itself", i);
}

/* the reference: threshold, VAL and FAR by sorting the negatives' distances */
static void brute_val(const float *tr_d, const uint8_t *tr_y, size_t tr_n, const float *te_d,
                      const uint8_t *te_y, size_t te_n, double far_target, float *t, double *val,
                      double *far) {
    float *neg = malloc(tr_n * sizeof *neg), dmax = 0;
    size_t n_neg = 0;
    for (size_t i = 0; i < tr_n; i++) {
        if (!tr_y[i])
            neg[n_neg++] = tr_d[i];
        if (tr_d[i] > dmax)
            dmax = tr_d[i];
    }
    qsort(neg, n_neg, sizeof *neg, cmp_float);
    size_t m = 0; /* the most false accepts allowed */
    while (m < n_neg && (double)(m + 1) / (double)n_neg <= far_target)
        m++;
    /* the (m+1)-th negative must be refused: t just below it (and below its equals) */
    *t = m < n_neg ? nextafterf(neg[m], -INFINITY) : dmax;
    size_t p = 0, ta = 0, q = 0, fa = 0;
    for (size_t i = 0; i < te_n; i++) {
        if (te_y[i]) {
            p++;
            ta += te_d[i] <= *t;
        } else {
            q++;
            fa += te_d[i] <= *t;
        }
    }
    *val = (double)ta / (double)p;
    *far = (double)fa / (double)q;
    free(neg);
}

static void brute_distances(const float *emb, int dim, const siam_val_pairs *p, double *d) {
    for (size_t i = 0; i < p->n; i++) {
        double s = 0;
        for (int k = 0; k < dim; k++) {
            double t =
                (double)emb[p->left[i] * (size_t)dim + k] - emb[p->right[i] * (size_t)dim + k];
            s += t * t;
        }
        d[i] = sqrt(s);
    }
}

/* random sets: pairs, distances and VAL/FAR against the brute force */
static void test_against_brute(void) {
    enum { NTR = 3000, NTE = 1500, DIM = 12 };
    static uint8_t trl[NTR], tel[NTE];
    static float tre[NTR * DIM], tee[NTE * DIM];
    siam_rng r;
    siam_rng_seed(&r, 77);
    random_set(&r, trl, tre, NTR, DIM, 10);
    random_set(&r, tel, tee, NTE, DIM, 10);
    siam_error err = {0};
    siam_val_set tr = {tre, trl, NTR, 20000, 20000, 5}, te = {tee, tel, NTE, 15000, 15000, 6};
    siam_val_report rep;
    CHECK(siam_val_at_far(&tr, &te, DIM, 1e-3, &rep, &err) == SIAM_OK, "%s", err.msg);

    /* the same pairs (same seeds) and distances, recomputed */
    siam_val_pairs ptr, pte;
    CHECK(siam_val_pairs_sample(&ptr, trl, NTR, 20000, 20000, 5, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_val_pairs_sample(&pte, tel, NTE, 15000, 15000, 6, &err) == SIAM_OK, "%s", err.msg);
    CHECK(check_pairs(&ptr, trl, NTR, "training") == 0, "training pairs repeat");
    CHECK(check_pairs(&pte, tel, NTE, "test") == 0, "test pairs repeat");
    float *dtr = malloc(ptr.n * sizeof *dtr), *dte = malloc(pte.n * sizeof *dte);
    double *btr = malloc(ptr.n * sizeof *btr), *bte = malloc(pte.n * sizeof *bte);
    CHECK(siam_val_distances(tre, NTR, DIM, &ptr, dtr, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_val_distances(tee, NTE, DIM, &pte, dte, &err) == SIAM_OK, "%s", err.msg);
    brute_distances(tre, DIM, &ptr, btr);
    brute_distances(tee, DIM, &pte, bte);
    double worst = 0;
    for (size_t i = 0; i < ptr.n; i++)
        worst = fmax(worst, fabs(dtr[i] - btr[i]) / fmax(btr[i], 1e-30));
    for (size_t i = 0; i < pte.n; i++)
        worst = fmax(worst, fabs(dte[i] - bte[i]) / fmax(bte[i], 1e-30));
    CHECK(worst <= 0x1p-24, "distances differ from double by %g relative (> float rounding)",
          worst);

    float t;
    double val, far;
    brute_val(dtr, ptr.labels, ptr.n, dte, pte.labels, pte.n, 1e-3, &t, &val, &far);
    CHECK(rep.threshold == t, "threshold %.9g, brute force %.9g", (double)rep.threshold, (double)t);
    CHECK(rep.val == val && rep.far == far, "VAL %.9g FAR %.9g, brute force %.9g %.9g", rep.val,
          rep.far, val, far);
    CHECK(rep.train_far <= 1e-3, "training FAR %g above the target", rep.train_far);
    /* FaceNet's convention: the threshold from the test pairs themselves */
    float to;
    double valo, faro;
    brute_val(dte, pte.labels, pte.n, dte, pte.labels, pte.n, 1e-3, &to, &valo, &faro);
    CHECK(rep.oracle_threshold == to && rep.oracle_val == valo && rep.oracle_far == faro &&
              rep.oracle_far <= 1e-3,
          "test-threshold VAL %.9g FAR %.9g at %.9g, brute force %.9g %.9g at %.9g", rep.oracle_val,
          rep.oracle_far, (double)rep.oracle_threshold, valo, faro, (double)to);
    CHECK(rep.train_pos == 20000 && rep.train_neg == 20000 && rep.test_pos == 15000 &&
              rep.test_neg == 15000,
          "counts %zu %zu %zu %zu", rep.train_pos, rep.train_neg, rep.test_pos, rep.test_neg);
    CHECK(rep.val == (double)rep.true_accepts / 15000 &&
              rep.far == (double)rep.false_accepts / 15000,
          "VAL/FAR are not TA/P, FA/N");
    CHECK(rep.val > 0.01 && rep.val < 0.99, "VAL %g: the case should not be trivial", rep.val);
    printf("random sets: threshold %.6f, train VAL %.4f FAR %.5f, test VAL %.4f FAR %.5f\n",
           (double)rep.threshold, rep.train_val, rep.train_far, rep.val, rep.far);
    free(dtr);
    free(dte);
    free(btr);
    free(bte);
    siam_val_pairs_free(&ptr);
    siam_val_pairs_free(&pte);
}

/* a hand-made case (all pairs used): threshold, VAL and FAR known exactly */
static void test_hand_made(void) {
    /* training, 2-D on the x axis: class 0 at 0 and 1, class 1 at 10, class 2 at 10.5.
     * positive: d(0,1) = 1; negatives: 0.5, 9, 9.5, 10, 10.5. At FAR target 0.2 one false accept
     * is allowed, so t is the float just below 9: train VAL 1, FAR 1/5. */
    const float tre[] = {0, 0, 1, 0, 10, 0, 10.5f, 0};
    const uint8_t trl[] = {0, 0, 1, 2};
    /* test: class 0 at 0, 2, 9.5; class 1 at 20, 29; class 2 at 10.
     * positives: 2, 9.5, 7.5 (class 0), 9 (class 1): 2 and 7.5 accepted (9 is just above t):
     * VAL = 2/4. negatives: class 0-1: 20, 29, 18, 27, 10.5, 19.5; class 0-2: 10, 8, 0.5;
     * class 1-2: 10, 19: 8 and 0.5 accepted: FAR = 2/11. */
    const float tee[] = {0, 0, 2, 0, 9.5f, 0, 20, 0, 29, 0, 10, 0};
    const uint8_t tel[] = {0, 0, 0, 1, 1, 2};
    siam_val_set tr = {tre, trl, 4, 1, 5, 1}, te = {tee, tel, 6, 4, 11, 2};
    siam_val_report rep;
    siam_error err = {0};
    CHECK(siam_val_at_far(&tr, &te, 2, 0.2, &rep, &err) == SIAM_OK, "%s", err.msg);
    CHECK(rep.threshold == nextafterf(9.0f, 0.0f), "threshold %.9g, expected just below 9",
          (double)rep.threshold);
    CHECK(rep.train_val == 1.0 && rep.train_far == 0.2, "train VAL %g FAR %g", rep.train_val,
          rep.train_far);
    CHECK(rep.val == 0.5 && rep.far == 2.0 / 11.0, "test VAL %g FAR %g, expected 0.5, 2/11",
          rep.val, rep.far);
    CHECK(rep.true_accepts == 2 && rep.false_accepts == 2, "TA %zu FA %zu", rep.true_accepts,
          rep.false_accepts);
    CHECK(rep.test_pos == 4 && rep.test_neg == 11 && rep.train_pos == 1 && rep.train_neg == 5,
          "counts %zu %zu %zu %zu", rep.test_pos, rep.test_neg, rep.train_pos, rep.train_neg);
    /* a test pair exactly at the threshold is accepted (D <= t): class 0 at 0 and at t, class 1
     * at -t (negatives 2t and t: the one at t is a false accept) */
    const float t = nextafterf(9.0f, 0.0f), edge[] = {0, 0, t, 0, -t, 0};
    const uint8_t edge_l[] = {0, 0, 1};
    siam_val_set te_edge = {edge, edge_l, 3, 1, 2, 3};
    CHECK(siam_val_at_far(&tr, &te_edge, 2, 0.2, &rep, &err) == SIAM_OK, "%s", err.msg);
    CHECK(rep.val == 1.0 && rep.far == 0.5, "at the threshold: VAL %g FAR %g, expected 1, 0.5",
          rep.val, rep.far);
    /* FAR target 0: no false accept allowed: t just below 0.5; nothing of the test set but the
     * negative at 0.5? no: 0.5 > t; test VAL 0, FAR 0 */
    CHECK(siam_val_at_far(&tr, &te, 2, 0.0, &rep, &err) == SIAM_OK, "%s", err.msg);
    CHECK(rep.threshold == nextafterf(0.5f, 0.0f) && rep.val == 0.0 && rep.far == 0.0 &&
              rep.train_val == 0.0,
          "FAR 0: t %.9g VAL %g FAR %g", (double)rep.threshold, rep.val, rep.far);
}

/* same counts and seed: the same pairs and report; another seed: other pairs */
static void test_reproducible(void) {
    enum { N = 20000, DIM = 4 };
    static uint8_t lab[N];
    static float emb[N * DIM];
    siam_rng r;
    siam_rng_seed(&r, 11);
    random_set(&r, lab, emb, N, DIM, 10);
    siam_error err = {0};
    siam_val_pairs a, b, c;
    CHECK(siam_val_pairs_sample(&a, lab, N, SIAM_VAL_PAIRS_DEFAULT, SIAM_VAL_PAIRS_DEFAULT, 42,
                                &err) == SIAM_OK,
          "%s", err.msg);
    CHECK(siam_val_pairs_sample(&b, lab, N, SIAM_VAL_PAIRS_DEFAULT, SIAM_VAL_PAIRS_DEFAULT, 42,
                                &err) == SIAM_OK,
          "%s", err.msg);
    CHECK(siam_val_pairs_sample(&c, lab, N, SIAM_VAL_PAIRS_DEFAULT, SIAM_VAL_PAIRS_DEFAULT, 43,
                                &err) == SIAM_OK,
          "%s", err.msg);
    CHECK(a.n_pos == SIAM_VAL_PAIRS_DEFAULT && a.n_neg == SIAM_VAL_PAIRS_DEFAULT, "counts %zu %zu",
          a.n_pos, a.n_neg);
    CHECK(check_pairs(&a, lab, N, "default counts") == 0, "pairs repeat");
    CHECK(a.n == b.n && !memcmp(a.left, b.left, a.n * 4) && !memcmp(a.right, b.right, a.n * 4) &&
              !memcmp(a.labels, b.labels, a.n),
          "seed 42 twice: different pairs");
    size_t same = 0;
    for (size_t i = 0; i < a.n; i++)
        same += a.left[i] == c.left[i] && a.right[i] == c.right[i];
    CHECK(same < a.n / 10, "seeds 42 and 43 share %zu of %zu pairs", same, a.n);
    siam_val_pairs_free(&a);
    siam_val_pairs_free(&b);
    siam_val_pairs_free(&c);

    siam_val_set tr = {emb, lab, N / 2, 5000, 7000, 1},
                 te = {emb + N / 2 * DIM, lab + N / 2, N / 2, 3000, 9000, 2};
    siam_val_report r1, r2;
    CHECK(siam_val_at_far(&tr, &te, DIM, 1e-3, &r1, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_val_at_far(&tr, &te, DIM, 1e-3, &r2, &err) == SIAM_OK, "%s", err.msg);
    CHECK(!memcmp(&r1, &r2, sizeof r1), "the same call twice: different reports");
    CHECK(r1.train_pos == 5000 && r1.train_neg == 7000 && r1.test_pos == 3000 &&
              r1.test_neg == 9000,
          "counts %zu %zu %zu %zu", r1.train_pos, r1.train_neg, r1.test_pos, r1.test_neg);
}

static void expect_arg(int rc, const siam_error *err, const char *want, const char *what) {
    CHECK(rc == SIAM_ERR_ARG && strstr(err->msg, want), "%s: rc %d, message '%s' lacks '%s'", what,
          rc, err->msg, want);
}

static void test_bad_input(void) {
    siam_val_pairs p;
    siam_error err = {0};
    const uint8_t one_short[4] = {0, 0, 0, 1}; /* class 1 has one image: 3 positive pairs */
    expect_arg(siam_val_pairs_sample(&p, one_short, 4, 4, 1, 1, &err), &err, "only 3 distinct",
               "4 positives of 3");
    CHECK(p.n == 0 && !p.left, "not zeroed after a failure");
    siam_val_pairs_free(&p);
    CHECK(siam_val_pairs_sample(&p, one_short, 4, 3, 3, 1, &err) == SIAM_OK, "%s", err.msg);
    for (size_t i = 0; i < p.n_pos; i++)
        CHECK(p.right[i] != 3, "the one-image class's image in a positive pair");
    siam_val_pairs_free(&p);
    const uint8_t singletons[3] = {0, 1, 2};
    expect_arg(siam_val_pairs_sample(&p, singletons, 3, 1, 1, 1, &err), &err, "only 0 distinct",
               "all singletons");
    const uint8_t one_class[3] = {5, 5, 5};
    expect_arg(siam_val_pairs_sample(&p, one_class, 3, 1, 1, 1, &err), &err,
               "different-class pairs, but the 3 images have only 0", "one class");
    expect_arg(siam_val_pairs_sample(&p, one_class, 1, 1, 0, 1, &err), &err, "the 1 images",
               "one image");
    expect_arg(siam_val_pairs_sample(&p, NULL, 0, 1, 0, 1, &err), &err, "the 0 images",
               "no images");
    CHECK(siam_val_pairs_sample(&p, NULL, 0, 0, 0, 1, &err) == SIAM_OK, "zero of nothing: %s",
          err.msg);
    siam_val_pairs_free(&p);

    const float emb[8] = {0, 0, 1, 1, 2, 2, 3, 3};
    const uint8_t lab[4] = {0, 0, 1, 1};
    siam_val_set tr = {emb, lab, 4, 2, 4, 1}, te = {emb, lab, 4, 2, 4, 2};
    siam_val_report rep;
    siam_val_set bad = tr;
    bad.n_pos = 0;
    expect_arg(siam_val_at_far(&bad, &te, 2, 1e-3, &rep, &err), &err, "training pairs",
               "no training positives");
    bad = te;
    bad.n_neg = 5;
    expect_arg(siam_val_at_far(&tr, &bad, 2, 1e-3, &rep, &err), &err,
               "test set: VAL pairs: asked for 5 different-class pairs", "5 negatives of 4");
    expect_arg(siam_val_at_far(&tr, &te, 2, 1.5, &rep, &err), &err, "not in [0, 1]", "FAR 1.5");
    expect_arg(siam_val_at_far(&tr, &te, 0, 1e-3, &rep, &err), &err, "dim 0", "dim 0");
    float nan_emb[8];
    memcpy(nan_emb, emb, sizeof nan_emb);
    nan_emb[5] = NAN;
    siam_val_set nan_set = {nan_emb, lab, 4, 2, 4, 2};
    expect_arg(siam_val_at_far(&tr, &nan_set, 2, 1e-3, &rep, &err), &err, "not finite",
               "a NaN embedding");
    CHECK(rep.test_pos == 0 && rep.val == 0, "report not zeroed after a failure");
    CHECK(siam_val_at_far(&tr, &te, 2, 1e-3, &rep, &err) == SIAM_OK, "%s", err.msg);
}

int main(void) {
    tu_trap_fp();
    test_whole_space();
    test_uniform();
    test_against_brute();
    test_hand_made();
    test_reproducible();
    test_bad_input();
    return tu_finish();
}
