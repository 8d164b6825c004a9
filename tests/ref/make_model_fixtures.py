"""Make the tiny-model fixtures that test_forward.c compares r1d against.

Run from the repository root:

    build/venv-ref/bin/python tests/ref/make_model_fixtures.py

Builds two tiny, seeded, randomly initialised models with transformers and
saves them (float32 safetensors) under tests/fixtures/models/:

  tiny-qwen2  Qwen2ForCausalLM: q/k/v bias, untied lm_head, GQA 4:2,
              rope_theta 1e6, odd vocabulary (509).
  tiny-llama  LlamaForCausalLM: tied embeddings, GQA 3:1, head_dim 32,
              llama3 rope scaling with original_max_position_embeddings 64,
              so the scaling matters on the 333-token prompt.

Weights use a much larger spread than the default initialiser (std 0.15, norm
weights around 1) so that a wrong op shows up in the logits.

config.json is written in the classic layout the published checkpoints use
(rope_theta and rope_scaling at the top level), not transformers 5's
rope_parameters; the reference logits come from the model as transformers
reloads it from that folder, so the folder itself is what is being checked.

For each model, ref_logits.bin holds little-endian float32 logit rows and
ref_logits.json indexes them:
  {"vocab": V, "inv_freq": [...], "prompts": [
     {"ids": [...], "positions": [...], "offset": F, "decode_split": S}, ...]}
Row r of prompt p (the logits after token positions[r]) starts at float index
offset + r * V. decode_split S > 0 means the test also runs ids[:S] as one
prefill and then feeds ids[S:] one token at a time; every position >= S is
stored so each decode step has a reference row. Logits are computed in float32
with attn_implementation="eager" on the CPU.
"""

import json
import os
import struct

import torch
from transformers import (AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                    "fixtures", "models")

# (length, decode_split): the prompt runs once as a whole, and, when the split
# is > 0, as a prefill of ids[:split] followed by single-token decode steps.
PROMPTS = [(1, 0), (7, 1), (50, 20), (333, 300)]


def randomise(model, seed):
    """Large-spread weights: errors in any op move the logits visibly."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))


def classic_config(path, arch, rope_theta, rope_scaling):
    """Rewrite config.json with top-level rope_theta/rope_scaling."""
    with open(path) as f:
        cfg = json.load(f)
    cfg.pop("rope_parameters", None)
    cfg["architectures"] = [arch]
    cfg["rope_theta"] = rope_theta
    cfg["rope_scaling"] = rope_scaling
    cfg["torch_dtype"] = "float32"
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def position_set(n, split):
    """Every position for short prompts; for long ones every 16th, the last,
    and everything the decode steps produce."""
    if n <= 64:
        return list(range(n))
    pos = set(range(0, n, 16)) | {n - 1}
    if split > 0:
        pos |= set(range(split, n))
    return sorted(pos)


def make(name, model, arch, rope_theta, rope_scaling, seed):
    out = os.path.join(ROOT, name)
    os.makedirs(out, exist_ok=True)
    randomise(model, seed)
    model.save_pretrained(out, safe_serialization=True)
    classic_config(os.path.join(out, "config.json"), arch, rope_theta,
                   rope_scaling)

    ref = AutoModelForCausalLM.from_pretrained(
        out, dtype=torch.float32, attn_implementation="eager").eval()
    # The reload must be the same model: same weights, same rope frequencies.
    for (n1, p1), (n2, p2) in zip(model.named_parameters(),
                                  ref.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2), n1
    inv_a = model.model.rotary_emb.inv_freq
    inv_b = ref.model.rotary_emb.inv_freq
    assert torch.equal(inv_a, inv_b), (inv_a, inv_b)

    vocab = ref.config.vocab_size
    g = torch.Generator().manual_seed(seed + 1)
    prompts, rows, offset = [], [], 0
    with torch.no_grad():
        for n, split in PROMPTS:
            ids = torch.randint(0, vocab, (1, n), generator=g)
            logits = ref(input_ids=ids).logits[0].float()  # [n, vocab]
            pos = position_set(n, split)
            rows.append(logits[pos].contiguous())
            prompts.append({"ids": ids[0].tolist(), "positions": pos,
                            "offset": offset, "decode_split": split})
            offset += len(pos) * vocab
    data = torch.cat(rows).flatten().tolist()
    with open(os.path.join(out, "ref_logits.bin"), "wb") as f:
        f.write(struct.pack("<%df" % len(data), *data))
    index = {"model": name, "vocab": vocab,
             "inv_freq": [float(x) for x in inv_b.tolist()],
             "prompts": prompts}
    with open(os.path.join(out, "ref_logits.json"), "w") as f:
        json.dump(index, f)
        f.write("\n")
    print(name, "rows", offset // vocab, "max |logit|",
          float(torch.cat(rows).abs().max()))


def main():
    torch.manual_seed(0)
    qcfg = Qwen2Config(vocab_size=509, hidden_size=64, intermediate_size=128,
                       num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, max_position_embeddings=512,
                       rms_norm_eps=1e-6, rope_theta=1000000.0,
                       tie_word_embeddings=False, bos_token_id=11,
                       eos_token_id=12)
    make("tiny-qwen2", Qwen2ForCausalLM(qcfg), "Qwen2ForCausalLM", 1000000.0,
         None, seed=1234)

    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    lcfg = LlamaConfig(vocab_size=512, hidden_size=96, intermediate_size=112,
                       num_hidden_layers=2, num_attention_heads=3,
                       num_key_value_heads=1, max_position_embeddings=512,
                       rms_norm_eps=1e-5, rope_theta=500000.0,
                       rope_scaling=dict(scaling), tie_word_embeddings=True,
                       bos_token_id=5, eos_token_id=[6, 7])
    make("tiny-llama", LlamaForCausalLM(lcfg), "LlamaForCausalLM", 500000.0,
         scaling, seed=5678)


if __name__ == "__main__":
    main()
