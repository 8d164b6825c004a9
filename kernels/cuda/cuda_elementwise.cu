/* cuda_elementwise.cu - the memory-bound ops: bias add, residual add, SwiGLU,
 * embedding lookup (bf16 table to fp32 rows), row gather and the paged KV
 * write. Each is one grid-stride loop over elements, 256 threads a block;
 * consecutive threads touch consecutive addresses within a row.
 *
 * Flat indices are size_t and row offsets are computed in 64 bits: a KV pool
 * or an embedding table easily holds more than 2^31 floats. */
#include "cuda_internal.h"

#define EW_THREADS 256

#define GRID_STRIDE(i, total)                                                  \
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (total);  \
       i += (size_t)gridDim.x * blockDim.x)

/* x[m,n] += bias[n] */
__global__ void k_add_bias(size_t total, int n, const float *bias, float *x) {
  GRID_STRIDE(i, total) {
    x[i] += bias[i % (size_t)n];
  }
}

/* out[i] = a[i] + b[i]; each element reads only its own index, so out may
 * alias a or b */
__global__ void k_add(size_t total, const float *a, const float *b,
                      float *out) {
  GRID_STRIDE(i, total) {
    out[i] = a[i] + b[i];
  }
}

/* out[i] = silu(gate[i]) * up[i] in the CPU's order: (g * sig) * up, with
 * sig = 1 / (1 + exp(-g)) (exp overflows to inf for very negative g and
 * sig goes to 0, as on the CPU). */
__global__ void k_swiglu(size_t total, const float *gate, const float *up,
                         float *out) {
  GRID_STRIDE(i, total) {
    float g = gate[i];
    float sig = 1.0f / (1.0f + expf(-g));
    out[i] = __fmul_rn(__fmul_rn(g, sig), up[i]);
  }
}

/* out[i,:] = float(table[ids[i],:]); table [vocab, dim] bf16, out [n, dim] */
__global__ void k_embedding(size_t total, int dim, const int32_t *ids,
                            const __nv_bfloat16 *table, float *out) {
  GRID_STRIDE(i, total) {
    size_t row = i / (size_t)dim, d = i % (size_t)dim;
    out[i] = __bfloat162float(table[(size_t)ids[row] * (size_t)dim + d]);
  }
}

/* out[i,:] = x[rows[i],:]; x [*, dim], out [n, dim] */
__global__ void k_gather_rows(size_t total, int dim, const int32_t *rows,
                              const float *x, float *out) {
  GRID_STRIDE(i, total) {
    size_t row = i / (size_t)dim, d = i % (size_t)dim;
    out[i] = x[(size_t)rows[row] * (size_t)dim + d];
  }
}

/* k_cache[slots[i],:] = k[i,:], v_cache[slots[i],:] = v[i,:]; k, v
 * [n, kv_dim]; a negative slot skips the row */
__global__ void k_kv_write(size_t total, int kv_dim, const float *k,
                           const float *v, const int64_t *slots, float *k_cache,
                           float *v_cache) {
  GRID_STRIDE(i, total) {
    size_t row = i / (size_t)kv_dim, d = i % (size_t)kv_dim;
    int64_t slot = slots[row];
    if (slot < 0) continue;
    size_t at = (size_t)slot * (size_t)kv_dim + d;
    k_cache[at] = k[i];
    v_cache[at] = v[i];
  }
}

void r1d_cu_add_bias(void *ctx, int m, int n, const float *bias, float *x) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  size_t total = (size_t)(m > 0 ? m : 0) * (size_t)(n > 0 ? n : 0);
  if (total == 0 || r1d_cu_enter(c)) return;
  k_add_bias<<<r1d_cu_blocks(total, EW_THREADS), EW_THREADS, 0, c->stream>>>(
      total, n, bias, x);
  r1d_cu_launched(c, "add_bias");
}

void r1d_cu_add(void *ctx, size_t n, const float *a, const float *b,
                float *out) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (n == 0 || r1d_cu_enter(c)) return;
  k_add<<<r1d_cu_blocks(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(n, a, b,
                                                                    out);
  r1d_cu_launched(c, "add");
}

void r1d_cu_swiglu(void *ctx, size_t n, const float *gate, const float *up,
                   float *out) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (n == 0 || r1d_cu_enter(c)) return;
  k_swiglu<<<r1d_cu_blocks(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(n, gate,
                                                                       up, out);
  r1d_cu_launched(c, "swiglu");
}

void r1d_cu_embedding(void *ctx, int n, const int32_t *ids, const void *table,
                      int dim, float *out) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  size_t total = (size_t)(n > 0 ? n : 0) * (size_t)(dim > 0 ? dim : 0);
  if (total == 0 || r1d_cu_enter(c)) return;
  k_embedding<<<r1d_cu_blocks(total, EW_THREADS), EW_THREADS, 0, c->stream>>>(
      total, dim, ids, (const __nv_bfloat16 *)table, out);
  r1d_cu_launched(c, "embedding");
}

void r1d_cu_gather_rows(void *ctx, int n, int dim, const int32_t *rows,
                        const float *x, float *out) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  size_t total = (size_t)(n > 0 ? n : 0) * (size_t)(dim > 0 ? dim : 0);
  if (total == 0 || r1d_cu_enter(c)) return;
  k_gather_rows<<<r1d_cu_blocks(total, EW_THREADS), EW_THREADS, 0, c->stream>>>(
      total, dim, rows, x, out);
  r1d_cu_launched(c, "gather_rows");
}

void r1d_cu_kv_write(void *ctx, int n, int kv_dim, const float *k,
                     const float *v, const int64_t *slots, float *k_cache,
                     float *v_cache) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  size_t total = (size_t)(n > 0 ? n : 0) * (size_t)(kv_dim > 0 ? kv_dim : 0);
  if (total == 0 || r1d_cu_enter(c)) return;
  k_kv_write<<<r1d_cu_blocks(total, EW_THREADS), EW_THREADS, 0, c->stream>>>(
      total, kv_dim, k, v, slots, k_cache, v_cache);
  r1d_cu_launched(c, "kv_write");
}
