//! Tunnel protocol v3 on the wire (issue 17): binary request/response heads
//! and batches of frames, read by the real edge worker on workerd
//! (`wrangler dev`) from a forwarder scripted by the test, batches the edge
//! sends (a burst of public WebSocket messages, coalesced), and the
//! compatibility promise: a forwarder that asks for v2 gets JSON heads and
//! never a v3 frame, and `ttf --protocol 2` is served as before.

use std::sync::OnceLock;
use std::thread;

use e2e::tunnel::{
    http, json_str, random_bytes, shared_worker, Forwarder, HttpMessage, ScriptedForwarder,
    SharedWorker, Upstream,
};
use tungstenite::Message as WsMessage;
use tunnel_proto::heads::{unbatch, Batch, RequestHead, ResponseHead};
use tunnel_proto::v2::{Frame, FrameKind, FLAG_END};
use tunnel_proto::Headers;

static WORKER: OnceLock<SharedWorker> = OnceLock::new();

fn worker() -> &'static SharedWorker {
    shared_worker(&WORKER, &[("REQUEST_TIMEOUT_MS", "8000")])
}

/// A public request on tunnel `id` by the path form, in a thread.
fn call(
    w: &SharedWorker,
    method: &'static str,
    id: &str,
    path: &str,
    body: &[u8],
) -> thread::JoinHandle<HttpMessage> {
    let (port, host) = (w.port, format!("127.0.0.1:{}", w.port));
    let (path, body) = (format!("/{id}{path}"), body.to_vec());
    thread::spawn(move || http(port, method, &path, &host, &[], &body).unwrap())
}

/// The next binary message the scripted forwarder receives.
fn next_binary(fwd: &mut ScriptedForwarder) -> Vec<u8> {
    loop {
        if let WsMessage::Binary(b) = fwd.ws.read().unwrap() {
            return b.to_vec();
        }
    }
}

#[test]
fn a_v3_forwarder_gets_binary_requests_and_may_answer_in_batches() {
    let w = worker();
    let mut fwd = ScriptedForwarder::connect(w.port, &[], Some(3)).unwrap();
    assert!(
        fwd.established.contains(r#""version":3"#),
        "{}",
        fwd.established
    );
    // A small body travels whole in the request frame (END), no base64.
    let caller = call(w, "POST", &fwd.id, "/v3?q=1", b"hello");
    let bytes = next_binary(&mut fwd);
    let frame = Frame::decode(&bytes).unwrap();
    assert_eq!(frame.kind, FrameKind::Request);
    assert!(frame.is_end());
    let (head, body) = RequestHead::decode(&frame).unwrap();
    assert_eq!(
        (head.method.as_str(), head.uri.as_str()),
        ("POST", "/v3?q=1")
    );
    assert_eq!(body, b"hello");
    // The whole answer in one response frame, inside a batch.
    let mut headers = Headers::new();
    headers.insert("x-v3".into(), vec!["yes".into()]);
    let answer = ResponseHead {
        request_id: head.request_id.clone(),
        status: 201,
        headers: headers.clone(),
    };
    let mut batch = Batch::default();
    batch.push(answer.encode(frame.stream_id, b"made", true));
    // A late frame for a finished stream in the same batch is harmless.
    batch.push(Frame::body(frame.stream_id, FLAG_END, b"").encode());
    fwd.ws.send(WsMessage::binary(batch.finish())).unwrap();
    let r = caller.join().unwrap();
    assert_eq!(r.status(), 201, "{}", r.text());
    assert_eq!(r.header("x-v3"), Some("yes"));
    assert_eq!(r.body, b"made");
    // A whole answer goes out with its length, not as a chunked stream.
    assert_eq!(r.header("content-length"), Some("4"));

    // A head without END, then body frames, all in one batch.
    let caller = call(w, "GET", &fwd.id, "/streamed", b"");
    let bytes = next_binary(&mut fwd);
    let frame = Frame::decode(&bytes).unwrap();
    let (head, _) = RequestHead::decode(&frame).unwrap();
    let answer = ResponseHead {
        request_id: head.request_id,
        status: 200,
        headers,
    };
    let mut batch = Batch::default();
    batch.push(answer.encode(frame.stream_id, b"one,", false));
    batch.push(Frame::body(frame.stream_id, 0, b"two,").encode());
    batch.push(Frame::body(frame.stream_id, FLAG_END, b"three").encode());
    fwd.ws.send(WsMessage::binary(batch.finish())).unwrap();
    let r = caller.join().unwrap();
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.text(), "one,two,three");
}

#[test]
fn relayed_websocket_messages_in_one_batch_reach_the_public_client_one_by_one() {
    let w = worker();
    let mut fwd = ScriptedForwarder::connect(w.port, &[], Some(3)).unwrap();
    let url = format!("ws://127.0.0.1:{}/{}/ws", w.port, fwd.id);
    let client = thread::spawn(move || {
        let (mut ws, _) = tungstenite::connect(url).unwrap();
        let mut got = Vec::new();
        while got.len() < 3 {
            if let m @ (WsMessage::Text(_) | WsMessage::Binary(_)) = ws.read().unwrap() {
                got.push(m);
            }
        }
        got
    });
    let open = fwd.next_of("ws_open").unwrap();
    let stream_id = open
        .split(r#""stream_id":"#)
        .nth(1)
        .and_then(|s| s.split([',', '}']).next())
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap();
    fwd.send_text(&format!(
        r#"{{"type":"ws_opened","stream_id":{stream_id}}}"#
    ))
    .unwrap();
    let mut batch = Batch::default();
    batch.push(Frame::ws_message(stream_id, true, b"first").encode());
    batch.push(Frame::ws_message(stream_id, false, &[0, 1, 2]).encode());
    batch.push(Frame::ws_message(stream_id, true, b"third").encode());
    fwd.ws.send(WsMessage::binary(batch.finish())).unwrap();
    let got = client.join().unwrap();
    assert_eq!(
        got,
        vec![
            WsMessage::text("first"),
            WsMessage::binary(vec![0, 1, 2]),
            WsMessage::text("third")
        ]
    );
}

/// Open a public WebSocket on `fwd`'s tunnel; a thread sends `n` text
/// messages back to back and closes (1000). Returns the stream id.
fn burst_of_public_messages(w: &SharedWorker, fwd: &mut ScriptedForwarder, n: usize) -> u32 {
    let url = format!("ws://127.0.0.1:{}/{}/burst", w.port, fwd.id);
    let client = thread::spawn(move || {
        let (mut ws, _) = tungstenite::connect(url).unwrap();
        for i in 0..n {
            ws.send(WsMessage::text(format!("m{i}"))).unwrap();
        }
        ws.close(None).unwrap();
        // Until the close handshake ends (the edge answers it).
        while ws.read().is_ok() {}
    });
    let open = fwd.next_of("ws_open").unwrap();
    let stream_id = json_u32(&open, "stream_id");
    fwd.send_text(&format!(
        r#"{{"type":"ws_opened","stream_id":{stream_id}}}"#
    ))
    .unwrap();
    drop(client);
    stream_id
}

/// A number field of a JSON text frame.
fn json_u32(text: &str, field: &str) -> u32 {
    text.split(&format!(r#""{field}":"#))
        .nth(1)
        .and_then(|s| s.split([',', '}']).next())
        .and_then(|s| s.parse().ok())
        .unwrap()
}

#[test]
fn a_burst_of_public_messages_reaches_a_v3_forwarder_whole_in_order_before_the_close() {
    let w = worker();
    let mut fwd = ScriptedForwarder::connect(w.port, &[], Some(3)).unwrap();
    let stream_id = burst_of_public_messages(w, &mut fwd, 200);
    // The edge may coalesce them into batches (kind 3); what they carry
    // is every message once, in order, and the close comes after them.
    let mut got = Vec::new();
    let mut messages = 0;
    let close = loop {
        match fwd.ws.read().unwrap() {
            WsMessage::Binary(bytes) => {
                messages += 1;
                let frame = Frame::decode(&bytes).unwrap();
                let frames = if frame.kind == FrameKind::Batch {
                    unbatch(&frame).map(|f| f.unwrap().encode()).collect()
                } else {
                    vec![bytes.to_vec()]
                };
                for f in &frames {
                    let f = Frame::decode(f).unwrap();
                    assert_eq!((f.kind, f.stream_id), (FrameKind::WsMessage, stream_id));
                    got.push(String::from_utf8(f.payload.to_vec()).unwrap());
                }
            }
            WsMessage::Text(t) if t.contains(r#""type":"ws_close""#) => break t,
            _ => {}
        }
    };
    let want: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want);
    assert!(messages <= 200);
    assert!(
        close.contains(r#""code":1000"#) || close.contains(r#""code":1005"#),
        "{close}"
    );
}

#[test]
fn a_v2_forwarder_gets_json_heads_and_no_v3_frame() {
    let w = worker();
    let mut fwd = ScriptedForwarder::connect(w.port, &[], Some(2)).unwrap();
    assert!(
        fwd.established.contains(r#""version":2"#),
        "{}",
        fwd.established
    );
    let caller = call(w, "GET", &fwd.id, "/old", b"");
    // `next_of` skips nothing binary here: the first frame must be JSON.
    let first = fwd.ws.read().unwrap();
    let WsMessage::Text(request) = first else {
        panic!("a v2 forwarder got {first:?}");
    };
    assert!(request.contains(r#""type":"http_request""#), "{request}");
    let id = json_str(&request, "request_id").unwrap();
    fwd.send_text(&format!(
        r#"{{"type":"http_response","request_id":"{id}","status_code":200,"headers":{{}},"body":"b2xk"}}"#
    ))
    .unwrap();
    let r = caller.join().unwrap();
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.body, b"old");
}

#[test]
fn a_v2_forwarder_gets_a_burst_of_public_messages_one_frame_each() {
    let w = worker();
    let mut fwd = ScriptedForwarder::connect(w.port, &[], Some(2)).unwrap();
    let stream_id = burst_of_public_messages(w, &mut fwd, 100);
    let mut got = 0;
    while got < 100 {
        if let WsMessage::Binary(bytes) = fwd.ws.read().unwrap() {
            let frame = Frame::decode(&bytes).unwrap();
            assert_eq!(
                (frame.kind, frame.stream_id),
                (FrameKind::WsMessage, stream_id)
            );
            assert_eq!(frame.payload, format!("m{got}").as_bytes());
            got += 1;
        }
    }
}

#[test]
fn ttf_speaking_v2_is_still_served() {
    let w = worker();
    let up = Upstream::start().unwrap();
    let f = Forwarder::start(w.port, up.port, &["--protocol", "2"]).unwrap();
    let body = random_bytes(300 * 1024, 17);
    let host = format!("127.0.0.1:{}", w.port);
    let r = http(
        w.port,
        "POST",
        &format!("/{}/echo/v2", f.id),
        &host,
        &[],
        &body,
    )
    .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(r.body == body, "the body round-trips byte exact");
    let r = http(
        w.port,
        "GET",
        &format!("/{}/headers", f.id),
        &host,
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text());
}
