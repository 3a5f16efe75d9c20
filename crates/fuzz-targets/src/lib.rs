//! One entry point per decoder that reads network input: bytes in, nothing
//! out; each must not panic on any input, and what decodes must round-trip.
//! `fuzz/fuzz_targets/*.rs` (cargo-fuzz, libFuzzer, `make fuzz`) call these
//! with coverage-guided inputs; the tests below run them through a short
//! proptest pass on stable (`cargo test -p fuzz-targets`, part of
//! `make test`).
//!
//! | entry | decoder | fed by |
//! |---|---|---|
//! | [`v1_frame`] | `tunnel_proto::Message::decode`, `inflight::salvage`, `public_answer` | control-socket text frames (both ways) |
//! | [`v2_frame`] | `tunnel_proto::v2::Frame::decode`, v3 heads and batches (`tunnel_proto::heads`), resume tokens | control-socket binary frames, `x-tunnel-resume` |
//! | [`headers_and_token`] | header filtering, `jwt_auth::token_from`, `AuthConfig::verify`, edge policies (`policy::Enforcer`, flag parsers) | public and upgrade request headers, bodies of webhook requests |
//! | [`names_and_routes`] | `route::route`, `names::parse_name` / `check_allowed` | `Host`, path, `x-tunnel-name`, token claims |
//! | [`rewrite`] | `rewrite::rewrite` (HTML/CSS/JS), `rewrite_location` | local service answers |
//! | [`mqtt_framing`] | `mqtt_session::Framer` (packet reassembly) | the MQTT TCP bridge, the wasm client's WebSocket |
//! | [`mqttspec_request`] | MQTTSpec `Message` JSON, `Options` | MQTTSpec requests over MQTT |

use tunnel_proto::inflight::{public_answer, salvage, settles};
use tunnel_proto::rewrite::Kind;
use tunnel_proto::v2::Frame;
use tunnel_proto::{headers, names, route, v2, Message};

/// Prefix of the path form used where one is needed.
const PREFIX: &str = "/abc123def456";

/// A control-socket text frame.
pub fn v1_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Message::decode(text) {
        Ok(message) => {
            let again = Message::decode(&message.encode()).map(|m| m == message);
            assert!(matches!(again, Ok(true)), "{message:?} does not round-trip");
            if let Some((_, answer)) = settles(message) {
                let _ = public_answer(answer, PREFIX);
            }
        }
        Err(e) => {
            if let Some(tunnel_proto::inflight::Salvaged::Request(_, answer)) = salvage(text, &e) {
                assert_eq!(public_answer(answer, "").status, 502);
            }
        }
    }
}

/// A control-socket binary frame, and the same bytes as a resume token.
pub fn v2_frame(data: &[u8]) {
    if let Ok(frame) = Frame::decode(data) {
        assert_eq!(frame.encode(), data, "frames re-encode to their bytes");
        // v3 payloads: heads and batches (issue 17).
        let _ = tunnel_proto::heads::RequestHead::decode(&frame);
        let _ = tunnel_proto::heads::ResponseHead::decode(&frame);
        for inner in tunnel_proto::heads::unbatch(&frame).map_while(Result::ok) {
            let _ = tunnel_proto::heads::ResponseHead::decode(&inner);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(id) = v2::resume_token_id(text) {
            assert!(route::is_tunnel_id(id));
        }
        let _ = v2::check_resume(Some(text), text, false, Some(0), u64::MAX);
    }
}

/// Request headers (`name: value` lines) and the token they carry.
pub fn headers_and_token(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        .collect();
    let meta = headers::RequestMeta {
        uri: "/".into(),
        prefix: PREFIX.into(),
        proto: "https".into(),
        host: "h".into(),
        client_ip: Some("127.0.0.1".into()),
    };
    let relayed = headers::request_headers(&pairs, &meta);
    assert!(!relayed.keys().any(|n| headers::is_hop_by_hop(n)));
    let _ = headers::response_headers(&relayed);
    let authorization = pairs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.as_str());
    let token = jwt_auth::token_from(authorization.or(Some(&text)), Some(&text));
    if let Ok(config) = jwt_auth::AuthConfig::new(Some("secret"), None, false, None, None) {
        assert!(config.verify(token.as_deref(), 1_700_000_000).is_err());
        assert!(config.verify(Some(&text), 1_700_000_000).is_err());
    }
    edge_policies(&pairs, &text, data);
}

/// Every edge policy over the same headers (and the bytes as client
/// address, query and body): refusals, never a panic.
fn edge_policies(pairs: &[(String, String)], text: &str, body: &[u8]) {
    use tunnel_proto::policy::{
        BasicAuth, Enforcer, Policies, RateLimit, Visitor, VisitorJwt, Webhook,
    };
    let visitor = Visitor {
        headers: pairs,
        query: Some(text),
        client_ip: Some(text),
    };
    for hook in ["github:s", "stripe:s", "slack:s"] {
        let policies = Policies {
            basic_auth: BasicAuth::parse("u:p").ok(),
            allow_ip: vec!["0.0.0.0/0".into(), "::/0".into()],
            webhook: Webhook::parse(hook).ok(),
            rate_limit: RateLimit::parse("1/s").ok(),
            jwt: Some(VisitorJwt {
                secret: Some("secret".into()),
                jwks: None,
            }),
        };
        if let Ok(mut enforcer) = Enforcer::new(&policies) {
            let _ = enforcer.check(&visitor, 1_700_000_000_000);
            let _ = enforcer.check_body(&visitor, body, 1_700_000_000_000);
        }
    }
    let _ = BasicAuth::parse(text);
    let _ = Webhook::parse(text);
    let _ = RateLimit::parse(text);
    let _ = tunnel_proto::policy::parse_net(text);
}

/// `Host` and path of a public request (split at the first newline), a
/// requested name, and token claims.
pub fn names_and_routes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (host, path) = text.split_once('\n').unwrap_or((&text, "/"));
    for base in ["", "tunnel.example.com"] {
        if let route::Route::Tunnel { id, uri, prefix } = route::route(host, path, base) {
            assert!(route::is_tunnel_id(&id), "{id:?}");
            assert!(prefix.is_empty() || prefix == format!("/{id}"));
            let _ = uri;
        }
        let _ = route::subdomain_tunnel_id(host, base);
    }
    if let Ok(name) = names::parse_name(&text) {
        assert!(route::is_tunnel_id(&name));
    }
    if let Ok(serde_json::Value::Object(claims)) = serde_json::from_str(&text) {
        let _ = names::check_allowed(Some(&claims), "demodash0001");
        let _ = names::subject(Some(&claims));
    }
}

/// A local answer rewritten for the path form.
pub fn rewrite(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for kind in [Kind::Html, Kind::Css, Kind::Js] {
        let out = tunnel_proto::rewrite::rewrite(text, kind, PREFIX);
        assert!(out.len() >= text.len(), "rewriting only inserts");
    }
    let _ = tunnel_proto::rewrite::rewrite_location(text, PREFIX);
    let _ = Kind::for_content_type(text);
}

/// A byte stream from an MQTT peer, arriving in pieces whose sizes the
/// first byte chooses.
pub fn mqtt_framing(data: &[u8]) {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut framer = mqtt_session::Framer::new(64 * 1024);
    let mut taken = 0;
    for piece in rest.chunks(step) {
        framer.push(piece);
        loop {
            match framer.next_packet() {
                Ok(Some(packet)) => {
                    taken += packet.len();
                    assert!(taken <= rest.len(), "packets from nowhere");
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// An MQTTSpec request payload.
pub fn mqttspec_request(data: &[u8]) {
    let Ok(message) = serde_json::from_slice::<mqttspec_proto::Message>(data) else {
        return;
    };
    let again: Result<mqttspec_proto::Message, _> =
        serde_json::to_vec(&message).and_then(|bytes| serde_json::from_slice(&bytes));
    assert!(matches!(again, Ok(ref m) if *m == message), "round trip");
    if let Ok(options) = mqttspec_proto::Options::from_value(message.options.as_ref()) {
        let row = mqttspec_proto::Row::new();
        for group in options.filter_groups() {
            let filters: Vec<mqttspec_proto::Filter> = group.into_iter().cloned().collect();
            let _ = mqttspec_proto::matches(&filters, &row);
        }
        let _ = options.referenced_columns().count();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Inputs that look like what each decoder expects, so that the short
    /// pass reaches past the first check, plus plain noise.
    fn jsonish() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("type"),
            Just("request_id"),
            Just("status_code"),
            Just("headers"),
            Just("body"),
            Just("stream_id"),
            Just("code"),
            Just("options"),
            Just("filters"),
            Just("operator"),
            Just("value"),
            Just("column"),
        ];
        let value = prop_oneof![
            Just("\"http_response\"".to_string()),
            Just("\"error\"".to_string()),
            Just("\"ws_opened\"".to_string()),
            Just("\"request\"".to_string()),
            Just("70000".to_string()),
            Just("-1".to_string()),
            Just("null".to_string()),
            Just("{\"a\":[\"b\"]}".to_string()),
            Just("[{\"column\":\"x\",\"operator\":\"eq\",\"value\":1}]".to_string()),
            any::<u32>().prop_map(|n| n.to_string()),
            "\\PC{0,12}".prop_map(|s| serde_json::Value::String(s).to_string()),
        ];
        proptest::collection::vec((key, value), 0..6).prop_map(|fields| {
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", body.join(","))
        })
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..512)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn v1_frames(text in jsonish(), noise in bytes()) {
            v1_frame(text.as_bytes());
            v1_frame(&noise);
        }

        #[test]
        fn v2_frames(noise in bytes(), kind in 0u8..4, flags in any::<u8>(), id in any::<u32>()) {
            v2_frame(&noise);
            let mut framed = vec![kind, flags];
            framed.extend_from_slice(&id.to_be_bytes());
            framed.extend_from_slice(&noise);
            v2_frame(&framed);
        }

        #[test]
        fn headers_and_tokens(text in "(\\PC{0,20}:\\PC{0,40}\n){0,6}", noise in bytes()) {
            headers_and_token(text.as_bytes());
            headers_and_token(&noise);
            headers_and_token(format!("authorization: Bearer {text}").as_bytes());
        }

        #[test]
        fn names_and_routes_hold(host in "\\PC{0,30}", path in "/?\\PC{0,40}", noise in bytes()) {
            names_and_routes(format!("{host}\n{path}").as_bytes());
            names_and_routes(&noise);
        }

        #[test]
        fn rewriting(text in "(\\PC|<a href=\"/|url\\(/|fetch\\('/|@import \"/|\\.open\\('GET', '/){0,40}") {
            rewrite(text.as_bytes());
        }

        #[test]
        fn mqtt_reassembly(noise in bytes(), step in 1u8..40) {
            let mut data = vec![step];
            // A stream of packets with plausible headers: CONNECT..DISCONNECT.
            for (i, b) in noise.iter().enumerate() {
                data.push(if i % 7 == 0 { (b & 0xf0).max(0x10) } else { *b });
            }
            mqtt_framing(&data);
            mqtt_framing(&noise);
        }

        #[test]
        fn mqttspec_requests(text in jsonish(), noise in bytes()) {
            mqttspec_request(text.as_bytes());
            mqttspec_request(&noise);
        }
    }

    #[test]
    fn known_bad_inputs() {
        headers_and_token("Authorization: abcdef\u{e9}xyz".as_bytes());
        v1_frame(br#"{"type":"http_response","request_id":"r","status_code":70000}"#);
        names_and_routes("\u{e9}.localhost\n".as_bytes());
        names_and_routes(b"h\n");
        rewrite("<a href=\"/\u{e9}\">".as_bytes());
        mqtt_framing(&[1, 0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    }
}
