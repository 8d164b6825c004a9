/* ops_rope.c - rotary position embedding with Hugging Face's half rotation:
 * dimension j pairs with j + d/2 (not with j+1 as in the original paper).
 *
 * For j < d/2, angle = pos * inv_freq[j]:
 *   out[j]       = x[j] * cos - x[j+d/2] * sin
 *   out[j + d/2] = x[j+d/2] * cos + x[j] * sin
 * The angle, cos and sin are computed in float32, the way transformers does
 * (inv_freq.float() @ position_ids.float(), then .cos()/.sin()), so long
 * prompts agree with it to the last bits rather than drifting with position.
 * Each (token, j) angle is computed once and applied to every head. */
#include <math.h>

#include "cpu_ops.h"

void r1d_cpu_rope(void *ctx, int n, int n_heads, int head_dim,
                  const int32_t *pos, const float *inv_freq, float *x) {
  (void)ctx;
  int half = head_dim / 2;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < n; i++) {
    float *row = x + (size_t)i * n_heads * head_dim;
    float p = (float)pos[i];
    for (int j = 0; j < half; j++) {
      float angle = p * inv_freq[j];
      float c = cosf(angle), s = sinf(angle);
      for (int h = 0; h < n_heads; h++) {
        float *v = row + (size_t)h * head_dim;
        float x1 = v[j], x2 = v[j + half];
        v[j] = x1 * c - x2 * s;
        v[j + half] = x2 * c + x1 * s;
      }
    }
  }
}
