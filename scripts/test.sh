#!/usr/bin/env bash
# Runs every test suite of the repository, keeps going after a failure, and
# ends with a pass/fail summary (exit 1 if any suite failed).
# Suites: lint, native unit/integration tests, wasm tests in headless
# Chromium, the worker built for workerd, end-to-end tests across processes,
# Python tests (paho-mqtt) under tests/python/, and Node tests (MQTT.js,
# Playwright) under tests/node/.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH" WRANGLER_SEND_METRICS=false
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p tests/artifacts
passed=(); failed=()
suite() {
  local name=$1; shift
  printf '\n\033[1m=== %s\033[0m\n' "$name"
  local start=$SECONDS
  if "$@"; then passed+=("$name"); echo "--- $name: ok ($((SECONDS - start)) s)";
  else failed+=("$name"); echo "--- $name: FAILED ($((SECONDS - start)) s)"; fi
}
native_members=(-p tunnel-proto -p jwt-auth -p fuzz-targets -p mqttspec-proto -p mqttspec-client -p mqtt-session -p forwarder -p spec-server)

suite "rustfmt" cargo fmt --all --check
suite "clippy (native)" cargo clippy --workspace --exclude client-wasm --exclude edge-worker --all-targets -- -D warnings
suite "clippy (wasm32)" cargo clippy -p client-wasm -p edge-worker --target wasm32-unknown-unknown --all-targets -- -D warnings
suite "native tests" cargo test "${native_members[@]}"
suite "wasm tests (headless Chromium)" bash scripts/test-wasm.sh
suite "worker build (worker-build)" bash scripts/build-worker.sh
suite "wrangler deploy --dry-run" bash -c 'out=$(mktemp -d) && node_modules/.bin/wrangler deploy --dry-run --outdir "$out" && ls "$out"/*.js >/dev/null && rm -rf "$out"'
suite "end-to-end tests (workerd, ttf, peers)" bash -c 'cargo build --bins && cargo test -p e2e -- --test-threads=2'
suite "python tests (paho-mqtt)" bash -c 'cargo build -q --bin mqttspec-server && python3 -m unittest tests/python/test_broker.py'
if compgen -G 'tests/node/*.test.mjs' >/dev/null; then
  suite "node tests (MQTT.js, Playwright)" node --test --test-concurrency=1 --test-timeout=300000 tests/node/
fi

printf '\n\033[1m=== summary\033[0m\n'
for s in "${passed[@]}"; do echo "  ok      $s"; done
for s in "${failed[@]}"; do echo "  FAILED  $s"; done
echo "suites: ${#passed[@]} passed, ${#failed[@]} failed"
((${#failed[@]} == 0))
