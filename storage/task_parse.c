/* task_parse.c - turning input text into tasks: JSONL or one JSON object
 * read into a batch, each task validated (its id, prompt or messages,
 * checker spec with its per-type fields, a regex compiled by PCRE2 to
 * prove it valid, split, source, tags, created) and written in the
 * normalised stored form that tasks.h documents. The table (tasks.c) only
 * stores what comes out of here; keeping the two apart keeps the input
 * rules, their messages and the byte form in one place.
 *
 * Each task is validated and written out in its normalised byte form in
 * one pass over the parsed input (no second JSON tree is built), so a
 * million-line import costs one parse and one write per task. The writer
 * is our own rather than json_dumps because jansson prints reals with 17
 * digits (0.1 as 0.10000000000000001); here a real gets the shortest text
 * that reads back as the same double. A task without an id is written with
 * a fixed-width placeholder id that r1d_tasks_store overwrites in place
 * (r1d_task_set_generated_id) once the time key is known, so a retried
 * transaction just writes it again. */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "task_parse.h"

#include <inttypes.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/buf.h"
#include "tasks.h"

enum {
  MSG_MAX = sizeof(((r1d_task_error *)0)->msg),
  /* `{"id":"task-` precedes the 16 hex digits of a generated id. */
  GEN_ID_HEX_AT = 12,
  GEN_ID_LEN = 21, /* "task-" + 16 hex digits */
};

static const char gen_id_placeholder[] = "task-0000000000000000";
_Static_assert(sizeof gen_id_placeholder == GEN_ID_LEN + 1,
               "a generated id is task- and 16 hex digits");
static const char *const checker_types[] = {"math", "countdown", "exact",
                                            "regex", "code"};
enum { N_CHECKER_TYPES = 5 };
static const char checker_types_text[] = "math, countdown, exact, regex, code";

/* ---- a JSON writer with a sticky out-of-memory flag, checked once ---- */

typedef struct jw {
  r1d_buf b;
  int oom;
} jw;

static void jw_raw(jw *w, const char *s, size_t n) {
  if (!w->oom && r1d_buf_append(&w->b, s, n)) w->oom = 1;
}

static void jw_lit(jw *w, const char *s) {
  jw_raw(w, s, strlen(s));
}

/* Escapes as jansson does: '"', '\\' and control characters only, so UTF-8
 * text stays readable. */
static void jw_str(jw *w, const char *s, size_t n) {
  jw_raw(w, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    jw_raw(w, s + run, i - run);
    run = i + 1;
    char esc[8];
    switch (c) {
    case '"': jw_raw(w, "\\\"", 2); break;
    case '\\': jw_raw(w, "\\\\", 2); break;
    case '\b': jw_raw(w, "\\b", 2); break;
    case '\f': jw_raw(w, "\\f", 2); break;
    case '\n': jw_raw(w, "\\n", 2); break;
    case '\r': jw_raw(w, "\\r", 2); break;
    case '\t': jw_raw(w, "\\t", 2); break;
    default: snprintf(esc, sizeof esc, "\\u%04X", c); jw_raw(w, esc, 6);
    }
  }
  jw_raw(w, s + run, n - run);
  jw_raw(w, "\"", 1);
}

static void jw_jstr(jw *w, const json_t *s) {
  jw_str(w, json_string_value(s), json_string_length(s));
}

/* The shortest %g text that reads back as d, without an exponent below
 * 1e17. as_real: make sure it reads back as a real (jansson's rule: a '.'
 * or an exponent). Exponents lose their '+' and leading zeros, as in
 * jansson's output. */
static void real_text(double d, int as_real, char out[40]) {
  for (int p = 1; p <= 17; p++) {
    snprintf(out, 40, "%.*g", p, d);
    if (strtod(out, NULL) == d) break;
  }
  char *e = strchr(out, 'e');
  int exp10 = e ? atoi(e + 1) : 0;
  if (e && exp10 >= 0 && exp10 < 17) {
    /* %g's exponent form for 1000.0 ("1e+03"): the same digits in full */
    int p = 0;
    for (const char *c = out; c < e; c++)
      p += *c >= '0' && *c <= '9';
    snprintf(out, 40, "%.*f", p - 1 > exp10 ? p - 1 - exp10 : 0, d);
    e = NULL;
  }
  if (e) {
    char *src = e + 1, *dst = e + 1;
    if (*src == '+')
      src++;
    else if (*src == '-')
      *dst++ = *src++;
    while (*src == '0' && src[1])
      src++;
    memmove(dst, src, strlen(src) + 1);
  } else if (as_real && !strchr(out, '.')) {
    strcat(out, ".0");
  }
}

static void jw_value(jw *w, const json_t *v) {
  char num[40];
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    const char *key;
    json_t *x;
    int first = 1;
    jw_raw(w, "{", 1);
    json_object_foreach((json_t *)v, key, x) {
      if (!first) jw_raw(w, ",", 1);
      first = 0;
      jw_str(w, key, strlen(key));
      jw_raw(w, ":", 1);
      jw_value(w, x);
    }
    jw_raw(w, "}", 1);
    break;
  }
  case JSON_ARRAY:
    jw_raw(w, "[", 1);
    for (size_t i = 0; i < json_array_size(v); i++) {
      if (i) jw_raw(w, ",", 1);
      jw_value(w, json_array_get(v, i));
    }
    jw_raw(w, "]", 1);
    break;
  case JSON_STRING: jw_jstr(w, v); break;
  case JSON_INTEGER:
    snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    jw_lit(w, num);
    break;
  case JSON_REAL:
    real_text(json_real_value(v), 1, num);
    jw_lit(w, num);
    break;
  case JSON_TRUE: jw_lit(w, "true"); break;
  case JSON_FALSE: jw_lit(w, "false"); break;
  case JSON_NULL: jw_lit(w, "null"); break;
  }
}

/* `,"key":` (no comma before the first member of an object). */
static void jw_key(jw *w, const char *key) {
  if (w->b.n && w->b.p[w->b.n - 1] != '{') jw_raw(w, ",", 1);
  jw_str(w, key, strlen(key));
  jw_raw(w, ":", 1);
}

/* ---- validation: each check writes one message and returns EINVAL ---- */

static int bad(char *msg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int bad(char *msg, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, MSG_MAX, fmt, ap);
  va_end(ap);
  return R1D_EINVAL;
}

static const char *type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "a list";
  case JSON_STRING: return "a string";
  case JSON_INTEGER: return "an integer";
  case JSON_REAL: return "a real number";
  case JSON_TRUE:
  case JSON_FALSE: return "a boolean";
  case JSON_NULL: return "null";
  }
  return "?";
}

static int name_in(const char *s, const char *const *names, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(s, names[i]) == 0) return 1;
  return 0;
}

/* "a math checker", "an exact checker" */
static const char *an(const char *word) {
  return word[0] && strchr("aeiou", word[0]) ? "an" : "a";
}

/* A checker's fields come from its object or, for the `"checker": "math"`
 * form, only "answer", from the top level. */
typedef struct checker_in {
  const char *type;
  const json_t *obj;    /* NULL in the string form */
  const json_t *answer; /* the top-level answer in the string form */
} checker_in;

static const json_t *cfield(const checker_in *c, const char *name) {
  if (c->obj) return json_object_get(c->obj, name);
  return strcmp(name, "answer") == 0 ? c->answer : NULL;
}

static int check_fields(const checker_in *c, const char *const *allowed,
                        size_t n, const char *allowed_text, char *msg) {
  if (!c->obj) {
    if (c->answer && !name_in("answer", allowed, n))
      return bad(msg, "answer: %s %s checker takes no answer", an(c->type),
                 c->type);
    return 0;
  }
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)c->obj, key, v) {
    if (strcmp(key, "type") != 0 && !name_in(key, allowed, n))
      return bad(msg,
                 "checker: unknown field \"%.64s\" for %s %s checker "
                 "(expected %s)",
                 key, an(c->type), c->type, allowed_text);
  }
  return 0;
}

/* Fetches a required field, naming it as the input did. */
static int need(const checker_in *c, const char *name, const json_t **v,
                char *msg) {
  *v = cfield(c, name);
  if (*v) return 0;
  if (!c->obj)
    return bad(msg, "%s is required with \"checker\": \"%s\"", name, c->type);
  return bad(msg, "checker.%s is required for %s %s checker", name, an(c->type),
             c->type);
}

static const char *fname(const checker_in *c, const char *name, char *buf,
                         size_t n) {
  snprintf(buf, n, "%s%s", c->obj ? "checker." : "", name);
  return buf;
}

static int want_string(const checker_in *c, const char *name, const json_t *v,
                       char *msg) {
  char fn[48];
  if (json_is_string(v)) return 0;
  return bad(msg, "%s: expected a string, got %s",
             fname(c, name, fn, sizeof fn), type_name(v));
}

static int want_bool(const checker_in *c, const char *name, const json_t *v,
                     char *msg) {
  char fn[48];
  if (!v || json_is_boolean(v)) return 0;
  return bad(msg, "%s: expected true or false, got %s",
             fname(c, name, fn, sizeof fn), type_name(v));
}

static void put_opt(jw *w, const char *name, const json_t *v) {
  if (!v) return;
  jw_key(w, name);
  jw_value(w, v);
}

static int check_math(const checker_in *c, jw *w, char *msg) {
  static const char *const f[] = {"answer", "tolerance"};
  const json_t *ans, *tol = cfield(c, "tolerance");
  char fn[48];
  int rc = check_fields(c, f, 2, "answer, tolerance", msg);
  if (rc || (rc = need(c, "answer", &ans, msg))) return rc;
  if (!json_is_string(ans) && !json_is_number(ans))
    return bad(msg, "%s: expected a string or a number, got %s",
               fname(c, "answer", fn, sizeof fn), type_name(ans));
  if (json_is_string(ans) && json_string_length(ans) == 0)
    return bad(msg, "%s: must not be empty", fname(c, "answer", fn, sizeof fn));
  if (tol && !(json_is_number(tol) && json_number_value(tol) >= 0))
    return bad(msg, "checker.tolerance: expected a number >= 0, got %s",
               json_is_number(tol) ? "a negative number" : type_name(tol));
  jw_key(w, "answer");
  if (json_is_string(ans)) {
    jw_jstr(w, ans);
  } else {
    char num[40];
    if (json_is_integer(ans))
      snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
               json_integer_value(ans));
    else
      real_text(json_real_value(ans), 0, num);
    jw_str(w, num, strlen(num));
  }
  put_opt(w, "tolerance", tol);
  return 0;
}

static int check_exact(const checker_in *c, jw *w, char *msg) {
  static const char *const f[] = {"answer", "case_sensitive", "strip"};
  const json_t *ans, *cs = cfield(c, "case_sensitive"),
                     *strip = cfield(c, "strip");
  int rc = check_fields(c, f, 3, "answer, case_sensitive, strip", msg);
  if (rc || (rc = need(c, "answer", &ans, msg)) ||
      (rc = want_string(c, "answer", ans, msg)) ||
      (rc = want_bool(c, "case_sensitive", cs, msg)) ||
      (rc = want_bool(c, "strip", strip, msg)))
    return rc;
  put_opt(w, "answer", ans);
  put_opt(w, "case_sensitive", cs);
  put_opt(w, "strip", strip);
  return 0;
}

static int check_regex(const checker_in *c, jw *w, char *msg) {
  static const char *const f[] = {"pattern", "flags"};
  const json_t *pat, *flags = cfield(c, "flags");
  int rc = check_fields(c, f, 2, "pattern, flags", msg);
  if (rc || (rc = need(c, "pattern", &pat, msg)) ||
      (rc = want_string(c, "pattern", pat, msg)))
    return rc;
  uint32_t opts = PCRE2_UTF;
  if (flags) {
    if ((rc = want_string(c, "flags", flags, msg))) return rc;
    const char *s = json_string_value(flags);
    for (size_t i = 0; s[i]; i++) {
      uint32_t o = s[i] == 'i'   ? PCRE2_CASELESS
                   : s[i] == 'm' ? PCRE2_MULTILINE
                   : s[i] == 's' ? PCRE2_DOTALL
                   : s[i] == 'x' ? PCRE2_EXTENDED
                                 : 0;
      if (!o || (opts & o))
        return bad(msg,
                   "checker.flags: expected distinct letters of imsx, "
                   "got \"%.32s\"",
                   s);
      opts |= o;
    }
  }
  int ec;
  PCRE2_SIZE eo;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)json_string_value(pat),
                                 json_string_length(pat), opts, &ec, &eo, NULL);
  if (!re) {
    PCRE2_UCHAR text[160];
    pcre2_get_error_message(ec, text, sizeof text);
    return bad(msg, "checker.pattern: bad regex at offset %zu: %s", (size_t)eo,
               (char *)text);
  }
  pcre2_code_free(re);
  put_opt(w, "pattern", pat);
  put_opt(w, "flags", flags);
  return 0;
}

static int check_countdown(const checker_in *c, jw *w, char *msg) {
  static const char *const f[] = {"numbers", "target", "answer"};
  const json_t *nums, *target, *ans = cfield(c, "answer");
  int rc = check_fields(c, f, 3, "numbers, target, answer", msg);
  if (rc || (rc = need(c, "numbers", &nums, msg))) return rc;
  size_t n = json_array_size(nums);
  int ok = json_is_array(nums) && n >= 1 && n <= R1D_TASK_MAX_NUMBERS;
  for (size_t i = 0; ok && i < n; i++)
    ok = json_is_integer(json_array_get(nums, i));
  if (!ok)
    return bad(msg, "checker.numbers: expected a list of 1 to %d integers",
               R1D_TASK_MAX_NUMBERS);
  if ((rc = need(c, "target", &target, msg))) return rc;
  if (!json_is_integer(target))
    return bad(msg, "checker.target: expected an integer, got %s",
               type_name(target));
  if (ans && (rc = want_string(c, "answer", ans, msg))) return rc;
  put_opt(w, "numbers", nums);
  put_opt(w, "target", target);
  put_opt(w, "answer", ans);
  return 0;
}

static int check_code(const checker_in *c, jw *w, char *msg) {
  static const char *const f[] = {"language", "tests", "time_limit_s"};
  const json_t *tests, *lang = cfield(c, "language"),
                       *limit = cfield(c, "time_limit_s");
  int rc = check_fields(c, f, 3, "language, tests, time_limit_s", msg);
  if (rc) return rc;
  if (lang) {
    if ((rc = want_string(c, "language", lang, msg))) return rc;
    if (strcmp(json_string_value(lang), "python") != 0)
      return bad(msg,
                 "checker.language \"%.32s\" is not supported (only "
                 "python)",
                 json_string_value(lang));
  }
  if ((rc = need(c, "tests", &tests, msg))) return rc;
  if (!json_is_array(tests) || json_array_size(tests) == 0)
    return bad(msg,
               "checker.tests: expected a non-empty list of {\"input\", "
               "\"output\"}, got %s",
               json_is_array(tests) ? "an empty list" : type_name(tests));
  for (size_t i = 0; i < json_array_size(tests); i++) {
    const json_t *t = json_array_get(tests, i);
    if (!json_is_object(t))
      return bad(msg, "checker.tests[%zu]: expected an object, got %s", i,
                 type_name(t));
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)t, key, v) {
      if (strcmp(key, "input") != 0 && strcmp(key, "output") != 0)
        return bad(msg,
                   "checker.tests[%zu]: unknown field \"%.64s\" "
                   "(expected input, output)",
                   i, key);
    }
    static const char *const io[] = {"input", "output"};
    for (int k = 0; k < 2; k++) {
      v = json_object_get(t, io[k]);
      if (!v) return bad(msg, "checker.tests[%zu].%s is required", i, io[k]);
      if (!json_is_string(v))
        return bad(msg, "checker.tests[%zu].%s: expected a string, got %s", i,
                   io[k], type_name(v));
    }
  }
  if (limit && !(json_is_number(limit) && json_number_value(limit) > 0 &&
                 json_number_value(limit) <= 60))
    return bad(msg, "checker.time_limit_s: expected a number in (0, 60]");
  put_opt(w, "language", lang);
  jw_key(w, "tests");
  jw_raw(w, "[", 1);
  for (size_t i = 0; i < json_array_size(tests); i++) {
    const json_t *t = json_array_get(tests, i);
    if (i) jw_raw(w, ",", 1);
    jw_raw(w, "{", 1);
    put_opt(w, "input", json_object_get(t, "input"));
    put_opt(w, "output", json_object_get(t, "output"));
    jw_raw(w, "}", 1);
  }
  jw_raw(w, "]", 1);
  put_opt(w, "time_limit_s", limit);
  return 0;
}

static int check_checker(const json_t *root, jw *w, char *msg) {
  const json_t *v = json_object_get(root, "checker");
  const json_t *top_answer = json_object_get(root, "answer");
  checker_in c = {0};
  if (!v) return bad(msg, "checker is required");
  if (json_is_string(v)) {
    c.type = json_string_value(v);
    c.answer = top_answer;
    if (!name_in(c.type, checker_types, N_CHECKER_TYPES))
      return bad(msg, "checker \"%.32s\" is not one of %s", c.type,
                 checker_types_text);
  } else if (json_is_object(v)) {
    const json_t *t = json_object_get(v, "type");
    if (!t) return bad(msg, "checker.type is required");
    if (!json_is_string(t))
      return bad(msg, "checker.type: expected a string, got %s", type_name(t));
    c.type = json_string_value(t);
    c.obj = v;
    if (!name_in(c.type, checker_types, N_CHECKER_TYPES))
      return bad(msg, "checker.type \"%.32s\" is not one of %s", c.type,
                 checker_types_text);
    if (top_answer)
      return bad(msg, "answer: a top-level answer goes with \"checker\": "
                      "\"TYPE\"; with a checker object, put it inside");
  } else {
    return bad(msg, "checker: expected an object or a type name, got %s",
               type_name(v));
  }
  jw_key(w, "checker");
  jw_raw(w, "{", 1);
  jw_key(w, "type");
  jw_str(w, c.type, strlen(c.type));
  int rc = strcmp(c.type, "math") == 0        ? check_math(&c, w, msg)
           : strcmp(c.type, "exact") == 0     ? check_exact(&c, w, msg)
           : strcmp(c.type, "regex") == 0     ? check_regex(&c, w, msg)
           : strcmp(c.type, "countdown") == 0 ? check_countdown(&c, w, msg)
                                              : check_code(&c, w, msg);
  jw_raw(w, "}", 1);
  return rc;
}

static int check_id(const json_t *v, char *msg) {
  if (!json_is_string(v))
    return bad(msg, "id: expected a string, got %s", type_name(v));
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  int ok = n >= 1 && n <= R1D_TASK_ID_MAX;
  for (size_t i = 0; ok && i < n; i++)
    ok = s[i] > 0x20 && s[i] < 0x7f && s[i] != '/';
  if (!ok)
    return bad(msg,
               "id: expected 1 to %d printable ASCII characters "
               "without '/' or whitespace",
               R1D_TASK_ID_MAX);
  return 0;
}

static int check_prompt(const json_t *root, jw *w, char *msg) {
  static const char *const roles[] = {"system", "user", "assistant"};
  const json_t *p = json_object_get(root, "prompt");
  const json_t *m = json_object_get(root, "messages");
  if (p && m) return bad(msg, "prompt and messages: give one, not both");
  if (!p && !m) return bad(msg, "prompt or messages is required");
  if (p) {
    if (!json_is_string(p))
      return bad(msg, "prompt: expected a string, got %s", type_name(p));
    if (json_string_length(p) == 0) return bad(msg, "prompt: is empty");
    put_opt(w, "prompt", p);
    return 0;
  }
  if (!json_is_array(m) || json_array_size(m) == 0)
    return bad(msg,
               "messages: expected a non-empty list of {\"role\", "
               "\"content\"}, got %s",
               json_is_array(m) ? "an empty list" : type_name(m));
  for (size_t i = 0; i < json_array_size(m); i++) {
    const json_t *e = json_array_get(m, i), *role, *content;
    if (!json_is_object(e))
      return bad(msg, "messages[%zu]: expected an object, got %s", i,
                 type_name(e));
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)e, key, v) {
      if (strcmp(key, "role") != 0 && strcmp(key, "content") != 0)
        return bad(msg,
                   "messages[%zu]: unknown field \"%.64s\" (expected "
                   "role, content)",
                   i, key);
    }
    if (!(role = json_object_get(e, "role")))
      return bad(msg, "messages[%zu].role is required", i);
    if (!json_is_string(role))
      return bad(msg, "messages[%zu].role: expected a string, got %s", i,
                 type_name(role));
    if (!name_in(json_string_value(role), roles, 3))
      return bad(msg,
                 "messages[%zu].role \"%.32s\" is not one of system, "
                 "user, assistant",
                 i, json_string_value(role));
    if (!(content = json_object_get(e, "content")))
      return bad(msg, "messages[%zu].content is required", i);
    if (!json_is_string(content))
      return bad(msg, "messages[%zu].content: expected a string, got %s", i,
                 type_name(content));
  }
  jw_key(w, "messages");
  jw_raw(w, "[", 1);
  for (size_t i = 0; i < json_array_size(m); i++) {
    const json_t *e = json_array_get(m, i);
    if (i) jw_raw(w, ",", 1);
    jw_raw(w, "{", 1);
    put_opt(w, "role", json_object_get(e, "role"));
    put_opt(w, "content", json_object_get(e, "content"));
    jw_raw(w, "}", 1);
  }
  jw_raw(w, "]", 1);
  return 0;
}

static int check_rest(const json_t *root, long long now, jw *w, char *msg) {
  const json_t *split = json_object_get(root, "split");
  const json_t *source = json_object_get(root, "source");
  const json_t *tags = json_object_get(root, "tags");
  const json_t *created = json_object_get(root, "created");
  if (split) {
    if (!json_is_string(split))
      return bad(msg, "split: expected a string, got %s", type_name(split));
    const char *s = json_string_value(split);
    if (strcmp(s, "train") != 0 && strcmp(s, "eval") != 0)
      return bad(msg, "split \"%.32s\" is not one of train, eval", s);
  }
  if (source && !json_is_string(source))
    return bad(msg, "source: expected a string, got %s", type_name(source));
  if (tags) {
    if (!json_is_array(tags))
      return bad(msg, "tags: expected a list of strings, got %s",
                 type_name(tags));
    for (size_t i = 0; i < json_array_size(tags); i++)
      if (!json_is_string(json_array_get(tags, i)))
        return bad(msg, "tags[%zu]: expected a string, got %s", i,
                   type_name(json_array_get(tags, i)));
  }
  if (created &&
      !(json_is_integer(created) && json_integer_value(created) >= 0))
    return bad(msg, "created: expected unix seconds (an integer >= 0), got %s",
               json_is_integer(created) ? "a negative one"
                                        : type_name(created));
  jw_key(w, "split");
  if (split)
    jw_jstr(w, split);
  else
    jw_lit(w, "\"train\"");
  jw_key(w, "source");
  if (source)
    jw_jstr(w, source);
  else
    jw_lit(w, "\"\"");
  jw_key(w, "tags");
  if (tags)
    jw_value(w, tags);
  else
    jw_lit(w, "[]");
  jw_key(w, "created");
  char num[32];
  snprintf(num, sizeof num, "%lld",
           created ? (long long)json_integer_value(created) : now);
  jw_lit(w, num);
  return 0;
}

static int is_known_key(const char *k) {
  static const char *const known[] = {"id",      "prompt", "messages",
                                      "checker", "answer", "split",
                                      "source",  "tags",   "created"};
  return name_in(k, known, sizeof known / sizeof known[0]);
}

/* Validates root and writes its normalised form to w (reset first). */
static int normalise(const json_t *root, long long now, jw *w, char *msg) {
  w->b.n = 0;
  if (!json_is_object(root))
    return bad(msg, "a task must be a JSON object, got %s", type_name(root));
  const json_t *id = json_object_get(root, "id");
  int rc;
  if (id && (rc = check_id(id, msg))) return rc;
  jw_raw(w, "{", 1);
  jw_key(w, "id");
  if (id)
    jw_jstr(w, id);
  else
    jw_str(w, gen_id_placeholder, GEN_ID_LEN);
  if ((rc = check_prompt(root, w, msg)) || (rc = check_checker(root, w, msg)) ||
      (rc = check_rest(root, now, w, msg)))
    return rc;
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)root, key, v) {
    if (!is_known_key(key)) put_opt(w, key, v);
  }
  jw_raw(w, "}", 1);
  if (w->oom) return R1D_ENOMEM;
  if (w->b.n > R1D_TASK_MAX_BYTES)
    return bad(msg, "task is %zu bytes once normalised, over the 1 MiB limit",
               w->b.n);
  return 0;
}

/* ---- the batch ---- */

static int grow(void **p, size_t *cap, size_t n, size_t size) {
  if (n < *cap) return 0;
  size_t c = *cap ? *cap * 2 : 64;
  void *q = realloc(*p, c * size);
  if (!q) return R1D_ENOMEM;
  *p = q;
  *cap = c;
  return 0;
}

int r1d_task_batch_add_error(r1d_task_batch *b, size_t line, int code,
                             const char *msg) {
  if (grow((void **)&b->errors, &b->cap_errors, b->n_errors, sizeof *b->errors))
    return R1D_ENOMEM;
  r1d_task_error *e = &b->errors[b->n_errors++];
  e->line = line;
  e->code = code;
  snprintf(e->msg, sizeof e->msg, "%s", msg);
  return 0;
}

static int push_task(r1d_task_batch *b, size_t line, const json_t *root,
                     const jw *w) {
  if (grow((void **)&b->tasks, &b->cap_tasks, b->n, sizeof *b->tasks))
    return R1D_ENOMEM;
  const json_t *id = json_object_get(root, "id");
  r1d_task t = {.line = line, .len = w->b.n, .id_generated = !id};
  t.id = strdup(id ? json_string_value(id) : gen_id_placeholder);
  t.json = malloc(w->b.n + 1);
  if (!t.id || !t.json) {
    free(t.id);
    free(t.json);
    return R1D_ENOMEM;
  }
  memcpy(t.json, w->b.p, w->b.n);
  t.json[w->b.n] = '\0';
  b->tasks[b->n++] = t;
  return 0;
}

/* One parsed value (root, owned by the caller) into the batch. */
static int add_value(r1d_task_batch *b, size_t line, const json_t *root,
                     long long now, jw *w) {
  char msg[MSG_MAX];
  int rc = normalise(root, now, w, msg);
  if (rc == R1D_EINVAL)
    return r1d_task_batch_add_error(b, line, R1D_EINVAL, msg);
  if (rc) return rc;
  return push_task(b, line, root, w);
}

static int add_text(r1d_task_batch *b, size_t line, const char *s, size_t n,
                    long long now, jw *w) {
  char msg[MSG_MAX];
  if (n > R1D_TASK_MAX_BYTES) {
    bad(msg, "task is %zu bytes, over the 1 MiB limit", n);
    return r1d_task_batch_add_error(b, line, R1D_EINVAL, msg);
  }
  json_error_t je;
  json_t *root =
      json_loadb(s, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    if (json_error_code(&je) == json_error_out_of_memory) return R1D_ENOMEM;
    bad(msg, "invalid JSON at column %d: %s", je.column, je.text);
    return r1d_task_batch_add_error(b, line, R1D_EINVAL, msg);
  }
  int rc = add_value(b, line, root, now, w);
  json_decref(root);
  return rc;
}

static int is_blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
  return 1;
}

/* The admin API also takes one (pretty-printed) JSON object: recognised by
 * a first line that is the unfinished start of a value that the whole text
 * completes. Returns 1 when it took the text, 0 when the caller should read
 * it as JSONL. */
static int try_whole(r1d_task_batch *b, const char *s, size_t n, size_t line,
                     size_t first_len, long long now, jw *w, int *rc) {
  json_error_t je;
  json_t *v = json_loadb(s, first_len, JSON_DECODE_ANY, &je);
  if (v || json_error_code(&je) != json_error_premature_end_of_input) {
    json_decref(v);
    return 0;
  }
  v = json_loadb(s, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
  if (!v) return 0;
  char msg[MSG_MAX];
  if (n > R1D_TASK_MAX_BYTES) {
    bad(msg, "task is %zu bytes, over the 1 MiB limit", n);
    *rc = r1d_task_batch_add_error(b, line, R1D_EINVAL, msg);
  } else {
    *rc = add_value(b, line, v, now, w);
  }
  json_decref(v);
  return 1;
}

int r1d_tasks_parse(const char *text, size_t len, r1d_task_batch *out,
                    r1d_error *err) {
  memset(out, 0, sizeof *out);
  jw w = {0};
  long long now = (long long)time(NULL);
  int rc = 0, first = 1;
  size_t line = 0;
  for (size_t at = 0; at < len;) {
    const char *s = text + at;
    const char *nl = memchr(s, '\n', len - at);
    size_t n = nl ? (size_t)(nl - s) : len - at;
    line++;
    at += n + 1;
    if (n && s[n - 1] == '\r') n--;
    if (is_blank(s, n)) continue;
    if (first) {
      first = 0;
      if (try_whole(out, s, (size_t)(text + len - s), line, n, now, &w, &rc))
        break;
    }
    if ((rc = add_text(out, line, s, n, now, &w))) break;
  }
  r1d_buf_free(&w.b);
  if (rc) {
    r1d_task_batch_free(out);
    return r1d_fail(err, rc, "reading tasks: out of memory");
  }
  return 0;
}

void r1d_task_batch_free(r1d_task_batch *b) {
  if (!b) return;
  for (size_t i = 0; i < b->n; i++) {
    free(b->tasks[i].id);
    free(b->tasks[i].json);
  }
  free(b->tasks);
  free(b->errors);
  memset(b, 0, sizeof *b);
}

/* ---- what the table needs of the stored form (task_parse.h) ---- */

const char *const *r1d_task_checker_types(size_t *n) {
  *n = N_CHECKER_TYPES;
  return checker_types;
}

void r1d_task_set_generated_id(r1d_task *task, uint64_t key) {
  char hex[17];
  snprintf(hex, sizeof hex, "%016" PRIx64, key);
  memcpy(task->id + 5, hex, 16);
  memcpy(task->json + GEN_ID_HEX_AT, hex, 16);
}
