//! The `Tunnel` Durable Object: owns one forwarder control socket
//! (hibernation API) and the public requests in flight on it.
//!
//! A public request is registered in the in-flight table
//! (`tunnel_proto::inflight`) with a oneshot channel, sent to the forwarder
//! as `http_request`, and answered when `websocket_message` delivers the
//! matching `http_response`/`error`, or with 504 after the request timeout.
//! The DO stays in memory while a request waits, so the table can live in
//! memory; what must survive hibernation (tunnel id, public URLs, whether a
//! forwarder ever held the tunnel) is in the socket attachment and storage.

use std::cell::RefCell;
use std::rc::Rc;

use futures_channel::{mpsc, oneshot};
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tunnel_proto::headers::{request_headers, RequestMeta, META_HEADER};
use tunnel_proto::heads::{self, RequestHead, ResponseHead};
use tunnel_proto::inflight::{
    public_answer, public_head, salvage, settles, Inflight, PublicAnswer, Salvaged,
};
use tunnel_proto::names;
use tunnel_proto::outbox::{Offer, Outbox};
use tunnel_proto::policy::{Enforcer, Policies, Visitor};
use tunnel_proto::route::PublicUrls;
use tunnel_proto::stream::{self, Grants, SendStop, SendWindow, WsData, INVALID_TEXT_CODE};
use tunnel_proto::table::{BodyVerdict, Chunk, Part, PartKind, Slots, StreamTable, MAX_STREAMS};
use tunnel_proto::v1::encode_body;
use tunnel_proto::v2::{self, Frame, FrameKind};
use tunnel_proto::Message;
use worker::wasm_bindgen::prelude::{wasm_bindgen, JsValue};
use worker::*;

use crate::config::Config;

/// Header by which the router passes [`ControlMeta`] with a control socket.
pub const CONTROL_HEADER: &str = "x-tunnel-control";

/// Header by which the router sends `/_floor` (with `BENCH_FLOOR=true`):
/// the DO answers a constant at once, the benchmark's worker + DO floor.
pub const FLOOR_HEADER: &str = "x-tunnel-floor";

/// Tag of forwarder control sockets.
const FORWARDER_TAG: &str = "forwarder";

/// Tag of relayed public WebSockets (each also has a [`stream_tag`]).
const PUBLIC_TAG: &str = "public";

/// Tag naming the stream of a relayed public WebSocket.
fn stream_tag(stream_id: u32) -> String {
    format!("s:{stream_id}")
}

/// Storage key of the tunnel's resume token.
const RESUME_KEY: &str = "resume_token";

/// Storage key of when the last forwarder left (Unix ms).
const RELEASED_KEY: &str = "released_at";

/// Storage key of how the last forwarder left (`names::Released`).
const RELEASE_KEY: &str = "release";

/// Storage key of the edge policies the live forwarder declared
/// (`policy::Policies`), so they survive an eviction of the DO.
const POLICIES_KEY: &str = "policies";

/// Storage key set once a forwarder has held this tunnel (404 vs 502).
const ESTABLISHED_KEY: &str = "established";

/// What the router tells the DO about a new control socket; kept as the
/// socket's attachment so it survives hibernation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlMeta {
    /// The tunnel id (the DO's name).
    pub tunnel_id: String,
    /// Public URLs to announce in `connection_established`.
    pub urls: PublicUrls,
    /// Protocol version agreed in `ready` (0 before `ready`, 1 or 2 after).
    #[serde(default)]
    pub version: u32,
    /// From the router: the token presented to resume this tunnel. In the
    /// attachment: the token of this tunnel (announced to v2 forwarders).
    #[serde(default)]
    pub resume_token: Option<String>,
    /// The forwarder asked for this id by name (`x-tunnel-name`).
    #[serde(default)]
    pub named: bool,
    /// Subject (`sub`) of the forwarder's token, when auth is on: the same
    /// subject may take a named tunnel over from a socket it left behind.
    #[serde(default)]
    pub subject: Option<String>,
    /// When the socket was accepted (Unix ms): after a resume the newest
    /// forwarder socket is the live one.
    #[serde(default)]
    pub since: u64,
    /// v2: the forwarder's ping interval from `ready` (ms); `None`: it is
    /// never judged by silence.
    #[serde(default)]
    pub ping_interval_ms: Option<u64>,
    /// When the forwarder last pinged (Unix ms; 0: not yet).
    #[serde(default)]
    pub heard: u64,
}

/// One tunnel: the Durable Object. Its state is shared (`Rc`) so that a
/// WebSocket event can hand it to a future only when it must wait (see
/// the hand-written exports below).
#[durable_object(fetch)]
pub struct Tunnel {
    shared: Rc<TunnelState>,
}

impl std::ops::Deref for Tunnel {
    type Target = TunnelState;

    fn deref(&self) -> &TunnelState {
        &self.shared
    }
}

/// A tunnel's state: the forwarder's socket and its requests in flight.
pub struct TunnelState {
    state: State,
    config: Config,
    inflight: RefCell<Inflight<oneshot::Sender<Message>>>,
    /// v2 streams: WebSocket opens waiting for `ws_opened`/`ws_refused`,
    /// window grants of request bodies being uploaded, answer bodies being
    /// received (shared with the public response bodies, which report what
    /// their reader consumed).
    streams: Rc<RefCell<StreamTable<EdgeSlots>>>,
    /// The live forwarder socket and its attachment, found once: the
    /// lookup by tag reads every forwarder socket's attachment, and it was
    /// done (with two more reads) for every relayed message and request.
    /// Cleared whenever a forwarder socket comes or goes; the attachment
    /// is kept in step by [`TunnelState::store_meta`].
    live: RefCell<Option<(WebSocket, Option<ControlMeta>)>>,
    /// Public requests waiting for a forwarder to (re)connect, woken when
    /// one has answered `ready`.
    held: RefCell<Vec<oneshot::Sender<()>>>,
    /// `since` of forwarder sockets this instance closed for silence (they
    /// may still be listed until their close completes).
    dead: RefCell<Vec<u64>>,
    /// The forwarder's edge policies, compiled (with the rate limiter's
    /// buckets); `None` until loaded from storage after a (re)start.
    policy: RefCell<Option<Option<Enforcer>>>,
    /// Binary frames for a v3 forwarder waiting to leave together
    /// (`tunnel_proto::outbox`; shared with the flush task).
    outbox: Rc<RefCell<Outbox>>,
    /// The stream id of each relayed public socket seen since the DO
    /// (re)started, keyed by the socket: one lookup per public message
    /// instead of reading the socket's tags from the runtime.
    stream_ids: js_sys::WeakMap,
}

/// What the DO keeps per stream in its [`StreamTable`].
struct EdgeSlots;

impl Slots for EdgeSlots {
    /// A relayed WebSocket's open waiting for `ws_opened`/`ws_refused`.
    type Open = oneshot::Sender<Message>;
    /// The forwarder's `window` grants of a request body being uploaded.
    type Grants = mpsc::UnboundedSender<u32>;
    /// Feeds one streamed answer body to the public response.
    type Body = mpsc::UnboundedSender<Result<Vec<u8>>>;
    /// A relayed public socket, found once by its stream tag.
    type Input = WebSocket;
}

/// The forwarder's `window` grants for one uploaded body.
struct ChannelGrants(mpsc::UnboundedReceiver<u32>);

impl Grants for ChannelGrants {
    async fn next_grant(&mut self) -> Option<u32> {
        self.0.next().await
    }
}

/// A plain-text answer made by the edge.
fn text(status: u16, message: impl Into<String>) -> Result<Response> {
    respond(PublicAnswer::text(status, message), false)
}

/// 413 for a body over the limit.
pub fn too_large(limit: usize) -> Result<Response> {
    text(
        413,
        format!("request body too large: this tunnel relays at most {limit} bytes"),
    )
}

/// Build the public response. Bodies are omitted for HEAD and for statuses
/// that cannot carry one.
fn respond(answer: PublicAnswer, head: bool) -> Result<Response> {
    let headers = Headers::new();
    for (name, value) in &answer.headers {
        if headers.append(name, value).is_err() {
            console_warn!("dropped an invalid response header {name:?}");
        }
    }
    let builder = ResponseBuilder::new()
        .with_status(answer.status)
        .with_headers(headers);
    if head || matches!(answer.status, 101 | 204 | 205 | 304) {
        Ok(builder.empty())
    } else {
        Ok(builder.fixed(answer.body))
    }
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // Without randomness the ids are still unique within this instance.
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

impl TunnelState {
    /// The forwarder's control socket, if one is connected.
    fn forwarder(&self) -> Option<WebSocket> {
        if let Some((ws, _)) = self.live.borrow().as_ref() {
            return Some(ws.clone());
        }
        let dead = self.dead.borrow();
        let found = self
            .state
            .get_websockets_with_tag(FORWARDER_TAG)
            .into_iter()
            .filter(|ws| !dead.contains(&Self::since(ws)))
            .max_by_key(Self::since)?;
        let meta = found.deserialize_attachment::<ControlMeta>().ok().flatten();
        *self.live.borrow_mut() = Some((found.clone(), meta));
        Some(found)
    }

    /// The attachment of forwarder socket `ws` (from the cache when it is
    /// the live one).
    fn meta_of(&self, ws: &WebSocket) -> Option<ControlMeta> {
        if let Some((live, meta)) = self.live.borrow().as_ref() {
            if live == ws {
                return meta.clone();
            }
        }
        ws.deserialize_attachment::<ControlMeta>().ok().flatten()
    }

    /// Store the attachment of forwarder socket `ws` (and its cached copy).
    fn store_meta(&self, ws: &WebSocket, meta: &ControlMeta) -> Result<()> {
        ws.serialize_attachment(meta)?;
        if let Some((live, cached)) = self.live.borrow_mut().as_mut() {
            if live == ws {
                *cached = Some(meta.clone());
            }
        }
        Ok(())
    }

    /// A forwarder socket came or went: look the live one up again (and
    /// drop what was queued for the old one).
    fn forget_forwarder(&self) {
        self.live.borrow_mut().take();
        self.outbox.borrow_mut().clear();
    }

    /// Whether forwarder socket `ws` takes batches (v3). Reads the live
    /// socket's cached attachment without copying it; any other socket:
    /// no.
    fn takes_batches(&self, ws: &WebSocket) -> bool {
        self.live.borrow().as_ref().is_some_and(|(live, meta)| {
            live == ws && meta.as_ref().is_some_and(|m| m.version >= heads::VERSION)
        })
    }

    /// Send binary frame `frame` to forwarder `ws`, through the outbox
    /// when it takes batches: sent now when the outbox is idle, else
    /// queued for the flush, a zero-delay timer armed by the first frame.
    /// Under load the public messages of many DO events then reach the
    /// forwarder as a few batches (one socket write and one read each)
    /// instead of one message each; a lone message still leaves at once.
    fn send_coalesced(&self, ws: &WebSocket, frame: Vec<u8>) -> Result<()> {
        if !self.takes_batches(ws) {
            return ws.send_with_bytes(frame);
        }
        let Offer::SendAndArm(frame) = self.outbox.borrow_mut().offer(frame) else {
            return Ok(());
        };
        let outbox = Rc::clone(&self.outbox);
        let forwarder = ws.clone();
        wasm_bindgen_futures::spawn_local(async move {
            Delay::from(std::time::Duration::ZERO).await;
            let messages = outbox.borrow_mut().flush();
            for message in messages {
                if let Err(e) = forwarder.send_with_bytes(message) {
                    // The socket's close event fails its streams.
                    console_warn!("sending queued frames to the forwarder failed: {e}");
                    break;
                }
            }
        });
        ws.send_with_bytes(frame)
    }

    /// Send what waits in the outbox to forwarder `ws` now, ahead of a
    /// message that bypasses the outbox and must not overtake it (a
    /// stream's close after its last messages, a body after its request).
    fn flush_outbox(&self, ws: &WebSocket) {
        let messages = self.outbox.borrow_mut().take();
        for message in messages {
            if ws.send_with_bytes(message).is_err() {
                break;
            }
        }
    }

    /// The public socket of relayed stream `id`: from the stream table, or
    /// (after the DO was evicted and woke again) by its tag.
    fn public_socket(&self, id: u32) -> Option<WebSocket> {
        if let Some(ws) = self.streams.borrow_mut().input(id) {
            return Some(ws.clone());
        }
        let ws = self
            .state
            .get_websockets_with_tag(&stream_tag(id))
            .into_iter()
            .next()?;
        // Full table: found by tag again next time.
        let _ = self
            .streams
            .borrow_mut()
            .insert(id, Part::Input(ws.clone()));
        Some(ws)
    }

    /// The forwarder's socket unless it has been silent for longer than its
    /// ping interval allows (`v2::silent_for`): such a socket (a stopped or
    /// hung `ttf` whose TCP connection stays up) is closed and released, so
    /// that its requests fail now, new ones are held for a replacement, and
    /// its holder can come back.
    async fn live_forwarder(&self) -> Result<Option<WebSocket>> {
        let Some(ws) = self.forwarder() else {
            return Ok(None);
        };
        let Some(meta) = self.meta_of(&ws) else {
            return Ok(Some(ws));
        };
        let heard = meta.heard.max(meta.since);
        let Some(silence) = v2::silent_for(heard, meta.ping_interval_ms, Date::now().as_millis())
        else {
            return Ok(Some(ws));
        };
        console_warn!(
            "forwarder of {} silent for {} ms (pings every {} ms): closing it",
            meta.tunnel_id,
            silence,
            meta.ping_interval_ms.unwrap_or_default()
        );
        self.dead.borrow_mut().push(meta.since);
        self.forget_forwarder();
        let _ = ws.close(Some(1011), Some("no ping from the forwarder; reconnect"));
        self.forwarder_gone();
        self.released(&ws, false).await?;
        Ok(self.forwarder())
    }

    /// A live forwarder that has answered `ready` (requests can be sent).
    async fn ready_forwarder(&self) -> Result<Option<WebSocket>> {
        Ok(self
            .live_forwarder()
            .await?
            .filter(|ws| self.meta_of(ws).is_some_and(|m| m.version >= 1)))
    }

    /// Whether a newer forwarder socket replaced `ws` (resume).
    fn superseded(&self, ws: &WebSocket) -> bool {
        self.forwarder()
            .is_some_and(|live| Self::since(&live) > Self::since(ws))
    }

    /// When a forwarder socket was accepted.
    fn since(ws: &WebSocket) -> u64 {
        ws.deserialize_attachment::<ControlMeta>()
            .ok()
            .flatten()
            .map_or(0, |m| m.since)
    }

    /// Accept a forwarder's control socket.
    async fn accept_control(&self, mut meta: ControlMeta) -> Result<Response> {
        let storage = self.state.storage();
        let previous = self.live_forwarder().await?;
        if let Some(token) = &meta.resume_token {
            let stored: Option<String> = storage.get(RESUME_KEY).await?;
            let released: Option<u64> = storage.get(RELEASED_KEY).await?;
            let now = Date::now().as_millis();
            if let Err((status, reason)) =
                v2::check_resume(stored.as_deref(), token, previous.is_some(), released, now)
            {
                console_warn!("resume of {} refused: {reason}", meta.tunnel_id);
                return text(status, reason);
            }
        } else {
            if let Some(live) = previous.as_ref().filter(|_| meta.named) {
                let holder = live
                    .deserialize_attachment::<ControlMeta>()
                    .ok()
                    .flatten()
                    .and_then(|m| m.subject);
                if let Err((status, reason)) = names::check_takeover(
                    &meta.tunnel_id,
                    holder.as_deref(),
                    meta.subject.as_deref(),
                ) {
                    console_warn!("name {} refused: {reason}", meta.tunnel_id);
                    return text(status, reason);
                }
            }
            if previous.is_none() && meta.named {
                // A holder that dropped may still resume: no takeover
                // without its token or its subject.
                let released: Option<names::Released> = storage.get(RELEASE_KEY).await?;
                if let Err((status, reason)) = names::check_released(
                    &meta.tunnel_id,
                    released.as_ref(),
                    meta.subject.as_deref(),
                    Date::now().as_millis(),
                ) {
                    console_warn!("name {} refused: {reason}", meta.tunnel_id);
                    return text(status, reason);
                }
            }
            let mut secret = [0u8; v2::RESUME_SECRET_LEN / 2];
            getrandom::fill(&mut secret)
                .map_err(|e| Error::RustError(format!("no randomness: {e}")))?;
            let token = v2::resume_token(&meta.tunnel_id, secret);
            storage.put(RESUME_KEY, &token).await?;
            meta.resume_token = Some(token);
        }
        // The same holder came back (its old socket may not have noticed
        // the drop yet): the old socket goes.
        if let Some(old) = &previous {
            let _ = old.close(Some(1000), Some("resumed by a new connection"));
        }
        meta.since = Date::now()
            .as_millis()
            .max(previous.as_ref().map_or(0, |p| Self::since(p) + 1));
        let pair = WebSocketPair::new()?;
        self.state
            .accept_websocket_with_tags(&pair.server, &[FORWARDER_TAG]);
        pair.server.serialize_attachment(&meta)?;
        self.forget_forwarder();
        self.state.storage().put(ESTABLISHED_KEY, true).await?;
        Response::from_websocket(pair.client)
    }

    /// Keep the policies the forwarder declared in `ready` (in storage too,
    /// so an evicted DO enforces them again).
    async fn set_policy(&self, policies: &Policies, enforcer: Enforcer) -> Result<()> {
        let storage = self.state.storage();
        if policies.is_empty() {
            storage.delete(POLICIES_KEY).await?;
            *self.policy.borrow_mut() = Some(None);
        } else {
            storage.put(POLICIES_KEY, policies).await?;
            *self.policy.borrow_mut() = Some(Some(enforcer));
        }
        Ok(())
    }

    /// Check a public request against the forwarder's policies: `Some` is
    /// the refusal to answer (nothing is relayed). `body`: check the
    /// webhook signature over it; `None`: everything else.
    async fn enforce(
        &self,
        req: &Request,
        meta: &RequestMeta,
        body: Option<&[u8]>,
    ) -> Result<Option<Response>> {
        if self.policy.borrow().is_none() {
            let stored: Option<Policies> = self.state.storage().get(POLICIES_KEY).await?;
            let enforcer = match stored.map(|p| Enforcer::new(&p)).transpose() {
                Ok(e) => e,
                Err(reason) => {
                    // Accepted once, so this is storage damage: fail closed.
                    return text(
                        500,
                        format!("stored tunnel policies are unusable ({reason}); restart ttf"),
                    )
                    .map(Some);
                }
            };
            let mut slot = self.policy.borrow_mut();
            if slot.is_none() {
                *slot = Some(enforcer);
            }
        }
        let mut slot = self.policy.borrow_mut();
        let Some(Some(enforcer)) = slot.as_mut() else {
            // No policy (the common case): the headers are not even read.
            return Ok(None);
        };
        let pairs: Vec<(String, String)> = req.headers().entries().collect();
        let visitor = Visitor {
            headers: &pairs,
            query: meta.uri.split_once('?').map(|(_, q)| q),
            client_ip: meta.client_ip.as_deref(),
        };
        let now = Date::now().as_millis();
        let verdict = match body {
            None => enforcer.check(&visitor, now),
            Some(body) => enforcer.check_body(&visitor, body, now),
        };
        match verdict {
            Ok(()) => Ok(None),
            Err(answer) => {
                console_log!("refused {} by policy: {}", meta.uri, answer.status);
                respond(answer, req.inner().method() == "HEAD").map(Some)
            }
        }
    }

    /// Read the request body, refusing more than the limit.
    async fn body(&self, req: &mut Request) -> Result<std::result::Result<Vec<u8>, Response>> {
        let method = req.inner().method();
        if method == "GET" || method == "HEAD" || req.inner().body().is_none() {
            return Ok(Ok(Vec::new()));
        }
        let mut stream = req.stream()?;
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if body.len() + chunk.len() > self.config.max_body_bytes {
                return Ok(Err(too_large(self.config.max_body_bytes)?));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Ok(body))
    }

    /// Relay one public request through the forwarder.
    async fn relay(&self, mut req: Request, meta: RequestMeta) -> Result<Response> {
        let method = req.inner().method();
        let head = method == "HEAD";
        let ws = match self.ready_forwarder().await? {
            Some(ws) => ws,
            None => {
                let established: Option<bool> = self.state.storage().get(ESTABLISHED_KEY).await?;
                if !established.unwrap_or(false) {
                    return text(
                        404,
                        "unknown tunnel: no forwarder has opened this tunnel id",
                    );
                }
                // Held while the forwarder reconnects (nothing was sent
                // yet, so serving it later replays nothing).
                console_warn!(
                    "request {} {} held: waiting up to {} ms for the forwarder",
                    method,
                    meta.uri,
                    self.config.hold.as_millis()
                );
                let (tx, rx) = oneshot::channel();
                self.held.borrow_mut().push(tx);
                let _ = select(rx, Delay::from(self.config.hold)).await;
                match self.ready_forwarder().await? {
                    Some(ws) => ws,
                    None => {
                        return text(
                            502,
                            format!(
                                "the tunnel's forwarder is not connected (waited {} ms); restart `ttf` and retry",
                                self.config.hold.as_millis()
                            ),
                        )
                    }
                }
            }
        };
        if let Some(refusal) = self.enforce(&req, &meta, None).await? {
            return Ok(refusal);
        }
        let needs_body = self
            .policy
            .borrow()
            .as_ref()
            .and_then(Option::as_ref)
            .is_some_and(Enforcer::needs_body);
        let version = self.version_of(&ws);
        let v2 = version >= v2::VERSION;
        // v3: a body of declared length up to one chunk travels inside the
        // request frame (one message), longer or unknown ones stream.
        let small = version >= heads::VERSION
            && req
                .headers()
                .get("content-length")?
                .and_then(|v| v.trim().parse::<usize>().ok())
                .is_some_and(|n| n <= v2::MAX_CHUNK);
        let streamed_upload = v2
            && !small
            && !needs_body
            && !matches!(method.as_str(), "GET" | "HEAD")
            && req.inner().body().is_some();
        let body = if streamed_upload {
            Vec::new()
        } else {
            match self.body(&mut req).await? {
                Ok(body) => body,
                Err(refusal) => return Ok(refusal),
            }
        };
        if needs_body {
            // Webhook signatures cover the whole body: it is read (up to
            // MAX_BODY_BYTES) and checked before anything is relayed.
            if let Some(refusal) = self.enforce(&req, &meta, Some(&body)).await? {
                return Ok(refusal);
            }
        }
        let pairs: Vec<(String, String)> = req.headers().entries().collect();
        // v2: the answer's body may stream; its channel exists before the
        // request leaves so that no chunk can arrive without a receiver.
        let body_stream = if v2 {
            let (tx, rx) = mpsc::unbounded();
            match self.new_stream(Part::Body(tx)) {
                Ok(stream_id) => Some((stream_id, rx)),
                Err(refusal) => return text(503, format!("{refusal}; retry later")),
            }
        } else {
            None
        };
        let stream_id = body_stream.as_ref().map(|(id, _)| *id);
        let (tx, rx) = oneshot::channel();
        let request_id = self.inflight.borrow_mut().start(tx);
        let headers = request_headers(&pairs, &meta);
        let sent = match stream_id.filter(|_| version >= heads::VERSION) {
            // v3: head and body in one binary frame, no JSON, no base64.
            Some(id) => {
                let head = RequestHead {
                    request_id: request_id.clone(),
                    method,
                    uri: meta.uri.clone(),
                    headers,
                };
                self.send_coalesced(
                    &ws,
                    head.encode(id, (!streamed_upload).then_some(&body[..])),
                )
            }
            None => ws.send_with_str(
                Message::HttpRequest {
                    request_id: request_id.clone(),
                    method,
                    uri: meta.uri.clone(),
                    headers,
                    body: encode_body(&body),
                    timestamp: Date::now().as_millis(),
                    stream_id,
                    body_streamed: streamed_upload,
                }
                .encode(),
            ),
        };
        drop(body);
        let forget_body = || {
            if let Some(id) = stream_id {
                self.streams.borrow_mut().detach(id, PartKind::Body);
            }
        };
        if let Err(e) = sent {
            self.inflight.borrow_mut().finish(&request_id);
            forget_body();
            return text(
                502,
                format!("could not send the request to the forwarder: {e}"),
            );
        }
        let timeout = Delay::from(self.config.request_timeout);
        let wait = select(rx, timeout);
        let outcome = match stream_id.filter(|_| streamed_upload) {
            None => wait.await,
            Some(id) => {
                let upload = Box::pin(self.upload(&mut req, &ws, id));
                let result = select(upload, wait).await;
                self.streams.borrow_mut().detach(id, PartKind::Grants);
                match result {
                    Either::Left((Ok(Ok(())), wait)) => wait.await,
                    Either::Left((Ok(Err(refusal)), _)) => {
                        self.inflight.borrow_mut().finish(&request_id);
                        forget_body();
                        return Ok(refusal);
                    }
                    Either::Left((Err(e), _)) => {
                        self.inflight.borrow_mut().finish(&request_id);
                        forget_body();
                        return text(502, format!("relaying the request body failed: {e}"));
                    }
                    Either::Right((outcome, _)) => outcome,
                }
            }
        };
        if let (
            Either::Left((
                Ok(Message::HttpResponseHead {
                    status_code,
                    headers,
                    ..
                }),
                _,
            )),
            Some((stream_id, body)),
        ) = (&outcome, body_stream)
        {
            return self.stream_answer(&ws, *status_code, headers, &meta, head, stream_id, body);
        }
        forget_body();
        match outcome {
            Either::Left((Ok(answer), _)) => respond(public_answer(answer, &meta.prefix), head),
            Either::Left((Err(_), _)) => text(
                502,
                "the forwarder disconnected before answering; restart `ttf` and retry",
            ),
            Either::Right(((), _)) => {
                self.inflight.borrow_mut().finish(&request_id);
                text(
                    504,
                    format!(
                        "the forwarder did not answer within {} ms",
                        self.config.request_timeout.as_millis()
                    ),
                )
            }
        }
    }

    /// The public response of a streamed answer: its body is fed by body
    /// frames, and every chunk the public side takes is acknowledged to the
    /// forwarder with `window`, so at most `v2::WINDOW` bytes wait here.
    #[allow(clippy::too_many_arguments)]
    fn stream_answer(
        &self,
        forwarder: &WebSocket,
        status_code: u16,
        headers: &tunnel_proto::Headers,
        meta: &RequestMeta,
        head: bool,
        stream_id: u32,
        mut body: mpsc::UnboundedReceiver<Result<Vec<u8>>>,
    ) -> Result<Response> {
        let (status, headers) = match public_head(status_code, headers, &meta.prefix) {
            Ok(h) => h,
            Err(refusal) => {
                self.streams.borrow_mut().detach(stream_id, PartKind::Body);
                return respond(refusal, head);
            }
        };
        let public = Headers::new();
        for (name, value) in &headers {
            if public.append(name, value).is_err() {
                console_warn!("dropped an invalid response header {name:?}");
            }
        }
        let builder = ResponseBuilder::new()
            .with_status(status)
            .with_headers(public);
        if head || matches!(status, 204 | 205 | 304) {
            // No body may follow; the forwarder's chunks are dropped.
            self.streams.borrow_mut().detach(stream_id, PartKind::Body);
            return Ok(builder.empty());
        }
        if self.streams.borrow_mut().body(stream_id).is_none() {
            // The whole body is here already (v3: a small answer comes in
            // one frame): answer it with its length rather than as a
            // stream, which costs the runtime (and wrangler dev's proxy)
            // a chunked body.
            let mut whole = Vec::new();
            loop {
                match body.try_recv() {
                    Ok(Ok(chunk)) => whole.extend_from_slice(&chunk),
                    Err(mpsc::TryRecvError::Closed) => return Ok(builder.fixed(whole)),
                    Ok(Err(e)) => return text(502, format!("the answer failed: {e}")),
                    // The table dropped its sender, so nothing can be pending.
                    Err(_) => return text(502, "the answer's body ended without its end"),
                }
            }
        }
        let forwarder = forwarder.clone();
        let streams = Rc::clone(&self.streams);
        let body = body.map(move |chunk| {
            if let Ok(bytes) = &chunk {
                // The last chunk (END) needs no acknowledgement.
                if !streams.borrow_mut().consumed(stream_id, bytes.len()) {
                    return chunk;
                }
                let ack = Message::Window {
                    stream_id,
                    bytes: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
                };
                // A lost forwarder also ends the body (see forwarder_gone).
                let _ = forwarder.send_with_str(ack.encode());
            }
            chunk
        });
        builder.from_stream(body)
    }

    /// Stream the public request body to the forwarder as body frames,
    /// never more than `v2::WINDOW` bytes beyond the forwarder's `window`
    /// acknowledgements, refusing more than `MAX_BODY_BYTES` (413).
    async fn upload(
        &self,
        req: &mut Request,
        forwarder: &WebSocket,
        stream_id: u32,
    ) -> Result<std::result::Result<(), Response>> {
        let (tx, credits) = mpsc::unbounded::<u32>();
        if let Err(refusal) = self
            .streams
            .borrow_mut()
            .insert(stream_id, Part::Grants(tx))
        {
            return Err(Error::RustError(refusal.to_string()));
        }
        // The request's head may still wait in the outbox.
        self.flush_outbox(forwarder);
        let mut window = SendWindow::new();
        let mut grants = ChannelGrants(credits);
        let mut total = 0usize;
        let mut stream = req.stream()?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            total += chunk.len();
            if total > self.config.max_body_bytes {
                forwarder.send_with_bytes(Frame::body(stream_id, v2::FLAG_ABORT, b"").encode())?;
                return Ok(Err(too_large(self.config.max_body_bytes)?));
            }
            let sent = stream::send_data(stream_id, &chunk, &mut window, &mut grants, |f| {
                forwarder.send_with_bytes(f).is_ok()
            })
            .await;
            match sent {
                Ok(()) => {}
                Err(SendStop::Cancelled) => {
                    return Ok(Err(text(
                        502,
                        "the forwarder disconnected while receiving the request body",
                    )?))
                }
                Err(SendStop::Closed) => {
                    return Err(Error::RustError(
                        "sending a body frame to the forwarder failed".into(),
                    ))
                }
            }
        }
        forwarder.send_with_bytes(Frame::body(stream_id, v2::FLAG_END, b"").encode())?;
        Ok(Ok(()))
    }

    /// v3: the head of an answer (and its first body bytes, all of them
    /// with END) settles the request like `http_response_head`; the bytes
    /// go to the answer's body like a body frame.
    fn on_response(&self, frame: Frame<'_>) {
        let (head, body) = match ResponseHead::decode(&frame) {
            Ok(h) => h,
            Err(e) => {
                console_warn!("ignored a bad answer head from the forwarder: {e}");
                self.cancel_answer(frame.stream_id);
                return;
            }
        };
        let waiter = self.inflight.borrow_mut().finish(&head.request_id);
        let Some(tx) = waiter else {
            console_log!("dropped a late or duplicate answer for {}", head.request_id);
            if !frame.is_end() {
                self.cancel_answer(frame.stream_id);
            }
            return;
        };
        let answer = Message::HttpResponseHead {
            request_id: head.request_id,
            stream_id: frame.stream_id,
            status_code: head.status,
            headers: head.headers,
        };
        // The receiver may have given up in the same instant: nothing to do.
        drop(tx.send(answer));
        if frame.is_end() || !body.is_empty() {
            self.on_body(Frame::body(frame.stream_id, frame.flags, body));
        }
    }

    /// A body frame from the forwarder.
    fn on_body(&self, frame: Frame<'_>) {
        let abort = frame.is_abort();
        let verdict = self.streams.borrow_mut().on_body(&frame, |tx, chunk| {
            let chunk = match chunk {
                Chunk::Data(bytes) => Ok(bytes.to_vec()),
                Chunk::Failed(_) if abort => Err(Error::RustError(
                    "the local service's answer failed midway".into(),
                )),
                Chunk::Failed(reason) => {
                    console_warn!("stream {}: {reason}", frame.stream_id);
                    Err(Error::RustError(reason))
                }
            };
            tx.unbounded_send(chunk).is_ok()
        });
        // The public side is gone, or HEAD, or the forwarder overran its
        // window: it may stop.
        if verdict == BodyVerdict::Cancel {
            self.cancel_answer(frame.stream_id);
        }
    }

    /// Tell the forwarder that nobody reads stream `id`'s answer any more
    /// (an ABORT body frame): it stops reading the local answer.
    fn cancel_answer(&self, id: u32) {
        if let Some(f) = self.forwarder() {
            let _ = f.send_with_bytes(Frame::body(id, v2::FLAG_ABORT, b"").encode());
        }
    }

    /// The protocol version the forwarder on `ws` agreed to.
    fn version_of(&self, ws: &WebSocket) -> u32 {
        self.meta_of(ws).map_or(1, |m| m.version)
    }

    /// A new stream with `part`, under an id not used by a live stream
    /// nor by a relayed WebSocket (those outlive the table across
    /// hibernation).
    fn new_stream(
        &self,
        part: Part<EdgeSlots>,
    ) -> std::result::Result<u32, tunnel_proto::table::Refusal> {
        self.streams.borrow_mut().allocate(part, |id| {
            !self
                .state
                .get_websockets_with_tag(&stream_tag(id))
                .is_empty()
        })
    }

    /// The stream of a relayed public socket (`None` for the forwarder's):
    /// from [`TunnelState::stream_ids`], else (after the DO woke from
    /// hibernation) from its tags, once.
    fn stream_of(&self, ws: &WebSocket) -> Option<u32> {
        if let Some(id) = self.stream_ids.get(ws.as_ref()).as_f64() {
            return Some(id as u32);
        }
        let id: u32 = self
            .state
            .get_tags(ws)
            .iter()
            .find_map(|t| t.strip_prefix("s:")?.parse().ok())?;
        self.stream_ids.set(ws.as_ref(), &JsValue::from(id));
        Some(id)
    }

    /// Relay a public WebSocket upgrade as a stream: `ws_open` to the
    /// forwarder, then 101 with the chosen subprotocol, or the refusal.
    /// The public socket is accepted (tagged with its stream) before
    /// `ws_open` is sent, so no message of the local side can arrive before
    /// there is a socket to deliver it to.
    async fn open_stream(
        &self,
        req: Request,
        meta: RequestMeta,
        forwarder: WebSocket,
    ) -> Result<Response> {
        if self.version_of(&forwarder) < v2::VERSION {
            return text(
                501,
                "this tunnel's forwarder speaks tunnel protocol v1, which cannot relay WebSockets; upgrade ttf",
            );
        }
        let pairs: Vec<(String, String)> = req.headers().entries().collect();
        let offered: Vec<String> = pairs
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-protocol"))
            .map(|(_, v)| v.clone())
            .collect();
        let (tx, rx) = oneshot::channel();
        let stream_id = match self.new_stream(Part::Open(tx)) {
            Ok(id) => id,
            Err(refusal) => return text(503, format!("{refusal}; retry later")),
        };
        let pair = WebSocketPair::new()?;
        let tag = stream_tag(stream_id);
        self.state
            .accept_websocket_with_tags(&pair.server, &[PUBLIC_TAG, &tag]);
        self.stream_ids
            .set(pair.server.as_ref(), &JsValue::from(stream_id));
        let open = Message::WsOpen {
            stream_id,
            uri: meta.uri.clone(),
            headers: request_headers(&pairs, &meta),
            protocols: v2::parse_subprotocols(&offered),
        };
        let refuse = |status: u16, message: String| {
            self.streams.borrow_mut().close(stream_id);
            // Never answered with 101: the server side just goes away.
            let _ = pair.server.close(Some(1011), Some("upgrade refused"));
            text(status, message)
        };
        if let Err(e) = forwarder.send_with_str(open.encode()) {
            return refuse(
                502,
                format!("could not send the upgrade to the forwarder: {e}"),
            );
        }
        let answer = match select(rx, Delay::from(self.config.request_timeout)).await {
            Either::Left((Ok(answer), _)) => answer,
            Either::Left((Err(_), _)) => {
                return refuse(
                    502,
                    "the forwarder disconnected before the local WebSocket opened".into(),
                )
            }
            Either::Right(((), _)) => {
                return refuse(
                    504,
                    format!(
                        "the local WebSocket did not open within {} ms",
                        self.config.request_timeout.as_millis()
                    ),
                )
            }
        };
        match answer {
            Message::WsOpened { protocol, .. } => {
                // Messages of the local side find the public socket here
                // (a full table: by its tag).
                let _ = self
                    .streams
                    .borrow_mut()
                    .insert(stream_id, Part::Input(pair.server.clone()));
                let headers = Headers::new();
                if let Some(protocol) = protocol {
                    headers.set("sec-websocket-protocol", &protocol)?;
                }
                Ok(ResponseBuilder::new()
                    .with_status(101)
                    .with_headers(headers)
                    .with_websocket(pair.client)
                    .empty())
            }
            Message::WsRefused {
                status, message, ..
            } => {
                let status = if (400..=599).contains(&status) {
                    status
                } else {
                    502
                };
                refuse(status, message)
            }
            other => refuse(502, format!("unexpected answer to ws_open: {other:?}")),
        }
    }

    /// A message from a relayed public socket goes to the forwarder as one
    /// binary frame.
    fn on_public_message(
        &self,
        ws: &WebSocket,
        stream_id: u32,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let frame = match &message {
            WebSocketIncomingMessage::String(t) => WsData::Text(t),
            WebSocketIncomingMessage::Binary(b) => WsData::Binary(b),
        }
        .encode(stream_id);
        match self.forwarder() {
            Some(f) if self.send_coalesced(&f, frame).is_ok() => Ok(()),
            _ => ws.close(Some(1011), Some("the tunnel's forwarder is not connected")),
        }
    }

    /// A binary message from the forwarder: one frame, or (v3) a batch of
    /// them.
    fn on_binary(&self, bytes: &[u8]) -> Result<()> {
        let frame = match Frame::decode(bytes) {
            Ok(f) => f,
            Err(e) => {
                console_warn!("ignored a bad binary frame from the forwarder: {e}");
                return Ok(());
            }
        };
        if frame.kind != FrameKind::Batch {
            return self.on_frame(frame);
        }
        for inner in heads::unbatch(&frame) {
            match inner {
                Ok(inner) => self.on_frame(inner)?,
                Err(e) => {
                    console_warn!("ignored the rest of a bad batch from the forwarder: {e}");
                    break;
                }
            }
        }
        Ok(())
    }

    /// One binary frame from the forwarder: a body chunk, an answer's head
    /// (v3), or one message for a public socket.
    fn on_frame(&self, frame: Frame<'_>) -> Result<()> {
        match frame.kind {
            FrameKind::Body => {
                self.on_body(frame);
                return Ok(());
            }
            FrameKind::Response => {
                self.on_response(frame);
                return Ok(());
            }
            FrameKind::Request | FrameKind::Batch => {
                console_warn!("ignored a {:?} frame from the forwarder", frame.kind);
                return Ok(());
            }
            FrameKind::WsMessage => {}
        }
        if let Some(public) = self.public_socket(frame.stream_id) {
            let sent = match WsData::from_frame(&frame) {
                Ok(WsData::Text(t)) => public.send_with_str(t),
                Ok(WsData::Binary(b)) => public.send_with_bytes(b),
                Err(reason) => public.close(Some(INVALID_TEXT_CODE), Some(reason)),
            };
            if let Err(e) = sent {
                console_log!(
                    "dropped a message for closed stream {}: {e}",
                    frame.stream_id
                );
            }
        }
        Ok(())
    }

    /// Handle one text frame from the forwarder.
    async fn on_text(&self, ws: &WebSocket, text: &str) -> Result<()> {
        let message = match Message::decode(text) {
            Ok(m) => m,
            Err(e) => {
                self.on_malformed(text, &e);
                return Ok(());
            }
        };
        if let Message::WsOpened { stream_id, .. } | Message::WsRefused { stream_id, .. } = message
        {
            let waiter = self.streams.borrow_mut().take_open(stream_id);
            match waiter {
                Some(tx) => drop(tx.send(message)),
                None => console_log!("dropped a late answer to ws_open {stream_id}"),
            }
            return Ok(());
        }
        match message {
            Message::Ready {
                version,
                ping_interval_ms,
                policies,
            } => {
                let meta: Option<ControlMeta> = ws.deserialize_attachment()?;
                let Some(mut meta) = meta else {
                    return ws.close(Some(1011), Some("tunnel state lost; reconnect"));
                };
                let policies = policies.unwrap_or_default();
                let enforcer = match Enforcer::new(&policies) {
                    Ok(e) => e,
                    Err(reason) => {
                        console_warn!("policies of {} refused: {reason}", meta.tunnel_id);
                        let reason = format!("policies refused: {reason}");
                        let short: String = reason.chars().take(100).collect();
                        return ws.close(Some(1008), Some(short));
                    }
                };
                let confirmed = (!policies.is_empty()).then(|| enforcer.names().to_vec());
                self.set_policy(&policies, enforcer).await?;
                let version = v2::negotiate(version);
                meta.version = version.unwrap_or(1);
                meta.ping_interval_ms = ping_interval_ms.filter(|_| version.is_some());
                meta.heard = Date::now().as_millis();
                self.store_meta(ws, &meta)?;
                let reply = Message::ConnectionEstablished {
                    connection_id: format!("{}-{:016x}", meta.tunnel_id, random_u64()),
                    tunnel_id: meta.tunnel_id,
                    public_url: meta.urls.public_url,
                    subdomain_url: meta.urls.subdomain_url,
                    path_based_url: Some(meta.urls.path_based_url),
                    resume_token: meta.resume_token.filter(|_| version.is_some()),
                    version,
                    policies: confirmed,
                };
                ws.send_with_str(reply.encode())?;
                // Requests held while no forwarder was there go now.
                for waiter in self.held.borrow_mut().drain(..) {
                    let _ = waiter.send(());
                }
                Ok(())
            }
            Message::Ping => {
                if let Some(mut meta) = self.meta_of(ws) {
                    meta.heard = Date::now().as_millis();
                    self.store_meta(ws, &meta)?;
                }
                ws.send_with_str(Message::Pong.encode())
            }
            Message::Window { stream_id, bytes } => {
                if let Some(tx) = self.streams.borrow_mut().grants(stream_id) {
                    let _ = tx.unbounded_send(bytes);
                }
                Ok(())
            }
            Message::WsClose {
                stream_id,
                code,
                reason,
            } => {
                for public in self.state.get_websockets_with_tag(&stream_tag(stream_id)) {
                    // The public socket may already be closing.
                    let _ = public.close(v2::sendable_close_code(code), Some(reason.as_str()));
                }
                Ok(())
            }
            Message::Error {
                request_id: None,
                code,
                message,
            } => {
                console_warn!("forwarder reported {}: {message}", code.as_str());
                Ok(())
            }
            other => {
                if let Some((request_id, answer)) = settles(other) {
                    let waiter = self.inflight.borrow_mut().finish(&request_id);
                    match waiter {
                        // The receiver may have given up in the same instant: nothing to do.
                        Some(tx) => drop(tx.send(answer)),
                        None => console_log!("dropped a late or duplicate answer for {request_id}"),
                    }
                }
                Ok(())
            }
        }
    }

    /// A text frame that does not decode: logged; when it names a request
    /// or a WebSocket open that waits, that one is answered 502 at once
    /// (not 504 after the request timeout).
    fn on_malformed(&self, text: &str, error: &tunnel_proto::ProtocolError) {
        match salvage(text, error) {
            Some(Salvaged::Request(request_id, answer)) => {
                console_warn!(
                    "malformed answer for {request_id} from the forwarder (502): {error}"
                );
                let waiter = self.inflight.borrow_mut().finish(&request_id);
                if let Some(tx) = waiter {
                    drop(tx.send(answer));
                }
            }
            Some(Salvaged::Stream(stream_id, answer)) => {
                console_warn!(
                    "malformed answer to ws_open {stream_id} from the forwarder (502): {error}"
                );
                let waiter = self.streams.borrow_mut().take_open(stream_id);
                if let Some(tx) = waiter {
                    drop(tx.send(answer));
                }
            }
            None => console_warn!("ignored a bad frame from the forwarder: {error}"),
        }
    }

    /// Record that the forwarder on `ws` left (`clean`: it closed with 1000,
    /// nothing to resume): the resume grace and the name reservation start.
    async fn released(&self, ws: &WebSocket, clean: bool) -> Result<()> {
        let now = Date::now().as_millis();
        let subject = ws
            .deserialize_attachment::<ControlMeta>()
            .ok()
            .flatten()
            .and_then(|m| m.subject);
        let storage = self.state.storage();
        storage.put(RELEASED_KEY, now).await?;
        let release = names::Released {
            at_ms: now,
            subject,
            clean,
        };
        storage.put(RELEASE_KEY, &release).await
    }

    /// The forwarder's socket ended: every waiting request gets 502 and
    /// every relayed WebSocket is closed with 1011.
    fn forwarder_gone(&self) {
        self.forget_forwarder();
        let waiters = self.inflight.borrow_mut().drain();
        drop(waiters);
        let streams = self.streams.borrow_mut().drain();
        for tx in streams.into_iter().filter_map(|(_, s)| s.body) {
            let _ = tx.unbounded_send(Err(Error::RustError(
                "the tunnel's forwarder disconnected midway".into(),
            )));
        }
        for public in self.state.get_websockets_with_tag(PUBLIC_TAG) {
            let _ = public.close(Some(1011), Some("the tunnel's forwarder disconnected"));
        }
    }
}

impl DurableObject for Tunnel {
    fn new(state: State, env: Env) -> Self {
        let shared = TunnelState {
            state,
            config: Config::from_env(&env),
            inflight: RefCell::new(Inflight::new(random_u64())),
            streams: Rc::new(RefCell::new(StreamTable::new(
                random_u64() as u32,
                MAX_STREAMS,
            ))),
            held: RefCell::new(Vec::new()),
            dead: RefCell::new(Vec::new()),
            policy: RefCell::new(None),
            live: RefCell::new(None),
            outbox: Rc::new(RefCell::new(Outbox::new())),
            stream_ids: js_sys::WeakMap::new(),
        };
        Self {
            shared: Rc::new(shared),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        if req.headers().has(FLOOR_HEADER)? {
            return Response::ok("ok");
        }
        if let Some(control) = req.headers().get(CONTROL_HEADER)? {
            let meta: ControlMeta = serde_json::from_str(&control)?;
            return self.accept_control(meta).await;
        }
        let Some(meta) = req.headers().get(META_HEADER)? else {
            return text(400, "request reached the tunnel without routing metadata");
        };
        let meta: RequestMeta = serde_json::from_str(&meta)?;
        let upgrade = req.headers().get("upgrade")?.unwrap_or_default();
        if upgrade.eq_ignore_ascii_case("websocket") {
            if let Some(forwarder) = self.ready_forwarder().await? {
                if let Some(refusal) = self.enforce(&req, &meta, None).await? {
                    return Ok(refusal);
                }
                return self.open_stream(req, meta, forwarder).await;
            }
        }
        self.relay(req, meta).await
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        reason: String,
        _clean: bool,
    ) -> Result<()> {
        if let Some(stream_id) = self.stream_of(&ws) {
            let code = u16::try_from(code).unwrap_or(1011);
            if let Some(f) = self.forwarder() {
                let close = Message::WsClose {
                    stream_id,
                    code,
                    reason: reason.clone(),
                };
                self.flush_outbox(&f);
                let _ = f.send_with_str(close.encode());
            }
            let _ = ws.close(v2::sendable_close_code(code), Some(reason));
            self.streams.borrow_mut().detach(stream_id, PartKind::Input);
            return Ok(());
        }
        self.forget_forwarder();
        if !self.superseded(&ws) {
            self.forwarder_gone();
            self.released(&ws, code == 1000).await?;
        }
        // Complete the closing handshake; the socket may already be closed.
        let _ = ws.close(Some(1000), Some("forwarder closed the tunnel"));
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, error: Error) -> Result<()> {
        if let Some(stream_id) = self.stream_of(&ws) {
            if let Some(f) = self.forwarder() {
                let close = Message::WsClose {
                    stream_id,
                    code: 1006,
                    reason: format!("public socket error: {error}"),
                };
                self.flush_outbox(&f);
                let _ = f.send_with_str(close.encode());
            }
            self.streams.borrow_mut().detach(stream_id, PartKind::Input);
            return Ok(());
        }
        console_warn!("forwarder socket error: {error}");
        self.forget_forwarder();
        if !self.superseded(&ws) {
            self.forwarder_gone();
            self.released(&ws, false).await?;
        }
        Ok(())
    }
}

/// The hibernatable WebSocket events, exported by hand rather than by
/// `#[durable_object]`, which makes every event an async function: a
/// promise, a spawned task and a microtask per relayed public message,
/// which workerd then awaits (a quarter of its CPU per message in the
/// 100 B echo benchmark). Most messages need no waiting (a public message
/// relayed to the forwarder, a binary frame or batch from it), so
/// `webSocketMessage` handles them at once and returns `undefined`; only
/// the forwarder's text messages (which may touch storage) get a promise.
#[wasm_bindgen(
    wasm_bindgen = ::worker::wasm_bindgen,
    wasm_bindgen_futures = ::worker::wasm_bindgen_futures,
    js_sys = ::worker::js_sys
)]
impl Tunnel {
    /// A message on a hibernatable socket: a public socket's or the
    /// forwarder's.
    #[wasm_bindgen(js_name = webSocketMessage)]
    pub fn web_socket_message(
        &self,
        ws: worker_sys::web_sys::WebSocket,
        message: JsValue,
    ) -> std::result::Result<JsValue, JsValue> {
        let ws = WebSocket::from(ws);
        let message = match message.as_string() {
            Some(text) => WebSocketIncomingMessage::String(text),
            None => WebSocketIncomingMessage::Binary(js_sys::Uint8Array::new(&message).to_vec()),
        };
        // The live forwarder's messages skip the tag lookup.
        let from_forwarder = self
            .live
            .borrow()
            .as_ref()
            .is_some_and(|(live, _)| live == &ws);
        if !from_forwarder {
            if let Some(stream_id) = self.stream_of(&ws) {
                return handled(self.on_public_message(&ws, stream_id, message));
            }
        }
        match message {
            WebSocketIncomingMessage::Binary(bytes) => handled(self.on_binary(&bytes)),
            WebSocketIncomingMessage::String(text) => {
                let shared = Rc::clone(&self.shared);
                let answered = async move {
                    shared
                        .on_text(&ws, &text)
                        .await
                        .map(|()| JsValue::NULL)
                        .map_err(JsValue::from)
                };
                Ok(wasm_bindgen_futures::future_to_promise(answered).into())
            }
        }
    }

    /// A hibernatable socket closed.
    #[wasm_bindgen(js_name = webSocketClose)]
    pub async fn web_socket_close(
        &self,
        ws: worker_sys::web_sys::WebSocket,
        code: usize,
        reason: String,
        was_clean: bool,
    ) -> std::result::Result<JsValue, JsValue> {
        DurableObject::websocket_close(self, ws.into(), code, reason, was_clean)
            .await
            .map(|()| JsValue::NULL)
            .map_err(JsValue::from)
    }

    /// A hibernatable socket failed.
    #[wasm_bindgen(js_name = webSocketError)]
    pub async fn web_socket_error(
        &self,
        ws: worker_sys::web_sys::WebSocket,
        error: JsValue,
    ) -> std::result::Result<JsValue, JsValue> {
        DurableObject::websocket_error(self, ws.into(), error.into())
            .await
            .map(|()| JsValue::NULL)
            .map_err(JsValue::from)
    }
}

/// What a handler that finished at once returns to workerd.
fn handled(result: Result<()>) -> std::result::Result<JsValue, JsValue> {
    result.map(|()| JsValue::UNDEFINED).map_err(JsValue::from)
}
