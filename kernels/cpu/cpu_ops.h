/* cpu_ops.h - private prototypes of the CPU kernels, one family per file,
 * gathered into the ops table by cpu_backend.c. Each follows the contract
 * written next to its pointer in kernels/backend.h; ctx is unused. */
#ifndef R1D_KERNELS_CPU_OPS_H
#define R1D_KERNELS_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>

/* ops_matmul.c */
void r1d_cpu_matmul_nt(void *ctx, int m, int n, int k, const float *a,
                       const float *b, float beta, float *c);

/* ops_elementwise.c */
void r1d_cpu_add_bias(void *ctx, int m, int n, const float *bias, float *x);
void r1d_cpu_add(void *ctx, size_t n, const float *a, const float *b,
                 float *out);
void r1d_cpu_embedding(void *ctx, int n, const int32_t *ids, const float *table,
                       int dim, float *out);
void r1d_cpu_swiglu(void *ctx, size_t n, const float *gate, const float *up,
                    float *out);

/* ops_norm.c */
void r1d_cpu_rmsnorm(void *ctx, int n, int dim, const float *x, const float *w,
                     float eps, float *out);

/* ops_rope.c */
void r1d_cpu_rope(void *ctx, int n, int n_heads, int head_dim,
                  const int32_t *pos, const float *inv_freq, float *x);

/* ops_attention.c */
void r1d_cpu_attention(void *ctx, int n, int start, int n_heads, int n_kv_heads,
                       int head_dim, const float *q, const float *k_cache,
                       const float *v_cache, float *out);

#endif
