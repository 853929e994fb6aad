/* siam_gallery: create/free, the append-only store, adds and the embedded versions (views). */
#include "siam_gallery_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "siam_knn.h"
#include "siam_log.h"

#define COMPONENT "gallery"
/* seconds an add waits for the first embedding of the gallery (then it is stored unembedded) */
#define FIRST_VIEW_WAIT 60
/* images per chunk of the store: about this many bytes, 16..4096 items */
#define CHUNK_BYTES (8u << 20)

/* ---- create, free ---- */

int siam_gallery_create(siam_gallery **out, size_t max_items, siam_error *err) {
    *out = NULL;
    if (max_items < 1 || max_items > SIAM_GALLERY_MAX_ITEMS_LIMIT)
        return siam_error_set(err, SIAM_ERR_ARG, "gallery: max items is %zu, expected 1..%d",
                              max_items, SIAM_GALLERY_MAX_ITEMS_LIMIT);
    siam_gallery *g = calloc(1, sizeof *g);
    if (!g)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for the gallery");
    g->max_items = max_items;
    g->n_name_slots = max_items / NAME_CHUNK + 1;
    g->names = calloc(g->n_name_slots, sizeof *g->names);
    if (!g->names || siam_replica_create(&g->add_replica, err) ||
        siam_replica_create(&g->embed_replica, err)) {
        siam_replica_free(g->add_replica);
        free(g->names);
        free(g);
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for the gallery");
    }
    pthread_mutex_init(&g->lock, NULL);
    pthread_mutex_init(&g->add_lock, NULL);
    pthread_mutex_init(&g->save_lock, NULL);
    pthread_cond_init(&g->wake, NULL);
    pthread_cond_init(&g->done, NULL);
    pthread_cond_init(&g->dirty_cond, NULL);
    *out = g;
    return SIAM_OK;
}

void gal_store_reset(siam_gallery *g) {
    for (size_t i = 0; g->chunks && i < g->n_chunk_slots; i++)
        if (g->chunks[i]) {
            free(g->chunks[i]->images);
            free(g->chunks[i]->ids);
            free(g->chunks[i]->labels);
            free(g->chunks[i]);
            g->chunks[i] = NULL;
        }
    for (size_t i = 0; i < g->n_name_slots; i++)
        if (g->names[i]) {
            for (size_t j = 0; j < NAME_CHUNK; j++)
                free(g->names[i][j]);
            free(g->names[i]);
            g->names[i] = NULL;
        }
    free(g->hash);
    g->hash = NULL;
    g->hash_cap = 0;
    pthread_mutex_lock(&g->lock);
    g->n_items = 0;
    g->n_labels = g->n_labels_all = 0;
    pthread_mutex_unlock(&g->lock);
}

void siam_gallery_free(siam_gallery *g) {
    if (!g)
        return;
    gal_save_stop(g);
    gal_embed_stop(g);
    gal_store_reset(g);
    free(g->chunks);
    free(g->names);
    siam_gallery_view_release(g->view);
    siam_weights_release(g->wanted);
    siam_replica_free(g->add_replica);
    siam_replica_free(g->embed_replica);
    free(g->save_path);
    pthread_cond_destroy(&g->wake);
    pthread_cond_destroy(&g->done);
    pthread_cond_destroy(&g->dirty_cond);
    pthread_mutex_destroy(&g->save_lock);
    pthread_mutex_destroy(&g->add_lock);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

size_t siam_gallery_max_items(const siam_gallery *g) {
    return g->max_items;
}

/* ---- shape ---- */

int gal_set_shape_locked(siam_gallery *g, int h, int w, int c, siam_error *err) {
    if (g->h) {
        if (g->h == h && g->w == w && g->c == c)
            return SIAM_OK;
        if (g->shape_from_model)
            return siam_error_set(err, SIAM_ERR_MISMATCH,
                                  "the images are %dx%dx%d, the model takes %dx%dx%d: give a "
                                  "gallery of the model's input shape",
                                  h, w, c, g->h, g->w, g->c);
        return siam_error_set(err, SIAM_ERR_MISMATCH,
                              "the images are %dx%dx%d, the gallery's are %dx%dx%d", h, w, c, g->h,
                              g->w, g->c);
    }
    if (h < 1 || w < 1 || c < 1 || (uint64_t)h * (uint64_t)w * (uint64_t)c > (1u << 26))
        return siam_error_set(err, SIAM_ERR_ARG,
                              "gallery: image shape %dx%dx%d, expected 1..2^26 bytes", h, w, c);
    size_t bytes = (size_t)h * (size_t)w * (size_t)c, items = 4096;
    while (items > 16 && items * bytes > CHUNK_BYTES)
        items /= 2;
    size_t slots = g->max_items / items + 1;
    item_chunk **chunks = calloc(slots, sizeof *chunks);
    if (!chunks)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for the gallery's chunk table");
    g->h = h, g->w = w, g->c = c;
    g->image_bytes = bytes;
    g->chunk_items = items;
    g->n_chunk_slots = slots;
    g->chunks = chunks;
    return SIAM_OK;
}

int siam_gallery_set_shape(siam_gallery *g, int h, int w, int c, siam_error *err) {
    pthread_mutex_lock(&g->lock);
    int rc = gal_set_shape_locked(g, h, w, c, err);
    pthread_mutex_unlock(&g->lock);
    return rc;
}

int siam_gallery_shape(siam_gallery *g, int *h, int *w, int *c) {
    pthread_mutex_lock(&g->lock);
    *h = g->h, *w = g->w, *c = g->c;
    pthread_mutex_unlock(&g->lock);
    return *h != 0;
}

/* ---- labels ---- */

int siam_gallery_check_label(const char *label, size_t len, char *why, size_t n) {
    if (len < 1 || len > SIAM_GALLERY_LABEL_MAX) {
        snprintf(why, n, "has %zu bytes, expected 1..%d", len, SIAM_GALLERY_LABEL_MAX);
        return -1;
    }
    const unsigned char *s = (const unsigned char *)label;
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        size_t k = c < 0x80                 ? 1
                   : c >= 0xc2 && c <= 0xdf ? 2
                   : c >= 0xe0 && c <= 0xef ? 3
                   : c >= 0xf0 && c <= 0xf4 ? 4
                                            : 0;
        if (k == 1 && (c < 0x20 || c == 0x7f)) {
            snprintf(why, n, "has a control character (0x%02x) at byte %zu", c, i);
            return -1;
        }
        int ok = k > 0 && i + k <= len;
        for (size_t j = 1; ok && j < k; j++)
            ok = (s[i + j] & 0xc0) == 0x80;
        if (ok && k == 3 && ((c == 0xe0 && s[i + 1] < 0xa0) || (c == 0xed && s[i + 1] >= 0xa0)))
            ok = 0; /* overlong or a surrogate */
        if (ok && k == 4 && ((c == 0xf0 && s[i + 1] < 0x90) || (c == 0xf4 && s[i + 1] >= 0x90)))
            ok = 0; /* overlong or above U+10FFFF */
        if (ok && k == 2 && c == 0xc2 && s[i + 1] < 0xa0) {
            snprintf(why, n, "has a control character (U+%04X) at byte %zu", s[i + 1], i);
            return -1; /* C1 controls U+0080..U+009F */
        }
        if (!ok) {
            snprintf(why, n, "is not valid UTF-8 at byte %zu", i);
            return -1;
        }
        i += k;
    }
    return 0;
}

static uint64_t label_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static const char *name_of(const siam_gallery *g, uint32_t id) {
    return g->names[id / NAME_CHUNK][id % NAME_CHUNK];
}

/* The label id of s, interned when new (add_lock held). UINT32_MAX when out of memory. */
static uint32_t intern(siam_gallery *g, const char *s) {
    if ((size_t)g->n_labels_all * 2 + 2 > g->hash_cap) {
        size_t cap = g->hash_cap ? g->hash_cap * 2 : 64;
        uint32_t *t = calloc(cap, sizeof *t);
        if (!t)
            return UINT32_MAX;
        for (uint32_t id = 0; id < g->n_labels_all; id++) {
            size_t p = (size_t)label_hash(name_of(g, id)) & (cap - 1);
            while (t[p])
                p = (p + 1) & (cap - 1);
            t[p] = id + 1;
        }
        free(g->hash);
        g->hash = t;
        g->hash_cap = cap;
    }
    size_t p = (size_t)label_hash(s) & (g->hash_cap - 1);
    while (g->hash[p]) {
        if (strcmp(name_of(g, g->hash[p] - 1), s) == 0)
            return g->hash[p] - 1;
        p = (p + 1) & (g->hash_cap - 1);
    }
    uint32_t id = g->n_labels_all;
    if (id / NAME_CHUNK >= g->n_name_slots)
        return UINT32_MAX; /* more labels than items: not reached */
    char ***slot = &g->names[id / NAME_CHUNK];
    if (!*slot && !(*slot = calloc(NAME_CHUNK, sizeof **slot)))
        return UINT32_MAX;
    char *copy = strdup(s);
    if (!copy)
        return UINT32_MAX;
    (*slot)[id % NAME_CHUNK] = copy;
    g->hash[p] = id + 1;
    g->n_labels_all++;
    return id;
}

/* ---- the store ---- */

item_chunk *gal_chunk(const siam_gallery *g, size_t i, size_t *off) {
    *off = i % g->chunk_items;
    return g->chunks[i / g->chunk_items];
}

uint64_t siam_gallery_item_id(const siam_gallery *g, size_t i) {
    size_t o;
    return gal_chunk(g, i, &o)->ids[o];
}

uint32_t siam_gallery_item_label_id(const siam_gallery *g, size_t i) {
    size_t o;
    return gal_chunk(g, i, &o)->labels[o];
}

const char *siam_gallery_item_label(const siam_gallery *g, size_t i) {
    return name_of(g, siam_gallery_item_label_id(g, i));
}

const uint8_t *siam_gallery_item_image(const siam_gallery *g, size_t i) {
    size_t o;
    return gal_chunk(g, i, &o)->images + o * g->image_bytes;
}

int gal_store_write(siam_gallery *g, size_t at, const uint8_t *images, size_t n,
                    const char *const *labels, const uint64_t *ids, uint64_t *ids_out,
                    siam_error *err) {
    for (size_t k = 0; k < n; k++) {
        size_t i = at + k, o;
        item_chunk **slot = &g->chunks[i / g->chunk_items];
        if (!*slot) {
            item_chunk *c = calloc(1, sizeof *c);
            if (c) {
                c->images = malloc(g->chunk_items * g->image_bytes);
                c->ids = malloc(g->chunk_items * sizeof *c->ids);
                c->labels = malloc(g->chunk_items * sizeof *c->labels);
            }
            if (!c || !c->images || !c->ids || !c->labels) {
                if (c) {
                    free(c->images);
                    free(c->ids);
                    free(c->labels);
                }
                free(c);
                return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for gallery item %zu", i);
            }
            *slot = c;
        }
        item_chunk *c = gal_chunk(g, i, &o);
        uint32_t lid = intern(g, labels[k]);
        if (lid == UINT32_MAX)
            return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for gallery label %zu", i);
        memcpy(c->images + o * g->image_bytes, images + k * g->image_bytes, g->image_bytes);
        c->ids[o] = ids ? ids[k] : g->next_id + k;
        c->labels[o] = lid;
        if (ids_out)
            ids_out[k] = c->ids[o];
    }
    return SIAM_OK;
}

/* ---- embeddings and views ---- */

emb_block *gal_block_new(siam_weights *w, size_t cap) {
    if (cap < 64)
        cap = 64;
    emb_block *b = calloc(1, sizeof *b);
    int dim = siam_weights_dim(w);
    if (!b)
        return NULL;
    b->emb = malloc(cap * (size_t)dim * sizeof *b->emb);
    b->norms = malloc(cap * sizeof *b->norms);
    if (!b->emb || !b->norms) {
        free(b->emb);
        free(b->norms);
        free(b);
        return NULL;
    }
    atomic_init(&b->refs, 1u);
    b->w = siam_weights_retain(w);
    b->dim = dim;
    b->cap = cap;
    return b;
}

void gal_block_release(emb_block *b) {
    if (b && atomic_fetch_sub(&b->refs, 1u) == 1u) {
        siam_weights_release(b->w);
        free(b->emb);
        free(b->norms);
        free(b);
    }
}

emb_block *gal_block_grow(emb_block *b, size_t keep, size_t rows) {
    if (rows <= b->cap)
        return b;
    size_t cap = b->cap * 2 > rows ? b->cap * 2 : rows;
    emb_block *nb = gal_block_new(b->w, cap);
    if (!nb)
        return NULL;
    memcpy(nb->emb, b->emb, keep * (size_t)b->dim * sizeof *b->emb);
    memcpy(nb->norms, b->norms, keep * sizeof *b->norms);
    gal_block_release(b);
    return nb;
}

int gal_embed_items(siam_gallery *g, siam_replica *r, emb_block *b, size_t from, size_t to,
                    siam_error *err) {
    /* a chunk's images are contiguous: one embed call per piece of a chunk */
    while (from < to) {
        size_t o;
        item_chunk *c = gal_chunk(g, from, &o);
        size_t n = g->chunk_items - o < to - from ? g->chunk_items - o : to - from;
        if (n > 256)
            n = 256; /* stop can be seen between pieces */
        float *out = b->emb + from * (size_t)b->dim;
        int rc = siam_replica_embed(r, b->w, c->images + o * g->image_bytes, n, out, err);
        if (rc)
            return rc;
        siam_knn_row_norms(out, n, b->dim, b->norms + from);
        from += n;
    }
    return SIAM_OK;
}

int gal_publish_locked(siam_gallery *g, emb_block *b, size_t n, siam_gallery_view **old) {
    siam_gallery_view *v = malloc(sizeof *v);
    if (!v)
        return -1;
    atomic_init(&v->refs, 1u);
    v->b = b;
    atomic_fetch_add(&b->refs, 1u);
    v->n = n;
    *old = g->view;
    g->view = v;
    pthread_cond_broadcast(&g->done);
    return 0;
}

siam_gallery_view *siam_gallery_acquire(siam_gallery *g) {
    pthread_mutex_lock(&g->lock);
    siam_gallery_view *v = g->view;
    if (v)
        atomic_fetch_add(&v->refs, 1u);
    pthread_mutex_unlock(&g->lock);
    return v;
}

void siam_gallery_view_release(siam_gallery_view *v) {
    if (v && atomic_fetch_sub(&v->refs, 1u) == 1u) {
        gal_block_release(v->b);
        free(v);
    }
}

size_t siam_gallery_view_size(const siam_gallery_view *v) {
    return v->n;
}

int siam_gallery_view_dim(const siam_gallery_view *v) {
    return v->b->dim;
}

const float *siam_gallery_view_embeddings(const siam_gallery_view *v) {
    return v->b->emb;
}

const float *siam_gallery_view_norms(const siam_gallery_view *v) {
    return v->b->norms;
}

siam_weights *siam_gallery_view_weights(const siam_gallery_view *v) {
    return v->b->w;
}

void siam_gallery_get_info(siam_gallery *g, siam_gallery_info *out) {
    pthread_mutex_lock(&g->lock);
    out->items = g->n_items;
    out->has_view = g->view != NULL;
    out->embedded = g->view ? g->view->n : 0;
    out->round = g->view ? siam_weights_round(g->view->b->w) : 0;
    out->embedding = g->reembedding;
    pthread_mutex_unlock(&g->lock);
}

/* ---- adds ---- */

int siam_gallery_add(siam_gallery *g, const uint8_t *images, size_t n, const char *const *labels,
                     uint64_t *ids, siam_gallery_info *info, siam_error *err) {
    if (n == 0 || n > SIAM_GALLERY_MAX_ADD)
        return siam_error_set(err, SIAM_ERR_ARG, "%zu images, expected 1..%d per request", n,
                              SIAM_GALLERY_MAX_ADD);
    for (size_t i = 0; i < n; i++) {
        char why[128];
        if (siam_gallery_check_label(labels[i], strlen(labels[i]), why, sizeof why))
            return siam_error_set(err, SIAM_ERR_ARG, "labels[%zu] %s", i, why);
    }
    /* with weights but no view yet (the first embedding runs), wait for it: then these items are
     * embedded with it too and searchable when this returns */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += FIRST_VIEW_WAIT;
    pthread_mutex_lock(&g->lock);
    while (g->wanted && siam_weights_version(g->wanted) != g->failed_version && !g->view &&
           !g->stop && g->embed_started)
        if (pthread_cond_timedwait(&g->done, &g->lock, &until) != 0)
            break;
    pthread_mutex_unlock(&g->lock);
    pthread_mutex_lock(&g->add_lock);
    pthread_mutex_lock(&g->lock);
    size_t at = g->n_items;
    int has_shape = g->h != 0;
    siam_gallery_view *v = g->view;
    if (v)
        atomic_fetch_add(&v->refs, 1u);
    pthread_mutex_unlock(&g->lock);
    int rc = SIAM_OK;
    emb_block *b = NULL;
    if (!has_shape)
        rc = siam_error_set(err, SIAM_ERR_ARG,
                            "the gallery has no image shape yet (no model and no gallery loaded)");
    else if (at + n > g->max_items)
        rc = siam_error_set(err, SIAM_ERR_LIMIT,
                            "the gallery holds %zu of at most %zu items: %zu more do not fit "
                            "(siam-server --gallery-max N raises the limit, up to %d)",
                            at, g->max_items, n, SIAM_GALLERY_MAX_ITEMS_LIMIT);
    if (!rc)
        rc = gal_store_write(g, at, images, n, labels, NULL, ids, err);
    /* embedded at once with the version being served, when it holds every earlier item */
    int incremental = !rc && v && v->n == at;
    if (incremental) {
        b = v->b;
        atomic_fetch_add(&b->refs, 1u);
        emb_block *nb = gal_block_grow(b, at, at + n);
        if (!nb) {
            gal_block_release(b);
            b = NULL;
            rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for %zu embeddings", at + n);
        } else {
            b = nb;
            rc = gal_embed_items(g, g->add_replica, b, at, at + n, err);
        }
    }
    siam_gallery_view *old = NULL;
    if (!rc) {
        pthread_mutex_lock(&g->lock);
        if (incremental && gal_publish_locked(g, b, at + n, &old))
            rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for a gallery view");
        if (!rc) {
            g->n_items = at + n;
            g->n_labels = g->n_labels_all;
            g->next_id += n;
            gal_mark_dirty_locked(g);
            if (!incremental)
                pthread_cond_broadcast(&g->wake); /* the re-embedder has items to embed */
        }
        pthread_mutex_unlock(&g->lock);
    }
    siam_gallery_view_release(old);
    gal_block_release(b);
    siam_gallery_view_release(v);
    pthread_mutex_unlock(&g->add_lock);
    if (info)
        siam_gallery_get_info(g, info);
    return rc;
}
