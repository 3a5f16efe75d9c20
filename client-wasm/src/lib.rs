//! `mqttspec-wasm`: the browser client. wasm-bindgen glue over the sans-IO
//! cores in `crates/`.
//!
//! - [`mqtt`]: MQTT 3.1.1/5 over WebSocket (`MqttClient` in JS).
//! - [`spec`]: MQTTSpec queries, subscriptions and live queries (`SpecClient` in JS).
//! - `timer`: timers kept in a Worker so a background tab keeps its keepalive.

pub mod mqtt;
mod reply;
#[cfg(feature = "spec")]
pub mod spec;
mod timer;

/// Panic messages in the browser console: feature `panic-hook`, on by
/// default, off in the MQTT-only entry point (built without default features).
#[cfg(feature = "panic-hook")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}
