#!/usr/bin/env bash
# Token ids for a text, and for chat messages rendered with the chat template.
# Run: R1D_URL=http://127.0.0.1:8000 [R1D_API_KEY=...] ./tokenize.sh ["text"]
set -euo pipefail
. "$(dirname "$0")/_env.sh"
T=${1:-Hello <think>world</think>}
curl -sSf "${AUTH[@]}" "$R1D_URL/tokenize" -H 'Content-Type: application/json' -d "{\"prompt\": \"$T\"}"
echo
curl -sSf "${AUTH[@]}" "$R1D_URL/tokenize" -H 'Content-Type: application/json' \
  -d '{"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": true}'
echo
