/* siam_search_images: the images `siam-client search` and `gallery-add` send: the command line's
 * sources (PGM files, test and training set indices) split out of argv, and loaded in order. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_dataset.h"
#include "siam_pgm.h"
#include "siam_search_internal.h"

#define DATA_ROWS 28
#define DATA_COLS 28

int image_args_split(const char *prog, int argc, char **argv, image_args *out) {
    memset(out, 0, sizeof *out);
    out->rest = calloc((size_t)argc + 1, sizeof *out->rest);
    out->src = calloc((size_t)argc + 1, sizeof *out->src);
    if (!out->rest || !out->src) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 2;
    }
    out->rest[out->n_rest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        image_source_kind kind = SRC_PGM;
        const char *flag = NULL;
        if (strcmp(a, "--image") == 0 || strncmp(a, "--image=", 8) == 0)
            flag = "--image", kind = SRC_PGM;
        else if (strcmp(a, "--test-index") == 0 || strncmp(a, "--test-index=", 13) == 0)
            flag = "--test-index", kind = SRC_TEST;
        else if (strcmp(a, "--train-index") == 0 || strncmp(a, "--train-index=", 14) == 0)
            flag = "--train-index", kind = SRC_TRAIN;
        if (!flag) {
            out->rest[out->n_rest++] = strcmp(a, "-k") == 0 ? "--k" : argv[i];
            continue;
        }
        size_t fl = strlen(flag);
        if (a[fl] == '=') { /* one value */
            if (!a[fl + 1]) {
                fprintf(stderr, "%s: %s= needs a value\n", prog, flag);
                return 2;
            }
            out->src[out->n_src++] = (image_source){kind, a + fl + 1};
            continue;
        }
        int taken = 0;
        while (i + 1 < argc && argv[i + 1][0] != '-' && (kind == SRC_PGM || taken == 0)) {
            out->src[out->n_src++] = (image_source){kind, argv[++i]};
            taken++;
        }
        if (!taken) {
            fprintf(stderr, "%s: %s needs %s\n", prog, flag,
                    kind == SRC_PGM ? "one or more PGM files: --image A.pgm [B.pgm ...]"
                                    : "a list of indices: e.g. 0,17,42 or 0-99");
            return 2;
        }
    }
    out->rest[out->n_rest] = NULL;
    return -1;
}

void image_args_free(image_args *a) {
    free(a->rest);
    free(a->src);
    memset(a, 0, sizeof *a);
}

int label_class(const char *label, int *cls) {
    if (label && label[0] >= '0' && label[0] <= '9' && label[1] == '\0') {
        *cls = label[0] - '0';
        return 1;
    }
    return 0;
}

/* The indices of a list "0,17,40-49" (appended to *idx, *n of *cap); flag names it in errors. */
static int parse_index_list(const char *flag, const char *list, size_t **idx, size_t *n,
                            size_t *cap, siam_error *err) {
    const char *p = list;
    while (1) {
        char *end;
        if (*p < '0' || *p > '9')
            return siam_error_set(err, SIAM_ERR_ARG,
                                  "%s '%s': expected indices such as 0,17,42 or ranges such as "
                                  "0-99 (0, 1, 2, ...)",
                                  flag, list);
        errno = 0;
        unsigned long long a = strtoull(p, &end, 10), b = a;
        if (errno || a >= SIAM_SEARCH_MAX_IMAGES * 100ULL)
            return siam_error_set(err, SIAM_ERR_ARG, "%s '%s': index too large", flag, list);
        p = end;
        if (*p == '-') {
            p++;
            if (*p < '0' || *p > '9')
                return siam_error_set(err, SIAM_ERR_ARG, "%s '%s': a range is A-B, e.g. 0-99", flag,
                                      list);
            errno = 0;
            b = strtoull(p, &end, 10);
            if (errno || b >= SIAM_SEARCH_MAX_IMAGES * 100ULL)
                return siam_error_set(err, SIAM_ERR_ARG, "%s '%s': index too large", flag, list);
            p = end;
            if (b < a)
                return siam_error_set(
                    err, SIAM_ERR_ARG,
                    "%s '%s': the range %llu-%llu is backwards (A-B needs A <= B)", flag, list, a,
                    b);
        }
        if (*n + (b - a + 1) > SIAM_SEARCH_MAX_IMAGES)
            return siam_error_set(err, SIAM_ERR_ARG, "%s: more than %d images in one command", flag,
                                  SIAM_SEARCH_MAX_IMAGES);
        for (unsigned long long v = a; v <= b; v++) {
            if (*n == *cap) {
                size_t nc = *cap ? *cap * 2 : 64;
                size_t *g = realloc(*idx, nc * sizeof *g);
                if (!g)
                    return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
                *idx = g;
                *cap = nc;
            }
            (*idx)[(*n)++] = (size_t)v;
        }
        if (*p == '\0')
            return SIAM_OK;
        if (*p != ',')
            return siam_error_set(err, SIAM_ERR_ARG,
                                  "%s '%s': unexpected '%c'; separate indices with commas "
                                  "(0,17,42) and give ranges as A-B",
                                  flag, list, *p);
        p++;
    }
}

int image_idx_read(const char *path, size_t max_items, uint8_t **px, size_t *n, int *rows,
                   int *cols, siam_error *err) {
    siam_idx idx;
    int rc = siam_idx_read(&idx, path, 3, max_items, err);
    if (rc)
        return rc;
    *px = idx.data;
    *n = idx.dims[0];
    *rows = (int)idx.dims[1];
    *cols = (int)idx.dims[2];
    return SIAM_OK;
}

/* One IDX file of the data set in dir: NAME.gz, else NAME. */
static int data_idx(const char *dir, const char *name, int ndims, size_t max_items, siam_idx *out,
                    siam_error *err) {
    char path[4200];
    siam_error first = {0}, second = {0};
    snprintf(path, sizeof path, "%s/%s.gz", dir, name);
    int rc = siam_idx_read(out, path, ndims, max_items, &first);
    if (rc != SIAM_ERR_IO)
        return rc ? siam_error_set(err, rc, "%s", first.msg) : SIAM_OK;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    rc = siam_idx_read(out, path, ndims, max_items, &second);
    if (rc == SIAM_ERR_IO)
        return siam_error_set(err, rc,
                              "%s (the Fashion-MNIST IDX files: apt-get install "
                              "dataset-fashion-mnist, or give their directory with --data DIR)",
                              first.msg);
    return rc ? siam_error_set(err, rc, "%s", second.msg) : SIAM_OK;
}

static int grow(image_set *s, size_t more, size_t *cap, siam_error *err) {
    size_t bytes = (size_t)s->h * s->w * s->c;
    if (s->n + more <= *cap)
        return SIAM_OK;
    size_t nc = *cap ? *cap : 16;
    while (nc < s->n + more)
        nc *= 2;
    uint8_t *px = realloc(s->px, nc * bytes);
    if (px)
        s->px = px;
    char **name = realloc(s->name, nc * sizeof *name);
    if (name)
        s->name = name;
    int *cls = realloc(s->cls, nc * sizeof *cls);
    if (cls)
        s->cls = cls;
    if (!px || !name || !cls)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for %zu images", nc);
    *cap = nc;
    return SIAM_OK;
}

/* The images of one split at the given indices, appended to s. */
static int load_indices(image_set *s, size_t *cap, image_source_kind kind, const size_t *idx,
                        size_t n_idx, const char *dir, siam_error *err) {
    const char *flag = kind == SRC_TEST ? "--test-index" : "--train-index";
    const char *set = kind == SRC_TEST ? "test" : "training";
    if (s->h != DATA_ROWS || s->w != DATA_COLS || s->c != 1)
        return siam_error_set(err, SIAM_ERR_MISMATCH,
                              "%s: the server's model takes %dx%dx%d images, and the "
                              "Fashion-MNIST %s set's are 28x28x1: give images of its shape as "
                              "PGM files (--image)",
                              flag, s->h, s->w, s->c, set);
    size_t max = 0;
    for (size_t i = 0; i < n_idx; i++)
        if (idx[i] + 1 > max)
            max = idx[i] + 1;
    siam_idx img = {0}, lab = {0};
    const char *base = kind == SRC_TEST ? "t10k" : "train";
    char iname[64], lname[64];
    snprintf(iname, sizeof iname, "%s-images-idx3-ubyte", base);
    snprintf(lname, sizeof lname, "%s-labels-idx1-ubyte", base);
    int rc;
    if ((rc = data_idx(dir, iname, 3, max, &img, err)) ||
        (rc = data_idx(dir, lname, 1, max, &lab, err)))
        goto done;
    if (img.dims[1] != DATA_ROWS || img.dims[2] != DATA_COLS) {
        rc = siam_error_set(err, SIAM_ERR_FORMAT, "%s/%s: images are %ux%u, expected 28x28", dir,
                            iname, img.dims[1], img.dims[2]);
        goto done;
    }
    size_t have = img.dims[0] < lab.dims[0] ? img.dims[0] : lab.dims[0];
    if ((rc = grow(s, n_idx, cap, err)))
        goto done;
    for (size_t i = 0; i < n_idx; i++) {
        if (idx[i] >= have) {
            rc = siam_error_set(err, SIAM_ERR_ARG,
                                "%s %zu is out of range: the %s set has %zu images (indices "
                                "0..%zu)",
                                flag, idx[i], set, have, have ? have - 1 : 0);
            goto done;
        }
        size_t bytes = (size_t)DATA_ROWS * DATA_COLS;
        memcpy(s->px + s->n * bytes, img.data + idx[i] * bytes, bytes);
        char name[64];
        snprintf(name, sizeof name, "%s image %zu", set, idx[i]);
        s->name[s->n] = strdup(name);
        if (!s->name[s->n]) {
            rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
            goto done;
        }
        s->cls[s->n] = lab.data[idx[i]];
        s->n++;
        s->from_data++;
    }
done:
    siam_idx_free(&img);
    siam_idx_free(&lab);
    return rc;
}

int image_args_check(const char *prog, const image_args *a) {
    size_t *idx = NULL, n = 0, cap = 0;
    int rc = -1;
    for (int i = 0; i < a->n_src && rc < 0; i++) {
        if (a->src[i].kind == SRC_PGM)
            continue;
        siam_error err = {0};
        n = 0;
        if (parse_index_list(a->src[i].kind == SRC_TEST ? "--test-index" : "--train-index",
                             a->src[i].value, &idx, &n, &cap, &err)) {
            fprintf(stderr, "%s: %s\n", prog, err.msg);
            rc = 2;
        }
    }
    free(idx);
    return rc;
}

int image_set_load(image_set *s, const image_source *src, int n_src, const char *dir, int h, int w,
                   int c, siam_error *err) {
    memset(s, 0, sizeof *s);
    s->h = h;
    s->w = w;
    s->c = c;
    size_t cap = 0, *idx = NULL, n_idx = 0, idx_cap = 0;
    int rc = SIAM_OK;
    for (int i = 0; i < n_src && rc == SIAM_OK; i++) {
        if (src[i].kind == SRC_PGM) {
            if (c != 1) {
                rc = siam_error_set(err, SIAM_ERR_MISMATCH,
                                    "--image %s: the server's model takes %dx%dx%d images and a "
                                    "PGM file has one channel",
                                    src[i].value, h, w, c);
                break;
            }
            if (s->n + 1 > SIAM_SEARCH_MAX_IMAGES) {
                rc = siam_error_set(err, SIAM_ERR_ARG, "more than %d images in one command",
                                    SIAM_SEARCH_MAX_IMAGES);
                break;
            }
            if ((rc = grow(s, 1, &cap, err)))
                break;
            siam_error perr = {0};
            if ((rc = siam_pgm_read(src[i].value, w, h, s->px + s->n * (size_t)h * w, &perr))) {
                if (rc == SIAM_ERR_MISMATCH)
                    siam_error_set(err, rc, "%s (the server's model takes %dx%d images)", perr.msg,
                                   w, h);
                else
                    siam_error_set(err, rc, "%s", perr.msg);
                break;
            }
            if (!(s->name[s->n] = strdup(src[i].value))) {
                rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
                break;
            }
            s->cls[s->n++] = -1;
            continue;
        }
        const char *flag = src[i].kind == SRC_TEST ? "--test-index" : "--train-index";
        n_idx = 0;
        if ((rc = parse_index_list(flag, src[i].value, &idx, &n_idx, &idx_cap, err)))
            break;
        if (s->n + n_idx > SIAM_SEARCH_MAX_IMAGES) {
            rc = siam_error_set(err, SIAM_ERR_ARG, "more than %d images in one command",
                                SIAM_SEARCH_MAX_IMAGES);
            break;
        }
        rc = load_indices(s, &cap, src[i].kind, idx, n_idx, dir, err);
    }
    free(idx);
    if (rc)
        image_set_free(s);
    return rc;
}

void image_set_free(image_set *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->name[i]);
    free(s->name);
    free(s->px);
    free(s->cls);
    memset(s, 0, sizeof *s);
}
