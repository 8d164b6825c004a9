/* cuda_sample.cu - per-row logit reductions: `logsumexp` and `sample`, one
 * block of 1024 threads per row (vocab up to a few hundred thousand).
 *
 * logsumexp: argmax (NaN skipped, ties to the lower id), then the sum of
 * exp(x - max) in double, as the CPU sampler does; a row whose max is +-inf
 * answers the max.
 *
 * sample, without sorting the vocabulary. Order the tokens by descending
 * weight w = exp((x - max) / T), ties by lower id: that is the order of the
 * 64-bit key (bits(w) << 32) | ~id, since non-negative floats order like
 * their bit patterns. Every set the contract keeps is a prefix of that order,
 * i.e. {key >= some threshold}:
 *   top-k:  the k-th largest key;
 *   top-p:  the key where the cumulative mass of the top-k set (or of the
 *           whole row) first reaches top_p of its total;
 *   min-p:  w >= min_p (the top weight is exactly 1), i.e. key >=
 *           bits(min_p) << 32;
 *   draw:   the key where the cumulative mass of the kept set first exceeds
 *           u * its total (inverse CDF in that order).
 * All four are one primitive, block_select: the element whose "measure of
 * the keys above it" < need <= "measure up to and including it", found by
 * radix descent over the key, 8 bits at a time (8 passes over the row, a 256
 * bucket histogram each). Measures are counts or masses; masses are w in
 * fixed point (w * 2^44, truncated: weights under 2^-44 of the top one count
 * as 0, never drawn), summed in 64-bit integers, so every sum is exact and
 * the result is independent of thread scheduling: the same logits and u give
 * the same token on every run and in any batch.
 *
 * The reference is kernels/cpu/ops_logits.c (a full sort); the token can
 * differ from it only where the two expf implementations round a weight
 * differently across a tie or a boundary, or where u lands within ~2^-44 of
 * a CDF step. Temperature <= 1e-5 (or NaN) or a row with a non-finite max:
 * the argmax. min_p above 1 keeps the first token only, as on the CPU
 * (whose prefix is never empty). logprob is the raw log_softmax at
 * temperature 1 of the chosen token. */
#include <math.h>

#include "cuda_internal.h"
#include "cuda_reduce.h"

#define ROW_THREADS 1024
#define MASS_ONE 17592186044416.0f /* 2^44: weight 1 in fixed point */
/* masses of a row add up to at most vocab * 2^44, which must fit 64 bits */
#define SAMPLE_MAX_VOCAB (1 << 20)

typedef unsigned long long u64;

typedef struct row_shared {
  u64 hist[256];
  u64 red_u64[32];
  double red_d[32];
  float red_v[32];
  int red_i[32];
  u64 prefix, above;
} row_shared;

/* ---- per-element quantities (recomputed each pass, bit-identical) ---- */

/* exp((x - max) / T) with an IEEE division, as the CPU twin computes it */
__device__ inline float s_weight(float x, float lmax, float t) {
  return isnan(x) ? 0.0f : expf(__fdiv_rn(x - lmax, t));
}

__device__ inline u64 s_key(float w, int id) {
  return ((u64)__float_as_uint(w) << 32) | (u64)(~(uint32_t)id);
}

__device__ inline u64 s_mass(float w) {
  return __float2ull_rz(w * MASS_ONE); /* w <= 1: exact scaling */
}

/* ---- row statistics ---- */

/* Index of the largest non-NaN logit (lowest on ties; 0 when all NaN) and
 * log(sum(exp(x))) into *lse. */
__device__ int row_argmax_lse(const float *x, int vocab, float *lse,
                              row_shared &sh) {
  float bv = 0.0f;
  int bi = -1;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    float v = x[i];
    if (!isnan(v)) r1d_argmax_merge(&bv, &bi, v, i);
  }
  r1d_block_argmax(&bv, &bi, sh.red_v, sh.red_i);
  int amax = bi < 0 ? 0 : bi;
  float m = x[amax];
  if (!isfinite(m)) {
    *lse = m; /* nothing finite to normalise */
    return amax;
  }
  double s = 0.0;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    float v = x[i];
    if (!isnan(v)) s += (double)expf(v - m);
  }
  s = r1d_block_sum_d(s, sh.red_d);
  *lse = m + (float)log(s);
  return amax;
}

/* Total mass of the keys >= lo. */
__device__ u64 row_mass(const float *x, int vocab, float lmax, float t, u64 lo,
                        row_shared &sh) {
  u64 acc = 0;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    float w = s_weight(x[i], lmax, t);
    if (s_key(w, i) >= lo) acc += s_mass(w);
  }
  return r1d_block_sum_u64(acc, sh.red_u64);
}

/* The key of the element e among keys >= lo with
 *   measure(keys > key(e)) < need <= measure(keys >= key(e)),
 * measure = count (by_mass 0) or mass. Requires 1 <= need <= measure of all
 * keys >= lo. */
__device__ u64 block_select(const float *x, int vocab, float lmax, float t,
                            u64 lo, int by_mass, u64 need, row_shared &sh) {
  u64 prefix = 0, above = 0;
  for (int shift = 56; shift >= 0; shift -= 8) {
    const u64 hi_mask = shift == 56 ? 0ull : ~0ull << (shift + 8);
    for (int b = threadIdx.x; b < 256; b += blockDim.x)
      sh.hist[b] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
      float w = s_weight(x[i], lmax, t);
      u64 key = s_key(w, i);
      if (key < lo || (key & hi_mask) != prefix) continue;
      u64 mv = by_mass ? s_mass(w) : 1ull;
      if (mv) atomicAdd(&sh.hist[(key >> shift) & 255], mv);
    }
    __syncthreads();
    if (threadIdx.x < 32) {
      /* lane l owns buckets 255-8l down to 248-8l: lanes in descending key
       * order; the lane whose mass interval holds `need` walks its 8 */
      int lane = threadIdx.x;
      u64 own = 0;
      for (int j = 0; j < 8; j++)
        own += sh.hist[255 - 8 * lane - j];
      u64 incl = own;
      for (int off = 1; off < 32; off <<= 1) {
        u64 o = __shfl_up_sync(R1D_FULL_MASK, incl, off);
        if (lane >= off) incl += o;
      }
      u64 excl = incl - own;
      if (lane == 0) { /* kept only if need exceeds the total (a bug) */
        sh.prefix = prefix;
        sh.above = above;
      }
      __syncwarp();
      if (above + excl < need && need <= above + incl) {
        u64 acc = above + excl;
        int b = 255 - 8 * lane;
        for (int j = 0; j < 8; j++, b--) {
          if (acc + sh.hist[b] >= need) break;
          acc += sh.hist[b];
        }
        sh.prefix = prefix | ((u64)b << shift);
        sh.above = acc;
      }
    }
    __syncthreads();
    prefix = sh.prefix;
    above = sh.above;
    __syncthreads(); /* everyone read prefix before lane 0 rewrites it */
  }
  return prefix;
}

/* ---- kernels ---- */

/* lse[row] for x[n, vocab]; grid = n */
__global__ void __launch_bounds__(ROW_THREADS)
    k_logsumexp(int vocab, const float *x, float *lse) {
  __shared__ row_shared sh;
  float l;
  row_argmax_lse(x + (size_t)blockIdx.x * (size_t)vocab, vocab, &l, sh);
  if (threadIdx.x == 0) lse[blockIdx.x] = l;
}

/* token[row], logprob[row] for logits[n, vocab]; grid = n */
__global__ void __launch_bounds__(ROW_THREADS)
    k_sample(int vocab, const float *logits, const float *temperature,
             const int32_t *top_k, const float *top_p, const float *min_p,
             const float *u, int32_t *token, float *logprob) {
  __shared__ row_shared sh;
  const int row = blockIdx.x;
  const float *x = logits + (size_t)row * (size_t)vocab;
  float lse;
  int tok = row_argmax_lse(x, vocab, &lse, sh);
  const float lmax = x[tok], t = temperature[row];
  if (t > 1e-5f && isfinite(lmax)) {
    u64 lo = 0;
    int k = top_k[row];
    if (k > 0 && k < vocab)
      lo = block_select(x, vocab, lmax, t, 0, 0, (u64)k, sh);
    float tp = top_p[row];
    if (tp < 1.0f) {
      u64 total = row_mass(x, vocab, lmax, t, lo, sh);
      double want = ceil((double)tp * (double)total);
      u64 need = !(want >= 1.0)          ? 1ull
                 : want >= (double)total ? total
                                         : (u64)want;
      lo = block_select(x, vocab, lmax, t, lo, 1, need, sh);
    }
    float mp = min_p[row];
    if (mp > 1.0f) {
      /* the CPU keeps its first token only (the prefix is at least 1 long):
       * the largest key, not every token whose weight rounded to 1 */
      lo = block_select(x, vocab, lmax, t, lo, 0, 1ull, sh);
    } else if (mp > 0.0f) {
      u64 lm = (u64)__float_as_uint(mp) << 32; /* w >= min_p * 1 */
      if (lm > lo) lo = lm;
    }
    u64 kept = row_mass(x, vocab, lmax, t, lo, sh);
    if (kept > 0) {
      double target = (double)u[row] * (double)kept;
      u64 need = !(target >= 0.0)         ? 1ull
                 : target >= (double)kept ? kept
                                          : (u64)target + 1;
      if (need > kept) need = kept;
      u64 key = block_select(x, vocab, lmax, t, lo, 1, need, sh);
      tok = (int)(~(uint32_t)(key & 0xffffffffull));
    }
  }
  if (threadIdx.x == 0) {
    token[row] = tok;
    logprob[row] = x[tok] - lse;
  }
}

void r1d_cu_logsumexp(void *ctx, int n, int vocab, const float *x, float *lse) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (n <= 0 || vocab <= 0 || r1d_cu_enter(c)) return;
  k_logsumexp<<<(unsigned)n, ROW_THREADS, 0, c->stream>>>(vocab, x, lse);
  r1d_cu_launched(c, "logsumexp");
}

void r1d_cu_sample(void *ctx, int n, int vocab, const float *logits,
                   const float *temperature, const int32_t *top_k,
                   const float *top_p, const float *min_p, const float *u,
                   int32_t *token, float *logprob) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (n <= 0 || vocab <= 0 || r1d_cu_enter(c)) return;
  if (vocab >= SAMPLE_MAX_VOCAB) {
    r1d_cu_fail(c, "sample", "vocab of 2^20 tokens or more is unsupported");
    return;
  }
  k_sample<<<(unsigned)n, ROW_THREADS, 0, c->stream>>>(
      vocab, logits, temperature, top_k, top_p, min_p, u, token, logprob);
  r1d_cu_launched(c, "sample");
}
