"""GRPO on the CPU: seconds per step and where they go, rollout speed against
the serving engine's own, and hot-swap latency, measured in one run.

    make bench-grpo                  # or:
    python3 bench/bench_grpo.py --r1d build/r1d [--preset tiny|small]
        [--steps 4] [--threads 2]

What it does, in a temporary folder:
  * `r1d model init --preset PRESET` (seeded random weights);
  * `r1d grpo` on 32 tasks whose checker is a regex (a digit in the answer):
    8 completions of 4 prompts per step (32 rollouts), max 64 tokens each,
    temperature 1, beta 0.04 (so the reference model's logprobs are taken),
    num_iterations 1; the split (rollout / reward / reference logprobs /
    backward / optimizer) is the median over the steps after the first;
  * the peer: `build/bench/bench_engine --model DIR` greedy at the same
    concurrency (32) and length (64 new tokens, prompts of the tasks'
    length), the serving engine's aggregate output tok/s;
  * hot swap: `r1d serve` on the model, then POST /admin/v1/weights/swap
    back and forth between two folders (--swaps times) with nothing in
    flight; stage (load + engine start) and flip are the server's own
    timings, wall is the HTTP round trip.
Rollout tokens/s / engine tokens/s is the ratio reported: the rollouts run
through the same engine, so it shows what sampling at temperature 1 with
EOS (shorter, uneven completions) and the trainer's bookkeeping cost.
This is a benchmark, not a test."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return p


def write_tasks(path, n=32):
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"t{i}", "prompt": f"Write a number, please ({i})",
                                "checker": {"type": "regex", "pattern": "[0-9]"}}) + "\n")


def grpo(args, model, tasks, out):
    cmd = [args.r1d, "grpo", "--model", model, "--tasks", tasks, "--out", out,
           "--max-steps", str(args.steps), "--num-generations", "8", "--prompts-per-step", "4",
           "--max-completion-length", "64", "--beta", "0.04", "--lr", "1e-4",
           "--threads", str(args.threads), "--progress", "json", "--seed", "1"]
    p = run(cmd, timeout=3600)
    rows = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    return [r for r in rows if "reward" in r]


def engine_peer(args, model, prompt_len):
    exe = os.path.join(os.path.dirname(args.r1d), "bench", "bench_engine")
    p = run([exe, "--model", model, "--threads", str(args.threads), "--prompt", str(prompt_len),
             "--gen", "64", "--conc", "32"], timeout=3600)
    for line in p.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == "32":
            return float(cells[1])
    sys.exit("bench_engine printed no row for 32 concurrent:\n" + p.stdout)


def swaps(args, model, other, tmp):
    proc = subprocess.Popen([args.r1d, "serve", "--model", model, "--port", "0", "--threads",
                             str(args.threads), "--data-dir", os.path.join(tmp, "data")],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        port = None
        for line in proc.stderr:
            if '"listening"' in line:
                port = json.loads(line)["port"]
                break
        url = f"http://127.0.0.1:{port}/admin/v1/weights/swap"
        out = []
        for i in range(args.swaps):
            body = json.dumps({"path": other if i % 2 == 0 else model}).encode()
            t0 = time.perf_counter()
            with urllib.request.urlopen(urllib.request.Request(
                    url, data=body, headers={"Content-Type": "application/json"})) as r:
                res = json.loads(r.read())
            out.append((res["stage_seconds"], res["flip_seconds"], time.perf_counter() - t0))
            time.sleep(0.3)  # the tick frees the retired version
        return out
    finally:
        proc.terminate()
        proc.wait(30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--r1d", default="build/r1d")
    ap.add_argument("--preset", choices=["tiny", "small"], default="small")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--swaps", type=int, default=6)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="r1d-bench-grpo-") as tmp:
        model, other = os.path.join(tmp, "m"), os.path.join(tmp, "m2")
        for seed, d in ((1, model), (2, other)):
            run([args.r1d, "model", "init", "--arch", "qwen2", "--preset", args.preset,
                 "--seed", str(seed), "--out", d])
        tasks = os.path.join(tmp, "tasks.jsonl")
        write_tasks(tasks)
        steps = grpo(args, model, tasks, os.path.join(tmp, "out"))
        timed = steps[1:] if len(steps) > 1 else steps
        med = {k: statistics.median(r[k] for r in timed)
               for k in ("t_step", "t_rollout", "t_reward", "t_ref", "t_backward", "t_optim",
                         "rollout_tokens_per_s", "completion_len", "tokens")}
        prompt_len = len(run([args.r1d, "template", "--model", model],
                             input='[{"role":"user","content":"Write a number, please (7)"}]\n')
                         .stdout)  # bytes ~ tokens for the byte-level tokenizer
        engine = engine_peer(args, model, max(prompt_len - 20, 8))
        sw = swaps(args, model, other, tmp)
    print(f"qwen2 {args.preset}, {args.threads} threads; GRPO: 4 prompts x 8 completions, "
          f"<= 64 tokens, beta 0.04; {len(timed)} timed steps (median)")
    print("\n| part | seconds | share |\n|---|---:|---:|")
    for k, name in (("t_rollout", "rollout (engine)"), ("t_reward", "rewards"),
                    ("t_ref", "reference logprobs"), ("t_backward", "forward + backward"),
                    ("t_optim", "clip + AdamW")):
        print(f"| {name} | {med[k]:.3f} | {100 * med[k] / med['t_step']:.0f}% |")
    print(f"| step | {med['t_step']:.3f} | |")
    print(f"\nrollouts: {med['rollout_tokens_per_s']:.1f} tok/s (mean completion "
          f"{med['completion_len']:.1f} tokens); the engine alone, greedy, 32 concurrent x 64: "
          f"{engine:.1f} tok/s; ratio {med['rollout_tokens_per_s'] / engine:.2f}")
    st = statistics.median(s[0] for s in sw)
    fl = statistics.median(s[1] for s in sw)
    wl = statistics.median(s[2] for s in sw)
    print(f"hot swap ({len(sw)} swaps, median): stage {st * 1e3:.1f} ms, flip {fl * 1e6:.1f} us, "
          f"HTTP round trip {wl * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
