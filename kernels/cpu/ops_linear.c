/* ops_linear.c - y[m,n] = x[m,k] @ w[n,k]^T (+ y), row-invariant.
 *
 * Why not OpenBLAS: its sgemm picks different kernels by problem size
 * (small-matrix paths, edge handling), so the same row can come out with
 * different last bits in a batch of 1 and of 5 (measured on OpenBLAS 0.3.21,
 * AVX-512: n=256, k=768 differs from m=5 on). The serving engine batches
 * unrelated requests together, and a request must produce the same tokens
 * whatever it shares a step with, so this op computes every output element
 * by one fixed recipe that depends on k alone:
 *
 *   k is cut into VW-float chunks (the last one zero-padded) and the chunks
 *   into k blocks of at most KC floats (kblocks_of: a function of k only).
 *   Per block: acc[VW lanes] = sum of x[i, chunk] * w[j, chunk] over the
 *   block's chunks in order (one fma each), then one fixed reduction tree
 *   over the lanes (hsum: lane l + lane l + VW/2, then l + VW/4, ...) gives
 *   the block's partial p_b. Then y = p_0 + p_1 + ... in block order, or
 *   y = y + p_0 + p_1 + ... when accumulating (beta 1).
 *
 * Every path computes exactly that: register tiles of RM x RN dot products
 * (llamafile's tinyBLAS does the same) reuse each loaded vector RN or RM
 * times; on AVX-512 the 16 trees of a 4x4 tile run side by side as one
 * transposed reduction (reduce16) and those of an edge row as reduce4, both
 * performing the very additions of hsum. So tiling, blocking, packing and
 * threads never change a result, and row i of y does not depend on m or on
 * the other rows (bench/bench_linear checks this bitwise for m = 1..70 on
 * edge shapes, tests/kernels/test_backend_ops too).
 *
 * Speed (the blocking of a BLAS, on dot products): the x rows of a tile
 * are packed, zero-padded, into a contiguous buffer of MB rows by one k
 * block (24 KiB at k = 768) that stays in L1 while the weight tiles of a
 * chunk of NC rows pass over it; that chunk (NC x one k block, under 1 MiB)
 * stays in L2, and from m = W_PACK_MIN_M on it is packed too, so each tile
 * reads two contiguous streams. The k blocks are what let x sit in L1 for
 * any k; they cost one reduction per block. Threads split the weight rows
 * (n), never k. This file is compiled with -ffp-contract=fast so x*w+acc
 * becomes one fma, the same in every tile.
 *
 * Measured with bench/bench_linear (Xeon, AVX-512, 1 thread, CPU time):
 * m = 256..512 at 75-90% of OpenBLAS sgemm for n x k = 2304 x 768,
 * 768 x 2304, 256 x 768; m = 4..64 1.2-3x OpenBLAS; m = 1 as fast as
 * sgemv. */
#include <omp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"

#if defined(__AVX512F__)
#include <immintrin.h>
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

/* Floats per k block at most: part of the recipe (changing it changes the
 * last bits of every result), so it is a constant, never tuned per call. */
#define KC 1024
/* x rows packed per L1 block (a multiple of RM) and weight rows per L2
 * chunk: loop order only, no effect on results. */
#define MB 8
#define NC 256
/* m from which weight tiles are packed (speed only) */
#define W_PACK_MIN_M 128

typedef float vf __attribute__((vector_size(VW * sizeof(float))));
/* unaligned, may alias float arrays */
typedef float vf_u
    __attribute__((vector_size(VW * sizeof(float)), aligned(4), may_alias));

static inline vf load(const float *p) {
  return *(const vf_u *)p;
}

/* The first `lanes` floats at p, zeros after: the padded last chunk. */
static inline vf load_part(const float *p, int lanes) {
#if defined(__AVX512F__)
  return (vf)_mm512_maskz_loadu_ps((__mmask16)((1u << lanes) - 1u), p);
#else
  vf v;
  memset(&v, 0, sizeof v);
  memcpy(&v, p, (size_t)lanes * sizeof(float));
  return v;
#endif
}

#if !defined(__AVX512F__)
/* The one reduction tree of the recipe (on AVX-512, reduce16 and reduce4
 * below do these very additions for several accumulators at once). */
static inline float hsum(vf v) {
  float t[VW];
  memcpy(t, &v, sizeof t);
  for (int w = VW / 2; w > 0; w /= 2)
    for (int l = 0; l < w; l++)
      t[l] = t[l] + t[l + w];
  return t[0];
}
#endif

/* The k blocks of the recipe: n_chunks chunks of VW floats, per_block
 * chunks in every block but maybe the last. Depends on k only. */
typedef struct kblocks {
  int n_chunks, per_block, n_blocks;
} kblocks;

static kblocks kblocks_of(int k) {
  kblocks kb;
  kb.n_chunks = (k + VW - 1) / VW;
  kb.n_blocks = (kb.n_chunks * VW + KC - 1) / KC;
  if (kb.n_blocks < 1) kb.n_blocks = 1;
  kb.per_block = (kb.n_chunks + kb.n_blocks - 1) / kb.n_blocks;
  if (kb.per_block < 1) kb.per_block = 1;
  return kb;
}

/* Adds a block's partial p into y: the first block of a beta-0 call stores
 * it (y may hold garbage then), every other adds it. */
static inline void put(float *y, float p, int add) {
  *y = add ? *y + p : p;
}

/* RN weight rows, chunks [c0, c1), into wp[chunk][row][VW], zero-padded
 * like pack_x. */
static void pack_w(const float *w, int k, int c0, int c1, float *wp) {
  for (int c = c0; c < c1; c++)
    for (int j = 0; j < RN; j++) {
      float *dst = wp + ((size_t)(c - c0) * RN + j) * VW;
      int kk = c * VW, lanes = k - kk < VW ? k - kk : VW;
      memcpy(dst, w + (size_t)j * k + kk, (size_t)lanes * sizeof(float));
      for (int l = lanes; l < VW; l++)
        dst[l] = 0.0f;
    }
}

#if defined(__AVX512F__)
/* The 16 trees of a 4x4 tile at once; returns the sum of acc[i][j] in lane
 * 4 * i + j. Each step adds lane l to lane
 * l + 8, then l + 4, l + 2, l + 1 of every accumulator, as hsum does, with
 * two accumulators' halves sharing one vector: the same additions, fewer
 * instructions. */
static inline __m512 reduce16(vf acc[4][4]) {
  __m512 u[8], v[4], t[2];
  for (int p = 0; p < 8; p++) { /* elements e = 4 j + i: 2p and 2p + 1 */
    __m512 a = (__m512)acc[(2 * p) % 4][(2 * p) / 4];
    __m512 b = (__m512)acc[(2 * p + 1) % 4][(2 * p + 1) / 4];
    u[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44),
                         _mm512_shuffle_f32x4(a, b, 0xEE));
  }
  for (int q = 0; q < 4; q++)
    v[q] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * q], u[2 * q + 1], 0x88),
                         _mm512_shuffle_f32x4(u[2 * q], u[2 * q + 1], 0xDD));
  for (int r = 0; r < 2; r++)
    t[r] = _mm512_add_ps(_mm512_shuffle_ps(v[2 * r], v[2 * r + 1], 0x44),
                         _mm512_shuffle_ps(v[2 * r], v[2 * r + 1], 0xEE));
  return _mm512_add_ps(_mm512_shuffle_ps(t[0], t[1], 0x88),
                       _mm512_shuffle_ps(t[0], t[1], 0xDD));
}

/* The trees of 4 accumulators (unused ones zero): the first three steps of
 * reduce16 on fewer vectors; element j ends in lane 4 * j. */
static inline __m512 reduce4(const vf acc[4]) {
  __m512 a0 = (__m512)acc[0], a1 = (__m512)acc[1];
  __m512 a2 = (__m512)acc[2], a3 = (__m512)acc[3];
  __m512 u0 = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, 0x44),
                            _mm512_shuffle_f32x4(a0, a1, 0xEE));
  __m512 u1 = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, 0x44),
                            _mm512_shuffle_f32x4(a2, a3, 0xEE));
  /* groups of 4 lanes: elements 0, 1, 2, 3 */
  __m512 v = _mm512_add_ps(_mm512_shuffle_f32x4(u0, u1, 0x88),
                           _mm512_shuffle_f32x4(u0, u1, 0xDD));
  __m512 t = _mm512_add_ps(_mm512_shuffle_ps(v, v, 0x44),
                           _mm512_shuffle_ps(v, v, 0xEE));
  return _mm512_add_ps(_mm512_shuffle_ps(t, t, 0x88),
                       _mm512_shuffle_ps(t, t, 0xDD));
}
#endif

/* Any mi x nj tile over floats [k0, k1) of unpacked rows (x rows ldx floats
 * apart, w rows ldw apart): row by row, RN dot products of a row side by
 * side, each element in the recipe's order. Missing weight rows (nj < RN)
 * re-read row 0 and are dropped: a fixed RN keeps the accumulators in
 * registers. */
static void tile_edge(int mi, int nj, int k0, int k1, const float *x,
                      size_t ldx, const float *w, size_t ldw, int add, float *y,
                      int ldy) {
  const float *wr[RN];
  for (int j = 0; j < RN; j++)
    wr[j] = w + (j < nj ? (size_t)j * ldw : 0);
  for (int i = 0; i < mi; i++) {
    const float *xr = x + (size_t)i * ldx;
    vf acc[RN];
    memset(acc, 0, sizeof acc);
    int kk = k0;
    for (; kk + VW <= k1; kk += VW) {
      vf xv = load(xr + kk);
      for (int j = 0; j < RN; j++)
        acc[j] += xv * load(wr[j] + kk);
    }
    if (kk < k1) {
      vf xv = load_part(xr + kk, k1 - kk);
      for (int j = 0; j < RN; j++)
        acc[j] += xv * load_part(wr[j] + kk, k1 - kk);
    }
#if defined(__AVX512F__)
    float s[16];
    _mm512_storeu_ps(s, reduce4(acc));
    for (int j = 0; j < nj; j++)
      put(y + (size_t)i * ldy + j, s[4 * j], add);
#else
    for (int j = 0; j < nj; j++)
      put(y + (size_t)i * ldy + j, hsum(acc[j]), add);
#endif
  }
}

/* RM rows of x, chunks [c0, c1) of a block, into xp[chunk][row][VW], the
 * padded tail of the last chunk zeroed. */
static void pack_x(const float *x, int k, int c0, int c1, float *xp) {
  for (int c = c0; c < c1; c++)
    for (int i = 0; i < RM; i++) {
      float *dst = xp + ((size_t)(c - c0) * RM + i) * VW;
      int kk = c * VW, lanes = k - kk < VW ? k - kk : VW;
      memcpy(dst, x + (size_t)i * k + kk, (size_t)lanes * sizeof(float));
      for (int l = lanes; l < VW; l++)
        dst[l] = 0.0f;
    }
}

/* A full RM x RN tile over nch chunks of one k block: x packed by pack_x;
 * element (j, chunk c) of w at w + j * wj + c * wc (unpacked rows: wj = k,
 * wc = VW; packed by pack_w: wj = VW, wc = RN * VW). The last chunk holds
 * `last` floats (VW when whole); the rest of it is masked off. */
static void tile_full(int nch, int last, const float *xp, const float *w,
                      size_t wj, size_t wc, int add, float *y, int ldy) {
  vf acc[RM][RN];
  memset(acc, 0, sizeof acc);
  int cf = last < VW ? nch - 1 : nch; /* chunks read whole */
  for (int c = 0; c < cf; c++) {
    const float *xc = xp + (size_t)c * RM * VW;
    vf xv[RM], wv[RN];
    for (int i = 0; i < RM; i++)
      xv[i] = load(xc + i * VW);
    for (int j = 0; j < RN; j++)
      wv[j] = load(w + (size_t)j * wj + (size_t)c * wc);
    for (int i = 0; i < RM; i++)
      for (int j = 0; j < RN; j++)
        acc[i][j] += xv[i] * wv[j];
  }
  if (cf < nch) { /* the zero-padded last chunk */
    const float *xc = xp + (size_t)cf * RM * VW;
    vf xv[RM], wv[RN];
    for (int i = 0; i < RM; i++)
      xv[i] = load(xc + i * VW);
    for (int j = 0; j < RN; j++)
      wv[j] = load_part(w + (size_t)j * wj + (size_t)cf * wc, last);
    for (int i = 0; i < RM; i++)
      for (int j = 0; j < RN; j++)
        acc[i][j] += xv[i] * wv[j];
  }
#if defined(__AVX512F__)
  __m512 s = reduce16(acc);
  for (int i = 0; i < RM; i++) {
    __m128 p = i == 0   ? _mm512_castps512_ps128(s)
               : i == 1 ? _mm512_extractf32x4_ps(s, 1)
               : i == 2 ? _mm512_extractf32x4_ps(s, 2)
                        : _mm512_extractf32x4_ps(s, 3);
    float *out = y + (size_t)i * ldy;
    if (add) p = _mm_add_ps(_mm_loadu_ps(out), p);
    _mm_storeu_ps(out, p);
  }
#else
  for (int i = 0; i < RM; i++)
    for (int j = 0; j < RN; j++)
      put(y + (size_t)i * ldy + j, hsum(acc[i][j]), add);
#endif
}

/* One thread's share: weight rows [j_lo, j_hi), all m rows, all k blocks.
 * xp is this thread's x packing buffer (MB x KC floats); wp, when not NULL,
 * its weight packing buffer (NC x KC floats), used when m is large enough to
 * repay the copy. */
static void linear_range(int m, int n, int k, const float *x, const float *w,
                         float beta, float *y, int j_lo, int j_hi, float *xp,
                         float *wp) {
  kblocks kb = kblocks_of(k);
  for (int n0 = j_lo; n0 < j_hi; n0 += NC) {
    int n1 = n0 + NC < j_hi ? n0 + NC : j_hi;
    int n_full = (n1 - n0) / RN; /* whole weight tiles of this chunk */
    for (int b = 0; b < kb.n_blocks; b++) {
      int c0 = b * kb.per_block;
      int c1 =
          c0 + kb.per_block < kb.n_chunks ? c0 + kb.per_block : kb.n_chunks;
      int nch = c1 - c0, last = k - (c1 - 1) * VW;
      int k0 = c0 * VW, k1 = c1 * VW < k ? c1 * VW : k;
      int add = b > 0 || beta != 0.0f;
      size_t tile_w = (size_t)RN * nch * VW, tile_x = (size_t)RM * nch * VW;
      if (last > VW) last = VW;
      if (wp)
        for (int t = 0; t < n_full; t++)
          pack_w(w + (size_t)(n0 + t * RN) * k, k, c0, c1, wp + t * tile_w);
      for (int i0 = 0; i0 < m; i0 += MB) {
        int i1 = i0 + MB < m ? i0 + MB : m;
        int full = (i1 - i0) / RM; /* packed tiles of this row block */
        for (int t = 0; t < full; t++)
          pack_x(x + (size_t)(i0 + t * RM) * k, k, c0, c1, xp + t * tile_x);
        int ie = i0 + full * RM; /* edge rows from here to i1 */
        for (int j0 = n0; j0 < n1; j0 += RN) {
          int nj = n1 - j0 < RN ? n1 - j0 : RN;
          const float *wt = w + (size_t)j0 * k;
          for (int t = 0; t < full; t++) {
            int i = i0 + t * RM;
            float *yt = y + (size_t)i * n + j0;
            if (nj < RN)
              tile_edge(RM, nj, k0, k1, x + (size_t)i * k, (size_t)k, wt,
                        (size_t)k, add, yt, n);
            else if (wp)
              tile_full(nch, last, xp + t * tile_x,
                        wp + (size_t)(j0 - n0) / RN * tile_w, VW,
                        (size_t)RN * VW, add, yt, n);
            else
              tile_full(nch, last, xp + t * tile_x, wt + k0, (size_t)k, VW, add,
                        yt, n);
          }
          if (ie < i1)
            tile_edge(i1 - ie, nj, k0, k1, x + (size_t)ie * k, (size_t)k, wt,
                      (size_t)k, add, y + (size_t)ie * n + j0, n);
        }
      }
    }
  }
}

void r1d_cpu_linear(void *ctx, int m, int n, int k, const float *x,
                    const void *wv, float beta, float *y) {
  (void)ctx;
  const float *w = wv; /* fp32: the CPU's weight format */
  if (m <= 0 || n <= 0) return;
  if (k <= 0) { /* empty sums */
    if (beta == 0.0f) memset(y, 0, (size_t)m * n * sizeof(float));
    return;
  }
  int n_tiles = (n + RN - 1) / RN;
  /* Packed weights pay off once enough x rows pass over them; without
   * memory the unpacked path gives the same numbers, only slower. */
  float *wbuf = NULL;
  int max_threads = omp_get_max_threads();
  if (m >= W_PACK_MIN_M)
    wbuf = aligned_alloc(64, (size_t)max_threads * NC * KC * sizeof(float));
#pragma omp parallel
  {
    /* each thread owns a fixed range of weight-row tiles */
    float xp[MB * KC] __attribute__((aligned(64)));
    int nt = omp_get_num_threads(), me = omp_get_thread_num();
    int t0 = (int)((long)n_tiles * me / nt);
    int t1 = (int)((long)n_tiles * (me + 1) / nt);
    int j_lo = t0 * RN, j_hi = t1 * RN < n ? t1 * RN : n;
    if (j_lo < j_hi)
      linear_range(m, n, k, x, w, beta, y, j_lo, j_hi, xp,
                   wbuf ? wbuf + (size_t)me * NC * KC : NULL);
  }
  free(wbuf);
}
