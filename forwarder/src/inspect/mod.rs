//! The request inspector (`ttf --inspect`, default 127.0.0.1:4040): a local
//! web page that lists what came through the tunnel live, shows headers and
//! bodies, replays a request (optionally edited), copies it as curl, exports
//! HAR, shows relayed WebSocket streams frame by frame and decodes
//! MQTT-over-WebSocket streams into packets.
//!
//! The relay loop hands every control-socket frame it reads or writes to
//! [`Inspector`] (one tap for both directions, so the stream code stays
//! untouched); the bounded [`store::Store`] keeps the last N entries with
//! bodies cut at a cap; [`server`] serves the page and its JSON API.

pub mod export;
pub mod mqtt;
pub mod server;
pub mod store;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tunnel_proto::heads::{unbatch, RequestHead, ResponseHead};
use tunnel_proto::v1::decode_body;
use tunnel_proto::v2::{Frame, FrameKind};
use tunnel_proto::Message;

use crate::local::Outcome;
use store::{Dir, Store};

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Shared handle on the store; every change bumps a version the page
/// long-polls on.
#[derive(Clone)]
pub struct Inspector {
    store: Arc<Mutex<Store>>,
    version: Arc<watch::Sender<u64>>,
}

impl Inspector {
    /// Keep the last `max_entries`, bodies cut at `body_cap` bytes.
    pub fn new(max_entries: usize, body_cap: usize) -> Self {
        Self {
            store: Arc::new(Mutex::new(Store::new(max_entries, body_cap))),
            version: Arc::new(watch::channel(0).0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave the store
        // inconsistent in a way that matters for a debugging view.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Change the store and tell the waiting pages.
    pub fn update<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let r = f(&mut self.lock());
        self.version.send_modify(|v| *v += 1);
        r
    }

    /// Read the store.
    pub fn read<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.lock())
    }

    /// The change counter.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// A text frame from the edge (already decoded). `mqtt`: a `ws_open`
    /// to an MQTT route.
    pub fn edge_text(&self, message: &Message, mqtt_route: bool) {
        let now = now_ms();
        match message {
            Message::HttpRequest {
                request_id,
                method,
                uri,
                headers,
                body,
                stream_id,
                ..
            } => {
                let body = decode_body(body).unwrap_or_default();
                self.update(|s| {
                    s.request(
                        now, request_id, *stream_id, method, uri, headers, &body, None,
                    )
                });
            }
            Message::WsOpen {
                stream_id,
                uri,
                protocols,
                ..
            } => {
                let mqtt = mqtt_route || protocols.iter().any(|p| p.starts_with("mqtt"));
                self.update(|s| s.ws_open(now, *stream_id, uri, protocols, mqtt));
            }
            Message::WsClose {
                stream_id,
                code,
                reason,
            } => self.update(|s| s.ws_close(*stream_id, *code, reason, Dir::In)),
            _ => {}
        }
    }

    /// A relayed request in a binary frame (v3).
    pub fn binary_request(&self, head: &RequestHead, stream_id: u32, body: &[u8]) {
        let now = now_ms();
        self.update(|s| {
            s.request(
                now,
                &head.request_id,
                Some(stream_id),
                &head.method,
                &head.uri,
                &head.headers,
                body,
                None,
            )
        });
    }

    /// A binary frame from the edge (requests: [`Self::binary_request`]).
    pub fn edge_binary(&self, frame: &Frame<'_>) {
        match frame.kind {
            FrameKind::Batch | FrameKind::Request | FrameKind::Response => {}
            FrameKind::Body => self.update(|s| s.request_chunk(frame.stream_id, frame.payload)),
            FrameKind::WsMessage => self.update(|s| {
                s.ws_message(
                    now_ms(),
                    frame.stream_id,
                    Dir::In,
                    frame.is_text(),
                    frame.payload,
                )
            }),
        }
    }

    /// A frame `ttf` sends to the edge. Text frames are decoded only when
    /// they are stream messages (answers are recorded by [`Self::done`]).
    pub fn to_edge(&self, frame: &WsMessage) {
        match frame {
            WsMessage::Text(text) => {
                let text = text.as_str();
                let wanted = ["http_response_head", "ws_opened", "ws_refused", "ws_close"]
                    .iter()
                    .any(|t| text.starts_with(&format!(r#"{{"type":"{t}""#)));
                if !wanted {
                    return;
                }
                match Message::decode(text) {
                    Ok(Message::HttpResponseHead {
                        stream_id,
                        status_code,
                        headers,
                        ..
                    }) => self.update(|s| s.response_head_on(stream_id, status_code, &headers)),
                    Ok(Message::WsOpened { stream_id, .. }) => {
                        self.update(|s| s.ws_status(stream_id, 101))
                    }
                    Ok(Message::WsRefused {
                        stream_id,
                        status,
                        message,
                    }) => self.update(|s| {
                        s.ws_status(stream_id, status);
                        s.ws_close(stream_id, status, &message, Dir::Out);
                    }),
                    Ok(Message::WsClose {
                        stream_id,
                        code,
                        reason,
                    }) => self.update(|s| s.ws_close(stream_id, code, &reason, Dir::Out)),
                    _ => {}
                }
            }
            WsMessage::Binary(bytes) => {
                let Ok(frame) = Frame::decode(bytes) else {
                    return;
                };
                if frame.kind == FrameKind::Batch {
                    for inner in unbatch(&frame).map_while(Result::ok) {
                        self.frame_to_edge(&inner);
                    }
                } else {
                    self.frame_to_edge(&frame);
                }
            }
            _ => {}
        }
    }

    /// One binary frame `ttf` sends to the edge.
    fn frame_to_edge(&self, frame: &Frame<'_>) {
        match frame.kind {
            FrameKind::Response => {
                if let Ok((head, body)) = ResponseHead::decode(frame) {
                    self.update(|s| {
                        s.response_head_on(frame.stream_id, head.status, &head.headers);
                        if !body.is_empty() {
                            s.response_chunk(frame.stream_id, body);
                        }
                    });
                }
            }
            FrameKind::Batch | FrameKind::Request => {}
            FrameKind::Body => self.update(|s| s.response_chunk(frame.stream_id, frame.payload)),
            FrameKind::WsMessage => self.update(|s| {
                s.ws_message(
                    now_ms(),
                    frame.stream_id,
                    Dir::Out,
                    frame.is_text(),
                    frame.payload,
                )
            }),
        }
    }

    /// Request `request_id` was answered (or failed).
    pub fn done(&self, request_id: &str, outcome: &Outcome) {
        let ms = outcome.elapsed.as_millis() as u64;
        match &outcome.message {
            Some(Message::HttpResponse {
                status_code,
                headers,
                body,
                ..
            }) => {
                let body = decode_body(body).unwrap_or_default();
                self.update(|s| {
                    s.response_head(request_id, *status_code, headers);
                    s.response_done(request_id, *status_code, Some(&body), None, ms);
                });
            }
            Some(Message::Error { message, .. }) => self.update(|s| {
                s.response_done(request_id, outcome.status, None, Some(message.clone()), ms)
            }),
            _ => self.update(|s| {
                s.response_done(request_id, outcome.status, None, outcome.detail.clone(), ms)
            }),
        }
    }

    /// Stream `stream_id` sent its last frame to the edge.
    pub fn stream_ended(&self, stream_id: u32) {
        self.update(|s| s.stream_ended(stream_id));
    }

    /// The control session ended (stream ids are per session).
    pub fn session_ended(&self) {
        self.update(Store::session_ended);
    }
}
