/* text.c - the exact and regex checkers, and the dispatcher that reads a
 * task's checker JSON (verify.h) and calls the checker its "type" names.
 *
 * Exact compares bytes; only when asked to ignore case are both sides case
 * folded and NFC-composed with utf8proc, so "Straße" matches "STRASSE";
 * text that is not valid UTF-8 then falls back to ASCII case folding
 * rather than failing. Strip removes Unicode white space (Zs, and tab, CR,
 * LF, VT, FF, NEL, U+2028/9) at both ends.
 *
 * Regex runs with PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, so an answer with
 * bad UTF-8 is matched (the bad bytes match nothing) instead of raising an
 * error, and with match, depth and heap limits, so a pathological pattern
 * against a long answer ends as "no match" with a detail instead of
 * running for minutes. */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <inttypes.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "../../common/utf8.h"
#include "verify.h"

enum {
  REGEX_MATCH_LIMIT = 5000000,
  REGEX_DEPTH_LIMIT = 100000,
  REGEX_HEAP_LIMIT_KIB = 64 * 1024,
  CHECKER_MAX_NUMBERS = 64,
};

/* ---- exact ----------------------------------------------------------- */

static int is_ws(uint32_t cp) {
  if (cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0x85 || cp == 0x2028 ||
      cp == 0x2029)
    return 1;
  return cp > 0x7F &&
         utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_ZS;
}

/* Trims white space from both ends of s[0..*n): advances *s, shrinks *n. */
static void strip_ws(const char **s, size_t *n) {
  const unsigned char *p = (const unsigned char *)*s;
  size_t a = 0, b = *n;
  while (a < b) {
    uint32_t cp;
    int l = r1d_utf8_decode(p + a, b - a, &cp);
    if (l == 0 || !is_ws(cp)) break;
    a += (size_t)l;
  }
  while (b > a) {
    size_t k = b - 1; /* back to the start of the last character */
    while (k > a && b - k < 4 && (p[k] & 0xC0) == 0x80)
      k--;
    uint32_t cp;
    int l = r1d_utf8_decode(p + k, b - k, &cp);
    if (l == 0 || (size_t)l != b - k || !is_ws(cp)) break;
    b = k;
  }
  *s += a;
  *n = b - a;
}

static char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Case-insensitive equality: utf8proc case folding + NFC, or ASCII folding
 * when either side is not valid UTF-8. -1 on out of memory. */
static int fold_equal(const char *a, size_t an, const char *b, size_t bn) {
  const utf8proc_option_t opt =
      UTF8PROC_CASEFOLD | UTF8PROC_STABLE | UTF8PROC_COMPOSE;
  utf8proc_uint8_t *fa = NULL, *fb = NULL;
  utf8proc_ssize_t la =
      utf8proc_map((const utf8proc_uint8_t *)a, (utf8proc_ssize_t)an, &fa, opt);
  utf8proc_ssize_t lb = la < 0 ? UTF8PROC_ERROR_INVALIDUTF8
                               : utf8proc_map((const utf8proc_uint8_t *)b,
                                              (utf8proc_ssize_t)bn, &fb, opt);
  int eq;
  if (la == UTF8PROC_ERROR_NOMEM || lb == UTF8PROC_ERROR_NOMEM) {
    eq = -1;
  } else if (la >= 0 && lb >= 0) {
    eq = la == lb && memcmp(fa, fb, (size_t)la) == 0;
  } else {
    eq = an == bn;
    for (size_t i = 0; eq && i < an; i++)
      eq = ascii_lower(a[i]) == ascii_lower(b[i]);
  }
  free(fa);
  free(fb);
  return eq;
}

int r1d_verify_exact(const char *answer, const char *expected,
                     int case_sensitive, int strip, r1d_verdict *out,
                     r1d_error *err) {
  if (!out) return r1d_fail(err, R1D_EINVAL, "exact: no verdict to fill");
  memset(out, 0, sizeof *out);
  if (!expected) return r1d_fail(err, R1D_EINVAL, "exact: no expected answer");
  if (!answer) answer = "";
  const char *a = answer, *e = expected;
  size_t an = strlen(a), en = strlen(e);
  if (strip) {
    strip_ws(&a, &an);
    strip_ws(&e, &en);
  }
  int eq;
  if (case_sensitive) {
    eq = an == en && memcmp(a, e, an) == 0;
  } else {
    eq = fold_equal(a, an, e, en);
    if (eq < 0) return r1d_fail(err, R1D_ENOMEM, "exact: out of memory");
  }
  out->correct = eq;
  out->score = eq ? 1.0 : 0.0;
  snprintf(out->detail, sizeof out->detail, "exact%s: \"%.*s\" %s \"%.*s\"",
           case_sensitive ? "" : " (any case)", (int)(an < 60 ? an : 60), a,
           eq ? "==" : "!=", (int)(en < 60 ? en : 60), e);
  return 0;
}

/* ---- regex ----------------------------------------------------------- */

int r1d_verify_regex(const char *answer, const char *pattern, const char *flags,
                     r1d_verdict *out, r1d_error *err) {
  if (!out) return r1d_fail(err, R1D_EINVAL, "regex: no verdict to fill");
  memset(out, 0, sizeof *out);
  if (!pattern) return r1d_fail(err, R1D_EINVAL, "regex: no pattern");
  if (!answer) answer = "";
  uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
  for (const char *f = flags ? flags : ""; *f; f++) {
    switch (*f) {
    case 'i': opts |= PCRE2_CASELESS; break;
    case 'm': opts |= PCRE2_MULTILINE; break;
    case 's': opts |= PCRE2_DOTALL; break;
    case 'x': opts |= PCRE2_EXTENDED; break;
    default:
      return r1d_fail(
          err, R1D_EINVAL, "regex: unknown flag '%c' (expected i, m, s, x)",
          (unsigned char)*f >= 0x20 && (unsigned char)*f < 0x7F ? *f : '?');
    }
  }
  int ec;
  PCRE2_SIZE eo;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                 opts, &ec, &eo, NULL);
  if (!re) {
    PCRE2_UCHAR text[160];
    pcre2_get_error_message(ec, text, sizeof text);
    return r1d_fail(err, R1D_EINVAL, "regex: bad pattern at offset %zu: %s",
                    (size_t)eo, (char *)text);
  }
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
  pcre2_match_context *mc = pcre2_match_context_create(NULL);
  if (!md || !mc) {
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    pcre2_code_free(re);
    return r1d_fail(err, R1D_ENOMEM, "regex: out of memory");
  }
  pcre2_set_match_limit(mc, REGEX_MATCH_LIMIT);
  pcre2_set_depth_limit(mc, REGEX_DEPTH_LIMIT);
  pcre2_set_heap_limit(mc, REGEX_HEAP_LIMIT_KIB);
  int rc = pcre2_match(re, (PCRE2_SPTR)answer, strlen(answer), 0, 0, md, mc);
  if (rc >= 0) {
    out->correct = 1;
    out->score = 1.0;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t at = (size_t)ov[0], len = (size_t)(ov[1] - ov[0]);
    snprintf(out->detail, sizeof out->detail, "regex: matched \"%.*s\" at %zu",
             (int)(len < 60 ? len : 60), answer + at, at);
  } else if (rc == PCRE2_ERROR_NOMATCH) {
    snprintf(out->detail, sizeof out->detail, "regex: /%.80s/%.8s: no match",
             pattern, flags ? flags : "");
  } else {
    PCRE2_UCHAR text[100];
    pcre2_get_error_message(rc, text, sizeof text);
    snprintf(out->detail, sizeof out->detail, "regex: no match (%s)",
             (char *)text);
  }
  pcre2_match_data_free(md);
  pcre2_match_context_free(mc);
  pcre2_code_free(re);
  return 0;
}

/* ---- the dispatcher -------------------------------------------------- */

/* An optional boolean field: *v keeps its default when absent. */
static int opt_bool(const json_t *c, const char *name, int *v, r1d_error *err) {
  const json_t *x = json_object_get(c, name);
  if (!x) return 0;
  if (!json_is_boolean(x))
    return r1d_fail(err, R1D_EINVAL, "checker.%s must be true or false", name);
  *v = json_is_true(x);
  return 0;
}

static int need_string(const json_t *c, const char *name, const char **v,
                       r1d_error *err) {
  const json_t *x = json_object_get(c, name);
  if (!json_is_string(x))
    return r1d_fail(err, R1D_EINVAL, "checker.%s must be a string%s", name,
                    x ? "" : " (missing)");
  *v = json_string_value(x);
  return 0;
}

static int check_math(const json_t *c, const char *answer, r1d_verdict *out,
                      r1d_error *err) {
  const json_t *a = json_object_get(c, "answer"),
               *tol = json_object_get(c, "tolerance");
  char num[64];
  const char *expected;
  if (json_is_string(a)) {
    expected = json_string_value(a);
  } else if (json_is_integer(a)) {
    snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(a));
    expected = num;
  } else if (json_is_real(a)) {
    snprintf(num, sizeof num, "%.17g", json_real_value(a));
    expected = num;
  } else {
    return r1d_fail(err, R1D_EINVAL,
                    "checker.answer must be a string or a number%s",
                    a ? "" : " (missing)");
  }
  double t = 0;
  if (tol) {
    if (!json_is_number(tol) || !(json_number_value(tol) >= 0))
      return r1d_fail(err, R1D_EINVAL,
                      "checker.tolerance must be a number >= 0");
    t = json_number_value(tol);
  }
  return r1d_verify_math(answer, expected, t, out, err);
}

static int check_countdown(const json_t *c, const char *answer,
                           r1d_verdict *out, r1d_error *err) {
  const json_t *nums = json_object_get(c, "numbers"),
               *target = json_object_get(c, "target");
  size_t n = json_array_size(nums);
  if (!json_is_array(nums) || n == 0 || n > CHECKER_MAX_NUMBERS)
    return r1d_fail(err, R1D_EINVAL,
                    "checker.numbers must be a list of 1 to %d integers",
                    CHECKER_MAX_NUMBERS);
  int64_t v[CHECKER_MAX_NUMBERS];
  for (size_t i = 0; i < n; i++) {
    const json_t *x = json_array_get(nums, i);
    if (!json_is_integer(x))
      return r1d_fail(err, R1D_EINVAL,
                      "checker.numbers[%zu] must be an integer", i);
    v[i] = (int64_t)json_integer_value(x);
  }
  if (!json_is_integer(target))
    return r1d_fail(err, R1D_EINVAL, "checker.target must be an integer");
  return r1d_verify_countdown(answer, v, n, (int64_t)json_integer_value(target),
                              out, err);
}

int r1d_verify_checker(const json_t *checker, const char *answer,
                       r1d_verdict *out, r1d_error *err) {
  if (!out) return r1d_fail(err, R1D_EINVAL, "checker: no verdict to fill");
  memset(out, 0, sizeof *out);
  if (!json_is_object(checker))
    return r1d_fail(err, R1D_EINVAL, "checker must be an object");
  const char *type = NULL;
  int rc = need_string(checker, "type", &type, err);
  if (rc) return rc;
  if (!answer) answer = "";
  if (strcmp(type, "math") == 0) return check_math(checker, answer, out, err);
  if (strcmp(type, "countdown") == 0)
    return check_countdown(checker, answer, out, err);
  if (strcmp(type, "exact") == 0) {
    const char *expected = NULL;
    int cs = 1, strip = 1;
    if ((rc = need_string(checker, "answer", &expected, err)) ||
        (rc = opt_bool(checker, "case_sensitive", &cs, err)) ||
        (rc = opt_bool(checker, "strip", &strip, err)))
      return rc;
    return r1d_verify_exact(answer, expected, cs, strip, out, err);
  }
  if (strcmp(type, "regex") == 0) {
    const char *pattern = NULL, *flags = "";
    if ((rc = need_string(checker, "pattern", &pattern, err))) return rc;
    if (json_object_get(checker, "flags") &&
        (rc = need_string(checker, "flags", &flags, err)))
      return rc;
    return r1d_verify_regex(answer, pattern, flags, out, err);
  }
  if (strcmp(type, "code") == 0)
    return r1d_verify_code(answer, checker, out, err);
  return r1d_fail(err, R1D_EINVAL,
                  "checker.type \"%.32s\" is unknown (expected math, "
                  "countdown, exact, regex, code)",
                  type);
}
