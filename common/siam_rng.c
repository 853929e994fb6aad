/* siam_rng: xoshiro256** seeded by splitmix64 (public-domain algorithms by Blackman & Vigna). */
#include "siam_rng.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

void siam_rng_seed(siam_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

uint64_t siam_rng_u64(siam_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
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
