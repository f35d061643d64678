//! A simulated egress proxy: HTTP CONNECT tunnels (RFC 9110 §9.3.6) on `127.0.0.1:0`.
//!
//! It records every request (the CONNECT target and the `Proxy-Authorization` header), can
//! demand Basic credentials and answers 407 with `Proxy-Authenticate` without them, and only
//! tunnels to loopback. As strict as a common proxy: the target must be `host:port`
//! (authority form), anything but CONNECT is refused (this proxy does not forward plain HTTP),
//! and a request head larger than 8 KiB or slower than 10 s is dropped.

use base64::Engine;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const MAX_HEAD: usize = 8 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// One request the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRequest {
    /// The method (`CONNECT`, or what a client wrongly sent).
    pub method: String,
    /// The request target (`127.0.0.1:443` for a CONNECT).
    pub target: String,
    /// The `Proxy-Authorization` header, as sent.
    pub proxy_authorization: Option<String>,
    /// The status the proxy answered.
    pub status: u16,
}

#[derive(Default)]
struct State {
    requests: Vec<ProxyRequest>,
    /// The `Proxy-Authorization` value demanded, when credentials are required.
    required: Option<String>,
}

/// The running proxy; dropping it stops it (open tunnels end with their connections).
pub struct SimProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: CancellationToken,
}

impl Drop for SimProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimProxy {
    /// Starts a proxy that tunnels without asking for credentials.
    pub async fn start() -> std::io::Result<SimProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let stop = CancellationToken::new();
        let (st, stopped) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stopped.cancelled() => return,
                    a = listener.accept() => a,
                };
                if let Ok((tcp, _)) = accepted {
                    let st = st.clone();
                    let stopped = stopped.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = stopped.cancelled() => {}
                            _ = handle(tcp, st) => {}
                        }
                    });
                }
            }
        });
        Ok(SimProxy { addr, state, stop })
    }

    /// From now on, only `user:password` (Basic) is let through; anything else gets 407.
    pub fn require_basic(&self, user: &str, password: &str) {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        lock(&self.state).required = Some(format!("Basic {token}"));
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://user:password@127.0.0.1:PORT` (user and password percent-encoded).
    pub fn url_with(&self, user: &str, password: &str) -> String {
        let mut u = url::Url::parse(&self.url()).expect("loopback URL");
        let _ = u.set_username(user);
        let _ = u.set_password(Some(password));
        u.as_str().trim_end_matches('/').to_string()
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<ProxyRequest> {
        lock(&self.state).requests.clone()
    }

    /// The targets of the tunnels opened (status 200), in order.
    pub fn tunnels(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.status == 200)
            .map(|r| r.target)
            .collect()
    }
}

async fn handle(mut client: TcpStream, state: Arc<Mutex<State>>) {
    let _ = client.set_nodelay(true);
    let mut buf = Vec::with_capacity(1024);
    let head_end = tokio::time::timeout(HEAD_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                return Some(i + 4);
            }
            if buf.len() > MAX_HEAD {
                return None;
            }
            match client.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    let Ok(Some(head_end)) = head_end else {
        return;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("").to_string();
    let version = first.next().unwrap_or("");
    let proxy_authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, v)| v.trim().to_string());
    let required = lock(&state).required.clone();

    let authority = parse_authority(&target);
    let status = if !version.starts_with("HTTP/1.") {
        400
    } else if method != "CONNECT" {
        501
    } else if authority.is_none() {
        400
    } else if required.is_some() && proxy_authorization != required {
        407
    } else if !authority.as_ref().is_some_and(|(h, _)| is_loopback(h)) {
        403
    } else {
        200
    };
    let upstream = match (status, &authority) {
        (200, Some((host, port))) => {
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            TcpStream::connect((host.as_str(), *port)).await.ok()
        }
        _ => None,
    };
    let status = if status == 200 && upstream.is_none() {
        502
    } else {
        status
    };
    lock(&state).requests.push(ProxyRequest {
        method,
        target,
        proxy_authorization,
        status,
    });
    let answer = match status {
        200 => "HTTP/1.1 200 Connection established\r\n\r\n".to_string(),
        407 => "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"sim-proxy\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
        other => format!(
            "HTTP/1.1 {other} {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            reason(other)
        ),
    };
    if client.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    let Some(mut upstream) = upstream else {
        let _ = client.shutdown().await;
        return;
    };
    let _ = upstream.set_nodelay(true);
    // Bytes the client sent after the head (it should wait for 200, but may not) go first.
    if buf.len() > head_end && upstream.write_all(&buf[head_end..]).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        _ => "Error",
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `host:port` or `[v6]:port`, the only form CONNECT allows.
fn parse_authority(target: &str) -> Option<(String, u16)> {
    let (host, port) = target.rsplit_once(':')?;
    if host.is_empty() || target.contains('/') || target.contains('@') {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
