#!/usr/bin/env bash
# Benchmark of mqttspec-server through its embedded broker (loopback only,
# bounded counts, stops by itself): read-by-id requests/s with 16 clients vs
# ping round trips, and notification fan-out latency to 1,000 subscribers vs
# a plain MQTT publish fanned out by the same broker. Prints a markdown report.
# Results: docs/BENCHMARKS.md.
source "$(dirname "$0")/../scripts/spec-bench-env.sh"
echo "building spec_bench (release) into $CARGO_TARGET_DIR ..." >&2
cargo build --release -q -p spec-server --example spec_bench
timeout 600 "$CARGO_TARGET_DIR/release/examples/spec_bench"
