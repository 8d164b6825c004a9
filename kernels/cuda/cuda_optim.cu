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
 * The kernel and the scalar helper come first; tests/kernels/cuda_sim/run.sh
 * cuts them out (up to the wrapper) and checks them against rl/optim.c. */
#include <math.h>

#include "cuda_internal.h"

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
