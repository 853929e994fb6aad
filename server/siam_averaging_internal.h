/* siam_averaging_internal: the averaging struct and shared helpers, private to its .c files. */
#ifndef SIAM_AVERAGING_INTERNAL_H
#define SIAM_AVERAGING_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "siam_averaging.h"

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

/* ---- siam_averaging.c: the outbox (answers sent once the lock is released) ---- */

void avg_snap_release(siam_averaging *a, snapshot *s);
void avg_queue(siam_averaging *a, outbox *o, void *waiter, int code, const char *msg, int late,
               uint32_t workers, uint64_t samples);
void avg_flush(siam_averaging *a, outbox *o);
void avg_deliver(siam_averaging *a, outbox *o, uint64_t round_before);

/* ---- siam_averaging_workers.c: the worker table, liveness, joins (lock held) ---- */

worker *avg_find_worker(siam_averaging *a, const char *id);
worker *avg_find_or_add(siam_averaging *a, const char *id, double now, int *full);
int avg_is_live(const siam_averaging *a, const worker *w, double now);
void avg_waiting_text(const siam_averaging *a, char *out, size_t cap);
void avg_prune_gone_joins(siam_averaging *a, outbox *o);

/* ---- siam_averaging_round.c: closing rounds (lock held) ---- */

size_t avg_first_non_finite(const float *p, size_t n);
void avg_maybe_close(siam_averaging *a, outbox *o, double now);

#endif
