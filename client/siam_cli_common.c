/* siam_cli_common: what siam-client's evaluate and predict share: class names, JSON strings,
 * the log level flag, and loading a checkpoint's model with messages that say what to do. */
#include "siam_cli_common.h"

#include <stdio.h>
#include <string.h>

#include "siam_checkpoint.h"
#include "siam_log.h"

static const char *const class_names[10] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                            "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                            "Bag",         "Ankle boot"};

const char *siam_cli_class_name(int c) {
    return c >= 0 && c < 10 ? class_names[c] : "?";
}

/* s as a JSON string literal */
void siam_cli_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void siam_cli_set_log_level(const char *name) {
    int level;
    if (siam_log_parse_level(name, &level, NULL) == SIAM_OK)
        siam_log_set_level(level);
}

/* The checkpoint's model with its parameters. Errors name the file and say what to do. */
int siam_cli_load_model(const char *path, siam_model **out, uint64_t *step, siam_error *err) {
    siam_checkpoint ck;
    siam_model *m = NULL;
    siam_error e2 = {0};
    *out = NULL;
    int rc = siam_checkpoint_load(&ck, path, &e2);
    if (rc == SIAM_ERR_IO)
        return siam_error_set(err, rc, "%s (write one with: siam-train --checkpoint %s)", e2.msg,
                              path);
    if (rc)
        return siam_error_set(err, rc, "%s (not a usable siam checkpoint; train a new one)",
                              e2.msg);
    if ((rc = siam_model_create(&m, ck.spec, 0, &e2))) {
        rc = siam_error_set(err, rc, "%s: its model spec cannot be built: %s", path, e2.msg);
    } else if ((rc = siam_checkpoint_check(&ck, path, siam_model_spec(m), siam_model_num_params(m),
                                           err))) {
    } else if (siam_model_input_size(m) != SIAM_CLI_IMAGE_FLOATS) {
        rc = siam_error_set(err, SIAM_ERR_MISMATCH,
                            "%s: its model takes %d floats per image, expected %d (28x28x1 "
                            "Fashion-MNIST)",
                            path, siam_model_input_size(m), SIAM_CLI_IMAGE_FLOATS);
    } else {
        memcpy(siam_model_params(m), ck.params, ck.n_params * sizeof(float));
        *step = ck.step;
        *out = m;
        m = NULL;
    }
    siam_model_free(m);
    siam_checkpoint_free(&ck);
    return rc;
}
