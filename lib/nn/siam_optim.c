/* siam_optim: one flat loop per step over the contiguous buffers. */
#include "siam_optim.h"

#include <math.h>
#include <string.h>

#include "siam_tensor.h"

int siam_optim_init(siam_optim *o, siam_optim_kind kind, size_t n, float lr, siam_error *err) {
    memset(o, 0, sizeof *o);
    if (!(lr > 0.0f) || !isfinite(lr))
        return siam_error_set(err, SIAM_ERR_ARG, "learning rate must be a positive number, got %g",
                              (double)lr);
    o->kind = kind;
    o->lr = lr;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-7f;
    o->n = n;
    if (kind == SIAM_OPTIM_ADAM) {
        o->state = siam_alloc_floats(2 * n);
        if (!o->state)
            return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for Adam state (%zu floats)",
                                  2 * n);
    }
    return SIAM_OK;
}

void siam_optim_free(siam_optim *o) {
    siam_free(o->state);
    o->state = NULL;
}

void siam_optim_step(siam_optim *o, float *params, const float *grads) {
    size_t n = o->n;
    o->t++;
    if (o->kind == SIAM_OPTIM_SGD) {
        for (size_t i = 0; i < n; i++)
            params[i] -= o->lr * grads[i];
        return;
    }
    float *m = o->state, *v = o->state + n;
    float b1 = o->beta1, b2 = o->beta2;
    double t = (double)o->t;
    float lr_t = (float)(o->lr * sqrt(1.0 - pow(b2, t)) / (1.0 - pow(b1, t)));
    float eps = o->eps;
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        params[i] -= lr_t * m[i] / (sqrtf(v[i]) + eps);
    }
}

size_t siam_optim_state_size(const siam_optim *o) {
    return o->kind == SIAM_OPTIM_ADAM ? 2 * o->n + 1 : 0;
}

void siam_optim_state_save(const siam_optim *o, float *buf) {
    if (o->kind != SIAM_OPTIM_ADAM)
        return;
    memcpy(buf, o->state, 2 * o->n * sizeof(float));
    buf[2 * o->n] = (float)o->t; /* exact up to 2^24 steps; checkpoints also carry step */
}

int siam_optim_state_load(siam_optim *o, const float *buf, size_t n, siam_error *err) {
    if (n != siam_optim_state_size(o))
        return siam_error_set(err, SIAM_ERR_MISMATCH,
                              "optimizer state has %zu floats, this optimizer needs %zu", n,
                              siam_optim_state_size(o));
    if (o->kind == SIAM_OPTIM_ADAM) {
        memcpy(o->state, buf, 2 * o->n * sizeof(float));
        o->t = (uint64_t)buf[2 * o->n];
    }
    return SIAM_OK;
}

int siam_optim_parse(const char *name, siam_optim_kind *kind, siam_error *err) {
    if (strcmp(name, "adam") == 0)
        *kind = SIAM_OPTIM_ADAM;
    else if (strcmp(name, "sgd") == 0)
        *kind = SIAM_OPTIM_SGD;
    else
        return siam_error_set(err, SIAM_ERR_ARG, "unknown optimizer '%s' (use adam or sgd)", name);
    return SIAM_OK;
}
