//! A small native MQTTSpec client (rumqttc): requests matched to responses
//! by `id`, and a stream of notifications. Used by the integration tests,
//! the benchmark and tools; the browser client lives in `client-wasm`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mqttspec_proto::topic::{notify_filter, request_topic, response_topic};
use mqttspec_proto::Message;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS, SubscribeFilter};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// How to connect.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Broker host.
    pub host: String,
    /// Broker MQTT/TCP port.
    pub port: u16,
    /// MQTT client id (also the MQTTSpec client id in topics).
    pub client_id: String,
    /// MQTT username (e.g. a JWT).
    pub username: Option<String>,
    /// MQTT password (sent with the username).
    pub password: Option<String>,
    /// Topic prefix.
    pub prefix: String,
    /// QoS of request publishes. QoS 0 saves the broker's PUBACK, whose
    /// extra small write can meet Nagle's algorithm on brokers that do not
    /// set TCP_NODELAY (rumqttd did not; rmqtt here does) and
    /// add a delayed-ACK wait per request.
    pub request_qos: QoS,
}

impl ClientOptions {
    /// `127.0.0.1:port`, prefix `spec`, no username.
    pub fn local(port: u16, client_id: &str) -> Self {
        ClientOptions {
            host: "127.0.0.1".into(),
            port,
            client_id: client_id.into(),
            username: None,
            password: None,
            prefix: "spec".into(),
            request_qos: QoS::AtLeastOnce,
        }
    }
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Message>>>>;

/// A connected client.
pub struct SpecClient {
    client: AsyncClient,
    request_topic: String,
    request_qos: QoS,
    pending: Pending,
    next_id: AtomicU64,
    /// Makes this client's request ids unique across connections: the
    /// server answers a repeated `(client id, request id)` write with the
    /// first answer.
    nonce: String,
    notifications: mpsc::UnboundedReceiver<Message>,
    unmatched: mpsc::UnboundedReceiver<Message>,
    /// How long [`SpecClient::request`] waits for the answer.
    pub timeout: Duration,
}

impl SpecClient {
    /// Connect, subscribe to the own response and notify topics, and wait
    /// until the subscription is acknowledged.
    pub async fn connect(options: ClientOptions) -> anyhow::Result<SpecClient> {
        let mut mqtt = MqttOptions::new(&options.client_id, &options.host, options.port);
        mqtt.set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(32 * 1024 * 1024, 32 * 1024 * 1024);
        if let Some(user) = &options.username {
            mqtt.set_credentials(user.clone(), options.password.clone().unwrap_or_default());
        }
        let (client, mut eventloop) = AsyncClient::new(mqtt, 1024);
        let mut network = eventloop.network_options();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let response = response_topic(&options.prefix, &options.client_id);
        let notify = notify_filter(&options.prefix, &options.client_id);
        client
            .subscribe_many([
                SubscribeFilter::new(response.clone(), QoS::AtLeastOnce),
                SubscribeFilter::new(notify, QoS::AtLeastOnce),
            ])
            .await?;
        let pending: Pending = Arc::default();
        let (notify_tx, notifications) = mpsc::unbounded_channel();
        let (unmatched_tx, unmatched) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel::<anyhow::Result<()>>();
        let task_pending = Arc::clone(&pending);
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(Ok(()));
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let Ok(message) = serde_json::from_slice::<Message>(&p.payload) else {
                            continue;
                        };
                        if p.topic != response {
                            let _ = notify_tx.send(message);
                            continue;
                        }
                        let waiter = message
                            .id
                            .as_ref()
                            .and_then(|id| task_pending.lock().ok()?.remove(id));
                        match waiter {
                            Some(w) => {
                                let _ = w.send(message);
                            }
                            None => {
                                let _ = unmatched_tx.send(message);
                            }
                        }
                    }
                    // MQTT: after DISCONNECT the client closes the
                    // connection (dropping the event loop closes it).
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(Err(anyhow::anyhow!("cannot connect: {e}")));
                        }
                        return;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), ready_rx)
            .await
            .map_err(|_| anyhow::anyhow!("no SUBACK within 30 s"))?
            .map_err(|_| anyhow::anyhow!("connection task ended"))??;
        Ok(SpecClient {
            client,
            request_topic: request_topic(&options.prefix, &options.client_id),
            request_qos: options.request_qos,
            pending,
            next_id: AtomicU64::new(1),
            nonce: nonce(),
            notifications,
            unmatched,
            timeout: Duration::from_secs(30),
        })
    }

    /// Send `message` (an `id` is added if it has none) and wait for the
    /// response with the same id.
    pub async fn request(&self, mut message: Value) -> anyhow::Result<Message> {
        let id = match message.get("id").and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => {
                let n = self.next_id.fetch_add(1, Ordering::Relaxed);
                let id = format!("r{}-{n}", self.nonce);
                if let Some(obj) = message.as_object_mut() {
                    obj.insert("id".into(), Value::String(id.clone()));
                }
                id
            }
        };
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| anyhow::anyhow!("pending map poisoned"))?
            .insert(id.clone(), tx);
        self.publish_raw(serde_json::to_vec(&message)?).await?;
        tokio::time::timeout(self.timeout, rx)
            .await
            .map_err(|_| anyhow::anyhow!("no response to {id} within {:?}", self.timeout))?
            .map_err(|_| anyhow::anyhow!("connection closed before the response to {id}"))
    }

    /// Publish raw bytes on the request topic.
    pub async fn publish_raw(&self, payload: Vec<u8>) -> anyhow::Result<()> {
        self.client
            .publish(self.request_topic.clone(), self.request_qos, false, payload)
            .await?;
        Ok(())
    }

    /// The next response that matched no pending request (e.g. errors to
    /// payloads without an id).
    pub async fn unmatched_response(&mut self, timeout: Duration) -> Option<Message> {
        tokio::time::timeout(timeout, self.unmatched.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next notification, if one arrives within `timeout`.
    pub async fn notification(&mut self, timeout: Duration) -> Option<Message> {
        tokio::time::timeout(timeout, self.notifications.recv())
            .await
            .ok()
            .flatten()
    }

    /// Disconnect cleanly.
    pub async fn disconnect(self) -> anyhow::Result<()> {
        self.client.disconnect().await?;
        Ok(())
    }
}

/// A random-enough word for request ids (std's randomly seeded hasher).
fn nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:08x}", hasher.finish() as u32)
}
