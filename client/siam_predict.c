/* siam_predict: `siam-client predict`, the distance, similarity score and same/different verdict
 * of one pair of images given as test-set indices or as 28x28 PGM files. */
#include "siam_eval.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_cli_common.h"
#include "siam_dataset.h"
#include "siam_error.h"
#include "siam_log.h"
#include "siam_loss.h"
#include "siam_model.h"
#include "siam_options.h"
#include "siam_pgm.h"

#define PREDICT_PROG "siam-client predict"

typedef struct {
    const char *checkpoint, *data, *log_level;
    const char *idx[2];            /* --test-index I J */
    const char *img[2];            /* --image A.pgm B.pgm */
    const char *idx_one, *img_one; /* set only if the parser saw --test-index=V / --image=V */
    float margin, threshold;
    int json;
} predict_config;

/* A test-set index: digits only. */
static int parse_index(const char *s, long *out) {
    char *end;
    errno = 0;
    if (!*s || *s == '-' || *s == '+')
        return -1;
    long v = strtol(s, &end, 10);
    if (*end || errno)
        return -1;
    *out = v;
    return 0;
}

/* The two images as model input (pixel / 255 as siam_dataset does); names[] describe them. */
static int predict_inputs(const predict_config *c, float *x, int *cls, char names[2][4200],
                          siam_error *err) {
    if (c->img[0]) {
        uint8_t px[SIAM_CLI_IMAGE_FLOATS];
        for (int s = 0; s < 2; s++) {
            int rc = siam_pgm_read(c->img[s], SIAM_CLI_IMAGE_W, SIAM_CLI_IMAGE_H, px, err);
            if (rc)
                return rc;
            for (int i = 0; i < SIAM_CLI_IMAGE_FLOATS; i++)
                x[s * SIAM_CLI_IMAGE_FLOATS + i] = (float)px[i] / 255.0f;
            cls[s] = -1;
            snprintf(names[s], 4200, "%s", c->img[s]);
        }
        return SIAM_OK;
    }
    long idx[2];
    for (int s = 0; s < 2; s++)
        if (parse_index(c->idx[s], &idx[s]) != 0)
            return siam_error_set(err, SIAM_ERR_ARG, "--test-index '%s' is not an image index",
                                  c->idx[s]);
    siam_dataset test = {0};
    int rc = siam_dataset_load(&test, c->data, SIAM_SPLIT_TEST, 0, err);
    if (rc)
        return rc;
    for (int s = 0; s < 2 && rc == SIAM_OK; s++) {
        if ((size_t)idx[s] >= test.n) {
            rc = siam_error_set(err, SIAM_ERR_ARG,
                                "--test-index %ld is out of range: the test set has %zu images "
                                "(indices 0..%zu)",
                                idx[s], test.n, test.n - 1);
            break;
        }
        memcpy(x + s * SIAM_CLI_IMAGE_FLOATS, test.images + (size_t)idx[s] * SIAM_CLI_IMAGE_FLOATS,
               SIAM_CLI_IMAGE_FLOATS * sizeof(float));
        cls[s] = test.labels[idx[s]];
        snprintf(names[s], 4200, "test image %ld", idx[s]);
    }
    siam_dataset_free(&test);
    return rc;
}

static int predict(const predict_config *c, siam_error *err) {
    siam_model *m = NULL;
    uint64_t step = 0;
    float *x = malloc(2 * SIAM_CLI_IMAGE_FLOATS * sizeof *x), *emb = NULL;
    int cls[2] = {-1, -1};
    static char names[2][4200];
    int rc;
    if (!x)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
    if ((rc = siam_cli_load_model(c->checkpoint, &m, &step, err)) ||
        (rc = predict_inputs(c, x, cls, names, err)))
        goto done;
    int dim = siam_model_output_size(m);
    emb = malloc(2 * (size_t)dim * sizeof *emb);
    if (!emb) {
        rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((rc = siam_model_embed(m, x, 2, emb, err)))
        goto done;
    float d = siam_distance(emb, emb + dim, dim);
    float threshold = c->threshold > 0 ? c->threshold : c->margin / 2;
    float score = siam_score(d, threshold);
    int same = d <= threshold;
    if (c->json) {
        printf("{\"checkpoint\": ");
        siam_cli_json_string(stdout, c->checkpoint);
        for (int s = 0; s < 2; s++) {
            printf(s ? ", \"right\": " : ", \"left\": ");
            siam_cli_json_string(stdout, names[s]);
        }
        if (cls[0] >= 0)
            printf(", \"left_class\": %d, \"right_class\": %d, \"same_class\": %s", cls[0], cls[1],
                   cls[0] == cls[1] ? "true" : "false");
        printf(", \"distance\": %.9g, \"threshold\": %.6g, \"score\": %.6f, \"same\": %s, "
               "\"verdict\": \"%s\"}\n",
               (double)d, (double)threshold, (double)score, same ? "true" : "false",
               same ? "same" : "different");
    } else {
        printf(PREDICT_PROG ": %s (step %llu)\n", c->checkpoint, (unsigned long long)step);
        for (int s = 0; s < 2; s++) {
            printf("  %-12s %s", s ? "right" : "left", names[s]);
            if (cls[s] >= 0)
                printf(" (class %d %s)", cls[s], siam_cli_class_name(cls[s]));
            printf("\n");
        }
        printf("  %-12s %.9g\n", "distance", (double)d);
        printf("  %-12s %g%s\n", "threshold", (double)threshold, c->threshold > 0 ? "" : " (m/2)");
        printf("  %-12s %.4f\n", "score", (double)score);
        printf("  %-12s %s\n", "verdict", same ? "same" : "different");
        if (cls[0] >= 0)
            printf("  %-12s %s class (%s)\n", "truth", cls[0] == cls[1] ? "same" : "different",
                   (cls[0] == cls[1]) == same ? "right" : "wrong");
    }
done:
    free(x);
    free(emb);
    siam_model_free(m);
    return rc;
}

int siam_predict_main(int argc, char **argv) {
    predict_config c = {.data = SIAM_DATA_DIR_DEFAULT, .log_level = "warn", .margin = 1.0f};
    const siam_option opts[] = {
        {"checkpoint", SIAM_OPT_STRING, &c.checkpoint, 0, 0, NULL, "PATH",
         "model checkpoint (required)"},
        {"test-index", SIAM_OPT_STRING, &c.idx_one, 0, 0, NULL, "I J",
         "compare test images I and J of the data set"},
        {"image", SIAM_OPT_STRING, &c.img_one, 0, 0, NULL, "A.pgm B.pgm",
         "compare two 28x28 grayscale PGM files (P5 or P2)"},
        {"margin", SIAM_OPT_FLOAT, &c.margin, 1e-6, 1e6, NULL, "M",
         "contrastive margin the model was trained with"},
        {"threshold", SIAM_OPT_FLOAT, &c.threshold, 0, 1e6, NULL, "T",
         "same/different distance threshold; 0 = M/2"},
        {"data", SIAM_OPT_STRING, &c.data, 0, 0, NULL, "DIR",
         "Fashion-MNIST IDX directory (for --test-index)"},
        {"json", SIAM_OPT_FLAG, &c.json, 0, 0, NULL, NULL, "print the result as one JSON object"},
        {"log-level", SIAM_OPT_CHOICE, &c.log_level, 0, 0, "debug|info|warn|error", NULL,
         "stderr log level"},
    };
    /* --test-index and --image take two values, which the option table cannot express: take
     * them out of argv first, hand the rest to the parser */
    char **rest = malloc((size_t)(argc + 1) * sizeof *rest);
    if (!rest) {
        fprintf(stderr, PREDICT_PROG ": out of memory\n");
        return 1;
    }
    int n_rest = 0, rc = -1, seen_idx = 0, seen_img = 0;
    for (int i = 0; i < argc; i++) {
        int is_idx = i > 0 && strcmp(argv[i], "--test-index") == 0;
        int is_img = i > 0 && strcmp(argv[i], "--image") == 0;
        if (!is_idx && !is_img) {
            rest[n_rest++] = argv[i];
            continue;
        }
        if (i + 2 >= argc || strncmp(argv[i + 1], "--", 2) == 0 ||
            strncmp(argv[i + 2], "--", 2) == 0) {
            fprintf(stderr, PREDICT_PROG ": %s needs two values: %s\n", argv[i],
                    is_idx ? "--test-index I J" : "--image A.pgm B.pgm");
            rc = 2;
            break;
        }
        const char **dst = is_idx ? c.idx : c.img;
        dst[0] = argv[i + 1];
        dst[1] = argv[i + 2];
        seen_idx |= is_idx;
        seen_img |= is_img;
        i += 2;
    }
    rest[n_rest] = NULL;
    if (rc < 0)
        rc = siam_options_main(
            PREDICT_PROG, SIAM_VERSION,
            "Compare two images with a trained checkpoint: their embedding distance, the\n"
            "similarity score 1 / (1 + (D/T)^2) (1 identical, 0.5 at the threshold T) and the\n"
            "verdict \"same\" (D <= T) or \"different\". Images are test-set indices or 28x28 PGM\n"
            "files, scaled to [0,1] as in training.",
            opts, (int)(sizeof opts / sizeof *opts), n_rest, rest);
    free(rest);
    if (rc >= 0)
        return rc;
    if (c.idx_one || c.img_one) {
        fprintf(stderr, PREDICT_PROG ": %s takes two values: %s\n",
                c.idx_one ? "--test-index" : "--image",
                c.idx_one ? "--test-index I J" : "--image A.pgm B.pgm");
        return 2;
    }
    if (!c.checkpoint) {
        fprintf(stderr, PREDICT_PROG ": --checkpoint PATH is required (see --help)\n");
        return 2;
    }
    if (seen_idx == seen_img) {
        fprintf(stderr, PREDICT_PROG ": give exactly one of --test-index I J or --image A.pgm "
                                     "B.pgm\n");
        return 2;
    }
    long unused;
    for (int s = 0; seen_idx && s < 2; s++)
        if (parse_index(c.idx[s], &unused) != 0) {
            fprintf(stderr,
                    PREDICT_PROG ": --test-index '%s' is not an image index (0, 1, 2, ...)\n",
                    c.idx[s]);
            return 2;
        }
    siam_cli_set_log_level(c.log_level);
    siam_error err = {0};
    if (predict(&c, &err)) {
        fprintf(stderr, PREDICT_PROG ": error: %s\n", err.msg);
        return 1;
    }
    return 0;
}
