#!/usr/bin/env bash
# Benchmark of WebSocket relay through the tunnel, loopback only, bounded
# counts, same run, same local echo server (node `ws`):
#   direct   client -> local echo server
#   tunnel   client -> wrangler dev (edge worker + Tunnel DO) -> ttf (v3: batched frames) -> local echo server
#   tunnel_wd  the same through workerd run directly (no wrangler proxy; skipped without
#            node_modules/.bin/workerd)
#   tunnel_v2  the same through a second ttf held to protocol v2 (`--protocol 2`: one tunnel
#            message per frame, as before issue 17), the baseline of the batching; the
#            100 B rows are medians of alternated rounds (ROUNDS)
# Reports messages/s for 100-byte messages and MB/s for 64 KiB messages
# (echoed, a window of unanswered messages in flight) and the tunnel/direct
# ratios against the target (>= 30% of direct), and the time of a 50 MiB
# download (curl, streamed through the tunnel) vs direct.
# Knobs: SMALL_N (100 B messages, default 20000), ROUNDS (alternated rounds of
# the 100 B rows, default 3), BIG_N (64 KiB messages, default 1000), WINDOW
# (in flight, default 64).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH" WRANGLER_SEND_METRICS=false CI=true
SMALL_N="${SMALL_N:-20000}"
ROUNDS="${ROUNDS:-3}"
BIG_N="${BIG_N:-1000}"
WINDOW="${WINDOW:-64}"
target="${CARGO_TARGET_DIR:-$root/target}"

echo "building ttf (release)"
cargo build --release -q -p forwarder --bin ttf

# shellcheck source=../scripts/bench-procs.sh
. "$root/scripts/bench-procs.sh"

start echo node tests/node/tunnel/ws_echo.mjs
wait_line "$work/echo.log" "listening" 20
echo_port=$(awk '/listening/ {print $2; exit}' "$work/echo.log")

w_port=$(free_port)
echo "starting wrangler dev (builds the worker)"
start wrangler node_modules/.bin/wrangler dev --ip 127.0.0.1 --port "$w_port" \
  --inspector-port "$(free_port)" --persist-to "$work/state" --show-interactive-dev-session=false --log-level error
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$w_port/_health" >/dev/null && break; sleep 1; done
curl -sf "http://127.0.0.1:$w_port/_health" >/dev/null || { echo "wrangler dev did not come up:"; cat "$work/wrangler.log"; exit 1; }
start ttf "$target/release/ttf" -e "ws://127.0.0.1:$w_port/_tunnel" -p "$echo_port" --inspect 127.0.0.1:0
wait_line "$work/ttf.log" "established" 60
tunnel_id=$(awk '/established/ {print $2; exit}' "$work/ttf.log")
start ttf-v2 "$target/release/ttf" -e "ws://127.0.0.1:$w_port/_tunnel" -p "$echo_port" --protocol 2 --inspect 127.0.0.1:0
wait_line "$work/ttf-v2.log" "established" 60
v2_id=$(awk '/established/ {print $2; exit}' "$work/ttf-v2.log")

direct="ws://127.0.0.1:$echo_port/echo"
tunnel="ws://127.0.0.1:$w_port/$tunnel_id/echo"
tunnel_v2="ws://127.0.0.1:$w_port/$v2_id/echo"
tunnel_wd=""
if start_workerd; then
  start ttf-wd "$target/release/ttf" -e "ws://127.0.0.1:$wd_port/_tunnel" -p "$echo_port" --inspect 127.0.0.1:0
  wait_line "$work/ttf-wd.log" "established" 60
  tunnel_wd="ws://127.0.0.1:$wd_port/$(awk '/established/ {print $2; exit}' "$work/ttf-wd.log")/echo"
fi
run() { node tests/node/tunnel/ws_bench.mjs "$1" "$2" "$3" "$WINDOW"; }
echo "warm-up"
run "$tunnel" 100 500 >/dev/null
# The echo server (node) is still warming up over its first tens of
# thousands of messages: a cold direct round measured 30 % slower.
run "$direct" 100 "$SMALL_N" >/dev/null
run "$direct" 100 "$SMALL_N" >/dev/null

# The 100 B rows: ROUNDS rounds, each running direct and then every tunnel
# path once (alternated, so that a slow moment of this shared machine hits
# them all alike); a path's ratio is taken against the direct run of its own
# round and the median over the rounds is reported (the direct rate alone
# moves between 50k and 90k msg/s from one run to the next here).
paths="tunnel tunnel_v2"
[ -n "$tunnel_wd" ] && paths="$paths tunnel_wd"
for p in $paths; do run "${!p}" 100 500 >/dev/null; done
: >"$work/small.txt"
for r in $(seq 1 "$ROUNDS"); do
  read -r mps _ < <(run "$direct" 100 "$SMALL_N")
  line="direct=$mps"
  for p in $paths; do
    read -r mps _ < <(run "${!p}" 100 "$SMALL_N")
    line="$line $p=$mps"
  done
  echo "100 B, round $r of $ROUNDS: $line"
  echo "$line" >>"$work/small.txt"
done
read -r _ d_big_mbs < <(run "$direct" 65536 "$BIG_N")
read -r _ t_big_mbs < <(run "$tunnel" 65536 "$BIG_N")

dl() { curl -sf -o /dev/null -w '%{time_total}' "$1/download?n=$((50 * 1024 * 1024))"; }
d_dl=$(dl "http://127.0.0.1:$echo_port")
t_dl=$(dl "http://127.0.0.1:$w_port/$tunnel_id")

ratio() { python3 -c "print(f'{100*$1/$2:.1f}%')"; }
echo
echo "WebSocket relay, echo, window $WINDOW, $(nproc) cores (shared)"
printf '%-28s %12s %12s %8s\n' "" direct tunnel ratio
python3 - "$work/small.txt" "$SMALL_N" <<'PY'
import statistics, sys
rounds = [dict(kv.split("=") for kv in line.split()) for line in open(sys.argv[1])]
labels = {"tunnel": f"100 B messages/s ({sys.argv[2]})", "tunnel_v2": "100 B, ttf --protocol 2",
          "tunnel_wd": "100 B, workerd directly"}
direct = statistics.median(int(r["direct"]) for r in rounds)
for path, label in labels.items():
    if path not in rounds[0]:
        continue
    rate = statistics.median(int(r[path]) for r in rounds)
    ratio = statistics.median(100 * int(r[path]) / int(r["direct"]) for r in rounds)
    print(f"{label:28} {direct:12.0f} {rate:12.0f} {ratio:7.1f}%")
print(f"(100 B rows: medians of {len(rounds)} rounds; the ratio is the median of each round's tunnel/direct)")
PY
printf '%-28s %12s %12s %8s\n' "64 KiB MB/s ($BIG_N)" "$d_big_mbs" "$t_big_mbs" "$(ratio "$t_big_mbs" "$d_big_mbs")"
printf '%-28s %12s %12s %8s\n' "50 MiB download, s" "$d_dl" "$t_dl" "$(ratio "$d_dl" "$t_dl")"
echo "target: tunnel >= 30% of direct for both message rows (download row: direct time / tunnel time)"
