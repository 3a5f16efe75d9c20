//! The MQTTSpec client (`SpecClient` in JS): database reads and writes,
//! subscriptions and live queries over the JS driver's MQTT client ([`mqtt`]).
//!
//! The protocol logic (request ids and timeouts, the subscription registry,
//! live query result sets, filter evaluation) is IO-free in
//! `crates/mqttspec-client` and `crates/mqttspec-proto`; this module is the
//! browser driver: MQTT topics, JSON to and from JS, timers and promises.

mod client;
mod js;
mod json;
pub mod mqtt;

pub use js::{LiveQueryHandle, SpecClient, SubscriptionHandle};
