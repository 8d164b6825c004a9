#!/usr/bin/env bash
# Raw completion (no chat template): a text prompt, then the same from token ids.
# Run: R1D_URL=http://127.0.0.1:8000 [R1D_API_KEY=...] ./completions.sh ["prompt"]
set -euo pipefail
. "$(dirname "$0")/_env.sh"
P=${1:-Once upon a time}
M=$(model)
curl -sSf "${AUTH[@]}" "$R1D_URL/v1/completions" -H 'Content-Type: application/json' \
  -d "{\"model\": \"$M\", \"prompt\": \"$P\", \"max_tokens\": 32, \"temperature\": 0}"
echo
curl -sSf "${AUTH[@]}" "$R1D_URL/v1/completions" -H 'Content-Type: application/json' \
  -d "{\"model\": \"$M\", \"prompt\": [72, 105, 33], \"max_tokens\": 8, \"echo\": true, \"logprobs\": 1}"
echo
