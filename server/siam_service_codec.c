/* siam_service_codec: decoding and encoding messages and the validation shared by the RPCs. */
#include "siam_service_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siam_encoding.h"

/* ------------------------------------------------------------------------------------------ */
/* Decoding with decode_alloc (siam_service_internal.h), which remembers whether malloc failed */

static void *decode_alloc_fn(void *data, size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p)
        ((decode_alloc *)data)->failed = 1;
    return p;
}

static void decode_free_fn(void *data, void *p) {
    (void)data;
    free(p);
}

static void decode_alloc_init(decode_alloc *a) {
    a->base.alloc = decode_alloc_fn;
    a->base.free = decode_free_fn;
    a->base.allocator_data = a;
    a->failed = 0;
}

/* The status of a failed unpack of message type `name` from len bytes. */
static int decode_failed(const decode_alloc *a, const char *name, size_t len, siam_rpc_status *st) {
    if (a->failed)
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "out of memory decoding %s (%zu bytes)", name, len);
    return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                               "malformed %s: not a valid protobuf message", name);
}

/* unpack never reads data when len is 0, but keep it non-NULL all the same */
static const uint8_t *request_bytes(const uint8_t *req, size_t len) {
    static const uint8_t empty[1] = {0};
    return req && len ? req : empty;
}

/* Unpacks a request of type d with da (initialised here; free the message with da->base);
 * NULL with *st set when it is malformed or memory runs out. */
ProtobufCMessage *svc_decode(const ProtobufCMessageDescriptor *d, decode_alloc *da,
                             const uint8_t *req, size_t len, siam_rpc_status *st) {
    decode_alloc_init(da);
    ProtobufCMessage *m = protobuf_c_message_unpack(d, &da->base, len, request_bytes(req, len));
    if (!m)
        decode_failed(da, d->short_name, len, st);
    return m;
}

/* Packs msg into a malloc'd resp; INTERNAL or RESOURCE_EXHAUSTED on failure. */
int svc_encode(const ProtobufCMessage *msg, const char *name, siam_rpc_buf *resp,
               siam_rpc_status *st) {
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "out of memory encoding %s (%zu bytes)", name, len);
    size_t n = protobuf_c_message_pack(msg, buf);
    if (n != len) {
        free(buf);
        return siam_rpc_status_set(st, SIAM_RPC_INTERNAL,
                                   "encoding %s wrote %zu bytes, expected %zu", name, n, len);
    }
    resp->data = buf;
    resp->len = len;
    return siam_rpc_status_set(st, SIAM_RPC_OK, "%s", "");
}

/* Every call starts with an empty response, so the caller can free it on any path. */
int svc_begin(siam_service *svc, siam_rpc_buf *resp, siam_rpc_status *st) {
    if (resp) {
        resp->data = NULL;
        resp->len = 0;
    }
    if (!svc || !resp)
        return siam_rpc_status_set(st, SIAM_RPC_INTERNAL, "service called without %s",
                                   !svc ? "a service" : "a response buffer");
    return SIAM_RPC_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Validation shared by Train, TrainSet and Similarity */

int svc_check_dim(uint32_t dim, siam_rpc_status *st) {
    if (dim < 1 || dim > SIAM_SERVICE_MAX_DIM)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT, "dim is %u, expected 1..%d", dim,
                                   SIAM_SERVICE_MAX_DIM);
    return SIAM_RPC_OK;
}

/* Every float of v (n = batch x dim) finite. */
int svc_check_finite(const char *field, const float *v, size_t n, uint32_t dim,
                     siam_rpc_status *st) {
    return svc_check_finite_rows(field, "pair", v, n, dim, st);
}

int svc_check_finite_rows(const char *field, const char *row, const float *v, size_t n,
                          uint32_t dim, siam_rpc_status *st) {
    /* the common case in one vectorised pass: OR of "exponent all ones" (NaN or Inf) */
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], sizeof u);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    if (!bad)
        return SIAM_RPC_OK;
    for (size_t i = 0; i < n; i++) /* find the first one for the message */
        if (!isfinite(v[i]))
            return siam_rpc_status_set(
                st, SIAM_RPC_INVALID_ARGUMENT,
                "%s[%zu] is %g (%s %zu, component %zu); every float must be finite", field, i,
                (double)v[i], row, i / dim, i % dim);
    return SIAM_RPC_OK;
}

/* Copies a client-chosen name into dst[cap] so that it is safe to echo in Status (proto3
 * strings must be valid UTF-8) and in log lines: invalid UTF-8 and control characters become
 * '?', and a name too long for dst is cut at a character boundary. */
void svc_copy_name(char *dst, size_t cap, const char *src) {
    const unsigned char *s = (const unsigned char *)src;
    size_t o = 0;
    while (*s) {
        size_t n = 0; /* length of the valid sequence at s, 0 if invalid */
        unsigned c = s[0];
        if (c >= 0x20 && c < 0x7f)
            n = 1;
        else if (c >= 0xc2 && c <= 0xdf)
            n = 2;
        else if (c >= 0xe0 && c <= 0xef)
            n = 3;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 4;
        for (size_t k = 1; k < n; k++)
            if ((s[k] & 0xc0) != 0x80)
                n = 0; /* also stops at the terminating NUL */
        if (n == 3 && ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0)))
            n = 0; /* overlong or surrogate */
        if (n == 4 && ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90)))
            n = 0; /* overlong or above U+10FFFF */
        size_t out = n ? n : 1;
        if (o + out >= cap)
            break;
        if (n)
            memcpy(dst + o, s, n);
        else
            dst[o] = '?';
        o += out;
        s += n ? n : 1;
    }
    dst[o] = '\0';
}

/* ------------------------------------------------------------------------------------------ */
/* Wire encodings of Train and TrainSet (lib/nn/siam_encoding) */

int svc_check_encoding(int encoding, siam_rpc_status *st) {
    if (!siam_encoding_name(encoding))
        return siam_rpc_status_set(
            st, SIAM_RPC_FAILED_PRECONDITION,
            "encoding is %d, which this server does not accept: it accepts "
            "%s (StatusResponse.wire_encodings); siam-client --wire (batches) "
            "and --sync-wire (weights) pick one",
            encoding, SIAM_ENC_NAMES);
    return SIAM_RPC_OK;
}

int svc_decode_field(int encoding, const char *field, const char *row, size_t n_floats,
                     ProtobufCBinaryData packed, const float *scales, size_t n_scales, size_t rows,
                     uint32_t dim, float *out, siam_rpc_status *st) {
    if (encoding == SIAM_ENC_FP32) {
        if (packed.len || n_scales)
            return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                       "%s_packed has %zu bytes and %s_scales %zu values, but the "
                                       "encoding is fp32, which travels in %s",
                                       field, packed.len, field, n_scales, field);
        return SIAM_RPC_OK;
    }
    if (n_floats)
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                   "%s has %zu floats, but the encoding is %s, which travels in "
                                   "%s_packed: send one or the other",
                                   field, n_floats, siam_encoding_name(encoding), field);
    char name[64];
    snprintf(name, sizeof name, "%s_packed", field);
    siam_error err = {0};
    if (siam_decode_rows((siam_encoding)encoding, packed.data, packed.len, scales, n_scales, rows,
                         (int)dim, name, row, out, &err))
        return siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT, "%s", err.msg);
    return SIAM_RPC_OK;
}

int svc_encode_field(int encoding, const float *x, size_t rows, uint32_t dim,
                     ProtobufCBinaryData *packed, float **scales, size_t *n_scales,
                     siam_rpc_status *st) {
    size_t len = rows * dim * siam_encoding_size(encoding);
    int scaled = siam_encoding_scaled(encoding);
    packed->data = malloc(len ? len : 1);
    *scales = scaled ? malloc((rows ? rows : 1) * sizeof **scales) : NULL;
    *n_scales = scaled ? rows : 0;
    if (!packed->data || (scaled && !*scales)) {
        free(packed->data);
        free(*scales);
        packed->data = NULL, *scales = NULL;
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "out of memory encoding %zu x %u values as %s", rows, dim,
                                   siam_encoding_name(encoding));
    }
    packed->len = len;
    siam_encode_rows((siam_encoding)encoding, x, rows, (int)dim, packed->data, *scales);
    return SIAM_RPC_OK;
}
