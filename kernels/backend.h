/* backend.h - the ops table: every numeric operation the model needs, behind
 * function pointers, so the same forward code runs on the CPU reference and
 * (later) on CUDA. Kernels know no model, no tokenizer, no files.
 *
 * Conventions: row-major fp32 buffers in the backend's memory (host memory for
 * the CPU backend). Shapes are given in the comment of each op as [rows, cols].
 * Linear layers follow PyTorch: weight W is [out, in] and y = x @ W^T + b. */
#ifndef R1D_KERNELS_BACKEND_H
#define R1D_KERNELS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef struct r1d_backend_ops {
  const char *name;

  /* c[m,n] = a[m,k] @ b[n,k]^T + beta * c[m,n]   (beta 0 or 1) */
  void (*matmul_nt)(void *ctx, int m, int n, int k, const float *a,
                    const float *b, float beta, float *c);

  /* x[m,n] += bias[n] for every row */
  void (*add_bias)(void *ctx, int m, int n, const float *bias, float *x);

  /* out[n] = a[n] + b[n]   (out may alias a or b) */
  void (*add)(void *ctx, size_t n, const float *a, const float *b, float *out);

  /* out[i,:] = table[ids[i],:] for i < n; table is [vocab, dim] */
  void (*embedding)(void *ctx, int n, const int32_t *ids, const float *table,
                    int dim, float *out);

  /* out[i,:] = x[i,:] / sqrt(mean(x[i,:]^2) + eps) * w   for i < n rows of dim */
  void (*rmsnorm)(void *ctx, int n, int dim, const float *x, const float *w,
                  float eps, float *out);

  /* In-place rotary embedding on x[n, n_heads, head_dim] with Hugging Face's
   * half-rotation pairing (j with j + head_dim/2). Token i has position pos[i];
   * inv_freq[head_dim/2] already includes any rope scaling. */
  void (*rope)(void *ctx, int n, int n_heads, int head_dim, const int32_t *pos,
               const float *inv_freq, float *x);

  /* Causal attention of n new queries against a contiguous KV cache.
   * q[n, n_heads, head_dim]; k_cache, v_cache [>= start+n, n_kv_heads, head_dim]
   * hold all positions 0 .. start+n-1 (the new ones already written).
   * Query i sits at position start+i and attends to positions 0..start+i.
   * GQA: query head h reads kv head h / (n_heads / n_kv_heads).
   * out[n, n_heads, head_dim]. Scale is 1/sqrt(head_dim). */
  void (*attention)(void *ctx, int n, int start, int n_heads, int n_kv_heads,
                    int head_dim, const float *q, const float *k_cache,
                    const float *v_cache, float *out);

  /* out[i] = silu(gate[i]) * up[i] for i < n   (silu(x) = x * sigmoid(x)) */
  void (*swiglu)(void *ctx, size_t n, const float *gate, const float *up,
                 float *out);
} r1d_backend_ops;

typedef struct r1d_backend {
  const r1d_backend_ops *ops;
  void *ctx;
} r1d_backend;

#endif
