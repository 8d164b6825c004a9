#!/usr/bin/env python3
"""bench_server.py - the HTTP server's throughput and latency, and its
overhead over the engine alone, measured in the same run (a benchmark, not a
test).

    python bench/bench_server.py [--r1d build/r1d] [--bench-engine build/bench/bench_engine]
        [--model DIR | --preset tiny|small] [--prompt 256] [--gen 64] [--conc 1,8,64]
        [--threads 2] [--seed 1] [--no-engine]
    python bench/bench_server.py --logging-compare [--duration 20] [--rounds 1] [--conc 64]
        [--model DIR | --preset tiny|small] [--prompt 256] [--gen 64] [--threads 2]

--logging-compare: what storing every answer costs. One run starts two
servers on the same model, each with a fresh --data-dir, one with
--log-interactions true and one with false, and drives each in turn (never
both at once) for --duration seconds with C = max(--conc) closed-loop
streaming clients (each sends its next request when the last one ends;
distinct random prompts as below). It reports output tok/s of each side, the
ratio (the target: logging costs < 5%), and the bytes per logged
interaction: storage's data_bytes (LMDB pages holding data) and the file's
high-water mark over the records' count, from GET /admin/v1/server, and the
group commit's batch size and time. --rounds N alternates the order (off,on
then on,off ...) and reports each side's mean and best, the median of the
rounds' on/off ratios (a round's two runs are adjacent in time, so load from
outside the benchmark cancels better than in the means), and each server's
own CPU time per output token (/proc), which outside load hardly moves. E.g.
on 2 cores:

    python bench/bench_server.py --logging-compare --duration 20

The default mode below measures the server with its defaults, logging on
(into a temporary --data-dir).

For each concurrency C it sends C streaming POST /v1/completions at once, each
with a distinct prompt of --prompt random token ids (so the prefix cache cannot
help), max_tokens --gen, ignore_eos, temperature 0, and reports requests/s,
output tok/s, time to first token p50/p99 and inter-token latency p50/p99.
Then the overhead: output tok/s through HTTP divided by the engine's own
output tok/s for the same shape of requests, from build/bench/bench_engine
run on the same model right before the server (never at the same time: both
would fight for the same cores).

What is and is not the same between the two (also printed):
  - same model folder, threads, prompt length, output length, concurrency,
    greedy decoding, ignore_eos, distinct random prompts; the server gets
    --max-num-seqs C_max, --max-model-len prompt+gen and a KV pool of the
    same size as bench_engine's (ceil((prompt+gen)/16) blocks per sequence);
  - the prompt ids differ (bench_engine draws them with r1d's RNG, this script
    with Python's; the same range: ids 100..vocab, or 0..vocab for a vocab
    under 300, where vocab is capped here at the tokenizer's size), which
    costs the same compute;
  - bench_engine runs without a tokenizer (no detokenization); the server
    detokenizes every token and writes one SSE chunk per engine event, so the
    ratio includes detokenization, JSON and HTTP, i.e. the server's overhead;
  - the server's step token budget is its own default, bench_engine's is 512;
  - the load generator (this script, asyncio) shares the machine's cores with
    the server; at 64 concurrent streams that is part of what is measured.
Each concurrency runs --repeat rounds (fresh prompts each) and the round with
the best output tok/s is reported, as bench_model.py reports its best of 3.
Inter-token latency is measured between SSE chunks as this client reads them
(chunks that arrive in one TCP read share a timestamp, so a gap of 0 means the
server flushed them together): when the server puts
several tokens in one chunk (or holds back a partial UTF-8 piece), a gap covers
more than one token; the tokens-per-chunk column says how often that happened.
Stdlib only: the HTTP/1.1 client is a few lines of asyncio."""
import argparse
import asyncio
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


# --- the server process ----------------------------------------------------------

class Server:
    def __init__(self, cmd):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.lines = []
        self.port = None
        self.listening = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if self.port is None:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if isinstance(ev, dict) and ev.get("event") == "listening":
                    self.port = int(ev["port"])
                    self.listening.set()
        self.listening.set()

    def wait_ready(self, timeout=120):
        if not self.listening.wait(timeout) or self.port is None:
            sys.exit("bench_server: r1d serve did not start:\n" + "\n".join(self.lines[-20:]))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        sys.exit("bench_server: /ready never answered 200")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# --- a minimal streaming HTTP/1.1 client --------------------------------------------

async def stream_completion(port, body):
    """One streaming request; returns dict(t_send, chunk_times, tokens, error)."""
    data = json.dumps(body).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t_send = time.perf_counter()
    writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\nConnection: close\r\n"
                 b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
    await writer.drain()
    status = (await reader.readline()).decode()
    headers = {}
    while True:
        line = (await reader.readline()).decode().strip()
        if not line:
            break
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    res = {"t_send": t_send, "chunks": [], "tokens": 0, "error": None, "done": False}
    if " 200 " not in status + " ":
        res["error"] = status.strip() + " " + (await reader.read()).decode(errors="replace")[:200]
        writer.close()
        return res
    chunked = "chunked" in headers.get("transfer-encoding", "")
    buf = b""

    async def pieces():
        if not chunked:
            while True:
                b = await reader.read(65536)
                if not b:
                    return
                yield b
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                return
            b = await reader.readexactly(size)
            await reader.readexactly(2)
            yield b

    async for piece in pieces():
        now = time.perf_counter()
        buf += piece
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                res["done"] = True
                continue
            obj = json.loads(payload)
            if "error" in obj:
                res["error"] = obj["error"].get("message")
            if obj.get("choices"):
                res["chunks"].append(now)
            if obj.get("usage"):
                res["tokens"] = obj["usage"]["completion_tokens"]
    writer.close()
    if not res["done"] and not res["error"]:
        res["error"] = "stream ended without [DONE]"
    return res


def make_prompt(rng, n, vocab):
    lo = 100 if vocab > 300 else 0
    return [rng.randrange(lo, vocab) for _ in range(n)]


async def run_batch(port, model, conc, prompt_len, gen, vocab, seed):
    reqs = []
    for i in range(conc):
        rng = random.Random(seed * 1000003 + conc * 7919 + i)
        reqs.append({"model": model, "prompt": make_prompt(rng, prompt_len, vocab), "max_tokens": gen,
                     "temperature": 0, "ignore_eos": True, "stream": True,
                     "stream_options": {"include_usage": True}})
    t0 = time.perf_counter()
    results = await asyncio.gather(*[stream_completion(port, r) for r in reqs])
    t1 = time.perf_counter()
    errors = [r["error"] for r in results if r["error"]]
    ok = [r for r in results if not r["error"]]
    ttft = [r["chunks"][0] - r["t_send"] for r in ok if r["chunks"]]
    itl = [b - a for r in ok for a, b in zip(r["chunks"], r["chunks"][1:])]
    tokens = sum(r["tokens"] for r in ok)
    chunks = sum(len(r["chunks"]) for r in ok)
    return {"conc": conc, "elapsed": t1 - t0, "req_s": len(ok) / (t1 - t0), "tok_s": tokens / (t1 - t0),
            "ttft50": pct(ttft, 50), "ttft99": pct(ttft, 99), "itl50": pct(itl, 50), "itl99": pct(itl, 99),
            "tok_per_chunk": tokens / chunks if chunks else float("nan"), "errors": errors,
            "tokens": tokens, "expected": conc * gen}


# --- the engine alone ---------------------------------------------------------------

def engine_numbers(bench_engine, model, threads, prompt_len, gen, concs):
    """Runs bench_engine on the same model and shape; returns ({conc: tok/s}, its output)."""
    cmd = [bench_engine, "--model", str(model), "--threads", str(threads), "--prompt", str(prompt_len),
           "--gen", str(gen), "--conc", ",".join(map(str, concs))]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        sys.exit(f"bench_server: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    out = {}
    for line in p.stdout.splitlines():
        m = re.match(r"^\|\s*(\d+)\s*\|\s*([\d.]+)\s*\|", line)  # | concurrent | output tok/s | ...
        if m:
            out[int(m.group(1))] = float(m.group(2))
    missing = [c for c in concs if c not in out]
    if missing:
        sys.exit(f"bench_server: no bench_engine row for concurrency {missing}:\n{p.stdout}")
    return out, " ".join(cmd)


# --- --logging-compare -------------------------------------------------------------------

async def closed_loop(port, model, conc, prompt_len, gen, vocab, seed, duration):
    """conc clients, each sending its next streaming request as soon as the
    last one ended, until `duration` s have passed (requests then running
    finish and count). Returns (tokens, elapsed, requests, errors)."""
    t0 = time.perf_counter()
    deadline = t0 + duration
    out = {"tokens": 0, "requests": 0, "errors": []}

    async def client(i):
        rng = random.Random(seed * 1000003 + i)
        while time.perf_counter() < deadline:
            body = {"model": model, "prompt": make_prompt(rng, prompt_len, vocab), "max_tokens": gen,
                    "temperature": 0, "ignore_eos": True, "stream": True,
                    "stream_options": {"include_usage": True}}
            r = await stream_completion(port, body)
            if r["error"]:
                out["errors"].append(r["error"])
            else:
                out["tokens"] += r["tokens"]
                out["requests"] += 1

    await asyncio.gather(*[client(i) for i in range(conc)])
    return out["tokens"], time.perf_counter() - t0, out["requests"], out["errors"]


def cpu_seconds(pid):
    """user + system CPU time of a process so far (Linux /proc), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def median(xs):
    xs = sorted(xs)
    return (xs[(len(xs) - 1) // 2] + xs[len(xs) // 2]) / 2 if xs else float("nan")


def get_json(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return json.load(r)


def logging_compare(a, base_cmd, model, cfg, vocab, conc):
    sides = {}
    dirs = []
    try:
        for log in ("false", "true"):
            d = tempfile.TemporaryDirectory(prefix=f"r1d-bench-log-{log}-")
            dirs.append(d)
            cmd = base_cmd + ["--data-dir", d.name, "--log-interactions", log]
            srv = Server(cmd)
            srv.wait_ready()
            sides[log] = {"srv": srv, "cmd": cmd, "runs": [], "errors": []}
        model_id = get_json(sides["true"]["srv"].port, "/v1/models")["data"][0]["id"]
        for log, sd in sides.items():  # warm-up, as in the default mode
            asyncio.run(run_batch(sd["srv"].port, model_id, 1, min(32, a.prompt), 4, vocab, a.seed + 99))
        before = get_json(sides["true"]["srv"].port, "/admin/v1/server")["storage"]
        for rnd in range(a.rounds):
            order = ("false", "true") if rnd % 2 == 0 else ("true", "false")
            for log in order:
                sd = sides[log]
                # same prompts for both sides in a round, fresh ones each round
                cpu0 = cpu_seconds(sd["srv"].proc.pid)
                tokens, elapsed, reqs, errors = asyncio.run(closed_loop(
                    sd["srv"].port, model_id, conc, a.prompt, a.gen, vocab, a.seed + 7919 * rnd, a.duration))
                cpu1 = cpu_seconds(sd["srv"].proc.pid)
                cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else float("nan")
                sd["runs"].append({"tok_s": tokens / elapsed, "req_s": reqs / elapsed, "requests": reqs,
                                   "tokens": tokens, "elapsed": elapsed, "cpu_s": cpu})
                sd["errors"] += errors
                print(f"# round {rnd + 1}, log_interactions {log}: {tokens / elapsed:.1f} tok/s, "
                      f"{reqs} requests in {elapsed:.1f} s, server CPU {1e3 * cpu / max(tokens, 1):.3f} ms/token, "
                      f"load average {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
        st = get_json(sides["true"]["srv"].port, "/admin/v1/server")["storage"]
        st_off = get_json(sides["false"]["srv"].port, "/admin/v1/server")["storage"]
    finally:
        for sd in sides.values():
            sd["srv"].stop()
        for d in dirs:
            d.cleanup()

    print(f"# bench_server --logging-compare: {model} ({cfg.get('architectures', ['?'])[0]}, vocab {vocab}), "
          f"{conc} closed-loop streaming /v1/completions clients, prompt {a.prompt} token ids, "
          f"{a.gen} output tokens, greedy, ignore_eos, {a.threads} threads, {a.duration:g} s per side, "
          f"{a.rounds} round(s), order off,on then alternating")
    print(f"# server: {' '.join(sides['true']['cmd'][:-4])} --data-dir TMP --log-interactions true|false")
    print()
    print("| log_interactions | output tok/s (mean) | output tok/s (best) | req/s (mean) | requests "
          "| server CPU ms/token | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    mean, cpu_tok = {}, {}
    for log in ("false", "true"):
        runs = sides[log]["runs"]
        mean[log] = sum(r["tok_s"] for r in runs) / len(runs)
        cpu_tok[log] = sum(r["cpu_s"] for r in runs) / max(sum(r["tokens"] for r in runs), 1)
        print(f"| {log} | {mean[log]:.1f} | {max(r['tok_s'] for r in runs):.1f} | "
              f"{sum(r['req_s'] for r in runs) / len(runs):.2f} | {sum(r['requests'] for r in runs)} | "
              f"{1e3 * cpu_tok[log]:.3f} | {len(sides[log]['errors'])} |")
    ratio = mean["true"] / mean["false"]
    cost = 100.0 * (1.0 - ratio)
    # each round's two runs are adjacent in time: their ratio cancels most
    # of what other load on the machine does, the median of the rounds the rest
    pairs = [t["tok_s"] / f["tok_s"] for t, f in zip(sides["true"]["runs"], sides["false"]["runs"])]
    print()
    print(f"logging on / off: {ratio:.3f} of the means, {median(pairs):.3f} median of the {len(pairs)} rounds' "
          f"ratios {' '.join(f'{x:.3f}' for x in pairs)} (logging costs {cost:.1f}% of output tok/s by the "
          f"means, {100 * (1 - median(pairs)):.1f}% by the median; target < 5%: "
          f"{'ok' if 100 * (1 - median(pairs)) < 5.0 else 'MISSED'})")
    print(f"server CPU per output token, on / off: {cpu_tok['true'] / cpu_tok['false']:.3f} "
          f"(the server's own user+sys time, which other load on the machine hardly changes)")
    n = st["entries"]["interactions"]
    logged = st["logged"] - before["logged"]
    commits = st["commits"] - before["commits"]
    if n:
        print(f"storage: {n} interactions, {st['data_bytes']} B in LMDB pages = {st['data_bytes'] / n:.0f} B "
              f"per interaction ({st['map_used'] / n:.0f} B per interaction "
              f"of file high-water mark, map {st['map_size'] >> 20} MiB); "
              f"{logged} logged in {commits} group commits = {logged / max(commits, 1):.1f} per commit, "
              f"{1e3 * (st['commit_seconds'] - before['commit_seconds']) / max(commits, 1):.2f} ms per commit; "
              f"{st['log_failed']} failed")
    print(f"log_interactions false: {st_off['entries']['interactions']} interactions stored (expected 0)")
    bad = (any(sd["errors"] for sd in sides.values()) or st["log_failed"]
           or st_off["entries"]["interactions"] != 0)
    for log, sd in sides.items():
        if sd["errors"]:
            print(f"  ! log_interactions {log}: {len(sd['errors'])} failed requests: {sd['errors'][:3]}")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--r1d", default=str(ROOT / "build" / "r1d"))
    ap.add_argument("--bench-engine", default=str(ROOT / "build" / "bench" / "bench_engine"))
    ap.add_argument("--model", help="model folder (default: a random one made with r1d model init)")
    ap.add_argument("--preset", default="tiny", choices=["tiny", "small"], help="for the made model")
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--conc", default="1,8,64")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="rounds per concurrency; the best is reported")
    ap.add_argument("--no-engine", action="store_true", help="skip the bench_engine comparison")
    ap.add_argument("--logging-compare", action="store_true",
                    help="--log-interactions true vs false at max(--conc) streaming clients")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per side and round (--logging-compare)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of both sides (--logging-compare)")
    a = ap.parse_args()
    concs = [int(c) for c in a.conc.split(",")]
    tmp = None
    model = a.model
    if not model:
        tmp = tempfile.TemporaryDirectory(prefix="r1d-bench-")
        model = os.path.join(tmp.name, f"r1d-{a.preset}")
        subprocess.run([a.r1d, "model", "init", "--arch", "qwen2", "--preset", a.preset, "--seed", "1",
                        "--out", model], check=True, stdout=subprocess.DEVNULL)
    cfg = json.loads(Path(model, "config.json").read_text())
    vocab = int(cfg["vocab_size"])
    # ids the tokenizer can name: config.json's vocab_size may be padded past
    # the tokenizer (the tiny preset: 272 rows, 265 tokens); bench_engine has no
    # tokenizer and draws from all rows, the server would refuse the extra ids
    tok = json.loads(Path(model, "tokenizer.json").read_text())
    n_tok = 1 + max(list(tok["model"]["vocab"].values()) + [t["id"] for t in tok.get("added_tokens", [])])
    vocab = min(vocab, n_tok)
    max_len = a.prompt + a.gen
    if max_len > int(cfg.get("max_position_embeddings", max_len)):
        sys.exit("bench_server: prompt + gen exceeds the model's context")

    engine = {}
    if not a.no_engine and not a.logging_compare:
        engine, engine_cmd = engine_numbers(a.bench_engine, model, a.threads, a.prompt, a.gen, concs)

    kv_blocks = (max_len + 15) // 16 * max(concs)
    cmd = [a.r1d, "serve", "--model", model, "--host", "127.0.0.1", "--port", "0",
           "--threads", str(a.threads), "--max-num-seqs", str(max(concs)), "--max-queued", str(2 * max(concs)),
           "--max-model-len", str(max_len), "--kv-blocks", str(kv_blocks)]
    if a.logging_compare:
        return logging_compare(a, cmd, model, cfg, vocab, max(concs))
    data = tempfile.TemporaryDirectory(prefix="r1d-bench-data-")
    cmd += ["--data-dir", data.name]
    srv = Server(cmd)
    try:
        srv.wait_ready()
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/v1/models", timeout=10) as r:
            model_id = json.load(r)["data"][0]["id"]
        # warm-up, as bench_engine does: one short request
        asyncio.run(run_batch(srv.port, model_id, 1, min(32, a.prompt), 4, vocab, a.seed + 99))
        rows = []
        for k, c in enumerate(concs):
            rounds = [asyncio.run(run_batch(srv.port, model_id, c, a.prompt, a.gen, vocab,
                                            a.seed + 1000 * k + j)) for j in range(a.repeat)]
            best = max(rounds, key=lambda r: r["tok_s"])
            best["errors"] = [e for r in rounds for e in r["errors"]]
            best["tokens"], best["expected"] = (sum(r["tokens"] for r in rounds),
                                                sum(r["expected"] for r in rounds))
            rows.append(best)
    finally:
        srv.stop()

    print(f"# bench_server: {model} ({cfg.get('architectures', ['?'])[0]}, vocab {vocab}), "
          f"prompt {a.prompt} token ids (distinct per request), {a.gen} output tokens, greedy, "
          f"ignore_eos, {a.threads} threads, streaming /v1/completions")
    print(f"# server: {' '.join(cmd)}")
    if engine:
        print(f"# engine alone: {engine_cmd}")
        print("# differences: bench_engine runs without detokenization and submits in-process; "
              "the server detokenizes, writes SSE over TCP and shares the cores with this client; "
              "prompt ids are drawn by different RNGs (same lengths and range); "
              "step token budget: server default vs bench_engine's 512")
    print()
    print("| concurrent | req/s | output tok/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms "
          "| tokens/chunk | engine tok/s | HTTP / engine |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    bad = False
    for r in rows:
        e = engine.get(r["conc"])
        ratio = f"{r['tok_s'] / e:.2f}" if e else "n/a"
        print(f"| {r['conc']} | {r['req_s']:.2f} | {r['tok_s']:.1f} | {1e3 * r['ttft50']:.1f} | "
              f"{1e3 * r['ttft99']:.1f} | {1e3 * r['itl50']:.2f} | {1e3 * r['itl99']:.2f} | "
              f"{r['tok_per_chunk']:.2f} | {e if e else 'n/a'} | {ratio} |")
        if r["errors"] or r["tokens"] != r["expected"]:
            bad = True
            print(f"  ! {len(r['errors'])} failed requests, {r['tokens']} of {r['expected']} tokens: "
                  f"{r['errors'][:3]}")
    data.cleanup()
    if tmp:
        tmp.cleanup()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
