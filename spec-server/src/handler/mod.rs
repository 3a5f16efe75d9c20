//! The request handler: one MQTT payload from a client in, responses and
//! notifications out (as [`Outgoing`] publishes on the bounded outbox).
//! Never panics on input; every failure with a request id gets an error
//! response. Writes run once per `(client id, request id)`: a duplicate
//! delivery gets the first answer again ([`crate::dedup`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mqttspec_proto::filter::between_bounds;
use mqttspec_proto::response::{failure, pong, success, Resume, SubscribeData};
use mqttspec_proto::topic::{notify_topic, response_topic};
use mqttspec_proto::{
    require_filter, ErrorCode, Filter, FilterOp, Message, MessageType, Operation, Options, Row,
};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};

use crate::clock::now_rfc3339;
use crate::db::capture;
use crate::db::sql::{SqlBuilder, Statement};
use crate::db::{Database, Entity};
use crate::dedup::{Dedup, Limits};
use crate::feed::ChangeOp;
use crate::hooks::{HookContext, HookError, HookPoint, Hooks};
use crate::registry::Registry;
use crate::subscriptions::{Subscription, Subscriptions};

mod changes;
mod instances;
mod meta;
#[cfg(test)]
pub(crate) mod testing;

use instances::Claim;
pub use instances::SharedMode;

/// A publish the server wants to make.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Arc<[u8]>,
    /// Highest QoS for it: an answer travels at most at its request's QoS,
    /// so a QoS 0 burst is answered at QoS 0 (no acknowledgement window
    /// to wait for); `None` for notifications (the server's `--qos`).
    pub max_qos: Option<u8>,
}

impl Outgoing {
    /// The QoS to publish it at when the server's is `server_qos`.
    pub fn qos(&self, server_qos: u8) -> u8 {
        self.max_qos.map_or(server_qos, |max| server_qos.min(max))
    }
}

/// Who sent a request, as the broker session tells (never the topic alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// MQTT client id of the publishing connection.
    pub client_id: String,
    /// MQTT username of that connection (embedded broker; `None` for
    /// anonymous clients and behind an external broker).
    pub username: Option<String>,
    /// QoS the request arrived at; its answer travels at most at it.
    pub request_qos: u8,
}

impl Caller {
    /// A caller known by client id only (external broker).
    pub fn anonymous(client_id: impl Into<String>, request_qos: u8) -> Self {
        Caller {
            client_id: client_id.into(),
            username: None,
            request_qos,
        }
    }
}

/// A failed request: code and message for the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Error code.
    pub code: ErrorCode,
    /// Human-readable reason.
    pub message: String,
}

fn fail(code: ErrorCode, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

impl Failure {
    /// The failed response to request `id`.
    fn into_response(self, id: Option<String>) -> Message {
        failure(id, self.code, self.message, now_rfc3339())
    }
}

impl From<HookError> for Failure {
    fn from(e: HookError) -> Self {
        fail(e.code, e.message)
    }
}

/// Settings of the handler.
#[derive(Debug, Clone)]
pub struct HandlerConfig {
    /// Topic prefix (`spec`).
    pub prefix: String,
    /// Largest payload answered; larger ones get `invalid_message`.
    pub max_payload: usize,
    /// Most rows one read returns (`None`: no cap). A larger or missing
    /// `limit` is lowered to it; `metadata.total` still counts every match.
    pub max_rows: Option<u64>,
    /// Several instances share the requests (`$share/...`); `None`: this
    /// instance is alone.
    pub shared: Option<SharedMode>,
}

/// Answers requests of all clients.
pub struct Handler {
    db: Arc<dyn Database>,
    registry: Registry,
    hooks: Hooks,
    config: HandlerConfig,
    subs: Mutex<Subscriptions>,
    /// Serialises writes with their notifications, so notifications leave
    /// in commit order.
    write_lock: tokio::sync::Mutex<()>,
    /// Answers of recent writes, for duplicates.
    dedup: Mutex<Dedup>,
    out: mpsc::Sender<Outgoing>,
    /// Wakes the change feed ([`crate::feed`]) after this server's writes.
    feed_wake: Arc<Notify>,
    /// When each client's activity was last told to the other instances.
    alive_told: Mutex<HashMap<String, Instant>>,
    /// Claims made in the shared answers (prunes them every 1,000).
    claims: std::sync::atomic::AtomicU64,
}

/// Data of a successful operation: response data and metadata.
type Answer = (Value, Option<Value>);

impl Handler {
    /// A handler publishing through `out`.
    pub fn new(
        db: Arc<dyn Database>,
        registry: Registry,
        hooks: Hooks,
        config: HandlerConfig,
        out: mpsc::Sender<Outgoing>,
    ) -> Self {
        Handler {
            db,
            registry,
            hooks,
            config,
            subs: Mutex::new(Subscriptions::default()),
            write_lock: tokio::sync::Mutex::new(()),
            dedup: Mutex::new(Dedup::new(Limits::default())),
            out,
            feed_wake: Arc::new(Notify::new()),
            alive_told: Mutex::new(HashMap::new()),
            claims: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// What wakes the change feed (the database watcher holds it weakly).
    pub fn feed_wake(&self) -> &Arc<Notify> {
        &self.feed_wake
    }

    /// The database.
    pub(crate) fn db(&self) -> &dyn Database {
        self.db.as_ref()
    }

    /// The served entities.
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    fn subs(&self) -> std::sync::MutexGuard<'_, Subscriptions> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn publish(&self, topic: String, payload: Arc<[u8]>, max_qos: Option<u8>) {
        let out = Outgoing {
            topic,
            payload,
            max_qos,
        };
        if self.out.send(out).await.is_err() {
            tracing::error!("the broker transport is gone: answer not sent");
        }
    }

    async fn send(&self, topic: String, message: &Message, max_qos: Option<u8>) {
        match serde_json::to_vec(message) {
            Ok(payload) => self.publish(topic, payload.into(), max_qos).await,
            Err(e) => tracing::error!(error = %e, "cannot encode a message"),
        }
    }

    async fn respond_failure(&self, caller: &Caller, id: Option<String>, f: Failure) {
        let client_id = caller.client_id.as_str();
        tracing::debug!(client_id, code = %f.code, message = %f.message, "request failed");
        let message = f.into_response(id);
        let topic = response_topic(&self.config.prefix, client_id);
        self.send(topic, &message, Some(caller.request_qos)).await;
    }

    /// Answer `payload` of `client_id` with a failure without running it
    /// (e.g. `too_many_requests`); the request id is read if it can be.
    pub async fn refuse(&self, caller: &Caller, payload: &[u8], code: ErrorCode, reason: &str) {
        #[derive(serde::Deserialize)]
        struct IdOnly {
            id: Option<String>,
        }
        let id = serde_json::from_slice::<IdOnly>(payload)
            .ok()
            .and_then(|m| m.id);
        self.respond_failure(caller, id, fail(code, reason)).await;
    }

    /// A connection of `client_id` with `username` is being accepted; runs
    /// the connect hooks and returns the verified claims (JWT). `Err`
    /// refuses the connection.
    pub fn client_connecting(
        &self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Result<serde_json::Map<String, Value>, HookError> {
        let mut ctx = HookContext {
            client_id: client_id.to_string(),
            username: username.map(str::to_string),
            password: password.map(str::to_string),
            ..HookContext::default()
        };
        self.hooks.run(HookPoint::BeforeConnect, &mut ctx)?;
        ctx.password = None;
        self.hooks.run(HookPoint::AfterConnect, &mut ctx)?;
        // Seen: its first request must not run the connect hooks again.
        self.subs().touch(client_id);
        Ok(ctx.claims)
    }

    /// A client went away (broker event or expiry): drop its subscriptions.
    /// Clients the server never heard of are ignored.
    pub fn client_gone(&self, client_id: &str) {
        if !self.knows_client(client_id) {
            return;
        }
        let mut ctx = HookContext {
            client_id: client_id.to_string(),
            ..HookContext::default()
        };
        if let Err(e) = self.hooks.run(HookPoint::BeforeDisconnect, &mut ctx) {
            tracing::warn!(client_id, error = %e, "BeforeDisconnect hook failed; dropping the client anyway");
        }
        let dropped = self.subs().remove_client(client_id);
        if let (Some(_), Ok(runtime)) = (&self.config.shared, tokio::runtime::Handle::try_current())
        {
            let db = Arc::clone(&self.db);
            let stmt = capture::subscriptions_dropped(db.dialect(), client_id, None);
            runtime.spawn(async move {
                if let Err(e) = db.query(stmt.0, stmt.1).await {
                    tracing::warn!(error = %e, "cannot forget the shared subscriptions of a client");
                }
            });
        }
        self.alive_told
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(client_id);
        tracing::info!(client_id, subscriptions = dropped.len(), "client gone");
        if let Err(e) = self.hooks.run(HookPoint::AfterDisconnect, &mut ctx) {
            tracing::warn!(client_id, error = %e, "AfterDisconnect hook failed");
        }
    }

    /// Clients not heard of for `ttl` (external mode's substitute for
    /// disconnect events).
    pub fn expired_clients(&self, ttl: std::time::Duration) -> Vec<String> {
        self.subs().expired_clients(ttl)
    }

    /// The server keeps state of `client_id` (seen, and not dropped since).
    pub fn knows_client(&self, client_id: &str) -> bool {
        self.subs().knows(client_id)
    }

    /// Number of live subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.subs().len()
    }

    fn base_context(&self, caller: &Caller) -> HookContext {
        HookContext {
            client_id: caller.client_id.clone(),
            username: caller.username.clone(),
            ..HookContext::default()
        }
    }

    fn dedup(&self) -> std::sync::MutexGuard<'_, Dedup> {
        self.dedup.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Handle one payload `caller` published on its request topic.
    pub async fn handle(&self, caller: &Caller, payload: &[u8]) {
        let client_id = caller.client_id.as_str();
        let topic = response_topic(&self.config.prefix, client_id);
        let (id, answer, keep) = match self.parse(payload) {
            Err((id, f)) => return self.respond_failure(caller, id, f).await,
            Ok(message) => {
                if let Some(first) = message
                    .id
                    .as_deref()
                    .and_then(|id| self.dedup().answered(client_id, id, Instant::now()))
                {
                    tracing::debug!(client_id, id = ?message.id, "duplicate request: first answer sent again");
                    return self.publish(topic, first, Some(caller.request_qos)).await;
                }
                let keep = is_write(&message);
                let id = message.id.clone();
                let shared = match id
                    .as_deref()
                    .filter(|_| keep && self.config.shared.is_some())
                {
                    Some(id) => match self.claim(client_id, id).await {
                        Claim::Mine => true,
                        elsewhere => {
                            let op = message.operation;
                            return self.answer_from_elsewhere(caller, id, op, elsewhere).await;
                        }
                    },
                    None => false,
                };
                let answer = self.answer(caller, message).await;
                if keep {
                    // Its change (if any) is in the log: deliver it now.
                    self.feed_wake.notify_one();
                }
                let payload = match serde_json::to_string(&answer) {
                    Ok(p) => p,
                    Err(e) => return tracing::error!(error = %e, "cannot encode a message"),
                };
                if let (true, Some(id)) = (shared, id.as_deref()) {
                    let kept = (answer.success == Some(true)).then_some(payload.as_str());
                    self.settle(client_id, id, kept).await;
                }
                (id, payload, keep && answer.success == Some(true))
            }
        };
        let payload: Arc<[u8]> = answer.into_bytes().into();
        if let (Some(id), true) = (id, keep) {
            self.dedup()
                .record(client_id, &id, Arc::clone(&payload), Instant::now());
        }
        self.publish(topic, payload, Some(caller.request_qos)).await;
        // A resumed subscription's replay follows its answer, so the client
        // knows the subscription id of every notification it gets.
        if self.subs().answered(client_id) {
            self.feed_wake.notify_one();
        }
    }

    /// The message in `payload`, or why it cannot be read (with its id if
    /// that could be read).
    fn parse(&self, payload: &[u8]) -> Result<Message, (Option<String>, Failure)> {
        if payload.len() > self.config.max_payload {
            let reason = format!(
                "payload of {} bytes exceeds the limit of {} bytes: send smaller requests",
                payload.len(),
                self.config.max_payload
            );
            return Err((None, fail(ErrorCode::InvalidMessage, reason)));
        }
        let value: Value = serde_json::from_slice(payload).map_err(|e| {
            let reason = format!("payload is not JSON ({e}): send one JSON object per message");
            (None, fail(ErrorCode::InvalidMessage, reason))
        })?;
        let id = value.get("id").and_then(Value::as_str).map(str::to_string);
        serde_json::from_value(value).map_err(|e| {
            let reason = format!("message fields have wrong types or values: {e}");
            (id, fail(ErrorCode::InvalidMessage, reason))
        })
    }

    /// The response to one parsed message.
    async fn answer(&self, caller: &Caller, message: Message) -> Message {
        let client_id = caller.client_id.as_str();
        let failed = |id, f: Failure| f.into_response(id);
        self.tell_alive(client_id).await;
        if self.subs().touch(client_id) {
            let mut ctx = self.base_context(caller);
            let first = self
                .hooks
                .run(HookPoint::BeforeConnect, &mut ctx)
                .and_then(|()| self.hooks.run(HookPoint::AfterConnect, &mut ctx));
            if let Err(e) = first {
                self.subs().remove_client(client_id);
                return failed(message.id, e.into());
            }
        }
        match message.kind {
            Some(MessageType::Ping) => pong(message.id, now_rfc3339()),
            Some(MessageType::Request | MessageType::Subscription) => {
                let id = message.id.clone();
                match self.dispatch(caller, message).await {
                    Ok((data, metadata)) => success(id, data, metadata, now_rfc3339()),
                    Err(f) => failed(id, f),
                }
            }
            None => failed(message.id, fail(ErrorCode::InvalidMessage, "message has no \"type\"")),
            Some(other) => failed(
                message.id,
                fail(
                    ErrorCode::InvalidMessageType,
                    format!("type {other:?} cannot be sent to the server: use request, subscription or ping"),
                ),
            ),
        }
    }

    async fn dispatch(&self, caller: &Caller, message: Message) -> Result<Answer, Failure> {
        let client_id = caller.client_id.as_str();
        if message.id.as_deref().is_none_or(str::is_empty) {
            return Err(fail(
                ErrorCode::InvalidMessage,
                "message has no \"id\": every request needs one",
            ));
        }
        let is_subscription = message.kind == Some(MessageType::Subscription);
        let operation = match (message.operation, is_subscription) {
            (None, _) => return Err(fail(ErrorCode::InvalidMessage, "message has no \"operation\"")),
            (Some(op @ (Operation::Subscribe | Operation::Unsubscribe)), true) => op,
            (Some(op), true) => {
                return Err(fail(
                    ErrorCode::InvalidSubscriptionOperation,
                    format!("operation {op:?} is not a subscription operation: use subscribe or unsubscribe"),
                ))
            }
            (Some(op @ (Operation::Subscribe | Operation::Unsubscribe)), false) => {
                return Err(fail(
                    ErrorCode::InvalidOperation,
                    format!("operation {op:?} needs \"type\": \"subscription\""),
                ))
            }
            (Some(op), false) => op,
        };
        if operation == Operation::Unsubscribe {
            return self.unsubscribe(caller, &message).await;
        }
        let entity_name = message.entity.as_deref().unwrap_or("");
        if entity_name.is_empty() {
            return Err(fail(ErrorCode::InvalidMessage, "message has no \"entity\""));
        }
        let schema = message.schema.as_deref();
        if let Some(scope) = meta::list_scope(operation, schema, entity_name) {
            return self.list_entities(caller, scope);
        }
        let entity = self.registry.find(schema, entity_name).ok_or_else(|| {
            fail(
                ErrorCode::ModelNotFound,
                format!(
                    "no entity {:?} in schema {:?}: send \"meta\" with entity \"*\" to list the entities, or check the name",
                    entity_name,
                    schema.unwrap_or("")
                ),
            )
        })?;
        let options = Options::from_value(message.options.as_ref()).map_err(|e| {
            fail(
                ErrorCode::InvalidOptions,
                format!("options are malformed: {e}"),
            )
        })?;
        check_options(&entity, &options)?;
        let mut ctx = self.base_context(caller);
        ctx.operation = Some(operation);
        ctx.entity = Some(Arc::clone(&entity));
        ctx.options = options;
        ctx.data = message.data.clone();
        ctx.record_id = record_id(&message, &entity);
        self.hooks.run(HookPoint::BeforeHandle, &mut ctx)?;
        let Some((before, after)) = HookPoint::around(operation) else {
            return Ok((meta::meta(&entity)?, None));
        };
        self.hooks.run(before, &mut ctx)?;
        check_options(&entity, &ctx.options)?;
        let result = match operation {
            Operation::Read => self.read(&entity, &ctx).await?,
            Operation::Create => self.create(&entity, &ctx).await?,
            Operation::Update => self.update(&entity, &ctx).await?,
            Operation::Delete => self.delete(&entity, &ctx).await?,
            _ => self.subscribe(client_id, &entity, &ctx).await?,
        };
        ctx.result = Some(result.0);
        if let Err(refused) = self.hooks.run(after, &mut ctx) {
            // A subscription the client is told failed must not deliver.
            if operation == Operation::Subscribe {
                let id = ctx
                    .result
                    .as_ref()
                    .and_then(|r| r["subscription_id"].as_str());
                if let Some(id) = id {
                    self.subs().remove(client_id, id);
                    if self.config.shared.is_some() {
                        let stmt =
                            capture::subscriptions_dropped(self.db.dialect(), client_id, Some(id));
                        let _ = self.query(stmt, ErrorCode::InvalidSubscription).await;
                    }
                }
            }
            return Err(refused.into());
        }
        Ok((ctx.result.take().unwrap_or(Value::Null), result.1))
    }

    async fn query(&self, statement: Statement, code: ErrorCode) -> Result<Vec<Row>, Failure> {
        let (sql, params) = statement;
        tracing::trace!(%sql, "query");
        self.db
            .query(sql, params)
            .await
            .map_err(|e| fail(code, format!("database refused the operation: {e}")))
    }

    async fn query_one(
        &self,
        statement: Statement,
        code: ErrorCode,
    ) -> Result<Option<Row>, Failure> {
        Ok(self.query(statement, code).await?.into_iter().next())
    }

    fn builder<'a>(&self, entity: &'a Entity) -> SqlBuilder<'a> {
        SqlBuilder::new(self.db.dialect(), entity)
    }

    async fn read(&self, entity: &Entity, ctx: &HookContext) -> Result<Answer, Failure> {
        let o = &ctx.options;
        let columns: Vec<String> = entity
            .columns
            .iter()
            .map(|c| c.name.clone())
            .filter(|n| o.columns.as_ref().is_none_or(|c| c.contains(n)))
            .filter(|n| !o.omit_columns.as_ref().is_some_and(|c| c.contains(n)))
            .collect();
        if columns.is_empty() {
            return Err(fail(
                ErrorCode::InvalidOptions,
                "columns and omit_columns leave no column to return",
            ));
        }
        let built =
            |r: Result<Statement, _>| r.map_err(|e| fail(ErrorCode::ReadError, format!("{e}")));
        if let Some(id) = &ctx.record_id {
            let filters = key_filters(entity, &o.filters, id)?;
            let stmt = built(
                self.builder(entity)
                    .select(&columns, &filters, &[], Some(1), None),
            )?;
            let row = self.query_one(stmt, ErrorCode::ReadError).await?;
            let row = row.ok_or_else(|| not_found(entity, id))?;
            return Ok((Value::Object(row), None));
        }
        let limit = match (o.limit, self.config.max_rows) {
            (Some(limit), Some(max)) => Some(limit.min(max)),
            (limit, max) => limit.or(max),
        };
        let stmt = built(
            self.builder(entity)
                .select(&columns, &o.filters, &o.sort, limit, o.offset),
        )?;
        let rows = self.query(stmt, ErrorCode::ReadError).await?;
        let count_stmt = built(self.builder(entity).count(&o.filters))?;
        let total = self
            .query(count_stmt, ErrorCode::ReadError)
            .await?
            .first()
            .and_then(|r| r.get("total").and_then(Value::as_u64))
            .unwrap_or(0);
        let count = rows.len();
        let data = Value::Array(rows.into_iter().map(Value::Object).collect());
        Ok((data, Some(json!({"total": total, "count": count}))))
    }

    async fn create(&self, entity: &Entity, ctx: &HookContext) -> Result<Answer, Failure> {
        let data = data_object(ctx.data.as_ref(), "create")?;
        check_data_columns(entity, data)?;
        let pairs: Vec<(&String, &Value)> = data.iter().collect();
        let stmt = self
            .builder(entity)
            .insert(&pairs)
            .map_err(|e| fail(ErrorCode::InvalidData, e.to_string()))?;
        let _order = self.write_lock.lock().await;
        let row = self.query_one(stmt, ErrorCode::CreateError).await?;
        let row =
            row.ok_or_else(|| fail(ErrorCode::CreateError, "the database returned no row"))?;
        Ok((Value::Object(row), None))
    }

    async fn update(&self, entity: &Entity, ctx: &HookContext) -> Result<Answer, Failure> {
        let id = required_id(ctx, "update")?;
        let pk = primary_key(entity)?;
        let mut data = data_object(ctx.data.as_ref(), "update")?.clone();
        data.remove(&pk.name);
        check_data_columns(entity, &data)?;
        if data.is_empty() {
            return Err(fail(
                ErrorCode::InvalidData,
                "update has no field to change in data",
            ));
        }
        let filters = key_filters(entity, &ctx.options.filters, id)?;
        let all: Vec<String> = entity.columns.iter().map(|c| c.name.clone()).collect();
        let read_old = self
            .builder(entity)
            .select(&all, &filters, &[], Some(1), None)
            .map_err(|e| fail(ErrorCode::UpdateError, e.to_string()))?;
        let pairs: Vec<(&String, &Value)> = data.iter().collect();
        let write = self
            .builder(entity)
            .update(&pairs, &filters)
            .map_err(|e| fail(ErrorCode::InvalidData, e.to_string()))?;
        let _order = self.write_lock.lock().await;
        self.query_one(read_old, ErrorCode::UpdateError)
            .await?
            .ok_or_else(|| not_found(entity, id))?;
        let new = self.query_one(write, ErrorCode::UpdateError).await?;
        let new = new.ok_or_else(|| not_found(entity, id))?;
        Ok((Value::Object(new), None))
    }

    async fn delete(&self, entity: &Entity, ctx: &HookContext) -> Result<Answer, Failure> {
        let id = required_id(ctx, "delete")?;
        let filters = key_filters(entity, &ctx.options.filters, id)?;
        let stmt = self
            .builder(entity)
            .delete(&filters)
            .map_err(|e| fail(ErrorCode::DeleteError, e.to_string()))?;
        let _order = self.write_lock.lock().await;
        self.query_one(stmt, ErrorCode::DeleteError)
            .await?
            .ok_or_else(|| not_found(entity, id))?;
        Ok((json!({"deleted": true}), None))
    }

    /// A new subscription. With `options.since` (the last change sequence
    /// the client applied) it resumes: the feed first sends the changes after
    /// `since`, or the answer says `reset` when the log no longer holds them.
    async fn subscribe(
        &self,
        client_id: &str,
        entity: &Entity,
        ctx: &HookContext,
    ) -> Result<Answer, Failure> {
        let since = ctx.options.since;
        let (floor, head) = self.log_bounds().await?;
        let resume = since.map(|s| {
            if (floor..=head).contains(&s) {
                Resume::Replayed
            } else {
                Resume::Reset
            }
        });
        let replay = since.filter(|_| resume == Some(Resume::Replayed));
        let id = {
            let mut subs = self.subs();
            let id = subs.next_id();
            subs.add(Subscription {
                id: id.clone(),
                client_id: client_id.to_string(),
                schema: entity.schema.clone(),
                entity: entity.name.clone(),
                filters: ctx.options.filters.clone(),
                options: ctx.options.clone(),
                after: replay.unwrap_or(0),
                replay,
                answered: false,
            });
            id
        };
        if let Some(shared) = &self.config.shared {
            let stmt =
                capture::subscription_held(self.db.dialect(), &id, client_id, &shared.instance);
            if let Err(f) = self.query(stmt, ErrorCode::InvalidSubscription).await {
                self.subs().remove(client_id, &id);
                return Err(f);
            }
        }
        tracing::debug!(client_id, subscription_id = %id, entity = %entity.full_name(), ?since, ?resume, "subscribed");
        let data = SubscribeData {
            notify_topic: notify_topic(&self.config.prefix, client_id, &id),
            subscription_id: id,
            schema: entity.schema.clone(),
            entity: entity.name.clone(),
            seq: Some(head),
            resume,
        };
        let data = serde_json::to_value(data)
            .map_err(|e| fail(ErrorCode::InvalidSubscription, e.to_string()))?;
        Ok((data, None))
    }

    /// `(floor, head)` of the change log: every change after `floor` is
    /// still there; `head` is the newest.
    async fn log_bounds(&self) -> Result<(u64, u64), Failure> {
        let row = self
            .query_one(
                capture::bounds(self.db.dialect()),
                ErrorCode::InvalidSubscription,
            )
            .await?;
        let get = |name: &str| {
            row.as_ref()
                .and_then(|r| r.get(name))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        Ok((get("floor"), get("head")))
    }

    async fn unsubscribe(&self, caller: &Caller, message: &Message) -> Result<Answer, Failure> {
        let client_id = caller.client_id.as_str();
        let sub_id = message
            .subscription_id
            .clone()
            .or_else(|| {
                let data = message.data.as_ref()?;
                data.get("subscription_id")?.as_str().map(str::to_string)
            })
            .ok_or_else(|| {
                fail(
                    ErrorCode::InvalidSubscription,
                    "unsubscribe needs subscription_id (top level or in data)",
                )
            })?;
        let mut ctx = self.base_context(caller);
        ctx.operation = Some(Operation::Unsubscribe);
        ctx.data = message.data.clone();
        self.hooks.run(HookPoint::BeforeHandle, &mut ctx)?;
        self.hooks.run(HookPoint::BeforeUnsubscribe, &mut ctx)?;
        let held_here = self.subs().remove(client_id, &sub_id).is_some();
        if self.config.shared.is_some() {
            let stmt = capture::subscriptions_dropped(self.db.dialect(), client_id, Some(&sub_id));
            if let Err(f) = self.query(stmt, ErrorCode::InvalidSubscription).await {
                tracing::warn!(client_id, error = %f.message, "cannot forget a shared subscription");
            }
        }
        if !held_here && self.config.shared.is_some() {
            // Another instance may hold it: its feed drops it.
            self.log_control(ChangeOp::Unsubscribe, client_id, Some(&sub_id))
                .await;
        } else if !held_here {
            return Err(fail(
                ErrorCode::InvalidSubscription,
                format!("no subscription {sub_id:?} of this client"),
            ));
        }
        ctx.result = Some(json!({"unsubscribed": true, "subscription_id": sub_id}));
        self.hooks.run(HookPoint::AfterUnsubscribe, &mut ctx)?;
        Ok((ctx.result.take().unwrap_or(Value::Null), None))
    }
}

/// Does `message` change something, so that running it twice would differ
/// from running it once?
fn is_write(message: &Message) -> bool {
    matches!(
        message.operation,
        Some(
            Operation::Create
                | Operation::Update
                | Operation::Delete
                | Operation::Subscribe
                | Operation::Unsubscribe
        )
    )
}

fn not_found(entity: &Entity, id: &Value) -> Failure {
    fail(
        ErrorCode::NotFound,
        format!(
            "no record {id} in {} (or it is not visible to this request)",
            entity.full_name()
        ),
    )
}

fn required_id<'a>(ctx: &'a HookContext, operation: &str) -> Result<&'a Value, Failure> {
    ctx.record_id.as_ref().ok_or_else(|| {
        fail(
            ErrorCode::InvalidData,
            format!("{operation} needs record_id (or the primary key in data)"),
        )
    })
}

fn primary_key(entity: &Entity) -> Result<&crate::db::Column, Failure> {
    entity.primary_key().ok_or_else(|| {
        fail(
            ErrorCode::InvalidModel,
            format!(
                "{} has no single-column primary key: records cannot be addressed",
                entity.full_name()
            ),
        )
    })
}

fn key_filters(entity: &Entity, filters: &[Filter], id: &Value) -> Result<Vec<Filter>, Failure> {
    let pk = primary_key(entity)?;
    Ok(require_filter(
        filters,
        Filter::new(pk.name.clone(), FilterOp::Eq, id.clone()),
    ))
}

/// `record_id` if present, else the primary key (or `id`) in `data`.
fn record_id(message: &Message, entity: &Entity) -> Option<Value> {
    if let Some(id) = message.record_id.as_ref().filter(|v| !v.is_null()) {
        return Some(id.clone());
    }
    let data = message.data.as_ref()?.as_object()?;
    let pk = entity.primary_key().map_or("id", |c| c.name.as_str());
    data.get(pk)
        .or_else(|| data.get("id"))
        .filter(|v| !v.is_null())
        .cloned()
}

fn data_object<'a>(data: Option<&'a Value>, op: &str) -> Result<&'a Row, Failure> {
    data.and_then(Value::as_object).ok_or_else(|| {
        fail(
            ErrorCode::InvalidData,
            format!("{op} needs an object of column values in data"),
        )
    })
}

fn unknown_column(entity: &Entity, name: &str, place: &str) -> Failure {
    let known: Vec<&str> = entity.columns.iter().map(|c| c.name.as_str()).collect();
    fail(
        ErrorCode::InvalidColumn,
        format!(
            "{place} names column {name:?}, which {} does not have; known columns: {}",
            entity.full_name(),
            known.join(", ")
        ),
    )
}

fn check_data_columns(entity: &Entity, data: &Row) -> Result<(), Failure> {
    match data.keys().find(|k| entity.column(k).is_none()) {
        Some(name) => Err(unknown_column(entity, name, "data")),
        None => Ok(()),
    }
}

/// Check every column name and filter operand shape of `options`.
pub fn check_options(entity: &Entity, options: &Options) -> Result<(), Failure> {
    if let Some(name) = options
        .referenced_columns()
        .find(|c| entity.column(c).is_none())
    {
        return Err(unknown_column(entity, name, "options"));
    }
    for f in &options.filters {
        let ok = match f.operator {
            FilterOp::In | FilterOp::NotIn => f.value.is_array(),
            FilterOp::Between => between_bounds(&f.value).is_some(),
            FilterOp::Like | FilterOp::Ilike => f.value.as_str().is_some_and(valid_like_pattern),
            FilterOp::IsNull | FilterOp::IsNotNull => true,
            _ => !f.value.is_array() && !f.value.is_object(),
        };
        if !ok {
            let wants = match f.operator {
                FilterOp::In | FilterOp::NotIn => "an array of values",
                FilterOp::Between => "an array [low, high]",
                FilterOp::Like | FilterOp::Ilike => "a pattern string not ending in a lone \\",
                _ => "a single value",
            };
            return Err(fail(
                ErrorCode::InvalidFilter,
                format!(
                    "filter on {:?} with {} needs {wants}, got {}",
                    f.column,
                    f.operator.as_str(),
                    f.value
                ),
            ));
        }
    }
    Ok(())
}

/// A LIKE pattern must not end with an unescaped `\` (databases refuse it).
fn valid_like_pattern(pattern: &str) -> bool {
    let trailing = pattern.chars().rev().take_while(|c| *c == '\\').count();
    trailing % 2 == 0
}
