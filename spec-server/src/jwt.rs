//! Opt-in JWT auth hook: the client's MQTT username carries a JWT, checked
//! with an HS256 secret or RS256 keys from a JWKS document. Verification is
//! the project's one JWT implementation, `jwt_auth` (the jsonwebtoken crate
//! underneath: signature, algorithm allowlist, required `exp`, `nbf`).
//! Verified claims go to
//! `HookContext::claims` for later hooks (e.g. [`crate::tenant`]).
//!
//! The token binds the MQTT client id: its `client_id` claim names the id
//! (`"dash-7"`), or a prefix ending in `*` (`"alice-*"`, or `"*"` for any).
//! A token without the claim, or a connection with another id, is refused
//! at CONNECT, so one user's token cannot act under another client's id.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_auth::AuthConfig;
use mqttspec_proto::ErrorCode;
use serde_json::{Map, Value};

use crate::hooks::{Hook, HookContext, HookError, HookPoint};

/// The JWT auth hook.
pub struct JwtAuth {
    config: AuthConfig,
}

impl JwtAuth {
    /// Tokens signed with HMAC (HS256/384/512) and `secret`.
    pub fn hs256(secret: &str) -> anyhow::Result<Self> {
        let config = AuthConfig::new(Some(secret), None, true, None, None)?;
        Ok(JwtAuth { config })
    }

    /// Tokens signed with RS256/384/512 by a key of a JWKS document.
    pub fn from_jwks(jwks_json: &str) -> anyhow::Result<Self> {
        let config = AuthConfig::new(None, Some(jwks_json), true, None, None)?;
        Ok(JwtAuth { config })
    }

    /// Verify `token` now and return its claims.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, HookError> {
        let now = u64::try_from(crate::clock::unix_seconds()).unwrap_or(0);
        self.config.verify(Some(token), now).map_err(|e| HookError {
            code: ErrorCode::AuthError,
            message: format!("token refused: {e}"),
        })
    }
}

/// The claim binding a token to MQTT client ids.
pub const CLIENT_ID_CLAIM: &str = "client_id";

/// Does the token's `client_id` claim allow `client_id`?
pub fn check_client_id_claim(
    claims: &Map<String, Value>,
    client_id: &str,
) -> Result<(), HookError> {
    let Some(bound) = claims.get(CLIENT_ID_CLAIM).and_then(Value::as_str) else {
        return Err(HookError {
            code: ErrorCode::AuthError,
            message: format!(
                "token refused: no {CLIENT_ID_CLAIM:?} claim; add \"client_id\": \"<id>\" (or \"<prefix>*\") to bind it to the MQTT client id"
            ),
        });
    };
    let allowed = match bound.strip_suffix('*') {
        Some(prefix) => client_id.starts_with(prefix),
        None => client_id == bound,
    };
    if allowed {
        Ok(())
    } else {
        Err(HookError {
            code: ErrorCode::AuthError,
            message: format!(
                "token refused: it is bound to client id {bound:?}, not {client_id:?}"
            ),
        })
    }
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
        let claims = self.verify(token)?;
        check_client_id_claim(&claims, &ctx.client_id)?;
        ctx.claims = claims;
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

    const LATER: i64 = 4_000_000_000;
    /// Modulus of a throwaway 2048-bit RSA key.
    const RSA_N: &str = "uYD_LiTCQ18_OeN36dpzEkcBOlUYl7QYFwrLVgAHgI5UIKYLwiXSgl_lwmCxw-_AlJPbJ2QjSk7UcTuwTvBWoTQxNSDRs8p-Xu6T9HmtqSyazxM9fNULf344UgjZVarlQQn8f3Q5uh5Yo4u2QLxz_KJrvJ2Rc1JpDCTUcxoUfE0pHtxtrvXTgJWYv3aKmMrbbrZmbw9Oxa3JU1OcwckPJxdc1Iy3kcVayiZMMZj26sOMF04O1QMANGPIVp4Z_szoSp0LADy1NX9UfgVZlfIOM1HhUESYiE-sZtlQHxgRTk36CXJtT3E40jDFSgneaPEF91itwS2Gmr7wwmKWl6-ynw";

    #[test]
    fn hs256_tokens_verify_and_bad_ones_are_refused() {
        let auth = JwtAuth::hs256("s3cret").unwrap();
        let token = sign_hs256(
            b"s3cret",
            &json!({"sub": "u1", "tenant_id": 7, "exp": LATER}),
        );
        assert_eq!(auth.verify(&token).unwrap()["tenant_id"], 7);
        let forged = sign_hs256(b"other", &json!({"sub": "u1", "exp": LATER}));
        assert_eq!(auth.verify(&forged).unwrap_err().code, ErrorCode::AuthError);
        let expired = sign_hs256(b"s3cret", &json!({"exp": 1000}));
        assert!(auth
            .verify(&expired)
            .unwrap_err()
            .message
            .contains("expired"));
        let eternal = sign_hs256(b"s3cret", &json!({"sub": "u1"}));
        assert!(auth.verify(&eternal).is_err(), "tokens must expire");
        assert!(auth.verify("not-a-token").is_err());
        let mut ctx = HookContext {
            client_id: "c1".into(),
            ..HookContext::default()
        };
        let err = auth.call(HookPoint::BeforeHandle, &mut ctx).unwrap_err();
        assert_eq!(err.code, ErrorCode::Unauthorized);
        ctx.username = Some(token);
        let unbound = auth.call(HookPoint::BeforeHandle, &mut ctx).unwrap_err();
        assert!(
            unbound.message.contains("no \"client_id\" claim"),
            "{unbound}"
        );
        let bound = sign_hs256(
            b"s3cret",
            &json!({"sub": "u1", "client_id": "c1", "exp": LATER}),
        );
        ctx.username = Some(bound);
        auth.call(HookPoint::BeforeHandle, &mut ctx).unwrap();
        assert_eq!(ctx.claims["sub"], "u1");
    }

    #[test]
    fn the_client_id_claim_binds_ids() {
        let claims = |v: Value| v.as_object().cloned().unwrap();
        assert!(check_client_id_claim(&claims(json!({"client_id": "c1"})), "c1").is_ok());
        assert!(check_client_id_claim(&claims(json!({"client_id": "c1"})), "c2").is_err());
        assert!(check_client_id_claim(&claims(json!({"client_id": "c1"})), "c1x").is_err());
        assert!(check_client_id_claim(&claims(json!({"client_id": "dash-*"})), "dash-7").is_ok());
        assert!(check_client_id_claim(&claims(json!({"client_id": "dash-*"})), "dask-7").is_err());
        assert!(check_client_id_claim(&claims(json!({"client_id": "*"})), "any").is_ok());
        assert!(check_client_id_claim(&claims(json!({"client_id": 7})), "7").is_err());
        assert!(check_client_id_claim(&claims(json!({})), "c1").is_err());
    }

    #[test]
    fn jwks_refuses_hmac_tokens() {
        assert!(JwtAuth::from_jwks("not json").is_err());
        assert!(
            JwtAuth::from_jwks(r#"{"keys": []}"#).is_err(),
            "a key set needs an RSA key"
        );
        let jwks = json!({"keys": [{"kty": "RSA", "kid": "k1", "e": "AQAB", "n": RSA_N}]});
        let auth = JwtAuth::from_jwks(&jwks.to_string()).unwrap();
        let hs = sign_hs256(b"x", &json!({"exp": LATER}));
        assert!(auth.verify(&hs).is_err());
    }
}
