//! A simulated PagerDuty Events API v2 (`POST /v2/enqueue`) on 127.0.0.1:0.
//!
//! Answers like the real API: 202 `{"status":"success","message":"Event processed","dedup_key":…}`
//! for a valid event; 400 `{"status":"invalid event","message":"Event object is invalid","errors":[…]}`
//! for a missing/blank or wrong-length `routing_key`, a bad `event_action`, or a trigger without
//! `payload.summary`, `payload.source` or a valid `payload.severity`. It is stricter than the
//! real API in one place: a summary over 1024 characters is refused (PagerDuty would cut it),
//! so a client that forgets the cap fails its tests. Every request is recorded; the next N
//! requests can be made to answer 429/500 or never answer.
//!
//! Test and demo code only: it must never be reachable from the bot's real paths.

use super::{serve, Fault, RecordedRequest, Recorder, Running};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Shared {
    recorder: Recorder,
    shutdown: CancellationToken,
}

/// A running PagerDuty sim; stops when dropped (or by [`PagerDutySim::shutdown`]).
pub struct PagerDutySim {
    shared: Arc<Shared>,
    running: Running,
}

/// Starts the sim on 127.0.0.1 on a free port.
pub async fn start() -> std::io::Result<PagerDutySim> {
    let shutdown = CancellationToken::new();
    let shared = Arc::new(Shared {
        recorder: Recorder::default(),
        shutdown: shutdown.clone(),
    });
    let router = Router::new().fallback(handle).with_state(shared.clone());
    let running = serve(router, shutdown).await?;
    Ok(PagerDutySim { shared, running })
}

impl PagerDutySim {
    /// The base URL to configure as `[pagerduty] url` (`http://127.0.0.1:PORT/`).
    pub fn base_url(&self) -> url::Url {
        self.running.base_url()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.snapshot()
    }

    /// Waits until at least `n` requests have arrived; `None` if `timeout` passes first.
    pub async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Option<Vec<RecordedRequest>> {
        self.shared.recorder.wait_for(n, timeout).await
    }

    /// The next `n` requests are answered with `status` (429 or a 5xx, typically).
    pub fn fail_next(&self, n: usize, status: u16) {
        self.shared.recorder.inject(n, Fault::Status(status));
    }

    /// The next `n` requests are never answered (until the sim stops): for client timeouts.
    pub fn stall_next(&self, n: usize) {
        self.shared.recorder.inject(n, Fault::Stall);
    }

    /// Stops the server.
    pub fn shutdown(self) {
        drop(self);
    }
}

fn invalid(errors: Vec<&str>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": errors,
        })),
    )
        .into_response()
}

fn fault_response(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = if status == 429 {
        json!({"status": "throttle event", "message": "Requests for this service are arriving too quickly.  Please retry later."})
    } else {
        json!({"status": "error", "message": "Internal Server Error"})
    };
    (code, Json(body)).into_response()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.recorder.record(method.clone(), &uri, headers, &body);
    match shared.recorder.next_fault() {
        Some(Fault::Status(status)) => return fault_response(status),
        Some(Fault::Stall) => {
            shared.shutdown.cancelled().await;
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        None => {}
    }
    if uri.path() != "/v2/enqueue" {
        return (StatusCode::NOT_FOUND, Json(json!({"status": "not found"}))).into_response();
    }
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let event: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return invalid(vec!["Event object is not valid JSON"]),
    };
    validate(&event)
}

/// A non-blank string field.
fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn validate(event: &Value) -> Response {
    let mut errors = Vec::new();
    match text(event.get("routing_key")) {
        None => errors.push("'routing_key' is missing or blank"),
        Some(k) if k.len() != 32 => {
            errors.push("Length of 'routing_key' is incorrect (should be 32 characters)")
        }
        Some(_) => {}
    }
    let action = text(event.get("event_action"));
    match action {
        None => errors.push("'event_action' is missing or blank"),
        Some("trigger" | "acknowledge" | "resolve") => {}
        Some(_) => errors.push("'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')"),
    }
    let dedup_key = event
        .get("dedup_key")
        .and_then(Value::as_str)
        .map(str::to_string);
    if dedup_key.as_ref().is_some_and(|k| k.chars().count() > 255) {
        errors.push("'dedup_key' is longer than 255 characters");
    }
    if action == Some("trigger") {
        match event.get("payload") {
            Some(payload @ Value::Object(_)) => {
                match payload.get("summary").and_then(Value::as_str) {
                    None => errors.push("'payload.summary' is missing or blank"),
                    Some(s) if s.trim().is_empty() => {
                        errors.push("'payload.summary' is missing or blank")
                    }
                    Some(s) if s.chars().count() > 1024 => {
                        errors.push("'payload.summary' is longer than 1024 characters")
                    }
                    Some(_) => {}
                }
                if text(payload.get("source")).is_none() {
                    errors.push("'payload.source' is missing or blank");
                }
                match text(payload.get("severity")) {
                    None => errors.push("'payload.severity' is missing or blank"),
                    Some("critical" | "error" | "warning" | "info") => {}
                    Some(_) => errors.push("'payload.severity' is invalid (must be one of the following: 'critical', 'warning', 'error' or 'info')"),
                }
            }
            _ => errors.push("'payload' is missing or blank"),
        }
    } else if text(event.get("dedup_key")).is_none() {
        // acknowledge and resolve name the incident by its key: blank names none.
        errors.push("'dedup_key' is missing or blank");
    }
    if !errors.is_empty() {
        return invalid(errors);
    }
    let dedup_key = dedup_key.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    (
        StatusCode::ACCEPTED,
        Json(json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key})),
    )
        .into_response()
}
