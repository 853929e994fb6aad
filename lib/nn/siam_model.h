/* siam_model: an embedding network = ordered layers over one contiguous parameter buffer and one
 * gradient buffer. Two (or more) "passes" share the weights: each pass keeps its own activations,
 * and backward of every pass accumulates into the same gradient buffer (Siamese weight sharing).
 *
 * A model is described by a spec string, one token per layer after the input shape, e.g.
 *   "in=28x28x1 dense128 relu dropout0.5 dense128 relu dropout0.3 dense128 relu"   (mlp)
 *   "in=28x28x1 dense256 relu dense128 relu dense64 l2norm"                          (mlp2)
 *   "in=28x28x1 conv3x3x32 elu maxpool2 batchnorm conv3x3x64 elu maxpool2 batchnorm flatten
 *    dense128"                                                                       (cnn)
 *   "in=28x28x1 conv3x3x32s batchnorm relu maxpool2 conv3x3x64s batchnorm relu maxpool2
 *    conv3x3x64s batchnorm relu flatten dense128 relu dense64 l2norm"                (cnn2)
 * Tokens: denseN, convKHxKWxN ('valid'), convKHxKWxNs ('same': (K-1)/2 zeros each side, odd
 * kernels), maxpool2, batchnorm, relu, elu, dropoutR, l2norm (x / max(||x||, 1e-12) per item),
 * flatten (docs/DESIGN.md). No token adds an activation of its own: a trailing denseN is a linear
 * embedding, and "... denseN l2norm" a unit-length N-d embedding for distance search, e.g.
 *   "in=28x28x1 dense128 relu dense64 l2norm"                                        (108,736)
 * The spec identifies architecture and sizes: two models with equal specs have the same
 * parameter layout, so checkpoints and averaged weights move between them with one memcpy.
 */
#ifndef SIAM_MODEL_H
#define SIAM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "siam_error.h"

typedef struct siam_model siam_model;

#define SIAM_MODEL_PASSES 2

/* name_or_spec: "mlp", "mlp2", "cnn", "cnn2" or a full spec string. Parameters are initialised from
 * seed (He/Kaiming uniform with PyTorch's a = sqrt(5), i.e. U(+-1/sqrt(fan_in)), for dense and conv
 * weights, zero biases, batchnorm gamma 1 beta 0, running mean 0 var 1). SIAM_ERR_ARG names the
 * token it cannot parse. */
int siam_model_create(siam_model **out, const char *name_or_spec, uint64_t seed, siam_error *err);
void siam_model_free(siam_model *m);

/* Parses name_or_spec without building the model (no parameter memory): its canonical spec
 * (tokens joined by single spaces, "mlp"/"mlp2"/"cnn"/"cnn2" expanded) into canon[SIAM_SPEC_MAX]
 * and its parameter count into *n_params (either may be NULL). SIAM_ERR_ARG as siam_model_create.
 */
int siam_model_spec_parse(const char *name_or_spec, char *canon, size_t *n_params, siam_error *err);

/* What a spec describes, without building the model: the input shape in=HxWxC, the embedding
 * dimension and the parameter count. SIAM_ERR_ARG as siam_model_create. */
typedef struct {
    int in_h, in_w, in_c; /* one input image */
    int out_dim;          /* embedding dimension */
    size_t n_params;
} siam_model_shape;
int siam_model_spec_shape(const char *name_or_spec, siam_model_shape *out, siam_error *err);

/* The canonical spec string (points into the model). */
const char *siam_model_spec(const siam_model *m);
/* Expands "mlp"/"mlp2"/"cnn"/"cnn2" to their spec; other strings are returned as they are. */
const char *siam_model_spec_for(const char *name_or_spec);

int siam_model_input_size(const siam_model *m); /* floats per input image (784) */
/* The input shape of one image, in=HxWxC of the spec (28, 28, 1 for every builder). */
void siam_model_input_shape(const siam_model *m, int *h, int *w, int *c);
int siam_model_output_size(const siam_model *m); /* embedding dim (mlp, cnn 128; mlp2, cnn2 64) */

/* params: n_params floats; the first n_trainable are trained (and have gradients), the rest are
 * batchnorm running statistics. grads: n_trainable floats. Both point into the model. */
size_t siam_model_num_params(const siam_model *m);
size_t siam_model_num_trainable(const siam_model *m);
float *siam_model_params(siam_model *m);
float *siam_model_grads(siam_model *m);
void siam_model_zero_grads(siam_model *m);

/* Forward of pass (0..SIAM_MODEL_PASSES-1) on x (B, input_size). training: dropout active and
 * batchnorm on batch statistics (updating running ones); else inference. *out points at the
 * (B, output_size) embeddings inside the model, valid until the next forward of that pass.
 * x must stay valid until backward of the same pass. SIAM_ERR_NOMEM if buffers cannot grow.
 * Inference computes each row from that row alone in a fixed order (siam_matmul_rows): a row's
 * output is the same bits whatever B, its place in the batch, the CPU or OpenBLAS's settings.
 * Training uses sgemm, so its forward may differ from inference's in the last bits. */
int siam_model_forward(siam_model *m, int pass, const float *x, int B, int training,
                       const float **out, siam_error *err);

/* Backward of the last training forward of pass: dout (B, output_size) = dLoss/dEmbedding.
 * Weight gradients are ACCUMULATED into grads. */
void siam_model_backward(siam_model *m, int pass, const float *dout);

/* Inference embeddings of n inputs (n, input_size) into out (n, output_size), in chunks. An
 * input's embedding is the same bits alone or at any row of any n (identical inputs, distance 0).
 */
int siam_model_embed(siam_model *m, const float *x, size_t n, float *out, siam_error *err);

/* Seeds the dropout random stream (reproducible training). */
void siam_model_seed_dropout(siam_model *m, uint64_t seed);

#endif
