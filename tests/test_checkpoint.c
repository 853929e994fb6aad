/* test_checkpoint: round trips, the byte layout, and refusal of every kind of damaged file. */
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "siam_checkpoint.h"

static char tmp_dir[64];

/* tmp_dir/name into buf */
static const char *tmp_path(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", tmp_dir, name);
    return buf;
}

/* Whole file into a malloc'd buffer (caller frees); NULL when it cannot be read. */
static uint8_t *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 4096;
            uint8_t *grown = realloc(buf, cap);
            if (!grown) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    *size = len;
    return buf;
}

static int write_file(const char *path, const uint8_t *buf, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t put = size ? fwrite(buf, 1, size, f) : 0;
    int rc = fclose(f);
    return put == size && rc == 0 ? 0 : -1;
}

/* number of entries in dir whose name contains ".tmp." */
static int count_temp_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Recomputes the trailing CRC after a deliberate edit, so a later check is what refuses. */
static void fix_crc(uint8_t *buf, size_t size) {
    put_le32(buf + size - 4, (uint32_t)crc32(0L, buf, (uInt)(size - 4)));
}

/* Loads path expecting failure with code and a message containing want (and the path). */
static void expect_refused(const char *path, int code, const char *want, const char *what) {
    siam_checkpoint ck;
    siam_error err = {0};
    int rc = siam_checkpoint_load(&ck, path, &err);
    CHECK(rc == code, "%s: got %d (%s), want %d", what, rc, err.msg, code);
    CHECK(strstr(err.msg, want) != NULL, "%s: message \"%s\" lacks \"%s\"", what, err.msg, want);
    CHECK(strncmp(err.msg, path, strlen(path)) == 0, "%s: message \"%s\" does not start with path",
          what, err.msg);
    CHECK(ck.params == NULL && ck.opt == NULL && ck.n_params == 0,
          "%s: failed load leaves the struct empty", what);
    siam_checkpoint_free(&ck);
}

static void fill(float *v, size_t n, float scale) {
    for (size_t i = 0; i < n; i++)
        v[i] = scale * (float)((long)(i * 2654435761u % 20001) - 10000) / 7.0f;
}

static void test_round_trip(void) {
    enum { NP = 1000, NO = 2000 };
    static float params[NP], opt[NO];
    fill(params, NP, 1.0f);
    fill(opt, NO, 1e-3f);
    /* values whose bits a sloppy encoder would change */
    const uint32_t odd_bits[] = {0x80000000u /* -0 */, 0x00000001u /* denormal */,
                                 0x7f800000u /* inf */, 0x7fc01234u /* NaN with payload */,
                                 0xffbfffffu /* negative NaN */};
    for (size_t i = 0; i < sizeof odd_bits / sizeof *odd_bits; i++)
        memcpy(&params[3 + 100 * i], &odd_bits[i], 4);

    char path[128];
    tmp_path(path, sizeof path, "rt.ckpt");
    const char *spec = "mlp:784-128r-d0.5-128r-d0.3-128r";
    siam_error err = {0};
    CHECK(siam_checkpoint_save(path, spec, 12345678901ull, 77, params, NP, opt, NO, &err) ==
              SIAM_OK,
          "save: %s", err.msg);

    siam_checkpoint ck;
    CHECK(siam_checkpoint_load(&ck, path, &err) == SIAM_OK, "load: %s", err.msg);
    CHECK(strcmp(ck.spec, spec) == 0, "spec '%s'", ck.spec);
    CHECK(ck.step == 12345678901ull && ck.round == 77, "step %llu round %llu",
          (unsigned long long)ck.step, (unsigned long long)ck.round);
    CHECK(ck.n_params == NP && ck.n_opt == NO, "counts %zu %zu", ck.n_params, ck.n_opt);
    CHECK(ck.params && memcmp(ck.params, params, sizeof params) == 0, "params bit-exact");
    CHECK(ck.opt && memcmp(ck.opt, opt, sizeof opt) == 0, "opt bit-exact");
    CHECK(siam_checkpoint_check(&ck, path, spec, NP, &err) == SIAM_OK, "check: %s", err.msg);
    siam_checkpoint_free(&ck);
    siam_checkpoint_free(&ck); /* a freed struct is a zeroed struct */

    /* no optimizer state */
    CHECK(siam_checkpoint_save(path, spec, 5, 0, params, NP, NULL, 0, &err) == SIAM_OK, "save: %s",
          err.msg);
    CHECK(siam_checkpoint_load(&ck, path, &err) == SIAM_OK, "load: %s", err.msg);
    CHECK(ck.n_opt == 0 && ck.opt == NULL, "no opt: n_opt %zu", ck.n_opt);
    CHECK(ck.step == 5 && ck.round == 0, "step/round without opt");
    CHECK(ck.params && memcmp(ck.params, params, sizeof params) == 0, "params without opt");
    siam_checkpoint_free(&ck);

    /* empty spec is allowed: spec_len 0 */
    CHECK(siam_checkpoint_save(path, "", 1, 2, params, 1, NULL, 0, &err) == SIAM_OK, "save: %s",
          err.msg);
    CHECK(siam_checkpoint_load(&ck, path, &err) == SIAM_OK, "load: %s", err.msg);
    CHECK(ck.spec[0] == '\0' && ck.n_params == 1, "empty spec");
    siam_checkpoint_free(&ck);

    /* the longest spec allowed, and one byte more */
    static char long_spec[SIAM_SPEC_MAX + 1];
    memset(long_spec, 'x', SIAM_SPEC_MAX - 1);
    CHECK(siam_checkpoint_save(path, long_spec, 1, 2, params, 4, opt, 4, &err) == SIAM_OK,
          "save: %s", err.msg);
    CHECK(siam_checkpoint_load(&ck, path, &err) == SIAM_OK, "load: %s", err.msg);
    CHECK(strcmp(ck.spec, long_spec) == 0, "longest spec kept");
    siam_checkpoint_free(&ck);
    long_spec[SIAM_SPEC_MAX - 1] = 'x';
    CHECK(siam_checkpoint_save(path, long_spec, 1, 2, params, 4, opt, 4, &err) == SIAM_ERR_ARG,
          "spec too long for the format");

    siam_checkpoint zeroed;
    memset(&zeroed, 0, sizeof zeroed);
    siam_checkpoint_free(&zeroed);
}

/* The layout of the header comment, byte by byte, built here independently. */
static void test_layout(void) {
    const float params[] = {1.0f, -2.0f};
    const float opt[] = {0.5f};
    char path[128];
    tmp_path(path, sizeof path, "layout.ckpt");
    siam_error err = {0};
    CHECK(siam_checkpoint_save(path, "ab", 0x0102030405060708ull, 3, params, 2, opt, 1, &err) ==
              SIAM_OK,
          "save: %s", err.msg);

    uint8_t want[8 + 4 + 4 + 2 + 32 + 12 + 4] = {'S', 'I', 'A', 'M', 'C', 'K',
                                                 'P', 'T', 1,   0,   0,   0, /* version */
                                                 2,   0,   0,   0,           /* spec_len */
                                                 'a', 'b'};
    uint8_t *p = want + 18;
    put_le64(p, 0x0102030405060708ull);
    put_le64(p + 8, 3);
    put_le64(p + 16, 2);
    put_le64(p + 24, 1);
    p += 32;
    const uint8_t floats[12] = {0x00, 0x00, 0x80, 0x3f,  /* 1.0f = 0x3f800000 */
                                0x00, 0x00, 0x00, 0xc0,  /* -2.0f = 0xc0000000 */
                                0x00, 0x00, 0x00, 0x3f}; /* 0.5f = 0x3f000000 */
    memcpy(p, floats, 12);
    fix_crc(want, sizeof want);

    size_t size = 0;
    uint8_t *got = read_file(path, &size);
    CHECK(got && size == sizeof want, "file size %zu, want %zu", size, sizeof want);
    if (got && size == sizeof want)
        for (size_t i = 0; i < size; i++)
            CHECK(got[i] == want[i], "byte %zu: %02x, want %02x", i, got[i], want[i]);
    free(got);
}

/* Saves a checkpoint and returns its bytes (caller frees). */
static uint8_t *make_file(const char *path, size_t np, size_t no, size_t *size) {
    float *params = malloc(np * sizeof *params), *opt = malloc((no ? no : 1) * sizeof *opt);
    uint8_t *bytes = NULL;
    siam_error err = {0};
    if (params && opt) {
        fill(params, np, 0.25f);
        fill(opt, no, 0.01f);
        int rc = siam_checkpoint_save(path, "cnn:c32e-p2-bn-c64e-p2-bn-d128", 42, 3, params, np,
                                      opt, no, &err);
        CHECK(rc == SIAM_OK, "save: %s", err.msg);
        if (rc == SIAM_OK)
            bytes = read_file(path, size);
    }
    CHECK(bytes != NULL, "fixture %s", path);
    free(params);
    free(opt);
    return bytes;
}

static void test_byte_flips(void) {
    char good[128], bad[128];
    tmp_path(good, sizeof good, "flip-good.ckpt");
    tmp_path(bad, sizeof bad, "flip-bad.ckpt");
    const size_t spec_len = strlen("cnn:c32e-p2-bn-c64e-p2-bn-d128");
    const size_t payload_at = 16 + spec_len + 32;

    /* a small file: every byte position, two different flips */
    size_t size = 0;
    uint8_t *orig = make_file(good, 10, 5, &size);
    if (!orig)
        return;
    uint8_t *buf = malloc(size);
    int refused = 0, tried = 0;
    for (size_t pos = 0; buf && pos < size; pos++) {
        for (int k = 0; k < 2; k++) {
            memcpy(buf, orig, size);
            buf[pos] ^= k ? 0x01 : 0xff;
            CHECK(write_file(bad, buf, size) == 0, "write %s", bad);
            siam_checkpoint ck;
            siam_error err = {0};
            int rc = siam_checkpoint_load(&ck, bad, &err);
            tried++;
            refused += rc == SIAM_ERR_FORMAT;
            CHECK(rc == SIAM_ERR_FORMAT, "flip at %zu (^%02x) accepted or wrong code %d: %s", pos,
                  k ? 0x01 : 0xff, rc, err.msg);
            CHECK(ck.params == NULL && ck.opt == NULL, "flip at %zu: struct left empty", pos);
            if (pos < 8)
                CHECK(strstr(err.msg, "not a siam checkpoint"), "magic flip %zu: %s", pos, err.msg);
            else if (pos < 12)
                CHECK(strstr(err.msg, "version"), "version flip %zu: %s", pos, err.msg);
            else if (pos >= 16 && pos < 16 + spec_len)
                CHECK(strstr(err.msg, "CRC mismatch: file is corrupt"), "spec flip %zu: %s", pos,
                      err.msg);
            else if (pos >= payload_at - 16 && pos < payload_at - 8 && k == 0)
                CHECK(strstr(err.msg, "absurd") || strstr(err.msg, "truncated"),
                      "n_params flip %zu: %s", pos, err.msg);
            else if (pos >= payload_at)
                CHECK(strstr(err.msg, "CRC mismatch: file is corrupt"), "payload/CRC flip %zu: %s",
                      pos, err.msg);
            siam_checkpoint_free(&ck);
        }
    }
    CHECK(refused == tried, "%d of %d flips refused", refused, tried);
    free(buf);
    free(orig);

    /* a larger file: sampled positions in every region, including the CRC itself */
    orig = make_file(good, 5000, 5000, &size);
    if (!orig)
        return;
    buf = malloc(size);
    const size_t positions[] = {0,
                                7,
                                8,
                                11,
                                12,
                                15,
                                16,
                                16 + spec_len - 1,
                                payload_at - 32,
                                payload_at - 24,
                                payload_at - 9,
                                payload_at - 1,
                                payload_at,
                                payload_at + 1,
                                payload_at + 4 * 5000 - 1,
                                payload_at + 4 * 5000,
                                size / 2,
                                size - 5,
                                size - 4,
                                size - 3,
                                size - 2,
                                size - 1};
    for (size_t i = 0; buf && i < sizeof positions / sizeof *positions; i++) {
        memcpy(buf, orig, size);
        buf[positions[i]] ^= 0x10;
        CHECK(write_file(bad, buf, size) == 0, "write %s", bad);
        char what[64];
        snprintf(what, sizeof what, "large file, flip at %zu", positions[i]);
        siam_checkpoint ck;
        siam_error err = {0};
        int rc = siam_checkpoint_load(&ck, bad, &err);
        CHECK(rc == SIAM_ERR_FORMAT, "%s: code %d: %s", what, rc, err.msg);
        if (positions[i] >= payload_at)
            CHECK(strstr(err.msg, "CRC mismatch"), "%s: %s", what, err.msg);
        siam_checkpoint_free(&ck);
    }
    free(buf);

    /* and the intact file still loads */
    siam_checkpoint ck;
    siam_error err = {0};
    CHECK(siam_checkpoint_load(&ck, good, &err) == SIAM_OK, "intact file: %s", err.msg);
    siam_checkpoint_free(&ck);
    free(orig);
}

static void test_truncation_and_trailing(void) {
    char good[128], bad[128];
    tmp_path(good, sizeof good, "trunc-good.ckpt");
    tmp_path(bad, sizeof bad, "trunc-bad.ckpt");
    size_t size = 0;
    uint8_t *orig = make_file(good, 300, 300, &size);
    if (!orig)
        return;
    const size_t spec_len = strlen("cnn:c32e-p2-bn-c64e-p2-bn-d128");
    const size_t lengths[] = {0,
                              7,
                              8,
                              12,
                              16,
                              16 + spec_len / 2,
                              16 + spec_len + 20,
                              16 + spec_len + 32,
                              16 + spec_len + 32 + 601,
                              size - 4,
                              size - 1};
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        CHECK(write_file(bad, orig, lengths[i]) == 0, "write %s", bad);
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu of %zu bytes", lengths[i], size);
        expect_refused(bad, SIAM_ERR_FORMAT, "truncated", what);
    }

    uint8_t *longer = malloc(size + 100);
    if (longer) {
        memcpy(longer, orig, size);
        memset(longer + size, 0, 100);
        CHECK(write_file(bad, longer, size + 1) == 0, "write %s", bad);
        expect_refused(bad, SIAM_ERR_FORMAT, "trailing bytes", "one trailing byte");
        CHECK(write_file(bad, longer, size + 100) == 0, "write %s", bad);
        expect_refused(bad, SIAM_ERR_FORMAT, "trailing bytes", "100 trailing bytes");
        /* a second checkpoint appended is still trailing garbage */
        uint8_t *twice = malloc(2 * size);
        if (twice) {
            memcpy(twice, orig, size);
            memcpy(twice + size, orig, size);
            CHECK(write_file(bad, twice, 2 * size) == 0, "write %s", bad);
            expect_refused(bad, SIAM_ERR_FORMAT, "trailing bytes", "two checkpoints in one file");
        }
        free(twice);
    }
    free(longer);
    free(orig);
}

static void test_header_refusals(void) {
    char good[128], bad[128];
    tmp_path(good, sizeof good, "head-good.ckpt");
    tmp_path(bad, sizeof bad, "head-bad.ckpt");
    size_t size = 0;
    uint8_t *orig = make_file(good, 8, 0, &size);
    uint8_t *buf = orig ? malloc(size) : NULL;
    if (!buf) {
        free(orig);
        return;
    }
    const size_t spec_len = strlen("cnn:c32e-p2-bn-c64e-p2-bn-d128");
    uint8_t *counts = buf + 16 + spec_len;

    memcpy(buf, orig, size);
    memcpy(buf, "NOTCKPT!", 8);
    fix_crc(buf, size);
    CHECK(write_file(bad, buf, size) == 0, "write");
    expect_refused(bad, SIAM_ERR_FORMAT, "not a siam checkpoint", "wrong magic");

    CHECK(write_file(bad, (const uint8_t *)"hello, world\n", 13) == 0, "write");
    expect_refused(bad, SIAM_ERR_FORMAT, "not a siam checkpoint", "a text file");

    memcpy(buf, orig, size);
    put_le32(buf + 8, 2);
    fix_crc(buf, size);
    CHECK(write_file(bad, buf, size) == 0, "write");
    expect_refused(bad, SIAM_ERR_FORMAT, "version 2, this build reads 1", "future version");

    memcpy(buf, orig, size);
    put_le32(buf + 12, SIAM_SPEC_MAX);
    fix_crc(buf, size);
    CHECK(write_file(bad, buf, size) == 0, "write");
    expect_refused(bad, SIAM_ERR_FORMAT, "spec length", "spec too long");

    memcpy(buf, orig, size);
    put_le64(counts + 16, 1ull << 62);
    fix_crc(buf, size);
    CHECK(write_file(bad, buf, size) == 0, "write");
    expect_refused(bad, SIAM_ERR_FORMAT, "absurd counts", "absurd n_params");

    memcpy(buf, orig, size);
    put_le64(counts + 16, UINT64_MAX);
    put_le64(counts + 24, UINT64_MAX);
    fix_crc(buf, size);
    CHECK(write_file(bad, buf, size) == 0, "write");
    expect_refused(bad, SIAM_ERR_FORMAT, "absurd counts", "counts that overflow");

    /* n_params 0 with n_opt taking its place: the size fits, the CRC is right, still refused */
    memcpy(buf, orig, size);
    put_le64(counts + 16, 0);
    put_le64(counts + 24, 8);
    fix_crc(buf, size);
    CHECK(write_file(bad, buf, size) == 0, "write");
    expect_refused(bad, SIAM_ERR_FORMAT, "no parameters", "n_params 0");

    memcpy(buf, orig, size);
    buf[16 + 3] = '\0';
    fix_crc(buf, size);
    CHECK(write_file(bad, buf, size) == 0, "write");
    expect_refused(bad, SIAM_ERR_FORMAT, "NUL", "NUL inside the spec");

    /* the edits above leave the intact copy alone, and fix_crc agrees with the writer */
    memcpy(buf, orig, size);
    fix_crc(buf, size);
    CHECK(memcmp(buf, orig, size) == 0, "fix_crc reproduces the writer's CRC");
    free(buf);
    free(orig);
}

static void test_check(void) {
    const float params[] = {1, 2, 3, 4};
    char path[128];
    tmp_path(path, sizeof path, "check.ckpt");
    siam_error err = {0};
    CHECK(siam_checkpoint_save(path, "mlp:784-128-128-128", 1, 0, params, 4, NULL, 0, &err) ==
              SIAM_OK,
          "save: %s", err.msg);
    siam_checkpoint ck;
    CHECK(siam_checkpoint_load(&ck, path, &err) == SIAM_OK, "load: %s", err.msg);
    CHECK(siam_checkpoint_check(&ck, path, "mlp:784-128-128-128", 4, &err) == SIAM_OK, "%s",
          err.msg);

    err.msg[0] = '\0';
    CHECK(siam_checkpoint_check(&ck, path, "cnn:c32e-p2", 4, &err) == SIAM_ERR_MISMATCH,
          "different spec");
    CHECK(strstr(err.msg, "mlp:784-128-128-128") && strstr(err.msg, "cnn:c32e-p2"),
          "both specs named: %s", err.msg);
    CHECK(strncmp(err.msg, path, strlen(path)) == 0, "path first: %s", err.msg);

    err.msg[0] = '\0';
    CHECK(siam_checkpoint_check(&ck, path, "mlp:784-128-128-128", 5, &err) == SIAM_ERR_MISMATCH,
          "different count");
    CHECK(strstr(err.msg, " 4 ") && strstr(err.msg, " 5"), "both counts named: %s", err.msg);
    CHECK(strstr(err.msg, "mlp:784-128-128-128"), "spec named: %s", err.msg);

    /* a prefix of the spec is a different spec */
    CHECK(siam_checkpoint_check(&ck, path, "mlp:784-128", 4, &err) == SIAM_ERR_MISMATCH,
          "spec prefix");
    siam_checkpoint_free(&ck);
}

static void test_atomic_save(void) {
    char path[128], sub[128], missing[160], tmp_name[192];
    tmp_path(path, sizeof path, "atomic.ckpt");
    float a[64], b[64];
    fill(a, 64, 1.0f);
    fill(b, 64, -3.0f);
    siam_error err = {0};
    siam_checkpoint ck;

    /* saving over an existing file replaces it, and no temp file is left behind */
    CHECK(siam_checkpoint_save(path, "m-a", 1, 0, a, 64, NULL, 0, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_checkpoint_save(path, "m-b", 2, 0, b, 64, b, 64, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_checkpoint_load(&ck, path, &err) == SIAM_OK, "%s", err.msg);
    CHECK(strcmp(ck.spec, "m-b") == 0 && ck.step == 2 && ck.n_opt == 64, "replaced: %s", ck.spec);
    CHECK(ck.params && memcmp(ck.params, b, sizeof b) == 0, "replaced params");
    siam_checkpoint_free(&ck);
    CHECK(count_temp_files(tmp_dir) == 0, "no *.tmp.* left after saves");

    size_t before_size = 0, after_size = 0;
    uint8_t *before = read_file(path, &before_size);
    CHECK(before != NULL, "read %s", path);

    /* into a directory that does not exist: clean failure naming the path */
    snprintf(missing, sizeof missing, "%s/no-such-dir/x.ckpt", tmp_dir);
    err.msg[0] = '\0';
    CHECK(siam_checkpoint_save(missing, "m-a", 1, 0, a, 64, NULL, 0, &err) == SIAM_ERR_IO,
          "save into a missing directory");
    CHECK(strncmp(err.msg, missing, strlen(missing)) == 0, "path first: %s", err.msg);
    CHECK(strstr(err.msg, strerror(ENOENT)), "reason given: %s", err.msg);

    /* the temp name is taken by a directory: the save fails before touching the target */
    snprintf(tmp_name, sizeof tmp_name, "%s.tmp.%ld", path, (long)getpid());
    CHECK(mkdir(tmp_name, 0700) == 0, "mkdir %s: %s", tmp_name, strerror(errno));
    err.msg[0] = '\0';
    CHECK(siam_checkpoint_save(path, "m-a", 9, 0, a, 64, NULL, 0, &err) == SIAM_ERR_IO,
          "save with the temp name blocked");
    CHECK(strncmp(err.msg, path, strlen(path)) == 0, "path first: %s", err.msg);
    rmdir(tmp_name);

    uint8_t *after = read_file(path, &after_size);
    CHECK(after && after_size == before_size && memcmp(before, after, before_size) == 0,
          "existing checkpoint untouched by failed saves");
    free(before);
    free(after);

    /* rename fails (the target is a non-empty directory): the written temp file is removed */
    tmp_path(sub, sizeof sub, "target-dir");
    char inside[192];
    snprintf(inside, sizeof inside, "%s/keep", sub);
    CHECK(mkdir(sub, 0700) == 0, "mkdir %s", sub);
    CHECK(write_file(inside, (const uint8_t *)"k", 1) == 0, "write %s", inside);
    err.msg[0] = '\0';
    CHECK(siam_checkpoint_save(sub, "m-a", 1, 0, a, 64, NULL, 0, &err) == SIAM_ERR_IO,
          "save over a directory");
    CHECK(strstr(err.msg, "rename"), "says what failed: %s", err.msg);
    CHECK(count_temp_files(tmp_dir) == 0, "temp file removed after a failed rename");
    struct stat st;
    CHECK(stat(inside, &st) == 0, "directory contents intact");
    unlink(inside);
    rmdir(sub);

    /* bad arguments */
    CHECK(siam_checkpoint_save(path, "m", 1, 0, a, 0, NULL, 0, &err) == SIAM_ERR_ARG,
          "no parameters");
    CHECK(siam_checkpoint_save(path, "m", 1, 0, a, 64, NULL, 3, &err) == SIAM_ERR_ARG,
          "n_opt without opt");
}

static void test_load_io_errors(void) {
    char path[128];
    tmp_path(path, sizeof path, "does-not-exist.ckpt");
    expect_refused(path, SIAM_ERR_IO, strerror(ENOENT), "missing file");
    expect_refused(tmp_dir, SIAM_ERR_IO, "not a regular file", "a directory");
}

/* Removes the files the tests made, then the directory. */
static void cleanup(void) {
    DIR *d = opendir(tmp_dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", tmp_dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    CHECK(rmdir(tmp_dir) == 0, "rmdir %s: %s", tmp_dir, strerror(errno));
}

int main(void) {
    tu_trap_fp();
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/siam-test-ckpt-XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_layout();
    test_byte_flips();
    test_truncation_and_trailing();
    test_header_refusals();
    test_check();
    test_atomic_save();
    test_load_io_errors();
    cleanup();
    return tu_finish();
}
