/* make_corpus: writes the seed corpus of the fuzz targets, a handful of valid and edge-case
 * requests per target, into DIR/<target>/<name> (tests/fuzz/corpus/ is its committed output).
 *   fuzz_make_corpus tests/fuzz/corpus
 * Deterministic: running it again rewrites the same bytes. fuzz_train, fuzz_train_set and
 * fuzz_sync inputs use the record format of fuzz_common.h: a config byte, then
 * [ctrl][u16 LE length][message]. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "grpc/health/v1/health.pb-c.h"
#include "siam/v1/siam.pb-c.h"
#include "siam_encoding.h"
#include "siam_wire.h"

static const char *out_dir;
static int failures;

/* An input being built. */
typedef struct {
    uint8_t *p;
    size_t n, cap;
} blob;

static void put(blob *b, const void *data, size_t n) {
    if (n == 0)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            fprintf(stderr, "make_corpus: out of memory\n");
            exit(1);
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

/* Appends a message packed by protobuf-c, as a record with ctrl when ctrl >= 0. */
static void put_msg(blob *b, int ctrl, const ProtobufCMessage *m) {
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        fprintf(stderr, "make_corpus: out of memory\n");
        exit(1);
    }
    protobuf_c_message_pack(m, buf);
    if (ctrl >= 0) {
        if (len > 0xffff) {
            fprintf(stderr, "make_corpus: a record of %zu bytes does not fit\n", len);
            exit(1);
        }
        uint8_t head[3] = {(uint8_t)ctrl, (uint8_t)(len & 0xff), (uint8_t)(len >> 8)};
        put(b, head, sizeof head);
    }
    put(b, buf, len);
    free(buf);
}

/* A record of raw bytes (malformed messages). */
static void put_raw(blob *b, int ctrl, const void *data, size_t len) {
    if (ctrl >= 0) {
        uint8_t head[3] = {(uint8_t)ctrl, (uint8_t)(len & 0xff), (uint8_t)(len >> 8)};
        put(b, head, sizeof head);
    }
    put(b, data, len);
}

static void save(const char *target, const char *name, blob *b) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", out_dir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "make_corpus: mkdir %s: %s\n", path, strerror(errno));
        failures++;
    }
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
    FILE *f = fopen(path, "wb");
    int ok = f != NULL;
    if (f) {
        ok = b->n == 0 || fwrite(b->p, 1, b->n, f) == b->n;
        ok = fclose(f) == 0 && ok;
    }
    if (!ok) {
        fprintf(stderr, "make_corpus: cannot write %s\n", path);
        failures++;
    }
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- Train ---------------------------------------------------------------------------------- */

/* A batch of B pairs at dim with left[i] = (i+1)/4 + k/8, right = left shifted by shift. */
static void batch(blob *b, int ctrl, uint32_t dim, size_t B, float shift, const char *worker,
                  uint64_t step) {
    float *l = malloc(B * dim * sizeof *l), *r = malloc(B * dim * sizeof *r);
    uint32_t *y = malloc(B * sizeof *y);
    for (size_t i = 0; i < B; i++) {
        y[i] = (uint32_t)(i & 1);
        for (size_t k = 0; k < dim; k++) {
            l[i * dim + k] = (float)(i + 1) / 4 + (float)k / 8;
            r[i * dim + k] = l[i * dim + k] + (i % 3 == 2 ? 0.0f : shift);
        }
    }
    Siam__V1__EmbeddingBatch m = SIAM__V1__EMBEDDING_BATCH__INIT;
    m.dim = dim;
    m.n_left = m.n_right = B * dim;
    m.left = l, m.right = r;
    m.n_labels = B, m.labels = y;
    m.step = step;
    m.worker_id = (char *)worker;
    put_msg(b, ctrl, &m.base);
    free(l), free(r), free(y);
}

/* A batch given field by field (for the invalid ones). */
static void batch_raw(blob *b, int ctrl, uint32_t dim, const float *l, size_t nl, const float *r,
                      size_t nr, const uint32_t *y, size_t ny, const char *worker) {
    Siam__V1__EmbeddingBatch m = SIAM__V1__EMBEDDING_BATCH__INIT;
    m.dim = dim;
    m.n_left = nl, m.left = (float *)l;
    m.n_right = nr, m.right = (float *)r;
    m.n_labels = ny, m.labels = (uint32_t *)y;
    m.worker_id = (char *)worker;
    put_msg(b, ctrl, &m.base);
}

/* A batch of B pairs at dim as batch() makes them, sent in encoding enc (siam_encoding), asking
 * for grad_right to be left out; bad != 0 spoils it: 1 the last byte of right_packed missing,
 * 2 a zero scale, 3 fp32 floats beside the packed bytes. */
static void batch_encoded(blob *b, int ctrl, uint32_t dim, size_t B, int enc, int bad,
                          uint64_t step) {
    size_t n = B * dim, size = siam_encoding_size(enc);
    float *l = malloc(2 * n * sizeof *l), *sc = malloc(2 * B * sizeof *sc);
    uint8_t *p = malloc(2 * n * size);
    uint32_t *y = malloc(B * sizeof *y);
    for (size_t i = 0; i < B; i++) {
        y[i] = (uint32_t)(i & 1);
        for (size_t k = 0; k < dim; k++) {
            l[i * dim + k] = sinf((float)(i * dim + k));
            l[n + i * dim + k] = cosf((float)(i * dim + k)) / 3;
        }
    }
    siam_encode_rows(enc, l, B, (int)dim, p, sc);
    siam_encode_rows(enc, l + n, B, (int)dim, p + n * size, sc + B);
    Siam__V1__EmbeddingBatch m = SIAM__V1__EMBEDDING_BATCH__INIT;
    m.dim = dim;
    m.n_labels = B, m.labels = y;
    m.step = step;
    m.worker_id = "packed";
    m.encoding = (Siam__V1__WireEncoding)enc;
    m.omit_grad_right = 1;
    m.left_packed = (ProtobufCBinaryData){n * size, p};
    m.right_packed = (ProtobufCBinaryData){n * size - (bad == 1), p + n * size};
    if (siam_encoding_scaled(enc)) {
        if (bad == 2)
            sc[B] = 0.0f;
        m.n_left_scales = m.n_right_scales = B;
        m.left_scales = sc, m.right_scales = sc + B;
    }
    if (bad == 3)
        m.n_left = n, m.left = l;
    put_msg(b, ctrl, &m.base);
    free(l), free(sc), free(p), free(y);
}

static void train_corpus(void) {
    const char *T = "fuzz_train";
    blob b = {0};
    uint8_t cfg;

    cfg = 0; /* one good batch */
    put(&b, &cfg, 1);
    batch(&b, 0, 2, 3, 0.5f, "w0", 1);
    save(T, "one_batch", &b);

    cfg = 4; /* averaging on; the dim changes mid-stream (refused), then the stream goes on */
    put(&b, &cfg, 1);
    batch(&b, 0, 2, 2, 0.5f, "w0", 1);
    batch(&b, 0, 3, 2, 0.5f, "w0", 2);
    batch(&b, 0, 2, 4, 1.5f, "w0", 3);
    save(T, "dim_changes", &b);

    cfg = 4; /* a stream whose first batch fails (label 2), then good ones, a NaN, a good one */
    put(&b, &cfg, 1);
    {
        float l[2] = {1, 2}, r[2] = {0, 0}, nan2[2] = {NAN, 1};
        uint32_t y2 = 2, y1 = 1;
        batch_raw(&b, 0, 2, l, 2, r, 2, &y2, 1, "first-fails");
        batch(&b, 0, 2, 2, 0.25f, "first-fails", 1);
        batch_raw(&b, 0, 2, nan2, 2, r, 2, &y1, 1, "first-fails");
        batch(&b, 0, 2, 1, 2.0f, "first-fails", 2);
    }
    save(T, "after_failure", &b);

    cfg = 5; /* dissimilar labels; two streams of two workers, a call without stream state */
    put(&b, &cfg, 1);
    batch(&b, 0, 4, 3, 0.0f, "alpha", 1);
    batch(&b, 1, 5, 2, 0.75f, "beta", 1);
    batch(&b, 2, 7, 1, 3.0f, "", 9);
    batch(&b, 0, 5, 2, 0.1f, "beta", 2);
    save(T, "two_streams", &b);

    cfg = 2; /* margin 2; the largest dim, one pair */
    put(&b, &cfg, 1);
    batch(&b, 0, 4096, 1, 0.001f, "wide", 1);
    save(T, "max_dim", &b);

    cfg = 0; /* limits and counts: dim 0, dim 4097, no labels, left one float short */
    put(&b, &cfg, 1);
    {
        float v[4] = {1, 2, 3, 4};
        uint32_t y[2] = {0, 1};
        batch_raw(&b, 0, 0, v, 2, v, 2, y, 1, "w");
        batch_raw(&b, 0, 4097, v, 4, v, 4, y, 1, "w");
        batch_raw(&b, 0, 2, NULL, 0, NULL, 0, NULL, 0, "w");
        batch_raw(&b, 0, 2, v, 3, v, 4, y, 2, "w");
        batch_raw(&b, 0, 2, v, 4, v, 4, y, 2, "w");
    }
    save(T, "limits", &b);

    cfg = 4; /* each encoding, then spoilt ones: a byte short, a zero scale, floats beside bytes */
    put(&b, &cfg, 1);
    for (int enc = 0; enc < SIAM_ENC_COUNT; enc++)
        batch_encoded(&b, 0, 3, 4, enc, 0, (uint64_t)enc + 1);
    batch_encoded(&b, 0, 3, 4, SIAM_ENC_FP16, 1, 5);
    batch_encoded(&b, 0, 3, 4, SIAM_ENC_INT8, 2, 6);
    batch_encoded(&b, 0, 3, 4, SIAM_ENC_BF16, 3, 7);
    save(T, "encodings", &b);

    cfg = 0; /* finite embeddings whose loss overflows float; then just below; then inf */
    put(&b, &cfg, 1);
    {
        float big[2] = {3e38f, -3e38f}, zero[2] = {0, 0}, edge[2] = {1e19f, 0},
              inf[2] = {INFINITY, 0};
        uint32_t y1 = 1;
        batch_raw(&b, 0, 2, big, 2, zero, 2, &y1, 1, "huge");
        batch_raw(&b, 0, 2, edge, 2, zero, 2, &y1, 1, "huge");
        batch_raw(&b, 0, 2, inf, 2, zero, 2, &y1, 1, "huge");
    }
    save(T, "overflow", &b);

    cfg = 0; /* denormals, -0, identical pairs under both labels */
    put(&b, &cfg, 1);
    {
        float l[4] = {1e-45f, -0.0f, 1e-38f, 0}, r[4] = {0, 0.0f, 1e-38f, 0};
        uint32_t y[2] = {0, 1};
        batch_raw(&b, 0, 2, l, 4, r, 4, y, 2, "tiny");
        batch_raw(&b, 0, 2, r, 4, r, 4, y, 2, "tiny");
    }
    save(T, "tiny", &b);

    cfg = 0; /* a worker name of 200 bytes: invalid UTF-8, control characters, a 4-byte
              * character across the 127-byte cut */
    put(&b, &cfg, 1);
    {
        char name[201];
        for (int i = 0; i < 200; i++)
            name[i] = (char)('a' + i % 26);
        memcpy(name + 10, "\xff\xfe\x01\x1b[31m", 8);
        memcpy(name + 40, "\xc3\xa9\xe2\x82\xac\xed\xa0\x80\xf4\x90\x80\x80", 12);
        memcpy(name + 125, "\xf0\x9f\x98\x80", 4);
        name[200] = '\0';
        batch(&b, 0, 2, 1, 1.0f, name, 1);
        batch(&b, 0, 2, 1, 1.0f, "\xc0\xaf", 2);
    }
    save(T, "worker_names", &b);

    cfg = 0; /* malformed bytes: a truncated varint, a wrong wire type, a length past the end */
    put(&b, &cfg, 1);
    {
        const uint8_t trunc[] = {0x08, 0xff, 0xff}, wire[] = {0x0b}, past[] = {0x12, 0x40, 0x00};
        put_raw(&b, 0, trunc, sizeof trunc);
        put_raw(&b, 0, wire, sizeof wire);
        put_raw(&b, 0, past, sizeof past);
        batch(&b, 0, 1, 1, 1.0f, "after-junk", 1);
    }
    save(T, "malformed", &b);
}

/* ---- Similarity ----------------------------------------------------------------------------- */

static void similarity(const char *name, uint32_t dim, const float *l, size_t nl, const float *r,
                       size_t nr, const uint8_t *li, size_t nli, const uint8_t *ri, size_t nri) {
    Siam__V1__SimilarityRequest q = SIAM__V1__SIMILARITY_REQUEST__INIT;
    q.dim = dim;
    q.n_left = nl, q.left = (float *)l;
    q.n_right = nr, q.right = (float *)r;
    q.left_images.len = nli, q.left_images.data = (uint8_t *)li;
    q.right_images.len = nri, q.right_images.data = (uint8_t *)ri;
    blob b = {0};
    put_msg(&b, -1, &q.base);
    save("fuzz_similarity", name, &b);
}

static void similarity_corpus(void) {
    float l[6] = {0, 0, 0, 1, 2, 3}, r[6] = {0, 0.5f, 0, 1, 2, 3.5f};
    similarity("embeddings", 3, l, 6, r, 6, NULL, 0, NULL, 0);
    similarity("embedding_dim1", 1, l, 6, r, 6, NULL, 0, NULL, 0);
    float big[2] = {3e38f, -3e38f}, nan[2] = {NAN, 0};
    similarity("huge_embeddings", 2, big, 2, l, 2, NULL, 0, NULL, 0);
    similarity("nan_embedding", 2, nan, 2, l, 2, NULL, 0, NULL, 0);
    similarity("not_a_multiple", 4, l, 6, r, 6, NULL, 0, NULL, 0);
    similarity("dim_0", 0, l, 6, r, 6, NULL, 0, NULL, 0);
    similarity("unequal_sides", 3, l, 6, r, 3, NULL, 0, NULL, 0);

    enum { IMG = 784 };
    uint8_t *li = malloc(3 * IMG), *ri = malloc(3 * IMG);
    for (size_t i = 0; i < 3 * IMG; i++) {
        li[i] = (uint8_t)(i * 7 + i / 28);
        ri[i] = (uint8_t)(i < IMG ? li[i] : 255 - li[i]); /* the first pair is identical */
    }
    similarity("images", 0, NULL, 0, NULL, 0, li, 2 * IMG, ri, 2 * IMG);
    similarity("one_image_pair", 0, NULL, 0, NULL, 0, li + IMG, IMG, ri + 2 * IMG, IMG);
    similarity("images_and_embeddings", 3, l, 3, r, 3, li, IMG, ri, IMG);
    similarity("images_unequal", 0, NULL, 0, NULL, 0, li, 2 * IMG, ri, IMG);
    similarity("images_partial", 0, NULL, 0, NULL, 0, li, IMG + 1, ri, IMG + 1);
    similarity("only_left_images", 0, NULL, 0, NULL, 0, li, IMG, NULL, 0);
    free(li), free(ri);
    similarity("empty", 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0);
}

/* ---- Search --------------------------------------------------------------------------------- */

static void search_msg(blob *b, int ctrl, const uint8_t *img, size_t n_img, uint32_t dim,
                       const float *e, size_t ne, uint32_t k) {
    Siam__V1__SearchRequest q = SIAM__V1__SEARCH_REQUEST__INIT;
    q.images.data = (uint8_t *)img, q.images.len = n_img;
    q.dim = dim, q.embeddings = (float *)e, q.n_embeddings = ne;
    q.k = k;
    put_msg(b, ctrl, &q.base);
}

static void search(const char *name, const uint8_t *img, size_t n_img, uint32_t dim, const float *e,
                   size_t ne, uint32_t k) {
    blob b = {0};
    search_msg(&b, -1, img, n_img, dim, e, ne, k);
    save("fuzz_search", name, &b);
}

static void search_corpus(void) {
    enum { IMG = 784 };
    uint8_t *img = malloc(3 * IMG);
    for (size_t i = 0; i < 3 * IMG; i++) /* fuzz_search's gallery images: i * 37 % 251 */
        img[i] = (uint8_t)(i < 2 * IMG ? (i % IMG) * 37 % 251 : i * 7);
    search("image", img, IMG, 0, NULL, 0, 0);
    search("images_k3", img, 3 * IMG, 0, NULL, 0, 3);
    search("images_k64", img + IMG, 2 * IMG, 0, NULL, 0, 64);
    search("image_partial", img, IMG + 5, 0, NULL, 0, 1);
    search("k_65", img, IMG, 0, NULL, 0, 65);
    float e[8] = {0.5f, -1, 0, 2, 0, 0, 0, 0}, nan[4] = {0, NAN, 0, 0};
    search("embeddings", NULL, 0, 4, e, 8, 2);
    search("embedding_k1", NULL, 0, 4, e, 4, 1);
    search("embedding_dim3", NULL, 0, 3, e, 6, 0);
    search("embedding_nan", NULL, 0, 4, nan, 4, 0);
    search("embedding_not_a_multiple", NULL, 0, 4, e, 7, 0);
    search("both", img, IMG, 4, e, 4, 0);
    search("empty", NULL, 0, 0, NULL, 0, 0);
    free(img);
}

/* ---- AddToGallery (records: ctrl 0 = GalleryAddRequest, 1 = SearchRequest) ------------------ */

static void gallery_add_msg(blob *b, const uint8_t *img, size_t n_img, const char *const *labels,
                            size_t nl) {
    Siam__V1__GalleryAddRequest q = SIAM__V1__GALLERY_ADD_REQUEST__INIT;
    q.images.data = (uint8_t *)img, q.images.len = n_img;
    q.labels = (char **)labels, q.n_labels = nl;
    put_msg(b, 0, &q.base);
}

static void add_corpus(void) {
    const char *T = "fuzz_add_to_gallery";
    enum { IMG = 6 }; /* fuzz_add_to_gallery's 3x2x1 model */
    uint8_t img[20 * IMG];
    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (uint8_t)(i * 29 + 3);
    const char *labels[20] = {"7", "bag", "7", "Sch\xc3\xbch",
                              "x", "y",   "z", "a",
                              "b", "c",   "d", "e",
                              "f", "g",   "h", "i",
                              "j", "k",   "l", "m"};
    blob b = {0};
    uint8_t cfg = 1; /* with a model */
    put(&b, &cfg, 1);
    gallery_add_msg(&b, img, 3 * IMG, labels, 3);
    search_msg(&b, 1, img, IMG, 0, NULL, 0, 2);
    save(T, "add_then_search", &b);
    b.n = 0;
    put(&b, &cfg, 1);
    gallery_add_msg(&b, img, 10 * IMG, labels, 10);
    gallery_add_msg(&b, img + 10 * IMG, 10 * IMG, labels + 10, 10); /* 20 > 16: refused */
    gallery_add_msg(&b, img + 10 * IMG, 6 * IMG, labels + 10, 6);   /* up to the limit */
    save(T, "to_the_limit", &b);
    b.n = 0;
    put(&b, &cfg, 1);
    const char *bad[3] = {"ok", "bad\xff", "tab\tlabel"};
    gallery_add_msg(&b, img, 2 * IMG, bad, 2);
    gallery_add_msg(&b, img, 3 * IMG, bad + 1, 2);
    gallery_add_msg(&b, img, 2 * IMG + 1, labels, 2);
    gallery_add_msg(&b, img, 0, labels, 0);
    save(T, "refused", &b);
    b.n = 0;
    cfg = 0; /* no model */
    put(&b, &cfg, 1);
    gallery_add_msg(&b, img, IMG, labels, 1);
    search_msg(&b, 1, img, IMG, 0, NULL, 0, 0);
    float e[3] = {1, 2, 3};
    search_msg(&b, 1, NULL, 0, 3, e, 3, 0);
    save(T, "no_model", &b);
    free(b.p);
}

/* ---- SyncWeights ---------------------------------------------------------------------------- */

#define SYNC_MODEL "in=2x2x1 dense2"

static void update(blob *b, int ctrl, const char *worker, const char *spec, size_t n, float value,
                   uint64_t samples, uint64_t round) {
    float p[16];
    for (size_t i = 0; i < n && i < 16; i++)
        p[i] = value + (float)i / 16;
    Siam__V1__WeightsUpdate u = SIAM__V1__WEIGHTS_UPDATE__INIT;
    u.worker_id = (char *)worker;
    u.model_spec = (char *)spec;
    u.n_params = n < 16 ? n : 16, u.params = p;
    u.samples = samples;
    u.round = round;
    u.step = samples * 3;
    put_msg(b, ctrl, &u.base);
}

/* update() with the parameters packed in enc (blocks of SIAM_ENC_BLOCK, as siam-client sends) */
static void update_enc(blob *b, int ctrl, const char *worker, size_t n, float value,
                       uint64_t samples, uint64_t round, siam_encoding enc) {
    float p[16], scales[1];
    uint8_t packed[64];
    for (size_t i = 0; i < n && i < 16; i++)
        p[i] = value + (float)i / 16;
    n = n < 16 ? n : 16;
    Siam__V1__WeightsUpdate u = SIAM__V1__WEIGHTS_UPDATE__INIT;
    u.worker_id = (char *)worker;
    u.model_spec = (char *)SYNC_MODEL;
    u.encoding = (Siam__V1__WireEncoding)enc;
    siam_encode_blocks(enc, p, n, packed, scales);
    u.params_packed.data = packed, u.params_packed.len = n * siam_encoding_size(enc);
    if (siam_encoding_scaled(enc))
        u.params_scales = scales, u.n_params_scales = siam_encoding_blocks(n);
    u.samples = samples;
    u.round = round;
    u.step = samples * 3;
    put_msg(b, ctrl, &u.base);
}

static void sync_corpus(void) {
    const char *S = "fuzz_sync";
    blob b = {0};
    uint8_t cfg;

    cfg = 0; /* the first join sets the model; one worker's report closes a round at once */
    put(&b, &cfg, 1);
    update(&b, 0, "w1", SYNC_MODEL, 10, 0.5f, 0, 0);
    update(&b, 4, "w1", SYNC_MODEL, 10, 1.5f, 8, 0);
    update(&b, 4, "w1", SYNC_MODEL, 10, 2.5f, 4, 1);
    save(S, "one_worker", &b);

    cfg = 0; /* two workers: a round waits for both; a second report of w1 in the open round is
              * refused; a late report (round 0 after round 1 closed) */
    put(&b, &cfg, 1);
    update(&b, 0, "w1", SYNC_MODEL, 10, 0.5f, 0, 0);
    update(&b, 0, "w2", SYNC_MODEL, 10, 0.5f, 0, 0);
    update(&b, 0, "w1", SYNC_MODEL, 10, 1.0f, 3, 0);
    update(&b, 0, "w1", SYNC_MODEL, 10, 1.0f, 3, 0);
    update(&b, 4, "w2", SYNC_MODEL, 10, 3.0f, 1, 0);
    update(&b, 4, "w1", SYNC_MODEL, 10, 9.0f, 5, 0);
    save(S, "two_workers", &b);

    cfg = 2; /* min_workers 2: the first join waits for the second */
    put(&b, &cfg, 1);
    update(&b, 4, "w1", SYNC_MODEL, 10, 0.5f, 0, 0);
    update(&b, 4, "w2", SYNC_MODEL, 10, 0.5f, 0, 0);
    update(&b, 0, "w3", SYNC_MODEL, 10, 0.5f, 0, 0);
    save(S, "min_workers", &b);

    cfg = 3; /* min_workers 2 with a model set, and a join that never gets its partner */
    put(&b, &cfg, 1);
    update(&b, 0, "lonely", SYNC_MODEL, 10, 0.5f, 0, 3);
    save(S, "waiting_join", &b);

    cfg = 1; /* refused: another spec, a wrong count, no worker id, no spec, NaN, a bad spec */
    put(&b, &cfg, 1);
    update(&b, 0, "w1", "in=2x2x1 dense3", 13, 0.5f, 0, 0);
    update(&b, 0, "w1", SYNC_MODEL, 9, 0.5f, 0, 0);
    update(&b, 0, "", SYNC_MODEL, 10, 0.5f, 0, 0);
    update(&b, 0, "w1", "", 10, 0.5f, 0, 0);
    update(&b, 0, "w1", SYNC_MODEL, 10, NAN, 1, 0);
    update(&b, 0, "w1", "in=2x2 dense2", 10, 0.5f, 0, 0);
    update(&b, 4, "w1", SYNC_MODEL, 0, 0.5f, 0, 0);
    save(S, "refused", &b);

    cfg = 0; /* refused first joins (a wrong count, a spec that does not build) leave no model;
              * a join with a valid spec sets it; one with the other spec is then refused */
    put(&b, &cfg, 1);
    update(&b, 4, "w1", SYNC_MODEL, 11, 0.5f, 0, 0);
    update(&b, 4, "w1", "in=1x1x1 conv1x1x2 elu maxpool2", 4, 0.5f, 0, 0);
    update(&b, 4, "w1", "in=4x4x1 conv3x3x1 maxpool2 batchnorm flatten dropout0.5 dense1 relu", 16,
           0.5f, 0, 0);
    update(&b, 4, "w2", SYNC_MODEL, 10, 0.5f, 0, 0);
    save(S, "first_join_refused", &b);

    cfg = 0; /* regressions (see test_averaging's first join tests): a spec spelled with extra
              * blanks joins; a spec of 785 million parameters or one whose sizes overflow an
              * int is refused without allocating it */
    put(&b, &cfg, 1);
    update(&b, 0, "w0", "in=28x28x1 dense1000000", 10, 0.5f, 0, 0);
    update(&b, 0, "w0", "in=2000x2000x1000 dense2", 10, 0.5f, 0, 0);
    update(&b, 0, "w0", "in=65536x65536x1 relu", 10, 0.5f, 0, 0);
    update(&b, 4, "w1", "in=2x2x1  dense2 ", 10, 0.5f, 0, 0);
    update(&b, 4, "w2", "in=2x2x1\tdense2", 10, 0.5f, 0, 0);
    update(&b, 4, "w1", "in=2x2x1 dense2", 10, 0.5f, 2, 0);
    save(S, "first_join_specs", &b);

    cfg = 0; /* liveness by Train streams: w2 streams, so w1's report waits; w2's stream ends and
              * the round closes without it */
    put(&b, &cfg, 1);
    update(&b, 0, "w1", SYNC_MODEL, 10, 0.5f, 0, 0);
    update(&b, 0, "w2", SYNC_MODEL, 10, 0.5f, 0, 0);
    batch(&b, 0x01 | 0x10, 2, 2, 0.5f, "w2", 1);
    batch(&b, 0x01, 2, 2, 0.5f, "w1", 1);
    update(&b, 4, "w1", SYNC_MODEL, 10, 1.0f, 7, 0);
    batch(&b, 0x01 | 0x02 | 0x10 | 0x04, 2, 1, 0.5f, "w3", 1);
    update(&b, 0x02 | 4, "w1", SYNC_MODEL, 10, 1.0f, 7, 1);
    save(S, "streams", &b);

    cfg = 0; /* --sync-wire: a join in fp16, a round of fp16 and int8 reports (each answered in
              * its own encoding), a bf16 report of a wrong count refused */
    put(&b, &cfg, 1);
    update_enc(&b, 0, "w1", 10, 0.5f, 0, 0, SIAM_ENC_FP16);
    update_enc(&b, 0, "w2", 10, 0.5f, 0, 0, SIAM_ENC_INT8);
    update_enc(&b, 0, "w1", 10, 1.0f, 3, 0, SIAM_ENC_FP16);
    update_enc(&b, 4, "w2", 10, 2.0f, 1, 0, SIAM_ENC_INT8);
    update_enc(&b, 4, "w1", 9, 2.0f, 1, 1, SIAM_ENC_BF16);
    update_enc(&b, 4, "w1", 10, 2.0f, 1, 1, SIAM_ENC_BF16);
    save(S, "encoded", &b);

    cfg = 0; /* malformed WeightsUpdate bytes */
    put(&b, &cfg, 1);
    {
        const uint8_t trunc[] = {0x0a, 0x05, 'w'}, floats[] = {0x1a, 0x03, 0, 0, 0};
        put_raw(&b, 0, trunc, sizeof trunc);
        put_raw(&b, 0, floats, sizeof floats);
    }
    save(S, "malformed", &b);
}

/* ---- Status and Health ---------------------------------------------------------------------- */

static void raw(const char *target, const char *name, const void *data, size_t n) {
    blob b = {0};
    put(&b, data, n);
    save(target, name, &b);
}

static void status_corpus(void) {
    const char *S = "fuzz_status";
    raw(S, "empty", "", 0);
    const uint8_t varint[] = {0x08, 0x96, 0x01}, bytes[] = {0x12, 0x03, 'a', 'b', 'c'},
                  fixed[] = {0x19, 1, 2, 3, 4, 5, 6, 7, 8, 0x25, 1, 2, 3, 4},
                  group[] = {0x0b, 0x10, 0x01, 0x0c}, trunc[] = {0x12, 0x05, 'a'},
                  bad_tag[] = {0x00, 0x01};
    raw(S, "unknown_varint", varint, sizeof varint);
    raw(S, "unknown_bytes", bytes, sizeof bytes);
    raw(S, "unknown_fixed", fixed, sizeof fixed);
    raw(S, "group", group, sizeof group);
    raw(S, "truncated", trunc, sizeof trunc);
    raw(S, "field_zero", bad_tag, sizeof bad_tag);
}

static void health(const char *name, const char *service) {
    Grpc__Health__V1__HealthCheckRequest q = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    q.service = (char *)service;
    blob b = {0};
    put_msg(&b, -1, &q.base);
    save("fuzz_health", name, &b);
}

static void health_corpus(void) {
    health("empty", "");
    health("siam", SIAM_WIRE_SERVICE);
    health("other", "grpc.health.v1.Health");
    health("invalid_utf8", "siam.v1.\xff\xfe\x01Siamese\xe2\x82");
    char name[301];
    memset(name, 'x', 300);
    name[300] = '\0';
    health("long", name);
    const uint8_t trunc[] = {0x0a, 0x10, 's', 'i'};
    raw("fuzz_health", "truncated", trunc, sizeof trunc);
}

/* ---- TrainSet -------------------------------------------------------------------------------- */

/* A set given field by field, with a progress (0: the field is not sent). */
static void set_raw_p(blob *b, int ctrl, uint32_t dim, const float *x, size_t nx, const uint32_t *g,
                      size_t ng, const char *worker, uint64_t step, float progress) {
    Siam__V1__EmbeddingSet m = SIAM__V1__EMBEDDING_SET__INIT;
    m.dim = dim;
    m.n_embeddings = nx, m.embeddings = (float *)x;
    m.n_groups = ng, m.groups = (uint32_t *)g;
    m.worker_id = (char *)worker;
    m.step = step;
    m.progress = progress;
    put_msg(b, ctrl, &m.base);
}

static void set_raw(blob *b, int ctrl, uint32_t dim, const float *x, size_t nx, const uint32_t *g,
                    size_t ng, const char *worker, uint64_t step) {
    set_raw_p(b, ctrl, dim, x, nx, g, ng, worker, step, 0.0f);
}

/* P groups of K embeddings at dim: x[i][k] = sin(i * dim + k), group ids 1000 + 7919 p; the
 * set's progress as given. */
static void set_pk_p(blob *b, int ctrl, uint32_t dim, size_t P, size_t K, const char *worker,
                     uint64_t step, float progress) {
    size_t n = P * K;
    float *x = malloc(n * dim * sizeof *x);
    uint32_t *g = malloc(n * sizeof *g);
    for (size_t i = 0; i < n; i++) {
        g[i] = 1000u + (uint32_t)(i / K) * 7919u;
        for (size_t k = 0; k < dim; k++)
            x[i * dim + k] = sinf((float)(i * dim + k));
    }
    set_raw_p(b, ctrl, dim, x, n * dim, g, n, worker, step, progress);
    free(x), free(g);
}

static void set_pk(blob *b, int ctrl, uint32_t dim, size_t P, size_t K, const char *worker,
                   uint64_t step) {
    set_pk_p(b, ctrl, dim, P, K, worker, step, 0.0f);
}

/* Config byte of fuzz_train_set: bits 0-2 the loss (contrastive, batch-all, batch-hard,
 * semi-hard, batch-hard-soft, facenet), bit 3 squared distance, bit 4 averaging, bits 5-6 the
 * margin. */
static void train_set_corpus(void) {
    const char *T = "fuzz_train_set";
    blob b = {0};
    uint8_t cfg;

    for (uint8_t mode = 0; mode < 5; mode++) { /* one P x K set per loss; squared for odd ones */
        char name[32];
        cfg = (uint8_t)(mode | (mode & 1 ? 8 : 0) | 16);
        put(&b, &cfg, 1);
        set_pk(&b, 0, 3, 3, 2, "w0", 1);
        set_pk(&b, 0, 3, 2, 4, "w0", 2);
        snprintf(name, sizeof name, "pk_mode%u", mode);
        save(T, name, &b);
    }

    cfg = 2; /* degenerate sets: one group, all singletons; then a good one */
    put(&b, &cfg, 1);
    {
        float x[6] = {0.5f, 1, -2, 3, 0.25f, -1};
        uint32_t one[3] = {9, 9, 9}, single[3] = {1, 2, 3}, two[3] = {4, 5, 4};
        set_raw(&b, 0, 2, x, 6, one, 3, "deg", 1);
        set_raw(&b, 0, 2, x, 6, single, 3, "deg", 2);
        set_raw(&b, 0, 2, x, 6, two, 3, "deg", 3);
    }
    save(T, "degenerate", &b);

    cfg = 2 | 32; /* limits: dim 0, n 1, counts that differ, NaN, inf, huge, dim change */
    put(&b, &cfg, 1);
    {
        float x[8] = {0, 1, 2, 3, 4, 5, 6, 7}, nan8[8] = {0, 1, 2, 3, 4, NAN, 6, 7},
              inf8[8] = {0, 1, 2, 3, 4, 5, -INFINITY, 7},
              huge[8] = {3e38f, 0, -3e38f, 0, 3e38f, 1, -3e38f, 1};
        uint32_t g[4] = {1, 1, 2, 2};
        set_raw(&b, 0, 0, x, 8, g, 4, "lim", 1);
        set_raw(&b, 0, 2, x, 2, g, 1, "lim", 1);
        set_raw(&b, 0, 2, x, 7, g, 4, "lim", 1);
        set_raw(&b, 0, 2, nan8, 8, g, 4, "lim", 1);
        set_raw(&b, 0, 2, inf8, 8, g, 4, "lim", 1);
        set_raw(&b, 0, 2, huge, 8, g, 4, "lim", 1);
        set_raw(&b, 0, 2, x, 8, g, 4, "lim", 2);
        set_raw(&b, 0, 4, x, 8, g, 2, "lim", 3);
        set_raw(&b, 1, 4, x, 8, g, 2, "lim2", 4);
        set_raw(&b, 2, 1, x, 8, g, 4, "", 5);
    }
    save(T, "limits", &b);

    cfg = 2; /* beyond SIAM_SET_LOSS_MAX_N (refused), then n = 1024 at dim 1 */
    put(&b, &cfg, 1);
    {
        size_t n = 4097;
        float *x = calloc(n, sizeof *x);
        uint32_t *g = calloc(n, sizeof *g);
        for (size_t i = 0; i < n; i++)
            x[i] = (float)(i % 13) / 4, g[i] = (uint32_t)(i % 5);
        set_raw(&b, 0, 1, x, n, g, n, "big", 1);
        set_raw(&b, 0, 1, x, 1024, g, 1024, "big", 2);
        free(x), free(g);
    }
    save(T, "max_n", &b);

    cfg = 1 | 16; /* batch-all; malformed bytes, then a set */
    put(&b, &cfg, 1);
    {
        static const uint8_t junk[4] = {0x0a, 0xff, 0xff, 0x01};
        put_raw(&b, 0, junk, sizeof junk);
        set_pk(&b, 0, 5, 4, 3, "w1", 1);
    }
    save(T, "malformed", &b);

    cfg = 5 | 16; /* facenet: progress on both sides of 0.4, the ends, then out of range */
    put(&b, &cfg, 1);
    {
        static const float progress[] = {0.0f, 0.1f, 0.39f, 0.4f, 0.9f, 1.0f, 1.5f, NAN, -0.5f};
        for (size_t i = 0; i < sizeof progress / sizeof progress[0]; i++)
            set_pk_p(&b, 0, 4, 3, 3, "fn", i + 1, progress[i]);
    }
    save(T, "facenet", &b);

    cfg = 3 | 16; /* semi-hard in each encoding, then an int8 set with a NaN scale */
    put(&b, &cfg, 1);
    for (int enc = 0; enc <= SIAM_ENC_COUNT; enc++) {
        size_t P = 3, K = 2, dim = 4, n = P * K;
        float x[24], sc[6];
        uint8_t packed[96];
        uint32_t g[6];
        int e = enc < SIAM_ENC_COUNT ? enc : SIAM_ENC_INT8;
        for (size_t i = 0; i < n; i++) {
            g[i] = (uint32_t)(i / K);
            for (size_t k = 0; k < dim; k++)
                x[i * dim + k] = sinf((float)(i * dim + k));
        }
        siam_encode_rows(e, x, n, (int)dim, packed, sc);
        if (enc == SIAM_ENC_COUNT)
            sc[2] = NAN;
        Siam__V1__EmbeddingSet m = SIAM__V1__EMBEDDING_SET__INIT;
        m.dim = (uint32_t)dim;
        m.n_groups = n, m.groups = g;
        m.step = (uint64_t)enc + 1;
        m.worker_id = "packed";
        m.encoding = (Siam__V1__WireEncoding)e;
        if (e == SIAM_ENC_FP32)
            m.n_embeddings = n * dim, m.embeddings = x;
        else
            m.embeddings_packed = (ProtobufCBinaryData){n * dim * siam_encoding_size(e), packed};
        if (siam_encoding_scaled(e))
            m.n_embeddings_scales = n, m.embeddings_scales = sc;
        put_msg(&b, 0, &m.base);
    }
    save(T, "encodings", &b);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR   (writes DIR/fuzz_<target>/<seed>)\n", argv[0]);
        return 2;
    }
    out_dir = argv[1];
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "make_corpus: mkdir %s: %s\n", out_dir, strerror(errno));
        return 1;
    }
    train_corpus();
    train_set_corpus();
    similarity_corpus();
    search_corpus();
    add_corpus();
    sync_corpus();
    status_corpus();
    health_corpus();
    return failures ? 1 : 0;
}
