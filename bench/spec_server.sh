#!/usr/bin/env bash
# Benchmark of mqttspec-server through its embedded broker (loopback only,
# bounded counts, stops by itself): read-by-id requests/s with 16 clients vs
# ping round trips, and notification fan-out latency to 1,000 subscribers vs
# a plain MQTT publish fanned out by the same broker. Prints a markdown report.
# Results: docs/BENCHMARKS.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
# 2,000+ sockets in one process (1,000 subscribers x 2 connections, plus the broker's side).
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# Optimised, but without whole-program LTO to keep the build short on 2 cores;
# a separate target dir so these settings do not invalidate other release builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}/spec-bench"
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
echo "building spec_bench (release) into $CARGO_TARGET_DIR ..." >&2
cargo build --release -q -p spec-server --example spec_bench
timeout 600 "$CARGO_TARGET_DIR/release/examples/spec_bench"
