/* bench_local.c: suite local, OpenBLAS sgemm at the models' shapes and local training rates
 * (--only embed: bench_embed.c). */
#include <stdio.h>
#include <string.h>

#include "bench_stats.h"
#include "bench_suites.h"
#include "siam_dataset.h"
#include "siam_model.h"
#include "siam_pairs.h"
#include "siam_tensor.h"
#include "siam_trainer.h"

typedef struct {
    int ta, tb, M, N, K, inner;
    const float *A, *B;
    float *C;
} sgemm_window;

static int sgemm_window_run(void *ctx, double *units) {
    sgemm_window *w = ctx;
    for (int i = 0; i < w->inner; i++)
        siam_sgemm(w->ta, w->tb, w->M, w->N, w->K, 1.0f, w->A, w->ta ? w->M : w->K, w->B,
                   w->tb ? w->K : w->N, 1.0f, w->C, w->N);
    *units = 2.0 * w->M * w->N * w->K * w->inner;
    return 0;
}

/* GFLOP/s of C (M,N) = op(A) op(B) with inner dimension K, median of reps timings */
static double bench_sgemm(int ta, int tb, int M, int N, int K, int reps) {
    float *A = siam_alloc_floats((size_t)M * K), *B = siam_alloc_floats((size_t)K * N);
    float *C = siam_alloc_floats((size_t)M * N);
    double rate = 0.0;
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
    sgemm_window w = {ta, tb, M, N, K, inner, A, B, C};
    siam_sgemm(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, C, N);
    bench_median_rate(sgemm_window_run, &w, 0, reps, &rate);
    siam_free(A), siam_free(B), siam_free(C);
    return rate / 1e9;
}

typedef struct {
    siam_trainer *tr;
    siam_local_head *head;
    const siam_dataset *ds;
    const siam_pairs *p;
    int batch, steps;
    size_t pos;
    siam_error *err;
} train_window;

static int train_window_run(void *ctx, double *units) {
    train_window *w = ctx;
    int rc = 0;
    for (int s = 0; s < w->steps && !rc; s++) {
        if (w->pos + (size_t)w->batch > w->p->n)
            w->pos = 0;
        float loss;
        rc = siam_trainer_step(w->tr, w->ds, w->p, w->pos, w->batch, siam_local_head_fn, w->head,
                               &loss, w->err);
        w->pos += (size_t)w->batch;
    }
    *units = (double)w->steps * w->batch;
    return rc;
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
    train_window w = {&tr, &head, ds, p, batch, steps, 0, err};
    rc = bench_median_rate(train_window_run, &w, 1, reps, rate);
    siam_trainer_free(&tr);
    siam_model_free(m);
    return rc;
}

static void bench_sgemm_shapes(int reps) {
    /* the products of one mlp step at batch B (forward, dW, din), and the cnn's im2col products
     * at batch 128 */
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
        double g =
            bench_sgemm(shapes[i].ta, shapes[i].tb, shapes[i].M, shapes[i].N, shapes[i].K, reps);
        printf("sgemm %s %.2f GFLOP/s\n", shapes[i].name, g);
        fflush(stdout);
    }
}

static int bench_train_runs(const bench_config *c) {
    siam_error err = {0};
    siam_dataset ds = {0};
    siam_pairs p = {0};
    int rc;
    if ((rc = siam_dataset_load(&ds, c->data, SIAM_SPLIT_TRAIN, 0, &err)) ||
        (rc = siam_pairs_make(&p, ds.labels, ds.n, 10, 1, &err))) {
        fprintf(stderr, BENCH_PROG ": %s\n", err.msg);
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
        rc = bench_train(runs[i].model, runs[i].batch, &ds, &p, c->reps, runs[i].steps * c->scale,
                         &rate, &err);
        if (!rc)
            printf("train %s.b%d %.0f pairs/s\n", runs[i].model, runs[i].batch, rate);
        fflush(stdout);
    }
    siam_pairs_free(&p);
    siam_dataset_free(&ds);
    if (rc) {
        fprintf(stderr, BENCH_PROG ": %s\n", err.msg);
        return 1;
    }
    return 0;
}

int bench_suite_local(const bench_config *c) {
    siam_blas_set_threads(c->threads);
    printf("threads %d\n", siam_blas_get_threads());
    if (strcmp(c->only, "embed") == 0)
        return bench_embed_runs(c);
    if (strcmp(c->only, "train") != 0)
        bench_sgemm_shapes(c->reps);
    if (strcmp(c->only, "sgemm") != 0)
        return bench_train_runs(c);
    return 0;
}
