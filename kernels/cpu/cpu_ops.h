/* cpu_ops.h - private prototypes of the CPU kernels, one family per file,
 * gathered into the ops table by cpu_backend.c. Each follows the contract
 * written next to its pointer in kernels/backend.h; ctx is unused. */
#ifndef R1D_KERNELS_CPU_OPS_H
#define R1D_KERNELS_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>

/* Eight independent partial sums combined pairwise in a fixed order: the
 * compiler may vectorise the lanes without -ffast-math (one running sum is a
 * serial dependency chain), and the result depends on nothing but the two
 * vectors and n, which is what makes attention batch-invariant. Shared by
 * ops_attention.c and ops_paged.c so both sum in the same order. */
static inline float r1d_cpu_dot8(const float *a, const float *b, int n) {
  float s[8] = {0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++)
      s[j] += a[i + j] * b[i + j];
  float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; i++)
    t += a[i] * b[i];
  return t;
}

/* ops_matmul.c */
void r1d_cpu_matmul_nt(void *ctx, int m, int n, int k, const float *a,
                       const float *b, float beta, float *c);

/* ops_linear.c */
void r1d_cpu_linear(void *ctx, int m, int n, int k, const float *x,
                    const void *w, float beta, float *y);

/* ops_elementwise.c */
void r1d_cpu_add_bias(void *ctx, int m, int n, const float *bias, float *x);
void r1d_cpu_add(void *ctx, size_t n, const float *a, const float *b,
                 float *out);
void r1d_cpu_embedding(void *ctx, int n, const int32_t *ids, const void *table,
                       int dim, float *out);
void r1d_cpu_swiglu(void *ctx, size_t n, const float *gate, const float *up,
                    float *out);
void r1d_cpu_gather_rows(void *ctx, int n, int dim, const int32_t *rows,
                         const float *x, float *out);

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

/* ops_paged.c */
void r1d_cpu_kv_write(void *ctx, int n, int kv_dim, const float *k,
                      const float *v, const int64_t *slots, float *k_cache,
                      float *v_cache);
void r1d_cpu_paged_attention(void *ctx, int n_q, const int32_t *q_seq,
                             const int32_t *q_pos, int max_pos,
                             const int32_t *block_tables, int max_blocks,
                             int block_size, int n_heads, int n_kv_heads,
                             int head_dim, const float *q, const float *k_cache,
                             const float *v_cache, float *out);

/* ops_logits.c */
void r1d_cpu_logsumexp(void *ctx, int n, int vocab, const float *x, float *lse);
void r1d_cpu_sample(void *ctx, int n, int vocab, const float *logits,
                    const float *temperature, const int32_t *top_k,
                    const float *top_p, const float *min_p, const float *u,
                    int32_t *token, float *logprob);

#endif
