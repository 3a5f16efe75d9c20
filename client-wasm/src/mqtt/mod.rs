//! MQTT over WebSocket for the browser: the web-sys driver ([`client`]) of
//! the sans-IO session in `crates/mqtt-session`, its options ([`options`]),
//! errors ([`error`]), the persistent outbox (`outbox`) and the JS API ([`js`]).
//!
//! Rust code in this crate (the MQTTSpec client) uses [`Client`] directly:
//! `subscribe` with a Rust [`Handler`], `publish` returning a `Promise`
//! (await it with `wasm_bindgen_futures::JsFuture`).

pub mod client;
pub mod error;
pub mod js;
pub mod options;
mod outbox;

pub use client::{Client, EventKind, Handler};
pub use error::ClientError;
pub use js::MqttClient;
pub use mqtt_session::{v5, Message, Protocol, QoS};
pub use options::ClientOptions;
