//! `mqttspec-server` as a library: answers MQTTSpec requests.

use mqttspec_proto::{ErrorBody, Message, MessageType};

/// The answer to a `ping` message.
pub fn pong(request: &Message) -> Message {
    Message {
        id: request.id.clone(),
        kind: Some(MessageType::Pong),
        success: Some(true),
        ..Message::default()
    }
}

/// A failed response to a payload that is not a valid message.
pub fn invalid_message(reason: &str) -> Message {
    Message {
        kind: Some(MessageType::Response),
        success: Some(false),
        error: Some(ErrorBody {
            code: "invalid_message".into(),
            message: reason.into(),
            details: None,
        }),
        ..Message::default()
    }
}
