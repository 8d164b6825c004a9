/* cuda_backward.cu - CUDA twins of the CPU training backward kernels
 * (contracts in kernels/cpu/cpu_backward.h, reference in ops_backward.c and
 * ops_backward_attention.c): rmsnorm, rope, swiglu, embedding, fused
 * softmax cross-entropy, causal GQA attention and linear.
 *
 * The same rules as the CPU versions: every gradient ACCUMULATES (+=), a
 * NULL gradient pointer skips that work, and every result is deterministic:
 * no float atomics anywhere; each sum runs in an order fixed by the shapes
 * alone (a fixed reduction tree, or a fixed chunking summed in order), so a
 * run reproduces its bits. Elementwise arithmetic uses the _rn intrinsics
 * where the CPU has a fixed order, so nvcc does not contract it into FMAs
 * the CPU build does not use; what is left to differ from the CPU is the
 * order of double sums and the device's expf/sinf/cosf (a few ulp).
 *
 * All buffers are device memory, fp32 (ids, positions and targets int32).
 * Linear backward takes fp32 weights: the trainer's master copy, not the
 * bf16 serving weights. Cross-entropy writes loss and target_logprob to
 * device buffers (nothing waits for the host).
 *
 * The device kernels come first and the host wrappers after the marker line
 * below: tests/kernels/cuda_sim/run.sh cuts the kernel part out and runs it
 * on the host against the CPU functions. */
#include <math.h>
#include <stdio.h>

#include "cuda_internal.h"
#include "cuda_reduce.h"

#define ROW_THREADS 256    /* one block per row: rmsnorm, cross-entropy */
#define EW_BWD_THREADS 256 /* elementwise: rope, swiglu */
#define COLSUM_THREADS 128 /* column sums: one thread per column */
#define COLSUM_ROWS 128    /* rows per partial column sum (fixed chunking) */
#define EMB_THREADS 256    /* embedding: also the tile of ids scanned */
#define ATB_WARPS 4        /* attention backward: warps per block */
#define ATB_THREADS (ATB_WARPS * 32)
#define ATB_PER_LANE 8 /* head_dim / 32 elements a lane holds, at most */

/* ---- block reductions the shared header does not have ---- */

/* Block max of v (NaN ignored by fmaxf); every thread gets the result.
 * Fixed tree, blockDim.x a multiple of 32. */
__device__ inline float bwd_block_max(float v, float *sh /* [32] */) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int nwarps = (blockDim.x + 31) >> 5;
  for (int off = 16; off > 0; off >>= 1)
    v = fmaxf(v, __shfl_xor_sync(R1D_FULL_MASK, v, off));
  __syncthreads(); /* sh may still be read by a previous reduction */
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = lane < nwarps ? sh[lane] : -INFINITY;
  for (int off = 16; off > 0; off >>= 1)
    v = fmaxf(v, __shfl_xor_sync(R1D_FULL_MASK, v, off));
  return v;
}

/* Exclusive prefix sum of v over the block, in thread order; *total gets
 * the block's sum. Every thread must call it; blockDim.x a multiple of 32. */
__device__ inline int bwd_block_exclusive_scan(int v, int *sh /* [32] */,
                                               int *total) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int nwarps = (blockDim.x + 31) >> 5;
  int incl = v;
  for (int off = 1; off < 32; off <<= 1) {
    int o = __shfl_up_sync(R1D_FULL_MASK, incl, off);
    if (lane >= off) incl += o;
  }
  __syncthreads(); /* sh may still be read by a previous scan */
  if (lane == 31) sh[warp] = incl;
  __syncthreads();
  int before = 0, all = 0;
  for (int w = 0; w < nwarps; w++) {
    if (w < warp) before += sh[w];
    all += sh[w];
  }
  *total = all;
  return before + incl - v;
}

/* ---- column sums: linear's db, rmsnorm's dw ---- */

/* partial[c, j] = sum over rows i of chunk c (COLSUM_ROWS rows, increasing
 * i) of a[i,j], or of a[i,j] * b[i,j] * row_scale[i] when b is given; in
 * double. a, b [m, n]; partial [n_chunks, n].
 * grid (ceil(n / COLSUM_THREADS), n_chunks); consecutive threads read
 * consecutive columns. */
__global__ void k_colsum_partial(int m, int n, const float *a, const float *b,
                                 const float *row_scale, double *partial) {
  int j = (int)(blockIdx.x * blockDim.x + threadIdx.x);
  if (j >= n) return;
  int i0 = (int)blockIdx.y * COLSUM_ROWS;
  int i1 = m - i0 < COLSUM_ROWS ? m : i0 + COLSUM_ROWS;
  double s = 0.0;
  for (int i = i0; i < i1; i++) {
    size_t at = (size_t)i * (size_t)n + (size_t)j;
    double t = (double)a[at];
    if (b) t = __dmul_rn(__dmul_rn(t, (double)b[at]), (double)row_scale[i]);
    s = __dadd_rn(s, t);
  }
  partial[(size_t)blockIdx.y * (size_t)n + (size_t)j] = s;
}

/* out[j] += (float)(sum over chunks c in order of partial[c, j]) */
__global__ void k_colsum_finish(int n, int n_chunks, const double *partial,
                                float *out) {
  for (size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x; j < (size_t)n;
       j += (size_t)gridDim.x * blockDim.x) {
    double s = 0.0;
    for (int c = 0; c < n_chunks; c++)
      s = __dadd_rn(s, partial[(size_t)c * (size_t)n + j]);
    out[j] += (float)s;
  }
}

/* ---- rmsnorm ---- */

/* One block per row of x[n, dim]: r = 1/sqrt(mean(x^2) + eps) (squares
 * summed in double, as the forward does), saved to r_out[row] for dw's
 * column pass; then, when dx is given,
 *   dx[row, j] += r * (w_j g_j - x_j c),  c = (sum_k g_k w_k x_k) r^2 / dim
 * with the dot product in double. */
__global__ void k_rmsnorm_backward(int dim, const float *x, const float *w,
                                   float eps, const float *dout, float *dx,
                                   float *r_out) {
  __shared__ double sh[32];
  const size_t row = blockIdx.x;
  const float *xr = x + row * (size_t)dim;
  const float *gr = dout + row * (size_t)dim;
  double ss = 0.0;
  for (int j = threadIdx.x; j < dim; j += blockDim.x)
    ss = __dadd_rn(ss, __dmul_rn((double)xr[j], (double)xr[j]));
  ss = r1d_block_sum_d(ss, sh);
  float r = (float)(1.0 / sqrt(ss / dim + (double)eps));
  if (threadIdx.x == 0) r_out[row] = r;
  if (!dx) return; /* uniform: a kernel argument */
  double dot = 0.0;
  for (int j = threadIdx.x; j < dim; j += blockDim.x)
    dot = __dadd_rn(
        dot, __dmul_rn(__dmul_rn((double)gr[j], (double)w[j]), (double)xr[j]));
  dot = r1d_block_sum_d(dot, sh);
  float c = (float)(dot * r * r / dim);
  float *dxr = dx + row * (size_t)dim;
  for (int j = threadIdx.x; j < dim; j += blockDim.x)
    dxr[j] = __fadd_rn(dxr[j], __fmul_rn(r, __fsub_rn(__fmul_rn(w[j], gr[j]),
                                                      __fmul_rn(xr[j], c))));
}

/* ---- rope ---- */

/* dx[n, n_heads, head_dim] += R(pos)^T dout; one thread per (token, j <
 * d/2), applied to every head. With angle = pos * inv_freq[j] in fp32:
 *   dx1 += d1 c + d2 s,  dx2 += d2 c - d1 s */
__global__ void k_rope_backward(size_t total, int n_heads, int head_dim,
                                const int32_t *pos, const float *inv_freq,
                                const float *dout, float *dx) {
  int half = head_dim / 2;
  for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < total;
       t += (size_t)gridDim.x * blockDim.x) {
    size_t i = t / (size_t)half;
    int j = (int)(t % (size_t)half);
    float angle = __fmul_rn((float)pos[i], inv_freq[j]);
    float c = cosf(angle), s = sinf(angle);
    size_t row = i * (size_t)n_heads * (size_t)head_dim;
    for (int h = 0; h < n_heads; h++) {
      const float *g = dout + row + (size_t)h * head_dim;
      float *d = dx + row + (size_t)h * head_dim;
      float g1 = g[j], g2 = g[j + half];
      d[j] = __fadd_rn(d[j], __fadd_rn(__fmul_rn(g1, c), __fmul_rn(g2, s)));
      d[j + half] =
          __fadd_rn(d[j + half], __fsub_rn(__fmul_rn(g2, c), __fmul_rn(g1, s)));
    }
  }
}

/* ---- swiglu ---- */

/* s = sigmoid(gate): dgate += ((dout up) s) (1 + gate (1 - s)),
 * dup += (dout gate) s, in the CPU's order; NULL outputs skipped. */
__global__ void k_swiglu_backward(size_t total, const float *gate,
                                  const float *up, const float *dout,
                                  float *dgate, float *dup) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    float g = gate[i];
    float s = __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-g)));
    if (dgate) {
      float ds = __fadd_rn(1.0f, __fmul_rn(g, __fsub_rn(1.0f, s)));
      dgate[i] = __fadd_rn(
          dgate[i], __fmul_rn(__fmul_rn(__fmul_rn(dout[i], up[i]), s), ds));
    }
    if (dup) dup[i] = __fadd_rn(dup[i], __fmul_rn(__fmul_rn(dout[i], g), s));
  }
}

/* ---- embedding ---- */

/* dtable[ids[i], :] += dout[i, :]. One block per token i; the block of the
 * FIRST occurrence of an id owns that table row and adds the rows of all
 * its occurrences in increasing i, each element by one thread, straight
 * into dtable: the same float additions in the same order as the CPU, and
 * no two blocks ever write the same row. Other blocks leave.
 * The ids are scanned in tiles of blockDim.x; a tile's matches are
 * compacted in order through a block prefix sum. */
__global__ void k_embedding_backward(int n, const int32_t *ids, int dim,
                                     const float *dout, float *dtable) {
  __shared__ int match[EMB_THREADS]; /* tile indices j with ids[j] == id */
  __shared__ int scan_sh[32];
  const int i = (int)blockIdx.x;
  const int32_t id = ids[i];
  float *trow = dtable + (size_t)id * (size_t)dim;
  int seen_first = 0; /* block uniform: the first occurrence was checked */
  for (int base = 0; base < n; base += blockDim.x) {
    int j = base + (int)threadIdx.x;
    int hit = j < n && ids[j] == id;
    int count;
    int at = bwd_block_exclusive_scan(hit, scan_sh, &count);
    if (hit) match[at] = j;
    __syncthreads();
    if (count > 0 && !seen_first) {
      /* the earliest occurrence is match[0]: another block owns the row */
      if (match[0] != i) return;
      seen_first = 1;
    }
    for (int t = 0; t < count; t++) {
      const float *g = dout + (size_t)match[t] * (size_t)dim;
      for (int d = threadIdx.x; d < dim; d += blockDim.x)
        trow[d] += g[d];
    }
    __syncthreads(); /* before the next tile overwrites match */
  }
}

/* ---- cross-entropy ---- */

/* *counted = number of targets >= 0; one block */
__global__ void k_ce_count(int n, const int32_t *targets, int *counted) {
  __shared__ unsigned long long sh[32];
  unsigned long long c = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x)
    c += targets[i] >= 0;
  c = r1d_block_sum_u64(c, sh);
  if (threadIdx.x == 0) *counted = (int)c;
}

/* One block per row of logits[n, vocab]. Ignored rows (target < 0) get
 * target_logprob 0 and no gradient. Otherwise, with m the row max (fp32)
 * and the normaliser summed in double:
 *   lse = m + log(sum_j exp(x_j - m)),  target_logprob = x_t - lse
 *   dlogits[row, j] += grad_scale / counted * (exp(x_j - lse) - [j == t]) */
__global__ void k_ce_rows(int vocab, const float *logits,
                          const int32_t *targets, float grad_scale,
                          const int *counted, float *target_logprob,
                          float *dlogits) {
  __shared__ double sh[32];
  __shared__ float shm[32];
  const size_t row = blockIdx.x;
  const int t = targets[row];
  if (t < 0) { /* uniform: one target per block */
    if (threadIdx.x == 0) target_logprob[row] = 0.0f;
    return;
  }
  const float *x = logits + row * (size_t)vocab;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x)
    if (x[j] > m) m = x[j];
  m = bwd_block_max(m, shm);
  double sum = 0.0;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x)
    sum = __dadd_rn(sum, exp((double)x[j] - m));
  sum = r1d_block_sum_d(sum, sh);
  double lse = m + log(sum);
  if (threadIdx.x == 0) target_logprob[row] = (float)((double)x[t] - lse);
  if (!dlogits) return;
  int c = *counted;
  double row_scale = c ? (double)grad_scale / c : 0.0;
  float *d = dlogits + row * (size_t)vocab;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
    double p = exp((double)x[j] - lse);
    d[j] = __fadd_rn(d[j], (float)(row_scale * (p - (double)(j == t))));
  }
}

/* *loss = -(1/counted) sum of target_logprob over counted rows (0 when none
 * count); one block, double sums in a fixed tree */
__global__ void k_ce_loss(int n, const int32_t *targets,
                          const float *target_logprob, const int *counted,
                          float *loss) {
  __shared__ double sh[32];
  double total = 0.0;
  for (int i = threadIdx.x; i < n; i += blockDim.x)
    if (targets[i] >= 0) total = __dadd_rn(total, -(double)target_logprob[i]);
  total = r1d_block_sum_d(total, sh);
  if (threadIdx.x == 0) {
    int c = *counted;
    *loss = c ? (float)(total / c) : 0.0f;
  }
}

/* ---- attention ---- */

/* Per (query row, head) statistics kept in scratch between the two kernels:
 * the softmax max and normaliser, and D = sum_t P_t (g . v_t). */
typedef struct att_bwd_stats {
  double max; /* the fp32 max of the scaled scores, widened */
  double sum; /* sum_t exp(s_t - max) */
  double d;   /* sum_t P_t dP_t */
} att_bwd_stats;

typedef struct att_bwd_args {
  const float *q, *k, *v, *dout; /* q, dout [n, n_heads*D]; k, v [start+n,
                                    n_kv_heads*D] */
  float *dq, *dk, *dv;           /* same shapes; NULL: skipped */
  att_bwd_stats *stats;          /* [n, n_heads] */
  int n, start, n_heads, n_kv_heads, head_dim;
} att_bwd_args;

/* a.b over head_dim, a and b in registers as lanes hold them (element
 * lane + 32 j); a fixed xor butterfly gives every lane the same bits */
__device__ inline float att_bwd_warp_dot(const float *a, const float *b) {
  float s = 0.0f;
#pragma unroll
  for (int j = 0; j < ATB_PER_LANE; j++)
    s += a[j] * b[j];
  for (int off = 16; off > 0; off >>= 1)
    s += __shfl_xor_sync(R1D_FULL_MASK, s, off);
  return s;
}

/* This lane's elements of a head_dim row (0 past head_dim). */
__device__ inline void att_bwd_load(const float *row, int head_dim, int lane,
                                    float *out) {
#pragma unroll
  for (int j = 0; j < ATB_PER_LANE; j++) {
    int d = lane + 32 * j;
    out[j] = d < head_dim ? row[d] : 0.0f;
  }
}

/* Sums the warps' per-lane vectors acc[ATB_PER_LANE] in warp order and adds
 * the result to out[head_dim]. Every thread of the block must call it. */
__device__ inline void att_bwd_merge_add(const float *acc, int head_dim,
                                         float *out, float *acc_s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads(); /* acc_s may still be read by a previous merge */
#pragma unroll
  for (int j = 0; j < ATB_PER_LANE; j++) {
    int d = lane + 32 * j;
    if (d < head_dim) acc_s[warp * R1D_CUDA_MAX_HEAD_DIM + d] = acc[j];
  }
  __syncthreads();
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float s = 0.0f;
    for (int w = 0; w < ATB_WARPS; w++)
      s += acc_s[w * R1D_CUDA_MAX_HEAD_DIM + d];
    out[d] += s;
  }
}

/* One block per (query i, head h); warps take key positions p = warp,
 * warp + ATB_WARPS, ... of 0..start+i. Three passes over the keys, like the
 * CPU: the max; the normaliser and D (double, warp partials merged in warp
 * order), saved to stats for the key kernel; then, when dq is given,
 *   dq += sum_t ds_t k_t,  ds_t = scale P_t (dP_t - D). */
__global__ void __launch_bounds__(ATB_THREADS)
    k_attention_backward_q(att_bwd_args a) {
  __shared__ float max_s[ATB_WARPS];
  __shared__ double sum_s[ATB_WARPS], d_s[ATB_WARPS];
  __shared__ float acc_s[ATB_WARPS * R1D_CUDA_MAX_HEAD_DIM];
  const int qi = (int)blockIdx.x, h = (int)blockIdx.y;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int D = a.head_dim, group = a.n_heads / a.n_kv_heads;
  const size_t kv_stride = (size_t)a.n_kv_heads * (size_t)D;
  const size_t q_off = ((size_t)qi * a.n_heads + (size_t)h) * (size_t)D;
  const float scale = 1.0f / sqrtf((float)D);
  const float *kbase = a.k + (size_t)(h / group) * D;
  const float *vbase = a.v + (size_t)(h / group) * D;
  const int len = a.start + qi + 1;
  float qv[ATB_PER_LANE], gv[ATB_PER_LANE], kv[ATB_PER_LANE], vv[ATB_PER_LANE];
  att_bwd_load(a.q + q_off, D, lane, qv);
  att_bwd_load(a.dout + q_off, D, lane, gv);

  /* pass 1: the max score */
  float m = -INFINITY;
  for (int p = warp; p < len; p += ATB_WARPS) {
    att_bwd_load(kbase + (size_t)p * kv_stride, D, lane, kv);
    float s = att_bwd_warp_dot(qv, kv) * scale;
    if (s > m) m = s;
  }
  if (lane == 0) max_s[warp] = m;
  __syncthreads();
  m = -INFINITY;
  for (int w = 0; w < ATB_WARPS; w++)
    if (max_s[w] > m) m = max_s[w];

  /* pass 2: normaliser and D (= sum_t P_t dP_t, divided by the sum after) */
  double l = 0.0, e = 0.0;
  for (int p = warp; p < len; p += ATB_WARPS) {
    att_bwd_load(kbase + (size_t)p * kv_stride, D, lane, kv);
    att_bwd_load(vbase + (size_t)p * kv_stride, D, lane, vv);
    float s = att_bwd_warp_dot(qv, kv) * scale;
    double pe = exp((double)s - m);
    l = __dadd_rn(l, pe);
    e = __dadd_rn(e, __dmul_rn(pe, (double)att_bwd_warp_dot(gv, vv)));
  }
  if (lane == 0) {
    sum_s[warp] = l;
    d_s[warp] = e;
  }
  __syncthreads();
  l = 0.0;
  e = 0.0;
  for (int w = 0; w < ATB_WARPS; w++) {
    l = __dadd_rn(l, sum_s[w]);
    e = __dadd_rn(e, d_s[w]);
  }
  const double dsum = e / l;
  if (threadIdx.x == 0) {
    att_bwd_stats *st = a.stats + (size_t)qi * a.n_heads + h;
    st->max = m;
    st->sum = l;
    st->d = dsum;
  }
  if (!a.dq) return; /* uniform: a kernel argument */

  /* pass 3: dq */
  float acc[ATB_PER_LANE];
#pragma unroll
  for (int j = 0; j < ATB_PER_LANE; j++)
    acc[j] = 0.0f;
  for (int p = warp; p < len; p += ATB_WARPS) {
    att_bwd_load(kbase + (size_t)p * kv_stride, D, lane, kv);
    att_bwd_load(vbase + (size_t)p * kv_stride, D, lane, vv);
    float s = att_bwd_warp_dot(qv, kv) * scale;
    float pr = (float)(exp((double)s - m) / l);
    float dp = att_bwd_warp_dot(gv, vv);
    float ds = __fmul_rn(__fmul_rn(scale, pr), __fsub_rn(dp, (float)dsum));
#pragma unroll
    for (int j = 0; j < ATB_PER_LANE; j++)
      acc[j] += ds * kv[j];
  }
  att_bwd_merge_add(acc, D, a.dq + q_off, acc_s);
}

/* One block per (key row t, kv head g): every query head h of the group and
 * every query i that sees t (start + i >= t), in the fixed order h, then i
 * split over warps (i = i0 + warp, + ATB_WARPS, ...), then the warps merged
 * in order. The probabilities come back from the saved stats:
 *   P = exp(s - max) / sum,  ds = scale P (dP - D)
 *   dk_t += sum ds q_i,  dv_t += sum P g_i */
__global__ void __launch_bounds__(ATB_THREADS)
    k_attention_backward_kv(att_bwd_args a) {
  __shared__ float acc_s[ATB_WARPS * R1D_CUDA_MAX_HEAD_DIM];
  const int t = (int)blockIdx.x, g = (int)blockIdx.y;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int D = a.head_dim, group = a.n_heads / a.n_kv_heads;
  const size_t kv_off =
      (size_t)t * (size_t)a.n_kv_heads * (size_t)D + (size_t)g * D;
  const float scale = 1.0f / sqrtf((float)D);
  const int i0 = t - a.start > 0 ? t - a.start : 0;
  float kv[ATB_PER_LANE], vv[ATB_PER_LANE], qv[ATB_PER_LANE], gv[ATB_PER_LANE];
  float acc_k[ATB_PER_LANE], acc_v[ATB_PER_LANE];
  att_bwd_load(a.k + kv_off, D, lane, kv);
  att_bwd_load(a.v + kv_off, D, lane, vv);
#pragma unroll
  for (int j = 0; j < ATB_PER_LANE; j++) {
    acc_k[j] = 0.0f;
    acc_v[j] = 0.0f;
  }
  for (int h = g * group; h < (g + 1) * group; h++) {
    for (int i = i0 + warp; i < a.n; i += ATB_WARPS) {
      const size_t q_off = ((size_t)i * a.n_heads + (size_t)h) * (size_t)D;
      const att_bwd_stats st = a.stats[(size_t)i * a.n_heads + h];
      att_bwd_load(a.q + q_off, D, lane, qv);
      att_bwd_load(a.dout + q_off, D, lane, gv);
      float s = att_bwd_warp_dot(qv, kv) * scale;
      float pr = (float)(exp((double)s - st.max) / st.sum);
      float dp = att_bwd_warp_dot(gv, vv);
      float ds = __fmul_rn(__fmul_rn(scale, pr), __fsub_rn(dp, (float)st.d));
#pragma unroll
      for (int j = 0; j < ATB_PER_LANE; j++) {
        acc_k[j] += ds * qv[j];
        acc_v[j] += pr * gv[j];
      }
    }
  }
  if (a.dk) att_bwd_merge_add(acc_k, D, a.dk + kv_off, acc_s);
  if (a.dv) att_bwd_merge_add(acc_v, D, a.dv + kv_off, acc_s);
}

/* ---- host wrappers: launches on ctx->stream ---- */

/* Column sums of a[m, n] (times b and row_scale when b is given) added to
 * out[n], through a scratch area of partial sums. */
static void colsum_add(r1d_cuda_ctx *c, int m, int n, const float *a,
                       const float *b, const float *row_scale, double *partial,
                       float *out, const char *what) {
  int n_chunks = (m + COLSUM_ROWS - 1) / COLSUM_ROWS;
  dim3 grid((unsigned)((n + COLSUM_THREADS - 1) / COLSUM_THREADS),
            (unsigned)n_chunks);
  k_colsum_partial<<<grid, COLSUM_THREADS, 0, c->stream>>>(m, n, a, b,
                                                           row_scale, partial);
  r1d_cu_launched(c, what);
  k_colsum_finish<<<r1d_cu_blocks((size_t)n, COLSUM_THREADS), COLSUM_THREADS, 0,
                    c->stream>>>(n, n_chunks, partial, out);
  r1d_cu_launched(c, what);
}

/* Bytes of colsum_add's partial sums for m rows of n columns; fails (0)
 * when the chunks do not fit a grid's y dimension. */
static size_t colsum_bytes(r1d_cuda_ctx *c, int m, int n, const char *what) {
  int n_chunks = (m + COLSUM_ROWS - 1) / COLSUM_ROWS;
  if (n_chunks > 65535) {
    r1d_cu_fail(c, what, "too many rows for the column sums");
    return 0;
  }
  return (size_t)n_chunks * (size_t)n * sizeof(double);
}

void r1d_cu_linear_backward(void *ctx, int m, int n, int k, const float *x,
                            const float *w, const float *dy, float *dx,
                            float *dw, float *db) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (m <= 0 || n <= 0 || k <= 0 || r1d_cu_enter(c)) return;
  const float one = 1.0f;
  /* fp32 without TF32 (pedantic; TF32 after r1d_cuda_backend_set_tf32),
   * beta 1 to accumulate. cuBLAS gives the
   * same bits on every run on one GPU model (no atomics in GEMM), which is
   * the determinism the contract asks for.
   * Row-major [r, c] is column-major [c, r] with the same leading dimension
   * (see cuda_gemm.cu). dx[m,k] += dy[m,n] @ w[n,k] is, column-major,
   * dx^T[k,m] += w^T[k,n] dy^T[n,m]: N, N, M = k, N = m, K = n. */
  if (dx)
    r1d_cu_check_blas(c,
                      cublasGemmEx(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, k, m, n,
                                   &one, w, CUDA_R_32F, k, dy, CUDA_R_32F, n,
                                   &one, dx, CUDA_R_32F, k, c->train_compute,
                                   CUBLAS_GEMM_DEFAULT),
                      "linear_backward dx: cublasGemmEx");
  /* dw[n,k] += dy^T[n,m] @ x[m,k]: column-major dw^T[k,n] += x^T[k,m]
   * (dy^T[n,m])^T: N, T, M = k, N = n, K = m. */
  if (dw)
    r1d_cu_check_blas(c,
                      cublasGemmEx(c->blas, CUBLAS_OP_N, CUBLAS_OP_T, k, n, m,
                                   &one, x, CUDA_R_32F, k, dy, CUDA_R_32F, n,
                                   &one, dw, CUDA_R_32F, k, c->train_compute,
                                   CUBLAS_GEMM_DEFAULT),
                      "linear_backward dw: cublasGemmEx");
  if (db) {
    size_t bytes = colsum_bytes(c, m, n, "linear_backward db");
    double *partial = bytes ? (double *)r1d_cu_scratch(c, bytes) : NULL;
    if (!partial) return;
    colsum_add(c, m, n, dy, NULL, NULL, partial, db, "linear_backward db");
  }
}

void r1d_cu_embedding_backward(void *ctx, int n, const int32_t *ids, int dim,
                               const float *dout, float *dtable) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (n <= 0 || dim <= 0 || r1d_cu_enter(c)) return;
  k_embedding_backward<<<(unsigned)n, EMB_THREADS, 0, c->stream>>>(
      n, ids, dim, dout, dtable);
  r1d_cu_launched(c, "embedding_backward");
}

void r1d_cu_rmsnorm_backward(void *ctx, int n, int dim, const float *x,
                             const float *w, float eps, const float *dout,
                             float *dx, float *dw) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (n <= 0 || dim <= 0 || (!dx && !dw) || r1d_cu_enter(c)) return;
  /* scratch: r[n] (rounded up to 8 bytes), then dw's partial sums */
  size_t r_bytes = ((size_t)n * sizeof(float) + 7) / 8 * 8;
  size_t partial_bytes = dw ? colsum_bytes(c, n, dim, "rmsnorm_backward") : 0;
  if (dw && !partial_bytes) return;
  char *scratch = (char *)r1d_cu_scratch(c, r_bytes + partial_bytes);
  if (!scratch) return;
  float *r = (float *)scratch;
  k_rmsnorm_backward<<<(unsigned)n, ROW_THREADS, 0, c->stream>>>(dim, x, w, eps,
                                                                 dout, dx, r);
  r1d_cu_launched(c, "rmsnorm_backward");
  if (dw)
    colsum_add(c, n, dim, dout, x, r, (double *)(scratch + r_bytes), dw,
               "rmsnorm_backward dw");
}

void r1d_cu_rope_backward(void *ctx, int n, int n_heads, int head_dim,
                          const int32_t *pos, const float *inv_freq,
                          const float *dout, float *dx) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  size_t total =
      (size_t)(n > 0 ? n : 0) * (size_t)(head_dim / 2 > 0 ? head_dim / 2 : 0);
  if (total == 0 || n_heads <= 0 || r1d_cu_enter(c)) return;
  k_rope_backward<<<r1d_cu_blocks(total, EW_BWD_THREADS), EW_BWD_THREADS, 0,
                    c->stream>>>(total, n_heads, head_dim, pos, inv_freq, dout,
                                 dx);
  r1d_cu_launched(c, "rope_backward");
}

void r1d_cu_swiglu_backward(void *ctx, size_t n, const float *gate,
                            const float *up, const float *dout, float *dgate,
                            float *dup) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (n == 0 || (!dgate && !dup) || r1d_cu_enter(c)) return;
  k_swiglu_backward<<<r1d_cu_blocks(n, EW_BWD_THREADS), EW_BWD_THREADS, 0,
                      c->stream>>>(n, gate, up, dout, dgate, dup);
  r1d_cu_launched(c, "swiglu_backward");
}

/* loss (one float) and target_logprob[n] are DEVICE buffers, overwritten;
 * nothing waits for the host. The count of non-ignored rows lives in
 * scratch between the three kernels. */
void r1d_cu_cross_entropy(void *ctx, int n, int vocab, const float *logits,
                          const int32_t *targets, float grad_scale, float *loss,
                          float *target_logprob, float *dlogits) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (r1d_cu_enter(c)) return;
  if (n <= 0 || vocab <= 0) { /* no rows count: the loss is 0 */
    r1d_cu_check(c, cudaMemsetAsync(loss, 0, sizeof(float), c->stream),
                 "cross_entropy: cudaMemsetAsync");
    return;
  }
  int *counted = (int *)r1d_cu_scratch(c, sizeof(int));
  if (!counted) return;
  k_ce_count<<<1, ROW_THREADS, 0, c->stream>>>(n, targets, counted);
  r1d_cu_launched(c, "cross_entropy: count");
  k_ce_rows<<<(unsigned)n, ROW_THREADS, 0, c->stream>>>(
      vocab, logits, targets, grad_scale, counted, target_logprob, dlogits);
  r1d_cu_launched(c, "cross_entropy: rows");
  k_ce_loss<<<1, ROW_THREADS, 0, c->stream>>>(n, targets, target_logprob,
                                              counted, loss);
  r1d_cu_launched(c, "cross_entropy: loss");
}

void r1d_cu_attention_backward(void *ctx, int n, int start, int n_heads,
                               int n_kv_heads, int head_dim, const float *q,
                               const float *k, const float *v,
                               const float *dout, float *dq, float *dk,
                               float *dv) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (n <= 0 || n_heads <= 0 || start < 0 || (!dq && !dk && !dv) ||
      r1d_cu_enter(c))
    return;
  if (head_dim <= 0 || head_dim > R1D_CUDA_MAX_HEAD_DIM || n_kv_heads <= 0 ||
      n_kv_heads > 65535 || n_heads > 65535 || n_heads % n_kv_heads != 0) {
    char detail[128];
    snprintf(detail, sizeof detail,
             "unsupported shape: %d heads, %d kv heads, head_dim %d (max %d)",
             n_heads, n_kv_heads, head_dim, R1D_CUDA_MAX_HEAD_DIM);
    r1d_cu_fail(c, "attention_backward", detail);
    return;
  }
  att_bwd_stats *stats = (att_bwd_stats *)r1d_cu_scratch(
      c, (size_t)n * (size_t)n_heads * sizeof(att_bwd_stats));
  if (!stats) return;
  att_bwd_args a = {};
  a.q = q;
  a.k = k;
  a.v = v;
  a.dout = dout;
  a.dq = dq;
  a.dk = dk;
  a.dv = dv;
  a.stats = stats;
  a.n = n;
  a.start = start;
  a.n_heads = n_heads;
  a.n_kv_heads = n_kv_heads;
  a.head_dim = head_dim;
  k_attention_backward_q<<<dim3((unsigned)n, (unsigned)n_heads), ATB_THREADS, 0,
                           c->stream>>>(a);
  r1d_cu_launched(c, "attention_backward: q");
  if (!dk && !dv) return;
  k_attention_backward_kv<<<dim3((unsigned)(start + n), (unsigned)n_kv_heads),
                            ATB_THREADS, 0, c->stream>>>(a);
  r1d_cu_launched(c, "attention_backward: kv");
}
