/* rng.c - xoshiro256** seeded by splitmix64 (see rng.h). */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

void r1d_rng_seed(r1d_rng *r, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64(&x);
}

uint64_t r1d_rng_next(r1d_rng *r) {
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

double r1d_rng_uniform(r1d_rng *r) {
  return (double)(r1d_rng_next(r) >> 11) * 0x1.0p-53;
}

double r1d_rng_normal(r1d_rng *r) {
  double u1 = r1d_rng_uniform(r), u2 = r1d_rng_uniform(r);
  if (u1 <= 0.0) u1 = 0x1.0p-53; /* log(0) guard */
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
