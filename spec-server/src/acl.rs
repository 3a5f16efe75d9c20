//! Who may publish and subscribe where on the embedded broker (IO-free).
//!
//! Built-in rules, always on: a client with id `C` may publish only to
//! `{prefix}/C/request` and subscribe only to `{prefix}/C/response` and
//! `{prefix}/C/notify/+` (or one notification topic under it). An ACL file
//! (`--acl-file`) adds rules for other topics in mosquitto's `acl_file`
//! style:
//!
//! ```text
//! # comment
//! pattern read devices/%c/#          # every client
//! pattern write telemetry/%u/+       # %u: MQTT username, or the JWT `sub`
//! pattern readwrite tenants/%{tenant_id}/#   # %{claim}: a JWT claim
//! topic read public/#                # clients without a username
//! user alice                         # the `topic` lines below are alice's
//! topic readwrite alice/#
//! pattern deny devices/%c/secret     # deny wins over every allow
//! ```
//!
//! Access is `read` (subscribe), `write` (publish), `readwrite` or `deny`.
//! A rule whose substitution is missing (no username, no such claim) or
//! would not fill one topic level (empty, or holding `/`, `+`, `#`) does
//! not apply, so a crafted username can never widen a rule. A SUBSCRIBE is
//! granted when an allowing rule *covers* its filter (every topic the
//! filter can receive is allowed), and refused when a `deny` rule overlaps
//! it.

use mqtt_session::topic::{covers, matches, overlaps, validate_filter};
use mqttspec_proto::topic::{notify_filter, request_topic, response_topic};
use serde_json::{Map, Value};

/// The connection asking: its client id, MQTT username and verified JWT
/// claims (when JWT auth is on).
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// MQTT client id.
    pub client_id: &'a str,
    /// MQTT username (`None` for anonymous clients).
    pub username: Option<&'a str>,
    /// Verified JWT claims, when the username carried a token.
    pub claims: Option<&'a Map<String, Value>>,
}

impl Identity<'_> {
    /// `%u`: the JWT subject when there is a token, else the username.
    fn user(&self) -> Option<&str> {
        match self.claims {
            Some(claims) => claims.get("sub").and_then(Value::as_str),
            None => self.username,
        }
    }
}

/// What a rule permits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Access {
    fn parse(word: &str) -> Option<Access> {
        Some(match word {
            "read" => Access::Read,
            "write" => Access::Write,
            "readwrite" => Access::ReadWrite,
            "deny" => Access::Deny,
            _ => return None,
        })
    }

    fn allows(self, want: Want) -> bool {
        matches!(
            (self, want),
            (Access::ReadWrite, _) | (Access::Read, Want::Read) | (Access::Write, Want::Write)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Read,
    Write,
}

/// Whom a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Applies {
    /// `pattern`: everyone, with substitutions.
    Everyone,
    /// `topic` before any `user` line: clients without a username.
    Anonymous,
    /// `topic` after `user NAME`: that user (`%u` semantics).
    User(String),
}

#[derive(Debug, Clone)]
struct Rule {
    applies: Applies,
    access: Access,
    topic: String,
}

/// A line of an ACL file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ACL line {line}: {message}")]
pub struct AclError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong and how to write it.
    pub message: String,
}

/// The rules of one server.
#[derive(Debug, Clone)]
pub struct Acl {
    prefix: String,
    rules: Vec<Rule>,
}

impl Acl {
    /// The built-in rules only.
    pub fn new(prefix: &str) -> Acl {
        Acl {
            prefix: prefix.to_string(),
            rules: Vec::new(),
        }
    }

    /// The built-in rules plus those of an ACL file's `text`.
    pub fn parse(prefix: &str, text: &str) -> Result<Acl, AclError> {
        let mut acl = Acl::new(prefix);
        let mut user: Option<String> = None;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |message: String| AclError {
                line: n + 1,
                message,
            };
            let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let rest = rest.trim();
            match keyword {
                "user" if !rest.is_empty() => user = Some(rest.to_string()),
                "pattern" | "topic" => {
                    let mut words = rest.split_whitespace();
                    let first = words.next();
                    // mosquitto: a missing access word means readwrite.
                    let (access, topic) = match first.and_then(Access::parse) {
                        Some(access) => (access, words.next()),
                        None => (Access::ReadWrite, first),
                    };
                    let (Some(topic), None) = (topic, words.next()) else {
                        return Err(err(format!(
                            "{keyword} needs one topic: `{keyword} [read|write|readwrite|deny] <topic>`"
                        )));
                    };
                    if validate_filter(&topic.replace("%c", "c").replace("%u", "u")).is_err()
                        && !topic.contains("%{")
                    {
                        return Err(err(format!("{topic:?} is not a valid topic filter")));
                    }
                    let applies = match (keyword, &user) {
                        ("pattern", _) => Applies::Everyone,
                        (_, Some(name)) => Applies::User(name.clone()),
                        (_, None) => Applies::Anonymous,
                    };
                    acl.rules.push(Rule {
                        applies,
                        access,
                        topic: topic.to_string(),
                    });
                }
                _ => {
                    return Err(err(format!(
                    "unknown line {line:?}: expected `pattern`, `topic`, `user` or a `#` comment"
                )))
                }
            }
        }
        Ok(acl)
    }

    /// May `who` publish on `topic`?
    pub fn may_publish(&self, who: &Identity, topic: &str) -> bool {
        if topic == request_topic(&self.prefix, who.client_id) {
            return !self.denied(who, |rule| matches(rule, topic));
        }
        self.decide(who, Want::Write, |rule| matches(rule, topic))
    }

    /// May `who` subscribe to `filter`?
    pub fn may_subscribe(&self, who: &Identity, filter: &str) -> bool {
        if validate_filter(filter).is_err() {
            return false;
        }
        let own = [
            response_topic(&self.prefix, who.client_id),
            notify_filter(&self.prefix, who.client_id),
        ];
        if own.iter().any(|pattern| covers(pattern, filter)) {
            return !self.denied(who, |rule| overlaps(rule, filter));
        }
        if self.denied(who, |rule| overlaps(rule, filter)) {
            return false;
        }
        self.decide(who, Want::Read, |rule| covers(rule, filter))
    }

    fn decide(&self, who: &Identity, want: Want, hit: impl Fn(&str) -> bool) -> bool {
        !self.denied(who, &hit)
            && self
                .applicable(who)
                .any(|(access, topic)| access.allows(want) && hit(&topic))
    }

    fn denied(&self, who: &Identity, hit: impl Fn(&str) -> bool) -> bool {
        self.applicable(who)
            .any(|(access, topic)| access == Access::Deny && hit(&topic))
    }

    /// The rules that apply to `who`, with their substitutions made.
    fn applicable<'a>(&'a self, who: &'a Identity) -> impl Iterator<Item = (Access, String)> + 'a {
        self.rules.iter().filter_map(move |rule| {
            let applies = match &rule.applies {
                Applies::Everyone => true,
                Applies::Anonymous => who.username.is_none(),
                Applies::User(name) => who.user() == Some(name.as_str()),
            };
            if !applies {
                return None;
            }
            Some((rule.access, substitute(&rule.topic, who)?))
        })
    }
}

/// `topic` with `%c`, `%u` and `%{claim}` replaced, or `None` when a value
/// is missing or would not fill exactly one topic level.
fn substitute(topic: &str, who: &Identity) -> Option<String> {
    let level =
        |v: &str| (!v.is_empty() && !v.contains(['/', '+', '#', '\0'])).then(|| v.to_string());
    let mut out = String::with_capacity(topic.len());
    let mut rest = topic;
    while let Some(at) = rest.find('%') {
        out.push_str(rest.get(..at)?);
        let after = rest.get(at + 1..)?;
        let (value, used) = if let Some(r) = after.strip_prefix('c') {
            (level(who.client_id)?, r)
        } else if let Some(r) = after.strip_prefix('u') {
            (level(who.user()?)?, r)
        } else if let Some(r) = after.strip_prefix('{') {
            let (name, r) = r.split_once('}')?;
            let claim = match who.claims?.get(name)? {
                Value::String(s) => level(s)?,
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            (claim, r)
        } else {
            ("%".to_string(), after)
        };
        out.push_str(&value);
        rest = used;
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn who<'a>(client_id: &'a str, username: Option<&'a str>) -> Identity<'a> {
        Identity {
            client_id,
            username,
            claims: None,
        }
    }

    #[test]
    fn built_in_rules_isolate_clients() {
        let acl = Acl::new("spec");
        let a = who("a", None);
        assert!(acl.may_publish(&a, "spec/a/request"));
        assert!(!acl.may_publish(&a, "spec/b/request"));
        assert!(!acl.may_publish(&a, "spec/a/response"));
        assert!(!acl.may_publish(&a, "spec/a/notify/s1"));
        assert!(acl.may_subscribe(&a, "spec/a/response"));
        assert!(acl.may_subscribe(&a, "spec/a/notify/+"));
        assert!(acl.may_subscribe(&a, "spec/a/notify/s1"));
        assert!(acl.may_subscribe(&a, "$share/g/spec/a/response"));
        for refused in [
            "spec/#",
            "#",
            "spec/+/response",
            "spec/b/response",
            "spec/a/#",
            "spec/a/request",
            "spec/a/notify/#",
            "a+b",
        ] {
            assert!(!acl.may_subscribe(&a, refused), "{refused}");
        }
    }

    #[test]
    fn file_rules_add_topics_with_substitutions() {
        let text = "\
# devices
pattern read devices/%c/#
pattern write telemetry/%u/+
pattern readwrite tenants/%{tenant_id}/#
topic read public/#
user alice
topic readwrite alice/#
pattern deny devices/%c/secret
";
        let acl = Acl::parse("spec", text).unwrap();
        let d1 = who("d1", Some("bob"));
        assert!(acl.may_subscribe(&d1, "devices/d1/temp"));
        assert!(acl.may_subscribe(&d1, "devices/d1/temp/+"));
        assert!(
            !acl.may_subscribe(&d1, "devices/d1/+"),
            "would receive the denied topic"
        );
        assert!(!acl.may_subscribe(&d1, "devices/d2/temp"));
        assert!(!acl.may_subscribe(&d1, "devices/d1/#"), "overlaps the deny");
        assert!(!acl.may_subscribe(&d1, "devices/d1/secret"));
        assert!(acl.may_publish(&d1, "telemetry/bob/x"));
        assert!(!acl.may_publish(&d1, "telemetry/alice/x"));
        assert!(
            !acl.may_subscribe(&d1, "public/news"),
            "topic lines before `user` are anonymous"
        );
        assert!(acl.may_subscribe(&who("anon", None), "public/news"));
        assert!(acl.may_publish(&who("x", Some("alice")), "alice/notes"));
        assert!(!acl.may_publish(&d1, "alice/notes"));
        let claims = json!({"sub": "carol", "tenant_id": 7})
            .as_object()
            .cloned()
            .unwrap();
        let jwt = Identity {
            client_id: "c9",
            username: Some("eyJ...token"),
            claims: Some(&claims),
        };
        assert!(acl.may_subscribe(&jwt, "tenants/7/x"));
        assert!(!acl.may_subscribe(&jwt, "tenants/8/x"));
        assert!(
            acl.may_publish(&jwt, "telemetry/carol/t"),
            "%u is the JWT sub"
        );
    }

    #[test]
    fn crafted_values_never_widen_a_rule() {
        let acl = Acl::parse("spec", "pattern readwrite home/%u/#").unwrap();
        for name in ["+", "#", "a/b", ""] {
            assert!(
                !acl.may_subscribe(&who("c", Some(name)), "home/#"),
                "{name:?}"
            );
            assert!(
                !acl.may_publish(&who("c", Some(name)), "home/x/y"),
                "{name:?}"
            );
        }
        assert!(!acl.may_publish(&who("c", None), "home/c/y"));
    }

    #[test]
    fn deny_lines_reach_the_built_in_topics() {
        let acl = Acl::parse("spec", "pattern deny spec/%c/notify/+").unwrap();
        assert!(!acl.may_subscribe(&who("a", None), "spec/a/notify/+"));
        assert!(acl.may_subscribe(&who("a", None), "spec/a/response"));
    }

    #[test]
    fn bad_lines_are_named() {
        let e = Acl::parse("spec", "pattern read a/b\nallow all").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("expected `pattern`"), "{e}");
        let e = Acl::parse("spec", "topic read a#").unwrap_err();
        assert!(e.message.contains("not a valid topic filter"), "{e}");
        let e = Acl::parse("spec", "pattern read").unwrap_err();
        assert!(e.message.contains("needs one topic"), "{e}");
        assert!(
            Acl::parse("spec", "topic public/#").is_ok(),
            "readwrite by default"
        );
    }
}
