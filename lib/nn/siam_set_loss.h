/* siam_set_loss: losses over a set of n embeddings with a group id each, mining the pairs or
 * triplets inside the set (the TrainSet loss head of siam-server, and siam-train's --head set).
 *
 * Definitions followed (docs/DESIGN.md "Set losses"): the reference project 001 (FaceNet-style
 * triplet training) cites omoindrot/tensorflow-triplet-loss for mining; batch-all and batch-hard
 * follow that repository's model/triplet_loss.py, semi-hard follows the TensorFlow Addons
 * triplet_semihard_loss (the FaceNet selection it implements), and the hinge on squared
 * Euclidean distance is reference 004's L(A,P,N) = max(||A-P||^2 - ||A-N||^2 + margin, 0).
 *
 * Memory: two n x n float matrices (distances and per-pair coefficients) are allocated per call,
 * so n is capped at SIAM_SET_LOSS_MAX_N (2 x 4096^2 x 4 bytes = 128 MiB). Time is O(n^2 dim) for
 * distances and gradients, plus O(n^3) for batch-all and semi-hard mining.
 *
 * Embeddings must be finite: checking them is the caller's job (the RPC layer already rejects
 * NaN/Inf); a non-finite input gives a non-finite loss. */
#ifndef SIAM_SET_LOSS_H
#define SIAM_SET_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "siam_error.h"

/* Largest set accepted: bounds the O(n^2) workspace (see above). */
#define SIAM_SET_LOSS_MAX_N 4096

typedef enum {
    SIAM_SET_CONTRASTIVE = 0, /* all in-batch pairs, positives and negatives weighted half each */
    SIAM_SET_BATCH_ALL = 1,   /* all valid triplets, mean over the active ones */
    SIAM_SET_BATCH_HARD = 2,  /* per anchor: hardest positive, hardest negative */
    SIAM_SET_SEMI_HARD = 3,   /* per (anchor, positive): the FaceNet semi-hard negative */
    /* Not a mining of its own but the FaceNet seed's schedule of two: semi-hard while the
     * training's progress is below hard_after, batch-hard from it on. siam_set_loss_at resolves
     * it to one of the two for a given progress; siam_set_loss itself refuses it. */
    SIAM_SET_FACENET = 4,
} siam_set_mode;

typedef enum {
    SIAM_SET_EUCLIDEAN = 0, /* d = ||a - b||; at d = 0 the subgradient used is 0 */
    SIAM_SET_SQUARED = 1,   /* d = ||a - b||^2 (reference 004's distance) */
} siam_set_distance;

typedef struct {
    siam_set_mode mode;
    siam_set_distance distance;
    float margin;     /* m >= 0; unused by the soft-margin triplet */
    int soft;         /* 1: log(1 + exp(d_ap - d_an)) instead of the hinge; batch-hard only */
    float hard_after; /* facenet: the fraction of training, in [0, 1], from which batch-hard
                       * replaces semi-hard (default 0.4: the seed's first 40 % semi-hard) */
} siam_set_loss_config;

/* What the mining saw. "Pairs" are unordered (i < j). "Terms" are what the mode sums:
 * contrastive pairs, batch-all triplets (a,p,n), batch-hard anchors, semi-hard ordered (a,p). */
typedef struct {
    int64_t pos_pairs;  /* pairs with equal group ids */
    int64_t neg_pairs;  /* pairs with different group ids */
    int64_t triplets;   /* valid triplets (a,p,n): a != p, same group; n in another group */
    int64_t terms;      /* terms the mode considered (see above) */
    int64_t active;     /* terms with a nonzero loss */
    double frac_active; /* active / terms; 0 when there are no terms */
    double hardest_pos; /* mean over anchors with a positive and a negative of max_p d_ap */
    double hardest_neg; /* the same anchors' mean of min_n d_an */
    double mean_norm;   /* mean L2 norm of the embeddings */
    int degenerate;     /* 1: no positive pair or no negative pair, so no term exists; the loss
                         * and every gradient are then exactly 0 */
} siam_set_loss_stats;

/* Defaults: batch-hard, Euclidean, margin 1 (the reference project 001's margin), hinge;
 * hard_after 0.4 (used by facenet only). */
siam_set_loss_config siam_set_loss_default(void);

/* Parses "contrastive", "batch-all", "batch-hard", "semi-hard", "batch-hard-soft" or "facenet"
 * into cfg->mode and cfg->soft (distance, margin and hard_after untouched). SIAM_ERR_ARG naming
 * the choices. */
int siam_set_loss_parse(siam_set_loss_config *cfg, const char *name, siam_error *err);

/* Canonical name of cfg's mode and soft flag (one of the names parse accepts), or "invalid". */
const char *siam_set_loss_name(const siam_set_loss_config *cfg);

/* Choices for messages and --help: "contrastive, batch-all, batch-hard, semi-hard,
 * batch-hard-soft, facenet" */
const char *siam_set_loss_choices(void);

/* The loss in effect at training progress p (the fraction of training done, 0..1): for facenet,
 * cfg with mode semi-hard when p < hard_after and batch-hard when p >= hard_after (the
 * comparison is in float, so p = 0.4 and hard_after 0.4 switch together); any other mode is
 * returned unchanged. Pure; a NaN p counts as not below hard_after (callers validate p). */
siam_set_loss_config siam_set_loss_at(const siam_set_loss_config *cfg, float p);

/* Loss over x (n x dim, row-major) with group ids ids (n). *loss receives the loss; grad (n x dim)
 * is overwritten (not accumulated) with dL/dx; stats may be NULL. A degenerate set (see stats)
 * is not an error. SIAM_ERR_ARG for n < 2, n > SIAM_SET_LOSS_MAX_N, dim < 1, a negative or
 * non-finite margin, soft with a mode other than batch-hard, facenet (resolve it with
 * siam_set_loss_at first), an unknown mode or distance;
 * SIAM_ERR_NOMEM when the workspace cannot be allocated. On error *loss and grad are untouched. */
int siam_set_loss(float *loss, float *grad, siam_set_loss_stats *stats, const float *x,
                  const uint32_t *ids, int n, int dim, const siam_set_loss_config *cfg,
                  siam_error *err);

/* Pairwise distance matrix D (n x n) as siam_set_loss computes it: squared distances from the
 * Gram matrix (one sgemm), clamped at 0, exact 0 on the diagonal, square-rooted for EUCLIDEAN.
 * Exposed for the tests, which compare it with plain loops. */
void siam_set_loss_distances(float *D, const float *x, int n, int dim, siam_set_distance distance);

#endif
