/* siam_inference: immutable parameter versions, model replicas and the pool that lends them. */
#include "siam_inference.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_checkpoint.h"
#include "siam_model.h"

/* ---- weights ---- */

struct siam_weights {
    atomic_uint refs;
    uint64_t version, round;
    char spec[SIAM_SPEC_MAX];
    siam_model_shape shape;
    size_t n;
    float *params; /* (n) */
};

static atomic_uint_fast64_t next_version = 1;

int siam_weights_create(siam_weights **out, const char *spec, const float *params, size_t n,
                        uint64_t round, siam_error *err) {
    *out = NULL;
    siam_model_shape shape;
    char canon[SIAM_SPEC_MAX];
    int rc = siam_model_spec_parse(spec, canon, NULL, err);
    if (rc || (rc = siam_model_spec_shape(spec, &shape, err)))
        return rc;
    if (shape.n_params != n)
        return siam_error_set(err, SIAM_ERR_ARG, "%zu parameters, expected %zu for model '%s'", n,
                              shape.n_params, canon);
    siam_weights *w = calloc(1, sizeof *w);
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!w || !p) {
        free(w);
        free(p);
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for a copy of %zu parameters", n);
    }
    memcpy(p, params, n * sizeof *p);
    atomic_init(&w->refs, 1u);
    w->version = atomic_fetch_add(&next_version, 1);
    w->round = round;
    memcpy(w->spec, canon, sizeof w->spec);
    w->shape = shape;
    w->n = n;
    w->params = p;
    *out = w;
    return SIAM_OK;
}

siam_weights *siam_weights_retain(siam_weights *w) {
    if (w)
        atomic_fetch_add(&w->refs, 1u);
    return w;
}

void siam_weights_release(siam_weights *w) {
    if (w && atomic_fetch_sub(&w->refs, 1u) == 1u) {
        free(w->params);
        free(w);
    }
}

const char *siam_weights_spec(const siam_weights *w) {
    return w->spec;
}

uint64_t siam_weights_round(const siam_weights *w) {
    return w->round;
}

uint64_t siam_weights_version(const siam_weights *w) {
    return w->version;
}

const float *siam_weights_params(const siam_weights *w) {
    return w->params;
}

size_t siam_weights_num_params(const siam_weights *w) {
    return w->n;
}

int siam_weights_dim(const siam_weights *w) {
    return w->shape.out_dim;
}

size_t siam_weights_image_bytes(const siam_weights *w) {
    return (size_t)w->shape.in_h * (size_t)w->shape.in_w * (size_t)w->shape.in_c;
}

void siam_weights_input_shape(const siam_weights *w, int *h, int *wd, int *c) {
    *h = w->shape.in_h;
    *wd = w->shape.in_w;
    *c = w->shape.in_c;
}

void siam_weights_shape_text(const siam_weights *w, char *buf, size_t n) {
    snprintf(buf, n, "%dx%dx%d", w->shape.in_h, w->shape.in_w, w->shape.in_c);
}

/* ---- replicas ---- */

struct siam_replica {
    siam_model *model;
    uint64_t version; /* of the parameters in model; 0: none yet */
    float *stage;     /* (SIAM_INFERENCE_CHUNK, input size): pixels / 255 */
    size_t stage_cap; /* floats */
    int busy;         /* lent out by the pool */
};

int siam_replica_create(siam_replica **out, siam_error *err) {
    *out = calloc(1, sizeof **out);
    if (!*out)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for an inference replica");
    return SIAM_OK;
}

void siam_replica_free(siam_replica *r) {
    if (!r)
        return;
    siam_model_free(r->model);
    free(r->stage);
    free(r);
}

/* Makes r's model w's spec with w's parameters. */
static int replica_prepare(siam_replica *r, siam_weights *w, siam_error *err) {
    if (r->model && strcmp(siam_model_spec(r->model), w->spec) != 0) {
        siam_model_free(r->model);
        r->model = NULL;
    }
    if (!r->model) {
        r->version = 0;
        int rc = siam_model_create(&r->model, w->spec, 0, err);
        if (rc)
            return rc;
    }
    if (r->version != w->version) {
        memcpy(siam_model_params(r->model), w->params, w->n * sizeof *w->params);
        r->version = w->version;
    }
    size_t need = (size_t)SIAM_INFERENCE_CHUNK * siam_weights_image_bytes(w);
    if (r->stage_cap < need) {
        float *s = malloc(need * sizeof *s);
        if (!s)
            return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for %zu input floats", need);
        free(r->stage);
        r->stage = s;
        r->stage_cap = need;
    }
    return SIAM_OK;
}

int siam_replica_embed(siam_replica *r, siam_weights *w, const uint8_t *images, size_t n,
                       float *out, siam_error *err) {
    int rc = replica_prepare(r, w, err);
    if (rc)
        return rc;
    size_t in = siam_weights_image_bytes(w), dim = (size_t)siam_weights_dim(w);
    for (size_t b = 0; b < n; b += SIAM_INFERENCE_CHUNK) {
        size_t B = n - b < SIAM_INFERENCE_CHUNK ? n - b : SIAM_INFERENCE_CHUNK;
        const uint8_t *src = images + b * in;
        for (size_t i = 0; i < B * in; i++)
            r->stage[i] = (float)src[i] / 255.0f;
        const float *y;
        if ((rc = siam_model_forward(r->model, 0, r->stage, (int)B, 0, &y, err)))
            return rc;
        memcpy(out + b * dim, y, B * dim * sizeof *out);
    }
    return SIAM_OK;
}

/* ---- the pool ---- */

struct siam_inference {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    int n;
    siam_replica **all; /* (n) */
};

int siam_inference_create(siam_inference **out, int replicas, siam_error *err) {
    *out = NULL;
    if (replicas < 1 || replicas > 256)
        return siam_error_set(err, SIAM_ERR_ARG, "inference replicas is %d, expected 1..256",
                              replicas);
    siam_inference *p = calloc(1, sizeof *p);
    if (!p || !(p->all = calloc((size_t)replicas, sizeof *p->all))) {
        free(p);
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for the inference pool");
    }
    p->n = replicas;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->freed, NULL);
    for (int i = 0; i < replicas; i++)
        if (siam_replica_create(&p->all[i], err)) {
            siam_inference_free(p);
            return SIAM_ERR_NOMEM;
        }
    *out = p;
    return SIAM_OK;
}

void siam_inference_free(siam_inference *p) {
    if (!p)
        return;
    if (p->all) {
        for (int i = 0; i < p->n; i++)
            siam_replica_free(p->all[i]);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->freed);
    }
    free(p->all);
    free(p);
}

int siam_inference_size(const siam_inference *p) {
    return p->n;
}

siam_replica *siam_inference_acquire(siam_inference *p, const siam_weights *w) {
    pthread_mutex_lock(&p->lock);
    siam_replica *got = NULL;
    for (;;) {
        for (int i = 0; i < p->n; i++) {
            siam_replica *r = p->all[i];
            if (r->busy)
                continue;
            if (!got)
                got = r;
            if (w && r->version == w->version) { /* no copy of the parameters needed */
                got = r;
                break;
            }
        }
        if (got)
            break;
        pthread_cond_wait(&p->freed, &p->lock);
    }
    got->busy = 1;
    pthread_mutex_unlock(&p->lock);
    return got;
}

void siam_inference_release(siam_inference *p, siam_replica *r) {
    pthread_mutex_lock(&p->lock);
    r->busy = 0;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
}

int siam_inference_embed(siam_inference *p, siam_weights *w, const uint8_t *images, size_t n,
                         float *out, siam_error *err) {
    siam_replica *r = siam_inference_acquire(p, w);
    int rc = siam_replica_embed(r, w, images, n, out, err);
    siam_inference_release(p, r);
    return rc;
}
