//! External broker mode: the server connects to any MQTT 3.1.1 broker
//! (mosquitto, EMQX, ...) as a client, subscribes to `{prefix}/+/request`
//! and publishes answers. Reconnects with exponential backoff and
//! resubscribes after every CONNACK. Brokers do not tell clients about
//! other clients' disconnects: the server expires idle clients instead.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use backoff_core::{random_unit, Backoff};
use mqttspec_proto::topic::{
    client_id_of_request, instance_gone_topic, instance_of_gone, server_request_filter,
    shared_filter,
};
use rumqttc::{
    AsyncClient, Event, LastWill, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use tokio::sync::mpsc;

use crate::dispatch::Dispatcher;
use crate::handler::{Caller, Outgoing};

/// Settings of the external broker connection.
#[derive(Debug, Clone)]
pub struct ExternalConfig {
    /// `mqtt://[user:pass@]host:port` or `mqtts://...` (TLS).
    pub url: String,
    /// Username (overrides the URL's).
    pub username: Option<String>,
    /// Password (overrides the URL's).
    pub password: Option<String>,
    /// CA certificates (PEM) for `mqtts://`; default: the system bundle.
    pub ca_file: Option<PathBuf>,
    /// MQTT client id of the server.
    pub client_id: String,
    /// QoS of the server's subscription and publishes.
    pub qos: QoS,
    /// Largest packet accepted or sent (bytes).
    pub max_packet: usize,
    /// Share the request subscription with other instances
    /// (`$share/{group}/{prefix}/+/request`): the broker gives each request
    /// to one of them.
    pub share_group: Option<String>,
}

/// Parts of a broker URL.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerUrl {
    /// TLS wanted (`mqtts`/`ssl`).
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// Port (default 1883, or 8883 with TLS).
    pub port: u16,
    /// `user` of `user:pass@`.
    pub username: Option<String>,
    /// `pass` of `user:pass@`.
    pub password: Option<String>,
}

/// Parse `mqtt://[user[:pass]@]host[:port]` (also `tcp://`, `mqtts://`, `ssl://`).
pub fn parse_broker_url(url: &str) -> anyhow::Result<BrokerUrl> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        anyhow::anyhow!(
            "broker URL {url:?} has no scheme: use mqtt://host:port or mqtts://host:port"
        )
    })?;
    let tls = match scheme {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        other => {
            anyhow::bail!("broker URL scheme {other:?} is not supported: use mqtt:// or mqtts://")
        }
    };
    let rest = rest.trim_end_matches('/');
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    // Userinfo is percent-encoded in URLs (`p%40ss` for `p@ss`).
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| {
                anyhow::anyhow!(
                    "broker URL {url:?}: the user or password is not UTF-8 once decoded"
                )
            })
    };
    let (username, password) = match userinfo.map(|u| u.split_once(':')) {
        Some(Some((u, p))) => (Some(decode(u)?), Some(decode(p)?)),
        Some(None) => (userinfo.map(decode).transpose()?, None),
        None => (None, None),
    };
    let default_port = if tls { 8883 } else { 1883 };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            p.parse()
                .map_err(|_| anyhow::anyhow!("broker URL {url:?} has a bad port {p:?}"))?,
        ),
        _ => (hostport.to_string(), default_port),
    };
    anyhow::ensure!(!host.is_empty(), "broker URL {url:?} has no host");
    Ok(BrokerUrl {
        tls,
        host,
        port,
        username,
        password,
    })
}

fn options(config: &ExternalConfig, prefix: &str) -> anyhow::Result<MqttOptions> {
    let url = parse_broker_url(&config.url)?;
    let mut options = MqttOptions::new(&config.client_id, &url.host, url.port);
    if config.share_group.is_some() {
        // The broker tells the other instances when this one dies.
        options.set_last_will(LastWill::new(
            instance_gone_topic(prefix, &config.client_id),
            config.client_id.clone(),
            QoS::AtLeastOnce,
            false,
        ));
    }
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(config.max_packet, config.max_packet);
    let username = config.username.clone().or(url.username);
    if let Some(user) = username {
        options.set_credentials(
            user,
            config.password.clone().or(url.password).unwrap_or_default(),
        );
    }
    if url.tls {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca_path = config
            .ca_file
            .clone()
            .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
        let ca = std::fs::read(&ca_path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read CA certificates {}: {e} (pass --broker-ca FILE)",
                ca_path.display()
            )
        })?;
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca,
            alpn: None,
            client_auth: None,
        }));
    }
    Ok(options)
}

/// Connect to the broker and pump events until the process ends.
/// Returns once the first connection is up (fails if it cannot be made
/// within `connect_timeout`).
pub async fn start(
    config: ExternalConfig,
    prefix: &str,
    dispatcher: Arc<Dispatcher>,
    mut outgoing: mpsc::Receiver<Outgoing>,
    connect_timeout: Duration,
) -> anyhow::Result<()> {
    let (client, mut eventloop) = AsyncClient::new(options(&config, prefix)?, 1024);
    // Answers and PUBACKs go out at once, not after Nagle's wait for the
    // broker's delayed ACK (40 ms per QoS 1 round trip otherwise).
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    // Wills of the other instances of the group (one of us takes each).
    let wills = config
        .share_group
        .as_ref()
        .map(|group| shared_filter(group, &instance_gone_topic(prefix, "+")));
    let filter = match &config.share_group {
        Some(group) => shared_filter(group, &server_request_filter(prefix)),
        None => server_request_filter(prefix),
    };
    let prefix = prefix.to_string();
    let qos = config.qos;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let subscriber = client.clone();
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff.reset();
                    tracing::info!(url = %config.url, "connected to the broker");
                    if let Err(e) = subscriber.try_subscribe(&filter, qos) {
                        tracing::error!(error = %e, "cannot subscribe to requests");
                    }
                    if let Some(wills) = &wills {
                        if let Err(e) = subscriber.try_subscribe(wills, QoS::AtLeastOnce) {
                            tracing::error!(error = %e, "cannot subscribe to the instances' wills");
                        }
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    let refused = ack
                        .return_codes
                        .iter()
                        .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                    let outcome = if refused {
                        Err(format!("the broker refused the server's subscription to {filter:?}: allow it in the broker's ACL"))
                    } else {
                        Ok(())
                    };
                    if let Err(e) = &outcome {
                        tracing::error!("{e}");
                    }
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(outcome);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish)))
                    if instance_of_gone(&prefix, &publish.topic).is_some() =>
                {
                    // Our own name: the will of an earlier run under it, which this
                    // run already handled at start (and whose subscriptions are now ours).
                    let gone = instance_of_gone(&prefix, &publish.topic)
                        .filter(|instance| *instance != config.client_id);
                    if let Some(instance) = gone {
                        let handler = Arc::clone(dispatcher.handler());
                        tokio::spawn(async move { handler.instance_gone(&instance).await });
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    // The broker's ACL makes the topic's client id the
                    // publisher's (docs/SPEC_SERVER.md, "External broker").
                    if let Some(client_id) = client_id_of_request(&prefix, &publish.topic) {
                        let qos = publish.qos as u8;
                        dispatcher
                            .request(Caller::anonymous(client_id, qos), publish.payload.to_vec());
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let delay = backoff.next_delay(random_unit());
                    tracing::warn!(error = %e, retry_in = ?delay, "broker connection lost");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    });
    tokio::spawn(async move {
        while let Some(out) = outgoing.recv().await {
            let qos = qos_of(out.qos(qos as u8));
            if let Err(e) = client
                .publish(out.topic, qos, false, out.payload.to_vec())
                .await
            {
                tracing::error!(error = %e, "cannot queue a publish");
                return;
            }
        }
    });
    tokio::time::timeout(connect_timeout, ready_rx)
        .await
        .map_err(|_| anyhow::anyhow!("no connection to the broker within {connect_timeout:?}"))?
        .map_err(|_| anyhow::anyhow!("broker connection task ended"))?
        .map_err(|e| anyhow::anyhow!(e))
}

/// rumqttc's QoS for 0, 1 or 2 (higher values: 2).
pub fn qos_of(qos: u8) -> QoS {
    match qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let u = parse_broker_url("mqtt://127.0.0.1:1884").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "127.0.0.1", 1884));
        let u = parse_broker_url("mqtts://me:p%40ss@broker.example:8884/").unwrap();
        assert_eq!((u.tls, u.port), (true, 8884));
        assert_eq!(
            (u.username.as_deref(), u.password.as_deref()),
            (Some("me"), Some("p@ss"))
        );
        assert_eq!(parse_broker_url("mqtt://host").unwrap().port, 1883);
        assert!(parse_broker_url("http://host").is_err());
        assert!(parse_broker_url("host:1883").is_err());
        assert!(parse_broker_url("mqtt://host:x").is_err());
    }
}
