//! v2 extensions: version negotiation, the binary data frame layout and the
//! rules around relayed WebSockets (close codes, subprotocols).
//!
//! Control messages of v2 (`ws_open`, `ws_opened`, `ws_refused`,
//! `ws_close`) are JSON text frames like v1 (see [`crate::Message`]);
//! payloads travel in binary frames with this fixed 6-byte header:
//!
//! ```text
//! byte 0     kind   1 = WebSocket message, 2 = body chunk; v3 (see
//!                   `crate::heads`): 3 = batch, 4 = request, 5 = response
//! byte 1     flags  bit 0 (0x01) TEXT: the message is a text message
//!                   bit 1 (0x02) END: last chunk of a body
//!                   bit 2 (0x04) ABORT: the body failed, or (edge to forwarder,
//!                   on an answer's stream) nobody reads it: discard the stream
//! bytes 2..6 stream id, u32 big-endian
//! bytes 6..  payload (a whole message, or a body chunk of at most MAX_CHUNK)
//! ```
//!
//! Answer bodies of v2 forwarders are streamed: `http_response_head`, then
//! body chunks; the forwarder sends at most [`WINDOW`] bytes beyond what the
//! edge acknowledged with `window` messages (sent as the public reader
//! consumes), so neither side buffers more than that per stream.

/// Protocol version a v2 forwarder announces in `ready` and the edge
/// confirms in `connection_established`.
pub const VERSION: u32 = 2;

/// Length of the binary frame header.
pub const HEADER_LEN: usize = 6;

/// Flag: the payload is a text message (UTF-8).
pub const FLAG_TEXT: u8 = 0x01;
/// Flag: last chunk of a body.
pub const FLAG_END: u8 = 0x02;
/// Flag: the body failed midway; the receiver aborts the stream.
pub const FLAG_ABORT: u8 = 0x04;

/// Largest body chunk in one frame.
pub const MAX_CHUNK: usize = 256 * 1024;

/// Body bytes a sender may have unacknowledged per stream.
pub const WINDOW: u32 = 1024 * 1024;

/// What a binary frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// One whole message of a relayed WebSocket.
    WsMessage = 1,
    /// A chunk of a streamed body.
    Body = 2,
    /// v3: several frames in one message ([`crate::heads::unbatch`]).
    Batch = 3,
    /// v3: a relayed request's head and body ([`crate::heads::RequestHead`]).
    Request = 4,
    /// v3: an answer's head and first body bytes
    /// ([`crate::heads::ResponseHead`]).
    Response = 5,
}

/// One decoded binary frame, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// What the payload is.
    pub kind: FrameKind,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// Stream the frame belongs to.
    pub stream_id: u32,
    /// The message bytes.
    pub payload: &'a [u8],
}

/// A binary frame that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("binary tunnel frame of {0} bytes is shorter than its {HEADER_LEN}-byte header")]
    Short(usize),
    #[error("unknown binary tunnel frame kind {0}; this side speaks tunnel protocol v2")]
    UnknownKind(u8),
}

impl<'a> Frame<'a> {
    /// A WebSocket message frame.
    pub fn ws_message(stream_id: u32, text: bool, payload: &'a [u8]) -> Self {
        Frame {
            kind: FrameKind::WsMessage,
            flags: if text { FLAG_TEXT } else { 0 },
            stream_id,
            payload,
        }
    }

    /// A body chunk frame with `flags` (`FLAG_END`, `FLAG_ABORT`).
    pub fn body(stream_id: u32, flags: u8, payload: &'a [u8]) -> Self {
        Frame {
            kind: FrameKind::Body,
            flags,
            stream_id,
            payload,
        }
    }

    /// Whether the END flag is set.
    pub fn is_end(&self) -> bool {
        self.flags & FLAG_END != 0
    }

    /// Whether the ABORT flag is set.
    pub fn is_abort(&self) -> bool {
        self.flags & FLAG_ABORT != 0
    }

    /// Whether the TEXT flag is set.
    pub fn is_text(&self) -> bool {
        self.flags & FLAG_TEXT != 0
    }

    /// Encode header and payload into one buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.push(self.kind as u8);
        out.push(self.flags);
        out.extend_from_slice(&self.stream_id.to_be_bytes());
        out.extend_from_slice(self.payload);
        out
    }

    /// Decode one binary frame.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, FrameError> {
        let (header, payload) = bytes
            .split_at_checked(HEADER_LEN)
            .ok_or(FrameError::Short(bytes.len()))?;
        let [kind, flags, a, b, c, d] = *header else {
            return Err(FrameError::Short(bytes.len()));
        };
        let kind = match kind {
            1 => FrameKind::WsMessage,
            2 => FrameKind::Body,
            3 => FrameKind::Batch,
            4 => FrameKind::Request,
            5 => FrameKind::Response,
            other => return Err(FrameError::UnknownKind(other)),
        };
        Ok(Frame {
            kind,
            flags,
            stream_id: u32::from_be_bytes([a, b, c, d]),
            payload,
        })
    }
}

/// The receiving side's count of a stream's body bytes received but not
/// yet consumed (and so not yet acknowledged with `window`). A sender never
/// has more than [`WINDOW`] bytes unacknowledged, so more than that here
/// means the sender ignores the window: the stream must be dropped rather
/// than buffered.
#[derive(Debug, Default)]
pub struct Unacked(u64);

impl Unacked {
    /// `n` more bytes arrived; `Err` names the violation when the sender
    /// went past its window.
    pub fn received(&mut self, n: usize) -> Result<(), String> {
        self.0 = self.0.saturating_add(n as u64);
        if self.0 > u64::from(WINDOW) {
            Err(format!(
                "the peer sent {} body bytes beyond what this side acknowledged (window {WINDOW}); stream dropped",
                self.0
            ))
        } else {
            Ok(())
        }
    }

    /// `n` bytes were consumed (and acknowledged).
    pub fn consumed(&mut self, n: usize) {
        self.0 = self.0.saturating_sub(n as u64);
    }

    /// Bytes received and not consumed yet.
    pub fn get(&self) -> u64 {
        self.0
    }
}

/// The version the edge answers a forwarder's `ready` version with: none
/// (v1) below 2, else the highest both speak (v3: binary heads and
/// batches, [`crate::heads`]).
pub fn negotiate(requested: Option<u32>) -> Option<u32> {
    requested
        .filter(|v| *v >= VERSION)
        .map(|v| v.min(crate::heads::VERSION))
}

/// Header by which a reconnecting forwarder presents its resume token on
/// the control-socket upgrade.
pub const RESUME_HEADER: &str = "x-tunnel-resume";

/// How long after its forwarder left a tunnel id can be resumed.
pub const RESUME_GRACE_MS: u64 = 10 * 60 * 1000;

/// Length of the secret part of a resume token (hex characters).
pub const RESUME_SECRET_LEN: usize = 32;

/// A resume token: `<tunnel id>.<32 hex characters>`.
pub fn resume_token(tunnel_id: &str, secret: [u8; RESUME_SECRET_LEN / 2]) -> String {
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    format!("{tunnel_id}.{hex}")
}

/// The tunnel id a well-formed resume token names.
pub fn resume_token_id(token: &str) -> Option<&str> {
    let (id, secret) = token.trim().split_once('.')?;
    let secret_ok =
        secret.len() == RESUME_SECRET_LEN && secret.bytes().all(|b| b.is_ascii_hexdigit());
    (crate::route::is_tunnel_id(id) && secret_ok).then_some(id)
}

/// Whether `presented` resumes a tunnel whose stored token is `stored`:
/// `live` when a forwarder holds it now, `released_at_ms` when the last one
/// left. `Err((status, reason))` for the upgrade answer: 410 when the
/// tunnel is unknown or its grace period is over (open a new one), 403 when
/// the token is wrong (a different holder never takes over).
pub fn check_resume(
    stored: Option<&str>,
    presented: &str,
    live: bool,
    released_at_ms: Option<u64>,
    now_ms: u64,
) -> Result<(), (u16, String)> {
    use subtle::ConstantTimeEq;
    let Some(stored) = stored else {
        return Err((
            410,
            "unknown tunnel: nothing to resume; open a new tunnel".into(),
        ));
    };
    if !bool::from(stored.as_bytes().ct_eq(presented.trim().as_bytes())) {
        return Err((
            403,
            "the resume token does not match: this tunnel belongs to another forwarder".into(),
        ));
    }
    let expired = released_at_ms.is_some_and(|t| now_ms.saturating_sub(t) > RESUME_GRACE_MS);
    if !live && expired {
        return Err((
            410,
            format!(
                "the tunnel was released more than {} s ago; open a new tunnel",
                RESUME_GRACE_MS / 1000
            ),
        ));
    }
    Ok(())
}

/// How long a forwarder that pings every `ping_interval_ms` may stay
/// silent before the edge treats it as gone: two missed pings plus 2 s
/// (`ttf` pings every 5 s: 12 s). At least 5 s.
pub fn silence_limit(ping_interval_ms: u64) -> u64 {
    ping_interval_ms
        .saturating_mul(2)
        .saturating_add(2000)
        .max(5000)
}

/// How long a forwarder has been silent, when that is over its limit:
/// `heard_ms` is when it last pinged (or connected), `ping_interval_ms` what
/// it announced in `ready` (`None`: it did not promise to ping, never
/// judged by silence).
pub fn silent_for(heard_ms: u64, ping_interval_ms: Option<u64>, now_ms: u64) -> Option<u64> {
    let silence = now_ms.saturating_sub(heard_ms);
    (silence > silence_limit(ping_interval_ms?)).then_some(silence)
}

/// Close code "no status received": a close frame without a code.
pub const CLOSE_NO_STATUS: u16 = 1005;

/// The code to put in a close frame for a relayed `code`: `None` for 1005
/// (close without a code); codes an endpoint may not send (1004, 1006,
/// 1015, undefined ranges) become 1011 (internal error).
pub fn sendable_close_code(code: u16) -> Option<u16> {
    match code {
        CLOSE_NO_STATUS => None,
        1000..=1003 | 1007..=1014 | 3000..=4999 => Some(code),
        _ => Some(1011),
    }
}

/// The subprotocol a bridge answers with: `mqtt` (or the older `mqttv3.1`)
/// if the client offered it, else none.
pub fn mqtt_subprotocol(requested: &[String]) -> Option<String> {
    requested
        .iter()
        .find(|p| p.as_str() == "mqtt" || p.as_str() == "mqttv3.1")
        .cloned()
}

/// Split a `Sec-WebSocket-Protocol` header value into the offered names.
pub fn parse_subprotocols(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarder_is_gone_after_two_missed_pings() {
        assert_eq!(silence_limit(5000), 12_000);
        assert_eq!(silence_limit(0), 5000);
        assert_eq!(silence_limit(u64::MAX), u64::MAX);
        assert_eq!(silent_for(1000, Some(5000), 13_000), None);
        assert_eq!(silent_for(1000, Some(5000), 13_001), Some(12_001));
        assert_eq!(silent_for(1000, None, u64::MAX), None, "v1: never judged");
        assert_eq!(silent_for(5000, Some(5000), 1000), None, "clock behind");
    }

    #[test]
    fn unacked_bytes_may_not_pass_the_window() {
        let mut u = Unacked::default();
        for _ in 0..4 {
            u.received(MAX_CHUNK).unwrap();
        }
        u.consumed(MAX_CHUNK);
        u.received(MAX_CHUNK).unwrap();
        let e = u.received(1).unwrap_err();
        assert!(e.contains("window"), "{e}");
        u.consumed(usize::MAX);
        u.received(WINDOW as usize).unwrap();
    }

    #[test]
    fn frame_roundtrip_and_layout() {
        let f = Frame::ws_message(0x0102_0304, true, b"hi");
        let bytes = f.encode();
        assert_eq!(bytes, vec![1, FLAG_TEXT, 1, 2, 3, 4, b'h', b'i']);
        let back = Frame::decode(&bytes).unwrap();
        assert_eq!(back, f);
        assert!(back.is_text());
        let empty = Frame::ws_message(7, false, b"").encode();
        let back = Frame::decode(&empty).unwrap();
        assert!(!back.is_text() && back.payload.is_empty() && back.stream_id == 7);
        let end = Frame::body(9, FLAG_END, b"x").encode();
        assert_eq!(end, vec![2, FLAG_END, 0, 0, 0, 9, b'x']);
        let back = Frame::decode(&end).unwrap();
        assert!(back.kind == FrameKind::Body && back.is_end() && !back.is_abort());
        assert!(Frame::decode(&Frame::body(9, FLAG_ABORT, b"").encode())
            .unwrap()
            .is_abort());
    }

    #[test]
    fn bad_frames_are_clear_errors() {
        assert_eq!(Frame::decode(&[1, 0, 0]), Err(FrameError::Short(3)));
        let e = Frame::decode(&[9, 0, 0, 0, 0, 1]).unwrap_err();
        assert_eq!(
            Frame::decode(&[6, 0, 0, 0, 0, 1]),
            Err(FrameError::UnknownKind(6))
        );
        assert_eq!(e, FrameError::UnknownKind(9));
        assert!(e.to_string().contains("unknown binary tunnel frame kind 9"));
    }

    #[test]
    fn version_negotiation() {
        assert_eq!(negotiate(None), None);
        assert_eq!(negotiate(Some(1)), None);
        assert_eq!(negotiate(Some(2)), Some(2));
        assert_eq!(negotiate(Some(3)), Some(3));
        assert_eq!(negotiate(Some(7)), Some(3));
    }

    #[test]
    fn close_codes() {
        assert_eq!(sendable_close_code(1000), Some(1000));
        assert_eq!(sendable_close_code(4002), Some(4002));
        assert_eq!(sendable_close_code(1005), None);
        assert_eq!(sendable_close_code(1006), Some(1011));
        assert_eq!(sendable_close_code(1015), Some(1011));
        assert_eq!(sendable_close_code(999), Some(1011));
    }

    #[test]
    fn stream_control_messages_roundtrip() {
        use crate::Message;
        let open = Message::WsOpen {
            stream_id: 3,
            uri: "/mqtt".into(),
            headers: Default::default(),
            protocols: vec!["mqtt".into()],
        };
        assert_eq!(Message::decode(&open.encode()).unwrap(), open);
        let opened = Message::decode(r#"{"type":"ws_opened","stream_id":3,"protocol":"mqtt"}"#);
        assert_eq!(
            opened.unwrap(),
            Message::WsOpened {
                stream_id: 3,
                protocol: Some("mqtt".into())
            }
        );
        let head = Message::HttpResponseHead {
            request_id: "r".into(),
            stream_id: 4,
            status_code: 200,
            headers: Default::default(),
        };
        assert_eq!(Message::decode(&head.encode()).unwrap(), head);
        let window = Message::decode(r#"{"type":"window","stream_id":4,"bytes":65536}"#);
        assert_eq!(
            window.unwrap(),
            Message::Window {
                stream_id: 4,
                bytes: 65536
            }
        );
        let close = Message::decode(r#"{"type":"ws_close","stream_id":3,"code":4000}"#).unwrap();
        assert_eq!(
            close,
            Message::WsClose {
                stream_id: 3,
                code: 4000,
                reason: String::new()
            }
        );
    }

    #[test]
    fn resume_rules() {
        let token = resume_token("abc123def456", [0xab; 16]);
        assert_eq!(token, format!("abc123def456.{}", "ab".repeat(16)));
        assert_eq!(resume_token_id(&token), Some("abc123def456"));
        assert_eq!(resume_token_id("abc123def456.short"), None);
        assert_eq!(resume_token_id("BAD.0123"), None);
        assert_eq!(
            check_resume(Some(&token), &token, false, Some(1000), 2000),
            Ok(())
        );
        assert_eq!(check_resume(Some(&token), &token, true, None, 0), Ok(()));
        let wrong = resume_token("abc123def456", [0xcd; 16]);
        assert_eq!(
            check_resume(Some(&token), &wrong, true, None, 0)
                .unwrap_err()
                .0,
            403
        );
        assert_eq!(
            check_resume(None, &token, false, None, 0).unwrap_err().0,
            410
        );
        let late = RESUME_GRACE_MS + 1001;
        assert_eq!(
            check_resume(Some(&token), &token, false, Some(1000), late)
                .unwrap_err()
                .0,
            410
        );
    }

    #[test]
    fn subprotocols() {
        let offered = parse_subprotocols(&["mqtt, other".into(), " x ".into()]);
        assert_eq!(offered, vec!["mqtt", "other", "x"]);
        assert_eq!(mqtt_subprotocol(&offered).as_deref(), Some("mqtt"));
        assert_eq!(mqtt_subprotocol(&["chat".into()]), None);
    }
}
