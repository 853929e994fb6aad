/* siam_rng: xoshiro256** (siam_rng_u64, inline in the header) seeded by splitmix64. */
#include "siam_rng.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void siam_rng_seed(siam_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

uint64_t siam_rng_below(siam_rng *r, uint64_t n) {
    /* rejection sampling: draws above the largest multiple of n are redrawn */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = siam_rng_u64(r);
    } while (x >= limit);
    return x % n;
}

float siam_rng_uniform(siam_rng *r) {
    return (float)(siam_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

void siam_rng_shuffle_u32(siam_rng *r, uint32_t *v, uint64_t n) {
    for (uint64_t i = n; i > 1; i--) {
        uint64_t j = siam_rng_below(r, i);
        uint32_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}
