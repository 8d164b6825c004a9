/* verify.h - the rule-based checkers that decide whether an answer to a
 * rule-verifiable task is correct (RL.md, "Rewards"): math equivalence,
 * countdown, exact, regex and code (run in a sandbox, rl/sandbox.h).
 *
 * Each checker takes the ANSWER text (what rl/rewards.c extracted from a
 * completion: the text after `</think>`, or inside `<answer>`) plus the
 * task's checker fields, and fills an r1d_verdict. A wrong answer is not an
 * error: the functions return 0 with correct = 0. They return a negative
 * R1D_E* code only for a malformed checker spec (R1D_EINVAL) or a failure of
 * the machinery itself (R1D_ENOMEM, R1D_EIO for a sandbox that could not be
 * started), with err naming the problem.
 *
 * The checker JSON is the one stored with the task (storage/tasks.h):
 *   math       answer (string), tolerance (number >= 0, optional)
 *   exact      answer (string), case_sensitive (bool), strip (bool)
 *   regex      pattern (string), flags (string of i, m, s, x)
 *   countdown  numbers ([int]), target (int), answer (string, unused here)
 *   code       language ("python"), tests ([{"input","output"}]),
 *              time_limit_s (number, optional) */
#ifndef R1D_RL_VERIFY_H
#define R1D_RL_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "../../common/status.h"

typedef struct r1d_verdict {
  int correct;      /* 1: the answer is right, 0: it is not */
  double score;     /* in [0, 1]: 1/0 for most checkers; code: share of
                       tests passed */
  char detail[160]; /* one line for logs: what was compared, why it failed */
} r1d_verdict;

/* Math: the answer's last \boxed{...} (brace matched) if it has one, else
 * the answer's last number-like expression, compared with `expected` after
 * normalisation (spaces, $, \left/\right, \!, thousands separators, simple
 * units, \frac{a}{b}, \dfrac, a/b, decimals, signs, percent). Numbers are
 * equal within `tolerance` (relative, with an absolute floor of 1e-9; 0 =
 * exact rational equality where both are int64 rationals, else 1e-6
 * relative). Non-numeric answers compare as normalised strings; tuples and
 * sets element by element in order. The rules in detail: math.c. */
int r1d_verify_math(const char *answer, const char *expected, double tolerance,
                    r1d_verdict *out, r1d_error *err);

/* Countdown: the answer (last line with an expression, `= target` allowed at
 * its end, or the content of \boxed{}) is an arithmetic expression over
 * + - * / and parentheses using each of `numbers` exactly once (as a
 * multiset) and evaluating exactly (rationals, no floating point) to
 * `target`. Division by zero, other numbers, or unused numbers: incorrect. */
int r1d_verify_countdown(const char *answer, const int64_t *numbers,
                         size_t n_numbers, int64_t target, r1d_verdict *out,
                         r1d_error *err);

/* Exact: equal after optional strip of surrounding white space (default on)
 * and optional case folding (default case sensitive). */
int r1d_verify_exact(const char *answer, const char *expected,
                     int case_sensitive, int strip, r1d_verdict *out,
                     r1d_error *err);

/* Regex: PCRE2 (UTF) pattern with flags i/m/s/x must match somewhere in the
 * answer (anchor it to ask for the whole answer). */
int r1d_verify_regex(const char *answer, const char *pattern,
                     const char *flags, r1d_verdict *out, r1d_error *err);

/* Code: the program is the last fenced code block of the answer (```python
 * or ```), else the whole answer; it runs once per test in the sandbox with
 * the test's input on stdin; its stdout, trailing white space of each line
 * and trailing blank lines removed, must equal the expected output treated
 * the same way. score = share of tests passed, correct = all passed. */
int r1d_verify_code(const char *answer, const json_t *checker,
                    r1d_verdict *out, r1d_error *err);

/* Dispatches on checker["type"] to the functions above, reading the fields
 * as listed at the top. */
int r1d_verify_checker(const json_t *checker, const char *answer,
                       r1d_verdict *out, r1d_error *err);

#endif
