/* test_train_ref.c - the training pass against PyTorch: for the tiny
 * Qwen2 (q/k/v biases, untied head, GQA 4:2) and Llama (tied embeddings,
 * GQA 3:1, llama3 rope scaling) reference models, the loss and EVERY
 * parameter's gradient equal transformers' (fp32, eager) on the batch of
 * tests/ref/make_train_ref.py, and 10 AdamW steps (rl/optim.h) follow
 * torch.optim.AdamW's loss curve.
 *
 * Tolerances (about 10x what was measured): the loss to 1e-6 relative
 * (measured < 1e-7); a gradient tensor to 2e-5 of its largest |element|
 * (measured 1.2e-6: fp32 sums in another order than torch's, while a wrong
 * term or sign is off by far more); the loss curve to 1e-4 relative over 10
 * steps (measured < 1e-5; the parameters drift by rounding as they move). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/file.h"
#include "engine/model/safetensors.h"
#include "engine/model/train.h"
#include "grad_ref.h"
#include "kernels/cpu/cpu_backend.h"

typedef struct reference {
  int32_t ids[256], targets[256];
  int n;
  double loss;
  double lr, beta1, beta2, eps, wd;
  double losses[16];
  int n_losses;
} reference;

static char *fixture_dir(const char *name) {
  const char *root = getenv("R1D_SOURCE_ROOT");
  char buf[4096];
  snprintf(buf, sizeof buf, "%s/tests/fixtures/models/%s", root ? root : ".",
           name);
  return strdup(buf);
}

static void load_reference(const char *dir, reference *r) {
  char *path = r1d_path_join(dir, "ref_train.json");
  json_error_t je;
  json_t *root = json_load_file(path, 0, &je);
  if (!root) fail_msg("%s: %s", path, je.text);
  json_t *ids = json_object_get(root, "ids");
  json_t *targets = json_object_get(root, "targets");
  r->n = (int)json_array_size(ids);
  assert_true(r->n > 0 && r->n <= 256);
  assert_int_equal(json_array_size(targets), (size_t)r->n);
  for (int i = 0; i < r->n; i++) {
    r->ids[i] = (int32_t)json_integer_value(json_array_get(ids, (size_t)i));
    r->targets[i] =
        (int32_t)json_integer_value(json_array_get(targets, (size_t)i));
  }
  r->loss = json_number_value(json_object_get(root, "loss"));
  json_t *a = json_object_get(root, "adamw");
  r->lr = json_number_value(json_object_get(a, "lr"));
  r->beta1 = json_number_value(json_array_get(json_object_get(a, "betas"), 0));
  r->beta2 = json_number_value(json_array_get(json_object_get(a, "betas"), 1));
  r->eps = json_number_value(json_object_get(a, "eps"));
  r->wd = json_number_value(json_object_get(a, "weight_decay"));
  json_t *losses = json_object_get(a, "losses");
  r->n_losses = (int)json_array_size(losses);
  assert_true(r->n_losses > 0 && r->n_losses <= 16);
  for (int i = 0; i < r->n_losses; i++)
    r->losses[i] = json_number_value(json_array_get(losses, (size_t)i));
  json_decref(root);
  free(path);
}

static void check_model(const char *name) {
  char *dir = fixture_dir(name);
  reference ref;
  load_reference(dir, &ref);
  r1d_backend be;
  r1d_cpu_backend_init(&be, 0);
  r1d_model *m = NULL;
  r1d_train_model *tm = NULL;
  r1d_train_plan *plan = NULL;
  r1d_error err = {0};
  if (r1d_model_load(dir, &be, &m, &err) ||
      r1d_train_model_create(m, &tm, &err) ||
      r1d_train_plan_create(tm, ref.n, 0, &plan, &err))
    fail_msg("%s: %s", name, err.msg);

  /* loss and every gradient */
  float loss = 0;
  r1d_train_zero_grad(tm);
  if (r1d_train_forward(tm, plan, ref.ids, ref.targets, ref.n, &loss, &err) ||
      r1d_train_backward(tm, plan, 1.0f, &err))
    fail_msg("%s: %s", name, err.msg);
  if (fabs(loss - ref.loss) > 1e-6 * fabs(ref.loss))
    fail_msg("%s: loss %.9g, torch %.9g", name, (double)loss, ref.loss);
  check_grads_against(name, tm, dir, "ref_grads.safetensors");

  /* 10 AdamW steps on the same batch: torch's loss curve */
  r1d_optim_tensor *list = NULL;
  size_t n_list = 0;
  r1d_optim *opt = NULL;
  r1d_adamw_config cfg = {ref.lr, ref.beta1, ref.beta2, ref.eps, ref.wd};
  if (r1d_train_optim_tensors(tm, &list, &n_list, &err) ||
      r1d_optim_create(&cfg, list, n_list, &opt, &err))
    fail_msg("%s: %s", name, err.msg);
  for (int s = 0; s < ref.n_losses; s++) {
    r1d_train_zero_grad(tm);
    if (r1d_train_forward(tm, plan, ref.ids, ref.targets, ref.n, &loss, &err) ||
        r1d_train_backward(tm, plan, 1.0f, &err) ||
        r1d_optim_step(opt, ref.lr, &err))
      fail_msg("%s step %d: %s", name, s + 1, err.msg);
    if (fabs(loss - ref.losses[s]) > 1e-4 * fabs(ref.losses[s]))
      fail_msg("%s: loss before step %d: %.7g, torch %.7g", name, s + 1,
               (double)loss, ref.losses[s]);
  }
  r1d_optim_destroy(opt);
  free(list);
  r1d_train_plan_free(plan);
  r1d_train_model_free(tm);
  r1d_model_free(m);
  r1d_cpu_backend_destroy(&be);
  free(dir);
}

static void test_qwen2_matches_torch(void **state) {
  (void)state;
  check_model("tiny-qwen2");
}

static void test_llama_tied_matches_torch(void **state) {
  (void)state;
  check_model("tiny-llama");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_qwen2_matches_torch),
      cmocka_unit_test(test_llama_tied_matches_torch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
