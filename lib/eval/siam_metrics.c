/* siam_metrics: accuracy, best threshold, ROC AUC, VAL at FAR and distance statistics. */
#include "siam_metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* One pair reduced to what the sorted metrics need. */
typedef struct {
    float d;   /* distance */
    uint8_t y; /* 1 same-class, 0 different */
} pair_item;

/* Pairs sorted by distance, split into runs of equal distance ("groups"): every threshold
 * either admits a whole group or none of it, so the sweeps below work group by group. */
typedef struct {
    pair_item *v; /* (n) sorted ascending by d */
    size_t n;
    size_t n_pos, n_neg;
} sorted_pairs;

static int cmp_item(const void *a, const void *b) {
    float x = ((const pair_item *)a)->d, y = ((const pair_item *)b)->d;
    return (x > y) - (x < y);
}

/* Copies and sorts the pairs; NaN distances are refused because they have no order. */
static int sorted_pairs_init(sorted_pairs *sp, const float *dist, const uint8_t *labels, size_t n,
                             const char *who, siam_error *err) {
    sp->v = NULL;
    sp->n = n;
    sp->n_pos = sp->n_neg = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(dist[i]))
            return siam_error_set(err, SIAM_ERR_ARG, "%s: dist[%zu] is NaN", who, i);
        if (labels[i])
            sp->n_pos++;
        else
            sp->n_neg++;
    }
    if (n == 0)
        return SIAM_OK;
    if (n > SIZE_MAX / sizeof *sp->v)
        return siam_error_set(err, SIAM_ERR_NOMEM, "%s: %zu pairs is too many", who, n);
    sp->v = malloc(n * sizeof *sp->v);
    if (!sp->v)
        return siam_error_set(err, SIAM_ERR_NOMEM, "%s: out of memory sorting %zu pairs", who, n);
    for (size_t i = 0; i < n; i++) {
        sp->v[i].d = dist[i];
        sp->v[i].y = labels[i] != 0;
    }
    qsort(sp->v, n, sizeof *sp->v, cmp_item);
    return SIAM_OK;
}

static void sorted_pairs_free(sorted_pairs *sp) {
    free(sp->v);
    sp->v = NULL;
}

/* The group starting at index i ends before the returned index; counts its labels. */
static size_t group_end(const sorted_pairs *sp, size_t i, size_t *pos, size_t *neg) {
    size_t j = i;
    *pos = *neg = 0;
    while (j < sp->n && sp->v[j].d == sp->v[i].d) {
        if (sp->v[j].y)
            (*pos)++;
        else
            (*neg)++;
        j++;
    }
    return j;
}

double siam_metrics_accuracy(const float *dist, const uint8_t *labels, size_t n, float threshold) {
    if (n == 0)
        return 0.0;
    size_t correct = 0;
    for (size_t i = 0; i < n; i++) {
        int same = dist[i] <= threshold;
        correct += same == (labels[i] != 0);
    }
    return (double)correct / (double)n;
}

/* A float threshold that admits distances <= lo and refuses distances >= hi (lo < hi): the
 * midpoint, unless rounding to float lands it on hi (adjacent floats), then lo itself. */
static float split_between(float lo, float hi) {
    float t = (float)(0.5 * (double)lo + 0.5 * (double)hi);
    if (!(t < hi) || !(t >= lo))
        t = lo;
    return t;
}

int siam_metrics_best_threshold(const float *dist, const uint8_t *labels, size_t n,
                                float *threshold, double *accuracy, siam_error *err) {
    if (n == 0)
        return siam_error_set(err, SIAM_ERR_ARG, "best threshold: no pairs");
    sorted_pairs sp;
    int rc = sorted_pairs_init(&sp, dist, labels, n, "best threshold", err);
    if (rc)
        return rc;

    /* Below every distance all pairs are "different": the negatives are right. Each group
     * the threshold passes turns its positives right and its negatives wrong. */
    size_t correct = sp.n_neg, best = correct;
    float best_t = nextafterf(sp.v[0].d, -INFINITY);
    int have_best = sp.v[0].d != -INFINITY; /* nothing lies below -inf */
    for (size_t i = 0; i < n;) {
        size_t pos, neg;
        size_t j = group_end(&sp, i, &pos, &neg);
        correct = correct + pos - neg;
        /* threshold between this group and the next one, or at the last distance */
        float t = j < n ? split_between(sp.v[i].d, sp.v[j].d) : sp.v[i].d;
        if (!have_best || correct > best) {
            best = correct;
            best_t = t;
            have_best = 1;
        }
        i = j;
    }
    sorted_pairs_free(&sp);
    *threshold = best_t;
    *accuracy = (double)best / (double)n;
    return SIAM_OK;
}

/* sorted_pairs_init for the measures that compare positives with negatives: refuses a set
 * without both. */
static int sorted_pairs_init_both(sorted_pairs *sp, const float *dist, const uint8_t *labels,
                                  size_t n, const char *who, siam_error *err) {
    int rc = sorted_pairs_init(sp, dist, labels, n, who, err);
    if (rc)
        return rc;
    if (sp->n_pos == 0 || sp->n_neg == 0) {
        size_t pos = sp->n_pos, neg = sp->n_neg;
        sorted_pairs_free(sp);
        return siam_error_set(err, SIAM_ERR_ARG,
                              "%s: needs both classes, got %zu positive and %zu negative pairs",
                              who, pos, neg);
    }
    return SIAM_OK;
}

int siam_metrics_roc_auc(const float *dist, const uint8_t *labels, size_t n, double *auc,
                         siam_error *err) {
    sorted_pairs sp;
    int rc = sorted_pairs_init_both(&sp, dist, labels, n, "ROC AUC", err);
    if (rc)
        return rc;
    /* Twice the number of (pos, neg) pairs with dist_pos < dist_neg, plus once those equal:
     * integers, so the result is exact until the final division. */
    uint64_t twice_wins = 0;
    size_t neg_seen = 0;
    for (size_t i = 0; i < n;) {
        size_t pos, neg;
        size_t j = group_end(&sp, i, &pos, &neg);
        size_t neg_above = sp.n_neg - neg_seen - neg;
        twice_wins += 2 * (uint64_t)pos * neg_above + (uint64_t)pos * neg;
        neg_seen += neg;
        i = j;
    }
    *auc = (double)twice_wins / (2.0 * (double)sp.n_pos * (double)sp.n_neg);
    sorted_pairs_free(&sp);
    return SIAM_OK;
}

int siam_metrics_val_at_far(const float *dist, const uint8_t *labels, size_t n, double far_target,
                            float *threshold, double *val, double *far, siam_error *err) {
    if (isnan(far_target) || far_target < 0.0 || far_target > 1.0) /* isnan: quiet */
        return siam_error_set(err, SIAM_ERR_ARG, "VAL at FAR: target FAR %g is not in [0, 1]",
                              far_target);
    sorted_pairs sp;
    int rc = sorted_pairs_init_both(&sp, dist, labels, n, "VAL at FAR", err);
    if (rc)
        return rc;
    /* FAR(t) only steps up at negative distances; admit whole groups while it stays within
     * the target. The first group that would exceed it bounds t from above (strictly). */
    size_t pos_le = 0, neg_le = 0;
    float t = sp.v[n - 1].d;
    for (size_t i = 0; i < n;) {
        size_t pos, neg;
        size_t j = group_end(&sp, i, &pos, &neg);
        if ((double)(neg_le + neg) / (double)sp.n_neg > far_target) {
            t = nextafterf(sp.v[i].d, -INFINITY); /* the largest float below this group */
            break;
        }
        pos_le += pos;
        neg_le += neg;
        i = j;
    }
    *threshold = t;
    *val = (double)pos_le / (double)sp.n_pos;
    *far = (double)neg_le / (double)sp.n_neg;
    sorted_pairs_free(&sp);
    return SIAM_OK;
}

/* Mean and population std of the distances whose label is `want`; two passes for accuracy. */
static void class_stats(const float *dist, const uint8_t *labels, size_t n, int want, size_t *count,
                        double *mean, double *std) {
    size_t c = 0;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        if ((labels[i] != 0) == want) {
            sum += dist[i];
            c++;
        }
    *count = c;
    *mean = *std = 0.0;
    if (c == 0)
        return;
    double m = sum / (double)c, ss = 0.0;
    for (size_t i = 0; i < n; i++)
        if ((labels[i] != 0) == want) {
            double dev = dist[i] - m;
            ss += dev * dev;
        }
    *mean = m;
    *std = sqrt(ss / (double)c);
}

void siam_metrics_distance_stats(const float *dist, const uint8_t *labels, size_t n,
                                 siam_distance_stats *out) {
    class_stats(dist, labels, n, 1, &out->n_pos, &out->pos_mean, &out->pos_std);
    class_stats(dist, labels, n, 0, &out->n_neg, &out->neg_mean, &out->neg_std);
}

int siam_metrics_report(const float *dist, const uint8_t *labels, size_t n, float threshold,
                        siam_pair_report *out, siam_error *err) {
    int rc;
    out->n = n;
    out->threshold = threshold;
    out->accuracy = siam_metrics_accuracy(dist, labels, n, threshold);
    if ((rc = siam_metrics_best_threshold(dist, labels, n, &out->best_threshold,
                                          &out->best_accuracy, err)))
        return rc;
    if ((rc = siam_metrics_roc_auc(dist, labels, n, &out->auc, err)))
        return rc;
    if ((rc = siam_metrics_val_at_far(dist, labels, n, 1e-3, &out->val_threshold, &out->val,
                                      &out->far, err)))
        return rc;
    siam_metrics_distance_stats(dist, labels, n, &out->stats);
    return SIAM_OK;
}
