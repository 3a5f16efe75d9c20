//! The inspector's web server (hyper, HTTP/1.1, loopback by default):
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the page (`page.html`) |
//! | `GET /api/entries?version=V` | `{version, entries}` (summaries, oldest first); waits up to 20 s for a change when `V` is the current version (long poll) |
//! | `GET /api/entries/ID` | one entry with bodies (base64) and frames |
//! | `GET /api/entries/ID/curl` | a curl command that repeats it against the local service |
//! | `POST /api/entries/ID/replay` | replays it to the local service, optionally edited (`{method, uri, headers, body_base64}`); `{id}` of the new entry |
//! | `GET /api/har` | HAR 1.2 of the HTTP entries |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tunnel_proto::v1::decode_body;
use tunnel_proto::Headers;

use super::export;
use super::store::{Exchange, Kind};
use super::{now_ms, Inspector};
use crate::local::{Local, Relayed};
use crate::routes::{Routes, Target};

/// The page.
const PAGE: &str = include_str!("page.html");

/// How long a long poll waits for a change.
const LONG_POLL: Duration = Duration::from_secs(20);

/// Largest edited replay request accepted (JSON, body base64).
const MAX_REPLAY_JSON: usize = 64 * 1024 * 1024;

/// What the server needs besides the store.
#[derive(Clone)]
pub struct Context {
    pub inspector: Inspector,
    pub local: Local,
    pub routes: Routes,
}

/// Serve on `listener` until the process ends.
pub async fn serve(listener: TcpListener, ctx: Context) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(handle(req, &ctx).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Bind `addr`; the listener and its real address.
pub async fn bind(addr: &str) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    if let Ok(v) = "no-store".parse() {
        r.headers_mut().insert(hyper::header::CACHE_CONTROL, v);
    }
    r
}

fn json_reply(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    reply(status, "application/json", value.to_string())
}

fn not_found(what: &str) -> Response<Full<Bytes>> {
    reply(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        format!("{what}: not found (only the last requests are kept; see --inspect-requests)\n"),
    )
}

/// `http://host:port` of the local service for `uri`.
fn local_base(routes: &Routes, uri: &str) -> String {
    match routes.find(uri) {
        Target::Http(a) | Target::Ws(a) | Target::MqttTcp(a) => format!("http://{a}"),
    }
}

async fn handle(req: Request<Incoming>, ctx: &Context) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method(), segments.as_slice()) {
        (&Method::GET, [""]) => reply(StatusCode::OK, "text/html; charset=utf-8", PAGE),
        (&Method::GET, ["api", "entries"]) => entries(ctx, &query).await,
        (&Method::GET, ["api", "har"]) => {
            let base = local_base(&ctx.routes, "/");
            let har = ctx.inspector.read(|s| export::har(s.entries(), &base));
            let mut r = json_reply(StatusCode::OK, &har);
            if let Ok(v) = "attachment; filename=\"ttf.har\"".parse() {
                r.headers_mut()
                    .insert(hyper::header::CONTENT_DISPOSITION, v);
            }
            r
        }
        (&Method::GET, ["api", "entries", id]) => {
            let Ok(id) = id.parse::<u64>() else {
                return not_found("entry");
            };
            match ctx.inspector.read(|s| s.get(id).map(|e| json!(e))) {
                Some(e) => json_reply(StatusCode::OK, &e),
                None => not_found(&format!("entry {id}")),
            }
        }
        (&Method::GET, ["api", "entries", id, "curl"]) => match http_entry(ctx, id) {
            Some(x) => reply(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                export::curl(&x, &local_base(&ctx.routes, &x.uri)),
            ),
            None => not_found("HTTP entry"),
        },
        (&Method::POST, ["api", "entries", id, "replay"]) => {
            let Some(original) = http_entry(ctx, id) else {
                return not_found("HTTP entry");
            };
            let original_id = id.parse().unwrap_or(0);
            let edit = match Limited::new(req.into_body(), MAX_REPLAY_JSON)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        "text/plain; charset=utf-8",
                        format!("could not read the replay request: {e}\n"),
                    )
                }
            };
            match replay(ctx, original, original_id, &edit).await {
                Ok(id) => json_reply(StatusCode::OK, &json!({ "id": id })),
                Err(e) => reply(
                    StatusCode::BAD_REQUEST,
                    "text/plain; charset=utf-8",
                    format!("{e}\n"),
                ),
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "no such inspector page; open / for the request list\n",
        ),
    }
}

/// The HTTP exchange of entry `id`.
fn http_entry(ctx: &Context, id: &str) -> Option<Exchange> {
    let id = id.parse::<u64>().ok()?;
    ctx.inspector.read(|s| match &s.get(id)?.kind {
        Kind::Http(x) => Some(x.clone()),
        Kind::Ws(_) => None,
    })
}

/// The list, after waiting for a change when the caller is up to date.
async fn entries(ctx: &Context, query: &str) -> Response<Full<Bytes>> {
    let known: Option<u64> = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("version="))
        .and_then(|v| v.parse().ok());
    let mut changes = ctx.inspector.subscribe();
    if known == Some(*changes.borrow_and_update()) {
        let _ = tokio::time::timeout(LONG_POLL, changes.changed()).await;
    }
    let version = *changes.borrow();
    let list = ctx.inspector.read(|s| s.summaries(0));
    json_reply(
        StatusCode::OK,
        &json!({ "version": version, "entries": list }),
    )
}

/// An edited replay: any field left out keeps the original's.
#[derive(Debug, Default, Deserialize)]
struct Edit {
    method: Option<String>,
    uri: Option<String>,
    headers: Option<Headers>,
    body_base64: Option<String>,
}

/// Send `original` (edited by the JSON `edit`, may be empty) to the local
/// service again; the new entry's id.
async fn replay(
    ctx: &Context,
    original: Exchange,
    original_id: u64,
    edit: &[u8],
) -> Result<u64, String> {
    let edit: Edit = if edit.iter().all(u8::is_ascii_whitespace) {
        Edit::default()
    } else {
        serde_json::from_slice(edit).map_err(|e| {
            format!("the replay edit is not JSON {{method, uri, headers, body_base64}}: {e}")
        })?
    };
    let method = edit.method.unwrap_or(original.method);
    let uri = edit.uri.unwrap_or(original.uri);
    if !uri.starts_with('/') {
        return Err(format!("the uri must start with /, got {uri:?}"));
    }
    let headers = edit.headers.unwrap_or(original.request_headers);
    let body = match edit.body_base64 {
        Some(b) => decode_body(&b).map_err(|e| format!("body_base64: {e}"))?,
        None if original.request_body.truncated() => {
            return Err(format!(
                "the original body was cut at {} of {} bytes (--inspect-body-cap); send the body with the edit",
                original.request_body.bytes.len(),
                original.request_body.total
            ))
        }
        None => original.request_body.bytes,
    };
    let request_id = format!("replay-{}", now_ms());
    let id = ctx.inspector.update(|s| {
        s.request(
            now_ms(),
            &request_id,
            None,
            &method,
            &uri,
            &headers,
            &body,
            Some(original_id),
        )
    });
    let authority = match ctx.routes.find(&uri) {
        Target::Http(a) | Target::Ws(a) => a.clone(),
        Target::MqttTcp(a) => {
            return Err(format!(
                "{uri} is bridged to the MQTT broker at {a}: nothing to replay over HTTP"
            ))
        }
    };
    let relayed = Relayed {
        request_id: request_id.clone(),
        method,
        uri,
        headers,
        body: body.into(),
        upload: None,
    };
    let outcome = ctx.local.serve(relayed, &authority, None).await;
    ctx.inspector.done(&request_id, &outcome);
    Ok(id)
}
