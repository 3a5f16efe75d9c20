//! How one instance works with the others of its `--share-group`: writes
//! claimed in the answers every instance sees (a resend reaching another
//! instance is not run twice), clients' activity and unsubscribes told
//! through the change log, and the subscriptions of a dead instance handed
//! back to their clients (`subscription_lost`).

use std::sync::Arc;
use std::time::Instant;

use mqttspec_proto::response::subscription_lost;
use mqttspec_proto::topic::{notify_topic, response_topic};
use mqttspec_proto::{ErrorCode, Operation};
use serde_json::{json, Value};

use super::{fail, Caller, Handler};
use crate::clock::now_rfc3339;
use crate::db::capture;
use crate::feed::{Change, ChangeOp};

/// How an instance works with the others of its group.
#[derive(Debug, Clone)]
pub struct SharedMode {
    /// This instance's name (its broker client id): owner of the
    /// subscriptions it holds, and the name its will carries.
    pub instance: String,
    /// A client's activity is told to the other instances (through the
    /// change log, for their idle expiry) at most this often.
    pub alive_every: std::time::Duration,
}

impl Handler {
    /// Shared mode: claim a write in the answers every instance sees, so a
    /// resend that reaches another instance is not run twice.
    pub(super) async fn claim(&self, client_id: &str, id: &str) -> Claim {
        let dialect = self.db.dialect();
        let now = crate::clock::unix_millis();
        if self
            .claims
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % 1000
            == 999
        {
            let before = now.saturating_sub(ANSWERS_KEPT_MS);
            if let Err(f) = self
                .query(
                    capture::prune_answers(dialect, before),
                    ErrorCode::CreateError,
                )
                .await
            {
                tracing::warn!(error = %f.message, "cannot prune the shared answers");
            }
        }
        let claim = capture::claim(dialect, client_id, id, now, CLAIM_STALE_MS);
        match self.query(claim, ErrorCode::CreateError).await {
            Ok(rows) if !rows.is_empty() => return Claim::Mine,
            Ok(_) => {}
            Err(f) => return Claim::Unavailable(f.message),
        }
        match self
            .query_one(
                capture::answer(dialect, client_id, id),
                ErrorCode::CreateError,
            )
            .await
        {
            Ok(Some(row)) => match row.get("answer").and_then(Value::as_str) {
                Some(answer) => Claim::Answered(answer.as_bytes().into()),
                None => Claim::Running,
            },
            // Settled as failed and dropped in between: run it.
            Ok(None) => Claim::Mine,
            Err(f) => Claim::Unavailable(f.message),
        }
    }

    /// Answer a write this instance does not run: another instance's
    /// answer again, `too_many_requests` while it still runs there, or the
    /// operation's error when the shared answers cannot be reached.
    pub(super) async fn answer_from_elsewhere(
        &self,
        caller: &Caller,
        id: &str,
        operation: Option<Operation>,
        claim: Claim,
    ) {
        let client_id = caller.client_id.as_str();
        match claim {
            Claim::Mine => {}
            Claim::Unavailable(reason) => {
                let code = match operation {
                    Some(Operation::Create) => ErrorCode::CreateError,
                    Some(Operation::Update) => ErrorCode::UpdateError,
                    Some(Operation::Delete) => ErrorCode::DeleteError,
                    _ => ErrorCode::InvalidSubscription,
                };
                let reason = format!("cannot record the request in the answers the instances share ({reason}); it did not run: send it again");
                tracing::warn!(client_id, id, %reason, "shared answers unavailable");
                let f = fail(code, reason);
                self.respond_failure(caller, Some(id.to_string()), f).await;
            }
            Claim::Answered(first) => {
                tracing::debug!(
                    client_id,
                    id,
                    "duplicate request: another instance's answer sent again"
                );
                let topic = response_topic(&self.config.prefix, client_id);
                self.publish(topic, first, Some(caller.request_qos)).await;
            }
            Claim::Running => {
                let reason = format!("request {id:?} is running on another instance: send it again with the same id for its answer");
                let f = fail(ErrorCode::TooManyRequests, reason);
                self.respond_failure(caller, Some(id.to_string()), f).await;
            }
        }
    }

    /// Keep the answer of a claimed write (`None`: it failed; drop the claim).
    pub(super) async fn settle(&self, client_id: &str, id: &str, answer: Option<&str>) {
        let stmt = capture::settle(self.db.dialect(), client_id, id, answer);
        if let Err(f) = self.query(stmt, ErrorCode::CreateError).await {
            tracing::warn!(client_id, error = %f.message, "cannot keep an answer in the shared answers");
        }
    }

    /// Shared mode: tell the other instances that `client_id` is active (at
    /// most every `alive_every`), so none expires its subscriptions.
    pub(super) async fn tell_alive(&self, client_id: &str) {
        let Some(every) = self.config.shared.as_ref().map(|s| s.alive_every) else {
            return;
        };
        let now = Instant::now();
        {
            let mut told = self.alive_told.lock().unwrap_or_else(|p| p.into_inner());
            match told.get(client_id) {
                Some(at) if now.duration_since(*at) < every => return,
                _ => told.insert(client_id.to_string(), now),
            };
        }
        self.log_control(ChangeOp::Alive, client_id, None).await;
    }

    /// Write a control entry for every instance's feed.
    pub(super) async fn log_control(
        &self,
        op: ChangeOp,
        client_id: &str,
        subscription_id: Option<&str>,
    ) {
        let payload = json!({"client_id": client_id, "subscription_id": subscription_id});
        let stmt = capture::control(self.db.dialect(), op.as_str(), &payload.to_string());
        match self.query(stmt, ErrorCode::InvalidSubscription).await {
            Ok(_) => self.feed_wake.notify_one(),
            Err(f) => {
                tracing::warn!(client_id, error = %f.message, "cannot write to the change log")
            }
        }
    }

    /// A control entry from the log (any instance wrote it).
    pub(crate) fn control(&self, change: &Change) {
        let payload = change.new.as_ref();
        let field = |name: &str| payload.and_then(|p| p.get(name)).and_then(Value::as_str);
        let Some(client_id) = field("client_id") else {
            return;
        };
        match (change.op, field("subscription_id")) {
            (ChangeOp::Alive, _) => self.subs().refresh(client_id),
            (ChangeOp::Unsubscribe, Some(id)) if self.subs().remove(client_id, id).is_some() => {
                tracing::debug!(
                    client_id,
                    subscription_id = id,
                    "unsubscribed through another instance"
                );
            }
            _ => {}
        }
    }

    /// Instance `owner` died (its will arrived), or this instance starts
    /// again under the name of an earlier one: tell each client whose
    /// subscription it held (`subscription_lost` on the notify topic), so
    /// the client subscribes again with `since` and misses nothing.
    pub async fn instance_gone(&self, owner: &str) {
        let stmt = capture::subscriptions_of(self.db.dialect(), owner);
        let rows = match self.query(stmt, ErrorCode::InvalidSubscription).await {
            Ok(rows) => rows,
            Err(f) => {
                return tracing::warn!(owner, error = %f.message, "cannot read the subscriptions of a stopped instance")
            }
        };
        tracing::info!(
            owner,
            subscriptions = rows.len(),
            "instance gone: telling its subscribers"
        );
        for row in rows {
            let field = |name: &str| row.get(name).and_then(Value::as_str);
            if let (Some(id), Some(client_id)) = (field("id"), field("client_id")) {
                let topic = notify_topic(&self.config.prefix, client_id, id);
                self.send(topic, &subscription_lost(id, now_rfc3339()), None)
                    .await;
            }
        }
    }
}

/// What the shared answers say about a write.
pub(super) enum Claim {
    /// This instance runs it.
    Mine,
    /// Another instance answered it: this is the answer.
    Answered(Arc<[u8]>),
    /// Another instance is running it.
    Running,
    /// The shared answers could not be read or written (the database is
    /// down): the write is not run, so that it cannot run twice.
    Unavailable(String),
}

/// How long shared answers are kept (as the local window: 10 minutes).
const ANSWERS_KEPT_MS: u64 = 600_000;

/// A claim without an answer this old is taken over: its instance died
/// (a write it committed before dying then runs again; see SPEC_SERVER.md).
const CLAIM_STALE_MS: u64 = 30_000;
