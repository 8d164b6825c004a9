/* cuda_reduce.h - block-wide reductions shared by the row kernels (rmsnorm,
 * logsumexp, sample): a warp reduces by shuffles, warp results meet in shared
 * memory, warp 0 reduces those. The combination order is fixed by the thread
 * layout, so a row reduces to the same bits on every run and in any batch.
 * Every thread of the block must call these (they synchronise), and gets the
 * result. blockDim.x must be a multiple of 32, at most 1024. */
#ifndef R1D_KERNELS_CUDA_REDUCE_H
#define R1D_KERNELS_CUDA_REDUCE_H

#include <stdint.h>

#define R1D_FULL_MASK 0xffffffffu

__device__ inline double r1d_warp_sum_d(double v) {
  for (int off = 16; off > 0; off >>= 1)
    v += __shfl_xor_sync(R1D_FULL_MASK, v, off);
  return v;
}

__device__ inline unsigned long long r1d_warp_sum_u64(unsigned long long v) {
  for (int off = 16; off > 0; off >>= 1)
    v += __shfl_xor_sync(R1D_FULL_MASK, v, off);
  return v;
}

/* The better of two (value, index) candidates: larger value, then lower
 * index; NaN values never win (index -1 marks "none"). */
__device__ inline void r1d_argmax_merge(float *v, int *i, float ov, int oi) {
  if (oi < 0) return;
  if (*i < 0 || ov > *v || (ov == *v && oi < *i)) {
    *v = ov;
    *i = oi;
  }
}

__device__ inline double r1d_block_sum_d(double v, double *sh /* [32] */) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int nwarps = (blockDim.x + 31) >> 5;
  v = r1d_warp_sum_d(v);
  __syncthreads(); /* sh may still be read by a previous reduction */
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = lane < nwarps ? sh[lane] : 0.0;
  return r1d_warp_sum_d(v);
}

__device__ inline unsigned long long
r1d_block_sum_u64(unsigned long long v, unsigned long long *sh /* [32] */) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int nwarps = (blockDim.x + 31) >> 5;
  v = r1d_warp_sum_u64(v);
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = lane < nwarps ? sh[lane] : 0ull;
  return r1d_warp_sum_u64(v);
}

/* Block argmax of (v, i) pairs (i = -1: no candidate). */
__device__ inline void r1d_block_argmax(float *v, int *i, float *shv /* [32] */,
                                        int *shi /* [32] */) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int nwarps = (blockDim.x + 31) >> 5;
  for (int off = 16; off > 0; off >>= 1) {
    float ov = __shfl_xor_sync(R1D_FULL_MASK, *v, off);
    int oi = __shfl_xor_sync(R1D_FULL_MASK, *i, off);
    r1d_argmax_merge(v, i, ov, oi);
  }
  __syncthreads();
  if (lane == 0) {
    shv[warp] = *v;
    shi[warp] = *i;
  }
  __syncthreads();
  *v = lane < nwarps ? shv[lane] : 0.0f;
  *i = lane < nwarps ? shi[lane] : -1;
  for (int off = 16; off > 0; off >>= 1) {
    float ov = __shfl_xor_sync(R1D_FULL_MASK, *v, off);
    int oi = __shfl_xor_sync(R1D_FULL_MASK, *i, off);
    r1d_argmax_merge(v, i, ov, oi);
  }
}

#endif
