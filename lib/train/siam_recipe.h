/* siam_recipe: named training recipes, the measured settings of model, loss head, loss, sampling
 * and learning-rate schedule that give the results in docs/BENCHMARKS.md, so that a user gets
 * them with one flag (--recipe NAME) instead of nine. A recipe only sets defaults: every option
 * given on the command line still wins, wherever it stands relative to --recipe.
 *
 * The same table serves the worker programs (model, head, sampling, schedule) and siam-server
 * (loss, distance, margin, the facenet switch), so a server and its workers started with the same
 * --recipe agree. */
#ifndef SIAM_RECIPE_H
#define SIAM_RECIPE_H

#include "siam_error.h"

typedef struct {
    const char *name;
    const char *summary; /* one line: what it is and what it reaches */
    /* the worker's side */
    const char *model; /* a builder name or a spec */
    const char *head;  /* "pairs" | "set" */
    int epochs;
    int batch;             /* pairs per step (head "pairs"); 0 = the model's default */
    int classes_per_batch; /* P (head "set") */
    int images_per_class;  /* K (head "set") */
    const char *augment;   /* head "set": "none", "flip", "shift", "flip-shift" */
    float lr;
    const char *lr_schedule; /* "constant" | "step" | "cosine" */
    float warmup_epochs;
    int sync_every; /* steps between weight averages (siam-client) */
    int eval_every; /* test-pair evaluation every N epochs and the last (0 = the last only) */
    /* the loss head's side (siam-server, or siam-train in process) */
    const char *loss;     /* set loss name (head "set"); the pair head is contrastive */
    const char *distance; /* "euclidean" | "squared" */
    float margin;
    float hard_after; /* facenet: the fraction of training mined semi-hard */
} siam_recipe;

/* The recipe called name, or NULL. */
const siam_recipe *siam_recipe_find(const char *name);

/* As find, but SIAM_ERR_ARG naming the recipes when there is none called name. */
int siam_recipe_lookup(const char *name, const siam_recipe **out, siam_error *err);

/* "pairs|mlp|cnn": the names, for --help and messages. */
const char *siam_recipe_choices(void);

/* Number of recipes and the i-th (0-based; NULL past the end), for documentation and tests. */
int siam_recipe_count(void);
const siam_recipe *siam_recipe_at(int i);

/* The value of "--recipe NAME" or "--recipe=NAME" in argv[1..argc), the last one if repeated, or
 * NULL. Programs call this before parsing their options so that the recipe's values become the
 * defaults that explicit options then override. */
const char *siam_recipe_in_argv(int argc, char **argv);

#endif
