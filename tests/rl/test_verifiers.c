/* test_verifiers.c - the rule-based checkers (rl/verifiers/verify.h):
 *  - math: \boxed extraction (nested, last wins, unclosed, \fbox, `\boxed
 *    5`), the last-number fallback, thousands separators against tuples,
 *    signs (U+2212), decimals, fractions, percent and units, tolerance,
 *    huge numbers, tuples/sets/intervals, strings;
 *  - countdown: the multiset rule (twice, missing, extra), exact rationals,
 *    division by zero, overflow, depth and length limits, `= target`;
 *  - exact (strip, case folding with Unicode), regex (flags, bad pattern,
 *    bad flag, invalid UTF-8 answer, backtracking limit);
 *  - the JSON dispatcher and its errors;
 *  - garbage input of every kind ends in a verdict, never a crash (run it
 *    under ASan/UBSan). Table-driven: every mismatching row is printed with
 *    the checker's detail before the test fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rl/verifiers/verify.h"

/* ---- math ------------------------------------------------------------ */

typedef struct math_case {
  const char *answer, *expected;
  double tol;
  int want;
} math_case;

static const math_case math_cases[] = {
    /* extraction */
    {"so \\boxed{\\frac{1}{2}}.", "0.5", 0, 1},
    {"\\boxed{\\frac{1}{2}}", "1/2", 0, 1},
    {"\\boxed{\\dfrac{\\frac{1}{2}}{2}}", "0.25", 0, 1},
    {"first \\boxed{3}, no wait: \\boxed{4}", "4", 0, 1},
    {"first \\boxed{3}, no wait: \\boxed{4}", "3", 0, 0},
    {"\\boxed{3} then \\boxed{4", "3", 0, 1}, /* unclosed: earlier one */
    {"\\boxed{3} then \\boxed{4", "4", 0, 0},
    {"\\fbox{7}", "7", 0, 1},
    {"$\\boxed 7$", "7", 0, 1},
    {"\\boxed 7 and later \\boxed{8}", "8", 0, 1},
    {"\\boxedx{5} is not a box, 6", "6", 0, 1},
    {"\\boxed{\\{1,2\\}}", "\\{1,2\\}", 0, 1},
    {"\\boxed{}", "5", 0, 0},
    {"\\boxed{5} and 6", "6", 0, 0}, /* a box wins over later numbers */
    /* fallback: the last number */
    {"3 + 4 = 7, then 7 * 2 = 14.", "14", 0, 1},
    {"The answer is 14. Check: 2", "14", 0, 0},
    {"x = 5", "5", 0, 1},
    {"So $x = \\frac{3}{4}$.", "0.75", 0, 1},
    {"**42**", "42", 0, 1},
    {"The total is 1,234 apples.", "1234", 0, 1},
    {"no numbers here", "42", 0, 0},
    {"", "42", 0, 0},
    {"The answer is B.", "B", 0, 1},
    {"The answer is B.", "C", 0, 0},
    /* thousands separators vs tuples */
    {"\\boxed{1,234}", "1234", 0, 1},
    {"\\boxed{1234}", "1,234", 0, 1},
    {"\\boxed{1000}", "1,000", 0, 1},
    {"\\boxed{12,345,678.5}", "12345678.5", 0, 1},
    {"\\boxed{1,2}", "12", 0, 0},
    {"\\boxed{1,2}", "(1,2)", 0, 1},
    {"\\boxed{1,2345}", "12345", 0, 0},
    {"\\boxed{0,123}", "123", 0, 0},
    {"\\boxed{1\\,234}", "1234", 0, 1},
    {"\\boxed{1{,}234}", "1234", 0, 1},
    {"\\boxed{(1,234, 5)}", "(1234,5)", 0, 1},
    /* signs and decimals */
    {"\\boxed{\xe2\x88\x92 5}", "-5", 0, 1}, /* U+2212 */
    {"\\boxed{-5}",
     "\xe2\x88\x92"
     "5",
     0, 1},
    {"\\boxed{+5}", "5", 0, 1},
    {"\\boxed{-5}", "5", 0, 0},
    {"\\boxed{-\\frac{1}{2}}", "-0.5", 0, 1},
    {"\\boxed{\\frac{-1}{2}}", "-1/2", 0, 1},
    {"\\boxed{\\frac{1}{-2}}", "-\\frac12", 0, 1},
    {"\\boxed{-\\frac{1}{2}}", "0.5", 0, 0},
    {"\\boxed{.5}", "1/2", 0, 1},
    {"\\boxed{5.}", "5", 0, 1},
    {"\\boxed{2.50}", "2.5", 0, 1},
    {"\\boxed{1e3}", "1000", 0, 1},
    {"\\boxed{1e-3}", "0.001", 0, 1},
    {"\\boxed{3/6}", "\\tfrac12", 0, 1},
    {"\\boxed{\\frac{6}{4}}", "1.5", 0, 1},
    {"\\boxed{\\frac{1}{0}}", "0", 0, 0},
    /* units, percent, dollars, degrees, spacing */
    {"\\boxed{50\\%}", "50", 0, 1},
    {"50%", "50", 0, 1},
    {"\\boxed{50\\%}", "0.5", 0, 0},
    {"\\boxed{\\$12}", "12", 0, 1},
    {"\\boxed{12}", "\\$12", 0, 1},
    {"\\boxed{12.50 dollars}", "12.5", 0, 1},
    {"\\boxed{12 \\text{ cm}}", "12", 0, 1},
    {"\\boxed{12\\,\\mathrm{cm}^2}", "12", 0, 1},
    {"\\boxed{90^\\circ}", "90", 0, 1},
    {"\\boxed{90^{\\circ}}", "90", 0, 1},
    {"\\boxed{90\xc2\xb0}", "90", 0, 1},
    {"The answer is 15 dollars.", "15", 0, 1},
    {"\\boxed{5 apples}", "5", 0, 0}, /* not a unit we know */
    {"\\boxed{\\left( 1, 2 \\right)}", "(1,2)", 0, 1},
    {"\\boxed{\\! 7 \\!}", "7", 0, 1},
    /* tuples, sets, intervals */
    {"\\boxed{(2,1)}", "(1,2)", 0, 0},
    {"\\boxed{[1,2]}", "(1,2)", 0, 0},
    {"\\boxed{(1,2]}", "(1,2]", 0, 1},
    {"\\boxed{(1,2,3)}", "(1,2)", 0, 0},
    {"\\boxed{(\\frac12, 0.25)}", "(0.5,1/4)", 0, 1},
    {"\\boxed{(0,\\infty)}", "(0, \\infty)", 0, 1},
    {"\\boxed{(5)}", "5", 0, 1},
    /* tolerance */
    {"\\boxed{0.333}", "1/3", 0, 0},
    {"\\boxed{0.333}", "1/3", 1e-2, 1},
    {"\\boxed{0.333}", "1/3", 1e-4, 0},
    {"\\boxed{1000001}", "1000000", 0, 0}, /* integers: exact */
    {"\\boxed{101}", "100", 0.05, 1},
    {"\\boxed{106}", "100", 0.05, 0},
    /* huge numbers: exact in int64, else doubles */
    {"\\boxed{9223372036854775807}", "9223372036854775807", 0, 1},
    {"\\boxed{9223372036854775806}", "9223372036854775807", 0, 0},
    {"\\boxed{123456789012345678901234567890}",
     "123456789012345678901234567890", 0, 1},
    {"\\boxed{223456789012345678901234567890}",
     "123456789012345678901234567890", 0, 0},
    {"\\boxed{1.5e300}", "15e299", 0, 1},
    /* non-numeric answers as normalised strings */
    {"\\boxed{\\text{B}}", "B", 0, 1},
    {"\\boxed{ x^2 + 1 }", "x^2+1", 0, 1},
    {"\\boxed{\\pi}", "\\pi", 0, 1},
    {"\\boxed{\\frac{\\pi}{2}}", "\\dfrac{\\pi}{2}", 0, 1},
    {"\\boxed{\\frac{\\pi}{3}}", "\\frac{\\pi}{2}", 0, 0},
    {"\\boxed{x=5}", "5", 0, 1},
    {"\\boxed{5}", "x = 5", 0, 1},
    {"\\boxed{b}", "B", 0, 0},
    /* garbage */
    {"\\boxed{\xff\xfe}", "5", 0, 0},
    {"\\boxed{\\frac{1}{2}", "0.5", 0, 1}, /* unclosed: last number */
    {"\\boxed{{{{{", "5", 0, 0},
    {"}}}}\\boxed{5}", "5", 0, 1},
    {"\\", "5", 0, 0},
    {"1e99999", "1e99999", 0, 1},
};

static void test_math_table(void **state) {
  (void)state;
  int bad = 0;
  for (size_t i = 0; i < sizeof math_cases / sizeof *math_cases; i++) {
    const math_case *c = &math_cases[i];
    r1d_verdict v;
    r1d_error err = {0};
    int rc = r1d_verify_math(c->answer, c->expected, c->tol, &v, &err);
    if (rc != 0 || v.correct != c->want || v.score != (c->want ? 1.0 : 0.0)) {
      print_message("math case %zu: \"%s\" vs \"%s\" (tol %g): rc %d, got %d, "
                    "want %d: %s\n",
                    i, c->answer, c->expected, c->tol, rc, v.correct, c->want,
                    rc ? err.msg : v.detail);
      bad++;
    }
  }
  assert_int_equal(bad, 0);
}

static void test_math_detail_and_errors(void **state) {
  (void)state;
  r1d_verdict v;
  r1d_error err = {0};
  assert_int_equal(r1d_verify_math("\\boxed{1,234}", "1234", 0, &v, &err), 0);
  assert_non_null(strstr(v.detail, "1,234 == 1234"));
  assert_non_null(strstr(v.detail, "boxed"));
  assert_int_equal(r1d_verify_math("nothing", "7", 0, &v, &err), 0);
  assert_non_null(strstr(v.detail, "no answer found"));
  assert_int_equal(r1d_verify_math("5", "", 0, &v, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "empty"));
  assert_int_equal(r1d_verify_math("5", NULL, 0, &v, &err), R1D_EINVAL);
  assert_int_equal(r1d_verify_math("", " $ \\, ", 0, &v, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "empty once normalised"));
  assert_int_equal(r1d_verify_math("5", "5", -1, &v, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "tolerance"));
  assert_int_equal(r1d_verify_math("5", "5", 0.0 / 0.0, &v, &err), R1D_EINVAL);
  assert_int_equal(r1d_verify_math(NULL, "5", 0, &v, &err), 0);
  assert_int_equal(v.correct, 0);
  assert_int_equal(r1d_verify_math("5", "5", 0, NULL, &err), R1D_EINVAL);
}

/* Long and pathological answers finish fast and correctly. */
static void test_math_long_inputs(void **state) {
  (void)state;
  size_t n = 1 << 20;
  char *s = malloc(n + 32);
  assert_non_null(s);
  for (size_t i = 0; i + 7 <= n; i += 7)
    memcpy(s + i, "\\boxed{", 7);
  s[n - n % 7] = '\0';
  r1d_verdict v;
  assert_int_equal(r1d_verify_math(s, "5", 0, &v, NULL), 0);
  assert_int_equal(v.correct, 0);
  /* a megabyte of words, the answer at the end */
  for (size_t i = 0; i < n; i++)
    s[i] = i % 5 == 4 ? ' ' : 'a';
  strcpy(s + n, " so 1,234.");
  assert_int_equal(r1d_verify_math(s, "1234", 0, &v, NULL), 0);
  assert_int_equal(v.correct, 1);
  /* a thousand-digit number: compared as text */
  memset(s, '7', 1000);
  s[1000] = '\0';
  assert_int_equal(r1d_verify_math(s, s, 0, &v, NULL), 0);
  assert_int_equal(v.correct, 1);
  /* deeply nested \frac */
  size_t k = 0;
  for (int i = 0; i < 5000; i++)
    k += (size_t)sprintf(s + k, "\\frac{");
  strcpy(s + k, "1");
  assert_int_equal(r1d_verify_math(s, "1", 0, &v, NULL), 0);
  free(s);
}

/* ---- countdown ------------------------------------------------------- */

typedef struct cd_case {
  const char *answer;
  int64_t numbers[6];
  size_t n;
  int64_t target;
  int want;
  const char *detail; /* a substring of the detail, or NULL */
} cd_case;

static const cd_case cd_cases[] = {
    {"2*(3+4)", {2, 3, 4}, 3, 14, 1, "= 14"},
    {"(3 + 4) * 2 = 14", {2, 3, 4}, 3, 14, 1, NULL},
    {"14 = 2*(3+4)", {2, 3, 4}, 3, 14, 1, NULL},
    {"2*(3+4) =", {2, 3, 4}, 3, 14, 1, NULL},
    {"2*(3+4) = 15", {2, 3, 4}, 3, 14, 0, "states 15"},
    {"2*(3+4) = 14 = 14", {2, 3, 4}, 3, 14, 0, "more than one"},
    {"\\boxed{2 \\times (3 + 4)}", {2, 3, 4}, 3, 14, 1, NULL},
    {"$2 \\cdot \\left(3 + 4\\right)$", {2, 3, 4}, 3, 14, 1, NULL},
    {"Let me think.\n2*(3+4)\n\n", {2, 3, 4}, 3, 14, 1, NULL},
    {"Answer: 2*(3+4)", {2, 3, 4}, 3, 14, 1, NULL},
    {"\\boxed{2*(3+4)}\nthat is all", {2, 3, 4}, 3, 14, 1, NULL},
    {"2\xc3\x97(3+4)", {2, 3, 4}, 3, 14, 1, NULL}, /* U+00D7 */
    {"2\xc2\xb7(3+4)", {2, 3, 4}, 3, 14, 1, NULL}, /* U+00B7 */
    {"[2*(3+4)]", {2, 3, 4}, 3, 14, 1, NULL},
    {"2*(3\xe2\x88\x92"
     "4)",
     {2, 3, 4},
     3,
     -2,
     1,
     NULL}, /* U+2212 */
    {"14\xc3\xb7"
     "2",
     {14, 2},
     2,
     7,
     1,
     NULL}, /* U+00F7 */
    {"14 \\div 2", {14, 2}, 2, 7, 1, NULL},
    /* the multiset */
    {"2*(3+4)+2-2", {2, 3, 4}, 3, 14, 0, "not an unused number"},
    {"3+4", {2, 3, 4}, 3, 7, 0, "does not use the number 2"},
    {"2*(3+4)+1-1", {2, 3, 4}, 3, 14, 0, "uses 1"},
    {"3+3+4", {3, 3, 4}, 3, 10, 1, NULL},
    {"3+4+4", {3, 3, 4}, 3, 11, 0, "uses 4"},
    {"2*(3+5)", {2, 3, 4}, 3, 16, 0, "uses 5"},
    /* exact rationals */
    {"(6/4)*4", {6, 4, 4}, 3, 6, 1, NULL},
    {"6/4*4", {6, 4, 4}, 3, 6, 1, NULL},
    {"1/3*3", {1, 3, 3}, 3, 1, 1, NULL},
    {"1/3+3", {1, 3, 3}, 2, 3, 0, NULL}, /* n = 2: 3 used twice */
    {"7/2", {7, 2}, 2, 3, 0, "7/2"},
    {"4/(2-2)", {4, 2, 2}, 3, 4, 0, "division by zero"},
    {"4/(2-2)*0", {4, 2, 2, 0}, 4, 0, 0, "division by zero"},
    /* signs */
    {"3-5", {5, 3}, 2, -2, 1, NULL},
    {"-5+3", {5, 3}, 2, -2, 1, NULL},
    {"-5+3", {-5, 3}, 2, -2, 1, NULL},
    {"(-5)+3", {-5, 3}, 2, -2, 1, NULL},
    {"5+3", {-5, 3}, 2, 8, 0, "uses 5"},
    {"-(3-5)", {5, 3}, 2, 2, 1, NULL},
    /* overflow and limits */
    {"9223372036854775807*2", {INT64_MAX, 2}, 2, 0, 0, "overflow"},
    {"9223372036854775807+9223372036854775807",
     {INT64_MAX, INT64_MAX},
     2,
     0,
     0,
     "overflow"},
    {"99999999999999999999", {1}, 1, 1, 0, "too large"},
    {"9223372036854775807-1", {INT64_MAX, 1}, 2, INT64_MAX - 1, 1, NULL},
    /* syntax */
    {"2*(3+4", {2, 3, 4}, 3, 14, 0, "ends early"},
    {"2**3+4", {2, 3, 4}, 3, 10, 0, "unexpected"},
    {"2.5*4", {2, 4}, 2, 10, 0, "not an integer"},
    {"2x(3+4)", {2, 3, 4}, 3, 14, 0, "unexpected 'x'"},
    {"2*(3+4))", {2, 3, 4}, 3, 14, 0, "unexpected ')'"},
    {"", {2}, 1, 2, 0, "no expression"},
    {"   \n\n ", {2}, 1, 2, 0, "no expression"},
    {"\\sqrt{4}", {4}, 1, 2, 0, NULL},
    {"\xff\xfe", {2}, 1, 2, 0, NULL},
};

static void test_countdown_table(void **state) {
  (void)state;
  int bad = 0;
  for (size_t i = 0; i < sizeof cd_cases / sizeof *cd_cases; i++) {
    const cd_case *c = &cd_cases[i];
    r1d_verdict v;
    r1d_error err = {0};
    int rc =
        r1d_verify_countdown(c->answer, c->numbers, c->n, c->target, &v, &err);
    if (rc != 0 || v.correct != c->want ||
        (c->detail && !strstr(v.detail, c->detail))) {
      print_message("countdown case %zu: \"%s\" target %lld: rc %d, got %d, "
                    "want %d: %s\n",
                    i, c->answer, (long long)c->target, rc, v.correct, c->want,
                    rc ? err.msg : v.detail);
      bad++;
    }
  }
  assert_int_equal(bad, 0);
}

static void test_countdown_limits(void **state) {
  (void)state;
  int64_t two = 2;
  r1d_verdict v;
  r1d_error err = {0};
  char *s = malloc(8192);
  assert_non_null(s);
  /* 200 levels of parentheses are fine, 300 are too deep */
  for (int depth = 200; depth <= 300; depth += 100) {
    size_t k = 0;
    for (int i = 0; i < depth; i++)
      s[k++] = '(';
    s[k++] = '2';
    for (int i = 0; i < depth; i++)
      s[k++] = ')';
    s[k] = '\0';
    assert_int_equal(r1d_verify_countdown(s, &two, 1, 2, &v, &err), 0);
    assert_int_equal(v.correct, depth == 200);
    if (depth == 300) assert_non_null(strstr(v.detail, "too deeply"));
  }
  /* unary minus chains count against the depth too */
  memset(s, '-', 5000);
  strcpy(s + 5000, "2");
  assert_int_equal(r1d_verify_countdown(s, &two, 1, 2, &v, &err), 0);
  assert_int_equal(v.correct, 0);
  /* longer than 4096 bytes */
  memset(s, '+', 6000);
  s[0] = '2';
  s[6000] = '\0';
  assert_int_equal(r1d_verify_countdown(s, &two, 1, 2, &v, &err), 0);
  assert_int_equal(v.correct, 0);
  assert_non_null(strstr(v.detail, "longer"));
  /* more literals than numbers */
  size_t k = 0;
  for (int i = 0; i < 100; i++)
    k += (size_t)sprintf(s + k, "2+");
  strcpy(s + k, "2");
  assert_int_equal(r1d_verify_countdown(s, &two, 1, 202, &v, &err), 0);
  assert_int_equal(v.correct, 0);
  free(s);
  /* a malformed spec is an error, not a verdict */
  assert_int_equal(r1d_verify_countdown("2", &two, 0, 2, &v, &err), R1D_EINVAL);
  int64_t many[65] = {0};
  assert_int_equal(r1d_verify_countdown("2", many, 65, 2, &v, &err),
                   R1D_EINVAL);
  assert_non_null(strstr(err.msg, "65"));
  assert_int_equal(r1d_verify_countdown(NULL, &two, 1, 2, &v, &err), 0);
  assert_int_equal(v.correct, 0);
}

/* ---- exact and regex ------------------------------------------------- */

static int exact(const char *a, const char *e, int cs, int strip) {
  r1d_verdict v;
  r1d_error err = {0};
  assert_int_equal(r1d_verify_exact(a, e, cs, strip, &v, &err), 0);
  assert_true(v.score == (v.correct ? 1.0 : 0.0));
  return v.correct;
}

static void test_exact(void **state) {
  (void)state;
  assert_true(exact("  Paris\n", "Paris", 1, 1));
  assert_false(exact("  Paris\n", "Paris", 1, 0));
  assert_true(exact("Paris", "Paris", 1, 0));
  assert_false(exact("paris", "Paris", 1, 1));
  assert_true(exact("paris", "PARIS", 0, 1));
  assert_true(exact("STRASSE",
                    "stra\xc3\x9f"
                    "e",
                    0, 1)); /* ß folds to ss */
  assert_true(exact("\xc3\x89t\xc3\xa9", "\xc3\xa9T\xc3\x89", 0, 1));
  assert_false(exact("\xc3\x89t\xc3\xa9", "\xc3\xa9T\xc3\x89", 1, 1));
  /* NFC: e + combining acute equals the precomposed é once folded */
  assert_true(exact("e\xcc\x81", "\xc3\xa9", 0, 1));
  /* Unicode white space: no-break and ideographic spaces */
  assert_true(exact("\xc2\xa0Paris\xe3\x80\x80", "Paris", 1, 1));
  /* invalid UTF-8: ASCII folding, no error */
  assert_true(exact("AB\xff", "ab\xff", 0, 1));
  assert_false(exact("AB\xff", "ac\xff", 0, 1));
  assert_true(exact("", "  ", 1, 1));
  assert_false(exact("x", "", 1, 1));
  assert_true(exact(NULL, "", 1, 1));
  r1d_verdict v;
  r1d_error err = {0};
  assert_int_equal(r1d_verify_exact("a", NULL, 1, 1, &v, &err), R1D_EINVAL);
  assert_int_equal(r1d_verify_exact("Paris", "paris", 1, 1, &v, &err), 0);
  assert_non_null(strstr(v.detail, "\"Paris\" != \"paris\""));
}

static int regex(const char *a, const char *p, const char *flags) {
  r1d_verdict v;
  r1d_error err = {0};
  int rc = r1d_verify_regex(a, p, flags, &v, &err);
  if (rc) print_message("regex error: %s\n", err.msg);
  assert_int_equal(rc, 0);
  return v.correct;
}

static void test_regex(void **state) {
  (void)state;
  assert_true(regex("The answer is 42.", "\\b42\\b", ""));
  assert_false(regex("The answer is 420.", "\\b42\\b", ""));
  assert_true(regex("answer: FOO", "foo", "i"));
  assert_false(regex("answer: FOO", "foo", ""));
  assert_true(regex("a\nb", "^b$", "m"));
  assert_false(regex("a\nb", "^b$", ""));
  assert_true(regex("a\nb", "a.b", "s"));
  assert_false(regex("a\nb", "a.b", NULL));
  assert_true(regex("abc", "a b c # spaced", "x"));
  assert_false(regex("abc", "a b c", ""));
  assert_true(regex("abc", "^A B C$", "ix"));
  /* UTF: é is one character */
  assert_true(regex("h\xc3\xa9llo", "^h.llo$", ""));
  assert_true(regex("\xc3\x89T\xc3\x89", "^\xc3\xa9t\xc3\xa9$", "i"));
  /* invalid UTF-8 in the answer: matched around, no error */
  assert_true(regex("\xff"
                    "42",
                    "42", ""));
  assert_false(regex("\xff\xfe", "^.+$", ""));
  /* catastrophic backtracking ends as no match */
  char s[64];
  memset(s, 'a', 40);
  strcpy(s + 40, "!");
  assert_false(regex(s, "^(a|a)+$", ""));
  r1d_verdict v;
  r1d_error err = {0};
  assert_int_equal(r1d_verify_regex("x", "(", "", &v, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "bad pattern"));
  assert_non_null(strstr(err.msg, "missing closing parenthesis"));
  assert_int_equal(r1d_verify_regex("x", "x", "q", &v, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "'q'"));
  assert_int_equal(r1d_verify_regex("x", "\xff", "", &v, &err), R1D_EINVAL);
  assert_int_equal(r1d_verify_regex("x", NULL, "", &v, &err), R1D_EINVAL);
}

/* ---- the dispatcher -------------------------------------------------- */

typedef struct checker_case {
  const char *checker, *answer;
  int rc, want;
  const char *msg; /* substring of err.msg for errors */
} checker_case;

static const checker_case checker_cases[] = {
    {"{\"type\":\"math\",\"answer\":\"1/2\"}", "\\boxed{0.5}", 0, 1, NULL},
    {"{\"type\":\"math\",\"answer\":42}", "it is 42", 0, 1, NULL},
    {"{\"type\":\"math\",\"answer\":0.5}", "\\boxed{1/2}", 0, 1, NULL},
    {"{\"type\":\"math\",\"answer\":\"1/3\",\"tolerance\":0.01}", "0.333", 0, 1,
     NULL},
    {"{\"type\":\"math\",\"answer\":\"1/3\"}", "0.333", 0, 0, NULL},
    {"{\"type\":\"math\",\"answer\":\"1\",\"tolerance\":-1}", "1", R1D_EINVAL,
     0, "checker.tolerance"},
    {"{\"type\":\"math\",\"answer\":\"1\",\"tolerance\":\"a\"}", "1",
     R1D_EINVAL, 0, "checker.tolerance"},
    {"{\"type\":\"math\"}", "1", R1D_EINVAL, 0, "checker.answer"},
    {"{\"type\":\"math\",\"answer\":[1]}", "1", R1D_EINVAL, 0,
     "checker.answer"},
    {"{\"type\":\"exact\",\"answer\":\"Paris\"}", " Paris ", 0, 1, NULL},
    {"{\"type\":\"exact\",\"answer\":\"Paris\"}", "paris", 0, 0, NULL},
    {"{\"type\":\"exact\",\"answer\":\"Paris\",\"case_sensitive\":false}",
     "paris", 0, 1, NULL},
    {"{\"type\":\"exact\",\"answer\":\"Paris\",\"strip\":false}", " Paris", 0,
     0, NULL},
    {"{\"type\":\"exact\",\"answer\":\"P\",\"case_sensitive\":\"no\"}", "P",
     R1D_EINVAL, 0, "checker.case_sensitive"},
    {"{\"type\":\"exact\"}", "P", R1D_EINVAL, 0, "checker.answer"},
    {"{\"type\":\"regex\",\"pattern\":\"^yes$\",\"flags\":\"i\"}", "YES", 0, 1,
     NULL},
    {"{\"type\":\"regex\",\"pattern\":\"^yes$\"}", "YES", 0, 0, NULL},
    {"{\"type\":\"regex\",\"pattern\":\"[\"}", "x", R1D_EINVAL, 0,
     "bad pattern"},
    {"{\"type\":\"regex\",\"pattern\":\"x\",\"flags\":1}", "x", R1D_EINVAL, 0,
     "checker.flags"},
    {"{\"type\":\"regex\"}", "x", R1D_EINVAL, 0, "checker.pattern"},
    {"{\"type\":\"countdown\",\"numbers\":[2,3,4],\"target\":14}", "2*(3+4)", 0,
     1, NULL},
    {"{\"type\":\"countdown\",\"numbers\":[2,3,4],\"target\":14,"
     "\"answer\":\"unused\"}",
     "2*3+4", 0, 0, NULL},
    {"{\"type\":\"countdown\",\"numbers\":[2,1.5],\"target\":14}", "2",
     R1D_EINVAL, 0, "checker.numbers[1]"},
    {"{\"type\":\"countdown\",\"numbers\":[],\"target\":14}", "2", R1D_EINVAL,
     0, "checker.numbers"},
    {"{\"type\":\"countdown\",\"numbers\":[2]}", "2", R1D_EINVAL, 0,
     "checker.target"},
    {"{\"type\":\"poetry\"}", "x", R1D_EINVAL, 0, "checker.type"},
    {"{\"answer\":\"x\"}", "x", R1D_EINVAL, 0, "checker.type"},
    {"[1,2]", "x", R1D_EINVAL, 0, "object"},
};

static void test_checker_dispatch(void **state) {
  (void)state;
  int bad = 0;
  for (size_t i = 0; i < sizeof checker_cases / sizeof *checker_cases; i++) {
    const checker_case *c = &checker_cases[i];
    json_t *j = json_loads(c->checker, 0, NULL);
    assert_non_null(j);
    r1d_verdict v;
    r1d_error err = {0};
    int rc = r1d_verify_checker(j, c->answer, &v, &err);
    if (rc != c->rc || (rc == 0 && v.correct != c->want) ||
        (c->msg && !strstr(err.msg, c->msg))) {
      print_message("checker case %zu: %s on \"%s\": rc %d (want %d), got %d "
                    "(want %d): %s\n",
                    i, c->checker, c->answer, rc, c->rc, v.correct, c->want,
                    rc ? err.msg : v.detail);
      bad++;
    }
    json_decref(j);
  }
  assert_int_equal(bad, 0);
  r1d_verdict v;
  assert_int_equal(r1d_verify_checker(NULL, "x", &v, NULL), R1D_EINVAL);
}

/* ---- garbage never crashes ------------------------------------------- */

static void test_fuzz(void **state) {
  (void)state;
  static const char *const pieces[] = {"\\boxed{",
                                       "}",
                                       "{",
                                       "\\frac",
                                       "\\dfrac",
                                       "1",
                                       "23",
                                       ",",
                                       "456",
                                       ".",
                                       "-",
                                       "+",
                                       "*",
                                       "/",
                                       "(",
                                       ")",
                                       "[",
                                       "]",
                                       "e",
                                       "e-",
                                       "%",
                                       "\\%",
                                       "$",
                                       "\\$",
                                       "=",
                                       " ",
                                       "\n",
                                       "\\text{",
                                       "cm",
                                       "\xe2\x88\x92",
                                       "\xff",
                                       "\xc3",
                                       "\\left",
                                       "\\right",
                                       "\\",
                                       "0",
                                       "9223372036854775807",
                                       "^\\circ",
                                       ":",
                                       "\\{",
                                       "\\}",
                                       "\\times",
                                       "x",
                                       "\\,",
                                       "{,}",
                                       "\\fbox",
                                       "\\boxed "};
  const size_t np = sizeof pieces / sizeof *pieces;
  uint64_t seed = 0x9E3779B97F4A7C15ull;
  char s[512];
  int64_t nums[3] = {1, 23, 456};
  for (int iter = 0; iter < 20000; iter++) {
    size_t k = 0;
    int len = (int)(seed % 24);
    for (int j = 0; j < len; j++) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      const char *p = pieces[(seed >> 33) % np];
      size_t l = strlen(p);
      if (k + l >= sizeof s) break;
      memcpy(s + k, p, l);
      k += l;
    }
    s[k] = '\0';
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    r1d_verdict v;
    assert_int_equal(r1d_verify_math(s, "1,234", 0, &v, NULL), 0);
    assert_true(v.correct == 0 || v.correct == 1);
    /* the answer as the expected value too */
    if (k) {
      int rc = r1d_verify_math(s, s, 1e-6, &v, NULL);
      assert_true(rc == 0 || rc == R1D_EINVAL); /* EINVAL: empty when
                                                   normalised */
    }
    assert_int_equal(r1d_verify_countdown(s, nums, 3, 480, &v, NULL), 0);
    assert_int_equal(r1d_verify_exact(s, "1", 0, 1, &v, NULL), 0);
    assert_int_equal(r1d_verify_regex(s, "\\d+", "im", &v, NULL), 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_math_table),
      cmocka_unit_test(test_math_detail_and_errors),
      cmocka_unit_test(test_math_long_inputs),
      cmocka_unit_test(test_countdown_table),
      cmocka_unit_test(test_countdown_limits),
      cmocka_unit_test(test_exact),
      cmocka_unit_test(test_regex),
      cmocka_unit_test(test_checker_dispatch),
      cmocka_unit_test(test_fuzz),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
