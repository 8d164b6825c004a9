/* ops_matmul.c - c[m,n] = a[m,k] @ b[n,k]^T + beta * c, through OpenBLAS.
 *
 * Linear layers store W as [out, in] (PyTorch), so y = x @ W^T is exactly
 * sgemm with B transposed; no weight is ever repacked. With beta == 0 BLAS
 * does not read c, so stale (even NaN) contents cannot leak in. */
#include <cblas.h>

#include "cpu_ops.h"

void r1d_cpu_matmul_nt(void *ctx, int m, int n, int k, const float *a,
                       const float *b, float beta, float *c) {
  (void)ctx;
  if (m <= 0 || n <= 0) return;
  if (m == 1) { /* decode: a matrix-vector product, GEMV's own kernel */
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, b, k, a, 1, beta, c,
                1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b,
              k, beta, c, n);
}

/* linear (row-invariant, our own kernel) is in ops_linear.c. */
