# Process helpers shared by the bench scripts that start servers (sourced,
# not run): a scratch folder $work, background processes in their own
# process groups killed on exit, free ports and waiting for a log line.

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# start NAME CMD...: run in its own process group, output to $work/NAME.log
start() { local name=$1; shift; setsid "$@" >"$work/$name.log" 2>&1 & pids+=($!); }
wait_line() { # FILE TEXT SECS
  for _ in $(seq 1 $(( $3 * 10 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1:"; cat "$1"; exit 1
}
