#!/usr/bin/env bash
# Builds the npm package `mqttspec-wasm` into client-wasm/pkg/ without
# wasm-pack: cargo (wasm32, profile wasm-pkg) -> wasm-bindgen (--target web, ES module
# glue + .d.ts) -> wasm-opt -Oz (npm binaryen) -> the JS glue minified (npm
# esbuild: names of exports and of the wasm imports are kept) -> package.json
# from template.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
out=client-wasm/pkg
target="${CARGO_TARGET_DIR:-$root/target}"
# bindgen FEATURES DIR NAME: build client-wasm with FEATURES, generate the
# ES module glue and .d.ts into DIR as NAME*, optimize the wasm and minify the glue.
bindgen() {
  cargo build -q -p client-wasm --target wasm32-unknown-unknown --profile wasm-pkg $1
  wasm-bindgen --target web --out-dir "$2" --out-name "$3" \
    "$target/wasm32-unknown-unknown/wasm-pkg/client_wasm.wasm"
  # --one-caller-inline-max-function-size=25: functions called once are not
  # merged into their caller past 25 bytes (bigger but ~2.5 KB smaller in gzip).
  # --low-memory-unused: nothing lives below address 1024 (the bottom of the
  # 1 MiB stack); --zero-filled-memory: the module's own memory starts zeroed.
  node_modules/.bin/wasm-opt -Oz --converge --one-caller-inline-max-function-size=25 \
    --low-memory-unused --zero-filled-memory --strip-producers --strip-target-features \
    --enable-bulk-memory --enable-nontrapping-float-to-int --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$2/$3_bg.wasm" -o "$2/$3_bg.wasm"
  node_modules/.bin/esbuild --minify --format=esm --log-level=warning "$2/$3.js" \
    --outfile="$2/$3.min.js"
  mv "$2/$3.min.js" "$2/$3.js"
  node scripts/minify-imports.mjs "$2" "$3" # short import names (scripts/minify-imports.mjs)
}
rm -rf "$out" && mkdir -p "$out/mqtt"
# `mqttspec-wasm`: MqttClient + SpecClient. `mqttspec-wasm/mqtt`: MqttClient alone.
bindgen "" "$out" mqttspec_wasm
bindgen --no-default-features "$out/mqtt" mqttspec_mqtt
# wasm-bindgen declares `[Symbol.dispose]()`: have the declarations pull in the lib that
# types it, so apps on ES2022 libs type-check them without skipLibCheck.
for d in "$out/mqttspec_wasm.d.ts" "$out/mqtt/mqttspec_mqtt.d.ts"; do
  sed -i '1i /// <reference lib="esnext.disposable" />' "$d"
done
# Hand-written JS entries (widgets, live stores, React bindings, the SharedWorker) ship as written.
cp client-wasm/js/*.js client-wasm/js/*.d.ts "$out/"
cp client-wasm/README.md client-wasm/CHANGELOG.md LICENSE-MIT LICENSE-APACHE "$out/"
version=$(awk -F'"' '/^version = / {print $2; exit}' Cargo.toml)
repository=$(awk -F'"' '/^repository = / {print $2; exit}' Cargo.toml)
sed -e "s/@VERSION@/$version/" -e "s|@REPOSITORY@|$repository|g" client-wasm/package.template.json > "$out/package.json"
echo "pkg: $out ($(wc -c < "$out/mqttspec_wasm_bg.wasm") bytes of wasm; MQTT only: $(wc -c < "$out/mqtt/mqttspec_mqtt_bg.wasm"))"
