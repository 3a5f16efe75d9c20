//! Wiring: database, registry, handler, dispatcher and broker transport,
//! plus the idle-client expiry.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::broker::embedded::{self, EmbeddedConfig};
use crate::broker::external::{self, ExternalConfig};
use crate::db::{self, capture, Database};
use crate::dispatch::{ClientLimits, Dispatcher};
use crate::feed;
use crate::handler::{Handler, HandlerConfig, SharedMode};
use crate::hooks::Hooks;
use crate::registry::{ModelsConfig, Registry};

/// Which broker the server uses.
#[derive(Debug, Clone)]
pub enum BrokerMode {
    /// rmqtt in-process.
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
    /// Per-client queue and rate bounds.
    pub client_limits: ClientLimits,
    /// Changes kept in the change log for resumes (older ones are pruned;
    /// a resume from before them gets `reset`).
    pub change_log_retain: u64,
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
            client_limits: ClientLimits::default(),
            change_log_retain: 100_000,
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
    let served: Vec<&db::Entity> = registry.entities().iter().map(AsRef::as_ref).collect();
    db.execute_script(&capture::install_script(db.dialect(), &served))
        .await
        .context("installing the change log (a table and triggers on the served tables; the database user must own them)")?;
    let head = db
        .query(capture::bounds(db.dialect()).0, Vec::new())
        .await
        .context("reading the change log")?
        .first()
        .and_then(|r| r.get("head").and_then(serde_json::Value::as_u64))
        .unwrap_or(0);
    let shared = match &config.broker {
        BrokerMode::External(e) if e.share_group.is_some() => Some(SharedMode {
            instance: e.client_id.clone(),
            alive_every: config
                .subscription_ttl
                .map_or(Duration::from_secs(30), |ttl| ttl / 4),
        }),
        _ => None,
    };
    let (out_tx, out_rx) = mpsc::channel(OUTBOX);
    let db_for_watch = Arc::clone(&db);
    let handler = Arc::new(Handler::new(
        db,
        registry,
        hooks,
        HandlerConfig {
            prefix: config.prefix.clone(),
            max_payload: config.max_payload,
            max_rows: config.max_rows,
            shared,
        },
        out_tx,
    ));
    let wake = Arc::clone(handler.feed_wake());
    db_for_watch
        .watch_changes(Arc::downgrade(&wake))
        .await
        .context("watching the database for changes")?;
    tokio::spawn(feed::run(
        Arc::clone(&handler),
        wake,
        head,
        config.change_log_retain,
    ));
    if let BrokerMode::External(ExternalConfig {
        share_group: Some(_),
        client_id,
        ..
    }) = &config.broker
    {
        // Subscriptions an earlier run under this name held are gone.
        handler.instance_gone(client_id).await;
    }
    let dispatcher = Dispatcher::new(Arc::clone(&handler), config.client_limits);
    let (mut mqtt_addr, mut ws_addr) = (None, None);
    match config.broker {
        BrokerMode::Embedded(e) => {
            let listening = embedded::start(
                e,
                &config.prefix,
                Arc::clone(&handler),
                Arc::clone(&dispatcher),
                out_rx,
            )
            .await?;
            (mqtt_addr, ws_addr) = (Some(listening.mqtt), listening.ws);
        }
        BrokerMode::External(e) => {
            external::start(
                e,
                &config.prefix,
                Arc::clone(&dispatcher),
                out_rx,
                Duration::from_secs(30),
            )
            .await?;
        }
    }
    if let Some(ttl) = config.subscription_ttl {
        tokio::spawn(expire(Arc::clone(&handler), ttl));
    }
    Ok(RunningServer {
        handler,
        mqtt_addr,
        ws_addr,
    })
}

/// Answers and notifications waiting for the broker, all clients together.
const OUTBOX: usize = 4096;

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
