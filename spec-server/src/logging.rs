//! Structured logs (tracing) and the embedded broker's disconnect events.
//!
//! rumqttd reports no disconnects through its API (its alerts and meters
//! carry no per-client events), but its router opens a span named
//! `incoming_disconnect` with the client id whenever a client goes away.
//! [`DisconnectLayer`] turns those spans into events for
//! [`watch_disconnects`] listeners. It must be part of the process's
//! tracing subscriber: [`init`] installs it.

use std::sync::Mutex;

use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{filter, EnvFilter};

static LISTENERS: Mutex<Vec<mpsc::UnboundedSender<String>>> = Mutex::new(Vec::new());

/// Client ids of clients the embedded broker saw disconnect.
pub fn watch_disconnects() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    LISTENERS.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
    rx
}

const DISCONNECT_SPAN: &str = "incoming_disconnect";

/// Tracing layer reporting rumqttd's disconnect spans to listeners.
pub struct DisconnectLayer;

struct ClientId(Option<String>);

impl Visit for ClientId {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "client_id" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "client_id" && self.0.is_none() {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_string());
        }
    }
}

impl<S: Subscriber> Layer<S> for DisconnectLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let meta = attrs.metadata();
        if meta.name() != DISCONNECT_SPAN || !meta.target().starts_with("rumqttd") {
            return;
        }
        let mut client = ClientId(None);
        attrs.record(&mut client);
        if let Some(client_id) = client.0 {
            let mut listeners = LISTENERS.lock().unwrap_or_else(|p| p.into_inner());
            listeners.retain(|l| l.send(client_id.clone()).is_ok());
        }
    }
}

/// Install the process's subscriber: logs to stderr (text or JSON lines),
/// filtered by `RUST_LOG` (default `info,rumqttd=warn`), plus the
/// [`DisconnectLayer`]. Does nothing if a subscriber is already set.
pub fn init(json: bool) {
    let env = || {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rumqttd=warn"))
    };
    let disconnects = DisconnectLayer.with_filter(filter::filter_fn(|m| {
        m.name() == DISCONNECT_SPAN && m.target().starts_with("rumqttd")
    }));
    let registry = tracing_subscriber::registry().with(disconnects);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = if json {
        registry.with(fmt.json().with_filter(env())).try_init()
    } else {
        registry.with(fmt.with_filter(env())).try_init()
    };
}
