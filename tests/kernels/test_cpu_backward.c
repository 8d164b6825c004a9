/* test_cpu_backward.c - every CPU backward kernel against central finite
 * differences of a double-precision forward written here.
 *
 * For each op: random seeded inputs (common/rng.h), L = sum(out * wo) with
 * random weights wo (so dout = wo), and for every input tensor and every
 * element fd = (L(x + h) - L(x - h)) / 2h with h = 1e-4 in double. Checks:
 *  - element-wise |grad - fd| <= 1e-3 * (max|fd| + 1e-3)  (per tensor);
 *  - projection on a random normal direction v:
 *    |<grad, v> - <fd, v>| <= 1e-3 * ||fd||  (||fd|| is the projection's
 *    standard deviation, so this is a relative tolerance of 1e-3);
 *  - the double forward agrees with the float forward op within 1e-4 *
 *    (1 + |ref|), so the gradient checked is the gradient of the real op;
 *  - calling the backward a second time doubles every gradient (they
 *    accumulate), within 1e-5 relative.
 * The kernels are fp32 and the reference exact to ~1e-9, so 1e-3 leaves a
 * wide margin for rounding yet fails on any wrong term (a sign flip in a
 * kernel fails every check of its tensor). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "kernels/cpu/cpu_backward.h"
#include "kernels/cpu/cpu_ops.h"

#define FD_H 1e-4
#define ELEM_TOL 1e-3
#define PROJ_TOL 1e-3
#define FWD_TOL 1e-4
#define ACC_TOL 1e-5

/* ---- buffers ---- */

/* normal * scale, rounded to float so the float and double copies of an
 * input hold the same number */
static double *rand_vec(r1d_rng *rng, size_t n, double scale) {
  double *p = malloc(n * sizeof(double));
  assert_non_null(p);
  for (size_t i = 0; i < n; i++)
    p[i] = (double)(float)(r1d_rng_normal(rng) * scale);
  return p;
}

static float *to_float(const double *x, size_t n) {
  float *p = malloc(n * sizeof(float));
  assert_non_null(p);
  for (size_t i = 0; i < n; i++)
    p[i] = (float)x[i];
  return p;
}

static float *zeros(size_t n) {
  float *p = calloc(n, sizeof(float));
  assert_non_null(p);
  return p;
}

static float *copy_of(const float *x, size_t n) {
  float *p = malloc(n * sizeof(float));
  assert_non_null(p);
  memcpy(p, x, n * sizeof(float));
  return p;
}

static double dot_d(const double *a, const double *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += a[i] * b[i];
  return s;
}

/* ---- checks ---- */

typedef double (*loss_fn)(void *c);

typedef struct fd_input {
  const char *name;
  double *x; /* perturbed in place by the check */
  size_t n;
  const float *grad; /* the kernel's dL/dx */
} fd_input;

static void check_fd(const char *op, loss_fn loss, void *c, const fd_input *in,
                     int n_in, r1d_rng *rng) {
  for (int a = 0; a < n_in; a++) {
    size_t n = in[a].n;
    double *fd = malloc(n * sizeof(double));
    assert_non_null(fd);
    double max_fd = 0.0;
    for (size_t e = 0; e < n; e++) {
      double saved = in[a].x[e];
      in[a].x[e] = saved + FD_H;
      double lp = loss(c);
      in[a].x[e] = saved - FD_H;
      double lm = loss(c);
      in[a].x[e] = saved;
      fd[e] = (lp - lm) / (2 * FD_H);
      if (fabs(fd[e]) > max_fd) max_fd = fabs(fd[e]);
    }
    double tol = ELEM_TOL * (max_fd + 1e-3);
    for (size_t e = 0; e < n; e++) {
      double diff = fabs((double)in[a].grad[e] - fd[e]);
      if (!(diff <= tol)) {
        print_error("%s d%s[%zu]: grad %.7g, finite difference %.7g (tol %g)\n",
                    op, in[a].name, e, (double)in[a].grad[e], fd[e], tol);
        fail();
      }
    }
    double pg = 0.0, pf = 0.0, norm = 0.0;
    for (size_t e = 0; e < n; e++) {
      double v = r1d_rng_normal(rng);
      pg += in[a].grad[e] * v;
      pf += fd[e] * v;
      norm += fd[e] * fd[e];
    }
    norm = sqrt(norm);
    if (!(fabs(pg - pf) <= PROJ_TOL * norm + 1e-12)) {
      print_error("%s d%s: <grad,v> %.9g, <fd,v> %.9g (||fd|| %g)\n", op,
                  in[a].name, pg, pf, norm);
      fail();
    }
    free(fd);
  }
}

static void check_forward(const char *op, const float *got, const double *want,
                          size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!(fabs(got[i] - want[i]) <= FWD_TOL * (1.0 + fabs(want[i])))) {
      print_error("%s forward[%zu]: op %.7g, reference %.7g\n", op, i,
                  (double)got[i], want[i]);
      fail();
    }
}

/* after a second backward call into `now`, every element is twice `once`.
 * The second call's sums start from the first's result, so they round
 * differently: by about float epsilon times the size of their terms, which
 * for an element whose terms cancel (attention's dk) is far above epsilon
 * times the element. The floor, 1% of the tensor's largest element, keeps
 * that apart from an overwrite instead of an add (off by the whole element). */
static void check_doubled(const char *op, const char *name, const float *once,
                          const float *now, size_t n) {
  double scale = 0;
  for (size_t i = 0; i < n; i++)
    scale = fmax(scale, fabs((double)once[i]));
  for (size_t i = 0; i < n; i++) {
    double want = 2.0 * once[i];
    if (!(fabs(now[i] - want) <= ACC_TOL * (fabs(want) + 1e-2 * scale))) {
      print_error("%s d%s[%zu]: after two calls %.7g, want 2 x %.7g\n", op,
                  name, i, (double)now[i], (double)once[i]);
      fail();
    }
  }
}

/* ---- linear: y[m,n] = x[m,k] w[n,k]^T + b[n] ---- */

typedef struct linear_case {
  int m, n, k;
  double *x, *w, *b, *wo, *out;
} linear_case;

static void linear_ref(linear_case *c) {
  for (int i = 0; i < c->m; i++)
    for (int j = 0; j < c->n; j++) {
      double s = c->b[j];
      for (int l = 0; l < c->k; l++)
        s += c->x[i * c->k + l] * c->w[j * c->k + l];
      c->out[i * c->n + j] = s;
    }
}

static double linear_loss(void *p) {
  linear_case *c = p;
  linear_ref(c);
  return dot_d(c->out, c->wo, (size_t)c->m * c->n);
}

static void run_linear(int m, int n, int k, uint64_t seed) {
  r1d_rng rng;
  r1d_rng_seed(&rng, seed);
  size_t nx = (size_t)m * k, nw = (size_t)n * k, ny = (size_t)m * n;
  linear_case c = {m,
                   n,
                   k,
                   rand_vec(&rng, nx, 1),
                   rand_vec(&rng, nw, 0.5),
                   rand_vec(&rng, n, 1),
                   rand_vec(&rng, ny, 1),
                   0};
  c.out = malloc(ny * sizeof(double));
  float *x = to_float(c.x, nx), *w = to_float(c.w, nw), *b = to_float(c.b, n);
  float *dy = to_float(c.wo, ny), *y = zeros(ny);
  r1d_cpu_linear(NULL, m, n, k, x, w, 0.0f, y);
  r1d_cpu_add_bias(NULL, m, n, b, y);
  linear_ref(&c);
  check_forward("linear", y, c.out, ny);

  float *dx = zeros(nx), *dw = zeros(nw), *db = zeros(n);
  r1d_cpu_linear_backward(NULL, m, n, k, x, w, dy, dx, dw, db);
  fd_input in[] = {{"x", c.x, nx, dx}, {"w", c.w, nw, dw}, {"b", c.b, n, db}};
  check_fd("linear", linear_loss, &c, in, 3, &rng);

  float *dx1 = copy_of(dx, nx), *dw1 = copy_of(dw, nw), *db1 = copy_of(db, n);
  r1d_cpu_linear_backward(NULL, m, n, k, x, w, dy, dx, dw, db);
  check_doubled("linear", "x", dx1, dx, nx);
  check_doubled("linear", "w", dw1, dw, nw);
  check_doubled("linear", "b", db1, db, n);
  /* NULL gradients are skipped, the others unaffected */
  float *dw_only = zeros(nw);
  r1d_cpu_linear_backward(NULL, m, n, k, x, w, dy, NULL, dw_only, NULL);
  check_doubled("linear", "w (alone)", dw_only, dw, nw);

  free(c.x), free(c.w), free(c.b), free(c.wo), free(c.out);
  free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
  free(dx1), free(dw1), free(db1), free(dw_only);
}

static void test_linear(void **state) {
  (void)state;
  run_linear(3, 5, 7, 1);
  run_linear(1, 4, 3, 2); /* one row: the decode shape */
  run_linear(17, 9, 13, 3);
}

/* ---- embedding: out[i,:] = table[ids[i],:] ---- */

typedef struct embedding_case {
  int n, dim;
  const int32_t *ids;
  double *table, *wo, *out;
} embedding_case;

static double embedding_loss(void *p) {
  embedding_case *c = p;
  for (int i = 0; i < c->n; i++)
    for (int j = 0; j < c->dim; j++)
      c->out[i * c->dim + j] = c->table[c->ids[i] * c->dim + j];
  return dot_d(c->out, c->wo, (size_t)c->n * c->dim);
}

static void test_embedding(void **state) {
  (void)state;
  r1d_rng rng;
  r1d_rng_seed(&rng, 11);
  /* id 3 three times, id 2 never: its row must keep a zero gradient */
  static const int32_t ids[] = {3, 1, 3, 0, 6, 3, 5};
  int n = 7, vocab = 7, dim = 69; /* > one 64-column block, odd */
  size_t nt = (size_t)vocab * dim, no = (size_t)n * dim;
  embedding_case c = {n,
                      dim,
                      ids,
                      rand_vec(&rng, nt, 1),
                      rand_vec(&rng, no, 1),
                      malloc(no * sizeof(double))};
  float *table = to_float(c.table, nt), *dout = to_float(c.wo, no);
  float *out = zeros(no);
  r1d_cpu_embedding(NULL, n, ids, table, dim, out);
  embedding_loss(&c);
  check_forward("embedding", out, c.out, no);

  float *dtable = zeros(nt);
  r1d_cpu_embedding_backward(NULL, n, ids, dim, dout, dtable);
  fd_input in[] = {{"table", c.table, nt, dtable}};
  check_fd("embedding", embedding_loss, &c, in, 1, &rng);
  for (int j = 0; j < dim; j++)
    assert_true(dtable[2 * dim + j] == 0.0f);

  float *once = copy_of(dtable, nt);
  r1d_cpu_embedding_backward(NULL, n, ids, dim, dout, dtable);
  check_doubled("embedding", "table", once, dtable, nt);
  free(c.table), free(c.wo), free(c.out);
  free(table), free(dout), free(out), free(dtable), free(once);
}

/* ---- rmsnorm ---- */

typedef struct rmsnorm_case {
  int n, dim;
  float eps;
  double *x, *w, *wo, *out;
} rmsnorm_case;

static double rmsnorm_loss(void *p) {
  rmsnorm_case *c = p;
  for (int i = 0; i < c->n; i++) {
    const double *xr = c->x + (size_t)i * c->dim;
    double ss = dot_d(xr, xr, (size_t)c->dim);
    double r = 1.0 / sqrt(ss / c->dim + c->eps);
    for (int j = 0; j < c->dim; j++)
      c->out[i * c->dim + j] = xr[j] * r * c->w[j];
  }
  return dot_d(c->out, c->wo, (size_t)c->n * c->dim);
}

static void run_rmsnorm(int n, int dim, double xscale, uint64_t seed) {
  r1d_rng rng;
  r1d_rng_seed(&rng, seed);
  size_t nx = (size_t)n * dim;
  rmsnorm_case c = {n,
                    dim,
                    1e-5f,
                    rand_vec(&rng, nx, xscale),
                    rand_vec(&rng, dim, 1),
                    rand_vec(&rng, nx, 1),
                    malloc(nx * sizeof(double))};
  float *x = to_float(c.x, nx), *w = to_float(c.w, dim);
  float *dout = to_float(c.wo, nx), *out = zeros(nx);
  r1d_cpu_rmsnorm(NULL, n, dim, x, w, c.eps, out);
  rmsnorm_loss(&c);
  check_forward("rmsnorm", out, c.out, nx);

  float *dx = zeros(nx), *dw = zeros(dim);
  r1d_cpu_rmsnorm_backward(NULL, n, dim, x, w, c.eps, dout, dx, dw);
  fd_input in[] = {{"x", c.x, nx, dx}, {"w", c.w, dim, dw}};
  check_fd("rmsnorm", rmsnorm_loss, &c, in, 2, &rng);

  float *dx1 = copy_of(dx, nx), *dw1 = copy_of(dw, dim);
  r1d_cpu_rmsnorm_backward(NULL, n, dim, x, w, c.eps, dout, dx, dw);
  check_doubled("rmsnorm", "x", dx1, dx, nx);
  check_doubled("rmsnorm", "w", dw1, dw, dim);
  free(c.x), free(c.w), free(c.wo), free(c.out);
  free(x), free(w), free(dout), free(out), free(dx), free(dw), free(dx1),
      free(dw1);
}

static void test_rmsnorm(void **state) {
  (void)state;
  run_rmsnorm(3, 7, 1.0, 21);
  run_rmsnorm(5, 1, 1.0, 22);
  run_rmsnorm(2, 33, 0.05, 23); /* small rows: the eps term matters */
}

/* ---- rope ---- */

typedef struct rope_case {
  int n, n_heads, head_dim;
  const int32_t *pos;
  const float *inv_freq;
  double *x, *wo, *out;
} rope_case;

static double rope_loss(void *p) {
  rope_case *c = p;
  int half = c->head_dim / 2;
  for (int i = 0; i < c->n; i++)
    for (int h = 0; h < c->n_heads; h++) {
      size_t o = ((size_t)i * c->n_heads + h) * c->head_dim;
      for (int j = 0; j < half; j++) {
        /* the op's own fp32 angle, so the rotation is the same one */
        float angle = (float)c->pos[i] * c->inv_freq[j];
        double cs = cosf(angle), sn = sinf(angle);
        double x1 = c->x[o + j], x2 = c->x[o + j + half];
        c->out[o + j] = x1 * cs - x2 * sn;
        c->out[o + j + half] = x2 * cs + x1 * sn;
      }
    }
  return dot_d(c->out, c->wo, (size_t)c->n * c->n_heads * c->head_dim);
}

static void test_rope(void **state) {
  (void)state;
  r1d_rng rng;
  r1d_rng_seed(&rng, 31);
  static const int32_t pos[] = {5, 0, 17};
  int n = 3, n_heads = 3, hd = 6;
  float inv_freq[3];
  for (int j = 0; j < hd / 2; j++)
    inv_freq[j] = (float)pow(10000.0, -2.0 * j / hd);
  size_t nx = (size_t)n * n_heads * hd;
  rope_case c = {n,
                 n_heads,
                 hd,
                 pos,
                 inv_freq,
                 rand_vec(&rng, nx, 1),
                 rand_vec(&rng, nx, 1),
                 malloc(nx * sizeof(double))};
  float *x = to_float(c.x, nx), *dout = to_float(c.wo, nx);
  r1d_cpu_rope(NULL, n, n_heads, hd, pos, inv_freq, x); /* in place */
  rope_loss(&c);
  check_forward("rope", x, c.out, nx);

  float *dx = zeros(nx);
  r1d_cpu_rope_backward(NULL, n, n_heads, hd, pos, inv_freq, dout, dx);
  fd_input in[] = {{"x", c.x, nx, dx}};
  check_fd("rope", rope_loss, &c, in, 1, &rng);

  float *once = copy_of(dx, nx);
  r1d_cpu_rope_backward(NULL, n, n_heads, hd, pos, inv_freq, dout, dx);
  check_doubled("rope", "x", once, dx, nx);
  free(c.x), free(c.wo), free(c.out);
  free(x), free(dout), free(dx), free(once);
}

/* ---- causal GQA attention ---- */

typedef struct attention_case {
  int n, start, n_heads, n_kv, hd;
  double *q, *k, *v, *wo, *out;
} attention_case;

static double attention_loss(void *p) {
  attention_case *c = p;
  int group = c->n_heads / c->n_kv, len_max = c->start + c->n;
  size_t qs = (size_t)c->n_heads * c->hd, ks = (size_t)c->n_kv * c->hd;
  double scale = 1.0 / sqrt(c->hd);
  double *w = malloc((size_t)len_max * sizeof(double));
  assert_non_null(w);
  for (int i = 0; i < c->n; i++)
    for (int h = 0; h < c->n_heads; h++) {
      const double *qi = c->q + i * qs + (size_t)h * c->hd;
      size_t ko = (size_t)(h / group) * c->hd;
      int len = c->start + i + 1;
      double m = -INFINITY, l = 0.0;
      for (int t = 0; t < len; t++) {
        w[t] = scale * dot_d(qi, c->k + t * ks + ko, (size_t)c->hd);
        if (w[t] > m) m = w[t];
      }
      for (int t = 0; t < len; t++)
        l += (w[t] = exp(w[t] - m));
      double *o = c->out + i * qs + (size_t)h * c->hd;
      for (int d = 0; d < c->hd; d++) {
        double s = 0.0;
        for (int t = 0; t < len; t++)
          s += w[t] / l * c->v[t * ks + ko + d];
        o[d] = s;
      }
    }
  free(w);
  return dot_d(c->out, c->wo, (size_t)c->n * qs);
}

static void run_attention(int n, int start, int n_heads, int n_kv, int hd,
                          uint64_t seed) {
  r1d_rng rng;
  r1d_rng_seed(&rng, seed);
  size_t nq = (size_t)n * n_heads * hd, nk = (size_t)(start + n) * n_kv * hd;
  attention_case c = {n,
                      start,
                      n_heads,
                      n_kv,
                      hd,
                      rand_vec(&rng, nq, 1),
                      rand_vec(&rng, nk, 1),
                      rand_vec(&rng, nk, 1),
                      rand_vec(&rng, nq, 1),
                      malloc(nq * sizeof(double))};
  float *q = to_float(c.q, nq), *k = to_float(c.k, nk), *v = to_float(c.v, nk);
  float *dout = to_float(c.wo, nq), *out = zeros(nq);
  r1d_cpu_attention(NULL, n, start, n_heads, n_kv, hd, q, k, v, out);
  attention_loss(&c);
  check_forward("attention", out, c.out, nq);

  float *dq = zeros(nq), *dk = zeros(nk), *dv = zeros(nk);
  r1d_cpu_attention_backward(NULL, n, start, n_heads, n_kv, hd, q, k, v, dout,
                             dq, dk, dv);
  fd_input in[] = {{"q", c.q, nq, dq}, {"k", c.k, nk, dk}, {"v", c.v, nk, dv}};
  check_fd("attention", attention_loss, &c, in, 3, &rng);

  float *dq1 = copy_of(dq, nq), *dk1 = copy_of(dk, nk), *dv1 = copy_of(dv, nk);
  r1d_cpu_attention_backward(NULL, n, start, n_heads, n_kv, hd, q, k, v, dout,
                             dq, dk, dv);
  check_doubled("attention", "q", dq1, dq, nq);
  check_doubled("attention", "k", dk1, dk, nk);
  check_doubled("attention", "v", dv1, dv, nk);
  free(c.q), free(c.k), free(c.v), free(c.wo), free(c.out);
  free(q), free(k), free(v), free(dout), free(out), free(dq), free(dk),
      free(dv), free(dq1), free(dk1), free(dv1);
}

static void test_attention(void **state) {
  (void)state;
  run_attention(4, 0, 4, 2, 6, 41);  /* GQA: 2 q heads per kv head */
  run_attention(3, 2, 2, 1, 5, 42);  /* a prefix (start > 0), odd head_dim */
  run_attention(5, 0, 3, 3, 9, 43);  /* MHA, head_dim past dot8's 8 lanes */
  run_attention(1, 4, 6, 2, 4, 44);  /* one query, GQA 3:1 */
  run_attention(20, 0, 2, 1, 8, 45); /* the forward's GEMM-tile path */
}

/* ---- swiglu ---- */

typedef struct swiglu_case {
  size_t n;
  double *gate, *up, *wo, *out;
} swiglu_case;

static double swiglu_loss(void *p) {
  swiglu_case *c = p;
  for (size_t i = 0; i < c->n; i++)
    c->out[i] = c->gate[i] / (1.0 + exp(-c->gate[i])) * c->up[i];
  return dot_d(c->out, c->wo, c->n);
}

static void test_swiglu(void **state) {
  (void)state;
  r1d_rng rng;
  r1d_rng_seed(&rng, 51);
  size_t n = 23;
  swiglu_case c = {n, rand_vec(&rng, n, 3), rand_vec(&rng, n, 1),
                   rand_vec(&rng, n, 1), malloc(n * sizeof(double))};
  float *gate = to_float(c.gate, n), *up = to_float(c.up, n);
  float *dout = to_float(c.wo, n), *out = zeros(n);
  r1d_cpu_swiglu(NULL, n, gate, up, out);
  swiglu_loss(&c);
  check_forward("swiglu", out, c.out, n);

  float *dgate = zeros(n), *dup = zeros(n);
  r1d_cpu_swiglu_backward(NULL, n, gate, up, dout, dgate, dup);
  fd_input in[] = {{"gate", c.gate, n, dgate}, {"up", c.up, n, dup}};
  check_fd("swiglu", swiglu_loss, &c, in, 2, &rng);

  float *dg1 = copy_of(dgate, n), *du1 = copy_of(dup, n);
  r1d_cpu_swiglu_backward(NULL, n, gate, up, dout, dgate, dup);
  check_doubled("swiglu", "gate", dg1, dgate, n);
  check_doubled("swiglu", "up", du1, dup, n);
  free(c.gate), free(c.up), free(c.wo), free(c.out);
  free(gate), free(up), free(dout), free(out), free(dgate), free(dup),
      free(dg1), free(du1);
}

/* ---- cross-entropy ---- */

typedef struct ce_case {
  int n, vocab;
  const int32_t *targets;
  double *logits, *logprob; /* logprob [n]: the reference's, per row */
} ce_case;

/* L = the mean loss itself (grad_scale 1) */
static double ce_loss(void *p) {
  ce_case *c = p;
  double total = 0.0;
  int counted = 0;
  for (int i = 0; i < c->n; i++) {
    c->logprob[i] = 0.0;
    if (c->targets[i] < 0) continue;
    const double *x = c->logits + (size_t)i * c->vocab;
    double m = x[0], s = 0.0;
    for (int j = 1; j < c->vocab; j++)
      if (x[j] > m) m = x[j];
    for (int j = 0; j < c->vocab; j++)
      s += exp(x[j] - m);
    c->logprob[i] = x[c->targets[i]] - m - log(s);
    total -= c->logprob[i];
    counted++;
  }
  return counted ? total / counted : 0.0;
}

static void test_cross_entropy(void **state) {
  (void)state;
  r1d_rng rng;
  r1d_rng_seed(&rng, 61);
  static const int32_t targets[] = {3, -1, 0, 12, 3, 7};
  int n = 6, vocab = 13;
  size_t nl = (size_t)n * vocab;
  ce_case c = {n, vocab, targets, rand_vec(&rng, nl, 2),
               malloc((size_t)n * sizeof(double))};
  float *logits = to_float(c.logits, nl), *dlogits = zeros(nl);
  float loss = NAN, logprob[6];
  r1d_cpu_cross_entropy(NULL, n, vocab, logits, targets, 1.0f, &loss, logprob,
                        dlogits);
  double want = ce_loss(&c);
  check_forward("cross_entropy loss", &loss, &want, 1);
  check_forward("cross_entropy logprob", logprob, c.logprob, (size_t)n);
  fd_input in[] = {{"logits", c.logits, nl, dlogits}};
  check_fd("cross_entropy", ce_loss, &c, in, 1, &rng);

  /* accumulation, and grad_scale scales the gradient: 1 + 1 = 2 x once */
  float *once = copy_of(dlogits, nl);
  r1d_cpu_cross_entropy(NULL, n, vocab, logits, targets, 1.0f, &loss, logprob,
                        dlogits);
  check_doubled("cross_entropy", "logits", once, dlogits, nl);
  float *half = zeros(nl);
  r1d_cpu_cross_entropy(NULL, n, vocab, logits, targets, 0.5f, &loss, logprob,
                        half);
  for (size_t i = 0; i < nl; i++)
    half[i] *= 4.0f; /* 4 x (0.5 x once) = 2 x once */
  check_doubled("cross_entropy", "logits (scale 0.5)", once, half, nl);
  free(c.logits), free(c.logprob), free(logits), free(dlogits), free(once),
      free(half);
}

/* Ignored targets (-1) add nothing: their dlogits rows are left as they were
 * (not even zeroed), their logprob is 0, and the loss is the mean over the
 * counted rows alone. No counted row at all: loss 0, nothing added. */
static void test_cross_entropy_ignored(void **state) {
  (void)state;
  r1d_rng rng;
  r1d_rng_seed(&rng, 71);
  int vocab = 9;
  static const int32_t targets[] = {-1, 2, -1, 5};
  static const int32_t kept_targets[] = {2, 5};
  double *ld = rand_vec(&rng, (size_t)4 * vocab, 2);
  float *logits = to_float(ld, (size_t)4 * vocab);
  float *kept = malloc((size_t)2 * vocab * sizeof(float));
  assert_non_null(kept);
  memcpy(kept, logits + vocab, (size_t)vocab * sizeof(float));
  memcpy(kept + vocab, logits + 3 * vocab, (size_t)vocab * sizeof(float));

  float *dlogits = malloc((size_t)4 * vocab * sizeof(float));
  assert_non_null(dlogits);
  for (int i = 0; i < 4 * vocab; i++)
    dlogits[i] = 1.0f;
  float loss, logprob[4];
  r1d_cpu_cross_entropy(NULL, 4, vocab, logits, targets, 1.0f, &loss, logprob,
                        dlogits);
  float *dkept = zeros((size_t)2 * vocab);
  float loss_kept, logprob_kept[2];
  r1d_cpu_cross_entropy(NULL, 2, vocab, kept, kept_targets, 1.0f, &loss_kept,
                        logprob_kept, dkept);
  assert_true(loss == loss_kept);
  assert_true(logprob[0] == 0.0f && logprob[2] == 0.0f);
  assert_true(logprob[1] == logprob_kept[0] && logprob[3] == logprob_kept[1]);
  double row_sum = 0.0;
  for (int j = 0; j < vocab; j++) {
    assert_true(dlogits[j] == 1.0f);             /* row 0 untouched */
    assert_true(dlogits[2 * vocab + j] == 1.0f); /* row 2 untouched */
    assert_true(dlogits[vocab + j] == 1.0f + dkept[j]);
    row_sum += dkept[j];
  }
  assert_true(fabs(row_sum) < 1e-6); /* softmax - onehot sums to 0 */

  static const int32_t none[] = {-1, -1, -1, -1};
  float *dnone = zeros((size_t)4 * vocab);
  r1d_cpu_cross_entropy(NULL, 4, vocab, logits, none, 1.0f, &loss, logprob,
                        dnone);
  assert_true(loss == 0.0f);
  for (int i = 0; i < 4 * vocab; i++)
    assert_true(dnone[i] == 0.0f);
  for (int i = 0; i < 4; i++)
    assert_true(logprob[i] == 0.0f);
  free(ld), free(logits), free(kept), free(dlogits), free(dkept), free(dnone);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_linear),
      cmocka_unit_test(test_embedding),
      cmocka_unit_test(test_rmsnorm),
      cmocka_unit_test(test_rope),
      cmocka_unit_test(test_attention),
      cmocka_unit_test(test_swiglu),
      cmocka_unit_test(test_cross_entropy),
      cmocka_unit_test(test_cross_entropy_ignored),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
