/* siam_dataset: reads and validates IDX files (gzip'd or plain) and loads Fashion-MNIST splits. */
#include "siam_dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* A header promising more than this is corrupt: Fashion-MNIST's largest file is 47 MB, and the
 * cap keeps every dimension and the float conversion well inside int and size_t. */
#define IDX_MAX_BYTES ((uint64_t)1 << 31)
/* gzread takes an unsigned length and returns an int; big chunks keep decompression fast. */
#define IDX_READ_CHUNK ((size_t)1 << 30)
#define IDX_GZ_BUFFER  (1u << 18)
#define IDX_PATH_MAX   4096

#define INSTALL_HINT "install it with `apt-get install dataset-fashion-mnist` or pass --data DIR"

/* zlib prefixes its messages with the path given to gzopen; ours already names the file. */
static const char *gz_message(gzFile f, const char *path, int *errnum) {
    const char *msg = gzerror(f, errnum);
    size_t len = strlen(path);
    if (msg && strncmp(msg, path, len) == 0 && msg[len] == ':' && msg[len + 1] == ' ')
        msg += len + 2;
    return msg ? msg : "";
}

/* After a failed or short gzread: reports zlib's error, if it has one, and returns its code;
 * SIAM_OK means the stream simply ended. */
static int gz_check(gzFile f, const char *path, siam_error *err) {
    int errnum = Z_OK;
    const char *msg = gz_message(f, path, &errnum);
    switch (errnum) {
    case Z_OK:
    case Z_STREAM_END:
        return SIAM_OK;
    case Z_BUF_ERROR:
        return siam_error_set(err, SIAM_ERR_FORMAT, "%s: truncated or corrupt gzip stream (%s)",
                              path, msg);
    case Z_DATA_ERROR:
        return siam_error_set(err, SIAM_ERR_FORMAT, "%s: corrupt gzip stream (%s)", path, msg);
    case Z_MEM_ERROR:
        return siam_error_set(err, SIAM_ERR_NOMEM, "%s: out of memory while reading (%s)", path,
                              msg);
    case Z_ERRNO:
        return siam_error_set(err, SIAM_ERR_IO, "%s: read error (%s)", path, msg);
    default:
        return siam_error_set(err, SIAM_ERR_FORMAT, "%s: gzip error %d (%s)", path, errnum, msg);
    }
}

/* Reads up to len bytes into buf; returns how many were read. *failed is set when gzread
 * reported an error (zlib then holds the reason, see gz_check). */
static size_t gz_read_full(gzFile f, uint8_t *buf, size_t len, int *failed) {
    size_t got = 0;
    *failed = 0;
    while (got < len) {
        size_t want = len - got < IDX_READ_CHUNK ? len - got : IDX_READ_CHUNK;
        int n = gzread(f, buf + got, (unsigned)want);
        if (n < 0) {
            *failed = 1;
            break;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return got;
}

static int read_header_bytes(gzFile f, const char *path, uint8_t *buf, size_t len, const char *what,
                             siam_error *err) {
    int failed;
    size_t got = gz_read_full(f, buf, len, &failed);
    if (got == len)
        return SIAM_OK;
    int rc = gz_check(f, path, err);
    if (rc != SIAM_OK)
        return rc;
    return siam_error_set(err, SIAM_ERR_FORMAT,
                          "%s: truncated header: the file ends inside the %s (%zu of %zu bytes)",
                          path, what, got, len);
}

static uint32_t be32(const uint8_t *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* Reads the header's magic and dims into idx (without data) and checks them. */
static int idx_read_header(gzFile f, const char *path, int expected_ndims, siam_idx *idx,
                           siam_error *err) {
    uint8_t magic[4];
    int rc = read_header_bytes(f, path, magic, sizeof magic, "4-byte magic number", err);
    if (rc != SIAM_OK)
        return rc;
    uint32_t m = be32(magic);
    int want_ndims = expected_ndims > 0                 ? expected_ndims
                     : (magic[3] >= 1 && magic[3] <= 3) ? magic[3]
                                                        : 3;
    uint32_t want_magic = 0x0800u | (uint32_t)want_ndims;
    if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08)
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "%s: bad magic 0x%08x (expected 0x%08x for an IDX file of unsigned "
                              "bytes with %d dimension%s)",
                              path, m, want_magic, want_ndims, want_ndims == 1 ? "" : "s");
    int ndims = magic[3];
    if (ndims < 1 || ndims > 3)
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "%s: bad magic 0x%08x: %d dimensions, only 1 to 3 are supported",
                              path, m, ndims);
    if (expected_ndims > 0 && ndims != expected_ndims)
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "%s: wrong number of dimensions: magic 0x%08x says %d, expected %d "
                              "(magic 0x%08x)",
                              path, m, ndims, expected_ndims, want_magic);

    uint8_t dims[12];
    rc = read_header_bytes(f, path, dims, 4 * (size_t)ndims, "dimension sizes", err);
    if (rc != SIAM_OK)
        return rc;
    uint64_t count = 1;
    for (int k = 0; k < ndims; k++) {
        idx->dims[k] = be32(dims + 4 * k);
        if (idx->dims[k] == 0)
            return siam_error_set(err, SIAM_ERR_FORMAT, "%s: dimension %d of %d is zero", path,
                                  k + 1, ndims);
        /* checked before multiplying, so the product never overflows */
        if (idx->dims[k] > IDX_MAX_BYTES / count)
            return siam_error_set(err, SIAM_ERR_FORMAT,
                                  "%s: header promises too much data (dimension %d is %u; the "
                                  "limit is %llu bytes in all)",
                                  path, k + 1, idx->dims[k], (unsigned long long)IDX_MAX_BYTES);
        count *= idx->dims[k];
    }
    idx->type = magic[2];
    idx->ndims = ndims;
    idx->count = (size_t)count;
    return SIAM_OK;
}

/* Reads the data after the header: the first `items` items, and when that is all of them,
 * checks that nothing follows. */
static int idx_read_data(gzFile f, const char *path, siam_idx *idx, size_t items, siam_error *err) {
    size_t item_size = idx->count / idx->dims[0];
    size_t want = items * item_size;
    idx->data = malloc(want);
    if (!idx->data)
        return siam_error_set(err, SIAM_ERR_NOMEM, "%s: out of memory for %zu bytes of data", path,
                              want);
    int failed;
    size_t got = gz_read_full(f, idx->data, want, &failed);
    if (got < want) {
        int rc = gz_check(f, path, err);
        if (rc != SIAM_OK)
            return rc;
        if (failed)
            return siam_error_set(err, SIAM_ERR_IO, "%s: read error", path);
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "%s: truncated: header promises %u items of %zu bytes, file has "
                              "fewer (data ends after %zu bytes, item %zu)",
                              path, idx->dims[0], item_size, got, got / item_size);
    }
    if (items < idx->dims[0])
        return SIAM_OK;
    uint8_t extra;
    int n = gzread(f, &extra, 1);
    if (n > 0)
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "%s: trailing bytes: the file holds more than the %u items of %zu "
                              "bytes its header promises",
                              path, idx->dims[0], item_size);
    /* a gzip stream cut inside its trailer shows up only here, after all the data */
    int rc = gz_check(f, path, err);
    if (rc != SIAM_OK)
        return rc;
    if (n < 0)
        return siam_error_set(err, SIAM_ERR_IO, "%s: read error", path);
    return SIAM_OK;
}

/* siam_idx_read, also returning the item count the header promised (before max_items). */
static int idx_read(siam_idx *idx, const char *path, int expected_ndims, size_t max_items,
                    uint32_t *header_items, siam_error *err) {
    memset(idx, 0, sizeof *idx);
    if (!path)
        return siam_error_set(err, SIAM_ERR_ARG, "siam_idx_read: path is NULL");
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return siam_error_set(err, SIAM_ERR_IO, "%s: no such file", path);
        if (errno)
            return siam_error_set(err, SIAM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return siam_error_set(err, SIAM_ERR_NOMEM, "%s: cannot open: out of memory", path);
    }
    int rc = SIAM_OK;
    if (gzbuffer(f, IDX_GZ_BUFFER) != 0)
        rc = siam_error_set(err, SIAM_ERR_IO, "%s: cannot set the read buffer size", path);
    if (rc == SIAM_OK)
        rc = idx_read_header(f, path, expected_ndims, idx, err);
    if (rc == SIAM_OK) {
        if (header_items)
            *header_items = idx->dims[0];
        size_t items = idx->dims[0];
        if (max_items > 0 && items > max_items)
            items = max_items;
        rc = idx_read_data(f, path, idx, items, err);
        if (rc == SIAM_OK && items < idx->dims[0]) {
            idx->count = idx->count / idx->dims[0] * items;
            idx->dims[0] = (uint32_t)items;
        }
    }
    int zrc = gzclose(f);
    if (rc == SIAM_OK && zrc != Z_OK) {
        if (zrc == Z_BUF_ERROR)
            rc = siam_error_set(err, SIAM_ERR_FORMAT,
                                "%s: truncated or corrupt gzip stream (ends mid-stream)", path);
        else
            rc = siam_error_set(err, SIAM_ERR_IO, "%s: error closing the file (zlib code %d)", path,
                                zrc);
    }
    if (rc != SIAM_OK)
        siam_idx_free(idx);
    return rc;
}

int siam_idx_read(siam_idx *idx, const char *path, int expected_ndims, size_t max_items,
                  siam_error *err) {
    return idx_read(idx, path, expected_ndims, max_items, NULL, err);
}

void siam_idx_free(siam_idx *idx) {
    if (!idx)
        return;
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}

/* Finds dir/name.gz, else dir/name; path receives the one to read. */
static int find_data_file(char *path, size_t size, const char *dir, const char *name,
                          siam_error *err) {
    struct stat st;
    int n = snprintf(path, size, "%s/%s.gz", dir, name);
    if (n < 0 || (size_t)n >= size)
        return siam_error_set(err, SIAM_ERR_ARG, "data directory path too long: %s", dir);
    if (stat(path, &st) == 0)
        return SIAM_OK;
    int gz_errno = errno;
    char plain[IDX_PATH_MAX];
    snprintf(plain, sizeof plain, "%s/%s", dir, name); /* shorter than path: fits */
    if (stat(plain, &st) == 0) {
        memcpy(path, plain, strlen(plain) + 1);
        return SIAM_OK;
    }
    if (gz_errno != ENOENT)
        return SIAM_OK; /* exists but unreadable: siam_idx_read says why */
    return siam_error_set(err, SIAM_ERR_IO,
                          "%s: no such file (nor %s): Fashion-MNIST is missing; " INSTALL_HINT,
                          path, plain);
}

int siam_dataset_load(siam_dataset *ds, const char *dir, siam_split split, size_t max_items,
                      siam_error *err) {
    memset(ds, 0, sizeof *ds);
    if (split != SIAM_SPLIT_TRAIN && split != SIAM_SPLIT_TEST)
        return siam_error_set(err, SIAM_ERR_ARG, "siam_dataset_load: unknown split %d", (int)split);
    if (!dir)
        dir = SIAM_DATA_DIR_DEFAULT;
    struct stat st;
    const char *dir_problem = NULL;
    if (stat(dir, &st) != 0)
        dir_problem = errno == ENOENT ? "no such directory" : strerror(errno);
    else if (!S_ISDIR(st.st_mode))
        dir_problem = "not a directory";
    if (dir_problem)
        return siam_error_set(err, SIAM_ERR_IO,
                              "data directory %s: %s: Fashion-MNIST is missing; " INSTALL_HINT, dir,
                              dir_problem);

    const char *prefix = split == SIAM_SPLIT_TRAIN ? "train" : "t10k";
    char name[64], img_path[IDX_PATH_MAX], lab_path[IDX_PATH_MAX];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    int rc = find_data_file(img_path, sizeof img_path, dir, name, err);
    if (rc != SIAM_OK)
        return rc;
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    rc = find_data_file(lab_path, sizeof lab_path, dir, name, err);
    if (rc != SIAM_OK)
        return rc;

    siam_idx img, lab;
    uint32_t img_items = 0, lab_items = 0;
    memset(&lab, 0, sizeof lab);
    rc = idx_read(&img, img_path, 3, max_items, &img_items, err);
    if (rc == SIAM_OK)
        rc = idx_read(&lab, lab_path, 1, max_items, &lab_items, err);
    /* compared before max_items cuts them, so a prefix does not hide a mismatch */
    if (rc == SIAM_OK && img_items != lab_items)
        rc = siam_error_set(err, SIAM_ERR_MISMATCH,
                            "count mismatch: %s has %u images but %s has %u labels", img_path,
                            img_items, lab_path, lab_items);
    for (size_t i = 0; rc == SIAM_OK && i < lab.count; i++)
        if (lab.data[i] > 9)
            rc = siam_error_set(err, SIAM_ERR_FORMAT,
                                "%s: label %u of item %zu is out of range (expected 0..9)",
                                lab_path, lab.data[i], i);
    if (rc == SIAM_OK) {
        ds->images = malloc(img.count * sizeof *ds->images);
        if (!ds->images)
            rc = siam_error_set(err, SIAM_ERR_NOMEM, "%s: out of memory for %zu pixels", img_path,
                                img.count);
    }
    if (rc == SIAM_OK) {
        for (size_t i = 0; i < img.count; i++)
            ds->images[i] = (float)img.data[i] / 255.0f;
        ds->n = img.dims[0];
        ds->rows = (int)img.dims[1];
        ds->cols = (int)img.dims[2];
        ds->labels = lab.data; /* ownership moves to ds */
        lab.data = NULL;
    }
    siam_idx_free(&img);
    siam_idx_free(&lab);
    if (rc != SIAM_OK)
        siam_dataset_free(ds);
    return rc;
}

void siam_dataset_free(siam_dataset *ds) {
    if (!ds)
        return;
    free(ds->images);
    free(ds->labels);
    memset(ds, 0, sizeof *ds);
}

int siam_shard_range(size_t n, int index, int count, size_t *begin, size_t *end, siam_error *err) {
    if (count <= 0)
        return siam_error_set(err, SIAM_ERR_ARG, "shard count %d must be positive", count);
    if (index < 0 || index >= count)
        return siam_error_set(err, SIAM_ERR_ARG, "shard index %d out of range 0..%d", index,
                              count - 1);
    /* the first n % count shards take one extra item */
    size_t base = n / (size_t)count, rem = n % (size_t)count, i = (size_t)index;
    *begin = i * base + (i < rem ? i : rem);
    *end = *begin + base + (i < rem ? 1 : 0);
    return SIAM_OK;
}
