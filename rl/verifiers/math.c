/* math.c - the math checker (verify.h): is the answer's final result equal
 * to the expected one? Models write the same number in many ways (1,234,
 * $1\,234$, \dfrac12, 0.5, 50\%, 12 \text{ cm}), so both sides go through one
 * normalisation and are then compared as numbers where they parse as
 * numbers, else as strings; a reward that depends on formatting would teach
 * formatting, not mathematics.
 *
 * The rules, in order:
 *  - Candidate: the last complete \boxed{...} / \fbox{...} / `\boxed 5`.
 *    Without one: the whole answer, and if that is not equal, the last
 *    white-space separated word that parses as a number (or, when the
 *    expected answer is not numeric, the last word), trailing punctuation
 *    and markdown `*` removed.
 *  - Normalisation (text): white space, `$`, `\$`, `\left`, `\right`,
 *    `\big...`, `\!`, `\,`, `\;`, `\:`, `\quad`, `\displaystyle`, degrees
 *    (`^\circ`, `°`), `{,}` removed; `\text{..}`, `\mathrm{..}`, `\mbox{..}`
 *    and friends replaced by their content; `\dfrac`, `\tfrac` -> `\frac`;
 *    U+2212 -> `-`; trailing `.` dropped; `x=5` (left side of at most 2
 *    characters) -> `5`.
 *  - Numbers: signs, decimals (.5, 5., 1e3), `\frac{a}{b}`, `\frac12`,
 *    `a/b`, nested and negative; a trailing `%` or simple unit word (cm,
 *    kg, dollars, hours, ...) is dropped, so 50% equals 50 (not 0.5).
 *    Thousands separators: a comma is one when the number's digits read
 *    d{1,3}(,ddd)+ (first group without a leading 0) and no digit follows
 *    the last group: 1,234 and 12,345,678.9 are numbers, 1,2 and 1,2345 are
 *    tuples. `1\,234` and `1{,}234` lose the separator in normalisation.
 *    Numbers longer than 500 characters compare as strings.
 *  - Comparison: two exact rationals (int64 numerator/denominator) are
 *    equal when equal (3/6 = 1/2 = 0.5); with a tolerance > 0 also when
 *    within it. Otherwise (a value too big for int64) doubles compare with
 *    relative tolerance `tolerance`, or 1e-6 when it is 0, and an absolute
 *    floor of 1e-9.
 *  - Tuples, sets and intervals: `(a,b)`, `[a,b]`, `\{a,b\}` or a bare
 *    `a,b`; element by element in order; the brackets must be the same
 *    unless one side is bare. Non-numeric elements compare as normalised
 *    strings, case sensitive. No symbolic algebra: \frac{\pi}{2} is not
 *    \pi/2. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/buf.h"
#include "verifiers_internal.h"
#include "verify.h"

enum {
  NORM_MAX_DEPTH = 32,  /* nesting of \text{} and \frac{} arguments */
  MAX_ELEMS = 64,       /* elements of one tuple */
  NUM_MAX_CHARS = 500,  /* longer numbers compare as strings */
  BOXED_MAX_TRIES = 256 /* unclosed \boxed{ tried from the end */
};

static const double ABS_FLOOR = 1e-9, DEFAULT_REL = 1e-6;

/* ---- extraction ------------------------------------------------------ */

static int is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(char c) {
  return c >= '0' && c <= '9';
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

/* The closing brace matching s[open] == '{' within s[0..n), or n. */
static size_t match_brace(const char *s, size_t n, size_t open) {
  int depth = 0;
  for (size_t i = open; i < n; i++) {
    if (s[i] == '\\' && i + 1 < n && (s[i + 1] == '{' || s[i + 1] == '}')) {
      i++;
      continue;
    }
    if (s[i] == '{') depth++;
    if (s[i] == '}' && --depth == 0) return i;
  }
  return n;
}

/* Whether a command named `name` starts at s[i] == '\\', not followed by a
 * letter (\boxed, not \boxedx); sets *end after the name. */
static int cmd_at(const char *s, size_t n, size_t i, const char *name,
                  size_t *end) {
  size_t l = strlen(name);
  if (i + 1 + l > n || memcmp(s + i + 1, name, l) != 0) return 0;
  if (i + 1 + l < n && is_alpha(s[i + 1 + l])) return 0;
  *end = i + 1 + l;
  return 1;
}

int r1d_last_boxed(const char *s, size_t n, const char **at, size_t *len) {
  int tries = 0;
  for (size_t i = n; i-- > 0;) {
    size_t k;
    if (s[i] != '\\' ||
        !(cmd_at(s, n, i, "boxed", &k) || cmd_at(s, n, i, "fbox", &k)))
      continue;
    if (++tries > BOXED_MAX_TRIES) return 0;
    while (k < n && is_space(s[k]))
      k++;
    if (k < n && s[k] == '{') {
      size_t close = match_brace(s, n, k);
      if (close == n) continue; /* unclosed: an earlier one may count */
      *at = s + k + 1;
      *len = close - k - 1;
      return 1;
    }
    size_t e = k;
    while (e < n && !is_space(s[e]) && s[e] != '$')
      e++;
    if (e == k) continue;
    *at = s + k;
    *len = e - k;
    return 1;
  }
  return 0;
}

/* ---- normalisation --------------------------------------------------- */

static int in_list(const char *s, size_t l, const char *const *names) {
  for (size_t i = 0; names[i]; i++)
    if (strlen(names[i]) == l && memcmp(names[i], s, l) == 0) return 1;
  return 0;
}

/* Commands that only space or size things. */
static const char *const dropped_cmds[] = {
    "left",      "right",    "big",          "Big",       "bigg",  "Bigg",
    "bigl",      "bigr",     "Bigl",         "Bigr",      "biggl", "biggr",
    "Biggl",     "Biggr",    "displaystyle", "textstyle", "quad",  "qquad",
    "circ",      "degree",   "degrees",      "limits",    "hfill", "enspace",
    "thinspace", "medspace", "thickspace",   NULL};

/* Commands whose braced argument is plain text to keep. */
static const char *const text_cmds[] = {
    "text",   "textbf", "textrm", "textit", "textnormal", "textsf",
    "texttt", "mathrm", "mathbf", "mathit", "mathsf",     "mbox",
    "hbox",   "boxed",  "fbox",   NULL};

static int put(r1d_buf *o, const char *s, size_t n) {
  return r1d_buf_append(o, s, n);
}

/* Appends the normalised text of s[0..n) to o (see the top of the file). */
static int normalise_into(const char *s, size_t n, r1d_buf *o, int depth) {
  if (depth > NORM_MAX_DEPTH) return put(o, s, n);
  size_t i = 0;
  int rc = 0;
  while (i < n && !rc) {
    const unsigned char *u = (const unsigned char *)s + i;
    size_t left = n - i;
    char c = s[i];
    if (is_space(c) || c == '$') {
      i++;
    } else if (left >= 2 && u[0] == 0xC2 && (u[1] == 0xA0 || u[1] == 0xB0)) {
      i += 2; /* no-break space, degree sign */
    } else if (left >= 3 && u[0] == 0xE2 && u[1] == 0x88 && u[2] == 0x92) {
      rc = put(o, "-", 1); /* U+2212 minus */
      i += 3;
    } else if (left >= 3 && u[0] == 0xE2 && u[1] == 0x80 &&
               (u[2] == 0x89 || u[2] == 0xAF || u[2] == 0x8A)) {
      i += 3; /* thin, narrow no-break and hair spaces */
    } else if (left >= 3 && c == '{' && s[i + 1] == ',' && s[i + 2] == '}') {
      i += 3; /* 1{,}234 */
    } else if (c == '^' && left >= 6 && memcmp(s + i, "^\\circ", 6) == 0 &&
               (left == 6 || !is_alpha(s[i + 6]))) {
      i += 6;
    } else if (c == '^' && left >= 8 && memcmp(s + i, "^{\\circ}", 8) == 0) {
      i += 8;
    } else if (c == '\\') {
      size_t j = i + 1;
      if (j >= n) break; /* a lone trailing backslash */
      if (!is_alpha(s[j])) {
        char d = s[j];
        if (d == ',' || d == '!' || d == ';' || d == ':' || d == '$' ||
            is_space(d))
          ; /* spacing, or an escaped dollar */
        else if (d == '%')
          rc = put(o, "%", 1);
        else
          rc = put(o, s + i, 2); /* \{ \} \\ ... */
        i = j + 1;
        continue;
      }
      while (j < n && is_alpha(s[j]))
        j++;
      const char *name = s + i + 1;
      size_t l = j - i - 1;
      if (in_list(name, l, dropped_cmds)) {
        /* \left. and \right. are invisible delimiters */
        if ((l == 4 || l == 5) &&
            (memcmp(name, "left", 4) == 0 || memcmp(name, "right", 5) == 0)) {
          if (j < n && s[j] == '.') j++;
        }
        i = j;
      } else if ((l == 5 && (memcmp(name, "dfrac", 5) == 0 ||
                             memcmp(name, "tfrac", 5) == 0))) {
        rc = put(o, "\\frac", 5);
        i = j;
      } else if (in_list(name, l, text_cmds)) {
        size_t k = j;
        while (k < n && is_space(s[k]))
          k++;
        if (k < n && s[k] == '{') {
          size_t close = match_brace(s, n, k);
          rc = normalise_into(s + k + 1, (close == n ? n : close) - k - 1, o,
                              depth + 1);
          i = close == n ? n : close + 1;
        } else {
          i = j;
        }
      } else {
        rc = put(o, s + i, j - i);
        i = j;
      }
    } else {
      rc = put(o, s + i, 1);
      i++;
    }
  }
  return rc;
}

/* The normalised text of s[0..n) in o (o->n reset first), NUL-terminated. */
static int normalise(const char *s, size_t n, r1d_buf *o) {
  o->n = 0;
  int rc = normalise_into(s, n, o, 0);
  if (!rc) rc = r1d_buf_reserve(o, 1);
  if (rc) return rc;
  while (o->n > 0 && o->p[o->n - 1] == '.')
    o->n--;
  /* `x=5`, `k=-1`: a short left side names the unknown */
  size_t eq = o->n;
  while (eq > 0 && o->p[eq - 1] != '=')
    eq--;
  if (eq > 0 && eq - 1 <= 2 && eq < o->n) r1d_buf_consume(o, eq);
  o->p[o->n] = '\0';
  return 0;
}

/* ---- numbers --------------------------------------------------------- */

typedef struct mnum {
  int exact; /* r holds the value exactly */
  r1d_rat r;
  double d; /* always set */
} mnum;

/* Whether the ',' at s[k] is a thousands separator (the top of the file). */
static int sep_comma(const char *s, size_t n, size_t k) {
  if (k + 3 >= n || !is_digit(s[k + 1]) || !is_digit(s[k + 2]) ||
      !is_digit(s[k + 3]))
    return 0;
  if (k + 4 < n && is_digit(s[k + 4])) return 0;
  size_t j = k;
  for (;;) {
    size_t d = 0;
    while (d < j && is_digit(s[j - 1 - d]))
      d++;
    size_t start = j - d;
    if (d == 3 && start > 0 && s[start - 1] == ',') {
      j = start - 1;
      continue;
    }
    if (d < 1 || d > 3 || s[start] == '0') return 0;
    if (start > 0 && s[start - 1] == '.') return 0;
    return 1;
  }
}

/* Parses an unsigned decimal at s[*i..n): digits (with separators), an
 * optional fraction and exponent. 1 on success, *i past it. */
static int parse_decimal(const char *s, size_t n, size_t *i, mnum *out) {
  char clean[NUM_MAX_CHARS + 16];
  size_t c = 0, k = *i, ndig = 0;
  int64_t p = 0, q = 1;
  int exact = 1;
  while (k < n && (is_digit(s[k]) || (s[k] == ',' && sep_comma(s, n, k)))) {
    if (s[k] != ',') {
      if (c >= NUM_MAX_CHARS) return 0;
      clean[c++] = s[k];
      ndig++;
      if (exact && (__builtin_mul_overflow(p, 10, &p) ||
                    __builtin_add_overflow(p, s[k] - '0', &p)))
        exact = 0;
    }
    k++;
  }
  if (k < n && s[k] == '.' && (ndig > 0 || (k + 1 < n && is_digit(s[k + 1])))) {
    clean[c++] = '.';
    k++;
    while (k < n && is_digit(s[k])) {
      if (c >= NUM_MAX_CHARS) return 0;
      clean[c++] = s[k];
      ndig++;
      if (exact && (__builtin_mul_overflow(p, 10, &p) ||
                    __builtin_add_overflow(p, s[k] - '0', &p) ||
                    __builtin_mul_overflow(q, 10, &q)))
        exact = 0;
      k++;
    }
  }
  if (ndig == 0) return 0;
  if (k + 1 < n && (s[k] == 'e' || s[k] == 'E') &&
      (is_digit(s[k + 1]) || ((s[k + 1] == '-' || s[k + 1] == '+') &&
                              k + 2 < n && is_digit(s[k + 2])))) {
    clean[c++] = 'e';
    k++;
    int neg = s[k] == '-';
    if (s[k] == '-' || s[k] == '+') clean[c++] = s[k++];
    long e = 0;
    while (k < n && is_digit(s[k])) {
      if (c >= NUM_MAX_CHARS) return 0;
      clean[c++] = s[k];
      if (e < 100000) e = e * 10 + (s[k] - '0');
      k++;
    }
    for (long t = 0; exact && t < e; t++)
      if (__builtin_mul_overflow(neg ? q : p, 10, neg ? &q : &p)) exact = 0;
  }
  clean[c] = '\0';
  out->d = strtod(clean, NULL);
  out->exact = exact && r1d_rat_make(p, q, &out->r) == R1D_RAT_OK;
  *i = k;
  return 1;
}

static void num_neg(mnum *x) {
  x->r.p = -x->r.p; /* never INT64_MIN */
  x->d = -x->d;
}

/* x / y into out; 0 when y is zero (not a number). */
static int num_div(mnum x, mnum y, mnum *out) {
  if (y.exact ? y.r.p == 0 : y.d == 0) return 0;
  out->d = x.d / y.d;
  out->exact = x.exact && y.exact && r1d_rat_div(x.r, y.r, &out->r) == 0;
  return 1;
}

static const char *const units[] = {
    "cm",      "mm",      "m",      "km",      "kg",     "g",      "mg",
    "lb",      "lbs",     "pounds", "pound",   "oz",     "ounces", "s",
    "sec",     "secs",    "second", "seconds", "min",    "mins",   "minute",
    "minutes", "h",       "hr",     "hrs",     "hour",   "hours",  "day",
    "days",    "week",    "weeks",  "month",   "months", "year",   "years",
    "dollar",  "dollars", "cent",   "cents",   "unit",   "units",  "degree",
    "degrees", "inch",    "inches", "foot",    "feet",   "ft",     "meter",
    "meters",  "metre",   "metres", "mile",    "miles",  "mph",    "km/h",
    "l",       "L",       "ml",     "mL",      "liter",  "liters", "litre",
    "litres",  "percent", "sq",     "yd",      "yards",  "yard",   "points",
    NULL};

/* Whether s[0..n) is a unit word, optionally squared or cubed. */
static int is_unit(const char *s, size_t n) {
  size_t l = n;
  if (l >= 2 && s[l - 2] == '^' && (s[l - 1] == '2' || s[l - 1] == '3'))
    l -= 2;
  else if (l >= 4 && memcmp(s + l - 4, "^{", 2) == 0 && s[l - 1] == '}' &&
           (s[l - 2] == '2' || s[l - 2] == '3'))
    l -= 4;
  return l > 0 && in_list(s, l, units);
}

static int parse_scalar(const char *s, size_t n, mnum *out, int depth);

/* One \frac argument at s[*i]: {scalar} or a single digit. */
static int frac_arg(const char *s, size_t n, size_t *i, mnum *out, int depth) {
  if (*i >= n) return 0;
  if (is_digit(s[*i])) {
    *out = (mnum){1, {s[*i] - '0', 1}, s[*i] - '0'};
    (*i)++;
    return 1;
  }
  if (s[*i] != '{') return 0;
  size_t close = match_brace(s, n, *i);
  if (close == n) return 0;
  if (!parse_scalar(s + *i + 1, close - *i - 1, out, depth + 1)) return 0;
  *i = close + 1;
  return 1;
}

/* A whole scalar s[0..n): signs, then \frac{a}{b} or a decimal with an
 * optional /decimal, then an optional % or unit. 1 when all of it parsed. */
static int parse_scalar(const char *s, size_t n, mnum *out, int depth) {
  if (depth > NORM_MAX_DEPTH) return 0;
  size_t i = 0;
  int neg = 0;
  while (i < n && (s[i] == '+' || s[i] == '-')) {
    neg ^= s[i] == '-';
    i++;
  }
  mnum x;
  if (i + 5 <= n && memcmp(s + i, "\\frac", 5) == 0) {
    i += 5;
    mnum a, b;
    if (!frac_arg(s, n, &i, &a, depth) || !frac_arg(s, n, &i, &b, depth) ||
        !num_div(a, b, &x))
      return 0;
  } else {
    if (!parse_decimal(s, n, &i, &x)) return 0;
    if (i < n && s[i] == '/') {
      size_t k = i + 1;
      int dneg = 0;
      if (k < n && s[k] == '-') {
        dneg = 1;
        k++;
      }
      mnum y;
      if (!parse_decimal(s, n, &k, &y)) return 0;
      if (dneg) num_neg(&y);
      if (!num_div(x, y, &x)) return 0;
      i = k;
    }
  }
  if (i < n && s[i] == '%')
    i++;
  else if (i < n && is_unit(s + i, n - i))
    i = n;
  if (i != n) return 0;
  if (neg) num_neg(&x);
  *out = x;
  return 1;
}

/* ---- values: a scalar, or a tuple of elements ------------------------ */

typedef struct elem {
  int numeric;
  mnum v;
  const char *s; /* the element's normalised text */
  size_t n;
} elem;

typedef struct value {
  char open, close; /* 0 for a bare list or a single element */
  size_t n;
  elem e[MAX_ELEMS];
} value;

static int is_open(char c) {
  return c == '(' || c == '[' || c == '{';
}

static int is_close(char c) {
  return c == ')' || c == ']' || c == '}';
}

/* Where the bracket opened at s[0] closes, any bracket kind counting (so
 * half-open intervals work); n when it does not. */
static size_t match_any(const char *s, size_t n) {
  int depth = 0;
  for (size_t i = 0; i < n; i++) {
    if (is_open(s[i])) depth++;
    if (is_close(s[i]) && --depth == 0) return i;
  }
  return n;
}

static void parse_elem(const char *s, size_t n, elem *e) {
  e->s = s;
  e->n = n;
  e->numeric = parse_scalar(s, n, &e->v, 0);
}

/* Parses the normalised text s (NUL-terminated, n bytes) into v. */
static void parse_value(const char *s, size_t n, value *v) {
  v->open = v->close = 0;
  v->n = 0;
  size_t a = 0, b = n;
  /* \{1,2\} (a set) or (1,2], [1,2], (1,2): brackets around the whole */
  if (n >= 4 && s[0] == '\\' && s[1] == '{' && s[n - 2] == '\\' &&
      s[n - 1] == '}' && match_any(s + 1, n - 1) + 1 == n - 1) {
    v->open = v->close = '{';
    a = 2;
    b = n - 2;
  } else if (n >= 2 && (s[0] == '(' || s[0] == '[') &&
             (s[n - 1] == ')' || s[n - 1] == ']') && match_any(s, n) == n - 1) {
    v->open = s[0];
    v->close = s[n - 1];
    a = 1;
    b = n - 1;
  }
  int depth = 0;
  size_t start = a;
  for (size_t i = a; i <= b; i++) {
    if (i < b && is_open(s[i])) depth++;
    if (i < b && is_close(s[i])) depth--;
    if (i == b || (depth == 0 && s[i] == ',' && !sep_comma(s, b, i))) {
      if (v->n == MAX_ELEMS) { /* too many: the whole text as one string */
        v->open = v->close = 0;
        v->n = 1;
        v->e[0] = (elem){0, {0, {0, 1}, 0}, s, n};
        return;
      }
      parse_elem(s + start, i - start, &v->e[v->n++]);
      start = i + 1;
    }
  }
  if (v->n == 1 && v->open) {
    /* (5) is 5; but keep "(x)" text as it was */
    if (!v->e[0].numeric) v->e[0] = (elem){0, {0, {0, 1}, 0}, s, n};
    v->open = v->close = 0;
  }
}

static int all_numeric(const value *v) {
  for (size_t i = 0; i < v->n; i++)
    if (!v->e[i].numeric) return 0;
  return v->n > 0;
}

static int num_equal(const mnum *a, const mnum *b, double tol) {
  if (a->exact && b->exact) {
    if (a->r.p == b->r.p && a->r.q == b->r.q) return 1;
    if (tol <= 0) return 0;
  }
  double rel = tol > 0 ? tol : DEFAULT_REL;
  if (isnan(a->d) || isnan(b->d)) return 0;
  if (isinf(a->d) || isinf(b->d)) return a->d == b->d;
  double diff = fabs(a->d - b->d);
  double scale = fmax(fabs(a->d), fabs(b->d));
  return diff <= fmax(rel * scale, ABS_FLOOR);
}

static int value_equal(const value *a, const value *b, double tol) {
  if (a->n != b->n || a->n == 0) return 0;
  if (a->n > 1 && a->open && b->open &&
      (a->open != b->open || a->close != b->close))
    return 0;
  for (size_t i = 0; i < a->n; i++) {
    const elem *x = &a->e[i], *y = &b->e[i];
    if (x->numeric != y->numeric) return 0;
    if (x->numeric ? !num_equal(&x->v, &y->v, tol)
                   : (x->n != y->n || memcmp(x->s, y->s, x->n) != 0))
      return 0;
  }
  return 1;
}

/* ---- the checker ----------------------------------------------------- */

typedef struct math_ctx {
  r1d_buf exp_text, cand_text;
  value exp, cand;
  double tol;
} math_ctx;

/* Normalises and compares s[0..n) with the expected value; -1 on OOM. */
static int try_candidate(math_ctx *m, const char *s, size_t n) {
  if (normalise(s, n, &m->cand_text)) return -1;
  parse_value(m->cand_text.p, m->cand_text.n, &m->cand);
  return value_equal(&m->cand, &m->exp, m->tol);
}

static const char word_trim[] = ".,;:!?*\"'`";

/* The last word of answer[0..n) that parses as a number (any word when
 * `numeric` is 0), tried against the expected value: 1/0, -1 on OOM, 2
 * when there is no such word. */
static int try_last_word(math_ctx *m, const char *s, size_t n, int numeric) {
  size_t end = n;
  while (end > 0) {
    while (end > 0 && is_space(s[end - 1]))
      end--;
    size_t start = end;
    while (start > 0 && !is_space(s[start - 1]))
      start--;
    size_t a = start, b = end;
    end = start;
    while (b > a && strchr(word_trim, s[b - 1]))
      b--;
    while (a < b && strchr(word_trim, s[a]))
      a++;
    if (a == b) continue;
    if (normalise(s + a, b - a, &m->cand_text)) return -1;
    if (m->cand_text.n == 0) continue;
    parse_value(m->cand_text.p, m->cand_text.n, &m->cand);
    if (numeric && !all_numeric(&m->cand)) continue;
    return value_equal(&m->cand, &m->exp, m->tol);
  }
  return 2;
}

static void set_detail(r1d_verdict *out, const char *how, const math_ctx *m,
                       int found) {
  if (!found) {
    snprintf(out->detail, sizeof out->detail,
             "math: no answer found, expected %.60s", m->exp_text.p);
    return;
  }
  snprintf(out->detail, sizeof out->detail, "math (%s): %.60s %s %.60s", how,
           m->cand_text.p, out->correct ? "==" : "!=", m->exp_text.p);
}

static void free_ctx(math_ctx *m) {
  r1d_buf_free(&m->exp_text);
  r1d_buf_free(&m->cand_text);
  free(m);
}

int r1d_verify_math(const char *answer, const char *expected, double tolerance,
                    r1d_verdict *out, r1d_error *err) {
  if (!out) return r1d_fail(err, R1D_EINVAL, "math: no verdict to fill");
  memset(out, 0, sizeof *out);
  if (!expected || !*expected)
    return r1d_fail(err, R1D_EINVAL, "math: the expected answer is empty");
  if (!(tolerance >= 0) || isinf(tolerance))
    return r1d_fail(err, R1D_EINVAL,
                    "math: tolerance must be a finite number >= 0");
  if (!answer) answer = "";
  math_ctx *m = calloc(1, sizeof *m);
  if (!m) return r1d_fail(err, R1D_ENOMEM, "math: out of memory");
  m->tol = tolerance;
  int rc = 0, eq = 0, found = 1;
  const char *how = "boxed";
  size_t n = strlen(answer);
  if (normalise(expected, strlen(expected), &m->exp_text)) {
    rc = -1;
    goto done;
  }
  if (m->exp_text.n == 0) {
    free_ctx(m);
    return r1d_fail(err, R1D_EINVAL,
                    "math: the expected answer \"%.60s\" is empty once "
                    "normalised",
                    expected);
  }
  parse_value(m->exp_text.p, m->exp_text.n, &m->exp);
  const char *box;
  size_t box_len;
  if (r1d_last_boxed(answer, n, &box, &box_len)) {
    eq = try_candidate(m, box, box_len);
  } else {
    how = "whole answer";
    eq = try_candidate(m, answer, n);
    if (eq == 0) {
      how = "last word";
      eq = try_last_word(m, answer, n, all_numeric(&m->exp));
      if (eq == 2) {
        eq = 0;
        found = 0;
      }
    }
  }
  if (eq < 0) {
    rc = -1;
    goto done;
  }
  out->correct = eq == 1;
  out->score = out->correct ? 1.0 : 0.0;
  set_detail(out, how, m, found);
done:
  free_ctx(m);
  if (rc) return r1d_fail(err, R1D_ENOMEM, "math: out of memory");
  return 0;
}
