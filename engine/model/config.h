/* config.h - the model hyper-parameters r1d understands, read from a Hugging
 * Face folder's config.json (+ generation_config.json for bos/eos), for the
 * Qwen2ForCausalLM and LlamaForCausalLM architectures (the R1 distills). */
#ifndef R1D_ENGINE_MODEL_CONFIG_H
#define R1D_ENGINE_MODEL_CONFIG_H

#include "../../common/status.h"

typedef enum { R1D_ARCH_QWEN2 = 0, R1D_ARCH_LLAMA = 1 } r1d_arch;

typedef enum {
  R1D_ROPE_DEFAULT = 0,
  R1D_ROPE_LLAMA3 = 1, /* Llama 3.1 low/high frequency rescaling */
} r1d_rope_type;

#define R1D_MAX_EOS 8

typedef struct r1d_config {
  r1d_arch arch;
  int vocab_size;
  int hidden_size;
  int intermediate_size;
  int num_layers;
  int num_heads;
  int num_kv_heads;
  int head_dim; /* config "head_dim" or hidden_size / num_heads */
  int max_position_embeddings;
  float rms_norm_eps;
  float rope_theta;
  r1d_rope_type rope_type;
  float rope_factor;
  float rope_low_freq_factor;
  float rope_high_freq_factor;
  int rope_original_max_position;
  int tie_word_embeddings;
  int qkv_bias;     /* Qwen2: q/k/v projections carry a bias */
  int bos_token_id; /* -1 when absent */
  int eos_token_ids[R1D_MAX_EOS];
  int n_eos;
  char torch_dtype[16]; /* "bfloat16", "float16", "float32" or "" */
  /* Sampling defaults of generation_config.json, used when a request sets
   * none (as transformers and vLLM do): NAN / -1 when absent. do_sample false
   * makes gen_temperature 0 (greedy). */
  float gen_temperature;
  float gen_top_p;
  int gen_top_k;
} r1d_config;

/* Parses config.json text. `path` only names the file in error messages.
 * Validates: known architecture, positive sizes, heads divide hidden size
 * (unless head_dim is given), num_heads % num_kv_heads == 0, rope_scaling
 * type known ("llama3", or absent/null/"default"). Reads both the
 * transformers 4 layout (rope_theta + rope_scaling) and the transformers 5
 * one ("rope_parameters" holding rope_theta and rope_type). Features that
 * change the maths and are not implemented (sliding-window layers, Llama
 * attention_bias/mlp_bias, activations other than silu) fail with
 * R1D_EUNSUPPORTED. */
int r1d_config_parse(const char *json_text, const char *path, r1d_config *cfg,
                     r1d_error *err);

/* Loads dir/config.json, then dir/generation_config.json if present (its
 * bos_token_id / eos_token_id, int or list, override config.json's; its
 * do_sample, temperature, top_p and top_k become the gen_* defaults). */
int r1d_config_load(const char *dir, r1d_config *cfg, r1d_error *err);

/* inv_freq[head_dim/2] with rope_theta and any rope scaling applied, as
 * transformers' ROPE_INIT_FUNCTIONS compute it: the same float32 steps, the
 * pow in double rounded once (within 1-2 ulp of torch's vectorised powf). */
void r1d_config_rope_inv_freq(const r1d_config *cfg, float *inv_freq);

/* Number of parameters the config implies (for reports). */
long long r1d_config_param_count(const r1d_config *cfg);

#endif
