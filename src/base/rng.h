/* Seeded, splittable random streams: xoshiro256** seeded through
 * SplitMix64. rng_split derives an independent child stream from a parent
 * seed and an index (e.g. one stream per sequence), so results do not
 * depend on batch composition or thread count. */
#ifndef R1C_BASE_RNG_H
#define R1C_BASE_RNG_H

#include <stdint.h>

typedef struct Rng {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *r, uint64_t seed);
/* Child stream `index` of `seed`: same (seed, index) -> same stream. */
void rng_split(Rng *r, uint64_t seed, uint64_t index);
uint64_t rng_u64(Rng *r);
/* Uniform in [0, 1) with 24 random bits (exactly representable floats). */
float rng_f32(Rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double rng_f64(Rng *r);
/* Standard normal (Box-Muller). */
float rng_normal(Rng *r);

#endif
