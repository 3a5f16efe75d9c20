//! End-to-end tests of the HTTP tunnel: `wrangler dev` (workerd) running the
//! edge worker, the real `ttf` forwarder, and a real local HTTP service.
//! One worker is shared by all tests of this binary.

use std::sync::OnceLock;
use std::time::Duration;

use e2e::free_port;
use e2e::tunnel::{
    http, json_str, random_bytes, shared_worker, wait_exit, Forwarder, HttpMessage, PyUpstream,
    ScriptedForwarder, SharedWorker, Upstream, PAGE_CSS,
};

static WORKER: OnceLock<SharedWorker> = OnceLock::new();

/// Request timeout of the shared worker (short, for the 504 test).
const TIMEOUT_MS: u64 = 4000;

fn worker() -> &'static SharedWorker {
    shared_worker(&WORKER, &[("REQUEST_TIMEOUT_MS", "4000")])
}

/// A fresh local service and forwarder on the shared worker.
fn tunnel(extra: &[&str]) -> (&'static SharedWorker, Upstream, Forwarder) {
    let w = worker();
    let up = Upstream::start().unwrap();
    let f = Forwarder::start(w.port, up.port, extra).unwrap();
    (w, up, f)
}

/// `method path` with `body` on tunnel `id` by the path form.
fn send(w: &SharedWorker, method: &str, id: &str, path: &str, body: &[u8]) -> HttpMessage {
    http(
        w.port,
        method,
        &format!("/{id}{path}"),
        &path_host(w),
        &[],
        body,
    )
    .unwrap()
}

/// GET `path` on tunnel `id` by the path form.
fn get(w: &SharedWorker, id: &str, path: &str) -> HttpMessage {
    send(w, "GET", id, path, b"")
}

fn path_host(w: &SharedWorker) -> String {
    format!("127.0.0.1:{}", w.port)
}

fn sub_host(w: &SharedWorker, id: &str) -> String {
    format!("{id}.localhost:{}", w.port)
}

#[test]
fn forwarder_prints_both_public_urls() {
    let w = worker();
    let up = Upstream::start().unwrap();
    let mut f = Forwarder::start(w.port, up.port, &[]).unwrap();
    let path_url = format!("http://127.0.0.1:{}/{}", w.port, f.id);
    let sub_url = format!("http://{}.localhost:{}", f.id, w.port);
    f.proc
        .wait_for_line(&path_url, Duration::from_secs(10))
        .unwrap();
    f.proc
        .wait_for_line(&sub_url, Duration::from_secs(10))
        .unwrap();
}

#[test]
fn all_methods_and_query_strings_both_forms() {
    let (w, up, f) = tunnel(&[]);
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"] {
        let body: &[u8] = if matches!(method, "POST" | "PUT" | "PATCH") {
            b"payload"
        } else {
            b""
        };
        let r = http(
            w.port,
            method,
            &format!("/{}/echo/a?x=1&y=%20z", f.id),
            &path_host(w),
            &[],
            body,
        )
        .unwrap();
        assert_eq!(r.status(), 200, "{method} path form: {}", r.text());
        assert_eq!(r.header("x-echo-method"), Some(method));
        assert_eq!(r.header("x-echo-uri"), Some("/echo/a?x=1&y=%20z"));
        if method != "HEAD" {
            assert_eq!(r.body, body, "{method} body");
        }
        let r = http(
            w.port,
            method,
            "/echo/b?q=2",
            &sub_host(w, &f.id),
            &[],
            body,
        )
        .unwrap();
        assert_eq!(r.status(), 200, "{method} subdomain form: {}", r.text());
        assert_eq!(r.header("x-echo-uri"), Some("/echo/b?q=2"));
    }
    let got = up.last("PATCH /echo/b").unwrap();
    assert_eq!(got.body, b"payload");
}

#[test]
fn binary_body_of_one_mib_round_trips_byte_exact() {
    let (w, up, f) = tunnel(&[]);
    let body = random_bytes(1024 * 1024, 0xfeed);
    let r = http(
        w.port,
        "POST",
        &format!("/{}/echo/bin", f.id),
        &path_host(w),
        &[("Content-Type", "application/octet-stream")],
        &body,
    )
    .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(up.last("POST /echo/bin").unwrap().body.len(), body.len());
    assert!(
        up.last("POST /echo/bin").unwrap().body == body,
        "local service got the exact bytes"
    );
    assert!(r.body == body, "caller got the exact bytes back");
}

#[test]
fn headers_multi_values_hop_by_hop_and_forwarded() {
    let (w, up, f) = tunnel(&[]);
    let r = http(w.port, "GET", "/cookies", &sub_host(w, &f.id), &[], b"").unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.all("set-cookie"), vec!["a=1; Path=/", "b=2; Path=/"]);
    // Plain multi-value headers may be folded into one line on the way.
    assert_eq!(r.all("x-multi").join(", "), "one, two", "{:?}", r.headers);
    assert_eq!(
        r.header("keep-alive"),
        None,
        "hop-by-hop header relayed: {:?}",
        r.headers
    );
    assert_eq!(r.header("proxy-authenticate"), None);

    let r = http(
        w.port,
        "GET",
        &format!("/{}/headers", f.id),
        &path_host(w),
        &[
            ("Accept", "text/a"),
            ("Accept", "text/b"),
            ("Upgrade", "h2c"),
            ("TE", "trailers"),
            ("Keep-Alive", "timeout=1"),
            ("Proxy-Authorization", "Basic x"),
            ("X-Custom", "kept"),
        ],
        b"",
    )
    .unwrap();
    assert_eq!(r.status(), 200);
    let got = up.last("GET /headers").unwrap();
    assert_eq!(got.header("x-custom"), Some("kept"));
    assert!(
        got.all("accept").join(",").contains("text/a")
            && got.all("accept").join(",").contains("text/b")
    );
    // (workerd consumes `Connection` itself; names it lists are dropped by
    // the edge too, see tunnel-proto's header unit tests.)
    for hop in ["keep-alive", "proxy-authorization", "upgrade", "te"] {
        assert_eq!(got.header(hop), None, "{hop} reached the local service");
    }
    assert_eq!(
        got.header("host"),
        Some(format!("127.0.0.1:{}", up.port).as_str())
    );
    assert_eq!(got.header("x-forwarded-proto"), Some("http"));
    assert_eq!(got.header("x-forwarded-host"), Some(path_host(w).as_str()));
}

#[test]
fn path_form_rewrites_the_page_so_assets_and_fetch_resolve() {
    let (w, _up, f) = tunnel(&[]);
    let prefix = format!("/{}", f.id);
    let page = get(w, &f.id, "/page");
    assert_eq!(page.status(), 200);
    let html = page.text();
    let css_href = format!("href=\"{prefix}/style.css\"");
    let js_src = format!("src=\"{prefix}/app.js\"");
    assert!(html.contains(&css_href) && html.contains(&js_src), "{html}");
    // Every rewritten URL resolves through the tunnel.
    let css = get(w, &f.id, "/style.css");
    assert_eq!(
        css.text(),
        PAGE_CSS.replace("url(/", &format!("url({prefix}/"))
    );
    let js = get(w, &f.id, "/app.js");
    assert!(
        js.text().contains(&format!("fetch('{prefix}/api')")),
        "{}",
        js.text()
    );
    let api = get(w, &f.id, "/api");
    assert_eq!(api.text(), r#"{"ok":"api reached"}"#);
    // Redirects stay under the prefix; the subdomain form is not rewritten.
    let r = get(w, &f.id, "/redirect");
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.header("location"),
        Some(format!("{prefix}/echo/target").as_str())
    );
    let sub = http(w.port, "GET", "/page", &sub_host(w, &f.id), &[], b"").unwrap();
    assert!(sub.text().contains("href=\"/style.css\""));
}

#[test]
fn hundred_concurrent_requests_each_get_their_own_answer() {
    let (w, _up, f) = tunnel(&[]);
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let id = f.id.clone();
            let port = w.port;
            std::thread::spawn(move || {
                let body = format!("request number {i}").repeat(i + 1);
                let r = http(
                    port,
                    "POST",
                    &format!("/{id}/echo?i={i}"),
                    &format!("127.0.0.1:{port}"),
                    &[],
                    body.as_bytes(),
                )
                .unwrap();
                assert_eq!(r.status(), 200, "request {i}: {}", r.text());
                assert_eq!(
                    r.header("x-echo-uri"),
                    Some(format!("/echo?i={i}").as_str())
                );
                assert_eq!(r.text(), body, "request {i} got someone else's answer");
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// `ttf` holds the answers of requests that reached it together until the
/// last of them is answered (forwarder/src/burst.rs), but never longer than
/// its linger: a slow request sent at the same moment as fast ones must
/// not hold their answers back, nor the answers of requests after it.
#[test]
fn a_slow_request_sent_with_fast_ones_does_not_hold_their_answers() {
    let (w, _up, f) = tunnel(&[]);
    let start = std::sync::Arc::new(std::sync::Barrier::new(33));
    let call = |path: String| {
        let (id, start) = (f.id.clone(), start.clone());
        std::thread::spawn(move || {
            start.wait();
            get(w, &id, &path)
        })
    };
    let slow = call("/slow?ms=20000".to_string());
    let fast: Vec<_> = (0..32).map(|i| call(format!("/echo?i={i}"))).collect();
    for (i, h) in fast.into_iter().enumerate() {
        let r = h.join().unwrap();
        assert_eq!(r.status(), 200, "request {i}: {}", r.text());
        assert_eq!(
            r.header("x-echo-uri"),
            Some(format!("/echo?i={i}").as_str())
        );
    }
    assert!(
        !slow.is_finished(),
        "the fast requests were answered only after the slow one"
    );
    // Later requests are not held for the slow one either.
    for i in 0..3 {
        let r = get(w, &f.id, &format!("/echo/after/{i}"));
        assert_eq!(r.status(), 200, "{}", r.text());
    }
    assert!(!slow.is_finished());
}

#[test]
fn edge_outcomes_404_413_504_and_local_errors() {
    let (w, _up, mut f) = tunnel(&[]);
    // Unknown tunnel ids, both forms; malformed ids.
    for (path, host) in [
        ("/zzzzzzzzzzzz/x".to_string(), path_host(w)),
        ("/x".to_string(), sub_host(w, "zzzzzzzzzzzz")),
        ("/nope".to_string(), path_host(w)),
        // The benchmark's DO floor exists only with BENCH_FLOOR=true.
        ("/_floor".to_string(), path_host(w)),
    ] {
        let r = http(w.port, "GET", &path, &host, &[], b"").unwrap();
        assert_eq!(r.status(), 404, "{path} on {host}: {}", r.text());
    }
    // Over the 2 MiB default limit.
    let big = vec![7u8; 2 * 1024 * 1024 + 1];
    let r = send(w, "POST", &f.id, "/echo", &big);
    assert_eq!(r.status(), 413, "{}", r.text());
    // Local service slower than the edge's timeout.
    let r = get(w, &f.id, &format!("/slow?ms={}", TIMEOUT_MS + 3000));
    assert_eq!(r.status(), 504, "{}", r.text());
    // The tunnel still serves after the timed-out request; its late answer
    // (sent right after ttf prints its line) is dropped.
    f.proc
        .wait_for_line("/slow?ms=", Duration::from_secs(30))
        .unwrap();
    let r = get(w, &f.id, "/echo/after");
    assert_eq!(r.header("x-echo-uri"), Some("/echo/after"));
    // Local statuses are relayed as they are.
    let r = get(w, &f.id, "/status/418");
    assert_eq!(r.status(), 418);
    let r = send(w, "DELETE", &f.id, "/status/204", b"");
    assert_eq!(r.status(), 204);
}

#[test]
fn local_service_down_is_503_and_local_timeout_is_504() {
    let w = worker();
    let mut f = Forwarder::start(w.port, free_port(), &[]).unwrap();
    let r = get(w, &f.id, "/x");
    assert_eq!(r.status(), 503, "{}", r.text());
    assert!(
        r.text().contains("local_service_unavailable"),
        "{}",
        r.text()
    );
    f.proc
        .wait_for_line("GET     /x -> 503", Duration::from_secs(10))
        .unwrap();

    let up = Upstream::start().unwrap();
    let f = Forwarder::start(w.port, up.port, &["--request-timeout", "1"]).unwrap();
    let r = get(w, &f.id, "/slow?ms=2500");
    assert_eq!(r.status(), 504, "{}", r.text());
    assert!(r.text().contains("timeout"), "{}", r.text());
}

#[test]
fn console_shows_one_line_per_request() {
    let (w, _up, mut f) = tunnel(&[]);
    send(w, "PUT", &f.id, "/echo/console?z=1", b"x");
    let line = f
        .proc
        .wait_for_line("/echo/console?z=1", Duration::from_secs(10))
        .unwrap();
    assert!(
        line.contains("PUT") && line.contains("-> 200") && line.contains(" ms)"),
        "{line}"
    );
}

#[test]
fn killed_forwarder_gives_502_and_a_restarted_one_serves_again() {
    let (w, up, mut f) = tunnel(&[]);
    let id = f.id.clone();
    let port = w.port;
    let pending = std::thread::spawn(move || {
        http(
            port,
            "GET",
            &format!("/{id}/slow?ms=20000"),
            &format!("127.0.0.1:{port}"),
            &[],
            b"",
        )
        .unwrap()
    });
    // Once the request reached the local service through the forwarder, kill it mid-request.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while up.last("GET /slow").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "request never reached the local service"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    f.proc.kill();
    let r = pending.join().unwrap();
    assert_eq!(r.status(), 502, "{}", r.text());
    // The tunnel is known but its forwarder is gone.
    let r = get(w, &f.id, "/echo");
    assert_eq!(r.status(), 502, "{}", r.text());
    // A restarted forwarder serves again (on a new tunnel id, as in v1).
    let (w, _up2, f2) = tunnel(&[]);
    let r = get(w, &f2.id, "/echo/again");
    assert_eq!(r.header("x-echo-uri"), Some("/echo/again"));
}

#[test]
fn ctrl_c_closes_the_tunnel_cleanly() {
    let (w, _up, mut f) = tunnel(&[]);
    f.interrupt();
    f.proc
        .wait_for_line("Tunnel closed", Duration::from_secs(10))
        .unwrap();
    let status = wait_exit(&mut f.proc, Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
    let r = get(w, &f.id, "/echo");
    assert_eq!(r.status(), 502, "{}", r.text());
}

#[test]
fn unreachable_edge_is_retried_with_growing_delays() {
    let endpoint = format!("ws://127.0.0.1:{}/_tunnel", free_port());
    let mut f = e2e::Proc::spawn(
        "ttf-retry",
        std::process::Command::new(e2e::cargo_bin("ttf")).args(["-e", &endpoint, "-p", "9"]),
    )
    .unwrap();
    let delay = |line: &str| -> f64 {
        line.rsplit("retrying in ")
            .next()
            .and_then(|s| s.trim_end_matches(" s").parse().ok())
            .unwrap_or_else(|| panic!("no delay in {line:?}"))
    };
    let first = delay(
        &f.wait_for_line("retrying in", Duration::from_secs(20))
            .unwrap(),
    );
    let second = delay(
        &f.wait_for_line("retrying in", Duration::from_secs(20))
            .unwrap(),
    );
    assert!((0.5..=1.0).contains(&first), "first delay {first}");
    assert!((1.0..=2.0).contains(&second), "second delay {second}");
    assert!(f.try_wait().is_none(), "ttf gave up instead of retrying");
}

/// Issue 14, item 2: `ttf` dropped `Content-Length` and sent request bodies
/// chunked, so Python's `http.server` (which reads exactly `Content-Length`
/// bytes) saw an empty body while the caller got 200.
#[test]
fn request_bodies_reach_a_python_http_server_whole() {
    let w = worker();
    let py = PyUpstream::start().unwrap();
    let f = Forwarder::start(w.port, py.port, &[]).unwrap();
    for (len, seed) in [(7, 1), (300 * 1024, 2), (1024 * 1024 + 3, 3)] {
        let body = random_bytes(len, seed);
        for method in ["POST", "PUT"] {
            let r = send(w, method, &f.id, "/echo", &body);
            assert_eq!(r.status(), 200, "{method} {len}: {}", r.text());
            assert_eq!(r.header("x-read-bytes"), Some(len.to_string().as_str()));
            assert_eq!(r.header("x-transfer-encoding"), Some(""), "sent chunked");
            assert!(r.body == body, "{method} {len}: body differs");
        }
    }
}

/// Issue 14, item 4: answers with a status out of range, of the wrong type,
/// or headers that are not an object were ignored, and the caller waited
/// for the request timeout (504). Now: 502 at once, and a log line.
#[test]
fn malformed_answers_are_502_at_once_with_a_log_line() {
    let w = worker();
    let mut fwd = ScriptedForwarder::connect(w.port, &[], None).unwrap();
    let host = path_host(w);
    for answer in [
        r#""status_code":70000"#,
        r#""status_code":-1"#,
        r#""status_code":"200""#,
        r#""status_code":200,"headers":"text/plain""#,
        r#""status_code":200,"headers":null"#,
    ] {
        let path = format!("/{}/malformed", fwd.id);
        let port = w.port;
        let host = host.clone();
        let start = std::time::Instant::now();
        let caller = std::thread::spawn(move || http(port, "GET", &path, &host, &[], b"").unwrap());
        let request = fwd.next_of("http_request").unwrap();
        let id = json_str(&request, "request_id").unwrap();
        fwd.send_text(&format!(
            r#"{{"type":"http_response","request_id":"{id}",{answer},"body":""}}"#
        ))
        .unwrap();
        let r = caller.join().unwrap();
        assert_eq!(r.status(), 502, "{answer}: {}", r.text());
        assert!(r.text().contains("malformed"), "{answer}: {}", r.text());
        assert!(
            start.elapsed() < Duration::from_millis(TIMEOUT_MS / 2),
            "{answer}: answered after {:?}",
            start.elapsed()
        );
    }
    w.wrangler
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .proc
        .saw_or_wait_for_line("malformed answer for", Duration::from_secs(10))
        .unwrap();
}

/// Issue 14, item 3: after a forwarder's socket dropped, anyone asking for
/// its id with `x-tunnel-name` was granted it during the resume grace (and
/// the owner's resume then got 403). Now the name waits for its holder:
/// 409 for others, and the restarted `ttf --name` proves itself with the
/// resume token it kept in its state file.
#[test]
fn a_dropped_holders_name_is_refused_to_others_and_returned_to_its_restart() {
    let w = worker();
    let up = Upstream::start().unwrap();
    let name = "graceheld001";
    let mut first = Forwarder::start(w.port, up.port, &["--name", name]).unwrap();
    assert_eq!(first.id, name);
    first.proc.kill();
    // Until the edge sees the drop the refusal says "connected"; after, it
    // names the grace. Either way the name is never granted.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match ScriptedForwarder::connect(w.port, &[("x-tunnel-name", name)], Some(2)) {
            Ok(f) => panic!("{name} was taken over: {}", f.established),
            Err((409, reason)) if reason.contains("disconnected") => break,
            Err((409, reason)) => {
                assert!(std::time::Instant::now() < deadline, "{reason}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err((status, reason)) => panic!("{status}: {reason}"),
        }
    }
    let second = Forwarder::start(w.port, up.port, &["--name", name]).unwrap();
    assert_eq!(second.id, name, "the restarted holder gets its name back");
    assert_eq!(get(w, name, "/echo/back").status(), 200);
}

/// Wait until the edge has seen the holder of `name` drop: a name request
/// is then refused with the grace reason (never granted).
fn wait_until_released(w: &SharedWorker, name: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        match ScriptedForwarder::connect(w.port, &[("x-tunnel-name", name)], Some(2)) {
            Ok(f) => panic!("{name} was taken over: {}", f.established),
            Err((409, reason)) if reason.contains("disconnected") => return,
            Err((409, reason)) => {
                assert!(std::time::Instant::now() < deadline, "{reason}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err((status, reason)) => panic!("{status}: {reason}"),
        }
    }
}

/// Issue 14: requests that arrive while the forwarder reconnects are held
/// (up to `HOLD_MS`) and served by the restarted `ttf --name`, not 502.
#[test]
fn requests_during_a_restart_are_held_and_served() {
    let w = worker();
    let up = Upstream::start().unwrap();
    let name = "holdrestart1";
    let mut first = Forwarder::start(w.port, up.port, &["--name", name]).unwrap();
    first.proc.kill();
    wait_until_released(w, name);
    let (port, host) = (w.port, path_host(w));
    let caller = std::thread::spawn(move || {
        http(port, "GET", &format!("/{name}/echo/held"), &host, &[], b"").unwrap()
    });
    w.wrangler
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .proc
        .saw_or_wait_for_line("request GET /echo/held held", Duration::from_secs(20))
        .unwrap();
    let second = Forwarder::start(w.port, up.port, &["--name", name]).unwrap();
    assert_eq!(second.id, name);
    let r = caller.join().unwrap();
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.header("x-echo-uri"), Some("/echo/held"));
}

/// Issue 14, item 5: a stopped (SIGSTOP, not killed) `ttf` keeps its
/// socket open. The edge now notices the missing pings within ~12 s and
/// lets go (502 instead of 504 after 504), and the restarted `ttf --name`
/// gets its name back at once (its resume token), answering requests.
#[test]
fn a_hung_holder_is_noticed_and_replaced() {
    let w = worker();
    let up = Upstream::start().unwrap();
    let name = "hungholder01";
    let first = Forwarder::start(w.port, up.port, &["--name", name]).unwrap();
    assert_eq!(get(w, name, "/echo/before").status(), 200);
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(first.proc.pid() as i32, libc::SIGSTOP) };
    let start = std::time::Instant::now();
    let mut second =
        Forwarder::start(w.port, up.port, &["--name", name, "--ping-interval", "5"]).unwrap();
    assert_eq!(second.id, name, "the restarted holder proves itself");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "replacing the hung holder took {:?}",
        start.elapsed()
    );
    assert_eq!(get(w, name, "/echo/after").status(), 200);
    second.proc.kill();
    // SAFETY: as above.
    unsafe { libc::kill(first.proc.pid() as i32, libc::SIGCONT) };
}

/// Issue 14, item 5: with no replacement, a silent holder is let go within
/// ~12 s of its last ping: requests then get 502 (after the hold), not 504
/// for as long as the stopped process keeps its socket.
#[test]
fn a_silent_holder_is_closed_after_two_missed_pings() {
    let w = worker();
    let up = Upstream::start().unwrap();
    let f = Forwarder::start(w.port, up.port, &[]).unwrap();
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(f.proc.pid() as i32, libc::SIGSTOP) };
    let start = std::time::Instant::now();
    loop {
        let r = get(w, &f.id, "/echo/silent");
        if r.status() == 502 {
            break;
        }
        assert_eq!(r.status(), 504, "{}", r.text());
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "still 504 after {:?}",
            start.elapsed()
        );
    }
    w.wrangler
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .proc
        .saw_or_wait_for_line("silent for", Duration::from_secs(5))
        .unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(f.proc.pid() as i32, libc::SIGCONT) };
}
