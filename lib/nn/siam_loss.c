/* siam_loss: distance, contrastive loss and gradients, in both label conventions. */
#include "siam_loss.h"

#include <math.h>
#include <stddef.h>

float siam_distance(const float *a, const float *b, int dim) {
    double acc = 0.0;
    for (int k = 0; k < dim; k++) {
        double d = (double)a[k] - b[k];
        acc += d * d;
    }
    return (float)sqrt(acc);
}

/* s = 1 when the pair is "similar" under the convention in force */
static float similar(uint32_t y, siam_label_convention conv) {
    return conv == SIAM_LABELS_DISSIMILAR ? (float)(1u - y) : (float)y;
}

/* one pair's term: s D^2 + (1 - s) max(m - D, 0)^2 */
static double pair_term(float d, float s, float margin) {
    double hinge = margin - d > 0.0f ? (double)margin - d : 0.0;
    return s * (double)d * d + (1.0 - s) * hinge * hinge;
}

float siam_contrastive_forward(float *dist, const float *a, const float *b, const uint32_t *labels,
                               int B, int dim, float margin, siam_label_convention conv) {
    double total = 0.0;
    for (int i = 0; i < B; i++) {
        float d = siam_distance(a + (size_t)i * dim, b + (size_t)i * dim, dim);
        dist[i] = d;
        total += pair_term(d, similar(labels[i], conv), margin);
    }
    return B > 0 ? (float)(total / B) : 0.0f;
}

void siam_contrastive_backward(float *grad_a, float *grad_b, const float *a, const float *b,
                               const float *dist, const uint32_t *labels, int B, int dim,
                               float margin, siam_label_convention conv) {
    for (int i = 0; i < B; i++) {
        float s = similar(labels[i], conv);
        float d = dist[i];
        float hinge = margin - d > 0.0f ? margin - d : 0.0f;
        /* coefficient c such that dL/da_i = c (a_i - b_i) */
        float c = 2.0f * s;
        if (s < 1.0f && hinge > 0.0f)
            c -= 2.0f * (1.0f - s) * hinge / sqrtf(d * d + SIAM_LOSS_EPS);
        c /= (float)B;
        const float *ai = a + (size_t)i * dim, *bi = b + (size_t)i * dim;
        float *ga = grad_a + (size_t)i * dim, *gb = grad_b + (size_t)i * dim;
        for (int k = 0; k < dim; k++) {
            float g = c * (ai[k] - bi[k]);
            ga[k] = g;
            gb[k] = -g;
        }
    }
}

double siam_contrastive_from_distances(const float *dist, const uint8_t *labels, size_t n,
                                       float margin, siam_label_convention conv) {
    double total = 0.0;
    for (size_t i = 0; i < n; i++)
        total += pair_term(dist[i], similar(labels[i], conv), margin);
    return n ? total / (double)n : 0.0;
}

float siam_score(float dist, float threshold) {
    float r = dist / threshold;
    return 1.0f / (1.0f + r * r);
}
