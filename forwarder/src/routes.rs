//! Path-prefix routes: which local target serves a relayed request or
//! WebSocket. `--route PREFIX=URL` (repeatable) plus the default `/` route
//! from `--host`/`--port`; the longest matching prefix wins and the path is
//! passed on unchanged (a local service routed at `/mqtt` sees `/mqtt`).

use std::fmt;

/// Where a route leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `http://host:port`: HTTP requests; WebSocket upgrades go to the
    /// same service's `ws://` endpoint.
    Http(String),
    /// `ws://host:port`: WebSocket sessions; plain HTTP requests go to the
    /// same `host:port` over HTTP.
    Ws(String),
    /// `mqtt+tcp://host:port`: WebSocket sessions bridged to an MQTT
    /// broker's plain TCP port, one MQTT packet per message.
    MqttTcp(String),
}

impl Target {
    /// Parse `http://`, `ws://` or `mqtt+tcp://` followed by `host:port`
    /// (an optional trailing `/` is allowed, any other path is refused).
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            format!("{url:?} is not a URL: expected http://HOST:PORT, ws://HOST:PORT or mqtt+tcp://HOST:PORT")
        })?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains('/') {
            return Err(format!(
                "{url:?}: give only scheme://HOST:PORT; the local service sees the public path unchanged"
            ));
        }
        let (_, port) = authority
            .rsplit_once(':')
            .ok_or_else(|| format!("{url:?}: missing :PORT"))?;
        port.parse::<u16>()
            .map_err(|_| format!("{url:?}: {port:?} is not a port number"))?;
        let authority = authority.to_string();
        match scheme.to_ascii_lowercase().as_str() {
            "http" => Ok(Target::Http(authority)),
            "ws" => Ok(Target::Ws(authority)),
            "mqtt+tcp" | "tcp" => Ok(Target::MqttTcp(authority)),
            other => Err(format!(
                "{url:?}: unsupported scheme {other:?}; use http, ws or mqtt+tcp"
            )),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Http(a) => write!(f, "http://{a}"),
            Target::Ws(a) => write!(f, "ws://{a}"),
            Target::MqttTcp(a) => write!(f, "mqtt+tcp://{a}"),
        }
    }
}

/// One `PREFIX=URL` route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Path prefix, starting with `/`, without a trailing `/` (except `/`).
    pub prefix: String,
    /// Where matching requests go.
    pub target: Target,
}

impl Route {
    /// Parse `PREFIX=URL` as given to `--route`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (prefix, url) = spec.split_once('=').ok_or_else(|| {
            format!("--route {spec:?}: expected PREFIX=URL, e.g. /mqtt=ws://127.0.0.1:8083")
        })?;
        if !prefix.starts_with('/') {
            return Err(format!("--route {spec:?}: the prefix must start with /"));
        }
        let prefix = match prefix.trim_end_matches('/') {
            "" => "/".to_string(),
            p => p.to_string(),
        };
        Ok(Route {
            prefix,
            target: Target::parse(url)?,
        })
    }

    /// Whether `path` (path and query) is under this prefix: equal to it or
    /// continuing with `/`, `?` or `#`.
    fn matches(&self, path: &str) -> bool {
        if self.prefix == "/" {
            return true;
        }
        path.strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']))
    }
}

/// All routes, longest prefix first.
#[derive(Debug, Clone)]
pub struct Routes {
    /// Longest prefix first; the `/` route is among them.
    list: Vec<Route>,
    /// Target of the `/` route (what nothing else matches goes to).
    root: Target,
}

impl Routes {
    /// The given routes plus `default` at `/` unless a `/` route is given.
    pub fn new(mut routes: Vec<Route>, default: Target) -> Self {
        let root = match routes.iter().find(|r| r.prefix == "/") {
            Some(r) => r.target.clone(),
            None => {
                routes.push(Route {
                    prefix: "/".into(),
                    target: default.clone(),
                });
                default
            }
        };
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Routes { list: routes, root }
    }

    /// The route for `path` (always one: `/` matches everything).
    pub fn find(&self, path: &str) -> &Target {
        self.list
            .iter()
            .find(|r| r.matches(path))
            .map_or(&self.root, |r| &r.target)
    }

    /// Every route, longest prefix first.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.list.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets_and_refuses_bad_ones() {
        assert_eq!(
            Route::parse("/mqtt=ws://127.0.0.1:8083").unwrap(),
            Route {
                prefix: "/mqtt".into(),
                target: Target::Ws("127.0.0.1:8083".into())
            }
        );
        assert_eq!(
            Route::parse("/api/=http://localhost:3000/").unwrap().prefix,
            "/api"
        );
        assert_eq!(
            Target::parse("mqtt+tcp://127.0.0.1:1883").unwrap(),
            Target::MqttTcp("127.0.0.1:1883".into())
        );
        for bad in [
            "mqtt",
            "mqtt=ws://h:1",
            "/x=ftp://h:1",
            "/x=ws://h",
            "/x=ws://h:99999",
            "/x=http://h:1/sub",
        ] {
            assert!(Route::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(Route::parse("/x=ws://h")
            .unwrap_err()
            .contains("missing :PORT"));
    }

    #[test]
    fn longest_prefix_wins_on_segment_boundaries() {
        let routes = Routes::new(
            vec![
                Route::parse("/mqtt=ws://127.0.0.1:8083").unwrap(),
                Route::parse("/mqtt/tcp=mqtt+tcp://127.0.0.1:1883").unwrap(),
            ],
            Target::Http("127.0.0.1:3000".into()),
        );
        let at = |p: &str| routes.find(p).to_string();
        assert_eq!(at("/mqtt"), "ws://127.0.0.1:8083");
        assert_eq!(at("/mqtt?x=1"), "ws://127.0.0.1:8083");
        assert_eq!(at("/mqtt/other"), "ws://127.0.0.1:8083");
        assert_eq!(at("/mqtt/tcp"), "mqtt+tcp://127.0.0.1:1883");
        assert_eq!(at("/mqttx"), "http://127.0.0.1:3000");
        assert_eq!(at("/"), "http://127.0.0.1:3000");
        assert_eq!(routes.iter().count(), 3);
    }

    #[test]
    fn explicit_root_route_replaces_the_default() {
        let routes = Routes::new(
            vec![Route::parse("/=http://127.0.0.1:4000").unwrap()],
            Target::Http("127.0.0.1:3000".into()),
        );
        assert_eq!(routes.find("/a").to_string(), "http://127.0.0.1:4000");
    }
}
