/* test_weights.c - fp32 weight layout, save/load round trips (F32, BF16,
 * sharded mixed dtypes), and the errors for missing or misshapen tensors.
 * Models are tiny made-up configs so every value can be compared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/file.h"
#include "engine/model/safetensors.h"
#include "engine/model/weights.h"

/* Qwen2-like: biases, GQA 4/2 heads, untied head. */
static r1d_config tiny_qwen(void) {
  r1d_config c;
  memset(&c, 0, sizeof c);
  c.arch = R1D_ARCH_QWEN2;
  c.vocab_size = 11;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 2;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-6f;
  c.rope_theta = 10000.0f;
  c.qkv_bias = 1;
  c.tie_word_embeddings = 0;
  return c;
}

/* Llama-like: no biases, tied head, head_dim not hidden/heads. */
static r1d_config tiny_llama(void) {
  r1d_config c = tiny_qwen();
  c.arch = R1D_ARCH_LLAMA;
  c.qkv_bias = 0;
  c.tie_word_embeddings = 1;
  c.head_dim = 4;
  c.num_layers = 3;
  return c;
}

typedef struct tmpdir {
  char path[64];
} tmpdir;

static void tmp_make(tmpdir *t) {
  strcpy(t->path, "/tmp/r1d-w-XXXXXX");
  assert_non_null(mkdtemp(t->path));
}

static void tmp_remove(tmpdir *t) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->path);
  assert_int_equal(system(cmd), 0);
}

/* Distinct, non-bf16-exact values so a mix-up or a lost conversion shows. */
static void fill(r1d_weights *w) {
  uint32_t s = 12345;
  for (size_t i = 0; i < w->n_floats; i++) {
    s = s * 1664525u + 1013904223u;
    w->storage[i] = (float)((s >> 8) % 20001) / 10000.0f - 1.0f + 1e-4f;
  }
}

/* ---- layout ------------------------------------------------------------- */

typedef struct names {
  char list[64][64];
  int n;
  float *data[64];
  int64_t numel[64];
  int ndim[64];
} names;

static int collect(void *user, const char *name, int ndim, const int64_t *shape,
                   float *data) {
  names *n = user;
  assert_true(n->n < 64);
  snprintf(n->list[n->n], 64, "%s", name);
  int64_t k = 1;
  for (int i = 0; i < ndim; i++)
    k *= shape[i];
  n->numel[n->n] = k;
  n->ndim[n->n] = ndim;
  n->data[n->n++] = data;
  return 0;
}

static void test_alloc_layout(void **state) {
  (void)state;
  r1d_config c = tiny_qwen();
  r1d_weights w;
  assert_int_equal(r1d_weights_alloc(&c, &w), 0);
  assert_int_equal(w.n_layers, 2);
  assert_true((long long)w.n_floats == r1d_config_param_count(&c));
  names n = {0};
  assert_int_equal(r1d_weights_visit(&c, &w, collect, &n), 0);
  /* embed + 12 per layer (with biases) + norm + lm_head */
  assert_int_equal(n.n, 1 + 2 * 12 + 2);
  assert_string_equal(n.list[0], "model.embed_tokens.weight");
  assert_string_equal(n.list[1], "model.layers.0.input_layernorm.weight");
  assert_string_equal(n.list[3], "model.layers.0.self_attn.q_proj.bias");
  assert_string_equal(n.list[12], "model.layers.0.mlp.down_proj.weight");
  assert_string_equal(n.list[13], "model.layers.1.input_layernorm.weight");
  assert_string_equal(n.list[25], "model.norm.weight");
  assert_string_equal(n.list[26], "lm_head.weight");
  /* Arrays tile the single storage block in visit order, all zero. */
  float *at = w.storage;
  for (int i = 0; i < n.n; i++) {
    assert_ptr_equal(n.data[i], at);
    at += n.numel[i];
  }
  assert_ptr_equal(at, w.storage + w.n_floats);
  for (size_t i = 0; i < w.n_floats; i++)
    assert_true(w.storage[i] == 0.0f);
  assert_ptr_equal(w.embed, w.storage);
  assert_ptr_equal(w.layers[1].q_b, w.layers[1].q_w + 8 * 8);
  assert_int_equal(n.numel[2], 8 * 8);   /* q_proj [heads*hd, hidden] */
  assert_int_equal(n.numel[4], 4 * 8);   /* k_proj [kv*hd, hidden] */
  assert_int_equal(n.numel[10], 12 * 8); /* gate [inter, hidden] */
  r1d_weights_free(&w);
  assert_null(w.storage);

  c = tiny_llama();
  assert_int_equal(r1d_weights_alloc(&c, &w), 0);
  assert_true((long long)w.n_floats == r1d_config_param_count(&c));
  assert_ptr_equal(w.lm_head, w.embed);
  assert_null(w.layers[0].q_b);
  assert_null(w.layers[2].v_b);
  memset(&n, 0, sizeof n);
  assert_int_equal(r1d_weights_visit(&c, &w, collect, &n), 0);
  assert_int_equal(n.n, 1 + 3 * 9 + 1);
  assert_string_equal(n.list[n.n - 1], "model.norm.weight");
  assert_int_equal(n.numel[2], 16 * 8); /* q_proj with head_dim 4 */
  r1d_weights_free(&w);
}

/* ---- round trips ----------------------------------------------------------
 */

static void roundtrip(r1d_config c, int bf16) {
  tmpdir t;
  tmp_make(&t);
  r1d_weights w, back;
  r1d_error err = {0};
  assert_int_equal(r1d_weights_alloc(&c, &w), 0);
  fill(&w);
  int rc = r1d_weights_save(t.path, &c, &w, bf16, &err);
  if (rc) fail_msg("save: %s", err.msg);
  rc = r1d_weights_load(t.path, &c, &back, &err);
  if (rc) fail_msg("load: %s", err.msg);
  assert_int_equal(back.n_floats, w.n_floats);
  for (size_t i = 0; i < w.n_floats; i++) {
    float want =
        bf16 ? r1d_bf16_to_f32(r1d_f32_to_bf16(w.storage[i])) : w.storage[i];
    if (back.storage[i] != want)
      fail_msg("float %zu: %g, want %g", i, back.storage[i], want);
  }
  if (c.tie_word_embeddings)
    assert_ptr_equal(back.lm_head, back.embed);
  else
    assert_ptr_equal(back.lm_head, back.final_norm + c.hidden_size);

  /* The file uses the requested dtype and HF names. */
  char *p = r1d_path_join(t.path, "model.safetensors");
  r1d_safetensors *st;
  assert_int_equal(r1d_safetensors_open(p, &st, &err), 0);
  const r1d_tensor_view *v =
      r1d_safetensors_find(st, "model.layers.1.mlp.down_proj.weight");
  assert_non_null(v);
  assert_int_equal(v->dtype, bf16 ? R1D_DTYPE_BF16 : R1D_DTYPE_F32);
  assert_int_equal(v->shape[0], c.hidden_size);
  assert_int_equal(v->shape[1], c.intermediate_size);
  assert_int_equal(r1d_safetensors_find(st, "lm_head.weight") != NULL,
                   !c.tie_word_embeddings);
  r1d_safetensors_close(st);
  free(p);
  r1d_weights_free(&w);
  r1d_weights_free(&back);
  tmp_remove(&t);
}

static void test_roundtrip_f32_qwen(void **state) {
  (void)state;
  roundtrip(tiny_qwen(), 0);
}

static void test_roundtrip_bf16_llama(void **state) {
  (void)state;
  roundtrip(tiny_llama(), 1);
}

static void test_roundtrip_bf16_qwen(void **state) {
  (void)state;
  roundtrip(tiny_qwen(), 1);
}

/* ---- hand-built folders ----------------------------------------------------
 */

/* Builds the tensor list of w, letting `tweak` drop or alter entries; data of
 * F16 entries is converted into `half`. */
typedef struct build {
  r1d_tensor_out outs[64];
  int n;
  const char *drop;    /* name left out */
  const char *reshape; /* name written with its dims swapped */
  int use_f16;         /* write biases/norms as F16 */
  uint16_t half[4096];
  size_t used;
} build;

static int build_visit(void *user, const char *name, int ndim,
                       const int64_t *shape, float *data) {
  build *b = user;
  if (b->drop && strcmp(name, b->drop) == 0) return 0;
  r1d_tensor_out *o = &b->outs[b->n++];
  o->name = strdup(name);
  o->dtype = R1D_DTYPE_F32;
  o->ndim = ndim;
  memcpy(o->shape, shape, sizeof(int64_t) * (size_t)ndim);
  o->data = data;
  if (b->reshape && strcmp(name, b->reshape) == 0) {
    o->shape[0] = shape[1];
    o->shape[1] = shape[0];
  }
  if (b->use_f16 && ndim == 1) {
    int64_t k = shape[0];
    for (int64_t i = 0; i < k; i++)
      b->half[b->used + (size_t)i] = r1d_f32_to_f16(data[i]);
    o->dtype = R1D_DTYPE_F16;
    o->data = b->half + b->used;
    b->used += (size_t)k;
  }
  return 0;
}

static void free_build(build *b) {
  for (int i = 0; i < b->n; i++)
    free((char *)b->outs[i].name);
}

static void write_file(const char *dir, const char *name,
                       const r1d_tensor_out *outs, int n) {
  char *p = r1d_path_join(dir, name);
  r1d_error err = {0};
  int rc = r1d_safetensors_write(p, outs, n, &err);
  if (rc) fail_msg("%s", err.msg);
  free(p);
}

static void test_missing_tensor(void **state) {
  (void)state;
  tmpdir t;
  tmp_make(&t);
  r1d_config c = tiny_qwen();
  c.num_layers = 4;
  r1d_weights w, back;
  r1d_error err = {0};
  assert_int_equal(r1d_weights_alloc(&c, &w), 0);
  build b = {0};
  b.drop = "model.layers.3.mlp.up_proj.weight";
  r1d_weights_visit(&c, &w, build_visit, &b);
  write_file(t.path, "model.safetensors", b.outs, b.n);
  assert_int_equal(r1d_weights_load(t.path, &c, &back, &err), R1D_ENOTFOUND);
  char want[256];
  snprintf(want, sizeof want,
           "%s: missing tensor model.layers.3.mlp.up_proj.weight", t.path);
  assert_string_equal(err.msg, want);
  assert_null(back.storage);
  free_build(&b);

  /* Untied config, checkpoint without lm_head.weight. */
  memset(&b, 0, sizeof b);
  b.drop = "lm_head.weight";
  r1d_weights_visit(&c, &w, build_visit, &b);
  write_file(t.path, "model.safetensors", b.outs, b.n);
  assert_int_equal(r1d_weights_load(t.path, &c, &back, &err), R1D_ENOTFOUND);
  assert_non_null(strstr(err.msg, "missing tensor lm_head.weight"));
  /* The same file is complete for the tied variant of the config. */
  c.tie_word_embeddings = 1;
  int rc = r1d_weights_load(t.path, &c, &back, &err);
  if (rc) fail_msg("%s", err.msg);
  r1d_weights_free(&back);
  free_build(&b);
  r1d_weights_free(&w);

  /* No safetensors at all. */
  tmpdir e;
  tmp_make(&e);
  assert_int_equal(r1d_weights_load(e.path, &c, &back, &err), R1D_ENOTFOUND);
  assert_non_null(strstr(err.msg, e.path));
  tmp_remove(&e);
  tmp_remove(&t);
}

static void test_wrong_shape(void **state) {
  (void)state;
  tmpdir t;
  tmp_make(&t);
  r1d_config c = tiny_qwen();
  r1d_weights w, back;
  r1d_error err = {0};
  assert_int_equal(r1d_weights_alloc(&c, &w), 0);
  build b = {0};
  b.reshape = "model.layers.1.self_attn.k_proj.weight";
  r1d_weights_visit(&c, &w, build_visit, &b);
  write_file(t.path, "model.safetensors", b.outs, b.n);
  assert_int_equal(r1d_weights_load(t.path, &c, &back, &err), R1D_EFORMAT);
  char want[256];
  snprintf(want, sizeof want,
           "%s/model.safetensors: tensor "
           "model.layers.1.self_attn.k_proj.weight has shape [8, 4], "
           "expected [4, 8]",
           t.path);
  assert_string_equal(err.msg, want);
  free_build(&b);

  /* A config that disagrees with the checkpoint (vocab 12 vs 11). */
  memset(&b, 0, sizeof b);
  r1d_weights_visit(&c, &w, build_visit, &b);
  write_file(t.path, "model.safetensors", b.outs, b.n);
  c.vocab_size = 12;
  assert_int_equal(r1d_weights_load(t.path, &c, &back, &err), R1D_EFORMAT);
  assert_non_null(
      strstr(err.msg, "model.embed_tokens.weight has shape [11, 8]"));
  free_build(&b);
  r1d_weights_free(&w);
  tmp_remove(&t);
}

/* Two shards + index, F16 norms/biases, an extra tensor that is ignored, and
 * an integer tensor where a float one is needed. */
static void test_sharded_mixed_dtypes(void **state) {
  (void)state;
  tmpdir t;
  tmp_make(&t);
  r1d_config c = tiny_qwen();
  r1d_weights w, back;
  r1d_error err = {0};
  assert_int_equal(r1d_weights_alloc(&c, &w), 0);
  fill(&w);
  build b = {0};
  b.use_f16 = 1;
  r1d_weights_visit(&c, &w, build_visit, &b);
  float inv[1] = {1.0f};
  b.outs[b.n++] =
      (r1d_tensor_out){strdup("model.layers.0.self_attn.rotary_emb.inv_freq"),
                       R1D_DTYPE_F32,
                       1,
                       {1},
                       inv};
  int half = b.n / 2;
  write_file(t.path, "model-00001-of-00002.safetensors", b.outs, half);
  write_file(t.path, "model-00002-of-00002.safetensors", b.outs + half,
             b.n - half);
  char *ip = r1d_path_join(t.path, "model.safetensors.index.json");
  FILE *f = fopen(ip, "w");
  fprintf(f, "{\"metadata\": {}, \"weight_map\": {");
  for (int i = 0; i < b.n; i++)
    fprintf(f, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"", i ? "," : "",
            b.outs[i].name, i < half ? 1 : 2);
  fprintf(f, "}}");
  fclose(f);
  int rc = r1d_weights_load(t.path, &c, &back, &err);
  if (rc) fail_msg("%s", err.msg);
  /* Every element: 1-D tensors (norms, biases) went through f16, matrices
   * are exact. Storage layouts of w and back are identical. */
  names n = {0};
  r1d_weights_visit(&c, &w, collect, &n);
  for (int k = 0; k < n.n; k++) {
    size_t off = (size_t)(n.data[k] - w.storage);
    for (int64_t i = 0; i < n.numel[k]; i++) {
      float x = w.storage[off + (size_t)i];
      float want = n.ndim[k] == 1 ? r1d_f16_to_f32(r1d_f32_to_f16(x)) : x;
      if (back.storage[off + (size_t)i] != want)
        fail_msg("%s[%lld] = %g, want %g", n.list[k], (long long)i,
                 back.storage[off + (size_t)i], want);
    }
  }
  /* Spot checks: a matrix exactly, a bias and a norm via f16. */
  assert_true(back.layers[1].gate_w[5] == w.layers[1].gate_w[5]);
  assert_true(back.layers[1].q_b[3] ==
              r1d_f16_to_f32(r1d_f32_to_f16(w.layers[1].q_b[3])));
  assert_true(back.final_norm[7] ==
              r1d_f16_to_f32(r1d_f32_to_f16(w.final_norm[7])));
  assert_true(back.lm_head[10] == w.lm_head[10]);
  r1d_weights_free(&back);
  free_build(&b);

  /* An I32 tensor where floats are expected. */
  memset(&b, 0, sizeof b);
  b.drop = "model.norm.weight";
  r1d_weights_visit(&c, &w, build_visit, &b);
  int32_t ints[8] = {0};
  b.outs[b.n++] = (r1d_tensor_out){
      strdup("model.norm.weight"), R1D_DTYPE_I32, 1, {8}, ints};
  unlink(ip);
  write_file(t.path, "model.safetensors", b.outs, b.n);
  assert_int_equal(r1d_weights_load(t.path, &c, &back, &err), R1D_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "model.norm.weight has dtype I32"));
  assert_non_null(strstr(err.msg, "model.safetensors"));
  free_build(&b);
  free(ip);
  r1d_weights_free(&w);
  tmp_remove(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_alloc_layout),
      cmocka_unit_test(test_roundtrip_f32_qwen),
      cmocka_unit_test(test_roundtrip_bf16_llama),
      cmocka_unit_test(test_roundtrip_bf16_qwen),
      cmocka_unit_test(test_missing_tensor),
      cmocka_unit_test(test_wrong_shape),
      cmocka_unit_test(test_sharded_mixed_dtypes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
