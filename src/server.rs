//! The operations HTTP server on `[server] listen`: `/healthz`, `/readyz`, `/metrics`.
//!
//! `/healthz` answers 200 `ok` while the process can serve at all, and 503 with a one-line
//! reason once Socket Mode has been disconnected longer than `[server]
//! unhealthy_after_disconnected_secs` ([`Liveness`]), so the orchestrator restarts a process
//! that cannot reconnect (a wedged network path, a stalled Slack). `/readyz` answers 200 only
//! while the readiness the bot publishes (config loaded, store reachable, Socket Mode connected)
//! says so, else 503 with a one-line reason. `/metrics` is [`Metrics::render`], which is
//! OpenMetrics 1.0 text (what prometheus-client's encoder writes), served with its content type.
//!
//! It must NOT serve anything Slack-facing (the bot uses Socket Mode: no public ingress), take
//! any input beyond the path, or expose anything but health and metrics.

use crate::metrics::Metrics;
use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The content type of [`Metrics::render`]'s output (OpenMetrics text 1.0.0).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether the bot can do its work now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Everything needed is up.
    Ready,
    /// Something is missing; the reason is one line for `/readyz`.
    NotReady(String),
}

impl Readiness {
    /// Not ready, with a reason.
    pub fn not_ready(reason: impl Into<String>) -> Self {
        Readiness::NotReady(reason.into())
    }

    /// Whether this is [`Readiness::Ready`].
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }
}

/// The parts the bot's readiness is made of; [`ReadyChecks::readiness`] folds them into one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadyChecks {
    /// `bot.toml` and the secrets were loaded and validated.
    pub config_loaded: bool,
    /// The store (SQLite/PostgreSQL) answered.
    pub store_reachable: bool,
    /// At least one Socket Mode connection is open.
    pub socket_connected: bool,
}

impl ReadyChecks {
    /// Ready when all three hold; otherwise the reasons, in that order.
    pub fn readiness(&self) -> Readiness {
        let mut missing = Vec::new();
        if !self.config_loaded {
            missing.push("config not loaded");
        }
        if !self.store_reachable {
            missing.push("store unreachable");
        }
        if !self.socket_connected {
            missing.push("Socket Mode not connected");
        }
        if missing.is_empty() {
            Readiness::Ready
        } else {
            Readiness::NotReady(missing.join(", "))
        }
    }
}

/// What `/healthz` judges: how long Socket Mode has been without a live connection.
#[derive(Clone, Debug)]
pub struct Liveness {
    disconnected_since: watch::Receiver<Option<Instant>>,
    bound: Duration,
}

impl Liveness {
    /// Always alive (no Socket Mode to watch).
    pub fn always() -> Liveness {
        Liveness {
            disconnected_since: watch::channel(None).1,
            bound: Duration::MAX,
        }
    }

    /// Watches `connected` (the number of live Socket Mode connections) in a task of its
    /// own: unhealthy once it has stayed 0 for longer than `bound`, counted from start.
    pub fn track(mut connected: watch::Receiver<usize>, bound: Duration) -> Liveness {
        let (tx, rx) = watch::channel(Some(Instant::now()));
        tokio::spawn(async move {
            loop {
                let up = *connected.borrow_and_update() > 0;
                tx.send_if_modified(|since| match (up, since.is_some()) {
                    (true, true) => {
                        *since = None;
                        true
                    }
                    (false, false) => {
                        *since = Some(Instant::now());
                        true
                    }
                    _ => false,
                });
                if connected.changed().await.is_err() {
                    return;
                }
            }
        });
        Liveness {
            disconnected_since: rx,
            bound,
        }
    }

    /// `Err(one line)` when Socket Mode has been disconnected longer than the bound.
    pub fn check(&self) -> Result<(), String> {
        match *self.disconnected_since.borrow() {
            Some(since) if since.elapsed() > self.bound => Err(format!(
                "Socket Mode has been disconnected for {}s (more than {}s)",
                since.elapsed().as_secs(),
                self.bound.as_secs()
            )),
            _ => Ok(()),
        }
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    ready: watch::Receiver<Readiness>,
    liveness: Liveness,
}

/// Binds the ops listener, with an error that names the address and the config key.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("could not listen on {addr} (`[server] listen` in bot.toml)"))
}

/// The router, for embedding or testing without a socket.
pub fn router(metrics: Metrics, ready: watch::Receiver<Readiness>) -> Router {
    router_with(metrics, ready, Liveness::always())
}

/// The router with a [`Liveness`] behind `/healthz`.
pub fn router_with(
    metrics: Metrics,
    ready: watch::Receiver<Readiness>,
    liveness: Liveness,
) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .fallback(not_found)
        .with_state(AppState {
            metrics,
            ready,
            liveness,
        })
}

/// Serves `/healthz`, `/readyz` and `/metrics` on `listener` until `shutdown` is cancelled;
/// then stops accepting, lets in-flight requests finish, and returns.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    ready: watch::Receiver<Readiness>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    serve_with(listener, metrics, ready, Liveness::always(), shutdown).await
}

/// [`serve`] with a [`Liveness`] behind `/healthz`.
pub async fn serve_with(
    listener: TcpListener,
    metrics: Metrics,
    ready: watch::Receiver<Readiness>,
    liveness: Liveness,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr().ok();
    tracing::info!(?addr, "ops HTTP server listening");
    axum::serve(listener, router_with(metrics, ready, liveness))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("the ops HTTP server failed")?;
    tracing::info!("ops HTTP server stopped");
    Ok(())
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.liveness.check() {
        Ok(()) => text(StatusCode::OK, "ok\n".into()),
        Err(reason) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {reason}\n"),
        ),
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    let ready = state.ready.borrow().clone();
    match ready {
        Readiness::Ready => text(StatusCode::OK, "ready\n".into()),
        Readiness::NotReady(reason) => {
            let line: String = reason
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {line}\n"),
            )
        }
    }
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> Response {
    text(
        StatusCode::NOT_FOUND,
        "not found: try /healthz, /readyz or /metrics\n".into(),
    )
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}
