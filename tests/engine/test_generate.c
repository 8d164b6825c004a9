/* test_generate.c - the single-sequence generation loop on a seeded random
 * model from `r1d model init` (byte-level tokenizer, so random sampling emits
 * arbitrary bytes, invalid UTF-8 included):
 *   - streamed text pieces concatenate to the tokenizer's decode of the same
 *     ids (streaming never splits or repairs text differently);
 *   - max_tokens, stop ids, stop strings and aborts end generation with the
 *     right finish reason and no stop text shown;
 *   - the same seed gives the same tokens; bad parameters are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "engine/model/init.h"
#include "engine/model/model.h"
#include "engine/serve/generate.h"
#include "engine/text/tokenizer.h"
#include "kernels/cpu/cpu_backend.h"

typedef struct fixture {
  char dir[64];
  r1d_backend be;
  r1d_model *model;
  r1d_tokenizer *tok;
  int32_t prompt[6];
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/r1d-gen-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  r1d_config c;
  r1d_error err = {0};
  if (r1d_model_preset(R1D_ARCH_LLAMA, "tiny", &c, &err) ||
      r1d_model_init_dir(f->dir, &c, 3, &err))
    return -1;
  r1d_cpu_backend_init(&f->be, 1);
  if (r1d_model_load(f->dir, &f->be, &f->model, &err) ||
      r1d_tokenizer_load_dir(f->dir, &f->tok, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return -1;
  }
  const int32_t p[6] = {256, 72, 105, 33, 259, 260}; /* bos "Hi!" user asst */
  memcpy(f->prompt, p, sizeof p);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  r1d_model_free(f->model);
  r1d_tokenizer_free(f->tok);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  int rc = system(cmd);
  free(f);
  return rc;
}

/* What the callback saw. */
typedef struct seen {
  r1d_buf text;
  int32_t ids[256];
  int n, stop_flag, abort_after;
} seen;

static int collect(void *user, const r1d_gen_event *ev) {
  seen *s = user;
  assert_int_equal(r1d_buf_append(&s->text, ev->text, ev->text_len), 0);
  s->ids[s->n++] = ev->id;
  s->stop_flag = ev->is_stop;
  return s->abort_after && s->n >= s->abort_after;
}

static r1d_gen_params params(float temperature, int max_tokens, uint64_t seed) {
  r1d_gen_params p = {0};
  r1d_sampling_params_default(&p.sampling);
  p.sampling.temperature = temperature;
  p.sampling.seed = seed;
  p.max_tokens = max_tokens;
  p.ignore_eos = 1;
  return p;
}

static void run(fixture *f, const r1d_gen_params *p, seen *s,
                r1d_gen_result *res) {
  r1d_error err = {0};
  int rc =
      r1d_generate(f->model, f->tok, f->prompt, 6, p, collect, s, res, &err);
  if (rc) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(rc, 0);
}

static void test_stream_equals_decode(void **state) {
  fixture *f = *state;
  /* several seeds at a high temperature: random bytes, broken UTF-8, and
   * special tokens (dropped from the stream unless keep_special, as decode
   * drops them with skip_special) */
  int saw_special = 0;
  for (uint64_t seed = 1; seed <= 16; seed++) {
    r1d_gen_params p = params(1.5f, 60, seed);
    p.keep_special = (int)(seed % 2);
    seen s = {0};
    r1d_gen_result res;
    run(f, &p, &s, &res);
    assert_int_equal(res.finish, R1D_FINISH_LENGTH);
    assert_int_equal(res.completion_tokens, 60);
    assert_int_equal(res.prompt_tokens, 6);
    assert_int_equal(s.n, 60);
    char *whole = NULL;
    size_t len = 0;
    /* ids past the tokenizer's vocabulary (the model's vocab is padded)
     * have no bytes; drop them as the stream does */
    int32_t kept[256];
    int nk = 0;
    for (int i = 0; i < s.n; i++)
      if (s.ids[i] < r1d_tokenizer_vocab_size(f->tok)) kept[nk++] = s.ids[i];
    assert_int_equal(r1d_tokenizer_decode(f->tok, kept, (size_t)nk,
                                          !p.keep_special, &whole, &len, NULL),
                     0);
    for (int i = 0; i < nk; i++)
      saw_special |= r1d_tokenizer_is_special(f->tok, kept[i]);
    assert_int_equal(s.text.n, len);
    assert_memory_equal(s.text.p ? s.text.p : "", whole, len);
    free(whole);
    r1d_buf_free(&s.text);
  }
  assert_true(saw_special); /* the special-token path was exercised */
}

static void test_seed_reproducible_greedy_deterministic(void **state) {
  fixture *f = *state;
  seen a = {0}, b = {0}, c = {0};
  r1d_gen_result res;
  r1d_gen_params p = params(1.0f, 20, 42);
  run(f, &p, &a, &res);
  run(f, &p, &b, &res);
  p.sampling.seed = 43;
  run(f, &p, &c, &res);
  assert_memory_equal(a.ids, b.ids, sizeof(int32_t) * 20);
  assert_true(memcmp(a.ids, c.ids, sizeof(int32_t) * 20) != 0);
  r1d_buf_free(&a.text);
  r1d_buf_free(&b.text);
  r1d_buf_free(&c.text);
}

static void test_stop_id_and_abort(void **state) {
  fixture *f = *state;
  seen g = {0};
  r1d_gen_result res;
  r1d_gen_params p = params(0.0f, 10, 0);
  run(f, &p, &g, &res);
  /* stop on the 4th greedy token: 4 events, the last flagged, its text not
   * shown */
  int32_t stop_id = g.ids[3];
  int first = 0;
  while (g.ids[first] != stop_id)
    first++;
  p.stop_ids = &stop_id;
  p.n_stop_ids = 1;
  seen s = {0};
  run(f, &p, &s, &res);
  assert_int_equal(res.finish, R1D_FINISH_STOP);
  assert_int_equal(s.n, first + 1);
  assert_true(s.stop_flag);
  /* abort from the callback after 2 tokens */
  p.n_stop_ids = 0;
  seen a = {0};
  a.abort_after = 2;
  run(f, &p, &a, &res);
  assert_int_equal(res.finish, R1D_FINISH_ABORT);
  assert_int_equal(a.n, 2);
  r1d_buf_free(&g.text);
  r1d_buf_free(&s.text);
  r1d_buf_free(&a.text);
}

static void test_stop_string(void **state) {
  fixture *f = *state;
  /* greedy text with printable bytes only: take a 2-byte stop string from
   * the middle of a sampled run's text and check the cut */
  for (uint64_t seed = 1; seed < 50; seed++) {
    r1d_gen_params p = params(1.0f, 40, seed);
    seen s = {0};
    r1d_gen_result res;
    run(f, &p, &s, &res);
    size_t at = 0;
    for (size_t i = 5; i + 1 < s.text.n; i++)
      if (s.text.p[i] >= 'a' && s.text.p[i] <= 'z' && s.text.p[i + 1] >= 'a' &&
          s.text.p[i + 1] <= 'z') {
        at = i;
        break;
      }
    if (!at) {
      r1d_buf_free(&s.text);
      continue;
    }
    char stop[3] = {s.text.p[at], s.text.p[at + 1], 0};
    char *first = memmem(s.text.p, s.text.n, stop, 2);
    size_t cut = (size_t)(first - s.text.p);
    const char *stops[] = {stop};
    p.stop = stops;
    p.n_stop = 1;
    seen t = {0};
    run(f, &p, &t, &res);
    assert_int_equal(res.finish, R1D_FINISH_STOP);
    assert_true(t.stop_flag);
    assert_int_equal(t.text.n, cut);
    assert_memory_equal(t.text.p ? t.text.p : "", s.text.p, cut);
    r1d_buf_free(&s.text);
    r1d_buf_free(&t.text);
    return;
  }
  fail_msg("no sampled text had two lowercase letters in a row");
}

static void test_bad_parameters(void **state) {
  fixture *f = *state;
  r1d_gen_result res;
  r1d_error err = {0};
  r1d_gen_params p = params(1.0f, 0, 0);
  assert_int_equal(
      r1d_generate(f->model, f->tok, f->prompt, 6, &p, NULL, NULL, &res, &err),
      R1D_EINVAL);
  assert_non_null(strstr(err.msg, "max_tokens"));
  p = params(1.0f, 5, 0);
  assert_int_equal(
      r1d_generate(f->model, f->tok, f->prompt, 0, &p, NULL, NULL, &res, &err),
      R1D_EINVAL);
  p.sampling.top_p = 0.0f;
  assert_int_equal(
      r1d_generate(f->model, f->tok, f->prompt, 6, &p, NULL, NULL, &res, &err),
      R1D_EINVAL);
  assert_non_null(strstr(err.msg, "top_p"));
  p = params(1.0f, 5, 0);
  p.n_top_logprobs = R1D_GEN_MAX_TOP + 1;
  assert_int_equal(
      r1d_generate(f->model, f->tok, f->prompt, 6, &p, NULL, NULL, &res, &err),
      R1D_EINVAL);
  /* a prompt as long as the context cannot be continued */
  int ctx = f->model->cfg.max_position_embeddings;
  int32_t *longp = calloc((size_t)ctx, sizeof(int32_t));
  p = params(1.0f, 5, 0);
  assert_int_equal(r1d_generate(f->model, f->tok, longp, (size_t)ctx, &p, NULL,
                                NULL, &res, &err),
                   R1D_ERANGE);
  assert_non_null(strstr(err.msg, "context"));
  free(longp);
}

static void test_length_capped_by_context(void **state) {
  fixture *f = *state;
  int ctx = f->model->cfg.max_position_embeddings;
  int n = ctx - 3;
  int32_t *longp = calloc((size_t)n, sizeof(int32_t));
  for (int i = 0; i < n; i++)
    longp[i] = 97 + i % 26;
  r1d_gen_params p = params(0.0f, 100, 0);
  seen s = {0};
  r1d_gen_result res;
  r1d_error err = {0};
  assert_int_equal(r1d_generate(f->model, f->tok, longp, (size_t)n, &p, collect,
                                &s, &res, &err),
                   0);
  assert_int_equal(res.finish, R1D_FINISH_LENGTH);
  assert_int_equal(res.completion_tokens, 3);
  free(longp);
  r1d_buf_free(&s.text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stream_equals_decode),
      cmocka_unit_test(test_seed_reproducible_greedy_deterministic),
      cmocka_unit_test(test_stop_id_and_abort),
      cmocka_unit_test(test_stop_string),
      cmocka_unit_test(test_bad_parameters),
      cmocka_unit_test(test_length_capped_by_context),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
