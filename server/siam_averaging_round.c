/* siam_averaging_round: submit (joins, reports, late updates) and closing rounds (the mean). */
#include "siam_averaging_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_log.h"
#include "siam_rpc.h"

static int by_id(const void *x, const void *y) {
    return strcmp((*(worker *const *)x)->id, (*(worker *const *)y)->id);
}

static int by_value(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

/* Index of the first parameter that is NaN or infinite, n when all are finite. */
size_t avg_first_non_finite(const float *p, size_t n) {
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
        avg_queue(a, o, w->waiter, SIAM_RPC_OK, NULL, 1, 0, 0);
        w->reported = 0;
        w->pending--;
        free(w->report);
        w->report = NULL;
        w->waiter = NULL;
    }
    a->reports = 0;
    a->max_base = 0;
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
            avg_queue(a, o, w->waiter, SIAM_RPC_RESOURCE_EXHAUSTED,
                      "the server ran out of memory averaging this round; the update was dropped",
                      0, 0, 0);
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
    size_t bad = avg_first_non_finite(params, a->n);
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
    avg_snap_release(a, a->global);
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
        if (!w->reported && avg_is_live(a, w, now))
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
        avg_queue(a, o, w->waiter, SIAM_RPC_OK, NULL, 0, (uint32_t)k, total);
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
void avg_maybe_close(siam_averaging *a, outbox *o, double now) {
    if (a->reports == 0)
        return;
    int timed_out = now >= a->opened + a->cfg.sync_timeout;
    int complete = a->quorum || a->joined >= a->cfg.min_workers;
    for (size_t i = 0; i < a->n_workers && complete; i++)
        if (!a->w[i].reported && avg_is_live(a, &a->w[i], now))
            complete = 0;
    if (complete || timed_out)
        close_round(a, o, timed_out && !complete, now);
}

/* ---- submit ---------------------------------------------------------------------------- */

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
    } else if (!(w = avg_find_or_add(a, u->worker, now, &full)) && full) {
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
        avg_queue(a, &o, waiter, code, msg, 0, 0, 0);
        pthread_mutex_unlock(&a->lock);
        avg_flush(a, &o);
        return;
    }
    w->last_seen = now;

    avg_prune_gone_joins(a, &o); /* before this join is counted with the others */
    if (!w->joined) {
        w->joined = 1;
        w->join_time = now;
        w->had_stream = w->streams > 0;
        a->joined++;
        char wait[128];
        avg_waiting_text(a, wait, sizeof wait);
        LOG_INFO(COMPONENT, "worker %s joined at round %llu%s (%d of %d needed)%s%s", w->id,
                 (unsigned long long)a->round,
                 u->samples > 0 ? " with an update (it trained with an earlier server)" : "",
                 a->joined, a->cfg.min_workers, wait[0] ? "; " : "", wait);
        if (a->joined >= a->cfg.min_workers)
            a->quorum = 1; /* joins no longer wait, even when workers are forgotten later */
        if (a->joined == a->cfg.min_workers && a->n_join_waiters > 0) {
            for (size_t i = 0; i < a->n_join_waiters; i++) {
                avg_queue(a, &o, a->join_waiters[i].waiter, SIAM_RPC_OK, NULL, 0, 0, 0);
                a->w[a->join_waiters[i].worker].pending--;
            }
            a->n_join_waiters = 0;
        }
    }

    if (u->samples == 0) { /* join: the current global model, once enough workers joined */
        if (a->quorum) {
            avg_queue(a, &o, waiter, SIAM_RPC_OK, NULL, 0, 0, 0);
        } else {
            if (a->n_join_waiters == a->cap_join_waiters) {
                size_t cap = a->cap_join_waiters ? 2 * a->cap_join_waiters : 8;
                struct join_waiter *v = realloc(a->join_waiters, cap * sizeof *v);
                if (!v) {
                    avg_queue(a, &o, waiter, SIAM_RPC_RESOURCE_EXHAUSTED,
                              "out of memory queueing the join", 0, 0, 0);
                    pthread_mutex_unlock(&a->lock);
                    avg_flush(a, &o);
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
        avg_queue(a, &o, w->waiter, SIAM_RPC_ABORTED,
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
        avg_queue(a, &o, waiter, SIAM_RPC_OK, NULL, 0, a->last_workers, a->last_samples);
    } else if (u->base_round < a->round) { /* late: its round closed without it */
        LOG_INFO(COMPONENT,
                 "late update from %s (based on round %llu, now %llu): not averaged; it gets "
                 "round %llu",
                 w->id, (unsigned long long)u->base_round, (unsigned long long)a->round,
                 (unsigned long long)a->round);
        avg_queue(a, &o, waiter, SIAM_RPC_OK, NULL, 1, 0, 0);
    } else {
        w->report = malloc(a->n * sizeof *w->report);
        if (!w->report) {
            avg_queue(a, &o, waiter, SIAM_RPC_RESOURCE_EXHAUSTED,
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
            avg_maybe_close(a, &o, now);
        }
    }
    pthread_mutex_unlock(&a->lock);
    avg_deliver(a, &o, before);
}
