#!/bin/sh
# tests/kernels/cuda_sim/run.sh - runs the CUDA kernels' own source on the
# host (no GPU): shim.h maps each CUDA thread to a std::thread, __syncthreads
# to a block barrier and warp shuffles to a per-warp exchange (aborting on a
# full-mask shuffle with a lane gone), __shared__ to statics (one block at a
# time). A barrier reached by part of a block hangs, hence the timeouts.
# Compares against the CPU ops (kernels/cpu) and double references:
#   sim_sample     k_sample/k_logsumexp vs r1d_cpu_sample on random rows
#                  (ties, -inf, NaN, every top-k/top-p/min-p combination)
#   sim_minp       min_p > 1 with a tie at the max (keeps the first token)
#   sim_attention  k_attention paged and contiguous vs r1d_cpu_paged_attention
#                  (GQA, shuffled blocks, NaN past each query, head_dim
#                  64..256, group up to 16), paged == contiguous bit for bit
#   sim_misc       k_linear_rows, k_rmsnorm, k_rope, kv_write, embedding,
#                  add_bias
#   sim_blasmap    the cuBLAS argument mapping of linear/matmul_nt
#   sim_backward   the training backward kernels (cuda_backward.cu: rmsnorm,
#                  rope, swiglu, embedding, cross-entropy, GQA attention,
#                  linear's bias sum and GEMM mapping) vs kernels/cpu's
#                  backward ops, and k_adamw (cuda_optim.cu) vs rl/optim.c
#                  bit for bit
# Usage: tests/kernels/cuda_sim/run.sh [sample rows, default 60]
# Needs g++ with C++20 (std::barrier). Exit status 0 when all agree.
set -eu
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
SIM="$ROOT/tests/kernels/cuda_sim"
K="$ROOT/kernels/cuda"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cut_at() { # file, first line of the host part
  awk -v pat="$2" 'index($0, pat) == 1 {exit} {print}' "$1" |
    grep -v '#include "cuda_internal.h"'
}
cut_at "$K/cuda_sample.cu" "void r1d_cu_logsumexp" >"$W/sample_k.inc"
cut_at "$K/cuda_attention.cu" "static int att_shape_ok" >"$W/attention_k.inc"
cut_at "$K/cuda_norm_rope.cu" "void r1d_cu_rmsnorm" >"$W/norm_rope_k.inc"
cut_at "$K/cuda_elementwise.cu" "void r1d_cu_add_bias" >"$W/elementwise_k.inc"
cut_at "$K/cuda_backward.cu" "/* ---- host wrappers" >"$W/backward_k.inc"
cut_at "$K/cuda_optim.cu" "void r1d_cu_adamw(void" >"$W/optim_k.inc"
awk '/^typedef struct r1d_cu_adamw_scalars/{p=1} p{print} p&&/^}/{exit}' \
  "$K/cuda_internal.h" >"$W/adamw_scalars.inc"
awk '/^#define LIN_WARPS/{p=1} p{print} p&&/^}/{exit}' "$K/cuda_gemm.cu" \
  >"$W/linear_rows_k.inc"
cp "$K/cuda_reduce.h" "$SIM/shim.h" "$W/"
CC="gcc -std=c11 -D_GNU_SOURCE -O2 -I$ROOT"
CXX="g++ -std=c++20 -O2 -pthread -I$W -I$ROOT"
for f in ops_logits ops_paged ops_norm ops_rope; do
  $CC -c "$ROOT/kernels/cpu/$f.c" -o "$W/$f.o"
done
$CXX "$SIM/sim_sample.cpp" "$W/ops_logits.o" -lm -o "$W/sim_sample"
$CXX "$SIM/sim_minp.cpp" "$W/ops_logits.o" -lm -o "$W/sim_minp"
$CXX "$SIM/sim_attention.cpp" "$W/ops_paged.o" -lm -o "$W/sim_attention"
$CXX "$SIM/sim_misc.cpp" "$W/ops_norm.o" "$W/ops_rope.o" -lm -o "$W/sim_misc"
# the backward reference needs cblas: OpenBLAS, the OpenMP build where the
# project's build finds it (meson.build), else the default one
BLAS_DIR=/usr/lib/$(gcc -print-multiarch)/openblas-openmp
BLAS_INC=/usr/include/$(gcc -print-multiarch)/openblas-openmp
if [ -d "$BLAS_DIR" ]; then
  BLAS="-L$BLAS_DIR -Wl,-rpath,$BLAS_DIR -lopenblas"
else
  BLAS="-lopenblas"
fi
for f in kernels/cpu/ops_backward kernels/cpu/ops_backward_attention \
  kernels/cpu/ops_optim rl/optim common/status; do
  $CC -I"$BLAS_INC" -c "$ROOT/$f.c" -o "$W/$(basename $f).o"
done
$CXX "$SIM/sim_backward.cpp" "$W/ops_backward.o" "$W/ops_backward_attention.o" \
  "$W/ops_optim.o" "$W/optim.o" "$W/status.o" $BLAS -lm -o "$W/sim_backward"
gcc -O2 "$SIM/sim_blasmap.c" -lm -o "$W/sim_blasmap"
"$W/sim_blasmap"
timeout 300 "$W/sim_misc" | tail -1
# its whole report on a failure (a pipe into tail would hide the status)
if ! timeout 900 "$W/sim_backward" >"$W/backward.out"; then
  cat "$W/backward.out"
  exit 1
fi
tail -19 "$W/backward.out"
timeout 300 "$W/sim_minp"
timeout 600 "$W/sim_attention" | tail -1
timeout 900 "$W/sim_sample" "${1:-60}" | tail -1
