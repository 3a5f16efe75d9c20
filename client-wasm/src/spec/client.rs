//! The browser driver of the MQTTSpec client. The state machine (requests,
//! re-subscribes and re-reads after reconnects, live queries, retries) is
//! `mqttspec_client::Lifecycle`; this module gives it MQTT (requests to
//! `{prefix}/{client_id}/request`, `response` and `notify/+` messages in),
//! timers, and JS: promises, subscription callbacks and async iterators,
//! live-query listeners.
//!
//! Re-entrancy rule (as in the MQTT driver): JS is never called while the
//! state is borrowed; the core's effects are run after the borrow ends.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use gloo_timers::callback::Timeout;
use js_sys::{Function, Object, Promise, Reflect, JSON};
use mqttspec_client::request::EntityRef;
use mqttspec_client::subscriptions::Handle;
use mqttspec_client::{Answer, Effect, Lifecycle, LiveQuery, RetryOf, Routed, SpecError};
use mqttspec_proto::{ErrorBody, Message, MessageType, Operation};
use serde_json::Value;
use wasm_bindgen::prelude::*;

use super::json::{error_to_js, field, to_js};
use super::mqtt::MqttClient;
use crate::mqtt::QoS;
use crate::reply::Reply;

pub use mqttspec_client::LiveId;

/// Notifications kept for an async iterator that is not reading fast enough.
const ITERATOR_BUFFER: usize = 10_000;

/// The JS side of a subscription: its callbacks and async iterator.
pub struct Sink {
    /// Called with every notification.
    pub callback: Option<Function>,
    /// Called when the subscription is lost and being retried.
    pub on_error: Option<Function>,
    iter: Iter,
    /// What the subscribe promise resolves with.
    handle_js: Option<JsValue>,
}

impl Sink {
    /// A subscription's callbacks.
    pub fn new(callback: Option<Function>, on_error: Option<Function>) -> Sink {
        Sink {
            callback,
            on_error,
            iter: Iter::default(),
            handle_js: None,
        }
    }
}

/// State of a subscription's async iterator.
#[derive(Default)]
struct Iter {
    started: bool,
    queue: VecDeque<JsValue>,
    waiting: VecDeque<Reply>,
    done: bool,
}

/// The JS side of a live query.
struct Live {
    on_change: Function,
    on_error: Option<Function>,
    /// What the liveQuery promise resolves with.
    handle_js: Option<JsValue>,
    flush: Option<Timeout>,
    retry: Option<Timeout>,
}

/// The client's state.
pub struct Inner {
    pub mqtt: MqttClient,
    /// The MQTT client keeps publishes in IndexedDB (`store: 'indexeddb'`).
    pub persistent: bool,
    pub prefix: String,
    pub client_id: String,
    pub qos: QoS,
    core: Lifecycle<Reply>,
    sinks: HashMap<Handle, Sink>,
    lives: HashMap<LiveId, Live>,
    /// Timers of subscriptions whose re-subscribe failed.
    sub_retry: HashMap<Handle, Timeout>,
    timer: Option<Timeout>,
}

/// Shared handle on the state.
pub type Shared = Rc<RefCell<Inner>>;

fn now() -> u64 {
    js_sys::Date::now() as u64
}

fn random() -> f64 {
    js_sys::Math::random()
}

impl Inner {
    /// State for a client on `mqtt` (not yet subscribed to its topics).
    pub fn new(
        mqtt: MqttClient,
        persistent: bool,
        prefix: String,
        client_id: String,
        qos: QoS,
        timeout_ms: u64,
    ) -> Inner {
        let nonce = format!("{}-{:x}", client_id, (random() * 4_294_967_295.0) as u32);
        Inner {
            mqtt,
            persistent,
            prefix,
            client_id,
            qos,
            core: Lifecycle::new(nonce, timeout_ms, random),
            sinks: HashMap::new(),
            lives: HashMap::new(),
            sub_retry: HashMap::new(),
            timer: None,
        }
    }

    fn online(&self) -> bool {
        self.mqtt.connected()
    }
}

/// A create, update or delete: what a persistent outbox keeps across reloads.
fn is_write(message: &Message) -> bool {
    matches!(
        message.operation,
        Some(Operation::Create | Operation::Update | Operation::Delete)
    )
}

/// Run the core's effects (the state must not be borrowed). `response` is
/// the JS parse of the response that produced them, if any.
fn run(rc: &Shared, effects: Vec<Effect<Reply>>, response: Option<&JsValue>) {
    for effect in effects {
        match effect {
            Effect::Publish(m) => publish(rc, *m),
            Effect::Resolve(reply, answer) => {
                let value = answered(rc, answer, response);
                reply.ok(&value);
            }
            Effect::Reject(reply, e) => reply.reject(&error_to_js(&e)),
            Effect::Dropped(handle) => {
                rc.borrow_mut().sinks.remove(&handle);
            }
            Effect::SubscriptionFailed(handle, e) => {
                let f = rc
                    .borrow()
                    .sinks
                    .get(&handle)
                    .and_then(|s| s.on_error.clone());
                call(f, &error_to_js(&e), &JsValue::UNDEFINED);
            }
            Effect::LiveFailed(live, e) => {
                let f = rc
                    .borrow()
                    .lives
                    .get(&live)
                    .and_then(|l| l.on_error.clone());
                call(f, &error_to_js(&e), &JsValue::UNDEFINED);
            }
            Effect::LiveChanged(live, change) => {
                let (f, rows) = {
                    let inner = rc.borrow();
                    let f = inner.lives.get(&live).map(|l| l.on_change.clone());
                    (f, to_js(inner.core.live_rows(live)))
                };
                let info = Object::new();
                let _ = Reflect::set(&info, &"added".into(), &to_js(&change.added));
                let _ = Reflect::set(&info, &"updated".into(), &to_js(&change.updated));
                let _ = Reflect::set(&info, &"removed".into(), &to_js(&change.removed));
                call(f, &rows, &info.into());
            }
            Effect::FlushSoon(live) => flush_soon(rc, live),
            Effect::Retry(of, delay) => arm_retry(rc, of, delay),
        }
    }
    arm_timer(rc);
}

fn call(f: Option<Function>, a: &JsValue, b: &JsValue) {
    if let Some(f) = f {
        let _ = f.call2(&JsValue::UNDEFINED, a, b);
    }
}

/// What a promise resolves with for `answer`.
fn answered(rc: &Shared, answer: Answer, response: Option<&JsValue>) -> JsValue {
    match answer {
        Answer::Response => {
            let response = response.cloned().unwrap_or(JsValue::NULL);
            let result = Object::new();
            let _ = Reflect::set(&result, &"data".into(), &field(&response, "data"));
            let _ = Reflect::set(&result, &"metadata".into(), &field(&response, "metadata"));
            result.into()
        }
        Answer::Subscribed(handle) => rc
            .borrow_mut()
            .sinks
            .get_mut(&handle)
            .and_then(|s| s.handle_js.take())
            .unwrap_or(JsValue::UNDEFINED),
        Answer::LiveReady(live) => rc
            .borrow_mut()
            .lives
            .get_mut(&live)
            .and_then(|l| l.handle_js.take())
            .unwrap_or(JsValue::UNDEFINED),
        Answer::Unsubscribed => JsValue::UNDEFINED,
    }
}

/// Send a plain request; `reply` is settled by its response or timeout.
pub fn call_request(rc: &Shared, message: Message, reply: Reply) {
    let effects = {
        let mut inner = rc.borrow_mut();
        // With a persistent MQTT outbox a write goes to it at once, offline
        // or not, so that it survives a page reload (the server runs a
        // resent request once: it deduplicates by client id and request id).
        let online = inner.online() || (is_write(&message) && inner.persistent);
        inner.core.call(message, reply, now(), online)
    };
    run(rc, effects, None);
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
    // A read is not kept in the outbox: pointless to resend after a reload.
    let options = Object::new();
    let _ = Reflect::set(&options, &"qos".into(), &(qos as u8).into());
    let _ = Reflect::set(&options, &"store".into(), &persist.into());
    let sent = mqtt.publish(&topic, &js_sys::Uint8Array::from(&payload[..]), &options);
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
        let effects = rc
            .borrow_mut()
            .core
            .publish_failed(&id, SpecError::new("publish_failed", message));
        run(&rc, effects, None);
    });
}

/// Call the core's `flush` for `live` once the current burst of
/// notifications has been handled.
fn flush_soon(rc: &Shared, live: LiveId) {
    let weak = Rc::downgrade(rc);
    let timer = Timeout::new(0, move || {
        if let Some(rc) = weak.upgrade() {
            let effects = {
                let mut inner = rc.borrow_mut();
                if let Some(l) = inner.lives.get_mut(&live) {
                    l.flush = None;
                }
                inner.core.flush(live)
            };
            run(&rc, effects, None);
        }
    });
    if let Some(l) = rc.borrow_mut().lives.get_mut(&live) {
        l.flush = Some(timer);
    }
}

/// Try `of` again in `delay` ms (the timer lives with what it retries, so it
/// is cancelled when that is closed).
fn arm_retry(rc: &Shared, of: RetryOf, delay: u32) {
    let weak = Rc::downgrade(rc);
    let timer = Timeout::new(delay, move || {
        let Some(rc) = weak.upgrade() else { return };
        let effects = {
            let mut inner = rc.borrow_mut();
            let online = inner.online();
            inner.core.retry(of, now(), online)
        };
        run(&rc, effects, None);
    });
    let mut inner = rc.borrow_mut();
    match of {
        RetryOf::Read(live) => {
            if let Some(l) = inner.lives.get_mut(&live) {
                l.retry = Some(timer);
            }
        }
        RetryOf::Subscribe(handle) => {
            inner.sub_retry.insert(handle, timer);
        }
    }
}

/// Arm the timeout timer for the earliest request deadline.
fn arm_timer(rc: &Shared) {
    let mut inner = rc.borrow_mut();
    inner.timer = inner.core.next_deadline().map(|deadline| {
        let weak = Rc::downgrade(rc);
        let delay = deadline.saturating_sub(now()).min(u64::from(u32::MAX)) as u32;
        Timeout::new(delay, move || {
            if let Some(rc) = weak.upgrade() {
                let effects = rc.borrow_mut().core.expire(now());
                run(&rc, effects, None);
            }
        })
    });
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
    let whole = || {
        serde_json::from_str::<Message>(text)
            .map_err(|e| SpecError::new("invalid_response", format!("answer: {e}")))
    };
    let effects = {
        let mut inner = rc.borrow_mut();
        let online = inner.online();
        inner.core.on_response(envelope, whole, now(), online)
    };
    run(rc, effects, Some(&js));
}

/// A payload on `{prefix}/{client_id}/notify/{subscription_id}`.
pub fn on_notification(rc: &Shared, payload: &[u8]) {
    let Ok(note) = serde_json::from_slice::<Message>(payload) else {
        return;
    };
    let routed = {
        let mut inner = rc.borrow_mut();
        let online = inner.online();
        inner.core.on_notification(note, now(), online)
    };
    match routed {
        Routed::Handled(effects) => run(rc, effects, None),
        Routed::Subscription(handle) => notify(rc, handle, payload),
        Routed::Nowhere => {}
    }
}

/// Hand a notification to subscription `handle`'s iterator and callback.
fn notify(rc: &Shared, handle: Handle, payload: &[u8]) {
    let js = std::str::from_utf8(payload)
        .ok()
        .and_then(|t| JSON::parse(t).ok())
        .unwrap_or(JsValue::NULL);
    let (waiter, callback) = {
        let mut inner = rc.borrow_mut();
        let Some(sink) = inner.sinks.get_mut(&handle) else {
            return;
        };
        let iter = &mut sink.iter;
        let waiter = iter.waiting.pop_front();
        if waiter.is_none() && iter.started && iter.queue.len() < ITERATOR_BUFFER {
            iter.queue.push_back(js.clone());
        }
        (waiter, sink.callback.clone())
    };
    if let Some(w) = waiter {
        w.ok(&iter_result(&js, false));
    }
    call(callback, &js, &JsValue::UNDEFINED);
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
        inner.sub_retry.clear();
        inner.core.on_connect(now())
    };
    run(rc, effects, None);
}

/// Start a subscription feeding `sink`; the promise resolves with
/// `handle_js(handle)` once the server confirmed it.
pub fn subscribe(
    rc: &Shared,
    entity: EntityRef,
    options: Option<Value>,
    mut sink: Sink,
    handle_js: impl FnOnce(Handle) -> JsValue,
) -> Promise {
    let (promise, reply) = Reply::new();
    let effects = {
        let mut inner = rc.borrow_mut();
        let online = inner.online();
        let (handle, effects) = inner.core.subscribe(entity, options, reply, now(), online);
        sink.handle_js = Some(handle_js(handle));
        inner.sinks.insert(handle, sink);
        effects
    };
    run(rc, effects, None);
    promise
}

/// Stop subscription `handle` (its iterator ends).
pub fn unsubscribe(rc: &Shared, handle: Handle) -> Promise {
    let (promise, reply) = Reply::new();
    let (waiting, effects) = {
        let mut inner = rc.borrow_mut();
        let waiting: Vec<Reply> = match inner.sinks.remove(&handle) {
            Some(mut sink) => {
                sink.iter.done = true;
                sink.iter.waiting.drain(..).collect()
            }
            None => Vec::new(),
        };
        inner.sub_retry.remove(&handle);
        let online = inner.online();
        (
            waiting,
            inner.core.unsubscribe(handle, reply, now(), online),
        )
    };
    for w in waiting {
        w.ok(&iter_result(&JsValue::UNDEFINED, true));
    }
    run(rc, effects, None);
    promise
}

/// The next notification of subscription `handle` for its async iterator.
pub fn next(rc: &Shared, handle: Handle) -> Promise {
    let (promise, reply) = Reply::new();
    let ready = {
        let mut inner = rc.borrow_mut();
        match inner.sinks.get_mut(&handle) {
            Some(Sink { iter, .. }) if !iter.done => {
                iter.started = true;
                match iter.queue.pop_front() {
                    Some(v) => iter_result(&v, false),
                    None => {
                        iter.waiting.push_back(reply);
                        return promise;
                    }
                }
            }
            _ => iter_result(&JsValue::UNDEFINED, true),
        }
    };
    reply.ok(&ready);
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
    let (promise, reply) = Reply::new();
    let effects = {
        let mut inner = rc.borrow_mut();
        let online = inner.online();
        let (live, effects) = inner.core.live_query(entity, query, reply, now(), online);
        inner.lives.insert(
            live,
            Live {
                on_change,
                on_error,
                handle_js: Some(handle_js(live)),
                flush: None,
                retry: None,
            },
        );
        effects
    };
    run(rc, effects, None);
    promise
}

/// The server's id of subscription `handle` (None until confirmed).
pub fn subscription_id(rc: &Shared, handle: Handle) -> Option<String> {
    rc.borrow().core.subscription_id(handle).map(str::to_string)
}

/// The server's subscription id feeding live query `live`.
pub fn live_subscription_id(rc: &Shared, live: LiveId) -> Option<String> {
    rc.borrow()
        .core
        .live_subscription_id(live)
        .map(str::to_string)
}

/// The rows of live query `live` now.
pub fn live_rows(rc: &Shared, live: LiveId) -> JsValue {
    to_js(rc.borrow().core.live_rows(live))
}

/// Stop live query `live`.
pub fn close_live(rc: &Shared, live: LiveId) -> Promise {
    let (promise, reply) = Reply::new();
    let effects = {
        let mut inner = rc.borrow_mut();
        inner.lives.remove(&live);
        let online = inner.online();
        inner.core.close_live(live, reply, now(), online)
    };
    run(rc, effects, None);
    promise
}

/// End the client: reject what waits with `closed`, end iterators, close
/// the connection.
pub fn end(rc: &Shared) {
    let (mqtt, effects, iterators) = {
        let mut inner = rc.borrow_mut();
        inner.timer = None;
        inner.sub_retry.clear();
        inner.lives.clear();
        let iterators: Vec<Reply> = inner
            .sinks
            .drain()
            .flat_map(|(_, mut s)| s.iter.waiting.drain(..).collect::<Vec<_>>())
            .collect();
        (inner.mqtt.clone(), inner.core.end(), iterators)
    };
    for w in iterators {
        w.ok(&iter_result(&JsValue::UNDEFINED, true));
    }
    run(rc, effects, None);
    let _ = mqtt.end();
}
