/* bench_linear.c - the row-invariant CPU linear (kernels/cpu/ops_linear.c)
 * against OpenBLAS sgemm/sgemv in the same run, plus a bitwise row-invariance
 * check over edge shapes.
 *
 *   bench_linear [--threads N] [--reps R] [--check-only] [--cpu-time]
 *
 * Prints, per (m, n, k), GFLOP/s of r1d_cpu_linear and of OpenBLAS (sgemv at
 * m = 1, sgemm otherwise) and their ratio. Before timing, it checks that for
 * m = 1..70 and shapes whose n and k are not multiples of any tile or vector
 * width (k below the vector width too) every row of a batched call equals,
 * bit for bit, the same row computed alone (m = 1), with beta 0 and 1, and
 * that every output element was written (outputs are poisoned with NaN).
 * Exits 1 when a check fails. Random inputs (fixed seed): timing zeros would
 * flatter nothing here, but a wrong kernel can look fast on them. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cpu/cpu_ops.h"

/* from OpenBLAS; declared here because not every cblas.h has it */
void openblas_set_num_threads(int n);

/* --cpu-time: this thread's CPU time, which time slices lost to other
 * processes on a busy machine do not inflate (meaningful with --threads 1). */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now(void) {
  struct timespec ts;
  clock_gettime(bench_clock, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (float)((rng_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static float *rand_buf(size_t n) {
  float *p = malloc(n * sizeof(float) + 64);
  if (!p) {
    fprintf(stderr, "bench_linear: out of memory\n");
    exit(2);
  }
  for (size_t i = 0; i < n; i++)
    p[i] = frand();
  return p;
}

/* Batched rows vs rows alone, bitwise; returns the number of failures. */
static int check_shape(int n, int k, int max_m) {
  float *x = rand_buf((size_t)max_m * k), *w = rand_buf((size_t)n * k);
  float *y0 = rand_buf((size_t)max_m * n), *y = malloc((size_t)max_m * n * 4);
  int fails = 0;
  /* each row alone, beta 0 and beta 1 over y0 */
  float *ref0 = malloc((size_t)max_m * n * 4),
        *ref1 = malloc((size_t)max_m * n * 4);
  for (int i = 0; i < max_m; i++) {
    float *r0 = ref0 + (size_t)i * n, *r1 = ref1 + (size_t)i * n;
    for (int j = 0; j < n; j++)
      r0[j] = NAN;
    r1d_cpu_linear(NULL, 1, n, k, x + (size_t)i * k, w, 0.0f, r0);
    memcpy(r1, y0 + (size_t)i * n, (size_t)n * 4);
    r1d_cpu_linear(NULL, 1, n, k, x + (size_t)i * k, w, 1.0f, r1);
  }
  /* the first row alone against a double reference: catches a kernel that
   * is consistent but wrong */
  for (int j = 0; j < n; j++) {
    double s = 0, mag = 0;
    for (int kk = 0; kk < k; kk++) {
      s += (double)x[kk] * w[(size_t)j * k + kk];
      mag += fabs((double)x[kk] * w[(size_t)j * k + kk]);
    }
    if (fabs(ref0[j] - s) > 1e-5 * mag + 1e-30 || isnan(ref0[j])) {
      printf("FAIL accuracy n=%d k=%d j=%d: %.9g vs %.9g\n", n, k, j, ref0[j],
             s);
      fails++;
      break;
    }
  }
  for (int m = 1; m <= max_m; m++) {
    for (int beta = 0; beta <= 1; beta++) {
      if (beta)
        memcpy(y, y0, (size_t)m * n * 4);
      else
        for (size_t e = 0; e < (size_t)m * n; e++)
          y[e] = NAN;
      r1d_cpu_linear(NULL, m, n, k, x, w, (float)beta, y);
      const float *ref = beta ? ref1 : ref0;
      if (memcmp(y, ref, (size_t)m * n * 4) != 0) {
        size_t e = 0;
        while (e < (size_t)m * n && !memcmp(y + e, ref + e, 4))
          e++;
        printf("FAIL invariance m=%d n=%d k=%d beta=%d: row %zu col %zu "
               "%.9g vs alone %.9g\n",
               m, n, k, beta, e / n, e % n, y[e], ref[e]);
        fails++;
      }
    }
  }
  free(x), free(w), free(y0), free(y), free(ref0), free(ref1);
  return fails;
}

static int run_checks(void) {
  static const int shapes[][2] = {
      {1, 1},     {3, 5},     {17, 15},  {33, 16},   {5, 17},    {64, 64},
      {67, 129},  {130, 47},  {31, 200}, {257, 513}, {100, 768}, {19, 1031},
      {272, 768}, {40, 2304}, {9, 2400}, {70, 1600}};
  int fails = 0;
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    fails += check_shape(shapes[s][0], shapes[s][1], 70);
  printf("invariance check over m = 1..70, %zu shapes: %s\n",
         sizeof shapes / sizeof shapes[0], fails ? "FAIL" : "PASS");
  return fails;
}

/* Median-free but warm: best of reps after one warm-up call. */
static double time_call(int ours, int m, int n, int k, const float *x,
                        const float *w, float *y, int reps) {
  double best = 1e30;
  for (int r = 0; r <= reps; r++) {
    double t0 = now();
    if (ours)
      r1d_cpu_linear(NULL, m, n, k, x, w, 0.0f, y);
    else if (m == 1)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, w, k, x, 1, 0.0f, y,
                  1);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k,
                  w, k, 0.0f, y, n);
    double t = now() - t0;
    if (r > 0 && t < best) best = t;
  }
  return best;
}

int main(int argc, char **argv) {
  int threads = 2, reps = 0, check_only = 0;
  for (int a = 1; a < argc; a++) {
    if (!strcmp(argv[a], "--threads") && a + 1 < argc)
      threads = atoi(argv[++a]);
    else if (!strcmp(argv[a], "--reps") && a + 1 < argc)
      reps = atoi(argv[++a]);
    else if (!strcmp(argv[a], "--check-only"))
      check_only = 1;
    else if (!strcmp(argv[a], "--cpu-time"))
      bench_clock = CLOCK_THREAD_CPUTIME_ID;
    else {
      fprintf(stderr, "usage: bench_linear [--threads N] [--reps R] "
                      "[--check-only] [--cpu-time]\n");
      return 2;
    }
  }
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  if (run_checks()) return 1;
  if (check_only) return 0;

  static const int nk[][2] = {{2304, 768}, {768, 2304}, {256, 768}, {272, 768}};
  static const int ms[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
  printf("threads %d\n%5s %5s %5s %10s %10s %6s\n", threads, "m", "n", "k",
         "ours GF/s", "blas GF/s", "ratio");
  for (size_t s = 0; s < sizeof nk / sizeof nk[0]; s++) {
    int n = nk[s][0], k = nk[s][1];
    float *x = rand_buf((size_t)512 * k), *w = rand_buf((size_t)n * k);
    float *y = rand_buf((size_t)512 * n);
    for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
      int m = ms[mi];
      double flop = 2.0 * m * n * k;
      /* about 0.2 s per measurement */
      int r = reps > 0 ? reps : (int)(2e10 / 100.0 / flop) + 3;
      if (r > 2000) r = 2000;
      double to = time_call(1, m, n, k, x, w, y, r);
      double tb = time_call(0, m, n, k, x, w, y, r);
      printf("%5d %5d %5d %10.1f %10.1f %6.2f\n", m, n, k, flop / to * 1e-9,
             flop / tb * 1e-9, tb / to);
      fflush(stdout);
    }
    free(x), free(w), free(y);
  }
  return 0;
}
