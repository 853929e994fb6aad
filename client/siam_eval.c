/* siam_eval: `siam-client evaluate` (pair metrics, VAL at FAR on sampled pairs, kNN accuracy and
 * test-set retrieval of a checkpoint, plot data and the PCA map); `siam-client predict` is
 * siam_predict.c. */
#include "siam_eval.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "siam_atomic.h"
#include "siam_cli_common.h"
#include "siam_dataset.h"
#include "siam_knn.h"
#include "siam_log.h"
#include "siam_loss.h"
#include "siam_metrics.h"
#include "siam_model.h"
#include "siam_options.h"
#include "siam_pairs.h"
#include "siam_pca.h"
#include "siam_recipe.h"
#include "siam_retrieval.h"
#include "siam_rng.h"
#include "siam_tensor.h"
#include "siam_val.h"

#define COMPONENT "eval"
#define EVAL_PROG "siam-client evaluate"
#define IMG_W     SIAM_CLI_IMAGE_W
#define IMG_H     SIAM_CLI_IMAGE_H
#define IMG_N     SIAM_CLI_IMAGE_FLOATS
/* predictions.tsv: up to this many pairs of each kind (right same, right different, wrong
 * same, wrong different), topped up with right ones to PRED_MAX */
#define PRED_PER_KIND 6
#define PRED_MAX      24

/* Creates dir if it does not exist (one level). */
static int ensure_dir(const char *dir, siam_error *err) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return SIAM_OK;
        return siam_error_set(err, SIAM_ERR_IO, "--plots-dir %s exists and is not a directory",
                              dir);
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return siam_error_set(err, SIAM_ERR_IO, "cannot create --plots-dir %s (%s)", dir,
                              strerror(errno));
    return SIAM_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* evaluate                                                                                    */

typedef struct {
    const char *checkpoint, *data, *plots_dir, *log_level, *knn_predictions;
    float margin;
    uint64_t test_limit, train_limit, seed, val_pairs;
    int json, threads, no_pixel_knn, knn_k;
} eval_config;

typedef struct {
    uint64_t step;
    size_t n_train, n_test, n_train_pairs;
    siam_pair_report rep; /* its VAL fields are unused: VAL comes from val */
    siam_val_report val; /* VAL at FAR 1e-3: threshold from training pairs, figures on test pairs */
    float train_best;
    double train_best_acc, test_at_best, test_loss;
    double knn, pixel_knn; /* pixel_knn < 0: skipped */
    /* test -> test leave-one-out retrieval; pixel_ret.n == 0: skipped with the pixel kNN */
    siam_retrieval ret, pixel_ret;
    double t_load, t_embed, t_val, t_knn, t_pixel_knn, t_retrieval, t_total;
} eval_result;

/* One memstream-built file written atomically to dir/name. */
typedef struct {
    FILE *f;
    char *buf;
    size_t len;
} mem_file;

static int mem_open(mem_file *m, siam_error *err) {
    m->buf = NULL;
    m->len = 0;
    m->f = open_memstream(&m->buf, &m->len);
    return m->f ? SIAM_OK : siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
}

static int mem_commit(mem_file *m, const char *dir, const char *name, siam_error *err) {
    char path[4096];
    int rc;
    fclose(m->f);
    m->f = NULL;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        rc = siam_error_set(err, SIAM_ERR_ARG, "--plots-dir %s: path too long", dir);
    else
        rc = siam_atomic_write(path, m->buf, m->len, err);
    free(m->buf);
    m->buf = NULL;
    return rc;
}

static void mem_drop(mem_file *m) {
    if (m->f)
        fclose(m->f);
    free(m->buf);
    m->f = NULL;
    m->buf = NULL;
}

/* The pairs shown in predictions.png: up to PRED_PER_KIND of each kind in a seeded random order
 * (right "same", right "different", wrong "same", wrong "different"), then more right ones.
 * Returns how many it chose, SIZE_MAX when out of memory. */
static size_t pick_predictions(const siam_pairs *p, const float *dist, float threshold,
                               uint64_t seed, uint32_t *out) {
    uint32_t *perm = malloc((p->n ? p->n : 1) * sizeof *perm);
    if (!perm)
        return SIZE_MAX;
    for (size_t i = 0; i < p->n; i++)
        perm[i] = (uint32_t)i;
    siam_rng r;
    siam_rng_seed(&r, seed);
    siam_rng_shuffle_u32(&r, perm, p->n);
    size_t n = 0;
    for (int kind = 0; kind < 4; kind++) {
        int want_label = kind == 0 || kind == 3, want_same = kind == 0 || kind == 2, got = 0;
        for (size_t i = 0; i < p->n && got < PRED_PER_KIND; i++) {
            uint32_t k = perm[i];
            if ((p->labels[k] != 0) == want_label && (dist[k] <= threshold) == want_same) {
                out[n++] = k;
                got++;
            }
        }
    }
    for (size_t i = 0; i < p->n && n < PRED_MAX; i++) {
        uint32_t k = perm[i];
        int right = (p->labels[k] != 0) == (dist[k] <= threshold), taken = 0;
        for (size_t j = 0; j < n; j++)
            taken |= out[j] == k;
        if (right && !taken)
            out[n++] = k;
    }
    free(perm);
    return n;
}

static uint8_t to_byte(float x) {
    return (uint8_t)lrintf(x * 255.0f);
}

/* embeddings.tsv: the test embeddings (n, dim) along their top two principal components (y = 0
 * for one-dimensional embeddings), with the explained variances and the class names in comment
 * lines for scripts/plot.sh */
static int write_embedding_map(const char *dir, const float *emb, const uint8_t *labels, size_t n,
                               int dim, siam_error *err) {
    siam_pca pca;
    mem_file m = {0};
    float *xy = NULL;
    double t = siam_now();
    int rc, k = dim < 2 ? 1 : 2;
    if ((rc = siam_pca_fit(&pca, emb, n, dim, k, err)))
        return rc;
    if (!pca.converged)
        LOG_WARN(COMPONENT,
                 "PCA of the test embeddings: not converged after %d iterations (residual %.2g); "
                 "the map is drawn from the components reached",
                 pca.iterations, pca.residual);
    xy = calloc(n * 2, sizeof *xy);
    if (!xy) {
        rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for %zu map points", n);
        goto done;
    }
    siam_pca_project(&pca, emb, n, xy);
    if (k == 1) /* x, 0 */
        for (size_t i = n; i-- > 0;) {
            xy[2 * i] = xy[i];
            xy[2 * i + 1] = 0.0f;
        }
    if ((rc = mem_open(&m, err)))
        goto done;
    fprintf(m.f,
            "# the %zu test embeddings (dim %d) along the top two principal components of the "
            "centred embeddings (PCA), and their class\n",
            n, dim);
    fprintf(m.f, "# explained_variance\t%.6f\t%.6f\n", siam_pca_explained(&pca, 0),
            siam_pca_explained(&pca, 1));
    int seen[256] = {0};
    for (size_t i = 0; i < n; i++)
        seen[labels[i]] = 1;
    for (int cls = 0; cls < 256; cls++)
        if (seen[cls])
            fprintf(m.f, "# class\t%d\t%s\n", cls, siam_cli_class_name(cls));
    fprintf(m.f, "# x\ty\tclass\n");
    for (size_t i = 0; i < n; i++)
        fprintf(m.f, "%.6g\t%.6g\t%d\n", (double)xy[2 * i], (double)xy[2 * i + 1], labels[i]);
    if ((rc = mem_commit(&m, dir, "embeddings.tsv", err)))
        goto done;
    LOG_INFO(COMPONENT,
             "PCA of %zu test embeddings: the top two components explain %.1f %% and %.1f %% of "
             "the variance (%d iterations, %.2f s)",
             n, 100 * siam_pca_explained(&pca, 0), 100 * siam_pca_explained(&pca, 1),
             pca.iterations, siam_now() - t);
done:
    mem_drop(&m);
    free(xy);
    siam_pca_free(&pca);
    return rc;
}

static int write_plot_data(const eval_config *c, const eval_result *res, const siam_dataset *test,
                           const siam_pairs *tp, const float *dist, const float *test_emb, int dim,
                           siam_error *err) {
    mem_file m = {0};
    uint32_t chosen[PRED_MAX];
    int rc;
    float half = c->margin / 2;
    if ((rc = ensure_dir(c->plots_dir, err)) || (rc = mem_open(&m, err)))
        return rc;
    fprintf(m.f, "# distance\tlabel (1 same class, 0 different) of every test pair\n");
    for (size_t i = 0; i < tp->n; i++)
        fprintf(m.f, "%.6f\t%d\n", (double)dist[i], tp->labels[i] != 0);
    if ((rc = mem_commit(&m, c->plots_dir, "distances.tsv", err)) || (rc = mem_open(&m, err)))
        goto fail;
    fprintf(m.f, "half_margin %.6f\nbest_threshold_train %.6f\nval_threshold %.6f\n", (double)half,
            (double)res->train_best, (double)res->val.threshold);
    if ((rc = mem_commit(&m, c->plots_dir, "threshold.txt", err)) || (rc = mem_open(&m, err)))
        goto fail;
    size_t n = pick_predictions(tp, dist, half, c->seed, chosen);
    if (n == SIZE_MAX) {
        rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory choosing the example pairs");
        goto fail;
    }
    fprintf(m.f, "# slot\tpair\tleft\tright\tlabel\tdistance\tverdict\toutcome\tleft_class\t"
                 "right_class\n");
    for (size_t s = 0; s < n; s++) {
        uint32_t k = chosen[s];
        int same = dist[k] <= half, label = tp->labels[k] != 0;
        fprintf(m.f, "%zu\t%u\t%u\t%u\t%d\t%.6f\t%s\t%s\t%s\t%s\n", s, k, tp->left[k], tp->right[k],
                label, (double)dist[k], same ? "same" : "different",
                same == label ? "right" : "wrong", siam_cli_class_name(test->labels[tp->left[k]]),
                siam_cli_class_name(test->labels[tp->right[k]]));
    }
    if ((rc = mem_commit(&m, c->plots_dir, "predictions.tsv", err)) || (rc = mem_open(&m, err)))
        goto fail;
    /* one block per pair: 28 rows of 56 pixel values (left image, then right image), blocks
     * separated by two blank lines (gnuplot: matrix index s) */
    for (size_t s = 0; s < n; s++) {
        const float *a = test->images + (size_t)tp->left[chosen[s]] * IMG_N;
        const float *b = test->images + (size_t)tp->right[chosen[s]] * IMG_N;
        for (int y = 0; y < IMG_H; y++) {
            for (int x = 0; x < 2 * IMG_W; x++) {
                const float *img = x < IMG_W ? a : b;
                fprintf(m.f, x ? " %d" : "%d", to_byte(img[y * IMG_W + x % IMG_W]));
            }
            fputc('\n', m.f);
        }
        if (s + 1 < n)
            fputs("\n\n", m.f);
    }
    if ((rc = mem_commit(&m, c->plots_dir, "predictions_images.dat", err)) ||
        (rc = write_embedding_map(c->plots_dir, test_emb, test->labels, test->n, dim, err)))
        goto fail;
    LOG_INFO(COMPONENT, "plot data written to %s (%zu pairs in predictions.tsv)", c->plots_dir, n);
    return SIAM_OK;
fail:
    mem_drop(&m);
    return rc;
}

static void print_eval(const eval_config *c, const siam_model *m, const eval_result *r) {
    const siam_pair_report *p = &r->rep;
    if (c->json) {
        printf("{\"checkpoint\": ");
        siam_cli_json_string(stdout, c->checkpoint);
        printf(", \"spec\": ");
        siam_cli_json_string(stdout, siam_model_spec(m));
        printf(", \"step\": %llu, \"train_images\": %zu, \"test_images\": %zu, "
               "\"train_pairs\": %zu, \"test_pairs\": %zu, \"margin\": %.6g, \"threshold\": "
               "%.6g, \"accuracy\": %.6f, \"roc_auc\": %.6f, \"best_threshold_train\": %.6g, "
               "\"accuracy_at_best_threshold\": %.6f, \"train_accuracy_at_best_threshold\": "
               "%.6f, \"val_at_far_1e-3\": %.6f, \"val_threshold\": %.6g, \"far\": %.6g, "
               "\"val_test_positive_pairs\": %zu, \"val_test_negative_pairs\": %zu, "
               "\"val_train_positive_pairs\": %zu, \"val_train_negative_pairs\": %zu, "
               "\"train_val_at_far_1e-3\": %.6f, \"train_far\": %.6g, "
               "\"test_threshold_val_at_far_1e-3\": %.6f, \"test_threshold\": %.6g, "
               "\"test_threshold_far\": %.6g, "
               "\"positive_distance_mean\": %.6f, \"positive_distance_std\": %.6f, "
               "\"negative_distance_mean\": %.6f, \"negative_distance_std\": %.6f, "
               "\"test_loss\": %.6f, \"knn_k\": %d, \"knn_accuracy\": %.6f, "
               "\"pixel_knn_accuracy\": ",
               (unsigned long long)r->step, r->n_train, r->n_test, r->n_train_pairs, p->n,
               (double)c->margin, (double)p->threshold, p->accuracy, p->auc, (double)r->train_best,
               r->test_at_best, r->train_best_acc, r->val.val, (double)r->val.threshold, r->val.far,
               r->val.test_pos, r->val.test_neg, r->val.train_pos, r->val.train_neg,
               r->val.train_val, r->val.train_far, r->val.oracle_val,
               (double)r->val.oracle_threshold, r->val.oracle_far, p->stats.pos_mean,
               p->stats.pos_std, p->stats.neg_mean, p->stats.neg_std, r->test_loss, c->knn_k,
               r->knn);
        if (r->pixel_knn < 0)
            printf("null");
        else
            printf("%.6f", r->pixel_knn);
        printf(", \"recall_at_1\": %.6f, \"map_at_r\": %.6f", r->ret.recall_at_1, r->ret.map_at_r);
        if (r->pixel_ret.n == 0)
            printf(", \"pixel_recall_at_1\": null, \"pixel_map_at_r\": null");
        else
            printf(", \"pixel_recall_at_1\": %.6f, \"pixel_map_at_r\": %.6f",
                   r->pixel_ret.recall_at_1, r->pixel_ret.map_at_r);
        printf(", \"seconds\": {\"load\": %.3f, \"embed\": %.3f, \"val\": %.3f, \"knn\": %.3f, "
               "\"pixel_knn\": %.3f, \"retrieval\": %.3f, \"total\": %.3f}}\n",
               r->t_load, r->t_embed, r->t_val, r->t_knn, r->t_pixel_knn, r->t_retrieval,
               r->t_total);
        return;
    }
    printf("\n" EVAL_PROG ": %s (step %llu), %zu test / %zu training images\n", c->checkpoint,
           (unsigned long long)r->step, r->n_test, r->n_train);
    printf("  %-34s %s\n", "model", siam_model_spec(m));
    printf("  %-34s %zu\n", "test pairs", p->n);
    printf("  %-34s %.4f (threshold %.3f)\n", "accuracy (D <= m/2)", p->accuracy,
           (double)p->threshold);
    printf("  %-34s %.4f\n", "ROC AUC", p->auc);
    printf("  %-34s %.4f (threshold %.3f, from %zu train pairs)\n", "accuracy at best threshold",
           r->test_at_best, (double)r->train_best, r->n_train_pairs);
    printf("  %-34s %.4f (FAR %.5f over %zu negative test pairs, %zu positive)\n",
           "VAL at FAR = 1e-3", r->val.val, r->val.far, r->val.test_neg, r->val.test_pos);
    printf("  %-34s %.4g (FAR %.5f, VAL %.4f there; %zu positive + %zu negative)\n",
           "VAL threshold, from training pairs", (double)r->val.threshold, r->val.train_far,
           r->val.train_val, r->val.train_pos, r->val.train_neg);
    printf("  %-34s %.4f (threshold %.4g, FAR %.5f; FaceNet's convention, for its table)\n",
           "VAL, threshold on the test pairs", r->val.oracle_val, (double)r->val.oracle_threshold,
           r->val.oracle_far);
    printf("  %-34s %.3f +- %.3f\n", "distance, positive pairs", p->stats.pos_mean,
           p->stats.pos_std);
    printf("  %-34s %.3f +- %.3f\n", "distance, negative pairs", p->stats.neg_mean,
           p->stats.neg_std);
    printf("  %-34s %.4f\n", "contrastive loss, test pairs", r->test_loss);
    char knn_e[40], knn_p[40];
    snprintf(knn_e, sizeof knn_e, "kNN accuracy (k=%d), embeddings", c->knn_k);
    snprintf(knn_p, sizeof knn_p, "kNN accuracy (k=%d), raw pixels", c->knn_k);
    printf("  %-34s %.4f\n", knn_e, r->knn);
    if (r->pixel_knn < 0)
        printf("  %-34s %s\n", knn_p, "skipped (--no-pixel-knn)");
    else
        printf("  %-34s %.4f\n", knn_p, r->pixel_knn);
    printf("  %-34s %.4f\n", "Recall@1 (test->test), embeddings", r->ret.recall_at_1);
    printf("  %-34s %.4f\n", "MAP@R (test->test), embeddings", r->ret.map_at_r);
    if (r->pixel_ret.n == 0) {
        printf("  %-34s %s\n", "Recall@1 (test->test), raw pixels", "skipped (--no-pixel-knn)");
        printf("  %-34s %s\n", "MAP@R (test->test), raw pixels", "skipped (--no-pixel-knn)");
    } else {
        printf("  %-34s %.4f\n", "Recall@1 (test->test), raw pixels", r->pixel_ret.recall_at_1);
        printf("  %-34s %.4f\n", "MAP@R (test->test), raw pixels", r->pixel_ret.map_at_r);
    }
    printf("  %-34s %.1f s (embed %.1f, VAL %.1f, kNN %.1f, pixel kNN %.1f, retrieval %.1f)\n",
           "time", r->t_total, r->t_embed, r->t_val, r->t_knn, r->t_pixel_knn, r->t_retrieval);
}

static int pair_distances(const float *emb, int dim, const siam_pairs *p, float **out,
                          siam_error *err) {
    float *d = malloc((p->n ? p->n : 1) * sizeof *d);
    if (!d)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for %zu distances", p->n);
    for (size_t i = 0; i < p->n; i++)
        d[i] = siam_distance(emb + (size_t)p->left[i] * dim, emb + (size_t)p->right[i] * dim, dim);
    *out = d;
    return SIAM_OK;
}

/* side's pair counts: --val-pairs of each kind, or every distinct pair when there are fewer */
static void val_counts(const eval_config *c, siam_val_set *side, const char *name) {
    uint64_t pos, neg;
    siam_val_pairs_available(side->labels, side->n_images, &pos, &neg);
    side->n_pos = (size_t)(pos < c->val_pairs ? pos : c->val_pairs);
    side->n_neg = (size_t)(neg < c->val_pairs ? neg : c->val_pairs);
    if (side->n_pos < c->val_pairs || side->n_neg < c->val_pairs)
        LOG_WARN(COMPONENT,
                 "VAL at FAR: the %zu %s images have %llu distinct same-class and %llu "
                 "different-class pairs; using %zu and %zu (--val-pairs %llu)",
                 side->n_images, name, (unsigned long long)pos, (unsigned long long)neg,
                 side->n_pos, side->n_neg, (unsigned long long)c->val_pairs);
}

/* VAL at FAR 1e-3: the threshold from pairs of training images, the figures on pairs of test
 * images (training pairs from seed, test pairs from seed + 1) */
static int val_at_far(const eval_config *c, const siam_dataset *train, const float *train_emb,
                      const siam_dataset *test, const float *test_emb, int dim, eval_result *r,
                      siam_error *err) {
    siam_val_set tr = {train_emb, train->labels, train->n, 0, 0, c->seed};
    siam_val_set te = {test_emb, test->labels, test->n, 0, 0, c->seed + 1};
    double t = siam_now();
    val_counts(c, &tr, "training");
    val_counts(c, &te, "test");
    int rc = siam_val_at_far(&tr, &te, dim, 1e-3, &r->val, err);
    if (rc)
        return rc;
    r->t_val = siam_now() - t;
    LOG_INFO(COMPONENT,
             "VAL at FAR 1e-3: threshold %.4f from %zu + %zu training pairs (FAR %.5f there); "
             "VAL %.4f, FAR %.5f on %zu + %zu test pairs, in %.2f s",
             (double)r->val.threshold, r->val.train_pos, r->val.train_neg, r->val.train_far,
             r->val.val, r->val.far, r->val.test_pos, r->val.test_neg, r->t_val);
    return SIAM_OK;
}

/* kNN classification of the test embeddings against the training embeddings (siam_knn_neighbours
 * and the majority vote of siam_knn_classify) and its accuracy; with --knn-predictions, every
 * test image's prediction and nearest training image, for comparing with Search. */
static int knn_embeddings(const eval_config *c, const siam_dataset *test, const float *test_emb,
                          const siam_dataset *train, const float *train_emb, int dim,
                          double *accuracy, siam_error *err) {
    int k = c->knn_k, rc;
    uint32_t *idx = malloc((test->n ? test->n : 1) * (size_t)k * sizeof *idx);
    float *d2 = malloc((test->n ? test->n : 1) * (size_t)k * sizeof *d2);
    mem_file m = {0};
    if (!idx || !d2) {
        rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for %zu x %d neighbours", test->n,
                            k);
        goto done;
    }
    if ((rc = siam_knn_neighbours(test_emb, test->n, train_emb, train->n, dim, k, idx, d2, err)))
        goto done;
    if (c->knn_predictions && (rc = mem_open(&m, err)))
        goto done;
    if (m.f)
        fprintf(m.f,
                "# test_index\tclass\tpredicted\tnearest_train_index\tnearest_class\t"
                "nearest_distance (kNN k=%d of %zu test against %zu training embeddings)\n",
                k, test->n, train->n);
    size_t right = 0;
    for (size_t i = 0; i < test->n; i++) {
        const uint32_t *nb = idx + i * (size_t)k;
        uint8_t pred = siam_knn_vote(nb, k, train->labels);
        right += pred == test->labels[i];
        if (m.f)
            fprintf(m.f, "%zu\t%d\t%d\t%u\t%d\t%.9g\n", i, test->labels[i], pred, nb[0],
                    train->labels[nb[0]], sqrt((double)d2[i * (size_t)k]));
    }
    *accuracy = test->n ? (double)right / (double)test->n : 0.0;
    if (m.f) {
        fclose(m.f);
        m.f = NULL;
        rc = siam_atomic_write(c->knn_predictions, m.buf, m.len, err);
        if (rc == SIAM_OK)
            LOG_INFO(COMPONENT, "kNN predictions of the %zu test images written to %s", test->n,
                     c->knn_predictions);
    }
done:
    mem_drop(&m);
    free(idx);
    free(d2);
    return rc;
}

static int evaluate(const eval_config *c, siam_error *err) {
    siam_model *m = NULL;
    siam_dataset train = {0}, test = {0};
    siam_pairs tp = {0}, trp = {0};
    float *train_emb = NULL, *test_emb = NULL, *dist = NULL, *train_dist = NULL;
    eval_result r = {0};
    double t0 = siam_now(), t;
    int rc;
    if ((rc = siam_cli_load_model(c->checkpoint, &m, &r.step, err)))
        goto done;
    LOG_INFO(COMPONENT, "checkpoint %s: step %llu, %s", c->checkpoint, (unsigned long long)r.step,
             siam_model_spec(m));
    if ((rc = siam_dataset_load(&train, c->data, SIAM_SPLIT_TRAIN, c->train_limit, err)) ||
        (rc = siam_dataset_load(&test, c->data, SIAM_SPLIT_TEST, c->test_limit, err)))
        goto done;
    /* the pairs siam-train evaluates on: test pairs from seed + 1, training pairs from seed */
    if ((rc = siam_pairs_make(&tp, test.labels, test.n, 10, c->seed + 1, err)) ||
        (rc = siam_pairs_make(&trp, train.labels, train.n, 10, c->seed, err)))
        goto done;
    r.t_load = siam_now() - t0;
    r.n_train = train.n;
    r.n_test = test.n;
    r.n_train_pairs = trp.n;
    LOG_INFO(COMPONENT, "loaded %zu training and %zu test images (%zu and %zu pairs) in %.2f s",
             train.n, test.n, trp.n, tp.n, r.t_load);

    int dim = siam_model_output_size(m);
    t = siam_now();
    train_emb = siam_alloc_floats(train.n * (size_t)dim);
    test_emb = siam_alloc_floats(test.n * (size_t)dim);
    if (!train_emb || !test_emb) {
        rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for %zu embeddings",
                            train.n + test.n);
        goto done;
    }
    if ((rc = siam_model_embed(m, train.images, train.n, train_emb, err)) ||
        (rc = siam_model_embed(m, test.images, test.n, test_emb, err)))
        goto done;
    r.t_embed = siam_now() - t;
    LOG_INFO(COMPONENT, "embedded %zu images in %.2f s", train.n + test.n, r.t_embed);

    if ((rc = pair_distances(test_emb, dim, &tp, &dist, err)) ||
        (rc = pair_distances(train_emb, dim, &trp, &train_dist, err)) ||
        (rc = siam_metrics_report(dist, tp.labels, tp.n, c->margin / 2, &r.rep, err)) ||
        (rc = siam_metrics_best_threshold(train_dist, trp.labels, trp.n, &r.train_best,
                                          &r.train_best_acc, err)))
        goto done;
    r.test_at_best = siam_metrics_accuracy(dist, tp.labels, tp.n, r.train_best);
    r.test_loss =
        siam_contrastive_from_distances(dist, tp.labels, tp.n, c->margin, SIAM_LABELS_SIMILAR);
    if ((rc = val_at_far(c, &train, train_emb, &test, test_emb, dim, &r, err)))
        goto done;

    t = siam_now();
    if ((rc = knn_embeddings(c, &test, test_emb, &train, train_emb, dim, &r.knn, err)))
        goto done;
    r.t_knn = siam_now() - t;
    LOG_INFO(COMPONENT, "kNN (k=%d) in embedding space: accuracy %.4f in %.2f s", c->knn_k, r.knn,
             r.t_knn);
    r.pixel_knn = -1.0;
    if (!c->no_pixel_knn) {
        t = siam_now();
        LOG_INFO(COMPONENT, "kNN (k=%d) on raw pixels: %zu x %zu x %d (--no-pixel-knn skips it)",
                 c->knn_k, test.n, train.n, IMG_N);
        if ((rc = siam_knn_accuracy(test.images, test.labels, test.n, train.images, train.labels,
                                    train.n, IMG_N, c->knn_k, &r.pixel_knn, err)))
            goto done;
        r.t_pixel_knn = siam_now() - t;
        LOG_INFO(COMPONENT, "kNN (k=%d) on raw pixels: accuracy %.4f in %.2f s", c->knn_k,
                 r.pixel_knn, r.t_pixel_knn);
    }
    /* retrieval within the test set: every test image queries the other test images */
    t = siam_now();
    if ((rc = siam_retrieval_metrics(test_emb, test.labels, test.n, dim, &r.ret, err)))
        goto done;
    LOG_INFO(COMPONENT, "retrieval (test->test) in embedding space: Recall@1 %.4f, MAP@R %.4f",
             r.ret.recall_at_1, r.ret.map_at_r);
    if (!c->no_pixel_knn) {
        if ((rc = siam_retrieval_metrics(test.images, test.labels, test.n, IMG_N, &r.pixel_ret,
                                         err)))
            goto done;
        LOG_INFO(COMPONENT, "retrieval (test->test) on raw pixels: Recall@1 %.4f, MAP@R %.4f",
                 r.pixel_ret.recall_at_1, r.pixel_ret.map_at_r);
    }
    r.t_retrieval = siam_now() - t;
    LOG_INFO(COMPONENT, "retrieval in %.2f s", r.t_retrieval);
    if (c->plots_dir && (rc = write_plot_data(c, &r, &test, &tp, dist, test_emb, dim, err)))
        goto done;
    r.t_total = siam_now() - t0;
    print_eval(c, m, &r);

done:
    free(dist);
    free(train_dist);
    siam_free(train_emb);
    siam_free(test_emb);
    siam_pairs_free(&tp);
    siam_pairs_free(&trp);
    siam_dataset_free(&train);
    siam_dataset_free(&test);
    siam_model_free(m);
    return rc;
}

int siam_eval_main(int argc, char **argv) {
    eval_config c = {.data = SIAM_DATA_DIR_DEFAULT,
                     .log_level = "info",
                     .margin = 1.0f,
                     .seed = 42,
                     .val_pairs = SIAM_VAL_PAIRS_DEFAULT,
                     .knn_k = SIAM_KNN_K_DEFAULT};
    const char *recipe = siam_recipe_in_argv(argc, argv);
    if (recipe) { /* the margin the recipe trained with */
        const siam_recipe *r;
        siam_error rerr = {0};
        if (siam_recipe_lookup(recipe, &r, &rerr) != SIAM_OK) {
            fprintf(stderr, EVAL_PROG ": --recipe: %s\n", rerr.msg);
            return 2;
        }
        c.margin = r->margin;
    }
    const siam_option opts[] = {
        {"checkpoint", SIAM_OPT_STRING, &c.checkpoint, 0, 0, NULL, "PATH",
         "model checkpoint to evaluate (required)"},
        {"recipe", SIAM_OPT_STRING, &recipe, 0, 0, NULL, "pairs|mlp|cnn",
         "the recipe the model was trained with: sets --margin to its margin"},
        {"data", SIAM_OPT_STRING, &c.data, 0, 0, NULL, "DIR", "Fashion-MNIST IDX directory"},
        {"margin", SIAM_OPT_FLOAT, &c.margin, 1e-6, 1e6, NULL, "M",
         "contrastive margin the model was trained with; pairs count as same at D <= M/2"},
        {"test-limit", SIAM_OPT_U64, &c.test_limit, 0, 1e9, NULL, "N",
         "use only the first N test images (0 = all)"},
        {"train-limit", SIAM_OPT_U64, &c.train_limit, 0, 1e9, NULL, "N",
         "use only the first N training images (0 = all)"},
        {"seed", SIAM_OPT_U64, &c.seed, 0, 9e18, NULL, "N",
         "seed of the pairs, as in training (test pairs seed+1, training pairs seed; the VAL "
         "pairs likewise)"},
        {"val-pairs", SIAM_OPT_U64, &c.val_pairs, 1, 1e7, NULL, "N",
         "VAL at FAR 1e-3 from N same- and N different-class pairs of training images (the "
         "threshold) and of test images (VAL, FAR); all there are when fewer"},
        {"json", SIAM_OPT_FLAG, &c.json, 0, 0, NULL, NULL, "print the report as one JSON object"},
        {"plots-dir", SIAM_OPT_STRING, &c.plots_dir, 0, 0, NULL, "DIR",
         "also write the data scripts/plot.sh draws (distances, thresholds, example pairs, "
         "the test embeddings' PCA map)"},
        {"knn-k", SIAM_OPT_INT, &c.knn_k, 1, SIAM_KNN_K_MAX, NULL, "K",
         "neighbours of the kNN accuracy (majority vote; ties to the nearest's class); k = 1 is "
         "the top-1 of siam-client search against the training set"},
        {"knn-predictions", SIAM_OPT_STRING, &c.knn_predictions, 0, 0, NULL, "FILE",
         "write every test image's kNN prediction, nearest training image and its distance to "
         "FILE (TSV)"},
        {"no-pixel-knn", SIAM_OPT_FLAG, &c.no_pixel_knn, 0, 0, NULL, NULL,
         "skip the raw-pixel baselines (kNN and retrieval; the slow part)"},
        {"threads", SIAM_OPT_INT, &c.threads, 0, 256, NULL, "N",
         "OpenBLAS threads (0 = library default)"},
        {"log-level", SIAM_OPT_CHOICE, &c.log_level, 0, 0, "debug|info|warn|error", NULL,
         "stderr log level"},
    };
    int rc = siam_options_main(
        EVAL_PROG, SIAM_VERSION,
        "Evaluate a trained checkpoint on Fashion-MNIST: pair accuracy at m/2, the best threshold\n"
        "(chosen on the training pairs, reported on the test pairs), ROC AUC, pair distance\n"
        "statistics, VAL at FAR 1e-3 (threshold chosen on sampled pairs of training images,\n"
        "--val-pairs of each kind; VAL and FAR reported on as many pairs of test images),\n"
        "k-nearest-neighbour (--knn-k, 5) accuracy of the test images against the training\n"
        "images, and retrieval within the test set (Recall@1, MAP@R: each test image queries\n"
        "the other test images), in embedding space and on raw pixels.",
        opts, (int)(sizeof opts / sizeof *opts), argc, argv);
    if (rc >= 0)
        return rc;
    if (!c.checkpoint) {
        fprintf(stderr, EVAL_PROG ": --checkpoint PATH is required (see --help)\n");
        return 2;
    }
    siam_cli_set_log_level(c.log_level);
    siam_blas_set_threads(c.threads);
    siam_error err = {0};
    if (evaluate(&c, &err)) {
        fprintf(stderr, EVAL_PROG ": error: %s\n", err.msg);
        return 1;
    }
    return 0;
}
