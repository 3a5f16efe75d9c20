//! `mqttspec-wasm`: the browser client. wasm-bindgen glue over the sans-IO
//! cores in `crates/`.
//!
//! - [`mqtt`]: MQTT 3.1.1/5 over WebSocket: `MqttCore`, the session under
//!   the JS driver `js/mqtt-client.js` (`MqttClient` in JS).
//! - [`spec`]: MQTTSpec queries, subscriptions and live queries (`SpecClient` in JS).
//! - `alloc`: the wasm build's allocator (smaller than dlmalloc).

#[cfg(target_arch = "wasm32")]
mod alloc;
pub mod mqtt;
#[cfg(feature = "spec")]
mod reply;
#[cfg(feature = "spec")]
pub mod spec;

/// Power-of-two size classes instead of dlmalloc: see `alloc`.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOC: alloc::Classes = alloc::Classes::new();

/// Panic messages in the browser console: feature `panic-hook`, on by
/// default, off in the MQTT-only entry point (built without default features).
#[cfg(feature = "panic-hook")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}
