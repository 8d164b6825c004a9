/* grpo_train.h - one GRPO update's forward and backward on the host trainer
 * (engine/model/train.h): completions packed padding-free with their
 * prompts, their tokens' logprobs under the policy (and under the reference
 * model and the sampling policy when asked), and the gradient of the GRPO
 * loss (rl/grpo.h) accumulated into the policy's gradients.
 *
 * A sample is prompt ++ completion laid end to end as one document; row
 * n_prompt - 1 + t predicts completion token t, every other row is ignored,
 * so only completion tokens carry loss (TRL's completion mask). Samples go
 * into packs of up to the plan's max_tokens in their order; the reduction
 * weights are those of the whole set handed in (one optimizer step), so how
 * the samples fall into packs changes nothing but rounding. */
#ifndef R1D_RL_GRPO_TRAIN_H
#define R1D_RL_GRPO_TRAIN_H

#include <stdint.h>

#include "../common/status.h"
#include "../engine/model/train.h"
#include "grpo.h"

typedef struct r1d_grpo_sample {
  const int32_t *prompt; /* [n_prompt], n_prompt >= 1 */
  int n_prompt;
  const int32_t *completion; /* [n_completion], n_completion >= 1 */
  int n_completion;
  double advantage;
  float *lp_old; /* [n_completion] or NULL (ratio 1) */
  float *lp_ref; /* [n_completion]; read when beta > 0 */
} r1d_grpo_sample;

/* Writes each sample's completion logprobs under tm into lp[i] (an array of
 * n pointers to [n_completion] floats): the sampling policy's before the
 * first of several updates (lp_old), or the reference model's (lp_ref). No
 * gradient. R1D_ERANGE names a sample longer than the plan's max_tokens. */
int r1d_grpo_logprobs(r1d_train_model *tm, r1d_train_plan *plan,
                      const r1d_grpo_sample *s, int n, float **lp,
                      r1d_error *err);

/* Forward and backward of the GRPO loss of samples s[0..n) as one step:
 * ADDS its gradient to tm's gradients (zero them first) and its loss, KL,
 * ratio and clipping counts to *st. R1D_ERANGE for a non-finite logprob
 * (nothing is added then for that pack onwards), R1D_ERANGE for a sample
 * longer than the plan, R1D_EINVAL for an empty one. */
int r1d_grpo_accumulate(const r1d_grpo_config *c, r1d_train_model *tm,
                        r1d_train_plan *plan, const r1d_grpo_sample *s, int n,
                        r1d_grpo_stats *st, r1d_error *err);

#endif
