/* siam_search_add: `siam-client gallery-add`, labelled images added to the server's gallery with
 * AddToGallery; prints the ids the server gave them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam/v1/siam.pb-c.h"
#include "siam_cli_common.h"
#include "siam_cli_remote.h"
#include "siam_dataset.h"
#include "siam_options.h"
#include "siam_search.h"
#include "siam_search_internal.h"
#include "siam_wire.h"

#define ADD_PROG "siam-client gallery-add"

typedef struct {
    siam_cli_remote remote;
    const char *data, *log_level, *label, *labels;
    const char *unused_image, *unused_test, *unused_train;
    int batch, json;
} add_config;

/* labels[i] for every image: --label for all, --labels one each (comma-separated), else the
 * class of a data-set image. Returns 0, or 2 after printing why (a bad command line). */
static int make_labels(const add_config *c, const image_set *s, char ***out, char **storage) {
    char **labels = calloc(s->n ? s->n : 1, sizeof *labels);
    char *copy = c->labels ? strdup(c->labels) : NULL;
    *out = labels;
    *storage = copy;
    if (!labels || (c->labels && !copy)) {
        fprintf(stderr, ADD_PROG ": out of memory\n");
        return 1;
    }
    if (c->labels) {
        size_t n = 0;
        char *p = copy;
        while (1) {
            char *comma = strchr(p, ',');
            if (comma)
                *comma = '\0';
            if (n < s->n)
                labels[n] = p;
            n++;
            if (!comma)
                break;
            p = comma + 1;
        }
        if (n != s->n) {
            fprintf(stderr,
                    ADD_PROG ": --labels gives %zu label%s for %zu image%s: one per image, in "
                             "order, separated by commas (or --label NAME for all)\n",
                    n, n == 1 ? "" : "s", s->n, s->n == 1 ? "" : "s");
            return 2;
        }
        return 0;
    }
    static char class_text[10][2];
    for (size_t i = 0; i < s->n; i++) {
        if (c->label) {
            labels[i] = (char *)c->label;
        } else if (s->cls[i] >= 0) {
            class_text[s->cls[i]][0] = (char)('0' + s->cls[i]);
            labels[i] = class_text[s->cls[i]];
        } else {
            fprintf(stderr,
                    ADD_PROG ": %s needs a label: --label NAME (for every image) or --labels "
                             "L1,L2,... (one per image); images of the data set take their class "
                             "by default\n",
                    s->name[i]);
            return 2;
        }
    }
    return 0;
}

static int add_images(add_config *c, const image_args *ia) {
    Siam__V1__StatusResponse *st = NULL;
    image_set s = {0};
    char **labels = NULL, *storage = NULL;
    uint64_t *ids = NULL;
    siam_error err = {0};
    int rc = 1, h = 28, w = 28, ch = 1;
    uint64_t size = 0, round = 0;
    if (siam_cli_remote_open(&c->remote)) {
        rc = 2;
        goto done;
    }
    if (siam_cli_remote_status(&c->remote, &st))
        goto done;
    if (st->input_shape[0] && siam_cli_parse_shape(st->input_shape, &h, &w, &ch) != 0) {
        fprintf(stderr,
                ADD_PROG ": error: siam-server at %s: input shape '%s' in its Status is not "
                         "HxWxC\n",
                c->remote.server, st->input_shape);
        goto done;
    }
    if (image_set_load(&s, ia->src, ia->n_src, c->data, h, w, ch, &err)) {
        fprintf(stderr, ADD_PROG ": error: %s\n", err.msg);
        goto done;
    }
    if ((rc = make_labels(c, &s, &labels, &storage)) != 0)
        goto done;
    rc = 1;
    ids = calloc(s.n, sizeof *ids);
    if (!ids) {
        fprintf(stderr, ADD_PROG ": out of memory\n");
        goto done;
    }
    size_t bytes = (size_t)h * w * ch;
    for (size_t b = 0; b < s.n; b += (size_t)c->batch) {
        size_t m = s.n - b < (size_t)c->batch ? s.n - b : (size_t)c->batch;
        Siam__V1__GalleryAddRequest rq = SIAM__V1__GALLERY_ADD_REQUEST__INIT;
        rq.images.data = s.px + b * bytes;
        rq.images.len = m * bytes;
        rq.n_labels = m;
        rq.labels = labels + b;
        size_t len = siam__v1__gallery_add_request__get_packed_size(&rq);
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf) {
            fprintf(stderr, ADD_PROG ": out of memory\n");
            goto done;
        }
        siam__v1__gallery_add_request__pack(&rq, buf);
        siam_rpc_buf resp = {0};
        int crc = siam_cli_remote_call(&c->remote, "AddToGallery", SIAM_METHOD_ADD_TO_GALLERY, buf,
                                       len, &resp);
        free(buf);
        if (crc) {
            if (b > 0)
                fprintf(stderr,
                        ADD_PROG ": the first %zu of %zu images were added before this (ids %llu "
                                 "to %llu)\n",
                        b, s.n, (unsigned long long)ids[0], (unsigned long long)ids[b - 1]);
            goto done;
        }
        Siam__V1__GalleryAddResponse *r =
            siam__v1__gallery_add_response__unpack(NULL, resp.len, resp.data);
        siam_rpc_buf_free(&resp);
        if (!r || r->n_ids != m) {
            fprintf(stderr, ADD_PROG ": error: siam-server at %s: the AddToGallery answer %s\n",
                    c->remote.server,
                    r ? "does not have one id per image" : "is not a GalleryAddResponse");
            if (r)
                siam__v1__gallery_add_response__free_unpacked(r, NULL);
            goto done;
        }
        memcpy(ids + b, r->ids, m * sizeof *ids);
        size = r->gallery_size;
        round = r->model_round;
        siam__v1__gallery_add_response__free_unpacked(r, NULL);
    }
    if (c->json) {
        printf("{\"added\": %zu, \"gallery_size\": %llu, \"model_round\": %llu, \"items\": [", s.n,
               (unsigned long long)size, (unsigned long long)round);
        for (size_t i = 0; i < s.n; i++) {
            printf("%s{\"id\": %llu, \"label\": ", i ? ", " : "", (unsigned long long)ids[i]);
            siam_cli_json_string(stdout, labels[i]);
            printf(", \"source\": ");
            siam_cli_json_string(stdout, s.name[i]);
            printf("}");
        }
        printf("]}\n");
    } else {
        printf(ADD_PROG ": added %zu image%s to the gallery of siam-server at %s: %llu items "
                        "now, embedded with model round %llu\n",
               s.n, s.n == 1 ? "" : "s", c->remote.server, (unsigned long long)size,
               (unsigned long long)round);
        printf("  %10s  %-24s  %s\n", "id", "label", "image");
        for (size_t i = 0; i < s.n; i++)
            printf("  %10llu  %-24s  %s\n", (unsigned long long)ids[i], labels[i], s.name[i]);
    }
    rc = 0;
done:
    free(ids);
    free(labels);
    free(storage);
    image_set_free(&s);
    if (st)
        siam__v1__status_response__free_unpacked(st, NULL);
    siam_cli_remote_close(&c->remote);
    return rc;
}

int siam_gallery_add_main(int argc, char **argv) {
    add_config c = {.data = SIAM_DATA_DIR_DEFAULT, .log_level = "warn", .batch = 256};
    siam_option opts[SIAM_CLI_REMOTE_N_OPTIONS + 12];
    int n = 0;
    siam_cli_remote_options(&c.remote, ADD_PROG, opts);
    n += SIAM_CLI_REMOTE_N_OPTIONS;
    opts[n++] = (siam_option){"image",
                              SIAM_OPT_STRING,
                              &c.unused_image,
                              0,
                              0,
                              NULL,
                              "A.pgm [B.pgm ...]",
                              "add these grey PGM files (P5 or P2) of the model's input size "
                              "(Status input_shape)"};
    opts[n++] = (siam_option){"test-index",
                              SIAM_OPT_STRING,
                              &c.unused_test,
                              0,
                              0,
                              NULL,
                              "LIST",
                              "add these Fashion-MNIST test images: 0,17,42 or ranges 0-99"};
    opts[n++] = (siam_option){"train-index",
                              SIAM_OPT_STRING,
                              &c.unused_train,
                              0,
                              0,
                              NULL,
                              "LIST",
                              "the same with images of the training set"};
    opts[n++] = (siam_option){"label",
                              SIAM_OPT_STRING,
                              &c.label,
                              0,
                              0,
                              NULL,
                              "NAME",
                              "the label of every image (UTF-8, 1..64 bytes; default for data "
                              "set images: their class number)"};
    opts[n++] = (siam_option){"labels",    SIAM_OPT_STRING,
                              &c.labels,   0,
                              0,           NULL,
                              "L1,L2,...", "one label per image, in the order of the images"};
    opts[n++] =
        (siam_option){"data",  SIAM_OPT_STRING,
                      &c.data, 0,
                      0,       NULL,
                      "DIR",   "Fashion-MNIST IDX directory (for --test-index, --train-index)"};
    opts[n++] =
        (siam_option){"batch",  SIAM_OPT_INT,
                      &c.batch, 1,
                      1024,     NULL,
                      "N",      "images per AddToGallery call (the server takes up to 1024)"};
    opts[n++] = (siam_option){"json", SIAM_OPT_FLAG, &c.json, 0,
                              0,      NULL,          NULL,    "print the ids as one JSON object"};
    opts[n++] =
        (siam_option){"log-level", SIAM_OPT_CHOICE,         &c.log_level, 0,
                      0,           "debug|info|warn|error", NULL,         "stderr log level"};
    image_args ia;
    int rc = image_args_split(ADD_PROG, argc, argv, &ia);
    if (rc < 0)
        rc = siam_options_main(
            ADD_PROG, SIAM_VERSION,
            "Add labelled images to the server's gallery (AddToGallery): the server embeds them\n"
            "with its global model and they are searchable when this returns; prints the ids it\n"
            "gave them. The few-shot case: a handful of images of a class the model never saw.\n"
            "With tokens on, the call needs the training token (--auth-token-file).",
            opts, n, ia.n_rest, ia.rest);
    if (rc >= 0) {
        image_args_free(&ia);
        return rc;
    }
    if (ia.n_src == 0) {
        fprintf(stderr, ADD_PROG ": give the images: --image A.pgm [B.pgm ...], --test-index LIST "
                                 "or --train-index LIST (see --help)\n");
        image_args_free(&ia);
        return 2;
    }
    if (c.label && c.labels) {
        fprintf(stderr, ADD_PROG ": give --label NAME (every image) or --labels L1,L2,... (one "
                                 "each), not both\n");
        image_args_free(&ia);
        return 2;
    }
    if ((rc = image_args_check(ADD_PROG, &ia)) >= 0) {
        image_args_free(&ia);
        return rc;
    }
    siam_cli_set_log_level(c.log_level);
    if ((rc = siam_cli_remote_check(&c.remote)) != 0) {
        image_args_free(&ia);
        return rc;
    }
    siam_rpc_init();
    rc = add_images(&c, &ia);
    siam_rpc_shutdown();
    image_args_free(&ia);
    return rc;
}
