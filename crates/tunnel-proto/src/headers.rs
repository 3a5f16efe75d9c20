//! Header rules of the relay: which headers never cross the tunnel
//! (hop-by-hop), the `x-forwarded-*` headers the edge adds, and the metadata
//! the edge's router hands to the tunnel's Durable Object.

use serde::{Deserialize, Serialize};

use crate::v1::Headers;

/// Header by which the worker's router passes [`RequestMeta`] to the
/// Durable Object. Removed from what is relayed.
pub const META_HEADER: &str = "x-tunnel-meta";

/// Headers that describe one connection, not the message: never relayed.
pub fn is_hop_by_hop(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
            | "trailers"
    ) || name.starts_with("proxy-")
}

/// Names listed in `Connection` header values (also hop-by-hop, RFC 9110 7.6.1).
fn connection_listed(headers: &[(String, String)]) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Group `(name, value)` pairs into the wire shape (lower-case name to all
/// values, in order), dropping hop-by-hop headers and any name `skip`
/// accepts.
pub fn collect_headers(pairs: &[(String, String)], skip: impl Fn(&str) -> bool) -> Headers {
    let listed = connection_listed(pairs);
    let mut out = Headers::new();
    for (name, value) in pairs {
        let name = name.to_ascii_lowercase();
        if is_hop_by_hop(&name) || listed.contains(&name) || skip(&name) {
            continue;
        }
        out.entry(name).or_default().push(value.clone());
    }
    out
}

/// What the edge knew about a public request when it routed it: passed from
/// the router to the Durable Object in [`META_HEADER`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestMeta {
    /// Path and query to relay (tunnel prefix stripped).
    pub uri: String,
    /// `/<id>` for the path form, empty for the subdomain form.
    #[serde(default)]
    pub prefix: String,
    /// `http` or `https`, as the public caller used.
    pub proto: String,
    /// The `Host` the public caller used.
    pub host: String,
    /// The caller's address, when the platform tells it.
    #[serde(default)]
    pub client_ip: Option<String>,
}

/// Headers of a public request as relayed to the forwarder: hop-by-hop and
/// internal headers dropped, `x-forwarded-for/proto/host` added (an existing
/// `x-forwarded-for` chain is extended). In the path form
/// `accept-encoding` is dropped so that the answer arrives uncompressed and
/// can be rewritten.
pub fn request_headers(pairs: &[(String, String)], meta: &RequestMeta) -> Headers {
    let rewriting = !meta.prefix.is_empty();
    let mut out = collect_headers(pairs, |name| {
        name == META_HEADER
            || name.starts_with("x-forwarded-")
            || (rewriting && name == "accept-encoding")
    });
    let prior_for: Vec<&str> = pairs
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-forwarded-for"))
        .map(|(_, v)| v.as_str())
        .collect();
    let mut chain = prior_for.join(", ");
    if let Some(ip) = &meta.client_ip {
        if !chain.is_empty() {
            chain.push_str(", ");
        }
        chain.push_str(ip);
    }
    if !chain.is_empty() {
        out.insert("x-forwarded-for".into(), vec![chain]);
    }
    out.insert("x-forwarded-proto".into(), vec![meta.proto.clone()]);
    out.insert("x-forwarded-host".into(), vec![meta.host.clone()]);
    out
}

/// Headers of a forwarder's answer that may reach the public caller:
/// hop-by-hop headers and `content-length` (recomputed by the edge) are
/// dropped. Yields `(name, value)` pairs, every value of multi-value
/// headers (several `set-cookie`) kept.
pub fn response_headers(headers: &Headers) -> Vec<(String, String)> {
    let pairs: Vec<(String, String)> = headers
        .iter()
        .flat_map(|(n, vs)| vs.iter().map(move |v| (n.clone(), v.clone())))
        .collect();
    collect_headers(&pairs, |name| name == "content-length")
        .into_iter()
        .flat_map(|(n, vs)| vs.into_iter().map(move |v| (n.clone(), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn hop_by_hop_names() {
        for n in [
            "Connection",
            "keep-alive",
            "Transfer-Encoding",
            "upgrade",
            "proxy-authorization",
            "Proxy-Connection",
            "te",
            "trailer",
        ] {
            assert!(is_hop_by_hop(n), "{n}");
        }
        for n in ["host", "set-cookie", "content-type", "x-proxy"] {
            assert!(!is_hop_by_hop(n), "{n}");
        }
    }

    #[test]
    fn request_headers_drop_hop_by_hop_and_add_forwarded() {
        let meta = RequestMeta {
            uri: "/".into(),
            prefix: String::new(),
            proto: "https".into(),
            host: "abc123def456.example.com".into(),
            client_ip: Some("203.0.113.9".into()),
        };
        let h = request_headers(
            &pairs(&[
                ("Host", "abc123def456.example.com"),
                ("Connection", "keep-alive, X-Secret"),
                ("X-Secret", "1"),
                ("Keep-Alive", "timeout=5"),
                ("Accept", "a"),
                ("accept", "b"),
                ("X-Forwarded-For", "198.51.100.1"),
                ("x-tunnel-meta", "{}"),
                ("Accept-Encoding", "gzip"),
            ]),
            &meta,
        );
        assert_eq!(h["accept"], vec!["a", "b"]);
        assert_eq!(h["host"], vec!["abc123def456.example.com"]);
        assert_eq!(h["x-forwarded-for"], vec!["198.51.100.1, 203.0.113.9"]);
        assert_eq!(h["x-forwarded-proto"], vec!["https"]);
        assert_eq!(h["x-forwarded-host"], vec!["abc123def456.example.com"]);
        assert_eq!(h["accept-encoding"], vec!["gzip"]);
        for gone in ["connection", "keep-alive", "x-secret", "x-tunnel-meta"] {
            assert!(!h.contains_key(gone), "{gone} relayed");
        }
        let path_form = RequestMeta {
            prefix: "/abc123def456".into(),
            client_ip: None,
            ..meta
        };
        let h = request_headers(&pairs(&[("Accept-Encoding", "gzip")]), &path_form);
        assert!(!h.contains_key("accept-encoding"));
        assert!(!h.contains_key("x-forwarded-for"));
    }

    #[test]
    fn response_headers_keep_multi_values() {
        let mut h = Headers::new();
        h.insert("set-cookie".into(), vec!["a=1".into(), "b=2".into()]);
        h.insert("content-length".into(), vec!["3".into()]);
        h.insert("transfer-encoding".into(), vec!["chunked".into()]);
        h.insert("x-ok".into(), vec!["y".into()]);
        assert_eq!(
            response_headers(&h),
            pairs(&[("set-cookie", "a=1"), ("set-cookie", "b=2"), ("x-ok", "y")])
        );
    }
}
