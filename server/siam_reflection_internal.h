/* siam_reflection_internal: what siam_reflection.c (answers) and siam_reflection_walk.c
 * (reading a FileDescriptorSet) share; private to them. */
#ifndef SIAM_REFLECTION_INTERNAL_H
#define SIAM_REFLECTION_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "siam_reflection.h"

/* ---- the symbols of a FileDescriptorProto ---- */

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

/* Every symbol of a serialized FileDescriptorProto m[n] (package 2, message_type 4, enum_type 5,
 * service 6, extension 7, nested messages and enums, fields, oneofs, enum values, methods):
 * 1 when the visitor stopped the walk, 0 when done, WALK_* on a bad file. */
int refl_walk_file(const uint8_t *m, size_t n, visit_fn visit, void *ctx);

/* ---- the files of a FileDescriptorSet (field 1) ---- */

typedef struct {
    const uint8_t *bytes; /* the serialized FileDescriptorProto, inside the set */
    size_t len;
    const uint8_t *name; /* its name (field 1), not NUL-terminated */
    size_t name_len;
} file_entry;

/* The files of set into *out (malloc'd, caller frees; NULL when there are none): their count,
 * -1 when the set is malformed, -2 without memory. */
long refl_list_files(const uint8_t *set, size_t set_len, file_entry **out);
/* The index of the file named name[len] in files, or -1. */
long refl_find_file(const file_entry *files, long count, const uint8_t *name, size_t len);
/* order[0..) = first, then every file it imports, directly or not, each once (breadth first);
 * returns how many. sent[] (count flags, zeroed by the caller) marks those taken. */
long refl_with_dependencies(const file_entry *files, long count, long first, long *order,
                            char *sent);
/* Whether a[an] (not NUL-terminated) is the string b. */
int refl_same_name(const uint8_t *a, size_t an, const char *b);

#endif
