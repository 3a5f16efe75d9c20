#!/usr/bin/env bash
# Builds edge-worker/ into edge-worker/build/ with worker-build, pointing it
# at the locally installed wasm-bindgen, wasm-opt and esbuild so that nothing
# is downloaded. wrangler.toml's [build] command runs this.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$HOME/.cargo/bin/wasm-bindgen}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$root/node_modules/.bin/wasm-opt}"
export ESBUILD_BIN="${ESBUILD_BIN:-$root/node_modules/.bin/esbuild}"
for tool in "$WASM_BINDGEN_BIN" "$WASM_OPT_BIN" "$ESBUILD_BIN"; do
  [ -x "$tool" ] || { echo "build-worker: $tool is missing; run 'bash scripts/bootstrap.sh' first" >&2; exit 1; }
done
# Skip the build (about 25 s, mostly wasm-opt) when the output is newer than
# every input; wrangler runs this at each start. WORKER_REBUILD=1 forces it.
out="$root/edge-worker/build/index.js"
if [ "${WORKER_REBUILD:-0}" != 1 ] && [ -f "$out" ] && [ -z "$(find "$root/edge-worker/src" "$root/edge-worker/Cargo.toml" \
    "$root/crates/tunnel-proto" "$root/crates/mqtt-session" "$root/Cargo.lock" "$root/Cargo.toml" -newer "$out" -type f -print -quit)" ]; then
  echo "build-worker: edge-worker/build is up to date"
  exit 0
fi
cd "$root/edge-worker"
exec worker-build --release
