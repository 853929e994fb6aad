/* siam_layers: every layer as a forward/backward pair of free functions over a whole batch.
 *
 * Conventions (all layers):
 * - Row-major, images NHWC: an image batch is (B,H,W,C); a dense batch is (B,I).
 * - Outputs come first in the argument list, inputs are const.
 * - forward overwrites its output.
 * - backward ACCUMULATES (+=) into every gradient output (din, dw, db, ...); the caller zeroes
 *   them. Any gradient output may be NULL when it is not needed (e.g. din of the first layer).
 * - Workspaces and caches are owned by the caller, sized by the *_size helpers.
 * - A NULL bias counts as zero. Elementwise forwards (relu, elu, dropout) and l2norm may work in
 *   place.
 */
#ifndef SIAM_LAYERS_H
#define SIAM_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "siam_rng.h"

/* ---- dense: out (B,O) = in (B,I) . w (I,O) + b (O) ---- */
void siam_dense_forward(float *out, const float *in, const float *w, const float *b, int B, int I,
                        int O);
/* The inference forward: the same product by siam_matmul_rows, so each output row depends only on
 * its own input row, bit for bit, whatever B and the row's place in the batch. */
void siam_dense_infer(float *out, const float *in, const float *w, const float *b, int B, int I,
                      int O);
/* din (B,I) += dout . w^T;  dw (I,O) += in^T . dout;  db (O) += sum_b dout */
void siam_dense_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, int B, int I, int O);

/* ---- conv2d, stride 1, zero padding PH rows above and below, PW columns left and right:
 *      in (B,H,W,C), w (KH,KW,C,K), b (K), out (B,OH,OW,K) with OH = H+2*PH-KH+1,
 *      OW = W+2*PW-KW+1. PH = PW = 0 is 'valid'; PH = (KH-1)/2, PW = (KW-1)/2 with odd kernels is
 *      'same' (OH = H, OW = W). Padding is never stored: im2col writes zeros for the taps that
 *      fall outside the image and backward drops their gradients.
 *      col is the im2col workspace of (B*OH*OW, KH*KW*C) floats; forward fills it and backward
 *      reads it, so keep it between the two calls.
 *      dcol is a second workspace of the same size used by backward, required when din is given. */
size_t siam_conv2d_col_size(int B, int H, int W, int C, int KH, int KW, int PH, int PW);
void siam_conv2d_forward(float *out, float *col, const float *in, const float *w, const float *b,
                         int B, int H, int W, int C, int KH, int KW, int PH, int PW, int K);
/* The inference forward, one item at a time by siam_matmul_rows: an item's output depends only on
 * that item, bit for bit. col needs siam_conv2d_col_size(1, ...) floats (one item's patches). */
void siam_conv2d_infer(float *out, float *col, const float *in, const float *w, const float *b,
                       int B, int H, int W, int C, int KH, int KW, int PH, int PW, int K);
void siam_conv2d_backward(float *din, float *dw, float *db, float *dcol, const float *dout,
                          const float *col, const float *w, int B, int H, int W, int C, int KH,
                          int KW, int PH, int PW, int K);

/* ---- maxpool 2x2 stride 2 (floor): in (B,H,W,C) -> out (B,H/2,W/2,C), fewer than 2^32 inputs.
 *      argmax (B,H/2,W/2,C) records the flat input index of each maximum for backward; on a tie
 *      the first element of the window wins (-0 counts as below +0). */
void siam_maxpool2_forward(float *out, uint32_t *argmax, const float *in, int B, int H, int W,
                           int C);
void siam_maxpool2_backward(float *din, const float *dout, const uint32_t *argmax, int B, int H,
                            int W, int C);

/* ---- batchnorm over the last axis: x (N,C) with N = B*H*W for images, B for dense.
 *      y = gamma * (x - mean) / sqrt(var + eps) + beta.
 *      Training: mean/var of this batch (biased var), running_* = momentum*running_* +
 *      (1-momentum)*batch stat (running_var uses the unbiased batch variance, as Keras does).
 *      Inference: running statistics. xhat (N,C) and inv_std (C) are caches for backward. */
void siam_batchnorm_forward_train(float *y, float *xhat, float *inv_std, float *running_mean,
                                  float *running_var, const float *x, const float *gamma,
                                  const float *beta, int N, int C, float momentum, float eps);
void siam_batchnorm_forward_infer(float *y, const float *x, const float *gamma, const float *beta,
                                  const float *running_mean, const float *running_var, int N, int C,
                                  float eps);
/* Backward of the training-mode forward. */
void siam_batchnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
                             const float *xhat, const float *inv_std, const float *gamma, int N,
                             int C);

/* ---- relu: y = max(x, 0) (n elements); backward uses the forward output y ---- */
void siam_relu_forward(float *y, const float *x, size_t n);
void siam_relu_backward(float *dx, const float *dy, const float *y, size_t n);

/* ---- elu (alpha = 1): y = x for x > 0, exp(x) - 1 otherwise; backward uses x and y ---- */
void siam_elu_forward(float *y, const float *x, size_t n);
void siam_elu_backward(float *dx, const float *dy, const float *x, const float *y, size_t n);

/* ---- dropout, inverted: training keeps each element with probability 1-rate (in steps of
 *      2^-16) and scales it by 1/(1-rate); mask (n) holds the scale applied (0 or 1/(1-rate)).
 *      rate <= 0 keeps all and leaves rng untouched; rate >= 1 drops all. Inference: the caller
 *      skips the layer (identity). ---- */
void siam_dropout_forward(float *y, float *mask, const float *x, size_t n, float rate,
                          siam_rng *rng);
void siam_dropout_backward(float *dx, const float *dy, const float *mask, size_t n);

/* ---- l2norm per row: y (B,D) = x / max(||x||_2, eps), each row on its own (the same code
 *      trains and infers: a row's output depends on that row alone, bit for bit).
 *      norm (B) records each row's ||x||_2 for backward. Below eps the row is scaled by 1/eps,
 *      not normalised, so a zero row maps to zero instead of dividing by zero. ---- */
void siam_l2norm_forward(float *y, float *norm, const float *x, int B, int D, float eps);
/* dx += (dy - y (y . dy)) / ||x|| for rows with ||x|| > eps, dx += dy / eps for the others */
void siam_l2norm_backward(float *dx, const float *dy, const float *y, const float *norm, int B,
                          int D, float eps);

#endif
