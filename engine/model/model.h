/* model.h - a loaded model (config + fp32 weights + backend) and its forward
 * pass over a single sequence's contiguous KV cache. Prefill runs all prompt
 * tokens as one batched pass; decode feeds one token at a time. The paged,
 * batched engine (issue 3) builds on the same ops. */
#ifndef R1D_ENGINE_MODEL_MODEL_H
#define R1D_ENGINE_MODEL_MODEL_H

#include <stdint.h>

#include "../../common/status.h"
#include "../../kernels/backend.h"
#include "config.h"
#include "weights.h"

typedef struct r1d_model {
  r1d_config cfg;
  r1d_weights w;
  r1d_backend be;
  float *inv_freq; /* [head_dim/2] */
} r1d_model;

/* Loads config + weights from a Hugging Face folder onto backend `be`. */
int r1d_model_load(const char *dir, const r1d_backend *be, r1d_model **out,
                   r1d_error *err);
void r1d_model_free(r1d_model *m);

/* KV cache of one sequence: k and v are [n_layers][max_len][kv_heads*hd]. */
typedef struct r1d_kv_cache {
  int max_len;
  int len; /* positions filled */
  float *k, *v;
} r1d_kv_cache;

int r1d_kv_cache_create(const r1d_model *m, int max_len, r1d_kv_cache **out);
void r1d_kv_cache_free(r1d_kv_cache *kv);

/* Runs n tokens at positions kv->len .. kv->len+n-1 in one batched pass,
 * appends their keys/values, advances kv->len. Writes logits [n, vocab] when
 * all_logits, else only the last token's [vocab]. Fails with R1D_ERANGE when
 * the cache would overflow. */
int r1d_model_forward(r1d_model *m, r1d_kv_cache *kv, const int32_t *ids, int n,
                      int all_logits, float *logits, r1d_error *err);

#endif
