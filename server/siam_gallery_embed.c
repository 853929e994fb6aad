/* siam_gallery_embed: the thread that embeds the gallery with each new global model. */
#include "siam_gallery_internal.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "siam_log.h"

#define COMPONENT "gallery"
/* items embedded between two looks at the stop flag; and the most the last step (under the
 * lock that adds wait for) embeds: more are embedded before it, outside that lock */
#define PIECE 4096
#define TAIL  256

/* Whether the current view lacks items or is not of the newest usable weights (lock held). */
static int needs_work_locked(const siam_gallery *g) {
    const siam_weights *w = g->wanted;
    if (!w || siam_weights_version(w) == g->failed_version)
        return 0;
    return !g->view || g->view->b->w != w || g->view->n != g->n_items;
}

static int stopping(siam_gallery *g) {
    pthread_mutex_lock(&g->lock);
    int s = g->stop;
    pthread_mutex_unlock(&g->lock);
    return s;
}

/* Embeds items [from, to) into *b (grown as needed), a piece at a time; 1 when stopped. */
static int embed_range(siam_gallery *g, emb_block **b, size_t from, size_t to, int check_stop,
                       siam_error *err) {
    emb_block *nb = gal_block_grow(*b, from, to);
    if (!nb)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for %zu embeddings", to);
    *b = nb;
    for (size_t i = from; i < to; i += PIECE) {
        if (check_stop && stopping(g))
            return -1;
        size_t end = to - i < PIECE ? to : i + PIECE;
        int rc = gal_embed_items(g, g->embed_replica, *b, i, end, err);
        if (rc)
            return rc;
    }
    return SIAM_OK;
}

/* One re-embedding with w of the n0 items stored when it began, then of those added since.
 * Returns SIAM_OK when a new view was published, -1 when stopped, else the error. */
static int reembed(siam_gallery *g, siam_weights *w, size_t n0, siam_error *err) {
    double t0 = siam_now();
    emb_block *b = gal_block_new(w, n0 + n0 / 8 + 64);
    if (!b)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for %zu embeddings", n0);
    int rc = embed_range(g, &b, 0, n0, 1, err);
    size_t done = n0;
    while (rc == SIAM_OK) { /* items added meanwhile, outside the adds' lock while many */
        pthread_mutex_lock(&g->lock);
        size_t n1 = g->n_items;
        pthread_mutex_unlock(&g->lock);
        if (n1 - done <= TAIL)
            break;
        rc = embed_range(g, &b, done, n1, 1, err);
        done = n1;
    }
    if (rc) {
        gal_block_release(b);
        return rc;
    }
    /* the last few under add_lock: no add can slip between them and the publication */
    pthread_mutex_lock(&g->add_lock);
    pthread_mutex_lock(&g->lock);
    size_t n1 = g->n_items;
    pthread_mutex_unlock(&g->lock);
    rc = embed_range(g, &b, done, n1, 0, err);
    siam_gallery_view *old = NULL;
    if (!rc) {
        pthread_mutex_lock(&g->lock);
        if (gal_publish_locked(g, b, n1, &old))
            rc = siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for a gallery view");
        pthread_mutex_unlock(&g->lock);
    }
    pthread_mutex_unlock(&g->add_lock);
    siam_gallery_view_release(old);
    gal_block_release(b);
    if (!rc)
        LOG_INFO(COMPONENT, "%zu items embedded with the model of round %llu (%d-d) in %.2f s", n1,
                 (unsigned long long)siam_weights_round(w), siam_weights_dim(w), siam_now() - t0);
    return rc;
}

static void *embed_main(void *arg) {
    siam_gallery *g = arg;
    pthread_mutex_lock(&g->lock);
    for (;;) {
        while (!g->stop && !needs_work_locked(g))
            pthread_cond_wait(&g->wake, &g->lock);
        if (g->stop)
            break;
        siam_weights *w = siam_weights_retain(g->wanted);
        size_t n0 = g->n_items;
        char shape[48];
        siam_weights_shape_text(w, shape, sizeof shape);
        int h, wd, c;
        siam_weights_input_shape(w, &h, &wd, &c);
        if (g->h != h || g->w != wd || g->c != c) {
            LOG_ERROR(COMPONENT,
                      "the gallery's images are %dx%dx%d, the model of round %llu takes %s: "
                      "the gallery is not embedded with it and Search answers from the "
                      "previous version, if any. Load a gallery of the model's shape",
                      g->h, g->w, g->c, (unsigned long long)siam_weights_round(w), shape);
            g->failed_version = siam_weights_version(w);
            pthread_cond_broadcast(&g->done);
            siam_weights_release(w);
            continue;
        }
        g->reembedding = 1;
        pthread_mutex_unlock(&g->lock);
        siam_error err = {0};
        int rc = reembed(g, w, n0, &err);
        pthread_mutex_lock(&g->lock);
        g->reembedding = 0;
        if (rc > 0) {
            LOG_ERROR(COMPONENT, "embedding the gallery with the model of round %llu failed: %s",
                      (unsigned long long)siam_weights_round(w), err.msg);
            g->failed_version = siam_weights_version(w);
        }
        pthread_cond_broadcast(&g->done);
        siam_weights_release(w);
    }
    g->reembedding = 0;
    pthread_cond_broadcast(&g->done);
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

void siam_gallery_set_weights(siam_gallery *g, siam_weights *w) {
    if (!w)
        return;
    pthread_mutex_lock(&g->lock);
    siam_weights_release(g->wanted);
    g->wanted = siam_weights_retain(w);
    if (!g->h && g->n_items == 0) {
        int h, wd, c;
        siam_weights_input_shape(w, &h, &wd, &c);
        if (gal_set_shape_locked(g, h, wd, c, NULL) == SIAM_OK) /* fails only out of memory */
            g->shape_from_model = 1;
    }
    if (!g->embed_started && !g->stop) {
        int rc = pthread_create(&g->embed_thread, NULL, embed_main, g);
        if (rc)
            LOG_ERROR(COMPONENT,
                      "cannot start the gallery's embedding thread: %s (Search by "
                      "this server is off)",
                      strerror(rc));
        else
            g->embed_started = 1;
    }
    pthread_cond_broadcast(&g->wake);
    pthread_mutex_unlock(&g->lock);
}

void gal_embed_stop(siam_gallery *g) {
    pthread_mutex_lock(&g->lock);
    g->stop = 1;
    pthread_cond_broadcast(&g->wake);
    int started = g->embed_started;
    g->embed_started = 0;
    pthread_mutex_unlock(&g->lock);
    if (started)
        pthread_join(g->embed_thread, NULL);
}

int siam_gallery_wait_embedded(siam_gallery *g, double secs) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ns = (long long)ts.tv_nsec + (long long)(secs * 1e9);
    ts.tv_sec += (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    pthread_mutex_lock(&g->lock);
    int rc = 0;
    while ((needs_work_locked(g) || g->reembedding) && rc != ETIMEDOUT && g->embed_started)
        rc = pthread_cond_timedwait(&g->done, &g->lock, &ts);
    int ready = !needs_work_locked(g) && !g->reembedding;
    pthread_mutex_unlock(&g->lock);
    return ready;
}
