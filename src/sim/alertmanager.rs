//! A simulated Alertmanager API v2 (silences only) on 127.0.0.1:0: `POST /api/v2/silences`,
//! `GET /api/v2/silence/{id}`, `DELETE /api/v2/silence/{id}`, `GET /api/v2/silences`.
//!
//! It answers as prometheus/alertmanager does (`api/v2/openapi.yaml`, `api/v2/api.go`,
//! `silence/silence.go`, go-openapi's validation), checked in this order:
//! - a body that is not JSON of the right types: 400 `{"code": 400, "message": "parsing silence
//!   body from \"\" failed, because …"}`;
//! - a required field missing (`matchers`, `startsAt`, `endsAt`, `createdBy`, `comment`; a
//!   matcher's `name`, `value`, `isRegex`): go-swagger's 422 `{"code": 602, "message":
//!   "comment in body is required"}` (the first in go-swagger's order: comment, createdBy,
//!   endsAt, matchers, startsAt); an empty `matchers`: 422 `{"code": 612, …}`;
//! - `startsAt` not before `endsAt`: 400 `"Failed to create silence: start time must be before
//!   end time"`; `endsAt` in the past: 400 `"Failed to create silence: end time can't be in the
//!   past"` (JSON strings);
//! - an invalid label name (classic `[a-zA-Z_][a-zA-Z0-9_]*`, the strict reading of
//!   `compat.IsValidLabelName`): 400 `"invalid silence: invalid label matcher 0 in set 0:
//!   invalid label name \"0x\""`; every matcher matching the empty string: 400 `"invalid
//!   silence: matcher set 0: at least one matcher must not match the empty string"`;
//! - an `id` it does not know: 404 `"silence not found"`.
//!
//! Stricter than the real one where it cannot tell: a regular-expression matcher is refused
//! (400) rather than evaluated. A `startsAt` in the past becomes now, as Alertmanager does. A
//! silence id in a path that is not a UUID answers 422 `{"code": 601, …}`; an unknown one 404
//! with no body; DELETE expires a silence (its `endsAt` becomes now, its state `expired`) and
//! answers 200, also for one already expired. When the world sets a token, a request without
//! `Authorization: Bearer <token>` answers 401 (as the authenticating proxy in front of it
//! would). Every request is recorded; the next requests can be made to answer a status and
//! body of the test's choosing (500, a 400 with a message), or never answer.
//!
//! Test and demo code only: it must never be reachable from the bot's real paths.

use super::{lock, serve, Fault, RecordedRequest, Recorder, Running};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One silence the sim holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimSilence {
    /// Its id (a UUID).
    pub id: String,
    /// Its matchers, as posted (`name`, `value`, `isRegex`, `isEqual`).
    pub matchers: Vec<Value>,
    /// From when (now, when it was posted in the past).
    pub starts_at: DateTime<Utc>,
    /// Until when (now once expired).
    pub ends_at: DateTime<Utc>,
    /// `createdBy`.
    pub created_by: String,
    /// `comment`.
    pub comment: String,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl SimSilence {
    /// `active`, `pending` or `expired`, as Alertmanager computes it (`getState`); once
    /// expired through DELETE, `expired` (its `endsAt` is that moment).
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        if now < self.starts_at {
            "pending"
        } else if now >= self.ends_at {
            "expired"
        } else {
            "active"
        }
    }

    fn to_json(&self, now: DateTime<Utc>) -> Value {
        json!({
            "id": self.id,
            "status": {"state": self.state(now)},
            "updatedAt": rfc3339(self.updated_at),
            "matchers": self.matchers,
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(self.ends_at),
            "createdBy": self.created_by,
            "comment": self.comment,
            "annotations": {},
        })
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

struct Shared {
    recorder: Recorder,
    shutdown: CancellationToken,
    token: Mutex<Option<String>>,
    silences: Mutex<Vec<SimSilence>>,
    answers: Mutex<VecDeque<(u16, String)>>,
}

/// A running Alertmanager sim; stops when dropped.
pub struct AlertmanagerSim {
    shared: Arc<Shared>,
    running: Running,
}

/// Starts the sim on 127.0.0.1 on a free port; with `token`, every request must carry it as
/// `Authorization: Bearer`.
pub async fn start(token: Option<&str>) -> std::io::Result<AlertmanagerSim> {
    let shutdown = CancellationToken::new();
    let shared = Arc::new(Shared {
        recorder: Recorder::default(),
        shutdown: shutdown.clone(),
        token: Mutex::new(token.map(str::to_string)),
        silences: Mutex::new(Vec::new()),
        answers: Mutex::new(VecDeque::new()),
    });
    let router = Router::new().fallback(handle).with_state(shared.clone());
    let running = serve(router, shutdown).await?;
    Ok(AlertmanagerSim { shared, running })
}

impl AlertmanagerSim {
    /// The base URL to configure as `alertmanager_url` (`http://127.0.0.1:PORT/`).
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

    /// Every silence it holds, oldest first.
    pub fn silences(&self) -> Vec<SimSilence> {
        lock(&self.shared.silences).clone()
    }

    /// The next request is answered `status` with `body` (sent as written: a JSON string such
    /// as `"\"Failed to create silence: …\""` for Alertmanager's API errors), whatever it asks.
    pub fn answer_next(&self, status: u16, body: &str) {
        lock(&self.shared.answers).push_back((status, body.to_string()));
    }

    /// The next `n` requests are never answered (until the sim stops): for client timeouts.
    pub fn stall_next(&self, n: usize) {
        self.shared.recorder.inject(n, Fault::Stall);
    }
}

/// A go-swagger error: `{"code": …, "message": …}` with HTTP `status`.
fn swagger(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"code": code, "message": message})),
    )
        .into_response()
}

/// An API error: a JSON string with HTTP `status`.
fn api_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(Value::String(message.to_string()))).into_response()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared
        .recorder
        .record(method.clone(), &uri, headers.clone(), &body);
    if let Some(Fault::Stall) = shared.recorder.next_fault() {
        shared.shutdown.cancelled().await;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if let Some(expected) = lock(&shared.token).clone() {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(format!("Bearer {expected}").as_str()) {
            return (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
        }
    }
    if let Some((status, body)) = lock(&shared.answers).pop_front() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    let path = uri.path();
    let now = Utc::now();
    match (method.as_str(), path) {
        ("POST", "/api/v2/silences") => post_silence(&shared, &body, now),
        ("GET", "/api/v2/silences") => {
            let all: Vec<Value> = lock(&shared.silences)
                .iter()
                .map(|s| s.to_json(now))
                .collect();
            (StatusCode::OK, axum::Json(Value::Array(all))).into_response()
        }
        (m @ ("GET" | "DELETE"), p) if p.starts_with("/api/v2/silence/") => {
            let id = &p["/api/v2/silence/".len()..];
            if crate::alertmanager::SilenceId::parse(id).is_none() || id.len() != 36 {
                return swagger(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    601,
                    &format!("silenceID in path must be of type uuid: {id:?}"),
                );
            }
            let mut silences = lock(&shared.silences);
            let Some(s) = silences.iter_mut().find(|s| s.id == id) else {
                return StatusCode::NOT_FOUND.into_response();
            };
            if m == "GET" {
                return (StatusCode::OK, axum::Json(s.to_json(now))).into_response();
            }
            match s.state(now) {
                "expired" => {}
                "active" => {
                    s.ends_at = now;
                    s.updated_at = now;
                }
                _ => {
                    s.starts_at = now;
                    s.ends_at = now;
                    s.updated_at = now;
                }
            }
            StatusCode::OK.into_response()
        }
        (_, "/api/v2/silences") => swagger(
            StatusCode::METHOD_NOT_ALLOWED,
            405,
            &format!("method {method} is not allowed, but [GET,POST] are"),
        ),
        _ => swagger(
            StatusCode::NOT_FOUND,
            404,
            &format!("path {path} was not found"),
        ),
    }
}

/// What go-swagger reads from a body before Alertmanager sees it: each field present with its
/// JSON type, or the 400/422 it answers.
fn post_silence(shared: &Shared, body: &[u8], now: DateTime<Utc>) -> Response {
    let parse_failed = |why: &str| {
        swagger(
            StatusCode::BAD_REQUEST,
            400,
            &format!("parsing silence body from \"\" failed, because {why}"),
        )
    };
    let v: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return parse_failed(
                "json: cannot unmarshal into Go value of type models.PostableSilence",
            )
        }
        Err(e) => return parse_failed(&e.to_string()),
    };
    // Types first (the decoder), then the required fields (the validator).
    for field in ["comment", "createdBy", "id"] {
        if let Some(x) = v.get(field) {
            if !x.is_string() && !x.is_null() {
                return parse_failed(&format!(
                    "json: cannot unmarshal into Go struct field .{field} of type string"
                ));
            }
        }
    }
    let mut times = [None, None];
    for (i, field) in ["startsAt", "endsAt"].into_iter().enumerate() {
        match v.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
                Ok(t) => times[i] = Some(t.with_timezone(&Utc)),
                Err(_) => {
                    return parse_failed(&format!(
                        "parsing time {s:?} as \"2006-01-02T15:04:05.000Z07:00\": cannot parse"
                    ))
                }
            },
            Some(_) => {
                return parse_failed(&format!(
                    "json: cannot unmarshal into Go struct field .{field} of type strfmt.DateTime"
                ))
            }
        }
    }
    let matchers = match v.get("matchers") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(items.clone()),
        Some(_) => {
            return parse_failed(
                "json: cannot unmarshal into Go struct field .matchers of type models.Matchers",
            )
        }
    };
    for m in matchers.iter().flatten() {
        let Some(o) = m.as_object() else {
            return parse_failed("json: cannot unmarshal into Go value of type models.Matcher");
        };
        for (key, is_bool) in [
            ("name", false),
            ("value", false),
            ("isRegex", true),
            ("isEqual", true),
        ] {
            match o.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::Bool(_)) if is_bool => {}
                Some(Value::String(_)) if !is_bool => {}
                Some(_) => {
                    return parse_failed(&format!(
                        "json: cannot unmarshal into Go struct field Matcher.{key}"
                    ))
                }
            }
        }
    }
    let required = |name: &str| {
        swagger(
            StatusCode::UNPROCESSABLE_ENTITY,
            602,
            &format!("{name} in body is required"),
        )
    };
    let text = |field: &str| v.get(field).and_then(Value::as_str).map(str::to_string);
    let Some(comment) = text("comment") else {
        return required("comment");
    };
    let Some(created_by) = text("createdBy") else {
        return required("createdBy");
    };
    let Some(ends_at) = times[1] else {
        return required("endsAt");
    };
    let Some(matchers) = matchers else {
        return required("matchers");
    };
    if matchers.is_empty() {
        return swagger(
            StatusCode::UNPROCESSABLE_ENTITY,
            612,
            "matchers in body should have at least 1 items",
        );
    }
    for (i, m) in matchers.iter().enumerate() {
        for key in ["isRegex", "name", "value"] {
            if m.get(key).filter(|x| !x.is_null()).is_none() {
                return required(&format!("matchers.{i}.{key}"));
            }
        }
    }
    let Some(mut starts_at) = times[0] else {
        return required("startsAt");
    };
    // api.go, before the silence is validated.
    if starts_at >= ends_at {
        return api_error(
            StatusCode::BAD_REQUEST,
            "Failed to create silence: start time must be before end time",
        );
    }
    if ends_at < now {
        return api_error(
            StatusCode::BAD_REQUEST,
            "Failed to create silence: end time can't be in the past",
        );
    }
    // silence.go validateSilence (through Silences.Set).
    let mut all_match_empty = true;
    for (i, m) in matchers.iter().enumerate() {
        let name = m["name"].as_str().unwrap_or_default();
        let value = m["value"].as_str().unwrap_or_default();
        let is_regex = m["isRegex"].as_bool().unwrap_or(false);
        let is_equal = m.get("isEqual").and_then(Value::as_bool).unwrap_or(true);
        if !valid_label_name(name) {
            return api_error(
                StatusCode::BAD_REQUEST,
                &format!("invalid silence: invalid label matcher {i} in set 0: invalid label name {name:?}"),
            );
        }
        if is_regex {
            return api_error(
                StatusCode::BAD_REQUEST,
                &format!("invalid silence: invalid label matcher {i} in set 0: the simulator does not evaluate regular expressions ({value:?})"),
            );
        }
        all_match_empty &= is_equal && value.is_empty();
    }
    if all_match_empty {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid silence: matcher set 0: at least one matcher must not match the empty string",
        );
    }
    if let Some(id) = v
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        if !lock(&shared.silences).iter().any(|s| s.id == id) {
            return api_error(StatusCode::NOT_FOUND, "silence not found");
        }
        // Updating a silence is not modelled: linkbot only creates them.
        return api_error(
            StatusCode::BAD_REQUEST,
            "the simulator does not update silences",
        );
    }
    if starts_at < now {
        starts_at = now;
    }
    let id = uuid::Uuid::new_v4().to_string();
    lock(&shared.silences).push(SimSilence {
        id: id.clone(),
        matchers,
        starts_at,
        ends_at,
        created_by,
        comment,
        updated_at: now,
    });
    (StatusCode::OK, axum::Json(json!({"silenceID": id}))).into_response()
}

/// A label name in Prometheus' classic charset: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_follow_the_classic_charset() {
        for ok in ["alertname", "cluster_id", "_x", "A9"] {
            assert!(valid_label_name(ok), "{ok}");
        }
        for bad in ["", "0x", "cluster-id", "a.b", "é", "a b"] {
            assert!(!valid_label_name(bad), "{bad}");
        }
    }
}
