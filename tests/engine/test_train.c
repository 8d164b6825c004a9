/* test_train.c - the model's training pass (engine/model/train.h) on tiny
 * random Qwen2 (q/k/v biases, GQA 2, untied head) and Llama (GQA 2, tied
 * head) models made with r1d_model_init_dir and shrunk to 2 layers, hidden
 * 32, so every check runs in well under a second.
 *
 *  1. the training forward's logits equal r1d_model_forward's (all logits)
 *     within 1e-4, and the tensor table names and lays out every tensor;
 *  2. central finite differences of the loss agree with the backward for 3
 *     random elements and the largest-gradient element of EVERY tensor, and
 *     along one random direction over all parameters at once;
 *  3. a second backward doubles the gradients, grad_scale scales them, and
 *     ignored trailing targets change nothing (vs the shorter sequence);
 *  4. AdamW steps (rl/optim.h) on a fixed batch lower the loss every step;
 *  5. bad input fails with a status code and a message.
 * Before 2-4 the parameters are re-randomised (norms around 1, biases
 * non-zero, matrices of std ~0.5/sqrt(fan_in)) so that no term of the
 * gradient hides behind a unit norm weight or a zero bias. */
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
#include "engine/model/train.h"
#include "kernels/cpu/cpu_backend.h"
#include "rl/optim.h"

#define N_TOK 40   /* tokens of the test batch: two logit chunks */
#define MAX_TOK 44 /* the plan's capacity */
#define LOGIT_TOL 1e-4
/* Finite differences: central, fp32 loss, step FD_H. A gradient g passes
 * against the difference d when |g - d| <= FD_RTOL * max(|g|, |d|) +
 * FD_ATOL. The noise of an fp32 loss near 5.6 over 2h is ~3e-5. */
#define FD_H 1e-2f
#define FD_RTOL 5e-2
#define FD_ATOL 1e-4

typedef struct tiny {
  char dir[64];
  r1d_backend be;
  r1d_model *m;
  r1d_train_model *tm;
  r1d_train_plan *plan;
  int32_t ids[N_TOK], targets[N_TOK];
} tiny;

static uint64_t lcg_next(uint64_t *s) {
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return *s >> 33;
}

static double uniform(uint64_t *s) { /* [-1, 1) */
  return (double)lcg_next(s) / (double)(1ULL << 31) * 2.0 - 1.0;
}

static void remove_dir(const char *dir) {
  const char *files[] = {"config.json", "generation_config.json",
                         "model.safetensors", "tokenizer.json",
                         "tokenizer_config.json"};
  char path[256];
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
}

static int setup(void **state, r1d_arch arch) {
  tiny *t = calloc(1, sizeof *t);
  if (!t) return -1;
  r1d_error err = {0};
  r1d_config c;
  if (r1d_model_preset(arch, "tiny", &c, &err)) return -1;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.tie_word_embeddings = arch == R1D_ARCH_LLAMA;
  if (arch == R1D_ARCH_LLAMA) c.rope_theta = 500000.0f;
  snprintf(t->dir, sizeof t->dir, "/tmp/r1d-train-XXXXXX");
  if (!mkdtemp(t->dir)) return -1;
  r1d_cpu_backend_init(&t->be, 0);
  if (r1d_model_init_dir(t->dir, &c, arch == R1D_ARCH_LLAMA ? 7 : 3, &err) ||
      r1d_model_load(t->dir, &t->be, &t->m, &err) ||
      r1d_train_model_create(t->m, &t->tm, &err) ||
      r1d_train_plan_create(t->tm, MAX_TOK, 0, &t->plan, &err)) {
    print_error("setup: %s\n", err.msg);
    return -1;
  }
  /* ids random; targets the next token, the first 5 ("prompt") and the
   * last position ignored */
  uint64_t s = 12345;
  for (int i = 0; i < N_TOK; i++)
    t->ids[i] = (int32_t)(lcg_next(&s) % (uint64_t)c.vocab_size);
  for (int i = 0; i < N_TOK; i++)
    t->targets[i] = i < 5 || i == N_TOK - 1 ? -1 : t->ids[i + 1];
  *state = t;
  return 0;
}

static int setup_qwen2(void **state) {
  return setup(state, R1D_ARCH_QWEN2);
}
static int setup_llama(void **state) {
  return setup(state, R1D_ARCH_LLAMA);
}

static int teardown(void **state) {
  tiny *t = *state;
  r1d_train_plan_free(t->plan);
  r1d_train_model_free(t->tm);
  r1d_model_free(t->m);
  r1d_cpu_backend_destroy(&t->be);
  remove_dir(t->dir);
  free(t);
  return 0;
}

/* Re-randomises every parameter (see the top of the file). */
static void perturb(r1d_train_model *tm, uint64_t seed) {
  uint64_t s = seed;
  for (int i = 0; i < tm->n_tensors; i++) {
    r1d_train_tensor *tt = &tm->tensors[i];
    int is_norm = strstr(tt->name, "norm") != NULL;
    double a = tt->ndim == 2 ? 0.5 * sqrt(3.0 / (double)tt->shape[1]) : 0.2;
    for (size_t j = 0; j < tt->n; j++)
      tt->param[j] = (float)((is_norm ? 1.0 : 0.0) + a * uniform(&s));
  }
}

static float loss_of(tiny *t, const int32_t *ids, const int32_t *targets,
                     int n) {
  float loss = NAN;
  r1d_error err = {0};
  int rc = r1d_train_forward(t->tm, t->plan, ids, targets, n, &loss, &err);
  if (rc) print_error("forward: %s\n", err.msg);
  assert_int_equal(rc, 0);
  return loss;
}

static void grads_of(tiny *t, float grad_scale) {
  r1d_error err = {0};
  int rc = r1d_train_backward(t->tm, t->plan, grad_scale, &err);
  if (rc) print_error("backward: %s\n", err.msg);
  assert_int_equal(rc, 0);
}

/* ---- 1: forward against inference, the tensor table ---- */

static void test_forward_matches_inference(void **state) {
  tiny *t = *state;
  const r1d_config *c = &t->m->cfg;
  r1d_error err = {0};
  float loss = loss_of(t, t->ids, t->targets, N_TOK);
  assert_true(isfinite(loss) && loss > 0.0f);

  r1d_kv_cache *kv;
  assert_int_equal(r1d_kv_cache_create(t->m, N_TOK, &kv), 0);
  float *logits = malloc((size_t)N_TOK * c->vocab_size * sizeof(float));
  assert_non_null(logits);
  assert_int_equal(r1d_model_forward(t->m, kv, t->ids, N_TOK, 1, logits, &err),
                   0);
  double worst = 0.0;
  for (size_t i = 0; i < (size_t)N_TOK * c->vocab_size; i++) {
    double d = fabs((double)logits[i] - t->plan->logits[i]);
    if (d > worst) worst = d;
  }
  print_message("  logits: max |train - inference| = %.3g (tol %g)\n", worst,
                LOGIT_TOL);
  assert_true(worst <= LOGIT_TOL);

  /* the loss is the mean -log softmax at the counted targets */
  double sum = 0.0;
  int counted = 0;
  for (int i = 0; i < N_TOK; i++) {
    if (t->targets[i] < 0) continue;
    const float *x = logits + (size_t)i * c->vocab_size;
    double mx = x[0], s = 0.0;
    for (int j = 1; j < c->vocab_size; j++)
      if (x[j] > mx) mx = x[j];
    for (int j = 0; j < c->vocab_size; j++)
      s += exp(x[j] - mx);
    sum += mx + log(s) - x[t->targets[i]];
    counted++;
  }
  assert_true(fabs(sum / counted - loss) < 1e-5);
  free(logits);
  r1d_kv_cache_free(kv);

  /* the table: every tensor of the model, aligned, copied */
  r1d_train_model *tm = t->tm;
  int expected =
      1 + c->num_layers * (9 + 3 * c->qkv_bias) + 1 + !c->tie_word_embeddings;
  assert_int_equal(tm->n_tensors, expected);
  size_t total = 0;
  for (int i = 0; i < tm->n_tensors; i++) {
    const r1d_train_tensor *tt = &tm->tensors[i];
    assert_int_equal((uintptr_t)tt->param % 64, 0);
    assert_int_equal((uintptr_t)tt->grad % 64, 0);
    assert_ptr_equal(tt->grad - tm->grads, tt->param - tm->params);
    total += tt->n;
  }
  assert_int_equal(total, tm->n_params);
  assert_int_equal(total, (size_t)r1d_config_param_count(c));
  r1d_train_tensor *emb = r1d_train_find(tm, "model.embed_tokens.weight");
  assert_non_null(emb);
  assert_ptr_equal(emb->param, tm->param.embed);
  assert_memory_equal(emb->param, t->m->w.embed, emb->n * sizeof(float));
  r1d_train_tensor *head = r1d_train_find(tm, "lm_head.weight");
  if (c->tie_word_embeddings) {
    assert_null(head);
    assert_ptr_equal(tm->param.lm_head, tm->param.embed);
    assert_ptr_equal(tm->grad.lm_head, tm->grad.embed);
  } else {
    assert_non_null(head);
    assert_ptr_equal(head->grad, tm->grad.lm_head);
  }
  r1d_train_tensor *qb =
      r1d_train_find(tm, "model.layers.1.self_attn.q_proj.bias");
  if (c->qkv_bias) {
    assert_non_null(qb);
    assert_ptr_equal(qb->grad, tm->grad.layers[1].q_b);
  } else {
    assert_null(qb);
    assert_null(tm->grad.layers[1].q_b);
  }
  r1d_train_tensor *dn =
      r1d_train_find(tm, "model.layers.1.mlp.down_proj.weight");
  assert_non_null(dn);
  assert_int_equal(dn->shape[0], c->hidden_size);
  assert_int_equal(dn->shape[1], c->intermediate_size);

  /* the parameter view writes a checkpoint that loads back */
  char ckpt[96];
  snprintf(ckpt, sizeof ckpt, "%s/ckpt", t->dir);
  assert_int_equal(r1d_weights_save(ckpt, c, &tm->param, 0, &err), 0);
  r1d_weights back;
  assert_int_equal(r1d_weights_load(ckpt, c, &back, &err), 0);
  assert_memory_equal(back.storage, t->m->w.storage,
                      back.n_floats * sizeof(float));
  r1d_weights_free(&back);
  char path[128];
  snprintf(path, sizeof path, "%s/model.safetensors", ckpt);
  unlink(path);
  rmdir(ckpt);

  r1d_optim_tensor *ot;
  size_t n_ot;
  assert_int_equal(r1d_train_optim_tensors(tm, &ot, &n_ot, &err), 0);
  assert_int_equal(n_ot, (size_t)tm->n_tensors);
  for (size_t i = 0; i < n_ot; i++)
    assert_int_equal(ot[i].decay, strstr(ot[i].name, "norm") == NULL &&
                                      strstr(ot[i].name, ".bias") == NULL);
  free(ot);
}

/* ---- 2: finite differences ---- */

static int fd_close(double g, double d) {
  double scale = fabs(g) > fabs(d) ? fabs(g) : fabs(d);
  return fabs(g - d) <= FD_RTOL * scale + FD_ATOL;
}

static void test_gradient_finite_differences(void **state) {
  tiny *t = *state;
  r1d_train_model *tm = t->tm;
  perturb(tm, 99);
  r1d_train_zero_grad(tm);
  loss_of(t, t->ids, t->targets, N_TOK);
  grads_of(t, 1.0f);

  uint64_t s = 777;
  int checked = 0, failed = 0, small = 0;
  double worst_rel = 0.0;
  for (int ti = 0; ti < tm->n_tensors; ti++) {
    r1d_train_tensor *tt = &tm->tensors[ti];
    size_t picks[4];
    size_t big = 0;
    for (size_t j = 1; j < tt->n; j++)
      if (fabsf(tt->grad[j]) > fabsf(tt->grad[big])) big = j;
    picks[0] = big;
    for (int r = 1; r < 4; r++)
      picks[r] = (size_t)(lcg_next(&s) % tt->n);
    for (int r = 0; r < 4; r++) {
      float *p = &tt->param[picks[r]], saved = *p;
      *p = saved + FD_H;
      double lp = loss_of(t, t->ids, t->targets, N_TOK);
      *p = saved - FD_H;
      double lm = loss_of(t, t->ids, t->targets, N_TOK);
      *p = saved;
      double d = (lp - lm) / (2.0 * FD_H), g = tt->grad[picks[r]];
      checked++;
      double rel = fabs(g - d) / (fabs(g) + fabs(d) + 1e-12);
      if (fabs(g) > 1e-3 && rel > worst_rel) worst_rel = rel;
      if (fabs(g) < 2e-3 && fabs(d) < 2e-3) small++;
      if (!fd_close(g, d)) {
        failed++;
        print_error("%s[%zu]: grad %.7g, finite difference %.7g\n", tt->name,
                    picks[r], g, d);
      }
    }
    if (tt->grad[big] == 0.0f) { /* every tensor gets a gradient */
      failed++;
      print_error("%s: all gradients are 0\n", tt->name);
    }
  }
  print_message("  finite differences: %d elements of %d tensors, %d failed; "
                "worst relative error where |g| > 1e-3: %.3g (tol rel %g + "
                "abs %g, h %g); %d with |g|, |fd| < 2e-3\n",
                checked, tm->n_tensors, failed, worst_rel, FD_RTOL, FD_ATOL,
                (double)FD_H, small);
  assert_int_equal(failed, 0);

  /* one random direction v over all parameters: <g, v> against
   * (L(p + h v) - L(p - h v)) / 2h, v of unit norm per element scale */
  float *saved = malloc(tm->n_floats * sizeof(float));
  float *dir = malloc(tm->n_floats * sizeof(float));
  assert_non_null(saved);
  assert_non_null(dir);
  memcpy(saved, tm->params, tm->n_floats * sizeof(float));
  double gv = 0.0, vv = 0.0;
  for (size_t i = 0; i < tm->n_floats; i++) {
    dir[i] = (float)uniform(&s);
    gv += (double)tm->grads[i] * dir[i];
    vv += (double)dir[i] * dir[i];
  }
  float h = (float)(FD_H / sqrt(vv)) * 10.0f; /* a step of norm 0.1 */
  for (size_t i = 0; i < tm->n_floats; i++)
    tm->params[i] = saved[i] + h * dir[i];
  double lp = loss_of(t, t->ids, t->targets, N_TOK);
  for (size_t i = 0; i < tm->n_floats; i++)
    tm->params[i] = saved[i] - h * dir[i];
  double lm = loss_of(t, t->ids, t->targets, N_TOK);
  memcpy(tm->params, saved, tm->n_floats * sizeof(float));
  double d = (lp - lm) / (2.0 * h);
  print_message("  direction: <grad, v> %.7g, finite difference %.7g\n", gv, d);
  assert_true(fabs(gv - d) <= FD_RTOL * fabs(d) + FD_ATOL);
  free(saved);
  free(dir);
}

/* ---- 3: accumulation, grad_scale, ignored targets ---- */

static double max_abs(const float *x, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++)
    if (fabs(x[i]) > m) m = fabs(x[i]);
  return m;
}

static void test_accumulation_and_ignored(void **state) {
  tiny *t = *state;
  r1d_train_model *tm = t->tm;
  size_t nf = tm->n_floats;
  perturb(tm, 5);
  float *g1 = malloc(nf * sizeof(float));
  assert_non_null(g1);

  r1d_train_zero_grad(tm);
  float loss = loss_of(t, t->ids, t->targets, N_TOK);
  grads_of(t, 1.0f);
  memcpy(g1, tm->grads, nf * sizeof(float));
  double scale = max_abs(g1, nf);
  assert_true(scale > 0.0);

  /* a second backward of the same forward adds the same again */
  grads_of(t, 1.0f);
  for (size_t i = 0; i < nf; i++)
    assert_true(fabs(tm->grads[i] - 2.0 * g1[i]) <= 1e-6 * scale);

  /* grad_scale multiplies the gradient */
  r1d_train_zero_grad(tm);
  grads_of(t, 0.25f);
  for (size_t i = 0; i < nf; i++)
    assert_true(fabs(tm->grads[i] - 0.25 * g1[i]) <= 1e-6 * scale);

  /* ignoring the last 4 targets equals dropping those tokens: the causal
   * model lets no earlier position see them, and ignored rows add nothing */
  int32_t targets[N_TOK];
  memcpy(targets, t->targets, sizeof targets);
  for (int i = N_TOK - 4; i < N_TOK; i++)
    targets[i] = -1;
  r1d_train_zero_grad(tm);
  float loss_long = loss_of(t, t->ids, targets, N_TOK);
  grads_of(t, 1.0f);
  memcpy(g1, tm->grads, nf * sizeof(float));
  r1d_train_zero_grad(tm);
  float loss_short = loss_of(t, t->ids, targets, N_TOK - 4);
  grads_of(t, 1.0f);
  assert_true(fabsf(loss_long - loss_short) <= 1e-6f * fabsf(loss_short));
  assert_true(loss_long != loss); /* four fewer counted targets */
  scale = max_abs(g1, nf);
  for (size_t i = 0; i < nf; i++)
    assert_true(fabs(tm->grads[i] - g1[i]) <= 1e-5 * scale);
  free(g1);
}

/* Two documents packed into one call compute what two separate calls do:
 * the same logits row for row, the counted-weighted mean loss, and the
 * gradient (c1 g1 + c2 g2) / (c1 + c2) of the two mean losses. */
static void test_packed_documents(void **state) {
  tiny *t = *state;
  r1d_train_model *tm = t->tm;
  size_t nf = tm->n_floats;
  int vocab = tm->cfg.vocab_size;
  enum { LEN_A = 15, LEN_B = N_TOK - LEN_A };
  perturb(tm, 6);
  int32_t targets[N_TOK];
  memcpy(targets, t->targets, sizeof targets);
  targets[LEN_A - 1] = -1; /* no target crosses into the next document */
  targets[N_TOK - 1] = -1;
  float *g_sep = calloc(nf, sizeof(float));
  float *logits_sep = malloc((size_t)N_TOK * vocab * sizeof(float));
  assert_non_null(g_sep);
  assert_non_null(logits_sep);

  /* separately: A then B, each the mean over its counted targets */
  int counted_a = 0, counted_b = 0;
  for (int i = 0; i < N_TOK; i++) {
    if (targets[i] < 0) continue;
    if (i < LEN_A)
      counted_a++;
    else
      counted_b++;
  }
  r1d_train_zero_grad(tm);
  float loss_a = loss_of(t, t->ids, targets, LEN_A);
  memcpy(logits_sep, t->plan->logits, (size_t)LEN_A * vocab * sizeof(float));
  grads_of(t, (float)counted_a / (counted_a + counted_b));
  float loss_b = loss_of(t, t->ids + LEN_A, targets + LEN_A, LEN_B);
  memcpy(logits_sep + (size_t)LEN_A * vocab, t->plan->logits,
         (size_t)LEN_B * vocab * sizeof(float));
  grads_of(t, (float)counted_b / (counted_a + counted_b));
  memcpy(g_sep, tm->grads, nf * sizeof(float));

  /* packed */
  int lens[2] = {LEN_A, LEN_B};
  float loss = NAN;
  r1d_error err = {0};
  r1d_train_zero_grad(tm);
  assert_int_equal(r1d_train_forward_docs(tm, t->plan, t->ids, targets, N_TOK,
                                          lens, 2, &loss, &err),
                   0);
  double want = (loss_a * counted_a + loss_b * counted_b) /
                (double)(counted_a + counted_b);
  print_message("  packed loss %.7f, separate %.7f and %.7f (want %.7f)\n",
                loss, loss_a, loss_b, want);
  assert_true(fabs(loss - want) <= 1e-6 * fabs(want));
  double lscale = max_abs(logits_sep, (size_t)N_TOK * vocab);
  for (size_t i = 0; i < (size_t)N_TOK * vocab; i++)
    assert_true(fabs(t->plan->logits[i] - logits_sep[i]) <= 1e-5 * lscale);
  grads_of(t, 1.0f);
  double scale = max_abs(g_sep, nf);
  assert_true(scale > 0.0);
  for (size_t i = 0; i < nf; i++)
    assert_true(fabs(tm->grads[i] - g_sep[i]) <= 1e-5 * scale);

  /* the unpacked call differs: B's tokens then see A */
  float loss_joined = loss_of(t, t->ids, targets, N_TOK);
  assert_true(fabsf(loss_joined - loss) > 1e-6f * fabsf(loss));

  /* lengths must cover the tokens exactly */
  int bad[2] = {LEN_A, LEN_B - 1};
  assert_int_equal(r1d_train_forward_docs(tm, t->plan, t->ids, targets, N_TOK,
                                          bad, 2, &loss, &err),
                   R1D_EINVAL);
  assert_non_null(strstr(err.msg, "sum to"));
  int zero[2] = {N_TOK, 0};
  assert_int_equal(r1d_train_forward_docs(tm, t->plan, t->ids, targets, N_TOK,
                                          zero, 2, &loss, &err),
                   R1D_EINVAL);
  free(g_sep);
  free(logits_sep);
}

/* ---- recomputation: the same bits from a smaller plan ---- */

static void test_recompute_same_gradients(void **state) {
  tiny *t = *state;
  r1d_train_model *tm = t->tm;
  size_t nf = tm->n_floats;
  perturb(tm, 8);
  int32_t targets[N_TOK];
  memcpy(targets, t->targets, sizeof targets);
  targets[9] = -1;
  int lens[3] = {10, 7, N_TOK - 17};
  r1d_error err = {0};
  float loss = NAN, loss_rc = NAN;
  r1d_train_zero_grad(tm);
  assert_int_equal(r1d_train_forward_docs(tm, t->plan, t->ids, targets, N_TOK,
                                          lens, 3, &loss, &err),
                   0);
  assert_int_equal(r1d_train_backward(tm, t->plan, 0.5f, &err), 0);
  float *g = malloc(nf * sizeof(float));
  assert_non_null(g);
  memcpy(g, tm->grads, nf * sizeof(float));

  r1d_train_plan *rp = NULL;
  assert_int_equal(r1d_train_plan_create(tm, MAX_TOK, 1, &rp, &err), 0);
  print_message("  plan %zu bytes, with recomputation %zu (%d layers)\n",
                t->plan->bytes, rp->bytes, tm->cfg.num_layers);
  assert_true(rp->bytes < t->plan->bytes);
  assert_true(rp->bytes >=
              r1d_train_plan_bytes_per_token(&tm->cfg, 1) * MAX_TOK);
  assert_true(r1d_train_plan_bytes_per_token(&tm->cfg, 1) <
              r1d_train_plan_bytes_per_token(&tm->cfg, 0));
  r1d_train_zero_grad(tm);
  assert_int_equal(r1d_train_forward_docs(tm, rp, t->ids, targets, N_TOK, lens,
                                          3, &loss_rc, &err),
                   0);
  assert_int_equal(r1d_train_backward(tm, rp, 0.5f, &err), 0);
  assert_memory_equal(&loss, &loss_rc, sizeof loss);
  assert_memory_equal(g, tm->grads, nf * sizeof(float));
  /* a second backward of the same forward (its activations rebuilt again)
   * adds the same again; BLAS adds into C in its own blocks, so not bit for
   * bit */
  assert_int_equal(r1d_train_backward(tm, rp, 0.5f, &err), 0);
  double scale = max_abs(g, nf);
  for (size_t i = 0; i < nf; i++)
    assert_true(fabs(tm->grads[i] - 2.0 * g[i]) <= 1e-6 * scale);
  r1d_train_plan_free(rp);
  free(g);
}

/* ---- 4: AdamW lowers the loss ---- */

static void test_adamw_lowers_loss(void **state) {
  tiny *t = *state;
  r1d_train_model *tm = t->tm;
  r1d_error err = {0};
  perturb(tm, 11);
  r1d_optim_tensor *ot;
  size_t n_ot;
  assert_int_equal(r1d_train_optim_tensors(tm, &ot, &n_ot, &err), 0);
  r1d_adamw_config cfg;
  r1d_adamw_config_default(&cfg);
  r1d_optim *opt;
  int rc = r1d_optim_create(&cfg, ot, n_ot, &opt, &err);
  if (rc) print_error("optim: %s\n", err.msg);
  assert_int_equal(rc, 0);
  float prev = INFINITY, first = 0.0f;
  for (int step = 0; step < 8; step++) {
    r1d_train_zero_grad(tm);
    float loss = loss_of(t, t->ids, t->targets, N_TOK);
    if (step == 0) first = loss;
    print_message("  step %d loss %.6f\n", step, (double)loss);
    assert_true(loss < prev);
    prev = loss;
    grads_of(t, 1.0f);
    assert_int_equal(r1d_optim_step(opt, 1e-2, &err), 0);
  }
  assert_true(prev < first - 0.1f);
  r1d_optim_destroy(opt);
  free(ot);
}

/* ---- 5: bad input ---- */

static void test_bad_input(void **state) {
  tiny *t = *state;
  r1d_error err = {0};
  float loss;
  int32_t ids[MAX_TOK + 1] = {0}, targets[MAX_TOK + 1];
  int vocab = t->tm->cfg.vocab_size;
  for (int i = 0; i <= MAX_TOK; i++)
    targets[i] = 1;

  /* a fresh plan has nothing to differentiate */
  r1d_train_plan *plan;
  assert_int_equal(r1d_train_plan_create(t->tm, 4, 0, &plan, &err), 0);
  assert_int_equal(r1d_train_backward(t->tm, plan, 1.0f, &err), R1D_ESTATE);
  assert_non_null(strstr(err.msg, "no forward"));
  r1d_train_plan_free(plan);
  assert_int_equal(r1d_train_plan_create(t->tm, 0, 0, &plan, &err), R1D_EINVAL);
  assert_null(plan);

  assert_int_equal(
      r1d_train_forward(t->tm, t->plan, ids, targets, MAX_TOK + 1, &loss, &err),
      R1D_ERANGE);
  assert_non_null(strstr(err.msg, "exceed"));
  assert_int_equal(
      r1d_train_forward(t->tm, t->plan, ids, targets, 0, &loss, &err),
      R1D_EINVAL);
  ids[3] = vocab;
  assert_int_equal(
      r1d_train_forward(t->tm, t->plan, ids, targets, 8, &loss, &err),
      R1D_EINVAL);
  assert_non_null(strstr(err.msg, "token id"));
  ids[3] = -2;
  assert_int_equal(
      r1d_train_forward(t->tm, t->plan, ids, targets, 8, &loss, &err),
      R1D_EINVAL);
  ids[3] = 0;
  targets[2] = vocab;
  assert_int_equal(
      r1d_train_forward(t->tm, t->plan, ids, targets, 8, &loss, &err),
      R1D_EINVAL);
  assert_non_null(strstr(err.msg, "target"));
  targets[2] = -5;
  assert_int_equal(
      r1d_train_forward(t->tm, t->plan, ids, targets, 8, &loss, &err),
      R1D_EINVAL);
  for (int i = 0; i < 8; i++)
    targets[i] = -1;
  assert_int_equal(
      r1d_train_forward(t->tm, t->plan, ids, targets, 8, &loss, &err),
      R1D_EINVAL);
  assert_non_null(strstr(err.msg, "ignored"));

  /* a plan of another model */
  r1d_train_model other = *t->tm;
  assert_int_equal(
      r1d_train_forward(&other, t->plan, t->ids, t->targets, 8, &loss, &err),
      R1D_EINVAL);
  assert_int_equal(r1d_train_backward(&other, t->plan, 1.0f, &err), R1D_EINVAL);
  assert_non_null(strstr(err.msg, "another model"));

  /* still usable afterwards; a non-finite scale is refused */
  loss_of(t, t->ids, t->targets, N_TOK);
  assert_int_equal(r1d_train_backward(t->tm, t->plan, NAN, &err), R1D_EINVAL);

  print_message("  plan: %zu bytes per token (%zu bytes for %d tokens)\n",
                r1d_train_plan_bytes_per_token(&t->tm->cfg, 0), t->plan->bytes,
                MAX_TOK);
  assert_true(t->plan->bytes >=
              r1d_train_plan_bytes_per_token(&t->tm->cfg, 0) * MAX_TOK);
}

int main(void) {
  const struct CMUnitTest qwen2[] = {
      cmocka_unit_test(test_forward_matches_inference),
      cmocka_unit_test(test_gradient_finite_differences),
      cmocka_unit_test(test_accumulation_and_ignored),
      cmocka_unit_test(test_packed_documents),
      cmocka_unit_test(test_recompute_same_gradients),
      cmocka_unit_test(test_adamw_lowers_loss),
      cmocka_unit_test(test_bad_input),
  };
  const struct CMUnitTest llama[] = {
      cmocka_unit_test(test_forward_matches_inference),
      cmocka_unit_test(test_gradient_finite_differences),
      cmocka_unit_test(test_accumulation_and_ignored),
      cmocka_unit_test(test_packed_documents),
      cmocka_unit_test(test_recompute_same_gradients),
      cmocka_unit_test(test_adamw_lowers_loss),
      cmocka_unit_test(test_bad_input),
  };
  int failed =
      cmocka_run_group_tests_name("train_qwen2", qwen2, setup_qwen2, teardown);
  failed +=
      cmocka_run_group_tests_name("train_llama", llama, setup_llama, teardown);
  return failed;
}
