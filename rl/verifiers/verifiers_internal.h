/* verifiers_internal.h - what the math and countdown checkers share, private
 * to rl/verifiers/: exact rational arithmetic on int64 (both compare numbers
 * exactly, and countdown must never round) with every overflow reported
 * instead of wrapping, and the last-\boxed{} extraction (defined in math.c).
 *
 * A rational is kept reduced with a positive denominator and a numerator
 * other than INT64_MIN, so negation and comparison of two values are plain
 * integer operations. */
#ifndef R1D_RL_VERIFIERS_INTERNAL_H
#define R1D_RL_VERIFIERS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct r1d_rat {
  int64_t p, q; /* q > 0, gcd(|p|, q) == 1, p != INT64_MIN */
} r1d_rat;

enum { R1D_RAT_OK = 0, R1D_RAT_OVERFLOW = 1, R1D_RAT_DIVZERO = 2 };

static inline int64_t r1d_gcd64(int64_t a, int64_t b) {
  if (a < 0) a = -a; /* callers never pass INT64_MIN */
  if (b < 0) b = -b;
  while (b) {
    int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

static inline int r1d_rat_make(int64_t p, int64_t q, r1d_rat *out) {
  if (q == 0) return R1D_RAT_DIVZERO;
  if (p == INT64_MIN || q == INT64_MIN) return R1D_RAT_OVERFLOW;
  if (q < 0) {
    p = -p;
    q = -q;
  }
  int64_t g = r1d_gcd64(p, q);
  if (g > 1) {
    p /= g;
    q /= g;
  }
  out->p = p;
  out->q = q;
  return R1D_RAT_OK;
}

static inline int r1d_rat_add(r1d_rat a, r1d_rat b, r1d_rat *out) {
  int64_t g = r1d_gcd64(a.q, b.q), x, y, num, den;
  if (__builtin_mul_overflow(a.p, b.q / g, &x) ||
      __builtin_mul_overflow(b.p, a.q / g, &y) ||
      __builtin_add_overflow(x, y, &num) ||
      __builtin_mul_overflow(a.q / g, b.q, &den))
    return R1D_RAT_OVERFLOW;
  return r1d_rat_make(num, den, out);
}

static inline int r1d_rat_sub(r1d_rat a, r1d_rat b, r1d_rat *out) {
  b.p = -b.p;
  return r1d_rat_add(a, b, out);
}

static inline int r1d_rat_mul(r1d_rat a, r1d_rat b, r1d_rat *out) {
  /* cross-reduce first so that products of reduced results fit longer */
  int64_t g1 = r1d_gcd64(a.p, b.q), g2 = r1d_gcd64(b.p, a.q), num, den;
  if (g1 == 0) g1 = 1;
  if (g2 == 0) g2 = 1;
  if (__builtin_mul_overflow(a.p / g1, b.p / g2, &num) ||
      __builtin_mul_overflow(a.q / g2, b.q / g1, &den))
    return R1D_RAT_OVERFLOW;
  return r1d_rat_make(num, den, out);
}

static inline int r1d_rat_div(r1d_rat a, r1d_rat b, r1d_rat *out) {
  if (b.p == 0) return R1D_RAT_DIVZERO;
  r1d_rat inv = {b.p < 0 ? -b.q : b.q, b.p < 0 ? -b.p : b.p};
  return r1d_rat_mul(a, inv, out);
}

/* The content of the answer's last complete \boxed{...} or \fbox{...}
 * (braces matched, \{ and \} skipped), or of `\boxed 5` (up to the next
 * white space or `$`): sets [*at, *at + *len) within s[0..n) and returns 1;
 * 0 when there is none. An unclosed `\boxed{` is passed over, so an earlier
 * complete one can still count. */
int r1d_last_boxed(const char *s, size_t n, const char **at, size_t *len);

#endif
