//! Opt-in JWT auth hook: the client's MQTT username carries a JWT, checked
//! with an HS256 secret or RS256 keys from a JWKS document. Verified claims
//! go to `HookContext::claims` for later hooks (e.g. [`crate::tenant`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use mqttspec_proto::ErrorCode;
use ring::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::hooks::{Hook, HookContext, HookError, HookPoint};

/// One RS256 key of a JWKS document.
struct RsaKey {
    kid: Option<String>,
    n: Vec<u8>,
    e: Vec<u8>,
}

/// How tokens are verified.
enum Keys {
    Hs256(Vec<u8>),
    Rs256(Vec<RsaKey>),
}

/// The JWT auth hook.
pub struct JwtAuth {
    keys: Keys,
    leeway_secs: i64,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

fn auth_error(message: impl Into<String>) -> HookError {
    HookError {
        code: ErrorCode::AuthError,
        message: message.into(),
    }
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, HookError> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| auth_error(format!("token {what} is not base64url")))
}

impl JwtAuth {
    /// Tokens signed with HS256 and `secret`.
    pub fn hs256(secret: impl Into<Vec<u8>>) -> Self {
        JwtAuth {
            keys: Keys::Hs256(secret.into()),
            leeway_secs: 30,
        }
    }

    /// Tokens signed with RS256 by one of the RSA keys of a JWKS document.
    pub fn from_jwks(jwks_json: &str) -> anyhow::Result<Self> {
        let jwks: Jwks = serde_json::from_str(jwks_json)
            .map_err(|e| anyhow::anyhow!("JWKS is not {{\"keys\": [...]}}: {e}"))?;
        let mut keys = Vec::new();
        for key in jwks.keys.into_iter().filter(|k| k.kty == "RSA") {
            let (Some(n), Some(e)) = (key.n, key.e) else {
                anyhow::bail!("JWKS RSA key {:?} lacks n or e", key.kid);
            };
            keys.push(RsaKey {
                kid: key.kid,
                n: URL_SAFE_NO_PAD.decode(n.trim_end_matches('='))?,
                e: URL_SAFE_NO_PAD.decode(e.trim_end_matches('='))?,
            });
        }
        anyhow::ensure!(!keys.is_empty(), "JWKS has no RSA key");
        Ok(JwtAuth {
            keys: Keys::Rs256(keys),
            leeway_secs: 30,
        })
    }

    /// Verify `token` and return its claims.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, HookError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(auth_error("token is not a JWT (header.payload.signature)"));
        };
        let header: Value = serde_json::from_slice(&b64(header, "header")?)
            .map_err(|_| auth_error("token header is not JSON"))?;
        let signed = &token[..header_len(token)];
        let signature = b64(signature, "signature")?;
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        match (&self.keys, alg) {
            (Keys::Hs256(secret), "HS256") => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
                ring::hmac::verify(&key, signed.as_bytes(), &signature)
                    .map_err(|_| auth_error("token signature is invalid"))?;
            }
            (Keys::Rs256(keys), "RS256") => {
                let kid = header.get("kid").and_then(Value::as_str);
                let ok = keys
                    .iter()
                    .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
                    .any(|k| {
                        RsaPublicKeyComponents { n: &k.n, e: &k.e }
                            .verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
                            .is_ok()
                    });
                if !ok {
                    return Err(auth_error("token signature is invalid"));
                }
            }
            (_, alg) => {
                return Err(auth_error(format!(
                    "token algorithm {alg:?} is not accepted"
                )))
            }
        }
        let claims: Map<String, Value> = serde_json::from_slice(&b64(payload, "payload")?)
            .map_err(|_| auth_error("token payload is not a JSON object"))?;
        let now = crate::clock::unix_seconds();
        if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
            if now > exp + self.leeway_secs {
                return Err(auth_error("token has expired"));
            }
        }
        if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64) {
            if now + self.leeway_secs < nbf {
                return Err(auth_error("token is not valid yet"));
            }
        }
        Ok(claims)
    }
}

/// Length of `header.payload` (the signed part) of a three-part token.
fn header_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

impl Hook for JwtAuth {
    fn call(&self, point: HookPoint, ctx: &mut HookContext) -> Result<(), HookError> {
        if !matches!(point, HookPoint::BeforeConnect | HookPoint::BeforeHandle) {
            return Ok(());
        }
        let Some(token) = ctx.username.as_deref().filter(|u| !u.is_empty()) else {
            return Err(HookError::unauthorized(
                "no credentials: connect with a JWT as MQTT username",
            ));
        };
        ctx.claims = self.verify(token)?;
        Ok(())
    }
}

/// Sign `claims` with HS256 (for tests and tools).
pub fn sign_hs256(secret: &[u8], claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{payload}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hs256_tokens_verify_and_bad_ones_are_refused() {
        let auth = JwtAuth::hs256(b"s3cret".to_vec());
        let token = sign_hs256(b"s3cret", &json!({"sub": "u1", "tenant_id": 7}));
        assert_eq!(auth.verify(&token).unwrap()["tenant_id"], 7);
        let forged = sign_hs256(b"other", &json!({"sub": "u1"}));
        assert_eq!(auth.verify(&forged).unwrap_err().code, ErrorCode::AuthError);
        let expired = sign_hs256(b"s3cret", &json!({"exp": 1000}));
        assert!(auth
            .verify(&expired)
            .unwrap_err()
            .message
            .contains("expired"));
        assert!(auth.verify("not-a-token").is_err());
        assert!(auth.verify("a.b.c.d").is_err());
        let mut ctx = HookContext::default();
        let err = auth.call(HookPoint::BeforeHandle, &mut ctx).unwrap_err();
        assert_eq!(err.code, ErrorCode::Unauthorized);
        ctx.username = Some(token);
        auth.call(HookPoint::BeforeHandle, &mut ctx).unwrap();
        assert_eq!(ctx.claims["sub"], "u1");
    }

    #[test]
    fn jwks_must_hold_rsa_keys() {
        assert!(JwtAuth::from_jwks(r#"{"keys": []}"#).is_err());
        assert!(JwtAuth::from_jwks(r#"{"keys": [{"kty": "RSA", "kid": "k"}]}"#).is_err());
        let auth = JwtAuth::from_jwks(
            r#"{"keys": [{"kty": "RSA", "kid": "k", "n": "AQAB", "e": "AQAB"}]}"#,
        )
        .unwrap();
        let hs = sign_hs256(b"x", &json!({}));
        assert!(auth.verify(&hs).unwrap_err().message.contains("HS256"));
    }
}
