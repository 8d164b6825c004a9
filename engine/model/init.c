/* init.c - seeded random model folders (see init.h). The weights follow the
 * usual Hugging Face initialisation (normal, std 0.02; norms 1; biases 0) so a
 * freshly made model behaves like an untrained transformer, not like zeros. */
#include "init.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/file.h"
#include "../../common/rng.h"
#include "../text/tokenizer.h"
#include "model.h"
#include "weights.h"

const char *const r1d_init_added_tokens[] = {
    "<｜begin▁of▁sentence｜>",
    "<｜end▁of▁sentence｜>",
    "<｜▁pad▁｜>",
    "<｜User｜>",
    "<｜Assistant｜>",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
};
/* As in DeepSeek's tokenizers: bos, eos and pad are special (dropped from
 * streamed text); the chat markers and the reasoning and answer tags are
 * ordinary added tokens that clients and the reasoning parser see. */
const unsigned char r1d_init_added_special[] = {1, 1, 1, 0, 0, 0, 0, 0, 0};
const int r1d_init_n_added_tokens =
    (int)(sizeof r1d_init_added_tokens / sizeof r1d_init_added_tokens[0]);

enum { BYTE_TOKENS = 256, BOS_ID = 256, EOS_ID = 257, PAD_ID = 258 };

/* An R1-distill-format template of our own (the published one without its
 * tool-call branches): the last system message first, user turns after
 * <｜User｜>, earlier assistant turns keep only what follows their last
 * </think>, and the generation prompt opens the thought. */
static const char chat_template[] =
    "{% if not add_generation_prompt is defined %}"
    "{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(system_prompt='') %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}"
    "{% set ns.system_prompt = message['content'] %}"
    "{%- endif %}{%- endfor %}"
    "{{ bos_token }}{{ ns.system_prompt }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}"
    "{{ '<｜User｜>' + message['content'] }}"
    "{%- elif message['role'] == 'assistant' %}"
    "{% set content = message['content'] %}"
    "{% if '</think>' in content %}"
    "{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{ '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}"
    "{%- endif %}{%- endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif "
    "%}";

typedef struct model_preset {
  const char *name;
  int hidden, intermediate, layers, heads, kv_heads, context;
} model_preset;

/* micro: ~0.1M parameters besides the embedding, the smaller student for
 * distillation; tiny: ~1M parameters, for tests and `make run`; small:
 * ~100M, the size the benchmarks and the CPU-scale R1 recipe use. All GQA
 * (heads / 2 or 3). */
static const model_preset presets[] = {
    {"micro", 64, 192, 2, 4, 2, 2048},
    {"tiny", 128, 384, 4, 4, 2, 2048},
    {"small", 768, 2304, 14, 12, 4, 4096},
};

int r1d_model_preset(r1d_arch arch, const char *preset, r1d_config *cfg,
                     r1d_error *err) {
  memset(cfg, 0, sizeof *cfg);
  cfg->arch = arch;
  /* 256 bytes + added tokens, rounded up to a multiple of 16. */
  cfg->vocab_size = (BYTE_TOKENS + r1d_init_n_added_tokens + 15) / 16 * 16;
  const model_preset *ps = NULL;
  for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
    if (strcmp(presets[i].name, preset) == 0) ps = &presets[i];
  if (!ps)
    return r1d_fail(err, R1D_EINVAL,
                    "unknown preset '%s' (expected micro, tiny or small)",
                    preset);
  cfg->hidden_size = ps->hidden;
  cfg->intermediate_size = ps->intermediate;
  cfg->num_layers = ps->layers;
  cfg->num_heads = ps->heads;
  cfg->num_kv_heads = ps->kv_heads;
  cfg->max_position_embeddings = ps->context;
  cfg->head_dim = cfg->hidden_size / cfg->num_heads;
  cfg->rms_norm_eps = 1e-6f;
  cfg->rope_theta = 10000.0f;
  cfg->rope_type = R1D_ROPE_DEFAULT;
  cfg->tie_word_embeddings = 1;
  cfg->qkv_bias = arch == R1D_ARCH_QWEN2;
  cfg->bos_token_id = BOS_ID;
  cfg->eos_token_ids[0] = EOS_ID;
  cfg->n_eos = 1;
  snprintf(cfg->torch_dtype, sizeof cfg->torch_dtype, "float32");
  return R1D_OK;
}

typedef struct fill_ctx {
  r1d_rng rng;
  /* Uniform in [-a, a] with a = 0.02 * sqrt(3) has the same std 0.02; a
   * normal draw per weight costs ~10x more, which matters for billions of
   * weights (benchmark models), not for init's files. */
  int uniform;
  uint64_t seed, tensor; /* uniform: each 1M-weight chunk has its own
                            stream, so threads fill chunks in any order */
} fill_ctx;

static void fill_uniform(fill_ctx *fc, float *data, int64_t n) {
  const float a = 0.0346410162f;
  const int64_t chunk = 1 << 20;
  uint64_t t = fc->tensor++;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < (n + chunk - 1) / chunk; c++) {
    r1d_rng rng;
    r1d_rng_seed(&rng, fc->seed ^ (t * 0x9E3779B97F4A7C15ull) ^
                           ((uint64_t)c * 0xC2B2AE3D27D4EB4Full));
    int64_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
    for (int64_t i = c * chunk; i < end; i++) {
      uint64_t bits = r1d_rng_next(&rng) >> 40; /* 24 random bits */
      data[i] = a * ((float)bits * (2.0f / 16777216.0f) - 1.0f);
    }
  }
}

static int fill_tensor(void *user, const char *name, int ndim,
                       const int64_t *shape, float *data) {
  fill_ctx *fc = user;
  int64_t n = 1;
  for (int i = 0; i < ndim; i++)
    n *= shape[i];
  size_t len = strlen(name);
  int is_norm = strstr(name, "norm") != NULL;
  int is_bias = len > 5 && strcmp(name + len - 5, ".bias") == 0;
  if (fc->uniform && !is_norm && !is_bias) {
    fill_uniform(fc, data, n);
    return 0;
  }
  for (int64_t i = 0; i < n; i++) {
    if (is_norm) {
      data[i] = 1.0f;
    } else if (is_bias) {
      data[i] = 0.0f;
    } else {
      data[i] = (float)(0.02 * r1d_rng_normal(&fc->rng));
    }
  }
  return 0;
}

static int write_json(const char *dir, const char *name, json_t *obj,
                      r1d_error *err) {
  char *path = r1d_path_join(dir, name);
  char *text = json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  int rc;
  if (!path || !text) {
    rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", dir);
  } else {
    size_t n = strlen(text);
    char *withnl = malloc(n + 2);
    if (!withnl) {
      rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", dir);
    } else {
      memcpy(withnl, text, n);
      withnl[n] = '\n';
      rc = r1d_write_file_atomic(path, withnl, n + 1, err);
      free(withnl);
    }
  }
  free(path);
  free(text);
  json_decref(obj);
  return rc;
}

static json_t *config_json(const r1d_config *c) {
  int qwen = c->arch == R1D_ARCH_QWEN2;
  json_t *o = json_object();
  json_object_set_new(
      o, "architectures",
      json_pack("[s]", qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM"));
  json_object_set_new(o, "model_type", json_string(qwen ? "qwen2" : "llama"));
  json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
  json_object_set_new(o, "hidden_size", json_integer(c->hidden_size));
  json_object_set_new(o, "intermediate_size",
                      json_integer(c->intermediate_size));
  json_object_set_new(o, "num_hidden_layers", json_integer(c->num_layers));
  json_object_set_new(o, "num_attention_heads", json_integer(c->num_heads));
  json_object_set_new(o, "num_key_value_heads", json_integer(c->num_kv_heads));
  json_object_set_new(o, "head_dim", json_integer(c->head_dim));
  json_object_set_new(o, "max_position_embeddings",
                      json_integer(c->max_position_embeddings));
  json_object_set_new(o, "rms_norm_eps", json_real(c->rms_norm_eps));
  json_object_set_new(o, "rope_theta", json_real(c->rope_theta));
  json_object_set_new(o, "hidden_act", json_string("silu"));
  json_object_set_new(o, "tie_word_embeddings",
                      json_boolean(c->tie_word_embeddings));
  if (!qwen) {
    json_object_set_new(o, "attention_bias", json_false());
    json_object_set_new(o, "mlp_bias", json_false());
  }
  /* a tokenizer without a bos token (Qwen's) has -1: null, as HF writes */
  json_object_set_new(o, "bos_token_id",
                      c->bos_token_id >= 0 ? json_integer(c->bos_token_id)
                                           : json_null());
  json_object_set_new(o, "eos_token_id", json_integer(c->eos_token_ids[0]));
  json_object_set_new(o, "torch_dtype", json_string("float32"));
  return o;
}

static json_t *tokenizer_config_json(void) {
  json_t *o = json_object();
  json_object_set_new(o, "tokenizer_class",
                      json_string("PreTrainedTokenizerFast"));
  json_object_set_new(o, "bos_token", json_string(r1d_init_added_tokens[0]));
  json_object_set_new(o, "eos_token", json_string(r1d_init_added_tokens[1]));
  json_object_set_new(o, "pad_token", json_string(r1d_init_added_tokens[2]));
  json_object_set_new(o, "add_bos_token", json_false());
  json_object_set_new(o, "add_eos_token", json_false());
  json_object_set_new(o, "model_max_length", json_integer(4096));
  json_object_set_new(o, "chat_template", json_string(chat_template));
  return o;
}

int r1d_model_write_tokenizer_config(const char *dir, r1d_error *err) {
  return write_json(dir, "tokenizer_config.json", tokenizer_config_json(), err);
}

/* dirname of path into a malloc'ed string ("." when it has no slash). */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return strdup(".");
  size_t n = slash == path ? 1 : (size_t)(slash - path);
  char *d = malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, path, n);
  d[n] = 0;
  return d;
}

/* The token tokenizer_config.json names under key (a string or an
 * AddedToken object), dflt when the file or the key is missing, NULL when
 * the key is null (no such token). The string lives as long as cfg. */
static const char *config_token(json_t *cfg, const char *key,
                                const char *dflt) {
  if (!cfg) return dflt;
  json_t *v = json_object_get(cfg, key);
  if (!v) return dflt;
  if (json_is_object(v)) v = json_object_get(v, "content");
  return json_string_value(v);
}

int r1d_model_use_tokenizer(r1d_config *cfg, const char *tokenizer_json,
                            r1d_error *err) {
  r1d_tokenizer *tok;
  int rc = r1d_tokenizer_load(tokenizer_json, &tok, err);
  if (rc) return rc;
  char *dir = dir_of(tokenizer_json);
  char *cfg_path = dir ? r1d_path_join(dir, "tokenizer_config.json") : NULL;
  free(dir);
  if (!cfg_path) {
    r1d_tokenizer_free(tok);
    return r1d_fail(err, R1D_ENOMEM, "out of memory");
  }
  /* Large numbers (model_max_length 1e30) are not 64-bit integers. */
  json_t *tc = r1d_file_exists(cfg_path)
                   ? json_load_file(cfg_path, JSON_DECODE_INT_AS_REAL, NULL)
                   : NULL;
  const char *bos = config_token(tc, "bos_token", r1d_init_added_tokens[0]);
  const char *eos = config_token(tc, "eos_token", r1d_init_added_tokens[1]);
  int32_t bos_id = bos ? r1d_tokenizer_token_to_id(tok, bos) : -1;
  int32_t eos_id = eos ? r1d_tokenizer_token_to_id(tok, eos) : -1;
  if (bos && bos_id < 0)
    rc = r1d_fail(err, R1D_ENOTFOUND, "%s: has no bos token '%s'",
                  tokenizer_json, bos);
  else if (eos_id < 0)
    rc = r1d_fail(err, R1D_ENOTFOUND, "%s: has no eos token '%s'",
                  tokenizer_json, eos ? eos : "(none named)");
  int n_ids = r1d_tokenizer_vocab_size(tok);
  json_decref(tc);
  free(cfg_path);
  r1d_tokenizer_free(tok);
  if (rc) return rc;
  cfg->vocab_size = (n_ids + 15) / 16 * 16;
  cfg->bos_token_id = bos_id;
  cfg->eos_token_ids[0] = eos_id;
  cfg->n_eos = 1;
  return 0;
}

static int copy_file(const char *from, const char *to, r1d_error *err) {
  char *data;
  size_t n;
  int rc = r1d_read_file(from, &data, &n, err);
  if (rc) return rc;
  rc = r1d_write_file_atomic(to, data, n, err);
  free(data);
  return rc;
}

int r1d_model_init_dir(const char *out_dir, const r1d_config *cfg,
                       uint64_t seed, r1d_error *err) {
  return r1d_model_init_dir_tokenizer(out_dir, cfg, seed, NULL, err);
}

int r1d_model_init_dir_tokenizer(const char *out_dir, const r1d_config *cfg,
                                 uint64_t seed, const char *tokenizer_json,
                                 r1d_error *err) {
  int rc = r1d_mkdir_p(out_dir, err);
  if (rc) return rc;
  /* Files we do not write but loaders prefer over ours would make a mixed
   * folder: refuse rather than delete someone's checkpoint. */
  static const char *const foreign[] = {"model.safetensors.index.json",
                                        "chat_template.jinja"};
  for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
    char *p = r1d_path_join(out_dir, foreign[i]);
    int there = p && r1d_file_exists(p);
    free(p);
    if (there)
      return r1d_fail(err, R1D_EINVAL,
                      "%s: holds %s (another model?); choose an empty folder",
                      out_dir, foreign[i]);
  }
  r1d_weights w;
  if (r1d_weights_alloc(cfg, &w) != 0)
    return r1d_fail(err, R1D_ENOMEM, "%s: out of memory for weights", out_dir);
  fill_ctx fc = {.uniform = 0};
  r1d_rng_seed(&fc.rng, seed);
  rc = r1d_weights_visit(cfg, &w, fill_tensor, &fc);
  if (rc == 0) rc = r1d_weights_save(out_dir, cfg, &w, 0, err);
  r1d_weights_free(&w);
  if (rc) return rc;

  char *tok_path = r1d_path_join(out_dir, "tokenizer.json");
  if (!tok_path) return r1d_fail(err, R1D_ENOMEM, "out of memory");
  if (tokenizer_json)
    rc = copy_file(tokenizer_json, tok_path, err);
  else
    rc = r1d_tokenizer_write_bytelevel(tok_path, NULL, 0, r1d_init_added_tokens,
                                       r1d_init_added_special,
                                       r1d_init_n_added_tokens, err);
  free(tok_path);
  if (rc) return rc;
  /* the tokenizer's own config (names its bos/eos, holds its template) */
  char *src_cfg = NULL, *src_dir = NULL;
  if (tokenizer_json) {
    src_dir = dir_of(tokenizer_json);
    src_cfg = src_dir ? r1d_path_join(src_dir, "tokenizer_config.json") : NULL;
    free(src_dir);
    if (!src_cfg) return r1d_fail(err, R1D_ENOMEM, "out of memory");
    if (!r1d_file_exists(src_cfg)) {
      free(src_cfg);
      src_cfg = NULL;
    }
  }

  rc = write_json(out_dir, "config.json", config_json(cfg), err);
  if (!rc) {
    json_t *gen = json_pack(
        "{s:o, s:i, s:f, s:f}", "bos_token_id",
        cfg->bos_token_id >= 0 ? json_integer(cfg->bos_token_id) : json_null(),
        "eos_token_id", cfg->eos_token_ids[0], "temperature", 0.6, "top_p",
        0.95);
    rc = write_json(out_dir, "generation_config.json", gen, err);
  }
  if (!rc && src_cfg) {
    char *dst = r1d_path_join(out_dir, "tokenizer_config.json");
    rc = dst ? copy_file(src_cfg, dst, err)
             : r1d_fail(err, R1D_ENOMEM, "out of memory");
    free(dst);
  } else if (!rc) {
    rc = r1d_model_write_tokenizer_config(out_dir, err);
  }
  free(src_cfg);
  return rc;
}

int r1d_model_shape(const char *shape, r1d_config *c, r1d_error *err) {
  if (!strcmp(shape, "small") || !strcmp(shape, "tiny"))
    return r1d_model_preset(R1D_ARCH_QWEN2, shape, c, err);
  if (!strcmp(shape, "qwen2-1.5b")) {
    /* DeepSeek-R1-Distill-Qwen-1.5B's config.json */
    memset(c, 0, sizeof *c);
    c->arch = R1D_ARCH_QWEN2;
    c->vocab_size = 151936;
    c->hidden_size = 1536;
    c->intermediate_size = 8960;
    c->num_layers = 28;
    c->num_heads = 12;
    c->num_kv_heads = 2;
    c->head_dim = 128;
    c->max_position_embeddings = 8192;
    c->rms_norm_eps = 1e-6f;
    c->rope_theta = 10000.0f;
    c->rope_type = R1D_ROPE_DEFAULT;
    c->tie_word_embeddings = 0;
    c->qkv_bias = 1;
    c->bos_token_id = 151646;
    c->eos_token_ids[0] = 151643;
    c->n_eos = 1;
    return 0;
  }
  return r1d_fail(err, R1D_EINVAL,
                  "unknown shape '%s' (small, tiny, qwen2-1.5b)", shape);
}

int r1d_model_random(const r1d_config *cfg, uint64_t seed, r1d_model **out,
                     r1d_error *err) {
  *out = NULL;
  r1d_model *m = calloc(1, sizeof *m);
  if (!m) return r1d_fail(err, R1D_ENOMEM, "random model: out of memory");
  m->cfg = *cfg;
  if (r1d_weights_alloc(cfg, &m->w) != 0) {
    free(m);
    return r1d_fail(err, R1D_ENOMEM,
                    "random model: out of memory for the weights");
  }
  fill_ctx fc = {.uniform = 1, .seed = seed};
  r1d_rng_seed(&fc.rng, seed);
  r1d_weights_visit(cfg, &m->w, fill_tensor, &fc);
  m->inv_freq = malloc((size_t)(cfg->head_dim / 2) * sizeof(float));
  if (!m->inv_freq) {
    r1d_model_free(m);
    return r1d_fail(err, R1D_ENOMEM, "random model: out of memory");
  }
  r1d_config_rope_inv_freq(cfg, m->inv_freq);
  *out = m;
  return 0;
}
