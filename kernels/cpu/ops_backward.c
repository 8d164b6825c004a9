/* ops_backward.c - gradients of linear, embedding, rmsnorm, rope, swiglu and
 * the fused softmax cross-entropy (attention is in ops_backward_attention.c).
 * Contracts in cpu_backward.h: every gradient is accumulated (+=).
 *
 * Determinism: a gradient element that sums over rows (dw, db, dtable) is
 * owned by one thread and summed in increasing row order, so results do not
 * depend on the thread count. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>

#include "cpu_backward.h"

/* ---- linear: y[m,n] = x[m,k] @ w[n,k]^T + b[n] ---- */

void r1d_cpu_linear_backward(void *ctx, int m, int n, int k, const float *x,
                             const float *w, const float *dy, float *dx,
                             float *dw, float *db) {
  (void)ctx;
  if (m <= 0 || n <= 0 || k <= 0) return;
  /* dx[m,k] += dy[m,n] @ w[n,k]   (beta 1: accumulate) */
  if (dx)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, n, 1.0f, dy, n,
                w, k, 1.0f, dx, k);
  /* dw[n,k] += dy[m,n]^T @ x[m,k] */
  if (dw)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, m, 1.0f, dy, n,
                x, k, 1.0f, dw, k);
  /* db[n] += column sums of dy; a column per iteration, rows in order */
  if (db) {
#pragma omp parallel for schedule(static)
    for (int j = 0; j < n; j++) {
      double s = 0.0;
      for (int i = 0; i < m; i++)
        s += dy[(size_t)i * n + j];
      db[j] += (float)s;
    }
  }
}

/* ---- embedding: out[i,:] = table[ids[i],:] ---- */

/* Columns per task: a thread owns a column block of every table row, so
 * repeated ids never race and each element sums its rows in order i. */
#define EMB_COLS 64

void r1d_cpu_embedding_backward(void *ctx, int n, const int32_t *ids, int dim,
                                const float *dout, float *dtable) {
  (void)ctx;
  int blocks = (dim + EMB_COLS - 1) / EMB_COLS;
#pragma omp parallel for schedule(static)
  for (int b = 0; b < blocks; b++) {
    int j0 = b * EMB_COLS, j1 = j0 + EMB_COLS < dim ? j0 + EMB_COLS : dim;
    for (int i = 0; i < n; i++) {
      const float *g = dout + (size_t)i * dim;
      float *t = dtable + (size_t)ids[i] * dim;
      for (int j = j0; j < j1; j++)
        t[j] += g[j];
    }
  }
}

/* ---- rmsnorm: out[i,:] = x[i,:] * r_i * w ---- */

/* r_i exactly as the forward computes it (mean of squares in double) */
static float rms_scale(const float *xr, int dim, float eps) {
  double ss = 0.0;
  for (int j = 0; j < dim; j++)
    ss += (double)xr[j] * xr[j];
  return (float)(1.0 / sqrt(ss / dim + (double)eps));
}

void r1d_cpu_rmsnorm_backward(void *ctx, int n, int dim, const float *x,
                              const float *w, float eps, const float *dout,
                              float *dx, float *dw) {
  (void)ctx;
  if (n <= 0 || dim <= 0) return;
  /* r per row, kept for dw's column pass. Without the scratch, the rows run
   * serially instead (same sums; dw then adds row by row in float). */
  float *r = malloc((size_t)n * sizeof(float));
  if (!r) {
    for (int i = 0; i < n; i++) {
      const float *xr = x + (size_t)i * dim, *gr = dout + (size_t)i * dim;
      float ri = rms_scale(xr, dim, eps);
      if (dx) {
        double dot = 0.0;
        for (int j = 0; j < dim; j++)
          dot += (double)gr[j] * w[j] * xr[j];
        float c = (float)(dot * ri * ri / dim);
        for (int j = 0; j < dim; j++)
          dx[(size_t)i * dim + j] += ri * (w[j] * gr[j] - xr[j] * c);
      }
      if (dw)
        for (int j = 0; j < dim; j++)
          dw[j] += gr[j] * xr[j] * ri;
    }
    return;
  }
  /* rows: r_i and dx[i,:] */
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; i++) {
    const float *xr = x + (size_t)i * dim, *gr = dout + (size_t)i * dim;
    r[i] = rms_scale(xr, dim, eps);
    if (!dx) continue;
    /* d r_i / d x_ij = -r_i^3 x_ij / dim, hence the row-wide dot product */
    double dot = 0.0;
    for (int j = 0; j < dim; j++)
      dot += (double)gr[j] * w[j] * xr[j];
    float c = (float)(dot * r[i] * r[i] / dim);
    float *dxr = dx + (size_t)i * dim;
    for (int j = 0; j < dim; j++)
      dxr[j] += r[i] * (w[j] * gr[j] - xr[j] * c);
  }
  /* columns: dw[j] sums over rows */
  if (dw) {
#pragma omp parallel for schedule(static)
    for (int j = 0; j < dim; j++) {
      double s = 0.0;
      for (int i = 0; i < n; i++)
        s += (double)dout[(size_t)i * dim + j] * x[(size_t)i * dim + j] * r[i];
      dw[j] += (float)s;
    }
  }
  free(r);
}

/* ---- rope: x[n, n_heads, head_dim] rotated in place by the forward ---- */

/* Forward, for j < d/2 with angle = pos * inv_freq[j]:
 *   o1 = x1 c - x2 s,  o2 = x2 c + x1 s
 * so, transposed:
 *   dx1 = d1 c + d2 s, dx2 = d2 c - d1 s
 * with the angle, cos and sin in fp32 as the forward has them. */
void r1d_cpu_rope_backward(void *ctx, int n, int n_heads, int head_dim,
                           const int32_t *pos, const float *inv_freq,
                           const float *dout, float *dx) {
  (void)ctx;
  int half = head_dim / 2;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; i++) {
    size_t row = (size_t)i * n_heads * head_dim;
    float p = (float)pos[i];
    for (int j = 0; j < half; j++) {
      float angle = p * inv_freq[j];
      float c = cosf(angle), s = sinf(angle);
      for (int h = 0; h < n_heads; h++) {
        const float *g = dout + row + (size_t)h * head_dim;
        float *d = dx + row + (size_t)h * head_dim;
        float g1 = g[j], g2 = g[j + half];
        d[j] += g1 * c + g2 * s;
        d[j + half] += g2 * c - g1 * s;
      }
    }
  }
}

/* ---- swiglu: out = silu(gate) * up ---- */

/* d silu(g)/dg = s + g s (1 - s) = s (1 + g (1 - s)),  s = sigmoid(g).
 * For very negative g, expf(-g) is inf and s is 0: both terms vanish. */
void r1d_cpu_swiglu_backward(void *ctx, size_t n, const float *gate,
                             const float *up, const float *dout, float *dgate,
                             float *dup) {
  (void)ctx;
  long long len = (long long)n;
#pragma omp parallel for schedule(static)
  for (long long i = 0; i < len; i++) {
    float g = gate[i];
    float s = 1.0f / (1.0f + expf(-g));
    if (dgate) dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
    if (dup) dup[i] += dout[i] * g * s;
  }
}

/* ---- fused softmax cross-entropy over logits[n, vocab] ---- */

void r1d_cpu_cross_entropy(void *ctx, int n, int vocab, const float *logits,
                           const int32_t *targets, float grad_scale,
                           float *loss, float *target_logprob, float *dlogits) {
  (void)ctx;
  int counted = 0;
  for (int i = 0; i < n; i++)
    counted += targets[i] >= 0;
  /* d(mean loss)/d logit, times the caller's upstream scale */
  double row_scale = counted ? (double)grad_scale / counted : 0.0;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; i++) {
    int t = targets[i];
    if (t < 0) {
      target_logprob[i] = 0.0f;
      continue;
    }
    const float *x = logits + (size_t)i * vocab;
    float m = x[0];
    for (int j = 1; j < vocab; j++)
      if (x[j] > m) m = x[j];
    double sum = 0.0;
    for (int j = 0; j < vocab; j++)
      sum += exp((double)x[j] - m);
    double lse = m + log(sum);
    target_logprob[i] = (float)((double)x[t] - lse);
    if (!dlogits) continue;
    float *d = dlogits + (size_t)i * vocab;
    for (int j = 0; j < vocab; j++) {
      double p = exp((double)x[j] - lse);
      d[j] += (float)(row_scale * (p - (j == t)));
    }
  }
  /* the mean, summed serially in row order for a reproducible loss */
  double total = 0.0;
  for (int i = 0; i < n; i++)
    if (targets[i] >= 0) total -= target_logprob[i];
  *loss = counted ? (float)(total / counted) : 0.0f;
}
