/* cpu_backend.c - the CPU reference backend: the ops table over host memory.
 *
 * The CPU backend is the one every other backend is checked against, so its
 * kernels favour plain, readable loops (OpenMP over rows or heads) and leave
 * only GEMM to OpenBLAS. It keeps no state of its own: ctx is NULL. */
#include "cpu_backend.h"

#include <cblas.h> /* also declares openblas_set_num_threads */
#include <omp.h>
#include <stddef.h>

#include "cpu_ops.h"

static const r1d_backend_ops cpu_ops = {
    .name = "cpu",
    .matmul_nt = r1d_cpu_matmul_nt,
    .add_bias = r1d_cpu_add_bias,
    .add = r1d_cpu_add,
    .embedding = r1d_cpu_embedding,
    .rmsnorm = r1d_cpu_rmsnorm,
    .rope = r1d_cpu_rope,
    .attention = r1d_cpu_attention,
    .swiglu = r1d_cpu_swiglu,
};

int r1d_cpu_backend_init(r1d_backend *be, int n_threads) {
  /* Thread counts are process-wide settings of the two runtimes; we only
   * touch them when asked, so an embedding application keeps its own. */
  if (n_threads > 0) {
    omp_set_num_threads(n_threads);
    openblas_set_num_threads(n_threads);
  }
  be->ops = &cpu_ops;
  be->ctx = NULL;
  return 0;
}

void r1d_cpu_backend_destroy(r1d_backend *be) {
  if (!be) return;
  be->ops = NULL;
  be->ctx = NULL;
}
