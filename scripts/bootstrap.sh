#!/usr/bin/env bash
# Installs what this repository needs and a fresh machine lacks. Idempotent:
# when everything is present it only checks, in a few seconds.
#   Debian: chromium, chromium-driver, mosquitto, mosquitto-clients, postgresql, sqlite3, openssl
#   Rust:   wasm32 target, wasm-bindgen-cli (= Cargo.lock's wasm-bindgen), worker-build
#   npm:    node_modules from package-lock.json (wrangler, binaryen, playwright-core, mqtt, ws)
#   PyPI:   paho-mqtt (the Python MQTT peer of tests/python/)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
step() { printf '\033[1mbootstrap:\033[0m %s\n' "$*"; }

# --- Debian packages (apt only when something is missing) -------------------
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v mosquitto_pub >/dev/null || missing+=(mosquitto-clients)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v openssl >/dev/null || missing+=(openssl)
if ((${#missing[@]})); then
  step "apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- Rust toolchain pieces -------------------------------------------------
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
[ -f Cargo.lock ] || cargo generate-lockfile
bindgen_version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $NF}')" != "$bindgen_version" ]; then
  step "cargo install wasm-bindgen-cli $bindgen_version (a few minutes, once)"
  # No --locked: one crate pinned in its lock file is no longer on crates.io.
  cargo install -q wasm-bindgen-cli --version "$bindgen_version" --force
fi
worker_build_version=$(awk '/^name = "worker"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$worker_build_version" ]; then
  step "cargo install worker-build $worker_build_version (a few minutes, once)"
  cargo install -q worker-build --locked --version "$worker_build_version" --force
fi

# --- npm packages ------------------------------------------------------------
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
# --- Python packages ---------------------------------------------------------
if ! python3 -c 'import paho.mqtt, sys; sys.exit(int(paho.mqtt.__version__.split(".")[0]) < 2)' 2>/dev/null; then
  step "pip install paho-mqtt>=2"
  python3 -m pip install -q --root-user-action=ignore 'paho-mqtt>=2,<3'
fi
step "ready"
