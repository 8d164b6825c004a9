/* cuda_backend.cu - the CUDA backend's shell: device and stream setup, the
 * memory ops, the sticky error and the ops table. The maths lives in one file
 * per op family (cuda_gemm.cu, cuda_elementwise.cu, cuda_norm_rope.cu,
 * cuda_attention.cu, cuda_sample.cu).
 *
 * One device, one non-blocking stream: every op is queued on it, so ops are
 * ordered among themselves and never with other streams of the process.
 * Upload and download are queued on the same stream and then wait for it, so
 * they see (and are seen by) every op queued before them, and the host buffer
 * may be reused as soon as they return. Only the runtime API is used (no
 * -lcuda), so the binary runs wherever libcudart and a driver are present. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

/* cuBLASLt workspace: enough for the algorithms the heuristic offers for our
 * shapes; split-K is switched off anyway (see cuda_gemm.cu). */
#define LT_WORKSPACE_BYTES ((size_t)32 << 20)

/* ---- sticky error ---- */

void r1d_cu_fail(r1d_cuda_ctx *c, const char *what, const char *detail) {
  if (c->failed) return;
  c->failed = 1;
  snprintf(c->fail_msg, sizeof c->fail_msg, "%s: %s", what, detail);
}

int r1d_cu_check(r1d_cuda_ctx *c, cudaError_t e, const char *what) {
  if (e == cudaSuccess) return 0;
  r1d_cu_fail(c, what, cudaGetErrorString(e));
  return 1;
}

int r1d_cu_check_blas(r1d_cuda_ctx *c, cublasStatus_t s, const char *what) {
  if (s == CUBLAS_STATUS_SUCCESS) return 0;
  char detail[64];
  snprintf(detail, sizeof detail, "cuBLAS status %d", (int)s);
  r1d_cu_fail(c, what, detail);
  return 1;
}

void r1d_cu_launched(r1d_cuda_ctx *c, const char *what) {
  r1d_cu_check(c, cudaGetLastError(), what);
}

int r1d_cu_enter(r1d_cuda_ctx *c) {
  if (c->failed) return -1;
  /* The current device is per host thread; the engine thread that runs the
   * ops need not be the one that called init. */
  if (r1d_cu_check(c, cudaSetDevice(c->device), "cudaSetDevice")) return -1;
  return 0;
}

unsigned r1d_cu_blocks(size_t total, unsigned threads) {
  size_t b = (total + threads - 1) / threads;
  if (b > 65536) b = 65536; /* grid-stride loops cover the rest */
  return b ? (unsigned)b : 1u;
}

void *r1d_cu_scratch(r1d_cuda_ctx *c, size_t bytes) {
  if (bytes <= c->scratch_bytes) return c->scratch;
  /* queued ops may still read the old buffer */
  if (r1d_cu_check(c, cudaStreamSynchronize(c->stream), "scratch: sync"))
    return NULL;
  cudaFree(c->scratch);
  c->scratch = NULL;
  c->scratch_bytes = 0;
  size_t want = bytes + bytes / 4; /* some headroom for growing batches */
  if (r1d_cu_check(c, cudaMalloc(&c->scratch, want), "scratch: cudaMalloc"))
    return NULL;
  c->scratch_bytes = want;
  return c->scratch;
}

/* ---- memory ops ---- */

static void *cu_alloc(void *ctx, size_t bytes) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (r1d_cu_enter(c)) return NULL;
  void *p = NULL;
  /* out of memory is the caller's to handle, not a device failure: the
   * runtime error is not sticky, so clear it rather than record it */
  if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
    (void)cudaGetLastError();
    return NULL;
  }
  return p;
}

static void cu_free(void *ctx, void *p) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (!p) return;
  cudaSetDevice(c->device);
  /* cudaFree waits for the device, so queued ops reading p finish first */
  r1d_cu_check(c, cudaFree(p), "cudaFree");
}

static int cu_upload(void *ctx, void *dst, const void *src, size_t bytes) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (r1d_cu_enter(c)) return R1D_EBACKEND;
  if (bytes == 0) return 0;
  if (r1d_cu_check(
          c,
          cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream),
          "upload: cudaMemcpyAsync") ||
      r1d_cu_check(c, cudaStreamSynchronize(c->stream), "upload: sync"))
    return R1D_EBACKEND;
  return 0;
}

static int cu_download(void *ctx, void *dst, const void *src, size_t bytes) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (r1d_cu_enter(c)) return R1D_EBACKEND;
  if (bytes > 0 &&
      r1d_cu_check(
          c,
          cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream),
          "download: cudaMemcpyAsync"))
    return R1D_EBACKEND;
  if (r1d_cu_check(c, cudaStreamSynchronize(c->stream), "download: sync"))
    return R1D_EBACKEND;
  return 0;
}

static void cu_copy(void *ctx, void *dst, const void *src, size_t bytes) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (r1d_cu_enter(c) || bytes == 0) return;
  r1d_cu_check(
      c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream),
      "copy: cudaMemcpyAsync");
}

static void cu_zero(void *ctx, void *p, size_t bytes) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (r1d_cu_enter(c) || bytes == 0) return;
  r1d_cu_check(c, cudaMemsetAsync(p, 0, bytes, c->stream),
               "zero: cudaMemsetAsync");
}

static int cu_sync(void *ctx) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  if (r1d_cu_enter(c)) return R1D_EBACKEND;
  if (r1d_cu_check(c, cudaStreamSynchronize(c->stream), "sync")) {
    return R1D_EBACKEND;
  }
  /* an asynchronous fault of an earlier launch surfaces here too */
  if (r1d_cu_check(c, cudaGetLastError(), "sync")) return R1D_EBACKEND;
  return 0;
}

/* The engine's thread makes the device current once; each op also does, as
 * a caller may use the backend from any thread. */
static void cu_attach_thread(void *ctx) {
  r1d_cuda_ctx *c = (r1d_cuda_ctx *)ctx;
  r1d_cu_check(c, cudaSetDevice(c->device), "cudaSetDevice");
}

/* ---- the table ---- */

static void fill_ops(r1d_backend_ops *o) {
  memset(o, 0, sizeof *o);
  o->name = "cuda";
  o->host_memory = 0;
  o->attach_thread = cu_attach_thread;
  o->weight_format = R1D_WEIGHT_BF16;
  o->alloc = cu_alloc;
  o->free = cu_free;
  o->upload = cu_upload;
  o->download = cu_download;
  o->copy = cu_copy;
  o->zero = cu_zero;
  o->sync = cu_sync;
  o->weight_upload = r1d_cu_weight_upload;
  o->matmul_nt = r1d_cu_matmul_nt;
  o->linear = r1d_cu_linear;
  o->add_bias = r1d_cu_add_bias;
  o->add = r1d_cu_add;
  o->embedding = r1d_cu_embedding;
  o->rmsnorm = r1d_cu_rmsnorm;
  o->rope = r1d_cu_rope;
  o->attention = r1d_cu_attention;
  o->swiglu = r1d_cu_swiglu;
  o->gather_rows = r1d_cu_gather_rows;
  o->kv_write = r1d_cu_kv_write;
  o->paged_attention = r1d_cu_paged_attention;
  o->logsumexp = r1d_cu_logsumexp;
  o->sample = r1d_cu_sample;
  o->linear_backward = r1d_cu_linear_backward;
  o->embedding_backward = r1d_cu_embedding_backward;
  o->rmsnorm_backward = r1d_cu_rmsnorm_backward;
  o->rope_backward = r1d_cu_rope_backward;
  o->attention_backward = r1d_cu_attention_backward;
  o->swiglu_backward = r1d_cu_swiglu_backward;
  o->cross_entropy = r1d_cu_cross_entropy;
  o->adamw = r1d_cu_adamw_step;
  o->sum_squares = r1d_cu_sum_squares;
  o->scale = r1d_cu_scale;
}

/* ---- public API (cuda_backend.h) ---- */

int r1d_cuda_built(void) {
  return 1;
}

static void release(r1d_cuda_ctx *c) {
  cudaSetDevice(c->device);
  if (c->stream) cudaStreamSynchronize(c->stream);
  r1d_cu_gemm_release(c);
  cudaFree(c->scratch);
  cudaFree(c->lt_ws);
  if (c->lt) cublasLtDestroy(c->lt);
  if (c->blas) cublasDestroy(c->blas);
  if (c->stream) cudaStreamDestroy(c->stream);
  free(c);
}

int r1d_cuda_backend_init(r1d_backend *be, int device, r1d_error *err) {
  be->ops = NULL;
  be->ctx = NULL;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return r1d_fail(err, R1D_ENOTFOUND, "CUDA device %d: no usable device (%s)",
                    device, cudaGetErrorString(e));
  }
  if (device < 0 || device >= count)
    return r1d_fail(err, R1D_ENOTFOUND,
                    "CUDA device %d not found (%d device%s present)", device,
                    count, count == 1 ? "" : "s");

  r1d_cuda_ctx *c = (r1d_cuda_ctx *)calloc(1, sizeof *c);
  if (!c)
    return r1d_fail(err, R1D_ENOMEM, "CUDA device %d: out of host memory",
                    device);
  c->device = device;
  c->train_compute = CUBLAS_COMPUTE_32F_PEDANTIC;
  const char *step = "cudaSetDevice";
  cublasStatus_t bs = CUBLAS_STATUS_SUCCESS;
  cudaDeviceProp prop;
  if ((e = cudaSetDevice(device)) != cudaSuccess) goto cuda_fail;
  step = "cudaGetDeviceProperties";
  if ((e = cudaGetDeviceProperties(&prop, device)) != cudaSuccess)
    goto cuda_fail;
  step = "cudaStreamCreate";
  if ((e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) !=
      cudaSuccess)
    goto cuda_fail;
  step = "cudaMalloc (cuBLASLt workspace)";
  if ((e = cudaMalloc(&c->lt_ws, LT_WORKSPACE_BYTES)) != cudaSuccess)
    goto cuda_fail;
  c->lt_ws_bytes = LT_WORKSPACE_BYTES;

  step = "cublasCreate";
  if ((bs = cublasCreate(&c->blas)) != CUBLAS_STATUS_SUCCESS) goto blas_fail;
  step = "cublasSetStream";
  if ((bs = cublasSetStream(c->blas, c->stream)) != CUBLAS_STATUS_SUCCESS)
    goto blas_fail;
  /* No TF32 behind our back: matmul_nt asks for pedantic fp32 explicitly,
   * linear's fallback for bf16 tensor cores with fp32 accumulation. */
  step = "cublasSetMathMode";
  if ((bs = cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH)) !=
      CUBLAS_STATUS_SUCCESS)
    goto blas_fail;
  step = "cublasLtCreate";
  if ((bs = cublasLtCreate(&c->lt)) != CUBLAS_STATUS_SUCCESS) goto blas_fail;

  snprintf(c->desc, sizeof c->desc,
           "cuda:%d %.200s, %.1f GiB, compute capability %d.%d, %d SMs", device,
           prop.name, (double)prop.totalGlobalMem / (1024.0 * 1024 * 1024),
           prop.major, prop.minor, prop.multiProcessorCount);
  fill_ops(&c->ops);
  be->ops = &c->ops;
  be->ctx = c;
  return 0;

cuda_fail:
  (void)cudaGetLastError();
  release(c);
  return r1d_fail(err, R1D_EBACKEND, "CUDA device %d: %s failed: %s", device,
                  step, cudaGetErrorString(e));
blas_fail:
  release(c);
  return r1d_fail(err, R1D_EBACKEND, "CUDA device %d: %s failed (status %d)",
                  device, step, (int)bs);
}

void r1d_cuda_backend_destroy(r1d_backend *be) {
  if (!be) return;
  if (be->ctx) release((r1d_cuda_ctx *)be->ctx);
  be->ops = NULL;
  be->ctx = NULL;
}

void r1d_cuda_backend_set_tf32(const r1d_backend *be, int on) {
  r1d_cuda_ctx *c = be ? (r1d_cuda_ctx *)be->ctx : NULL;
  if (c)
    c->train_compute =
        on ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F_PEDANTIC;
}

void r1d_cuda_backend_describe(const r1d_backend *be, char *buf, size_t len) {
  if (!buf || len == 0) return;
  const r1d_cuda_ctx *c = be ? (const r1d_cuda_ctx *)be->ctx : NULL;
  snprintf(buf, len, "%s", c ? c->desc : "");
}

const char *r1d_cuda_backend_error(const r1d_backend *be) {
  const r1d_cuda_ctx *c = be ? (const r1d_cuda_ctx *)be->ctx : NULL;
  return c && c->failed ? c->fail_msg : "";
}
