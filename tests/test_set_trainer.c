/* test_set_trainer: the set step (P x K batch, one forward pass, set loss head, backward,
 * optimizer) with the in-process head: it reduces the loss on a small synthetic problem; its
 * parameter gradients match finite differences of the loss through the whole model (so the head's n
 * x dim gradient reaches every layer, for hinge and soft losses, Euclidean and squared distances);
 * and the collapse alarm fires on a model that maps everything to one point and not on a healthy
 * one. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "siam_rng.h"
#include "siam_set_trainer.h"

#define CLASSES 6
#define PER     12
#define SIDE    4

/* CLASSES prototypes in [0,1]^16, PER noisy copies each: separable, but not by a fixed map. */
static void make_data(siam_dataset *ds) {
    siam_rng r;
    siam_rng_seed(&r, 11);
    size_t in = SIDE * SIDE;
    ds->n = CLASSES * PER;
    ds->rows = ds->cols = SIDE;
    ds->images = malloc(ds->n * in * sizeof(float));
    ds->labels = malloc(ds->n);
    float proto[CLASSES][SIDE * SIDE];
    for (int c = 0; c < CLASSES; c++)
        for (size_t k = 0; k < in; k++)
            proto[c][k] = siam_rng_uniform(&r);
    for (size_t i = 0; i < ds->n; i++) {
        int c = (int)(i % CLASSES);
        ds->labels[i] = (uint8_t)c;
        for (size_t k = 0; k < in; k++)
            ds->images[i * in + k] = proto[c][k] + 0.3f * (siam_rng_uniform(&r) - 0.5f);
    }
}

static void test_loss_goes_down(const siam_dataset *ds) {
    siam_error err = {0};
    siam_model *m = NULL;
    siam_pk *pk = NULL;
    siam_set_trainer t;
    CHECK(siam_model_create(&m, "in=4x4x1 dense16 relu dense8", 3, &err) == 0, "%s", err.msg);
    CHECK(siam_pk_create(&pk, ds->labels, ds->n, 4, 4, 5, &err) == 0, "%s", err.msg);
    CHECK(siam_set_trainer_init(&t, m, SIAM_OPTIM_ADAM, 1e-2f, 16, &err) == 0, "%s", err.msg);
    siam_local_set_head head = {.cfg = siam_set_loss_default()}; /* batch-hard, margin 1 */
    double first = 0, last = 0;
    for (int s = 0; s < 80; s++) {
        float loss = -1;
        siam_set_loss_stats st;
        CHECK(siam_set_trainer_step(&t, ds, 0, pk, siam_local_set_head_fn, &head, &loss, &st,
                                    &err) == 0,
              "%s", err.msg);
        CHECK(!st.degenerate && st.terms == 16, "every anchor of a 4x4 batch is a term");
        if (s < 5)
            first += loss / 5;
        if (s >= 75)
            last += loss / 5;
    }
    CHECK(t.step == 80, "one optimizer step per set step (%llu)", (unsigned long long)t.step);
    CHECK(last < 0.5 * first, "batch-hard loss goes down: first 5 steps %.4f, last 5 %.4f", first,
          last);
    printf("batch-hard loss: first 5 steps %.4f, last 5 steps %.4f\n", first, last);
    siam_set_epoch_stats es;
    CHECK(siam_set_trainer_epoch(&t, ds, 0, pk, siam_local_set_head_fn, &head, NULL, NULL, &es,
                                 &err) == 0,
          "%s", err.msg);
    CHECK(es.steps == siam_pk_batches_per_epoch(pk) && es.images == es.steps * 16,
          "epoch: %llu steps", (unsigned long long)es.steps);
    CHECK(es.collapsing != SIAM_SET_ALARM_COLLAPSE && es.mean_norm > 0.1 &&
              es.mean_hardest_neg > 0.1,
          "a healthy model raises no alarm (norm %.3f, hardest negative %.3f)", es.mean_norm,
          es.mean_hardest_neg);
    siam_set_trainer_free(&t);
    siam_pk_free(pk);
    siam_model_free(m);
}

/* dL/dparam from the trainer against central differences of the same loss, for a few parameters
 * of every layer. */
static void test_gradient_check(const siam_dataset *ds, const char *loss_name,
                                siam_set_distance distance) {
    siam_error err = {0};
    siam_model *m = NULL;
    siam_set_trainer t;
    /* elu: smooth, so differences across a ReLU kink cannot spoil the comparison */
    CHECK(siam_model_create(&m, "in=4x4x1 dense6 elu dense4", 9, &err) == 0, "%s", err.msg);
    CHECK(siam_set_trainer_init(&t, m, SIAM_OPTIM_SGD, 1e-3f, 12, &err) == 0, "%s", err.msg);
    siam_local_set_head head = {.cfg = siam_set_loss_default()};
    CHECK(siam_set_loss_parse(&head.cfg, loss_name, &err) == 0, "%s", err.msg);
    head.cfg.distance = distance;
    head.cfg.margin = 2.0f; /* wide enough that most terms are active at the random start */
    uint32_t idx[12], groups[12];
    for (int i = 0; i < 12; i++) { /* 3 groups of 4: images of classes 0, 1, 2 */
        idx[i] = (uint32_t)((i % 4) * CLASSES + i / 4);
        groups[i] = 1000u + (uint32_t)(i / 4) * 7u;
    }
    float loss;
    siam_set_loss_stats st;
    CHECK(siam_set_trainer_gradients(&t, ds, 0, idx, groups, siam_local_set_head_fn, &head, &loss,
                                     &st, &err) == 0,
          "%s", err.msg);
    CHECK(st.active > 0, "%s: some term is active", loss_name);
    size_t np = siam_model_num_trainable(m);
    float *analytic = malloc(np * sizeof(float));
    memcpy(analytic, siam_model_grads(m), np * sizeof(float));
    float *p = siam_model_params(m);
    double worst = 0;
    int checked = 0;
    for (size_t j = 0; j < np; j += 7) {
        float keep = p[j], h = 1e-3f, lp, lm;
        p[j] = keep + h;
        siam_set_trainer_gradients(&t, ds, 0, idx, groups, siam_local_set_head_fn, &head, &lp, &st,
                                   &err);
        p[j] = keep - h;
        siam_set_trainer_gradients(&t, ds, 0, idx, groups, siam_local_set_head_fn, &head, &lm, &st,
                                   &err);
        p[j] = keep;
        double numeric = ((double)lp - lm) / (2.0 * h);
        double e = tu_rel_err(analytic[j], numeric, 1e-2);
        if (e > worst)
            worst = e;
        CHECK(e < 3e-2, "%s: param %zu: analytic %.6g numeric %.6g", loss_name, j,
              (double)analytic[j], numeric);
        checked++;
    }
    printf("%s (%s): %d parameters, worst relative error %.2g\n", loss_name,
           distance == SIAM_SET_SQUARED ? "squared" : "euclidean", checked, worst);
    free(analytic);
    siam_set_trainer_free(&t);
    siam_model_free(m);
}

static void test_collapse_alarm(const siam_dataset *ds) {
    siam_error err = {0};
    siam_model *m = NULL;
    siam_pk *pk = NULL;
    siam_set_trainer t;
    CHECK(siam_model_create(&m, "in=4x4x1 dense8 relu dense4", 3, &err) == 0, "%s", err.msg);
    CHECK(siam_pk_create(&pk, ds->labels, ds->n, 3, 4, 5, &err) == 0, "%s", err.msg);
    CHECK(siam_set_trainer_init(&t, m, SIAM_OPTIM_SGD, 1e-6f, 12, &err) == 0, "%s", err.msg);
    /* all-zero weights: every image maps to 0, the collapse in its purest form */
    memset(siam_model_params(m), 0, siam_model_num_trainable(m) * sizeof(float));
    siam_local_set_head head = {.cfg = siam_set_loss_default()};
    siam_set_epoch_stats es;
    CHECK(siam_set_trainer_epoch(&t, ds, 0, pk, siam_local_set_head_fn, &head, NULL, NULL, &es,
                                 &err) == 0,
          "%s", err.msg);
    CHECK(es.collapsing == SIAM_SET_ALARM_COLLAPSE && es.mean_norm < 1e-6,
          "collapsed model raises the alarm (norm %g)", es.mean_norm);
    char why[128] = "";
    siam_set_epoch_stats idle = {.steps = 10, .mean_norm = 3, .mean_hardest_neg = 2};
    CHECK(siam_set_epoch_collapse(&idle, why, sizeof why) == SIAM_SET_ALARM_STALLED &&
              strstr(why, "no loss term"),
          "no active term all epoch, distances healthy: stalled, not collapsed: '%s'", why);
    siam_set_epoch_stats near = {
        .steps = 10, .mean_norm = 3, .mean_hardest_neg = 1e-4, .active_terms = 100};
    CHECK(siam_set_epoch_collapse(&near, why, sizeof why) == SIAM_SET_ALARM_COLLAPSE &&
              strstr(why, "hardest negatives"),
          "hardest negatives near 0: collapse: '%s'", why);
    idle.active_terms = 1;
    CHECK(siam_set_epoch_collapse(&idle, why, sizeof why) == 0, "one active term: no alarm");
    siam_set_trainer_free(&t);
    siam_pk_free(pk);
    siam_model_free(m);
}

/* Records what every call saw: the progress the trainer wrote, the optimizer's rate so far and
 * how many terms the in-process head's loss had (semi-hard counts ordered (anchor, positive)
 * pairs, batch-hard anchors: that tells which of facenet's two ran). */
typedef struct {
    siam_local_set_head local;
    siam_set_trainer *t;
    int calls;
    float progress[64];
    int64_t terms[64];
} record_head;

static int record_head_fn(void *ctx, const float *emb, const uint32_t *groups, int n, int dim,
                          float *loss, float *grad, siam_set_loss_stats *stats, siam_error *err) {
    record_head *h = ctx;
    int rc = siam_local_set_head_fn(&h->local, emb, groups, n, dim, loss, grad, stats, err);
    if (h->calls < 64) {
        h->progress[h->calls] = *h->local.progress;
        h->terms[h->calls] = stats->terms;
    }
    h->calls++;
    return rc;
}

/* The schedule sets the optimizer's rate before every step, at the step's midpoint; the progress
 * the trainer writes drives facenet in process: semi-hard below hard_after, batch-hard from it
 * on. A zeroed schedule leaves the rate alone. */
static void test_schedule_and_facenet(const siam_dataset *ds) {
    siam_error err = {0};
    siam_model *m = NULL;
    siam_pk *pk = NULL;
    siam_set_trainer t;
    CHECK(siam_model_create(&m, "in=4x4x1 dense16 relu dense8", 3, &err) == 0, "%s", err.msg);
    CHECK(siam_pk_create(&pk, ds->labels, ds->n, 4, 4, 5, &err) == 0, "%s", err.msg);
    CHECK(siam_set_trainer_init(&t, m, SIAM_OPTIM_ADAM, 1e-2f, 16, &err) == 0, "%s", err.msg);
    uint64_t spe = siam_pk_batches_per_epoch(pk);
    CHECK(spe >= 3, "%llu batches per epoch", (unsigned long long)spe);
    float progress = -1;
    record_head h = {.local = {.cfg = siam_set_loss_default(), .progress = &progress}, .t = &t};
    siam_set_loss_parse(&h.local.cfg, "facenet", &err);
    /* a zeroed schedule: the rate stays exactly what init was given; progress 0 */
    siam_set_epoch_stats es;
    CHECK(siam_set_trainer_epoch(&t, ds, 0, pk, record_head_fn, &h, NULL, NULL, &es, &err) == 0,
          "%s", err.msg);
    CHECK(t.opt.lr == 1e-2f && progress == -1, "constant: lr %g, progress %g", (double)t.opt.lr,
          (double)progress);
    t.progress = &progress;
    float loss0;
    siam_set_loss_stats st0;
    CHECK(siam_set_trainer_step(&t, ds, 0, pk, record_head_fn, &h, &loss0, &st0, &err) == 0, "%s",
          err.msg);
    CHECK(progress == 0 && t.opt.lr == 1e-2f, "no steps_per_epoch: progress %g", (double)progress);

    /* 5 epochs, cosine with a warm-up of one epoch; facenet switches at 0.4 = after 2 epochs */
    siam_set_trainer_free(&t);
    CHECK(siam_set_trainer_init(&t, m, SIAM_OPTIM_ADAM, 1e-2f, 16, &err) == 0, "%s", err.msg);
    t.schedule = siam_schedule_default(1e-2, 5);
    t.schedule.kind = SIAM_SCHEDULE_COSINE;
    t.schedule.warmup_epochs = 1;
    CHECK(siam_schedule_check(&t.schedule, &err) == 0, "%s", err.msg);
    t.steps_per_epoch = spe;
    t.progress = &progress;
    h.calls = 0;
    for (int e = 0; e < 5; e++)
        for (uint64_t i = 0; i < spe; i++) {
            float loss;
            siam_set_loss_stats st;
            uint64_t k = t.step;
            CHECK(siam_set_trainer_step(&t, ds, 0, pk, record_head_fn, &h, &loss, &st, &err) == 0,
                  "%s", err.msg);
            double mid = ((double)k + 0.5) / (double)spe;
            float want_lr = (float)(1e-2 * 0.5 * (1 + cos(3.14159265358979323846 * mid / 5)) *
                                    (mid < 1 ? mid : 1));
            CHECK(fabsf(t.opt.lr - want_lr) <= 1e-6f * want_lr, "step %llu: lr %.9g, expected %.9g",
                  (unsigned long long)k, (double)t.opt.lr, (double)want_lr);
            float want_p = (float)(mid / 5);
            CHECK(progress == want_p, "step %llu: progress %.9g, expected %.9g",
                  (unsigned long long)k, (double)progress, (double)want_p);
            int64_t want_terms = want_p < 0.4f ? 16 * 3 : 16; /* semi-hard: (a,p); hard: a */
            CHECK(k >= 64 || h.terms[k] == want_terms,
                  "step %llu at %.3f: %lld terms, expected %lld", (unsigned long long)k,
                  (double)want_p, (long long)h.terms[k], (long long)want_terms);
        }
    CHECK(h.calls == (int)(5 * spe), "%d head calls", h.calls);
    CHECK(progress < 1 && progress > 0.9f, "last step's progress %g", (double)progress);
    siam_set_trainer_free(&t);
    siam_pk_free(pk);
    siam_model_free(m);
}

int main(void) {
    siam_dataset ds = {0};
    make_data(&ds);
    test_loss_goes_down(&ds);
    test_gradient_check(&ds, "batch-hard-soft", SIAM_SET_EUCLIDEAN);
    test_gradient_check(&ds, "contrastive", SIAM_SET_SQUARED);
    test_gradient_check(&ds, "batch-all", SIAM_SET_SQUARED);
    test_gradient_check(&ds, "semi-hard", SIAM_SET_EUCLIDEAN);
    test_collapse_alarm(&ds);
    test_schedule_and_facenet(&ds);
    siam_dataset_free(&ds);
    return tu_finish();
}
