/* test_backend_ops.c - every op of kernels/backend.h on every backend present,
 * against a naive double-precision reference written here (in the spirit of
 * llama.cpp's test-backend-ops).
 *
 * One table of cases (op + shape). For each case the inputs are generated on
 * the host from a seed (the case's index), the reference is computed with
 * plain loops in double, and then for each backend (the CPU always; CUDA when
 * r1d_cuda_backend_init succeeds) the inputs go up through the backend's own
 * alloc/upload/weight_upload, the op runs, the output comes back through
 * download and is compared by normalised error
 *     max|out - ref| / max(1e-6, max|ref|)
 * against a tolerance per op and per weight format (the `tolerances` table:
 * fp32 backends hold ~1e-5, a bf16-weight backend 1e-2 on the ops that read
 * weights). Output buffers start as NaN, so an element an op forgets to write
 * fails; a NaN anywhere fails. Checks that must be exact (copies, the KV
 * cache after kv_write, sampled tokens, row/batch invariance) compare bits.
 *
 * Extra checks riding on the table: linear is row-invariant (row i of an
 * m-row batch equals, bit for bit, the same row computed with m = 1);
 * kv_write lands rows in exactly their slots and skips negative ones;
 * paged_attention never reads slots past a query's position (they hold NaN,
 * and replacing that poison by zeros changes no bit of the output) and is
 * batch-invariant (each query alone gives the same bits as in the batch).
 * sample cases are built so the right token is unambiguous for the given u
 * (u sits mid-way in its token's CDF interval, top_p and min_p mid-way
 * between two candidates), and cover temperature 0 (with a tie), top_k = 1,
 * a tiny top_p, min_p, top_k with a tie inside, top_k + top_p.
 *
 * One line per (case, backend, check) is printed: op, shape, backend, error,
 * tolerance, PASS/FAIL; the cmocka test fails if any line fails.
 * R1D_OPS_BACKEND=cuda requires the CUDA backend (exit 77, the skip code,
 * when it is unavailable: tests/gpu/run.sh uses this); =cpu runs the CPU
 * only; unset runs every backend present.
 *
 * Two focused CPU tests follow the table: paged_attention over a sequence in
 * shuffled blocks equals the contiguous `attention` op (within 1e-5), and a
 * query's result is bitwise the same alone or in different batches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops_check.h"

/* ---- comparison and reporting ---- */

enum op_kind {
  OP_MATMUL_NT,
  OP_LINEAR,
  OP_ADD_BIAS,
  OP_ADD,
  OP_EMBEDDING,
  OP_RMSNORM,
  OP_ROPE,
  OP_ATTENTION,
  OP_SWIGLU,
  OP_GATHER_ROWS,
  OP_PAGED_ATTENTION, /* kv_write, then paged_attention */
  OP_LOGSUMEXP,
  OP_SAMPLE,
  OP_COUNT
};

/* Normalised-error tolerances: [op][weight format]. The fp32 column is the
 * CPU (fp32 sums against a double reference); the bf16 column is a device
 * backend: bf16 weights (rounding 2^-9) on linear and embedding, fp32 with
 * other summation orders and device math functions elsewhere. Copies are
 * exact on fp32 weights. */
static const struct {
  const char *name;
  double tol[2];
} tolerances[OP_COUNT] = {
    [OP_MATMUL_NT] = {"matmul_nt", {1e-5, 1e-4}},
    [OP_LINEAR] = {"linear", {1e-5, 1e-2}},
    [OP_ADD_BIAS] = {"add_bias", {1e-6, 1e-6}},
    [OP_ADD] = {"add", {1e-6, 1e-6}},
    [OP_EMBEDDING] = {"embedding", {0.0, 1e-2}},
    [OP_RMSNORM] = {"rmsnorm", {1e-5, 1e-5}},
    [OP_ROPE] = {"rope", {1e-5, 1e-4}},
    [OP_ATTENTION] = {"attention", {1e-5, 1e-4}},
    [OP_SWIGLU] = {"swiglu", {1e-5, 1e-5}},
    [OP_GATHER_ROWS] = {"gather_rows", {0.0, 0.0}},
    [OP_PAGED_ATTENTION] = {"paged_attention", {1e-5, 1e-4}},
    [OP_LOGSUMEXP] = {"logsumexp", {1e-6, 1e-5}},
    [OP_SAMPLE] = {"sample", {1e-5, 1e-4}}, /* logprob; tokens exact */
};

static double tol_for(enum op_kind op, const r1d_backend *be) {
  return tolerances[op].tol[be->ops->weight_format == R1D_WEIGHT_F32 ? 0 : 1];
}

static long rows_differing(const float *a, const float *b, int rows,
                           size_t row_len) {
  long bad = 0;
  for (int i = 0; i < rows; i++)
    if (memcmp(a + (size_t)i * row_len, b + (size_t)i * row_len,
               row_len * sizeof(float)) != 0)
      bad++;
  return bad;
}

/* ---- the case table ---- */

enum { MAX_SEQS = 4 };

typedef struct op_case {
  enum op_kind op;
  /* matmul_nt, linear: y[m,n] = x[m,k] w[n,k]^T; add_bias: m rows of n;
   * add, swiglu: n elements; embedding: m ids, n dim, k vocab; rmsnorm: m
   * rows of n; gather_rows: m rows out of k, n wide; logsumexp, sample: m
   * rows of vocab n; rope, attention: m tokens */
  int m, n, k;
  float beta;
  int heads, kv_heads, hd;
  int start; /* attention: cached positions before the m new ones */
  /* paged: block size, per sequence its length after this step and how many
   * of its last positions are queries now (1: decode, more: prefill) */
  int bs;
  int len[MAX_SEQS], nq[MAX_SEQS];
} op_case;

static const op_case cases[] = {
    {.op = OP_MATMUL_NT, .m = 1, .n = 1, .k = 1},
    {.op = OP_MATMUL_NT, .m = 1, .n = 129, .k = 64},
    {.op = OP_MATMUL_NT, .m = 17, .n = 33, .k = 129, .beta = 1},
    {.op = OP_MATMUL_NT, .m = 37, .n = 96, .k = 80},

    {.op = OP_LINEAR, .m = 1, .n = 1, .k = 1},
    {.op = OP_LINEAR, .m = 3, .n = 17, .k = 129},
    {.op = OP_LINEAR, .m = 37, .n = 129, .k = 80},
    {.op = OP_LINEAR, .m = 37, .n = 256, .k = 128},
    {.op = OP_LINEAR, .m = 37, .n = 1000, .k = 896},
    {.op = OP_LINEAR, .m = 17, .n = 64, .k = 64, .beta = 1},
    /* Qwen2.5-0.5B's projections: q/o, k/v, gate/up */
    {.op = OP_LINEAR, .m = 37, .n = 896, .k = 896},
    {.op = OP_LINEAR, .m = 37, .n = 128, .k = 896},
    {.op = OP_LINEAR, .m = 37, .n = 4864, .k = 896},

    {.op = OP_ADD_BIAS, .m = 1, .n = 1},
    {.op = OP_ADD_BIAS, .m = 3, .n = 17},
    {.op = OP_ADD_BIAS, .m = 129, .n = 80},
    {.op = OP_ADD, .n = 1},
    {.op = OP_ADD, .n = 17},
    {.op = OP_ADD, .n = 1001},
    {.op = OP_SWIGLU, .n = 1},
    {.op = OP_SWIGLU, .n = 17},
    {.op = OP_SWIGLU, .n = 4099},

    {.op = OP_EMBEDDING, .m = 1, .n = 64, .k = 7},
    {.op = OP_EMBEDDING, .m = 17, .n = 80, .k = 1000},
    {.op = OP_EMBEDDING, .m = 3, .n = 128, .k = 129},
    {.op = OP_GATHER_ROWS, .m = 1, .n = 64, .k = 3},
    {.op = OP_GATHER_ROWS, .m = 5, .n = 80, .k = 17},
    {.op = OP_GATHER_ROWS, .m = 3, .n = 896, .k = 129},

    {.op = OP_RMSNORM, .m = 1, .n = 1},
    {.op = OP_RMSNORM, .m = 3, .n = 64},
    {.op = OP_RMSNORM, .m = 17, .n = 4099},
    {.op = OP_ROPE, .m = 1, .heads = 1, .hd = 2},
    {.op = OP_ROPE, .m = 3, .heads = 14, .hd = 64},
    {.op = OP_ROPE, .m = 17, .heads = 2, .hd = 128},
    {.op = OP_ROPE, .m = 5, .heads = 3, .hd = 80},

    {.op = OP_ATTENTION, .m = 1, .heads = 2, .kv_heads = 2, .hd = 64},
    {.op = OP_ATTENTION,
     .m = 3,
     .start = 17,
     .heads = 14,
     .kv_heads = 2,
     .hd = 64},
    {.op = OP_ATTENTION, .m = 17, .heads = 7, .kv_heads = 1, .hd = 80},
    {.op = OP_ATTENTION,
     .m = 37,
     .start = 129,
     .heads = 4,
     .kv_heads = 2,
     .hd = 128},
    {.op = OP_ATTENTION,
     .m = 1,
     .start = 600,
     .heads = 2,
     .kv_heads = 1,
     .hd = 64},

    /* GQA 1, block 16: a length-1 decode, a decode, a whole prefill */
    {.op = OP_PAGED_ATTENTION,
     .heads = 2,
     .kv_heads = 2,
     .hd = 64,
     .bs = 16,
     .len = {1, 17, 33},
     .nq = {1, 1, 17}},
    /* GQA 7 (14/2), head 128, a prefill chunk after history, past a tile */
    {.op = OP_PAGED_ATTENTION,
     .heads = 14,
     .kv_heads = 2,
     .hd = 128,
     .bs = 16,
     .len = {40, 129, 5, 600},
     .nq = {1, 1, 5, 3}},
    /* GQA 2, head 80, block size 1 */
    {.op = OP_PAGED_ATTENTION,
     .heads = 4,
     .kv_heads = 2,
     .hd = 80,
     .bs = 1,
     .len = {3, 17, 20},
     .nq = {1, 17, 4}},
    /* GQA 7 (7/1), block 32, a sequence spanning three softmax tiles */
    {.op = OP_PAGED_ATTENTION,
     .heads = 7,
     .kv_heads = 1,
     .hd = 64,
     .bs = 32,
     .len = {1100, 64, 33},
     .nq = {2, 1, 31}},
    /* lengths on exact block boundaries */
    {.op = OP_PAGED_ATTENTION,
     .heads = 8,
     .kv_heads = 8,
     .hd = 128,
     .bs = 16,
     .len = {16, 32, 48},
     .nq = {1, 16, 1}},

    {.op = OP_LOGSUMEXP, .m = 1, .n = 7},
    {.op = OP_LOGSUMEXP, .m = 3, .n = 1000},
    {.op = OP_LOGSUMEXP, .m = 2, .n = 152064},
    {.op = OP_SAMPLE, .m = 10, .n = 7},
    {.op = OP_SAMPLE, .m = 10, .n = 1000},
    {.op = OP_SAMPLE, .m = 10, .n = 152064},
};

/* ---- dense ops ---- */

static void run_matmul(const op_case *c, rng *r, suite *st) {
  int m = c->m, n = c->n, k = c->k, lin = c->op == OP_LINEAR;
  size_t xs = (size_t)m * k, ws = (size_t)n * k, ys = (size_t)m * n;
  float *x = rand_vec(r, xs, -1, 1), *w = rand_vec(r, ws, -1, 1);
  float *y0 = c->beta != 0 ? rand_vec(r, ys, -1, 1) : nan_vec(ys);
  float *y = xmalloc(ys * sizeof(float)), *y1 = xmalloc(ys * sizeof(float));
  double *ref = xmalloc(ys * sizeof(double));
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double s = c->beta != 0 ? (double)c->beta * y0[(size_t)i * n + j] : 0;
      for (int p = 0; p < k; p++)
        s += (double)x[(size_t)i * k + p] * w[(size_t)j * k + p];
      ref[(size_t)i * n + j] = s;
    }
  char shape[64];
  snprintf(shape, sizeof shape, "m=%d n=%d k=%d beta=%g", m, n, k,
           (double)c->beta);
  for (int b = 0; b < st->n; b++) {
    const r1d_backend *be = &st->b[b].be;
    const char *bn = st->b[b].name;
    void *dw = lin ? be->ops->weight_upload(be->ctx, w, ws)
                   : dev_put(be, w, ws * sizeof(float));
    assert_non_null(dw);
    float *dx = dev_put(be, x, xs * sizeof(float));
    float *dy = dev_put(be, y0, ys * sizeof(float));
    if (lin)
      be->ops->linear(be->ctx, m, n, k, dx, dw, c->beta, dy);
    else
      be->ops->matmul_nt(be->ctx, m, n, k, dx, dw, c->beta, dy);
    dev_get(be, y, dy, ys * sizeof(float));
    st->fails += report(tolerances[c->op].name, shape, bn, norm_err(y, ref, ys),
                        tol_for(c->op, be));
    if (lin && m > 1 && c->beta == 0) {
      /* row invariance: each row again as its own m = 1 call */
      float *nan = nan_vec(ys);
      assert_int_equal(be->ops->upload(be->ctx, dy, nan, ys * sizeof(float)),
                       0);
      for (int i = 0; i < m; i++)
        be->ops->linear(be->ctx, 1, n, k, dx + (size_t)i * k, dw, 0.0f,
                        dy + (size_t)i * n);
      dev_get(be, y1, dy, ys * sizeof(float));
      st->fails += report_exact("linear row-invariance", shape, bn,
                                rows_differing(y, y1, m, (size_t)n), m);
      free(nan);
    }
    assert_int_equal(be->ops->sync(be->ctx), 0);
    dev_free(be, dw), dev_free(be, dx), dev_free(be, dy);
  }
  free(x), free(w), free(y0), free(y), free(y1), free(ref);
}

/* add_bias, add and swiglu: a, b inputs, out = f(a, b) */
static void run_elementwise(const op_case *c, rng *r, suite *st) {
  size_t len = c->op == OP_ADD_BIAS ? (size_t)c->m * c->n : (size_t)c->n;
  size_t blen = c->op == OP_ADD_BIAS ? (size_t)c->n : len;
  float lo = c->op == OP_SWIGLU ? -8.0f : -2.0f;
  float *a = rand_vec(r, len, lo, -lo), *bv = rand_vec(r, blen, -3, 3);
  float *out = xmalloc(len * sizeof(float)), *nan = nan_vec(len);
  double *ref = xmalloc(len * sizeof(double));
  if (c->op == OP_SWIGLU && len >= 4)
    a[0] = -100.0f, a[1] = 100.0f, a[2] = 0.0f, a[3] = -88.9f; /* exp edges */
  for (size_t i = 0; i < len; i++) {
    double x = a[i];
    if (c->op == OP_ADD_BIAS)
      ref[i] = x + bv[i % blen];
    else if (c->op == OP_ADD)
      ref[i] = x + bv[i];
    else
      ref[i] = x / (1.0 + exp(-x)) * bv[i];
  }
  char shape[64];
  if (c->op == OP_ADD_BIAS)
    snprintf(shape, sizeof shape, "m=%d n=%d", c->m, c->n);
  else
    snprintf(shape, sizeof shape, "n=%d", c->n);
  for (int b = 0; b < st->n; b++) {
    const r1d_backend *be = &st->b[b].be;
    float *da = dev_put(be, a, len * sizeof(float));
    float *db = dev_put(be, bv, blen * sizeof(float));
    float *dout = dev_put(be, nan, len * sizeof(float));
    if (c->op == OP_ADD_BIAS) {
      be->ops->add_bias(be->ctx, c->m, c->n, db, da);
      dev_get(be, out, da, len * sizeof(float));
    } else if (c->op == OP_ADD) {
      be->ops->add(be->ctx, len, da, db, da); /* out aliases a */
      dev_get(be, out, da, len * sizeof(float));
    } else {
      be->ops->swiglu(be->ctx, len, da, db, dout);
      dev_get(be, out, dout, len * sizeof(float));
    }
    st->fails += report(tolerances[c->op].name, shape, st->b[b].name,
                        norm_err(out, ref, len), tol_for(c->op, be));
    dev_free(be, da), dev_free(be, db), dev_free(be, dout);
  }
  free(a), free(bv), free(out), free(nan), free(ref);
}

/* embedding (table in the weight format) and gather_rows (fp32): out[i,:] =
 * src[ids[i],:] */
static void run_rows(const op_case *c, rng *r, suite *st) {
  int n = c->m, dim = c->n, src_rows = c->k, emb = c->op == OP_EMBEDDING;
  size_t ts = (size_t)src_rows * dim, os = (size_t)n * dim;
  float *table = rand_vec(r, ts, -1, 1), *out = xmalloc(os * sizeof(float));
  float *nan = nan_vec(os);
  double *ref = xmalloc(os * sizeof(double));
  int32_t *ids = xmalloc((size_t)n * sizeof(int32_t));
  for (int i = 0; i < n; i++)
    ids[i] = i == 0 ? src_rows - 1 : rng_int(r, src_rows); /* the last row */
  for (int i = 0; i < n; i++)
    for (int j = 0; j < dim; j++)
      ref[(size_t)i * dim + j] = table[(size_t)ids[i] * dim + j];
  char shape[64];
  snprintf(shape, sizeof shape, "n=%d dim=%d rows=%d", n, dim, src_rows);
  for (int b = 0; b < st->n; b++) {
    const r1d_backend *be = &st->b[b].be;
    void *dt = emb ? be->ops->weight_upload(be->ctx, table, ts)
                   : dev_put(be, table, ts * sizeof(float));
    assert_non_null(dt);
    int32_t *dids = dev_put(be, ids, (size_t)n * sizeof(int32_t));
    float *dout = dev_put(be, nan, os * sizeof(float));
    if (emb)
      be->ops->embedding(be->ctx, n, dids, dt, dim, dout);
    else
      be->ops->gather_rows(be->ctx, n, dim, dids, dt, dout);
    dev_get(be, out, dout, os * sizeof(float));
    st->fails += report(tolerances[c->op].name, shape, st->b[b].name,
                        norm_err(out, ref, os), tol_for(c->op, be));
    dev_free(be, dt), dev_free(be, dids), dev_free(be, dout);
  }
  free(table), free(out), free(nan), free(ref), free(ids);
}

static void run_rmsnorm(const op_case *c, rng *r, suite *st) {
  int n = c->m, dim = c->n;
  size_t len = (size_t)n * dim;
  float eps = 1e-6f;
  float *x = rand_vec(r, len, -3, 3), *w = rand_vec(r, (size_t)dim, 0.5f, 1.5f);
  float *out = xmalloc(len * sizeof(float)), *nan = nan_vec(len);
  double *ref = xmalloc(len * sizeof(double));
  for (int i = 0; i < n; i++) {
    double ss = 0;
    for (int j = 0; j < dim; j++)
      ss += (double)x[(size_t)i * dim + j] * x[(size_t)i * dim + j];
    double inv = 1.0 / sqrt(ss / dim + eps);
    for (int j = 0; j < dim; j++)
      ref[(size_t)i * dim + j] = x[(size_t)i * dim + j] * inv * w[j];
  }
  char shape[64];
  snprintf(shape, sizeof shape, "n=%d dim=%d", n, dim);
  for (int b = 0; b < st->n; b++) {
    const r1d_backend *be = &st->b[b].be;
    float *dx = dev_put(be, x, len * sizeof(float));
    float *dw = dev_put(be, w, (size_t)dim * sizeof(float));
    float *dout = dev_put(be, nan, len * sizeof(float));
    be->ops->rmsnorm(be->ctx, n, dim, dx, dw, eps, dout);
    dev_get(be, out, dout, len * sizeof(float));
    st->fails += report("rmsnorm", shape, st->b[b].name,
                        norm_err(out, ref, len), tol_for(OP_RMSNORM, be));
    dev_free(be, dx), dev_free(be, dw), dev_free(be, dout);
  }
  free(x), free(w), free(out), free(nan), free(ref);
}

static void run_rope(const op_case *c, rng *r, suite *st) {
  int n = c->m, heads = c->heads, hd = c->hd, half = hd / 2;
  size_t len = (size_t)n * heads * hd;
  float *x = rand_vec(r, len, -1, 1), *out = xmalloc(len * sizeof(float));
  float *inv = xmalloc((size_t)half * sizeof(float));
  int32_t *pos = xmalloc((size_t)n * sizeof(int32_t));
  double *ref = xmalloc(len * sizeof(double));
  for (int j = 0; j < half; j++)
    inv[j] = (float)pow(1e6, -2.0 * j / hd);
  for (int i = 0; i < n; i++)
    pos[i] = i == 0 ? 0 : (i == 1 ? 100000 : rng_int(r, 70000));
  for (int i = 0; i < n; i++)
    for (int j = 0; j < half; j++) {
      /* the contract: the angle is the fp32 product pos * inv_freq */
      float angle = (float)pos[i] * inv[j];
      double cs = cos((double)angle), sn = sin((double)angle);
      for (int h = 0; h < heads; h++) {
        size_t base = ((size_t)i * heads + h) * hd;
        double x1 = x[base + j], x2 = x[base + j + half];
        ref[base + j] = x1 * cs - x2 * sn;
        ref[base + j + half] = x2 * cs + x1 * sn;
      }
    }
  char shape[64];
  snprintf(shape, sizeof shape, "n=%d heads=%d hd=%d", n, heads, hd);
  for (int b = 0; b < st->n; b++) {
    const r1d_backend *be = &st->b[b].be;
    float *dx = dev_put(be, x, len * sizeof(float));
    float *dinv = dev_put(be, inv, (size_t)half * sizeof(float));
    int32_t *dpos = dev_put(be, pos, (size_t)n * sizeof(int32_t));
    be->ops->rope(be->ctx, n, heads, hd, dpos, dinv, dx);
    dev_get(be, out, dx, len * sizeof(float));
    st->fails += report("rope", shape, st->b[b].name, norm_err(out, ref, len),
                        tol_for(OP_ROPE, be));
    dev_free(be, dx), dev_free(be, dinv), dev_free(be, dpos);
  }
  free(x), free(out), free(inv), free(pos), free(ref);
}

/* ---- attention reference ---- */

/* One query head q[hd] against kv rows 0..n_pos-1 of a contiguous logical
 * array (rows `stride` floats apart, this head's hd floats at `off`), in
 * double: out[hd] = softmax(q.k / sqrt(hd)) v. */
static void ref_attend(const float *q, const float *k, const float *v,
                       size_t stride, size_t off, int n_pos, int hd,
                       double *out) {
  double *p = xmalloc((size_t)n_pos * sizeof(double));
  double scale = 1.0 / sqrt((double)hd), m = -INFINITY, sum = 0;
  for (int t = 0; t < n_pos; t++) {
    double s = 0;
    for (int d = 0; d < hd; d++)
      s += (double)q[d] * k[(size_t)t * stride + off + d];
    p[t] = s * scale;
    if (p[t] > m) m = p[t];
  }
  for (int t = 0; t < n_pos; t++)
    sum += (p[t] = exp(p[t] - m));
  for (int d = 0; d < hd; d++) {
    double o = 0;
    for (int t = 0; t < n_pos; t++)
      o += p[t] * v[(size_t)t * stride + off + d];
    out[d] = o / sum;
  }
  free(p);
}

static void run_attention(const op_case *c, rng *r, suite *st) {
  int n = c->m, start = c->start, len = start + n, cap = len + 3;
  int heads = c->heads, kvh = c->kv_heads, hd = c->hd, group = heads / kvh;
  size_t row = (size_t)kvh * hd, qs = (size_t)n * heads * hd;
  float *q = rand_vec(r, qs, -2, 2);
  float *k = rand_vec(r, (size_t)cap * row, -1, 1);
  float *v = rand_vec(r, (size_t)cap * row, -1, 1);
  for (size_t i = (size_t)len * row; i < (size_t)cap * row; i++)
    k[i] = v[i] = NAN; /* rows past the end must not be read */
  float *out = xmalloc(qs * sizeof(float)), *nan = nan_vec(qs);
  double *ref = xmalloc(qs * sizeof(double));
  for (int i = 0; i < n; i++)
    for (int h = 0; h < heads; h++) {
      size_t o = ((size_t)i * heads + h) * hd;
      ref_attend(q + o, k, v, row, (size_t)(h / group) * hd, start + i + 1, hd,
                 ref + o);
    }
  char shape[64];
  snprintf(shape, sizeof shape, "n=%d start=%d h=%d/%d hd=%d", n, start, heads,
           kvh, hd);
  for (int b = 0; b < st->n; b++) {
    const r1d_backend *be = &st->b[b].be;
    float *dq = dev_put(be, q, qs * sizeof(float));
    float *dk = dev_put(be, k, (size_t)cap * row * sizeof(float));
    float *dv = dev_put(be, v, (size_t)cap * row * sizeof(float));
    float *dout = dev_put(be, nan, qs * sizeof(float));
    be->ops->attention(be->ctx, n, start, heads, kvh, hd, dq, dk, dv, dout);
    dev_get(be, out, dout, qs * sizeof(float));
    st->fails += report("attention", shape, st->b[b].name,
                        norm_err(out, ref, qs), tol_for(OP_ATTENTION, be));
    dev_free(be, dq), dev_free(be, dk), dev_free(be, dv), dev_free(be, dout);
  }
  free(q), free(k), free(v), free(out), free(nan), free(ref);
}

/* ---- paged KV: a pool, block tables, a mixed batch of queries ---- */

/* Host picture of one paged step. Sequence s has len[s] positions after the
 * step, the last nq[s] of them new (written this step, and queries). Its
 * blocks are scattered over the pool in shuffled order; table entries past
 * its last block point at a spare block nobody writes (NaN: reading it
 * would show). */
typedef struct paged_step {
  int n_seqs, bs, heads, kvh, hd, kv_dim;
  int len[MAX_SEQS], nq[MAX_SEQS];
  int n_blocks, max_blocks;
  int32_t *tables;          /* [n_seqs, max_blocks] */
  float *klog[MAX_SEQS];    /* [len, kv_dim] logical K of sequence s */
  float *vlog[MAX_SEQS];    /* same for V */
  int n_hist, n_new;        /* rows written before / during the step */
  float *hk, *hv, *nk, *nv; /* [n_hist + pad, kv_dim], [n_new, kv_dim] */
  int64_t *hslots, *nslots;
  int n_q;
  int32_t *q_seq, *q_pos; /* [n_q] in shuffled order */
  float *q;               /* [n_q, heads, hd] */
  size_t n_slots;         /* n_blocks * bs */
} paged_step;

enum { PAD_ROWS = 2 }; /* rows of the history write with slot -1 */

static int64_t slot_at(const paged_step *ps, int s, int p) {
  return (int64_t)ps->tables[(size_t)s * ps->max_blocks + p / ps->bs] * ps->bs +
         p % ps->bs;
}

static void paged_make(paged_step *ps, rng *r, int n_seqs, const int *len,
                       const int *nq, int bs, int heads, int kvh, int hd) {
  memset(ps, 0, sizeof *ps);
  ps->n_seqs = n_seqs, ps->bs = bs, ps->heads = heads, ps->kvh = kvh;
  ps->hd = hd, ps->kv_dim = kvh * hd;
  int used = 0;
  for (int s = 0; s < n_seqs; s++) {
    ps->len[s] = len[s], ps->nq[s] = nq[s];
    int nb = (len[s] + bs - 1) / bs;
    used += nb;
    if (nb + 1 > ps->max_blocks) ps->max_blocks = nb + 1;
    ps->n_hist += len[s] - nq[s];
    ps->n_new += nq[s];
  }
  ps->n_blocks = used + 1; /* the last one is the never-written spare */
  ps->n_slots = (size_t)ps->n_blocks * bs;
  int32_t *perm = xmalloc((size_t)used * sizeof(int32_t));
  for (int i = 0; i < used; i++)
    perm[i] = i;
  shuffle_i32(r, perm, used);
  int spare = used, next = 0;
  ps->tables = xmalloc((size_t)n_seqs * ps->max_blocks * sizeof(int32_t));
  for (int s = 0; s < n_seqs; s++) {
    int nb = (len[s] + bs - 1) / bs;
    for (int j = 0; j < ps->max_blocks; j++)
      ps->tables[(size_t)s * ps->max_blocks + j] =
          j < nb ? perm[next++] : spare;
  }
  free(perm);

  size_t kd = (size_t)ps->kv_dim;
  ps->hk = xmalloc((size_t)(ps->n_hist + PAD_ROWS) * kd * sizeof(float));
  ps->hv = xmalloc((size_t)(ps->n_hist + PAD_ROWS) * kd * sizeof(float));
  ps->hslots = xmalloc((size_t)(ps->n_hist + PAD_ROWS) * sizeof(int64_t));
  ps->nk = xmalloc((size_t)ps->n_new * kd * sizeof(float));
  ps->nv = xmalloc((size_t)ps->n_new * kd * sizeof(float));
  ps->nslots = xmalloc((size_t)ps->n_new * sizeof(int64_t));
  int ih = 0, in = 0;
  for (int s = 0; s < n_seqs; s++) {
    ps->klog[s] = rand_vec(r, (size_t)len[s] * kd, -1, 1);
    ps->vlog[s] = rand_vec(r, (size_t)len[s] * kd, -1, 1);
    for (int p = 0; p < len[s]; p++) {
      int is_new = p >= len[s] - nq[s];
      float *dk = is_new ? ps->nk + (size_t)in * kd : ps->hk + (size_t)ih * kd;
      float *dv = is_new ? ps->nv + (size_t)in * kd : ps->hv + (size_t)ih * kd;
      memcpy(dk, ps->klog[s] + (size_t)p * kd, kd * sizeof(float));
      memcpy(dv, ps->vlog[s] + (size_t)p * kd, kd * sizeof(float));
      if (is_new)
        ps->nslots[in++] = slot_at(ps, s, p);
      else
        ps->hslots[ih++] = slot_at(ps, s, p);
    }
  }
  /* padding rows: finite garbage that a correct kv_write never stores */
  for (int i = 0; i < PAD_ROWS; i++, ih++) {
    for (size_t d = 0; d < kd; d++)
      ps->hk[(size_t)ih * kd + d] = ps->hv[(size_t)ih * kd + d] = 1e30f;
    ps->hslots[ih] = -1 - i;
  }
  ps->n_hist += PAD_ROWS;

  ps->n_q = ps->n_new;
  ps->q_seq = xmalloc((size_t)ps->n_q * sizeof(int32_t));
  ps->q_pos = xmalloc((size_t)ps->n_q * sizeof(int32_t));
  int32_t *order = xmalloc((size_t)ps->n_q * sizeof(int32_t));
  for (int i = 0; i < ps->n_q; i++)
    order[i] = i;
  shuffle_i32(r, order, ps->n_q);
  int qi = 0;
  for (int s = 0; s < n_seqs; s++)
    for (int p = len[s] - nq[s]; p < len[s]; p++, qi++) {
      ps->q_seq[order[qi]] = s;
      ps->q_pos[order[qi]] = p;
    }
  free(order);
  ps->q = rand_vec(r, (size_t)ps->n_q * heads * hd, -2, 2);
}

static void paged_free(paged_step *ps) {
  for (int s = 0; s < ps->n_seqs; s++)
    free(ps->klog[s]), free(ps->vlog[s]);
  free(ps->tables), free(ps->hk), free(ps->hv), free(ps->nk), free(ps->nv);
  free(ps->hslots), free(ps->nslots), free(ps->q_seq), free(ps->q_pos);
  free(ps->q);
}

static int paged_max_pos(const paged_step *ps) {
  int m = 0;
  for (int i = 0; i < ps->n_q; i++)
    if (ps->q_pos[i] > m) m = ps->q_pos[i];
  return m;
}

/* The caches as they must be after both writes: `fill` where nothing was
 * written. [n_slots, kv_dim] each. */
static void paged_expected_cache(const paged_step *ps, float fill, float *kc,
                                 float *vc) {
  size_t kd = (size_t)ps->kv_dim;
  for (size_t i = 0; i < ps->n_slots * kd; i++)
    kc[i] = vc[i] = fill;
  for (int s = 0; s < ps->n_seqs; s++)
    for (int p = 0; p < ps->len[s]; p++) {
      size_t slot = (size_t)slot_at(ps, s, p);
      memcpy(kc + slot * kd, ps->klog[s] + (size_t)p * kd, kd * sizeof(float));
      memcpy(vc + slot * kd, ps->vlog[s] + (size_t)p * kd, kd * sizeof(float));
    }
}

static void paged_reference(const paged_step *ps, double *ref) {
  int group = ps->heads / ps->kvh, hd = ps->hd;
  for (int i = 0; i < ps->n_q; i++)
    for (int h = 0; h < ps->heads; h++) {
      size_t o = ((size_t)i * ps->heads + h) * hd;
      int s = ps->q_seq[i];
      ref_attend(ps->q + o, ps->klog[s], ps->vlog[s], (size_t)ps->kv_dim,
                 (size_t)(h / group) * hd, ps->q_pos[i] + 1, hd, ref + o);
    }
}

/* Device copies of a step's metadata, queries and caches. */
typedef struct paged_dev {
  float *kc, *vc, *q, *out;
  int32_t *tables, *q_seq, *q_pos;
} paged_dev;

static void paged_dev_put(const r1d_backend *be, const paged_step *ps,
                          const float *kc, const float *vc, paged_dev *d) {
  size_t cache = ps->n_slots * ps->kv_dim * sizeof(float);
  size_t qb = (size_t)ps->n_q * ps->heads * ps->hd * sizeof(float);
  float *nan = nan_vec((size_t)ps->n_q * ps->heads * ps->hd);
  d->kc = dev_put(be, kc, cache);
  d->vc = dev_put(be, vc, cache);
  d->q = dev_put(be, ps->q, qb);
  d->out = dev_put(be, nan, qb);
  d->tables = dev_put(be, ps->tables,
                      (size_t)ps->n_seqs * ps->max_blocks * sizeof(int32_t));
  d->q_seq = dev_put(be, ps->q_seq, (size_t)ps->n_q * sizeof(int32_t));
  d->q_pos = dev_put(be, ps->q_pos, (size_t)ps->n_q * sizeof(int32_t));
  free(nan);
}

static void paged_dev_free(const r1d_backend *be, paged_dev *d) {
  dev_free(be, d->kc), dev_free(be, d->vc), dev_free(be, d->q);
  dev_free(be, d->out), dev_free(be, d->tables), dev_free(be, d->q_seq);
  dev_free(be, d->q_pos);
}

/* kv_write of the history (with padding rows) and of the new rows into d. */
static void paged_dev_write(const r1d_backend *be, const paged_step *ps,
                            paged_dev *d) {
  size_t kd = (size_t)ps->kv_dim;
  float *hk = dev_put(be, ps->hk, (size_t)ps->n_hist * kd * sizeof(float));
  float *hv = dev_put(be, ps->hv, (size_t)ps->n_hist * kd * sizeof(float));
  int64_t *hs = dev_put(be, ps->hslots, (size_t)ps->n_hist * sizeof(int64_t));
  float *nk = dev_put(be, ps->nk, (size_t)ps->n_new * kd * sizeof(float));
  float *nv = dev_put(be, ps->nv, (size_t)ps->n_new * kd * sizeof(float));
  int64_t *ns = dev_put(be, ps->nslots, (size_t)ps->n_new * sizeof(int64_t));
  be->ops->kv_write(be->ctx, ps->n_hist, ps->kv_dim, hk, hv, hs, d->kc, d->vc);
  be->ops->kv_write(be->ctx, ps->n_new, ps->kv_dim, nk, nv, ns, d->kc, d->vc);
  assert_int_equal(be->ops->sync(be->ctx), 0);
  dev_free(be, hk), dev_free(be, hv), dev_free(be, hs);
  dev_free(be, nk), dev_free(be, nv), dev_free(be, ns);
}

/* queries [first, first + n) of the step, with the given launch bound */
static void paged_dev_run(const r1d_backend *be, const paged_step *ps,
                          const paged_dev *d, int first, int n, int max_pos) {
  size_t qrow = (size_t)ps->heads * ps->hd;
  be->ops->paged_attention(be->ctx, n, d->q_seq + first, d->q_pos + first,
                           max_pos, d->tables, ps->max_blocks, ps->bs,
                           ps->heads, ps->kvh, ps->hd, d->q + first * qrow,
                           d->kc, d->vc, d->out + first * qrow);
}

static void run_paged(const op_case *c, rng *r, suite *st) {
  int n_seqs = 0;
  while (n_seqs < MAX_SEQS && c->len[n_seqs] > 0)
    n_seqs++;
  paged_step ps;
  paged_make(&ps, r, n_seqs, c->len, c->nq, c->bs, c->heads, c->kv_heads,
             c->hd);
  size_t kd = (size_t)ps.kv_dim, cache_n = ps.n_slots * kd;
  size_t qrow = (size_t)ps.heads * ps.hd, qn = (size_t)ps.n_q * qrow;
  float *kc = xmalloc(cache_n * sizeof(float)),
        *vc = xmalloc(cache_n * sizeof(float));
  float *kc_got = xmalloc(cache_n * sizeof(float));
  float *vc_got = xmalloc(cache_n * sizeof(float));
  float *nan_cache = nan_vec(cache_n);
  float *out = xmalloc(qn * sizeof(float)), *out2 = xmalloc(qn * sizeof(float));
  float *nan_q = nan_vec(qn);
  double *ref = xmalloc(qn * sizeof(double));
  paged_expected_cache(&ps, NAN, kc, vc);
  paged_reference(&ps, ref);

  char shape[96];
  int o =
      snprintf(shape, sizeof shape, "h=%d/%d hd=%d bs=%d len+new=", ps.heads,
               ps.kvh, ps.hd, ps.bs);
  for (int s = 0; s < n_seqs && o < (int)sizeof shape; s++)
    o += snprintf(shape + o, sizeof shape - (size_t)o, "%s%d+%d", s ? "," : "",
                  ps.len[s] - ps.nq[s], ps.nq[s]);
  int max_pos = paged_max_pos(&ps);

  for (int b = 0; b < st->n; b++) {
    const r1d_backend *be = &st->b[b].be;
    const char *bn = st->b[b].name;
    paged_dev d;
    /* caches start all NaN: kv_write fills the sequences' slots */
    paged_dev_put(be, &ps, nan_cache, nan_cache, &d);
    paged_dev_write(be, &ps, &d);
    dev_get(be, kc_got, d.kc, cache_n * sizeof(float));
    dev_get(be, vc_got, d.vc, cache_n * sizeof(float));
    long bad = 0;
    for (size_t sl = 0; sl < ps.n_slots; sl++)
      bad += memcmp(kc_got + sl * kd, kc + sl * kd, kd * sizeof(float)) != 0 ||
             memcmp(vc_got + sl * kd, vc + sl * kd, kd * sizeof(float)) != 0;
    st->fails += report_exact("kv_write", shape, bn, bad, (long)ps.n_slots);

    paged_dev_run(be, &ps, &d, 0, ps.n_q, max_pos);
    dev_get(be, out, d.out, qn * sizeof(float));
    st->fails += report("paged_attention", shape, bn, norm_err(out, ref, qn),
                        tol_for(OP_PAGED_ATTENTION, be));

    /* the same caches with zeros instead of NaN in unwritten slots */
    float *kz = xmalloc(cache_n * sizeof(float));
    float *vz = xmalloc(cache_n * sizeof(float));
    paged_expected_cache(&ps, 0.0f, kz, vz);
    assert_int_equal(
        be->ops->upload(be->ctx, d.kc, kz, cache_n * sizeof(float)), 0);
    assert_int_equal(
        be->ops->upload(be->ctx, d.vc, vz, cache_n * sizeof(float)), 0);
    assert_int_equal(be->ops->upload(be->ctx, d.out, nan_q, qn * sizeof(float)),
                     0);
    paged_dev_run(be, &ps, &d, 0, ps.n_q, max_pos);
    dev_get(be, out2, d.out, qn * sizeof(float));
    st->fails += report_exact("paged_attention poison", shape, bn,
                              rows_differing(out, out2, ps.n_q, qrow), ps.n_q);

    /* batch invariance: each query alone, launch bound its own position */
    assert_int_equal(be->ops->upload(be->ctx, d.out, nan_q, qn * sizeof(float)),
                     0);
    for (int i = 0; i < ps.n_q; i++)
      paged_dev_run(be, &ps, &d, i, 1, ps.q_pos[i]);
    dev_get(be, out2, d.out, qn * sizeof(float));
    st->fails += report_exact("paged_attention alone", shape, bn,
                              rows_differing(out, out2, ps.n_q, qrow), ps.n_q);
    free(kz), free(vz);
    paged_dev_free(be, &d);
  }
  free(kc), free(vc), free(kc_got), free(vc_got), free(nan_cache);
  free(out), free(out2), free(nan_q), free(ref);
  paged_free(&ps);
}

/* ---- logits ---- */

static double ref_logsumexp(const float *x, int n) {
  double m = -INFINITY, s = 0;
  for (int j = 0; j < n; j++)
    if (x[j] > m) m = x[j];
  for (int j = 0; j < n; j++)
    s += exp((double)x[j] - m);
  return m + log(s);
}

static void run_logsumexp(const op_case *c, rng *r, suite *st) {
  int n = c->m, vocab = c->n;
  size_t len = (size_t)n * vocab;
  float *x = rand_vec(r, len, -15, 15),
        *out = xmalloc((size_t)n * sizeof(float));
  float *nan = nan_vec((size_t)n);
  double *ref = xmalloc((size_t)n * sizeof(double));
  for (int i = 0; i < n; i++)
    ref[i] = ref_logsumexp(x + (size_t)i * vocab, vocab);
  char shape[64];
  snprintf(shape, sizeof shape, "n=%d vocab=%d", n, vocab);
  for (int b = 0; b < st->n; b++) {
    const r1d_backend *be = &st->b[b].be;
    float *dx = dev_put(be, x, len * sizeof(float));
    float *dl = dev_put(be, nan, (size_t)n * sizeof(float));
    be->ops->logsumexp(be->ctx, n, vocab, dx, dl);
    dev_get(be, out, dl, (size_t)n * sizeof(float));
    st->fails +=
        report("logsumexp", shape, st->b[b].name, norm_err(out, ref, (size_t)n),
               tol_for(OP_LOGSUMEXP, be));
    dev_free(be, dx), dev_free(be, dl);
  }
  free(x), free(out), free(nan), free(ref);
}

/* sample: each row of a case uses one of these modes */
enum {
  SM_GREEDY,     /* temperature 0 */
  SM_TOP_K1,     /* top_k = 1 at temperature 1 */
  SM_TINY_P,     /* top_p = 1e-6 */
  SM_MIN_P,      /* min_p keeping the 4 largest; draw the 4th */
  SM_PLAIN,      /* no filter, temperature 0.7 */
  SM_TOP_K3_TIE, /* top_k = 3, the 2nd and 3rd tied; draw the 3rd */
  SM_K_AND_P,    /* T = 2, top_k = 5, then top_p keeping 4 of them (of the
                    * 5's mass: of the whole vocabulary's it would keep 5);
                    * draw the 4th */
  SM_TOP_K50,    /* top_k = 50 (the tail is random logits) */
  SM_GREEDY_TIE, /* temperature 0, two tokens share the max */
  SM_P_AND_MINP, /* top_p keeping 5, a mild min_p */
  SM_MODES
};

enum { N_PEAKS = 6 };

typedef struct ref_cand {
  double w;
  int id;
} ref_cand;

static int ref_cand_cmp(const void *a, const void *b) {
  const ref_cand *x = a, *y = b;
  if (x->w != y->w) return x->w > y->w ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}

/* Candidates of a row at temperature t, sorted by (w desc, id asc). */
static void ref_sorted(const float *x, int vocab, double t, ref_cand *c) {
  double m = -INFINITY;
  for (int j = 0; j < vocab; j++)
    if (x[j] > m) m = x[j];
  for (int j = 0; j < vocab; j++)
    c[j] = (ref_cand){exp(((double)x[j] - m) / t), j};
  qsort(c, (size_t)vocab, sizeof *c, ref_cand_cmp);
}

static double prefix_w(const ref_cand *c, int n) {
  double s = 0;
  for (int i = 0; i < n; i++)
    s += c[i].w;
  return s;
}

typedef struct sample_row {
  float t, top_p, min_p, u;
  int32_t top_k, want;
} sample_row;

/* Logits: uniform noise plus N_PEAKS tokens far above it (so they carry most
 * of the mass even in a 152k vocabulary), the 2nd and 3rd exactly tied.
 * Then the row's parameters, and u in the middle of the wanted token's
 * interval of the kept tokens' CDF. */
static sample_row make_sample_row(rng *r, int mode, int vocab, float *x,
                                  ref_cand *c) {
  static const double peak[N_PEAKS] = {4.0, 3.3, 3.3, 2.6, 2.0, 1.2};
  for (int j = 0; j < vocab; j++)
    x[j] = rng_float(r, -2, 2);
  int ids[N_PEAKS];
  for (int p = 0; p < N_PEAKS; p++) {
    int fresh;
    do {
      ids[p] = rng_int(r, vocab);
      fresh = 1;
      for (int q = 0; q < p; q++)
        fresh &= ids[q] != ids[p];
    } while (!fresh);
    x[ids[p]] = (float)(log((double)vocab) + peak[p]);
  }
  sample_row s = {.t = 1.0f, .top_p = 1.0f, .u = (float)rng_unit(r)};
  int target = -1; /* index in the sorted kept list; -1: the argmax */
  switch (mode) {
  case SM_GREEDY: s.t = 0.0f; break;
  case SM_TOP_K1: s.top_k = 1; break;
  case SM_TINY_P: s.t = 0.8f, s.top_p = 1e-6f; break;
  case SM_MIN_P: target = 3; break;
  case SM_PLAIN: s.t = 0.7f, target = rng_int(r, N_PEAKS); break;
  case SM_TOP_K3_TIE: s.t = 1.3f, s.top_k = 3, target = 2; break;
  case SM_K_AND_P: s.t = 2.0f, s.top_k = 5, target = 3; break;
  case SM_TOP_K50: s.top_k = 50, target = rng_int(r, N_PEAKS); break;
  case SM_GREEDY_TIE:
    s.t = 0.0f;
    x[ids[1]] = x[ids[0]];
    break;
  case SM_P_AND_MINP: s.t = 0.9f, s.min_p = 1e-3f, target = 4; break;
  }
  ref_sorted(x, vocab, s.t > 0 ? s.t : 1.0, c);
  if (target < 0) { /* argmax: sorted first (ties by lower id) */
    s.want = c[0].id;
    return s;
  }
  int n = s.top_k > 0 && s.top_k < vocab ? s.top_k : vocab;
  if (mode == SM_MIN_P) /* between the 4th and 5th weights */
    s.min_p = (float)(sqrt(c[3].w * c[4].w) / c[0].w);
  if (mode == SM_K_AND_P || mode == SM_P_AND_MINP) {
    int keep = mode == SM_K_AND_P ? 4 : 5; /* mass between keep-1 and keep */
    s.top_p = (float)((prefix_w(c, keep - 1) + prefix_w(c, keep)) / 2 /
                      prefix_w(c, n));
    n = keep;
  }
  if (mode == SM_MIN_P) n = 4;
  double total = prefix_w(c, n);
  /* the wanted token must own a clear share of the CDF */
  while (target > 0 && c[target].w / total < 1e-3)
    target--;
  s.u = (float)((prefix_w(c, target) + 0.5 * c[target].w) / total);
  s.want = c[target].id;
  return s;
}

static void run_sample(const op_case *c, rng *r, suite *st) {
  int n = c->m, vocab = c->n;
  size_t len = (size_t)n * vocab;
  float *x = xmalloc(len * sizeof(float));
  ref_cand *cand = xmalloc((size_t)vocab * sizeof(ref_cand));
  /* per-row values are all 4 bytes (float or int32_t) */
  size_t rb = (size_t)n * 4;
  float *t = xmalloc(rb), *tp = xmalloc(rb), *mp = xmalloc(rb);
  float *u = xmalloc(rb), *lp = xmalloc(rb), *nan = nan_vec((size_t)n);
  int32_t *tk = xmalloc(rb), *want = xmalloc(rb), *tok = xmalloc(rb);
  double *ref = xmalloc((size_t)n * sizeof(double));
  for (int i = 0; i < n; i++) {
    float *row = x + (size_t)i * vocab;
    sample_row s = make_sample_row(r, i % SM_MODES, vocab, row, cand);
    t[i] = s.t, tp[i] = s.top_p, mp[i] = s.min_p, u[i] = s.u;
    tk[i] = s.top_k, want[i] = s.want;
    ref[i] = (double)row[s.want] - ref_logsumexp(row, vocab);
  }
  char shape[64];
  snprintf(shape, sizeof shape, "n=%d vocab=%d", n, vocab);
  for (int b = 0; b < st->n; b++) {
    const r1d_backend *be = &st->b[b].be;
    const char *bn = st->b[b].name;
    float *dx = dev_put(be, x, len * sizeof(float));
    float *dt = dev_put(be, t, rb), *dtp = dev_put(be, tp, rb);
    float *dmp = dev_put(be, mp, rb), *du = dev_put(be, u, rb);
    int32_t *dtk = dev_put(be, tk, rb);
    int32_t *dtok = dev_put(be, want, rb); /* overwritten below */
    float *dlp = dev_put(be, nan, rb);
    int32_t *minus1 = xmalloc(rb);
    for (int i = 0; i < n; i++)
      minus1[i] = -1;
    assert_int_equal(be->ops->upload(be->ctx, dtok, minus1, rb), 0);
    free(minus1);
    be->ops->sample(be->ctx, n, vocab, dx, dt, dtk, dtp, dmp, du, dtok, dlp);
    dev_get(be, tok, dtok, rb);
    dev_get(be, lp, dlp, rb);
    long bad = 0;
    for (int i = 0; i < n; i++)
      if (tok[i] != want[i]) {
        printf("  sample row %d (mode %d): token %d, want %d\n", i,
               i % SM_MODES, (int)tok[i], (int)want[i]);
        bad++;
      }
    st->fails += report_exact("sample token", shape, bn, bad, n);
    /* logprob of the token the backend chose (reference at that token) */
    double *ref_got = xmalloc((size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) {
      int id = tok[i] >= 0 && tok[i] < vocab ? tok[i] : want[i];
      ref_got[i] = (double)x[(size_t)i * vocab + id] -
                   ref_logsumexp(x + (size_t)i * vocab, vocab);
    }
    st->fails +=
        report("sample logprob", shape, bn, norm_err(lp, ref_got, (size_t)n),
               tol_for(OP_SAMPLE, be));
    free(ref_got);
    dev_free(be, dx), dev_free(be, dt), dev_free(be, dtp), dev_free(be, dmp);
    dev_free(be, du), dev_free(be, dtk), dev_free(be, dtok), dev_free(be, dlp);
  }
  free(x), free(cand), free(t), free(tp), free(mp), free(u), free(tk);
  free(want), free(tok), free(lp), free(nan), free(ref);
}

/* ---- the table test ---- */

static void check_table_complete(const backend_slot *b) {
  const r1d_backend_ops *o = b->be.ops;
  assert_non_null(o);
  assert_non_null(o->name);
  const void *fns[] = {
      (const void *)o->alloc,     (const void *)o->free,
      (const void *)o->upload,    (const void *)o->download,
      (const void *)o->copy,      (const void *)o->zero,
      (const void *)o->sync,      (const void *)o->weight_upload,
      (const void *)o->matmul_nt, (const void *)o->linear,
      (const void *)o->add_bias,  (const void *)o->add,
      (const void *)o->embedding, (const void *)o->rmsnorm,
      (const void *)o->rope,      (const void *)o->attention,
      (const void *)o->swiglu,    (const void *)o->gather_rows,
      (const void *)o->kv_write,  (const void *)o->paged_attention,
      (const void *)o->logsumexp, (const void *)o->sample};
  if (!b->is_cuda) { /* the CPU: host buffers, fp32 weights */
    assert_int_equal(o->host_memory, 1);
    assert_int_equal(o->weight_format, R1D_WEIGHT_F32);
  }
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
    if (!fns[i]) {
      print_error("backend %s: ops table entry %zu is NULL\n", b->name, i);
      fail();
    }
}

/* copy: device to device, then back */
static void check_copy(suite *st) {
  float src[37], got[37];
  for (int i = 0; i < 37; i++)
    src[i] = (float)i * 0.5f - 3.0f;
  for (int b = 0; b < st->n; b++) {
    const r1d_backend *be = &st->b[b].be;
    float *d1 = dev_put(be, src, sizeof src), *d2 = dev_alloc(be, sizeof src);
    be->ops->copy(be->ctx, d2, d1, sizeof src);
    dev_get(be, got, d2, sizeof src);
    st->fails += report_exact("copy", "37 floats", st->b[b].name,
                              memcmp(got, src, sizeof src) != 0, 1);
    /* zero: floats 5..14 of the copy become 0, the rest stay */
    be->ops->zero(be->ctx, d2 + 5, 10 * sizeof(float));
    dev_get(be, got, d2, sizeof src);
    long bad = 0;
    for (int i = 0; i < 37; i++)
      bad += got[i] != (i >= 5 && i < 15 ? 0.0f : src[i]);
    st->fails +=
        report_exact("zero", "10 of 37 floats", st->b[b].name, bad, 37);
    be->ops->free(be->ctx, NULL); /* allowed */
    dev_free(be, d1), dev_free(be, d2);
  }
}

static void test_ops_table(void **state) {
  suite *st = *state;
  st->fails = 0;
  for (int b = 0; b < st->n; b++)
    check_table_complete(&st->b[b]);
  check_copy(st);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const op_case *c = &cases[i];
    rng r;
    rng_seed(&r, 1000 + i);
    switch (c->op) {
    case OP_MATMUL_NT:
    case OP_LINEAR: run_matmul(c, &r, st); break;
    case OP_ADD_BIAS:
    case OP_ADD:
    case OP_SWIGLU: run_elementwise(c, &r, st); break;
    case OP_EMBEDDING:
    case OP_GATHER_ROWS: run_rows(c, &r, st); break;
    case OP_RMSNORM: run_rmsnorm(c, &r, st); break;
    case OP_ROPE: run_rope(c, &r, st); break;
    case OP_ATTENTION: run_attention(c, &r, st); break;
    case OP_PAGED_ATTENTION: run_paged(c, &r, st); break;
    case OP_LOGSUMEXP: run_logsumexp(c, &r, st); break;
    case OP_SAMPLE: run_sample(c, &r, st); break;
    case OP_COUNT: break;
    }
  }
  fflush(stdout);
  if (st->fails) {
    print_error("%d op checks failed (lines marked FAIL above)\n", st->fails);
    fail();
  }
}

/* ---- focused CPU tests of paged_attention ---- */

/* One sequence of `len` positions in shuffled blocks of 16; its last n
 * positions as queries against the contiguous `attention` op. */
static void paged_vs_contiguous(const r1d_backend *be, int len, int n,
                                int heads, int kvh, int hd) {
  rng r;
  rng_seed(&r, (uint64_t)len * 31 + n);
  paged_step ps;
  int lens[1] = {len}, nqs[1] = {n};
  paged_make(&ps, &r, 1, lens, nqs, 16, heads, kvh, hd);
  size_t cache_n = ps.n_slots * ps.kv_dim, qn = (size_t)n * heads * hd;
  float *kc = xmalloc(cache_n * sizeof(float)),
        *vc = xmalloc(cache_n * sizeof(float));
  paged_expected_cache(&ps, NAN, kc, vc);
  /* queries in position order for the contiguous op */
  float *q = xmalloc(qn * sizeof(float));
  for (int i = 0; i < n; i++) {
    ps.q_seq[i] = 0;
    ps.q_pos[i] = len - n + i;
  }
  memcpy(q, ps.q, qn * sizeof(float));
  float *paged = nan_vec(qn), *contig = nan_vec(qn);
  be->ops->paged_attention(be->ctx, n, ps.q_seq, ps.q_pos, len - 1, ps.tables,
                           ps.max_blocks, ps.bs, heads, kvh, hd, q, kc, vc,
                           paged);
  be->ops->attention(be->ctx, n, len - n, heads, kvh, hd, q, ps.klog[0],
                     ps.vlog[0], contig);
  for (size_t i = 0; i < qn; i++) {
    if (!(fabs((double)paged[i] - contig[i]) <= 1e-5)) {
      print_error("len %d n %d: element %zu paged %.9g contiguous %.9g\n", len,
                  n, i, (double)paged[i], (double)contig[i]);
      fail();
    }
  }
  free(kc), free(vc), free(q), free(paged), free(contig);
  paged_free(&ps);
}

static void test_paged_vs_contiguous(void **state) {
  suite *st = *state;
  const r1d_backend *cpu = &st->b[0].be;
  paged_vs_contiguous(cpu, 1, 1, 2, 1, 64);
  paged_vs_contiguous(cpu, 37, 5, 14, 2, 64);  /* decode-sized chunk */
  paged_vs_contiguous(cpu, 700, 3, 4, 2, 128); /* crosses a 512 tile */
  paged_vs_contiguous(cpu, 200, 40, 7, 1, 80); /* prefill (GEMM path) */
}

/* A query's bits do not depend on its batch: whole batch, each query alone,
 * and the batch reversed all agree exactly. */
static void test_paged_batch_invariance(void **state) {
  suite *st = *state;
  const r1d_backend *be = &st->b[0].be;
  rng r;
  rng_seed(&r, 77);
  paged_step ps;
  const int lens[3] = {530, 20, 65}, nqs[3] = {1, 20, 3};
  paged_make(&ps, &r, 3, lens, nqs, 16, 6, 2, 64);
  size_t cache_n = ps.n_slots * ps.kv_dim, qrow = (size_t)ps.heads * ps.hd;
  size_t qn = (size_t)ps.n_q * qrow;
  float *kc = xmalloc(cache_n * sizeof(float)),
        *vc = xmalloc(cache_n * sizeof(float));
  paged_expected_cache(&ps, NAN, kc, vc);
  float *batch = nan_vec(qn), *alone = nan_vec(qn), *rev = nan_vec(qn);
  be->ops->paged_attention(be->ctx, ps.n_q, ps.q_seq, ps.q_pos,
                           paged_max_pos(&ps), ps.tables, ps.max_blocks, ps.bs,
                           ps.heads, ps.kvh, ps.hd, ps.q, kc, vc, batch);
  for (int i = 0; i < ps.n_q; i++)
    be->ops->paged_attention(be->ctx, 1, ps.q_seq + i, ps.q_pos + i,
                             ps.q_pos[i], ps.tables, ps.max_blocks, ps.bs,
                             ps.heads, ps.kvh, ps.hd, ps.q + i * qrow, kc, vc,
                             alone + i * qrow);
  /* reversed batch: queries and metadata in the opposite order */
  int32_t *seq_r = xmalloc((size_t)ps.n_q * sizeof(int32_t));
  int32_t *pos_r = xmalloc((size_t)ps.n_q * sizeof(int32_t));
  float *q_r = xmalloc(qn * sizeof(float));
  for (int i = 0; i < ps.n_q; i++) {
    int j = ps.n_q - 1 - i;
    seq_r[i] = ps.q_seq[j], pos_r[i] = ps.q_pos[j];
    memcpy(q_r + i * qrow, ps.q + j * qrow, qrow * sizeof(float));
  }
  be->ops->paged_attention(be->ctx, ps.n_q, seq_r, pos_r, 4096, ps.tables,
                           ps.max_blocks, ps.bs, ps.heads, ps.kvh, ps.hd, q_r,
                           kc, vc, rev);
  for (int i = 0; i < ps.n_q; i++) {
    int j = ps.n_q - 1 - i;
    assert_true(isfinite(batch[i * qrow]));
    assert_memory_equal(batch + i * qrow, alone + i * qrow,
                        qrow * sizeof(float));
    assert_memory_equal(batch + j * qrow, rev + i * qrow, qrow * sizeof(float));
  }
  free(kc), free(vc), free(batch), free(alone), free(rev), free(seq_r);
  free(pos_r), free(q_r);
  paged_free(&ps);
}

/* ---- setup ---- */

int main(void) {
  int rc = ops_suite_probe();
  if (rc) return rc;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ops_table),
      cmocka_unit_test(test_paged_vs_contiguous),
      cmocka_unit_test(test_paged_batch_invariance),
  };
  return cmocka_run_group_tests(tests, ops_suite_setup, ops_suite_teardown);
}
