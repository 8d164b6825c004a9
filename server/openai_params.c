/* openai_params.c - the sampling and output fields of chat and completions
 * requests (design/API.md "Chat request fields to honour"), checked here so
 * that a bad one is a 400 naming it before anything reaches the engine.
 * Ranges are the engine's (sampler.h); defaults follow vLLM: settings the
 * request leaves out come from the model's generation_config.json, else
 * DeepSeek's recommendation for R1 models (temperature 0.6, top_p 0.95). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "openai.h"

static int parse_stop(json_t *body, oai_params *p, api_error *e) {
  json_t *v = json_object_get(body, "stop");
  if (!v || json_is_null(v)) return 0;
  if (json_is_string(v)) {
    if (!json_string_length(v)) return 0; /* "" means none to the SDKs */
    p->stop[p->gen.n_stop++] = json_string_value(v);
  } else if (json_is_array(v)) {
    if (json_array_size(v) > OAI_MAX_STOP)
      return api_fail(e, 400, "stop", "invalid_value",
                      "'stop' takes at most %d strings, got %zu", OAI_MAX_STOP,
                      json_array_size(v));
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s) {
      if (!json_is_string(s))
        return api_fail(e, 400, "stop", "invalid_type",
                        "'stop' must be a string or a list of strings");
      if (!json_string_length(s))
        return api_fail(e, 400, "stop", "invalid_value",
                        "'stop' strings must not be empty");
      p->stop[p->gen.n_stop++] = json_string_value(s);
    }
  } else {
    return api_fail(e, 400, "stop", "invalid_type",
                    "'stop' must be a string or a list of strings");
  }
  p->gen.stop = p->stop;
  return 0;
}

static int parse_bias(json_t *body, int vocab, oai_params *p, api_error *e) {
  json_t *v = json_object_get(body, "logit_bias");
  if (!v || json_is_null(v)) return 0;
  if (!json_is_object(v))
    return api_fail(e, 400, "logit_bias", "invalid_type",
                    "'logit_bias' must be an object of token id -> bias");
  if (json_object_size(v) > OAI_MAX_BIAS)
    return api_fail(e, 400, "logit_bias", "invalid_value",
                    "'logit_bias' takes at most %d entries", OAI_MAX_BIAS);
  const char *key;
  json_t *b;
  int n = 0;
  json_object_foreach(v, key, b) {
    char *end = NULL;
    long id = strtol(key, &end, 10);
    if (!*key || *end || id < 0 || id >= vocab)
      return api_fail(e, 400, "logit_bias", "invalid_value",
                      "'logit_bias' key '%s' is not a token id in [0, %d)", key,
                      vocab);
    if (!json_is_number(b) || !(fabs(json_number_value(b)) <= 100))
      return api_fail(e, 400, "logit_bias", "invalid_value",
                      "'logit_bias' values must be numbers in [-100, 100]");
    p->bias[n].id = (int32_t)id;
    p->bias[n].bias = (float)json_number_value(b);
    n++;
  }
  p->gen.sampling.logit_bias = p->bias;
  p->gen.sampling.n_logit_bias = n;
  return 0;
}

int oai_params_parse(r1d_server *s, json_t *body, int chat, oai_params *p,
                     api_error *e) {
  const r1d_config *mc = &s->model_cfg;
  memset(p, 0, sizeof *p);
  r1d_sampling_params *sp = &p->gen.sampling;
  r1d_sampling_params_default(sp);
  sp->temperature = isnan(mc->gen_temperature) ? 0.6f : mc->gen_temperature;
  sp->top_p = isnan(mc->gen_top_p) ? 0.95f : mc->gen_top_p;
  sp->top_k = mc->gen_top_k > 0 ? mc->gen_top_k : -1;
  p->n = 1;
  p->include_reasoning = 1;
  p->thinking_budget = -1;

  const char *model = NULL;
  if (api_get_string(body, "model", &model, e)) return -1;
  if (model && strcmp(model, s->model_id))
    return api_fail(e, 404, "model", "model_not_found",
                    "The model `%s` does not exist.", model);

  double d;
  long long i;
  int given, b;
  if (api_get_bool(body, "stream", &p->stream, NULL, e)) return -1;
  json_t *so = json_object_get(body, "stream_options");
  if (so && !json_is_null(so)) {
    if (!json_is_object(so))
      return api_fail(e, 400, "stream_options", "invalid_type",
                      "'stream_options' must be an object");
    if (api_get_bool(so, "include_usage", &p->include_usage, NULL, e)) {
      e->param = "stream_options.include_usage";
      return -1;
    }
  }
  long long max_tokens = 0;
  if (api_get_int(body, "max_tokens", 1, 1 << 24, &max_tokens, &given, e))
    return -1;
  p->max_tokens_given = given;
  if (chat) {
    if (api_get_int(body, "max_completion_tokens", 1, 1 << 24, &i, &given, e))
      return -1;
    if (given) max_tokens = i, p->max_tokens_given = 1;
  }
  p->gen.max_tokens = (int)max_tokens; /* 0: the context's rest, set later */
  if (api_get_number(body, "temperature", 0, 2, &d, &given, e)) return -1;
  if (given) sp->temperature = (float)d;
  if (api_get_number(body, "top_p", 0, 1, &d, &given, e)) return -1;
  if (given) {
    if (d <= 0)
      return api_fail(e, 400, "top_p", "invalid_value",
                      "'top_p' must be in (0, 1], got %g", d);
    sp->top_p = (float)d;
  }
  if (api_get_int(body, "top_k", -1, 1 << 24, &i, &given, e)) return -1;
  if (given) sp->top_k = i == 0 ? -1 : (int)i; /* 0 and -1: off, as vLLM */
  if (api_get_number(body, "min_p", 0, 1, &d, &given, e)) return -1;
  if (given) sp->min_p = (float)d;
  if (api_get_number(body, "presence_penalty", -2, 2, &d, &given, e)) return -1;
  if (given) sp->presence_penalty = (float)d;
  if (api_get_number(body, "frequency_penalty", -2, 2, &d, &given, e))
    return -1;
  if (given) sp->frequency_penalty = (float)d;
  if (api_get_number(body, "repetition_penalty", 0, 2, &d, &given, e))
    return -1;
  if (given) {
    if (d <= 0)
      return api_fail(e, 400, "repetition_penalty", "invalid_value",
                      "'repetition_penalty' must be in (0, 2], got %g", d);
    sp->repetition_penalty = (float)d;
  }
  if (api_get_int(body, "seed", INT64_MIN, INT64_MAX, &i, &given, e)) return -1;
  sp->seed = given ? (uint64_t)i : r1d_rng_next(&s->rng);
  if (api_get_int(body, "n", 1, R1D_ENGINE_MAX_N, &i, &given, e)) return -1;
  if (given) p->n = (int)i;
  if (p->n > s->engine_cfg.max_num_seqs)
    return api_fail(e, 400, "n", "invalid_value",
                    "'n' is %d but the server runs at most %d sequences at "
                    "once (--max-num-seqs)",
                    p->n, s->engine_cfg.max_num_seqs);
  if (parse_stop(body, p, e)) return -1;
  if (parse_bias(body, mc->vocab_size, p, e)) return -1;

  /* logprobs: a boolean in chat, a count (legacy) in completions */
  if (chat) {
    if (api_get_bool(body, "logprobs", &p->logprobs, NULL, e)) return -1;
    if (api_get_int(body, "top_logprobs", 0, R1D_GEN_MAX_TOP, &i, &given, e))
      return -1;
    if (given) {
      if (!p->logprobs && i > 0)
        return api_fail(e, 400, "top_logprobs", "invalid_value",
                        "'top_logprobs' needs 'logprobs': true");
      p->top_logprobs = (int)i;
    }
  } else {
    /* the legacy API's range: 0..5 alternatives */
    if (api_get_int(body, "logprobs", 0, 5, &i, &given, e)) return -1;
    if (given) p->logprobs = 1, p->top_logprobs = (int)i;
    if (api_get_bool(body, "echo", &p->echo, NULL, e)) return -1;
  }
  p->gen.n_top_logprobs = p->top_logprobs;

  const char *user = NULL;
  if (api_get_string(body, "user", &user, e)) return -1;
  if (chat) {
    const char *effort = NULL;
    if (api_get_string(body, "reasoning_effort", &effort, e)) return -1;
    if (effort) {
      if (!strcmp(effort, "none"))
        p->reasoning_off = 1;
      else if (strcmp(effort, "minimal") && strcmp(effort, "low") &&
               strcmp(effort, "medium") && strcmp(effort, "high"))
        return api_fail(e, 400, "reasoning_effort", "invalid_value",
                        "'reasoning_effort' must be none, minimal, low, "
                        "medium or high, got '%s'",
                        effort);
    }
    if (api_get_int(body, "thinking_budget", 0, 1 << 24, &i, &given, e))
      return -1;
    if (given) {
      if (s->think_end_id < 0)
        return api_fail(e, 400, "thinking_budget", "invalid_value",
                        "'thinking_budget' needs a tokenizer with a single "
                        "</think> token; this model's has none");
      p->thinking_budget = (int)i;
    }
    if (api_get_bool(body, "include_reasoning", &p->include_reasoning, NULL, e))
      return -1;
  }
  /* vLLM's extras */
  if (api_get_bool(body, "ignore_eos", &p->gen.ignore_eos, NULL, e)) return -1;
  b = 1;
  if (api_get_bool(body, "skip_special_tokens", &b, NULL, e)) return -1;
  p->gen.keep_special = !b;
  return 0;
}
