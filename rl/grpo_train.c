/* grpo_train.c - GRPO's forward and backward on the host trainer: samples
 * packed padding-free, their completion logprobs read off the training
 * forward, the per-token objective of rl/grpo.c, and the weighted backward
 * (r1d_train_backward_weighted). See grpo_train.h. */
#include "grpo_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The token arrays of one pack of samples [first, end). */
typedef struct pack {
  int32_t *ids, *targets;
  int *doc_lens;
  int n_tokens, n_docs, first, end;
} pack;

static int sample_check(const r1d_grpo_sample *s, int i, int max_tokens,
                        r1d_error *err) {
  if (s->n_prompt < 1 || s->n_completion < 1 || !s->prompt || !s->completion)
    return r1d_fail(err, R1D_EINVAL,
                    "grpo: sample %d has an empty prompt or completion", i);
  if ((long)s->n_prompt + s->n_completion > max_tokens)
    return r1d_fail(err, R1D_ERANGE,
                    "grpo: sample %d has %d prompt + %d completion tokens, "
                    "over the %d a training pass holds",
                    i, s->n_prompt, s->n_completion, max_tokens);
  return R1D_OK;
}

/* Fills pk with the samples from `first` on that fit max_tokens. */
static int pack_fill(pack *pk, const r1d_grpo_sample *s, int n, int first,
                     int max_tokens, r1d_error *err) {
  pk->n_tokens = pk->n_docs = 0;
  pk->first = first;
  int i = first;
  for (; i < n; i++) {
    int rc = sample_check(&s[i], i, max_tokens, err);
    if (rc) return rc;
    int len = s[i].n_prompt + s[i].n_completion;
    if (pk->n_tokens + len > max_tokens) break;
    int32_t *ids = pk->ids + pk->n_tokens, *tg = pk->targets + pk->n_tokens;
    memcpy(ids, s[i].prompt, (size_t)s[i].n_prompt * sizeof *ids);
    memcpy(ids + s[i].n_prompt, s[i].completion,
           (size_t)s[i].n_completion * sizeof *ids);
    for (int j = 0; j < len; j++)
      tg[j] = -1;
    /* row n_prompt - 1 + t predicts completion token t */
    memcpy(tg + s[i].n_prompt - 1, s[i].completion,
           (size_t)s[i].n_completion * sizeof *tg);
    pk->doc_lens[pk->n_docs++] = len;
    pk->n_tokens += len;
  }
  pk->end = i;
  return R1D_OK;
}

static int pack_alloc(pack *pk, int max_tokens, r1d_error *err) {
  memset(pk, 0, sizeof *pk);
  pk->ids = malloc((size_t)max_tokens * sizeof *pk->ids);
  pk->targets = malloc((size_t)max_tokens * sizeof *pk->targets);
  pk->doc_lens = malloc((size_t)max_tokens * sizeof *pk->doc_lens);
  if (!pk->ids || !pk->targets || !pk->doc_lens)
    return r1d_fail(err, R1D_ENOMEM, "grpo: out of memory for a pack");
  return R1D_OK;
}

static void pack_free(pack *pk) {
  free(pk->ids);
  free(pk->targets);
  free(pk->doc_lens);
}

/* The completion logprobs of sample i (which starts at row `row0` of the
 * pack) out of the forward's target_logprob. */
static const float *sample_lp(const r1d_train_plan *plan,
                              const r1d_grpo_sample *s, int row0) {
  return plan->target_logprob + row0 + s->n_prompt - 1;
}

/* The next pack from sample `first` on, through the training forward. */
static int pack_forward(pack *pk, r1d_train_model *tm, r1d_train_plan *plan,
                        const r1d_grpo_sample *s, int n, int first,
                        r1d_error *err) {
  float loss; /* unused: the objective is the caller's */
  int rc = pack_fill(pk, s, n, first, plan->max_tokens, err);
  if (rc == 0)
    rc = r1d_train_forward_docs(tm, plan, pk->ids, pk->targets, pk->n_tokens,
                                pk->doc_lens, pk->n_docs, &loss, err);
  return rc;
}

int r1d_grpo_logprobs(r1d_train_model *tm, r1d_train_plan *plan,
                      const r1d_grpo_sample *s, int n, float **lp,
                      r1d_error *err) {
  pack pk;
  int rc = pack_alloc(&pk, plan->max_tokens, err);
  for (int first = 0; !rc && first < n; first = pk.end) {
    if ((rc = pack_forward(&pk, tm, plan, s, n, first, err))) break;
    for (int i = pk.first, row = 0; i < pk.end; i++) {
      memcpy(lp[i], sample_lp(plan, &s[i], row),
             (size_t)s[i].n_completion * sizeof(float));
      row += s[i].n_prompt + s[i].n_completion;
    }
  }
  pack_free(&pk);
  return rc;
}

int r1d_grpo_accumulate(const r1d_grpo_config *c, r1d_train_model *tm,
                        r1d_train_plan *plan, const r1d_grpo_sample *s, int n,
                        r1d_grpo_stats *st, r1d_error *err) {
  long total = 0;
  for (int i = 0; i < n; i++)
    total += s[i].n_completion > 0 ? s[i].n_completion : 0;
  pack pk;
  int rc = pack_alloc(&pk, plan->max_tokens, err);
  float *dlp = rc ? NULL : malloc((size_t)plan->max_tokens * sizeof *dlp);
  if (!rc && !dlp) rc = r1d_fail(err, R1D_ENOMEM, "grpo: out of memory");
  for (int first = 0; !rc && first < n; first = pk.end) {
    if ((rc = pack_forward(&pk, tm, plan, s, n, first, err))) break;
    memset(dlp, 0, (size_t)pk.n_tokens * sizeof *dlp);
    double nonfinite = st->nonfinite;
    for (int i = pk.first, row = 0; i < pk.end; i++) {
      const r1d_grpo_sample *si = &s[i];
      double w = r1d_grpo_token_weight(c, si->n_completion, n, total);
      r1d_grpo_sequence(c, si->advantage, w, si->n_completion,
                        sample_lp(plan, si, row), si->lp_old, si->lp_ref,
                        dlp + row + si->n_prompt - 1, st);
      row += si->n_prompt + si->n_completion;
    }
    if (st->nonfinite > nonfinite) {
      rc = r1d_fail(err, R1D_ERANGE,
                    "grpo: %.0f token(s) of samples %d..%d have a non-finite "
                    "loss (logprob, ratio or KL)",
                    st->nonfinite - nonfinite, pk.first, pk.end - 1);
      break;
    }
    rc = r1d_train_backward_weighted(tm, plan, dlp, err);
  }
  free(dlp);
  pack_free(&pk);
  return rc;
}
