#!/usr/bin/env bash
# `make demo`: build what the local system needs, then run it
# (scripts/demo.mjs): mqttspec-server --demo, the worker on workerd, a `ttf`
# forwarder exposing the broker and the dashboard through the tunnel, and a
# sensor publisher. Prints `Dashboard: <url>`; Ctrl-C stops everything.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH" WRANGLER_SEND_METRICS=false
echo "demo: building (the first time takes several minutes)"
cargo build -q --bins
bash scripts/build-pkg.sh
bash scripts/build-worker.sh | tail -1
exec node scripts/demo.mjs
