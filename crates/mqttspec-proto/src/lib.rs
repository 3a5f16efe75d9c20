//! The MQTTSpec wire format (see `docs/MQTTSPEC_PROTOCOL.md`), shared by
//! `mqttspec-server` and the `mqttspec-wasm` browser client.
//!
//! Messages are JSON objects carried one per MQTT payload; topics follow
//! `{prefix}/{client_id}/{request|response|notify/{subscription_id}}`.

pub mod message;
pub mod topic;

pub use message::{ErrorBody, Message, MessageType, Operation};
