/* test_optim.c - the optimizer pieces of training (rl/optim.h): AdamW against
 * a double-precision re-implementation of torch.optim.AdamW's formula over
 * 10 steps and against an fp32 emulation of torch's operation order (bit for
 * bit, on 1 and 3 threads), hand-checked first steps with weight decay on and
 * off, global-norm clipping, gradient scaling and zeroing, LR schedules at
 * their key steps against closed forms, rejected configs, and a save/load
 * round trip that continues bit-identically. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h> /* after the four headers it needs */

#include "common/rng.h"
#include "rl/optim.h"

/* ---- helpers ---- */

static void fill_normal(float *a, size_t n, float scale, uint64_t seed) {
  r1d_rng rng;
  r1d_rng_seed(&rng, seed);
  for (size_t i = 0; i < n; i++)
    a[i] = scale * (float)r1d_rng_normal(&rng);
}

/* |got - want| <= rel * max(|want|, floor): relative, with an absolute
 * floor for values near zero (floor 0: exact at zero). */
static void assert_close(double got, double want, double rel, double floor,
                         const char *what, size_t i) {
  double scale = fmax(fabs(want), floor);
  if (!(fabs(got - want) <= rel * scale)) {
    fprintf(stderr, "%s[%zu]: got %.17g want %.17g (rel %g)\n", what, i, got,
            want, scale > 0 ? fabs(got - want) / scale : fabs(got - want));
    fail();
  }
}

static r1d_optim *make_optim(const r1d_adamw_config *cfg,
                             const r1d_optim_tensor *t, size_t n) {
  r1d_optim *opt = NULL;
  r1d_error err = {0};
  int rc = r1d_optim_create(cfg, t, n, &opt, &err);
  if (rc) fail_msg("r1d_optim_create: %s", err.msg);
  return opt;
}

static void do_step(r1d_optim *opt, double lr) {
  r1d_error err = {0};
  int rc = r1d_optim_step(opt, lr, &err);
  if (rc) fail_msg("r1d_optim_step: %s", err.msg);
}

/* ---- a small model: three tensors, one in the no-decay group ---- */

enum { N_TENSORS = 3 };
/* The large one crosses the OpenMP threshold and the norm's chunk size. */
static const size_t tensor_sizes[N_TENSORS] = {37, 20011, 64};
static const int tensor_decay[N_TENSORS] = {1, 1, 0};

typedef struct model {
  float *param[N_TENSORS];
  float *grad[N_TENSORS];
  r1d_optim_tensor list[N_TENSORS];
} model;

static void model_init(model *md, uint64_t seed) {
  static const char *names[N_TENSORS] = {
      "model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight",
      "model.layers.0.input_layernorm.weight"};
  for (int i = 0; i < N_TENSORS; i++) {
    md->param[i] = calloc(tensor_sizes[i], sizeof(float));
    md->grad[i] = calloc(tensor_sizes[i], sizeof(float));
    assert_non_null(md->param[i]);
    assert_non_null(md->grad[i]);
    fill_normal(md->param[i], tensor_sizes[i], 0.5f, seed * 31 + (uint64_t)i);
    md->list[i] = (r1d_optim_tensor){names[i], md->param[i], md->grad[i],
                                     tensor_sizes[i], tensor_decay[i]};
  }
}

static void model_copy_params(model *dst, const model *src) {
  for (int i = 0; i < N_TENSORS; i++)
    memcpy(dst->param[i], src->param[i], tensor_sizes[i] * sizeof(float));
}

static void model_free(model *md) {
  for (int i = 0; i < N_TENSORS; i++) {
    free(md->param[i]);
    free(md->grad[i]);
  }
}

/* Gradients for step `step` (1-based), the same for every caller. */
static void model_grads(model *md, long step) {
  uint64_t seed = 1000 + (uint64_t)step;
  for (int i = 0; i < N_TENSORS; i++)
    fill_normal(md->grad[i], tensor_sizes[i], 0.1f * (float)(i + 1),
                seed * 31 + (uint64_t)i);
}

static r1d_adamw_config test_config(void) {
  r1d_adamw_config cfg;
  r1d_adamw_config_default(&cfg);
  cfg.lr = 1e-2;
  cfg.weight_decay = 0.1;
  return cfg;
}

/* ---- AdamW ---- */

static void test_default_decay(void **state) {
  (void)state;
  assert_int_equal(
      r1d_optim_default_decay("model.layers.0.input_layernorm.weight"), 0);
  assert_int_equal(r1d_optim_default_decay("model.norm.weight"), 0);
  assert_int_equal(r1d_optim_default_decay("model.layers.3.q_norm.weight"), 0);
  assert_int_equal(
      r1d_optim_default_decay("model.layers.0.self_attn.q_proj.bias"), 0);
  assert_int_equal(
      r1d_optim_default_decay("model.layers.0.self_attn.q_proj.weight"), 1);
  assert_int_equal(r1d_optim_default_decay("model.embed_tokens.weight"), 1);
  assert_int_equal(r1d_optim_default_decay("lm_head.weight"), 1);
  assert_int_equal(r1d_optim_default_decay("x.bias_scale"), 1);
  assert_int_equal(r1d_optim_default_decay("bias"), 1);
}

static void test_defaults_match_torch(void **state) {
  (void)state;
  r1d_adamw_config cfg;
  r1d_adamw_config_default(&cfg);
  assert_true(cfg.lr == 1e-3);
  assert_true(cfg.beta1 == 0.9);
  assert_true(cfg.beta2 == 0.999);
  assert_true(cfg.eps == 1e-8);
  assert_true(cfg.weight_decay == 1e-2);
}

/* Step 1: m_hat = g and v_hat = g^2, so p1 = p0 * (1 - lr*wd) -
 * lr * g / (|g| + eps). */
static void first_step_case(double wd) {
  float p_decay[3] = {2.0f, -1.0f, 3.0f}, g_decay[3] = {0.5f, -2.0f, 0.0f};
  float p_plain[2] = {2.0f, 4.0f}, g_plain[2] = {-0.25f, 0.0f};
  r1d_optim_tensor t[2] = {{"w", p_decay, g_decay, 3, 1},
                           {"norm", p_plain, g_plain, 2, 0}};
  r1d_adamw_config cfg;
  r1d_adamw_config_default(&cfg);
  cfg.lr = 0.1;
  cfg.weight_decay = wd;
  r1d_optim *opt = make_optim(&cfg, t, 2);
  do_step(opt, 0.1);
  assert_int_equal(r1d_optim_step_count(opt), 1);
  double keep = 1.0 - 0.1 * wd;
  double eps = 1e-8;
  assert_close(p_decay[0], 2.0 * keep - 0.1 * 0.5 / (0.5 + eps), 1e-6, 1e-6,
               "p_decay", 0);
  assert_close(p_decay[1], -1.0 * keep + 0.1 * 2.0 / (2.0 + eps), 1e-6, 1e-6,
               "p_decay", 1);
  /* zero gradient: only the decay moves it */
  assert_true(p_decay[2] == (float)(3.0f * (float)keep));
  /* the no-decay tensor ignores wd */
  assert_close(p_plain[0], 2.0 + 0.1 * 0.25 / (0.25 + eps), 1e-6, 1e-6,
               "p_plain", 0);
  assert_true(p_plain[1] == 4.0f);
  /* the moments after one step */
  float *m, *v;
  assert_int_equal(r1d_optim_tensor_state(opt, 0, &m, &v), 0);
  assert_close(m[0], 0.1 * 0.5, 1e-6, 0, "m", 0);
  assert_close(v[1], 0.001 * 4.0, 1e-6, 0, "v", 1);
  assert_true(m[2] == 0.0f && v[2] == 0.0f);
  assert_int_equal(r1d_optim_tensor_state(opt, 2, &m, &v), R1D_ERANGE);
  r1d_optim_destroy(opt);
}

static void test_first_step_with_decay(void **state) {
  (void)state;
  first_step_case(0.5);
}

static void test_first_step_without_decay(void **state) {
  (void)state;
  first_step_case(0.0);
}

/* torch.optim.AdamW's formula in double. */
typedef struct ref_state {
  double *p, *m, *v;
} ref_state;

static void ref_adamw_step(ref_state *r, const float *g, size_t n, int decay,
                           const r1d_adamw_config *c, double lr, long t) {
  double bc1 = 1.0 - pow(c->beta1, (double)t);
  double bc2 = 1.0 - pow(c->beta2, (double)t);
  for (size_t i = 0; i < n; i++) {
    if (decay) r->p[i] *= 1.0 - lr * c->weight_decay;
    r->m[i] = c->beta1 * r->m[i] + (1.0 - c->beta1) * g[i];
    r->v[i] = c->beta2 * r->v[i] + (1.0 - c->beta2) * (double)g[i] * g[i];
    double denom = sqrt(r->v[i]) / sqrt(bc2) + c->eps;
    r->p[i] -= lr / bc1 * r->m[i] / denom;
  }
}

static void test_adamw_matches_double_reference(void **state) {
  (void)state;
  model md;
  model_init(&md, 7);
  r1d_adamw_config cfg = test_config();
  r1d_lr_schedule sched = {R1D_LR_WARMUP_COSINE, cfg.lr, 1e-3, 3, 10};
  assert_int_equal(r1d_lr_schedule_check(&sched, NULL), 0);
  ref_state ref[N_TENSORS];
  for (int i = 0; i < N_TENSORS; i++) {
    size_t n = tensor_sizes[i];
    ref[i].p = malloc(n * sizeof(double));
    ref[i].m = calloc(n, sizeof(double));
    ref[i].v = calloc(n, sizeof(double));
    assert_non_null(ref[i].p);
    assert_non_null(ref[i].m);
    assert_non_null(ref[i].v);
    for (size_t j = 0; j < n; j++)
      ref[i].p[j] = md.param[i][j];
  }
  r1d_optim *opt = make_optim(&cfg, md.list, N_TENSORS);
  for (long t = 1; t <= 10; t++) {
    /* step 0 of the schedule has lr 0 (warmup starts at 0, like HF) */
    double lr = r1d_lr_at(&sched, t - 1);
    model_grads(&md, t);
    do_step(opt, lr);
    for (int i = 0; i < N_TENSORS; i++)
      ref_adamw_step(&ref[i], md.grad[i], tensor_sizes[i], tensor_decay[i],
                     &cfg, lr, t);
  }
  for (int i = 0; i < N_TENSORS; i++) {
    float *m, *v;
    assert_int_equal(r1d_optim_tensor_state(opt, (size_t)i, &m, &v), 0);
    for (size_t j = 0; j < tensor_sizes[i]; j++) {
      assert_close(md.param[i][j], ref[i].p[j], 1e-6, 1e-2, "param", j);
      /* m cancels towards 0: error relative to the gradient scale */
      assert_close(m[j], ref[i].m[j], 1e-5, 1e-2, "m", j);
      assert_close(v[j], ref[i].v[j], 1e-5, 1e-7, "v", j);
    }
    free(ref[i].p);
    free(ref[i].m);
    free(ref[i].v);
  }
  r1d_optim_destroy(opt);
  model_free(&md);
}

/* torch's _single_tensor_adamw, op by op in fp32 (scalars from double). */
static void torch_fp32_step(float *p, const float *g, float *m, float *v,
                            size_t n, int decay, const r1d_adamw_config *c,
                            double lr, long t) {
  double bc1 = 1.0 - pow(c->beta1, (double)t);
  double bc2_sqrt = pow(1.0 - pow(c->beta2, (double)t), 0.5);
  float keep = (float)(1.0 - lr * c->weight_decay);
  float w = (float)(1.0 - c->beta1), b2 = (float)c->beta2;
  float omb2 = (float)(1.0 - c->beta2), eps = (float)c->eps;
  float nss = (float)(-(lr / bc1)), bc2s = (float)bc2_sqrt;
  for (size_t i = 0; i < n; i++) {
    if (decay && c->weight_decay != 0) p[i] = p[i] * keep; /* mul_ */
    m[i] = m[i] + w * (g[i] - m[i]);                       /* lerp_ */
    v[i] = v[i] * b2;                                      /* mul_ */
    v[i] = v[i] + omb2 * g[i] * g[i];                      /* addcmul_ */
    float denom = sqrtf(v[i]);                             /* sqrt */
    denom = denom / bc2s;                                  /* div_ */
    denom = denom + eps;                                   /* add_ */
    p[i] = p[i] + nss * m[i] / denom;                      /* addcdiv_ */
  }
}

static void run_ten_steps(model *md, int threads, float **m_out, float **v_out,
                          double *norm_out) {
  int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  r1d_adamw_config cfg = test_config();
  r1d_optim *opt = make_optim(&cfg, md->list, N_TENSORS);
  for (long t = 1; t <= 10; t++) {
    model_grads(md, t);
    norm_out[t - 1] = r1d_optim_grad_norm(opt);
    do_step(opt, cfg.lr * (double)t / 10.0);
  }
  for (int i = 0; i < N_TENSORS; i++) {
    float *m, *v;
    assert_int_equal(r1d_optim_tensor_state(opt, (size_t)i, &m, &v), 0);
    memcpy(m_out[i], m, tensor_sizes[i] * sizeof(float));
    memcpy(v_out[i], v, tensor_sizes[i] * sizeof(float));
  }
  r1d_optim_destroy(opt);
  omp_set_num_threads(saved);
}

static void test_adamw_bitwise_torch_order_any_threads(void **state) {
  (void)state;
  model one, three, emu;
  model_init(&one, 11);
  model_init(&three, 11);
  model_init(&emu, 11);
  float *m1[N_TENSORS], *v1[N_TENSORS], *m3[N_TENSORS], *v3[N_TENSORS];
  float *me[N_TENSORS], *ve[N_TENSORS];
  for (int i = 0; i < N_TENSORS; i++) {
    m1[i] = malloc(tensor_sizes[i] * sizeof(float));
    v1[i] = malloc(tensor_sizes[i] * sizeof(float));
    m3[i] = malloc(tensor_sizes[i] * sizeof(float));
    v3[i] = malloc(tensor_sizes[i] * sizeof(float));
    me[i] = calloc(tensor_sizes[i], sizeof(float));
    ve[i] = calloc(tensor_sizes[i], sizeof(float));
  }
  double norms1[10], norms3[10];
  run_ten_steps(&one, 1, m1, v1, norms1);
  run_ten_steps(&three, 3, m3, v3, norms3);
  r1d_adamw_config cfg = test_config();
  for (long t = 1; t <= 10; t++) {
    model_grads(&emu, t);
    for (int i = 0; i < N_TENSORS; i++)
      torch_fp32_step(emu.param[i], emu.grad[i], me[i], ve[i], tensor_sizes[i],
                      tensor_decay[i], &cfg, cfg.lr * (double)t / 10.0, t);
  }
  for (int t = 0; t < 10; t++)
    assert_true(norms1[t] == norms3[t]);
  for (int i = 0; i < N_TENSORS; i++) {
    size_t bytes = tensor_sizes[i] * sizeof(float);
    assert_memory_equal(one.param[i], three.param[i], bytes);
    assert_memory_equal(m1[i], m3[i], bytes);
    assert_memory_equal(v1[i], v3[i], bytes);
    assert_memory_equal(one.param[i], emu.param[i], bytes);
    assert_memory_equal(m1[i], me[i], bytes);
    assert_memory_equal(v1[i], ve[i], bytes);
    free(m1[i]);
    free(v1[i]);
    free(m3[i]);
    free(v3[i]);
    free(me[i]);
    free(ve[i]);
  }
  model_free(&one);
  model_free(&three);
  model_free(&emu);
}

/* ---- clipping, scaling, zeroing ---- */

static void test_clip_grad_norm(void **state) {
  (void)state;
  float pa[2] = {0}, ga[2] = {3.0f, 4.0f}, pb[1] = {0}, gb[1] = {12.0f};
  r1d_optim_tensor t[2] = {{"a", pa, ga, 2, 1}, {"b", pb, gb, 1, 0}};
  r1d_adamw_config cfg;
  r1d_adamw_config_default(&cfg);
  r1d_optim *opt = make_optim(&cfg, t, 2);
  assert_true(r1d_optim_grad_norm(opt) == 13.0);

  /* above max: scaled by max / (total + 1e-6) */
  double total = 0;
  assert_int_equal(r1d_optim_clip_grad_norm(opt, 10.0, &total, NULL), 0);
  assert_true(total == 13.0);
  float scale = (float)(10.0 / (13.0 + 1e-6));
  assert_true(ga[0] == 3.0f * scale && ga[1] == 4.0f * scale);
  assert_true(gb[0] == 12.0f * scale);
  assert_close(r1d_optim_grad_norm(opt), 10.0, 1e-6, 0, "clipped norm", 0);

  /* below max: a no-op, bit for bit */
  float before[3] = {ga[0], ga[1], gb[0]};
  assert_int_equal(r1d_optim_clip_grad_norm(opt, 100.0, &total, NULL), 0);
  assert_close(total, 10.0, 1e-6, 0, "norm", 0);
  assert_true(ga[0] == before[0] && ga[1] == before[1] && gb[0] == before[2]);

  /* squares summed in double: no float overflow at 1e30 */
  ga[0] = 1e30f;
  ga[1] = 1e30f;
  gb[0] = 0.0f;
  assert_close(r1d_optim_grad_norm(opt), 1e30 * sqrt(2.0), 1e-6, 0, "big", 0);

  /* non-finite: reported, grads untouched */
  r1d_error err = {0};
  ga[0] = 1.0f;
  ga[1] = INFINITY;
  gb[0] = 2.0f;
  assert_int_equal(r1d_optim_clip_grad_norm(opt, 1.0, &total, &err),
                   R1D_ERANGE);
  assert_true(isinf(total));
  assert_non_null(strstr(err.msg, "non-finite"));
  assert_true(ga[0] == 1.0f && isinf(ga[1]) && gb[0] == 2.0f);
  ga[1] = NAN;
  assert_int_equal(r1d_optim_clip_grad_norm(opt, 1.0, &total, NULL),
                   R1D_ERANGE);
  assert_true(isnan(total));
  assert_true(ga[0] == 1.0f && gb[0] == 2.0f);

  /* bad max_norm */
  ga[1] = 0.0f;
  assert_int_equal(r1d_optim_clip_grad_norm(opt, 0.0, NULL, NULL), R1D_ERANGE);
  assert_int_equal(r1d_optim_clip_grad_norm(opt, -1.0, NULL, NULL), R1D_ERANGE);
  assert_int_equal(r1d_optim_clip_grad_norm(opt, NAN, NULL, NULL), R1D_ERANGE);
  assert_true(ga[0] == 1.0f && gb[0] == 2.0f);
  r1d_optim_destroy(opt);
}

static void test_grad_norm_large_matches_naive(void **state) {
  (void)state;
  model md;
  model_init(&md, 3);
  model_grads(&md, 1);
  r1d_adamw_config cfg = test_config();
  r1d_optim *opt = make_optim(&cfg, md.list, N_TENSORS);
  double sum = 0;
  for (int i = 0; i < N_TENSORS; i++)
    for (size_t j = 0; j < tensor_sizes[i]; j++)
      sum += (double)md.grad[i][j] * md.grad[i][j];
  assert_close(r1d_optim_grad_norm(opt), sqrt(sum), 1e-12, 0, "norm", 0);
  r1d_optim_destroy(opt);
  model_free(&md);
}

static void test_scale_and_zero_grads(void **state) {
  (void)state;
  float p[3] = {0}, g[3] = {1.0f, -3.0f, 6.0f};
  r1d_optim_tensor t = {"w", p, g, 3, 1};
  r1d_adamw_config cfg;
  r1d_adamw_config_default(&cfg);
  r1d_optim *opt = make_optim(&cfg, &t, 1);
  /* accumulated over k = 4 micro-batches of summed loss */
  r1d_optim_scale_grads(opt, 1.0f / 4);
  assert_true(g[0] == 0.25f && g[1] == -0.75f && g[2] == 1.5f);
  r1d_optim_zero_grad(opt);
  assert_true(g[0] == 0.0f && g[1] == 0.0f && g[2] == 0.0f);
  assert_true(r1d_optim_grad_norm(opt) == 0.0);
  /* clipping an all-zero gradient is a no-op, not a division by zero */
  double total = -1;
  assert_int_equal(r1d_optim_clip_grad_norm(opt, 1.0, &total, NULL), 0);
  assert_true(total == 0.0 && g[0] == 0.0f);
  r1d_optim_destroy(opt);
}

/* ---- schedules ---- */

static void test_schedule_constant(void **state) {
  (void)state;
  r1d_lr_schedule s = {R1D_LR_CONSTANT, 3e-4, 0, 0, 0};
  assert_int_equal(r1d_lr_schedule_check(&s, NULL), 0);
  assert_true(r1d_lr_at(&s, 0) == 3e-4);
  assert_true(r1d_lr_at(&s, 123456) == 3e-4);
}

static void test_schedule_warmup_constant(void **state) {
  (void)state;
  r1d_lr_schedule s = {R1D_LR_WARMUP_CONSTANT, 1e-3, 0, 10, 0};
  assert_int_equal(r1d_lr_schedule_check(&s, NULL), 0);
  assert_true(r1d_lr_at(&s, 0) == 0.0);
  assert_true(r1d_lr_at(&s, -5) == 0.0);
  assert_close(r1d_lr_at(&s, 1), 1e-4, 1e-15, 0, "lr", 1);
  assert_close(r1d_lr_at(&s, 5), 5e-4, 1e-15, 0, "lr", 5);
  assert_true(r1d_lr_at(&s, 10) == 1e-3);
  assert_true(r1d_lr_at(&s, 100000) == 1e-3);
}

static void test_schedule_warmup_cosine(void **state) {
  (void)state;
  const double lr = 1e-3, min_lr = 1e-4;
  r1d_lr_schedule s = {R1D_LR_WARMUP_COSINE, lr, min_lr, 10, 110};
  assert_int_equal(r1d_lr_schedule_check(&s, NULL), 0);
  assert_true(r1d_lr_at(&s, 0) == 0.0);
  assert_close(r1d_lr_at(&s, 5), 0.5 * lr, 1e-15, 0, "lr", 5);
  /* warmup end = peak */
  assert_close(r1d_lr_at(&s, 10), lr, 1e-15, 0, "lr", 10);
  /* halfway through the decay: the midpoint of lr and min_lr */
  assert_close(r1d_lr_at(&s, 60), 0.5 * (lr + min_lr), 1e-14, 0, "lr", 60);
  /* quarter: cos(pi/4) */
  assert_close(r1d_lr_at(&s, 35),
               min_lr + (lr - min_lr) * 0.5 * (1 + sqrt(0.5)), 1e-14, 0, "lr",
               35);
  /* the last step, and past the end */
  double last = min_lr + (lr - min_lr) * 0.5 * (1 + cos(M_PI * 0.99));
  assert_close(r1d_lr_at(&s, 109), last, 1e-14, 0, "lr", 109);
  assert_true(r1d_lr_at(&s, 109) > min_lr);
  assert_close(r1d_lr_at(&s, 110), min_lr, 1e-14, 0, "lr", 110);
  assert_close(r1d_lr_at(&s, 5000), min_lr, 1e-14, 0, "lr", 5000);
  /* monotone decay after warmup */
  for (long t = 11; t < 110; t++)
    assert_true(r1d_lr_at(&s, t) < r1d_lr_at(&s, t - 1));

  /* no warmup, no floor: HF get_cosine_schedule_with_warmup */
  r1d_lr_schedule plain = {R1D_LR_WARMUP_COSINE, lr, 0.0, 0, 4};
  assert_int_equal(r1d_lr_schedule_check(&plain, NULL), 0);
  assert_true(r1d_lr_at(&plain, 0) == lr);
  assert_close(r1d_lr_at(&plain, 1), lr * 0.5 * (1 + sqrt(0.5)), 1e-15, 0, "lr",
               1);
  assert_close(r1d_lr_at(&plain, 2), 0.5 * lr, 1e-15, 0, "lr", 2);
  assert_close(r1d_lr_at(&plain, 3), lr * 0.5 * (1 - sqrt(0.5)), 1e-14, 0, "lr",
               3);
}

static void expect_bad_schedule(r1d_lr_schedule s, const char *needle) {
  r1d_error err = {0};
  int rc = r1d_lr_schedule_check(&s, &err);
  assert_true(rc < 0);
  assert_int_equal(err.code, rc);
  if (!strstr(err.msg, needle)) {
    fprintf(stderr, "message '%s' lacks '%s'\n", err.msg, needle);
    fail();
  }
}

static void test_schedule_rejects_bad(void **state) {
  (void)state;
  expect_bad_schedule((r1d_lr_schedule){R1D_LR_CONSTANT, -1e-3, 0, 0, 0}, "lr");
  expect_bad_schedule((r1d_lr_schedule){R1D_LR_CONSTANT, 0.0, 0, 0, 0}, "lr");
  expect_bad_schedule((r1d_lr_schedule){R1D_LR_CONSTANT, NAN, 0, 0, 0}, "lr");
  expect_bad_schedule((r1d_lr_schedule){R1D_LR_WARMUP_COSINE, 1e-3, 0, 20, 10},
                      "warmup_steps 20 > total_steps 10");
  expect_bad_schedule(
      (r1d_lr_schedule){R1D_LR_WARMUP_CONSTANT, 1e-3, 0, 20, 10},
      "warmup_steps 20 > total_steps 10");
  expect_bad_schedule((r1d_lr_schedule){R1D_LR_WARMUP_CONSTANT, 1e-3, 0, -1, 0},
                      "warmup_steps");
  expect_bad_schedule((r1d_lr_schedule){R1D_LR_WARMUP_COSINE, 1e-3, 0, 0, 0},
                      "total_steps");
  expect_bad_schedule(
      (r1d_lr_schedule){R1D_LR_WARMUP_COSINE, 1e-3, 2e-3, 0, 10}, "min_lr");
  expect_bad_schedule(
      (r1d_lr_schedule){R1D_LR_WARMUP_COSINE, 1e-3, -1e-5, 0, 10}, "min_lr");
  expect_bad_schedule((r1d_lr_schedule){(r1d_lr_kind)42, 1e-3, 0, 0, 10},
                      "kind");
  /* the edges that are fine */
  r1d_lr_schedule all_warmup = {R1D_LR_WARMUP_COSINE, 1e-3, 1e-3, 10, 10};
  assert_int_equal(r1d_lr_schedule_check(&all_warmup, NULL), 0);
}

static void test_adamw_rejects_bad(void **state) {
  (void)state;
  float p[2] = {0}, g[2] = {0}, q[2] = {0};
  r1d_optim_tensor good = {"w", p, g, 2, 1};
  r1d_adamw_config base;
  r1d_adamw_config_default(&base);
  const double bad_values[][5] = {
      /* lr, beta1, beta2, eps, wd */
      {-1e-3, 0.9, 0.999, 1e-8, 0.0}, {NAN, 0.9, 0.999, 1e-8, 0.0},
      {1e-3, 1.0, 0.999, 1e-8, 0.0},  {1e-3, -0.1, 0.999, 1e-8, 0.0},
      {1e-3, 0.9, 1.0, 1e-8, 0.0},    {1e-3, 0.9, 0.999, -1e-8, 0.0},
      {1e-3, 0.9, 0.999, 1e-8, -0.1}, {1e-3, 0.9, 0.999, 1e-8, INFINITY},
  };
  for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
    r1d_adamw_config c = {bad_values[i][0], bad_values[i][1], bad_values[i][2],
                          bad_values[i][3], bad_values[i][4]};
    r1d_optim *opt = (r1d_optim *)&c; /* must be reset to NULL */
    r1d_error err = {0};
    assert_int_equal(r1d_optim_create(&c, &good, 1, &opt, &err), R1D_ERANGE);
    assert_null(opt);
    assert_true(strlen(err.msg) > 0);
  }
  r1d_optim *opt = NULL;
  r1d_error err = {0};
  r1d_optim_tensor no_grad = {"w", p, NULL, 2, 1};
  assert_int_equal(r1d_optim_create(&base, &no_grad, 1, &opt, &err),
                   R1D_EINVAL);
  assert_non_null(strstr(err.msg, "NULL grad"));
  r1d_optim_tensor empty = {"w", p, g, 0, 1};
  assert_int_equal(r1d_optim_create(&base, &empty, 1, &opt, NULL), R1D_EINVAL);
  r1d_optim_tensor aliased = {"w", p, p, 2, 1};
  assert_int_equal(r1d_optim_create(&base, &aliased, 1, &opt, NULL),
                   R1D_EINVAL);
  r1d_optim_tensor shared[2] = {{"a", p, g, 2, 1}, {"b", q, g, 2, 1}};
  assert_int_equal(r1d_optim_create(&base, shared, 2, &opt, NULL), R1D_EINVAL);
  assert_int_equal(r1d_optim_create(&base, &good, 0, &opt, NULL), R1D_EINVAL);
  assert_null(opt);

  opt = make_optim(&base, &good, 1);
  assert_int_equal(r1d_optim_step(opt, -1e-3, NULL), R1D_ERANGE);
  assert_int_equal(r1d_optim_step(opt, INFINITY, NULL), R1D_ERANGE);
  assert_int_equal(r1d_optim_step_count(opt), 0);
  assert_int_equal(r1d_optim_set_step(opt, -1, NULL), R1D_ERANGE);
  r1d_adamw_config bad = base;
  bad.beta2 = 1.5;
  assert_int_equal(r1d_optim_set_config(opt, &bad, NULL), R1D_ERANGE);
  assert_true(r1d_optim_config(opt)->beta2 == 0.999);
  r1d_optim_destroy(opt);
}

/* ---- state save / load ---- */

static void test_state_round_trip_continues_bitwise(void **state) {
  (void)state;
  model a, b, c;
  model_init(&a, 5);
  model_init(&b, 99);
  model_init(&c, 99);
  r1d_adamw_config cfg = test_config();
  r1d_lr_schedule sched = {R1D_LR_WARMUP_COSINE, cfg.lr, 0.0, 2, 10};
  r1d_optim *opt_a = make_optim(&cfg, a.list, N_TENSORS);
  for (long t = 1; t <= 5; t++) {
    model_grads(&a, t);
    assert_int_equal(r1d_optim_clip_grad_norm(opt_a, 1.0, NULL, NULL), 0);
    do_step(opt_a, r1d_lr_at(&sched, t - 1));
  }
  size_t bytes = r1d_optim_state_bytes(opt_a);
  unsigned char *buf = malloc(bytes);
  assert_non_null(buf);
  r1d_error err = {0};
  assert_int_equal(r1d_optim_state_save(opt_a, buf, bytes - 1, &err),
                   R1D_ERANGE);
  assert_int_equal(r1d_optim_state_save(opt_a, buf, bytes, &err), 0);
  model_copy_params(&b, &a);
  model_copy_params(&c, &a);

  /* b resumes from the saved state; c starts fresh from the same params */
  r1d_optim *opt_b = make_optim(&cfg, b.list, N_TENSORS);
  assert_int_equal(r1d_optim_state_load(opt_b, buf, bytes, &err), 0);
  assert_int_equal(r1d_optim_step_count(opt_b), 5);
  r1d_optim *opt_c = make_optim(&cfg, c.list, N_TENSORS);
  for (long t = 6; t <= 10; t++) {
    model_grads(&a, t);
    model_grads(&b, t);
    model_grads(&c, t);
    assert_int_equal(r1d_optim_clip_grad_norm(opt_a, 1.0, NULL, NULL), 0);
    assert_int_equal(r1d_optim_clip_grad_norm(opt_b, 1.0, NULL, NULL), 0);
    assert_int_equal(r1d_optim_clip_grad_norm(opt_c, 1.0, NULL, NULL), 0);
    do_step(opt_a, r1d_lr_at(&sched, t - 1));
    do_step(opt_b, r1d_lr_at(&sched, r1d_optim_step_count(opt_b)));
    do_step(opt_c, r1d_lr_at(&sched, t - 1));
  }
  assert_int_equal(r1d_optim_step_count(opt_b), 10);
  int fresh_differs = 0;
  for (int i = 0; i < N_TENSORS; i++) {
    size_t nb = tensor_sizes[i] * sizeof(float);
    assert_memory_equal(a.param[i], b.param[i], nb);
    float *ma, *va, *mb, *vb;
    assert_int_equal(r1d_optim_tensor_state(opt_a, (size_t)i, &ma, &va), 0);
    assert_int_equal(r1d_optim_tensor_state(opt_b, (size_t)i, &mb, &vb), 0);
    assert_memory_equal(ma, mb, nb);
    assert_memory_equal(va, vb, nb);
    if (memcmp(a.param[i], c.param[i], nb) != 0) fresh_differs = 1;
  }
  /* without the state the continuation is different (the test can fail) */
  assert_true(fresh_differs);

  /* a second save of the resumed optimizer equals the original's */
  unsigned char *buf2 = malloc(bytes), *buf3 = malloc(bytes);
  assert_non_null(buf2);
  assert_non_null(buf3);
  assert_int_equal(r1d_optim_state_save(opt_a, buf2, bytes, NULL), 0);
  assert_int_equal(r1d_optim_state_save(opt_b, buf3, bytes, NULL), 0);
  assert_memory_equal(buf2, buf3, bytes);

  /* corrupt inputs are rejected and change nothing */
  memcpy(buf3, buf, bytes);
  buf3[0] ^= 1;
  assert_int_equal(r1d_optim_state_load(opt_c, buf3, bytes, &err), R1D_EFORMAT);
  assert_non_null(strstr(err.msg, "magic"));
  assert_int_equal(r1d_optim_state_load(opt_c, buf, bytes - 4, &err),
                   R1D_EFORMAT);
  assert_int_equal(r1d_optim_state_load(opt_c, buf, 10, &err), R1D_EFORMAT);
  memcpy(buf3, buf, bytes);
  buf3[8] = 7; /* version */
  assert_int_equal(r1d_optim_state_load(opt_c, buf3, bytes, &err),
                   R1D_EUNSUPPORTED);
  memcpy(buf3, buf, bytes);
  buf3[24] += 1; /* first tensor's size */
  assert_int_equal(r1d_optim_state_load(opt_c, buf3, bytes, &err), R1D_EFORMAT);
  assert_non_null(strstr(err.msg, "elements"));
  assert_int_equal(r1d_optim_step_count(opt_c), 5);

  /* an optimizer over different tensors refuses the state */
  float p1[4] = {0}, g1[4] = {0};
  r1d_optim_tensor other = {"w", p1, g1, 4, 1};
  r1d_optim *opt_d = make_optim(&cfg, &other, 1);
  assert_int_equal(r1d_optim_state_load(opt_d, buf, bytes, &err), R1D_EFORMAT);
  assert_non_null(strstr(err.msg, "tensors"));

  free(buf);
  free(buf2);
  free(buf3);
  r1d_optim_destroy(opt_a);
  r1d_optim_destroy(opt_b);
  r1d_optim_destroy(opt_c);
  r1d_optim_destroy(opt_d);
  model_free(&a);
  model_free(&b);
  model_free(&c);
}

static void test_state_alignment(void **state) {
  (void)state;
  model md;
  model_init(&md, 1);
  r1d_adamw_config cfg = test_config();
  r1d_optim *opt = make_optim(&cfg, md.list, N_TENSORS);
  assert_int_equal(r1d_optim_tensor_count(opt), N_TENSORS);
  for (size_t i = 0; i < N_TENSORS; i++) {
    float *m, *v;
    assert_int_equal(r1d_optim_tensor_state(opt, i, &m, &v), 0);
    assert_int_equal((uintptr_t)m % 64, 0);
    assert_int_equal((uintptr_t)v % 64, 0);
    for (size_t j = 0; j < tensor_sizes[i]; j++)
      assert_true(m[j] == 0.0f && v[j] == 0.0f);
  }
  r1d_optim_destroy(opt);
  model_free(&md);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_default_decay),
      cmocka_unit_test(test_defaults_match_torch),
      cmocka_unit_test(test_first_step_with_decay),
      cmocka_unit_test(test_first_step_without_decay),
      cmocka_unit_test(test_adamw_matches_double_reference),
      cmocka_unit_test(test_adamw_bitwise_torch_order_any_threads),
      cmocka_unit_test(test_clip_grad_norm),
      cmocka_unit_test(test_grad_norm_large_matches_naive),
      cmocka_unit_test(test_scale_and_zero_grads),
      cmocka_unit_test(test_schedule_constant),
      cmocka_unit_test(test_schedule_warmup_constant),
      cmocka_unit_test(test_schedule_warmup_cosine),
      cmocka_unit_test(test_schedule_rejects_bad),
      cmocka_unit_test(test_adamw_rejects_bad),
      cmocka_unit_test(test_state_round_trip_continues_bitwise),
      cmocka_unit_test(test_state_alignment),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
