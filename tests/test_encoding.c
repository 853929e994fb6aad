/* test_encoding: the wire's fp16, bf16 and int8 encodings. Every half round-trips; rounding is
 * checked against the neighbouring codes in double (nearest, ties to even), at every midpoint
 * between two codes and at random values of every magnitude; rows decode within each encoding's
 * error bound; every malformed input a sender can produce is refused with a message naming it. */
#include "test_util.h"

#include <float.h>
#include <string.h>

#include "siam_encoding.h"
#include "siam_rng.h"

/* h is the nearest code to x among h - 1, h, h + 1 (positive, finite codes are ordered like
 * their values), and on a tie it is the even one. */
static int nearest_even(double x, uint16_t h, float (*val)(uint16_t), uint16_t max_code) {
    double d = fabs(x - val(h));
    for (int s = -1; s <= 1; s += 2) {
        int n = (int)h + s;
        if (n < 0 || n > max_code)
            continue;
        double dn = fabs(x - val((uint16_t)n));
        if (dn < d || (dn == d && (h & 1)))
            return 0;
    }
    return 1;
}

static void test_half_codes(void) {
    CHECK(siam_float_to_half(1.0f) == 0x3c00, "1.0 -> %#x", siam_float_to_half(1.0f));
    CHECK(siam_float_to_half(65504.0f) == 0x7bff, "65504 is the largest half");
    CHECK(siam_float_to_half(0x1p-24f) == 0x0001, "2^-24 is the smallest subnormal");
    CHECK(siam_float_to_half(0x1p-14f) == 0x0400, "2^-14 is the smallest normal");
    CHECK(siam_float_to_half(-2.0f) == 0xc000, "-2 -> %#x", siam_float_to_half(-2.0f));
    CHECK(siam_float_to_half(65519.0f) == 0x7bff, "below the half-way point to 65536: 65504");
    CHECK(siam_float_to_half(65520.0f) == 0x7c00, "the half-way point rounds to even: inf");
    CHECK(siam_float_to_half(0x1p-25f) == 0x0000, "2^-25 is a tie between 0 and 2^-24: 0");
    CHECK(siam_float_to_half(0x1.8p-25f) == 0x0001, "1.5 x 2^-25 rounds up to 2^-24");
    CHECK(isnan(siam_half_to_float(siam_float_to_half(NAN))), "NaN stays NaN");
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = siam_half_to_float((uint16_t)h);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
            bad += !isnan(f);
        else
            bad += siam_float_to_half(f) != h;
    }
    CHECK(bad == 0, "%d of 65536 half codes do not round-trip", bad);
    /* every midpoint between two finite positive codes (exact in float) goes to the even one */
    bad = 0;
    for (uint16_t h = 0; h < 0x7bff; h++) {
        float mid = (siam_half_to_float(h) + siam_half_to_float((uint16_t)(h + 1))) / 2;
        uint16_t want = (h & 1) ? (uint16_t)(h + 1) : h;
        bad += siam_float_to_half(mid) != want || siam_float_to_half(-mid) != (want | 0x8000);
    }
    CHECK(bad == 0, "%d midpoints between half codes not rounded to even", bad);
    siam_rng rng;
    siam_rng_seed(&rng, 11);
    bad = 0;
    for (int i = 0; i < 200000; i++) {
        float x = (float)exp(-30.0 + 41.0 * siam_rng_uniform(&rng)); /* 1e-13 .. 6.5e4 */
        if (x >= 65504.0f)
            continue;
        bad += !nearest_even(x, siam_float_to_half(x), siam_half_to_float, 0x7bff);
    }
    CHECK(bad == 0, "%d random floats not rounded to the nearest half", bad);
}

static void test_bf16_codes(void) {
    CHECK(siam_float_to_bf16(1.0f) == 0x3f80, "1.0 -> %#x", siam_float_to_bf16(1.0f));
    CHECK(siam_bf16_to_float(0x3f80) == 1.0f, "0x3f80 -> 1");
    CHECK(isnan(siam_bf16_to_float(siam_float_to_bf16(NAN))), "NaN stays NaN");
    CHECK(siam_float_to_bf16(INFINITY) == 0x7f80, "inf stays inf");
    int bad = 0;
    for (uint32_t b = 0; b < 0x7f80; b++) { /* finite positive codes */
        float f = siam_bf16_to_float((uint16_t)b);
        bad += siam_float_to_bf16(f) != b;
        if (b < 0x7f7f) {
            float mid = f + (siam_bf16_to_float((uint16_t)(b + 1)) - f) / 2; /* no overflow */
            uint16_t want = (b & 1) ? (uint16_t)(b + 1) : (uint16_t)b;
            bad += siam_float_to_bf16(mid) != want;
        }
    }
    CHECK(bad == 0, "%d bf16 codes or midpoints wrong", bad);
    siam_rng rng;
    siam_rng_seed(&rng, 12);
    bad = 0;
    for (int i = 0; i < 200000; i++) {
        float x = (float)exp(-80.0 + 160.0 * siam_rng_uniform(&rng));
        bad += !nearest_even(x, siam_float_to_bf16(x), siam_bf16_to_float, 0x7f7f);
    }
    CHECK(bad == 0, "%d random floats not rounded to the nearest bf16", bad);
}

/* Random rows of mixed magnitude (like gradients: some rows tiny, some large), one row of zeros. */
static void random_rows(float *x, size_t rows, int dim, uint64_t seed) {
    siam_rng rng;
    siam_rng_seed(&rng, seed);
    for (size_t r = 0; r < rows; r++) {
        double mag = r == 0 ? 0.0 : exp(-25.0 + 30.0 * siam_rng_uniform(&rng));
        for (int j = 0; j < dim; j++)
            x[r * (size_t)dim + (size_t)j] = (float)(mag * (2.0 * siam_rng_uniform(&rng) - 1.0));
    }
}

static void test_rows(void) {
    enum { ROWS = 64, DIM = 37 };
    static float x[ROWS * DIM], y[ROWS * DIM], scales[ROWS];
    static uint8_t buf[ROWS * DIM * 4];
    random_rows(x, ROWS, DIM, 5);
    for (int e = 0; e < SIAM_ENC_COUNT; e++) {
        siam_error err = {0};
        size_t len = ROWS * DIM * siam_encoding_size(e);
        size_t ns = siam_encoding_scaled(e) ? ROWS : 0;
        memset(scales, 0, sizeof scales);
        siam_encode_rows((siam_encoding)e, x, ROWS, DIM, buf, scales);
        int rc = siam_decode_rows((siam_encoding)e, buf, len, scales, ns, ROWS, DIM, "v", "row", y,
                                  &err);
        CHECK(rc == 0, "%s: %s", siam_encoding_name(e), err.msg);
        if (ns)
            CHECK(scales[0] == 1.0f, "%s: a row of zeros gets scale 1, not %g",
                  siam_encoding_name(e), (double)scales[0]);
        int bad = 0;
        for (int r = 0; r < ROWS; r++) {
            double m = 0;
            for (int j = 0; j < DIM; j++)
                m = fmax(m, fabs(x[r * DIM + j]));
            for (int j = 0; j < DIM; j++) {
                double a = x[r * DIM + j], b = y[r * DIM + j], tol;
                switch (e) {
                case SIAM_ENC_FP32:
                    tol = 0;
                    break;
                case SIAM_ENC_FP16:
                    tol = m * (0x1p-11 + 0x1p-24) * 1.0001;
                    break;
                case SIAM_ENC_BF16:
                    tol = fabs(a) * 0x1p-8 + 1e-45;
                    break;
                default:
                    tol = m / 127.0 * 0.5001;
                    break;
                }
                bad += !(fabs(a - b) <= tol);
            }
        }
        CHECK(bad == 0, "%s: %d values decode outside the error bound", siam_encoding_name(e), bad);
    }
    /* bf16 saturates a finite value beyond its largest code instead of sending inf */
    float big[2] = {FLT_MAX, -FLT_MAX}, back[2];
    uint8_t b2[4];
    siam_error err = {0};
    siam_encode_rows(SIAM_ENC_BF16, big, 1, 2, b2, NULL);
    CHECK(siam_decode_rows(SIAM_ENC_BF16, b2, 4, NULL, 0, 1, 2, "v", "row", back, &err) == 0,
          "saturated bf16 decodes: %s", err.msg);
    CHECK(back[0] > 3e38f && back[1] < -3e38f, "saturated to the largest bf16: %g %g",
          (double)back[0], (double)back[1]);
}

static void expect_refused(int rc, const siam_error *err, const char *needle, const char *what) {
    CHECK(rc == SIAM_ERR_FORMAT, "%s: rc %d", what, rc);
    CHECK(strstr(err->msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, err->msg, needle);
}

static void test_refused(void) {
    uint8_t buf[16] = {0};
    float out[8], ok2[2] = {1.0f, 1.0f};
    siam_error err = {0};
    int rc =
        siam_decode_rows(SIAM_ENC_FP16, buf, 7, ok2, 2, 2, 2, "left_packed", "pair", out, &err);
    expect_refused(rc, &err, "left_packed has 7 bytes, expected pairs*dim*2 = 2*2*2 = 8", "length");
    rc = siam_decode_rows(SIAM_ENC_INT8, buf, 4, ok2, 1, 2, 2, "grad", "pair", out, &err);
    expect_refused(rc, &err, "1 scales, expected 2", "scale count");
    rc = siam_decode_rows(SIAM_ENC_BF16, buf, 8, ok2, 2, 2, 2, "grad", "pair", out, &err);
    expect_refused(rc, &err, "expected 0", "scales for an unscaled encoding");
    float bad_scales[4] = {0.0f, -1.0f, NAN, INFINITY};
    for (int i = 0; i < 4; i++) {
        float s[2] = {1.0f, bad_scales[i]};
        rc = siam_decode_rows(SIAM_ENC_INT8, buf, 4, s, 2, 2, 2, "right_packed", "pair", out, &err);
        expect_refused(rc, &err, "the scale of pair 1", "bad scale");
    }
    uint8_t inf_half[4] = {0x00, 0x3c, 0x00, 0x7c}; /* 1.0, inf */
    rc = siam_decode_rows(SIAM_ENC_FP16, inf_half, 4, ok2, 1, 1, 2, "e", "embedding", out, &err);
    expect_refused(rc, &err, "embedding 0 value 1 decodes to inf", "fp16 inf");
    uint8_t nan_bf16[2] = {0xc0, 0x7f};
    rc = siam_decode_rows(SIAM_ENC_BF16, nan_bf16, 2, NULL, 0, 1, 1, "e", "embedding", out, &err);
    expect_refused(rc, &err, "decodes to nan, expected a finite number", "bf16 NaN");
    uint8_t i8[1] = {0x81}; /* -127 x 3e38 overflows */
    float huge = 3e38f;
    rc = siam_decode_rows(SIAM_ENC_INT8, i8, 1, &huge, 1, 1, 1, "e", "embedding", out, &err);
    expect_refused(rc, &err, "decodes to -inf", "int8 overflow");
    siam_encoding e;
    CHECK(siam_encoding_parse("fp8", &e, &err) == SIAM_ERR_ARG && strstr(err.msg, SIAM_ENC_NAMES),
          "an unknown name lists the accepted ones: %s", err.msg);
    CHECK(siam_encoding_parse("bf16", &e, &err) == 0 && e == SIAM_ENC_BF16, "bf16 parses");
    CHECK(siam_encoding_name(7) == NULL && siam_encoding_size(-1) == 0, "out-of-range values");
}

/* Parameter vectors in blocks: every length around the block size, each block's scale its own
 * max |x| (fp16) or max |x| / 127 (int8) computed here, values within the bound of their block,
 * and the tail block's errors named by its index. */
static void test_blocks(void) {
    enum { MAXN = 3 * SIAM_ENC_BLOCK + 5 };
    static float x[MAXN], y[MAXN], scales[8];
    static uint8_t buf[MAXN * 4];
    static const size_t lens[] = {
        1, SIAM_ENC_BLOCK - 1, SIAM_ENC_BLOCK, SIAM_ENC_BLOCK + 1, 3 * SIAM_ENC_BLOCK, MAXN};
    CHECK(siam_encoding_blocks(0) == 0 && siam_encoding_blocks(1) == 1 &&
              siam_encoding_blocks(SIAM_ENC_BLOCK) == 1 &&
              siam_encoding_blocks(SIAM_ENC_BLOCK + 1) == 2,
          "block counts");
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        size_t n = lens[li], nb = (n + SIAM_ENC_BLOCK - 1) / SIAM_ENC_BLOCK;
        siam_rng rng;
        siam_rng_seed(&rng, 11 + li);
        for (size_t i = 0; i < n; i++) /* magnitudes that differ from block to block */
            x[i] = (float)((2.0 * siam_rng_uniform(&rng) - 1.0) * (1u << (i / SIAM_ENC_BLOCK * 4)));
        for (int e = 0; e < SIAM_ENC_COUNT; e++) {
            siam_error err = {0};
            size_t ns = siam_encoding_scaled(e) ? nb : 0;
            siam_encode_blocks((siam_encoding)e, x, n, buf, scales);
            int rc = siam_decode_blocks((siam_encoding)e, buf, n * siam_encoding_size(e), scales,
                                        ns, n, "params_packed", y, &err);
            CHECK(rc == 0, "%s, n %zu: %s", siam_encoding_name(e), n, err.msg);
            int bad = 0;
            for (size_t b = 0; b < nb; b++) {
                size_t lo = b * SIAM_ENC_BLOCK,
                       hi = lo + SIAM_ENC_BLOCK < n ? lo + SIAM_ENC_BLOCK : n;
                double m = 0;
                for (size_t i = lo; i < hi; i++)
                    m = fmax(m, fabs(x[i]));
                if (e == SIAM_ENC_FP16)
                    bad += scales[b] != (float)m;
                if (e == SIAM_ENC_INT8)
                    bad += fabs(scales[b] - m / 127.0) > m * 1e-7;
                for (size_t i = lo; i < hi; i++) {
                    double tol = e == SIAM_ENC_FP32   ? 0
                                 : e == SIAM_ENC_FP16 ? m * (0x1p-11 + 0x1p-24) * 1.0001
                                 : e == SIAM_ENC_BF16 ? fabs(x[i]) * 0x1p-8
                                                      : m / 127.0 * 0.5001;
                    bad += !(fabs(x[i] - y[i]) <= tol);
                }
            }
            CHECK(bad == 0, "%s, n %zu: %d scales or values off", siam_encoding_name(e), n, bad);
        }
    }
    /* refused: the length, the scale count, a bad scale and a NaN in the tail block */
    size_t n = SIAM_ENC_BLOCK + 3;
    siam_error err = {0};
    siam_encode_blocks(SIAM_ENC_FP16, x, n, buf, scales);
    expect_refused(
        siam_decode_blocks(SIAM_ENC_FP16, buf, 2 * n - 1, scales, 2, n, "params_packed", y, &err),
        &err, "params_packed has 517 bytes, expected 259 values * 2 = 518", "length");
    expect_refused(
        siam_decode_blocks(SIAM_ENC_FP16, buf, 2 * n, scales, 1, n, "params_packed", y, &err), &err,
        "1 scales, expected 2 (one per block of 256", "scale count");
    scales[1] = -2.0f;
    expect_refused(
        siam_decode_blocks(SIAM_ENC_FP16, buf, 2 * n, scales, 2, n, "params_packed", y, &err), &err,
        "scale of block 1 is -2", "negative scale");
    scales[1] = 1.0f;
    buf[2 * n - 1] = 0x7e; /* the last value: a half NaN */
    expect_refused(
        siam_decode_blocks(SIAM_ENC_FP16, buf, 2 * n, scales, 2, n, "params_packed", y, &err), &err,
        "block 1 value 2 decodes to nan", "NaN in the tail");
}

int main(void) {
    test_half_codes();
    test_bf16_codes();
    test_rows();
    test_refused();
    test_blocks();
    return tu_finish();
}
