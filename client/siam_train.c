/* siam-train: trains the Siamese embedding network locally (loss head in-process, no server) on
 * Fashion-MNIST pairs and reports how well it separates same from different pairs. */
#include <stdio.h>
#include <string.h>

#include "siam_log.h"
#include "siam_memory.h"
#include "siam_options.h"
#include "siam_tensor.h"
#include "siam_trainer.h"
#include "siam_worker.h"

int main(int argc, char **argv) {
    siam_worker_config wc = {.prog = "siam-train"};
    const char *labels = "similar", *log_level = "info", *loss = "semi-hard";
    float margin = 1.0f, hard_after = 0.4f;
    int threads;
    siam_option opts[SIAM_WORKER_N_OPTIONS + 5];
    siam_worker_options(&wc, &threads, opts);
    int n_opts = SIAM_WORKER_N_OPTIONS;
    const siam_recipe *recipe;
    int rc = siam_worker_preset(&wc, argc, argv, &recipe);
    if (rc >= 0)
        return rc;
    if (recipe) { /* the loss head's side of the recipe: here, in process */
        margin = recipe->margin;
        hard_after = recipe->hard_after;
        if (recipe->loss)
            loss = recipe->loss;
    }
    opts[n_opts++] = (siam_option){
        "margin", SIAM_OPT_FLOAT, &margin, 1e-6,
        1e6,      NULL,           "M",     "contrastive margin; pairs count as same at D <= M/2"};
    opts[n_opts++] = (siam_option){"label-convention",
                                   SIAM_OPT_CHOICE,
                                   &labels,
                                   0,
                                   0,
                                   "similar|dissimilar",
                                   NULL,
                                   "which pairs label 1 marks in the loss"};
    opts[n_opts++] = (siam_option){"loss",
                                   SIAM_OPT_STRING,
                                   &loss,
                                   0,
                                   0,
                                   NULL,
                                   "NAME",
                                   "--head set: the set loss (contrastive, batch-all, batch-hard, "
                                   "semi-hard, batch-hard-soft, facenet) with margin --margin"};
    opts[n_opts++] = (siam_option){"hard-after",
                                   SIAM_OPT_FLOAT,
                                   &hard_after,
                                   0,
                                   1,
                                   NULL,
                                   "F",
                                   "--loss facenet: mine semi-hard for this fraction of the "
                                   "training, batch-hard after"};
    opts[n_opts++] =
        (siam_option){"log-level", SIAM_OPT_CHOICE,         &log_level, 0,
                      0,           "debug|info|warn|error", NULL,       "stderr log level"};
    rc = siam_options_main("siam-train", SIAM_VERSION,
                           "Train the Siamese embedding network locally (contrastive loss "
                           "in-process, no server)\non Fashion-MNIST pairs, then report pair "
                           "accuracy, ROC AUC and VAL on the test pairs.",
                           opts, n_opts, argc, argv);
    if (rc >= 0 || (rc = siam_worker_check_options(&wc)) >= 0)
        return rc;
    siam_error err = {0};
    float progress = 0.0f; /* the set trainer's, for facenet */
    siam_local_set_head set_head = {.cfg = siam_set_loss_default(), .progress = &progress};
    set_head.cfg.margin = margin;
    set_head.cfg.hard_after = hard_after;
    if (siam_set_loss_parse(&set_head.cfg, loss, &err) != SIAM_OK) {
        fprintf(stderr, "siam-train: --loss: %s\n", err.msg);
        return 2;
    }
    if (hard_after != 0.4f && set_head.cfg.mode != SIAM_SET_FACENET) {
        fprintf(stderr,
                "siam-train: --hard-after %g applies to --loss facenet only, and the loss is %s: "
                "add --loss facenet or leave --hard-after out\n",
                (double)hard_after, loss);
        return 2;
    }
    wc.set_head = siam_local_set_head_fn;
    wc.set_head_ctx = &set_head;
    wc.set_progress = &progress;
    int level;
    siam_log_parse_level(log_level, &level, NULL);
    siam_log_set_level(level);
    siam_blas_set_threads(threads);
    siam_malloc_keep_memory(); /* the set loss's n x n workspaces: 2.3x faster at n = 256 */
    wc.margin = margin;
    wc.conv = strcmp(labels, "dissimilar") == 0 ? SIAM_LABELS_DISSIMILAR : SIAM_LABELS_SIMILAR;
    siam_local_head head = {margin, wc.conv};
    if (strcmp(wc.head, "set") == 0)
        LOG_INFO("train", "set head in process: %s, margin %g, %d classes x %d images per batch",
                 siam_set_loss_name(&set_head.cfg), (double)margin, wc.classes_per_batch,
                 wc.images_per_class);
    if (strcmp(wc.head, "set") == 0 && set_head.cfg.mode == SIAM_SET_FACENET)
        LOG_INFO("train",
                 "facenet: semi-hard mining for the first %g%% of the training, batch-hard "
                 "after",
                 100.0 * (double)hard_after);
    rc = siam_worker_run(&wc, siam_local_head_fn, &head, &err);
    if (rc) {
        fprintf(stderr, "siam-train: error: %s\n", err.msg);
        return 1;
    }
    return 0;
}
