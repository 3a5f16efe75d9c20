//! `mqttspec-wasm`: the browser client. wasm-bindgen glue over the sans-IO
//! cores in `crates/`.
//!
//! - [`mqtt`]: MQTT 3.1.1/5 over WebSocket (`MqttClient` in JS).
//! - [`spec`]: MQTTSpec queries, subscriptions and live queries (`SpecClient` in JS).

pub mod mqtt;
pub mod spec;

use wasm_bindgen::prelude::*;

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// Topic a client publishes its MQTTSpec requests to.
#[wasm_bindgen(js_name = requestTopic)]
pub fn request_topic(prefix: &str, client_id: &str) -> String {
    mqttspec_proto::topic::request_topic(prefix, client_id)
}
