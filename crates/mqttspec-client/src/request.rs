//! Building the request messages a client sends.

use mqttspec_proto::{Message, MessageType, Operation};
use serde_json::Value;

/// An entity as users name it: `"users"` or `"schema.entity"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityRef {
    /// Schema, if one was given (explicitly or in the dotted name).
    pub schema: Option<String>,
    /// Entity (table) name.
    pub entity: String,
}

impl EntityRef {
    /// Parse `"schema.entity"` or `"entity"`; an explicit `schema` wins over
    /// the dotted form's.
    pub fn parse(name: &str, schema: Option<&str>) -> EntityRef {
        let (dotted_schema, entity) = match name.split_once('.') {
            Some((s, e)) if !s.is_empty() && !e.is_empty() => (Some(s), e),
            _ => (None, name),
        };
        EntityRef {
            schema: schema.or(dotted_schema).map(str::to_string),
            entity: entity.to_string(),
        }
    }
}

/// A `request` message for `operation` on `entity`.
pub fn request(
    id: String,
    operation: Operation,
    entity: &EntityRef,
    record_id: Option<Value>,
    data: Option<Value>,
    options: Option<Value>,
) -> Message {
    Message {
        id: Some(id),
        kind: Some(MessageType::Request),
        operation: Some(operation),
        schema: entity.schema.clone(),
        entity: Some(entity.entity.clone()),
        record_id: record_id.map(record_id_text),
        data,
        options,
        ..Message::default()
    }
}

/// A `subscription`/`subscribe` message for `entity` with `options`
/// (typically `{"filters": [...]}`).
pub fn subscribe(id: String, entity: &EntityRef, options: Option<Value>) -> Message {
    Message {
        id: Some(id),
        kind: Some(MessageType::Subscription),
        operation: Some(Operation::Subscribe),
        schema: entity.schema.clone(),
        entity: Some(entity.entity.clone()),
        options,
        ..Message::default()
    }
}

/// A subscribe that resumes a live view after a reconnect: `options` plus
/// `"since": <the view's [`crate::LiveQuery::last_seq`]>`. The server sends
/// the changes after `since` before the live ones, or answers
/// `resume: "reset"` when its change log no longer reaches back (then read
/// the view again). Servers without a change log ignore `since`.
pub fn resume(id: String, entity: &EntityRef, options: Option<Value>, since: u64) -> Message {
    let mut options = match options {
        Some(Value::Object(o)) => o,
        _ => serde_json::Map::new(),
    };
    options.insert("since".into(), Value::from(since));
    subscribe(id, entity, Some(Value::Object(options)))
}

/// A `subscription`/`unsubscribe` message for server subscription `sub_id`.
pub fn unsubscribe(id: String, sub_id: &str) -> Message {
    Message {
        id: Some(id),
        kind: Some(MessageType::Subscription),
        operation: Some(Operation::Unsubscribe),
        subscription_id: Some(sub_id.to_string()),
        ..Message::default()
    }
}

/// The reference server reads `record_id` as a string: send numbers as
/// their decimal text, strings as they are.
fn record_id_text(id: Value) -> Value {
    match id {
        Value::Number(n) => Value::String(n.to_string()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entity_names() {
        assert_eq!(
            EntityRef::parse("public.users", None),
            EntityRef {
                schema: Some("public".into()),
                entity: "users".into()
            }
        );
        assert_eq!(EntityRef::parse("users", None).schema, None);
        assert_eq!(
            EntityRef::parse("a.users", Some("b")).schema.as_deref(),
            Some("b")
        );
        assert_eq!(EntityRef::parse(".users", None).entity, ".users");
    }

    #[test]
    fn builds_the_fixture_shapes() {
        let users = EntityRef::parse("public.users", None);
        let m = request(
            "msg-2".into(),
            Operation::Read,
            &users,
            None,
            None,
            Some(json!({"filters": [{"column": "status", "operator": "eq", "value": "active"}]})),
        );
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["type"], "request");
        assert_eq!(v["schema"], "public");
        assert_eq!(v["options"]["filters"][0]["column"], "status");
        let upd = request(
            "u".into(),
            Operation::Update,
            &users,
            Some(json!(7)),
            Some(json!({"status": "x"})),
            None,
        );
        assert_eq!(serde_json::to_value(&upd).unwrap()["record_id"], "7");
        let unsub = serde_json::to_value(unsubscribe("m".into(), "sub-1")).unwrap();
        assert_eq!(
            unsub,
            json!({"id": "m", "type": "subscription", "operation": "unsubscribe", "subscription_id": "sub-1"})
        );
        let sub = serde_json::to_value(subscribe("m6".into(), &users, None)).unwrap();
        assert_eq!(sub["operation"], "subscribe");
        assert_eq!(sub["entity"], "users");
        assert!(sub.get("options").is_none(), "no since unless resuming");
        let filters = json!({"filters": [{"column": "status", "operator": "eq", "value": "a"}]});
        let again = serde_json::to_value(resume("m7".into(), &users, Some(filters), 41)).unwrap();
        assert_eq!(again["options"]["filters"][0]["column"], "status");
        assert_eq!(
            (
                again["operation"].as_str(),
                again["options"]["since"].as_u64()
            ),
            (Some("subscribe"), Some(41))
        );
    }
}
