/* routes_openai.c - /v1/chat/completions, /v1/completions, /v1/models,
 * /tokenize and /detokenize: from the request body to token ids and an
 * engine submission; the answer is built by openai_response.c as events
 * arrive. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../storage/interactions.h"
#include "openai.h"

static void call_on_close(void *user, http_exchange *ex, int completed) {
  (void)ex;
  (void)completed;
  oai_call *c = user;
  c->ex = NULL; /* a cut stream cancels the engine work in oai_call_free */
  oai_call_free(c);
}

/* Renders chat messages with the model's template into *prompt. */
static int render_chat(r1d_server *s, json_t *msgs, char **prompt,
                       int add_generation_prompt, api_error *e) {
  if (!s->tpl)
    return api_fail(e, 400, "messages", "no_chat_template",
                    "this model has no chat template; use /v1/completions");
  char *text = json_dumps(msgs, JSON_COMPACT);
  if (!text) return api_fail(e, 500, NULL, NULL, "out of memory");
  r1d_chat_message *m = NULL;
  size_t n = 0;
  r1d_error err = {0};
  int rc = r1d_chat_messages_parse(text, &m, &n, &err);
  free(text);
  if (rc == 0)
    rc = r1d_template_render(s->tpl, m, n, add_generation_prompt, prompt, &err);
  free(m);
  if (rc == R1D_ENOMEM) return api_fail(e, 500, NULL, NULL, "out of memory");
  if (rc) return api_fail(e, 400, "messages", NULL, "messages: %s", err.msg);
  return 0;
}

static int encode_text(r1d_server *s, const char *text, int add_bos,
                       r1d_ids *ids, const char *param, api_error *e) {
  r1d_error err = {0};
  int32_t bos = add_bos ? r1d_tokenizer_bos_to_add(s->tok) : -1;
  if (bos >= 0 && r1d_ids_push(ids, bos))
    return api_fail(e, 500, NULL, NULL, "out of memory");
  if (r1d_tokenizer_encode(s->tok, text, strlen(text), ids, &err))
    return api_fail(e, 400, param, NULL, "%s: %s", param, err.msg);
  return 0;
}

static oai_call *call_new(r1d_server *s, http_exchange *ex, int chat) {
  oai_call *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->srv = s;
  c->ex = ex;
  c->chat = chat;
  c->created = (int64_t)time(NULL);
  c->t_start = ex->t_start;
  c->ttft = -1;
  if (ex->key_id) snprintf(c->key_id, sizeof c->key_id, "%s", ex->key_id);
  /* the id is the interaction's storage key plus a random nonce, so
   * feedback finds the record without an index (storage/interactions.h) */
  c->key = r1d_keygen_next(&s->ids, r1d_now_ms());
  r1d_response_id(chat ? "chatcmpl-" : "cmpl-", c->key,
                  (uint32_t)(r1d_rng_next(&s->rng) >> 32), c->id, sizeof c->id);
  snprintf(ex->request_id, sizeof ex->request_id, "%s", c->id);
  return c;
}

static int map_submit_error(const r1d_error *err, api_error *e) {
  switch (err->code) {
  case R1D_ERANGE:
    return api_fail(e, 400, "messages", "context_length_exceeded", "%s",
                    err->msg);
  case R1D_EBUSY:
    return api_fail(e, 429, NULL, "queue_full",
                    "the server is busy (queue full: %s); retry later",
                    err->msg);
  case R1D_ESTATE:
    return api_fail(e, 503, NULL, "engine_unavailable", "%s", err->msg);
  case R1D_ENOMEM: return api_fail(e, 500, NULL, NULL, "out of memory");
  default: return api_fail(e, 400, NULL, "invalid_value", "%s", err->msg);
  }
}

/* Checks the context, sets up the choices, submits one engine request per
 * prompt, then streams or defers. Takes c->prompt_ids etc. as set. */
static int submit_call(r1d_server *s, oai_call *c, api_error *e) {
  int max_len = s->max_model_len;
  for (int i = 0; i < c->n_prompts; i++) {
    int np = c->prompt_len[i];
    if (np == 0)
      return api_fail(e, 400, c->chat ? "messages" : "prompt", NULL,
                      "the prompt is empty (no tokens)");
    if (np >= max_len)
      return api_fail(e, 400, c->chat ? "messages" : "prompt",
                      "context_length_exceeded",
                      "This model's maximum context length is %d tokens. "
                      "However, your prompt has %d tokens (it must leave "
                      "room for at least one new token).",
                      max_len, np);
    if (c->p.max_tokens_given && np + c->p.gen.max_tokens > max_len)
      return api_fail(e, 400, c->chat ? "max_tokens" : "max_tokens",
                      "context_length_exceeded",
                      "This model's maximum context length is %d tokens. "
                      "However, you requested %d tokens (%d in the prompt, "
                      "%d for the completion).",
                      max_len, np + c->p.gen.max_tokens, np,
                      c->p.gen.max_tokens);
  }
  c->n_choices = c->n_prompts * c->p.n;
  c->choices = calloc((size_t)c->n_choices, sizeof *c->choices);
  if (!c->choices) return api_fail(e, 500, NULL, NULL, "out of memory");
  for (int i = 0; i < c->n_choices; i++) {
    oai_choice *ch = &c->choices[i];
    if (c->chat) r1d_reasoning_init(&ch->rs, s->tok, c->start_in_thought, NULL);
    ch->lp = c->chat
                 ? json_array()
                 : json_pack("{s:[], s:[], s:[], s:[]}", "tokens",
                             "token_logprobs", "top_logprobs", "text_offset");
    ch->lp_pending = json_array();
    ch->finish = "stop";
    /* legacy text_offset counts from the start of the returned text */
    if (c->p.echo) {
      const char *t = c->echo_text[i / c->p.n];
      for (const char *q = t; *q; q++)
        if (((unsigned char)*q & 0xC0) != 0x80) ch->text_offset++;
    }
  }
  c->job = gen_job_create(s, c->n_prompts, c, oai_call_on_events);
  if (!c->job) return api_fail(e, 500, NULL, NULL, "out of memory");
  for (int i = 0; i < c->n_prompts; i++) {
    r1d_engine_request req = {.prompt = c->prompt_ids[i],
                              .n_prompt = c->prompt_len[i],
                              .params = c->p.gen,
                              .n = c->p.n,
                              .priority = R1D_PRIORITY_INTERACTIVE};
    if (!c->p.max_tokens_given)
      req.params.max_tokens = max_len - c->prompt_len[i];
    if (c->p.echo && c->p.logprobs)
      req.params.prompt_logprobs = c->p.top_logprobs + 1;
    if (c->chat && c->p.thinking_budget >= 0) {
      req.params.think_budget_on = 1;
      req.params.thinking_budget = c->p.thinking_budget;
      req.params.think_end_id = s->think_end_id;
      req.params.think_open = c->start_in_thought;
      req.params.think_start_id = s->think_start_id;
    }
    r1d_error err = {0};
    if (gen_job_submit(c->job, i, &req, &err)) {
      /* nothing was sent yet: drop what was submitted and answer the error */
      gen_job_cancel(c->job);
      gen_job_release(c->job);
      c->job = NULL;
      return map_submit_error(&err, e);
    }
  }
  c->submitted = 1;
  c->weight_version = r1d_version_id(c->job->version);
  if (s->cfg.request_timeout > 0)
    c->deadline = r1d_server_now() + s->cfg.request_timeout;
  c->ex->user = c;
  c->ex->on_close = call_on_close;
  if (c->p.stream)
    oai_call_start_stream(c);
  else
    http_defer(c->ex);
  return 0;
}

/* The per-prompt arrays of a call with n prompts. */
static int alloc_prompts(oai_call *c, size_t n, api_error *e) {
  c->n_prompts = (int)n;
  c->prompt_ids = calloc(n, sizeof *c->prompt_ids);
  c->prompt_len = calloc(n, sizeof *c->prompt_len);
  c->echo_text = calloc(n, sizeof *c->echo_text);
  c->prompt_lp = calloc(n, sizeof *c->prompt_lp);
  if (!c->prompt_ids || !c->prompt_len || !c->echo_text || !c->prompt_lp)
    return api_fail(e, 500, NULL, NULL, "out of memory");
  return 0;
}

/* Parses the body and makes the call; NULL with e set on failure. */
static oai_call *begin_call(r1d_server *s, http_exchange *ex, int chat,
                            json_t **body, api_error *e) {
  if (api_parse_object(ex->body.p, ex->body.n, body, e)) return NULL;
  oai_call *c = call_new(s, ex, chat);
  if (!c) api_fail(e, 500, NULL, NULL, "out of memory");
  if (c && s->writer && s->cfg.log_interactions)
    c->request = json_incref(*body);
  return c;
}

void r1d_routes_openai_chat(r1d_server *s, http_exchange *ex) {
  api_error e = {0};
  json_t *body = NULL;
  char *prompt = NULL;
  r1d_ids ids = {0};
  oai_call *c = NULL;
  if (!(c = begin_call(s, ex, 1, &body, &e))) goto fail;
  if (oai_params_parse(s, body, 1, &c->p, &e)) goto fail;
  json_t *msgs = json_object_get(body, "messages");
  if (!json_is_array(msgs)) {
    api_fail(&e, 400, "messages", msgs ? "invalid_type" : "missing_field",
             "'messages' must be a list of {role, content} objects");
    goto fail;
  }
  if (json_array_size(msgs) == 0) {
    api_fail(&e, 400, "messages", "invalid_value",
             "'messages' must not be empty");
    goto fail;
  }
  if (render_chat(s, msgs, &prompt, 1, &e)) goto fail;
  c->start_in_thought = r1d_reasoning_prompt_opens(prompt, strlen(prompt));
  if (c->p.reasoning_off && c->start_in_thought) {
    /* close the thought in the prompt, as Qwen3's enable_thinking=false
     * renders it: the model answers at once */
    static const char close_tag[] = "\n</think>\n\n";
    char *p2 = realloc(prompt, strlen(prompt) + sizeof close_tag);
    if (!p2) {
      api_fail(&e, 500, NULL, NULL, "out of memory");
      goto fail;
    }
    prompt = p2;
    strcat(prompt, close_tag);
    c->start_in_thought = 0;
  }
  if (encode_text(s, prompt, 0, &ids, "messages", &e)) goto fail;
  if (alloc_prompts(c, 1, &e)) goto fail;
  if (!(c->echo_text[0] = strdup(""))) {
    api_fail(&e, 500, NULL, NULL, "out of memory");
    goto fail;
  }
  c->prompt_ids[0] = ids.v;
  c->prompt_len[0] = (int)ids.n;
  memset(&ids, 0, sizeof ids);
  if (submit_call(s, c, &e)) goto fail;
  free(prompt);
  json_decref(body);
  return;
fail:
  api_reply(ex, &e);
  if (c && ex->user != c) oai_call_free(c);
  r1d_ids_free(&ids);
  free(prompt);
  json_decref(body);
}

/* One prompt of /v1/completions: a string or a list of token ids. */
static int completion_prompt(r1d_server *s, json_t *v, r1d_ids *ids,
                             char **echo, api_error *e) {
  if (json_is_string(v)) {
    if (!(*echo = strdup(json_string_value(v))))
      return api_fail(e, 500, NULL, NULL, "out of memory");
    /* Hugging Face's encode adds the model's BOS for raw text (vLLM too) */
    return encode_text(s, json_string_value(v), 1, ids, "prompt", e);
  }
  int vocab = s->model_cfg.vocab_size;
  size_t i;
  json_t *t;
  json_array_foreach(v, i, t) {
    if (!json_is_integer(t) || json_integer_value(t) < 0 ||
        json_integer_value(t) >= vocab)
      return api_fail(e, 400, "prompt", "invalid_value",
                      "'prompt' token %zu is not a token id in [0, %d)", i,
                      vocab);
    if (r1d_ids_push(ids, (int32_t)json_integer_value(t)))
      return api_fail(e, 500, NULL, NULL, "out of memory");
  }
  r1d_error err = {0};
  size_t len = 0;
  if (r1d_tokenizer_decode(s->tok, ids->v, ids->n, 0, echo, &len, &err))
    return api_fail(e, 400, "prompt", NULL, "prompt: %s", err.msg);
  return 0;
}

static int is_id_list(json_t *v) {
  if (!json_is_array(v)) return 0;
  size_t i;
  json_t *t;
  json_array_foreach(v, i, t) if (!json_is_integer(t)) return 0;
  return 1;
}

void r1d_routes_openai_completions(r1d_server *s, http_exchange *ex) {
  api_error e = {0};
  json_t *body = NULL;
  oai_call *c = NULL;
  r1d_ids ids = {0};
  if (!(c = begin_call(s, ex, 0, &body, &e))) goto fail;
  if (oai_params_parse(s, body, 0, &c->p, &e)) goto fail;
  json_t *prompt = json_object_get(body, "prompt");
  /* a string, a list of ids, or a list of either: one choice set each */
  json_t *list = NULL;
  if (json_is_string(prompt) ||
      (is_id_list(prompt) && json_array_size(prompt) &&
       !json_is_array(json_array_get(prompt, 0)))) {
    list = json_pack("[O]", prompt);
  } else if (json_is_array(prompt) && json_array_size(prompt) > 0) {
    size_t i;
    json_t *p;
    json_array_foreach(prompt, i, p) {
      if (!json_is_string(p) && !is_id_list(p)) {
        api_fail(&e, 400, "prompt", "invalid_type",
                 "'prompt' must be a string, a list of strings, a list of "
                 "token ids, or a list of such lists");
        goto fail;
      }
    }
    list = json_incref(prompt);
  } else {
    api_fail(&e, 400, "prompt", prompt ? "invalid_type" : "missing_field",
             "'prompt' must be a non-empty string, a list of strings, a list "
             "of token ids, or a list of such lists");
    goto fail;
  }
  size_t np = json_array_size(list);
  if (np > OAI_MAX_PROMPTS || (int)np * c->p.n > R1D_ENGINE_MAX_N * 4) {
    json_decref(list);
    api_fail(&e, 400, "prompt", "invalid_value",
             "at most %d prompts per request, and prompts x n at most %d",
             OAI_MAX_PROMPTS, R1D_ENGINE_MAX_N * 4);
    goto fail;
  }
  if (alloc_prompts(c, np, &e)) {
    json_decref(list);
    goto fail;
  }
  for (size_t i = 0; i < np; i++) {
    if (completion_prompt(s, json_array_get(list, i), &ids, &c->echo_text[i],
                          &e)) {
      json_decref(list);
      goto fail;
    }
    c->prompt_ids[i] = ids.v;
    c->prompt_len[i] = (int)ids.n;
    memset(&ids, 0, sizeof ids);
  }
  json_decref(list);
  if (submit_call(s, c, &e)) goto fail;
  json_decref(body);
  return;
fail:
  api_reply(ex, &e);
  if (c && ex->user != c) oai_call_free(c);
  r1d_ids_free(&ids);
  json_decref(body);
}

void r1d_routes_openai_models(r1d_server *s, http_exchange *ex) {
  r1d_engine_stats st;
  r1d_versions_stats(s->versions, &st);
  json_t *m = json_pack("{s:s, s:s, s:I, s:s, s:s, s:i, s:I}", "id",
                        s->model_id, "object", "model", "created",
                        (json_int_t)s->created, "owned_by", "r1d", "root",
                        s->cfg.model, "max_model_len", s->max_model_len,
                        "weight_version", (json_int_t)st.weight_version);
  http_reply_json(ex, 200,
                  json_pack("{s:s, s:[o]}", "object", "list", "data", m));
}

void r1d_routes_tokenize(r1d_server *s, http_exchange *ex) {
  api_error e = {0};
  json_t *body = NULL;
  r1d_ids ids = {0};
  char *prompt = NULL;
  if (api_parse_object(ex->body.p, ex->body.n, &body, &e)) goto fail;
  const char *text = NULL;
  if (api_get_string(body, "prompt", &text, &e)) goto fail;
  json_t *msgs = json_object_get(body, "messages");
  int add_special = 1, add_gen = 1;
  if (api_get_bool(body, "add_special_tokens", &add_special, NULL, &e) ||
      api_get_bool(body, "add_generation_prompt", &add_gen, NULL, &e))
    goto fail;
  if (!!text == !!(msgs && !json_is_null(msgs))) {
    api_fail(&e, 400, "prompt", "missing_field",
             "give exactly one of 'prompt' (a string) or 'messages'");
    goto fail;
  }
  if (text) {
    if (encode_text(s, text, add_special, &ids, "prompt", &e)) goto fail;
  } else {
    if (!json_is_array(msgs) || !json_array_size(msgs)) {
      api_fail(&e, 400, "messages", "invalid_type",
               "'messages' must be a non-empty list");
      goto fail;
    }
    if (render_chat(s, msgs, &prompt, add_gen, &e) ||
        encode_text(s, prompt, 0, &ids, "messages", &e))
      goto fail;
  }
  json_t *arr = json_array();
  for (size_t i = 0; i < ids.n; i++)
    json_array_append_new(arr, json_integer(ids.v[i]));
  http_reply_json(ex, 200,
                  json_pack("{s:o, s:i, s:i}", "tokens", arr, "count",
                            (int)ids.n, "max_model_len", s->max_model_len));
  r1d_ids_free(&ids);
  free(prompt);
  json_decref(body);
  return;
fail:
  api_reply(ex, &e);
  r1d_ids_free(&ids);
  free(prompt);
  json_decref(body);
}

void r1d_routes_detokenize(r1d_server *s, http_exchange *ex) {
  api_error e = {0};
  json_t *body = NULL;
  r1d_ids ids = {0};
  if (api_parse_object(ex->body.p, ex->body.n, &body, &e)) goto fail;
  json_t *toks = json_object_get(body, "tokens");
  if (!json_is_array(toks)) {
    api_fail(&e, 400, "tokens", toks ? "invalid_type" : "missing_field",
             "'tokens' must be a list of token ids");
    goto fail;
  }
  int vocab = r1d_tokenizer_vocab_size(s->tok);
  size_t i;
  json_t *t;
  json_array_foreach(toks, i, t) {
    if (!json_is_integer(t) || json_integer_value(t) < 0 ||
        json_integer_value(t) >= vocab) {
      api_fail(&e, 400, "tokens", "invalid_value",
               "'tokens'[%zu] is not a token id in [0, %d)", i, vocab);
      goto fail;
    }
    if (r1d_ids_push(&ids, (int32_t)json_integer_value(t))) {
      api_fail(&e, 500, NULL, NULL, "out of memory");
      goto fail;
    }
  }
  char *text = NULL;
  size_t len = 0;
  r1d_error err = {0};
  if (r1d_tokenizer_decode(s->tok, ids.v, ids.n, 0, &text, &len, &err)) {
    api_fail(&e, 400, "tokens", NULL, "tokens: %s", err.msg);
    goto fail;
  }
  http_reply_json(ex, 200, json_pack("{s:s%}", "prompt", text, len));
  free(text);
  r1d_ids_free(&ids);
  json_decref(body);
  return;
fail:
  api_reply(ex, &e);
  r1d_ids_free(&ids);
  json_decref(body);
}

void r1d_server_tick_jobs(r1d_server *s, double now) {
  double ka = s->cfg.keepalive;
  for (http_exchange *ex = http_server_first(s->http); ex; ex = ex->next) {
    if (ex->on_close != call_on_close) continue;
    oai_call *c = ex->user;
    if (c->done) continue;
    if (c->deadline > 0 && now > c->deadline) {
      char msg[128];
      snprintf(msg, sizeof msg,
               "the request ran longer than the server's request timeout of "
               "%g s",
               s->cfg.request_timeout);
      oai_call_fail(c, 504, "timeout_error", msg, "request_timeout");
      continue;
    }
    /* a suspended client's disconnect shows only when we write */
    if (c->p.stream && ka > 0 && now - ex->t_last_write >= ka)
      http_stream_write(ex, ": keep-alive\n\n", 14);
  }
}

void r1d_server_cancel_jobs(r1d_server *s, const char *why) {
  for (http_exchange *ex = http_server_first(s->http); ex; ex = ex->next) {
    if (ex->on_close != call_on_close) continue;
    oai_call_fail(ex->user, 503, "server_error", why, "shutting_down");
  }
}
