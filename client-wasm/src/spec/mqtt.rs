//! SpecClient's MQTT connection: the JS driver's `MqttClient`
//! (`client-wasm/js/mqtt-client.js`, imported as a wasm-bindgen snippet, so
//! the package's bundle holds one copy of it), over this crate's
//! [`MqttCore`](crate::mqtt::MqttCore). Rust code (SpecClient, the browser
//! tests) drives it through these bindings.

use js_sys::{Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::mqtt::MqttCore;

#[wasm_bindgen(module = "/js/mqtt-client.js")]
extern "C" {
    /// An MQTT over WebSocket connection (`MqttClient` in JS).
    #[derive(Clone)]
    pub type MqttClient;

    /// A client for `url` that is not connected yet; throws an `MqttError`
    /// for invalid options.
    #[wasm_bindgen(constructor, catch)]
    pub fn new(url: &str, options: &JsValue) -> Result<MqttClient, JsValue>;

    /// Connect; resolves once the broker accepted the first connection.
    #[wasm_bindgen(method)]
    pub fn open(this: &MqttClient) -> Promise;

    /// Publish; resolves when the QoS flow completes.
    #[wasm_bindgen(method)]
    pub fn publish(
        this: &MqttClient,
        topic: &str,
        payload: &Uint8Array,
        options: &JsValue,
    ) -> Promise;

    /// Subscribe to `filter` (a string or an array of them); `on_message(topic,
    /// payload, info)`, if a function, gets their messages.
    #[wasm_bindgen(method)]
    pub fn subscribe(
        this: &MqttClient,
        filter: &JsValue,
        options: &JsValue,
        on_message: &JsValue,
    ) -> Promise;

    /// Unsubscribe from `filter` (a string or an array of them).
    #[wasm_bindgen(method)]
    pub fn unsubscribe(this: &MqttClient, filter: &JsValue) -> Promise;

    /// Drop the connection without DISCONNECT and reconnect.
    #[wasm_bindgen(method)]
    pub fn reconnect(this: &MqttClient);

    /// Listen to a connection event; throws for an unknown event name.
    #[wasm_bindgen(method, catch)]
    pub fn on(this: &MqttClient, event: &str, listener: &Function) -> Result<JsValue, JsValue>;

    /// Close cleanly.
    #[wasm_bindgen(method)]
    pub fn end(this: &MqttClient) -> Promise;

    /// True while the connection is up.
    #[wasm_bindgen(method, getter)]
    pub fn connected(this: &MqttClient) -> bool;

    /// The MQTT client identifier (given or generated).
    #[wasm_bindgen(method, getter, js_name = clientId)]
    pub fn client_id(this: &MqttClient) -> String;

    #[wasm_bindgen(js_name = setCore)]
    fn set_core(make: &JsValue);
}

/// Hand the driver this crate's `MqttCore` class, for Rust code that runs
/// without the package's entry module (which does it with one line:
/// `setCore(MqttCore)`): the browser tests. wasm-bindgen offers no name for
/// an exported class on the Rust side, so it is read from an instance's
/// `constructor`.
pub fn install_core() {
    let sample = JsValue::from(MqttCore::new(
        String::new(),
        false,
        0,
        true,
        None,
        0,
        false,
        0,
        16,
        0,
        None,
        Vec::new(),
        0,
        0,
    ));
    if let Ok(class) = Reflect::get(&sample, &"constructor".into()) {
        set_core(&class);
    }
}
