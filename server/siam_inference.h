/* siam_inference: embedding images with the global model from many threads at once.
 *
 * Three objects:
 *  - siam_weights: one version of the global model's parameters (spec, params, round), immutable
 *    and reference-counted. Whoever holds a reference reads it without a lock; the last release
 *    frees it. Each weights object has a version number unique in the process, so "the same
 *    parameters" is one integer comparison.
 *  - siam_replica: a private siam_model (its own parameters and activation workspace) that embeds
 *    images with whichever weights it is handed: when the weights' version differs from the one
 *    it holds, it copies their parameters in (one memcpy) first. One thread at a time.
 *  - siam_inference: a pool of replicas (acquire, embed, release). Concurrent requests each take
 *    a replica, so they run in parallel; a request embeds all its images with one weights object,
 *    so no answer mixes two model versions. Replicas build their model on first use.
 *
 * siam_model stays a plain single-threaded object (lib/nn): this module only decides which
 * thread uses which model. */
#ifndef SIAM_INFERENCE_H
#define SIAM_INFERENCE_H

#include <stddef.h>
#include <stdint.h>

#include "siam_error.h"

/* Images per forward pass: inference is per row (the same bits at any batch size), so a small
 * batch only bounds each replica's activation memory (both passes of the model at this batch). */
#define SIAM_INFERENCE_CHUNK 32

typedef struct siam_weights siam_weights;

/* A new weights object holding a copy of params (n floats) for spec (a name or spec; n must be
 * its parameter count), with refcount 1. SIAM_ERR_ARG for a spec that does not parse or a wrong
 * n; SIAM_ERR_NOMEM. */
int siam_weights_create(siam_weights **out, const char *spec, const float *params, size_t n,
                        uint64_t round, siam_error *err);
/* Another reference (returns w; NULL stays NULL). */
siam_weights *siam_weights_retain(siam_weights *w);
/* Drops a reference; the last one frees. NULL is fine. */
void siam_weights_release(siam_weights *w);

const char *siam_weights_spec(const siam_weights *w); /* canonical */
uint64_t siam_weights_round(const siam_weights *w);   /* the averaging round of the parameters */
uint64_t siam_weights_version(const siam_weights *w); /* unique per weights object, from 1 */
const float *siam_weights_params(const siam_weights *w);
size_t siam_weights_num_params(const siam_weights *w);
int siam_weights_dim(const siam_weights *w);            /* embedding dimension */
size_t siam_weights_image_bytes(const siam_weights *w); /* H*W*C: bytes per input image */
void siam_weights_input_shape(const siam_weights *w, int *h, int *wd, int *c);
/* "HxWxC", e.g. "28x28x1", into buf[n]. */
void siam_weights_shape_text(const siam_weights *w, char *buf, size_t n);

typedef struct siam_replica siam_replica;

int siam_replica_create(siam_replica **out, siam_error *err);
void siam_replica_free(siam_replica *r); /* NULL is fine */

/* Embeds n images (n x siam_weights_image_bytes(w) grey levels, pixel / 255 as in training)
 * with w into out (n x siam_weights_dim(w) floats), in inference mode. The replica builds its
 * model for w's spec and copies w's parameters when it holds another version. An image's
 * embedding is the same bits whatever n and wherever it is in the batch. SIAM_ERR_NOMEM. */
int siam_replica_embed(siam_replica *r, siam_weights *w, const uint8_t *images, size_t n,
                       float *out, siam_error *err);

typedef struct siam_inference siam_inference;

/* A pool of `replicas` (1..256) replicas, no model built yet. SIAM_ERR_ARG, SIAM_ERR_NOMEM. */
int siam_inference_create(siam_inference **out, int replicas, siam_error *err);
/* Every replica must have been released. NULL is fine. */
void siam_inference_free(siam_inference *p);
int siam_inference_size(const siam_inference *p);

/* A free replica, waiting while all are busy; one that already holds w's version when there is
 * one (w may be NULL). Release it with siam_inference_release. */
siam_replica *siam_inference_acquire(siam_inference *p, const siam_weights *w);
void siam_inference_release(siam_inference *p, siam_replica *r);

/* acquire + siam_replica_embed + release. */
int siam_inference_embed(siam_inference *p, siam_weights *w, const uint8_t *images, size_t n,
                         float *out, siam_error *err);

#endif
