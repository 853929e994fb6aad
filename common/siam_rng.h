/* siam_rng: small seeded PRNG (splitmix64 seeding, xoshiro256**) so every run is reproducible. */
#ifndef SIAM_RNG_H
#define SIAM_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} siam_rng;

void siam_rng_seed(siam_rng *r, uint64_t seed);
uint64_t siam_rng_u64(siam_rng *r);
/* uniform integer in [0, n), n > 0, without modulo bias */
uint64_t siam_rng_below(siam_rng *r, uint64_t n);
/* uniform float in [0, 1) */
float siam_rng_uniform(siam_rng *r);
/* Fisher-Yates shuffle of n indices */
void siam_rng_shuffle_u32(siam_rng *r, uint32_t *v, uint64_t n);

#endif
