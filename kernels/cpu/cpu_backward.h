/* cpu_backward.h - the CPU backward (gradient) kernels of the training ops,
 * the readable reference the CUDA twins will be checked against.
 *
 * They are the CPU backend's training entries of the ops table
 * (kernels/backend.h); the trainer on the CPU also calls them directly on
 * host buffers. Signatures follow the table's conventions (ctx first and
 * unused, host ints for sizes, outputs last, no return value).
 *
 * Rules shared by every function here:
 *  - Gradients ACCUMULATE: every d* output is updated with +=, never zeroed.
 *    The caller zeroes a gradient buffer explicitly when a new step starts;
 *    calling a backward twice adds its contribution twice. A NULL gradient
 *    pointer means "not wanted" and skips that work.
 *  - Inputs saved from the forward are named in each contract; nothing else
 *    from the forward is needed (the softmax of attention and the rmsnorm
 *    scale are recomputed, not saved).
 *  - Gradient buffers never alias the inputs or each other.
 *  - Results are deterministic: every sum runs in a fixed order whatever the
 *    number of OpenMP threads (no atomics, no parallel reductions).
 *
 * Ops without a kernel of their own:
 *  - residual add  y = a + b : da += dy and db += dy. The forward adds in
 *    place (x += f(x)), so the residual stream's gradient simply flows on and
 *    each branch's backward accumulates into the same buffer: no op.
 *  - add_bias is part of r1d_cpu_linear_backward (db).
 *  - tied lm head: r1d_cpu_linear_backward with w = the embedding table and
 *    dw = dtable, next to r1d_cpu_embedding_backward into the same dtable;
 *    both accumulate, so the order does not matter. */
#ifndef R1D_KERNELS_CPU_BACKWARD_H
#define R1D_KERNELS_CPU_BACKWARD_H

#include <stddef.h>
#include <stdint.h>

#include "../backend.h"

/* Linear  y[m,n] = x[m,k] @ w[n,k]^T (+ b[n]),  w fp32 [out, in].
 * Saved: x, w.  Given dy[m,n]:
 *   dx[m,k] += dy @ w          (NULL: skipped)
 *   dw[n,k] += dy^T @ x        (NULL: skipped)
 *   db[n]   += sum_i dy[i,:]   (NULL: skipped; summed in double) */
void r1d_cpu_linear_backward(void *ctx, int m, int n, int k, const float *x,
                             const float *w, const float *dy, float *dx,
                             float *dw, float *db);

/* Embedding  out[i,:] = table[ids[i],:]  for i < n, table [vocab, dim].
 * Saved: ids.  Given dout[n, dim]:
 *   dtable[ids[i],:] += dout[i,:]
 * Repeated ids add up in increasing i, the same on any thread count. */
void r1d_cpu_embedding_backward(void *ctx, int n, const int32_t *ids, int dim,
                                const float *dout, float *dtable);

/* RMSNorm  out[i,:] = x[i,:] * r_i * w,  r_i = 1/sqrt(mean(x[i,:]^2) + eps).
 * Saved: x, w (r_i is recomputed).  Given dout[n, dim]:
 *   dx[i,j] += r_i * (w_j dout_ij - x_ij r_i^2 / dim * sum_k dout_ik w_k x_ik)
 *   dw[j]   += sum_i dout_ij x_ij r_i          (summed over rows in double)
 * dx or dw may be NULL. */
void r1d_cpu_rmsnorm_backward(void *ctx, int n, int dim, const float *x,
                              const float *w, float eps, const float *dout,
                              float *dx, float *dw);

/* Rotary embedding (the in-place forward out = R(pos) x on x[n, n_heads,
 * head_dim], half-rotation pairing). Saved: pos, inv_freq. The rotation is
 * orthogonal, so the gradient is the inverse rotation:
 *   dx[n, n_heads, head_dim] += R(pos)^T dout
 * dout and dx must be different buffers (accumulation cannot be in place). */
void r1d_cpu_rope_backward(void *ctx, int n, int n_heads, int head_dim,
                           const int32_t *pos, const float *inv_freq,
                           const float *dout, float *dx);

/* Causal GQA attention, the contiguous training layout of the forward
 * `attention`: q[n, n_heads*head_dim]; k, v [start+n, n_kv_heads*head_dim];
 * query i at position start+i sees keys 0..start+i; head h reads kv head
 * h / (n_heads / n_kv_heads); scale 1/sqrt(head_dim).
 * Saved: q, k, v (post-rope). The softmax is recomputed from q and k (no
 * probabilities are saved). Given dout[n, n_heads*head_dim]:
 *   dq[n, n_heads*head_dim]       += dL/dq
 *   dk, dv [start+n, n_kv_heads*head_dim] += dL/dk, dL/dv (rows of the
 *   prefix 0..start-1 get their share too). dq, dk or dv may be NULL. */
void r1d_cpu_attention_backward(void *ctx, int n, int start, int n_heads,
                                int n_kv_heads, int head_dim, const float *q,
                                const float *k, const float *v,
                                const float *dout, float *dq, float *dk,
                                float *dv);

/* SwiGLU  out[i] = silu(gate[i]) * up[i].  Saved: gate, up.  Given dout[n]:
 *   dgate[i] += dout[i] * up[i] * s (1 + gate[i] (1 - s)),  s = sigmoid(gate)
 *   dup[i]   += dout[i] * silu(gate[i])
 * dgate or dup may be NULL. */
void r1d_cpu_swiglu_backward(void *ctx, size_t n, const float *gate,
                             const float *up, const float *dout, float *dgate,
                             float *dup);

/* Fused softmax cross-entropy over logits[n, vocab] and targets[n]; a
 * negative target (-1) marks an ignored position. With c = the number of
 * non-ignored rows:
 *   *loss            = -(1/c) sum_{i counted} logprob_i  (0 when c == 0);
 *                      an output, OVERWRITTEN
 *   target_logprob[i] = log_softmax(logits[i])[targets[i]], 0 for ignored
 *                      rows; OVERWRITTEN (kept for GRPO's ratios)
 *   dlogits[i,:]     += grad_scale / c * (softmax(logits[i]) - onehot(t_i))
 *                      for counted rows; ignored rows get nothing
 *                      (NULL: skipped).
 * grad_scale is dL_total/d(loss): 1 for a plain step, 1/steps when gradients
 * of several micro-batches are accumulated. Sums over the vocabulary and
 * over rows run in double. Targets must be < vocab. */
void r1d_cpu_cross_entropy(void *ctx, int n, int vocab, const float *logits,
                           const int32_t *targets, float grad_scale,
                           float *loss, float *target_logprob, float *dlogits);

/* AdamW on one tensor, the table's `adamw` (kernels/cpu/ops_optim.c):
 *   p = p * (1 - lr wd)        (decay set and wd != 0)
 *   m = m + (1 - b1) (g - m);  v = v b2 + (1 - b2) g g
 *   p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * in fp32 in that order, the scalars from double. param_lowp is ignored
 * (fp32 weights: param is the serving copy). */
void r1d_cpu_adamw(void *ctx, size_t n, const r1d_adamw_step *s, int decay,
                   float *param, const float *grad, float *m, float *v,
                   void *param_lowp);

/* *out = sum x[i]^2 in double: fixed blocks of R1D_CPU_SUMSQ_BLOCK elements
 * summed in order, then the block sums in order, so the result depends on n
 * alone, not on the thread count (kernels/cpu/ops_optim.c). */
enum { R1D_CPU_SUMSQ_BLOCK = 1 << 16 };
void r1d_cpu_sum_squares(void *ctx, size_t n, const float *x, double *out);
/* x[i] *= factor. */
void r1d_cpu_scale(void *ctx, size_t n, float factor, float *x);

#endif
