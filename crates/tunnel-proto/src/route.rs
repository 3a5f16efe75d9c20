//! Where a request to the edge goes: the control socket, a tunnel (by
//! subdomain or by path prefix), or nowhere; and the public URLs of a tunnel.
//!
//! Pure functions of the request's host and path so that the worker's
//! router stays a thin driver and the rules are unit-tested natively.

use serde::{Deserialize, Serialize};

/// Length of a tunnel id.
pub const TUNNEL_ID_LEN: usize = 12;

/// Path of the forwarders' control socket.
pub const CONTROL_PATH: &str = "/_tunnel";

/// Where one request to the edge goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/_tunnel` on the base host: a forwarder opening its control socket.
    Control,
    /// Public traffic for a tunnel.
    Tunnel {
        /// The tunnel id.
        id: String,
        /// Path and query to relay, tunnel prefix already stripped.
        uri: String,
        /// `/<id>` when the request used the path form (answers are then
        /// rewritten to keep absolute paths under it), empty for the
        /// subdomain form.
        prefix: String,
    },
    /// A reserved path (starting with `_`) that the worker answers itself,
    /// e.g. `/_health`.
    Reserved(String),
    /// No tunnel id in the host or path.
    NotFound,
}

/// Whether `s` has the shape of a tunnel id: 12 characters of `[a-z0-9]`.
pub fn is_tunnel_id(s: &str) -> bool {
    s.len() == TUNNEL_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A fresh tunnel id from 12 random bytes (the caller supplies randomness).
pub fn tunnel_id_from_random(bytes: [u8; TUNNEL_ID_LEN]) -> String {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    bytes
        .iter()
        .map(|b| {
            let i = usize::from(*b) % ALPHABET.len();
            ALPHABET.get(i).map_or('a', |c| char::from(*c))
        })
        .collect()
}

/// Split `host[:port]` into the host name (lower-cased) and the port part
/// (with its colon, or empty).
fn split_port(host: &str) -> (String, &str) {
    match host.rsplit_once(':') {
        Some((name, port)) if !host.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => (
            name.to_ascii_lowercase(),
            host.get(name.len()..).unwrap_or_default(),
        ),
        _ => (host.to_ascii_lowercase(), ""),
    }
}

/// The tunnel id of a subdomain-form host, if `host` is `<id>.<base>`.
///
/// With a configured `base_domain`, the host must be exactly one label
/// under it. Without one, any host whose first label is a tunnel id and
/// that has at least one more label qualifies (`<id>.localhost:8787`).
pub fn subdomain_tunnel_id(host: &str, base_domain: &str) -> Option<String> {
    let (name, _) = split_port(host);
    let (label, rest) = name.split_once('.')?;
    if !is_tunnel_id(label) || rest.is_empty() {
        return None;
    }
    let base = base_domain
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let (base_name, _) = split_port(&base);
    if base_name.is_empty() || rest == base_name {
        Some(label.to_string())
    } else {
        None
    }
}

/// Route a request given its `Host` and its path with query (`/a/b?c`).
pub fn route(host: &str, path_and_query: &str, base_domain: &str) -> Route {
    let path_and_query = if path_and_query.starts_with('/') {
        path_and_query.to_string()
    } else {
        format!("/{path_and_query}")
    };
    if let Some(id) = subdomain_tunnel_id(host, base_domain) {
        return Route::Tunnel {
            id,
            uri: path_and_query,
            prefix: String::new(),
        };
    }
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query.as_str(), None),
    };
    if path == CONTROL_PATH {
        return Route::Control;
    }
    let rest = path.strip_prefix('/').unwrap_or(path);
    let (first, tail) = match rest.find('/').and_then(|i| rest.split_at_checked(i)) {
        Some(split) => split,
        None => (rest, ""),
    };
    if first.starts_with('_') {
        return Route::Reserved(first.to_string());
    }
    if !is_tunnel_id(first) {
        return Route::NotFound;
    }
    let mut uri = if tail.is_empty() {
        "/".to_string()
    } else {
        tail.to_string()
    };
    if let Some(q) = query {
        uri.push('?');
        uri.push_str(q);
    }
    Route::Tunnel {
        id: first.to_string(),
        uri,
        prefix: format!("/{first}"),
    }
}

/// Public URLs of one tunnel, as sent in `connection_established`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicUrls {
    /// The URL to advertise first: the subdomain form when the base host is
    /// a name, the path form when it is an IP address.
    pub public_url: String,
    /// `<scheme>://<id>.<base>`; absent when the base host is an IP address
    /// other than loopback (no name to put the id under).
    pub subdomain_url: Option<String>,
    /// `<scheme>://<base>/<id>`.
    pub path_based_url: String,
}

/// Build the public URLs of tunnel `id`. `scheme` is `http` or `https`,
/// `base` is the configured base domain or else the host (with port) the
/// control socket came to.
pub fn public_urls(scheme: &str, base: &str, id: &str) -> PublicUrls {
    let (name, port) = split_port(base);
    let path_based_url = format!("{scheme}://{base}/{id}");
    let is_ip = name.parse::<std::net::IpAddr>().is_ok()
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::Ipv6Addr>()
            .is_ok();
    let subdomain_url = if !is_ip {
        Some(format!("{scheme}://{id}.{base}"))
    } else if name == "127.0.0.1" || name == "[::1]" {
        Some(format!("{scheme}://{id}.localhost{port}"))
    } else {
        None
    };
    PublicUrls {
        public_url: match (&subdomain_url, is_ip) {
            (Some(url), false) => url.clone(),
            _ => path_based_url.clone(),
        },
        subdomain_url,
        path_based_url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_ids() {
        assert!(is_tunnel_id("abc123def456"));
        assert!(!is_tunnel_id("abc123def45"));
        assert!(!is_tunnel_id("ABC123def456"));
        assert!(!is_tunnel_id("abc123def45-"));
        let id = tunnel_id_from_random([0, 1, 25, 26, 35, 36, 255, 7, 8, 9, 10, 11]);
        assert_eq!(id, "abz09adhijkl");
        assert!(is_tunnel_id(&id));
    }

    #[test]
    fn control_and_reserved() {
        assert_eq!(route("127.0.0.1:8787", "/_tunnel", ""), Route::Control);
        assert_eq!(route("x.dev", "/_tunnel?token=a", ""), Route::Control);
        assert_eq!(
            route("x.dev", "/_health", ""),
            Route::Reserved("_health".into())
        );
        assert_eq!(route("x.dev", "/", ""), Route::NotFound);
        assert_eq!(route("x.dev", "/short/x", ""), Route::NotFound);
    }

    #[test]
    fn path_form_strips_prefix_and_keeps_query() {
        assert_eq!(
            route("127.0.0.1:8787", "/abc123def456/api/x?q=1&r=%20", ""),
            Route::Tunnel {
                id: "abc123def456".into(),
                uri: "/api/x?q=1&r=%20".into(),
                prefix: "/abc123def456".into()
            }
        );
        assert_eq!(
            route("h", "/abc123def456?x=1", ""),
            Route::Tunnel {
                id: "abc123def456".into(),
                uri: "/?x=1".into(),
                prefix: "/abc123def456".into()
            }
        );
    }

    #[test]
    fn subdomain_form_keeps_whole_path() {
        let expected = Route::Tunnel {
            id: "abc123def456".into(),
            uri: "/_tunnel/x?y".into(),
            prefix: String::new(),
        };
        assert_eq!(
            route("abc123def456.localhost:8787", "/_tunnel/x?y", ""),
            expected
        );
        assert_eq!(
            route(
                "ABC123DEF456.tunnel.example.com",
                "/_tunnel/x?y",
                "tunnel.example.com"
            ),
            expected
        );
        // One label too deep, or under another domain: not a tunnel host.
        assert_eq!(
            route(
                "abc123def456.x.tunnel.example.com",
                "/",
                "tunnel.example.com"
            ),
            Route::NotFound
        );
        assert_eq!(route("abc123def456", "/", ""), Route::NotFound);
    }

    #[test]
    fn urls_for_names_and_addresses() {
        let u = public_urls("https", "tunnel.example.com", "abc123def456");
        assert_eq!(u.public_url, "https://abc123def456.tunnel.example.com");
        assert_eq!(u.path_based_url, "https://tunnel.example.com/abc123def456");
        let u = public_urls("http", "127.0.0.1:8787", "abc123def456");
        assert_eq!(u.public_url, "http://127.0.0.1:8787/abc123def456");
        assert_eq!(
            u.subdomain_url.as_deref(),
            Some("http://abc123def456.localhost:8787")
        );
        let u = public_urls("http", "10.0.0.1", "abc123def456");
        assert_eq!(u.subdomain_url, None);
    }
}
