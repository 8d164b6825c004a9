/* generate.h - one sequence, start to finish: prefill the prompt in one
 * batched pass, then decode token by token with the sampler, turning token
 * bytes into UTF-8 text pieces (an incomplete character is held back until its
 * last byte arrives) and watching stop ids, EOS and stop strings. The paged,
 * batched engine of the server replaces this loop; the CLI and tests use it. */
#ifndef R1D_ENGINE_SERVE_GENERATE_H
#define R1D_ENGINE_SERVE_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "../../common/status.h"
#include "../model/model.h"
#include "../text/tokenizer.h"
#include "sampler.h"

typedef struct r1d_gen_params {
  r1d_sampling_params sampling;
  int max_tokens;          /* > 0 */
  const char *const *stop; /* stop strings, may be NULL */
  int n_stop;
  const int32_t *stop_ids; /* extra stop token ids, may be NULL */
  int n_stop_ids;
  int ignore_eos;     /* 1: the model's EOS ids do not stop */
  int keep_special;   /* 1: special tokens' text is streamed too (vLLM's
                         skip_special_tokens=false) */
  int n_top_logprobs; /* 0..R1D_GEN_MAX_TOP */
  /* Prompt logprobs (vLLM's prompt_logprobs, for echo + logprobs): 0 off;
   * k + 1 (1..R1D_GEN_MAX_TOP + 1) reports, for every prompt token after the
   * first, its raw logprob given the tokens before it and its k most likely
   * alternatives. The engine only: r1d_generate refuses it
   * (R1D_EUNSUPPORTED). */
  int prompt_logprobs;
  /* Thinking budget: off unless think_budget_on is 1. Then each choice
   * counts the tokens it generates inside its thought; once thinking_budget
   * (>= 0) of them are out and the thought is still open, the next token is
   * forced to think_end_id instead of sampled (over logit_bias too; its
   * logprob is still the raw one), and generation goes on with the answer.
   * The forced token is an ordinary completion token (text, stop checks,
   * penalties). A think_end_id the model emits closes the thought early.
   * think_open 1: the choice starts inside the thought (the prompt opened
   * it, as R1 templates do); 0: the thought opens when the model emits
   * think_start_id (that token not counted), never when think_start_id is
   * negative. A closed thought does not reopen. */
  int think_budget_on;    /* 0 or 1 */
  int thinking_budget;    /* tokens inside the thought, >= 0 */
  int32_t think_end_id;   /* </think>, in [0, vocab) when on */
  int32_t think_start_id; /* <think>, used when think_open is 0; -1: none */
  int think_open;         /* 0 or 1 */
} r1d_gen_params;

#define R1D_GEN_MAX_TOP 20

/* Where one choice stands in its thought (the thinking budget). */
typedef struct r1d_think_state {
  int phase; /* 0: before the thought, 1: inside, 2: closed */
  int used;  /* tokens generated inside so far */
} r1d_think_state;

void r1d_think_init(r1d_think_state *t, const r1d_gen_params *p);
/* 1 when the next token must be p->think_end_id (the budget is spent). */
int r1d_think_must_close(const r1d_think_state *t, const r1d_gen_params *p);
/* Accounts for a token the choice generated (sampled or forced). */
void r1d_think_push(r1d_think_state *t, const r1d_gen_params *p, int32_t id);

typedef enum {
  R1D_FINISH_NONE = 0,
  R1D_FINISH_STOP,   /* EOS, a stop id or a stop string */
  R1D_FINISH_LENGTH, /* max_tokens or the context limit */
  R1D_FINISH_ABORT,  /* the callback asked to stop */
} r1d_finish_reason;

const char *r1d_finish_reason_name(r1d_finish_reason r);

/* One generated token. text is the UTF-8 text that became visible with this
 * token (may be empty while a character or a possible stop string is held
 * back; not NUL-terminated). */
typedef struct r1d_gen_event {
  int32_t id;
  const char *text;
  size_t text_len;
  float logprob;
  const r1d_top_logprob *top;
  int n_top;
  int is_stop; /* this token ended generation (EOS / stop id / stop string) */
} r1d_gen_event;

/* Returns 0 to continue, non-zero to abort generation. */
typedef int (*r1d_gen_callback)(void *user, const r1d_gen_event *ev);

typedef struct r1d_gen_result {
  r1d_finish_reason finish;
  int prompt_tokens;
  int completion_tokens;
  double prefill_seconds;
  double decode_seconds;
} r1d_gen_result;

/* R1D_EINVAL naming the field: max_tokens > 0, top_logprobs in
 * [0, R1D_GEN_MAX_TOP], prompt_logprobs in [0, R1D_GEN_MAX_TOP + 1], stop
 * arrays present and non-empty, the thinking budget's fields (messages name
 * thinking_budget), sampling. */
int r1d_gen_params_validate(const r1d_gen_params *p, int vocab, r1d_error *err);

/* 1 when id ends generation: one of the model's EOS ids (unless
 * ignore_eos) or one of p's stop ids. */
int r1d_gen_is_stop_id(const r1d_config *cfg, const r1d_gen_params *p,
                       int32_t id);

/* Validates params (R1D_EINVAL naming the field; prompt_logprobs is
 * R1D_EUNSUPPORTED here), then generates, with the thinking budget if on.
 * The prompt plus max_tokens is capped by the model's
 * max_position_embeddings; a prompt that alone exceeds it fails with
 * R1D_ERANGE. */
int r1d_generate(r1d_model *m, const r1d_tokenizer *tok, const int32_t *prompt,
                 size_t n_prompt, const r1d_gen_params *p, r1d_gen_callback cb,
                 void *user, r1d_gen_result *res, r1d_error *err);

#endif
