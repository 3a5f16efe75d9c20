#!/usr/bin/env bash
# SpecClient in headless Chromium vs a hand-written MQTT.js exchange, against
# a release build of mqttspec-server: round trip, liveQuery apply rate,
# 10,000-row reads. Figures in docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p spec-server
bash scripts/build-pkg.sh > /dev/null
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" SPEC_SERVER_PROFILE=release node tests/node/spec_client/bench.mjs
