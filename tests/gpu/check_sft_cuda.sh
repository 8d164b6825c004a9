#!/bin/sh
# tests/gpu/check_sft_cuda.sh R1D - `r1d sft --backend cuda` on a tiny random
# model against the host trainer (--backend cpu), same data and settings:
# every step's loss within 3% (the device forward runs its GEMMs in bf16),
# both curves falling, and the CUDA checkpoint loadable by `r1d generate`.
# Run by tests/gpu/run.sh; needs python3 (meson's) for the comparison.
set -eu
R1D=$1
T=$(mktemp -d /tmp/r1d-sft-cuda-XXXXXX)
trap 'rm -rf "$T"' EXIT
"$R1D" model init --arch qwen2 --preset tiny --seed 3 --out "$T/base" >/dev/null
python3 - "$T/d.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(64):
        a, b = 3 + i % 11, 5 + (i * 7) % 13
        f.write(json.dumps({"prompt": f"What is {a} + {b}?", "completion": f" {a + b}"}) + "\n")
PY
for b in cpu cuda; do
  "$R1D" sft --model "$T/base" --data "$T/d.jsonl" --out "$T/$b" --backend "$b" \
    --max-len 128 --max-tokens 512 --lr 1e-3 --epochs 3 --eval-split 0.1 \
    --progress json >"$T/$b.jsonl"
done
python3 - "$T/cpu.jsonl" "$T/cuda.jsonl" <<'PY'
import json, sys
def curve(path):
    rows = [json.loads(l) for l in open(path) if l.startswith("{")]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}
cpu, cuda = curve(sys.argv[1]), curve(sys.argv[2])
assert sorted(cpu) == sorted(cuda), (sorted(cpu), sorted(cuda))
worst = max(abs(cpu[s] - cuda[s]) / abs(cpu[s]) for s in cpu)
for s in sorted(cpu):
    print(f"step {s:3d}  cpu {cpu[s]:.6f}  cuda {cuda[s]:.6f}")
last = max(cpu)
print(f"worst relative loss difference {worst:.2e} over {len(cpu)} steps")
assert worst < 0.03, worst
assert cuda[last] < cuda[1] - 0.5 and cpu[last] < cpu[1] - 0.5
PY
"$R1D" generate --model "$T/cuda/last" --prompt "What is 3 + 5?" --max-tokens 4 \
  --temperature 0 >/dev/null
echo "sft --backend cuda: ok"
