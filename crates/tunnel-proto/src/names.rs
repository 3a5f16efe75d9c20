//! Requested tunnel names: who may ask for a name, and when a request for
//! a name that is already held is refused.
//!
//! A forwarder asks for a name with the [`NAME_HEADER`] on its
//! control-socket upgrade (the Durable Object is chosen by name before the
//! first frame, so the request cannot wait for `ready`). With auth off
//! (local development) any free name is granted; with auth on the token
//! must list it. A live tunnel never changes hands unless the new socket
//! proves it is the same holder: the same token subject (or, see
//! [`crate::v2::check_resume`], the resume token).

use serde_json::{Map, Value};

use crate::route::{is_tunnel_id, TUNNEL_ID_LEN};

/// Header by which a forwarder asks for a tunnel name on the control-socket
/// upgrade.
pub const NAME_HEADER: &str = "x-tunnel-name";

/// JWT claim listing the names a token may hold (`"*"`: any name).
pub const NAMES_CLAIM: &str = "tunnels";

/// JWT claim naming the one name a token may hold.
pub const NAME_CLAIM: &str = "tunnel";

/// Check the syntax of a requested name; the error says what is expected.
pub fn parse_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if is_tunnel_id(name) {
        Ok(name.to_string())
    } else {
        Err(format!(
            "invalid tunnel name {name:?}: names are exactly {TUNNEL_ID_LEN} characters of a-z and 0-9"
        ))
    }
}

/// Whether a forwarder with token `claims` (`None`: auth is off) may hold
/// `name`. `Err((status, reason))` for the upgrade answer.
pub fn check_allowed(claims: Option<&Map<String, Value>>, name: &str) -> Result<(), (u16, String)> {
    let Some(claims) = claims else {
        return Ok(());
    };
    let listed = claims
        .get(NAMES_CLAIM)
        .and_then(Value::as_array)
        .is_some_and(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .any(|n| n == "*" || n == name)
        });
    let single = claims.get(NAME_CLAIM).and_then(Value::as_str) == Some(name);
    if listed || single {
        Ok(())
    } else {
        Err((
            403,
            format!(
                "the token does not allow the tunnel name {name:?}: list it in the token's \"{NAMES_CLAIM}\" claim (or \"{NAME_CLAIM}\"), or connect without --name"
            ),
        ))
    }
}

/// Whether a socket asking for `name` with token subject `subject` may
/// displace the live holder whose subject is `holder`: only the same
/// subject may (a forwarder that restarted before the edge noticed the old
/// socket drop). `Err((409, reason))` otherwise.
pub fn check_takeover(
    name: &str,
    holder: Option<&str>,
    subject: Option<&str>,
) -> Result<(), (u16, String)> {
    match (holder, subject) {
        (Some(h), Some(s)) if !h.is_empty() && h == s => Ok(()),
        _ => Err((
            409,
            format!(
                "the tunnel name {name:?} is held by another connected forwarder; stop it or wait until it disconnects"
            ),
        )),
    }
}

/// The token subject (`sub`), if any.
pub fn subject(claims: Option<&Map<String, Value>>) -> Option<String> {
    claims?.get("sub")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn names_follow_the_tunnel_id_syntax() {
        assert_eq!(parse_name(" demodash0001 ").unwrap(), "demodash0001");
        for bad in [
            "",
            "short",
            "UPPERCASE001",
            "demo-dash-01",
            "_tunnel00000",
            "demodash00012",
        ] {
            let e = parse_name(bad).unwrap_err();
            assert!(e.contains("12 characters"), "{bad}: {e}");
        }
    }

    #[test]
    fn auth_off_allows_any_name() {
        assert!(check_allowed(None, "demodash0001").is_ok());
    }

    #[test]
    fn tokens_must_list_the_name() {
        let name = "demodash0001";
        let listed = claims(json!({"sub": "ci", "tunnels": ["other0000001", name]}));
        assert!(check_allowed(Some(&listed), name).is_ok());
        assert!(check_allowed(Some(&claims(json!({"tunnels": ["*"]}))), name).is_ok());
        assert!(check_allowed(Some(&claims(json!({"tunnel": name}))), name).is_ok());
        for refused in [
            json!({"sub": "ci"}),
            json!({"tunnels": ["other0000001"]}),
            json!({"tunnels": "*"}),
            json!({"tunnel": "other0000001"}),
        ] {
            let (status, reason) = check_allowed(Some(&claims(refused)), name).unwrap_err();
            assert_eq!(status, 403);
            assert!(reason.contains("tunnels"), "{reason}");
        }
    }

    #[test]
    fn only_the_same_subject_takes_over_a_live_name() {
        let name = "demodash0001";
        assert!(check_takeover(name, Some("alice"), Some("alice")).is_ok());
        for (holder, subject) in [
            (Some("alice"), Some("mallory")),
            (None, None),
            (Some(""), Some("")),
            (None, Some("alice")),
            (Some("alice"), None),
        ] {
            let (status, reason) = check_takeover(name, holder, subject).unwrap_err();
            assert_eq!(status, 409);
            assert!(reason.contains("held by another"), "{reason}");
        }
    }

    #[test]
    fn subject_is_read_from_sub() {
        assert_eq!(
            subject(Some(&claims(json!({"sub": "ci"})))).as_deref(),
            Some("ci")
        );
        assert_eq!(subject(Some(&claims(json!({"sub": 7})))), None);
        assert_eq!(subject(None), None);
    }
}
