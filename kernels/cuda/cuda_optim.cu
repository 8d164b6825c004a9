/* cuda_optim.cu - the AdamW step on the device: the CUDA twin of rl/optim.c's
 * r1d_optim_step, so a GPU trainer updates its parameters where they live.
 *
 * One tensor per call: fp32 master param, fp32 grad, fp32 moments m and v,
 * all [n] device buffers, updated in place; optionally the updated param is
 * also written as bf16 (the serving weight format) in the same pass, so the
 * serving copy never needs a separate conversion.
 *
 * Bit-for-bit with the CPU: the step's scalars are computed once on the host
 * in double, exactly as optim.c computes them, and rounded to float
 * (r1d_cu_adamw_scalars_for_step); the element arithmetic is fp32 in
 * optim.c's order, written with the _rn intrinsics so nvcc cannot contract
 * it into FMAs, with IEEE sqrt and division:
 *   p = p * decay_factor                     (decaying tensors only)
 *   m = m + (1 - b1) * (g - m)
 *   v = v * b2 + ((1 - b2) * g) * g
 *   p = p + (neg_step_size * m) / (sqrt(v) / bc2_sqrt + eps)
 * Every element is a pure function of its own values and the scalars.
 *
 * After AdamW: the two ops of global-norm clipping, sum_squares and scale.
 *
 * The kernel and the scalar helper come first; tests/kernels/cuda_sim/run.sh
 * cuts them out (up to the wrapper) and checks them against rl/optim.c. */
#include <math.h>

#include "cuda_internal.h"
#include "cuda_reduce.h"

#define ADAMW_THREADS 256

/* The scalars of step `step` (the new step count: 1 for the first update),
 * in double then rounded once, as r1d_optim_step does. Host code. */
void r1d_cu_adamw_scalars_for_step(double lr, double beta1, double beta2,
                                   double eps, double weight_decay, long step,
                                   r1d_cu_adamw_scalars *s) {
  double bias_correction1 = 1.0 - pow(beta1, (double)step);
  double bias_correction2 = 1.0 - pow(beta2, (double)step);
  s->decay_factor = (float)(1.0 - lr * weight_decay);
  s->one_minus_b1 = (float)(1.0 - beta1);
  s->beta2 = (float)beta2;
  s->one_minus_b2 = (float)(1.0 - beta2);
  s->bc2_sqrt = (float)pow(bias_correction2, 0.5);
  s->eps = (float)eps;
  s->neg_step_size = (float)(-(lr / bias_correction1));
  s->weight_decay_on = weight_decay != 0;
}

/* param, grad, m, v [n]; param_bf16 [n] or NULL. decay: apply the decay
 * factor (the tensor decays and weight decay is on). */
__global__ void k_adamw(size_t n, r1d_cu_adamw_scalars s, int decay,
                        float *param, const float *grad, float *m, float *v,
                        __nv_bfloat16 *param_bf16) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    float p = param[i];
    if (decay) p = __fmul_rn(p, s.decay_factor);
    float g = grad[i];
    float mi = __fadd_rn(m[i], __fmul_rn(s.one_minus_b1, __fsub_rn(g, m[i])));
    float vi = __fmul_rn(v[i], s.beta2);
    vi = __fadd_rn(vi, __fmul_rn(__fmul_rn(s.one_minus_b2, g), g));
    float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), s.bc2_sqrt), s.eps);
    p = __fadd_rn(p, __fdiv_rn(__fmul_rn(s.neg_step_size, mi), denom));
    param[i] = p;
    m[i] = mi;
    v[i] = vi;
    if (param_bf16) param_bf16[i] = __float2bfloat16_rn(p);
  }
}

void r1d_cu_adamw(void *ctx, size_t n, const r1d_cu_adamw_scalars *s, int decay,
                  float *param, const float *grad, float *m, float *v,
                  void *param_bf16) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (n == 0 || r1d_cu_enter(c)) return;
  /* the scalars travel by value in the launch: *s may change afterwards */
  k_adamw<<<r1d_cu_blocks(n, ADAMW_THREADS), ADAMW_THREADS, 0, c->stream>>>(
      n, *s, decay && s->weight_decay_on, param, grad, m, v,
      (__nv_bfloat16 *)param_bf16);
  r1d_cu_launched(c, "adamw");
}

void r1d_cu_adamw_step(void *ctx, size_t n, const r1d_adamw_step *s, int decay,
                       float *param, const float *grad, float *m, float *v,
                       void *param_lowp) {
  r1d_cu_adamw_scalars k;
  r1d_cu_adamw_scalars_for_step(s->lr, s->beta1, s->beta2, s->eps,
                                s->weight_decay, s->step, &k);
  r1d_cu_adamw(ctx, n, &k, decay, param, grad, m, v, param_lowp);
}

/* ---- global-norm clipping ---- */

#define SUMSQ_THREADS 256
#define SUMSQ_MAX_BLOCKS 1024

/* Block b sums x[i]^2 for i = b*T + t + k*G*T in double, then reduces its
 * threads in the fixed order of cuda_reduce.h: part[b]. */
__global__ void k_sum_squares_part(size_t n, const float *x, double *part) {
  __shared__ double sh[32];
  double s = 0.0;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    s += (double)x[i] * (double)x[i];
  s = r1d_block_sum_d(s, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

/* One block: out = sum of part[0..blocks) in a fixed order. */
__global__ void k_sum_squares_final(int blocks, const double *part,
                                    double *out) {
  __shared__ double sh[32];
  double s = 0.0;
  for (int b = threadIdx.x; b < blocks; b += blockDim.x)
    s += part[b];
  s = r1d_block_sum_d(s, sh);
  if (threadIdx.x == 0) *out = s;
}

void r1d_cu_sum_squares(void *ctx, size_t n, const float *x, double *out) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (r1d_cu_enter(c)) return;
  /* the grid depends on n alone: the same n sums in the same order */
  unsigned blocks = r1d_cu_blocks(n ? n : 1, SUMSQ_THREADS);
  if (blocks > SUMSQ_MAX_BLOCKS) blocks = SUMSQ_MAX_BLOCKS;
  double *part = (double *)r1d_cu_scratch(c, blocks * sizeof(double));
  if (!part) return;
  k_sum_squares_part<<<blocks, SUMSQ_THREADS, 0, c->stream>>>(n, x, part);
  r1d_cu_launched(c, "sum_squares");
  k_sum_squares_final<<<1, SUMSQ_THREADS, 0, c->stream>>>((int)blocks, part,
                                                          out);
  r1d_cu_launched(c, "sum_squares final");
}

__global__ void k_scale(size_t n, float factor, float *x) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    x[i] = __fmul_rn(x[i], factor);
}

void r1d_cu_scale(void *ctx, size_t n, float factor, float *x) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (n == 0 || r1d_cu_enter(c)) return;
  k_scale<<<r1d_cu_blocks(n, ADAMW_THREADS), ADAMW_THREADS, 0, c->stream>>>(
      n, factor, x);
  r1d_cu_launched(c, "scale");
}
