//! End-to-end tests of control-socket authentication: a worker with
//! `JWT_SECRET` (HS256/384/512) and `JWKS` (RS256/384/512) configured
//! accepts good tokens and refuses the others with 401. Tokens are signed
//! with the `openssl` CLI, independent of the worker's own code.

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e::sign::{keys, token};
use e2e::tunnel::{
    http, shared_worker, wait_exit, Forwarder, ScriptedForwarder, SharedWorker, Upstream,
};
use e2e::{cargo_bin, Proc};

const SECRET: &str = "e2e-shared-secret-with-enough-entropy";

fn worker() -> &'static SharedWorker {
    static WORKER: OnceLock<SharedWorker> = OnceLock::new();
    let jwks = keys().jwks.clone();
    shared_worker(&WORKER, &[("JWT_SECRET", SECRET), ("JWKS", &jwks)])
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn valid_claims() -> String {
    format!(
        r#"{{"sub":"e2e","exp":{},"nbf":{}}}"#,
        now() + 600,
        now() - 60
    )
}

/// Status of a control-socket upgrade with this token (header), query and
/// requested tunnel name.
fn upgrade_status(authorization: Option<&str>, query: &str, name: Option<&str>) -> (u16, String) {
    let w = worker();
    let mut headers = vec![
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    let bearer;
    if let Some(token) = authorization {
        bearer = format!("Bearer {token}");
        headers.push(("Authorization", &bearer));
    }
    if let Some(name) = name {
        headers.push(("x-tunnel-name", name));
    }
    let r = http(
        w.port,
        "GET",
        &format!("/_tunnel{query}"),
        &format!("127.0.0.1:{}", w.port),
        &headers,
        b"",
    )
    .unwrap();
    (r.status(), r.text())
}

#[test]
fn good_tokens_of_every_algorithm_open_the_socket() {
    for (alg, key) in [
        ("HS256", SECRET),
        ("HS384", SECRET),
        ("HS512", SECRET),
        ("RS256", "good.pem"),
        ("RS384", "good.pem"),
        ("RS512", "good.pem"),
    ] {
        let (status, body) = upgrade_status(Some(&token(alg, &valid_claims(), key)), "", None);
        assert_eq!(status, 101, "{alg}: {body}");
    }
    let t = token("HS256", &valid_claims(), SECRET);
    assert_eq!(
        upgrade_status(None, &format!("?token={t}"), None).0,
        101,
        "token in the query"
    );
}

#[test]
fn bad_tokens_are_refused_with_401() {
    let expired = format!(r#"{{"sub":"e2e","exp":{}}}"#, now() - 3600);
    let early = format!(
        r#"{{"sub":"e2e","exp":{},"nbf":{}}}"#,
        now() + 7200,
        now() + 3600
    );
    let no_exp = r#"{"sub":"e2e"}"#.to_string();
    let cases = [
        ("no token", None),
        ("alg none", Some(token("none", &valid_claims(), ""))),
        (
            "wrong HMAC secret",
            Some(token("HS256", &valid_claims(), "not-the-secret")),
        ),
        (
            "wrong RSA key",
            Some(token("RS256", &valid_claims(), "other.pem")),
        ),
        ("expired", Some(token("HS256", &expired, SECRET))),
        ("not yet valid", Some(token("RS256", &early, "good.pem"))),
        ("missing exp", Some(token("HS512", &no_exp, SECRET))),
        ("garbage", Some("not.a.jwt".to_string())),
    ];
    for (what, t) in cases {
        let (status, body) = upgrade_status(t.as_deref(), "", None);
        assert_eq!(status, 401, "{what} accepted: {body}");
        assert!(body.contains("unauthorized"), "{what}: {body}");
    }
}

#[test]
fn ttf_with_a_token_relays_and_with_a_bad_one_exits_1() {
    let w = worker();
    let up = Upstream::start().unwrap();
    let t = token("RS256", &valid_claims(), "good.pem");
    let f = Forwarder::start(w.port, up.port, &["--token", &t]).unwrap();
    let r = http(
        w.port,
        "GET",
        &format!("/{}/echo/authed", f.id),
        &format!("127.0.0.1:{}", w.port),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(r.header("x-echo-uri"), Some("/echo/authed"));

    let mut bad = Proc::spawn(
        "ttf-bad",
        Command::new(cargo_bin("ttf"))
            .args([
                "-e",
                &format!("ws://127.0.0.1:{}/_tunnel", w.port),
                "-p",
                "9",
            ])
            .env("TTF_TOKEN", token("HS256", &valid_claims(), "wrong")),
    )
    .unwrap();
    bad.wait_for_line("refused the control socket", Duration::from_secs(30))
        .unwrap();
    let status = wait_exit(&mut bad, Duration::from_secs(10));
    assert_eq!(status.code(), Some(1));
}

/// Claims of subject `sub` allowed to hold the names in `tunnels` (JSON array).
fn name_claims(sub: &str, tunnels: &str) -> String {
    format!(
        r#"{{"sub":"{sub}","tunnels":{tunnels},"exp":{}}}"#,
        now() + 600
    )
}

#[test]
fn names_need_the_tokens_permission_and_only_the_same_subject_takes_over() {
    let w = worker();
    let up = Upstream::start().unwrap();
    let name = "authnamed001";
    let alice = token(
        "HS256",
        &name_claims("alice", &format!(r#"["{name}"]"#)),
        SECRET,
    );
    let f = Forwarder::start(w.port, up.port, &["--token", &alice, "--name", name]).unwrap();
    assert_eq!(f.id, name, "the token lists the name: granted");
    let serves = || {
        http(
            w.port,
            "GET",
            &format!("/{name}/echo/n"),
            &format!("127.0.0.1:{}", w.port),
            &[],
            b"",
        )
        .is_ok_and(|r| r.status() == 200)
    };
    assert!(serves());

    let unlisted = token("HS256", &valid_claims(), SECRET);
    let (status, body) = upgrade_status(Some(&unlisted), "", Some("othername001"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("\"tunnels\" claim"), "{body}");

    let mallory = token("HS256", &name_claims("mallory", r#"["*"]"#), SECRET);
    let (status, body) = upgrade_status(Some(&mallory), "", Some(name));
    assert_eq!(
        status, 409,
        "another subject cannot take a live name: {body}"
    );
    assert!(
        serves(),
        "the holder still serves after the refused takeover"
    );

    // The same subject may (a restart the edge has not noticed yet); the
    // displaced forwarder then wins the name back once that socket is gone.
    let (status, body) = upgrade_status(Some(&alice), "", Some(name));
    assert_eq!(status, 101, "the same subject takes over: {body}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !serves() {
        assert!(
            std::time::Instant::now() < deadline,
            "ttf did not win its name back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Issue 14, item 1: an `Authorization` header whose byte 7 falls inside a
/// multi-byte character panicked the worker (`auth[..7]`), which reset the
/// isolate and stalled every request in flight. Now it is an ordinary 401
/// and the requests in flight keep being answered.
#[test]
fn multi_byte_authorization_is_a_401_and_requests_in_flight_are_answered() {
    let w = worker();
    let up = Upstream::start().unwrap();
    let t = token("HS256", &valid_claims(), SECRET);
    let f = Forwarder::start(w.port, up.port, &["--token", &t]).unwrap();
    let host = format!("127.0.0.1:{}", w.port);
    let slow_path = format!("/{}/slow?ms=1500", f.id);
    let in_flight: Vec<_> = (0..4)
        .map(|_| {
            let (port, path, host) = (w.port, slow_path.clone(), host.clone());
            std::thread::spawn(move || http(port, "GET", &path, &host, &[], b""))
        })
        .collect();
    // Wait until the local service has seen them: they are in flight.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while up
        .received
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.start.contains("/slow"))
        .count()
        < 4
    {
        assert!(
            std::time::Instant::now() < deadline,
            "requests never arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for header in [
        "abcdef\u{e9}xyz",
        "\u{e9}\u{e9}\u{e9}\u{e9}",
        "Bearer\u{e9}x",
    ] {
        let r = http(
            w.port,
            "GET",
            "/_tunnel",
            &host,
            &[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Version", "13"),
                ("Authorization", header),
            ],
            b"",
        )
        .unwrap();
        assert_eq!(r.status(), 401, "{header:?}: {}", r.text());
    }
    for t in in_flight {
        let r = t.join().unwrap().unwrap();
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(r.text(), "slow done");
    }
    let r = http(
        w.port,
        "GET",
        &format!("/{}/echo/after", f.id),
        &host,
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(r.status(), 200);
}

/// Issue 14, item 3 with auth on: a token allowed any name (`"*"`) cannot
/// take a name whose holder dropped during the resume grace; the holder's
/// subject can.
#[test]
fn a_dropped_holders_name_goes_only_to_the_same_subject() {
    let w = worker();
    let up = Upstream::start().unwrap();
    let name = "authgrace001";
    let alice = token(
        "HS256",
        &name_claims("alice", &format!(r#"["{name}"]"#)),
        SECRET,
    );
    let mut f = Forwarder::start(w.port, up.port, &["--token", &alice, "--name", name]).unwrap();
    assert_eq!(f.id, name);
    f.proc.kill();
    let mallory = format!(
        "Bearer {}",
        token("HS256", &name_claims("mallory", r#"["*"]"#), SECRET)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let headers = [("authorization", mallory.as_str()), ("x-tunnel-name", name)];
        match ScriptedForwarder::connect(w.port, &headers, Some(2)) {
            Ok(s) => panic!("{name} was taken over: {}", s.established),
            Err((409, reason)) if reason.contains("disconnected") => break,
            Err((409, reason)) => {
                assert!(std::time::Instant::now() < deadline, "{reason}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err((status, reason)) => panic!("{status}: {reason}"),
        }
    }
    let (status, body) = upgrade_status(Some(&alice), "", Some(name));
    assert_eq!(status, 101, "the same subject gets its name back: {body}");
}
