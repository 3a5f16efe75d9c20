//! Constructors of the messages a server sends: responses, errors, pongs
//! and notifications. The timestamp is passed in (RFC 3339) so this crate
//! stays clock-free.

use std::num::NonZeroU64;

use serde::{Deserialize, Serialize};
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

/// A change notification for one subscription; `seq` is the change's
/// position in the server's change log, if it keeps one.
pub fn notification(
    operation: Operation,
    subscription_id: &str,
    schema: &str,
    entity: &str,
    data: Value,
    timestamp: String,
    seq: Option<NonZeroU64>,
) -> Message {
    Message {
        kind: Some(MessageType::Notification),
        operation: Some(operation),
        subscription_id: Some(subscription_id.to_string()),
        schema: Some(schema.to_string()),
        entity: Some(entity.to_string()),
        data: Some(data),
        timestamp: Some(timestamp),
        seq,
        ..Message::default()
    }
}

/// Sent on a subscription's notify topic when the server instance holding
/// it stopped: the client subscribes again, with `options.since` to get
/// what it missed.
pub fn subscription_lost(subscription_id: &str, timestamp: String) -> Message {
    Message {
        kind: Some(MessageType::Error),
        subscription_id: Some(subscription_id.to_string()),
        success: Some(false),
        error: Some(ErrorBody {
            code: ErrorCode::SubscriptionLost.as_str().to_string(),
            message: "the server instance holding this subscription stopped: subscribe again with options.since set to the last seq applied".into(),
            details: None,
        }),
        timestamp: Some(timestamp),
        ..Message::default()
    }
}

/// How a subscribe with `since` was honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resume {
    /// Every change after `since` that concerns the subscription follows on
    /// its notify topic (each with its `seq`), then the live ones: keep the
    /// view and apply them.
    Replayed,
    /// The change log no longer reaches back to `since` (or never held it):
    /// the subscription is live from now on, but the client must read its
    /// view again.
    Reset,
}

/// `data` of a successful subscribe response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribeData {
    /// The server's id of the subscription (in `notify_topic` and on
    /// every notification).
    pub subscription_id: String,
    /// Schema of the entity.
    pub schema: String,
    /// Entity name.
    pub entity: String,
    /// `{prefix}/{client_id}/notify/{subscription_id}`.
    pub notify_topic: String,
    /// The newest change sequence when the subscription was made: the
    /// point to resume from if no notification comes before a reconnect.
    /// Absent from servers without a change log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Present when the subscribe carried `since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
}

/// The `entity` of a `meta` request that asks for every entity the caller
/// may use instead of one (an addition of this project; see
/// docs/MQTTSPEC_PROTOCOL.md, "Listing the entities"). `*` is not a table
/// name any schema uses, and a request carrying it is still valid where
/// `entity` is required, so an older server answers `model_not_found`.
pub const ALL_ENTITIES: &str = "*";

/// One column in `meta` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnMeta {
    /// Column name.
    pub name: String,
    /// The database's type name (`int8`, `numeric`, `TEXT`, `timestamptz`...).
    #[serde(rename = "type")]
    pub sql_type: String,
    /// NULL allowed.
    pub is_nullable: bool,
    /// Part of the primary key.
    pub is_primary: bool,
    /// Has a single-column unique index.
    pub is_unique: bool,
    /// First column of some index.
    pub has_index: bool,
}

/// `data` of a successful `meta` response for one entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableMeta {
    /// Schema of the entity.
    pub schema: String,
    /// Entity name.
    pub table: String,
    /// Its columns, in table order.
    pub columns: Vec<ColumnMeta>,
}

/// `data` of a successful `meta` response for [`ALL_ENTITIES`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EntityList {
    /// Every entity the caller may use, each described as a one-entity
    /// `meta` would, ordered by schema and name.
    pub entities: Vec<TableMeta>,
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
            None,
        );
        assert_eq!(
            serde_json::to_value(n).unwrap(),
            json!({"type": "notification", "operation": "delete", "subscription_id": "s1",
                   "schema": "public", "entity": "users", "data": {"id": 1}, "timestamp": ts})
        );
        assert_eq!(
            serde_json::to_value(pong(None, ts.clone())).unwrap()["type"],
            "pong"
        );
        let n = notification(
            Operation::Create,
            "s1",
            "public",
            "users",
            json!({"id": 1}),
            ts,
            NonZeroU64::new(42),
        );
        assert_eq!(serde_json::to_value(n).unwrap()["seq"], 42);
    }

    #[test]
    fn subscribe_data_omits_what_older_servers_lack() {
        let plain: SubscribeData = serde_json::from_value(json!({"subscription_id": "s",
            "schema": "public", "entity": "users", "notify_topic": "spec/c/notify/s"}))
        .unwrap();
        assert_eq!((plain.seq, plain.resume), (None, None));
        let resumed = SubscribeData {
            seq: Some(9),
            resume: Some(Resume::Reset),
            ..plain
        };
        let v = serde_json::to_value(&resumed).unwrap();
        assert_eq!(
            (v["seq"].as_u64(), v["resume"].as_str()),
            (Some(9), Some("reset"))
        );
    }

    #[test]
    fn entity_list_shape() {
        let list = EntityList {
            entities: vec![TableMeta {
                schema: "public".into(),
                table: "users".into(),
                columns: vec![ColumnMeta {
                    name: "id".into(),
                    sql_type: "int8".into(),
                    is_nullable: false,
                    is_primary: true,
                    is_unique: true,
                    has_index: true,
                }],
            }],
        };
        assert_eq!(
            serde_json::to_value(&list).unwrap(),
            json!({"entities": [{"schema": "public", "table": "users", "columns": [{"name": "id",
                "type": "int8", "is_nullable": false, "is_primary": true, "is_unique": true, "has_index": true}]}]})
        );
    }
}
