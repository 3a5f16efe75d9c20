//! Edge policies: rules a forwarder declares in `ready` (field `policies`)
//! and the tunnel's Durable Object enforces on every public request before
//! anything is relayed to the forwarder's machine.
//!
//! - `basic_auth`: HTTP Basic credentials (401 with `WWW-Authenticate`, so
//!   a browser asks for them; no interstitial page).
//! - `allow_ip`: CIDR allowlist, IPv4 and IPv6 (403; an unknown client
//!   address is refused).
//! - `rate_limit`: a token bucket per client IP (429 with `Retry-After`).
//! - `jwt`: visitor JWTs (HS secret or JWKS, checked by `jwt_auth`), from
//!   `Authorization: Bearer` or `?token=` (browsers cannot set headers on
//!   a WebSocket; 401).
//! - `webhook`: GitHub / Stripe / Slack HMAC-SHA256 signatures over the
//!   whole body (401).
//!
//! [`Policies`] is the wire shape (what `ttf` sends); [`Enforcer`] is the
//! compiled form the edge keeps, with the rate limiter's state. No IO: the
//! caller hands in headers, the client address, the body and the time.

use std::collections::HashMap;
use std::net::IpAddr;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::inflight::PublicAnswer;

/// How far a signed webhook timestamp (Stripe, Slack) may be from the
/// edge's clock, in seconds (both providers document 5 minutes).
pub const WEBHOOK_TOLERANCE_SECS: u64 = 300;

/// Most client addresses the rate limiter tracks at once; past it, buckets
/// that are full again are forgotten first, then the least recently used.
pub const MAX_TRACKED_CLIENTS: usize = 10_000;

/// Policies a forwarder declares (`ready.policies`). Every field is
/// optional; an absent or empty one enforces nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policies {
    /// HTTP Basic credentials every visitor must present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// Client networks allowed in (CIDR, e.g. `203.0.113.0/24`, `2001:db8::/32`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_ip: Vec<String>,
    /// Webhook signature every request must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
    /// Requests per client IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Visitor JWTs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<VisitorJwt>,
}

/// `--basic-auth user:pass`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasicAuth {
    pub user: String,
    pub pass: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .field("pass", &"<set>")
            .finish()
    }
}

impl BasicAuth {
    /// Parse `user:pass` (the user may not contain `:`; both non-empty).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some((user, pass)) if !user.is_empty() && !pass.is_empty() => Ok(Self {
                user: user.into(),
                pass: pass.into(),
            }),
            _ => Err(format!(
                "expected USER:PASS with both parts non-empty, got {} characters without that shape",
                s.chars().count()
            )),
        }
    }
}

/// Webhook providers whose signatures the edge checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
    Github,
    /// `Stripe-Signature: t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<body>")>`.
    Stripe,
    /// `X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:<ts>:<body>")>`
    /// with `X-Slack-Request-Timestamp: <ts>`.
    Slack,
}

/// `--verify-webhook PROVIDER:SECRET`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub provider: Provider,
    pub secret: String,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("provider", &self.provider)
            .field("secret", &"<set>")
            .finish()
    }
}

impl Webhook {
    /// Parse `github|stripe|slack:SECRET`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (provider, secret) = s
            .split_once(':')
            .ok_or("expected PROVIDER:SECRET, e.g. github:mysecret")?;
        let provider = match provider.to_ascii_lowercase().as_str() {
            "github" => Provider::Github,
            "stripe" => Provider::Stripe,
            "slack" => Provider::Slack,
            other => {
                return Err(format!(
                    "unknown webhook provider {other:?}: use github, stripe or slack"
                ))
            }
        };
        if secret.is_empty() {
            return Err("the webhook secret is empty".into());
        }
        Ok(Self {
            provider,
            secret: secret.into(),
        })
    }
}

/// `--rate-limit N/s` (or `N/m`): at most `requests` per `per_ms` per
/// client IP, with bursts up to `requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub requests: u32,
    pub per_ms: u64,
}

impl RateLimit {
    /// Parse `N/s` or `N/m` (N from 1).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (n, unit) = s.split_once('/').ok_or("expected N/s or N/m, e.g. 10/s")?;
        let requests: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("{n:?} is not a whole number of requests"))?;
        if requests == 0 {
            return Err("a rate limit of 0 requests refuses everything; use at least 1".into());
        }
        let per_ms = match unit.trim() {
            "s" | "sec" | "second" => 1000,
            "m" | "min" | "minute" => 60_000,
            other => return Err(format!("unknown unit {other:?}: use s or m")),
        };
        Ok(Self { requests, per_ms })
    }
}

/// `--require-jwt hs:SECRET` or `--require-jwt jwks:<JSON Web Key Set>`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitorJwt {
    /// HMAC secret (HS256/384/512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// JSON Web Key Set (RS256/384/512), as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
}

impl std::fmt::Debug for VisitorJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisitorJwt")
            .field("secret", &self.secret.as_ref().map(|_| "<set>"))
            .field("jwks", &self.jwks.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Policies {
    /// Names of the declared policies, as the edge confirms them in
    /// `connection_established.policies`.
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        let mut add = |on: bool, name: &str| {
            if on {
                names.push(name.to_string());
            }
        };
        add(!self.allow_ip.is_empty(), "allow_ip");
        add(self.rate_limit.is_some(), "rate_limit");
        add(self.basic_auth.is_some(), "basic_auth");
        add(self.jwt.is_some(), "jwt");
        add(self.webhook.is_some(), "webhook");
        names
    }

    /// Whether nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.names().is_empty()
    }
}

/// Parse one `--allow-ip` value: a CIDR or a single address (= /32, /128).
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        format!("{s:?} is not a CIDR (e.g. 203.0.113.0/24, 2001:db8::/32) or an IP address")
    })
}

/// One public request as the policies see it.
#[derive(Debug, Clone, Copy)]
pub struct Visitor<'a> {
    /// Request headers (any case).
    pub headers: &'a [(String, String)],
    /// The query string (without `?`).
    pub query: Option<&'a str>,
    /// The caller's address, as the platform told it.
    pub client_ip: Option<&'a str>,
}

impl Visitor<'_> {
    fn headers(&self, name: &str) -> impl Iterator<Item = &str> + '_ {
        let name = name.to_string();
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(&name))
            .map(|(_, v)| v.as_str())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).next()
    }
}

/// The answer of a refused request.
fn refusal(status: u16, message: impl Into<String>, headers: &[(&str, &str)]) -> PublicAnswer {
    let mut answer = PublicAnswer::text(status, message);
    answer
        .headers
        .extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    answer
}

/// One client's token bucket, in thousandths of a request.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    milli: u64,
    at_ms: u64,
}

/// Token buckets per client IP, bounded to [`MAX_TRACKED_CLIENTS`].
#[derive(Debug, Clone)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: HashMap<String, Bucket>,
    max_clients: usize,
}

impl RateLimiter {
    /// A limiter tracking at most `max_clients` addresses.
    pub fn new(limit: RateLimit, max_clients: usize) -> Self {
        Self {
            limit,
            buckets: HashMap::new(),
            max_clients: max_clients.max(1),
        }
    }

    fn capacity(&self) -> u64 {
        u64::from(self.limit.requests) * 1000
    }

    /// The bucket's level at `now_ms`.
    fn refilled(&self, b: Bucket, now_ms: u64) -> u64 {
        let elapsed = now_ms.saturating_sub(b.at_ms);
        let gained = elapsed
            .saturating_mul(u64::from(self.limit.requests))
            .saturating_mul(1000)
            / self.limit.per_ms.max(1);
        b.milli.saturating_add(gained).min(self.capacity())
    }

    /// Take one request from `client`'s bucket: `Err(seconds to wait)`
    /// when it is empty.
    pub fn take(&mut self, client: &str, now_ms: u64) -> Result<(), u64> {
        if !self.buckets.contains_key(client) && self.buckets.len() >= self.max_clients {
            self.make_room(now_ms);
        }
        let full = Bucket {
            milli: self.capacity(),
            at_ms: now_ms,
        };
        let current = self.buckets.get(client).copied().unwrap_or(full);
        let level = self.refilled(current, now_ms);
        let (level, verdict) = match level.checked_sub(1000) {
            Some(rest) => (rest, Ok(())),
            None => {
                let missing = 1000 - level;
                let wait_ms = missing.saturating_mul(self.limit.per_ms)
                    / (u64::from(self.limit.requests) * 1000);
                (level, Err(wait_ms / 1000 + 1))
            }
        };
        self.buckets.insert(
            client.to_string(),
            Bucket {
                milli: level,
                at_ms: now_ms,
            },
        );
        verdict
    }

    /// Forget buckets that are full again; if none is, the least recently
    /// used one.
    fn make_room(&mut self, now_ms: u64) {
        let capacity = self.capacity();
        let snapshot: Vec<(String, Bucket)> =
            self.buckets.iter().map(|(k, b)| (k.clone(), *b)).collect();
        for (client, bucket) in &snapshot {
            if self.refilled(*bucket, now_ms) >= capacity {
                self.buckets.remove(client);
            }
        }
        if self.buckets.len() >= self.max_clients {
            if let Some(oldest) = snapshot
                .iter()
                .filter(|(k, _)| self.buckets.contains_key(k))
                .min_by_key(|(_, b)| b.at_ms)
                .map(|(k, _)| k.clone())
            {
                self.buckets.remove(&oldest);
            }
        }
    }

    /// Clients tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// The compiled policies of one tunnel, with the rate limiter's state.
#[derive(Debug)]
pub struct Enforcer {
    names: Vec<String>,
    basic: Option<BasicAuth>,
    nets: Vec<IpNet>,
    limiter: Option<RateLimiter>,
    jwt: Option<jwt_auth::AuthConfig>,
    webhook: Option<Webhook>,
}

impl Enforcer {
    /// Compile what a forwarder declared; `Err` names the bad part.
    pub fn new(policies: &Policies) -> Result<Self, String> {
        let nets = policies
            .allow_ip
            .iter()
            .map(|s| parse_net(s).map_err(|e| format!("allow_ip: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let jwt = match &policies.jwt {
            None => None,
            Some(j) if j.secret.is_none() && j.jwks.is_none() => {
                return Err("jwt: give an HS secret or a JWKS".into())
            }
            Some(j) => Some(
                jwt_auth::AuthConfig::new(j.secret.as_deref(), j.jwks.as_deref(), true, None, None)
                    .map_err(|e| format!("jwt: {e}"))?,
            ),
        };
        if let Some(r) = policies.rate_limit {
            if r.requests == 0 || r.per_ms == 0 {
                return Err("rate_limit: requests and per_ms must be at least 1".into());
            }
        }
        Ok(Self {
            names: policies.names(),
            basic: policies.basic_auth.clone(),
            nets,
            limiter: policies
                .rate_limit
                .map(|r| RateLimiter::new(r, MAX_TRACKED_CLIENTS)),
            jwt,
            webhook: policies.webhook.clone(),
        })
    }

    /// Names of the enforced policies.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether the body must be read and passed to [`Self::check_body`]
    /// before the request may be relayed (webhook signatures).
    pub fn needs_body(&self) -> bool {
        self.webhook.is_some()
    }

    /// Everything but the body: client network (403), rate (429), Basic
    /// credentials (401), visitor JWT (401). `now_ms`: Unix milliseconds.
    pub fn check(&mut self, v: &Visitor<'_>, now_ms: u64) -> Result<(), PublicAnswer> {
        let ip = v.client_ip.map(str::trim).filter(|s| !s.is_empty());
        if !self.nets.is_empty() {
            let addr = ip.and_then(|s| s.parse::<IpAddr>().ok());
            let allowed = addr.is_some_and(|a| {
                let a = canonical(a);
                self.nets.iter().any(|n| n.contains(&a))
            });
            if !allowed {
                return Err(refusal(
                    403,
                    format!(
                        "forbidden: your address ({}) is not in this tunnel's --allow-ip list",
                        ip.unwrap_or("unknown")
                    ),
                    &[],
                ));
            }
        }
        if let Some(limiter) = &mut self.limiter {
            if let Err(wait) = limiter.take(ip.unwrap_or("unknown"), now_ms) {
                let after = wait.to_string();
                return Err(refusal(
                    429,
                    format!("too many requests from your address: retry in {wait} s"),
                    &[("retry-after", after.as_str())],
                ));
            }
        }
        if let Some(basic) = &self.basic {
            if !v.headers("authorization").any(|h| basic_matches(basic, h)) {
                return Err(refusal(
                    401,
                    "unauthorized: this tunnel requires HTTP Basic credentials",
                    &[(
                        "www-authenticate",
                        "Basic realm=\"tunnel\", charset=\"UTF-8\"",
                    )],
                ));
            }
        }
        if let Some(jwt) = &self.jwt {
            let bearer = v
                .headers("authorization")
                .find(|h| {
                    h.trim()
                        .split_once(' ')
                        .is_some_and(|(s, _)| s.eq_ignore_ascii_case("bearer"))
                })
                .map(str::to_string);
            let token = jwt_auth::token_from(bearer.as_deref(), v.query);
            if let Err(e) = jwt.verify(token.as_deref(), now_ms / 1000) {
                return Err(refusal(
                    401,
                    format!("unauthorized: this tunnel requires a visitor JWT: {e}"),
                    &[("www-authenticate", "Bearer realm=\"tunnel\"")],
                ));
            }
        }
        Ok(())
    }

    /// The webhook signature over `body` (401 naming what is wrong).
    pub fn check_body(
        &self,
        v: &Visitor<'_>,
        body: &[u8],
        now_ms: u64,
    ) -> Result<(), PublicAnswer> {
        let Some(hook) = &self.webhook else {
            return Ok(());
        };
        verify_webhook(hook, v, body, now_ms / 1000)
            .map_err(|e| refusal(401, format!("unauthorized: {e}"), &[]))
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) compare as IPv4.
fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Whether an `Authorization` value carries exactly these Basic credentials
/// (compared in constant time).
fn basic_matches(basic: &BasicAuth, header: &str) -> bool {
    let Some((scheme, encoded)) = header.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", basic.user, basic.pass);
    decoded.ct_eq(expected.as_bytes()).into()
}

/// Check `hook`'s signature on a request; `Err` names what is wrong.
fn verify_webhook(hook: &Webhook, v: &Visitor<'_>, body: &[u8], now_s: u64) -> Result<(), String> {
    match hook.provider {
        Provider::Github => {
            let sig = v.header("x-hub-signature-256").ok_or(
                "missing X-Hub-Signature-256: this tunnel only accepts signed GitHub webhooks",
            )?;
            let hex_sig = sig
                .trim()
                .strip_prefix("sha256=")
                .ok_or("X-Hub-Signature-256 must start with sha256=")?;
            check_hmac(&hook.secret, &[body], hex_sig, "GitHub")
        }
        Provider::Stripe => {
            let header = v.header("stripe-signature").ok_or(
                "missing Stripe-Signature: this tunnel only accepts signed Stripe webhooks",
            )?;
            let mut t = None;
            let mut sigs = Vec::new();
            for part in header.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", ts)) => t = Some(ts),
                    Some(("v1", s)) => sigs.push(s),
                    _ => {}
                }
            }
            let t = t.ok_or("Stripe-Signature has no t=<timestamp>")?;
            fresh(t, now_s, "Stripe-Signature t")?;
            let prefix = format!("{t}.");
            if sigs
                .iter()
                .any(|s| check_hmac(&hook.secret, &[prefix.as_bytes(), body], s, "Stripe").is_ok())
            {
                Ok(())
            } else if sigs.is_empty() {
                Err("Stripe-Signature has no v1= signature".into())
            } else {
                Err(mismatch("Stripe"))
            }
        }
        Provider::Slack => {
            let ts = v.header("x-slack-request-timestamp").ok_or(
                "missing X-Slack-Request-Timestamp: this tunnel only accepts signed Slack requests",
            )?;
            let sig = v.header("x-slack-signature").ok_or(
                "missing X-Slack-Signature: this tunnel only accepts signed Slack requests",
            )?;
            fresh(ts, now_s, "X-Slack-Request-Timestamp")?;
            let hex_sig = sig
                .trim()
                .strip_prefix("v0=")
                .ok_or("X-Slack-Signature must start with v0=")?;
            let base = format!("v0:{}:", ts.trim());
            check_hmac(&hook.secret, &[base.as_bytes(), body], hex_sig, "Slack")
        }
    }
}

fn mismatch(provider: &str) -> String {
    format!("the {provider} signature does not match the body: check that the webhook secret given to ttf --verify-webhook is the one configured at {provider}")
}

/// A signed timestamp within [`WEBHOOK_TOLERANCE_SECS`] of `now_s`.
fn fresh(ts: &str, now_s: u64, what: &str) -> Result<(), String> {
    let ts: u64 = ts
        .trim()
        .parse()
        .map_err(|_| format!("{what} is not a Unix timestamp"))?;
    if ts.abs_diff(now_s) > WEBHOOK_TOLERANCE_SECS {
        return Err(format!(
            "{what} is {} s away from the edge's clock (at most {WEBHOOK_TOLERANCE_SECS} s): a replayed or delayed request",
            ts.abs_diff(now_s)
        ));
    }
    Ok(())
}

/// HMAC-SHA256 of the concatenated `parts` equals hex `expected`
/// (compared in constant time by `hmac`).
fn check_hmac(secret: &str, parts: &[&[u8]], expected: &str, provider: &str) -> Result<(), String> {
    let expected =
        hex::decode(expected.trim()).map_err(|_| format!("the {provider} signature is not hex"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|e| format!("webhook secret unusable: {e}"))?;
    for p in parts {
        mac.update(p);
    }
    mac.verify_slice(&expected).map_err(|_| mismatch(provider))
}

/// Hex HMAC-SHA256 of the concatenated `parts`: what a sender puts in its
/// signature header (used by tests and tools that sign requests).
pub fn sign_hex(secret: &str, parts: &[&[u8]]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn visitor<'a>(headers: &'a [(String, String)], ip: Option<&'a str>) -> Visitor<'a> {
        Visitor {
            headers,
            query: None,
            client_ip: ip,
        }
    }

    fn enforcer(p: Policies) -> Enforcer {
        Enforcer::new(&p).unwrap()
    }

    #[test]
    fn flags_parse_and_name_their_errors() {
        assert_eq!(
            BasicAuth::parse("al:pa:ss").unwrap(),
            BasicAuth {
                user: "al".into(),
                pass: "pa:ss".into()
            }
        );
        assert!(BasicAuth::parse("nopass")
            .unwrap_err()
            .contains("USER:PASS"));
        assert!(BasicAuth::parse(":x").is_err());
        assert_eq!(
            Webhook::parse("GitHub:s").unwrap().provider,
            Provider::Github
        );
        assert!(Webhook::parse("gitlab:s")
            .unwrap_err()
            .contains("github, stripe or slack"));
        assert!(Webhook::parse("slack:").is_err());
        assert_eq!(
            RateLimit::parse("10/s").unwrap(),
            RateLimit {
                requests: 10,
                per_ms: 1000
            }
        );
        assert_eq!(RateLimit::parse("60/m").unwrap().per_ms, 60_000);
        assert!(RateLimit::parse("0/s").is_err());
        assert!(RateLimit::parse("10").is_err());
        assert!(RateLimit::parse("x/s").is_err());
        assert_eq!(parse_net("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_net("::1").unwrap().to_string(), "::1/128");
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("nope").unwrap_err().contains("CIDR"));
    }

    #[test]
    fn wire_shape_is_stable_and_old_readers_see_nothing() {
        let p = Policies {
            basic_auth: Some(BasicAuth::parse("u:p").unwrap()),
            allow_ip: vec!["127.0.0.1/32".into()],
            webhook: Some(Webhook::parse("github:s").unwrap()),
            rate_limit: Some(RateLimit::parse("5/s").unwrap()),
            jwt: Some(VisitorJwt {
                secret: Some("k".into()),
                jwks: None,
            }),
        };
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"basic_auth":{"user":"u","pass":"p"},"allow_ip":["127.0.0.1/32"],"webhook":{"provider":"github","secret":"s"},"rate_limit":{"requests":5,"per_ms":1000},"jwt":{"secret":"k"}}"#
        );
        assert_eq!(serde_json::from_str::<Policies>(&json).unwrap(), p);
        assert_eq!(
            p.names(),
            ["allow_ip", "rate_limit", "basic_auth", "jwt", "webhook"]
        );
        assert!(Policies::default().is_empty());
        assert_eq!(serde_json::to_string(&Policies::default()).unwrap(), "{}");
        // Secrets never reach logs through Debug.
        assert!(!format!("{p:?}").contains("\"p\""));
    }

    #[test]
    fn allow_ip_v4_v6_mapped_and_unknown() {
        let mut e = enforcer(Policies {
            allow_ip: vec!["203.0.113.0/24".into(), "2001:db8::/32".into()],
            ..Default::default()
        });
        let none = h(&[]);
        for ok in ["203.0.113.9", "2001:db8::1", "::ffff:203.0.113.7"] {
            assert!(e.check(&visitor(&none, Some(ok)), 0).is_ok(), "{ok}");
        }
        for bad in [
            Some("198.51.100.1"),
            Some("2001:db9::1"),
            Some("junk"),
            None,
        ] {
            let r = e.check(&visitor(&none, bad), 0).unwrap_err();
            assert_eq!(r.status, 403, "{bad:?}");
            assert!(String::from_utf8_lossy(&r.body).contains("--allow-ip"));
        }
    }

    #[test]
    fn basic_auth_needs_the_exact_credentials() {
        let mut e = enforcer(Policies {
            basic_auth: Some(BasicAuth::parse("alice:s3cret").unwrap()),
            ..Default::default()
        });
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let good = h(&[("Authorization", &format!("Basic {}", b64("alice:s3cret")))]);
        assert!(e.check(&visitor(&good, None), 0).is_ok());
        for bad in [
            format!("Basic {}", b64("alice:wrong")),
            format!("Basic {}", b64("alice:s3cret2")),
            format!("Bearer {}", b64("alice:s3cret")),
            "Basic !!!".into(),
            "Basicé".into(),
        ] {
            let r = e
                .check(&visitor(&h(&[("authorization", &bad)]), None), 0)
                .unwrap_err();
            assert_eq!(r.status, 401);
            assert!(r
                .headers
                .iter()
                .any(|(n, v)| n == "www-authenticate" && v.starts_with("Basic")));
        }
        assert_eq!(e.check(&visitor(&h(&[]), None), 0).unwrap_err().status, 401);
    }

    #[test]
    fn rate_limit_per_client_refills_and_says_when() {
        let mut e = enforcer(Policies {
            rate_limit: Some(RateLimit::parse("2/s").unwrap()),
            ..Default::default()
        });
        let none = h(&[]);
        let a = visitor(&none, Some("192.0.2.1"));
        let b = visitor(&none, Some("192.0.2.2"));
        assert!(e.check(&a, 1_000).is_ok());
        assert!(e.check(&a, 1_000).is_ok());
        let r = e.check(&a, 1_000).unwrap_err();
        assert_eq!(r.status, 429);
        assert!(r.headers.contains(&("retry-after".into(), "1".into())));
        // Another client has its own bucket.
        assert!(e.check(&b, 1_000).is_ok());
        // Half a second refills one request (2/s).
        assert!(e.check(&a, 1_499).is_err());
        assert!(e.check(&a, 1_500).is_ok());
        assert!(e.check(&a, 1_500).is_err());
    }

    #[test]
    fn rate_limiter_memory_is_bounded() {
        let mut l = RateLimiter::new(RateLimit::parse("1/s").unwrap(), 3);
        for i in 0..10 {
            assert!(l.take(&format!("c{i}"), i).is_ok());
            assert!(l.tracked() <= 3);
        }
        // Full buckets are dropped first: c9 is still limited.
        assert!(l.take("c9", 10).is_err());
    }

    #[test]
    fn visitor_jwt_from_bearer_or_query() {
        let secret = "visitor-secret";
        let token = |exp: u64| {
            let b64 = |s: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
            let head = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
            let body = b64(format!(r#"{{"sub":"v","exp":{exp}}}"#).as_bytes());
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(format!("{head}.{body}").as_bytes());
            format!("{head}.{body}.{}", b64(&mac.finalize().into_bytes()))
        };
        let mut e = enforcer(Policies {
            jwt: Some(VisitorJwt {
                secret: Some(secret.into()),
                jwks: None,
            }),
            ..Default::default()
        });
        let now = 1_700_000_000_000;
        let good = token(1_700_000_100);
        let hdr = h(&[("Authorization", &format!("Bearer {good}"))]);
        assert!(e.check(&visitor(&hdr, None), now).is_ok());
        let q = format!("a=1&token={good}");
        let none = h(&[]);
        let by_query = Visitor {
            headers: &none,
            query: Some(&q),
            client_ip: None,
        };
        assert!(e.check(&by_query, now).is_ok());
        let expired = h(&[("Authorization", &format!("Bearer {}", token(1_600_000_000)))]);
        let r = e.check(&visitor(&expired, None), now).unwrap_err();
        assert_eq!(r.status, 401);
        assert!(String::from_utf8_lossy(&r.body).contains("expired"));
        assert_eq!(e.check(&visitor(&none, None), now).unwrap_err().status, 401);
        assert!(Enforcer::new(&Policies {
            jwt: Some(VisitorJwt::default()),
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn webhook_signatures_of_each_provider() {
        let body = br#"{"action":"opened"}"#;
        let now_ms = 1_700_000_000_000;
        let ts = "1700000000";
        let check = |spec: &str, headers: &[(&str, &str)]| {
            let e = enforcer(Policies {
                webhook: Some(Webhook::parse(spec).unwrap()),
                ..Default::default()
            });
            assert!(e.needs_body());
            let hs = h(headers);
            e.check_body(&visitor(&hs, None), body, now_ms)
                .map_err(|a| String::from_utf8_lossy(&a.body).into_owned())
        };
        let gh = format!("sha256={}", sign_hex("s", &[body]));
        assert!(check("github:s", &[("X-Hub-Signature-256", &gh)]).is_ok());
        assert!(check("github:other", &[("X-Hub-Signature-256", &gh)])
            .unwrap_err()
            .contains("does not match"));
        assert!(check("github:s", &[])
            .unwrap_err()
            .contains("missing X-Hub-Signature-256"));
        assert!(check("github:s", &[("x-hub-signature-256", "sha256=zz")])
            .unwrap_err()
            .contains("not hex"));

        let st = format!(
            "t={ts},v1=00,v1={}",
            sign_hex("whsec", &[format!("{ts}.").as_bytes(), body])
        );
        assert!(check("stripe:whsec", &[("Stripe-Signature", &st)]).is_ok());
        assert!(check("stripe:bad", &[("Stripe-Signature", &st)]).is_err());
        let old = format!(
            "t=1600000000,v1={}",
            sign_hex("whsec", &[b"1600000000.", body])
        );
        assert!(check("stripe:whsec", &[("Stripe-Signature", &old)])
            .unwrap_err()
            .contains("replayed"));

        let sl = format!(
            "v0={}",
            sign_hex("sl", &[format!("v0:{ts}:").as_bytes(), body])
        );
        assert!(check(
            "slack:sl",
            &[
                ("X-Slack-Signature", &sl),
                ("X-Slack-Request-Timestamp", ts)
            ]
        )
        .is_ok());
        assert!(check(
            "slack:sl",
            &[
                ("X-Slack-Signature", &sl),
                ("X-Slack-Request-Timestamp", "1700000001")
            ]
        )
        .is_err());
        assert!(check("slack:sl", &[("X-Slack-Signature", &sl)])
            .unwrap_err()
            .contains("X-Slack-Request-Timestamp"));
    }

    #[test]
    fn bad_declarations_are_named() {
        let e = Enforcer::new(&Policies {
            allow_ip: vec!["10.0.0.0/99".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.starts_with("allow_ip"), "{e}");
        let e = Enforcer::new(&Policies {
            jwt: Some(VisitorJwt {
                secret: None,
                jwks: Some("not json".into()),
            }),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.starts_with("jwt"), "{e}");
    }
}
