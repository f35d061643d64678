//! A simulated GitHub REST API on 127.0.0.1:0 for the issues linkbot opens:
//! `POST /repos/{owner}/{repo}/issues`, `POST /repos/{owner}/{repo}/issues/{number}/comments`
//! and `PATCH /repos/{owner}/{repo}/issues/{number}`.
//!
//! Answers like the real API, in its order of checks: 403 without a `User-Agent`, 401 without
//! a bearer token ("Requires authentication") or with the wrong one ("Bad credentials"), 404 for
//! a repository or issue it does not know, 400 for a body that is not JSON, 422 "Validation
//! Failed" for a missing/blank title (or one over 256 characters, or a body over 65 536), a
//! missing/blank comment body (or one over 65 536), or a `state`/`state_reason` GitHub does not
//! know; 201 with `number`, `html_url`, … for an issue or comment it creates, 200 for an update. Every request is recorded; the next N requests
//! can be made to answer 429/5xx or never answer.
//!
//! Test and demo code only: it must never be reachable from the bot's real paths.

use super::{lock, serve, Fault, RecordedRequest, Recorder, Running};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const DOCS: &str = "https://docs.github.com/rest/issues/issues#create-an-issue";

/// An issue the sim opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedIssue {
    /// `owner/repo`.
    pub repo: String,
    /// Its number in the repo.
    pub number: u64,
    /// The title as sent.
    pub title: String,
    /// The body as sent.
    pub body: String,
    /// The labels as sent.
    pub labels: Vec<String>,
    /// `open` or `closed` (changed by `PATCH`).
    pub state: String,
    /// The comments, in order, as sent.
    pub comments: Vec<String>,
}

struct Shared {
    recorder: Recorder,
    shutdown: CancellationToken,
    token: String,
    repos: Vec<String>,
    issues: Mutex<Vec<CreatedIssue>>,
    next_number: Mutex<BTreeMap<String, u64>>,
    base: OnceLock<url::Url>,
}

/// A running GitHub sim; stops when dropped (or by [`GitHubSim::shutdown`]).
pub struct GitHubSim {
    shared: Arc<Shared>,
    running: Running,
}

/// Starts the sim on 127.0.0.1 on a free port. It accepts only `token` and knows only `repos`
/// (`owner/repo`, compared case-insensitively, like GitHub).
pub async fn start(token: &str, repos: &[&str]) -> std::io::Result<GitHubSim> {
    let shutdown = CancellationToken::new();
    let shared = Arc::new(Shared {
        recorder: Recorder::default(),
        shutdown: shutdown.clone(),
        token: token.to_string(),
        repos: repos.iter().map(|r| r.to_ascii_lowercase()).collect(),
        issues: Mutex::new(Vec::new()),
        next_number: Mutex::new(BTreeMap::new()),
        base: OnceLock::new(),
    });
    let router = Router::new().fallback(handle).with_state(shared.clone());
    let running = serve(router, shutdown).await?;
    let _ = shared.base.set(running.base_url());
    Ok(GitHubSim { shared, running })
}

impl GitHubSim {
    /// The base URL to configure as `[github] api_url` (`http://127.0.0.1:PORT/`).
    pub fn base_url(&self) -> url::Url {
        self.running.base_url()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.snapshot()
    }

    /// Every issue opened so far, in order.
    pub fn issues(&self) -> Vec<CreatedIssue> {
        lock(&self.shared.issues).clone()
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

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"message": message, "documentation_url": DOCS})),
    )
        .into_response()
}

fn validation_failed(field: &str, code: &str, message: Option<&str>) -> Response {
    let mut e = json!({"resource": "Issue", "code": code, "field": field});
    if let (Some(m), Some(obj)) = (message, e.as_object_mut()) {
        obj.insert("message".into(), json!(m));
    }
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"message": "Validation Failed", "errors": [e], "documentation_url": DOCS})),
    )
        .into_response()
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
    match shared.recorder.next_fault() {
        Some(Fault::Status(status)) => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = if status == 429 {
                "API rate limit exceeded"
            } else {
                "Server Error"
            };
            return error(code, message);
        }
        Some(Fault::Stall) => {
            shared.shutdown.cancelled().await;
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        None => {}
    }
    let has_ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty());
    if !has_ua {
        return error(
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.",
        );
    }
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let (owner, repo, route) = match (segments.as_slice(), &method) {
        (["repos", owner, repo, "issues"], &Method::POST) => (*owner, *repo, Route::Open),
        (["repos", owner, repo, "issues", n, "comments"], &Method::POST) => match n.parse() {
            Ok(n) => (*owner, *repo, Route::Comment(n)),
            Err(_) => return error(StatusCode::NOT_FOUND, "Not Found"),
        },
        (["repos", owner, repo, "issues", n], &Method::PATCH) => match n.parse() {
            Ok(n) => (*owner, *repo, Route::Update(n)),
            Err(_) => return error(StatusCode::NOT_FOUND, "Not Found"),
        },
        _ => return error(StatusCode::NOT_FOUND, "Not Found"),
    };
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let presented = auth.and_then(|a| {
        a.strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("token "))
    });
    match presented {
        None => return error(StatusCode::UNAUTHORIZED, "Requires authentication"),
        Some(t) if t != shared.token || t.is_empty() => {
            return error(StatusCode::UNAUTHORIZED, "Bad credentials")
        }
        Some(_) => {}
    }
    let full = format!("{owner}/{repo}");
    if !shared.repos.contains(&full.to_ascii_lowercase()) {
        return error(StatusCode::NOT_FOUND, "Not Found");
    }
    let issue: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return error(StatusCode::BAD_REQUEST, "Problems parsing JSON"),
    };
    let base = shared
        .base
        .get()
        .map(|b| b.to_string())
        .unwrap_or_else(|| "http://127.0.0.1/".into());
    match route {
        Route::Open => {}
        Route::Comment(number) => return comment(&shared, &full, number, &issue, &base),
        Route::Update(number) => return update(&shared, &full, number, &issue, &base),
    }
    let title = issue.get("title").and_then(Value::as_str).unwrap_or("");
    if let Some(refused) = text_field("title", title, true, 256) {
        return refused;
    }
    let text = issue.get("body").and_then(Value::as_str).unwrap_or("");
    if let Some(refused) = text_field("body", text, false, 65_536) {
        return refused;
    }
    let labels: Vec<String> = issue
        .get("labels")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let number = {
        let mut numbers = lock(&shared.next_number);
        let n = numbers.entry(full.to_ascii_lowercase()).or_insert(0);
        *n += 1;
        *n
    };
    lock(&shared.issues).push(CreatedIssue {
        repo: full.clone(),
        number,
        title: title.to_string(),
        body: text.to_string(),
        labels: labels.clone(),
        state: "open".into(),
        comments: Vec::new(),
    });
    (
        StatusCode::CREATED,
        Json(json!({
            "id": 1_000_000 + number,
            "number": number,
            "url": format!("{base}repos/{full}/issues/{number}"),
            "html_url": format!("{base}{full}/issues/{number}"),
            "title": title,
            "body": text,
            "state": "open",
            "labels": labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
        })),
    )
        .into_response()
}

/// The issue `number` of `repo` (compared case-insensitively, like GitHub), if the sim opened it.
fn find_issue<'a>(
    issues: &'a mut [CreatedIssue],
    repo: &str,
    number: u64,
) -> Option<&'a mut CreatedIssue> {
    issues
        .iter_mut()
        .find(|i| i.repo.eq_ignore_ascii_case(repo) && i.number == number)
}

/// GitHub's 422 for a text field: missing or blank when `required`, or over `max` characters.
fn text_field(field: &str, value: &str, required: bool, max: usize) -> Option<Response> {
    if required && value.trim().is_empty() {
        return Some(validation_failed(field, "missing_field", None));
    }
    (value.chars().count() > max).then(|| {
        validation_failed(
            field,
            "custom",
            Some(&format!(
                "{field} is too long (maximum is {max} characters)"
            )),
        )
    })
}

/// What a request asks for, once its path and method are known.
enum Route {
    Open,
    Comment(u64),
    Update(u64),
}

/// `POST …/issues/{number}/comments`: 404 for an issue it never opened, 422 for a missing,
/// blank or over-long body; 201 with the comment.
fn comment(shared: &Shared, repo: &str, number: u64, req: &Value, base: &str) -> Response {
    let body = req.get("body").and_then(Value::as_str).unwrap_or("");
    let mut issues = lock(&shared.issues);
    let Some(issue) = find_issue(&mut issues, repo, number) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    if let Some(refused) = text_field("body", body, true, 65_536) {
        return refused;
    }
    issue.comments.push(body.to_string());
    let id = 2_000_000 + number * 1000 + issue.comments.len() as u64;
    (
        StatusCode::CREATED,
        Json(json!({
            "id": id,
            "html_url": format!("{base}{repo}/issues/{number}#issuecomment-{id}"),
            "body": body,
        })),
    )
        .into_response()
}

/// `PATCH …/issues/{number}`: 404 for an issue it never opened, 422 for a `state` other than
/// `open`/`closed` or a `state_reason` other than `completed`/`not_planned`/`reopened`; 200.
fn update(shared: &Shared, repo: &str, number: u64, req: &Value, base: &str) -> Response {
    let mut issues = lock(&shared.issues);
    let Some(issue) = find_issue(&mut issues, repo, number) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let state = match req.get("state") {
        None => None,
        Some(Value::String(s)) if s == "open" || s == "closed" => Some(s.clone()),
        Some(_) => return validation_failed("state", "invalid", None),
    };
    match req.get("state_reason") {
        None | Some(Value::Null) => {}
        Some(Value::String(r))
            if ["completed", "not_planned", "reopened"].contains(&r.as_str()) => {}
        Some(_) => return validation_failed("state_reason", "invalid", None),
    }
    if let Some(state) = state {
        issue.state = state;
    }
    (
        StatusCode::OK,
        Json(json!({
            "number": number,
            "html_url": format!("{base}{repo}/issues/{number}"),
            "state": issue.state,
            "title": issue.title,
        })),
    )
        .into_response()
}
