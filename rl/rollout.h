/* rollout.h - sampling completions for training and evaluation through the
 * serving engine (engine/serve/engine.h): n samples of each prompt as one
 * request each (the engine shares the prompt's KV blocks between them),
 * at background priority so interactive requests go first, on the weight
 * version the caller names. The caller blocks until every sample is done.
 *
 * Each sample keeps the token ids the model produced (the EOS or stop token
 * included: the policy chose it, so it is trained on), their raw logprobs,
 * the finish reason, and the decoded text with special tokens kept but a
 * final EOS/stop token left out, which is what a reward reads. */
#ifndef R1D_RL_ROLLOUT_H
#define R1D_RL_ROLLOUT_H

#include <stddef.h>
#include <stdint.h>

#include "../common/status.h"
#include "../engine/serve/engine.h"
#include "../engine/text/tokenizer.h"

typedef struct r1d_rollout {
  int32_t *ids;    /* [n] completion tokens */
  float *logprobs; /* [n] raw logprobs of the sampling policy */
  int n, cap;
  char *text; /* decoded, NUL-terminated (may be NULL on error) */
  size_t text_len;
  r1d_finish_reason finish;
  int failed; /* the engine failed or cancelled this sample */
} r1d_rollout;

typedef struct r1d_rollout_prompt {
  const int32_t *ids;
  int n;
} r1d_rollout_prompt;

/* Samples n_per_prompt completions of each prompt with `params` (seed:
 * prompt i's sample j uses params.sampling.seed + i * 1000003 + j) into
 * out[i * n_per_prompt + j] (zeroed by the call). Fails with the submit
 * error (naming the prompt) or R1D_EBACKEND when the engine failed a
 * sample; out is freed then. weight_version 0: the live version. */
int r1d_rollout_run(r1d_engine *e, const r1d_tokenizer *tok,
                    const r1d_rollout_prompt *prompts, int n_prompts,
                    int n_per_prompt, const r1d_gen_params *params,
                    uint64_t weight_version, r1d_rollout *out, r1d_error *err);

void r1d_rollout_free(r1d_rollout *r, int n);

#endif
