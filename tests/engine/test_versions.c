/* test_versions.c - the hot-swap core (engine/serve/versions.h) on seeded
 * random tiny models (CPU), two of the same shapes and one of other shapes:
 *   - create: version 1 is live, acquired, listed once as "live";
 *   - stage + promote: acquire keeps giving the old version until the flip,
 *     then the new one; the old one becomes "previous"; the swap result
 *     names both and its flip is quick; weights of other shapes (or another
 *     vocabulary) are refused with R1D_EINVAL naming the field;
 *   - a request in flight during a promote finishes on the version it
 *     started on, with all its tokens, that engine still reporting
 *     weight_version 1; abort-and-swap cancels it (R1D_FINISH_ABORT);
 *   - rollback flips back and retires the other version; a second one is
 *     R1D_ENOTFOUND; a retired version stays (listed "retired" with its
 *     holder) until its last holder releases it, then reap frees it;
 *   - the chain 1 -> 2 -> 3 retires 1 and keeps 2 as the rollback target;
 *   - r1d_versions_stats: counters never go back across swaps and reaps
 *     (freed engines' counters are kept) and weight_version is the live id;
 *   - unknown ids: acquire_id NULL, promote R1D_ENOTFOUND; discard drops a
 *     staged version and leaves live alone;
 *   - concurrency: four threads acquire / submit / wait / release in a loop
 *     while the main thread swaps and rolls back, and a fifth watches the
 *     summed counters never decrease; every request ends STOP or LENGTH and
 *     a final reap leaves only the live and previous versions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/model/init.h"
#include "engine/model/model.h"
#include "engine/serve/engine.h"
#include "engine/serve/versions.h"
#include "engine/text/tokenizer.h"
#include "kernels/cpu/cpu_backend.h"

/* Model folders shared by every test (made once), and the set under test. */
typedef struct fixture {
  char root[64];
  char dir_a[96], dir_b[96], dir_c[96]; /* a, b: same shapes; c: other */
  r1d_backend be;
  r1d_tokenizer *tok;
  r1d_versions *vs;
} fixture;

static fixture F;

static int group_setup(void **state) {
  (void)state;
  snprintf(F.root, sizeof F.root, "/tmp/r1d-versions-XXXXXX");
  if (!mkdtemp(F.root)) return -1;
  snprintf(F.dir_a, sizeof F.dir_a, "%s/a", F.root);
  snprintf(F.dir_b, sizeof F.dir_b, "%s/b", F.root);
  snprintf(F.dir_c, sizeof F.dir_c, "%s/c", F.root);
  r1d_config c, other;
  r1d_error err = {0};
  if (r1d_model_preset(R1D_ARCH_QWEN2, "tiny", &c, &err)) goto fail;
  other = c;
  other.hidden_size = c.hidden_size / 2; /* same heads, half the width */
  other.head_dim = other.hidden_size / other.num_heads;
  if (r1d_model_init_dir(F.dir_a, &c, 11, &err) ||
      r1d_model_init_dir(F.dir_b, &c, 12, &err) ||
      r1d_model_init_dir(F.dir_c, &other, 13, &err))
    goto fail;
  r1d_cpu_backend_init(&F.be, 2);
  if (r1d_tokenizer_load_dir(F.dir_a, &F.tok, &err)) goto fail;
  return 0;
fail:
  fprintf(stderr, "%s\n", err.msg);
  return -1;
}

static int group_teardown(void **state) {
  (void)state;
  r1d_tokenizer_free(F.tok);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", F.root);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", F.root);
  return 0;
}

/* A fresh set serving model a as version 1. */
static int setup(void **state) {
  (void)state;
  r1d_error err = {0};
  r1d_model *m = NULL;
  r1d_engine_config ec;
  r1d_engine_config_default(&ec);
  ec.max_num_seqs = 8;
  ec.max_batch_tokens = 64;
  ec.max_model_len = 320;
  ec.prefix_cache = 1;
  if (r1d_model_load(F.dir_a, &F.be, &m, &err) ||
      r1d_versions_create(m, F.dir_a, &F.be, &F.be, F.tok, &ec, &F.vs, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  r1d_versions_destroy(F.vs);
  F.vs = NULL;
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- one request, watched from its callback ---- */

typedef struct req {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int tokens, events, finished;
  r1d_finish_reason finish;
  int completion_tokens;
  r1d_engine *engine;    /* the engine it runs on */
  uint64_t seen_version; /* that engine's weight_version, seen in events */
  int hold_at;           /* > 0: the callback waits at this token ... */
  int held, released;    /* ... until req_release_hold */
} req;

static void req_init(req *r, r1d_engine *e, int hold_at) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  r->engine = e;
  r->hold_at = hold_at;
}

static void req_free(req *r) {
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
}

static int on_event(void *user, const r1d_engine_event *ev) {
  req *r = user;
  r1d_engine_stats st;
  r1d_engine_stats_get(r->engine, &st);
  pthread_mutex_lock(&r->mu);
  r->events++;
  r->seen_version = st.weight_version;
  if (ev->token >= 0) r->tokens++;
  if (ev->finish != R1D_FINISH_NONE) {
    r->finished++;
    r->finish = ev->finish;
    r->completion_tokens = ev->completion_tokens;
    pthread_cond_broadcast(&r->cv);
  } else if (r->hold_at > 0 && r->tokens == r->hold_at) {
    r->held = 1;
    pthread_cond_broadcast(&r->cv);
    while (!r->released)
      pthread_cond_wait(&r->cv, &r->mu);
  }
  pthread_mutex_unlock(&r->mu);
  return 0;
}

static void req_wait_held(req *r) {
  pthread_mutex_lock(&r->mu);
  while (!r->held && !r->finished)
    pthread_cond_wait(&r->cv, &r->mu);
  pthread_mutex_unlock(&r->mu);
}

static void req_release_hold(req *r) {
  pthread_mutex_lock(&r->mu);
  r->released = 1;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

static void req_wait_done(req *r) {
  pthread_mutex_lock(&r->mu);
  while (!r->finished)
    pthread_cond_wait(&r->cv, &r->mu);
  pthread_mutex_unlock(&r->mu);
}

static const int32_t prompt[] = {40, 41, 42, 43, 44, 45, 46, 47, 48, 49};

/* Greedy, ignoring EOS (random weights): exactly max_tokens tokens. */
static int submit_on(r1d_version *v, req *r, int max_tokens, int n_prompt) {
  r1d_engine_request q = {0};
  q.prompt = prompt;
  q.n_prompt = n_prompt;
  r1d_sampling_params_default(&q.params.sampling);
  q.params.sampling.temperature = 0.0f;
  q.params.max_tokens = max_tokens;
  q.params.ignore_eos = 1;
  q.n = 1;
  q.weight_version = r1d_version_id(v); /* refused by any other engine */
  q.cb = on_event;
  q.user = r;
  r1d_error err = {0};
  uint64_t id;
  int rc = r1d_engine_submit(r1d_version_engine(v), &q, &id, &err);
  if (rc) fprintf(stderr, "submit: %s\n", err.msg);
  return rc;
}

/* ---- the list ---- */

#define MAX_LIST 16

static int list(r1d_version_info *out) {
  int n = r1d_versions_list(F.vs, out, MAX_LIST);
  assert_true(n <= MAX_LIST);
  return n;
}

/* The entry of version id, or NULL. */
static const r1d_version_info *find(const r1d_version_info *l, int n,
                                    uint64_t id) {
  for (int i = 0; i < n; i++)
    if (l[i].id == id) return &l[i];
  return NULL;
}

static void assert_state(uint64_t id, const char *state, int holders) {
  r1d_version_info l[MAX_LIST];
  int n = list(l);
  const r1d_version_info *i = find(l, n, id);
  if (!i) fail_msg("version %llu is not listed", (unsigned long long)id);
  assert_string_equal(r1d_version_state_name(i->state), state);
  assert_int_equal(i->holders, holders);
}

static void assert_not_listed(uint64_t id) {
  r1d_version_info l[MAX_LIST];
  int n = list(l);
  assert_null(find(l, n, id));
}

static uint64_t live_id(void) {
  r1d_version *v = r1d_versions_acquire(F.vs);
  uint64_t id = r1d_version_id(v);
  r1d_versions_release(F.vs, v);
  return id;
}

static void swap_to(const char *dir, int abort, r1d_swap_result *res) {
  r1d_error err = {0};
  int rc = r1d_versions_swap(F.vs, dir, abort, res, &err);
  if (rc) fail_msg("swap: %s", err.msg);
}

/* ---- 1. create ---- */

static void test_create(void **state) {
  (void)state;
  r1d_version *v = r1d_versions_acquire(F.vs);
  assert_non_null(v);
  assert_int_equal(r1d_version_id(v), 1);
  assert_non_null(r1d_version_engine(v));
  assert_non_null(r1d_version_model(v));
  r1d_engine_stats st;
  r1d_engine_stats_get(r1d_version_engine(v), &st);
  assert_int_equal(st.weight_version, 1);

  r1d_version_info l[MAX_LIST];
  int n = list(l);
  assert_int_equal(n, 1);
  assert_int_equal(l[0].id, 1);
  assert_string_equal(r1d_version_state_name(l[0].state), "live");
  assert_string_equal(l[0].source, F.dir_a);
  assert_int_equal(l[0].holders, 1); /* ours */
  assert_int_equal(l[0].requests, 0);
  r1d_versions_release(F.vs, v);
  assert_state(1, "live", 0);

  /* id 0 is the live one; nothing else is loaded */
  v = r1d_versions_acquire_id(F.vs, 0);
  assert_non_null(v);
  assert_int_equal(r1d_version_id(v), 1);
  r1d_versions_release(F.vs, v);
  assert_null(r1d_versions_acquire_id(F.vs, 2));

  uint64_t swaps = 99;
  double secs = -1;
  r1d_versions_swap_totals(F.vs, &swaps, &secs);
  assert_int_equal(swaps, 0);
  assert_true(secs == 0.0);
  assert_int_equal(r1d_versions_reap(F.vs), 0);
}

/* ---- 2. stage + promote, and shapes that do not fit ---- */

static void test_stage_promote(void **state) {
  (void)state;
  r1d_error err = {0};
  uint64_t id = 0;
  assert_int_equal(r1d_versions_stage(F.vs, F.dir_b, &id, &err), 0);
  assert_int_equal(id, 2);
  assert_state(2, "staged", 0);
  assert_state(1, "live", 0);
  assert_int_equal(live_id(), 1); /* not serving yet */

  /* a staged version can be acquired by id (warm-up, checks) */
  r1d_version *v2 = r1d_versions_acquire_id(F.vs, 2);
  assert_non_null(v2);
  r1d_engine_stats st;
  r1d_engine_stats_get(r1d_version_engine(v2), &st);
  assert_int_equal(st.weight_version, 2);
  r1d_versions_release(F.vs, v2);

  r1d_swap_result res;
  memset(&res, 0xff, sizeof res);
  double t0 = now_s();
  assert_int_equal(r1d_versions_promote(F.vs, id, 0, &res, &err), 0);
  double took = now_s() - t0;
  assert_int_equal(res.old_version, 1);
  assert_int_equal(res.new_version, 2);
  assert_int_equal(res.aborted, 0);
  assert_int_equal(res.in_flight, 0);
  assert_true(res.flip_seconds >= 0.0 && res.flip_seconds <= took);
  assert_true(res.flip_seconds < 0.1);

  assert_int_equal(live_id(), 2);
  assert_state(2, "live", 0);
  assert_state(1, "previous", 0);
  r1d_version_info l[MAX_LIST];
  assert_int_equal(list(l), 2);
  assert_int_equal(l[0].id, 2); /* newest first */
  assert_string_equal(l[0].source, F.dir_b);
  assert_int_equal(l[1].id, 1);

  uint64_t swaps;
  double secs;
  r1d_versions_swap_totals(F.vs, &swaps, &secs);
  assert_int_equal(swaps, 1);
  assert_true(secs >= res.flip_seconds - 1e-12 && secs < 0.1);

  /* promoting it again: it is not staged any more */
  assert_int_equal(r1d_versions_promote(F.vs, id, 0, &res, &err),
                   R1D_ENOTFOUND);

  /* other shapes are refused, naming the field, and change nothing */
  err.msg[0] = 0;
  assert_int_equal(r1d_versions_stage(F.vs, F.dir_c, &id, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "hidden_size"));
  err.msg[0] = 0;
  assert_int_equal(r1d_versions_swap(F.vs, F.dir_c, 0, &res, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "hidden_size"));
  /* the project's tiny Qwen2 fixture has another vocabulary */
  const char *root = getenv("R1D_SOURCE_ROOT");
  if (root) {
    char fx[1024];
    snprintf(fx, sizeof fx, "%s/tests/fixtures/models/tiny-qwen2", root);
    err.msg[0] = 0;
    assert_int_equal(r1d_versions_stage(F.vs, fx, &id, &err), R1D_EINVAL);
    assert_non_null(strstr(err.msg, "vocab_size"));
  }
  /* a folder that is no model */
  assert_int_not_equal(r1d_versions_stage(F.vs, F.root, &id, &err), 0);
  assert_int_equal(list(l), 2);
  assert_int_equal(live_id(), 2);
  assert_state(1, "previous", 0);
}

/* ---- 3. a request in flight finishes on its version ---- */

static void test_in_flight_finishes(void **state) {
  (void)state;
  r1d_version *v1 = r1d_versions_acquire(F.vs);
  assert_int_equal(r1d_version_id(v1), 1);
  r1d_engine *e1 = r1d_version_engine(v1);
  req r;
  req_init(&r, e1, 5); /* held at its 5th token until the swap is done */
  assert_int_equal(submit_on(v1, &r, 200, 10), 0);
  req_wait_held(&r);
  assert_int_equal(r.finished, 0);

  r1d_swap_result res;
  swap_to(F.dir_b, 0, &res);
  assert_int_equal(res.old_version, 1);
  assert_int_equal(res.new_version, 2);
  assert_int_equal(res.aborted, 0);
  assert_int_equal(res.in_flight, 1); /* ours, still running on 1 */
  assert_true(res.stage_seconds > 0.0);
  assert_true(res.flip_seconds >= 0.0 && res.flip_seconds < 0.1);
  assert_int_equal(live_id(), 2);
  r1d_version_info l[MAX_LIST];
  int n = list(l);
  assert_int_equal(find(l, n, 1)->requests, 1);
  assert_int_equal(find(l, n, 1)->holders, 1);

  req_release_hold(&r);
  req_wait_done(&r);
  assert_int_equal(r.finished, 1);
  assert_int_equal(r.finish, R1D_FINISH_LENGTH);
  assert_int_equal(r.tokens, 200);
  assert_int_equal(r.completion_tokens, 200);
  assert_true(r.events >= 200);
  assert_int_equal(r.seen_version, 1);
  r1d_engine_stats st;
  r1d_engine_wait_idle(e1);
  r1d_engine_stats_get(e1, &st);
  assert_int_equal(st.weight_version, 1);
  assert_int_equal(st.generated_tokens, 200);
  assert_int_equal(st.requests, 0);
  r1d_versions_release(F.vs, v1);

  /* the new live version did none of it */
  r1d_version *v2 = r1d_versions_acquire(F.vs);
  r1d_engine_stats_get(r1d_version_engine(v2), &st);
  assert_int_equal(st.weight_version, 2);
  assert_int_equal(st.generated_tokens, 0);
  /* and refuses a request pinned to version 1 */
  req r2;
  req_init(&r2, r1d_version_engine(v2), 0);
  r1d_engine_request q = {0};
  q.prompt = prompt;
  q.n_prompt = 3;
  r1d_sampling_params_default(&q.params.sampling);
  q.params.max_tokens = 2;
  q.n = 1;
  q.weight_version = 1;
  q.cb = on_event;
  q.user = &r2;
  uint64_t rid;
  r1d_error err = {0};
  assert_int_equal(r1d_engine_submit(r1d_version_engine(v2), &q, &rid, &err),
                   R1D_ENOTFOUND);
  assert_int_equal(r2.events, 0);
  req_free(&r2);
  r1d_versions_release(F.vs, v2);
  assert_state(1, "previous", 0);
  assert_state(2, "live", 0);
  req_free(&r);
}

/* ---- 4. abort-and-swap ---- */

static void test_abort_and_swap(void **state) {
  (void)state;
  r1d_version *v1 = r1d_versions_acquire(F.vs);
  req r;
  req_init(&r, r1d_version_engine(v1), 3);
  assert_int_equal(submit_on(v1, &r, 200, 10), 0);
  req_wait_held(&r);

  r1d_swap_result res;
  swap_to(F.dir_b, 1, &res);
  assert_int_equal(res.old_version, 1);
  assert_int_equal(res.new_version, 2);
  assert_int_equal(res.aborted, 1);
  assert_true(res.aborted >= 1);

  req_release_hold(&r);
  req_wait_done(&r);
  assert_int_equal(r.finished, 1);
  assert_int_equal(r.finish, R1D_FINISH_ABORT);
  assert_true(r.tokens >= 3 && r.tokens < 200);
  assert_int_equal(r.seen_version, 1);
  r1d_engine_wait_idle(r1d_version_engine(v1));
  r1d_versions_release(F.vs, v1);
  assert_int_equal(live_id(), 2);
  assert_state(1, "previous", 0);

  /* an idle version aborts nothing */
  r1d_error err = {0};
  assert_int_equal(r1d_versions_rollback(F.vs, 1, &res, &err), 0);
  assert_int_equal(res.aborted, 0);
  assert_int_equal(res.in_flight, 0);
  req_free(&r);
}

/* ---- 5. rollback ---- */

static void test_rollback(void **state) {
  (void)state;
  r1d_error err = {0};
  r1d_swap_result res;
  /* nothing to roll back to yet */
  assert_int_equal(r1d_versions_rollback(F.vs, 0, &res, &err), R1D_ENOTFOUND);
  assert_int_equal(live_id(), 1);

  swap_to(F.dir_b, 0, &res);
  assert_int_equal(live_id(), 2);
  r1d_version *held = r1d_versions_acquire_id(F.vs, 2);
  assert_non_null(held);
  assert_int_equal(r1d_version_id(held), 2);

  memset(&res, 0xff, sizeof res);
  assert_int_equal(r1d_versions_rollback(F.vs, 0, &res, &err), 0);
  assert_int_equal(res.old_version, 2);
  assert_int_equal(res.new_version, 1);
  assert_int_equal(res.aborted, 0);
  assert_int_equal(res.in_flight, 0);
  assert_true(res.flip_seconds >= 0.0 && res.flip_seconds < 0.1);
  assert_int_equal(live_id(), 1);
  assert_state(1, "live", 0);
  assert_state(2, "retired", 1);                 /* ours keeps it loaded */
  assert_null(r1d_versions_acquire_id(F.vs, 2)); /* not handed out */
  uint64_t swaps;
  double secs;
  r1d_versions_swap_totals(F.vs, &swaps, &secs);
  assert_int_equal(swaps, 2);

  /* no second rollback: nothing is the rollback target now */
  err.msg[0] = 0;
  assert_int_equal(r1d_versions_rollback(F.vs, 0, &res, &err), R1D_ENOTFOUND);
  assert_true(err.msg[0] != 0);
  assert_int_equal(live_id(), 1);

  /* still held: a reap leaves it; the holder can still use it */
  assert_int_equal(r1d_versions_reap(F.vs), 0);
  assert_state(2, "retired", 1);
  req r;
  req_init(&r, r1d_version_engine(held), 0);
  assert_int_equal(submit_on(held, &r, 4, 4), 0);
  req_wait_done(&r);
  assert_int_equal(r.finish, R1D_FINISH_LENGTH);
  assert_int_equal(r.tokens, 4);
  assert_int_equal(r.seen_version, 2);
  req_free(&r);

  r1d_versions_release(F.vs, held);
  assert_state(2, "retired", 0);
  assert_int_equal(r1d_versions_reap(F.vs), 1);
  assert_not_listed(2);
  r1d_version_info l[MAX_LIST];
  assert_int_equal(list(l), 1);
  assert_int_equal(r1d_versions_reap(F.vs), 0);

  /* and swapping on from there numbers on */
  swap_to(F.dir_b, 0, &res);
  assert_int_equal(res.old_version, 1);
  assert_int_equal(res.new_version, 3);
  assert_state(3, "live", 0);
  assert_state(1, "previous", 0);
}

/* ---- 6. the chain ---- */

static void test_chain(void **state) {
  (void)state;
  r1d_swap_result res;
  swap_to(F.dir_b, 0, &res);
  assert_int_equal(res.new_version, 2);
  r1d_version *v1 = r1d_versions_acquire_id(F.vs, 1); /* watch it retire */
  assert_non_null(v1);
  assert_state(1, "previous", 1);

  swap_to(F.dir_a, 0, &res);
  assert_int_equal(res.old_version, 2);
  assert_int_equal(res.new_version, 3);
  assert_int_equal(live_id(), 3);
  assert_state(3, "live", 0);
  assert_state(2, "previous", 0);
  assert_state(1, "retired", 1);
  r1d_versions_release(F.vs, v1);
  assert_int_equal(r1d_versions_reap(F.vs), 1);
  assert_not_listed(1);

  /* without a holder, the swap frees the retired one itself */
  swap_to(F.dir_b, 0, &res);
  assert_int_equal(res.old_version, 3);
  assert_int_equal(res.new_version, 4);
  r1d_version_info l[MAX_LIST];
  int n = list(l);
  assert_int_equal(n, 2);
  assert_int_equal(l[0].id, 4);
  assert_string_equal(r1d_version_state_name(l[0].state), "live");
  assert_int_equal(l[1].id, 3);
  assert_string_equal(r1d_version_state_name(l[1].state), "previous");

  /* the rollback target is the one just swapped out */
  r1d_error err = {0};
  assert_int_equal(r1d_versions_rollback(F.vs, 0, &res, &err), 0);
  assert_int_equal(res.old_version, 4);
  assert_int_equal(res.new_version, 3);
  assert_int_equal(live_id(), 3);
  n = list(l);
  assert_int_equal(n, 1);
  assert_int_equal(l[0].id, 3);
}

/* ---- 7. stats ---- */

static void generate_on_live(int max_tokens, uint64_t expect_version) {
  r1d_version *v = r1d_versions_acquire(F.vs);
  assert_int_equal(r1d_version_id(v), expect_version);
  req r;
  req_init(&r, r1d_version_engine(v), 0);
  assert_int_equal(submit_on(v, &r, max_tokens, 10), 0);
  req_wait_done(&r);
  assert_int_equal(r.tokens, max_tokens);
  r1d_engine_wait_idle(r1d_version_engine(v)); /* its stats published */
  r1d_versions_release(F.vs, v);
  req_free(&r);
}

static void test_stats(void **state) {
  (void)state;
  r1d_engine_stats s0, s;
  r1d_versions_stats(F.vs, &s0);
  assert_int_equal(s0.generated_tokens, 0);
  assert_int_equal(s0.weight_version, 1);

  generate_on_live(20, 1);
  r1d_versions_stats(F.vs, &s);
  assert_int_equal(s.generated_tokens, 20);
  assert_int_equal(s.prompt_tokens, 10);
  assert_true(s.steps >= 20);
  assert_int_equal(s.requests, 0);
  r1d_engine_stats s1 = s;

  r1d_swap_result res;
  swap_to(F.dir_b, 0, &res); /* 1 previous */
  r1d_versions_stats(F.vs, &s);
  assert_int_equal(s.weight_version, 2);
  assert_int_equal(s.generated_tokens, 20);
  assert_true(s.steps >= s1.steps);

  generate_on_live(7, 2);
  r1d_versions_stats(F.vs, &s);
  assert_int_equal(s.generated_tokens, 27);
  r1d_engine_stats s2 = s;

  swap_to(F.dir_a, 0, &res); /* 1 retired and freed here, 2 previous */
  assert_not_listed(1);
  r1d_versions_stats(F.vs, &s);
  assert_int_equal(s.weight_version, 3);
  assert_int_equal(s.generated_tokens, 27);
  assert_int_equal(s.prompt_tokens, 20);
  assert_true(s.steps >= s2.steps);

  r1d_error err = {0};
  assert_int_equal(r1d_versions_rollback(F.vs, 0, &res, &err), 0); /* frees 3 */
  assert_int_equal(r1d_versions_reap(F.vs), 0);
  r1d_versions_stats(F.vs, &s);
  assert_int_equal(s.weight_version, 2);
  assert_int_equal(s.generated_tokens, 27);
  assert_true(s.steps >= s2.steps);

  generate_on_live(5, 2);
  r1d_versions_stats(F.vs, &s);
  assert_int_equal(s.generated_tokens, 32);
  assert_int_equal(s.weight_version, 2);
  assert_int_equal(s.running, 0);
  assert_int_equal(s.waiting, 0);
  assert_int_equal(s.requests, 0);
  assert_true(s.kv_blocks_total > 0);
  assert_int_equal(s.failed, 0);
}

/* ---- 8. unknown ids and discard ---- */

static void test_unknown_and_discard(void **state) {
  (void)state;
  r1d_error err = {0};
  r1d_swap_result res;
  assert_null(r1d_versions_acquire_id(F.vs, 7));
  assert_int_equal(r1d_versions_promote(F.vs, 7, 0, &res, &err), R1D_ENOTFOUND);
  assert_non_null(strstr(err.msg, "7"));
  /* the live version is not staged either */
  assert_int_equal(r1d_versions_promote(F.vs, 1, 0, &res, &err), R1D_ENOTFOUND);
  r1d_versions_discard(F.vs, 7); /* nothing to drop */
  r1d_versions_discard(F.vs, 1); /* the live one is not staged: kept */
  assert_int_equal(live_id(), 1);
  assert_state(1, "live", 0);

  uint64_t id = 0;
  assert_int_equal(r1d_versions_stage(F.vs, F.dir_b, &id, &err), 0);
  assert_int_equal(id, 2);
  assert_state(2, "staged", 0);
  r1d_versions_discard(F.vs, id);
  assert_not_listed(2);
  assert_int_equal(live_id(), 1);
  assert_state(1, "live", 0);
  assert_null(r1d_versions_acquire_id(F.vs, 2));
  assert_int_equal(r1d_versions_promote(F.vs, 2, 0, &res, &err), R1D_ENOTFOUND);
  assert_int_equal(r1d_versions_rollback(F.vs, 0, &res, &err), R1D_ENOTFOUND);

  /* a discarded version someone holds is freed once they let go */
  assert_int_equal(r1d_versions_stage(F.vs, F.dir_b, &id, &err), 0);
  assert_int_equal(id, 3);
  r1d_version *v3 = r1d_versions_acquire_id(F.vs, 3);
  assert_non_null(v3);
  r1d_versions_discard(F.vs, 3);
  assert_state(3, "retired", 1);
  assert_int_equal(r1d_versions_promote(F.vs, 3, 0, &res, &err), R1D_ENOTFOUND);
  r1d_versions_release(F.vs, v3);
  assert_int_equal(r1d_versions_reap(F.vs), 1);
  assert_not_listed(3);
  r1d_version_info l[MAX_LIST];
  assert_int_equal(list(l), 1);
  assert_int_equal(live_id(), 1);
  uint64_t swaps;
  double secs;
  r1d_versions_swap_totals(F.vs, &swaps, &secs);
  assert_int_equal(swaps, 0);
}

/* ---- 9. concurrency ---- */

#define N_WORKERS 4

typedef struct shared {
  pthread_mutex_t mu;
  pthread_cond_t progress; /* done went up */
  int stop;
  int done, bad_finish, bad_version, submit_failed;
  int seen_by_version[64];
  int stats_went_back;
  uint64_t polls;
} shared;

static int stopping(shared *s) {
  pthread_mutex_lock(&s->mu);
  int stop = s->stop;
  pthread_mutex_unlock(&s->mu);
  return stop;
}

static void *worker(void *arg) {
  shared *s = arg;
  while (!stopping(s)) {
    r1d_version *v = r1d_versions_acquire(F.vs);
    uint64_t id = r1d_version_id(v);
    req r;
    req_init(&r, r1d_version_engine(v), 0);
    int rc = submit_on(v, &r, 4, 6);
    if (!rc) req_wait_done(&r);
    r1d_versions_release(F.vs, v);
    pthread_mutex_lock(&s->mu);
    if (rc) {
      s->submit_failed++;
    } else {
      s->done++;
      if (r.finished != 1 ||
          (r.finish != R1D_FINISH_STOP && r.finish != R1D_FINISH_LENGTH) ||
          r.tokens != 4)
        s->bad_finish++;
      if (r.seen_version != id) s->bad_version++;
      if (id < 64) s->seen_by_version[id]++;
      pthread_cond_broadcast(&s->progress);
    }
    pthread_mutex_unlock(&s->mu);
    req_free(&r);
  }
  return NULL;
}

/* Polls the summed counters: they must never decrease. */
static void *watcher(void *arg) {
  shared *s = arg;
  r1d_engine_stats last = {0};
  uint64_t polls = 0;
  int back = 0;
  while (!stopping(s)) {
    r1d_engine_stats st;
    r1d_versions_stats(F.vs, &st);
    if (st.generated_tokens < last.generated_tokens || st.steps < last.steps ||
        st.prompt_tokens < last.prompt_tokens)
      back++;
    last = st;
    polls++;
    struct timespec ts = {0, 100 * 1000};
    nanosleep(&ts, NULL);
  }
  pthread_mutex_lock(&s->mu);
  s->stats_went_back = back;
  s->polls = polls;
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* Waits until n more requests have completed: with each worker holding at
 * most one request acquired before the last flip, N_WORKERS + 1 of them
 * include one served by the version now live, however slow the build. */
static void wait_progress(shared *s, int n) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 120;
  pthread_mutex_lock(&s->mu);
  int target = s->done + n, rc = 0;
  while (s->done < target && rc == 0)
    rc = pthread_cond_timedwait(&s->progress, &s->mu, &deadline);
  int done = s->done;
  pthread_mutex_unlock(&s->mu);
  if (done < target) fail_msg("no progress: %d of %d requests", done, target);
}

static void test_concurrent_swaps(void **state) {
  (void)state;
  shared s;
  memset(&s, 0, sizeof s);
  pthread_mutex_init(&s.mu, NULL);
  pthread_cond_init(&s.progress, NULL);
  pthread_t th[N_WORKERS + 1];
  for (int i = 0; i < N_WORKERS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, worker, &s), 0);
  assert_int_equal(pthread_create(&th[N_WORKERS], NULL, watcher, &s), 0);

  double t0 = now_s();
  int swaps = 0, rollbacks = 0;
  for (int round = 0; round < 12; round++) {
    wait_progress(&s, N_WORKERS + 1); /* requests run on this version */
    r1d_swap_result res;
    r1d_error err = {0};
    if (round % 3 == 2) {
      int rc = r1d_versions_rollback(F.vs, 0, &res, &err);
      if (rc) fail_msg("rollback: %s", err.msg);
      rollbacks++;
    } else {
      swap_to(round % 2 ? F.dir_a : F.dir_b, 0, &res);
      swaps++;
    }
    assert_int_equal(res.aborted, 0);
    assert_true(res.new_version != res.old_version);
    assert_int_equal(live_id(), res.new_version);
    r1d_versions_reap(F.vs);
  }
  wait_progress(&s, N_WORKERS + 1);
  pthread_mutex_lock(&s.mu);
  s.stop = 1;
  pthread_mutex_unlock(&s.mu);
  for (int i = 0; i <= N_WORKERS; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);
  double took = now_s() - t0;

  assert_int_equal(s.submit_failed, 0);
  assert_int_equal(s.bad_finish, 0);
  assert_int_equal(s.bad_version, 0);
  assert_int_equal(s.stats_went_back, 0);
  assert_true(s.polls > 0);
  assert_true(s.done >= N_WORKERS);
  int versions_used = 0;
  for (int i = 0; i < 64; i++)
    versions_used += s.seen_by_version[i] > 0;
  assert_int_equal(versions_used, swaps + 1); /* each served some */
  uint64_t n_swaps;
  double secs;
  r1d_versions_swap_totals(F.vs, &n_swaps, &secs);
  assert_int_equal(n_swaps, (uint64_t)(swaps + rollbacks));

  /* every request is accounted for in the counters, once each engine has
   * published the step that finished its last request */
  r1d_versions_reap(F.vs);
  r1d_version_info l[MAX_LIST];
  int n = list(l);
  for (int i = 0; i < n; i++) {
    r1d_version *v = r1d_versions_acquire_id(F.vs, l[i].id);
    assert_non_null(v);
    r1d_engine_wait_idle(r1d_version_engine(v));
    r1d_versions_release(F.vs, v);
  }
  r1d_engine_stats st;
  r1d_versions_stats(F.vs, &st);
  assert_int_equal(r1d_versions_reap(F.vs), 0);
  r1d_engine_stats st2;
  r1d_versions_stats(F.vs, &st2);
  assert_int_equal(st.generated_tokens, (uint64_t)s.done * 4);
  assert_int_equal(st2.generated_tokens, st.generated_tokens);
  assert_int_equal(st2.requests, 0);

  /* only live (+ previous) remain, held by nobody */
  n = list(l);
  assert_true(n >= 1 && n <= 2);
  int live = 0, prev = 0;
  for (int i = 0; i < n; i++) {
    assert_int_equal(l[i].holders, 0);
    assert_int_equal(l[i].requests, 0);
    live += l[i].state == R1D_VERSION_LIVE;
    prev += l[i].state == R1D_VERSION_PREVIOUS;
  }
  assert_int_equal(live, 1);
  assert_int_equal(live + prev, n);
  print_message("concurrency: %d requests over %d versions, %d swaps + %d "
                "rollbacks, %llu stats polls, %.2f s\n",
                s.done, versions_used, swaps, rollbacks,
                (unsigned long long)s.polls, took);
  pthread_cond_destroy(&s.progress);
  pthread_mutex_destroy(&s.mu);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_create, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stage_promote, setup, teardown),
      cmocka_unit_test_setup_teardown(test_in_flight_finishes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_abort_and_swap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_chain, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_and_discard, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_swaps, setup, teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
