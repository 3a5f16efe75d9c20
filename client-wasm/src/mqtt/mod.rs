//! MQTT over WebSocket for the browser: [`MqttCore`], the sans-IO session of
//! `crates/mqtt-session` behind the narrow API that the JS driver
//! (`client-wasm/js/mqtt-client.js`, the `MqttClient` class) calls. The
//! TypeScript declarations of `MqttClient` are written here, in [`core`].

pub mod core;

pub use self::core::MqttCore;
pub use mqtt_session::{v5, Protocol, QoS};
