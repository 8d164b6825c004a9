/* ops_elementwise.c - the memory-bound ops: bias add, residual add, embedding
 * lookup, SwiGLU and row gather. One OpenMP loop each, static schedule so a
 * row always lands on the same thread for a given size (reproducible timing,
 * no scheduling overhead on these short loops). */
#include <math.h>
#include <string.h>

#include "cpu_ops.h"

/* x[m,n] += bias[n] */
void r1d_cpu_add_bias(void *ctx, int m, int n, const float *bias, float *x) {
  (void)ctx;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < m; i++) {
    float *row = x + (size_t)i * n;
    for (int j = 0; j < n; j++)
      row[j] += bias[j];
  }
}

/* out[n] = a[n] + b[n]; out may alias a or b (element i reads only index i) */
void r1d_cpu_add(void *ctx, size_t n, const float *a, const float *b,
                 float *out) {
  (void)ctx;
  long long len = (long long)n;
#pragma omp parallel for schedule(static)
  for (long long i = 0; i < len; i++)
    out[i] = a[i] + b[i];
}

/* out[i,:] = table[ids[i],:]; ids were range-checked by the caller */
void r1d_cpu_embedding(void *ctx, int n, const int32_t *ids, const void *table,
                       int dim, float *out) {
  (void)ctx;
  const float *rows = table; /* fp32: the CPU's weight format */
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; i++)
    memcpy(out + (size_t)i * dim, rows + (size_t)ids[i] * dim,
           (size_t)dim * sizeof(float));
}

/* out[i] = silu(gate[i]) * up[i], silu(x) = x * sigmoid(x) as torch has it.
 * For very negative x, expf(-x) overflows to inf and sigmoid goes to 0. */
void r1d_cpu_swiglu(void *ctx, size_t n, const float *gate, const float *up,
                    float *out) {
  (void)ctx;
  long long len = (long long)n;
#pragma omp parallel for schedule(static)
  for (long long i = 0; i < len; i++) {
    float g = gate[i];
    float sig = 1.0f / (1.0f + expf(-g));
    out[i] = g * sig * up[i];
  }
}

/* out[i,:] = x[rows[i],:]; picks the rows whose logits are needed (the last
 * token of each sequence) out of a whole step's hidden states. */
void r1d_cpu_gather_rows(void *ctx, int n, int dim, const int32_t *rows,
                         const float *x, float *out) {
  (void)ctx;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; i++)
    memcpy(out + (size_t)i * dim, x + (size_t)rows[i] * dim,
           (size_t)dim * sizeof(float));
}
