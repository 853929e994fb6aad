/* siam_gallery_internal: the gallery's struct and what its files share (private to
 * siam_gallery*.c). siam_gallery.c: create/free, the store, adds, views; _embed.c: the
 * re-embedding thread; _file.c: IDX and gallery files, the saving thread. */
#ifndef SIAM_GALLERY_INTERNAL_H
#define SIAM_GALLERY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "siam_gallery.h"

/* Items of the store live in chunks that never move: chunk i holds items
 * [i * chunk_items, (i + 1) * chunk_items). */
typedef struct {
    uint8_t *images;  /* (chunk_items, image_bytes) */
    uint64_t *ids;    /* (chunk_items) */
    uint32_t *labels; /* (chunk_items) label ids */
} item_chunk;

/* Storage of embeddings that views share: rows [0, n) of a view are written before the view is
 * published and never again; only the newest view's block is appended to (by adds, under
 * add_lock), past the rows any view shows. */
typedef struct {
    atomic_uint refs;
    siam_weights *w;
    int dim;
    size_t cap;   /* rows */
    float *emb;   /* (cap, dim) */
    float *norms; /* (cap) squared norms (siam_knn_row_norms) */
} emb_block;

struct siam_gallery_view {
    atomic_uint refs;
    emb_block *b;
    size_t n;
};

#define NAME_CHUNK 4096 /* label names per chunk of the name table */

struct siam_gallery {
    size_t max_items;

    /* lock: short sections only (counts, the current view, wanted weights, flags) */
    pthread_mutex_t lock;
    pthread_cond_t wake;       /* the re-embedder: new weights, new items, stop */
    pthread_cond_t done;       /* siam_gallery_wait_embedded: a view was published */
    pthread_cond_t dirty_cond; /* the saver */
    /* add_lock: serialises changes of the store and the publication of views made from it
     * (adds, loads, the re-embedder's last step); held while an add embeds its images */
    pthread_mutex_t add_lock;

    /* the store; rows below n_items are immutable. Written under add_lock, n_items and n_labels
     * published under lock too */
    int h, w, c;          /* 0 until known */
    int shape_from_model; /* the shape came from the first weights, not from images */
    size_t image_bytes;
    size_t chunk_items;
    size_t n_chunk_slots;
    item_chunk **chunks; /* (n_chunk_slots) */
    size_t n_items;
    uint64_t next_id;
    char ***names; /* label names: (ceil(max_items / NAME_CHUNK)) chunks of NAME_CHUNK */
    size_t n_name_slots;
    uint32_t n_labels;     /* published (lock) */
    uint32_t n_labels_all; /* interned, some maybe not yet published (add_lock) */
    uint32_t *hash;        /* open addressing, label id + 1 (0 = empty); add_lock */
    size_t hash_cap;       /* power of two */

    /* embedded versions */
    siam_gallery_view *view;     /* current, NULL before the first weights */
    siam_weights *wanted;        /* the newest weights handed over */
    uint64_t failed_version;     /* weights the re-embedder could not use (shape) */
    int reembedding;             /* the re-embedder is working */
    siam_replica *add_replica;   /* adds' embeddings; add_lock */
    siam_replica *embed_replica; /* the re-embedder's */
    pthread_t embed_thread;
    int embed_started, stop;

    /* persistence */
    char *save_path;
    pthread_t save_thread;
    int save_started, save_stop, dirty;
    double last_save;
    uint64_t save_failures;
    pthread_mutex_t save_lock; /* one writer of the file at a time */
};

/* siam_gallery.c */
item_chunk *gal_chunk(const siam_gallery *g, size_t i, size_t *off);
/* Appends n items (images n x image_bytes, labels, ids: NULL gives next ids) to the store, not
 * yet published (n_items unchanged): returns the label ids in label_ids (n). Caller holds
 * add_lock and has checked the limit. SIAM_ERR_NOMEM, SIAM_ERR_ARG (a label). */
int gal_store_write(siam_gallery *g, size_t at, const uint8_t *images, size_t n,
                    const char *const *labels, const uint64_t *ids, uint64_t *ids_out,
                    siam_error *err);
/* Empties the store (a load that failed). Caller holds add_lock; no view exists. */
void gal_store_reset(siam_gallery *g);
/* Shape setting under lock held. */
int gal_set_shape_locked(siam_gallery *g, int h, int w, int c, siam_error *err);

emb_block *gal_block_new(siam_weights *w, size_t cap);
void gal_block_release(emb_block *b);
/* b with room for at least rows rows: b itself, or a copy of its first `keep` rows in a larger
 * block (b released); NULL when out of memory (b kept). */
emb_block *gal_block_grow(emb_block *b, size_t keep, size_t rows);
/* Embeds items [from, to) of the store with b's weights into b's rows. */
int gal_embed_items(siam_gallery *g, siam_replica *r, emb_block *b, size_t from, size_t to,
                    siam_error *err);
/* Makes {b, n} the current view (lock held; the view takes a reference to b); *old gets the
 * view it replaces (NULL for the first), for the caller to release after unlocking. -1 when out
 * of memory (nothing changed). */
int gal_publish_locked(siam_gallery *g, emb_block *b, size_t n, siam_gallery_view **old);

/* siam_gallery_embed.c */
int gal_embed_start(siam_gallery *g, siam_error *err);
void gal_embed_stop(siam_gallery *g);

/* siam_gallery_file.c */
void gal_save_stop(siam_gallery *g);
void gal_mark_dirty_locked(siam_gallery *g);

#endif
