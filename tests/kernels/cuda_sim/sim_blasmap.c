/* sim_blasmap.c - the column-major GEMM definition (as cuBLAS documents it)
 * applied to exactly the arguments cuda_gemm.cu passes, against row-major
 * y = x @ w^T + beta*y. Also the cuBLASLt layouts: A = w as (rows k, cols n,
 * ld k) with TRANSA = T; B = x as (k, m, ld k), N; C = D = y as (n, m, ld n). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
/* C[M,N] (col-major, ldc) = op(A) op(B) + beta C; op(A) is MxK */
static void gemm_cm(int ta, int tb, int M, int N, int K, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C,
                    int ldc) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int p = 0; p < K; p++) {
        double a = ta ? A[p + (size_t)i * lda] : A[i + (size_t)p * lda];
        double b = tb ? B[j + (size_t)p * ldb] : B[p + (size_t)j * ldb];
        s += a * b;
      }
      C[i + (size_t)j * ldc] = (float)(s + beta * C[i + (size_t)j * ldc]);
    }
}
int main(void) {
  int m = 5, n = 7, k = 3, bad = 0;
  float x[15], w[21], y[35], ref[35];
  for (int i = 0; i < 15; i++)
    x[i] = (float)(i % 4) - 1.5f;
  for (int i = 0; i < 21; i++)
    w[i] = (float)(i % 5) * 0.5f - 1;
  for (int i = 0; i < 35; i++)
    y[i] = ref[i] = (float)i;
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double s = 0;
      for (int p = 0; p < k; p++)
        s += (double)x[i * k + p] * w[j * k + p];
      ref[i * n + j] += (float)s; /* beta 1 */
    }
  /* cublasGemmEx(blas, T, N, n, m, k, 1, w, k, x, k, beta, y, n) */
  gemm_cm(1, 0, n, m, k, w, k, x, k, 1.0f, y, n);
  for (int i = 0; i < 35; i++)
    bad += fabsf(y[i] - ref[i]) > 1e-5f;
  printf("blas mapping: %d mismatches\n", bad);
  return bad;
}
