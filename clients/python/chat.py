"""Chat completion, not streamed: prints the reasoning, the answer and the usage.
Run: R1D_URL=http://127.0.0.1:8000 [R1D_API_KEY=...] python chat.py ["question"]"""
import sys

from _common import client, model

c = client()
r = c.chat.completions.create(model=model(c), max_tokens=128,
                              messages=[{"role": "user", "content": " ".join(sys.argv[1:]) or "What is 12 + 30?"}])
msg = r.choices[0].message
# reasoning_content is an r1d (and DeepSeek) extension: not a declared SDK field
extra = msg.model_extra or {}
print("thinking:", getattr(msg, "reasoning_content", None) or extra.get("reasoning_content") or extra.get("reasoning") or "")
print("answer:", msg.content)
print("finish:", r.choices[0].finish_reason, "| usage:", r.usage.model_dump_json())
