//! The worker's settings, read from wrangler `[vars]` (and secrets) with
//! sane defaults; a bad value is reported in the log and the default used.

use std::time::Duration;

use worker::{console_warn, Env};

/// Default largest relayed request body: 2 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Default time a public request waits for the forwarder.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(25_000);

/// Default time a public request waits for a reconnecting forwarder.
pub const DEFAULT_HOLD: Duration = Duration::from_millis(10_000);

/// Settings that shape the relay.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base domain of public URLs; empty means the host requests came to.
    pub base_domain: String,
    /// Largest request body relayed (413 above it).
    pub max_body_bytes: usize,
    /// How long a public request waits for the forwarder's answer (504 after).
    pub request_timeout: Duration,
    /// How long a public request waits for a forwarder that is
    /// reconnecting (502 after).
    pub hold: Duration,
    /// `BENCH_FLOOR=true`: `/_floor` goes to a Durable Object that answers
    /// a constant, the floor `bench/tunnel_http.sh` measures the tunnel
    /// against (off by default: it would let anyone wake a DO).
    pub bench_floor: bool,
}

/// A string setting (var or secret), `None` when unset or blank.
pub fn setting(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.trim().is_empty())
}

fn number(env: &Env, name: &str, default: u64) -> u64 {
    match setting(env, name) {
        None => default,
        Some(v) => v.trim().parse().unwrap_or_else(|_| {
            console_warn!("{name}={v:?} is not a whole number; using the default {default}");
            default
        }),
    }
}

impl Config {
    /// Read the settings from the environment.
    pub fn from_env(env: &Env) -> Self {
        Self {
            base_domain: setting(env, "BASE_DOMAIN").unwrap_or_default(),
            max_body_bytes: number(env, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES as u64) as usize,
            request_timeout: Duration::from_millis(number(
                env,
                "REQUEST_TIMEOUT_MS",
                DEFAULT_REQUEST_TIMEOUT.as_millis() as u64,
            )),
            hold: Duration::from_millis(number(env, "HOLD_MS", DEFAULT_HOLD.as_millis() as u64)),
            bench_floor: setting(env, "BENCH_FLOOR")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        }
    }
}
