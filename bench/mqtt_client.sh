#!/usr/bin/env bash
# Benchmark of the browser MQTT client (client-wasm, `mqttspec-wasm/mqtt`)
# against MQTT.js 5 in one headless Chromium page through one mosquitto:
# package size (gzip), QoS 0 receive rate, QoS 1 acknowledged publish rate.
# Prints ratios measured in this run. Loopback only, bounded counts.
# Knobs: BENCH_RECEIVE_N (50000), BENCH_PUBLISH_N (5000), BENCH_ROUNDS (3).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
# Always measure the current sources.
MQTT_CLIENT_REBUILD=1 exec node tests/node/mqtt_client/bench.mjs
