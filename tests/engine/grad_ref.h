/* grad_ref.h - shared by the tests that hold the training pass to PyTorch
 * (test_train_ref.c, tests/rl/test_grpo.c): every gradient of tm against a
 * safetensors dump of torch's, one tensor per parameter under its Hugging
 * Face name, within 2e-5 of the tensor's largest |element| (fp32 sums in
 * another order than torch's stay far below that; a wrong term or sign does
 * not). Include after cmocka.h. */
#ifndef R1D_TESTS_GRAD_REF_H
#define R1D_TESTS_GRAD_REF_H

#include <math.h>
#include <stdlib.h>

#include "common/file.h"
#include "engine/model/safetensors.h"
#include "engine/model/train.h"

static void check_grads_against(const char *name, const r1d_train_model *tm,
                                const char *dir, const char *file) {
  char *gpath = r1d_path_join(dir, file);
  r1d_safetensors *st = NULL;
  r1d_error err = {0};
  if (r1d_safetensors_open(gpath, &st, &err)) fail_msg("%s", err.msg);
  assert_int_equal(r1d_safetensors_count(st), tm->n_tensors);
  for (int t = 0; t < tm->n_tensors; t++) {
    const r1d_train_tensor *tt = &tm->tensors[t];
    const r1d_tensor_view *g = r1d_safetensors_find(st, tt->name);
    if (!g) fail_msg("%s: torch has no gradient for %s", name, tt->name);
    assert_int_equal(g->dtype, R1D_DTYPE_F32);
    assert_int_equal((size_t)r1d_tensor_numel(g), tt->n);
    const float *want = g->data;
    double gmax = 0, worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < tt->n; i++)
      gmax = fmax(gmax, fabs((double)want[i]));
    for (size_t i = 0; i < tt->n; i++) {
      double d = fabs((double)tt->grad[i] - (double)want[i]);
      if (d > worst) worst = d, at = i;
    }
    if (!(worst <= 2e-5 * gmax + 1e-9))
      fail_msg("%s: %s[%zu]: ours %.9g, torch %.9g (max |g| %.3g)", name,
               tt->name, at, (double)tt->grad[at], (double)want[at], gmax);
  }
  r1d_safetensors_close(st);
  free(gpath);
}

#endif
