# Sourced by the mqttspec-server benchmarks (bench/spec_server.sh,
# bench/live_scale.sh): repository root as cwd, cargo on PATH, enough file
# descriptors, and one optimised build setting and target dir for both.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
# 2,000+ sockets in one process (1,000 subscribers x 2 connections, plus the broker's side).
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# Optimised, but without whole-program LTO to keep the build short on 2 cores;
# a separate target dir so these settings do not invalidate other release builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}/spec-bench"
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
