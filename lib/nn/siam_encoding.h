/* siam_encoding: compact encodings of float rows for the wire (embeddings up, gradients down).
 * fp32 is the identity; fp16 (IEEE binary16) and bf16 (the top half of a float) round to nearest,
 * ties to even; int8 stores round(x / scale) in -127..127 with one scale per row,
 * scale = max |x| of the row / 127. fp16 also carries one scale per row (max |x| of the row), so
 * that gradients far below fp16's normal range (6.1e-5) keep their 11 significant bits. A row of
 * zeros gets scale 1. Decoding checks what a hostile or broken sender can get wrong: the byte
 * length, the number of scales, scales that are zero, negative or not finite, and decoded
 * values that are not finite. Pure functions over buffers; no state. */
#ifndef SIAM_ENCODING_H
#define SIAM_ENCODING_H

#include <stddef.h>
#include <stdint.h>

#include "siam_error.h"

/* The values are the wire's (siam.v1.WireEncoding). */
typedef enum {
    SIAM_ENC_FP32 = 0,
    SIAM_ENC_FP16 = 1,
    SIAM_ENC_BF16 = 2,
    SIAM_ENC_INT8 = 3,
} siam_encoding;

#define SIAM_ENC_COUNT 4
/* "fp32, fp16, bf16, int8": for messages that list what is accepted. */
#define SIAM_ENC_NAMES "fp32, fp16, bf16, int8"

/* "fp32", "fp16", "bf16", "int8"; NULL for a value outside the enum. */
const char *siam_encoding_name(int e);
/* Parses a name (as above); SIAM_ERR_ARG naming the value and the accepted names. */
int siam_encoding_parse(const char *name, siam_encoding *out, siam_error *err);
/* Bytes per value: 4, 2, 2, 1; 0 for a value outside the enum. */
size_t siam_encoding_size(int e);
/* 1 when the encoding carries one scale per row (fp16, int8). */
int siam_encoding_scaled(int e);

/* Encodes rows x dim floats (finite) into out (rows * dim * siam_encoding_size bytes) and, when
 * scaled, one scale per row into scales (rows floats; may be NULL otherwise). fp32 copies the
 * bytes (little-endian, as the wire's repeated float). */
void siam_encode_rows(siam_encoding e, const float *x, size_t rows, int dim, uint8_t *out,
                      float *scales);

/* Decodes into out (rows x dim floats). field names the message field in errors (e.g.
 * "left_packed"), row the unit ("pair", "embedding"). SIAM_ERR_FORMAT with a message naming the
 * field when: len is not rows * dim * size ("left_packed has 100 bytes, expected batch*dim*2 =
 * 8*128*2 = 2048 for fp16"), n_scales is not rows for a scaled encoding (or not 0 otherwise), a
 * scale is zero, negative or not finite, or a decoded value is not finite (naming the row). */
int siam_decode_rows(siam_encoding e, const uint8_t *in, size_t len, const float *scales,
                     size_t n_scales, size_t rows, int dim, const char *field, const char *row,
                     float *out, siam_error *err);

/* A parameter vector (SyncWeights) travels in blocks of SIAM_ENC_BLOCK values, the last one
 * shorter, with one scale per block when the encoding is scaled: a scale per layer row would tie
 * the wire to the model's shapes, one for the whole vector would let the largest weight decide
 * every other's precision. */
#define SIAM_ENC_BLOCK 256
/* ceil(n / SIAM_ENC_BLOCK): the number of scales of n values in a scaled encoding. */
size_t siam_encoding_blocks(size_t n);
/* Encodes n finite floats into out (n * siam_encoding_size bytes) and, when scaled, scales
 * (siam_encoding_blocks(n) floats; may be NULL otherwise). */
void siam_encode_blocks(siam_encoding e, const float *x, size_t n, uint8_t *out, float *scales);
/* Decodes n values into out, with siam_decode_rows' checks (len is n * size; one scale per
 * block, finite and > 0; finite values), SIAM_ERR_FORMAT naming field and the block. */
int siam_decode_blocks(siam_encoding e, const uint8_t *in, size_t len, const float *scales,
                       size_t n_scales, size_t n, const char *field, float *out, siam_error *err);

/* One value each way, for tests and the benchmark: IEEE binary16 and bf16 bits. */
uint16_t siam_float_to_half(float x);
float siam_half_to_float(uint16_t h);
uint16_t siam_float_to_bf16(float x);
float siam_bf16_to_float(uint16_t b);

#endif
