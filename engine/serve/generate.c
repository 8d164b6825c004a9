/* generate.c - the single-sequence generation loop (see generate.h). */
#include "generate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "detok.h"

const char *r1d_finish_reason_name(r1d_finish_reason r) {
  switch (r) {
  case R1D_FINISH_STOP: return "stop";
  case R1D_FINISH_LENGTH: return "length";
  case R1D_FINISH_ABORT: return "abort";
  default: return "none";
  }
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int r1d_gen_params_validate(const r1d_gen_params *p, int vocab,
                            r1d_error *err) {
  if (p->max_tokens <= 0)
    return r1d_fail(err, R1D_EINVAL, "max_tokens must be > 0, got %d",
                    p->max_tokens);
  if (p->n_top_logprobs < 0 || p->n_top_logprobs > R1D_GEN_MAX_TOP)
    return r1d_fail(err, R1D_EINVAL, "top_logprobs must be in [0, %d], got %d",
                    R1D_GEN_MAX_TOP, p->n_top_logprobs);
  if (p->n_stop < 0 || (p->n_stop > 0 && !p->stop) || p->n_stop_ids < 0 ||
      (p->n_stop_ids > 0 && !p->stop_ids))
    return r1d_fail(err, R1D_EINVAL, "stop: a count without an array");
  for (int i = 0; i < p->n_stop; i++)
    if (!p->stop[i] || !p->stop[i][0])
      return r1d_fail(err, R1D_EINVAL, "stop string %d is empty", i);
  if (p->prompt_logprobs < 0 || p->prompt_logprobs > R1D_GEN_MAX_TOP + 1)
    return r1d_fail(err, R1D_EINVAL,
                    "prompt_logprobs must be in [0, %d] (0 off, k + 1 for k "
                    "alternatives), got %d",
                    R1D_GEN_MAX_TOP + 1, p->prompt_logprobs);
  if (p->think_budget_on != 0 && p->think_budget_on != 1)
    return r1d_fail(err, R1D_EINVAL,
                    "thinking_budget: think_budget_on must be 0 or 1, got %d",
                    p->think_budget_on);
  if (p->think_budget_on) {
    if (p->thinking_budget < 0)
      return r1d_fail(err, R1D_EINVAL, "thinking_budget must be >= 0, got %d",
                      p->thinking_budget);
    if (p->think_end_id < 0 || p->think_end_id >= vocab)
      return r1d_fail(err, R1D_EINVAL,
                      "thinking_budget needs think_end_id (the </think> "
                      "token) in [0, %d), got %d",
                      vocab, (int)p->think_end_id);
    if (p->think_start_id < -1 || p->think_start_id >= vocab)
      return r1d_fail(err, R1D_EINVAL,
                      "thinking_budget: think_start_id must be -1 or in "
                      "[0, %d), got %d",
                      vocab, (int)p->think_start_id);
    if (p->think_open != 0 && p->think_open != 1)
      return r1d_fail(err, R1D_EINVAL,
                      "thinking_budget: think_open must be 0 or 1, got %d",
                      p->think_open);
  }
  return r1d_sampling_params_validate(&p->sampling, vocab, err);
}

void r1d_think_init(r1d_think_state *t, const r1d_gen_params *p) {
  t->phase = p->think_budget_on && p->think_open ? 1 : 0;
  t->used = 0;
}

int r1d_think_must_close(const r1d_think_state *t, const r1d_gen_params *p) {
  return p->think_budget_on && t->phase == 1 && t->used >= p->thinking_budget;
}

void r1d_think_push(r1d_think_state *t, const r1d_gen_params *p, int32_t id) {
  if (!p->think_budget_on) return;
  if (t->phase == 0 && p->think_start_id >= 0 && id == p->think_start_id)
    t->phase = 1;
  else if (t->phase == 1 && id == p->think_end_id)
    t->phase = 2;
  else if (t->phase == 1)
    t->used++;
}

int r1d_gen_is_stop_id(const r1d_config *cfg, const r1d_gen_params *p,
                       int32_t id) {
  if (!p->ignore_eos)
    for (int i = 0; i < cfg->n_eos; i++)
      if (cfg->eos_token_ids[i] == id) return 1;
  for (int i = 0; i < p->n_stop_ids; i++)
    if (p->stop_ids[i] == id) return 1;
  return 0;
}

int r1d_generate(r1d_model *m, const r1d_tokenizer *tok, const int32_t *prompt,
                 size_t n_prompt, const r1d_gen_params *p, r1d_gen_callback cb,
                 void *user, r1d_gen_result *res, r1d_error *err) {
  memset(res, 0, sizeof *res);
  const int vocab = m->cfg.vocab_size;
  if (n_prompt == 0)
    return r1d_fail(err, R1D_EINVAL, "prompt is empty (no tokens)");
  int rc = r1d_gen_params_validate(p, vocab, err);
  if (rc) return rc;
  if (p->prompt_logprobs)
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "prompt_logprobs: only the serving engine reports them");
  const int max_ctx = m->cfg.max_position_embeddings;
  if (n_prompt >= (size_t)max_ctx)
    return r1d_fail(err, R1D_ERANGE,
                    "prompt has %zu tokens; the model's context is %d",
                    n_prompt, max_ctx);
  int budget = p->max_tokens;
  if ((size_t)budget > (size_t)max_ctx - n_prompt)
    budget = (int)((size_t)max_ctx - n_prompt);

  r1d_detok dt;
  r1d_kv_cache *kv = NULL;
  r1d_sampler *sampler = NULL;
  float *logits = malloc(sizeof(float) * (size_t)vocab);
  if (!logits) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  rc = r1d_detok_init(&dt, tok, p->stop, p->n_stop, p->keep_special, err);
  if (rc) goto done;
  rc = r1d_kv_cache_create(m, (int)n_prompt + budget, &kv);
  if (rc) {
    r1d_fail(err, rc, "cannot allocate the KV cache for %zu tokens",
             n_prompt + (size_t)budget);
    goto done;
  }
  rc = r1d_sampler_create(&p->sampling, vocab, prompt, n_prompt, &sampler, err);
  if (rc) goto done;

  double t0 = now_seconds();
  rc = r1d_model_forward(m, kv, prompt, (int)n_prompt, 0, logits, err);
  if (rc) goto done;
  double t1 = now_seconds();
  res->prompt_tokens = (int)n_prompt;
  res->prefill_seconds = t1 - t0;

  r1d_top_logprob top[R1D_GEN_MAX_TOP];
  r1d_think_state think;
  r1d_think_init(&think, p);
  for (int step = 0; step < budget; step++) {
    float lp = 0.0f;
    r1d_top_logprob *tp = p->n_top_logprobs ? top : NULL;
    int32_t id =
        r1d_think_must_close(&think, p)
            ? r1d_sampler_force(sampler, logits, p->think_end_id, &lp, tp,
                                p->n_top_logprobs)
            : r1d_sampler_sample(sampler, logits, &lp, tp, p->n_top_logprobs);
    r1d_think_push(&think, p, id);
    res->completion_tokens++;
    int stop_token = r1d_gen_is_stop_id(&m->cfg, p, id);
    int last = stop_token || step + 1 == budget;
    /* Stop tokens are not part of the text (OpenAI); special tokens (bos,
     * eos, pad) are not either unless asked (vLLM's skip_special_tokens). */
    char *text = NULL;
    size_t text_len = 0;
    int matched = r1d_detok_push(&dt, id, stop_token, last, &text, &text_len);
    if (matched < 0) {
      rc = r1d_fail(err, matched, "out of memory");
      goto done;
    }
    r1d_gen_event ev = {.id = id,
                        .text = text ? text : "",
                        .text_len = text_len,
                        .logprob = lp,
                        .top = top,
                        .n_top = p->n_top_logprobs,
                        .is_stop = stop_token || matched};
    int abort_now = cb ? cb(user, &ev) : 0;
    free(text);
    if (stop_token || matched) {
      res->finish = R1D_FINISH_STOP;
      break;
    }
    if (abort_now) {
      res->finish = R1D_FINISH_ABORT;
      break;
    }
    if (step + 1 == budget) {
      res->finish = R1D_FINISH_LENGTH;
      break;
    }
    rc = r1d_model_forward(m, kv, &id, 1, 0, logits, err);
    if (rc) goto done;
  }
  res->decode_seconds = now_seconds() - t1;
  rc = R1D_OK;
done:
  free(logits);
  r1d_detok_free(&dt);
  r1d_sampler_free(sampler);
  r1d_kv_cache_free(kv);
  return rc;
}
