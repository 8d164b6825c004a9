/* ops_linear.c - y[m,n] = x[m,k] @ w[n,k]^T (+ y), row-invariant.
 *
 * Why not OpenBLAS: its sgemm picks different kernels by problem size
 * (small-matrix paths, edge handling), so the same row can come out with
 * different last bits in a batch of 1 and of 5 (measured on OpenBLAS 0.3.21,
 * AVX-512: n=256, k=768 differs from m=5 on). The serving engine batches
 * unrelated requests together, and a request must produce the same tokens
 * whatever it shares a step with, so this op computes every output element
 * by one fixed recipe:
 *
 *   acc[VW lanes] = sum over k-chunks of x[i, chunk] * w[j, chunk]  (fma,
 *   chunk after chunk), then one fixed reduction tree over the lanes, then
 *   the k % VW tail in order, then + y[i,j] when accumulating.
 *
 * Register tiles of RM x RN dot products (llamafile's tinyBLAS does the same)
 * reuse each loaded vector RN or RM times; the edge tiles run the identical
 * per-element sequence, so tiling never changes a result. Threads split the
 * weight rows (n), never k; x is walked in L2-sized row blocks. This file is compiled with -ffp-contract=fast so
 * x*w+acc becomes one fma; that too is the same in every tile. */
#include <omp.h>
#include <stddef.h>
#include <string.h>

#include "cpu_ops.h"

#if defined(__AVX512F__)
#define VW 16 /* floats per vector */
#define RM 4  /* x rows per tile */
#define RN 4  /* w rows per tile */
#elif defined(__AVX__)
#define VW 8
#define RM 2
#define RN 4
#else /* SSE2, NEON: 16-byte vectors */
#define VW 4
#define RM 2
#define RN 4
#endif

typedef float vf __attribute__((vector_size(VW * sizeof(float))));
/* unaligned, may alias float arrays */
typedef float vf_u
    __attribute__((vector_size(VW * sizeof(float)), aligned(4), may_alias));

static inline vf load(const float *p) {
  return *(const vf_u *)p;
}

/* The one reduction tree every kernel uses. */
static inline float hsum(vf v) {
  float t[VW];
  memcpy(t, &v, sizeof t);
  for (int w = VW / 2; w > 0; w /= 2)
    for (int l = 0; l < w; l++)
      t[l] = t[l] + t[l + w];
  return t[0];
}

static inline float finish(vf acc, const float *x, const float *w, int k0,
                           int k) {
  float s = hsum(acc);
  for (int kk = k0; kk < k; kk++)
    s += x[kk] * w[kk];
  return s;
}

/* A full RM x RN tile at rows x[0..RM), w[0..RN). */
static void tile_full(int k, const float *x, const float *w, float beta,
                      float *y, int ldy) {
  vf acc[RM][RN];
  memset(acc, 0, sizeof acc);
  int kv = k / VW * VW;
  for (int kk = 0; kk < kv; kk += VW) {
    vf xv[RM], wv[RN];
    for (int i = 0; i < RM; i++)
      xv[i] = load(x + (size_t)i * k + kk);
    for (int j = 0; j < RN; j++)
      wv[j] = load(w + (size_t)j * k + kk);
    for (int i = 0; i < RM; i++)
      for (int j = 0; j < RN; j++)
        acc[i][j] += xv[i] * wv[j];
  }
  for (int i = 0; i < RM; i++)
    for (int j = 0; j < RN; j++) {
      float s = finish(acc[i][j], x + (size_t)i * k, w + (size_t)j * k, kv, k);
      float *out = y + (size_t)i * ldy + j;
      *out = beta != 0.0f ? *out + s : s;
    }
}

/* Any tile of mi <= RM rows by nj <= RN weight rows: row by row, the nj
 * dot products of a row side by side (independent fma chains), each element
 * in the same order as tile_full. */
static void tile_edge(int mi, int nj, int k, const float *x, const float *w,
                      float beta, float *y, int ldy) {
  int kv = k / VW * VW;
  for (int i = 0; i < mi; i++) {
    const float *xr = x + (size_t)i * k;
    vf acc[RN];
    memset(acc, 0, sizeof acc);
    for (int kk = 0; kk < kv; kk += VW) {
      vf xv = load(xr + kk);
      for (int j = 0; j < nj; j++)
        acc[j] += xv * load(w + (size_t)j * k + kk);
    }
    for (int j = 0; j < nj; j++) {
      float s = finish(acc[j], xr, w + (size_t)j * k, kv, k);
      float *out = y + (size_t)i * ldy + j;
      *out = beta != 0.0f ? *out + s : s;
    }
  }
}

void r1d_cpu_linear(void *ctx, int m, int n, int k, const float *x,
                    const void *wv, float beta, float *y) {
  (void)ctx;
  const float *w = wv; /* fp32: the CPU's weight format */
  if (m <= 0 || n <= 0) return;
  int n_tiles = (n + RN - 1) / RN;
  /* Rows of x are taken in blocks of about 512 KiB, which stay in L2 while
   * every weight tile of this thread passes over them; without this a long
   * prefill re-read all of x from L3 once per weight tile. */
  int rows_per_block = (int)((512u * 1024u) / ((size_t)k * sizeof(float)));
  rows_per_block = rows_per_block / RM * RM;
  if (rows_per_block < RM) rows_per_block = RM;
#pragma omp parallel
  {
    /* each thread owns a fixed range of weight-row tiles */
    int nt = omp_get_num_threads(), me = omp_get_thread_num();
    int t0 = (int)((long)n_tiles * me / nt);
    int t1 = (int)((long)n_tiles * (me + 1) / nt);
    for (int b0 = 0; b0 < m; b0 += rows_per_block) {
      int b1 = b0 + rows_per_block < m ? b0 + rows_per_block : m;
      for (int t = t0; t < t1; t++) {
        int j0 = t * RN, nj = n - j0 < RN ? n - j0 : RN;
        const float *wt = w + (size_t)j0 * k;
        int i0 = b0;
        for (; nj == RN && i0 + RM <= b1; i0 += RM)
          tile_full(k, x + (size_t)i0 * k, wt, beta, y + (size_t)i0 * n + j0,
                    n);
        if (i0 < b1)
          tile_edge(b1 - i0, nj, k, x + (size_t)i0 * k, wt, beta,
                    y + (size_t)i0 * n + j0, n);
      }
    }
  }
}
