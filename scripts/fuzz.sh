#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of every decoder fed by the
# network: the targets in fuzz/fuzz_targets/, each a thin call into
# crates/fuzz-targets (which `make test` also runs through a short proptest
# pass on stable). Installs, once, what it needs: a minimal nightly
# toolchain (rustup) and cargo-fuzz (crates.io).
# Knobs: FUZZ_SECONDS per target (default 120), FUZZ_TARGETS (default: all).
# A crash stops the run; its input is in fuzz/artifacts/<target>/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
FUZZ_SECONDS="${FUZZ_SECONDS:-120}"

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: rustup toolchain install nightly --profile minimal (once)"
  rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null; then
  echo "fuzz: cargo install cargo-fuzz --locked (once, a few minutes)"
  cargo install cargo-fuzz --locked
fi

cd fuzz
targets="${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}"
for t in $targets; do
  echo "=== fuzz $t for ${FUZZ_SECONDS} s"
  mkdir -p "corpus/$t"
  log="$(mktemp)"
  if ! cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$FUZZ_SECONDS" -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
    tail -60 "$log"
    echo "fuzz: $t crashed; the input is in fuzz/artifacts/$t/"
    exit 1
  fi
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || tail -5 "$log"
  rm -f "$log"
done
echo "fuzz: every target ran ${FUZZ_SECONDS} s without a crash"
