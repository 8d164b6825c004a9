/* test_eval.c - the evaluation maths of rl/eval.h and the rejection filter
 * of rl/rejection.h on hand-made sample outcomes (vote keys and their
 * normalisation, the majority vote and its ties, strict vs format-agnostic
 * accuracy, Wilson and normal intervals on known numbers, k = 1), the
 * R1-Zero to R1-distill conversion of kept samples, and one run through a
 * real engine on a `model init` tiny model that must repeat exactly with the
 * same seed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/model/init.h"
#include "engine/model/model.h"
#include "kernels/cpu/cpu_backend.h"
#include "rl/eval.h"
#include "rl/rejection.h"

#define NEAR(a, b, eps)                                                        \
  do {                                                                         \
    double a_ = (a), b_ = (b);                                                 \
    if (!(fabs(a_ - b_) <= (eps)))                                             \
      fail_msg("%s = %.9g, expected %.9g", #a, a_, b_);                        \
  } while (0)

static void expect_key(const char *answer, const char *type, const char *want) {
  char *k = r1d_eval_answer_key(answer, strlen(answer), type);
  assert_non_null(k);
  if (strcmp(k, want))
    fail_msg("key of '%s' is '%s', not '%s'", answer, k, want);
  free(k);
}

static void test_answer_keys(void **state) {
  (void)state;
  /* the same number written many ways votes together */
  const char *same[] = {"632",     "632.0",   "\\boxed{632}",
                        "$632$",   "632.",    "The answer is 632.",
                        "**632**", "x = 632", "\\boxed{632.00}",
                        "so 632",  " 632 \n", "\\fbox{632}"};
  for (size_t i = 0; i < sizeof same / sizeof *same; i++)
    expect_key(same[i], "math", "632");
  expect_key("1,234", "math", "1234");
  expect_key("12,345,678", "math", "12345678");
  expect_key("\\frac{1}{2}", "math", "1/2");
  expect_key("\\dfrac{2}{4}", "math", "1/2");
  expect_key("0.5", "math", "1/2");
  expect_key("2/4", "math", "1/2");
  expect_key("-3", "math", "-3");
  expect_key("50\\%", "math", "50\\%"); /* no \% rule: the merge handles it */
  expect_key("50%", "math", "50");
  expect_key("the last \\boxed{7} wins over \\boxed{8", "math", "7");
  expect_key("", "math", "");
  expect_key("   ", "math", "");
  expect_key("x^2+1", "math", "x^2+1"); /* no number: the compact text */
  expect_key("  New   York. ", "exact", "New York");
  expect_key("(1+2) * 3 = 9", "countdown", "(1+2)*3");
  expect_key("try\n(1 + 2) * 3", "countdown", "(1+2)*3");
  expect_key("632", NULL, "632"); /* no checker type: as math */
}

static r1d_eval_outcome oc(int correct, int format_ok, const char *key) {
  return (r1d_eval_outcome){.correct = correct,
                            .format_ok = format_ok,
                            .language = 1.0,
                            .n_tokens = 10,
                            .key = key};
}

static void test_majority(void **state) {
  (void)state;
  int votes;
  /* a tie goes to the answer seen first */
  r1d_eval_outcome a[] = {oc(0, 1, "5"), oc(1, 1, "7"), oc(1, 1, "7"),
                          oc(0, 1, "5")};
  assert_int_equal(r1d_eval_majority(a, 4, &votes), 0);
  assert_int_equal(votes, 2);
  /* a strict majority wins wherever it starts */
  r1d_eval_outcome b[] = {oc(0, 1, "5"), oc(1, 1, "7"), oc(1, 1, "7"),
                          oc(1, 1, "7")};
  assert_int_equal(r1d_eval_majority(b, 4, &votes), 1);
  assert_int_equal(votes, 3);
  /* no answer is an abstention, not a vote for "" */
  r1d_eval_outcome c[] = {oc(0, 0, ""), oc(0, 0, NULL), oc(0, 0, ""),
                          oc(1, 1, "3")};
  assert_int_equal(r1d_eval_majority(c, 4, &votes), 3);
  assert_int_equal(votes, 1);
  r1d_eval_outcome d[] = {oc(0, 0, ""), oc(0, 0, NULL)};
  assert_int_equal(r1d_eval_majority(d, 2, &votes), -1);
  assert_int_equal(votes, 0);
}

static void test_wilson(void **state) {
  (void)state;
  double lo, hi;
  /* 5 of 10: the textbook interval [0.2366, 0.7634] */
  NEAR(r1d_eval_wilson(5, 10, &lo, &hi), 0.263414, 1e-5);
  NEAR(lo, 0.236593, 1e-5);
  NEAR(hi, 0.763407, 1e-5);
  /* 0 of 10: not a zero-width interval, upper bound 0.2775 */
  NEAR(r1d_eval_wilson(0, 10, &lo, &hi), 0.138771, 1e-5);
  NEAR(lo, 0.0, 1e-12);
  NEAR(hi, 0.277542, 1e-5);
  NEAR(r1d_eval_wilson(10, 10, &lo, &hi), 0.138771, 1e-5);
  NEAR(hi, 1.0, 1e-12);
  NEAR(r1d_eval_wilson(0, 0, &lo, &hi), 0.0, 0);
}

static void test_aggregate(void **state) {
  (void)state;
  /* task 0: two of four right; the format is broken on one right one */
  r1d_eval_outcome s[8] = {
      {1, 1, 0, 10, 1.0, "5"},
      {0, 1, 0, 20, 1.0, "7"},
      {1, 0, 0, 30, 0.5, "5"},
      {0, 0, 1, 40, 1.0, "9"},
      /* task 1: the tie 3/8 goes to "3", which is wrong */
      {0, 1, 0, 5, 1.0, "3"},
      {0, 1, 0, 5, 1.0, "3"},
      {0, 1, 0, 5, 1.0, "8"},
      {1, 1, 0, 5, 1.0, "8"},
  };
  r1d_eval_result r = {0};
  r1d_error err = {0};
  assert_int_equal(r1d_eval_aggregate(s, 2, 4, &r, &err), 0);
  assert_int_equal(r.n_tasks, 2);
  assert_int_equal(r.k, 4);
  assert_int_equal(r.tokens, 120);
  /* per task */
  NEAR(r.tasks[0].pass1, 0.5, 1e-12);
  NEAR(r.tasks[0].strict_pass1, 0.25, 1e-12);
  assert_int_equal(r.tasks[0].cons, 1);
  assert_int_equal(r.tasks[0].majority, 0);
  assert_int_equal(r.tasks[0].votes, 2);
  assert_int_equal(r.tasks[1].cons, 0);
  assert_int_equal(r.tasks[1].majority, 0);
  assert_int_equal(r.tasks[1].pass_k, 1);
  /* over tasks: agnostic 0.375 vs strict 0.25 */
  NEAR(r.pass1.value, 0.375, 1e-12);
  NEAR(r.pass1.ci, 1.959964 * 0.125, 1e-5); /* normal: s = 0.1768, n = 2 */
  NEAR(r.strict_pass1.value, 0.25, 1e-12);
  NEAR(r.strict_pass1.ci, 0.0, 1e-12); /* no spread between the tasks */
  NEAR(r.cons.value, 0.5, 1e-12);
  double lo, hi;
  NEAR(r.cons.ci, r1d_eval_wilson(1, 2, &lo, &hi), 1e-12); /* 0/1 per task */
  NEAR(r.cons.lo, lo, 1e-12);
  NEAR(r.pass_k.value, 1.0, 1e-12);
  NEAR(r.pass_k.ci, r1d_eval_wilson(2, 2, &lo, &hi), 1e-12);
  NEAR(r.format_rate.value, 0.75, 1e-12);
  NEAR(r.language.value, 0.9375, 1e-12);
  NEAR(r.readable.value, 0.75, 1e-12); /* (2/4 + 4/4) / 2 */
  NEAR(r.mean_len.value, 15.0, 1e-12);
  NEAR(r.mean_len.ci, 1.959964 * 10.0, 1e-4);
  NEAR(r.truncated_rate.value, 0.125, 1e-12);
  r1d_eval_result_free(&r);

  /* normal interval on known numbers: per-task means .25 .5 .75 1 */
  r1d_eval_outcome t[16];
  for (int i = 0; i < 16; i++)
    t[i] = oc((i % 4) <= i / 4, 1, "1");
  assert_int_equal(r1d_eval_aggregate(t, 4, 4, &r, &err), 0);
  NEAR(r.pass1.value, 0.625, 1e-12);
  NEAR(r.pass1.ci, 0.316293, 1e-5);
  NEAR(r.pass1.lo, 0.625 - 0.316293, 1e-5);
  NEAR(r.pass1.hi, 0.941293, 1e-5);
  r1d_eval_result_free(&r);

  assert_int_equal(r1d_eval_aggregate(t, 0, 4, &r, &err), R1D_EINVAL);
}

static void test_k1(void **state) {
  (void)state;
  /* k = 1: pass@1 = pass@k = cons@1, every rate is per-task 0/1 (Wilson) */
  r1d_eval_outcome s[5] = {oc(1, 1, "1"), oc(0, 1, "2"), oc(1, 0, "3"),
                           oc(0, 0, ""), oc(1, 1, "5")};
  r1d_eval_result r = {0};
  r1d_error err = {0};
  assert_int_equal(r1d_eval_aggregate(s, 5, 1, &r, &err), 0);
  NEAR(r.pass1.value, 0.6, 1e-12);
  NEAR(r.pass_k.value, 0.6, 1e-12);
  NEAR(r.cons.value, 0.6, 1e-12);
  NEAR(r.strict_pass1.value, 0.4, 1e-12);
  double lo, hi;
  NEAR(r.pass1.ci, r1d_eval_wilson(3, 5, &lo, &hi), 1e-12);
  NEAR(r.strict_pass1.ci, r1d_eval_wilson(2, 5, &lo, &hi), 1e-12);
  /* the language share is not a success count: normal, no spread here */
  NEAR(r.language.value, 1.0, 0);
  NEAR(r.language.ci, 0.0, 0);
  r1d_eval_result_free(&r);
}

static json_t *math_checker(const char *answer) {
  return json_pack("{s:s, s:s}", "type", "math", "answer", answer);
}

static void test_score_and_merge(void **state) {
  (void)state;
  r1d_eval_config cfg;
  r1d_eval_config_default(&cfg);
  r1d_error err = {0};
  json_t *ck = math_checker("12");
  r1d_eval_sample s[4];
  /* R1-distill: the prompt opened the thought */
  assert_int_equal(r1d_eval_score(&cfg, ck,
                                  "7 plus 5 is 12\n</think>\n\n"
                                  "\\boxed{12}",
                                  1, 9, 0, &s[0], &err),
                   0);
  assert_true(s[0].o.correct && s[0].o.format_ok);
  assert_string_equal(s[0].key, "12");
  assert_string_equal(s[0].thought, "7 plus 5 is 12");
  /* no closed thought: wrong format, but the answer still counts */
  assert_int_equal(
      r1d_eval_score(&cfg, ck, "so it is 12", 1, 4, 1, &s[1], &err), 0);
  assert_true(s[1].o.correct);
  assert_false(s[1].o.format_ok);
  assert_true(s[1].o.truncated);
  /* a unit the key keeps but the math checker drops: merged by the merge */
  assert_int_equal(r1d_eval_score(&cfg, ck, "a\n</think>\n\n12\\text{ cm}", 1,
                                  5, 0, &s[2], &err),
                   0);
  assert_string_not_equal(s[2].key, "12");
  assert_int_equal(
      r1d_eval_score(&cfg, ck, "b\n</think>\n\n13", 1, 3, 0, &s[3], &err), 0);
  assert_int_equal(r1d_eval_merge_keys(s, 4, ck, &err), 0);
  assert_string_equal(s[2].key, "12");
  assert_ptr_equal(s[2].o.key, s[2].key);
  assert_string_equal(s[3].key, "13");
  for (int i = 0; i < 4; i++)
    r1d_eval_sample_free(&s[i]);
  json_decref(ck);
}

static void test_rejection_filter(void **state) {
  (void)state;
  r1d_eval_config cfg;
  r1d_eval_config_default(&cfg);
  r1d_error err = {0};
  json_t *ck = math_checker("12");
  const struct {
    const char *text;
    int truncated;
  } in[] = {
      {"7 and 5 make 12\n</think>\n\n12", 1}, /* truncated */
      {"7 and 5 make 12, so 12", 0},          /* malformed */
      {"7 and 5 make 13\n</think>\n\n13", 0}, /* wrong */
      {"7 и 5 make 12\n</think>\n\n12", 0},   /* mixed language */
      {"7 and 5 make 12\n</think>\n\n12", 0}, /* kept */
      {"7 and 5 make 12\n</think>\n\n12", 0}, /* duplicate */
      {"seven and five make 12\n</think>\n\n\\boxed{12}", 0}, /* kept */
      {"five and seven: 12\n</think>\n\n12", 0},              /* surplus */
  };
  enum { N = sizeof in / sizeof *in };
  r1d_eval_sample s[N];
  for (int i = 0; i < N; i++)
    assert_int_equal(r1d_eval_score(&cfg, ck, in[i].text, 1, 10,
                                    in[i].truncated, &s[i], &err),
                     0);
  r1d_reject_reason why[N];
  r1d_reject_filter(s, N, 2, 1.0, why);
  const r1d_reject_reason want[N] = {R1D_REJECT_TRUNCATED, R1D_REJECT_MALFORMED,
                                     R1D_REJECT_WRONG,     R1D_REJECT_MIXED,
                                     R1D_REJECT_KEPT,      R1D_REJECT_DUPLICATE,
                                     R1D_REJECT_KEPT,      R1D_REJECT_SURPLUS};
  for (int i = 0; i < N; i++)
    if (why[i] != want[i])
      fail_msg("sample %d: %s, expected %s", i, r1d_reject_reason_name(why[i]),
               r1d_reject_reason_name(want[i]));
  /* a lower bar lets the mixed-language thought through */
  r1d_reject_filter(s, N, 8, 0.5, why);
  assert_int_equal(why[3], R1D_REJECT_KEPT);
  assert_string_equal(r1d_reject_reason_name(R1D_REJECT_MIXED),
                      "mixed_language");
  for (int i = 0; i < N; i++)
    r1d_eval_sample_free(&s[i]);
  json_decref(ck);
}

static void test_r1_zero_to_chat_rows(void **state) {
  (void)state;
  r1d_eval_config cfg;
  r1d_eval_config_default(&cfg);
  cfg.style = R1D_ANSWER_TAGS;
  r1d_error err = {0};
  json_t *ck = math_checker("632");
  r1d_eval_sample s;
  assert_int_equal(
      r1d_eval_score(&cfg, ck,
                     " <think> 347 plus 285 is 632 </think> <answer> 632 "
                     "</answer>",
                     0, 20, 0, &s, &err),
      0);
  assert_true(s.o.correct && s.o.format_ok);
  char *content = r1d_reject_sft_content(s.thought, s.answer);
  assert_string_equal(content, "<think>\n347 plus 285 is 632\n</think>\n\n632");
  /* a plain prompt becomes the user turn */
  json_t *task = json_pack("{s:s, s:s}", "id", "a", "prompt", "What is it?");
  json_t *row = r1d_reject_sft_row(task, content);
  char *dump = json_dumps(row, JSON_COMPACT);
  assert_string_equal(
      dump, "{\"messages\":[{\"role\":\"user\",\"content\":\"What is it?\"},"
            "{\"role\":\"assistant\",\"content\":\"<think>\\n347 plus 285 is "
            "632\\n</think>\\n\\n632\"}]}");
  free(dump);
  json_decref(row);
  json_decref(task);
  /* messages are kept as they are, the reply appended */
  task = json_pack("{s:[{s:s,s:s},{s:s,s:s}]}", "messages", "role", "system",
                   "content", "Be brief.", "role", "user", "content", "Sum?");
  row = r1d_reject_sft_row(task, content);
  json_t *msgs = json_object_get(row, "messages");
  assert_int_equal(json_array_size(msgs), 3);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(msgs, 2), "role")),
      "assistant");
  json_decref(row);
  json_decref(task);
  task = json_pack("{s:s}", "id", "no prompt");
  assert_null(r1d_reject_sft_row(task, content));
  json_decref(task);
  free(content);
  r1d_eval_sample_free(&s);
  json_decref(ck);
}

/* ---- through the engine ------------------------------------------------ */

typedef struct progress_log {
  int calls, last_done;
} progress_log;

static void on_progress(void *user, int done, int n, double elapsed) {
  progress_log *p = user;
  (void)elapsed;
  assert_true(done > p->last_done && done <= n);
  p->calls++;
  p->last_done = done;
}

static void run_once(r1d_eval_model *em, const r1d_grpo_task *tasks, int n,
                     const r1d_eval_config *cfg, r1d_eval_result *r) {
  r1d_error err = {0};
  progress_log pl = {0};
  int rc = r1d_eval_run(em->engine, em->tok, tasks, n, cfg, on_progress, &pl, r,
                        &err);
  if (rc) fail_msg("eval: %s", err.msg);
  assert_int_equal(pl.last_done, n);
}

static void test_engine_run(void **state) {
  (void)state;
  char dir[] = "/tmp/r1d-eval-XXXXXX";
  assert_non_null(mkdtemp(dir));
  r1d_config c;
  r1d_error err = {0};
  assert_int_equal(r1d_model_preset(R1D_ARCH_QWEN2, "tiny", &c, &err), 0);
  assert_int_equal(r1d_model_init_dir(dir, &c, 11, &err), 0);
  r1d_eval_model em;
  if (r1d_eval_model_open(dir, NULL, 2, &em, &err)) fail_msg("%s", err.msg);
  /* a regex the random model meets sometimes, and a math task */
  json_t *tj = json_pack(
      "[{s:s, s:s, s:{s:s, s:s}}, {s:s, s:s, s:{s:s, s:s}}, {s:s, s:s, "
      "s:{s:s, s:s}}]",
      "id", "digit", "prompt", "Say a digit", "checker", "type", "regex",
      "pattern", "[0-9]", "id", "vowel", "prompt", "Say a vowel", "checker",
      "type", "regex", "pattern", "[aeiou]", "id", "sum", "prompt",
      "What is 2 + 3?", "checker", "type", "math", "answer", "5");
  r1d_grpo_task *tasks = NULL;
  int n = 0;
  if (r1d_eval_tasks_prepare(tj, em.tmpl, em.tok, &tasks, &n, &err))
    fail_msg("%s", err.msg);
  assert_int_equal(n, 3);
  int max_prompt = 0;
  for (int i = 0; i < n; i++)
    if (tasks[i].n_prompt > max_prompt) max_prompt = tasks[i].n_prompt;
  /* the context is checked */
  assert_int_equal(r1d_eval_model_start(&em, max_prompt, 1 << 20, &err),
                   R1D_EINVAL);
  if (r1d_eval_model_start(&em, max_prompt, 12, &err)) fail_msg("%s", err.msg);

  r1d_eval_config cfg;
  r1d_eval_config_default(&cfg);
  cfg.k = 4;
  cfg.max_tokens = 12;
  cfg.seed = 5;
  cfg.keep_samples = 1;
  r1d_eval_result a, b;
  run_once(&em, tasks, n, &cfg, &a);
  run_once(&em, tasks, n, &cfg, &b);
  assert_int_equal(a.n_tasks, 3);
  assert_int_equal(a.k, 4);
  const r1d_eval_metric *ma[] = {&a.pass1,    &a.strict_pass1,  &a.cons,
                                 &a.pass_k,   &a.format_rate,   &a.language,
                                 &a.readable, &a.truncated_rate};
  const r1d_eval_metric *mb[] = {&b.pass1,    &b.strict_pass1,  &b.cons,
                                 &b.pass_k,   &b.format_rate,   &b.language,
                                 &b.readable, &b.truncated_rate};
  for (size_t i = 0; i < sizeof ma / sizeof *ma; i++) {
    assert_true(ma[i]->value >= 0 && ma[i]->value <= 1);
    assert_true(isfinite(ma[i]->ci) && ma[i]->ci >= 0);
    NEAR(ma[i]->value, mb[i]->value, 0); /* the same seeds, the same run */
  }
  assert_true(a.mean_len.value > 0 && a.mean_len.value <= 12);
  assert_true(a.strict_pass1.value <= a.pass1.value);
  assert_true(a.pass1.value <= a.pass_k.value);
  assert_true(a.cons.value <= a.pass_k.value);
  assert_true(a.readable.value <= a.format_rate.value);
  long tokens = 0;
  for (int i = 0; i < n * cfg.k; i++) {
    tokens += a.samples[i].o.n_tokens;
    assert_string_equal(a.samples[i].text, b.samples[i].text);
  }
  assert_int_equal(tokens, a.tokens);
  assert_string_equal(a.tasks[2].id, "sum");
  /* another seed samples something else */
  cfg.seed = 6;
  r1d_eval_result c6;
  run_once(&em, tasks, n, &cfg, &c6);
  int differ = 0;
  for (int i = 0; i < n * cfg.k; i++)
    differ |= strcmp(a.samples[i].text, c6.samples[i].text) != 0;
  assert_true(differ);
  /* bad settings are refused by name */
  cfg.k = 0;
  r1d_eval_result bad;
  assert_int_equal(
      r1d_eval_run(em.engine, em.tok, tasks, n, &cfg, NULL, NULL, &bad, &err),
      R1D_EINVAL);
  assert_non_null(strstr(err.msg, "k must be"));

  r1d_eval_result_free(&a);
  r1d_eval_result_free(&b);
  r1d_eval_result_free(&c6);
  r1d_eval_tasks_free(tasks, n);
  json_decref(tj);
  r1d_eval_model_close(&em);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_answer_keys),
      cmocka_unit_test(test_majority),
      cmocka_unit_test(test_wilson),
      cmocka_unit_test(test_aggregate),
      cmocka_unit_test(test_k1),
      cmocka_unit_test(test_score_and_merge),
      cmocka_unit_test(test_rejection_filter),
      cmocka_unit_test(test_r1_zero_to_chat_rows),
      cmocka_unit_test(test_engine_run),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
