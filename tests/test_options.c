/* test_options: the option table parser every program uses: values, bounds, choices, flags,
 * --name=value, missing values, unknown options, and help generated from the table. */
#include "test_util.h"

#include <string.h>

#include "siam_options.h"

typedef struct {
    int epochs, json;
    float lr;
    uint64_t seed;
    const char *model, *data;
} cfg;

static int parse(cfg *c, siam_error *err, int argc, char **argv) {
    const siam_option opts[] = {
        {"epochs", SIAM_OPT_INT, &c->epochs, 1, 100, NULL, "N", "epochs"},
        {"lr", SIAM_OPT_FLOAT, &c->lr, 1e-6, 1, NULL, "RATE", "learning rate"},
        {"seed", SIAM_OPT_U64, &c->seed, 0, 1e18, NULL, "N", "seed"},
        {"model", SIAM_OPT_CHOICE, &c->model, 0, 0, "mlp|cnn", NULL, "model"},
        {"data", SIAM_OPT_STRING, &c->data, 0, 0, NULL, "DIR", "data"},
        {"json", SIAM_OPT_FLAG, &c->json, 0, 0, NULL, NULL, "json"},
    };
    return siam_options_parse(opts, 6, argc, argv, 1, err);
}

#define ARGV(...)          ((char *[]){"prog", __VA_ARGS__, NULL})
#define ARGC(...)          ((int)(sizeof((char *[]){"prog", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(c, err, ...) parse((c), (err), ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static void check_refused(const char *needle, int rc, const siam_error *err) {
    CHECK(rc == SIAM_ERR_ARG, "refused (rc %d) for '%s'", rc, needle);
    CHECK(strstr(err->msg, needle) != NULL, "message '%s' lacks '%s'", err->msg, needle);
}

int main(void) {
    cfg c = {5, 0, 1e-3f, 42, "mlp", "/data"};
    siam_error err = {0};
    int rc = PARSE(&c, &err, "--epochs", "7", "--lr=0.01", "--seed", "18446744", "--model", "cnn",
                   "--data", "/x", "--json");
    CHECK(rc == SIAM_OPTIONS_RUN, "parse: %s", err.msg);
    CHECK(c.epochs == 7 && c.json == 1 && c.seed == 18446744u, "values");
    CHECK_NEAR(c.lr, 0.01, 1e-9, "--lr=0.01");
    CHECK(strcmp(c.model, "cnn") == 0 && strcmp(c.data, "/x") == 0, "strings");

    check_refused("--epochs 0 is out of range (1 to 100)", PARSE(&c, &err, "--epochs", "0"), &err);
    check_refused("--epochs expects a number, got '7x'", PARSE(&c, &err, "--epochs", "7x"), &err);
    check_refused("--lr expects a number, got 'nan'", PARSE(&c, &err, "--lr", "nan"), &err);
    check_refused("--seed expects a number, got '-1'", PARSE(&c, &err, "--seed", "-1"), &err);
    check_refused("--model 'vgg' is not one of mlp|cnn", PARSE(&c, &err, "--model", "vgg"), &err);
    check_refused("--data needs a value (DIR)", PARSE(&c, &err, "--data"), &err);
    check_refused("--data needs a non-empty value", PARSE(&c, &err, "--data="), &err);
    check_refused("--json takes no value", PARSE(&c, &err, "--json=1"), &err);
    check_refused("unknown option '--epoch'", PARSE(&c, &err, "--epoch", "3"), &err);
    check_refused("unexpected argument 'train'", PARSE(&c, &err, "train"), &err);
    CHECK(PARSE(&c, &err, "--epochs", "3", "--help") == SIAM_OPTIONS_HELP, "--help");
    CHECK(PARSE(&c, &err, "-h") == SIAM_OPTIONS_HELP, "-h");
    CHECK(PARSE(&c, &err, "--version") == SIAM_OPTIONS_VERSION, "--version");

    /* help lists every option with its current value as the default */
    cfg d = {5, 0, 1e-3f, 42, "mlp", "/data"};
    const siam_option opts[] = {
        {"epochs", SIAM_OPT_INT, &d.epochs, 1, 100, NULL, "N", "passes"},
        {"model", SIAM_OPT_CHOICE, &d.model, 0, 0, "mlp|cnn", NULL, "network"},
    };
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    siam_options_help(f, "prog [OPTIONS]", "Does things.", opts, 2);
    fclose(f);
    CHECK(strstr(text, "Usage: prog [OPTIONS]") != NULL, "usage line");
    CHECK(strstr(text, "--epochs N") && strstr(text, "passes (default 5)"), "epochs line: %s",
          text);
    CHECK(strstr(text, "--model mlp|cnn") && strstr(text, "(default mlp)"), "model line");
    CHECK(strstr(text, "--help") && strstr(text, "--version"), "help and version listed");
    free(text);
    return tu_finish();
}
