//! Command-line interface of `ttf`, compatible with the http-tunnel
//! forwarder's flags.

use std::time::Duration;

use clap::Parser;
use tunnel_proto::names;
use tunnel_proto::policy::{self, BasicAuth, Enforcer, Policies, RateLimit, VisitorJwt, Webhook};

use crate::routes::{Route, Routes, Target};
use crate::stream_queue::STREAM_QUEUE_BYTES;

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
    /// Extra local target by path prefix (repeatable), PREFIX=URL with URL
    /// http://, ws:// or mqtt+tcp://HOST:PORT, e.g. /mqtt=ws://127.0.0.1:8083.
    /// The longest matching prefix wins; --host/--port serve `/`. Paths are
    /// passed on unchanged.
    #[arg(long = "route", value_name = "PREFIX=URL", value_parser = Route::parse)]
    pub routes: Vec<Route>,
    /// Bridge public WebSockets on /mqtt to an MQTT broker's plain TCP port,
    /// one MQTT packet per message (= --route /mqtt=mqtt+tcp://HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    pub mqtt_tcp: Option<String>,
    /// Ask for this tunnel id (12 characters of a-z0-9) so the public URL
    /// stays the same across restarts. Granted when no other forwarder holds
    /// it and, with auth on, the token lists it in its `tunnels` claim.
    #[arg(short = 'n', long, env = "TTF_NAME", value_parser = names::parse_name)]
    pub name: Option<String>,
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
    /// Seconds between heartbeat pings on the control socket (announced
    /// in `ready`: the edge treats a forwarder silent for two intervals
    /// plus 2 s as gone; no pong by the next ping: reconnect).
    #[arg(
        long,
        env = "TTF_PING_INTERVAL",
        default_value_t = 5,
        value_name = "SECS"
    )]
    pub ping_interval: u64,
    /// Bytes of public WebSocket messages that may wait, per relayed stream,
    /// for a local side that reads slowly; past it the stream is closed with
    /// 1013 (one message larger than this still passes an empty queue).
    #[arg(
        long,
        env = "TTF_STREAM_BUFFER",
        default_value_t = STREAM_QUEUE_BYTES,
        value_name = "BYTES"
    )]
    pub stream_buffer: usize,
    /// Highest tunnel protocol version to ask the edge for (3: binary
    /// heads and batched frames; 2: JSON heads, as forwarders before
    /// issue 17 spoke). For compatibility tests.
    #[arg(long, env = "TTF_PROTOCOL", default_value_t = tunnel_proto::heads::VERSION, value_parser = clap::value_parser!(u32).range(2..=3), hide = true)]
    pub protocol: u32,
    /// Edge policy: visitors must send these HTTP Basic credentials
    /// (USER:PASS; 401 with a browser prompt otherwise, no interstitial).
    #[arg(long, env = "TTF_BASIC_AUTH", hide_env_values = true, value_name = "USER:PASS", value_parser = BasicAuth::parse)]
    pub basic_auth: Option<BasicAuth>,
    /// Edge policy: only clients in this network get through (CIDR or
    /// address, IPv4 or IPv6; repeatable; others get 403).
    #[arg(long = "allow-ip", env = "TTF_ALLOW_IP", value_delimiter = ',', value_name = "CIDR", value_parser = parse_allow_ip)]
    pub allow_ip: Vec<String>,
    /// Edge policy: every request must carry a valid webhook signature of
    /// PROVIDER (github, stripe or slack) made with SECRET (401 otherwise).
    #[arg(long, env = "TTF_VERIFY_WEBHOOK", hide_env_values = true, value_name = "PROVIDER:SECRET", value_parser = Webhook::parse)]
    pub verify_webhook: Option<Webhook>,
    /// Edge policy: at most N requests per second (N/s) or minute (N/m)
    /// per client IP, bursts up to N (429 with Retry-After past it).
    #[arg(long, env = "TTF_RATE_LIMIT", value_name = "N/s", value_parser = RateLimit::parse)]
    pub rate_limit: Option<RateLimit>,
    /// Edge policy: visitors must present a JWT (`Authorization: Bearer`
    /// or `?token=`) signed with an HMAC secret (hs:SECRET) or a key of a
    /// JSON Web Key Set file (jwks:PATH); `exp` required (401 otherwise).
    #[arg(
        long,
        env = "TTF_REQUIRE_JWT",
        hide_env_values = true,
        value_name = "hs:SECRET|jwks:PATH"
    )]
    pub require_jwt: Option<String>,
    /// Request inspector: a web page at this address listing what comes
    /// through the tunnel (replay, curl, HAR, WebSocket and MQTT frames),
    /// or `off`. Default 127.0.0.1:4040, skipped with a note when taken.
    #[arg(long, env = "TTF_INSPECT", value_name = "ADDR|off")]
    pub inspect: Option<String>,
    /// Requests and WebSocket sessions the inspector keeps (oldest dropped).
    #[arg(
        long,
        env = "TTF_INSPECT_REQUESTS",
        default_value_t = 200,
        value_name = "N"
    )]
    pub inspect_requests: usize,
    /// Bytes of each body (and WebSocket message) the inspector keeps; a
    /// session keeps at most 8 times this of its messages.
    #[arg(long, env = "TTF_INSPECT_BODY_CAP", default_value_t = 64 * 1024, value_name = "BYTES")]
    pub inspect_body_cap: usize,
}

/// Where the inspector listens unless told otherwise (ngrok's port).
pub const DEFAULT_INSPECT: &str = "127.0.0.1:4040";

/// `--allow-ip`: a CIDR or an address, normalised (`10.1.2.3/8` -> `10.0.0.0/8`).
fn parse_allow_ip(s: &str) -> Result<String, String> {
    policy::parse_net(s).map(|n| n.to_string())
}

impl Args {
    /// All routes: `--route`, `--mqtt-tcp` and the default `/` route.
    pub fn routes(&self) -> Result<Routes, String> {
        let mut routes = self.routes.clone();
        if let Some(addr) = &self.mqtt_tcp {
            routes.push(Route {
                prefix: "/mqtt".into(),
                target: Target::parse(&format!("mqtt+tcp://{addr}"))
                    .map_err(|e| format!("--mqtt-tcp: {e}"))?,
            });
        }
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        Ok(Routes::new(
            routes,
            Target::Http(format!("{host}:{}", self.port)),
        ))
    }

    /// The edge policies of the flags, checked as the edge will check them
    /// (a JWKS file is read here). `Err` names the flag.
    pub fn policies(&self) -> Result<Policies, String> {
        let jwt =
            match self.require_jwt.as_deref() {
                None => None,
                Some(spec) => Some(match spec.split_once(':') {
                    Some(("hs", secret)) if !secret.is_empty() => VisitorJwt {
                        secret: Some(secret.to_string()),
                        jwks: None,
                    },
                    Some(("jwks", path)) => VisitorJwt {
                        secret: None,
                        jwks: Some(std::fs::read_to_string(path).map_err(|e| {
                            format!("--require-jwt: cannot read the JWKS file {path:?}: {e}")
                        })?),
                    },
                    _ => return Err(
                        "--require-jwt: expected hs:SECRET or jwks:PATH (a JSON Web Key Set file)"
                            .into(),
                    ),
                }),
            };
        let policies = Policies {
            basic_auth: self.basic_auth.clone(),
            allow_ip: self.allow_ip.clone(),
            webhook: self.verify_webhook.clone(),
            rate_limit: self.rate_limit,
            jwt,
        };
        Enforcer::new(&policies).map_err(|e| format!("edge policy: {e}"))?;
        Ok(policies)
    }

    /// The inspector's address and whether it was asked for (a taken
    /// default port is skipped, a taken explicit one is an error); `None`:
    /// off.
    pub fn inspect_addr(&self) -> Option<(&str, bool)> {
        match self.inspect.as_deref() {
            Some(off) if off.eq_ignore_ascii_case("off") => None,
            Some(addr) => Some((addr, true)),
            None => Some((DEFAULT_INSPECT, false)),
        }
    }

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
        // Deliberately not the original's 300 s: the edge judges liveness
        // by the announced interval (issue 14: a stopped ttf held its tunnel).
        assert_eq!(a.ping_interval(), Duration::from_secs(5));
        assert!(a.token.is_none() && !a.verbose);
        assert_eq!(a.inspect_addr(), Some((DEFAULT_INSPECT, false)));
        assert_eq!((a.inspect_requests, a.inspect_body_cap), (200, 65536));
        let a = Args::try_parse_from(["ttf", "-e", "x", "-p", "8080", "-t", "jwt", "-v"]).unwrap();
        assert_eq!(
            (a.port, a.token.as_deref(), a.verbose),
            (8080, Some("jwt"), true)
        );
        assert!(Args::try_parse_from(["ttf", "-e", "x", "-p", "notaport"]).is_err());
    }

    #[test]
    fn inspect_flag() {
        let off = Args::try_parse_from(["ttf", "-e", "x", "--inspect", "OFF"]).unwrap();
        assert_eq!(off.inspect_addr(), None);
        let on = Args::try_parse_from(["ttf", "-e", "x", "--inspect", "127.0.0.1:0"]).unwrap();
        assert_eq!(on.inspect_addr(), Some(("127.0.0.1:0", true)));
    }

    #[test]
    fn policy_flags() {
        let a = Args::try_parse_from(["ttf", "-e", "x"]).unwrap();
        assert!(a.policies().unwrap().is_empty());
        let a = Args::try_parse_from([
            "ttf",
            "-e",
            "x",
            "--basic-auth",
            "u:p",
            "--allow-ip",
            "10.1.0.0/16",
            "--allow-ip",
            "::1",
            "--verify-webhook",
            "github:s",
            "--rate-limit",
            "5/s",
            "--require-jwt",
            "hs:k",
        ])
        .unwrap();
        let p = a.policies().unwrap();
        assert_eq!(p.allow_ip, ["10.1.0.0/16", "::1/128"]);
        assert_eq!(p.names().len(), 5);
        for bad in [
            ["--basic-auth", "nocolon"],
            ["--allow-ip", "10.0.0.0/40"],
            ["--verify-webhook", "gitlab:s"],
            ["--rate-limit", "fast"],
        ] {
            let e = Args::try_parse_from(["ttf", "-e", "x", bad[0], bad[1]]).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
        let a = Args::try_parse_from(["ttf", "-e", "x", "--require-jwt", "rs:x"]).unwrap();
        assert!(a.policies().unwrap_err().contains("hs:SECRET or jwks:PATH"));
        let a =
            Args::try_parse_from(["ttf", "-e", "x", "--require-jwt", "jwks:/nonexistent"]).unwrap();
        assert!(a
            .policies()
            .unwrap_err()
            .contains("cannot read the JWKS file"));
    }

    #[test]
    fn routes_and_mqtt_tcp() {
        let a = Args::try_parse_from([
            "ttf",
            "-e",
            "x",
            "-p",
            "3001",
            "--route",
            "/echo=ws://127.0.0.1:9000",
            "--mqtt-tcp",
            "127.0.0.1:1884",
        ])
        .unwrap();
        let routes = a.routes().unwrap();
        assert_eq!(routes.find("/echo").to_string(), "ws://127.0.0.1:9000");
        assert_eq!(
            routes.find("/mqtt").to_string(),
            "mqtt+tcp://127.0.0.1:1884"
        );
        assert_eq!(routes.find("/x").to_string(), "http://127.0.0.1:3001");
        assert!(Args::try_parse_from(["ttf", "-e", "x", "--route", "nope"]).is_err());
        let bad = Args::try_parse_from(["ttf", "-e", "x", "--mqtt-tcp", "h"]).unwrap();
        assert!(bad.routes().unwrap_err().contains("--mqtt-tcp"));
    }
}
