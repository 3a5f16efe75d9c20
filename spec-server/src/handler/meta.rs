//! The `meta` operation: one entity's columns, or (entity
//! [`ALL_ENTITIES`], `*`) the list of every entity the caller may use, so
//! that a generic client (the admin page in `web/`) can browse a database
//! it has never seen. The list holds what a `meta` of each entity would
//! answer this caller: entities outside the registry (models file) are not
//! there, nor those whose `BeforeHandle` hooks refuse the caller.

use std::sync::Arc;

use mqttspec_proto::response::{ColumnMeta, EntityList, TableMeta, ALL_ENTITIES};
use mqttspec_proto::{ErrorCode, Operation};
use serde_json::Value;

use super::{fail, Answer, Caller, Failure, Handler};
use crate::db::Entity;
use crate::hooks::HookPoint;

/// If this request asks for the list of entities: `Some(schema)`, the schema
/// to list (`None`: all). Entity `*` with the request's schema, or
/// `schema.*` without one.
pub(super) fn list_scope<'a>(
    operation: Operation,
    schema: Option<&'a str>,
    entity: &'a str,
) -> Option<Option<&'a str>> {
    if operation != Operation::Meta {
        return None;
    }
    let schema = schema.filter(|s| !s.is_empty());
    match entity.split_once('.') {
        Some((s, ALL_ENTITIES)) if schema.is_none() => Some(Some(s)),
        _ if entity == ALL_ENTITIES => Some(schema),
        _ => None,
    }
}

/// `meta` data of one entity: its columns.
pub(super) fn table_meta(entity: &Entity) -> TableMeta {
    TableMeta {
        schema: entity.schema.clone(),
        table: entity.name.clone(),
        columns: entity
            .columns
            .iter()
            .map(|c| ColumnMeta {
                name: c.name.clone(),
                sql_type: c.sql_type.clone(),
                is_nullable: c.nullable,
                is_primary: c.primary,
                is_unique: c.unique,
                has_index: c.indexed,
            })
            .collect(),
    }
}

/// `meta` data of one entity, as JSON.
pub(super) fn meta(entity: &Entity) -> Result<Value, Failure> {
    encode(&table_meta(entity))
}

fn encode<T: serde::Serialize>(data: &T) -> Result<Value, Failure> {
    serde_json::to_value(data).map_err(|e| fail(ErrorCode::MetaError, e.to_string()))
}

impl Handler {
    /// The entities `caller` may use, of `schema` if it is given: each served
    /// entity whose `BeforeHandle` hooks accept a `meta` of it. When the
    /// hooks refuse every one, the first refusal is the answer (a client
    /// without a valid token learns why, rather than seeing an empty list).
    pub(super) fn list_entities(
        &self,
        caller: &Caller,
        schema: Option<&str>,
    ) -> Result<Answer, Failure> {
        let mut refused = None;
        let mut entities = Vec::new();
        for entity in self.registry().entities() {
            if schema.is_some_and(|s| s != entity.schema) {
                continue;
            }
            let mut ctx = self.base_context(caller);
            ctx.operation = Some(Operation::Meta);
            ctx.entity = Some(Arc::clone(entity));
            match self.hooks.run(HookPoint::BeforeHandle, &mut ctx) {
                Ok(()) => entities.push(table_meta(entity)),
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
        if let (true, Some(refusal)) = (entities.is_empty(), refused) {
            return Err(refusal.into());
        }
        entities.sort_by(|a, b| (&a.schema, &a.table).cmp(&(&b.schema, &b.table)));
        Ok((encode(&EntityList { entities })?, None))
    }
}

#[cfg(test)]
mod tests {
    use mqttspec_proto::response::EntityList;
    use mqttspec_proto::{ErrorCode, Message};
    use serde_json::{json, Value};
    use tokio::sync::mpsc;

    use crate::handler::testing::handler;
    use crate::handler::{Caller, Handler};
    use crate::hooks::{on, HookError, HookPoint, Hooks};

    /// Send `request` as client `c1` and return the answer.
    async fn ask(
        h: &Handler,
        rx: &mut mpsc::Receiver<super::super::Outgoing>,
        request: Value,
    ) -> Message {
        let caller = Caller::anonymous("c1", 1);
        h.handle(&caller, request.to_string().as_bytes()).await;
        let out = rx.recv().await.expect("an answer");
        assert_eq!(out.topic, "spec/c1/response");
        serde_json::from_slice(&out.payload).expect("a message")
    }

    fn names(answer: &Message) -> Vec<String> {
        assert_eq!(answer.success, Some(true), "{answer:?}");
        let list: EntityList =
            serde_json::from_value(answer.data.clone().expect("data")).expect("an entity list");
        list.entities
            .iter()
            .map(|e| format!("{}.{}", e.schema, e.table))
            .collect()
    }

    fn list(schema: Option<&str>) -> Value {
        let mut m = json!({"id": "m1", "type": "request", "operation": "meta", "entity": "*"});
        if let Some(s) = schema {
            m["schema"] = json!(s);
        }
        m
    }

    #[tokio::test]
    async fn lists_every_entity_with_the_columns_a_single_meta_gives() {
        let (h, mut rx) = handler(None, Hooks::new()).await;
        let all = ask(&h, &mut rx, list(None)).await;
        assert_eq!(
            names(&all),
            ["audit.events", "public.sensor_readings", "public.users"]
        );
        let one = ask(
            &h,
            &mut rx,
            json!({"id": "m2", "type": "request", "operation": "meta", "entity": "users"}),
        )
        .await;
        let users = &all.data.as_ref().expect("data")["entities"][2];
        assert_eq!(
            Some(users),
            one.data.as_ref(),
            "same shape as one entity's meta"
        );
        assert_eq!(users["columns"][0]["name"], "id");
        assert_eq!(users["columns"][0]["is_primary"], true);
        assert_eq!(
            names(&ask(&h, &mut rx, list(Some("audit"))).await),
            ["audit.events"]
        );
        let dotted =
            json!({"id": "m3", "type": "request", "operation": "meta", "entity": "public.*"});
        assert_eq!(
            names(&ask(&h, &mut rx, dotted).await),
            ["public.sensor_readings", "public.users"]
        );
    }

    #[tokio::test]
    async fn the_models_file_limits_the_list() {
        let (h, mut rx) = handler(Some(&["public.users"]), Hooks::new()).await;
        assert_eq!(names(&ask(&h, &mut rx, list(None)).await), ["public.users"]);
    }

    #[tokio::test]
    async fn entities_the_hooks_refuse_are_left_out_and_all_refused_is_an_error() {
        let hooks = Hooks::new().with(on(HookPoint::BeforeHandle, |ctx| {
            match ctx.entity.as_ref().map(|e| e.name.as_str()) {
                Some("users") => Err(HookError::unauthorized("not for you")),
                _ => Ok(()),
            }
        }));
        let (h, mut rx) = handler(None, hooks).await;
        assert_eq!(
            names(&ask(&h, &mut rx, list(None)).await),
            ["audit.events", "public.sensor_readings"]
        );
        let none = Hooks::new().with(on(HookPoint::BeforeHandle, |_| {
            Err(HookError::unauthorized("no token"))
        }));
        let (h, mut rx) = handler(None, none).await;
        let refused = ask(&h, &mut rx, list(None)).await;
        assert_eq!(refused.success, Some(false));
        let error = refused.error.expect("error");
        assert_eq!(
            (error.code.as_str(), error.message.as_str()),
            (ErrorCode::Unauthorized.as_str(), "no token")
        );
    }

    #[tokio::test]
    async fn other_requests_are_answered_as_before() {
        let (h, mut rx) = handler(None, Hooks::new()).await;
        let unknown = ask(
            &h,
            &mut rx,
            json!({"id": "m3", "type": "request", "operation": "meta", "entity": "nope"}),
        )
        .await;
        assert_eq!(unknown.error.expect("error").code, "model_not_found");
        let read_all = ask(
            &h,
            &mut rx,
            json!({"id": "m4", "type": "request", "operation": "read", "entity": "*"}),
        )
        .await;
        assert_eq!(
            read_all.error.expect("error").code,
            "model_not_found",
            "only meta lists"
        );
        let no_entity = ask(
            &h,
            &mut rx,
            json!({"id": "m5", "type": "request", "operation": "meta"}),
        )
        .await;
        assert_eq!(no_entity.error.expect("error").code, "invalid_message");
    }
}
