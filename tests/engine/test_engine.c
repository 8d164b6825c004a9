/* test_engine.c - the serving engine on a seeded random tiny model (CPU):
 *   - N concurrent requests of different lengths give token-for-token the
 *     outputs each gives alone (greedy and seeded sampling), with chunked
 *     prefill mixing prompts and decodes in the same steps;
 *   - a prefix-cache hit gives the same output as a miss;
 *   - n = 4 samples of one prompt share its prompt blocks (copy-on-write),
 *     and choice i equals a single request with seed + i;
 *   - a pool too small for everyone preempts (counted) and outputs are still
 *     identical; afterwards every block is free again;
 *   - interactive requests overtake queued background ones;
 *   - cancellation (API and callback) frees blocks; bad requests are refused
 *     at submit with a clear error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/rng.h"
#include "engine/model/init.h"
#include "engine/model/model.h"
#include "engine/serve/engine.h"
#include "engine/text/tokenizer.h"
#include "kernels/cpu/cpu_backend.h"

#define MAX_OUT 256

typedef struct fixture {
  char dir[64];
  r1d_backend be;
  r1d_model *model;
  r1d_tokenizer *tok;
} fixture;

/* What one choice produced. */
typedef struct choice_out {
  int32_t ids[MAX_OUT];
  float logprobs[MAX_OUT];
  int n;
  int finished;
  r1d_finish_reason finish;
  int completion_tokens, prompt_tokens, cached_tokens;
  char text[4 * MAX_OUT * 8];
  size_t text_len;
} choice_out;

typedef struct req_out {
  choice_out c[8];
  int cancel_after; /* > 0: the callback cancels after this many tokens */
  int order;        /* completion order, from the shared counter */
  int *counter;
  r1d_engine *engine;
  int max_used_blocks; /* peak kv_blocks_used seen from the callback */
} req_out;

static int on_event(void *user, const r1d_engine_event *ev) {
  req_out *o = user;
  choice_out *c = &o->c[ev->index];
  if (ev->token >= 0 && c->n < MAX_OUT) {
    c->ids[c->n] = ev->token;
    c->logprobs[c->n] = ev->logprob;
    c->n++;
  }
  if (ev->text_len && c->text_len + ev->text_len < sizeof c->text) {
    memcpy(c->text + c->text_len, ev->text, ev->text_len);
    c->text_len += ev->text_len;
  }
  if (o->engine) {
    r1d_engine_stats st;
    r1d_engine_stats_get(o->engine, &st);
    if (st.kv_blocks_used > o->max_used_blocks)
      o->max_used_blocks = st.kv_blocks_used;
  }
  if (ev->finish != R1D_FINISH_NONE) {
    assert_int_equal(c->finished, 0); /* exactly one finishing event */
    c->finished = 1;
    c->finish = ev->finish;
    c->completion_tokens = ev->completion_tokens;
    c->prompt_tokens = ev->prompt_tokens;
    c->cached_tokens = ev->cached_tokens;
    if (o->counter) o->order = ++*o->counter;
  }
  return o->cancel_after > 0 && c->n >= o->cancel_after;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/r1d-engine-XXXXXX");
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

static int device_sampling = -1; /* engine config for the next make_engine */

static r1d_engine *make_engine(fixture *f, int n_blocks, int max_seqs,
                               int max_tokens, int prefix_cache,
                               int max_model_len) {
  r1d_engine_config cfg;
  r1d_engine_config_default(&cfg);
  cfg.device_sampling = device_sampling;
  cfg.n_blocks = n_blocks;
  cfg.max_num_seqs = max_seqs;
  cfg.max_batch_tokens = max_tokens;
  cfg.prefix_cache = prefix_cache;
  cfg.max_model_len = max_model_len;
  r1d_engine *e = NULL;
  r1d_error err = {0};
  int rc = r1d_engine_create(f->model, &f->be, f->tok, &cfg, &e, &err);
  if (rc) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(rc, 0);
  return e;
}

/* A workload of requests with different prompt lengths and budgets. */
typedef struct workload {
  int n;
  int32_t prompts[12][160];
  int lens[12];
  int max_tokens[12];
  uint64_t seeds[12];
} workload;

static void make_workload(workload *w, int n, uint64_t seed) {
  r1d_rng rng;
  r1d_rng_seed(&rng, seed);
  w->n = n;
  for (int i = 0; i < n; i++) {
    w->lens[i] = 1 + (int)(r1d_rng_next(&rng) % 150);
    for (int t = 0; t < w->lens[i]; t++)
      w->prompts[i][t] = (int32_t)(32 + r1d_rng_next(&rng) % 90);
    w->max_tokens[i] = 8 + (int)(r1d_rng_next(&rng) % 40);
    w->seeds[i] = 1000 + (uint64_t)i;
  }
}

static void submit(r1d_engine *e, const int32_t *prompt, int len,
                   int max_tokens, float temperature, uint64_t seed, int n,
                   r1d_priority prio, req_out *out, uint64_t *id) {
  r1d_engine_request q = {0};
  q.prompt = prompt;
  q.n_prompt = len;
  r1d_sampling_params_default(&q.params.sampling);
  q.params.sampling.temperature = temperature;
  q.params.sampling.top_p = temperature > 0 ? 0.95f : 1.0f;
  q.params.sampling.seed = seed;
  q.params.max_tokens = max_tokens;
  q.params.ignore_eos = 1; /* random weights: run to max_tokens */
  q.n = n;
  q.priority = prio;
  q.cb = on_event;
  q.user = out;
  r1d_error err = {0};
  uint64_t tmp;
  int rc = r1d_engine_submit(e, &q, id ? id : &tmp, &err);
  if (rc) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(rc, 0);
}

static void assert_same_choice(const choice_out *a, const choice_out *b) {
  assert_int_equal(a->n, b->n);
  assert_memory_equal(a->ids, b->ids, (size_t)a->n * sizeof(int32_t));
  assert_memory_equal(a->logprobs, b->logprobs, (size_t)a->n * sizeof(float));
  assert_int_equal(a->text_len, b->text_len);
  assert_memory_equal(a->text, b->text, a->text_len);
}

static void assert_all_blocks_free(r1d_engine *e) {
  r1d_engine_stats st;
  r1d_engine_stats_get(e, &st);
  assert_int_equal(st.kv_blocks_used, 0);
  assert_int_equal(st.kv_blocks_free + st.kv_blocks_cached, st.kv_blocks_total);
  assert_int_equal(st.running, 0);
  assert_int_equal(st.waiting, 0);
  assert_int_equal(st.requests, 0);
}

/* Each request alone (one engine, one at a time), then all at once. */
static void run_concurrent_vs_alone(fixture *f, float temperature, int n_blocks,
                                    int max_tokens, int max_model_len,
                                    int expect_preemption) {
  workload w;
  make_workload(&w, 10, temperature > 0 ? 7 : 5);
  static req_out alone[12], together[12];
  memset(alone, 0, sizeof alone);
  memset(together, 0, sizeof together);

  r1d_engine *e = make_engine(f, 0, 16, 64, 0, 256);
  for (int i = 0; i < w.n; i++) {
    submit(e, w.prompts[i], w.lens[i], w.max_tokens[i], temperature, w.seeds[i],
           1, R1D_PRIORITY_INTERACTIVE, &alone[i], NULL);
    r1d_engine_wait_idle(e);
    assert_true(alone[i].c[0].finished);
    assert_int_equal(alone[i].c[0].finish, R1D_FINISH_LENGTH);
    assert_int_equal(alone[i].c[0].n, w.max_tokens[i]);
  }
  r1d_engine_destroy(e);

  /* small step budget: prompts are chunked and share steps with decodes */
  e = make_engine(f, n_blocks, 16, max_tokens, 1, max_model_len);
  for (int i = 0; i < w.n; i++)
    submit(e, w.prompts[i], w.lens[i], w.max_tokens[i], temperature, w.seeds[i],
           1, R1D_PRIORITY_INTERACTIVE, &together[i], NULL);
  r1d_engine_wait_idle(e);
  for (int i = 0; i < w.n; i++) {
    assert_true(together[i].c[0].finished);
    assert_int_equal(together[i].c[0].prompt_tokens, w.lens[i]);
    assert_int_equal(together[i].c[0].completion_tokens, w.max_tokens[i]);
    assert_same_choice(&alone[i].c[0], &together[i].c[0]);
  }
  r1d_engine_stats st;
  r1d_engine_stats_get(e, &st);
  if (expect_preemption)
    assert_true(st.preemptions > 0);
  else
    assert_int_equal(st.preemptions, 0);
  assert_all_blocks_free(e);
  r1d_engine_destroy(e);
}

static void test_concurrent_greedy(void **state) {
  run_concurrent_vs_alone(*state, 0.0f, 0, 48, 256, 0);
}

static void test_concurrent_sampled(void **state) {
  run_concurrent_vs_alone(*state, 0.9f, 0, 48, 256, 0);
}

/* 13 blocks of 16 tokens hold one sequence of max_model_len 200 but nowhere
 * near ten of up to 197 tokens: the scheduler must preempt and recompute. */
static void test_preemption_identical(void **state) {
  run_concurrent_vs_alone(*state, 0.0f, 13, 64, 200, 1);
  run_concurrent_vs_alone(*state, 0.9f, 13, 64, 200, 1);
}

static void test_prefix_cache_hit_same_output(void **state) {
  fixture *f = *state;
  int32_t prompt[70];
  for (int i = 0; i < 70; i++)
    prompt[i] = (int32_t)(40 + (i * 7) % 60);
  static req_out miss, hit, off;
  memset(&miss, 0, sizeof miss);
  memset(&hit, 0, sizeof hit);
  memset(&off, 0, sizeof off);
  r1d_engine *e = make_engine(f, 0, 8, 64, 1, 256);
  submit(e, prompt, 70, 20, 0.0f, 1, 1, R1D_PRIORITY_INTERACTIVE, &miss, NULL);
  r1d_engine_wait_idle(e);
  submit(e, prompt, 70, 20, 0.0f, 1, 1, R1D_PRIORITY_INTERACTIVE, &hit, NULL);
  r1d_engine_wait_idle(e);
  assert_int_equal(miss.c[0].cached_tokens, 0);
  assert_int_equal(hit.c[0].cached_tokens, 64); /* 4 full blocks of 16 */
  assert_same_choice(&miss.c[0], &hit.c[0]);
  r1d_engine_stats st;
  r1d_engine_stats_get(e, &st);
  assert_true(st.prefix_hit_tokens >= 64);
  assert_all_blocks_free(e);
  r1d_engine_destroy(e);

  e = make_engine(f, 0, 8, 64, 0, 256); /* cache off */
  submit(e, prompt, 70, 20, 0.0f, 1, 1, R1D_PRIORITY_INTERACTIVE, &off, NULL);
  r1d_engine_wait_idle(e);
  assert_int_equal(off.c[0].cached_tokens, 0);
  assert_same_choice(&miss.c[0], &off.c[0]);
  r1d_engine_destroy(e);
}

static void test_n_samples_share_prompt_blocks(void **state) {
  fixture *f = *state;
  int32_t prompt[40];
  for (int i = 0; i < 40; i++)
    prompt[i] = (int32_t)(50 + (i * 13) % 40);
  static req_out group, single[4];
  memset(&group, 0, sizeof group);
  memset(single, 0, sizeof single);
  r1d_engine *e = make_engine(f, 0, 8, 64, 0, 256);
  group.engine = e;
  /* 40 prompt + 8 new = 48 tokens = 3 blocks per choice. Without sharing,
   * 4 choices hold 12 blocks; sharing the 2 full prompt blocks and copying
   * the partial third one on write gives 2 + 4 = 6. */
  submit(e, prompt, 40, 8, 0.9f, 77, 4, R1D_PRIORITY_INTERACTIVE, &group, NULL);
  r1d_engine_wait_idle(e);
  r1d_engine_stats st;
  r1d_engine_stats_get(e, &st);
  assert_int_equal(st.cow_copies, 3);
  assert_true(group.max_used_blocks >= 3);
  assert_true(group.max_used_blocks <= 6);
  assert_all_blocks_free(e);
  for (int i = 0; i < 4; i++) {
    assert_true(group.c[i].finished);
    assert_int_equal(group.c[i].n, 8);
    submit(e, prompt, 40, 8, 0.9f, 77 + (uint64_t)i, 1,
           R1D_PRIORITY_INTERACTIVE, &single[i], NULL);
    r1d_engine_wait_idle(e);
    assert_same_choice(&group.c[i], &single[i].c[0]);
  }
  /* different seeds, different samples */
  assert_memory_not_equal(group.c[0].ids, group.c[1].ids, 8 * sizeof(int32_t));
  r1d_engine_destroy(e);
}

static void test_priority_overtakes_background(void **state) {
  fixture *f = *state;
  int32_t prompt[10] = {60, 61, 62, 63, 64, 65, 66, 67, 68, 69};
  static req_out a, b, c;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  memset(&c, 0, sizeof c);
  int counter = 0;
  a.counter = b.counter = c.counter = &counter;
  /* one sequence at a time: the queue order decides */
  r1d_engine *e = make_engine(f, 0, 1, 16, 1, 256);
  submit(e, prompt, 10, 120, 0.0f, 1, 1, R1D_PRIORITY_INTERACTIVE, &a, NULL);
  submit(e, prompt, 5, 10, 0.0f, 1, 1, R1D_PRIORITY_BACKGROUND, &b, NULL);
  submit(e, prompt, 7, 10, 0.0f, 1, 1, R1D_PRIORITY_INTERACTIVE, &c, NULL);
  r1d_engine_wait_idle(e);
  assert_int_equal(a.order, 1);
  assert_int_equal(c.order, 2);
  assert_int_equal(b.order, 3);
  r1d_engine_destroy(e);
}

/* With every seat taken by background work, an interactive request preempts
 * it instead of waiting; the background request later resumes and still
 * produces exactly what it produces alone. */
static void test_interactive_preempts_background(void **state) {
  fixture *f = *state;
  int32_t prompt[12] = {70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81};
  static req_out bg, fg, bg_alone;
  memset(&bg, 0, sizeof bg);
  memset(&fg, 0, sizeof fg);
  memset(&bg_alone, 0, sizeof bg_alone);
  int counter = 0;
  bg.counter = fg.counter = &counter;
  r1d_engine *e = make_engine(f, 0, 1, 16, 1, 256);
  submit(e, prompt, 12, 200, 0.0f, 1, 1, R1D_PRIORITY_BACKGROUND, &bg, NULL);
  /* wait until the background request is decoding */
  for (int i = 0;
       i < 10000 && __atomic_load_n(&bg.c[0].n, __ATOMIC_ACQUIRE) < 3; i++)
    usleep(1000);
  submit(e, prompt, 5, 10, 0.0f, 1, 1, R1D_PRIORITY_INTERACTIVE, &fg, NULL);
  r1d_engine_wait_idle(e);
  assert_int_equal(fg.order, 1);
  assert_int_equal(bg.order, 2);
  assert_int_equal(bg.c[0].n, 200);
  r1d_engine_stats st;
  r1d_engine_stats_get(e, &st);
  assert_true(st.preemptions >= 1);
  submit(e, prompt, 12, 200, 0.0f, 1, 1, R1D_PRIORITY_BACKGROUND, &bg_alone,
         NULL);
  r1d_engine_wait_idle(e);
  assert_same_choice(&bg.c[0], &bg_alone.c[0]);
  r1d_engine_destroy(e);
}

static void test_cancel_frees_blocks(void **state) {
  fixture *f = *state;
  int32_t prompt[50];
  for (int i = 0; i < 50; i++)
    prompt[i] = (int32_t)(33 + i);
  static req_out by_cb, by_api, other;
  memset(&by_cb, 0, sizeof by_cb);
  memset(&by_api, 0, sizeof by_api);
  memset(&other, 0, sizeof other);
  r1d_engine *e = make_engine(f, 0, 8, 64, 1, 256);
  by_cb.cancel_after = 5;
  submit(e, prompt, 50, 100, 0.0f, 1, 1, R1D_PRIORITY_INTERACTIVE, &by_cb,
         NULL);
  uint64_t id = 0;
  submit(e, prompt, 30, 150, 0.0f, 1, 1, R1D_PRIORITY_INTERACTIVE, &by_api,
         &id);
  submit(e, prompt, 20, 10, 0.0f, 1, 1, R1D_PRIORITY_INTERACTIVE, &other, NULL);
  assert_int_equal(r1d_engine_cancel(e, id), 0);
  r1d_engine_wait_idle(e);
  assert_true(by_cb.c[0].finished);
  assert_int_equal(by_cb.c[0].finish, R1D_FINISH_ABORT);
  assert_int_equal(by_cb.c[0].n, 5);
  assert_true(by_api.c[0].finished);
  assert_int_equal(by_api.c[0].finish, R1D_FINISH_ABORT);
  assert_true(by_api.c[0].n < 150);
  assert_int_equal(other.c[0].finish, R1D_FINISH_LENGTH);
  assert_int_equal(other.c[0].n, 10);
  assert_int_equal(r1d_engine_cancel(e, id), R1D_ENOTFOUND);
  assert_all_blocks_free(e);
  /* a request still queued at destroy ends with ABORT too */
  static req_out late;
  memset(&late, 0, sizeof late);
  submit(e, prompt, 50, 200, 0.0f, 1, 1, R1D_PRIORITY_INTERACTIVE, &late, NULL);
  r1d_engine_destroy(e);
  assert_true(late.c[0].finished);
  assert_int_equal(late.c[0].finish,
                   late.c[0].n == 200 ? R1D_FINISH_LENGTH : R1D_FINISH_ABORT);
}

static void test_bad_requests_refused(void **state) {
  fixture *f = *state;
  r1d_engine *e = make_engine(f, 0, 4, 32, 1, 64);
  int32_t prompt[64] = {0};
  r1d_engine_request q = {0};
  q.prompt = prompt;
  q.n_prompt = 64; /* == max_model_len: no room for an answer */
  r1d_sampling_params_default(&q.params.sampling);
  q.params.max_tokens = 4;
  q.n = 1;
  uint64_t id;
  r1d_error err = {0};
  assert_int_equal(r1d_engine_submit(e, &q, &id, &err), R1D_ERANGE);
  assert_non_null(strstr(err.msg, "prompt has 64 tokens"));
  assert_non_null(strstr(err.msg, "context is 64"));
  q.n_prompt = 3;
  prompt[1] = 1 << 20;
  assert_int_equal(r1d_engine_submit(e, &q, &id, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "vocabulary"));
  prompt[1] = 5;
  q.n = 0;
  assert_int_equal(r1d_engine_submit(e, &q, &id, &err), R1D_EINVAL);
  q.n = 1;
  q.params.max_tokens = 0;
  assert_int_equal(r1d_engine_submit(e, &q, &id, &err), R1D_EINVAL);
  q.params.max_tokens = 4;
  q.weight_version = 9;
  assert_int_equal(r1d_engine_submit(e, &q, &id, &err), R1D_ENOTFOUND);
  q.weight_version = 0;
  q.params.sampling.temperature = -1;
  assert_int_equal(r1d_engine_submit(e, &q, &id, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "temperature"));
  r1d_engine_stats st;
  r1d_engine_stats_get(e, &st);
  assert_int_equal(st.requests, 0);
  r1d_engine_destroy(e);

  /* a pool that cannot hold one max-length sequence is refused */
  r1d_engine_config cfg;
  r1d_engine_config_default(&cfg);
  cfg.n_blocks = 3;
  cfg.max_model_len = 64; /* needs 4 blocks of 16 */
  assert_int_equal(r1d_engine_create(f->model, &f->be, f->tok, &cfg, &e, &err),
                   R1D_EINVAL);
  assert_non_null(strstr(err.msg, "cannot hold one sequence"));
}

/* The backend's sample op (forced on for the CPU backend) picks the same
 * greedy tokens as the host sampler, with logprobs within float rounding,
 * and seeded draws repeat. */
static void test_device_sampling(void **state) {
  fixture *f = *state;
  workload w;
  make_workload(&w, 4, 21);
  static req_out host[4], dev[4], dev_t[4], dev_t2[4];
  memset(host, 0, sizeof host);
  memset(dev, 0, sizeof dev);
  memset(dev_t, 0, sizeof dev_t);
  memset(dev_t2, 0, sizeof dev_t2);
  req_out *runs[4] = {host, dev, dev_t, dev_t2};
  for (int run = 0; run < 4; run++) {
    device_sampling = run == 0 ? 0 : 1;
    r1d_engine *e = make_engine(f, 0, 8, 64, 1, 256);
    float temp = run >= 2 ? 0.8f : 0.0f;
    for (int i = 0; i < w.n; i++)
      submit(e, w.prompts[i], w.lens[i], w.max_tokens[i], temp, w.seeds[i], 1,
             R1D_PRIORITY_INTERACTIVE, &runs[run][i], NULL);
    r1d_engine_wait_idle(e);
    r1d_engine_destroy(e);
  }
  device_sampling = -1;
  for (int i = 0; i < w.n; i++) {
    assert_int_equal(host[i].c[0].n, dev[i].c[0].n);
    assert_memory_equal(host[i].c[0].ids, dev[i].c[0].ids,
                        (size_t)host[i].c[0].n * sizeof(int32_t));
    for (int t = 0; t < host[i].c[0].n; t++)
      assert_true(fabsf(host[i].c[0].logprobs[t] - dev[i].c[0].logprobs[t]) <
                  1e-5f);
    assert_same_choice(&dev_t[i].c[0], &dev_t2[i].c[0]);
  }
}

/* The CPU kernels behind an ops table that claims device memory: the runner
 * then uploads the weights, stages each step's metadata into one upload and
 * samples on the "device", exactly the path a GPU takes. Outputs must equal
 * the host-memory engine's with the same sampling path. */
static void test_device_memory_path(void **state) {
  fixture *f = *state;
  static r1d_backend_ops as_device;
  as_device = *f->be.ops;
  as_device.name = "cpu-as-device";
  as_device.host_memory = 0;
  r1d_backend dev_be = {&as_device, NULL};
  workload w;
  make_workload(&w, 6, 33);
  static req_out host[2][6], dev[2][6];
  memset(host, 0, sizeof host);
  memset(dev, 0, sizeof dev);
  for (int run = 0; run < 2; run++) {
    float temp = run ? 0.7f : 0.0f;
    device_sampling = 1; /* same sampling op on both sides */
    for (int side = 0; side < 2; side++) {
      r1d_engine_config cfg;
      r1d_engine_config_default(&cfg);
      cfg.device_sampling = 1;
      cfg.max_num_seqs = 8;
      cfg.max_batch_tokens = 40;
      cfg.n_blocks = 40; /* tight: preemption on the device path too */
      cfg.max_model_len = 256;
      r1d_engine *e = NULL;
      r1d_error err = {0};
      assert_int_equal(r1d_engine_create(f->model, side ? &dev_be : &f->be,
                                         f->tok, &cfg, &e, &err),
                       0);
      for (int i = 0; i < w.n; i++)
        submit(e, w.prompts[i], w.lens[i], w.max_tokens[i], temp, w.seeds[i], 1,
               R1D_PRIORITY_INTERACTIVE, side ? &dev[run][i] : &host[run][i],
               NULL);
      r1d_engine_wait_idle(e);
      assert_all_blocks_free(e);
      r1d_engine_destroy(e);
    }
    device_sampling = -1;
    for (int i = 0; i < w.n; i++) {
      assert_int_equal(dev[run][i].c[0].n, w.max_tokens[i]);
      assert_same_choice(&host[run][i].c[0], &dev[run][i].c[0]);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_concurrent_greedy),
      cmocka_unit_test(test_concurrent_sampled),
      cmocka_unit_test(test_preemption_identical),
      cmocka_unit_test(test_prefix_cache_hit_same_output),
      cmocka_unit_test(test_n_samples_share_prompt_blocks),
      cmocka_unit_test(test_priority_overtakes_background),
      cmocka_unit_test(test_interactive_preempts_background),
      cmocka_unit_test(test_cancel_frees_blocks),
      cmocka_unit_test(test_bad_requests_refused),
      cmocka_unit_test(test_device_sampling),
      cmocka_unit_test(test_device_memory_path),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
