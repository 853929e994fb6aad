/* siam_options: table-driven --long option parsing with bounds, choices and generated help. */
#include "siam_options.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int choice_ok(const char *choices, const char *v) {
    size_t len = strlen(v);
    const char *s = choices;
    while (*s) {
        const char *bar = strchr(s, '|');
        size_t n = bar ? (size_t)(bar - s) : strlen(s);
        if (n == len && strncmp(s, v, n) == 0)
            return 1;
        s += n + (bar ? 1 : 0);
    }
    return 0;
}

static int set_value(const siam_option *o, const char *v, siam_error *err) {
    char *end;
    errno = 0;
    switch (o->kind) {
    case SIAM_OPT_INT:
    case SIAM_OPT_U64: {
        if (*v == '-' && o->kind == SIAM_OPT_U64)
            goto bad_number;
        long long x = strtoll(v, &end, 10);
        if (end == v || *end || errno)
            goto bad_number;
        if ((double)x < o->min || (double)x > o->max)
            return siam_error_set(err, SIAM_ERR_ARG, "--%s %s is out of range (%.0f to %.0f)",
                                  o->name, v, o->min, o->max);
        if (o->kind == SIAM_OPT_INT)
            *(int *)o->target = (int)x;
        else
            *(uint64_t *)o->target = (uint64_t)x;
        return SIAM_OK;
    }
    case SIAM_OPT_FLOAT: {
        float x = strtof(v, &end);
        if (end == v || *end || errno || !isfinite(x))
            goto bad_number;
        if (x < o->min || x > o->max)
            return siam_error_set(err, SIAM_ERR_ARG, "--%s %s is out of range (%g to %g)", o->name,
                                  v, o->min, o->max);
        *(float *)o->target = x;
        return SIAM_OK;
    }
    case SIAM_OPT_CHOICE:
        if (!choice_ok(o->choices, v))
            return siam_error_set(err, SIAM_ERR_ARG, "--%s '%s' is not one of %s", o->name, v,
                                  o->choices);
        *(const char **)o->target = v;
        return SIAM_OK;
    case SIAM_OPT_STRING:
        if (!*v)
            return siam_error_set(err, SIAM_ERR_ARG, "--%s needs a non-empty value", o->name);
        *(const char **)o->target = v;
        return SIAM_OK;
    case SIAM_OPT_FLAG:
        break;
    }
    return SIAM_OK;
bad_number:
    return siam_error_set(err, SIAM_ERR_ARG, "--%s expects a number, got '%s'", o->name, v);
}

int siam_options_parse(const siam_option *opts, int n_opts, int argc, char **argv, int first,
                       siam_error *err) {
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return SIAM_OPTIONS_HELP;
        if (strcmp(a, "--version") == 0)
            return SIAM_OPTIONS_VERSION;
        if (strncmp(a, "--", 2) != 0)
            return siam_error_set(err, SIAM_ERR_ARG,
                                  "unexpected argument '%s' (options start with --; see --help)",
                                  a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const siam_option *o = NULL;
        for (int k = 0; k < n_opts; k++)
            if (strlen(opts[k].name) == len && strncmp(opts[k].name, name, len) == 0)
                o = &opts[k];
        if (!o)
            return siam_error_set(err, SIAM_ERR_ARG, "unknown option '--%.*s' (see --help)",
                                  (int)len, name);
        if (o->kind == SIAM_OPT_FLAG) {
            if (eq)
                return siam_error_set(err, SIAM_ERR_ARG, "--%s takes no value", o->name);
            *(int *)o->target = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc)
                return siam_error_set(err, SIAM_ERR_ARG, "--%s needs a value (%s)", o->name,
                                      o->metavar ? o->metavar : "VALUE");
            v = argv[++i];
        }
        int rc = set_value(o, v, err);
        if (rc)
            return rc;
    }
    return SIAM_OPTIONS_RUN;
}

void siam_options_help(FILE *f, const char *usage, const char *description, const siam_option *opts,
                       int n_opts) {
    fprintf(f, "Usage: %s\n\n%s\n\nOptions:\n", usage, description);
    for (int k = 0; k < n_opts; k++) {
        const siam_option *o = &opts[k];
        char left[64], def[128] = "";
        if (o->kind == SIAM_OPT_FLAG)
            snprintf(left, sizeof left, "--%s", o->name);
        else
            snprintf(left, sizeof left, "--%s %s", o->name,
                     o->metavar ? o->metavar : (o->choices ? o->choices : "VALUE"));
        switch (o->kind) {
        case SIAM_OPT_INT:
            snprintf(def, sizeof def, " (default %d)", *(int *)o->target);
            break;
        case SIAM_OPT_U64:
            snprintf(def, sizeof def, " (default %llu)",
                     (unsigned long long)*(uint64_t *)o->target);
            break;
        case SIAM_OPT_FLOAT:
            snprintf(def, sizeof def, " (default %g)", (double)*(float *)o->target);
            break;
        case SIAM_OPT_STRING:
        case SIAM_OPT_CHOICE:
            if (*(const char **)o->target)
                snprintf(def, sizeof def, " (default %s)", *(const char **)o->target);
            break;
        case SIAM_OPT_FLAG:
            break;
        }
        fprintf(f, "  %-28s %s%s\n", left, o->help, def);
    }
    fprintf(f, "  %-28s %s\n  %-28s %s\n", "--help", "show this help and exit", "--version",
            "print the version and exit");
}

int siam_options_main(const char *prog, const char *version, const char *description,
                      const siam_option *opts, int n_opts, int argc, char **argv) {
    siam_error err = {0};
    int rc = siam_options_parse(opts, n_opts, argc, argv, 1, &err);
    if (rc == SIAM_OPTIONS_HELP) {
        char usage[128];
        snprintf(usage, sizeof usage, "%s [OPTIONS]", prog);
        siam_options_help(stdout, usage, description, opts, n_opts);
        return 0;
    }
    if (rc == SIAM_OPTIONS_VERSION) {
        printf("%s %s\n", prog, version);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 2;
    }
    return -1;
}
