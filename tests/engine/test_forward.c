/* test_forward.c - the model forward pass against transformers.
 *
 * tests/fixtures/models/tiny-{qwen2,llama} are tiny random models made by
 * tests/ref/make_model_fixtures.py, with logits transformers computed in
 * float32 (eager attention) for prompts of 1, 7, 50 and 333 tokens. Between
 * them they cover QKV bias, untied and tied heads, GQA 2 and 3, head_dim 16
 * and 32, rope_theta 1e6 and 5e5, and llama3 rope scaling (original context
 * 64, so the 333-token prompt depends on it).
 *
 * Each prompt runs (a) as one prefill with all logits, (b) as one prefill
 * returning only the last row, (c) as chunked prefill (17 tokens a chunk),
 * and (d) as a prefill of its first part followed by one-token decode steps.
 * Every logit must be within 1e-4 of transformers'. Also: the rope
 * frequencies, and the input errors (id out of range, cache overflow, n=0)
 * leaving the cache untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/file.h"
#include "engine/model/model.h"
#include "kernels/cpu/cpu_backend.h"

#define LOGIT_TOL 1e-4

typedef struct prompt {
  int n;          /* tokens */
  int32_t *ids;   /* [n] */
  int n_pos;      /* stored rows */
  int *positions; /* [n_pos] ascending */
  size_t offset;  /* float index of the first row in ref */
  int split;      /* decode split, 0 = none */
} prompt;

typedef struct fixture {
  char *dir;
  r1d_model *m;
  int vocab;
  float *ref; /* all reference rows */
  size_t ref_floats;
  double *inv_freq;
  int n_inv;
  prompt p[8];
  int n_prompts;
} fixture;

static r1d_backend be;

static char *fixture_dir(const char *name) {
  const char *root = getenv("R1D_SOURCE_ROOT");
  char buf[4096];
  snprintf(buf, sizeof buf, "%s/tests/fixtures/models/%s", root ? root : ".",
           name);
  return strdup(buf);
}

static void load_index(fixture *f) {
  char *path = r1d_path_join(f->dir, "ref_logits.json");
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  if (!root) print_error("%s: %s\n", path, jerr.text);
  assert_non_null(root);
  f->vocab = (int)json_integer_value(json_object_get(root, "vocab"));
  json_t *inv = json_object_get(root, "inv_freq");
  f->n_inv = (int)json_array_size(inv);
  f->inv_freq = calloc((size_t)f->n_inv, sizeof(double));
  for (int j = 0; j < f->n_inv; j++)
    f->inv_freq[j] = json_real_value(json_array_get(inv, (size_t)j));
  json_t *ps = json_object_get(root, "prompts");
  f->n_prompts = (int)json_array_size(ps);
  assert_true(f->n_prompts > 0 && f->n_prompts <= 8);
  for (int k = 0; k < f->n_prompts; k++) {
    json_t *jp = json_array_get(ps, (size_t)k);
    json_t *ids = json_object_get(jp, "ids");
    json_t *pos = json_object_get(jp, "positions");
    prompt *p = &f->p[k];
    p->n = (int)json_array_size(ids);
    p->n_pos = (int)json_array_size(pos);
    p->ids = calloc((size_t)p->n, sizeof(int32_t));
    p->positions = calloc((size_t)p->n_pos, sizeof(int));
    assert_non_null(p->ids);
    assert_non_null(p->positions);
    for (int i = 0; i < p->n; i++)
      p->ids[i] = (int32_t)json_integer_value(json_array_get(ids, (size_t)i));
    for (int i = 0; i < p->n_pos; i++)
      p->positions[i] = (int)json_integer_value(json_array_get(pos, (size_t)i));
    p->offset = (size_t)json_integer_value(json_object_get(jp, "offset"));
    p->split = (int)json_integer_value(json_object_get(jp, "decode_split"));
  }
  json_decref(root);
  free(path);

  path = r1d_path_join(f->dir, "ref_logits.bin");
  char *data;
  size_t len;
  r1d_error err = {0};
  int rc = r1d_read_file(path, &data, &len, &err);
  if (rc) print_error("%s\n", err.msg);
  assert_int_equal(rc, 0);
  assert_int_equal(len % sizeof(float), 0);
  f->ref_floats = len / sizeof(float);
  f->ref = malloc(len);
  assert_non_null(f->ref);
  memcpy(f->ref, data, len); /* little-endian float32, as x86/ARM hold it */
  free(data);
  free(path);
}

static int fixture_setup(void **state, const char *name) {
  fixture *f = calloc(1, sizeof *f);
  if (!f) return -1;
  f->dir = fixture_dir(name);
  load_index(f);
  r1d_error err = {0};
  int rc = r1d_model_load(f->dir, &be, &f->m, &err);
  if (rc) print_error("r1d_model_load: %s\n", err.msg);
  assert_int_equal(rc, 0);
  assert_int_equal(f->m->cfg.vocab_size, f->vocab);
  *state = f;
  return 0;
}

static int setup_qwen2(void **state) {
  return fixture_setup(state, "tiny-qwen2");
}
static int setup_llama(void **state) {
  return fixture_setup(state, "tiny-llama");
}

static int fixture_teardown(void **state) {
  fixture *f = *state;
  r1d_model_free(f->m);
  for (int k = 0; k < f->n_prompts; k++) {
    free(f->p[k].ids);
    free(f->p[k].positions);
  }
  free(f->ref);
  free(f->inv_freq);
  free(f->dir);
  free(f);
  return 0;
}

/* The reference row for position pos of prompt p, or NULL if not stored. */
static const float *ref_row(const fixture *f, const prompt *p, int pos) {
  for (int r = 0; r < p->n_pos; r++)
    if (p->positions[r] == pos) {
      size_t off = p->offset + (size_t)r * f->vocab;
      assert_true(off + (size_t)f->vocab <= f->ref_floats);
      return f->ref + off;
    }
  return NULL;
}

/* max |got - ref| over a row; fails above LOGIT_TOL (or on NaN). */
static double compare_row(const fixture *f, const char *what, int pos,
                          const float *got, const float *want) {
  double maxd = 0;
  for (int j = 0; j < f->vocab; j++) {
    double d = fabs((double)got[j] - want[j]);
    if (!(d <= LOGIT_TOL)) {
      print_error("%s: %s position %d logit %d: got %.8f want %.8f\n", f->dir,
                  what, pos, j, (double)got[j], (double)want[j]);
      fail();
    }
    if (d > maxd) maxd = d;
  }
  return maxd;
}

/* Runs ids[from..to) as one forward call with all logits and compares every
 * stored row; returns the largest difference. */
static double run_chunk(fixture *f, r1d_kv_cache *kv, const prompt *p, int from,
                        int to, const char *what) {
  int n = to - from;
  float *logits = malloc((size_t)n * f->vocab * sizeof(float));
  assert_non_null(logits);
  r1d_error err = {0};
  assert_int_equal(kv->len, from);
  int rc = r1d_model_forward(f->m, kv, p->ids + from, n, 1, logits, &err);
  if (rc) print_error("forward: %s\n", err.msg);
  assert_int_equal(rc, 0);
  assert_int_equal(kv->len, to);
  double maxd = 0;
  for (int i = from; i < to; i++) {
    const float *want = ref_row(f, p, i);
    if (!want) continue;
    double d =
        compare_row(f, what, i, logits + (size_t)(i - from) * f->vocab, want);
    if (d > maxd) maxd = d;
  }
  free(logits);
  return maxd;
}

static void test_inv_freq(void **state) {
  fixture *f = *state;
  assert_int_equal(f->n_inv, f->m->cfg.head_dim / 2);
  double maxrel = 0;
  for (int j = 0; j < f->n_inv; j++) {
    double rel = fabs(f->m->inv_freq[j] - f->inv_freq[j]) / f->inv_freq[j];
    if (rel > maxrel) maxrel = rel;
  }
  printf("%s: inv_freq max relative diff %.3g\n", f->dir, maxrel);
  assert_true(maxrel <= 3e-7); /* a couple of float32 ulps */
}

static void test_prefill(void **state) {
  fixture *f = *state;
  double all = 0, last = 0, chunked = 0;
  for (int k = 0; k < f->n_prompts; k++) {
    const prompt *p = &f->p[k];
    r1d_kv_cache *kv;
    assert_int_equal(r1d_kv_cache_create(f->m, p->n, &kv), 0);
    double d = run_chunk(f, kv, p, 0, p->n, "prefill");
    if (d > all) all = d;

    /* the last row alone, as generation asks for it */
    kv->len = 0;
    float *row = malloc((size_t)f->vocab * sizeof(float));
    assert_non_null(row);
    r1d_error err = {0};
    assert_int_equal(r1d_model_forward(f->m, kv, p->ids, p->n, 0, row, &err),
                     0);
    const float *want = ref_row(f, p, p->n - 1);
    assert_non_null(want);
    d = compare_row(f, "prefill last row", p->n - 1, row, want);
    if (d > last) last = d;
    free(row);

    /* chunked prefill: later chunks attend to the cache they follow */
    kv->len = 0;
    for (int from = 0; from < p->n; from += 17) {
      int to = from + 17 < p->n ? from + 17 : p->n;
      d = run_chunk(f, kv, p, from, to, "chunked prefill");
      if (d > chunked) chunked = d;
    }
    r1d_kv_cache_free(kv);
  }
  printf("%s: max |logit diff| prefill %.3g, last-row %.3g, chunked %.3g\n",
         f->dir, all, last, chunked);
}

static void test_decode(void **state) {
  fixture *f = *state;
  double pre = 0, dec = 0;
  int steps = 0;
  float *row = malloc((size_t)f->vocab * sizeof(float));
  assert_non_null(row);
  for (int k = 0; k < f->n_prompts; k++) {
    const prompt *p = &f->p[k];
    if (p->split <= 0) continue;
    r1d_kv_cache *kv;
    assert_int_equal(r1d_kv_cache_create(f->m, p->n, &kv), 0);
    double d = run_chunk(f, kv, p, 0, p->split, "decode prefill");
    if (d > pre) pre = d;
    for (int t = p->split; t < p->n; t++) {
      r1d_error err = {0};
      int rc = r1d_model_forward(f->m, kv, p->ids + t, 1, 0, row, &err);
      if (rc) print_error("decode: %s\n", err.msg);
      assert_int_equal(rc, 0);
      assert_int_equal(kv->len, t + 1);
      const float *want = ref_row(f, p, t);
      assert_non_null(want); /* the script stores every decode position */
      d = compare_row(f, "decode", t, row, want);
      if (d > dec) dec = d;
      steps++;
    }
    r1d_kv_cache_free(kv);
  }
  free(row);
  assert_true(steps > 30);
  printf("%s: max |logit diff| split prefill %.3g, %d decode steps %.3g\n",
         f->dir, pre, steps, dec);
}

static void test_errors(void **state) {
  fixture *f = *state;
  r1d_kv_cache *kv;
  r1d_error err = {0};
  float *logits = malloc((size_t)4 * f->vocab * sizeof(float));
  assert_non_null(logits);
  assert_int_equal(r1d_kv_cache_create(f->m, 4, &kv), 0);

  int32_t bad[3] = {1, f->vocab, 2};
  assert_int_equal(r1d_model_forward(f->m, kv, bad, 3, 1, logits, &err),
                   R1D_EINVAL);
  char want[32];
  snprintf(want, sizeof want, "%d", f->vocab);
  assert_non_null(strstr(err.msg, want)); /* names the bad id */
  assert_int_equal(kv->len, 0);
  bad[1] = -1;
  assert_int_equal(r1d_model_forward(f->m, kv, bad, 3, 1, logits, &err),
                   R1D_EINVAL);
  assert_non_null(strstr(err.msg, "-1"));
  assert_int_equal(r1d_model_forward(f->m, kv, bad, 0, 1, logits, &err),
                   R1D_EINVAL);

  const int32_t ok[5] = {1, 2, 3, 4, 5};
  assert_int_equal(r1d_model_forward(f->m, kv, ok, 5, 1, logits, &err),
                   R1D_ERANGE);
  assert_int_equal(kv->len, 0);
  assert_int_equal(r1d_model_forward(f->m, kv, ok, 3, 0, logits, &err), 0);
  assert_int_equal(kv->len, 3);
  assert_int_equal(r1d_model_forward(f->m, kv, ok, 2, 0, logits, &err),
                   R1D_ERANGE);
  assert_int_equal(kv->len, 3);
  assert_int_equal(r1d_model_forward(f->m, kv, ok, 1, 0, logits, &err), 0);
  assert_int_equal(kv->len, 4);
  assert_int_equal(r1d_model_forward(f->m, kv, ok, 1, 0, logits, &err),
                   R1D_ERANGE);
  r1d_kv_cache_free(kv);

  r1d_kv_cache *none = (r1d_kv_cache *)&err;
  assert_int_equal(r1d_kv_cache_create(f->m, 0, &none), R1D_EINVAL);
  assert_null(none);
  free(logits);
}

static void test_load_missing(void **state) {
  (void)state;
  r1d_model *m = (r1d_model *)&be;
  r1d_error err = {0};
  int rc = r1d_model_load("/nonexistent/r1d-model", &be, &m, &err);
  assert_true(rc < 0);
  assert_null(m);
  assert_non_null(strstr(err.msg, "/nonexistent/r1d-model"));
}

int main(void) {
  r1d_cpu_backend_init(&be, 0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_load_missing),
      cmocka_unit_test_setup_teardown(test_inv_freq, setup_qwen2,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_prefill, setup_qwen2,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_decode, setup_qwen2,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_errors, setup_qwen2,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_inv_freq, setup_llama,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_prefill, setup_llama,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_decode, setup_llama,
                                      fixture_teardown),
      cmocka_unit_test_setup_teardown(test_errors, setup_llama,
                                      fixture_teardown),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  r1d_cpu_backend_destroy(&be);
  return rc;
}
