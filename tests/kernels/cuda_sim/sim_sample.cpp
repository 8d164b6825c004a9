/* sim_sample.cpp - k_sample / k_logsumexp (the real source, run by shim.h)
 * against the CPU reference r1d_cpu_sample / r1d_cpu_logsumexp on random
 * rows with ties, -inf, NaN and every filter combination. */
/* the shim first, then the kernel source it makes compile */
#include "shim.h"

#include "sample_k.inc"
extern "C" {
void r1d_cpu_sample(void *ctx, int n, int vocab, const float *logits,
                    const float *temperature, const int32_t *top_k,
                    const float *top_p, const float *min_p, const float *u,
                    int32_t *token, float *logprob);
void r1d_cpu_logsumexp(void *ctx, int n, int vocab, const float *x, float *lse);
}
static uint64_t st = 88172645463325252ull;
static double unit() {
  st ^= st << 13;
  st ^= st >> 7;
  st ^= st << 17;
  return (double)(st >> 11) / 9007199254740992.0;
}
int main(int argc, char **argv) {
  int rows = argc > 1 ? atoi(argv[1]) : 200;
  const int vocabs[] = {7, 300, 1000, 4099};
  const float temps[] = {0.0f, 1e-6f, 0.3f, 0.7f, 1.0f, 2.0f};
  const int topks[] = {0, -1, 1, 2, 3, 50, 1 << 30};
  const float topps[] = {1.0f, 0.95f, 0.5f, 0.1f, 1e-6f, 0.0f, 1.5f};
  const float minps[] = {0.0f, 0.0f, 0.05f, 0.3f, 1.0f, 1.5f};
  long bad = 0, lp_bad = 0, lse_bad = 0;
  for (int r = 0; r < rows; r++) {
    int vocab = vocabs[r % 4];
    std::vector<float> x(vocab);
    int mode = (int)(unit() * 4);
    for (int j = 0; j < vocab; j++) {
      float v = (float)(unit() * 8 - 4);
      if (mode == 1) v = (float)(int)(v * 2) / 2; /* many ties */
      if (mode == 2 && unit() < 0.3) v = -INFINITY;
      if (mode == 3 && unit() < 0.05) v = NAN;
      x[j] = v;
    }
    if (unit() < 0.3) { /* a few peaks */
      for (int p = 0; p < 4; p++)
        x[(int)(unit() * vocab)] = 6.0f + (float)p * 0.5f;
    }
    float t = temps[(int)(unit() * 6)], tp = topps[(int)(unit() * 7)];
    float mp = minps[(int)(unit() * 6)], u = (float)unit();
    int tk = topks[(int)(unit() * 7)];
    int32_t tok_cpu, tok_gpu = -7;
    float lp_cpu, lp_gpu = NAN, lse_cpu, lse_gpu = NAN;
    r1d_cpu_sample(nullptr, 1, vocab, x.data(), &t, &tk, &tp, &mp, &u, &tok_cpu,
                   &lp_cpu);
    r1d_cpu_logsumexp(nullptr, 1, vocab, x.data(), &lse_cpu);
    launch(dim3(1), dim3(1024), [&] {
      k_sample(vocab, x.data(), &t, &tk, &tp, &mp, &u, &tok_gpu, &lp_gpu);
    });
    launch(dim3(1), dim3(1024),
           [&] { k_logsumexp(vocab, x.data(), &lse_gpu); });
    if (tok_cpu != tok_gpu) {
      bad++;
      printf("row %d vocab %d mode %d T %g k %d p %g minp %g u %.9g: cpu %d "
             "gpu %d\n",
             r, vocab, mode, t, tk, tp, mp, u, tok_cpu, tok_gpu);
    } else if (!(fabsf(lp_cpu - lp_gpu) <= 1e-5f * (1 + fabsf(lp_cpu))) &&
               !(isnan(lp_cpu) && isnan(lp_gpu)) && lp_cpu != lp_gpu) {
      lp_bad++;
      printf("row %d logprob cpu %.9g gpu %.9g\n", r, lp_cpu, lp_gpu);
    }
    if (!(fabsf(lse_cpu - lse_gpu) <= 1e-5f * (1 + fabsf(lse_cpu))) &&
        lse_cpu != lse_gpu && !(isnan(lse_cpu) && isnan(lse_gpu))) {
      lse_bad++;
      printf("row %d lse cpu %.9g gpu %.9g\n", r, lse_cpu, lse_gpu);
    }
  }
  printf("sample: %d rows, %ld token mismatches, %ld logprob, %ld lse\n", rows,
         bad, lp_bad, lse_bad);
  return bad || lp_bad || lse_bad;
}
