//! The one JSON message shape used for requests, responses, notifications
//! and subscription control.

use std::num::NonZeroU64;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `type` of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    Request,
    Response,
    Notification,
    Subscription,
    Error,
    Ping,
    Pong,
}

/// `operation` of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Read,
    Create,
    Update,
    Delete,
    Meta,
    Subscribe,
    Unsubscribe,
}

/// `error` of a failed response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// One MQTTSpec message. Absent fields stay absent on the wire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<MessageType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// On a notification: the change's position in the server's change log
    /// (from 1, increasing; the same change has the same `seq` for every
    /// subscriber). Absent from servers without a change log. (A resume
    /// sends its last `seq` as `options.since`: [`crate::Options::since`].)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<NonZeroU64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_requests_parse_and_roundtrip() {
        let fixtures: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/mqttspec_examples.json"
        ))
        .unwrap();
        for raw in fixtures["requests"].as_array().unwrap() {
            let m: Message = serde_json::from_value(raw.clone()).unwrap();
            assert!(
                m.id.is_some() && m.kind.is_some() && m.operation.is_some(),
                "{raw}"
            );
            assert_eq!(serde_json::to_value(&m).unwrap(), *raw);
        }
    }
}
