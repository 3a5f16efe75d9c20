//! Connection options, read from a plain JS object with `Reflect` (no serde:
//! it keeps the wasm small). Names follow MQTT.js where they exist.

use js_sys::{Object, Reflect, Uint8Array};
use mqtt_session::{v5, Options, Protocol, QoS};
use wasm_bindgen::{JsCast, JsValue};

use super::error::ClientError;

/// Everything `connect` needs besides the URL.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Session parameters (client id, protocol, keep alive, login, will...).
    pub session: Options,
    /// First reconnection delay in ms; doubles up to `max_reconnect_delay_ms`. 0 disables reconnection.
    pub reconnect_period_ms: u32,
    /// Upper bound of the reconnection delay in ms.
    pub max_reconnect_delay_ms: u32,
    /// QoS 1/2 publishes are kept in IndexedDB across page reloads (`store: 'indexeddb'`).
    pub persistent: bool,
}

impl ClientOptions {
    /// Defaults with a random client id: MQTT 3.1.1, keep alive 60 s,
    /// reconnect after 1 s doubling up to 30 s.
    pub fn new(protocol: Protocol) -> Self {
        ClientOptions {
            session: Options::new(random_client_id(), protocol),
            reconnect_period_ms: 1000,
            max_reconnect_delay_ms: 30_000,
            persistent: false,
        }
    }

    /// Parse the JS options object (undefined/null gives the defaults).
    pub fn from_js(o: &JsValue) -> Result<Self, ClientError> {
        let protocol = match num(o, "protocolVersion") {
            None | Some(4.0) => Protocol::V4,
            Some(5.0) => Protocol::V5,
            Some(_) => return Err(bad("protocolVersion must be 4 (MQTT 3.1.1) or 5 (MQTT 5)")),
        };
        let mut opts = ClientOptions::new(protocol);
        let s = &mut opts.session;
        if let Some(id) = string(o, "clientId") {
            s.client_id = id;
        }
        if let Some(k) = num(o, "keepalive") {
            s.keep_alive = to_u16(k, "keepalive (seconds)")?;
        }
        if let Some(c) = boolean(o, "clean") {
            s.clean_start = c;
        }
        let user = string(o, "username");
        let pass = string(o, "password");
        if user.is_some() || pass.is_some() {
            s.login = Some((user.unwrap_or_default(), pass.unwrap_or_default()));
        }
        if let Some(t) = num(o, "connectTimeout") {
            s.connect_timeout_ms = t.max(0.0) as u64;
        }
        if let Some(r) = boolean(o, "resubscribe") {
            s.resubscribe = r;
        }
        if let Some(q) = num(o, "maxOfflineQueue") {
            s.max_offline = q.max(0.0) as usize;
        }
        if let Some(m) = num(o, "maxPacketSize") {
            s.max_packet_size = m.clamp(16.0, 268_435_455.0) as u32;
        }
        if let Some(m) = num(o, "topicAliasMaximum") {
            s.topic_alias_max = to_u16(m, "topicAliasMaximum")?;
        }
        if let Some(e) = num(o, "sessionExpiryInterval") {
            s.session_expiry = Some(e.clamp(0.0, f64::from(u32::MAX)) as u32);
        }
        let props = get(o, "properties");
        s.user_properties = user_properties(&props)?;
        if let Some(e) = num(&props, "sessionExpiryInterval") {
            s.session_expiry = Some(e.clamp(0.0, f64::from(u32::MAX)) as u32);
        }
        let will = get(o, "will");
        if will.is_object() {
            let topic = string(&will, "topic").ok_or_else(|| bad("will.topic is required"))?;
            let payload = payload(&get(&will, "payload"))
                .ok_or_else(|| bad("will.payload must be a string or a Uint8Array"))?;
            let mut w = v5::LastWill::new(
                topic,
                payload,
                qos(&will)?,
                boolean(&will, "retain").unwrap_or(false),
            );
            let wp = get(&will, "properties");
            if wp.is_object() {
                w.properties = Some(v5::WillProperties {
                    delay_interval: num(&wp, "willDelayInterval").map(|d| d as u32),
                    payload_format_indicator: None,
                    message_expiry_interval: num(&wp, "messageExpiryInterval").map(|d| d as u32),
                    content_type: string(&wp, "contentType"),
                    response_topic: string(&wp, "responseTopic"),
                    correlation_data: None,
                    user_properties: user_properties(&wp)?,
                });
            }
            s.will = Some(w);
        }
        if let Some(p) = num(o, "reconnectPeriod") {
            opts.reconnect_period_ms = p.max(0.0) as u32;
        }
        if let Some(p) = num(o, "maxReconnectDelay") {
            opts.max_reconnect_delay_ms = p.max(0.0) as u32;
        }
        match string(o, "store").as_deref() {
            None | Some("memory") => {}
            Some("indexeddb") if string(o, "clientId").is_some() => opts.persistent = true,
            Some("indexeddb") => {
                return Err(bad(
                    "store: 'indexeddb' needs a fixed clientId: the outbox is found again by it after a reload",
                ))
            }
            Some(_) => return Err(bad("store must be 'memory' or 'indexeddb'")),
        }
        Ok(opts)
    }
}

/// `mqttspec_` followed by 8 random hex digits.
fn random_client_id() -> String {
    let mut id = String::from("mqttspec_");
    let n = (js_sys::Math::random() * f64::from(u32::MAX)) as u32;
    for shift in (0..8).rev() {
        let digit = (n >> (shift * 4)) & 0xf;
        id.push(char::from_digit(digit, 16).unwrap_or('0'));
    }
    id
}

fn bad(msg: &str) -> ClientError {
    ClientError::new("INVALID_OPTIONS", msg)
}

fn to_u16(v: f64, what: &str) -> Result<u16, ClientError> {
    if (0.0..=65535.0).contains(&v) {
        Ok(v as u16)
    } else {
        let mut m = String::from(what);
        m.push_str(" must be between 0 and 65535");
        Err(bad(&m))
    }
}

/// `obj[key]`, or undefined.
pub(crate) fn get(obj: &JsValue, key: &str) -> JsValue {
    if obj.is_object() {
        Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    }
}

pub(crate) fn string(obj: &JsValue, key: &str) -> Option<String> {
    get(obj, key).as_string()
}

pub(crate) fn num(obj: &JsValue, key: &str) -> Option<f64> {
    get(obj, key).as_f64()
}

pub(crate) fn boolean(obj: &JsValue, key: &str) -> Option<bool> {
    get(obj, key).as_bool()
}

/// `qos` of an options object: 0 (default), 1 or 2.
pub(crate) fn qos(obj: &JsValue) -> Result<QoS, ClientError> {
    match num(obj, "qos") {
        None | Some(0.0) => Ok(QoS::AtMostOnce),
        Some(1.0) => Ok(QoS::AtLeastOnce),
        Some(2.0) => Ok(QoS::ExactlyOnce),
        Some(_) => Err(bad("qos must be 0, 1 or 2")),
    }
}

/// Bytes of a string (UTF-8) or a Uint8Array / ArrayBuffer.
pub(crate) fn payload(v: &JsValue) -> Option<Vec<u8>> {
    if let Some(s) = v.as_string() {
        Some(s.into_bytes())
    } else if let Some(a) = v.dyn_ref::<Uint8Array>() {
        Some(a.to_vec())
    } else if v.is_instance_of::<js_sys::ArrayBuffer>() {
        Some(Uint8Array::new(v).to_vec())
    } else if v.is_undefined() || v.is_null() {
        Some(Vec::new())
    } else {
        None
    }
}

/// `obj.userProperties` as `{name: value | value[]}` (MQTT.js shape).
pub(crate) fn user_properties(obj: &JsValue) -> Result<Vec<(String, String)>, ClientError> {
    let up = get(obj, "userProperties");
    let mut out = Vec::new();
    if !up.is_object() {
        return Ok(out);
    }
    for entry in Object::entries(up.unchecked_ref::<Object>()).iter() {
        let pair: js_sys::Array = entry.unchecked_into();
        let key = pair.get(0).as_string().unwrap_or_default();
        let value = pair.get(1);
        if let Some(list) = value.dyn_ref::<js_sys::Array>() {
            for v in list.iter() {
                out.push((key.clone(), prop_string(&v)?));
            }
        } else {
            out.push((key, prop_string(&value)?));
        }
    }
    Ok(out)
}

fn prop_string(v: &JsValue) -> Result<String, ClientError> {
    v.as_string()
        .ok_or_else(|| bad("userProperties values must be strings or arrays of strings"))
}
