#!/usr/bin/env bash
# Chat completion streamed as server-sent events (one `data: {...}` chunk per
# piece, reasoning_content first, then content, then `data: [DONE]`).
# Run: R1D_URL=http://127.0.0.1:8000 [R1D_API_KEY=...] ./chat_stream.sh ["question"]
set -euo pipefail
. "$(dirname "$0")/_env.sh"
Q=${1:-What is 12 + 30?}
curl -sSfN "${AUTH[@]}" "$R1D_URL/v1/chat/completions" -H 'Content-Type: application/json' -d @- <<JSON
{"model": "$(model)", "messages": [{"role": "user", "content": "$Q"}], "max_tokens": 64,
 "stream": true, "stream_options": {"include_usage": true}}
JSON
