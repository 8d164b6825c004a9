/* ops_attention.c - causal scaled-dot-product attention of n new queries
 * against a contiguous KV cache, with grouped-query heads.
 *
 * Work is split over (query, head) pairs: prefill has many queries, decode
 * has one query and many heads, and both keep every thread busy. Each pair
 * walks positions 0..start+i only, so V rows past the causal limit are never
 * read (stale or NaN rows beyond it cannot poison the sum).
 *
 * Softmax is max-subtracted in fp32. Scores are produced in tiles of
 * ATTN_TILE positions in a stack buffer, so the kernel needs no heap memory
 * (and has no failure path); when a sequence spans several tiles the running
 * output is rescaled by exp(old_max - new_max) as the maximum grows, which is
 * the same softmax, summed in a different order. Up to ATTN_TILE positions it
 * is the textbook two-pass softmax. The output row doubles as accumulator. */
#include <math.h>
#include <string.h>

#include "cpu_ops.h"

#define ATTN_TILE 512

static float dot(const float *a, const float *b, int n) {
  float s = 0.0f;
  for (int i = 0; i < n; i++)
    s += a[i] * b[i];
  return s;
}

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
      scores[t] = dot(q, k + (size_t)(t0 + t) * stride, hd) * scale;
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

void r1d_cpu_attention(void *ctx, int n, int start, int n_heads, int n_kv_heads,
                       int head_dim, const float *q, const float *k_cache,
                       const float *v_cache, float *out) {
  (void)ctx;
  int group = n_heads / n_kv_heads;
  size_t stride = (size_t)n_kv_heads * head_dim; /* floats per cache row */
  float scale = 1.0f / sqrtf((float)head_dim);
  long long pairs = (long long)n * n_heads;
  /* Causal rows grow with i: dynamic chunks keep prefill threads balanced. */
#pragma omp parallel for schedule(dynamic, 8)
  for (long long ih = 0; ih < pairs; ih++) {
    int i = (int)(ih / n_heads), h = (int)(ih % n_heads);
    size_t off = (size_t)(h / group) * head_dim;
    attend_one(q + (size_t)ih * head_dim, k_cache + off, v_cache + off, stride,
               start + i + 1, head_dim, scale, out + (size_t)ih * head_dim);
  }
}
