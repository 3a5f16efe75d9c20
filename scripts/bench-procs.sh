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

# start_workerd [BINDING...]: run this repo's worker build (edge-worker/build,
# made by wrangler dev's build step) on workerd directly, without wrangler's
# proxy in front, on $wd_port (set here), with extra capnp bindings such as
# '(name = "BENCH_FLOOR", text = "true")'. Returns 1 when workerd is not
# installed. (capnp embeds are relative to the config file: the build is
# copied next to it.)
start_workerd() {
  local wd_bin="$root/node_modules/.bin/workerd" extra=""
  [ -x "$wd_bin" ] || { echo "no node_modules/.bin/workerd: skipping the direct-workerd rows"; return 1; }
  for b in "$@"; do extra="$extra, $b"; done
  wd_port=$(free_port)
  mkdir -p "$work/wd/state"
  cp "$root/edge-worker/build/index.js" "$root/edge-worker/build/index_bg.wasm" "$work/wd/"
  cat >"$work/wd/config.capnp" <<CAPNP
using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .edge), (name = "do-disk", disk = (path = "$work/wd/state", writable = true)) ],
  sockets = [ (name = "http", address = "127.0.0.1:$wd_port", http = (), service = "main") ],
);
const edge :Workerd.Worker = (
  modules = [ (name = "index.js", esModule = embed "index.js"), (name = "index_bg.wasm", wasm = embed "index_bg.wasm") ],
  compatibilityDate = "2025-09-01",
  bindings = [ (name = "TUNNEL", durableObjectNamespace = "Tunnel"), (name = "BASE_DOMAIN", text = ""),
               (name = "REQUIRE_AUTH", text = "false")$extra ],
  durableObjectNamespaces = [ (className = "Tunnel", uniqueKey = "mqttspec-edge-Tunnel", enableSql = true) ],
  durableObjectStorage = (localDisk = "do-disk"),
);
CAPNP
  start workerd "$wd_bin" serve "$work/wd/config.capnp" --experimental
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$wd_port/_health" >/dev/null && return 0; sleep 0.1; done
  echo "workerd did not come up:"; cat "$work/workerd.log"; return 1
}
