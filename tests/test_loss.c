/* test_loss: the contrastive loss by hand and its gradients by central finite differences. */
#include "test_util.h"

#include <string.h>

#include "siam_loss.h"
#include "siam_rng.h"

static void check_gradients(const char *what, float *a, float *b, const uint32_t *y, int B, int dim,
                            float m, siam_label_convention conv) {
    float dist[16], ga[16 * 8], gb[16 * 8];
    siam_contrastive_forward(dist, a, b, y, B, dim, m, conv);
    siam_contrastive_backward(ga, gb, a, b, dist, y, B, dim, m, conv);
    double worst = 0;
    const double h = 1e-3;
    for (int side = 0; side < 2; side++) {
        float *v = side ? b : a, *g = side ? gb : ga;
        for (int k = 0; k < B * dim; k++) {
            float keep = v[k];
            v[k] = keep + (float)h;
            double lp = tu_contrastive_ref(a, b, y, B, dim, m, conv == SIAM_LABELS_SIMILAR);
            v[k] = keep - (float)h;
            double lm = tu_contrastive_ref(a, b, y, B, dim, m, conv == SIAM_LABELS_SIMILAR);
            v[k] = keep;
            double num = (lp - lm) / (2 * h);
            double e = tu_rel_err(g[k], num, 1e-3);
            if (e > worst)
                worst = e;
        }
    }
    CHECK(worst < 1e-3, "%s: worst relative gradient error %.3g", what, worst);
}

int main(void) {
    tu_trap_fp();
    /* the reference notebook's check: y = 1, D = 0.5 gives 0.25 */
    {
        float a[1] = {0.5f}, b[1] = {0.0f}, d;
        uint32_t y = 1;
        float l = siam_contrastive_forward(&d, a, b, &y, 1, 1, 1.0f, SIAM_LABELS_SIMILAR);
        CHECK_NEAR(d, 0.5, 1e-7, "distance");
        CHECK_NEAR(l, 0.25, 1e-7, "loss y=1 D=0.5");
        y = 0; /* negative at D = 0.5: (1 - 0.5)^2 */
        l = siam_contrastive_forward(&d, a, b, &y, 1, 1, 1.0f, SIAM_LABELS_SIMILAR);
        CHECK_NEAR(l, 0.25, 1e-7, "loss y=0 D=0.5");
        /* dissimilar convention: y = 1 now means different, so the hinge applies */
        y = 1;
        l = siam_contrastive_forward(&d, a, b, &y, 1, 1, 1.0f, SIAM_LABELS_DISSIMILAR);
        CHECK_NEAR(l, 0.25, 1e-7, "loss dissimilar y=1 D=0.5");
        a[0] = 2.0f; /* D = 2 > m: a different pair costs nothing */
        l = siam_contrastive_forward(&d, a, b, &y, 1, 1, 1.0f, SIAM_LABELS_DISSIMILAR);
        CHECK_NEAR(l, 0.0, 0, "loss dissimilar y=1 D=2");
        y = 0;
        l = siam_contrastive_forward(&d, a, b, &y, 1, 1, 1.0f, SIAM_LABELS_DISSIMILAR);
        CHECK_NEAR(l, 4.0, 1e-6, "loss dissimilar y=0 D=2 (similar pair pulled together)");
    }
    /* distance of 8-dim vectors of 0.9 and 0.8 is sqrt(0.08) */
    {
        float a[8], b[8];
        for (int k = 0; k < 8; k++)
            a[k] = 0.9f, b[k] = 0.8f;
        CHECK_NEAR(siam_distance(a, b, 8), sqrt(0.08), 1e-6, "distance 0.9 vs 0.8");
    }
    /* a batch by hand: mean of 0.25 (y=1, D=.5), 0.0 (y=0, D=2) and 1.0 (y=0, D=0) */
    {
        float a[3] = {0.5f, 2.0f, 0.3f}, b[3] = {0.0f, 0.0f, 0.3f}, d[3];
        uint32_t y[3] = {1, 0, 0};
        float l = siam_contrastive_forward(d, a, b, y, 3, 1, 1.0f, SIAM_LABELS_SIMILAR);
        CHECK_NEAR(l, 1.25 / 3, 1e-7, "batch mean");
        /* D = 0 on a negative pair: gradient is finite (eps under the root), no NaN */
        float ga[3], gb[3];
        siam_contrastive_backward(ga, gb, a, b, d, y, 3, 1, 1.0f, SIAM_LABELS_SIMILAR);
        CHECK(isfinite(ga[2]) && isfinite(gb[2]), "gradient at D = 0 is %g", ga[2]);
        CHECK_NEAR(ga[0], 2.0 * 0.5 / 3, 1e-7, "dL/da for y=1: 2 (a-b) / B");
        CHECK_NEAR(ga[1], 0.0, 0, "no gradient beyond the margin");
        CHECK_NEAR(gb[0], -ga[0], 0, "dL/db = -dL/da");
    }
    /* score: 1 at D = 0, 0.5 at the threshold, falling */
    CHECK_NEAR(siam_score(0.0f, 0.5f), 1.0, 0, "score at 0");
    CHECK_NEAR(siam_score(0.5f, 0.5f), 0.5, 1e-7, "score at threshold");
    CHECK(siam_score(1.0f, 0.5f) < siam_score(0.7f, 0.5f), "score falls with distance");
    /* loss from distances matches the forward */
    {
        float a[2] = {0.3f, 1.5f}, b[2] = {0.0f, 0.0f}, d[2];
        uint32_t y[2] = {0, 1};
        uint8_t y8[2] = {0, 1};
        float l = siam_contrastive_forward(d, a, b, y, 2, 1, 1.0f, SIAM_LABELS_SIMILAR);
        CHECK_NEAR(siam_contrastive_from_distances(d, y8, 2, 1.0f, SIAM_LABELS_SIMILAR), l, 1e-7,
                   "loss from distances");
    }
    /* gradients against finite differences: random batches in both conventions, pairs on both
     * sides of the margin */
    siam_rng rng;
    siam_rng_seed(&rng, 7);
    for (int conv = 0; conv < 2; conv++) {
        for (int trial = 0; trial < 4; trial++) {
            enum { B = 6, DIM = 8 };
            float a[B * DIM], b[B * DIM];
            uint32_t y[B];
            float scale = 0.05f + 0.15f * (float)trial; /* D from ~0.2 to ~1.7 */
            for (int i = 0; i < B * DIM; i++) {
                a[i] = (siam_rng_uniform(&rng) - 0.5f) * 2 * scale;
                b[i] = (siam_rng_uniform(&rng) - 0.5f) * 2 * scale;
            }
            for (int i = 0; i < B; i++)
                y[i] = (uint32_t)(i & 1);
            char what[64];
            snprintf(what, sizeof what, "conv %d scale %.2f", conv, (double)scale);
            check_gradients(what, a, b, y, B, DIM, 1.0f, (siam_label_convention)conv);
        }
    }
    /* the edge cases by finite differences: D = 0 (identical embeddings, both labels: the
     * gradient is 0 and finite) and D > m (a different pair beyond the margin costs nothing) */
    for (int conv = 0; conv < 2; conv++) {
        enum { B = 4, DIM = 8 };
        float a[B * DIM], b[B * DIM];
        uint32_t y[B] = {1, 0, 1, 0};
        for (int k = 0; k < DIM; k++) {
            a[0 * DIM + k] = b[0 * DIM + k] = 0.3f * (float)k; /* D = 0, y = 1 */
            a[1 * DIM + k] = b[1 * DIM + k] = -0.2f;           /* D = 0, y = 0 */
            a[2 * DIM + k] = 1.0f, b[2 * DIM + k] = 0.0f;      /* D = sqrt(8) > m, y = 1 */
            a[3 * DIM + k] = 0.0f, b[3 * DIM + k] = 0.75f;     /* D ~ 2.12 > m, y = 0 */
        }
        char what[64];
        snprintf(what, sizeof what, "D = 0 and D > m, convention %d", conv);
        check_gradients(what, a, b, y, B, DIM, 1.0f, (siam_label_convention)conv);
    }
    return tu_finish();
}
