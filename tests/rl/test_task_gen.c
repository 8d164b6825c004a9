/* test_task_gen.c - the built-in task generators (rl/task_gen.h): the same
 * seed gives the same tasks and another seed others; every problem is
 * distinct (by its operands, whatever the wording) and train and eval never
 * share one; both prompt styles draw the same problems; each task's stored
 * answer is right, checked by the project's own verifiers; and every worked
 * solution, at every level of every generator, is one the task's checker
 * accepts when a model writes it in the R1 format, whose every line is
 * arithmetic that holds, written in English alone (its Chinese variant with
 * the same numbers). Bad specs and impossible counts fail by name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rl/rewards.h"
#include "rl/task_gen.h"
#include "rl/verifiers/verify.h"

static json_t *gen_opts(const char *spec, int n_train, int n_eval,
                        uint64_t seed, const r1d_task_gen_opts *o) {
  json_t *arr = NULL;
  r1d_error err = {0};
  if (r1d_task_gen_ex(spec, n_train, n_eval, seed, o, &arr, &err))
    fail_msg("%s: %s", spec, err.msg);
  assert_int_equal(json_array_size(arr), (size_t)(n_train + n_eval));
  return arr;
}

static json_t *gen(const char *spec, int n_train, int n_eval, uint64_t seed) {
  return gen_opts(spec, n_train, n_eval, seed, NULL);
}

static const char *field(json_t *arr, size_t i, const char *key) {
  return json_string_value(json_object_get(json_array_get(arr, i), key));
}

static const char *prompt_of(json_t *arr, size_t i) {
  return field(arr, i, "prompt");
}

static json_t *checker_of(json_t *arr, size_t i) {
  return json_object_get(json_array_get(arr, i), "checker");
}

static const char *solution_of(json_t *arr, size_t i, const char *key) {
  json_t *s = json_object_get(json_array_get(arr, i), "solution");
  return json_string_value(json_object_get(s, key));
}

/* What makes a problem, whatever its wording: the math answer plus the
 * prompt's numbers in order, or a countdown's sorted numbers and target. */
static void problem_key(json_t *arr, size_t i, char *key, size_t cap) {
  json_t *ck = checker_of(arr, i);
  size_t n = 0;
  if (!strcmp(json_string_value(json_object_get(ck, "type")), "countdown")) {
    json_t *nums = json_object_get(ck, "numbers");
    long long v[16];
    size_t m = json_array_size(nums);
    for (size_t k = 0; k < m; k++)
      v[k] = json_integer_value(json_array_get(nums, k));
    for (size_t a = 1; a < m; a++) /* insertion sort */
      for (size_t b = a; b > 0 && v[b - 1] > v[b]; b--) {
        long long t = v[b];
        v[b] = v[b - 1];
        v[b - 1] = t;
      }
    for (size_t k = 0; k < m; k++)
      n += (size_t)snprintf(key + n, cap - n, "%lld,", v[k]);
    snprintf(key + n, cap - n, ">%lld",
             (long long)json_integer_value(json_object_get(ck, "target")));
    return;
  }
  for (const char *p = prompt_of(arr, i); *p && n + 2 < cap; p++)
    if ((*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '*')
      key[n++] = *p;
  key[n] = 0;
}

static const char *all_specs[] = {"addition",    "addition:1",  "addition:9",
                                  "multiply",    "multiply:1",  "multiply:6",
                                  "multistep:1", "multistep",   "multistep:8",
                                  "countdown:2", "countdown:4", "countdown:6"};
enum { N_SPECS = sizeof all_specs / sizeof all_specs[0] };

/* Small problem spaces: addition:1 has 100, multiply:1 64. */
static int train_count(const char *spec) {
  return !strcmp(spec, "addition:1")   ? 70
         : !strcmp(spec, "multiply:1") ? 44
                                       : 200;
}

static void test_seeded_unique_and_split(void **state) {
  (void)state;
  for (size_t s = 0; s < N_SPECS; s++) {
    int n_train = train_count(all_specs[s]), n_eval = n_train < 100 ? 20 : 80;
    json_t *a = gen(all_specs[s], n_train, n_eval, 7),
           *b = gen(all_specs[s], n_train, n_eval, 7);
    json_t *c = gen(all_specs[s], n_train, n_eval, 8);
    assert_true(json_equal(a, b));
    assert_false(json_equal(a, c));
    size_t n = json_array_size(a);
    char(*keys)[160] = malloc(n * sizeof *keys);
    assert_non_null(keys);
    for (size_t i = 0; i < n; i++) {
      const char *split = field(a, i, "split");
      assert_string_equal(split, i < (size_t)n_train ? "train" : "eval");
      problem_key(a, i, keys[i], sizeof keys[i]);
      for (size_t j = 0; j < i; j++)
        if (!strcmp(keys[i], keys[j]))
          fail_msg("%s: task %zu repeats task %zu: %s / %s", all_specs[s], i, j,
                   prompt_of(a, i), prompt_of(a, j));
    }
    free(keys);
    json_decref(a);
    json_decref(b);
    json_decref(c);
  }
}

/* Both styles, by option or by spec suffix, draw the same problems. */
static void test_prompt_styles(void **state) {
  (void)state;
  r1d_task_gen_opts plain = {.style = R1D_PROMPT_PLAIN};
  json_t *nat = gen("addition:3", 50, 10, 4);
  json_t *pl = gen_opts("addition:3", 50, 10, 4, &plain);
  json_t *pl2 = gen("addition:plain:3", 50, 10, 4);
  json_t *nat2 = gen_opts("addition:3:natural", 50, 10, 4, &plain);
  assert_true(json_equal(pl, pl2));
  assert_true(json_equal(nat, nat2));
  for (size_t i = 0; i < json_array_size(nat); i++) {
    long long a, b, c, d;
    assert_int_equal(sscanf(prompt_of(nat, i), "What is %lld + %lld?", &a, &b),
                     2);
    assert_int_equal(sscanf(prompt_of(pl, i), "%lld+%lld=", &c, &d), 2);
    assert_true(a == c && b == d);
    assert_true(a >= 100 && a <= 999 && b >= 100 && b <= 999);
    char want[32];
    snprintf(want, sizeof want, "%lld", a + b);
    assert_string_equal(
        json_string_value(json_object_get(checker_of(nat, i), "answer")), want);
    assert_true(json_equal(checker_of(nat, i), checker_of(pl, i)));
    assert_string_equal(solution_of(nat, i, "thought"),
                        solution_of(pl, i, "thought"));
  }
  json_decref(nat);
  json_decref(pl);
  json_decref(pl2);
  json_decref(nat2);

  const char *want_prefix[][2] = {{"multiply", "What is "},
                                  {"multistep", "What is "},
                                  {"countdown", "Use "},
                                  {"countdown:plain", "Using the numbers ["}};
  for (size_t k = 0; k < 4; k++) {
    json_t *arr = gen(want_prefix[k][0], 5, 0, 1);
    for (size_t i = 0; i < 5; i++) {
      const char *p = prompt_of(arr, i);
      assert_memory_equal(p, want_prefix[k][1], strlen(want_prefix[k][1]));
      if (!strcmp(want_prefix[k][0], "countdown"))
        assert_non_null(strstr(p, " with + - * /, each once."));
      else if (k < 2)
        assert_int_equal(p[strlen(p) - 1], '?');
    }
    json_decref(arr);
  }
}

/* ---- checking a scratchpad line by line ---- */

/* Evaluates "a op b op c ..." over + - * with precedence; 0 when s holds
 * anything else. */
static int eval_expr(const char *s, long long *out) {
  long long sum = 0, term = 0;
  int sign = 1, have = 0;
  char pending = 0;
  while (*s) {
    if (*s == ' ') {
      s++;
      continue;
    }
    if (!have || pending) {
      char *end;
      long long v = strtoll(s, &end, 10);
      if (end == s) return 0;
      s = end;
      if (pending == '*')
        term *= v;
      else
        term = v;
      have = 1;
      pending = 0;
      continue;
    }
    if (*s == '*') {
      pending = '*';
    } else if (*s == '+' || *s == '-') {
      sum += sign * term;
      sign = *s == '+' ? 1 : -1;
      pending = *s;
    } else {
      return 0;
    }
    s++;
  }
  if (!have || pending) return 0;
  *out = sum + sign * term;
  return 1;
}

/* Every line of an English thought is "EXPR = VALUE" with EXPR's value
 * (a countdown's "/" steps are checked by multiplying back), optionally
 * followed by ", write W[ carry C]" or ", now REST" (REST evaluating to the
 * final value); "so EXPR = VALUE" closes addition and multiply. The
 * written digits, right to left, spell the final value. */
static void check_thought_lines(const char *spec, const char *thought,
                                long long final) {
  char buf[2048], written[64] = "";
  long long last = 0;
  snprintf(buf, sizeof buf, "%s", thought);
  char *save = NULL;
  for (char *line = strtok_r(buf, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char *lhs = strncmp(line, "so ", 3) ? line : line + 3;
    char *eq = strstr(lhs, " = ");
    if (!eq) fail_msg("%s: no ' = ' in line '%s'", spec, line);
    *eq = 0;
    char *rhs = eq + 3, *tail = strchr(rhs, ',');
    if (tail) *tail++ = 0;
    long long want = strtoll(rhs, NULL, 10), got = 0;
    char *slash = strstr(lhs, " / ");
    if (slash) {
      *slash = 0;
      long long a = strtoll(lhs, NULL, 10), b = strtoll(slash + 3, NULL, 10);
      if (b == 0 || want * b != a)
        fail_msg("%s: %lld / %lld is not %lld", spec, a, b, want);
    } else if (!eval_expr(lhs, &got) || got != want) {
      fail_msg("%s: '%s' is not %lld (%s)", spec, lhs, want, thought);
    }
    if (lhs != line) assert_int_equal(want, final);
    last = want;
    if (!tail) continue;
    long long w, c;
    int carry = strstr(tail, " carry ") != NULL;
    if (sscanf(tail, " write %lld carry %lld", &w, &c) == 2 ||
        (!carry && sscanf(tail, " write %lld", &w) == 1)) {
      assert_int_equal(carry ? w + c * 10 : w, want);
      /* the digit written goes in front of those written before */
      char d[24];
      int n = snprintf(d, sizeof d, "%lld", w);
      size_t have = strlen(written);
      assert_true(n > 0 && (size_t)n + have < sizeof written);
      memmove(written + n, written, have + 1);
      memcpy(written, d, (size_t)n);
    } else if (!strncmp(tail, " now ", 5)) {
      long long rest;
      assert_true(eval_expr(tail + 5, &rest));
      (void)rest; /* the order of steps is checked through the final value */
    } else {
      fail_msg("%s: unexpected '%s' in '%s'", spec, tail, thought);
    }
  }
  if (last != final)
    fail_msg("%s: '%s' ends at %lld, not %lld", spec, thought, last, final);
  if (written[0]) {
    char f[32];
    snprintf(f, sizeof f, "%lld", final);
    assert_string_equal(written, f);
  }
}

/* The digits of s, in order, with a separator between runs: what the
 * English and Chinese thoughts must share. */
static void digit_runs(const char *s, char *out, size_t cap) {
  size_t n = 0;
  int in = 0;
  for (; *s && n + 2 < cap; s++) {
    int d = *s >= '0' && *s <= '9';
    if (d) out[n++] = *s;
    if (!d && in) out[n++] = ' ';
    in = d;
  }
  out[n] = 0;
}

/* Every generator at every level: the worked solution, written by a model
 * as "THOUGHT\n</think>\n\nANSWER" after an R1-distill prompt, is correct
 * and well formed by the reward; its answer is the checker's; its lines
 * hold; its words are English alone, and the Chinese variant has the same
 * numbers in Han script. */
static void test_solutions_pass_their_checkers(void **state) {
  (void)state;
  static const struct {
    const char *name;
    int lo, hi;
  } kinds[] = {{"addition", 1, 9},
               {"multiply", 1, 6},
               {"multistep", 1, 8},
               {"countdown", 2, 6}};
  r1d_reward_config cfg;
  r1d_reward_config_default(&cfg);
  cfg.w_format = 1;
  r1d_completion_info info = {.prompt_in_think = 1};
  r1d_task_gen_opts extra = {.extra_thoughts = 1};
  for (size_t k = 0; k < 4; k++)
    for (int level = kinds[k].lo; level <= kinds[k].hi; level++) {
      char spec[32];
      snprintf(spec, sizeof spec, "%s:%d", kinds[k].name, level);
      int n_train = train_count(spec) / 4, n_eval = 10;
      json_t *arr = gen_opts(spec, n_train, n_eval, (uint64_t)level, &extra);
      for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *thought = solution_of(arr, i, "thought");
        const char *answer = solution_of(arr, i, "answer");
        const char *zh = solution_of(arr, i, "thought_zh");
        assert_non_null(thought);
        assert_non_null(answer);
        assert_non_null(zh);
        assert_non_null(solution_of(arr, i, "thought_short"));
        json_t *ck = checker_of(arr, i);
        assert_string_equal(json_string_value(json_object_get(ck, "answer")),
                            answer);
        char completion[2400];
        snprintf(completion, sizeof completion, "%s\n</think>\n\n%s", thought,
                 answer);
        r1d_reward rw;
        r1d_error err = {0};
        assert_int_equal(
            r1d_reward_compute(&cfg, ck, completion, &info, &rw, &err), 0);
        if (!rw.correct || !rw.format_ok)
          fail_msg("%s: %s -> %s: %s", spec, prompt_of(arr, i), completion,
                   rw.verdict.detail);
        /* a model copies the answer; a wrong one must score 0 */
        snprintf(completion, sizeof completion, "%s\n</think>\n\n%s7", thought,
                 answer);
        assert_int_equal(
            r1d_reward_compute(&cfg, ck, completion, &info, &rw, &err), 0);
        assert_false(rw.correct);

        for (const char *c = thought; *c; c++)
          if ((unsigned char)*c >= 0x80)
            fail_msg("%s: non-ASCII in '%s'", spec, thought);
        assert_true(
            r1d_language_consistency(thought, strlen(thought), "latin") == 1.0);
        assert_true(r1d_language_consistency(zh, strlen(zh), "han") == 1.0);
        assert_true(strlen(thought) < 400);
        assert_null(strstr(thought, "\n\n"));
        long long final = strtoll(answer, NULL, 10);
        if (k == 3) final = json_integer_value(json_object_get(ck, "target"));
        check_thought_lines(spec, thought, final);
        char en_d[512], zh_d[512];
        digit_runs(thought, en_d, sizeof en_d);
        digit_runs(zh, zh_d, sizeof zh_d);
        assert_string_equal(en_d, zh_d);
      }
      json_decref(arr);
    }
}

/* The prompt "What is 3 + 4 * 2 - 5?" with its numbers, checked by the
 * countdown verifier (exact rational evaluation) against the stored
 * answer. */
static void test_multistep_answers(void **state) {
  (void)state;
  json_t *arr = gen("multistep:4", 200, 0, 3);
  for (size_t i = 0; i < json_array_size(arr); i++) {
    char expr[160];
    const char *p = prompt_of(arr, i);
    assert_memory_equal(p, "What is ", 8);
    snprintf(expr, sizeof expr, "%s", p + 8);
    expr[strlen(expr) - 1] = 0; /* the '?' */
    int64_t nums[16];
    size_t n = 0;
    for (const char *c = expr; *c;) {
      if (*c >= '0' && *c <= '9') {
        nums[n++] = strtoll(c, (char **)&c, 10);
      } else {
        c++;
      }
    }
    assert_int_equal(n, 5);
    json_t *ck = checker_of(arr, i);
    int64_t want =
        strtoll(json_string_value(json_object_get(ck, "answer")), NULL, 10);
    r1d_verdict v;
    r1d_error err = {0};
    assert_int_equal(r1d_verify_countdown(expr, nums, n, want, &v, &err), 0);
    if (!v.correct)
      fail_msg("%s: answer %lld: %s", expr, (long long)want, v.detail);
  }
  json_decref(arr);
}

static void test_countdown_solvable(void **state) {
  (void)state;
  json_t *arr = gen("countdown:4", 300, 0, 5);
  for (size_t i = 0; i < json_array_size(arr); i++) {
    json_t *ck = checker_of(arr, i);
    json_t *nums = json_object_get(ck, "numbers");
    int64_t v[8];
    size_t n = json_array_size(nums);
    assert_int_equal(n, 4);
    for (size_t k = 0; k < n; k++) {
      v[k] = json_integer_value(json_array_get(nums, k));
      assert_true(v[k] >= 1 && v[k] <= 25);
    }
    int64_t target = json_integer_value(json_object_get(ck, "target"));
    assert_true(target >= 1 && target <= 999);
    r1d_verdict vd;
    r1d_error err = {0};
    const char *sol = json_string_value(json_object_get(ck, "answer"));
    assert_int_equal(r1d_verify_countdown(sol, v, n, target, &vd, &err), 0);
    if (!vd.correct)
      fail_msg("%s = %lld: %s", sol, (long long)target, vd.detail);
    assert_non_null(strstr(prompt_of(arr, i), "make"));
    /* one line per step: n - 1 steps for n numbers */
    const char *t = solution_of(arr, i, "thought");
    int lines = 1;
    for (; *t; t++)
      lines += *t == '\n';
    assert_int_equal(lines, 3);
  }
  json_decref(arr);
}

/* Carries happen at every level: addition levels >= 2 write "carry" in
 * many thoughts, level 1 has sums of two digits; multiply carries in most
 * of its thoughts, its factors in range. */
static void test_carries(void **state) {
  (void)state;
  for (int level = 1; level <= 9; level++) {
    char spec[32];
    snprintf(spec, sizeof spec, "addition:%d", level);
    json_t *arr = gen(spec, level == 1 ? 60 : 100, 0, 11);
    int carries = 0;
    for (size_t i = 0; i < json_array_size(arr); i++) {
      long long a, b;
      assert_int_equal(
          sscanf(prompt_of(arr, i), "What is %lld + %lld?", &a, &b), 2);
      carries += level == 1 ? a + b >= 10
                            : strstr(solution_of(arr, i, "thought"),
                                     " carry 1") != NULL;
    }
    if (carries * 4 < (int)json_array_size(arr))
      fail_msg("%s: only %d of %zu with a carry", spec, carries,
               json_array_size(arr));
    json_decref(arr);
  }
  for (int level = 1; level <= 6; level++) {
    char spec[32];
    snprintf(spec, sizeof spec, "multiply:%d", level);
    json_t *arr = gen(spec, level == 1 ? 50 : 100, 0, 12);
    int carries = 0;
    long long lo = 1;
    for (int d = 1; d < level; d++)
      lo *= 10;
    for (size_t i = 0; i < json_array_size(arr); i++) {
      long long a, b;
      assert_int_equal(
          sscanf(prompt_of(arr, i), "What is %lld * %lld?", &a, &b), 2);
      assert_true(a >= (level == 1 ? 2 : lo) && a < lo * 10);
      assert_true(b >= 2 && b <= 9);
      const char *t = solution_of(arr, i, "thought");
      carries += level == 1 ? a * b >= 10 : strstr(t, " carry ") != NULL;
      char want[32];
      snprintf(want, sizeof want, "%lld", a * b);
      assert_string_equal(solution_of(arr, i, "answer"), want);
    }
    if (carries * 2 < (int)json_array_size(arr))
      fail_msg("%s: only %d of %zu with a carry", spec, carries,
               json_array_size(arr));
    json_decref(arr);
  }
}

static void test_errors(void **state) {
  (void)state;
  json_t *arr = NULL;
  r1d_error err = {0};
  assert_int_equal(r1d_task_gen("nope", 1, 1, 1, &arr, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "unknown task generator"));
  assert_non_null(strstr(err.msg, "multiply"));
  assert_int_equal(r1d_task_gen("addition:0", 1, 1, 1, &arr, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "1..9"));
  assert_int_equal(r1d_task_gen("addition:10", 1, 1, 1, &arr, &err),
                   R1D_EINVAL);
  assert_int_equal(r1d_task_gen("multiply:7", 1, 1, 1, &arr, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "1..6"));
  assert_int_equal(r1d_task_gen("countdown:9", 1, 1, 1, &arr, &err),
                   R1D_EINVAL);
  assert_int_equal(r1d_task_gen("countdown:1", 1, 1, 1, &arr, &err),
                   R1D_EINVAL);
  assert_int_equal(r1d_task_gen("addition:x", 1, 1, 1, &arr, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "prompt style"));
  assert_int_equal(r1d_task_gen("addition:2:3", 1, 1, 1, &arr, &err),
                   R1D_EINVAL);
  assert_int_equal(r1d_task_gen("addition:plain:plain", 1, 1, 1, &arr, &err),
                   R1D_EINVAL);
  assert_int_equal(r1d_task_gen("addition:", 1, 1, 1, &arr, &err), R1D_EINVAL);
  assert_int_equal(r1d_task_gen(":2", 1, 1, 1, &arr, &err), R1D_EINVAL);
  assert_int_equal(r1d_task_gen("addition", -1, 1, 1, &arr, &err), R1D_EINVAL);
  /* one-digit additions: only 100 distinct problems; multiply:1 64 */
  assert_int_equal(r1d_task_gen("addition:1", 90, 20, 1, &arr, &err),
                   R1D_ERANGE);
  assert_non_null(strstr(err.msg, "distinct"));
  assert_int_equal(r1d_task_gen("multiply:1", 60, 5, 1, &arr, &err),
                   R1D_ERANGE);
  assert_null(arr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_seeded_unique_and_split),
      cmocka_unit_test(test_prompt_styles),
      cmocka_unit_test(test_solutions_pass_their_checkers),
      cmocka_unit_test(test_multistep_answers),
      cmocka_unit_test(test_countdown_solvable),
      cmocka_unit_test(test_carries),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
