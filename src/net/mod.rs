//! Outbound connections: TLS trust and the egress proxy for every client linkbot has.
//!
//! [`Net`] is built once at startup from `[tls] ca_file` and the environment values that
//! [`crate::config::NetEnv`] read (this module never reads the environment itself). It gives:
//! - the rustls configuration ([`Net::tls`]): platform roots plus `SSL_CERT_FILE`,
//!   `SSL_CERT_DIR` and `[tls] ca_file`, ring provider, certificates always verified;
//! - a reqwest builder ([`Net::http_client`]) every reqwest client starts from (directory,
//!   Jenkins, IAM, PagerDuty, GitHub), so none of them reads proxy variables or trusts a
//!   built-in root list on its own;
//! - raw connections ([`Net::connect`], [`Net::hyper_connector`]) for the Slack Web API and
//!   the Socket Mode WebSocket: direct, or through an HTTP CONNECT tunnel;
//! - [`explain`]: the one sentence for a certificate or proxy failure, found in an error chain.
//!
//! It must not decide anything about checks or Slack; it only opens connections.

mod proxy;
mod tls;

pub use proxy::ProxyRoute;
pub use tls::TrustSummary;

use crate::config::NetEnv;
use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use std::error::Error as StdError;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tower_service::Service;

/// How long opening a TCP connection (to the target or the proxy) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle connections each reqwest client keeps per host (the pool closes the rest as they come
/// back): enough for the steady traffic of one Jenkins or directory, not a burst's worth.
pub const IDLE_PER_HOST: usize = 8;

/// Connections the Slack Web API client may have open at once ([`Net::hyper_connector`]).
pub const SLACK_CONNECTIONS: usize = 32;

/// The bounds on one HTTP call of a client (`request_timeout_secs` / `connect_timeout_secs` in
/// the client's bot.toml table): the whole request, and opening its connection (never longer
/// than the whole request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// The whole request, connection included.
    pub request: Duration,
    /// Opening the connection (TCP, proxy tunnel, TLS).
    pub connect: Duration,
}

impl Timeouts {
    /// Both bounds.
    pub const fn new(request: Duration, connect: Duration) -> Timeouts {
        Timeouts { request, connect }
    }

    /// `builder` with both bounds set.
    pub fn apply(self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        builder
            .timeout(self.request)
            .connect_timeout(self.connect.min(self.request))
    }
}

/// What went wrong setting up or opening an outbound connection. Never holds a credential.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A CA file or directory is missing, unreadable or holds no certificate.
    #[error("{name} ({}) {reason}", path.display())]
    CaFile {
        /// `SSL_CERT_FILE`, `SSL_CERT_DIR` or `[tls] ca_file`.
        name: &'static str,
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A proxy variable is not a usable `http://` proxy URL.
    #[error("{var} {reason}")]
    BadProxy {
        /// `HTTPS_PROXY` or `HTTP_PROXY`.
        var: &'static str,
        /// What is wrong (the URL is never repeated with its password).
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("the TLS configuration could not be built")]
    Tls(#[source] rustls::Error),
    /// The target or the proxy could not be reached.
    #[error("cannot connect to {target}{}", via(proxy))]
    Connect {
        /// `host:port` of the target.
        target: String,
        /// The proxy, when there is one (without credentials).
        proxy: Option<String>,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The proxy answered 407: it wants (other) credentials.
    #[error("the proxy {proxy} refused to open a tunnel to {target} with 407 Proxy Authentication Required: check the user and password in HTTPS_PROXY")]
    ProxyAuth {
        /// The proxy (without credentials).
        proxy: String,
        /// `host:port` of the target.
        target: String,
    },
    /// The proxy refused the tunnel with another status, or broke the exchange.
    #[error("the proxy {proxy} did not open a tunnel to {target} ({detail})")]
    Tunnel {
        /// The proxy (without credentials).
        proxy: String,
        /// `host:port` of the target.
        target: String,
        /// What happened.
        detail: String,
    },
    /// reqwest could not build a client from these settings.
    #[error("the HTTP client could not be built")]
    Client(#[source] reqwest::Error),
    /// The URL cannot be connected to (no host, unknown scheme).
    #[error("cannot connect to `{0}`: it needs a host and an http(s) or ws(s) scheme")]
    BadTarget(String),
}

fn via(proxy: &Option<String>) -> String {
    proxy
        .as_ref()
        .map(|p| format!(" through the proxy {p}"))
        .unwrap_or_default()
}

/// TLS trust and proxy settings of every outbound connection. Cheap to clone.
#[derive(Clone)]
pub struct Net {
    tls: Arc<ClientConfig>,
    proxies: Arc<proxy::Proxies>,
    summary: TrustSummary,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("trust", &self.summary)
            .field("proxied", &!self.proxies.is_empty())
            .finish()
    }
}

impl Net {
    /// Builds the settings from `[tls] ca_file` and the environment values. A CA source that
    /// is missing or holds no certificate, or a proxy URL that is not `http://`, is an error.
    pub fn new(ca_file: Option<&Path>, env: &NetEnv) -> Result<Net, NetError> {
        let mut extras = Vec::new();
        if let Some(f) = &env.ssl_cert_file {
            extras.push(tls::Extra {
                name: "SSL_CERT_FILE",
                path: f,
                is_dir: false,
            });
        }
        for d in &env.ssl_cert_dir {
            extras.push(tls::Extra {
                name: "SSL_CERT_DIR",
                path: d,
                is_dir: true,
            });
        }
        if let Some(f) = ca_file {
            extras.push(tls::Extra {
                name: "[tls] ca_file",
                path: f,
                is_dir: false,
            });
        }
        let (tls, summary) = tls::client_config(&extras)?;
        let proxies = proxy::Proxies::new(
            env.https_proxy.as_ref(),
            env.http_proxy.as_ref(),
            env.no_proxy.as_deref(),
        )?;
        Ok(Net {
            tls,
            proxies: Arc::new(proxies),
            summary,
        })
    }

    /// The settings of a bot: `[tls] ca_file` and the environment read with its secrets.
    pub fn for_bot(
        config: &crate::config::Config,
        secrets: &crate::config::Secrets,
    ) -> Result<Net, NetError> {
        Net::new(config.tls_ca_file.as_deref(), &secrets.net)
    }

    /// Platform roots only, no proxy: for tests and tools that talk to loopback.
    pub fn direct() -> Net {
        Net::new(None, &NetEnv::default()).expect("no extra CA and no proxy cannot fail")
    }

    /// The proxies in use, for the startup log: `https via http://host:port, …` (never the
    /// credentials), or `none`.
    pub fn proxy_summary(&self) -> String {
        self.proxies.summary()
    }

    /// How many roots came from where.
    pub fn summary(&self) -> &TrustSummary {
        &self.summary
    }

    /// The rustls client configuration (no ALPN set; connectors add their own).
    pub fn tls(&self) -> Arc<ClientConfig> {
        self.tls.clone()
    }

    /// The proxy for a connection to `url`, or `None` for a direct one.
    pub fn proxy_for(&self, url: &url::Url) -> Option<&ProxyRoute> {
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        self.proxies.route(url.scheme(), host, port)
    }

    /// A reqwest builder with our trust and proxy settings and nothing read from the
    /// environment. Callers add their timeouts, user agent and redirect policy.
    pub fn http_client(&self) -> reqwest::ClientBuilder {
        // A burst of requests (1,000 triggers) must not leave as many idle connections in the
        // pool until its idle timeout: about 30 KB each.
        let builder = reqwest::Client::builder()
            .use_preconfigured_tls((*self.tls).clone())
            .pool_max_idle_per_host(IDLE_PER_HOST)
            .no_proxy();
        if self.proxies.is_empty() {
            return builder;
        }
        let proxies = self.proxies.clone();
        builder.proxy(reqwest::Proxy::custom(move |url| {
            let host = url.host_str()?;
            let port = url.port_or_known_default()?;
            proxies
                .route(url.scheme(), host, port)
                .map(|r| r.url.expose().to_string())
        }))
    }

    /// Finishes a builder from [`Net::http_client`]; a failure is an error, never a client
    /// without our settings.
    pub fn build(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, NetError> {
        builder.build().map_err(NetError::Client)
    }

    /// Opens a TCP connection to `host:port` for `scheme`, directly or through the proxy's
    /// CONNECT tunnel, with Nagle off. TLS, if any, is the caller's.
    pub async fn connect(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
    ) -> Result<TcpStream, NetError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let target = if bare.contains(':') {
            format!("[{bare}]:{port}")
        } else {
            format!("{bare}:{port}")
        };
        let stream = match self.proxies.route(scheme, host, port) {
            None => {
                let connecting = TcpStream::connect(target.clone());
                match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(source)) => {
                        return Err(NetError::Connect {
                            target,
                            proxy: None,
                            source,
                        })
                    }
                    Err(_) => {
                        return Err(NetError::Connect {
                            target,
                            proxy: None,
                            source: std::io::ErrorKind::TimedOut.into(),
                        })
                    }
                }
            }
            Some(route) => tunnel(route, &target).await?,
        };
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// A hyper connector (for slack-morphism) that connects through [`Net::connect`], with at
    /// most `max_connections` connections open at once (each holds a permit until it closes).
    /// slack-morphism builds its hyper client with an unbounded pool: without the cap, a
    /// burst of 1,000 calls opens 1,000 connections and keeps them for the pool's idle timeout
    /// (about 30 KB each: most of the bot's memory under load). With it, a call that finds every
    /// connection busy waits for one to come back to the pool (hyper races the pool against
    /// the connect).
    pub fn hyper_connector(&self, max_connections: usize) -> NetConnector {
        NetConnector {
            net: self.clone(),
            slots: Arc::new(tokio::sync::Semaphore::new(max_connections.max(1))),
        }
    }
}

/// Opens a CONNECT tunnel to `target` through `route` with hyper-util's `Tunnel`.
async fn tunnel(route: &ProxyRoute, target: &str) -> Result<TcpStream, NetError> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let mut t = hyper_util::client::legacy::connect::proxy::Tunnel::new(route.uri.clone(), http);
    if let Some(auth) = &route.auth {
        t = t.with_auth(auth.clone());
    }
    let dst: Uri = format!("http://{target}/")
        .parse()
        .map_err(|_| NetError::BadTarget(target.to_string()))?;
    let opened = tokio::time::timeout(CONNECT_TIMEOUT * 2, t.call(dst)).await;
    let err = match opened {
        Ok(Ok(io)) => return Ok(io.into_inner()),
        Ok(Err(e)) => e,
        Err(_) => {
            return Err(NetError::Tunnel {
                proxy: route.display.clone(),
                target: target.to_string(),
                detail: "no answer in time".into(),
            })
        }
    };
    // hyper-util does not export its error type: its variants are told apart by name.
    let name = format!("{err:?}");
    Err(if name.starts_with("ProxyAuthRequired") {
        NetError::ProxyAuth {
            proxy: route.display.clone(),
            target: target.to_string(),
        }
    } else if name.starts_with("ConnectFailed") {
        NetError::Connect {
            target: target.to_string(),
            proxy: Some(route.display.clone()),
            source: std::io::Error::other(err.to_string()),
        }
    } else {
        NetError::Tunnel {
            proxy: route.display.clone(),
            target: target.to_string(),
            detail: err.to_string(),
        }
    })
}

/// A `tower::Service<Uri>` connector for hyper clients: [`Net::connect`] per connection, at
/// most as many open at once as it has permits.
#[derive(Clone)]
pub struct NetConnector {
    net: Net,
    slots: Arc<tokio::sync::Semaphore>,
}

/// A connection holding one of its connector's permits until it is closed (dropped).
pub struct CappedIo {
    io: TokioIo<TcpStream>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl hyper::rt::Read for CappedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for CappedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

impl hyper_util::client::legacy::connect::Connection for CappedIo {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        self.io.connected()
    }
}

impl Service<Uri> for NetConnector {
    type Response = CappedIo;
    type Error = NetError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, NetError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), NetError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let net = self.net.clone();
        let slots = self.slots.clone();
        Box::pin(async move {
            // Closed only if the connector is dropped, which ends its client too.
            let slot = slots
                .acquire_owned()
                .await
                .map_err(|_| NetError::BadTarget("the connector is closed".into()))?;
            let scheme = dst.scheme_str().unwrap_or("http").to_string();
            let host = dst
                .host()
                .ok_or_else(|| NetError::BadTarget(dst.to_string()))?
                .to_string();
            let port = dst
                .port_u16()
                .unwrap_or(if scheme == "https" { 443 } else { 80 });
            let io = net.connect(&scheme, &host, port).await.map(TokioIo::new)?;
            Ok(CappedIo { io, _slot: slot })
        })
    }
}

/// The one sentence for a certificate or proxy failure somewhere in `err`'s chain, naming
/// `host`; `None` when the failure is something else. Looks through `io::Error` wrappers,
/// where rustls errors travel (reqwest → hyper-util → io::Error → rustls::Error).
pub fn explain(err: &(dyn StdError + 'static), host: &str) -> Option<String> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(tls::describe(r, host));
        }
        if let Some(n) = e.downcast_ref::<NetError>() {
            match n {
                NetError::ProxyAuth { .. } | NetError::Tunnel { .. } => return Some(n.to_string()),
                _ => {}
            }
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(found) = explain(inner, host) {
                return Some(found);
            }
        }
        if format!("{e:?}").starts_with("ProxyAuthRequired") {
            return Some(format!(
                "{EGRESS_PROXY} refused to open a tunnel to {host} with 407 Proxy Authentication Required: check the user and password in HTTPS_PROXY"
            ));
        }
        current = e.source();
    }
    None
}

/// [`explain`] for a reqwest error, naming the host of the request's URL (and not the proxy:
/// prefer [`Net::explain_reqwest`], which knows it).
pub fn explain_reqwest(err: &reqwest::Error) -> Option<String> {
    let host = err.url().and_then(|u| u.host_str()).unwrap_or("the server");
    explain(err, host)
}

impl Net {
    /// [`explain`] for a reqwest error, naming the request's host and, when the proxy refused
    /// the tunnel, the proxy (without credentials).
    pub fn explain_reqwest(&self, err: &reqwest::Error) -> Option<String> {
        let sentence = explain_reqwest(err)?;
        let proxy = err.url().and_then(|u| self.proxy_for(u));
        Some(match proxy {
            Some(p) => sentence.replacen(EGRESS_PROXY, &format!("the proxy {}", p.display), 1),
            None => sentence,
        })
    }
}

const EGRESS_PROXY: &str = "the egress proxy";
