//! Topic names and topic filters: validation and local matching with the
//! `+` and `#` wildcards, `$`-topics and `$share/` shared subscriptions.
//!
//! Rules (MQTT 3.1.1 §4.7, MQTT 5 §4.7-4.8):
//! - a topic name is non-empty and holds no wildcard;
//! - `+` fills exactly one whole level, `#` is alone in the last level and
//!   also matches the parent level (`a/#` matches `a`);
//! - a filter starting with a wildcard never matches a topic starting with
//!   `$` (`#` does not match `$SYS/x`);
//! - `$share/<group>/<filter>` is matched by its inner `<filter>`, since the
//!   broker delivers shared messages under their real topic; a malformed
//!   shared filter matches nothing.

/// Why a topic name or filter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    /// Empty topic name or filter.
    Empty,
    /// A wildcard (`+` or `#`) inside a topic name.
    WildcardInTopic,
    /// `+` or `#` not occupying a whole level, or `#` not in the last level.
    MisplacedWildcard,
    /// `$share/` without a group name and a filter.
    BadSharedFilter,
    /// A NUL character (forbidden by the spec).
    NulCharacter,
}

impl TopicError {
    /// Human readable explanation, suitable for an error message.
    pub fn message(self) -> &'static str {
        match self {
            TopicError::Empty => "topic must not be empty",
            TopicError::WildcardInTopic => {
                "topic names cannot contain '+' or '#' (wildcards are for subscriptions)"
            }
            TopicError::MisplacedWildcard => {
                "'+' and '#' must fill a whole topic level and '#' must be the last level"
            }
            TopicError::BadSharedFilter => {
                "shared subscriptions look like '$share/<group>/<filter>'"
            }
            TopicError::NulCharacter => "topics cannot contain the NUL character",
        }
    }
}

impl core::fmt::Display for TopicError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for TopicError {}

/// Check a topic name used in PUBLISH.
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.contains('\0') {
        return Err(TopicError::NulCharacter);
    }
    if topic.contains(['+', '#']) {
        return Err(TopicError::WildcardInTopic);
    }
    Ok(())
}

/// Check a topic filter used in SUBSCRIBE/UNSUBSCRIBE.
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    if filter.contains('\0') {
        return Err(TopicError::NulCharacter);
    }
    let inner = match shared_inner(filter) {
        Some(Ok(inner)) => inner,
        Some(Err(e)) => return Err(e),
        None => filter,
    };
    let mut levels = inner.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        match level {
            "+" => {}
            "#" if last => {}
            _ if level.contains(['+', '#']) => return Err(TopicError::MisplacedWildcard),
            _ => {}
        }
    }
    Ok(())
}

/// For `$share/<group>/<filter>`: the inner filter (or why it is malformed).
fn shared_inner(filter: &str) -> Option<Result<&str, TopicError>> {
    let rest = filter.strip_prefix("$share/")?;
    Some(match rest.split_once('/') {
        Some((group, inner)) if !group.is_empty() && !inner.is_empty() => {
            if group.contains(['+', '#']) {
                Err(TopicError::BadSharedFilter)
            } else {
                Ok(inner)
            }
        }
        _ => Err(TopicError::BadSharedFilter),
    })
}

/// Does `topic` (a topic name, no wildcards) match `filter`?
pub fn matches(filter: &str, topic: &str) -> bool {
    let filter = match shared_inner(filter) {
        Some(Ok(inner)) => inner,
        Some(Err(_)) => return false,
        None => filter,
    };
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Does `pattern` allow everything `filter` can receive: is every topic
/// matched by `filter` also matched by `pattern`? Used to authorize a
/// SUBSCRIBE against an access rule (`a/+/b` is covered by `a/#`, but `a/#`
/// is not covered by `a/+`). Shared filters are judged by their inner
/// filter; a malformed filter or pattern covers nothing.
pub fn covers(pattern: &str, filter: &str) -> bool {
    let inner = |f| match shared_inner(f) {
        Some(Ok(inner)) => Some(inner),
        Some(Err(_)) => None,
        None => Some(f),
    };
    let (Some(pattern), Some(filter)) = (inner(pattern), inner(filter)) else {
        return false;
    };
    if validate_filter(pattern).is_err() || validate_filter(filter).is_err() {
        return false;
    }
    // A wildcard-led pattern never matches `$` topics, so it cannot cover a
    // filter that can only receive them.
    if pattern.starts_with(['+', '#']) && filter.starts_with('$') {
        return false;
    }
    let mut p = pattern.split('/');
    let mut f = filter.split('/');
    loop {
        match (p.next(), f.next()) {
            (Some("#"), _) => return true,
            // `a/#` also receives `a`: only a `#` in the pattern covers it.
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(pl), Some(fl)) if pl == fl && fl != "+" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Could one topic match both filters? Never false when one does (it may
/// say true for two wildcard-led filters that share only `$` topics, which
/// neither matches). Used to refuse a SUBSCRIBE that would receive a topic
/// an access rule denies. Shared filters are judged by their inner filter.
pub fn overlaps(a: &str, b: &str) -> bool {
    let inner = |f| match shared_inner(f) {
        Some(Ok(inner)) => inner,
        _ => f,
    };
    let mut x = inner(a).split('/');
    let mut y = inner(b).split('/');
    loop {
        match (x.next(), y.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (None, None) => return true,
            (Some(l), Some(r)) if l == "+" || r == "+" || l == r => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let yes = [
            ("a/b", "a/b"),
            ("a/+", "a/b"),
            ("+/b", "a/b"),
            ("+/+", "a/b"),
            ("a/#", "a/b/c"),
            ("a/#", "a"),
            ("#", "a/b"),
            ("+", "a"),
            ("a/+/c", "a//c"),
            ("/+", "/x"),
            ("$SYS/#", "$SYS/broker/load"),
            ("$share/g/a/+", "a/b"),
            ("$share/g/#", "a/b/c"),
        ];
        for (f, t) in yes {
            assert!(matches(f, t), "{f} should match {t}");
        }
        let no = [
            ("a/b", "a/c"),
            ("a/+", "a/b/c"),
            ("a/+", "a"),
            ("+", "/a"),
            ("a/b/c", "a/b"),
            ("#", "$SYS/x"),
            ("+/x", "$SYS/x"),
            ("$share/g/a/+", "$share/g/a/b"),
            ("$share/g", "g"),
            ("$share//a", "a"),
            ("$share/g/#", "$SYS/x"),
        ];
        for (f, t) in no {
            assert!(!matches(f, t), "{f} should not match {t}");
        }
    }

    #[test]
    fn validation() {
        assert_eq!(validate_topic("a/b"), Ok(()));
        assert_eq!(validate_topic(""), Err(TopicError::Empty));
        assert_eq!(validate_topic("a/+"), Err(TopicError::WildcardInTopic));
        assert_eq!(validate_topic("a/#"), Err(TopicError::WildcardInTopic));
        assert_eq!(validate_topic("a\0"), Err(TopicError::NulCharacter));
        for ok in ["#", "+", "a/+/b", "a/#", "$share/g/a/#", "/"] {
            assert_eq!(validate_filter(ok), Ok(()), "{ok}");
        }
        for bad in ["a#", "a/#/b", "a+/b", "a/b+"] {
            assert_eq!(
                validate_filter(bad),
                Err(TopicError::MisplacedWildcard),
                "{bad}"
            );
        }
        for bad in ["$share/g", "$share//a", "$share/g+/a", "$share/g/"] {
            assert_eq!(
                validate_filter(bad),
                Err(TopicError::BadSharedFilter),
                "{bad}"
            );
        }
        assert_eq!(validate_filter(""), Err(TopicError::Empty));
    }

    #[test]
    fn covers_judges_a_filter_against_a_pattern() {
        let yes = [
            ("a/b", "a/b"),
            ("a/+", "a/b"),
            ("a/+", "a/+"),
            ("a/#", "a/+/c"),
            ("a/#", "a/#"),
            ("a/#", "a"),
            ("#", "a/b/#"),
            ("spec/c1/notify/+", "spec/c1/notify/s1"),
            ("a/b", "$share/g/a/b"),
        ];
        for (pattern, filter) in yes {
            assert!(covers(pattern, filter), "{pattern} should cover {filter}");
        }
        let no = [
            ("a/b", "a/+"),
            ("a/+", "a/#"),
            ("a/+", "a/b/c"),
            ("a/b", "#"),
            ("spec/c1/response", "spec/+/response"),
            ("#", "$SYS/x"),
            ("+/x", "$SYS/x"),
            ("a/#/b", "a/b"),
            ("a/b", "a/b+"),
            ("a/b", "$share//a/b"),
        ];
        for (pattern, filter) in no {
            assert!(
                !covers(pattern, filter),
                "{pattern} must not cover {filter}"
            );
        }
    }

    #[test]
    fn overlap_of_filters() {
        assert!(overlaps("a/+", "a/b"));
        assert!(overlaps("a/#", "+/c/d"));
        assert!(!overlaps("a/b", "a/c"));
        assert!(!overlaps("a/b", "a/b/c"));
        assert!(overlaps("$share/g/a/b", "a/+"));
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn level() -> impl Strategy<Value = String> {
            proptest::sample::select(vec!["a", "b", "$s", "+", "#"]).prop_map(str::to_string)
        }

        fn filter() -> impl Strategy<Value = String> {
            proptest::collection::vec(level(), 1..5).prop_map(|l| l.join("/"))
        }

        fn topic() -> impl Strategy<Value = String> {
            proptest::collection::vec(proptest::sample::select(vec!["a", "b", "$s"]), 1..6)
                .prop_map(|l| l.join("/"))
        }

        proptest! {
            /// What a covered filter receives, the covering pattern allows.
            #[test]
            fn covered_filters_receive_only_allowed_topics(
                pattern in filter(), f in filter(), t in topic()
            ) {
                if covers(&pattern, &f) && matches(&f, &t) {
                    prop_assert!(matches(&pattern, &t), "{pattern} covers {f} but not topic {t}");
                }
            }

            /// Two filters that both match a topic overlap.
            #[test]
            fn filters_matching_one_topic_overlap(a in filter(), b in filter(), t in topic()) {
                if matches(&a, &t) && matches(&b, &t) {
                    prop_assert!(overlaps(&a, &b), "{a} and {b} both match {t}");
                }
            }

            /// A valid filter covers itself.
            #[test]
            fn a_filter_covers_itself(f in filter()) {
                prop_assert_eq!(covers(&f, &f), validate_filter(&f).is_ok());
            }
        }
    }
}
