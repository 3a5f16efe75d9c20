//! The JS API (`MqttClient`), shaped like MQTT.js where it makes sense:
//! `MqttClient.connect(url, options)` returns a Promise (or `new
//! MqttClient(url, options)`, listeners, then `client.open()`), `publish`,
//! `subscribe` and `unsubscribe` return Promises settled by the broker's
//! acknowledgements, `on(event, cb)` registers listeners, `end()` closes.
//! The TypeScript declarations are written by hand below because
//! wasm-bindgen's generated ones would be `any` for every options object.

use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use mqtt_session::{v5, Message};
use wasm_bindgen::prelude::*;

use super::client::{Client, EventKind};
use super::error::ClientError;
use super::options::{self, ClientOptions};

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

export interface MqttClient {
  /** Listen to an event; returns the client for chaining. */
  on<K extends keyof MqttClientEvents>(event: K, listener: MqttClientEvents[K]): MqttClient;
  /** Remove a listener added with `on`. */
  off<K extends keyof MqttClientEvents>(event: K, listener: MqttClientEvents[K]): MqttClient;
}
"#;

/// An MQTT over WebSocket connection (see the TypeScript declarations).
#[wasm_bindgen]
pub struct MqttClient {
    client: Client,
}

#[wasm_bindgen]
impl MqttClient {
    /// A client for `url` that is not connected yet: register listeners
    /// with `on`, then call `open()`. Throws an `MqttError` for invalid
    /// options.
    #[wasm_bindgen(constructor)]
    pub fn new(
        url: &str,
        #[wasm_bindgen(unchecked_optional_param_type = "ConnectOptions")] options: Option<Object>,
    ) -> Result<MqttClient, JsValue> {
        let opts = ClientOptions::from_js(&or_undefined(options)).map_err(|e| e.to_js())?;
        Ok(MqttClient {
            client: Client::new(url, opts),
        })
    }

    /// Connect to `url` (`ws://` or `wss://`, subprotocol `mqtt`). Resolves
    /// once the broker accepted the connection; rejects with an `MqttError`
    /// if the first attempt fails. Messages of a resumed session are
    /// delivered (and acknowledged) after the code awaiting this promise has
    /// run, so a `message` listener registered right after `await` gets them.
    #[wasm_bindgen(js_name = connect, unchecked_return_type = "Promise<MqttClient>")]
    pub fn connect_to(
        url: &str,
        #[wasm_bindgen(unchecked_optional_param_type = "ConnectOptions")] options: Option<Object>,
    ) -> Promise {
        match ClientOptions::from_js(&or_undefined(options)) {
            Ok(opts) => Client::connect(url, opts, |client| MqttClient { client }.into()),
            Err(e) => Promise::reject(&e.to_js()),
        }
    }

    /// Open the connection of a client made with `new MqttClient(url,
    /// options)`. Resolves with the client once the broker accepted the
    /// first connection; rejects if that attempt fails or the client was
    /// ended. Calling it again waits for the same connection.
    #[wasm_bindgen(unchecked_return_type = "Promise<MqttClient>")]
    pub fn open(&self) -> Promise {
        self.client.open(self.handle().into())
    }

    /// Publish `payload` (string = UTF-8, or bytes). Resolves when the QoS
    /// flow completes (PUBACK / PUBCOMP), at once for QoS 0; while offline
    /// the message waits in the bounded offline queue.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn publish(
        &self,
        topic: String,
        #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] payload: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "PublishOptions")] options: Option<Object>,
    ) -> Promise {
        match build_publish(topic, &payload, &or_undefined(options)) {
            Ok(p) => self.client.publish(p),
            Err(e) => Promise::reject(&e.to_js()),
        }
    }

    /// Subscribe to one filter or several (`+` and `#` wildcards,
    /// `$share/<group>/<filter>`). Resolves with what was granted; rejects
    /// if the broker refused a filter. `onMessage`, if given, receives the
    /// messages matching these filters (in addition to `on("message")`).
    #[wasm_bindgen(unchecked_return_type = "Promise<Granted[]>")]
    pub fn subscribe(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | string[]")] filter: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "SubscribeOptions")] options: Option<Object>,
        #[wasm_bindgen(
            js_name = onMessage,
            unchecked_optional_param_type = "(topic: string, payload: Uint8Array, info: MessageInfo) => void"
        )]
        on_message: Option<Function>,
    ) -> Promise {
        let filters = match filter_list(&filter) {
            Ok(f) => f,
            Err(e) => return Promise::reject(&e.to_js()),
        };
        let qos = match options::qos(&or_undefined(options)) {
            Ok(q) => q,
            Err(e) => return Promise::reject(&e.to_js()),
        };
        let handler = on_message.map(|f| {
            std::rc::Rc::new(move |m: &Message| {
                let (t, p, info) = message_args(m);
                let _ = f.call3(&JsValue::UNDEFINED, &t, &p, &info);
            }) as super::client::Handler
        });
        self.client
            .subscribe(filters.into_iter().map(|f| (f, qos)).collect(), handler)
    }

    /// Unsubscribe from one filter or several.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn unsubscribe(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | string[]")] filter: JsValue,
    ) -> Promise {
        match filter_list(&filter) {
            Ok(f) => self.client.unsubscribe(f),
            Err(e) => Promise::reject(&e.to_js()),
        }
    }

    /// Listen to `message`, `connect`, `reconnect`, `offline`, `close` or `error`.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, event: &str, listener: Function) -> Result<MqttClient, JsValue> {
        self.client.on(event_kind(event)?, listener);
        Ok(self.handle())
    }

    /// Remove a listener.
    #[wasm_bindgen(skip_typescript)]
    pub fn off(&self, event: &str, listener: Function) -> Result<MqttClient, JsValue> {
        self.client.off(event_kind(event)?, &listener);
        Ok(self.handle())
    }

    /// Close cleanly (DISCONNECT: the will is not published), stop
    /// reconnecting and reject pending operations with code `ENDED`.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn end(&self) -> Promise {
        self.client.end();
        Promise::resolve(&JsValue::UNDEFINED)
    }

    /// Drop the connection without DISCONNECT (the broker publishes the
    /// will) and reconnect with the usual backoff, resending what was not
    /// acknowledged. Useful after the app learns that the network changed.
    pub fn reconnect(&self) {
        self.client.drop_connection();
    }

    /// True while the connection is up (CONNACK received).
    #[wasm_bindgen(getter)]
    pub fn connected(&self) -> bool {
        self.client.is_connected()
    }

    /// `sessionPresent` of the last CONNACK: the broker resumed the session
    /// (false before the first connection).
    #[wasm_bindgen(getter, js_name = sessionPresent)]
    pub fn session_present(&self) -> bool {
        self.client.session_present()
    }
}

impl MqttClient {
    /// Another JS handle on the same connection (for chaining `on`).
    fn handle(&self) -> MqttClient {
        MqttClient {
            client: self.client.clone(),
        }
    }

    /// The Rust-level client behind this JS object.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// An optional options object as a plain value (undefined when absent).
fn or_undefined(options: Option<Object>) -> JsValue {
    options.map_or(JsValue::UNDEFINED, JsValue::from)
}

fn event_kind(name: &str) -> Result<EventKind, JsValue> {
    EventKind::parse(name).ok_or_else(|| {
        let mut m = String::from("unknown event '");
        m.push_str(name);
        m.push_str("': use message, connect, reconnect, offline, close or error");
        ClientError::new("INVALID_OPTIONS", m).to_js()
    })
}

fn filter_list(v: &JsValue) -> Result<Vec<String>, ClientError> {
    let list: Option<Vec<String>> = if let Some(s) = v.as_string() {
        Some(vec![s])
    } else if let Some(a) = v.dyn_ref::<Array>() {
        a.iter().map(|x| x.as_string()).collect()
    } else {
        None
    };
    match list {
        Some(l) if !l.is_empty() => Ok(l),
        _ => Err(ClientError::new(
            "INVALID_TOPIC",
            "expected a topic filter string or a non-empty array of them",
        )),
    }
}

pub(crate) fn build_publish(
    topic: String,
    payload: &JsValue,
    o: &JsValue,
) -> Result<v5::Publish, ClientError> {
    let bytes = options::payload(payload).ok_or_else(|| {
        ClientError::new(
            "INVALID_PAYLOAD",
            "payload must be a string or a Uint8Array",
        )
    })?;
    let mut p = v5::Publish::new(topic, options::qos(o)?, bytes);
    p.retain = options::boolean(o, "retain").unwrap_or(false);
    let props = options::get(o, "properties");
    if props.is_object() {
        p.properties = Some(v5::PublishProperties {
            payload_format_indicator: options::boolean(&props, "payloadFormatIndicator")
                .map(u8::from),
            message_expiry_interval: options::num(&props, "messageExpiryInterval")
                .map(|v| v as u32),
            topic_alias: None,
            response_topic: options::string(&props, "responseTopic"),
            correlation_data: options::payload(&options::get(&props, "correlationData"))
                .filter(|d| !d.is_empty())
                .map(Into::into),
            user_properties: options::user_properties(&props)?,
            subscription_identifiers: Vec::new(),
            content_type: options::string(&props, "contentType"),
        });
    }
    Ok(p)
}

fn set(obj: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

/// `(topic, payload, info)` for a message listener.
pub(crate) fn message_args(m: &Message) -> (JsValue, JsValue, JsValue) {
    let info = Object::new();
    set(&info, "qos", &JsValue::from(m.qos as u8));
    set(&info, "retain", &JsValue::from(m.retain));
    set(&info, "dup", &JsValue::from(m.dup));
    if let Some(p) = &m.properties {
        set(&info, "properties", &properties_js(p));
    }
    (
        JsValue::from_str(&m.topic),
        Uint8Array::from(&m.payload[..]).into(),
        info.into(),
    )
}

pub(crate) fn properties_js(p: &v5::PublishProperties) -> JsValue {
    let o = Object::new();
    if let Some(v) = &p.content_type {
        set(&o, "contentType", &v.into());
    }
    if let Some(v) = &p.response_topic {
        set(&o, "responseTopic", &v.into());
    }
    if let Some(v) = &p.correlation_data {
        set(&o, "correlationData", &Uint8Array::from(&v[..]).into());
    }
    if let Some(v) = p.message_expiry_interval {
        set(&o, "messageExpiryInterval", &v.into());
    }
    if let Some(v) = p.payload_format_indicator {
        set(&o, "payloadFormatIndicator", &(v == 1).into());
    }
    if !p.user_properties.is_empty() {
        let up = Object::new();
        for (k, v) in &p.user_properties {
            let key = JsValue::from_str(k);
            let prev = Reflect::get(&up, &key).unwrap_or(JsValue::UNDEFINED);
            let value: JsValue = if let Some(list) = prev.dyn_ref::<Array>() {
                list.push(&v.into());
                continue;
            } else if let Some(s) = prev.as_string() {
                Array::of2(&s.into(), &v.into()).into()
            } else {
                v.into()
            };
            let _ = Reflect::set(&up, &key, &value);
        }
        set(&o, "userProperties", &up);
    }
    o.into()
}

/// `[{topic, qos}]` for a SUBACK.
pub(crate) fn granted(filters: &[String], codes: &[u8]) -> JsValue {
    let out = Array::new();
    for (f, c) in filters.iter().zip(codes) {
        let o = Object::new();
        set(&o, "topic", &f.into());
        set(&o, "qos", &JsValue::from(*c));
        out.push(&o);
    }
    out.into()
}
