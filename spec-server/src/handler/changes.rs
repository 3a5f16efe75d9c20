//! What the change feed ([`crate::feed`]) asks of the handler: the
//! notifications of one logged change, and the resumed subscriptions
//! waiting for their replay.

use std::num::NonZeroU64;
use std::sync::Arc;

use mqttspec_proto::response::notification;
use mqttspec_proto::topic::notify_topic;
use mqttspec_proto::Message;
use serde_json::Value;

use super::Handler;
use crate::clock::now_rfc3339;
use crate::db::Entity;
use crate::feed::Change;
use crate::subscriptions::{notification_for, project};

impl Handler {
    /// Publish the notifications of one logged change: to every live
    /// subscription on its entity, or (a resume's replay) to `only`.
    pub(crate) async fn deliver(&self, entity: &Entity, change: &Change, only: Option<&str>) {
        let ts = now_rfc3339();
        let operation = change.op.operation();
        let messages: Vec<(String, Message)> = self
            .subs()
            .on_entity(&entity.schema, &entity.name)
            .filter(|sub| match only {
                Some(id) => sub.id == id,
                None => sub.replay.is_none() && change.seq > sub.after,
            })
            .filter_map(|sub| {
                let row = notification_for(
                    &sub.filters,
                    operation?,
                    change.old.as_ref(),
                    change.new.as_ref(),
                )?;
                let data = Value::Object(project(row, &sub.options));
                let message = notification(
                    operation?,
                    &sub.id,
                    &entity.schema,
                    &entity.name,
                    data,
                    ts.clone(),
                    NonZeroU64::new(change.seq),
                );
                let topic = notify_topic(&self.config.prefix, &sub.client_id, &sub.id);
                Some((topic, message))
            })
            .collect();
        tracing::debug!(entity = %entity.full_name(), seq = change.seq, op = ?change.op, notifications = messages.len(), "change");
        for (topic, message) in messages {
            self.send(topic, &message, None).await;
        }
    }

    /// Subscriptions waiting for their replay: `(id, since)`.
    pub(crate) fn pending_replays(&self) -> Vec<(String, u64)> {
        self.subs().pending_replays()
    }

    /// The replay of subscription `id` is done: it is live from now on.
    pub(crate) fn replayed(&self, id: &str) {
        self.subs().replayed(id);
    }

    /// The entity of subscription `id`, if it still exists.
    pub(crate) fn entity_of(&self, id: &str) -> Option<Arc<Entity>> {
        let subs = self.subs();
        let sub = subs.get(id)?;
        self.registry.find(Some(&sub.schema), &sub.entity)
    }
}
