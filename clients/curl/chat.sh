#!/usr/bin/env bash
# Chat completion, not streamed: prints the JSON response (message.content and
# message.reasoning_content). Run: R1D_URL=http://127.0.0.1:8000 [R1D_API_KEY=...] ./chat.sh ["question"]
set -euo pipefail
. "$(dirname "$0")/_env.sh"
Q=${1:-What is 12 + 30?}
curl -sSf "${AUTH[@]}" "$R1D_URL/v1/chat/completions" -H 'Content-Type: application/json' -d @- <<JSON
{"model": "$(model)", "messages": [{"role": "user", "content": "$Q"}], "max_tokens": 64}
JSON
echo
