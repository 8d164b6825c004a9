/* test_backward_ops.c - the training entries of the ops table
 * (kernels/backend.h: every *_backward, cross_entropy and adamw) on every
 * backend present, against naive double-precision references written here:
 * the backward half of test_backend_ops.c.
 *
 * Gradients accumulate, so every gradient output starts as random values
 * (the same on every backend) and the reference adds to them: an op that
 * overwrites instead of adding fails. Outputs that are overwritten (the loss,
 * target logprobs) start as NaN. Some cases pass NULL for one gradient, which
 * must skip it and leave the others right. Errors are normalised as in the
 * forward table: max|out - ref| / max(1e-6, max|ref|), against a tolerance
 * per op (fp32 everywhere: training reads fp32 master weights, so a device
 * backend holds fp32 tolerances too, only with other summation orders).
 *
 * AdamW is also checked bit for bit against the CPU backend (every backend
 * must update exactly alike, the property exact resume across backends
 * needs), and its low-precision copy against the updated fp32 parameter
 * rounded to the weight format.
 *
 * R1D_OPS_BACKEND=cuda requires the CUDA backend (exit 77 without one, as
 * tests/gpu/run.sh expects); =cpu runs the CPU only; unset runs every
 * backend present. One line per (case, backend, output). */
#include "ops_check.h"

enum bwd_op {
  B_LINEAR,
  B_EMBEDDING,
  B_RMSNORM,
  B_ROPE,
  B_ATTENTION,
  B_SWIGLU,
  B_CROSS_ENTROPY,
  B_ADAMW,
  B_CLIP,
};

/* Shapes: linear m,n,k (bias: has a bias gradient); embedding m ids over
 * vocab k, dim n; rmsnorm m rows of n; rope m tokens; attention m queries
 * after `start` cached positions; swiglu n elements; cross_entropy m rows of
 * vocab n; adamw n elements. skip: which gradient is passed as NULL (1: the
 * first, 2: the second, 3: the third; 0: none). */
typedef struct bwd_case {
  enum bwd_op op;
  int m, n, k;
  int bias;
  int heads, kv_heads, hd, start;
  int skip;
} bwd_case;

static const bwd_case cases[] = {
    {.op = B_LINEAR, .m = 1, .n = 1, .k = 1},
    {.op = B_LINEAR, .m = 7, .n = 33, .k = 17, .bias = 1},
    {.op = B_LINEAR, .m = 64, .n = 96, .k = 129, .bias = 1},
    {.op = B_LINEAR, .m = 37, .n = 128, .k = 896, .skip = 1},
    {.op = B_LINEAR, .m = 37, .n = 896, .k = 128, .bias = 1, .skip = 2},
    {.op = B_LINEAR, .m = 256, .n = 320, .k = 256, .bias = 1, .skip = 3},

    {.op = B_EMBEDDING, .m = 1, .n = 8, .k = 3},
    {.op = B_EMBEDDING, .m = 40, .n = 64, .k = 7}, /* many repeats */
    {.op = B_EMBEDDING, .m = 129, .n = 96, .k = 1000},

    {.op = B_RMSNORM, .m = 1, .n = 1},
    {.op = B_RMSNORM, .m = 5, .n = 64},
    {.op = B_RMSNORM, .m = 33, .n = 896, .skip = 2},
    {.op = B_RMSNORM, .m = 130, .n = 256, .skip = 1},

    {.op = B_ROPE, .m = 1, .heads = 1, .hd = 2},
    {.op = B_ROPE, .m = 9, .heads = 14, .hd = 64},
    {.op = B_ROPE, .m = 17, .heads = 2, .hd = 128},

    {.op = B_ATTENTION, .m = 1, .heads = 1, .kv_heads = 1, .hd = 8},
    {.op = B_ATTENTION, .m = 13, .heads = 4, .kv_heads = 4, .hd = 16},
    {.op = B_ATTENTION, .m = 33, .heads = 4, .kv_heads = 2, .hd = 64},
    {.op = B_ATTENTION,
     .m = 17,
     .start = 20,
     .heads = 8,
     .kv_heads = 2,
     .hd = 32,
     .skip = 3},
    {.op = B_ATTENTION,
     .m = 70,
     .heads = 14,
     .kv_heads = 2,
     .hd = 64,
     .skip = 1},
    {.op = B_ATTENTION, .m = 40, .heads = 2, .kv_heads = 1, .hd = 128},
    /* rows longer than the CPU kernel's 4096-key cache recompute the rest */
    {.op = B_ATTENTION, .m = 4200, .heads = 2, .kv_heads = 1, .hd = 8},
    {.op = B_ATTENTION,
     .m = 5,
     .start = 4100,
     .heads = 2,
     .kv_heads = 2,
     .hd = 16},

    {.op = B_SWIGLU, .n = 1},
    {.op = B_SWIGLU, .n = 4099},
    {.op = B_SWIGLU, .n = 1000, .skip = 1},

    {.op = B_CROSS_ENTROPY, .m = 1, .n = 2},
    {.op = B_CROSS_ENTROPY, .m = 9, .n = 151},
    {.op = B_CROSS_ENTROPY, .m = 37, .n = 4099},
    {.op = B_CROSS_ENTROPY, .m = 5, .n = 33, .skip = 1}, /* no dlogits */

    {.op = B_ADAMW, .n = 1},
    {.op = B_ADAMW, .n = 1000},
    {.op = B_ADAMW, .n = 70001},

    /* sum_squares and scale: one block, several CPU blocks, a partial one */
    {.op = B_CLIP, .n = 1},
    {.op = B_CLIP, .n = 1000},
    {.op = B_CLIP, .n = 3 * 65536 + 17},
};

enum { ADAMW_STEPS = 3 };

static const double tol_grad[] = {
    [B_LINEAR] = 1e-5,        [B_EMBEDDING] = 1e-6, [B_RMSNORM] = 1e-5,
    [B_ROPE] = 1e-5,          [B_ATTENTION] = 1e-5, [B_SWIGLU] = 1e-5,
    [B_CROSS_ENTROPY] = 1e-5, [B_ADAMW] = 1e-5,     [B_CLIP] = 1e-12,
};

/* A device backend's fp32 kernels sum in other orders and use their own
 * exp/log: looser only where long sums meet transcendental functions. */
static double tol_for(enum bwd_op op, const backend_slot *b) {
  double t = tol_grad[op];
  if (b->is_cuda && (op == B_ATTENTION || op == B_CROSS_ENTROPY)) t *= 10;
  return t;
}

static double *to_double(const float *x, size_t n) {
  double *d = xmalloc(n * sizeof(double));
  for (size_t i = 0; i < n; i++)
    d[i] = x[i];
  return d;
}

static float *copy_vec(const float *x, size_t n) {
  float *p = xmalloc(n * sizeof(float));
  memcpy(p, x, n * sizeof(float));
  return p;
}

/* One gradient output: its initial values go up, the op runs, it comes back
 * and is compared with ref; NULL dev (skipped) checks nothing. */
static int check_out(suite *st, const backend_slot *b, enum bwd_op op,
                     const char *what, const char *shape, const float *dev,
                     const double *ref, size_t n) {
  if (!dev) return 0;
  float *got = xmalloc(n * sizeof(float));
  dev_get(&b->be, got, dev, n * sizeof(float));
  char name[48];
  snprintf(name, sizeof name, "%s", what);
  int f = report(name, shape, b->name, norm_err(got, ref, n), tol_for(op, b));
  st->fails += f;
  free(got);
  return f;
}

/* ---- linear: dx += dy w, dw += dy^T x, db += column sums of dy ---- */

static void run_linear(const bwd_case *c, rng *r, suite *st) {
  int m = c->m, n = c->n, k = c->k;
  size_t xs = (size_t)m * k, ws = (size_t)n * k, ys = (size_t)m * n;
  float *x = rand_vec(r, xs, -1, 1), *w = rand_vec(r, ws, -1, 1);
  float *dy = rand_vec(r, ys, -1, 1);
  float *dx0 = rand_vec(r, xs, -1, 1), *dw0 = rand_vec(r, ws, -1, 1);
  float *db0 = rand_vec(r, (size_t)n, -1, 1);
  double *rdx = to_double(dx0, xs), *rdw = to_double(dw0, ws);
  double *rdb = to_double(db0, (size_t)n);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double g = dy[(size_t)i * n + j];
      rdb[j] += g;
      for (int p = 0; p < k; p++) {
        rdx[(size_t)i * k + p] += g * w[(size_t)j * k + p];
        rdw[(size_t)j * k + p] += g * x[(size_t)i * k + p];
      }
    }
  char shape[64];
  snprintf(shape, sizeof shape, "m=%d n=%d k=%d%s skip=%d", m, n, k,
           c->bias ? " bias" : "", c->skip);
  for (int b = 0; b < st->n; b++) {
    const r1d_backend *be = &st->b[b].be;
    float *d_x = dev_put(be, x, xs * 4), *d_w = dev_put(be, w, ws * 4);
    float *d_dy = dev_put(be, dy, ys * 4);
    float *d_dx = c->skip == 1 ? NULL : dev_put(be, dx0, xs * 4);
    float *d_dw = c->skip == 2 ? NULL : dev_put(be, dw0, ws * 4);
    float *d_db =
        (!c->bias || c->skip == 3) ? NULL : dev_put(be, db0, (size_t)n * 4);
    be->ops->linear_backward(be->ctx, m, n, k, d_x, d_w, d_dy, d_dx, d_dw,
                             d_db);
    check_out(st, &st->b[b], B_LINEAR, "linear_backward dx", shape, d_dx, rdx,
              xs);
    check_out(st, &st->b[b], B_LINEAR, "linear_backward dw", shape, d_dw, rdw,
              ws);
    check_out(st, &st->b[b], B_LINEAR, "linear_backward db", shape, d_db, rdb,
              (size_t)n);
    assert_int_equal(be->ops->sync(be->ctx), 0);
    dev_free(be, d_x), dev_free(be, d_w), dev_free(be, d_dy);
    dev_free(be, d_dx), dev_free(be, d_dw), dev_free(be, d_db);
  }
  free(x), free(w), free(dy), free(dx0), free(dw0), free(db0);
  free(rdx), free(rdw), free(rdb);
}

/* ---- embedding: dtable[ids[i]] += dout[i] ---- */

static void run_embedding(const bwd_case *c, rng *r, suite *st) {
  int n = c->m, dim = c->n, vocab = c->k;
  size_t ts = (size_t)vocab * dim, os = (size_t)n * dim;
  int32_t *ids = xmalloc((size_t)n * sizeof(int32_t));
  for (int i = 0; i < n; i++)
    ids[i] = rng_int(r, vocab);
  float *dout = rand_vec(r, os, -1, 1), *dt0 = rand_vec(r, ts, -1, 1);
  double *ref = to_double(dt0, ts);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < dim; j++)
      ref[(size_t)ids[i] * dim + j] += dout[(size_t)i * dim + j];
  char shape[64];
  snprintf(shape, sizeof shape, "n=%d dim=%d vocab=%d", n, dim, vocab);
  for (int b = 0; b < st->n; b++) {
    const r1d_backend *be = &st->b[b].be;
    int32_t *d_ids = dev_put(be, ids, (size_t)n * sizeof(int32_t));
    float *d_dout = dev_put(be, dout, os * 4), *d_dt = dev_put(be, dt0, ts * 4);
    be->ops->embedding_backward(be->ctx, n, d_ids, dim, d_dout, d_dt);
    check_out(st, &st->b[b], B_EMBEDDING, "embedding_backward", shape, d_dt,
              ref, ts);
    dev_free(be, d_ids), dev_free(be, d_dout), dev_free(be, d_dt);
  }
  free(ids), free(dout), free(dt0), free(ref);
}

/* ---- rmsnorm ---- */

static void run_rmsnorm(const bwd_case *c, rng *r, suite *st) {
  int n = c->m, dim = c->n;
  size_t len = (size_t)n * dim;
  float eps = 1e-6f;
  float *x = rand_vec(r, len, -3, 3), *w = rand_vec(r, (size_t)dim, 0.5f, 1.5f);
  float *dout = rand_vec(r, len, -1, 1), *dx0 = rand_vec(r, len, -1, 1);
  float *dw0 = rand_vec(r, (size_t)dim, -1, 1);
  double *rdx = to_double(dx0, len), *rdw = to_double(dw0, (size_t)dim);
  for (int i = 0; i < n; i++) {
    const float *xi = x + (size_t)i * dim, *gi = dout + (size_t)i * dim;
    double ss = 0, dot = 0;
    for (int j = 0; j < dim; j++)
      ss += (double)xi[j] * xi[j];
    double rr = 1.0 / sqrt(ss / dim + eps);
    for (int j = 0; j < dim; j++)
      dot += (double)gi[j] * w[j] * xi[j];
    for (int j = 0; j < dim; j++) {
      rdx[(size_t)i * dim + j] +=
          rr * ((double)w[j] * gi[j] - xi[j] * rr * rr / dim * dot);
      rdw[j] += (double)gi[j] * xi[j] * rr;
    }
  }
  char shape[64];
  snprintf(shape, sizeof shape, "n=%d dim=%d skip=%d", n, dim, c->skip);
  for (int b = 0; b < st->n; b++) {
    const r1d_backend *be = &st->b[b].be;
    float *d_x = dev_put(be, x, len * 4), *d_w = dev_put(be, w, dim * 4u);
    float *d_g = dev_put(be, dout, len * 4);
    float *d_dx = c->skip == 1 ? NULL : dev_put(be, dx0, len * 4);
    float *d_dw = c->skip == 2 ? NULL : dev_put(be, dw0, dim * 4u);
    be->ops->rmsnorm_backward(be->ctx, n, dim, d_x, d_w, eps, d_g, d_dx, d_dw);
    check_out(st, &st->b[b], B_RMSNORM, "rmsnorm_backward dx", shape, d_dx, rdx,
              len);
    check_out(st, &st->b[b], B_RMSNORM, "rmsnorm_backward dw", shape, d_dw, rdw,
              (size_t)dim);
    dev_free(be, d_x), dev_free(be, d_w), dev_free(be, d_g);
    dev_free(be, d_dx), dev_free(be, d_dw);
  }
  free(x), free(w), free(dout), free(dx0), free(dw0), free(rdx), free(rdw);
}

/* ---- rope: dx += R(pos)^T dout ---- */

static void run_rope(const bwd_case *c, rng *r, suite *st) {
  int n = c->m, heads = c->heads, hd = c->hd, half = hd / 2;
  size_t len = (size_t)n * heads * hd;
  float *dout = rand_vec(r, len, -1, 1), *dx0 = rand_vec(r, len, -1, 1);
  float *inv = xmalloc((size_t)half * sizeof(float));
  int32_t *pos = xmalloc((size_t)n * sizeof(int32_t));
  for (int j = 0; j < half; j++)
    inv[j] = (float)pow(1e6, -2.0 * j / hd);
  for (int i = 0; i < n; i++)
    pos[i] = i == 0 ? 0 : rng_int(r, 40000);
  double *ref = to_double(dx0, len);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < half; j++) {
      float angle = (float)pos[i] * inv[j]; /* fp32, as the forward */
      double cs = cos((double)angle), sn = sin((double)angle);
      for (int h = 0; h < heads; h++) {
        size_t base = ((size_t)i * heads + h) * hd;
        double g1 = dout[base + j], g2 = dout[base + j + half];
        ref[base + j] += g1 * cs + g2 * sn;
        ref[base + j + half] += g2 * cs - g1 * sn;
      }
    }
  char shape[64];
  snprintf(shape, sizeof shape, "n=%d heads=%d hd=%d", n, heads, hd);
  for (int b = 0; b < st->n; b++) {
    const r1d_backend *be = &st->b[b].be;
    float *d_g = dev_put(be, dout, len * 4), *d_dx = dev_put(be, dx0, len * 4);
    float *d_inv = dev_put(be, inv, (size_t)half * 4);
    int32_t *d_pos = dev_put(be, pos, (size_t)n * sizeof(int32_t));
    be->ops->rope_backward(be->ctx, n, heads, hd, d_pos, d_inv, d_g, d_dx);
    check_out(st, &st->b[b], B_ROPE, "rope_backward", shape, d_dx, ref, len);
    dev_free(be, d_g), dev_free(be, d_dx), dev_free(be, d_inv),
        dev_free(be, d_pos);
  }
  free(dout), free(dx0), free(inv), free(pos), free(ref);
}

/* ---- causal GQA attention ---- */

/* The gradients of one query row (query i of head h) in double, added to
 * rdq, rdk, rdv. */
static void ref_attention_row(const float *q, const float *k, const float *v,
                              const float *dout, int n_pos, int hd,
                              size_t kv_stride, size_t kv_off, double *rdq,
                              double *rdk, double *rdv) {
  double scale = 1.0 / sqrt((double)hd), mx = -INFINITY, sum = 0, pdp = 0;
  double *p = xmalloc((size_t)n_pos * sizeof(double));
  double *dp = xmalloc((size_t)n_pos * sizeof(double));
  for (int t = 0; t < n_pos; t++) {
    const float *kt = k + (size_t)t * kv_stride + kv_off;
    double s = 0;
    for (int d = 0; d < hd; d++)
      s += (double)q[d] * kt[d];
    p[t] = s * scale;
    if (p[t] > mx) mx = p[t];
  }
  for (int t = 0; t < n_pos; t++)
    sum += (p[t] = exp(p[t] - mx));
  for (int t = 0; t < n_pos; t++) {
    const float *vt = v + (size_t)t * kv_stride + kv_off;
    p[t] /= sum;
    double s = 0;
    for (int d = 0; d < hd; d++)
      s += (double)dout[d] * vt[d];
    dp[t] = s;
    pdp += p[t] * s;
  }
  for (int t = 0; t < n_pos; t++) {
    const float *kt = k + (size_t)t * kv_stride + kv_off;
    double ds = p[t] * (dp[t] - pdp) * scale;
    for (int d = 0; d < hd; d++) {
      rdv[(size_t)t * kv_stride + kv_off + d] += p[t] * dout[d];
      rdq[d] += ds * kt[d];
      rdk[(size_t)t * kv_stride + kv_off + d] += ds * q[d];
    }
  }
  free(p), free(dp);
}

static void run_attention(const bwd_case *c, rng *r, suite *st) {
  int n = c->m, start = c->start, len = start + n;
  int heads = c->heads, kvh = c->kv_heads, hd = c->hd, group = heads / kvh;
  size_t qrow = (size_t)heads * hd, kvrow = (size_t)kvh * hd;
  size_t qs = (size_t)n * qrow, ks = (size_t)len * kvrow;
  float *q = rand_vec(r, qs, -2, 2), *k = rand_vec(r, ks, -1, 1);
  float *v = rand_vec(r, ks, -1, 1), *dout = rand_vec(r, qs, -1, 1);
  float *dq0 = rand_vec(r, qs, -1, 1), *dk0 = rand_vec(r, ks, -1, 1);
  float *dv0 = rand_vec(r, ks, -1, 1);
  double *rdq = to_double(dq0, qs), *rdk = to_double(dk0, ks);
  double *rdv = to_double(dv0, ks);
  for (int i = 0; i < n; i++)
    for (int h = 0; h < heads; h++) {
      size_t o = (size_t)i * qrow + (size_t)h * hd;
      ref_attention_row(q + o, k, v, dout + o, start + i + 1, hd, kvrow,
                        (size_t)(h / group) * hd, rdq + o, rdk, rdv);
    }
  char shape[64];
  snprintf(shape, sizeof shape, "n=%d start=%d h=%d/%d hd=%d skip=%d", n, start,
           heads, kvh, hd, c->skip);
  for (int b = 0; b < st->n; b++) {
    const r1d_backend *be = &st->b[b].be;
    float *d_q = dev_put(be, q, qs * 4), *d_k = dev_put(be, k, ks * 4);
    float *d_v = dev_put(be, v, ks * 4), *d_g = dev_put(be, dout, qs * 4);
    float *d_dq = c->skip == 1 ? NULL : dev_put(be, dq0, qs * 4);
    float *d_dk = c->skip == 2 ? NULL : dev_put(be, dk0, ks * 4);
    float *d_dv = c->skip == 3 ? NULL : dev_put(be, dv0, ks * 4);
    be->ops->attention_backward(be->ctx, n, start, heads, kvh, hd, d_q, d_k,
                                d_v, d_g, d_dq, d_dk, d_dv);
    check_out(st, &st->b[b], B_ATTENTION, "attention_backward dq", shape, d_dq,
              rdq, qs);
    check_out(st, &st->b[b], B_ATTENTION, "attention_backward dk", shape, d_dk,
              rdk, ks);
    check_out(st, &st->b[b], B_ATTENTION, "attention_backward dv", shape, d_dv,
              rdv, ks);
    dev_free(be, d_q), dev_free(be, d_k), dev_free(be, d_v), dev_free(be, d_g);
    dev_free(be, d_dq), dev_free(be, d_dk), dev_free(be, d_dv);
  }
  free(q), free(k), free(v), free(dout), free(dq0), free(dk0), free(dv0);
  free(rdq), free(rdk), free(rdv);
}

/* ---- swiglu ---- */

static void run_swiglu(const bwd_case *c, rng *r, suite *st) {
  size_t n = (size_t)c->n;
  float *gate = rand_vec(r, n, -6, 6), *up = rand_vec(r, n, -2, 2);
  float *dout = rand_vec(r, n, -1, 1), *dg0 = rand_vec(r, n, -1, 1);
  float *du0 = rand_vec(r, n, -1, 1);
  double *rdg = to_double(dg0, n), *rdu = to_double(du0, n);
  for (size_t i = 0; i < n; i++) {
    double g = gate[i], s = 1.0 / (1.0 + exp(-g));
    rdg[i] += (double)dout[i] * up[i] * s * (1.0 + g * (1.0 - s));
    rdu[i] += (double)dout[i] * g * s;
  }
  char shape[64];
  snprintf(shape, sizeof shape, "n=%zu skip=%d", n, c->skip);
  for (int b = 0; b < st->n; b++) {
    const r1d_backend *be = &st->b[b].be;
    float *d_gate = dev_put(be, gate, n * 4), *d_up = dev_put(be, up, n * 4);
    float *d_g = dev_put(be, dout, n * 4);
    float *d_dg = c->skip == 1 ? NULL : dev_put(be, dg0, n * 4);
    float *d_du = c->skip == 2 ? NULL : dev_put(be, du0, n * 4);
    be->ops->swiglu_backward(be->ctx, n, d_gate, d_up, d_g, d_dg, d_du);
    check_out(st, &st->b[b], B_SWIGLU, "swiglu_backward dgate", shape, d_dg,
              rdg, n);
    check_out(st, &st->b[b], B_SWIGLU, "swiglu_backward dup", shape, d_du, rdu,
              n);
    dev_free(be, d_gate), dev_free(be, d_up), dev_free(be, d_g);
    dev_free(be, d_dg), dev_free(be, d_du);
  }
  free(gate), free(up), free(dout), free(dg0), free(du0), free(rdg), free(rdu);
}

/* ---- fused cross-entropy: loss, target logprobs, dlogits ---- */

static void run_cross_entropy(const bwd_case *c, rng *r, suite *st) {
  int n = c->m, vocab = c->n;
  size_t ls = (size_t)n * vocab;
  float scale = 0.5f;
  float *logits = rand_vec(r, ls, -8, 8), *dl0 = rand_vec(r, ls, -1, 1);
  int32_t *tg = xmalloc((size_t)n * sizeof(int32_t));
  int counted = 0;
  for (int i = 0; i < n; i++) {
    tg[i] = (i % 4 == 3) ? -1 : rng_int(r, vocab); /* some ignored rows */
    counted += tg[i] >= 0;
  }
  double *rdl = to_double(dl0, ls), rloss = 0;
  double *rtlp = xmalloc((size_t)n * sizeof(double));
  for (int i = 0; i < n; i++) {
    const float *x = logits + (size_t)i * vocab;
    double mx = -INFINITY, sum = 0;
    for (int j = 0; j < vocab; j++)
      if (x[j] > mx) mx = x[j];
    for (int j = 0; j < vocab; j++)
      sum += exp(x[j] - mx);
    double lse = mx + log(sum);
    rtlp[i] = tg[i] >= 0 ? x[tg[i]] - lse : 0.0;
    if (tg[i] < 0) continue;
    rloss -= rtlp[i] / counted;
    for (int j = 0; j < vocab; j++)
      rdl[(size_t)i * vocab + j] +=
          (double)scale / counted * (exp(x[j] - lse) - (j == tg[i]));
  }
  char shape[64];
  snprintf(shape, sizeof shape, "n=%d vocab=%d counted=%d skip=%d", n, vocab,
           counted, c->skip);
  float nan1 = NAN, *nan = nan_vec((size_t)n);
  for (int b = 0; b < st->n; b++) {
    const r1d_backend *be = &st->b[b].be;
    float *d_x = dev_put(be, logits, ls * 4);
    int32_t *d_t = dev_put(be, tg, (size_t)n * sizeof(int32_t));
    float *d_loss = dev_put(be, &nan1, 4), *d_tlp = dev_put(be, nan, n * 4u);
    float *d_dl = c->skip == 1 ? NULL : dev_put(be, dl0, ls * 4);
    be->ops->cross_entropy(be->ctx, n, vocab, d_x, d_t, scale, d_loss, d_tlp,
                           d_dl);
    check_out(st, &st->b[b], B_CROSS_ENTROPY, "cross_entropy loss", shape,
              d_loss, &rloss, 1);
    check_out(st, &st->b[b], B_CROSS_ENTROPY, "cross_entropy target_logprob",
              shape, d_tlp, rtlp, (size_t)n);
    check_out(st, &st->b[b], B_CROSS_ENTROPY, "cross_entropy dlogits", shape,
              d_dl, rdl, ls);
    dev_free(be, d_x), dev_free(be, d_t), dev_free(be, d_loss);
    dev_free(be, d_tlp), dev_free(be, d_dl);
  }
  free(logits), free(dl0), free(tg), free(rdl), free(rtlp), free(nan);
}

/* ---- AdamW ---- */

/* fp32 -> bf16 bits, round to nearest even (finite inputs) */
static uint16_t bf16_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

static void run_adamw(const bwd_case *c, rng *r, suite *st) {
  size_t n = (size_t)c->n;
  float *p0 = rand_vec(r, n, -1, 1);
  float *grads[ADAMW_STEPS];
  for (int s = 0; s < ADAMW_STEPS; s++)
    grads[s] = rand_vec(r, n, -1, 1);
  r1d_adamw_step cfg = {.lr = 1e-2,
                        .beta1 = 0.9,
                        .beta2 = 0.95,
                        .eps = 1e-8,
                        .weight_decay = 0.1};
  float *cpu_p[2] = {NULL, NULL}; /* per decay setting: the CPU's result */
  for (int decay = 0; decay <= 1; decay++) {
    /* the reference in double */
    double *rp = to_double(p0, n), *rm = xmalloc(n * 8), *rv = xmalloc(n * 8);
    for (size_t i = 0; i < n; i++)
      rm[i] = rv[i] = 0;
    for (int s = 0; s < ADAMW_STEPS; s++) {
      double lr = cfg.lr * (s + 1) / ADAMW_STEPS, t = s + 1;
      for (size_t i = 0; i < n; i++) {
        double g = grads[s][i];
        if (decay) rp[i] *= 1.0 - lr * cfg.weight_decay;
        rm[i] = cfg.beta1 * rm[i] + (1 - cfg.beta1) * g;
        rv[i] = cfg.beta2 * rv[i] + (1 - cfg.beta2) * g * g;
        double mhat = rm[i] / (1 - pow(cfg.beta1, t));
        double denom = sqrt(rv[i]) / sqrt(1 - pow(cfg.beta2, t)) + cfg.eps;
        rp[i] -= lr * mhat / denom;
      }
    }
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu decay=%d %d steps", n, decay,
             ADAMW_STEPS);
    float *zeros = xmalloc(n * 4), *got = xmalloc(n * 4);
    memset(zeros, 0, n * 4);
    for (int b = 0; b < st->n; b++) {
      const backend_slot *slot = &st->b[b];
      const r1d_backend *be = &slot->be;
      int lowp = be->ops->weight_format == R1D_WEIGHT_BF16;
      float *d_p = dev_put(be, p0, n * 4), *d_m = dev_put(be, zeros, n * 4);
      float *d_v = dev_put(be, zeros, n * 4), *d_g = dev_alloc(be, n * 4);
      void *d_low = lowp ? dev_alloc(be, n * 2) : NULL;
      for (int s = 0; s < ADAMW_STEPS; s++) {
        r1d_adamw_step step = cfg;
        step.lr = cfg.lr * (s + 1) / ADAMW_STEPS;
        step.step = s + 1;
        assert_int_equal(be->ops->upload(be->ctx, d_g, grads[s], n * 4), 0);
        be->ops->adamw(be->ctx, n, &step, decay, d_p, d_g, d_m, d_v, d_low);
      }
      check_out(st, slot, B_ADAMW, "adamw param", shape, d_p, rp, n);
      dev_get(be, got, d_p, n * 4);
      if (b == 0) {
        cpu_p[decay] = copy_vec(got, n);
      } else {
        long bad = 0;
        for (size_t i = 0; i < n; i++)
          bad += memcmp(&got[i], &cpu_p[decay][i], 4) != 0;
        st->fails +=
            report_exact("adamw param == cpu", shape, slot->name, bad, (long)n);
      }
      if (lowp) {
        uint16_t *low = xmalloc(n * 2);
        dev_get(be, low, d_low, n * 2);
        long bad = 0;
        for (size_t i = 0; i < n; i++)
          bad += low[i] != bf16_bits(got[i]);
        st->fails +=
            report_exact("adamw bf16 copy", shape, slot->name, bad, (long)n);
        free(low);
      }
      dev_free(be, d_p), dev_free(be, d_m), dev_free(be, d_v);
      dev_free(be, d_g), dev_free(be, d_low);
    }
    free(rp), free(rm), free(rv), free(zeros), free(got);
  }
  for (int s = 0; s < ADAMW_STEPS; s++)
    free(grads[s]);
  free(p0), free(cpu_p[0]), free(cpu_p[1]);
}

/* ---- global-norm clipping: sum_squares, scale ---- */

static void run_clip(const bwd_case *c, rng *r, suite *st) {
  size_t n = (size_t)c->n;
  float *x = rand_vec(r, n, -2, 2);
  double ref = 0.0;
  for (size_t i = 0; i < n; i++)
    ref += (double)x[i] * x[i];
  const float factor = 0.37f;
  float *want = xmalloc(n * 4), *got = xmalloc(n * 4);
  for (size_t i = 0; i < n; i++)
    want[i] = x[i] * factor;
  char shape[64];
  snprintf(shape, sizeof shape, "n=%zu", n);
  for (int b = 0; b < st->n; b++) {
    const backend_slot *slot = &st->b[b];
    const r1d_backend *be = &slot->be;
    float *d_x = dev_put(be, x, n * 4);
    double *d_out = dev_alloc(be, sizeof(double)), sum = -1.0, again = -2.0;
    be->ops->sum_squares(be->ctx, n, d_x, d_out);
    dev_get(be, &sum, d_out, sizeof sum);
    be->ops->sum_squares(be->ctx, n, d_x, d_out);
    dev_get(be, &again, d_out, sizeof again);
    st->fails +=
        report("sum_squares", shape, slot->name,
               fabs(sum - ref) / (ref > 0 ? ref : 1), tol_grad[B_CLIP]);
    st->fails += report_exact("sum_squares repeats", shape, slot->name,
                              memcmp(&sum, &again, sizeof sum) != 0, 1);
    be->ops->scale(be->ctx, n, factor, d_x);
    dev_get(be, got, d_x, n * 4);
    long bad = 0;
    for (size_t i = 0; i < n; i++)
      bad += memcmp(&got[i], &want[i], 4) != 0;
    st->fails += report_exact("scale", shape, slot->name, bad, (long)n);
    dev_free(be, d_x), dev_free(be, d_out);
  }
  free(x), free(want), free(got);
}

/* ---- the test ---- */

static void test_backward_table(void **state) {
  suite *st = *state;
  st->fails = 0;
  for (int b = 0; b < st->n; b++) {
    const r1d_backend_ops *o = st->b[b].be.ops;
    const void *fns[] = {(const void *)o->linear_backward,
                         (const void *)o->embedding_backward,
                         (const void *)o->rmsnorm_backward,
                         (const void *)o->rope_backward,
                         (const void *)o->attention_backward,
                         (const void *)o->swiglu_backward,
                         (const void *)o->cross_entropy,
                         (const void *)o->adamw,
                         (const void *)o->sum_squares,
                         (const void *)o->scale};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
      if (!fns[i]) {
        print_error("backend %s: training entry %zu is NULL\n", st->b[b].name,
                    i);
        fail();
      }
  }
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const bwd_case *c = &cases[i];
    rng r;
    rng_seed(&r, 5000 + i);
    switch (c->op) {
    case B_LINEAR: run_linear(c, &r, st); break;
    case B_EMBEDDING: run_embedding(c, &r, st); break;
    case B_RMSNORM: run_rmsnorm(c, &r, st); break;
    case B_ROPE: run_rope(c, &r, st); break;
    case B_ATTENTION: run_attention(c, &r, st); break;
    case B_SWIGLU: run_swiglu(c, &r, st); break;
    case B_CROSS_ENTROPY: run_cross_entropy(c, &r, st); break;
    case B_ADAMW: run_adamw(c, &r, st); break;
    case B_CLIP: run_clip(c, &r, st); break;
    }
  }
  for (int b = 0; b < st->n; b++)
    assert_int_equal(st->b[b].be.ops->sync(st->b[b].be.ctx), 0);
  fflush(stdout);
  if (st->fails) {
    print_error("%d backward checks failed (lines marked FAIL above)\n",
                st->fails);
    fail();
  }
}

int main(void) {
  int rc = ops_suite_probe();
  if (rc) return rc;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_backward_table),
  };
  return cmocka_run_group_tests(tests, ops_suite_setup, ops_suite_teardown);
}
