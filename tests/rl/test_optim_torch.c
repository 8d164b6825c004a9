/* test_optim_torch.c - rl/optim.c against torch.optim.AdamW itself: the
 * fixture tests/fixtures/optim/adamw_ref.safetensors (made by
 * tests/ref/make_optim_ref.py with torch) holds 10 steps of AdamW
 * (foreach=False) on a weight-decay tensor and a no-decay tensor, with the
 * lr of transformers' cosine-with-min-lr schedule and warmup. We feed the
 * same gradients and check the lr of every step, the parameters after every
 * step and m, v after the last: test_optim.c checks our reading of the
 * formula, this checks the formula is torch's. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/model/safetensors.h"
#include "rl/optim.h"

enum { STEPS = 10 };

static const float *tensor_f32(const r1d_safetensors *st, const char *name,
                               size_t n) {
  const r1d_tensor_view *t = r1d_safetensors_find(st, name);
  if (!t) fail_msg("fixture: no tensor %s", name);
  assert_int_equal(t->dtype, R1D_DTYPE_F32);
  assert_int_equal((size_t)r1d_tensor_numel(t), n);
  return t->data;
}

/* |got - want| <= tol * max(|want|, 1e-3): torch and we round the same fp32
 * operations, except that torch's lerp may fuse a multiply-add (optim.h). */
static void expect_close(const float *got, const float *want, size_t n,
                         double tol, const char *what, int step) {
  for (size_t i = 0; i < n; i++) {
    double scale = fmax(fabs((double)want[i]), 1e-3);
    if (!(fabs((double)got[i] - (double)want[i]) <= tol * scale))
      fail_msg("%s after step %d [%zu]: got %.9g, torch %.9g", what, step, i,
               (double)got[i], (double)want[i]);
  }
}

static void test_adamw_matches_torch(void **state) {
  (void)state;
  const char *root = getenv("R1D_SOURCE_ROOT");
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/fixtures/optim/adamw_ref.safetensors",
           root ? root : ".");
  r1d_safetensors *st = NULL;
  r1d_error err = {0};
  if (r1d_safetensors_open(path, &st, &err)) fail_msg("%s", err.msg);
  const size_t nw = 37, nn = 16;
  float w[37], norm[16], gw[37], gn[16];
  memcpy(w, tensor_f32(st, "init.w", nw), sizeof w);
  memcpy(norm, tensor_f32(st, "init.norm", nn), sizeof norm);
  const r1d_tensor_view *lrs = r1d_safetensors_find(st, "lr");
  assert_non_null(lrs);
  assert_int_equal(lrs->dtype, R1D_DTYPE_F64);
  assert_int_equal(r1d_tensor_numel(lrs), STEPS);
  const double *torch_lr = lrs->data;

  r1d_optim_tensor list[2] = {
      {"model.layers.0.mlp.up_proj.weight", w, gw, nw, 1},
      {"model.norm.weight", norm, gn, nn, 0}};
  assert_int_equal(r1d_optim_default_decay(list[0].name), 1);
  assert_int_equal(r1d_optim_default_decay(list[1].name), 0);
  r1d_adamw_config cfg;
  r1d_adamw_config_default(&cfg);
  cfg.lr = 1e-2;
  cfg.weight_decay = 0.1;
  r1d_optim *opt = NULL;
  assert_int_equal(r1d_optim_create(&cfg, list, 2, &opt, &err), 0);
  r1d_lr_schedule sched = {R1D_LR_WARMUP_COSINE, 1e-2, 1e-3, 3, STEPS};
  assert_int_equal(r1d_lr_schedule_check(&sched, &err), 0);
  for (int k = 1; k <= STEPS; k++) {
    double lr = r1d_lr_at(&sched, k - 1);
    if (fabs(lr - torch_lr[k - 1]) > 1e-15 * fmax(1.0, fabs(lr)))
      fail_msg("lr at step %d: ours %.17g, transformers %.17g", k, lr,
               torch_lr[k - 1]);
    char name[64];
    snprintf(name, sizeof name, "grad.%d.w", k);
    memcpy(gw, tensor_f32(st, name, nw), sizeof gw);
    snprintf(name, sizeof name, "grad.%d.norm", k);
    memcpy(gn, tensor_f32(st, name, nn), sizeof gn);
    assert_int_equal(r1d_optim_step(opt, lr, &err), 0);
    snprintf(name, sizeof name, "param.%d.w", k);
    expect_close(w, tensor_f32(st, name, nw), nw, 1e-6, "w", k);
    snprintf(name, sizeof name, "param.%d.norm", k);
    expect_close(norm, tensor_f32(st, name, nn), nn, 1e-6, "norm", k);
  }
  float *m, *v;
  r1d_optim_tensor_state(opt, 0, &m, &v);
  expect_close(m, tensor_f32(st, "m.10.w", nw), nw, 1e-5, "m(w)", STEPS);
  expect_close(v, tensor_f32(st, "v.10.w", nw), nw, 1e-5, "v(w)", STEPS);
  r1d_optim_tensor_state(opt, 1, &m, &v);
  expect_close(m, tensor_f32(st, "m.10.norm", nn), nn, 1e-5, "m(norm)", STEPS);
  expect_close(v, tensor_f32(st, "v.10.norm", nn), nn, 1e-5, "v(norm)", STEPS);
  r1d_optim_destroy(opt);
  r1d_safetensors_close(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_adamw_matches_torch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
