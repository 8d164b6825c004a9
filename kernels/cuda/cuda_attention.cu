/* cuda_attention.cu - causal attention over a contiguous cache (`attention`,
 * prefill and training) and over paged caches (`paged_attention`, the
 * serving step: any mix of decode and prefill queries). One kernel serves
 * both; only the position -> cache row mapping differs:
 *   contiguous: row = p
 *   paged:      row = block_table[seq][p / block_size] * block_size
 *                     + p % block_size            (int64: big pools overflow
 *                                                  32 bits)
 *
 * Work split: one block per (query, kv head). The block handles the `group`
 * query heads that share that kv head (GQA), up to ATT_HEADS at a time, so a
 * K/V row is read once for all of them. Its ATT_WARPS warps take positions
 * p = warp, warp + ATT_WARPS, ... < len; a lane holds head_dim/32 elements
 * of the K and V rows (coalesced loads), a dot product ends in a warp
 * butterfly (every lane gets the same bits, so the softmax branch is warp
 * uniform). Each warp keeps a streaming softmax in fp32 per head (running
 * max m, sum l, output acc rescaled by exp(m_old - m_new) when the max
 * grows); at the end the warps' partial results are merged in warp order.
 *
 * Determinism and batch invariance: a query's positions, their split over
 * warps and the merge order depend only on its own length, never on the
 * batch, on n_q or on max_pos; a query row is computed the same way alone or
 * in any batch. Positions past the query's own (p > q_pos) are never read,
 * so stale or NaN slots beyond a sequence cannot poison the softmax.
 *
 * Shapes: q, out [n_q, n_heads, head_dim]; caches [rows, n_kv_heads *
 * head_dim]; head_dim <= 256. Next steps for speed: a split over positions
 * for long single-sequence decode (few blocks per SM today), and a tiled
 * tensor-core kernel for long prefill, where each block re-reads the whole
 * prefix for a single query. */
#include <math.h>
#include <stdio.h>

#include "cuda_internal.h"

#define ATT_WARPS 8
#define ATT_THREADS (ATT_WARPS * 32)
#define ATT_HEADS 8 /* query heads per pass (registers: acc[8][8]) */
#define ATT_PER_LANE (R1D_CUDA_MAX_HEAD_DIM / 32)

typedef struct att_args {
  const float *q, *k_cache, *v_cache;
  float *out;
  int n_heads, n_kv_heads, head_dim;
  int start;                   /* contiguous: query i sits at start + i */
  const int32_t *q_seq;        /* paged: sequence of query i */
  const int32_t *q_pos;        /* paged: position of query i */
  const int32_t *block_tables; /* paged: [n_seqs, max_blocks] */
  int max_blocks, block_size;
} att_args;

template <bool PAGED>
__global__ void __launch_bounds__(ATT_THREADS) k_attention(att_args a) {
  __shared__ float q_s[ATT_HEADS * R1D_CUDA_MAX_HEAD_DIM];
  __shared__ float acc_s[ATT_WARPS][R1D_CUDA_MAX_HEAD_DIM];
  __shared__ float m_s[ATT_WARPS], l_s[ATT_WARPS];
  const int qi = blockIdx.x, g = blockIdx.y;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int D = a.head_dim, group = a.n_heads / a.n_kv_heads;
  const size_t kv_stride = (size_t)a.n_kv_heads * (size_t)D;
  const float scale = 1.0f / sqrtf((float)D);
  const float *kbase = a.k_cache + (size_t)g * D;
  const float *vbase = a.v_cache + (size_t)g * D;
  int len;
  const int32_t *bt = NULL;
  if (PAGED) {
    len = a.q_pos[qi] + 1;
    bt = a.block_tables + (size_t)a.q_seq[qi] * (size_t)a.max_blocks;
  } else {
    len = a.start + qi + 1;
  }

  for (int h0 = 0; h0 < group; h0 += ATT_HEADS) {
    const int nh = group - h0 < ATT_HEADS ? group - h0 : ATT_HEADS;
    /* the nh query rows are adjacent in q: heads of a token are contiguous */
    const size_t qrow = (size_t)qi * a.n_heads + (size_t)g * group + h0;
    const float *qsrc = a.q + qrow * (size_t)D;
    __syncthreads(); /* the previous pass is done with q_s and acc_s */
    for (int t = threadIdx.x; t < nh * D; t += blockDim.x)
      q_s[t] = qsrc[t];
    __syncthreads();

    float m[ATT_HEADS], l[ATT_HEADS], acc[ATT_HEADS][ATT_PER_LANE];
#pragma unroll
    for (int hh = 0; hh < ATT_HEADS; hh++) {
      m[hh] = -INFINITY;
      l[hh] = 0.0f;
#pragma unroll
      for (int j = 0; j < ATT_PER_LANE; j++)
        acc[hh][j] = 0.0f;
    }

    for (int p = warp; p < len; p += ATT_WARPS) {
      int64_t row = p;
      if (PAGED)
        row = (int64_t)bt[p / a.block_size] * a.block_size + p % a.block_size;
      const float *kr = kbase + (size_t)row * kv_stride;
      const float *vr = vbase + (size_t)row * kv_stride;
      float kv[ATT_PER_LANE], vv[ATT_PER_LANE];
#pragma unroll
      for (int j = 0; j < ATT_PER_LANE; j++) {
        int d = lane + 32 * j;
        kv[j] = d < D ? kr[d] : 0.0f;
        vv[j] = d < D ? vr[d] : 0.0f;
      }
#pragma unroll
      for (int hh = 0; hh < ATT_HEADS; hh++) {
        if (hh >= nh) break;
        float s = 0.0f;
#pragma unroll
        for (int j = 0; j < ATT_PER_LANE; j++) {
          int d = lane + 32 * j;
          if (d < D) s += q_s[hh * D + d] * kv[j];
        }
        for (int off = 16; off > 0; off >>= 1)
          s += __shfl_xor_sync(0xffffffffu, s, off);
        s *= scale;
        if (s > m[hh]) {
          /* first position: m = -inf, r = 0, acc and l are 0 anyway */
          float r = expf(m[hh] - s);
          l[hh] = l[hh] * r + 1.0f;
#pragma unroll
          for (int j = 0; j < ATT_PER_LANE; j++)
            acc[hh][j] = acc[hh][j] * r + vv[j];
          m[hh] = s;
        } else {
          float pe = expf(s - m[hh]);
          l[hh] += pe;
#pragma unroll
          for (int j = 0; j < ATT_PER_LANE; j++)
            acc[hh][j] += pe * vv[j];
        }
      }
    }

    /* merge the warps' partial softmaxes, one head at a time (nh is block
     * uniform, so the barriers inside are reached by every thread) */
#pragma unroll
    for (int hh = 0; hh < ATT_HEADS; hh++) {
      if (hh >= nh) break;
      if (lane == 0) {
        m_s[warp] = m[hh];
        l_s[warp] = l[hh];
      }
#pragma unroll
      for (int j = 0; j < ATT_PER_LANE; j++) {
        int d = lane + 32 * j;
        if (d < D) acc_s[warp][d] = acc[hh][j];
      }
      __syncthreads();
      float mx = -INFINITY;
      for (int w = 0; w < ATT_WARPS; w++)
        mx = fmaxf(mx, m_s[w]);
      float sum = 0.0f;
      for (int w = 0; w < ATT_WARPS; w++)
        if (m_s[w] != -INFINITY) sum += l_s[w] * expf(m_s[w] - mx);
      float inv = 1.0f / sum;
      float *o = a.out + (qrow + hh) * (size_t)D;
      for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float v = 0.0f;
        for (int w = 0; w < ATT_WARPS; w++)
          if (m_s[w] != -INFINITY) v += acc_s[w][d] * expf(m_s[w] - mx);
        o[d] = v * inv;
      }
      __syncthreads(); /* before the next head overwrites the merge area */
    }
  }
}

static int att_shape_ok(r1d_cuda_ctx *c, const char *op, int n_heads,
                        int n_kv_heads, int head_dim) {
  if (head_dim <= 0 || head_dim > R1D_CUDA_MAX_HEAD_DIM || n_kv_heads <= 0 ||
      n_kv_heads > 65535 || n_heads % n_kv_heads != 0) {
    char detail[128];
    snprintf(detail, sizeof detail,
             "unsupported shape: %d heads, %d kv heads, head_dim %d (max %d)",
             n_heads, n_kv_heads, head_dim, R1D_CUDA_MAX_HEAD_DIM);
    r1d_cu_fail(c, op, detail);
    return 0;
  }
  return 1;
}

void r1d_cu_attention(void *ctx, int n, int start, int n_heads, int n_kv_heads,
                      int head_dim, const float *q, const float *k_cache,
                      const float *v_cache, float *out) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (n <= 0 || n_heads <= 0 || r1d_cu_enter(c)) return;
  if (!att_shape_ok(c, "attention", n_heads, n_kv_heads, head_dim)) return;
  att_args a = {};
  a.q = q;
  a.k_cache = k_cache;
  a.v_cache = v_cache;
  a.out = out;
  a.n_heads = n_heads;
  a.n_kv_heads = n_kv_heads;
  a.head_dim = head_dim;
  a.start = start;
  dim3 grid((unsigned)n, (unsigned)n_kv_heads);
  k_attention<false><<<grid, ATT_THREADS, 0, c->stream>>>(a);
  r1d_cu_launched(c, "attention");
}

void r1d_cu_paged_attention(void *ctx, int n_q, const int32_t *q_seq,
                            const int32_t *q_pos, int max_pos,
                            const int32_t *block_tables, int max_blocks,
                            int block_size, int n_heads, int n_kv_heads,
                            int head_dim, const float *q, const float *k_cache,
                            const float *v_cache, float *out) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  /* max_pos only bounds launch sizes; this kernel's launch does not depend
   * on it (that would make a row's arithmetic depend on the batch) */
  (void)max_pos;
  if (n_q <= 0 || n_heads <= 0 || r1d_cu_enter(c)) return;
  if (!att_shape_ok(c, "paged_attention", n_heads, n_kv_heads, head_dim))
    return;
  if (block_size <= 0) {
    r1d_cu_fail(c, "paged_attention", "block_size must be > 0");
    return;
  }
  att_args a = {};
  a.q = q;
  a.k_cache = k_cache;
  a.v_cache = v_cache;
  a.out = out;
  a.n_heads = n_heads;
  a.n_kv_heads = n_kv_heads;
  a.head_dim = head_dim;
  a.q_seq = q_seq;
  a.q_pos = q_pos;
  a.block_tables = block_tables;
  a.max_blocks = max_blocks;
  a.block_size = block_size;
  dim3 grid((unsigned)n_q, (unsigned)n_kv_heads);
  k_attention<true><<<grid, ATT_THREADS, 0, c->stream>>>(a);
  r1d_cu_launched(c, "paged_attention");
}
