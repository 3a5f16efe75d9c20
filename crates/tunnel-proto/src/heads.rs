//! Protocol v3 (issue 17): HTTP heads and bodies in binary frames, and
//! several frames in one WebSocket message. Negotiated like v2 (`ready`
//! with `"version": 3`, the edge answers 3); a v2 peer never sees these
//! frames. Layout of the payloads (after the 6-byte frame header of
//! [`crate::v2`]; integers big-endian, strings UTF-8):
//!
//! ```text
//! kind 3 BATCH     stream id 0, flags 0; payload: frames, each
//!                  u32 length + one whole frame of kind 1, 2, 4 or 5
//! kind 4 REQUEST   edge to forwarder, on the request's stream id
//!                  str16 request_id, str16 method, str32 uri, headers,
//!                  then the body: all of it when END is set, else none
//!                  (it follows as body frames within the window)
//! kind 5 RESPONSE  forwarder to edge, on the request's stream id
//!                  str16 request_id, u16 status, headers, then body
//!                  bytes; END set: that is the whole body, else more
//!                  body frames follow (the first counted in the window)
//! headers          u16 count, then count pairs of str16 name, str32 value
//! ```
//!
//! Why: a small request used to cost one JSON `http_request` (body in
//! base64), and its answer three messages (`http_response_head`, a body
//! frame, an empty END frame), each a separate socket event for the
//! Durable Object; now one binary frame each way. Batches let `ttf` send
//! the relayed WebSocket messages (and body frames) that are queued
//! together as one tunnel message: one event for the edge instead of one
//! per 100-byte message.

use crate::v1::Headers;
use crate::v2::{Frame, FrameError, FrameKind, FLAG_END, HEADER_LEN};

/// The protocol version with binary heads and batches.
pub const VERSION: u32 = 3;

/// Largest batch `ttf` builds (bytes of the tunnel message).
pub const MAX_BATCH: usize = 64 * 1024;

/// A head that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("binary tunnel head is cut short")]
    Short,
    #[error("binary tunnel head has a string that is not UTF-8")]
    NotUtf8,
    #[error("binary tunnel frame of kind {0:?} is not a head")]
    NotAHead(FrameKind),
    #[error("bad frame in a batch: {0}")]
    Frame(#[from] FrameError),
    #[error("a batch inside a batch")]
    Nested,
    #[error("binary tunnel frame of kind {0:?} is not a batch")]
    NotABatch(FrameKind),
}

/// A relayed public request (kind 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub request_id: String,
    pub method: String,
    pub uri: String,
    pub headers: Headers,
}

/// The local service's answer head (kind 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub request_id: String,
    pub status: u16,
    pub headers: Headers,
}

fn put16(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let bytes = bytes.get(..usize::from(u16::MAX)).unwrap_or(bytes);
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put32(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_headers(out: &mut Vec<u8>, headers: &Headers) {
    let pairs: Vec<(&String, &String)> = headers
        .iter()
        .flat_map(|(n, vs)| vs.iter().map(move |v| (n, v)))
        .take(usize::from(u16::MAX))
        .collect();
    out.extend_from_slice(&(pairs.len() as u16).to_be_bytes());
    for (name, value) in pairs {
        put16(out, name);
        put32(out, value);
    }
}

fn header(kind: FrameKind, flags: u8, stream_id: u32, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + capacity);
    out.push(kind as u8);
    out.push(flags);
    out.extend_from_slice(&stream_id.to_be_bytes());
    out
}

/// A reader over a head's bytes; every read is checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HeadError> {
        let (a, b) = self.0.split_at_checked(n).ok_or(HeadError::Short)?;
        self.0 = b;
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, HeadError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([
            *b.first().ok_or(HeadError::Short)?,
            *b.get(1).ok_or(HeadError::Short)?,
        ]))
    }
    fn u32(&mut self) -> Result<u32, HeadError> {
        let b = self.take(4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(u32::from_be_bytes(a))
    }
    fn str(&mut self, n: usize) -> Result<String, HeadError> {
        let b = self.take(n)?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| HeadError::NotUtf8)
    }
    fn str16(&mut self) -> Result<String, HeadError> {
        let n = self.u16()?;
        self.str(usize::from(n))
    }
    fn str32(&mut self) -> Result<String, HeadError> {
        let n = self.u32()?;
        self.str(n as usize)
    }
    fn headers(&mut self) -> Result<Headers, HeadError> {
        let mut headers = Headers::new();
        for _ in 0..self.u16()? {
            let name = self.str16()?;
            let value = self.str32()?;
            headers.entry(name).or_default().push(value);
        }
        Ok(headers)
    }
}

impl RequestHead {
    /// The kind-4 frame on `stream_id`: with `Some(body)` the whole body
    /// (END), with `None` a body that follows as body frames.
    pub fn encode(&self, stream_id: u32, body: Option<&[u8]>) -> Vec<u8> {
        let flags = if body.is_some() { FLAG_END } else { 0 };
        let body = body.unwrap_or_default();
        let mut out = header(FrameKind::Request, flags, stream_id, 256 + body.len());
        put16(&mut out, &self.request_id);
        put16(&mut out, &self.method);
        put32(&mut out, &self.uri);
        put_headers(&mut out, &self.headers);
        out.extend_from_slice(body);
        out
    }

    /// The head of a kind-4 frame and the body bytes after it.
    pub fn decode<'a>(frame: &Frame<'a>) -> Result<(Self, &'a [u8]), HeadError> {
        if frame.kind != FrameKind::Request {
            return Err(HeadError::NotAHead(frame.kind));
        }
        let mut r = Reader(frame.payload);
        let head = RequestHead {
            request_id: r.str16()?,
            method: r.str16()?,
            uri: r.str32()?,
            headers: r.headers()?,
        };
        Ok((head, r.0))
    }
}

impl ResponseHead {
    /// The kind-5 frame on `stream_id` with the first `body` bytes; `end`:
    /// they are the whole body.
    pub fn encode(&self, stream_id: u32, body: &[u8], end: bool) -> Vec<u8> {
        let flags = if end { FLAG_END } else { 0 };
        let mut out = header(FrameKind::Response, flags, stream_id, 128 + body.len());
        put16(&mut out, &self.request_id);
        out.extend_from_slice(&self.status.to_be_bytes());
        put_headers(&mut out, &self.headers);
        out.extend_from_slice(body);
        out
    }

    /// The head of a kind-5 frame and the body bytes after it.
    pub fn decode<'a>(frame: &Frame<'a>) -> Result<(Self, &'a [u8]), HeadError> {
        if frame.kind != FrameKind::Response {
            return Err(HeadError::NotAHead(frame.kind));
        }
        let mut r = Reader(frame.payload);
        let head = ResponseHead {
            request_id: r.str16()?,
            status: r.u16()?,
            headers: r.headers()?,
        };
        Ok((head, r.0))
    }
}

/// Builds one batch (kind 3) of whole encoded frames.
#[derive(Debug, Default)]
pub struct Batch {
    frames: Vec<Vec<u8>>,
    bytes: usize,
}

impl Batch {
    /// Whether `frame` still fits under [`MAX_BATCH`] (an empty batch
    /// takes any frame).
    pub fn fits(&self, frame: &[u8]) -> bool {
        self.frames.is_empty() || HEADER_LEN + self.bytes + 4 + frame.len() <= MAX_BATCH
    }

    /// Add one encoded frame (kind 1, 2, 4 or 5).
    pub fn push(&mut self, frame: Vec<u8>) {
        self.bytes += 4 + frame.len();
        self.frames.push(frame);
    }

    /// Number of frames in the batch.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether the batch has no frame.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The message to send: a single frame as itself (no batch header),
    /// several as one kind-3 frame.
    pub fn finish(mut self) -> Vec<u8> {
        if self.frames.len() == 1 {
            return self.frames.pop().unwrap_or_default();
        }
        let mut out = header(FrameKind::Batch, 0, 0, self.bytes);
        for frame in &self.frames {
            out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
            out.extend_from_slice(frame);
        }
        out
    }
}

/// Whole encoded frames packed into as few messages as fit, in order:
/// batches of at most [`MAX_BATCH`] bytes, a frame alone as itself.
pub fn pack(frames: impl IntoIterator<Item = Vec<u8>>) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut batch = Batch::default();
    for frame in frames {
        if !batch.fits(&frame) {
            messages.push(std::mem::take(&mut batch).finish());
        }
        batch.push(frame);
    }
    if !batch.is_empty() {
        messages.push(batch.finish());
    }
    messages
}

/// The frames of a kind-3 frame, in order; an error ends the iteration
/// (the rest of the batch is not trusted).
pub fn unbatch<'a>(frame: &Frame<'a>) -> impl Iterator<Item = Result<Frame<'a>, HeadError>> {
    let mut r = Reader(frame.payload);
    let kind = frame.kind;
    let mut failed = kind != FrameKind::Batch;
    let mut first = true;
    std::iter::from_fn(move || {
        if failed {
            if std::mem::take(&mut first) {
                return Some(Err(HeadError::NotABatch(kind)));
            }
            return None;
        }
        first = false;
        if r.0.is_empty() {
            return None;
        }
        let inner = r
            .u32()
            .and_then(|n| r.take(n as usize))
            .and_then(|bytes| Ok(Frame::decode(bytes)?))
            .and_then(|f| {
                if f.kind == FrameKind::Batch {
                    Err(HeadError::Nested)
                } else {
                    Ok(f)
                }
            });
        failed = inner.is_err();
        Some(inner)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers() -> Headers {
        let mut h = Headers::new();
        h.insert("accept".into(), vec!["a".into(), "b".into()]);
        h.insert("x-é".into(), vec![String::new()]);
        h
    }

    #[test]
    fn request_round_trips_with_and_without_its_body() {
        let head = RequestHead {
            request_id: "abc-1".into(),
            method: "POST".into(),
            uri: "/x?y=1".into(),
            headers: headers(),
        };
        let bytes = head.encode(7, Some(b"body"));
        let frame = Frame::decode(&bytes).unwrap();
        assert_eq!((frame.kind, frame.stream_id), (FrameKind::Request, 7));
        assert!(frame.is_end());
        assert_eq!(
            RequestHead::decode(&frame).unwrap(),
            (head.clone(), &b"body"[..])
        );
        let bytes = head.encode(7, None);
        let frame = Frame::decode(&bytes).unwrap();
        assert!(!frame.is_end());
        assert_eq!(RequestHead::decode(&frame).unwrap(), (head, &b""[..]));
    }

    #[test]
    fn response_round_trips() {
        let head = ResponseHead {
            request_id: "r".into(),
            status: 404,
            headers: headers(),
        };
        let bytes = head.encode(9, b"\0\xff", true);
        let frame = Frame::decode(&bytes).unwrap();
        assert!(frame.is_end());
        assert_eq!(
            ResponseHead::decode(&frame).unwrap(),
            (head, &b"\0\xff"[..])
        );
        let wrong = Frame::body(9, 0, b"");
        assert_eq!(
            ResponseHead::decode(&wrong),
            Err(HeadError::NotAHead(FrameKind::Body))
        );
    }

    #[test]
    fn batches_keep_order_and_a_single_frame_is_sent_as_itself() {
        let a = Frame::ws_message(1, true, b"a").encode();
        let b = Frame::body(2, FLAG_END, b"bb").encode();
        let mut batch = Batch::default();
        batch.push(a.clone());
        assert_eq!(batch.len(), 1);
        let mut one = Batch::default();
        one.push(a.clone());
        assert_eq!(one.finish(), a);
        batch.push(b.clone());
        let bytes = batch.finish();
        let frame = Frame::decode(&bytes).unwrap();
        assert_eq!(frame.kind, FrameKind::Batch);
        let inner: Vec<_> = unbatch(&frame).map(Result::unwrap).collect();
        assert_eq!(
            inner,
            vec![Frame::decode(&a).unwrap(), Frame::decode(&b).unwrap()]
        );
    }

    #[test]
    fn a_batch_stops_at_its_first_bad_frame() {
        let mut bytes = vec![3, 0, 0, 0, 0, 0];
        bytes.extend_from_slice(&7u32.to_be_bytes());
        bytes.extend_from_slice(&Frame::ws_message(1, false, b"x").encode());
        bytes.extend_from_slice(&100u32.to_be_bytes());
        bytes.extend_from_slice(b"short");
        let frame = Frame::decode(&bytes).unwrap();
        let got: Vec<_> = unbatch(&frame).collect();
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        assert_eq!(got[1], Err(HeadError::Short));
        let nested = {
            let mut b = Batch::default();
            b.push(Frame::ws_message(1, false, b"x").encode());
            b.push(Frame::ws_message(1, false, b"y").encode());
            let mut outer = Batch::default();
            outer.push(b.finish());
            outer.push(Frame::ws_message(1, false, b"z").encode());
            outer.finish()
        };
        let frame = Frame::decode(&nested).unwrap();
        assert_eq!(unbatch(&frame).next(), Some(Err(HeadError::Nested)));
        let not_batch = Frame::ws_message(1, false, b"x");
        let got: Vec<_> = unbatch(&not_batch).collect();
        assert_eq!(got, vec![Err(HeadError::NotABatch(FrameKind::WsMessage))]);
    }

    #[test]
    fn the_batch_bound_holds() {
        let mut batch = Batch::default();
        let big = vec![0u8; MAX_BATCH];
        assert!(batch.fits(&big), "an empty batch takes any frame");
        batch.push(Frame::ws_message(1, false, b"x").encode());
        assert!(!batch.fits(&big));
    }

    proptest! {
        /// No input makes the decoders panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), kind in 3u8..6) {
            let mut framed = vec![kind, 0, 0, 0, 0, 1];
            framed.extend_from_slice(&bytes);
            if let Ok(frame) = Frame::decode(&framed) {
                let _ = RequestHead::decode(&frame);
                let _ = ResponseHead::decode(&frame);
                for _ in unbatch(&frame) {}
            }
        }

        #[test]
        fn heads_round_trip(id in "[a-z0-9-]{0,40}", method in "[A-Z]{1,10}", uri in "/[ -~]{0,80}",
                            names in proptest::collection::vec("[a-z-]{1,20}", 0..8), value in "[ -~é]{0,40}",
                            status in 100u16..600, body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut headers = Headers::new();
            for n in names { headers.entry(n).or_default().push(value.clone()); }
            let req = RequestHead { request_id: id.clone(), method, uri, headers: headers.clone() };
            let bytes = req.encode(1, Some(&body));
            let (back, b) = RequestHead::decode(&Frame::decode(&bytes).unwrap()).unwrap();
            prop_assert_eq!(back, req);
            prop_assert_eq!(b, &body[..]);
            let resp = ResponseHead { request_id: id, status, headers };
            let bytes = resp.encode(1, &body, false);
            let (back, b) = ResponseHead::decode(&Frame::decode(&bytes).unwrap()).unwrap();
            prop_assert_eq!(back, resp);
            prop_assert_eq!(b, &body[..]);
        }
    }
}
