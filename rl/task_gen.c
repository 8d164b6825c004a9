/* task_gen.c - the built-in task generators (task_gen.h). Each draws
 * problems from the seeded RNG, drops any whose prompt was drawn before (a
 * small open-addressing set of 64-bit FNV-1a hashes of the prompts), and
 * gives the first n_train to "train" and the rest to "eval", so the splits
 * never share a problem. */
#include "task_gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"

enum { PROMPT_MAX = 160, EXPR_MAX = 128 };

typedef struct problem {
  char prompt[PROMPT_MAX];
  char answer[EXPR_MAX]; /* math: the value; countdown: a solution */
  int64_t numbers[8], target;
  int n_numbers; /* countdown only */
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

static void gen_addition(r1d_rng *r, int digits, problem *p) {
  int64_t lo = 1, hi;
  for (int i = 1; i < digits; i++)
    lo *= 10;
  hi = lo * 10 - 1;
  if (digits == 1) lo = 0;
  int64_t a = uniform(r, lo, hi), b = uniform(r, lo, hi);
  snprintf(p->prompt, sizeof p->prompt, "%lld+%lld=", (long long)a,
           (long long)b);
  snprintf(p->answer, sizeof p->answer, "%lld", (long long)(a + b));
}

/* n operations over numbers 1..20 with + - *, evaluated with precedence:
 * products first, then sums left to right. */
static void gen_multistep(r1d_rng *r, int ops, problem *p) {
  static const char opc[] = "+-*";
  int64_t terms_sum = 0, term = uniform(r, 1, 20);
  int sign = 1;
  int n = snprintf(p->prompt, sizeof p->prompt, "%lld", (long long)term);
  for (int i = 0; i < ops; i++) {
    char op = opc[r1d_rng_next(r) % 3];
    int64_t x = uniform(r, 1, op == '*' ? 9 : 20);
    n += snprintf(p->prompt + n, sizeof p->prompt - (size_t)n, "%c%lld", op,
                  (long long)x);
    if (op == '*') {
      term *= x;
    } else {
      terms_sum += sign * term;
      sign = op == '+' ? 1 : -1;
      term = x;
    }
  }
  terms_sum += sign * term;
  snprintf(p->prompt + n, sizeof p->prompt - (size_t)n, "=");
  snprintf(p->answer, sizeof p->answer, "%lld", (long long)terms_sum);
}

/* n numbers from 1..25 combined pairwise at random into one value, kept as
 * the target when it is in 1..999 (else 0: the caller draws again). */
static int gen_countdown(r1d_rng *r, int n, problem *p) {
  int64_t val[8];
  char expr[8][EXPR_MAX];
  for (int i = 0; i < n; i++) {
    val[i] = p->numbers[i] = uniform(r, 1, 25);
    snprintf(expr[i], EXPR_MAX, "%lld", (long long)val[i]);
  }
  p->n_numbers = n;
  for (int left = n; left > 1; left--) {
    int i = (int)(r1d_rng_next(r) % (uint64_t)left);
    int j = (int)(r1d_rng_next(r) % (uint64_t)(left - 1));
    if (j >= i) j++;
    int64_t a = val[i], b = val[j], c;
    char op;
    switch (r1d_rng_next(r) % 4) {
    case 0: c = a + b, op = '+'; break;
    case 1: c = a - b, op = '-'; break;
    case 2: c = a * b, op = '*'; break;
    default:
      if (b == 0 || a % b) return 0;
      c = a / b, op = '/';
    }
    char e[EXPR_MAX];
    if (snprintf(e, sizeof e, "(%s%c%s)", expr[i], op, expr[j]) >= EXPR_MAX)
      return 0;
    int lo = i < j ? i : j, hi = i < j ? j : i;
    val[lo] = c;
    memcpy(expr[lo], e, sizeof e);
    val[hi] = val[left - 1];
    memcpy(expr[hi], expr[left - 1], EXPR_MAX);
  }
  if (val[0] < 1 || val[0] > 999) return 0;
  p->target = val[0];
  snprintf(p->answer, sizeof p->answer, "%s", expr[0]);
  int m = snprintf(p->prompt, sizeof p->prompt, "Using the numbers [");
  for (int i = 0; i < n; i++)
    m += snprintf(p->prompt + m, sizeof p->prompt - (size_t)m, "%s%lld",
                  i ? ", " : "", (long long)p->numbers[i]);
  snprintf(p->prompt + m, sizeof p->prompt - (size_t)m,
           "], make %lld. Use each number exactly once with + - * /.",
           (long long)p->target);
  return 1;
}

int r1d_task_gen(const char *spec, int n_train, int n_eval, uint64_t seed,
                 json_t **out, r1d_error *err) {
  char name[32];
  int level = 0;
  const char *colon = strchr(spec, ':');
  size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
  if (len == 0 || len >= sizeof name)
    return r1d_fail(err, R1D_EINVAL, "task generator '%s': no name", spec);
  memcpy(name, spec, len);
  name[len] = 0;
  if (colon) {
    char *end;
    long v = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || v < 1 || v > 9)
      return r1d_fail(err, R1D_EINVAL,
                      "task generator '%s': the level must be 1..9", spec);
    level = (int)v;
  }
  int kind = !strcmp(name, "addition")    ? 0
             : !strcmp(name, "multistep") ? 1
             : !strcmp(name, "countdown") ? 2
                                          : -1;
  if (kind < 0)
    return r1d_fail(err, R1D_EINVAL,
                    "unknown task generator '%s' (addition, multistep, "
                    "countdown)",
                    name);
  static const int defaults[] = {2, 3, 4}, max_level[] = {9, 8, 6},
                   min_level[] = {1, 1, 2};
  if (!level) level = defaults[kind];
  if (level < min_level[kind] || level > max_level[kind])
    return r1d_fail(err, R1D_EINVAL,
                    "task generator %s: the level must be %d..%d", name,
                    min_level[kind], max_level[kind]);
  if (n_train < 0 || n_eval < 0 || n_train + n_eval > 1000000)
    return r1d_fail(err, R1D_EINVAL,
                    "task counts must be >= 0 and at most 1000000 in all");
  int total = n_train + n_eval;
  size_t cap = 64;
  while (cap < (size_t)total * 2 + 2)
    cap *= 2;
  uint64_t *seen = calloc(cap, sizeof *seen);
  json_t *arr = json_array();
  if (!seen || !arr) {
    free(seen);
    json_decref(arr);
    return r1d_fail(err, R1D_ENOMEM, "out of memory");
  }
  r1d_rng rng;
  r1d_rng_seed(&rng, seed);
  long tries = 0, max_tries = 200L * total + 1000;
  int made = 0, rc = R1D_OK;
  while (made < total) {
    if (++tries > max_tries) {
      rc = r1d_fail(err, R1D_ERANGE,
                    "task generator %s:%d has fewer than %d distinct "
                    "problems (made %d)",
                    name, level, total, made);
      break;
    }
    problem p = {0};
    if (kind == 0)
      gen_addition(&rng, level, &p);
    else if (kind == 1)
      gen_multistep(&rng, level, &p);
    else if (!gen_countdown(&rng, level, &p))
      continue;
    if (!set_add(seen, cap, fnv1a(p.prompt))) continue;
    char id[64];
    snprintf(id, sizeof id, "%s%d-s%llu-%d", name, level,
             (unsigned long long)seed, made);
    json_t *checker;
    if (kind == 2) {
      json_t *nums = json_array();
      for (int i = 0; i < p.n_numbers; i++)
        json_array_append_new(nums, json_integer((json_int_t)p.numbers[i]));
      checker =
          json_pack("{s:s, s:o, s:I, s:s}", "type", "countdown", "numbers",
                    nums, "target", (json_int_t)p.target, "answer", p.answer);
    } else {
      checker = json_pack("{s:s, s:s}", "type", "math", "answer", p.answer);
    }
    char source[48];
    snprintf(source, sizeof source, "gen:%s:%d", name, level);
    json_t *task = json_pack(
        "{s:s, s:s, s:o, s:s, s:s}", "id", id, "prompt", p.prompt, "checker",
        checker, "split", made < n_train ? "train" : "eval", "source", source);
    if (!task || json_array_append_new(arr, task)) {
      rc = r1d_fail(err, R1D_ENOMEM, "out of memory");
      break;
    }
    made++;
  }
  free(seen);
  if (rc) {
    json_decref(arr);
    return rc;
  }
  *out = arr;
  return R1D_OK;
}
