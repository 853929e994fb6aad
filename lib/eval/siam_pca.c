/* siam_pca: covariance in double, its top eigenvectors by subspace iteration with Rayleigh-Ritz. */
#include "siam_pca.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "siam_rng.h"

/* the block is k + EXTRA_VECTORS vectors: convergence goes as (lambda_{p+1} / lambda_k)^it */
#define EXTRA_VECTORS 8
#define START_SEED    0x5ca1ab1eULL

void siam_pca_free(siam_pca *p) {
    free(p->mean);
    free(p->components);
    free(p->variance);
    memset(p, 0, sizeof *p);
}

double siam_pca_explained(const siam_pca *p, int i) {
    if (i < 0 || i >= p->k || !(p->total_variance > 0.0))
        return 0.0;
    return p->variance[i] / p->total_variance;
}

void siam_pca_project(const siam_pca *p, const float *x, size_t n, float *y) {
    for (size_t i = 0; i < n; i++) {
        const float *r = x + i * (size_t)p->dim;
        for (int c = 0; c < p->k; c++) {
            const double *v = p->components + (size_t)c * p->dim;
            double s = 0.0;
            for (int d = 0; d < p->dim; d++)
                s += ((double)r[d] - p->mean[d]) * v[d];
            y[i * (size_t)p->k + c] = (float)s;
        }
    }
}

static double dot(const double *a, const double *b, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* Makes the p rows of v (p, dim) orthonormal (modified Gram-Schmidt, twice for accuracy). A row
 * that vanishes against the ones before it (C of low rank) is replaced by a random one. */
static void orthonormalize(double *v, int p, int dim, siam_rng *r) {
    for (int i = 0; i < p; i++) {
        double *vi = v + (size_t)i * dim;
        for (int attempt = 0;; attempt++) {
            double before = sqrt(dot(vi, vi, dim));
            for (int pass = 0; pass < 2; pass++)
                for (int j = 0; j < i; j++) {
                    const double *vj = v + (size_t)j * dim;
                    double c = dot(vi, vj, dim);
                    for (int d = 0; d < dim; d++)
                        vi[d] -= c * vj[d];
                }
            double norm = sqrt(dot(vi, vi, dim));
            /* what is left must be more than rounding noise of what was there */
            if (norm > 1e-10 * before && norm > 0.0) {
                for (int d = 0; d < dim; d++)
                    vi[d] /= norm;
                break;
            }
            /* i < p <= dim, so a random vector has a component off the first i almost surely */
            for (int d = 0; d < dim; d++)
                vi[d] = 2.0 * siam_rng_uniform(r) - 1.0;
        }
    }
}

/* The eigen-decomposition of the symmetric a (p, p; destroyed) by cyclic Jacobi rotations:
 * w (p) eigenvalues, q (p, p) with the eigenvectors as columns. */
static void jacobi_eigen(double *a, int p, double *w, double *q) {
    for (int i = 0; i < p; i++)
        for (int j = 0; j < p; j++)
            q[i * p + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0, diag = 0.0;
        for (int i = 0; i < p; i++) {
            diag += a[i * p + i] * a[i * p + i];
            for (int j = i + 1; j < p; j++)
                off += a[i * p + j] * a[i * p + j];
        }
        if (off <= 1e-32 * diag || off == 0.0)
            break;
        for (int i = 0; i < p; i++)
            for (int j = i + 1; j < p; j++) {
                double aij = a[i * p + j];
                if (aij == 0.0)
                    continue;
                /* the rotation in (i, j) that zeroes a_ij: t = tan(phi) */
                double theta = (a[j * p + j] - a[i * p + i]) / (2.0 * aij);
                double t = (theta >= 0.0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < p; k++) { /* columns: A J */
                    double x = a[k * p + i], y = a[k * p + j];
                    a[k * p + i] = c * x - s * y;
                    a[k * p + j] = s * x + c * y;
                }
                for (int k = 0; k < p; k++) { /* rows: J^T (A J) */
                    double x = a[i * p + k], y = a[j * p + k];
                    a[i * p + k] = c * x - s * y;
                    a[j * p + k] = s * x + c * y;
                }
                for (int k = 0; k < p; k++) {
                    double x = q[k * p + i], y = q[k * p + j];
                    q[k * p + i] = c * x - s * y;
                    q[k * p + j] = s * x + c * y;
                }
            }
    }
    for (int i = 0; i < p; i++)
        w[i] = a[i * p + i];
}

/* out (p, dim) = the rows of v rotated by q's columns, in decreasing order of w */
static void rotate_rows(const double *v, const double *q, const int *order, int p, int dim,
                        double *out) {
    for (int i = 0; i < p; i++) {
        double *o = out + (size_t)i * dim;
        memset(o, 0, (size_t)dim * sizeof *o);
        for (int j = 0; j < p; j++) {
            double f = q[j * p + order[i]];
            const double *vj = v + (size_t)j * dim;
            for (int d = 0; d < dim; d++)
                o[d] += f * vj[d];
        }
    }
}

/* cv (p, dim) = the rows of v (p, dim) multiplied by the symmetric c (dim, dim) */
static void multiply(const double *c, const double *v, int p, int dim, double *cv) {
    for (int i = 0; i < p; i++)
        for (int d = 0; d < dim; d++)
            cv[(size_t)i * dim + d] = dot(c + (size_t)d * dim, v + (size_t)i * dim, dim);
}

/* C (dim, dim) of x: mean removed, summed in double, / (n - 1) */
static void covariance(const float *x, size_t n, int dim, const double *mean, double *c,
                       double *row) {
    memset(c, 0, (size_t)dim * dim * sizeof *c);
    for (size_t i = 0; i < n; i++) {
        const float *r = x + i * (size_t)dim;
        for (int d = 0; d < dim; d++)
            row[d] = (double)r[d] - mean[d];
        for (int a = 0; a < dim; a++) {
            double ra = row[a];
            double *ca = c + (size_t)a * dim;
            for (int b = a; b < dim; b++)
                ca[b] += ra * row[b];
        }
    }
    for (int a = 0; a < dim; a++)
        for (int b = a; b < dim; b++) {
            c[(size_t)a * dim + b] /= (double)(n - 1);
            c[(size_t)b * dim + a] = c[(size_t)a * dim + b];
        }
}

/* subspace iteration: the top k eigenpairs of c into out->components and out->variance */
static int top_eigen(const double *c, int dim, siam_pca *out, siam_error *err) {
    int k = out->k, p = k + EXTRA_VECTORS < dim ? k + EXTRA_VECTORS : dim;
    size_t block = (size_t)p * dim;
    double *v = malloc(block * sizeof *v), *cv = malloc(block * sizeof *cv);
    double *tmp = malloc(block * sizeof *tmp), *h = malloc((size_t)p * p * sizeof *h);
    double *q = malloc((size_t)p * p * sizeof *q), *w = malloc((size_t)p * sizeof *w);
    int *order = malloc((size_t)p * sizeof *order);
    int rc = SIAM_OK;
    if (!v || !cv || !tmp || !h || !q || !w || !order) {
        rc = siam_error_set(err, SIAM_ERR_NOMEM, "PCA: out of memory for %d x %d vectors", p, dim);
        goto done;
    }
    siam_rng r;
    siam_rng_seed(&r, START_SEED);
    for (size_t i = 0; i < block; i++)
        v[i] = 2.0 * siam_rng_uniform(&r) - 1.0;
    orthonormalize(v, p, dim, &r);
    for (int it = 1;; it++) {
        /* Rayleigh-Ritz: the best approximations to eigenpairs within span(v) */
        multiply(c, v, p, dim, cv);
        for (int i = 0; i < p; i++)
            for (int j = 0; j < p; j++)
                h[i * p + j] = 0.5 * (dot(v + (size_t)i * dim, cv + (size_t)j * dim, dim) +
                                      dot(v + (size_t)j * dim, cv + (size_t)i * dim, dim));
        jacobi_eigen(h, p, w, q);
        for (int i = 0; i < p; i++) /* insertion sort of the indices by decreasing eigenvalue */
            order[i] = i;
        for (int i = 1; i < p; i++)
            for (int j = i; j > 0 && w[order[j]] > w[order[j - 1]]; j--) {
                int t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            }
        rotate_rows(v, q, order, p, dim, tmp);
        memcpy(v, tmp, block * sizeof *v);
        rotate_rows(cv, q, order, p, dim, tmp);
        memcpy(cv, tmp, block * sizeof *cv);
        double lambda1 = w[order[0]], worst = 0.0;
        for (int i = 0; i < k; i++) {
            double s = 0.0, li = w[order[i]];
            for (int d = 0; d < dim; d++) {
                double e = cv[(size_t)i * dim + d] - li * v[(size_t)i * dim + d];
                s += e * e;
            }
            if (sqrt(s) > worst)
                worst = sqrt(s);
        }
        out->residual = lambda1 > 0.0 ? worst / lambda1 : 0.0;
        out->iterations = it;
        out->converged = out->residual <= SIAM_PCA_TOL;
        if (out->converged || it >= SIAM_PCA_MAX_ITERS) {
            for (int i = 0; i < k; i++)
                out->variance[i] = w[order[i]];
            memcpy(out->components, v, (size_t)k * dim * sizeof *v);
            break;
        }
        /* the power step: v = orth(C v) */
        memcpy(v, cv, block * sizeof *v);
        orthonormalize(v, p, dim, &r);
    }
done:
    free(v);
    free(cv);
    free(tmp);
    free(h);
    free(q);
    free(w);
    free(order);
    return rc;
}

int siam_pca_fit(siam_pca *out, const float *x, size_t n, int dim, int k, siam_error *err) {
    memset(out, 0, sizeof *out);
    if (n < 2)
        return siam_error_set(err, SIAM_ERR_ARG, "PCA: needs at least 2 vectors, got %zu", n);
    if (dim < 1 || dim > SIAM_PCA_MAX_DIM || k < 1 || k > dim)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "PCA: %d components of %d dimensions (needs 1 <= components <= "
                              "dimensions <= %d)",
                              k, dim, SIAM_PCA_MAX_DIM);
    for (size_t i = 0; i < n * (size_t)dim; i++)
        if (!isfinite(x[i]))
            return siam_error_set(err, SIAM_ERR_ARG,
                                  "PCA: vector %zu, component %zu is %g: values must be finite",
                                  i / (size_t)dim, i % (size_t)dim, (double)x[i]);
    out->dim = dim;
    out->k = k;
    out->n = n;
    out->mean = calloc((size_t)dim, sizeof *out->mean);
    out->components = calloc((size_t)k * dim, sizeof *out->components);
    out->variance = calloc((size_t)k, sizeof *out->variance);
    double *c = malloc((size_t)dim * dim * sizeof *c), *row = malloc((size_t)dim * sizeof *row);
    int rc = SIAM_OK;
    if (!out->mean || !out->components || !out->variance || !c || !row) {
        rc = siam_error_set(err, SIAM_ERR_NOMEM, "PCA: out of memory for a %d x %d covariance", dim,
                            dim);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        for (int d = 0; d < dim; d++)
            out->mean[d] += x[i * (size_t)dim + d];
    for (int d = 0; d < dim; d++)
        out->mean[d] /= (double)n;
    covariance(x, n, dim, out->mean, c, row);
    for (int d = 0; d < dim; d++)
        out->total_variance += c[(size_t)d * dim + d];
    if (out->total_variance == 0.0) { /* all vectors equal: every direction explains nothing */
        for (int i = 0; i < k; i++)
            out->components[(size_t)i * dim + i] = 1.0;
        out->converged = 1;
        goto done;
    }
    if ((rc = top_eigen(c, dim, out, err)))
        goto done;
    for (int i = 0; i < k; i++) { /* the sign: the largest-magnitude entry positive */
        double *v = out->components + (size_t)i * dim;
        int big = 0;
        for (int d = 1; d < dim; d++)
            if (fabs(v[d]) > fabs(v[big]))
                big = d;
        if (v[big] < 0.0)
            for (int d = 0; d < dim; d++)
                v[d] = -v[d];
    }
done:
    free(c);
    free(row);
    if (rc)
        siam_pca_free(out);
    return rc;
}
