/* siam_tensor: row-major sgemm over cblas, plus the naive loops it is checked against. */
#include "siam_tensor.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

void siam_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0)
        return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void siam_sgemm_naive(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++) {
                float a = trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += (double)a * b;
            }
            float *c = &C[(size_t)i * ldc + j];
            *c = (float)(alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
    }
}

void siam_blas_set_threads(int n) {
    if (n > 0)
        openblas_set_num_threads(n);
}

int siam_blas_get_threads(void) {
    return openblas_get_num_threads();
}

float *siam_alloc_floats(size_t n) {
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void siam_free(void *p) {
    free(p);
}

/* ---- siam_matmul_rows: the batch-independent inference product ----
 * Vectorised over the output features n, never over the reduction k: every SIMD lane does the
 * scalar sequence of siam_matmul_rows_naive for its own (m, n), so lanes, tiles and tails all
 * agree bit for bit. This file is compiled with -ffp-contract=off (CMakeLists.txt) so no compiler
 * fuses a product and a sum into an FMA in one path and not in another. Tiles of R rows x U
 * vectors of 16 floats keep R*U accumulators in registers while B's row k is loaded once for R
 * rows; the tile shape is chosen per instruction set (it changes speed, never results). */

void siam_matmul_rows_naive(float *C, const float *A, const float *B, const float *bias, int M,
                            int N, int K) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            float acc = bias ? bias[n] : 0.0f;
            for (int k = 0; k < K; k++) {
                float p = A[(size_t)m * K + k] * B[(size_t)k * N + n];
                acc = acc + p;
            }
            C[(size_t)m * N + n] = acc;
        }
}

#if defined(__GNUC__) && defined(__x86_64__)
/* GNU vector extension (gcc and clang): element-wise IEEE arithmetic on 16 floats, lowered to one
 * zmm, two ymm or four xmm registers by the instruction set of the function it is used in. */
typedef float v16f __attribute__((vector_size(64)));
#define VL 16

/* Rows [0, R) x columns [n0, n0 + 16 U) of C; R and U are constants after inlining. */
static inline __attribute__((always_inline)) void tile(float *C, const float *A, const float *B,
                                                       const float *bias, int N, int K, int n0,
                                                       int R, int U) {
    v16f acc[4][4];
    for (int u = 0; u < U; u++) {
        v16f b0 = {0};
        if (bias)
            memcpy(&b0, bias + n0 + VL * u, sizeof b0);
        for (int r = 0; r < R; r++)
            acc[r][u] = b0;
    }
    for (int k = 0; k < K; k++) {
        v16f bk[4];
        for (int u = 0; u < U; u++)
            memcpy(&bk[u], B + (size_t)k * N + n0 + VL * u, sizeof bk[u]);
        for (int r = 0; r < R; r++) {
            float a = A[(size_t)r * K + k];
            for (int u = 0; u < U; u++) {
                v16f p = bk[u] * a;
                acc[r][u] = acc[r][u] + p;
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int u = 0; u < U; u++)
            memcpy(C + (size_t)r * N + n0 + VL * u, &acc[r][u], sizeof acc[r][u]);
}

/* Columns [n0, N) of rows [0, M) one float at a time: the naive sequence. */
static inline void tail_columns(float *C, const float *A, const float *B, const float *bias, int M,
                                int N, int K, int n0) {
    for (int m = 0; m < M; m++)
        for (int n = n0; n < N; n++) {
            float acc = bias ? bias[n] : 0.0f;
            for (int k = 0; k < K; k++) {
                float p = A[(size_t)m * K + k] * B[(size_t)k * N + n];
                acc = acc + p;
            }
            C[(size_t)m * N + n] = acc;
        }
}

/* The whole product with tiles of R rows by U vectors (then by 1 vector, then single rows and
 * single columns for what is left). */
static inline __attribute__((always_inline)) void matmul_tiled(float *C, const float *A,
                                                               const float *B, const float *bias,
                                                               int M, int N, int K, int R, int U) {
    int m = 0;
    for (; m + R <= M; m += R) {
        int n = 0;
        for (; n + VL * U <= N; n += VL * U)
            tile(C + (size_t)m * N, A + (size_t)m * K, B, bias, N, K, n, R, U);
        for (; n + VL <= N; n += VL)
            tile(C + (size_t)m * N, A + (size_t)m * K, B, bias, N, K, n, R, 1);
    }
    for (; m < M; m++) {
        int n = 0;
        for (; n + VL <= N; n += VL)
            tile(C + (size_t)m * N, A + (size_t)m * K, B, bias, N, K, n, 1, 1);
    }
    tail_columns(C, A, B, bias, M, N, K, N - N % VL);
}

__attribute__((target("avx512f"))) static void
matmul_avx512(float *C, const float *A, const float *B, const float *bias, int M, int N, int K) {
    matmul_tiled(C, A, B, bias, M, N, K, 4, 4); /* 16 of 32 zmm accumulate */
}

__attribute__((target("avx2"))) static void matmul_avx2(float *C, const float *A, const float *B,
                                                        const float *bias, int M, int N, int K) {
    matmul_tiled(C, A, B, bias, M, N, K, 4, 1); /* 8 of 16 ymm accumulate */
}

static void matmul_sse2(float *C, const float *A, const float *B, const float *bias, int M, int N,
                        int K) {
    matmul_tiled(C, A, B, bias, M, N, K, 2, 1); /* 8 of 16 xmm accumulate */
}

void siam_matmul_rows(float *C, const float *A, const float *B, const float *bias, int M, int N,
                      int K) {
    if (M <= 0 || N <= 0)
        return;
    if (__builtin_cpu_supports("avx512f"))
        matmul_avx512(C, A, B, bias, M, N, K);
    else if (__builtin_cpu_supports("avx2"))
        matmul_avx2(C, A, B, bias, M, N, K);
    else
        matmul_sse2(C, A, B, bias, M, N, K);
}

int siam_matmul_rows_variant(int variant, float *C, const float *A, const float *B,
                             const float *bias, int M, int N, int K) {
    if (variant == 2 && __builtin_cpu_supports("avx512f"))
        matmul_avx512(C, A, B, bias, M, N, K);
    else if (variant == 1 && __builtin_cpu_supports("avx2"))
        matmul_avx2(C, A, B, bias, M, N, K);
    else if (variant == 0)
        matmul_sse2(C, A, B, bias, M, N, K);
    else
        return -1;
    return 0;
}
#else
int siam_matmul_rows_variant(int variant, float *C, const float *A, const float *B,
                             const float *bias, int M, int N, int K) {
    (void)variant, (void)C, (void)A, (void)B, (void)bias, (void)M, (void)N, (void)K;
    return -1;
}

void siam_matmul_rows(float *C, const float *A, const float *B, const float *bias, int M, int N,
                      int K) {
    siam_matmul_rows_naive(C, A, B, bias, M, N, K);
}
#endif
