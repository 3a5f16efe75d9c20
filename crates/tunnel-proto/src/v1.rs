//! v1 control messages: JSON objects in WebSocket text frames, tagged by
//! `type`, wire-compatible with the http-tunnel `ttf` forwarder.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Header map as it travels on the wire: lower-case name to all its values.
pub type Headers = BTreeMap<String, Vec<String>>;

/// One control message. Unknown fields are ignored when decoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// Forwarder to edge, first frame after the socket opens.
    Ready {
        /// Protocol version the forwarder speaks; absent means v1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u32>,
        /// v2: how often the forwarder pings (ms). The edge then treats a
        /// forwarder silent for longer than `v2::silence_limit` as gone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ping_interval_ms: Option<u64>,
        /// Edge policies the forwarder asks the edge to enforce on public
        /// requests (`policy::Policies`); absent: none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policies: Option<crate::policy::Policies>,
    },
    /// Edge to forwarder, the answer to `ready`.
    ConnectionEstablished {
        connection_id: String,
        tunnel_id: String,
        public_url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subdomain_url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path_based_url: Option<String>,
        /// Protocol version the edge will speak; absent means v1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u32>,
        /// v2: token to present (header `x-tunnel-resume`) when
        /// reconnecting, to get the same tunnel id back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_token: Option<String>,
        /// Names of the policies of `ready` the edge enforces. A forwarder
        /// that declared policies and does not see them all here must not
        /// go on (an older edge ignores `policies`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policies: Option<Vec<String>>,
    },
    /// Edge to forwarder: one public request.
    HttpRequest {
        request_id: String,
        method: String,
        /// Path and query, tunnel prefix already stripped.
        uri: String,
        #[serde(default)]
        headers: Headers,
        /// Base64 body, may be empty.
        #[serde(default)]
        body: String,
        /// Unix milliseconds when the edge received the request.
        #[serde(default)]
        timestamp: u64,
        /// v2: stream on which the answer's body may be streamed
        /// (`http_response_head` + body frames) instead of `http_response`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream_id: Option<u32>,
        /// v2: `body` is empty and the body follows as body frames on
        /// `stream_id` (sent within the forwarder's `window` credits).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        body_streamed: bool,
    },
    /// Forwarder to edge: the local service's answer.
    HttpResponse {
        request_id: String,
        status_code: u16,
        #[serde(default)]
        headers: Headers,
        #[serde(default)]
        body: String,
        #[serde(default)]
        processing_time_ms: u64,
    },
    /// v2, forwarder to edge: status and headers of an answer whose body
    /// follows as body frames on `stream_id` (the last one flagged END).
    HttpResponseHead {
        request_id: String,
        stream_id: u32,
        status_code: u16,
        #[serde(default)]
        headers: Headers,
    },
    /// v2, either way: the receiver consumed `bytes` of `stream_id`'s body
    /// (edge: of the answer; forwarder: of the request): the sender may
    /// send that many more.
    Window {
        stream_id: u32,
        bytes: u32,
    },
    /// Forwarder to edge: the request could not be served.
    Error {
        #[serde(default)]
        request_id: Option<String>,
        code: ErrorCode,
        #[serde(default)]
        message: String,
    },
    Ping,
    Pong,
    /// v2, edge to forwarder: a public WebSocket upgrade to relay.
    WsOpen {
        stream_id: u32,
        /// Path and query, tunnel prefix already stripped.
        uri: String,
        /// Request headers (hop-by-hop dropped).
        #[serde(default)]
        headers: Headers,
        /// Subprotocols the public client offered, in its order.
        #[serde(default)]
        protocols: Vec<String>,
    },
    /// v2, forwarder to edge: the local side accepted the WebSocket.
    WsOpened {
        stream_id: u32,
        /// The subprotocol the local side chose.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        protocol: Option<String>,
    },
    /// v2, forwarder to edge: the local side refused the upgrade.
    WsRefused {
        stream_id: u32,
        /// HTTP status for the public caller.
        status: u16,
        #[serde(default)]
        message: String,
    },
    /// v2, either way: the WebSocket of `stream_id` closed.
    WsClose {
        stream_id: u32,
        /// Close code (1005 = closed without a code).
        code: u16,
        #[serde(default)]
        reason: String,
    },
}

/// Error codes a forwarder reports, with the status the public caller sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    Timeout,
    LocalServiceUnavailable,
    /// Also the fallback for codes this side does not know.
    #[serde(other)]
    InternalError,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Timeout => "timeout",
            ErrorCode::LocalServiceUnavailable => "local_service_unavailable",
            ErrorCode::InternalError => "internal_error",
        }
    }

    /// HTTP status the public caller receives for this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest => 400,
            ErrorCode::Timeout => 504,
            ErrorCode::LocalServiceUnavailable => 503,
            ErrorCode::InternalError => 502,
        }
    }
}

/// A frame that is not a valid control message.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("invalid tunnel message: {0}; expected a JSON object with a known \"type\"")]
    Json(#[from] serde_json::Error),
    #[error("invalid base64 body: {0}")]
    Base64(#[from] base64::DecodeError),
}

impl Message {
    /// Decode one text frame.
    pub fn decode(text: &str) -> Result<Self, ProtocolError> {
        Ok(serde_json::from_str(text)?)
    }

    /// Encode as the text of one frame.
    #[allow(
        clippy::expect_used,
        reason = "strings, numbers and string-keyed maps always serialize"
    )]
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("tunnel messages always serialize")
    }
}

/// Encode a body for the `body` field.
pub fn encode_body(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decode a `body` field.
pub fn decode_body(body: &str) -> Result<Vec<u8>, ProtocolError> {
    Ok(base64::engine::general_purpose::STANDARD.decode(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_without_version_is_v1() {
        let m = Message::decode(r#"{"type":"ready"}"#).unwrap();
        assert_eq!(
            m,
            Message::Ready {
                version: None,
                ping_interval_ms: None,
                policies: None,
            }
        );
        assert_eq!(m.encode(), r#"{"type":"ready"}"#);
    }

    #[test]
    fn policies_travel_in_ready_and_are_confirmed() {
        let text = r#"{"type":"ready","version":2,"policies":{"allow_ip":["::1/128"],"rate_limit":{"requests":3,"per_ms":1000}}}"#;
        let Message::Ready { policies, .. } = Message::decode(text).unwrap() else {
            panic!("not ready");
        };
        let policies = policies.unwrap();
        assert_eq!(policies.names(), ["allow_ip", "rate_limit"]);
        let ok = r#"{"type":"connection_established","connection_id":"c","tunnel_id":"t","public_url":"u","policies":["allow_ip"]}"#;
        let Message::ConnectionEstablished { policies, .. } = Message::decode(ok).unwrap() else {
            panic!("not established");
        };
        assert_eq!(policies.unwrap(), ["allow_ip"]);
    }

    #[test]
    fn request_roundtrip_keeps_multi_value_headers_and_body() {
        let mut headers = Headers::new();
        headers.insert("set-cookie".into(), vec!["a=1".into(), "b=2".into()]);
        let m = Message::HttpRequest {
            request_id: "r1".into(),
            method: "POST".into(),
            uri: "/x?y=1".into(),
            headers,
            body: encode_body(&[0, 255, 1]),
            timestamp: 42,
            stream_id: None,
            body_streamed: false,
        };
        let back = Message::decode(&m.encode()).unwrap();
        assert_eq!(back, m);
        if let Message::HttpRequest { body, .. } = back {
            assert_eq!(decode_body(&body).unwrap(), vec![0, 255, 1]);
        }
    }

    #[test]
    fn unknown_fields_ignored_unknown_error_code_is_internal() {
        let m = Message::decode(
            r#"{"type":"error","request_id":null,"code":"weird","message":"m","extra":1}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            Message::Error {
                request_id: None,
                code: ErrorCode::InternalError,
                message: "m".into()
            }
        );
        assert_eq!(ErrorCode::LocalServiceUnavailable.http_status(), 503);
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::Timeout,
            ErrorCode::LocalServiceUnavailable,
            ErrorCode::InternalError,
        ] {
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
        }
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let e = Message::decode("{nope").unwrap_err();
        assert!(e.to_string().contains("invalid tunnel message"));
        assert!(Message::decode(r#"{"type":"teleport"}"#).is_err());
    }
}
