"""Python `tokenizers` on the same texts as bench/bench_tokenizer.c.

    ./build/bench/bench_tokenizer --write-texts /tmp/tokbench
    TOKENIZERS_PARALLELISM=false build/venv-ref/bin/python \
        bench/bench_tokenizer_py.py /tmp/tokbench [tokenizer_dir]

Encodes each line (document) separately with Tokenizer.encode on one thread
and prints MiB/s and tokens/s in the C benchmark's format, best of 3."""

import os
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")
from tokenizers import Tokenizer  # noqa: E402


def main():
    texts = sys.argv[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    shared = os.environ.get("R1D_SHARED", os.path.join(root, "..", "shared"))
    tokdir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        shared, "fixtures", "tokenizers", "qwen3")
    t0 = time.perf_counter()
    tok = Tokenizer.from_file(os.path.join(tokdir, "tokenizer.json"))
    print(f"tokenizer {tokdir}: loaded in {time.perf_counter() - t0:.3f} s, "
          "Python tokenizers, one thread, per-document encode")
    for name in ("english", "cjk"):
        with open(os.path.join(texts, name + ".txt"), encoding="utf-8") as f:
            data = f.read()
        docs = data.split("\n")[:-1]
        nbytes = len(data.encode("utf-8"))
        best, ntok = 1e30, 0
        for _ in range(3):
            t0 = time.perf_counter()
            ntok = sum(len(tok.encode(d, add_special_tokens=False).ids)
                       for d in docs)
            best = min(best, time.perf_counter() - t0)
        mib = nbytes / (1 << 20)
        print(f"{name:<8} {mib:6.2f} MiB  {ntok:9d} tokens  "
              f"{mib / best:7.2f} MiB/s  {ntok / best:9.0f} tokens/s")


if __name__ == "__main__":
    main()
