"""Raw completion (no chat template) from a text prompt and from token ids,
with echo and logprobs. Run: R1D_URL=http://127.0.0.1:8000 [R1D_API_KEY=...] python completions.py ["prompt"]"""
import sys

from _common import client, model

c = client()
m = model(c)
r = c.completions.create(model=m, prompt=" ".join(sys.argv[1:]) or "Once upon a time", max_tokens=32, temperature=0)
print("text:", repr(r.choices[0].text), "| finish:", r.choices[0].finish_reason)
r = c.completions.create(model=m, prompt=[72, 105, 33], max_tokens=8, echo=True, logprobs=1)
lp = r.choices[0].logprobs
print("echo:", repr(r.choices[0].text))
for tok, l in zip(lp.tokens, lp.token_logprobs):
    print(f"  {tok!r:>12} {l if l is None else round(l, 3)}")
