#!/usr/bin/env bash
# Builds the npm package `mqttspec-wasm` into client-wasm/pkg/ without
# wasm-pack: cargo (wasm32, profile wasm-pkg) -> wasm-bindgen (--target web, ES module
# glue + .d.ts) -> wasm-opt -Oz (npm binaryen) -> one ES module per entry point bundled
# and minified by esbuild (the glue, the JS MQTT driver client-wasm/js/mqtt-client.js,
# and the line that hands the driver the wasm's MqttCore) -> short wasm import names
# -> package.json from template.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
out=client-wasm/pkg
target="${CARGO_TARGET_DIR:-$root/target}"
# bindgen FEATURES DIR NAME [snip]: build client-wasm with FEATURES, generate the
# ES module glue and .d.ts as NAME*, optimize the wasm into DIR, and bundle the
# glue with the MQTT driver into DIR/NAME.js. `snip`: panics trap at once
# (scripts/snip-panics.mjs; for the entry without a panic hook).
bindgen() {
  cargo build -q -p client-wasm --target wasm32-unknown-unknown --profile wasm-pkg $1
  local glue; glue=$(mktemp -d)
  wasm-bindgen --target web --keep-debug --out-dir "$glue" --out-name "$3" \
    "$target/wasm32-unknown-unknown/wasm-pkg/client_wasm.wasm"
  if [ "${4:-}" = snip ]; then
    node scripts/snip-panics.mjs "$glue/$3_bg.wasm" "$glue/$3_bg.wasm"
  fi
  # The driver: the copy wasm-bindgen made for SpecClient's import when there is
  # one (so the bundle holds one MqttClient), else the source file.
  local driver; driver=$(find "$glue" -path "*/snippets/*" -name mqtt-client.js | head -1)
  driver=${driver:-$root/client-wasm/js/mqtt-client.js}
  cat > "$glue/entry.js" <<JS
import { MqttCore } from './$3.js';
import { setCore } from '$driver';
setCore(MqttCore);
export * from './$3.js';
export { default } from './$3.js';
export { MqttClient } from '$driver';
JS
  mkdir -p "$2"
  mv "$glue/$3_bg.wasm" "$glue/$3.d.ts" "$glue/$3_bg.wasm.d.ts" "$2/"
  # --one-caller-inline-max-function-size=25: functions called once are not
  # merged into their caller past 25 bytes (bigger but ~2.5 KB smaller in gzip).
  # --low-memory-unused: nothing lives below address 1024 (the bottom of the
  # 1 MiB stack); --zero-filled-memory: the module's own memory starts zeroed.
  node_modules/.bin/wasm-opt -Oz --converge --one-caller-inline-max-function-size=25 --strip-debug \
    --low-memory-unused --zero-filled-memory --strip-producers --strip-target-features \
    --enable-bulk-memory --enable-nontrapping-float-to-int --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$2/$3_bg.wasm" -o "$2/$3_bg.wasm"
  node_modules/.bin/esbuild --bundle --minify --format=esm --log-level=warning "$glue/entry.js" \
    --outfile="$2/$3.js"
  rm -rf "$glue"
  node scripts/minify-imports.mjs "$2" "$3" # short import names (scripts/minify-imports.mjs)
}
rm -rf "$out" && mkdir -p "$out/mqtt"
# `mqttspec-wasm`: MqttClient + SpecClient. `mqttspec-wasm/mqtt`: MqttClient alone.
bindgen "" "$out" mqttspec_wasm
bindgen --no-default-features "$out/mqtt" mqttspec_mqtt snip
# wasm-bindgen declares `[Symbol.dispose]()`: have the declarations pull in the lib that
# types it, so apps on ES2022 libs type-check them without skipLibCheck.
for d in "$out/mqttspec_wasm.d.ts" "$out/mqtt/mqttspec_mqtt.d.ts"; do
  sed -i '1i /// <reference lib="esnext.disposable" />' "$d"
done
# Hand-written JS entries (widgets, live stores, React bindings, the SharedWorker) ship as
# written; the MQTT driver is inside both bundles.
cp client-wasm/js/*.js client-wasm/js/*.d.ts "$out/"
rm "$out/mqtt-client.js"
cp client-wasm/README.md client-wasm/CHANGELOG.md LICENSE-MIT LICENSE-APACHE "$out/"
version=$(awk -F'"' '/^version = / {print $2; exit}' Cargo.toml)
repository=$(awk -F'"' '/^repository = / {print $2; exit}' Cargo.toml)
sed -e "s/@VERSION@/$version/" -e "s|@REPOSITORY@|$repository|g" client-wasm/package.template.json > "$out/package.json"
echo "pkg: $out ($(wc -c < "$out/mqttspec_wasm_bg.wasm") bytes of wasm; MQTT only: $(wc -c < "$out/mqtt/mqttspec_mqtt_bg.wasm"))"
