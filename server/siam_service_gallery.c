/* siam_service_gallery: the service's gallery and inference pool, and opening the gallery at
 * start (loading it, restoring the saved one, saving it beside the checkpoint). */
#include "siam_service_internal.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "siam_atomic.h"
#include "siam_log.h"

#define COMPONENT "server"

siam_gallery *siam_service_gallery(siam_service *svc) {
    return svc->gallery;
}

int siam_service_set_gallery_max(siam_service *svc, size_t max_items, siam_error *err) {
    siam_gallery_info info;
    siam_gallery_get_info(svc->gallery, &info);
    if (info.items)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "the gallery holds %zu items: set its limit before loading it",
                              info.items);
    siam_gallery *g = NULL;
    int rc = siam_gallery_create(&g, max_items, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&svc->weights_lock);
    siam_gallery *old = svc->gallery;
    svc->gallery = g;
    if (svc->weights)
        siam_gallery_set_weights(g, svc->weights);
    pthread_mutex_unlock(&svc->weights_lock);
    siam_gallery_free(old);
    return SIAM_OK;
}

int siam_service_set_inference_replicas(siam_service *svc, int replicas, siam_error *err) {
    siam_inference *p = NULL;
    int rc = siam_inference_create(&p, replicas, err);
    if (rc)
        return rc;
    siam_inference_free(svc->pool);
    svc->pool = p;
    return SIAM_OK;
}

/* Loads the gallery: the one saved beside the checkpoint being resumed, else o->gallery. *from
 * gets the file loaded (NULL: none). */
static int load(siam_gallery *g, const siam_gallery_options *o, char *saved, size_t n,
                const char **from, siam_error *err) {
    *from = NULL;
    saved[0] = '\0';
    if (o->resume)
        snprintf(saved, n, "%s.gallery", o->resume);
    if (saved[0] && access(saved, F_OK) == 0) {
        if (o->gallery)
            LOG_WARN(COMPONENT,
                     "--gallery %s not loaded: the gallery saved beside the checkpoint, %s, is "
                     "restored (it holds the items added at run time); remove that file to start "
                     "again from %s",
                     o->gallery, saved, o->gallery);
        *from = saved;
        return siam_gallery_load_file(g, saved, err);
    }
    if (!o->gallery)
        return SIAM_OK;
    *from = o->gallery;
    if (siam_gallery_is_file(o->gallery)) {
        if (o->gallery_labels)
            return siam_error_set(err, SIAM_ERR_ARG,
                                  "--gallery %s is a gallery file, which holds its labels: "
                                  "leave --gallery-labels out",
                                  o->gallery);
        return siam_gallery_load_file(g, o->gallery, err);
    }
    if (!o->gallery_labels)
        return siam_error_set(err, SIAM_ERR_ARG,
                              "--gallery %s is not a gallery file, so it is read as IDX images: "
                              "give their labels with --gallery-labels LABELS.idx",
                              o->gallery);
    return siam_gallery_load_idx(g, o->gallery, o->gallery_labels, err);
}

int siam_service_open_gallery(siam_service *svc, const siam_gallery_options *o, siam_error *err) {
    siam_gallery *g = svc->gallery;
    char saved[4200], saving[4200];
    const char *from = NULL;
    int rc = load(g, o, saved, sizeof saved, &from, err);
    if (rc) { /* the messages name the file */
        char why[SIAM_ERROR_MSG_MAX];
        snprintf(why, sizeof why, "%s", err->msg);
        return siam_error_set(err, rc, "gallery: %s", why);
    }
    siam_gallery_info info;
    siam_gallery_get_info(g, &info);
    int h = 0, w = 0, c = 0;
    siam_gallery_shape(g, &h, &w, &c);
    siam_weights *wt = svc_weights(svc);
    if (wt && info.items) { /* the model's shape, when the gallery took another one first */
        int mh, mw, mc;
        siam_weights_input_shape(wt, &mh, &mw, &mc);
        if (mh != h || mw != w || mc != c) {
            rc = siam_error_set(err, SIAM_ERR_MISMATCH,
                                "the gallery's images are %dx%dx%d but the model (%s) takes "
                                "%dx%dx%d: give a gallery of the model's input shape",
                                h, w, c, siam_weights_spec(wt), mh, mw, mc);
        }
    }
    siam_weights_release(wt);
    if (rc)
        return rc;
    if (from)
        LOG_INFO(COMPONENT, "gallery: %zu items of %dx%dx%d from %s (at most %zu: --gallery-max)",
                 info.items, h, w, c, from, siam_gallery_max_items(g));
    if (!o->checkpoint) {
        LOG_INFO(COMPONENT, "gallery: in memory only (no --checkpoint PATH to save it beside): "
                            "items added at run time are lost when the server stops");
        return SIAM_OK;
    }
    snprintf(saving, sizeof saving, "%s.gallery", o->checkpoint);
    /* what was loaded from elsewhere is written there soon, so that --resume finds it */
    int save_now = from && strcmp(saving, from) != 0 && info.items > 0;
    if ((rc = siam_atomic_check_writable(saving, err)) ||
        (rc = siam_gallery_persist(g, saving, save_now, err)))
        return rc;
    LOG_INFO(COMPONENT,
             "gallery: saved to %s after changes (at most once per %g s) and at "
             "shutdown",
             saving, SIAM_GALLERY_SAVE_INTERVAL);
    return SIAM_OK;
}
