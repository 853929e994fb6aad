/* siam_tensor: the matrix product every layer is built on, over OpenBLAS, with a naive twin. */
#ifndef SIAM_TENSOR_H
#define SIAM_TENSOR_H

#include <stddef.h>

/* C (M,N) = alpha * op(A) * op(B) + beta * C, all row-major.
 * op(A) is (M,K): A is (M,K) with lda >= K, or (K,M) with lda >= M when trans_a.
 * op(B) is (K,N): B is (K,N) with ldb >= N, or (N,K) with ldb >= K when trans_b. */
void siam_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);

/* The same product with three plain loops: the reference the BLAS path is tested against. */
void siam_sgemm_naive(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Inference product whose every output depends on its own input row only, bit for bit:
 *   C (M,N) = A (M,K) . B (K,N) + bias (N), row-major (lda = K, ldb = ldc = N), bias NULL = 0,
 *   C[m,n] = ((bias[n] + A[m,0] B[0,n]) + A[m,1] B[1,n]) + ... + A[m,K-1] B[K-1,n]
 * in float, one rounding per product and per sum (no FMA), left to right. That fixed sequence of
 * IEEE operations is the same whatever M is, wherever row m sits, whichever vector width or tile
 * computes it and on any x86-64 CPU, so a row's result never depends on the batch it came in.
 * sgemm gives no such promise: OpenBLAS picks kernels, tails and thread splits by shape and CPU.
 * The naive twin runs the same sequence in plain scalar loops, so the two agree bit for bit. */
void siam_matmul_rows(float *C, const float *A, const float *B, const float *bias, int M, int N,
                      int K);
void siam_matmul_rows_naive(float *C, const float *A, const float *B, const float *bias, int M,
                            int N, int K);

/* siam_matmul_rows by one of its instruction-set variants (0 SSE2, 1 AVX2, 2 AVX-512F), so tests
 * can show they agree bit for bit; -1 (nothing computed) if this CPU or build lacks it. */
int siam_matmul_rows_variant(int variant, float *C, const float *A, const float *B,
                             const float *bias, int M, int N, int K);

/* Number of threads OpenBLAS uses; n <= 0 leaves the library default. */
void siam_blas_set_threads(int n);
int siam_blas_get_threads(void);

/* 64-byte aligned, zero-filled allocation of n floats; NULL on failure. Free with siam_free. */
float *siam_alloc_floats(size_t n);
void siam_free(void *p);

#endif
