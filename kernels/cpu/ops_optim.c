/* ops_optim.c - the AdamW update of one tensor on the CPU, the ops table's
 * `adamw` (rl/optim.c runs its steps through it too, so the optimizer and
 * the table cannot drift apart), and the two ops of global-norm clipping:
 * sum_squares and scale.
 *
 * The step's scalars are computed in double and rounded once, then every
 * element is updated in fp32 in torch.optim.AdamW's order. Each element is a
 * pure function of its own values and the scalars, so the result does not
 * depend on the OpenMP thread count, and kernels/cuda/cuda_optim.cu (written
 * to the same order with round-to-nearest intrinsics) matches it bit for
 * bit. */
#include <math.h>
#include <stdlib.h>

#include "cpu_backward.h"

/* Below this many elements a tensor is updated on one thread. */
#define OMP_MIN_ELEMS 16384

void r1d_cpu_adamw(void *ctx, size_t n, const r1d_adamw_step *s, int decay,
                   float *restrict param, const float *restrict grad,
                   float *restrict m, float *restrict v, void *param_lowp) {
  (void)ctx;
  (void)param_lowp; /* the CPU's weight format is fp32: param is the copy */
  double bias_correction1 = 1.0 - pow(s->beta1, (double)s->step);
  double bias_correction2 = 1.0 - pow(s->beta2, (double)s->step);
  const float decay_factor = (float)(1.0 - s->lr * s->weight_decay);
  const float one_minus_b1 = (float)(1.0 - s->beta1);
  const float beta2 = (float)s->beta2;
  const float one_minus_b2 = (float)(1.0 - s->beta2);
  const float bc2_sqrt = (float)pow(bias_correction2, 0.5);
  const float eps = (float)s->eps;
  const float neg_step_size = (float)(-(s->lr / bias_correction1));
  const int do_decay = decay && s->weight_decay != 0;
  long long len = (long long)n;
#pragma omp parallel for schedule(static) if (n >= OMP_MIN_ELEMS)
  for (long long i = 0; i < len; i++) {
    float p = param[i];
    if (do_decay) p = p * decay_factor;
    float g = grad[i];
    float mi = m[i] + one_minus_b1 * (g - m[i]);
    float vi = v[i] * beta2;
    vi = vi + one_minus_b2 * g * g;
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    param[i] = p + neg_step_size * mi / denom;
    m[i] = mi;
    v[i] = vi;
  }
}

/* sum x[i]^2 over block b of R1D_CPU_SUMSQ_BLOCK elements, in order. */
static double block_sum_squares(const float *x, size_t n, long long b) {
  size_t lo = (size_t)b * R1D_CPU_SUMSQ_BLOCK;
  size_t hi = lo + R1D_CPU_SUMSQ_BLOCK < n ? lo + R1D_CPU_SUMSQ_BLOCK : n;
  double s = 0.0;
  for (size_t i = lo; i < hi; i++)
    s += (double)x[i] * x[i];
  return s;
}

void r1d_cpu_sum_squares(void *ctx, size_t n, const float *x, double *out) {
  (void)ctx;
  long long blocks =
      (long long)((n + R1D_CPU_SUMSQ_BLOCK - 1) / R1D_CPU_SUMSQ_BLOCK);
  double *part = blocks > 1 ? malloc((size_t)blocks * sizeof(double)) : NULL;
  double total = 0.0;
  if (!part) { /* one block, or no memory: the same order on one thread */
    for (long long b = 0; b < blocks; b++)
      total += block_sum_squares(x, n, b);
    *out = total;
    return;
  }
#pragma omp parallel for schedule(static)
  for (long long b = 0; b < blocks; b++)
    part[b] = block_sum_squares(x, n, b);
  for (long long b = 0; b < blocks; b++)
    total += part[b];
  free(part);
  *out = total;
}

void r1d_cpu_scale(void *ctx, size_t n, float factor, float *x) {
  (void)ctx;
  long long len = (long long)n;
#pragma omp parallel for schedule(static) if (n >= OMP_MIN_ELEMS)
  for (long long i = 0; i < len; i++)
    x[i] *= factor;
}
