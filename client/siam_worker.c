/* siam_worker: one worker's training run (data, pairs, shard, epochs through a loss head,
 * evaluation, metrics CSV, checkpoint, report), shared by siam-train and siam-client. */
#include "siam_worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_atomic.h"
#include "siam_checkpoint.h"
#include "siam_dataset.h"
#include "siam_log.h"
#include "siam_metrics.h"
#include "siam_model.h"
#include "siam_pairs.h"

#define COMPONENT "train"

typedef struct {
    siam_progress progress;
    FILE *csv; /* in-memory rows of the metrics file */
    int epoch;
    uint64_t step0;
} run_state;

static void on_step(void *ctx, uint64_t s, uint64_t steps, uint64_t pairs, double loss) {
    run_state *r = ctx;
    siam_progress_update(&r->progress, s, pairs, loss);
    if (r->csv && (s == 1 || s % 50 == 0 || s == steps))
        fprintf(r->csv, "step,%d,%llu,%.6f,,,,\n", r->epoch, (unsigned long long)(r->step0 + s),
                loss);
}

static void print_report(const siam_worker_config *c, const siam_model *m, size_t n_train_pairs,
                         const siam_pair_report *r, double test_acc_at_train_best, float train_best,
                         double pairs_per_s) {
    if (c->json) {
        printf("{\"model\": \"%s\", \"spec\": \"%s\", \"epochs\": %d, \"batch_size\": %d, "
               "\"train_pairs\": %zu, \"test_pairs\": %zu, \"threshold\": %.6g, "
               "\"accuracy\": %.6f, \"roc_auc\": %.6f, \"best_threshold_train\": %.6g, "
               "\"accuracy_at_best_threshold\": %.6f, \"val_at_far_1e-3\": %.6f, "
               "\"val_threshold\": %.6g, \"far\": %.6g, \"positive_distance_mean\": %.6f, "
               "\"positive_distance_std\": %.6f, \"negative_distance_mean\": %.6f, "
               "\"negative_distance_std\": %.6f, \"train_pairs_per_s\": %.1f",
               c->model, siam_model_spec(m), c->epochs, c->batch, n_train_pairs, r->n,
               (double)r->threshold, r->accuracy, r->auc, (double)train_best,
               test_acc_at_train_best, r->val, (double)r->val_threshold, r->far, r->stats.pos_mean,
               r->stats.pos_std, r->stats.neg_mean, r->stats.neg_std, pairs_per_s);
        if (c->workers > 1)
            printf(", \"worker_index\": %d, \"workers\": %d", c->worker_index, c->workers);
        printf("}\n");
        return;
    }
    printf("\n%s: %s, %d epoch(s), batch %d, %zu training pairs", c->prog, c->model, c->epochs,
           c->batch, n_train_pairs);
    if (c->workers > 1)
        printf(" (worker %d/%d)", c->worker_index, c->workers);
    printf("\n");
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

int siam_worker_run(const siam_worker_config *c, siam_loss_head_fn head, void *head_ctx,
                    siam_error *err) {
    siam_dataset train = {0}, test = {0};
    siam_pairs all = {0}, mine = {0}, test_pairs = {0};
    siam_model *m = NULL;
    siam_trainer tr = {0};
    float *dist = NULL, *train_dist = NULL;
    char *csv_buf = NULL;
    size_t csv_len = 0;
    run_state rs = {0};
    siam_optim_kind kind;
    char who[48] = ""; /* " worker 0/2" when the pairs are sharded */
    if (c->workers > 1)
        snprintf(who, sizeof who, " worker %d/%d", c->worker_index, c->workers);
    int rc = siam_optim_parse(c->optimizer, &kind, err);
    if (rc)
        goto done;

    /* an output path that cannot be written fails now, not after the training it would keep */
    if ((c->checkpoint && (rc = siam_atomic_check_writable(c->checkpoint, err))) ||
        (c->metrics && (rc = siam_atomic_check_writable(c->metrics, err))))
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
    tr.conv = c->conv; /* labels go to the head in its convention */
    if (c->sync) {
        tr.sync = c->sync;
        tr.sync_ctx = c->sync_ctx;
        tr.sync_every = c->sync_every;
        if ((rc = siam_trainer_sync(&tr, err))) /* join: start from the global model */
            goto done;
    }
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
        rc = siam_trainer_epoch(&tr, &train, &mine, head, head_ctx, on_step, &rs, &loss, err);
        te = siam_now() - te;
        siam_progress_end(&rs.progress, tr.step - rs.step0, mine.n, loss);
        if (!rc && tr.sync && tr.samples_since_sync > 0) /* evaluate the global model */
            rc = siam_trainer_sync(&tr, err);
        if (rc)
            goto done;
        train_time += te;
        trained_pairs += mine.n;
        if ((rc = siam_evaluate_distances(m, &test, &test_pairs, c->margin, SIAM_LABELS_SIMILAR,
                                          dist, &val_loss, err)))
            goto done;
        double acc = siam_metrics_accuracy(dist, test_pairs.labels, test_pairs.n, c->margin / 2);
        double auc = 0.0;
        if ((rc = siam_metrics_roc_auc(dist, test_pairs.labels, test_pairs.n, &auc, err)))
            goto done;
        LOG_INFO(COMPONENT,
                 "epoch %d/%d%s loss=%.4f val_loss=%.4f accuracy=%.4f roc_auc=%.4f pairs/s=%.0f", e,
                 c->epochs, who, loss, val_loss, acc, auc, (double)mine.n / te);
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
    if ((rc = siam_evaluate_distances(m, &train, &mine, c->margin, SIAM_LABELS_SIMILAR, train_dist,
                                      NULL, err)) ||
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

void siam_worker_options(siam_worker_config *c, int *threads, siam_option *out) {
    c->model = "mlp";
    c->optimizer = "adam";
    c->data = SIAM_DATA_DIR_DEFAULT;
    c->epochs = 5;
    c->batch = 0;
    c->lr = 1e-3f;
    c->seed = 42;
    c->worker_index = 0;
    c->workers = 1;
    *threads = 0;
    const siam_option opts[SIAM_WORKER_N_OPTIONS] = {
        {"model", SIAM_OPT_STRING, &c->model, 0, 0, NULL, "mlp|cnn|cnn2|SPEC",
         "embedding network: a builder name or a spec (docs/DESIGN.md)"},
        {"epochs", SIAM_OPT_INT, &c->epochs, 1, 1000, NULL, "N", "passes over the training pairs"},
        {"batch-size", SIAM_OPT_INT, &c->batch, 0, 65536, NULL, "B",
         "pairs per step; 0 = the model's reference default (mlp 857, others 128)"},
        {"lr", SIAM_OPT_FLOAT, &c->lr, 1e-8, 10, NULL, "RATE", "learning rate"},
        {"optimizer", SIAM_OPT_CHOICE, &c->optimizer, 0, 0, "adam|sgd", NULL, "optimizer"},
        {"seed", SIAM_OPT_U64, &c->seed, 0, 9e18, NULL, "N",
         "seed for pairs, shuffling, initialisation, dropout"},
        {"data", SIAM_OPT_STRING, &c->data, 0, 0, NULL, "DIR", "Fashion-MNIST IDX directory"},
        {"train-limit", SIAM_OPT_U64, &c->train_limit, 0, 1e9, NULL, "N",
         "use only the first N training images (0 = all)"},
        {"test-limit", SIAM_OPT_U64, &c->test_limit, 0, 1e9, NULL, "N",
         "use only the first N test images (0 = all)"},
        {"worker-index", SIAM_OPT_INT, &c->worker_index, 0, 65535, NULL, "I",
         "train on shard I of the training pairs"},
        {"workers", SIAM_OPT_INT, &c->workers, 1, 65536, NULL, "N", "number of shards"},
        {"checkpoint", SIAM_OPT_STRING, &c->checkpoint, 0, 0, NULL, "PATH",
         "write the trained model here (atomically)"},
        {"metrics", SIAM_OPT_STRING, &c->metrics, 0, 0, NULL, "FILE.csv",
         "write step and epoch metrics as CSV"},
        {"json", SIAM_OPT_FLAG, &c->json, 0, 0, NULL, NULL, "print the final report as JSON"},
        {"threads", SIAM_OPT_INT, threads, 0, 256, NULL, "N",
         "OpenBLAS threads (0 = library default)"},
    };
    memcpy(out, opts, sizeof opts);
}

int siam_worker_check_options(siam_worker_config *c) {
    if (c->worker_index >= c->workers) {
        fprintf(stderr, "%s: --worker-index %d must be below --workers %d\n", c->prog,
                c->worker_index, c->workers);
        return 2;
    }
    /* refused here, before any data is read, so a typo costs no loading time */
    siam_error err = {0};
    if (siam_model_spec_parse(c->model, NULL, NULL, &err) != SIAM_OK) {
        fprintf(stderr, "%s: --model '%s' is not mlp|cnn|cnn2 or a valid spec: %s\n", c->prog,
                c->model, err.msg);
        return 2;
    }
    /* 857 is the mlp's reference batch; the conv models and specs take the cnn's 128 */
    if (c->batch == 0)
        c->batch = strcmp(c->model, "mlp") == 0 ? 857 : 128;
    return -1;
}
