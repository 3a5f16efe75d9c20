//! The sans-IO MQTT client session (modelled on rumqttc's `MqttState` and
//! quinn-proto): the driver feeds received bytes, elapsed time and
//! application requests in, and takes packets to send (one per WebSocket
//! message), application events and the next deadline out. No sockets, no
//! timers; time is a number of milliseconds chosen by the driver.
//!
//! The session outlives connections: publishes not yet acknowledged,
//! subscriptions and pending (un)subscribe requests are kept across
//! [`Session::connection_lost`] and replayed after the next CONNACK.
//!
//! A received QoS 1/2 message is acknowledged (PUBACK / PUBREC) when the
//! application takes it with [`Session::poll_event`], never before: a driver
//! that holds events (say, until the application had a chance to register
//! its listeners) holds the acknowledgements with them, so the server keeps
//! what nobody received. Acknowledgements leave in the order the messages
//! arrived, and only on the connection they arrived on (after a reconnection
//! the server resends what was not acknowledged).
//!
//! # Call order
//! 1. [`Session::start_connection`] once the transport is open;
//! 2. [`Session::handle_bytes`] for every chunk received, [`Session::handle_timeout`]
//!    when [`Session::poll_deadline`] is reached, application requests at any time;
//! 3. after each of those: drain [`Session::poll_transmit`] into the transport
//!    and [`Session::poll_event`] into the application (taking an event may
//!    queue its acknowledgement: drain `poll_transmit` again afterwards), then
//!    re-arm the timer from [`Session::poll_deadline`];
//! 4. [`Session::connection_lost`] when the transport closes, then back to 1.

use std::collections::VecDeque;

use bytes::Bytes;
use mqttbytes::v5::{self, Packet};
use mqttbytes::{Protocol, QoS};

use crate::codec::{decode, encode};
use crate::error::Error;
use crate::framing::Framer;
use crate::ids::{ById, IdSet};
use crate::topic::{validate_filter, validate_topic};

/// The largest remaining length MQTT can express (256 MiB - 1).
const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Connection parameters and client-side limits.
#[derive(Debug, Clone)]
pub struct Options {
    /// Client identifier (may be empty with MQTT 5 or a clean 3.1.1 session).
    pub client_id: String,
    /// MQTT 3.1.1 (`V4`) or MQTT 5 (`V5`).
    pub protocol: Protocol,
    /// Keep alive in seconds (0 disables pings).
    pub keep_alive: u16,
    /// Clean start / clean session flag, sent on the first connection only;
    /// reconnections always ask to resume the session.
    pub clean_start: bool,
    /// User name and password.
    pub login: Option<(String, String)>,
    /// Last will, published by the broker if the connection drops without DISCONNECT.
    pub will: Option<v5::LastWill>,
    /// MQTT 5 session expiry interval in seconds.
    pub session_expiry: Option<u32>,
    /// Largest packet accepted from the server, in bytes (also announced in MQTT 5).
    pub max_packet_size: u32,
    /// Topic aliases the server may use towards us (MQTT 5; 0 = none).
    pub topic_alias_max: u16,
    /// MQTT 5 user properties of CONNECT.
    pub user_properties: Vec<(String, String)>,
    /// How long to wait for CONNACK, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Re-send subscriptions when the server did not keep the session.
    pub resubscribe: bool,
    /// Maximum publishes held while disconnected.
    pub max_offline: usize,
}

impl Options {
    /// Defaults: keep alive 60 s, clean start, 1 MiB packets, 30 s connect
    /// timeout, resubscribe on, 1000 offline messages.
    pub fn new(client_id: impl Into<String>, protocol: Protocol) -> Self {
        Options {
            client_id: client_id.into(),
            protocol,
            keep_alive: 60,
            clean_start: true,
            login: None,
            will: None,
            session_expiry: None,
            max_packet_size: 1 << 20,
            topic_alias_max: 0,
            user_properties: Vec::new(),
            connect_timeout_ms: 30_000,
            resubscribe: true,
            max_offline: 1000,
        }
    }
}

/// A message received from the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Topic name (topic aliases already resolved).
    pub topic: String,
    /// Payload bytes.
    pub payload: Bytes,
    /// QoS it was delivered with.
    pub qos: QoS,
    /// Retained message (sent because of a new subscription).
    pub retain: bool,
    /// Redelivery flag.
    pub dup: bool,
    /// MQTT 5 properties (None for 3.1.1).
    pub properties: Option<v5::PublishProperties>,
}

/// Something the application should know about.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// CONNACK with success.
    Connected {
        /// The server resumed the previous session.
        session_present: bool,
        /// MQTT 5 CONNACK properties.
        properties: Option<v5::ConnAckProperties>,
    },
    /// A message arrived (once per QoS 2 message, even if the server resends it).
    Message(Message),
    /// The QoS 1/2 flow of publish `pkid` finished: `reason` 0 (or 0x10 "no
    /// matching subscribers") is success, >= 0x80 a refusal by the server.
    Published {
        /// Packet identifier returned by [`Session::publish`].
        pkid: u16,
        /// MQTT 5 reason code (always 0 with 3.1.1).
        reason: u8,
    },
    /// PUBREC accepted QoS 2 publish `pkid`: the server owns the message, and
    /// only PUBREL is left to send (a persisted outbox records that, so a
    /// restored session sends PUBREL, not the message again).
    Released {
        /// Packet identifier returned by [`Session::publish`].
        pkid: u16,
    },
    /// SUBACK: one code per filter (granted QoS 0-2, or >= 0x80 failure).
    Subscribed {
        /// Packet identifier returned by [`Session::subscribe`].
        pkid: u16,
        /// Per-filter result codes.
        codes: Vec<u8>,
    },
    /// UNSUBACK: one code per filter (0 with 3.1.1).
    Unsubscribed {
        /// Packet identifier returned by [`Session::unsubscribe`].
        pkid: u16,
        /// Per-filter result codes.
        codes: Vec<u8>,
    },
}

/// Where an outgoing QoS 1/2 publish stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for [`Session::release`] (the driver is persisting it).
    Held,
    /// Not sent on the current connection yet.
    Queued,
    /// QoS 1 sent, waiting for PUBACK.
    WaitAck,
    /// QoS 2 sent, waiting for PUBREC.
    WaitRec,
    /// PUBREL sent, waiting for PUBCOMP.
    WaitComp,
}

#[derive(Debug)]
struct Outgoing {
    publish: v5::Publish,
    stage: Stage,
}

/// An entry of the send queue (publishes waiting for a connection or for
/// the server's receive maximum).
#[derive(Debug)]
enum Queued {
    Qos0(Box<v5::Publish>),
    Pkid(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Disconnected,
    Connecting { deadline: u64 },
    Connected,
    Ended,
}

/// The client session. See the module documentation.
#[derive(Debug)]
pub struct Session {
    opts: Options,
    state: State,
    framer: Framer,
    now: u64,
    next_pkid: u16,
    /// Identifiers of pending publishes and requests.
    in_use: IdSet,
    /// Clean start is requested on the first connection only.
    first_connect: bool,
    /// QoS 1/2 publishes not completed, oldest first.
    outgoing: ById<Outgoing>,
    queue: VecDeque<Queued>,
    sent_count: usize,
    /// SUBSCRIBE/UNSUBSCRIBE packets awaiting their ack, oldest first.
    requests: ById<Packet>,
    /// Granted subscriptions, replayed when the server lost the session.
    subscriptions: Vec<v5::SubscribeFilter>,
    /// QoS 2 messages received, PUBREL not yet received.
    incoming_qos2: IdSet,
    /// Topic of alias n at index n - 1.
    aliases: Vec<Option<String>>,
    /// Server limits from CONNACK.
    receive_max: usize,
    server_max_packet: usize,
    keep_alive_ms: u64,
    last_tx: u64,
    /// When bytes last arrived from the server.
    last_rx: u64,
    ping_sent: Option<u64>,
    transmit: VecDeque<Bytes>,
    events: VecDeque<Pending>,
    /// Connections started so far: an acknowledgement is only sent on the
    /// connection its message arrived on.
    connection: u32,
}

/// An entry of the event queue: an event for the application, the
/// acknowledgement its taking releases, or both.
#[derive(Debug)]
struct Pending {
    event: Option<Event>,
    ack: Option<Ack>,
}

/// A PUBACK or PUBREC owed for a received message.
#[derive(Debug, Clone, Copy)]
struct Ack {
    pkid: u16,
    qos: QoS,
    connection: u32,
}

impl Pending {
    fn event(event: Event) -> Self {
        Pending {
            event: Some(event),
            ack: None,
        }
    }
}

impl Session {
    /// A disconnected session; call [`Session::start_connection`] once the transport is open.
    pub fn new(opts: Options) -> Self {
        Session {
            framer: Framer::new(opts.max_packet_size as usize),
            keep_alive_ms: u64::from(opts.keep_alive) * 1000,
            opts,
            state: State::Disconnected,
            now: 0,
            next_pkid: 0,
            in_use: IdSet::default(),
            first_connect: true,
            outgoing: ById::default(),
            queue: VecDeque::new(),
            sent_count: 0,
            requests: ById::default(),
            subscriptions: Vec::new(),
            incoming_qos2: IdSet::default(),
            aliases: Vec::new(),
            receive_max: usize::from(u16::MAX),
            server_max_packet: usize::MAX,
            last_tx: 0,
            last_rx: 0,
            ping_sent: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            connection: 0,
        }
    }

    /// The options the session was made with.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Set the last will sent with CONNECT (takes effect from the next
    /// connection; drivers call it before the first).
    pub fn set_will(&mut self, will: v5::LastWill) {
        self.opts.will = Some(will);
    }

    /// CONNACK received and the connection usable.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// [`Session::end`] was called.
    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }

    /// QoS 1/2 publishes not yet completed (sent or queued).
    pub fn inflight(&self) -> usize {
        self.outgoing.len()
    }

    /// Publishes waiting to be sent (offline or beyond the server's receive maximum).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Subscribe/unsubscribe requests not yet acknowledged.
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    /// Filters currently granted by the server.
    pub fn subscriptions(&self) -> impl Iterator<Item = &str> {
        self.subscriptions.iter().map(|f| f.path.as_str())
    }

    /// The transport is open: queue CONNECT and wait for CONNACK.
    pub fn start_connection(&mut self, now: u64) -> Result<(), Error> {
        if self.state == State::Ended {
            return Err(Error::Ended);
        }
        self.now = now;
        self.connection = self.connection.wrapping_add(1);
        self.framer = Framer::new(self.opts.max_packet_size as usize);
        self.transmit.clear();
        self.aliases.clear();
        self.ping_sent = None;
        // Limits a server announced apply to its connection only: the next CONNACK
        // sets them again (or not at all).
        self.keep_alive_ms = u64::from(self.opts.keep_alive) * 1000;
        self.receive_max = usize::from(u16::MAX);
        self.server_max_packet = usize::MAX;
        self.state = State::Connecting {
            deadline: now.saturating_add(self.opts.connect_timeout_ms),
        };
        let connect = self.connect_packet();
        self.send(&Packet::Connect(connect))
    }

    fn connect_packet(&self) -> v5::Connect {
        let o = &self.opts;
        let mut c = v5::Connect::new(o.client_id.as_str());
        c.protocol = o.protocol;
        c.keep_alive = o.keep_alive;
        c.clean_session = self.first_connect && o.clean_start;
        c.last_will = o.will.clone();
        c.login = o
            .login
            .as_ref()
            .map(|(u, p)| v5::Login::new(u.as_str(), p.as_str()));
        if o.protocol == Protocol::V5 {
            c.properties = Some(v5::ConnectProperties {
                session_expiry_interval: o.session_expiry,
                receive_maximum: None,
                max_packet_size: Some(o.max_packet_size),
                topic_alias_max: (o.topic_alias_max > 0).then_some(o.topic_alias_max),
                request_response_info: None,
                request_problem_info: None,
                user_properties: o.user_properties.clone(),
                authentication_method: None,
                authentication_data: None,
            });
        }
        c
    }

    /// The transport closed or failed. Everything not acknowledged is kept
    /// and replayed after the next CONNACK.
    pub fn connection_lost(&mut self) {
        if self.state != State::Ended {
            self.state = State::Disconnected;
        }
        self.transmit.clear();
        // Publishes never sent keep their place in `queue`; sent ones are
        // replayed from `outgoing` after the next CONNACK.
        self.sent_count = 0;
    }

    /// Graceful end: DISCONNECT is queued if connected, and the session
    /// refuses further work. Pending operations stay visible through
    /// [`Session::inflight`] for the driver to fail them.
    pub fn end(&mut self) {
        if self.state == State::Connected {
            let _ = self.send(&Packet::Disconnect(v5::Disconnect::new()));
        }
        self.state = State::Ended;
    }

    /// Next packet to write, exactly one MQTT packet (one WebSocket message).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// Next application event. Taking a received QoS 1/2 message queues its
    /// acknowledgement (if its connection is still the current one).
    pub fn poll_event(&mut self) -> Option<Event> {
        while let Some(Pending { event, ack }) = self.events.pop_front() {
            if let Some(ack) = ack {
                self.acknowledge(ack);
            }
            if event.is_some() {
                return event;
            }
        }
        None
    }

    fn acknowledge(&mut self, ack: Ack) {
        if ack.connection != self.connection || self.state != State::Connected {
            return;
        }
        let packet = match ack.qos {
            QoS::AtMostOnce => return,
            QoS::AtLeastOnce => Packet::PubAck(v5::PubAck::new(ack.pkid)),
            QoS::ExactlyOnce => Packet::PubRec(v5::PubRec::new(ack.pkid)),
        };
        // Acks are a few bytes and always encodable.
        let _ = self.send(&packet);
    }

    /// When [`Session::handle_timeout`] must be called next (ms), if ever.
    pub fn poll_deadline(&self) -> Option<u64> {
        match self.state {
            State::Connecting { deadline } => Some(deadline),
            State::Connected if self.keep_alive_ms > 0 => Some(match self.ping_sent {
                Some(at) => at.saturating_add(self.keep_alive_ms),
                None => self.last_tx.saturating_add(self.keep_alive_ms),
            }),
            _ => None,
        }
    }

    /// Whether a connected session heard nothing from the server for longer
    /// than the keep alive: a working connection answers pings well within
    /// it, so the transport is probably dead (a laptop that slept, a tab the
    /// browser froze, a network that changed). The driver may reconnect at
    /// once instead of waiting for the keep-alive timeout. False when not
    /// connected or with keep alive 0.
    pub fn is_stale(&self, now: u64) -> bool {
        self.state == State::Connected
            && self.keep_alive_ms > 0
            && now.saturating_sub(self.last_rx) > self.keep_alive_ms
    }

    /// Time passed: send PINGREQ when idle, fail when the server is silent.
    /// An error means the connection must be closed.
    pub fn handle_timeout(&mut self, now: u64) -> Result<(), Error> {
        self.now = now;
        let Some(deadline) = self.poll_deadline() else {
            return Ok(());
        };
        if now < deadline {
            return Ok(());
        }
        let err = match self.state {
            State::Connecting { .. } => Error::ConnectTimeout,
            _ if self.ping_sent.is_some() => Error::KeepaliveTimeout,
            _ => {
                self.ping_sent = Some(now);
                return self.send(&Packet::PingReq);
            }
        };
        self.connection_lost();
        Err(err)
    }

    /// Bytes received from the transport (any cut: part of a packet,
    /// several packets). An error means the connection must be closed; the
    /// session state (in-flight publishes, subscriptions) is kept.
    pub fn handle_bytes(&mut self, data: &[u8], now: u64) -> Result<(), Error> {
        self.now = now;
        self.last_rx = now;
        self.framer.push(data);
        let result = self.drain_framer();
        if result.is_err() {
            self.connection_lost();
        }
        result
    }

    fn drain_framer(&mut self) -> Result<(), Error> {
        while let Some(frame) = self.framer.next_packet()? {
            let packet = decode(frame, self.opts.protocol)?;
            self.handle_packet(packet)?;
        }
        Ok(())
    }

    fn handle_packet(&mut self, packet: Packet) -> Result<(), Error> {
        if let State::Connecting { .. } = self.state {
            return match packet {
                Packet::ConnAck(ack) => self.handle_connack(ack),
                _ => Err(Error::Protocol("expected CONNACK as the first packet")),
            };
        }
        match packet {
            Packet::Publish(p) => self.handle_publish(p),
            Packet::PubAck(ack) => {
                self.handle_puback(ack.pkid, ack.reason as u8);
                Ok(())
            }
            Packet::PubRec(rec) => self.handle_pubrec(rec.pkid, rec.reason as u8),
            Packet::PubRel(rel) => {
                self.incoming_qos2.remove(rel.pkid);
                self.send(&Packet::PubComp(v5::PubComp::new(rel.pkid)))
            }
            Packet::PubComp(comp) => {
                if let Some(o) = self.outgoing.get(comp.pkid) {
                    if o.stage == Stage::WaitComp {
                        self.complete(comp.pkid, 0);
                    }
                }
                Ok(())
            }
            Packet::SubAck(ack) => {
                let codes: Vec<u8> = ack.return_codes.iter().map(|c| *c as u8).collect();
                if let Some(Packet::Subscribe(sub)) = self.take_request(ack.pkid) {
                    for (filter, code) in sub.filters.into_iter().zip(&codes) {
                        if *code < 0x80 {
                            self.subscriptions.retain(|f| f.path != filter.path);
                            self.subscriptions.push(filter);
                        }
                    }
                    self.events.push_back(Pending::event(Event::Subscribed {
                        pkid: ack.pkid,
                        codes,
                    }));
                }
                Ok(())
            }
            Packet::UnsubAck(ack) => {
                if let Some(Packet::Unsubscribe(unsub)) = self.take_request(ack.pkid) {
                    let mut codes: Vec<u8> = ack.reasons.iter().map(|c| *c as u8).collect();
                    codes.resize(unsub.filters.len(), 0);
                    self.subscriptions
                        .retain(|f| !unsub.filters.contains(&f.path));
                    self.events.push_back(Pending::event(Event::Unsubscribed {
                        pkid: ack.pkid,
                        codes,
                    }));
                }
                Ok(())
            }
            Packet::PingResp => {
                self.ping_sent = None;
                Ok(())
            }
            Packet::Disconnect(d) => {
                self.connection_lost();
                Err(Error::ServerDisconnect(d.reason_code as u8))
            }
            Packet::ConnAck(_) => Err(Error::Protocol("CONNACK received twice")),
            Packet::Connect(_)
            | Packet::Subscribe(_)
            | Packet::Unsubscribe(_)
            | Packet::PingReq => Err(Error::Protocol("server sent a client-only packet")),
        }
    }

    fn handle_connack(&mut self, ack: v5::ConnAck) -> Result<(), Error> {
        let code = ack.code as u8;
        if code != 0 {
            self.connection_lost();
            return Err(Error::Refused(code));
        }
        self.state = State::Connected;
        self.first_connect = false;
        let session_present = ack.session_present;
        if let Some(p) = &ack.properties {
            self.receive_max = usize::from(p.receive_max.unwrap_or(u16::MAX).max(1));
            self.server_max_packet = p.max_packet_size.map_or(usize::MAX, |m| m as usize);
            if let Some(ka) = p.server_keep_alive {
                self.keep_alive_ms = u64::from(ka) * 1000;
            }
        }
        if !session_present {
            self.incoming_qos2.clear();
        }
        self.events.push_back(Pending::event(Event::Connected {
            session_present,
            properties: ack.properties,
        }));
        self.replay(session_present)
    }

    /// After CONNACK, in this order:
    /// 1. when the server lost the session, one SUBSCRIBE with every granted
    ///    filter (before anything is resent, so the client's own
    ///    subscriptions see its resent publishes);
    /// 2. the (un)subscribe requests still waiting for their ack;
    /// 3. unacknowledged publishes and PUBRELs, in their original order (DUP
    ///    set when the session was kept);
    /// 4. the queue of publishes never sent.
    fn replay(&mut self, session_present: bool) -> Result<(), Error> {
        if !session_present && self.opts.resubscribe && !self.subscriptions.is_empty() {
            let pkid = self.alloc_pkid()?;
            let sub = v5::Subscribe {
                pkid,
                filters: self.subscriptions.clone(),
                properties: None,
            };
            self.requests.push_front(pkid, Packet::Subscribe(sub));
        }
        let pending: Vec<Packet> = self.requests.iter().map(|(_, p)| p.clone()).collect();
        for packet in &pending {
            self.send(packet)?;
        }
        let mut resend = Vec::new();
        for (pkid, o) in self.outgoing.iter() {
            match o.stage {
                Stage::Held | Stage::Queued => {}
                Stage::WaitComp => resend.push(Packet::PubRel(v5::PubRel::new(pkid))),
                Stage::WaitAck | Stage::WaitRec => {
                    let mut p = o.publish.clone();
                    p.dup = session_present;
                    resend.push(Packet::Publish(p));
                }
            }
        }
        self.sent_count = resend.len();
        for packet in &resend {
            self.send(packet)?;
        }
        self.flush_queue()
    }

    /// Remove an acknowledged request and free its identifier.
    fn take_request(&mut self, pkid: u16) -> Option<Packet> {
        let packet = self.requests.remove(pkid)?;
        self.in_use.remove(pkid);
        Some(packet)
    }

    fn handle_publish(&mut self, mut p: v5::Publish) -> Result<(), Error> {
        let alias = p.properties.as_ref().and_then(|props| props.topic_alias);
        if let Some(alias) = alias {
            if alias == 0 || alias > self.opts.topic_alias_max {
                return Err(Error::Protocol("topic alias out of the announced range"));
            }
            let slot = usize::from(alias - 1);
            if p.topic.is_empty() {
                match self.aliases.get(slot) {
                    Some(Some(topic)) => p.topic.clone_from(topic),
                    _ => return Err(Error::Protocol("unknown topic alias")),
                }
            } else {
                if self.aliases.len() <= slot {
                    self.aliases.resize(slot + 1, None);
                }
                if let Some(s) = self.aliases.get_mut(slot) {
                    *s = Some(p.topic.clone());
                }
            }
        } else if p.topic.is_empty() {
            return Err(Error::Protocol("PUBLISH with an empty topic and no alias"));
        }
        let ack = (p.qos != QoS::AtMostOnce).then_some(Ack {
            pkid: p.pkid,
            qos: p.qos,
            connection: self.connection,
        });
        // A QoS 2 message is delivered once: a resent one only gets its PUBREC
        // (after the first copy was taken).
        let fresh = p.qos != QoS::ExactlyOnce || self.incoming_qos2.insert(p.pkid);
        let event = fresh.then(|| {
            Event::Message(Message {
                topic: p.topic,
                payload: p.payload,
                qos: p.qos,
                retain: p.retain,
                dup: p.dup,
                properties: p.properties,
            })
        });
        self.events.push_back(Pending { event, ack });
        Ok(())
    }

    fn handle_puback(&mut self, pkid: u16, reason: u8) {
        if let Some(o) = self.outgoing.get(pkid) {
            if o.stage == Stage::WaitAck {
                self.complete(pkid, reason);
            }
        }
    }

    fn handle_pubrec(&mut self, pkid: u16, reason: u8) -> Result<(), Error> {
        match self.outgoing.get_mut(pkid) {
            Some(o) if o.stage == Stage::WaitRec && reason >= 0x80 => {
                self.complete(pkid, reason);
                Ok(())
            }
            Some(o) if matches!(o.stage, Stage::WaitRec | Stage::WaitComp) => {
                if o.stage == Stage::WaitRec {
                    self.events
                        .push_back(Pending::event(Event::Released { pkid }));
                }
                o.stage = Stage::WaitComp;
                // The payload is no longer needed: the server owns the message.
                o.publish.payload = Bytes::new();
                self.send(&Packet::PubRel(v5::PubRel::new(pkid)))
            }
            _ => Ok(()),
        }
    }

    /// A QoS 1/2 flow finished: free the identifier and send what waited.
    fn complete(&mut self, pkid: u16, reason: u8) {
        self.outgoing.remove(pkid);
        self.in_use.remove(pkid);
        self.sent_count = self.sent_count.saturating_sub(1);
        self.events
            .push_back(Pending::event(Event::Published { pkid, reason }));
        // Errors here concern queued publishes, which report their own failure.
        let _ = self.flush_queue();
    }

    /// Publish a message. Returns the packet identifier for QoS 1/2 (an
    /// [`Event::Published`] with it follows when the flow completes), None
    /// for QoS 0 (sent or queued). While disconnected publishes wait in a
    /// bounded queue.
    pub fn publish(&mut self, publish: v5::Publish) -> Result<Option<u16>, Error> {
        self.enqueue(publish, Stage::Queued)
    }

    /// [`Session::publish`] for a persisted outbox: a QoS 1/2 message gets its
    /// packet identifier but is not sent until [`Session::release`], so the
    /// driver can store it with that identifier first (a message resent after
    /// a page reload must keep it for the server to recognize a duplicate).
    /// QoS 0 messages are not held.
    pub fn publish_held(&mut self, publish: v5::Publish) -> Result<Option<u16>, Error> {
        self.enqueue(publish, Stage::Held)
    }

    /// Send held publish `pkid` (in the order of the calls).
    pub fn release(&mut self, pkid: u16) -> Result<(), Error> {
        match self.outgoing.get_mut(pkid) {
            Some(o) if o.stage == Stage::Held => o.stage = Stage::Queued,
            _ => return Ok(()),
        }
        self.queue.push_back(Queued::Pkid(pkid));
        self.flush_queue()
    }

    /// Re-enter a QoS 1/2 publish a previous session persisted (before the
    /// first connection, e.g. after a page reload), with its packet
    /// identifier: it is resent after CONNACK (with DUP if the server kept
    /// the session), or only its PUBREL when `released` (PUBREC was
    /// received). Completion is reported with [`Event::Published`] as usual.
    pub fn restore(&mut self, mut publish: v5::Publish, released: bool) -> Result<(), Error> {
        if self.state == State::Ended {
            return Err(Error::Ended);
        }
        let pkid = publish.pkid;
        if publish.qos == QoS::AtMostOnce || pkid == 0 || !self.in_use.insert(pkid) {
            return Err(Error::Protocol(
                "a restored publish needs QoS 1 or 2 and a packet identifier not in use",
            ));
        }
        let stage = match publish.qos {
            QoS::ExactlyOnce if released => {
                publish.payload = Bytes::new();
                Stage::WaitComp
            }
            QoS::ExactlyOnce => Stage::WaitRec,
            _ => Stage::WaitAck,
        };
        self.outgoing.push(pkid, Outgoing { publish, stage });
        Ok(())
    }

    fn enqueue(&mut self, mut publish: v5::Publish, stage: Stage) -> Result<Option<u16>, Error> {
        if self.state == State::Ended {
            return Err(Error::Ended);
        }
        validate_topic(&publish.topic)?;
        // Refuse what cannot be encoded now rather than at (re)send time.
        if publish.topic.len() > usize::from(u16::MAX) {
            return Err(Error::Encode);
        }
        let size = publish.len() + 5;
        if size > MAX_REMAINING_LENGTH {
            return Err(Error::Encode);
        }
        if size > self.server_max_packet {
            return Err(Error::PacketTooLarge {
                size,
                limit: self.server_max_packet,
            });
        }
        let connected = self.state == State::Connected;
        if !connected && self.queue.len() >= self.opts.max_offline {
            return Err(Error::QueueFull(self.opts.max_offline));
        }
        publish.dup = false;
        if publish.qos == QoS::AtMostOnce {
            publish.pkid = 0;
            if connected && self.queue.is_empty() {
                self.send(&Packet::Publish(publish))?;
            } else {
                self.queue.push_back(Queued::Qos0(Box::new(publish)));
            }
            return Ok(None);
        }
        let pkid = self.alloc_pkid()?;
        publish.pkid = pkid;
        self.outgoing.push(pkid, Outgoing { publish, stage });
        if stage == Stage::Queued {
            self.queue.push_back(Queued::Pkid(pkid));
            if connected {
                self.flush_queue()?;
            }
        }
        Ok(Some(pkid))
    }

    /// Send queued publishes while connected and within the receive maximum.
    fn flush_queue(&mut self) -> Result<(), Error> {
        if self.state != State::Connected {
            return Ok(());
        }
        while let Some(front) = self.queue.front() {
            if matches!(front, Queued::Pkid(_)) && self.sent_count >= self.receive_max {
                break;
            }
            let Some(item) = self.queue.pop_front() else {
                break;
            };
            match item {
                Queued::Qos0(p) => self.send_checked(*p, None)?,
                Queued::Pkid(pkid) => {
                    let Some(o) = self.outgoing.get_recent_mut(pkid) else {
                        continue;
                    };
                    o.stage = if o.publish.qos == QoS::AtLeastOnce {
                        Stage::WaitAck
                    } else {
                        Stage::WaitRec
                    };
                    let p = o.publish.clone();
                    self.sent_count += 1;
                    self.send_checked(p, Some(pkid))?;
                }
            }
        }
        Ok(())
    }

    /// Send a queued publish, failing it (not the connection) if the server's
    /// maximum packet size, learnt after it was queued, is too small.
    fn send_checked(&mut self, p: v5::Publish, pkid: Option<u16>) -> Result<(), Error> {
        if p.len() + 5 > self.server_max_packet {
            if let Some(pkid) = pkid {
                self.outgoing.remove(pkid);
                self.in_use.remove(pkid);
                self.sent_count = self.sent_count.saturating_sub(1);
                self.events
                    .push_back(Pending::event(Event::Published { pkid, reason: 0x95 }));
            }
            return Ok(());
        }
        self.send(&Packet::Publish(p))
    }

    /// Subscribe to filters (filter, QoS). Returns the packet identifier of
    /// the coming [`Event::Subscribed`]. While disconnected the request waits
    /// for the connection.
    pub fn subscribe(&mut self, filters: Vec<v5::SubscribeFilter>) -> Result<u16, Error> {
        for f in &filters {
            validate_filter(&f.path)?;
        }
        let pkid = self.alloc_pkid()?;
        self.request(Packet::Subscribe(v5::Subscribe {
            pkid,
            filters,
            properties: None,
        }))?;
        Ok(pkid)
    }

    /// Unsubscribe from filters. Returns the packet identifier of the coming
    /// [`Event::Unsubscribed`].
    pub fn unsubscribe(&mut self, filters: Vec<String>) -> Result<u16, Error> {
        for f in &filters {
            validate_filter(f)?;
        }
        let pkid = self.alloc_pkid()?;
        self.request(Packet::Unsubscribe(v5::Unsubscribe {
            pkid,
            filters,
            properties: None,
        }))?;
        Ok(pkid)
    }

    fn request(&mut self, packet: Packet) -> Result<(), Error> {
        if self.state == State::Ended {
            return Err(Error::Ended);
        }
        let bytes = encode(&packet, self.opts.protocol).map_err(|_| Error::Encode)?;
        let pkid = match &packet {
            Packet::Subscribe(s) => s.pkid,
            Packet::Unsubscribe(u) => u.pkid,
            _ => return Err(Error::Encode),
        };
        if self.state == State::Connected {
            self.push_transmit(bytes);
        }
        self.requests.push(pkid, packet);
        Ok(())
    }

    /// A free packet identifier (1..=65535), not used by any pending operation.
    fn alloc_pkid(&mut self) -> Result<u16, Error> {
        for _ in 0..u16::MAX {
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            let id = self.next_pkid;
            if self.in_use.insert(id) {
                return Ok(id);
            }
        }
        Err(Error::PacketIdsExhausted)
    }

    fn send(&mut self, packet: &Packet) -> Result<(), Error> {
        let bytes = encode(packet, self.opts.protocol).map_err(|_| Error::Encode)?;
        self.push_transmit(bytes);
        Ok(())
    }

    fn push_transmit(&mut self, bytes: Bytes) {
        self.last_tx = self.now;
        self.transmit.push_back(bytes);
    }
}
