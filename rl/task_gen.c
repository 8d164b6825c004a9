/* task_gen.c - the built-in task generators (task_gen.h). Each draws a
 * problem from the seeded RNG, writes its key (the problem without its
 * wording), its prompt, the checker's answer and the worked solution, drops
 * it when its key was drawn before (a small open-addressing set of 64-bit
 * FNV-1a hashes), and gives the first n_train to "train" and the rest to
 * "eval", so the splits never share a problem.
 *
 * The scratchpads are written for a tiny character-level model: one step
 * per line, the same few words every time, digits right to left as done by
 * hand (the order in which carries are known: Lee et al. 2023 found that
 * step-by-step scratchpads cut the samples small transformers need). The
 * Chinese variant uses the same steps and only swaps the connective words,
 * so the two differ in language alone. */
#include "task_gen.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"

enum {
  TEXT_MAX = 192,     /* key, prompt, answer */
  THOUGHT_MAX = 1024, /* 9-digit additions and 8-step expressions fit */
  MAX_NUMBERS = 9,    /* multistep:8 has 9 numbers; countdown at most 6 */
  N_LANGS = 2,
};

enum kind { ADDITION, MULTIPLY, MULTISTEP, COUNTDOWN, N_KINDS };

static const char *const kind_names[N_KINDS] = {"addition", "multiply",
                                                "multistep", "countdown"};
static const int default_level[N_KINDS] = {2, 2, 3, 4},
                 min_level[N_KINDS] = {1, 1, 1, 2},
                 max_level[N_KINDS] = {9, 6, 8, 6};
static const char *const short_thoughts[N_KINDS] = {
    "I add the numbers.", "I multiply the numbers.",
    "I do * first, then + and - from left to right.",
    "I combine the numbers one pair at a time."};

/* A bounded text with a sticky overflow flag, checked once per problem. */
typedef struct text {
  char *p;
  size_t cap, n;
  int over;
} text;

static text text_on(char *p, size_t cap) {
  p[0] = '\0';
  return (text){p, cap, 0, 0};
}

static void put(text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...) {
  if (t->over) return;
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(t->p + t->n, t->cap - t->n, fmt, ap);
  va_end(ap);
  if (k < 0 || (size_t)k >= t->cap - t->n)
    t->over = 1;
  else
    t->n += (size_t)k;
}

/* The connective words of a scratchpad, per language (0 English, 1
 * Chinese). Operators inside a running expression stay symbols in both. */
typedef struct words {
  const char *op[4]; /* + - * / between the two numbers of one step */
  const char *eq, *write, *carry, *now, *so;
} words;

static const words langs[N_LANGS] = {
    {{" + ", " - ", " * ", " / "},
     " = ",
     ", write ",
     " carry ",
     ", now ",
     "so "},
    {{" 加 ", " 减 ", " 乘 ", " 除以 "},
     " 得 ",
     "，写 ",
     " 进 ",
     "，现在 ",
     "所以 "},
};

static int op_index(char op) {
  return op == '+' ? 0 : op == '-' ? 1 : op == '*' ? 2 : 3;
}

typedef struct problem {
  char key[TEXT_MAX];    /* the problem alone: what must not repeat */
  char prompt[TEXT_MAX]; /* as the style words it */
  char answer[TEXT_MAX]; /* math: the value; countdown: an expression */
  char thought[N_LANGS][THOUGHT_MAX];
  int64_t numbers[MAX_NUMBERS], target; /* countdown only */
  int n_numbers;
  int over; /* some text did not fit: a bug, reported */
} problem;

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h ? h : 1; /* 0 marks an empty slot */
}

/* Inserts h; 0 when it was there already. */
static int set_add(uint64_t *slots, size_t cap, uint64_t h) {
  for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
    if (slots[i] == h) return 0;
    if (!slots[i]) {
      slots[i] = h;
      return 1;
    }
  }
}

static int64_t uniform(r1d_rng *r, int64_t lo, int64_t hi) {
  return lo + (int64_t)(r1d_rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* The decimal digits of v >= 0, least significant first; returns how many
 * (1 for 0). */
static int digits_of(int64_t v, int d[20]) {
  int n = 0;
  do {
    d[n++] = (int)(v % 10);
    v /= 10;
  } while (v);
  return n;
}

static int64_t pow10i(int e) {
  int64_t p = 1;
  while (e-- > 0)
    p *= 10;
  return p;
}

/* Writes the two-operand prompt and key: "What is 347 + 285?" or
 * "347+285=". */
static void binary_prompt(problem *p, int64_t a, char op, int64_t b,
                          r1d_prompt_style style) {
  text k = text_on(p->key, sizeof p->key),
       q = text_on(p->prompt, sizeof p->prompt);
  put(&k, "%lld%c%lld", (long long)a, op, (long long)b);
  if (style == R1D_PROMPT_PLAIN)
    put(&q, "%s=", p->key);
  else
    put(&q, "What is %lld %c %lld?", (long long)a, op, (long long)b);
  p->over |= k.over | q.over;
}

/* Column addition, right to left: "7 + 5 = 12, write 2 carry 1" per column,
 * the last column writing its whole sum, then "so 347 + 285 = 632". */
static void addition_thought(int64_t a, int64_t b, const words *w, text *t) {
  int da[20], db[20];
  int na = digits_of(a, da), nb = digits_of(b, db);
  int n = na > nb ? na : nb, carry = 0;
  for (int i = 0; i < n; i++) {
    int s = carry, terms = 0;
    if (i < na) {
      put(t, "%d", da[i]);
      s += da[i];
      terms++;
    }
    if (i < nb) {
      put(t, "%s%d", terms ? w->op[0] : "", db[i]);
      s += db[i];
    }
    if (carry) put(t, "%s%d", w->op[0], carry);
    put(t, "%s%d%s", w->eq, s, w->write);
    if (i == n - 1)
      put(t, "%d\n", s);
    else if (s >= 10)
      put(t, "%d%s%d\n", s % 10, w->carry, s / 10);
    else
      put(t, "%d\n", s);
    carry = s / 10;
  }
  put(t, "%s%lld%s%lld%s%lld", w->so, (long long)a, w->op[0], (long long)b,
      w->eq, (long long)(a + b));
}

/* Long multiplication by one digit, right to left: "7 * 8 = 56, write 6
 * carry 5", then "4 * 8 + 5 = 37, write 37", then "so 47 * 8 = 376". */
static void multiply_thought(int64_t a, int64_t b, const words *w, text *t) {
  int da[20];
  int n = digits_of(a, da), carry = 0;
  for (int i = 0; i < n; i++) {
    int s = da[i] * (int)b + carry;
    put(t, "%d%s%d", da[i], w->op[2], (int)b);
    if (carry) put(t, "%s%d", w->op[0], carry);
    put(t, "%s%d%s", w->eq, s, w->write);
    if (i == n - 1)
      put(t, "%d\n", s);
    else if (s >= 10)
      put(t, "%d%s%d\n", s % 10, w->carry, s / 10);
    else
      put(t, "%d\n", s);
    carry = s / 10;
  }
  put(t, "%s%lld%s%lld%s%lld", w->so, (long long)a, w->op[2], (long long)b,
      w->eq, (long long)(a * b));
}

static void gen_addition(r1d_rng *r, int digits, r1d_prompt_style style,
                         problem *p) {
  int64_t lo = digits == 1 ? 0 : pow10i(digits - 1), hi = pow10i(digits) - 1;
  int64_t a = uniform(r, lo, hi), b = uniform(r, lo, hi);
  binary_prompt(p, a, '+', b, style);
  snprintf(p->answer, sizeof p->answer, "%lld", (long long)(a + b));
  for (int l = 0; l < N_LANGS; l++) {
    text t = text_on(p->thought[l], THOUGHT_MAX);
    addition_thought(a, b, &langs[l], &t);
    p->over |= t.over;
  }
}

/* A one-digit factor from 2: times 0 and 1 teach nothing about carries. */
static void gen_multiply(r1d_rng *r, int digits, r1d_prompt_style style,
                         problem *p) {
  int64_t lo = digits == 1 ? 2 : pow10i(digits - 1), hi = pow10i(digits) - 1;
  int64_t a = uniform(r, lo, hi), b = uniform(r, 2, 9);
  binary_prompt(p, a, '*', b, style);
  snprintf(p->answer, sizeof p->answer, "%lld", (long long)(a * b));
  for (int l = 0; l < N_LANGS; l++) {
    text t = text_on(p->thought[l], THOUGHT_MAX);
    multiply_thought(a, b, &langs[l], &t);
    p->over |= t.over;
  }
}

/* v[0] ops[0] v[1] ... as "3 + 4 * 5" (sep " ") or "3+4*5" (sep ""). */
static void put_expr(text *t, const int64_t *v, const char *ops, int n_ops,
                     const char *sep) {
  put(t, "%lld", (long long)v[0]);
  for (int i = 0; i < n_ops; i++)
    put(t, "%s%c%s%lld", sep, ops[i], sep, (long long)v[i + 1]);
}

/* One operation per line in precedence order (products first, left to
 * right, then sums left to right), each followed by what is left of the
 * expression: "4 * 5 = 20, now 3 + 20 - 2". Returns the value. */
static int64_t multistep_thought(const int64_t *v0, const char *ops0, int n,
                                 const words *w, text *t) {
  int64_t v[MAX_NUMBERS];
  char ops[MAX_NUMBERS];
  memcpy(v, v0, sizeof v[0] * (size_t)(n + 1));
  memcpy(ops, ops0, (size_t)n);
  while (n > 0) {
    int i = 0;
    for (int k = 0; k < n; k++)
      if (ops[k] == '*') {
        i = k;
        break;
      }
    int64_t c = ops[i] == '*'   ? v[i] * v[i + 1]
                : ops[i] == '+' ? v[i] + v[i + 1]
                                : v[i] - v[i + 1];
    put(t, "%lld%s%lld%s%lld", (long long)v[i], w->op[op_index(ops[i])],
        (long long)v[i + 1], w->eq, (long long)c);
    v[i] = c;
    memmove(v + i + 1, v + i + 2, sizeof v[0] * (size_t)(n - i - 1));
    memmove(ops + i, ops + i + 1, (size_t)(n - i - 1));
    if (--n > 0) {
      put(t, "%s", w->now);
      put_expr(t, v, ops, n, " ");
      put(t, "\n");
    }
  }
  return v[0];
}

/* n operations over numbers 1..20 with + - * (1..9 after a *). */
static void gen_multistep(r1d_rng *r, int n, r1d_prompt_style style,
                          problem *p) {
  static const char opc[] = "+-*";
  int64_t v[MAX_NUMBERS];
  char ops[MAX_NUMBERS];
  v[0] = uniform(r, 1, 20);
  for (int i = 0; i < n; i++) {
    ops[i] = opc[r1d_rng_next(r) % 3];
    v[i + 1] = uniform(r, 1, ops[i] == '*' ? 9 : 20);
  }
  text k = text_on(p->key, sizeof p->key),
       q = text_on(p->prompt, sizeof p->prompt);
  put_expr(&k, v, ops, n, "");
  if (style == R1D_PROMPT_PLAIN) {
    put(&q, "%s=", p->key);
  } else {
    put(&q, "What is ");
    put_expr(&q, v, ops, n, " ");
    put(&q, "?");
  }
  p->over |= k.over | q.over;
  int64_t value = 0;
  for (int l = 0; l < N_LANGS; l++) {
    text t = text_on(p->thought[l], THOUGHT_MAX);
    value = multistep_thought(v, ops, n, &langs[l], &t);
    p->over |= t.over;
  }
  snprintf(p->answer, sizeof p->answer, "%lld", (long long)value);
}

/* ---- countdown ---- */

/* A partial countdown expression and its outermost operator (0: a plain
 * number), so that combining two adds only the parentheses precedence
 * needs: 25 - 4 + 7 + 3, not (((25-4)+7)+3). */
typedef struct node {
  int64_t value;
  char expr[TEXT_MAX];
  char top;
} node;

static int prec(char op) {
  return op == '+' || op == '-' ? 1 : op == '*' || op == '/' ? 2 : 3;
}

/* a op b into out; 0 when the expression would not fit. The right operand
 * keeps its parentheses at equal precedence under - and / (a - (b + c));
 * everywhere else equal precedence is associative over exact rationals,
 * which is how the countdown checker evaluates. */
static int combine(const node *a, char op, const node *b, int64_t value,
                   node *out) {
  int lp = prec(a->top) < prec(op);
  int rp = prec(b->top) < prec(op) ||
           (prec(b->top) == prec(op) && (op == '-' || op == '/'));
  int k = snprintf(out->expr, sizeof out->expr, "%s%s%s %c %s%s%s",
                   lp ? "(" : "", a->expr, lp ? ")" : "", op, rp ? "(" : "",
                   b->expr, rp ? ")" : "");
  out->value = value;
  out->top = op;
  return k > 0 && (size_t)k < sizeof out->expr;
}

static int cmp_i64(const void *x, const void *y) {
  int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
  return (a > b) - (a < b);
}

/* n numbers from 1..25 combined pairwise at random into one value, kept
 * when it is in 1..999 (else 0: the caller draws again). A subtraction
 * takes the larger minus the smaller, so each step of the scratchpad stays
 * a non-negative count, as in the game. */
static int gen_countdown(r1d_rng *r, int n, r1d_prompt_style style,
                         problem *p) {
  node nodes[MAX_NUMBERS];
  struct {
    int64_t a, b, c;
    char op;
  } steps[MAX_NUMBERS];
  for (int i = 0; i < n; i++) {
    int64_t x = p->numbers[i] = uniform(r, 1, 25);
    nodes[i].value = x;
    nodes[i].top = 0;
    snprintf(nodes[i].expr, sizeof nodes[i].expr, "%lld", (long long)x);
  }
  p->n_numbers = n;
  int n_steps = 0;
  for (int left = n; left > 1; left--) {
    int i = (int)(r1d_rng_next(r) % (uint64_t)left);
    int j = (int)(r1d_rng_next(r) % (uint64_t)(left - 1));
    if (j >= i) j++;
    node *x = &nodes[i], *y = &nodes[j];
    int64_t c;
    char op;
    switch (r1d_rng_next(r) % 4) {
    case 0: c = x->value + y->value, op = '+'; break;
    case 1:
      if (x->value < y->value) {
        node *s = x;
        x = y;
        y = s;
      }
      c = x->value - y->value, op = '-';
      break;
    case 2: c = x->value * y->value, op = '*'; break;
    default:
      if (y->value == 0 || x->value % y->value) return 0;
      c = x->value / y->value, op = '/';
    }
    node joined;
    if (!combine(x, op, y, c, &joined)) return 0;
    steps[n_steps].a = x->value;
    steps[n_steps].b = y->value;
    steps[n_steps].c = c;
    steps[n_steps++].op = op;
    int lo = i < j ? i : j, hi = i < j ? j : i;
    nodes[lo] = joined;
    nodes[hi] = nodes[left - 1];
  }
  if (nodes[0].value < 1 || nodes[0].value > 999) return 0;
  p->target = nodes[0].value;
  snprintf(p->answer, sizeof p->answer, "%s", nodes[0].expr);
  int64_t sorted[MAX_NUMBERS];
  memcpy(sorted, p->numbers, sizeof sorted[0] * (size_t)n);
  qsort(sorted, (size_t)n, sizeof sorted[0], cmp_i64);
  text k = text_on(p->key, sizeof p->key),
       q = text_on(p->prompt, sizeof p->prompt);
  for (int i = 0; i < n; i++)
    put(&k, "%s%lld", i ? "," : "", (long long)sorted[i]);
  put(&k, ">%lld", (long long)p->target);
  put(&q, "%s", style == R1D_PROMPT_PLAIN ? "Using the numbers [" : "Use ");
  for (int i = 0; i < n; i++)
    put(&q, "%s%lld", i ? ", " : "", (long long)p->numbers[i]);
  if (style == R1D_PROMPT_PLAIN)
    put(&q, "], make %lld. Use each number exactly once with + - * /.",
        (long long)p->target);
  else
    put(&q, " to make %lld with + - * /, each once.", (long long)p->target);
  p->over |= k.over | q.over;
  for (int l = 0; l < N_LANGS; l++) {
    text t = text_on(p->thought[l], THOUGHT_MAX);
    for (int s = 0; s < n_steps; s++)
      put(&t, "%s%lld%s%lld%s%lld", s ? "\n" : "", (long long)steps[s].a,
          langs[l].op[op_index(steps[s].op)], (long long)steps[s].b,
          langs[l].eq, (long long)steps[s].c);
    p->over |= t.over;
  }
  return 1;
}

/* ---- the spec and the loop ---- */

typedef struct spec {
  enum kind kind;
  int level;
  r1d_prompt_style style;
} spec;

/* NAME[:LEVEL][:STYLE], the two suffixes in either order. */
static int parse_spec(const char *s, r1d_prompt_style dflt, spec *out,
                      r1d_error *err) {
  char buf[64];
  if (strlen(s) >= sizeof buf)
    return r1d_fail(err, R1D_EINVAL, "task generator '%.40s...': too long", s);
  snprintf(buf, sizeof buf, "%s", s);
  char *field = strchr(buf, ':');
  if (field) *field++ = '\0';
  if (!buf[0])
    return r1d_fail(err, R1D_EINVAL, "task generator '%s': no name", s);
  int kind = -1;
  for (int k = 0; k < N_KINDS; k++)
    if (!strcmp(buf, kind_names[k])) kind = k;
  if (kind < 0)
    return r1d_fail(err, R1D_EINVAL,
                    "unknown task generator '%s' (addition, multiply, "
                    "multistep, countdown)",
                    buf);
  int level = 0, styled = 0;
  r1d_prompt_style style = dflt;
  while (field) {
    char *next = strchr(field, ':');
    if (next) *next++ = '\0';
    if (field[0] >= '0' && field[0] <= '9') {
      char *end;
      long v = strtol(field, &end, 10);
      if (*end || level || v < min_level[kind] || v > max_level[kind])
        return r1d_fail(err, R1D_EINVAL,
                        "task generator '%s': the level of %s must be %d..%d",
                        s, buf, min_level[kind], max_level[kind]);
      level = (int)v;
    } else if (!styled && !strcmp(field, "plain")) {
      style = R1D_PROMPT_PLAIN, styled = 1;
    } else if (!styled && !strcmp(field, "natural")) {
      style = R1D_PROMPT_NATURAL, styled = 1;
    } else {
      return r1d_fail(err, R1D_EINVAL,
                      "task generator '%s': '%s' is neither a level nor a "
                      "prompt style (natural, plain)",
                      s, field);
    }
    field = next;
  }
  *out = (spec){(enum kind)kind, level ? level : default_level[kind], style};
  return 0;
}

/* 1: drawn; 0: draw again (a countdown that missed its range). */
static int draw(r1d_rng *r, const spec *sp, problem *p) {
  switch (sp->kind) {
  case ADDITION: gen_addition(r, sp->level, sp->style, p); return 1;
  case MULTIPLY: gen_multiply(r, sp->level, sp->style, p); return 1;
  case MULTISTEP: gen_multistep(r, sp->level, sp->style, p); return 1;
  default: return gen_countdown(r, sp->level, sp->style, p);
  }
}

static json_t *task_json(const spec *sp, const problem *p, const char *id,
                         const char *split, int extra) {
  json_t *checker;
  if (sp->kind == COUNTDOWN) {
    json_t *nums = json_array();
    for (int i = 0; i < p->n_numbers; i++)
      json_array_append_new(nums, json_integer((json_int_t)p->numbers[i]));
    checker =
        json_pack("{s:s, s:o, s:I, s:s}", "type", "countdown", "numbers", nums,
                  "target", (json_int_t)p->target, "answer", p->answer);
  } else {
    checker = json_pack("{s:s, s:s}", "type", "math", "answer", p->answer);
  }
  json_t *solution =
      extra ? json_pack("{s:s, s:s, s:s, s:s}", "thought", p->thought[0],
                        "answer", p->answer, "thought_zh", p->thought[1],
                        "thought_short", short_thoughts[sp->kind])
            : json_pack("{s:s, s:s}", "thought", p->thought[0], "answer",
                        p->answer);
  char source[48];
  snprintf(source, sizeof source, "gen:%s:%d", kind_names[sp->kind], sp->level);
  return json_pack("{s:s, s:s, s:o, s:s, s:s, s:o}", "id", id, "prompt",
                   p->prompt, "checker", checker, "split", split, "source",
                   source, "solution", solution);
}

int r1d_task_gen_each(const char *spec_text, int n_train, int n_eval,
                      uint64_t seed, const r1d_task_gen_opts *opts,
                      r1d_task_gen_fn fn, void *user, r1d_error *err) {
  r1d_task_gen_opts o = opts ? *opts : (r1d_task_gen_opts){0};
  spec sp = {0};
  int rc = parse_spec(spec_text, o.style, &sp, err);
  if (rc) return rc;
  if (n_train < 0 || n_eval < 0 || n_train > 1000000 - n_eval)
    return r1d_fail(err, R1D_EINVAL,
                    "task counts must be >= 0 and at most 1000000 in all");
  const char *name = kind_names[sp.kind];
  int total = n_train + n_eval;
  size_t cap = 64;
  while (cap < (size_t)total * 2 + 2)
    cap *= 2;
  uint64_t *seen = calloc(cap, sizeof *seen);
  problem *p = malloc(sizeof *p);
  if (!seen || !p) {
    free(seen);
    free(p);
    return r1d_fail(err, R1D_ENOMEM, "out of memory");
  }
  r1d_rng rng;
  r1d_rng_seed(&rng, seed);
  long tries = 0, max_tries = 200L * total + 1000;
  int made = 0;
  while (made < total) {
    if (++tries > max_tries) {
      rc = r1d_fail(err, R1D_ERANGE,
                    "task generator %s:%d has fewer than %d distinct "
                    "problems (made %d)",
                    name, sp.level, total, made);
      break;
    }
    memset(p, 0, sizeof *p);
    if (!draw(&rng, &sp, p)) continue;
    if (p->over) {
      rc = r1d_fail(err, R1D_ERANGE,
                    "task generator %s:%d: a problem's text "
                    "does not fit its buffer (a bug)",
                    name, sp.level);
      break;
    }
    if (!set_add(seen, cap, fnv1a(p->key))) continue;
    char id[64];
    snprintf(id, sizeof id, "%s%d-s%llu-%d", name, sp.level,
             (unsigned long long)seed, made);
    json_t *task = task_json(&sp, p, id, made < n_train ? "train" : "eval",
                             o.extra_thoughts);
    if (!task) {
      rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
      break;
    }
    rc = fn(user, task, err);
    json_decref(task);
    if (rc) break;
    made++;
  }
  free(seen);
  free(p);
  return rc;
}

static int append_task(void *user, json_t *task, r1d_error *err) {
  if (json_array_append(user, task))
    return r1d_fail(err, R1D_ENOMEM, "out of memory");
  return 0;
}

int r1d_task_gen_ex(const char *spec, int n_train, int n_eval, uint64_t seed,
                    const r1d_task_gen_opts *opts, json_t **out,
                    r1d_error *err) {
  json_t *arr = json_array();
  if (!arr) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  int rc = r1d_task_gen_each(spec, n_train, n_eval, seed, opts, append_task,
                             arr, err);
  if (rc) {
    json_decref(arr);
    return rc;
  }
  *out = arr;
  return R1D_OK;
}

int r1d_task_gen(const char *spec, int n_train, int n_eval, uint64_t seed,
                 json_t **out, r1d_error *err) {
  return r1d_task_gen_ex(spec, n_train, n_eval, seed, NULL, out, err);
}
