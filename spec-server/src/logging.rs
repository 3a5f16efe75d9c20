//! Structured logs (tracing): text or JSON lines on stderr, filtered by
//! `RUST_LOG`. The embedded broker (rmqtt) logs through the `log` crate,
//! which the subscriber picks up too.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The filter used when `RUST_LOG` is not set: the server's info lines,
/// the broker's errors only (rmqtt logs every full subscriber queue and
/// every refused connection at warn/info; the server logs those itself).
pub const DEFAULT_FILTER: &str = "info,rmqtt=error,rmqtt_net=error,rmqtt_retainer=warn";

/// Install the process's subscriber: logs to stderr (text or JSON lines),
/// filtered by `RUST_LOG` (default [`DEFAULT_FILTER`]). Does nothing if a
/// subscriber is already set.
pub fn init(json: bool) {
    let env =
        || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let registry = tracing_subscriber::registry();
    let _ = if json {
        registry.with(fmt.json().with_filter(env())).try_init()
    } else {
        registry.with(fmt.with_filter(env())).try_init()
    };
}
