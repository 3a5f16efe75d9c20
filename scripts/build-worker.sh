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
cd "$root/edge-worker"
exec worker-build --release
