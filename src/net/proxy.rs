//! The egress proxy: which connections go through `HTTPS_PROXY`/`HTTP_PROXY`, and the HTTP
//! CONNECT tunnel for the connections linkbot opens itself (Slack Web API, Socket Mode).
//!
//! Matching uses hyper-util's `Matcher` (hosts, domain suffixes with or without a leading dot,
//! `*`, IPs and CIDRs in `NO_PROXY`); `host:port` entries, which it does not understand, are
//! matched here. Credentials in a proxy URL become `Proxy-Authorization: Basic` and are never
//! displayed: [`ProxyRoute::display`] is the URL without its userinfo. This module never reads
//! the environment.

use super::NetError;
use crate::secret::Secret;
use http::{HeaderValue, Uri};
use hyper_util::client::proxy::matcher::Matcher;
use url::Url;

/// The proxy that carries one connection.
#[derive(Clone)]
pub struct ProxyRoute {
    /// `http://host:port` of the proxy, without credentials: the only form ever displayed.
    pub display: String,
    /// Where to connect to the proxy.
    pub(super) uri: Uri,
    /// `Basic …` from the URL's userinfo (a sensitive header value).
    pub(super) auth: Option<HeaderValue>,
    /// The URL as configured, credentials included, for reqwest.
    pub(super) url: Secret,
}

impl std::fmt::Debug for ProxyRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

/// The proxy settings from `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`.
#[derive(Default)]
pub(super) struct Proxies {
    https: Option<ProxyRoute>,
    http: Option<ProxyRoute>,
    /// `NO_PROXY` without the `host:port` entries.
    matcher: Option<Matcher>,
    /// `NO_PROXY` entries with a port: (host or `.suffix`, port).
    with_port: Vec<(String, u16)>,
    /// The other `NO_PROXY` entries, as given to the matcher (for the startup log).
    plain_no: String,
}

impl Proxies {
    pub(super) fn new(
        https: Option<&Secret>,
        http: Option<&Secret>,
        no_proxy: Option<&str>,
    ) -> Result<Proxies, NetError> {
        let https = https.map(|s| route("HTTPS_PROXY", s)).transpose()?;
        let http = http.map(|s| route("HTTP_PROXY", s)).transpose()?;
        let mut plain = Vec::new();
        let mut with_port = Vec::new();
        for entry in no_proxy.unwrap_or("").split(',').map(str::trim) {
            match split_port(entry) {
                Some((host, port)) => with_port.push((host.to_ascii_lowercase(), port)),
                None if !entry.is_empty() => plain.push(entry),
                None => {}
            }
        }
        // The matcher decides "proxy or not" for a scheme; the routes above say which proxy.
        let plain_no = plain.join(",");
        let matcher = (https.is_some() || http.is_some()).then(|| {
            Matcher::builder()
                .https("http://proxy.invalid:1")
                .http("http://proxy.invalid:1")
                .no(plain_no.as_str())
                .build()
        });
        Ok(Proxies {
            https,
            http,
            matcher,
            with_port,
            plain_no,
        })
    }

    pub(super) fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = &self.https {
            parts.push(format!("https and wss via {}", r.display));
        }
        if let Some(r) = &self.http {
            parts.push(format!("http and ws via {}", r.display));
        }
        if parts.is_empty() {
            return "none".into();
        }
        let mut no: Vec<String> = self
            .with_port
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect();
        if self.matcher.is_some() && !self.plain_no.is_empty() {
            no.insert(0, self.plain_no.clone());
        }
        if !no.is_empty() {
            parts.push(format!("direct for {}", no.join(",")));
        }
        parts.join("; ")
    }

    pub(super) fn is_empty(&self) -> bool {
        self.https.is_none() && self.http.is_none()
    }

    /// The proxy for a connection to `host:port` with `scheme` (`https`, `wss`, `http`, `ws`),
    /// or `None` for a direct connection.
    pub(super) fn route(&self, scheme: &str, host: &str, port: u16) -> Option<&ProxyRoute> {
        let (route, as_scheme) = match scheme {
            "https" | "wss" => (self.https.as_ref()?, "https"),
            "http" | "ws" => (self.http.as_ref()?, "http"),
            _ => return None,
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if self.with_port.iter().any(|(h, p)| {
            *p == port
                && (h.eq_ignore_ascii_case(bare)
                    || h.trim_start_matches('[').trim_end_matches(']') == bare
                    || is_subdomain(bare, h))
        }) {
            return None;
        }
        let authority = if bare.contains(':') {
            format!("[{bare}]:{port}")
        } else {
            format!("{bare}:{port}")
        };
        let uri: Uri = format!("{as_scheme}://{authority}/").parse().ok()?;
        self.matcher.as_ref()?.intercept(&uri)?;
        Some(route)
    }
}

/// `.example.com` or `example.com` covers `a.example.com`.
fn is_subdomain(host: &str, entry: &str) -> bool {
    let suffix = entry.trim_start_matches('.');
    !suffix.is_empty()
        && host.len() > suffix.len()
        && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
}

/// `host:port`, `[v6]:port` → (host, port); anything else (a bare IPv6 address, a CIDR) → None.
fn split_port(entry: &str) -> Option<(&str, u16)> {
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        return Some((host, port.parse().ok()?));
    }
    let (host, port) = entry.rsplit_once(':')?;
    if host.contains(':') || host.is_empty() {
        return None;
    }
    Some((host, port.parse().ok()?))
}

fn route(var: &'static str, value: &Secret) -> Result<ProxyRoute, NetError> {
    let raw = value.expose().trim();
    // `proxy:3128` means `http://proxy:3128`, as in curl.
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("http://{raw}")
    };
    let bad = |reason: String| NetError::BadProxy { var, reason };
    let url = Url::parse(&with_scheme).map_err(|e| bad(format!("is not a URL ({e})")))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("has no host".into()))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let display = format!("http://{host}:{port}");
    if url.scheme() != "http" {
        return Err(bad(format!(
            "uses `{}://`: only `http://` proxies (HTTP CONNECT) are supported",
            url.scheme()
        )));
    }
    let auth = if url.username().is_empty() && url.password().is_none() {
        None
    } else {
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| {
                bad(format!(
                    "{display}: its user or password is not valid percent-encoded UTF-8"
                ))
            })
        };
        let user = decode(url.username())?;
        let pass = decode(url.password().unwrap_or(""))?;
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        let mut v = HeaderValue::from_str(&format!("Basic {token}"))
            .map_err(|_| bad(format!("{display}: its credentials cannot be sent")))?;
        v.set_sensitive(true);
        Some(v)
    };
    let uri: Uri = display
        .parse()
        .map_err(|_| bad(format!("{display} is not a usable proxy address")))?;
    // reqwest gets the URL with its credentials, normalised (scheme added).
    let mut for_reqwest = url.clone();
    for_reqwest.set_path("");
    Ok(ProxyRoute {
        display,
        uri,
        auth,
        url: Secret::new(for_reqwest.to_string()),
    })
}

fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(no: &str) -> Proxies {
        Proxies::new(
            Some(&Secret::new("http://user:p%40ss@proxy.corp:3128")),
            Some(&Secret::new("proxy.corp:8080")),
            Some(no),
        )
        .unwrap()
    }

    #[test]
    fn no_proxy_covers_hosts_ports_suffixes_ips_and_star() {
        let p = proxies("localhost, .internal.example, corp.example, 10.0.0.0/8, 127.0.0.1:4000, [::1]:9000, jenkins.ci:8443");
        let direct = |scheme, host, port| p.route(scheme, host, port).is_none();
        assert!(direct("https", "localhost", 443));
        assert!(direct("https", "xo.internal.example", 443));
        assert!(direct("https", "a.b.corp.example", 443));
        assert!(direct("https", "corp.example", 443));
        assert!(direct("https", "10.2.3.4", 443));
        assert!(direct("http", "127.0.0.1", 4000));
        assert!(direct("http", "[::1]", 9000));
        assert!(direct("wss", "jenkins.ci", 8443));
        // Not covered: other ports, look-alike domains, other hosts.
        assert!(!direct("http", "127.0.0.1", 4001));
        assert!(!direct("https", "jenkins.ci", 443));
        assert!(!direct("https", "notcorp.example", 443));
        assert!(!direct("wss", "wss-primary.slack.com", 443));
        assert!(proxies("*").route("https", "slack.com", 443).is_none());
    }

    #[test]
    fn each_scheme_uses_its_proxy_and_credentials_stay_hidden() {
        let p = proxies("");
        let https = p.route("wss", "slack.com", 443).unwrap();
        assert_eq!(https.display, "http://proxy.corp:3128");
        assert_eq!(format!("{https:?}"), "http://proxy.corp:3128");
        let auth = https.auth.as_ref().unwrap();
        assert!(auth.is_sensitive());
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.to_str().unwrap().trim_start_matches("Basic "))
            .unwrap();
        assert_eq!(decoded, b"user:p@ss");
        assert_eq!(
            p.summary(),
            "https and wss via http://proxy.corp:3128; http and ws via http://proxy.corp:8080"
        );
        let http = p.route("http", "example.com", 80).unwrap();
        assert_eq!(http.display, "http://proxy.corp:8080");
        assert!(http.auth.is_none());
    }

    #[test]
    fn bad_proxy_urls_are_refused_without_their_password() {
        for (v, expect) in [
            ("socks5://u:hunter2@p:1080", "only `http://`"),
            ("http://", "URL"),
            ("https://u:hunter2@p:443", "only `http://`"),
        ] {
            let e = Proxies::new(Some(&Secret::new(v)), None, None)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("HTTPS_PROXY") && e.contains(expect), "{v}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
