//! The local side: sends one relayed request to the local HTTP service and
//! turns the outcome into the v1 answer (`http_response`, or `error` with
//! `local_service_unavailable` / `timeout` / `invalid_request` /
//! `internal_error`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tunnel_proto::headers::collect_headers;
use tunnel_proto::v1::{decode_body, encode_body};
use tunnel_proto::{ErrorCode, Headers, Message};

/// Largest local answer relayed in one v1 frame (base64 grows it by 4/3,
/// and the edge accepts WebSocket messages up to 32 MiB).
pub const MAX_RESPONSE_BYTES: usize = 20 * 1024 * 1024;

/// A relayed request as the forwarder received it.
#[derive(Debug, Clone)]
pub struct Relayed {
    /// Id to answer with.
    pub request_id: String,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers (wire shape).
    pub headers: Headers,
    /// Base64 body.
    pub body: String,
}

/// The answer and what the console shows about it.
#[derive(Debug)]
pub struct Outcome {
    /// Message to send back to the edge.
    pub message: Message,
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
    client: Client<HttpConnector, Full<Bytes>>,
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
            .build(connector);
        Self { client, timeout }
    }

    /// Serve one relayed request with the service at `authority` (`host:port`).
    pub async fn serve(&self, req: Relayed, authority: &str) -> Outcome {
        let start = Instant::now();
        let id = req.request_id.clone();
        let result = match tokio::time::timeout(self.timeout, self.call(req, authority)).await {
            Ok(r) => r,
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
            message: Message::HttpResponse {
                request_id: id,
                status_code: status,
                headers,
                body: encode_body(&body),
                processing_time_ms: elapsed.as_millis() as u64,
            },
            status,
            elapsed,
            detail: None,
        },
        Err((code, message)) => Outcome {
            status: code.http_status(),
            detail: Some(format!("{}: {message}", code.as_str())),
            message: Message::Error {
                request_id: Some(id),
                code,
                message,
            },
            elapsed,
        },
    }
}

impl Local {
    async fn call(
        &self,
        req: Relayed,
        authority: &str,
    ) -> Result<(u16, Headers, Vec<u8>), (ErrorCode, String)> {
        let invalid = |what: String| (ErrorCode::InvalidRequest, what);
        let method = Method::from_bytes(req.method.as_bytes())
            .map_err(|_| invalid(format!("invalid method {:?}", req.method)))?;
        let uri = format!("http://{}{}", authority, req.uri);
        let body = decode_body(&req.body).map_err(|e| invalid(e.to_string()))?;
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
        let request = builder
            .header(hyper::header::HOST, authority)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| invalid(format!("cannot build the local request: {e}")))?;
        let response = self.client.request(request).await.map_err(|e| {
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
        })?;
        let status = response.status().as_u16();
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
        let headers = collect_headers(&pairs, |_| false);
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
                        format!("the local answer is larger than {MAX_RESPONSE_BYTES} bytes, the v1 limit"),
                    ));
                }
                bytes.extend_from_slice(data);
            }
        }
        Ok((status, headers, bytes))
    }
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
