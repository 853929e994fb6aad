/* siam_averaging: the global model and FedAvg rounds (see the header for the rules).
 * This file: create/shutdown/free, the global model, info, the outbox and the timer thread; the
 * worker table is in siam_averaging_workers.c, submit and rounds in siam_averaging_round.c. */
#include "siam_averaging_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "siam_log.h"
#include "siam_rpc.h"

/* ---- small helpers (lock held) ----------------------------------------------------------- */

void avg_snap_release(siam_averaging *a, snapshot *s) {
    (void)a;
    if (s && --s->refs == 0) {
        free(s->params);
        free(s);
    }
}

/* Queues an answer; on allocation failure the waiter is answered with what fits: the outbox
 * grows by doubling and starts with room, so this only fails when memory is gone entirely. */
void avg_queue(siam_averaging *a, outbox *o, void *waiter, int code, const char *msg, int late,
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
void avg_flush(siam_averaging *a, outbox *o) {
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
        avg_snap_release(a, o->v[i].snap);
    pthread_mutex_unlock(&a->lock);
    free(o->v);
    o->v = NULL;
    o->n = o->cap = 0;
}

/* ---- the timer thread: closes rounds at their deadline ----------------------------------- */

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
        avg_maybe_close(a, &o, siam_now());
        pthread_mutex_unlock(&a->lock);
        avg_deliver(a, &o, before);
        pthread_mutex_lock(&a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

/* Sends the outbox, then runs on_round if a round closed (lock NOT held). */
void avg_deliver(siam_averaging *a, outbox *o, uint64_t round_before) {
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
    avg_flush(a, o);
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
        avg_snap_release(a, snap);
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
            avg_queue(a, &o, w->waiter, SIAM_RPC_UNAVAILABLE, msg, 0, 0, 0);
            w->reported = 0;
            w->pending--;
            free(w->report);
            w->report = NULL;
        }
    }
    a->reports = 0;
    a->max_base = 0;
    for (size_t i = 0; i < a->n_join_waiters; i++) {
        avg_queue(a, &o, a->join_waiters[i].waiter, SIAM_RPC_UNAVAILABLE, msg, 0, 0, 0);
        a->w[a->join_waiters[i].worker].pending--;
    }
    a->n_join_waiters = 0;
    pthread_mutex_unlock(&a->lock);
    avg_flush(a, &o);
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
    avg_snap_release(a, a->global);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond);
    free(a);
}

int siam_averaging_set_model(siam_averaging *a, const char *spec, const float *params, size_t n,
                             uint64_t round, siam_error *err) {
    if (!spec || strlen(spec) >= SIAM_SPEC_MAX || !params || n == 0)
        return siam_error_set(err, SIAM_ERR_ARG, "a global model needs a spec and parameters");
    size_t bad = avg_first_non_finite(params, n);
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

void siam_averaging_get_info(siam_averaging *a, siam_averaging_info *out) {
    memset(out, 0, sizeof *out);
    outbox o = {0};
    pthread_mutex_lock(&a->lock);
    avg_prune_gone_joins(a, &o); /* Status counts only joins whose callers still wait */
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
    avg_waiting_text(a, out->waiting, sizeof out->waiting);
    pthread_mutex_unlock(&a->lock);
    avg_flush(a, &o);
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
