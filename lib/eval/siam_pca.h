/* siam_pca: the top principal components of a set of vectors (embeddings), to draw them in 2-D.
 *
 *   mean = (1/n) sum_i x_i          C = (1/(n-1)) sum_i (x_i - mean)(x_i - mean)^T   (dim x dim)
 *   components = the k eigenvectors of C with the largest eigenvalues (the variances along them),
 *   explained(i) = variance[i] / trace(C).
 *
 * C is summed in double. Its top eigenvectors come from subspace (block power) iteration on a
 * block of min(dim, k + 8) vectors with a Rayleigh-Ritz step (a small Jacobi eigen-solve) each
 * iteration, until every wanted pair has ||C v - lambda v|| <= SIAM_PCA_TOL * lambda_1. Each
 * iteration costs dim^2 (k + 8) multiply-adds; the covariance n dim^2 / 2. Deterministic: the
 * start block comes from a fixed seed, and each component's sign makes its largest-magnitude
 * entry (the first such) positive. */
#ifndef SIAM_PCA_H
#define SIAM_PCA_H

#include <stddef.h>

#include "siam_error.h"

#define SIAM_PCA_MAX_DIM   4096 /* C is dim^2 doubles: 128 MiB at the limit */
#define SIAM_PCA_TOL       1e-10
#define SIAM_PCA_MAX_ITERS 10000

typedef struct {
    int dim, k;
    size_t n;              /* vectors fitted */
    double *mean;          /* (dim) */
    double *components;    /* (k, dim) orthonormal rows, by decreasing variance */
    double *variance;      /* (k) eigenvalues of C, descending */
    double total_variance; /* trace(C): the variance summed over all dim directions */
    double residual;       /* max over the k components of ||C v - lambda v|| / lambda_1 */
    int iterations;
    int converged; /* residual <= SIAM_PCA_TOL (or C = 0); 0 after SIAM_PCA_MAX_ITERS */
} siam_pca;

/* Fits the top k components of x (n, dim, row-major) into *out (caller frees with
 * siam_pca_free; zeroed on failure). All-equal vectors (C = 0) give variances 0 and the first k
 * unit vectors. Not converging within SIAM_PCA_MAX_ITERS is not an error: converged = 0 and
 * residual say how close it came. SIAM_ERR_ARG: n < 2, k < 1, k > dim, dim > SIAM_PCA_MAX_DIM, a
 * value that is not finite (naming its vector and component); SIAM_ERR_NOMEM. */
int siam_pca_fit(siam_pca *out, const float *x, size_t n, int dim, int k, siam_error *err);

/* The fraction of the total variance component i explains; 0 when the total is 0. */
double siam_pca_explained(const siam_pca *p, int i);

/* y (n, k) = the coordinates of x (n, dim) along the components: (x_i - mean) . v_c, in double
 * rounded to float. */
void siam_pca_project(const siam_pca *p, const float *x, size_t n, float *y);

/* Safe on a zeroed or already freed struct. */
void siam_pca_free(siam_pca *p);

#endif
