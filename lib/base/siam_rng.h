/* siam_rng: small seeded PRNG (splitmix64 seeding, xoshiro256**) so every run is reproducible. */
#ifndef SIAM_RNG_H
#define SIAM_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} siam_rng;

void siam_rng_seed(siam_rng *r, uint64_t seed);
/* next 64 random bits (inline: dropout draws one per two activations) */
static inline uint64_t siam_rng_u64(siam_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = ((s[1] * 5) << 7 | (s[1] * 5) >> 57) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s[3] << 45 | s[3] >> 19;
    return result;
}
/* uniform integer in [0, n), n > 0, without modulo bias */
uint64_t siam_rng_below(siam_rng *r, uint64_t n);
/* uniform float in [0, 1) */
float siam_rng_uniform(siam_rng *r);
/* Fisher-Yates shuffle of n indices */
void siam_rng_shuffle_u32(siam_rng *r, uint32_t *v, uint64_t n);

#endif
