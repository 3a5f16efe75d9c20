#!/usr/bin/env bash
# Runs client-wasm's wasm-bindgen tests in headless Chromium against a real
# mosquitto (websockets listener) started here on free loopback ports.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
dir=$(mktemp -d)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tcp_port=$(port); ws_port=$(port)
cat > "$dir/mosquitto.conf" <<CONF
per_listener_settings false
allow_anonymous true
listener $tcp_port 127.0.0.1
listener $ws_port 127.0.0.1
protocol websockets
CONF
mosquitto -c "$dir/mosquitto.conf" > "$dir/mosquitto.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$ws_port) 2>/dev/null && break; sleep 0.05; done
export MQTT_WS_URL="ws://127.0.0.1:$ws_port" MQTT_TCP_PORT="$tcp_port"
export CHROMEDRIVER=/usr/bin/chromedriver
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export WASM_BINDGEN_TEST_TIMEOUT=120
cargo test -p client-wasm --target wasm32-unknown-unknown
