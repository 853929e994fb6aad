/* siam_bytes: the file formats' fixed-width integers, little-endian whatever the host's byte
 * order, and a CRC-32 (zlib's) over buffers of any length. Shared by the checkpoint and gallery
 * files and the link probe's messages. */
#ifndef SIAM_BYTES_H
#define SIAM_BYTES_H

#include <stddef.h>
#include <stdint.h>

void siam_put_u32(uint8_t *p, uint32_t v);
void siam_put_u64(uint8_t *p, uint64_t v);
uint32_t siam_get_u32(const uint8_t *p);
uint64_t siam_get_u64(const uint8_t *p);

/* crc32 of n more bytes at p after crc (start with 0); zlib takes 32-bit lengths, so larger
 * buffers go in pieces. */
uint32_t siam_crc32_update(uint32_t crc, const uint8_t *p, size_t n);

#endif
