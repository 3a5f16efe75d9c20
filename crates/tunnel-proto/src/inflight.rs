//! Requests in flight on one tunnel: each public request gets a unique
//! `request_id` and a waiter; the forwarder's answer is matched back by id.
//! A late (timed out) or duplicate answer finds no waiter and is dropped,
//! never delivered to another request. Also turns an answer into what the
//! public caller receives.
//!
//! Generic over the waiter type so the worker can store a channel sender
//! while this stays IO-free.

use std::collections::HashMap;

use crate::headers::response_headers;
use crate::rewrite::{self, Kind};
use crate::v1::{decode_body, ErrorCode, Headers, Message};

/// The table of requests waiting for the forwarder.
#[derive(Debug)]
pub struct Inflight<W> {
    instance: String,
    next: u64,
    waiting: HashMap<String, W>,
}

impl<W> Inflight<W> {
    /// An empty table. `instance` (random per process) makes ids unique
    /// across restarts, so an answer meant for an earlier incarnation can
    /// never match a new request.
    pub fn new(instance: u64) -> Self {
        Self {
            instance: format!("{instance:016x}"),
            next: 0,
            waiting: HashMap::new(),
        }
    }

    /// Register a waiter; returns the new request's id.
    pub fn start(&mut self, waiter: W) -> String {
        self.next += 1;
        let id = format!("{}-{}", self.instance, self.next);
        self.waiting.insert(id.clone(), waiter);
        id
    }

    /// Take the waiter of `request_id` (an answer arrived, or the request
    /// timed out). `None` for unknown, finished or timed-out ids.
    pub fn finish(&mut self, request_id: &str) -> Option<W> {
        self.waiting.remove(request_id)
    }

    /// Take every waiter (the forwarder went away).
    pub fn drain(&mut self) -> Vec<W> {
        self.waiting.drain().map(|(_, w)| w).collect()
    }

    /// Number of requests waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether no request is waiting.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// The answer of a forwarder message that settles a request: its id and
/// the message, or `None` for messages that answer no request.
pub fn settles(message: Message) -> Option<(String, Message)> {
    match &message {
        Message::HttpResponse { request_id, .. } | Message::HttpResponseHead { request_id, .. } => {
            Some((request_id.clone(), message))
        }
        Message::Error {
            request_id: Some(id),
            ..
        } => Some((id.clone(), message)),
        _ => None,
    }
}

/// What a frame that does not decode (status 70000, `"200"`, headers as a
/// string, ...) still settles, so that its caller gets 502 at once instead
/// of waiting out the request timeout.
#[derive(Debug, Clone, PartialEq)]
pub enum Salvaged {
    /// An answer to request `.0`: settle it with this `error` message.
    Request(String, Message),
    /// An answer to the WebSocket open of stream `.0`: settle it with this
    /// `ws_refused` (status 502).
    Stream(u32, Message),
}

/// Read the `type` and `request_id` / `stream_id` of a malformed answer
/// frame (`text` did not decode as a [`Message`]; `error` says why).
/// `None` when the frame is not JSON or names nothing to settle.
pub fn salvage(text: &str, error: &dyn std::fmt::Display) -> Option<Salvaged> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let kind = value.get("type")?.as_str()?;
    let reason = format!("the forwarder sent a malformed {kind}: {error}");
    match kind {
        "http_response" | "http_response_head" | "error" => {
            let id = value.get("request_id")?.as_str()?.to_string();
            let message = Message::Error {
                request_id: Some(id.clone()),
                code: ErrorCode::InternalError,
                message: reason,
            };
            Some(Salvaged::Request(id, message))
        }
        "ws_opened" | "ws_refused" => {
            let stream_id = u32::try_from(value.get("stream_id")?.as_u64()?).ok()?;
            let message = Message::WsRefused {
                stream_id,
                status: 502,
                message: reason,
            };
            Some(Salvaged::Stream(stream_id, message))
        }
        _ => None,
    }
}

/// What the public caller receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicAnswer {
    /// HTTP status.
    pub status: u16,
    /// Headers, several values of one name kept as several pairs.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl PublicAnswer {
    /// A plain-text answer produced by the edge itself.
    pub fn text(status: u16, message: impl Into<String>) -> Self {
        let mut body = message.into().into_bytes();
        body.push(b'\n');
        Self {
            status,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body,
        }
    }
}

/// Status and public headers of a forwarder answer (hop-by-hop and
/// `content-length` dropped, `Location` rewritten in the path form), or the
/// 502 answer for an invalid status.
pub fn public_head(
    status_code: u16,
    headers: &Headers,
    prefix: &str,
) -> Result<(u16, Vec<(String, String)>), PublicAnswer> {
    if !(200..=599).contains(&status_code) {
        return Err(PublicAnswer::text(
            502,
            format!("the forwarder answered an invalid status code {status_code}"),
        ));
    }
    let mut headers = response_headers(headers);
    if !prefix.is_empty() {
        for (name, value) in headers.iter_mut() {
            if name == "location" {
                *value = rewrite::rewrite_location(value, prefix);
            }
        }
    }
    Ok((status_code, headers))
}

/// Turn the forwarder's answer into the public answer. `prefix` is `/<id>`
/// for the path form (HTML/CSS/JS bodies and `Location` are then rewritten),
/// empty otherwise. Malformed answers become 502 with the reason.
pub fn public_answer(message: Message, prefix: &str) -> PublicAnswer {
    match message {
        Message::HttpResponse {
            status_code,
            headers,
            body,
            ..
        } => {
            let (status_code, headers) = match public_head(status_code, &headers, prefix) {
                Ok(head) => head,
                Err(refusal) => return refusal,
            };
            let body = match decode_body(&body) {
                Ok(b) => b,
                Err(e) => {
                    return PublicAnswer::text(
                        502,
                        format!("the forwarder's answer is unusable: {e}"),
                    )
                }
            };
            let mut body = body;
            if !prefix.is_empty() {
                let kind = headers
                    .iter()
                    .find(|(n, _)| n == "content-type")
                    .and_then(|(_, v)| Kind::for_content_type(v));
                let encoded = headers
                    .iter()
                    .any(|(n, v)| n == "content-encoding" && !v.eq_ignore_ascii_case("identity"));
                if let (Some(kind), false) = (kind, encoded) {
                    if let Ok(text) = std::str::from_utf8(&body) {
                        body = rewrite::rewrite(text, kind, prefix).into_bytes();
                    }
                }
            }
            PublicAnswer {
                status: status_code,
                headers,
                body,
            }
        }
        Message::Error { code, message, .. } => PublicAnswer::text(
            code.http_status(),
            format!("tunnel error ({}): {message}", code.as_str()),
        ),
        other => PublicAnswer::text(
            502,
            format!("the forwarder answered with an unexpected message: {other:?}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{encode_body, Headers};

    fn response(id: &str, status: u16, headers: Headers, body: &[u8]) -> Message {
        Message::HttpResponse {
            request_id: id.into(),
            status_code: status,
            headers,
            body: encode_body(body),
            processing_time_ms: 1,
        }
    }

    #[test]
    fn ids_are_unique_and_late_or_duplicate_answers_find_nothing() {
        let mut t = Inflight::new(7);
        let a = t.start("a");
        let b = t.start("b");
        assert_ne!(a, b);
        assert_eq!(t.len(), 2);
        assert_eq!(t.finish(&b), Some("b"));
        assert_eq!(t.finish(&b), None, "duplicate answer is dropped");
        assert_eq!(t.finish("0000000000000007-99"), None);
        let other_instance = Inflight::<()>::new(8).start(());
        assert_ne!(other_instance, a);
        assert_eq!(t.drain(), vec!["a"]);
        assert!(t.is_empty());
    }

    #[test]
    fn settling_messages() {
        let r = response("r1", 200, Headers::new(), b"");
        assert_eq!(settles(r.clone()), Some(("r1".into(), r)));
        let e = Message::Error {
            request_id: None,
            code: ErrorCode::Timeout,
            message: String::new(),
        };
        assert_eq!(settles(e), None);
        assert_eq!(settles(Message::Pong), None);
    }

    #[test]
    fn error_codes_map_to_statuses() {
        for (code, status) in [
            (ErrorCode::InvalidRequest, 400),
            (ErrorCode::Timeout, 504),
            (ErrorCode::LocalServiceUnavailable, 503),
            (ErrorCode::InternalError, 502),
        ] {
            let a = public_answer(
                Message::Error {
                    request_id: Some("x".into()),
                    code,
                    message: "why".into(),
                },
                "",
            );
            assert_eq!(a.status, status);
            assert!(String::from_utf8(a.body).unwrap().contains("why"));
        }
    }

    #[test]
    fn responses_are_filtered_and_rewritten_in_path_form() {
        let mut h = Headers::new();
        h.insert("content-type".into(), vec!["text/html".into()]);
        h.insert("location".into(), vec!["/next".into()]);
        h.insert("connection".into(), vec!["close".into()]);
        let html = br#"<link href="/style.css">"#;
        let a = public_answer(response("r", 302, h.clone(), html), "/abc123def456");
        assert_eq!(a.status, 302);
        assert_eq!(a.body, br#"<link href="/abc123def456/style.css">"#.to_vec());
        assert!(a
            .headers
            .contains(&("location".into(), "/abc123def456/next".into())));
        assert!(!a.headers.iter().any(|(n, _)| n == "connection"));
        let plain = public_answer(response("r", 200, h.clone(), html), "");
        assert_eq!(plain.body, html.to_vec());
        h.insert("content-encoding".into(), vec!["gzip".into()]);
        let gz = public_answer(response("r", 200, h, html), "/abc123def456");
        assert_eq!(gz.body, html.to_vec(), "compressed bodies are left alone");
    }

    #[test]
    fn undecodable_answers_are_salvaged_as_502() {
        for text in [
            r#"{"type":"http_response","request_id":"r1","status_code":70000}"#,
            r#"{"type":"http_response","request_id":"r1","status_code":-1}"#,
            r#"{"type":"http_response","request_id":"r1","status_code":"200"}"#,
            r#"{"type":"http_response","request_id":"r1","status_code":200,"headers":"x"}"#,
            r#"{"type":"http_response","request_id":"r1","status_code":200,"headers":null}"#,
            r#"{"type":"http_response_head","request_id":"r1","status_code":200}"#,
            r#"{"type":"error","request_id":"r1","code":7}"#,
        ] {
            let error = Message::decode(text).unwrap_err();
            let Some(Salvaged::Request(id, message)) = salvage(text, &error) else {
                panic!("{text} not salvaged");
            };
            assert_eq!(id, "r1");
            let answer = public_answer(message, "");
            assert_eq!(answer.status, 502, "{text}");
            let body = String::from_utf8(answer.body).unwrap();
            assert!(body.contains("malformed"), "{body}");
        }
        let text = r#"{"type":"ws_opened","stream_id":5,"protocol":7}"#;
        let error = Message::decode(text).unwrap_err();
        assert!(matches!(
            salvage(text, &error),
            Some(Salvaged::Stream(5, Message::WsRefused { status: 502, .. }))
        ));
        for nothing in [
            "{nope",
            "[1]",
            r#"{"type":"http_response","request_id":7}"#,
            r#"{"type":"ws_opened","stream_id":-1}"#,
            r#"{"type":"pong","request_id":"r1"}"#,
        ] {
            assert_eq!(salvage(nothing, &"e"), None, "{nothing}");
        }
    }

    #[test]
    fn malformed_answers_are_502() {
        let bad_body = Message::HttpResponse {
            request_id: "r".into(),
            status_code: 200,
            headers: Headers::new(),
            body: "***".into(),
            processing_time_ms: 0,
        };
        assert_eq!(public_answer(bad_body, "").status, 502);
        assert_eq!(
            public_answer(response("r", 42, Headers::new(), b""), "").status,
            502
        );
        assert_eq!(public_answer(Message::Ping, "").status, 502);
    }
}
