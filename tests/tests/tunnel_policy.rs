//! End-to-end tests of edge policies: `ttf` declares them in `ready`, the
//! Durable Object on `wrangler dev` (workerd) enforces them before anything
//! reaches the local service, with real HTTP and WebSocket clients.
//! Signatures and tokens are made with the `openssl` CLI (`e2e::sign`).

use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e::sign::{b64url, hmac_sha256_hex, keys, token};
use e2e::tunnel::{http, shared_worker, wait_exit, Forwarder, HttpMessage, SharedWorker, Upstream};
use e2e::{cargo_bin, Proc};
use tungstenite::client::IntoClientRequest;

fn worker() -> &'static SharedWorker {
    static WORKER: OnceLock<SharedWorker> = OnceLock::new();
    shared_worker(&WORKER, &[])
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A local WebSocket echo server; counts the upgrades it accepted.
struct Echo {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

fn ws_echo() -> Echo {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let count = count.clone();
            std::thread::spawn(move || {
                let Ok(mut ws) = tungstenite::accept(conn) else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                while let Ok(m) = ws.read() {
                    if (m.is_text() || m.is_binary()) && ws.send(m).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Echo { port, accepted }
}

/// A tunnel to a fresh local HTTP service (and a `/ws` echo route) with
/// the policy flags `extra`.
fn tunnel(extra: &[&str]) -> (&'static SharedWorker, Upstream, Echo, Forwarder) {
    let w = worker();
    let up = Upstream::start().unwrap();
    let echo = ws_echo();
    let route = format!("/ws=ws://127.0.0.1:{}", echo.port);
    let mut args = vec!["--route", route.as_str()];
    args.extend_from_slice(extra);
    let f = Forwarder::start(w.port, up.port, &args).unwrap();
    (w, up, echo, f)
}

/// `method path` on tunnel `id` (subdomain form) with `headers` and `body`.
fn send(
    w: &SharedWorker,
    id: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpMessage {
    http(
        w.port,
        method,
        path,
        &format!("{id}.localhost:{}", w.port),
        headers,
        body,
    )
    .unwrap()
}

/// Open a WebSocket to `/ws` on tunnel `id` with `headers`; `Ok` after an
/// echoed message, `Err(status)` when the upgrade is refused.
fn ws_roundtrip(
    w: &SharedWorker,
    id: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(), u16> {
    let mut request = format!("ws://127.0.0.1:{}{path}", w.port)
        .into_client_request()
        .unwrap();
    let host = format!("{id}.localhost:{}", w.port);
    request.headers_mut().insert("host", host.parse().unwrap());
    for (n, v) in headers {
        request.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let (mut ws, _) = tungstenite::connect(request).map_err(|e| match e {
        tungstenite::Error::Http(resp) => resp.status().as_u16(),
        other => panic!("websocket failed: {other}"),
    })?;
    ws.send(tungstenite::Message::text("over the tunnel"))
        .unwrap();
    loop {
        match ws.read().unwrap() {
            tungstenite::Message::Text(t) => {
                assert_eq!(t.as_str(), "over the tunnel");
                return Ok(());
            }
            tungstenite::Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

/// Requests the local service received on paths containing `needle`.
fn seen(up: &Upstream, needle: &str) -> usize {
    up.received
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.start.contains(needle))
        .count()
}

fn basic(user_pass: &str) -> String {
    let b64 = b64url(user_pass.as_bytes())
        .replace('-', "+")
        .replace('_', "/");
    let pad = "=".repeat((4 - b64.len() % 4) % 4);
    format!("Basic {b64}{pad}")
}

#[test]
fn basic_auth_prompts_refuses_and_admits_http_and_websockets() {
    let (w, up, echo, mut f) = tunnel(&["--basic-auth", "alice:s3cret"]);
    f.proc
        .wait_for_line("Edge policies: basic_auth", Duration::from_secs(10))
        .unwrap();
    let r = send(w, &f.id, "GET", "/echo/none", &[], b"");
    assert_eq!(r.status(), 401, "{}", r.text());
    assert!(r
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Basic realm=")));
    let wrong = basic("alice:guess");
    let r = send(
        w,
        &f.id,
        "GET",
        "/echo/wrong",
        &[("Authorization", &wrong)],
        b"",
    );
    assert_eq!(r.status(), 401);
    let good = basic("alice:s3cret");
    let r = send(
        w,
        &f.id,
        "POST",
        "/echo/good",
        &[("Authorization", &good)],
        b"body",
    );
    assert_eq!((r.status(), r.body.as_slice()), (200, b"body".as_slice()));
    // Refused requests never reached the machine.
    assert_eq!(seen(&up, "/echo/none") + seen(&up, "/echo/wrong"), 0);
    // WebSocket clients keep working with credentials (no interstitial).
    assert_eq!(ws_roundtrip(w, &f.id, "/ws", &[]), Err(401));
    assert_eq!(echo.accepted.load(Ordering::SeqCst), 0);
    ws_roundtrip(w, &f.id, "/ws", &[("Authorization", &good)]).unwrap();
}

#[test]
fn allow_ip_admits_listed_networks_only() {
    let (w, up, echo, f) = tunnel(&["--allow-ip", "10.0.0.0/8", "--allow-ip", "2001:db8::/32"]);
    let r = send(w, &f.id, "GET", "/echo/outside", &[], b"");
    assert_eq!(r.status(), 403, "{}", r.text());
    assert!(r.text().contains("--allow-ip"), "{}", r.text());
    assert_eq!(ws_roundtrip(w, &f.id, "/ws", &[]), Err(403));
    assert_eq!(seen(&up, "/echo/outside"), 0);
    assert_eq!(echo.accepted.load(Ordering::SeqCst), 0);
    // Loopback (where this test's clients are) listed: admitted.
    let (w, _up, _echo, f) = tunnel(&["--allow-ip", "10.0.0.0/8", "--allow-ip", "127.0.0.0/8"]);
    assert_eq!(
        send(w, &f.id, "GET", "/echo/inside", &[], b"").status(),
        200
    );
    ws_roundtrip(w, &f.id, "/ws", &[]).unwrap();
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let (w, up, _echo, f) = tunnel(&["--rate-limit", "3/m"]);
    for i in 0..3 {
        let r = send(w, &f.id, "GET", &format!("/echo/ok{i}"), &[], b"");
        assert_eq!(r.status(), 200, "request {i}: {}", r.text());
    }
    let r = send(w, &f.id, "GET", "/echo/over", &[], b"");
    assert_eq!(r.status(), 429, "{}", r.text());
    let after: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&after), "retry-after {after}");
    assert_eq!(seen(&up, "/echo/over"), 0);
}

#[test]
fn webhook_signatures_are_checked_at_the_edge() {
    let body = br#"{"action":"opened","number":17}"#;
    let (w, up, _echo, f) = tunnel(&["--verify-webhook", "github:gh-secret"]);
    let sig = format!("sha256={}", hmac_sha256_hex("gh-secret", body));
    let r = send(
        w,
        &f.id,
        "POST",
        "/echo/hook",
        &[("X-Hub-Signature-256", &sig)],
        body,
    );
    assert_eq!(
        (r.status(), r.body.as_slice()),
        (200, body.as_slice()),
        "{}",
        r.text()
    );
    let forged = format!("sha256={}", hmac_sha256_hex("not-the-secret", body));
    let r = send(
        w,
        &f.id,
        "POST",
        "/echo/forged",
        &[("X-Hub-Signature-256", &forged)],
        body,
    );
    assert_eq!(r.status(), 401);
    assert!(r.text().contains("does not match"), "{}", r.text());
    let r = send(
        w,
        &f.id,
        "POST",
        "/echo/tampered",
        &[("X-Hub-Signature-256", &sig)],
        b"{}",
    );
    assert_eq!(r.status(), 401);
    let r = send(w, &f.id, "POST", "/echo/unsigned", &[], body);
    assert!(r.text().contains("X-Hub-Signature-256"), "{}", r.text());
    assert_eq!(
        seen(&up, "/echo/forged") + seen(&up, "/echo/tampered") + seen(&up, "/echo/unsigned"),
        0
    );
    assert_eq!(up.last("/echo/hook").unwrap().body, body);

    let ts = now().to_string();
    let (w, _up, _echo, f) = tunnel(&["--verify-webhook", "stripe:whsec_x"]);
    let signed = [ts.as_bytes(), b".", body].concat();
    let header = format!("t={ts},v1={}", hmac_sha256_hex("whsec_x", &signed));
    let r = send(
        w,
        &f.id,
        "POST",
        "/echo/stripe",
        &[("Stripe-Signature", &header)],
        body,
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let stale = format!(
        "t={},v1={}",
        now() - 3600,
        hmac_sha256_hex("whsec_x", &signed)
    );
    let r = send(
        w,
        &f.id,
        "POST",
        "/echo/stripe",
        &[("Stripe-Signature", &stale)],
        body,
    );
    assert_eq!(r.status(), 401);

    let (w, _up, _echo, f) = tunnel(&["--verify-webhook", "slack:sl"]);
    let base = [b"v0:", ts.as_bytes(), b":", body].concat();
    let sig = format!("v0={}", hmac_sha256_hex("sl", &base));
    let headers = [
        ("X-Slack-Signature", sig.as_str()),
        ("X-Slack-Request-Timestamp", ts.as_str()),
    ];
    assert_eq!(
        send(w, &f.id, "POST", "/echo/slack", &headers, body).status(),
        200
    );
    let r = send(w, &f.id, "POST", "/echo/slack", &headers, b"other body");
    assert_eq!(r.status(), 401);
}

#[test]
fn visitor_jwts_hs_and_jwks_by_header_or_query() {
    let claims = format!(r#"{{"sub":"visitor","exp":{}}}"#, now() + 600);
    let (w, up, _echo, f) = tunnel(&["--require-jwt", "hs:visitor-secret-0123456789"]);
    let good = token("HS256", &claims, "visitor-secret-0123456789");
    let bearer = format!("Bearer {good}");
    let r = send(
        w,
        &f.id,
        "GET",
        "/echo/jwt",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let r = send(w, &f.id, "GET", "/echo/none", &[], b"");
    assert_eq!(r.status(), 401);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Bearer")));
    let other = format!("Bearer {}", token("HS256", &claims, "another-secret"));
    assert_eq!(
        send(
            w,
            &f.id,
            "GET",
            "/echo/bad",
            &[("Authorization", &other)],
            b""
        )
        .status(),
        401
    );
    let expired = token(
        "HS256",
        &format!(r#"{{"exp":{}}}"#, now() - 3600),
        "visitor-secret-0123456789",
    );
    let r = send(
        w,
        &f.id,
        "GET",
        "/echo/old",
        &[("Authorization", &format!("Bearer {expired}"))],
        b"",
    );
    assert!(r.text().contains("expired"), "{}", r.text());
    assert_eq!(
        seen(&up, "/echo/none") + seen(&up, "/echo/bad") + seen(&up, "/echo/old"),
        0
    );
    // A browser's WebSocket cannot set headers: ?token= works.
    assert_eq!(ws_roundtrip(w, &f.id, "/ws", &[]), Err(401));
    ws_roundtrip(w, &f.id, &format!("/ws?token={good}"), &[]).unwrap();

    let jwks_file = keys().dir.path().join("visitor-jwks.json");
    std::fs::write(&jwks_file, &keys().jwks).unwrap();
    let spec = format!("jwks:{}", jwks_file.display());
    let (w, _up, _echo, f) = tunnel(&["--require-jwt", &spec]);
    let rs = format!("Bearer {}", token("RS256", &claims, "good.pem"));
    assert_eq!(
        send(w, &f.id, "GET", "/echo/rs", &[("Authorization", &rs)], b"").status(),
        200
    );
    let rs_other = format!("Bearer {}", token("RS256", &claims, "other.pem"));
    assert_eq!(
        send(
            w,
            &f.id,
            "GET",
            "/echo/rs",
            &[("Authorization", &rs_other)],
            b""
        )
        .status(),
        401
    );
}

#[test]
fn ttf_refuses_to_serve_when_the_edge_does_not_confirm_its_policies() {
    // A scripted edge that answers like a worker from before policies.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut ws = tungstenite::accept(conn).unwrap();
        let _ready = ws.read().unwrap();
        let established = r#"{"type":"connection_established","connection_id":"c","tunnel_id":"oldedge00001","public_url":"http://old","version":2}"#;
        ws.send(tungstenite::Message::text(established)).unwrap();
        while ws.read().is_ok() {}
    });
    let mut ttf = Proc::spawn(
        "ttf",
        Command::new(cargo_bin("ttf")).args([
            "--endpoint",
            &format!("ws://127.0.0.1:{port}/_tunnel"),
            "--basic-auth",
            "u:p",
        ]),
    )
    .unwrap();
    let status = wait_exit(&mut ttf, Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{}", ttf.output());
    assert!(
        ttf.output()
            .contains("does not enforce the edge policies basic_auth"),
        "{}",
        ttf.output()
    );
}

#[test]
fn bad_policy_flags_exit_2_naming_the_flag() {
    let out = Command::new(cargo_bin("ttf"))
        .args([
            "-e",
            "ws://127.0.0.1:9/_tunnel",
            "--require-jwt",
            "jwks:/nonexistent.json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--require-jwt"));
}
