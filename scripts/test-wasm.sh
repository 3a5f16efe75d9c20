#!/usr/bin/env bash
# Runs client-wasm's wasm-bindgen tests in headless Chromium against a real
# mosquitto started here on free loopback ports:
#   - an anonymous websockets listener (MQTT_WS_URL),
#   - a websockets listener requiring user/password (MQTT_WS_AUTH_URL,
#     MQTT_USER, MQTT_PASS),
#   - a TCP listener (MQTT_TCP_PORT),
# with persistence on, plus mqttspec-server with its embedded broker on
# OS-assigned ports (SPEC_WS_URL), plus a tiny HTTP control server (MQTT_CONTROL_URL):
# `GET /restart` stops mosquitto gracefully (it saves its sessions), starts it
# again on the same ports and answers once it listens, so a wasm test can
# check reconnection, resubscription and QoS 1/2 delivery across a restart.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
dir=$(mktemp -d)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tcp_port=$(port); ws_port=$(port); auth_port=$(port); control_port=$(port)
user=dashboard pass="s3cret-$RANDOM"
mosquitto_passwd -b -c "$dir/passwd" "$user" "$pass" 2>/dev/null
cat > "$dir/mosquitto.conf" <<CONF
per_listener_settings true
# Stay the invoking user (as root mosquitto would switch to "mosquitto",
# which cannot read this private temp dir).
user $(id -un)
persistence true
persistence_location $dir/
listener $tcp_port 127.0.0.1
allow_anonymous true
listener $ws_port 127.0.0.1
protocol websockets
allow_anonymous true
listener $auth_port 127.0.0.1
protocol websockets
allow_anonymous false
password_file $dir/passwd
CONF
cat > "$dir/control.py" <<'PY'
"""Starts mosquitto and restarts it on GET /restart (CORS open for the test page)."""
import http.server, os, signal, socket, subprocess, sys, time

conf, log, ports = sys.argv[1], sys.argv[2], [int(p) for p in sys.argv[4:]]
control_port = int(sys.argv[3])
broker = None

def start():
    global broker
    broker = subprocess.Popen(["mosquitto", "-c", conf], stdout=open(log, "a"), stderr=subprocess.STDOUT)
    deadline = time.time() + 20
    for p in ports:
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", p), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit(f"mosquitto did not listen on {p}")

def stop():
    broker.send_signal(signal.SIGTERM)
    broker.wait(timeout=20)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/restart":
            stop()
            time.sleep(0.3)
            start()
            body, code = b"restarted", 200
        else:
            body, code = b"unknown endpoint: use /restart", 404
        self.send_response(code)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

start()
signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
server = http.server.HTTPServer(("127.0.0.1", control_port), Handler)
print("control ready", flush=True)
server.serve_forever()
PY
python3 "$dir/control.py" "$dir/mosquitto.conf" "$dir/mosquitto.log" "$control_port" \
  "$tcp_port" "$ws_port" "$auth_port" > "$dir/control.log" 2>&1 &
control=$!
spec_server=""
cleanup() {
  [ -n "$spec_server" ] && kill "$spec_server" 2>/dev/null || true
  kill "$control" 2>/dev/null || true
  wait "$control" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 400); do
  grep -q "control ready" "$dir/control.log" 2>/dev/null && break
  kill -0 "$control" 2>/dev/null || { cat "$dir/control.log" "$dir/mosquitto.log"; exit 1; }
  sleep 0.05
done
export MQTT_WS_URL="ws://127.0.0.1:$ws_port" MQTT_WS_AUTH_URL="ws://127.0.0.1:$auth_port"
export MQTT_USER="$user" MQTT_PASS="$pass" MQTT_TCP_PORT="$tcp_port"
export MQTT_CONTROL_URL="http://127.0.0.1:$control_port"
# mqttspec-server with its embedded broker (rmqtt) for the SpecClient tests.
cargo build -q --bin mqttspec-server
RUST_LOG=info target/debug/mqttspec-server --demo --mqtt-listen 127.0.0.1:0 \
  --ws-listen 127.0.0.1:0 > "$dir/spec-server.log" 2>&1 &
spec_server=$!
for _ in $(seq 1200); do
  grep -q "mqttspec-server ready" "$dir/spec-server.log" 2>/dev/null && break
  kill -0 "$spec_server" 2>/dev/null || { cat "$dir/spec-server.log"; exit 1; }
  sleep 0.05
done
spec_ws=$(sed -n 's/.*mqttspec-server ready.* ws=Some(\([0-9.:]*\)).*/\1/p' "$dir/spec-server.log")
[ -n "$spec_ws" ] || { echo "no WebSocket address in the server's ready line"; cat "$dir/spec-server.log"; exit 1; }
export SPEC_WS_URL="ws://$spec_ws/mqtt"
export CHROMEDRIVER=/usr/bin/chromedriver
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export WASM_BINDGEN_TEST_TIMEOUT=120
status=0
cargo test -p client-wasm --target wasm32-unknown-unknown "$@" || status=$?
if ((status != 0)); then
  echo "--- mosquitto log (last 40 lines)"; tail -n 40 "$dir/mosquitto.log"
fi
exit $status
