//! The embedded broker: rumqttd with a TCP and an optional WebSocket
//! listener. The server is attached through rumqttd's local link (no
//! socket): it subscribes to `{prefix}/+/request` and publishes answers
//! into the router. Disconnects come from [`crate::logging`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mqttspec_proto::topic::{client_id_of_request, server_request_filter};
use rumqttd::{Broker, Config, ConnectionSettings, Notification, RouterConfig, ServerSettings};
use tokio::sync::mpsc;

use super::BrokerEvent;
use crate::handler::{Handler, Outgoing};

/// Settings of the embedded broker.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// MQTT over TCP listener.
    pub mqtt_listen: SocketAddr,
    /// MQTT over WebSocket listener (path-agnostic; MQTT.js uses `/mqtt`).
    pub ws_listen: Option<SocketAddr>,
    /// Largest MQTT packet the broker accepts (bytes).
    pub max_packet: usize,
    /// Require a username at CONNECT and run the connect hooks then.
    pub require_login: bool,
}

impl EmbeddedConfig {
    /// A TCP listener only, 16 MiB packets, no login.
    pub fn tcp(mqtt_listen: SocketAddr) -> Self {
        EmbeddedConfig {
            mqtt_listen,
            ws_listen: None,
            max_packet: 16 << 20,
            require_login: false,
        }
    }
}

/// Client id of the server's local link: random, because rumqttd drops a
/// connection when another one takes its client id, and a client that
/// guessed a fixed id could cut the server off the broker.
fn link_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("mqttspec-server-{:016x}", hasher.finish())
}

fn server_settings(name: &str, listen: SocketAddr, config: &EmbeddedConfig) -> ServerSettings {
    ServerSettings {
        name: name.to_string(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: config.max_packet,
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    }
}

/// Start rumqttd on its own threads, attach the server's local link and
/// wait until the TCP listener accepts connections.
pub async fn start(
    config: EmbeddedConfig,
    prefix: &str,
    handler: Arc<Handler>,
    events: mpsc::UnboundedSender<BrokerEvent>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
) -> anyhow::Result<()> {
    let mut v4 = server_settings("v4", config.mqtt_listen, &config);
    let mut ws = config
        .ws_listen
        .map(|addr| server_settings("ws", addr, &config));
    if config.require_login {
        for settings in std::iter::once(&mut v4).chain(ws.as_mut()) {
            let handler = Arc::clone(&handler);
            settings.set_auth_handler(move |client_id: String, user: String, pass: String| {
                let handler = Arc::clone(&handler);
                async move {
                    match handler.client_connecting(&client_id, &user, &pass) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::info!(client_id, error = %e, "connection refused by a hook");
                            false
                        }
                    }
                }
            });
        }
    }
    let broker_config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 1000,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("v4".to_string(), v4)])),
        ws: ws.map(|ws| HashMap::from([("ws".to_string(), ws)])),
        ..Config::default()
    };
    let mut broker = Broker::new(broker_config);
    let (mut link_tx, mut link_rx) = broker
        .link(&link_id())
        .map_err(|e| anyhow::anyhow!("cannot attach to the embedded broker: {e}"))?;
    link_tx
        .subscribe(server_request_filter(prefix))
        .map_err(|e| anyhow::anyhow!("cannot subscribe the server's link: {e}"))?;
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })?;
    let prefix_in = prefix.to_string();
    let requests = events.clone();
    std::thread::Builder::new()
        .name("link-rx".into())
        .spawn(move || loop {
            match link_rx.recv() {
                Ok(Some(Notification::Forward(forward))) => {
                    let topic = String::from_utf8_lossy(&forward.publish.topic).into_owned();
                    if let Some(client_id) = client_id_of_request(&prefix_in, &topic) {
                        let payload = forward.publish.payload.to_vec();
                        if requests
                            .send(BrokerEvent::Request { client_id, payload })
                            .is_err()
                        {
                            return;
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "embedded broker link closed");
                    return;
                }
            }
        })?;
    std::thread::Builder::new()
        .name("link-tx".into())
        .spawn(move || {
            while let Some((topic, payload)) = outgoing.blocking_recv() {
                if let Err(e) = link_tx.publish(topic, payload) {
                    tracing::error!(error = %e, "cannot publish into the embedded broker");
                    return;
                }
            }
        })?;
    let mut gone = crate::logging::watch_disconnects();
    tokio::spawn(async move {
        while let Some(client_id) = gone.recv().await {
            if events.send(BrokerEvent::Gone(client_id)).is_err() {
                return;
            }
        }
    });
    wait_listening(config.mqtt_listen).await
}

/// Wait until the broker answers an MQTT CONNECT on `addr` with a CONNACK.
async fn wait_listening(addr: SocketAddr) -> anyhow::Result<()> {
    for _ in 0..200 {
        if probe(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!(
        "the embedded broker does not listen on {addr} after 10 s: is the address in use?"
    )
}

async fn probe(addr: SocketAddr) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // MQTT 3.1.1 CONNECT, clean session, keep-alive 10 s, client id "mqttspec-probe".
    const CONNECT: &[u8] = b"\x10\x1a\x00\x04MQTT\x04\x02\x00\x0a\x00\x0emqttspec-probe";
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(CONNECT).await?;
    let mut connack = [0u8; 4];
    // A CONNACK, or a close when the broker requires a login: both mean it serves.
    match tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut connack)).await {
        Ok(Ok(_)) => stream.write_all(&[0xe0, 0x00]).await,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(std::io::Error::other("no CONNACK within 2 s")),
    }
}
