/* test_reward_model.c - the LM-judge reward model (rl/reward_model.h) on
 * models made with r1d_model_init_dir (the `r1d model init --preset tiny`
 * shape, and a shrunk copy for the gradient check):
 *  1. a score equals z_GOOD - z_BAD of a plain inference forward
 *     (r1d_model_forward) over the same tokens, within 1e-4; scores are
 *     the same bits alone or in a batch; thoughts before </think> are
 *     ignored;
 *  2. the Bradley-Terry loss's gradient (the weighted logprob backward of
 *     the GOOD and BAD copies) matches central finite differences on single
 *     parameters of several tensors and along a random direction over all
 *     of them;
 *  3. training on a learnable synthetic preference (chosen answers are
 *     polite: "please ... ." ; rejected ones are the same words bare) takes
 *     held-out pair accuracy from chance to > 0.9 within 40 steps; the saved
 *     folder reloads to the same scores;
 *  4. the pair loader's formats and its errors (line numbers, strict), the
 *     answer extraction and the Wilson interval. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/model/init.h"
#include "engine/model/model.h"
#include "kernels/cpu/cpu_backend.h"
#include "rl/reward_model.h"

static int rm_one(const char *p, const struct stat *sb, int flag,
                  struct FTW *f) {
  (void)sb, (void)flag, (void)f;
  return remove(p);
}

static void remove_tree(const char *dir) {
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A model folder of the tiny preset (shrink: 2 layers, hidden 32). */
static int make_model(char *dir, size_t cap, int shrink, uint64_t seed) {
  r1d_error err = {0};
  r1d_config c;
  if (r1d_model_preset(R1D_ARCH_QWEN2, "tiny", &c, &err)) return -1;
  if (shrink) {
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_layers = 2;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 8;
  }
  snprintf(dir, cap, "/tmp/r1d-rm-XXXXXX");
  if (!mkdtemp(dir)) return -1;
  if (r1d_model_init_dir(dir, &c, seed, &err)) {
    print_error("init: %s\n", err.msg);
    return -1;
  }
  return 0;
}

static r1d_reward_model *load_rm(const char *dir) {
  r1d_reward_model *rm = NULL;
  r1d_error err = {0};
  r1d_rm_options o = {.threads = 2, .max_len = 128};
  if (r1d_reward_model_load_ex(dir, &o, &rm, &err))
    fail_msg("load %s: %s", dir, err.msg);
  return rm;
}

/* ---- 1: score against inference ---------------------------------------- */

static void test_score_matches_forward(void **state) {
  (void)state;
  char dir[64];
  assert_int_equal(make_model(dir, sizeof dir, 0, 5), 0);
  r1d_reward_model *rm = load_rm(dir);
  r1d_error err = {0};
  r1d_backend be;
  r1d_cpu_backend_init(&be, 2);
  r1d_model *m = NULL;
  assert_int_equal(r1d_model_load(dir, &be, &m, &err), 0);

  json_t *msgs =
      json_loads("[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                 "{\"role\":\"user\",\"content\":\"Name a colour.\"}]",
                 0, NULL);
  json_t *p1 = json_string("What is 2+2?");
  const json_t *prompts[4] = {p1, msgs, NULL, p1};
  const char *comps[4] = {"thinking hard\n</think>\n\n4", "Blue.",
                          "plain text without a prompt", "4"};
  double s[4], one;
  assert_int_equal(r1d_reward_model_score(rm, prompts, comps, 4, s, &err), 0);
  /* the thought is not scored: same as the bare answer */
  assert_true(s[0] == s[3]);
  int V = m->cfg.vocab_size;
  float *logits = malloc((size_t)V * sizeof *logits);
  for (int i = 0; i < 4; i++) {
    r1d_ids ids = {0};
    assert_int_equal(
        r1d_reward_model_encode(rm, prompts[i], comps[i], &ids, &err), 0);
    r1d_kv_cache *kv = NULL;
    assert_int_equal(r1d_kv_cache_create(m, (int)ids.n, &kv), 0);
    assert_int_equal(
        r1d_model_forward(m, kv, ids.v, (int)ids.n, 0, logits, &err), 0);
    double want = (double)logits[r1d_reward_model_good_token(rm)] -
                  (double)logits[r1d_reward_model_bad_token(rm)];
    print_message("  score %d: %.6f, inference %.6f (%zu tokens)\n", i, s[i],
                  want, ids.n);
    assert_true(fabs(s[i] - want) <= 1e-4);
    r1d_kv_cache_free(kv);
    r1d_ids_free(&ids);
    /* alone: the same bits as in the batch */
    assert_int_equal(
        r1d_reward_model_score(rm, &prompts[i], &comps[i], 1, &one, &err), 0);
    assert_true(one == s[i]);
  }
  free(logits);
  /* a bad prompt names its index */
  json_t *bad = json_integer(3);
  const json_t *bp[2] = {p1, bad};
  assert_int_not_equal(r1d_reward_model_score(rm, bp, comps, 2, s, &err), 0);
  assert_non_null(strstr(err.msg, "input 1"));
  json_decref(bad);
  json_decref(p1);
  json_decref(msgs);
  r1d_model_free(m);
  r1d_cpu_backend_destroy(&be);
  r1d_reward_model_free(rm);
  remove_tree(dir);
}

/* ---- 2: gradient against finite differences ---------------------------- */

static uint64_t lcg(uint64_t *s) {
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return *s >> 33;
}
static double uni(uint64_t *s) { /* [-1, 1) */
  return (double)lcg(s) / (double)(1ULL << 31) * 2.0 - 1.0;
}

static double loss_of(r1d_reward_model *rm, const r1d_pref_pair *p, size_t n,
                      int backward) {
  double l = NAN;
  r1d_error err = {0};
  if (r1d_rm_loss(rm, p, n, 0.1, backward, &l, NULL, NULL, &err))
    fail_msg("loss: %s", err.msg);
  return l;
}

static void test_gradient_fd(void **state) {
  (void)state;
  char dir[64];
  assert_int_equal(make_model(dir, sizeof dir, 1, 9), 0);
  r1d_reward_model *rm = load_rm(dir);
  r1d_train_model *tm = r1d_reward_model_params(rm);
  /* random weights of a real scale, so that every term shows */
  uint64_t seed = 77;
  for (int i = 0; i < tm->n_tensors; i++) {
    r1d_train_tensor *t = &tm->tensors[i];
    int norm = strstr(t->name, "norm") != NULL;
    double a = t->ndim == 2 ? 0.5 * sqrt(3.0 / (double)t->shape[1]) : 0.2;
    for (size_t j = 0; j < t->n; j++)
      t->param[j] = (float)((norm ? 1.0 : 0.0) + a * uni(&seed));
  }
  json_t *pa = json_string("hi"), *pb = json_string("hello there");
  r1d_pref_pair pairs[3] = {{pa, "good one.", "bad"},
                            {pb, "yes please", "no"},
                            {NULL, "some text", "other words"}};
  r1d_train_zero_grad(tm);
  double l0 = loss_of(rm, pairs, 3, 1);
  assert_true(isfinite(l0));
  size_t nf = tm->n_floats;
  float *g = malloc(nf * sizeof *g);
  memcpy(g, tm->grads, nf * sizeof *g);
  const float h = 1e-2f;
  int checked = 0;
  for (int ti = 0; ti < tm->n_tensors; ti++) {
    r1d_train_tensor *t = &tm->tensors[ti];
    /* the largest-gradient element and one random element */
    size_t big = 0;
    for (size_t j = 1; j < t->n; j++)
      if (fabsf(t->grad[j]) > fabsf(t->grad[big])) big = j;
    size_t pick[2] = {big, (size_t)(lcg(&seed) % t->n)};
    for (int k = 0; k < 2; k++) {
      float *p = &t->param[pick[k]], keep = *p;
      *p = keep + h;
      double lp = loss_of(rm, pairs, 3, 0);
      *p = keep - h;
      double lm = loss_of(rm, pairs, 3, 0);
      *p = keep;
      double fd = (lp - lm) / (2.0 * h);
      double an = g[t->offset + pick[k]];
      if (fabs(fd - an) > 5e-2 * fmax(fabs(fd), fabs(an)) + 2e-4)
        fail_msg("%s[%zu]: backward %.6g, finite difference %.6g", t->name,
                 pick[k], an, fd);
      checked++;
    }
  }
  /* along one random direction over every parameter */
  float *dir_v = malloc(nf * sizeof *dir_v), *p0 = malloc(nf * sizeof *p0);
  memcpy(p0, tm->params, nf * sizeof *p0);
  double gv = 0.0;
  for (size_t j = 0; j < nf; j++) {
    dir_v[j] = (float)uni(&seed);
    gv += (double)dir_v[j] * g[j];
  }
  const float hd = 2e-3f;
  for (size_t j = 0; j < nf; j++)
    tm->params[j] = p0[j] + hd * dir_v[j];
  double lp = loss_of(rm, pairs, 3, 0);
  for (size_t j = 0; j < nf; j++)
    tm->params[j] = p0[j] - hd * dir_v[j];
  double lm = loss_of(rm, pairs, 3, 0);
  memcpy(tm->params, p0, nf * sizeof *p0);
  double fd = (lp - lm) / (2.0 * hd);
  print_message("  %d elements checked; direction: backward %.6g, finite "
                "difference %.6g\n",
                checked, gv, fd);
  assert_true(fabs(fd - gv) <= 2e-2 * fmax(fabs(fd), fabs(gv)) + 1e-3);
  free(g);
  free(dir_v);
  free(p0);
  json_decref(pa);
  json_decref(pb);
  r1d_reward_model_free(rm);
  remove_tree(dir);
}

/* ---- 3: learning a synthetic preference -------------------------------- */

static const char *const words[] = {
    "river", "stone",  "cloud", "apple", "green",  "quick",  "lamp",   "north",
    "paper", "silver", "music", "storm", "garden", "bread",  "winter", "glass",
    "horse", "candle", "ocean", "tiger", "mirror", "forest", "copper", "salt"};
enum { N_WORDS = sizeof words / sizeof words[0] };

/* Pair i: prompt "Tell me about W.", chosen "please A B C.", rejected
 * "A B C" (a polite, finished answer is preferred). */
static void synth_pairs(r1d_pref_set *set, int n, uint64_t seed) {
  uint64_t s = seed;
  for (int i = 0; i < n; i++) {
    char prompt[64], base[96], chosen[128];
    snprintf(prompt, sizeof prompt, "Tell me about %s.",
             words[lcg(&s) % N_WORDS]);
    snprintf(base, sizeof base, "%s %s %s", words[lcg(&s) % N_WORDS],
             words[lcg(&s) % N_WORDS], words[lcg(&s) % N_WORDS]);
    snprintf(chosen, sizeof chosen, "please %s.", base);
    r1d_pref_pair p = {json_string(prompt), strdup(chosen), strdup(base)};
    r1d_error err = {0};
    assert_int_equal(r1d_pref_set_push(set, &p, &err), 0);
  }
}

typedef struct curve {
  double first_eval, last_eval;
  int evals;
} curve;

static void on_metrics(void *user, const r1d_rm_metrics *m) {
  curve *c = user;
  if (!m->is_eval) return;
  if (c->evals++ == 0) c->first_eval = m->eval.accuracy;
  c->last_eval = m->eval.accuracy;
  print_message("  step %ld: eval accuracy %.3f [%.3f, %.3f], margin %.3f\n",
                m->step, m->eval.accuracy, m->eval.lo, m->eval.hi,
                m->eval.margin);
}

static void test_training_learns(void **state) {
  (void)state;
  char dir[64], out[96];
  assert_int_equal(make_model(dir, sizeof dir, 0, 21), 0);
  snprintf(out, sizeof out, "%s-out", dir);
  r1d_reward_model *rm = load_rm(dir);
  r1d_pref_set train = {0}, eval = {0};
  synth_pairs(&train, 96, 1);
  synth_pairs(&eval, 48, 2);
  r1d_rm_config cfg = {.out_dir = out,
                       .save = 1,
                       .lr = 1e-3,
                       .max_steps = 40,
                       .batch_pairs = 8,
                       .clip = 1.0,
                       .center_coef = 0.01,
                       .warmup_ratio = 0.1,
                       .seed = 3,
                       .eval_every = 10};
  curve c = {0};
  r1d_rm_hooks hooks = {.on_metrics = on_metrics, .user = &c};
  r1d_rm_result res;
  r1d_error err = {0};
  int rc = r1d_rm_train(&cfg, rm, train.pairs, train.n, eval.pairs, eval.n,
                        &hooks, &res, &err);
  if (rc) fail_msg("train: %s", err.msg);
  assert_int_equal(res.steps, 40);
  assert_true(res.has_eval);
  print_message("  eval accuracy %.3f -> %.3f [%.3f, %.3f]\n",
                res.eval_before.accuracy, res.eval_after.accuracy,
                res.eval_after.lo, res.eval_after.hi);
  assert_true(res.eval_before.accuracy < 0.8);
  assert_true(res.eval_after.accuracy > 0.9);
  assert_true(c.first_eval == res.eval_before.accuracy);

  /* the saved folder is a reward model with the same scores */
  r1d_reward_model *back = load_rm(out);
  const json_t *pr[2] = {eval.pairs[0].prompt, eval.pairs[0].prompt};
  const char *cm[2] = {eval.pairs[0].chosen, eval.pairs[0].rejected};
  double a[2], b[2];
  assert_int_equal(r1d_reward_model_score(rm, pr, cm, 2, a, &err), 0);
  assert_int_equal(r1d_reward_model_score(back, pr, cm, 2, b, &err), 0);
  assert_true(a[0] == b[0] && a[1] == b[1]);
  assert_true(a[0] > a[1]);
  r1d_reward_model_free(back);
  char path[160];
  snprintf(path, sizeof path, "%s/rm_state.json", out);
  assert_int_equal(access(path, R_OK), 0);

  r1d_pref_set_free(&train);
  r1d_pref_set_free(&eval);
  r1d_reward_model_free(rm);
  remove_tree(dir);
  remove_tree(out);
}

/* ---- 4: loader, answer, interval --------------------------------------- */

typedef struct bad_log {
  long lines[16];
  int n;
} bad_log;

static void on_bad(void *user, long line, const char *msg) {
  bad_log *b = user;
  (void)msg;
  if (b->n < 16) b->lines[b->n++] = line;
}

static void test_loader(void **state) {
  (void)state;
  char path[] = "/tmp/r1d-rm-pairs-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fputs(
      /* 1 plain */
      "{\"chosen\": \"good\", \"rejected\": \"bad\"}\n"
      /* 2 explicit string prompt */
      "{\"prompt\": \"q\", \"chosen\": \"a\", \"rejected\": \"b\"}\n"
      /* 3 conversational with prompt */
      "{\"prompt\": [{\"role\": \"user\", \"content\": \"q\"}], \"chosen\": "
      "[{\"role\": \"assistant\", \"content\": \"yes\"}], \"rejected\": "
      "[{\"role\": \"assistant\", \"content\": [{\"type\": \"text\", "
      "\"text\": \"no\"}]}]}\n"
      /* 4 implicit prompt, full conversations */
      "{\"chosen\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": "
      "\"assistant\", \"content\": \"A\"}], \"rejected\": [{\"role\": "
      "\"user\", \"content\": \"q\"}, {\"role\": \"assistant\", "
      "\"content\": \"B\"}]}\n"
      "\n"
      /* 6 bad JSON */
      "{\"chosen\": \n"
      /* 7 missing rejected */
      "{\"chosen\": \"x\"}\n"
      /* 8 mixed kinds */
      "{\"chosen\": \"x\", \"rejected\": [{\"role\": \"assistant\", "
      "\"content\": \"y\"}]}\n"
      /* 9 conversations differing before the last message */
      "{\"chosen\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": "
      "\"assistant\", \"content\": \"A\"}], \"rejected\": [{\"role\": "
      "\"user\", \"content\": \"r\"}, {\"role\": \"assistant\", "
      "\"content\": \"B\"}]}\n"
      /* 10 no preference */
      "{\"prompt\": \"q\", \"chosen\": \"same\", \"rejected\": \"same\"}\n"
      /* 11 prompt of the wrong type */
      "{\"prompt\": 5, \"chosen\": \"a\", \"rejected\": \"b\"}\n"
      /* 12 the last message is not the assistant's */
      "{\"prompt\": [{\"role\": \"user\", \"content\": \"q\"}], \"chosen\": "
      "[{\"role\": \"user\", \"content\": \"x\"}], \"rejected\": "
      "[{\"role\": \"assistant\", \"content\": \"y\"}]}\n"
      /* 13 the feedback-pairs shape */
      "{\"prompt\": [{\"role\": \"user\", \"content\": \"q\"}], \"chosen\": "
      "\"c\", \"rejected\": \"r\", \"source\": \"preferred\", \"ids\": "
      "[\"x\"]}\n",
      f);
  fclose(f);
  r1d_pref_set set = {0};
  bad_log b = {0};
  r1d_error err = {0};
  assert_int_equal(r1d_pref_load_jsonl(path, 0, on_bad, &b, &set, &err), 0);
  assert_int_equal(set.n, 5);
  assert_int_equal(set.bad_lines, 7);
  long want[] = {6, 7, 8, 9, 10, 11, 12};
  assert_int_equal(b.n, 7);
  for (int i = 0; i < 7; i++)
    assert_int_equal(b.lines[i], want[i]);
  assert_null(set.pairs[0].prompt);
  assert_string_equal(set.pairs[0].chosen, "good");
  assert_true(json_is_string(set.pairs[1].prompt));
  assert_string_equal(set.pairs[2].chosen, "yes");
  assert_string_equal(set.pairs[2].rejected, "no");
  assert_int_equal(json_array_size(set.pairs[3].prompt), 1);
  assert_string_equal(set.pairs[3].rejected, "B");
  assert_string_equal(set.pairs[4].chosen, "c");
  r1d_pref_set_free(&set);

  /* strict: the first bad line fails the load, numbered */
  assert_int_equal(r1d_pref_load_jsonl(path, 1, NULL, NULL, &set, &err),
                   R1D_EINVAL);
  assert_true(strncmp(err.msg, "6: ", 3) == 0);
  r1d_pref_set_free(&set);
  unlink(path);
  assert_int_equal(
      r1d_pref_load_jsonl("/nonexistent/x.jsonl", 0, NULL, NULL, &set, &err),
      R1D_EIO);

  /* split: seeded, disjoint, sizes */
  r1d_pref_set all = {0}, ev = {0};
  synth_pairs(&all, 20, 5);
  assert_int_equal(r1d_pref_split(&all, 0.25, 1, &ev, &err), 0);
  assert_int_equal(all.n, 15);
  assert_int_equal(ev.n, 5);
  r1d_pref_set_free(&all);
  r1d_pref_set_free(&ev);
}

static void test_answer_and_interval(void **state) {
  (void)state;
  size_t n;
  const char *a = r1d_rm_answer("a\n</think>\n\n The answer. \n", &n);
  assert_int_equal(n, strlen("The answer."));
  assert_memory_equal(a, "The answer.", n);
  a = r1d_rm_answer("<think>x</think>y</think> z", &n);
  assert_int_equal(n, 1);
  assert_int_equal(a[0], 'z');
  a = r1d_rm_answer("no thought here", &n);
  assert_int_equal(n, strlen("no thought here"));
  a = r1d_rm_answer("<think>cut short", &n);
  assert_int_equal(n, strlen("<think>cut short"));
  double lo, hi;
  r1d_wilson95(45, 50, &lo, &hi); /* 0.9: about [0.786, 0.957] */
  assert_true(fabs(lo - 0.7864) < 1e-3 && fabs(hi - 0.9565) < 1e-3);
  r1d_wilson95(0, 10, &lo, &hi);
  assert_true(lo == 0.0 && hi > 0.2 && hi < 0.35);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_answer_and_interval),
      cmocka_unit_test(test_loader),
      cmocka_unit_test(test_score_matches_forward),
      cmocka_unit_test(test_gradient_fd),
      cmocka_unit_test(test_training_learns),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
