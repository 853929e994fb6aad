/* siam_encoding: fp32, fp16, bf16 and int8 rows for the wire (see the header). */
#include "siam_encoding.h"

#include <math.h>
#include <string.h>

static const char *const names[SIAM_ENC_COUNT] = {"fp32", "fp16", "bf16", "int8"};
static const size_t sizes[SIAM_ENC_COUNT] = {4, 2, 2, 1};

const char *siam_encoding_name(int e) {
    return e >= 0 && e < SIAM_ENC_COUNT ? names[e] : NULL;
}

int siam_encoding_parse(const char *name, siam_encoding *out, siam_error *err) {
    for (int e = 0; name && e < SIAM_ENC_COUNT; e++)
        if (strcmp(name, names[e]) == 0) {
            *out = (siam_encoding)e;
            return SIAM_OK;
        }
    return siam_error_set(err, SIAM_ERR_ARG, "unknown wire encoding '%s': expected one of %s",
                          name ? name : "(null)", SIAM_ENC_NAMES);
}

size_t siam_encoding_size(int e) {
    return e >= 0 && e < SIAM_ENC_COUNT ? sizes[e] : 0;
}

int siam_encoding_scaled(int e) {
    return e == SIAM_ENC_FP16 || e == SIAM_ENC_INT8;
}

static uint32_t float_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float bits_float(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* Rounds q + rem / 2^shift to nearest, ties to even. */
static uint32_t round_even(uint32_t q, uint32_t rem, int shift) {
    uint32_t half = 1u << (shift - 1);
    return q + (rem > half || (rem == half && (q & 1u)));
}

uint16_t siam_float_to_half(float x) {
    uint32_t f = float_bits(x), sign = (f >> 16) & 0x8000u, a = f & 0x7fffffffu;
    if (a >= 0x7f800000u) /* inf, or NaN kept quiet with its top payload bits */
        return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u | ((a >> 13) & 0x3ffu) : 0));
    if (a >= 0x477ff000u) /* from 65520 (half-way above 65504, the largest half) up: inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) { /* below 2^-14: a subnormal half (units of 2^-24) or zero */
        uint32_t e = a >> 23;
        if (e < 102) /* below 2^-25: rounds to zero */
            return (uint16_t)sign;
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        int shift = (int)(126 - e); /* 14..24 */
        return (uint16_t)(sign | round_even(m >> shift, m & ((1u << shift) - 1u), shift));
    }
    /* normal: rebias the exponent; a carry out of the mantissa correctly bumps the exponent */
    uint32_t q = ((((a >> 23) - 127u + 15u) << 10) | ((a & 0x7fffffu) >> 13));
    return (uint16_t)(sign | round_even(q, a & 0x1fffu, 13));
}

float siam_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) { /* zero or subnormal: m x 2^-24, exact in float */
        float v = (float)m * 0x1p-24f;
        return sign ? -v : v;
    }
    if (e == 31)
        return bits_float(sign | 0x7f800000u | (m << 13));
    return bits_float(sign | ((e - 15u + 127u) << 23) | (m << 13));
}

uint16_t siam_float_to_bf16(float x) {
    uint32_t f = float_bits(x);
    if ((f & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it a (quiet) NaN */
        return (uint16_t)((f >> 16) | 0x40u);
    return (uint16_t)((f + 0x7fffu + ((f >> 16) & 1u)) >> 16);
}

float siam_bf16_to_float(uint16_t b) {
    return bits_float((uint32_t)b << 16);
}

static float row_max_abs(const float *x, int dim) {
    float m = 0.0f;
    for (int j = 0; j < dim; j++)
        m = fmaxf(m, fabsf(x[j]));
    return m;
}

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static uint16_t get16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

void siam_encode_rows(siam_encoding e, const float *x, size_t rows, int dim, uint8_t *out,
                      float *scales) {
    size_t d = (size_t)dim;
    for (size_t r = 0; r < rows; r++) {
        const float *v = x + r * d;
        switch (e) {
        case SIAM_ENC_FP32:
            for (size_t j = 0; j < d; j++) {
                uint32_t u = float_bits(v[j]);
                uint8_t *p = out + 4 * (r * d + j);
                p[0] = (uint8_t)u, p[1] = (uint8_t)(u >> 8), p[2] = (uint8_t)(u >> 16);
                p[3] = (uint8_t)(u >> 24);
            }
            break;
        case SIAM_ENC_BF16:
            for (size_t j = 0; j < d; j++) {
                uint16_t b = siam_float_to_bf16(v[j]);
                if ((b & 0x7fffu) == 0x7f80u) /* a finite float rounded past the largest bf16 */
                    b = (uint16_t)((b & 0x8000u) | 0x7f7fu);
                put16(out + 2 * (r * d + j), b);
            }
            break;
        case SIAM_ENC_FP16: {
            float s = row_max_abs(v, dim);
            if (!(s > 0.0f) || !isfinite(1.0f / s))
                s = 1.0f; /* zeros, or so small that the row is zeros in any encoding */
            scales[r] = s;
            for (size_t j = 0; j < d; j++)
                put16(out + 2 * (r * d + j), siam_float_to_half(v[j] / s));
            break;
        }
        case SIAM_ENC_INT8: {
            float s = row_max_abs(v, dim) / 127.0f;
            if (!(s > 0.0f) || !isfinite(1.0f / s))
                s = 1.0f;
            scales[r] = s;
            for (size_t j = 0; j < d; j++) {
                float q = rintf(v[j] / s);
                q = fminf(127.0f, fmaxf(-127.0f, q));
                out[r * d + j] = (uint8_t)(int8_t)q;
            }
            break;
        }
        }
    }
}

/* Decodes rows x dim values whose lengths and scales were checked; rows are numbered from r0 in
 * messages. */
static int decode_values(siam_encoding e, const uint8_t *in, const float *scales, size_t rows,
                         int dim, const char *field, const char *row, size_t r0, float *out,
                         siam_error *err) {
    size_t size = siam_encoding_size((int)e), d = (size_t)dim;
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *p = in + r * d * size;
        float *o = out + r * d;
        for (size_t j = 0; j < d; j++) {
            switch (e) {
            case SIAM_ENC_FP32: {
                const uint8_t *q = p + 4 * j;
                o[j] = bits_float((uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
                                  (uint32_t)q[3] << 24);
                break;
            }
            case SIAM_ENC_FP16:
                o[j] = siam_half_to_float(get16(p + 2 * j)) * scales[r];
                break;
            case SIAM_ENC_BF16:
                o[j] = siam_bf16_to_float(get16(p + 2 * j));
                break;
            case SIAM_ENC_INT8:
                o[j] = (float)(int8_t)p[j] * scales[r];
                break;
            }
            if (!isfinite(o[j]))
                return siam_error_set(err, SIAM_ERR_FORMAT,
                                      "%s: %s %zu value %zu decodes to %g, expected a finite "
                                      "number",
                                      field, row, r0 + r, j, (double)o[j]);
        }
    }
    return SIAM_OK;
}

int siam_decode_rows(siam_encoding e, const uint8_t *in, size_t len, const float *scales,
                     size_t n_scales, size_t rows, int dim, const char *field, const char *row,
                     float *out, siam_error *err) {
    size_t size = siam_encoding_size((int)e), d = (size_t)dim;
    if (size == 0 || dim < 1)
        return siam_error_set(err, SIAM_ERR_ARG, "%s: encoding %d or dim %d out of range", field,
                              (int)e, dim);
    if (rows > SIZE_MAX / d / size || len != rows * d * size)
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "%s has %zu bytes, expected %ss*dim*%zu = %zu*%d*%zu = %zu for %s",
                              field, len, row, size, rows, dim, size,
                              rows <= SIZE_MAX / d / size ? rows * d * size : 0,
                              siam_encoding_name((int)e));
    size_t want_scales = siam_encoding_scaled((int)e) ? rows : 0;
    if (n_scales != want_scales)
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "%s comes with %zu scales, expected %zu (one per %s for %s)", field,
                              n_scales, want_scales, row, siam_encoding_name((int)e));
    for (size_t r = 0; r < want_scales; r++)
        if (!isfinite(scales[r]) || !(scales[r] > 0.0f))
            return siam_error_set(err, SIAM_ERR_FORMAT,
                                  "%s: the scale of %s %zu is %g, expected a finite number > 0",
                                  field, row, r, (double)scales[r]);
    return decode_values(e, in, scales, rows, dim, field, row, 0, out, err);
}

size_t siam_encoding_blocks(size_t n) {
    return n / SIAM_ENC_BLOCK + (n % SIAM_ENC_BLOCK != 0);
}

void siam_encode_blocks(siam_encoding e, const float *x, size_t n, uint8_t *out, float *scales) {
    size_t full = n / SIAM_ENC_BLOCK, tail = n % SIAM_ENC_BLOCK, size = siam_encoding_size((int)e);
    int scaled = siam_encoding_scaled((int)e);
    siam_encode_rows(e, x, full, SIAM_ENC_BLOCK, out, scales);
    if (tail)
        siam_encode_rows(e, x + full * SIAM_ENC_BLOCK, 1, (int)tail,
                         out + full * SIAM_ENC_BLOCK * size, scaled ? scales + full : NULL);
}

int siam_decode_blocks(siam_encoding e, const uint8_t *in, size_t len, const float *scales,
                       size_t n_scales, size_t n, const char *field, float *out, siam_error *err) {
    size_t size = siam_encoding_size((int)e);
    if (size == 0)
        return siam_error_set(err, SIAM_ERR_ARG, "%s: encoding %d out of range", field, (int)e);
    if (n > SIZE_MAX / size || len != n * size)
        return siam_error_set(
            err, SIAM_ERR_FORMAT, "%s has %zu bytes, expected %zu values * %zu = %zu for %s", field,
            len, n, size, n <= SIZE_MAX / size ? n * size : 0, siam_encoding_name((int)e));
    size_t blocks = siam_encoding_blocks(n);
    size_t want_scales = siam_encoding_scaled((int)e) ? blocks : 0;
    if (n_scales != want_scales)
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "%s comes with %zu scales, expected %zu (one per block of %d "
                              "values for %s)",
                              field, n_scales, want_scales, SIAM_ENC_BLOCK,
                              siam_encoding_name((int)e));
    for (size_t r = 0; r < want_scales; r++)
        if (!isfinite(scales[r]) || !(scales[r] > 0.0f))
            return siam_error_set(err, SIAM_ERR_FORMAT,
                                  "%s: the scale of block %zu is %g, expected a finite number > 0",
                                  field, r, (double)scales[r]);
    size_t full = n / SIAM_ENC_BLOCK, tail = n % SIAM_ENC_BLOCK;
    int rc = decode_values(e, in, scales, full, SIAM_ENC_BLOCK, field, "block", 0, out, err);
    if (rc == SIAM_OK && tail)
        rc = decode_values(e, in + full * SIAM_ENC_BLOCK * size, want_scales ? scales + full : NULL,
                           1, (int)tail, field, "block", full, out + full * SIAM_ENC_BLOCK, err);
    return rc;
}
