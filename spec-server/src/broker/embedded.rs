//! The embedded broker: rmqtt (MQTT 3.1, 3.1.1 and 5 over TCP and
//! WebSocket) in-process, with the server attached through rmqtt's hooks
//! instead of a client connection:
//!
//! - `ClientAuthenticate`: the client id must fit one topic level (else
//!   CONNACK "identifier rejected": 0x02, v5 0x85), the
//!   connect hooks run (JWT: the token is verified and must bind the id),
//!   and a client id held by another JWT subject is refused.
//! - `ClientSubscribeCheckAcl` / `MessagePublishCheckAcl`: [`Acl`] decides
//!   (SUBACK 0x80 / 0x87, v5 PUBACK 0x87), refusals are logged. An allowed
//!   PUBLISH on the publisher's own request topic goes to the
//!   [`Dispatcher`] with the session's client id and username, so the
//!   server learns who asked from the broker session, never from the topic
//!   alone (one ACL decision per packet: rmqtt's `MessagePublish` hook runs
//!   before the ACL check, so it cannot take requests by itself).
//! - `ClientDisconnected`: the connection's client is gone, unless a newer
//!   connection has taken its id meanwhile.
//!
//! Answers are published by the server into rmqtt's router (as a system
//! sender) at the configured QoS; each subscriber's queue is bounded by
//! rmqtt (see docs/SPEC_SERVER.md, "Slow consumers").

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mqttspec_proto::topic::{check_client_id, request_topic};
use rmqtt::codec::v5::{PublishProperties, SubscribeAckReason};
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler as HookHandler, HookResult, Parameter, ReturnType, Type};
use rmqtt::net::Builder;
use rmqtt::server::MqttServer;
use rmqtt::session::SessionState;
use rmqtt::types::{
    AuthResult, ClientId, CodecPublish, From, Id, PublishAclResult, QoS, Reason,
    SubscribeAclResult, TopicName,
};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::acl::{Acl, Identity};
use crate::dispatch::Dispatcher;
use crate::handler::{Caller, Handler, Outgoing};

/// Settings of the embedded broker.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// MQTT over TCP listener (port 0: any free port).
    pub mqtt_listen: SocketAddr,
    /// MQTT over WebSocket listener (path-agnostic; MQTT.js uses `/mqtt`).
    pub ws_listen: Option<SocketAddr>,
    /// Largest MQTT packet the broker accepts (bytes).
    pub max_packet: usize,
    /// Require a username (a JWT) at CONNECT.
    pub require_login: bool,
    /// Topic rules beyond the built-in ones.
    pub acl: Option<Acl>,
    /// QoS of the server's answers and notifications (capped by each
    /// subscription's QoS).
    pub qos: u8,
    /// Unacknowledged QoS 1/2 messages per subscriber.
    pub max_inflight: u16,
    /// Messages queued per subscriber behind them; past it rmqtt drops
    /// (QoS 0: the newest, QoS 1/2: the oldest).
    pub max_queued: usize,
}

impl EmbeddedConfig {
    /// A TCP listener only, 16 MiB packets, no login, answers at QoS 1.
    pub fn tcp(mqtt_listen: SocketAddr) -> Self {
        EmbeddedConfig {
            mqtt_listen,
            ws_listen: None,
            max_packet: 16 << 20,
            require_login: false,
            acl: None,
            qos: 1,
            max_inflight: 64,
            max_queued: 1000,
        }
    }
}

/// The addresses the broker listens on.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    /// MQTT over TCP.
    pub mqtt: SocketAddr,
    /// MQTT over WebSocket.
    pub ws: Option<SocketAddr>,
}

/// The connection currently holding a client id.
struct Holder {
    conn: Id,
    subject: Option<String>,
    claims: Option<Map<String, Value>>,
}

/// The server's side of rmqtt's hooks.
struct Hooks {
    prefix: String,
    acl: Acl,
    require_login: bool,
    handler: Arc<Handler>,
    dispatcher: Arc<Dispatcher>,
    holders: Mutex<HashMap<String, Holder>>,
}

impl Hooks {
    fn holders(&self) -> std::sync::MutexGuard<'_, HashMap<String, Holder>> {
        self.holders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decide a CONNECT; `Ok` records the connection as its id's holder.
    fn authenticate(&self, conn: &Id, password: Option<&[u8]>) -> Result<(), AuthResult> {
        let client_id = &*conn.client_id;
        let username = conn.username.as_deref();
        if let Err(why) = check_client_id(client_id) {
            tracing::info!(client_id, "connection refused: {why}");
            return Err(AuthResult::IdentifierRejected);
        }
        if self.require_login && username.is_none_or(str::is_empty) {
            tracing::info!(
                client_id,
                "connection refused: no username (connect with a JWT as MQTT username)"
            );
            return Err(AuthResult::BadUsernameOrPassword);
        }
        let password = password.map(|p| String::from_utf8_lossy(p).into_owned());
        let claims = self
            .handler
            .client_connecting(client_id, username, password.as_deref())
            .map_err(|e| {
                tracing::info!(client_id, error = %e, "connection refused by a hook");
                if self.require_login {
                    AuthResult::BadUsernameOrPassword
                } else {
                    AuthResult::NotAuthorized
                }
            })?;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut holders = self.holders();
        if let Some(held) = holders.get(client_id) {
            if self.require_login && held.subject != subject {
                tracing::warn!(
                    client_id,
                    holder = ?held.subject,
                    asking = ?subject,
                    "connection refused: the client id is held by another subject"
                );
                return Err(AuthResult::NotAuthorized);
            }
        }
        let claims = self.require_login.then_some(claims);
        holders.insert(
            client_id.to_string(),
            Holder {
                conn: conn.clone(),
                subject,
                claims,
            },
        );
        Ok(())
    }

    /// Run `decide` with the identity of `conn` if it is its id's current
    /// connection (a replaced connection may do nothing).
    fn with_identity<T>(&self, conn: &Id, decide: impl FnOnce(&Identity) -> T) -> Option<T> {
        let holders = self.holders();
        let holder = holders.get(&*conn.client_id)?;
        if holder.conn != *conn {
            return None;
        }
        let who = Identity {
            client_id: &conn.client_id,
            username: conn.username.as_deref(),
            claims: holder.claims.as_ref(),
        };
        Some(decide(&who))
    }

    /// May `conn` subscribe to `filter`? Refusals are logged.
    fn may_subscribe(&self, conn: &Id, filter: &str) -> bool {
        self.logged("subscribe", filter, conn, |who| {
            self.acl.may_subscribe(who, filter)
        })
    }

    /// May `conn` publish `publish`? Refusals are logged. An allowed
    /// request on `conn`'s own request topic goes to the dispatcher.
    fn publish_allowed(&self, conn: &Id, publish: &rmqtt::types::Publish) -> bool {
        let topic = &*publish.topic;
        let allowed = self.logged("publish", topic, conn, |who| {
            self.acl.may_publish(who, topic)
        });
        if allowed && topic == request_topic(&self.prefix, &conn.client_id) {
            let caller = Caller {
                client_id: conn.client_id.to_string(),
                username: conn.username.as_deref().map(str::to_string),
                request_qos: publish.qos as u8,
            };
            self.dispatcher.request(caller, publish.payload.to_vec());
        }
        allowed
    }

    fn logged(
        &self,
        what: &str,
        topic: &str,
        conn: &Id,
        decide: impl FnOnce(&Identity) -> bool,
    ) -> bool {
        let allowed = self.with_identity(conn, decide).unwrap_or(false);
        if !allowed {
            tracing::warn!(client_id = %conn.client_id, topic, "{what} refused by the ACL");
        }
        allowed
    }

    fn disconnected(&self, conn: &Id) {
        let client_id = &*conn.client_id;
        let current = {
            let mut holders = self.holders();
            let current = holders.get(client_id).is_some_and(|h| h.conn == *conn);
            if current {
                holders.remove(client_id);
            }
            current
        };
        if current {
            self.dispatcher.gone(client_id);
        } else {
            tracing::debug!(client_id, "a replaced connection ended");
        }
    }
}

struct HookEntry(Arc<Hooks>);

#[async_trait]
impl HookHandler for HookEntry {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        let hooks = &self.0;
        match param {
            Parameter::ClientAuthenticate(info) => {
                let password = info.password().map(|p| p.as_ref());
                let result = match hooks.authenticate(info.id(), password) {
                    Ok(()) => AuthResult::Allow(false, None),
                    Err(refusal) => refusal,
                };
                (false, Some(HookResult::AuthResult(result)))
            }
            Parameter::ClientSubscribeCheckAcl(session, subscribe) => {
                let result = if hooks.may_subscribe(&session.id, &subscribe.topic_filter) {
                    SubscribeAclResult::new_success(subscribe.opts.qos(), None)
                } else {
                    SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized)
                };
                (false, Some(HookResult::SubscribeAclResult(result)))
            }
            Parameter::MessagePublishCheckAcl(session, publish) => {
                let result = if hooks.publish_allowed(&session.id, publish) {
                    PublishAclResult::allow()
                } else {
                    PublishAclResult::rejected(false, Some("not authorized by the ACL".into()))
                };
                (false, Some(HookResult::PublishAclResult(result)))
            }
            Parameter::ClientDisconnected(session, _) => {
                hooks.disconnected(&session.id);
                (true, acc)
            }
            Parameter::MessageDropped(Some(to), _, publish, reason) => {
                if matches!(reason, Reason::MessageQueueFull) {
                    tracing::debug!(client_id = %to.client_id, topic = %publish.topic, "subscriber's queue full: message dropped");
                }
                (true, acc)
            }
            _ => (true, acc),
        }
    }
}

fn listener(
    name: &str,
    addr: SocketAddr,
    config: &EmbeddedConfig,
) -> anyhow::Result<rmqtt::net::Listener> {
    let builder = Builder::new()
        .name(name)
        .laddr(addr)
        .nodelay(true)
        // A restarted server binds its port again at once, whatever
        // connections of the previous one linger in TIME_WAIT.
        .reuseaddr(Some(true))
        .allow_anonymous(false)
        .allow_zero_keepalive(true)
        .max_packet_size(u32::try_from(config.max_packet).unwrap_or(u32::MAX))
        .max_clientid_len(mqttspec_proto::topic::MAX_CLIENT_ID_LEN)
        .max_inflight(NonZeroU16::new(config.max_inflight).unwrap_or(NonZeroU16::MIN))
        .max_mqueue_len(config.max_queued)
        .handshake_timeout(Duration::from_secs(10));
    builder.bind().map_err(|e| {
        anyhow::anyhow!("cannot listen on {addr} ({name}): {e}: is the address in use?")
    })
}

/// Start rmqtt with the server's hooks; returns once both listeners are
/// bound.
pub async fn start(
    config: EmbeddedConfig,
    prefix: &str,
    handler: Arc<Handler>,
    dispatcher: Arc<Dispatcher>,
    outgoing: mpsc::Receiver<Outgoing>,
) -> anyhow::Result<Listening> {
    let scx = ServerContext::new().build().await;
    rmqtt_retainer::register(&scx, true, false)
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the retained-message store: {e}"))?;
    let hooks = Arc::new(Hooks {
        prefix: prefix.to_string(),
        acl: config.acl.clone().unwrap_or_else(|| Acl::new(prefix)),
        require_login: config.require_login,
        handler,
        dispatcher,
        holders: Mutex::new(HashMap::new()),
    });
    let register = scx.extends.hook_mgr().register();
    for typ in [
        Type::ClientAuthenticate,
        Type::ClientSubscribeCheckAcl,
        Type::MessagePublishCheckAcl,
        Type::ClientDisconnected,
        Type::MessageDropped,
    ] {
        register
            .add(typ, Box::new(HookEntry(Arc::clone(&hooks))))
            .await;
    }
    register.start().await;

    let tcp = listener("tcp", config.mqtt_listen, &config)?.tcp()?;
    let mut listening = Listening {
        mqtt: tcp.local_addr()?,
        ws: None,
    };
    let mut server = MqttServer::new(scx.clone()).listener_by_id(tcp, 1);
    if let Some(addr) = config.ws_listen {
        let ws = listener("ws", addr, &config)?.ws()?;
        listening.ws = Some(ws.local_addr()?);
        server = server.listener_by_id(ws, 2);
    }
    tokio::spawn(async move {
        if let Err(e) = server.build().run().await {
            tracing::error!(error = %e, "embedded broker stopped");
        }
    });
    tokio::spawn(shard_answers(scx, outgoing, config.qos));
    Ok(listening)
}

fn qos_of(qos: u8) -> QoS {
    match qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// Publishers working in parallel; one client's messages always go to the
/// same one, so each client sees its answers and notifications in order.
const PUBLISHERS: usize = 4;

/// Spread the outbox over [`PUBLISHERS`] by the client the topic belongs
/// to (`{prefix}/{client}/...`): routing a notification fan-out to 1,000
/// clients one after the other would add every routing's latency to the
/// last subscriber's.
async fn shard_answers(scx: ServerContext, mut outgoing: mpsc::Receiver<Outgoing>, qos: u8) {
    let shards: Vec<mpsc::Sender<Outgoing>> = (0..PUBLISHERS)
        .map(|_| {
            let (tx, rx) = mpsc::channel(256);
            tokio::spawn(publish_answers(scx.clone(), rx, qos));
            tx
        })
        .collect();
    while let Some(out) = outgoing.recv().await {
        // `{prefix}/{client}` of `.../response` and `.../notify/{id}`.
        let topic = out.topic.as_str();
        let owner = topic.split("/notify/").next().unwrap_or(topic);
        let owner = owner.strip_suffix("/response").unwrap_or(owner);
        let shard = owner.bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        let Some(tx) = shards.get(shard % PUBLISHERS) else {
            continue;
        };
        if tx.send(out).await.is_err() {
            return;
        }
    }
}

/// Publish answers and notifications into the router, in order, as the
/// system sender `mqttspec-server`.
async fn publish_answers(scx: ServerContext, mut outgoing: mpsc::Receiver<Outgoing>, qos: u8) {
    let from = From::from_system(Id::new(
        scx.node.id(),
        0,
        None,
        None,
        ClientId::from_static("mqttspec-server"),
        None,
    ));
    while let Some(out) = outgoing.recv().await {
        let publish = CodecPublish {
            dup: false,
            retain: false,
            qos: qos_of(out.qos(qos)),
            topic: TopicName::from(out.topic),
            packet_id: None,
            payload: bytes::Bytes::copy_from_slice(&out.payload),
            properties: Some(PublishProperties::default()),
        };
        let publish =
            rmqtt::types::Publish::from(publish).create_time(rmqtt::utils::timestamp_millis());
        if let Err(e) = SessionState::forwards(&scx, from.clone(), publish, false, None).await {
            tracing::debug!(error = %e, "answer not routed");
        }
    }
}
