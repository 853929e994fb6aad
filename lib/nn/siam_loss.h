/* siam_loss: Euclidean distance and the contrastive loss with its gradients (the server's loss
 * head). Pure functions: no allocation, no state. */
#ifndef SIAM_LOSS_H
#define SIAM_LOSS_H

#include <stddef.h>
#include <stdint.h>

/* Which pairs label 1 marks. SIMILAR is the original project's default (y = 1 same class). */
typedef enum { SIAM_LABELS_SIMILAR = 0, SIAM_LABELS_DISSIMILAR = 1 } siam_label_convention;

/* Added under the square root in gradients so D = 0 is safe. */
#define SIAM_LOSS_EPS 1e-12f

/* D = sqrt(sum_k (a_k - b_k)^2) over dim elements. */
float siam_distance(const float *a, const float *b, int dim);

/* a, b (B,dim); labels (B) in {0,1}; dist (B) out.
 * Returns L = (1/B) sum_i [ s_i D_i^2 + (1 - s_i) max(m - D_i, 0)^2 ], with s_i = y_i under
 * SIMILAR and 1 - y_i under DISSIMILAR. */
float siam_contrastive_forward(float *dist, const float *a, const float *b, const uint32_t *labels,
                               int B, int dim, float margin, siam_label_convention conv);

/* grad_a, grad_b (B,dim) are overwritten with dL/da and dL/db of the mean loss:
 * dL/da_i = (1/B) [ 2 s_i - 2 (1 - s_i) max(m - D_i, 0) / sqrt(D_i^2 + eps) ] (a_i - b_i),
 * dL/db_i = -dL/da_i. dist is the output of siam_contrastive_forward. */
void siam_contrastive_backward(float *grad_a, float *grad_b, const float *a, const float *b,
                               const float *dist, const uint32_t *labels, int B, int dim,
                               float margin, siam_label_convention conv);

/* Mean contrastive loss of n pairs from their distances alone (labels uint8, as in siam_pairs):
 * the value siam_contrastive_forward returns for the same pairs. 0 when n == 0. */
double siam_contrastive_from_distances(const float *dist, const uint8_t *labels, size_t n,
                                       float margin, siam_label_convention conv);

/* Similarity score in [0,1] from a distance: 1 at D = 0, 0.5 at D = threshold, falling with D:
 * score = 1 / (1 + (D / threshold)^2). threshold > 0. */
float siam_score(float dist, float threshold);

#endif
