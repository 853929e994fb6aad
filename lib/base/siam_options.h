/* siam_options: one table of options per program, parsed in one place; --help is generated from
 * the same table so it cannot drift from what is accepted. */
#ifndef SIAM_OPTIONS_H
#define SIAM_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

#include "siam_error.h"

typedef enum {
    SIAM_OPT_INT,    /* int, bounded by [min, max] */
    SIAM_OPT_U64,    /* uint64_t, bounded by [min, max] */
    SIAM_OPT_FLOAT,  /* float, bounded by [min, max] */
    SIAM_OPT_STRING, /* const char * pointing into argv */
    SIAM_OPT_CHOICE, /* const char * that must be one of the '|'-separated choices */
    SIAM_OPT_FLAG,   /* int set to 1, takes no value */
} siam_opt_kind;

typedef struct {
    const char *name; /* without the leading "--" */
    siam_opt_kind kind;
    void *target;
    double min, max;     /* numeric bounds */
    const char *choices; /* SIAM_OPT_CHOICE: "mlp|cnn" */
    const char *metavar; /* shown in help: "N", "PATH" */
    const char *help;    /* one line; the default is printed from *target */
} siam_option;

enum { SIAM_OPTIONS_RUN = 0, SIAM_OPTIONS_HELP = -1, SIAM_OPTIONS_VERSION = -2 };

/* Parses argv[first..argc) as --name VALUE or --name=VALUE. Returns SIAM_OPTIONS_RUN,
 * SIAM_OPTIONS_HELP (--help, -h) or SIAM_OPTIONS_VERSION (--version), or SIAM_ERR_ARG with a
 * message naming the option, the value and what is allowed. Positional arguments are refused. */
int siam_options_parse(const siam_option *opts, int n_opts, int argc, char **argv, int first,
                       siam_error *err);

/* What every program does with its command line: parses it; on --help prints the help to stdout,
 * on --version prints "prog version", on an error prints "prog: message" to stderr. Returns -1
 * when the program should go on, otherwise the exit code to return (0 after help/version, 2
 * after a bad command line). */
int siam_options_main(const char *prog, const char *version, const char *description,
                      const siam_option *opts, int n_opts, int argc, char **argv);

/* Prints usage and one line per option with its current (default) value. */
void siam_options_help(FILE *f, const char *usage, const char *description, const siam_option *opts,
                       int n_opts);

#endif
