"""Writes tests/fixtures/safetensors/small.safetensors with the Python
safetensors library (torch flavour), so test_safetensors.c checks that r1d
reads files produced by the reference implementation, and prints the bit
patterns torch gives for float32 -> bfloat16 / float16 conversions of tricky
values (ties, subnormals, overflow), which the C test hard-codes.

Run: build/venv-ref/bin/python tests/ref/make_safetensors_fixture.py
Deterministic: fixed values, no randomness.
"""
import os
import struct

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "safetensors", "small.safetensors")

vals = [0.0, 1.0, -2.5, 3.14159, 1e-30, -65504.0]
tensors = {
    "a.f32": torch.tensor(vals, dtype=torch.float32).reshape(2, 3),
    "b.bf16": torch.tensor(vals, dtype=torch.float32).to(torch.bfloat16),
    "c.f16": torch.tensor([0.0, -0.0, 1.0, 65504.0, 2.0**-24, float("inf"),
                           float("-inf"), 2.0**-14], dtype=torch.float16),
    "d.i64": torch.tensor([1, -2, 1 << 40], dtype=torch.int64),
    "e.scalar": torch.tensor(7.0, dtype=torch.float32),
}
os.makedirs(os.path.dirname(OUT), exist_ok=True)
save_file(tensors, OUT, metadata={"format": "pt"})
print("wrote", OUT, os.path.getsize(OUT), "bytes")

def f32bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]

tricky = [1.0, 1.00390625, 1.01171875, 1.0029296875, 1.0048828125,
          3.4e38, 3.3961e38, -1e-40, 1e-45, 65519.0, 65520.0, 2.0**-25,
          2.0**-25 * 1.5, 2.0**-24 * 1.5, 5.9604645e-08, 6.1e-5, -0.0,
          float("inf"), 0.1, 1e-8, 12345.678]
print("/* value bits, bf16 bits, f16 bits */")
for x in tricky:
    t = torch.tensor([x], dtype=torch.float32)
    bf = t.to(torch.bfloat16).view(torch.int16).item() & 0xFFFF
    hf = t.to(torch.float16).view(torch.int16).item() & 0xFFFF
    print("    {0x%08x, 0x%04x, 0x%04x}," % (f32bits(t.item()), bf, hf))
