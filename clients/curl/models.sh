#!/usr/bin/env bash
# Lists the served model(s): id, created, owned_by, max_model_len, weight_version.
# Run: R1D_URL=http://127.0.0.1:8000 [R1D_API_KEY=...] ./models.sh
set -euo pipefail
. "$(dirname "$0")/_env.sh"
curl -sSf "${AUTH[@]}" "$R1D_URL/v1/models"
echo
