//! Harness for the tunnel's end-to-end tests: a real local HTTP service
//! (`Upstream`, std threads, HTTP/1.1 with keep-alive) that records what it
//! received, a small HTTP/1.1 client that can set any `Host` header
//! (subdomain routing via `<id>.localhost`), a shared `wrangler dev`
//! instance per test binary, and a `ttf` forwarder launcher.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::{cargo_bin, Proc, Wrangler};

/// One HTTP message head + body as parsed by this harness.
#[derive(Debug, Clone, Default)]
pub struct HttpMessage {
    /// Request line (`GET /x HTTP/1.1`) or status line.
    pub start: String,
    /// Headers in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body bytes (de-chunked).
    pub body: Vec<u8>,
}

impl HttpMessage {
    /// First value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Status code of a response.
    pub fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Read one HTTP/1.1 message from `r`. `None` at a clean end of stream.
/// `has_body` is false for answers to HEAD and bodiless statuses.
fn read_message(
    r: &mut impl BufRead,
    has_body: impl Fn(&str) -> bool,
) -> anyhow::Result<Option<HttpMessage>> {
    let mut start = String::new();
    if r.read_line(&mut start)? == 0 {
        return Ok(None);
    }
    let mut msg = HttpMessage {
        start: start.trim_end().to_string(),
        ..Default::default()
    };
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (n, v) = line.split_once(':').context("malformed header line")?;
        msg.headers
            .push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    if !has_body(&msg.start) {
        return Ok(Some(msg));
    }
    if msg
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .context("bad chunk size")?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            msg.body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = msg.header("content-length") {
        let mut body = vec![0; len.parse().context("bad content-length")?];
        r.read_exact(&mut body)?;
        msg.body = body;
    } else if !msg.start.starts_with("HTTP/") {
        // A request without length has no body.
    } else {
        r.read_to_end(&mut msg.body)?;
    }
    Ok(Some(msg))
}

/// Send one request to `127.0.0.1:port` with `Host: host` and return the
/// response (for `101 Switching Protocols`, just the head). `Connection:
/// close` unless `headers` set `Connection`; a body gets a `Content-Length`.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<HttpMessage> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(90)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("connection"))
    {
        head.push_str("Connection: close\r\n");
    }
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let head_request = method == "HEAD";
    let mut reader = BufReader::new(stream);
    read_message(&mut reader, |start| {
        let status: u16 = start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        !head_request && !matches!(status, 101 | 204 | 304)
    })?
    .with_context(|| format!("no response to {method} {path}"))
}

/// The page used for the path-rewrite test.
pub const PAGE_HTML: &str = r#"<!doctype html><html><head><link rel="stylesheet" href="/style.css"><script src="/app.js"></script></head><body><a href="/docs">docs</a><div id="out"></div></body></html>"#;
/// Stylesheet of the test page.
pub const PAGE_CSS: &str = "body { background: url(/bg.png) }";
/// Script of the test page.
pub const PAGE_JS: &str = "fetch('/api').then(r => r.json()).then(j => { document.getElementById('out').textContent = j.ok; });";

/// A local HTTP/1.1 service for the forwarder to reach.
pub struct Upstream {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Every request received, in arrival order.
    pub received: Arc<Mutex<Vec<HttpMessage>>>,
}

impl Upstream {
    /// Start the service on a free port (threads end with the test process).
    pub fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || {
                    let _ = serve_connection(conn, &log);
                });
            }
        });
        Ok(Self { port, received })
    }

    /// The last request received whose start line contains `needle`.
    pub fn last(&self, needle: &str) -> Option<HttpMessage> {
        self.received
            .lock()
            .ok()?
            .iter()
            .rev()
            .find(|m| m.start.contains(needle))
            .cloned()
    }
}

fn serve_connection(conn: TcpStream, log: &Mutex<Vec<HttpMessage>>) -> anyhow::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    while let Some(req) = read_message(&mut reader, |_| true)? {
        if let Ok(mut l) = log.lock() {
            l.push(req.clone());
        }
        let close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let (status, headers, body) = respond(&req);
        let mut head = format!("HTTP/1.1 {status} X\r\n");
        for (n, v) in &headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if !matches!(status, 204 | 304) {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        writer.write_all(head.as_bytes())?;
        if !req.start.starts_with("HEAD ") {
            writer.write_all(&body)?;
        }
        if close {
            break;
        }
    }
    Ok(())
}

fn query(target: &str) -> HashMap<String, String> {
    target
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn respond(req: &HttpMessage) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut parts = req.start.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let path = target.split('?').next().unwrap_or("/").to_string();
    let h = |n: &str, v: &str| (n.to_string(), v.to_string());
    let typed = |ct: &str, body: &str| (200, vec![h("Content-Type", ct)], body.as_bytes().to_vec());
    match path.as_str() {
        p if p.starts_with("/echo") => (
            200,
            vec![
                h("Content-Type", "application/octet-stream"),
                h("X-Echo-Method", &method),
                h("X-Echo-Uri", &target),
            ],
            req.body.clone(),
        ),
        "/headers" => {
            let text: String = req
                .headers
                .iter()
                .map(|(n, v)| format!("{n}: {v}\n"))
                .collect();
            typed("text/plain", &text)
        }
        "/cookies" => (
            200,
            vec![
                h("Set-Cookie", "a=1; Path=/"),
                h("Set-Cookie", "b=2; Path=/"),
                h("X-Multi", "one"),
                h("X-Multi", "two"),
                h("Keep-Alive", "timeout=5"),
                h("Proxy-Authenticate", "Basic"),
            ],
            b"cookies".to_vec(),
        ),
        "/slow" => {
            let ms = query(&target)
                .get("ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000);
            std::thread::sleep(Duration::from_millis(ms));
            typed("text/plain", "slow done")
        }
        p if p.starts_with("/status/") => {
            let status = p[8..].parse().unwrap_or(500);
            (
                status,
                vec![],
                if status == 204 {
                    vec![]
                } else {
                    format!("status {status}").into_bytes()
                },
            )
        }
        "/redirect" => (302, vec![h("Location", "/echo/target")], vec![]),
        "/page" => typed("text/html; charset=utf-8", PAGE_HTML),
        "/style.css" => typed("text/css", PAGE_CSS),
        "/app.js" => typed("application/javascript", PAGE_JS),
        "/api" => typed("application/json", r#"{"ok":"api reached"}"#),
        _ => (
            404,
            vec![h("Content-Type", "text/plain")],
            b"no such path".to_vec(),
        ),
    }
}

/// A `ttf` forwarder process and its tunnel.
pub struct Forwarder {
    /// The process.
    pub proc: Proc,
    /// Tunnel id from `connection_established`.
    pub id: String,
}

impl Forwarder {
    /// Start `ttf` against `worker`, forwarding to `port`, and wait for the
    /// tunnel. `extra` adds flags.
    pub fn start(worker_port: u16, port: u16, extra: &[&str]) -> anyhow::Result<Self> {
        let endpoint = format!("ws://127.0.0.1:{worker_port}/_tunnel");
        let mut proc = Proc::spawn(
            "ttf",
            Command::new(cargo_bin("ttf"))
                .args(["--endpoint", &endpoint, "--port", &port.to_string()])
                .args(extra)
                .env("TTF_STATE_DIR", ttf_state_dir()),
        )?;
        let line = proc.wait_for_line("established", Duration::from_secs(60))?;
        let id = line
            .split_whitespace()
            .nth(1)
            .context("tunnel id in the established line")?
            .to_string();
        if id.len() != 12 {
            bail!("unexpected established line: {line}");
        }
        Ok(Self { proc, id })
    }

    /// Send SIGINT (Ctrl-C) to the forwarder.
    pub fn interrupt(&self) {
        // SAFETY: plain kill(2) on the child we spawned.
        unsafe { libc::kill(self.proc.pid() as i32, libc::SIGINT) };
    }
}

/// `TTF_STATE_DIR` of the forwarders this test binary starts (resume
/// tokens of named tunnels), shared so a restarted `ttf --name` finds its
/// token (a temp dir; statics are not dropped, so it stays after the run).
pub fn ttf_state_dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temp dir"))
        .path()
}

/// Wait until `proc` exits (panics after `timeout`); its exit status.
pub fn wait_exit(proc: &mut Proc, timeout: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = proc.try_wait() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process still running after {timeout:?}:\n{}",
            proc.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Process groups of shared workers, killed when the test binary exits.
static SHARED_GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

extern "C" fn kill_shared_groups() {
    if let Ok(groups) = SHARED_GROUPS.lock() {
        for pgid in groups.iter() {
            // SAFETY: kill(2) on a process group this binary created.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}

/// A `wrangler dev` shared by the tests of one binary.
pub struct SharedWorker {
    /// Its port.
    pub port: u16,
    /// The instance (locked to read its output).
    pub wrangler: Mutex<Wrangler>,
}

/// Start (once per test binary) a worker with `vars`; it is killed when
/// the test binary exits.
pub fn shared_worker(
    cell: &'static OnceLock<SharedWorker>,
    vars: &[(&str, &str)],
) -> &'static SharedWorker {
    cell.get_or_init(|| {
        let wrangler = Wrangler::start(vars).expect("wrangler dev starts");
        if let Ok(mut groups) = SHARED_GROUPS.lock() {
            if groups.is_empty() {
                // SAFETY: registering a plain extern "C" fn without captures.
                unsafe { libc::atexit(kill_shared_groups) };
            }
            groups.push(wrangler.proc.pid() as i32);
        }
        SharedWorker {
            port: wrangler.port,
            wrangler: Mutex::new(wrangler),
        }
    })
}

/// Deterministic pseudo-random bytes (xorshift), for body round-trips.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Python's `http.server` as the local service
/// (`tests/fixtures/py_http_server.py`): reads exactly `Content-Length`
/// bytes of a request body, never a chunked one.
pub struct PyUpstream {
    /// The process.
    pub proc: Proc,
    /// Port on 127.0.0.1.
    pub port: u16,
}

impl PyUpstream {
    /// Start it on a port the OS picks.
    pub fn start() -> anyhow::Result<Self> {
        let script = crate::repo_root().join("tests/fixtures/py_http_server.py");
        let mut proc = Proc::spawn("py-http", Command::new("python3").arg(script))?;
        let line = proc.wait_for_line("listening", Duration::from_secs(20))?;
        let port = line
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .context("port in the listening line")?;
        Ok(Self { proc, port })
    }
}

/// A forwarder scripted by the test (raw WebSocket, v1 or v2 `ready`): it
/// sends whatever answers the test chooses, malformed ones included.
pub struct ScriptedForwarder {
    /// The control socket.
    pub ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    /// Tunnel id from `connection_established`.
    pub id: String,
    /// The `connection_established` frame.
    pub established: String,
}

impl ScriptedForwarder {
    /// Open a control socket with `headers` and send `ready` (`version`:
    /// `None` for v1); `Err` carries the refusal status and body.
    pub fn connect(
        worker_port: u16,
        headers: &[(&str, &str)],
        version: Option<u32>,
    ) -> Result<Self, (u16, String)> {
        use tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://127.0.0.1:{worker_port}/_tunnel")
            .into_client_request()
            .map_err(|e| (0, e.to_string()))?;
        for (n, v) in headers {
            let name = tungstenite::http::HeaderName::from_bytes(n.as_bytes())
                .map_err(|e| (0, e.to_string()))?;
            let value =
                tungstenite::http::HeaderValue::from_str(v).map_err(|e| (0, e.to_string()))?;
            request.headers_mut().insert(name, value);
        }
        let (mut ws, _) = tungstenite::connect(request).map_err(|e| match e {
            tungstenite::Error::Http(resp) => (
                resp.status().as_u16(),
                String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned(),
            ),
            other => (0, other.to_string()),
        })?;
        let ready = match version {
            Some(v) => format!(r#"{{"type":"ready","version":{v}}}"#),
            None => r#"{"type":"ready"}"#.to_string(),
        };
        ws.send(tungstenite::Message::text(ready))
            .map_err(|e| (0, e.to_string()))?;
        loop {
            let text = match ws.read().map_err(|e| (0, e.to_string()))? {
                tungstenite::Message::Text(t) => t.to_string(),
                _ => continue,
            };
            if text.contains("connection_established") {
                let id = json_str(&text, "tunnel_id").ok_or((0, text.clone()))?;
                return Ok(Self {
                    ws,
                    id,
                    established: text,
                });
            }
        }
    }

    /// The next text frame whose `type` is `kind`.
    pub fn next_of(&mut self, kind: &str) -> anyhow::Result<String> {
        let needle = format!(r#""type":"{kind}""#);
        loop {
            if let tungstenite::Message::Text(t) = self.ws.read()? {
                if t.contains(&needle) {
                    return Ok(t.to_string());
                }
            }
        }
    }

    /// Send one text frame.
    pub fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.ws.send(tungstenite::Message::text(text))?;
        Ok(())
    }
}

/// The string value of `"key":"..."` in a flat JSON text (no escapes).
pub fn json_str(text: &str, key: &str) -> Option<String> {
    let start = text.find(&format!(r#""{key}":""#))? + key.len() + 4;
    let rest = text.get(start..)?;
    Some(rest.get(..rest.find('"')?)?.to_string())
}
