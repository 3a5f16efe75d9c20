//! Wiring: database, registry, handler and broker transport, plus the
//! per-client workers (requests of one client are answered in order,
//! clients in parallel) and the idle-client expiry.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::broker::embedded::{self, EmbeddedConfig};
use crate::broker::external::{self, ExternalConfig};
use crate::broker::BrokerEvent;
use crate::db::{self, Database};
use crate::handler::{Handler, HandlerConfig};
use crate::hooks::Hooks;
use crate::registry::{ModelsConfig, Registry};

/// Which broker the server uses.
#[derive(Debug, Clone)]
pub enum BrokerMode {
    /// rumqttd in-process.
    Embedded(EmbeddedConfig),
    /// Any broker, as a client.
    External(ExternalConfig),
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `sqlite:PATH`, `sqlite::memory:` or `postgres://...`.
    pub database: String,
    /// SQL script run at start (e.g. `CREATE TABLE ...`).
    pub schema_file: Option<PathBuf>,
    /// Create and seed the demo tables.
    pub demo: bool,
    /// Limit the served entities.
    pub models: Option<ModelsConfig>,
    /// Topic prefix.
    pub prefix: String,
    /// Largest request payload answered (bytes).
    pub max_payload: usize,
    /// Most rows one read returns (`None`: no cap).
    pub max_rows: Option<u64>,
    /// Broker mode.
    pub broker: BrokerMode,
    /// Drop the subscriptions of clients silent for this long.
    pub subscription_ttl: Option<Duration>,
}

impl ServerConfig {
    /// `database` on `broker` with defaults: prefix `spec`, 1 MiB payloads,
    /// no row cap, no schema file, no demo data, all entities, no expiry.
    pub fn new(database: impl Into<String>, broker: BrokerMode) -> Self {
        ServerConfig {
            database: database.into(),
            schema_file: None,
            demo: false,
            models: None,
            prefix: "spec".into(),
            max_payload: 1 << 20,
            max_rows: None,
            broker,
            subscription_ttl: None,
        }
    }
}

/// A started server.
pub struct RunningServer {
    /// The request handler (for inspection).
    pub handler: Arc<Handler>,
    /// MQTT/TCP address of the embedded broker, if embedded.
    pub mqtt_addr: Option<SocketAddr>,
    /// WebSocket address of the embedded broker, if any.
    pub ws_addr: Option<SocketAddr>,
}

/// Open the database, prepare it, and start serving.
pub async fn start(config: ServerConfig, hooks: Hooks) -> anyhow::Result<RunningServer> {
    let db: Arc<dyn Database> = Arc::from(
        db::open(&config.database)
            .await
            .context("opening the database")?,
    );
    if let Some(path) = &config.schema_file {
        let sql = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read schema file {}", path.display()))?;
        db.execute_script(&sql)
            .await
            .with_context(|| format!("schema file {} failed", path.display()))?;
    }
    if config.demo {
        crate::demo::seed(db.as_ref())
            .await
            .context("seeding the demo data")?;
    }
    let registry = Registry::load(db.as_ref(), config.models.as_ref())
        .await
        .context("reading the database schema")?;
    let names: Vec<String> = registry.entities().iter().map(|e| e.full_name()).collect();
    tracing::info!(entities = ?names, "models");
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let handler = Arc::new(Handler::new(
        db,
        registry,
        hooks,
        HandlerConfig {
            prefix: config.prefix.clone(),
            max_payload: config.max_payload,
            max_rows: config.max_rows,
        },
        out_tx,
    ));
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (mut mqtt_addr, mut ws_addr) = (None, None);
    match config.broker {
        BrokerMode::Embedded(e) => {
            (mqtt_addr, ws_addr) = (Some(e.mqtt_listen), e.ws_listen);
            embedded::start(e, &config.prefix, Arc::clone(&handler), events_tx, out_rx).await?;
        }
        BrokerMode::External(e) => {
            external::start(
                e,
                &config.prefix,
                events_tx,
                out_rx,
                Duration::from_secs(30),
            )
            .await?;
        }
    }
    tokio::spawn(dispatch(Arc::clone(&handler), events_rx));
    if let Some(ttl) = config.subscription_ttl {
        tokio::spawn(expire(Arc::clone(&handler), ttl));
    }
    Ok(RunningServer {
        handler,
        mqtt_addr,
        ws_addr,
    })
}

const WORKER_IDLE: Duration = Duration::from_secs(30);

/// What a client's worker does next, in arrival order.
enum Work {
    /// Answer one request payload.
    Request(Vec<u8>),
    /// The client went away: drop its state after the requests before it.
    Gone,
}

/// Route events to one worker task per client.
async fn dispatch(handler: Arc<Handler>, mut events: mpsc::UnboundedReceiver<BrokerEvent>) {
    let mut workers: HashMap<String, mpsc::UnboundedSender<Work>> = HashMap::new();
    while let Some(event) = events.recv().await {
        match event {
            BrokerEvent::Request { client_id, payload } => {
                let work = match workers.get(&client_id) {
                    Some(w) => match w.send(Work::Request(payload)) {
                        Ok(()) => continue,
                        Err(e) => e.0,
                    },
                    None => Work::Request(payload),
                };
                let (tx, rx) = mpsc::unbounded_channel();
                let _ = tx.send(work);
                tokio::spawn(worker(Arc::clone(&handler), client_id.clone(), rx));
                workers.insert(client_id, tx);
            }
            BrokerEvent::Gone(client_id) => {
                // Through the worker, so that a subscribe still queued
                // cannot outlive the disconnect.
                let queued = workers
                    .remove(&client_id)
                    .is_some_and(|w| w.send(Work::Gone).is_ok());
                if !queued {
                    handler.client_gone(&client_id);
                }
            }
        }
        if workers.len() > 4096 {
            workers.retain(|_, w| !w.is_closed());
        }
    }
}

/// Answer one client's requests in order; end after a quiet period or
/// when the client is gone.
async fn worker(handler: Arc<Handler>, client_id: String, mut rx: mpsc::UnboundedReceiver<Work>) {
    let run = |work| {
        let handler = Arc::clone(&handler);
        let client_id = client_id.clone();
        async move {
            match work {
                Work::Request(payload) => {
                    handler.handle(&client_id, &payload).await;
                    true
                }
                Work::Gone => {
                    handler.client_gone(&client_id);
                    false
                }
            }
        }
    };
    loop {
        match tokio::time::timeout(WORKER_IDLE, rx.recv()).await {
            Ok(Some(work)) => {
                if !run(work).await {
                    return;
                }
            }
            Ok(None) => return,
            Err(_) => {
                rx.close();
                while let Ok(work) = rx.try_recv() {
                    if !run(work).await {
                        return;
                    }
                }
                return;
            }
        }
    }
}

/// Drop clients silent for `ttl`.
async fn expire(handler: Arc<Handler>, ttl: Duration) {
    let mut tick = tokio::time::interval((ttl / 4).max(Duration::from_millis(100)));
    loop {
        tick.tick().await;
        for client_id in handler.expired_clients(ttl) {
            handler.client_gone(&client_id);
        }
    }
}
