/* ops_paged.c - the paged KV cache: writing new K/V rows through a slot
 * mapping, and causal attention of a mixed batch (decode queries and prefill
 * chunks of several sequences) over the block tables.
 *
 * A sequence's position p lives in slot
 *   block_table[p / block_size] * block_size + p % block_size
 * computed in int64: blocks * block_size overflows 32 bits on large pools.
 *
 * Batch invariance by construction: every (query, head) pair runs the same
 * function, attend_paged, on the same inputs whatever else is in the batch,
 * and that function's arithmetic order depends only on the query's own
 * position: a streaming softmax over positions 0..q_pos in increasing order,
 * in tiles of PAGED_TILE positions aligned to position 0 (so neither the
 * block size nor the batch moves a tile boundary), each dot product summed
 * in eight fixed lanes (r1d_cpu_dot8). OpenMP only decides which thread runs
 * a pair, never how it is summed. This is the same order as the per-row
 * path of ops_attention.c (attend_one), so a decode query gives the same
 * numbers through either op.
 *
 * Only positions 0..q_pos are read: slots past a sequence's length may hold
 * stale data or NaN, and NaN * 0 would still poison the sum. */
#include <math.h>
#include <string.h>

#include "cpu_ops.h"

/* Positions per softmax tile; the same value as ATTN_TILE in
 * ops_attention.c, which keeps the two ops' decode results identical. */
#define PAGED_TILE 512

/* k_cache[slots[i],:] = k[i,:], likewise v; a negative slot skips the row
 * (padding rows of a batch that own no cache position). */
void r1d_cpu_kv_write(void *ctx, int n, int kv_dim, const float *k,
                      const float *v, const int64_t *slots, float *k_cache,
                      float *v_cache) {
  (void)ctx;
  size_t row = (size_t)kv_dim * sizeof(float);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; i++) {
    int64_t s = slots[i];
    if (s < 0) continue;
    memcpy(k_cache + (size_t)s * kv_dim, k + (size_t)i * kv_dim, row);
    memcpy(v_cache + (size_t)s * kv_dim, v + (size_t)i * kv_dim, row);
  }
}

/* Where position p of a sequence lives (see the top comment). */
static int64_t slot_of(const int32_t *table, int block_size, int p) {
  return (int64_t)table[p / block_size] * block_size + p % block_size;
}

/* One query head q[hd] at position pos against the sequence whose block row
 * is `table`; kv rows are `stride` floats apart in the caches and this head
 * reads the hd floats at `off` in each. Writes o[hd], which doubles as the
 * accumulator. When a tile raises the running maximum, what was summed so
 * far is rescaled by exp(old_max - new_max): the same softmax, summed
 * tile by tile. */
static void attend_paged(const float *q, int pos, const int32_t *table,
                         int block_size, const float *k_cache,
                         const float *v_cache, size_t stride, size_t off,
                         int hd, float scale, float *o) {
  float scores[PAGED_TILE];
  float m = -INFINITY, l = 0.0f;
  int len = pos + 1;
  memset(o, 0, (size_t)hd * sizeof(float));
  for (int t0 = 0; t0 < len; t0 += PAGED_TILE) {
    int nt = len - t0 < PAGED_TILE ? len - t0 : PAGED_TILE;
    float tmax = -INFINITY;
    for (int t = 0; t < nt; t++) {
      int64_t s = slot_of(table, block_size, t0 + t);
      scores[t] =
          r1d_cpu_dot8(q, k_cache + (size_t)s * stride + off, hd) * scale;
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
      int64_t s = slot_of(table, block_size, t0 + t);
      const float *vr = v_cache + (size_t)s * stride + off;
      float p = expf(scores[t] - m);
      l += p;
      for (int d = 0; d < hd; d++)
        o[d] += p * vr[d];
    }
  }
  float inv = 1.0f / l;
  for (int d = 0; d < hd; d++)
    o[d] *= inv;
}

/* max_pos only sizes launches on devices; here each pair reads its own
 * q_pos, so it is unused. */
void r1d_cpu_paged_attention(void *ctx, int n_q, const int32_t *q_seq,
                             const int32_t *q_pos, int max_pos,
                             const int32_t *block_tables, int max_blocks,
                             int block_size, int n_heads, int n_kv_heads,
                             int head_dim, const float *q, const float *k_cache,
                             const float *v_cache, float *out) {
  (void)ctx;
  (void)max_pos;
  int group = n_heads / n_kv_heads;
  size_t stride = (size_t)n_kv_heads * head_dim; /* floats per cache row */
  float scale = 1.0f / sqrtf((float)head_dim);
  long long pairs = (long long)n_q * n_heads;
  /* Prefill queries are longer than decode ones: dynamic chunks balance. */
#pragma omp parallel for schedule(dynamic, 4)
  for (long long ih = 0; ih < pairs; ih++) {
    int i = (int)(ih / n_heads), h = (int)(ih % n_heads);
    const int32_t *table = block_tables + (size_t)q_seq[i] * max_blocks;
    size_t off = (size_t)(h / group) * head_dim;
    attend_paged(q + (size_t)ih * head_dim, q_pos[i], table, block_size,
                 k_cache, v_cache, stride, off, head_dim, scale,
                 out + (size_t)ih * head_dim);
  }
}
