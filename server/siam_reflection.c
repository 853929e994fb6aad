/* siam_reflection: gRPC server reflection answered from a serialized FileDescriptorSet, read by
 * a small reader of the protobuf wire format (only the fields of descriptor.proto it needs). */
#include "siam_reflection.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "siam_log.h"
#include "siam_wire.h"

#include "grpc/reflection/v1/reflection.pb-c.h"

#define COMPONENT "reflection"

/* Nested messages deeper than this are refused (siam's go two deep). */
#define MAX_DEPTH 32

/* ------------------------------------------------------------------------------------------ */
/* The wire format: varints, length-delimited fields, fixed 32/64-bit fields skipped */

typedef struct {
    const uint8_t *p, *end;
} pb_reader;

typedef struct {
    uint32_t number;
    int wire;             /* 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 */
    uint64_t varint;      /* wire 0 */
    const uint8_t *bytes; /* wire 2: len bytes, pointing into the message */
    size_t len;
} pb_field;

static pb_reader pb_open(const uint8_t *m, size_t n) {
    pb_reader r = {m, m + n};
    return r;
}

static int pb_varint(pb_reader *r, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return -1;
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* The next field into *f: 1, or 0 at the end of the message, -1 when it is malformed. */
static int pb_next(pb_reader *r, pb_field *f) {
    if (r->p == r->end)
        return 0;
    uint64_t key, n;
    if (pb_varint(r, &key) || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return -1;
    f->number = (uint32_t)(key >> 3);
    f->wire = (int)(key & 7);
    f->varint = 0;
    f->bytes = NULL;
    f->len = 0;
    switch (f->wire) {
    case 0:
        return pb_varint(r, &f->varint) ? -1 : 1;
    case 1:
    case 5:
        n = f->wire == 1 ? 8 : 4;
        break;
    case 2:
        if (pb_varint(r, &n))
            return -1;
        break;
    default: /* groups (3, 4): descriptors have none */
        return -1;
    }
    if (n > (uint64_t)(r->end - r->p))
        return -1;
    f->bytes = r->p;
    f->len = (size_t)n;
    r->p += n;
    return 1;
}

/* A string or bytes field `number` of m[n] (the last one, as protobuf reads a repeated scalar):
 * 1 with *s and *len set, 0 when absent (*s = "", *len = 0), -1 when m is malformed. */
static int pb_string(const uint8_t *m, size_t n, uint32_t number, const uint8_t **s, size_t *len) {
    pb_reader r = pb_open(m, n);
    pb_field f;
    int rc, found = 0;
    *s = (const uint8_t *)"";
    *len = 0;
    while ((rc = pb_next(&r, &f)) > 0)
        if (f.number == number) {
            if (f.wire != 2)
                return -1;
            *s = f.bytes, *len = f.len, found = 1;
        }
    return rc < 0 ? -1 : found;
}

/* ------------------------------------------------------------------------------------------ */
/* Walking the symbols of one FileDescriptorProto */

typedef enum {
    SYM_MESSAGE,
    SYM_ENUM,
    SYM_ENUM_VALUE,
    SYM_FIELD,
    SYM_ONEOF,
    SYM_SERVICE,
    SYM_METHOD,
    SYM_EXTENSION
} sym_kind;

typedef struct {
    sym_kind kind;
    const char *name;        /* fully qualified, no leading '.' */
    const uint8_t *extendee; /* SYM_EXTENSION: the extended type as protoc wrote it (".pkg.T") */
    size_t extendee_len;
    int32_t number; /* SYM_EXTENSION: its field number */
} symbol;

/* Called for every symbol; returns 1 to stop the walk. */
typedef int (*visit_fn)(void *ctx, const symbol *sym);

/* Walk results besides 1 (stopped by the visitor) and 0 (done). */
#define WALK_MALFORMED (-1)
#define WALK_TOO_LONG  (-2)
#define WALK_TOO_DEEP  (-3)

/* full = scope "." name (or name alone in the empty scope); WALK_TOO_LONG when it does not fit. */
static int join(char *full, const char *scope, const uint8_t *name, size_t len) {
    size_t sn = strlen(scope), need = sn + (sn ? 1 : 0) + len;
    if (need >= SIAM_REFLECTION_NAME_MAX)
        return WALK_TOO_LONG;
    memcpy(full, scope, sn);
    if (sn)
        full[sn++] = '.';
    memcpy(full + sn, name, len);
    full[need] = '\0';
    return 0;
}

/* Visits the symbol called by field 1 of m[n] in scope: kind, full name into full. */
static int visit_named(const uint8_t *m, size_t n, const char *scope, sym_kind kind, char *full,
                       visit_fn visit, void *ctx) {
    const uint8_t *name;
    size_t len;
    if (pb_string(m, n, 1, &name, &len) < 0)
        return WALK_MALFORMED;
    int rc = join(full, scope, name, len);
    if (rc)
        return rc;
    symbol s = {kind, full, NULL, 0, 0};
    return visit(ctx, &s);
}

/* A FieldDescriptorProto declared as an extension (name 1, extendee 2, number 3). */
static int walk_extension(const uint8_t *m, size_t n, const char *scope, visit_fn visit,
                          void *ctx) {
    char full[SIAM_REFLECTION_NAME_MAX];
    const uint8_t *name;
    size_t len;
    symbol s = {SYM_EXTENSION, full, NULL, 0, 0};
    if (pb_string(m, n, 1, &name, &len) < 0 || pb_string(m, n, 2, &s.extendee, &s.extendee_len) < 0)
        return WALK_MALFORMED;
    int rc = join(full, scope, name, len);
    if (rc)
        return rc;
    pb_reader r = pb_open(m, n);
    pb_field f;
    while ((rc = pb_next(&r, &f)) > 0)
        if (f.number == 3 && f.wire == 0)
            s.number = (int32_t)f.varint;
    return rc < 0 ? WALK_MALFORMED : visit(ctx, &s);
}

/* An EnumDescriptorProto (name 1, value 2): its values are named in the enum's own scope, as
 * protobuf scopes them ("grpc.health.v1.HealthCheckResponse.SERVING"). */
static int walk_enum(const uint8_t *m, size_t n, const char *scope, visit_fn visit, void *ctx) {
    char full[SIAM_REFLECTION_NAME_MAX];
    int rc = visit_named(m, n, scope, SYM_ENUM, full, visit, ctx);
    if (rc)
        return rc;
    pb_reader r = pb_open(m, n);
    pb_field f;
    while ((rc = pb_next(&r, &f)) > 0)
        if (f.number == 2 && f.wire == 2 &&
            (rc = visit_named(f.bytes, f.len, scope, SYM_ENUM_VALUE, full, visit, ctx)))
            return rc;
    return rc < 0 ? WALK_MALFORMED : 0;
}

/* A DescriptorProto (name 1, field 2, nested_type 3, enum_type 4, extension 6, oneof_decl 8). */
static int walk_message(const uint8_t *m, size_t n, const char *scope, int depth, visit_fn visit,
                        void *ctx) {
    if (depth > MAX_DEPTH)
        return WALK_TOO_DEEP;
    char full[SIAM_REFLECTION_NAME_MAX], member[SIAM_REFLECTION_NAME_MAX];
    int rc = visit_named(m, n, scope, SYM_MESSAGE, full, visit, ctx);
    if (rc)
        return rc;
    pb_reader r = pb_open(m, n);
    pb_field f;
    while ((rc = pb_next(&r, &f)) > 0) {
        if (f.wire != 2)
            continue;
        switch (f.number) {
        case 2:
            rc = visit_named(f.bytes, f.len, full, SYM_FIELD, member, visit, ctx);
            break;
        case 3:
            rc = walk_message(f.bytes, f.len, full, depth + 1, visit, ctx);
            break;
        case 4:
            rc = walk_enum(f.bytes, f.len, full, visit, ctx);
            break;
        case 6:
            rc = walk_extension(f.bytes, f.len, full, visit, ctx);
            break;
        case 8:
            rc = visit_named(f.bytes, f.len, full, SYM_ONEOF, member, visit, ctx);
            break;
        default:
            rc = 0;
        }
        if (rc)
            return rc;
    }
    return rc < 0 ? WALK_MALFORMED : 0;
}

/* A ServiceDescriptorProto (name 1, method 2). */
static int walk_service(const uint8_t *m, size_t n, const char *scope, visit_fn visit, void *ctx) {
    char full[SIAM_REFLECTION_NAME_MAX], method[SIAM_REFLECTION_NAME_MAX];
    int rc = visit_named(m, n, scope, SYM_SERVICE, full, visit, ctx);
    if (rc)
        return rc;
    pb_reader r = pb_open(m, n);
    pb_field f;
    while ((rc = pb_next(&r, &f)) > 0)
        if (f.number == 2 && f.wire == 2 &&
            (rc = visit_named(f.bytes, f.len, full, SYM_METHOD, method, visit, ctx)))
            return rc;
    return rc < 0 ? WALK_MALFORMED : 0;
}

/* Every symbol of a FileDescriptorProto (package 2, message_type 4, enum_type 5, service 6,
 * extension 7): 1 when the visitor stopped, 0 when done, WALK_* on a bad file. */
static int walk_file(const uint8_t *m, size_t n, visit_fn visit, void *ctx) {
    const uint8_t *pkg;
    size_t len;
    char scope[SIAM_REFLECTION_NAME_MAX];
    if (pb_string(m, n, 2, &pkg, &len) < 0)
        return WALK_MALFORMED;
    if (len >= sizeof scope)
        return WALK_TOO_LONG;
    memcpy(scope, pkg, len);
    scope[len] = '\0';
    pb_reader r = pb_open(m, n);
    pb_field f;
    int rc;
    while ((rc = pb_next(&r, &f)) > 0) {
        if (f.wire != 2)
            continue;
        switch (f.number) {
        case 4:
            rc = walk_message(f.bytes, f.len, scope, 1, visit, ctx);
            break;
        case 5:
            rc = walk_enum(f.bytes, f.len, scope, visit, ctx);
            break;
        case 6:
            rc = walk_service(f.bytes, f.len, scope, visit, ctx);
            break;
        case 7:
            rc = walk_extension(f.bytes, f.len, scope, visit, ctx);
            break;
        default:
            rc = 0;
        }
        if (rc)
            return rc;
    }
    return rc < 0 ? WALK_MALFORMED : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The files of a FileDescriptorSet (file 1) */

typedef struct {
    const uint8_t *bytes; /* the serialized FileDescriptorProto, inside the set */
    size_t len;
    const uint8_t *name; /* its name (field 1), not NUL-terminated */
    size_t name_len;
} file_entry;

/* The files of set into *out (malloc'd, caller frees; NULL when there are none): their count,
 * -1 when the set is malformed, -2 without memory. */
static long list_files(const uint8_t *set, size_t set_len, file_entry **out) {
    *out = NULL;
    long count = 0;
    for (int pass = 0; pass < 2; pass++) {
        pb_reader r = pb_open(set, set_len);
        pb_field f;
        int rc;
        long i = 0;
        while ((rc = pb_next(&r, &f)) > 0) {
            if (f.number != 1)
                continue;
            if (f.wire != 2)
                return free(*out), *out = NULL, -1;
            if (pass == 1) {
                file_entry *e = &(*out)[i];
                e->bytes = f.bytes, e->len = f.len;
                if (pb_string(f.bytes, f.len, 1, &e->name, &e->name_len) < 0)
                    return free(*out), *out = NULL, -1;
            }
            i++;
        }
        if (rc < 0)
            return free(*out), *out = NULL, -1;
        count = i;
        if (pass == 0 && count > 0 && !(*out = calloc((size_t)count, sizeof **out)))
            return -2;
    }
    return count;
}

static int same_name(const uint8_t *a, size_t an, const char *b) {
    return an == strlen(b) && memcmp(a, b, an) == 0;
}

/* The index of the file named name[len] in files, or -1. */
static long find_file(const file_entry *files, long count, const uint8_t *name, size_t len) {
    for (long i = 0; i < count; i++)
        if (files[i].name_len == len && memcmp(files[i].name, name, len) == 0)
            return i;
    return -1;
}

/* order[0..) = first, then every file it imports, directly or not, each once (breadth first);
 * returns how many. sent[] (count flags, zeroed by the caller) marks those taken. A dependency
 * missing from the set is left out (siam_reflection_check refuses such a set). */
static long with_dependencies(const file_entry *files, long count, long first, long *order,
                              char *sent) {
    long n = 0;
    order[n++] = first;
    sent[first] = 1;
    for (long k = 0; k < n; k++) {
        pb_reader r = pb_open(files[order[k]].bytes, files[order[k]].len);
        pb_field f;
        while (pb_next(&r, &f) > 0) {
            if (f.number != 3 || f.wire != 2)
                continue;
            long d = find_file(files, count, f.bytes, f.len);
            if (d >= 0 && !sent[d]) {
                sent[d] = 1;
                order[n++] = d;
            }
        }
    }
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Checking a set; listing its services */

static int visit_nothing(void *ctx, const symbol *sym) {
    (void)ctx, (void)sym;
    return 0;
}

int siam_reflection_check(const uint8_t *set, size_t set_len, siam_error *err) {
    file_entry *files = NULL;
    long count = list_files(set, set_len, &files);
    if (count == -2)
        return siam_error_set(err, SIAM_ERR_NOMEM, "out of memory listing a descriptor set");
    if (count <= 0)
        return siam_error_set(err, SIAM_ERR_FORMAT, "the descriptor set (%zu bytes) is %s", set_len,
                              count < 0 ? "not a serialized FileDescriptorSet" : "empty");
    int rc = SIAM_OK;
    for (long i = 0; i < count && !rc; i++) {
        const file_entry *e = &files[i];
        if (e->name_len == 0 || e->name_len >= SIAM_REFLECTION_NAME_MAX) {
            rc = siam_error_set(err, SIAM_ERR_FORMAT, "file %ld of the descriptor set has %s name",
                                i, e->name_len ? "too long a" : "no");
            break;
        }
        if (find_file(files, count, e->name, e->name_len) != i) {
            rc = siam_error_set(err, SIAM_ERR_FORMAT, "the descriptor set holds %.*s twice",
                                (int)e->name_len, (const char *)e->name);
            break;
        }
        int w = walk_file(e->bytes, e->len, visit_nothing, NULL);
        if (w < 0) {
            rc = siam_error_set(err, SIAM_ERR_FORMAT, "%.*s in the descriptor set: %s",
                                (int)e->name_len, (const char *)e->name,
                                w == WALK_TOO_LONG   ? "a name longer than SIAM_REFLECTION_NAME_MAX"
                                : w == WALK_TOO_DEEP ? "messages nested too deep"
                                                     : "not a valid FileDescriptorProto");
            break;
        }
        pb_reader r = pb_open(e->bytes, e->len);
        pb_field f;
        while (pb_next(&r, &f) > 0)
            if (f.number == 3 && f.wire == 2 && find_file(files, count, f.bytes, f.len) < 0) {
                rc = siam_error_set(err, SIAM_ERR_FORMAT,
                                    "%.*s imports %.*s, which the descriptor set lacks (protoc "
                                    "--include_imports)",
                                    (int)e->name_len, (const char *)e->name, (int)f.len,
                                    (const char *)f.bytes);
                break;
            }
    }
    free(files);
    return rc;
}

typedef struct {
    char (*names)[SIAM_REFLECTION_NAME_MAX];
    int cap, count;
} service_list;

static int visit_service(void *ctx, const symbol *sym) {
    service_list *l = ctx;
    if (sym->kind == SYM_SERVICE) {
        if (l->count < l->cap)
            snprintf(l->names[l->count], SIAM_REFLECTION_NAME_MAX, "%s", sym->name);
        l->count++;
    }
    return 0;
}

int siam_reflection_services(const uint8_t *set, size_t set_len,
                             char (*names)[SIAM_REFLECTION_NAME_MAX], int cap) {
    service_list l = {names, cap, 0};
    pb_reader r = pb_open(set, set_len);
    pb_field f;
    int rc;
    while ((rc = pb_next(&r, &f)) > 0)
        if (f.number == 1 && f.wire == 2 && walk_file(f.bytes, f.len, visit_service, &l) < 0)
            return -1;
    return rc < 0 ? -1 : l.count;
}

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
    return same_name(e, n, type);
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
        if (walk_file(files[i].bytes, files[i].len, visit, fd) == 1)
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
    long n = with_dependencies(s->files, count, first, s->order, s->sent);
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
    long count = list_files(set, set_len, &s.files);
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
        at = find_file(s.files, count, (const uint8_t *)q->file_by_filename,
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
            walk_file(s.files[i].bytes, s.files[i].len, visit_numbers, &fd);
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
    LOG_DEBUG(COMPONENT, "reflection stream %s opened by %s", call->method, call->peer);
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
