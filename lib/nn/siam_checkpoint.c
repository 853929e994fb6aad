/* siam_checkpoint: save (temp file, fsync, rename, directory fsync) and verified load. */
#include "siam_checkpoint.h"

#include "siam_atomic.h"
#include "siam_bytes.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static const char ckpt_magic[8] = {'S', 'I', 'A', 'M', 'C', 'K', 'P', 'T'};

/* magic | version | spec_len, then spec, then step | round | n_params | n_opt */
#define HEAD_FIXED  16
#define HEAD_COUNTS 32
#define CRC_BYTES   4

/* ---- save ---- */

/* A stream that keeps the running CRC of what it wrote and the errno of its first failure. */
typedef struct {
    FILE *f;
    uLong crc;
    int err; /* errno of the first failed write, 0 while all is well */
} ck_writer;

static void w_bytes(ck_writer *w, const void *p, size_t n) {
    if (w->err || n == 0)
        return;
    w->crc = siam_crc32_update(w->crc, p, n);
    errno = 0;
    if (fwrite(p, 1, n, w->f) != n)
        w->err = errno ? errno : EIO;
}

/* floats (n) as little-endian bytes, through a bounded staging buffer */
static void w_floats(ck_writer *w, const float *v, size_t n) {
    uint8_t buf[4096];
    while (n > 0 && !w->err) {
        size_t k = n < sizeof buf / 4 ? n : sizeof buf / 4;
        for (size_t i = 0; i < k; i++) {
            uint32_t bits;
            memcpy(&bits, &v[i], 4);
            siam_put_u32(buf + 4 * i, bits);
        }
        w_bytes(w, buf, 4 * k);
        v += k;
        n -= k;
    }
}

int siam_checkpoint_save(const char *path, const char *spec, uint64_t step, uint64_t round,
                         const float *params, size_t n_params, const float *opt, size_t n_opt,
                         siam_error *err) {
    size_t spec_len = strlen(spec);
    if (spec_len > SIAM_SPEC_MAX - 1)
        return siam_error_set(err, SIAM_ERR_ARG, "%s: model spec is %zu bytes, at most %d allowed",
                              path, spec_len, SIAM_SPEC_MAX - 1);
    if (n_params == 0 || !params)
        return siam_error_set(err, SIAM_ERR_ARG, "%s: no parameters to save", path);
    if (n_opt > 0 && !opt)
        return siam_error_set(err, SIAM_ERR_ARG, "%s: n_opt is %zu but opt is NULL", path, n_opt);

    siam_atomic_file af;
    int rc = siam_atomic_open(&af, path, err);
    if (rc)
        return rc;
    ck_writer w = {af.f, crc32(0L, Z_NULL, 0), 0};
    uint8_t head[HEAD_FIXED], counts[HEAD_COUNTS], crc_bytes[CRC_BYTES];
    memcpy(head, ckpt_magic, 8);
    siam_put_u32(head + 8, SIAM_CHECKPOINT_VERSION);
    siam_put_u32(head + 12, (uint32_t)spec_len);
    siam_put_u64(counts, step);
    siam_put_u64(counts + 8, round);
    siam_put_u64(counts + 16, (uint64_t)n_params);
    siam_put_u64(counts + 24, (uint64_t)n_opt);
    w_bytes(&w, head, sizeof head);
    w_bytes(&w, spec, spec_len);
    w_bytes(&w, counts, sizeof counts);
    w_floats(&w, params, n_params);
    w_floats(&w, opt, n_opt);
    siam_put_u32(crc_bytes, (uint32_t)w.crc);
    w_bytes(&w, crc_bytes, sizeof crc_bytes);

    if (w.err) {
        siam_atomic_abort(&af);
        return siam_error_set(err, SIAM_ERR_IO, "%s: write of temporary file failed: %s", path,
                              strerror(w.err));
    }
    return siam_atomic_commit(&af, err);
}

/* ---- load ---- */

/* Reads exactly n bytes: 0, or the error code with the message filled (FORMAT when the file
 * ended early, IO when reading failed). */
static int read_exact(FILE *f, void *p, size_t n, const char *path, siam_error *err) {
    if (n == 0)
        return SIAM_OK;
    errno = 0;
    if (fread(p, 1, n, f) == n)
        return SIAM_OK;
    if (!ferror(f))
        return siam_error_set(err, SIAM_ERR_FORMAT, "%s: truncated: ended while being read", path);
    return siam_error_set(err, SIAM_ERR_IO, "%s: read failed: %s", path,
                          strerror(errno ? errno : EIO));
}

/* floats (n) in place: their bytes were read little-endian into v */
static void decode_floats(float *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = siam_get_u32((const uint8_t *)&v[i]);
        memcpy(&v[i], &bits, 4);
    }
}

int siam_checkpoint_load(siam_checkpoint *ck, const char *path, siam_error *err) {
    memset(ck, 0, sizeof *ck);
    FILE *f = fopen(path, "rb");
    if (!f)
        return siam_error_set(err, SIAM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));

    int rc;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        rc = siam_error_set(err, SIAM_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = siam_error_set(err, SIAM_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    uint64_t file_size = (uint64_t)st.st_size;

    /* magic, version and spec length first: they say how to read the rest */
    uint8_t head[HEAD_FIXED + SIAM_SPEC_MAX + HEAD_COUNTS];
    size_t have = file_size < HEAD_FIXED ? (size_t)file_size : HEAD_FIXED;
    if ((rc = read_exact(f, head, have, path, err)))
        goto fail;
    if (memcmp(head, ckpt_magic, have < 8 ? have : 8) != 0) {
        rc = siam_error_set(err, SIAM_ERR_FORMAT, "%s: not a siam checkpoint (bad magic)", path);
        goto fail;
    }
    if (have < HEAD_FIXED) {
        rc = siam_error_set(err, SIAM_ERR_FORMAT,
                            "%s: truncated: %llu bytes, the header alone needs %d", path,
                            (unsigned long long)file_size, HEAD_FIXED + HEAD_COUNTS + CRC_BYTES);
        goto fail;
    }
    uint32_t version = siam_get_u32(head + 8);
    if (version != SIAM_CHECKPOINT_VERSION) {
        rc = siam_error_set(err, SIAM_ERR_FORMAT, "%s: version %lu, this build reads %d", path,
                            (unsigned long)version, SIAM_CHECKPOINT_VERSION);
        goto fail;
    }
    uint32_t spec_len = siam_get_u32(head + 12);
    if (spec_len > SIAM_SPEC_MAX - 1) {
        rc = siam_error_set(err, SIAM_ERR_FORMAT,
                            "%s: model spec length %lu exceeds the limit of %d", path,
                            (unsigned long)spec_len, SIAM_SPEC_MAX - 1);
        goto fail;
    }
    size_t head_len = HEAD_FIXED + spec_len + HEAD_COUNTS;
    if (file_size < head_len + CRC_BYTES) {
        rc = siam_error_set(err, SIAM_ERR_FORMAT,
                            "%s: truncated: %llu bytes, the header alone needs %zu", path,
                            (unsigned long long)file_size, head_len + CRC_BYTES);
        goto fail;
    }
    if ((rc = read_exact(f, head + HEAD_FIXED, spec_len + HEAD_COUNTS, path, err)))
        goto fail;

    const uint8_t *counts = head + HEAD_FIXED + spec_len;
    uint64_t n_params = siam_get_u64(counts + 16), n_opt = siam_get_u64(counts + 24);
    /* The counts fix the file's size exactly, which bounds every allocation below by the size
     * of the file itself; counts no file could match are corruption. */
    const uint64_t max_floats = (UINT64_MAX - head_len - CRC_BYTES) / 4;
    if (n_params > max_floats || n_opt > max_floats - n_params ||
        (n_params + n_opt) * 4 > SIZE_MAX - head_len - CRC_BYTES) {
        rc = siam_error_set(err, SIAM_ERR_FORMAT,
                            "%s: absurd counts (n_params %llu, n_opt %llu): file is corrupt", path,
                            (unsigned long long)n_params, (unsigned long long)n_opt);
        goto fail;
    }
    uint64_t expected = head_len + (n_params + n_opt) * 4 + CRC_BYTES;
    if (file_size != expected) {
        rc = siam_error_set(err, SIAM_ERR_FORMAT,
                            "%s: %s: %llu bytes, but its header (n_params %llu, n_opt %llu) "
                            "implies %llu",
                            path, file_size < expected ? "truncated" : "trailing bytes",
                            (unsigned long long)file_size, (unsigned long long)n_params,
                            (unsigned long long)n_opt, (unsigned long long)expected);
        goto fail;
    }

    /* The payload goes straight into the arrays as raw bytes; the CRC is taken over those bytes
     * and only then are they decoded in place. */
    ck->n_params = (size_t)n_params;
    ck->n_opt = (size_t)n_opt;
    ck->params = n_params ? malloc(ck->n_params * 4) : NULL;
    ck->opt = n_opt ? malloc(ck->n_opt * 4) : NULL;
    if ((n_params && !ck->params) || (n_opt && !ck->opt)) {
        rc = siam_error_set(err, SIAM_ERR_NOMEM, "%s: out of memory for %llu + %llu floats", path,
                            (unsigned long long)n_params, (unsigned long long)n_opt);
        goto fail;
    }
    uint8_t crc_bytes[CRC_BYTES];
    if ((rc = read_exact(f, ck->params, ck->n_params * 4, path, err)) ||
        (rc = read_exact(f, ck->opt, ck->n_opt * 4, path, err)) ||
        (rc = read_exact(f, crc_bytes, CRC_BYTES, path, err)))
        goto fail;
    if (fgetc(f) != EOF) {
        rc = siam_error_set(err, SIAM_ERR_FORMAT,
                            "%s: trailing bytes after the CRC (file grew while being read?)", path);
        goto fail;
    }

    uLong crc = crc32(0L, Z_NULL, 0);
    crc = siam_crc32_update(crc, head, head_len);
    crc = siam_crc32_update(crc, (const uint8_t *)ck->params, ck->n_params * 4);
    crc = siam_crc32_update(crc, (const uint8_t *)ck->opt, ck->n_opt * 4);
    uint32_t stored = siam_get_u32(crc_bytes);
    if ((uint32_t)crc != stored) {
        rc = siam_error_set(err, SIAM_ERR_FORMAT,
                            "%s: CRC mismatch: file is corrupt (stored %08lx, computed %08lx)",
                            path, (unsigned long)stored, (unsigned long)(uint32_t)crc);
        goto fail;
    }
    /* checked after the CRC: a corrupt file is reported as corrupt, these as written so */
    if (n_params == 0) {
        rc = siam_error_set(err, SIAM_ERR_FORMAT, "%s: checkpoint holds no parameters", path);
        goto fail;
    }
    if (memchr(head + HEAD_FIXED, '\0', spec_len)) {
        rc = siam_error_set(err, SIAM_ERR_FORMAT, "%s: model spec contains a NUL byte", path);
        goto fail;
    }
    fclose(f);
    memcpy(ck->spec, head + HEAD_FIXED, spec_len);
    ck->spec[spec_len] = '\0';
    ck->step = siam_get_u64(counts);
    ck->round = siam_get_u64(counts + 8);
    decode_floats(ck->params, ck->n_params);
    decode_floats(ck->opt, ck->n_opt);
    return SIAM_OK;

fail:
    fclose(f);
    siam_checkpoint_free(ck);
    return rc;
}

int siam_checkpoint_check(const siam_checkpoint *ck, const char *path, const char *spec,
                          size_t n_params, siam_error *err) {
    if (strcmp(ck->spec, spec) != 0)
        return siam_error_set(err, SIAM_ERR_MISMATCH,
                              "%s: checkpoint is for model '%s' (%zu parameters), this model is "
                              "'%s' (%zu parameters)",
                              path, ck->spec, ck->n_params, spec, n_params);
    if (ck->n_params != n_params)
        return siam_error_set(err, SIAM_ERR_MISMATCH,
                              "%s: checkpoint of model '%s' has %zu parameters, model '%s' has %zu",
                              path, ck->spec, ck->n_params, spec, n_params);
    return SIAM_OK;
}

void siam_checkpoint_free(siam_checkpoint *ck) {
    free(ck->params);
    free(ck->opt);
    memset(ck, 0, sizeof *ck);
}

uint32_t siam_params_crc32(const float *params, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    const unsigned char *p = (const unsigned char *)params;
    size_t bytes = n * sizeof *params;
    while (bytes > 0) {
        uInt chunk = bytes > (1u << 30) ? (1u << 30) : (uInt)bytes;
        c = crc32(c, p, chunk);
        p += chunk;
        bytes -= chunk;
    }
    return (uint32_t)c;
}
