//! The browser driver of the sans-IO session: one `web_sys::WebSocket`
//! (subprotocol `mqtt`, binary frames, one MQTT packet per message), timers
//! from gloo-timers for keep alive and reconnection (exponential backoff
//! with jitter), local dispatch of messages to per-filter handlers, and
//! promises for every acknowledged operation.
//!
//! [`Client`] is the Rust API (used by the JS wrapper in `js.rs` and by other
//! modules of this crate); it is a cheap handle on shared state.
//!
//! Re-entrancy rule: JS callbacks are never called while the state is
//! borrowed, so they may call back into the client (publish from a message
//! handler, `end()` from an error handler...).
//!
//! Delivery rule: the session acknowledges a message when it is taken from
//! it, so events are taken one at a time and handed to the application at
//! once. After the first CONNACK resolves the `connect()` promise, taking
//! events pauses for one task: the code awaiting `connect()` runs first and
//! can register its `message` listener before the messages of a resumed
//! session (which may arrive in the same WebSocket message as CONNACK) are
//! delivered and acknowledged. Listeners may also be registered before
//! connecting ([`Client::new`], then [`Client::open`]).

use std::cell::RefCell;
use std::rc::Rc;

use backoff_core::Backoff;
use gloo_timers::callback::Timeout;
use js_sys::{Function, Promise};
use mqtt_session::ids::ById;
use mqtt_session::{topic, v5, Event, Message, QoS, Session, SubscribeFilter};
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, CloseEvent, MessageEvent, VisibilityState, WebSocket, Window};

use super::error::ClientError;
use super::options::ClientOptions;
use super::outbox::Outbox;
use crate::reply::Reply;
use crate::timer::Timer;

/// A message handler registered with [`Client::subscribe`].
pub type Handler = Rc<dyn Fn(&Message)>;

/// Application-visible state changes, as named in `on(event, cb)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Every received message (before per-filter handlers).
    Message,
    /// CONNACK received (first connection and every reconnection).
    Connect,
    /// A reconnection attempt starts.
    Reconnect,
    /// A working connection was lost.
    Offline,
    /// The WebSocket closed (after `offline`, or when a connection attempt failed).
    Close,
    /// Something failed (connection refused, malformed packet, keep alive timeout...).
    Error,
}

impl EventKind {
    /// The kind named `name` (`"message"`, `"connect"`...).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "message" => EventKind::Message,
            "connect" => EventKind::Connect,
            "reconnect" => EventKind::Reconnect,
            "offline" => EventKind::Offline,
            "close" => EventKind::Close,
            "error" => EventKind::Error,
            _ => return None,
        })
    }
}

/// The closures attached to the current WebSocket (kept alive with it).
struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    fn detach(&self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}

/// The page events a client reacts to: `online` (the browser has a network
/// again) and `visibilitychange` (a hidden tab is shown). Absent where there
/// is no `window` (in a Worker).
struct PageEvents {
    window: Window,
    on_online: Closure<dyn FnMut()>,
    on_visible: Closure<dyn FnMut()>,
}

impl PageEvents {
    fn listen(rc: &Shared) -> Option<PageEvents> {
        let window = web_sys::window()?;
        let document = window.document()?;
        let weak = Rc::downgrade(rc);
        let on_online = Closure::<dyn FnMut()>::new(move || {
            if let Some(rc) = weak.upgrade() {
                wake(&rc);
            }
        });
        let weak = Rc::downgrade(rc);
        let shown = document.clone();
        let on_visible = Closure::<dyn FnMut()>::new(move || {
            if shown.visibility_state() == VisibilityState::Visible {
                if let Some(rc) = weak.upgrade() {
                    wake(&rc);
                }
            }
        });
        let _ =
            window.add_event_listener_with_callback("online", on_online.as_ref().unchecked_ref());
        let _ = document.add_event_listener_with_callback(
            "visibilitychange",
            on_visible.as_ref().unchecked_ref(),
        );
        Some(PageEvents {
            window,
            on_online,
            on_visible,
        })
    }

    fn detach(&self) {
        let _ = self
            .window
            .remove_event_listener_with_callback("online", self.on_online.as_ref().unchecked_ref());
        if let Some(document) = self.window.document() {
            let _ = document.remove_event_listener_with_callback(
                "visibilitychange",
                self.on_visible.as_ref().unchecked_ref(),
            );
        }
    }
}

/// What a finished SUBSCRIBE resolves to.
struct PendingSub {
    reply: Reply,
    filters: Vec<String>,
    /// The handler registered for `filters`, dropped for the ones refused.
    handler: Option<Handler>,
}

struct Inner {
    url: String,
    opts: ClientOptions,
    session: Session,
    socket: Option<Socket>,
    /// Sockets replaced while one of their callbacks may be running.
    retired: Vec<Socket>,
    /// The `connect()` promises and the value they resolve with.
    connect_replies: Vec<Reply>,
    /// What `connect()` resolves with (the JS wrapper), set by [`Client::open`].
    wrapped: Option<JsValue>,
    connected_once: bool,
    /// Events are not taken from the session (and so not acknowledged)
    /// until the code awaiting `connect()` had its turn.
    holding: bool,
    /// `sessionPresent` of the last CONNACK.
    session_present: bool,
    ended: bool,
    /// Delays between reconnection attempts.
    backoff: Backoff,
    publishes: ById<Reply>,
    subscribes: ById<PendingSub>,
    unsubscribes: ById<Reply>,
    handlers: Vec<(String, Handler)>,
    listeners: Vec<(EventKind, Function)>,
    timer: Option<Timer>,
    timer_at: u64,
    reconnect_timer: Option<Timer>,
    /// Timers whose callback is running (dropped at the next firing).
    fired: Vec<Timer>,
    /// `online` / `visibilitychange` listeners, from [`Client::open`] to the end.
    page: Option<PageEvents>,
    /// The IndexedDB outbox (`store: 'indexeddb'`), once open.
    outbox: Option<Outbox>,
    /// Held publishes made before the outbox was open, written once it is.
    unstored: Vec<v5::Publish>,
}

type Shared = Rc<RefCell<Inner>>;

/// Handle on an MQTT connection. Clones share the connection.
#[derive(Clone)]
pub struct Client {
    inner: Shared,
}

fn now() -> u64 {
    js_sys::Date::now() as u64
}

impl Client {
    /// A client that is not connected yet: register listeners, then call
    /// [`Client::open`].
    pub fn new(url: &str, opts: ClientOptions) -> Client {
        let backoff = Backoff::from_millis(opts.reconnect_period_ms, opts.max_reconnect_delay_ms);
        Client {
            inner: Rc::new(RefCell::new(Inner {
                url: url.to_string(),
                session: Session::new(opts.session.clone()),
                opts,
                socket: None,
                retired: Vec::new(),
                connect_replies: Vec::new(),
                wrapped: None,
                connected_once: false,
                holding: false,
                session_present: false,
                ended: false,
                backoff,
                publishes: ById::default(),
                subscribes: ById::default(),
                unsubscribes: ById::default(),
                handlers: Vec::new(),
                listeners: Vec::new(),
                timer: None,
                timer_at: 0,
                reconnect_timer: None,
                fired: Vec::new(),
                page: None,
                outbox: None,
                unstored: Vec::new(),
            })),
        }
    }

    /// Open the WebSocket (the first call only) and resolve once CONNACK
    /// accepted the connection, with `wrapped` (the JS API's object). Rejects
    /// if the first connection attempt fails (later losses are handled by
    /// reconnection) or the client was ended. Calls after the first wait for
    /// the same first connection.
    pub fn open(&self, wrapped: JsValue) -> Promise {
        let (promise, reply) = Reply::new();
        let start = {
            let mut inner = self.inner.borrow_mut();
            if inner.ended {
                reply.fail(&ClientError::ended());
                return promise;
            }
            if inner.connected_once {
                reply.ok(&wrapped);
                return promise;
            }
            inner.connect_replies.push(reply);
            inner
                .wrapped
                .is_none()
                .then(|| inner.wrapped = Some(wrapped))
        };
        if start.is_some() {
            let page = PageEvents::listen(&self.inner);
            let persistent = {
                let mut inner = self.inner.borrow_mut();
                inner.page = page;
                inner.opts.persistent
            };
            if persistent {
                open_outbox(&self.inner);
            } else {
                open_socket(&self.inner);
            }
        }
        promise
    }

    /// [`Client::new`] and [`Client::open`] with `wrap(client)`.
    pub fn connect(
        url: &str,
        opts: ClientOptions,
        wrap: impl FnOnce(Client) -> JsValue,
    ) -> Promise {
        let client = Client::new(url, opts);
        let wrapped = wrap(client.clone());
        client.open(wrapped)
    }

    /// `sessionPresent` of the last CONNACK (false before the first).
    pub fn session_present(&self) -> bool {
        self.inner.borrow().session_present
    }

    /// Register a listener for a state event or for every message.
    pub fn on(&self, kind: EventKind, listener: Function) {
        self.inner.borrow_mut().listeners.push((kind, listener));
    }

    /// Remove a listener added with [`Client::on`].
    pub fn off(&self, kind: EventKind, listener: &Function) {
        self.inner
            .borrow_mut()
            .listeners
            .retain(|(k, f)| !(*k == kind && f == listener));
    }

    /// CONNACK received and the connection up.
    pub fn is_connected(&self) -> bool {
        self.inner.borrow().session.is_connected()
    }

    /// Publish; the promise resolves when the QoS flow completes (QoS 0:
    /// when sent or queued) and rejects with the reason otherwise.
    pub fn publish(&self, publish: v5::Publish) -> Promise {
        self.publish_keeping(publish, true)
    }

    /// The client keeps QoS 1/2 publishes in IndexedDB (`store: 'indexeddb'`).
    pub fn is_persistent(&self) -> bool {
        self.inner.borrow().opts.persistent
    }

    /// [`Client::publish`]; with `persist` false the publish is not written
    /// to the IndexedDB outbox even if the client has one (a read that is
    /// pointless to resend after a reload).
    pub fn publish_keeping(&self, publish: v5::Publish, persist: bool) -> Promise {
        let (promise, reply) = Reply::new();
        let to_store = {
            let mut inner = self.inner.borrow_mut();
            let persistent = persist && inner.opts.persistent;
            let copy = persistent.then(|| publish.clone());
            let published = if persistent {
                inner.session.publish_held(publish)
            } else {
                inner.session.publish(publish)
            };
            match published {
                Ok(Some(pkid)) => {
                    inner.publishes.push(pkid, reply);
                    copy.map(|mut p| {
                        p.pkid = pkid;
                        p
                    })
                }
                Ok(None) => {
                    reply.ok(&JsValue::UNDEFINED);
                    None
                }
                Err(e) => {
                    reply.fail(&e.into());
                    None
                }
            }
        };
        if let Some(p) = to_store {
            store_then_release(&self.inner, p);
        }
        pump(&self.inner);
        promise
    }

    /// Subscribe; `handler` (if any) receives the messages matching these
    /// filters. The promise resolves with the granted QoS per filter and
    /// rejects if the server refused one of them.
    pub fn subscribe(&self, filters: Vec<(String, QoS)>, handler: Option<Handler>) -> Promise {
        let (promise, reply) = Reply::new();
        {
            let mut inner = self.inner.borrow_mut();
            let names: Vec<String> = filters.iter().map(|(f, _)| f.clone()).collect();
            let request = filters
                .into_iter()
                .map(|(f, q)| SubscribeFilter::new(f, q))
                .collect();
            match inner.session.subscribe(request) {
                Ok(pkid) => {
                    if let Some(h) = &handler {
                        for f in &names {
                            inner.handlers.push((f.clone(), h.clone()));
                        }
                    }
                    inner.subscribes.push(
                        pkid,
                        PendingSub {
                            reply,
                            filters: names,
                            handler,
                        },
                    );
                }
                Err(e) => reply.fail(&e.into()),
            }
        }
        pump(&self.inner);
        promise
    }

    /// Unsubscribe and drop the local handlers of these filters.
    pub fn unsubscribe(&self, filters: Vec<String>) -> Promise {
        let (promise, reply) = Reply::new();
        {
            let mut inner = self.inner.borrow_mut();
            inner.handlers.retain(|(f, _)| !filters.contains(f));
            match inner.session.unsubscribe(filters) {
                Ok(pkid) => {
                    inner.unsubscribes.push(pkid, reply);
                }
                Err(e) => reply.fail(&e.into()),
            }
        }
        pump(&self.inner);
        promise
    }

    /// Drop the connection without DISCONNECT, as a network failure would:
    /// the broker publishes the last will, and the client reconnects (unless
    /// reconnection is disabled) and resends what was not acknowledged.
    pub fn drop_connection(&self) {
        let open = {
            let inner = self.inner.borrow();
            !inner.ended && inner.socket.is_some()
        };
        if open {
            connection_closed(&self.inner, None);
        }
    }

    /// Close cleanly: DISCONNECT (so the will is not published), close the
    /// socket, stop timers and reconnection, reject pending operations.
    pub fn end(&self) {
        let (listeners, was_open) = {
            let mut inner = self.inner.borrow_mut();
            if inner.ended {
                return;
            }
            inner.session.end();
            flush(&mut inner);
            let was_open = inner.socket.is_some();
            shutdown(&mut inner, &ClientError::ended());
            (listeners_of(&inner, EventKind::Close), was_open)
        };
        release_later(&self.inner);
        if was_open {
            // No reconnection: an info object without `reconnectInMs`.
            emit(&listeners, &[&js_sys::Object::new().into()]);
        }
    }
}

/// `store: 'indexeddb'`: open the outbox, give what a previous page left in
/// it back to the session, write the publishes made meanwhile, then connect.
/// Without IndexedDB the first connection fails with `STORE_FAILED`.
fn open_outbox(rc: &Shared) {
    let (url, client_id) = {
        let inner = rc.borrow();
        (inner.url.clone(), inner.opts.session.client_id.clone())
    };
    let me = rc.clone();
    Outbox::open(&url, &client_id, move |opened| {
        let (outbox, restored) = match opened {
            Ok(o) => o,
            Err(e) => {
                shutdown(&mut me.borrow_mut(), &e);
                release_later(&me);
                emit_kind(&me, EventKind::Error, &[&e.to_js()]);
                return;
            }
        };
        let unstored = {
            let mut inner = me.borrow_mut();
            if inner.ended {
                return;
            }
            for r in restored {
                // A record whose id is taken (it cannot be, written by one
                // session) is skipped rather than sent twice.
                let _ = inner.session.restore(r.publish, r.released);
            }
            inner.outbox = Some(outbox);
            std::mem::take(&mut inner.unstored)
        };
        for p in unstored {
            store_then_release(&me, p);
        }
        open_socket(&me);
    });
}

/// Write held publish `p` to the outbox, then let the session send it (also
/// when the write failed: the publish goes out, unpersisted, and the
/// application hears of it through an `error` event).
fn store_then_release(rc: &Shared, p: v5::Publish) {
    let pkid = p.pkid;
    let weak = Rc::downgrade(rc);
    let mut inner = rc.borrow_mut();
    let Some(outbox) = &mut inner.outbox else {
        inner.unstored.push(p);
        return;
    };
    outbox.put(&p, move |written| {
        let Some(rc) = weak.upgrade() else { return };
        let released = rc.borrow_mut().session.release(pkid);
        if let Err(e) = written {
            emit_kind(&rc, EventKind::Error, &[&e.to_js()]);
        }
        match released {
            Ok(()) => pump(&rc),
            Err(e) => fail_connection(&rc, e.into()),
        }
    });
}

/// Everything stops: socket closed, timers cancelled, operations rejected.
fn shutdown(inner: &mut Inner, err: &ClientError) {
    inner.ended = true;
    if let Some(s) = inner.socket.take() {
        s.detach();
        inner.retired.push(s);
    }
    inner.timer = None;
    inner.reconnect_timer = None;
    // Held publishes waiting for the outbox: their promises fail below.
    inner.unstored.clear();
    if let Some(page) = &inner.page {
        page.detach();
    }
    for reply in inner.connect_replies.drain(..) {
        reply.fail(err);
    }
    for (_, r) in inner.publishes.drain() {
        r.fail(err);
    }
    for (_, r) in inner.subscribes.drain() {
        r.reply.fail(err);
    }
    for (_, r) in inner.unsubscribes.drain() {
        r.fail(err);
    }
}

/// After [`shutdown`]: drop the retired socket callbacks and fired timers
/// once the current callback has returned. They hold the state strongly, so
/// this frees the client when the application drops its last handle.
fn release_later(rc: &Shared) {
    let weak = Rc::downgrade(rc);
    Timeout::new(0, move || {
        if let Some(rc) = weak.upgrade() {
            let garbage = {
                let mut inner = rc.borrow_mut();
                (
                    std::mem::take(&mut inner.retired),
                    std::mem::take(&mut inner.fired),
                    inner.page.take(),
                )
            };
            drop(garbage);
        }
    })
    .forget();
}

fn listeners_of(inner: &Inner, kind: EventKind) -> Vec<Function> {
    inner
        .listeners
        .iter()
        .filter(|(k, _)| *k == kind)
        .map(|(_, f)| f.clone())
        .collect()
}

fn emit(listeners: &[Function], args: &[&JsValue]) {
    for f in listeners {
        let _ = match args {
            [] => f.call0(&JsValue::UNDEFINED),
            [a] => f.call1(&JsValue::UNDEFINED, a),
            [a, b] => f.call2(&JsValue::UNDEFINED, a, b),
            [a, b, c, ..] => f.call3(&JsValue::UNDEFINED, a, b, c),
        };
    }
}

fn emit_kind(rc: &Shared, kind: EventKind, args: &[&JsValue]) {
    let listeners = listeners_of(&rc.borrow(), kind);
    emit(&listeners, args);
}

/// Open a WebSocket to the broker and attach the callbacks. The callbacks
/// hold the state strongly: an open connection keeps the client alive even
/// if the application keeps no reference (as with MQTT.js); `end()` breaks
/// the cycle.
fn open_socket(rc: &Shared) {
    let url = rc.borrow().url.clone();
    let ws = match WebSocket::new_with_str(&url, "mqtt") {
        Ok(ws) => ws,
        Err(e) => {
            let msg = e
                .dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
                .unwrap_or_else(|| String::from("invalid WebSocket URL"));
            connection_closed(rc, Some(ClientError::new("INVALID_URL", msg)));
            return;
        }
    };
    ws.set_binary_type(BinaryType::Arraybuffer);
    let me = rc.clone();
    let on_open = Closure::<dyn FnMut()>::new(move || {
        let started = me.borrow_mut().session.start_connection(now());
        match started {
            Ok(()) => pump(&me),
            Err(e) => fail_connection(&me, e.into()),
        }
    });
    let me = rc.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        let rc = &me;
        let data = ev.data();
        let result = if let Some(buf) = data.dyn_ref::<js_sys::ArrayBuffer>() {
            let bytes = js_sys::Uint8Array::new(buf).to_vec();
            rc.borrow_mut().session.handle_bytes(&bytes, now())
        } else {
            Err(mqtt_session::Error::Protocol(
                "text WebSocket message: MQTT needs binary messages",
            ))
        };
        match result {
            Ok(()) => pump(rc),
            Err(e) => {
                // Deliver what arrived before the bad packet, then close.
                pump(rc);
                fail_connection(rc, e.into());
            }
        }
    });
    let me = rc.clone();
    let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |ev: CloseEvent| {
        let rc = &me;
        {
            let err = (!rc.borrow().connected_once).then(|| {
                let mut m = String::from("could not connect to ");
                m.push_str(&rc.borrow().url);
                m.push_str(" (WebSocket closed with code ");
                push_decimal(&mut m, ev.code());
                m.push_str(
                    "): check the URL, that the broker listens for MQTT over WebSocket, and TLS",
                );
                ClientError::new("CONNECTION_FAILED", m)
            });
            connection_closed(rc, err);
        }
    });
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    let mut inner = rc.borrow_mut();
    inner.retired.clear();
    if let Some(old) = inner.socket.replace(Socket {
        ws,
        _on_open: on_open,
        _on_message: on_message,
        _on_close: on_close,
    }) {
        old.detach();
        inner.retired.push(old);
    }
}

/// The connection is unusable (protocol error, timeout): report and close it.
fn fail_connection(rc: &Shared, err: ClientError) {
    connection_closed(rc, Some(err));
}

/// The socket closed or was given up: keep the session, report, and
/// schedule a reconnection unless ended.
fn connection_closed(rc: &Shared, err: Option<ClientError>) {
    let (was_connected, first_failed) = {
        let mut inner = rc.borrow_mut();
        let was_connected = inner.session.is_connected();
        inner.session.connection_lost();
        if let Some(s) = inner.socket.take() {
            s.detach();
            inner.retired.push(s);
        }
        inner.timer = None;
        (was_connected, !inner.connected_once)
    };
    if let Some(e) = &err {
        emit_kind(rc, EventKind::Error, &[&e.to_js()]);
    }
    if first_failed {
        // The first attempt decides the connect() promise: no retry.
        let e = err.unwrap_or_else(|| {
            ClientError::new("CONNECTION_FAILED", "the connection closed before CONNACK")
        });
        shutdown(&mut rc.borrow_mut(), &e);
        release_later(rc);
        emit_kind(rc, EventKind::Close, &[&js_sys::Object::new().into()]);
        return;
    }
    if was_connected {
        emit_kind(rc, EventKind::Offline, &[]);
    }
    // `close` tells when the next attempt starts, for a countdown.
    let info = js_sys::Object::new();
    if let Some(delay) = schedule_reconnect(rc) {
        let _ = js_sys::Reflect::set(&info, &"reconnectInMs".into(), &delay.into());
    }
    emit_kind(rc, EventKind::Close, &[&info]);
}

/// Arm the next reconnection attempt after [`Backoff`]'s delay. Returns the
/// delay, or None when the client will not reconnect.
fn schedule_reconnect(rc: &Shared) -> Option<u32> {
    let mut inner = rc.borrow_mut();
    if inner.ended || inner.opts.reconnect_period_ms == 0 {
        return None;
    }
    let delay = inner.backoff.next_delay_ms(js_sys::Math::random());
    // Strong: a reconnecting client stays alive until it is ended.
    let rc = rc.clone();
    inner.reconnect_timer = Some(Timer::new(delay, move || {
        {
            let mut inner = rc.borrow_mut();
            if let Some(t) = inner.reconnect_timer.take() {
                inner.fired.push(t);
            }
            if inner.ended {
                return;
            }
        }
        reconnect(&rc);
    }));
    Some(delay)
}

/// The page is back (online again, or shown after being hidden): a
/// connection that heard nothing for longer than the keep alive is presumed
/// dead and replaced, and a client waiting to reconnect does so now instead
/// of after its backoff delay (which a hidden tab's throttled timers may
/// stretch further).
fn wake(rc: &Shared) {
    if rc.borrow().session.is_stale(now()) {
        fail_connection(
            rc,
            ClientError::new(
                "KEEPALIVE_TIMEOUT",
                "nothing from the broker for longer than the keep alive while the page was hidden or offline: reconnecting now",
            ),
        );
    }
    let due = {
        let mut inner = rc.borrow_mut();
        let due = !inner.ended && inner.reconnect_timer.take().is_some();
        if due {
            inner.backoff.reset();
        }
        due
    };
    if due {
        reconnect(rc);
    }
}

/// A reconnection attempt starts: tell the application, open a socket.
fn reconnect(rc: &Shared) {
    emit_kind(rc, EventKind::Reconnect, &[]);
    if !rc.borrow().ended {
        open_socket(rc);
    }
}

/// Write every packet the session produced, one per WebSocket message.
fn flush(inner: &mut Inner) {
    while let Some(bytes) = inner.session.poll_transmit() {
        if let Some(s) = &inner.socket {
            let _ = s.ws.send_with_u8_array(&bytes);
        }
    }
}

/// (Re)arm the keep-alive/connect timer if the session's deadline is earlier.
fn arm_timer(rc: &Shared, inner: &mut Inner) {
    let Some(deadline) = inner.session.poll_deadline() else {
        return;
    };
    if inner.timer.is_some() && deadline >= inner.timer_at {
        return;
    }
    let delay = deadline.saturating_sub(now()).min(u64::from(u32::MAX >> 1)) as u32;
    let weak = Rc::downgrade(rc);
    inner.timer_at = deadline;
    inner.timer = Some(Timer::new(delay, move || {
        let Some(rc) = weak.upgrade() else { return };
        let result = {
            let mut inner = rc.borrow_mut();
            inner.fired.clear();
            if let Some(t) = inner.timer.take() {
                inner.fired.push(t);
            }
            inner.session.handle_timeout(now())
        };
        match result {
            Ok(()) => pump(&rc),
            Err(e) => fail_connection(&rc, e.into()),
        }
    }));
}

/// Send what the session wants sent, then hand its events to the
/// application one at a time (taking one may queue its acknowledgement),
/// until both are drained or events are held.
fn pump(rc: &Shared) {
    loop {
        let event = {
            let mut inner = rc.borrow_mut();
            flush(&mut inner);
            arm_timer(rc, &mut inner);
            if inner.holding {
                return;
            }
            inner.session.poll_event()
        };
        match event {
            Some(event) => dispatch(rc, event),
            None => return,
        }
    }
}

/// Stop taking events until the tasks queued now (the code awaiting
/// `connect()`) have run.
fn hold_for_one_task(rc: &Shared) {
    rc.borrow_mut().holding = true;
    let weak = Rc::downgrade(rc);
    Timeout::new(0, move || {
        if let Some(rc) = weak.upgrade() {
            rc.borrow_mut().holding = false;
            pump(&rc);
        }
    })
    .forget();
}

fn dispatch(rc: &Shared, event: Event) {
    match event {
        Event::Message(m) => {
            let (all, handlers) = {
                let inner = rc.borrow();
                let all = listeners_of(&inner, EventKind::Message);
                let handlers: Vec<Handler> = inner
                    .handlers
                    .iter()
                    .filter(|(f, _)| topic::matches(f, &m.topic))
                    .map(|(_, h)| h.clone())
                    .collect();
                (all, handlers)
            };
            if !all.is_empty() {
                let (t, p, info) = super::js::message_args(&m);
                emit(&all, &[&t, &p, &info]);
            }
            for h in handlers {
                h(&m);
            }
        }
        Event::Released { pkid } => {
            if let Some(outbox) = &rc.borrow().outbox {
                outbox.mark_released(pkid);
            }
        }
        Event::Published { pkid, reason } => {
            let reply = {
                let mut inner = rc.borrow_mut();
                if let Some(outbox) = &mut inner.outbox {
                    outbox.remove(pkid);
                }
                inner.publishes.remove(pkid)
            };
            if let Some(r) = reply {
                if reason < 0x80 {
                    r.ok(&JsValue::UNDEFINED);
                } else {
                    r.fail(&refused(
                        "PUBLISH_REFUSED",
                        "the server refused the publish",
                        reason,
                    ));
                }
            }
        }
        Event::Subscribed { pkid, codes } => {
            let pending = {
                let mut inner = rc.borrow_mut();
                let pending = inner.subscribes.remove(pkid);
                if let Some(PendingSub {
                    filters,
                    handler: Some(h),
                    ..
                }) = &pending
                {
                    // A refused filter gets no messages: forget its handler (only
                    // this subscribe's; an earlier one of the same filter stays).
                    let refused: Vec<&String> = filters
                        .iter()
                        .zip(&codes)
                        .filter(|(_, c)| **c >= 0x80)
                        .map(|(f, _)| f)
                        .collect();
                    inner
                        .handlers
                        .retain(|(f, x)| !(Rc::ptr_eq(x, h) && refused.contains(&f)));
                }
                pending
            };
            if let Some(p) = pending {
                match codes.iter().position(|c| *c >= 0x80) {
                    Some(i) => {
                        let mut what = String::from("the server refused the subscription to ");
                        what.push_str(p.filters.get(i).map_or("?", String::as_str));
                        let code = codes.get(i).copied().unwrap_or(0x80);
                        p.reply.fail(&refused("SUBSCRIBE_REFUSED", &what, code));
                    }
                    None => p.reply.ok(&super::js::granted(&p.filters, &codes)),
                }
            }
        }
        Event::Unsubscribed { pkid, .. } => {
            let reply = rc.borrow_mut().unsubscribes.remove(pkid);
            if let Some(r) = reply {
                r.ok(&JsValue::UNDEFINED);
            }
        }
        Event::Connected {
            session_present, ..
        } => {
            let (replies, client) = {
                let mut inner = rc.borrow_mut();
                inner.backoff.reset();
                inner.connected_once = true;
                inner.session_present = session_present;
                (
                    std::mem::take(&mut inner.connect_replies),
                    inner.wrapped.clone().unwrap_or(JsValue::UNDEFINED),
                )
            };
            if !replies.is_empty() {
                for reply in replies {
                    reply.ok(&client);
                }
                hold_for_one_task(rc);
            }
            let info = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&info, &"sessionPresent".into(), &session_present.into());
            emit_kind(rc, EventKind::Connect, &[&info]);
        }
    }
}

/// Append `n` in decimal (`to_string` would link `core::fmt`).
fn push_decimal(out: &mut String, n: u16) {
    if n >= 10 {
        push_decimal(out, n / 10);
    }
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// An error for a negative ack, naming the MQTT 5 reason code.
fn refused(code: &'static str, what: &str, reason: u8) -> ClientError {
    let mut m = String::from(what);
    m.push_str(" (reason code 0x");
    m.push(char::from_digit(u32::from(reason >> 4), 16).unwrap_or('0'));
    m.push(char::from_digit(u32::from(reason & 0xf), 16).unwrap_or('0'));
    m.push_str(match reason {
        0x87 => ": not authorized)",
        0x8F => ": topic filter invalid)",
        0x90 => ": topic name invalid)",
        0x95 => ": packet too large)",
        0x97 => ": quota exceeded)",
        0x9E => ": shared subscriptions not supported)",
        0xA2 => ": wildcard subscriptions not supported)",
        _ => ")",
    });
    ClientError::new(code, m)
}
