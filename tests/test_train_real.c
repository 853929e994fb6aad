/* test_train_real: the mlp trained locally for one epoch over all 119,980 real training pairs
 * (batch 128) must reach accuracy >= 0.75 and ROC AUC >= 0.88 on the 19,980 test pairs. */
#include "test_util.h"

#include <stdlib.h>

#include "siam_dataset.h"
#include "siam_log.h"
#include "siam_metrics.h"
#include "siam_model.h"
#include "siam_pairs.h"
#include "siam_trainer.h"

typedef struct {
    double first, last; /* mean loss of the first and last 100 steps */
    uint64_t steps;
    double loss_at_100, prev_mean;
    uint64_t prev_step;
} loss_track;

static void on_step(void *ctx, uint64_t s, uint64_t steps, uint64_t pairs, double mean) {
    (void)pairs;
    loss_track *t = ctx;
    t->steps = steps;
    if (s == 100)
        t->first = mean; /* running mean of steps 1..100 */
    if (s == steps - 100) {
        t->prev_mean = mean;
        t->prev_step = s;
    }
    if (s == steps) /* mean of the last 100 steps from two running means */
        t->last =
            (mean * (double)s - t->prev_mean * (double)t->prev_step) / (double)(s - t->prev_step);
}

int main(void) {
    const char *dir = getenv("SIAM_DATA_DIR");
    siam_error err = {0};
    siam_dataset train = {0}, test = {0};
    siam_pairs pairs = {0}, test_pairs = {0};
    siam_model *m = NULL;
    siam_trainer tr = {0};
    if (siam_dataset_load(&train, dir, SIAM_SPLIT_TRAIN, 0, &err) ||
        siam_dataset_load(&test, dir, SIAM_SPLIT_TEST, 0, &err)) {
        fprintf(stderr, "FAIL: %s\n(install the data with scripts/install-deps.sh)\n", err.msg);
        return 1;
    }
    CHECK(siam_pairs_make(&pairs, train.labels, train.n, 10, 42, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_pairs_make(&test_pairs, test.labels, test.n, 10, 43, &err) == SIAM_OK, "%s",
          err.msg);
    CHECK(pairs.n == 119980 && test_pairs.n == 19980, "pairs %zu / %zu", pairs.n, test_pairs.n);
    siam_pairs_shuffle(&pairs, 42);
    CHECK(siam_model_create(&m, "mlp", 42, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_trainer_init(&tr, m, SIAM_OPTIM_ADAM, 1e-3f, 128, &err) == SIAM_OK, "%s", err.msg);
    if (tu_failures)
        return tu_finish();

    siam_local_head head = {1.0f, SIAM_LABELS_SIMILAR};
    loss_track track = {0};
    double mean_loss, t0 = siam_now();
    int rc = siam_trainer_epoch(&tr, &train, &pairs, siam_local_head_fn, &head, on_step, &track,
                                &mean_loss, &err);
    double secs = siam_now() - t0;
    CHECK(rc == SIAM_OK, "epoch: %s", err.msg);
    CHECK(tr.step == 938, "steps %llu (119,980 / 128 rounded up)", (unsigned long long)tr.step);
    printf("one epoch: %.2f s, %.0f pairs/s, mean loss %.4f (first 100 steps %.4f, last 100 "
           "%.4f)\n",
           secs, (double)pairs.n / secs, mean_loss, track.first, track.last);
    CHECK(track.last < 0.75 * track.first, "loss did not fall: %.4f -> %.4f", track.first,
          track.last);

    float *dist = malloc(test_pairs.n * sizeof *dist);
    double val_loss;
    siam_pair_report rep;
    CHECK(siam_evaluate_distances(m, &test, &test_pairs, 1.0f, SIAM_LABELS_SIMILAR, dist, &val_loss,
                                  &err) == SIAM_OK,
          "%s", err.msg);
    CHECK(siam_metrics_report(dist, test_pairs.labels, test_pairs.n, 0.5f, &rep, &err) == SIAM_OK,
          "%s", err.msg);
    printf("test pairs: accuracy %.4f, ROC AUC %.4f, val loss %.4f, VAL@FAR1e-3 %.4f, "
           "positive D %.3f +- %.3f, negative D %.3f +- %.3f\n",
           rep.accuracy, rep.auc, val_loss, rep.val, rep.stats.pos_mean, rep.stats.pos_std,
           rep.stats.neg_mean, rep.stats.neg_std);
    CHECK(rep.accuracy >= 0.75, "test accuracy %.4f < 0.75", rep.accuracy);
    CHECK(rep.auc >= 0.88, "test ROC AUC %.4f < 0.88", rep.auc);
    CHECK(rep.stats.pos_mean < rep.stats.neg_mean, "positives closer than negatives");

    free(dist);
    siam_trainer_free(&tr);
    siam_model_free(m);
    siam_pairs_free(&pairs);
    siam_pairs_free(&test_pairs);
    siam_dataset_free(&train);
    siam_dataset_free(&test);
    return tu_finish();
}
