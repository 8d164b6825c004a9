"""Training speed and memory of `r1d pretrain` against PyTorch eager
(transformers) on the same model, batch, optimizer and thread count, measured
in one run and reported as r1d / PyTorch ratios.

    make bench-train                # or:
    build/venv-ref/bin/python bench/bench_train.py --r1d build/r1d [--steps 8]
        [--openblas-env as-is|unpinned|both]

What it does, in a temporary folder:
  * writes a seeded corpus of random ASCII words, exactly steps x max-tokens
    tokens long (byte-level tokenizer: one token per byte, plus the eos that
    r1d appends), so every document is one full --max-len piece and every
    micro-batch holds max-tokens / max-len of them;
  * `r1d model init --preset small` (~97M parameters, fp32);
  * `r1d pretrain` on it: padding-free packing of max-tokens tokens per
    micro-batch, one AdamW step per micro-batch, loss on every token;
  * PyTorch in its own process (this script with --torch-worker): the same
    folder through transformers in fp32 (attention "sdpa" by default, the
    faster of transformers' CPU paths; --attn eager or both), the same corpus
    tokenized with the folder's tokenizer.json and cut into the same pieces,
    fed as [max-tokens/max-len, max-len] batches with labels = input ids (255
    loss tokens per 256-token piece, as in r1d). Each step: forward, backward,
    clip_grad_norm_(1.0), AdamW.step (betas 0.9/0.95, eps 1e-8, weight decay
    0.1 except on norms and biases, as r1d does; foreach left at its
    default), zero_grad.

Timing skips the first --warmup steps (allocation, first-touch page faults)
and, for r1d, the final checkpoint write: tokens/s is taken from pretrain's
JSON progress lines (elapsed_s), torch's from time.perf_counter around each
step. Peak RSS: r1d's VmHWM read when its last step is reported (so before
the checkpoint write; its whole-process maxrss is printed too), torch's
ru_maxrss at the end of its steps; both include model loading. Each peer runs
in its own process with OMP/MKL/OPENBLAS thread counts set to --threads,
except that r1d gets no OPENBLAS_NUM_THREADS: its --threads sets OpenBLAS's
count itself, and with that variable set as well the OpenMP build of
OpenBLAS ran r1d's steps 4x slower here (55-68 against 237-248 tokens/s;
cause not yet found).
OpenBLAS's kernel choice: some machines set OPENBLAS_CORETYPE (and
OPENBLAS_L2_SIZE) in the environment to pin an older core type (this one
pins Haswell, AVX2, on an AVX-512 CPU). --openblas-env both (the default)
runs every peer twice: as the environment is, and with those two variables
removed for that process alone, so OpenBLAS picks the CPU's own core
(OPENBLAS_VERBOSE=2 makes r1d's OpenBLAS name it; printed). torch's CPU
wheel brings its own BLAS, so its two rows are a control.
The first-step losses are printed as a sanity check (both ~ln(vocab) for a
random init; their batches may differ, as r1d shuffles documents), not
asserted. This is a benchmark, not a test."""
import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time


def make_corpus(path, n_tokens, seed):
    """Random lowercase words and spaces, n_tokens - 1 bytes: with the eos that
    r1d adds to a --text document that is exactly n_tokens tokens."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 9)))
             for _ in range(2000)]
    parts, size = [], 0
    while size < n_tokens:
        w = rng.choice(words) + ("\n" if rng.random() < 0.05 else " ")
        parts.append(w)
        size += len(w)
    with open(path, "w") as f:
        f.write("".join(parts)[:n_tokens - 1])


PINS = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"]


def thread_env(threads, openblas_var=True, unpin=False):
    env = dict(os.environ)
    for k in ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"]:
        env[k] = str(threads)
    if not openblas_var:
        env.pop("OPENBLAS_NUM_THREADS")
    if unpin:
        for k in PINS:
            env.pop(k, None)
    env["OPENBLAS_VERBOSE"] = "2"
    return env


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def run_r1d(args, model, corpus, out, log, unpin):
    cmd = [args.r1d, "pretrain", "--model", model, "--text", corpus, "--out", out,
           "--max-len", str(args.max_len), "--max-tokens", str(args.max_tokens),
           "--max-steps", str(args.steps), "--threads", str(args.threads),
           "--progress", "json", "--save-every", "1000000000", "--lr", str(args.lr),
           "--schedule", "constant", "--warmup-steps", "0", "--clip", "1",
           "--weight-decay", "0.1", "--beta1", "0.9", "--beta2", "0.95", "--eps", "1e-8"]
    with open(log, "w") as err:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                             env=thread_env(args.threads, openblas_var=False, unpin=unpin))
        steps, hwm = [], None
        for line in p.stdout:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if "step" not in row or "loss" not in row or "eval_loss" in row:
                continue
            steps.append(row)
            print(f"  r1d   step {row['step']}/{args.steps} loss {row['loss']:.4f} "
                  f"elapsed {row['elapsed_s']:.1f}s", file=sys.stderr)
            if row["step"] == args.steps:
                hwm = vm_hwm_kib(p.pid)  # before the final checkpoint write
        # wait4, not wait: its rusage is this child's alone.
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0 or len(steps) < args.steps:
        with open(log) as f:
            sys.exit(f"r1d pretrain failed (exit {p.returncode}):\n{f.read()}")
    w = args.warmup
    timed = steps[w:]
    dt = steps[-1]["elapsed_s"] - steps[w - 1]["elapsed_s"]
    tokens = sum(r["tokens"] for r in timed)
    odd = [r["step"] for r in steps if r["tokens"] != args.max_tokens]
    if odd:
        print(f"warning: r1d steps {odd} did not hold {args.max_tokens} tokens", file=sys.stderr)
    with open(log) as f:
        lines = f.readlines()
    info = [l.strip().removeprefix("r1d: ") for l in lines if "documents" in l]
    core = [l.split(":", 1)[1].strip() for l in lines if l.startswith("Core:")]
    return {"openblas_core": core[0] if core else "?","tok_s": tokens / dt, "timed_tokens": tokens, "timed_s": dt,
            "step_s": [round(b["elapsed_s"] - a["elapsed_s"], 3) for a, b in zip(steps, steps[1:])],
            "first_loss": steps[0]["loss"],
            "rss_mib": (hwm if hwm is not None else ru.ru_maxrss) / 1024,
            "rss_process_mib": ru.ru_maxrss / 1024, "data": info[0] if info else ""}


def torch_worker(args):
    """Runs in a child process so that its peak RSS is its own."""
    import resource

    import torch
    import transformers
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    transformers.utils.logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32,
                                                 attn_implementation=args.attn)
    model.train()  # no dropout in these configs; train() as a trainer would
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    with open(args.corpus) as f:
        ids = tok.encode(f.read(), add_special_tokens=False).ids
    eos = model.config.eos_token_id
    ids.append(eos[0] if isinstance(eos, list) else eos)  # as r1d ends a document
    rows_per_batch = args.max_tokens // args.max_len
    n_rows = len(ids) // args.max_len
    if n_rows < args.steps * rows_per_batch:
        sys.exit(f"corpus has {len(ids)} tokens, too few for {args.steps} steps")
    data = torch.tensor(ids[:n_rows * args.max_len]).view(n_rows, args.max_len)

    # Weight decay on the same tensors as r1d: not on norms or biases. A tied
    # head shares the embedding's Parameter, so it is listed once.
    seen, decay, no_decay = set(), [], []
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        (no_decay if "norm" in name or name.endswith(".bias") else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    times, losses = [], []
    for s in range(args.steps):
        x = data[s * rows_per_batch:(s + 1) * rows_per_batch]
        t0 = time.perf_counter()
        loss = model(input_ids=x, labels=x, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
        print(f"  torch step {s + 1}/{args.steps} loss {losses[-1]:.4f} "
              f"step {times[-1]:.1f}s", file=sys.stderr, flush=True)
    timed = sum(times[args.warmup:])
    print(json.dumps({
        "tok_s": (args.steps - args.warmup) * args.max_tokens / timed,
        "timed_tokens": (args.steps - args.warmup) * args.max_tokens, "timed_s": timed,
        "step_s": [round(t, 3) for t in times[1:]], "first_loss": losses[0],
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "corpus_tokens": len(ids), "torch": torch.__version__,
        "transformers": transformers.__version__, "torch_threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads()}))


def run_torch(args, model, corpus, attn, unpin):
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-worker", "--model", model,
           "--corpus", corpus, "--attn", attn, "--threads", str(args.threads),
           "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--max-len", str(args.max_len), "--max-tokens", str(args.max_tokens),
           "--lr", str(args.lr)]
    # stderr passes through: per-step progress, and any traceback.
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True,
                       env=thread_env(args.threads, unpin=unpin))
    if p.returncode != 0:
        sys.exit(f"torch worker ({attn}) failed with exit {p.returncode}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--r1d", default="build/r1d")
    ap.add_argument("--arch", choices=["qwen2", "llama"], default="qwen2")
    ap.add_argument("--preset", choices=["tiny", "small"], default="small")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2, help="untimed first steps")
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--attn", choices=["sdpa", "eager", "both"], default="sdpa")
    ap.add_argument("--seed", type=int, default=1, help="model init and corpus")
    ap.add_argument("--openblas-env", choices=["as-is", "unpinned", "both"], default="both",
                    help="run with the environment's OPENBLAS_CORETYPE/L2_SIZE, without, or both")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.max_tokens % args.max_len:
        ap.error("--max-tokens must be a multiple of --max-len (a [B, max-len] torch batch)")
    if not 1 <= args.warmup < args.steps:
        ap.error("need 1 <= --warmup < --steps")
    if args.torch_worker:
        torch_worker(args)
        return

    with tempfile.TemporaryDirectory(prefix="r1d-bench-train-") as d:
        model, corpus = os.path.join(d, "model"), os.path.join(d, "corpus.txt")
        make_corpus(corpus, args.steps * args.max_tokens, args.seed)
        subprocess.run([args.r1d, "model", "init", "--arch", args.arch, "--preset", args.preset,
                        "--seed", str(args.seed), "--out", model], check=True,
                       stdout=subprocess.DEVNULL)
        modes = {"as-is": [False], "unpinned": [True], "both": [False, True]}[args.openblas_env]
        pinned = {k: os.environ[k] for k in PINS if k in os.environ}
        if not pinned:
            modes = [False]  # nothing to remove: one run
        runs = {}
        for unpin in modes:
            env_name = "unpinned" if unpin else "as-is"
            print(f"[{env_name}] r1d pretrain, {args.steps} steps ...", file=sys.stderr)
            r = run_r1d(args, model, corpus, os.path.join(d, "out-" + env_name),
                        os.path.join(d, "r1d.log"), unpin)
            peers = {}
            for attn in (["sdpa", "eager"] if args.attn == "both" else [args.attn]):
                print(f"[{env_name}] torch ({attn}), {args.steps} steps ...", file=sys.stderr)
                peers[attn] = run_torch(args, model, corpus, attn, unpin)
            runs[env_name] = (r, peers)

        with open(os.path.join(model, "config.json")) as f:
            vocab = json.load(f)["vocab_size"]
    results = {}
    for env_name, (r, peers) in runs.items():
        results[env_name] = {
            "r1d": r, "torch": peers,
            "ratio": {a: {"tok_s": r["tok_s"] / t["tok_s"], "rss": r["rss_mib"] / t["rss_mib"]}
                      for a, t in peers.items()}}
    result = {"arch": args.arch, "preset": args.preset, "threads": args.threads,
              "steps": args.steps, "warmup": args.warmup, "max_len": args.max_len,
              "max_tokens": args.max_tokens, "batch": [args.max_tokens // args.max_len, args.max_len],
              "environment_pins": pinned, "runs": results}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    b = result["batch"]
    any_t = next(iter(next(iter(results.values()))["torch"].values()))
    print(f"{args.arch} {args.preset}, fp32, batch [{b[0]},{b[1]}] = {args.max_tokens} tokens/step, "
          f"{args.steps} steps ({args.warmup} warm-up untimed), {args.threads} threads")
    print(f"torch {any_t['torch']} (threads {any_t['torch_threads']}, interop "
          f"{any_t['interop_threads']}), transformers {any_t['transformers']}; "
          f"OMP/MKL_NUM_THREADS={args.threads}")
    for env_name, res in results.items():
        r = res["r1d"]
        pins = ", ".join(f"{k}={v}" for k, v in pinned.items())
        head = (f"environment as is ({pins})" if env_name == "as-is" and pinned
                else f"without {', '.join(PINS)}" if env_name == "unpinned" else "environment")
        print(f"\n{head}: r1d's OpenBLAS core {r['openblas_core']}")
        print(f"{'peer':18}{'tokens/s':>10}{'peak RSS MiB':>14}{'first loss':>12}")
        print(f"{'r1d':18}{r['tok_s']:10.1f}{r['rss_mib']:14.0f}{r['first_loss']:12.4f}")
        for a, t in res["torch"].items():
            print(f"{'torch ' + a:18}{t['tok_s']:10.1f}{t['rss_mib']:14.0f}{t['first_loss']:12.4f}")
        for a, q in res["ratio"].items():
            print(f"{'r1d/torch ' + a:18}{q['tok_s']:10.2f}{q['rss']:14.2f}")
    r = next(iter(results.values()))["r1d"]
    print(f"\nln(vocab {vocab}) = {math.log(vocab):.4f}; r1d whole-process maxrss (with the "
          f"checkpoint write) {r['rss_process_mib']:.0f} MiB")
    print(f"r1d {r['data']}; torch corpus tokens: {any_t['corpus_tokens']}")


if __name__ == "__main__":
    main()
