/* siam_schedule: learning-rate schedules as pure functions of the training's position, measured
 * in fractional epochs (steps taken / steps per epoch), so the rate moves smoothly within an
 * epoch and does not depend on the batch size.
 *
 *   constant  lr(t) = lr                                                   (the default)
 *   step      lr(t) = lr * factor^k, k = number of drop epochs e_i <= t  (the FaceNet seed: Adam
 *             1e-4, times 0.1 after 15 of 20 epochs)
 *   cosine    lr(t) = floor + (lr - floor) * (1 + cos(pi * min(t / T, 1))) / 2   over the whole
 *             training of T epochs
 *   warm-up   any of them times min(1, t / W) over the first W epochs (W = 0: none)
 *
 * The trainers evaluate it at each step's midpoint, t = (step + 0.5) / steps_per_epoch
 * (siam_schedule_epoch_at): a drop at epoch e then applies exactly from epoch e's first step on,
 * the first warm-up step is not wasted at lr 0, and the last cosine step is not either. */
#ifndef SIAM_SCHEDULE_H
#define SIAM_SCHEDULE_H

#include <stdint.h>

#include "siam_error.h"

typedef enum {
    SIAM_SCHEDULE_CONSTANT = 0,
    SIAM_SCHEDULE_STEP = 1,
    SIAM_SCHEDULE_COSINE = 2,
} siam_schedule_kind;

/* Most drop epochs a step schedule takes. */
#define SIAM_SCHEDULE_MAX_DROPS 16

/* A zeroed siam_schedule is constant without warm-up: siam_schedule_is_constant says so, and the
 * trainers then never touch the optimizer's rate. */
typedef struct {
    siam_schedule_kind kind;
    double lr;                                   /* the base rate (the optimizer's --lr) */
    double epochs;                               /* T: the training's length (cosine's horizon) */
    int n_drops;                                 /* step: number of drop epochs */
    double drop_epochs[SIAM_SCHEDULE_MAX_DROPS]; /* step: strictly ascending, in (0, T) */
    double drop_factor;                          /* step: the multiplier at each drop, in (0, 1] */
    double floor;                                /* cosine: the final rate, in [0, lr) */
    double warmup_epochs;                        /* W: linear warm-up length; 0 = none */
} siam_schedule;

/* constant at lr over `epochs`, drop factor 0.1, floor 0, no warm-up. */
siam_schedule siam_schedule_default(double lr, double epochs);

/* 1 when the rate never changes (constant, no warm-up). */
int siam_schedule_is_constant(const siam_schedule *s);

/* The rate at fractional epoch t >= 0 (the formulas above). No checks: call siam_schedule_check
 * once first. */
double siam_schedule_lr(const siam_schedule *s, double t);

/* The fractional epoch at the middle of step `step` (0-based): (step + 0.5) / steps_per_epoch;
 * 0 when steps_per_epoch is 0. */
double siam_schedule_epoch_at(uint64_t step, uint64_t steps_per_epoch);

/* The fraction of training done at fractional epoch t: t / epochs clamped to [0, 1]; 0 when
 * epochs <= 0 or either is NaN. */
double siam_schedule_progress(double t, double epochs);

/* SIAM_ERR_ARG naming what is wrong: an unknown kind, lr or epochs not finite and > 0, drop epochs
 * not strictly ascending in (0, epochs) or none for `step`, a drop factor outside (0, 1], a floor
 * outside [0, lr), a warm-up outside [0, epochs). */
int siam_schedule_check(const siam_schedule *s, siam_error *err);

/* "constant", "step" or "cosine" into *kind; SIAM_ERR_ARG naming the choices otherwise. */
int siam_schedule_parse(siam_schedule_kind *kind, const char *name, siam_error *err);

/* The name parse accepts for kind, or "invalid". */
const char *siam_schedule_name(siam_schedule_kind kind);

/* "constant, step, cosine" (messages and --help). */
const char *siam_schedule_choices(void);

/* A comma-separated list of epochs ("15", "10,15", "7.5") into s->drop_epochs and s->n_drops;
 * NULL or "" gives none. SIAM_ERR_ARG (s untouched) for an item that is not a finite positive
 * number, items not strictly ascending, or more than SIAM_SCHEDULE_MAX_DROPS. */
int siam_schedule_parse_drops(siam_schedule *s, const char *list, siam_error *err);

#endif
