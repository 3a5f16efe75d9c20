//! The local side: sends one relayed request to the local HTTP service and
//! turns the outcome into the v1 answer (`http_response`, or `error` with
//! `local_service_unavailable` / `timeout` / `invalid_request` /
//! `internal_error`), or, for v2 requests whose answer is not rewritable
//! HTML/CSS/JS, streams it: `http_response_head`, then body chunks within
//! the flow-control window granted by the edge.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tunnel_proto::headers::collect_headers;
use tunnel_proto::heads::ResponseHead;
use tunnel_proto::rewrite::Kind;
use tunnel_proto::stream::{self, Grants, SendStop, SendWindow};
use tunnel_proto::v1::encode_body;
use tunnel_proto::v2::{self, Frame};
use tunnel_proto::{ErrorCode, Headers, Message};

use crate::quickack::QuickAckConnector;
use crate::streams::Out;

/// Largest local answer relayed in one v1 frame (base64 grows it by 4/3,
/// and the edge accepts WebSocket messages up to 32 MiB).
pub const MAX_RESPONSE_BYTES: usize = 20 * 1024 * 1024;

/// A relayed request as the forwarder received it.
#[derive(Debug)]
pub struct Relayed {
    /// Id to answer with.
    pub request_id: String,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers (wire shape).
    pub headers: Headers,
    /// The whole body (empty when it is streamed in `upload`).
    pub body: Bytes,
    /// v2: the body arrives as body frames instead.
    pub upload: Option<Upload>,
}

/// A request body streamed by the edge (v2).
#[derive(Debug)]
pub struct Upload {
    /// Stream id of the request.
    pub stream_id: u32,
    /// Chunks as they arrive (`Err` when the edge aborted the body).
    pub chunks: mpsc::UnboundedReceiver<Result<Bytes, String>>,
    /// Where `window` acknowledgements go.
    pub out: mpsc::UnboundedSender<Out>,
}

/// Body of a request to the local service.
type LocalBody = UnsyncBoxBody<Bytes, std::io::Error>;

impl Upload {
    /// The request body: each chunk hyper takes is reported
    /// ([`Out::Consumed`]) and acknowledged to the edge with `window`, so
    /// the edge sends at most `v2::WINDOW` bytes ahead.
    fn into_body(self) -> LocalBody {
        let Upload {
            stream_id,
            chunks,
            out,
        } = self;
        let stream =
            futures_util::stream::unfold((chunks, out), move |(mut chunks, out)| async move {
                let chunk = chunks.recv().await?;
                if let Ok(bytes) = &chunk {
                    let n = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                    let _ = out.send(Out::Consumed(stream_id, n));
                }
                let frame = chunk
                    .map(hyper::body::Frame::data)
                    .map_err(std::io::Error::other);
                Some((frame, (chunks, out)))
            });
        StreamBody::new(stream).boxed_unsync()
    }
}

/// Where a v2 answer body may stream to.
#[derive(Debug)]
pub struct BodySink {
    /// Stream id the edge gave the request.
    pub stream_id: u32,
    /// The control socket's outgoing queue.
    pub out: mpsc::UnboundedSender<Out>,
    /// Window updates (`window` messages) from the edge for this stream.
    pub credits: mpsc::UnboundedReceiver<u32>,
    /// v3: the answer's head goes in a binary frame (with the whole body
    /// when it is small and its length known), not `http_response_head`.
    pub binary: bool,
}

/// The answer and what the console shows about it.
#[derive(Debug)]
pub struct Outcome {
    /// Message to send back to the edge (`None`: streamed already).
    pub message: Option<Message>,
    /// Status for the console (the public status for errors).
    pub status: u16,
    /// Time spent.
    pub elapsed: Duration,
    /// Error detail, for errors.
    pub detail: Option<String>,
}

/// HTTP client for the local service (keeps connections alive).
#[derive(Clone)]
pub struct Local {
    client: Client<QuickAckConnector, LocalBody>,
    timeout: Duration,
}

impl Local {
    /// Client giving up on one request after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(QuickAckConnector(connector));
        Self { client, timeout }
    }

    /// Serve one relayed request with the service at `authority`
    /// (`host:port`); with a `sink`, a streamable answer is streamed.
    pub async fn serve(&self, req: Relayed, authority: &str, sink: Option<BodySink>) -> Outcome {
        let start = Instant::now();
        let id = req.request_id.clone();
        let answered = async {
            let response = self.call(req, authority).await?;
            match sink {
                Some(sink) if streamable(&response) => Ok(Err((response, sink))),
                _ => collect(response).await.map(Ok),
            }
        };
        let result = match tokio::time::timeout(self.timeout, answered).await {
            Ok(Ok(Err((response, sink)))) => {
                let status = response.status().as_u16();
                let detail = if sink.binary {
                    binary_answer(id, response, sink).await.err()
                } else {
                    let head = Message::HttpResponseHead {
                        request_id: id,
                        stream_id: sink.stream_id,
                        status_code: status,
                        headers: wire_headers(&response),
                    };
                    let _ = sink.out.send(Out::Frame(WsMessage::text(head.encode())));
                    stream_body(response.into_body(), sink, SendWindow::new())
                        .await
                        .err()
                };
                return Outcome {
                    message: None,
                    status,
                    elapsed: start.elapsed(),
                    detail,
                };
            }
            Ok(Ok(Ok(whole))) => Ok(whole),
            Ok(Err(e)) => Err(e),
            Err(_) => Err((
                ErrorCode::Timeout,
                format!("the local service did not answer within {:?}", self.timeout),
            )),
        };
        outcome(id, start, result)
    }

    /// Answer a request this forwarder does not relay with `code`.
    pub fn refuse(&self, req: Relayed, code: ErrorCode, message: String) -> Outcome {
        outcome(req.request_id, Instant::now(), Err((code, message)))
    }
}

/// The v1 answer (and console data) for request `id`'s result.
fn outcome(
    id: String,
    start: Instant,
    result: Result<(u16, Headers, Vec<u8>), (ErrorCode, String)>,
) -> Outcome {
    let elapsed = start.elapsed();
    match result {
        Ok((status, headers, body)) => Outcome {
            message: Some(Message::HttpResponse {
                request_id: id,
                status_code: status,
                headers,
                body: encode_body(&body),
                processing_time_ms: elapsed.as_millis() as u64,
            }),
            status,
            elapsed,
            detail: None,
        },
        Err((code, message)) => Outcome {
            status: code.http_status(),
            detail: Some(format!("{}: {message}", code.as_str())),
            message: Some(Message::Error {
                request_id: Some(id),
                code,
                message,
            }),
            elapsed,
        },
    }
}

impl Local {
    async fn call(
        &self,
        req: Relayed,
        authority: &str,
    ) -> Result<hyper::Response<Incoming>, (ErrorCode, String)> {
        let invalid = |what: String| (ErrorCode::InvalidRequest, what);
        let method = Method::from_bytes(req.method.as_bytes())
            .map_err(|_| invalid(format!("invalid method {:?}", req.method)))?;
        let uri = format!("http://{}{}", authority, req.uri);
        // A streamed body keeps the public request's length: hyper then
        // sends it with `Content-Length` instead of chunked, which many
        // local servers (Python's `http.server`) do not read. A whole body
        // gets its length from hyper.
        let length = req
            .upload
            .as_ref()
            .and_then(|_| declared_length(&req.headers));
        let body = match req.upload {
            Some(upload) => upload.into_body(),
            None => Full::new(req.body)
                .map_err(|never| match never {})
                .boxed_unsync(),
        };
        let mut builder = Request::builder().method(method).uri(&uri);
        for (name, values) in &req.headers {
            if name == "host" || name == "content-length" {
                continue;
            }
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("invalid header name {name:?}")))?;
            for value in values {
                let value = HeaderValue::from_str(value)
                    .map_err(|_| invalid(format!("invalid value of header {name}")))?;
                builder = builder.header(name.clone(), value);
            }
        }
        if let Some(length) = length {
            builder = builder.header(hyper::header::CONTENT_LENGTH, length);
        }
        let request = builder
            .header(hyper::header::HOST, authority)
            .body(body)
            .map_err(|e| invalid(format!("cannot build the local request: {e}")))?;
        self.client.request(request).await.map_err(|e| {
            if e.is_connect() {
                (
                    ErrorCode::LocalServiceUnavailable,
                    format!("nothing answers on {}: {}", authority, source_chain(&e)),
                )
            } else {
                (
                    ErrorCode::InternalError,
                    format!("local request failed: {}", source_chain(&e)),
                )
            }
        })
    }
}

/// The body length a relayed request declares: one `content-length` value
/// that is a whole number (anything else: unknown, the body goes chunked).
fn declared_length(headers: &Headers) -> Option<u64> {
    match headers.get("content-length").map(Vec::as_slice) {
        Some([one]) => one.trim().parse().ok(),
        _ => None,
    }
}

/// The answer's headers in the wire shape.
fn wire_headers(response: &hyper::Response<Incoming>) -> Headers {
    let pairs: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    collect_headers(&pairs, |_| false)
}

/// Whether an answer is streamed: it has a body and is not HTML/CSS/JS
/// (which the edge may rewrite, so those travel whole).
fn streamable(response: &hyper::Response<Incoming>) -> bool {
    let rewritable = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Kind::for_content_type)
        .is_some();
    !rewritable && !matches!(response.status().as_u16(), 204 | 304)
}

/// The edge's `window` grants for one streamed answer.
struct Credits<'a>(&'a mut mpsc::UnboundedReceiver<u32>);

impl Grants for Credits<'_> {
    async fn next_grant(&mut self) -> Option<u32> {
        self.0.recv().await
    }
}

/// Why a streamed answer stopped early when the edge cancelled it.
const CANCELLED: &str = "the public side went away; stopped reading the local answer";

/// Send a body as chunks of at most `v2::MAX_CHUNK`, never more than
/// `v2::WINDOW` bytes beyond what the edge acknowledged; the last frame is
/// flagged END (ABORT if the local body failed). Ends early when the edge
/// cancels the stream.
async fn stream_body(
    mut body: Incoming,
    sink: BodySink,
    mut window: SendWindow,
) -> Result<(), String> {
    let BodySink {
        stream_id: id,
        out,
        mut credits,
        ..
    } = sink;
    let send_frame = |frame: Vec<u8>| out.send(Out::Frame(WsMessage::binary(frame))).is_ok();
    let send = |flags: u8, chunk: &[u8]| send_frame(Frame::body(id, flags, chunk).encode());
    loop {
        // Credits (and the edge's cancel: the credit channel closes) are
        // taken while the local service is quiet too, so an abandoned
        // stream ends even when its next chunk is minutes away (SSE).
        let frame = tokio::select! {
            frame = body.frame() => match frame {
                Some(frame) => frame,
                None => break,
            },
            more = credits.recv() => match more {
                Some(more) => {
                    window.grant(more);
                    continue;
                }
                None => return Err(CANCELLED.into()),
            },
        };
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                send(v2::FLAG_ABORT, b"");
                return Err(format!("reading the local answer failed midway: {e}"));
            }
        };
        let Some(data) = frame.data_ref() else {
            continue;
        };
        match stream::send_data(
            id,
            data,
            &mut window,
            &mut Credits(&mut credits),
            send_frame,
        )
        .await
        {
            Ok(()) => {}
            Err(SendStop::Cancelled) => return Err(CANCELLED.into()),
            Err(SendStop::Closed) => return Err("the control socket closed".into()),
        }
    }
    send(v2::FLAG_END, b"");
    Ok(())
}

/// v3: the answer as a binary head frame. A body of known length up to
/// `v2::MAX_CHUNK` is read and goes in that same frame (END): one message
/// for the whole answer. Anything else (unknown length, larger, SSE) gets
/// the head at once and streams as body frames.
async fn binary_answer(
    request_id: String,
    response: hyper::Response<Incoming>,
    sink: BodySink,
) -> Result<(), String> {
    use hyper::body::Body as _;
    let head = ResponseHead {
        request_id,
        status: response.status().as_u16(),
        headers: wire_headers(&response),
    };
    let send = |frame: Vec<u8>| sink.out.send(Out::Frame(WsMessage::binary(frame))).is_ok();
    let small = response
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n <= v2::MAX_CHUNK as u64);
    if !small {
        send(head.encode(sink.stream_id, b"", false));
        return stream_body(response.into_body(), sink, SendWindow::new()).await;
    }
    let whole = match response.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            send(head.encode(sink.stream_id, b"", false));
            send(Frame::body(sink.stream_id, v2::FLAG_ABORT, b"").encode());
            return Err(format!("reading the local answer failed midway: {e}"));
        }
    };
    // At most MAX_CHUNK bytes: always within the fresh window.
    if send(head.encode(sink.stream_id, &whole, true)) {
        Ok(())
    } else {
        Err("the control socket closed".into())
    }
}

/// Read a whole answer (v1), refusing more than `MAX_RESPONSE_BYTES`.
async fn collect(
    response: hyper::Response<Incoming>,
) -> Result<(u16, Headers, Vec<u8>), (ErrorCode, String)> {
    let status = response.status().as_u16();
    let headers = wire_headers(&response);
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            (
                ErrorCode::InternalError,
                format!("reading the local answer failed: {e}"),
            )
        })?;
        if let Some(data) = frame.data_ref() {
            if bytes.len() + data.len() > MAX_RESPONSE_BYTES {
                return Err((
                    ErrorCode::InternalError,
                    format!(
                        "the local answer is larger than {MAX_RESPONSE_BYTES} bytes, the v1 limit"
                    ),
                ));
            }
            bytes.extend_from_slice(data);
        }
    }
    Ok((status, headers, bytes))
}

/// An error with its causes, `a: b: c`.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> Headers {
        let mut h = Headers::new();
        h.insert(
            "content-length".into(),
            values.iter().map(|v| v.to_string()).collect(),
        );
        h
    }

    /// A keep-alive server that writes each answer's head and body in two
    /// writes with Nagle on, like Python's `http.server`.
    fn split_writes_server() -> std::net::SocketAddr {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut writer = conn;
                    loop {
                        let mut line = String::new();
                        while line != "\r\n" {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                        }
                        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
                        if writer.write_all(head).is_err() || writer.write_all(b"hello").is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Issue 14, item 6: on a reused connection such a server cost 43 ms
    /// per request (its Nagle waiting for our delayed ACK).
    #[tokio::test]
    async fn split_writes_of_the_local_service_cost_no_delayed_ack() {
        let addr = split_writes_server().to_string();
        let local = Local::new(Duration::from_secs(10));
        let mut times = Vec::new();
        for i in 0..15 {
            let req = Relayed {
                request_id: format!("r{i}"),
                method: "GET".into(),
                uri: "/".into(),
                headers: Headers::new(),
                body: Bytes::new(),
                upload: None,
            };
            let outcome = local.serve(req, &addr, None).await;
            assert_eq!(outcome.status, 200, "{:?}", outcome.detail);
            times.push(outcome.elapsed);
        }
        times.sort();
        let median = times[times.len() / 2];
        assert!(
            median < Duration::from_millis(20),
            "median {median:?} of {times:?}: delayed ACKs are back"
        );
    }

    #[test]
    fn declared_length_is_one_whole_number() {
        assert_eq!(declared_length(&headers(&["42"])), Some(42));
        assert_eq!(declared_length(&headers(&[" 7 "])), Some(7));
        for bad in [&[][..], &["-1"], &["x"], &["1", "1"], &["1.5"]] {
            assert_eq!(declared_length(&headers(bad)), None, "{bad:?}");
        }
        assert_eq!(declared_length(&Headers::new()), None);
    }
}
