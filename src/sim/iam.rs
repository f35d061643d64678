//! A simulated IBM Cloud IAM token endpoint on 127.0.0.1:0: `POST /identity/token`.
//!
//! Issues a token for the API keys it was told to accept and answers any other key with HTTP 400
//! `BXNIM0415E` in IAM's real JSON shape; can be switched to answer 503. Records each request's
//! form fields. Only for the demo and the tests.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use url::Url;

#[derive(Default)]
struct Inner {
    accepted: BTreeSet<String>,
    unavailable: bool,
    requests: Vec<BTreeMap<String, String>>,
}

/// A running simulated IAM. Stops when dropped.
pub struct SimIam {
    base: Url,
    inner: Arc<Mutex<Inner>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts a simulated IAM that accepts `accepted_keys`.
///
/// # Panics
/// When no loopback port can be bound.
pub async fn start(accepted_keys: &[&str]) -> SimIam {
    let inner = Arc::new(Mutex::new(Inner {
        accepted: accepted_keys.iter().map(|k| k.to_string()).collect(),
        ..Inner::default()
    }));
    let app = Router::new()
        .route("/identity/token", post(token))
        .with_state(inner.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1:0");
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    SimIam {
        base: Url::parse(&format!("http://{addr}/")).expect("loopback URL"),
        inner,
        _shutdown: tx,
    }
}

impl SimIam {
    /// The base URL to configure as `[iam] url`.
    pub fn base_url(&self) -> Url {
        self.base.clone()
    }

    /// Accepts `key` from now on.
    pub fn accept_key(&self, key: &str) {
        lock(&self.inner).accepted.insert(key.to_string());
    }

    /// Answers every request with 503 while `on`.
    pub fn set_unavailable(&self, on: bool) {
        lock(&self.inner).unavailable = on;
    }

    /// How many token requests were received.
    pub fn request_count(&self) -> usize {
        lock(&self.inner).requests.len()
    }

    /// The form fields of each request, in order (test keys included: this is a fake).
    pub fn requests(&self) -> Vec<BTreeMap<String, String>> {
        lock(&self.inner).requests.clone()
    }
}

fn context() -> serde_json::Value {
    json!({
        "requestId": format!("{:032x}", fastrand::u128(..)),
        "requestType": "incoming.Identity_Token",
        "userAgent": "linkbot",
        "url": "https://iam.cloud.ibm.com",
        "instanceId": "iamid-sim",
        "threadId": "1",
        "host": "iamid-sim",
        "locale": "en_US",
        "clusterName": "iam-id-sim"
    })
}

async fn token(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut inner = lock(&inner);
    inner.requests.push(form.clone());
    let json_headers = [(header::CONTENT_TYPE, "application/json")];
    if inner.unavailable {
        let body = json!({"context": context(), "errorCode": "BXNIM0001E", "errorMessage": "Service temporarily unavailable."});
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            json_headers,
            body.to_string(),
        )
            .into_response();
    }
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let grant_ok = form.get("grant_type").map(String::as_str)
        == Some("urn:ibm:params:oauth:grant-type:apikey");
    let key = form.get("apikey").cloned().unwrap_or_default();
    if !grant_ok || key.is_empty() || !wants_json {
        let body = json!({"context": context(), "errorCode": "BXNIM0109E", "errorMessage": "Property missing or empty."});
        return (StatusCode::BAD_REQUEST, json_headers, body.to_string()).into_response();
    }
    if !inner.accepted.contains(&key) {
        let body = json!({"context": context(), "errorCode": "BXNIM0415E", "errorMessage": "Provided API key could not be found."});
        return (StatusCode::BAD_REQUEST, json_headers, body.to_string()).into_response();
    }
    let body = json!({
        "access_token": format!("eyJraWQiOiJzaW0iLCJhbGciOiJSUzI1NiJ9.sim.{:016x}", fastrand::u64(..)),
        "refresh_token": "not_supported",
        "ims_user_id": 1234567,
        "token_type": "Bearer",
        "expires_in": 3600,
        "expiration": 1_700_000_000u64,
        "scope": "ibm openid"
    });
    (StatusCode::OK, json_headers, body.to_string()).into_response()
}
