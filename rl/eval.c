/* eval.c - evaluation by sampling (eval.h): k completions per task through
 * the engine, scored with the rule rewards, reduced to pass@1 (agnostic and
 * strict), cons@k, pass@k and the format/language/length rates with 95%
 * intervals over tasks.
 *
 * Decisions the header leaves open:
 *  - Vote keys are computed here, not by the checker: the checkers answer
 *    "is this equal to the expected answer", not "what is this answer", and
 *    a vote needs the latter. The key canonicalises numbers (the common
 *    case, and where the same answer is written most ways); the math
 *    checker then merges keys it finds equal (r1d_eval_merge_keys), so the
 *    checker's own normalisation decides what remains.
 *  - An empty answer is an abstention, not a vote for "": a model that
 *    mostly rambles without answering should not have "no answer" win.
 *  - Tasks are sampled in batches of about 256 samples so the progress
 *    hook fires during long evaluations; seeds are those of one big
 *    rollout (task i uses seed + i * 1000003), so batching changes nothing.
 */
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/buf.h"
#include "../kernels/cpu/cpu_backend.h"
#include "rollout.h"
/* the checkers' own \boxed{} extraction and gcd: a vote key must read an
 * answer exactly as the math checker will */
#include "verifiers/verifiers_internal.h"

static const double Z95 = 1.959963984540054;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void r1d_eval_config_default(r1d_eval_config *c) {
  memset(c, 0, sizeof *c);
  c->k = 8;
  c->temperature = 0.6f;
  c->top_p = 0.95f;
  c->max_tokens = 256;
  c->seed = 1;
  c->style = R1D_ANSWER_AFTER_THINK;
  snprintf(c->language, sizeof c->language, "latin");
}

void r1d_eval_sample_free(r1d_eval_sample *s) {
  if (!s) return;
  free(s->text);
  free(s->thought);
  free(s->answer);
  free(s->key);
  memset(s, 0, sizeof *s);
}

void r1d_eval_result_free(r1d_eval_result *r) {
  if (!r) return;
  if (r->samples)
    for (int i = 0; i < r->n_tasks * r->k; i++)
      r1d_eval_sample_free(&r->samples[i]);
  free(r->samples);
  free(r->tasks);
  memset(r, 0, sizeof *r);
}

/* ---- answer keys ------------------------------------------------------ */

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

static int is_digit(char c) {
  return c >= '0' && c <= '9';
}

static int is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int starts(const char *s, size_t n, size_t i, const char *w) {
  size_t l = strlen(w);
  return i + l <= n && memcmp(s + i, w, l) == 0 &&
         !(i + l < n && is_alpha(w[l - 1]) && is_alpha(s[i + l]));
}

/* The candidate without layout: white space, `$`, \left \right \! \, \; \:
 * and `{,}` removed, \dfrac/\tfrac -> \frac, a trailing `.`, and a short
 * left side `x=` dropped. */
static int compact(const char *s, size_t n, r1d_buf *o) {
  static const char *const drop[] = {"\\left", "\\right", "\\!", "\\,",
                                     "\\;",    "\\:",     "{,}", "\\$"};
  for (size_t i = 0; i < n;) {
    if (is_space(s[i]) || s[i] == '$') {
      i++;
      continue;
    }
    int skipped = 0;
    for (size_t d = 0; d < sizeof drop / sizeof *drop && !skipped; d++)
      if (starts(s, n, i, drop[d])) {
        i += strlen(drop[d]);
        skipped = 1;
      }
    if (skipped) continue;
    if (starts(s, n, i, "\\dfrac") || starts(s, n, i, "\\tfrac")) {
      if (r1d_buf_append(o, "\\frac", 5)) return R1D_ENOMEM;
      i += 6;
      continue;
    }
    if (r1d_buf_append(o, s + i, 1)) return R1D_ENOMEM;
    i++;
  }
  while (o->n && o->p[o->n - 1] == '.')
    o->n--;
  /* x=5 -> 5 (a variable name of at most two characters) */
  char *eq = o->n ? memchr(o->p, '=', o->n) : NULL;
  if (eq && eq - o->p >= 1 && eq - o->p <= 2 && is_alpha(o->p[0])) {
    size_t cut = (size_t)(eq - o->p) + 1;
    memmove(o->p, o->p + cut, o->n - cut);
    o->n -= cut;
  }
  if (r1d_buf_append(o, "", 1)) return R1D_ENOMEM; /* NUL-terminated */
  o->n--;
  return R1D_OK;
}

typedef struct ratio {
  int64_t p, q;
} ratio;

/* A decimal at s[*i..n): digits with optional thousands separators
 * (d{1,3}(,ddd)+ with no digit after the last group), an optional
 * fraction. 0 when there is none or it does not fit int64. */
static int parse_decimal(const char *s, size_t n, size_t *i, ratio *out) {
  size_t j = *i;
  int64_t p = 0, q = 1;
  int digits = 0;
  size_t lead = 0;
  while (j + lead < n && is_digit(s[j + lead]))
    lead++;
  /* thousands separators: only when the whole run reads as d{1,3}(,ddd)+ */
  int grouped = 0;
  if (lead >= 1 && lead <= 3 && j + lead < n && s[j + lead] == ',') {
    size_t e = j + lead;
    int groups = 0;
    while (e + 4 <= n && s[e] == ',' && is_digit(s[e + 1]) &&
           is_digit(s[e + 2]) && is_digit(s[e + 3]) &&
           !(e + 4 < n && is_digit(s[e + 4]))) {
      e += 4;
      groups++;
    }
    if (groups > 0 && s[j] != '0') grouped = 1;
  }
  while (j < n && (is_digit(s[j]) || (grouped && s[j] == ',' && j + 1 < n &&
                                      is_digit(s[j + 1])))) {
    if (s[j] != ',') {
      if (__builtin_mul_overflow(p, 10, &p) ||
          __builtin_add_overflow(p, s[j] - '0', &p))
        return 0;
      digits++;
    }
    j++;
  }
  if (j < n && s[j] == '.' && j + 1 < n && is_digit(s[j + 1])) {
    j++;
    while (j < n && is_digit(s[j])) {
      if (__builtin_mul_overflow(p, 10, &p) ||
          __builtin_add_overflow(p, s[j] - '0', &p) ||
          __builtin_mul_overflow(q, 10, &q))
        return 0;
      digits++;
      j++;
    }
  } else if (j < n && s[j] == '.' && digits) {
    j++; /* "5." */
  }
  if (!digits) return 0;
  *i = j;
  out->p = p;
  out->q = q;
  return 1;
}

/* A signed number, \frac{a}{b} or a/b: 0 when s[*i..) does not start one. */
static int parse_scalar(const char *s, size_t n, size_t *i, ratio *out) {
  size_t j = *i;
  int neg = 0;
  while (j < n && (s[j] == '-' || s[j] == '+')) {
    neg ^= s[j] == '-';
    j++;
  }
  ratio a, b;
  if (starts(s, n, j, "\\frac{")) {
    size_t k = j + 6;
    if (!parse_scalar(s, n, &k, &a) || k >= n || s[k] != '}' || k + 1 >= n ||
        s[k + 1] != '{')
      return 0;
    k += 2;
    if (!parse_scalar(s, n, &k, &b) || k >= n || s[k] != '}' || b.p == 0)
      return 0;
    j = k + 1;
  } else {
    if (!parse_decimal(s, n, &j, &a)) return 0;
    b = (ratio){1, 1};
    if (j < n && s[j] == '/') {
      size_t k = j + 1;
      if (parse_decimal(s, n, &k, &b) && b.p != 0)
        j = k;
      else
        b = (ratio){1, 1};
    }
  }
  /* (a.p / a.q) / (b.p / b.q) */
  int64_t p, q;
  if (__builtin_mul_overflow(a.p, b.q, &p) ||
      __builtin_mul_overflow(a.q, b.p, &q))
    return 0;
  if (q < 0) p = -p, q = -q;
  int64_t g = r1d_gcd64(p, q);
  if (g > 1) p /= g, q /= g;
  out->p = neg ? -p : p;
  out->q = q;
  *i = j;
  return 1;
}

/* s[0..n) as a whole is one number (a trailing % or ^\circ allowed, as the
 * math checker drops them): its canonical text into o. */
static int canonical_number(const char *s, size_t n, r1d_buf *o, int *ok) {
  size_t i = 0;
  ratio r;
  *ok = 0;
  if (!parse_scalar(s, n, &i, &r)) return R1D_OK;
  if (i < n && s[i] == '%')
    i++;
  else if (starts(s, n, i, "^\\circ"))
    i += 6;
  else if (starts(s, n, i, "^{\\circ}"))
    i += 8;
  if (i != n) return R1D_OK;
  char t[64];
  if (r.p == 0) r.q = 1;
  int l = r.q == 1 ? snprintf(t, sizeof t, "%lld", (long long)r.p)
                   : snprintf(t, sizeof t, "%lld/%lld", (long long)r.p,
                              (long long)r.q);
  o->n = 0;
  if (r1d_buf_append(o, t, (size_t)l + 1)) return R1D_ENOMEM;
  o->n--;
  *ok = 1;
  return R1D_OK;
}

/* The last white-space separated word of s that is a number (punctuation
 * and markdown around it removed), canonical, into o. */
static int last_number_word(const char *s, size_t n, r1d_buf *o, int *ok) {
  *ok = 0;
  size_t e = n;
  while (e > 0) {
    while (e > 0 && is_space(s[e - 1]))
      e--;
    size_t b = e;
    while (b > 0 && !is_space(s[b - 1]))
      b--;
    if (b == e) break;
    size_t wb = b, we = e;
    while (wb < we && strchr("*($([{", s[wb]))
      wb++;
    while (we > wb && strchr(".,;:!?*)$]}", s[we - 1]))
      we--;
    if (we > wb) {
      r1d_buf w = {0};
      int rc = compact(s + wb, we - wb, &w);
      if (rc == 0 && w.n) rc = canonical_number(w.p, w.n, o, ok);
      r1d_buf_free(&w);
      if (rc || *ok) return rc;
    }
    e = b;
  }
  return R1D_OK;
}

/* Text keys: white space runs as one space, `$` dropped, trimmed, no
 * trailing period. */
static int text_key(const char *s, size_t n, int drop_space, r1d_buf *o) {
  int pending = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '$') continue;
    if (is_space(s[i])) {
      pending = !drop_space && o->n > 0;
      continue;
    }
    if (pending && r1d_buf_append(o, " ", 1)) return R1D_ENOMEM;
    pending = 0;
    if (r1d_buf_append(o, s + i, 1)) return R1D_ENOMEM;
  }
  while (o->n && o->p[o->n - 1] == '.')
    o->n--;
  return R1D_OK;
}

char *r1d_eval_answer_key(const char *answer, size_t len,
                          const char *checker_type) {
  if (!answer) len = 0;
  const char *at;
  size_t n;
  if (len && r1d_last_boxed(answer, len, &at, &n)) {
    answer = at;
    len = n;
  }
  r1d_buf o = {0}, c = {0};
  int rc = R1D_OK, ok = 0;
  int math = !checker_type || strcmp(checker_type, "math") == 0;
  int countdown = checker_type && strcmp(checker_type, "countdown") == 0;
  if (math) {
    rc = compact(answer, len, &c);
    if (rc == 0 && c.n) rc = canonical_number(c.p, c.n, &o, &ok);
    if (rc == 0 && !ok) rc = last_number_word(answer, len, &o, &ok);
    if (rc == 0 && !ok) {
      o.n = 0; /* no number: the compact text */
      if (c.n) rc = r1d_buf_append(&o, c.p, c.n);
    }
  } else if (countdown) {
    /* the last non-empty line holds the expression */
    size_t e = len;
    while (e > 0 && is_space(answer[e - 1]))
      e--;
    size_t b = e;
    while (b > 0 && answer[b - 1] != '\n')
      b--;
    rc = text_key(answer + b, e - b, 1, &o);
    /* "(1+2)*3=9": the target restated is not part of the answer */
    char *eq = rc == 0 && o.n ? memchr(o.p, '=', o.n) : NULL;
    if (eq) {
      size_t k = (size_t)(eq - o.p) + 1;
      int digits = k < o.n;
      for (size_t q = k; q < o.n; q++)
        digits &= is_digit(o.p[q]) || (q == k && o.p[q] == '-');
      if (digits) o.n = (size_t)(eq - o.p);
    }
  } else {
    rc = text_key(answer, len, 0, &o);
  }
  r1d_buf_free(&c);
  if (rc == 0) rc = r1d_buf_append(&o, "", 1);
  if (rc) {
    r1d_buf_free(&o);
    return NULL;
  }
  return o.p;
}

/* ---- the vote and the intervals --------------------------------------- */

int r1d_eval_majority(const r1d_eval_outcome *s, int k, int *votes) {
  int best = -1, best_n = 0;
  for (int i = 0; i < k; i++) {
    if (!s[i].key || !s[i].key[0]) continue;
    int seen = 0;
    for (int j = 0; j < i && !seen; j++)
      seen = s[j].key && strcmp(s[j].key, s[i].key) == 0;
    if (seen) continue; /* counted with its first vote */
    int c = 0;
    for (int j = i; j < k; j++)
      c += s[j].key && strcmp(s[j].key, s[i].key) == 0;
    if (c > best_n) { /* strictly more: ties stay with the earlier one */
      best = i;
      best_n = c;
    }
  }
  if (votes) *votes = best_n;
  return best;
}

double r1d_eval_wilson(int s, int n, double *lo, double *hi) {
  if (n <= 0) {
    *lo = 0;
    *hi = 1;
    return 0;
  }
  double p = (double)s / n, z2 = Z95 * Z95;
  double den = 1 + z2 / n;
  double centre = (p + z2 / (2.0 * n)) / den;
  double half = Z95 * sqrt(p * (1 - p) / n + z2 / (4.0 * n * n)) / den;
  *lo = centre - half < 0 ? 0 : centre - half;
  *hi = centre + half > 1 ? 1 : centre + half;
  return half;
}

/* The metric over per-task values v[n]. Shares of samples (rate = 1) take
 * the Wilson interval when every task scored 0 or 1 (each task is then one
 * Bernoulli trial), else the normal approximation over the per-task means;
 * the language share and lengths are not counts of successes and always
 * take the normal one. */
static r1d_eval_metric metric_of(const double *v, int n, int rate, int unit) {
  r1d_eval_metric m = {0};
  double sum = 0, sq = 0;
  int binary = rate, ones = 0;
  for (int i = 0; i < n; i++) {
    sum += v[i];
    sq += v[i] * v[i];
    if (v[i] != 0.0 && v[i] != 1.0) binary = 0;
    ones += v[i] == 1.0;
  }
  m.value = sum / n;
  if (binary) {
    m.ci = r1d_eval_wilson(ones, n, &m.lo, &m.hi);
    return m;
  }
  double var = n > 1 ? (sq - sum * sum / n) / (n - 1) : 0;
  m.ci = Z95 * sqrt(var > 0 ? var / n : 0);
  m.lo = m.value - m.ci < 0 ? 0 : m.value - m.ci; /* none is negative */
  m.hi = m.value + m.ci;
  if (unit && m.hi > 1) m.hi = 1;
  return m;
}

enum {
  M_PASS1,
  M_STRICT,
  M_CONS,
  M_PASSK,
  M_FORMAT,
  M_LANG,
  M_READ,
  M_LEN,
  M_TRUNC,
  N_METRICS
};

int r1d_eval_aggregate(const r1d_eval_outcome *s, int n_tasks, int k,
                       r1d_eval_result *out, r1d_error *err) {
  if (n_tasks < 1 || k < 1)
    return r1d_fail(err, R1D_EINVAL, "eval: %d tasks x %d samples: need >= 1",
                    n_tasks, k);
  double *v = calloc((size_t)n_tasks * N_METRICS, sizeof *v);
  r1d_eval_task_result *tr = calloc((size_t)n_tasks, sizeof *tr);
  if (!v || !tr) {
    free(v);
    free(tr);
    return r1d_fail(err, R1D_ENOMEM, "eval: out of memory");
  }
  long tokens = 0;
  for (int i = 0; i < n_tasks; i++) {
    const r1d_eval_outcome *t = s + (size_t)i * k;
    r1d_eval_task_result *r = &tr[i];
    for (int j = 0; j < k; j++) {
      r->pass1 += t[j].correct != 0;
      r->strict_pass1 += t[j].correct && t[j].format_ok;
      r->format_rate += t[j].format_ok != 0;
      r->language += t[j].language;
      /* single-script: exactly 1 up to rounding of the share */
      r->readable += t[j].format_ok && t[j].language >= 1.0 - 1e-12;
      r->mean_len += t[j].n_tokens;
      r->truncated_rate += t[j].truncated != 0;
      r->pass_k |= t[j].correct != 0;
      tokens += t[j].n_tokens;
    }
    r->pass1 /= k;
    r->strict_pass1 /= k;
    r->format_rate /= k;
    r->language /= k;
    r->readable /= k;
    r->mean_len /= k;
    r->truncated_rate /= k;
    r->majority = r1d_eval_majority(t, k, &r->votes);
    r->cons = r->majority >= 0 && t[r->majority].correct;
    double *row = v + (size_t)i * N_METRICS;
    row[M_PASS1] = r->pass1;
    row[M_STRICT] = r->strict_pass1;
    row[M_CONS] = r->cons;
    row[M_PASSK] = r->pass_k;
    row[M_FORMAT] = r->format_rate;
    row[M_LANG] = r->language;
    row[M_READ] = r->readable;
    row[M_LEN] = r->mean_len;
    row[M_TRUNC] = r->truncated_rate;
  }
  r1d_eval_metric *dst[N_METRICS] = {
      &out->pass1,    &out->strict_pass1, &out->cons,
      &out->pass_k,   &out->format_rate,  &out->language,
      &out->readable, &out->mean_len,     &out->truncated_rate};
  double *col = malloc((size_t)n_tasks * sizeof *col);
  if (!col) {
    free(v);
    free(tr);
    return r1d_fail(err, R1D_ENOMEM, "eval: out of memory");
  }
  for (int m = 0; m < N_METRICS; m++) {
    for (int i = 0; i < n_tasks; i++)
      col[i] = v[(size_t)i * N_METRICS + m];
    *dst[m] = metric_of(col, n_tasks, m != M_LEN && m != M_LANG, m != M_LEN);
  }
  free(col);
  free(v);
  free(out->tasks);
  out->tasks = tr;
  out->n_tasks = n_tasks;
  out->k = k;
  out->tokens = tokens;
  return R1D_OK;
}

/* ---- scoring ------------------------------------------------------------ */

static char *dup_n(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (!d) return NULL;
  if (n) memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

int r1d_eval_score(const r1d_eval_config *cfg, const json_t *checker,
                   const char *completion, int prompt_in_think, int n_tokens,
                   int truncated, r1d_eval_sample *out, r1d_error *err) {
  memset(out, 0, sizeof *out);
  if (!completion) completion = "";
  r1d_reward_config rc;
  r1d_reward_config_default(&rc);
  rc.style = cfg->style;
  snprintf(rc.language, sizeof rc.language, "%s", cfg->language);
  r1d_completion_info info = {prompt_in_think, (size_t)n_tokens, truncated};
  r1d_reward rw;
  int st = r1d_reward_compute(&rc, checker, completion, &info, &rw, err);
  if (st) return st;
  const char *th, *ans;
  size_t th_len, ans_len;
  r1d_completion_split(completion, cfg->style, prompt_in_think, &th, &th_len,
                       &ans, &ans_len);
  const char *type = json_string_value(json_object_get(checker, "type"));
  out->text = dup_n(completion, strlen(completion));
  out->thought = dup_n(th, th_len);
  out->answer = dup_n(ans, ans_len);
  out->key = r1d_eval_answer_key(ans, ans_len, type);
  if (!out->text || !out->thought || !out->answer || !out->key) {
    r1d_eval_sample_free(out);
    return r1d_fail(err, R1D_ENOMEM, "eval: out of memory");
  }
  out->o = (r1d_eval_outcome){.correct = rw.correct,
                              .format_ok = rw.format_ok,
                              .truncated = truncated != 0,
                              .n_tokens = n_tokens,
                              .language = rw.language,
                              .key = out->key};
  out->score = rw.verdict.score;
  snprintf(out->detail, sizeof out->detail, "%s", rw.verdict.detail);
  return R1D_OK;
}

int r1d_eval_merge_keys(r1d_eval_sample *s, int k, const json_t *checker,
                        r1d_error *err) {
  const char *type = json_string_value(json_object_get(checker, "type"));
  if (!type || strcmp(type, "math") != 0) return R1D_OK;
  double tol = json_number_value(json_object_get(checker, "tolerance"));
  for (int j = 1; j < k; j++) {
    if (!s[j].key || !s[j].key[0]) continue;
    for (int i = 0; i < j; i++) {
      if (!s[i].key || !s[i].key[0]) continue;
      if (strcmp(s[i].key, s[j].key) == 0) break; /* already together */
      r1d_verdict v;
      int rc = r1d_verify_math(s[j].key, s[i].key, tol, &v, err);
      if (rc) return rc;
      if (!v.correct) continue;
      char *d = strdup(s[i].key);
      if (!d) return r1d_fail(err, R1D_ENOMEM, "eval: out of memory");
      free(s[j].key);
      s[j].key = d;
      s[j].o.key = d;
      break;
    }
  }
  return R1D_OK;
}

/* ---- tasks ---------------------------------------------------------------- */

void r1d_eval_tasks_free(r1d_grpo_task *t, int n) {
  for (int i = 0; t && i < n; i++)
    r1d_grpo_task_free(&t[i]);
  free(t);
}

int r1d_eval_tasks_prepare(const json_t *tasks, const r1d_template *tmpl,
                           const r1d_tokenizer *tok, r1d_grpo_task **out,
                           int *n, r1d_error *err) {
  *out = NULL;
  *n = 0;
  size_t m = json_array_size(tasks);
  r1d_grpo_task *v = calloc(m ? m : 1, sizeof *v);
  if (!v) return r1d_fail(err, R1D_ENOMEM, "eval: out of memory");
  for (size_t i = 0; i < m; i++) {
    int rc =
        r1d_grpo_task_prepare(json_array_get(tasks, i), tmpl, tok, &v[i], err);
    if (rc) {
      r1d_eval_tasks_free(v, (int)i);
      return rc;
    }
  }
  *out = v;
  *n = (int)m;
  return R1D_OK;
}

/* ---- the run ------------------------------------------------------------- */

static int check_config(const r1d_eval_config *c, int n, r1d_error *err) {
  if (n < 1) return r1d_fail(err, R1D_EINVAL, "eval: no tasks");
  if (c->k < 1 || c->k > R1D_ENGINE_MAX_N)
    return r1d_fail(err, R1D_EINVAL, "k must be 1..%d, not %d",
                    R1D_ENGINE_MAX_N, c->k);
  if (!(c->temperature >= 0 && c->temperature <= 2))
    return r1d_fail(err, R1D_EINVAL, "temperature must be in [0, 2]");
  if (!(c->top_p > 0 && c->top_p <= 1))
    return r1d_fail(err, R1D_EINVAL, "top_p must be in (0, 1]");
  if (c->max_tokens < 1)
    return r1d_fail(err, R1D_EINVAL, "max_tokens must be >= 1");
  return R1D_OK;
}

int r1d_eval_run(r1d_engine *e, const r1d_tokenizer *tok,
                 const r1d_grpo_task *tasks, int n, const r1d_eval_config *cfg,
                 r1d_eval_progress_fn progress, void *user,
                 r1d_eval_result *out, r1d_error *err) {
  memset(out, 0, sizeof *out);
  int rc = check_config(cfg, n, err);
  if (rc) return rc;
  int k = cfg->k;
  size_t total = (size_t)n * (size_t)k;
  r1d_eval_sample *smp = calloc(total, sizeof *smp);
  r1d_eval_outcome *oc = calloc(total, sizeof *oc);
  int chunk = 256 / k > 0 ? 256 / k : 1;
  r1d_rollout *ro = calloc((size_t)chunk * (size_t)k, sizeof *ro);
  r1d_rollout_prompt *pr = calloc((size_t)chunk, sizeof *pr);
  if (!smp || !oc || !ro || !pr) {
    rc = r1d_fail(err, R1D_ENOMEM, "eval: out of memory");
    goto done;
  }
  double t0 = now_s();
  for (int start = 0; rc == 0 && start < n; start += chunk) {
    int m = n - start < chunk ? n - start : chunk;
    for (int i = 0; i < m; i++)
      pr[i] = (r1d_rollout_prompt){tasks[start + i].prompt,
                                   tasks[start + i].n_prompt};
    r1d_gen_params gp;
    memset(&gp, 0, sizeof gp);
    r1d_sampling_params_default(&gp.sampling);
    gp.sampling.temperature = cfg->temperature;
    gp.sampling.top_p = cfg->top_p;
    /* as if all tasks were one rollout: batching does not change seeds */
    gp.sampling.seed = cfg->seed + (uint64_t)start * 1000003u;
    gp.max_tokens = cfg->max_tokens;
    rc = r1d_rollout_run(e, tok, pr, m, k, &gp, 0, ro, err);
    if (rc) break;
    for (int i = 0; rc == 0 && i < m; i++) {
      const r1d_grpo_task *t = &tasks[start + i];
      r1d_eval_sample *ts = smp + (size_t)(start + i) * k;
      for (int j = 0; rc == 0 && j < k; j++) {
        const r1d_rollout *r = &ro[(size_t)i * k + j];
        rc = r1d_eval_score(cfg, t->checker, r->text, t->prompt_in_think, r->n,
                            r->finish == R1D_FINISH_LENGTH, &ts[j], err);
        if (rc) r1d_fail(err, rc, "eval: task %s: %s", t->id, err->msg);
      }
      if (rc == 0) rc = r1d_eval_merge_keys(ts, k, t->checker, err);
    }
    r1d_rollout_free(ro, m * k);
    if (rc == 0 && progress) progress(user, start + m, n, now_s() - t0);
  }
  if (rc) goto done;
  for (size_t i = 0; i < total; i++)
    oc[i] = smp[i].o;
  rc = r1d_eval_aggregate(oc, n, k, out, err);
  if (rc) goto done;
  for (int i = 0; i < n; i++)
    snprintf(out->tasks[i].id, sizeof out->tasks[i].id, "%s", tasks[i].id);
  out->wall_s = now_s() - t0;
  out->tokens_per_s = out->wall_s > 0 ? (double)out->tokens / out->wall_s : 0;
  if (cfg->keep_samples) {
    out->samples = smp;
    smp = NULL;
  }
done:
  if (smp)
    for (size_t i = 0; i < total; i++)
      r1d_eval_sample_free(&smp[i]);
  free(smp);
  free(oc);
  free(ro);
  free(pr);
  if (rc) r1d_eval_result_free(out);
  return rc;
}

/* ---- a model to sample from --------------------------------------------- */

int r1d_eval_model_open(const char *dir, const char *template_name, int threads,
                        r1d_eval_model *out, r1d_error *err) {
  memset(out, 0, sizeof *out);
  r1d_backend be;
  r1d_cpu_backend_init(&be, threads);
  int rc = r1d_tokenizer_load_dir(dir, &out->tok, err);
  if (rc == 0)
    rc = template_name
             ? r1d_template_load_dir_as(dir, template_name, &out->tmpl, err)
             : r1d_template_load_dir(dir, &out->tmpl, err);
  if (rc == 0) rc = r1d_model_load(dir, &be, &out->model, err);
  if (rc) r1d_eval_model_close(out);
  return rc;
}

int r1d_eval_model_start(r1d_eval_model *m, int max_prompt, int max_tokens,
                         r1d_error *err) {
  int ctx = m->model->cfg.max_position_embeddings;
  if (max_prompt + max_tokens > ctx)
    return r1d_fail(err, R1D_EINVAL,
                    "the longest prompt (%d tokens) plus --max-tokens (%d) "
                    "exceeds the model's context of %d",
                    max_prompt, max_tokens, ctx);
  r1d_engine_config ec;
  r1d_engine_config_default(&ec);
  ec.max_model_len = max_prompt + max_tokens;
  return r1d_engine_create(m->model, &m->model->be, m->tok, &ec, &m->engine,
                           err);
}

void r1d_eval_model_close(r1d_eval_model *m) {
  if (m->engine) r1d_engine_destroy(m->engine);
  r1d_model_free(m->model);
  r1d_template_free(m->tmpl);
  r1d_tokenizer_free(m->tok);
  memset(m, 0, sizeof *m);
}

int r1d_eval_result_to_json(const r1d_eval_result *r, json_t *obj) {
  const struct {
    const char *name;
    const r1d_eval_metric *m;
  } ms[] = {{"pass1", &r->pass1},
            {"strict_pass1", &r->strict_pass1},
            {"cons", &r->cons},
            {"pass_k", &r->pass_k},
            {"format_rate", &r->format_rate},
            {"language", &r->language},
            {"readable", &r->readable},
            {"mean_len", &r->mean_len},
            {"truncated_rate", &r->truncated_rate}};
  int bad = 0;
  for (size_t i = 0; i < sizeof ms / sizeof *ms; i++) {
    char ci[48];
    snprintf(ci, sizeof ci, "%s_ci", ms[i].name);
    bad |= json_object_set_new(obj, ms[i].name, json_real(ms[i].m->value));
    bad |= json_object_set_new(obj, ci, json_real(ms[i].m->ci));
  }
  bad |= json_object_set_new(obj, "n_tasks", json_integer(r->n_tasks));
  bad |= json_object_set_new(obj, "k", json_integer(r->k));
  bad |= json_object_set_new(obj, "tokens", json_integer(r->tokens));
  bad |= json_object_set_new(obj, "wall_s", json_real(r->wall_s));
  bad |= json_object_set_new(obj, "tokens_per_s", json_real(r->tokens_per_s));
  return bad ? R1D_ENOMEM : R1D_OK;
}
