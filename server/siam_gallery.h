/* siam_gallery: the server's gallery for Search: labelled reference images and their embeddings.
 *
 * Two parts:
 *  - The store: append-only items, each an image of the gallery's input shape (uint8, H*W*C
 *    bytes), a label (1..SIAM_GALLERY_LABEL_MAX bytes of UTF-8 without control characters) and a
 *    uint64 id (given in increasing order; the IDX loader's are 0..n-1). An item once stored never
 *    changes or moves, so readers of the first n items need no lock.
 *  - Embedded versions (siam_gallery_view): immutable, reference-counted snapshots of the first n
 *    items embedded with one siam_weights. Search takes the current view (a pointer copy under a
 *    short lock) and reads it without blocking anything; the view names its weights, so the
 *    queries are embedded with the same parameters.
 *
 * The model: siam_gallery_set_weights hands over each new global model (every averaging round,
 * --model, --resume, the first worker's join). A background thread re-embeds every item with it
 * into a new version and publishes that when done; searches answer from the previous version
 * meanwhile. Items added during a re-embedding are embedded at once with the version being served
 * (so they are searchable when the add returns), and the re-embedder embeds them again with the
 * new weights before it publishes: its last step runs under the lock that serialises adds. While
 * the re-embedder works on one version, newer ones wait; it then takes the newest. Without weights
 * the gallery stores images and embeds them when the first weights come.
 *
 * Persistence: siam_gallery_persist starts a thread that writes the store (shape, ids, labels,
 * images; never embeddings) to a file atomically after changes, at most once per
 * SIAM_GALLERY_SAVE_INTERVAL seconds; siam_gallery_flush writes what is left at shutdown. The file
 * format is in siam_gallery_file.c and docs/DESIGN.md.
 *
 * Thread-safe: every function may be called from any thread, except create, free, the loaders
 * and persist/flush, which belong to the program's start and end. */
#ifndef SIAM_GALLERY_H
#define SIAM_GALLERY_H

#include <stddef.h>
#include <stdint.h>

#include "siam_error.h"
#include "siam_inference.h"

#define SIAM_GALLERY_MAX_ITEMS_DEFAULT 200000   /* siam-server --gallery-max */
#define SIAM_GALLERY_MAX_ITEMS_LIMIT   10000000 /* the largest --gallery-max */
#define SIAM_GALLERY_LABEL_MAX         64       /* bytes per label */
#define SIAM_GALLERY_MAX_ADD           1024     /* images per AddToGallery request */
#define SIAM_GALLERY_SAVE_INTERVAL     1.0      /* seconds between two writes of the file */

typedef struct siam_gallery siam_gallery;
typedef struct siam_gallery_view siam_gallery_view;

/* An empty gallery of at most max_items (1..SIAM_GALLERY_MAX_ITEMS_LIMIT) items, no shape yet.
 * SIAM_ERR_ARG, SIAM_ERR_NOMEM. */
int siam_gallery_create(siam_gallery **out, size_t max_items, siam_error *err);
/* Stops the threads (without writing: see siam_gallery_flush) and frees. Every view must have
 * been released. NULL is fine. */
void siam_gallery_free(siam_gallery *g);
size_t siam_gallery_max_items(const siam_gallery *g);

/* The input shape of the images (1 with h, w, c set; 0 before it is known). */
int siam_gallery_shape(siam_gallery *g, int *h, int *w, int *c);
/* Fixes the shape. SIAM_ERR_MISMATCH naming both shapes when another one is set (by images
 * loaded or added, or by the first weights of an empty gallery); SIAM_ERR_ARG for a shape of zero
 * or more than 2^26 bytes. */
int siam_gallery_set_shape(siam_gallery *g, int h, int w, int c, siam_error *err);

/* 0 when label (len bytes) is a valid label; else -1 with why[n] saying what is wrong ("has 70
 * bytes, expected 1..64", "is not valid UTF-8 at byte 3", "has a control character at byte 0"). */
int siam_gallery_check_label(const char *label, size_t len, char *why, size_t n);

typedef struct {
    size_t items;    /* in the store */
    size_t embedded; /* in the current view (searchable) */
    uint64_t round;  /* the current view's model round (0 without one) */
    int has_view;    /* a view exists (with weights), even of 0 items */
    int embedding;   /* a re-embedding is wanted or running */
} siam_gallery_info;

void siam_gallery_get_info(siam_gallery *g, siam_gallery_info *out);

/* Adds n images (n x the shape's bytes) with one label each: ids get their new ids (n). With
 * a current view, the images are embedded with its weights and a new view holding them is
 * published before this returns. *info (may be NULL) is the state afterwards.
 * SIAM_ERR_ARG: no shape yet, n of 0 or above SIAM_GALLERY_MAX_ADD, a bad label (the message
 * names labels[i]); SIAM_ERR_LIMIT: the gallery would pass max_items (the message names the
 * limit and --gallery-max); SIAM_ERR_NOMEM. A refused add changes nothing. */
int siam_gallery_add(siam_gallery *g, const uint8_t *images, size_t n, const char *const *labels,
                     uint64_t *ids, siam_gallery_info *info, siam_error *err);

/* The newest global model: the gallery is embedded with it in the background (see above). The
 * gallery takes its own reference. When the gallery has no shape and no items, the weights'
 * input shape becomes its shape. Weights whose input shape differs from the gallery's are not
 * used (an error is logged once per weights). */
void siam_gallery_set_weights(siam_gallery *g, siam_weights *w);

/* The current view with a reference (release it), or NULL before any. */
siam_gallery_view *siam_gallery_acquire(siam_gallery *g);
void siam_gallery_view_release(siam_gallery_view *v); /* NULL is fine */

size_t siam_gallery_view_size(const siam_gallery_view *v);
int siam_gallery_view_dim(const siam_gallery_view *v);
const float *siam_gallery_view_embeddings(const siam_gallery_view *v); /* (size, dim) */
const float *siam_gallery_view_norms(const siam_gallery_view *v);      /* (size): squared */
siam_weights *siam_gallery_view_weights(const siam_gallery_view *v);   /* no reference taken */

/* Item i of the store (i below the size of a view the caller holds, or of the store). */
uint64_t siam_gallery_item_id(const siam_gallery *g, size_t i);
const char *siam_gallery_item_label(const siam_gallery *g, size_t i);
uint32_t siam_gallery_item_label_id(const siam_gallery *g, size_t i); /* equal labels, equal ids */
const uint8_t *siam_gallery_item_image(const siam_gallery *g, size_t i);

/* Waits up to secs seconds until nothing is left to embed (the current view holds every item
 * with the newest weights, or there are no weights). 1 when so, 0 at the timeout. For tests and
 * for the program's start. */
int siam_gallery_wait_embedded(siam_gallery *g, double secs);

/* ---- loading and saving (siam_gallery_file.c) ---- */

/* 1 when path starts with the gallery file's magic (a file to siam_gallery_load_file rather than
 * an IDX file), 0 otherwise (also when it cannot be read: the loader then says why). */
int siam_gallery_is_file(const char *path);

/* Loads IDX images (n x H x W, unsigned bytes; gzip'd or plain) and IDX labels (n bytes) into an
 * empty gallery: shape HxWx1, labels as decimal text ("7"), ids continuing from the gallery's
 * next id (0..n-1 for a new gallery). SIAM_ERR_IO/FORMAT name the file, SIAM_ERR_MISMATCH (counts
 * or shape), SIAM_ERR_LIMIT (more than max_items: the message names --gallery-max), SIAM_ERR_ARG
 * (the gallery is not empty). On failure the gallery stays empty. */
int siam_gallery_load_idx(siam_gallery *g, const char *images, const char *labels, siam_error *err);

/* Loads a gallery file into an empty gallery. A file that is not a gallery, of another version,
 * truncated, with trailing bytes, a CRC that does not match, a bad label, ids not increasing or a
 * shape that differs from the gallery's is refused (SIAM_ERR_FORMAT, _MISMATCH, _IO, _LIMIT), the
 * message naming the file and what is wrong. On failure the gallery stays empty. */
int siam_gallery_load_file(siam_gallery *g, const char *path, siam_error *err);

/* Writes the store as it is now to path atomically (lib/base/siam_atomic). */
int siam_gallery_save_file(siam_gallery *g, const char *path, siam_error *err);

/* Saves to path after every change (coalesced: at most once per SIAM_GALLERY_SAVE_INTERVAL
 * seconds; a failed write is logged and retried) from a thread of its own; save_now writes the
 * current store soon even without a change. Call once. */
int siam_gallery_persist(siam_gallery *g, const char *path, int save_now, siam_error *err);
/* Stops that thread and writes what changed since the last write (nothing without persist).
 * The error of that write, naming the path. */
int siam_gallery_flush(siam_gallery *g, siam_error *err);

#endif
