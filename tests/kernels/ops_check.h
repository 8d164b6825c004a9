/* ops_check.h - what the op tests of tests/kernels share: a seeded random
 * generator (failures reproduce), host buffers that fail loudly, the
 * alloc/upload/download steps through a backend's own table, and the
 * normalised error and one-line report every comparison prints.
 * Header-only (static inline) so each test is one file. */
#ifndef R1D_TESTS_OPS_CHECK_H
#define R1D_TESTS_OPS_CHECK_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cuda/cuda_backend.h"

/* ---- random numbers (xorshift64*: seeded, so failures reproduce) ---- */

typedef struct rng {
  uint64_t s;
} rng;

static inline void rng_seed(rng *r, uint64_t seed) {
  r->s = seed * 2685821657736338717ULL + 1;
}

static inline uint64_t rng_next(rng *r) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 2685821657736338717ULL;
}

static inline double rng_unit(rng *r) { /* [0, 1) */
  return (double)(rng_next(r) >> 11) / 9007199254740992.0;
}

static inline float rng_float(rng *r, float lo, float hi) {
  return (float)(lo + (hi - lo) * rng_unit(r));
}

static inline int rng_int(rng *r, int n) { /* [0, n) */
  return (int)(rng_unit(r) * n);
}

static inline void *xmalloc(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  assert_non_null(p);
  return p;
}

static inline float *rand_vec(rng *r, size_t n, float lo, float hi) {
  float *p = xmalloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++)
    p[i] = rng_float(r, lo, hi);
  return p;
}

static inline float *nan_vec(size_t n) {
  float *p = xmalloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++)
    p[i] = NAN;
  return p;
}

static inline void shuffle_i32(rng *r, int32_t *a, int n) {
  for (int i = n - 1; i > 0; i--) {
    int j = rng_int(r, i + 1);
    int32_t t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
}

/* ---- backends ---- */

typedef struct backend_slot {
  const char *name;
  r1d_backend be;
  int is_cuda;
} backend_slot;

typedef struct suite {
  backend_slot b[2];
  int n;
  int fails; /* failed lines of the table test */
} suite;

static inline void *dev_alloc(const r1d_backend *be, size_t bytes) {
  void *d = be->ops->alloc(be->ctx, bytes);
  assert_non_null(d);
  return d;
}

/* alloc + upload of `bytes` host bytes */
static inline void *dev_put(const r1d_backend *be, const void *host,
                            size_t bytes) {
  void *d = dev_alloc(be, bytes);
  assert_int_equal(be->ops->upload(be->ctx, d, host, bytes), 0);
  return d;
}

static inline void dev_get(const r1d_backend *be, void *host, const void *dev,
                           size_t bytes) {
  assert_int_equal(be->ops->download(be->ctx, host, dev, bytes), 0);
}

static inline void dev_free(const r1d_backend *be, void *d) {
  be->ops->free(be->ctx, d);
}
/* max|out-ref| / max(1e-6, max|ref|); +inf when out has a NaN or inf */
static inline double norm_err(const float *out, const double *ref, size_t n) {
  double md = 0.0, mr = 0.0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(out[i])) return INFINITY;
    double d = fabs((double)out[i] - ref[i]);
    if (d > md) md = d;
    if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
  }
  return md / (mr > 1e-6 ? mr : 1e-6);
}

/* One printed line; returns 1 when the check failed. */
static inline int report(const char *op, const char *shape, const char *backend,
                         double err, double tol) {
  int ok = err <= tol;
  printf("%-22s %-46s %-5s err %.2e tol %.0e %s\n", op, shape, backend, err,
         tol, ok ? "PASS" : "FAIL");
  return !ok;
}

/* An exact check: `bad` differing elements (rows, tokens, bytes). */
static inline int report_exact(const char *op, const char *shape,
                               const char *backend, long bad, long total) {
  printf("%-22s %-46s %-5s %ld/%ld differ (exact) %s\n", op, shape, backend,
         bad, total, bad == 0 ? "PASS" : "FAIL");
  return bad != 0;
}

/* ---- the suite: the CPU always, CUDA when present ----
 * R1D_OPS_BACKEND=cpu: the CPU only; =cuda: CUDA required (the probe
 * returns 77, the skip code, without it); unset: every backend present. */

static inline int ops_suite_probe(void) {
  const char *want = getenv("R1D_OPS_BACKEND");
  if (!want || strcmp(want, "cuda") != 0) return 0;
  r1d_backend probe;
  r1d_error err = {0};
  if (r1d_cuda_backend_init(&probe, 0, &err) != 0) {
    printf("skip: R1D_OPS_BACKEND=cuda but no CUDA backend: %s\n", err.msg);
    return 77;
  }
  r1d_cuda_backend_destroy(&probe);
  return 0;
}

static inline int ops_suite_setup(void **state) {
  const char *want = getenv("R1D_OPS_BACKEND");
  suite *st = calloc(1, sizeof *st);
  if (!st) return -1;
  r1d_cpu_backend_init(&st->b[0].be, 0);
  st->b[0].name = "cpu";
  st->n = 1;
  if (!want || strcmp(want, "cpu") != 0) {
    r1d_error err = {0};
    if (r1d_cuda_backend_init(&st->b[1].be, 0, &err) == 0) {
      st->b[1].name = "cuda";
      st->b[1].is_cuda = 1;
      st->n = 2;
    } else {
      printf("note: CUDA backend skipped: %s\n", err.msg);
    }
  }
  *state = st;
  return 0;
}

static inline int ops_suite_teardown(void **state) {
  suite *st = *state;
  for (int b = 0; b < st->n; b++) {
    if (st->b[b].is_cuda)
      r1d_cuda_backend_destroy(&st->b[b].be);
    else
      r1d_cpu_backend_destroy(&st->b[b].be);
  }
  free(st);
  return 0;
}

#endif
