//! Simulated outside systems shared by the demo and the tests; nothing else may depend on it.
//!
//! Each simulator listens on `127.0.0.1:0`, speaks the real system's protocol, records what it
//! was sent for assertions, and fails on demand. [`world`] starts them all together.

pub mod alertmanager;
pub mod artifacts;
pub mod blockkit;
pub mod directory;
pub mod github;
pub mod iam;
pub mod jenkins;
pub mod pagerduty;
pub mod proxy;
pub mod slack;
pub mod tls;
pub mod world;

// Shared plumbing for the HTTP sims (PagerDuty, GitHub, Alertmanager): request recording with an async
// wait, failure injection, and the axum server on 127.0.0.1:0.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::Router;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A server on 127.0.0.1:0 that accepts every connection and never answers (not even the TLS
/// or HTTP handshake): a stalled directory, Jenkins, IAM, PagerDuty or GitHub, for client
/// timeouts. Connections are held until it is dropped.
pub struct Stalled {
    addr: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl Stalled {
    /// Starts listening.
    pub async fn start() -> std::io::Result<Stalled> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accepting = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Ok(Stalled { addr, accepting })
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn base_url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}/", self.addr))
            .expect("a loopback socket address makes a valid URL")
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// One request a sim received, exactly as it came.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The HTTP method.
    pub method: Method,
    /// The path (no query).
    pub path: String,
    /// Every header.
    pub headers: HeaderMap,
    /// The raw body, as text (lossy for non-UTF-8).
    pub body: String,
}

impl RecordedRequest {
    /// The body parsed as JSON, when it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The whole request as one string (method, path, every header, body), to search for
    /// something that must not be there.
    pub fn dump(&self) -> String {
        let mut s = format!("{} {}\n", self.method, self.path);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
        }
        s.push_str(&self.body);
        s
    }
}

/// What the next request gets instead of a normal answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Answer this status with the sim's error body for it.
    Status(u16),
    /// Never answer (until the sim shuts down): for client timeouts.
    Stall,
}

/// Recorded requests, queued faults and the wake-up for waiters.
#[derive(Default)]
struct Recorder {
    requests: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<VecDeque<Fault>>,
    notify: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Recorder {
    fn record(&self, method: Method, uri: &Uri, headers: HeaderMap, body: &Bytes) {
        lock(&self.requests).push(RecordedRequest {
            method,
            path: uri.path().to_string(),
            headers,
            body: String::from_utf8_lossy(body).into_owned(),
        });
        self.notify.notify_waiters();
    }

    fn snapshot(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    fn inject(&self, n: usize, fault: Fault) {
        lock(&self.faults).extend(std::iter::repeat_n(fault, n));
    }

    fn next_fault(&self) -> Option<Fault> {
        lock(&self.faults).pop_front()
    }

    async fn wait_for(&self, n: usize, timeout: Duration) -> Option<Vec<RecordedRequest>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let requests = lock(&self.requests);
                if requests.len() >= n {
                    return Some(requests.clone());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

/// A running axum server on 127.0.0.1:0, stopped by cancelling its token.
struct Running {
    addr: SocketAddr,
    shutdown: CancellationToken,
}

async fn serve(router: Router, shutdown: CancellationToken) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "simulated server stopped with an error");
        }
    });
    Ok(Running { addr, shutdown })
}

impl Running {
    fn base_url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}/", self.addr))
            .expect("a loopback socket address makes a valid URL")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
