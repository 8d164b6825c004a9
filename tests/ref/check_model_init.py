"""Proves that a folder made by `r1d model init` is a real Hugging Face model:
transformers loads it (model, tokenizer, chat template) and agrees with r1d on
token ids, the rendered chat prompt, and the greedy continuation.

    build/venv-ref/bin/python tests/ref/check_model_init.py --r1d build/r1d

Needs torch/transformers (the reference venv), so it is not part of make test;
exits non-zero on any disagreement."""
import argparse
import json
import subprocess
import sys
import tempfile

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def r1d(binary, *args, stdin=None):
    return subprocess.run([binary, *args], input=stdin, capture_output=True, text=True,
                          check=True).stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--r1d", default="build/r1d")
    args = ap.parse_args()
    failures = 0
    for arch in ["qwen2", "llama"]:
        with tempfile.TemporaryDirectory() as d:
            r1d(args.r1d, "model", "init", "--arch", arch, "--preset", "tiny", "--seed", "5", "--out", d)
            tok = AutoTokenizer.from_pretrained(d)
            model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
            texts = ["Hello, world!", "<think>\n7+5=12\n</think>\n\n12", "深度求索 😀  tabs\t\tand\nnewlines"]
            ours = [json.loads(l) for l in r1d(args.r1d, "tokenize", "--model", d,
                    stdin="".join(json.dumps(t) + "\n" for t in texts)).splitlines()]
            theirs = [tok.encode(t, add_special_tokens=False) for t in texts]
            failures += ours != theirs
            print(f"{arch}: tokenizer ids {'agree' if ours == theirs else 'DIFFER'}")
            msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+3?"},
                    {"role": "assistant", "content": "<think>\nadd\n</think>\n\n5"},
                    {"role": "user", "content": "and 4+4?"}]
            ours_t = json.loads(r1d(args.r1d, "template", "--model", d, stdin=json.dumps(msgs) + "\n"))
            theirs_t = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            failures += ours_t != theirs_t
            print(f"{arch}: chat template {'agrees' if ours_t == theirs_t else 'DIFFERS'}: {ours_t!r}")
            ids = tok.encode(theirs_t, add_special_tokens=False)
            with torch.no_grad():
                out = model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False,
                                     eos_token_id=None, pad_token_id=0)
            hf_gen = out[0, len(ids):].tolist()
            ours_g = [json.loads(l)["id"] for l in r1d(
                args.r1d, "generate", "--model", d, "--prompt-ids", ",".join(map(str, ids)),
                "--max-tokens", "16", "--temperature", "0", "--ignore-eos", "--json").splitlines()]
            failures += ours_g != hf_gen
            print(f"{arch}: greedy continuation {'agrees' if ours_g == hf_gen else 'DIFFERS'}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
