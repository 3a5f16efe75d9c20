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

/// How the last holder of a tunnel left it, as the Durable Object stores it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Released {
    /// When its socket ended (Unix ms).
    pub at_ms: u64,
    /// Its token subject, when auth was on.
    #[serde(default)]
    pub subject: Option<String>,
    /// It said goodbye (close 1000 from `ttf` on Ctrl-C): nothing to resume,
    /// the name is free at once.
    #[serde(default)]
    pub clean: bool,
}

/// Whether a socket asking for `name` (no resume token, token subject
/// `subject`) may take a tunnel whose forwarder is gone. A holder that
/// dropped without saying goodbye may come back with its resume token
/// within [`crate::v2::RESUME_GRACE_MS`]; until then the name stays its
/// own, except for the same subject. `Err((409, reason))` otherwise.
pub fn check_released(
    name: &str,
    released: Option<&Released>,
    subject: Option<&str>,
    now_ms: u64,
) -> Result<(), (u16, String)> {
    let Some(released) = released.filter(|r| !r.clean) else {
        return Ok(());
    };
    let elapsed = now_ms.saturating_sub(released.at_ms);
    if elapsed > crate::v2::RESUME_GRACE_MS {
        return Ok(());
    }
    match (released.subject.as_deref(), subject) {
        (Some(h), Some(s)) if !h.is_empty() && h == s => Ok(()),
        _ => Err((
            409,
            format!(
                "the tunnel name {name:?} belongs to a forwarder that disconnected {} s ago and may resume it for {} s more; it needs that forwarder's resume token (a restarted `ttf --name` keeps it in its state file) or the same token subject",
                elapsed / 1000,
                (crate::v2::RESUME_GRACE_MS - elapsed).div_ceil(1000)
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
    fn a_dropped_holder_keeps_its_name_for_the_grace_period() {
        let name = "demodash0001";
        let grace = crate::v2::RESUME_GRACE_MS;
        let dropped = Released {
            at_ms: 1_000,
            subject: Some("alice".into()),
            clean: false,
        };
        assert!(check_released(name, None, None, 5).is_ok(), "never held");
        for (subject, now) in [
            (None, 1_000),
            (Some("mallory"), 2_000),
            (Some(""), 1_000 + grace),
        ] {
            let (status, reason) = check_released(name, Some(&dropped), subject, now).unwrap_err();
            assert_eq!(status, 409);
            assert!(reason.contains("resume token"), "{reason}");
        }
        assert!(check_released(name, Some(&dropped), Some("alice"), 2_000).is_ok());
        assert!(check_released(name, Some(&dropped), None, 1_001 + grace).is_ok());
        let anonymous = Released {
            subject: None,
            ..dropped.clone()
        };
        assert!(check_released(name, Some(&anonymous), None, 2_000).is_err());
        let clean = Released {
            clean: true,
            ..dropped
        };
        assert!(check_released(name, Some(&clean), Some("mallory"), 2_000).is_ok());
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
