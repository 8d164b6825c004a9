/* test_grpo.c - GRPO's maths (rl/grpo.h) and its forward/backward on the
 * host trainer (rl/grpo_train.h):
 *  - advantages and the per-token loss and gradient on hand-computed cases,
 *    every branch of the clipped surrogate and the k3 KL;
 *  - for the tiny Qwen2 and Llama reference models, the loss of all three
 *    reductions and EVERY parameter's gradient equal a PyTorch
 *    implementation of the same objective (tests/ref/make_grpo_ref.py),
 *    with the samples packed two ways (one pack, several packs);
 *  - logprobs taken by r1d_grpo_logprobs as lp_old give ratios of exactly 1;
 *  - job config parsing names the bad field.
 *
 * Tolerances: losses 1e-5 relative (measured ~1e-7), a gradient tensor to
 * 2e-5 of its largest |element| (as test_train_ref.c), per-tensor sums of
 * squares 1e-4 relative. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/file.h"
#include "engine/model/safetensors.h"
#include "engine/model/train.h"
#include "kernels/cpu/cpu_backend.h"
#include "rl/grpo.h"
#include "rl/grpo_train.h"
#include "tests/engine/grad_ref.h"

static void test_advantages(void **state) {
  (void)state;
  r1d_grpo_config c;
  r1d_grpo_config_default(&c);
  c.group_size = 4;
  double r[8] = {1, 0, 0, 1, 2, 2, 2, 2}, adv[8];
  int flat = -1;
  r1d_grpo_advantages(&c, r, 2, adv, &flat);
  /* mean 0.5, unbiased std sqrt(1/3) */
  double s = 0.5 / (sqrt(1.0 / 3.0) + 1e-4);
  assert_true(fabs(adv[0] - s) < 1e-12 && fabs(adv[1] + s) < 1e-12);
  assert_true(fabs(adv[3] - s) < 1e-12);
  for (int i = 4; i < 8; i++)
    assert_true(adv[i] == 0.0);
  assert_int_equal(flat, 1);

  c.scale_rewards = R1D_GRPO_SCALE_NONE;
  r1d_grpo_advantages(&c, r, 2, adv, &flat);
  assert_true(adv[0] == 0.5 && adv[1] == -0.5 && adv[4] == 0.0);

  /* batch: the std of all 8 rewards {1,0,0,1,2,2,2,2}: mean 1.25 */
  c.scale_rewards = R1D_GRPO_SCALE_BATCH;
  r1d_grpo_advantages(&c, r, 2, adv, &flat);
  double ss = 2 * 0.0625 + 2 * 1.5625 + 4 * 0.5625, bs = sqrt(ss / 7);
  assert_true(fabs(adv[0] - 0.5 / (bs + 1e-4)) < 1e-12);
}

/* Every branch, by hand: eps 0.2 / 0.28, one token each. */
static void test_sequence_branches(void **state) {
  (void)state;
  r1d_grpo_config c;
  r1d_grpo_config_default(&c);
  c.eps_low = 0.2, c.eps_high = 0.28;
  struct {
    double A, lp, old, loss, grad;
  } cases[] = {
      /* ratio 1.5 > 1.28, A > 0: clipped at 1.28, no gradient */
      {1.0, log(1.5), 0.0, -1.28, 0.0},
      /* ratio 1.5, A < 0: min(-1.5, -1.28) = -1.5, unclipped: -A ratio */
      {-1.0, log(1.5), 0.0, 1.5, 1.5},
      /* ratio 0.5 < 0.8, A < 0: min(-0.5, -0.8) = -0.8 clipped */
      {-1.0, log(0.5), 0.0, 0.8, 0.0},
      /* ratio 0.5, A > 0: min(0.5, 0.8) = 0.5 unclipped */
      {2.0, log(0.5), 0.0, -1.0, -1.0},
      /* ratio 1.1 inside: -A ratio */
      {0.5, log(1.1), 0.0, -0.55, -0.55},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    r1d_grpo_stats st = {0};
    float lp = (float)cases[i].lp, old = (float)cases[i].old, d = 99;
    r1d_grpo_sequence(&c, cases[i].A, 1.0, 1, &lp, &old, NULL, &d, &st);
    if (fabs(st.loss - cases[i].loss) > 1e-6 || fabs(d - cases[i].grad) > 1e-6)
      fail_msg("case %zu: loss %g (want %g), grad %g (want %g)", i, st.loss,
               cases[i].loss, (double)d, cases[i].grad);
  }
  /* counts: case 0 clips high, case 2 clips low */
  r1d_grpo_stats st = {0};
  float lp0 = (float)log(1.5), lp2 = (float)log(0.5), z = 0, d;
  r1d_grpo_sequence(&c, 1.0, 1.0, 1, &lp0, &z, NULL, &d, &st);
  r1d_grpo_sequence(&c, -1.0, 1.0, 1, &lp2, &z, NULL, &d, &st);
  assert_int_equal(st.clipped_high, 1);
  assert_int_equal(st.clipped_low, 1);
  assert_int_equal(st.tokens, 2);

  /* k3 KL with beta 0.1, A = 0, lp_old NULL: lp = -1, ref = -2:
   * kl = e^-1 + 1 - 1, d = beta (1 - e^-1); weight 0.5 scales both */
  c.beta = 0.1;
  r1d_grpo_stats k = {0};
  float lp = -1, ref = -2;
  r1d_grpo_sequence(&c, 0.0, 0.5, 1, &lp, NULL, &ref, &d, &k);
  assert_true(fabs(k.kl_sum - exp(-1.0)) < 1e-7);
  assert_true(fabs(k.loss - 0.5 * 0.1 * exp(-1.0)) < 1e-7);
  assert_true(fabs(d - 0.5 * 0.1 * (1 - exp(-1.0))) < 1e-7);
  assert_true(k.ratio_sum == 1.0);

  /* reduction weights */
  c.max_completion_len = 100;
  c.loss_type = R1D_GRPO_LOSS_GRPO;
  assert_true(r1d_grpo_token_weight(&c, 10, 4, 50) == 1.0 / 40);
  c.loss_type = R1D_GRPO_LOSS_DAPO;
  assert_true(r1d_grpo_token_weight(&c, 10, 4, 50) == 1.0 / 50);
  c.loss_type = R1D_GRPO_LOSS_DR_GRPO;
  assert_true(r1d_grpo_token_weight(&c, 10, 4, 50) == 1.0 / 400);
}

/* ---- against PyTorch ---- */

typedef struct ref_sample {
  int32_t prompt[64], completion[64];
  float lp_old[64], lp_ref[64];
  int n_prompt, n_completion;
} ref_sample;

typedef struct grpo_ref {
  ref_sample s[16];
  int n;
  double rewards[16], adv[16];
  r1d_grpo_config cfg;
  double losses[3];
  json_t *root;
} grpo_ref;

static char *fixture_dir(const char *name) {
  const char *root = getenv("R1D_SOURCE_ROOT");
  char buf[4096];
  snprintf(buf, sizeof buf, "%s/tests/fixtures/models/%s", root ? root : ".",
           name);
  return strdup(buf);
}

static int read_ints(json_t *a, int32_t *out, int cap) {
  int n = (int)json_array_size(a);
  assert_true(n > 0 && n <= cap);
  for (int i = 0; i < n; i++)
    out[i] = (int32_t)json_integer_value(json_array_get(a, (size_t)i));
  return n;
}

static void read_floats(json_t *a, float *out, int n) {
  assert_int_equal(json_array_size(a), (size_t)n);
  for (int i = 0; i < n; i++)
    out[i] = (float)json_number_value(json_array_get(a, (size_t)i));
}

static void load_ref(const char *dir, grpo_ref *r) {
  char *path = r1d_path_join(dir, "ref_grpo.json");
  json_error_t je;
  r->root = json_load_file(path, 0, &je);
  if (!r->root) fail_msg("%s: %s", path, je.text);
  free(path);
  json_t *samples = json_object_get(r->root, "samples");
  r->n = (int)json_array_size(samples);
  assert_true(r->n > 0 && r->n <= 16);
  for (int i = 0; i < r->n; i++) {
    json_t *s = json_array_get(samples, (size_t)i);
    ref_sample *o = &r->s[i];
    o->n_prompt = read_ints(json_object_get(s, "prompt"), o->prompt, 64);
    o->n_completion =
        read_ints(json_object_get(s, "completion"), o->completion, 64);
    read_floats(json_object_get(s, "lp_old"), o->lp_old, o->n_completion);
    read_floats(json_object_get(s, "lp_ref"), o->lp_ref, o->n_completion);
    r->rewards[i] = json_number_value(
        json_array_get(json_object_get(r->root, "rewards"), (size_t)i));
    r->adv[i] = json_number_value(
        json_array_get(json_object_get(r->root, "advantages"), (size_t)i));
  }
  r1d_grpo_config_default(&r->cfg);
  r->cfg.group_size =
      (int)json_integer_value(json_object_get(r->root, "group_size"));
  r->cfg.beta = json_number_value(json_object_get(r->root, "beta"));
  r->cfg.eps_low = json_number_value(json_object_get(r->root, "epsilon_low"));
  r->cfg.eps_high = json_number_value(json_object_get(r->root, "epsilon_high"));
  r->cfg.max_completion_len = (int)json_integer_value(
      json_object_get(r->root, "max_completion_length"));
  json_t *losses = json_object_get(r->root, "losses");
  for (int t = 0; t < 3; t++)
    r->losses[t] = json_number_value(
        json_object_get(losses, r1d_grpo_loss_name((r1d_grpo_loss_type)t)));
}

static void check_model(const char *name) {
  char *dir = fixture_dir(name);
  grpo_ref *ref = calloc(1, sizeof *ref);
  load_ref(dir, ref);
  r1d_backend be;
  r1d_cpu_backend_init(&be, 0);
  r1d_model *m = NULL;
  r1d_train_model *tm = NULL;
  r1d_train_plan *big = NULL, *small = NULL;
  r1d_error err = {0};
  /* one plan holds every sample, the other ~2 at a time */
  if (r1d_model_load(dir, &be, &m, &err) ||
      r1d_train_model_create(m, &tm, &err) ||
      r1d_train_plan_create(tm, 256, 0, &big, &err) ||
      r1d_train_plan_create(tm, 40, 0, &small, &err))
    fail_msg("%s: %s", name, err.msg);
  /* as r1d grpo runs them: a token's logprob the same bits in any pack */
  big->row_invariant = small->row_invariant = 1;

  /* the advantages */
  double adv[16];
  r1d_grpo_advantages(&ref->cfg, ref->rewards, ref->n / ref->cfg.group_size,
                      adv, NULL);
  for (int i = 0; i < ref->n; i++)
    if (fabs(adv[i] - ref->adv[i]) > 1e-9)
      fail_msg("%s: advantage %d: %.12g, torch %.12g", name, i, adv[i],
               ref->adv[i]);

  r1d_grpo_sample s[16];
  for (int i = 0; i < ref->n; i++)
    s[i] = (r1d_grpo_sample){ref->s[i].prompt,
                             ref->s[i].n_prompt,
                             ref->s[i].completion,
                             ref->s[i].n_completion,
                             adv[i],
                             ref->s[i].lp_old,
                             ref->s[i].lp_ref};

  json_t *grad_sq = json_object_get(ref->root, "grad_sq");
  for (int lt = 0; lt < 3; lt++) {
    for (int p = 0; p < 2; p++) {
      r1d_grpo_config c = ref->cfg;
      c.loss_type = (r1d_grpo_loss_type)lt;
      r1d_grpo_stats st = {0};
      r1d_train_zero_grad(tm);
      if (r1d_grpo_accumulate(&c, tm, p ? small : big, s, ref->n, &st, &err))
        fail_msg("%s: %s", name, err.msg);
      double want = ref->losses[lt];
      if (fabs(st.loss - want) > 1e-5 * fabs(want) + 1e-8)
        fail_msg("%s %s: loss %.9g, torch %.9g", name,
                 r1d_grpo_loss_name(c.loss_type), st.loss, want);
      json_t *sq = json_object_get(grad_sq, r1d_grpo_loss_name(c.loss_type));
      for (int t = 0; t < tm->n_tensors; t++) {
        const r1d_train_tensor *tt = &tm->tensors[t];
        double ours = 0, w = json_number_value(json_object_get(sq, tt->name));
        for (size_t i = 0; i < tt->n; i++)
          ours += (double)tt->grad[i] * tt->grad[i];
        if (fabs(ours - w) > 1e-4 * w + 1e-16)
          fail_msg("%s %s: |grad %s|^2 %.9g, torch %.9g", name,
                   r1d_grpo_loss_name(c.loss_type), tt->name, ours, w);
      }
      if (lt == R1D_GRPO_LOSS_GRPO)
        check_grads_against(name, tm, dir, "ref_grpo_grads.safetensors");
      assert_true(st.clipped_low + st.clipped_high > 0); /* branches hit */
      assert_true(st.kl_sum > 0);
    }
  }

  /* lp_old from the policy itself: every ratio exactly 1 */
  float *lp[16];
  for (int i = 0; i < ref->n; i++)
    lp[i] = malloc((size_t)s[i].n_completion * sizeof(float));
  if (r1d_grpo_logprobs(tm, small, s, ref->n, lp, &err))
    fail_msg("%s", err.msg);
  for (int i = 0; i < ref->n; i++)
    s[i].lp_old = lp[i];
  r1d_grpo_stats st = {0};
  r1d_train_zero_grad(tm);
  if (r1d_grpo_accumulate(&ref->cfg, tm, big, s, ref->n, &st, &err))
    fail_msg("%s", err.msg);
  assert_true(st.ratio_sum == (double)st.tokens);
  assert_int_equal(st.clipped_low + st.clipped_high, 0);
  for (int i = 0; i < ref->n; i++)
    free(lp[i]);

  /* a sample longer than the plan is refused by name */
  r1d_grpo_sample longer = s[0];
  int32_t many[64] = {0};
  longer.completion = many;
  longer.n_completion = 40;
  longer.lp_old = NULL;
  assert_int_equal(
      r1d_grpo_accumulate(&ref->cfg, tm, small, &longer, 1, &st, &err),
      R1D_ERANGE);
  assert_non_null(strstr(err.msg, "sample 0"));

  json_decref(ref->root);
  free(ref);
  r1d_train_plan_free(big);
  r1d_train_plan_free(small);
  r1d_train_model_free(tm);
  r1d_model_free(m);
  r1d_cpu_backend_destroy(&be);
  free(dir);
}

/* One small gradient-descent step on the GRPO loss raises the logprob of
 * the completions with a positive advantage and lowers the others'. */
static void test_step_direction(void **state) {
  (void)state;
  char *dir = fixture_dir("tiny-qwen2");
  r1d_backend be;
  r1d_cpu_backend_init(&be, 0);
  r1d_model *m = NULL;
  r1d_train_model *tm = NULL;
  r1d_train_plan *plan = NULL;
  r1d_error err = {0};
  if (r1d_model_load(dir, &be, &m, &err) ||
      r1d_train_model_create(m, &tm, &err) ||
      r1d_train_plan_create(tm, 64, 0, &plan, &err))
    fail_msg("%s", err.msg);
  plan->row_invariant = 1;
  int32_t prompt[5] = {11, 40, 41, 42, 43};
  int32_t comp[4][6] = {{50, 51, 52, 53, 54, 12},
                        {60, 61, 62, 12, 0, 0},
                        {70, 71, 72, 73, 12, 0},
                        {80, 12, 0, 0, 0, 0}};
  int lens[4] = {6, 4, 5, 2};
  double rewards[4] = {1, 0, 0, 1}, adv[4];
  r1d_grpo_config c;
  r1d_grpo_config_default(&c);
  c.group_size = 4;
  r1d_grpo_advantages(&c, rewards, 1, adv, NULL);
  r1d_grpo_sample s[4];
  float lp_before[4][6], lp_after[4][6];
  float *lb[4], *la[4];
  for (int i = 0; i < 4; i++) {
    s[i] = (r1d_grpo_sample){prompt, 5, comp[i], lens[i], adv[i], NULL, NULL};
    lb[i] = lp_before[i];
    la[i] = lp_after[i];
  }
  r1d_grpo_stats st = {0};
  r1d_train_zero_grad(tm);
  if (r1d_grpo_logprobs(tm, plan, s, 4, lb, &err) ||
      r1d_grpo_accumulate(&c, tm, plan, s, 4, &st, &err))
    fail_msg("%s", err.msg);
  for (size_t i = 0; i < tm->n_floats; i++)
    tm->params[i] -= 1e-3f * tm->grads[i];
  if (r1d_grpo_logprobs(tm, plan, s, 4, la, &err)) fail_msg("%s", err.msg);
  for (int i = 0; i < 4; i++) {
    double before = 0, after = 0;
    for (int t = 0; t < lens[i]; t++)
      before += lp_before[i][t], after += lp_after[i][t];
    if (adv[i] > 0 ? !(after > before) : !(after < before))
      fail_msg("sample %d (advantage %+.3f): sequence logprob %.6f -> %.6f", i,
               adv[i], before, after);
  }
  r1d_train_plan_free(plan);
  r1d_train_model_free(tm);
  r1d_model_free(m);
  r1d_cpu_backend_destroy(&be);
  free(dir);
}

static void test_torch_qwen2(void **state) {
  (void)state;
  check_model("tiny-qwen2");
}

static void test_torch_llama(void **state) {
  (void)state;
  check_model("tiny-llama");
}

static void test_config_json(void **state) {
  (void)state;
  r1d_grpo_config c;
  r1d_grpo_config_default(&c);
  r1d_error err = {0};
  json_t *ok =
      json_pack("{s:i, s:s, s:s, s:f, s:f, s:f, s:i}", "num_generations", 4,
                "scale_rewards", "none", "loss_type", "dr_grpo", "epsilon", 0.1,
                "epsilon_high", 0.3, "beta", 0.04, "max_completion_length", 64);
  assert_int_equal(r1d_grpo_config_from_json(ok, &c, &err), 0);
  assert_int_equal(c.group_size, 4);
  assert_int_equal(c.scale_rewards, R1D_GRPO_SCALE_NONE);
  assert_int_equal(c.loss_type, R1D_GRPO_LOSS_DR_GRPO);
  assert_true(c.eps_low == 0.1 && c.eps_high == 0.3 && c.beta == 0.04);
  assert_int_equal(c.max_completion_len, 64);
  json_decref(ok);
  const char *bad[][2] = {
      {"{\"num_generations\": 1}", "num_generations"},
      {"{\"num_generations\": \"8\"}", "num_generations"},
      {"{\"loss_type\": \"sum\"}", "loss_type"},
      {"{\"scale_rewards\": 3}", "scale_rewards"},
      {"{\"beta\": -1}", "beta"},
      {"{\"epsilon_low\": 1.5}", "epsilon_low"},
      {"{\"max_completion_length\": 0}", "max_completion_length"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *j = json_loads(bad[i][0], 0, NULL);
    r1d_grpo_config_default(&c);
    assert_int_equal(r1d_grpo_config_from_json(j, &c, &err), R1D_EINVAL);
    if (strncmp(err.msg, bad[i][1], strlen(bad[i][1])))
      fail_msg("%s: message '%s' does not start with the field", bad[i][0],
               err.msg);
    json_decref(j);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_advantages),
      cmocka_unit_test(test_sequence_branches),
      cmocka_unit_test(test_step_direction),
      cmocka_unit_test(test_torch_qwen2),
      cmocka_unit_test(test_torch_llama),
      cmocka_unit_test(test_config_json),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
