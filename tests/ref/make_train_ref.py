"""Make the training fixtures that test_train_ref.c compares r1d against.

Run from the repository root (after make_model_fixtures.py, whose tiny
models it reuses):

    build/venv-ref/bin/python tests/ref/make_train_ref.py

For tests/fixtures/models/tiny-qwen2 and tiny-llama, in float32 with
attn_implementation="eager" on the CPU:

  ref_grads.safetensors  d(loss)/d(param) for EVERY parameter, under the
                         checkpoint's tensor names (a tied lm_head has one
                         tensor, the embedding, holding both uses' gradient)
  ref_train.json         {"ids", "targets", "loss", "adamw": {"lr", "betas",
                          "eps", "weight_decay", "no_decay", "losses"}}

The batch is one packed sequence of 48 seeded token ids; targets[i] is
ids[i+1], with the first 12 positions (a "prompt") and the last one set to -1
(ignored), so the loss is the mean cross-entropy over the 35 answer tokens,
as SFT computes it. "losses" is the loss before each of 10 torch.optim.AdamW
steps (foreach=False) on that batch, with weight decay only on tensors whose
name has no "norm" and does not end in ".bias" (r1d_optim_default_decay).
"""

import json
import os

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "models")
N_TOKENS, N_PROMPT, STEPS = 48, 12, 10
LR, BETAS, EPS, WD = 1e-3, (0.9, 0.999), 1e-8, 0.1


def no_decay(name):
    return "norm" in name or name.endswith(".bias")


def batch(vocab, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (N_TOKENS,), generator=g)
    targets = torch.full((N_TOKENS,), -1, dtype=torch.long)
    targets[N_PROMPT:N_TOKENS - 1] = ids[N_PROMPT + 1:]
    return ids, targets


def loss_of(model, ids, targets):
    logits = model(input_ids=ids[None]).logits[0].float()
    return torch.nn.functional.cross_entropy(logits, targets, ignore_index=-1)


def named_params(model):
    """Parameters under the checkpoint's names; a tied head appears once."""
    seen, out = set(), []
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        out.append((name, p))
    return out


def make(name, seed):
    d = os.path.join(ROOT, name)
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.train()  # no dropout in these configs; train() only for clarity
    ids, targets = batch(model.config.vocab_size, seed)
    model.zero_grad()
    loss = loss_of(model, ids, targets)
    loss.backward()
    grads = {n: p.grad.detach().clone().contiguous() for n, p in named_params(model)}
    save_file(grads, os.path.join(d, "ref_grads.safetensors"))

    params = named_params(model)
    opt = torch.optim.AdamW(
        [{"params": [p for n, p in params if not no_decay(n)], "weight_decay": WD},
         {"params": [p for n, p in params if no_decay(n)], "weight_decay": 0.0}],
        lr=LR, betas=BETAS, eps=EPS, foreach=False)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        step_loss = loss_of(model, ids, targets)
        losses.append(step_loss.item())
        step_loss.backward()
        opt.step()
    ref = {"ids": ids.tolist(), "targets": targets.tolist(), "loss": loss.item(),
           "adamw": {"lr": LR, "betas": list(BETAS), "eps": EPS, "weight_decay": WD,
                     "no_decay": [n for n, _ in params if no_decay(n)], "losses": losses}}
    with open(os.path.join(d, "ref_train.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    print(f"{name}: loss {loss.item():.6f}, {len(grads)} gradient tensors, "
          f"AdamW losses {losses[0]:.4f} -> {losses[-1]:.4f}")


if __name__ == "__main__":
    torch.manual_seed(0)
    make("tiny-qwen2", 11)
    make("tiny-llama", 12)
