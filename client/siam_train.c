/* siam-train: trains the Siamese embedding network locally (loss head in-process, no server) on
 * Fashion-MNIST pairs and reports how well it separates same from different pairs. */
#include <stdio.h>
#include <string.h>

#include "siam_dataset.h"
#include "siam_log.h"
#include "siam_options.h"
#include "siam_tensor.h"
#include "siam_trainer.h"
#include "siam_worker.h"

typedef struct {
    const char *model, *optimizer, *labels, *data, *checkpoint, *metrics, *log_level;
    int epochs, batch, threads, worker_index, workers, json;
    float lr, margin;
    uint64_t seed, train_limit, test_limit;
} config;

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
    siam_label_convention conv =
        strcmp(c.labels, "dissimilar") == 0 ? SIAM_LABELS_DISSIMILAR : SIAM_LABELS_SIMILAR;
    siam_local_head head = {c.margin, conv};
    siam_worker_config wc = {.prog = "siam-train",
                             .model = c.model,
                             .optimizer = c.optimizer,
                             .data = c.data,
                             .checkpoint = c.checkpoint,
                             .metrics = c.metrics,
                             .epochs = c.epochs,
                             .batch = c.batch,
                             .worker_index = c.worker_index,
                             .workers = c.workers,
                             .json = c.json,
                             .lr = c.lr,
                             .margin = c.margin,
                             .conv = conv,
                             .seed = c.seed,
                             .train_limit = c.train_limit,
                             .test_limit = c.test_limit};
    siam_error err = {0};
    rc = siam_worker_run(&wc, siam_local_head_fn, &head, &err);
    if (rc) {
        fprintf(stderr, "siam-train: error: %s\n", err.msg);
        return 1;
    }
    return 0;
}
