/* test_cpu_ops.c - every CPU op against a naive double-precision reference
 * written here, on random data and awkward sizes (1, 3, odd widths, GQA
 * ratios 1/2/3/4, attention with start > 0 and across the kernel's score
 * tile). Output buffers are poisoned with NaN first so an element the op
 * forgets to write fails the comparison; cache rows past the causal limit are
 * poisoned too, so reading them shows up as NaN.
 *
 * Tolerances (stated per op): exact for copies and single adds; for GEMM the
 * classic fp32 bound eps * (k + 2) * sum|terms|; 1e-6 relative for rmsnorm,
 * swiglu and rope; 1e-5 absolute for attention (outputs are convex
 * combinations of values in [-1, 1]). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_backend.h"

/* xorshift64*: a seeded generator so failures reproduce */
static uint64_t rng_state;
static void rng_seed(uint64_t s) {
  rng_state = s * 2685821657736338717ULL + 1;
}
static float rng_uniform(float lo, float hi) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  uint64_t r = rng_state * 2685821657736338717ULL;
  double u = (double)(r >> 11) / 9007199254740992.0;
  return (float)(lo + (hi - lo) * u);
}

static float *rand_buf(size_t n, float lo, float hi) {
  float *p = malloc(n * sizeof(float));
  assert_non_null(p);
  for (size_t i = 0; i < n; i++)
    p[i] = rng_uniform(lo, hi);
  return p;
}

static float *nan_buf(size_t n) {
  float *p = malloc(n * sizeof(float));
  assert_non_null(p);
  for (size_t i = 0; i < n; i++)
    p[i] = NAN;
  return p;
}

/* Fails with a message naming the op and index when |got-want| > tol or got
 * is not finite; returns the largest difference seen for reporting. */
static double check_close(const char *op, size_t i, float got, double want,
                          double tol, double maxdiff) {
  double d = fabs((double)got - want);
  if (!isfinite(got) || !(d <= tol)) {
    print_error("%s[%zu]: got %.9g want %.9g (|diff| %.3g > tol %.3g)\n", op, i,
                (double)got, want, d, tol);
    fail();
  }
  return d > maxdiff ? d : maxdiff;
}

static r1d_backend be;

static int setup(void **state) {
  (void)state;
  return r1d_cpu_backend_init(&be, 0);
}

static void test_table_complete(void **state) {
  (void)state;
  assert_non_null(be.ops);
  assert_string_equal(be.ops->name, "cpu");
  assert_non_null(be.ops->matmul_nt);
  assert_non_null(be.ops->add_bias);
  assert_non_null(be.ops->add);
  assert_non_null(be.ops->embedding);
  assert_non_null(be.ops->rmsnorm);
  assert_non_null(be.ops->rope);
  assert_non_null(be.ops->attention);
  assert_non_null(be.ops->swiglu);
  r1d_backend other;
  assert_int_equal(r1d_cpu_backend_init(&other, 2), 0);
  assert_ptr_equal(other.ops, be.ops);
  r1d_cpu_backend_destroy(&other);
  assert_null(other.ops);
}

/* ---- matmul_nt ---- */

static void run_matmul(int m, int n, int k, float beta) {
  float *a = rand_buf((size_t)m * k, -1, 1);
  float *b = rand_buf((size_t)n * k, -1, 1);
  float *c0 = rand_buf((size_t)m * n, -1, 1);
  float *c =
      beta == 0.0f ? nan_buf((size_t)m * n) : malloc(sizeof(float) * m * n);
  assert_non_null(c);
  if (beta != 0.0f) memcpy(c, c0, sizeof(float) * m * n);
  be.ops->matmul_nt(be.ctx, m, n, k, a, b, beta, c);
  double maxd = 0;
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double s = 0, mag = 0;
      for (int p = 0; p < k; p++) {
        double t = (double)a[(size_t)i * k + p] * b[(size_t)j * k + p];
        s += t;
        mag += fabs(t);
      }
      if (beta != 0.0f) {
        s += (double)beta * c0[(size_t)i * n + j];
        mag += fabs((double)beta * c0[(size_t)i * n + j]);
      }
      maxd = check_close("matmul_nt", (size_t)i * n + j, c[(size_t)i * n + j],
                         s, FLT_EPSILON * (k + 2) * mag, maxd);
    }
  free(a), free(b), free(c0), free(c);
}

static void test_matmul(void **state) {
  (void)state;
  rng_seed(1);
  static const int sizes[][3] = {{1, 1, 1},    {3, 5, 7},     {1, 129, 64},
                                 {17, 33, 65}, {64, 96, 128}, {5, 509, 64},
                                 {333, 40, 96}};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    run_matmul(sizes[s][0], sizes[s][1], sizes[s][2], 0.0f);
    run_matmul(sizes[s][0], sizes[s][1], sizes[s][2], 1.0f);
  }
}

/* ---- element-wise ---- */

static void test_add_bias_add(void **state) {
  (void)state;
  rng_seed(2);
  int m = 3, n = 37;
  float *x = rand_buf((size_t)m * n, -2, 2);
  float *x0 = malloc(sizeof(float) * m * n);
  float *bias = rand_buf((size_t)n, -2, 2);
  assert_non_null(x0);
  memcpy(x0, x, sizeof(float) * m * n);
  be.ops->add_bias(be.ctx, m, n, bias, x);
  /* one fp32 add is correctly rounded: the float sum is the exact answer */
  for (int i = 0; i < m * n; i++)
    assert_true(x[i] == (float)((double)x0[i] + bias[i % n]));

  size_t len = 1001;
  float *a = rand_buf(len, -3, 3), *b = rand_buf(len, -3, 3);
  float *out = nan_buf(len), *a0 = malloc(sizeof(float) * len);
  assert_non_null(a0);
  memcpy(a0, a, sizeof(float) * len);
  be.ops->add(be.ctx, len, a, b, out);
  for (size_t i = 0; i < len; i++)
    assert_true(out[i] == (float)((double)a[i] + b[i]));
  be.ops->add(be.ctx, len, a, b, a); /* in place, out aliases a */
  for (size_t i = 0; i < len; i++)
    assert_true(a[i] == (float)((double)a0[i] + b[i]));
  free(x), free(x0), free(bias), free(a), free(b), free(out), free(a0);
}

static void test_embedding(void **state) {
  (void)state;
  rng_seed(3);
  int vocab = 11, dim = 7, n = 5;
  const int32_t ids[] = {10, 0, 3, 3, 9};
  float *table = rand_buf((size_t)vocab * dim, -1, 1);
  float *out = nan_buf((size_t)n * dim);
  be.ops->embedding(be.ctx, n, ids, table, dim, out);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < dim; j++)
      assert_true(out[i * dim + j] == table[ids[i] * dim + j]);
  free(table), free(out);
}

static void test_swiglu(void **state) {
  (void)state;
  rng_seed(4);
  size_t n = 777;
  float *g = rand_buf(n, -8, 8), *u = rand_buf(n, -3, 3), *out = nan_buf(n);
  /* extremes: exp overflow must give silu -> 0 (not NaN), and x for big x */
  g[0] = -100.0f, g[1] = 100.0f, g[2] = 0.0f, g[3] = -88.9f;
  be.ops->swiglu(be.ctx, n, g, u, out);
  double maxd = 0;
  for (size_t i = 0; i < n; i++) {
    double x = g[i];
    double want = x / (1.0 + exp(-x)) * u[i];
    maxd =
        check_close("swiglu", i, out[i], want, 1e-6 * fabs(want) + 1e-30, maxd);
  }
  free(g), free(u), free(out);
}

/* ---- rmsnorm ---- */

static void run_rmsnorm(int n, int dim, float eps, float scale) {
  float *x = rand_buf((size_t)n * dim, -scale, scale);
  float *w = rand_buf((size_t)dim, 0.5f, 1.5f);
  float *out = nan_buf((size_t)n * dim);
  be.ops->rmsnorm(be.ctx, n, dim, x, w, eps, out);
  double maxd = 0;
  for (int i = 0; i < n; i++) {
    double ss = 0;
    for (int j = 0; j < dim; j++)
      ss += (double)x[i * dim + j] * x[i * dim + j];
    double inv = 1.0 / sqrt(ss / dim + eps);
    for (int j = 0; j < dim; j++) {
      double want = x[i * dim + j] * inv * w[j];
      maxd = check_close("rmsnorm", (size_t)i * dim + j, out[i * dim + j], want,
                         1e-6 * fabs(want) + 1e-7, maxd);
    }
  }
  free(x), free(w), free(out);
}

static void test_rmsnorm(void **state) {
  (void)state;
  rng_seed(5);
  run_rmsnorm(1, 1, 1e-6f, 1.0f);
  run_rmsnorm(3, 64, 1e-6f, 3.0f);
  run_rmsnorm(7, 4099, 1e-5f, 0.5f);
  /* eps matters when the row is tiny: mean(x^2) ~ 1e-8 against eps 1e-5 */
  run_rmsnorm(2, 96, 1e-5f, 1e-4f);
}

/* ---- rope ---- */

static void run_rope(int n, int n_heads, int hd, const int32_t *pos,
                     double theta) {
  int half = hd / 2;
  size_t len = (size_t)n * n_heads * hd;
  float *x = rand_buf(len, -1, 1), *x0 = malloc(len * sizeof(float));
  float *inv = malloc((size_t)half * sizeof(float));
  assert_non_null(x0);
  assert_non_null(inv);
  memcpy(x0, x, len * sizeof(float));
  for (int j = 0; j < half; j++)
    inv[j] = (float)pow(theta, -2.0 * j / hd);
  be.ops->rope(be.ctx, n, n_heads, hd, pos, inv, x);
  double maxd = 0;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < half; j++) {
      /* The contract: the angle is the float32 product pos * inv_freq, as in
       * transformers; cos/sin of that angle are then exact here. */
      float angle = (float)pos[i] * inv[j];
      double c = cos((double)angle), s = sin((double)angle);
      for (int h = 0; h < n_heads; h++) {
        size_t base = ((size_t)i * n_heads + h) * hd;
        double x1 = x0[base + j], x2 = x0[base + j + half];
        maxd = check_close("rope", base + j, x[base + j], x1 * c - x2 * s, 1e-6,
                           maxd);
        maxd = check_close("rope", base + j + half, x[base + j + half],
                           x2 * c + x1 * s, 1e-6, maxd);
      }
    }
  free(x), free(x0), free(inv);
}

static void test_rope(void **state) {
  (void)state;
  rng_seed(6);
  const int32_t p1[] = {0};
  const int32_t p3[] = {1, 37, 38};
  const int32_t p5[] = {0, 5000, 65535, 100000, 7};
  run_rope(1, 1, 2, p1, 10000.0);
  run_rope(3, 5, 6, p3, 10000.0);
  run_rope(5, 3, 64, p5, 500000.0);
  run_rope(3, 4, 128, p3, 1000000.0);
  /* position 0 is the identity */
  float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, inv[4] = {1, 0.5f, 0.25f, 0.125f};
  be.ops->rope(be.ctx, 1, 1, 8, p1, inv, x);
  for (int j = 0; j < 8; j++)
    assert_true(x[j] == (float)(j + 1));
}

/* ---- attention ---- */

static void run_attention(int n, int start, int n_heads, int n_kv, int hd,
                          float qscale) {
  int len = start + n, cap = len + 3; /* 3 poisoned rows past the end */
  size_t row = (size_t)n_kv * hd;
  float *q = rand_buf((size_t)n * n_heads * hd, -qscale, qscale);
  float *k = rand_buf((size_t)cap * row, -1, 1);
  float *v = rand_buf((size_t)cap * row, -1, 1);
  for (size_t i = (size_t)len * row; i < (size_t)cap * row; i++)
    k[i] = v[i] = NAN;
  float *out = nan_buf((size_t)n * n_heads * hd);
  double *p = malloc((size_t)len * sizeof(double));
  assert_non_null(p);
  be.ops->attention(be.ctx, n, start, n_heads, n_kv, hd, q, k, v, out);
  double scale = 1.0 / sqrt((double)hd), maxd = 0;
  int group = n_heads / n_kv;
  for (int i = 0; i < n; i++)
    for (int h = 0; h < n_heads; h++) {
      const float *qr = q + ((size_t)i * n_heads + h) * hd;
      int kvh = h / group, lim = start + i + 1;
      double m = -INFINITY, sum = 0;
      for (int t = 0; t < lim; t++) {
        double s = 0;
        for (int d = 0; d < hd; d++)
          s += (double)qr[d] * k[(size_t)t * row + (size_t)kvh * hd + d];
        p[t] = s * scale;
        if (p[t] > m) m = p[t];
      }
      for (int t = 0; t < lim; t++)
        sum += (p[t] = exp(p[t] - m));
      for (int d = 0; d < hd; d++) {
        double o = 0;
        for (int t = 0; t < lim; t++)
          o += p[t] * v[(size_t)t * row + (size_t)kvh * hd + d];
        size_t idx = ((size_t)i * n_heads + h) * hd + d;
        maxd = check_close("attention", idx, out[idx], o / sum, 1e-5, maxd);
      }
    }
  free(q), free(k), free(v), free(out), free(p);
}

static void test_attention(void **state) {
  (void)state;
  rng_seed(7);
  run_attention(1, 0, 4, 4, 64, 1.0f);   /* single token, MHA */
  run_attention(3, 5, 4, 2, 64, 1.0f);   /* decode-ish batch, GQA 2 */
  run_attention(7, 0, 8, 2, 64, 4.0f);   /* prefill, GQA 4, peaky softmax */
  run_attention(3, 2, 6, 2, 3, 1.0f);    /* odd head_dim, GQA 3 */
  run_attention(1, 40, 2, 1, 16, 1.0f);  /* decode, GQA 2 */
  run_attention(5, 600, 4, 1, 16, 3.0f); /* spans two score tiles */
  run_attention(2, 1100, 2, 2, 8, 8.0f); /* three tiles, max grows late */
  /* prefill GEMM path (n >= 16): threshold, partial last query tile, start > 0 */
  run_attention(16, 0, 2, 1, 64, 1.0f);
  run_attention(70, 0, 4, 2, 16, 2.0f);
  run_attention(130, 33, 6, 3, 8, 3.0f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table_complete), cmocka_unit_test(test_matmul),
      cmocka_unit_test(test_add_bias_add),   cmocka_unit_test(test_embedding),
      cmocka_unit_test(test_swiglu),         cmocka_unit_test(test_rmsnorm),
      cmocka_unit_test(test_rope),           cmocka_unit_test(test_attention),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
