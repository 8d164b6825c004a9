/* test_cuda_backend.c - the CUDA backend's own promises, beyond the numbers
 * that test_backend_ops compares against the CPU:
 *   - the build flag and the init errors (built without CUDA: EUNSUPPORTED
 *     with a message saying so; a missing device: ENOTFOUND naming it);
 *   - on a GPU: upload/download/copy round trip, bf16 weights (round to
 *     nearest even) through `embedding`, `linear` row invariance (a row
 *     computed alone and inside a batch of 37 is bit-identical), paged
 *     attention over a shuffled block table equal to contiguous attention
 *     bit for bit, `sample` on a 152064-token row (argmax, top-k 1, inverse
 *     CDF by descending probability), and the sticky error.
 * The first two run everywhere; without a device the program then exits 77
 * (skipped); with one, it fails if any promise breaks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_backend.h"

#ifdef R1D_HAVE_CUDA
#define HAVE_CUDA 1
#else
#define HAVE_CUDA 0
#endif

static uint64_t rng_state;
static float rng_uniform(float lo, float hi) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  uint64_t r = rng_state * 2685821657736338717ULL;
  return lo + (hi - lo) * (float)((double)(r >> 11) / 9007199254740992.0);
}

static void test_built_flag(void **state) {
  (void)state;
  assert_int_equal(r1d_cuda_built(), HAVE_CUDA);
}

static void test_init_errors(void **state) {
  (void)state;
  r1d_backend be = {0};
  r1d_error err = {0};
  char desc[64] = "x";
  r1d_cuda_backend_describe(&be, desc, sizeof desc);
  assert_string_equal(desc, ""); /* not initialised */
  int rc = r1d_cuda_backend_init(&be, 9999, &err);
  if (!HAVE_CUDA) {
    assert_int_equal(rc, R1D_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "built without CUDA"));
  } else {
    assert_int_equal(rc, R1D_ENOTFOUND);
    assert_non_null(strstr(err.msg, "9999"));
  }
  assert_null(be.ops);
  assert_null(be.ctx);
  assert_string_equal(r1d_cuda_backend_error(&be), "");
}

/* ---- GPU tests: state is the backend, NULL (skip) without a device ---- */

static int gpu_setup(void **state) {
  static r1d_backend be;
  r1d_error err = {0};
  *state = NULL;
  if (r1d_cuda_backend_init(&be, 0, &err) == 0) *state = &be;
  return 0;
}

static int gpu_teardown(void **state) {
  if (*state) r1d_cuda_backend_destroy(*state);
  return 0;
}

#define GPU_OR_SKIP(state)                                                     \
  r1d_backend *be = *(state);                                                  \
  if (!be) skip();                                                             \
  const r1d_backend_ops *o = be->ops;                                          \
  void *cx = be->ctx

static void *dev_upload(r1d_backend *be, const void *src, size_t bytes) {
  void *p = be->ops->alloc(be->ctx, bytes);
  assert_non_null(p);
  assert_int_equal(be->ops->upload(be->ctx, p, src, bytes), 0);
  return p;
}

static void test_roundtrip(void **state) {
  GPU_OR_SKIP(state);
  char desc[256];
  r1d_cuda_backend_describe(be, desc, sizeof desc);
  assert_non_null(strstr(desc, "cuda:0"));
  enum { N = 1000 };
  float h[N], back[N];
  for (int i = 0; i < N; i++)
    h[i] = (float)i * 0.25f - 3.0f;
  float *d = dev_upload(be, h, sizeof h);
  float *d2 = o->alloc(cx, sizeof h);
  o->copy(cx, d2, d, sizeof h);
  assert_int_equal(o->download(cx, back, d2, sizeof h), 0);
  assert_memory_equal(back, h, sizeof h);
  o->free(cx, d);
  o->free(cx, d2);
  assert_int_equal(o->sync(cx), 0);
}

/* bf16 keeps 8 significant bits: 1 + 3*2^-9 rounds to 1 + 2^-7, 1 + 2^-8
 * (a tie) to 1 (even), 0.15625 is exact. */
static void test_bf16_embedding(void **state) {
  GPU_OR_SKIP(state);
  float table[3 * 4] = {0.15625f,
                        -2.0f,
                        1.0f + 3.0f / 512,
                        1.0f + 1.0f / 256,
                        7.0f,
                        8.0f,
                        9.0f,
                        10.0f,
                        -0.5f,
                        0.25f,
                        1e30f,
                        -1e-3f};
  float *w = o->weight_upload(cx, table, 12);
  assert_non_null(w);
  int32_t ids[3] = {2, 0, 2};
  int32_t *d_ids = dev_upload(be, ids, sizeof ids);
  float *out = o->alloc(cx, sizeof(float) * 12);
  o->embedding(cx, 3, d_ids, w, 4, out);
  float h[12];
  assert_int_equal(o->download(cx, h, out, sizeof h), 0);
  assert_true(h[4] == 0.15625f && h[5] == -2.0f);
  assert_true(h[6] == 1.0f + 1.0f / 128 && h[7] == 1.0f);
  assert_true(h[0] == -0.5f && h[1] == 0.25f && h[8] == -0.5f);
  assert_true(fabsf(h[2] - 1e30f) < 1e30f * 0.004f);
  assert_true(fabsf(h[3] + 1e-3f) < 1e-3f * 0.004f);
  o->free(cx, w);
  o->free(cx, d_ids);
  o->free(cx, out);
}

/* Row 5 of a 37-row linear equals the same row alone, to the bit; and both
 * are within bf16 tolerance of a double reference on bf16-rounded inputs. */
static void test_linear_row_invariant(void **state) {
  GPU_OR_SKIP(state);
  enum { M = 37, N = 96, K = 256, R = 5 };
  rng_state = 42;
  float *x = malloc(sizeof(float) * M * K), *wt = malloc(sizeof(float) * N * K);
  assert_true(x && wt);
  for (int i = 0; i < M * K; i++)
    x[i] = rng_uniform(-1, 1);
  for (int i = 0; i < N * K; i++)
    wt[i] = rng_uniform(-1, 1);
  void *w = o->weight_upload(cx, wt, (size_t)N * K);
  float *dx = dev_upload(be, x, sizeof(float) * M * K);
  float *dy = o->alloc(cx, sizeof(float) * M * N);
  float *dy1 = o->alloc(cx, sizeof(float) * N);
  o->linear(cx, M, N, K, dx, w, 0.0f, dy);
  o->linear(cx, 1, N, K, dx + (size_t)R * K, w, 0.0f, dy1);
  float y[M * N], y1[N];
  assert_int_equal(o->download(cx, y, dy, sizeof y), 0);
  assert_int_equal(o->download(cx, y1, dy1, sizeof y1), 0);
  assert_memory_equal(y1, y + (size_t)R * N, sizeof y1);
  for (int j = 0; j < N; j++) { /* bf16 inputs: ~3 significant digits */
    double ref = 0, mag = 0;
    for (int t = 0; t < K; t++) {
      ref += (double)x[R * K + t] * wt[j * K + t];
      mag += fabs((double)x[R * K + t] * wt[j * K + t]);
    }
    assert_true(fabs(y1[j] - ref) <= 0.01 * mag);
  }
  /* beta 1 accumulates */
  o->linear(cx, 1, N, K, dx + (size_t)R * K, w, 1.0f, dy1);
  float y2[N];
  assert_int_equal(o->download(cx, y2, dy1, sizeof y2), 0);
  for (int j = 0; j < N; j++)
    assert_true(fabsf(y2[j] - 2 * y1[j]) <= 1e-5f * fabsf(y1[j]) + 1e-6f);
  free(x);
  free(wt);
  o->free(cx, w);
  o->free(cx, dx);
  o->free(cx, dy);
  o->free(cx, dy1);
}

/* The same keys and values once contiguous and once scattered over shuffled
 * blocks of 16 (stale NaN blocks around them): identical outputs. */
static void test_paged_equals_contiguous(void **state) {
  GPU_OR_SKIP(state);
  enum { L = 77, H = 8, KVH = 2, D = 128, BS = 16, NB = 12, POOL = 16 };
  const size_t kvd = (size_t)KVH * D;
  rng_state = 7;
  float *k = malloc(sizeof(float) * L * kvd),
        *v = malloc(sizeof(float) * L * kvd);
  float *q = malloc(sizeof(float) * L * H * D);
  float *kp = malloc(sizeof(float) * POOL * BS * kvd);
  float *vp = malloc(sizeof(float) * POOL * BS * kvd);
  assert_true(k && v && q && kp && vp);
  for (size_t i = 0; i < L * kvd; i++) {
    k[i] = rng_uniform(-1, 1);
    v[i] = rng_uniform(-1, 1);
  }
  for (size_t i = 0; i < (size_t)L * H * D; i++)
    q[i] = rng_uniform(-1, 1);
  for (size_t i = 0; i < (size_t)POOL * BS * kvd; i++)
    kp[i] = vp[i] = NAN; /* never read: past L or unused blocks */
  int32_t table[NB];
  for (int b = 0; b < NB; b++)
    table[b] = (b * 7 + 3) % POOL; /* a permutation of distinct blocks */
  for (int p = 0; p < L; p++) {
    size_t slot = (size_t)table[p / BS] * BS + p % BS;
    memcpy(kp + slot * kvd, k + p * kvd, sizeof(float) * kvd);
    memcpy(vp + slot * kvd, v + p * kvd, sizeof(float) * kvd);
  }
  /* queries: the last 5 positions (a prefill chunk) and position 0 */
  enum { NQ = 6 };
  int32_t q_seq[NQ] = {0, 0, 0, 0, 0, 0};
  int32_t q_pos[NQ] = {L - 5, L - 4, L - 3, L - 2, L - 1, 0};
  float *qs = malloc(sizeof(float) * NQ * H * D);
  for (int i = 0; i < NQ; i++)
    memcpy(qs + (size_t)i * H * D, q + (size_t)q_pos[i] * H * D,
           sizeof(float) * H * D);

  float *dk = dev_upload(be, k, sizeof(float) * L * kvd);
  float *dv = dev_upload(be, v, sizeof(float) * L * kvd);
  float *dq = dev_upload(be, q, sizeof(float) * L * H * D);
  float *dkp = dev_upload(be, kp, sizeof(float) * POOL * BS * kvd);
  float *dvp = dev_upload(be, vp, sizeof(float) * POOL * BS * kvd);
  float *dqs = dev_upload(be, qs, sizeof(float) * NQ * H * D);
  int32_t *dseq = dev_upload(be, q_seq, sizeof q_seq);
  int32_t *dpos = dev_upload(be, q_pos, sizeof q_pos);
  int32_t *dtab = dev_upload(be, table, sizeof table);
  float *dout = o->alloc(cx, sizeof(float) * L * H * D);
  float *dpout = o->alloc(cx, sizeof(float) * NQ * H * D);
  o->attention(cx, L, 0, H, KVH, D, dq, dk, dv, dout);
  o->paged_attention(cx, NQ, dseq, dpos, L - 1, dtab, NB, BS, H, KVH, D, dqs,
                     dkp, dvp, dpout);
  float *out = malloc(sizeof(float) * L * H * D);
  float *pout = malloc(sizeof(float) * NQ * H * D);
  assert_int_equal(o->download(cx, out, dout, sizeof(float) * L * H * D), 0);
  assert_int_equal(o->download(cx, pout, dpout, sizeof(float) * NQ * H * D), 0);
  for (int i = 0; i < NQ; i++)
    assert_memory_equal(pout + (size_t)i * H * D,
                        out + (size_t)q_pos[i] * H * D, sizeof(float) * H * D);
  /* one value against a double reference: query L-1, head 5 (kv head 1) */
  {
    int p = L - 1, h = 5, g = h / (H / KVH);
    double s[L], m = -INFINITY, z = 0;
    for (int t = 0; t < L; t++) {
      double d = 0;
      for (int j = 0; j < D; j++)
        d += (double)q[((size_t)p * H + h) * D + j] * k[t * kvd + g * D + j];
      s[t] = d / sqrt((double)D);
      if (s[t] > m) m = s[t];
    }
    for (int t = 0; t < L; t++)
      z += exp(s[t] - m);
    for (int j = 0; j < D; j += 17) {
      double ref = 0;
      for (int t = 0; t < L; t++)
        ref += exp(s[t] - m) / z * v[t * kvd + g * D + j];
      assert_true(fabs(out[((size_t)p * H + h) * D + j] - ref) < 1e-5);
    }
  }
  void *bufs[] = {dk, dv, dq, dkp, dvp, dqs, dseq, dpos, dtab, dout, dpout};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
    o->free(cx, bufs[i]);
  free(k);
  free(v);
  free(q);
  free(kp);
  free(vp);
  free(qs);
  free(out);
  free(pout);
}

/* Rows of 152064 logits. Row 0: max at 100000 (tie at 100001 loses),
 * greedy. Row 1: same logits, T 1 with top_k 1. Rows 2, 3: only tokens 5
 * (p 1/4) and 150000 (p 3/4) finite; the order is 150000 then 5, so u 0.5
 * draws 150000 and u 0.8 draws 5. */
static void test_sample_big_vocab(void **state) {
  GPU_OR_SKIP(state);
  enum { V = 152064, R = 4 };
  float *x = malloc(sizeof(float) * R * V);
  assert_non_null(x);
  rng_state = 3;
  for (int i = 0; i < V; i++)
    x[i] = x[V + i] = rng_uniform(-5, 5);
  x[100000] = x[V + 100000] = 9.0f;
  x[100001] = x[V + 100001] = 9.0f;
  for (int i = 0; i < V; i++)
    x[2 * V + i] = x[3 * V + i] = -INFINITY;
  x[2 * V + 5] = x[3 * V + 5] = 0.0f;
  x[2 * V + 150000] = x[3 * V + 150000] = logf(3.0f);
  float temp[R] = {0.0f, 1.0f, 1.0f, 1.0f}, top_p[R] = {1, 1, 1, 1};
  float min_p[R] = {0, 0, 0, 0}, u[R] = {0.3f, 0.99f, 0.5f, 0.8f};
  int32_t top_k[R] = {0, 1, 0, -1};
  float *dx = dev_upload(be, x, sizeof(float) * R * V);
  float *dt = dev_upload(be, temp, sizeof temp);
  int32_t *dk = dev_upload(be, top_k, sizeof top_k);
  float *dp = dev_upload(be, top_p, sizeof top_p);
  float *dm = dev_upload(be, min_p, sizeof min_p);
  float *du = dev_upload(be, u, sizeof u);
  int32_t *dtok = o->alloc(cx, sizeof(int32_t) * R);
  float *dlp = o->alloc(cx, sizeof(float) * R), *dlse = o->alloc(cx, 16);
  o->sample(cx, R, V, dx, dt, dk, dp, dm, du, dtok, dlp);
  o->logsumexp(cx, R, V, dx, dlse);
  int32_t tok[R];
  float lp[R], lse[R];
  assert_int_equal(o->download(cx, tok, dtok, sizeof tok), 0);
  assert_int_equal(o->download(cx, lp, dlp, sizeof lp), 0);
  assert_int_equal(o->download(cx, lse, dlse, sizeof lse), 0);
  assert_int_equal(tok[0], 100000);
  assert_int_equal(tok[1], 100000);
  assert_int_equal(tok[2], 150000);
  assert_int_equal(tok[3], 5);
  assert_true(fabsf(lp[2] - logf(0.75f)) < 1e-6f);
  assert_true(fabsf(lp[3] - logf(0.25f)) < 1e-6f);
  assert_true(fabsf(lse[2] - logf(4.0f)) < 1e-6f);
  double z = 0;
  for (int i = 0; i < V; i++)
    z += exp((double)x[i] - 9.0);
  assert_true(fabs(lse[0] - (9.0 + log(z))) < 1e-5);
  assert_true(fabsf(lp[0] - (9.0f - lse[0])) < 1e-6f);
  void *bufs[] = {dx, dt, dk, dp, dm, du, dtok, dlp, dlse};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
    o->free(cx, bufs[i]);
  free(x);
}

/* Last: a bad copy poisons the backend; sync and download then fail. */
static void test_sticky_error(void **state) {
  GPU_OR_SKIP(state);
  float h[4] = {0};
  float *d = o->alloc(cx, sizeof h);
  assert_int_equal(o->sync(cx), 0);
  o->copy(cx, d, (const void *)(uintptr_t)0x10, sizeof h); /* not a buffer */
  assert_int_equal(o->sync(cx), R1D_EBACKEND);
  assert_true(r1d_cuda_backend_error(be)[0] != '\0');
  assert_int_equal(o->download(cx, h, d, sizeof h), R1D_EBACKEND);
  o->free(cx, d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_built_flag),
      cmocka_unit_test(test_init_errors),
  };
  const struct CMUnitTest gpu_tests[] = {
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_bf16_embedding),
      cmocka_unit_test(test_linear_row_invariant),
      cmocka_unit_test(test_paged_equals_contiguous),
      cmocka_unit_test(test_sample_big_vocab),
      cmocka_unit_test(test_sticky_error),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  if (failed) return 1;
  /* Without a device the GPU tests cannot run: exit 77, which meson and
   * tests/gpu/run.sh report as skipped rather than passed. */
  r1d_backend probe;
  if (r1d_cuda_backend_init(&probe, 0, NULL) != 0) {
    print_message("no CUDA device: GPU tests skipped\n");
    return 77;
  }
  r1d_cuda_backend_destroy(&probe);
  failed = cmocka_run_group_tests(gpu_tests, gpu_setup, gpu_teardown);
  return failed ? 1 : 0;
}
