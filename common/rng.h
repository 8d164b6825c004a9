/* rng.h - the project's random numbers: xoshiro256** (Blackman and Vigna)
 * seeded through splitmix64, so a 64-bit seed gives a well-mixed, repeatable
 * stream. Each user (a sampler, a weight initialiser) owns its own state:
 * there is no global generator. */
#ifndef R1D_COMMON_RNG_H
#define R1D_COMMON_RNG_H

#include <stdint.h>

typedef struct r1d_rng {
  uint64_t s[4];
} r1d_rng;

void r1d_rng_seed(r1d_rng *r, uint64_t seed);
uint64_t r1d_rng_next(r1d_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double r1d_rng_uniform(r1d_rng *r);
/* Standard normal (Box-Muller; one value per call). */
double r1d_rng_normal(r1d_rng *r);

#endif
