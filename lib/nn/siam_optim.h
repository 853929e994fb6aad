/* siam_optim: Adam and SGD over one contiguous parameter buffer and its gradient buffer. */
#ifndef SIAM_OPTIM_H
#define SIAM_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "siam_error.h"

typedef enum { SIAM_OPTIM_ADAM = 0, SIAM_OPTIM_SGD = 1 } siam_optim_kind;

typedef struct {
    siam_optim_kind kind;
    float lr;                /* default 1e-3 */
    float beta1, beta2, eps; /* Adam: 0.9, 0.999, 1e-7 (Keras defaults, as the references) */
    uint64_t t;              /* steps taken */
    size_t n;                /* number of parameters updated */
    float *state;            /* Adam: m (n) then v (n), one owned buffer; NULL for SGD */
} siam_optim;

int siam_optim_init(siam_optim *o, siam_optim_kind kind, size_t n, float lr, siam_error *err);
void siam_optim_free(siam_optim *o);

/* params (n) -= update computed from grads (n).
 * SGD:  p -= lr g.
 * Adam: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 *       p -= lr_t m / (sqrt(v) + eps_hat), lr_t = lr sqrt(1-b2^t)/(1-b1^t) (Keras form). */
void siam_optim_step(siam_optim *o, float *params, const float *grads);

/* Size of the state saved in a checkpoint: 2n + 1 floats for Adam (m, v, t), 0 for SGD. */
size_t siam_optim_state_size(const siam_optim *o);
/* Copies the state out to / in from buf (siam_optim_state_size floats). */
void siam_optim_state_save(const siam_optim *o, float *buf);
int siam_optim_state_load(siam_optim *o, const float *buf, size_t n, siam_error *err);

/* "adam" or "sgd" to a kind; SIAM_ERR_ARG otherwise. */
int siam_optim_parse(const char *name, siam_optim_kind *kind, siam_error *err);

#endif
