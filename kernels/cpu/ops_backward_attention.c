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
 * Nothing from the forward but q, k, v is needed. Each row takes two passes
 * over its keys: the first computes s_t and dP_t (two dots) and keeps them
 * in a stack cache of ROW_CACHE keys, with the normaliser l and the sum
 * D = sum_t e^(s_t - m) dP_t / l accumulated online (rescaled when the
 * running maximum m grows); the second turns them into P_t and dS_t and
 * makes the three updates. Keys past the cache recompute their two dots in
 * the second pass, so no length needs memory and the kernel cannot fail.
 * l and D are summed in double.
 *
 * Parallelism: dk and dv rows are shared by every query head of a kv group
 * and every query position, so one task owns one kv head and walks its query
 * heads and positions in a fixed order: deterministic without atomics, at
 * the price of only n_kv_heads-way parallelism. */
#include <math.h>

#include "cpu_backward.h"
#include "cpu_ops.h"

enum { ROW_CACHE = 4096 }; /* keys whose s_t and dP_t a row keeps */

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
    float s_cache[ROW_CACHE], dp_cache[ROW_CACHE];
    for (int h = g * group; h < (g + 1) * group; h++) {
      for (int i = 0; i < n; i++) {
        const float *qi = q + (size_t)i * q_stride + (size_t)h * head_dim;
        const float *gi = dout + (size_t)i * q_stride + (size_t)h * head_dim;
        int len = start + i + 1; /* causal: keys 0 .. start+i */
        /* pass 1: scaled scores and dP, with l and D online */
        float m = -INFINITY;
        double l = 0.0, dsum = 0.0;
        for (int t = 0; t < len; t++) {
          const float *kt = k + t * kv_stride + kv_off;
          const float *vt = v + t * kv_stride + kv_off;
          float st = scale * r1d_cpu_dot8(qi, kt, head_dim);
          float dp = r1d_cpu_dot8(gi, vt, head_dim);
          if (t < ROW_CACHE) {
            s_cache[t] = st;
            dp_cache[t] = dp;
          }
          if (st > m) { /* the first key, or a new maximum: rescale */
            double r = exp((double)m - st);
            l *= r;
            dsum *= r;
            m = st;
          }
          double e = exp((double)st - m);
          l += e;
          dsum += e * dp;
        }
        dsum /= l;
        /* pass 2: P_t, dS_t and the updates */
        float *dqi = dq ? dq + (size_t)i * q_stride + (size_t)h * head_dim : 0;
        float inv_l = (float)(1.0 / l), d = (float)dsum;
        for (int t = 0; t < len; t++) {
          const float *kt = k + t * kv_stride + kv_off;
          const float *vt = v + t * kv_stride + kv_off;
          float st, dp;
          if (t < ROW_CACHE) {
            st = s_cache[t];
            dp = dp_cache[t];
          } else {
            st = scale * r1d_cpu_dot8(qi, kt, head_dim);
            dp = r1d_cpu_dot8(gi, vt, head_dim);
          }
          float p = expf(st - m) * inv_l;
          float ds = scale * p * (dp - d); /* scale folded in */
          if (dqi)
            for (int x = 0; x < head_dim; x++)
              dqi[x] += ds * kt[x];
          if (dk) {
            float *dkt = dk + t * kv_stride + kv_off;
            for (int x = 0; x < head_dim; x++)
              dkt[x] += ds * qi[x];
          }
          if (dv) {
            float *dvt = dv + t * kv_stride + kv_off;
            for (int x = 0; x < head_dim; x++)
              dvt[x] += p * gi[x];
          }
        }
      }
    }
  }
}
