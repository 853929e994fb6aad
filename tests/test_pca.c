/* test_pca: the principal components against two independent computations, a full cyclic Jacobi
 * eigen-solve in double of a covariance summed here, and numpy (Debian's python3-numpy:
 * numpy.cov and numpy.linalg.eigh); a hand-made set whose components and explained variances
 * are known exactly; orthonormality, the sign rule, the projection, near-equal eigenvalues, low
 * rank, all-equal vectors, determinism and the bad inputs. */
#include "test_util.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "siam_pca.h"
#include "siam_rng.h"

/* ---- the reference: covariance and all its eigenpairs by cyclic Jacobi, in double ---- */

static void ref_covariance(const float *x, size_t n, int dim, double *c) {
    double *mean = calloc((size_t)dim, sizeof *mean);
    for (size_t i = 0; i < n; i++)
        for (int d = 0; d < dim; d++)
            mean[d] += x[i * dim + d];
    for (int d = 0; d < dim; d++)
        mean[d] /= (double)n;
    for (int a = 0; a < dim; a++)
        for (int b = 0; b < dim; b++) {
            double s = 0;
            for (size_t i = 0; i < n; i++)
                s += (x[i * dim + a] - mean[a]) * (x[i * dim + b] - mean[b]);
            c[a * dim + b] = s / (double)(n - 1);
        }
    free(mean);
}

/* eigenvalues w (descending) and eigenvectors as the rows of v of the symmetric c (dim, dim) */
static void ref_eigen(const double *c, int dim, double *w, double *v) {
    double *a = malloc((size_t)dim * dim * sizeof *a), *q = malloc((size_t)dim * dim * sizeof *q);
    memcpy(a, c, (size_t)dim * dim * sizeof *a);
    for (int i = 0; i < dim * dim; i++)
        q[i] = i % (dim + 1) == 0;
    for (int sweep = 0; sweep < 200; sweep++) {
        double off = 0;
        for (int i = 0; i < dim; i++)
            for (int j = i + 1; j < dim; j++)
                off += a[i * dim + j] * a[i * dim + j];
        if (off < 1e-300)
            break;
        for (int p = 0; p < dim; p++)
            for (int r = p + 1; r < dim; r++) {
                double apr = a[p * dim + r];
                if (fabs(apr) < 1e-300)
                    continue;
                /* the angle that zeroes a_pr: tan(2 phi) = 2 a_pr / (a_rr - a_pp) */
                double phi = 0.5 * atan2(2 * apr, a[r * dim + r] - a[p * dim + p]);
                double cs = cos(phi), sn = sin(phi);
                for (int k = 0; k < dim; k++) {
                    double x = a[k * dim + p], y = a[k * dim + r];
                    a[k * dim + p] = cs * x - sn * y;
                    a[k * dim + r] = sn * x + cs * y;
                }
                for (int k = 0; k < dim; k++) {
                    double x = a[p * dim + k], y = a[r * dim + k];
                    a[p * dim + k] = cs * x - sn * y;
                    a[r * dim + k] = sn * x + cs * y;
                }
                for (int k = 0; k < dim; k++) {
                    double x = q[k * dim + p], y = q[k * dim + r];
                    q[k * dim + p] = cs * x - sn * y;
                    q[k * dim + r] = sn * x + cs * y;
                }
            }
    }
    for (int i = 0; i < dim; i++) { /* selection by decreasing eigenvalue */
        int best = -1;
        for (int j = 0; j < dim; j++)
            if (a[j * dim + j] > -INFINITY && (best < 0 || a[j * dim + j] > a[best * dim + best]))
                best = j;
        w[i] = a[best * dim + best];
        for (int k = 0; k < dim; k++)
            v[i * dim + k] = q[k * dim + best];
        a[best * dim + best] = -INFINITY;
    }
    free(a);
    free(q);
}

/* the fit's general properties: orthonormal rows, the sign rule, C v = lambda v (residual from
 * the reference covariance), variances = v^T C v, the total = trace C, the projection */
static void check_fit(const siam_pca *p, const float *x, size_t n, const double *c,
                      const char *what) {
    int dim = p->dim, k = p->k;
    double worst_dot = 0, worst_res = 0, lambda1 = p->variance[0], trace = 0;
    for (int d = 0; d < dim; d++)
        trace += c[d * dim + d];
    for (int i = 0; i < k; i++) {
        const double *vi = p->components + (size_t)i * dim;
        for (int j = 0; j < k; j++) {
            double s = 0;
            for (int d = 0; d < dim; d++)
                s += vi[d] * p->components[(size_t)j * dim + d];
            worst_dot = fmax(worst_dot, fabs(s - (i == j)));
        }
        int big = 0;
        for (int d = 1; d < dim; d++)
            if (fabs(vi[d]) > fabs(vi[big]))
                big = d;
        CHECK(vi[big] > 0, "%s: component %d's largest entry %g is negative", what, i, vi[big]);
        double res = 0, vcv = 0;
        for (int a = 0; a < dim; a++) {
            double cv = 0;
            for (int b = 0; b < dim; b++)
                cv += c[a * dim + b] * vi[b];
            res += (cv - p->variance[i] * vi[a]) * (cv - p->variance[i] * vi[a]);
            vcv += vi[a] * cv;
        }
        worst_res = fmax(worst_res, sqrt(res) / fmax(lambda1, 1e-300));
        CHECK_NEAR(p->variance[i], vcv, 1e-12 * fmax(lambda1, 1e-300), what);
        if (i > 0)
            CHECK(p->variance[i] <= p->variance[i - 1], "%s: variances not descending", what);
    }
    CHECK(worst_dot < 1e-12, "%s: components not orthonormal (off by %g)", what, worst_dot);
    CHECK(worst_res < 1e-9, "%s: ||C v - lambda v|| / lambda_1 = %g", what, worst_res);
    CHECK_NEAR(p->total_variance, trace, 1e-12 * fmax(trace, 1e-300), what);
    CHECK(p->converged, "%s: not converged (residual %g after %d iterations)", what, p->residual,
          p->iterations);
    /* the projection against (x - mean) . v in double, the mean from the data */
    float *y = malloc(n * (size_t)k * sizeof *y);
    siam_pca_project(p, x, n, y);
    double worst_y = 0, scale = sqrt(fmax(lambda1, 1e-300));
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < k; j++) {
            double s = 0;
            for (int d = 0; d < dim; d++)
                s += (x[i * dim + d] - p->mean[d]) * p->components[(size_t)j * dim + d];
            worst_y = fmax(worst_y, fabs(y[i * k + j] - s) / scale);
        }
    CHECK(worst_y < 1e-6, "%s: projection off by %g of sqrt(lambda_1)", what, worst_y);
    free(y);
}

/* the fit against the reference's top k: eigenvalues, vectors up to sign */
static void check_against_ref(const siam_pca *p, const double *w, const double *v, double tol,
                              double vtol, const char *what) {
    for (int i = 0; i < p->k; i++) {
        CHECK_NEAR(p->variance[i], w[i], tol * w[0], what);
        double s = 0;
        for (int d = 0; d < p->dim; d++)
            s += p->components[(size_t)i * p->dim + d] * v[(size_t)i * p->dim + d];
        /* |v -+ u| for the better sign: sqrt(2 - 2 |v . u|) */
        double dist = sqrt(fmax(0.0, 2.0 - 2.0 * fabs(s)));
        CHECK(dist < vtol, "%s: component %d is %g from the reference's (up to sign)", what, i,
              dist);
    }
}

/* points (+-3, 0, 0) and (0, +-1, 0) turned by 30 degrees in the (x, y) plane and moved: C has
 * eigenvalues 2*9/3 = 6, 2/3 and 0, the components are the turned axes, the explained variances
 * 6 / (20/3) = 0.9 and 0.1 */
static void test_hand_made(void) {
    const double cs = cos(M_PI / 6), sn = sin(M_PI / 6);
    const double pts[4][2] = {{3, 0}, {-3, 0}, {0, 1}, {0, -1}};
    float x[12];
    for (int i = 0; i < 4; i++) {
        x[i * 3 + 0] = (float)(5 + cs * pts[i][0] - sn * pts[i][1]);
        x[i * 3 + 1] = (float)(-2 + sn * pts[i][0] + cs * pts[i][1]);
        x[i * 3 + 2] = 7;
    }
    siam_pca p;
    siam_error err = {0};
    CHECK(siam_pca_fit(&p, x, 4, 3, 2, &err) == SIAM_OK, "%s", err.msg);
    CHECK_NEAR(p.variance[0], 6.0, 1e-5, "hand-made: variance 1");
    CHECK_NEAR(p.variance[1], 2.0 / 3.0, 1e-5, "hand-made: variance 2");
    CHECK_NEAR(siam_pca_explained(&p, 0), 0.9, 1e-6, "hand-made: explained 1");
    CHECK_NEAR(siam_pca_explained(&p, 1), 0.1, 1e-6, "hand-made: explained 2");
    /* the turned x axis (cos, sin, 0): largest entry cos > 0, so exactly this sign; the turned y
     * axis (-sin, cos, 0) likewise */
    CHECK_NEAR(p.components[0], cs, 1e-6, "hand-made: v1.x");
    CHECK_NEAR(p.components[1], sn, 1e-6, "hand-made: v1.y");
    CHECK_NEAR(p.components[2], 0, 1e-6, "hand-made: v1.z");
    CHECK_NEAR(p.components[3], -sn, 1e-6, "hand-made: v2.x");
    CHECK_NEAR(p.components[4], cs, 1e-6, "hand-made: v2.y");
    CHECK_NEAR(p.components[5], 0, 1e-6, "hand-made: v2.z");
    CHECK_NEAR(p.mean[0], 5, 1e-6, "hand-made: mean x");
    float y[8];
    siam_pca_project(&p, x, 4, y);
    const double want[4][2] = {{3, 0}, {-3, 0}, {0, 1}, {0, -1}};
    for (int i = 0; i < 4; i++) {
        CHECK_NEAR(y[2 * i], want[i][0], 1e-5, "hand-made: projection x");
        CHECK_NEAR(y[2 * i + 1], want[i][1], 1e-5, "hand-made: projection y");
    }
    siam_pca_free(&p);
    siam_pca_free(&p); /* twice: safe */
}

/* x = A z (+ a mean), z standard normal-ish: a spread of eigenvalues. spread[d] scales z_d. */
static float *make_data(size_t n, int dim, const double *spread, uint64_t seed) {
    siam_rng r;
    siam_rng_seed(&r, seed);
    double *a = malloc((size_t)dim * dim * sizeof *a);
    for (int i = 0; i < dim * dim; i++)
        a[i] = siam_rng_uniform(&r) - 0.5;
    float *x = malloc(n * (size_t)dim * sizeof *x);
    double *z = malloc((size_t)dim * sizeof *z);
    for (size_t i = 0; i < n; i++) {
        for (int d = 0; d < dim; d++) { /* sum of 4 uniforms: roughly normal */
            double s = 0;
            for (int t = 0; t < 4; t++)
                s += siam_rng_uniform(&r) - 0.5;
            z[d] = s * spread[d];
        }
        for (int d = 0; d < dim; d++) {
            double s = 0.25 * d;
            for (int e = 0; e < dim; e++)
                s += a[d * dim + e] * z[e];
            x[i * dim + d] = (float)s;
        }
    }
    free(a);
    free(z);
    return x;
}

/* numpy's top two: eigenvalues, vectors (rows) and the trace. Returns 0, or -1 to skip (no python
 * or no numpy: said on stdout). */
static int numpy_top2(const float *x, size_t n, int dim, double *w, double *v, double *trace) {
    char path[] = "/tmp/test_pca.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "w");
    for (size_t i = 0; i < n; i++)
        for (int d = 0; d < dim; d++) /* %.17g: the float's exact value as a double */
            fprintf(f, "%.17g%c", (double)x[i * dim + d], d + 1 < dim ? ' ' : '\n');
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c '\n"
             "import sys\n"
             "try:\n"
             "    import numpy as np\n"
             "except ImportError:\n"
             "    sys.exit(3)\n"
             "x = np.loadtxt(sys.argv[1], ndmin=2)\n"
             "c = np.cov(x, rowvar=False)\n"
             "w, q = np.linalg.eigh(c)\n"
             "print(repr(float(np.trace(c))))\n"
             "for i in (-1, -2):\n"
             "    print(repr(float(w[i])), *[repr(float(t)) for t in q[:, i]])\n"
             "' %s 2>&1",
             path);
    FILE *pp = popen(cmd, "r");
    int ok = pp && fscanf(pp, "%lf", trace) == 1;
    for (int i = 0; ok && i < 2; i++) {
        ok = fscanf(pp, "%lf", &w[i]) == 1;
        for (int d = 0; ok && d < dim; d++)
            ok = fscanf(pp, "%lf", &v[i * dim + d]) == 1;
    }
    int status = pp ? pclose(pp) : -1;
    unlink(path);
    if (status != -1 && WIFEXITED(status) &&
        (WEXITSTATUS(status) == 3 || WEXITSTATUS(status) == 127)) {
        printf("skip the numpy comparison: /usr/bin/python3 with numpy is not installed "
               "(apt-get install python3-numpy, or scripts/install-deps.sh)\n");
        return -1;
    }
    CHECK(ok && status == 0, "numpy: could not read its answer (status %d)", status);
    return ok && status == 0 ? 0 : -1;
}

static void test_random(int dim, size_t n, const double *spread, const char *what) {
    float *x = make_data(n, dim, spread, 1234 + (uint64_t)dim);
    siam_pca p;
    siam_error err = {0};
    CHECK(siam_pca_fit(&p, x, n, dim, 2, &err) == SIAM_OK, "%s: %s", what, err.msg);
    double *c = malloc((size_t)dim * dim * sizeof *c), *w = malloc((size_t)dim * sizeof *w);
    double *v = malloc((size_t)dim * dim * sizeof *v);
    ref_covariance(x, n, dim, c);
    ref_eigen(c, dim, w, v);
    check_fit(&p, x, n, c, what);
    check_against_ref(&p, w, v, 1e-9, 1e-6, what);
    double wn[2], trace, *vn = malloc(2 * (size_t)dim * sizeof *vn);
    if (numpy_top2(x, n, dim, wn, vn, &trace) == 0) {
        char label[128];
        snprintf(label, sizeof label, "%s vs numpy", what);
        check_against_ref(&p, wn, vn, 1e-9, 1e-6, label);
        CHECK_NEAR(p.total_variance, trace, 1e-10 * trace, label);
        CHECK_NEAR(siam_pca_explained(&p, 0), wn[0] / trace, 1e-9, label);
        CHECK_NEAR(siam_pca_explained(&p, 1), wn[1] / trace, 1e-9, label);
        printf("%s: numpy.linalg.eigh: variances %.9g %.9g of %.9g\n", what, wn[0], wn[1], trace);
    }
    printf("%s: dim %d, n %zu: variances %.6g %.6g of %.6g (explained %.4f %.4f), %d "
           "iterations, residual %.2g\n",
           what, dim, n, p.variance[0], p.variance[1], p.total_variance, siam_pca_explained(&p, 0),
           siam_pca_explained(&p, 1), p.iterations, p.residual);
    /* determinism: the same bits again */
    siam_pca p2;
    CHECK(siam_pca_fit(&p2, x, n, dim, 2, &err) == SIAM_OK, "%s", err.msg);
    CHECK(!memcmp(p.components, p2.components, 2 * (size_t)dim * sizeof(double)) &&
              !memcmp(p.variance, p2.variance, 2 * sizeof(double)),
          "%s: two fits differ", what);
    siam_pca_free(&p2);
    siam_pca_free(&p);
    free(x);
    free(c);
    free(w);
    free(v);
    free(vn);
}

static void test_spectra(void) {
    double spread[64];
    for (int d = 0; d < 64; d++) /* decaying, distinct */
        spread[d] = 3.0 / (1.0 + d);
    test_random(64, 3000, spread, "decaying spectrum");
    for (int d = 0; d < 24; d++) /* flat: slow convergence of subspace iteration */
        spread[d] = 1.0 + 0.02 * d;
    test_random(24, 4000, spread, "nearly flat spectrum");
    double two[2] = {1.0, 0.3};
    test_random(2, 500, two, "dim 2 (the block is the whole space)");
}

/* lambda_2 and lambda_3 about 1e-7 apart, in 16 dimensions (the block of 10 is not the whole
 * space): the second component lies in their plane, C v = lambda v holds, the variances are
 * exact */
static void test_near_equal(void) {
    enum { N = 6, DIM = 16 };
    /* +-a e_1, +-b e_2, +-b' e_3 (b' = b (1 + 1e-9)), scaled into floats exactly where possible */
    float x[N * DIM] = {0};
    const float a = 4, b = 2, b2 = 2.0f + 0x1p-22f;
    x[0 * DIM + 0] = a;
    x[1 * DIM + 0] = -a;
    x[2 * DIM + 1] = b;
    x[3 * DIM + 1] = -b;
    x[4 * DIM + 2] = b2;
    x[5 * DIM + 2] = -b2;
    siam_pca p;
    siam_error err = {0};
    CHECK(siam_pca_fit(&p, x, N, DIM, 2, &err) == SIAM_OK, "%s", err.msg);
    double c[DIM * DIM];
    ref_covariance(x, N, DIM, c);
    check_fit(&p, x, N, c, "near-equal eigenvalues");
    double total = 2.0 * ((double)a * a + (double)b * b + (double)b2 * b2) / (N - 1);
    CHECK_NEAR(p.variance[0], 2.0 * a * a / (N - 1), 1e-12, "near-equal: variance 1");
    CHECK_NEAR(p.variance[1], 2.0 * (double)b2 * b2 / (N - 1), 1e-9, "near-equal: variance 2");
    CHECK_NEAR(p.total_variance, total, 1e-12, "near-equal: total");
    double in_plane = p.components[DIM + 1] * p.components[DIM + 1] +
                      p.components[DIM + 2] * p.components[DIM + 2];
    CHECK_NEAR(in_plane, 1.0, 1e-9, "near-equal: component 2 in the plane of e_2, e_3");
    siam_pca_free(&p);
}

/* rank 1 in 16 dimensions: the power step leaves one vector, the block is refilled at random;
 * the second component has variance 0, any unit vector orthogonal to the first is right */
static void test_low_rank(void) {
    enum { N = 50, DIM = 16 };
    float x[N * DIM];
    for (int i = 0; i < N; i++)
        for (int d = 0; d < DIM; d++)
            x[i * DIM + d] = (float)((i % 7) - 3) * (float)(d + 1) * 0.25f + 1.0f;
    siam_pca p;
    siam_error err = {0};
    CHECK(siam_pca_fit(&p, x, N, DIM, 2, &err) == SIAM_OK, "%s", err.msg);
    double c[DIM * DIM];
    ref_covariance(x, N, DIM, c);
    check_fit(&p, x, N, c, "rank 1");
    CHECK(p.variance[1] < 1e-12 * p.variance[0], "rank 1: second variance %g of %g", p.variance[1],
          p.variance[0]);
    CHECK_NEAR(siam_pca_explained(&p, 0), 1.0, 1e-12, "rank 1: explained");
    siam_pca_free(&p);
}

static void test_edges(void) {
    siam_pca p;
    siam_error err = {0};
    float same[12];
    for (int i = 0; i < 12; i++)
        same[i] = (float)(i % 3);
    CHECK(siam_pca_fit(&p, same, 4, 3, 2, &err) == SIAM_OK, "%s", err.msg);
    CHECK(p.total_variance == 0 && p.variance[0] == 0 && siam_pca_explained(&p, 0) == 0 &&
              p.converged && p.components[0] == 1 && p.components[4] == 1,
          "all equal: total %g, explained %g, components %g %g", p.total_variance,
          siam_pca_explained(&p, 0), p.components[0], p.components[4]);
    float y[8];
    siam_pca_project(&p, same, 4, y);
    CHECK(y[0] == 0 && y[7] == 0, "all equal: projected to the origin");
    siam_pca_free(&p);
    float one[3] = {1, 2, 3};
    CHECK(siam_pca_fit(&p, one, 3, 1, 1, &err) == SIAM_OK && p.variance[0] == 1.0 &&
              p.components[0] == 1.0,
          "one dimension, one component: %s", err.msg);
    siam_pca_free(&p);

    CHECK(siam_pca_fit(&p, same, 1, 3, 2, &err) == SIAM_ERR_ARG && strstr(err.msg, "at least 2"),
          "one vector: %s", err.msg);
    CHECK(!p.mean && !p.components, "not zeroed after a failure");
    CHECK(siam_pca_fit(&p, same, 4, 3, 4, &err) == SIAM_ERR_ARG && strstr(err.msg, "4 components"),
          "k > dim: %s", err.msg);
    CHECK(siam_pca_fit(&p, same, 4, 3, 0, &err) == SIAM_ERR_ARG, "k = 0: %s", err.msg);
    CHECK(siam_pca_fit(&p, same, 2, SIAM_PCA_MAX_DIM + 1, 2, &err) == SIAM_ERR_ARG &&
              strstr(err.msg, "4096"),
          "dim above the limit: %s", err.msg);
    float bad[12];
    memcpy(bad, same, sizeof bad);
    bad[7] = NAN;
    CHECK(siam_pca_fit(&p, bad, 4, 3, 2, &err) == SIAM_ERR_ARG &&
              strstr(err.msg, "vector 2, component 1"),
          "NaN: %s", err.msg);
    siam_pca_free(&p);
}

int main(void) {
    tu_trap_fp();
    test_hand_made();
    test_spectra();
    test_near_equal();
    test_low_rank();
    test_edges();
    return tu_finish();
}
