/* siam_trainer: one training step and one epoch of a Siamese model over image pairs, with the
 * loss head behind a function pointer (in-process for local training, a gRPC call for split
 * training), and evaluation of a model over pairs. */
#ifndef SIAM_TRAINER_H
#define SIAM_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "siam_dataset.h"
#include "siam_error.h"
#include "siam_loss.h"
#include "siam_metrics.h"
#include "siam_model.h"
#include "siam_optim.h"
#include "siam_pairs.h"
#include "siam_schedule.h"

/* Work a head may run while it waits for its answer: the trainer gathers the next batch's
 * images. A head calls it at most once per call, or not at all (the trainer then does that work
 * itself on the next step); either way the training is the same. */
typedef void (*siam_idle_fn)(void *idle_ctx);

/* The loss head: given left/right embeddings (B,dim) and labels (B, in the trainer's
 * convention), fill the mean loss, the distances (B) and the gradients of the mean loss w.r.t.
 * left and right (B,dim). idle/idle_ctx: see siam_idle_fn (idle may be NULL). */
typedef int (*siam_loss_head_fn)(void *ctx, const float *left, const float *right,
                                 const uint32_t *labels, int B, int dim, float *loss, float *dist,
                                 float *grad_left, float *grad_right, siam_idle_fn idle,
                                 void *idle_ctx, siam_error *err);

/* The loss head in two halves, for several batches in flight (siam-client --in-flight): send()
 * takes one batch's embeddings (B,dim), labels (B) and returns once it no longer needs them;
 * receive() fills the answer to the oldest batch sent and not yet received (as
 * siam_loss_head_fn's outputs), so answers come in the order the batches went. */
typedef struct {
    int (*send)(void *ctx, const float *left, const float *right, const uint32_t *labels, int B,
                int dim, siam_error *err);
    int (*receive)(void *ctx, int B, int dim, float *loss, float *dist, float *grad_left,
                   float *grad_right, siam_error *err);
    void *ctx;
} siam_split_head;

/* Batches in flight at most (siam_trainer_set_in_flight). */
#define SIAM_TRAINER_MAX_IN_FLIGHT 8

/* Weight averaging: sends the model's parameters (trained on `samples` pairs since the last
 * sync; 0 = join) and replaces them with the averaged global parameters. */
typedef int (*siam_sync_fn)(void *ctx, siam_model *m, uint64_t samples, uint64_t step,
                            siam_error *err);

/* The in-process head: siam_loss with this margin and convention (ctx is a siam_local_head). */
typedef struct {
    float margin;
    siam_label_convention conv;
} siam_local_head;

int siam_local_head_fn(void *ctx, const float *left, const float *right, const uint32_t *labels,
                       int B, int dim, float *loss, float *dist, float *grad_left,
                       float *grad_right, siam_idle_fn idle, void *idle_ctx, siam_error *err);

typedef struct {
    siam_model *model; /* borrowed */
    siam_optim opt;
    int batch;        /* maximum batch */
    float *x_left;    /* (batch, input) gathered images of the current step */
    float *x_right;   /* (batch, input) */
    uint32_t *labels; /* (batch) */
    /* the next step's batch, gathered while the head waits (see siam_idle_fn) */
    float *next_left, *next_right;
    uint32_t *next_labels;
    const siam_dataset *next_ds; /* what the next step will be, set by siam_trainer_epoch */
    const siam_pairs *next_p;
    size_t next_begin;
    int next_B;                   /* 0: no next step planned */
    const siam_dataset *ready_ds; /* what next_* buffers hold (ready_B 0: nothing) */
    const siam_pairs *ready_p;
    size_t ready_begin;
    int ready_B;
    uint64_t prefetched; /* steps whose batch had been gathered while the head waited */
    float *dist;         /* (batch) */
    float *grad_left;    /* (batch, dim) */
    float *grad_right;   /* (batch, dim) */
    uint64_t step;       /* optimizer steps taken */
    /* How labels are encoded for the head: pairs mark same-class pairs with 1; under
     * SIAM_LABELS_DISSIMILAR the head is sent 1 for different-class pairs instead. */
    siam_label_convention conv;
    /* weight averaging: siam_trainer_epoch calls sync every sync_every steps (0 = never) */
    siam_sync_fn sync;
    void *sync_ctx;
    int sync_every;
    uint64_t samples_since_sync;
    /* learning-rate schedule (siam_schedule.h, checked by the caller): before every optimizer
     * step opt.lr is set to siam_schedule_lr at the step's midpoint, siam_schedule_epoch_at(step,
     * steps_per_epoch). Zeroed (constant) or steps_per_epoch 0: opt.lr is never touched, the
     * rate siam_trainer_init was given throughout. */
    siam_schedule schedule;
    uint64_t steps_per_epoch; /* optimizer steps in one epoch: ceil(pairs / batch) */
    /* several batches in flight (siam_trainer_set_in_flight): in_flight K, the split head, and
     * per slot the gathered images and labels of a batch sent and not yet answered */
    int in_flight; /* 0 or 1: one batch at a time through the head given to the epoch */
    siam_split_head split;
    float *slot_left[SIAM_TRAINER_MAX_IN_FLIGHT], *slot_right[SIAM_TRAINER_MAX_IN_FLIGHT];
    uint32_t *slot_labels[SIAM_TRAINER_MAX_IN_FLIGHT];
    int slot_B[SIAM_TRAINER_MAX_IN_FLIGHT];
} siam_trainer;

int siam_trainer_init(siam_trainer *t, siam_model *model, siam_optim_kind kind, float lr, int batch,
                      siam_error *err);
void siam_trainer_free(siam_trainer *t);

/* One step on pairs [begin, begin+B) of p: forward both images (two passes of one model),
 * the head, backward both passes (weight gradients summed), one optimizer step at the
 * schedule's rate (see schedule above). */
int siam_trainer_step(siam_trainer *t, const siam_dataset *ds, const siam_pairs *p, size_t begin,
                      int B, siam_loss_head_fn head, void *ctx, float *loss, siam_error *err);

/* Up to K batches in flight (1..SIAM_TRAINER_MAX_IN_FLIGHT, SIAM_ERR_ARG otherwise) through the
 * split head: siam_trainer_epoch then forwards and sends batch s + K - 1 before it receives the
 * answer to batch s, so the forward of a batch sees the weights of K - 1 optimizer steps ago,
 * and its backward runs on the activations kept from that forward with the weights of now.
 * Answers are applied in order, one optimizer step each, at most K - 1 steps late; averaging
 * (sync_every) happens at its steps as before, with the batches in flight carried across it;
 * every epoch ends with all its batches answered and applied (the next epoch's first K - 1
 * batches see its final weights).
 * K = 1 is exactly the one-at-a-time step (the head passed to siam_trainer_epoch is used, the
 * split head ignored). Sets the model's passes to 2 K; SIAM_ERR_NOMEM. */
int siam_trainer_set_in_flight(siam_trainer *t, int K, siam_split_head split, siam_error *err);

/* Syncs now (when t->sync is set) with the samples since the last sync; resets that count. */
int siam_trainer_sync(siam_trainer *t, siam_error *err);

/* Called after each step of an epoch (e.g. progress display); may be NULL. */
typedef void (*siam_step_fn)(void *ctx, uint64_t step_in_epoch, uint64_t steps_in_epoch,
                             uint64_t pairs_done, double mean_loss);

/* All pairs of p in order in batches of t->batch (the last one may be smaller), syncing the
 * weights every t->sync_every optimizer steps when t->sync is set.
 * *mean_loss is the pair-weighted mean of the batch losses. */
int siam_trainer_epoch(siam_trainer *t, const siam_dataset *ds, const siam_pairs *p,
                       siam_loss_head_fn head, void *ctx, siam_step_fn on_step, void *step_ctx,
                       double *mean_loss, siam_error *err);

/* Embeds every image of ds once (inference mode) and fills dist (p->n) with the pair
 * distances; val_loss (may be NULL) gets the mean contrastive loss of the pairs. */
int siam_evaluate_distances(siam_model *m, const siam_dataset *ds, const siam_pairs *p,
                            float margin, siam_label_convention conv, float *dist, double *val_loss,
                            siam_error *err);

#endif
