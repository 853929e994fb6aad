/* siam_gallery_file: loading a gallery from IDX files, the gallery file (save and verified load)
 * and the thread that saves it after changes.
 *
 * The gallery file, little-endian:
 *   magic "SIAMGLRY" | u32 version (1) | u32 H | u32 W | u32 C | u64 n | u64 next_id |
 *   u32 n_labels | n_labels x (u8 length 1..64, the label's bytes) |
 *   n x (u64 id, u32 label index) | n x H*W*C image bytes | u32 CRC32 (zlib) of all before it.
 * Ids are strictly increasing and below next_id; an empty gallery may have shape 0x0x0. The
 * embeddings are not saved: they are recomputed from the model the server runs. */
#include "siam_gallery_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#include "siam_atomic.h"
#include "siam_bytes.h"
#include "siam_dataset.h"
#include "siam_log.h"

#define COMPONENT     "gallery"
#define FILE_VERSION  1
#define HEAD_BYTES    44
#define RETRY_SECONDS 5.0 /* after a failed write */

static const char magic[8] = {'S', 'I', 'A', 'M', 'G', 'L', 'R', 'Y'};

/* ---- IDX ---- */

int siam_gallery_load_idx(siam_gallery *g, const char *images, const char *labels,
                          siam_error *err) {
    siam_idx im, lb;
    memset(&im, 0, sizeof im);
    memset(&lb, 0, sizeof lb);
    /* one item beyond the limit is enough to refuse a file that is too large */
    int rc = siam_idx_read(&im, images, 3, g->max_items + 1, err);
    if (rc)
        return rc;
    if ((rc = siam_idx_read(&lb, labels, 1, g->max_items + 1, err))) {
        siam_idx_free(&im);
        return rc;
    }
    size_t n = im.dims[0];
    if (n > g->max_items)
        rc = siam_error_set(err, SIAM_ERR_LIMIT,
                            "%s holds more than %zu images, the gallery's limit (siam-server "
                            "--gallery-max N raises it, up to %d)",
                            images, g->max_items, SIAM_GALLERY_MAX_ITEMS_LIMIT);
    else if (lb.dims[0] != n)
        rc = siam_error_set(err, SIAM_ERR_MISMATCH, "%s holds %zu images but %s %zu labels", images,
                            n, labels, (size_t)lb.dims[0]);
    int shape_failed = 0;
    const char **names = rc ? NULL : malloc(n * sizeof *names);
    if (!rc && !names)
        rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for %zu labels", n);
    char text[256][4]; /* the class numbers as decimal text */
    for (int v = 0; v < 256; v++)
        snprintf(text[v], sizeof text[v], "%d", v);
    for (size_t i = 0; !rc && i < n; i++)
        names[i] = text[lb.data[i]];
    if (!rc) {
        pthread_mutex_lock(&g->add_lock);
        pthread_mutex_lock(&g->lock);
        if (g->n_items)
            rc = siam_error_set(err, SIAM_ERR_ARG,
                                "the gallery holds %zu items already: load "
                                "IDX files into an empty one",
                                g->n_items);
        else if ((rc = gal_set_shape_locked(g, (int)im.dims[1], (int)im.dims[2], 1, err)))
            shape_failed = 1;
        pthread_mutex_unlock(&g->lock);
        if (!rc && (rc = gal_store_write(g, 0, im.data, n, names, NULL, NULL, err)))
            gal_store_reset(g);
        if (!rc) {
            pthread_mutex_lock(&g->lock);
            g->n_items = n;
            g->n_labels = g->n_labels_all;
            g->next_id += n;
            pthread_cond_broadcast(&g->wake);
            pthread_mutex_unlock(&g->lock);
        }
        pthread_mutex_unlock(&g->add_lock);
    }
    if (shape_failed) {
        char why[SIAM_ERROR_MSG_MAX];
        snprintf(why, sizeof why, "%s", err->msg);
        siam_error_set(err, rc, "%s: %s", images, why);
    }
    free(names);
    siam_idx_free(&im);
    siam_idx_free(&lb);
    return rc;
}

/* ---- the gallery file: save ---- */

typedef struct {
    FILE *f;
    uLong crc;
    int err; /* errno of the first failed write */
} writer;

static void w_bytes(writer *w, const void *p, size_t n) {
    if (w->err || n == 0)
        return;
    w->crc = siam_crc32_update(w->crc, p, n);
    errno = 0;
    if (fwrite(p, 1, n, w->f) != n)
        w->err = errno ? errno : EIO;
}

int siam_gallery_save_file(siam_gallery *g, const char *path, siam_error *err) {
    pthread_mutex_lock(&g->save_lock);
    pthread_mutex_lock(&g->lock); /* a snapshot of the counts: the rows below them never change */
    size_t n = g->n_items;
    uint32_t n_labels = g->n_labels;
    uint64_t next_id = g->next_id;
    int h = g->h, wd = g->w, c = g->c;
    size_t ib = g->image_bytes;
    pthread_mutex_unlock(&g->lock);
    siam_atomic_file af;
    int rc = siam_atomic_open(&af, path, err);
    if (rc) {
        pthread_mutex_unlock(&g->save_lock);
        return rc;
    }
    writer w = {af.f, crc32(0L, Z_NULL, 0), 0};
    uint8_t head[HEAD_BYTES];
    memcpy(head, magic, 8);
    siam_put_u32(head + 8, FILE_VERSION);
    siam_put_u32(head + 12, (uint32_t)h);
    siam_put_u32(head + 16, (uint32_t)wd);
    siam_put_u32(head + 20, (uint32_t)c);
    siam_put_u64(head + 24, n);
    siam_put_u64(head + 32, next_id);
    siam_put_u32(head + 40, n_labels);
    w_bytes(&w, head, sizeof head);
    for (uint32_t i = 0; i < n_labels; i++) {
        const char *s = g->names[i / NAME_CHUNK][i % NAME_CHUNK];
        uint8_t len = (uint8_t)strlen(s);
        w_bytes(&w, &len, 1);
        w_bytes(&w, s, len);
    }
    uint8_t rec[12 * 256];
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < 256 && i < n; k++, i++) {
            size_t o;
            item_chunk *ch = gal_chunk(g, i, &o);
            siam_put_u64(rec + 12 * k, ch->ids[o]);
            siam_put_u32(rec + 12 * k + 8, ch->labels[o]);
        }
        w_bytes(&w, rec, 12 * k);
    }
    for (size_t i = 0; i < n;) { /* images, a chunk's contiguous run at a time */
        size_t o;
        item_chunk *ch = gal_chunk(g, i, &o);
        size_t k = g->chunk_items - o < n - i ? g->chunk_items - o : n - i;
        w_bytes(&w, ch->images + o * ib, k * ib);
        i += k;
    }
    uint8_t crc[4];
    siam_put_u32(crc, (uint32_t)w.crc);
    w_bytes(&w, crc, 4);
    if (w.err) {
        siam_atomic_abort(&af);
        rc = siam_error_set(err, SIAM_ERR_IO, "%s: write of temporary file failed: %s", path,
                            strerror(w.err));
    } else {
        rc = siam_atomic_commit(&af, err);
    }
    pthread_mutex_unlock(&g->save_lock);
    return rc;
}

/* ---- the gallery file: load ---- */

typedef struct {
    FILE *f;
    const char *path;
    uLong crc;
} reader;

static int r_bytes(reader *r, void *p, size_t n, siam_error *err) {
    if (n == 0)
        return SIAM_OK;
    errno = 0;
    if (fread(p, 1, n, r->f) != n) {
        if (!ferror(r->f))
            return siam_error_set(err, SIAM_ERR_FORMAT, "%s: truncated: ended while being read",
                                  r->path);
        return siam_error_set(err, SIAM_ERR_IO, "%s: read failed: %s", r->path,
                              strerror(errno ? errno : EIO));
    }
    r->crc = siam_crc32_update(r->crc, p, n);
    return SIAM_OK;
}

int siam_gallery_is_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char head[8];
    int is = fread(head, 1, 8, f) == 8 && memcmp(head, magic, 8) == 0;
    fclose(f);
    return is;
}

/* The items after the header and labels: ids and label indices checked, images into the store. */
static int load_items(siam_gallery *g, reader *r, size_t n, uint64_t next_id, char **labels,
                      uint32_t n_labels, siam_error *err) {
    const size_t B = 4096;
    uint64_t *ids = malloc(n ? n * sizeof *ids : 1);
    uint32_t *lid = malloc(n ? n * sizeof *lid : 1);
    uint8_t *rec = malloc(12 * B), *img = malloc(B * g->image_bytes);
    const char **names = malloc(B * sizeof *names);
    int rc = SIAM_OK;
    if (!ids || !lid || !rec || !img || !names)
        rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory loading %zu gallery items", n);
    for (size_t i = 0; !rc && i < n; i += B) {
        size_t k = n - i < B ? n - i : B;
        if ((rc = r_bytes(r, rec, 12 * k, err)))
            break;
        for (size_t j = 0; j < k && !rc; j++) {
            ids[i + j] = siam_get_u64(rec + 12 * j);
            lid[i + j] = siam_get_u32(rec + 12 * j + 8);
            if (lid[i + j] >= n_labels)
                rc = siam_error_set(err, SIAM_ERR_FORMAT,
                                    "%s: item %zu has label index %u, the file has %u labels",
                                    r->path, i + j, lid[i + j], n_labels);
            else if (ids[i + j] >= next_id || (i + j > 0 && ids[i + j] <= ids[i + j - 1]))
                rc = siam_error_set(err, SIAM_ERR_FORMAT,
                                    "%s: item %zu has id %llu: ids must increase and stay "
                                    "below the next id %llu",
                                    r->path, i + j, (unsigned long long)ids[i + j],
                                    (unsigned long long)next_id);
        }
    }
    for (size_t i = 0; !rc && i < n; i += B) {
        size_t k = n - i < B ? n - i : B;
        if ((rc = r_bytes(r, img, k * g->image_bytes, err)))
            break;
        for (size_t j = 0; j < k; j++)
            names[j] = labels[lid[i + j]];
        rc = gal_store_write(g, i, img, k, names, ids + i, NULL, err);
    }
    free(ids);
    free(lid);
    free(rec);
    free(img);
    free(names);
    return rc;
}

static int load_file(siam_gallery *g, FILE *f, const char *path, uint64_t file_size,
                     siam_error *err) {
    reader r = {f, path, crc32(0L, Z_NULL, 0)};
    uint8_t head[HEAD_BYTES];
    size_t have = file_size < HEAD_BYTES ? (size_t)file_size : HEAD_BYTES;
    int rc = r_bytes(&r, head, have, err);
    if (rc)
        return rc;
    if (have < 8 || memcmp(head, magic, 8) != 0)
        return siam_error_set(err, SIAM_ERR_FORMAT, "%s: not a siam gallery file (bad magic)",
                              path);
    if (have < HEAD_BYTES)
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "%s: truncated: %llu bytes, the header alone needs %d", path,
                              (unsigned long long)file_size, HEAD_BYTES + 4);
    uint32_t version = siam_get_u32(head + 8);
    if (version != FILE_VERSION)
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "%s: gallery file version %lu, this build "
                              "reads version %d",
                              path, (unsigned long)version, FILE_VERSION);
    uint32_t h = siam_get_u32(head + 12), wd = siam_get_u32(head + 16), c = siam_get_u32(head + 20);
    uint64_t n = siam_get_u64(head + 24), next_id = siam_get_u64(head + 32);
    uint32_t n_labels = siam_get_u32(head + 40);
    if (n > g->max_items)
        return siam_error_set(err, SIAM_ERR_LIMIT,
                              "%s holds %llu items, more than the gallery's limit of %zu "
                              "(siam-server --gallery-max N raises it, up to %d)",
                              path, (unsigned long long)n, g->max_items,
                              SIAM_GALLERY_MAX_ITEMS_LIMIT);
    if (n_labels > (n ? n : 0) + SIAM_GALLERY_MAX_ADD || (n > 0 && n_labels == 0))
        return siam_error_set(err, SIAM_ERR_FORMAT, "%s: %lu labels for %llu items", path,
                              (unsigned long)n_labels, (unsigned long long)n);
    uint64_t bytes = (uint64_t)h * wd * c;
    if ((h || wd || c || n) &&
        (h < 1 || wd < 1 || c < 1 || h > 65536 || wd > 65536 || c > 65536 || bytes > (1u << 26)))
        return siam_error_set(err, SIAM_ERR_FORMAT, "%s: image shape %lux%lux%lu is not usable",
                              path, (unsigned long)h, (unsigned long)wd, (unsigned long)c);
    if (h) {
        pthread_mutex_lock(&g->lock);
        rc = gal_set_shape_locked(g, (int)h, (int)wd, (int)c, err);
        pthread_mutex_unlock(&g->lock);
        if (rc) {
            char why[SIAM_ERROR_MSG_MAX];
            snprintf(why, sizeof why, "%s", err->msg);
            return siam_error_set(err, rc, "%s: %s", path, why);
        }
    }
    char **labels = calloc(n_labels ? n_labels : 1, sizeof *labels);
    if (!labels)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for %lu labels",
                              (unsigned long)n_labels);
    uint64_t pos = HEAD_BYTES;
    for (uint32_t i = 0; i < n_labels && !rc; i++) {
        uint8_t len = 0;
        char why[128];
        if (!(rc = r_bytes(&r, &len, 1, err)) && !(labels[i] = calloc(1, (size_t)len + 1)))
            rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for labels");
        if (!rc && !(rc = r_bytes(&r, labels[i], len, err)) &&
            siam_gallery_check_label(labels[i], len, why, sizeof why))
            rc = siam_error_set(err, SIAM_ERR_FORMAT, "%s: label %u %s", path, i, why);
        pos += 1 + (uint64_t)len;
    }
    uint64_t want = pos + n * 12 + n * bytes + 4;
    if (!rc && want != file_size)
        rc = siam_error_set(err, SIAM_ERR_FORMAT,
                            want > file_size ? "%s: truncated: %llu bytes, its header promises %llu"
                                             : "%s: %llu bytes, its header promises %llu: "
                                               "trailing data",
                            path, (unsigned long long)file_size, (unsigned long long)want);
    if (!rc)
        rc = load_items(g, &r, (size_t)n, next_id, labels, n_labels, err);
    if (!rc) {
        uLong crc = r.crc;
        uint8_t stored[4];
        if (!(rc = r_bytes(&r, stored, 4, err)) && siam_get_u32(stored) != (uint32_t)crc)
            rc = siam_error_set(err, SIAM_ERR_FORMAT,
                                "%s: CRC mismatch (stored %08lx, computed %08lx): the file is "
                                "corrupt",
                                path, (unsigned long)siam_get_u32(stored), (unsigned long)crc);
    }
    for (uint32_t i = 0; i < n_labels; i++)
        free(labels[i]);
    free(labels);
    if (!rc) {
        pthread_mutex_lock(&g->lock);
        g->n_items = (size_t)n;
        g->n_labels = g->n_labels_all;
        g->next_id = next_id;
        pthread_cond_broadcast(&g->wake);
        pthread_mutex_unlock(&g->lock);
    }
    return rc;
}

int siam_gallery_load_file(siam_gallery *g, const char *path, siam_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return siam_error_set(err, SIAM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int rc = SIAM_OK;
    if (fstat(fileno(f), &st) != 0)
        rc = siam_error_set(err, SIAM_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = siam_error_set(err, SIAM_ERR_IO, "%s: not a regular file", path);
    if (!rc) {
        pthread_mutex_lock(&g->add_lock);
        pthread_mutex_lock(&g->lock);
        size_t had = g->n_items;
        pthread_mutex_unlock(&g->lock);
        if (had)
            rc = siam_error_set(err, SIAM_ERR_ARG,
                                "the gallery holds %zu items already: load %s into an empty one",
                                had, path);
        else if ((rc = load_file(g, f, path, (uint64_t)st.st_size, err)))
            gal_store_reset(g);
        pthread_mutex_unlock(&g->add_lock);
    }
    fclose(f);
    return rc;
}

/* ---- the saving thread ---- */

void gal_mark_dirty_locked(siam_gallery *g) {
    g->dirty = 1;
    pthread_cond_signal(&g->dirty_cond);
}

/* Waits on dirty_cond until siam_now() reaches `until` or the saver is stopped (lock held). */
static void wait_until(siam_gallery *g, double until) {
    while (!g->save_stop) {
        double left = until - siam_now();
        if (left <= 0)
            return;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long ns = (long long)ts.tv_nsec + (long long)(left * 1e9);
        ts.tv_sec += (time_t)(ns / 1000000000LL);
        ts.tv_nsec = (long)(ns % 1000000000LL);
        pthread_cond_timedwait(&g->dirty_cond, &g->lock, &ts);
    }
}

static void *save_main(void *arg) {
    siam_gallery *g = arg;
    pthread_mutex_lock(&g->lock);
    double next = 0; /* earliest time of the next write */
    for (;;) {
        while (!g->save_stop && !g->dirty)
            pthread_cond_wait(&g->dirty_cond, &g->lock);
        wait_until(g, next);
        if (g->save_stop)
            break;
        g->dirty = 0;
        size_t n = g->n_items;
        pthread_mutex_unlock(&g->lock);
        siam_error err = {0};
        double t0 = siam_now();
        int rc = siam_gallery_save_file(g, g->save_path, &err);
        double t1 = siam_now();
        if (rc)
            siam_log_limited(SIAM_LOG_ERROR, COMPONENT, "gallery save failed",
                             "the gallery (%zu items) could not be saved: %s; retrying in %g s", n,
                             err.msg, RETRY_SECONDS);
        else
            LOG_INFO(COMPONENT, "%zu items saved to %s in %.2f s", n, g->save_path, t1 - t0);
        pthread_mutex_lock(&g->lock);
        if (rc) {
            g->dirty = 1;
            g->save_failures++;
        }
        next = t1 + (rc ? RETRY_SECONDS : SIAM_GALLERY_SAVE_INTERVAL);
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

int siam_gallery_persist(siam_gallery *g, const char *path, int save_now, siam_error *err) {
    if (g->save_path)
        return siam_error_set(err, SIAM_ERR_ARG, "the gallery is saved to %s already",
                              g->save_path);
    if (!(g->save_path = strdup(path)))
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
    pthread_mutex_lock(&g->lock);
    g->dirty = save_now || g->dirty;
    g->save_stop = 0;
    int rc = pthread_create(&g->save_thread, NULL, save_main, g);
    g->save_started = rc == 0;
    pthread_mutex_unlock(&g->lock);
    if (rc)
        return siam_error_set(err, SIAM_ERR_NOMEM, "cannot start the gallery's saving thread: %s",
                              strerror(rc));
    return SIAM_OK;
}

void gal_save_stop(siam_gallery *g) {
    pthread_mutex_lock(&g->lock);
    g->save_stop = 1;
    pthread_cond_broadcast(&g->dirty_cond);
    int started = g->save_started;
    g->save_started = 0;
    pthread_mutex_unlock(&g->lock);
    if (started)
        pthread_join(g->save_thread, NULL);
}

int siam_gallery_flush(siam_gallery *g, siam_error *err) {
    gal_save_stop(g);
    if (!g->save_path)
        return SIAM_OK;
    pthread_mutex_lock(&g->lock);
    int dirty = g->dirty;
    g->dirty = 0;
    pthread_mutex_unlock(&g->lock);
    if (!dirty)
        return SIAM_OK;
    int rc = siam_gallery_save_file(g, g->save_path, err);
    if (rc) {
        pthread_mutex_lock(&g->lock);
        g->dirty = 1;
        pthread_mutex_unlock(&g->lock);
    }
    return rc;
}
