//! `MqttCore`: the sans-IO session (`crates/mqtt-session`) and the
//! reconnection [`Backoff`] behind a narrow wasm API for the JS driver
//! (`client-wasm/js/mqtt-client.js`), which owns the WebSocket, the timers,
//! page events, the IndexedDB outbox, listeners and promises.
//!
//! Only numbers, strings, byte arrays and string arrays cross the boundary
//! (wasm-bindgen converts them in the glue, with no `Reflect` code here):
//! that is what keeps the MQTT-only entry point small. The layout of the
//! arrays below is the contract with the driver, written once here:
//!
//! - **Publish properties** are passed and returned as `props`, an array
//!   `[contentType, responseTopic, correlationData, messageExpiryInterval,
//!   payloadFormatIndicator, name1, value1, name2, value2, ...]` (absent
//!   values `undefined`; user properties flattened in wire order), or
//!   `undefined` for none.
//! - **Events** ([`MqttCore::event`]) are arrays whose first element is the
//!   kind: `[0, sessionPresent]` connected, `[1, topic, payload, qos, retain,
//!   dup, props]` message, `[2, pkid, reason]` publish flow finished, `[3,
//!   pkid, codes]` SUBACK, `[4, pkid]` UNSUBACK, `[5, pkid]` PUBREC received
//!   (QoS 2 released).
//! - **Errors** are thrown as strings `"CODE message"` (the code has no
//!   space); the driver turns them into `MqttError`s.
//!
//! Call order: the session's (see `mqtt_session::session`): `start` once the
//! WebSocket is open; `input` per message and `timeout` at `deadline`;
//! after each call drain `transmit` into the socket and `event` into the
//! application (taking an event may queue its acknowledgement: drain
//! `transmit` again); `lost` when the socket closes.

use backoff_core::Backoff;
use js_sys::{Array, Uint8Array};
use mqtt_session::{topic, v5, Event, Options, Protocol, QoS, Session, SubscribeFilter};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Options of `MqttClient.connect` (names follow MQTT.js). */
export interface ConnectOptions {
  /** 4 = MQTT 3.1.1 (default), 5 = MQTT 5. */
  protocolVersion?: 4 | 5;
  /** Default: `mqttspec_` + 8 random hex digits. */
  clientId?: string;
  username?: string;
  password?: string;
  /** Keep alive in seconds (default 60, 0 disables). */
  keepalive?: number;
  /** Clean start on the first connection (default true). Reconnections resume the session. */
  clean?: boolean;
  /** Milliseconds to wait for CONNACK (default 30000). */
  connectTimeout?: number;
  /** First reconnection delay in ms, doubled per failure with jitter (default 1000, 0 = never reconnect). */
  reconnectPeriod?: number;
  /** Upper bound of the reconnection delay in ms (default 30000). */
  maxReconnectDelay?: number;
  /** Resubscribe after reconnecting when the broker did not keep the session (default true). */
  resubscribe?: boolean;
  /** Publishes kept while offline before `publish` rejects with QUEUE_FULL (default 1000). */
  maxOfflineQueue?: number;
  /**
   * `'indexeddb'`: QoS 1/2 publishes are written to IndexedDB before they are sent and
   * resent after a page reload (QoS 2 exactly once, QoS 1 at least once, while the broker
   * keeps the session: `clean: false`, and `sessionExpiryInterval` with MQTT 5). Needs a
   * fixed `clientId`. Default: memory only.
   */
  store?: 'memory' | 'indexeddb';
  /** Largest packet accepted from the broker, in bytes (default 1 MiB). */
  maxPacketSize?: number;
  /** MQTT 5: topic aliases the broker may use (default 0). */
  topicAliasMaximum?: number;
  /** MQTT 5: session expiry in seconds. */
  sessionExpiryInterval?: number;
  /** MQTT 5 CONNECT properties. */
  properties?: { sessionExpiryInterval?: number; userProperties?: UserProperties };
  /** Last will, published by the broker if the connection drops without `end()`. */
  will?: {
    topic: string;
    payload: string | Uint8Array;
    qos?: 0 | 1 | 2;
    retain?: boolean;
    properties?: { willDelayInterval?: number; messageExpiryInterval?: number; contentType?: string; responseTopic?: string; userProperties?: UserProperties };
  };
}

/** MQTT 5 user properties: a name maps to one value or several. */
export type UserProperties = Record<string, string | string[]>;

/** Options of `publish`. */
export interface PublishOptions {
  qos?: 0 | 1 | 2;
  retain?: boolean;
  /** `false`: not written to the IndexedDB outbox of a `store: 'indexeddb'` client (nothing to resend after a reload). */
  store?: boolean;
  /** MQTT 5 publish properties. */
  properties?: {
    contentType?: string;
    responseTopic?: string;
    correlationData?: Uint8Array | string;
    messageExpiryInterval?: number;
    payloadFormatIndicator?: boolean;
    userProperties?: UserProperties;
  };
}

/** Options of `subscribe`. */
export interface SubscribeOptions {
  qos?: 0 | 1 | 2;
}

/** What the broker granted for one filter. */
export interface Granted {
  topic: string;
  qos: 0 | 1 | 2;
}

/** Details of a received message (third argument of the `message` listener). */
export interface MessageInfo {
  qos: 0 | 1 | 2;
  retain: boolean;
  dup: boolean;
  /** MQTT 5 properties, when the broker sent some. */
  properties?: {
    contentType?: string;
    responseTopic?: string;
    correlationData?: Uint8Array;
    messageExpiryInterval?: number;
    payloadFormatIndicator?: boolean;
    userProperties?: UserProperties;
  };
}

/** Errors are `Error`s with `name = "MqttError"` and one of these codes. */
export interface MqttError extends Error {
  code:
    | "INVALID_OPTIONS" | "INVALID_URL" | "INVALID_TOPIC" | "INVALID_PAYLOAD" | "CONNECTION_FAILED"
    | "CONNECTION_REFUSED" | "CONNECT_TIMEOUT" | "KEEPALIVE_TIMEOUT" | "SERVER_DISCONNECT"
    | "MALFORMED_PACKET" | "PROTOCOL_ERROR" | "PACKET_TOO_LARGE" | "QUEUE_FULL"
    | "PACKET_IDS_EXHAUSTED" | "ENCODE_ERROR" | "PUBLISH_REFUSED" | "SUBSCRIBE_REFUSED" | "ENDED"
    | "STORE_FAILED";
}

/** Listener signatures of `MqttClient.on`. */
export interface MqttClientEvents {
  message: (topic: string, payload: Uint8Array, info: MessageInfo) => void;
  connect: (connack: { sessionPresent: boolean }) => void;
  reconnect: () => void;
  offline: () => void;
  /** The socket closed; `reconnectInMs` says when the next attempt starts (absent: no reconnection). */
  close: (info: { reconnectInMs?: number }) => void;
  error: (error: MqttError) => void;
}

/** An MQTT over WebSocket connection (`client-wasm/js/mqtt-client.js`). */
export class MqttClient {
  /**
   * A client for `url` that is not connected yet: register listeners with `on`,
   * then call `open()`. Throws an `MqttError` for invalid options.
   */
  constructor(url: string, options?: ConnectOptions);
  /**
   * Connect to `url` (`ws://` or `wss://`, subprotocol `mqtt`). Resolves once the
   * broker accepted the connection; rejects with an `MqttError` if the first attempt
   * fails. Messages of a resumed session are delivered (and acknowledged) after the
   * code awaiting this promise has run, so a `message` listener registered right
   * after `await` gets them.
   */
  static connect(url: string, options?: ConnectOptions): Promise<MqttClient>;
  /**
   * Open the connection of a client made with `new MqttClient(url, options)`.
   * Resolves with the client once the broker accepted the first connection; rejects
   * if that attempt fails or the client was ended. Calling it again waits for the
   * same connection.
   */
  open(): Promise<MqttClient>;
  /**
   * Publish `payload` (string = UTF-8, or bytes). Resolves when the QoS flow
   * completes (PUBACK / PUBCOMP), at once for QoS 0; while offline the message
   * waits in the bounded offline queue.
   */
  publish(topic: string, payload: string | Uint8Array, options?: PublishOptions): Promise<void>;
  /**
   * Subscribe to one filter or several (`+` and `#` wildcards,
   * `$share/<group>/<filter>`). Resolves with what was granted; rejects if the
   * broker refused a filter. `onMessage`, if given, receives the messages matching
   * these filters (in addition to `on("message")`).
   */
  subscribe(filter: string | string[], options?: SubscribeOptions, onMessage?: (topic: string, payload: Uint8Array, info: MessageInfo) => void): Promise<Granted[]>;
  /** Unsubscribe from one filter or several. */
  unsubscribe(filter: string | string[]): Promise<void>;
  /** Listen to an event; returns the client for chaining. */
  on<K extends keyof MqttClientEvents>(event: K, listener: MqttClientEvents[K]): MqttClient;
  /** Remove a listener added with `on`. */
  off<K extends keyof MqttClientEvents>(event: K, listener: MqttClientEvents[K]): MqttClient;
  /**
   * Drop the connection without DISCONNECT (the broker publishes the will) and
   * reconnect with the usual backoff, resending what was not acknowledged. Useful
   * after the app learns that the network changed.
   */
  reconnect(): void;
  /**
   * Close cleanly (DISCONNECT: the will is not published), stop reconnecting and
   * reject pending operations with code `ENDED`.
   */
  end(): Promise<void>;
  /** True while the connection is up (CONNACK received). */
  readonly connected: boolean;
  /**
   * `sessionPresent` of the last CONNACK: the broker resumed the session (false
   * before the first connection).
   */
  readonly sessionPresent: boolean;
  /** The MQTT client identifier (`clientId`, or the generated one). */
  readonly clientId: string;
}
"#;

/// A session and its reconnection delays (see the module documentation).
#[wasm_bindgen(skip_typescript)]
pub struct MqttCore {
    session: Session,
    backoff: Backoff,
}

/// An error as the driver expects it: `"CODE message"`.
fn thrown(e: mqtt_session::Error) -> JsValue {
    let mut s = String::from(e.code());
    s.push(' ');
    s.push_str(&e.message());
    JsValue::from_str(&s)
}

fn qos_of(n: u8) -> QoS {
    match n {
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        _ => QoS::AtMostOnce,
    }
}

/// `[name, value, ...]` as pairs (a trailing lone name is dropped).
fn pairs(flat: Vec<String>) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}

/// Publish properties from the `props` array (None when absent).
fn properties_in(props: Option<Array>) -> Option<v5::PublishProperties> {
    let p = props?;
    let bytes = p.get(2).dyn_into::<Uint8Array>().ok().map(|a| a.to_vec());
    let user: Vec<String> = p
        .slice(5, p.length())
        .iter()
        .filter_map(|v| v.as_string())
        .collect();
    Some(v5::PublishProperties {
        content_type: p.get(0).as_string(),
        response_topic: p.get(1).as_string(),
        correlation_data: bytes.filter(|d| !d.is_empty()).map(Into::into),
        message_expiry_interval: p.get(3).as_f64().map(|v| v as u32),
        payload_format_indicator: p.get(4).as_bool().map(u8::from),
        topic_alias: None,
        user_properties: pairs(user),
        subscription_identifiers: Vec::new(),
    })
}

/// The `props` array of received properties.
fn properties_out(p: &v5::PublishProperties) -> Array {
    let out = Array::new();
    let opt_str = |s: &Option<String>| s.as_deref().map_or(JsValue::UNDEFINED, JsValue::from_str);
    out.push(&opt_str(&p.content_type));
    out.push(&opt_str(&p.response_topic));
    out.push(
        &p.correlation_data
            .as_ref()
            .map_or(JsValue::UNDEFINED, |d| Uint8Array::from(&d[..]).into()),
    );
    out.push(
        &p.message_expiry_interval
            .map_or(JsValue::UNDEFINED, JsValue::from),
    );
    out.push(
        &p.payload_format_indicator
            .map_or(JsValue::UNDEFINED, |v| JsValue::from(v == 1)),
    );
    for (k, v) in &p.user_properties {
        out.push(&JsValue::from_str(k));
        out.push(&JsValue::from_str(v));
    }
    out
}

fn array(items: &[JsValue]) -> JsValue {
    let out = Array::new();
    for item in items {
        out.push(item);
    }
    out.into()
}

#[wasm_bindgen]
impl MqttCore {
    /// A session for `client_id` (`v5`: MQTT 5, else 3.1.1). Times are in
    /// milliseconds except `keep_alive` and `session_expiry` (seconds);
    /// `user` holds CONNECT's user properties, flattened.
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client_id: String,
        v5: bool,
        keep_alive: u16,
        clean: bool,
        login: Option<Vec<String>>,
        connect_timeout: u32,
        resubscribe: bool,
        max_offline: u32,
        max_packet_size: u32,
        topic_alias_max: u16,
        session_expiry: Option<u32>,
        user: Vec<String>,
        reconnect_period: u32,
        max_reconnect_delay: u32,
    ) -> MqttCore {
        let protocol = if v5 { Protocol::V5 } else { Protocol::V4 };
        let mut o = Options::new(client_id, protocol);
        o.keep_alive = keep_alive;
        o.clean_start = clean;
        o.login = login.map(|mut l| {
            let pass = l.pop().unwrap_or_default();
            (l.pop().unwrap_or_default(), pass)
        });
        o.connect_timeout_ms = u64::from(connect_timeout);
        o.resubscribe = resubscribe;
        o.max_offline = max_offline as usize;
        o.max_packet_size = max_packet_size;
        o.topic_alias_max = topic_alias_max;
        o.session_expiry = session_expiry;
        o.user_properties = pairs(user);
        MqttCore {
            session: Session::new(o),
            backoff: Backoff::from_millis(reconnect_period, max_reconnect_delay),
        }
    }

    /// Set the last will (before the first `start`); `delay` is MQTT 5's
    /// will delay interval in seconds.
    pub fn will(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        qos: u8,
        retain: bool,
        delay: Option<u32>,
        props: Option<Array>,
    ) {
        let mut w = v5::LastWill::new(topic, payload, qos_of(qos), retain);
        let p = properties_in(props);
        if delay.is_some() || p.is_some() {
            let p = p.as_ref();
            w.properties = Some(v5::WillProperties {
                delay_interval: delay,
                payload_format_indicator: None,
                message_expiry_interval: p.and_then(|p| p.message_expiry_interval),
                content_type: p.and_then(|p| p.content_type.clone()),
                response_topic: p.and_then(|p| p.response_topic.clone()),
                correlation_data: None,
                user_properties: p.map(|p| p.user_properties.clone()).unwrap_or_default(),
            });
        }
        self.session.set_will(w);
    }

    /// The WebSocket is open: send CONNECT.
    pub fn start(&mut self, now: f64) -> Result<(), JsValue> {
        self.session.start_connection(now as u64).map_err(thrown)
    }

    /// The WebSocket closed.
    pub fn lost(&mut self) {
        self.session.connection_lost();
    }

    /// Queue DISCONNECT and end the session.
    pub fn end(&mut self) {
        self.session.end();
    }

    /// Bytes of one WebSocket message.
    pub fn input(&mut self, data: &[u8], now: f64) -> Result<(), JsValue> {
        self.session.handle_bytes(data, now as u64).map_err(thrown)
    }

    /// The deadline passed (keep alive, CONNACK wait).
    pub fn timeout(&mut self, now: f64) -> Result<(), JsValue> {
        self.session.handle_timeout(now as u64).map_err(thrown)
    }

    /// When `timeout` is due (milliseconds since the epoch), or -1.
    pub fn deadline(&self) -> f64 {
        self.session.poll_deadline().map_or(-1.0, |d| d as f64)
    }

    /// Nothing heard for longer than the keep alive allows.
    pub fn stale(&self, now: f64) -> bool {
        self.session.is_stale(now as u64)
    }

    /// CONNACK received and the connection up.
    pub fn connected(&self) -> bool {
        self.session.is_connected()
    }

    /// The next packet to send (one WebSocket message), if any.
    pub fn transmit(&mut self) -> Option<Vec<u8>> {
        self.session.poll_transmit().map(|b| b.to_vec())
    }

    /// The next event (see the module documentation), or undefined.
    pub fn event(&mut self) -> JsValue {
        let Some(event) = self.session.poll_event() else {
            return JsValue::UNDEFINED;
        };
        let num = |n: u16| JsValue::from(n);
        match event {
            Event::Connected {
                session_present, ..
            } => array(&[0.into(), session_present.into()]),
            Event::Message(m) => array(&[
                1.into(),
                JsValue::from_str(&m.topic),
                Uint8Array::from(&m.payload[..]).into(),
                (m.qos as u8).into(),
                m.retain.into(),
                m.dup.into(),
                m.properties
                    .as_ref()
                    .map_or(JsValue::UNDEFINED, |p| properties_out(p).into()),
            ]),
            Event::Published { pkid, reason } => array(&[2.into(), num(pkid), reason.into()]),
            Event::Subscribed { pkid, codes } => {
                array(&[3.into(), num(pkid), Uint8Array::from(&codes[..]).into()])
            }
            Event::Unsubscribed { pkid, .. } => array(&[4.into(), num(pkid)]),
            Event::Released { pkid } => array(&[5.into(), num(pkid)]),
        }
    }

    /// Publish. `mode`: 0 send, 1 hold until `release` (the driver stores it
    /// first), 2 restore with packet id `pkid`, 3 restore with only PUBREL
    /// left. Returns the packet identifier (0 for QoS 0).
    #[allow(clippy::too_many_arguments)]
    pub fn publish(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        qos: u8,
        retain: bool,
        props: Option<Array>,
        mode: u8,
        pkid: u16,
    ) -> Result<u16, JsValue> {
        let mut p = v5::Publish::new(topic, qos_of(qos), payload);
        p.retain = retain;
        p.properties = properties_in(props);
        let sent = match mode {
            0 => self.session.publish(p),
            1 => self.session.publish_held(p),
            _ => {
                p.pkid = pkid;
                self.session.restore(p, mode == 3).map(|()| Some(pkid))
            }
        };
        sent.map(|id| id.unwrap_or(0)).map_err(thrown)
    }

    /// Send held publish `pkid` (its outbox write committed).
    pub fn release(&mut self, pkid: u16) -> Result<(), JsValue> {
        self.session.release(pkid).map_err(thrown)
    }

    /// SUBSCRIBE to `filters` with `qos`; returns the packet identifier.
    pub fn subscribe(&mut self, filters: Vec<String>, qos: u8) -> Result<u16, JsValue> {
        let request = filters
            .into_iter()
            .map(|f| SubscribeFilter::new(f, qos_of(qos)))
            .collect();
        self.session.subscribe(request).map_err(thrown)
    }

    /// UNSUBSCRIBE from `filters`; returns the packet identifier.
    pub fn unsubscribe(&mut self, filters: Vec<String>) -> Result<u16, JsValue> {
        self.session.unsubscribe(filters).map_err(thrown)
    }

    /// The delay before the next reconnection attempt, in ms (`random` in [0, 1)).
    pub fn backoff(&mut self, random: f64) -> u32 {
        self.backoff.next_delay_ms(random)
    }

    /// A connection succeeded: the next delay starts from the first again.
    #[wasm_bindgen(js_name = backoffReset)]
    pub fn backoff_reset(&mut self) {
        self.backoff.reset();
    }

    /// Topic `topic` matches filter `filter` (`+`, `#`, `$share/...`).
    pub fn matches(&self, filter: &str, topic: &str) -> bool {
        topic::matches(filter, topic)
    }
}
