/* engine.c - the engine's API, its thread, and what happens to a step's
 * logits: sampling, text, stop conditions, events (see engine.h). The
 * scheduler (scheduler.c) decides what each step runs; the runner
 * (engine/model/runner.c) runs it on the backend.
 *
 * Threads: callers touch only the inbox, the active list and the counters
 * under `mu`; sequences, the KV pool and the runner belong to the engine
 * thread. Callbacks run on the engine thread without the lock held. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_internal.h"

void r1d_engine_config_default(r1d_engine_config *c) {
  memset(c, 0, sizeof *c);
  c->block_size = 16;
  c->max_num_seqs = 64;
  c->max_batch_tokens = 512;
  c->prefix_cache = 1;
  c->device_sampling = -1;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- requests ---- */

static void req_free(eng_req *r) {
  if (!r) return;
  for (int i = 0; r->seqs && i < r->n; i++) {
    eng_seq *s = &r->seqs[i];
    free(s->tokens);
    r1d_kv_seq_free(&s->kv);
    r1d_sampler_free(s->sampler);
    r1d_detok_free(&s->detok);
  }
  free(r->seqs);
  for (int i = 0; r->stop && i < r->params.n_stop; i++)
    free(r->stop[i]);
  free(r->stop);
  free(r->stop_ids);
  free(r->bias);
  free(r->plp);
  free(r->prompt);
  free(r);
}

/* Deep copy of the parameters, so the caller's memory may go away. */
static int req_copy_params(eng_req *r, const r1d_gen_params *p) {
  r->params = *p;
  if (p->n_stop > 0) {
    r->stop = calloc((size_t)p->n_stop, sizeof(char *));
    if (!r->stop) return R1D_ENOMEM;
    for (int i = 0; i < p->n_stop; i++) {
      if (!p->stop[i]) return R1D_EINVAL;
      r->stop[i] = strdup(p->stop[i]);
      if (!r->stop[i]) return R1D_ENOMEM;
    }
  }
  r->params.stop = (const char *const *)r->stop;
  if (p->n_stop_ids > 0) {
    r->stop_ids = malloc((size_t)p->n_stop_ids * sizeof(int32_t));
    if (!r->stop_ids) return R1D_ENOMEM;
    memcpy(r->stop_ids, p->stop_ids, (size_t)p->n_stop_ids * sizeof(int32_t));
  }
  r->params.stop_ids = r->stop_ids;
  int nb = p->sampling.n_logit_bias;
  if (nb > 0) {
    r->bias = malloc((size_t)nb * sizeof *r->bias);
    if (!r->bias) return R1D_ENOMEM;
    memcpy(r->bias, p->sampling.logit_bias, (size_t)nb * sizeof *r->bias);
  }
  r->params.sampling.logit_bias = r->bias;
  return 0;
}

/* A choice's private state: tokens (the prompt first), sampler with seed +
 * index, text filter. */
static int seq_init(r1d_engine *e, eng_req *r, int index, r1d_error *err) {
  eng_seq *s = &r->seqs[index];
  s->req = r;
  s->index = index;
  s->state = SEQ_NEW;
  s->budget = r->params.max_tokens;
  if (s->budget > e->cfg.max_model_len - r->n_prompt)
    s->budget = e->cfg.max_model_len - r->n_prompt;
  /* room for the prompt and every token it may generate */
  s->tokens = malloc((size_t)(r->n_prompt + s->budget) * sizeof(int32_t));
  if (!s->tokens) return r1d_fail(err, R1D_ENOMEM, "engine: out of memory");
  memcpy(s->tokens, r->prompt, (size_t)r->n_prompt * sizeof(int32_t));
  s->n_tokens = r->n_prompt;
  r1d_sampling_params sp = r->params.sampling;
  sp.seed += (uint64_t)index;
  int rc = r1d_sampler_create(&sp, e->model->cfg.vocab_size, r->prompt,
                              (size_t)r->n_prompt, &s->sampler, err);
  if (rc) return rc;
  r1d_think_init(&s->think, &r->params);
  return r1d_detok_init(&s->detok, e->tok, r->params.stop, r->params.n_stop,
                        r->params.keep_special, err);
}

static int validate(r1d_engine *e, const r1d_engine_request *q,
                    r1d_error *err) {
  const r1d_gen_params *p = &q->params;
  int vocab = e->model->cfg.vocab_size;
  if (!q->prompt || q->n_prompt <= 0)
    return r1d_fail(err, R1D_EINVAL, "prompt is empty (no tokens)");
  for (int i = 0; i < q->n_prompt; i++)
    if (q->prompt[i] < 0 || q->prompt[i] >= vocab)
      return r1d_fail(err, R1D_EINVAL,
                      "prompt token %d (at %d) is outside the vocabulary "
                      "[0, %d)",
                      (int)q->prompt[i], i, vocab);
  if (q->n_prompt >= e->cfg.max_model_len)
    return r1d_fail(err, R1D_ERANGE,
                    "prompt has %d tokens; the context is %d tokens (the "
                    "prompt must leave room for at least one new token)",
                    q->n_prompt, e->cfg.max_model_len);
  if (q->n < 1 || q->n > R1D_ENGINE_MAX_N || q->n > e->cfg.max_num_seqs)
    return r1d_fail(err, R1D_EINVAL,
                    "n must be in [1, %d] (max_num_seqs %d), got %d",
                    R1D_ENGINE_MAX_N, e->cfg.max_num_seqs, q->n);
  if (q->priority != R1D_PRIORITY_INTERACTIVE &&
      q->priority != R1D_PRIORITY_BACKGROUND)
    return r1d_fail(err, R1D_EINVAL, "priority must be 0 or 1, got %d",
                    (int)q->priority);
  if (q->weight_version != 0 && q->weight_version != e->weight_version)
    return r1d_fail(err, R1D_ENOTFOUND,
                    "weight version %llu is not loaded (live: %llu)",
                    (unsigned long long)q->weight_version,
                    (unsigned long long)e->weight_version);
  return r1d_gen_params_validate(p, vocab, err);
}

int r1d_engine_submit(r1d_engine *e, const r1d_engine_request *q, uint64_t *id,
                      r1d_error *err) {
  int rc = validate(e, q, err);
  if (rc) return rc;
  eng_req *r = calloc(1, sizeof *r);
  if (!r) return r1d_fail(err, R1D_ENOMEM, "engine: out of memory");
  r->n = q->n;
  r->priority = q->priority;
  r->cb = q->cb;
  r->user = q->user;
  r->n_prompt = q->n_prompt;
  r->prompt = malloc((size_t)q->n_prompt * sizeof(int32_t));
  r->seqs = calloc((size_t)q->n, sizeof *r->seqs);
  if (!r->prompt || !r->seqs) {
    req_free(r);
    return r1d_fail(err, R1D_ENOMEM, "engine: out of memory");
  }
  memcpy(r->prompt, q->prompt, (size_t)q->n_prompt * sizeof(int32_t));
  rc = req_copy_params(r, &q->params);
  if (rc) {
    req_free(r);
    return r1d_fail(err, rc, "engine: cannot copy the request parameters");
  }
  if (q->params.prompt_logprobs > 0) {
    r->plp = calloc((size_t)q->n_prompt, sizeof *r->plp);
    if (!r->plp) {
      req_free(r);
      return r1d_fail(err, R1D_ENOMEM,
                      "engine: out of memory for the prompt logprobs of %d "
                      "tokens",
                      q->n_prompt);
    }
    for (int i = 0; i < q->n_prompt; i++)
      r->plp[i].id = q->prompt[i];
    r->plp[0].logprob = NAN; /* nothing before the first token */
    r->plp_pending = 1;
  }
  /* Sequences are built on the calling thread (samplers and token arrays
   * allocate); their KV tables are the engine thread's (take_inbox). */
  for (int i = 0; i < q->n; i++) {
    rc = seq_init(e, r, i, err);
    if (rc) {
      req_free(r);
      return rc;
    }
  }
  pthread_mutex_lock(&e->mu);
  if (e->stop || e->failed) {
    rc = r1d_fail(err, R1D_ESTATE, "engine: %s",
                  e->failed ? e->fail_msg : "shutting down");
  } else if (e->cfg.max_waiting > 0 &&
             e->n_waiting_new + e->n_inbox >= e->cfg.max_waiting) {
    rc = r1d_fail(err, R1D_EBUSY, "engine: %d requests already waiting",
                  e->n_waiting_new + e->n_inbox);
  }
  if (rc) {
    pthread_mutex_unlock(&e->mu);
    req_free(r);
    return rc;
  }
  r->id = ++e->next_id;
  r->arrival = ++e->next_arrival;
  r->active_next = e->active;
  if (e->active) e->active->active_prev = r;
  e->active = r;
  if (e->inbox_tail)
    e->inbox_tail->inbox_next = r;
  else
    e->inbox_head = r;
  e->inbox_tail = r;
  e->n_requests++;
  e->n_inbox++;
  /* counted in the published stats at once, so r1d_engine_wait_idle waits
   * for the step that finishes it to publish */
  e->stats.requests++;
  if (id) *id = r->id;
  pthread_cond_signal(&e->work_cv);
  pthread_mutex_unlock(&e->mu);
  return 0;
}

int r1d_engine_cancel(r1d_engine *e, uint64_t id) {
  int rc = R1D_ENOTFOUND;
  pthread_mutex_lock(&e->mu);
  for (eng_req *r = e->active; r; r = r->active_next)
    if (r->id == id) {
      if (!r->cancel) {
        r->cancel = 1;
        e->n_cancel_pending++;
        pthread_cond_signal(&e->work_cv);
      }
      rc = 0;
      break;
    }
  pthread_mutex_unlock(&e->mu);
  return rc;
}

int r1d_engine_cancel_all(r1d_engine *e) {
  int n = 0;
  pthread_mutex_lock(&e->mu);
  for (eng_req *r = e->active; r; r = r->active_next)
    if (!r->cancel) {
      r->cancel = 1;
      e->n_cancel_pending++;
      n++;
    }
  if (n) pthread_cond_signal(&e->work_cv);
  pthread_mutex_unlock(&e->mu);
  return n;
}

/* ---- events and finishing ---- */

static void emit(eng_seq *s, r1d_engine_event *ev) {
  ev->request_id = s->req->id;
  ev->index = s->index;
  if (s->req->cb && s->req->cb(s->req->user, ev)) s->req->cancel_local = 1;
}

/* Removes a finished request from the shared lists and frees it. */
static void req_done(r1d_engine *e, eng_req *r) {
  pthread_mutex_lock(&e->mu);
  if (r->active_prev)
    r->active_prev->active_next = r->active_next;
  else
    e->active = r->active_next;
  if (r->active_next) r->active_next->active_prev = r->active_prev;
  if (r->cancel) e->n_cancel_pending--;
  e->n_requests--;
  pthread_mutex_unlock(&e->mu);
  req_free(r);
}

/* Takes s out of the lists and the pool; the caller has emitted its last
 * event. Frees the request when it was its last choice. */
static void seq_finish(r1d_engine *e, eng_seq *s) {
  if (s->state == SEQ_RUNNING) seq_list_remove(&e->running, s);
  if (s->state == SEQ_WAITING) seq_list_remove(&e->waiting, s);
  r1d_kv_seq_release(e->pool, &s->kv);
  s->state = SEQ_FINISHED;
  if (++s->req->n_finished == s->req->n) req_done(e, s->req);
}

static void finish_without_token(r1d_engine *e, eng_seq *s,
                                 r1d_finish_reason why, const char *error) {
  r1d_engine_event ev = {.token = -1,
                         .text = "",
                         .finish = why,
                         .prompt_tokens = s->req->n_prompt,
                         .completion_tokens = s->n_gen,
                         .cached_tokens = s->cached_tokens,
                         .error = error};
  emit(s, &ev);
  seq_finish(e, s);
}

/* Every unfinished choice of r ends with `why`. */
static void req_abort(r1d_engine *e, eng_req *r, r1d_finish_reason why,
                      const char *error) {
  int n = r->n;
  for (int i = 0; i < n; i++) {
    eng_seq *s = &r->seqs[i];
    if (s->state == SEQ_FINISHED) continue;
    int last = r->n_finished == n - 1;
    finish_without_token(e, s, why, error);
    if (last) return; /* r is freed */
  }
}

/* Appends token id to s, streams it, and finishes s when a stop condition
 * holds. */
static void emit_token(r1d_engine *e, eng_seq *s, int32_t id, float lp,
                       const r1d_top_logprob *top, int n_top) {
  const r1d_gen_params *p = &s->req->params;
  s->tokens[s->n_tokens++] = id;
  s->n_gen++;
  r1d_think_push(&s->think, p, id);
  e->generated_tokens++;
  int stop_token = r1d_gen_is_stop_id(&e->model->cfg, p, id);
  int last = stop_token || s->n_gen >= s->budget;
  char *text = NULL;
  size_t len = 0;
  int matched = r1d_detok_push(&s->detok, id, stop_token, last, &text, &len);
  if (matched < 0) {
    free(text);
    finish_without_token(e, s, R1D_FINISH_ABORT, "engine: out of memory");
    return;
  }
  r1d_finish_reason why = R1D_FINISH_NONE;
  if (stop_token || matched)
    why = R1D_FINISH_STOP;
  else if (s->n_gen >= s->budget)
    why = R1D_FINISH_LENGTH;
  r1d_engine_event ev = {.token = id,
                         .text = text ? text : "",
                         .text_len = len,
                         .logprob = lp,
                         .top = top,
                         .n_top = n_top,
                         .finish = why};
  if (why != R1D_FINISH_NONE) {
    ev.prompt_tokens = s->req->n_prompt;
    ev.completion_tokens = s->n_gen;
    ev.cached_tokens = s->cached_tokens;
  }
  emit(s, &ev);
  free(text);
  if (why != R1D_FINISH_NONE) seq_finish(e, s);
}

/* Samples s's next token from `logits` (modified) on the host, or forces
 * </think> when its thinking budget is spent. */
static void sample_and_emit(r1d_engine *e, eng_seq *s, float *logits) {
  const r1d_gen_params *p = &s->req->params;
  r1d_top_logprob top[R1D_GEN_MAX_TOP];
  r1d_top_logprob *tp = p->n_top_logprobs ? top : NULL;
  float lp = 0.0f;
  int32_t id =
      r1d_think_must_close(&s->think, p)
          ? r1d_sampler_force(s->sampler, logits, p->think_end_id, &lp, tp,
                              p->n_top_logprobs)
          : r1d_sampler_sample(s->sampler, logits, &lp, tp, p->n_top_logprobs);
  emit_token(e, s, id, lp, top, p->n_top_logprobs);
}

/* Fills the prompt logprobs of s's rows of this step (logits rows plp_row0
 * on, host memory). */
static void take_prompt_logprobs(r1d_engine *e, eng_seq *s) {
  const int vocab = e->model->cfg.vocab_size;
  eng_req *r = s->req;
  int k = r->params.prompt_logprobs - 1;
  for (int i = 0; i < s->plp_n; i++) {
    const float *row = e->logits + (size_t)(s->plp_row0 + i) * vocab;
    r1d_prompt_logprob *t = &r->plp[s->plp_pos0 + i + 1];
    t->logprob = r1d_raw_logprob(row, vocab, t->id, t->top, k);
    t->n_top = k;
  }
  s->plp_n = 0;
}

/* s (choice 0) finished its prompt: one event with every prompt logprob,
 * before its first token. */
static void emit_prompt_logprobs(eng_seq *s) {
  eng_req *r = s->req;
  r1d_engine_event ev = {.token = -1,
                         .text = "",
                         .finish = R1D_FINISH_NONE,
                         .prompt_logprobs = r->plp,
                         .n_prompt_logprobs = r->n_prompt};
  emit(s, &ev);
  r->plp_pending = 0;
  free(r->plp);
  r->plp = NULL;
}

/* Choice 0 of an n-sample request finished its prompt: choices 1..n-1 share
 * its blocks from here on (copy-on-write) and sample from the same logits. */
static void fork_choices(r1d_engine *e, eng_seq *s0) {
  eng_req *r = s0->req;
  r->forked = 1;
  for (int i = 1; i < r->n; i++) {
    eng_seq *c = &r->seqs[i];
    r1d_kv_seq_fork(e->pool, &s0->kv, &c->kv);
    c->cached_tokens = s0->cached_tokens;
    c->admitted = 1;
    c->state = SEQ_RUNNING;
    seq_list_insert(&e->running, c);
  }
}

/* After a step: publish written blocks, sample every sequence that reached
 * the end of its known tokens. */
static void commit_step(r1d_engine *e) {
  for (int i = 0; i < e->n_b_seqs; i++) {
    eng_seq *s = e->b_seqs[i];
    r1d_kv_seq_commit(e->pool, &s->kv, s->tokens, s->kv.n_tokens);
  }
}

/* Whether s's tokens are drawn by the backend's sample op. Decided per
 * request, never per step, so a request samples the same way whatever it
 * shares a step with; the first token of an n-sample request (all choices
 * from one logits row) is always drawn on the host. */
static int samples_on_device(const r1d_engine *e, const eng_seq *s) {
  const eng_req *r = s->req;
  if (!e->device_sampling || (r->n > 1 && !r->forked)) return 0;
  if (r->params.think_budget_on) return 0; /* forcing needs the logits */
  return r1d_sampler_device_ok(s->sampler, r->params.n_top_logprobs);
}

/* Runs the planned step: logits rows that come to the host first (prompt
 * logprob rows and host-sampled sequences), then device-sampled ones (only
 * their tokens come back); then publishes written blocks and streams every
 * new token. */
static int run_step(r1d_engine *e, r1d_batch *b, r1d_error *err) {
  const int vocab = e->model->cfg.vocab_size;
  int n_host = 0, n_dev = 0;
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < e->n_b_seqs; i++) {
      eng_seq *s = e->b_seqs[i];
      if (pass == 0 && s->plp_n > 0) {
        int j0 = n_host;
        for (int k = 0; k < s->plp_n; k++)
          e->b_rows2[n_host++] = e->b_logit_rows[s->plp_row0 + k];
        s->plp_row0 = j0;
      }
      if (s->logit_row < 0 || samples_on_device(e, s) != pass) continue;
      int j = pass ? n_host + n_dev++ : n_host++;
      e->b_rows2[j] = e->b_logit_rows[s->logit_row];
      s->logit_row = j;
      if (pass) {
        int k = j - n_host;
        r1d_sampler_device_params(s->sampler, &e->sp_temp[k], &e->sp_top_k[k],
                                  &e->sp_top_p[k], &e->sp_min_p[k]);
        e->sp_u[k] = r1d_sampler_next_uniform(s->sampler);
      }
    }
  memcpy(e->b_logit_rows, e->b_rows2,
         (size_t)(n_host + n_dev) * sizeof(int32_t));
  r1d_step_sampling sp = {.temperature = e->sp_temp,
                          .top_p = e->sp_top_p,
                          .min_p = e->sp_min_p,
                          .u = e->sp_u,
                          .top_k = e->sp_top_k};
  double t0 = now_seconds();
  int rc = r1d_runner_step_sample(e->runner, b, n_host, e->logits, &sp,
                                  e->sp_tokens, e->sp_logprobs, err);
  e->runner_seconds += now_seconds() - t0;
  if (rc) return rc;
  e->steps++;
  commit_step(e);
  for (int i = 0; i < e->n_b_seqs; i++) {
    eng_seq *s = e->b_seqs[i];
    s->scheduled = 0;
    if (s->state != SEQ_RUNNING) continue;
    if (s->plp_n > 0) take_prompt_logprobs(e, s);
    if (s->logit_row < 0) continue;
    if (seq_wants_plp(s)) emit_prompt_logprobs(s);
    if (s->logit_row >= n_host) {
      int k = s->logit_row - n_host;
      emit_token(e, s, e->sp_tokens[k], e->sp_logprobs[k], NULL, 0);
      continue;
    }
    const float *row = e->logits + (size_t)s->logit_row * vocab;
    eng_req *r = s->req;
    if (r->n > 1 && !r->forked && s->index == 0) {
      /* no choice has finished yet, so the request can be freed (by its
       * last choice finishing) only in the loop's last round */
      fork_choices(e, s);
      int n = r->n;
      for (int c = 0; c < n; c++) {
        memcpy(e->row, row, (size_t)vocab * sizeof(float));
        sample_and_emit(e, &r->seqs[c], e->row);
      }
      continue;
    }
    memcpy(e->row, row, (size_t)vocab * sizeof(float));
    sample_and_emit(e, s, e->row);
  }
  return 0;
}

/* ---- the thread ---- */

static void fail_everything(r1d_engine *e, const char *msg) {
  pthread_mutex_lock(&e->mu);
  e->failed = 1;
  snprintf(e->fail_msg, sizeof e->fail_msg, "%s", msg);
  pthread_mutex_unlock(&e->mu);
  while (e->running.head)
    req_abort(e, e->running.head->req, R1D_FINISH_ABORT, e->fail_msg);
  while (e->waiting.head)
    req_abort(e, e->waiting.head->req, R1D_FINISH_ABORT, e->fail_msg);
}

static void publish_stats(r1d_engine *e) {
  r1d_kv_stats kv;
  r1d_kv_pool_stats(e->pool, &kv);
  long kv_tokens = 0;
  for (eng_seq *s = e->running.head; s; s = s->next)
    kv_tokens += s->kv.n_tokens;
  pthread_mutex_lock(&e->mu);
  r1d_engine_stats *st = &e->stats;
  st->running = e->running.n;
  st->waiting = e->waiting.n;
  st->requests = e->n_requests;
  st->kv_blocks_total = kv.total;
  st->kv_blocks_used = kv.used;
  st->kv_blocks_free = kv.free;
  st->kv_blocks_cached = kv.cached;
  st->block_size = e->cfg.block_size;
  st->kv_tokens = kv_tokens;
  st->prefix_hit_tokens = kv.prefix_hit_tokens;
  st->prefix_queries = kv.prefix_queries;
  st->cow_copies = kv.cow_copies;
  st->preemptions = e->preemptions;
  st->steps = e->steps;
  st->host_seconds = e->host_seconds;
  st->runner_seconds = e->runner_seconds;
  st->prompt_tokens = e->prompt_tokens;
  st->generated_tokens = e->generated_tokens;
  st->weight_version = e->weight_version;
  st->failed = e->failed;
  e->n_waiting_new = 0; /* never admitted: new requests, not preempted */
  for (eng_seq *s = e->waiting.head; s; s = s->next)
    if (!s->admitted) e->n_waiting_new++;
  pthread_cond_broadcast(&e->idle_cv); /* wait_idle wants fresh stats */
  pthread_mutex_unlock(&e->mu);
}

/* Takes new requests and cancellations from the shared side. Returns 0 to
 * go on, 1 to stop. */
static int take_inbox(r1d_engine *e) {
  int has_work = e->running.n > 0 || e->waiting.n > 0;
  pthread_mutex_lock(&e->mu);
  while (!e->stop && !e->inbox_head && !e->n_cancel_pending && !has_work)
    pthread_cond_wait(&e->work_cv, &e->mu);
  if (e->stop) {
    pthread_mutex_unlock(&e->mu);
    return 1;
  }
  eng_req *in = e->inbox_head;
  e->inbox_head = e->inbox_tail = NULL;
  e->n_waiting_new += e->n_inbox; /* until the next publish recounts */
  e->n_inbox = 0;
  /* collect cancelled requests; they stay on the active list until done */
  eng_req *cancelled[64];
  int n_cancelled = 0;
  for (eng_req *r = e->active; r && n_cancelled < 64; r = r->active_next)
    if (r->cancel || r->cancel_local) cancelled[n_cancelled++] = r;
  pthread_mutex_unlock(&e->mu);

  for (eng_req *r = in, *next; r; r = next) {
    next = r->inbox_next;
    int ok = 1;
    for (int i = 0; i < r->n; i++)
      if (r1d_kv_seq_init(e->pool, &r->seqs[i].kv)) ok = 0;
    eng_seq *s0 = &r->seqs[0];
    s0->state = SEQ_WAITING;
    seq_list_insert(&e->waiting, s0);
    e->prompt_tokens += (uint64_t)r->n_prompt;
    if (!ok) req_abort(e, r, R1D_FINISH_ABORT, "engine: out of memory");
  }
  /* a request both new and cancelled is in the lists by now */
  for (int i = 0; i < n_cancelled; i++)
    req_abort(e, cancelled[i], R1D_FINISH_ABORT, NULL);
  return 0;
}

static void *engine_main(void *arg) {
  r1d_engine *e = arg;
  r1d_batch batch;
  if (e->be.ops->attach_thread) e->be.ops->attach_thread(e->be.ctx);
  for (;;) {
    /* also aborts requests cancelled by r1d_engine_cancel or by their
     * callback during the last step */
    if (take_inbox(e)) break;
    r1d_error err = {0};
    double t0 = now_seconds(), runner0 = e->runner_seconds;
    int rc = scheduler_plan(e, &batch);
    if (!rc && batch.n_tokens > 0) rc = run_step(e, &batch, &err);
    if (batch.n_tokens > 0)
      e->host_seconds += now_seconds() - t0 - (e->runner_seconds - runner0);
    if (rc) {
      if (!err.msg[0])
        r1d_fail(&err, rc, "engine: step failed (%s)", r1d_strerror(rc));
      for (int i = 0; i < e->n_b_seqs; i++)
        e->b_seqs[i]->scheduled = 0;
      fail_everything(e, err.msg);
    }
    publish_stats(e);
  }
  return NULL;
}

/* ---- create / destroy ---- */

static int resolve_config(const r1d_model *m, const r1d_engine_config *in,
                          r1d_engine_config *c, r1d_error *err) {
  *c = *in;
  if (c->block_size <= 0) c->block_size = 16;
  if (c->max_num_seqs <= 0) c->max_num_seqs = 64;
  if (c->max_batch_tokens <= 0) c->max_batch_tokens = 512;
  int ctx = m->cfg.max_position_embeddings;
  if (c->max_model_len <= 0 || c->max_model_len > ctx) c->max_model_len = ctx;
  if (c->max_batch_tokens < c->max_num_seqs)
    return r1d_fail(err, R1D_EINVAL,
                    "max_batch_tokens (%d) must be at least max_num_seqs "
                    "(%d): every running sequence needs a token each step",
                    c->max_batch_tokens, c->max_num_seqs);
  if (c->max_num_seqs > 4096 || c->max_batch_tokens > 1 << 20 ||
      c->block_size > 1024)
    return r1d_fail(err, R1D_EINVAL,
                    "limits too large: max_num_seqs <= 4096, "
                    "max_batch_tokens <= 1048576, block_size <= 1024");
  size_t block_bytes = r1d_runner_block_bytes(&m->cfg, c->block_size);
  int per_seq = (c->max_model_len + c->block_size - 1) / c->block_size;
  if (c->n_blocks <= 0) {
    size_t mem = c->kv_memory;
    if (mem == 0) {
      int len = c->max_model_len < 1024 ? c->max_model_len : 1024;
      mem = (size_t)c->max_num_seqs *
            (size_t)((len + c->block_size - 1) / c->block_size) * block_bytes;
    }
    size_t n = mem / block_bytes;
    /* by default, at least one sequence of max_model_len always fits */
    if (c->kv_memory == 0 && n < (size_t)per_seq) n = (size_t)per_seq;
    if (n > (size_t)INT32_MAX / (size_t)c->block_size)
      n = (size_t)INT32_MAX / (size_t)c->block_size;
    c->n_blocks = (int)n;
  }
  if (c->n_blocks < per_seq)
    return r1d_fail(err, R1D_EINVAL,
                    "the KV pool (%d blocks of %d tokens) cannot hold one "
                    "sequence of max_model_len %d tokens (%d blocks, %zu "
                    "MiB): give it more KV memory or lower max_model_len",
                    c->n_blocks, c->block_size, c->max_model_len, per_seq,
                    (size_t)per_seq * block_bytes >> 20);
  return 0;
}

int r1d_engine_create(const r1d_model *m, const r1d_backend *be,
                      const r1d_tokenizer *tok, const r1d_engine_config *cfg,
                      r1d_engine **out, r1d_error *err) {
  *out = NULL;
  r1d_engine_config def;
  if (!cfg) {
    r1d_engine_config_default(&def);
    cfg = &def;
  }
  r1d_engine *e = calloc(1, sizeof *e);
  if (!e) return r1d_fail(err, R1D_ENOMEM, "engine: out of memory");
  int rc = resolve_config(m, cfg, &e->cfg, err);
  if (rc) {
    free(e);
    return rc;
  }
  e->model = m;
  e->tok = tok;
  e->be = *be;
  e->weight_version = e->cfg.weight_version ? e->cfg.weight_version : 1;
  e->device_sampling = e->cfg.device_sampling < 0 ? !be->ops->host_memory
                                                  : e->cfg.device_sampling;
  e->max_blocks_per_seq =
      (e->cfg.max_model_len + e->cfg.block_size - 1) / e->cfg.block_size;
  pthread_mutex_init(&e->mu, NULL);
  pthread_cond_init(&e->work_cv, NULL);
  pthread_cond_init(&e->idle_cv, NULL);

  r1d_runner_limits lim = {.n_blocks = e->cfg.n_blocks,
                           .block_size = e->cfg.block_size,
                           .max_tokens = e->cfg.max_batch_tokens,
                           .max_seqs = e->cfg.max_num_seqs,
                           .max_blocks_per_seq = e->max_blocks_per_seq};
  rc = r1d_runner_create(m, be, &lim, &e->runner, err);
  if (!rc &&
      r1d_kv_pool_create(e->cfg.n_blocks, e->cfg.block_size,
                         e->max_blocks_per_seq, e->cfg.prefix_cache, &e->pool))
    rc = r1d_fail(err, R1D_ENOMEM, "engine: out of memory for the KV pool");
  if (!rc) {
    size_t T = (size_t)e->cfg.max_batch_tokens, S = (size_t)e->cfg.max_num_seqs;
    size_t vocab = (size_t)m->cfg.vocab_size;
    e->b_ids = malloc(T * sizeof(int32_t));
    e->b_pos = malloc(T * sizeof(int32_t));
    e->b_q_seq = malloc(T * sizeof(int32_t));
    e->b_slots = malloc(T * sizeof(int64_t));
    e->b_tables = calloc(S * (size_t)e->max_blocks_per_seq, sizeof(int32_t));
    e->b_logit_rows = malloc(S * sizeof(int32_t));
    e->b_rows2 = malloc(S * sizeof(int32_t));
    e->b_copies = malloc(2 * S * sizeof(int32_t));
    e->b_seqs = malloc(S * sizeof(eng_seq *));
    e->logits = malloc(S * vocab * sizeof(float));
    e->row = malloc(vocab * sizeof(float));
    e->sp_temp = malloc(S * sizeof(float));
    e->sp_top_p = malloc(S * sizeof(float));
    e->sp_min_p = malloc(S * sizeof(float));
    e->sp_u = malloc(S * sizeof(float));
    e->sp_logprobs = malloc(S * sizeof(float));
    e->sp_top_k = malloc(S * sizeof(int32_t));
    e->sp_tokens = malloc(S * sizeof(int32_t));
    if (!e->b_ids || !e->b_pos || !e->b_q_seq || !e->b_slots || !e->b_tables ||
        !e->b_logit_rows || !e->b_rows2 || !e->b_copies || !e->b_seqs ||
        !e->logits || !e->row)
      rc = r1d_fail(err, R1D_ENOMEM, "engine: out of memory");
  }
  if (!rc && pthread_create(&e->thread, NULL, engine_main, e))
    rc = r1d_fail(err, R1D_ENOMEM, "engine: cannot start its thread");
  if (rc) {
    r1d_engine_destroy(e);
    return rc;
  }
  e->thread_started = 1;
  *out = e;
  return 0;
}

void r1d_engine_destroy(r1d_engine *e) {
  if (!e) return;
  if (e->thread_started) {
    pthread_mutex_lock(&e->mu);
    e->stop = 1;
    pthread_cond_signal(&e->work_cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
  }
  /* whatever is left ends with ABORT, on this thread now */
  pthread_mutex_lock(&e->mu);
  eng_req *in = e->inbox_head;
  e->inbox_head = e->inbox_tail = NULL;
  pthread_mutex_unlock(&e->mu);
  for (eng_req *r = in, *next; r; r = next) {
    next = r->inbox_next;
    r->seqs[0].state = SEQ_WAITING;
    seq_list_insert(&e->waiting, &r->seqs[0]);
  }
  while (e->running.head)
    req_abort(e, e->running.head->req, R1D_FINISH_ABORT, "engine stopped");
  while (e->waiting.head)
    req_abort(e, e->waiting.head->req, R1D_FINISH_ABORT, "engine stopped");
  r1d_kv_pool_destroy(e->pool);
  r1d_runner_destroy(e->runner);
  free(e->b_ids);
  free(e->b_pos);
  free(e->b_q_seq);
  free(e->b_slots);
  free(e->b_tables);
  free(e->b_logit_rows);
  free(e->b_rows2);
  free(e->b_copies);
  free(e->b_seqs);
  free(e->logits);
  free(e->row);
  free(e->sp_temp);
  free(e->sp_top_p);
  free(e->sp_min_p);
  free(e->sp_u);
  free(e->sp_logprobs);
  free(e->sp_top_k);
  free(e->sp_tokens);
  pthread_mutex_destroy(&e->mu);
  pthread_cond_destroy(&e->work_cv);
  pthread_cond_destroy(&e->idle_cv);
  free(e);
}

void r1d_engine_stats_get(r1d_engine *e, r1d_engine_stats *st) {
  pthread_mutex_lock(&e->mu);
  *st = e->stats;
  st->requests = e->n_requests;
  /* live, not the last step's snapshot: it is 0 there before any step */
  st->weight_version = e->weight_version;
  pthread_mutex_unlock(&e->mu);
}

void r1d_engine_wait_idle(r1d_engine *e) {
  /* idle once the step that finished the last request has published its
   * stats, so a caller sees the blocks it freed */
  pthread_mutex_lock(&e->mu);
  while ((e->n_requests > 0 || e->stats.requests > 0) && !e->failed)
    pthread_cond_wait(&e->idle_cv, &e->mu);
  pthread_mutex_unlock(&e->mu);
}

const r1d_engine_config *r1d_engine_get_config(const r1d_engine *e) {
  return &e->cfg;
}
