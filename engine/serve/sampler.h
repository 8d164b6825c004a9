/* sampler.h - turns one row of logits into the next token: logit bias,
 * repetition (prompt + output, HF/vLLM semantics), presence and frequency
 * penalties (output only, OpenAI semantics), temperature, top-k, top-p, min-p,
 * then a draw from a per-request seeded RNG (same seed, same output) or argmax
 * when temperature is 0. Also reports the chosen token's logprob and the top
 * alternatives, both from the raw model distribution (log_softmax of the
 * unmodified logits), as vLLM does by default. */
#ifndef R1D_ENGINE_SERVE_SAMPLER_H
#define R1D_ENGINE_SERVE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "../../common/status.h"

typedef struct r1d_logit_bias {
  int32_t id;
  float bias;
} r1d_logit_bias;

typedef struct r1d_sampling_params {
  float temperature;        /* 0 = greedy */
  int top_k;                /* <= 0: off */
  float top_p;              /* 1 = off */
  float min_p;              /* 0 = off */
  float presence_penalty;   /* 0 = off, [-2, 2] */
  float frequency_penalty;  /* 0 = off, [-2, 2] */
  float repetition_penalty; /* 1 = off, > 0 */
  const r1d_logit_bias *logit_bias;
  int n_logit_bias;
  uint64_t seed;
} r1d_sampling_params;

/* Defaults: temperature 1, top_p 1, top_k off, min_p 0, penalties off, seed 0. */
void r1d_sampling_params_default(r1d_sampling_params *p);
/* Checks ranges; R1D_EINVAL with a message naming the field and value.
 * temperature [0, 2] (below 1e-5 is greedy), top_p (0, 1], top_k >= -1,
 * min_p [0, 1], presence/frequency [-2, 2], repetition (0, 2], logit_bias
 * ids in [0, vocab) with bias in [-100, 100]. */
int r1d_sampling_params_validate(const r1d_sampling_params *p, int vocab,
                                 r1d_error *err);

typedef struct r1d_sampler r1d_sampler;

/* The prompt ids count for the repetition penalty only. */
int r1d_sampler_create(const r1d_sampling_params *p, int vocab,
                       const int32_t *prompt, size_t n_prompt,
                       r1d_sampler **out, r1d_error *err);
void r1d_sampler_free(r1d_sampler *s);

typedef struct r1d_top_logprob {
  int32_t id;
  float logprob;
} r1d_top_logprob;

/* Picks the next token from logits[vocab] (the buffer is modified). Writes the
 * token's raw logprob to *logprob (may be NULL) and the n_top most likely
 * tokens (raw) to top[] (may be NULL when n_top is 0), sorted descending.
 * Records the token as generated (for penalties). Returns the token id.
 * Equal scores order by lower id (greedy ties, top[], top-k); when n_top
 * exceeds vocab the extra entries are {-1, -inf}. Never allocates. */
int32_t r1d_sampler_sample(r1d_sampler *s, float *logits, float *logprob,
                           r1d_top_logprob *top, int n_top);

/* Takes id as the next token without sampling (a thinking budget closing
 * the thought): reports its raw logprob and the raw top alternatives from
 * logits[vocab] (unchanged) like r1d_sampler_sample, and records it for the
 * penalties. Draws nothing from the RNG. Returns id (in [0, vocab)). */
int32_t r1d_sampler_force(r1d_sampler *s, const float *logits, int32_t id,
                          float *logprob, r1d_top_logprob *top, int n_top);

/* The raw log_softmax of logits[vocab] at id, and the n_top most likely
 * tokens into top[] (may be NULL when n_top is 0), with the conventions of
 * r1d_sampler_sample (sorted descending, ties to the lower id, {-1, -inf}
 * past vocab). logits is not modified; never allocates. */
float r1d_raw_logprob(const float *logits, int vocab, int32_t id,
                      r1d_top_logprob *top, int n_top);

/* Device sampling (the backend's `sample` op): 1 when this sampler needs
 * nothing but temperature, top-k, top-p and min-p (no bias, no penalties,
 * no top logprobs), so a backend can draw the token given one uniform from
 * this sampler's RNG. Seeded draws then differ from the host path's (another
 * algorithm) but are reproducible on that backend. */
int r1d_sampler_device_ok(const r1d_sampler *s, int n_top);
void r1d_sampler_device_params(const r1d_sampler *s, float *temperature,
                               int32_t *top_k, float *top_p, float *min_p);
float r1d_sampler_next_uniform(r1d_sampler *s);

#endif
