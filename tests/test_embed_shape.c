/* test_embed_shape: an image's inference embedding does not depend on the request's shape.
 *
 * For the mlp, the cnn, cnn2 and an mlp ending in l2norm (trained-looking weights, batchnorm
 * statistics away from the identity):
 * every test image is embedded alone, then placed at various rows (first, last, middle, either
 * side of the 512-row chunk boundary) of batches of 1, 2, 3, 17, 512, 513 and 4096 filled with
 * other images, through siam_model_embed and through one siam_model_forward of the whole batch;
 * its embedding must be the same bits everywhere (memcmp), so identical images are at distance
 * exactly 0. siam_matmul_rows must equal its naive twin bit for bit, whatever the rows around a
 * row. The embeddings are checked against an independent forward built from the BLAS layers
 * (siam_dense_forward, siam_conv2d_forward, l2norm in double), within a float tolerance.
 *
 * It prints OpenBLAS's core name and threads, and a hash of the embeddings' bits: coretype_test.sh
 * runs it under several OPENBLAS_CORETYPE values and asserts the core was used and the hash is
 * the same under all of them. */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#include "siam_layers.h"
#include "siam_loss.h"
#include "siam_model.h"
#include "siam_rng.h"
#include "siam_tensor.h"

/* OpenBLAS's own (cblas.h would bring complex.h's I into a file of I x O products) */
char *openblas_get_corename(void);

#define IN      784
#define N_IMG   8
#define BN_EPS  1e-3f /* siam_model.c's */
#define REL_TOL 1e-4  /* independent forward: float rounding in a different order */

static siam_rng rng;
static uint64_t bits_hash = 1469598103934665603ULL; /* FNV-1a over every reference embedding */

static void hash_bytes(const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        bits_hash = (bits_hash ^ c[i]) * 1099511628211ULL;
}

static float *alloc_f(size_t n) {
    float *p = siam_alloc_floats(n);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* pixels / 255 as the service feeds them; image 0 is blank (biases only), the rest random */
static void random_image(float *x, int blank) {
    for (int i = 0; i < IN; i++)
        x[i] = blank ? 0.0f : (float)siam_rng_below(&rng, 256) / 255.0f;
}

/* ---- siam_matmul_rows against its naive twin (bits) and sgemm (tolerance) ---- */

static void test_matmul_rows(void) {
    static const int Ms[] = {1, 2, 3, 5, 9}, Ns[] = {1, 7, 16, 17, 32, 64, 65, 128, 130},
                     Ks[] = {1, 9, 50, 288};
    int bad_bits = 0, bad_near = 0, bad_rows = 0, bad_variant = 0, variants = 0, cases = 0;
    for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
        for (size_t b = 0; b < sizeof Ns / sizeof *Ns; b++)
            for (size_t c = 0; c < sizeof Ks / sizeof *Ks; c++) {
                int M = Ms[a], N = Ns[b], K = Ks[c];
                float *A = alloc_f((size_t)M * K), *B = alloc_f((size_t)K * N);
                float *bias = alloc_f((size_t)N), *C = alloc_f((size_t)M * N);
                float *Cn = alloc_f((size_t)M * N), *Cb = alloc_f((size_t)M * N);
                float *C1 = alloc_f((size_t)N);
                for (size_t i = 0; i < (size_t)M * K; i++)
                    A[i] = 2 * siam_rng_uniform(&rng) - 1;
                for (size_t i = 0; i < (size_t)K * N; i++)
                    B[i] = 2 * siam_rng_uniform(&rng) - 1;
                for (int i = 0; i < N; i++)
                    bias[i] = 2 * siam_rng_uniform(&rng) - 1;
                const float *bs = (a + b + c) % 2 ? bias : NULL; /* with and without a bias */
                siam_matmul_rows(C, A, B, bs, M, N, K);
                siam_matmul_rows_naive(Cn, A, B, bs, M, N, K);
                bad_bits += memcmp(C, Cn, (size_t)M * N * sizeof *C) != 0;
                /* every instruction-set variant this CPU runs: the same bits (so any CPU) */
                for (int v = 0; v < 3; v++)
                    if (siam_matmul_rows_variant(v, C1, A, B, bs, 1, N, K) == 0) {
                        variants += M == 1 && N == 1 && K == 1;
                        bad_variant += memcmp(C1, Cn, (size_t)N * sizeof *C1) != 0;
                    }
                /* each row alone: the same bits as inside the M-row product */
                for (int m = 0; m < M; m++) {
                    siam_matmul_rows(C1, A + (size_t)m * K, B, bs, 1, N, K);
                    bad_rows += memcmp(C1, C + (size_t)m * N, (size_t)N * sizeof *C1) != 0;
                }
                for (int m = 0; m < M; m++)
                    for (int n = 0; n < N; n++)
                        Cb[(size_t)m * N + n] = bs ? bs[n] : 0.0f;
                siam_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 1.0f, Cb, N);
                for (size_t i = 0; i < (size_t)M * N; i++)
                    bad_near += fabsf(C[i] - Cb[i]) > 1e-5f * (float)K;
                cases++;
                siam_free(A), siam_free(B), siam_free(bias), siam_free(C), siam_free(Cn);
                siam_free(Cb), siam_free(C1);
            }
    CHECK(bad_bits == 0, "siam_matmul_rows != naive in %d of %d shapes", bad_bits, cases);
    CHECK(bad_variant == 0, "an instruction-set variant differs from naive in %d shapes",
          bad_variant);
    CHECK(variants >= 1, "no variant of siam_matmul_rows ran");
    CHECK(bad_rows == 0, "a row alone != the same row in a product: %d", bad_rows);
    CHECK(bad_near == 0, "siam_matmul_rows far from sgemm at %d elements", bad_near);
    printf("  siam_matmul_rows: %d shapes, %d instruction-set variants, bits equal to naive, rows "
           "alone equal\n",
           cases, variants);
}

/* ---- an independent inference forward from the BLAS layers, for mlp and cnn ---- */

/* Walks the spec's tokens (the layers siam_model.c parses for the specs tested here); trainable
 * parameters in layer order, batchnorm running statistics after them. out: (B, dim). l2norm is
 * computed here in double, independently of siam_l2norm_forward. */
static int blas_forward(const char *spec, const float *P, size_t n_params, size_t n_trainable,
                        const float *x, int B, int dim, float *out) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", siam_model_spec_for(spec));
    size_t cap = (size_t)B * 28 * 28 * 64; /* larger than any activation of the specs tested */
    float *cur = alloc_f(cap), *nxt = alloc_f(cap), *col = alloc_f(cap * 9);
    uint32_t *arg = malloc(cap * sizeof *arg);
    if (!arg)
        exit(2);
    memcpy(cur, x, (size_t)B * IN * sizeof *cur);
    int h = 28, w = 28, c = 1;
    size_t off = 0, stat = n_trainable;
    char *save = NULL;
    strtok_r(buf, " ", &save); /* in=28x28x1 */
    for (char *t; (t = strtok_r(NULL, " ", &save));) {
        int o = 0, kh = 0, kw = 0, k = 0;
        size_t n = (size_t)B * h * w * c;
        if (sscanf(t, "dense%d", &o) == 1) {
            int I = h * w * c;
            siam_dense_forward(nxt, cur, P + off, P + off + (size_t)I * o, B, I, o);
            off += (size_t)I * o + (size_t)o;
            h = w = 1, c = o;
        } else if (sscanf(t, "conv%dx%dx%d", &kh, &kw, &k) == 3) {
            int same = t[strlen(t) - 1] == 's', ph = same ? (kh - 1) / 2 : 0,
                pw = same ? (kw - 1) / 2 : 0;
            siam_conv2d_forward(nxt, col, cur, P + off, P + off + (size_t)kh * kw * c * k, B, h, w,
                                c, kh, kw, ph, pw, k);
            off += (size_t)kh * kw * c * k + (size_t)k;
            h = h + 2 * ph - kh + 1, w = w + 2 * pw - kw + 1, c = k;
        } else if (strcmp(t, "maxpool2") == 0) {
            siam_maxpool2_forward(nxt, arg, cur, B, h, w, c);
            h /= 2, w /= 2;
        } else if (strcmp(t, "batchnorm") == 0) {
            siam_batchnorm_forward_infer(nxt, cur, P + off, P + off + c, P + stat, P + stat + c,
                                         B * h * w, c, BN_EPS);
            off += 2 * (size_t)c;
            stat += 2 * (size_t)c;
        } else if (strcmp(t, "relu") == 0) {
            siam_relu_forward(nxt, cur, n);
        } else if (strcmp(t, "elu") == 0) {
            siam_elu_forward(nxt, cur, n);
        } else if (strcmp(t, "l2norm") == 0) {
            size_t d = (size_t)h * w * c;
            for (int bi = 0; bi < B; bi++) {
                double ss = 0;
                for (size_t j = 0; j < d; j++)
                    ss += (double)cur[bi * d + j] * cur[bi * d + j];
                double den = fmax(sqrt(ss), 1e-12);
                for (size_t j = 0; j < d; j++)
                    nxt[bi * d + j] = (float)(cur[bi * d + j] / den);
            }
            c = h * w * c, h = w = 1;
        } else { /* dropout (inference: identity), flatten */
            continue;
        }
        float *s = cur;
        cur = nxt, nxt = s;
    }
    memcpy(out, cur, (size_t)B * dim * sizeof *out);
    int ok = off == n_trainable && stat == n_params && h * w * c == dim;
    siam_free(cur), siam_free(nxt), siam_free(col);
    free(arg);
    return ok;
}

/* ---- the model: every image's embedding alone and at many rows of many batches ---- */

static void test_model(const char *name, int expect_dim) {
    siam_error err = {0};
    siam_model *m = NULL;
    if (siam_model_create(&m, name, 7, &err)) {
        CHECK(0, "%s: %s", name, err.msg);
        return;
    }
    /* weights moved off their initial values, biases non-zero, batchnorm away from identity */
    size_t np = siam_model_num_params(m), nt = siam_model_num_trainable(m);
    float *P = siam_model_params(m);
    for (size_t i = 0; i < nt; i++)
        P[i] += 0.05f * (2 * siam_rng_uniform(&rng) - 1);
    /* running means and variances alike in [0.5, 1.5): valid for either, without finding each
     * batchnorm's channel count */
    for (size_t i = nt; i < np; i++)
        P[i] = 0.5f + siam_rng_uniform(&rng);
    int dim = siam_model_output_size(m);
    CHECK(dim == expect_dim && siam_model_input_size(m) == IN, "%s: shape", name);
    if (dim != expect_dim) {
        siam_model_free(m);
        return;
    }

    enum { MAX_B = 4096 };
    float *img = alloc_f((size_t)N_IMG * IN), *ref = alloc_f((size_t)N_IMG * dim);
    float *x = alloc_f((size_t)MAX_B * IN), *e = alloc_f((size_t)MAX_B * dim);
    for (int i = 0; i < N_IMG; i++) {
        random_image(img + (size_t)i * IN, i == 0);
        CHECK(siam_model_embed(m, img + (size_t)i * IN, 1, ref + (size_t)i * dim, &err) == 0,
              "%s: embed alone: %s", name, err.msg);
    }
    hash_bytes(ref, (size_t)N_IMG * dim * sizeof *ref);

    /* the independent forward, all images in one BLAS batch */
    float *bl = alloc_f((size_t)N_IMG * dim);
    CHECK(blas_forward(name, P, np, nt, img, N_IMG, dim, bl), "%s: reference layer walk", name);
    double worst = 0;
    for (size_t i = 0; i < (size_t)N_IMG * dim; i++) {
        double d = fabs((double)ref[i] - bl[i]) / fmax(1.0, fabs((double)bl[i]));
        worst = d > worst ? d : worst;
    }
    CHECK(worst <= REL_TOL, "%s: embedding vs the BLAS layers: relative error %.3g", name, worst);

    static const int sizes[] = {1, 2, 3, 17, 512, 513, 4096};
    /* SIAM_EMBED_QUICK (coretype_test, which runs this ten times): conv models stop at 513 rows;
     * their inference is one image at a time, so large batches add no new layout, only time */
    const char *quick = getenv("SIAM_EMBED_QUICK");
    int max_s = quick && quick[0] == '1' && strstr(name, "cnn") ? 513 : 4096;
    int placed = 0, differ = 0, not_zero = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        int S = sizes[si];
        if (S > max_s)
            continue;
        /* rows to try: both ends, the middle, both sides of the 512-row chunk edge, a random one */
        int rows[] = {0, S - 1, S / 2, 1, S - 2, 511, 512, (int)siam_rng_below(&rng, (uint32_t)S)};
        int n_rows = (int)(sizeof rows / sizeof *rows);
        for (int round = 0; round < 2; round++) {
            for (int r = 0; r < S; r++) /* other images around the test images */
                random_image(x + (size_t)r * IN, 0);
            int at[N_IMG];
            for (int i = 0; i < N_IMG; i++) {
                int r = rows[(i + round * 3) % n_rows];
                at[i] = r >= 0 && r < S ? r : (i + round) % S;
            }
            /* later images overwrite earlier ones on a shared row (small S): check only the last */
            for (int i = 0; i < N_IMG; i++)
                memcpy(x + (size_t)at[i] * IN, img + (size_t)i * IN, IN * sizeof *x);
            /* one forward of the whole batch too, up to a size whose activations stay small */
            int whole = max_s < 4096 ? 17 : 1024; /* quick: small whole-batch forwards only */
            for (int path = 0; path < (S <= whole ? 2 : 1); path++) {
                const float *y = e;
                if (path == 0) {
                    CHECK(siam_model_embed(m, x, (size_t)S, e, &err) == 0, "%s: embed: %s", name,
                          err.msg);
                } else {
                    CHECK(siam_model_forward(m, 1, x, S, 0, &y, &err) == 0, "%s: forward: %s", name,
                          err.msg);
                }
                for (int i = 0; i < N_IMG; i++) {
                    int last = 1;
                    for (int j = i + 1; j < N_IMG; j++)
                        last &= at[j] != at[i];
                    if (!last)
                        continue;
                    placed++;
                    const float *got = y + (size_t)at[i] * dim, *want = ref + (size_t)i * dim;
                    if (memcmp(got, want, (size_t)dim * sizeof *got) != 0) {
                        differ++;
                        fprintf(stderr, "%s: image %d at row %d of %d (%s) differs\n", name, i,
                                at[i], S, path ? "one forward" : "embed");
                    }
                    not_zero += siam_distance(got, want, dim) != 0.0f;
                }
            }
        }
    }
    CHECK(differ == 0, "%s: %d of %d placements changed an embedding's bits", name, differ, placed);
    CHECK(not_zero == 0, "%s: %d identical images not at distance exactly 0", name, not_zero);

    /* the same image twice in one request (Similarity's left and right): distance 0 */
    for (int r = 0; r < 1000; r++)
        random_image(x + (size_t)r * IN, 0);
    memcpy(x + 3 * IN, img + IN, IN * sizeof *x);
    memcpy(x + (size_t)997 * IN, img + IN, IN * sizeof *x);
    CHECK(siam_model_embed(m, x, 1000, e, &err) == 0, "%s: embed: %s", name, err.msg);
    CHECK(siam_distance(e + 3 * (size_t)dim, e + (size_t)997 * dim, dim) == 0.0f,
          "%s: an image and itself (rows 3 and 997) at distance %g", name,
          (double)siam_distance(e + 3 * (size_t)dim, e + (size_t)997 * dim, dim));
    printf("  %s: %d placements in batches of 1..4096, %d with other bits; vs BLAS layers %.2e\n",
           name, placed, differ, worst);

    siam_free(img), siam_free(ref), siam_free(x), siam_free(e), siam_free(bl);
    siam_model_free(m);
}

int main(void) {
    siam_rng_seed(&rng, 4242);
    printf("openblas core %s, threads %d\n", openblas_get_corename(), siam_blas_get_threads());
    test_matmul_rows();
    test_model("mlp", 128);
    test_model("cnn", 128);
    /* a linear embedding made unit length: l2norm per row, so still batch-independent */
    test_model("in=28x28x1 dense128 relu dropout0.5 dense64 l2norm", 64);
    /* 'same'-padded convs (inferred one image at a time, as the valid ones) and l2norm */
    test_model("cnn2", 64);
    printf("embedding bits hash %016llx\n", (unsigned long long)bits_hash);
    return tu_finish();
}
