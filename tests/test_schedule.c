/* test_schedule: the learning-rate schedules against their closed forms computed here in double
 * (written from the formulas, not from the module's code), the edges (the epoch of a drop, the end
 * of the warm-up, the last step of a training, past the end), the step midpoints the trainers use,
 * the progress fraction, the checks and the parsers with their messages. */
#include "test_util.h"

#include <string.h>

#include "siam_schedule.h"

static const double PI = 3.14159265358979323846;

/* lr * factor^k, k = number of drops <= t, by pow() rather than repeated multiplication */
static double ref_step(double lr, const double *drops, int n, double factor, double t) {
    int k = 0;
    for (int i = 0; i < n; i++)
        k += t >= drops[i];
    return lr * pow(factor, k);
}

static double ref_cosine(double lr, double floor_, double T, double t) {
    double f = t <= 0 ? 0 : t >= T ? 1 : t / T;
    return floor_ + 0.5 * (lr - floor_) * (1 + cos(PI * f));
}

static double ref_warmup(double W, double t) {
    return W > 0 && t < W ? t / W : 1.0;
}

/* relative closeness for rates that span several decades */
#define CHECK_REL(a, b, what) CHECK_NEAR((a), (b), 1e-12 * fabs((double)(b)) + 1e-300, (what))

static void test_constant(void) {
    siam_schedule s = siam_schedule_default(1e-3, 5);
    siam_error err = {0};
    CHECK(s.kind == SIAM_SCHEDULE_CONSTANT && s.drop_factor == 0.1 && s.floor == 0 &&
              s.warmup_epochs == 0 && s.n_drops == 0,
          "defaults");
    CHECK(siam_schedule_is_constant(&s), "default not constant");
    CHECK(siam_schedule_check(&s, &err) == SIAM_OK, "%s", err.msg);
    for (double t = 0; t <= 6; t += 0.25)
        CHECK(siam_schedule_lr(&s, t) == 1e-3, "constant at %g: %g", t, siam_schedule_lr(&s, t));
    /* a zeroed schedule is constant too: the trainers' default */
    siam_schedule z;
    memset(&z, 0, sizeof z);
    CHECK(siam_schedule_is_constant(&z), "zeroed schedule not constant");
    s.warmup_epochs = 1;
    CHECK(!siam_schedule_is_constant(&s), "warm-up counted as constant");
    s.warmup_epochs = 0, s.kind = SIAM_SCHEDULE_COSINE;
    CHECK(!siam_schedule_is_constant(&s), "cosine counted as constant");
}

static void test_step(void) {
    siam_error err = {0};
    /* the FaceNet seed: Adam 1e-4, 1e-5 after 15 of 20 epochs */
    siam_schedule s = siam_schedule_default(1e-4, 20);
    s.kind = SIAM_SCHEDULE_STEP;
    s.n_drops = 1, s.drop_epochs[0] = 15;
    CHECK(siam_schedule_check(&s, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_schedule_lr(&s, 0) == 1e-4, "start");
    CHECK(siam_schedule_lr(&s, nextafter(15.0, 0)) == 1e-4, "just before the drop: %g",
          siam_schedule_lr(&s, nextafter(15.0, 0)));
    CHECK_REL(siam_schedule_lr(&s, 15), 1e-5, "at the drop");
    CHECK_REL(siam_schedule_lr(&s, 20), 1e-5, "at the end");
    CHECK_REL(siam_schedule_lr(&s, 25), 1e-5, "past the end");
    /* step boundaries in steps: 7 steps per epoch, evaluated at step midpoints, the first step of
     * epoch 16 (0-based step 105) is the first at the lower rate */
    CHECK(siam_schedule_lr(&s, siam_schedule_epoch_at(104, 7)) == 1e-4, "last step of epoch 15");
    CHECK_REL(siam_schedule_lr(&s, siam_schedule_epoch_at(105, 7)), 1e-5, "first step of 16");

    /* two drops, another factor, fractional epochs: every t against the closed form */
    s = siam_schedule_default(3e-3, 12);
    s.kind = SIAM_SCHEDULE_STEP;
    s.n_drops = 2, s.drop_epochs[0] = 4.5, s.drop_epochs[1] = 9;
    s.drop_factor = 0.3;
    CHECK(siam_schedule_check(&s, &err) == SIAM_OK, "%s", err.msg);
    for (double t = 0; t <= 13; t += 0.125) {
        char what[64];
        snprintf(what, sizeof what, "step at %g", t);
        CHECK_REL(siam_schedule_lr(&s, t), ref_step(3e-3, s.drop_epochs, 2, 0.3, t), what);
    }
    CHECK_REL(siam_schedule_lr(&s, 4.5), 9e-4, "first drop");
    CHECK_REL(siam_schedule_lr(&s, 9), 2.7e-4, "second drop");
    /* factor 1: a drop that changes nothing is allowed */
    s.drop_factor = 1;
    CHECK(siam_schedule_check(&s, &err) == SIAM_OK, "factor 1: %s", err.msg);
    CHECK(siam_schedule_lr(&s, 11) == 3e-3, "factor 1 at 11");
}

static void test_cosine(void) {
    siam_error err = {0};
    siam_schedule s = siam_schedule_default(1e-3, 10);
    s.kind = SIAM_SCHEDULE_COSINE;
    CHECK(siam_schedule_check(&s, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_schedule_lr(&s, 0) == 1e-3, "start %g", siam_schedule_lr(&s, 0));
    CHECK_REL(siam_schedule_lr(&s, 5), 5e-4, "middle");
    CHECK(fabs(siam_schedule_lr(&s, 10)) < 1e-18, "end %g", siam_schedule_lr(&s, 10));
    CHECK(fabs(siam_schedule_lr(&s, 11)) < 1e-18, "past the end %g", siam_schedule_lr(&s, 11));
    s.floor = 1e-5;
    CHECK(siam_schedule_check(&s, &err) == SIAM_OK, "%s", err.msg);
    for (double t = 0; t <= 11; t += 0.1) {
        char what[64];
        snprintf(what, sizeof what, "cosine at %g", t);
        CHECK_REL(siam_schedule_lr(&s, t), ref_cosine(1e-3, 1e-5, 10, t), what);
    }
    CHECK_REL(siam_schedule_lr(&s, 10), 1e-5, "the floor at the end");
    /* the last step of a 10-epoch training of 9 steps an epoch: just above the floor, and
     * falling step by step */
    double last = siam_schedule_lr(&s, siam_schedule_epoch_at(89, 9));
    CHECK_REL(last, ref_cosine(1e-3, 1e-5, 10, 89.5 / 9), "last step");
    CHECK(last > 1e-5 && last < 1.01e-5, "last step %g", last);
    double prev = 2e-3;
    for (uint64_t k = 0; k < 90; k++) {
        double v = siam_schedule_lr(&s, siam_schedule_epoch_at(k, 9));
        CHECK(v < prev, "step %llu: %g after %g", (unsigned long long)k, v, prev);
        prev = v;
    }
}

static void test_warmup(void) {
    siam_error err = {0};
    for (int kind = 0; kind < 3; kind++) {
        siam_schedule s = siam_schedule_default(2e-3, 8);
        s.kind = (siam_schedule_kind)kind;
        s.n_drops = 1, s.drop_epochs[0] = 6;
        s.floor = 1e-4;
        s.warmup_epochs = 1.5;
        CHECK(siam_schedule_check(&s, &err) == SIAM_OK, "%s", err.msg);
        for (double t = 0; t <= 8; t += 0.125) {
            double base = kind == 0   ? 2e-3
                          : kind == 1 ? ref_step(2e-3, s.drop_epochs, 1, 0.1, t)
                                      : ref_cosine(2e-3, 1e-4, 8, t);
            char what[64];
            snprintf(what, sizeof what, "%s + warm-up at %g", siam_schedule_name(s.kind), t);
            CHECK_REL(siam_schedule_lr(&s, t), base * ref_warmup(1.5, t), what);
        }
        CHECK(siam_schedule_lr(&s, 0) == 0, "warm-up starts at 0");
        /* the end of the warm-up: the full (scheduled) rate from W on */
        double at_w = kind == 2 ? ref_cosine(2e-3, 1e-4, 8, 1.5) : 2e-3;
        CHECK_REL(siam_schedule_lr(&s, 1.5), at_w, "end of the warm-up");
        CHECK(siam_schedule_lr(&s, nextafter(1.5, 0)) < at_w, "just before the end");
        /* in steps (4 an epoch, W = 1.5 = 6 steps): the first step is not wasted at rate 0,
         * step 5 is the last below the full rate, step 6 is at it */
        CHECK(siam_schedule_lr(&s, siam_schedule_epoch_at(0, 4)) > 0, "first step at rate 0");
        CHECK_REL(siam_schedule_lr(&s, siam_schedule_epoch_at(0, 4)),
                  (kind == 2 ? ref_cosine(2e-3, 1e-4, 8, 0.125) : 2e-3) * 0.125 / 1.5,
                  "first warm-up step");
        CHECK(siam_schedule_lr(&s, siam_schedule_epoch_at(5, 4)) <
                  (kind == 2 ? ref_cosine(2e-3, 1e-4, 8, 5.5 / 4) : 2e-3),
              "step 5 still warming up");
        double full6 = kind == 2 ? ref_cosine(2e-3, 1e-4, 8, 6.5 / 4) : 2e-3;
        CHECK_REL(siam_schedule_lr(&s, siam_schedule_epoch_at(6, 4)), full6, "step 6 full rate");
    }
}

static void test_epoch_progress(void) {
    CHECK(siam_schedule_epoch_at(0, 10) == 0.05, "step 0 of 10: %g", siam_schedule_epoch_at(0, 10));
    CHECK(siam_schedule_epoch_at(19, 10) == 1.95, "step 19 of 10");
    CHECK(siam_schedule_epoch_at(7, 0) == 0, "no steps per epoch");
    CHECK(siam_schedule_progress(0, 5) == 0, "start");
    CHECK(siam_schedule_progress(2, 5) == 0.4, "2 of 5: %.17g", siam_schedule_progress(2, 5));
    CHECK(siam_schedule_progress(5, 5) == 1 && siam_schedule_progress(6, 5) == 1, "the end");
    CHECK(siam_schedule_progress(-1, 5) == 0 && siam_schedule_progress(1, 0) == 0 &&
              siam_schedule_progress(NAN, 5) == 0 && siam_schedule_progress(1, NAN) == 0,
          "edges");
    /* the FaceNet switch at 40 % of 20 epochs of 7 steps: step 56 is the first at >= 0.4 */
    CHECK(siam_schedule_progress(siam_schedule_epoch_at(55, 7), 20) < 0.4 &&
              siam_schedule_progress(siam_schedule_epoch_at(56, 7), 20) >= 0.4,
          "40 %% boundary");
    /* every step of a training is inside (0, 1) */
    double p = siam_schedule_progress(siam_schedule_epoch_at(139, 7), 20);
    CHECK(p > 0.99 && p < 1, "last step %g", p);
}

static void test_check(void) {
    siam_error err = {0};
    siam_schedule ok = siam_schedule_default(1e-3, 10);
    ok.kind = SIAM_SCHEDULE_STEP;
    ok.n_drops = 2, ok.drop_epochs[0] = 4, ok.drop_epochs[1] = 8;
    CHECK(siam_schedule_check(&ok, &err) == SIAM_OK, "%s", err.msg);
    struct {
        const char *what, *msg;
        siam_schedule s;
    } cases[6];
    int n = 0;
    cases[n].what = "kind", cases[n].msg = "schedule 7 is none of constant, step, cosine";
    cases[n].s = ok, cases[n++].s.kind = (siam_schedule_kind)7;
    cases[n].what = "no drop", cases[n].msg = "needs at least one drop epoch";
    cases[n].s = ok, cases[n++].s.n_drops = 0;
    cases[n].what = "drop at the end", cases[n].msg = "drop epoch 10: need 0 < epoch < 10";
    cases[n].s = ok, cases[n++].s.drop_epochs[1] = 10;
    cases[n].what = "descending", cases[n].msg = "drop epochs 4 then 3: need them strictly";
    cases[n].s = ok, cases[n++].s.drop_epochs[1] = 3;
    cases[n].what = "factor", cases[n].msg = "drop factor 1.5: need 0 < factor <= 1";
    cases[n].s = ok, cases[n++].s.drop_factor = 1.5;
    cases[n].what = "warm-up", cases[n].msg = "warm-up of 10 epochs: need 0 <= warm-up < 10";
    cases[n].s = ok, cases[n++].s.warmup_epochs = 10;
    for (int i = 0; i < n; i++) {
        int rc = siam_schedule_check(&cases[i].s, &err);
        CHECK(rc == SIAM_ERR_ARG && strstr(err.msg, cases[i].msg), "%s: rc %d '%s'", cases[i].what,
              rc, err.msg);
    }
    siam_schedule c = siam_schedule_default(1e-3, 10);
    c.kind = SIAM_SCHEDULE_COSINE;
    c.floor = 1e-3;
    CHECK(siam_schedule_check(&c, &err) == SIAM_ERR_ARG &&
              strstr(err.msg, "cosine floor 0.001: need 0 <= floor < the learning rate 0.001"),
          "floor: %s", err.msg);
    c.floor = 0, c.lr = 0;
    CHECK(siam_schedule_check(&c, &err) == SIAM_ERR_ARG && strstr(err.msg, "learning rate 0"),
          "lr 0: %s", err.msg);
    c.lr = 1e-3, c.epochs = 0;
    CHECK(siam_schedule_check(&c, &err) == SIAM_ERR_ARG && strstr(err.msg, "0 epochs"),
          "epochs 0: %s", err.msg);
    /* drop epochs are not looked at unless the schedule is step */
    c.epochs = 10, c.n_drops = 1, c.drop_epochs[0] = 99;
    CHECK(siam_schedule_check(&c, &err) == SIAM_OK, "cosine with drops: %s", err.msg);
}

static void test_parse(void) {
    siam_error err = {0};
    static const char *names[] = {"constant", "step", "cosine"};
    for (int i = 0; i < 3; i++) {
        siam_schedule_kind k = (siam_schedule_kind)9;
        CHECK(siam_schedule_parse(&k, names[i], &err) == SIAM_OK && (int)k == i, "%s", names[i]);
        CHECK(strcmp(siam_schedule_name(k), names[i]) == 0, "name of %d", i);
    }
    CHECK(strcmp(siam_schedule_name((siam_schedule_kind)3), "invalid") == 0, "name of 3");
    siam_schedule_kind k = SIAM_SCHEDULE_COSINE;
    CHECK(siam_schedule_parse(&k, "Cosine", &err) == SIAM_ERR_ARG && k == SIAM_SCHEDULE_COSINE,
          "Cosine accepted");
    CHECK(strstr(err.msg, "'Cosine'") && strstr(err.msg, "constant, step, cosine"), "message %s",
          err.msg);
    CHECK(siam_schedule_parse(&k, NULL, &err) == SIAM_ERR_ARG, "NULL accepted");
    CHECK(strcmp(siam_schedule_choices(), "constant, step, cosine") == 0, "choices");

    /* drop lists */
    siam_schedule s = siam_schedule_default(1e-3, 20);
    CHECK(siam_schedule_parse_drops(&s, "15", &err) == SIAM_OK && s.n_drops == 1 &&
              s.drop_epochs[0] == 15,
          "15: %s", err.msg);
    CHECK(siam_schedule_parse_drops(&s, "7.5, 12,19", &err) == SIAM_OK && s.n_drops == 3 &&
              s.drop_epochs[0] == 7.5 && s.drop_epochs[1] == 12 && s.drop_epochs[2] == 19,
          "7.5, 12,19: %s", err.msg);
    CHECK(siam_schedule_parse_drops(&s, "", &err) == SIAM_OK && s.n_drops == 0, "empty");
    s.n_drops = 2;
    CHECK(siam_schedule_parse_drops(&s, NULL, &err) == SIAM_OK && s.n_drops == 0, "NULL");
    static const struct {
        const char *list, *msg;
    } bad[] = {
        {"x", "item 1 is not a number"},
        {"10,x", "item 2 is not a number"},
        {"10;15", "item 1 is not a number"},
        {"10,", "nothing after the last comma"},
        {"10,,15", "item 2 is not a number"},
        {"15,10", "10 after 15, need them strictly ascending"},
        {"10,10", "10 after 10"},
        {"0", "item 1 is 0, need a finite epoch > 0"},
        {"-2", "item 1 is -2"},
        {"nan", "item 1 is nan"},
        {"inf", "item 1 is inf"},
        {"1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17", "at most 16"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s.n_drops = 1, s.drop_epochs[0] = 5;
        int rc = siam_schedule_parse_drops(&s, bad[i].list, &err);
        CHECK(rc == SIAM_ERR_ARG && strstr(err.msg, bad[i].msg) && strstr(err.msg, bad[i].list),
              "'%s': rc %d '%s'", bad[i].list, rc, err.msg);
        CHECK(s.n_drops == 1 && s.drop_epochs[0] == 5, "'%s' changed the schedule", bad[i].list);
    }
    CHECK(siam_schedule_parse_drops(&s, "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16", &err) ==
                  SIAM_OK &&
              s.n_drops == 16,
          "16 drops: %s", err.msg);
}

int main(void) {
    tu_trap_fp();
    test_constant();
    test_step();
    test_cosine();
    test_warmup();
    test_epoch_progress();
    test_check();
    test_parse();
    return tu_finish();
}
