/* cuda_norm_rope.cu - RMSNorm and rotary embedding, written to round like the
 * CPU twins (kernels/cpu/ops_norm.c, ops_rope.c):
 *   rmsnorm: the mean of squares summed in double (one block per row, fixed
 *            reduction tree), then (x * inv) * w in fp32;
 *   rope:    Hugging Face half rotation (j pairs with j + d/2), angle, cos and
 *            sin in fp32. Products and sums use the _rn intrinsics so nvcc
 *            does not contract them into FMAs the CPU build does not use. */
#include "cuda_internal.h"
#include "cuda_reduce.h"

#define NORM_THREADS 256
#define ROPE_THREADS 128

/* out[row,:] = x[row,:] / sqrt(mean(x[row,:]^2) + eps) * w; grid = rows */
__global__ void k_rmsnorm(int dim, const float *x, const float *w, float eps,
                          float *out) {
  __shared__ double sh[32];
  const float *xr = x + (size_t)blockIdx.x * (size_t)dim;
  float *yr = out + (size_t)blockIdx.x * (size_t)dim;
  double ss = 0.0;
  for (int j = threadIdx.x; j < dim; j += blockDim.x)
    ss = __dadd_rn(ss, __dmul_rn((double)xr[j], (double)xr[j]));
  ss = r1d_block_sum_d(ss, sh);
  float inv = (float)(1.0 / sqrt(ss / dim + (double)eps));
  for (int j = threadIdx.x; j < dim; j += blockDim.x)
    yr[j] = __fmul_rn(__fmul_rn(xr[j], inv), w[j]);
}

/* x[n, n_heads, head_dim] rotated in place; one thread per (token, j < d/2),
 * applied to every head of the token */
__global__ void k_rope(size_t total, int n_heads, int head_dim,
                       const int32_t *pos, const float *inv_freq, float *x) {
  int half = head_dim / 2;
  for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < total;
       t += (size_t)gridDim.x * blockDim.x) {
    size_t i = t / (size_t)half;
    int j = (int)(t % (size_t)half);
    float angle = __fmul_rn((float)pos[i], inv_freq[j]);
    float c = cosf(angle), s = sinf(angle);
    float *row = x + i * (size_t)n_heads * (size_t)head_dim;
    for (int h = 0; h < n_heads; h++) {
      float *v = row + (size_t)h * head_dim;
      float x1 = v[j], x2 = v[j + half];
      v[j] = __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
      v[j + half] = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
    }
  }
}

void r1d_cu_rmsnorm(void *ctx, int n, int dim, const float *x, const float *w,
                    float eps, float *out) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (n <= 0 || dim <= 0 || r1d_cu_enter(c)) return;
  k_rmsnorm<<<(unsigned)n, NORM_THREADS, 0, c->stream>>>(dim, x, w, eps, out);
  r1d_cu_launched(c, "rmsnorm");
}

void r1d_cu_rope(void *ctx, int n, int n_heads, int head_dim,
                 const int32_t *pos, const float *inv_freq, float *x) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  size_t total =
      (size_t)(n > 0 ? n : 0) * (size_t)(head_dim / 2 > 0 ? head_dim / 2 : 0);
  if (total == 0 || n_heads <= 0 || r1d_cu_enter(c)) return;
  k_rope<<<r1d_cu_blocks(total, ROPE_THREADS), ROPE_THREADS, 0, c->stream>>>(
      total, n_heads, head_dim, pos, inv_freq, x);
  r1d_cu_launched(c, "rope");
}
