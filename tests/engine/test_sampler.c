/* test_sampler.c - the sampler against hand-computed values and against
 * brute-force references: greedy and its ties, logit bias, repetition /
 * presence / frequency penalties (exact penalised logits), top-k, top-p and
 * min-p (the chosen token always lies in the set a full sort allows),
 * empirical frequencies against softmax, seeding, raw logprobs, validation. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h> /* after the four headers it needs */

#include "engine/serve/sampler.h"

/* ---- helpers ---- */

/* The tests' own generator (splitmix64), independent of the sampler's. */
static uint64_t test_rng(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static double test_uniform(uint64_t *x) {
  return ((double)(test_rng(x) >> 11) + 0.5) * 0x1.0p-53;
}

static float test_normal(uint64_t *x) {
  double u = test_uniform(x), v = test_uniform(x);
  return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static void random_logits(float *l, int n, float scale, uint64_t *x) {
  for (int i = 0; i < n; i++)
    l[i] = scale * test_normal(x);
}

static r1d_sampler *make(const r1d_sampling_params *p, int vocab,
                         const int32_t *prompt, size_t n_prompt) {
  r1d_sampler *s = NULL;
  r1d_error err = {0};
  int rc = r1d_sampler_create(p, vocab, prompt, n_prompt, &s, &err);
  if (rc) fprintf(stderr, "create: %s\n", err.msg);
  assert_int_equal(rc, 0);
  assert_non_null(s);
  return s;
}

/* Samples from a fresh copy of `logits` (the sampler may modify it). */
static int32_t sample_copy(r1d_sampler *s, const float *logits, int vocab) {
  float buf[64];
  assert_true(vocab <= 64);
  memcpy(buf, logits, sizeof(float) * (size_t)vocab);
  return r1d_sampler_sample(s, buf, NULL, NULL, 0);
}

static r1d_sampling_params greedy_params(void) {
  r1d_sampling_params p;
  r1d_sampling_params_default(&p);
  p.temperature = 0.0f;
  return p;
}

/* ---- greedy ---- */

static void test_defaults(void **state) {
  (void)state;
  r1d_sampling_params p;
  r1d_sampling_params_default(&p);
  assert_true(p.temperature == 1.0f);
  assert_true(p.top_p == 1.0f);
  assert_true(p.top_k <= 0);
  assert_true(p.min_p == 0.0f);
  assert_true(p.repetition_penalty == 1.0f);
  assert_true(p.presence_penalty == 0.0f && p.frequency_penalty == 0.0f);
  assert_int_equal(p.n_logit_bias, 0);
  assert_int_equal(r1d_sampling_params_validate(&p, 10, NULL), 0);
}

static void test_greedy_argmax(void **state) {
  (void)state;
  r1d_sampling_params p = greedy_params();
  r1d_sampler *s = make(&p, 4, NULL, 0);
  const float a[4] = {0.1f, 2.0f, -1.0f, 1.9f};
  assert_int_equal(sample_copy(s, a, 4), 1);
  const float b[4] = {-5.0f, -4.0f, -3.0f, -2.5f};
  assert_int_equal(sample_copy(s, b, 4), 3);
  r1d_sampler_free(s);

  p.temperature = 1e-6f; /* below 1e-5 counts as greedy */
  s = make(&p, 4, NULL, 0);
  for (int i = 0; i < 50; i++)
    assert_int_equal(sample_copy(s, a, 4), 1);
  r1d_sampler_free(s);
}

static void test_greedy_ties_lowest_id(void **state) {
  (void)state;
  r1d_sampling_params p = greedy_params();
  r1d_sampler *s = make(&p, 5, NULL, 0);
  const float a[5] = {1.0f, 3.0f, 2.0f, 3.0f, 3.0f};
  assert_int_equal(sample_copy(s, a, 5), 1);
  const float b[5] = {7.0f, 7.0f, 7.0f, 7.0f, 7.0f};
  assert_int_equal(sample_copy(s, b, 5), 0);
  r1d_sampler_free(s);
}

/* ---- logit bias ---- */

static void test_logit_bias(void **state) {
  (void)state;
  const float a[3] = {5.0f, 0.0f, 0.0f};
  r1d_logit_bias force = {.id = 2, .bias = 100.0f};
  r1d_sampling_params p;
  r1d_sampling_params_default(&p);
  p.logit_bias = &force;
  p.n_logit_bias = 1;
  p.seed = 7;
  r1d_sampler *s = make(&p, 3, NULL, 0);
  for (int i = 0; i < 200; i++)
    assert_int_equal(sample_copy(s, a, 3), 2);
  r1d_sampler_free(s);

  /* a -100 bias removes the argmax from greedy, and the buffer shows it */
  r1d_logit_bias ban = {.id = 0, .bias = -100.0f};
  p = greedy_params();
  p.logit_bias = &ban;
  p.n_logit_bias = 1;
  s = make(&p, 3, NULL, 0);
  float buf[3] = {5.0f, 0.5f, 1.0f};
  assert_int_equal(r1d_sampler_sample(s, buf, NULL, NULL, 0), 2);
  assert_float_equal(buf[0], -95.0f, 1e-5f);
  assert_float_equal(buf[1], 0.5f, 0.0f);
  r1d_sampler_free(s);
}

/* ---- penalties ---- */

static void test_repetition_penalty(void **state) {
  (void)state;
  r1d_sampling_params p = greedy_params();
  p.repetition_penalty = 2.0f;
  const int32_t prompt[3] = {0, 1, 0};
  r1d_sampler *s = make(&p, 4, prompt, 3);
  /* seen: 0 (positive: divided), 1 (negative: multiplied); 2, 3 untouched */
  float buf[4] = {2.0f, -1.0f, 1.5f, -0.5f};
  assert_int_equal(r1d_sampler_sample(s, buf, NULL, NULL, 0), 2);
  assert_float_equal(buf[0], 1.0f, 1e-6f);
  assert_float_equal(buf[1], -2.0f, 1e-6f);
  assert_float_equal(buf[2], 1.5f, 0.0f);
  assert_float_equal(buf[3], -0.5f, 0.0f);
  /* 2 was generated, so it is now penalised too (once, not per count) */
  float buf2[4] = {2.0f, -1.0f, 1.5f, -0.5f};
  assert_int_equal(r1d_sampler_sample(s, buf2, NULL, NULL, 0), 0);
  assert_float_equal(buf2[2], 0.75f, 1e-6f);
  assert_float_equal(buf2[0], 1.0f, 1e-6f);
  assert_float_equal(buf2[3], -0.5f, 0.0f);
  r1d_sampler_free(s);

  /* a penalty below 1 favours repeats: 0.5 doubles the seen positive logit */
  p.repetition_penalty = 0.5f;
  s = make(&p, 4, prompt, 3);
  float buf3[4] = {1.0f, -1.0f, 1.5f, 0.0f};
  assert_int_equal(r1d_sampler_sample(s, buf3, NULL, NULL, 0), 0);
  assert_float_equal(buf3[0], 2.0f, 1e-6f);
  assert_float_equal(buf3[1], -0.5f, 1e-6f);
  r1d_sampler_free(s);
}

static void test_presence_frequency(void **state) {
  (void)state;
  r1d_sampling_params p = greedy_params();
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  const int32_t prompt[2] = {1, 1}; /* the prompt does not count here */
  r1d_sampler *s = make(&p, 4, prompt, 2);
  float b1[4] = {5.0f, 0.0f, 0.0f, 0.0f};
  assert_int_equal(r1d_sampler_sample(s, b1, NULL, NULL, 0), 0);
  assert_float_equal(b1[0], 5.0f, 0.0f);
  assert_float_equal(b1[1], 0.0f, 0.0f);
  float b2[4] = {5.0f, 0.0f, 0.0f, 0.0f};
  assert_int_equal(r1d_sampler_sample(s, b2, NULL, NULL, 0), 0);
  assert_float_equal(b2[0], 5.0f - 0.5f * 1 - 0.25f, 1e-6f);
  float b3[4] = {5.0f, 0.0f, 0.0f, 0.0f};
  assert_int_equal(r1d_sampler_sample(s, b3, NULL, NULL, 0), 0);
  assert_float_equal(b3[0], 5.0f - 0.5f * 2 - 0.25f, 1e-6f);
  /* equal logits: the penalised 0 loses to 1 */
  float b4[4] = {1.0f, 1.0f, 1.0f, 1.0f};
  assert_int_equal(r1d_sampler_sample(s, b4, NULL, NULL, 0), 1);
  assert_float_equal(b4[0], 1.0f - 0.5f * 3 - 0.25f, 1e-6f);
  float b5[4] = {1.0f, 1.0f, 1.0f, 1.0f};
  assert_int_equal(r1d_sampler_sample(s, b5, NULL, NULL, 0), 2);
  assert_float_equal(b5[1], 1.0f - 0.5f - 0.25f, 1e-6f);
  r1d_sampler_free(s);

  /* negative penalties reward repeats */
  p.frequency_penalty = 0.0f;
  p.presence_penalty = -1.0f;
  s = make(&p, 3, NULL, 0);
  float c1[3] = {0.0f, 1.0f, 0.0f};
  assert_int_equal(r1d_sampler_sample(s, c1, NULL, NULL, 0), 1);
  float c2[3] = {0.0f, 0.5f, 1.2f};
  assert_int_equal(r1d_sampler_sample(s, c2, NULL, NULL, 0), 1);
  assert_float_equal(c2[1], 1.5f, 1e-6f);
  r1d_sampler_free(s);
}

/* ---- filters that collapse to greedy ---- */

static void same_as_greedy(r1d_sampling_params p, int vocab, float scale) {
  r1d_sampling_params g = greedy_params();
  r1d_sampler *a = make(&p, vocab, NULL, 0);
  r1d_sampler *b = make(&g, vocab, NULL, 0);
  float *l1 = malloc(sizeof(float) * (size_t)vocab);
  float *l2 = malloc(sizeof(float) * (size_t)vocab);
  assert_non_null(l1);
  assert_non_null(l2);
  uint64_t x = 99;
  for (int step = 0; step < 60; step++) {
    random_logits(l1, vocab, scale, &x);
    memcpy(l2, l1, sizeof(float) * (size_t)vocab);
    assert_int_equal(r1d_sampler_sample(a, l1, NULL, NULL, 0),
                     r1d_sampler_sample(b, l2, NULL, NULL, 0));
  }
  free(l1);
  free(l2);
  r1d_sampler_free(a);
  r1d_sampler_free(b);
}

static void test_top_k_1_is_greedy(void **state) {
  (void)state;
  r1d_sampling_params p;
  r1d_sampling_params_default(&p);
  p.top_k = 1;
  p.seed = 3;
  same_as_greedy(p, 1000, 1.0f);
  p.temperature = 2.0f;
  same_as_greedy(p, 1000, 0.1f);
}

static void test_top_p_tiny_is_greedy(void **state) {
  (void)state;
  r1d_sampling_params p;
  r1d_sampling_params_default(&p);
  p.top_p = 1e-6f;
  p.seed = 4;
  same_as_greedy(p, 1000, 1.0f);
  p.temperature = 2.0f; /* nearly flat: the threshold passes must widen */
  same_as_greedy(p, 1000, 0.01f);
}

static void test_min_p_one_is_greedy(void **state) {
  (void)state;
  r1d_sampling_params p;
  r1d_sampling_params_default(&p);
  p.min_p = 1.0f;
  p.seed = 5;
  same_as_greedy(p, 1000, 1.0f);
}

/* ---- empirical distributions ---- */

enum { NV = 5, DRAWS = 20000 };
static const float five[NV] = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f};

/* softmax(five / t) restricted to `keep` (NULL: all), renormalised. */
static void expected_probs(double t, const int *keep, double *out) {
  double z = 0.0;
  for (int i = 0; i < NV; i++) {
    out[i] = (!keep || keep[i]) ? exp(five[i] / t) : 0.0;
    z += out[i];
  }
  for (int i = 0; i < NV; i++)
    out[i] /= z;
}

/* Draws DRAWS tokens from `logits` and checks the frequencies against
 * `want`: max abs difference below 0.015 (over 4 standard deviations for any
 * p) and chi-square below its p = 0.001 critical value (Wilson-Hilferty);
 * zero-probability tokens must never appear. */
static void check_distribution_of(const r1d_sampling_params *p,
                                  const float *logits, int vocab,
                                  const double *want) {
  r1d_sampler *s = make(p, vocab, NULL, 0);
  int count[64] = {0};
  assert_true(vocab <= 64);
  for (int i = 0; i < DRAWS; i++) {
    int32_t id = sample_copy(s, logits, vocab);
    assert_true(id >= 0 && id < vocab);
    count[id]++;
  }
  double chi2 = 0.0, max_diff = 0.0;
  int df = -1;
  for (int i = 0; i < vocab; i++) {
    double f = (double)count[i] / DRAWS;
    if (want[i] == 0.0) {
      if (count[i]) fprintf(stderr, "token %d drawn %d times\n", i, count[i]);
      assert_int_equal(count[i], 0);
      continue;
    }
    double e = want[i] * DRAWS;
    chi2 += (count[i] - e) * (count[i] - e) / e;
    if (fabs(f - want[i]) > max_diff) max_diff = fabs(f - want[i]);
    df++;
  }
  double crit = 10.83; /* df 1 */
  if (df > 1) {
    double h = 2.0 / (9.0 * df);
    crit = df * pow(1.0 - h + 3.09 * sqrt(h), 3);
  }
  if (max_diff >= 0.015 || chi2 >= crit)
    fprintf(stderr, "max_diff %g chi2 %g (critical %g)\n", max_diff, chi2,
            crit);
  assert_true(max_diff < 0.015);
  assert_true(df < 1 || chi2 < crit);
  r1d_sampler_free(s);
}

static void check_distribution(const r1d_sampling_params *p,
                               const double *want) {
  check_distribution_of(p, five, NV, want);
}

static void test_distribution_temperature_1(void **state) {
  (void)state;
  r1d_sampling_params p;
  r1d_sampling_params_default(&p);
  p.seed = 42;
  double want[NV];
  expected_probs(1.0, NULL, want);
  check_distribution(&p, want);
}

static void test_temperature_sharpens(void **state) {
  (void)state;
  r1d_sampling_params p;
  r1d_sampling_params_default(&p);
  p.seed = 43;
  p.temperature = 0.5f;
  double want[NV], want1[NV];
  expected_probs(0.5, NULL, want);
  expected_probs(1.0, NULL, want1);
  assert_true(want[4] > want1[4] + 0.2); /* 0.826 vs 0.553 */
  check_distribution(&p, want);
  p.temperature = 2.0f; /* and raising it flattens */
  expected_probs(2.0, NULL, want);
  assert_true(want[4] < want1[4] - 0.1);
  check_distribution(&p, want);
}

static void test_distribution_top_k(void **state) {
  (void)state;
  r1d_sampling_params p;
  r1d_sampling_params_default(&p);
  p.seed = 44;
  p.top_k = 2;
  const int keep[NV] = {1, 0, 0, 0, 1};
  double want[NV];
  expected_probs(1.0, keep, want);
  check_distribution(&p, want);
  p.top_k = 3;
  const int keep3[NV] = {1, 1, 0, 0, 1};
  expected_probs(1.0, keep3, want);
  check_distribution(&p, want);
}

static void test_distribution_top_p(void **state) {
  (void)state;
  /* probabilities: 4: 0.553, 0: 0.203, 1: 0.123, 2: 0.075, 3: 0.045 */
  r1d_sampling_params p;
  r1d_sampling_params_default(&p);
  p.seed = 45;
  p.top_p = 0.7f; /* 0.553 < 0.7 <= 0.756: keep {4, 0} */
  const int keep[NV] = {1, 0, 0, 0, 1};
  double want[NV];
  expected_probs(1.0, keep, want);
  check_distribution(&p, want);
  p.top_p = 0.5f; /* the top token alone reaches 0.5 */
  const int keep1[NV] = {0, 0, 0, 0, 1};
  expected_probs(1.0, keep1, want);
  check_distribution(&p, want);
  p.top_p = 0.9f; /* 0.879 < 0.9 <= 0.954: drops only token 3 */
  const int keep4[NV] = {1, 1, 1, 0, 1};
  expected_probs(1.0, keep4, want);
  check_distribution(&p, want);
  /* top-k first, then top-p renormalised inside the k: {4, 0} has
   * 0.731 / 0.269, so top_p 0.75 keeps both and 0.7 only token 4 */
  p.top_k = 2;
  p.top_p = 0.75f;
  expected_probs(1.0, keep, want);
  check_distribution(&p, want);
  p.top_p = 0.7f;
  expected_probs(1.0, keep1, want);
  check_distribution(&p, want);
}

static void test_distribution_min_p(void **state) {
  (void)state;
  r1d_sampling_params p;
  r1d_sampling_params_default(&p);
  p.seed = 46;
  /* p / p_max: 0: 0.368, 1: 0.223, 2: 0.135, 3: 0.082 */
  p.min_p = 0.2f;
  const int keep[NV] = {1, 1, 0, 0, 1};
  double want[NV];
  expected_probs(1.0, keep, want);
  check_distribution(&p, want);
  /* with top_p too (0.9 keeps {4, 0, 1, 2}; min_p 0.2 then drops 2) */
  p.top_p = 0.9f;
  check_distribution(&p, want);
  p.top_p = 1.0f;
  p.top_k = 4; /* and with top-k */
  check_distribution(&p, want);
}

/* ---- a real-size vocabulary against brute force ---- */

typedef struct {
  int id;
  double w;
} ref_cand;

static int ref_cmp(const void *a, const void *b) {
  const ref_cand *x = a, *y = b;
  if (x->w != y->w) return x->w > y->w ? -1 : 1;
  return x->id - y->id;
}

/* The allowed set by a full sort: allowed[i] = 1 for tokens that may be
 * drawn. The boundary test uses a small tolerance, so only tokens clearly
 * outside are marked 0; returns the set size. */
static int ref_allowed(const float *l, int vocab, const r1d_sampling_params *p,
                       uint8_t *allowed) {
  ref_cand *c = malloc(sizeof *c * (size_t)vocab);
  assert_non_null(c);
  float m = l[0];
  for (int i = 1; i < vocab; i++)
    if (l[i] > m) m = l[i];
  for (int i = 0; i < vocab; i++) {
    c[i] = (ref_cand){i, exp((double)(l[i] - m) / p->temperature)};
    allowed[i] = 0;
  }
  qsort(c, (size_t)vocab, sizeof *c, ref_cmp);
  int n = (p->top_k > 0 && p->top_k < vocab) ? p->top_k : vocab;
  double z = 0.0;
  for (int i = 0; i < n; i++)
    z += c[i].w;
  if (p->top_p < 1.0f) {
    double cum = 0.0;
    int cut = n;
    for (int i = 0; i < n; i++) {
      cum += c[i].w / z;
      if (cum >= p->top_p + 1e-6) {
        cut = i + 1;
        break;
      }
    }
    n = cut;
  }
  int k = 0;
  for (int i = 0; i < n; i++)
    if (c[i].w >= p->min_p * (1 - 1e-6)) {
      allowed[c[i].id] = 1;
      k++;
    }
  free(c);
  return k;
}

/* Random logits times `scale`; with `spike`, token 777 gets logit 12, so a
 * peaked-looking row still has most of its mass in the long flat tail. */
static void check_big_vocab(r1d_sampling_params p, float scale, int spike) {
  enum { V = 151936 };
  float *l = malloc(sizeof(float) * V), *buf = malloc(sizeof(float) * V);
  uint8_t *allowed = malloc(V);
  assert_non_null(l);
  assert_non_null(buf);
  assert_non_null(allowed);
  uint64_t x = 1234;
  random_logits(l, V, scale, &x);
  if (spike) l[777] = 12.0f;
  int n_allowed = ref_allowed(l, V, &p, allowed);
  assert_true(n_allowed >= 1);
  r1d_sampler *s = make(&p, V, NULL, 0);
  int distinct = 0;
  uint8_t *hit = calloc(V, 1);
  assert_non_null(hit);
  for (int i = 0; i < 300; i++) {
    memcpy(buf, l, sizeof(float) * V);
    int32_t id = r1d_sampler_sample(s, buf, NULL, NULL, 0);
    assert_true(id >= 0 && id < V);
    if (!allowed[id]) fprintf(stderr, "token %d not allowed\n", (int)id);
    assert_true(allowed[id]);
    if (!hit[id]) distinct++;
    hit[id] = 1;
  }
  /* it does sample, not collapse to one token, when the set is wide */
  if (n_allowed >= 100) assert_true(distinct >= 20);
  free(hit);
  r1d_sampler_free(s);
  free(l);
  free(buf);
  free(allowed);
}

static void test_big_vocab_filters(void **state) {
  (void)state;
  r1d_sampling_params p;
  r1d_sampling_params_default(&p);
  p.seed = 11;
  p.top_k = 50;
  check_big_vocab(p, 3.0f, 0);
  p.top_k = -1;
  p.top_p = 0.9f;
  check_big_vocab(p, 3.0f, 0); /* peaked: the first threshold pass suffices */
  check_big_vocab(p, 0.5f, 0); /* flat: the nucleus holds most of the vocab */
  check_big_vocab(p, 0.1f, 1); /* spike + tail: thresholds must widen */
  p.top_p = 0.5f;
  p.top_k = 1000;
  check_big_vocab(p, 1.0f, 0);
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.05f;
  check_big_vocab(p, 2.0f, 0);
}

/* 64 tokens 0.03 apart, so several share a histogram bin and neighbours sit
 * in adjacent bins: the drawn frequencies must match the brute-force nucleus
 * exactly (a token wrongly dropped or added shows at once). */
static void check_dense(const r1d_sampling_params *p, const float *l) {
  uint8_t allowed[64];
  ref_allowed(l, 64, p, allowed);
  double want[64], z = 0.0;
  for (int i = 0; i < 64; i++) {
    want[i] = allowed[i] ? exp((double)l[i] / p->temperature) : 0.0;
    z += want[i];
  }
  for (int i = 0; i < 64; i++)
    want[i] /= z;
  check_distribution_of(p, l, 64, want);
}

static void test_distribution_dense(void **state) {
  (void)state;
  float l[64];
  for (int i = 0; i < 64; i++)
    l[i] = -0.03f * (float)((i * 37) % 64);
  r1d_sampling_params p;
  r1d_sampling_params_default(&p);
  p.seed = 47;
  p.top_p = 0.5f;
  check_dense(&p, l);
  p.top_p = 0.9f;
  check_dense(&p, l);
  p.temperature = 0.3f;
  check_dense(&p, l);
  p.temperature = 1.0f;
  p.top_k = 20;
  p.top_p = 0.8f;
  check_dense(&p, l);
  p.top_k = -1;
  p.top_p = 0.9f;
  p.min_p = 0.3f;
  check_dense(&p, l);

  /* exact ties: 10 equal tokens, top_p 0.35 keeps the four lowest ids */
  float flat[64];
  for (int i = 0; i < 64; i++)
    flat[i] = i < 10 ? 1.0f : -INFINITY;
  r1d_sampling_params_default(&p);
  p.seed = 48;
  p.top_p = 0.35f;
  double want[64] = {0.25, 0.25, 0.25, 0.25};
  check_distribution_of(&p, flat, 64, want);
  p.top_p = 1.0f;
  p.top_k = 3; /* and top-k keeps the three lowest */
  double want3[64] = {1.0 / 3, 1.0 / 3, 1.0 / 3};
  check_distribution_of(&p, flat, 64, want3);
}

/* ---- seeds ---- */

static void run_sequence(uint64_t seed, int32_t *out, int n) {
  enum { V = 1000 };
  r1d_sampling_params p;
  r1d_sampling_params_default(&p);
  p.seed = seed;
  p.top_p = 0.95f;
  r1d_sampler *s = make(&p, V, NULL, 0);
  float l[V];
  uint64_t x = 77; /* the same logits for every seed */
  for (int i = 0; i < n; i++) {
    random_logits(l, V, 1.0f, &x);
    out[i] = r1d_sampler_sample(s, l, NULL, NULL, 0);
  }
  r1d_sampler_free(s);
}

static void test_seed_reproducible(void **state) {
  (void)state;
  enum { N = 200 };
  int32_t a[N], b[N], c[N];
  run_sequence(2024, a, N);
  run_sequence(2024, b, N);
  run_sequence(2025, c, N);
  assert_memory_equal(a, b, sizeof a);
  int differ = 0;
  for (int i = 0; i < N; i++)
    differ += a[i] != c[i];
  assert_true(differ > N / 2); /* a near-flat 1000-way draw rarely agrees */
}

/* ---- logprobs ---- */

static void test_logprobs(void **state) {
  (void)state;
  /* log_softmax([1, 2, 3, 4]) = x - 4.4401896985611957 */
  const double lse = 4.440189698561196;
  r1d_sampling_params p = greedy_params();
  r1d_sampler *s = make(&p, 4, NULL, 0);
  float l[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  float lp = 0.0f;
  r1d_top_logprob top[3];
  assert_int_equal(r1d_sampler_sample(s, l, &lp, top, 3), 3);
  assert_float_equal(lp, 4.0 - lse, 1e-5);
  assert_int_equal(top[0].id, 3);
  assert_int_equal(top[1].id, 2);
  assert_int_equal(top[2].id, 1);
  assert_float_equal(top[0].logprob, -0.4401897f, 1e-5);
  assert_float_equal(top[1].logprob, -1.4401897f, 1e-5);
  assert_float_equal(top[2].logprob, -2.4401897f, 1e-5);

  /* n_top beyond the vocab: padded with id -1 */
  r1d_top_logprob big[6];
  float l2[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  r1d_sampler_sample(s, l2, NULL, big, 6);
  assert_int_equal(big[3].id, 0);
  assert_float_equal(big[3].logprob, 1.0 - lse, 1e-5);
  assert_int_equal(big[4].id, -1);
  assert_int_equal(big[5].id, -1);
  assert_true(isinf(big[5].logprob) && big[5].logprob < 0);
  r1d_sampler_free(s);

  /* logprobs are raw: bias and penalties change the choice, not the report */
  r1d_logit_bias b = {.id = 0, .bias = 100.0f};
  p.logit_bias = &b;
  p.n_logit_bias = 1;
  p.repetition_penalty = 1.5f;
  const int32_t prompt[1] = {2};
  s = make(&p, 4, prompt, 1);
  float l3[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  assert_int_equal(r1d_sampler_sample(s, l3, &lp, top, 2), 0);
  assert_float_equal(lp, 1.0 - lse, 1e-5);
  assert_int_equal(top[0].id, 3);
  assert_float_equal(top[0].logprob, 4.0 - lse, 1e-5);
  assert_int_equal(top[1].id, 2);
  assert_float_equal(top[1].logprob, 3.0 - lse, 1e-5);
  r1d_sampler_free(s);

  /* top ties order by id; a 150k vocab's log_softmax sums to 1 */
  enum { V = 151936 };
  float *big_l = malloc(sizeof(float) * V);
  assert_non_null(big_l);
  uint64_t x = 5;
  random_logits(big_l, V, 2.0f, &x);
  big_l[10] = big_l[20] = 30.0f;
  double want_lse = 0.0;
  for (int i = 0; i < V; i++)
    want_lse += exp((double)big_l[i] - 30.0);
  want_lse = 30.0 + log(want_lse);
  r1d_sampling_params g = greedy_params();
  s = make(&g, V, NULL, 0);
  assert_int_equal(r1d_sampler_sample(s, big_l, &lp, top, 3), 10);
  assert_int_equal(top[0].id, 10);
  assert_int_equal(top[1].id, 20);
  assert_float_equal(lp, 30.0 - want_lse, 1e-4);
  assert_float_equal(top[1].logprob, 30.0 - want_lse, 1e-4);
  assert_true(top[2].logprob < top[1].logprob);
  r1d_sampler_free(s);
  free(big_l);
}

/* ---- validation ---- */

static void expect_invalid(const r1d_sampling_params *p, const char *needle) {
  r1d_error err = {0};
  r1d_sampler *s = (r1d_sampler *)&err; /* must be reset to NULL */
  assert_int_equal(r1d_sampling_params_validate(p, 100, &err), R1D_EINVAL);
  if (!strstr(err.msg, needle))
    fprintf(stderr, "message '%s' lacks '%s'\n", err.msg, needle);
  assert_non_null(strstr(err.msg, needle));
  assert_int_equal(r1d_sampler_create(p, 100, NULL, 0, &s, NULL), R1D_EINVAL);
  assert_null(s);
}

static void test_validation(void **state) {
  (void)state;
  r1d_sampling_params p;
  r1d_sampling_params_default(&p);
  p.top_p = 1.5f;
  expect_invalid(&p, "top_p must be in (0, 1], got 1.5");
  p.top_p = 0.0f;
  expect_invalid(&p, "top_p");
  p.top_p = NAN;
  expect_invalid(&p, "top_p");

  r1d_sampling_params_default(&p);
  p.temperature = 2.5f;
  expect_invalid(&p, "temperature must be in [0, 2], got 2.5");
  p.temperature = -0.1f;
  expect_invalid(&p, "temperature");
  r1d_sampling_params_default(&p);
  p.top_k = -2;
  expect_invalid(&p, "top_k");
  r1d_sampling_params_default(&p);
  p.min_p = 1.1f;
  expect_invalid(&p, "min_p");
  r1d_sampling_params_default(&p);
  p.presence_penalty = 2.5f;
  expect_invalid(&p, "presence_penalty must be in [-2, 2], got 2.5");
  r1d_sampling_params_default(&p);
  p.frequency_penalty = -3.0f;
  expect_invalid(&p, "frequency_penalty");
  r1d_sampling_params_default(&p);
  p.repetition_penalty = 0.0f;
  expect_invalid(&p, "repetition_penalty must be in (0, 2], got 0");
  p.repetition_penalty = 2.1f;
  expect_invalid(&p, "repetition_penalty");

  r1d_sampling_params_default(&p);
  r1d_logit_bias b = {.id = 100, .bias = 1.0f};
  p.logit_bias = &b;
  p.n_logit_bias = 1;
  expect_invalid(&p, "logit_bias token id must be in [0, 100), got 100");
  b.id = -1;
  expect_invalid(&p, "logit_bias");
  b.id = 5;
  b.bias = 101.0f;
  expect_invalid(&p, "must be in [-100, 100], got 101");

  /* edges that are allowed */
  r1d_sampling_params_default(&p);
  p.temperature = 2.0f;
  p.top_p = 1.0f;
  p.top_k = 0;
  p.min_p = 1.0f;
  p.presence_penalty = -2.0f;
  p.frequency_penalty = 2.0f;
  p.repetition_penalty = 2.0f;
  b.bias = -100.0f;
  assert_int_equal(r1d_sampling_params_validate(&p, 100, NULL), 0);
  p.top_k = 1000; /* larger than the vocab: simply off */
  assert_int_equal(r1d_sampling_params_validate(&p, 100, NULL), 0);

  /* prompt ids are checked by create */
  r1d_sampling_params_default(&p);
  const int32_t bad[2] = {3, 100};
  r1d_sampler *s = NULL;
  r1d_error err = {0};
  assert_int_equal(r1d_sampler_create(&p, 100, bad, 2, &s, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "prompt token 1 is 100"));
  assert_null(s);
}

/* A broken model (NaN weights, overflow) hands the sampler NaN or -inf rows:
 * every path must still return an id inside the vocabulary, never read an
 * empty candidate set. */
static void test_non_finite_rows(void **state) {
  (void)state;
  enum { V = 40 };
  float nan_row[V], mixed[V], neg_inf[V];
  for (int i = 0; i < V; i++) {
    nan_row[i] = NAN;
    mixed[i] = i % 3 ? NAN : (float)i * 0.1f;
    neg_inf[i] = -INFINITY;
  }
  const float *rows[] = {nan_row, mixed, neg_inf};
  /* plain, top-k, top-p, min-p, all, with penalties (raw copy kept) */
  r1d_sampling_params ps[6];
  for (int k = 0; k < 6; k++) {
    r1d_sampling_params_default(&ps[k]);
    ps[k].seed = 5;
  }
  ps[1].top_k = 4;
  ps[2].top_p = 0.9f;
  ps[3].min_p = 0.1f;
  ps[4].top_k = 8, ps[4].top_p = 0.5f, ps[4].min_p = 0.2f;
  ps[5].top_p = 0.9f, ps[5].presence_penalty = 0.5f;
  for (int k = 0; k < 6; k++)
    for (int r = 0; r < 3; r++) {
      r1d_sampler *s = make(&ps[k], V, NULL, 0);
      for (int step = 0; step < 5; step++) {
        float buf[V], lp = 0.0f;
        memcpy(buf, rows[r], sizeof buf);
        int32_t id = r1d_sampler_sample(s, buf, &lp, NULL, 0);
        assert_true(id >= 0 && id < V);
        /* with finite entries present, a finite one is chosen */
        if (r == 1) assert_int_equal(id % 3, 0);
      }
      r1d_sampler_free(s);
    }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_greedy_argmax),
      cmocka_unit_test(test_greedy_ties_lowest_id),
      cmocka_unit_test(test_logit_bias),
      cmocka_unit_test(test_repetition_penalty),
      cmocka_unit_test(test_presence_frequency),
      cmocka_unit_test(test_top_k_1_is_greedy),
      cmocka_unit_test(test_top_p_tiny_is_greedy),
      cmocka_unit_test(test_min_p_one_is_greedy),
      cmocka_unit_test(test_distribution_temperature_1),
      cmocka_unit_test(test_temperature_sharpens),
      cmocka_unit_test(test_distribution_top_k),
      cmocka_unit_test(test_distribution_top_p),
      cmocka_unit_test(test_distribution_min_p),
      cmocka_unit_test(test_big_vocab_filters),
      cmocka_unit_test(test_distribution_dense),
      cmocka_unit_test(test_seed_reproducible),
      cmocka_unit_test(test_logprobs),
      cmocka_unit_test(test_validation),
      cmocka_unit_test(test_non_finite_rows),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
