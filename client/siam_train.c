/* siam-train: trains the Siamese embedding network locally (loss head in-process, no server) on
 * Fashion-MNIST pairs and reports how well it separates same from different pairs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_atomic.h"
#include "siam_checkpoint.h"
#include "siam_dataset.h"
#include "siam_log.h"
#include "siam_metrics.h"
#include "siam_model.h"
#include "siam_options.h"
#include "siam_pairs.h"
#include "siam_tensor.h"
#include "siam_trainer.h"

#define COMPONENT "train"

typedef struct {
    const char *model, *optimizer, *labels, *data, *checkpoint, *metrics, *log_level;
    int epochs, batch, threads, worker_index, workers, json;
    float lr, margin;
    uint64_t seed, train_limit, test_limit;
} config;

typedef struct {
    siam_progress progress;
    FILE *csv; /* in-memory rows of the metrics file */
    int epoch;
    uint64_t step0;
} run_state;

static void on_step(void *ctx, uint64_t s, uint64_t steps, uint64_t pairs, double loss) {
    run_state *r = ctx;
    siam_progress_update(&r->progress, s, pairs, loss);
    if (r->csv && (s % 50 == 0 || s == steps))
        fprintf(r->csv, "step,%d,%llu,%.6f,,,,\n", r->epoch, (unsigned long long)(r->step0 + s),
                loss);
}

static void print_report(const config *c, const siam_model *m, size_t n_train_pairs,
                         const siam_pair_report *r, double test_acc_at_train_best, float train_best,
                         double pairs_per_s) {
    if (c->json) {
        printf("{\"model\": \"%s\", \"spec\": \"%s\", \"epochs\": %d, \"batch_size\": %d, "
               "\"train_pairs\": %zu, \"test_pairs\": %zu, \"threshold\": %.6g, "
               "\"accuracy\": %.6f, \"roc_auc\": %.6f, \"best_threshold_train\": %.6g, "
               "\"accuracy_at_best_threshold\": %.6f, \"val_at_far_1e-3\": %.6f, "
               "\"val_threshold\": %.6g, \"far\": %.6g, \"positive_distance_mean\": %.6f, "
               "\"positive_distance_std\": %.6f, \"negative_distance_mean\": %.6f, "
               "\"negative_distance_std\": %.6f, \"train_pairs_per_s\": %.1f}\n",
               c->model, siam_model_spec(m), c->epochs, c->batch, n_train_pairs, r->n,
               (double)r->threshold, r->accuracy, r->auc, (double)train_best,
               test_acc_at_train_best, r->val, (double)r->val_threshold, r->far, r->stats.pos_mean,
               r->stats.pos_std, r->stats.neg_mean, r->stats.neg_std, pairs_per_s);
        return;
    }
    printf("\nsiam-train: %s, %d epoch(s), batch %d, %zu training pairs\n", c->model, c->epochs,
           c->batch, n_train_pairs);
    printf("  %-34s %zu\n", "test pairs", r->n);
    printf("  %-34s %.4f\n", "accuracy (D <= m/2)", r->accuracy);
    printf("  %-34s %.4f\n", "ROC AUC", r->auc);
    printf("  %-34s %.4f (threshold %.3f, from train pairs)\n", "accuracy at best threshold",
           test_acc_at_train_best, (double)train_best);
    printf("  %-34s %.4f (threshold %.3f, FAR %.5f)\n", "VAL at FAR = 1e-3", r->val,
           (double)r->val_threshold, r->far);
    printf("  %-34s %.3f +- %.3f\n", "distance, positive pairs", r->stats.pos_mean,
           r->stats.pos_std);
    printf("  %-34s %.3f +- %.3f\n", "distance, negative pairs", r->stats.neg_mean,
           r->stats.neg_std);
    printf("  %-34s %.0f\n", "training pairs/s", pairs_per_s);
}

static int run(const config *c, siam_error *err) {
    siam_dataset train = {0}, test = {0};
    siam_pairs all = {0}, mine = {0}, test_pairs = {0};
    siam_model *m = NULL;
    siam_trainer tr = {0};
    float *dist = NULL, *train_dist = NULL;
    char *csv_buf = NULL;
    size_t csv_len = 0;
    run_state rs = {0};
    siam_optim_kind kind;
    siam_label_convention conv =
        strcmp(c->labels, "dissimilar") == 0 ? SIAM_LABELS_DISSIMILAR : SIAM_LABELS_SIMILAR;
    siam_local_head head = {c->margin, conv};
    int rc = siam_optim_parse(c->optimizer, &kind, err);
    if (rc)
        goto done;

    double t0 = siam_now();
    if ((rc = siam_dataset_load(&train, c->data, SIAM_SPLIT_TRAIN, c->train_limit, err)) ||
        (rc = siam_dataset_load(&test, c->data, SIAM_SPLIT_TEST, c->test_limit, err)))
        goto done;
    LOG_INFO(COMPONENT, "loaded %zu training and %zu test images from %s in %.2f s", train.n,
             test.n, c->data ? c->data : SIAM_DATA_DIR_DEFAULT, siam_now() - t0);
    if ((rc = siam_pairs_make(&all, train.labels, train.n, 10, c->seed, err)) ||
        (rc = siam_pairs_make(&test_pairs, test.labels, test.n, 10, c->seed + 1, err)))
        goto done;
    size_t begin, end;
    siam_pairs_shuffle(&all, c->seed);
    if ((rc = siam_shard_range(all.n, c->worker_index, c->workers, &begin, &end, err)) ||
        (rc = siam_pairs_slice(&mine, &all, begin, end, err)))
        goto done;
    LOG_INFO(COMPONENT, "worker %d of %d: %zu of %zu training pairs; %zu test pairs",
             c->worker_index, c->workers, mine.n, all.n, test_pairs.n);

    if ((rc = siam_model_create(&m, c->model, c->seed, err)) ||
        (rc = siam_trainer_init(&tr, m, kind, c->lr, c->batch, err)))
        goto done;
    LOG_INFO(COMPONENT, "model %s: %zu parameters (%s)", c->model, siam_model_num_params(m),
             siam_model_spec(m));
    dist = malloc(test_pairs.n * sizeof *dist);
    if (!dist) {
        rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (c->metrics) {
        rs.csv = open_memstream(&csv_buf, &csv_len);
        if (!rs.csv) {
            rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for the metrics file");
            goto done;
        }
        fprintf(rs.csv, "kind,epoch,step,loss,val_loss,accuracy,roc_auc,pairs_per_s\n");
    }

    double train_time = 0.0;
    uint64_t trained_pairs = 0;
    for (int e = 1; e <= c->epochs; e++) {
        char label[32];
        snprintf(label, sizeof label, "epoch %d/%d", e, c->epochs);
        if (e > 1)
            siam_pairs_shuffle(&mine, c->seed + (uint64_t)e);
        rs.epoch = e;
        rs.step0 = tr.step;
        siam_progress_begin(&rs.progress, label,
                            (mine.n + (size_t)c->batch - 1) / (size_t)c->batch);
        double loss, val_loss, te = siam_now();
        rc = siam_trainer_epoch(&tr, &train, &mine, siam_local_head_fn, &head, on_step, &rs, &loss,
                                err);
        te = siam_now() - te;
        siam_progress_end(&rs.progress, tr.step - rs.step0, mine.n, loss);
        if (rc)
            goto done;
        train_time += te;
        trained_pairs += mine.n;
        if ((rc = siam_evaluate_distances(m, &test, &test_pairs, c->margin, conv, dist, &val_loss,
                                          err)))
            goto done;
        double acc = siam_metrics_accuracy(dist, test_pairs.labels, test_pairs.n, c->margin / 2);
        double auc = 0.0;
        if ((rc = siam_metrics_roc_auc(dist, test_pairs.labels, test_pairs.n, &auc, err)))
            goto done;
        LOG_INFO(COMPONENT,
                 "epoch %d/%d loss=%.4f val_loss=%.4f accuracy=%.4f roc_auc=%.4f pairs/s=%.0f", e,
                 c->epochs, loss, val_loss, acc, auc, (double)mine.n / te);
        if (rs.csv)
            fprintf(rs.csv, "epoch,%d,%llu,%.6f,%.6f,%.6f,%.6f,%.1f\n", e,
                    (unsigned long long)tr.step, loss, val_loss, acc, auc, (double)mine.n / te);
    }

    /* the reported best threshold is chosen on training pairs, then applied to the test pairs */
    siam_pair_report rep;
    float train_best = c->margin / 2;
    double train_best_acc;
    train_dist = malloc(mine.n * sizeof *train_dist);
    if (!train_dist) {
        rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((rc = siam_evaluate_distances(m, &train, &mine, c->margin, conv, train_dist, NULL, err)) ||
        (rc = siam_metrics_best_threshold(train_dist, mine.labels, mine.n, &train_best,
                                          &train_best_acc, err)) ||
        (rc = siam_metrics_report(dist, test_pairs.labels, test_pairs.n, c->margin / 2, &rep, err)))
        goto done;
    double test_at_best = siam_metrics_accuracy(dist, test_pairs.labels, test_pairs.n, train_best);

    if (c->checkpoint) {
        size_t n_opt = siam_optim_state_size(&tr.opt);
        float *opt = n_opt ? malloc(n_opt * sizeof(float)) : NULL;
        if (n_opt && !opt) {
            rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (opt)
            siam_optim_state_save(&tr.opt, opt);
        rc = siam_checkpoint_save(c->checkpoint, siam_model_spec(m), tr.step, 0,
                                  siam_model_params(m), siam_model_num_params(m), opt, n_opt, err);
        free(opt);
        if (rc)
            goto done;
        LOG_INFO(COMPONENT, "checkpoint written to %s", c->checkpoint);
    }
    if (rs.csv) {
        fclose(rs.csv);
        rs.csv = NULL;
        if ((rc = siam_atomic_write(c->metrics, csv_buf, csv_len, err)))
            goto done;
        LOG_INFO(COMPONENT, "metrics written to %s", c->metrics);
    }
    print_report(c, m, mine.n, &rep, test_at_best, train_best,
                 train_time > 0 ? (double)trained_pairs / train_time : 0.0);

done:
    if (rs.csv)
        fclose(rs.csv);
    free(csv_buf);
    free(dist);
    free(train_dist);
    siam_trainer_free(&tr);
    siam_model_free(m);
    siam_pairs_free(&all);
    siam_pairs_free(&mine);
    siam_pairs_free(&test_pairs);
    siam_dataset_free(&train);
    siam_dataset_free(&test);
    return rc;
}

int main(int argc, char **argv) {
    config c = {.model = "mlp",
                .optimizer = "adam",
                .labels = "similar",
                .data = SIAM_DATA_DIR_DEFAULT,
                .log_level = "info",
                .epochs = 5,
                .batch = 0,
                .threads = 0,
                .worker_index = 0,
                .workers = 1,
                .lr = 1e-3f,
                .margin = 1.0f,
                .seed = 42};
    const siam_option opts[] = {
        {"model", SIAM_OPT_CHOICE, &c.model, 0, 0, "mlp|cnn", NULL, "embedding network"},
        {"epochs", SIAM_OPT_INT, &c.epochs, 1, 1000, NULL, "N", "passes over the training pairs"},
        {"batch-size", SIAM_OPT_INT, &c.batch, 0, 65536, NULL, "B",
         "pairs per step; 0 = the model's reference default (mlp 857, cnn 128)"},
        {"lr", SIAM_OPT_FLOAT, &c.lr, 1e-8, 10, NULL, "RATE", "learning rate"},
        {"optimizer", SIAM_OPT_CHOICE, &c.optimizer, 0, 0, "adam|sgd", NULL, "optimizer"},
        {"margin", SIAM_OPT_FLOAT, &c.margin, 1e-6, 1e6, NULL, "M",
         "contrastive margin; pairs count as same at D <= M/2"},
        {"label-convention", SIAM_OPT_CHOICE, &c.labels, 0, 0, "similar|dissimilar", NULL,
         "which pairs label 1 marks in the loss"},
        {"seed", SIAM_OPT_U64, &c.seed, 0, 9e18, NULL, "N",
         "seed for pairs, shuffling, initialisation, dropout"},
        {"data", SIAM_OPT_STRING, &c.data, 0, 0, NULL, "DIR", "Fashion-MNIST IDX directory"},
        {"train-limit", SIAM_OPT_U64, &c.train_limit, 0, 1e9, NULL, "N",
         "use only the first N training images (0 = all)"},
        {"test-limit", SIAM_OPT_U64, &c.test_limit, 0, 1e9, NULL, "N",
         "use only the first N test images (0 = all)"},
        {"worker-index", SIAM_OPT_INT, &c.worker_index, 0, 65535, NULL, "I",
         "train on shard I of the training pairs"},
        {"workers", SIAM_OPT_INT, &c.workers, 1, 65536, NULL, "N", "number of shards"},
        {"checkpoint", SIAM_OPT_STRING, &c.checkpoint, 0, 0, NULL, "PATH",
         "write the trained model here (atomically)"},
        {"metrics", SIAM_OPT_STRING, &c.metrics, 0, 0, NULL, "FILE.csv",
         "write step and epoch metrics as CSV"},
        {"json", SIAM_OPT_FLAG, &c.json, 0, 0, NULL, NULL, "print the final report as JSON"},
        {"threads", SIAM_OPT_INT, &c.threads, 0, 256, NULL, "N",
         "OpenBLAS threads (0 = library default)"},
        {"log-level", SIAM_OPT_CHOICE, &c.log_level, 0, 0, "debug|info|warn|error", NULL,
         "stderr log level"},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int rc = siam_options_main("siam-train", SIAM_VERSION,
                               "Train the Siamese embedding network locally (contrastive loss "
                               "in-process, no server)\non Fashion-MNIST pairs, then report pair "
                               "accuracy, ROC AUC and VAL on the test pairs.",
                               opts, n_opts, argc, argv);
    if (rc >= 0)
        return rc;
    if (c.worker_index >= c.workers) {
        fprintf(stderr, "siam-train: --worker-index %d must be below --workers %d\n",
                c.worker_index, c.workers);
        return 2;
    }
    int level;
    siam_log_parse_level(c.log_level, &level, NULL);
    siam_log_set_level(level);
    if (c.batch == 0)
        c.batch = strcmp(c.model, "cnn") == 0 ? 128 : 857;
    siam_blas_set_threads(c.threads);
    siam_error err = {0};
    rc = run(&c, &err);
    if (rc) {
        fprintf(stderr, "siam-train: error: %s\n", err.msg);
        return 1;
    }
    return 0;
}
