/* siam_reflection: gRPC server reflection answered from a serialized FileDescriptorSet (read by
 * siam_reflection_walk.c): one ServerReflectionRequest, one ServerReflectionResponse; and the
 * ServerReflectionInfo streams of siam-server. */
#include "siam_reflection_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "siam_log.h"
#include "siam_wire.h"

#include "grpc/reflection/v1/reflection.pb-c.h"

#define COMPONENT "reflection"

/* ------------------------------------------------------------------------------------------ */
/* Finding a symbol, an extension, a type's extension numbers */

typedef enum { FIND_SYMBOL, FIND_MESSAGE, FIND_EXTENSION } find_mode;

typedef struct {
    const char *name; /* the symbol or type asked for, without a leading '.' */
    find_mode mode;   /* any symbol, a message type, or extension `number` of type `name` */
    int32_t number;
    int32_t *numbers; /* visit_numbers: the extension numbers of type `name` (realloc'd) */
    size_t n_numbers;
    int nomem;
} finder;

/* Whether protoc's extendee (".pkg.T", or "pkg.T") names type. */
static int extends(const symbol *s, const char *type) {
    const uint8_t *e = s->extendee;
    size_t n = s->extendee_len;
    if (n && e[0] == '.')
        e++, n--;
    return refl_same_name(e, n, type);
}

static int visit_find(void *ctx, const symbol *sym) {
    const finder *fd = ctx;
    switch (fd->mode) {
    case FIND_SYMBOL:
        return strcmp(sym->name, fd->name) == 0;
    case FIND_MESSAGE:
        return sym->kind == SYM_MESSAGE && strcmp(sym->name, fd->name) == 0;
    case FIND_EXTENSION:
        return sym->kind == SYM_EXTENSION && sym->number == fd->number && extends(sym, fd->name);
    }
    return 0;
}

static int visit_numbers(void *ctx, const symbol *sym) {
    finder *fd = ctx;
    if (sym->kind == SYM_EXTENSION && extends(sym, fd->name)) {
        int32_t *p = realloc(fd->numbers, (fd->n_numbers + 1) * sizeof *p);
        if (!p) {
            fd->nomem = 1;
            return 1;
        }
        fd->numbers = p;
        fd->numbers[fd->n_numbers++] = sym->number;
    }
    return 0;
}

/* The index of the first file in which visit stops, or -1. */
static long find_in_files(const file_entry *files, long count, visit_fn visit, finder *fd) {
    for (long i = 0; i < count; i++)
        if (refl_walk_file(files[i].bytes, files[i].len, visit, fd) == 1)
            return i;
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Answering a request */

/* Decoding with an allocator that remembers whether malloc failed, so that running out of memory
 * is not reported as a malformed request. */
typedef struct {
    ProtobufCAllocator base;
    int failed;
} counting_alloc;

static void *alloc_fn(void *data, size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p)
        ((counting_alloc *)data)->failed = 1;
    return p;
}

static void free_fn(void *data, void *p) {
    (void)data;
    free(p);
}

/* name as shown in an error message: printable ASCII ('?' for anything else, so that the answer
 * is valid UTF-8 whatever was asked), cut to fit. */
static void shown(char *out, size_t cap, const char *name) {
    size_t i = 0;
    for (; name[i] && i + 1 < cap; i++)
        out[i] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
    out[i] = '\0';
}

/* What one request needs freed afterwards. */
typedef struct {
    file_entry *files;
    long *order;
    char *sent;
    ProtobufCBinaryData *blobs;
    char (*names)[SIAM_REFLECTION_NAME_MAX];
    Grpc__Reflection__V1__ServiceResponse *services;
    Grpc__Reflection__V1__ServiceResponse **service_ptrs;
    int32_t *numbers;
} scratch;

static void scratch_free(scratch *s) {
    free(s->files);
    free(s->order);
    free(s->sent);
    free(s->blobs);
    free(s->names);
    free(s->services);
    free(s->service_ptrs);
    free(s->numbers);
}

/* Fills r's error_response (e and msg: the caller's storage) with code and msg. */
static void error_answer(Grpc__Reflection__V1__ServerReflectionResponse *r,
                         Grpc__Reflection__V1__ErrorResponse *e, int code, char *msg) {
    e->error_code = code;
    e->error_message = msg;
    r->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    r->error_response = e;
}

/* Fills r's file_descriptor_response (fr: the caller's storage) with file `first` and its
 * imports; SIAM_RPC_RESOURCE_EXHAUSTED without memory. */
static int files_answer(Grpc__Reflection__V1__ServerReflectionResponse *r,
                        Grpc__Reflection__V1__FileDescriptorResponse *fr, scratch *s, long count,
                        long first, siam_rpc_status *st) {
    s->order = malloc((size_t)count * sizeof *s->order);
    s->sent = calloc((size_t)count, 1);
    s->blobs = malloc((size_t)count * sizeof *s->blobs);
    if (!s->order || !s->sent || !s->blobs)
        return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                   "out of memory answering a reflection request");
    long n = refl_with_dependencies(s->files, count, first, s->order, s->sent);
    for (long k = 0; k < n; k++) {
        const file_entry *e = &s->files[s->order[k]];
        s->blobs[k].len = e->len;
        s->blobs[k].data = (uint8_t *)e->bytes; /* only read by pack */
    }
    fr->n_file_descriptor_proto = (size_t)n;
    fr->file_descriptor_proto = s->blobs;
    r->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    r->file_descriptor_response = fr;
    return SIAM_RPC_OK;
}

static int services_answer(Grpc__Reflection__V1__ServerReflectionResponse *r,
                           Grpc__Reflection__V1__ListServiceResponse *lr, scratch *s,
                           const uint8_t *set, size_t set_len, siam_rpc_status *st) {
    int n = siam_reflection_services(set, set_len, NULL, 0);
    if (n < 0)
        return siam_rpc_status_set(st, SIAM_RPC_INTERNAL, "the descriptor set is malformed");
    if (n > 0) {
        s->names = malloc((size_t)n * sizeof *s->names);
        s->services = malloc((size_t)n * sizeof *s->services);
        s->service_ptrs = malloc((size_t)n * sizeof *s->service_ptrs);
        if (!s->names || !s->services || !s->service_ptrs)
            return siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                       "out of memory listing services");
        siam_reflection_services(set, set_len, s->names, n);
    }
    for (int i = 0; i < n; i++) {
        Grpc__Reflection__V1__ServiceResponse init = GRPC__REFLECTION__V1__SERVICE_RESPONSE__INIT;
        s->services[i] = init;
        s->services[i].name = s->names[i];
        s->service_ptrs[i] = &s->services[i];
    }
    lr->n_service = (size_t)n;
    lr->service = s->service_ptrs;
    r->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    r->list_services_response = lr;
    return SIAM_RPC_OK;
}

int siam_reflection_answer(const uint8_t *set, size_t set_len, const uint8_t *req, size_t len,
                           siam_rpc_buf *resp, siam_rpc_status *st) {
    resp->data = NULL;
    resp->len = 0;
    static const uint8_t empty[1] = {0};
    counting_alloc a = {{alloc_fn, free_fn, NULL}, 0};
    a.base.allocator_data = &a;
    Grpc__Reflection__V1__ServerReflectionRequest *q =
        grpc__reflection__v1__server_reflection_request__unpack(&a.base, len,
                                                                req && len ? req : empty);
    if (!q)
        return a.failed ? siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                              "out of memory decoding a ServerReflectionRequest "
                                              "(%zu bytes)",
                                              len)
                        : siam_rpc_status_set(st, SIAM_RPC_INVALID_ARGUMENT,
                                              "malformed ServerReflectionRequest: not a valid "
                                              "protobuf message");

    Grpc__Reflection__V1__ServerReflectionResponse r =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
    Grpc__Reflection__V1__FileDescriptorResponse fr =
        GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
    Grpc__Reflection__V1__ListServiceResponse lr =
        GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
    Grpc__Reflection__V1__ExtensionNumberResponse xr =
        GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT;
    Grpc__Reflection__V1__ErrorResponse er = GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
    char msg[SIAM_REFLECTION_NAME_MAX + 300], name[SIAM_REFLECTION_NAME_MAX];
    r.valid_host = q->host;
    r.original_request = q;
    scratch s;
    memset(&s, 0, sizeof s);
    int rc = SIAM_RPC_OK;
    long count = refl_list_files(set, set_len, &s.files);
    if (count < 0) {
        rc = count == -2
                 ? siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                       "out of memory answering a reflection request")
                 : siam_rpc_status_set(st, SIAM_RPC_INTERNAL, "the descriptor set is malformed");
        goto done;
    }
    finder fd = {.name = "", .mode = FIND_SYMBOL};
    long at;
    switch (q->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        rc = services_answer(&r, &lr, &s, set, set_len, st);
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        at = refl_find_file(s.files, count, (const uint8_t *)q->file_by_filename,
                            strlen(q->file_by_filename));
        if (at >= 0) {
            rc = files_answer(&r, &fr, &s, count, at, st);
        } else {
            shown(name, sizeof name, q->file_by_filename);
            snprintf(msg, sizeof msg,
                     "file '%s' not found (file_containing_symbol with a service name from "
                     "list_services finds this server's files)",
                     name);
            error_answer(&r, &er, SIAM_RPC_NOT_FOUND, msg);
        }
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        fd.name = q->file_containing_symbol + (q->file_containing_symbol[0] == '.');
        at = find_in_files(s.files, count, visit_find, &fd);
        if (at >= 0) {
            rc = files_answer(&r, &fr, &s, count, at, st);
        } else {
            shown(name, sizeof name, q->file_containing_symbol);
            snprintf(msg, sizeof msg,
                     "symbol '%s' not found (a fully qualified name such as %s, %s.Similarity "
                     "or siam.v1.SimilarityRequest)",
                     name, SIAM_WIRE_SERVICE, SIAM_WIRE_SERVICE);
            error_answer(&r, &er, SIAM_RPC_NOT_FOUND, msg);
        }
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION: {
        const Grpc__Reflection__V1__ExtensionRequest *x = q->file_containing_extension;
        const char *type = x && x->containing_type ? x->containing_type : "";
        fd.name = type + (type[0] == '.');
        fd.mode = FIND_EXTENSION;
        fd.number = x ? x->extension_number : 0;
        at = find_in_files(s.files, count, visit_find, &fd);
        if (at >= 0) {
            rc = files_answer(&r, &fr, &s, count, at, st);
        } else {
            shown(name, sizeof name, type);
            snprintf(msg, sizeof msg,
                     "extension %d of '%s' not found (this server's types have "
                     "no extensions)",
                     (int)fd.number, name);
            error_answer(&r, &er, SIAM_RPC_NOT_FOUND, msg);
        }
        break;
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        /* a known message type, then its extensions (siam's have none) */
        fd.name = q->all_extension_numbers_of_type + (q->all_extension_numbers_of_type[0] == '.');
        fd.mode = FIND_MESSAGE;
        if (find_in_files(s.files, count, visit_find, &fd) < 0) {
            shown(name, sizeof name, q->all_extension_numbers_of_type);
            snprintf(msg, sizeof msg, "message type '%s' not found", name);
            error_answer(&r, &er, SIAM_RPC_NOT_FOUND, msg);
            break;
        }
        for (long i = 0; i < count && !fd.nomem; i++)
            refl_walk_file(s.files[i].bytes, s.files[i].len, visit_numbers, &fd);
        s.numbers = fd.numbers;
        if (fd.nomem) {
            rc = siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                     "out of memory listing extension numbers");
            break;
        }
        xr.base_type_name = (char *)fd.name;
        xr.n_extension_number = fd.n_numbers;
        xr.extension_number = fd.numbers;
        r.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
        r.all_extension_numbers_response = &xr;
        break;
    default:
        snprintf(msg, sizeof msg,
                 "the request asks nothing this server knows: set one of list_services, "
                 "file_by_filename, file_containing_symbol, file_containing_extension, "
                 "all_extension_numbers_of_type");
        error_answer(&r, &er, SIAM_RPC_UNIMPLEMENTED, msg);
    }
    if (rc == SIAM_RPC_OK) {
        size_t n = grpc__reflection__v1__server_reflection_response__get_packed_size(&r);
        if (!(resp->data = malloc(n ? n : 1))) {
            rc = siam_rpc_status_set(st, SIAM_RPC_RESOURCE_EXHAUSTED,
                                     "out of memory encoding a ServerReflectionResponse (%zu "
                                     "bytes)",
                                     n);
        } else {
            resp->len = grpc__reflection__v1__server_reflection_response__pack(&r, resp->data);
            rc = siam_rpc_status_set(st, SIAM_RPC_OK, "%s", "");
        }
    }
done:
    scratch_free(&s);
    grpc__reflection__v1__server_reflection_request__free_unpacked(q, &a.base);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* The stream */

static void *reflection_open(void *ctx, const siam_rpc_call_info *call) {
    (void)ctx;
    LOG_DEBUG(COMPONENT, "reflection stream %s opened by %s", call->method ? call->method : "?",
              call->peer ? call->peer : "?");
    return NULL;
}

static int reflection_message(void *ctx, void *stream, const uint8_t *req, size_t len,
                              siam_rpc_buf *resp, siam_rpc_status *st) {
    (void)ctx, (void)stream;
    int rc = siam_reflection_answer(siam_wire_descriptor_set, siam_wire_descriptor_set_size, req,
                                    len, resp, st);
    if (rc != SIAM_RPC_OK) {
        char kind[64];
        snprintf(kind, sizeof kind, "ServerReflectionInfo %s", siam_rpc_code_name(rc));
        siam_log_limited(SIAM_LOG_DEBUG, COMPONENT, kind, "ServerReflectionInfo: %s: %s",
                         siam_rpc_code_name(rc), st->msg);
    }
    return rc;
}

static void reflection_close(void *ctx, void *stream, const siam_rpc_status *final) {
    (void)ctx, (void)stream;
    LOG_DEBUG(COMPONENT, "reflection stream ended: %s", siam_rpc_code_name(final->code));
}

int siam_reflection_add(siam_rpc_server *s, siam_error *err) {
    static const siam_rpc_stream_handler h = {reflection_open, reflection_message,
                                              reflection_close};
    int rc = siam_reflection_check(siam_wire_descriptor_set, siam_wire_descriptor_set_size, err);
    if (rc)
        return rc;
    if ((rc = siam_rpc_server_add_stream(s, SIAM_METHOD_REFLECTION, &h, NULL, err)) ||
        (rc = siam_rpc_server_add_stream(s, SIAM_METHOD_REFLECTION_V1ALPHA, &h, NULL, err)))
        return rc;
    return SIAM_OK;
}
