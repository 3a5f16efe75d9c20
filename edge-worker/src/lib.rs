//! The edge worker's router: `/_tunnel` control sockets (after the optional
//! JWT check) get a fresh tunnel id and go to that tunnel's Durable Object;
//! public requests, by subdomain (`<id>.<base>`) or by path (`/<id>/...`),
//! go to the Durable Object named by their id. Routing rules are the pure
//! functions of `tunnel_proto::route`.

// Nothing fed by the network may panic: no slicing or indexing that can be
// out of range or off a char boundary, no unwrap/expect/panic (tests exempt).
#![cfg_attr(
    not(test),
    deny(
        clippy::string_slice,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use tunnel_proto::headers::{RequestMeta, META_HEADER};
use tunnel_proto::route::{self, public_urls, Route, TUNNEL_ID_LEN};
use tunnel_proto::{names, v2};
use worker::*;

mod auth;
mod config;
mod tunnel;

pub use tunnel::Tunnel;

use config::Config;
use tunnel::{ControlMeta, CONTROL_HEADER};

/// `Sec-WebSocket-Extensions` of the edge's WebSocket answers: not an
/// extension workerd knows, so it agrees to none (see
/// [`without_compression`]).
const NO_EXTENSION: &str = "none";

/// Binding name of the Durable Object namespace (see `wrangler.toml`).
const TUNNEL_BINDING: &str = "TUNNEL";

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let config = Config::from_env(&env);
    let url = req.url()?;
    let host = match req.headers().get("host")? {
        Some(h) => h,
        None => match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => String::new(),
        },
    };
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let proto = if url.scheme() == "https" {
        "https"
    } else {
        "http"
    };
    match route::route(&host, &path_and_query, &config.base_domain) {
        Route::Control => control(req, &env, &config, proto, &host).await,
        Route::Tunnel { id, uri, prefix } => {
            let declared = req
                .headers()
                .get("content-length")?
                .and_then(|v| v.trim().parse::<usize>().ok());
            if declared.is_some_and(|n| n > config.max_body_bytes) {
                return tunnel::too_large(config.max_body_bytes);
            }
            let meta = RequestMeta {
                uri,
                prefix,
                proto: proto.to_string(),
                host,
                client_ip: req.headers().get("cf-connecting-ip")?,
            };
            to_tunnel(req, &env, &id, META_HEADER, &serde_json::to_string(&meta)?).await
        }
        Route::Reserved(name) if name == "_health" => Response::ok("ok"),
        Route::Reserved(name) if name == "_floor" && config.bench_floor => {
            to_tunnel(req, &env, "_floor", tunnel::FLOOR_HEADER, "1").await
        }
        Route::Reserved(name) => Response::error(format!("/{name} is reserved by the tunnel edge"), 404),
        Route::NotFound => Response::error(
            format!(
                "unknown tunnel: use https://<tunnel-id>.<host>/ or https://<host>/<tunnel-id>/ (ids are {TUNNEL_ID_LEN} characters of a-z0-9)"
            ),
            404,
        ),
    }
}

/// A forwarder opening its control socket.
async fn control(
    req: Request,
    env: &Env,
    config: &Config,
    proto: &str,
    host: &str,
) -> Result<Response> {
    let upgrade = req.headers().get("upgrade")?.unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Response::error(
            "/_tunnel is the forwarders' control socket: connect with a WebSocket (e.g. `ttf -e wss://<host>/_tunnel`)",
            426,
        );
    }
    let claims = match auth::check(env, &req).await {
        Ok(claims) => claims,
        Err(e) => {
            console_warn!("control socket refused: {e}");
            return Response::error(format!("unauthorized: {e}"), 401);
        }
    };
    // A well-formed resume token names the tunnel to resume; the Durable
    // Object checks the token itself. Otherwise a requested name, if the
    // token allows it, or a fresh random id.
    let resume = req
        .headers()
        .get(v2::RESUME_HEADER)?
        .filter(|t| v2::resume_token_id(t).is_some());
    let requested = match req.headers().get(names::NAME_HEADER)? {
        Some(name) => match names::parse_name(&name) {
            Ok(name) => Some(name),
            Err(reason) => return Response::error(reason, 400),
        },
        None => None,
    };
    if let Some(name) = &requested {
        if let Err((status, reason)) = names::check_allowed(claims.as_ref(), name) {
            console_warn!("name {name} refused: {reason}");
            return Response::error(reason, status);
        }
    }
    let id = match (resume.as_deref().and_then(v2::resume_token_id), &requested) {
        (Some(id), _) => id.to_string(),
        (None, Some(name)) => name.clone(),
        (None, None) => new_tunnel_id()?,
    };
    let base = if config.base_domain.is_empty() {
        host
    } else {
        config.base_domain.as_str()
    };
    let meta = ControlMeta {
        tunnel_id: id.clone(),
        urls: public_urls(proto, base, &id),
        version: 0,
        resume_token: resume,
        named: requested.is_some(),
        subject: names::subject(claims.as_ref()),
        since: 0,
        ping_interval_ms: None,
        heard: 0,
    };
    to_tunnel(
        req,
        env,
        &id,
        CONTROL_HEADER,
        &serde_json::to_string(&meta)?,
    )
    .await
}

/// Hand `req` to the Durable Object of tunnel `id`, with `meta` attached
/// as header `header`.
async fn to_tunnel(
    req: Request,
    env: &Env,
    id: &str,
    header: &str,
    meta: &str,
) -> Result<Response> {
    let mut forwarded = req.clone_mut()?;
    let headers = forwarded.headers_mut()?;
    headers.delete(META_HEADER)?;
    headers.delete(CONTROL_HEADER)?;
    headers.delete(tunnel::FLOOR_HEADER)?;
    headers.set(header, meta)?;
    let stub = env.durable_object(TUNNEL_BINDING)?.get_by_name(id)?;
    without_compression(stub.fetch_with_request(forwarded).await?)
}

/// A WebSocket answer (101) goes out without `permessage-deflate`: when
/// the answer names no extension, workerd accepts whatever the client
/// offered (every browser and Node's `ws` offer deflate), and then
/// compresses and inflates every message of the public socket. The local
/// service never agreed to compression (`ttf` does not offer it), and for
/// the small messages tunnels mostly carry it cost the runtime and the
/// client more CPU per message than everything else the relay does (100 B
/// echo through workerd: 5.9k msg/s with it). A header that offers no
/// deflate ([`NO_EXTENSION`]) makes workerd agree to no extension and send
/// no header (an empty one counts as absent).
fn without_compression(answer: Response) -> Result<Response> {
    if answer.status_code() != 101 {
        return Ok(answer);
    }
    let headers = Headers::new();
    for (name, value) in answer.headers().entries() {
        headers.append(&name, &value)?;
    }
    headers.set("sec-websocket-extensions", NO_EXTENSION)?;
    Ok(answer.with_headers(headers))
}

/// A fresh random tunnel id.
fn new_tunnel_id() -> Result<String> {
    let mut bytes = [0u8; TUNNEL_ID_LEN];
    getrandom::fill(&mut bytes).map_err(|e| Error::RustError(format!("no randomness: {e}")))?;
    Ok(route::tunnel_id_from_random(bytes))
}
