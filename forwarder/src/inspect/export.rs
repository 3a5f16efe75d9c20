//! Exports of inspected requests: a `curl` command line that repeats one
//! against the local service, and the HAR 1.2 log of every HTTP entry
//! (what browsers' developer tools import).

use serde_json::{json, Value};
use tunnel_proto::Headers;

use super::store::{Entry, Exchange, Kind};

/// Headers a repeated request must not copy (curl and the local
/// connection set them).
fn skipped(name: &str) -> bool {
    matches!(name, "host" | "content-length") || name.starts_with("x-forwarded-")
}

/// `s` quoted for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A `curl` command that sends `x` to `base` (e.g. `http://127.0.0.1:3000`).
/// A binary body goes through `base64 -d` (a shell word cannot hold NUL).
pub fn curl(x: &Exchange, base: &str) -> String {
    let mut cmd = format!(
        "curl -X {} {}",
        shell_quote(&x.method),
        shell_quote(&format!("{base}{}", x.uri))
    );
    for (name, values) in &x.request_headers {
        if skipped(name) {
            continue;
        }
        for v in values {
            cmd.push_str(&format!(" -H {}", shell_quote(&format!("{name}: {v}"))));
        }
    }
    let body = &x.request_body.bytes;
    if body.is_empty() {
        return cmd;
    }
    match std::str::from_utf8(body) {
        Ok(text) if !text.contains('\0') => {
            cmd.push_str(&format!(" --data-binary {}", shell_quote(text)));
            cmd
        }
        _ => format!(
            "echo {} | base64 -d | {cmd} --data-binary @-",
            tunnel_proto::v1::encode_body(body)
        ),
    }
}

fn har_headers(headers: &Headers) -> Vec<Value> {
    headers
        .iter()
        .flat_map(|(n, vs)| vs.iter().map(move |v| json!({"name": n, "value": v})))
        .collect()
}

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.get(name)?.first().map(String::as_str)
}

/// `text` (UTF-8) or base64 `text` with `encoding`, as HAR wants bodies.
fn har_text(bytes: &[u8]) -> (String, Option<&'static str>) {
    match std::str::from_utf8(bytes) {
        Ok(t) => (t.to_string(), None),
        Err(_) => (tunnel_proto::v1::encode_body(bytes), Some("base64")),
    }
}

/// RFC 3339 time of Unix milliseconds.
fn iso(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn har_entry(e: &Entry, x: &Exchange, base: &str) -> Value {
    let query: Vec<Value> = x
        .uri
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (n, v) = kv.split_once('=').unwrap_or((kv, ""));
            json!({"name": n, "value": v})
        })
        .collect();
    let mut request = json!({
        "method": x.method,
        "url": format!("{base}{}", x.uri),
        "httpVersion": "HTTP/1.1",
        "headers": har_headers(&x.request_headers),
        "queryString": query,
        "cookies": [],
        "headersSize": -1,
        "bodySize": x.request_body.total,
    });
    if x.request_body.total > 0 {
        let (text, encoding) = har_text(&x.request_body.bytes);
        let mut post = json!({
            "mimeType": header(&x.request_headers, "content-type").unwrap_or(""),
            "text": text,
        });
        if let (Some(enc), Some(obj)) = (encoding, post.as_object_mut()) {
            obj.insert("encoding".into(), enc.into());
        }
        if let Some(obj) = request.as_object_mut() {
            obj.insert("postData".into(), post);
        }
    }
    let (text, encoding) = har_text(&x.response_body.bytes);
    let mut content = json!({
        "size": x.response_body.total,
        "mimeType": header(&x.response_headers, "content-type").unwrap_or(""),
        "text": text,
    });
    if let (Some(enc), Some(obj)) = (encoding, content.as_object_mut()) {
        obj.insert("encoding".into(), enc.into());
    }
    let time = x.duration_ms.unwrap_or(0);
    json!({
        "startedDateTime": iso(e.started_ms),
        "time": time,
        "request": request,
        "response": {
            "status": x.status.unwrap_or(0),
            "statusText": x.error.clone().unwrap_or_default(),
            "httpVersion": "HTTP/1.1",
            "headers": har_headers(&x.response_headers),
            "cookies": [],
            "content": content,
            "redirectURL": header(&x.response_headers, "location").unwrap_or(""),
            "headersSize": -1,
            "bodySize": x.response_body.total,
        },
        "cache": {},
        "timings": {"send": 0, "wait": time, "receive": 0},
    })
}

/// The HAR 1.2 log of the HTTP entries (URLs under `base`).
pub fn har<'a>(entries: impl Iterator<Item = &'a Entry>, base: &str) -> Value {
    let list: Vec<Value> = entries
        .filter_map(|e| match &e.kind {
            Kind::Http(x) => Some(har_entry(e, x, base)),
            Kind::Ws(_) => None,
        })
        .collect();
    json!({
        "log": {
            "version": "1.2",
            "creator": {"name": "ttf", "version": env!("CARGO_PKG_VERSION")},
            "entries": list,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::store::Store;
    use super::*;

    fn store() -> Store {
        let mut s = Store::new(10, 1024);
        let mut h = Headers::new();
        h.insert("content-type".into(), vec!["application/json".into()]);
        h.insert("x-forwarded-for".into(), vec!["1.2.3.4".into()]);
        h.insert("x-quote".into(), vec!["it's".into()]);
        s.request(
            1_700_000_000_123,
            "r1",
            None,
            "POST",
            "/api?a=1&b=2",
            &h,
            br#"{"k":1}"#,
            None,
        );
        s.response_done("r1", 201, Some(b"made"), None, 5);
        s.request(
            1_700_000_000_200,
            "r2",
            None,
            "PUT",
            "/bin",
            &Headers::new(),
            &[0, 1, 255],
            None,
        );
        s.response_done("r2", 200, Some(&[0xff]), None, 1);
        s.ws_open(1_700_000_000_300, 3, "/ws", &[], false);
        s
    }

    fn exchange(s: &Store, id: u64) -> Exchange {
        match &s.get(id).unwrap().kind {
            Kind::Http(x) => x.clone(),
            Kind::Ws(_) => panic!("not http"),
        }
    }

    #[test]
    fn curl_quotes_headers_and_bodies() {
        let s = store();
        let c = curl(&exchange(&s, 1), "http://127.0.0.1:3000");
        assert_eq!(
            c,
            r#"curl -X 'POST' 'http://127.0.0.1:3000/api?a=1&b=2' -H 'content-type: application/json' -H 'x-quote: it'\''s' --data-binary '{"k":1}'"#
        );
        let c = curl(&exchange(&s, 2), "http://h");
        assert_eq!(
            c,
            "echo AAH/ | base64 -d | curl -X 'PUT' 'http://h/bin' --data-binary @-"
        );
    }

    #[test]
    fn har_has_the_http_entries_with_bodies() {
        let s = store();
        let har = har(s.entries(), "http://x");
        let entries = har["log"]["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 2, "WebSocket sessions are not HAR entries");
        let first = &entries[0];
        assert_eq!(first["startedDateTime"], "2023-11-14T22:13:20.123Z");
        assert_eq!(first["request"]["url"], "http://x/api?a=1&b=2");
        assert_eq!(first["request"]["queryString"][1]["name"], "b");
        assert_eq!(first["request"]["postData"]["text"], r#"{"k":1}"#);
        assert_eq!(first["response"]["status"], 201);
        assert_eq!(first["response"]["content"]["text"], "made");
        assert_eq!(entries[1]["response"]["content"]["encoding"], "base64");
        assert_eq!(entries[1]["request"]["postData"]["text"], "AAH/");
    }
}
