#!/usr/bin/env bash
# The local demo: the worker on workerd (wrangler dev), a `ttf` forwarder
# exposing a local web server through the tunnel. Prints the URLs, runs
# until Ctrl-C, then stops everything it started.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH" WRANGLER_SEND_METRICS=false
worker_port="${DEMO_WORKER_PORT:-8787}"
web_port="${DEMO_WEB_PORT:-3000}"
logs=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null; done; wait 2>/dev/null; echo "demo: stopped (logs in $logs)"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "demo: building (first time takes a few minutes)"
cargo build -q --bins
bash scripts/build-worker.sh > "$logs/build-worker.log" 2>&1 || { cat "$logs/build-worker.log"; exit 1; }

setsid python3 -m http.server "$web_port" --bind 127.0.0.1 --directory web > "$logs/web.log" 2>&1 & pids+=($!)
setsid node_modules/.bin/wrangler dev --ip 127.0.0.1 --port "$worker_port" --show-interactive-dev-session=false \
  > "$logs/wrangler.log" 2>&1 & pids+=($!)
for _ in $(seq 600); do grep -q "Ready on" "$logs/wrangler.log" && break; sleep 0.2; done
grep -q "Ready on" "$logs/wrangler.log" || { echo "demo: wrangler dev did not start:"; cat "$logs/wrangler.log"; exit 1; }
echo "demo: worker on workerd at http://127.0.0.1:$worker_port"

setsid target/debug/ttf --endpoint "ws://127.0.0.1:$worker_port/_tunnel" --port "$web_port" 2>&1 | tee "$logs/ttf.log" & pids+=($!)
echo "demo: logs in $logs; Ctrl-C stops everything"
wait
