#!/bin/sh
# tests/gpu/bundle.sh - builds the GPU check's binaries here (CUDA enabled,
# x86-64-v3 (AVX2) instead of -march=native, so they run on another host) and copies the shared
# libraries they need that a bare GPU machine lacks (jansson, PCRE2,
# utf8proc, OpenBLAS, cmocka, ...; not libstdc++ or libgcc_s, which every
# host has in a version at least as new), all into build-gpu/bundle (~49 MB), for
# `tests/gpu/run.sh --prebuilt build-gpu/bundle` there (the device tool's
# `run` with carry ["build-gpu/bundle"]).
set -eu
cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/local/cuda/bin"
[ -f build-gpu/build.ninja ] || meson setup build-gpu -Dcuda=enabled -Dnative=false -Dc_args=-march=x86-64-v3
ninja -C build-gpu tests/test_cuda_backend tests/test_backend_ops \
  tests/test_backward_ops tests/test_train_device bench/bench_engine \
  bench/bench_train_step r1d
B=build-gpu/bundle
rm -rf "$B"
mkdir -p "$B/lib" "$B/tests" "$B/bench"
cp build-gpu/tests/test_cuda_backend build-gpu/tests/test_backend_ops \
  build-gpu/tests/test_backward_ops build-gpu/tests/test_train_device "$B/tests/"
cp build-gpu/bench/bench_engine build-gpu/bench/bench_train_step "$B/bench/"
cp build-gpu/r1d "$B/"
for bin in "$B"/tests/* "$B"/bench/* "$B/r1d"; do
  # everything resolved outside the CUDA toolkit and the C library itself
  ldd "$bin" | awk '/=> \// {print $3}' |
    grep -v -E '/usr/local/cuda|libc\.so|libm\.so|libpthread|libdl|ld-linux|librt|libstdc\+\+|libgcc_s' |
    while read -r lib; do cp -Lu "$lib" "$B/lib/"; done
done
du -sh "$B"
