/* siam_recipe: the recipe table and the --recipe pre-scan. The figures each recipe reaches, and
 * the runs that chose its values, are in docs/BENCHMARKS.md ("Recipes"). */
#include "siam_recipe.h"

#include <string.h>

static const siam_recipe RECIPES[] = {
    {
        .name = "pairs",
        .summary = "the original design: mlp, contrastive loss on pairs, margin 1, 10 epochs",
        .model = "mlp",
        .head = "pairs",
        .epochs = 10,
        .batch = 128,
        .classes_per_batch = 8,
        .images_per_class = 4,
        .augment = "none",
        .lr = 1e-3f,
        .lr_schedule = "constant",
        .sync_every = 50,
        .eval_every = 1,
        .loss = NULL,
        .distance = "euclidean",
        .margin = 1.0f,
        .hard_after = 0.4f,
    },
    {
        .name = "mlp",
        .summary = "mlp2 (64-d unit-length embedding), semi-hard triplets over 10 x 16 batches, "
                   "margin 0.2, cosine rate, 20 epochs",
        .model = "mlp2",
        .head = "set",
        .epochs = 20,
        .batch = 0,
        .classes_per_batch = 10,
        .images_per_class = 16,
        .augment = "none",
        .lr = 1e-3f,
        .lr_schedule = "cosine",
        .sync_every = 50,
        .eval_every = 5,
        .loss = "semi-hard",
        .distance = "euclidean",
        .margin = 0.2f,
        .hard_after = 0.4f,
    },
    {
        .name = "cnn",
        .summary = "cnn2 (64-d unit-length embedding), semi-hard triplets over 10 x 16 batches, "
                   "margin 0.2, mirror and shift augmentation, cosine rate, 30 epochs",
        .model = "cnn2",
        .head = "set",
        .epochs = 30,
        .batch = 0,
        .classes_per_batch = 10,
        .images_per_class = 16,
        .augment = "flip-shift",
        .lr = 1e-3f,
        .lr_schedule = "cosine",
        .sync_every = 50,
        .eval_every = 5,
        .loss = "semi-hard",
        .distance = "euclidean",
        .margin = 0.2f,
        .hard_after = 0.4f,
    },
};

#define N_RECIPES ((int)(sizeof RECIPES / sizeof RECIPES[0]))

const siam_recipe *siam_recipe_find(const char *name) {
    for (int i = 0; name && i < N_RECIPES; i++)
        if (strcmp(RECIPES[i].name, name) == 0)
            return &RECIPES[i];
    return NULL;
}

int siam_recipe_lookup(const char *name, const siam_recipe **out, siam_error *err) {
    *out = siam_recipe_find(name);
    if (!*out)
        return siam_error_set(err, SIAM_ERR_ARG, "no recipe called '%s' (recipes: %s)",
                              name ? name : "", siam_recipe_choices());
    return SIAM_OK;
}

const char *siam_recipe_choices(void) {
    return "pairs|mlp|cnn";
}

int siam_recipe_count(void) {
    return N_RECIPES;
}

const siam_recipe *siam_recipe_at(int i) {
    return i >= 0 && i < N_RECIPES ? &RECIPES[i] : NULL;
}

const char *siam_recipe_in_argv(int argc, char **argv) {
    static const char flag[] = "--recipe";
    const size_t len = sizeof flag - 1;
    const char *found = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], flag) == 0) {
            if (i + 1 < argc)
                found = argv[++i];
        } else if (strncmp(argv[i], flag, len) == 0 && argv[i][len] == '=') {
            found = argv[i] + len + 1;
        }
    }
    return found;
}
