/* bench_compress.c: suite compress, whether gRPC's message compression (gzip) would pay on
 * siam's traffic. The payloads are real messages, serialized with protobuf-c as the worker and
 * the server send them:
 *   weights  a WeightsUpdate (SyncWeights) of the model's parameters: --checkpoint's trained
 *            ones, else freshly initialised ones of --model; in params (fp32), and packed in
 *            blocks of 256 values (fp16, bf16, int8) as SyncWeights' compact encodings;
 *   batch    an EmbeddingBatch (Train) of B pairs of Fashion-MNIST training images (the
 *            reference pairs, shuffled), embedded by the model as a worker does (training
 *            forward, one pass per side), in every wire encoding;
 *   result   the server's BatchResult for it: distances and grad_left of the contrastive loss
 *            (margin 1), grad_right omitted as siam-client asks, computed from the embeddings the
 *            server decodes, in the batch's encoding.
 * Each is compressed the way gRPC's C core compresses a whole message for "gzip" (its
 * zlib_compress: deflateInit2 with windowBits 15 + 16, memLevel 8, the default strategy, output
 * in 1 KiB blocks, a fresh stream per message; gRPC itself always uses zlib's default level 6,
 * level 1 shows what a faster setting would give). Per payload and level: the ratio
 * compressed / raw, compress and decompress MB/s of raw bytes (medians over --reps windows of
 * about 0.2 s each), and the link rate below which compression pays: it saves
 * raw * (1 - ratio) bytes on the link and costs t_c + t_d of CPU, one after the other (gRPC
 * compresses a message before it sends it and inflates it once received), so it pays when the
 * link is slower than raw * (1 - ratio) * 8 / (t_c + t_d) bits/s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "bench_stats.h"
#include "bench_suites.h"
#include "siam/v1/siam.pb-c.h"
#include "siam_checkpoint.h"
#include "siam_dataset.h"
#include "siam_encoding.h"
#include "siam_loss.h"
#include "siam_model.h"
#include "siam_pairs.h"
#include "siam_tensor.h"

#define GZ_WINDOW_BITS (15 + 16) /* gzip framing, gRPC's "gzip" */
#define GZ_MEM_LEVEL   8
#define GZ_BLOCK       1024 /* gRPC inflates and deflates into slices of this size */
#define COMP_SEED      1
#define COMP_WORKER    "siam-bench-w0"
#define COMP_MARGIN    1.0f /* siam-server's default --margin */
#define COMP_LEVELS    2
static const int comp_levels[COMP_LEVELS] = {1, 6};
/* the links the conclusion is drawn for, Mbit/s (docs/BENCHMARKS.md "Links") */
static const double comp_links[] = {20.0, 100.0, 1000.0};
#define COMP_LINKS ((int)(sizeof comp_links / sizeof comp_links[0]))

/* One serialized message. */
typedef struct {
    char name[40]; /* weights.fp32, batch.b128.int8, result.b857.fp16 */
    const char *kind, *message;
    int batch; /* pairs; 0 for weights */
    int encoding;
    uint8_t *raw;
    size_t raw_len;
} comp_payload;

/* One payload at one level. */
typedef struct {
    int payload, level;
    size_t gz_len;
    double ratio, compress_mb_s, decompress_mb_s, break_even_mbit_s;
} comp_row;

/* ---- gzip as gRPC calls zlib ---- */

/* Runs zs (deflating: to the end of the member; else inflating) over in into out in slices of
 * GZ_BLOCK, as gRPC's core does: the bytes written once the stream ended, 0 otherwise. */
static size_t gz_pump(z_stream *zs, int deflating, const uint8_t *in, size_t len, uint8_t *out,
                      size_t cap) {
    zs->next_in = (Bytef *)in;
    zs->avail_in = (uInt)len;
    size_t done = 0;
    int r = Z_OK;
    while (r != Z_STREAM_END && done < cap) {
        uInt room = (uInt)(cap - done < GZ_BLOCK ? cap - done : GZ_BLOCK);
        zs->next_out = out + done;
        zs->avail_out = room;
        r = deflating ? deflate(zs, Z_FINISH) : inflate(zs, Z_NO_FLUSH);
        done += room - zs->avail_out;
        if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR)
            break;
    }
    return r == Z_STREAM_END ? done : 0;
}

/* in (len bytes) as one gzip member into out (cap bytes): its length, or 0 when zlib fails or
 * out is too small. */
static size_t gz_compress(const uint8_t *in, size_t len, int level, uint8_t *out, size_t cap) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, level, Z_DEFLATED, GZ_WINDOW_BITS, GZ_MEM_LEVEL, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return 0;
    size_t done = gz_pump(&zs, 1, in, len, out, cap);
    deflateEnd(&zs);
    return done;
}

/* The gzip member in (len bytes) into out (cap bytes): the length inflated, or 0 on an error,
 * an incomplete member or one that does not fit. */
static size_t gz_decompress(const uint8_t *in, size_t len, uint8_t *out, size_t cap) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, GZ_WINDOW_BITS) != Z_OK)
        return 0;
    size_t done = gz_pump(&zs, 0, in, len, out, cap);
    inflateEnd(&zs);
    return done;
}

typedef struct {
    const comp_payload *p;
    int level;
    uint8_t *gz, *back;
    size_t gz_len, gz_cap;
} gz_call;

static int gz_call_compress(void *ctx) {
    gz_call *g = ctx;
    return gz_compress(g->p->raw, g->p->raw_len, g->level, g->gz, g->gz_cap) == g->gz_len ? 0 : -1;
}

static int gz_call_decompress(void *ctx) {
    gz_call *g = ctx;
    return gz_decompress(g->gz, g->gz_len, g->back, g->p->raw_len) == g->p->raw_len ? 0 : -1;
}

/* Measures p at level into row: 0, -1 when out of memory, -2 when the round trip fails. */
static int comp_measure(const comp_payload *p, int level, int reps, comp_row *row) {
    gz_call g = {p, level, NULL, NULL, 0, p->raw_len + p->raw_len / 8 + 1024};
    g.gz = malloc(g.gz_cap);
    g.back = malloc(p->raw_len ? p->raw_len : 1);
    int rc = -1;
    if (!g.gz || !g.back)
        goto out;
    rc = -2;
    g.gz_len = gz_compress(p->raw, p->raw_len, level, g.gz, g.gz_cap);
    if (!g.gz_len || gz_decompress(g.gz, g.gz_len, g.back, p->raw_len) != p->raw_len ||
        memcmp(g.back, p->raw, p->raw_len) != 0)
        goto out;
    double c_calls = 0, d_calls = 0;
    if (bench_call_rate(gz_call_compress, &g, reps, &c_calls) ||
        bench_call_rate(gz_call_decompress, &g, reps, &d_calls))
        goto out;
    row->level = level;
    row->gz_len = g.gz_len;
    row->ratio = (double)g.gz_len / (double)p->raw_len;
    row->compress_mb_s = c_calls * (double)p->raw_len / 1e6;
    row->decompress_mb_s = d_calls * (double)p->raw_len / 1e6;
    double saved_bits = 8.0 * ((double)p->raw_len - (double)g.gz_len);
    row->break_even_mbit_s =
        saved_bits > 0 ? saved_bits / (1.0 / c_calls + 1.0 / d_calls) / 1e6 : 0;
    rc = 0;
out:
    free(g.gz);
    free(g.back);
    return rc;
}

/* ---- the messages ---- */

/* msg packed into a malloc'd buffer with room for extra more bytes; NULL when out of memory. */
static uint8_t *pack_message(const ProtobufCMessage *msg, size_t extra, size_t *len) {
    *len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(*len + extra ? *len + extra : 1);
    if (buf)
        protobuf_c_message_pack(msg, buf);
    return buf;
}

/* A WeightsUpdate of params (n floats) in encoding e, as siam-client --sync-wire sends it. */
static int weights_payload(comp_payload *p, siam_model *m, const float *params, size_t n, int e) {
    Siam__V1__WeightsUpdate u = SIAM__V1__WEIGHTS_UPDATE__INIT;
    u.worker_id = (char *)COMP_WORKER;
    u.model_spec = (char *)siam_model_spec(m);
    /* a sync after 10 batches of 857 pairs, in its first averaging round */
    u.samples = 8570, u.step = 10, u.round = 1;
    if (e == SIAM_ENC_FP32) {
        u.n_params = n, u.params = (float *)params;
        p->raw = pack_message(&u.base, 0, &p->raw_len);
        return p->raw ? 0 : -1;
    }
    size_t blocks = siam_encoding_blocks(n), bytes = n * siam_encoding_size(e);
    int scaled = siam_encoding_scaled(e);
    uint8_t *packed = malloc(bytes ? bytes : 1);
    float *scales = malloc(blocks ? blocks * sizeof *scales : 1);
    if (!packed || !scales) {
        free(packed), free(scales);
        p->raw = NULL;
        return -1;
    }
    siam_encode_blocks((siam_encoding)e, params, n, packed, scaled ? scales : NULL);
    u.encoding = (Siam__V1__WireEncoding)e;
    u.params_packed.data = packed, u.params_packed.len = bytes;
    if (scaled)
        u.params_scales = scales, u.n_params_scales = blocks;
    p->raw = pack_message(&u.base, 0, &p->raw_len);
    free(packed), free(scales);
    return p->raw ? 0 : -1;
}

/* The EmbeddingBatch of B pairs (left, right B x dim) in encoding e, as siam-client sends it. */
static int batch_payload(comp_payload *p, const float *left, const float *right,
                         const uint32_t *labels, int B, int dim, int e) {
    size_t n = (size_t)B * (size_t)dim, bytes = n * siam_encoding_size(e);
    Siam__V1__EmbeddingBatch b = SIAM__V1__EMBEDDING_BATCH__INIT;
    b.dim = (uint32_t)dim;
    b.n_labels = (size_t)B, b.labels = (uint32_t *)labels;
    b.step = 1;
    b.worker_id = (char *)COMP_WORKER;
    b.omit_grad_right = 1;
    uint8_t *packed = NULL;
    float *scales = NULL;
    if (e == SIAM_ENC_FP32) {
        b.n_left = b.n_right = n;
        b.left = (float *)left, b.right = (float *)right;
    } else {
        int scaled = siam_encoding_scaled(e);
        packed = malloc(2 * bytes);
        scales = malloc(2 * (size_t)B * sizeof *scales);
        if (!packed || !scales) {
            free(packed), free(scales);
            return -1;
        }
        siam_encode_rows((siam_encoding)e, left, (size_t)B, dim, packed, scaled ? scales : NULL);
        siam_encode_rows((siam_encoding)e, right, (size_t)B, dim, packed + bytes,
                         scaled ? scales + B : NULL);
        b.encoding = (Siam__V1__WireEncoding)e;
        b.left_packed = (ProtobufCBinaryData){bytes, packed};
        b.right_packed = (ProtobufCBinaryData){bytes, packed + bytes};
        if (scaled) {
            b.n_left_scales = b.n_right_scales = (size_t)B;
            b.left_scales = scales, b.right_scales = scales + B;
        }
    }
    p->raw = pack_message(&b.base, 0, &p->raw_len);
    free(packed), free(scales);
    return p->raw ? 0 : -1;
}

/* The server's BatchResult to batch (a packed EmbeddingBatch): it decodes the embeddings,
 * computes the loss and grad_left, and answers in the batch's encoding. */
static int result_payload(comp_payload *p, const comp_payload *batch, siam_error *err) {
    Siam__V1__EmbeddingBatch *b =
        siam__v1__embedding_batch__unpack(NULL, batch->raw_len, batch->raw);
    if (!b)
        return siam_error_set(err, SIAM_ERR_FORMAT, "%s does not unpack", batch->name);
    int B = (int)b->n_labels, dim = (int)b->dim, e = (int)b->encoding;
    size_t n = (size_t)B * (size_t)dim;
    float *buf = malloc((4 * n + (size_t)B) * sizeof *buf);
    float *scales = malloc((size_t)B * sizeof *scales);
    uint8_t *packed = malloc(n * siam_encoding_size(e) + 1);
    Siam__V1__BatchResult r = SIAM__V1__BATCH_RESULT__INIT;
    int rc = SIAM_ERR_NOMEM;
    if (!buf || !scales || !packed)
        goto out;
    float *left = buf, *right = buf + n, *gl = buf + 2 * n, *gr = buf + 3 * n, *dist = buf + 4 * n;
    if (e == SIAM_ENC_FP32) {
        memcpy(left, b->left, n * sizeof *left);
        memcpy(right, b->right, n * sizeof *right);
    } else if ((rc = siam_decode_rows((siam_encoding)e, b->left_packed.data, b->left_packed.len,
                                      b->left_scales, b->n_left_scales, (size_t)B, dim,
                                      "left_packed", "pair", left, err)) ||
               (rc = siam_decode_rows((siam_encoding)e, b->right_packed.data, b->right_packed.len,
                                      b->right_scales, b->n_right_scales, (size_t)B, dim,
                                      "right_packed", "pair", right, err))) {
        goto out;
    }
    r.step = b->step;
    r.loss = siam_contrastive_forward(dist, left, right, b->labels, B, dim, COMP_MARGIN,
                                      SIAM_LABELS_SIMILAR);
    siam_contrastive_backward(gl, gr, left, right, dist, b->labels, B, dim, COMP_MARGIN,
                              SIAM_LABELS_SIMILAR);
    r.n_distances = (size_t)B, r.distances = dist;
    r.grad_right_omitted = 1;
    if (e == SIAM_ENC_FP32) {
        r.n_grad_left = n, r.grad_left = gl;
    } else {
        int scaled = siam_encoding_scaled(e);
        siam_encode_rows((siam_encoding)e, gl, (size_t)B, dim, packed, scaled ? scales : NULL);
        r.grad_left_packed = (ProtobufCBinaryData){n * siam_encoding_size(e), packed};
        if (scaled)
            r.n_grad_left_scales = (size_t)B, r.grad_left_scales = scales;
    }
    p->raw = pack_message(&r.base, 0, &p->raw_len);
    rc = p->raw ? SIAM_OK : SIAM_ERR_NOMEM;
out:
    if (rc == SIAM_ERR_NOMEM)
        siam_error_set(err, rc, "out of memory for the answer to %s", batch->name);
    free(buf), free(scales), free(packed);
    siam__v1__embedding_batch__free_unpacked(b, NULL);
    return rc;
}

/* ---- the model and the data ---- */

/* The model: --checkpoint's (its spec, its trained parameters) or a fresh --model. */
static int comp_model(const bench_config *c, siam_model **m, siam_error *err) {
    if (!c->checkpoint)
        return siam_model_create(m, c->model, COMP_SEED, err);
    siam_checkpoint ck;
    int rc = siam_checkpoint_load(&ck, c->checkpoint, err);
    if (rc)
        return rc;
    if (!(rc = siam_model_create(m, ck.spec, COMP_SEED, err)) &&
        !(rc = siam_checkpoint_check(&ck, c->checkpoint, siam_model_spec(*m),
                                     siam_model_num_params(*m), err)))
        memcpy(siam_model_params(*m), ck.params, ck.n_params * sizeof(float));
    siam_checkpoint_free(&ck);
    return rc;
}

/* The builder's name when spec is one of theirs, else "custom". */
static const char *model_name(const char *spec) {
    static const char *const names[] = {"mlp", "mlp2", "cnn", "cnn2"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char canon[SIAM_SPEC_MAX];
        if (siam_model_spec_parse(names[i], canon, NULL, NULL) == SIAM_OK &&
            strcmp(canon, spec) == 0)
            return names[i];
    }
    return "custom";
}

/* The first B pairs' embeddings, as a worker computes them for a training step. */
static int embed_batch(siam_model *m, const siam_dataset *ds, const siam_pairs *pairs, int B,
                       float *left, float *right, uint32_t *labels, siam_error *err) {
    int in = siam_model_input_size(m), dim = siam_model_output_size(m);
    if (in != ds->rows * ds->cols)
        return siam_error_set(err, SIAM_ERR_MISMATCH,
                              "the model takes %d floats per image, the data has %d x %d", in,
                              ds->rows, ds->cols);
    if ((size_t)B > pairs->n)
        return siam_error_set(err, SIAM_ERR_ARG, "--batch %d: only %zu pairs", B, pairs->n);
    float *x = siam_alloc_floats(2 * (size_t)B * (size_t)in);
    if (!x)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for a batch of %d", B);
    float *xl = x, *xr = x + (size_t)B * (size_t)in;
    for (int i = 0; i < B; i++) {
        memcpy(xl + (size_t)i * in, ds->images + (size_t)pairs->left[i] * in, in * sizeof *x);
        memcpy(xr + (size_t)i * in, ds->images + (size_t)pairs->right[i] * in, in * sizeof *x);
        labels[i] = pairs->labels[i]; /* 1 = same class, siam-server's default convention */
    }
    const float *el, *er;
    siam_model_seed_dropout(m, COMP_SEED);
    int rc = siam_model_forward(m, 0, xl, B, 1, &el, err);
    if (!rc)
        memcpy(left, el, (size_t)B * dim * sizeof *left);
    if (!rc && !(rc = siam_model_forward(m, 1, xr, B, 1, &er, err)))
        memcpy(right, er, (size_t)B * dim * sizeof *right);
    siam_free(x);
    return rc;
}

/* ---- output ---- */

static void comp_print_row(const comp_payload *p, const comp_row *r) {
    printf("compress %-19s %9zu  %d  %9zu  %6.3f  %8.1f  %8.1f  %10.1f ", p->name, p->raw_len,
           r->level, r->gz_len, r->ratio, r->compress_mb_s, r->decompress_mb_s,
           r->break_even_mbit_s);
    for (int l = 0; l < COMP_LINKS; l++)
        printf(" %s", r->break_even_mbit_s > comp_links[l] ? "yes" : "no ");
    printf("\n");
    fflush(stdout);
}

static void comp_json(const bench_config *c, const char *spec, size_t n_params, int dim,
                      const comp_payload *ps, const comp_row *rows, int n_rows) {
    printf("{\"suite\": \"compress\", \"model\": \"%s\", \"spec\": \"%s\", \"params\": \"%s\", "
           "\"checkpoint\": ",
           model_name(spec), spec, c->checkpoint ? "trained" : "fresh");
    if (c->checkpoint) {
        putchar('"');
        for (const char *s = c->checkpoint; *s; s++) {
            if (*s == '"' || *s == '\\')
                putchar('\\');
            putchar((unsigned char)*s < 0x20 ? '?' : *s);
        }
        putchar('"');
    } else {
        printf("null");
    }
    printf(", \"n_params\": %zu, \"dim\": %d, \"reps\": %d, \"worker_id\": \"%s\", "
           "\"window_bits\": %d, \"mem_level\": %d, \"links_mbit_s\": [",
           n_params, dim, c->reps, COMP_WORKER, GZ_WINDOW_BITS, GZ_MEM_LEVEL);
    for (int l = 0; l < COMP_LINKS; l++)
        printf("%s%.0f", l ? ", " : "", comp_links[l]);
    printf("], \"rows\": [");
    for (int i = 0; i < n_rows; i++) {
        const comp_payload *p = &ps[rows[i].payload];
        const comp_row *r = &rows[i];
        printf("%s{\"payload\": \"%s\", \"message\": \"%s\", \"kind\": \"%s\", \"batch\": %d, "
               "\"encoding\": \"%s\", \"level\": %d, \"raw_bytes\": %zu, \"gz_bytes\": %zu, "
               "\"ratio\": %.5f, \"compress_mb_s\": %.2f, \"decompress_mb_s\": %.2f, "
               "\"break_even_mbit_s\": %.3f}",
               i ? ", " : "", p->name, p->message, p->kind, p->batch,
               siam_encoding_name(p->encoding), r->level, p->raw_len, r->gz_len, r->ratio,
               r->compress_mb_s, r->decompress_mb_s, r->break_even_mbit_s);
    }
    printf("]}\n");
}

/* ---- the suite ---- */

typedef struct {
    siam_model *m;
    siam_dataset ds;
    siam_pairs pairs;
    float *left, *right;
    uint32_t *labels;
    comp_payload *ps;
    comp_row *rows;
    int n_ps;
} comp_bench;

static void comp_free(comp_bench *b) {
    for (int i = 0; i < b->n_ps; i++)
        free(b->ps[i].raw);
    free(b->ps), free(b->rows);
    free(b->left), free(b->right), free(b->labels);
    siam_pairs_free(&b->pairs);
    siam_dataset_free(&b->ds);
    siam_model_free(b->m);
}

/* Every payload of the model into b->ps: 0, or a siam error code with err set. */
static int comp_payloads(comp_bench *b, const int *batches, int n_batches, siam_error *err) {
    int dim = siam_model_output_size(b->m);
    size_t n = siam_model_num_params(b->m);
    for (int e = 0; e < SIAM_ENC_COUNT; e++) {
        comp_payload *p = &b->ps[b->n_ps];
        snprintf(p->name, sizeof p->name, "weights.%s", siam_encoding_name(e));
        p->kind = "weights", p->message = "WeightsUpdate", p->encoding = e;
        if (weights_payload(p, b->m, siam_model_params(b->m), n, e))
            return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for %s", p->name);
        b->n_ps++;
    }
    for (int k = 0; k < n_batches; k++) {
        int B = batches[k];
        int rc = embed_batch(b->m, &b->ds, &b->pairs, B, b->left, b->right, b->labels, err);
        if (rc)
            return rc;
        int first = b->n_ps;
        for (int e = 0; e < SIAM_ENC_COUNT; e++) {
            comp_payload *p = &b->ps[b->n_ps];
            snprintf(p->name, sizeof p->name, "batch.b%d.%s", B, siam_encoding_name(e));
            p->kind = "batch", p->message = "EmbeddingBatch", p->batch = B, p->encoding = e;
            if (batch_payload(p, b->left, b->right, b->labels, B, dim, e))
                return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory for %s", p->name);
            b->n_ps++;
        }
        for (int e = 0; e < SIAM_ENC_COUNT; e++) {
            comp_payload *q = &b->ps[b->n_ps];
            snprintf(q->name, sizeof q->name, "result.b%d.%s", B, siam_encoding_name(e));
            q->kind = "result", q->message = "BatchResult", q->batch = B, q->encoding = e;
            if ((rc = result_payload(q, &b->ps[first + e], err)))
                return rc;
            b->n_ps++;
        }
    }
    return SIAM_OK;
}

int bench_suite_compress(const bench_config *c) {
    siam_blas_set_threads(1); /* the forward passes only; nothing timed uses BLAS */
    int batches[2] = {128, 857}, n_batches = 2;
    if (c->batch)
        batches[0] = c->batch, n_batches = 1;
    int max_b = batches[n_batches - 1] > batches[0] ? batches[n_batches - 1] : batches[0];
    comp_bench b;
    memset(&b, 0, sizeof b);
    siam_error err = {0};
    int rc = comp_model(c, &b.m, &err);
    if (!rc)
        rc = siam_dataset_load(&b.ds, c->data, SIAM_SPLIT_TRAIN, 0, &err);
    if (!rc && !(rc = siam_pairs_make(&b.pairs, b.ds.labels, b.ds.n, 10, COMP_SEED, &err)))
        siam_pairs_shuffle(&b.pairs, COMP_SEED);
    if (rc) {
        fprintf(stderr, BENCH_PROG ": compress: %s\n", err.msg);
        comp_free(&b);
        return 1;
    }
    int dim = siam_model_output_size(b.m);
    size_t n_params = siam_model_num_params(b.m), emb = (size_t)max_b * (size_t)dim;
    int max_ps = SIAM_ENC_COUNT * (1 + 2 * n_batches);
    b.left = malloc(emb * sizeof *b.left), b.right = malloc(emb * sizeof *b.right);
    b.labels = malloc((size_t)max_b * sizeof *b.labels);
    b.ps = calloc((size_t)max_ps, sizeof *b.ps);
    b.rows = calloc((size_t)max_ps * COMP_LEVELS, sizeof *b.rows);
    if (!b.left || !b.right || !b.labels || !b.ps || !b.rows) {
        fprintf(stderr, BENCH_PROG ": compress: out of memory\n");
        comp_free(&b);
        return 1;
    }
    const char *spec = siam_model_spec(b.m);
    if ((rc = comp_payloads(&b, batches, n_batches, &err))) {
        fprintf(stderr, BENCH_PROG ": compress: %s\n", err.msg);
        comp_free(&b);
        return 1;
    }

    printf("compress model %s, %zu parameters (%s), embedding dim %d\n", model_name(spec), n_params,
           c->checkpoint ? "trained: --checkpoint" : "fresh: seed 1", dim);
    if (c->checkpoint)
        printf("compress checkpoint %s\n", c->checkpoint);
    printf("compress gzip as gRPC's C core: zlib deflate, windowBits %d, memLevel %d, default "
           "strategy; medians of %d windows\n",
           GZ_WINDOW_BITS, GZ_MEM_LEVEL, c->reps);
    printf("compress %-19s %9s  %s  %9s  %6s  %8s  %8s  %10s  pays at\n", "payload", "bytes", "L",
           "gz bytes", "gz/raw", "comp", "decomp", "break-even");
    printf("compress %-19s %9s  %s  %9s  %6s  %8s  %8s  %10s  20M 100M 1G\n", "", "", " ", "", "",
           "MB/s", "MB/s", "Mbit/s");
    int n_rows = 0;
    for (int i = 0; i < b.n_ps; i++) {
        for (int l = 0; l < COMP_LEVELS; l++) {
            comp_row *r = &b.rows[n_rows];
            r->payload = i;
            int mrc = comp_measure(&b.ps[i], comp_levels[l], c->reps, r);
            if (mrc) {
                fprintf(stderr, BENCH_PROG ": compress: %s at level %d: %s\n", b.ps[i].name,
                        comp_levels[l],
                        mrc == -1 ? "out of memory" : "zlib's round trip does not give it back");
                comp_free(&b);
                return 1;
            }
            comp_print_row(&b.ps[i], r);
            n_rows++;
        }
    }
    if (c->json)
        comp_json(c, spec, n_params, dim, b.ps, b.rows, n_rows);
    comp_free(&b);
    return 0;
}
