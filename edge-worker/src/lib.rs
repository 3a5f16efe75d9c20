//! The edge worker: routes `/_tunnel` control sockets and public requests to
//! the `Tunnel` Durable Object that owns each tunnel.

use worker::*;

mod tunnel;

pub use tunnel::Tunnel;

/// Binding name of the Durable Object namespace (see `wrangler.toml`).
const TUNNEL_BINDING: &str = "TUNNEL";

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let url = req.url()?;
    let path = url.path();
    if path == "/_tunnel" {
        let id = new_tunnel_id();
        let stub = env
            .durable_object(TUNNEL_BINDING)?
            .id_from_name(&id)?
            .get_stub()?;
        let mut forwarded = Request::new_with_init(
            &format!("https://tunnel/{id}/_tunnel"),
            RequestInit::new()
                .with_method(Method::Get)
                .with_headers(req.headers().clone()),
        )?;
        forwarded.headers_mut()?.set("x-tunnel-id", &id)?;
        return stub.fetch_with_request(forwarded).await;
    }
    if path == "/_health" {
        return Response::ok("ok");
    }
    Response::error("unknown tunnel", 404)
}

/// A fresh tunnel id: 12 characters of `[a-z0-9]`.
fn new_tunnel_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).expect("crypto.getRandomValues is available in workers");
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}
