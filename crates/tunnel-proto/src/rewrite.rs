//! Path-prefix rewriting for the path form of public URLs
//! (`https://<base>/<id>/...`): absolute paths in HTML attributes, CSS
//! `url()`/`@import` and common JS request patterns get the `/<id>` prefix
//! so a page served under the prefix still loads its assets and APIs.
//!
//! Pure text functions; the edge applies them to answers whose
//! content type is HTML, CSS or JavaScript.

/// Which rewriting an answer's `content-type` calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// HTML: attributes, plus inline CSS and JS.
    Html,
    /// A stylesheet.
    Css,
    /// A script.
    Js,
}

impl Kind {
    /// The kind for a `content-type` value, if it is rewritten at all.
    pub fn for_content_type(content_type: &str) -> Option<Kind> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "text/html" | "application/xhtml+xml" => Some(Kind::Html),
            "text/css" => Some(Kind::Css),
            "text/javascript"
            | "application/javascript"
            | "application/x-javascript"
            | "module/javascript" => Some(Kind::Js),
            _ => None,
        }
    }
}

/// HTML attributes whose value is a URL.
const URL_ATTRIBUTES: &[&str] = &[
    "href",
    "src",
    "action",
    "formaction",
    "poster",
    "data",
    "background",
];

/// How a URL literal follows a keyword.
#[derive(Clone, Copy)]
enum After {
    /// `name = "value"` (quotes optional): HTML attributes.
    Equals,
    /// `url( "value" )` (quotes optional): CSS.
    OptionalQuote,
    /// `fetch('value'` (quote required): JS calls and imports.
    Quote,
    /// `.open('GET', 'value'`: XMLHttpRequest.
    SecondArgument,
}

/// Rewrite `text` of the given kind for the path prefix `prefix` (`/<id>`).
pub fn rewrite(text: &str, kind: Kind, prefix: &str) -> String {
    let mut rules: Vec<(&str, After)> = Vec::new();
    if kind == Kind::Html {
        rules.extend(URL_ATTRIBUTES.iter().map(|a| (*a, After::Equals)));
    }
    if matches!(kind, Kind::Html | Kind::Css) {
        rules.push(("url(", After::OptionalQuote));
        rules.push(("@import", After::Quote));
    }
    if matches!(kind, Kind::Html | Kind::Js) {
        rules.push(("fetch(", After::Quote));
        rules.push(("import(", After::Quote));
        rules.push(("from", After::Quote));
        rules.push(("EventSource(", After::Quote));
        rules.push((".open(", After::SecondArgument));
    }
    let insert_at = positions(text, &rules, prefix);
    let mut out = String::with_capacity(text.len() + insert_at.len() * prefix.len());
    let mut last = 0;
    for at in insert_at {
        // Positions follow an ASCII quote or `(`: always char boundaries.
        let Some(piece) = text.get(last..at) else {
            return text.to_string();
        };
        out.push_str(piece);
        out.push_str(prefix);
        last = at;
    }
    out.push_str(text.get(last..).unwrap_or_default());
    out
}

/// Rewrite a `Location` header value: absolute paths get the prefix.
pub fn rewrite_location(location: &str, prefix: &str) -> String {
    if needs_prefix(location, 0, prefix) {
        format!("{prefix}{location}")
    } else {
        location.to_string()
    }
}

/// Byte offsets (sorted, unique) where `prefix` must be inserted.
fn positions(text: &str, rules: &[(&str, After)], prefix: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let lower = text.to_ascii_lowercase();
    let mut found = Vec::new();
    for (keyword, after) in rules {
        let needle = keyword.to_ascii_lowercase();
        let mut from = 0;
        while let Some(hit) = lower.get(from..).and_then(|rest| rest.find(&needle)) {
            let start = from + hit;
            from = start + needle.len();
            let word_start = keyword
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic());
            let before = start.checked_sub(1).and_then(|i| bytes.get(i)).copied();
            if word_start && before.is_some_and(is_ident) {
                continue;
            }
            if keyword.ends_with(|c: char| c.is_ascii_alphabetic())
                && bytes.get(from).copied().is_some_and(is_ident)
            {
                continue;
            }
            if let Some(at) = value_start(bytes, from, *after) {
                if needs_prefix(text, at, prefix) {
                    found.push(at);
                }
            }
        }
    }
    found.sort_unstable();
    found.dedup();
    found
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'$'
}

fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

fn is_quote(b: u8) -> bool {
    matches!(b, b'"' | b'\'' | b'`')
}

/// Offset of the first character of the URL literal after a keyword that
/// ends at `i`, or `None` when the shape does not match.
fn value_start(bytes: &[u8], i: usize, after: After) -> Option<usize> {
    let mut i = skip_space(bytes, i);
    match after {
        After::Equals => {
            if bytes.get(i) != Some(&b'=') {
                return None;
            }
            i = skip_space(bytes, i + 1);
            Some(if bytes.get(i).copied().is_some_and(is_quote) {
                i + 1
            } else {
                i
            })
        }
        After::OptionalQuote => Some(if bytes.get(i).copied().is_some_and(is_quote) {
            i + 1
        } else {
            i
        }),
        After::Quote => bytes
            .get(i)
            .copied()
            .filter(|b| is_quote(*b))
            .map(|_| i + 1),
        After::SecondArgument => {
            let q = *bytes.get(i).filter(|b| is_quote(**b))?;
            let end = i + 1 + bytes.get(i + 1..)?.iter().position(|b| *b == q)?;
            i = skip_space(bytes, end + 1);
            if bytes.get(i) != Some(&b',') {
                return None;
            }
            i = skip_space(bytes, i + 1);
            bytes
                .get(i)
                .copied()
                .filter(|b| is_quote(*b))
                .map(|_| i + 1)
        }
    }
}

/// Whether the URL starting at `at` is an absolute path (one `/`, not
/// `//`) that does not already carry the prefix.
fn needs_prefix(text: &str, at: usize, prefix: &str) -> bool {
    let Some(rest) = text.get(at..) else {
        return false;
    };
    if !rest.starts_with('/') || rest.starts_with("//") {
        return false;
    }
    match rest.strip_prefix(prefix) {
        Some(after) => {
            !(after.is_empty() || after.starts_with(['/', '?', '#', '"', '\'', '`', ')']))
        }
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/abc123def456";

    #[test]
    fn content_types() {
        assert_eq!(
            Kind::for_content_type("text/html; charset=utf-8"),
            Some(Kind::Html)
        );
        assert_eq!(Kind::for_content_type("Text/CSS"), Some(Kind::Css));
        assert_eq!(
            Kind::for_content_type("application/javascript"),
            Some(Kind::Js)
        );
        assert_eq!(Kind::for_content_type("application/json"), None);
    }

    #[test]
    fn html_attributes() {
        let html = r#"<link href="/style.css"><img SRC='/a.png'><a href=/x>x</a><form action = "/post"><a href="//cdn.example/x"><a href="https://e.x/y"><a href="rel/z"><a data-href="/no"><a href="/abc123def456/already">"#;
        assert_eq!(
            rewrite(html, Kind::Html, P),
            r#"<link href="/abc123def456/style.css"><img SRC='/abc123def456/a.png'><a href=/abc123def456/x>x</a><form action = "/abc123def456/post"><a href="//cdn.example/x"><a href="https://e.x/y"><a href="rel/z"><a data-href="/no"><a href="/abc123def456/already">"#
        );
    }

    #[test]
    fn css_urls_and_imports() {
        let css = r#"body{background:url(/bg.png)} .a{src:url( "/f.woff")} @import "/more.css"; .b{background:url(data:x)}"#;
        assert_eq!(
            rewrite(css, Kind::Css, P),
            r#"body{background:url(/abc123def456/bg.png)} .a{src:url( "/abc123def456/f.woff")} @import "/abc123def456/more.css"; .b{background:url(data:x)}"#
        );
    }

    #[test]
    fn js_patterns() {
        let js = "fetch('/api').then(r => r.json()); fetch(`/api/${x}`); prefetch('/no'); import('/mod.js'); import x from \"/lib.js\"; xhr.open('GET', '/data'); new EventSource('/events'); fetch(url);";
        assert_eq!(
            rewrite(js, Kind::Js, P),
            "fetch('/abc123def456/api').then(r => r.json()); fetch(`/abc123def456/api/${x}`); prefetch('/no'); import('/abc123def456/mod.js'); import x from \"/abc123def456/lib.js\"; xhr.open('GET', '/abc123def456/data'); new EventSource('/abc123def456/events'); fetch(url);"
        );
    }

    #[test]
    fn inline_script_and_style_in_html() {
        let html = "<style>a{background:url('/i.png')}</style><script>fetch(\"/api\")</script>";
        assert_eq!(
            rewrite(html, Kind::Html, P),
            "<style>a{background:url('/abc123def456/i.png')}</style><script>fetch(\"/abc123def456/api\")</script>"
        );
        // CSS rules do not touch scripts and vice versa.
        assert_eq!(rewrite("fetch('/x')", Kind::Css, P), "fetch('/x')");
        assert_eq!(rewrite("url(/x)", Kind::Js, P), "url(/x)");
    }

    #[test]
    fn locations() {
        assert_eq!(rewrite_location("/login?x=1", P), "/abc123def456/login?x=1");
        assert_eq!(rewrite_location("/abc123def456", P), "/abc123def456");
        assert_eq!(rewrite_location("https://e.x/", P), "https://e.x/");
        assert_eq!(
            rewrite_location("/abc123def456x", P),
            "/abc123def456/abc123def456x"
        );
    }

    #[test]
    fn non_ascii_text_survives() {
        let html = "<p>héllo ✓</p><a href=\"/ü\">";
        assert_eq!(
            rewrite(html, Kind::Html, P),
            "<p>héllo ✓</p><a href=\"/abc123def456/ü\">"
        );
    }
}
