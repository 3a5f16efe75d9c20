//! Constructors of the messages a server sends: responses, errors, pongs
//! and notifications. The timestamp is passed in (RFC 3339) so this crate
//! stays clock-free.

use serde_json::Value;

use crate::error::ErrorCode;
use crate::message::{ErrorBody, Message, MessageType, Operation};

/// A successful response to request `id`.
pub fn success(
    id: Option<String>,
    data: Value,
    metadata: Option<Value>,
    timestamp: String,
) -> Message {
    Message {
        id,
        kind: Some(MessageType::Response),
        success: Some(true),
        data: Some(data),
        metadata,
        timestamp: Some(timestamp),
        ..Message::default()
    }
}

/// A failed response to request `id`.
pub fn failure(
    id: Option<String>,
    code: ErrorCode,
    message: impl Into<String>,
    timestamp: String,
) -> Message {
    Message {
        id,
        kind: Some(MessageType::Response),
        success: Some(false),
        error: Some(ErrorBody {
            code: code.as_str().to_string(),
            message: message.into(),
            details: None,
        }),
        timestamp: Some(timestamp),
        ..Message::default()
    }
}

/// The answer to a `ping`.
pub fn pong(id: Option<String>, timestamp: String) -> Message {
    Message {
        id,
        kind: Some(MessageType::Pong),
        success: Some(true),
        timestamp: Some(timestamp),
        ..Message::default()
    }
}

/// A change notification for one subscription.
pub fn notification(
    operation: Operation,
    subscription_id: &str,
    schema: &str,
    entity: &str,
    data: Value,
    timestamp: String,
) -> Message {
    Message {
        kind: Some(MessageType::Notification),
        operation: Some(operation),
        subscription_id: Some(subscription_id.to_string()),
        schema: Some(schema.to_string()),
        entity: Some(entity.to_string()),
        data: Some(data),
        timestamp: Some(timestamp),
        ..Message::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_match_the_protocol_doc() {
        let ts = "2024-01-01T00:00:00Z".to_string();
        let ok = success(
            Some("m".into()),
            json!([1]),
            Some(json!({"total": 1, "count": 1})),
            ts.clone(),
        );
        assert_eq!(
            serde_json::to_value(ok).unwrap(),
            json!({"id": "m", "type": "response", "success": true, "data": [1],
                   "metadata": {"total": 1, "count": 1}, "timestamp": ts})
        );
        let err = failure(
            Some("m".into()),
            ErrorCode::ModelNotFound,
            "no entity x",
            ts.clone(),
        );
        assert_eq!(
            serde_json::to_value(err).unwrap(),
            json!({"id": "m", "type": "response", "success": false,
                   "error": {"code": "model_not_found", "message": "no entity x"}, "timestamp": ts})
        );
        let n = notification(
            Operation::Delete,
            "s1",
            "public",
            "users",
            json!({"id": 1}),
            ts.clone(),
        );
        assert_eq!(
            serde_json::to_value(n).unwrap(),
            json!({"type": "notification", "operation": "delete", "subscription_id": "s1",
                   "schema": "public", "entity": "users", "data": {"id": 1}, "timestamp": ts})
        );
        assert_eq!(
            serde_json::to_value(pong(None, ts)).unwrap()["type"],
            "pong"
        );
    }
}
