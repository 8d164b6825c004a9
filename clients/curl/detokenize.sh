#!/usr/bin/env bash
# Text for token ids. Run: R1D_URL=http://127.0.0.1:8000 [R1D_API_KEY=...] ./detokenize.sh [ID,ID,...]
set -euo pipefail
. "$(dirname "$0")/_env.sh"
IDS=${1:-72,105,33}
curl -sSf "${AUTH[@]}" "$R1D_URL/detokenize" -H 'Content-Type: application/json' -d "{\"tokens\": [$IDS]}"
echo
