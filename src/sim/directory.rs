//! A simulated cluster directory (the `@xo cluster` service) on 127.0.0.1:0.
//!
//! Serves `GET /cluster/{id}` (JSON or XO's text form) and `GET /carriers/{dc}`, from a table
//! the test or demo fills in, with failures on demand. Records every request; can hold cluster
//! answers (to see what does not wait for them) and counts how many are in flight at once.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use url::Url;

/// How the directory answers for one location.
#[derive(Debug, Clone)]
pub enum ClusterAnswer {
    /// 200 with a JSON object naming this tugboat (`prod-wdc04.carrier107`).
    Json(String),
    /// 200 with XO's text form naming this tugboat.
    Text(String),
    /// This exact body with this status.
    Raw(u16, String),
}

#[derive(Default)]
struct Inner {
    clusters: HashMap<String, ClusterAnswer>,
    carriers: HashMap<String, (u16, String)>,
    requests: Vec<String>,
    token: Option<String>,
    /// Cluster lookups being answered now, and the most there ever were at once.
    in_flight: usize,
    max_in_flight: usize,
}

/// A running simulated directory. Stops when dropped.
pub struct SimDirectory {
    base: Url,
    inner: Arc<Mutex<Inner>>,
    notify: Arc<Notify>,
    held: Arc<tokio::sync::watch::Sender<bool>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

#[derive(Clone)]
struct AppState {
    inner: Arc<Mutex<Inner>>,
    notify: Arc<Notify>,
    /// While `true`, cluster lookups wait before answering.
    held: Arc<tokio::sync::watch::Sender<bool>>,
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

impl SimDirectory {
    /// Starts an empty directory (every location unknown, no carriers endpoint).
    pub async fn start() -> std::io::Result<SimDirectory> {
        SimDirectory::start_with_tls(None).await
    }

    /// The same, serving HTTPS with `tls` when given.
    pub async fn start_with_tls(tls: Option<super::tls::SimTls>) -> std::io::Result<SimDirectory> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let inner = Arc::new(Mutex::new(Inner::default()));
        let notify = Arc::new(Notify::new());
        let held = Arc::new(tokio::sync::watch::Sender::new(false));
        let app = Router::new()
            .route("/api/cluster/{id}", get(cluster))
            .route("/api/carriers/{dc}", get(carriers))
            .with_state(AppState {
                inner: inner.clone(),
                notify: notify.clone(),
                held: held.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = super::tls::serve(listener, app, tls, async {
                let _ = rx.await;
            })
            .await;
        });
        let base = Url::parse(&format!("{scheme}://{addr}/api/")).expect("loopback URL");
        Ok(SimDirectory {
            base,
            inner,
            notify,
            held,
            _shutdown: tx,
        })
    }

    /// The base URL to put in `xo_url`.
    pub fn base_url(&self) -> Url {
        self.base.clone()
    }

    /// Sets how `location` is answered.
    pub fn set_cluster(&self, location: &str, answer: ClusterAnswer) {
        lock(&self.inner)
            .clusters
            .insert(location.to_string(), answer);
    }

    /// Sets the carriers of `dc` as `(name, status)` pairs, in preference order.
    pub fn set_carriers(&self, dc: &str, carriers: &[(&str, &str)]) {
        let list: Vec<serde_json::Value> = carriers
            .iter()
            .map(|(n, s)| serde_json::json!({"Name": n, "Status": s}))
            .collect();
        lock(&self.inner).carriers.insert(
            dc.to_string(),
            (200, serde_json::Value::Array(list).to_string()),
        );
    }

    /// Makes `/carriers/{dc}` answer this status and body.
    pub fn set_carriers_raw(&self, dc: &str, status: u16, body: &str) {
        lock(&self.inner)
            .carriers
            .insert(dc.to_string(), (status, body.to_string()));
    }

    /// Requires `Authorization: Bearer <token>` (401 otherwise).
    pub fn require_token(&self, token: &str) {
        lock(&self.inner).token = Some(token.to_string());
    }

    /// Every request path seen, in order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.inner).requests.clone()
    }

    /// Holds every cluster lookup (it waits, unanswered) while `on`; releasing answers them.
    pub fn hold_clusters(&self, on: bool) {
        self.held.send_replace(on);
    }

    /// Cluster lookups being answered (or held) now.
    pub fn clusters_in_flight(&self) -> usize {
        lock(&self.inner).in_flight
    }

    /// The most cluster lookups that were ever in flight at once.
    pub fn max_clusters_in_flight(&self) -> usize {
        lock(&self.inner).max_in_flight
    }

    /// Starts counting [`SimDirectory::max_clusters_in_flight`] again from those in flight now.
    pub fn reset_max_clusters_in_flight(&self) {
        let mut inner = lock(&self.inner);
        inner.max_in_flight = inner.in_flight;
    }

    /// Waits until at least `n` cluster lookups are in flight at once, or `timeout` passes;
    /// true when seen.
    pub async fn wait_clusters_in_flight(&self, n: usize, timeout: std::time::Duration) -> bool {
        tokio::time::timeout(timeout, async {
            loop {
                let notified = self.notify.notified();
                if lock(&self.inner).in_flight >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }

    /// Waits until at least `n` requests were seen, or `timeout` passes; true when seen.
    pub async fn wait_for_requests(&self, n: usize, timeout: std::time::Duration) -> bool {
        tokio::time::timeout(timeout, async {
            loop {
                let notified = self.notify.notified();
                if lock(&self.inner).requests.len() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }
}

/// Records the request; `false` when it lacks the required token (answer 401).
fn record(state: &AppState, path: String, headers: &HeaderMap) -> bool {
    let mut inner = lock(&state.inner);
    inner.requests.push(path);
    state.notify.notify_waiters();
    if let Some(t) = &inner.token {
        let got = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if got != format!("Bearer {t}") {
            return false;
        }
    }
    true
}

/// A JSON cluster answer for `location` on `tugboat`, shaped like the real directory's.
pub fn cluster_json(location: &str, tugboat: &str) -> String {
    let dc = tugboat
        .split(['.'])
        .next()
        .and_then(|l| l.rsplit('-').next())
        .unwrap_or("");
    serde_json::json!({
        "ID": location,
        "Name": format!("edge-location-{}", &location[..location.len().min(6)]),
        "Type": "satellite-location",
        "State": "normal",
        "Datacenter": dc,
        "ActualDatacenterCluster": tugboat,
    })
    .to_string()
}

async fn cluster(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !record(&state, format!("/cluster/{id}"), &headers) {
        return (StatusCode::UNAUTHORIZED, "unauthorized").into_response();
    }
    {
        let mut inner = lock(&state.inner);
        inner.in_flight += 1;
        inner.max_in_flight = inner.max_in_flight.max(inner.in_flight);
        state.notify.notify_waiters();
    }
    // Counted out however this ends (also when the client gives up and the task is dropped).
    struct Out(Arc<Mutex<Inner>>);
    impl Drop for Out {
        fn drop(&mut self) {
            lock(&self.0).in_flight -= 1;
        }
    }
    let _out = Out(state.inner.clone());
    let mut held = state.held.subscribe();
    let _ = held.wait_for(|h| !*h).await;
    let answer = lock(&state.inner).clusters.get(&id).cloned();
    match answer {
        None => (StatusCode::NOT_FOUND, format!("cluster {id} not found")).into_response(),
        Some(ClusterAnswer::Json(t)) => (
            [("content-type", "application/json")],
            cluster_json(&id, &t),
        )
            .into_response(),
        Some(ClusterAnswer::Text(t)) => {
            let json: serde_json::Value =
                serde_json::from_str(&cluster_json(&id, &t)).unwrap_or_default();
            let text: String = json
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| format!("{k}: {}\n", v.as_str().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default();
            ([("content-type", "text/plain")], text).into_response()
        }
        Some(ClusterAnswer::Raw(status, body)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        )
            .into_response(),
    }
}

async fn carriers(
    State(state): State<AppState>,
    Path(dc): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !record(&state, format!("/carriers/{dc}"), &headers) {
        return (StatusCode::UNAUTHORIZED, "unauthorized").into_response();
    }
    let answer = lock(&state.inner).carriers.get(&dc).cloned();
    match answer {
        None => (StatusCode::NOT_FOUND, "no such endpoint").into_response(),
        Some((status, body)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [("content-type", "application/json")],
            body,
        )
            .into_response(),
    }
}
