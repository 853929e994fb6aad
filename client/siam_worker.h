/* siam_worker: one worker's training run, shared by siam-train (loss head in-process) and
 * siam-client (loss head on siam-server): loads the data, makes and shards the pairs, trains the
 * epochs through the given loss head, evaluates on the test pairs after every epoch, writes the
 * metrics CSV and the checkpoint (atomically) and prints the final report. */
#ifndef SIAM_WORKER_H
#define SIAM_WORKER_H

#include <stdint.h>

#include "siam_error.h"
#include "siam_loss.h"
#include "siam_options.h"
#include "siam_set_trainer.h"
#include "siam_trainer.h"

typedef struct {
    const char *prog;       /* "siam-train" / "siam-client": names the report */
    const char *model;      /* "mlp", "cnn", "cnn2" or a spec */
    const char *optimizer;  /* "adam" | "sgd" */
    const char *data;       /* Fashion-MNIST directory */
    const char *checkpoint; /* NULL = none */
    const char *metrics;    /* CSV path, NULL = none */
    int epochs, batch, worker_index, workers, json;
    float lr;
    float margin;               /* evaluation: same at D <= margin/2; validation loss */
    siam_label_convention conv; /* the head's: labels are sent 1 = different under DISSIMILAR */
    uint64_t seed, train_limit, test_limit;
    /* weight averaging (NULL = none): join before the first step, sync every sync_every steps
     * and at the end of every epoch, so that every epoch is evaluated on the global model */
    siam_sync_fn sync;
    void *sync_ctx;
    int sync_every;
    /* --head set: train on P x K batches of this worker's shard of the training images through
     * set_head instead of on pairs through the pair head (the test pairs evaluate either way) */
    const char *head; /* "pairs" | "set" */
    int classes_per_batch, images_per_class;
    siam_set_head_fn set_head;
    void *set_head_ctx;
} siam_worker_config;

/* The command-line options every training program shares, bound to c's fields and to
 * *threads (OpenBLAS threads): --model --epochs --batch-size --lr --optimizer --seed --data
 * --train-limit --test-limit --worker-index --workers --checkpoint --metrics --json --threads
 * --head --classes-per-batch --images-per-class.
 * Fills c with their defaults and writes SIAM_WORKER_N_OPTIONS entries to out. */
#define SIAM_WORKER_N_OPTIONS 18
void siam_worker_options(siam_worker_config *c, int *threads, siam_option *out);

/* After parsing: refuses --worker-index >= --workers and a --model that is neither a builder
 * name nor a valid spec (prints "prog: ..." and returns 2) and
 * turns --batch-size 0 into the model's reference default (mlp 857, others 128). Returns -1 when
 * the program should go on. */
int siam_worker_check_options(siam_worker_config *c);

/* Runs the whole job; head/head_ctx compute the loss of every pair batch (c->head "pairs"),
 * c->set_head/set_head_ctx that of every P x K batch (c->head "set"). */
int siam_worker_run(const siam_worker_config *c, siam_loss_head_fn head, void *head_ctx,
                    siam_error *err);

#endif
