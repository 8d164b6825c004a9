"""Writes tests/fixtures/optim/adamw_ref.safetensors: torch.optim.AdamW over
10 steps on two small tensors (one in a weight-decay group, one in a
no-decay group, as rl/optim.h's r1d_optim_default_decay splits norms and
biases), with the learning rate from transformers'
get_cosine_with_min_lr_schedule_with_warmup, so a C test can check rl/optim.c
against the reference implementation itself rather than our reading of it.

Contents (all float32 unless noted):
  init.w, init.norm            parameters before step 1
  grad.<k>.w, grad.<k>.norm    the gradient fed to step k (k = 1..10)
  param.<k>.w, param.<k>.norm  parameters after step k
  m.10.*, v.10.*               exp_avg / exp_avg_sq after step 10
  lr (float64, [10])           the lr used at step k (scheduler before step)
Metadata: the hyperparameters and the torch version.

foreach=False pins torch's _single_tensor_adamw (the CPU default anyway),
whose operation order rl/optim.c follows.

Not run by `make test`; tests/rl/test_optim_torch.c reads the committed
fixture. Rebuild with `make fixtures` (or the line below):
  build/venv-ref/bin/python tests/ref/make_optim_ref.py
Deterministic: a seeded torch.Generator.
"""
import os

import torch
from safetensors.torch import save_file
from transformers import get_cosine_with_min_lr_schedule_with_warmup

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "optim", "adamw_ref.safetensors")

LR, MIN_LR, WARMUP, TOTAL = 1e-2, 1e-3, 3, 10
BETAS, EPS, WD = (0.9, 0.999), 1e-8, 0.1

gen = torch.Generator().manual_seed(1234)
w = torch.nn.Parameter(0.5 * torch.randn(37, generator=gen))
norm = torch.nn.Parameter(1.0 + 0.1 * torch.randn(16, generator=gen))
params = {"w": w, "norm": norm}

opt = torch.optim.AdamW(
    [{"params": [w], "weight_decay": WD},
     {"params": [norm], "weight_decay": 0.0}],
    lr=LR, betas=BETAS, eps=EPS, foreach=False)
sched = get_cosine_with_min_lr_schedule_with_warmup(
    opt, num_warmup_steps=WARMUP, num_training_steps=TOTAL, min_lr=MIN_LR)

out = {f"init.{n}": p.detach().clone() for n, p in params.items()}
lrs = []
for k in range(1, TOTAL + 1):
    lrs.append(opt.param_groups[0]["lr"])
    for n, p in params.items():
        scale = 0.1 if n == "w" else 0.02
        p.grad = scale * torch.randn(p.shape, generator=gen)
        out[f"grad.{k}.{n}"] = p.grad.detach().clone()
    opt.step()
    sched.step()
    for n, p in params.items():
        out[f"param.{k}.{n}"] = p.detach().clone()
for n, p in params.items():
    st = opt.state[p]
    out[f"m.{TOTAL}.{n}"] = st["exp_avg"].detach().clone()
    out[f"v.{TOTAL}.{n}"] = st["exp_avg_sq"].detach().clone()
out["lr"] = torch.tensor(lrs, dtype=torch.float64)

meta = {
    "format": "pt",
    "torch": torch.__version__,
    "lr": repr(LR), "min_lr": repr(MIN_LR), "warmup_steps": str(WARMUP),
    "total_steps": str(TOTAL), "beta1": repr(BETAS[0]),
    "beta2": repr(BETAS[1]), "eps": repr(EPS), "weight_decay": repr(WD),
    "decay_group": "w", "no_decay_group": "norm",
}
os.makedirs(os.path.dirname(OUT), exist_ok=True)
save_file(out, OUT, metadata=meta)
print("wrote", OUT, os.path.getsize(OUT), "bytes")
