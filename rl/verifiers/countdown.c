/* countdown.c - the countdown checker (verify.h): does the answer's
 * arithmetic expression use each given number exactly once and reach the
 * target? Evaluation is exact (int64 rationals, every overflow caught), so
 * (6/4)*4 reaches 6 and no float rounding can turn a near miss into a hit;
 * an overflow or a division by zero makes the answer wrong, never the
 * process crash.
 *
 * What is read, in order:
 *  - the content of the answer's last complete \boxed{...}, else its last
 *    non-empty line; a label up to the last `:` ("Answer: 3+4") is dropped;
 *  - white space, `$`, `\(`, `\)`, `\[`, `\]`, `\left`, `\right`, `\,`,
 *    `\!`, `\;` are ignored;
 *    `*`, `\times`, `\cdot`, U+00D7 and U+00B7 multiply (not `x`);
 *    `/`, `\div`, U+00F7 divide; U+2212 is `-`; ( ) and [ ] group;
 *  - `expr`, `expr =`, `expr = N` and `N = expr` are accepted, N an integer
 *    literal that must equal the target; more than one `=` is wrong;
 *  - literals are unsigned decimal integers (a `.` is wrong); unary `-` and
 *    `+` are allowed (they use no number). A `-` directly before a literal
 *    may stand for a given negative number: such a literal matches -k when
 *    -k is among the numbers still unused, else k;
 *  - the literals must be the given numbers as a multiset: each exactly
 *    once, none missing, none extra.
 * Limits: 4096 bytes of expression, nesting depth 256, 64 numbers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verifiers_internal.h"
#include "verify.h"

enum {
  CD_MAX_LEN = 4096,
  CD_MAX_DEPTH = 256,
  CD_MAX_NUMBERS = 64,
};

typedef struct lit {
  int64_t v;
  int negated; /* written as -v at an operand's start */
} lit;

typedef struct cd_parser {
  const char *s;
  size_t n, i;
  int depth;
  const char *fail; /* why the expression is wrong; NULL while fine */
  char fail_buf[96];
  lit lits[CD_MAX_NUMBERS + 1];
  size_t n_lits;
} cd_parser;

/* ---- reading the expression into a plain ASCII form ------------------ */

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

static int is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Writes the expression s[0..n) as ASCII digits, + - * / ( ) = into out
 * (capacity CD_MAX_LEN + 1); anything else is copied as it is so the parser
 * can name it. Returns the length, or -1 when too long. */
static long clean_expr(const char *s, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    const unsigned char *u = (const unsigned char *)s + i;
    size_t left = n - i;
    char c = 0;
    size_t adv = 1;
    if (is_space(s[i]) || s[i] == '$') {
      i++;
      continue;
    }
    if (left >= 2 && u[0] == 0xC3 && u[1] == 0x97) { /* U+00D7 */
      c = '*';
      adv = 2;
    } else if (left >= 2 && u[0] == 0xC2 && u[1] == 0xB7) { /* U+00B7 */
      c = '*';
      adv = 2;
    } else if (left >= 2 && u[0] == 0xC3 && u[1] == 0xB7) { /* U+00F7 */
      c = '/';
      adv = 2;
    } else if (left >= 3 && u[0] == 0xE2 && u[1] == 0x88 && u[2] == 0x92) {
      c = '-';
      adv = 3;
    } else if (s[i] == '\\' && left >= 2 && !is_alpha(s[i + 1])) {
      char d = s[i + 1];
      if (d == '(' || d == ')' || d == ',' || d == '!' || d == ';' ||
          d == '[' || d == ']') {
        i += 2;
        continue;
      }
      c = '\\';
    } else if (s[i] == '\\') {
      size_t j = i + 1;
      while (j < n && is_alpha(s[j]))
        j++;
      size_t l = j - i - 1;
      const char *name = s + i + 1;
      if ((l == 4 && memcmp(name, "left", 4) == 0) ||
          (l == 5 && memcmp(name, "right", 5) == 0)) {
        i = j;
        continue;
      }
      if ((l == 5 && memcmp(name, "times", 5) == 0) ||
          (l == 4 && memcmp(name, "cdot", 4) == 0))
        c = '*';
      else if (l == 3 && memcmp(name, "div", 3) == 0)
        c = '/';
      else
        c = '\\'; /* an unsupported command: the parser stops there */
      adv = c == '\\' ? 1 : j - i;
    } else {
      c = s[i];
    }
    if (o >= CD_MAX_LEN) return -1;
    out[o++] = c;
    i += adv;
  }
  out[o] = '\0';
  return (long)o;
}

/* ---- the parser, evaluating as it goes ------------------------------- */

static void cd_fail(cd_parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void cd_fail(cd_parser *p, const char *fmt, ...) {
  if (p->fail) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->fail_buf, sizeof p->fail_buf, fmt, ap);
  va_end(ap);
  p->fail = p->fail_buf;
}

static void arith_fail(cd_parser *p, int rc) {
  if (rc == R1D_RAT_DIVZERO)
    cd_fail(p, "division by zero");
  else if (rc)
    cd_fail(p, "overflow in exact arithmetic");
}

static void unexpected(cd_parser *p) {
  if (p->i >= p->n)
    cd_fail(p, "expression ends early");
  else
    cd_fail(p, "unexpected '%c' at %zu", p->s[p->i], p->i);
}

static r1d_rat parse_expr(cd_parser *p);

static r1d_rat parse_literal(cd_parser *p, int negated) {
  r1d_rat r = {0, 1};
  int64_t v = 0;
  size_t start = p->i;
  while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
    if (__builtin_mul_overflow(v, 10, &v) ||
        __builtin_add_overflow(v, p->s[p->i] - '0', &v)) {
      cd_fail(p, "number too large");
      return r;
    }
    p->i++;
  }
  if (p->i == start) {
    unexpected(p);
    return r;
  }
  if (p->i < p->n && p->s[p->i] == '.') {
    cd_fail(p, "not an integer at %zu", start);
    return r;
  }
  if (p->n_lits > CD_MAX_NUMBERS) {
    cd_fail(p, "more numbers than given");
    return r;
  }
  p->lits[p->n_lits++] = (lit){v, negated};
  r.p = v;
  return r;
}

static r1d_rat parse_factor(cd_parser *p) {
  r1d_rat r = {0, 1};
  if (p->fail) return r;
  if (++p->depth > CD_MAX_DEPTH) {
    cd_fail(p, "nested too deeply");
    return r;
  }
  char c = p->i < p->n ? p->s[p->i] : 0;
  if (c == '-' || c == '+') {
    p->i++;
    int digit_next = p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9';
    if (c == '-' && digit_next) {
      r = parse_literal(p, 1);
      r.p = -r.p; /* a literal is at most INT64_MAX */
    } else {
      r = parse_factor(p);
      if (c == '-') r.p = -r.p;
    }
  } else if (c == '(' || c == '[') {
    p->i++;
    r = parse_expr(p);
    char want = c == '(' ? ')' : ']';
    if (!p->fail && (p->i >= p->n || p->s[p->i] != want))
      unexpected(p);
    else
      p->i++;
  } else {
    r = parse_literal(p, 0);
  }
  p->depth--;
  return r;
}

static r1d_rat parse_term(cd_parser *p) {
  r1d_rat r = parse_factor(p);
  while (!p->fail && p->i < p->n && (p->s[p->i] == '*' || p->s[p->i] == '/')) {
    char op = p->s[p->i++];
    r1d_rat b = parse_factor(p);
    if (p->fail) break;
    arith_fail(p, op == '*' ? r1d_rat_mul(r, b, &r) : r1d_rat_div(r, b, &r));
  }
  return r;
}

static r1d_rat parse_expr(cd_parser *p) {
  r1d_rat r = parse_term(p);
  while (!p->fail && p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) {
    char op = p->s[p->i++];
    r1d_rat b = parse_term(p);
    if (p->fail) break;
    arith_fail(p, op == '+' ? r1d_rat_add(r, b, &r) : r1d_rat_sub(r, b, &r));
  }
  return r;
}

/* Whether s[0..n) is one integer literal (optionally signed); sets *v. */
static int int_literal(const char *s, size_t n, int64_t *v) {
  size_t i = 0;
  int neg = 0;
  if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
  if (i == n) return 0;
  int64_t x = 0;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    if (__builtin_mul_overflow(x, 10, &x) ||
        __builtin_add_overflow(x, s[i] - '0', &x))
      return 0;
  }
  *v = neg ? -x : x;
  return 1;
}

/* ---- the multiset check ---------------------------------------------- */

/* Matches the literals to the numbers: plain literals first (they match
 * only themselves), then negated ones (-k, else k). Writes why not. */
static int match_numbers(const cd_parser *p, const int64_t *numbers, size_t n,
                         char *why, size_t why_len) {
  unsigned char used[CD_MAX_NUMBERS] = {0};
  for (int pass = 0; pass < 2; pass++) {
    for (size_t k = 0; k < p->n_lits; k++) {
      const lit *l = &p->lits[k];
      if (l->negated != pass) continue;
      size_t hit = n;
      for (int want_neg = pass; want_neg >= 0 && hit == n; want_neg--) {
        int64_t v = want_neg ? -l->v : l->v;
        for (size_t j = 0; j < n; j++)
          if (!used[j] && numbers[j] == v) {
            hit = j;
            break;
          }
      }
      if (hit == n) {
        snprintf(why, why_len, "uses %s%lld, which is not an unused number",
                 l->negated ? "-" : "", (long long)l->v);
        return 0;
      }
      used[hit] = 1;
    }
  }
  for (size_t j = 0; j < n; j++)
    if (!used[j]) {
      snprintf(why, why_len, "does not use the number %lld",
               (long long)numbers[j]);
      return 0;
    }
  return 1;
}

/* ---- the checker ----------------------------------------------------- */

/* The expression text: last \boxed{} content, else last non-empty line,
 * without a label that ends in ':'. */
static void pick_expression(const char *a, size_t n, const char **s,
                            size_t *len) {
  const char *at;
  size_t l;
  if (!r1d_last_boxed(a, n, &at, &l)) {
    size_t end = n;
    while (end > 0 && is_space(a[end - 1]))
      end--;
    size_t start = end;
    while (start > 0 && a[start - 1] != '\n')
      start--;
    at = a + start;
    l = end - start;
  }
  for (size_t k = l; k-- > 0;)
    if (at[k] == ':') {
      at += k + 1;
      l -= k + 1;
      break;
    }
  *s = at;
  *len = l;
}

static int verdict(r1d_verdict *out, int correct, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int verdict(r1d_verdict *out, int correct, const char *fmt, ...) {
  out->correct = correct;
  out->score = correct ? 1.0 : 0.0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out->detail, sizeof out->detail, fmt, ap);
  va_end(ap);
  return 0;
}

int r1d_verify_countdown(const char *answer, const int64_t *numbers,
                         size_t n_numbers, int64_t target, r1d_verdict *out,
                         r1d_error *err) {
  if (!out) return r1d_fail(err, R1D_EINVAL, "countdown: no verdict to fill");
  memset(out, 0, sizeof *out);
  if (n_numbers == 0 || !numbers)
    return r1d_fail(err, R1D_EINVAL, "countdown: no numbers given");
  if (n_numbers > CD_MAX_NUMBERS)
    return r1d_fail(err, R1D_EINVAL, "countdown: %zu numbers (at most %d)",
                    n_numbers, CD_MAX_NUMBERS);
  if (!answer) answer = "";
  const char *src;
  size_t src_len;
  pick_expression(answer, strlen(answer), &src, &src_len);
  cd_parser *p = calloc(1, sizeof *p);
  char *buf = malloc(CD_MAX_LEN + 1);
  if (!p || !buf) {
    free(p);
    free(buf);
    return r1d_fail(err, R1D_ENOMEM, "countdown: out of memory");
  }
  long len = clean_expr(src, src_len, buf);
  if (len < 0) {
    verdict(out, 0, "countdown: expression longer than %d bytes", CD_MAX_LEN);
    goto done;
  }
  if (len == 0) {
    verdict(out, 0, "countdown: no expression found");
    goto done;
  }
  /* expr, expr =, expr = N, N = expr */
  char *eq = memchr(buf, '=', (size_t)len), *expr = buf;
  size_t expr_len = (size_t)len;
  if (eq) {
    if (memchr(eq + 1, '=', (size_t)(buf + len - eq - 1))) {
      verdict(out, 0, "countdown: more than one '=' in %.80s", buf);
      goto done;
    }
    const char *lhs = buf, *rhs = eq + 1;
    size_t lhs_len = (size_t)(eq - buf), rhs_len = (size_t)(buf + len - rhs);
    int64_t stated = 0;
    if (int_literal(rhs, rhs_len, &stated) || rhs_len == 0) {
      expr_len = lhs_len;
    } else if (int_literal(lhs, lhs_len, &stated)) {
      expr = eq + 1;
      expr_len = rhs_len;
    } else {
      verdict(out, 0, "countdown: neither side of '=' is a number: %.80s", buf);
      goto done;
    }
    if (rhs_len > 0 && stated != target) {
      verdict(out, 0, "countdown: states %lld, target %lld", (long long)stated,
              (long long)target);
      goto done;
    }
  }
  p->s = expr;
  p->n = expr_len;
  r1d_rat r = parse_expr(p);
  if (!p->fail && p->i < p->n) unexpected(p);
  if (p->fail) {
    verdict(out, 0, "countdown: %s in %.80s", p->fail, buf);
    goto done;
  }
  char why[96];
  if (!match_numbers(p, numbers, n_numbers, why, sizeof why)) {
    verdict(out, 0, "countdown: %.80s %s", buf, why);
    goto done;
  }
  if (r.q != 1 || r.p != target) {
    if (r.q == 1)
      verdict(out, 0, "countdown: %.60s = %lld, target %lld", buf,
              (long long)r.p, (long long)target);
    else
      verdict(out, 0, "countdown: %.60s = %lld/%lld, target %lld", buf,
              (long long)r.p, (long long)r.q, (long long)target);
    goto done;
  }
  verdict(out, 1, "countdown: %.80s = %lld", buf, (long long)target);
done:
  free(p);
  free(buf);
  return 0;
}
