/* bench_embed.c: suite local --only embed, inference embeddings (siam_model_embed: what image
 * Similarity, evaluate and predict run) in images/s for each model. */
#include <stdio.h>

#include "bench_stats.h"
#include "bench_suites.h"
#include "siam_model.h"
#include "siam_rng.h"
#include "siam_tensor.h"

typedef struct {
    siam_model *m;
    const float *x;
    float *out;
    size_t n;
    siam_error *err;
} embed_window;

static int embed_window_run(void *ctx, double *units) {
    embed_window *w = ctx;
    *units = (double)w->n;
    return siam_model_embed(w->m, w->x, w->n, w->out, w->err);
}

/* images/s of siam_model_embed on n random images (grey levels k/255, as the server makes of
 * image bytes), median of reps calls after one untimed call */
static int bench_embed(const char *model, size_t n, int reps, double *rate, siam_error *err) {
    siam_model *m = NULL;
    int rc = siam_model_create(&m, model, 42, err);
    if (rc)
        return rc;
    size_t in = (size_t)siam_model_input_size(m), od = (size_t)siam_model_output_size(m);
    float *x = siam_alloc_floats(n * in), *out = siam_alloc_floats(n * od);
    if (!x || !out) {
        rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for %zu images", n);
    } else {
        siam_rng r;
        siam_rng_seed(&r, 1);
        for (size_t i = 0; i < n * in; i++)
            x[i] = (float)(siam_rng_u64(&r) % 256) / 255.0f;
        embed_window w = {m, x, out, n, err};
        rc = bench_median_rate(embed_window_run, &w, 1, reps, rate);
    }
    siam_free(x), siam_free(out);
    siam_model_free(m);
    return rc;
}

int bench_embed_runs(const bench_config *c) {
    /* mlp: as many images as evaluate embeds (60,000 train + 10,000 test); cnn: a tenth, so
     * that its timings stay short (--scale multiplies both) */
    static const struct {
        const char *model;
        size_t n;
    } runs[] = {{"mlp", 70000}, {"cnn", 7000}};
    siam_error err = {0};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        double rate = 0;
        size_t n = runs[i].n * (size_t)c->scale;
        if (bench_embed(runs[i].model, n, c->reps, &rate, &err)) {
            fprintf(stderr, BENCH_PROG ": embed %s: %s\n", runs[i].model, err.msg);
            return 1;
        }
        printf("embed %s.n%zu %.0f images/s\n", runs[i].model, n, rate);
        fflush(stdout);
    }
    return 0;
}
