/* ops_norm.c - RMSNorm, as Llama/Qwen2 define it:
 *   out = x / sqrt(mean(x^2) + eps) * w
 * The mean of squares is summed in double: for wide rows (8k) a float sum
 * drifts by more than the tolerance we hold the model to, and the cost is
 * nothing next to the GEMMs. The scaling itself stays in fp32, in the order
 * transformers applies it ((x * rsqrt) * w). */
#include <math.h>

#include "cpu_ops.h"

void r1d_cpu_rmsnorm(void *ctx, int n, int dim, const float *x, const float *w,
                     float eps, float *out) {
  (void)ctx;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; i++) {
    const float *xr = x + (size_t)i * dim;
    float *yr = out + (size_t)i * dim;
    double ss = 0.0;
    for (int j = 0; j < dim; j++)
      ss += (double)xr[j] * xr[j];
    float inv = (float)(1.0 / sqrt(ss / dim + (double)eps));
    for (int j = 0; j < dim; j++)
      yr[j] = (xr[j] * inv) * w[j];
  }
}
