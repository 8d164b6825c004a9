/* test_task_gen.c - the built-in task generators (rl/task_gen.h): the same
 * seed gives the same tasks and another seed others; every prompt is
 * distinct and train and eval never share one; each task's stored answer
 * is right, checked by the project's own verifiers (the countdown checker
 * evaluates the generator's solution and, for multistep, the prompt's own
 * expression against the answer); bad specs and impossible counts fail by
 * name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rl/task_gen.h"
#include "rl/verifiers/verify.h"

static json_t *gen(const char *spec, int n_train, int n_eval, uint64_t seed) {
  json_t *arr = NULL;
  r1d_error err = {0};
  if (r1d_task_gen(spec, n_train, n_eval, seed, &arr, &err))
    fail_msg("%s: %s", spec, err.msg);
  assert_int_equal(json_array_size(arr), (size_t)(n_train + n_eval));
  return arr;
}

static const char *prompt_of(json_t *arr, size_t i) {
  return json_string_value(json_object_get(json_array_get(arr, i), "prompt"));
}

static void test_seeded_unique_and_split(void **state) {
  (void)state;
  const char *specs[] = {"addition", "addition:1", "multistep:2", "countdown",
                         "countdown:5"};
  for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
    int n_train = !strcmp(specs[s], "addition:1") ? 70 : 300;
    int n_eval = !strcmp(specs[s], "addition:1") ? 30 : 100;
    json_t *a = gen(specs[s], n_train, n_eval, 7),
           *b = gen(specs[s], n_train, n_eval, 7);
    json_t *c = gen(specs[s], n_train, n_eval, 8);
    assert_true(json_equal(a, b));
    assert_false(json_equal(a, c));
    size_t n = json_array_size(a);
    for (size_t i = 0; i < n; i++) {
      json_t *t = json_array_get(a, i);
      const char *split = json_string_value(json_object_get(t, "split"));
      assert_string_equal(split, i < (size_t)n_train ? "train" : "eval");
      for (size_t j = 0; j < i; j++)
        if (!strcmp(prompt_of(a, i), prompt_of(a, j)))
          fail_msg("%s: task %zu repeats task %zu: %s", specs[s], i, j,
                   prompt_of(a, i));
    }
    json_decref(a);
    json_decref(b);
    json_decref(c);
  }
}

static void test_addition_answers(void **state) {
  (void)state;
  json_t *arr = gen("addition:3", 200, 50, 1);
  for (size_t i = 0; i < json_array_size(arr); i++) {
    long long a, b;
    assert_int_equal(sscanf(prompt_of(arr, i), "%lld+%lld=", &a, &b), 2);
    assert_true(a >= 100 && a <= 999 && b >= 100 && b <= 999);
    json_t *ck = json_object_get(json_array_get(arr, i), "checker");
    char want[32];
    snprintf(want, sizeof want, "%lld", a + b);
    assert_string_equal(json_string_value(json_object_get(ck, "answer")), want);
  }
  json_decref(arr);
}

/* The prompt "3+4*2-5=" with its numbers, checked by the countdown
 * verifier (exact rational evaluation) against the stored answer. */
static void test_multistep_answers(void **state) {
  (void)state;
  json_t *arr = gen("multistep:4", 200, 0, 3);
  for (size_t i = 0; i < json_array_size(arr); i++) {
    char expr[160];
    snprintf(expr, sizeof expr, "%s", prompt_of(arr, i));
    expr[strlen(expr) - 1] = 0; /* the '=' */
    int64_t nums[16];
    size_t n = 0;
    for (const char *p = expr; *p;) {
      if (*p >= '0' && *p <= '9') {
        nums[n++] = strtoll(p, (char **)&p, 10);
      } else {
        p++;
      }
    }
    assert_int_equal(n, 5);
    json_t *ck = json_object_get(json_array_get(arr, i), "checker");
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
    json_t *ck = json_object_get(json_array_get(arr, i), "checker");
    json_t *nums = json_object_get(ck, "numbers");
    int64_t v[8];
    size_t n = json_array_size(nums);
    assert_int_equal(n, 4);
    for (size_t k = 0; k < n; k++)
      v[k] = json_integer_value(json_array_get(nums, k));
    int64_t target = json_integer_value(json_object_get(ck, "target"));
    assert_true(target >= 1 && target <= 999);
    r1d_verdict vd;
    r1d_error err = {0};
    const char *sol = json_string_value(json_object_get(ck, "answer"));
    assert_int_equal(r1d_verify_countdown(sol, v, n, target, &vd, &err), 0);
    if (!vd.correct)
      fail_msg("%s = %lld: %s", sol, (long long)target, vd.detail);
    assert_non_null(strstr(prompt_of(arr, i), "make"));
  }
  json_decref(arr);
}

static void test_errors(void **state) {
  (void)state;
  json_t *arr = NULL;
  r1d_error err = {0};
  assert_int_equal(r1d_task_gen("nope", 1, 1, 1, &arr, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "unknown task generator"));
  assert_int_equal(r1d_task_gen("addition:0", 1, 1, 1, &arr, &err), R1D_EINVAL);
  assert_int_equal(r1d_task_gen("countdown:9", 1, 1, 1, &arr, &err),
                   R1D_EINVAL);
  assert_int_equal(r1d_task_gen("addition:x", 1, 1, 1, &arr, &err), R1D_EINVAL);
  assert_int_equal(r1d_task_gen(":2", 1, 1, 1, &arr, &err), R1D_EINVAL);
  /* one-digit additions: only 100 distinct problems */
  assert_int_equal(r1d_task_gen("addition:1", 90, 20, 1, &arr, &err),
                   R1D_ERANGE);
  assert_non_null(strstr(err.msg, "distinct"));
  assert_null(arr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_seeded_unique_and_split),
      cmocka_unit_test(test_addition_answers),
      cmocka_unit_test(test_multistep_answers),
      cmocka_unit_test(test_countdown_solvable),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
