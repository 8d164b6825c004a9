/* test_config.c - config.json parsing for the two R1-distill families, the
 * generation_config.json override, rejection of configs we cannot run, and
 * RoPE inverse frequencies against values printed by transformers 5.x
 * (ROPE_INIT_FUNCTIONS["llama3"] and the default formula, float32 torch). */
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

#include "common/file.h"
#include "engine/model/config.h"

/* deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B config.json, as published. */
static const char *qwen_json =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"attention_dropout\": 0.0,"
    " \"bos_token_id\": 151643, \"eos_token_id\": 151643,"
    " \"hidden_act\": \"silu\", \"hidden_size\": 1536,"
    " \"initializer_range\": 0.02, \"intermediate_size\": 8960,"
    " \"max_position_embeddings\": 131072, \"max_window_layers\": 21,"
    " \"model_type\": \"qwen2\", \"num_attention_heads\": 12,"
    " \"num_hidden_layers\": 28, \"num_key_value_heads\": 2,"
    " \"rms_norm_eps\": 1e-06, \"rope_theta\": 10000, \"sliding_window\": 4096,"
    " \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\","
    " \"transformers_version\": \"4.44.0\", \"use_cache\": true,"
    " \"use_mrope\": false, \"use_sliding_window\": false,"
    " \"vocab_size\": 151936}";

/* Its generation_config.json: bos differs from config.json's. */
static const char *qwen_gen_json =
    "{\"_from_model_config\": true, \"bos_token_id\": 151646,"
    " \"eos_token_id\": 151643, \"do_sample\": true, \"temperature\": 0.6,"
    " \"top_p\": 0.95, \"transformers_version\": \"4.39.3\"}";

/* meta-llama/Llama-3.1-8B-Instruct config.json (the Llama R1 distill base). */
static const char *llama_json =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"attention_bias\": false,"
    " \"attention_dropout\": 0.0, \"bos_token_id\": 128000,"
    " \"eos_token_id\": [128001, 128008, 128009], \"hidden_act\": \"silu\","
    " \"hidden_size\": 4096, \"initializer_range\": 0.02,"
    " \"intermediate_size\": 14336, \"max_position_embeddings\": 131072,"
    " \"mlp_bias\": false, \"model_type\": \"llama\","
    " \"num_attention_heads\": 32, \"num_hidden_layers\": 32,"
    " \"num_key_value_heads\": 8, \"pretraining_tp\": 1,"
    " \"rms_norm_eps\": 1e-05, \"rope_scaling\": {\"factor\": 8.0,"
    " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
    " \"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"},"
    " \"rope_theta\": 500000.0, \"tie_word_embeddings\": false,"
    " \"torch_dtype\": \"bfloat16\", \"use_cache\": true,"
    " \"vocab_size\": 128256}";

static void test_qwen_fields(void **state) {
  (void)state;
  r1d_config c;
  r1d_error err = {0};
  assert_int_equal(r1d_config_parse(qwen_json, "config.json", &c, &err), 0);
  assert_int_equal(c.arch, R1D_ARCH_QWEN2);
  assert_int_equal(c.vocab_size, 151936);
  assert_int_equal(c.hidden_size, 1536);
  assert_int_equal(c.intermediate_size, 8960);
  assert_int_equal(c.num_layers, 28);
  assert_int_equal(c.num_heads, 12);
  assert_int_equal(c.num_kv_heads, 2);
  assert_int_equal(c.head_dim, 128);
  assert_int_equal(c.max_position_embeddings, 131072);
  assert_float_equal(c.rms_norm_eps, 1e-6f, 0);
  assert_float_equal(c.rope_theta, 10000.0f, 0);
  assert_int_equal(c.rope_type, R1D_ROPE_DEFAULT);
  assert_int_equal(c.tie_word_embeddings, 0);
  assert_int_equal(c.qkv_bias, 1);
  assert_int_equal(c.bos_token_id, 151643);
  assert_int_equal(c.n_eos, 1);
  assert_int_equal(c.eos_token_ids[0], 151643);
  assert_string_equal(c.torch_dtype, "bfloat16");
  /* The published size of this model. */
  assert_true(r1d_config_param_count(&c) == 1777088000LL);
}

static void test_llama_fields(void **state) {
  (void)state;
  r1d_config c;
  r1d_error err = {0};
  assert_int_equal(r1d_config_parse(llama_json, "config.json", &c, &err), 0);
  assert_int_equal(c.arch, R1D_ARCH_LLAMA);
  assert_int_equal(c.vocab_size, 128256);
  assert_int_equal(c.hidden_size, 4096);
  assert_int_equal(c.intermediate_size, 14336);
  assert_int_equal(c.num_layers, 32);
  assert_int_equal(c.num_heads, 32);
  assert_int_equal(c.num_kv_heads, 8);
  assert_int_equal(c.head_dim, 128);
  assert_float_equal(c.rms_norm_eps, 1e-5f, 0);
  assert_float_equal(c.rope_theta, 500000.0f, 0);
  assert_int_equal(c.rope_type, R1D_ROPE_LLAMA3);
  assert_float_equal(c.rope_factor, 8.0f, 0);
  assert_float_equal(c.rope_low_freq_factor, 1.0f, 0);
  assert_float_equal(c.rope_high_freq_factor, 4.0f, 0);
  assert_int_equal(c.rope_original_max_position, 8192);
  assert_int_equal(c.qkv_bias, 0);
  assert_int_equal(c.tie_word_embeddings, 0);
  assert_int_equal(c.bos_token_id, 128000);
  assert_int_equal(c.n_eos, 3);
  assert_int_equal(c.eos_token_ids[0], 128001);
  assert_int_equal(c.eos_token_ids[1], 128008);
  assert_int_equal(c.eos_token_ids[2], 128009);
  /* Llama-3.1-8B: 8,030,261,248 parameters. */
  assert_true(r1d_config_param_count(&c) == 8030261248LL);
}

/* Minimal configs lean on the transformers defaults. */
static void test_defaults(void **state) {
  (void)state;
  r1d_config c;
  r1d_error err = {0};
  const char *j = "{\"model_type\": \"llama\", \"vocab_size\": 10,"
                  " \"hidden_size\": 8, \"intermediate_size\": 16,"
                  " \"num_hidden_layers\": 1, \"num_attention_heads\": 2}";
  assert_int_equal(r1d_config_parse(j, "c.json", &c, &err), 0);
  assert_int_equal(c.arch, R1D_ARCH_LLAMA);
  assert_int_equal(c.num_kv_heads, 2);
  assert_int_equal(c.head_dim, 4);
  assert_int_equal(c.max_position_embeddings, 2048);
  assert_float_equal(c.rope_theta, 10000.0f, 0);
  assert_float_equal(c.rms_norm_eps, 1e-6f, 0);
  assert_int_equal(c.tie_word_embeddings, 0);
  assert_int_equal(c.bos_token_id, -1);
  assert_int_equal(c.n_eos, 0);
  assert_string_equal(c.torch_dtype, "");
  /* An explicit head_dim need not divide hidden_size; null means default. */
  const char *k = "{\"architectures\": [\"Qwen2ForCausalLM\"],"
                  " \"vocab_size\": 10, \"hidden_size\": 12,"
                  " \"intermediate_size\": 16, \"num_hidden_layers\": 1,"
                  " \"num_attention_heads\": 5, \"num_key_value_heads\": null,"
                  " \"head_dim\": 6, \"tie_word_embeddings\": true,"
                  " \"rope_scaling\": {\"type\": \"default\"}}";
  assert_int_equal(r1d_config_parse(k, "c.json", &c, &err), 0);
  assert_int_equal(c.head_dim, 6);
  assert_int_equal(c.num_kv_heads, 5);
  assert_int_equal(c.max_position_embeddings, 32768);
  assert_int_equal(c.tie_word_embeddings, 1);
  assert_int_equal(c.rope_type, R1D_ROPE_DEFAULT);
}

static void write_text(const char *dir, const char *name, const char *text) {
  char *p = r1d_path_join(dir, name);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  free(p);
}

static void remove_in(const char *dir, const char *name) {
  char *p = r1d_path_join(dir, name);
  unlink(p);
  free(p);
}

static void test_load_generation_override(void **state) {
  (void)state;
  char dir[] = "/tmp/r1d-config-XXXXXX";
  assert_non_null(mkdtemp(dir));
  r1d_config c;
  r1d_error err = {0};
  /* No config.json at all: EIO naming the file. */
  assert_int_equal(r1d_config_load(dir, &c, &err), R1D_EIO);
  assert_non_null(strstr(err.msg, "config.json"));

  write_text(dir, "config.json", qwen_json);
  assert_int_equal(r1d_config_load(dir, &c, &err), 0);
  assert_int_equal(c.bos_token_id, 151643);
  /* no generation_config.json: no sampling defaults */
  assert_true(isnan(c.gen_temperature) && isnan(c.gen_top_p));
  assert_int_equal(c.gen_top_k, -1);

  write_text(dir, "generation_config.json", qwen_gen_json);
  assert_int_equal(r1d_config_load(dir, &c, &err), 0);
  assert_int_equal(c.bos_token_id, 151646);
  assert_float_equal(c.gen_temperature, 0.6f, 1e-7);
  assert_float_equal(c.gen_top_p, 0.95f, 1e-7);
  assert_int_equal(c.gen_top_k, -1);
  assert_int_equal(c.n_eos, 1);
  assert_int_equal(c.eos_token_ids[0], 151643);
  assert_int_equal(c.hidden_size, 1536);

  /* A list of eos ids replaces config.json's single one. */
  write_text(dir, "generation_config.json",
             "{\"eos_token_id\": [151643, 151645], \"bos_token_id\": null}");
  assert_int_equal(r1d_config_load(dir, &c, &err), 0);
  assert_int_equal(c.bos_token_id, 151643);
  assert_int_equal(c.n_eos, 2);
  assert_int_equal(c.eos_token_ids[1], 151645);

  /* do_sample false means greedy, whatever temperature says */
  write_text(dir, "generation_config.json",
             "{\"do_sample\": false, \"temperature\": 0.7, \"top_k\": 20}");
  assert_int_equal(r1d_config_load(dir, &c, &err), 0);
  assert_true(c.gen_temperature == 0.0f);
  assert_int_equal(c.gen_top_k, 20);
  write_text(dir, "generation_config.json", "{\"top_p\": 1.5}");
  assert_int_equal(r1d_config_load(dir, &c, &err), R1D_EFORMAT);
  assert_non_null(strstr(err.msg, "top_p"));

  write_text(dir, "generation_config.json", "{\"eos_token_id\": [1,");
  assert_int_equal(r1d_config_load(dir, &c, &err), R1D_EFORMAT);
  assert_non_null(strstr(err.msg, "generation_config.json"));

  remove_in(dir, "generation_config.json");
  remove_in(dir, "config.json");
  rmdir(dir);
}

/* Replaces the first occurrence of `from` in qwen_json / llama_json. */
static char *edit(const char *base, const char *from, const char *to) {
  const char *at = strstr(base, from);
  assert_non_null(at);
  size_t a = (size_t)(at - base), fl = strlen(from), tl = strlen(to);
  char *s = malloc(strlen(base) - fl + tl + 1);
  memcpy(s, base, a);
  memcpy(s + a, to, tl);
  strcpy(s + a + tl, at + fl);
  return s;
}

static void expect_fail(const char *base, const char *from, const char *to,
                        int code, const char *needle) {
  char *j = edit(base, from, to);
  r1d_config c;
  r1d_error err = {0};
  int rc = r1d_config_parse(j, "config.json", &c, &err);
  if (rc != code || !strstr(err.msg, needle) ||
      strncmp(err.msg, "config.json: ", 13) != 0)
    fail_msg("%s -> %s: rc %d, msg \"%s\" (want %d, \"%s\")", from, to, rc,
             err.msg, code, needle);
  free(j);
}

static void test_bad_configs(void **state) {
  (void)state;
  expect_fail(qwen_json, "\"num_attention_heads\": 12",
              "\"num_attention_heads\": 7", R1D_EFORMAT,
              "num_attention_heads 7 is not a multiple of "
              "num_key_value_heads 2");
  expect_fail(qwen_json, "\"hidden_size\": 1536", "\"hidden_size\": 1537",
              R1D_EFORMAT, "hidden_size 1537 is not a multiple");
  expect_fail(qwen_json, "\"hidden_size\": 1536,", "", R1D_EFORMAT,
              "missing \"hidden_size\"");
  expect_fail(qwen_json, "\"vocab_size\": 151936", "\"vocab_size\": 0",
              R1D_ERANGE, "vocab_size 0 is not positive");
  expect_fail(qwen_json, "\"num_hidden_layers\": 28",
              "\"num_hidden_layers\": -1", R1D_ERANGE, "num_hidden_layers");
  expect_fail(qwen_json, "\"vocab_size\": 151936", "\"vocab_size\": \"big\"",
              R1D_EFORMAT, "\"vocab_size\" is not an integer");
  expect_fail(qwen_json, "Qwen2ForCausalLM", "MistralForCausalLM",
              R1D_EUNSUPPORTED, "MistralForCausalLM");
  expect_fail(qwen_json, "\"use_sliding_window\": false",
              "\"use_sliding_window\": true", R1D_EUNSUPPORTED,
              "use_sliding_window");
  expect_fail(qwen_json, "\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"",
              R1D_EUNSUPPORTED, "gelu");
  expect_fail(qwen_json, "\"tie_word_embeddings\": false",
              "\"tie_word_embeddings\": 3", R1D_EFORMAT, "tie_word_embeddings");
  expect_fail(qwen_json, "\"rms_norm_eps\": 1e-06", "\"rms_norm_eps\": 0",
              R1D_ERANGE, "rms_norm_eps");
  expect_fail(qwen_json, "\"vocab_size\": 151936}", "\"vocab_size\": 151936",
              R1D_EFORMAT, "invalid JSON");
  expect_fail(qwen_json, "\"num_attention_heads\": 12",
              "\"num_attention_heads\": 12, \"head_dim\": 7", R1D_EFORMAT,
              "head_dim 7 is odd");
  /* 12 heads x 2^28 head_dim: a row width past int (under the parameter
   * limit, so the width check is what refuses it) */
  expect_fail(qwen_json, "\"num_attention_heads\": 12",
              "\"num_attention_heads\": 12, \"head_dim\": 268435456",
              R1D_ERANGE, "too large");
  expect_fail(llama_json, "\"rope_type\": \"llama3\"",
              "\"rope_type\": \"yarn\"", R1D_EUNSUPPORTED, "\"yarn\"");
  expect_fail(llama_json, "\"rope_type\": \"llama3\"", "\"type\": \"linear\"",
              R1D_EUNSUPPORTED, "\"linear\"");
  expect_fail(llama_json, "\"low_freq_factor\": 1.0,", "", R1D_EFORMAT,
              "low_freq_factor");
  expect_fail(llama_json, "\"high_freq_factor\": 4.0",
              "\"high_freq_factor\": 1.0", R1D_ERANGE, "high_freq_factor");
  expect_fail(llama_json, "\"mlp_bias\": false", "\"mlp_bias\": true",
              R1D_EUNSUPPORTED, "mlp_bias");
  expect_fail(llama_json, "\"attention_bias\": false",
              "\"attention_bias\": true", R1D_EUNSUPPORTED, "attention_bias");
  expect_fail(llama_json, "\"eos_token_id\": [128001, 128008, 128009]",
              "\"eos_token_id\": [1, 2, 3, 4, 5, 6, 7, 8, 9]", R1D_EUNSUPPORTED,
              "eos_token_id");
  expect_fail(llama_json, "\"eos_token_id\": [128001, 128008, 128009]",
              "\"eos_token_id\": \"</s>\"", R1D_EFORMAT, "eos_token_id");
  /* See tests/fuzz/fuzz_config: ids past int range were cut to other
   * ids, and sizes that each fit an int overflowed the parameter count. */
  expect_fail(llama_json, "\"eos_token_id\": [128001, 128008, 128009]",
              "\"eos_token_id\": [4294967297]", R1D_EFORMAT, "eos_token_id");
  expect_fail(qwen_json, "\"hidden_size\": 1536", "\"hidden_size\": 1999999992",
              R1D_ERANGE, "parameters (more than 2^48)");
}

/* transformers 5 writes rope_parameters (theta inside) and layer_types. */
static void test_transformers5_layout(void **state) {
  (void)state;
  const char *j =
      "{\"architectures\": [\"LlamaForCausalLM\"], \"attention_bias\": false,"
      " \"bos_token_id\": 1, \"dtype\": \"float32\", \"eos_token_id\": 2,"
      " \"head_dim\": 8, \"hidden_act\": \"silu\", \"hidden_size\": 32,"
      " \"intermediate_size\": 48, \"max_position_embeddings\": 2048,"
      " \"mlp_bias\": false, \"model_type\": \"llama\","
      " \"num_attention_heads\": 4, \"num_hidden_layers\": 2,"
      " \"num_key_value_heads\": 2, \"pad_token_id\": null,"
      " \"rms_norm_eps\": 1e-06, \"rope_parameters\": {\"factor\": 8.0,"
      " \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0,"
      " \"original_max_position_embeddings\": 8192, \"rope_theta\": 500000.0,"
      " \"rope_type\": \"llama3\"}, \"tie_word_embeddings\": true,"
      " \"layer_types\": [\"full_attention\", \"full_attention\"],"
      " \"vocab_size\": 64}";
  r1d_config c;
  r1d_error err = {0};
  assert_int_equal(r1d_config_parse(j, "config.json", &c, &err), 0);
  assert_int_equal(c.rope_type, R1D_ROPE_LLAMA3);
  assert_float_equal(c.rope_theta, 500000.0f, 0);
  assert_float_equal(c.rope_factor, 8.0f, 0);
  assert_int_equal(c.rope_original_max_position, 8192);
  assert_int_equal(c.head_dim, 8);
  assert_int_equal(c.tie_word_embeddings, 1);
  assert_string_equal(c.torch_dtype, "float32");
  expect_fail(j, "\"full_attention\"]", "\"sliding_attention\"]",
              R1D_EUNSUPPORTED, "layer_types[1] \"sliding_attention\"");
  expect_fail(j, "\"rope_type\": \"llama3\"", "\"rope_type\": \"dynamic\"",
              R1D_EUNSUPPORTED, "\"dynamic\"");
  /* Qwen2 flavour with the default rope and theta inside. */
  char *q = edit(qwen_json, "\"rope_theta\": 10000",
                 "\"rope_parameters\": {\"rope_theta\": 1000000.0,"
                 " \"rope_type\": \"default\"}");
  assert_int_equal(r1d_config_parse(q, "config.json", &c, &err), 0);
  assert_float_equal(c.rope_theta, 1e6f, 0);
  assert_int_equal(c.rope_type, R1D_ROPE_DEFAULT);
  free(q);
}

/* model_type fallback when architectures is absent. */
static void test_model_type_fallback(void **state) {
  (void)state;
  char *j = edit(qwen_json, "\"architectures\": [\"Qwen2ForCausalLM\"],", "");
  r1d_config c;
  r1d_error err = {0};
  assert_int_equal(r1d_config_parse(j, "config.json", &c, &err), 0);
  assert_int_equal(c.arch, R1D_ARCH_QWEN2);
  free(j);
  j = edit(qwen_json, "\"architectures\": [\"Qwen2ForCausalLM\"],", "");
  char *k = edit(j, "\"model_type\": \"qwen2\"", "\"model_type\": \"gemma\"");
  assert_int_equal(r1d_config_parse(k, "config.json", &c, &err),
                   R1D_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "gemma"));
  free(k);
  /* Neither key: nothing to go on. */
  k = edit(j, "\"model_type\": \"qwen2\",", "");
  assert_int_equal(r1d_config_parse(k, "config.json", &c, &err), R1D_EFORMAT);
  assert_non_null(strstr(err.msg, "config.json: missing \"architectures\""));
  free(j);
  free(k);
}

static uint32_t bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

/* Distance in units in the last place between two positive floats. */
static uint32_t ulps(float a, float b) {
  uint32_t x = bits(a), y = bits(b);
  return x > y ? x - y : y - x;
}

/* transformers 5.24 / torch 2.15, float32, head_dim 128. */
static const uint32_t llama3_ref[64] = {
    0x3f800000, 0x3f508ac1, 0x3f29e1c6, 0x3f0a6384, 0x3ee177bc, 0x3eb7ab7d,
    0x3e959ee3, 0x3e73c461, 0x3e4693b0, 0x3e21c3a0, 0x3e03c6a0, 0x3dd6b19c,
    0x3daee4ad, 0x3d8e7898, 0x3d681e67, 0x3d3d1684, 0x3d1a08c8, 0x3cfaf53f,
    0x3ccc6f49, 0x3ca68939, 0x3c87a9c3, 0x3c5d06ec, 0x3c340d6d, 0x3c12ac7f,
    0x3beef74f, 0x3bc2aa76, 0x3b9e9402, 0x3b812e35, 0x3b527720, 0x3b0dfd06,
    0x3ab3d11d, 0x3a60979e, 0x3a0995d2, 0x39a3f108, 0x393b2dd2, 0x38c86886,
    0x38a3418d, 0x3884fdbf, 0x3858ac81, 0x38308199, 0x380fc8f8, 0x37ea426f,
    0x37bed4f4, 0x379b7475, 0x377d45c3, 0x374e51f5, 0x3728126b, 0x3708ea0f,
    0x36df10c4, 0x36b5b687, 0x369406cb, 0x36712b80, 0x36447610, 0x36200a69,
    0x36025f34, 0x35d46808, 0x35ad07a7, 0x358cf400, 0x3565a54d, 0x353b12c7,
    0x351864a7, 0x34f848c2, 0x34ca41b0, 0x34a4c2ff,
};

/* Default rope, theta 1e6 (Qwen2.5 7B+), head_dim 128. */
static const uint32_t theta1e6_ref[64] = {
    0x3f800000, 0x3f4e4bad, 0x3f263de0, 0x3f05f6ef, 0x3ed7e89b, 0x3eadfcff,
    0x3e8c3504, 0x3e61f835, 0x3e361887, 0x3e12bd91, 0x3dec7fd6, 0x3dbe94c6,
    0x3d99940d, 0x3d778513, 0x3d47763f, 0x3d20bc1d, 0x3d0186e3, 0x3cd0c1a8,
    0x3ca8398b, 0x3c879008, 0x3c5a7bf2, 0x3c301052, 0x3c0de12d, 0x3be4aa46,
    0x3bb8449c, 0x3b947dae, 0x3b6f520e, 0x3b40dac5, 0x3b1b690d, 0x3afa78f0,
    0x3ac9d75c, 0x3aa2a6f7, 0x3a83126f, 0x3a533f28, 0x3a2a3b44, 0x3a092e02,
    0x39dd1725, 0x39b229fb, 0x398f9272, 0x39676492, 0x393a7753, 0x39164324,
    0x38f22ce2, 0x38c327b5, 0x389d43a4, 0x387d75d4, 0x384c3fbe, 0x382497ab,
    0x3804a2b2, 0x37d5c441, 0x37ac431d, 0x378ad0ed, 0x375fba4f, 0x37344a0e,
    0x371148e3, 0x36ea2732, 0x36bcb0c1, 0x36980e02, 0x36751070, 0x36457bab,
    0x361f23e4, 0x36003dec, 0x35ceaf79, 0x35a68e4c,
};

static void check_inv_freq(const r1d_config *c, const uint32_t *ref) {
  float inv[64];
  r1d_config_rope_inv_freq(c, inv);
  uint32_t worst = 0;
  for (int i = 0; i < 64; i++) {
    float want;
    memcpy(&want, &ref[i], 4);
    uint32_t d = ulps(inv[i], want);
    if (d > worst) worst = d;
    /* torch's vectorised powf is not always correctly rounded. */
    if (d > 2) fail_msg("inv_freq[%d] = %.9g, want %.9g", i, inv[i], want);
  }
  print_message("inv_freq worst difference: %u ulp\n", worst);
}

static void test_rope_llama3(void **state) {
  (void)state;
  r1d_config c;
  r1d_error err = {0};
  assert_int_equal(r1d_config_parse(llama_json, "config.json", &c, &err), 0);
  check_inv_freq(&c, llama3_ref);
  /* The three bands: untouched (i=0..), divided by 8 (low freq), smoothed. */
  float inv[64];
  r1d_config_rope_inv_freq(&c, inv);
  float plain = 1.0f / (float)pow(500000.0, 126.0 / 128.0);
  assert_float_equal(inv[63], plain / 8.0f, plain * 1e-6);
}

static void test_rope_default(void **state) {
  (void)state;
  r1d_config c;
  r1d_error err = {0};
  char *j =
      edit(qwen_json, "\"rope_theta\": 10000", "\"rope_theta\": 1000000.0");
  assert_int_equal(r1d_config_parse(j, "config.json", &c, &err), 0);
  free(j);
  check_inv_freq(&c, theta1e6_ref);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_qwen_fields),
      cmocka_unit_test(test_llama_fields),
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_load_generation_override),
      cmocka_unit_test(test_bad_configs),
      cmocka_unit_test(test_model_type_fallback),
      cmocka_unit_test(test_transformers5_layout),
      cmocka_unit_test(test_rope_llama3),
      cmocka_unit_test(test_rope_default),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
