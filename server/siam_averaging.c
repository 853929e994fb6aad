/* siam_averaging: the global model and FedAvg rounds (see the header for the rules). */
#include "siam_averaging.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "siam_log.h"
#include "siam_rpc.h"

#define COMPONENT "averaging"

/* Global parameters of one round: immutable once made, shared by the answers being sent. */
typedef struct {
    int refs; /* guarded by the averaging lock */
    float *params;
} snapshot;

typedef struct {
    char *id;
    double last_seen; /* siam_now() of its last call or stream change: expiry */
    int joined;
    double join_time;
    int streams;    /* open Train streams */
    int had_stream; /* a stream has opened since the join */
    int pending;    /* calls waiting here */
    uint64_t last_round;
    /* the report in the open round */
    int reported;
    float *report; /* n_params floats */
    uint64_t samples;
    uint64_t base; /* the round it is based on */
    void *waiter;
    /* the report averaged into last_round, to recognise it when it is sent again */
    uint32_t last_crc;
    uint64_t last_samples, last_base;
} worker;

/* An answer to send once the lock is released. */
typedef struct {
    void *waiter;
    int code;
    char msg[SIAM_ERROR_MSG_MAX];
    snapshot *snap; /* NULL with a non-OK code */
    uint64_t round;
    uint32_t workers;
    uint64_t samples;
    int late;
} outgoing;

typedef struct {
    outgoing *v;
    size_t n, cap;
} outbox;

struct siam_averaging {
    siam_averaging_config cfg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t timer;
    int timer_started, stop, shut;

    int has_model;
    char spec[SIAM_SPEC_MAX];
    size_t n;
    snapshot *global;
    uint64_t round, version;

    worker *w;
    size_t n_workers, cap_workers;
    int joined;
    int quorum;             /* min_workers have joined since the start: joins no longer wait */
    double expiry;          /* quiet workers are forgotten after this many seconds */
    int table_level;        /* the highest fill threshold of the worker table logged (0..4) */
    double refused_logged;  /* siam_now() of the last "name refused" line */
    unsigned refused_since; /* names refused since that line */

    /* the open round */
    int reports;
    double opened;     /* siam_now() of its first report; its deadline is opened + timeout */
    uint64_t max_base; /* highest base round among its reports */
    /* the last closed round, for the answer to a report sent again after it closed */
    uint32_t last_workers;
    uint64_t last_samples;
    struct join_waiter {
        void *waiter;
        size_t worker; /* index into w */
    } * join_waiters;  /* joins waiting for min_workers */
    size_t n_join_waiters, cap_join_waiters;
};

/* ---- small helpers (lock held) ----------------------------------------------------------- */

static void snap_release(siam_averaging *a, snapshot *s) {
    (void)a;
    if (s && --s->refs == 0) {
        free(s->params);
        free(s);
    }
}

/* Queues an answer; on allocation failure the waiter is answered with what fits: the outbox
 * grows by doubling and starts with room, so this only fails when memory is gone entirely. */
static void queue(siam_averaging *a, outbox *o, void *waiter, int code, const char *msg, int late,
                  uint32_t workers, uint64_t samples) {
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 8;
        outgoing *v = realloc(o->v, cap * sizeof *v);
        if (!v) {
            LOG_ERROR(COMPONENT, "out of memory queueing an answer: a worker's call is dropped");
            return;
        }
        o->v = v;
        o->cap = cap;
    }
    outgoing *g = &o->v[o->n++];
    memset(g, 0, sizeof *g);
    g->waiter = waiter;
    g->code = code;
    snprintf(g->msg, sizeof g->msg, "%s", msg ? msg : "");
    g->late = late;
    g->workers = workers;
    g->samples = samples;
    g->round = a->round;
    if (code == SIAM_RPC_OK && a->global) {
        g->snap = a->global;
        a->global->refs++;
    }
}

/* Sends the queued answers (lock NOT held), then drops their snapshot references. */
static void flush(siam_averaging *a, outbox *o) {
    for (size_t i = 0; i < o->n; i++) {
        outgoing *g = &o->v[i];
        siam_averaging_answer ans;
        memset(&ans, 0, sizeof ans);
        ans.code = g->code;
        snprintf(ans.msg, sizeof ans.msg, "%s", g->msg);
        ans.round = g->round;
        ans.spec = a->spec;
        ans.params = g->snap ? g->snap->params : NULL;
        ans.n_params = g->snap ? a->n : 0;
        ans.workers = g->workers;
        ans.samples = g->samples;
        ans.late = g->late;
        a->cfg.reply(g->waiter, &ans);
    }
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < o->n; i++)
        snap_release(a, o->v[i].snap);
    pthread_mutex_unlock(&a->lock);
    free(o->v);
    o->v = NULL;
    o->n = o->cap = 0;
}

static int is_live(const siam_averaging *a, const worker *w, double now);

static worker *find_worker(siam_averaging *a, const char *id) {
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
        int quiet = w->streams == 0 && w->pending == 0 && !w->reported && !is_live(a, w, now) &&
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
static worker *find_or_add(siam_averaging *a, const char *id, double now, int *full) {
    *full = 0;
    worker *found = find_worker(a, id);
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

static int is_live(const siam_averaging *a, const worker *w, double now) {
    if (!w->joined)
        return 0;
    return w->pending > 0 || w->streams > 0 ||
           (!w->had_stream && now - w->join_time < a->cfg.sync_timeout);
}

static void waiting_text(const siam_averaging *a, char *out, size_t cap) {
    if (!a->quorum && a->joined < a->cfg.min_workers)
        snprintf(out, cap, "waiting for %d more worker%s (%d of %d)",
                 a->cfg.min_workers - a->joined, a->cfg.min_workers - a->joined == 1 ? "" : "s",
                 a->joined, a->cfg.min_workers);
    else
        out[0] = '\0';
}

static int by_id(const void *x, const void *y) {
    return strcmp((*(worker *const *)x)->id, (*(worker *const *)y)->id);
}

static int by_value(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

/* Index of the first parameter that is NaN or infinite, n when all are finite. */
static size_t first_non_finite(const float *p, size_t n) {
    for (size_t j = 0; j < n; j++)
        if (!isfinite(p[j]))
            return j;
    return n;
}

/* Ends the open round without a new model (lock held): every reporter gets the current global
 * model marked late, as if its update had come after the round closed, so that the workers go
 * on from one finite model. */
static void drop_round(siam_averaging *a, outbox *o) {
    for (size_t i = 0; i < a->n_workers; i++) {
        worker *w = &a->w[i];
        if (!w->reported)
            continue;
        queue(a, o, w->waiter, SIAM_RPC_OK, NULL, 1, 0, 0);
        w->reported = 0;
        w->pending--;
        free(w->report);
        w->report = NULL;
        w->waiter = NULL;
    }
    a->reports = 0;
    a->max_base = 0;
}

/* Joins whose callers have gone (cfg.gone) stop counting (lock held): each is answered
 * CANCELLED (the rpc layer drops it), and its worker is no longer joined unless another call of
 * its own is here. Only before min_workers is reached: afterwards joins do not wait. */
static void prune_gone_joins(siam_averaging *a, outbox *o) {
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
        queue(a, o, jw.waiter, SIAM_RPC_CANCELLED,
              "the caller gave up waiting for the other workers; its join no longer counts", 0, 0,
              0);
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

/* Closes the open round: averages the reports, answers the reporters. */
static void close_round(siam_averaging *a, outbox *o, int timed_out, double now) {
    worker **rep = malloc((size_t)a->reports * sizeof *rep);
    uint64_t *wgt = malloc((size_t)a->reports * sizeof *wgt);
    snapshot *s = calloc(1, sizeof *s);
    double *acc = calloc(a->n, sizeof *acc);
    float *params = malloc(a->n * sizeof *params);
    size_t k = 0;
    for (size_t i = 0; i < a->n_workers; i++)
        if (a->w[i].reported && rep)
            rep[k++] = &a->w[i];
    if (!rep || !wgt || !s || !acc || !params) {
        free(rep);
        free(wgt);
        free(s);
        free(acc);
        free(params);
        for (size_t i = 0; i < a->n_workers; i++) {
            worker *w = &a->w[i];
            if (!w->reported)
                continue;
            queue(a, o, w->waiter, SIAM_RPC_RESOURCE_EXHAUSTED,
                  "the server ran out of memory averaging this round; the update was dropped", 0, 0,
                  0);
            w->reported = 0;
            w->pending--;
            free(w->report);
            w->report = NULL;
        }
        a->reports = 0;
        a->max_base = 0;
        return;
    }
    qsort(rep, k, sizeof *rep, by_id);
    double t_avg = siam_now();
    /* the weights: each at most SIAM_AVERAGING_MAX_SAMPLES (submit refuses more), capped at
     * SIAM_AVERAGING_WEIGHT_CAP x the lower median; so the total is at most 2^42 for 1024
     * workers: no wrap, and exact in a double */
    for (size_t r = 0; r < k; r++)
        wgt[r] = rep[r]->samples;
    qsort(wgt, k, sizeof *wgt, by_value);
    uint64_t cap = wgt[(k - 1) / 2] * SIAM_AVERAGING_WEIGHT_CAP;
    uint64_t total = 0;
    for (size_t r = 0; r < k; r++) {
        wgt[r] = rep[r]->samples < cap ? rep[r]->samples : cap;
        if (wgt[r] < rep[r]->samples)
            LOG_WARN(COMPONENT,
                     "worker %s reported %llu samples, more than %d x the round's median (%llu): "
                     "its weight is capped at %llu",
                     rep[r]->id, (unsigned long long)rep[r]->samples, SIAM_AVERAGING_WEIGHT_CAP,
                     (unsigned long long)(cap / SIAM_AVERAGING_WEIGHT_CAP),
                     (unsigned long long)cap);
        total += wgt[r];
    }
    for (size_t r = 0; r < k; r++) {
        const float *p = rep[r]->report;
        double w = (double)wgt[r];
        for (size_t j = 0; j < a->n; j++)
            acc[j] += w * (double)p[j];
    }
    for (size_t j = 0; j < a->n; j++)
        params[j] = (float)(acc[j] / (double)total);
    t_avg = siam_now() - t_avg;
    free(acc);
    size_t bad = first_non_finite(params, a->n);
    if (bad < a->n) {
        /* finite reports with bounded weights cannot get here (a mean lies between its
         * values); a report that skipped validation can, and must not reach the workers, the
         * checkpoint or Similarity */
        char names[512] = "";
        size_t off = 0;
        for (size_t r = 0; r < k && off < sizeof names; r++)
            off += (size_t)snprintf(names + off, sizeof names - off, "%s%s (%llu samples)",
                                    r ? ", " : "", rep[r]->id, (unsigned long long)wgt[r]);
        LOG_ERROR(COMPONENT,
                  "round %llu not closed: its mean is not finite (parameter %zu is %g) from %s; "
                  "the global model stays round %llu and the reporters get it back unaveraged",
                  (unsigned long long)a->round + 1, bad, (double)params[bad], names,
                  (unsigned long long)a->round);
        free(rep);
        free(wgt);
        free(s);
        free(params);
        drop_round(a, o);
        return;
    }
    s->params = params;
    s->refs = 1;
    snap_release(a, a->global);
    a->global = s;
    /* after a restart from an older checkpoint the workers may be ahead of the server: the
     * numbering goes on from theirs, so that no worker sees its round number go backwards */
    if (a->max_base > a->round) {
        LOG_INFO(COMPONENT,
                 "the workers were at round %llu, the server at %llu: it goes on from "
                 "theirs",
                 (unsigned long long)a->max_base, (unsigned long long)a->round);
        a->round = a->max_base;
    }
    a->round++;
    a->version++;
    a->last_workers = (uint32_t)k;
    a->last_samples = total;

    char names[512] = "", missing[512] = "";
    size_t off = 0;
    for (size_t r = 0; r < k && off < sizeof names; r++)
        off += (size_t)snprintf(names + off, sizeof names - off, "%s%s", r ? ", " : "", rep[r]->id);
    off = 0;
    for (size_t i = 0; i < a->n_workers && off < sizeof missing; i++) {
        worker *w = &a->w[i];
        if (!w->reported && is_live(a, w, now))
            off += (size_t)snprintf(missing + off, sizeof missing - off, "%s%s", off ? ", " : "",
                                    w->id);
    }
    LOG_INFO(COMPONENT,
             "round %llu closed%s: %zu worker(s) (%s), %llu samples, waited %.2f s%s%s, "
             "averaged in %.2f ms, params_crc32=%08x",
             (unsigned long long)a->round, timed_out ? " after the sync timeout" : "", k, names,
             (unsigned long long)total, now - a->opened, missing[0] ? "; missing: " : "", missing,
             t_avg * 1e3, siam_params_crc32(params, a->n));
    for (size_t r = 0; r < k; r++) {
        worker *w = rep[r];
        queue(a, o, w->waiter, SIAM_RPC_OK, NULL, 0, (uint32_t)k, total);
        w->last_round = a->round;
        w->last_crc = siam_params_crc32(w->report, a->n);
        w->last_samples = w->samples;
        w->last_base = w->base;
        w->reported = 0;
        w->pending--;
        free(w->report);
        w->report = NULL;
        w->waiter = NULL;
    }
    free(rep);
    free(wgt);
    a->reports = 0;
    a->max_base = 0;
}

/* Closes the open round if every live worker has reported or its deadline has passed. While
 * fewer than min_workers have joined (only after a restart: reports then join their workers)
 * the round also waits, until its deadline, for the others to come back. */
static void maybe_close(siam_averaging *a, outbox *o, double now) {
    if (a->reports == 0)
        return;
    int timed_out = now >= a->opened + a->cfg.sync_timeout;
    int complete = a->quorum || a->joined >= a->cfg.min_workers;
    for (size_t i = 0; i < a->n_workers && complete; i++)
        if (!a->w[i].reported && is_live(a, &a->w[i], now))
            complete = 0;
    if (complete || timed_out)
        close_round(a, o, timed_out && !complete, now);
}

/* ---- the timer thread: closes rounds at their deadline ----------------------------------- */

static void deliver(siam_averaging *a, outbox *o, uint64_t round_before);

static void *timer_main(void *arg) {
    siam_averaging *a = arg;
    pthread_mutex_lock(&a->lock);
    while (!a->stop) {
        if (a->reports == 0) {
            pthread_cond_wait(&a->cond, &a->lock);
            continue;
        }
        double deadline = a->opened + a->cfg.sync_timeout;
        /* also wake every second: a worker whose join grace ran out may complete the round */
        double wake = siam_now() + 1.0;
        if (deadline < wake)
            wake = deadline;
        struct timespec ts; /* a->cond waits on CLOCK_MONOTONIC: a clock step cannot move it */
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double secs = wake - siam_now();
        if (secs < 0)
            secs = 0;
        ts.tv_sec += (time_t)secs;
        ts.tv_nsec += (long)((secs - (double)(time_t)secs) * 1e9);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&a->cond, &a->lock, &ts);
        if (a->stop)
            break;
        outbox o = {0};
        uint64_t before = a->round;
        maybe_close(a, &o, siam_now());
        pthread_mutex_unlock(&a->lock);
        deliver(a, &o, before);
        pthread_mutex_lock(&a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

/* Sends the outbox, then runs on_round if a round closed (lock NOT held). */
static void deliver(siam_averaging *a, outbox *o, uint64_t round_before) {
    snapshot *snap = NULL;
    uint64_t round = 0;
    uint32_t workers = 0;
    uint64_t samples = 0;
    if (a->cfg.on_round) {
        pthread_mutex_lock(&a->lock);
        if (a->round != round_before && a->global) {
            snap = a->global;
            snap->refs++;
            round = a->round;
            for (size_t i = 0; i < o->n; i++)
                if (o->v[i].code == SIAM_RPC_OK && !o->v[i].late && o->v[i].round == round) {
                    workers = o->v[i].workers;
                    samples = o->v[i].samples;
                    break;
                }
        }
        pthread_mutex_unlock(&a->lock);
    }
    flush(a, o);
    if (snap) {
        siam_averaging_answer ans;
        memset(&ans, 0, sizeof ans);
        ans.round = round;
        ans.spec = a->spec;
        ans.params = snap->params;
        ans.n_params = a->n;
        ans.workers = workers;
        ans.samples = samples;
        a->cfg.on_round(a->cfg.round_ctx, &ans);
        pthread_mutex_lock(&a->lock);
        snap_release(a, snap);
        pthread_mutex_unlock(&a->lock);
    }
}

/* ---- public API -------------------------------------------------------------------------- */

int siam_averaging_create(siam_averaging **out, const siam_averaging_config *cfg, siam_error *err) {
    *out = NULL;
    if (!cfg || !cfg->reply)
        return siam_error_set(err, SIAM_ERR_ARG, "averaging needs a reply function");
    if (cfg->min_workers < 1)
        return siam_error_set(err, SIAM_ERR_ARG, "min_workers is %d, expected at least 1",
                              cfg->min_workers);
    if (!(cfg->sync_timeout > 0))
        return siam_error_set(err, SIAM_ERR_ARG, "sync timeout is %g s, expected > 0",
                              cfg->sync_timeout);
    siam_averaging *a = calloc(1, sizeof *a);
    if (!a)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
    a->cfg = *cfg;
    a->expiry = 10 * cfg->sync_timeout > SIAM_AVERAGING_DEFAULT_EXPIRY
                    ? 10 * cfg->sync_timeout
                    : SIAM_AVERAGING_DEFAULT_EXPIRY;
    pthread_mutex_init(&a->lock, NULL);
    /* round deadlines are siam_now() (monotonic) times: the timed wait must use that clock,
     * or setting the wall clock back would stretch a round's deadline by as much */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&a->timer, NULL, timer_main, a)) {
        siam_averaging_free(a);
        return siam_error_set(err, SIAM_ERR_NOMEM, "cannot start the averaging timer thread");
    }
    a->timer_started = 1;
    *out = a;
    return SIAM_OK;
}

void siam_averaging_shutdown(siam_averaging *a) {
    outbox o = {0};
    pthread_mutex_lock(&a->lock);
    a->shut = 1;
    const char *msg = "the server is shutting down; the update was not averaged";
    for (size_t i = 0; i < a->n_workers; i++) {
        worker *w = &a->w[i];
        if (w->reported) {
            queue(a, &o, w->waiter, SIAM_RPC_UNAVAILABLE, msg, 0, 0, 0);
            w->reported = 0;
            w->pending--;
            free(w->report);
            w->report = NULL;
        }
    }
    a->reports = 0;
    a->max_base = 0;
    for (size_t i = 0; i < a->n_join_waiters; i++) {
        queue(a, &o, a->join_waiters[i].waiter, SIAM_RPC_UNAVAILABLE, msg, 0, 0, 0);
        a->w[a->join_waiters[i].worker].pending--;
    }
    a->n_join_waiters = 0;
    pthread_mutex_unlock(&a->lock);
    flush(a, &o);
}

void siam_averaging_free(siam_averaging *a) {
    if (!a)
        return;
    siam_averaging_shutdown(a);
    if (a->timer_started) {
        pthread_mutex_lock(&a->lock);
        a->stop = 1;
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
        pthread_join(a->timer, NULL);
    }
    for (size_t i = 0; i < a->n_workers; i++) {
        free(a->w[i].id);
        free(a->w[i].report);
    }
    free(a->w);
    free(a->join_waiters);
    snap_release(a, a->global);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond);
    free(a);
}

int siam_averaging_set_model(siam_averaging *a, const char *spec, const float *params, size_t n,
                             uint64_t round, siam_error *err) {
    if (!spec || strlen(spec) >= SIAM_SPEC_MAX || !params || n == 0)
        return siam_error_set(err, SIAM_ERR_ARG, "a global model needs a spec and parameters");
    size_t bad = first_non_finite(params, n);
    if (bad < n) /* it would be sent to every worker and make every distance NaN or 0 */
        return siam_error_set(err, SIAM_ERR_ARG,
                              "parameter %zu of %zu is %g: a global model must be finite", bad, n,
                              (double)params[bad]);
    pthread_mutex_lock(&a->lock);
    if (a->has_model) {
        int same = strcmp(a->spec, spec) == 0 && a->n == n;
        char have[SIAM_SPEC_MAX];
        snprintf(have, sizeof have, "%s", a->spec);
        pthread_mutex_unlock(&a->lock);
        return same ? SIAM_OK
                    : siam_error_set(err, SIAM_ERR_MISMATCH,
                                     "model spec mismatch: the server's global model is '%s', "
                                     "this one is '%s'",
                                     have, spec);
    }
    snapshot *s = calloc(1, sizeof *s);
    float *p = malloc(n * sizeof *p);
    if (!s || !p) {
        pthread_mutex_unlock(&a->lock);
        free(s);
        free(p);
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for the global model");
    }
    memcpy(p, params, n * sizeof *p);
    s->params = p;
    s->refs = 1;
    a->global = s;
    a->has_model = 1;
    snprintf(a->spec, sizeof a->spec, "%s", spec);
    a->n = n;
    a->round = round;
    a->version++;
    pthread_mutex_unlock(&a->lock);
    return SIAM_OK;
}

int siam_averaging_has_model(siam_averaging *a) {
    pthread_mutex_lock(&a->lock);
    int r = a->has_model;
    pthread_mutex_unlock(&a->lock);
    return r;
}

/* u is the report w has in the open round, sent again (same samples, base round and bytes). */
static int same_report(const siam_averaging *a, const worker *w, const siam_averaging_update *u) {
    return w->reported && w->samples == u->samples && w->base == u->base_round &&
           memcmp(w->report, u->params, a->n * sizeof *w->report) == 0;
}

void siam_averaging_submit(siam_averaging *a, const siam_averaging_update *u, void *waiter) {
    outbox o = {0};
    char msg[SIAM_ERROR_MSG_MAX];
    double now = siam_now();
    pthread_mutex_lock(&a->lock);
    uint64_t before = a->round;
    int code = SIAM_RPC_OK, full = 0;
    worker *w = NULL;
    if (a->shut) {
        code = SIAM_RPC_UNAVAILABLE;
        snprintf(msg, sizeof msg, "the server is shutting down; the update was not averaged");
    } else if (!a->has_model) {
        code = SIAM_RPC_FAILED_PRECONDITION;
        snprintf(msg, sizeof msg, "the server has no global model yet");
    } else if (strcmp(u->spec, a->spec) != 0) {
        code = SIAM_RPC_FAILED_PRECONDITION;
        snprintf(msg, sizeof msg,
                 "model spec mismatch: worker %.48s trains '%.128s' but the server's global model "
                 "is '%.128s'; start the worker with the server's model (--model) or the server "
                 "without --model/--resume",
                 u->worker, u->spec, a->spec);
    } else if (u->n_params != a->n) {
        code = SIAM_RPC_INVALID_ARGUMENT;
        snprintf(msg, sizeof msg, "params has %zu floats, expected %zu for model '%.300s'",
                 u->n_params, a->n, a->spec);
    } else if (u->samples > SIAM_AVERAGING_MAX_SAMPLES) {
        code = SIAM_RPC_INVALID_ARGUMENT;
        snprintf(msg, sizeof msg,
                 "samples is %llu, expected at most %llu (the pairs trained since the last "
                 "sync)",
                 (unsigned long long)u->samples, (unsigned long long)SIAM_AVERAGING_MAX_SAMPLES);
    } else if (!(w = find_or_add(a, u->worker, now, &full)) && full) {
        /* a bound on the server's memory for callers that invent names */
        code = SIAM_RPC_RESOURCE_EXHAUSTED;
        snprintf(msg, sizeof msg,
                 "this server averages at most %d distinct workers and knows %zu; worker %s is "
                 "one too many (workers not seen for %g s are forgotten)",
                 SIAM_AVERAGING_MAX_WORKERS, a->n_workers, u->worker, a->expiry);
    } else if (!w) {
        code = SIAM_RPC_RESOURCE_EXHAUSTED;
        snprintf(msg, sizeof msg, "out of memory for worker %s", u->worker);
    } else if (u->samples > 0 && w->reported && !same_report(a, w, u)) {
        code = SIAM_RPC_ALREADY_EXISTS;
        snprintf(msg, sizeof msg,
                 "worker %s already has an update in round %llu: every worker needs its own "
                 "--worker-id",
                 u->worker, (unsigned long long)a->round + 1);
    }
    if (code != SIAM_RPC_OK) {
        queue(a, &o, waiter, code, msg, 0, 0, 0);
        pthread_mutex_unlock(&a->lock);
        flush(a, &o);
        return;
    }
    w->last_seen = now;

    prune_gone_joins(a, &o); /* before this join is counted with the others */
    if (!w->joined) {
        w->joined = 1;
        w->join_time = now;
        w->had_stream = w->streams > 0;
        a->joined++;
        char wait[128];
        waiting_text(a, wait, sizeof wait);
        LOG_INFO(COMPONENT, "worker %s joined at round %llu%s (%d of %d needed)%s%s", w->id,
                 (unsigned long long)a->round,
                 u->samples > 0 ? " with an update (it trained with an earlier server)" : "",
                 a->joined, a->cfg.min_workers, wait[0] ? "; " : "", wait);
        if (a->joined >= a->cfg.min_workers)
            a->quorum = 1; /* joins no longer wait, even when workers are forgotten later */
        if (a->joined == a->cfg.min_workers && a->n_join_waiters > 0) {
            for (size_t i = 0; i < a->n_join_waiters; i++) {
                queue(a, &o, a->join_waiters[i].waiter, SIAM_RPC_OK, NULL, 0, 0, 0);
                a->w[a->join_waiters[i].worker].pending--;
            }
            a->n_join_waiters = 0;
        }
    }

    if (u->samples == 0) { /* join: the current global model, once enough workers joined */
        if (a->quorum) {
            queue(a, &o, waiter, SIAM_RPC_OK, NULL, 0, 0, 0);
        } else {
            if (a->n_join_waiters == a->cap_join_waiters) {
                size_t cap = a->cap_join_waiters ? 2 * a->cap_join_waiters : 8;
                struct join_waiter *v = realloc(a->join_waiters, cap * sizeof *v);
                if (!v) {
                    queue(a, &o, waiter, SIAM_RPC_RESOURCE_EXHAUSTED,
                          "out of memory queueing the join", 0, 0, 0);
                    pthread_mutex_unlock(&a->lock);
                    flush(a, &o);
                    return;
                }
                a->join_waiters = v;
                a->cap_join_waiters = cap;
            }
            a->join_waiters[a->n_join_waiters].waiter = waiter;
            a->join_waiters[a->n_join_waiters++].worker = (size_t)(w - a->w);
            w->pending++;
        }
    } else if (w->reported) { /* the same report again: the worker retried, the call goes on */
        LOG_INFO(COMPONENT,
                 "%s sent its update (based on round %llu) again: it replaces the first call",
                 w->id, (unsigned long long)u->base_round);
        queue(a, &o, w->waiter, SIAM_RPC_ABORTED,
              "superseded: the worker sent the same update again on another call", 0, 0, 0);
        w->waiter = waiter;
    } else if (u->base_round < a->round && w->last_round == a->round &&
               w->last_samples == u->samples && w->last_base == u->base_round &&
               w->last_crc == siam_params_crc32(u->params, a->n)) {
        /* sent again after its round closed (the answer was lost): answered as the first was */
        LOG_INFO(COMPONENT,
                 "%s sent its update again after round %llu closed with it: answered "
                 "again",
                 w->id, (unsigned long long)a->round);
        queue(a, &o, waiter, SIAM_RPC_OK, NULL, 0, a->last_workers, a->last_samples);
    } else if (u->base_round < a->round) { /* late: its round closed without it */
        LOG_INFO(COMPONENT,
                 "late update from %s (based on round %llu, now %llu): not averaged; it gets "
                 "round %llu",
                 w->id, (unsigned long long)u->base_round, (unsigned long long)a->round,
                 (unsigned long long)a->round);
        queue(a, &o, waiter, SIAM_RPC_OK, NULL, 1, 0, 0);
    } else {
        w->report = malloc(a->n * sizeof *w->report);
        if (!w->report) {
            queue(a, &o, waiter, SIAM_RPC_RESOURCE_EXHAUSTED,
                  "out of memory for the update; it was not averaged", 0, 0, 0);
        } else {
            memcpy(w->report, u->params, a->n * sizeof *w->report);
            w->samples = u->samples;
            w->base = u->base_round;
            if (u->base_round > a->max_base)
                a->max_base = u->base_round;
            w->waiter = waiter;
            w->reported = 1;
            w->pending++;
            if (a->reports++ == 0) {
                a->opened = now;
                pthread_cond_broadcast(&a->cond); /* the timer learns the deadline */
            }
            maybe_close(a, &o, now);
        }
    }
    pthread_mutex_unlock(&a->lock);
    deliver(a, &o, before);
}

void siam_averaging_stream(siam_averaging *a, const char *worker_id, int delta) {
    outbox o = {0};
    pthread_mutex_lock(&a->lock);
    uint64_t before = a->round;
    double now = siam_now();
    int full = 0;
    worker *w = delta > 0 ? find_or_add(a, worker_id, now, &full) : find_worker(a, worker_id);
    if (w) {
        w->last_seen = now;
        w->streams += delta;
        if (w->streams < 0)
            w->streams = 0;
        if (delta > 0)
            w->had_stream = 1;
        else /* a worker gone may have been the one the open round waited for */
            maybe_close(a, &o, now);
    }
    pthread_mutex_unlock(&a->lock);
    deliver(a, &o, before);
}

void siam_averaging_get_info(siam_averaging *a, siam_averaging_info *out) {
    memset(out, 0, sizeof *out);
    outbox o = {0};
    pthread_mutex_lock(&a->lock);
    prune_gone_joins(a, &o); /* Status counts only joins whose callers still wait */
    out->has_model = a->has_model;
    snprintf(out->spec, sizeof out->spec, "%s", a->has_model ? a->spec : "");
    out->n_params = a->n;
    out->round = a->round;
    out->version = a->version;
    out->min_workers = a->cfg.min_workers;
    out->joined = a->joined;
    out->sync_timeout = a->cfg.sync_timeout;
    out->expiry = a->expiry;
    out->known = a->n_workers;
    waiting_text(a, out->waiting, sizeof out->waiting);
    pthread_mutex_unlock(&a->lock);
    flush(a, &o);
}

int siam_averaging_worker(siam_averaging *a, const char *worker_id, int *live,
                          uint64_t *last_round) {
    *live = 0;
    *last_round = 0;
    pthread_mutex_lock(&a->lock);
    worker *w = find_worker(a, worker_id);
    int found = w && w->joined;
    if (found) {
        *live = is_live(a, w, siam_now());
        *last_round = w->last_round;
    }
    pthread_mutex_unlock(&a->lock);
    return found;
}

int siam_averaging_copy(siam_averaging *a, float *dst, size_t n, uint64_t *round, uint64_t *version,
                        siam_error *err) {
    pthread_mutex_lock(&a->lock);
    if (!a->has_model || n != a->n) {
        size_t have = a->n;
        int has = a->has_model;
        pthread_mutex_unlock(&a->lock);
        return has ? siam_error_set(err, SIAM_ERR_ARG,
                                    "the global model has %zu parameters, not %zu", have, n)
                   : siam_error_set(err, SIAM_ERR_ARG, "the server has no global model yet");
    }
    memcpy(dst, a->global->params, n * sizeof *dst);
    if (round)
        *round = a->round;
    if (version)
        *version = a->version;
    pthread_mutex_unlock(&a->lock);
    return SIAM_OK;
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
