/* test_model: both builders end to end: parameter counts, spec strings, and the Siamese weight
 * gradient (two passes, contrastive loss) against central finite differences. */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "siam_checkpoint.h"
#include "siam_loss.h"
#include "siam_model.h"
#include "siam_rng.h"

enum { B = 4 };

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* loss of the Siamese model on (xa, xb) with fixed dropout masks, accumulated in double from
 * the embeddings (the float loss would round away the finite differences) */
static double siamese_loss(siam_model *m, const float *xa, const float *xb, const uint32_t *y) {
    siam_error err;
    const float *ea, *eb;
    int dim = siam_model_output_size(m);
    siam_model_seed_dropout(m, 99);
    if (siam_model_forward(m, 0, xa, B, 1, &ea, &err) ||
        siam_model_forward(m, 1, xb, B, 1, &eb, &err)) {
        fprintf(stderr, "forward failed: %s\n", err.msg);
        exit(1);
    }
    return tu_contrastive_ref(ea, eb, y, B, dim, 1.0, 1);
}

/* analytic weight gradient of the Siamese loss into m's grads (masks as siamese_loss) */
static void siamese_grad(siam_model *m, const float *xa, const float *xb, const uint32_t *y,
                         int which /* 0 both passes, 1 left only, 2 right only */) {
    siam_error err;
    const float *ea, *eb;
    int dim = siam_model_output_size(m);
    float dist[B], *ga = calloc((size_t)B * dim, sizeof *ga), *gb = calloc((size_t)B * dim, 4);
    float *ca = malloc((size_t)B * dim * 4), *cb = malloc((size_t)B * dim * 4);
    siam_model_seed_dropout(m, 99);
    siam_model_forward(m, 0, xa, B, 1, &ea, &err);
    memcpy(ca, ea, (size_t)B * dim * 4);
    siam_model_forward(m, 1, xb, B, 1, &eb, &err);
    memcpy(cb, eb, (size_t)B * dim * 4);
    siam_contrastive_forward(dist, ca, cb, y, B, dim, 1.0f, SIAM_LABELS_SIMILAR);
    siam_contrastive_backward(ga, gb, ca, cb, dist, y, B, dim, 1.0f, SIAM_LABELS_SIMILAR);
    siam_model_zero_grads(m);
    if (which != 2)
        siam_model_backward(m, 0, ga);
    if (which != 1)
        siam_model_backward(m, 1, gb);
    free(ga), free(gb), free(ca), free(cb);
}

static void check_model(const char *name, size_t expect_params, size_t expect_trainable,
                        int expect_dim) {
    siam_model *m;
    siam_error err = {0};
    CHECK(siam_model_create(&m, name, 1, &err) == SIAM_OK, "%s: %s", name, err.msg);
    if (!m)
        return;
    size_t np = siam_model_num_params(m), nt = siam_model_num_trainable(m);
    CHECK(np == expect_params, "%s has %zu parameters, expected %zu", name, np, expect_params);
    CHECK(nt == expect_trainable, "%s has %zu trainable, expected %zu", name, nt, expect_trainable);
    CHECK(siam_model_input_size(m) == 784 && siam_model_output_size(m) == expect_dim,
          "%s shape %d->%d", name, siam_model_input_size(m), siam_model_output_size(m));

    /* the spec rebuilds the same layout */
    siam_model *m2;
    CHECK(siam_model_create(&m2, siam_model_spec(m), 1, &err) == SIAM_OK, "respec: %s", err.msg);
    if (m2) {
        CHECK(strcmp(siam_model_spec(m), siam_model_spec(m2)) == 0, "spec round trip");
        CHECK(memcmp(siam_model_params(m), siam_model_params(m2), np * 4) == 0,
              "same seed, same initial parameters");
        siam_model_free(m2);
    }

    siam_rng rng;
    siam_rng_seed(&rng, 3);
    float xa[B * 784], xb[B * 784];
    for (int i = 0; i < B * 784; i++) {
        xa[i] = 0.2f * siam_rng_uniform(&rng); /* D near the margin: both loss branches */
        xb[i] = 0.2f * siam_rng_uniform(&rng);
    }
    uint32_t y[B] = {1, 0, 1, 0};

    /* shared weights: the gradient of both passes is the sum of each pass's gradient */
    float *g_left = malloc(nt * 4), *g_right = malloc(nt * 4);
    siamese_grad(m, xa, xb, y, 1);
    memcpy(g_left, siam_model_grads(m), nt * 4);
    siamese_grad(m, xa, xb, y, 2);
    memcpy(g_right, siam_model_grads(m), nt * 4);
    siamese_grad(m, xa, xb, y, 0);
    const float *g = siam_model_grads(m);
    double worst_sum = 0, g_max = 0;
    for (size_t i = 0; i < nt; i++) {
        double e = fabs((double)g[i] - ((double)g_left[i] + g_right[i]));
        if (e > worst_sum)
            worst_sum = e;
        if (fabs(g[i]) > g_max)
            g_max = fabs(g[i]);
    }
    CHECK(worst_sum <= 1e-5 * g_max, "%s: both-pass gradient differs from the sum by %g", name,
          worst_sum);

    /* Finite differences on a spread of parameters covering every layer. Float forward passes
     * make tiny steps noisy, and ReLU kinks and max-pool ties make large steps cross
     * non-differentiable points, so each parameter takes the best agreement over three step
     * sizes, and the criterion is statistical: median relative error under 1e-3, at most 1%
     * of parameters above 1e-2, none above 0.1. A wrong layer fails all three by far. */
    float *params = siam_model_params(m);
    static const double steps[3] = {5e-3, 1e-3, 4e-4};
    double errs[700];
    int n_checked = 0, n_bad = 0;
    double worst = 0;
    size_t stride = nt / 600 + 1;
    for (size_t i = siam_rng_below(&rng, stride); i < nt && n_checked < 700; i += stride) {
        double e = INFINITY, num = 0;
        for (int k = 0; k < 3 && e > 1e-3; k++) {
            float keep = params[i];
            params[i] = keep + (float)steps[k];
            double lp = siamese_loss(m, xa, xb, y);
            params[i] = keep - (float)steps[k];
            double lm = siamese_loss(m, xa, xb, y);
            params[i] = keep;
            num = (lp - lm) / (2 * steps[k]);
            double ek = tu_rel_err(g_left[i] + g_right[i], num, 1e-2);
            if (ek < e)
                e = ek;
        }
        errs[n_checked++] = e;
        if (e > worst)
            worst = e;
        if (e > 1e-2) {
            n_bad++;
            fprintf(stderr, "%s param %zu: analytic %.6g numeric %.6g\n", name, i, (double)g[i],
                    num);
        }
    }
    qsort(errs, (size_t)n_checked, sizeof errs[0], cmp_double);
    double med = errs[n_checked / 2];
    printf("%s: %d parameters checked, median relative error %.2e, worst %.2e, %d above 1e-2\n",
           name, n_checked, med, worst, n_bad);
    CHECK(med < 1e-3, "%s: median relative error %.3g", name, med);
    CHECK(n_bad * 100 <= n_checked, "%s: %d of %d parameters off by more than 1e-2", name, n_bad,
          n_checked);
    CHECK(worst < 0.1, "%s: worst relative error %.3g", name, worst);

    /* inference is deterministic and equals embed */
    const float *e1;
    float out[B * 128], out2[B * 128]; /* expect_dim <= 128 */
    siam_model_forward(m, 0, xa, B, 0, &e1, &err);
    size_t n_out = (size_t)B * expect_dim * sizeof(float);
    memcpy(out, e1, n_out);
    CHECK(siam_model_embed(m, xa, B, out2, &err) == SIAM_OK, "embed: %s", err.msg);
    CHECK(memcmp(out, out2, n_out) == 0, "%s: inference forward == embed", name);
    free(g_left);
    free(g_right);
    siam_model_free(m);
}

static void check_bad_spec(const char *spec, const char *needle) {
    siam_model *m = NULL;
    siam_error err = {0};
    int rc = siam_model_create(&m, spec, 1, &err);
    CHECK(rc == SIAM_ERR_ARG && m == NULL, "spec '%s' accepted", spec);
    CHECK(strstr(err.msg, needle) != NULL, "spec '%s': message '%s' lacks '%s'", spec, err.msg,
          needle);
}

/* siam_model_spec_parse: canonical spec and parameter count, without building the model. */
static void check_spec_parse(void) {
    char canon[SIAM_SPEC_MAX];
    size_t n = 0;
    siam_error err = {0};
    CHECK(siam_model_spec_parse("mlp", canon, &n, &err) == SIAM_OK && n == 133504 &&
              strcmp(canon, siam_model_spec_for("mlp")) == 0,
          "mlp: %zu params, '%s'", n, canon);
    CHECK(siam_model_spec_parse(" in=28x28x1  dense4\trelu ", canon, &n, &err) == SIAM_OK &&
              n == 3140 && strcmp(canon, "in=28x28x1 dense4 relu") == 0,
          "extra blanks: %zu params, '%s'", n, canon);
    /* 'same' keeps 4x4: conv 3*3*2*2+2 = 38, dense 4*4*2*3+3 = 99; a 5x5 'same' kernel on a 2x2
     * input is allowed (most taps on the padding) */
    CHECK(siam_model_spec_parse("in=4x4x2 conv3x3x2s dense3", canon, &n, &err) == SIAM_OK &&
              n == 137 && strcmp(canon, "in=4x4x2 conv3x3x2s dense3") == 0,
          "same conv: %zu params, '%s'", n, canon);
    CHECK(siam_model_spec_parse("in=2x2x1 conv5x5x1s", canon, &n, &err) == SIAM_OK && n == 26,
          "same conv wider than its input: %zu params, '%s'", n, err.msg);
    CHECK(siam_model_spec_parse("cnn2", canon, &n, &err) == SIAM_OK && n == 466176 &&
              strcmp(canon, siam_model_spec_for("cnn2")) == 0 && strstr(canon, "conv3x3x32s") &&
              strstr(canon, "l2norm"),
          "cnn2: %zu params, '%s'", n, canon);
    /* mlp2: 784*256+256 + 256*128+128 + 128*64+64 */
    CHECK(siam_model_spec_parse("mlp2", canon, &n, &err) == SIAM_OK && n == 242112 &&
              strcmp(canon, siam_model_spec_for("mlp2")) == 0 && strstr(canon, "l2norm"),
          "mlp2: %zu params, '%s'", n, canon);
    /* l2norm after a conv normalises the whole 2x2x2 item; it has no parameters */
    CHECK(siam_model_spec_parse("in=4x4x2  conv3x3x2 l2norm", canon, &n, &err) == SIAM_OK &&
              n == 38 && strcmp(canon, "in=4x4x2 conv3x3x2 l2norm") == 0,
          "conv then l2norm: %zu params, '%s'", n, canon);
    CHECK(siam_model_spec_parse("in=28x28x1 dense4 l2norm2", canon, &n, &err) == SIAM_ERR_ARG &&
              strstr(err.msg, "l2norm2"),
          "l2norm with a suffix: '%s'", err.msg);
    /* 784 x 10^6 weights: parsed, never allocated */
    CHECK(siam_model_spec_parse("in=28x28x1 dense1000000", NULL, &n, &err) == SIAM_OK &&
              n == 785000000,
          "a large dense layer: %zu params", n);
    CHECK(siam_model_spec_parse("in=28x28x1 dense4 softmax", canon, &n, &err) == SIAM_ERR_ARG &&
              strstr(err.msg, "softmax"),
          "a bad spec: '%s'", err.msg);
}

/* A trailing denseN is linear: its inference output is x . W + b exactly as a loop computes it,
 * negative values kept (no activation hides behind the token). */
static void check_linear_tail(void) {
    siam_model *m = NULL;
    siam_error err = {0};
    CHECK(siam_model_create(&m, "in=2x2x1 dense3 relu dense5", 4, &err) == SIAM_OK, "%s", err.msg);
    if (!m)
        return;
    const float *P = siam_model_params(m), *h_w = P, *h_b = P + 12, *w = P + 15, *b = w + 15;
    const float x[4] = {0.9f, -0.4f, 0.3f, 0.7f};
    const float *y;
    CHECK(siam_model_forward(m, 0, x, 1, 0, &y, &err) == SIAM_OK, "%s", err.msg);
    double hid[3], worst = 0;
    int negative = 0;
    for (int o = 0; o < 3; o++) {
        double s = h_b[o];
        for (int i = 0; i < 4; i++)
            s += (double)x[i] * h_w[i * 3 + o];
        hid[o] = s > 0 ? s : 0;
    }
    for (int o = 0; o < 5; o++) {
        double s = b[o];
        for (int i = 0; i < 3; i++)
            s += hid[i] * w[i * 5 + o];
        worst = fmax(worst, fabs(s - y[o]));
        negative += y[o] < 0;
    }
    CHECK(worst < 1e-6, "trailing dense vs x . W + b: %g", worst);
    CHECK(negative > 0, "a trailing dense5 gave no negative output: an activation after it?");
    siam_model_free(m);
}

/* A model with the newer tokens through a checkpoint: the file's spec rebuilds a model that
 * takes the saved parameters and embeds the same bits as the original. */
static void check_checkpoint_round_trip(const char *spec) {
    siam_model *m = NULL, *m2 = NULL;
    siam_error err = {0};
    siam_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    char path[] = "/tmp/test_model_ckpt_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0)
        return;
    close(fd);
    CHECK(siam_model_create(&m, spec, 5, &err) == SIAM_OK, "%s: %s", spec, err.msg);
    if (!m)
        goto out;
    size_t np = siam_model_num_params(m);
    CHECK(siam_checkpoint_save(path, siam_model_spec(m), 3, 0, siam_model_params(m), np, NULL, 0,
                               &err) == SIAM_OK,
          "save: %s", err.msg);
    CHECK(siam_checkpoint_load(&ck, path, &err) == SIAM_OK, "load: %s", err.msg);
    CHECK(strcmp(ck.spec, siam_model_spec(m)) == 0, "spec kept: '%s'", ck.spec);
    /* another seed, so equal embeddings prove the parameters came from the file */
    CHECK(siam_model_create(&m2, ck.spec, 6, &err) == SIAM_OK, "rebuild '%s': %s", ck.spec,
          err.msg);
    if (!m2)
        goto out;
    CHECK(siam_checkpoint_check(&ck, path, siam_model_spec(m2), siam_model_num_params(m2), &err) ==
              SIAM_OK,
          "check: %s", err.msg);
    memcpy(siam_model_params(m2), ck.params, np * sizeof(float));
    int in = siam_model_input_size(m), dim = siam_model_output_size(m);
    float *x = malloc((size_t)B * in * sizeof *x), *e1 = malloc((size_t)B * dim * sizeof *e1),
          *e2 = malloc((size_t)B * dim * sizeof *e2);
    siam_rng rng;
    siam_rng_seed(&rng, 8);
    for (int i = 0; i < B * in; i++)
        x[i] = siam_rng_uniform(&rng);
    CHECK(siam_model_embed(m, x, B, e1, &err) == SIAM_OK &&
              siam_model_embed(m2, x, B, e2, &err) == 0,
          "embed: %s", err.msg);
    CHECK(memcmp(e1, e2, (size_t)B * dim * sizeof *e1) == 0, "%s: embeddings after the round trip",
          spec);
    free(x), free(e1), free(e2);
out:
    siam_checkpoint_free(&ck);
    siam_model_free(m);
    siam_model_free(m2);
    unlink(path);
}

int main(void) {
    tu_trap_fp();
    /* mlp: 784*128+128 + 2*(128*128+128) = 133,504 (the reference notebook's summary) */
    check_model("mlp", 133504, 133504, 128);
    /* cnn: conv 3*3*1*32+32 = 320, bn 2*32 (+64 running), conv 3*3*32*64+64 = 18,496,
     * bn 2*64 (+128 running), dense 5*5*64*128+128 = 204,928 */
    check_model("cnn", 223936 + 192, 223936, 128);
    /* a linear embedding, unit length: 784*128+128 + 128*64+64 = 108,736; l2norm has none */
    check_model("in=28x28x1 dense128 relu dense64 l2norm", 108736, 108736, 64);
    /* cnn2: conv 3*3*1*32+32 = 320, bn 64 (+64), conv 3*3*32*64+64 = 18,496, bn 128 (+128),
     * conv 3*3*64*64+64 = 36,928, bn 128 (+128), dense 7*7*64*128+128 = 401,536,
     * dense 128*64+64 = 8,256. Checked here in its layout with elu for relu: cnn2's own relus
     * follow batchnorm, which centres their inputs on the kink, so a finite step crosses it for ~1%
     * of the parameters (worst 0.2, measured) and the check would test the steps rather than the
     * gradient; elu is smooth, the padded convs, batchnorms, pools and l2norm are the same layers.
     * cnn2 itself: its count in check_spec_parse, its checkpoint round trip below. */
    check_model("in=28x28x1 conv3x3x32s batchnorm elu maxpool2 conv3x3x64s batchnorm elu maxpool2 "
                "conv3x3x64s batchnorm elu flatten dense128 elu dense64 l2norm",
                465856 + 320, 465856, 64);
    check_bad_spec("resnet", "mlp, mlp2, cnn");
    check_bad_spec("in=28x28x1 dense128 softmax", "softmax");
    check_bad_spec("in=28x28x1 dropout1.5", "dropout1.5");
    check_bad_spec("in=4x4x1 conv5x5x2", "at least 5x5");
    check_bad_spec("in=4x4x1 conv2x2x2s", "odd kernel");
    check_bad_spec("in=4x4x1 conv3x3x2x", "conv3x3x2x");
    check_bad_spec("in=4x4x1 conv3x3x2ss", "conv3x3x2ss");
    check_bad_spec("in=28x28", "input shape");
    check_bad_spec("in=28x28x1", "no layers");
    /* shapes whose floats per item do not fit an int (signed overflow before, found by probing
     * the specs that fuzz_sync feeds the server's first join) */
    check_bad_spec("in=2000x2000x1000 dense2", "more than");
    check_bad_spec("in=2048x1024x1024 flatten dense1", "more than");
    check_bad_spec("in=65536x65536x1 relu", "more than");
    check_bad_spec("in=1024x1024x1 conv1x1x4096", "an output of 1024x1024x4096");
    check_spec_parse();
    check_linear_tail();
    check_checkpoint_round_trip("in=28x28x1 dense128 relu dense64 l2norm");
    check_checkpoint_round_trip("cnn2");
    return tu_finish();
}
