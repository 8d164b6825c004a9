/* interaction_log.c - every chat/completion answer becomes one record in
 * storage (schema in storage/interactions.h): the request as sent, the
 * reasoning and the answer of each choice, usage, timings, the weights'
 * version and the API key's id. The record is built on the loop thread
 * (JSON text, so the writer only copies bytes) and committed by the
 * writer; for a completed answer the server holds its last bytes until
 * then, so an answer a client saw complete is on disk (PITFALLS.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../storage/interactions.h"
#include "openai.h"

typedef struct ilog_req {
  store_req base; /* first: the loop hands back a store_req * */
  oai_call *call; /* NULL once the call is gone (or when not held) */
  uint64_t key;
  char id[R1D_RESPONSE_ID_MAX];
  char *json;
  size_t len;
} ilog_req;

static int ilog_apply(r1d_txn *t, void *arg, r1d_error *err) {
  ilog_req *r = arg;
  return r1d_interaction_put(t, r->key, r->json, r->len, err);
}

static void ilog_done(r1d_server *s, store_req *base) {
  ilog_req *r = (ilog_req *)base;
  if (r->base.op.status) {
    /* one line per failing streak, not per request: a full disk would
     * otherwise flood the log; /health and /metrics say it meanwhile */
    if (s->log_failed == 0 || s->logged_since_failure)
      r1d_log_msg(&s->log, R1D_LOG_ERROR, "log_failed",
                  "interaction %s not stored: %s", r->id, r->base.op.err.msg);
    s->log_failed++;
    s->logged_since_failure = 0;
  } else {
    s->logged++;
    s->logged_since_failure = 1;
  }
  if (r->call) {
    r->call->log_req = NULL;
    oai_call_send_final(r->call);
  }
  free(r->json);
  free(r);
}

static json_t *choice_json(const oai_call *c, const oai_choice *ch, int i) {
  json_t *o = json_pack("{s:i}", "index", i);
  if (c->chat)
    json_object_set_new(
        o, "reasoning_content",
        json_stringn(ch->reasoning.p ? ch->reasoning.p : "", ch->reasoning.n));
  json_object_set_new(
      o, "content",
      json_stringn(ch->content.p ? ch->content.p : "", ch->content.n));
  json_object_set_new(o, "finish_reason",
                      ch->finished ? json_string(ch->finish) : json_null());
  if (c->srv->cfg.log_logprobs) {
    json_t *toks = json_array(), *lps = json_array();
    for (size_t k = 0; k < ch->n_tok; k++) {
      json_array_append_new(toks, json_integer(ch->tok[k]));
      float lp = ch->tok_lp[k];
      json_array_append_new(lps,
                            json_real(isfinite(lp) ? (double)lp : -9999.0));
    }
    json_object_set_new(o, "tokens", toks);
    json_object_set_new(o, "logprobs", lps);
  }
  return o;
}

static json_t *record_json(const oai_call *c, const char *status) {
  const r1d_server *s = c->srv;
  json_t *choices = json_array();
  for (int i = 0; i < c->n_choices; i++)
    json_array_append_new(choices, choice_json(c, &c->choices[i], i));
  int prompt_tokens = 0;
  for (int i = 0; i < c->n_prompts; i++)
    prompt_tokens += c->prompt_len[i];
  double now = r1d_server_now();
  json_t *o = json_object();
  json_object_set_new(o, "id", json_string(c->id));
  json_object_set_new(
      o, "object",
      json_string(c->chat ? "chat.completion" : "text_completion"));
  json_object_set_new(o, "created", json_integer((json_int_t)c->created));
  json_object_set_new(o, "model", json_string(s->model_id));
  json_object_set_new(o, "weight_version",
                      json_integer((json_int_t)c->weight_version));
  json_object_set_new(o, "key_id",
                      c->key_id[0] ? json_string(c->key_id) : json_null());
  json_object_set(o, "request", c->request);
  json_object_set_new(o, "prompt_tokens", json_integer(prompt_tokens));
  json_object_set_new(o, "choices", choices);
  json_object_set_new(o, "usage", oai_usage_json(c));
  json_object_set_new(o, "latency_s", json_real(now - c->t_start));
  json_object_set_new(o, "ttft_s",
                      c->ttft >= 0 ? json_real(c->ttft) : json_null());
  json_object_set_new(o, "status", json_string(status));
  if (c->error) json_object_set_new(o, "error", json_string(c->error));
  return o;
}

int oai_call_log(oai_call *c, const char *status, int hold) {
  r1d_server *s = c->srv;
  if (!c->request || c->logged || !s->writer) return 0;
  c->logged = 1;
  ilog_req *r = calloc(1, sizeof *r);
  json_t *rec = record_json(c, status);
  char *text = rec ? json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(rec);
  if (!r || !text) {
    free(r);
    free(text);
    s->log_failed++;
    r1d_log_msg(&s->log, R1D_LOG_ERROR, "log_failed",
                "interaction %s not stored: out of memory", c->id);
    return 0;
  }
  r->key = c->key;
  snprintf(r->id, sizeof r->id, "%s", c->id);
  r->json = text;
  r->len = strlen(text);
  r->base.on_done = ilog_done;
  r->base.op.apply = ilog_apply;
  r->base.op.arg = r;
  if (hold) r->call = c;
  if (r1d_server_store(s, &r->base)) { /* stopping: answer without it */
    free(r->json);
    free(r);
    s->log_failed++;
    return 0;
  }
  if (hold) c->log_req = r;
  return hold;
}

void oai_call_log_detach(oai_call *c) {
  if (c->log_req) c->log_req->call = NULL;
  c->log_req = NULL;
}
