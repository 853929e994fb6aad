/* siam_search: `siam-client search`, the nearest gallery items of query images from the server's
 * Search, printed (text or JSON lines) and drawn (--picture); `gallery-add` is siam_search_add.c.
 */
#include "siam_search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "siam/v1/siam.pb-c.h"
#include "siam_cli_common.h"
#include "siam_cli_remote.h"
#include "siam_dataset.h"
#include "siam_log.h"
#include "siam_options.h"
#include "siam_search_internal.h"
#include "siam_search_picture.h"
#include "siam_wire.h"

#define SEARCH_PROG "siam-client search"
/* The limits of SearchRequest.k (siam.proto). */
#define SEARCH_K_MAX 64

typedef struct {
    siam_cli_remote remote;
    const char *data, *log_level, *picture, *gallery_images;
    const char *unused_image, *unused_test, *unused_train; /* in --help only: split out first */
    int k, batch, json;
} search_config;

/* The answers: one SearchResponse per batch, and per query its result and its batch's round. */
typedef struct {
    Siam__V1__SearchResponse **resp;
    size_t n_resp;
    const Siam__V1__SearchResult **result; /* per query */
    uint64_t *round;                       /* per query: its answer's model_round */
    uint64_t gallery_size;                 /* of the first answer */
    uint64_t round_min, round_max;
    double seconds;
} search_answers;

static void answers_free(search_answers *a) {
    for (size_t i = 0; i < a->n_resp; i++)
        siam__v1__search_response__free_unpacked(a->resp[i], NULL);
    free(a->resp);
    free(a->result);
    free(a->round);
    memset(a, 0, sizeof *a);
}

/* One Search call. While the server answers UNAVAILABLE and still answers Status (its gallery
 * is being embedded for the first time: searchable in a few seconds), it is retried for up to
 * --timeout. */
static int search_call(search_config *c, const uint8_t *buf, size_t len, siam_rpc_buf *resp,
                       siam_rpc_status *st) {
    double t0 = siam_now(), wait = 0.1;
    int logged = 0;
    while (1) {
        int code = siam_cli_remote_try(&c->remote, SIAM_METHOD_SEARCH, buf, len, resp, st);
        if (code != SIAM_RPC_UNAVAILABLE || siam_now() - t0 + wait > (double)c->remote.timeout)
            return code;
        siam_rpc_buf sb = {0};
        siam_rpc_status sst;
        if (siam_cli_remote_try(&c->remote, SIAM_METHOD_STATUS, NULL, 0, &sb, &sst) != SIAM_RPC_OK)
            return code; /* the server itself is gone */
        siam_rpc_buf_free(&sb);
        if (!logged++)
            LOG_WARN("search", "siam-server at %s: %s; retrying for up to --timeout %g s",
                     c->remote.server, st->msg, (double)c->remote.timeout);
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        nanosleep(&ts, NULL);
        if (wait < 1.0)
            wait *= 2;
    }
}

/* Sends the queries in batches; fills a. Returns 0, or 1 after printing why. */
static int run_search(search_config *c, const image_set *q, search_answers *a) {
    size_t bytes = (size_t)q->h * q->w * q->c;
    size_t n_batches = (q->n + (size_t)c->batch - 1) / (size_t)c->batch;
    memset(a, 0, sizeof *a);
    a->resp = calloc(n_batches, sizeof *a->resp);
    a->result = calloc(q->n, sizeof *a->result);
    a->round = calloc(q->n, sizeof *a->round);
    if (!a->resp || !a->result || !a->round) {
        fprintf(stderr, SEARCH_PROG ": out of memory for %zu queries\n", q->n);
        return 1;
    }
    double t0 = siam_now();
    for (size_t b = 0; b < q->n; b += (size_t)c->batch) {
        size_t m = q->n - b < (size_t)c->batch ? q->n - b : (size_t)c->batch;
        Siam__V1__SearchRequest rq = SIAM__V1__SEARCH_REQUEST__INIT;
        rq.images.data = q->px + b * bytes;
        rq.images.len = m * bytes;
        rq.k = (uint32_t)c->k;
        size_t len = siam__v1__search_request__get_packed_size(&rq);
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf) {
            fprintf(stderr, SEARCH_PROG ": out of memory\n");
            return 1;
        }
        siam__v1__search_request__pack(&rq, buf);
        siam_rpc_buf resp = {0};
        siam_rpc_status st;
        int code = search_call(c, buf, len, &resp, &st);
        free(buf);
        if (code != SIAM_RPC_OK) {
            siam_cli_remote_report(&c->remote, "Search", &st);
            return 1;
        }
        Siam__V1__SearchResponse *r = siam__v1__search_response__unpack(NULL, resp.len, resp.data);
        siam_rpc_buf_free(&resp);
        if (!r || r->n_results != m) {
            fprintf(stderr,
                    SEARCH_PROG ": error: siam-server at %s: the Search answer %s (%zu results "
                                "for %zu queries)\n",
                    c->remote.server, r ? "has the wrong number of results" : "does not parse",
                    r ? r->n_results : 0, m);
            if (r)
                siam__v1__search_response__free_unpacked(r, NULL);
            return 1;
        }
        a->resp[a->n_resp++] = r;
        if (a->n_resp == 1) {
            a->gallery_size = r->gallery_size;
            a->round_min = a->round_max = r->model_round;
        }
        if (r->model_round < a->round_min)
            a->round_min = r->model_round;
        if (r->model_round > a->round_max)
            a->round_max = r->model_round;
        for (size_t i = 0; i < m; i++) {
            a->result[b + i] = r->results[i];
            a->round[b + i] = r->model_round;
        }
        LOG_DEBUG("search", "batch of %zu queries: model round %llu, gallery %llu", m,
                  (unsigned long long)r->model_round, (unsigned long long)r->gallery_size);
    }
    a->seconds = siam_now() - t0;
    return 0;
}

/* "7 Sneaker" for a class label, the label itself otherwise. */
static const char *label_text(const char *label, char *buf, size_t cap) {
    int cls;
    if (label_class(label, &cls))
        snprintf(buf, cap, "%s %s", label, siam_cli_class_name(cls));
    else
        snprintf(buf, cap, "%s", label);
    return buf;
}

/* 1 when the label is the query's known class, 0 when it is another class number, -1 when it
 * cannot be told (a query without a class, or a label that is a name, not a class number). */
static int label_right(const char *label, int cls) {
    int lc;
    if (cls < 0 || !label_class(label, &lc))
        return -1;
    return lc == cls;
}

static void print_text(const search_config *c, const image_set *q, const search_answers *a) {
    char lb[160];
    printf(SEARCH_PROG ": %zu quer%s, k=%d, against the %llu-item gallery of siam-server at %s "
                       "(model round %llu",
           q->n, q->n == 1 ? "y" : "ies", c->k, (unsigned long long)a->gallery_size,
           c->remote.server, (unsigned long long)a->round_min);
    if (a->round_max != a->round_min)
        printf(" to %llu: the model changed during the search; each answer used one round",
               (unsigned long long)a->round_max);
    printf(")\n");
    for (size_t i = 0; i < q->n; i++) {
        const Siam__V1__SearchResult *r = a->result[i];
        printf("\nquery %zu: %s", i + 1, q->name[i]);
        if (q->cls[i] >= 0)
            printf(" (class %d %s)", q->cls[i], siam_cli_class_name(q->cls[i]));
        printf("\n  predicted %s, confidence %.4f", label_text(r->predicted_label, lb, sizeof lb),
               (double)r->confidence);
        int right = label_right(r->predicted_label, q->cls[i]);
        printf("%s", right < 0 ? "" : right ? " (right)" : " (wrong)");
        if (a->round_max != a->round_min)
            printf(", model round %llu", (unsigned long long)a->round[i]);
        printf("\n  %4s  %10s  %-24s  %10s  %7s\n", "rank", "id", "label", "distance", "score");
        for (size_t j = 0; j < r->n_matches; j++) {
            const Siam__V1__SearchMatch *m = r->matches[j];
            printf("  %4zu  %10llu  %-24s  %10.4f  %7.4f\n", j + 1, (unsigned long long)m->id,
                   label_text(m->label, lb, sizeof lb), (double)m->distance, (double)m->score);
        }
        if (r->n_matches == 0)
            printf("  (no matches)\n");
    }
}

static void print_json(const search_config *c, const image_set *q, const search_answers *a) {
    for (size_t i = 0; i < q->n; i++) {
        const Siam__V1__SearchResult *r = a->result[i];
        printf("{\"query\": %zu, \"source\": ", i);
        siam_cli_json_string(stdout, q->name[i]);
        if (q->cls[i] >= 0)
            printf(", \"class\": %d", q->cls[i]);
        printf(", \"predicted_label\": ");
        siam_cli_json_string(stdout, r->predicted_label);
        printf(", \"confidence\": %.6f, \"model_round\": %llu, \"matches\": [",
               (double)r->confidence, (unsigned long long)a->round[i]);
        for (size_t j = 0; j < r->n_matches; j++) {
            const Siam__V1__SearchMatch *m = r->matches[j];
            printf("%s{\"rank\": %zu, \"id\": %llu, \"label\": ", j ? ", " : "", j + 1,
                   (unsigned long long)m->id);
            siam_cli_json_string(stdout, m->label);
            printf(", \"distance\": %.9g, \"score\": %.6f}", (double)m->distance, (double)m->score);
        }
        printf("]}\n");
    }
    (void)c;
}

/* For queries of the data set: how often the top-1 and the predicted label are their class. */
static void print_summary(const search_config *c, const image_set *q, const search_answers *a) {
    size_t known = 0, top1 = 0, pred = 0;
    for (size_t i = 0; i < q->n; i++) {
        if (q->cls[i] < 0)
            continue;
        known++;
        const Siam__V1__SearchResult *r = a->result[i];
        top1 += r->n_matches > 0 && label_right(r->matches[0]->label, q->cls[i]) == 1;
        pred += label_right(r->predicted_label, q->cls[i]) == 1;
    }
    if (c->json) {
        printf("{\"summary\": {\"queries\": %zu, \"k\": %d, \"gallery_size\": %llu, "
               "\"model_round_min\": %llu, \"model_round_max\": %llu, \"seconds\": %.3f, "
               "\"queries_with_class\": %zu",
               q->n, c->k, (unsigned long long)a->gallery_size, (unsigned long long)a->round_min,
               (unsigned long long)a->round_max, a->seconds, known);
        if (known)
            printf(", \"top1_accuracy\": %.6f, \"predicted_accuracy\": %.6f",
                   (double)top1 / (double)known, (double)pred / (double)known);
        printf("}}\n");
        return;
    }
    printf("\n%zu quer%s in %.2f s", q->n, q->n == 1 ? "y" : "ies", a->seconds);
    if (known)
        printf("; of the %zu from the data set, the nearest match has their class for %zu "
               "(top-1 accuracy %.4f), the predicted label for %zu (%.4f, k=%d)",
               known, top1, (double)top1 / (double)known, pred, (double)pred / (double)known, c->k);
    printf("\n");
}

/* The picture: up to SIAM_PICTURE_MAX_QUERIES queries and their first
 * SIAM_PICTURE_MAX_MATCHES matches; match images from --gallery-images when their id is in it. */
static int draw_picture(const search_config *c, const image_set *q, const search_answers *a,
                        const uint8_t *gallery_px, size_t gallery_n, siam_error *err) {
    int n_rows = q->n < SIAM_PICTURE_MAX_QUERIES ? (int)q->n : SIAM_PICTURE_MAX_QUERIES;
    siam_picture_row *rows = calloc((size_t)n_rows, sizeof *rows);
    if (!rows)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory");
    size_t bytes = (size_t)q->h * q->w;
    char lb[160];
    for (int i = 0; i < n_rows; i++) {
        siam_picture_row *row = &rows[i];
        const Siam__V1__SearchResult *r = a->result[i];
        row->query.pixels = q->px + (size_t)i * bytes;
        const char *slash = strrchr(q->name[i], '/'); /* a file: its name, not its directory */
        snprintf(row->query.line1, sizeof row->query.line1, "%.40s",
                 q->cls[i] < 0 && slash ? slash + 1 : q->name[i]);
        if (q->cls[i] >= 0)
            snprintf(row->query.line2, sizeof row->query.line2, "class %d %s", q->cls[i],
                     siam_cli_class_name(q->cls[i]));
        else
            snprintf(row->query.line2, sizeof row->query.line2, "predicted %.40s",
                     label_text(r->predicted_label, lb, sizeof lb));
        row->n_matches =
            r->n_matches < SIAM_PICTURE_MAX_MATCHES ? (int)r->n_matches : SIAM_PICTURE_MAX_MATCHES;
        for (int j = 0; j < row->n_matches; j++) {
            const Siam__V1__SearchMatch *m = r->matches[j];
            siam_picture_tile *t = &row->matches[j];
            t->pixels = gallery_px && m->id < gallery_n ? gallery_px + m->id * bytes : NULL;
            snprintf(t->line1, sizeof t->line1, "%d. %.40s", j + 1,
                     label_text(m->label, lb, sizeof lb));
            snprintf(t->line2, sizeof t->line2, "D=%.3f  id %llu", (double)m->distance,
                     (unsigned long long)m->id);
            int right = label_right(m->label, q->cls[i]);
            t->verdict = right < 0 ? SIAM_TILE_UNKNOWN : right ? SIAM_TILE_RIGHT : SIAM_TILE_WRONG;
        }
    }
    char title[400];
    snprintf(title, sizeof title,
             "Search: %d of %zu quer%s (left), nearest of %llu gallery items, model round %llu\n"
             "green: the query's class, red: another class, grey: not known",
             n_rows, q->n, q->n == 1 ? "y" : "ies", (unsigned long long)a->gallery_size,
             (unsigned long long)a->round_min);
    int rc = siam_picture_draw(c->picture, title, rows, n_rows, q->h, q->w, err);
    free(rows);
    return rc;
}

/* The session after the command line: Status, the queries, Search, the output. */
static int search(search_config *c, const image_args *ia) {
    Siam__V1__StatusResponse *st = NULL;
    image_set q = {0};
    search_answers a = {0};
    uint8_t *gallery_px = NULL;
    size_t gallery_n = 0;
    siam_error err = {0};
    int rc = 1, h = 28, w = 28, ch = 1;
    if (siam_cli_remote_open(&c->remote)) {
        rc = 2;
        goto done;
    }
    if (siam_cli_remote_status(&c->remote, &st))
        goto done;
    /* no model yet: the images are sent at Fashion-MNIST's shape, and the server answers why not */
    if (st->input_shape[0] && siam_cli_parse_shape(st->input_shape, &h, &w, &ch) != 0) {
        fprintf(stderr,
                SEARCH_PROG ": error: siam-server at %s: input shape '%s' in its Status is not "
                            "HxWxC\n",
                c->remote.server, st->input_shape);
        goto done;
    }
    LOG_INFO("search",
             "siam-server at %s: model %s, input %dx%dx%d, gallery of %llu items "
             "(round %llu), model round %llu",
             c->remote.server, st->model_spec[0] ? st->model_spec : "(none yet)", h, w, ch,
             (unsigned long long)st->gallery_size, (unsigned long long)st->gallery_round,
             (unsigned long long)st->round);
    if (image_set_load(&q, ia->src, ia->n_src, c->data, h, w, ch, &err)) {
        fprintf(stderr, SEARCH_PROG ": error: %s\n", err.msg);
        goto done;
    }
    if (c->picture && c->gallery_images) {
        int gr, gc;
        if (image_idx_read(c->gallery_images, 0, &gallery_px, &gallery_n, &gr, &gc, &err)) {
            fprintf(stderr, SEARCH_PROG ": error: --gallery-images: %s\n", err.msg);
            goto done;
        }
        if (gr != h || gc != w || ch != 1) {
            fprintf(stderr,
                    SEARCH_PROG ": error: --gallery-images %s holds %dx%d images; the server's "
                                "model takes %dx%dx%d\n",
                    c->gallery_images, gr, gc, h, w, ch);
            goto done;
        }
    }
    if (run_search(c, &q, &a))
        goto done;
    if (c->json)
        print_json(c, &q, &a);
    else
        print_text(c, &q, &a);
    print_summary(c, &q, &a);
    fflush(stdout);
    if (c->picture) {
        if (draw_picture(c, &q, &a, gallery_px, gallery_n, &err)) {
            fprintf(stderr, SEARCH_PROG ": error: %s\n", err.msg);
            goto done;
        }
        fprintf(stderr, SEARCH_PROG ": wrote %s (%zu of %zu queries%s)\n", c->picture,
                q.n < SIAM_PICTURE_MAX_QUERIES ? q.n : (size_t)SIAM_PICTURE_MAX_QUERIES, q.n,
                c->gallery_images ? "" : "; match images need --gallery-images IDX");
    }
    rc = 0;
done:
    answers_free(&a);
    image_set_free(&q);
    free(gallery_px);
    if (st)
        siam__v1__status_response__free_unpacked(st, NULL);
    siam_cli_remote_close(&c->remote);
    return rc;
}

int siam_search_main(int argc, char **argv) {
    search_config c = {.data = SIAM_DATA_DIR_DEFAULT, .log_level = "warn", .k = 5, .batch = 64};
    siam_option opts[SIAM_CLI_REMOTE_N_OPTIONS + 12];
    int n = 0;
    siam_cli_remote_options(&c.remote, SEARCH_PROG, opts);
    n += SIAM_CLI_REMOTE_N_OPTIONS;
    opts[n++] = (siam_option){"image",
                              SIAM_OPT_STRING,
                              &c.unused_image,
                              0,
                              0,
                              NULL,
                              "A.pgm [B.pgm ...]",
                              "query with these grey PGM files (P5 or P2) of the model's input "
                              "size (Status input_shape; 28x28 for every builder)"};
    opts[n++] = (siam_option){"test-index",
                              SIAM_OPT_STRING,
                              &c.unused_test,
                              0,
                              0,
                              NULL,
                              "LIST",
                              "query with these Fashion-MNIST test images: 0,17,42 or ranges "
                              "0-99 (their class is known: the summary says how often it is "
                              "found)"};
    opts[n++] = (siam_option){"train-index",
                              SIAM_OPT_STRING,
                              &c.unused_train,
                              0,
                              0,
                              NULL,
                              "LIST",
                              "the same with images of the training set"};
    opts[n++] = (siam_option){"k",          SIAM_OPT_INT, &c.k, 1,
                              SEARCH_K_MAX, NULL,         "N",  "matches per query (also -k N)"};
    opts[n++] =
        (siam_option){"data",  SIAM_OPT_STRING,
                      &c.data, 0,
                      0,       NULL,
                      "DIR",   "Fashion-MNIST IDX directory (for --test-index, --train-index)"};
    opts[n++] = (siam_option){
        "batch", SIAM_OPT_INT, &c.batch, 1,
        1024,    NULL,         "N",      "queries per Search call (the server takes up to 1024)"};
    opts[n++] =
        (siam_option){"json",  SIAM_OPT_FLAG,
                      &c.json, 0,
                      0,       NULL,
                      NULL,    "print one JSON object per query, then one {\"summary\": ...} line"};
    opts[n++] = (siam_option){"picture",
                              SIAM_OPT_STRING,
                              &c.picture,
                              0,
                              0,
                              NULL,
                              "PNG",
                              "also draw the first queries beside their top matches with labels "
                              "and distances into this PNG (needs gnuplot)"};
    opts[n++] = (siam_option){"gallery-images",
                              SIAM_OPT_STRING,
                              &c.gallery_images,
                              0,
                              0,
                              NULL,
                              "IDX",
                              "--picture: the IDX images file the server's gallery was loaded "
                              "from (siam-server --gallery), to draw the matches (gallery id = "
                              "index in it; other ids are drawn as empty boxes)"};
    opts[n++] =
        (siam_option){"log-level", SIAM_OPT_CHOICE,         &c.log_level, 0,
                      0,           "debug|info|warn|error", NULL,         "stderr log level"};
    image_args ia;
    int rc = image_args_split(SEARCH_PROG, argc, argv, &ia);
    if (rc < 0)
        rc = siam_options_main(
            SEARCH_PROG, SIAM_VERSION,
            "Identify images: the server's Search embeds each query with its global model and\n"
            "answers its k nearest gallery items (siam-server --gallery, siam-client\n"
            "gallery-add): rank, id, label, distance and score, and a predicted label (the\n"
            "distance-weighted vote of the k) with its confidence, from one model round.\n"
            "Queries are PGM files (--image) or images of the Fashion-MNIST test or training\n"
            "set (--test-index, --train-index; given in any mix and order).",
            opts, n, ia.n_rest, ia.rest);
    if (rc >= 0) {
        image_args_free(&ia);
        return rc;
    }
    if (ia.n_src == 0) {
        fprintf(stderr, SEARCH_PROG ": give the queries: --image A.pgm [B.pgm ...], --test-index "
                                    "LIST or --train-index LIST (see --help)\n");
        image_args_free(&ia);
        return 2;
    }
    if (c.gallery_images && !c.picture) {
        fprintf(stderr, SEARCH_PROG ": --gallery-images is for --picture (the match images)\n");
        image_args_free(&ia);
        return 2;
    }
    if ((rc = image_args_check(SEARCH_PROG, &ia)) >= 0) {
        image_args_free(&ia);
        return rc;
    }
    siam_cli_set_log_level(c.log_level);
    if ((rc = siam_cli_remote_check(&c.remote)) != 0) {
        image_args_free(&ia);
        return rc;
    }
    if (c.picture && !siam_picture_have_gnuplot()) {
        fprintf(stderr, SEARCH_PROG ": --picture needs gnuplot, which is not installed: apt-get "
                                    "install gnuplot-nox (or scripts/install-deps.sh)\n");
        image_args_free(&ia);
        siam_cli_remote_close(&c.remote);
        return 1;
    }
    siam_rpc_init();
    rc = search(&c, &ia);
    siam_rpc_shutdown();
    image_args_free(&ia);
    return rc;
}
