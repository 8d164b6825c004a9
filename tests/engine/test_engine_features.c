/* test_engine_features.c - per-request features of the serving engine on a
 * seeded random tiny model (CPU):
 *   - prompt logprobs equal a reference from r1d_model_forward (all logits,
 *     log_softmax per row, top-k ids) within 1e-4, and are bit-identical
 *     alone, batched with other requests, under preemption, with chunked
 *     prefill, after a preemption in the middle of the prompt, after the
 *     prompt's prefix is in the prefix cache (which such
 *     a request does not attach), with device sampling and on the
 *     device-memory path; they come in one event before any token, also for
 *     n = 3, and do not change the tokens;
 *   - the thinking budget forces </think> after b tokens inside the thought
 *     (over a -100 logit bias), at once for b = 0, per choice for n = 3,
 *     after <think> when the prompt did not open the thought, never when
 *     off; the forced token's logprob is the raw one; generation goes on;
 *   - the budget's state machine (early close, no reopening);
 *   - bad fields are refused naming them; r1d_generate refuses prompt
 *     logprobs and forces </think> like the engine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/model/init.h"
#include "engine/model/model.h"
#include "engine/serve/engine.h"
#include "engine/serve/generate.h"
#include "engine/text/tokenizer.h"
#include "kernels/cpu/cpu_backend.h"

#define MAX_OUT 64
#define MAX_PROMPT 200
#define K_TOP 5 /* prompt_logprobs = K_TOP + 1 */

typedef struct fixture {
  char dir[64];
  r1d_backend be;
  r1d_model *model;
  r1d_tokenizer *tok;
  int32_t think_start, think_end;
} fixture;

typedef struct choice_out {
  int32_t ids[MAX_OUT];
  float logprobs[MAX_OUT];
  int n;
  int finished;
  r1d_finish_reason finish;
  int cached_tokens;
} choice_out;

typedef struct req_out {
  choice_out c[4];
  int n_events;
  int plp_events;   /* prompt logprob events seen */
  int plp_at;       /* index of that event in the request's stream */
  int token_before; /* a token event came before it */
  int n_plp;
  r1d_prompt_logprob plp[MAX_PROMPT];
} req_out;

static int on_event(void *user, const r1d_engine_event *ev) {
  req_out *o = user;
  if (ev->prompt_logprobs) {
    assert_int_equal(ev->index, 0);
    assert_int_equal(ev->token, -1);
    assert_int_equal(ev->finish, R1D_FINISH_NONE);
    assert_true(ev->n_prompt_logprobs <= MAX_PROMPT);
    o->plp_events++;
    o->plp_at = o->n_events;
    o->n_plp = ev->n_prompt_logprobs;
    memcpy(o->plp, ev->prompt_logprobs,
           (size_t)ev->n_prompt_logprobs * sizeof *o->plp);
  } else {
    assert_int_equal(ev->n_prompt_logprobs, 0);
  }
  o->n_events++;
  choice_out *c = &o->c[ev->index];
  if (ev->token >= 0) {
    if (!o->plp_events) o->token_before = 1;
    if (c->n < MAX_OUT) {
      c->ids[c->n] = ev->token;
      c->logprobs[c->n] = ev->logprob;
    }
    c->n++;
  }
  if (ev->finish != R1D_FINISH_NONE) {
    assert_int_equal(c->finished, 0);
    c->finished = 1;
    c->finish = ev->finish;
    c->cached_tokens = ev->cached_tokens;
  }
  return 0;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/r1d-features-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  r1d_config c;
  r1d_error err = {0};
  if (r1d_model_preset(R1D_ARCH_QWEN2, "tiny", &c, &err) ||
      r1d_model_init_dir(f->dir, &c, 11, &err))
    return -1;
  r1d_cpu_backend_init(&f->be, 2);
  if (r1d_model_load(f->dir, &f->be, &f->model, &err) ||
      r1d_tokenizer_load_dir(f->dir, &f->tok, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return -1;
  }
  f->think_start = r1d_tokenizer_token_to_id(f->tok, "<think>");
  f->think_end = r1d_tokenizer_token_to_id(f->tok, "</think>");
  if (f->think_start < 0 || f->think_end < 0) return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  r1d_model_free(f->model);
  r1d_tokenizer_free(f->tok);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", f->dir);
  free(f);
  return 0;
}

static r1d_engine *make_engine_be(fixture *f, const r1d_backend *be,
                                  int n_blocks, int max_seqs, int max_tokens,
                                  int prefix_cache, int device_sampling) {
  r1d_engine_config cfg;
  r1d_engine_config_default(&cfg);
  cfg.n_blocks = n_blocks;
  cfg.max_num_seqs = max_seqs;
  cfg.max_batch_tokens = max_tokens;
  cfg.prefix_cache = prefix_cache;
  cfg.max_model_len = 256;
  cfg.device_sampling = device_sampling;
  r1d_engine *e = NULL;
  r1d_error err = {0};
  int rc = r1d_engine_create(f->model, be, f->tok, &cfg, &e, &err);
  if (rc) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(rc, 0);
  return e;
}

static r1d_engine *make_engine(fixture *f, int n_blocks, int max_seqs,
                               int max_tokens, int prefix_cache) {
  return make_engine_be(f, &f->be, n_blocks, max_seqs, max_tokens, prefix_cache,
                        0);
}

static void base_params(r1d_gen_params *p, int max_tokens, float temperature,
                        uint64_t seed) {
  memset(p, 0, sizeof *p);
  r1d_sampling_params_default(&p->sampling);
  p->sampling.temperature = temperature;
  p->sampling.top_p = temperature > 0 ? 0.95f : 1.0f;
  p->sampling.seed = seed;
  p->max_tokens = max_tokens;
  p->ignore_eos = 1; /* random weights: run to max_tokens */
}

static void submit_prio(r1d_engine *e, const int32_t *prompt, int len,
                        const r1d_gen_params *p, int n, r1d_priority prio,
                        req_out *out) {
  r1d_engine_request q = {0};
  q.priority = prio;
  q.prompt = prompt;
  q.n_prompt = len;
  q.params = *p;
  q.n = n;
  q.cb = on_event;
  q.user = out;
  r1d_error err = {0};
  uint64_t id;
  int rc = r1d_engine_submit(e, &q, &id, &err);
  if (rc) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(rc, 0);
}

static void submit_p(r1d_engine *e, const int32_t *prompt, int len,
                     const r1d_gen_params *p, int n, req_out *out) {
  submit_prio(e, prompt, len, p, n, R1D_PRIORITY_INTERACTIVE, out);
}

static void make_prompt(int32_t *p, int len, int salt) {
  for (int i = 0; i < len; i++)
    p[i] = (int32_t)(32 + (i * 7 + salt * 13 + (i * i) % 11) % 90);
}

/* ---- prompt logprobs ---- */

/* The reference: every row of one r1d_model_forward over the prompt. */
typedef struct plp_ref {
  float lp[MAX_PROMPT];
  r1d_top_logprob top[MAX_PROMPT][K_TOP];
} plp_ref;

static void reference_plp(fixture *f, const int32_t *prompt, int n,
                          plp_ref *ref) {
  int vocab = f->model->cfg.vocab_size;
  float *logits = malloc((size_t)n * vocab * sizeof(float));
  double *lsm = malloc((size_t)vocab * sizeof(double));
  assert_non_null(logits);
  assert_non_null(lsm);
  r1d_kv_cache *kv = NULL;
  assert_int_equal(r1d_kv_cache_create(f->model, n, &kv), 0);
  r1d_error err = {0};
  assert_int_equal(r1d_model_forward(f->model, kv, prompt, n, 1, logits, &err),
                   0);
  for (int i = 1; i < n; i++) {
    const float *row = logits + (size_t)(i - 1) * vocab;
    double m = row[0], sum = 0.0;
    for (int v = 1; v < vocab; v++)
      if (row[v] > m) m = row[v];
    for (int v = 0; v < vocab; v++)
      sum += exp((double)row[v] - m);
    for (int v = 0; v < vocab; v++)
      lsm[v] = (double)row[v] - m - log(sum);
    ref->lp[i] = (float)lsm[prompt[i]];
    /* top-k by selection: higher first, ties to the lower id */
    for (int k = 0; k < K_TOP; k++) {
      int best = -1;
      for (int v = 0; v < vocab; v++) {
        int taken = 0;
        for (int j = 0; j < k; j++)
          if (ref->top[i][j].id == v) taken = 1;
        if (!taken && (best < 0 || lsm[v] > lsm[best])) best = v;
      }
      ref->top[i][k] = (r1d_top_logprob){best, (float)lsm[best]};
    }
  }
  r1d_kv_cache_free(kv);
  free(lsm);
  free(logits);
}

static void assert_plp_matches_ref(const req_out *o, const int32_t *prompt,
                                   int n, const plp_ref *ref) {
  assert_int_equal(o->plp_events, 1);
  assert_int_equal(o->plp_at, 0);
  assert_false(o->token_before);
  assert_int_equal(o->n_plp, n);
  assert_int_equal(o->plp[0].id, prompt[0]);
  assert_true(isnan(o->plp[0].logprob));
  assert_int_equal(o->plp[0].n_top, 0);
  for (int i = 1; i < n; i++) {
    const r1d_prompt_logprob *t = &o->plp[i];
    assert_int_equal(t->id, prompt[i]);
    assert_true(fabsf(t->logprob - ref->lp[i]) < 1e-4f);
    assert_int_equal(t->n_top, K_TOP);
    for (int k = 0; k < K_TOP; k++) {
      assert_true(fabsf(t->top[k].logprob - ref->top[i][k].logprob) < 1e-4f);
      /* ids must agree unless two candidates are within rounding */
      if (t->top[k].id != ref->top[i][k].id) {
        assert_true(k + 1 < K_TOP);
        assert_true(fabsf(ref->top[i][k].logprob - ref->top[i][k + 1].logprob) <
                    1e-4f);
      }
      if (k > 0) assert_true(t->top[k].logprob <= t->top[k - 1].logprob);
    }
  }
}

static void assert_same_plp(const req_out *a, const req_out *b) {
  assert_int_equal(a->n_plp, b->n_plp);
  assert_memory_equal(a->plp, b->plp, (size_t)a->n_plp * sizeof *a->plp);
}

static void assert_same_tokens(const choice_out *a, const choice_out *b) {
  assert_int_equal(a->n, b->n);
  assert_memory_equal(a->ids, b->ids, (size_t)a->n * sizeof(int32_t));
  assert_memory_equal(a->logprobs, b->logprobs, (size_t)a->n * sizeof(float));
}

static void plp_params(r1d_gen_params *p, int max_tokens, float temp) {
  base_params(p, max_tokens, temp, 5);
  p->prompt_logprobs = K_TOP + 1;
}

static void test_prompt_logprobs_reference(void **state) {
  fixture *f = *state;
  enum { N = 150 };
  int32_t prompt[N];
  make_prompt(prompt, N, 1);
  static plp_ref ref;
  reference_plp(f, prompt, N, &ref);

  static req_out alone, without, tight;
  memset(&alone, 0, sizeof alone);
  memset(&without, 0, sizeof without);
  memset(&tight, 0, sizeof tight);
  r1d_gen_params p;
  /* 32 rows and tokens per step: the prompt takes five chunks */
  r1d_engine *e = make_engine(f, 0, 32, 32, 1);
  plp_params(&p, 12, 0.8f);
  submit_p(e, prompt, N, &p, 1, &alone);
  r1d_engine_wait_idle(e);
  assert_plp_matches_ref(&alone, prompt, N, &ref);
  assert_int_equal(alone.c[0].n, 12);
  assert_int_equal(alone.c[0].cached_tokens, 0);
  /* the same request without prompt logprobs: same tokens, no such event
   * (its prompt is in the cache by now, which must not matter either) */
  p.prompt_logprobs = 0;
  submit_p(e, prompt, N, &p, 1, &without);
  r1d_engine_wait_idle(e);
  assert_int_equal(without.plp_events, 0);
  assert_true(without.c[0].cached_tokens > 0);
  assert_same_tokens(&alone.c[0], &without.c[0]);
  r1d_engine_destroy(e);

  /* 4 logits rows a step, a 64-token budget: rows cap the chunks */
  e = make_engine(f, 0, 4, 64, 0);
  plp_params(&p, 12, 0.8f);
  submit_p(e, prompt, N, &p, 1, &tight);
  r1d_engine_wait_idle(e);
  assert_same_plp(&alone, &tight);
  assert_same_tokens(&alone.c[0], &tight.c[0]);
  r1d_engine_destroy(e);
}

/* Alone, then batched with requests of every kind (some also asking for
 * prompt logprobs), then the same under preemption, with device sampling,
 * and on the device-memory path: identical prompt logprobs and tokens. */
static void test_prompt_logprobs_batch_invariant(void **state) {
  fixture *f = *state;
  enum { R = 8 };
  static int32_t prompts[R][MAX_PROMPT];
  int lens[R];
  for (int i = 0; i < R; i++) {
    lens[i] = 20 + (i * 37) % 150;
    make_prompt(prompts[i], lens[i], i + 3);
  }
  static r1d_backend_ops as_device;
  as_device = *f->be.ops;
  as_device.name = "cpu-as-device";
  as_device.host_memory = 0;
  r1d_backend dev_be = {&as_device, NULL};

  static req_out alone[R], runs[4][R];
  memset(alone, 0, sizeof alone);
  memset(runs, 0, sizeof runs);
  r1d_gen_params p[R];
  for (int i = 0; i < R; i++) {
    base_params(&p[i], 8 + i, i % 2 ? 0.9f : 0.0f, 40 + (uint64_t)i);
    if (i % 3 != 1) p[i].prompt_logprobs = 1 + (i % 4) * 5; /* k 0..15 */
  }
  r1d_engine *e = make_engine(f, 0, 16, 64, 0);
  for (int i = 0; i < R; i++) {
    submit_p(e, prompts[i], lens[i], &p[i], 1, &alone[i]);
    r1d_engine_wait_idle(e);
  }
  r1d_engine_destroy(e);

  for (int run = 0; run < 4; run++) {
    /* run 0: plenty of blocks; 1: a tight pool (preemption); 2: device
     * sampling; 3: device-memory backend with device sampling */
    int n_blocks = run == 1 ? 16 : 0;
    e = make_engine_be(f, run == 3 ? &dev_be : &f->be, n_blocks, 8, 40, 1,
                       run >= 2 ? 1 : 0);
    for (int i = 0; i < R; i++)
      submit_p(e, prompts[i], lens[i], &p[i], 1, &runs[run][i]);
    r1d_engine_wait_idle(e);
    r1d_engine_stats st;
    r1d_engine_stats_get(e, &st);
    if (run == 1) assert_true(st.preemptions > 0);
    assert_int_equal(st.kv_blocks_used, 0);
    r1d_engine_destroy(e);
    for (int i = 0; i < R; i++) {
      req_out *o = &runs[run][i];
      assert_true(o->c[0].finished);
      assert_int_equal(o->plp_events, p[i].prompt_logprobs ? 1 : 0);
      if (p[i].prompt_logprobs) {
        assert_false(o->token_before);
        assert_int_equal(o->plp_at, 0);
        assert_same_plp(&alone[i], o);
        assert_int_equal(o->c[0].cached_tokens, 0);
        for (int t = 1; t < lens[i]; t++)
          assert_int_equal(o->plp[t].n_top, p[i].prompt_logprobs - 1);
      }
      if (run < 2) {
        assert_same_tokens(&alone[i].c[0], &o->c[0]);
      } else if (p[i].sampling.temperature == 0.0f) {
        /* the device sample op: same greedy tokens */
        assert_int_equal(alone[i].c[0].n, o->c[0].n);
        assert_memory_equal(alone[i].c[0].ids, o->c[0].ids,
                            (size_t)o->c[0].n * sizeof(int32_t));
      }
    }
  }
  for (int i = 0; i < R; i++)
    assert_same_tokens(&runs[2][i].c[0], &runs[3][i].c[0]);
}

/* One seat, so one logits row a step: a background request is preempted in
 * the middle of its prompt logprobs by an interactive one, recomputes them
 * from the start (attaching nothing), and still gets the reference. */
static void test_prompt_logprobs_preempted(void **state) {
  fixture *f = *state;
  enum { N = 120 };
  int32_t prompt[N];
  make_prompt(prompt, N, 12);
  static plp_ref ref;
  reference_plp(f, prompt, N, &ref);
  static req_out bg, fg;
  memset(&bg, 0, sizeof bg);
  memset(&fg, 0, sizeof fg);
  r1d_engine *e = make_engine(f, 0, 1, 16, 1);
  r1d_gen_params p;
  plp_params(&p, 5, 0.0f);
  submit_prio(e, prompt, N, &p, 1, R1D_PRIORITY_BACKGROUND, &bg);
  r1d_engine_stats st;
  for (int i = 0; i < 10000; i++) {
    r1d_engine_stats_get(e, &st);
    if (st.steps >= 20) break;
    usleep(1000);
  }
  /* the same prompt: its first 16 tokens are published by now */
  submit_prio(e, prompt, N, &p, 1, R1D_PRIORITY_INTERACTIVE, &fg);
  r1d_engine_wait_idle(e);
  r1d_engine_stats_get(e, &st);
  assert_true(st.preemptions >= 1);
  assert_plp_matches_ref(&fg, prompt, N, &ref);
  assert_plp_matches_ref(&bg, prompt, N, &ref);
  assert_same_plp(&fg, &bg);
  assert_same_tokens(&fg.c[0], &bg.c[0]);
  assert_int_equal(bg.c[0].cached_tokens, 0);
  r1d_engine_destroy(e);
}

/* A prompt whose prefix is already cached: the request computes every
 * position anyway (no cached tokens) and still gets the reference; it
 * publishes its blocks for the next request. */
static void test_prompt_logprobs_prefix_cached(void **state) {
  fixture *f = *state;
  enum { N = 100 };
  int32_t prompt[N];
  make_prompt(prompt, N, 9);
  static plp_ref ref;
  reference_plp(f, prompt, N, &ref);
  static req_out first, lp, last;
  memset(&first, 0, sizeof first);
  memset(&lp, 0, sizeof lp);
  memset(&last, 0, sizeof last);
  r1d_engine *e = make_engine(f, 0, 8, 64, 1);
  r1d_gen_params p;
  base_params(&p, 6, 0.0f, 1);
  /* the first 80 tokens, then the whole prompt */
  submit_p(e, prompt, 80, &p, 1, &first);
  r1d_engine_wait_idle(e);
  r1d_engine_stats st0, st1;
  r1d_engine_stats_get(e, &st0);
  assert_true(st0.kv_blocks_cached >= 4);
  plp_params(&p, 6, 0.0f);
  submit_p(e, prompt, N, &p, 1, &lp);
  r1d_engine_wait_idle(e);
  assert_int_equal(lp.c[0].cached_tokens, 0);
  assert_plp_matches_ref(&lp, prompt, N, &ref);
  r1d_engine_stats_get(e, &st1);
  assert_int_equal(st1.prefix_hit_tokens, st0.prefix_hit_tokens);
  base_params(&p, 6, 0.0f, 1);
  submit_p(e, prompt, N, &p, 1, &last);
  r1d_engine_wait_idle(e);
  assert_int_equal(last.c[0].cached_tokens, 96); /* 6 blocks, some its own */
  assert_same_tokens(&lp.c[0], &last.c[0]);
  r1d_engine_destroy(e);
}

/* n = 3: one prompt logprobs event, before any choice's token; each choice
 * still equals a single request with seed + i. */
static void test_prompt_logprobs_n3(void **state) {
  fixture *f = *state;
  enum { N = 45 };
  int32_t prompt[N];
  make_prompt(prompt, N, 4);
  static plp_ref ref;
  reference_plp(f, prompt, N, &ref);
  static req_out group, single[3];
  memset(&group, 0, sizeof group);
  memset(single, 0, sizeof single);
  r1d_engine *e = make_engine(f, 0, 8, 64, 0);
  r1d_gen_params p;
  plp_params(&p, 7, 0.9f);
  submit_p(e, prompt, N, &p, 3, &group);
  r1d_engine_wait_idle(e);
  assert_plp_matches_ref(&group, prompt, N, &ref);
  for (int i = 0; i < 3; i++) {
    assert_true(group.c[i].finished);
    assert_int_equal(group.c[i].n, 7);
    r1d_gen_params q;
    base_params(&q, 7, 0.9f, 5 + (uint64_t)i);
    submit_p(e, prompt, N, &q, 1, &single[i]);
    r1d_engine_wait_idle(e);
    assert_same_tokens(&group.c[i], &single[i].c[0]);
  }
  /* a one-token prompt: one empty entry, still one event first */
  static req_out one;
  memset(&one, 0, sizeof one);
  submit_p(e, prompt, 1, &p, 2, &one);
  r1d_engine_wait_idle(e);
  assert_int_equal(one.plp_events, 1);
  assert_int_equal(one.plp_at, 0);
  assert_int_equal(one.n_plp, 1);
  assert_true(isnan(one.plp[0].logprob));
  r1d_engine_destroy(e);
}

/* ---- thinking budget ---- */

static void budget_params(fixture *f, r1d_gen_params *p, int budget, float temp,
                          uint64_t seed, r1d_logit_bias *bias, int n_bias) {
  base_params(p, 20, temp, seed);
  p->think_budget_on = 1;
  p->thinking_budget = budget;
  p->think_end_id = f->think_end;
  p->think_start_id = -1;
  p->think_open = 1;
  p->sampling.logit_bias = bias;
  p->sampling.n_logit_bias = n_bias;
  p->n_top_logprobs = 3;
}

static int count_id(const choice_out *c, int32_t id) {
  int n = 0;
  for (int i = 0; i < c->n; i++)
    n += c->ids[i] == id;
  return n;
}

/* The raw logprob of `id` after prompt + gen[0..n_gen). */
static float reference_logprob(fixture *f, const int32_t *prompt, int n_prompt,
                               const int32_t *gen, int n_gen, int32_t id) {
  int n = n_prompt + n_gen, vocab = f->model->cfg.vocab_size;
  int32_t *all = malloc((size_t)n * sizeof(int32_t));
  float *logits = malloc((size_t)vocab * sizeof(float));
  assert_non_null(all);
  assert_non_null(logits);
  memcpy(all, prompt, (size_t)n_prompt * sizeof(int32_t));
  memcpy(all + n_prompt, gen, (size_t)n_gen * sizeof(int32_t));
  r1d_kv_cache *kv = NULL;
  assert_int_equal(r1d_kv_cache_create(f->model, n, &kv), 0);
  r1d_error err = {0};
  assert_int_equal(r1d_model_forward(f->model, kv, all, n, 0, logits, &err), 0);
  double m = logits[0], sum = 0.0;
  for (int v = 1; v < vocab; v++)
    if (logits[v] > m) m = logits[v];
  for (int v = 0; v < vocab; v++)
    sum += exp((double)logits[v] - m);
  float lp = (float)((double)logits[id] - m - log(sum));
  r1d_kv_cache_free(kv);
  free(logits);
  free(all);
  return lp;
}

static void test_thinking_budget(void **state) {
  fixture *f = *state;
  enum { N = 30 };
  int32_t prompt[N];
  make_prompt(prompt, N, 2);
  const int32_t end = f->think_end;
  /* the model must not close the thought by itself */
  r1d_logit_bias no_end = {end, -100.0f};
  static req_out plain[2], b5[2], b0, group, batched[4];
  memset(plain, 0, sizeof plain);
  memset(b5, 0, sizeof b5);
  memset(&b0, 0, sizeof b0);
  memset(&group, 0, sizeof group);
  memset(batched, 0, sizeof batched);
  r1d_engine *e = make_engine(f, 0, 8, 64, 1);
  for (int t = 0; t < 2; t++) {
    float temp = t ? 0.9f : 0.0f;
    r1d_gen_params p;
    budget_params(f, &p, 5, temp, 3, &no_end, 1);
    p.think_budget_on = 0; /* the same request without a budget */
    submit_p(e, prompt, N, &p, 1, &plain[t]);
    r1d_engine_wait_idle(e);
    assert_int_equal(count_id(&plain[t].c[0], end), 0);
    p.think_budget_on = 1;
    submit_p(e, prompt, N, &p, 1, &b5[t]);
    r1d_engine_wait_idle(e);
    const choice_out *c = &b5[t].c[0];
    /* five sampled tokens inside, then </think>, then the answer */
    assert_int_equal(c->n, 20);
    assert_int_equal(c->finish, R1D_FINISH_LENGTH);
    assert_int_equal(c->ids[5], end);
    assert_int_equal(count_id(c, end), 1);
    assert_memory_equal(c->ids, plain[t].c[0].ids, 5 * sizeof(int32_t));
    assert_memory_equal(c->logprobs, plain[t].c[0].logprobs, 5 * sizeof(float));
    /* the raw logprob of the forced token, bias or not */
    float ref = reference_logprob(f, prompt, N, c->ids, 5, end);
    assert_true(fabsf(c->logprobs[5] - ref) < 1e-4f);
    if (t == 0) {
      /* greedy: the answer is what the model says after </think> */
      int32_t forced[6];
      memcpy(forced, c->ids, sizeof forced);
      static req_out cont;
      memset(&cont, 0, sizeof cont);
      int32_t p2[N + 6];
      memcpy(p2, prompt, sizeof prompt);
      memcpy(p2 + N, forced, sizeof forced);
      r1d_gen_params q;
      budget_params(f, &q, 0, 0.0f, 3, &no_end, 1);
      q.think_budget_on = 0;
      q.max_tokens = 14;
      submit_p(e, p2, N + 6, &q, 1, &cont);
      r1d_engine_wait_idle(e);
      /* the repetition penalty is off, so history does not matter here */
      assert_memory_equal(cont.c[0].ids, c->ids + 6, 14 * sizeof(int32_t));
    }
  }
  /* budget 0: the first token closes the thought */
  r1d_gen_params p;
  budget_params(f, &p, 0, 0.9f, 8, &no_end, 1);
  submit_p(e, prompt, N, &p, 1, &b0);
  r1d_engine_wait_idle(e);
  assert_int_equal(b0.c[0].ids[0], end);
  assert_int_equal(count_id(&b0.c[0], end), 1);
  assert_int_equal(b0.c[0].n, 20);
  /* n = 3, budget 2: each choice on its own */
  budget_params(f, &p, 2, 0.9f, 8, &no_end, 1);
  submit_p(e, prompt, N, &p, 3, &group);
  /* batched with other budgets and a request without one */
  for (int i = 0; i < 4; i++) {
    r1d_gen_params q;
    budget_params(f, &q, i * 3, 0.9f, 20 + (uint64_t)i, &no_end, 1);
    if (i == 3) q.think_budget_on = 0;
    submit_p(e, prompt, N - i, &q, 1, &batched[i]);
  }
  r1d_engine_wait_idle(e);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(group.c[i].ids[2], end);
    assert_int_equal(count_id(&group.c[i], end), 1);
  }
  for (int i = 0; i < 3; i++) {
    assert_int_equal(batched[i].c[0].ids[i * 3], end);
    assert_int_equal(count_id(&batched[i].c[0], end), 1);
  }
  assert_int_equal(count_id(&batched[3].c[0], end), 0);
  r1d_engine_destroy(e);
}

/* think_open 0: the thought starts when the model emits <think> (here
 * always, by a +100 bias), not counted; </think> then comes after the
 * budget, and the thought never reopens. Without think_start_id, never. */
static void test_thinking_budget_opened_by_model(void **state) {
  fixture *f = *state;
  int32_t prompt[12];
  make_prompt(prompt, 12, 6);
  r1d_logit_bias bias[2] = {{f->think_start, 100.0f}, {f->think_end, -100.0f}};
  static req_out a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  /* device sampling on: a budget still samples on the host */
  r1d_engine *e = make_engine_be(f, &f->be, 0, 4, 32, 1, 1);
  r1d_gen_params p;
  budget_params(f, &p, 3, 0.7f, 2, bias, 2);
  p.think_open = 0;
  p.think_start_id = f->think_start;
  p.n_top_logprobs = 0;
  p.max_tokens = 10;
  submit_p(e, prompt, 12, &p, 1, &a);
  p.think_start_id = -1;
  submit_p(e, prompt, 12, &p, 1, &b);
  /* nothing but a budget: the backend could sample it, the host must */
  static req_out d;
  memset(&d, 0, sizeof d);
  budget_params(f, &p, 2, 0.0f, 2, NULL, 0);
  p.n_top_logprobs = 0;
  submit_p(e, prompt, 12, &p, 1, &d);
  r1d_engine_wait_idle(e);
  r1d_engine_destroy(e);
  int closed = 0;
  for (int i = 0; i < 2; i++)
    closed |= d.c[0].ids[i] == f->think_end;
  if (!closed) assert_int_equal(d.c[0].ids[2], f->think_end);
  assert_int_equal(d.c[0].n, 20);
  const choice_out *c = &a.c[0];
  assert_int_equal(c->n, 10);
  for (int i = 0; i < 10; i++)
    assert_int_equal(c->ids[i], i == 4 ? f->think_end : f->think_start);
  assert_int_equal(count_id(&b.c[0], f->think_end), 0);
  assert_int_equal(b.c[0].n, 10);
}

static void test_think_state_machine(void **state) {
  (void)state;
  r1d_gen_params p = {0};
  p.think_budget_on = 1;
  p.thinking_budget = 2;
  p.think_end_id = 9;
  p.think_start_id = 8;
  p.think_open = 1;
  r1d_think_state t;
  r1d_think_init(&t, &p);
  assert_false(r1d_think_must_close(&t, &p));
  r1d_think_push(&t, &p, 9); /* the model closes early */
  for (int i = 0; i < 5; i++) {
    r1d_think_push(&t, &p, 8); /* <think> again does not reopen */
    r1d_think_push(&t, &p, 3);
    assert_false(r1d_think_must_close(&t, &p));
  }
  p.think_open = 0;
  r1d_think_init(&t, &p);
  r1d_think_push(&t, &p, 9); /* </think> outside the thought: nothing */
  r1d_think_push(&t, &p, 3);
  assert_false(r1d_think_must_close(&t, &p));
  r1d_think_push(&t, &p, 8);
  assert_false(r1d_think_must_close(&t, &p));
  r1d_think_push(&t, &p, 3);
  r1d_think_push(&t, &p, 3);
  assert_true(r1d_think_must_close(&t, &p));
  r1d_think_push(&t, &p, 9);
  assert_false(r1d_think_must_close(&t, &p));
  /* off: never, whatever the other fields say */
  p.think_budget_on = 0;
  p.think_open = 1;
  p.thinking_budget = 0;
  r1d_think_init(&t, &p);
  assert_false(r1d_think_must_close(&t, &p));
}

/* ---- validation and the single-sequence path ---- */

static void expect_refused(r1d_engine *e, const r1d_gen_params *p,
                           const char *field) {
  int32_t prompt[3] = {40, 41, 42};
  r1d_engine_request q = {0};
  q.prompt = prompt;
  q.n_prompt = 3;
  q.params = *p;
  q.n = 1;
  r1d_error err = {0};
  uint64_t id;
  assert_int_equal(r1d_engine_submit(e, &q, &id, &err), R1D_EINVAL);
  if (!strstr(err.msg, field)) fprintf(stderr, "message: %s\n", err.msg);
  assert_non_null(strstr(err.msg, field));
}

static void test_validation(void **state) {
  fixture *f = *state;
  r1d_engine *e = make_engine(f, 0, 4, 32, 1);
  int vocab = f->model->cfg.vocab_size;
  r1d_gen_params p;
  base_params(&p, 4, 0.0f, 1);
  p.prompt_logprobs = -1;
  expect_refused(e, &p, "prompt_logprobs");
  p.prompt_logprobs = R1D_GEN_MAX_TOP + 2;
  expect_refused(e, &p, "prompt_logprobs");
  p.prompt_logprobs = R1D_GEN_MAX_TOP + 1; /* the most is fine */
  budget_params(f, &p, 4, 0.0f, 1, NULL, 0);
  p.think_end_id = -1;
  expect_refused(e, &p, "thinking_budget");
  p.think_end_id = vocab;
  expect_refused(e, &p, "thinking_budget");
  p.think_end_id = f->think_end;
  p.thinking_budget = -1;
  expect_refused(e, &p, "thinking_budget");
  p.thinking_budget = 4;
  p.think_budget_on = 2;
  expect_refused(e, &p, "thinking_budget");
  p.think_budget_on = 1;
  p.think_start_id = vocab;
  expect_refused(e, &p, "thinking_budget");
  p.think_start_id = -2;
  expect_refused(e, &p, "thinking_budget");
  p.think_start_id = -1;
  p.think_open = 3;
  expect_refused(e, &p, "thinking_budget");
  /* fields of a budget that is off are not looked at */
  p.think_budget_on = 0;
  p.think_end_id = -7;
  p.thinking_budget = -3;
  assert_int_equal(r1d_gen_params_validate(&p, vocab, NULL), 0);
  r1d_engine_stats st;
  r1d_engine_stats_get(e, &st);
  assert_int_equal(st.requests, 0);
  r1d_engine_destroy(e);
}

typedef struct gen_out {
  int32_t ids[MAX_OUT];
  int n;
} gen_out;

static int on_gen(void *user, const r1d_gen_event *ev) {
  gen_out *o = user;
  if (o->n < MAX_OUT) o->ids[o->n++] = ev->id;
  return 0;
}

static void test_generate_path(void **state) {
  fixture *f = *state;
  int32_t prompt[10];
  make_prompt(prompt, 10, 7);
  r1d_gen_params p;
  plp_params(&p, 4, 0.0f);
  r1d_gen_result res;
  r1d_error err = {0};
  assert_int_equal(
      r1d_generate(f->model, f->tok, prompt, 10, &p, NULL, NULL, &res, &err),
      R1D_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "prompt_logprobs"));
  r1d_logit_bias no_end = {f->think_end, -100.0f};
  budget_params(f, &p, 3, 0.8f, 4, &no_end, 1);
  gen_out o = {0};
  assert_int_equal(
      r1d_generate(f->model, f->tok, prompt, 10, &p, on_gen, &o, &res, &err),
      0);
  assert_int_equal(o.n, 20);
  assert_int_equal(o.ids[3], f->think_end);
  int ends = 0;
  for (int i = 0; i < o.n; i++)
    ends += o.ids[i] == f->think_end;
  assert_int_equal(ends, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_prompt_logprobs_reference),
      cmocka_unit_test(test_prompt_logprobs_batch_invariant),
      cmocka_unit_test(test_prompt_logprobs_preempted),
      cmocka_unit_test(test_prompt_logprobs_prefix_cached),
      cmocka_unit_test(test_prompt_logprobs_n3),
      cmocka_unit_test(test_thinking_budget),
      cmocka_unit_test(test_thinking_budget_opened_by_model),
      cmocka_unit_test(test_think_state_machine),
      cmocka_unit_test(test_validation),
      cmocka_unit_test(test_generate_path),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
