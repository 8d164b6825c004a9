/* cuda_internal.h - what the CUDA op files share: the backend context, the
 * sticky-error helpers and the prototypes gathered into the ops table by
 * cuda_backend.cu. C++ (nvcc) only; the C world sees cuda_backend.h.
 *
 * Every op runs asynchronously on ctx->stream. An op never returns an error:
 * it records the first failure (CUDA or cuBLAS) in the context, and from then
 * on every op is a no-op and sync/upload/download answer R1D_EBACKEND. A
 * device fault (illegal address) is fatal to the CUDA context anyway, so
 * there is no recovery short of destroying the backend. */
#ifndef R1D_KERNELS_CUDA_INTERNAL_H
#define R1D_KERNELS_CUDA_INTERNAL_H

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

/* The r1d headers are C: their functions (r1d_fail, ours) have C linkage. */
extern "C" {
#include "cuda_backend.h"
}

/* Largest head_dim the attention kernels handle (8 floats per lane). */
#define R1D_CUDA_MAX_HEAD_DIM 256

/* (n, k) shapes of `linear` whose cuBLASLt algorithm is pinned (see
 * cuda_gemm.cu); a model has a handful (qkv, o, gate/up, down, head). */
#define R1D_CUDA_GEMM_SHAPES 32

typedef struct r1d_cuda_gemm_shape {
  int n, k;
  int usable; /* 0: no pinned algorithm, the fallback kernel is used */
  /* pointer alignment (bytes) the pinned algorithm was chosen for: a
   * function of (n, k) only, so that every row offset a caller can pass
   * (y + i*n, w + j*k) qualifies and no row drops to another algorithm */
  unsigned align_w, align_y;
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t w_layout;
  cublasLtMatmulAlgo_t algo;
} r1d_cuda_gemm_shape;

typedef struct r1d_cuda_ctx {
  r1d_backend_ops ops; /* be->ops points here */
  int device;
  cublasComputeType_t train_compute; /* linear_backward's GEMMs */
  cudaStream_t stream;
  cublasHandle_t blas;
  cublasLtHandle_t lt;
  void *lt_ws; /* cuBLASLt workspace */
  size_t lt_ws_bytes;
  void *scratch; /* linear: bf16 activations; weight_upload: fp32 staging */
  size_t scratch_bytes;
  int n_shapes;
  r1d_cuda_gemm_shape shapes[R1D_CUDA_GEMM_SHAPES];
  int failed;         /* sticky: first failure recorded */
  char fail_msg[256]; /* what failed, for r1d_cuda_backend_error */
  char desc[384];     /* r1d_cuda_backend_describe */
} r1d_cuda_ctx;

/* ---- cuda_backend.cu: errors, device, scratch ---- */
/* Records the first failure; later ones are consequences and are dropped. */
void r1d_cu_fail(r1d_cuda_ctx *c, const char *what, const char *detail);
/* Records `e` when it is not cudaSuccess; returns 1 when it recorded. */
int r1d_cu_check(r1d_cuda_ctx *c, cudaError_t e, const char *what);
int r1d_cu_check_blas(r1d_cuda_ctx *c, cublasStatus_t s, const char *what);
/* After a kernel launch: cudaGetLastError, recorded. */
void r1d_cu_launched(r1d_cuda_ctx *c, const char *what);
/* Starts an op: makes the context's device current on this thread; returns 0
 * when the op may run, -1 when the backend already failed. */
int r1d_cu_enter(r1d_cuda_ctx *c);
/* Device scratch of at least `bytes` (grown by waiting for the stream and
 * reallocating); NULL after recording a failure. */
void *r1d_cu_scratch(r1d_cuda_ctx *c, size_t bytes);
/* Blocks for a 1-D grid-stride loop over `total` items. */
unsigned r1d_cu_blocks(size_t total, unsigned threads);

/* ---- cuda_gemm.cu ---- */
void r1d_cu_matmul_nt(void *ctx, int m, int n, int k, const float *a,
                      const float *b, float beta, float *c);
void r1d_cu_linear(void *ctx, int m, int n, int k, const float *x,
                   const void *w, float beta, float *y);
void *r1d_cu_weight_upload(void *ctx, const float *src, size_t n);
void r1d_cu_gemm_release(r1d_cuda_ctx *c);

/* ---- cuda_elementwise.cu ---- */
void r1d_cu_add_bias(void *ctx, int m, int n, const float *bias, float *x);
void r1d_cu_add(void *ctx, size_t n, const float *a, const float *b,
                float *out);
void r1d_cu_embedding(void *ctx, int n, const int32_t *ids, const void *table,
                      int dim, float *out);
void r1d_cu_swiglu(void *ctx, size_t n, const float *gate, const float *up,
                   float *out);
void r1d_cu_gather_rows(void *ctx, int n, int dim, const int32_t *rows,
                        const float *x, float *out);
void r1d_cu_kv_write(void *ctx, int n, int kv_dim, const float *k,
                     const float *v, const int64_t *slots, float *k_cache,
                     float *v_cache);

/* ---- cuda_norm_rope.cu ---- */
void r1d_cu_rmsnorm(void *ctx, int n, int dim, const float *x, const float *w,
                    float eps, float *out);
void r1d_cu_rope(void *ctx, int n, int n_heads, int head_dim,
                 const int32_t *pos, const float *inv_freq, float *x);

/* ---- cuda_attention.cu ---- */
void r1d_cu_attention(void *ctx, int n, int start, int n_heads, int n_kv_heads,
                      int head_dim, const float *q, const float *k_cache,
                      const float *v_cache, float *out);
void r1d_cu_paged_attention(void *ctx, int n_q, const int32_t *q_seq,
                            const int32_t *q_pos, int max_pos,
                            const int32_t *block_tables, int max_blocks,
                            int block_size, int n_heads, int n_kv_heads,
                            int head_dim, const float *q, const float *k_cache,
                            const float *v_cache, float *out);

/* ---- cuda_sample.cu ---- */
void r1d_cu_logsumexp(void *ctx, int n, int vocab, const float *x, float *lse);
void r1d_cu_sample(void *ctx, int n, int vocab, const float *logits,
                   const float *temperature, const int32_t *top_k,
                   const float *top_p, const float *min_p, const float *u,
                   int32_t *token, float *logprob);

/* ---- cuda_backward.cu: training gradients ----
 * Twins of kernels/cpu/cpu_backward.h, same contracts (gradients accumulate
 * with +=, NULL skips, deterministic: no atomics, fixed summation orders);
 * every buffer is device memory. Differences: linear_backward's w is fp32
 * (the trainer's master weights, not the bf16 serving copy); cross_entropy's
 * loss (one float) and target_logprob are device buffers. In the ops
 * table. */
void r1d_cu_linear_backward(void *ctx, int m, int n, int k, const float *x,
                            const float *w, const float *dy, float *dx,
                            float *dw, float *db);
void r1d_cu_embedding_backward(void *ctx, int n, const int32_t *ids, int dim,
                               const float *dout, float *dtable);
void r1d_cu_rmsnorm_backward(void *ctx, int n, int dim, const float *x,
                             const float *w, float eps, const float *dout,
                             float *dx, float *dw);
void r1d_cu_rope_backward(void *ctx, int n, int n_heads, int head_dim,
                          const int32_t *pos, const float *inv_freq,
                          const float *dout, float *dx);
void r1d_cu_attention_backward(void *ctx, int n, int start, int n_heads,
                               int n_kv_heads, int head_dim, const float *q,
                               const float *k, const float *v,
                               const float *dout, float *dq, float *dk,
                               float *dv);
void r1d_cu_swiglu_backward(void *ctx, size_t n, const float *gate,
                            const float *up, const float *dout, float *dgate,
                            float *dup);
void r1d_cu_cross_entropy(void *ctx, int n, int vocab, const float *logits,
                          const int32_t *targets, float grad_scale, float *loss,
                          float *target_logprob, float *dlogits);

/* ---- cuda_optim.cu: AdamW ----
 * The fp32 scalars of one step, as rl/optim.c rounds them from double. */
typedef struct r1d_cu_adamw_scalars {
  float decay_factor;  /* 1 - lr * wd */
  float one_minus_b1;  /* 1 - beta1 */
  float beta2;         /* beta2 */
  float one_minus_b2;  /* 1 - beta2 */
  float bc2_sqrt;      /* sqrt(1 - beta2^t) */
  float eps;           /* eps */
  float neg_step_size; /* -lr / (1 - beta1^t) */
  int weight_decay_on; /* weight_decay != 0 */
} r1d_cu_adamw_scalars;
/* Host only: the scalars of step `step` (the new step count, 1 first). */
void r1d_cu_adamw_scalars_for_step(double lr, double beta1, double beta2,
                                   double eps, double weight_decay, long step,
                                   r1d_cu_adamw_scalars *s);
/* One AdamW step of one tensor, as r1d_optim_step does it: param, grad, m,
 * v [n] fp32 device buffers (param, m, v updated in place); decay: the
 * tensor is in the weight-decay group; param_bf16 [n] (bf16, device) gets
 * the updated param too, or NULL. */
void r1d_cu_adamw(void *ctx, size_t n, const r1d_cu_adamw_scalars *s, int decay,
                  float *param, const float *grad, float *m, float *v,
                  void *param_bf16);
/* The table's `adamw`: the scalars from *s on the host, then r1d_cu_adamw
 * (param_lowp is the bf16 serving copy, or NULL). */
void r1d_cu_adamw_step(void *ctx, size_t n, const r1d_adamw_step *s, int decay,
                       float *param, const float *grad, float *m, float *v,
                       void *param_lowp);
/* The table's sum_squares (double partials per block of a grid fixed by n,
 * then one block sums them in order) and scale. */
void r1d_cu_sum_squares(void *ctx, size_t n, const float *x, double *out);
void r1d_cu_scale(void *ctx, size_t n, float factor, float *x);

#endif
