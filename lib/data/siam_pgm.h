/* siam_pgm: reads 8- and 16-bit PGM images (binary P5 and ASCII P2) of a required size, and
 * writes binary P5 atomically. Used to hand one's own 28x28 images to `siam-client predict`. */
#ifndef SIAM_PGM_H
#define SIAM_PGM_H

#include <stdint.h>

#include "siam_error.h"

/* Reads path into pixels (width*height bytes, row-major). Accepts "P5" (binary) and "P2"
 * (ASCII) with '#' comments in the header (and between P2 samples), maxval 1..65535 (P5 samples
 * above 255 are two bytes, most significant first), and trailing whitespace after the raster.
 * Samples are scaled to 0..255 as round(v * 255 / maxval). The image must be exactly
 * width x height. Errors (the message names the file and the problem): SIAM_ERR_IO (cannot
 * open, not a regular file, read error), SIAM_ERR_FORMAT (not a PGM, a bad header, a sample
 * above maxval, truncated raster, trailing data), SIAM_ERR_MISMATCH (another size: "is 27x28,
 * expected 28x28"). */
int siam_pgm_read(const char *path, int width, int height, uint8_t *pixels, siam_error *err);

/* Writes pixels (width*height, maxval 255) as binary P5, atomically (siam_atomic). */
int siam_pgm_write(const char *path, const uint8_t *pixels, int width, int height, siam_error *err);

#endif
