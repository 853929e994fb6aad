/* test_service_search: Search, AddToGallery and Status's gallery fields through server/
 * siam_service with encoded protobuf requests. Answers equal an independent brute force (every
 * item and query embedded here with a plain siam_model, distances in double, a full sort, the
 * weighted vote summed here); every bad request named in siam_service.h gets its status; before a
 * model, before the first embedding and with an empty gallery the caller is told what to do; and
 * under load (searchers, a trainer closing averaging rounds, an adder) every answer matches the
 * brute force at the model round it names, and every add is searchable when it returns. */
#include "test_util.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "siam_knn.h"
#include "siam_log.h"
#include "siam_loss.h"
#include "siam_model.h"
#include "siam_rng.h"
#include "siam_service.h"

#include "siam/v1/siam.pb-c.h"

#define SPEC "in=6x5x2 dense8 relu dense4"
enum { IMG = 60, DIM = 4 };
static siam_rng rng;

static void random_images(uint8_t *x, size_t n) {
    for (size_t i = 0; i < n * IMG; i++)
        x[i] = (uint8_t)siam_rng_below(&rng, 256);
}

/* ---- calls ---- */

static int search(siam_service *svc, const uint8_t *img, size_t nbytes, uint32_t dim,
                  const float *emb, size_t nemb, uint32_t k, Siam__V1__SearchResponse **out,
                  siam_rpc_status *st) {
    Siam__V1__SearchRequest q = SIAM__V1__SEARCH_REQUEST__INIT;
    q.images.data = (uint8_t *)img, q.images.len = nbytes;
    q.dim = dim, q.embeddings = (float *)emb, q.n_embeddings = nemb;
    q.k = k;
    size_t len = siam__v1__search_request__get_packed_size(&q);
    uint8_t *buf = malloc(len ? len : 1);
    siam__v1__search_request__pack(&q, buf);
    siam_rpc_buf resp = {NULL, 0};
    memset(st, 0, sizeof *st);
    int rc = siam_service_search(svc, buf, len, &resp, st);
    free(buf);
    *out = NULL;
    if (rc == SIAM_RPC_OK)
        *out = siam__v1__search_response__unpack(NULL, resp.len, resp.data);
    if (resp.data)
        siam_rpc_buf_free(&resp);
    return rc == st->code && (rc != SIAM_RPC_OK || *out) && (rc == SIAM_RPC_OK || st->msg[0])
               ? rc
               : -1; /* an answer that contradicts its code */
}

static int add(siam_service *svc, const uint8_t *img, size_t nbytes, const char *const *labels,
               size_t nl, Siam__V1__GalleryAddResponse **out, siam_rpc_status *st) {
    Siam__V1__GalleryAddRequest q = SIAM__V1__GALLERY_ADD_REQUEST__INIT;
    q.images.data = (uint8_t *)img, q.images.len = nbytes;
    q.labels = (char **)labels, q.n_labels = nl;
    size_t len = siam__v1__gallery_add_request__get_packed_size(&q);
    uint8_t *buf = malloc(len ? len : 1);
    siam__v1__gallery_add_request__pack(&q, buf);
    siam_rpc_buf resp = {NULL, 0};
    memset(st, 0, sizeof *st);
    int rc = siam_service_add_to_gallery(svc, buf, len, &resp, st);
    free(buf);
    Siam__V1__GalleryAddResponse *r = NULL;
    if (rc == SIAM_RPC_OK)
        r = siam__v1__gallery_add_response__unpack(NULL, resp.len, resp.data);
    if (resp.data)
        siam_rpc_buf_free(&resp);
    if (out)
        *out = r;
    else
        siam__v1__gallery_add_response__free_unpacked(r, NULL);
    return rc == st->code && (rc != SIAM_RPC_OK || r) ? rc : -1;
}

static Siam__V1__StatusResponse *status(siam_service *svc) {
    uint8_t buf[4] = {0};
    siam_rpc_buf resp = {NULL, 0};
    siam_rpc_status st;
    if (siam_service_status(svc, buf, 0, &resp, &st) != SIAM_RPC_OK)
        return NULL;
    Siam__V1__StatusResponse *r = siam__v1__status_response__unpack(NULL, resp.len, resp.data);
    siam_rpc_buf_free(&resp);
    return r;
}

/* ---- SyncWeights answers: the parameters of every round, by round number ---- */

#define MAX_ROUNDS 64
static pthread_mutex_t sync_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sync_cond = PTHREAD_COND_INITIALIZER;
static float *round_params[MAX_ROUNDS];
static int sync_answers, sync_failures;
static uint64_t last_round;

static void sync_reply(void *waiter, siam_rpc_buf *resp, const siam_rpc_status *st) {
    (void)waiter;
    Siam__V1__GlobalWeights *g = NULL;
    if (st->code == SIAM_RPC_OK && resp)
        g = siam__v1__global_weights__unpack(NULL, resp->len, resp->data);
    pthread_mutex_lock(&sync_lock);
    if (g && g->round < MAX_ROUNDS && !round_params[g->round]) {
        round_params[g->round] = malloc(g->n_params * sizeof(float));
        memcpy(round_params[g->round], g->params, g->n_params * sizeof(float));
    }
    sync_failures += !g || g->late;
    last_round = g ? g->round : last_round;
    sync_answers++;
    pthread_cond_broadcast(&sync_cond);
    pthread_mutex_unlock(&sync_lock);
    if (g)
        siam__v1__global_weights__free_unpacked(g, NULL);
    if (resp)
        siam_rpc_buf_free(resp);
}

/* A report of params by worker "w" on base round `base`; waits for its answer. */
static void report(siam_service *svc, const float *p, size_t n, uint64_t samples, uint64_t base) {
    Siam__V1__WeightsUpdate u = SIAM__V1__WEIGHTS_UPDATE__INIT;
    u.worker_id = "w", u.model_spec = SPEC;
    u.params = (float *)p, u.n_params = n;
    u.samples = samples, u.round = base;
    size_t len = siam__v1__weights_update__get_packed_size(&u);
    uint8_t *buf = malloc(len);
    siam__v1__weights_update__pack(&u, buf);
    pthread_mutex_lock(&sync_lock);
    int before = sync_answers;
    pthread_mutex_unlock(&sync_lock);
    siam_service_sync(svc, buf, len, NULL);
    free(buf);
    pthread_mutex_lock(&sync_lock);
    while (sync_answers == before)
        pthread_cond_wait(&sync_cond, &sync_lock);
    pthread_mutex_unlock(&sync_lock);
}

/* A service with averaging and SPEC's parameters from seed as the global model (round 0),
 * recorded as round_params[0]; *n gets the parameter count. */
static siam_service *make_service(int with_model, size_t *n) {
    siam_service *svc = NULL;
    siam_error err = {0};
    CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0.0f, "test", &err) == SIAM_OK, "%s",
          err.msg);
    CHECK(siam_service_start_averaging(svc, 1, 0.05, NULL, NULL, sync_reply, &err) == SIAM_OK, "%s",
          err.msg);
    siam_model *m = NULL;
    siam_model_create(&m, SPEC, 7, &err);
    *n = siam_model_num_params(m);
    if (with_model) {
        CHECK(siam_service_set_model(svc, SPEC, siam_model_params(m), *n, 0, 0, &err) == SIAM_OK,
              "%s", err.msg);
        pthread_mutex_lock(&sync_lock);
        free(round_params[0]);
        round_params[0] = malloc(*n * sizeof(float));
        memcpy(round_params[0], siam_model_params(m), *n * sizeof(float));
        pthread_mutex_unlock(&sync_lock);
    }
    siam_model_free(m);
    return svc;
}

/* ---- the brute force ---- */

/* Embeddings of n images with the parameters of `round`, by a plain siam_model. */
static void ref_embed(uint64_t round, const uint8_t *img, size_t n, float *out) {
    siam_model *m = NULL;
    siam_error err = {0};
    siam_model_create(&m, SPEC, 1, &err);
    memcpy(siam_model_params(m), round_params[round], siam_model_num_params(m) * sizeof(float));
    float *x = malloc(n * IMG * sizeof *x);
    for (size_t i = 0; i < n * IMG; i++)
        x[i] = (float)img[i] / 255.0f;
    CHECK(siam_model_embed(m, x, n, out, &err) == SIAM_OK, "%s", err.msg);
    free(x);
    siam_model_free(m);
}

typedef struct {
    double d;
    uint32_t i;
} cand;

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->d != y->d)
        return x->d < y->d ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Checks one result against the k nearest of ref (n items; labels lab) to query q. */
static int check_result(const Siam__V1__SearchResult *r, const float *q, const float *ref, size_t n,
                        const char *const *lab, int k, float thr, const char *what) {
    cand *c = malloc(n * sizeof *c);
    for (size_t j = 0; j < n; j++) {
        double s = 0;
        for (int t = 0; t < DIM; t++) {
            double e = (double)q[t] - ref[j * DIM + t];
            s += e * e;
        }
        c[j].d = s, c[j].i = (uint32_t)j;
    }
    qsort(c, n, sizeof *c, cand_cmp);
    int kk = (size_t)k < n ? k : (int)n, bad = r->n_matches != (size_t)kk;
    double wsum[64] = {0}, total = 0;
    int owner[64];
    for (int j = 0; !bad && j < kk; j++) {
        const Siam__V1__SearchMatch *m = r->matches[j];
        float d = sqrtf((float)c[j].d);
        bad |= m->id != c[j].i || m->distance != d || strcmp(m->label, lab[c[j].i]) != 0 ||
               m->score != siam_score(d, thr);
        int o = 0; /* the first neighbour of this label */
        while (strcmp(lab[c[o].i], lab[c[j].i]) != 0)
            o++;
        owner[j] = o;
        wsum[o] += 1.0 / ((double)d + 1e-6);
        total += 1.0 / ((double)d + 1e-6);
    }
    int win = 0;
    for (int j = 1; !bad && j < kk; j++)
        if (owner[j] == j && wsum[j] > wsum[win])
            win = j;
    if (!bad)
        bad |= strcmp(r->predicted_label, lab[c[win].i]) != 0 ||
               fabs(r->confidence - wsum[win] / total) > 1e-6;
    if (bad)
        fprintf(stderr, "%s: %zu matches, first id %llu at %g; brute force: id %u at %g\n", what,
                r->n_matches, r->n_matches ? (unsigned long long)r->matches[0]->id : 0ULL,
                r->n_matches ? (double)r->matches[0]->distance : -1.0, c[0].i, sqrt(c[0].d));
    free(c);
    return bad;
}

/* ---- tests ---- */

static const char *const NAMES[] = {"shirt", "bag", "7", "Sch\xc3\xbch", "sneaker"};

static void test_before_and_empty(void) {
    size_t n;
    siam_service *svc = make_service(0, &n);
    Siam__V1__SearchResponse *r;
    siam_rpc_status st;
    uint8_t img[3 * IMG];
    random_images(img, 3);
    float e[DIM] = {0};
    CHECK(search(svc, img, IMG, 0, NULL, 0, 0, &r, &st) == SIAM_RPC_FAILED_PRECONDITION &&
              strstr(st.msg, "no model") && strstr(st.msg, "--model"),
          "images before a model: %s", st.msg);
    CHECK(search(svc, NULL, 0, DIM, e, DIM, 0, &r, &st) == SIAM_RPC_FAILED_PRECONDITION &&
              strstr(st.msg, "empty") && strstr(st.msg, "AddToGallery") &&
              strstr(st.msg, "--gallery"),
          "an empty gallery: %s", st.msg);
    const char *l3[3] = {"a", "b", "c"};
    CHECK(add(svc, img, 3 * IMG, l3, 3, NULL, &st) == SIAM_RPC_FAILED_PRECONDITION &&
              strstr(st.msg, "shape"),
          "an add before any shape: %s", st.msg);
    Siam__V1__StatusResponse *s = status(svc);
    CHECK(s && s->gallery_size == 0 && s->input_shape[0] == 0, "status before a model");
    siam__v1__status_response__free_unpacked(s, NULL);
    /* a gallery's shape but no model: stored, not searchable (UNAVAILABLE: it will be) */
    siam_error err = {0};
    CHECK(siam_gallery_set_shape(siam_service_gallery(svc), 6, 5, 2, &err) == SIAM_OK, "%s",
          err.msg);
    Siam__V1__GalleryAddResponse *a = NULL;
    CHECK(add(svc, img, 3 * IMG, l3, 3, &a, &st) == SIAM_RPC_OK, "%s", st.msg);
    CHECK(a && a->n_ids == 3 && a->ids[2] == 2 && a->gallery_size == 3 && a->model_round == 0,
          "the add's answer");
    siam__v1__gallery_add_response__free_unpacked(a, NULL);
    CHECK(search(svc, NULL, 0, DIM, e, DIM, 0, &r, &st) == SIAM_RPC_UNAVAILABLE &&
              strstr(st.msg, "being embedded"),
          "not embedded yet: %s", st.msg);
    /* the model comes: searchable */
    siam_model *m = NULL;
    siam_model_create(&m, SPEC, 7, &err);
    CHECK(siam_service_set_model(svc, SPEC, siam_model_params(m), n, 0, 0, &err) == SIAM_OK, "%s",
          err.msg);
    siam_model_free(m);
    CHECK(siam_gallery_wait_embedded(siam_service_gallery(svc), 10), "not embedded");
    CHECK(search(svc, img, IMG, 0, NULL, 0, 10, &r, &st) == SIAM_RPC_OK, "%s", st.msg);
    CHECK(r && r->n_results == 1 && r->results[0]->n_matches == 3 &&
              r->results[0]->matches[0]->id == 0 && r->results[0]->matches[0]->distance == 0.0f &&
              r->gallery_size == 3,
          "k 10 of a gallery of 3: %zu matches", r ? r->results[0]->n_matches : 0);
    siam__v1__search_response__free_unpacked(r, NULL);
    s = status(svc);
    CHECK(s && s->gallery_size == 3 && s->gallery_embedded == 3 && s->gallery_round == 0 &&
              strcmp(s->input_shape, "6x5x2") == 0,
          "status: %llu %llu %s", s ? (unsigned long long)s->gallery_size : 0ULL,
          s ? (unsigned long long)s->gallery_embedded : 0ULL, s ? s->input_shape : "");
    siam__v1__status_response__free_unpacked(s, NULL);
    siam_service_free(svc);
}

enum { NG = 300, NQ = 24 };

static void test_search_brute(void) {
    size_t n;
    siam_service *svc = make_service(1, &n);
    uint8_t *gal = malloc(NG * IMG), q[NQ * IMG];
    random_images(gal, NG);
    /* near-duplicates: some gallery images differ by one grey level */
    for (int i = 1; i < 40; i += 2) {
        memcpy(gal + i * IMG, gal + (i - 1) * IMG, IMG);
        gal[i * IMG + i % IMG] ^= 1;
    }
    const char *lab[NG];
    for (int i = 0; i < NG; i++)
        lab[i] = NAMES[siam_rng_below(&rng, 5)];
    siam_rpc_status st;
    CHECK(add(svc, gal, 200 * IMG, lab, 200, NULL, &st) == SIAM_RPC_OK, "%s", st.msg);
    CHECK(add(svc, gal + 200 * IMG, 100 * IMG, lab + 200, 100, NULL, &st) == SIAM_RPC_OK, "%s",
          st.msg);
    random_images(q, NQ);
    memcpy(q, gal + 17 * IMG, IMG); /* queries on gallery items */
    memcpy(q + IMG, gal + 250 * IMG, IMG);
    float *ref = malloc(NG * DIM * sizeof *ref), qe[NQ * DIM];
    ref_embed(0, gal, NG, ref);
    ref_embed(0, q, NQ, qe);
    float thr = siam_service_threshold(svc);
    static const uint32_t ks[] = {0, 1, 7, 64};
    for (size_t t = 0; t < 4; t++) {
        int k = ks[t] ? (int)ks[t] : SIAM_SERVICE_SEARCH_K_DEFAULT;
        Siam__V1__SearchResponse *ri, *re;
        CHECK(search(svc, q, sizeof q, 0, NULL, 0, ks[t], &ri, &st) == SIAM_RPC_OK, "%s", st.msg);
        CHECK(search(svc, NULL, 0, DIM, qe, NQ * DIM, ks[t], &re, &st) == SIAM_RPC_OK, "%s",
              st.msg);
        if (!ri || !re)
            continue;
        CHECK(ri->n_results == NQ && re->n_results == NQ && ri->model_round == 0 &&
                  ri->gallery_size == NG,
              "k %d: %zu results", k, ri->n_results);
        int bad = 0;
        for (size_t i = 0; i < NQ && i < ri->n_results && i < re->n_results; i++) {
            bad += check_result(ri->results[i], qe + i * DIM, ref, NG, lab, k, thr, "images");
            bad += check_result(re->results[i], qe + i * DIM, ref, NG, lab, k, thr, "embeddings");
        }
        CHECK(bad == 0, "k %d: %d results differ from the brute force", k, bad);
        CHECK(ri->results[0]->matches[0]->id == 17 && ri->results[0]->matches[0]->distance == 0 &&
                  ri->results[1]->matches[0]->id == 250,
              "a gallery image finds itself first");
        siam__v1__search_response__free_unpacked(ri, NULL);
        siam__v1__search_response__free_unpacked(re, NULL);
    }
    free(gal);
    free(ref);
    siam_service_free(svc);
}

static void test_bad_input(void) {
    size_t n;
    siam_service *svc = make_service(1, &n);
    uint8_t img[8 * IMG];
    random_images(img, 8);
    const char *l8[8] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    siam_rpc_status st;
    CHECK(add(svc, img, 8 * IMG, l8, 8, NULL, &st) == SIAM_RPC_OK, "%s", st.msg);
    Siam__V1__SearchResponse *r;
    float e[2 * DIM] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
    static const struct {
        const char *what, *want;
        size_t img_bytes;
        uint32_t dim, k;
        size_t n_emb;
        int nan_at;
    } cases[] = {
        {"k 65", "k is 65, expected 1..64", IMG, 0, 65, 0, -1},
        {"both", "both images", IMG, DIM, 0, DIM, -1},
        {"neither", "no queries", 0, 0, 3, 0, -1},
        {"61 bytes", "61 bytes, expected a non-zero multiple of 60 bytes = one 6x5x2 image", 61, 0,
         0, 0, -1},
        {"dim 3", "dim is 3, the gallery's embeddings have 4", 0, 3, 0, 6, -1},
        {"dim 0", "dim is 0, expected 1..4096", 0, 0, 0, DIM, -1},
        {"not a multiple", "embeddings has 7 floats, expected a non-zero multiple of dim = 4", 0,
         DIM, 0, 7, -1},
        {"nan", "embeddings[5] is nan (query 1, component 1)", 0, DIM, 0, 2 * DIM, 5},
        {"huge", "overflow float", 0, DIM, 0, DIM, -2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float x[2 * DIM];
        memcpy(x, e, sizeof x);
        if (cases[i].nan_at >= 0)
            x[cases[i].nan_at] = NAN;
        if (cases[i].nan_at == -2)
            x[0] = x[1] = 3e38f; /* finite, but 9e76 apart from the gallery */
        int rc = search(svc, cases[i].img_bytes ? img : NULL, cases[i].img_bytes, cases[i].dim,
                        cases[i].n_emb ? x : NULL, cases[i].n_emb, cases[i].k, &r, &st);
        CHECK(rc == SIAM_RPC_INVALID_ARGUMENT && strstr(st.msg, cases[i].want), "%s: %s '%s'",
              cases[i].what, siam_rpc_code_name(rc), st.msg);
    }
    size_t big = SIAM_SERVICE_MAX_SEARCH_QUERIES + 1;
    uint8_t *many = calloc(big, IMG);
    float *many_e = calloc(big, DIM * sizeof(float));
    CHECK(search(svc, many, big * IMG, 0, NULL, 0, 0, &r, &st) == SIAM_RPC_INVALID_ARGUMENT &&
              strstr(st.msg, "at most 1024"),
          "1025 image queries: %s", st.msg);
    CHECK(search(svc, NULL, 0, DIM, many_e, big * DIM, 0, &r, &st) == SIAM_RPC_INVALID_ARGUMENT &&
              strstr(st.msg, "at most 1024"),
          "1025 embedding queries: %s", st.msg);
    siam_rpc_buf resp = {NULL, 0};
    const uint8_t junk[] = {0x0a, 0xff, 0xff};
    CHECK(siam_service_search(svc, junk, sizeof junk, &resp, &st) == SIAM_RPC_INVALID_ARGUMENT &&
              strstr(st.msg, "malformed SearchRequest"),
          "junk: %s", st.msg);
    /* AddToGallery */
    const char *bad_utf8[2] = {"ok", "bad\xff"};
    const char *long_label[1] = {"0123456789012345678901234567890123456789012345678901234567890123"
                                 "4"};
    const struct {
        const char *what, *want;
        size_t bytes;
        const char *const *labels;
        size_t nl;
        int code;
    } adds[] = {
        {"no images", "images is empty", 0, l8, 0, SIAM_RPC_INVALID_ARGUMENT},
        {"59 bytes", "59 bytes, expected a non-zero multiple of 60 bytes = one 6x5x2 image", 59, l8,
         1, SIAM_RPC_INVALID_ARGUMENT},
        {"3 labels for 2", "labels has 3 labels, expected one per image (2)", 2 * IMG, l8, 3,
         SIAM_RPC_INVALID_ARGUMENT},
        {"bad utf-8", "labels[1] is not valid UTF-8 at byte 3", 2 * IMG, bad_utf8, 2,
         SIAM_RPC_INVALID_ARGUMENT},
        {"65 bytes", "labels[0] has 65 bytes, expected 1..64", IMG, long_label, 1,
         SIAM_RPC_INVALID_ARGUMENT},
    };
    for (size_t i = 0; i < sizeof adds / sizeof adds[0]; i++) {
        int rc = add(svc, img, adds[i].bytes, adds[i].labels, adds[i].nl, NULL, &st);
        CHECK(rc == adds[i].code && strstr(st.msg, adds[i].want), "%s: %s '%s'", adds[i].what,
              siam_rpc_code_name(rc), st.msg);
    }
    const char **many_l = calloc(big, sizeof *many_l);
    for (size_t i = 0; i < big; i++)
        many_l[i] = "x";
    CHECK(add(svc, many, big * IMG, many_l, big, NULL, &st) == SIAM_RPC_INVALID_ARGUMENT &&
              strstr(st.msg, "at most 1024 per request"),
          "1025 images: %s", st.msg);
    /* image Similarity names the shape too */
    Siam__V1__SimilarityRequest sq = SIAM__V1__SIMILARITY_REQUEST__INIT;
    sq.left_images.data = img, sq.left_images.len = 61;
    sq.right_images.data = img, sq.right_images.len = 61;
    uint8_t buf[256];
    size_t len = siam__v1__similarity_request__pack(&sq, buf);
    CHECK(siam_service_similarity(svc, buf, len, &resp, &st) == SIAM_RPC_INVALID_ARGUMENT &&
              strstr(st.msg, "61 bytes, expected a non-zero multiple of 60 bytes = one 6x5x2 "
                             "image per pair"),
          "Similarity with 61-byte images: %s", st.msg);
    siam_service_free(svc);
    /* the limit */
    svc = make_service(1, &n);
    siam_error err = {0};
    CHECK(siam_service_set_gallery_max(svc, 10, &err) == SIAM_OK, "%s", err.msg);
    CHECK(add(svc, img, 8 * IMG, l8, 8, NULL, &st) == SIAM_RPC_OK, "%s", st.msg);
    CHECK(siam_service_set_gallery_max(svc, 20, &err) == SIAM_ERR_ARG, "a new limit with items");
    CHECK(add(svc, img, 3 * IMG, l8, 3, NULL, &st) == SIAM_RPC_RESOURCE_EXHAUSTED &&
              strstr(st.msg, "8 of at most 10") && strstr(st.msg, "--gallery-max"),
          "beyond the limit: %s", st.msg);
    CHECK(add(svc, img, 2 * IMG, l8, 2, NULL, &st) == SIAM_RPC_OK, "up to the limit: %s", st.msg);
    free(many);
    free(many_e);
    free(many_l);
    siam_service_free(svc);
}

/* ---- under load ---- */

#define SEARCHERS 3
#define ROUNDS    10
#define MAX_ANS   4000
#define ADDS      12

typedef struct {
    uint8_t q[IMG];
    float qe[DIM]; /* embedding queries: the query itself */
    int by_images;
    uint64_t round, size;
    uint64_t ids[5];
    float dist[5];
    size_t n;
} answer;

static struct {
    siam_service *svc;
    pthread_mutex_t lock;
    uint8_t images[NG + ADDS * 5][IMG]; /* the gallery by id */
    size_t n_images;
    int done;
    answer *ans[SEARCHERS];
    int n_ans[SEARCHERS];
    int add_missing, call_failures;
} L;

static void failed_call(void) {
    pthread_mutex_lock(&L.lock);
    L.call_failures++;
    pthread_mutex_unlock(&L.lock);
}

static void *searcher(void *arg) {
    int me = (int)(intptr_t)arg;
    siam_rng r;
    siam_rng_seed(&r, 100 + (uint64_t)me);
    for (int it = 0;; it++) {
        pthread_mutex_lock(&L.lock);
        int done = L.done;
        pthread_mutex_unlock(&L.lock);
        if (done || L.n_ans[me] == MAX_ANS)
            break;
        answer *a = &L.ans[me][L.n_ans[me]];
        memset(a, 0, sizeof *a);
        a->by_images = it % 2 == 0;
        for (int i = 0; i < IMG; i++)
            a->q[i] = (uint8_t)siam_rng_below(&r, 256);
        for (int i = 0; i < DIM; i++)
            a->qe[i] = siam_rng_uniform(&r) * 3.0f;
        Siam__V1__SearchResponse *s;
        siam_rpc_status st;
        int rc = a->by_images ? search(L.svc, a->q, IMG, 0, NULL, 0, 5, &s, &st)
                              : search(L.svc, NULL, 0, DIM, a->qe, DIM, 5, &s, &st);
        if (rc != SIAM_RPC_OK || !s || s->n_results != 1) {
            failed_call();
            siam__v1__search_response__free_unpacked(s, NULL);
            continue;
        }
        a->round = s->model_round;
        a->size = s->gallery_size;
        a->n = s->results[0]->n_matches;
        for (size_t j = 0; j < a->n && j < 5; j++) {
            a->ids[j] = s->results[0]->matches[j]->id;
            a->dist[j] = s->results[0]->matches[j]->distance;
        }
        siam__v1__search_response__free_unpacked(s, NULL);
        L.n_ans[me]++;
        struct timespec ts = {0, 200 * 1000L}; /* spread the answers over the rounds */
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void *adder(void *arg) {
    (void)arg;
    siam_rng r;
    siam_rng_seed(&r, 999);
    const char *l5[5] = {"new", "new", "other", "new", "other"};
    for (int a = 0; a < ADDS; a++) {
        uint8_t img[5 * IMG];
        for (int i = 0; i < 5 * IMG; i++)
            img[i] = (uint8_t)siam_rng_below(&r, 256);
        Siam__V1__GalleryAddResponse *ar = NULL;
        siam_rpc_status st;
        if (add(L.svc, img, sizeof img, l5, 5, &ar, &st) != SIAM_RPC_OK || ar->n_ids != 5) {
            failed_call();
            siam__v1__gallery_add_response__free_unpacked(ar, NULL);
            continue;
        }
        pthread_mutex_lock(&L.lock);
        for (int i = 0; i < 5; i++)
            memcpy(L.images[ar->ids[i]], img + i * IMG, IMG);
        pthread_mutex_unlock(&L.lock);
        /* searchable now: each image finds its own id at distance 0 */
        Siam__V1__SearchResponse *s;
        if (search(L.svc, img, sizeof img, 0, NULL, 0, 64, &s, &st) != SIAM_RPC_OK) {
            failed_call();
        } else {
            for (int i = 0; i < 5; i++) {
                int found = 0;
                for (size_t j = 0; j < s->results[i]->n_matches; j++)
                    found |= s->results[i]->matches[j]->id == ar->ids[i] &&
                             s->results[i]->matches[j]->distance == 0.0f;
                L.add_missing += !found;
            }
            siam__v1__search_response__free_unpacked(s, NULL);
        }
        siam__v1__gallery_add_response__free_unpacked(ar, NULL);
        struct timespec ts = {0, 15 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void test_under_load(void) {
    size_t n;
    memset(&L, 0, sizeof L);
    pthread_mutex_init(&L.lock, NULL);
    L.svc = make_service(1, &n);
    random_images(L.images[0], NG);
    const char *lab[NG];
    for (int i = 0; i < NG; i++)
        lab[i] = NAMES[i % 5];
    siam_rpc_status st;
    CHECK(add(L.svc, L.images[0], NG * IMG, lab, NG, NULL, &st) == SIAM_RPC_OK, "%s", st.msg);
    report(L.svc, round_params[0], n, 0, 0); /* the worker joins */
    pthread_t th[SEARCHERS + 1];
    for (int i = 0; i < SEARCHERS; i++) {
        L.ans[i] = calloc(MAX_ANS, sizeof(answer));
        pthread_create(&th[i], NULL, searcher, (void *)(intptr_t)i);
    }
    pthread_create(&th[SEARCHERS], NULL, adder, NULL);
    float *p = malloc(n * sizeof *p);
    memcpy(p, round_params[0], n * sizeof *p);
    for (int r = 0; r < ROUNDS; r++) { /* each report closes a round: a new model */
        for (size_t j = 0; j < n; j++)
            p[j] += 0.05f * (2 * siam_rng_uniform(&rng) - 1);
        pthread_mutex_lock(&sync_lock);
        uint64_t base = last_round;
        pthread_mutex_unlock(&sync_lock);
        report(L.svc, p, n, 10, base);
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    pthread_join(th[SEARCHERS], NULL);
    CHECK(siam_gallery_wait_embedded(siam_service_gallery(L.svc), 20), "not embedded at the end");
    pthread_mutex_lock(&L.lock);
    L.done = 1;
    pthread_mutex_unlock(&L.lock);
    for (int i = 0; i < SEARCHERS; i++)
        pthread_join(th[i], NULL);
    CHECK(sync_failures == 0 && last_round == ROUNDS, "rounds: %d failed, last %llu", sync_failures,
          (unsigned long long)last_round);
    CHECK(L.call_failures == 0 && L.add_missing == 0,
          "%d calls failed, %d added items not found when the add returned", L.call_failures,
          L.add_missing);
    /* every answer against the brute force at the round it names */
    size_t total = NG + ADDS * 5, checked = 0, bad = 0, rounds_seen = 0;
    float *ref = malloc(total * DIM * sizeof *ref);
    const char *labs[NG + ADDS * 5];
    for (size_t i = 0; i < total; i++)
        labs[i] = "x";
    for (uint64_t rd = 0; rd <= ROUNDS; rd++) {
        if (!round_params[rd])
            continue;
        ref_embed(rd, L.images[0], total, ref);
        int seen = 0;
        for (int s = 0; s < SEARCHERS; s++)
            for (int i = 0; i < L.n_ans[s]; i++) {
                answer *a = &L.ans[s][i];
                if (a->round != rd)
                    continue;
                seen = 1;
                float q[DIM];
                if (a->by_images)
                    ref_embed(rd, a->q, 1, q);
                else
                    memcpy(q, a->qe, sizeof q);
                Siam__V1__SearchMatch m[5], *mp[5];
                Siam__V1__SearchResult res = SIAM__V1__SEARCH_RESULT__INIT;
                for (size_t j = 0; j < a->n; j++) {
                    Siam__V1__SearchMatch x = SIAM__V1__SEARCH_MATCH__INIT;
                    x.id = a->ids[j], x.distance = a->dist[j], x.label = "x";
                    x.score = siam_score(a->dist[j], siam_service_threshold(L.svc));
                    m[j] = x, mp[j] = &m[j];
                }
                res.n_matches = a->n, res.matches = mp, res.predicted_label = "x";
                res.confidence = 1.0f;
                bad += check_result(&res, q, ref, (size_t)a->size, labs, 5,
                                    siam_service_threshold(L.svc), "under load");
                checked++;
            }
        rounds_seen += seen;
    }
    CHECK(bad == 0, "%zu of %zu answers differ from the brute force at their round", bad, checked);
    CHECK(checked > 100 && rounds_seen >= 3, "only %zu answers over %zu rounds", checked,
          rounds_seen);
    printf("under load: %zu answers checked over %zu model rounds, %d adds searchable at once\n",
           checked, rounds_seen, ADDS);
    for (int i = 0; i < SEARCHERS; i++)
        free(L.ans[i]);
    free(ref);
    free(p);
    siam_service_free(L.svc);
}

int main(void) {
    siam_rng_seed(&rng, 5150);
    siam_log_set_level(SIAM_LOG_WARN);
    test_before_and_empty();
    test_search_brute();
    test_bad_input();
    test_under_load();
    for (int i = 0; i < MAX_ROUNDS; i++)
        free(round_params[i]);
    return tu_finish();
}
