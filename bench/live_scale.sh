#!/usr/bin/env bash
# Benchmark of live data at scale (issue 16; loopback only, bounded counts,
# stops by itself): notifications/s with 1 and 3 mqttspec-server instances
# on one mosquitto and one PostgreSQL (started here), latency from another
# application's INSERT (PostgreSQL, SQLite) to a subscriber, and resume vs
# full re-read of a 10,000-row live query. Prints a markdown report.
# Results: docs/BENCHMARKS.md. Needs mosquitto and postgresql (Debian), root.
source "$(dirname "$0")/../scripts/spec-bench-env.sh"
echo "building mqttspec-server and live_bench (release) into $CARGO_TARGET_DIR ..." >&2
cargo build --release -q -p spec-server --bin mqttspec-server --example live_bench
export MQTTSPEC_SERVER_BIN="$CARGO_TARGET_DIR/release/mqttspec-server"
timeout 900 "$CARGO_TARGET_DIR/release/examples/live_bench"
