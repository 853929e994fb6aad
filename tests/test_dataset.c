/* test_dataset: IDX reading and validation on generated fixtures, sharding, and the real set. */
#include "test_util.h"

#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "siam_dataset.h"

/* Everything the test writes lives under tmp_dir; created[] is removed in reverse at the end. */
static char tmp_dir[64];
static char created[64][256];
static int n_created;

static const char *fixture_path(const char *name) {
    if (n_created == 64) {
        fprintf(stderr, "too many fixtures\n");
        exit(2);
    }
    char *path = created[n_created++];
    snprintf(path, sizeof created[0], "%s/%s", tmp_dir, name);
    return path;
}

static const char *fixture_dir(const char *name) {
    const char *path = fixture_path(name);
    if (mkdir(path, 0700) != 0) {
        perror(path);
        exit(2);
    }
    return path;
}

static void remove_fixtures(void) {
    for (int i = n_created - 1; i >= 0; i--)
        remove(created[i]); /* some fixtures are never written: ignore ENOENT */
    if (rmdir(tmp_dir) != 0)
        perror(tmp_dir);
}

static void write_raw(const char *path, int gz, const uint8_t *buf, size_t len) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        if (!f || (len > 0 && gzwrite(f, buf, (unsigned)len) != (int)len) || gzclose(f) != Z_OK) {
            fprintf(stderr, "cannot write %s\n", path);
            exit(2);
        }
        return;
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
}

/* Writes magic, n_dims big-endian dims, then data_len bytes of data. */
static void write_idx(const char *path, int gz, uint32_t magic, int n_dims, const uint32_t *dims,
                      const uint8_t *data, size_t data_len) {
    size_t len = 4 + 4 * (size_t)n_dims + data_len;
    uint8_t *buf = malloc(len);
    uint32_t words[5] = {magic};
    for (int k = 0; k < n_dims; k++)
        words[k + 1] = dims[k];
    for (int k = 0; k <= n_dims; k++)
        for (int b = 0; b < 4; b++)
            buf[4 * k + b] = (uint8_t)(words[k] >> (24 - 8 * b));
    if (data_len)
        memcpy(buf + 4 + 4 * n_dims, data, data_len);
    write_raw(path, gz, buf, len);
    free(buf);
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Bytes covering 0..255 in a scrambled order, so any misplaced byte shows. */
static void fill_pattern(uint8_t *data, size_t n, unsigned salt) {
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(i * 37u + salt);
}

/* The file must be refused with a non-zero code, a message naming it and the problem word,
 * and an idx left empty. */
static void expect_refused(const char *path, int expected_ndims, size_t max_items, const char *word,
                           const char *what) {
    siam_idx idx;
    siam_error err = {0};
    memset(&idx, 0xab, sizeof idx);
    int rc = siam_idx_read(&idx, path, expected_ndims, max_items, &err);
    CHECK(rc != SIAM_OK, "%s: accepted", what);
    CHECK(rc == err.code, "%s: returned %d, err.code %d", what, rc, err.code);
    CHECK(strstr(err.msg, path) != NULL, "%s: message does not name the file: %s", what, err.msg);
    CHECK(strstr(err.msg, word) != NULL, "%s: message lacks \"%s\": %s", what, word, err.msg);
    CHECK(idx.data == NULL && idx.count == 0, "%s: idx not left empty", what);
    siam_idx_free(&idx);
    printf("  refused %-28s %s: %s\n", what, siam_error_name(rc), err.msg);
}

enum { N = 5, ROWS = 3, COLS = 4, PIX = N * ROWS * COLS };

static void test_read_good(void) {
    uint8_t data[PIX];
    uint32_t dims[3] = {N, ROWS, COLS};
    fill_pattern(data, PIX, 7);
    for (int gz = 0; gz <= 1; gz++) {
        const char *path = fixture_path(gz ? "good3.gz" : "good3");
        write_idx(path, gz, 0x0803, 3, dims, data, PIX);

        siam_idx idx;
        siam_error err = {0};
        int rc = siam_idx_read(&idx, path, 3, 0, &err);
        CHECK(rc == SIAM_OK, "gz=%d: %s", gz, err.msg);
        CHECK(idx.type == 0x08 && idx.ndims == 3, "gz=%d: type %d ndims %d", gz, idx.type,
              idx.ndims);
        CHECK(idx.dims[0] == N && idx.dims[1] == ROWS && idx.dims[2] == COLS, "gz=%d: dims", gz);
        CHECK(idx.count == PIX, "gz=%d: count %zu", gz, idx.count);
        CHECK(idx.data && memcmp(idx.data, data, PIX) == 0, "gz=%d: data differs", gz);
        siam_idx_free(&idx);
        CHECK(idx.data == NULL, "free clears the struct");
        siam_idx_free(&idx); /* twice is safe */

        /* expected_ndims 0 accepts whatever the file says */
        rc = siam_idx_read(&idx, path, 0, 0, &err);
        CHECK(rc == SIAM_OK && idx.ndims == 3, "gz=%d: any ndims: %s", gz, err.msg);
        siam_idx_free(&idx);

        /* a prefix: only the first two items */
        rc = siam_idx_read(&idx, path, 3, 2, &err);
        CHECK(rc == SIAM_OK, "gz=%d prefix: %s", gz, err.msg);
        CHECK(idx.dims[0] == 2 && idx.dims[1] == ROWS && idx.dims[2] == COLS, "prefix dims");
        CHECK(idx.count == 2 * ROWS * COLS, "prefix count %zu", idx.count);
        CHECK(idx.data && memcmp(idx.data, data, 2 * ROWS * COLS) == 0, "prefix data differs");
        siam_idx_free(&idx);

        /* max_items at or beyond the count reads everything */
        for (size_t max = N; max <= N + 1; max++) {
            rc = siam_idx_read(&idx, path, 3, max, &err);
            CHECK(rc == SIAM_OK && idx.dims[0] == N && idx.count == PIX, "max_items %zu", max);
            siam_idx_free(&idx);
        }
    }

    uint8_t labels[N] = {3, 0, 9, 1, 9};
    uint32_t n = N;
    const char *path = fixture_path("labels1.gz");
    write_idx(path, 1, 0x0801, 1, &n, labels, N);
    siam_idx idx;
    siam_error err = {0};
    int rc = siam_idx_read(&idx, path, 1, 0, &err);
    CHECK(rc == SIAM_OK && idx.ndims == 1 && idx.dims[0] == N && idx.count == N, "1-dim: %s",
          err.msg);
    CHECK(idx.data && memcmp(idx.data, labels, N) == 0, "1-dim data differs");
    siam_idx_free(&idx);
}

static void test_read_broken(void) {
    uint8_t data[PIX + 3];
    uint32_t dims[3] = {N, ROWS, COLS};
    fill_pattern(data, sizeof data, 11);
    for (int gz = 0; gz <= 1; gz++) {
        char name[64];
#define BROKEN(base)                                                                               \
    (snprintf(name, sizeof name, "%s%s", (base), gz ? ".gz" : ""), fixture_path(name))
        const char *path = BROKEN("magic");
        write_idx(path, gz, 0x0903, 3, dims, data, PIX);
        expect_refused(path, 3, 0, "magic", "type 0x09 in the magic");
        expect_refused(path, 0, 0, "magic", "type 0x09, any ndims");

        path = BROKEN("magic_nonzero");
        write_idx(path, gz, 0x01000803, 3, dims, data, PIX);
        expect_refused(path, 3, 0, "magic", "non-zero first magic byte");

        path = BROKEN("ndims2");
        write_idx(path, gz, 0x0802, 2, dims, data, PIX);
        expect_refused(path, 3, 0, "dimensions", "2 dims where 3 expected");
        expect_refused(path, 1, 0, "dimensions", "2 dims where 1 expected");

        path = BROKEN("ndims4");
        uint32_t dims4[4] = {N, ROWS, COLS, 1};
        write_idx(path, gz, 0x0804, 4, dims4, data, PIX);
        expect_refused(path, 0, 0, "dimensions", "4 dims");

        path = BROKEN("short_data");
        uint32_t more[3] = {N + 1, ROWS, COLS};
        write_idx(path, gz, 0x0803, 3, more, data, PIX);
        expect_refused(path, 3, 0, "truncated", "count larger than the data");
        expect_refused(path, 3, 0, "promises 6 items", "count larger than the data");
        /* a prefix that the data does hold is fine */
        siam_idx idx;
        siam_error err = {0};
        CHECK(siam_idx_read(&idx, path, 3, N, &err) == SIAM_OK, "prefix of short file: %s",
              err.msg);
        siam_idx_free(&idx);

        path = BROKEN("zero_dim");
        uint32_t zero[3] = {N, 0, COLS};
        write_idx(path, gz, 0x0803, 3, zero, data, PIX);
        expect_refused(path, 3, 0, "zero", "zero dimension");
        zero[1] = ROWS;
        zero[0] = 0;
        write_idx(path, gz, 0x0803, 3, zero, data, 0);
        expect_refused(path, 3, 0, "zero", "zero item count");

        path = BROKEN("trailing");
        write_idx(path, gz, 0x0803, 3, dims, data, PIX + 3);
        expect_refused(path, 3, 0, "trailing", "trailing bytes");
        expect_refused(path, 3, N + 10, "trailing", "trailing bytes, large max_items");
        CHECK(siam_idx_read(&idx, path, 3, N - 1, &err) == SIAM_OK, "prefix of long file: %s",
              err.msg);
        siam_idx_free(&idx);

        path = BROKEN("huge");
        uint32_t huge[3] = {65536, 65536, 65536};
        write_idx(path, gz, 0x0803, 3, huge, data, PIX);
        expect_refused(path, 3, 0, "too much", "absurd count");
        expect_refused(path, 3, 1, "too much", "absurd count, prefix");
        uint32_t big[3] = {65536, 65536, 1}; /* 4 GiB: no overflow, over the cap */
        write_idx(path, gz, 0x0803, 3, big, data, PIX);
        expect_refused(path, 3, 0, "too much", "4 GiB count");

        path = BROKEN("short_header");
        write_idx(path, gz, 0x0803, 1, dims, data, 0); /* magic and one of three dims */
        expect_refused(path, 3, 0, "truncated", "header cut in the dims");
        write_raw(path, gz, data, 2);
        expect_refused(path, 0, 0, "truncated", "header cut in the magic");
        write_raw(path, gz, data, 0);
        expect_refused(path, 0, 0, "truncated", "empty file");
#undef BROKEN
    }

    const char *missing = fixture_path("no-such-file.gz");
    expect_refused(missing, 3, 0, "no such file", "missing file");
    expect_refused(tmp_dir, 3, 0, tmp_dir, "a directory");
}

/* A valid .gz cut short at several points: inside the trailer, inside the data, halfway. */
static void test_truncated_gzip(void) {
    enum { TN = 20, TPIX = TN * 28 * 28 };
    static uint8_t data[TPIX];
    uint32_t dims[3] = {TN, 28, 28};
    uint32_t x = 12345;
    for (size_t i = 0; i < TPIX; i++) { /* random bytes: deflate cannot shrink them much */
        x = x * 1103515245u + 12345u;
        data[i] = (uint8_t)(x >> 24);
    }
    const char *path = fixture_path("cut.gz");
    write_idx(path, 1, 0x0803, 3, dims, data, TPIX);
    long size = file_size(path);
    CHECK(size > 1000, "gzip fixture size %ld", size);

    siam_idx idx;
    siam_error err = {0};
    int rc = siam_idx_read(&idx, path, 3, 0, &err);
    CHECK(rc == SIAM_OK && idx.count == TPIX && memcmp(idx.data, data, TPIX) == 0,
          "uncut fixture: %s", err.msg);
    siam_idx_free(&idx);

    long cuts[] = {1, 4, 8, 12, 100, size / 2, size - 20};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        write_idx(path, 1, 0x0803, 3, dims, data, TPIX);
        CHECK(truncate(path, size - cuts[c]) == 0, "truncate");
        char what[64];
        snprintf(what, sizeof what, "gzip cut by %ld of %ld bytes", cuts[c], size);
        expect_refused(path, 3, 0, "truncated", what);
    }

    /* a flipped byte in the middle: corrupt data or a failed CRC */
    write_idx(path, 1, 0x0803, 3, dims, data, TPIX);
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL, "reopen");
    if (f) {
        CHECK(fseek(f, size / 2, SEEK_SET) == 0, "seek");
        int b = fgetc(f);
        CHECK(fseek(f, size / 2, SEEK_SET) == 0 && fputc(b ^ 0x5a, f) != EOF, "flip");
        CHECK(fclose(f) == 0, "close");
    }
    expect_refused(path, 3, 0, "corrupt", "gzip with a flipped byte");
}

/* Writes a split (images and labels) into dir. */
static void write_split(const char *dir, const char *prefix, int gz, uint32_t n_img, uint32_t n_lab,
                        const uint8_t *pixels, const uint8_t *labels) {
    char name[128];
    uint32_t dims[3] = {n_img, ROWS, COLS};
    snprintf(name, sizeof name, "%s/%s-images-idx3-ubyte%s", strrchr(dir, '/') + 1, prefix,
             gz ? ".gz" : "");
    write_idx(fixture_path(name), gz, 0x0803, 3, dims, pixels, (size_t)n_img * ROWS * COLS);
    snprintf(name, sizeof name, "%s/%s-labels-idx1-ubyte%s", strrchr(dir, '/') + 1, prefix,
             gz ? ".gz" : "");
    write_idx(fixture_path(name), gz, 0x0801, 1, &n_lab, labels, n_lab);
}

static void expect_load_refused(const char *dir, siam_split split, const char *word,
                                const char *names, const char *what) {
    siam_dataset ds;
    siam_error err = {0};
    int rc = siam_dataset_load(&ds, dir, split, 0, &err);
    CHECK(rc != SIAM_OK && rc == err.code, "%s: rc %d", what, rc);
    CHECK(strstr(err.msg, word) != NULL, "%s: message lacks \"%s\": %s", what, word, err.msg);
    CHECK(strstr(err.msg, names) != NULL, "%s: message lacks \"%s\": %s", what, names, err.msg);
    CHECK(ds.images == NULL && ds.labels == NULL && ds.n == 0, "%s: ds not left empty", what);
    siam_dataset_free(&ds);
    printf("  refused %-28s %s: %s\n", what, siam_error_name(rc), err.msg);
}

static void test_dataset_load(void) {
    uint8_t pixels[PIX];
    fill_pattern(pixels, PIX, 0);
    pixels[7] = 255; /* the extremes must map to exactly 0 and 1 */
    pixels[8] = 0;
    uint8_t labels[N] = {9, 0, 4, 9, 1};

    /* train gzip'd, test plain: the loader falls back to the names without .gz */
    const char *dir = fixture_dir("ds_ok");
    write_split(dir, "train", 1, N, N, pixels, labels);
    write_split(dir, "t10k", 0, N - 1, N - 1, pixels + ROWS * COLS, labels + 1);
    for (int s = 0; s <= 1; s++) {
        siam_dataset ds;
        siam_error err = {0};
        size_t n = s ? N - 1 : N;
        const uint8_t *px = s ? pixels + ROWS * COLS : pixels;
        const uint8_t *lab = s ? labels + 1 : labels;
        int rc = siam_dataset_load(&ds, dir, s ? SIAM_SPLIT_TEST : SIAM_SPLIT_TRAIN, 0, &err);
        CHECK(rc == SIAM_OK, "load split %d: %s", s, err.msg);
        if (rc != SIAM_OK)
            continue;
        CHECK(ds.n == n && ds.rows == ROWS && ds.cols == COLS, "split %d: n %zu %dx%d", s, ds.n,
              ds.rows, ds.cols);
        int exact = 1;
        for (size_t i = 0; i < n * ROWS * COLS; i++) {
            exact &= ds.images[i] == (float)px[i] / 255.0f;
            exact &= ds.images[i] >= 0.0f && ds.images[i] <= 1.0f;
            CHECK_NEAR(ds.images[i], px[i] / 255.0, 1e-7, "pixel");
        }
        CHECK(exact, "split %d: pixels are not byte/255 in [0,1]", s);
        CHECK(memcmp(ds.labels, lab, n) == 0, "split %d: labels differ", s);
        siam_dataset_free(&ds);
        siam_dataset_free(&ds);
    }
    /* pixel value 255 maps to exactly 1 and 0 to exactly 0 */
    {
        siam_dataset ds;
        siam_error err = {0};
        CHECK(siam_dataset_load(&ds, dir, SIAM_SPLIT_TRAIN, 0, &err) == SIAM_OK, "%s", err.msg);
        float lo = 1, hi = 0;
        for (size_t i = 0; i < ds.n * ROWS * COLS; i++) {
            lo = ds.images[i] < lo ? ds.images[i] : lo;
            hi = ds.images[i] > hi ? ds.images[i] : hi;
        }
        CHECK(lo == 0.0f && hi == 1.0f, "pixel range [%g, %g]", lo, hi);
        siam_dataset_free(&ds);

        /* a prefix of two items */
        CHECK(siam_dataset_load(&ds, dir, SIAM_SPLIT_TRAIN, 2, &err) == SIAM_OK, "%s", err.msg);
        CHECK(ds.n == 2 && ds.labels[0] == 9 && ds.labels[1] == 0, "prefix n %zu", ds.n);
        CHECK(ds.images[2 * ROWS * COLS - 1] == (float)pixels[2 * ROWS * COLS - 1] / 255.0f,
              "prefix pixels");
        siam_dataset_free(&ds);
    }

    dir = fixture_dir("ds_label");
    uint8_t bad_labels[N] = {1, 2, 10, 3, 4};
    write_split(dir, "train", 1, N, N, pixels, bad_labels);
    expect_load_refused(dir, SIAM_SPLIT_TRAIN, "label", "ds_label/train-labels-idx1-ubyte.gz",
                        "label 10");

    dir = fixture_dir("ds_count");
    write_split(dir, "train", 1, N, N - 1, pixels, labels);
    expect_load_refused(dir, SIAM_SPLIT_TRAIN, "mismatch", "ds_count/train-images-idx3-ubyte.gz",
                        "image/label counts");
    expect_load_refused(dir, SIAM_SPLIT_TRAIN, "mismatch", "ds_count/train-labels-idx1-ubyte.gz",
                        "image/label counts");
    {
        /* a prefix does not hide the mismatch */
        siam_dataset ds;
        siam_error err = {0};
        CHECK(siam_dataset_load(&ds, dir, SIAM_SPLIT_TRAIN, 2, &err) != SIAM_OK,
              "count mismatch accepted with a prefix");
        siam_dataset_free(&ds);
    }

    /* labels written as a 3-dim file */
    dir = fixture_dir("ds_swapped");
    uint32_t dims[3] = {N, ROWS, COLS};
    write_idx(fixture_path("ds_swapped/t10k-images-idx3-ubyte.gz"), 1, 0x0803, 3, dims, pixels,
              PIX);
    write_idx(fixture_path("ds_swapped/t10k-labels-idx1-ubyte.gz"), 1, 0x0803, 3, dims, pixels,
              PIX);
    expect_load_refused(dir, SIAM_SPLIT_TEST, "dimensions", "ds_swapped/t10k-labels-idx1-ubyte.gz",
                        "3-dim label file");

    dir = fixture_dir("ds_empty");
    expect_load_refused(dir, SIAM_SPLIT_TRAIN, "apt-get install dataset-fashion-mnist",
                        "ds_empty/train-images-idx3-ubyte.gz", "missing files");
    expect_load_refused(dir, SIAM_SPLIT_TEST, "--data", "ds_empty/t10k-images-idx3-ubyte",
                        "missing files");
    /* images present, labels missing */
    write_idx(fixture_path("ds_empty/train-images-idx3-ubyte"), 0, 0x0803, 3, dims, pixels, PIX);
    expect_load_refused(dir, SIAM_SPLIT_TRAIN, "apt-get install dataset-fashion-mnist",
                        "ds_empty/train-labels-idx1-ubyte", "missing label file");

    const char *nodir = fixture_path("no-such-dir");
    expect_load_refused(nodir, SIAM_SPLIT_TRAIN, "apt-get install dataset-fashion-mnist", nodir,
                        "missing directory");
    expect_load_refused(nodir, SIAM_SPLIT_TRAIN, "--data DIR", "no such directory",
                        "missing directory");
}

static void test_shard_range(void) {
    size_t ns[] = {0, 1, 2, 7, 10, 100, 60000, 119980};
    int counts[] = {1, 2, 3, 4, 7, 16};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
            size_t n = ns[a], prev_end = 0, lo = SIZE_MAX, hi = 0;
            int ok = 1;
            for (int i = 0; i < counts[c]; i++) {
                size_t b = 99, e = 99;
                siam_error err = {0};
                ok &= siam_shard_range(n, i, counts[c], &b, &e, &err) == SIAM_OK;
                ok &= b == prev_end && e >= b; /* contiguous and disjoint */
                prev_end = e;
                lo = e - b < lo ? e - b : lo;
                hi = e - b > hi ? e - b : hi;
            }
            CHECK(ok && prev_end == n, "n %zu count %d: not contiguous/covering", n, counts[c]);
            CHECK(hi - lo <= 1, "n %zu count %d: sizes %zu..%zu", n, counts[c], lo, hi);
        }
    }
    size_t b = 0, e = 0;
    siam_error err = {0};
    CHECK(siam_shard_range(10, 3, 4, &b, &e, &err) == SIAM_OK && b == 8 && e == 10,
          "last of 10/4 is [%zu,%zu)", b, e);
    CHECK(siam_shard_range(10, 0, 4, &b, &e, &err) == SIAM_OK && b == 0 && e == 3,
          "first of 10/4 is [%zu,%zu)", b, e);
    int bad[][2] = {{-1, 4}, {4, 4}, {5, 4}, {0, 0}, {0, -2}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        err.code = 0;
        err.msg[0] = 0;
        int rc = siam_shard_range(10, bad[k][0], bad[k][1], &b, &e, &err);
        CHECK(rc == SIAM_ERR_ARG && err.code == SIAM_ERR_ARG && err.msg[0],
              "index %d of %d accepted", bad[k][0], bad[k][1]);
    }
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_real_data(void) {
    const char *dir = getenv("SIAM_DATA_DIR");
    if (!dir || !*dir)
        dir = SIAM_DATA_DIR_DEFAULT;
    static const uint8_t first_labels[2][10] = {{9, 0, 0, 3, 0, 2, 7, 2, 5, 5},
                                                {9, 2, 1, 1, 6, 1, 4, 6, 5, 7}};
    for (int s = 0; s <= 1; s++) {
        siam_dataset ds;
        siam_error err = {0};
        double t0 = now_seconds();
        int rc = siam_dataset_load(&ds, dir, s ? SIAM_SPLIT_TEST : SIAM_SPLIT_TRAIN, 0, &err);
        double dt = now_seconds() - t0;
        CHECK(rc == SIAM_OK,
              "real Fashion-MNIST in %s not loadable (install it with `apt-get install "
              "dataset-fashion-mnist`): %s",
              dir, err.msg);
        if (rc != SIAM_OK)
            continue;
        printf("  loaded %s split: %zu images in %.3f s\n", s ? "test" : "train", ds.n, dt);
        size_t want_n = s ? 10000 : 60000;
        CHECK(ds.n == want_n && ds.rows == 28 && ds.cols == 28, "split %d: %zu images %dx%d", s,
              ds.n, ds.rows, ds.cols);
        size_t per_class[10] = {0}, bad_labels = 0, bad_pixels = 0;
        for (size_t i = 0; i < ds.n; i++) {
            if (ds.labels[i] > 9)
                bad_labels++;
            else
                per_class[ds.labels[i]]++;
        }
        CHECK(bad_labels == 0, "%zu labels outside 0..9", bad_labels);
        for (int d = 0; d < 10; d++)
            CHECK(per_class[d] == want_n / 10, "class %d has %zu images", d, per_class[d]);
        float lo = 1, hi = 0;
        for (size_t i = 0; i < ds.n * 28 * 28; i++) {
            if (!(ds.images[i] >= 0.0f && ds.images[i] <= 1.0f))
                bad_pixels++;
            lo = ds.images[i] < lo ? ds.images[i] : lo;
            hi = ds.images[i] > hi ? ds.images[i] : hi;
        }
        CHECK(bad_pixels == 0 && lo == 0.0f && hi == 1.0f, "%zu pixels outside [0,1]; range %g..%g",
              bad_pixels, lo, hi);
        CHECK(ds.n >= 10 && memcmp(ds.labels, first_labels[s], 10) == 0,
              "split %d: first labels differ from the published set", s);
        siam_dataset_free(&ds);

        rc = siam_dataset_load(&ds, dir, s ? SIAM_SPLIT_TEST : SIAM_SPLIT_TRAIN, 1000, &err);
        CHECK(rc == SIAM_OK && ds.n == 1000 && memcmp(ds.labels, first_labels[s], 10) == 0,
              "real prefix of 1000: %s", err.msg);
        siam_dataset_free(&ds);
    }
}

int main(void) {
    tu_trap_fp();
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/siam_test_dataset_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_read_good();
    test_read_broken();
    test_truncated_gzip();
    test_dataset_load();
    test_shard_range();
    test_real_data();
    remove_fixtures();
    return tu_finish();
}
