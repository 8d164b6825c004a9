/* ops_paged.c - the paged KV cache: writing new K/V rows through a slot
 * mapping, and causal attention of a mixed batch (decode queries and prefill
 * chunks of several sequences) over the block tables.
 *
 * A sequence's position p lives in slot
 *   block_table[p / block_size] * block_size + p % block_size
 * computed in int64: blocks * block_size overflows 32 bits on large pools.
 *
 * Batch invariance by construction: every (query, head) pair gets the same
 * sequence of operations whatever else is in the batch, and its order
 * depends only on the query's own position: a streaming softmax over
 * positions 0..q_pos in increasing order, in tiles of PAGED_TILE positions
 * aligned to position 0 (so neither the block size nor the batch moves a
 * tile boundary), each dot product summed in eight fixed lanes
 * (r1d_cpu_dot8). When a tile raises the running maximum, what was summed so
 * far is rescaled by exp(old_max - new_max). For speed, up to GROUP_Q
 * queries of one sequence and one kv head (GQA heads, consecutive rows of a
 * prefill chunk) run together and share each K and V row load and the slot
 * lookups, but each query's arithmetic stays its own (attend_group); OpenMP
 * only decides which thread runs a group, never how anything is summed. This is the same order as the per-row
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

typedef float v8f __attribute__((vector_size(8 * sizeof(float))));
typedef float v8f_u
    __attribute__((vector_size(8 * sizeof(float)), aligned(4), may_alias));

/* r1d_cpu_dot8 of four queries against one key row, side by side: lane j of
 * s[i] is r1d_cpu_dot8's s[j] for query i, with the same multiplies, adds,
 * final tree and tail in the same order, so each result is bitwise
 * r1d_cpu_dot8(a[i], b, n); four independent chains hide the add latency
 * that one chain waits on. */
static void dot8x4(const float *const a[4], const float *b, int n,
                   float out[4]) {
  v8f s[4] = {{0}, {0}, {0}, {0}};
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    v8f bv = *(const v8f_u *)(b + i);
    for (int q = 0; q < 4; q++)
      s[q] = s[q] + *(const v8f_u *)(a[q] + i) * bv;
  }
  for (int q = 0; q < 4; q++) {
    float t = ((s[q][0] + s[q][1]) + (s[q][2] + s[q][3])) +
              ((s[q][4] + s[q][5]) + (s[q][6] + s[q][7]));
    for (int r = i; r < n; r++)
      t += a[q][r] * b[r];
    out[q] = t;
  }
}

/* Queries handled together by one work item (they share K/V row loads and
 * the slot lookups); a speed choice only, see attend_group. */
#define GROUP_Q 16

/* The queries of one work item: rows [r0, r1) of the batch, all of one
 * sequence, times heads [h0, h1), all reading kv head h0 / group. */
typedef struct paged_item {
  int r0, r1, h0, h1;
} paged_item;

/* attend_paged for every (row, head) of `it` at once: per tile, each K row
 * is scored against every query still attending to it, then each V row is
 * added into every such query's output. Each query's own sequence of
 * operations - its scores, running maximum, rescales, exp, l and o updates,
 * in increasing position order, tiles aligned to position 0 - is exactly
 * attend_paged's, so grouping changes no bit of any result. */
static void attend_group(const paged_item *it, const int32_t *q_pos,
                         const int32_t *table, int block_size, int n_heads,
                         int group, const float *q, const float *k_cache,
                         const float *v_cache, size_t stride, int hd,
                         float scale, float *out) {
  float scores[GROUP_Q][PAGED_TILE];
  int64_t slots[PAGED_TILE];
  const float *qv[GROUP_Q];
  float *o[GROUP_Q], m[GROUP_Q], l[GROUP_Q];
  int len[GROUP_Q], nq = 0, max_len = 0;
  size_t off = (size_t)(it->h0 / group) * hd;
  for (int r = it->r0; r < it->r1; r++)
    for (int h = it->h0; h < it->h1; h++) {
      size_t ih = (size_t)r * n_heads + h;
      qv[nq] = q + ih * hd;
      o[nq] = out + ih * hd;
      memset(o[nq], 0, (size_t)hd * sizeof(float));
      m[nq] = -INFINITY;
      l[nq] = 0.0f;
      len[nq] = q_pos[r] + 1;
      if (len[nq] > max_len) max_len = len[nq];
      nq++;
    }
  for (int t0 = 0; t0 < max_len; t0 += PAGED_TILE) {
    int ntmax = max_len - t0 < PAGED_TILE ? max_len - t0 : PAGED_TILE;
    int nt[GROUP_Q];
    for (int t = 0; t < ntmax; t++)
      slots[t] = slot_of(table, block_size, t0 + t);
    for (int j = 0; j < nq; j++)
      nt[j] = len[j] - t0 < 0 ? 0 : len[j] - t0 < ntmax ? len[j] - t0 : ntmax;
    for (int t = 0; t < ntmax; t++) {
      const float *kr = k_cache + (size_t)slots[t] * stride + off;
      int j = 0;
      for (; j + 4 <= nq; j += 4) {
        float d4[4];
        dot8x4(qv + j, kr, hd, d4);
        for (int u = 0; u < 4; u++)
          if (t < nt[j + u]) scores[j + u][t] = d4[u] * scale;
      }
      for (; j < nq; j++)
        if (t < nt[j]) scores[j][t] = r1d_cpu_dot8(qv[j], kr, hd) * scale;
    }
    for (int j = 0; j < nq; j++) {
      if (nt[j] == 0) continue;
      float tmax = -INFINITY;
      for (int t = 0; t < nt[j]; t++)
        if (scores[j][t] > tmax) tmax = scores[j][t];
      if (tmax > m[j]) {
        float r = expf(m[j] - tmax);
        for (int d = 0; d < hd; d++)
          o[j][d] *= r;
        l[j] *= r;
        m[j] = tmax;
      }
      /* scores become weights in place, in the same order as before */
      for (int t = 0; t < nt[j]; t++) {
        float p = expf(scores[j][t] - m[j]);
        l[j] += p;
        scores[j][t] = p;
      }
    }
    for (int t = 0; t < ntmax; t++) {
      const float *vr = v_cache + (size_t)slots[t] * stride + off;
      for (int j = 0; j < nq; j++) {
        if (t >= nt[j]) continue;
        float p = scores[j][t], *oj = o[j];
        for (int d = 0; d < hd; d++)
          oj[d] += p * vr[d];
      }
    }
  }
  for (int j = 0; j < nq; j++) {
    float inv = 1.0f / l[j];
    for (int d = 0; d < hd; d++)
      o[j][d] *= inv;
  }
}

/* max_pos only sizes launches on devices; here each query reads its own
 * q_pos, so it is unused. Work items: the batch rows are cut into chunks of
 * rows_per consecutive rows, a chunk into runs of one sequence, and the
 * heads of each kv head into pieces of heads_per; each (chunk, kv head,
 * head piece) is one OpenMP iteration, its runs done in turn. */
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
  int heads_per = group < GROUP_Q ? group : GROUP_Q;
  int pieces = (group + heads_per - 1) / heads_per;
  int rows_per = GROUP_Q / heads_per;
  int chunks = (n_q + rows_per - 1) / rows_per;
  long long items = (long long)chunks * n_kv_heads * pieces;
  /* Prefill queries are longer than decode ones: dynamic chunks balance. */
#pragma omp parallel for schedule(dynamic, 1)
  for (long long ix = 0; ix < items; ix++) {
    int c = (int)(ix / ((long long)n_kv_heads * pieces));
    int rest = (int)(ix % ((long long)n_kv_heads * pieces));
    int g = rest / pieces, piece = rest % pieces;
    paged_item it;
    it.h0 = g * group + piece * heads_per;
    it.h1 = it.h0 + heads_per < (g + 1) * group ? it.h0 + heads_per
                                                : (g + 1) * group;
    int end = (c + 1) * rows_per < n_q ? (c + 1) * rows_per : n_q;
    for (int r0 = c * rows_per; r0 < end;) {
      int r1 = r0 + 1;
      while (r1 < end && q_seq[r1] == q_seq[r0])
        r1++;
      it.r0 = r0;
      it.r1 = r1;
      attend_group(&it, q_pos, block_tables + (size_t)q_seq[r0] * max_blocks,
                   block_size, n_heads, group, q, k_cache, v_cache, stride,
                   head_dim, scale, out);
      r0 = r1;
    }
  }
}
