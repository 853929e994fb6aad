/* siam_averaging_workers: the worker-name table (expiry, fill logging), liveness, lapsed joins. */
#include "siam_averaging_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_log.h"
#include "siam_rpc.h"

worker *avg_find_worker(siam_averaging *a, const char *id) {
    for (size_t i = 0; i < a->n_workers; i++)
        if (strcmp(a->w[i].id, id) == 0)
            return &a->w[i];
    return NULL;
}

/* Forgets workers quiet for longer than the expiry (lock held): no open stream, no call
 * waiting here, no report in the open round, not live, not seen for a->expiry seconds. Such a
 * worker that comes back is new (as after a restart: it joins again; a report it sends again
 * is late). Moves the table: worker pointers taken before are invalid. */
static void expire_quiet(siam_averaging *a, double now) {
    size_t k = 0, gone = 0;
    char names[256] = "";
    size_t off = 0;
    size_t *map = NULL; /* old index -> new, for the join waiters */
    if (a->n_join_waiters)
        map = malloc(a->n_workers * sizeof *map);
    if (a->n_join_waiters && !map)
        return; /* nothing is forgotten this time */
    for (size_t i = 0; i < a->n_workers; i++) {
        worker *w = &a->w[i];
        int quiet = w->streams == 0 && w->pending == 0 && !w->reported && !avg_is_live(a, w, now) &&
                    now - w->last_seen > a->expiry;
        if (!quiet) {
            if (map)
                map[i] = k;
            a->w[k++] = *w;
            continue;
        }
        if (off < sizeof names)
            off +=
                (size_t)snprintf(names + off, sizeof names - off, "%s%s", gone ? ", " : "", w->id);
        gone++;
        if (w->joined)
            a->joined--;
        free(w->id);
        free(w->report);
    }
    for (size_t i = 0; map && i < a->n_join_waiters; i++)
        a->join_waiters[i].worker = map[a->join_waiters[i].worker];
    free(map);
    a->n_workers = k;
    if (gone)
        LOG_INFO(COMPONENT, "forgot %zu worker(s) not seen for %g s: %s%s; %zu known", gone,
                 a->expiry, names, off >= sizeof names ? "..." : "", a->n_workers);
    if (a->n_workers * 2 < SIAM_AVERAGING_MAX_WORKERS)
        a->table_level = 0;
}

/* The record of id, added when new (lock held): quiet workers are forgotten first, and when
 * SIAM_AVERAGING_MAX_WORKERS are still known, NULL with *full set (a rate-limited warning says
 * so). The fill is logged at 50, 75, 90 and 100 percent: invented names filling the table are
 * visible. */
worker *avg_find_or_add(siam_averaging *a, const char *id, double now, int *full) {
    *full = 0;
    worker *found = avg_find_worker(a, id);
    if (found)
        return found;
    expire_quiet(a, now);
    if (a->n_workers >= SIAM_AVERAGING_MAX_WORKERS) {
        *full = 1;
        a->refused_since++;
        if (now - a->refused_logged >= 5.0 || a->refused_logged == 0) {
            LOG_WARN(COMPONENT,
                     "worker table full (%d names, none quiet for %g s): refused %u new "
                     "name(s) since the last such line, the latest '%s'",
                     SIAM_AVERAGING_MAX_WORKERS, a->expiry, a->refused_since, id);
            a->refused_logged = now;
            a->refused_since = 0;
        }
        return NULL;
    }
    if (a->n_workers == a->cap_workers) {
        size_t cap = a->cap_workers ? 2 * a->cap_workers : 16;
        worker *w = realloc(a->w, cap * sizeof *w);
        if (!w)
            return NULL;
        a->w = w;
        a->cap_workers = cap;
    }
    worker *w = &a->w[a->n_workers];
    memset(w, 0, sizeof *w);
    w->id = strdup(id);
    if (!w->id)
        return NULL;
    w->last_seen = now;
    a->n_workers++;
    static const int pct[4] = {50, 75, 90, 100};
    while (a->table_level < 4 &&
           a->n_workers * 100 >= (size_t)pct[a->table_level] * SIAM_AVERAGING_MAX_WORKERS) {
        LOG_WARN(COMPONENT,
                 "worker table at %d%%: %zu of %d names known (the newest '%s'); names quiet for "
                 "%.0f s are forgotten, beyond %d new names are refused",
                 pct[a->table_level], a->n_workers, SIAM_AVERAGING_MAX_WORKERS, id, a->expiry,
                 SIAM_AVERAGING_MAX_WORKERS);
        a->table_level++;
    }
    return w;
}

int avg_is_live(const siam_averaging *a, const worker *w, double now) {
    if (!w->joined)
        return 0;
    return w->pending > 0 || w->streams > 0 ||
           (!w->had_stream && now - w->join_time < a->cfg.sync_timeout);
}

void avg_waiting_text(const siam_averaging *a, char *out, size_t cap) {
    if (!a->quorum && a->joined < a->cfg.min_workers)
        snprintf(out, cap, "waiting for %d more worker%s (%d of %d)",
                 a->cfg.min_workers - a->joined, a->cfg.min_workers - a->joined == 1 ? "" : "s",
                 a->joined, a->cfg.min_workers);
    else
        out[0] = '\0';
}

/* Joins whose callers have gone (cfg.gone) stop counting (lock held): each is answered
 * CANCELLED (the rpc layer drops it), and its worker is no longer joined unless another call of
 * its own is here. Only before min_workers is reached: afterwards joins do not wait. */
void avg_prune_gone_joins(siam_averaging *a, outbox *o) {
    if (!a->cfg.gone)
        return;
    size_t k = 0;
    for (size_t i = 0; i < a->n_join_waiters; i++) {
        struct join_waiter jw = a->join_waiters[i];
        if (!a->cfg.gone(jw.waiter)) {
            a->join_waiters[k++] = jw;
            continue;
        }
        worker *w = &a->w[jw.worker];
        w->pending--;
        avg_queue(a, o, jw.waiter, SIAM_RPC_CANCELLED,
                  "the caller gave up waiting for the other workers; its join no longer counts", 0,
                  0, 0);
        if (w->joined && w->pending == 0 && !w->reported) {
            w->joined = 0;
            a->joined--;
            LOG_INFO(COMPONENT,
                     "worker %s gave up its join (its call ended): %d of %d needed have joined",
                     w->id, a->joined, a->cfg.min_workers);
        }
    }
    a->n_join_waiters = k;
}

void siam_averaging_stream(siam_averaging *a, const char *worker_id, int delta) {
    outbox o = {0};
    pthread_mutex_lock(&a->lock);
    uint64_t before = a->round;
    double now = siam_now();
    int full = 0;
    worker *w =
        delta > 0 ? avg_find_or_add(a, worker_id, now, &full) : avg_find_worker(a, worker_id);
    if (w) {
        w->last_seen = now;
        w->streams += delta;
        if (w->streams < 0)
            w->streams = 0;
        if (delta > 0)
            w->had_stream = 1;
        else /* a worker gone may have been the one the open round waited for */
            avg_maybe_close(a, &o, now);
    }
    pthread_mutex_unlock(&a->lock);
    avg_deliver(a, &o, before);
}

int siam_averaging_worker(siam_averaging *a, const char *worker_id, int *live,
                          uint64_t *last_round) {
    *live = 0;
    *last_round = 0;
    pthread_mutex_lock(&a->lock);
    worker *w = avg_find_worker(a, worker_id);
    int found = w && w->joined;
    if (found) {
        *live = avg_is_live(a, w, siam_now());
        *last_round = w->last_round;
    }
    pthread_mutex_unlock(&a->lock);
    return found;
}

void siam_averaging_set_expiry(siam_averaging *a, double seconds) {
    pthread_mutex_lock(&a->lock);
    if (seconds > 0)
        a->expiry = seconds;
    pthread_mutex_unlock(&a->lock);
}

double siam_averaging_expiry(siam_averaging *a) {
    pthread_mutex_lock(&a->lock);
    double e = a->expiry;
    pthread_mutex_unlock(&a->lock);
    return e;
}
