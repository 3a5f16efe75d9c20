#!/usr/bin/env bash
# Benchmark of WebSocket relay through the tunnel, loopback only, bounded
# counts, same run, same local echo server (node `ws`):
#   direct   client -> local echo server
#   tunnel   client -> wrangler dev (edge worker + Tunnel DO) -> ttf (v3: batched frames) -> local echo server
#   tunnel_wd  the same through workerd run directly (no wrangler proxy; skipped without
#            node_modules/.bin/workerd)
#   tunnel_v2  the same through a second ttf held to protocol v2 (`--protocol 2`: one tunnel
#            message per frame, as before issue 17), the baseline of the batching; the
#            100 B rows of both are the better of two runs, measured alternately
# Reports messages/s for 100-byte messages and MB/s for 64 KiB messages
# (echoed, a window of unanswered messages in flight) and the tunnel/direct
# ratios against the target (>= 30% of direct), and the time of a 50 MiB
# download (curl, streamed through the tunnel) vs direct.
# Knobs: SMALL_N (100 B messages, default 20000), BIG_N (64 KiB messages,
# default 1000), WINDOW (in flight, default 64).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH" WRANGLER_SEND_METRICS=false CI=true
SMALL_N="${SMALL_N:-20000}"
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
run "$direct" 100 500 >/dev/null

read -r d_small_mps _ < <(run "$direct" 100 "$SMALL_N")
# v3 and v2 share the edge: measured alternately, twice each, the better
# run of each kept (the DO warms up over the first runs).
run "$tunnel_v2" 100 500 >/dev/null
best() { python3 -c "import sys; print(max(int(x) for x in sys.argv[1:]))" "$@"; }
read -r t1 _ < <(run "$tunnel" 100 "$SMALL_N")
read -r v1 _ < <(run "$tunnel_v2" 100 "$SMALL_N")
read -r t2 _ < <(run "$tunnel" 100 "$SMALL_N")
read -r v2b _ < <(run "$tunnel_v2" 100 "$SMALL_N")
t_small_mps=$(best "$t1" "$t2")
v2_small_mps=$(best "$v1" "$v2b")
echo "100 B runs: v3 $t1, $t2; v2 $v1, $v2b"
wd_small_mps=skipped
if [ -n "$tunnel_wd" ]; then
  run "$tunnel_wd" 100 500 >/dev/null
  read -r wd_small_mps _ < <(run "$tunnel_wd" 100 "$SMALL_N")
fi
read -r _ d_big_mbs < <(run "$direct" 65536 "$BIG_N")
read -r _ t_big_mbs < <(run "$tunnel" 65536 "$BIG_N")

dl() { curl -sf -o /dev/null -w '%{time_total}' "$1/download?n=$((50 * 1024 * 1024))"; }
d_dl=$(dl "http://127.0.0.1:$echo_port")
t_dl=$(dl "http://127.0.0.1:$w_port/$tunnel_id")

ratio() { python3 -c "print(f'{100*$1/$2:.1f}%')"; }
echo
echo "WebSocket relay, echo, window $WINDOW, $(nproc) cores (shared)"
printf '%-28s %12s %12s %8s\n' "" direct tunnel ratio
printf '%-28s %12s %12s %8s\n' "100 B messages/s ($SMALL_N)" "$d_small_mps" "$t_small_mps" "$(ratio "$t_small_mps" "$d_small_mps")"
printf '%-28s %12s %12s %8s\n' "100 B, ttf --protocol 2" "$d_small_mps" "$v2_small_mps" "$(ratio "$v2_small_mps" "$d_small_mps")"
[ -n "$tunnel_wd" ] && printf '%-28s %12s %12s %8s\n' "100 B, workerd directly" "$d_small_mps" "$wd_small_mps" "$(ratio "$wd_small_mps" "$d_small_mps")"
printf '%-28s %12s %12s %8s\n' "64 KiB MB/s ($BIG_N)" "$d_big_mbs" "$t_big_mbs" "$(ratio "$t_big_mbs" "$d_big_mbs")"
printf '%-28s %12s %12s %8s\n' "50 MiB download, s" "$d_dl" "$t_dl" "$(ratio "$d_dl" "$t_dl")"
echo "target: tunnel >= 30% of direct for both message rows (download row: direct time / tunnel time)"
