/* sampler.c - one row of logits in, one token id out.
 *
 * The order follows vLLM / Hugging Face:
 *   1. raw log_softmax of the untouched logits, for reporting (the chosen
 *      token's logprob and the top-n alternatives, by a size-n heap);
 *   2. logit bias, then the repetition penalty (HF: every id seen in the
 *      prompt or the output, logit > 0 ? logit / rp : logit * rp), then the
 *      frequency and presence penalties (OpenAI: output counts only);
 *   3. temperature 0 (below 1e-5): argmax, ties to the lowest id;
 *   4. otherwise weights w = exp((logit - max) / T), then top-k (a size-k
 *      heap, not a sort), top-p (smallest prefix by probability whose mass is
 *      >= top_p; inside the k when top-k is on, else found with a histogram
 *      of the weights so only one narrow bin is ever sorted), min-p (drop
 *      w < min_p * w_max, where w_max is 1), and a draw from the sampler's own
 *      xoshiro256** stream, seeded through splitmix64 from params.seed.
 *
 * Ordering ties between equal scores go to the lower id everywhere, so the
 * same seed and the same logits always give the same token.
 *
 * Memory per sampler is O(vocab) and allocated up front (nothing is allocated
 * while sampling): weights always, a candidate list when a filter is on, a
 * copy of the raw logits and seen/count tables only when penalties need them.
 * The caller's logits buffer is modified by bias and penalties only. */
#include "sampler.h"

#include "../../common/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* An id with a score; the same layout serves the top-n logprob heap (score =
 * logprob) and the sampling candidates (score = unnormalised weight). */
typedef r1d_top_logprob scored;

/* Bins of the top-p weight histogram (see nucleus_candidates): float bits of
 * 1.0f shifted right by HIST_SHIFT is the highest bin. */
enum { HIST_SHIFT = 18, HIST_BUCKETS = (0x3f800000 >> HIST_SHIFT) + 1 };

struct r1d_sampler {
  r1d_sampling_params p; /* logit_bias points at `bias` below */
  r1d_logit_bias *bias;
  int vocab;
  int greedy;
  int cap_cand;   /* capacity of `cand` (0: no filters, none allocated) */
  float *w;       /* [vocab] sampling weights (NULL when greedy) */
  scored *cand;   /* [cap_cand] candidates for top-k/top-p/min-p */
  double *hist;   /* [HIST_BUCKETS] weight histogram for top-p alone */
  float *raw;     /* [vocab] raw logits, kept when bias/penalties change them */
  uint8_t *seen;  /* [vocab] in prompt or output (repetition penalty) */
  int32_t *count; /* [vocab] occurrences in output (presence/frequency) */
  r1d_rng rng;
};

/* ---- parameters ---- */

void r1d_sampling_params_default(r1d_sampling_params *p) {
  memset(p, 0, sizeof *p);
  p->temperature = 1.0f;
  p->top_k = -1;
  p->top_p = 1.0f;
  p->min_p = 0.0f;
  p->repetition_penalty = 1.0f;
}

/* Written as !(lo <= x && x <= hi) so NaN fails every check. */
int r1d_sampling_params_validate(const r1d_sampling_params *p, int vocab,
                                 r1d_error *err) {
  if (vocab <= 0)
    return r1d_fail(err, R1D_EINVAL, "vocab must be > 0, got %d", vocab);
  if (!(p->temperature >= 0.0f && p->temperature <= 2.0f))
    return r1d_fail(err, R1D_EINVAL, "temperature must be in [0, 2], got %g",
                    (double)p->temperature);
  if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
    return r1d_fail(err, R1D_EINVAL, "top_p must be in (0, 1], got %g",
                    (double)p->top_p);
  if (p->top_k < -1)
    return r1d_fail(err, R1D_EINVAL,
                    "top_k must be -1 or 0 (off) or > 0, got %d", p->top_k);
  if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
    return r1d_fail(err, R1D_EINVAL, "min_p must be in [0, 1], got %g",
                    (double)p->min_p);
  if (!(p->presence_penalty >= -2.0f && p->presence_penalty <= 2.0f))
    return r1d_fail(err, R1D_EINVAL,
                    "presence_penalty must be in [-2, 2], got %g",
                    (double)p->presence_penalty);
  if (!(p->frequency_penalty >= -2.0f && p->frequency_penalty <= 2.0f))
    return r1d_fail(err, R1D_EINVAL,
                    "frequency_penalty must be in [-2, 2], got %g",
                    (double)p->frequency_penalty);
  if (!(p->repetition_penalty > 0.0f && p->repetition_penalty <= 2.0f))
    return r1d_fail(err, R1D_EINVAL,
                    "repetition_penalty must be in (0, 2], got %g",
                    (double)p->repetition_penalty);
  if (p->n_logit_bias < 0 || (p->n_logit_bias > 0 && !p->logit_bias))
    return r1d_fail(err, R1D_EINVAL, "logit_bias has %d entries but no array",
                    p->n_logit_bias);
  for (int i = 0; i < p->n_logit_bias; i++) {
    const r1d_logit_bias *b = &p->logit_bias[i];
    if (b->id < 0 || b->id >= vocab)
      return r1d_fail(err, R1D_EINVAL,
                      "logit_bias token id must be in [0, %d), got %d", vocab,
                      (int)b->id);
    if (!(b->bias >= -100.0f && b->bias <= 100.0f))
      return r1d_fail(err, R1D_EINVAL,
                      "logit_bias for token %d must be in [-100, 100], got %g",
                      (int)b->id, (double)b->bias);
  }
  return 0;
}

static int rep_active(const r1d_sampling_params *p) {
  return p->repetition_penalty != 1.0f;
}

static int count_active(const r1d_sampling_params *p) {
  return p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f;
}

static int top_k_active(const r1d_sampling_params *p, int vocab) {
  return p->top_k > 0 && p->top_k < vocab;
}

/* ---- create / free ---- */

void r1d_sampler_free(r1d_sampler *s) {
  if (!s) return;
  free(s->bias);
  free(s->w);
  free(s->cand);
  free(s->hist);
  free(s->raw);
  free(s->seen);
  free(s->count);
  free(s);
}

int r1d_sampler_create(const r1d_sampling_params *p, int vocab,
                       const int32_t *prompt, size_t n_prompt,
                       r1d_sampler **out, r1d_error *err) {
  *out = NULL;
  int rc = r1d_sampling_params_validate(p, vocab, err);
  if (rc) return rc;
  for (size_t i = 0; i < n_prompt; i++)
    if (prompt[i] < 0 || prompt[i] >= vocab)
      return r1d_fail(err, R1D_EINVAL,
                      "prompt token %zu is %d, outside the vocab [0, %d)", i,
                      (int)prompt[i], vocab);

  r1d_sampler *s = calloc(1, sizeof *s);
  if (!s) goto nomem;
  s->p = *p;
  s->vocab = vocab;
  s->greedy = p->temperature < 1e-5f;
  if (p->n_logit_bias > 0) {
    s->bias = malloc(sizeof *s->bias * (size_t)p->n_logit_bias);
    if (!s->bias) goto nomem;
    memcpy(s->bias, p->logit_bias, sizeof *s->bias * (size_t)p->n_logit_bias);
  }
  s->p.logit_bias = s->bias;
  if (!s->greedy) {
    s->w = malloc(sizeof *s->w * (size_t)vocab);
    if (!s->w) goto nomem;
    if (top_k_active(p, vocab))
      s->cap_cand = p->top_k;
    else if (p->top_p < 1.0f || p->min_p > 0.0f)
      s->cap_cand = vocab;
    if (s->cap_cand > 0) {
      s->cand = malloc(sizeof *s->cand * (size_t)s->cap_cand);
      if (!s->cand) goto nomem;
    }
    if (!top_k_active(p, vocab) && p->top_p < 1.0f) {
      s->hist = malloc(sizeof *s->hist * HIST_BUCKETS);
      if (!s->hist) goto nomem;
    }
  }
  if (p->n_logit_bias > 0 || rep_active(p) || count_active(p)) {
    s->raw = malloc(sizeof *s->raw * (size_t)vocab);
    if (!s->raw) goto nomem;
  }
  if (rep_active(p)) {
    s->seen = calloc((size_t)vocab, 1);
    if (!s->seen) goto nomem;
    for (size_t i = 0; i < n_prompt; i++)
      s->seen[prompt[i]] = 1;
  }
  if (count_active(p)) {
    s->count = calloc((size_t)vocab, sizeof *s->count);
    if (!s->count) goto nomem;
  }
  r1d_rng_seed(&s->rng, p->seed);
  *out = s;
  return 0;
nomem:
  r1d_sampler_free(s);
  return r1d_fail(err, R1D_ENOMEM,
                  "out of memory creating a sampler (vocab %d)", vocab);
}

/* ---- selection helpers ---- */

/* Strict total order: higher score first, then lower id. */
static int better(const scored *a, const scored *b) {
  return a->logprob > b->logprob || (a->logprob == b->logprob && a->id < b->id);
}

static int cmp_better_first(const void *a, const void *b) {
  const scored *x = a, *y = b;
  if (better(x, y)) return -1;
  if (better(y, x)) return 1;
  return 0;
}

/* Min-heap with the worst element at h[0]. */
static void heap_sift_down(scored *h, int n, int i) {
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && better(&h[m], &h[l])) m = l;
    if (r < n && better(&h[m], &h[r])) m = r;
    if (m == i) return;
    scored t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

static void heap_sift_up(scored *h, int i) {
  while (i > 0) {
    int parent = (i - 1) / 2;
    if (!better(&h[parent], &h[i])) return;
    scored t = h[i];
    h[i] = h[parent];
    h[parent] = t;
    i = parent;
  }
}

/* Keeps the best k of a stream in h[0..*n). Expected cost is O(1) per item
 * once the heap holds large values, since most items lose to h[0]. */
static void heap_offer(scored *h, int k, int *n, scored x) {
  if (*n < k) {
    h[*n] = x;
    heap_sift_up(h, (*n)++);
  } else if (better(&x, &h[0])) {
    h[0] = x;
    heap_sift_down(h, k, 0);
  }
}

/* The k best of v[0..n) by value (NaN skipped), sorted best first, into
 * out[0..k). Returns how many were found (< k when v has fewer). */
static int select_top(const float *v, int n, int k, scored *out) {
  int m = 0;
  for (int i = 0; i < n; i++) {
    if (isnan(v[i])) continue;
    heap_offer(out, k, &m, (scored){.id = i, .logprob = v[i]});
  }
  qsort(out, (size_t)m, sizeof *out, cmp_better_first);
  return m;
}

/* Index of the largest non-NaN value, ties to the lowest index; 0 when all
 * values are NaN. */
static int argmax(const float *v, int n) {
  int best = -1;
  for (int i = 0; i < n; i++)
    if (!isnan(v[i]) && (best < 0 || v[i] > v[best])) best = i;
  return best < 0 ? 0 : best;
}

/* log(sum(exp(v))) with max subtraction, exp in fp32; the sum runs in double
 * so a 150k vocab does not lose the small terms. */
static float log_sum_exp(const float *v, int n) {
  float m = v[argmax(v, n)];
  if (isinf(m)) return m; /* all -inf (or +inf): nothing finite to normalise */
  double sum = 0.0;
  for (int i = 0; i < n; i++)
    if (!isnan(v[i])) sum += expf(v[i] - m);
  return m + (float)log(sum);
}

/* ---- penalties ---- */

static void apply_bias_and_penalties(const r1d_sampler *s, float *logits) {
  const r1d_sampling_params *p = &s->p;
  for (int i = 0; i < p->n_logit_bias; i++)
    logits[p->logit_bias[i].id] += p->logit_bias[i].bias;
  if (s->seen) {
    const float rp = p->repetition_penalty;
    for (int i = 0; i < s->vocab; i++)
      if (s->seen[i])
        logits[i] = logits[i] > 0 ? logits[i] / rp : logits[i] * rp;
  }
  if (s->count) {
    const float fp = p->frequency_penalty, pp = p->presence_penalty;
    for (int i = 0; i < s->vocab; i++)
      if (s->count[i] > 0) logits[i] -= fp * (float)s->count[i] + pp;
  }
}

/* ---- the stochastic path ---- */

/* Fills s->w with exp((logit - max) / T) and returns their sum. */
static double fill_weights(r1d_sampler *s, const float *logits, float lmax) {
  const float inv_t = 1.0f / s->p.temperature;
  double z = 0.0;
  for (int i = 0; i < s->vocab; i++) {
    float w = isnan(logits[i]) ? 0.0f : expf((logits[i] - lmax) * inv_t);
    s->w[i] = w;
    z += w;
  }
  return z;
}

/* Top-p without top-k, in O(vocab) plus a sort of one small bucket.
 * Positive floats order like their bit patterns, so bits >> 18 (exponent and
 * 5 mantissa bits) buckets the weights (0, 1] monotonically into HIST_BUCKETS
 * bins, each spanning a factor of at most 1 + 1/32. Walking the bins from the
 * top finds the one where the cumulative mass reaches top_p; every token in a
 * higher bin is in the nucleus whatever the order, and only the boundary bin
 * needs sorting to find where, inside it, the mass crosses top_p. The result
 * is the same set as sorting the whole vocabulary (up to summation order). */
static int weight_bucket(float w) {
  uint32_t bits;
  memcpy(&bits, &w, sizeof bits);
  uint32_t b = bits >> HIST_SHIFT;
  return b < HIST_BUCKETS ? (int)b : HIST_BUCKETS - 1;
}

static int nucleus_candidates(r1d_sampler *s, double z) {
  const double need = (double)s->p.top_p * z;
  const float *w = s->w;
  double *hist = s->hist;
  memset(hist, 0, sizeof *hist * HIST_BUCKETS);
  for (int i = 0; i < s->vocab; i++)
    if (w[i] > 0.0f) hist[weight_bucket(w[i])] += w[i];
  int edge = 0; /* rounding never reaching `need` keeps everything */
  double above = 0.0;
  for (int b = HIST_BUCKETS - 1; b >= 0; b--) {
    if (above + hist[b] >= need) {
      edge = b;
      break;
    }
    above += hist[b];
  }
  /* higher bins fill cand from the front, the edge bin from the back */
  int n_above = 0, back = s->cap_cand;
  for (int i = 0; i < s->vocab; i++) {
    if (!(w[i] > 0.0f)) continue;
    int b = weight_bucket(w[i]);
    if (b > edge)
      s->cand[n_above++] = (scored){.id = i, .logprob = w[i]};
    else if (b == edge)
      s->cand[--back] = (scored){.id = i, .logprob = w[i]};
  }
  int n_edge = s->cap_cand - back;
  memmove(s->cand + n_above, s->cand + back, sizeof *s->cand * (size_t)n_edge);
  scored *e = s->cand + n_above;
  qsort(e, (size_t)n_edge, sizeof *e, cmp_better_first);
  double cum = above;
  for (int i = 0; i < n_edge; i++) {
    cum += e[i].logprob;
    if (cum >= need) return n_above + i + 1;
  }
  return n_above + n_edge;
}

/* Shortest prefix of sorted candidates whose mass reaches top_p of `total`
 * (at least one). */
static int cut_top_p(const scored *c, int n, float top_p, double total) {
  if (top_p >= 1.0f) return n;
  const double need = (double)top_p * total;
  double cum = 0.0;
  for (int i = 0; i < n; i++) {
    cum += c[i].logprob;
    if (cum >= need) return i + 1;
  }
  return n;
}

/* Keeps candidates with p / p_max >= min_p, i.e. w >= min_p since the top
 * token (always a candidate) has w = 1. Order is preserved. */
static int filter_min_p(scored *c, int n, float min_p) {
  if (min_p <= 0.0f) return n;
  int m = 0;
  for (int i = 0; i < n; i++)
    if (c[i].logprob >= min_p) c[m++] = c[i];
  return m;
}

/* Draw from candidates c[0..n) (n >= 1) with weights in .logprob. */
static int32_t draw_candidates(r1d_sampler *s, const scored *c, int n) {
  double total = 0.0;
  for (int i = 0; i < n; i++)
    total += c[i].logprob;
  double u = r1d_rng_uniform(&s->rng) * total, acc = 0.0;
  int last = 0;
  for (int i = 0; i < n; i++) {
    acc += c[i].logprob;
    if (u < acc) return c[i].id;
    if (c[i].logprob > 0.0f) last = i;
  }
  return c[last].id; /* rounding left u at the very end */
}

/* Draw over the whole vocabulary with weights s->w summing to z. */
static int32_t draw_all(r1d_sampler *s, double z, int fallback) {
  double u = r1d_rng_uniform(&s->rng) * z, acc = 0.0;
  for (int i = 0; i < s->vocab; i++) {
    acc += s->w[i];
    if (u < acc) return i;
  }
  return fallback;
}

static int32_t sample_stochastic(r1d_sampler *s, const float *logits) {
  const r1d_sampling_params *p = &s->p;
  int top = argmax(logits, s->vocab);
  float lmax = logits[top];
  /* Nothing finite to sample from (all -inf, or NaN from a broken model):
   * answer the argmax rather than draw from an empty set. */
  if (!isfinite(lmax)) return top;
  double z = fill_weights(s, logits, lmax);
  if (!(z > 0.0) || !isfinite(z)) return top;
  if (!s->cand) return draw_all(s, z, top);

  int n;
  if (top_k_active(p, s->vocab)) {
    n = select_top(s->w, s->vocab, p->top_k, s->cand);
    double total = 0.0;
    for (int i = 0; i < n; i++)
      total += s->cand[i].logprob;
    n = cut_top_p(s->cand, n, p->top_p, total);
  } else if (p->top_p < 1.0f) {
    n = nucleus_candidates(s, z);
  } else { /* min-p only: filter while collecting (min_p > 0 here) */
    n = 0;
    for (int i = 0; i < s->vocab; i++)
      if (s->w[i] >= p->min_p)
        s->cand[n++] = (scored){.id = i, .logprob = s->w[i]};
  }
  n = filter_min_p(s->cand, n, p->min_p);
  if (n <= 0) return top; /* NaN weights filtered everything out */
  return draw_candidates(s, s->cand, n);
}

/* ---- the public step ---- */

static void record(r1d_sampler *s, int32_t id) {
  if (s->seen) s->seen[id] = 1;
  if (s->count) s->count[id]++;
}

/* The n_top best raw logprobs of logits into top[] (padded with {-1, -inf}
 * past vocab), given lse = log_sum_exp(logits). */
static void raw_top(const float *logits, int vocab, float lse,
                    r1d_top_logprob *top, int n_top) {
  int k = n_top < vocab ? n_top : vocab;
  int m = select_top(logits, vocab, k, top);
  for (int i = 0; i < m; i++)
    top[i].logprob -= lse;
  for (int i = m; i < n_top; i++)
    top[i] = (r1d_top_logprob){.id = -1, .logprob = -INFINITY};
}

float r1d_raw_logprob(const float *logits, int vocab, int32_t id,
                      r1d_top_logprob *top, int n_top) {
  float lse = log_sum_exp(logits, vocab);
  if (top && n_top > 0) raw_top(logits, vocab, lse, top, n_top);
  return logits[id] - lse;
}

int32_t r1d_sampler_sample(r1d_sampler *s, float *logits, float *logprob,
                           r1d_top_logprob *top, int n_top) {
  const int vocab = s->vocab;
  float lse = 0.0f;
  if (logprob || (top && n_top > 0)) lse = log_sum_exp(logits, vocab);
  if (top && n_top > 0) raw_top(logits, vocab, lse, top, n_top);
  /* bias and penalties overwrite logits; keep the raw row for *logprob */
  const int keep_raw = logprob && s->raw;
  if (keep_raw) memcpy(s->raw, logits, sizeof *logits * (size_t)vocab);
  apply_bias_and_penalties(s, logits);

  int32_t id =
      s->greedy ? (int32_t)argmax(logits, vocab) : sample_stochastic(s, logits);
  if (logprob) *logprob = (keep_raw ? s->raw[id] : logits[id]) - lse;
  record(s, id);
  return id;
}

int32_t r1d_sampler_force(r1d_sampler *s, const float *logits, int32_t id,
                          float *logprob, r1d_top_logprob *top, int n_top) {
  if (logprob || (top && n_top > 0)) {
    float lp = r1d_raw_logprob(logits, s->vocab, id, top, n_top);
    if (logprob) *logprob = lp;
  }
  record(s, id);
  return id;
}

/* ---- sampling on a device ---- */

int r1d_sampler_device_ok(const r1d_sampler *s, int n_top) {
  const r1d_sampling_params *p = &s->p;
  return n_top == 0 && p->n_logit_bias == 0 && p->presence_penalty == 0.0f &&
         p->frequency_penalty == 0.0f && p->repetition_penalty == 1.0f;
}

void r1d_sampler_device_params(const r1d_sampler *s, float *temperature,
                               int32_t *top_k, float *top_p, float *min_p) {
  *temperature = s->greedy ? 0.0f : s->p.temperature;
  *top_k = s->p.top_k > 0 ? s->p.top_k : 0;
  *top_p = s->p.top_p;
  *min_p = s->p.min_p;
}

float r1d_sampler_next_uniform(r1d_sampler *s) {
  float u = (float)r1d_rng_uniform(&s->rng);
  return u < 1.0f ? u : 0.99999994f; /* a double just below 1 rounds up */
}
