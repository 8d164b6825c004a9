/* cpu_backend.c - the CPU reference backend: the ops table over host memory.
 *
 * The CPU backend is the one every other backend is checked against, so its
 * kernels favour plain, readable loops (OpenMP over rows or heads) and leave
 * only GEMM to OpenBLAS. It keeps no state of its own: ctx is NULL.
 *
 * Memory ops are trivial here (buffers are host memory, ops run
 * synchronously) but the engine still calls them, so code written against
 * the table runs unchanged on a device backend. */
#include "cpu_backend.h"

#include <cblas.h> /* also declares openblas_set_num_threads */
#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_backward.h"
#include "cpu_ops.h"

/* 64-byte alignment: a cache line, and what AVX-512 loads like. A zero-byte
 * request still gets a real (freeable) pointer. */
static void *cpu_alloc(void *ctx, size_t bytes) {
  (void)ctx;
  void *p = NULL;
  if (posix_memalign(&p, 64, bytes ? bytes : 1) != 0) return NULL;
  return p;
}

static void cpu_free(void *ctx, void *p) {
  (void)ctx;
  free(p);
}

static int cpu_upload(void *ctx, void *dst, const void *src, size_t bytes) {
  (void)ctx;
  if (bytes) memcpy(dst, src, bytes);
  return 0;
}

static int cpu_download(void *ctx, void *dst, const void *src, size_t bytes) {
  (void)ctx;
  if (bytes) memcpy(dst, src, bytes);
  return 0;
}

static void cpu_copy(void *ctx, void *dst, const void *src, size_t bytes) {
  (void)ctx;
  if (bytes) memcpy(dst, src, bytes);
}

static void cpu_zero(void *ctx, void *p, size_t bytes) {
  (void)ctx;
  memset(p, 0, bytes);
}

static int cpu_sync(void *ctx) {
  (void)ctx;
  return 0; /* every op has finished when it returns */
}

/* fp32 is the CPU's weight format: a plain aligned copy. */
static void *cpu_weight_upload(void *ctx, const float *src, size_t n) {
  float *p = cpu_alloc(ctx, n * sizeof(float));
  if (p && n) memcpy(p, src, n * sizeof(float));
  return p;
}

/* OpenMP's thread count belongs to the thread that sets it: a thread the
 * backend was not initialised on (the engine's) sets it again here. The
 * count travels in ctx itself, so the backend needs no allocation. */
static void cpu_attach_thread(void *ctx) {
  int n_threads = (int)(intptr_t)ctx;
  if (n_threads > 0) omp_set_num_threads(n_threads);
}

static const r1d_backend_ops cpu_ops = {
    .name = "cpu",
    .attach_thread = cpu_attach_thread,
    .host_memory = 1,
    .weight_format = R1D_WEIGHT_F32,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .weight_upload = cpu_weight_upload,
    .matmul_nt = r1d_cpu_matmul_nt,
    .linear = r1d_cpu_linear,
    .add_bias = r1d_cpu_add_bias,
    .add = r1d_cpu_add,
    .embedding = r1d_cpu_embedding,
    .rmsnorm = r1d_cpu_rmsnorm,
    .rope = r1d_cpu_rope,
    .attention = r1d_cpu_attention,
    .swiglu = r1d_cpu_swiglu,
    .gather_rows = r1d_cpu_gather_rows,
    .kv_write = r1d_cpu_kv_write,
    .paged_attention = r1d_cpu_paged_attention,
    .logsumexp = r1d_cpu_logsumexp,
    .sample = r1d_cpu_sample,
    .linear_backward = r1d_cpu_linear_backward,
    .embedding_backward = r1d_cpu_embedding_backward,
    .rmsnorm_backward = r1d_cpu_rmsnorm_backward,
    .rope_backward = r1d_cpu_rope_backward,
    .attention_backward = r1d_cpu_attention_backward,
    .swiglu_backward = r1d_cpu_swiglu_backward,
    .cross_entropy = r1d_cpu_cross_entropy,
    .adamw = r1d_cpu_adamw,
    .sum_squares = r1d_cpu_sum_squares,
    .scale = r1d_cpu_scale,
};

int r1d_cpu_backend_init(r1d_backend *be, int n_threads) {
  /* We only touch the runtimes' thread counts when asked, so an embedding
   * application keeps its own. OpenBLAS's is process-wide. */
  if (n_threads > 0) {
    omp_set_num_threads(n_threads);
    openblas_set_num_threads(n_threads);
  }
  be->ops = &cpu_ops;
  be->ctx = (void *)(intptr_t)(n_threads > 0 ? n_threads : 0);
  return 0;
}

void r1d_cpu_backend_destroy(r1d_backend *be) {
  if (!be) return;
  be->ops = NULL;
  be->ctx = NULL;
}
