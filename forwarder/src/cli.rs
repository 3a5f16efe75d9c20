//! Command-line interface of `ttf`, compatible with the http-tunnel
//! forwarder's flags.

use std::time::Duration;

use clap::Parser;

/// Expose a local HTTP service through the edge tunnel.
///
/// Connects to the edge worker's control socket, prints the public URLs and
/// relays every public request to the local service, one console line per
/// request. Reconnects on its own; Ctrl-C closes the tunnel cleanly.
#[derive(Debug, Clone, Parser)]
#[command(name = "ttf", version, about)]
pub struct Args {
    /// Control socket URL of the edge worker, e.g. wss://tunnel.example.com/_tunnel
    #[arg(short, long, env = "TTF_ENDPOINT")]
    pub endpoint: String,
    /// Local port to forward to.
    #[arg(short, long, default_value_t = 3000)]
    pub port: u16,
    /// Local host to forward to.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// JWT sent as `Authorization: Bearer <token>` when the edge requires auth.
    #[arg(short, long, env = "TTF_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print headers, reconnect reasons and error details.
    #[arg(short, long)]
    pub verbose: bool,
    /// Seconds to wait for the control socket to open.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub connect_timeout: u64,
    /// Seconds to wait for the local service to answer one request.
    #[arg(long, default_value_t = 25, value_name = "SECS")]
    pub request_timeout: u64,
    /// Seconds between heartbeat pings on the control socket.
    #[arg(
        long,
        env = "TTF_PING_INTERVAL",
        default_value_t = 300,
        value_name = "SECS"
    )]
    pub ping_interval: u64,
}

impl Args {
    /// `--connect-timeout` as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout.max(1))
    }

    /// `--request-timeout` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout.max(1))
    }

    /// `--ping-interval` as a duration.
    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_original_forwarder() {
        let a = Args::try_parse_from(["ttf", "-e", "ws://x/_tunnel"]).unwrap();
        assert_eq!(a.port, 3000);
        assert_eq!(a.host, "127.0.0.1");
        assert_eq!(a.connect_timeout(), Duration::from_secs(10));
        assert_eq!(a.request_timeout(), Duration::from_secs(25));
        assert_eq!(a.ping_interval(), Duration::from_secs(300));
        assert!(a.token.is_none() && !a.verbose);
        let a = Args::try_parse_from(["ttf", "-e", "x", "-p", "8080", "-t", "jwt", "-v"]).unwrap();
        assert_eq!(
            (a.port, a.token.as_deref(), a.verbose),
            (8080, Some("jwt"), true)
        );
        assert!(Args::try_parse_from(["ttf", "-e", "x", "-p", "notaport"]).is_err());
    }
}
