/* siam_cli_common: what siam-client's evaluate and predict share. */
#ifndef SIAM_CLI_COMMON_H
#define SIAM_CLI_COMMON_H

#include <stdint.h>
#include <stdio.h>

#include "siam_error.h"
#include "siam_model.h"

#define SIAM_CLI_IMAGE_W      28
#define SIAM_CLI_IMAGE_H      28
#define SIAM_CLI_IMAGE_FLOATS (SIAM_CLI_IMAGE_W * SIAM_CLI_IMAGE_H)

/* Fashion-MNIST's name of class c ("?" outside 0..9). */
const char *siam_cli_class_name(int c);

/* Writes s to f as a JSON string literal. */
void siam_cli_json_string(FILE *f, const char *s);

/* Sets the log level from a --log-level value (ignored if it does not parse: the option table
 * already checked it). */
void siam_cli_set_log_level(const char *name);

/* The model of the checkpoint at path with its parameters (*out: caller frees with
 * siam_model_free) and its step. Errors name the file and say what to do; SIAM_ERR_MISMATCH for
 * a model that does not take 28x28x1 images. */
int siam_cli_load_model(const char *path, siam_model **out, uint64_t *step, siam_error *err);

#endif
