/* siam_service_search: Search and AddToGallery against the service's gallery. */
#include "siam_service_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "siam_knn.h"
#include "siam_log.h"

#include "siam/v1/siam.pb-c.h"

/* ---- Search ---- */

/* What a caller with an empty or not yet embedded gallery is told. */
static int gallery_not_ready(siam_service *svc, siam_rpc_status *st) {
    siam_gallery_info info;
    siam_gallery_get_info(svc->gallery, &info);
    if (info.items > info.embedded)
        return siam_rpc_status_set(st, SIAM_RPC_UNAVAILABLE,
                                   "the gallery's %zu items are being embedded with the model "
                                   "(%zu searchable so far); retry in a few seconds",
                                   info.items, info.embedded);
    return siam_rpc_status_set(st, SIAM_RPC_FAILED_PRECONDITION,
                               "the gallery is empty: start siam-server with --gallery "
                               "IMAGES.idx --gallery-labels LABELS.idx (or a .gallery file), or "
                               "add labelled images with AddToGallery");
}

static int check_queries(const Siam__V1__SearchRequest *q, uint32_t *k, siam_rpc_status *st) {
    if (q->k > SIAM_KNN_K_MAX)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "k is %u, expected 1..%d matches per query (0 means %d)", q->k,
                                   SIAM_KNN_K_MAX, SIAM_SERVICE_SEARCH_K_DEFAULT);
    *k = q->k ? q->k : SIAM_SERVICE_SEARCH_K_DEFAULT;
    int has_images = q->images.len > 0, has_emb = q->dim || q->n_embeddings;
    if (has_images && has_emb)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "the request has both images (%zu bytes) and embeddings (dim "
                                   "%u, %zu floats); give queries one way or the other",
                                   q->images.len, q->dim, q->n_embeddings);
    if (!has_images && !has_emb)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "the request has no queries: give images (n x H*W*C bytes of "
                                   "the model's input shape) or dim and embeddings (n x dim "
                                   "floats)");
    if (has_emb) {
        if (svc_check_dim(q->dim, st))
            return SIAM_RPC_INVALID_ARGUMENT;
        if (q->n_embeddings == 0 || q->n_embeddings % q->dim != 0)
            return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                       "embeddings has %zu floats, expected a non-zero multiple "
                                       "of dim = %u",
                                       q->n_embeddings, q->dim);
        if (q->n_embeddings / q->dim > SIAM_SERVICE_MAX_SEARCH_QUERIES)
            return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                       "embeddings holds %zu queries, expected at most %d per "
                                       "request",
                                       q->n_embeddings / q->dim, SIAM_SERVICE_MAX_SEARCH_QUERIES);
        if (svc_check_finite_rows("embeddings", "query", q->embeddings, q->n_embeddings, q->dim,
                                  st))
            return SIAM_RPC_INVALID_ARGUMENT;
    }
    return SIAM_RPC_OK;
}

/* The queries' embeddings: the request's, or its images embedded with v's weights (*owned then
 * holds them, to free). */
static int query_embeddings(siam_service *svc, const Siam__V1__SearchRequest *q,
                            siam_gallery_view *v, const float **emb, float **owned, size_t *nq,
                            siam_rpc_status *st) {
    *owned = NULL;
    int dim = siam_gallery_view_dim(v);
    if (!q->images.len) {
        if (q->dim != (uint32_t)dim)
            return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                       "dim is %u, the gallery's embeddings have %d components "
                                       "(the server's model %.200s)",
                                       q->dim, dim,
                                       siam_weights_spec(siam_gallery_view_weights(v)));
        *emb = q->embeddings;
        *nq = q->n_embeddings / q->dim;
        return SIAM_RPC_OK;
    }
    siam_weights *w = siam_gallery_view_weights(v);
    size_t in = siam_weights_image_bytes(w);
    if (q->images.len % in != 0) {
        char what[96];
        svc_image_text(w, what, sizeof what);
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "images has %zu bytes, expected a non-zero multiple of %s "
                                   "per query (the model's input shape)",
                                   q->images.len, what);
    }
    *nq = q->images.len / in;
    if (*nq > SIAM_SERVICE_MAX_SEARCH_QUERIES)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "images holds %zu queries, expected at most %d per request", *nq,
                                   SIAM_SERVICE_MAX_SEARCH_QUERIES);
    float *out = malloc(*nq * (size_t)dim * sizeof *out);
    if (!out)
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "out of memory embedding %zu queries", *nq);
    siam_error err = {0};
    if (siam_inference_embed(svc->pool, w, q->images.data, *nq, out, &err)) {
        free(out);
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED, "embedding: %s", err.msg);
    }
    *owned = out;
    *emb = out;
    return SIAM_RPC_OK;
}

/* The answer of nq queries with their k nearest of v (idx, d2: nq x k). */
static int encode_search(siam_service *svc, siam_gallery_view *v, size_t nq, int k,
                         const uint32_t *idx, const float *d2, siam_rpc_buf *resp,
                         siam_rpc_status *st) {
    size_t nm = nq * (size_t)k;
    Siam__V1__SearchResult *res = malloc((nq ? nq : 1) * sizeof *res);
    Siam__V1__SearchResult **resp_ptrs = malloc((nq ? nq : 1) * sizeof *resp_ptrs);
    Siam__V1__SearchMatch *m = malloc((nm ? nm : 1) * sizeof *m);
    Siam__V1__SearchMatch **mp = malloc((nm ? nm : 1) * sizeof *mp);
    uint32_t *lab = malloc((size_t)k * sizeof *lab);
    float *dist = malloc((size_t)k * sizeof *dist);
    int rc;
    if (!res || !resp_ptrs || !m || !mp || !lab || !dist) {
        rc = siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                 "out of memory for the answer to %zu queries", nq);
        goto done;
    }
    float thr = svc->threshold;
    const siam_gallery *g = svc->gallery;
    for (size_t i = 0; i < nq; i++) {
        for (int j = 0; j < k; j++) {
            size_t at = i * (size_t)k + (size_t)j, item = idx[at];
            Siam__V1__SearchMatch x = SIAM__V1__SEARCH_MATCH__INIT;
            x.id = siam_gallery_item_id(g, item);
            x.label = (char *)siam_gallery_item_label(g, item);
            x.distance = sqrtf(d2[at]);
            if (!isfinite(x.distance)) {
                rc = siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                         "query %zu is so far from the gallery that its distances "
                                         "overflow float: embeddings must be of the model's scale",
                                         i);
                goto done;
            }
            x.score = siam_score(x.distance, thr);
            m[at] = x;
            mp[at] = &m[at];
            lab[j] = siam_gallery_item_label_id(g, item);
            dist[j] = x.distance;
        }
        double share = 0;
        uint32_t won = siam_knn_vote_weighted(lab, dist, k, &share);
        Siam__V1__SearchResult r = SIAM__V1__SEARCH_RESULT__INIT;
        r.n_matches = (size_t)k;
        r.matches = mp + i * (size_t)k;
        for (int j = 0; j < k; j++) /* the winner's name, from one of its matches */
            if (lab[j] == won) {
                r.predicted_label = m[i * (size_t)k + (size_t)j].label;
                break;
            }
        r.confidence = (float)share;
        res[i] = r;
        resp_ptrs[i] = &res[i];
    }
    Siam__V1__SearchResponse out = SIAM__V1__SEARCH_RESPONSE__INIT;
    out.n_results = nq;
    out.results = resp_ptrs;
    out.model_round = siam_weights_round(siam_gallery_view_weights(v));
    out.gallery_size = siam_gallery_view_size(v);
    rc = svc_encode(&out.base, "SearchResponse", resp, st);
done:
    free(res);
    free(resp_ptrs);
    free(m);
    free(mp);
    free(lab);
    free(dist);
    return rc;
}

int siam_service_search(siam_service *svc, const uint8_t *req, size_t len, siam_rpc_buf *resp,
                        siam_rpc_status *st) {
    int rc = svc_begin(svc, resp, st);
    if (rc)
        return rc;
    decode_alloc da;
    Siam__V1__SearchRequest *q = (Siam__V1__SearchRequest *)svc_decode(
        &siam__v1__search_request__descriptor, &da, req, len, st);
    if (!q)
        return st->code;
    uint32_t k = 0;
    siam_gallery_view *v = NULL;
    float *owned = NULL, *d2 = NULL;
    uint32_t *idx = NULL;
    if ((rc = check_queries(q, &k, st)))
        goto done;
    if (q->images.len) { /* the model first: without one the shape of an image is unknown */
        siam_weights *w = svc_weights(svc);
        siam_weights_release(w);
        if (!w) {
            rc = siam_rpc_status_set(
                st, SIAM_RPC_FAILED_PRECONDITION,
                "the server has no model to embed query images yet: it gets one when the first "
                "worker joins with siam-client --sync-every, or from siam-server --model or "
                "--resume; search with embeddings (dim, embeddings) meanwhile");
            goto done;
        }
    }
    v = siam_gallery_acquire(svc->gallery);
    if (!v || siam_gallery_view_size(v) == 0) {
        rc = gallery_not_ready(svc, st);
        goto done;
    }
    const float *emb = NULL;
    size_t nq = 0;
    if ((rc = query_embeddings(svc, q, v, &emb, &owned, &nq, st)))
        goto done;
    size_t n = siam_gallery_view_size(v);
    int kk = (size_t)k < n ? (int)k : (int)n;
    idx = malloc(nq * (size_t)kk * sizeof *idx);
    d2 = malloc(nq * (size_t)kk * sizeof *d2);
    siam_error err = {0};
    if (!idx || !d2)
        rc = siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                 "out of memory for the matches of %zu queries", nq);
    else if (siam_knn_neighbours_normed(emb, nq, siam_gallery_view_embeddings(v),
                                        siam_gallery_view_norms(v), n, siam_gallery_view_dim(v), kk,
                                        idx, d2, &err))
        rc = siam_rpc_status_set(
            st, err.code == SIAM_ERR_NOMEM ? SIAM_RPC_RESOURCE_EXHAUSTED : SIAM_RPC_INTERNAL,
            "search: %s", err.msg);
    else
        rc = encode_search(svc, v, nq, kk, idx, d2, resp, st);
done:
    free(idx);
    free(d2);
    free(owned);
    siam_gallery_view_release(v);
    siam__v1__search_request__free_unpacked(q, &da.base);
    return rc;
}

/* ---- AddToGallery ---- */

int siam_service_add_to_gallery(siam_service *svc, const uint8_t *req, size_t len,
                                siam_rpc_buf *resp, siam_rpc_status *st) {
    int rc = svc_begin(svc, resp, st);
    if (rc)
        return rc;
    decode_alloc da;
    Siam__V1__GalleryAddRequest *q = (Siam__V1__GalleryAddRequest *)svc_decode(
        &siam__v1__gallery_add_request__descriptor, &da, req, len, st);
    if (!q)
        return st->code;
    int h = 0, w = 0, c = 0;
    siam_weights *wt = svc_weights(svc);
    if (!siam_gallery_shape(svc->gallery, &h, &w, &c) && wt)
        siam_weights_input_shape(wt, &h, &w, &c); /* the gallery takes the model's shape */
    siam_weights_release(wt);
    size_t in = (size_t)h * (size_t)w * (size_t)c, n = in ? q->images.len / in : 0;
    uint64_t *ids = NULL;
    if (q->images.len == 0)
        rc = siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                 "images is empty: give n images (n x H*W*C bytes of the model's "
                                 "input shape) and n labels");
    else if (!in)
        rc = siam_rpc_status_set(st, SIAM_RPC_FAILED_PRECONDITION,
                                 "the server has no model and no gallery yet, so it does not know "
                                 "the images' shape: start siam-server with --model, --resume or "
                                 "--gallery, or let a worker join first");
    else if (q->images.len % in != 0)
        rc = siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                 "images has %zu bytes, expected a non-zero multiple of %zu bytes "
                                 "= one %dx%dx%d image (the gallery's input shape)",
                                 q->images.len, in, h, w, c);
    else if (n > SIAM_GALLERY_MAX_ADD)
        rc = siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                 "images holds %zu images, expected at most %d per request", n,
                                 SIAM_GALLERY_MAX_ADD);
    else if (q->n_labels != n)
        rc = siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                 "labels has %zu labels, expected one per image (%zu)", q->n_labels,
                                 n);
    for (size_t i = 0; !rc && i < n; i++) {
        char why[128];
        if (siam_gallery_check_label(q->labels[i], strlen(q->labels[i]), why, sizeof why))
            rc = siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT, "labels[%zu] %s", i, why);
    }
    if (!rc && !(ids = malloc(n * sizeof *ids)))
        rc = siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED, "out of memory");
    siam_gallery_info info;
    siam_error err = {0};
    if (!rc && siam_gallery_add(svc->gallery, q->images.data, n, (const char *const *)q->labels,
                                ids, &info, &err)) {
        int code =
            err.code == SIAM_ERR_LIMIT || err.code == SIAM_ERR_NOMEM ? SIAM_RPC_RESOURCE_EXHAUSTED
            : err.code == SIAM_ERR_ARG && strstr(err.msg, "shape")   ? SIAM_RPC_FAILED_PRECONDITION
                                                                     : SIAM_RPC_INVALID_ARGUMENT;
        rc = siam_rpc_status_set(st, code, "%s", err.msg);
    }
    if (!rc) {
        Siam__V1__GalleryAddResponse r = SIAM__V1__GALLERY_ADD_RESPONSE__INIT;
        r.n_ids = n;
        r.ids = ids;
        r.gallery_size = info.items;
        r.model_round = info.round;
        rc = svc_encode(&r.base, "GalleryAddResponse", resp, st);
        LOG_DEBUG("service", "AddToGallery: %zu items (the first labelled '%s'), gallery of %zu", n,
                  q->labels[0], info.items);
    }
    free(ids);
    siam__v1__gallery_add_request__free_unpacked(q, &da.base);
    return rc;
}
