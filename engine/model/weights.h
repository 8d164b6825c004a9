/* weights.h - the parameters of a Qwen2/Llama model as fp32 arrays, loaded
 * from a safetensors folder (any of F32/F16/BF16 on disk) and checked against
 * the config: every expected tensor present with its exact shape. Tensor names
 * are Hugging Face's (model.layers.N.self_attn.q_proj.weight, ...). */
#ifndef R1D_ENGINE_MODEL_WEIGHTS_H
#define R1D_ENGINE_MODEL_WEIGHTS_H

#include <stdint.h>

#include "../../common/status.h"
#include "config.h"

typedef struct r1d_layer_weights {
  float *attn_norm;     /* [hidden]              input_layernorm */
  float *q_w, *q_b;     /* [heads*hd, hidden], [heads*hd] (bias Qwen2 only) */
  float *k_w, *k_b;     /* [kv*hd, hidden], [kv*hd] */
  float *v_w, *v_b;     /* [kv*hd, hidden], [kv*hd] */
  float *o_w;           /* [hidden, heads*hd] */
  float *ffn_norm;      /* [hidden]              post_attention_layernorm */
  float *gate_w, *up_w; /* [inter, hidden] */
  float *down_w;        /* [hidden, inter] */
} r1d_layer_weights;

typedef struct r1d_weights {
  float *embed;      /* [vocab, hidden] model.embed_tokens.weight */
  float *final_norm; /* [hidden] model.norm.weight */
  float *lm_head;    /* [vocab, hidden]; == embed when tied */
  r1d_layer_weights *layers;
  int n_layers;
  float *storage; /* one allocation holding every array above */
  size_t n_floats;
} r1d_weights;

/* Loads dir's safetensors into fp32. A missing tensor or a wrong shape fails
 * with R1D_ENOTFOUND / R1D_EFORMAT naming the tensor and file. */
int r1d_weights_load(const char *dir, const r1d_config *cfg, r1d_weights *w,
                     r1d_error *err);

/* Allocates zeroed weights with the config's shapes (for model init, tests). */
int r1d_weights_alloc(const r1d_config *cfg, r1d_weights *w);
void r1d_weights_free(r1d_weights *w);

/* Visits every tensor with its Hugging Face name and shape, in a fixed order
 * (embed, layers..., norm, lm_head unless tied). Used by the writer and tests.
 */
typedef int (*r1d_weights_visit_fn)(void *user, const char *name, int ndim,
                                    const int64_t *shape, float *data);
int r1d_weights_visit(const r1d_config *cfg, r1d_weights *w,
                      r1d_weights_visit_fn fn, void *user);

/* Writes weights as dir/model.safetensors in dtype F32 or BF16. */
int r1d_weights_save(const char *dir, const r1d_config *cfg,
                     const r1d_weights *w, int bf16, r1d_error *err);

#endif
