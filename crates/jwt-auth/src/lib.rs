//! JWT checks shared by the edge worker (control socket) and
//! mqttspec-server (MQTT username): HS256/384/512 with a shared secret,
//! RS256/384/512 with keys from a JSON Web Key Set. Signature, algorithm
//! allowlist (never `none`, never an HMAC secret used for an RSA algorithm),
//! `exp` (required), `nbf`, optional `iss`/`aud`. No IO: the caller hands in
//! the token, the configuration and the current time.
//!
//! Signatures are checked by the maintained `jsonwebtoken` crate (its
//! RustCrypto backend, which builds for wasm32). The header is read here
//! first, so that an unknown algorithm (`none`) is named in the refusal, and
//! the time claims are checked here with the caller's clock (jsonwebtoken's
//! own time checks are off: they read the system clock).

// Nothing fed by the network may panic: no slicing or indexing that can be
// out of range or off a char boundary, no unwrap/expect/panic (tests exempt).
#![cfg_attr(
    not(test),
    deny(
        clippy::string_slice,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// Why a token was refused. The edge answers 401 with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing token: send `Authorization: Bearer <JWT>` or `?token=<JWT>`")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("algorithm {0:?} is not accepted here (allowed: {1})")]
    Algorithm(String, String),
    #[error("bad signature: the token was not signed with a key this edge trusts")]
    Signature,
    #[error("token has no `exp` claim; tokens must expire")]
    MissingExp,
    #[error("token expired at {0} (Unix seconds)")]
    Expired(u64),
    #[error("token not valid before {0} (Unix seconds)")]
    NotYetValid(u64),
    #[error("claim `{0}` does not match what this edge expects")]
    Claim(&'static str),
    #[error("auth configuration is invalid: {0}")]
    Config(String),
}

/// `s` trimmed, or `None` when absent or blank.
fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// One RSA public key of the key set.
#[derive(Clone)]
struct RsaKey {
    kid: Option<String>,
    key: DecodingKey,
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaKey").field("kid", &self.kid).finish()
    }
}

/// What the edge accepts. Built from the worker's variables.
#[derive(Clone, Default)]
pub struct AuthConfig {
    hmac_secret: Option<DecodingKey>,
    rsa_keys: Vec<RsaKey>,
    required: bool,
    issuer: Option<String>,
    audience: Option<String>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("hmac_secret", &self.hmac_secret.as_ref().map(|_| "<set>"))
            .field("rsa_keys", &self.rsa_keys)
            .field("required", &self.required)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl AuthConfig {
    /// Configuration from the worker's settings. Auth is on when a secret
    /// or key set is given, or `require` is set (then every token is
    /// refused until keys are configured).
    pub fn new(
        hmac_secret: Option<&str>,
        jwks_json: Option<&str>,
        require: bool,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Result<Self, AuthError> {
        let rsa_keys = match non_empty(jwks_json) {
            Some(json) => parse_jwks(json)?,
            None => Vec::new(),
        };
        Ok(Self {
            hmac_secret: non_empty(hmac_secret).map(|s| DecodingKey::from_secret(s.as_bytes())),
            rsa_keys,
            required: require,
            issuer: non_empty(issuer).map(str::to_string),
            audience: non_empty(audience).map(str::to_string),
        })
    }

    /// Whether tokens are checked at all.
    pub fn enabled(&self) -> bool {
        self.required || self.hmac_secret.is_some() || !self.rsa_keys.is_empty()
    }

    fn allowed(&self) -> Vec<&'static str> {
        let mut algs = Vec::new();
        if self.hmac_secret.is_some() {
            algs.extend(["HS256", "HS384", "HS512"]);
        }
        if !self.rsa_keys.is_empty() {
            algs.extend(["RS256", "RS384", "RS512"]);
        }
        algs
    }

    /// Check `token` at time `now` (Unix seconds); the claims on success.
    pub fn verify(&self, token: Option<&str>, now: u64) -> Result<Map<String, Value>, AuthError> {
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        let mut parts = token.split('.');
        let (Some(h64), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed(
                "expected three dot-separated parts".into(),
            ));
        };
        let header: Value = decode_json(h64, "header")?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::Malformed("header has no `alg`".into()))?;
        let allowed = self.allowed();
        if !allowed.contains(&alg) {
            return Err(AuthError::Algorithm(alg.to_string(), allowed.join(", ")));
        }
        let algorithm = match alg {
            "HS256" => Algorithm::HS256,
            "HS384" => Algorithm::HS384,
            "HS512" => Algorithm::HS512,
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            _ => Algorithm::RS512,
        };
        let kid = header.get("kid").and_then(Value::as_str);
        let keys: Vec<&DecodingKey> = if alg.starts_with("HS") {
            self.hmac_secret.iter().collect()
        } else {
            self.rsa_keys
                .iter()
                .filter(|k| kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
                .map(|k| &k.key)
                .collect()
        };
        let mut validation = Validation::new(algorithm);
        // Time and audience claims are checked below with the caller's clock.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let mut outcome = Err(AuthError::Signature);
        for key in keys {
            match jsonwebtoken::decode::<Value>(token, key, &validation) {
                Ok(data) => {
                    outcome = Ok(data.claims);
                    break;
                }
                Err(e) => {
                    if let Some(refusal) = refusal(e.kind()) {
                        outcome = Err(refusal);
                    }
                }
            }
        }
        let Value::Object(claims) = outcome? else {
            return Err(AuthError::Malformed("claims are not a JSON object".into()));
        };
        self.check_claims(&claims, now)?;
        Ok(claims)
    }

    fn check_claims(&self, claims: &Map<String, Value>, now: u64) -> Result<(), AuthError> {
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .ok_or(AuthError::MissingExp)?;
        if exp + (LEEWAY_SECS as f64) < now as f64 {
            return Err(AuthError::Expired(exp as u64));
        }
        if let Some(nbf) = claims.get("nbf").and_then(Value::as_f64) {
            if nbf > (now + LEEWAY_SECS) as f64 {
                return Err(AuthError::NotYetValid(nbf as u64));
            }
        }
        if let Some(iss) = &self.issuer {
            if claims.get("iss").and_then(Value::as_str) != Some(iss.as_str()) {
                return Err(AuthError::Claim("iss"));
            }
        }
        if let Some(aud) = &self.audience {
            let ok = match claims.get("aud") {
                Some(Value::String(a)) => a == aud,
                Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(aud.as_str())),
                _ => false,
            };
            if !ok {
                return Err(AuthError::Claim("aud"));
            }
        }
        Ok(())
    }
}

/// What a jsonwebtoken failure means here: `None` for a signature that
/// does not match this key (another key may match).
fn refusal(kind: &jsonwebtoken::errors::ErrorKind) -> Option<AuthError> {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidSignature | K::InvalidRsaKey(_) | K::InvalidKeyFormat => None,
        K::Base64(e) => Some(AuthError::Malformed(format!("not base64url: {e}"))),
        K::Json(e) => Some(AuthError::Malformed(format!("not JSON: {e}"))),
        K::Utf8(e) => Some(AuthError::Malformed(format!("not UTF-8: {e}"))),
        K::InvalidToken => Some(AuthError::Malformed("not a JWT".into())),
        K::InvalidAlgorithm | K::InvalidAlgorithmName => Some(AuthError::Signature),
        other => Some(AuthError::Malformed(format!("{other:?}"))),
    }
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, AuthError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| AuthError::Malformed(format!("{what} is not base64url: {e}")))
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str, what: &str) -> Result<T, AuthError> {
    serde_json::from_slice(&b64(part, what)?)
        .map_err(|e| AuthError::Malformed(format!("{what} is not JSON: {e}")))
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

/// RSA keys of a JSON Web Key Set (other key types are skipped).
fn parse_jwks(json: &str) -> Result<Vec<RsaKey>, AuthError> {
    let set: Jwks = serde_json::from_str(json)
        .map_err(|e| AuthError::Config(format!("JWKS is not a JSON Web Key Set: {e}")))?;
    let mut keys = Vec::new();
    for jwk in set.keys.into_iter().filter(|k| k.kty == "RSA") {
        let (Some(n), Some(e)) = (jwk.n, jwk.e) else {
            return Err(AuthError::Config("JWKS RSA key without `n` or `e`".into()));
        };
        let n = b64(&n, "JWKS `n`").map_err(cfg)?;
        let e = b64(&e, "JWKS `e`").map_err(cfg)?;
        if n.len() < 128 || e.is_empty() || e.len() > 8 {
            return Err(AuthError::Config(format!(
                "JWKS RSA key rejected: {}-bit modulus, {}-byte exponent",
                n.len() * 8,
                e.len()
            )));
        }
        let encode = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let key = DecodingKey::from_rsa_components(&encode(&n), &encode(&e))
            .map_err(|e| AuthError::Config(format!("JWKS RSA key rejected: {e}")))?;
        keys.push(RsaKey { kid: jwk.kid, key });
    }
    if keys.is_empty() {
        return Err(AuthError::Config("JWKS holds no RSA key".into()));
    }
    Ok(keys)
}

fn cfg(e: AuthError) -> AuthError {
    AuthError::Config(e.to_string())
}

/// The token of a control-socket request: `Authorization: Bearer <JWT>`
/// first, else the `token` query parameter.
pub fn token_from(authorization: Option<&str>, query: Option<&str>) -> Option<String> {
    if let Some(auth) = authorization {
        // Compared as bytes: a header is network input, and slicing a
        // `str` at byte 7 panics inside a multi-byte character.
        if let Some((scheme, token)) = auth.trim().split_once(' ') {
            let token = token.trim();
            if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() {
                return Some(token.to_string());
            }
        }
    }
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use rsa::pkcs1v15::SigningKey;
    use rsa::signature::{SignatureEncoding, Signer};
    use rsa::traits::PublicKeyParts;
    use rsa::RsaPrivateKey;
    use sha2::{Sha256, Sha384, Sha512};

    const NOW: u64 = 1_700_000_000;

    fn enc(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn unsigned(alg: &str, claims: &Value) -> String {
        format!(
            "{}.{}",
            enc(serde_json::json!({"alg": alg, "typ": "JWT"})
                .to_string()
                .as_bytes()),
            enc(claims.to_string().as_bytes())
        )
    }

    fn hs(alg: &str, secret: &[u8], claims: &Value) -> String {
        let input = unsigned(alg, claims);
        let sig = match alg {
            "HS256" => {
                let mut m =
                    <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(secret).unwrap();
                m.update(input.as_bytes());
                m.finalize().into_bytes().to_vec()
            }
            "HS384" => {
                let mut m =
                    <Hmac<Sha384> as hmac::digest::KeyInit>::new_from_slice(secret).unwrap();
                m.update(input.as_bytes());
                m.finalize().into_bytes().to_vec()
            }
            _ => {
                let mut m =
                    <Hmac<Sha512> as hmac::digest::KeyInit>::new_from_slice(secret).unwrap();
                m.update(input.as_bytes());
                m.finalize().into_bytes().to_vec()
            }
        };
        format!("{input}.{}", enc(&sig))
    }

    fn rs(alg: &str, key: &RsaPrivateKey, claims: &Value) -> String {
        let input = unsigned(alg, claims);
        let sig = match alg {
            "RS256" => SigningKey::<Sha256>::new(key.clone())
                .sign(input.as_bytes())
                .to_vec(),
            "RS384" => SigningKey::<Sha384>::new(key.clone())
                .sign(input.as_bytes())
                .to_vec(),
            _ => SigningKey::<Sha512>::new(key.clone())
                .sign(input.as_bytes())
                .to_vec(),
        };
        format!("{input}.{}", enc(&sig))
    }

    /// A small deterministic RSA key (test speed; real keys are 2048+ bits).
    fn rsa_key() -> RsaPrivateKey {
        let mut rng = TestRng(0x1234_5678_9abc_def0);
        RsaPrivateKey::new(&mut rng, 1024).unwrap()
    }

    /// Deterministic RNG for key generation in tests only.
    struct TestRng(u64);
    impl rsa::rand_core::RngCore for TestRng {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for b in dest {
                *b = self.next_u64() as u8;
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }
    impl rsa::rand_core::CryptoRng for TestRng {}

    fn jwks(key: &RsaPrivateKey) -> String {
        let public = key.to_public_key();
        serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "x": "a", "y": "b"},
            {"kty": "RSA", "kid": "k1", "n": enc(&public.n().to_bytes_be()), "e": enc(&public.e().to_bytes_be())}
        ]})
        .to_string()
    }

    fn good() -> Value {
        serde_json::json!({"sub": "dev", "exp": NOW + 600, "nbf": NOW - 10})
    }

    #[test]
    fn hmac_algorithms_accepted_and_wrong_secret_refused() {
        let cfg = AuthConfig::new(Some("s3cret"), None, false, None, None).unwrap();
        assert!(cfg.enabled());
        for alg in ["HS256", "HS384", "HS512"] {
            let claims = cfg.verify(Some(&hs(alg, b"s3cret", &good())), NOW).unwrap();
            assert_eq!(claims["sub"], "dev");
            assert_eq!(
                cfg.verify(Some(&hs(alg, b"other", &good())), NOW),
                Err(AuthError::Signature)
            );
        }
    }

    #[test]
    fn rsa_algorithms_accepted_wrong_key_refused() {
        let key = rsa_key();
        let other = RsaPrivateKey::new(&mut TestRng(99), 1024).unwrap();
        let cfg = AuthConfig::new(None, Some(&jwks(&key)), false, None, None).unwrap();
        for alg in ["RS256", "RS384", "RS512"] {
            assert!(
                cfg.verify(Some(&rs(alg, &key, &good())), NOW).is_ok(),
                "{alg}"
            );
            assert_eq!(
                cfg.verify(Some(&rs(alg, &other, &good())), NOW),
                Err(AuthError::Signature)
            );
        }
        // An HS token is refused when only RSA keys are configured.
        assert!(matches!(
            cfg.verify(Some(&hs("HS256", b"x", &good())), NOW),
            Err(AuthError::Algorithm(..))
        ));
    }

    #[test]
    fn none_and_unknown_algorithms_refused() {
        let cfg = AuthConfig::new(Some("s"), None, false, None, None).unwrap();
        let none = format!("{}.", unsigned("none", &good()));
        assert!(
            matches!(cfg.verify(Some(&none), NOW), Err(AuthError::Algorithm(a, _)) if a == "none")
        );
        let rs_with_hmac_secret = format!("{}.{}", unsigned("RS256", &good()), enc(b"sig"));
        assert!(matches!(
            cfg.verify(Some(&rs_with_hmac_secret), NOW),
            Err(AuthError::Algorithm(..))
        ));
    }

    #[test]
    fn time_claims() {
        let cfg = AuthConfig::new(Some("s"), None, false, None, None).unwrap();
        let expired = serde_json::json!({"exp": NOW - 3600});
        assert_eq!(
            cfg.verify(Some(&hs("HS256", b"s", &expired)), NOW),
            Err(AuthError::Expired(NOW - 3600))
        );
        let early = serde_json::json!({"exp": NOW + 7200, "nbf": NOW + 3600});
        assert_eq!(
            cfg.verify(Some(&hs("HS256", b"s", &early)), NOW),
            Err(AuthError::NotYetValid(NOW + 3600))
        );
        let no_exp = serde_json::json!({"sub": "x"});
        assert_eq!(
            cfg.verify(Some(&hs("HS256", b"s", &no_exp)), NOW),
            Err(AuthError::MissingExp)
        );
        let skewed = serde_json::json!({"exp": NOW - 5});
        assert!(cfg.verify(Some(&hs("HS256", b"s", &skewed)), NOW).is_ok());
    }

    #[test]
    fn issuer_and_audience() {
        let cfg = AuthConfig::new(Some("s"), None, false, Some("me"), Some("edge")).unwrap();
        let ok = serde_json::json!({"exp": NOW + 60, "iss": "me", "aud": ["x", "edge"]});
        assert!(cfg.verify(Some(&hs("HS256", b"s", &ok)), NOW).is_ok());
        let bad_iss = serde_json::json!({"exp": NOW + 60, "iss": "you", "aud": "edge"});
        assert_eq!(
            cfg.verify(Some(&hs("HS256", b"s", &bad_iss)), NOW),
            Err(AuthError::Claim("iss"))
        );
        let bad_aud = serde_json::json!({"exp": NOW + 60, "iss": "me", "aud": "other"});
        assert_eq!(
            cfg.verify(Some(&hs("HS256", b"s", &bad_aud)), NOW),
            Err(AuthError::Claim("aud"))
        );
    }

    #[test]
    fn malformed_missing_and_config() {
        let cfg = AuthConfig::new(Some("s"), None, false, None, None).unwrap();
        assert_eq!(cfg.verify(None, NOW), Err(AuthError::Missing));
        assert!(matches!(
            cfg.verify(Some("a.b"), NOW),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            cfg.verify(Some("!!.b.c"), NOW),
            Err(AuthError::Malformed(_))
        ));
        assert!(!AuthConfig::new(None, None, false, None, None)
            .unwrap()
            .enabled());
        let required = AuthConfig::new(None, None, true, None, None).unwrap();
        assert!(required.enabled());
        assert!(matches!(
            required.verify(Some(&hs("HS256", b"s", &good())), NOW),
            Err(AuthError::Algorithm(..))
        ));
        assert!(matches!(
            AuthConfig::new(None, Some("{\"keys\":[]}"), false, None, None),
            Err(AuthError::Config(_))
        ));
        assert!(matches!(
            AuthConfig::new(None, Some("nope"), false, None, None),
            Err(AuthError::Config(_))
        ));
    }

    #[test]
    fn token_sources() {
        assert_eq!(token_from(Some("Bearer abc"), None).as_deref(), Some("abc"));
        assert_eq!(
            token_from(Some("bearer  abc "), Some("token=q")).as_deref(),
            Some("abc")
        );
        assert_eq!(token_from(None, Some("x=1&token=q")).as_deref(), Some("q"));
        assert_eq!(token_from(Some("Basic x"), None), None);
        assert_eq!(token_from(None, None), None);
        assert_eq!(
            token_from(Some("Bearer "), Some("token=q")).as_deref(),
            Some("q")
        );
    }

    #[test]
    fn multi_byte_authorization_headers_do_not_panic() {
        // Byte 7 falls inside `é` (the panic of issue 14).
        assert_eq!(token_from(Some("abcdef\u{e9}xyz"), None), None);
        assert_eq!(token_from(Some("\u{e9}\u{e9}\u{e9}\u{e9}"), None), None);
        assert_eq!(
            token_from(Some("Bearer \u{e9}t"), None).as_deref(),
            Some("\u{e9}t")
        );
    }
}
