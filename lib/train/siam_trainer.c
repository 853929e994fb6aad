/* siam_trainer: gathers pair batches, runs both passes, calls the loss head, steps Adam. */
#include "siam_trainer.h"

#include <stdlib.h>
#include <string.h>

#include "siam_tensor.h"

int siam_local_head_fn(void *ctx, const float *left, const float *right, const uint32_t *labels,
                       int B, int dim, float *loss, float *dist, float *grad_left,
                       float *grad_right, siam_idle_fn idle, void *idle_ctx, siam_error *err) {
    (void)err, (void)idle, (void)idle_ctx; /* no wait to fill */
    const siam_local_head *h = ctx;
    *loss = siam_contrastive_forward(dist, left, right, labels, B, dim, h->margin, h->conv);
    siam_contrastive_backward(grad_left, grad_right, left, right, dist, labels, B, dim, h->margin,
                              h->conv);
    return SIAM_OK;
}

int siam_trainer_init(siam_trainer *t, siam_model *model, siam_optim_kind kind, float lr, int batch,
                      siam_error *err) {
    memset(t, 0, sizeof *t);
    if (batch <= 0)
        return siam_error_set(err, SIAM_ERR_ARG, "batch size must be positive, got %d", batch);
    t->model = model;
    t->batch = batch;
    int rc = siam_optim_init(&t->opt, kind, siam_model_num_trainable(model), lr, err);
    if (rc)
        return rc;
    size_t in = (size_t)siam_model_input_size(model), dim = (size_t)siam_model_output_size(model);
    t->x_left = siam_alloc_floats((size_t)batch * in);
    t->x_right = siam_alloc_floats((size_t)batch * in);
    t->labels = calloc((size_t)batch, sizeof(uint32_t));
    t->next_left = siam_alloc_floats((size_t)batch * in);
    t->next_right = siam_alloc_floats((size_t)batch * in);
    t->next_labels = calloc((size_t)batch, sizeof(uint32_t));
    t->dist = siam_alloc_floats((size_t)batch);
    t->grad_left = siam_alloc_floats((size_t)batch * dim);
    t->grad_right = siam_alloc_floats((size_t)batch * dim);
    if (!t->x_left || !t->x_right || !t->labels || !t->dist || !t->grad_left || !t->grad_right ||
        !t->next_left || !t->next_right || !t->next_labels) {
        siam_trainer_free(t);
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for batch buffers (batch %d)",
                              batch);
    }
    return SIAM_OK;
}

static void free_slots(siam_trainer *t) {
    for (int k = 0; k < SIAM_TRAINER_MAX_IN_FLIGHT; k++) {
        siam_free(t->slot_left[k]);
        siam_free(t->slot_right[k]);
        free(t->slot_labels[k]);
        t->slot_left[k] = t->slot_right[k] = NULL;
        t->slot_labels[k] = NULL;
    }
}

int siam_trainer_set_in_flight(siam_trainer *t, int K, siam_split_head split, siam_error *err) {
    if (K < 1 || K > SIAM_TRAINER_MAX_IN_FLIGHT)
        return siam_error_set(err, SIAM_ERR_ARG, "batches in flight must be 1..%d, got %d",
                              SIAM_TRAINER_MAX_IN_FLIGHT, K);
    if (K > 1 && (!split.send || !split.receive))
        return siam_error_set(err, SIAM_ERR_ARG, "%d batches in flight need a split head", K);
    free_slots(t);
    int rc = siam_model_set_passes(t->model, K > 1 ? 2 * K : SIAM_MODEL_PASSES, err);
    if (rc)
        return rc;
    t->in_flight = K;
    t->split = split;
    size_t in = (size_t)siam_model_input_size(t->model);
    for (int k = 0; k < K && K > 1; k++) {
        t->slot_left[k] = siam_alloc_floats((size_t)t->batch * in);
        t->slot_right[k] = siam_alloc_floats((size_t)t->batch * in);
        t->slot_labels[k] = calloc((size_t)t->batch, sizeof(uint32_t));
        if (!t->slot_left[k] || !t->slot_right[k] || !t->slot_labels[k]) {
            free_slots(t);
            t->in_flight = 1;
            return siam_error_set(err, SIAM_ERR_NOMEM,
                                  "out of memory for %d batches of %d pairs in flight", K,
                                  t->batch);
        }
    }
    return SIAM_OK;
}

void siam_trainer_free(siam_trainer *t) {
    free_slots(t);
    siam_optim_free(&t->opt);
    siam_free(t->x_left);
    siam_free(t->x_right);
    free(t->labels);
    siam_free(t->next_left);
    siam_free(t->next_right);
    free(t->next_labels);
    siam_free(t->dist);
    siam_free(t->grad_left);
    siam_free(t->grad_right);
    memset(t, 0, sizeof *t);
}

/* Copies the images and labels of pairs [begin, begin+B) into xl, xr, labels. */
static void gather(const siam_trainer *t, const siam_dataset *ds, const siam_pairs *p, size_t begin,
                   int B, float *xl, float *xr, uint32_t *labels) {
    size_t in = (size_t)ds->rows * ds->cols;
    for (int i = 0; i < B; i++) {
        size_t k = begin + (size_t)i;
        memcpy(xl + (size_t)i * in, ds->images + (size_t)p->left[k] * in, in * sizeof(float));
        memcpy(xr + (size_t)i * in, ds->images + (size_t)p->right[k] * in, in * sizeof(float));
        labels[i] = t->conv == SIAM_LABELS_DISSIMILAR ? !p->labels[k] : p->labels[k];
    }
}

/* The idle work: gather the planned next batch (once). */
static void gather_next(void *ctx) {
    siam_trainer *t = ctx;
    if (t->next_B <= 0 || t->ready_B > 0)
        return;
    gather(t, t->next_ds, t->next_p, t->next_begin, t->next_B, t->next_left, t->next_right,
           t->next_labels);
    t->ready_ds = t->next_ds, t->ready_p = t->next_p;
    t->ready_begin = t->next_begin, t->ready_B = t->next_B;
}

static void swap_floats(float **a, float **b) {
    float *x = *a;
    *a = *b;
    *b = x;
}

/* The optimizer step for the gradients of the model's current backward. */
static void optimizer_step(siam_trainer *t) {
    siam_model *m = t->model;
    if (!siam_schedule_is_constant(&t->schedule) && t->steps_per_epoch)
        t->opt.lr = (float)siam_schedule_lr(&t->schedule,
                                            siam_schedule_epoch_at(t->step, t->steps_per_epoch));
    siam_optim_step(&t->opt, siam_model_params(m), siam_model_grads(m));
    t->step++;
}

int siam_trainer_step(siam_trainer *t, const siam_dataset *ds, const siam_pairs *p, size_t begin,
                      int B, siam_loss_head_fn head, void *ctx, float *loss, siam_error *err) {
    if (B <= 0 || B > t->batch || begin + (size_t)B > p->n)
        return siam_error_set(err, SIAM_ERR_ARG, "step: batch of %d at %zu outside %zu pairs", B,
                              begin, p->n);
    siam_model *m = t->model;
    size_t in = (size_t)siam_model_input_size(m);
    int dim = siam_model_output_size(m);
    if ((size_t)ds->rows * ds->cols != in)
        return siam_error_set(err, SIAM_ERR_MISMATCH,
                              "images are %dx%d but the model expects %zu inputs", ds->rows,
                              ds->cols, in);
    if (t->ready_B == B && t->ready_ds == ds && t->ready_p == p && t->ready_begin == begin) {
        /* gathered while the previous step waited for its head */
        t->prefetched++;
        swap_floats(&t->x_left, &t->next_left);
        swap_floats(&t->x_right, &t->next_right);
        uint32_t *l = t->labels;
        t->labels = t->next_labels;
        t->next_labels = l;
    } else {
        gather(t, ds, p, begin, B, t->x_left, t->x_right, t->labels);
    }
    t->ready_B = 0;
    const float *e_left, *e_right;
    int rc = siam_model_forward(m, 0, t->x_left, B, 1, &e_left, err);
    if (!rc)
        rc = siam_model_forward(m, 1, t->x_right, B, 1, &e_right, err);
    if (!rc)
        rc = head(ctx, e_left, e_right, t->labels, B, dim, loss, t->dist, t->grad_left,
                  t->grad_right, gather_next, t, err);
    if (rc)
        return rc;
    siam_model_zero_grads(m);
    siam_model_backward(m, 0, t->grad_left);
    siam_model_backward(m, 1, t->grad_right);
    optimizer_step(t);
    return SIAM_OK;
}

/* siam_trainer_epoch with t->in_flight = K > 1 batches through t->split: batch s goes out in
 * slot s % K (passes 2 (s % K) and 2 (s % K) + 1) while the answers to batches s - K + 1 .. s - 1
 * are still on their way. */
static int epoch_in_flight(siam_trainer *t, const siam_dataset *ds, const siam_pairs *p,
                           siam_step_fn on_step, void *step_ctx, double *mean_loss,
                           siam_error *err) {
    siam_model *m = t->model;
    int K = t->in_flight, dim = siam_model_output_size(m);
    size_t in = (size_t)siam_model_input_size(m);
    if ((size_t)ds->rows * ds->cols != in)
        return siam_error_set(err, SIAM_ERR_MISMATCH,
                              "images are %dx%d but the model expects %zu inputs", ds->rows,
                              ds->cols, in);
    uint64_t steps = (p->n + (size_t)t->batch - 1) / (size_t)t->batch, sent = 0, done = 0;
    double total = 0.0;
    size_t pairs_done = 0;
    while (done < steps) {
        while (sent < steps && sent - done < (uint64_t)K) { /* fill the pipeline */
            int k = (int)(sent % (uint64_t)K);
            size_t begin = (size_t)sent * (size_t)t->batch;
            int B = (int)(p->n - begin < (size_t)t->batch ? p->n - begin : (size_t)t->batch);
            gather(t, ds, p, begin, B, t->slot_left[k], t->slot_right[k], t->slot_labels[k]);
            t->slot_B[k] = B;
            const float *e_left, *e_right;
            int rc = siam_model_forward(m, 2 * k, t->slot_left[k], B, 1, &e_left, err);
            if (!rc)
                rc = siam_model_forward(m, 2 * k + 1, t->slot_right[k], B, 1, &e_right, err);
            if (!rc)
                rc = t->split.send(t->split.ctx, e_left, e_right, t->slot_labels[k], B, dim, err);
            if (rc)
                return rc;
            sent++;
        }
        int k = (int)(done % (uint64_t)K), B = t->slot_B[k];
        float loss;
        int rc = t->split.receive(t->split.ctx, B, dim, &loss, t->dist, t->grad_left, t->grad_right,
                                  err);
        if (rc)
            return rc;
        siam_model_zero_grads(m);
        siam_model_backward(m, 2 * k, t->grad_left);
        siam_model_backward(m, 2 * k + 1, t->grad_right);
        optimizer_step(t);
        done++;
        total += (double)loss * B;
        pairs_done += (size_t)B;
        t->samples_since_sync += (uint64_t)B;
        if (t->sync && t->sync_every > 0 && t->step % (uint64_t)t->sync_every == 0 &&
            (rc = siam_trainer_sync(t, err)))
            return rc;
        if (on_step)
            on_step(step_ctx, done, steps, pairs_done, total / (double)pairs_done);
    }
    *mean_loss = pairs_done ? total / (double)pairs_done : 0.0;
    return SIAM_OK;
}

int siam_trainer_epoch(siam_trainer *t, const siam_dataset *ds, const siam_pairs *p,
                       siam_loss_head_fn head, void *ctx, siam_step_fn on_step, void *step_ctx,
                       double *mean_loss, siam_error *err) {
    if (t->in_flight > 1)
        return epoch_in_flight(t, ds, p, on_step, step_ctx, mean_loss, err);
    uint64_t steps = (p->n + (size_t)t->batch - 1) / (size_t)t->batch;
    double total = 0.0;
    size_t done = 0;
    for (uint64_t s = 0; s < steps; s++) {
        size_t begin = (size_t)s * (size_t)t->batch;
        int B = (int)(p->n - begin < (size_t)t->batch ? p->n - begin : (size_t)t->batch);
        /* plan the next step so a head that waits can gather it meanwhile */
        size_t nb = begin + (size_t)B;
        t->next_ds = ds, t->next_p = p, t->next_begin = nb;
        t->next_B =
            nb < p->n ? (int)(p->n - nb < (size_t)t->batch ? p->n - nb : (size_t)t->batch) : 0;
        float loss;
        int rc = siam_trainer_step(t, ds, p, begin, B, head, ctx, &loss, err);
        if (rc) {
            t->next_B = 0, t->ready_B = 0;
            return rc;
        }
        total += (double)loss * B;
        done += (size_t)B;
        t->samples_since_sync += (uint64_t)B;
        if (t->sync && t->sync_every > 0 && t->step % (uint64_t)t->sync_every == 0 &&
            (rc = siam_trainer_sync(t, err))) {
            t->next_B = 0, t->ready_B = 0;
            return rc;
        }
        if (on_step)
            on_step(step_ctx, s + 1, steps, done, total / (double)done);
    }
    t->next_B = 0, t->ready_B = 0; /* p may be reshuffled in place before the next epoch */
    *mean_loss = done ? total / (double)done : 0.0;
    return SIAM_OK;
}

int siam_trainer_sync(siam_trainer *t, siam_error *err) {
    if (!t->sync)
        return SIAM_OK;
    int rc = t->sync(t->sync_ctx, t->model, t->samples_since_sync, t->step, err);
    if (!rc)
        t->samples_since_sync = 0;
    return rc;
}

int siam_evaluate_distances(siam_model *m, const siam_dataset *ds, const siam_pairs *p,
                            float margin, siam_label_convention conv, float *dist, double *val_loss,
                            siam_error *err) {
    size_t dim = (size_t)siam_model_output_size(m);
    float *emb = siam_alloc_floats(ds->n * dim);
    if (!emb)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for %zu embeddings", ds->n);
    int rc = siam_model_embed(m, ds->images, ds->n, emb, err);
    if (!rc) {
        for (size_t i = 0; i < p->n; i++)
            dist[i] = siam_distance(emb + (size_t)p->left[i] * dim, emb + (size_t)p->right[i] * dim,
                                    (int)dim);
        if (val_loss)
            *val_loss = siam_contrastive_from_distances(dist, p->labels, p->n, margin, conv);
    }
    siam_free(emb);
    return rc;
}
