/* cuda_backend.h - the CUDA backend: cuBLAS(Lt) GEMM (bf16 weights, fp32
 * accumulation) plus our own kernels for every other op of kernels/backend.h,
 * on one device and one stream. Built only with -Dcuda=enabled/auto and nvcc;
 * otherwise these functions exist and report that CUDA is not built in. */
#ifndef R1D_KERNELS_CUDA_BACKEND_H
#define R1D_KERNELS_CUDA_BACKEND_H

#include "../../common/status.h"
#include "../backend.h"

/* 1 when this binary was built with the CUDA backend. */
int r1d_cuda_built(void);

/* Opens device `device` (0-based): creates its stream and cuBLAS handles and
 * fills *be. Fails with R1D_EUNSUPPORTED when built without CUDA and
 * R1D_ENOTFOUND when no such device is present (message says which). */
int r1d_cuda_backend_init(r1d_backend *be, int device, r1d_error *err);
void r1d_cuda_backend_destroy(r1d_backend *be);

/* One line describing the device (name, memory, compute capability) into
 * buf; "" when not initialised. */
void r1d_cuda_backend_describe(const r1d_backend *be, char *buf, size_t len);

/* The training GEMMs' arithmetic (linear_backward's dx and dw): 0, the
 * default, is strict fp32 (CUBLAS_COMPUTE_32F_PEDANTIC: what the op tests
 * hold to 1e-5); 1 lets cuBLAS use TF32 tensor cores (10-bit mantissa
 * products, fp32 sums: ~1e-3 relative, PyTorch's allow_tf32). No effect
 * without CUDA. */
void r1d_cuda_backend_set_tf32(const r1d_backend *be, int on);

/* The first device failure recorded by the ops (after an op's sync, upload
 * or download returned R1D_EBACKEND), e.g. "paged_attention: an illegal
 * memory access was encountered"; "" when none or not initialised. */
const char *r1d_cuda_backend_error(const r1d_backend *be);

#endif
