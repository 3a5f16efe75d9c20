//! The lifecycle of a SpecClient, IO-free: requests tracked until answered,
//! timed out or ended; subscriptions made again after every reconnect (the
//! server forgets a client's subscriptions when it disconnects); live
//! queries subscribed, read, kept current, refilled, and read again after a
//! reconnect; failed re-subscribes and re-reads retried with [`Backoff`].
//! A live query that has seen a change sequence (`seq`) resumes instead of
//! reading again: after a reconnect, or when the server says
//! `subscription_lost`, it subscribes with `options.since` and reads only
//! if the server answers `resume: "reset"` (docs/MQTTSPEC_PROTOCOL.md).
//!
//! The driver owns everything the core cannot name: the promises or
//! callbacks that wait (a type parameter `W`, as in [`Correlator`]), the
//! callbacks of subscriptions and live queries, timers and the connection.
//! It feeds events in ([`Lifecycle::on_connect`], [`Lifecycle::on_response`],
//! [`Lifecycle::on_notification`], [`Lifecycle::expire`],
//! [`Lifecycle::retry`], [`Lifecycle::flush`]) and performs the [`Effect`]s
//! that come out, in order, after its own state is released. Time is passed
//! in; randomness (backoff jitter) comes from a function given at creation.
//!
//! # Call order
//! 1. `new`; [`Lifecycle::on_connect`] on every CONNACK (the first one too);
//! 2. requests, subscriptions and live queries at any time, each returning
//!    effects; `online` says whether a publish can leave now (offline
//!    requests wait for the next `on_connect`);
//! 3. every response and notification payload, parsed into a [`Message`],
//!    through `on_response` / `on_notification`;
//! 4. a timer at [`Lifecycle::next_deadline`] calling `expire`; the timers of
//!    [`Effect::Retry`] calling `retry`; the soon-timer of
//!    [`Effect::FlushSoon`] calling `flush`.

use std::collections::HashMap;

use backoff_core::Backoff;
use mqttspec_proto::response::SubscribeData;
use mqttspec_proto::{Message, MessageType, Operation, Row};
use serde_json::Value;

use crate::correlate::{Correlator, SpecError};
use crate::live::{LiveChange, LiveQuery};
use crate::request::{self, EntityRef};
use crate::subscriptions::{Handle, Subscriptions, Wanted};

/// Identifies a live query.
pub type LiveId = u64;

/// First delay before a failed re-read or re-subscribe is tried again; it
/// doubles per failure up to [`RETRY_MAX_MS`].
pub const RETRY_FIRST_MS: u32 = 500;
/// Largest delay between two tries.
pub const RETRY_MAX_MS: u32 = 10_000;

/// What a retry timer tries again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOf {
    /// Read live query `LiveId` again.
    Read(LiveId),
    /// Send the subscribe of `Handle` again.
    Subscribe(Handle),
}

/// What a request's answer resolves, when it succeeds.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A plain request answered: the driver resolves with the response's
    /// `data` and `metadata`.
    Response,
    /// The first subscribe of this handle is confirmed.
    Subscribed(Handle),
    /// An unsubscribe is done.
    Unsubscribed,
    /// A live query's first rows are loaded (after its first change).
    LiveReady(LiveId),
}

/// Something the driver does, in order, once its state is released.
#[derive(Debug, PartialEq)]
pub enum Effect<W> {
    /// Publish this request.
    Publish(Box<Message>),
    /// A waiter's request succeeded.
    Resolve(W, Answer),
    /// A waiter's request failed.
    Reject(W, SpecError),
    /// Subscription `Handle` is gone (its first subscribe failed): drop its callbacks.
    Dropped(Handle),
    /// Subscription `Handle` lost its server side and is being retried: tell its error listener.
    SubscriptionFailed(Handle, SpecError),
    /// Live query `LiveId` could not be subscribed or read again and is being retried: tell its error listener.
    LiveFailed(LiveId, SpecError),
    /// Live query `LiveId` changed: call its listener with [`Lifecycle::live_rows`] and this change.
    LiveChanged(LiveId, LiveChange),
    /// Call [`Lifecycle::flush`] for `LiveId` soon (a burst of notifications makes one change).
    FlushSoon(LiveId),
    /// Call [`Lifecycle::retry`] with this after so many milliseconds.
    Retry(RetryOf, u32),
}

/// Who waits for a request.
enum Pending<W> {
    Call(W),
    Subscribe(Handle, Option<W>),
    Unsubscribe(Option<W>),
    LiveRead(LiveId),
}

/// A live query being kept current.
struct Live<W> {
    query: LiveQuery,
    entity: EntityRef,
    sub: Handle,
    change: LiveChange,
    retry: Backoff,
    reading: bool,
    /// A re-read is scheduled ([`Effect::Retry`]); a read made meanwhile cancels it.
    retry_due: bool,
    /// A resuming subscribe is in flight: its answer says whether to read.
    resuming: bool,
    flush_soon: bool,
    ready: Option<W>,
}

/// Where a notification goes, as told by [`Lifecycle::on_notification`].
#[derive(Debug, PartialEq)]
pub enum Routed<W> {
    /// To the driver's callback or iterator of subscription `Handle`.
    Subscription(Handle),
    /// Handled by the core (a live query's change, a lost subscription
    /// subscribed again): these effects follow.
    Handled(Vec<Effect<W>>),
    /// Nowhere (unknown or closed subscription, or not a notification).
    Nowhere,
}

/// The state of one SpecClient. See the module documentation.
pub struct Lifecycle<W> {
    requests: Correlator<Pending<W>>,
    subs: Subscriptions,
    /// Live query fed by a subscription (other subscriptions are the driver's).
    live_of: HashMap<Handle, LiveId>,
    lives: HashMap<LiveId, Live<W>>,
    /// Backoff of subscriptions whose re-subscribe failed.
    sub_retry: HashMap<Handle, Backoff>,
    next_live: LiveId,
    timeout_ms: u64,
    random: fn() -> f64,
    connected_before: bool,
    ended: bool,
}

fn retry_backoff() -> Backoff {
    Backoff::from_millis(RETRY_FIRST_MS, RETRY_MAX_MS)
}

fn closed() -> SpecError {
    SpecError::new("closed", "the client was ended")
}

impl<W> Lifecycle<W> {
    /// A client whose request ids start with `nonce` (unique per page load),
    /// whose requests time out after `timeout_ms`, and whose retries draw
    /// their jitter from `random` (uniform in [0, 1)).
    pub fn new(nonce: impl Into<String>, timeout_ms: u64, random: fn() -> f64) -> Self {
        Lifecycle {
            requests: Correlator::new(nonce),
            subs: Subscriptions::new(),
            live_of: HashMap::new(),
            lives: HashMap::new(),
            sub_retry: HashMap::new(),
            next_live: 0,
            timeout_ms,
            random,
            connected_before: false,
            ended: false,
        }
    }

    /// A plain request (read, create, update, delete, meta) for `waiter`.
    pub fn call(&mut self, message: Message, waiter: W, now: u64, online: bool) -> Vec<Effect<W>> {
        self.submit(message, Pending::Call(waiter), now, online)
    }

    /// Subscribe to `entity`; `waiter` gets [`Answer::Subscribed`] once the
    /// server confirmed. The subscription is made again after reconnects
    /// until [`Lifecycle::unsubscribe`].
    pub fn subscribe(
        &mut self,
        entity: EntityRef,
        options: Option<Value>,
        waiter: W,
        now: u64,
        online: bool,
    ) -> (Handle, Vec<Effect<W>>) {
        let handle = self.subs.add(entity.clone(), options.clone());
        let m = request::subscribe(String::new(), &entity, options);
        let effects = self.submit(m, Pending::Subscribe(handle, Some(waiter)), now, online);
        (handle, effects)
    }

    /// Stop subscription `handle`; `waiter` gets [`Answer::Unsubscribed`].
    pub fn unsubscribe(
        &mut self,
        handle: Handle,
        waiter: W,
        now: u64,
        online: bool,
    ) -> Vec<Effect<W>> {
        self.sub_retry.remove(&handle);
        let server_id = self.subs.remove(handle);
        self.unsubscribe_server(server_id, waiter, now, online)
    }

    /// Start a live query: subscribe, then read (a change between the two is
    /// held and applied on the read). `waiter` gets [`Answer::LiveReady`]
    /// after the first [`Effect::LiveChanged`].
    pub fn live_query(
        &mut self,
        entity: EntityRef,
        query: LiveQuery,
        waiter: W,
        now: u64,
        online: bool,
    ) -> (LiveId, Vec<Effect<W>>) {
        self.next_live += 1;
        let live = self.next_live;
        let options = Some(query.subscribe_options());
        let sub = self.subs.add(entity.clone(), options.clone());
        self.live_of.insert(sub, live);
        self.lives.insert(
            live,
            Live {
                query,
                entity: entity.clone(),
                sub,
                change: LiveChange::default(),
                retry: retry_backoff(),
                reading: false,
                retry_due: false,
                resuming: false,
                flush_soon: false,
                ready: Some(waiter),
            },
        );
        let subscribe = request::subscribe(String::new(), &entity, options);
        let mut effects = self.submit(subscribe, Pending::Subscribe(sub, None), now, online);
        effects.extend(self.reload(live, now, online));
        (live, effects)
    }

    /// Stop live query `live`; `waiter` gets [`Answer::Unsubscribed`].
    pub fn close_live(
        &mut self,
        live: LiveId,
        waiter: W,
        now: u64,
        online: bool,
    ) -> Vec<Effect<W>> {
        let server_id = self.forget_live(live);
        self.unsubscribe_server(server_id, waiter, now, online)
    }

    /// The rows of live query `live` now (empty when unknown).
    pub fn live_rows(&self, live: LiveId) -> &[Row] {
        self.lives.get(&live).map_or(&[], |l| l.query.rows())
    }

    /// The server's id of subscription `handle` (None until confirmed).
    pub fn subscription_id(&self, handle: Handle) -> Option<&str> {
        self.subs.server_id(handle)
    }

    /// The server's id of the subscription feeding live query `live`.
    pub fn live_subscription_id(&self, live: LiveId) -> Option<&str> {
        self.subs.server_id(self.lives.get(&live)?.sub)
    }

    /// The connection is up (first time or again): after a reconnect,
    /// subscribe again and read every live query again; then publish what
    /// waited offline.
    pub fn on_connect(&mut self, now: u64) -> Vec<Effect<W>> {
        if self.ended {
            return Vec::new();
        }
        let mut effects = Vec::new();
        if std::mem::replace(&mut self.connected_before, true) {
            self.sub_retry.clear();
            for (handle, wanted) in self.subs.reset() {
                effects.extend(self.subscribe_again(handle, wanted, true, now, true));
            }
        }
        effects.extend(
            self.requests
                .take_outbox()
                .into_iter()
                .map(|m| Effect::Publish(Box::new(m))),
        );
        effects
    }

    /// A response arrived. `envelope` carries its `id`, `type`, `success`
    /// and `error`; `whole` parses the whole message, called only when the
    /// core needs its `data` (a subscribe's id, a live query's rows): a plain
    /// request's data is the driver's business, parsed once by it.
    pub fn on_response(
        &mut self,
        envelope: Message,
        whole: impl FnOnce() -> Result<Message, SpecError>,
        now: u64,
        online: bool,
    ) -> Vec<Effect<W>> {
        let Some((pending, outcome)) = self.requests.on_message(envelope) else {
            return Vec::new();
        };
        match (outcome, pending) {
            (Err(e), pending) => self.failed(pending, e),
            (Ok(_), Pending::Call(w)) => vec![Effect::Resolve(w, Answer::Response)],
            (Ok(_), pending) => match whole() {
                Ok(m) => self.succeeded(pending, m, now, online),
                Err(e) => self.failed(pending, e),
            },
        }
    }

    /// A notification arrived: for a live query it is applied here, for any
    /// other subscription the driver gets the handle to deliver it.
    pub fn on_notification(&mut self, note: Message, now: u64, online: bool) -> Routed<W> {
        let Some(handle) = note
            .subscription_id
            .as_deref()
            .and_then(|s| self.subs.handle_of(s))
        else {
            return Routed::Nowhere;
        };
        if note.kind == Some(MessageType::Error) {
            let lost = note
                .error
                .as_ref()
                .is_some_and(|e| e.code == "subscription_lost");
            return match self.subs.unbind(handle) {
                Some(wanted) if lost => {
                    Routed::Handled(self.subscribe_again(handle, wanted, true, now, online))
                }
                _ => Routed::Nowhere,
            };
        }
        let Some(&live) = self.live_of.get(&handle) else {
            return Routed::Subscription(handle);
        };
        let (Some(op), Some(Value::Object(row)), Some(l)) =
            (note.operation, note.data, self.lives.get_mut(&live))
        else {
            return Routed::Nowhere;
        };
        let change = l.query.apply_seq(op, row, note.seq.map(|s| s.get()));
        let refill = change.needs_refill;
        l.change.merge(change);
        let mut effects = Vec::new();
        // Held until the read answers (the load reports), else reported soon.
        if l.query.is_loaded() && !l.flush_soon {
            l.flush_soon = true;
            effects.push(Effect::FlushSoon(live));
        }
        if refill {
            effects.extend(self.reload(live, now, online));
        }
        Routed::Handled(effects)
    }

    /// Report what live query `live` gathered since the last report.
    pub fn flush(&mut self, live: LiveId) -> Vec<Effect<W>> {
        let Some(l) = self.lives.get_mut(&live) else {
            return Vec::new();
        };
        l.flush_soon = false;
        let change = std::mem::take(&mut l.change);
        let first = l.ready.take();
        let mut effects = Vec::new();
        if !(change.added.is_empty()
            && change.updated.is_empty()
            && change.removed.is_empty()
            && first.is_none())
        {
            effects.push(Effect::LiveChanged(live, change));
        }
        if let Some(w) = first {
            effects.push(Effect::Resolve(w, Answer::LiveReady(live)));
        }
        effects
    }

    /// A retry timer fired.
    pub fn retry(&mut self, of: RetryOf, now: u64, online: bool) -> Vec<Effect<W>> {
        if self.ended {
            return Vec::new();
        }
        match of {
            RetryOf::Read(live) => match self.lives.get(&live) {
                Some(l) if l.retry_due => self.reload(live, now, online),
                _ => Vec::new(),
            },
            RetryOf::Subscribe(handle) => match self.subs.wanted(handle) {
                // Still wanted and not re-established meanwhile.
                Some(w) if self.subs.server_id(handle).is_none() => {
                    let w = w.clone();
                    self.subscribe_again(handle, w, false, now, online)
                }
                _ => Vec::new(),
            },
        }
    }

    /// When [`Lifecycle::expire`] must run next.
    pub fn next_deadline(&self) -> Option<u64> {
        self.requests.next_deadline()
    }

    /// Fail the requests whose timeout passed.
    pub fn expire(&mut self, now: u64) -> Vec<Effect<W>> {
        let expired = self.requests.expire(now);
        expired
            .into_iter()
            .flat_map(|(p, e)| self.failed(p, e))
            .collect()
    }

    /// A request's publish was refused locally (queue full, client ended):
    /// fail it now.
    pub fn publish_failed(&mut self, id: &str, e: SpecError) -> Vec<Effect<W>> {
        match self.requests.cancel(id) {
            Some(p) => self.failed(p, e),
            None => Vec::new(),
        }
    }

    /// End: every waiter is rejected with `closed`; nothing is retried.
    pub fn end(&mut self) -> Vec<Effect<W>> {
        self.ended = true;
        let mut effects: Vec<Effect<W>> = self
            .requests
            .close("the client was ended")
            .into_iter()
            .flat_map(|(p, e)| reject(p, e))
            .collect();
        for (_, l) in self.lives.drain() {
            if let Some(w) = l.ready {
                effects.push(Effect::Reject(w, closed()));
            }
        }
        self.live_of.clear();
        self.sub_retry.clear();
        effects
    }

    /// Subscribe `handle` again. A live query that has a change sequence
    /// resumes from it (its answer says whether to read); one without reads
    /// again too when `read_plain` (after a reconnect: it may have missed
    /// changes).
    fn subscribe_again(
        &mut self,
        handle: Handle,
        wanted: Wanted,
        read_plain: bool,
        now: u64,
        online: bool,
    ) -> Vec<Effect<W>> {
        let live = self.live_of.get(&handle).copied();
        let since = live
            .and_then(|l| self.lives.get(&l))
            .and_then(|l| l.query.last_seq());
        let message = match since {
            Some(since) => request::resume(String::new(), &wanted.entity, wanted.options, since),
            None => request::subscribe(String::new(), &wanted.entity, wanted.options),
        };
        if let (Some(live), Some(_)) = (live, since) {
            if let Some(l) = self.lives.get_mut(&live) {
                l.resuming = true;
            }
        }
        let mut effects = self.submit(message, Pending::Subscribe(handle, None), now, online);
        if let (Some(live), None, true) = (live, since, read_plain) {
            effects.extend(self.reload(live, now, online));
        }
        effects
    }

    fn submit(
        &mut self,
        message: Message,
        pending: Pending<W>,
        now: u64,
        online: bool,
    ) -> Vec<Effect<W>> {
        if self.ended {
            return reject(pending, closed());
        }
        let id = self.requests.next_id();
        let message = Message {
            id: Some(id),
            ..message
        };
        self.requests
            .submit(message, pending, now, self.timeout_ms, online)
            .map(|m| Effect::Publish(Box::new(m)))
            .into_iter()
            .collect()
    }

    fn unsubscribe_server(
        &mut self,
        server_id: Option<String>,
        waiter: W,
        now: u64,
        online: bool,
    ) -> Vec<Effect<W>> {
        match server_id {
            Some(id) => self.submit(
                request::unsubscribe(String::new(), &id),
                Pending::Unsubscribe(Some(waiter)),
                now,
                online,
            ),
            None => vec![Effect::Resolve(waiter, Answer::Unsubscribed)],
        }
    }

    /// Forget a live query and return its subscription's server id.
    fn forget_live(&mut self, live: LiveId) -> Option<String> {
        let l = self.lives.remove(&live)?;
        self.live_of.remove(&l.sub);
        self.sub_retry.remove(&l.sub);
        self.subs.remove(l.sub)
    }

    /// Read live query `live` again (unless a read is already in flight).
    fn reload(&mut self, live: LiveId, now: u64, online: bool) -> Vec<Effect<W>> {
        let Some(l) = self.lives.get_mut(&live) else {
            return Vec::new();
        };
        if l.reading {
            return Vec::new();
        }
        l.reading = true;
        // A reconnect or refill reads now: a scheduled retry would be one read too many.
        l.retry_due = false;
        l.query.begin_reload();
        let message = request::request(
            String::new(),
            Operation::Read,
            &l.entity,
            None,
            None,
            Some(l.query.read_options()),
        );
        self.submit(message, Pending::LiveRead(live), now, online)
    }

    fn succeeded(
        &mut self,
        pending: Pending<W>,
        response: Message,
        now: u64,
        online: bool,
    ) -> Vec<Effect<W>> {
        match pending {
            Pending::Call(w) => vec![Effect::Resolve(w, Answer::Response)],
            Pending::Unsubscribe(w) => w
                .map(|w| Effect::Resolve(w, Answer::Unsubscribed))
                .into_iter()
                .collect(),
            Pending::Subscribe(handle, first) => {
                let server_id = response
                    .data
                    .as_ref()
                    .and_then(|d| d.get("subscription_id"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                self.sub_retry.remove(&handle);
                if !self.subs.bind(handle, server_id.clone()) {
                    // Unsubscribed while the subscribe was in flight.
                    return self.submit(
                        request::unsubscribe(String::new(), &server_id),
                        Pending::Unsubscribe(None),
                        now,
                        online,
                    );
                }
                let mut effects: Vec<Effect<W>> = first
                    .map(|w| Effect::Resolve(w, Answer::Subscribed(handle)))
                    .into_iter()
                    .collect();
                if let Some(&live) = self.live_of.get(&handle) {
                    effects.extend(self.live_subscribed(live, response.data, now, online));
                }
                effects
            }
            Pending::LiveRead(live) => self.loaded(live, response, now, online),
        }
    }

    /// Live query `live`'s subscribe was answered with `data`: record its
    /// change sequence; after a resume, read only if the server could not
    /// replay (`reset`, or an answer without `resume` from an older server).
    fn live_subscribed(
        &mut self,
        live: LiveId,
        data: Option<Value>,
        now: u64,
        online: bool,
    ) -> Vec<Effect<W>> {
        let Some(l) = self.lives.get_mut(&live) else {
            return Vec::new();
        };
        let answer = data.and_then(|d| serde_json::from_value::<SubscribeData>(d).ok());
        let must_read = answer.as_ref().is_none_or(|a| l.query.subscribed(a));
        if std::mem::take(&mut l.resuming) && must_read {
            self.reload(live, now, online)
        } else {
            Vec::new()
        }
    }

    /// The read of live query `live` answered: load its rows.
    fn loaded(
        &mut self,
        live: LiveId,
        response: Message,
        now: u64,
        online: bool,
    ) -> Vec<Effect<W>> {
        let Some(l) = self.lives.get_mut(&live) else {
            return Vec::new();
        };
        l.reading = false;
        l.retry.reset();
        let total = response
            .metadata
            .as_ref()
            .and_then(|md| md.get("total"))
            .and_then(Value::as_u64);
        let rows: Vec<Row> = match response.data {
            Some(Value::Array(items)) => items
                .into_iter()
                .filter_map(|v| match v {
                    Value::Object(row) => Some(row),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let change = l.query.load(rows, total);
        let refill = change.needs_refill;
        l.change.merge(change);
        let mut effects = self.flush(live);
        if refill {
            effects.extend(self.reload(live, now, online));
        }
        effects
    }

    /// A request failed (error response, timeout, publish refused).
    fn failed(&mut self, pending: Pending<W>, e: SpecError) -> Vec<Effect<W>> {
        match pending {
            Pending::Subscribe(handle, Some(w)) => {
                // The caller never got a handle: forget it.
                self.subs.remove(handle);
                vec![Effect::Dropped(handle), Effect::Reject(w, e)]
            }
            Pending::Subscribe(handle, None) => {
                if self.subs.wanted(handle).is_none() {
                    return Vec::new(); // unsubscribed meanwhile
                }
                // A re-subscribe (after a reconnect) or a live query's
                // subscribe failed: the handle would get nothing. Tell its
                // listener and try again later.
                let random = (self.random)();
                let delay = self
                    .sub_retry
                    .entry(handle)
                    .or_insert_with(retry_backoff)
                    .next_delay_ms(random);
                let told = match self.live_of.get(&handle) {
                    Some(&live) => Effect::LiveFailed(live, e),
                    None => Effect::SubscriptionFailed(handle, e),
                };
                vec![Effect::Retry(RetryOf::Subscribe(handle), delay), told]
            }
            Pending::LiveRead(live) => {
                let random = (self.random)();
                let Some(l) = self.lives.get_mut(&live) else {
                    return Vec::new();
                };
                l.reading = false;
                if let Some(w) = l.ready.take() {
                    self.forget_live(live);
                    return vec![Effect::Reject(w, e)];
                }
                // A re-read (after a reconnect or for a refill) failed: the view
                // would stay frozen. Tell the listener and read again later.
                let delay = l.retry.next_delay_ms(random);
                l.retry_due = true;
                vec![
                    Effect::Retry(RetryOf::Read(live), delay),
                    Effect::LiveFailed(live, e),
                ]
            }
            other => reject(other, e),
        }
    }
}

/// The effect that rejects what `pending` promised, if anyone waits.
fn reject<W>(pending: Pending<W>, e: SpecError) -> Vec<Effect<W>> {
    match pending {
        Pending::Call(w) | Pending::Unsubscribe(Some(w)) | Pending::Subscribe(_, Some(w)) => {
            vec![Effect::Reject(w, e)]
        }
        Pending::Unsubscribe(None) | Pending::Subscribe(_, None) | Pending::LiveRead(_) => {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqttspec_proto::MessageType;
    use serde_json::json;

    type Core = Lifecycle<u32>;

    fn core() -> Core {
        Lifecycle::new("t", 1_000, || 0.5)
    }

    fn published(effects: &[Effect<u32>]) -> Vec<Message> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Publish(m) => Some((**m).clone()),
                _ => None,
            })
            .collect()
    }

    fn answer(to: &Message, data: serde_json::Value) -> Message {
        Message {
            id: to.id.clone(),
            kind: Some(MessageType::Response),
            success: Some(true),
            data: Some(data),
            ..Message::default()
        }
    }

    fn failure(to: &Message, code: &str) -> Message {
        serde_json::from_value(json!({
            "id": to.id, "type": "response", "success": false,
            "error": {"code": code, "message": "no"}
        }))
        .unwrap()
    }

    fn respond(c: &mut Core, m: Message) -> Vec<Effect<u32>> {
        let whole = m.clone();
        c.on_response(m, move || Ok(whole), 0, true)
    }

    fn note(sub: &str, op: Operation, row: serde_json::Value) -> Message {
        Message {
            kind: Some(MessageType::Notification),
            operation: Some(op),
            subscription_id: Some(sub.into()),
            data: Some(row),
            ..Message::default()
        }
    }

    fn users() -> EntityRef {
        EntityRef::parse("users", None)
    }

    /// A live query on `users` (key `id`), subscribed as `sub-1` and loaded with `rows`.
    fn live_loaded(c: &mut Core, rows: serde_json::Value) -> LiveId {
        let (live, effects) = c.live_query(
            users(),
            LiveQuery::new("id", vec![], vec![], None),
            7,
            0,
            true,
        );
        let sent = published(&effects);
        assert_eq!(sent.len(), 2, "subscribe, then read");
        respond(c, answer(&sent[0], json!({"subscription_id": "sub-1"})));
        let loaded = respond(c, answer(&sent[1], rows));
        assert!(
            matches!(loaded.last(), Some(Effect::Resolve(7, Answer::LiveReady(l))) if *l == live)
        );
        live
    }

    #[test]
    fn a_reconnect_subscribes_again_and_reads_live_queries_again() {
        let mut c = core();
        assert!(c.on_connect(0).is_empty(), "first connect: nothing to redo");
        let (handle, effects) = c.subscribe(users(), None, 1, 0, true);
        let sub = published(&effects).remove(0);
        let done = respond(&mut c, answer(&sub, json!({"subscription_id": "s-a"})));
        assert_eq!(done, vec![Effect::Resolve(1, Answer::Subscribed(handle))]);
        let live = live_loaded(&mut c, json!([{"id": 1}]));
        let again = published(&c.on_connect(10));
        let ops: Vec<_> = again.iter().map(|m| m.operation).collect();
        assert_eq!(
            ops.iter()
                .filter(|o| **o == Some(Operation::Subscribe))
                .count(),
            2
        );
        assert_eq!(
            ops.iter().filter(|o| **o == Some(Operation::Read)).count(),
            1
        );
        assert_eq!(c.subscription_id(handle), None, "until the new answer");
        assert_eq!(
            c.live_rows(live).len(),
            1,
            "the view stays while it is read again"
        );
    }

    #[test]
    fn notifications_before_the_read_are_held_then_reported_in_one_change() {
        let mut c = core();
        let (live, effects) = c.live_query(
            users(),
            LiveQuery::new("id", vec![], vec![], None),
            7,
            0,
            true,
        );
        let sent = published(&effects);
        respond(
            &mut c,
            answer(&sent[0], json!({"subscription_id": "sub-1"})),
        );
        let early = c.on_notification(note("sub-1", Operation::Create, json!({"id": 2})), 0, true);
        assert_eq!(
            early,
            Routed::Handled(vec![]),
            "held until the read answers"
        );
        let loaded = respond(&mut c, answer(&sent[1], json!([{"id": 1}])));
        match &loaded[..] {
            [Effect::LiveChanged(l, change), Effect::Resolve(7, Answer::LiveReady(r))] => {
                assert_eq!((*l, *r), (live, live));
                assert_eq!(change.added.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        // Two notifications of one burst: one flush.
        let a = c.on_notification(note("sub-1", Operation::Create, json!({"id": 3})), 0, true);
        let b = c.on_notification(note("sub-1", Operation::Delete, json!({"id": 1})), 0, true);
        assert_eq!(a, Routed::Handled(vec![Effect::FlushSoon(live)]));
        assert_eq!(b, Routed::Handled(vec![]));
        match &c.flush(live)[..] {
            [Effect::LiveChanged(_, change)] => {
                assert_eq!((change.added.len(), change.removed.len()), (1, 1));
            }
            other => panic!("{other:?}"),
        }
        let ids: Vec<_> = c.live_rows(live).iter().map(|r| r["id"].clone()).collect();
        assert_eq!(ids, vec![json!(2), json!(3)]);
        assert_eq!(
            c.on_notification(note("other", Operation::Create, json!({})), 0, true),
            Routed::Nowhere
        );
    }

    #[test]
    fn a_failed_re_read_is_retried_with_backoff_unless_a_read_came_first() {
        let mut c = core();
        c.on_connect(0);
        let live = live_loaded(&mut c, json!([]));
        let read = published(&c.on_connect(0))
            .into_iter()
            .find(|m| m.operation == Some(Operation::Read))
            .unwrap();
        let failed = respond(&mut c, failure(&read, "unavailable"));
        match &failed[..] {
            [Effect::Retry(RetryOf::Read(l), delay), Effect::LiveFailed(f, e)] => {
                assert_eq!((*l, *f, e.code.as_str()), (live, live, "unavailable"));
                assert_eq!(*delay, 375, "0.5 s scaled by jitter 0.5 -> 0.75");
            }
            other => panic!("{other:?}"),
        }
        // A reconnect reads now: the scheduled retry then does nothing.
        let reread = published(&c.on_connect(5));
        assert_eq!(reread.len(), 2);
        assert!(c.retry(RetryOf::Read(live), 10, true).is_empty());
        // Failing again doubles the delay.
        let read = reread
            .into_iter()
            .find(|m| m.operation == Some(Operation::Read))
            .unwrap();
        let failed = respond(&mut c, failure(&read, "unavailable"));
        assert!(matches!(failed[0], Effect::Retry(_, 750)), "{failed:?}");
        assert_eq!(published(&c.retry(RetryOf::Read(live), 20, true)).len(), 1);
    }

    #[test]
    fn subscribe_failures() {
        let mut c = core();
        c.on_connect(0);
        // The first subscribe fails: the caller is told, the handle is gone.
        let (handle, effects) = c.subscribe(users(), None, 1, 0, true);
        let sub = published(&effects).remove(0);
        let failed = respond(&mut c, failure(&sub, "not_found"));
        assert!(
            matches!(&failed[..], [Effect::Dropped(h), Effect::Reject(1, e)] if *h == handle && e.code == "not_found")
        );
        // A re-subscribe fails: retried, its listener told, until it works.
        let (handle, effects) = c.subscribe(users(), None, 2, 0, true);
        respond(
            &mut c,
            answer(&published(&effects)[0], json!({"subscription_id": "s"})),
        );
        let again = published(&c.on_connect(0)).remove(0);
        let failed = respond(&mut c, failure(&again, "unavailable"));
        assert!(
            matches!(&failed[..], [Effect::Retry(RetryOf::Subscribe(h), _), Effect::SubscriptionFailed(f, _)] if *h == handle && *f == handle)
        );
        let retried = published(&c.retry(RetryOf::Subscribe(handle), 0, true)).remove(0);
        assert!(respond(&mut c, answer(&retried, json!({"subscription_id": "s2"}))).is_empty());
        assert_eq!(c.subscription_id(handle), Some("s2"));
        assert!(
            c.retry(RetryOf::Subscribe(handle), 0, true).is_empty(),
            "re-established"
        );
    }

    #[test]
    fn unsubscribing_while_the_subscribe_is_in_flight_unsubscribes_on_its_answer() {
        let mut c = core();
        let (handle, effects) = c.subscribe(users(), None, 1, 0, true);
        let sub = published(&effects).remove(0);
        assert_eq!(
            c.unsubscribe(handle, 2, 0, true),
            vec![Effect::Resolve(2, Answer::Unsubscribed)]
        );
        let late = published(&respond(
            &mut c,
            answer(&sub, json!({"subscription_id": "s"})),
        ));
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].operation, Some(Operation::Unsubscribe));
    }

    #[test]
    fn offline_requests_wait_for_the_connection_and_end_rejects_every_waiter() {
        let mut c = core();
        let read = request::request(String::new(), Operation::Read, &users(), None, None, None);
        assert!(c.call(read, 1, 0, false).is_empty(), "offline: waits");
        let (_, effects) = c.live_query(
            users(),
            LiveQuery::new("id", vec![], vec![], None),
            2,
            0,
            false,
        );
        assert!(published(&effects).is_empty());
        assert_eq!(published(&c.on_connect(0)).len(), 3);
        let ended = c.end();
        let mut rejected: Vec<u32> = ended
            .iter()
            .map(|e| match e {
                Effect::Reject(w, e) if e.code == "closed" => *w,
                other => panic!("{other:?}"),
            })
            .collect();
        rejected.sort();
        assert_eq!(rejected, vec![1, 2]);
        let late = request::request(String::new(), Operation::Read, &users(), None, None, None);
        assert!(matches!(
            &c.call(late, 3, 0, true)[..],
            [Effect::Reject(3, _)]
        ));
    }

    #[test]
    fn a_plain_answer_never_parses_the_whole_message() {
        let mut c = core();
        let read = request::request(String::new(), Operation::Read, &users(), None, None, None);
        let sent = published(&c.call(read, 1, 0, true)).remove(0);
        let done = c.on_response(
            answer(&sent, json!(null)),
            || panic!("the driver keeps a plain answer's data"),
            0,
            true,
        );
        assert_eq!(done, vec![Effect::Resolve(1, Answer::Response)]);
    }

    fn subscribe_answer(to: &Message, id: &str, seq: u64, resume: Option<&str>) -> Message {
        let mut data = json!({"subscription_id": id, "schema": "public", "entity": "users",
            "notify_topic": format!("spec/c/notify/{id}"), "seq": seq});
        if let Some(r) = resume {
            data["resume"] = json!(r);
        }
        answer(to, data)
    }

    fn seq_note(sub: &str, op: Operation, row: serde_json::Value, seq: u64) -> Message {
        Message {
            seq: std::num::NonZeroU64::new(seq),
            ..note(sub, op, row)
        }
    }

    /// A live query subscribed as `sub-1` at seq 10, loaded with row 1, then
    /// changed by notification 11 (row 2 created).
    fn live_with_seq(c: &mut Core) -> LiveId {
        c.on_connect(0);
        let (live, effects) = c.live_query(
            users(),
            LiveQuery::new("id", vec![], vec![], None),
            7,
            0,
            true,
        );
        let sent = published(&effects);
        assert!(respond(c, subscribe_answer(&sent[0], "sub-1", 10, None)).is_empty());
        respond(c, answer(&sent[1], json!([{"id": 1}])));
        c.on_notification(
            seq_note("sub-1", Operation::Create, json!({"id": 2}), 11),
            0,
            true,
        );
        c.flush(live);
        live
    }

    #[test]
    fn a_reconnect_resumes_a_live_query_from_its_last_seq_without_reading() {
        let mut c = core();
        let live = live_with_seq(&mut c);
        let again = published(&c.on_connect(10));
        assert_eq!(again.len(), 1, "a resuming subscribe, no read: {again:?}");
        let options = again[0].options.as_ref().unwrap();
        assert_eq!(options["since"], json!(11));
        // The server replays: no read; the replayed changes apply once.
        assert!(respond(
            &mut c,
            subscribe_answer(&again[0], "sub-2", 13, Some("replayed"))
        )
        .is_empty());
        assert_eq!(
            c.on_notification(
                seq_note("sub-1", Operation::Delete, json!({"id": 1}), 12),
                0,
                true
            ),
            Routed::Nowhere,
            "the old subscription's notifications are dropped"
        );
        c.on_notification(
            seq_note("sub-2", Operation::Delete, json!({"id": 1}), 12),
            0,
            true,
        );
        c.on_notification(
            seq_note("sub-2", Operation::Delete, json!({"id": 1}), 12),
            0,
            true,
        );
        c.on_notification(
            seq_note("sub-2", Operation::Create, json!({"id": 3}), 13),
            0,
            true,
        );
        match &c.flush(live)[..] {
            [Effect::LiveChanged(_, change)] => {
                assert_eq!((change.removed.len(), change.added.len()), (1, 1));
            }
            other => panic!("{other:?}"),
        }
        let ids: Vec<_> = c.live_rows(live).iter().map(|r| r["id"].clone()).collect();
        assert_eq!(ids, vec![json!(2), json!(3)]);
    }

    #[test]
    fn a_reset_or_an_old_server_reads_again() {
        for resume in [Some("reset"), None] {
            let mut c = core();
            let live = live_with_seq(&mut c);
            let again = published(&c.on_connect(10));
            let read = published(&respond(
                &mut c,
                subscribe_answer(&again[0], "sub-2", 900, resume),
            ));
            assert_eq!(read.len(), 1, "{resume:?}");
            assert_eq!(read[0].operation, Some(Operation::Read));
            respond(&mut c, answer(&read[0], json!([{"id": 5}])));
            assert_eq!(c.live_rows(live).len(), 1);
        }
    }

    #[test]
    fn subscription_lost_resubscribes_that_subscription_only() {
        let mut c = core();
        let live = live_with_seq(&mut c);
        let (handle, effects) = c.subscribe(users(), None, 9, 0, true);
        respond(
            &mut c,
            answer(&published(&effects)[0], json!({"subscription_id": "plain"})),
        );
        let lost: Message =
            serde_json::from_value(json!({"type": "error", "subscription_id": "sub-1",
            "success": false, "error": {"code": "subscription_lost", "message": "gone"}}))
            .unwrap();
        let Routed::Handled(effects) = c.on_notification(lost, 0, true) else {
            panic!("handled by the core")
        };
        let sent = published(&effects);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].options.as_ref().unwrap()["since"], json!(11));
        assert_eq!(c.live_subscription_id(live), None, "until the new answer");
        assert_eq!(
            c.subscription_id(handle),
            Some("plain"),
            "the other subscription stays"
        );
    }
}
