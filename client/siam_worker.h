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
#include "siam_recipe.h"
#include "siam_rpc.h"
#include "siam_set_trainer.h"
#include "siam_trainer.h"

typedef struct {
    const char *prog;       /* "siam-train" / "siam-client": names the report */
    const char *recipe;     /* --recipe: applied before parsing by siam_worker_preset */
    const char *model;      /* "mlp", "mlp2", "cnn", "cnn2" or a spec */
    const char *optimizer;  /* "adam" | "sgd" */
    const char *data;       /* Fashion-MNIST directory */
    const char *checkpoint; /* NULL = none */
    const char *metrics;    /* CSV path, NULL = none */
    int epochs, batch, worker_index, workers, json;
    int eval_every; /* test-pair evaluation after every N-th epoch and the last; 0 = last only */
    float lr;
    /* the learning-rate schedule (lib/nn/siam_schedule.h) over the --epochs, as plain values that
     * a preset may set before siam_worker_check_options checks them */
    const char *lr_schedule;    /* "constant" (the fixed --lr), "step" or "cosine" */
    const char *lr_drop_epochs; /* step: "15" or "10,15", the epochs after which the rate is
                                 * multiplied by lr_drop_factor; NULL or "" = none */
    float lr_drop_factor;       /* step: 0.1 */
    float lr_floor;             /* cosine: the final rate, 0 */
    float warmup_epochs;        /* linear warm-up over the first W epochs, any schedule; 0 = none */
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
    const char *augment; /* --head set: "none", "flip", "shift" or "flip-shift" (siam_augment) */
    siam_set_head_fn set_head;
    void *set_head_ctx;
    /* --head set: the set trainer writes the fraction of training done (0..1) here before every
     * head call, for set_head to read (the facenet loss: siam_local_set_head.progress in process,
     * EmbeddingSet.progress over the wire); NULL = nowhere */
    float *set_progress;
    /* --head pairs with several batches in flight (siam-client --in-flight): in_flight K > 1
     * trains through split instead of the pair head (siam_trainer_set_in_flight); 0 or 1 = one
     * batch at a time */
    int in_flight;
    siam_split_head split;
    /* siam-client: its channel's traffic so far (siam_rpc_channel_traffic on ctx), for the final
     * report (bytes per RPC, bytes per pair or image of the training RPC) and the metrics'
     * bytes_sent and bytes_received; NULL (siam-train, no wire): neither */
    int (*traffic)(void *ctx, siam_rpc_traffic *rows, int max);
    void *traffic_ctx;
} siam_worker_config;

/* The command-line options every training program shares, bound to c's fields and to
 * *threads (OpenBLAS threads): --recipe --model --epochs --batch-size --lr --lr-schedule
 * --lr-drop-epochs
 * --lr-drop-factor --lr-floor --warmup-epochs --optimizer --seed --data --train-limit
 * --test-limit --worker-index --workers --checkpoint --metrics --json --threads --eval-every
 * --augment --head
 * --classes-per-batch --images-per-class.
 * Fills c with their defaults and writes SIAM_WORKER_N_OPTIONS entries to out. */
#define SIAM_WORKER_N_OPTIONS 26
void siam_worker_options(siam_worker_config *c, int *threads, siam_option *out);

/* Before parsing (after siam_worker_options): finds --recipe in argv and, when there is one,
 * makes its worker-side values (model, head, epochs, batch, sampling, rate and schedule) c's
 * defaults, so the options parsed next override them; *out is the recipe or NULL. Prints
 * "prog: ..." naming the recipes and returns 2 for an unknown name; -1 to go on. */
int siam_worker_preset(siam_worker_config *c, int argc, char **argv, const siam_recipe **out);

/* After parsing: refuses --worker-index >= --workers, a --model that is neither a builder
 * name nor a valid spec and a learning-rate schedule that does not hold together (a step
 * schedule without drop epochs, a drop at or after the last epoch, an option of one schedule
 * given with another, a warm-up as long as the training; prints "prog: ..." naming the flag and
 * the fix, and returns 2) and
 * turns --batch-size 0 into the model's reference default (mlp 857, others 128). Returns -1 when
 * the program should go on. */
int siam_worker_check_options(siam_worker_config *c);

/* Runs the whole job; head/head_ctx compute the loss of every pair batch (c->head "pairs"),
 * c->set_head/set_head_ctx that of every P x K batch (c->head "set"). */
int siam_worker_run(const siam_worker_config *c, siam_loss_head_fn head, void *head_ctx,
                    siam_error *err);

#endif
