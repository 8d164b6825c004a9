"""Import rate of `r1d tasks import`: N generated tasks (a mix of every checker
type, about 300 bytes a line, a quarter without an id) into a fresh data
dir, timed end to end (process start, read, validate, one durable write
transaction). Then the same file again into that data dir, where three quarters of the
ids are taken (the others get fresh generated ids), and an export of the
result (1.25 N tasks by then).

    build/venv/bin/python bench/bench_tasks_import.py --r1d build/r1d [--n 100000]

Prints tasks/s for each; best of --repeat runs. A benchmark, not a test."""
import argparse
import json
import os
import random
import shutil
import subprocess
import tempfile
import time


def make_tasks(n, seed):
    rng = random.Random(seed)
    words = "the a number of apples pears each box holds how many are left total sum".split()
    for i in range(n):
        prompt = " ".join(rng.choice(words) for _ in range(rng.randint(20, 40))) + "?"
        kind = i % 5
        if kind == 0:
            checker = {"type": "math", "answer": str(rng.randint(0, 10**6)), "tolerance": 0.001}
        elif kind == 1:
            nums = [rng.randint(1, 100) for _ in range(4)]
            checker = {"type": "countdown", "numbers": nums, "target": rng.randint(1, 1000)}
        elif kind == 2:
            checker = {"type": "exact", "answer": rng.choice(words), "case_sensitive": False}
        elif kind == 3:
            checker = {"type": "regex", "pattern": r"^\s*(%d|%s)\s*$" % (i, rng.choice(words)), "flags": "i"}
        else:
            checker = {"type": "code", "tests": [{"input": "%d\n" % i, "output": "%d\n" % (2 * i)}]}
        task = {"prompt": prompt, "checker": checker, "split": "eval" if i % 10 == 0 else "train",
                "source": "bench", "tags": ["gen"]}
        if i % 4:
            task = {"id": "bench-%d" % i, **task}
        yield json.dumps(task)


def timed(cmd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - t0, p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--r1d", default="build/r1d")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="r1d-bench-tasks-")
    try:
        src = os.path.join(tmp, "tasks.jsonl")
        with open(src, "w") as f:
            for line in make_tasks(args.n, args.seed):
                f.write(line + "\n")
        size = os.path.getsize(src)
        best = {"import": None, "re-import (3/4 duplicates)": None, "export": None}
        count = {"import": args.n, "re-import (3/4 duplicates)": args.n,
                 "export": args.n + (args.n + 3) // 4}
        for r in range(args.repeat):
            data = os.path.join(tmp, "data%d" % r)
            dt, p = timed([args.r1d, "tasks", "import", src, "--data-dir", data])
            if p.returncode != 0 or not p.stdout.startswith("imported %d tasks, 0 bad" % args.n):
                raise SystemExit("import failed (%d): %s %s" % (p.returncode, p.stdout, p.stderr[:500]))
            best["import"] = min(best["import"] or dt, dt)
            dt, p = timed([args.r1d, "tasks", "import", src, "--data-dir", data])
            # the tasks without an id get new ones; the rest are duplicates
            n_gen = (args.n + 3) // 4
            want = "imported %d tasks, %d bad lines" % (n_gen, args.n - n_gen)
            if not p.stdout.startswith(want):
                raise SystemExit("re-import: expected %r, got %r" % (want, p.stdout))
            best["re-import (3/4 duplicates)"] = min(best["re-import (3/4 duplicates)"] or dt, dt)
            out = os.path.join(tmp, "out.jsonl")
            dt, p = timed([args.r1d, "tasks", "export", "--data-dir", data, "-o", out])
            if p.returncode != 0:
                raise SystemExit("export failed: " + p.stderr)
            best["export"] = min(best["export"] or dt, dt)
            shutil.rmtree(data)
        print("%d tasks, %.1f MB of JSONL, best of %d" % (args.n, size / 1e6, args.repeat))
        for name, dt in best.items():
            print("  %-26s %7.3f s  %10.0f tasks/s" % (name, dt, count[name] / dt))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
