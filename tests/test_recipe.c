/* test_recipe: every recipe in the table names things the programs accept (a model that
 * parses, a head, a set loss and a schedule that parse, a sampling that makes a set batch), the
 * choices string lists exactly the table, and the --recipe pre-scan finds what the option parser
 * would. */
#include "test_util.h"

#include <stdio.h>
#include <string.h>

#include "siam_model.h"
#include "siam_recipe.h"
#include "siam_schedule.h"
#include "siam_set_loss.h"

static void test_table(void) {
    char names[256] = "";
    CHECK(siam_recipe_count() >= 3, "%d recipes", siam_recipe_count());
    for (int i = 0; i < siam_recipe_count(); i++) {
        const siam_recipe *r = siam_recipe_at(i);
        siam_error err = {0};
        size_t n_params = 0;
        CHECK(siam_model_spec_parse(r->model, NULL, &n_params, &err) == SIAM_OK && n_params > 0,
              "%s: model '%s': %s", r->name, r->model, err.msg);
        CHECK(strcmp(r->head, "pairs") == 0 || strcmp(r->head, "set") == 0, "%s: head '%s'",
              r->name, r->head);
        if (strcmp(r->head, "set") == 0) {
            siam_set_loss_config cfg = siam_set_loss_default();
            CHECK(r->loss && siam_set_loss_parse(&cfg, r->loss, &err) == SIAM_OK,
                  "%s: set loss '%s': %s", r->name, r->loss ? r->loss : "(none)", err.msg);
            CHECK(r->classes_per_batch >= 2 && r->images_per_class >= 2 &&
                      r->classes_per_batch * r->images_per_class <= SIAM_SET_LOSS_MAX_N,
                  "%s: %d x %d batches", r->name, r->classes_per_batch, r->images_per_class);
        }
        siam_schedule_kind kind;
        CHECK(siam_schedule_parse(&kind, r->lr_schedule, &err) == SIAM_OK, "%s: schedule '%s'",
              r->name, r->lr_schedule);
        CHECK(strcmp(r->distance, "euclidean") == 0 || strcmp(r->distance, "squared") == 0,
              "%s: distance '%s'", r->name, r->distance);
        CHECK(r->epochs >= 1 && r->lr > 0 && r->margin > 0 && r->sync_every >= 0 &&
                  r->warmup_epochs >= 0 && r->warmup_epochs < r->epochs && r->hard_after >= 0 &&
                  r->hard_after <= 1 && r->batch >= 0,
              "%s: numbers out of range", r->name);
        CHECK(r->summary && r->summary[0], "%s: no summary", r->name);
        CHECK(siam_recipe_find(r->name) == r, "%s: find", r->name);
        if (i)
            strcat(names, "|");
        strcat(names, r->name);
    }
    CHECK(strcmp(names, siam_recipe_choices()) == 0, "choices '%s', table '%s'",
          siam_recipe_choices(), names);
    CHECK(siam_recipe_at(-1) == NULL && siam_recipe_at(siam_recipe_count()) == NULL, "at bounds");
    CHECK(siam_recipe_find("nope") == NULL && siam_recipe_find(NULL) == NULL, "find unknown");
    const siam_recipe *r = (const siam_recipe *)1;
    siam_error err = {0};
    CHECK(siam_recipe_lookup("nope", &r, &err) == SIAM_ERR_ARG && r == NULL &&
              strstr(err.msg, "'nope'") && strstr(err.msg, siam_recipe_choices()),
          "lookup unknown: '%s'", err.msg);
}

static void test_argv(void) {
    char *a1[] = {"prog", "--epochs", "3", "--recipe", "cnn", NULL};
    CHECK(strcmp(siam_recipe_in_argv(5, a1), "cnn") == 0, "--recipe NAME");
    char *a2[] = {"prog", "--recipe=mlp", NULL};
    CHECK(strcmp(siam_recipe_in_argv(2, a2), "mlp") == 0, "--recipe=NAME");
    char *a3[] = {"prog", "--recipe", "mlp", "--recipe=cnn", NULL};
    CHECK(strcmp(siam_recipe_in_argv(4, a3), "cnn") == 0, "the last one wins, as in parsing");
    char *a4[] = {"prog", "--recipe", NULL};
    CHECK(siam_recipe_in_argv(2, a4) == NULL, "no value: left to the parser's message");
    char *a5[] = {"prog", "--recipes", "x", "--recipe-x=1", NULL};
    CHECK(siam_recipe_in_argv(4, a5) == NULL, "other options that start alike");
    char *a6[] = {"prog", "--", "--recipe", "cnn", NULL};
    CHECK(siam_recipe_in_argv(4, a6) == NULL, "after --");
    char *a7[] = {"prog", "--recipe=", NULL};
    CHECK(siam_recipe_in_argv(2, a7) && siam_recipe_in_argv(2, a7)[0] == '\0',
          "empty value is found (and then refused by lookup)");
}

int main(void) {
    test_table();
    test_argv();
    return tu_finish();
}
