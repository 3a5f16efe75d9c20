#!/usr/bin/env bash
# Builds the npm package `mqttspec-wasm` into client-wasm/pkg/ without
# wasm-pack: cargo (wasm32, release) -> wasm-bindgen (--target web, ES module
# glue + .d.ts) -> wasm-opt -Oz (npm binaryen) -> package.json from template.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
out=client-wasm/pkg
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build -q -p client-wasm --target wasm32-unknown-unknown --release
rm -rf "$out" && mkdir -p "$out"
wasm-bindgen --target web --out-dir "$out" --out-name mqttspec_wasm \
  "$target/wasm32-unknown-unknown/release/client_wasm.wasm"
node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$out/mqttspec_wasm_bg.wasm" -o "$out/mqttspec_wasm_bg.wasm"
version=$(awk -F'"' '/^version = / {print $2; exit}' Cargo.toml)
sed "s/@VERSION@/$version/" client-wasm/package.template.json > "$out/package.json"
[ -f client-wasm/README.md ] && cp client-wasm/README.md "$out/README.md"
echo "pkg: $out ($(wc -c < "$out/mqttspec_wasm_bg.wasm") bytes of wasm)"
