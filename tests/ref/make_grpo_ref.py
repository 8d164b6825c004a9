"""Make the GRPO fixtures that test_grpo.c compares r1d against.

Run from the repository root (after make_model_fixtures.py, whose tiny
models it reuses):

    build/venv-ref/bin/python tests/ref/make_grpo_ref.py

For tests/fixtures/models/tiny-qwen2 and tiny-llama, in float32 with
attn_implementation="eager" on the CPU, the GRPO objective written out the
way TRL's GRPOTrainer computes it (each sample run through the model on its
own, no packing):

  ref_grpo.json           {"samples": [{"prompt", "completion", "lp_old",
                           "lp_ref"}], "rewards", "advantages", "group_size",
                           "beta", "epsilon_low", "epsilon_high",
                           "max_completion_length",
                           "losses": {"grpo", "dapo", "dr_grpo"},
                           "grad_sq": {loss_type: {tensor: sum of squares}}}
  ref_grpo_grads.safetensors   d(loss)/d(param) for EVERY parameter, loss
                           type "grpo" (tied lm_head: one tensor)

Two groups of G = 3 completions of seeded random tokens. lp_old and lp_ref
are the policy's own logprobs moved by seeded noise, so that some ratios
fall outside the clip range on both sides and the KL term is not 0.
"""

import json
import os

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

from make_train_ref import named_params  # parameters under the checkpoint's names

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "models")
G, N_GROUPS = 3, 2
BETA, EPS_LOW, EPS_HIGH, L_MAX = 0.04, 0.2, 0.28, 12
REWARDS = [1.0, 0.0, 0.5, 0.0, 0.0, 1.0]


def advantages(rewards):
    r = torch.tensor(rewards, dtype=torch.float64).view(N_GROUPS, G)
    adv = (r - r.mean(dim=1, keepdim=True)) / (r.std(dim=1, keepdim=True) + 1e-4)
    return adv.view(-1).tolist()


def completion_logprobs(model, prompt, completion):
    ids = torch.tensor(prompt + completion)
    logits = model(input_ids=ids[None]).logits[0].float()
    logp = torch.log_softmax(logits[:-1], dim=-1)
    lp = logp.gather(1, ids[1:, None])[:, 0]
    return lp[len(prompt) - 1:]


def grpo_loss(model, samples, adv, loss_type):
    per_seq, n_tokens = [], 0
    for s, a in zip(samples, adv):
        lp = completion_logprobs(model, s["prompt"], s["completion"])
        old = torch.tensor(s["lp_old"])
        ref = torch.tensor(s["lp_ref"])
        ratio = torch.exp(lp - old)
        c1 = ratio * a
        c2 = torch.clamp(ratio, 1 - EPS_LOW, 1 + EPS_HIGH) * a
        per_tok = -torch.min(c1, c2)
        kl = torch.exp(ref - lp) - (ref - lp) - 1
        per_tok = per_tok + BETA * kl
        per_seq.append(per_tok)
        n_tokens += len(s["completion"])
    n = len(samples)
    if loss_type == "grpo":
        return sum(t.sum() / len(t) for t in per_seq) / n
    if loss_type == "dapo":
        return sum(t.sum() for t in per_seq) / n_tokens
    return sum(t.sum() for t in per_seq) / (n * L_MAX)


def make(name, seed):
    d = os.path.join(ROOT, name)
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.train()
    g = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    samples = []
    for grp in range(N_GROUPS):
        prompt = torch.randint(0, vocab, (5 + 2 * grp,), generator=g).tolist()
        for _ in range(G):
            n = int(torch.randint(2, L_MAX + 1, (1,), generator=g))
            completion = torch.randint(0, vocab, (n,), generator=g).tolist()
            with torch.no_grad():
                lp = completion_logprobs(model, prompt, completion)
            old = lp + (torch.rand(n, generator=g) - 0.5) * 0.8
            ref = lp + (torch.rand(n, generator=g) - 0.5) * 1.0
            samples.append({"prompt": prompt, "completion": completion,
                            "lp_old": old.tolist(), "lp_ref": ref.tolist()})
    adv = advantages(REWARDS)
    losses, grad_sq = {}, {}
    for loss_type in ("grpo", "dapo", "dr_grpo"):
        model.zero_grad()
        loss = grpo_loss(model, samples, adv, loss_type)
        loss.backward()
        losses[loss_type] = loss.item()
        grads = {n: p.grad.detach().clone().contiguous() for n, p in named_params(model)}
        grad_sq[loss_type] = {n: float((t.double() ** 2).sum()) for n, t in grads.items()}
        if loss_type == "grpo":
            save_file(grads, os.path.join(d, "ref_grpo_grads.safetensors"))
    ref = {"samples": samples, "rewards": REWARDS, "advantages": adv,
           "group_size": G, "beta": BETA, "epsilon_low": EPS_LOW,
           "epsilon_high": EPS_HIGH, "max_completion_length": L_MAX,
           "losses": losses, "grad_sq": grad_sq}
    with open(os.path.join(d, "ref_grpo.json"), "w") as f:
        json.dump(ref, f)
        f.write("\n")
    print(f"{name}: losses {losses}")


if __name__ == "__main__":
    torch.manual_seed(0)
    make("tiny-qwen2", 21)
    make("tiny-llama", 22)
