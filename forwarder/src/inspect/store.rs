//! What the inspector remembers: the last N exchanges (HTTP requests and
//! relayed WebSocket sessions), each body cut at a byte cap, each
//! WebSocket session's frames bounded too. No IO and no clock: the driver
//! (`inspect::Inspector`) feeds events with their time, the server reads
//! snapshots. Bounded memory: at most `max_entries` x (2 bodies of `body_cap`
//! or `SESSION_BODY_CAPS` x `body_cap` of WebSocket frames) at any time.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;
use tunnel_proto::Headers;

use super::mqtt::{MqttDecoder, MqttPacket};

/// Frames kept per WebSocket session (older ones are dropped and counted).
pub const MAX_FRAMES: usize = 1000;

/// Captured bytes kept per WebSocket session, in body caps: older frames
/// go first.
pub const SESSION_BODY_CAPS: usize = 8;

/// A body as captured: the first `cap` bytes and the real length.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Captured {
    /// The bytes kept (base64 in JSON).
    #[serde(serialize_with = "as_base64")]
    pub bytes: Vec<u8>,
    /// Bytes seen in total.
    pub total: u64,
}

impl Captured {
    fn push(&mut self, chunk: &[u8], cap: usize) {
        self.total += chunk.len() as u64;
        let room = cap.saturating_sub(self.bytes.len());
        self.bytes
            .extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
    }

    /// Whether bytes were cut off.
    pub fn truncated(&self) -> bool {
        self.total > self.bytes.len() as u64
    }
}

fn as_base64<T: AsRef<[u8]>, S: serde::Serializer>(bytes: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&tunnel_proto::v1::encode_body(bytes.as_ref()))
}

/// One HTTP request and its answer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Exchange {
    pub method: String,
    pub uri: String,
    pub request_headers: Headers,
    pub request_body: Captured,
    /// `None` while waiting for the answer.
    pub status: Option<u16>,
    pub response_headers: Headers,
    pub response_body: Captured,
    /// Milliseconds from the request to the end of the answer.
    pub duration_ms: Option<u64>,
    /// Why the local service could not answer.
    pub error: Option<String>,
    /// The entry this one replays.
    pub replay_of: Option<u64>,
}

/// Direction of a relayed WebSocket message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    /// From the public client to the local service.
    In,
    /// From the local service to the public client.
    Out,
}

/// One relayed WebSocket message.
#[derive(Debug, Clone, Serialize)]
pub struct WsFrame {
    pub dir: Dir,
    pub at_ms: u64,
    pub text: bool,
    pub payload: Captured,
    /// MQTT packets this message completed (MQTT streams only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mqtt: Vec<MqttPacket>,
}

/// One relayed WebSocket session.
#[derive(Debug, Default, Serialize)]
pub struct WsSession {
    pub uri: String,
    pub protocols: Vec<String>,
    /// Decoded as MQTT (subprotocol `mqtt*` or an MQTT TCP route).
    pub mqtt: bool,
    /// 101, or the refusal status.
    pub status: Option<u16>,
    pub frames: VecDeque<WsFrame>,
    /// Frames dropped because the session had more than [`MAX_FRAMES`].
    pub dropped: u64,
    /// Close code and reason, and who closed.
    pub closed: Option<(u16, String, Dir)>,
    #[serde(skip)]
    kept_bytes: usize,
    #[serde(skip)]
    decoders: Option<(MqttDecoder, MqttDecoder)>,
}

/// What an entry is.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Kind {
    Http(Exchange),
    Ws(WsSession),
}

/// One entry of the inspector.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub id: u64,
    /// Unix ms when it started.
    pub started_ms: u64,
    #[serde(flatten)]
    pub kind: Kind,
}

/// The list view of an entry (no bodies, no frames).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub id: u64,
    pub started_ms: u64,
    pub kind: &'static str,
    pub method: String,
    pub uri: String,
    pub status: Option<u16>,
    pub duration_ms: Option<u64>,
    /// Response bytes (HTTP) or message count (WebSocket).
    pub size: u64,
    pub mqtt: bool,
    pub replay_of: Option<u64>,
}

/// The bounded store.
#[derive(Debug)]
pub struct Store {
    max_entries: usize,
    body_cap: usize,
    entries: VecDeque<Entry>,
    next_id: u64,
    /// Live streams of the current control session (v2 stream id -> entry).
    streams: HashMap<u32, u64>,
    /// Requests waiting for their answer (request id -> entry).
    requests: HashMap<String, u64>,
}

impl Store {
    /// Keep the last `max_entries` entries, bodies and messages cut at
    /// `body_cap` bytes.
    pub fn new(max_entries: usize, body_cap: usize) -> Self {
        Self {
            max_entries: max_entries.max(1),
            body_cap,
            entries: VecDeque::new(),
            next_id: 1,
            streams: HashMap::new(),
            requests: HashMap::new(),
        }
    }

    fn push(&mut self, started_ms: u64, kind: Kind) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push_back(Entry {
            id,
            started_ms,
            kind,
        });
        while self.entries.len() > self.max_entries {
            if let Some(old) = self.entries.pop_front() {
                self.streams.retain(|_, e| *e != old.id);
                self.requests.retain(|_, e| *e != old.id);
            }
        }
        id
    }

    fn entry_mut(&mut self, id: u64) -> Option<&mut Entry> {
        // Ids grow with the position: a binary search finds it.
        let pos = self.entries.binary_search_by_key(&id, |e| e.id).ok()?;
        self.entries.get_mut(pos)
    }

    /// An entry by id.
    pub fn get(&self, id: u64) -> Option<&Entry> {
        let pos = self.entries.binary_search_by_key(&id, |e| e.id).ok()?;
        self.entries.get(pos)
    }

    fn http_mut(&mut self, id: u64) -> Option<&mut Exchange> {
        match &mut self.entry_mut(id)?.kind {
            Kind::Http(x) => Some(x),
            Kind::Ws(_) => None,
        }
    }

    fn ws_mut(&mut self, id: u64) -> Option<&mut WsSession> {
        match &mut self.entry_mut(id)?.kind {
            Kind::Ws(s) => Some(s),
            Kind::Http(_) => None,
        }
    }

    /// A request arrived (`body`: what came with it; streamed bodies follow
    /// with [`Self::request_chunk`]).
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &mut self,
        now_ms: u64,
        request_id: &str,
        stream_id: Option<u32>,
        method: &str,
        uri: &str,
        headers: &Headers,
        body: &[u8],
        replay_of: Option<u64>,
    ) -> u64 {
        let mut request_body = Captured::default();
        request_body.push(body, self.body_cap);
        let id = self.push(
            now_ms,
            Kind::Http(Exchange {
                method: method.into(),
                uri: uri.into(),
                request_headers: headers.clone(),
                request_body,
                replay_of,
                ..Default::default()
            }),
        );
        self.requests.insert(request_id.into(), id);
        if let Some(s) = stream_id {
            self.streams.insert(s, id);
        }
        id
    }

    /// A chunk of the request body on `stream_id`.
    pub fn request_chunk(&mut self, stream_id: u32, chunk: &[u8]) {
        let cap = self.body_cap;
        if let Some(id) = self.streams.get(&stream_id).copied() {
            if let Some(x) = self.http_mut(id) {
                x.request_body.push(chunk, cap);
            }
        }
    }

    /// Status and headers of the answer to `request_id`.
    pub fn response_head(&mut self, request_id: &str, status: u16, headers: &Headers) {
        if let Some(id) = self.requests.get(request_id).copied() {
            self.set_head(id, status, headers);
        }
    }

    /// Status and headers of the streamed answer on `stream_id` (its
    /// `http_response_head` may reach the edge after the request is done).
    pub fn response_head_on(&mut self, stream_id: u32, status: u16, headers: &Headers) {
        if let Some(id) = self.streams.get(&stream_id).copied() {
            self.set_head(id, status, headers);
        }
    }

    fn set_head(&mut self, id: u64, status: u16, headers: &Headers) {
        if let Some(x) = self.http_mut(id) {
            x.status = Some(status);
            x.response_headers = headers.clone();
        }
    }

    /// A chunk of a streamed answer body on `stream_id`.
    pub fn response_chunk(&mut self, stream_id: u32, chunk: &[u8]) {
        let cap = self.body_cap;
        if let Some(id) = self.streams.get(&stream_id).copied() {
            if let Some(x) = self.http_mut(id) {
                x.response_body.push(chunk, cap);
            }
        }
    }

    /// The answer to `request_id` is complete (`body`: a whole answer's
    /// body; `error`: why there is none).
    pub fn response_done(
        &mut self,
        request_id: &str,
        status: u16,
        body: Option<&[u8]>,
        error: Option<String>,
        duration_ms: u64,
    ) {
        let cap = self.body_cap;
        let Some(id) = self.requests.remove(request_id) else {
            return;
        };
        // The stream stays mapped: body frames of a streamed answer may
        // still be on their way to the edge (see `stream_ended`).
        if let Some(x) = self.http_mut(id) {
            x.status = Some(status);
            if let Some(body) = body {
                x.response_body.push(body, cap);
            }
            x.error = error;
            x.duration_ms = Some(duration_ms);
        }
    }

    /// A public WebSocket on `stream_id` asks to open.
    pub fn ws_open(
        &mut self,
        now_ms: u64,
        stream_id: u32,
        uri: &str,
        protocols: &[String],
        mqtt: bool,
    ) -> u64 {
        let id = self.push(
            now_ms,
            Kind::Ws(WsSession {
                uri: uri.into(),
                protocols: protocols.to_vec(),
                mqtt,
                decoders: mqtt.then(|| (MqttDecoder::new(), MqttDecoder::new())),
                ..Default::default()
            }),
        );
        self.streams.insert(stream_id, id);
        id
    }

    /// The local side answered the open (101 or a refusal).
    pub fn ws_status(&mut self, stream_id: u32, status: u16) {
        if let Some(id) = self.streams.get(&stream_id).copied() {
            if let Some(s) = self.ws_mut(id) {
                s.status = Some(status);
            }
        }
    }

    /// One message relayed on `stream_id`.
    pub fn ws_message(
        &mut self,
        now_ms: u64,
        stream_id: u32,
        dir: Dir,
        text: bool,
        payload: &[u8],
    ) {
        let cap = self.body_cap;
        let Some(id) = self.streams.get(&stream_id).copied() else {
            return;
        };
        let Some(s) = self.ws_mut(id) else {
            return;
        };
        let mqtt = match &mut s.decoders {
            Some((inbound, outbound)) if !text => match dir {
                Dir::In => inbound.push(payload),
                Dir::Out => outbound.push(payload),
            },
            _ => Vec::new(),
        };
        // The protocol level of CONNECT decides how both directions decode.
        if let Some((inbound, outbound)) = &mut s.decoders {
            if let Some(v5) = inbound.v5().or(outbound.v5()) {
                inbound.set_v5(v5);
                outbound.set_v5(v5);
            }
        }
        let mut captured = Captured::default();
        captured.push(payload, cap);
        s.kept_bytes += captured.bytes.len();
        s.frames.push_back(WsFrame {
            dir,
            at_ms: now_ms,
            text,
            payload: captured,
            mqtt,
        });
        while s.frames.len() > MAX_FRAMES || s.kept_bytes > SESSION_BODY_CAPS * cap {
            let Some(old) = s.frames.pop_front() else {
                break;
            };
            s.kept_bytes -= old.payload.bytes.len();
            s.dropped += 1;
        }
    }

    /// Stream `stream_id` closed (by `dir`'s side).
    pub fn ws_close(&mut self, stream_id: u32, code: u16, reason: &str, dir: Dir) {
        if let Some(id) = self.streams.remove(&stream_id) {
            if let Some(s) = self.ws_mut(id) {
                s.closed.get_or_insert((code, reason.into(), dir));
            }
        }
    }

    /// Stream `stream_id` has sent its last frame: later frames with that
    /// id belong to something else.
    pub fn stream_ended(&mut self, stream_id: u32) {
        self.streams.remove(&stream_id);
    }

    /// The control session ended: its stream ids mean nothing any more.
    pub fn session_ended(&mut self) {
        self.streams.clear();
        self.requests.clear();
    }

    /// The list, oldest first, of entries newer than `after`.
    pub fn summaries(&self, after: u64) -> Vec<Summary> {
        self.entries
            .iter()
            .filter(|e| e.id > after)
            .map(|e| match &e.kind {
                Kind::Http(x) => Summary {
                    id: e.id,
                    started_ms: e.started_ms,
                    kind: "http",
                    method: x.method.clone(),
                    uri: x.uri.clone(),
                    status: x.status,
                    duration_ms: x.duration_ms,
                    size: x.response_body.total,
                    mqtt: false,
                    replay_of: x.replay_of,
                },
                Kind::Ws(s) => Summary {
                    id: e.id,
                    started_ms: e.started_ms,
                    kind: "ws",
                    method: "WS".into(),
                    uri: s.uri.clone(),
                    status: s.status,
                    duration_ms: None,
                    size: s.dropped + s.frames.len() as u64,
                    mqtt: s.mqtt,
                    replay_of: None,
                },
            })
            .collect()
    }

    /// Every entry, oldest first (HAR export).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), vec![v.to_string()]))
            .collect()
    }

    #[test]
    fn keeps_the_last_n_entries_and_caps_bodies() {
        let mut s = Store::new(3, 4);
        for i in 0..5 {
            let rid = format!("r{i}");
            s.request(
                i,
                &rid,
                Some(i as u32),
                "POST",
                "/x",
                &Headers::new(),
                b"abcdef",
                None,
            );
            s.response_done(&rid, 200, Some(b"0123456789"), None, 7);
        }
        let list = s.summaries(0);
        assert_eq!(list.iter().map(|e| e.id).collect::<Vec<_>>(), [3, 4, 5]);
        assert!(s.get(1).is_none());
        let Kind::Http(x) = &s.get(5).unwrap().kind else {
            panic!()
        };
        assert_eq!(x.request_body.bytes, b"abcd");
        assert_eq!(
            (x.request_body.total, x.request_body.truncated()),
            (6, true)
        );
        assert_eq!(x.response_body.bytes, b"0123");
        assert_eq!(list[2].size, 10);
        assert_eq!(s.summaries(4).len(), 1);
    }

    #[test]
    fn streamed_bodies_and_heads_find_their_entry() {
        let mut s = Store::new(10, 100);
        let id = s.request(
            1,
            "r",
            Some(9),
            "PUT",
            "/up",
            &headers(&[("a", "b")]),
            b"",
            None,
        );
        s.request_chunk(9, b"he");
        s.request_chunk(9, b"llo");
        s.response_chunk(9, b"ok");
        s.response_done("r", 201, None, None, 12);
        // The head and the last chunk are sent after the task finished.
        s.response_head_on(9, 201, &headers(&[("content-type", "text/plain")]));
        // Frames queued before the answer was done still count.
        s.response_chunk(9, b"!");
        s.stream_ended(9);
        // Later chunks on a reused stream id do not land here.
        s.response_chunk(9, b"late");
        let Kind::Http(x) = &s.get(id).unwrap().kind else {
            panic!()
        };
        assert_eq!(x.request_body.bytes, b"hello");
        assert_eq!(x.response_body.bytes, b"ok!");
        assert_eq!((x.status, x.duration_ms), (Some(201), Some(12)));
        assert_eq!(x.response_headers["content-type"], ["text/plain"]);
    }

    #[test]
    fn websocket_frames_are_bounded_and_closed_once() {
        // Count bound: empty messages keep no bytes.
        let mut s = Store::new(10, 3);
        let id = s.ws_open(1, 4, "/ws", &[], false);
        s.ws_status(4, 101);
        for i in 0..(MAX_FRAMES + 5) {
            s.ws_message(i as u64, 4, Dir::In, true, b"");
        }
        s.ws_message(9, 4, Dir::Out, true, b"hello");
        s.ws_close(4, 1000, "bye", Dir::Out);
        s.ws_close(4, 1001, "again", Dir::In);
        let Kind::Ws(w) = &s.get(id).unwrap().kind else {
            panic!()
        };
        assert_eq!(w.frames.len(), MAX_FRAMES);
        assert_eq!(w.dropped, 6);
        assert_eq!(w.frames.back().unwrap().payload.bytes, b"hel");
        assert_eq!(w.closed, Some((1000, "bye".into(), Dir::Out)));
        assert_eq!(s.summaries(0)[0].size, (MAX_FRAMES + 6) as u64);
        // Byte bound: 8 caps of 100 bytes keep 8 frames.
        let mut s = Store::new(10, 100);
        let id = s.ws_open(1, 5, "/ws", &[], false);
        for _ in 0..20 {
            s.ws_message(1, 5, Dir::Out, false, &[7; 150]);
        }
        let Kind::Ws(w) = &s.get(id).unwrap().kind else {
            panic!()
        };
        assert_eq!((w.frames.len(), w.dropped), (SESSION_BODY_CAPS, 12));
    }

    #[test]
    fn mqtt_streams_decode_packets_across_split_messages() {
        let mut s = Store::new(10, 1024);
        let id = s.ws_open(1, 2, "/mqtt", &["mqtt".into()], true);
        // CONNECT (3.1.1, client id "c"), split in two messages as MQTT.js does.
        let connect = [
            0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'c',
        ];
        s.ws_message(1, 2, Dir::In, false, &connect[..2]);
        s.ws_message(2, 2, Dir::In, false, &connect[2..]);
        // PUBLISH QoS 1 topic "a/b" id 7 payload "hi".
        let publish = [0x32, 9, 0, 3, b'a', b'/', b'b', 0, 7, b'h', b'i'];
        s.ws_message(3, 2, Dir::Out, false, &publish);
        let Kind::Ws(w) = &s.get(id).unwrap().kind else {
            panic!()
        };
        assert!(w.frames[0].mqtt.is_empty());
        assert_eq!(w.frames[1].mqtt[0].kind, "CONNECT");
        let p = &w.frames[2].mqtt[0];
        assert_eq!(
            (p.kind, p.topic.as_deref(), p.qos, p.packet_id),
            ("PUBLISH", Some("a/b"), Some(1), Some(7))
        );
        assert_eq!(p.payload_preview.as_deref(), Some("hi"));
    }
}
