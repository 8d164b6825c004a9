/* ops_attention.c - causal scaled-dot-product attention of n new queries
 * against a contiguous KV cache, with grouped-query heads.
 *
 * Two paths. Prefill (many queries) runs each (head, 64-query tile) as two
 * GEMMs, S = Q K^T and O = softmax(S) V, because attention is a tenth of a
 * prefill's flops but was half its time as scalar loops. Decode (and short
 * chunks) splits work over (query, head) pairs, each a streaming softmax.
 * Either way a query at position p reads key/value rows 0..p only, or rows
 * written by the same pass, so V rows past the sequence's length are never
 * read (stale or NaN rows beyond it cannot poison the sum).
 *
 * Softmax is max-subtracted in fp32. The per-row path produces scores in tiles
 * of ATTN_TILE positions in a stack buffer, so it needs no heap memory (and is
 * the fallback when a GEMM tile's scores cannot be allocated); when a sequence
 * spans several tiles the running output is rescaled by exp(old_max - new_max)
 * as the maximum grows, which is the same softmax, summed in a different
 * order. The output row doubles as accumulator. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"

#define ATTN_TILE 512

/* One query row q[hd] against kv rows 0..len-1 (row stride `stride` floats);
 * writes o[hd]. */
static void attend_one(const float *q, const float *k, const float *v,
                       size_t stride, int len, int hd, float scale, float *o) {
  float scores[ATTN_TILE];
  float m = -INFINITY, l = 0.0f;
  memset(o, 0, (size_t)hd * sizeof(float));
  for (int t0 = 0; t0 < len; t0 += ATTN_TILE) {
    int nt = len - t0 < ATTN_TILE ? len - t0 : ATTN_TILE;
    float tmax = -INFINITY;
    for (int t = 0; t < nt; t++) {
      scores[t] = r1d_cpu_dot8(q, k + (size_t)(t0 + t) * stride, hd) * scale;
      if (scores[t] > tmax) tmax = scores[t];
    }
    if (tmax > m) {
      /* exp(-inf) = 0 on the first tile: o and l are 0 anyway */
      float r = expf(m - tmax);
      for (int d = 0; d < hd; d++)
        o[d] *= r;
      l *= r;
      m = tmax;
    }
    for (int t = 0; t < nt; t++) {
      float p = expf(scores[t] - m);
      const float *vr = v + (size_t)(t0 + t) * stride;
      l += p;
      for (int d = 0; d < hd; d++)
        o[d] += p * vr[d];
    }
  }
  float inv = 1.0f / l;
  for (int d = 0; d < hd; d++)
    o[d] *= inv;
}

/* Query rows per GEMM tile in prefill: enough rows for GEMM to run near its
 * peak, few enough that the score tile (ATTN_QTILE x len floats) stays small. */
#define ATTN_QTILE 64

/* Prefill: one (head, query tile) as two GEMMs. S = Q K^T over the keys the
 * tile can see, causal mask and softmax per row in place, O = P V. Rows of q
 * and out are strided by n_heads*hd, cache rows by n_kv*hd, so no copies.
 * Returns 0, or -1 when the score tile cannot be allocated (the caller then
 * uses the per-row path, which needs no memory). */
static int attend_tile(const float *q, const float *k, const float *v,
                       int q_stride, int kv_stride, int nq, int first_pos,
                       int hd, float scale, float *out) {
  int len = first_pos + nq; /* keys 0 .. first_pos+nq-1 */
  float *sc = malloc((size_t)nq * (size_t)len * sizeof(float));
  if (!sc) return -1;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, len, hd, scale, q,
              q_stride, k, kv_stride, 0.0f, sc, len);
  for (int r = 0; r < nq; r++) {
    float *row = sc + (size_t)r * len;
    int vis = first_pos + r + 1; /* causal: keys 0 .. first_pos+r */
    float m = -INFINITY, l = 0.0f;
    for (int t = 0; t < vis; t++)
      if (row[t] > m) m = row[t];
    for (int t = 0; t < vis; t++) {
      row[t] = expf(row[t] - m);
      l += row[t];
    }
    float inv = 1.0f / l;
    for (int t = 0; t < vis; t++)
      row[t] *= inv;
    for (int t = vis; t < len; t++)
      row[t] = 0.0f; /* masked keys; V rows there are finite (in the tile) */
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, len, 1.0f, sc,
              len, v, kv_stride, 0.0f, out, q_stride);
  free(sc);
  return 0;
}

void r1d_cpu_attention(void *ctx, int n, int start, int n_heads, int n_kv_heads,
                       int head_dim, const float *q, const float *k_cache,
                       const float *v_cache, float *out) {
  (void)ctx;
  int group = n_heads / n_kv_heads;
  size_t stride = (size_t)n_kv_heads * head_dim; /* floats per cache row */
  int q_stride = n_heads * head_dim;
  float scale = 1.0f / sqrtf((float)head_dim);
  if (n >= ATTN_QTILE / 4) {
    /* Prefill: GEMM tiles. Every key row a tile reads lies below start+n, i.e.
     * was written by this pass or earlier, so masked entries multiply finite
     * V rows by exactly 0. */
    int tiles = (n + ATTN_QTILE - 1) / ATTN_QTILE;
    long long tasks = (long long)tiles * n_heads;
#pragma omp parallel for schedule(dynamic, 1)
    for (long long th = 0; th < tasks; th++) {
      /* later tiles are longer: hand them out first */
      int tile = tiles - 1 - (int)(th / n_heads), h = (int)(th % n_heads);
      int i0 = tile * ATTN_QTILE;
      int nq = n - i0 < ATTN_QTILE ? n - i0 : ATTN_QTILE;
      size_t off = (size_t)(h / group) * head_dim;
      const float *qt = q + (size_t)i0 * q_stride + (size_t)h * head_dim;
      float *ot = out + (size_t)i0 * q_stride + (size_t)h * head_dim;
      if (attend_tile(qt, k_cache + off, v_cache + off, q_stride, (int)stride,
                      nq, start + i0, head_dim, scale, ot) == 0)
        continue;
      for (int r = 0; r < nq; r++)
        attend_one(qt + (size_t)r * q_stride, k_cache + off, v_cache + off,
                   stride, start + i0 + r + 1, head_dim, scale,
                   ot + (size_t)r * q_stride);
    }
    return;
  }
  long long pairs = (long long)n * n_heads;
  /* Causal rows grow with i: dynamic chunks keep threads balanced. */
#pragma omp parallel for schedule(dynamic, 8)
  for (long long ih = 0; ih < pairs; ih++) {
    int i = (int)(ih / n_heads), h = (int)(ih % n_heads);
    size_t off = (size_t)(h / group) * head_dim;
    attend_one(q + (size_t)ih * head_dim, k_cache + off, v_cache + off, stride,
               start + i + 1, head_dim, scale, out + (size_t)ih * head_dim);
  }
}
