/* test_checkpoint.c - trained weights written as a model folder: it loads
 * back with every tensor bit-identical (fp32) or rounded as bf16, carries
 * the source's tokenizer files byte for byte and its config with torch_dtype
 * saying how the weights are stored, replaces an
 * existing checkpoint whole, and a failed write leaves the previous one as
 * it was with no temporary folder behind. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <jansson.h>

#include "common/file.h"
#include "engine/model/checkpoint.h"
#include "engine/model/init.h"
#include "engine/model/safetensors.h"
#include "engine/model/train.h"
#include "kernels/cpu/cpu_backend.h"

typedef struct fixture {
  char dir[64];
  char src[96], out[96], bad_src[96];
  r1d_backend be;
  r1d_model *m;
  r1d_train_model *tm;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/r1d-ckpt-XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  snprintf(f->src, sizeof f->src, "%s/src", f->dir);
  snprintf(f->out, sizeof f->out, "%s/out", f->dir);
  snprintf(f->bad_src, sizeof f->bad_src, "%s/no-config", f->dir);
  r1d_error err = {0};
  r1d_config c;
  r1d_cpu_backend_init(&f->be, 0);
  if (r1d_model_preset(R1D_ARCH_QWEN2, "tiny", &c, &err) ||
      r1d_model_init_dir(f->src, &c, 5, &err) ||
      r1d_model_load(f->src, &f->be, &f->m, &err) ||
      r1d_train_model_create(f->m, &f->tm, &err)) {
    fprintf(stderr, "setup: %s\n", err.msg);
    return -1;
  }
  if (mkdir(f->bad_src, 0755)) return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  r1d_train_model_free(f->tm);
  r1d_model_free(f->m);
  r1d_cpu_backend_destroy(&f->be);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  int rc = system(cmd);
  free(f);
  return rc == 0 ? 0 : -1;
}

static char *slurp(const char *dir, const char *name, size_t *len) {
  char *path = r1d_path_join(dir, name);
  char *data = NULL;
  r1d_error err = {0};
  if (r1d_read_file(path, &data, len, &err)) fail_msg("%s", err.msg);
  free(path);
  return data;
}

/* Every tensor of the folder's model equals tm's (bf16: rounded). */
static void expect_weights(fixture *f, const char *dir, int bf16) {
  r1d_model *back = NULL;
  r1d_error err = {0};
  if (r1d_model_load(dir, &f->be, &back, &err)) fail_msg("%s", err.msg);
  r1d_train_model *tb = NULL;
  assert_int_equal(r1d_train_model_create(back, &tb, &err), 0);
  assert_int_equal(tb->n_tensors, f->tm->n_tensors);
  for (int t = 0; t < tb->n_tensors; t++) {
    const r1d_train_tensor *a = &f->tm->tensors[t], *b = &tb->tensors[t];
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
      float want =
          bf16 ? r1d_bf16_to_f32(r1d_f32_to_bf16(a->param[i])) : a->param[i];
      if (memcmp(&want, &b->param[i], sizeof want))
        fail_msg("%s[%zu]: wrote %.9g, read %.9g", a->name, i, (double)want,
                 (double)b->param[i]);
    }
  }
  r1d_train_model_free(tb);
  r1d_model_free(back);
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* The written config.json is the source's with torch_dtype naming what
 * model.safetensors holds. */
static void expect_config(fixture *f, const char *dtype) {
  size_t a, b;
  char *x = slurp(f->src, "config.json", &a),
       *y = slurp(f->out, "config.json", &b);
  json_t *src = json_loadb(x, a, 0, NULL), *out = json_loadb(y, b, 0, NULL);
  assert_non_null(src);
  assert_non_null(out);
  assert_string_equal(json_string_value(json_object_get(out, "torch_dtype")),
                      dtype);
  json_object_set_new(src, "torch_dtype", json_string(dtype));
  assert_true(json_equal(src, out));
  json_decref(src);
  json_decref(out);
  free(x);
  free(y);
}

static void test_write_reload_replace_and_fail(void **state) {
  fixture *f = *state;
  r1d_error err = {0};
  /* "trained": every parameter moved, so nothing passes by accident */
  for (size_t i = 0; i < f->tm->n_floats; i++)
    f->tm->params[i] = f->tm->params[i] * 1.5f + 1e-3f;
  assert_int_equal(
      r1d_checkpoint_write(f->src, &f->tm->cfg, &f->tm->param, 0, f->out, &err),
      0);
  expect_weights(f, f->out, 0);
  expect_config(f, "float32");
  const char *same[] = {"generation_config.json", "tokenizer.json",
                        "tokenizer_config.json"};
  for (int i = 0; i < 3; i++) {
    size_t a, b;
    char *x = slurp(f->src, same[i], &a), *y = slurp(f->out, same[i], &b);
    assert_int_equal(a, b);
    assert_memory_equal(x, y, a);
    free(x);
    free(y);
  }

  /* a failing write (no config.json to copy) leaves out as it was */
  size_t n_before;
  char *before = slurp(f->out, "model.safetensors", &n_before);
  for (size_t i = 0; i < f->tm->n_floats; i++)
    f->tm->params[i] += 1.0f;
  memset(&err, 0, sizeof err);
  assert_int_equal(r1d_checkpoint_write(f->bad_src, &f->tm->cfg, &f->tm->param,
                                        0, f->out, &err),
                   R1D_ENOTFOUND);
  assert_non_null(strstr(err.msg, "config.json"));
  size_t n_after;
  char *after = slurp(f->out, "model.safetensors", &n_after);
  assert_int_equal(n_before, n_after);
  assert_memory_equal(before, after, n_before);
  free(before);
  free(after);
  char tmp[160];
  snprintf(tmp, sizeof tmp, "%s.tmp-%ld", f->out, (long)getpid());
  assert_false(exists(tmp));

  /* a good write replaces it whole (bf16 this time), nothing left aside */
  assert_int_equal(
      r1d_checkpoint_write(f->src, &f->tm->cfg, &f->tm->param, 1, f->out, &err),
      0);
  expect_weights(f, f->out, 1);
  expect_config(f, "bfloat16");
  char old[160];
  snprintf(old, sizeof old, "%s.old-%ld", f->out, (long)getpid());
  assert_false(exists(old));
  assert_false(exists(tmp));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_write_reload_replace_and_fail, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
