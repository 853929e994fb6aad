/* siam_server_internal: what siam-server's two source files share (private): its options and
 * the checkpointer of the global model (siam_server_checkpoint.c). */
#ifndef SIAM_SERVER_INTERNAL_H
#define SIAM_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "siam_averaging.h"
#include "siam_error.h"
#include "siam_service.h"

/* siam-server's options (siam_server.c parses them). */
typedef struct {
    const char *listen, *labels, *log_level, *loss, *distance, *recipe;
    const char *checkpoint, *resume, *model;
    const char *gallery, *gallery_labels;
    uint64_t gallery_max;
    const char *tls_cert, *tls_key, *tls_client_ca, *auth_token_file;
    const char *auth_token; /* read from auth_token_file */
    float margin, threshold, grace, sync_timeout, handshake_timeout, hard_after;
    int threads, max_message_mb, min_workers, checkpoint_every;
    uint64_t seed;
} config;

/* The global model's checkpoints. */
typedef struct {
    const config *c;
    siam_service *svc;
    pthread_mutex_t lock; /* one writer at a time (they share the temp file name) */
    uint64_t saved_round; /* newest round written */
    int saved_any;
    uint64_t failures; /* checkpoints not written */
} checkpointer;

/* Writes the checkpoint of a's round (unless that round or a newer one is written already; always
 * at shutdown, why "shutdown") and reports the outcome to the service for Status. SIAM_OK when it
 * was written or there was nothing to write; otherwise the error, logged here. */
int server_save_checkpoint(checkpointer *k, const siam_averaging_answer *a, const char *why,
                           siam_error *err);
/* The averaging's on_round callback (ctx a checkpointer): every --checkpoint-every rounds. */
void server_on_round(void *ctx, const siam_averaging_answer *a);
/* The global model at shutdown, written when the server has one. SIAM_OK when it was written or
 * there is nothing to write; otherwise the error, with *round the round that is lost. */
int server_final_checkpoint(checkpointer *k, uint64_t *round, siam_error *err);
/* The last log line of a server whose shutdown checkpoint failed: what is lost, what is on disk,
 * and the fix; returns SIAM_ERR_IO (siam-server exits 1). */
int server_model_lost(const checkpointer *k, uint64_t round, const siam_error *why,
                      siam_error *err);

#endif
