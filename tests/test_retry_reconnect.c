/* test_retry_reconnect: a worker (the real trainer, remote head and weight sync, with a retry
 * policy) against an in-process siam-server (siam_service behind lib/net on a real
 * 127.0.0.1 socket) that fails under it: a Train stream ended UNAVAILABLE, the server stopped
 * and started again on the same port with its global model from an older round (as after a
 * restart with --resume), the same during a SyncWeights call, and a SyncWeights answer lost
 * after its round closed. The worker must end with exactly the parameters, the optimizer step
 * count and the round number of an uninterrupted run (bit for bit: one worker's average is its
 * own parameters, so the uninterrupted run is the local loss head without averaging), every
 * failed batch must have been sent again with its step number, and no update may count as
 * late. */
#include "test_util.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "siam/v1/siam.pb-c.h"
#include "siam_log.h"
#include "siam_remote_head.h"
#include "siam_retry.h"
#include "siam_rng.h"
#include "siam_rpc.h"
#include "siam_service.h"
#include "siam_trainer.h"
#include "siam_weight_sync.h"
#include "siam_wire.h"

#define SPEC       "in=28x28x1 dense16 relu dropout0.2 dense8"
#define BATCH      24
#define EPOCHS     3
#define SYNC_EVERY 7
#define MAX_STEPS  256

/* Faults, by count of the server's events (1-based, over all server instances). */
#define FAIL_TRAIN_AT    5  /* this Train message ends its stream UNAVAILABLE */
#define RESTART_TRAIN_AT 20 /* this Train message fails and the server restarts */
#define RESTART_SYNC_AT  3  /* this SyncWeights call is held, answered UNAVAILABLE, restart */
#define DROP_ANSWER_AT   5  /* this OK SyncWeights answer is replaced by UNAVAILABLE */

/* ---- the server, restartable ---------------------------------------------------------- */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    siam_service *svc;
    siam_rpc_server *rpc;
    int port;
    int train_msgs, sync_calls, ok_answers;
    int restart_wanted, quit, restarts;
    siam_rpc_reply *held;    /* a SyncWeights call the restart answers UNAVAILABLE */
    int answered[MAX_STEPS]; /* times each step number was answered */
} H = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void request_restart(void) {
    pthread_mutex_lock(&H.lock);
    H.restart_wanted = 1;
    pthread_cond_broadcast(&H.cond);
    pthread_mutex_unlock(&H.lock);
}

static void *t_open(void *ctx, const siam_rpc_call_info *call) {
    (void)ctx, (void)call;
    return calloc(1, sizeof(siam_train_stream));
}

static int t_message(void *ctx, void *stream, const uint8_t *req, size_t len, siam_rpc_buf *resp,
                     siam_rpc_status *st) {
    siam_service *svc = ctx;
    pthread_mutex_lock(&H.lock);
    int n = ++H.train_msgs;
    pthread_mutex_unlock(&H.lock);
    if (n == FAIL_TRAIN_AT)
        return siam_rpc_status_set(st, SIAM_RPC_UNAVAILABLE, "injected: the stream breaks");
    if (n == RESTART_TRAIN_AT) {
        request_restart();
        return siam_rpc_status_set(st, SIAM_RPC_UNAVAILABLE, "injected: the server goes away");
    }
    int rc = siam_service_train(svc, stream, req, len, resp, st);
    Siam__V1__EmbeddingBatch *b = siam__v1__embedding_batch__unpack(NULL, len, req);
    if (rc == SIAM_RPC_OK && b && b->step < MAX_STEPS) {
        pthread_mutex_lock(&H.lock);
        H.answered[b->step]++;
        pthread_mutex_unlock(&H.lock);
    }
    if (b)
        siam__v1__embedding_batch__free_unpacked(b, NULL);
    return rc;
}

static void t_close(void *ctx, void *stream, const siam_rpc_status *final) {
    (void) final;
    siam_service_train_end(ctx, stream);
    free(stream);
}

/* the service's SyncWeights reply function */
static void sync_reply(void *waiter, siam_rpc_buf *resp, const siam_rpc_status *st) {
    int drop = 0;
    if (st->code == SIAM_RPC_OK) {
        pthread_mutex_lock(&H.lock);
        drop = ++H.ok_answers == DROP_ANSWER_AT;
        pthread_mutex_unlock(&H.lock);
    }
    if (drop) { /* the round closed with the update, but the answer never arrives */
        siam_rpc_buf_free(resp);
        siam_rpc_status lost = {SIAM_RPC_UNAVAILABLE, "injected: the answer is lost"};
        siam_rpc_reply_send(waiter, NULL, &lost);
        return;
    }
    siam_rpc_reply_send(waiter, resp, st);
}

static void sync_weights(void *ctx, const siam_rpc_call_info *call, const uint8_t *req, size_t len,
                         siam_rpc_reply *reply) {
    (void)call;
    pthread_mutex_lock(&H.lock);
    int n = ++H.sync_calls;
    if (n == RESTART_SYNC_AT) {
        H.held = reply;
        H.restart_wanted = 1;
        pthread_cond_broadcast(&H.cond);
    }
    pthread_mutex_unlock(&H.lock);
    if (n != RESTART_SYNC_AT)
        siam_service_sync(ctx, req, len, reply);
}

/* A server on 127.0.0.1:port (0 = any; H.port gets it) whose global model, if params, is params
 * at `round`. */
static int server_start(int port, const char *spec, const float *params, size_t n, uint64_t round) {
    siam_error err = {0};
    siam_service *svc = NULL;
    CHECK(siam_service_create(&svc, 1.0f, SIAM_LABELS_SIMILAR, 0, "test", &err) == 0, "%s",
          err.msg);
    CHECK(siam_service_start_averaging(svc, 1, 5.0, NULL, NULL, sync_reply, &err) == 0, "%s",
          err.msg);
    if (params)
        CHECK(siam_service_set_model(svc, spec, params, n, round, 0, &err) == 0, "%s", err.msg);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    siam_rpc_server_config sc = {.listen = listen, .threads = 2};
    static const siam_rpc_stream_handler train = {t_open, t_message, t_close};
    siam_rpc_server *rpc = NULL;
    int rc = siam_rpc_server_create(&rpc, &sc, &err);
    if (!rc)
        rc = siam_rpc_server_add_stream(rpc, SIAM_METHOD_TRAIN, &train, svc, &err);
    if (!rc)
        rc = siam_rpc_server_add_deferred(rpc, SIAM_METHOD_SYNC_WEIGHTS, sync_weights, svc, &err);
    if (!rc)
        rc = siam_rpc_server_start(rpc, &H.port, &err);
    CHECK(rc == 0, "server on %s: %s", listen, err.msg);
    H.svc = svc;
    H.rpc = rpc;
    return rc;
}

/* Stops the server as siam-server does on SIGTERM (waiting SyncWeights calls answered
 * UNAVAILABLE, calls cancelled) and frees it; the global model (params, malloc'd) and its round
 * are returned. */
static void server_stop(float **params, size_t *n, uint64_t *round, char *spec) {
    siam_averaging_info info;
    siam_averaging_get_info(siam_service_averaging(H.svc), &info);
    *params = NULL;
    *n = 0;
    if (info.has_model && (*params = malloc(info.n_params * sizeof **params)) != NULL) {
        siam_error err = {0};
        CHECK(siam_averaging_copy(siam_service_averaging(H.svc), *params, info.n_params, round,
                                  NULL, &err) == 0,
              "%s", err.msg);
        *n = info.n_params;
        strcpy(spec, info.spec);
    }
    siam_averaging_shutdown(siam_service_averaging(H.svc));
    siam_rpc_server_stop(H.rpc, 0);
    siam_rpc_server_free(H.rpc);
    siam_service_free(H.svc);
    H.rpc = NULL;
    H.svc = NULL;
}

/* The restarts: stop, 0.3 s down, start on the same port from the model one round older (the
 * checkpoint lags the workers: their reports are ahead of the server). */
static void *restarter(void *arg) {
    (void)arg;
    pthread_mutex_lock(&H.lock);
    for (;;) {
        while (!H.restart_wanted && !H.quit)
            pthread_cond_wait(&H.cond, &H.lock);
        if (H.quit)
            break;
        H.restart_wanted = 0;
        siam_rpc_reply *held = H.held;
        H.held = NULL;
        pthread_mutex_unlock(&H.lock);
        if (held) {
            siam_rpc_status st = {SIAM_RPC_UNAVAILABLE, "the server is shutting down"};
            siam_rpc_reply_send(held, NULL, &st);
        }
        float *params;
        size_t n;
        uint64_t round = 0;
        char spec[SIAM_SPEC_MAX] = "";
        server_stop(&params, &n, &round, spec);
        struct timespec down = {0, 300000000L};
        nanosleep(&down, NULL);
        server_start(H.port, spec, params, n, round > 0 ? round - 1 : 0);
        free(params);
        pthread_mutex_lock(&H.lock);
        H.restarts++;
    }
    pthread_mutex_unlock(&H.lock);
    return NULL;
}

/* ---- the worker ------------------------------------------------------------------------- */

typedef struct {
    float *params;
    size_t n;
    uint64_t steps, round, resent, reconnects, late, syncs;
} run_result;

static void train(const siam_dataset *ds, const siam_pairs *pairs0, int remote_run,
                  run_result *out) {
    siam_error err = {0};
    siam_model *m = NULL;
    siam_trainer tr;
    siam_pairs p = {0};
    memset(out, 0, sizeof *out);
    CHECK(siam_pairs_slice(&p, pairs0, 0, pairs0->n, &err) == 0, "%s", err.msg);
    CHECK(siam_model_create(&m, SPEC, 7, &err) == 0, "%s", err.msg);
    CHECK(siam_trainer_init(&tr, m, SIAM_OPTIM_ADAM, 1e-3f, BATCH, &err) == 0, "%s", err.msg);
    siam_model_seed_dropout(m, 11);

    siam_local_head local = {1.0f, SIAM_LABELS_SIMILAR};
    siam_rpc_channel *ch = NULL;
    siam_retry retry;
    siam_retry_init(&retry, 20.0, 99);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", H.port);
    siam_remote_head remote = {.timeout = 10, .retry = &retry, .server = target, .worker_id = "w0"};
    siam_weight_sync sync = {.retry = &retry, .server = target, .worker_id = "w0", .timeout = 10};
    if (remote_run) {
        CHECK(siam_rpc_channel_create(&ch, target, 0, &err) == 0, "%s", err.msg);
        remote.ch = sync.ch = ch;
        tr.sync = siam_weight_sync_fn;
        tr.sync_ctx = &sync;
        tr.sync_every = SYNC_EVERY;
        CHECK(siam_trainer_sync(&tr, &err) == 0, "join: %s", err.msg);
    }
    for (int e = 0; e < EPOCHS; e++) {
        if (e)
            siam_pairs_shuffle(&p, 100 + (uint64_t)e);
        double loss;
        int rc = remote_run ? siam_trainer_epoch(&tr, ds, &p, siam_remote_head_fn, &remote, NULL,
                                                 NULL, &loss, &err)
                            : siam_trainer_epoch(&tr, ds, &p, siam_local_head_fn, &local, NULL,
                                                 NULL, &loss, &err);
        CHECK(rc == 0, "%s epoch %d: %s", remote_run ? "remote" : "local", e, err.msg);
    }
    out->n = siam_model_num_params(m);
    out->params = malloc(out->n * sizeof *out->params);
    memcpy(out->params, siam_model_params(m), out->n * sizeof *out->params);
    out->steps = tr.step;
    if (remote_run) {
        CHECK(remote.step == tr.step, "the head answered %llu steps, the trainer took %llu",
              (unsigned long long)remote.step, (unsigned long long)tr.step);
        siam_rpc_status st;
        if (remote.stream)
            CHECK(siam_rpc_stream_close(remote.stream, &st) == SIAM_RPC_OK, "close: %s", st.msg);
        siam_rpc_stream_free(remote.stream);
        siam_rpc_channel_free(ch);
        out->round = sync.round;
        out->resent = remote.resent;
        out->reconnects = retry.reconnects;
        out->late = sync.late;
        out->syncs = sync.syncs;
    }
    siam_trainer_free(&tr);
    siam_model_free(m);
    siam_pairs_free(&p);
}

int main(void) {
    siam_dataset ds = {200, 28, 28, NULL, NULL};
    ds.images = malloc(ds.n * 784 * sizeof(float));
    ds.labels = malloc(ds.n);
    siam_rng rng;
    siam_rng_seed(&rng, 3);
    for (size_t i = 0; i < ds.n; i++) {
        ds.labels[i] = (uint8_t)(i % 10);
        for (int k = 0; k < 784; k++)
            ds.images[i * 784 + (size_t)k] = siam_rng_uniform(&rng);
    }
    siam_error err = {0};
    siam_pairs pairs = {0};
    CHECK(siam_pairs_make(&pairs, ds.labels, ds.n, 10, 5, &err) == 0, "%s", err.msg);
    uint64_t steps = EPOCHS * ((pairs.n + BATCH - 1) / BATCH);

    run_result local, remote;
    train(&ds, &pairs, 0, &local);

    siam_rpc_init();
    pthread_t thr;
    if (server_start(0, NULL, NULL, 0, 0) != 0)
        return tu_finish();
    pthread_create(&thr, NULL, restarter, NULL);
    double t0 = siam_now();
    train(&ds, &pairs, 1, &remote);
    double took = siam_now() - t0;
    pthread_mutex_lock(&H.lock);
    H.quit = 1;
    pthread_cond_broadcast(&H.cond);
    pthread_mutex_unlock(&H.lock);
    pthread_join(thr, NULL);
    float *p;
    size_t n;
    uint64_t round;
    char spec[SIAM_SPEC_MAX];
    server_stop(&p, &n, &round, spec);
    free(p);
    siam_rpc_shutdown();

    printf("%llu steps in %.2f s: %d restarts, %llu reconnects, %llu batches sent again, round "
           "%llu\n",
           (unsigned long long)remote.steps, took, H.restarts,
           (unsigned long long)remote.reconnects, (unsigned long long)remote.resent,
           (unsigned long long)remote.round);
    CHECK(H.restarts == 2, "the server restarted %d times, expected 2", H.restarts);
    CHECK(H.sync_calls > RESTART_SYNC_AT && H.ok_answers > DROP_ANSWER_AT,
          "every SyncWeights fault happened (%d calls, %d answers)", H.sync_calls, H.ok_answers);
    CHECK(local.steps == steps && remote.steps == steps,
          "optimizer steps: %llu uninterrupted, %llu with faults, expected %llu",
          (unsigned long long)local.steps, (unsigned long long)remote.steps,
          (unsigned long long)steps);
    CHECK(remote.n == local.n && memcmp(remote.params, local.params, local.n * 4) == 0,
          "the parameters after the faults differ from the uninterrupted run's");
    CHECK(remote.resent == 2,
          "%llu batches sent again, expected 2 (the two failed Train "
          "messages)",
          (unsigned long long)remote.resent);
    CHECK(remote.reconnects >= 4, "%llu reconnects, expected at least 4 (one per fault)",
          (unsigned long long)remote.reconnects);
    int missing = 0, twice = 0;
    for (uint64_t s = 0; s < steps && s < MAX_STEPS; s++) {
        missing += H.answered[s] == 0;
        twice += H.answered[s] > 1;
    }
    CHECK(missing == 0, "%d steps never answered by the server", missing);
    CHECK(twice == 0, "%d steps answered twice (a failed message is never answered)", twice);
    CHECK(remote.round == steps / SYNC_EVERY,
          "the worker ends at round %llu, an uninterrupted run at %llu (round numbers go on from "
          "the worker's after a restart from an older round)",
          (unsigned long long)remote.round, (unsigned long long)(steps / SYNC_EVERY));
    CHECK(remote.late == 0 && remote.syncs == steps / SYNC_EVERY,
          "%llu late updates, %llu rounds taken part in (the lost answer's update was recognised "
          "when sent again)",
          (unsigned long long)remote.late, (unsigned long long)remote.syncs);
    free(local.params);
    free(remote.params);
    siam_pairs_free(&pairs);
    free(ds.images);
    free(ds.labels);
    return tu_finish();
}
