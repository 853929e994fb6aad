/* siam_rpc_meter: counts of calls, messages and message bytes per method, shared by a server or
 * a channel and the calls and streams it made (reference-counted, so that a stream freed after
 * its channel still counts into live memory). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "siam_rpc.h"
#include "siam_rpc_internal.h"

struct siam_rpc_meter {
    pthread_mutex_t lock; /* rows, n, refs */
    int refs, n;
    siam_rpc_traffic rows[SIAM_RPC_TRAFFIC_MAX];
};

siam_rpc_meter *siam_rpc_meter_new(void) {
    siam_rpc_meter *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    m->refs = 1;
    return m;
}

siam_rpc_meter *siam_rpc_meter_ref(siam_rpc_meter *m) {
    if (m) {
        pthread_mutex_lock(&m->lock);
        m->refs++;
        pthread_mutex_unlock(&m->lock);
    }
    return m;
}

void siam_rpc_meter_unref(siam_rpc_meter *m) {
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    int last = --m->refs == 0;
    pthread_mutex_unlock(&m->lock);
    if (last) {
        pthread_mutex_destroy(&m->lock);
        free(m);
    }
}

int siam_rpc_meter_slot(siam_rpc_meter *m, const char *method) {
    if (!m || !method)
        return -1;
    pthread_mutex_lock(&m->lock);
    int slot = -1;
    for (int i = 0; i < m->n && slot < 0; i++)
        if (strcmp(m->rows[i].method, method) == 0)
            slot = i;
    if (slot < 0 && m->n < SIAM_RPC_TRAFFIC_MAX) {
        slot = m->n++;
        /* the last row takes every method beyond the table, so no byte goes uncounted */
        const char *name = slot == SIAM_RPC_TRAFFIC_MAX - 1 ? SIAM_RPC_TRAFFIC_OTHER : method;
        size_t len = strlen(name);
        if (len >= sizeof m->rows[slot].method)
            len = sizeof m->rows[slot].method - 1;
        memcpy(m->rows[slot].method, name, len);
        m->rows[slot].method[len] = '\0';
    } else if (slot < 0) {
        slot = SIAM_RPC_TRAFFIC_MAX - 1;
    }
    pthread_mutex_unlock(&m->lock);
    return slot;
}

void siam_rpc_meter_count(siam_rpc_meter *m, int slot, int calls, size_t sent, size_t received,
                          int messages_sent, int messages_received) {
    if (!m || slot < 0 || slot >= SIAM_RPC_TRAFFIC_MAX)
        return;
    pthread_mutex_lock(&m->lock);
    siam_rpc_traffic *r = &m->rows[slot];
    r->calls += (uint64_t)calls;
    r->messages_sent += (uint64_t)messages_sent;
    r->messages_received += (uint64_t)messages_received;
    r->bytes_sent += sent;
    r->bytes_received += received;
    pthread_mutex_unlock(&m->lock);
}

int siam_rpc_meter_get(siam_rpc_meter *m, siam_rpc_traffic *rows, int max) {
    if (!m || !rows || max <= 0)
        return 0;
    pthread_mutex_lock(&m->lock);
    int n = 0;
    for (int i = 0; i < m->n && n < max; i++)
        if (m->rows[i].calls || m->rows[i].messages_sent || m->rows[i].messages_received)
            rows[n++] = m->rows[i];
    pthread_mutex_unlock(&m->lock);
    return n;
}
