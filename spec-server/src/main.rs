//! `mqttspec-server` command line.

// Nothing fed by the network may panic: no slicing or indexing that can be
// out of range or off a char boundary, no unwrap/expect/panic (tests exempt).
#![cfg_attr(
    not(test),
    deny(
        clippy::string_slice,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use spec_server::acl::Acl;
use spec_server::broker::embedded::EmbeddedConfig;
use spec_server::broker::external::{self, ExternalConfig};
use spec_server::dispatch::ClientLimits;
use spec_server::hooks::Hooks;
use spec_server::jwt::JwtAuth;
use spec_server::registry::ModelsConfig;
use spec_server::server::{self, BrokerMode, ServerConfig};
use spec_server::tenant::Tenancy;

/// MQTTSpec server: database queries and live subscriptions over MQTT.
///
/// By default it runs its own broker (TCP and WebSocket listeners); with
/// --broker-url it connects to an existing broker instead.
#[derive(Debug, Parser)]
#[command(name = "mqttspec-server", version, about)]
struct Args {
    /// Database URL: sqlite:PATH, sqlite::memory: or postgres://USER@HOST:PORT/DB.
    #[arg(long, env = "MQTTSPEC_DATABASE", default_value = "sqlite::memory:")]
    database: String,
    /// Embedded broker: MQTT over TCP listen address.
    #[arg(long, env = "MQTTSPEC_MQTT_LISTEN", default_value = "127.0.0.1:1883")]
    mqtt_listen: SocketAddr,
    /// Embedded broker: MQTT over WebSocket listen address ("off" to disable).
    #[arg(long, env = "MQTTSPEC_WS_LISTEN", default_value = "127.0.0.1:8083")]
    ws_listen: String,
    /// Use this broker instead of the embedded one: mqtt://[user:pass@]host:port or mqtts://...
    #[arg(long, env = "MQTTSPEC_BROKER_URL")]
    broker_url: Option<String>,
    /// External broker username.
    #[arg(long, env = "MQTTSPEC_BROKER_USERNAME", requires = "broker_url")]
    broker_username: Option<String>,
    /// External broker password.
    #[arg(long, env = "MQTTSPEC_BROKER_PASSWORD", requires = "broker_url")]
    broker_password: Option<String>,
    /// CA certificates (PEM) for mqtts:// (default: the system bundle).
    #[arg(long, env = "MQTTSPEC_BROKER_CA", requires = "broker_url")]
    broker_ca: Option<PathBuf>,
    /// MQTT client id of the server on the external broker.
    #[arg(long, env = "MQTTSPEC_CLIENT_ID", default_value = "mqttspec-server")]
    client_id: String,
    /// Topic prefix.
    #[arg(long, env = "MQTTSPEC_PREFIX", default_value = "spec")]
    prefix: String,
    /// QoS of the server's answers and notifications (0, 1 or 2; capped by
    /// each subscription's QoS), and of its subscription on an external broker.
    #[arg(long, env = "MQTTSPEC_QOS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// SQL script to run at start (schema, seed data).
    #[arg(long, env = "MQTTSPEC_SCHEMA")]
    schema: Option<PathBuf>,
    /// Create and seed public.users and public.sensor_readings.
    #[arg(long, env = "MQTTSPEC_DEMO")]
    demo: bool,
    /// JSON file {"entities": ["schema.entity", ...]} limiting the entities served.
    #[arg(long, env = "MQTTSPEC_MODELS")]
    models: Option<PathBuf>,
    /// Require a JWT (HS256 with this secret) as MQTT username (embedded
    /// broker only: an external broker does not tell the server who logged in).
    #[arg(long, env = "MQTTSPEC_JWT_SECRET", conflicts_with_all = ["jwks", "broker_url"])]
    jwt_secret: Option<String>,
    /// Require a JWT (RS256, keys from this JWKS file) as MQTT username
    /// (embedded broker only).
    #[arg(long, env = "MQTTSPEC_JWKS", conflicts_with = "broker_url")]
    jwks: Option<PathBuf>,
    /// Multi-tenancy: limit rows to the JWT's tenant claim in this column.
    #[arg(long, env = "MQTTSPEC_TENANT_COLUMN")]
    tenant_column: Option<String>,
    /// JWT claim holding the tenant id.
    #[arg(long, env = "MQTTSPEC_TENANT_CLAIM", default_value = "tenant_id")]
    tenant_claim: String,
    /// Largest request payload answered, in bytes.
    #[arg(long, env = "MQTTSPEC_MAX_PAYLOAD", default_value_t = 1024 * 1024)]
    max_payload: usize,
    /// Most rows one read returns (0: no cap). A larger or missing `limit`
    /// is lowered to it; `metadata.total` still counts every matching row.
    #[arg(long, env = "MQTTSPEC_MAX_ROWS", default_value_t = 0, value_name = "N")]
    max_rows: u64,
    /// Drop subscriptions of clients silent this many seconds (0: never).
    /// Default: 300 with an external broker, 0 with the embedded one (it reports disconnects).
    #[arg(long, env = "MQTTSPEC_SUBSCRIPTION_TTL")]
    subscription_ttl: Option<u64>,
    /// Embedded broker: topic rules beyond the built-in per-client ones, in
    /// mosquitto's acl_file style (`pattern read devices/%c/#`; %c client
    /// id, %u username or JWT sub, %{claim} a JWT claim).
    #[arg(long, env = "MQTTSPEC_ACL_FILE", conflicts_with = "broker_url")]
    acl_file: Option<PathBuf>,
    /// Requests per second one client may send; past it, requests are
    /// answered `too_many_requests` without running.
    #[arg(long, env = "MQTTSPEC_MAX_REQUEST_RATE", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    max_request_rate: u32,
    /// Requests of one client waiting to run; past it, `too_many_requests`.
    #[arg(long, env = "MQTTSPEC_MAX_QUEUED_REQUESTS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    max_queued_requests: u64,
    /// Embedded broker: unacknowledged QoS 1/2 messages per subscriber.
    #[arg(long, env = "MQTTSPEC_MAX_INFLIGHT", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    max_inflight: u16,
    /// Embedded broker: messages queued per subscriber behind those in
    /// flight; past it the broker drops (QoS 0: the newest, QoS 1/2: the oldest).
    #[arg(long, env = "MQTTSPEC_MAX_QUEUED_MESSAGES", default_value_t = 1000)]
    max_queued_messages: usize,
    /// External broker: share the request subscription with the other
    /// instances of this group ($share/GROUP/{prefix}/+/request), so each
    /// request runs on one of them. Give every instance its own --client-id
    /// and the same --database.
    #[arg(long, env = "MQTTSPEC_SHARE_GROUP", requires = "broker_url")]
    share_group: Option<String>,
    /// Changes kept in the database's change log for resumable
    /// subscriptions; a resume from before them is answered `reset`.
    #[arg(long, env = "MQTTSPEC_CHANGE_LOG_RETAIN", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    change_log_retain: u64,
    /// Log JSON lines instead of text.
    #[arg(long, env = "MQTTSPEC_LOG_JSON")]
    log_json: bool,
}

fn hooks(args: &Args) -> anyhow::Result<Hooks> {
    let mut hooks = Hooks::new();
    let auth = match (&args.jwt_secret, &args.jwks) {
        (Some(secret), _) => Some(JwtAuth::hs256(secret)?),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read JWKS {}", path.display()))?;
            Some(JwtAuth::from_jwks(&text)?)
        }
        (None, None) => None,
    };
    let has_auth = auth.is_some();
    if let Some(auth) = auth {
        hooks = hooks.with(auth);
    }
    if let Some(column) = &args.tenant_column {
        anyhow::ensure!(
            has_auth,
            "--tenant-column needs --jwt-secret or --jwks (the tenant comes from the token)"
        );
        hooks = hooks.with(Tenancy::new(column.clone(), args.tenant_claim.clone()));
    }
    Ok(hooks)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let hooks = hooks(&args)?;
    let require_login = args.jwt_secret.is_some() || args.jwks.is_some();
    let max_packet = args.max_payload.saturating_mul(4).max(16 * 1024 * 1024);
    let broker = match &args.broker_url {
        Some(url) => BrokerMode::External(ExternalConfig {
            url: url.clone(),
            username: args.broker_username.clone(),
            password: args.broker_password.clone(),
            ca_file: args.broker_ca.clone(),
            client_id: args.client_id.clone(),
            qos: external::qos_of(args.qos),
            max_packet,
            share_group: args.share_group.clone(),
        }),
        None => BrokerMode::Embedded(EmbeddedConfig {
            mqtt_listen: args.mqtt_listen,
            ws_listen: match args.ws_listen.as_str() {
                "off" | "" => None,
                addr => Some(
                    addr.parse()
                        .with_context(|| format!("--ws-listen {addr:?} is not HOST:PORT"))?,
                ),
            },
            max_packet,
            require_login,
            acl: args
                .acl_file
                .as_deref()
                .map(|path| {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read ACL file {}", path.display()))?;
                    Acl::parse(&args.prefix, &text)
                        .with_context(|| format!("ACL file {}", path.display()))
                })
                .transpose()?,
            qos: args.qos,
            max_inflight: args.max_inflight,
            max_queued: args.max_queued_messages,
        }),
    };
    let default_ttl = if args.broker_url.is_some() { 300 } else { 0 };
    let ttl = args.subscription_ttl.unwrap_or(default_ttl);
    let models = args.models.as_deref().map(ModelsConfig::load).transpose()?;
    let config = ServerConfig {
        database: args.database.clone(),
        schema_file: args.schema.clone(),
        demo: args.demo,
        models,
        prefix: args.prefix.clone(),
        max_payload: args.max_payload,
        max_rows: (args.max_rows > 0).then_some(args.max_rows),
        broker,
        subscription_ttl: (ttl > 0).then(|| Duration::from_secs(ttl)),
        client_limits: ClientLimits {
            queued: usize::try_from(args.max_queued_requests).unwrap_or(usize::MAX),
            rate: std::num::NonZeroU32::new(args.max_request_rate)
                .unwrap_or(std::num::NonZeroU32::MIN),
        },
        change_log_retain: args.change_log_retain,
    };
    let running = server::start(config, hooks).await?;
    tracing::info!(
        mqtt = ?running.mqtt_addr,
        ws = ?running.ws_addr,
        broker_url = ?args.broker_url,
        prefix = %args.prefix,
        "mqttspec-server ready"
    );
    tokio::signal::ctrl_c().await?;
    tracing::info!("stopping");
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    spec_server::logging::init(args.log_json);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mqttspec-server: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("mqttspec-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
