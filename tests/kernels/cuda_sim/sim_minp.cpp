#include "shim.h"
/* Part of tests/kernels/cuda_sim (see run.sh). */
#include "sample_k.inc"
extern "C" void r1d_cpu_sample(void *, int, int, const float *, const float *,
                               const int32_t *, const float *, const float *,
                               const float *, int32_t *, float *);
int main() {
  float x[7] = {0, 5, 5, 1, -1, 2, 5};
  float t = 1, tp = 1, mp = 1.5f, u = 0.9f, lpc, lpg;
  int32_t tk = 0, tc, tg = -1;
  r1d_cpu_sample(nullptr, 1, 7, x, &t, &tk, &tp, &mp, &u, &tc, &lpc);
  launch(dim3(1), dim3(1024),
         [&] { k_sample(7, x, &t, &tk, &tp, &mp, &u, &tg, &lpg); });
  printf("min_p 1.5 with a 3-way tie at the max: cpu %d gpu %d %s\n", tc, tg,
         tc == tg ? "ok" : "FAIL");
  return tc != tg;
}
