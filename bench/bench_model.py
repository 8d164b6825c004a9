"""Prefill and decode speed of r1d against PyTorch eager on the same model,
the same prompt and the same number of threads, measured in one run.

    make bench                      # or:
    build/venv-ref/bin/python bench/bench_model.py --r1d build/r1d [--threads 2]

Makes the "small" preset (~100M parameters, fp32) with `r1d model init` if it
is missing, then times: r1d generate (prefill of --prompt-len tokens as one
pass, then --gen greedy decode steps) and the same with transformers (eager
attention, fp32, torch.set_num_threads). Peak RSS is each process's maxrss.
Prints a table with r1d / PyTorch ratios. This is a benchmark, not a test."""
import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import time


def run_r1d(args, ids):
    cmd = [args.r1d, "generate", "--model", args.model, "--prompt-ids", ",".join(map(str, ids)),
           "--max-tokens", str(args.gen), "--ignore-eos", "--temperature", "0",
           "--threads", str(args.threads), "--stats", "--json"]
    best = None
    for _ in range(args.repeat):
        p = subprocess.run(cmd, capture_output=True, text=True, check=True)
        m = re.search(r"prefill ([\d.]+) tok/s; completion (\d+) tokens, decode ([\d.]+) tok/s", p.stderr)
        row = {"prefill": float(m.group(1)), "decode": float(m.group(3)),
               "ids": [json.loads(l)["id"] for l in p.stdout.splitlines()]}
        if best is None or row["prefill"] + row["decode"] > best["prefill"] + best["decode"]:
            best = row
    best["rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return best


def torch_child(args, ids):
    """Runs in a child process so that its peak RSS is its own."""
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    x = torch.tensor([ids])
    best = None
    with torch.inference_mode():
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = model(x, use_cache=True)
            t1 = time.perf_counter()
            past = out.past_key_values
            tok = out.logits[:, -1].argmax(-1, keepdim=True)
            gen = [int(tok)]
            t2 = time.perf_counter()
            for _ in range(args.gen - 1):
                out = model(tok, past_key_values=past, use_cache=True)
                past = out.past_key_values
                tok = out.logits[:, -1].argmax(-1, keepdim=True)
                gen.append(int(tok))
            t3 = time.perf_counter()
            row = {"prefill": len(ids) / (t1 - t0), "decode": (args.gen - 1) / (t3 - t2), "ids": gen}
            if best is None or row["prefill"] + row["decode"] > best["prefill"] + best["decode"]:
                best = row
    best["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(best))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--r1d", default="build/r1d")
    ap.add_argument("--model", default="build/models/r1d-small")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--torch-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    rng = random.Random(0)
    ids = [rng.randrange(0, 256) for _ in range(args.prompt_len)]
    if args.torch_child:
        torch_child(args, ids)
        return
    if not os.path.exists(os.path.join(args.model, "config.json")):
        subprocess.run([args.r1d, "model", "init", "--arch", "qwen2", "--preset", "small",
                        "--seed", "1", "--out", args.model], check=True)
    r = run_r1d(args, ids)
    p = subprocess.run([sys.executable, __file__, "--torch-child"] + sys.argv[1:],
                       capture_output=True, text=True, check=True)
    t = json.loads(p.stdout.strip().splitlines()[-1])
    same = sum(a == b for a, b in zip(r["ids"], t["ids"]))
    print(f"model {args.model}, prompt {args.prompt_len} tokens, {args.gen} decoded, "
          f"{args.threads} threads, best of {args.repeat}")
    print(f"{'':16}{'r1d':>12}{'pytorch':>12}{'r1d/pytorch':>14}")
    for key, unit in [("prefill", "tok/s"), ("decode", "tok/s"), ("rss_mb", "MB")]:
        print(f"{key + ' ' + unit:16}{r[key]:12.1f}{t[key]:12.1f}{r[key] / t[key]:14.2f}")
    print(f"greedy tokens identical: {same}/{args.gen}")


if __name__ == "__main__":
    main()
