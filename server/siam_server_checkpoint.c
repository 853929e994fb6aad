/* siam_server_checkpoint: siam-server's checkpoints of the global model: after averaging rounds
 * (--checkpoint-every), at shutdown, and the last word when the shutdown one fails. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "siam_checkpoint.h"
#include "siam_log.h"

#include "siam_server_internal.h"

#define COMPONENT "server"

/* Wall-clock seconds since 1970, for Status's checkpoint times. */
static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Writes the checkpoint of a's round (unless that round or a newer one is written already; always
 * at shutdown) and reports the outcome to the service for Status. SIAM_OK when it was written or
 * there was nothing to write; otherwise the error, logged here. */
int server_save_checkpoint(checkpointer *k, const siam_averaging_answer *a, const char *why,
                           siam_error *err) {
    if (!k->c->checkpoint)
        return SIAM_OK;
    int rc = SIAM_OK, shutdown = strcmp(why, "shutdown") == 0;
    pthread_mutex_lock(&k->lock);
    if (!k->saved_any || a->round > k->saved_round || shutdown) {
        uint64_t step = siam_service_global_step(k->svc);
        rc = siam_checkpoint_save(k->c->checkpoint, a->spec, step, a->round, a->params, a->n_params,
                                  NULL, 0, err);
        if (rc) {
            k->failures++;
            siam_service_checkpoint_failed(k->svc, a->round, wall_now(), err->msg);
            if (shutdown) /* the caller's last line says what is lost and how to fix it */
                LOG_ERROR(COMPONENT, "checkpoint of round %llu (shutdown) not written: %s",
                          (unsigned long long)a->round, err->msg);
            else { /* every round may fail alike (a full disk): a few lines, then a count */
                char newest[64] = "none of this run";
                if (k->saved_any)
                    snprintf(newest, sizeof newest, "round %llu",
                             (unsigned long long)k->saved_round);
                siam_log_limited(SIAM_LOG_ERROR, COMPONENT, "periodic checkpoint failed",
                                 "checkpoint of round %llu (periodic) not written: %s; training "
                                 "goes on, the newest checkpoint written is %s (Status: "
                                 "checkpoint_failures)",
                                 (unsigned long long)a->round, err->msg, newest);
            }
        } else {
            k->saved_round = a->round;
            k->saved_any = 1;
            siam_service_checkpoint_written(k->svc, k->c->checkpoint, a->round, wall_now());
            LOG_INFO(COMPONENT, "checkpoint of round %llu (%s) written to %s",
                     (unsigned long long)a->round, why, k->c->checkpoint);
        }
    }
    pthread_mutex_unlock(&k->lock);
    return rc;
}

void server_on_round(void *ctx, const siam_averaging_answer *a) {
    checkpointer *k = ctx;
    siam_error err = {0};
    /* a failure is logged and reported in Status; the round itself stands */
    if (k->c->checkpoint_every > 0 && a->round % (uint64_t)k->c->checkpoint_every == 0)
        server_save_checkpoint(k, a, "periodic", &err);
}

/* The global model at shutdown, written when the server has one. SIAM_OK when it was written or
 * there is nothing to write; otherwise the error, with *round the round that is lost. */
int server_final_checkpoint(checkpointer *k, uint64_t *round, siam_error *err) {
    siam_averaging_info info;
    siam_averaging_get_info(siam_service_averaging(k->svc), &info);
    *round = info.round;
    if (!info.has_model)
        return SIAM_OK;
    if (!k->c->checkpoint) {
        LOG_WARN(COMPONENT, "the global model (round %llu) is not saved: no --checkpoint PATH",
                 (unsigned long long)info.round);
        return SIAM_OK;
    }
    float *p = malloc(info.n_params * sizeof *p);
    int rc =
        p ? siam_averaging_copy(siam_service_averaging(k->svc), p, info.n_params, round, NULL, err)
          : siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for a copy of the %zu parameters",
                           info.n_params);
    if (rc) {
        LOG_ERROR(COMPONENT, "checkpoint at shutdown not written: %s", err->msg);
        pthread_mutex_lock(&k->lock);
        k->failures++;
        pthread_mutex_unlock(&k->lock);
        siam_service_checkpoint_failed(k->svc, *round, wall_now(), err->msg);
        free(p);
        return rc;
    }
    siam_averaging_answer a;
    memset(&a, 0, sizeof a);
    a.round = *round;
    a.spec = info.spec;
    a.params = p;
    a.n_params = info.n_params;
    rc = server_save_checkpoint(k, &a, "shutdown", err);
    free(p);
    return rc;
}

/* The last log line of a server whose shutdown checkpoint failed: what is lost, what is on disk,
 * and the fix; the error returned makes siam-server exit 1 instead of 0. */
int server_model_lost(const checkpointer *k, uint64_t round, const siam_error *why,
                      siam_error *err) {
    const char *path = k->c->checkpoint;
    char on_disk[4200];
    if (k->saved_any && access(path, R_OK) == 0)
        snprintf(on_disk, sizeof on_disk,
                 "the file still holds round %llu, the newest written: restart with --resume %s",
                 (unsigned long long)k->saved_round, path);
    else if (k->saved_any)
        snprintf(on_disk, sizeof on_disk,
                 "round %llu was the newest written, but %s cannot be read any more",
                 (unsigned long long)k->saved_round, path);
    else
        snprintf(on_disk, sizeof on_disk, "this run wrote no checkpoint");
    /* why names the path */
    siam_error_set(err, SIAM_ERR_IO,
                   "exiting with status 1: the global model of round %llu is lost, its checkpoint "
                   "not written: %s. Fix: free space on that file system, make it writable or "
                   "restore the directory (or choose another --checkpoint); %s",
                   (unsigned long long)round, why->msg, on_disk);
    LOG_ERROR(COMPONENT, "%s", err->msg);
    return SIAM_ERR_IO;
}
