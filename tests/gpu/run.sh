#!/bin/sh
# tests/gpu/run.sh - the GPU check in one go: build with CUDA, run the CUDA
# backend test, the table-driven op tests on the GPU (every forward and
# backward op against double references) and the device trainer against the
# host trainer and `r1d sft --backend cuda` against `--backend cpu`
# (check_sft_cuda.sh), then the engine benchmark and the training-step benchmark
# on a Qwen2-1.5B-shaped random model, and print a short table.
#
#   tests/gpu/run.sh                 build in build-gpu (needs the Debian
#                                    -dev packages of the README), then run
#   tests/gpu/run.sh --prebuilt DIR  run binaries built elsewhere: DIR holds
#                                    r1d, tests/, bench/ and lib/ (the shared
#                                    libraries they need), as made by
#                                    tests/gpu/bundle.sh (build-gpu/bundle)
#
# Environment: CONC (default "1,8,64,256"), PROMPT (1024), GEN (256),
# TRAIN_BATCH (4), TRAIN_SEQ (1024), LOGS (a folder for the full logs,
# default /tmp), BENCH_LIMIT (seconds per benchmark, 240).
# Exit status: 0 all passed, 77 no GPU (nothing run), 1 a check failed.
set -u
cd "$(dirname "$0")/../.."
CONC=${CONC:-1,8,64,256}
PROMPT=${PROMPT:-1024}
GEN=${GEN:-256}
TRAIN_BATCH=${TRAIN_BATCH:-4}
TRAIN_SEQ=${TRAIN_SEQ:-1024}
LOGS=${LOGS:-/tmp}
# each benchmark is cut off after BENCH_LIMIT seconds (default 240)
LIMIT="timeout ${BENCH_LIMIT:-240}"

if [ "${1:-}" = "--prebuilt" ]; then
  DIR=$2
  # the carried libraries, then the machine's own CUDA (cuBLAS is not
  # carried: it is hundreds of MB and every CUDA install has it)
  export LD_LIBRARY_PATH="$DIR/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  DIR=build-gpu
  export PATH="$PATH:/usr/local/cuda/bin"
  if [ ! -f "$DIR/build.ninja" ]; then
    meson setup "$DIR" -Dcuda=enabled -Dnative=false >/dev/null || exit 1
  fi
  ninja -C "$DIR" tests/test_cuda_backend tests/test_backend_ops \
    tests/test_backward_ops tests/test_train_device bench/bench_engine \
    bench/bench_train_step r1d >/dev/null || exit 1
fi
export R1D_SOURCE_ROOT="$PWD" R1D_SHARED="$PWD/../shared"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

status=0
run_check() { # name, command...
  name=$1
  shift
  "$@" >"$LOGS/r1d-gpu-$name.log" 2>&1
  rc=$?
  case $rc in
  0) echo "PASS  $name" ;;
  77) echo "SKIP  $name (no GPU)"; [ $status -eq 0 ] && status=77 ;;
  *) echo "FAIL  $name (exit $rc)"; tail -30 "$LOGS/r1d-gpu-$name.log"; status=1 ;;
  esac
  return $rc
}

run_check cuda_backend "$DIR/tests/test_cuda_backend"
R1D_OPS_BACKEND=cuda run_check backend_ops "$DIR/tests/test_backend_ops"
# the per-op lines of the table test (backend, error, tolerance)
grep -E "cuda" "$LOGS/r1d-gpu-backend_ops.log" | grep -E "FAIL" | head -40
R1D_OPS_BACKEND=cuda run_check backward_ops "$DIR/tests/test_backward_ops"
grep -E "cuda" "$LOGS/r1d-gpu-backward_ops.log" | grep -E "FAIL" | head -40
R1D_OPS_BACKEND=cuda run_check train_device "$DIR/tests/test_train_device"
grep -E "^cuda:" "$LOGS/r1d-gpu-train_device.log" | head -20
if [ $status -eq 77 ]; then
  echo "no usable GPU: op tests and benchmark skipped"
  exit 77
fi
# r1d sft --backend cuda against the host trainer on the tiny model
run_check sft_cuda sh "$PWD/tests/gpu/check_sft_cuda.sh" "$DIR/r1d"
tail -12 "$LOGS/r1d-gpu-sft_cuda.log"

echo
echo "## training step: Qwen2-1.5B shape, random weights, $TRAIN_BATCH x $TRAIN_SEQ tokens"
for tf32 in 0 1; do # the backward GEMMs strict fp32, then on TF32 cores
  $LIMIT "$DIR/bench/bench_train_step" --backend cuda --shape qwen2-1.5b \
    --batch "$TRAIN_BATCH" --seq "$TRAIN_SEQ" --steps 3 --tf32 $tf32 || status=1
done
echo
echo "## engine benchmark: Qwen2-1.5B shape, random bf16 weights, $PROMPT in / $GEN out"
$LIMIT "$DIR/bench/bench_engine" --backend cuda --shape qwen2-1.5b --prompt "$PROMPT" \
  --gen "$GEN" --conc "$CONC" || status=1

exit $status
