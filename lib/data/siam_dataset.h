/* siam_dataset: Fashion-MNIST from IDX files (gzip'd or plain, via zlib), validated, in [0,1]. */
#ifndef SIAM_DATASET_H
#define SIAM_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "siam_error.h"

#define SIAM_DATA_DIR_DEFAULT "/usr/share/datasets/fashion-mnist"

typedef enum { SIAM_SPLIT_TRAIN = 0, SIAM_SPLIT_TEST = 1 } siam_split;

typedef struct {
    size_t n;        /* number of images */
    int rows, cols;  /* 28, 28 for Fashion-MNIST */
    float *images;   /* (n, rows*cols), pixel/255, owned */
    uint8_t *labels; /* (n), owned */
} siam_dataset;

/* Raw IDX file contents. dims[0] is the item count. */
typedef struct {
    int type;  /* IDX element type; only 0x08 (unsigned byte) is accepted */
    int ndims; /* 1..3 */
    uint32_t dims[3];
    size_t count;  /* product of dims */
    uint8_t *data; /* (count), owned */
} siam_idx;

/* Reads an IDX file, gzip'd or plain (zlib's gz* reads both). Checks the magic (0,0,0x08,ndims),
 * ndims == expected_ndims (when > 0), non-zero dimensions, and that the file holds exactly the
 * data its header promises. When max_items > 0 and dims[0] > max_items, only the first
 * max_items items are read (dims[0] becomes max_items).
 * Errors (message names the file and the problem): SIAM_ERR_IO, SIAM_ERR_FORMAT, SIAM_ERR_NOMEM. */
int siam_idx_read(siam_idx *idx, const char *path, int expected_ndims, size_t max_items,
                  siam_error *err);
/* Note: *idx (and *ds below) is overwritten, not freed: free an earlier result first. It is left
 * zeroed on failure. A prefix read (max_items) does not look past the bytes it needs. */
void siam_idx_free(siam_idx *idx);

/* Loads one split from dir (NULL: SIAM_DATA_DIR_DEFAULT): train-images-idx3-ubyte.gz +
 * train-labels-idx1-ubyte.gz, or t10k-*. Falls back to the same names without .gz. Checks that
 * image and label counts agree and labels are 0..9. max_items > 0 loads only a prefix.
 * A missing directory or file names the path and suggests `apt-get install dataset-fashion-mnist`
 * or --data DIR. Errors: SIAM_ERR_IO (missing or unreadable), SIAM_ERR_FORMAT (a bad file, a
 * label above 9), SIAM_ERR_MISMATCH (image and label counts differ), SIAM_ERR_NOMEM. */
int siam_dataset_load(siam_dataset *ds, const char *dir, siam_split split, size_t max_items,
                      siam_error *err);
void siam_dataset_free(siam_dataset *ds);

/* Shard [begin, end) of n items for worker index of count: contiguous, disjoint, covering,
 * sizes differing by at most one. SIAM_ERR_ARG unless 0 <= index < count. */
int siam_shard_range(size_t n, int index, int count, size_t *begin, size_t *end, siam_error *err);

#endif
