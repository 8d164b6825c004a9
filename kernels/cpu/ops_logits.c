/* ops_logits.c - the ops on rows of logits: log-sum-exp (for logprobs) and
 * the batched sampling step (temperature, top-k, top-p, min-p, inverse-CDF
 * draw with a caller-supplied uniform per row).
 *
 * This is the reference for the device samplers, so it does the obvious
 * thing: weights w = exp((x - max) / T) for the whole row, one sort of every
 * token by (w descending, id ascending), then each filter is a prefix of that
 * order (top-k the first k; top-p the shortest prefix whose mass reaches
 * top_p of what top-k kept, as Hugging Face and vLLM apply it after top-k;
 * min-p the tokens with w >= min_p * w_max, also a prefix since the order is
 * by w) and the draw walks the kept prefix in the same order. Sums run in
 * double so a 150k vocabulary does not lose its small terms.
 *
 * NaN logits count as probability 0 and are skipped by the argmax and the
 * log-sum-exp (as engine/serve/sampler.c does); a row with nothing finite
 * to draw from answers its argmax. If the per-row scratch for the sort
 * cannot be allocated, that row falls back to its argmax (greedy) rather
 * than failing a step that has no way to report an error. */
#include <math.h>
#include <stdlib.h>

#include "cpu_ops.h"

/* Index of the largest non-NaN value, ties to the lowest index; 0 when the
 * whole row is NaN. */
static int row_argmax(const float *x, int n) {
  int best = -1;
  for (int i = 0; i < n; i++)
    if (!isnan(x[i]) && (best < 0 || x[i] > x[best])) best = i;
  return best < 0 ? 0 : best;
}

/* log(sum(exp(x))) with the maximum subtracted; exp in fp32, the sum in
 * double. All -inf gives -inf (and a +inf gives +inf). */
static float row_logsumexp(const float *x, int n) {
  float m = x[row_argmax(x, n)];
  if (!isfinite(m)) return m;
  double sum = 0.0;
  for (int i = 0; i < n; i++)
    if (!isnan(x[i])) sum += expf(x[i] - m);
  return m + (float)log(sum);
}

void r1d_cpu_logsumexp(void *ctx, int n, int vocab, const float *x,
                       float *lse) {
  (void)ctx;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; i++)
    lse[i] = row_logsumexp(x + (size_t)i * vocab, vocab);
}

/* ---- sampling ---- */

typedef struct candidate {
  float w; /* exp((logit - max) / T), in (0, 1]; 0 for NaN or underflow */
  int32_t id;
} candidate;

/* Most likely first; equal weights by lower id, so the order is total and
 * the draw is the same on every run and every backend. */
static int candidate_cmp(const void *a, const void *b) {
  const candidate *x = a, *y = b;
  if (x->w != y->w) return x->w > y->w ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}

/* Length of the shortest prefix of c[0..n) whose weight reaches top_p of the
 * prefix's total; n when top_p >= 1 (or NaN). */
static int cut_top_p(const candidate *c, int n, float top_p) {
  if (!(top_p < 1.0f)) return n;
  double total = 0.0;
  for (int i = 0; i < n; i++)
    total += c[i].w;
  double need = (double)top_p * total, cum = 0.0;
  for (int i = 0; i < n; i++) {
    cum += c[i].w;
    if (cum >= need) return i + 1;
  }
  return n; /* rounding never reached `need`: keep everything */
}

/* Length of the prefix with w >= min_p * w_max (at least 1); n when
 * min_p <= 0. */
static int cut_min_p(const candidate *c, int n, float min_p) {
  if (!(min_p > 0.0f)) return n;
  float thr = min_p * c[0].w;
  int k = 1;
  while (k < n && c[k].w >= thr)
    k++;
  return k;
}

/* Inverse CDF over c[0..n) with u in [0, 1): the first token whose
 * cumulative weight exceeds u * total. */
static int32_t draw(const candidate *c, int n, float u) {
  double total = 0.0;
  for (int i = 0; i < n; i++)
    total += c[i].w;
  double target = (double)u * total, acc = 0.0;
  int last = 0;
  for (int i = 0; i < n; i++) {
    acc += c[i].w;
    if (target < acc) return c[i].id;
    if (c[i].w > 0.0f) last = i;
  }
  return c[last].id; /* rounding left the target at the very end */
}

/* One row; scratch holds vocab candidates (NULL: allocation failed). */
static int32_t sample_row(const float *x, int vocab, float temperature,
                          int32_t top_k, float top_p, float min_p, float u,
                          candidate *scratch) {
  int top = row_argmax(x, vocab);
  if (!(temperature > 1e-5f)) return top;
  float xmax = x[top];
  /* nothing finite to draw from, or no memory to sort: greedy */
  if (!isfinite(xmax) || !scratch) return top;
  for (int j = 0; j < vocab; j++) {
    float w = isnan(x[j]) ? 0.0f : expf((x[j] - xmax) / temperature);
    scratch[j] = (candidate){.w = w, .id = j};
  }
  qsort(scratch, (size_t)vocab, sizeof *scratch, candidate_cmp);
  int n = top_k > 0 && top_k < vocab ? top_k : vocab;
  n = cut_top_p(scratch, n, top_p);
  n = cut_min_p(scratch, n, min_p);
  return draw(scratch, n, u);
}

void r1d_cpu_sample(void *ctx, int n, int vocab, const float *logits,
                    const float *temperature, const int32_t *top_k,
                    const float *top_p, const float *min_p, const float *u,
                    int32_t *token, float *logprob) {
  (void)ctx;
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 0; i < n; i++) {
    const float *x = logits + (size_t)i * vocab;
    int greedy = !(temperature[i] > 1e-5f);
    candidate *scratch =
        greedy ? NULL : malloc(sizeof *scratch * (size_t)vocab);
    int32_t t = sample_row(x, vocab, temperature[i], top_k[i], top_p[i],
                           min_p[i], u[i], scratch);
    free(scratch);
    token[i] = t;
    logprob[i] = x[t] - row_logsumexp(x, vocab);
  }
}
