/* test_search_images: the images `siam-client search` and `gallery-add` send
 * (client/siam_search_images.c): argv split into sources (--image with several files, repeated
 * and =-forms, -k), index lists ("0,17,40-49") and every malformed one a user may type, loading in
 * command-line order against the IDX bytes read here with zlib (independently of siam_dataset),
 * PGM files of the right and the wrong size, indices beyond the data set, a model of another
 * input shape, and the class-number labels. */
#include "test_util.h"

#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "siam_dataset.h"
#include "siam_search_internal.h"

static const char *data_dir(void) {
    const char *d = getenv("SIAM_DATA_DIR");
    return d && *d ? d : SIAM_DATA_DIR_DEFAULT;
}

/* The first n images (784 bytes each) and labels of the test set, read with zlib. */
static int read_test_prefix(size_t n, uint8_t *px, uint8_t *labels) {
    char path[4096];
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", data_dir());
    gzFile f = gzopen(path, "rb");
    uint8_t head[16];
    if (!f || gzread(f, head, 16) != 16 || gzread(f, px, (unsigned)(n * 784)) != (int)(n * 784)) {
        if (f)
            gzclose(f);
        return -1;
    }
    gzclose(f);
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte.gz", data_dir());
    f = gzopen(path, "rb");
    if (!f || gzread(f, head, 8) != 8 || gzread(f, labels, (unsigned)n) != (int)n) {
        if (f)
            gzclose(f);
        return -1;
    }
    gzclose(f);
    return 0;
}

static void test_split(void) {
    char *argv[] = {"search", "--image",         "a.pgm",   "b.pgm",         "-k",
                    "3",      "--test-index",    "0,5-7",   "--image=c.pgm", "--server",
                    "x:1",    "--train-index=9", "--image", "d.pgm",         NULL};
    int argc = (int)(sizeof argv / sizeof *argv) - 1;
    image_args a;
    CHECK(image_args_split("t", argc, argv, &a) == -1, "a good command line goes on");
    CHECK(a.n_src == 6, "6 sources, got %d", a.n_src);
    const char *want[] = {"a.pgm", "b.pgm", "0,5-7", "c.pgm", "9", "d.pgm"};
    image_source_kind kinds[] = {SRC_PGM, SRC_PGM, SRC_TEST, SRC_PGM, SRC_TRAIN, SRC_PGM};
    for (int i = 0; i < a.n_src && i < 6; i++)
        CHECK(strcmp(a.src[i].value, want[i]) == 0 && a.src[i].kind == kinds[i],
              "source %d is %s (%d), expected %s (%d)", i, a.src[i].value, a.src[i].kind, want[i],
              kinds[i]);
    /* the rest for the option parser: -k spelt --k, in order, NULL-terminated */
    const char *rest[] = {"search", "--k", "3", "--server", "x:1"};
    CHECK(a.n_rest == 5, "5 arguments left, got %d", a.n_rest);
    for (int i = 0; i < a.n_rest && i < 5; i++)
        CHECK(strcmp(a.rest[i], rest[i]) == 0, "rest[%d] is %s, expected %s", i, a.rest[i],
              rest[i]);
    CHECK(a.rest[a.n_rest] == NULL, "rest is NULL-terminated");
    CHECK(image_args_check("t", &a) == -1, "the lists parse");
    image_args_free(&a);

    char *no_files[] = {"search", "--image", "--k", "2", NULL};
    CHECK(image_args_split("t", 4, no_files, &a) == 2,
          "--image without files is a bad command line");
    image_args_free(&a);
    char *empty_eq[] = {"search", "--test-index=", NULL};
    CHECK(image_args_split("t", 2, empty_eq, &a) == 2, "--test-index= without a value");
    image_args_free(&a);
    char *one_list[] = {"search", "--test-index", "1,2", "3", NULL};
    CHECK(image_args_split("t", 4, one_list, &a) == -1 && a.n_src == 1 && a.n_rest == 2,
          "--test-index takes one list; what follows goes to the parser (and is refused there)");
    image_args_free(&a);
}

/* image_args_check on a single --test-index value: -1 (good) or 2 */
static int check_list(const char *list) {
    char *argv[] = {"search", "--test-index", (char *)list, NULL};
    image_args a;
    int rc = image_args_split("t", 3, argv, &a);
    if (rc < 0)
        rc = image_args_check("t", &a);
    image_args_free(&a);
    return rc;
}

static void test_lists(void) {
    const char *good[] = {"0", "17", "0,17,42", "40-49", "3-3", "0-9999", "5,1-2,5"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        CHECK(check_list(good[i]) == -1, "'%s' parses", good[i]);
    const char *bad[] = {"",         "x",  "1,",  ",1",  "1,,2", "9-3",   "1-",
                         "-1",       "+1", "1 2", "1.5", "0x10", "1-2-3", "99999999999999999999",
                         "0-1000000"}; /* more than SIAM_SEARCH_MAX_IMAGES */
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(check_list(bad[i]) == 2, "'%s' is refused", bad[i]);
}

static void test_load(void) {
    enum { N = 50 };
    static uint8_t px[N * 784], labels[N];
    if (read_test_prefix(N, px, labels) != 0) {
        CHECK(0, "cannot read the test set in %s (apt-get install dataset-fashion-mnist)",
              data_dir());
        return;
    }
    char dir[] = "/tmp/test_search_images_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char pgm[4200], small[4200];
    snprintf(pgm, sizeof pgm, "%s/t7.pgm", dir);
    snprintf(small, sizeof small, "%s/small.pgm", dir);
    FILE *f = fopen(pgm, "wb");
    fprintf(f, "P5\n28 28\n255\n");
    fwrite(px + 7 * 784, 1, 784, f);
    fclose(f);
    f = fopen(small, "wb");
    fprintf(f, "P5\n27 28\n255\n");
    fwrite(px, 1, 27 * 28, f);
    fclose(f);

    /* in command-line order: indices, a file, training images; names and classes */
    image_source src[] = {{SRC_TEST, "3,40-42"}, {SRC_PGM, pgm}, {SRC_TEST, "7"}, {SRC_TRAIN, "0"}};
    image_set s;
    siam_error err = {0};
    int rc = image_set_load(&s, src, 4, data_dir(), 28, 28, 1, &err);
    CHECK(rc == SIAM_OK, "load: %s", err.msg);
    if (rc == SIAM_OK) {
        CHECK(s.n == 7 && s.from_data == 6, "7 images, 6 from the data set: %zu, %d", s.n,
              s.from_data);
        /* slot 4 is the PGM written from test image 7's bytes */
        const size_t idx[] = {3, 40, 41, 42, 7, 7};
        for (size_t k = 0; k < 6; k++)
            CHECK(memcmp(s.px + k * 784, px + idx[k] * 784, 784) == 0,
                  "slot %zu holds the bytes of test image %zu", k, idx[k]);
        CHECK(s.cls[0] == labels[3] && s.cls[1] == labels[40] && s.cls[5] == labels[7],
              "classes from the labels file");
        CHECK(s.cls[4] == -1 && strcmp(s.name[4], pgm) == 0, "a file has no class, its name");
        CHECK(strcmp(s.name[0], "test image 3") == 0 && strcmp(s.name[6], "training image 0") == 0,
              "names: '%s', '%s'", s.name[0], s.name[6]);
        CHECK(s.cls[6] == 9, "training image 0 is an Ankle boot (9), got %d", s.cls[6]);
        image_set_free(&s);
    }

    image_source small_src[] = {{SRC_PGM, small}};
    rc = image_set_load(&s, small_src, 1, data_dir(), 28, 28, 1, &err);
    CHECK(rc == SIAM_ERR_MISMATCH && strstr(err.msg, "is 27x28, expected 28x28") &&
              strstr(err.msg, "the server's model takes 28x28 images"),
          "a 27x28 PGM: %s", err.msg);
    image_source far[] = {{SRC_TEST, "1,10000"}};
    rc = image_set_load(&s, far, 1, data_dir(), 28, 28, 1, &err);
    CHECK(rc == SIAM_ERR_ARG &&
              strstr(err.msg, "--test-index 10000 is out of range: the test set has 10000 images"),
          "beyond the test set: %s", err.msg);
    image_source one[] = {{SRC_TEST, "1"}};
    rc = image_set_load(&s, one, 1, data_dir(), 32, 32, 3, &err);
    CHECK(rc == SIAM_ERR_MISMATCH && strstr(err.msg, "32x32x3") && strstr(err.msg, "28x28x1"),
          "a model of another shape: %s", err.msg);
    image_source file_rgb[] = {{SRC_PGM, pgm}};
    rc = image_set_load(&s, file_rgb, 1, data_dir(), 28, 28, 3, &err);
    CHECK(rc == SIAM_ERR_MISMATCH && strstr(err.msg, "one channel"), "a PGM for RGB: %s", err.msg);
    rc = image_set_load(&s, one, 1, "/nonexistent-data", 28, 28, 1, &err);
    CHECK(rc == SIAM_ERR_IO && strstr(err.msg, "apt-get install dataset-fashion-mnist") &&
              strstr(err.msg, "--data DIR"),
          "a missing data directory: %s", err.msg);
    unlink(pgm);
    unlink(small);
    rmdir(dir);
}

static void test_label_class(void) {
    int c = -1;
    CHECK(label_class("7", &c) && c == 7, "\"7\" is class 7");
    CHECK(label_class("0", &c) && c == 0, "\"0\" is class 0");
    CHECK(!label_class("10", &c) && !label_class("", &c) && !label_class("7a", &c) &&
              !label_class("boot", &c) && !label_class(NULL, &c),
          "names and other numbers are not classes");
}

int main(void) {
    test_split();
    test_lists();
    test_load();
    test_label_class();
    return tu_finish();
}
