/* siam_atomic: replace a file's contents all at once (temp file, fsync, rename, fsync dir), so
 * a reader sees the old file or the new one, never a half-written one. */
#ifndef SIAM_ATOMIC_H
#define SIAM_ATOMIC_H

#include <stddef.h>
#include <stdio.h>

#include "siam_error.h"

typedef struct {
    char path[4096];
    char tmp[4096 + 32];
    FILE *f; /* write the new contents here */
} siam_atomic_file;

/* Opens "<path>.tmp.<pid>" for writing, after removing the temp files of path left by processes
 * that no longer exist (killed while writing). SIAM_ERR_IO names the path and the reason. */
int siam_atomic_open(siam_atomic_file *a, const char *path, siam_error *err);
/* Flushes, fsyncs, closes and renames over path, then fsyncs the directory. On any failure the
 * temp file is removed and the old file at path is untouched. */
int siam_atomic_commit(siam_atomic_file *a, siam_error *err);
/* Drops the temp file (after a failed write); safe to call after commit. */
void siam_atomic_abort(siam_atomic_file *a);

/* Checks, before long work, that path can be written atomically later: creates and removes the
 * temp file next to it. path itself is not touched. SIAM_ERR_IO names the path, the reason and
 * the fix (e.g. a directory that does not exist). */
int siam_atomic_check_writable(const char *path, siam_error *err);

/* open + fwrite + commit of one buffer. */
int siam_atomic_write(const char *path, const void *data, size_t len, siam_error *err);

#endif
