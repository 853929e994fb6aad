/* siam_averaging: the server's global model and its federated-averaging rounds (FedAvg).
 *
 * Workers call submit() with their parameters. samples == 0 *joins*: the answer is the current
 * global model, sent once min_workers distinct workers have joined (until then the join waits,
 * and the log and info() say "waiting for 1 more worker (1 of 2)"). samples > 0 *reports* into
 * the open round; the round closes when every live worker has reported, or sync_timeout seconds
 * after its first report, with whoever reported. The new global parameters are the
 * samples-weighted mean of the reports (accumulated in double, in worker-name order, so the
 * result does not depend on arrival order), and every reporter is answered with them. Weights
 * are at most SIAM_AVERAGING_MAX_SAMPLES per report (INVALID_ARGUMENT above) and are capped at
 * SIAM_AVERAGING_WEIGHT_CAP x the round's median weight (the answer's samples is the sum of the
 * weights used). A mean that is not finite is never published: the round ends without a new
 * model, every reporter is answered with the previous global model marked late (its update
 * was not averaged), and an error is logged. A report
 * based on an older round than the newest (the worker missed a round) is late: it is not
 * averaged and is answered at once with the newest global parameters.
 *
 * Restarts and retries. A restarted server (--resume) knows its checkpoint's round and no
 * workers; workers that retry come back with reports. The rules:
 *  - A report from a worker this server has not seen joins it first (it counts towards
 *    min_workers and releases waiting joins), then is a report like any other.
 *  - A report whose base round is at or AHEAD of the server's round (the checkpoint is older
 *    than the last round the workers adopted) is averaged into the open round. When the round
 *    closes, its number is one more than the highest of the server's round and the reports'
 *    base rounds, so round numbers never go backwards for a worker.
 *  - While fewer than min_workers workers have joined, which after the start happens only
 *    after a restart, a round does not close when its reporters are all the live workers: it
 *    waits, until its sync timeout, for the others to come back. It never waits longer, so a
 *    worker that does not come back cannot block the rest.
 *  - A worker that sends the same report again (same samples, base round and parameter bytes:
 *    its call failed and it retried) while the first is still waiting in the open round takes
 *    the first call's place: the first call is answered ABORTED, the report counts once. A
 *    different report under the same name is ALREADY_EXISTS (two workers share a name). The
 *    same report sent again after its round closed with it (the answer was lost) is answered
 *    like the first, not late; after a restart the server cannot recognise it, and it is late.
 *
 * A join counts towards min_workers only while its caller waits: before a join is counted
 * (another worker joins) and in get_info, joins whose callers have gone (cfg.gone) are answered
 * CANCELLED and their workers are no longer joined, unless another call of theirs is here.
 * So a caller that gave up cannot release the others early.
 *
 * Liveness is judged by calls, not by idle time: a joined worker is live while it has a Train
 * stream open (stream() counts them) or a call waiting here, and for sync_timeout seconds after
 * joining before its first stream. A worker that is computing for a long time is therefore live;
 * one whose process died is not (its stream ends), and one that hangs holds a round at most
 * sync_timeout seconds.
 *
 * Answers go through cfg.reply, outside the lock, from the thread that submitted or closed the
 * round (a timer thread closes rounds at their deadline). Thread-safe. */
#ifndef SIAM_AVERAGING_H
#define SIAM_AVERAGING_H

#include <stddef.h>
#include <stdint.h>

#include "siam_checkpoint.h"
#include "siam_error.h"

/* Distinct worker names the averaging keeps (joined, reported or streaming): beyond, a new name
 * is RESOURCE_EXHAUSTED. Names quiet for the expiry time (no call waiting, no Train stream, no
 * report in the open round, not live, not seen for siam_averaging_expiry seconds; default
 * max(10 x sync_timeout, SIAM_AVERAGING_DEFAULT_EXPIRY)) are forgotten when a new name comes,
 * so invented names cannot lock real workers out for longer than that. The table's fill is
 * logged at 50/75/90/100 % and refused names once per 5 s with a count. A forgotten worker that
 * comes back is new, as after a restart. */
#define SIAM_AVERAGING_MAX_WORKERS    1024
#define SIAM_AVERAGING_DEFAULT_EXPIRY 600.0

/* Largest samples (averaging weight) one report may carry: INVALID_ARGUMENT above. A report's
 * samples are the pairs the worker trained since it last synced; 2^32 of them is days of
 * training at the fastest rate a worker reaches, so a larger value is a bug or an attack. The
 * bound also keeps the arithmetic exact: SIAM_AVERAGING_MAX_WORKERS reports of at most 2^32
 * sum to at most 2^42, far from wrapping a uint64 and exact in a double (2^53). */
#define SIAM_AVERAGING_MAX_SAMPLES (UINT64_C(1) << 32)

/* A report's weight in the mean is capped at this many times the median weight of its round
 * (the lower median for an even count), with a warning naming the worker: one worker that
 * claims far more samples than its peers does not silently become the whole average. Workers
 * that sync every K steps report about K x batch pairs each, so honest weights differ by the
 * ratio of batch sizes, well below 10. */
#define SIAM_AVERAGING_WEIGHT_CAP 10

typedef struct siam_averaging siam_averaging;

/* What a waiter is told. params stay valid only during the callback. */
typedef struct {
    int code; /* SIAM_RPC_OK or a gRPC status code */
    char msg[SIAM_ERROR_MSG_MAX];
    uint64_t round; /* the round these parameters close */
    const char *spec;
    const float *params;
    size_t n_params;
    uint32_t workers; /* averaged in that round */
    uint64_t samples;
    int late; /* the waiter's update came after its round closed and was not averaged */
} siam_averaging_answer;

typedef void (*siam_averaging_reply_fn)(void *waiter, const siam_averaging_answer *a);

typedef struct {
    int min_workers;     /* >= 1 */
    double sync_timeout; /* seconds, > 0 */
    siam_averaging_reply_fn reply;
    /* after every closed round (e.g. to checkpoint), outside the lock; may be NULL */
    void (*on_round)(void *ctx, const siam_averaging_answer *a);
    void *round_ctx;
    /* 1 when the caller of a waiting call has gone (siam-server: siam_rpc_reply_cancelled), so
     * that a join whose caller gave up does not count towards min_workers; may be NULL (every
     * caller counts). Called under the averaging's lock: it must not call back in here. */
    int (*gone)(void *waiter);
} siam_averaging_config;

typedef struct {
    const char *worker; /* unique per worker process */
    const char *spec;
    const float *params; /* copied */
    size_t n_params;
    uint64_t samples;    /* 0 = join */
    uint64_t base_round; /* round of the global weights the worker last adopted */
} siam_averaging_update;

int siam_averaging_create(siam_averaging **out, const siam_averaging_config *cfg, siam_error *err);
/* Answers every waiter UNAVAILABLE (see shutdown), stops the timer thread, frees. NULL is fine. */
void siam_averaging_free(siam_averaging *a);

/* Sets the global model when there is none yet (from --model, --resume or the first worker's
 * join). SIAM_ERR_ARG naming the first parameter that is NaN or infinite (a model that is not
 * finite is never adopted); SIAM_ERR_MISMATCH naming both specs when a different one is already
 * set; SIAM_OK without change when the same spec is. */
int siam_averaging_set_model(siam_averaging *a, const char *spec, const float *params, size_t n,
                             uint64_t round, siam_error *err);
int siam_averaging_has_model(siam_averaging *a);

/* Hands an update over; the waiter is answered exactly once through cfg.reply, possibly before
 * this returns. The caller has validated that params are finite. FAILED_PRECONDITION when the
 * spec differs from the global model's (both named), or when there is no model yet;
 * INVALID_ARGUMENT for a wrong parameter count or samples above SIAM_AVERAGING_MAX_SAMPLES;
 * ALREADY_EXISTS when this worker name already has
 * another report in the open round; UNAVAILABLE after shutdown; ABORTED for a call whose report
 * was sent again on another call (see the restart rules above). */
void siam_averaging_submit(siam_averaging *a, const siam_averaging_update *u, void *waiter);

/* A Train stream of worker opened (+1) or ended (-1): liveness. */
void siam_averaging_stream(siam_averaging *a, const char *worker, int delta);

/* Answers every waiting call UNAVAILABLE ("the server is shutting down") and every later
 * submit too. */
void siam_averaging_shutdown(siam_averaging *a);

typedef struct {
    int has_model;
    char spec[SIAM_SPEC_MAX];
    size_t n_params;
    uint64_t round;   /* rounds closed (continues from a resumed checkpoint) */
    uint64_t version; /* changes whenever the global parameters change */
    int min_workers, joined;
    double sync_timeout;
    double expiry;     /* seconds after which quiet workers are forgotten */
    size_t known;      /* worker names known now */
    char waiting[128]; /* "waiting for 1 more worker (1 of 2)" or "" */
} siam_averaging_info;

void siam_averaging_get_info(siam_averaging *a, siam_averaging_info *out);

/* The expiry time of quiet workers (see SIAM_AVERAGING_MAX_WORKERS); seconds <= 0 is ignored. */
void siam_averaging_set_expiry(siam_averaging *a, double seconds);
double siam_averaging_expiry(siam_averaging *a);

/* Per worker, for Status: live now, and the last round its parameters went into. 0 when the
 * worker never called SyncWeights (then *live and *last_round are 0). */
int siam_averaging_worker(siam_averaging *a, const char *worker, int *live, uint64_t *last_round);

/* A copy of the global parameters into dst (n floats, which must be the model's count), with
 * their round and version. SIAM_ERR_ARG when there is no model or n differs. */
int siam_averaging_copy(siam_averaging *a, float *dst, size_t n, uint64_t *round, uint64_t *version,
                        siam_error *err);

#endif
