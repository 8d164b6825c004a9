/* config.c - reads a Hugging Face config.json (+ generation_config.json) for
 * the Qwen2 and Llama architectures into r1d_config, and derives the RoPE
 * inverse frequencies the way transformers does.
 *
 * Defaults follow transformers' Qwen2Config / LlamaConfig so that a config
 * which omits a key means the same thing here as in PyTorch. Anything that
 * would change the maths and that we do not implement (sliding window, MLP
 * bias, rope scalings other than llama3) is refused with R1D_EUNSUPPORTED
 * rather than silently ignored. */
#include "config.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/file.h"

/* ---- typed getters -------------------------------------------------- */

/* Absent and null both mean "use the default" (HF writes nulls). */
static json_t *get(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  return json_is_null(v) ? NULL : v;
}

/* Integer key. JSON reals with an integral value (e.g. 4096.0) are accepted
 * since Python writers sometimes emit them. */
static int get_int(json_t *o, const char *key, int required, int def,
                   const char *path, int *out, r1d_error *err) {
  json_t *v = get(o, key);
  if (!v) {
    if (required)
      return r1d_fail(err, R1D_EFORMAT, "%s: missing \"%s\"", path, key);
    *out = def;
    return R1D_OK;
  }
  double d;
  if (json_is_integer(v))
    d = (double)json_integer_value(v);
  else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)))
    d = json_real_value(v);
  else
    return r1d_fail(err, R1D_EFORMAT, "%s: \"%s\" is not an integer", path,
                    key);
  if (d < -2147483648.0 || d > 2147483647.0)
    return r1d_fail(err, R1D_ERANGE, "%s: \"%s\" is out of range", path, key);
  *out = (int)d;
  return R1D_OK;
}

static int get_num(json_t *o, const char *key, int required, double def,
                   const char *path, double *out, r1d_error *err) {
  json_t *v = get(o, key);
  if (!v) {
    if (required)
      return r1d_fail(err, R1D_EFORMAT, "%s: missing \"%s\"", path, key);
    *out = def;
    return R1D_OK;
  }
  if (!json_is_number(v))
    return r1d_fail(err, R1D_EFORMAT, "%s: \"%s\" is not a number", path, key);
  *out = json_number_value(v);
  return R1D_OK;
}

static int get_bool(json_t *o, const char *key, int def, const char *path,
                    int *out, r1d_error *err) {
  json_t *v = get(o, key);
  if (!v) {
    *out = def;
    return R1D_OK;
  }
  if (!json_is_boolean(v))
    return r1d_fail(err, R1D_EFORMAT, "%s: \"%s\" is not a boolean", path, key);
  *out = json_is_true(v);
  return R1D_OK;
}

/* ---- pieces of the config ---------------------------------------------- */

static int parse_arch(json_t *root, const char *path, r1d_arch *arch,
                      r1d_error *err) {
  json_t *archs = json_object_get(root, "architectures");
  const char *a = json_string_value(json_array_get(archs, 0));
  if (a) {
    if (strcmp(a, "Qwen2ForCausalLM") == 0)
      *arch = R1D_ARCH_QWEN2;
    else if (strcmp(a, "LlamaForCausalLM") == 0)
      *arch = R1D_ARCH_LLAMA;
    else
      return r1d_fail(err, R1D_EUNSUPPORTED,
                      "%s: architecture \"%s\" is not supported (expected "
                      "Qwen2ForCausalLM or LlamaForCausalLM)",
                      path, a);
    return R1D_OK;
  }
  const char *mt = json_string_value(json_object_get(root, "model_type"));
  if (!mt)
    return r1d_fail(err, R1D_EFORMAT,
                    "%s: missing \"architectures\" and \"model_type\"", path);
  if (strcmp(mt, "qwen2") == 0)
    *arch = R1D_ARCH_QWEN2;
  else if (strcmp(mt, "llama") == 0)
    *arch = R1D_ARCH_LLAMA;
  else
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "%s: model_type \"%s\" is not supported (expected qwen2 "
                    "or llama)",
                    path, mt);
  return R1D_OK;
}

static int parse_rope_scaling(json_t *root, const char *path, r1d_config *cfg,
                              r1d_error *err) {
  cfg->rope_type = R1D_ROPE_DEFAULT;
  cfg->rope_factor = 1.0f;
  cfg->rope_low_freq_factor = 1.0f;
  cfg->rope_high_freq_factor = 1.0f;
  cfg->rope_original_max_position = cfg->max_position_embeddings;
  /* transformers 5 writes "rope_parameters" (with rope_theta inside);
   * older files have top-level rope_theta plus "rope_scaling". */
  const char *key = "rope_parameters";
  json_t *rs = get(root, key);
  if (!rs) rs = get(root, key = "rope_scaling");
  double theta = 0;
  int rc = get_num(root, "rope_theta", 0, 10000.0, path, &theta, err);
  if (rc) return rc;
  if (rs && !json_is_object(rs))
    return r1d_fail(err, R1D_EFORMAT, "%s: \"%s\" is not an object", path, key);
  if (rs && (rc = get_num(rs, "rope_theta", 0, theta, path, &theta, err)))
    return rc;
  cfg->rope_theta = (float)theta;
  if (!rs) return R1D_OK;
  const char *type = json_string_value(json_object_get(rs, "rope_type"));
  if (!type) type = json_string_value(json_object_get(rs, "type"));
  if (!type)
    return r1d_fail(err, R1D_EFORMAT, "%s: %s has no \"rope_type\"", path, key);
  if (strcmp(type, "default") == 0) return R1D_OK;
  if (strcmp(type, "llama3") != 0)
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "%s: rope type \"%s\" is not supported (only default "
                    "and llama3)",
                    path, type);
  double factor = 0, low = 0, high = 0;
  char ctx[256];
  snprintf(ctx, sizeof ctx, "%s: %s", path, key);
  if ((rc = get_num(rs, "factor", 1, 0, ctx, &factor, err)) ||
      (rc = get_num(rs, "low_freq_factor", 1, 0, ctx, &low, err)) ||
      (rc = get_num(rs, "high_freq_factor", 1, 0, ctx, &high, err)) ||
      (rc = get_int(rs, "original_max_position_embeddings", 1, 0, ctx,
                    &cfg->rope_original_max_position, err)))
    return rc;
  if (!(factor > 0) || !(low > 0) || !(high > low) ||
      cfg->rope_original_max_position <= 0)
    return r1d_fail(err, R1D_ERANGE,
                    "%s: llama3 rope needs factor > 0, 0 < "
                    "low_freq_factor < high_freq_factor and a positive "
                    "original_max_position_embeddings",
                    path);
  cfg->rope_type = R1D_ROPE_LLAMA3;
  cfg->rope_factor = (float)factor;
  cfg->rope_low_freq_factor = (float)low;
  cfg->rope_high_freq_factor = (float)high;
  return R1D_OK;
}

/* A token id: an integer that fits an int (a larger one would be silently
 * cut to another token's id). */
static int is_token_id(json_t *v) {
  return json_is_integer(v) && json_integer_value(v) >= INT_MIN &&
         json_integer_value(v) <= INT_MAX;
}

/* bos/eos: an int, a list of ints, or null. Only touches cfg when the key
 * holds a value, so generation_config.json can override selectively. */
static int parse_special(json_t *root, const char *path, r1d_config *cfg,
                         r1d_error *err) {
  json_t *b = get(root, "bos_token_id");
  if (b) {
    if (json_is_array(b)) b = json_array_get(b, 0);
    if (!is_token_id(b))
      return r1d_fail(err, R1D_EFORMAT, "%s: bad \"bos_token_id\"", path);
    cfg->bos_token_id = (int)json_integer_value(b);
  }
  json_t *e = get(root, "eos_token_id");
  if (!e) return R1D_OK;
  int n = 0, ids[R1D_MAX_EOS];
  if (is_token_id(e))
    ids[n++] = (int)json_integer_value(e);
  else if (json_is_array(e)) {
    size_t i;
    json_t *v;
    if (json_array_size(e) > R1D_MAX_EOS)
      return r1d_fail(err, R1D_EUNSUPPORTED,
                      "%s: more than %d eos_token_id values", path,
                      R1D_MAX_EOS);
    json_array_foreach(e, i, v) {
      if (!is_token_id(v))
        return r1d_fail(err, R1D_EFORMAT, "%s: bad \"eos_token_id\"", path);
      ids[n++] = (int)json_integer_value(v);
    }
  } else
    return r1d_fail(err, R1D_EFORMAT, "%s: bad \"eos_token_id\"", path);
  memcpy(cfg->eos_token_ids, ids, sizeof(int) * (size_t)n);
  cfg->n_eos = n;
  return R1D_OK;
}

/* Features that change the maths and that the forward pass lacks. */
static int check_unsupported(json_t *root, const char *path,
                             const r1d_config *cfg, r1d_error *err) {
  const char *act = json_string_value(json_object_get(root, "hidden_act"));
  if (act && strcmp(act, "silu") != 0)
    return r1d_fail(err, R1D_EUNSUPPORTED,
                    "%s: hidden_act \"%s\" is not supported (only silu)", path,
                    act);
  json_t *lt = json_object_get(root, "layer_types"), *v;
  size_t i;
  json_array_foreach(lt, i, v) {
    const char *s = json_string_value(v);
    if (!s || strcmp(s, "full_attention") != 0)
      return r1d_fail(err, R1D_EUNSUPPORTED,
                      "%s: layer_types[%zu] \"%s\" is not supported (only "
                      "full_attention)",
                      path, i, s ? s : "?");
  }
  int flag = 0, rc;
  if (cfg->arch == R1D_ARCH_LLAMA) {
    if ((rc = get_bool(root, "mlp_bias", 0, path, &flag, err))) return rc;
    if (flag)
      return r1d_fail(err, R1D_EUNSUPPORTED, "%s: mlp_bias is not supported",
                      path);
  } else {
    if ((rc = get_bool(root, "use_sliding_window", 0, path, &flag, err)))
      return rc;
    if (flag)
      return r1d_fail(err, R1D_EUNSUPPORTED,
                      "%s: use_sliding_window is not supported", path);
  }
  return R1D_OK;
}

/* In double: exact below 2^53, and sizes that each fit an int can make the
 * products overflow 64-bit integers (validate() uses this to refuse them). */
static double param_count(const r1d_config *c) {
  double h = c->hidden_size, q = (double)c->num_heads * c->head_dim;
  double kv = (double)c->num_kv_heads * c->head_dim;
  double per_layer = 2 * h                /* two RMSNorm weights */
                     + h * q + 2 * h * kv /* q, k, v */
                     + q * h              /* o */
                     + 3 * h * c->intermediate_size;
  if (c->qkv_bias) per_layer += q + 2 * kv;
  double emb = (double)c->vocab_size * h;
  return emb + c->num_layers * per_layer + h +
         (c->tie_word_embeddings ? 0 : emb);
}

/* Sizes beyond any real model (see validate). */
#define MAX_PARAMS 0x1p48

static int validate(const char *path, const r1d_config *c, int has_head_dim,
                    r1d_error *err) {
  const struct {
    const char *key;
    int v;
  } sizes[] = {
      {"vocab_size", c->vocab_size},
      {"hidden_size", c->hidden_size},
      {"intermediate_size", c->intermediate_size},
      {"num_hidden_layers", c->num_layers},
      {"num_attention_heads", c->num_heads},
      {"num_key_value_heads", c->num_kv_heads},
      {"head_dim", c->head_dim},
      {"max_position_embeddings", c->max_position_embeddings},
  };
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    if (sizes[i].v <= 0)
      return r1d_fail(err, R1D_ERANGE, "%s: %s %d is not positive", path,
                      sizes[i].key, sizes[i].v);
  if (c->num_heads % c->num_kv_heads != 0)
    return r1d_fail(err, R1D_EFORMAT,
                    "%s: num_attention_heads %d is not a multiple of "
                    "num_key_value_heads %d",
                    path, c->num_heads, c->num_kv_heads);
  if (!has_head_dim && c->hidden_size % c->num_heads != 0)
    return r1d_fail(err, R1D_EFORMAT,
                    "%s: hidden_size %d is not a multiple of "
                    "num_attention_heads %d",
                    path, c->hidden_size, c->num_heads);
  if (c->head_dim % 2 != 0)
    return r1d_fail(err, R1D_EFORMAT,
                    "%s: head_dim %d is odd (rotary embedding needs pairs)",
                    path, c->head_dim);
  if (!(c->rms_norm_eps > 0) || !isfinite(c->rms_norm_eps))
    return r1d_fail(err, R1D_ERANGE, "%s: rms_norm_eps must be positive", path);
  if (!(c->rope_theta > 0) || !isfinite(c->rope_theta))
    return r1d_fail(err, R1D_ERANGE, "%s: rope_theta must be positive", path);
  /* Row widths the kernels take as int. */
  if ((long long)c->num_heads * c->head_dim > INT_MAX ||
      (long long)c->num_kv_heads * c->head_dim > INT_MAX)
    return r1d_fail(err, R1D_ERANGE,
                    "%s: num_attention_heads x head_dim (%d x %d) is too large",
                    path, c->num_heads, c->head_dim);
  /* Sizes that pass one by one can still multiply past 64 bits (tensor
   * sizes, allocations); real models stay far below 2^48 parameters
   * (DeepSeek-V3: 2^39.3). */
  if (param_count(c) > MAX_PARAMS)
    return r1d_fail(err, R1D_ERANGE,
                    "%s: the sizes imply %.3g parameters (more than 2^48)",
                    path, param_count(c));
  return R1D_OK;
}

static int parse_sizes(json_t *root, const char *path, r1d_config *c,
                       int *has_head_dim, r1d_error *err) {
  int rc;
  if ((rc = get_int(root, "vocab_size", 1, 0, path, &c->vocab_size, err)) ||
      (rc = get_int(root, "hidden_size", 1, 0, path, &c->hidden_size, err)) ||
      (rc = get_int(root, "intermediate_size", 1, 0, path,
                    &c->intermediate_size, err)) ||
      (rc = get_int(root, "num_hidden_layers", 1, 0, path, &c->num_layers,
                    err)) ||
      (rc = get_int(root, "num_attention_heads", 1, 0, path, &c->num_heads,
                    err)) ||
      (rc = get_int(root, "num_key_value_heads", 0, c->num_heads, path,
                    &c->num_kv_heads, err)))
    return rc;
  *has_head_dim = get(root, "head_dim") != NULL;
  int def_hd = c->num_heads > 0 ? c->hidden_size / c->num_heads : 0;
  if ((rc = get_int(root, "head_dim", 0, def_hd, path, &c->head_dim, err)))
    return rc;
  /* transformers' defaults: Qwen2 32768, Llama 2048. */
  int def_max = c->arch == R1D_ARCH_QWEN2 ? 32768 : 2048;
  return get_int(root, "max_position_embeddings", 0, def_max, path,
                 &c->max_position_embeddings, err);
}

int r1d_config_parse(const char *json_text, const char *path, r1d_config *cfg,
                     r1d_error *err) {
  memset(cfg, 0, sizeof *cfg);
  cfg->bos_token_id = -1;
  json_error_t jerr;
  json_t *root = json_loads(json_text, 0, &jerr);
  if (!root)
    return r1d_fail(err, R1D_EFORMAT, "%s: invalid JSON: %s (line %d)", path,
                    jerr.text, jerr.line);
  int rc, has_head_dim = 0;
  double eps = 0;
  if (!json_is_object(root)) {
    rc = r1d_fail(err, R1D_EFORMAT, "%s: not a JSON object", path);
    goto done;
  }
  if ((rc = parse_arch(root, path, &cfg->arch, err)) ||
      (rc = parse_sizes(root, path, cfg, &has_head_dim, err)) ||
      (rc = get_num(root, "rms_norm_eps", 0, 1e-6, path, &eps, err)) ||
      (rc = parse_rope_scaling(root, path, cfg, err)) ||
      (rc = get_bool(root, "tie_word_embeddings", 0, path,
                     &cfg->tie_word_embeddings, err)) ||
      (rc = parse_special(root, path, cfg, err)) ||
      (rc = check_unsupported(root, path, cfg, err)))
    goto done;
  cfg->rms_norm_eps = (float)eps;
  /* Qwen2's attention always has q/k/v biases; Llama's only with
   * attention_bias (which also adds one to o_proj, unsupported here). */
  if (cfg->arch == R1D_ARCH_QWEN2)
    cfg->qkv_bias = 1;
  else {
    if ((rc = get_bool(root, "attention_bias", 0, path, &cfg->qkv_bias, err)))
      goto done;
    if (cfg->qkv_bias) {
      rc = r1d_fail(err, R1D_EUNSUPPORTED,
                    "%s: attention_bias is not supported for Llama (it adds "
                    "an o_proj bias)",
                    path);
      goto done;
    }
  }
  const char *dt = json_string_value(json_object_get(root, "torch_dtype"));
  if (!dt) dt = json_string_value(json_object_get(root, "dtype"));
  if (dt) snprintf(cfg->torch_dtype, sizeof cfg->torch_dtype, "%s", dt);
  rc = validate(path, cfg, has_head_dim, err);
done:
  json_decref(root);
  return rc;
}

/* generation_config.json's sampling fields. Out-of-range values are an
 * error here rather than a surprise at the first request. */
static int parse_generation_defaults(json_t *gen, const char *path,
                                     r1d_config *cfg, r1d_error *err) {
  json_t *t = json_object_get(gen, "temperature");
  json_t *p = json_object_get(gen, "top_p");
  json_t *k = json_object_get(gen, "top_k");
  json_t *ds = json_object_get(gen, "do_sample");
  if (t && !json_is_null(t)) {
    if (!json_is_number(t) || !(json_number_value(t) >= 0.0))
      return r1d_fail(err, R1D_EFORMAT, "%s: bad \"temperature\"", path);
    cfg->gen_temperature = (float)json_number_value(t);
  }
  if (p && !json_is_null(p)) {
    if (!json_is_number(p) ||
        !(json_number_value(p) > 0.0 && json_number_value(p) <= 1.0))
      return r1d_fail(err, R1D_EFORMAT, "%s: bad \"top_p\"", path);
    cfg->gen_top_p = (float)json_number_value(p);
  }
  if (k && !json_is_null(k)) {
    if (!json_is_integer(k) || json_integer_value(k) < 0 ||
        json_integer_value(k) > INT_MAX)
      return r1d_fail(err, R1D_EFORMAT, "%s: bad \"top_k\"", path);
    cfg->gen_top_k = (int)json_integer_value(k);
  }
  if (json_is_false(ds)) cfg->gen_temperature = 0.0f; /* greedy */
  return R1D_OK;
}

int r1d_config_load(const char *dir, r1d_config *cfg, r1d_error *err) {
  char *path = r1d_path_join(dir, "config.json");
  char *gpath = r1d_path_join(dir, "generation_config.json");
  char *text = NULL;
  json_t *gen = NULL;
  int rc;
  if (!path || !gpath) {
    rc = r1d_fail(err, R1D_ENOMEM, "%s: out of memory", dir);
    goto done;
  }
  if ((rc = r1d_read_file(path, &text, NULL, err))) goto done;
  if ((rc = r1d_config_parse(text, path, cfg, err))) goto done;
  cfg->gen_temperature = NAN;
  cfg->gen_top_p = NAN;
  cfg->gen_top_k = -1;
  if (!r1d_file_exists(gpath)) goto done;
  json_error_t jerr;
  gen = json_load_file(gpath, 0, &jerr);
  if (!gen || !json_is_object(gen)) {
    rc = r1d_fail(err, R1D_EFORMAT, "%s: invalid JSON: %s (line %d)", gpath,
                  gen ? "not an object" : jerr.text, gen ? 1 : jerr.line);
    goto done;
  }
  rc = parse_special(gen, gpath, cfg, err);
  if (rc == 0) rc = parse_generation_defaults(gen, gpath, cfg, err);
done:
  json_decref(gen);
  free(text);
  free(path);
  free(gpath);
  return rc;
}

/* Mirrors transformers' float32 tensor arithmetic step by step (Python
 * scalars become float32 operands), so the frequencies agree to the last bit
 * or so; only the pow is evaluated in double and rounded once. */
void r1d_config_rope_inv_freq(const r1d_config *cfg, float *inv_freq) {
  int d = cfg->head_dim, half = d / 2;
  float base = cfg->rope_theta;
  for (int i = 0; i < half; i++) {
    float e = (float)(2 * i) / (float)d;
    float p = (float)pow((double)base, (double)e);
    inv_freq[i] = 1.0f / p;
  }
  if (cfg->rope_type != R1D_ROPE_LLAMA3) return;
  float factor = cfg->rope_factor;
  float low = cfg->rope_low_freq_factor, high = cfg->rope_high_freq_factor;
  double old_ctx = cfg->rope_original_max_position;
  /* Python computes these two in double; they are compared as float32. */
  float low_wavelen = (float)(old_ctx / low);
  float high_wavelen = (float)(old_ctx / high);
  const float two_pi = (float)(2.0 * 3.14159265358979323846);
  for (int i = 0; i < half; i++) {
    float inv = inv_freq[i];
    float wavelen = two_pi / inv;
    float scaled = wavelen > low_wavelen ? inv / factor : inv;
    int medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
    if (medium) {
      float smooth = ((float)old_ctx / wavelen - low) / (high - low);
      scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
    }
    inv_freq[i] = scaled;
  }
}

long long r1d_config_param_count(const r1d_config *c) {
  double n = param_count(c);
  return n < 0x1p62 ? (long long)n : LLONG_MAX;
}
