#!/usr/bin/env bash
# Liveness, readiness, version and the Prometheus metrics (first lines).
# Run: R1D_URL=http://127.0.0.1:8000 [R1D_API_KEY=...] ./ops.sh
set -euo pipefail
. "$(dirname "$0")/_env.sh"
for p in /health /ready /version; do
  echo "GET $p: $(curl -sSf "${AUTH[@]}" "$R1D_URL$p")"
done
echo "GET /metrics:"
curl -sSf "${AUTH[@]}" "$R1D_URL/metrics" | awk '/^r1d_/ && n++ < 20' # reads it all: no SIGPIPE
