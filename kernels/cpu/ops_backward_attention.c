/* ops_backward_attention.c - gradient of causal GQA attention in the
 * contiguous training layout (contract in cpu_backward.h).
 *
 * For one query row q (head h, position p) with keys/values t = 0..p:
 *   s_t = scale q.k_t,  P_t = softmax(s)_t,  o = sum_t P_t v_t
 * and upstream gradient g = dL/do:
 *   dP_t = g.v_t,  D = sum_t P_t dP_t  (= g.o),  dS_t = P_t (dP_t - D)
 *   dq  += scale sum_t dS_t k_t
 *   dk_t += scale dS_t q,   dv_t += P_t g
 *
 * Nothing from the forward but q, k, v is needed: each row recomputes its
 * scores in three passes over its keys (max and normaliser; D; then the
 * updates), so the kernel needs no memory and cannot fail. Normaliser and D
 * are summed in double.
 *
 * Parallelism: dk and dv rows are shared by every query head of a kv group
 * and every query position, so one task owns one kv head and walks its query
 * heads and positions in a fixed order: deterministic without atomics, at
 * the price of only n_kv_heads-way parallelism. A faster kernel (saving the
 * row's log-sum-exp, as flash attention does) can come with the CUDA twin. */
#include <math.h>

#include "cpu_backward.h"
#include "cpu_ops.h"

void r1d_cpu_attention_backward(void *ctx, int n, int start, int n_heads,
                                int n_kv_heads, int head_dim, const float *q,
                                const float *k, const float *v,
                                const float *dout, float *dq, float *dk,
                                float *dv) {
  (void)ctx;
  int group = n_heads / n_kv_heads;
  size_t q_stride = (size_t)n_heads * head_dim;     /* floats per q/out row */
  size_t kv_stride = (size_t)n_kv_heads * head_dim; /* floats per k/v row */
  float scale = 1.0f / sqrtf((float)head_dim);
#pragma omp parallel for schedule(static)
  for (int g = 0; g < n_kv_heads; g++) {
    size_t kv_off = (size_t)g * head_dim;
    for (int h = g * group; h < (g + 1) * group; h++) {
      for (int i = 0; i < n; i++) {
        const float *qi = q + (size_t)i * q_stride + (size_t)h * head_dim;
        const float *gi = dout + (size_t)i * q_stride + (size_t)h * head_dim;
        int len = start + i + 1; /* causal: keys 0 .. start+i */
        /* pass 1: max score and softmax normaliser */
        float m = -INFINITY;
        for (int t = 0; t < len; t++) {
          float s = r1d_cpu_dot8(qi, k + t * kv_stride + kv_off, head_dim);
          if (s * scale > m) m = s * scale;
        }
        double l = 0.0;
        for (int t = 0; t < len; t++) {
          float s = r1d_cpu_dot8(qi, k + t * kv_stride + kv_off, head_dim);
          l += exp((double)(s * scale) - m);
        }
        /* pass 2: D = sum_t P_t (g . v_t) */
        double dsum = 0.0;
        for (int t = 0; t < len; t++) {
          float s = r1d_cpu_dot8(qi, k + t * kv_stride + kv_off, head_dim);
          double p = exp((double)(s * scale) - m) / l;
          dsum += p * r1d_cpu_dot8(gi, v + t * kv_stride + kv_off, head_dim);
        }
        /* pass 3: the updates */
        float *dqi = dq ? dq + (size_t)i * q_stride + (size_t)h * head_dim : 0;
        for (int t = 0; t < len; t++) {
          const float *kt = k + t * kv_stride + kv_off;
          const float *vt = v + t * kv_stride + kv_off;
          float s = r1d_cpu_dot8(qi, kt, head_dim);
          float p = (float)(exp((double)(s * scale) - m) / l);
          float dp = r1d_cpu_dot8(gi, vt, head_dim);
          float ds = scale * p * (dp - (float)dsum); /* scale folded in */
          if (dqi)
            for (int d = 0; d < head_dim; d++)
              dqi[d] += ds * kt[d];
          if (dk) {
            float *dkt = dk + t * kv_stride + kv_off;
            for (int d = 0; d < head_dim; d++)
              dkt[d] += ds * qi[d];
          }
          if (dv) {
            float *dvt = dv + t * kv_stride + kv_off;
            for (int d = 0; d < head_dim; d++)
              dvt[d] += p * gi[d];
          }
        }
      }
    }
  }
}
