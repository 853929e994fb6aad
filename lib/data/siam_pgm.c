/* siam_pgm: PGM (P5/P2) reader with validation, and an atomic P5 writer. */
#include "siam_pgm.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "siam_atomic.h"

#define PGM_DIM_MAX 65535u

/* Skips whitespace and '#' comments (to the end of the line); returns the next character (not
 * consumed) or EOF. */
static int skip_space(FILE *f) {
    int c;
    for (;;) {
        c = getc(f);
        if (c == '#') {
            while (c != '\n' && c != '\r' && c != EOF)
                c = getc(f);
            continue;
        }
        if (c == EOF || !isspace(c))
            break;
    }
    if (c != EOF)
        ungetc(c, f);
    return c;
}

/* A decimal number after optional whitespace/comments. Returns 0 on success, 1 at the end of
 * the file, 2 when something else is there, 3 when it is too large. */
static int read_uint(FILE *f, unsigned *out) {
    int c = skip_space(f);
    if (c == EOF)
        return 1;
    if (!isdigit(c))
        return 2;
    unsigned long v = 0;
    while ((c = getc(f)) != EOF && isdigit(c)) {
        v = v * 10 + (unsigned long)(c - '0');
        if (v > 0xffffffUL)
            return 3;
    }
    if (c != EOF) {
        if (!isspace(c) && c != '#')
            return 2;
        ungetc(c, f);
    }
    *out = (unsigned)v;
    return 0;
}

static int header_field(FILE *f, const char *path, const char *what, unsigned lo, unsigned hi,
                        unsigned *out, siam_error *err) {
    int r = read_uint(f, out);
    if (r == 1)
        return siam_error_set(err, SIAM_ERR_FORMAT, "%s: truncated PGM header (no %s)", path, what);
    if (r == 2)
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "%s: bad PGM header: %s is not a decimal number", path, what);
    if (r == 3 || *out < lo || *out > hi)
        return siam_error_set(err, SIAM_ERR_FORMAT, "%s: bad PGM header: %s %s, expected %u..%u",
                              path, what, r == 3 ? "is too large" : "is out of range", lo, hi);
    return SIAM_OK;
}

static uint8_t scale(unsigned v, unsigned maxval) {
    if (maxval == 255)
        return (uint8_t)v;
    return (uint8_t)(((unsigned long)v * 255u + maxval / 2) / maxval);
}

static int read_raster(FILE *f, const char *path, int binary, unsigned maxval, size_t n,
                       uint8_t *pixels, siam_error *err) {
    if (binary) {
        size_t bps = maxval > 255 ? 2 : 1;
        for (size_t i = 0; i < n; i++) {
            unsigned v = 0;
            for (size_t b = 0; b < bps; b++) {
                int c = getc(f);
                if (c == EOF) {
                    if (ferror(f))
                        return siam_error_set(err, SIAM_ERR_IO, "%s: read error (%s)", path,
                                              strerror(errno));
                    return siam_error_set(err, SIAM_ERR_FORMAT,
                                          "%s: truncated: the raster holds %zu of %zu pixels", path,
                                          i, n);
                }
                v = v << 8 | (unsigned)c;
            }
            if (v > maxval)
                return siam_error_set(err, SIAM_ERR_FORMAT, "%s: pixel %zu is %u, above maxval %u",
                                      path, i, v, maxval);
            pixels[i] = scale(v, maxval);
        }
        return SIAM_OK;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        int r = read_uint(f, &v);
        if (r == 1)
            return siam_error_set(err, SIAM_ERR_FORMAT,
                                  "%s: truncated: the raster holds %zu of %zu pixels", path, i, n);
        if (r == 2)
            return siam_error_set(err, SIAM_ERR_FORMAT, "%s: pixel %zu is not a decimal number",
                                  path, i);
        if (r == 3 || v > maxval)
            return siam_error_set(err, SIAM_ERR_FORMAT, "%s: pixel %zu is above maxval %u", path, i,
                                  maxval);
        pixels[i] = scale(v, maxval);
    }
    return SIAM_OK;
}

static int read_open(FILE *f, const char *path, int width, int height, uint8_t *pixels,
                     siam_error *err) {
    int c0 = getc(f), c1 = getc(f);
    if (c0 == EOF)
        return siam_error_set(err, SIAM_ERR_FORMAT, "%s: empty file, expected a PGM image", path);
    if (c0 != 'P' || (c1 != '5' && c1 != '2')) {
        if (c0 == 'P' && c1 >= '1' && c1 <= '7')
            return siam_error_set(err, SIAM_ERR_FORMAT,
                                  "%s: a P%c Netpbm file, expected a grayscale PGM (P5 or P2)",
                                  path, c1);
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "%s: not a PGM image (does not start with P5 or P2)", path);
    }
    int binary = c1 == '5';
    int c = getc(f);
    if (c == EOF || !(isspace(c) || c == '#'))
        return siam_error_set(err, SIAM_ERR_FORMAT, "%s: bad PGM header after 'P%c'", path, c1);
    ungetc(c, f);
    unsigned w, h, maxval;
    int rc;
    if ((rc = header_field(f, path, "width", 1, PGM_DIM_MAX, &w, err)) ||
        (rc = header_field(f, path, "height", 1, PGM_DIM_MAX, &h, err)))
        return rc;
    if (w != (unsigned)width || h != (unsigned)height)
        return siam_error_set(err, SIAM_ERR_MISMATCH,
                              "%s: image is %ux%u, expected %dx%d (resize it to %dx%d grayscale)",
                              path, w, h, width, height, width, height);
    if ((rc = header_field(f, path, "maxval", 1, 65535, &maxval, err)))
        return rc;
    if (binary) {
        /* exactly one whitespace character separates maxval from the raster */
        c = getc(f);
        if (c == EOF)
            return siam_error_set(err, SIAM_ERR_FORMAT,
                                  "%s: truncated: the header ends before the raster", path);
        if (!isspace(c))
            return siam_error_set(err, SIAM_ERR_FORMAT, "%s: bad PGM header after maxval", path);
    }
    if ((rc = read_raster(f, path, binary, maxval, (size_t)w * h, pixels, err)))
        return rc;
    /* nothing but whitespace may follow */
    long extra = 0;
    while ((c = getc(f)) != EOF)
        if (!isspace(c))
            extra++;
    if (ferror(f))
        return siam_error_set(err, SIAM_ERR_IO, "%s: read error (%s)", path, strerror(errno));
    if (extra)
        return siam_error_set(err, SIAM_ERR_FORMAT,
                              "%s: %ld bytes of trailing data after the %ux%u image (one image "
                              "per file)",
                              path, extra, w, h);
    return SIAM_OK;
}

int siam_pgm_read(const char *path, int width, int height, uint8_t *pixels, siam_error *err) {
    if (width < 1 || height < 1)
        return siam_error_set(err, SIAM_ERR_ARG, "pgm: size %dx%d", width, height);
    FILE *f = fopen(path, "rb");
    if (!f)
        return siam_error_set(err, SIAM_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    struct stat st;
    int rc;
    if (fstat(fileno(f), &st) != 0)
        rc = siam_error_set(err, SIAM_ERR_IO, "%s: cannot stat (%s)", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = siam_error_set(err, SIAM_ERR_IO, "%s: not a regular file", path);
    else
        rc = read_open(f, path, width, height, pixels, err);
    fclose(f);
    return rc;
}

int siam_pgm_write(const char *path, const uint8_t *pixels, int width, int height,
                   siam_error *err) {
    if (width < 1 || height < 1 || (unsigned)width > PGM_DIM_MAX || (unsigned)height > PGM_DIM_MAX)
        return siam_error_set(err, SIAM_ERR_ARG, "%s: cannot write a %dx%d PGM", path, width,
                              height);
    siam_atomic_file a;
    int rc = siam_atomic_open(&a, path, err);
    if (rc)
        return rc;
    size_t n = (size_t)width * (size_t)height;
    if (fprintf(a.f, "P5\n%d %d\n255\n", width, height) < 0 || fwrite(pixels, 1, n, a.f) != n) {
        rc = siam_error_set(err, SIAM_ERR_IO, "%s: write error (%s)", path, strerror(errno));
        siam_atomic_abort(&a);
        return rc;
    }
    return siam_atomic_commit(&a, err);
}
