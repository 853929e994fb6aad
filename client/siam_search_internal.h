/* siam_search_internal: what siam_search.c (search) and siam_search_add.c (gallery-add) share:
 * the images named on the command line (siam_search_images.c). */
#ifndef SIAM_SEARCH_INTERNAL_H
#define SIAM_SEARCH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "siam_error.h"

/* Largest number of images one command takes (indices and files together). */
#define SIAM_SEARCH_MAX_IMAGES 1000000

/* Where images come from, in command-line order. */
typedef enum { SRC_PGM, SRC_TEST, SRC_TRAIN } image_source_kind;

typedef struct {
    image_source_kind kind;
    const char *value; /* a PGM path, or an index list "0,17,40-49" */
} image_source;

/* The command line split into the image sources and the rest for the option parser. */
typedef struct {
    image_source *src;
    int n_src;
    char **rest; /* argv without the sources, "-k" spelt "--k"; NULL-terminated */
    int n_rest;
} image_args;

/* Takes --image FILE... (every following argument up to the next option; --image=FILE one),
 * --test-index LIST and --train-index LIST (repeatable, in order) out of argv[1..], and turns
 * "-k" into "--k". Returns -1 to go on, or 2 after printing a bad command line as prog: .... */
int image_args_split(const char *prog, int argc, char **argv, image_args *out);
void image_args_free(image_args *a);

/* Checks the index lists' syntax before anything is loaded. Returns -1 to go on, or 2 after
 * printing prog: what is wrong. */
int image_args_check(const char *prog, const image_args *a);

/* Loaded images: n of h x w x c bytes each. */
typedef struct {
    size_t n;
    int h, w, c;
    uint8_t *px;   /* n x h*w*c */
    char **name;   /* "test image 17", "boot.pgm" */
    int *cls;      /* the data set's class 0..9, or -1 (a file) */
    int from_data; /* how many came from the data set (their class is known) */
} image_set;

/* Loads every source, in order, as h x w x c images: PGM files (c must be 1) read at h x w, data
 * set images (28x28x1 Fashion-MNIST from dir, the split's IDX files, only as far as the largest
 * index) by index. Errors name the file or the index and the fix. */
int image_set_load(image_set *s, const image_source *src, int n_src, const char *dir, int h, int w,
                   int c, siam_error *err);
void image_set_free(image_set *s);

/* Reads the IDX image file at path (3 dimensions: n, rows, cols; only its first max_items when
 * > 0) into *px (malloc'd), *n, *rows, *cols. Errors name the file. */
int image_idx_read(const char *path, size_t max_items, uint8_t **px, size_t *n, int *rows,
                   int *cols, siam_error *err);

/* 1 when label is a class number "0".."9" (then *cls is it). */
int label_class(const char *label, int *cls);

#endif
