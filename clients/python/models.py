"""Lists the served models. Run: R1D_URL=http://127.0.0.1:8000 [R1D_API_KEY=...] python models.py"""
from _common import client

for m in client().models.list().data:
    extra = m.model_extra or {}
    print(m.id, "| owned_by:", m.owned_by, "| max_model_len:", extra.get("max_model_len"),
          "| weight_version:", extra.get("weight_version"))
