"""Proves that what `r1d sft` writes is a Hugging Face model that transformers
loads and computes with exactly as r1d does, and that r1d's SFT loss is the
loss a TRL user would compute (template prompt masked, reply learned).

For a random tiny Qwen2 and a tied-embedding Llama (`r1d model init`):
  1. `r1d sft` trains 12 steps on generated chat data, holding out one
     conversation as --eval-data; the final eval loss is measured on the
     weights the last checkpoint holds.
  2. transformers loads OUT/last (no missing or unexpected tensors), and
     computes the loss of the same conversation: prompt =
     apply_chat_template(messages[:-1], add_generation_prompt=True), labels
     -100 on it and the reply tokens after it. Both losses must agree to 1e-5
     (relative).
  3. Greedy continuations of transformers and `r1d generate` agree.
  4. A --bf16 checkpoint loads too.

    build/venv-ref/bin/python tests/ref/check_sft_checkpoint.py --r1d build/r1d

Needs torch/transformers (the reference venv), so it is not part of make test;
exits non-zero on any disagreement."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def r1d(binary, *args):
    p = subprocess.run([binary, *args], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"r1d {' '.join(args)} failed: {p.stderr}")
    return p


def conversation(i):
    a, b = 2 + i % 9, 4 + (i * 5) % 11
    return [{"role": "user", "content": f"What is {a} * {b}?"},
            {"role": "assistant", "reasoning_content": f"{a} times {b} makes {a * b}.",
             "content": f"{a * b}"}]


def hf_loss(model, tok, msgs):
    """The SFT loss as TRL computes it for the r1-distill template: labels only
    on the reply, which keeps its thoughts (the prompt ends in "<think>\\n")."""
    prompt = tok.apply_chat_template(msgs[:-1], add_generation_prompt=True, tokenize=False)
    last = msgs[-1]
    reply = last["reasoning_content"] + "\n</think>\n\n" + last["content"] + tok.eos_token
    p_ids = tok.encode(prompt, add_special_tokens=False)
    r_ids = tok.encode(reply, add_special_tokens=False)
    ids = torch.tensor([p_ids + r_ids])
    labels = torch.tensor([[-100] * len(p_ids) + r_ids])
    with torch.no_grad():
        return model(input_ids=ids, labels=labels).loss.item(), p_ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--r1d", default="build/r1d")
    args = ap.parse_args()
    failures = 0
    for arch in ["qwen2", "llama"]:
        with tempfile.TemporaryDirectory() as d:
            model_dir, out = os.path.join(d, "model"), os.path.join(d, "out")
            r1d(args.r1d, "model", "init", "--arch", arch, "--preset", "tiny", "--seed", "3",
                "--out", model_dir)
            train, held = os.path.join(d, "train.jsonl"), os.path.join(d, "eval.jsonl")
            with open(train, "w") as f:
                for i in range(40):
                    f.write(json.dumps({"messages": conversation(i)}) + "\n")
            msgs = conversation(41)
            with open(held, "w") as f:
                f.write(json.dumps({"messages": msgs}) + "\n")
            p = r1d(args.r1d, "sft", "--model", model_dir, "--data", train, "--eval-data", held,
                    "--out", out, "--max-steps", "12", "--lr", "2e-3", "--max-len", "256",
                    "--threads", "2", "--progress", "json")
            evals = [json.loads(l) for l in p.stdout.splitlines() if "eval_loss" in l]
            ours = evals[-1]["eval_loss"]
            last = os.path.join(out, "last")
            tok = AutoTokenizer.from_pretrained(last)
            model, info = AutoModelForCausalLM.from_pretrained(
                last, dtype=torch.float32, output_loading_info=True)
            model.eval()
            bad_keys = {k: v for k, v in info.items() if v and k != "mismatched_keys" or
                        (k == "mismatched_keys" and v)}
            if bad_keys:
                failures += 1
                print(f"{arch}: loading reported {bad_keys}")
            theirs, p_ids = hf_loss(model, tok, msgs)
            rel = abs(ours - theirs) / abs(theirs)
            ok = rel <= 1e-5
            failures += not ok
            print(f"{arch}: eval loss r1d {ours:.7f} transformers {theirs:.7f} "
                  f"(rel {rel:.1e}) {'agree' if ok else 'DIFFER'}")
            with torch.no_grad():
                gen = model.generate(torch.tensor([p_ids]), max_new_tokens=12, do_sample=False,
                                     eos_token_id=None, pad_token_id=0)
            hf_gen = gen[0, len(p_ids):].tolist()
            ours_g = [json.loads(l)["id"] for l in r1d(
                args.r1d, "generate", "--model", last, "--prompt-ids", ",".join(map(str, p_ids)),
                "--max-tokens", "12", "--temperature", "0", "--ignore-eos",
                "--json").stdout.splitlines()]
            failures += ours_g != hf_gen
            print(f"{arch}: greedy continuation {'agrees' if ours_g == hf_gen else 'DIFFERS'}")
            bf = os.path.join(d, "bf16")
            r1d(args.r1d, "sft", "--model", model_dir, "--data", train, "--out", bf,
                "--max-steps", "2", "--max-len", "256", "--threads", "2", "--bf16",
                "--progress", "json")
            m16 = AutoModelForCausalLM.from_pretrained(os.path.join(bf, "last"), dtype="auto")
            dtype = next(m16.parameters()).dtype
            print(f"{arch}: bf16 checkpoint loads ({dtype})")
            failures += dtype != torch.bfloat16
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
