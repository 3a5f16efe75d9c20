//! What `ttf` prints: the public URLs on connect and one line per request
//! (time, method, path, status, duration), like ngrok's console.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `HH:MM:SS` (UTC) of `now`.
fn clock(now: SystemTime) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let day = secs % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day % 3600 / 60, day % 60)
}

/// The line printed for one relayed request.
pub fn request_line(
    now: SystemTime,
    method: &str,
    uri: &str,
    status: u16,
    elapsed: Duration,
) -> String {
    format!(
        "{} {method:<7} {uri} -> {status} ({:.1} ms)",
        clock(now),
        elapsed.as_secs_f64() * 1000.0
    )
}

/// The lines printed when the tunnel is up.
pub fn established_lines(
    tunnel_id: &str,
    public_url: &str,
    subdomain_url: Option<&str>,
    path_based_url: Option<&str>,
    local: &str,
) -> Vec<String> {
    let mut lines = vec![
        format!("Tunnel {tunnel_id} established"),
        format!("Forwarding {public_url} -> {local}"),
    ];
    for (label, url) in [
        ("Subdomain URL", subdomain_url),
        ("Path URL", path_based_url),
    ] {
        if let Some(url) = url.filter(|u| *u != public_url) {
            lines.push(format!("Forwarding {url} -> {local}  ({label})"));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        let t = UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 3600 * 13 + 60 * 5 + 9);
        assert_eq!(
            request_line(t, "GET", "/api?x=1", 200, Duration::from_micros(12_345)),
            "13:05:09 GET     /api?x=1 -> 200 (12.3 ms)"
        );
    }

    #[test]
    fn url_lines_skip_duplicates() {
        let lines = established_lines(
            "abc123def456",
            "http://h/abc123def456",
            Some("http://abc123def456.h"),
            Some("http://h/abc123def456"),
            "http://127.0.0.1:3000",
        );
        assert_eq!(
            lines,
            vec![
                "Tunnel abc123def456 established",
                "Forwarding http://h/abc123def456 -> http://127.0.0.1:3000",
                "Forwarding http://abc123def456.h -> http://127.0.0.1:3000  (Subdomain URL)",
            ]
        );
    }
}
