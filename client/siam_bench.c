/* siam-bench: measures OpenBLAS sgemm at the shapes the models use and the local training rate
 * (both forward passes + backward + Adam, no network) of each model, as medians of repeats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_dataset.h"
#include "siam_log.h"
#include "siam_model.h"
#include "siam_options.h"
#include "siam_pairs.h"
#include "siam_rng.h"
#include "siam_tensor.h"
#include "siam_trainer.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* GFLOP/s of C (M,N) = op(A) op(B) with inner dimension K, median of reps timings */
static double bench_sgemm(int ta, int tb, int M, int N, int K, int reps) {
    float *A = siam_alloc_floats((size_t)M * K), *B = siam_alloc_floats((size_t)K * N);
    float *C = siam_alloc_floats((size_t)M * N);
    double t[16];
    if (!A || !B || !C) {
        siam_free(A), siam_free(B), siam_free(C);
        return 0.0;
    }
    for (size_t i = 0; i < (size_t)M * K; i++)
        A[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)K * N; i++)
        B[i] = (float)(i % 5) * 0.1f;
    double flop = 2.0 * M * N * K;
    int inner = (int)(2e8 / flop) + 1; /* ~0.1 s per timing at 2 GFLOP/s upward */
    siam_sgemm(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, C, N);
    for (int r = 0; r < reps; r++) {
        double t0 = siam_now();
        for (int i = 0; i < inner; i++)
            siam_sgemm(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 1.0f, C, N);
        t[r] = flop * inner / (siam_now() - t0) / 1e9;
    }
    siam_free(A), siam_free(B), siam_free(C);
    return median(t, reps);
}

/* pairs/s of local training, median of reps windows of `steps` steps after a warm-up */
static int bench_train(const char *model, int batch, const siam_dataset *ds, const siam_pairs *p,
                       int reps, int steps, double *rate, siam_error *err) {
    siam_model *m = NULL;
    siam_trainer tr;
    int rc = siam_model_create(&m, model, 1, err);
    if (!rc)
        rc = siam_trainer_init(&tr, m, SIAM_OPTIM_ADAM, 1e-3f, batch, err);
    if (rc) {
        siam_model_free(m);
        return rc;
    }
    siam_local_head head = {1.0f, SIAM_LABELS_SIMILAR};
    double t[16];
    size_t pos = 0;
    for (int r = -1; r < reps && !rc; r++) {
        double t0 = siam_now();
        for (int s = 0; s < steps && !rc; s++) {
            if (pos + (size_t)batch > p->n)
                pos = 0;
            float loss;
            rc = siam_trainer_step(&tr, ds, p, pos, batch, siam_local_head_fn, &head, &loss, err);
            pos += (size_t)batch;
        }
        if (r >= 0)
            t[r] = (double)steps * batch / (siam_now() - t0);
    }
    if (!rc)
        *rate = median(t, reps);
    siam_trainer_free(&tr);
    siam_model_free(m);
    return rc;
}

int main(int argc, char **argv) {
    const char *data = SIAM_DATA_DIR_DEFAULT, *only = "all";
    int threads = 0, reps = 5, seconds_scale = 1;
    const siam_option opts[] = {
        {"data", SIAM_OPT_STRING, &data, 0, 0, NULL, "DIR", "Fashion-MNIST IDX directory"},
        {"threads", SIAM_OPT_INT, &threads, 0, 256, NULL, "N",
         "OpenBLAS threads (0 = library default)"},
        {"reps", SIAM_OPT_INT, &reps, 1, 15, NULL, "N", "timed repeats per figure (median)"},
        {"scale", SIAM_OPT_INT, &seconds_scale, 1, 100, NULL, "K",
         "multiply the steps per training timing by K"},
        {"only", SIAM_OPT_CHOICE, &only, 0, 0, "all|sgemm|train", NULL, "which figures to take"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int rc = siam_options_main("siam-bench", SIAM_VERSION,
                               "Measure sgemm GFLOP/s at the models' shapes and local training "
                               "pairs/s (medians).\nOutput: one 'kind name value unit' line per "
                               "figure.",
                               opts, n_opts, argc, argv);
    if (rc >= 0)
        return rc;
    siam_error err = {0};
    siam_blas_set_threads(threads);
    printf("threads %d\n", siam_blas_get_threads());

    if (strcmp(only, "train") != 0) {
        /* the products of one mlp step at batch B (forward, dW, din), and the cnn's im2col
         * products at batch 128 */
        static const struct {
            const char *name;
            int ta, tb, M, N, K;
        } shapes[] = {
            {"mlp128.dense1.fwd", 0, 0, 128, 128, 784},
            {"mlp128.dense1.dW", 1, 0, 784, 128, 128},
            {"mlp128.dense2.fwd", 0, 0, 128, 128, 128},
            {"mlp128.dense2.din", 0, 1, 128, 128, 128},
            {"mlp857.dense1.fwd", 0, 0, 857, 128, 784},
            {"mlp857.dense1.dW", 1, 0, 784, 128, 857},
            {"cnn128.conv1.fwd", 0, 0, 128 * 676, 32, 9},
            {"cnn128.conv2.fwd", 0, 0, 128 * 121, 64, 288},
            {"cnn128.conv2.dW", 1, 0, 288, 64, 128 * 121},
            {"cnn128.conv2.dcol", 0, 1, 128 * 121, 288, 64},
            {"cnn128.dense.fwd", 0, 0, 128, 128, 1600},
        };
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            double g = bench_sgemm(shapes[i].ta, shapes[i].tb, shapes[i].M, shapes[i].N,
                                   shapes[i].K, reps);
            printf("sgemm %s %.2f GFLOP/s\n", shapes[i].name, g);
            fflush(stdout);
        }
    }
    if (strcmp(only, "sgemm") != 0) {
        siam_dataset ds = {0};
        siam_pairs p = {0};
        if ((rc = siam_dataset_load(&ds, data, SIAM_SPLIT_TRAIN, 0, &err)) ||
            (rc = siam_pairs_make(&p, ds.labels, ds.n, 10, 1, &err))) {
            fprintf(stderr, "siam-bench: %s\n", err.msg);
            siam_dataset_free(&ds);
            return 1;
        }
        siam_pairs_shuffle(&p, 1);
        static const struct {
            const char *model;
            int batch, steps;
        } runs[] = {{"mlp", 128, 100}, {"mlp", 857, 20}, {"cnn", 128, 8}};
        for (size_t i = 0; i < sizeof runs / sizeof runs[0] && !rc; i++) {
            double rate = 0;
            rc = bench_train(runs[i].model, runs[i].batch, &ds, &p, reps,
                             runs[i].steps * seconds_scale, &rate, &err);
            if (!rc)
                printf("train %s.b%d %.0f pairs/s\n", runs[i].model, runs[i].batch, rate);
            fflush(stdout);
        }
        siam_pairs_free(&p);
        siam_dataset_free(&ds);
        if (rc) {
            fprintf(stderr, "siam-bench: %s\n", err.msg);
            return 1;
        }
    }
    return 0;
}
