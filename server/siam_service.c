/* siam_service: decode, validate, compute with lib/nn/siam_loss, encode. No transport, no printing:
 * every outcome is a status code with a message that names the field and the value.
 * This file: create/free, the accessors and the Status worker table; the RPCs are in
 * siam_service_{train,set,sync,similarity,status}.c, their shared helpers in siam_service_codec.c.
 */
#include "siam_service_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_log.h"

int siam_service_create(siam_service **out, float margin, siam_label_convention conv,
                        float threshold, const char *version, siam_error *err) {
    if (!out)
        return siam_error_set(err, SIAM_ERR_ARG, "siam_service_create: out is NULL");
    *out = NULL;
    if (!isfinite(margin) || !(margin > 0.0f))
        return siam_error_set(err, SIAM_ERR_ARG, "margin is %g, expected a finite value > 0",
                              (double)margin);
    if (conv != SIAM_LABELS_SIMILAR && conv != SIAM_LABELS_DISSIMILAR)
        return siam_error_set(err, SIAM_ERR_ARG, "label convention is %d, expected 0 or 1",
                              (int)conv);
    if (isnan(threshold) || isinf(threshold))
        return siam_error_set(err, SIAM_ERR_ARG, "threshold is %g, expected a finite value",
                              (double)threshold);
    siam_service *svc = calloc(1, sizeof *svc); /* the worker table is large for a stack */
    if (!svc)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for the service");
    svc->margin = margin;
    svc->conv = conv;
    svc->threshold = threshold > 0.0f ? threshold : margin / 2.0f;
    svc->version = version ? version : "";
    svc->set_cfg = siam_set_loss_default();
    svc->set_cfg.margin = margin; /* one --margin for both heads unless set otherwise */
    int rc = siam_inference_create(&svc->pool, SIAM_SERVICE_REPLICAS_DEFAULT, err);
    if (!rc)
        rc = siam_gallery_create(&svc->gallery, SIAM_GALLERY_MAX_ITEMS_DEFAULT, err);
    if (rc) {
        siam_inference_free(svc->pool);
        free(svc);
        return rc;
    }
    pthread_mutex_init(&svc->lock, NULL);
    pthread_mutex_init(&svc->model_lock, NULL);
    pthread_mutex_init(&svc->weights_lock, NULL);
    *out = svc;
    return SIAM_OK;
}

void siam_service_free(siam_service *svc) {
    if (!svc)
        return;
    siam_averaging_free(svc->avg);
    siam_gallery_free(svc->gallery); /* stops its threads */
    siam_inference_free(svc->pool);
    siam_weights_release(svc->weights);
    pthread_mutex_destroy(&svc->weights_lock);
    pthread_mutex_destroy(&svc->model_lock);
    pthread_mutex_destroy(&svc->lock);
    free(svc);
}

float siam_service_margin(const siam_service *svc) {
    return svc->margin;
}

float siam_service_threshold(const siam_service *svc) {
    return svc->threshold;
}

siam_label_convention siam_service_convention(const siam_service *svc) {
    return svc->conv;
}

uint64_t siam_service_global_step(siam_service *svc) {
    pthread_mutex_lock(&svc->lock);
    uint64_t step = svc->global_step;
    pthread_mutex_unlock(&svc->lock);
    return step;
}

int siam_service_worker_count(siam_service *svc) {
    pthread_mutex_lock(&svc->lock);
    int n = svc->n_workers;
    pthread_mutex_unlock(&svc->lock);
    return n;
}

siam_averaging *siam_service_averaging(siam_service *svc) {
    return svc->avg;
}

int siam_service_set_set_loss(siam_service *svc, const siam_set_loss_config *cfg, siam_error *err) {
    if (!svc || !cfg)
        return siam_error_set(err, SIAM_ERR_ARG, "siam_service_set_set_loss: %s is NULL",
                              !svc ? "svc" : "cfg");
    if (strcmp(siam_set_loss_name(cfg), "invalid") == 0)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "set loss: mode %d with soft %d is none of %s (soft goes with "
                              "batch-hard only)",
                              (int)cfg->mode, cfg->soft, siam_set_loss_choices());
    if (cfg->distance != SIAM_SET_EUCLIDEAN && cfg->distance != SIAM_SET_SQUARED)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "set loss: distance is %d, expected %d "
                              "(euclidean) or %d (squared)",
                              (int)cfg->distance, (int)SIAM_SET_EUCLIDEAN, (int)SIAM_SET_SQUARED);
    if (!isfinite(cfg->margin) || cfg->margin < 0.0f)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "set loss: margin is %g, expected a finite "
                              "value >= 0",
                              (double)cfg->margin);
    if (!isfinite(cfg->hard_after) || cfg->hard_after < 0.0f || cfg->hard_after > 1.0f)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "set loss: hard_after is %g, expected a fraction of the training "
                              "in 0..1",
                              (double)cfg->hard_after);
    pthread_mutex_lock(&svc->lock);
    svc->set_cfg = *cfg;
    pthread_mutex_unlock(&svc->lock);
    return SIAM_OK;
}

siam_set_loss_config siam_service_set_loss(siam_service *svc) {
    pthread_mutex_lock(&svc->lock);
    siam_set_loss_config c = svc->set_cfg;
    pthread_mutex_unlock(&svc->lock);
    return c;
}

/* ---- the global model's weights ---- */

siam_weights *svc_weights(siam_service *svc) {
    pthread_mutex_lock(&svc->weights_lock);
    siam_weights *w = siam_weights_retain(svc->weights);
    pthread_mutex_unlock(&svc->weights_lock);
    return w;
}

void svc_publish_weights(siam_service *svc, const char *spec, const float *params, size_t n,
                         uint64_t round) {
    siam_weights *w = NULL;
    siam_error err = {0};
    if (siam_weights_create(&w, spec, params, n, round, &err)) {
        LOG_ERROR("service",
                  "the model of round %llu is not served to image requests and the gallery: %s",
                  (unsigned long long)round, err.msg);
        return;
    }
    pthread_mutex_lock(&svc->weights_lock);
    siam_weights *old = NULL;
    /* rounds only grow; callbacks of two rounds closing at once may arrive in either order */
    if (!svc->weights || round > siam_weights_round(svc->weights)) {
        old = svc->weights;
        svc->weights = w;
        /* under weights_lock, so that the gallery gets the weights in the same order */
        siam_gallery_set_weights(svc->gallery, w);
    } else {
        old = w;
    }
    pthread_mutex_unlock(&svc->weights_lock);
    siam_weights_release(old);
}

void svc_image_text(const siam_weights *w, char *buf, size_t n) {
    char shape[48];
    siam_weights_shape_text(w, shape, sizeof shape);
    snprintf(buf, n, "%zu bytes = one %s image", siam_weights_image_bytes(w), shape);
}

_Static_assert(sizeof(((siam_worker_record *)0)->id) == sizeof(((siam_train_stream *)0)->worker_id),
               "worker names are copied between the stream and the worker table");

/* The record of worker `id` in the table, added if new. When the table is full, the record
 * quiet longest is reused if it is quiet for longer than the averaging's expiry (not seen by
 * Train or SyncWeights and not live in the averaging, see SIAM_AVERAGING_MAX_WORKERS);
 * otherwise NULL, with a warning at most every 5 s counting the names not listed. The fill is
 * logged at 50/75/90/100 %. Caller holds svc->lock (the averaging's lock is taken inside). */
siam_worker_record *svc_worker_record(siam_service *svc, const char *id, double now) {
    for (int i = 0; i < svc->n_workers; i++)
        if (strcmp(svc->workers[i].id, id) == 0)
            return &svc->workers[i];
    siam_worker_record *w = NULL;
    if (svc->n_workers < SIAM_SERVICE_MAX_WORKERS) {
        w = &svc->workers[svc->n_workers++];
        static const int pct[4] = {50, 75, 90, 100};
        while (svc->table_level < 4 &&
               svc->n_workers * 100 >= pct[svc->table_level] * SIAM_SERVICE_MAX_WORKERS) {
            LOG_WARN("service",
                     "Status worker table at %d%%: %d of %d names (the newest '%s'); names quiet "
                     "for longer than the expiry are replaced, beyond that new names are not "
                     "listed",
                     pct[svc->table_level], svc->n_workers, SIAM_SERVICE_MAX_WORKERS, id);
            svc->table_level++;
        }
    } else {
        double expiry = svc->avg ? siam_averaging_expiry(svc->avg) : SIAM_AVERAGING_DEFAULT_EXPIRY;
        for (int i = 0; i < svc->n_workers; i++) {
            siam_worker_record *r = &svc->workers[i];
            int live = 0;
            uint64_t last_round = 0;
            if (now - r->last_seen <= expiry || (w && r->last_seen >= w->last_seen))
                continue;
            if (svc->avg)
                siam_averaging_worker(svc->avg, r->id, &live, &last_round);
            if (!live)
                w = r;
        }
        if (!w) {
            svc->refused_since++;
            if (svc->refused_logged == 0 || now - svc->refused_logged >= 5.0) {
                LOG_WARN("service",
                         "Status worker table full (%d names, none quiet for %g s): %u new "
                         "name(s) not listed since the last such line, the latest '%s'",
                         SIAM_SERVICE_MAX_WORKERS, expiry, svc->refused_since, id);
                svc->refused_logged = now;
                svc->refused_since = 0;
            }
            return NULL;
        }
        LOG_DEBUG("service", "Status lists %s in place of %s (not seen for %g s)", id, w->id,
                  now - w->last_seen);
    }
    memset(w, 0, sizeof *w);
    snprintf(w->id, sizeof w->id, "%s", id);
    w->last_seen = now;
    return w;
}

void svc_answered(siam_service *svc, siam_train_stream *ts, const char *id, uint32_t dim,
                  uint64_t items, float loss) {
    if (ts) {
        if (ts->batches == 0)
            ts->dim = dim; /* fixed by the first good batch */
        ts->batches++;
        ts->pairs += items;
        ts->loss_sum += (double)loss * (double)items;
    }
    if (ts && !ts->live && svc->avg) { /* a named stream: its worker is live for averaging */
        siam_averaging_stream(svc->avg, ts->worker_id, +1);
        ts->live = 1;
    }
    double now = siam_now();
    pthread_mutex_lock(&svc->lock);
    svc->global_step++;
    siam_worker_record *w = svc_worker_record(svc, id, now);
    if (w) {
        w->last_seen = now;
        w->pairs_trained += items;
    }
    pthread_mutex_unlock(&svc->lock);
}
