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
 * Nothing from the forward but q, k, v is needed. A row of up to ROW_CACHE
 * keys takes two passes over them: the first computes s_t and dP_t (two
 * dots) into a stack cache and the maximum m; then e_t = exp(s_t - m) once
 * per key (float exp, the normaliser l and D = sum_t e_t dP_t / l summed in
 * double); the second pass makes the three updates from the cache. A longer
 * row accumulates l and D online instead (rescaled when the running maximum
 * grows, double exp) and recomputes the two dots of the keys past the cache
 * in the second pass, so no length needs memory and the kernel cannot
 * fail.
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
        float m = -INFINITY;
        double l = 0.0, dsum = 0.0;
        if (len <= ROW_CACHE) {
          /* pass 1: scaled scores and dP, their maximum, then one exp
           * per key, kept in s_cache as e_t */
          for (int t = 0; t < len; t++) {
            float st =
                scale * r1d_cpu_dot8(qi, k + t * kv_stride + kv_off, head_dim);
            s_cache[t] = st;
            dp_cache[t] =
                r1d_cpu_dot8(gi, v + t * kv_stride + kv_off, head_dim);
            m = st > m ? st : m;
          }
          for (int t = 0; t < len; t++) {
            float e = expf(s_cache[t] - m);
            s_cache[t] = e;
            l += e;
            dsum += (double)e * dp_cache[t];
          }
        }
        /* a longer row: scores and dP with l and D online */
        for (int t = 0; len > ROW_CACHE && t < len; t++) {
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
          float e, dp;
          if (t < ROW_CACHE) {
            e = len <= ROW_CACHE ? s_cache[t] : expf(s_cache[t] - m);
            dp = dp_cache[t];
          } else {
            e = expf(scale * r1d_cpu_dot8(qi, kt, head_dim) - m);
            dp = r1d_cpu_dot8(gi, vt, head_dim);
          }
          float p = e * inv_l;
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
