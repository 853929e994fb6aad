/* test_gallery: server/siam_gallery and server/siam_inference on their own. The store keeps
 * what it is given (ids, labels, images); every version's embeddings equal a siam_model's
 * computed here with the version's parameters, bit for bit (inference is per row); re-embedding
 * with new weights, items stored before any model, adds meanwhile; labels refused as documented;
 * the size limit; the gallery file written and read back, and refused when damaged (truncated,
 * a flipped byte, another version, trailing bytes, a bad magic, crafted ids and labels with a
 * valid CRC); IDX loading; the saving thread; the inference pool's replicas. */
#include "test_util.h"

#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "siam_gallery.h"
#include "siam_inference.h"
#include "siam_model.h"
#include "siam_rng.h"

/* a non-square, two-channel input: nothing assumes 28x28x1 */
#define SPEC "in=6x5x2 dense8 relu dense4"
enum { H = 6, W = 5, C = 2, IMG = H * W * C, DIM = 4 };

static char tmp_dir[] = "/tmp/test_gallery.XXXXXX";
static siam_rng rng;

static void path_in_tmp(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", tmp_dir, name);
}

static void random_images(uint8_t *x, size_t n) {
    for (size_t i = 0; i < n * IMG; i++)
        x[i] = (uint8_t)siam_rng_below(&rng, 256);
}

/* Weights of SPEC with parameters from seed, and the same parameters in a plain model. */
static siam_weights *make_weights(uint64_t seed, uint64_t round, siam_model **model) {
    siam_model *m = NULL;
    siam_error err = {0};
    CHECK(siam_model_create(&m, SPEC, seed, &err) == SIAM_OK, "%s", err.msg);
    siam_weights *w = NULL;
    CHECK(siam_weights_create(&w, SPEC, siam_model_params(m), siam_model_num_params(m), round,
                              &err) == SIAM_OK,
          "%s", err.msg);
    if (model)
        *model = m;
    else
        siam_model_free(m);
    return w;
}

/* The embedding of one image computed here: pixels / 255, siam_model_embed. */
static void ref_embed(siam_model *m, const uint8_t *img, float *out) {
    float x[IMG];
    for (int i = 0; i < IMG; i++)
        x[i] = (float)img[i] / 255.0f;
    siam_error err = {0};
    CHECK(siam_model_embed(m, x, 1, out, &err) == SIAM_OK, "%s", err.msg);
}

/* The current view holds exactly the store's first n items embedded with m's parameters. */
static void check_view(siam_gallery *g, siam_model *m, size_t n, uint64_t round, const char *what) {
    siam_gallery_view *v = siam_gallery_acquire(g);
    CHECK(v != NULL, "%s: no view", what);
    if (!v)
        return;
    CHECK(siam_gallery_view_size(v) == n, "%s: view of %zu items, expected %zu", what,
          siam_gallery_view_size(v), n);
    CHECK(siam_weights_round(siam_gallery_view_weights(v)) == round,
          "%s: round %llu, expected %llu", what,
          (unsigned long long)siam_weights_round(siam_gallery_view_weights(v)),
          (unsigned long long)round);
    size_t bad = 0, bad_norm = 0;
    for (size_t i = 0; i < siam_gallery_view_size(v) && i < n; i++) {
        float want[DIM];
        ref_embed(m, siam_gallery_item_image(g, i), want);
        const float *got = siam_gallery_view_embeddings(v) + i * DIM;
        bad += memcmp(got, want, sizeof want) != 0;
        double s = 0;
        for (int k = 0; k < DIM; k++)
            s += (double)want[k] * want[k];
        bad_norm += siam_gallery_view_norms(v)[i] != (float)s;
    }
    CHECK(bad == 0 && bad_norm == 0, "%s: %zu embeddings and %zu norms differ from siam_model's",
          what, bad, bad_norm);
    siam_gallery_view_release(v);
}

static void test_labels(void) {
    char why[128];
    static const struct {
        const char *s;
        size_t len;
        const char *want; /* NULL: accepted */
    } cases[] = {
        {"7", 1, NULL},
        {"sneaker", 7, NULL},
        {"Sch\xc3\xbch", 6, NULL},                 /* ü */
        {"\xe2\x80\x93\xf0\x9f\x91\x9f", 7, NULL}, /* en dash, a 4-byte emoji */
        {"", 0, "has 0 bytes, expected 1..64"},
        {"a\x01", 2, "control character (0x01) at byte 1"},
        {"del\x7f", 4, "control character (0x7f) at byte 3"},
        {"c1\xc2\x85", 4, "control character (U+0085) at byte 2"},
        {"bad\xff", 4, "not valid UTF-8 at byte 3"},
        {"\xc0\x80", 2, "not valid UTF-8 at byte 0"},         /* overlong NUL */
        {"\xed\xa0\x80", 3, "not valid UTF-8 at byte 0"},     /* a surrogate */
        {"\xf4\x90\x80\x80", 4, "not valid UTF-8 at byte 0"}, /* above U+10FFFF */
        {"cut\xe2\x80", 5, "not valid UTF-8 at byte 3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = siam_gallery_check_label(cases[i].s, cases[i].len, why, sizeof why);
        if (!cases[i].want)
            CHECK(rc == 0, "label %zu refused: %s", i, why);
        else
            CHECK(rc != 0 && strstr(why, cases[i].want), "label %zu: '%s', expected '%s'", i,
                  rc ? why : "(accepted)", cases[i].want);
    }
    char l64[65], l65[66];
    memset(l64, 'x', 64), l64[64] = 0;
    memset(l65, 'x', 65), l65[65] = 0;
    CHECK(siam_gallery_check_label(l64, 64, why, sizeof why) == 0, "64 bytes refused");
    CHECK(siam_gallery_check_label(l65, 65, why, sizeof why) != 0 &&
              strstr(why, "65 bytes, expected 1..64"),
          "65 bytes: %s", why);
}

/* Adds before any model, the first weights, adds with a model, new weights, the limit. */
static void test_store_and_versions(void) {
    siam_gallery *g = NULL;
    siam_error err = {0};
    CHECK(siam_gallery_create(&g, 40, &err) == SIAM_OK, "%s", err.msg);
    uint8_t img[40 * IMG];
    random_images(img, 40);
    const char *labels[40];
    static const char *names[] = {"shirt", "bag", "7", "Sch\xc3\xbch"};
    for (int i = 0; i < 40; i++)
        labels[i] = names[i % 4];
    uint64_t ids[40];
    siam_gallery_info info;
    CHECK(siam_gallery_add(g, img, 2, labels, ids, &info, &err) == SIAM_ERR_ARG &&
              strstr(err.msg, "no image shape"),
          "an add before any shape: %s", err.msg);
    CHECK(siam_gallery_set_shape(g, H, W, C, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_gallery_set_shape(g, W, H, C, &err) == SIAM_ERR_MISMATCH &&
              strstr(err.msg, "6x5x2") && strstr(err.msg, "5x6x2"),
          "another shape: %s", err.msg);
    /* no model yet: stored, not searchable */
    CHECK(siam_gallery_add(g, img, 5, labels, ids, &info, &err) == SIAM_OK, "%s", err.msg);
    CHECK(info.items == 5 && info.embedded == 0 && !info.has_view, "items %zu embedded %zu",
          info.items, info.embedded);
    CHECK(ids[0] == 0 && ids[4] == 4, "ids %llu..%llu", (unsigned long long)ids[0],
          (unsigned long long)ids[4]);
    CHECK(siam_gallery_acquire(g) == NULL, "a view without weights");
    /* the first weights: everything embedded */
    siam_model *m1 = NULL, *m2 = NULL;
    siam_weights *w1 = make_weights(1, 3, &m1), *w2 = make_weights(2, 4, &m2);
    siam_gallery_set_weights(g, w1);
    CHECK(siam_gallery_wait_embedded(g, 10), "not embedded in 10 s");
    check_view(g, m1, 5, 3, "first weights");
    /* adds with a model: embedded before the add returns */
    CHECK(siam_gallery_add(g, img + 5 * IMG, 30, labels + 5, ids, &info, &err) == SIAM_OK, "%s",
          err.msg);
    CHECK(info.items == 35 && info.embedded == 35 && info.round == 3, "after the add: %zu %zu %llu",
          info.items, info.embedded, (unsigned long long)info.round);
    CHECK(ids[0] == 5 && ids[29] == 34, "ids continue: %llu", (unsigned long long)ids[0]);
    check_view(g, m1, 35, 3, "after an add");
    /* a view held across changes keeps showing what it showed */
    siam_gallery_view *held = siam_gallery_acquire(g);
    float first[DIM];
    memcpy(first, siam_gallery_view_embeddings(held), sizeof first);
    siam_gallery_set_weights(g, w2);
    CHECK(siam_gallery_wait_embedded(g, 10), "not re-embedded in 10 s");
    check_view(g, m2, 35, 4, "second weights");
    CHECK(siam_gallery_view_size(held) == 35 &&
              memcmp(first, siam_gallery_view_embeddings(held), sizeof first) == 0 &&
              siam_weights_round(siam_gallery_view_weights(held)) == 3,
          "a held view changed");
    siam_gallery_view_release(held);
    /* labels and ids as stored; equal labels share a label id */
    size_t wrong = 0;
    for (size_t i = 0; i < 35; i++) {
        wrong += strcmp(siam_gallery_item_label(g, i), labels[i]) != 0;
        wrong += siam_gallery_item_id(g, i) != i;
        wrong += memcmp(siam_gallery_item_image(g, i), img + i * IMG, IMG) != 0;
        wrong += (siam_gallery_item_label_id(g, i) == siam_gallery_item_label_id(g, i % 4)) != 1;
    }
    CHECK(wrong == 0, "%zu items differ from what was added", wrong);
    CHECK(siam_gallery_item_label_id(g, 0) != siam_gallery_item_label_id(g, 1), "label ids");
    /* the limit (40): 5 more fit, 6 do not, and a refused add changes nothing */
    const char *bad[2] = {"ok", "tab\tlabel"};
    CHECK(siam_gallery_add(g, img, 2, bad, ids, &info, &err) == SIAM_ERR_ARG &&
              strstr(err.msg, "labels[1] has a control character"),
          "a bad label: %s", err.msg);
    CHECK(siam_gallery_add(g, img, 6, labels, ids, &info, &err) == SIAM_ERR_LIMIT &&
              strstr(err.msg, "35 of at most 40") && strstr(err.msg, "--gallery-max"),
          "beyond the limit: %s", err.msg);
    CHECK(siam_gallery_add(g, img, SIAM_GALLERY_MAX_ADD + 1, labels, ids, &info, &err) ==
              SIAM_ERR_ARG,
          "more than %d per add", SIAM_GALLERY_MAX_ADD);
    siam_gallery_get_info(g, &info);
    CHECK(info.items == 35 && info.embedded == 35, "refused adds changed the gallery: %zu",
          info.items);
    CHECK(siam_gallery_add(g, img + 35 * IMG, 5, labels, ids, &info, &err) == SIAM_OK, "%s",
          err.msg);
    CHECK(info.items == 40 && ids[4] == 39, "full: %zu", info.items);
    check_view(g, m2, 40, 4, "full");
    /* weights of another input shape are not used: the view stays */
    siam_weights *other = NULL;
    siam_model *mo = NULL;
    CHECK(siam_model_create(&mo, "in=5x6x2 dense4", 1, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_weights_create(&other, "in=5x6x2 dense4", siam_model_params(mo),
                              siam_model_num_params(mo), 9, &err) == SIAM_OK,
          "%s", err.msg);
    siam_gallery_set_weights(g, other);
    CHECK(siam_gallery_wait_embedded(g, 10), "the refused weights left work pending");
    check_view(g, m2, 40, 4, "after weights of another shape");
    siam_weights_release(other);
    siam_model_free(mo);
    siam_weights_release(w1);
    siam_weights_release(w2);
    siam_model_free(m1);
    siam_model_free(m2);
    siam_gallery_free(g);
}

/* ---- files ---- */

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n ? *n : 1);
    if (fread(b, 1, *n, f) != *n)
        *n = 0;
    fclose(f);
    return b;
}

static void write_all(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(b, 1, n, f) == n, "writing %s", path);
    if (f)
        fclose(f);
}

/* The last 4 bytes made the CRC32 of the rest again (a crafted file that only the checks of
 * the content can refuse). */
static void fix_crc(uint8_t *b, size_t n) {
    uLong crc = crc32(0L, b, (uInt)(n - 4));
    for (int i = 0; i < 4; i++)
        b[n - 4 + i] = (uint8_t)(crc >> (8 * i));
}

/* Loading bytes b (n) into a fresh gallery: the error code, the message in why. */
static int load_bytes(const uint8_t *b, size_t n, char *why, size_t max_items) {
    char path[256];
    path_in_tmp(path, sizeof path, "damaged.gallery");
    write_all(path, b, n);
    siam_gallery *g = NULL;
    siam_error err = {0};
    siam_gallery_create(&g, max_items, &err);
    int rc = siam_gallery_load_file(g, path, &err);
    snprintf(why, SIAM_ERROR_MSG_MAX, "%s", err.msg);
    siam_gallery_info info;
    siam_gallery_get_info(g, &info);
    CHECK(rc == SIAM_OK || info.items == 0, "a refused file left %zu items", info.items);
    siam_gallery_free(g);
    return rc;
}

static void test_file(void) {
    siam_gallery *g = NULL;
    siam_error err = {0};
    CHECK(siam_gallery_create(&g, 100, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_gallery_set_shape(g, H, W, C, &err) == SIAM_OK, "%s", err.msg);
    uint8_t img[9 * IMG];
    random_images(img, 9);
    const char *labels[9] = {"a", "b", "a", "\xf0\x9f\x91\x9f", "c", "a", "b", "x", "y"};
    uint64_t ids[9];
    CHECK(siam_gallery_add(g, img, 9, labels, ids, NULL, &err) == SIAM_OK, "%s", err.msg);
    char path[256];
    path_in_tmp(path, sizeof path, "g.gallery");
    CHECK(siam_gallery_save_file(g, path, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_gallery_is_file(path), "the magic is not recognised");
    /* read back: the same items */
    siam_gallery *r = NULL;
    siam_gallery_create(&r, 100, &err);
    CHECK(siam_gallery_load_file(r, path, &err) == SIAM_OK, "%s", err.msg);
    siam_gallery_info info;
    siam_gallery_get_info(r, &info);
    int h, w, c;
    CHECK(info.items == 9 && siam_gallery_shape(r, &h, &w, &c) && h == H && w == W && c == C,
          "read back %zu items of %dx%dx%d", info.items, h, w, c);
    size_t wrong = 0;
    for (size_t i = 0; i < 9 && i < info.items; i++)
        wrong += strcmp(siam_gallery_item_label(r, i), labels[i]) != 0 ||
                 siam_gallery_item_id(r, i) != i ||
                 memcmp(siam_gallery_item_image(r, i), img + i * IMG, IMG) != 0;
    CHECK(wrong == 0, "%zu items differ after the round trip", wrong);
    /* ids go on from the saved next id */
    CHECK(siam_gallery_add(r, img, 1, labels, ids, NULL, &err) == SIAM_OK && ids[0] == 9,
          "next id %llu", (unsigned long long)ids[0]);
    CHECK(siam_gallery_load_file(r, path, &err) == SIAM_ERR_ARG && strstr(err.msg, "already"),
          "a load into a gallery with items: %s", err.msg);
    siam_gallery_free(r);
    /* into a gallery of another shape */
    siam_gallery_create(&r, 100, &err);
    siam_gallery_set_shape(r, 28, 28, 1, &err);
    CHECK(siam_gallery_load_file(r, path, &err) == SIAM_ERR_MISMATCH && strstr(err.msg, path) &&
              strstr(err.msg, "28x28x1"),
          "another shape: %s", err.msg);
    siam_gallery_free(r);

    size_t n = 0;
    uint8_t *b = read_all(path, &n);
    uint8_t *d = malloc(n + 8);
    char why[SIAM_ERROR_MSG_MAX];
    /* truncated at every part: the header, the labels, the items, the images, the CRC */
    size_t cuts[] = {0, 5, 20, 44, 50, n - 9 * IMG - 30, n - 100, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        int rc = load_bytes(b, cuts[i], why, 100);
        CHECK(rc == SIAM_ERR_FORMAT && strstr(why, "damaged.gallery") &&
                  (strstr(why, "truncated") || (cuts[i] < 8 && strstr(why, "bad magic"))),
              "cut at %zu of %zu: %d %s", cuts[i], n, rc, why);
    }
    /* a flipped bit anywhere in the content: the CRC */
    size_t flips[] = {n - 5, n - 50, 60};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        memcpy(d, b, n);
        d[flips[i]] ^= 0x10;
        CHECK(load_bytes(d, n, why, 100) == SIAM_ERR_FORMAT && strstr(why, "damaged.gallery"),
              "byte %zu flipped: %s", flips[i], why);
    }
    memcpy(d, b, n);
    d[8] = 2; /* version 2 */
    CHECK(load_bytes(d, n, why, 100) == SIAM_ERR_FORMAT &&
              strstr(why, "version 2, this build reads version 1"),
          "another version: %s", why);
    memcpy(d, b, n);
    d[0] = 'X';
    CHECK(load_bytes(d, n, why, 100) == SIAM_ERR_FORMAT && strstr(why, "not a siam gallery"),
          "bad magic: %s", why);
    memcpy(d, b, n);
    memset(d + n, 0, 8);
    CHECK(load_bytes(d, n + 8, why, 100) == SIAM_ERR_FORMAT && strstr(why, "trailing data"),
          "trailing bytes: %s", why);
    CHECK(load_bytes(b, n, why, 8) == SIAM_ERR_LIMIT && strstr(why, "--gallery-max"),
          "more items than the limit: %s", why);
    /* crafted with a valid CRC: a label index beyond the labels, ids that do not increase. The
     * items start after 44 header bytes and the labels (1 + length each; their count at 40). */
    size_t items = 44;
    for (int i = 0; i < b[40]; i++)
        items += 1 + b[items];
    CHECK(b[40] == 6, "%d distinct labels saved, expected 6", b[40]);
    memcpy(d, b, n);
    d[items + 8] = 200; /* item 0's label index */
    fix_crc(d, n);
    CHECK(load_bytes(d, n, why, 100) == SIAM_ERR_FORMAT && strstr(why, "label index 200"),
          "a label index out of range: %s", why);
    memcpy(d, b, n);
    d[items + 12] = 0; /* item 1's id becomes 0, like item 0's */
    fix_crc(d, n);
    CHECK(load_bytes(d, n, why, 100) == SIAM_ERR_FORMAT && strstr(why, "ids must increase"),
          "repeated ids: %s", why);
    memcpy(d, b, n);
    d[45] = 0x01; /* the first label's byte a control character */
    fix_crc(d, n);
    CHECK(load_bytes(d, n, why, 100) == SIAM_ERR_FORMAT && strstr(why, "label 0 has a control"),
          "a bad label: %s", why);
    free(b);
    free(d);
    siam_gallery_free(g);
}

/* The saving thread: one write soon after changes, a flush writes what is left. */
static void test_persist(void) {
    siam_gallery *g = NULL;
    siam_error err = {0};
    siam_gallery_create(&g, 100, &err);
    siam_gallery_set_shape(g, H, W, C, &err);
    char path[256];
    path_in_tmp(path, sizeof path, "saved.gallery");
    CHECK(siam_gallery_flush(g, &err) == SIAM_OK, "a flush without persist: %s", err.msg);
    CHECK(siam_gallery_persist(g, path, 0, &err) == SIAM_OK, "%s", err.msg);
    uint8_t img[3 * IMG];
    random_images(img, 3);
    const char *labels[3] = {"p", "q", "r"};
    uint64_t ids[3];
    CHECK(siam_gallery_add(g, img, 2, labels, ids, NULL, &err) == SIAM_OK, "%s", err.msg);
    struct stat st;
    int seen = 0;
    for (int i = 0; i < 60 && !seen; i++) {
        usleep(50000);
        seen = stat(path, &st) == 0;
    }
    CHECK(seen, "the gallery was not saved within 3 s of an add");
    CHECK(siam_gallery_add(g, img + 2 * IMG, 1, labels + 2, ids, NULL, &err) == SIAM_OK, "%s",
          err.msg);
    CHECK(siam_gallery_flush(g, &err) == SIAM_OK, "%s", err.msg); /* at once, not a second later */
    siam_gallery *r = NULL;
    siam_gallery_create(&r, 100, &err);
    CHECK(siam_gallery_load_file(r, path, &err) == SIAM_OK, "%s", err.msg);
    siam_gallery_info info;
    siam_gallery_get_info(r, &info);
    CHECK(info.items == 3 && strcmp(siam_gallery_item_label(r, 2), "r") == 0,
          "the flushed file holds %zu items", info.items);
    siam_gallery_free(r);
    siam_gallery_free(g);
    /* a path that cannot be written: the flush says so, naming it */
    siam_gallery_create(&g, 100, &err);
    siam_gallery_set_shape(g, H, W, C, &err);
    path_in_tmp(path, sizeof path, "no/such/dir/x.gallery");
    CHECK(siam_gallery_persist(g, path, 1, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_gallery_add(g, img, 1, labels, ids, NULL, &err) == SIAM_OK, "%s", err.msg);
    CHECK(siam_gallery_flush(g, &err) != SIAM_OK && strstr(err.msg, "no/such/dir"),
          "an unwritable path: %s", err.msg);
    siam_gallery_free(g);
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* IDX files written here: 5 images 3x4 with labels 0, 9, 3, 9, 200. */
static void test_idx(void) {
    uint8_t im[16 + 5 * 12], lb[8 + 5] = {0, 0, 8, 1};
    im[0] = im[1] = 0, im[2] = 8, im[3] = 3;
    put_be32(im + 4, 5), put_be32(im + 8, 3), put_be32(im + 12, 4);
    for (int i = 0; i < 60; i++)
        im[16 + i] = (uint8_t)(i * 7);
    put_be32(lb + 4, 5);
    const uint8_t labs[5] = {0, 9, 3, 9, 200};
    memcpy(lb + 8, labs, 5);
    char ip[256], lp[256];
    path_in_tmp(ip, sizeof ip, "img.idx");
    path_in_tmp(lp, sizeof lp, "lab.idx");
    write_all(ip, im, sizeof im);
    write_all(lp, lb, sizeof lb);
    siam_gallery *g = NULL;
    siam_error err = {0};
    siam_gallery_create(&g, 100, &err);
    CHECK(!siam_gallery_is_file(ip), "an IDX file taken for a gallery file");
    CHECK(siam_gallery_load_idx(g, ip, lp, &err) == SIAM_OK, "%s", err.msg);
    siam_gallery_info info;
    siam_gallery_get_info(g, &info);
    int h, w, c;
    CHECK(info.items == 5 && siam_gallery_shape(g, &h, &w, &c) && h == 3 && w == 4 && c == 1,
          "%zu items of %dx%dx%d", info.items, h, w, c);
    const char *want[5] = {"0", "9", "3", "9", "200"};
    for (size_t i = 0; i < 5 && i < info.items; i++)
        CHECK(strcmp(siam_gallery_item_label(g, i), want[i]) == 0 &&
                  siam_gallery_item_id(g, i) == i &&
                  memcmp(siam_gallery_item_image(g, i), im + 16 + 12 * i, 12) == 0,
              "item %zu: label %s", i, siam_gallery_item_label(g, i));
    CHECK(siam_gallery_item_label_id(g, 1) == siam_gallery_item_label_id(g, 3), "equal labels");
    siam_gallery_free(g);
    siam_gallery_create(&g, 4, &err);
    CHECK(siam_gallery_load_idx(g, ip, lp, &err) == SIAM_ERR_LIMIT &&
              strstr(err.msg, "--gallery-max"),
          "5 images into a gallery of 4: %s", err.msg);
    siam_gallery_free(g);
    put_be32(lb + 4, 4); /* 4 labels (and one byte too many: refused as well) */
    write_all(lp, lb, sizeof lb - 1);
    siam_gallery_create(&g, 100, &err);
    CHECK(siam_gallery_load_idx(g, ip, lp, &err) == SIAM_ERR_MISMATCH &&
              strstr(err.msg, "5 images") && strstr(err.msg, "4 labels"),
          "counts that differ: %s", err.msg);
    siam_gallery_get_info(g, &info);
    CHECK(info.items == 0, "a refused load left %zu items", info.items);
    siam_gallery_free(g);
}

/* The pool: as many replicas lent as it has, never one twice; each embeds like siam_model with
 * the weights it is handed, switching between versions. */
#define POOL_THREADS 4
typedef struct {
    siam_inference *pool;
    siam_weights *w[2];
    const float *want[2]; /* (8, DIM) */
    const uint8_t *img;   /* (8, IMG) */
    int bad;
} pool_job;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t pool_start;
static int lent, most_lent;

static void *pool_main(void *arg) {
    pool_job *j = arg;
    pthread_barrier_wait(&pool_start);
    for (int it = 0; it < 200; it++) {
        int v = it % 2;
        siam_replica *r = siam_inference_acquire(j->pool, j->w[v]);
        pthread_mutex_lock(&pool_lock);
        most_lent = ++lent > most_lent ? lent : most_lent;
        pthread_mutex_unlock(&pool_lock);
        float out[8 * DIM];
        siam_error err = {0};
        if (siam_replica_embed(r, j->w[v], j->img, 8, out, &err) ||
            memcmp(out, j->want[v], sizeof out) != 0)
            j->bad++;
        usleep(100); /* held a while, as a request's embedding is: the others overlap */
        pthread_mutex_lock(&pool_lock);
        lent--;
        pthread_mutex_unlock(&pool_lock);
        siam_inference_release(j->pool, r);
    }
    return NULL;
}

static void test_pool(void) {
    siam_inference *pool = NULL;
    siam_error err = {0};
    CHECK(siam_inference_create(&pool, 0, &err) == SIAM_ERR_ARG, "0 replicas accepted");
    CHECK(siam_inference_create(&pool, 2, &err) == SIAM_OK, "%s", err.msg);
    siam_model *m[2];
    pool_job j = {.pool = pool};
    uint8_t img[8 * IMG];
    random_images(img, 8);
    float want[2][8 * DIM];
    for (int v = 0; v < 2; v++) {
        j.w[v] = make_weights(10 + (uint64_t)v, (uint64_t)v, &m[v]);
        for (int i = 0; i < 8; i++)
            ref_embed(m[v], img + i * IMG, want[v] + i * DIM);
        j.want[v] = want[v];
    }
    j.img = img;
    char shape[32];
    siam_weights_shape_text(j.w[0], shape, sizeof shape);
    CHECK(strcmp(shape, "6x5x2") == 0 && siam_weights_image_bytes(j.w[0]) == IMG &&
              siam_weights_dim(j.w[0]) == DIM && siam_weights_version(j.w[1]) > 0 &&
              siam_weights_version(j.w[0]) != siam_weights_version(j.w[1]),
          "weights' shape %s", shape);
    pthread_t t[POOL_THREADS];
    pool_job jobs[POOL_THREADS];
    pthread_barrier_init(&pool_start, NULL, POOL_THREADS);
    for (int i = 0; i < POOL_THREADS; i++) {
        jobs[i] = j;
        pthread_create(&t[i], NULL, pool_main, &jobs[i]);
    }
    int bad = 0;
    for (int i = 0; i < POOL_THREADS; i++) {
        pthread_join(t[i], NULL);
        bad += jobs[i].bad;
    }
    pthread_barrier_destroy(&pool_start);
    CHECK(bad == 0, "%d embeddings differ from siam_model's", bad);
    /* 4 threads, 2 replicas: both in use at once, never a third */
    CHECK(most_lent == 2, "%d replicas lent at once from a pool of 2", most_lent);
    siam_weights *none = NULL;
    CHECK(siam_weights_create(&none, SPEC, want[0], 3, 0, &err) == SIAM_ERR_ARG &&
              strstr(err.msg, "3 parameters"),
          "a wrong count: %s", err.msg);
    for (int v = 0; v < 2; v++) {
        siam_weights_release(j.w[v]);
        siam_model_free(m[v]);
    }
    siam_inference_free(pool);
}

int main(void) {
    tu_trap_fp();
    siam_rng_seed(&rng, 20261204);
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_labels();
    test_store_and_versions();
    test_file();
    test_persist();
    test_idx();
    test_pool();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_dir);
    return tu_finish();
}
