/* test_trainer: gathering the next batch while the loss head waits (what siam-client does) trains
 * bit for bit the same model as gathering it at the start of each step (siam-train), over
 * epochs whose pairs are reshuffled in place, with a last batch smaller than the others, with
 * heads that call the idle work once, twice or never, and under both label conventions; and the
 * learning-rate schedule's rate at every step. */
#include "test_util.h"

#include <string.h>

#include "siam_rng.h"
#include "siam_trainer.h"

typedef struct {
    siam_local_head local;
    int idle_calls; /* how often to call idle before computing */
    siam_trainer *t;
    int checks_ready; /* after idle, the next batch must be marked gathered */
} test_head;

static int head_fn(void *ctx, const float *left, const float *right, const uint32_t *labels, int B,
                   int dim, float *loss, float *dist, float *grad_left, float *grad_right,
                   siam_idle_fn idle, void *idle_ctx, siam_error *err) {
    test_head *h = ctx;
    for (int i = 0; i < h->idle_calls; i++) {
        CHECK(idle != NULL, "the trainer offers idle work");
        if (idle)
            idle(idle_ctx);
    }
    if (h->idle_calls && h->t->next_B > 0) {
        h->checks_ready++;
        CHECK(h->t->ready_B == h->t->next_B, "idle gathered the next batch");
    }
    return siam_local_head_fn(&h->local, left, right, labels, B, dim, loss, dist, grad_left,
                              grad_right, NULL, NULL, err);
}

/* Trains a fresh mlp for 3 epochs (reshuffling the pairs in place between epochs) and returns
 * its parameters (malloc'd). */
static float *train(const siam_dataset *ds, const siam_pairs *pairs0, int idle_calls,
                    siam_label_convention conv, size_t *n_params, int *ready_checks) {
    siam_error err = {0};
    siam_model *m = NULL;
    siam_trainer tr;
    siam_pairs p = {0};
    CHECK(siam_pairs_slice(&p, pairs0, 0, pairs0->n, &err) == 0, "%s", err.msg);
    CHECK(siam_model_create(&m, "in=28x28x1 dense16 relu dropout0.2 dense8", 7, &err) == 0, "%s",
          err.msg);
    CHECK(siam_trainer_init(&tr, m, SIAM_OPTIM_ADAM, 1e-3f, 24, &err) == 0, "%s", err.msg);
    tr.conv = conv;
    siam_model_seed_dropout(m, 11);
    test_head h = {{1.0f, conv}, idle_calls, &tr, 0};
    for (int e = 0; e < 3; e++) {
        if (e)
            siam_pairs_shuffle(&p, 100 + (uint64_t)e);
        double loss;
        CHECK(siam_trainer_epoch(&tr, ds, &p, head_fn, &h, NULL, NULL, &loss, &err) == 0, "%s",
              err.msg);
        CHECK(isfinite(loss) && loss > 0, "epoch %d loss %g", e, loss);
    }
    *n_params = siam_model_num_params(m);
    float *out = malloc(*n_params * sizeof *out);
    memcpy(out, siam_model_params(m), *n_params * sizeof *out);
    *ready_checks = h.checks_ready;
    CHECK(idle_calls ? tr.prefetched == (uint64_t)h.checks_ready : tr.prefetched == 0,
          "%d idle call(s): %llu steps used a prefetched batch (%d expected)", idle_calls,
          (unsigned long long)tr.prefetched, idle_calls ? h.checks_ready : 0);
    siam_trainer_free(&tr);
    siam_model_free(m);
    siam_pairs_free(&p);
    return out;
}

/* on_step: checks the rate the step just used against the step schedule's closed form */
typedef struct {
    siam_trainer *t;
    uint64_t steps;
} lr_check;

static void check_lr(void *ctx, uint64_t s, uint64_t steps_in_epoch, uint64_t pairs, double loss) {
    (void)s, (void)pairs, (void)loss;
    lr_check *c = ctx;
    CHECK(steps_in_epoch == c->t->steps_per_epoch, "%llu steps in an epoch",
          (unsigned long long)steps_in_epoch);
    /* the step just taken is t->step - 1; its midpoint in epochs; drops after epochs 1 and 2 */
    double mid = ((double)c->t->step - 0.5) / (double)steps_in_epoch;
    float want = (float)(2e-3 * pow(0.5, (mid >= 1) + (mid >= 2)));
    CHECK(c->t->opt.lr == want, "step %llu (epoch %.3f): lr %g, expected %g",
          (unsigned long long)c->t->step, mid, (double)c->t->opt.lr, (double)want);
    c->steps++;
}

/* A step schedule over 3 epochs: the rate of every step, dropping at the first step of epochs 2
 * and 3 (counted from 1), the last (smaller) batch of an epoch included. */
static void test_schedule(const siam_dataset *ds, const siam_pairs *pairs) {
    siam_error err = {0};
    siam_model *m = NULL;
    siam_trainer tr;
    CHECK(siam_model_create(&m, "in=28x28x1 dense8", 7, &err) == 0, "%s", err.msg);
    CHECK(siam_trainer_init(&tr, m, SIAM_OPTIM_ADAM, 2e-3f, 24, &err) == 0, "%s", err.msg);
    tr.schedule = siam_schedule_default(2e-3, 3);
    tr.schedule.kind = SIAM_SCHEDULE_STEP;
    tr.schedule.drop_factor = 0.5;
    CHECK(siam_schedule_parse_drops(&tr.schedule, "1,2", &err) == 0, "%s", err.msg);
    CHECK(siam_schedule_check(&tr.schedule, &err) == 0, "%s", err.msg);
    tr.steps_per_epoch = (pairs->n + 23) / 24;
    siam_local_head local = {1.0f, SIAM_LABELS_SIMILAR};
    lr_check c = {&tr, 0};
    for (int e = 0; e < 3; e++) {
        double loss;
        CHECK(siam_trainer_epoch(&tr, ds, pairs, siam_local_head_fn, &local, check_lr, &c, &loss,
                                 &err) == 0,
              "%s", err.msg);
    }
    CHECK(c.steps == 3 * tr.steps_per_epoch, "%llu steps checked", (unsigned long long)c.steps);
    CHECK(tr.opt.lr == 5e-4f, "final lr %g", (double)tr.opt.lr);
    siam_trainer_free(&tr);
    siam_model_free(m);
}

int main(void) {
    /* 200 random 28x28 images of 10 classes */
    siam_dataset ds = {200, 28, 28, NULL, NULL};
    ds.images = malloc(ds.n * 784 * sizeof(float));
    ds.labels = malloc(ds.n);
    siam_rng rng;
    siam_rng_seed(&rng, 3);
    for (size_t i = 0; i < ds.n; i++) {
        ds.labels[i] = (uint8_t)(i % 10);
        for (int k = 0; k < 784; k++)
            ds.images[i * 784 + (size_t)k] = siam_rng_uniform(&rng);
    }
    siam_error err = {0};
    siam_pairs pairs = {0};
    CHECK(siam_pairs_make(&pairs, ds.labels, ds.n, 10, 5, &err) == 0, "%s", err.msg);
    CHECK(pairs.n % 24 != 0, "the last batch is smaller (%zu pairs, batch 24)", pairs.n);

    for (int conv = 0; conv < 2; conv++) {
        size_t n0, n1, n2;
        int r0, r1, r2;
        float *p0 = train(&ds, &pairs, 0, (siam_label_convention)conv, &n0, &r0);
        float *p1 = train(&ds, &pairs, 1, (siam_label_convention)conv, &n1, &r1);
        float *p2 = train(&ds, &pairs, 2, (siam_label_convention)conv, &n2, &r2);
        CHECK(n0 == n1 && n0 == n2, "same sizes");
        CHECK(memcmp(p0, p1, n0 * sizeof *p0) == 0,
              "convention %d: gathering while the head waits trains the same model", conv);
        CHECK(memcmp(p0, p2, n0 * sizeof *p0) == 0,
              "convention %d: idle called twice changes nothing", conv);
        CHECK(r1 > 20 && r1 == r2, "the prefetch path was exercised (%d steps)", r1);
        free(p0), free(p1), free(p2);
    }
    test_schedule(&ds, &pairs);
    siam_pairs_free(&pairs);
    free(ds.images);
    free(ds.labels);
    return tu_finish();
}
