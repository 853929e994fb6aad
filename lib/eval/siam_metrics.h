/* siam_metrics: how well distances separate same-class from different-class pairs. */
#ifndef SIAM_METRICS_H
#define SIAM_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "siam_error.h"

/* In every function: dist (n) are pair distances, labels (n) are non-zero for same-class, 0
 * otherwise. A pair is predicted "same" when dist <= threshold. A NaN distance is refused
 * (SIAM_ERR_ARG naming its index) by the functions that return an error code. */

/* Fraction of pairs predicted correctly at threshold. 0 when n == 0. */
double siam_metrics_accuracy(const float *dist, const uint8_t *labels, size_t n, float threshold);

/* The threshold that maximises accuracy on these pairs (the midpoint between the two sorted
 * distances it falls between; ties are never split; the smallest such threshold wins), and that
 * accuracy. SIAM_ERR_ARG when n == 0. */
int siam_metrics_best_threshold(const float *dist, const uint8_t *labels, size_t n,
                                float *threshold, double *accuracy, siam_error *err);

/* Area under the ROC curve with score = -dist: P(dist_pos < dist_neg) + 0.5 P(equal).
 * SIAM_ERR_ARG when there is no positive or no negative pair. */
int siam_metrics_roc_auc(const float *dist, const uint8_t *labels, size_t n, double *auc,
                         siam_error *err);

/* FaceNet's VAL at a target FAR: the largest threshold t with FAR(t) = #neg(dist<=t)/#neg <=
 * far_target; VAL = #pos(dist<=t)/#pos. Reports t, VAL and the FAR achieved. */
int siam_metrics_val_at_far(const float *dist, const uint8_t *labels, size_t n, double far_target,
                            float *threshold, double *val, double *far, siam_error *err);

typedef struct {
    size_t n_pos, n_neg;
    double pos_mean, pos_std; /* population std of positive-pair distances */
    double neg_mean, neg_std;
} siam_distance_stats;

void siam_metrics_distance_stats(const float *dist, const uint8_t *labels, size_t n,
                                 siam_distance_stats *out);

/* Everything above in one report; needs at least one positive and one negative pair. */
typedef struct {
    size_t n;
    float threshold; /* the fixed threshold (m/2) accuracy is reported at */
    double accuracy; /* at threshold */
    float best_threshold;
    double best_accuracy;
    double auc;
    float val_threshold;
    double val, far; /* VAL at FAR <= 1e-3 */
    siam_distance_stats stats;
} siam_pair_report;

int siam_metrics_report(const float *dist, const uint8_t *labels, size_t n, float threshold,
                        siam_pair_report *out, siam_error *err);

#endif
