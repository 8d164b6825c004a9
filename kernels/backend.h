/* backend.h - the ops table: every numeric operation the model needs, behind
 * function pointers, so the same forward code runs on the CPU reference and
 * on CUDA. Kernels know no model, no tokenizer, no files.
 *
 * Conventions: row-major buffers in the backend's memory (host memory for the
 * CPU backend, device memory for CUDA), fp32 unless said otherwise. Shapes are
 * given in the comment of each op as [rows, cols]. Linear layers follow
 * PyTorch: weight W is [out, in] and y = x @ W^T + b. Integer metadata
 * (ids, positions, slots, block tables) lives in backend memory too; the
 * plain int arguments are host values.
 *
 * Ops are asynchronous on devices with a queue (CUDA): they are ordered among
 * themselves, and `download` and `sync` wait for what came before. Ops return
 * nothing; a device failure is sticky and reported by the next `sync`,
 * `upload` or `download` as R1D_EBACKEND.
 *
 * Weights: linear weights and the embedding table live in the backend's
 * weight format (fp32 on the CPU, bf16 on CUDA), made by `weight_upload`.
 * Norm weights, biases and rope frequencies are always fp32.
 *
 * Paged KV: the caches of one layer are [n_slots, n_kv_heads * head_dim] for
 * K and for V, n_slots = n_blocks * block_size. A sequence's position p lives
 * in slot block_table[p / block_size] * block_size + p % block_size; slots are
 * int64 because blocks * block_size overflows 32 bits on large pools. */
#ifndef R1D_KERNELS_BACKEND_H
#define R1D_KERNELS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef enum r1d_weight_format {
  R1D_WEIGHT_F32 = 0,
  R1D_WEIGHT_BF16 = 1,
} r1d_weight_format;

/* One AdamW step's settings, as torch.optim.AdamW takes them; step is the
 * new step count (1 for the first update). Each backend derives the fp32
 * scalars from these in double, the way rl/optim.c does, so every backend
 * updates bit for bit alike. */
typedef struct r1d_adamw_step {
  double lr, beta1, beta2, eps, weight_decay;
  long step;
} r1d_adamw_step;

typedef struct r1d_backend_ops {
  const char *name;
  /* 1 when buffers are host pointers (the CPU backend): callers may then read
   * and write them directly and skip upload/download. */
  int host_memory;
  r1d_weight_format weight_format;

  /* Called by a thread before it runs ops (the engine's thread): sets the
   * per-thread runtime state the backend relies on (OpenMP's thread count
   * is a per-thread setting; CUDA's current device). May be NULL. */
  void (*attach_thread)(void *ctx);

  /* ---- memory ---- */
  /* Returns a buffer of `bytes` (contents undefined), NULL when out of memory. */
  void *(*alloc)(void *ctx, size_t bytes);
  void (*free)(void *ctx, void *p); /* p may be NULL */
  /* host -> backend, backend -> host; 0 or R1D_EBACKEND. download waits for
   * every op queued before it. */
  int (*upload)(void *ctx, void *dst, const void *src, size_t bytes);
  int (*download)(void *ctx, void *dst, const void *src, size_t bytes);
  /* backend -> backend copy of `bytes` (regions do not overlap) */
  void (*copy)(void *ctx, void *dst, const void *src, size_t bytes);
  /* sets `bytes` bytes of a backend buffer to 0 (gradients are zeroed
   * explicitly before the kernels that accumulate into them) */
  void (*zero)(void *ctx, void *p, size_t bytes);
  /* Waits for all queued ops; 0 or R1D_EBACKEND (then the backend is unusable). */
  int (*sync)(void *ctx);
  /* n fp32 host values -> a new buffer in weight_format; NULL when out of
   * memory. Free it with `free`. */
  void *(*weight_upload)(void *ctx, const float *src, size_t n);

  /* ---- dense maths ---- */
  /* c[m,n] = a[m,k] @ b[n,k]^T + beta * c[m,n]   (beta 0 or 1), all fp32 */
  void (*matmul_nt)(void *ctx, int m, int n, int k, const float *a,
                    const float *b, float beta, float *c);

  /* y[m,n] = x[m,k] @ w[n,k]^T + beta * y[m,n]   (beta 0 or 1); w in the
   * weight format, x and y fp32 (CUDA: bf16 GEMM with fp32 accumulation).
   * Row-invariant: row i of y does not depend on m or on the other rows, so a
   * sequence computes the same numbers alone or in any batch. */
  void (*linear)(void *ctx, int m, int n, int k, const float *x, const void *w,
                 float beta, float *y);

  /* x[m,n] += bias[n] for every row */
  void (*add_bias)(void *ctx, int m, int n, const float *bias, float *x);

  /* out[n] = a[n] + b[n]   (out may alias a or b) */
  void (*add)(void *ctx, size_t n, const float *a, const float *b, float *out);

  /* out[i,:] = table[ids[i],:] for i < n; table is [vocab, dim] in the weight
   * format, out fp32 */
  void (*embedding)(void *ctx, int n, const int32_t *ids, const void *table,
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

  /* out[i,:] = x[rows[i],:] for i < n; x [*, dim], out [n, dim] */
  void (*gather_rows)(void *ctx, int n, int dim, const int32_t *rows,
                      const float *x, float *out);

  /* ---- paged KV ---- */
  /* k_cache[slots[i],:] = k[i,:], v_cache[slots[i],:] = v[i,:] for i < n;
   * k, v [n, kv_dim]. A negative slot skips the row. */
  void (*kv_write)(void *ctx, int n, int kv_dim, const float *k, const float *v,
                   const int64_t *slots, float *k_cache, float *v_cache);

  /* Causal attention of n_q queries of several sequences over paged caches.
   * q[n_q, n_heads, head_dim], out the same. Query i belongs to sequence
   * q_seq[i] (a row of block_tables [n_seqs, max_blocks]) and sits at position
   * q_pos[i]; it attends to that sequence's positions 0..q_pos[i], all of
   * which are already written (kv_write of this step included). GQA as in
   * `attention`, scale 1/sqrt(head_dim). max_pos >= every q_pos[i] (a host
   * bound for launch sizes). Each query row is computed the same way whatever
   * else is in the batch, positions summed in increasing order. Slots past a
   * query's position are never read. */
  void (*paged_attention)(void *ctx, int n_q, const int32_t *q_seq,
                          const int32_t *q_pos, int max_pos,
                          const int32_t *block_tables, int max_blocks,
                          int block_size, int n_heads, int n_kv_heads,
                          int head_dim, const float *q, const float *k_cache,
                          const float *v_cache, float *out);

  /* ---- logits ---- */
  /* lse[i] = log(sum_j exp(x[i,j])) for rows i < n of x[n, vocab]; the raw
   * logprob of token t is x[i,t] - lse[i]. */
  void (*logsumexp)(void *ctx, int n, int vocab, const float *x, float *lse);

  /* Draws one token per row of logits[n, vocab] (not modified). Row i:
   * temperature[i] <= 1e-5 -> the argmax (lowest id on ties). Otherwise
   * p = softmax(logits / temperature[i]); order tokens by descending p (ties:
   * lower id first); keep the top_k[i] first (top_k <= 0: all); renormalise
   * over them and keep the shortest prefix whose mass reaches top_p[i] (>= 1:
   * all), as Hugging Face and vLLM do; then drop tokens with p < min_p[i] *
   * max p (min_p <= 0: none); renormalise and pick by inverse
   * CDF over the kept tokens in that order with u[i] in [0, 1). Writes
   * token[i] and logprob[i] = log_softmax(logits[i])[token] (raw, at
   * temperature 1). */
  void (*sample)(void *ctx, int n, int vocab, const float *logits,
                 const float *temperature, const int32_t *top_k,
                 const float *top_p, const float *min_p, const float *u,
                 int32_t *token, float *logprob);

  /* ---- training ----
   * The gradients of the forward ops above; the contracts (saved inputs,
   * formulas, NULL outputs) are those of kernels/cpu/cpu_backward.h. Every
   * gradient ACCUMULATES (+=) and the caller zeroes explicitly; sums run in
   * a fixed order (no atomics), so results are deterministic. Training
   * reads the fp32 master weights: linear_backward's w is fp32 in every
   * backend, whatever the weight format. */
  void (*linear_backward)(void *ctx, int m, int n, int k, const float *x,
                          const float *w, const float *dy, float *dx, float *dw,
                          float *db);
  void (*embedding_backward)(void *ctx, int n, const int32_t *ids, int dim,
                             const float *dout, float *dtable);
  void (*rmsnorm_backward)(void *ctx, int n, int dim, const float *x,
                           const float *w, float eps, const float *dout,
                           float *dx, float *dw);
  void (*rope_backward)(void *ctx, int n, int n_heads, int head_dim,
                        const int32_t *pos, const float *inv_freq,
                        const float *dout, float *dx);
  void (*attention_backward)(void *ctx, int n, int start, int n_heads,
                             int n_kv_heads, int head_dim, const float *q,
                             const float *k, const float *v, const float *dout,
                             float *dq, float *dk, float *dv);
  void (*swiglu_backward)(void *ctx, size_t n, const float *gate,
                          const float *up, const float *dout, float *dgate,
                          float *dup);
  /* loss (one float) and target_logprob [n] are backend buffers */
  void (*cross_entropy)(void *ctx, int n, int vocab, const float *logits,
                        const int32_t *targets, float grad_scale, float *loss,
                        float *target_logprob, float *dlogits);
  /* One AdamW step of one tensor: param, grad, m, v [n] fp32 (param, m, v
   * updated in place) as rl/optim.c computes it; decay: the tensor is in the
   * weight-decay group; param_lowp [n] in the weight format receives the
   * updated parameter too (the serving copy), or NULL. */
  void (*adamw)(void *ctx, size_t n, const r1d_adamw_step *s, int decay,
                float *param, const float *grad, float *m, float *v,
                void *param_lowp);
  /* *out (one double, a backend buffer) = sum of x[i]^2 over [n], summed in
   * double in an order fixed by n alone (global-norm clipping) */
  void (*sum_squares)(void *ctx, size_t n, const float *x, double *out);
  /* x[i] *= factor over [n] (applying the clipping coefficient) */
  void (*scale)(void *ctx, size_t n, float factor, float *x);
} r1d_backend_ops;

typedef struct r1d_backend {
  const r1d_backend_ops *ops;
  void *ctx;
} r1d_backend;

#endif
