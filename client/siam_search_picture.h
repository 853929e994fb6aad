/* siam_search_picture: search.png, each query beside its top matches, drawn by gnuplot in the
 * style of scripts/plot.sh's predictions.png (grey images, a frame per tile coloured by whether
 * the match's label is the query's class, the label and distance under each tile). */
#ifndef SIAM_SEARCH_PICTURE_H
#define SIAM_SEARCH_PICTURE_H

#include <stdint.h>

#include "siam_error.h"

/* Queries drawn at most, and matches per query. */
#define SIAM_PICTURE_MAX_QUERIES 20
#define SIAM_PICTURE_MAX_MATCHES 10

typedef enum { SIAM_TILE_UNKNOWN = 0, SIAM_TILE_RIGHT = 1, SIAM_TILE_WRONG = 2 } siam_tile_verdict;

/* One tile: an h x w grey image (NULL: not known here, drawn as an empty box) and two caption
 * lines. */
typedef struct {
    const uint8_t *pixels;
    char line1[64], line2[64];
    siam_tile_verdict verdict;
} siam_picture_tile;

/* One row: the query, then its matches. */
typedef struct {
    siam_picture_tile query;
    siam_picture_tile matches[SIAM_PICTURE_MAX_MATCHES];
    int n_matches;
} siam_picture_row;

/* 1 when gnuplot is on PATH. */
int siam_picture_have_gnuplot(void);

/* Draws rows (1..SIAM_PICTURE_MAX_QUERIES) of h x w tiles into the PNG at path, atomically (a
 * temporary name in path's directory, then rename), with title over them. Errors: SIAM_ERR_IO
 * (gnuplot missing or failing: its output in the message; a temporary file that cannot be
 * written), SIAM_ERR_ARG. */
int siam_picture_draw(const char *path, const char *title, const siam_picture_row *rows, int n_rows,
                      int h, int w, siam_error *err);

#endif
