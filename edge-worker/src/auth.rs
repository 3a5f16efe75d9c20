//! Control-socket authentication: builds the JWT configuration from the
//! worker's settings (`JWT_SECRET`, `JWKS` as JSON or an https URL,
//! `REQUIRE_AUTH`, `JWT_ISSUER`, `JWT_AUDIENCE`) and checks the token of a
//! forwarder's upgrade request. The checks themselves live in
//! `jwt_auth`.

use jwt_auth::{token_from, AuthConfig, AuthError};
use serde_json::{Map, Value};
use worker::{Date, Env, Fetch, Request, Url};

use crate::config::setting;

/// The JWKS setting: inline JSON, or fetched when it is a URL.
async fn jwks(env: &Env) -> Result<Option<String>, AuthError> {
    let Some(value) = setting(env, "JWKS") else {
        return Ok(None);
    };
    if !(value.starts_with("https://") || value.starts_with("http://")) {
        return Ok(Some(value));
    }
    let url: Url = value
        .parse()
        .map_err(|e| AuthError::Config(format!("JWKS URL {value:?} is invalid: {e}")))?;
    let mut resp = Fetch::Url(url)
        .send()
        .await
        .map_err(|e| AuthError::Config(format!("cannot fetch JWKS from {value}: {e}")))?;
    if resp.status_code() != 200 {
        return Err(AuthError::Config(format!(
            "JWKS URL {value} answered {}",
            resp.status_code()
        )));
    }
    resp.text()
        .await
        .map(Some)
        .map_err(|e| AuthError::Config(format!("cannot read JWKS from {value}: {e}")))
}

/// Check the control request's token when auth is configured: `Ok(None)`
/// when auth is off, `Ok(Some(claims))` when the token is good.
pub async fn check(env: &Env, req: &Request) -> Result<Option<Map<String, Value>>, AuthError> {
    let require = setting(env, "REQUIRE_AUTH").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let config = AuthConfig::new(
        setting(env, "JWT_SECRET").as_deref(),
        jwks(env).await?.as_deref(),
        require,
        setting(env, "JWT_ISSUER").as_deref(),
        setting(env, "JWT_AUDIENCE").as_deref(),
    )?;
    if !config.enabled() {
        return Ok(None);
    }
    let authorization = req.headers().get("authorization").ok().flatten();
    let query = req.url().ok().and_then(|u| u.query().map(str::to_string));
    let token = token_from(authorization.as_deref(), query.as_deref());
    config
        .verify(token.as_deref(), Date::now().as_millis() / 1000)
        .map(Some)
}
