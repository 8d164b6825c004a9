# Sourced by the other scripts: R1D_URL (default http://127.0.0.1:8000),
# R1D_API_KEY (optional), R1D_MODEL (default: the first id of /v1/models).
R1D_URL=${R1D_URL:-http://127.0.0.1:8000}
AUTH=()
if [ -n "${R1D_API_KEY:-}" ]; then AUTH=(-H "Authorization: Bearer $R1D_API_KEY"); fi
model() {
  if [ -n "${R1D_MODEL:-}" ]; then echo "$R1D_MODEL"; return; fi
  curl -sSf "${AUTH[@]}" "$R1D_URL/v1/models" | grep -o '"id": *"[^"]*"' | head -1 | sed 's/.*"\([^"]*\)"$/\1/'
}
