#!/usr/bin/env bash
# Runs every benchmark under bench/ (each an executable script that prints
# its own report); see docs/BENCHMARKS.md for recorded results.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH" WRANGLER_SEND_METRICS=false
shopt -s nullglob
benches=(bench/*.sh)
((${#benches[@]})) || { echo "bench: no benchmarks under bench/ yet"; exit 0; }
for b in "${benches[@]}"; do
  printf '\n\033[1m=== %s\033[0m\n' "$b"
  bash "$b"
done
