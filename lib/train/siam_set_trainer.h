/* siam_set_trainer: one training step and one epoch of an embedding model over P x K batches
 * (siam_pk) with a set loss head behind a function pointer: siam_set_loss in process for
 * siam-train, the TrainSet stream to siam-server for siam-client. A step embeds the batch's
 * n = P*K images in ONE training pass (a set loss compares every image with every other, so
 * there are no left and right passes), hands the embeddings and the batch's random group ids to
 * the head, backpropagates its n x dim gradient and takes one optimizer step.
 *
 * Epoch summaries carry a collapse alarm: a set loss can be minimised "wrongly" by mapping every
 * image to (nearly) one point, after which every distance is 0 and the hinge terms sit at the
 * margin with no gradient to separate anything; the trainer says so in a WARN line instead of
 * leaving the user to read it off a flat loss. */
#ifndef SIAM_SET_TRAINER_H
#define SIAM_SET_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "siam_augment.h"
#include "siam_dataset.h"
#include "siam_error.h"
#include "siam_model.h"
#include "siam_optim.h"
#include "siam_pk.h"
#include "siam_schedule.h"
#include "siam_set_loss.h"
#include "siam_trainer.h"

/* The set loss head: given n embeddings (n x dim, row-major) and their group ids (n), fill *loss,
 * grad (n x dim) = dLoss/dEmbeddings (overwritten) and *stats (what the mining saw). */
typedef int (*siam_set_head_fn)(void *ctx, const float *emb, const uint32_t *groups, int n, int dim,
                                float *loss, float *grad, siam_set_loss_stats *stats,
                                siam_error *err);

/* The in-process head: siam_set_loss with cfg (ctx is a siam_local_set_head) as in effect at the
 * training's progress (siam_set_loss_at: facenet mines semi-hard, then batch-hard). */
typedef struct {
    siam_set_loss_config cfg;
    const float *progress; /* read at every call: point it where the trainer writes its progress
                            * (siam_set_trainer.progress); NULL = 0 */
} siam_local_set_head;

int siam_local_set_head_fn(void *ctx, const float *emb, const uint32_t *groups, int n, int dim,
                           float *loss, float *grad, siam_set_loss_stats *stats, siam_error *err);

/* Below this fraction of the trainer's collapse_scale (the loss's margin), a mean embedding norm
 * or a mean hardest-negative distance counts as collapsed. Relative to the margin because that is
 * the distance the loss asks negatives to keep: an mlp under batch-hard was seen to settle at a
 * norm of 0.015 with margin 1 (every term active, loss = margin, ROC AUC 0.5), far from 0 in
 * absolute terms but a collapse all the same. l2norm models keep norm 1, so for them the
 * hardest-negative distance is the signal. */
#define SIAM_SET_COLLAPSE_EPS 0.1

typedef struct {
    siam_model *model; /* borrowed */
    siam_optim opt;
    int n;            /* images per batch: P*K */
    float *x;         /* (n, input) the batch's images */
    uint32_t *idx;    /* (n) sampler positions */
    uint32_t *groups; /* (n) group ids */
    float *grad;      /* (n, dim) the head's gradient */
    uint64_t step;    /* optimizer steps taken */
    /* weight averaging, as siam_trainer's: sync every sync_every steps (0 = never) with the
     * number of images trained since the last sync */
    siam_sync_fn sync;
    void *sync_ctx;
    int sync_every;
    uint64_t samples_since_sync;
    double collapse_scale; /* the margin the alarm compares with; 0 = 1 */
    /* learning-rate schedule, as siam_trainer's: before every optimizer step opt.lr is set to
     * siam_schedule_lr at the step's midpoint, siam_schedule_epoch_at(step, steps_per_epoch),
     * unless the schedule is constant (zeroed) or steps_per_epoch is 0 */
    siam_schedule schedule;
    uint64_t steps_per_epoch; /* siam_pk_batches_per_epoch */
    /* When set, before every head call the trainer writes here the fraction of training done at
     * the step's midpoint, siam_schedule_progress(epoch_at(step), schedule.epochs) in [0, 1]
     * (0 while steps_per_epoch or schedule.epochs is 0): the facenet loss reads it, in process
     * (siam_local_set_head.progress) or sent as EmbeddingSet.progress. */
    float *progress;
    /* training-time augmentation of every gathered batch (zeroed: none), drawn from augment_rng;
     * set both after init (siam_set_trainer_augment) */
    siam_augment augment;
    siam_rng augment_rng;
    float *augment_tmp; /* one image */
} siam_set_trainer;

/* One epoch's summary. Means are over the epoch's steps (the loss, active fraction and norm) or
 * over its non-degenerate steps (the hardest distances). */
typedef struct {
    uint64_t steps, images, degenerate_steps;
    int64_t active_terms; /* summed over the epoch: 0 means nothing was trained */
    double mean_loss, mean_active, mean_norm, mean_hardest_pos, mean_hardest_neg;
    double scale;   /* the trainer's collapse_scale (the margin), for siam_set_epoch_collapse */
    int collapsing; /* siam_set_epoch_collapse's verdict: SIAM_SET_ALARM_* */
} siam_set_epoch_stats;

/* n = P*K images per batch (1..SIAM_PK_BATCH_MAX). */
int siam_set_trainer_init(siam_set_trainer *t, siam_model *model, siam_optim_kind kind, float lr,
                          int n, siam_error *err);
void siam_set_trainer_free(siam_set_trainer *t);

/* Augment every batch from now on with a, drawn from a generator seeded with seed. */
void siam_set_trainer_augment(siam_set_trainer *t, const siam_augment *a, uint64_t seed);

/* Forward of images idx (n positions in ds, each plus base) in training mode, the head, backward:
 * fills *loss and *stats and leaves dLoss/dParams in the model's gradients (zeroed first). No
 * optimizer step: the finite-difference test and siam_set_trainer_step share it. */
int siam_set_trainer_gradients(siam_set_trainer *t, const siam_dataset *ds, size_t base,
                               const uint32_t *idx, const uint32_t *groups, siam_set_head_fn head,
                               void *ctx, float *loss, siam_set_loss_stats *stats, siam_error *err);

/* One step: the next batch of pk (positions in ds offset by base: a shard's begin), the progress
 * written (see progress above), gradients as above, one optimizer step at the schedule's rate.
 * pk's batches must hold t->n images. */
int siam_set_trainer_step(siam_set_trainer *t, const siam_dataset *ds, size_t base, siam_pk *pk,
                          siam_set_head_fn head, void *ctx, float *loss, siam_set_loss_stats *stats,
                          siam_error *err);

/* Syncs now (when t->sync is set) with the images since the last sync; resets that count. */
int siam_set_trainer_sync(siam_set_trainer *t, siam_error *err);

/* One epoch of pk (siam_pk_batches_per_epoch steps), syncing every t->sync_every steps; on_step
 * (may be NULL) gets the images done and the running mean loss. Fills *out and logs a WARN when
 * the embeddings are collapsing. */
int siam_set_trainer_epoch(siam_set_trainer *t, const siam_dataset *ds, size_t base, siam_pk *pk,
                           siam_set_head_fn head, void *ctx, siam_step_fn on_step, void *step_ctx,
                           siam_set_epoch_stats *out, siam_error *err);

/* The epoch alarm. COLLAPSE: the mean norm or the mean hardest-negative distance is below
 * SIAM_SET_COLLAPSE_EPS x s->scale (1 when 0). STALLED: no loss term was active in a whole epoch of
 * non-degenerate steps while the embeddings are spread out. That is kept apart from COLLAPSE on
 * purpose: a collapsed hinge loss keeps every term active (all distances 0 < margin), so no active
 * term with healthy distances means every batch is already separated by the margin and the epoch
 * trained nothing, which needs the opposite advice (a larger margin or a harder loss). */
enum { SIAM_SET_ALARM_NONE = 0, SIAM_SET_ALARM_COLLAPSE = 1, SIAM_SET_ALARM_STALLED = 2 };

/* SIAM_SET_ALARM_* for s; why (cap bytes) then says which figure, in plain words (untouched
 * for NONE). */
int siam_set_epoch_collapse(const siam_set_epoch_stats *s, char *why, size_t cap);

#endif
