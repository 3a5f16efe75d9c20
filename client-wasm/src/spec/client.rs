//! The browser driver of the MQTTSpec client: publishes requests to
//! `{prefix}/{client_id}/request`, routes `response` and `notify/+`
//! messages to the waiting promises, subscription callbacks and live
//! queries, arms one timer for request timeouts, and re-establishes
//! subscriptions and live queries after every reconnect (the server forgets
//! a client's subscriptions when it disconnects).
//!
//! Re-entrancy rule (as in the MQTT driver): JS is never called while the
//! state is borrowed; work that calls JS is collected as [`Effect`]s and run
//! after the borrow ends.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};

use backoff_core::Backoff;
use gloo_timers::callback::Timeout;
use js_sys::{Function, Object, Promise, Reflect, JSON};
use mqttspec_client::live::LiveChange;
use mqttspec_client::request::{self, EntityRef};
use mqttspec_client::subscriptions::Handle;
use mqttspec_client::{Correlator, LiveQuery, SpecError, Subscriptions};
use mqttspec_proto::{ErrorBody, Message, MessageType, Operation, Row};
use serde_json::Value;
use wasm_bindgen::prelude::*;

use super::json::{error_to_js, field, to_js};
use crate::mqtt::{v5, Client, QoS};
use crate::reply::Reply;

/// Identifies a live query of a client.
pub type LiveId = u64;

/// Notifications kept for an async iterator that is not reading fast enough.
const ITERATOR_BUFFER: usize = 10_000;

/// First delay before a failed re-read or re-subscribe is tried again; it
/// doubles per failure up to [`RETRY_MAX_MS`].
const RETRY_FIRST_MS: u32 = 500;
const RETRY_MAX_MS: u32 = 10_000;

/// Backoff of something retried until it succeeds.
pub struct Retry {
    timer: Option<Timeout>,
    backoff: Backoff,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            timer: None,
            backoff: Backoff::from_millis(RETRY_FIRST_MS, RETRY_MAX_MS),
        }
    }
}

impl Retry {
    /// The delay before the next attempt (about 0.5 s, 1 s, 2 s... 10 s).
    fn next_delay(&mut self) -> u32 {
        self.backoff.next_delay_ms(js_sys::Math::random())
    }
}

/// What a retry timer does when it fires.
#[derive(Clone, Copy)]
pub enum RetryOf {
    /// Read live query `LiveId` again.
    Read(LiveId),
    /// Send the subscribe of `Handle` again.
    Subscribe(Handle),
}

/// What waits for a response.
pub enum Pending {
    /// A plain request: resolves with `{data, metadata}`.
    Call(Reply),
    /// A subscribe for `Handle`; the promise (first subscribe only) resolves
    /// with the JS handle object `handle_js` builds.
    Subscribe(Handle, Option<(Reply, JsValue)>),
    /// An unsubscribe.
    Unsubscribe(Option<Reply>),
    /// The (re)load read of a live query.
    LiveRead(LiveId),
}

/// Where a subscription's notifications go.
pub enum Sink {
    /// A callback and/or an async iterator.
    Notify {
        callback: Option<Function>,
        on_error: Option<Function>,
        iter: Iter,
    },
    /// A live query.
    Live(LiveId),
}

/// State of a subscription's async iterator.
#[derive(Default)]
pub struct Iter {
    started: bool,
    queue: VecDeque<JsValue>,
    waiting: VecDeque<Reply>,
    done: bool,
}

/// A live query being kept current.
pub struct Live {
    query: LiveQuery,
    entity: EntityRef,
    sub: Handle,
    on_change: Function,
    on_error: Option<Function>,
    change: LiveChange,
    retry: Retry,
    flush: Option<Timeout>,
    reading: bool,
    ready: Option<(Reply, JsValue)>,
}

/// A call into JS, made once the state is no longer borrowed.
pub enum Effect {
    Resolve(Reply, JsValue),
    Reject(Reply, JsValue),
    Call(Function, JsValue, JsValue),
    Publish(Message),
    /// Arm the retry timer: try again after this many milliseconds.
    Retry(RetryOf, u32),
}

/// The client's state.
pub struct Inner {
    pub mqtt: Client,
    pub prefix: String,
    pub client_id: String,
    pub qos: QoS,
    pub timeout_ms: u64,
    requests: Correlator<Pending>,
    subs: Subscriptions,
    sinks: HashMap<Handle, Sink>,
    /// Backoff of subscriptions whose re-subscribe failed.
    sub_retry: HashMap<Handle, Retry>,
    lives: HashMap<LiveId, Live>,
    next_live: LiveId,
    timer: Option<Timeout>,
    connected_before: bool,
    ended: bool,
}

/// Shared handle on the state.
pub type Shared = Rc<RefCell<Inner>>;

fn now() -> u64 {
    js_sys::Date::now() as u64
}

impl Inner {
    /// State for a client on `mqtt` (not yet subscribed to its topics).
    pub fn new(
        mqtt: Client,
        prefix: String,
        client_id: String,
        qos: QoS,
        timeout_ms: u64,
    ) -> Inner {
        let nonce = format!(
            "{}-{:x}",
            client_id,
            (js_sys::Math::random() * 4_294_967_295.0) as u32
        );
        Inner {
            mqtt,
            prefix,
            client_id,
            qos,
            timeout_ms,
            requests: Correlator::new(nonce),
            subs: Subscriptions::new(),
            sinks: HashMap::new(),
            sub_retry: HashMap::new(),
            lives: HashMap::new(),
            next_live: 0,
            timer: None,
            connected_before: false,
            ended: false,
        }
    }

    /// Track a request and return the effect that publishes it (or nothing
    /// while offline: it waits for the next connect).
    fn submit(&mut self, message: Message, pending: Pending) -> Vec<Effect> {
        if self.ended {
            return reject_pending(pending, &SpecError::new("closed", "the client was ended"));
        }
        let id = self.requests.next_id();
        let message = Message {
            id: Some(id),
            ..message
        };
        // With a persistent MQTT outbox a write goes to it at once, offline
        // or not, so that it survives a page reload (the server runs a
        // resent request once: it deduplicates by client id and request id).
        let online = self.mqtt.is_connected() || (is_write(&message) && self.mqtt.is_persistent());
        self.requests
            .submit(message, pending, now(), self.timeout_ms, online)
            .map(Effect::Publish)
            .into_iter()
            .collect()
    }
}

/// Run effects (the state must not be borrowed).
pub fn run(rc: &Shared, effects: Vec<Effect>) {
    for effect in effects {
        match effect {
            Effect::Resolve(d, v) => d.ok(&v),
            Effect::Reject(d, e) => d.reject(&e),
            Effect::Call(f, a, b) => {
                let _ = f.call2(&JsValue::UNDEFINED, &a, &b);
            }
            Effect::Publish(m) => publish(rc, m),
            Effect::Retry(of, delay) => arm_retry(rc, of, delay),
        }
    }
    arm_timer(rc);
}

/// Send a request; `pending` is settled by its response or timeout.
pub fn send(rc: &Shared, message: Message, pending: Pending) {
    let effects = rc.borrow_mut().submit(message, pending);
    run(rc, effects);
}

fn publish(rc: &Shared, message: Message) {
    let (mqtt, topic, qos) = {
        let inner = rc.borrow();
        let topic = mqttspec_proto::topic::request_topic(&inner.prefix, &inner.client_id);
        (inner.mqtt.clone(), topic, inner.qos)
    };
    let id = message.id.clone().unwrap_or_default();
    let persist = is_write(&message);
    let payload = serde_json::to_vec(&message).unwrap_or_default();
    let sent = mqtt.publish_keeping(v5::Publish::new(topic, qos, payload), persist);
    // A publish the MQTT client refuses (queue full, ended...) fails its request at once.
    let weak = Rc::downgrade(rc);
    wasm_bindgen_futures::spawn_local(async move {
        let Err(err) = wasm_bindgen_futures::JsFuture::from(sent).await else {
            return;
        };
        let Some(rc) = weak.upgrade() else { return };
        let message = field(&err, "message")
            .as_string()
            .unwrap_or_else(|| "publish failed".into());
        let pending = rc.borrow_mut().requests.cancel(&id);
        if let Some(p) = pending {
            let effects = reject_pending(p, &SpecError::new("publish_failed", message));
            run(&rc, effects);
        }
    });
}

/// A create, update or delete: what a persistent outbox keeps across reloads.
fn is_write(message: &Message) -> bool {
    matches!(
        message.operation,
        Some(Operation::Create | Operation::Update | Operation::Delete)
    )
}

/// Try `of` again in `delay` ms (the timer lives in what it retries, so it
/// is cancelled when that is closed).
fn arm_retry(rc: &Shared, of: RetryOf, delay: u32) {
    let weak = Rc::downgrade(rc);
    let timer = Timeout::new(delay, move || {
        let Some(rc) = weak.upgrade() else { return };
        let effects = {
            let mut inner = rc.borrow_mut();
            if inner.ended {
                return;
            }
            match of {
                RetryOf::Read(live) => {
                    if let Some(l) = inner.lives.get_mut(&live) {
                        l.retry.timer = None;
                    }
                    inner.reload(live)
                }
                RetryOf::Subscribe(handle) => {
                    if let Some(r) = inner.sub_retry.get_mut(&handle) {
                        r.timer = None;
                    }
                    match inner.subs.wanted(handle) {
                        // Still wanted and not re-established meanwhile.
                        Some(w) if inner.subs.server_id(handle).is_none() => {
                            let m = request::subscribe(String::new(), &w.entity, w.options.clone());
                            inner.submit(m, Pending::Subscribe(handle, None))
                        }
                        _ => Vec::new(),
                    }
                }
            }
        };
        run(&rc, effects);
    });
    let mut inner = rc.borrow_mut();
    match of {
        RetryOf::Read(live) => {
            if let Some(l) = inner.lives.get_mut(&live) {
                l.retry.timer = Some(timer);
            }
        }
        RetryOf::Subscribe(handle) => {
            if let Some(r) = inner.sub_retry.get_mut(&handle) {
                r.timer = Some(timer);
            }
        }
    }
}

/// Arm the timeout timer for the earliest request deadline.
fn arm_timer(rc: &Shared) {
    let mut inner = rc.borrow_mut();
    inner.timer = inner.requests.next_deadline().map(|deadline| {
        let weak = Rc::downgrade(rc);
        let delay = deadline.saturating_sub(now()).min(u64::from(u32::MAX)) as u32;
        Timeout::new(delay, move || {
            if let Some(rc) = weak.upgrade() {
                let effects = {
                    let mut inner = rc.borrow_mut();
                    let expired = inner.requests.expire(now());
                    expired
                        .into_iter()
                        .flat_map(|(p, e)| inner.failed(p, e))
                        .collect()
                };
                run(&rc, effects);
            }
        })
    });
}

/// Effects that reject what `pending` promised.
fn reject_pending(pending: Pending, e: &SpecError) -> Vec<Effect> {
    match pending {
        Pending::Call(d) | Pending::Unsubscribe(Some(d)) | Pending::Subscribe(_, Some((d, _))) => {
            vec![Effect::Reject(d, error_to_js(e))]
        }
        Pending::Unsubscribe(None) | Pending::Subscribe(_, None) | Pending::LiveRead(_) => {
            Vec::new()
        }
    }
}

impl Inner {
    /// A request failed (error response, timeout, publish refused).
    fn failed(&mut self, pending: Pending, e: SpecError) -> Vec<Effect> {
        match pending {
            Pending::Subscribe(handle, first) => {
                if first.is_some() {
                    // The caller never got a handle: forget it, and fail its live query if any.
                    self.subs.remove(handle);
                    if let Some(Sink::Live(live)) = self.sinks.remove(&handle) {
                        if let Some((d, _)) = self.lives.remove(&live).and_then(|l| l.ready) {
                            return vec![Effect::Reject(d, error_to_js(&e))];
                        }
                    }
                    return reject_pending(Pending::Subscribe(handle, first), &e);
                }
                if self.subs.wanted(handle).is_none() {
                    return Vec::new(); // unsubscribed meanwhile
                }
                // A re-subscribe (after a reconnect) or a live query's subscribe failed:
                // the handle would get nothing. Tell its listener and try again later.
                let delay = self.sub_retry.entry(handle).or_default().next_delay();
                let mut effects = vec![Effect::Retry(RetryOf::Subscribe(handle), delay)];
                let on_error = match self.sinks.get(&handle) {
                    Some(Sink::Notify { on_error, .. }) => on_error.clone(),
                    Some(Sink::Live(live)) => self.lives.get(live).and_then(|l| l.on_error.clone()),
                    None => None,
                };
                if let Some(f) = on_error {
                    effects.push(Effect::Call(f, error_to_js(&e), JsValue::UNDEFINED));
                }
                effects
            }
            Pending::LiveRead(live) => {
                let Some(l) = self.lives.get_mut(&live) else {
                    return Vec::new();
                };
                l.reading = false;
                match l.ready.take() {
                    Some((d, _)) => {
                        self.close_live(live);
                        vec![Effect::Reject(d, error_to_js(&e))]
                    }
                    None => {
                        // A re-read (after a reconnect or for a refill) failed: the view
                        // would stay frozen, holding notifications. Tell the listener and
                        // read again later.
                        let mut effects =
                            vec![Effect::Retry(RetryOf::Read(live), l.retry.next_delay())];
                        if let Some(f) = &l.on_error {
                            effects.push(Effect::Call(
                                f.clone(),
                                error_to_js(&e),
                                JsValue::UNDEFINED,
                            ));
                        }
                        effects
                    }
                }
            }
            other => reject_pending(other, &e),
        }
    }

    /// Forget a live query and return its subscription's server id.
    fn close_live(&mut self, live: LiveId) -> Option<String> {
        let l = self.lives.remove(&live)?;
        self.sinks.remove(&l.sub);
        self.sub_retry.remove(&l.sub);
        self.subs.remove(l.sub)
    }
}

/// A payload on `{prefix}/{client_id}/response`.
pub fn on_response(rc: &Shared, payload: &[u8]) {
    let Ok(text) = std::str::from_utf8(payload) else {
        return;
    };
    let Ok(js) = JSON::parse(text) else { return };
    let envelope = Message {
        id: field(&js, "id").as_string(),
        kind: match field(&js, "type").as_string().as_deref() {
            Some("response") => Some(MessageType::Response),
            Some("pong") => Some(MessageType::Pong),
            Some(_) => Some(MessageType::Error),
            None => None,
        },
        success: field(&js, "success").as_bool(),
        error: {
            let e = field(&js, "error");
            (e.is_object()).then(|| ErrorBody {
                code: field(&e, "code")
                    .as_string()
                    .unwrap_or_else(|| "unknown_error".into()),
                message: field(&e, "message").as_string().unwrap_or_default(),
                details: None,
            })
        },
        ..Message::default()
    };
    let effects = {
        let mut inner = rc.borrow_mut();
        let Some((pending, outcome)) = inner.requests.on_message(envelope) else {
            return;
        };
        match outcome {
            Err(e) => inner.failed(pending, e),
            Ok(_) => inner.succeeded(pending, &js, text),
        }
    };
    run(rc, effects);
}

impl Inner {
    fn succeeded(&mut self, pending: Pending, js: &JsValue, text: &str) -> Vec<Effect> {
        match pending {
            Pending::Call(d) => {
                let result = Object::new();
                let _ = Reflect::set(&result, &"data".into(), &field(js, "data"));
                let _ = Reflect::set(&result, &"metadata".into(), &field(js, "metadata"));
                vec![Effect::Resolve(d, result.into())]
            }
            Pending::Unsubscribe(d) => d
                .map(|d| Effect::Resolve(d, JsValue::UNDEFINED))
                .into_iter()
                .collect(),
            Pending::Subscribe(handle, first) => {
                let server_id = field(&field(js, "data"), "subscription_id")
                    .as_string()
                    .unwrap_or_default();
                self.sub_retry.remove(&handle);
                if !self.subs.bind(handle, server_id.clone()) {
                    // Unsubscribed while the subscribe was in flight.
                    return self.submit(
                        request::unsubscribe(String::new(), &server_id),
                        Pending::Unsubscribe(None),
                    );
                }
                first
                    .map(|(d, handle_js)| Effect::Resolve(d, handle_js))
                    .into_iter()
                    .collect()
            }
            Pending::LiveRead(live) => self.loaded(live, text),
        }
    }

    /// The read of live query `live` answered: load its rows.
    fn loaded(&mut self, live: LiveId, text: &str) -> Vec<Effect> {
        let Some(l) = self.lives.get_mut(&live) else {
            return Vec::new();
        };
        l.reading = false;
        let parsed: Result<Message, _> = serde_json::from_str(text);
        let (rows, total) = match parsed {
            Ok(m) => {
                let rows: Vec<Row> = match m.data {
                    Some(Value::Array(items)) => items
                        .into_iter()
                        .filter_map(|v| match v {
                            Value::Object(row) => Some(row),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                (
                    rows,
                    m.metadata
                        .as_ref()
                        .and_then(|md| md.get("total"))
                        .and_then(Value::as_u64),
                )
            }
            Err(e) => {
                let e = SpecError::new("invalid_response", format!("read answer: {e}"));
                return self.failed(Pending::LiveRead(live), e);
            }
        };
        l.retry = Retry::default();
        let change = l.query.load(rows, total);
        let refill = change.needs_refill;
        l.change.merge(change);
        let mut effects = self.flush_live(live);
        if let Some((d, handle_js)) = self.lives.get_mut(&live).and_then(|l| l.ready.take()) {
            effects.push(Effect::Resolve(d, handle_js));
        }
        if refill {
            effects.extend(self.reload(live));
        }
        effects
    }

    /// Read live query `live` again (unless a read is already in flight).
    fn reload(&mut self, live: LiveId) -> Vec<Effect> {
        let Some(l) = self.lives.get_mut(&live) else {
            return Vec::new();
        };
        if l.reading {
            return Vec::new();
        }
        l.reading = true;
        // A reconnect or refill reads now: a pending retry would be one read too many.
        l.retry.timer = None;
        l.query.begin_reload();
        let message = request::request(
            String::new(),
            Operation::Read,
            &l.entity,
            None,
            None,
            Some(l.query.read_options()),
        );
        self.submit(message, Pending::LiveRead(live))
    }

    /// The effect that tells live query `live`'s listener what changed.
    fn flush_live(&mut self, live: LiveId) -> Vec<Effect> {
        let Some(l) = self.lives.get_mut(&live) else {
            return Vec::new();
        };
        l.flush = None;
        let change = std::mem::take(&mut l.change);
        if change.added.is_empty()
            && change.updated.is_empty()
            && change.removed.is_empty()
            && l.ready.is_none()
        {
            return Vec::new();
        }
        let info = Object::new();
        let _ = Reflect::set(&info, &"added".into(), &to_js(&change.added));
        let _ = Reflect::set(&info, &"updated".into(), &to_js(&change.updated));
        let _ = Reflect::set(&info, &"removed".into(), &to_js(&change.removed));
        vec![Effect::Call(
            l.on_change.clone(),
            to_js(l.query.rows()),
            info.into(),
        )]
    }
}

/// A payload on `{prefix}/{client_id}/notify/{subscription_id}`.
pub fn on_notification(rc: &Shared, payload: &[u8]) {
    let Ok(note) = serde_json::from_slice::<Message>(payload) else {
        return;
    };
    let effects = {
        let mut inner = rc.borrow_mut();
        let Some(handle) = note
            .subscription_id
            .as_deref()
            .and_then(|s| inner.subs.handle_of(s))
        else {
            return;
        };
        match inner.sinks.get_mut(&handle) {
            Some(Sink::Notify { callback, iter, .. }) => {
                let js = std::str::from_utf8(payload)
                    .ok()
                    .and_then(|t| JSON::parse(t).ok())
                    .unwrap_or(JsValue::NULL);
                let mut effects = Vec::new();
                if let Some(d) = iter.waiting.pop_front() {
                    effects.push(Effect::Resolve(d, iter_result(&js, false)));
                } else if iter.started && iter.queue.len() < ITERATOR_BUFFER {
                    iter.queue.push_back(js.clone());
                }
                if let Some(f) = callback {
                    effects.push(Effect::Call(f.clone(), js, JsValue::UNDEFINED));
                }
                effects
            }
            Some(Sink::Live(live)) => {
                let live = *live;
                inner.apply_to_live(rc, live, note)
            }
            None => Vec::new(),
        }
    };
    run(rc, effects);
}

impl Inner {
    fn apply_to_live(&mut self, rc: &Shared, live: LiveId, note: Message) -> Vec<Effect> {
        let (Some(op), Some(Value::Object(row)), Some(l)) =
            (note.operation, note.data, self.lives.get_mut(&live))
        else {
            return Vec::new();
        };
        let change = l.query.apply(op, row);
        let refill = change.needs_refill;
        l.change.merge(change);
        if l.flush.is_none() && !l.query.is_loaded() {
            // Held until the read answers; the load flushes.
        } else if l.flush.is_none() {
            // Coalesce the notifications of one burst into one onChange.
            let weak = Rc::downgrade(rc);
            l.flush = Some(Timeout::new(0, move || flush_later(&weak, live)));
        }
        if refill {
            self.reload(live)
        } else {
            Vec::new()
        }
    }
}

fn flush_later(weak: &Weak<RefCell<Inner>>, live: LiveId) {
    if let Some(rc) = weak.upgrade() {
        let effects = rc.borrow_mut().flush_live(live);
        run(&rc, effects);
    }
}

/// `{value, done}` for an async iterator.
pub fn iter_result(value: &JsValue, done: bool) -> JsValue {
    let r = Object::new();
    let _ = Reflect::set(&r, &"value".into(), value);
    let _ = Reflect::set(&r, &"done".into(), &done.into());
    r.into()
}

/// The MQTT connection is up (first time or again).
pub fn on_connect(rc: &Shared) {
    let effects = {
        let mut inner = rc.borrow_mut();
        if inner.ended {
            return;
        }
        let mut effects = Vec::new();
        if std::mem::replace(&mut inner.connected_before, true) {
            // The server dropped our subscriptions when we disconnected.
            inner.sub_retry.clear();
            for (handle, wanted) in inner.subs.reset() {
                let m = request::subscribe(String::new(), &wanted.entity, wanted.options);
                effects.extend(inner.submit(m, Pending::Subscribe(handle, None)));
            }
            let lives: Vec<LiveId> = inner.lives.keys().copied().collect();
            for live in lives {
                effects.extend(inner.reload(live));
            }
        }
        effects.extend(
            inner
                .requests
                .take_outbox()
                .into_iter()
                .map(Effect::Publish),
        );
        effects
    };
    run(rc, effects);
}

/// Start a subscription feeding `sink`; the promise resolves with `handle_js(handle)`.
pub fn subscribe(
    rc: &Shared,
    entity: EntityRef,
    options: Option<Value>,
    sink: Sink,
    handle_js: impl FnOnce(Handle) -> JsValue,
) -> Promise {
    let (promise, d) = Reply::new();
    let handle = {
        let mut inner = rc.borrow_mut();
        let handle = inner.subs.add(entity.clone(), options.clone());
        inner.sinks.insert(handle, sink);
        handle
    };
    let m = request::subscribe(String::new(), &entity, options);
    send(
        rc,
        m,
        Pending::Subscribe(handle, Some((d, handle_js(handle)))),
    );
    promise
}

/// Stop subscription `handle`.
pub fn unsubscribe(rc: &Shared, handle: Handle) -> Promise {
    let (promise, d) = Reply::new();
    let (server_id, waiting) = {
        let mut inner = rc.borrow_mut();
        let waiting = match inner.sinks.remove(&handle) {
            Some(Sink::Notify { mut iter, .. }) => {
                iter.done = true;
                iter.waiting.drain(..).collect()
            }
            _ => Vec::new(),
        };
        inner.sub_retry.remove(&handle);
        (inner.subs.remove(handle), waiting)
    };
    let ended = waiting
        .into_iter()
        .map(|w| Effect::Resolve(w, iter_result(&JsValue::UNDEFINED, true)));
    run(rc, ended.collect());
    unsubscribe_server(rc, server_id, d);
    promise
}

/// Unsubscribe `server_id` on the server (if the subscription got that far)
/// and settle `reply` when done.
fn unsubscribe_server(rc: &Shared, server_id: Option<String>, reply: Reply) {
    match server_id {
        Some(id) => send(
            rc,
            request::unsubscribe(String::new(), &id),
            Pending::Unsubscribe(Some(reply)),
        ),
        None => reply.ok(&JsValue::UNDEFINED),
    }
}

/// The next notification of subscription `handle` for its async iterator.
pub fn next(rc: &Shared, handle: Handle) -> Promise {
    let (promise, d) = Reply::new();
    let effect = {
        let mut inner = rc.borrow_mut();
        match inner.sinks.get_mut(&handle) {
            Some(Sink::Notify { iter, .. }) if !iter.done => {
                iter.started = true;
                match iter.queue.pop_front() {
                    Some(v) => Effect::Resolve(d, iter_result(&v, false)),
                    None => {
                        iter.waiting.push_back(d);
                        return promise;
                    }
                }
            }
            _ => Effect::Resolve(d, iter_result(&JsValue::UNDEFINED, true)),
        }
    };
    run(rc, vec![effect]);
    promise
}

/// Start a live query; the promise resolves with `handle_js(live)` once the
/// first rows are loaded (after `onChange` saw them).
pub fn live_query(
    rc: &Shared,
    entity: EntityRef,
    query: LiveQuery,
    on_change: Function,
    on_error: Option<Function>,
    handle_js: impl FnOnce(LiveId) -> JsValue,
) -> Promise {
    let (promise, d) = Reply::new();
    let options = Some(query.subscribe_options());
    let effects = {
        let mut inner = rc.borrow_mut();
        inner.next_live += 1;
        let live = inner.next_live;
        let sub = inner.subs.add(entity.clone(), options.clone());
        inner.sinks.insert(sub, Sink::Live(live));
        let ready = Some((d, handle_js(live)));
        inner.lives.insert(
            live,
            Live {
                query,
                entity: entity.clone(),
                sub,
                on_change,
                on_error,
                change: LiveChange::default(),
                retry: Retry::default(),
                flush: None,
                reading: false,
                ready,
            },
        );
        // Subscribe first, then read: a change between the two is held and applied on the read.
        let mut effects = inner.submit(
            request::subscribe(String::new(), &entity, options),
            Pending::Subscribe(sub, None),
        );
        effects.extend(inner.reload(live));
        effects
    };
    run(rc, effects);
    promise
}

/// The server's id of subscription `handle` (None until confirmed).
pub fn subscription_id(rc: &Shared, handle: Handle) -> Option<String> {
    rc.borrow().subs.server_id(handle).map(str::to_string)
}

/// The server's subscription id feeding live query `live`.
pub fn live_subscription_id(rc: &Shared, live: LiveId) -> Option<String> {
    let inner = rc.borrow();
    let sub = inner.lives.get(&live)?.sub;
    inner.subs.server_id(sub).map(str::to_string)
}

/// The rows of live query `live` now.
pub fn live_rows(rc: &Shared, live: LiveId) -> JsValue {
    rc.borrow()
        .lives
        .get(&live)
        .map(|l| to_js(l.query.rows()))
        .unwrap_or_else(|| js_sys::Array::new().into())
}

/// Stop live query `live`.
pub fn close_live(rc: &Shared, live: LiveId) -> Promise {
    let (promise, d) = Reply::new();
    let server_id = rc.borrow_mut().close_live(live);
    unsubscribe_server(rc, server_id, d);
    promise
}

/// End the client: reject what waits with `closed`, close the connection.
pub fn end(rc: &Shared) {
    let (mqtt, effects) = {
        let mut inner = rc.borrow_mut();
        inner.ended = true;
        inner.timer = None;
        let closed: Vec<Effect> = inner
            .requests
            .close("the client was ended")
            .into_iter()
            .flat_map(|(p, e)| reject_pending(p, &e))
            .collect();
        let mut effects = closed;
        for sink in inner.sinks.drain().map(|(_, s)| s) {
            if let Sink::Notify { mut iter, .. } = sink {
                effects.extend(
                    iter.waiting
                        .drain(..)
                        .map(|w| Effect::Resolve(w, iter_result(&JsValue::UNDEFINED, true))),
                );
            }
        }
        inner.lives.clear();
        inner.sub_retry.clear();
        (inner.mqtt.clone(), effects)
    };
    run(rc, effects);
    mqtt.end();
}
