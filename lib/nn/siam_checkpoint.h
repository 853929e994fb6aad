/* siam_checkpoint: a versioned, CRC-checked model file, written atomically.
 *
 * Layout (little-endian):
 *   magic "SIAMCKPT" (8) | version u32 (=1) | spec_len u32 | spec bytes (no NUL) |
 *   step u64 | round u64 | n_params u64 | n_opt u64 |
 *   params f32[n_params] | opt f32[n_opt] | crc32 u32 over every preceding byte (zlib crc32).
 */
#ifndef SIAM_CHECKPOINT_H
#define SIAM_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "siam_error.h"

#define SIAM_CHECKPOINT_VERSION 1
#define SIAM_SPEC_MAX           1024

typedef struct {
    char spec[SIAM_SPEC_MAX]; /* model spec string, NUL-terminated */
    uint64_t step;            /* optimizer steps taken */
    uint64_t round;           /* averaging rounds (0 when unused) */
    size_t n_params;
    float *params; /* (n_params), owned */
    size_t n_opt;  /* 0 when no optimizer state was saved */
    float *opt;    /* (n_opt) optimizer state, owned, may be NULL */
} siam_checkpoint;

/* Writes path atomically (siam_atomic): path.tmp.<pid>, fsync, rename over path, fsync of the
 * directory. opt may be NULL with n_opt 0. On failure before the rename the previous file at
 * path is untouched; a failed directory fsync after it is reported ("saved, but ..."). Errors:
 * SIAM_ERR_ARG (spec too long, no parameters), SIAM_ERR_IO, SIAM_ERR_NOMEM. */
int siam_checkpoint_save(const char *path, const char *spec, uint64_t step, uint64_t round,
                         const float *params, size_t n_params, const float *opt, size_t n_opt,
                         siam_error *err);

/* Reads and verifies path. Refuses (SIAM_ERR_FORMAT, message names the file and the problem) a
 * wrong magic, an unknown version, a truncated file, trailing bytes, a CRC mismatch, or absurd
 * counts. SIAM_ERR_IO when it cannot be opened or is not a regular file. *ck is overwritten
 * (free an earlier load first) and left zeroed on failure. */
int siam_checkpoint_load(siam_checkpoint *ck, const char *path, siam_error *err);

/* Checks that a loaded checkpoint fits a model: same spec and parameter count, else
 * SIAM_ERR_MISMATCH with both specs in the message. */
int siam_checkpoint_check(const siam_checkpoint *ck, const char *path, const char *spec,
                          size_t n_params, siam_error *err);

void siam_checkpoint_free(siam_checkpoint *ck);

/* CRC-32 (zlib) of a parameter buffer's bytes: the fingerprint siam-server and siam-client log
 * for every averaging round, so that equal models can be seen to be equal. */
uint32_t siam_params_crc32(const float *params, size_t n);

#endif
