/* siam_set_trainer: P x K batches, one forward pass, a set loss head, backward, optimizer step;
 * epoch summaries with the collapse alarm. */
#include "siam_set_trainer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_log.h"
#include "siam_tensor.h"

#define COMPONENT "train"

int siam_local_set_head_fn(void *ctx, const float *emb, const uint32_t *groups, int n, int dim,
                           float *loss, float *grad, siam_set_loss_stats *stats, siam_error *err) {
    const siam_local_set_head *h = ctx;
    siam_set_loss_config cfg = siam_set_loss_at(&h->cfg, h->progress ? *h->progress : 0.0f);
    return siam_set_loss(loss, grad, stats, emb, groups, n, dim, &cfg, err);
}

int siam_set_trainer_init(siam_set_trainer *t, siam_model *model, siam_optim_kind kind, float lr,
                          int n, siam_error *err) {
    memset(t, 0, sizeof *t);
    if (n < 2 || n > SIAM_PK_BATCH_MAX)
        return siam_error_set(err, SIAM_ERR_ARG, "set batch of %d images: must be 2..%d", n,
                              SIAM_PK_BATCH_MAX);
    t->model = model;
    t->n = n;
    int rc = siam_optim_init(&t->opt, kind, siam_model_num_trainable(model), lr, err);
    if (rc)
        return rc;
    size_t in = (size_t)siam_model_input_size(model), dim = (size_t)siam_model_output_size(model);
    t->x = siam_alloc_floats((size_t)n * in);
    t->grad = siam_alloc_floats((size_t)n * dim);
    t->augment_tmp = siam_alloc_floats(in);
    t->idx = calloc((size_t)n, sizeof(uint32_t));
    t->groups = calloc((size_t)n, sizeof(uint32_t));
    if (!t->x || !t->grad || !t->augment_tmp || !t->idx || !t->groups) {
        siam_set_trainer_free(t);
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for a set batch of %d images", n);
    }
    return SIAM_OK;
}

void siam_set_trainer_free(siam_set_trainer *t) {
    siam_optim_free(&t->opt);
    siam_free(t->x);
    siam_free(t->grad);
    siam_free(t->augment_tmp);
    free(t->idx);
    free(t->groups);
    memset(t, 0, sizeof *t);
}

void siam_set_trainer_augment(siam_set_trainer *t, const siam_augment *a, uint64_t seed) {
    t->augment = *a;
    siam_rng_seed(&t->augment_rng, seed);
}

int siam_set_trainer_gradients(siam_set_trainer *t, const siam_dataset *ds, size_t base,
                               const uint32_t *idx, const uint32_t *groups, siam_set_head_fn head,
                               void *ctx, float *loss, siam_set_loss_stats *stats,
                               siam_error *err) {
    siam_model *m = t->model;
    size_t in = (size_t)siam_model_input_size(m);
    int dim = siam_model_output_size(m);
    if ((size_t)ds->rows * ds->cols != in)
        return siam_error_set(err, SIAM_ERR_MISMATCH,
                              "images are %dx%d but the model expects %zu inputs", ds->rows,
                              ds->cols, in);
    for (int i = 0; i < t->n; i++) {
        size_t k = base + idx[i];
        if (k >= ds->n)
            return siam_error_set(err, SIAM_ERR_ARG, "set batch: image %zu outside %zu images", k,
                                  ds->n);
        memcpy(t->x + (size_t)i * in, ds->images + k * in, in * sizeof(float));
    }
    if (!siam_augment_is_none(&t->augment)) {
        int rc = siam_augment_batch(&t->augment, t->x, (size_t)t->n, ds->rows, ds->cols, 1,
                                    &t->augment_rng, t->augment_tmp, err);
        if (rc)
            return rc;
    }
    const float *emb;
    int rc = siam_model_forward(m, 0, t->x, t->n, 1, &emb, err);
    if (!rc)
        rc = head(ctx, emb, groups, t->n, dim, loss, t->grad, stats, err);
    if (rc)
        return rc;
    siam_model_zero_grads(m);
    siam_model_backward(m, 0, t->grad);
    return SIAM_OK;
}

int siam_set_trainer_step(siam_set_trainer *t, const siam_dataset *ds, size_t base, siam_pk *pk,
                          siam_set_head_fn head, void *ctx, float *loss, siam_set_loss_stats *stats,
                          siam_error *err) {
    siam_pk_next(pk, t->idx, t->groups);
    double epoch = siam_schedule_epoch_at(t->step, t->steps_per_epoch);
    if (t->progress)
        *t->progress = (float)siam_schedule_progress(epoch, t->schedule.epochs);
    int rc =
        siam_set_trainer_gradients(t, ds, base, t->idx, t->groups, head, ctx, loss, stats, err);
    if (rc)
        return rc;
    if (!siam_schedule_is_constant(&t->schedule) && t->steps_per_epoch)
        t->opt.lr = (float)siam_schedule_lr(&t->schedule, epoch);
    siam_optim_step(&t->opt, siam_model_params(t->model), siam_model_grads(t->model));
    t->step++;
    return SIAM_OK;
}

int siam_set_trainer_sync(siam_set_trainer *t, siam_error *err) {
    if (!t->sync)
        return SIAM_OK;
    int rc = t->sync(t->sync_ctx, t->model, t->samples_since_sync, t->step, err);
    if (!rc)
        t->samples_since_sync = 0;
    return rc;
}

int siam_set_epoch_collapse(const siam_set_epoch_stats *s, char *why, size_t cap) {
    uint64_t mined = s->steps - s->degenerate_steps;
    double eps = SIAM_SET_COLLAPSE_EPS * (s->scale > 0 ? s->scale : 1.0);
    if (s->steps && s->mean_norm < eps) {
        snprintf(why, cap, "the mean embedding norm is %.2g (margin %g)", s->mean_norm,
                 s->scale > 0 ? s->scale : 1.0);
        return SIAM_SET_ALARM_COLLAPSE;
    }
    if (mined && s->mean_hardest_neg < eps) {
        snprintf(why, cap, "the hardest negatives are %.2g apart on average (margin %g)",
                 s->mean_hardest_neg, s->scale > 0 ? s->scale : 1.0);
        return SIAM_SET_ALARM_COLLAPSE;
    }
    if (mined && s->active_terms == 0) {
        snprintf(why, cap, "no loss term was active in the whole epoch (%llu steps)",
                 (unsigned long long)s->steps);
        return SIAM_SET_ALARM_STALLED;
    }
    return SIAM_SET_ALARM_NONE;
}

int siam_set_trainer_epoch(siam_set_trainer *t, const siam_dataset *ds, size_t base, siam_pk *pk,
                           siam_set_head_fn head, void *ctx, siam_step_fn on_step, void *step_ctx,
                           siam_set_epoch_stats *out, siam_error *err) {
    siam_set_epoch_stats s = {0};
    uint64_t steps = siam_pk_batches_per_epoch(pk);
    double loss_sum = 0, active_sum = 0, norm_sum = 0, pos_sum = 0, neg_sum = 0;
    for (uint64_t i = 0; i < steps; i++) {
        float loss;
        siam_set_loss_stats st = {0};
        int rc = siam_set_trainer_step(t, ds, base, pk, head, ctx, &loss, &st, err);
        if (rc)
            return rc;
        s.steps++;
        s.images += (uint64_t)t->n;
        loss_sum += loss;
        active_sum += st.frac_active;
        norm_sum += st.mean_norm;
        s.active_terms += st.active;
        if (st.degenerate) {
            s.degenerate_steps++;
        } else {
            pos_sum += st.hardest_pos;
            neg_sum += st.hardest_neg;
        }
        t->samples_since_sync += (uint64_t)t->n;
        if (t->sync && t->sync_every > 0 && t->step % (uint64_t)t->sync_every == 0 &&
            (rc = siam_set_trainer_sync(t, err)))
            return rc;
        if (on_step)
            on_step(step_ctx, i + 1, steps, s.images, loss_sum / (double)s.steps);
    }
    if (s.steps) {
        s.mean_loss = loss_sum / (double)s.steps;
        s.mean_active = active_sum / (double)s.steps;
        s.mean_norm = norm_sum / (double)s.steps;
    }
    uint64_t mined = s.steps - s.degenerate_steps;
    if (mined) {
        s.mean_hardest_pos = pos_sum / (double)mined;
        s.mean_hardest_neg = neg_sum / (double)mined;
    }
    s.scale = t->collapse_scale;
    char why[160];
    s.collapsing = siam_set_epoch_collapse(&s, why, sizeof why);
    if (s.collapsing == SIAM_SET_ALARM_COLLAPSE)
        LOG_WARN(COMPONENT,
                 "embeddings are collapsing: %s (loss %.4f, active fraction %.3f); the model is "
                 "mapping different classes to the same point: lower the learning rate or the "
                 "margin",
                 why, s.mean_loss, s.mean_active);
    else if (s.collapsing == SIAM_SET_ALARM_STALLED)
        LOG_WARN(COMPONENT,
                 "nothing was trained: %s, the hardest negatives are %.3f apart on average, so "
                 "every batch is already separated by the margin: raise the margin or use a "
                 "harder loss",
                 why, s.mean_hardest_neg);
    *out = s;
    return SIAM_OK;
}
