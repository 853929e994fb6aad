/* siam_reflection_walk: reading a serialized FileDescriptorSet with a small reader of the
 * protobuf wire format (only the fields of descriptor.proto reflection needs): its files, their
 * imports and the symbols each declares in protobuf's scopes; checking a set. */
#include "siam_reflection_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
int refl_walk_file(const uint8_t *m, size_t n, visit_fn visit, void *ctx) {
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

/* One pass over the set's files: their count, or -1 when the set is malformed; fills files[]
 * when it is not NULL (room for them all). */
static long files_pass(const uint8_t *set, size_t set_len, file_entry *files) {
    pb_reader r = pb_open(set, set_len);
    pb_field f;
    int rc;
    long i = 0;
    while ((rc = pb_next(&r, &f)) > 0) {
        if (f.number != 1)
            continue;
        if (f.wire != 2)
            return -1;
        if (files) {
            files[i].bytes = f.bytes;
            files[i].len = f.len;
            if (pb_string(f.bytes, f.len, 1, &files[i].name, &files[i].name_len) < 0)
                return -1;
        }
        i++;
    }
    return rc < 0 ? -1 : i;
}

long refl_list_files(const uint8_t *set, size_t set_len, file_entry **out) {
    *out = NULL;
    long count = files_pass(set, set_len, NULL);
    if (count <= 0)
        return count;
    if (!(*out = calloc((size_t)count, sizeof **out)))
        return -2;
    if (files_pass(set, set_len, *out) != count) { /* the same bytes: cannot differ */
        free(*out);
        *out = NULL;
        return -1;
    }
    return count;
}

int refl_same_name(const uint8_t *a, size_t an, const char *b) {
    return an == strlen(b) && memcmp(a, b, an) == 0;
}

/* The index of the file named name[len] in files, or -1. */
long refl_find_file(const file_entry *files, long count, const uint8_t *name, size_t len) {
    for (long i = 0; i < count; i++)
        if (files[i].name_len == len && memcmp(files[i].name, name, len) == 0)
            return i;
    return -1;
}

/* order[0..) = first, then every file it imports, directly or not, each once (breadth first);
 * returns how many. sent[] (count flags, zeroed by the caller) marks those taken. A dependency
 * missing from the set is left out (siam_reflection_check refuses such a set). */
long refl_with_dependencies(const file_entry *files, long count, long first, long *order,
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
            long d = refl_find_file(files, count, f.bytes, f.len);
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
    long count = refl_list_files(set, set_len, &files);
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
        if (refl_find_file(files, count, e->name, e->name_len) != i) {
            rc = siam_error_set(err, SIAM_ERR_FORMAT, "the descriptor set holds %.*s twice",
                                (int)e->name_len, (const char *)e->name);
            break;
        }
        int w = refl_walk_file(e->bytes, e->len, visit_nothing, NULL);
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
            if (f.number == 3 && f.wire == 2 && refl_find_file(files, count, f.bytes, f.len) < 0) {
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
        if (f.number == 1 && f.wire == 2 && refl_walk_file(f.bytes, f.len, visit_service, &l) < 0)
            return -1;
    return rc < 0 ? -1 : l.count;
}
