/* siam_layers: forward/backward pairs of every layer over a whole batch (NHWC, row-major). */
#include "siam_layers.h"

#include <math.h>
#include <string.h>

#include "siam_tensor.h"

/* Per-channel reductions run over channel blocks of this width so their double accumulators fit
 * on the stack, rows outer and channels inner so the inner loop is contiguous. */
#define SIAM_CH_BLOCK 256

/* acc[c] += sum_r x[r,c], x (rows,cols); summed in double so long batches lose no precision */
static void colsum_acc(float *acc, const float *x, size_t rows, int cols) {
    double s[SIAM_CH_BLOCK];
    for (int c0 = 0; c0 < cols; c0 += SIAM_CH_BLOCK) {
        int nb = cols - c0 < SIAM_CH_BLOCK ? cols - c0 : SIAM_CH_BLOCK;
        for (int j = 0; j < nb; j++)
            s[j] = 0.0;
        for (size_t r = 0; r < rows; r++) {
            const float *row = x + r * (size_t)cols + c0;
            for (int j = 0; j < nb; j++)
                s[j] += row[j];
        }
        for (int j = 0; j < nb; j++)
            acc[c0 + j] += (float)s[j];
    }
}

/* out[r,:] = b for every row (b NULL: zeros), so one sgemm with beta = 1 adds the product */
static void fill_rows(float *out, const float *b, size_t rows, int cols) {
    if (!b) {
        memset(out, 0, rows * (size_t)cols * sizeof(float));
        return;
    }
    for (size_t r = 0; r < rows; r++)
        memcpy(out + r * (size_t)cols, b, (size_t)cols * sizeof(float));
}

/* ---- dense ---- */

/* out (B,O) = in (B,I) . w (I,O) + b (O) */
void siam_dense_forward(float *out, const float *in, const float *w, const float *b, int B, int I,
                        int O) {
    fill_rows(out, b, (size_t)B, O);
    siam_sgemm(0, 0, B, O, I, 1.0f, in, I, w, O, 1.0f, out, O);
}

/* out (B,O) = in (B,I) . w (I,O) + b (O), row by row in a fixed order (see siam_matmul_rows) */
void siam_dense_infer(float *out, const float *in, const float *w, const float *b, int B, int I,
                      int O) {
    siam_matmul_rows(out, in, w, b, B, O, I);
}

/* din (B,I) += dout (B,O) . w^T;  dw (I,O) += in^T . dout;  db (O) += sum_b dout */
void siam_dense_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, int B, int I, int O) {
    if (din)
        siam_sgemm(0, 1, B, I, O, 1.0f, dout, O, w, O, 1.0f, din, I);
    if (dw)
        siam_sgemm(1, 0, I, O, B, 1.0f, in, I, dout, O, 1.0f, dw, O);
    if (db)
        colsum_acc(db, dout, (size_t)B, O);
}

/* ---- conv2d (stride 1, zero padding) ---- */

size_t siam_conv2d_col_size(int B, int H, int W, int C, int KH, int KW, int PH, int PW) {
    size_t oh = (size_t)(H + 2 * PH - KH + 1), ow = (size_t)(W + 2 * PW - KW + 1);
    return (size_t)B * oh * ow * (size_t)KH * (size_t)KW * (size_t)C;
}

/* The kernel columns [*lo, *hi) of a patch at output column ow that land inside the image
 * (input column ow - PW + kw in [0, W)); the others read the zero padding. */
static inline void kw_range(int ow, int W, int KW, int PW, int *lo, int *hi) {
    int iw0 = ow - PW;
    *lo = iw0 < 0 ? -iw0 : 0;
    *hi = W - iw0 < KW ? W - iw0 : KW;
    if (*hi < *lo)
        *hi = *lo;
}

/* col[(b,oh,ow), (kh,kw,c)] = in[b, oh+kh-PH, ow+kw-PW, c] for the B items at in, 0 outside */
static void im2col(float *col, const float *in, int B, int H, int W, int C, int KH, int KW, int PH,
                   int PW) {
    int OH = H + 2 * PH - KH + 1, OW = W + 2 * PW - KW + 1;
    size_t seg = (size_t)KW * C;    /* one kernel row of a patch is contiguous in NHWC */
    size_t ncol = (size_t)KH * seg; /* patch length = KH*KW*C */
    float *row = col;
    for (int bi = 0; bi < B; bi++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++, row += ncol) {
                int lo, hi;
                kw_range(ow, W, KW, PW, &lo, &hi);
                for (int kh = 0; kh < KH; kh++) {
                    float *d = row + kh * seg;
                    int ih = oh + kh - PH;
                    if (ih < 0 || ih >= H) {
                        memset(d, 0, seg * sizeof(float));
                        continue;
                    }
                    /* 'valid' (lo = 0, hi = KW) is one memcpy per kernel row, as before padding */
                    memset(d, 0, (size_t)lo * C * sizeof(float));
                    if (hi > lo) /* else no pointer into in is formed: it could lie outside */
                        memcpy(d + (size_t)lo * C,
                               in + (((size_t)bi * H + ih) * W + (ow - PW + lo)) * C,
                               (size_t)(hi - lo) * C * sizeof(float));
                    memset(d + (size_t)hi * C, 0, (size_t)(KW - hi) * C * sizeof(float));
                }
            }
}

/* col = im2col(in);  out (B*OH*OW,K) = col . w + b */
void siam_conv2d_forward(float *out, float *col, const float *in, const float *w, const float *b,
                         int B, int H, int W, int C, int KH, int KW, int PH, int PW, int K) {
    int OH = H + 2 * PH - KH + 1, OW = W + 2 * PW - KW + 1;
    size_t ncol = (size_t)KH * KW * C;
    im2col(col, in, B, H, W, C, KH, KW, PH, PW);
    size_t M = (size_t)B * OH * OW;
    fill_rows(out, b, M, K);
    siam_sgemm(0, 0, (int)M, K, (int)ncol, 1.0f, col, (int)ncol, w, K, 1.0f, out, K);
}

/* per item: col = im2col(item), out rows = col . w + b. One item's patches stay in cache (the
 * whole batch's would not), and every output row is computed from its own patch alone. */
void siam_conv2d_infer(float *out, float *col, const float *in, const float *w, const float *b,
                       int B, int H, int W, int C, int KH, int KW, int PH, int PW, int K) {
    int OH = H + 2 * PH - KH + 1, OW = W + 2 * PW - KW + 1;
    size_t item_in = (size_t)H * W * C, item_out = (size_t)OH * OW * K;
    for (int bi = 0; bi < B; bi++) {
        im2col(col, in + bi * item_in, 1, H, W, C, KH, KW, PH, PW);
        siam_matmul_rows(out + bi * item_out, col, w, b, OH * OW, K, KH * KW * C);
    }
}

/* dw += col^T . dout;  db += sum_rows dout;  dcol = dout . w^T, din += col2im(dcol), the taps
 * on the padding dropped */
void siam_conv2d_backward(float *din, float *dw, float *db, float *dcol, const float *dout,
                          const float *col, const float *w, int B, int H, int W, int C, int KH,
                          int KW, int PH, int PW, int K) {
    int OH = H + 2 * PH - KH + 1, OW = W + 2 * PW - KW + 1;
    size_t seg = (size_t)KW * C;
    size_t ncol = (size_t)KH * seg;
    size_t M = (size_t)B * OH * OW;
    if (dw)
        siam_sgemm(1, 0, (int)ncol, K, (int)M, 1.0f, col, (int)ncol, dout, K, 1.0f, dw, K);
    if (db)
        colsum_acc(db, dout, M, K);
    if (!din || !dcol)
        return;
    siam_sgemm(0, 1, (int)M, (int)ncol, K, 1.0f, dout, K, w, K, 0.0f, dcol, (int)ncol);
    const float *row = dcol;
    for (int bi = 0; bi < B; bi++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++, row += ncol) {
                int lo, hi;
                kw_range(ow, W, KW, PW, &lo, &hi);
                size_t n = (size_t)(hi - lo) * C;
                for (int kh = 0; kh < KH; kh++) {
                    int ih = oh + kh - PH;
                    if (ih < 0 || ih >= H || n == 0)
                        continue;
                    float *restrict d = din + (((size_t)bi * H + ih) * W + (ow - PW + lo)) * C;
                    const float *restrict s = row + kh * seg + (size_t)lo * C;
                    for (size_t j = 0; j < n; j++)
                        d[j] += s[j];
                }
            }
}

/* ---- maxpool 2x2 stride 2 ---- */

/* out[b,i,j,c] = max over the 2x2 window at (2i,2j); argmax = flat input index of the max
 * (first in row-major window order on ties) */
/* A signed integer whose order is the order of the floats (-0 sorts just below +0). */
static inline int32_t float_key(float v) {
    int32_t b;
    memcpy(&b, &v, sizeof b);
    return b ^ ((b >> 31) & 0x7fffffff);
}

void siam_maxpool2_forward(float *out, uint32_t *argmax, const float *in, int B, int H, int W,
                           int C) {
    int OH = H / 2, OW = W / 2;
    size_t o = 0;
    for (int bi = 0; bi < B; bi++)
        for (int i = 0; i < OH; i++)
            for (int j = 0; j < OW; j++, o += (size_t)C) {
                size_t i00 = (((size_t)bi * H + 2 * i) * W + 2 * j) * C;
                size_t i01 = i00 + (size_t)C, i10 = i00 + (size_t)W * C, i11 = i10 + (size_t)C;
                /* compares on order-preserving integer keys of the floats, with selects, so
                 * the channel loop vectorises under IEEE semantics (float compares count as
                 * control flow unless -fno-trapping-math) */
                for (int c = 0; c < C; c++) {
                    int32_t km = float_key(in[i00 + c]), kv;
                    uint32_t a = (uint32_t)(i00 + c);
                    kv = float_key(in[i01 + c]);
                    a = kv > km ? (uint32_t)(i01 + c) : a;
                    km = kv > km ? kv : km;
                    kv = float_key(in[i10 + c]);
                    a = kv > km ? (uint32_t)(i10 + c) : a;
                    km = kv > km ? kv : km;
                    kv = float_key(in[i11 + c]);
                    a = kv > km ? (uint32_t)(i11 + c) : a;
                    km = kv > km ? kv : km;
                    int32_t mb =
                        km ^ ((km >> 31) & 0x7fffffff); /* the key map is its own inverse */
                    memcpy(&out[o + c], &mb, sizeof mb);
                    argmax[o + c] = a;
                }
            }
}

/* din[argmax[o]] += dout[o] */
void siam_maxpool2_backward(float *din, const float *dout, const uint32_t *argmax, int B, int H,
                            int W, int C) {
    if (!din)
        return;
    size_t n = (size_t)B * (H / 2) * (W / 2) * C;
    for (size_t o = 0; o < n; o++)
        din[argmax[o]] += dout[o];
}

/* ---- batchnorm over the last axis ---- */

/* xhat = (x - mean) * inv_std, inv_std = 1/sqrt(var + eps), y = gamma * xhat + beta;
 * running = momentum * running + (1 - momentum) * batch stat */
void siam_batchnorm_forward_train(float *y, float *xhat, float *inv_std, float *running_mean,
                                  float *running_var, const float *x, const float *gamma,
                                  const float *beta, int N, int C, float momentum, float eps) {
    double s[SIAM_CH_BLOCK];
    float mean[SIAM_CH_BLOCK], istd[SIAM_CH_BLOCK], g[SIAM_CH_BLOCK], bt[SIAM_CH_BLOCK];
    for (int c0 = 0; c0 < C; c0 += SIAM_CH_BLOCK) {
        int nb = C - c0 < SIAM_CH_BLOCK ? C - c0 : SIAM_CH_BLOCK;
        /* two passes (mean, then squared deviations) so var does not cancel catastrophically */
        for (int j = 0; j < nb; j++)
            s[j] = 0.0;
        for (int r = 0; r < N; r++) {
            const float *xr = x + (size_t)r * C + c0;
            for (int j = 0; j < nb; j++)
                s[j] += xr[j];
        }
        for (int j = 0; j < nb; j++) {
            mean[j] = (float)(s[j] / N);
            s[j] = 0.0;
        }
        for (int r = 0; r < N; r++) {
            const float *xr = x + (size_t)r * C + c0;
            for (int j = 0; j < nb; j++) {
                double d = (double)xr[j] - mean[j];
                s[j] += d * d;
            }
        }
        for (int j = 0; j < nb; j++) {
            double var = s[j] / N;
            double uvar = N > 1 ? var * N / (N - 1) : var;
            istd[j] = (float)(1.0 / sqrt(var + eps));
            inv_std[c0 + j] = istd[j];
            running_mean[c0 + j] = momentum * running_mean[c0 + j] + (1.0f - momentum) * mean[j];
            running_var[c0 + j] = momentum * running_var[c0 + j] + (1.0f - momentum) * (float)uvar;
            g[j] = gamma[c0 + j];
            bt[j] = beta[c0 + j];
        }
        for (int r = 0; r < N; r++) {
            size_t off = (size_t)r * C + c0;
            const float *xr = x + off;
            float *hr = xhat + off, *yr = y + off;
            for (int j = 0; j < nb; j++) {
                float h = (xr[j] - mean[j]) * istd[j];
                hr[j] = h;
                yr[j] = g[j] * h + bt[j];
            }
        }
    }
}

/* y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta = x * scale + shift */
void siam_batchnorm_forward_infer(float *y, const float *x, const float *gamma, const float *beta,
                                  const float *running_mean, const float *running_var, int N, int C,
                                  float eps) {
    float scale[SIAM_CH_BLOCK], shift[SIAM_CH_BLOCK];
    for (int c0 = 0; c0 < C; c0 += SIAM_CH_BLOCK) {
        int nb = C - c0 < SIAM_CH_BLOCK ? C - c0 : SIAM_CH_BLOCK;
        for (int j = 0; j < nb; j++) {
            double sc = gamma[c0 + j] / sqrt((double)running_var[c0 + j] + eps);
            scale[j] = (float)sc;
            shift[j] = (float)(beta[c0 + j] - running_mean[c0 + j] * sc);
        }
        for (int r = 0; r < N; r++) {
            size_t off = (size_t)r * C + c0;
            const float *xr = x + off;
            float *yr = y + off;
            for (int j = 0; j < nb; j++)
                yr[j] = xr[j] * scale[j] + shift[j];
        }
    }
}

/* dgamma += sum dy*xhat;  dbeta += sum dy;
 * dx += gamma*inv_std * (dy - mean(dy) - xhat*mean(dy*xhat))  (= inv_std/N * (N*dxhat -
 * sum dxhat - xhat * sum dxhat*xhat) with dxhat = dy*gamma) */
void siam_batchnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
                             const float *xhat, const float *inv_std, const float *gamma, int N,
                             int C) {
    double sdy[SIAM_CH_BLOCK], sdyh[SIAM_CH_BLOCK];
    float mdy[SIAM_CH_BLOCK], mdyh[SIAM_CH_BLOCK], k[SIAM_CH_BLOCK];
    for (int c0 = 0; c0 < C; c0 += SIAM_CH_BLOCK) {
        int nb = C - c0 < SIAM_CH_BLOCK ? C - c0 : SIAM_CH_BLOCK;
        for (int j = 0; j < nb; j++)
            sdy[j] = sdyh[j] = 0.0;
        for (int r = 0; r < N; r++) {
            size_t off = (size_t)r * C + c0;
            const float *dyr = dy + off, *hr = xhat + off;
            for (int j = 0; j < nb; j++) {
                sdy[j] += dyr[j];
                sdyh[j] += (double)dyr[j] * hr[j];
            }
        }
        for (int j = 0; j < nb; j++) {
            if (dgamma)
                dgamma[c0 + j] += (float)sdyh[j];
            if (dbeta)
                dbeta[c0 + j] += (float)sdy[j];
            mdy[j] = (float)(sdy[j] / N);
            mdyh[j] = (float)(sdyh[j] / N);
            k[j] = gamma[c0 + j] * inv_std[c0 + j];
        }
        if (!dx)
            continue;
        for (int r = 0; r < N; r++) {
            size_t off = (size_t)r * C + c0;
            const float *dyr = dy + off, *hr = xhat + off;
            float *dxr = dx + off;
            for (int j = 0; j < nb; j++)
                dxr[j] += k[j] * (dyr[j] - mdy[j] - hr[j] * mdyh[j]);
        }
    }
}

/* ---- relu ---- */

/* y = max(x, 0) */
void siam_relu_forward(float *y, const float *x, size_t n) {
    /* on the bits, so it vectorises under IEEE semantics: clear x when its sign bit is set */
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &x[i], sizeof b);
        b &= (uint32_t)((int32_t)(b >> 31) - 1);
        memcpy(&y[i], &b, sizeof b);
    }
}

/* dx += dy * [y > 0] */
void siam_relu_backward(float *dx, const float *dy, const float *y, size_t n) {
    if (!dx)
        return;
    /* y is +0 or positive: pass dy where y's bits are non-zero (vectorises, as the forward) */
    for (size_t i = 0; i < n; i++) {
        uint32_t yb, gb;
        memcpy(&yb, &y[i], sizeof yb);
        memcpy(&gb, &dy[i], sizeof gb);
        gb &= (uint32_t) - (int32_t)(yb != 0);
        float g;
        memcpy(&g, &gb, sizeof g);
        dx[i] += g;
    }
}

/* ---- elu (alpha = 1) ---- */

/* exp(x) for -87 <= x <= 0. Cephes' expf: x = n ln2 + r, |r| <= ln2/2, exp(r) by a degree-7
 * polynomial, times 2^n built in the exponent bits; about 1 ulp. */
static inline float exp_nonpositive(float x) {
    /* round to nearest by truncation toward zero of x/ln2 - 0.5 (x <= 0) */
    float n = (float)(int32_t)(x * 1.44269504088896341f - 0.5f);
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* y = x for x > 0, exp(x) - 1 otherwise, on elements [0, n).
 * Written on the bit patterns so GCC vectorises it under IEEE semantics (float compares count as
 * control flow unless -fno-trapping-math): libm's expm1f, one call per element, was the cnn's
 * largest single cost. Absolute error ~1e-7 against expm1f. */
static inline void elu_forward_loop(float *y, const float *x, size_t n) {
    const uint32_t minus_87 = 0xC2AE0000u; /* exp(-87) ~ 1.6e-38 is still a normal float */
    for (size_t i = 0; i < n; i++) {
        uint32_t vb, cb, eb, yb;
        memcpy(&vb, &x[i], sizeof vb);
        uint32_t neg = (uint32_t) - (int32_t)(vb >> 31); /* all ones when the sign bit is set */
        cb = vb & neg;                                   /* x if negative, else +0 */
        cb = cb > minus_87 ? minus_87 : cb;              /* negative floats grow with their bits */
        float c;
        memcpy(&c, &cb, sizeof c);
        float e = exp_nonpositive(c) - 1.0f;
        memcpy(&eb, &e, sizeof eb);
        yb = (vb & ~neg) | (eb & neg);
        memcpy(&y[i], &yb, sizeof yb);
    }
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
/* The same loop compiled for AVX2 (8 floats a step; same operations, so the same results),
 * chosen at run time on CPUs that have it. */
__attribute__((target("avx2"))) static void elu_forward_avx2(float *y, const float *x, size_t n) {
    elu_forward_loop(y, x, n);
}
#define HAVE_AVX2_CLONE 1
#endif

void siam_elu_forward(float *y, const float *x, size_t n) {
#ifdef HAVE_AVX2_CLONE
    if (__builtin_cpu_supports("avx2")) { /* reads a flag libgcc sets at start-up */
        elu_forward_avx2(y, x, n);
        return;
    }
#endif
    elu_forward_loop(y, x, n);
}

/* dx += dy * (x > 0 ? 1 : exp(x) = y + 1) */
void siam_elu_backward(float *dx, const float *dy, const float *x, const float *y, size_t n) {
    if (!dx)
        return;
    /* on the bits, as the forward, so it vectorises: 1 + (y if x is negative else +0) */
    for (size_t i = 0; i < n; i++) {
        uint32_t xb, yb;
        memcpy(&xb, &x[i], sizeof xb);
        memcpy(&yb, &y[i], sizeof yb);
        yb &= (uint32_t) - (int32_t)(xb >> 31);
        float yneg;
        memcpy(&yneg, &yb, sizeof yneg);
        dx[i] += dy[i] * (1.0f + yneg);
    }
}

/* ---- dropout (inverted) ---- */

/* mask = [u >= rate] / (1 - rate) with u ~ U[0,1) in steps of 2^-16, y = x * mask; rate <= 0 leaves
 * the rng untouched (mask all 1), rate >= 1 drops everything */
void siam_dropout_forward(float *y, float *mask, const float *x, size_t n, float rate,
                          siam_rng *rng) {
    if (rate <= 0.0f) {
        for (size_t i = 0; i < n; i++) {
            mask[i] = 1.0f;
            y[i] = x[i]; /* a loop, not memcpy: y == x (in place) is allowed */
        }
        return;
    }
    float scale = rate < 1.0f ? 1.0f / (1.0f - rate) : 0.0f;
    /* keep when a 16-bit uniform u satisfies u / 2^16 >= rate: four decisions per 64-bit draw,
     * mask and output in one pass (the per-element float draw was a tenth of an mlp step) */
    double t = ceil((double)rate * 65536.0);
    uint32_t threshold = t > 65536.0 ? 65536u : (uint32_t)t;
    size_t i = 0;
    for (; i < n; i += 4) {
        uint64_t r = siam_rng_u64(rng);
        size_t k_end = n - i < 4 ? n - i : 4;
        for (size_t k = 0; k < k_end; k++) {
            float mk = (uint32_t)((r >> (16 * k)) & 0xffffu) >= threshold ? scale : 0.0f;
            mask[i + k] = mk;
            y[i + k] = x[i + k] * mk;
        }
    }
}

/* dx += dy * mask */
void siam_dropout_backward(float *dx, const float *dy, const float *mask, size_t n) {
    if (!dx)
        return;
    for (size_t i = 0; i < n; i++)
        dx[i] += dy[i] * mask[i];
}

/* ---- l2norm per row ---- */

/* The norm's sum of squares is accumulated in double, in index order, one row at a time: no
 * overflow or underflow for any float row, and a row's result does not depend on its batch. */
void siam_l2norm_forward(float *y, float *norm, const float *x, int B, int D, float eps) {
    for (int bi = 0; bi < B; bi++) {
        const float *xr = x + (size_t)bi * D;
        float *yr = y + (size_t)bi * D;
        double ss = 0.0;
        for (int j = 0; j < D; j++)
            ss += (double)xr[j] * xr[j];
        float n = (float)sqrt(ss);
        norm[bi] = n;
        /* the branch backward takes is decided on this same float n, so the two agree exactly */
        double den = n > eps ? (double)n : (double)eps;
        for (int j = 0; j < D; j++)
            yr[j] = (float)(xr[j] / den);
    }
}

/* y = x/n: dy/dx = (I - y y^T) / n above eps; y = x/eps: dy/dx = I/eps below it */
void siam_l2norm_backward(float *dx, const float *dy, const float *y, const float *norm, int B,
                          int D, float eps) {
    if (!dx)
        return;
    for (int bi = 0; bi < B; bi++) {
        const float *dyr = dy + (size_t)bi * D, *yr = y + (size_t)bi * D;
        float *dxr = dx + (size_t)bi * D;
        float n = norm[bi];
        if (n > eps) {
            double p = 0.0;
            for (int j = 0; j < D; j++)
                p += (double)yr[j] * dyr[j];
            for (int j = 0; j < D; j++)
                dxr[j] += (float)((dyr[j] - yr[j] * p) / n);
        } else {
            for (int j = 0; j < D; j++)
                dxr[j] += (float)(dyr[j] / (double)eps);
        }
    }
}
