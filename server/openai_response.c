/* openai_response.c - engine events to OpenAI answers (design/API.md
 * "Reasoning output"): chat chunks with reasoning_content / content deltas,
 * completion chunks, the final non-stream objects, usage, logprobs, and
 * in-stream errors. Runs on the loop thread.
 *
 * Streamed and non-streamed answers are built from the same pieces (the
 * reasoning splitter's output per token), so the joined deltas equal the
 * non-stream message byte for byte. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../common/utf8.h"
#include "openai.h"

static const char *reasoning_key(const oai_call *c) {
  return c->srv->cfg.reasoning_field;
}

/* ---- logprobs ---- */

/* The token's text for logprobs ("token"): its bytes, invalid UTF-8 (a
 * partial character) replaced by U+FFFD; "bytes" keeps the exact ones. */
static json_t *token_string(const r1d_tokenizer *tok, int32_t id,
                            json_t **bytes) {
  size_t len = 0;
  const char *b = r1d_tokenizer_token_bytes(tok, id, &len);
  if (!b) len = 0;
  r1d_buf s = {0};
  r1d_utf8_lossy_append(&s, (const unsigned char *)b, len);
  json_t *str = json_stringn(s.p ? s.p : "", s.n);
  r1d_buf_free(&s);
  if (bytes) {
    *bytes = json_array();
    for (size_t i = 0; i < len; i++)
      json_array_append_new(*bytes, json_integer((unsigned char)b[i]));
  }
  return str;
}

static json_t *lp_value(float lp) {
  /* -inf cannot be JSON: report the float minimum, as vLLM does (-9999.0) */
  return json_real(isfinite(lp) ? (double)lp : -9999.0);
}

static json_t *chat_lp_entry(const r1d_tokenizer *tok, int32_t id, float lp,
                             const r1d_top_logprob *top, int n_top) {
  json_t *bytes = NULL;
  json_t *o = json_object();
  json_object_set_new(o, "token", token_string(tok, id, &bytes));
  json_object_set_new(o, "logprob", lp_value(lp));
  json_object_set_new(o, "bytes", bytes);
  json_t *alts = json_array();
  for (int i = 0; i < n_top; i++) {
    if (top[i].id < 0) continue;
    json_t *tb = NULL;
    json_t *a = json_object();
    json_object_set_new(a, "token", token_string(tok, top[i].id, &tb));
    json_object_set_new(a, "logprob", lp_value(top[i].logprob));
    json_object_set_new(a, "bytes", tb);
    json_array_append_new(alts, a);
  }
  json_object_set_new(o, "top_logprobs", alts);
  return o;
}

/* The legacy completions object: parallel arrays. */
static json_t *legacy_lp_new(void) {
  return json_pack("{s:[], s:[], s:[], s:[]}", "tokens", "token_logprobs",
                   "top_logprobs", "text_offset");
}

static void legacy_lp_push(json_t *lp, const r1d_tokenizer *tok, int32_t id,
                           float logprob, int has_lp,
                           const r1d_top_logprob *top, int n_top,
                           size_t offset) {
  json_array_append_new(json_object_get(lp, "tokens"),
                        token_string(tok, id, NULL));
  json_array_append_new(json_object_get(lp, "token_logprobs"),
                        has_lp ? lp_value(logprob) : json_null());
  json_t *alts = has_lp ? json_object() : json_null();
  for (int i = 0; has_lp && i < n_top; i++) {
    if (top[i].id < 0) continue;
    json_t *k = token_string(tok, top[i].id, NULL);
    json_object_set_new(alts, json_string_value(k), lp_value(top[i].logprob));
    json_decref(k);
  }
  json_array_append_new(json_object_get(lp, "top_logprobs"), alts);
  json_array_append_new(json_object_get(lp, "text_offset"),
                        json_integer((json_int_t)offset));
}

static void legacy_lp_append(json_t *dst, json_t *src) {
  const char *keys[] = {"tokens", "token_logprobs", "top_logprobs",
                        "text_offset"};
  for (int k = 0; k < 4; k++)
    json_array_extend(json_object_get(dst, keys[k]),
                      json_object_get(src, keys[k]));
}

/* Characters (code points) in text, for the legacy text_offset. */
static size_t utf8_chars(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80) c++;
  return c;
}

/* ---- stream output ---- */

static void sse_send(oai_call *c, json_t *obj) {
  if (!c->ex) {
    json_decref(obj);
    return;
  }
  char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
  json_decref(obj);
  if (!s) return;
  http_stream_write(c->ex, "data: ", 6);
  http_stream_write(c->ex, s, strlen(s));
  http_stream_write(c->ex, "\n\n", 2);
  free(s);
}

static json_t *chunk_head(oai_call *c) {
  return json_pack("{s:s, s:s, s:I, s:s}", "id", c->id, "object",
                   c->chat ? "chat.completion.chunk" : "text_completion",
                   "created", (json_int_t)c->created, "model",
                   c->srv->model_id);
}

static void send_chat_delta(oai_call *c, int index, json_t *delta,
                            json_t *logprobs, const char *finish) {
  json_t *o = chunk_head(c);
  json_t *ch =
      json_pack("{s:i, s:o, s:o, s:o}", "index", index, "delta", delta,
                "logprobs", logprobs ? logprobs : json_null(), "finish_reason",
                finish ? json_string(finish) : json_null());
  json_object_set_new(o, "choices", json_pack("[o]", ch));
  sse_send(c, o);
}

static void send_text_chunk(oai_call *c, int index, const char *text,
                            size_t len, json_t *logprobs, const char *finish) {
  json_t *o = chunk_head(c);
  json_t *ch =
      json_pack("{s:i, s:s%, s:o, s:o}", "index", index, "text", text, len,
                "logprobs", logprobs ? logprobs : json_null(), "finish_reason",
                finish ? json_string(finish) : json_null());
  json_object_set_new(o, "choices", json_pack("[o]", ch));
  sse_send(c, o);
}

json_t *oai_usage_json(const oai_call *c) {
  json_t *u =
      json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", c->prompt_tokens,
                "completion_tokens", c->completion_tokens, "total_tokens",
                c->prompt_tokens + c->completion_tokens,
                "prompt_tokens_details", "cached_tokens", c->cached_tokens);
  if (c->chat)
    json_object_set_new(
        u, "completion_tokens_details",
        json_pack("{s:i}", "reasoning_tokens", c->reasoning_tokens));
  return u;
}

int oai_call_start_stream(oai_call *c) {
  http_stream_start(c->ex);
  for (int i = 0; i < c->n_choices; i++) {
    if (c->chat) {
      json_t *d = json_pack("{s:s, s:n}", "role", "assistant", "content");
      if (c->p.include_reasoning)
        json_object_set_new(d, reasoning_key(c), json_string(""));
      send_chat_delta(c, i, d, NULL, NULL);
    } else if (c->p.echo && !c->p.logprobs) {
      /* with logprobs the echo waits for the prompt's logprobs */
      int pi = i / c->p.n;
      send_text_chunk(c, i, c->echo_text[pi], strlen(c->echo_text[pi]), NULL,
                      NULL);
    }
  }
  return 0;
}

/* ---- the end ---- */

static json_t *final_json(oai_call *c) {
  json_t *choices = json_array();
  for (int i = 0; i < c->n_choices; i++) {
    oai_choice *ch = &c->choices[i];
    json_t *o;
    if (c->chat) {
      json_t *msg =
          json_pack("{s:s, s:s%}", "role", "assistant", "content",
                    ch->content.p ? ch->content.p : "", ch->content.n);
      if (c->p.include_reasoning)
        json_object_set_new(msg, reasoning_key(c),
                            json_stringn(ch->reasoning.p ? ch->reasoning.p : "",
                                         ch->reasoning.n));
      json_t *lp = c->p.logprobs
                       ? json_pack("{s:O, s:n}", "content", ch->lp, "refusal")
                       : json_null();
      o = json_pack("{s:i, s:o, s:o, s:s}", "index", i, "message", msg,
                    "logprobs", lp, "finish_reason", ch->finish);
    } else {
      r1d_buf text = {0};
      int pi = i / c->p.n;
      if (c->p.echo)
        r1d_buf_append(&text, c->echo_text[pi], strlen(c->echo_text[pi]));
      r1d_buf_append(&text, ch->content.p ? ch->content.p : "", ch->content.n);
      json_t *lp = json_null();
      if (c->p.logprobs) {
        lp = legacy_lp_new();
        if (c->p.echo && c->prompt_lp[pi])
          legacy_lp_append(lp, c->prompt_lp[pi]);
        legacy_lp_append(lp, ch->lp);
      }
      o = json_pack("{s:i, s:s%, s:o, s:s}", "index", i, "text",
                    text.p ? text.p : "", text.n, "logprobs", lp,
                    "finish_reason", ch->finish);
      r1d_buf_free(&text);
    }
    json_array_append_new(choices, o);
  }
  json_t *r =
      json_pack("{s:s, s:s, s:I, s:s, s:o, s:o}", "id", c->id, "object",
                c->chat ? "chat.completion" : "text_completion", "created",
                (json_int_t)c->created, "model", c->srv->model_id, "choices",
                choices, "usage", oai_usage_json(c));
  return r;
}

void oai_call_send_final(oai_call *c) {
  if (c->ex) {
    if (c->p.stream) {
      if (c->error) {
        json_t *e = http_error_json("server_error", c->error, NULL, NULL);
        sse_send(c, e);
      } else if (c->p.include_usage) {
        json_t *o = chunk_head(c);
        json_object_set_new(o, "choices", json_array());
        json_object_set_new(o, "usage", oai_usage_json(c));
        sse_send(c, o);
      }
      http_stream_write(c->ex, "data: [DONE]\n\n", 14);
      http_stream_end(c->ex);
    } else if (c->error) {
      http_reply_error(c->ex, 500, "server_error", c->error, NULL, NULL);
    } else {
      http_reply_json(c->ex, 200, final_json(c));
    }
  }
}

static void finish_call(oai_call *c) {
  if (c->done) return;
  c->done = 1;
  r1d_server *s = c->srv;
  s->metrics.prompt_tokens += (uint64_t)c->prompt_tokens;
  s->metrics.generation_tokens += (uint64_t)c->completion_tokens;
  s->metrics.reasoning_tokens += (uint64_t)c->reasoning_tokens;
  if (c->ex) {
    c->ex->prompt_tokens = c->prompt_tokens;
    c->ex->completion_tokens = c->completion_tokens;
  }
  if (c->job) {
    gen_job_release(c->job);
    c->job = NULL;
  }
  /* durable before complete: the end goes out once the record committed */
  if (oai_call_log(c, c->error ? "error" : "ok", 1)) return;
  oai_call_send_final(c);
}

void oai_call_fail(oai_call *c, int status, const char *type,
                   const char *message, const char *code) {
  if (c->done) return;
  if (c->job) gen_job_cancel(c->job);
  /* what was generated so far is logged; the error need not wait for it */
  oai_call_log(c, status == 504 ? "timeout" : "cancelled", 0);
  if (c->ex && c->p.stream) {
    json_t *e = http_error_json(type, message, NULL, code);
    sse_send(c, e);
    http_stream_write(c->ex, "data: [DONE]\n\n", 14);
    http_stream_end(c->ex);
  } else if (c->ex) {
    http_reply_error(c->ex, status, type, message, NULL, code);
  }
  c->done = 1;
  if (c->job) {
    gen_job_release(c->job);
    c->job = NULL;
  }
}

/* ---- events ---- */

static void on_prompt_logprobs(oai_call *c, const gen_event *e) {
  int pi = e->req;
  if (pi < 0 || pi >= c->n_prompts || c->prompt_lp[pi]) return;
  const r1d_tokenizer *tok = c->srv->tok;
  json_t *lp = legacy_lp_new();
  size_t off = 0;
  for (int k = 0; k < e->n_prompt_lp && k < c->prompt_len[pi]; k++) {
    const r1d_prompt_logprob *q = &e->prompt_lp[k];
    int32_t id = c->prompt_ids[pi][k];
    legacy_lp_push(lp, tok, id, q->logprob, k > 0, q->top, q->n_top, off);
    size_t len = 0;
    const char *b = r1d_tokenizer_token_bytes(tok, id, &len);
    off += b ? utf8_chars(b, len) : 0;
  }
  c->prompt_lp[pi] = lp;
  if (c->p.stream && c->p.echo)
    for (int i = pi * c->p.n; i < (pi + 1) * c->p.n; i++)
      send_text_chunk(c, i, c->echo_text[pi], strlen(c->echo_text[pi]),
                      json_deep_copy(lp), NULL);
}

static int push_token(oai_choice *ch, const gen_event *e) {
  if (ch->n_tok == ch->cap_tok) {
    size_t cap = ch->cap_tok ? ch->cap_tok * 2 : 64;
    int32_t *t = realloc(ch->tok, cap * sizeof *t);
    if (!t) return -1;
    ch->tok = t;
    float *l = realloc(ch->tok_lp, cap * sizeof *l);
    if (!l) return -1;
    ch->tok_lp = l;
    ch->cap_tok = cap;
  }
  ch->tok[ch->n_tok] = e->token;
  ch->tok_lp[ch->n_tok++] = e->logprob;
  return 0;
}

static void on_token(oai_call *c, const gen_event *e, double now) {
  int ci = e->req * c->p.n + e->index;
  if (ci < 0 || ci >= c->n_choices) return;
  oai_choice *ch = &c->choices[ci];
  const r1d_tokenizer *tok = c->srv->tok;
  int final = e->finish != R1D_FINISH_NONE;
  if (e->token >= 0) {
    if (!c->got_first_token) {
      c->got_first_token = 1;
      c->ttft = now - c->t_start;
      if (c->ex) {
        c->ex->ttft = now - c->ex->t_start;
        r1d_histogram_observe(&c->srv->metrics.ttft, c->ex->ttft);
      }
    }
    if (ch->t_last > 0)
      r1d_histogram_observe(&c->srv->metrics.itl, now - ch->t_last);
    ch->t_last = now;
  }
  /* the split: chat answers go through the <think> parser, completions are
   * plain text */
  r1d_buf *rb = &c->scratch_r, *cb = &c->scratch_c;
  rb->n = cb->n = 0;
  if (c->chat)
    r1d_reasoning_push(&ch->rs, e->token, e->text, e->text_len, final, rb, cb);
  else
    r1d_buf_append(cb, e->text, e->text_len);
  /* the whole answer is kept for the non-stream reply and the log */
  r1d_buf_append(&ch->reasoning, rb->p, rb->n);
  r1d_buf_append(&ch->content, cb->p, cb->n);
  if (c->srv->cfg.log_logprobs && e->token >= 0 && push_token(ch, e))
    c->error = c->error ? c->error : strdup("out of memory");
  if (!c->p.include_reasoning) rb->n = 0;

  json_t *entry = NULL; /* this token's logprobs */
  if (c->p.logprobs && e->token >= 0) {
    if (c->chat) {
      entry = chat_lp_entry(tok, e->token, e->logprob, e->top, e->n_top);
    } else {
      entry = legacy_lp_new();
      legacy_lp_push(entry, tok, e->token, e->logprob, 1, e->top, e->n_top,
                     ch->text_offset);
    }
  }
  ch->text_offset += utf8_chars(cb->p, cb->n);

  if (!c->p.stream) {
    if (entry) {
      if (c->chat)
        json_array_append_new(ch->lp, entry);
      else {
        legacy_lp_append(ch->lp, entry);
        json_decref(entry);
      }
    }
  } else if (c->chat) {
    if (entry) json_array_append_new(ch->lp_pending, entry);
    /* logprobs ride on the next chunk that carries text (or the finish) */
    int pending = (int)json_array_size(ch->lp_pending);
    if (rb->n) {
      json_t *d =
          json_pack("{s:n, s:s%}", "content", reasoning_key(c), rb->p, rb->n);
      json_t *lp = NULL;
      if (pending && !cb->n) {
        lp = json_pack("{s:o}", "content", ch->lp_pending);
        ch->lp_pending = json_array();
        pending = 0;
      }
      send_chat_delta(c, ci, d, lp, NULL);
    }
    if (cb->n) {
      json_t *d = json_pack("{s:s%}", "content", cb->p, cb->n);
      if (c->p.include_reasoning)
        json_object_set_new(d, reasoning_key(c), json_null());
      json_t *lp = NULL;
      if (pending) {
        lp = json_pack("{s:o}", "content", ch->lp_pending);
        ch->lp_pending = json_array();
      }
      send_chat_delta(c, ci, d, lp, NULL);
    }
  } else {
    if (cb->n || entry)
      send_text_chunk(c, ci, cb->p ? cb->p : "", cb->n, entry, NULL);
    else
      json_decref(entry);
  }

  if (!final) return;
  ch->finished = 1;
  ch->finish = e->finish == R1D_FINISH_LENGTH ? "length" : "stop";
  c->completion_tokens += e->completion_tokens;
  if (c->chat) c->reasoning_tokens += r1d_reasoning_tokens(&ch->rs);
  if (e->index == 0) { /* prompt usage once per prompt, not per choice */
    c->prompt_tokens += e->prompt_tokens;
    c->cached_tokens += e->cached_tokens;
  }
  if (e->error && !c->error) c->error = strdup(e->error);
  /* the engine aborted a request the client still waits for: a weight swap
   * with abort_in_flight (a client's own cancel never gets here) */
  if (e->finish == R1D_FINISH_ABORT && !e->error && !c->error)
    c->error = strdup("the request was aborted before it finished (a weight "
                      "swap with abort_in_flight)");
  if (c->p.stream && !e->error && e->finish != R1D_FINISH_ABORT) {
    if (c->chat) {
      json_t *lp = NULL;
      if (json_array_size(ch->lp_pending)) {
        lp = json_pack("{s:o}", "content", ch->lp_pending);
        ch->lp_pending = json_array();
      }
      send_chat_delta(c, ci, json_object(), lp, ch->finish);
    } else {
      send_text_chunk(c, ci, "", 0, NULL, ch->finish);
    }
  }
  c->n_finished++;
}

void oai_call_on_events(void *owner, gen_job *j, gen_event *list) {
  (void)j;
  oai_call *c = owner;
  double now = r1d_server_now();
  for (gen_event *e = list; e && !c->done; e = e->next) {
    if (e->n_prompt_lp > 0)
      on_prompt_logprobs(c, e);
    else
      on_token(c, e, now);
  }
  gen_events_free(list);
  if (!c->done && c->n_finished == c->n_choices) finish_call(c);
}

void oai_call_free(oai_call *c) {
  if (!c) return;
  /* a client gone mid-answer: what it got so far is still an interaction */
  if (!c->done && c->submitted) oai_call_log(c, "cancelled", 0);
  oai_call_log_detach(c);
  json_decref(c->request);
  if (c->job) {
    gen_job_cancel(c->job);
    gen_job_release(c->job);
  }
  for (int i = 0; c->choices && i < c->n_choices; i++) {
    oai_choice *ch = &c->choices[i];
    r1d_reasoning_free(&ch->rs);
    r1d_buf_free(&ch->reasoning);
    r1d_buf_free(&ch->content);
    json_decref(ch->lp);
    json_decref(ch->lp_pending);
    free(ch->tok);
    free(ch->tok_lp);
  }
  for (int i = 0; i < c->n_prompts; i++) {
    if (c->echo_text) free(c->echo_text[i]);
    if (c->prompt_lp) json_decref(c->prompt_lp[i]);
    if (c->prompt_ids) free(c->prompt_ids[i]);
  }
  free(c->echo_text);
  free(c->prompt_lp);
  free(c->prompt_ids);
  free(c->prompt_len);
  free(c->choices);
  free(c->error);
  r1d_buf_free(&c->scratch_r);
  r1d_buf_free(&c->scratch_c);
  free(c);
}
