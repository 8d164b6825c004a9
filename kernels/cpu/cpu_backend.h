/* cpu_backend.h - the CPU reference backend: OpenBLAS for GEMM, OpenMP for
 * the element-wise and attention loops. Host memory throughout. */
#ifndef R1D_KERNELS_CPU_BACKEND_H
#define R1D_KERNELS_CPU_BACKEND_H

#include "../backend.h"

/* Fills *be with the CPU ops table. n_threads <= 0 keeps the OpenMP/OpenBLAS
 * defaults; otherwise both are limited to n_threads. Returns 0. */
int r1d_cpu_backend_init(r1d_backend *be, int n_threads);
void r1d_cpu_backend_destroy(r1d_backend *be);

#endif
