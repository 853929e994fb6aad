/* test_trainer: gathering the next batch while the loss head waits (what siam-client does) trains
 * bit for bit the same model as gathering it at the start of each step (siam-train), over
 * epochs whose pairs are reshuffled in place, with a last batch smaller than the others, with
 * heads that call the idle work once, twice or never, and under both label conventions; and the
 * learning-rate schedule's rate at every step; with K batches in flight, every step applies the
 * gradient of a batch forwarded K - 1 steps earlier, replayed independently. */
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

/* ---- several batches in flight ---- */

/* An in-process split head: send() keeps a copy of the batch, receive() answers the oldest with
 * the contrastive loss (what siam-server computes), so answers come K - 1 sends late. */
typedef struct {
    siam_local_head local;
    float *left[SIAM_TRAINER_MAX_IN_FLIGHT], *right[SIAM_TRAINER_MAX_IN_FLIGHT];
    uint32_t *labels[SIAM_TRAINER_MAX_IN_FLIGHT];
    int head, count, max_count;
} queue_head;

static int q_send(void *ctx, const float *left, const float *right, const uint32_t *labels, int B,
                  int dim, siam_error *err) {
    (void)err;
    queue_head *q = ctx;
    int i = (q->head + q->count) % SIAM_TRAINER_MAX_IN_FLIGHT;
    memcpy(q->left[i], left, (size_t)B * (size_t)dim * sizeof(float));
    memcpy(q->right[i], right, (size_t)B * (size_t)dim * sizeof(float));
    memcpy(q->labels[i], labels, (size_t)B * sizeof(uint32_t));
    if (++q->count > q->max_count)
        q->max_count = q->count;
    return SIAM_OK;
}

static int q_receive(void *ctx, int B, int dim, float *loss, float *dist, float *grad_left,
                     float *grad_right, siam_error *err) {
    queue_head *q = ctx;
    int i = q->head;
    q->head = (q->head + 1) % SIAM_TRAINER_MAX_IN_FLIGHT;
    q->count--;
    return siam_local_head_fn(&q->local, q->left[i], q->right[i], q->labels[i], B, dim, loss, dist,
                              grad_left, grad_right, NULL, NULL, err);
}

/* With K batches in flight, step s applies the gradient of batch s forwarded with the weights
 * after step s - K + 1 (those of the epoch's start for its first K - 1 batches): replayed here one
 * batch at a time on a second model from a record of every step's weights. One dense layer, whose
 * weight gradient depends on the batch's input and its answer only, and SGD, so the replay is
 * exact; K = 1 must equal the one-at-a-time trainer bit for bit. Two epochs, a smaller last batch.
 */
static void test_in_flight(const siam_dataset *ds, const siam_pairs *pairs, int K) {
    const char *spec = "in=28x28x1 dense6";
    const int batch = 24, epochs = 2;
    siam_error err = {0};
    siam_model *m = NULL, *ref = NULL;
    siam_trainer tr;
    CHECK(siam_model_create(&m, spec, 9, &err) == 0 && siam_model_create(&ref, spec, 9, &err) == 0,
          "%s", err.msg);
    CHECK(siam_trainer_init(&tr, m, SIAM_OPTIM_SGD, 0.05f, batch, &err) == 0, "%s", err.msg);
    queue_head q = {.local = {1.0f, SIAM_LABELS_SIMILAR}};
    for (int i = 0; i < SIAM_TRAINER_MAX_IN_FLIGHT; i++) {
        q.left[i] = malloc((size_t)batch * 6 * sizeof(float));
        q.right[i] = malloc((size_t)batch * 6 * sizeof(float));
        q.labels[i] = malloc((size_t)batch * sizeof(uint32_t));
    }
    siam_split_head split = {q_send, q_receive, &q};
    CHECK(siam_trainer_set_in_flight(&tr, K, split, &err) == 0, "%s", err.msg);
    siam_local_head local = {1.0f, SIAM_LABELS_SIMILAR};
    for (int e = 0; e < epochs; e++) {
        double loss;
        CHECK(siam_trainer_epoch(&tr, ds, pairs, siam_local_head_fn, &local, NULL, NULL, &loss,
                                 &err) == 0,
              "K=%d: %s", K, err.msg);
    }
    CHECK(K == 1 || q.max_count == K, "K=%d: %d batches were in flight at most", K, q.max_count);
    CHECK(q.count == 0, "K=%d: %d batches left unanswered at the end of the epochs", K, q.count);

    /* the replay: weights[s] after s steps; batch s forwarded with weights[s - K + 1] */
    size_t np = siam_model_num_params(ref), steps_per_epoch = (pairs->n + batch - 1) / batch;
    size_t steps = steps_per_epoch * (size_t)epochs;
    float *weights = malloc((steps + 1) * np * sizeof(float));
    memcpy(weights, siam_model_params(ref), np * sizeof(float));
    float *xl = malloc((size_t)batch * 784 * sizeof(float)), *xr = malloc((size_t)batch * 784 * 4);
    uint32_t lab[24];
    float dist[24], gl[24 * 6], gr[24 * 6], loss;
    float *P = siam_model_params(ref);
    for (size_t s = 0; s < steps; s++) {
        size_t begin = (s % steps_per_epoch) * (size_t)batch;
        int B = (int)(pairs->n - begin < (size_t)batch ? pairs->n - begin : (size_t)batch);
        for (int i = 0; i < B; i++) {
            memcpy(xl + (size_t)i * 784, ds->images + (size_t)pairs->left[begin + i] * 784,
                   784 * 4);
            memcpy(xr + (size_t)i * 784, ds->images + (size_t)pairs->right[begin + i] * 784,
                   784 * 4);
            lab[i] = pairs->labels[begin + i];
        }
        size_t j = s % steps_per_epoch; /* the pipeline drains at the end of every epoch */
        size_t seen = s - j + (j + 1 >= (size_t)K ? j + 1 - (size_t)K : 0);
        memcpy(P, weights + seen * np, np * sizeof(float));
        const float *el, *er;
        CHECK(siam_model_forward(ref, 0, xl, B, 1, &el, &err) == 0 &&
                  siam_model_forward(ref, 1, xr, B, 1, &er, &err) == 0,
              "%s", err.msg);
        siam_local_head_fn(&local, el, er, lab, B, 6, &loss, dist, gl, gr, NULL, NULL, &err);
        siam_model_zero_grads(ref);
        siam_model_backward(ref, 0, gl);
        siam_model_backward(ref, 1, gr);
        const float *G = siam_model_grads(ref);
        for (size_t k = 0; k < np; k++) /* SGD on the weights of now */
            weights[(s + 1) * np + k] = weights[s * np + k] - 0.05f * G[k];
    }
    double worst = 0;
    for (size_t k = 0; k < np; k++)
        worst = fmax(worst, fabs((double)siam_model_params(m)[k] - weights[steps * np + k]));
    CHECK(worst <= 1e-5, "K=%d: the trained weights differ from the replay by %g", K, worst);
    if (K == 1) { /* and equal the one-at-a-time trainer */
        siam_model *one = NULL;
        siam_trainer t1;
        CHECK(siam_model_create(&one, spec, 9, &err) == 0, "%s", err.msg);
        CHECK(siam_trainer_init(&t1, one, SIAM_OPTIM_SGD, 0.05f, batch, &err) == 0, "%s", err.msg);
        for (int e = 0; e < epochs; e++) {
            double l1;
            siam_trainer_epoch(&t1, ds, pairs, siam_local_head_fn, &local, NULL, NULL, &l1, &err);
        }
        CHECK(memcmp(siam_model_params(one), siam_model_params(m), np * sizeof(float)) == 0,
              "K=1 trains bit for bit as without --in-flight");
        siam_trainer_free(&t1);
        siam_model_free(one);
    }
    free(weights), free(xl), free(xr);
    for (int i = 0; i < SIAM_TRAINER_MAX_IN_FLIGHT; i++)
        free(q.left[i]), free(q.right[i]), free(q.labels[i]);
    siam_trainer_free(&tr);
    siam_model_free(m);
    siam_model_free(ref);
    siam_split_head none = {0};
    siam_trainer t0;
    siam_model *m0 = NULL;
    siam_model_create(&m0, spec, 9, &err);
    siam_trainer_init(&t0, m0, SIAM_OPTIM_SGD, 0.05f, batch, &err);
    CHECK(siam_trainer_set_in_flight(&t0, SIAM_TRAINER_MAX_IN_FLIGHT + 1, split, &err) ==
              SIAM_ERR_ARG,
          "more than the limit is refused");
    CHECK(siam_trainer_set_in_flight(&t0, 2, none, &err) == SIAM_ERR_ARG,
          "in flight without a split head is refused: %s", err.msg);
    siam_trainer_free(&t0);
    siam_model_free(m0);
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
    for (int K = 1; K <= 4; K++)
        test_in_flight(&ds, &pairs, K);
    siam_pairs_free(&pairs);
    free(ds.images);
    free(ds.labels);
    return tu_finish();
}
