//! The change feed: every instance tails the database's change log
//! ([`crate::db::capture`]) and sends the notifications of each change to
//! the subscriptions it holds, in log order, each with the change's
//! sequence. Writes made by this server, by another instance or by any
//! other program reach subscribers the same way.
//!
//! One task per server runs [`run`]: woken by the database watcher (SQLite
//! `data_version`, PostgreSQL `LISTEN`), by this server's own writes, and
//! once a second in any case. Each round first replays the changes a
//! resumed subscription missed (up to the feed's position, so nothing is
//! sent twice or skipped), then reads the log past its position in batches.
//! It also prunes the log to the newest `retain` changes.

use std::sync::Arc;
use std::time::Duration;

use mqttspec_proto::{Operation, Row};
use serde_json::Value;
use tokio::sync::Notify;

use crate::db::capture;
use crate::handler::Handler;

/// What a log entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    /// A row was inserted.
    Create,
    /// A row was updated.
    Update,
    /// A row was deleted.
    Delete,
    /// Control: a client unsubscribed through some instance.
    Unsubscribe,
    /// Control: a client is active (keeps its subscriptions from expiring).
    Alive,
}

impl ChangeOp {
    /// Its name in the log's `op` column.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Create => "create",
            ChangeOp::Update => "update",
            ChangeOp::Delete => "delete",
            ChangeOp::Unsubscribe => "unsubscribe",
            ChangeOp::Alive => "alive",
        }
    }

    fn parse(op: &str) -> Option<ChangeOp> {
        [
            ChangeOp::Create,
            ChangeOp::Update,
            ChangeOp::Delete,
            ChangeOp::Unsubscribe,
            ChangeOp::Alive,
        ]
        .into_iter()
        .find(|o| o.as_str() == op)
    }

    /// The notification's operation (none for control entries).
    pub fn operation(self) -> Option<Operation> {
        match self {
            ChangeOp::Create => Some(Operation::Create),
            ChangeOp::Update => Some(Operation::Update),
            ChangeOp::Delete => Some(Operation::Delete),
            ChangeOp::Unsubscribe | ChangeOp::Alive => None,
        }
    }
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Position in the log.
    pub seq: u64,
    /// The table ([`capture::log_key`]); empty for control entries.
    pub table: String,
    /// What happened.
    pub op: ChangeOp,
    /// The row before (update, delete).
    pub old: Option<Row>,
    /// The row after (create, update); a control entry's payload.
    pub new: Option<Row>,
}

impl Change {
    /// A log row (`seq`, `tbl`, `op`, `old`, `new` as JSON text or objects); `None`
    /// when it is not one (it is then skipped, with a warning).
    pub fn from_row(row: &Row) -> Option<Change> {
        let json = |name: &str| -> Option<Row> {
            match row.get(name)? {
                Value::Object(o) => Some(o.clone()),
                Value::String(text) => match serde_json::from_str(text) {
                    Ok(Value::Object(o)) => Some(o),
                    _ => None,
                },
                _ => None,
            }
        };
        Some(Change {
            seq: row.get("seq")?.as_u64()?,
            table: row.get("tbl")?.as_str()?.to_string(),
            op: ChangeOp::parse(row.get("op")?.as_str()?)?,
            old: json("old"),
            new: json("new"),
        })
    }
}

/// How many log entries one read takes.
const BATCH: u64 = 1000;

/// Tail the log from `position` (the newest sequence at start) forever.
pub async fn run(handler: Arc<Handler>, wake: Arc<Notify>, mut position: u64, retain: u64) {
    let dialect = handler.db().dialect();
    // Other programs may have filled the log while no server ran: prune once
    // at start, then every BATCH (or `retain`) changes.
    let mut since_prune = u64::MAX;
    let mut first = true;
    loop {
        if !std::mem::take(&mut first) {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        for (id, since) in handler.pending_replays() {
            replay(&handler, &id, since, position).await;
        }
        loop {
            let (sql, params) = capture::fetch(dialect, position, BATCH);
            let rows = match handler.db().query(sql, params).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the change log; trying again");
                    break;
                }
            };
            let fetched = rows.len() as u64;
            for row in &rows {
                let Some(change) = Change::from_row(row) else {
                    tracing::warn!(?row, "change log entry not understood: skipped");
                    continue;
                };
                position = position.max(change.seq);
                since_prune = since_prune.saturating_add(1);
                apply(&handler, &change).await;
            }
            if fetched < BATCH {
                break;
            }
        }
        if since_prune >= BATCH.min(retain.max(1)) && position > retain {
            since_prune = 0;
            let (sql, params) = capture::prune(dialect, position - retain);
            if let Err(e) = handler.db().query(sql, params).await {
                tracing::warn!(error = %e, "cannot prune the change log");
            }
        }
    }
}

async fn apply(handler: &Handler, change: &Change) {
    if change.op.operation().is_none() {
        return handler.control(change);
    }
    let entity = handler
        .registry()
        .entities()
        .iter()
        .find(|e| capture::log_key(e) == change.table)
        .cloned();
    if let Some(entity) = entity {
        handler.deliver(&entity, change, None).await;
    }
}

/// Send subscription `id` the changes of its entity in `(since, upto]`,
/// then make it live.
async fn replay(handler: &Handler, id: &str, since: u64, upto: u64) {
    if let Some(entity) = handler.entity_of(id) {
        let dialect = handler.db().dialect();
        let (sql, params) = capture::fetch_range(dialect, &capture::log_key(&entity), since, upto);
        match handler.db().query(sql, params).await {
            Ok(rows) => {
                let changes: Vec<Change> = rows.iter().filter_map(Change::from_row).collect();
                tracing::debug!(
                    subscription_id = id,
                    since,
                    upto,
                    changes = changes.len(),
                    "replay"
                );
                for change in &changes {
                    handler.deliver(&entity, change, Some(id)).await;
                }
            }
            Err(e) => {
                // Left pending: the next round tries again.
                return tracing::warn!(subscription_id = id, error = %e, "cannot replay");
            }
        }
    }
    handler.replayed(id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn log_rows_parse() {
        let row = json!({"seq": 7, "tbl": "public_users", "op": "update",
            "old": "{\"id\":1,\"name\":\"a\"}", "new": "{\"id\":1,\"name\":\"b\"}"});
        let c = Change::from_row(row.as_object().unwrap()).unwrap();
        assert_eq!((c.seq, c.op), (7, ChangeOp::Update));
        assert_eq!(c.new.unwrap()["name"], "b");
        let control = json!({"seq": 8, "tbl": "", "op": "alive", "old": null,
            "new": "{\"client_id\":\"c\"}"});
        let c = Change::from_row(control.as_object().unwrap()).unwrap();
        assert_eq!((c.op.operation(), c.old), (None, None));
        let object = json!({"seq": 9, "tbl": "public.users", "op": "delete",
            "old": {"id": 1}, "new": null});
        let c = Change::from_row(object.as_object().unwrap()).unwrap();
        assert_eq!((c.old.unwrap()["id"].as_i64(), c.new), (Some(1), None));
        let bad = json!({"seq": 9, "tbl": "", "op": "drop table"});
        assert!(Change::from_row(bad.as_object().unwrap()).is_none());
    }
}
