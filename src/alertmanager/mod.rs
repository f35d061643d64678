//! The Alertmanager API v2 silences client: create a silence (`POST {url}/api/v2/silences`),
//! read one (`GET {url}/api/v2/silence/{id}`) and expire one (`DELETE {url}/api/v2/silence/{id}`).
//!
//! What it encodes of Alertmanager (prometheus/alertmanager `api/v2/openapi.yaml`, `api/v2/api.go`,
//! `silence/silence.go`): a created silence answers 200 `{"silenceID": "<uuid>"}`; an invalid one
//! answers 400 with a JSON *string* ("Failed to create silence: end time can't be in the past",
//! "invalid silence: invalid label matcher 0 in set 0: invalid label name …"); a body that misses
//! a required field answers go-swagger's 422 `{"code": 602, "message": "comment in body is
//! required"}`; an unknown id answers 404 with no body on GET and DELETE; a failure inside
//! Alertmanager answers 500 with a JSON string. [`error_message`] reads all three body shapes.
//!
//! No request is retried: a create that may have reached Alertmanager must not be sent twice
//! (it would make a second silence), and the workflow says what happened instead. Every request
//! is bounded by its [`Timeouts`] and goes through the shared TLS/proxy setup ([`Net`]).
//!
//! This module must NOT import `config` (it takes a [`BaseUrl`], an optional token and its
//! [`Timeouts`]), decide anything (the silence workflow does, `crate::silence`), or let the
//! bearer token out: it is in the `Authorization` header and nowhere else (errors are scrubbed).

use crate::domain::BaseUrl;
use crate::net::{Net, Timeouts};
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;
use url::Url;

/// The default bounds on one request to Alertmanager: 10 s, 5 s to connect
/// (`[alertmanager] request_timeout_secs` / `connect_timeout_secs`).
pub const TIMEOUTS: Timeouts = Timeouts::new(Duration::from_secs(10), Duration::from_secs(5));

/// The most of Alertmanager's own message kept in an error (it is shown in Slack).
pub const MAX_MESSAGE_CHARS: usize = 300;

/// The `User-Agent` of every request.
const USER_AGENT: &str = concat!("linkbot/", env!("CARGO_PKG_VERSION"));

/// A silence id as Alertmanager gives it (a UUID, `format: uuid` in its API). Parsed, so that
/// a value from a Slack button can never put anything else into a request path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SilenceId(String);

impl SilenceId {
    /// Parses an id: the 36-character hyphenated UUID form Alertmanager answers with.
    pub fn parse(input: &str) -> Option<SilenceId> {
        let s = input.trim();
        let shape_ok = s.len() == 36
            && s.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit(),
            });
        shape_ok.then(|| SilenceId(s.to_ascii_lowercase()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SilenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One label matcher of a silence (`matcher` in the API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The value (or regular expression when `is_regex`).
    pub value: String,
    /// Whether `value` is a regular expression.
    pub is_regex: bool,
    /// `true` for `=`/`=~`, `false` for `!=`/`!~` (Alertmanager's default is `true`).
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl Matcher {
    /// `name = value`, exactly (`isEqual: true, isRegex: false`).
    pub fn equal(name: &str, value: &str) -> Matcher {
        Matcher {
            name: name.to_string(),
            value: value.to_string(),
            is_regex: false,
            is_equal: true,
        }
    }
}

/// A silence to create (`postableSilence` without an id: always a new one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSilence {
    /// What it silences (all must match).
    pub matchers: Vec<Matcher>,
    /// From when.
    pub starts_at: DateTime<Utc>,
    /// Until when.
    pub ends_at: DateTime<Utc>,
    /// Who (linkbot writes "<Slack name> (<user id>)").
    pub created_by: String,
    /// Why, with a link to the Slack thread.
    pub comment: String,
}

/// A silence's state as Alertmanager computes it from its times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    /// In force now.
    Active,
    /// Starts later.
    Pending,
    /// Over (ended, or expired early).
    Expired,
}

#[derive(Debug, Clone, Deserialize)]
struct Status {
    state: SilenceState,
}

/// A silence as Alertmanager shows it (`gettableSilence`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    /// Its id.
    pub id: String,
    /// Its matchers.
    pub matchers: Vec<Matcher>,
    /// From when.
    pub starts_at: DateTime<Utc>,
    /// Until when (the time it was expired, once expired early).
    pub ends_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    /// Its comment.
    pub comment: String,
    #[serde(rename = "status")]
    status: Status,
}

impl Silence {
    /// Active, pending or expired.
    pub fn state(&self) -> SilenceState {
        self.status.state
    }
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "silenceID")]
    silence_id: String,
}

/// Why a request to Alertmanager did not do what was asked. Never holds the token: messages
/// that come back are scrubbed of it before they are stored here.
#[derive(Debug, thiserror::Error)]
pub enum AlertmanagerError {
    /// The HTTP client could not be built (TLS setup).
    #[error("could not set up the Alertmanager HTTP client")]
    Client {
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// No answer: connection refused, DNS, TLS, proxy, or the request's timeout.
    #[error("Alertmanager did not answer ({kind})")]
    Transport {
        /// `timeout`, `connect` or `transport`.
        kind: &'static str,
        /// A sentence for a certificate or proxy problem, when that is the cause.
        explained: Option<String>,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The silence (or its id) is unknown to Alertmanager (404).
    #[error("Alertmanager does not know silence {id}")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// The request was refused for its credentials (401/403, usually a proxy in front).
    #[error("Alertmanager refused linkbot's credentials with HTTP {status}")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
    },
    /// Alertmanager refused the request (any other 4xx), with its message.
    #[error("Alertmanager refused the request with HTTP {status}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// What Alertmanager said, scrubbed and shortened.
        message: String,
    },
    /// Alertmanager failed (5xx).
    #[error("Alertmanager answered HTTP {status}: {message}")]
    Unavailable {
        /// The HTTP status.
        status: u16,
        /// What it said, scrubbed and shortened.
        message: String,
    },
    /// A success status with a body that is not what the API documents.
    #[error("Alertmanager answered HTTP {status} with an unexpected body: {detail}")]
    BadAnswer {
        /// The HTTP status.
        status: u16,
        /// What was wrong with it.
        detail: String,
    },
}

impl AlertmanagerError {
    /// The low-cardinality outcome for logs and metrics (`timeout`, `http_400`, …).
    pub fn kind(&self) -> String {
        match self {
            AlertmanagerError::Client { .. } => "client".into(),
            AlertmanagerError::Transport { kind, .. } => (*kind).into(),
            AlertmanagerError::NotFound { .. } => "http_404".into(),
            AlertmanagerError::Unauthorized { status }
            | AlertmanagerError::Refused { status, .. }
            | AlertmanagerError::Unavailable { status, .. } => format!("http_{status}"),
            AlertmanagerError::BadAnswer { .. } => "bad_answer".into(),
        }
    }

    /// One sentence for the thread: that it was Alertmanager, and what it said or what failed.
    /// Holds Alertmanager's own text (scrubbed, shortened); the Slack layer escapes it.
    pub fn user_message(&self) -> String {
        match self {
            AlertmanagerError::Client { .. } => {
                "linkbot could not set up its Alertmanager client; the operators need to look at its logs.".into()
            }
            AlertmanagerError::Transport { kind: "timeout", .. } => {
                "Alertmanager did not answer in time; nothing was changed there that linkbot knows of. Try again in a minute, or use Alertmanager's UI.".into()
            }
            AlertmanagerError::Transport {
                explained: Some(problem),
                ..
            } => format!("linkbot could not reach Alertmanager: {problem}."),
            AlertmanagerError::Transport { .. } => {
                "linkbot could not reach Alertmanager. Try again in a minute, or use Alertmanager's UI.".into()
            }
            AlertmanagerError::NotFound { id } => format!(
                "Alertmanager does not know silence {id} (HTTP 404): it may have been deleted there already."
            ),
            AlertmanagerError::Unauthorized { status } => format!(
                "Alertmanager refused linkbot's credentials (HTTP {status}): check ALERTMANAGER_TOKEN."
            ),
            AlertmanagerError::Refused { status, message } => {
                format!("Alertmanager refused the request (HTTP {status}: {message}).")
            }
            AlertmanagerError::Unavailable { status, message } => format!(
                "Alertmanager failed (HTTP {status}: {message}). Try again in a minute, or use Alertmanager's UI."
            ),
            AlertmanagerError::BadAnswer { status, .. } => format!(
                "Alertmanager answered HTTP {status} with something linkbot does not understand; check its UI for what happened."
            ),
        }
    }
}

/// What Alertmanager said in an error body, as one line: a JSON string (its API errors), an
/// object's `message` (go-swagger's validation errors, `{"code": 602, "message": …}`), or the
/// text itself (a proxy in front); "no message" for an empty body. Control characters become
/// spaces, `token` (when given) is replaced, and the result is at most [`MAX_MESSAGE_CHARS`].
pub fn error_message(body: &str, token: Option<&Secret>) -> String {
    let raw = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(o)) => match o.get("message") {
            Some(serde_json::Value::String(m)) => m.clone(),
            _ => body.to_string(),
        },
        _ => body.to_string(),
    };
    let line = crate::format::one_line(&raw);
    if line.trim().is_empty() {
        return "no message".into();
    }
    crate::secret::scrub(&line, token, MAX_MESSAGE_CHARS)
}

/// Talks to one Alertmanager (one environment's `alertmanager_url`). Cheap to clone.
#[derive(Clone)]
pub struct AlertmanagerClient {
    http: reqwest::Client,
    net: Net,
    base: BaseUrl,
    token: Option<Secret>,
}

impl fmt::Debug for AlertmanagerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertmanagerClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .finish()
    }
}

impl AlertmanagerClient {
    /// A client for `base` (the environment's `alertmanager_url`), sending `token` as
    /// `Authorization: Bearer` when given, each request bounded by `timeouts`.
    pub fn new(
        base: BaseUrl,
        token: Option<Secret>,
        timeouts: Timeouts,
        net: &Net,
    ) -> Result<Self, AlertmanagerError> {
        let http = timeouts
            .apply(net.http_client())
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| AlertmanagerError::Client { source })?;
        Ok(AlertmanagerClient {
            http,
            net: net.clone(),
            base,
            token,
        })
    }

    /// The URL of Alertmanager's UI for people (its base URL).
    pub fn base_url(&self) -> &BaseUrl {
        &self.base
    }

    fn url(&self, path: &str) -> Url {
        self.base
            .join(path)
            .unwrap_or_else(|_| self.base.url().clone())
    }

    fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        let req = self
            .http
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json");
        match &self.token {
            Some(t) => req.bearer_auth(t.expose()),
            None => req,
        }
    }

    fn transport(&self, source: reqwest::Error) -> AlertmanagerError {
        let kind = if source.is_timeout() {
            "timeout"
        } else if source.is_connect() {
            "connect"
        } else {
            "transport"
        };
        AlertmanagerError::Transport {
            kind,
            explained: self.net.explain_reqwest(&source),
            source,
        }
    }

    /// Sends `req`; the status and the body text, or a transport error.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, String), AlertmanagerError> {
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| self.transport(e))?;
        Ok((status, text))
    }

    /// An error for a non-2xx answer (`id`: the silence asked about, for a 404).
    fn failure(&self, status: u16, body: &str, id: Option<&str>) -> AlertmanagerError {
        let message = error_message(body, self.token.as_ref());
        match status {
            404 if id.is_some() => AlertmanagerError::NotFound {
                id: id.unwrap_or_default().to_string(),
            },
            401 | 403 => AlertmanagerError::Unauthorized { status },
            500..=599 => AlertmanagerError::Unavailable { status, message },
            _ => AlertmanagerError::Refused { status, message },
        }
    }

    /// Creates `silence`; its id. Never retried (a retry could create a second silence).
    pub async fn create(&self, silence: &NewSilence) -> Result<SilenceId, AlertmanagerError> {
        let req = self
            .request(reqwest::Method::POST, self.url("api/v2/silences"))
            .json(silence);
        let (status, body) = self.send(req).await?;
        if status != 200 {
            return Err(self.failure(status, &body, None));
        }
        let created: Created =
            serde_json::from_str(&body).map_err(|e| AlertmanagerError::BadAnswer {
                status,
                detail: e.to_string(),
            })?;
        SilenceId::parse(&created.silence_id).ok_or_else(|| AlertmanagerError::BadAnswer {
            status,
            detail: "silenceID is not a UUID".into(),
        })
    }

    /// Reads silence `id`.
    pub async fn get(&self, id: &SilenceId) -> Result<Silence, AlertmanagerError> {
        let url = self.url(&format!("api/v2/silence/{id}"));
        let (status, body) = self.send(self.request(reqwest::Method::GET, url)).await?;
        if status != 200 {
            return Err(self.failure(status, &body, Some(id.as_str())));
        }
        serde_json::from_str(&body).map_err(|e| AlertmanagerError::BadAnswer {
            status,
            detail: e.to_string(),
        })
    }

    /// Expires silence `id` now. Alertmanager answers 200 for a silence already expired too.
    pub async fn expire(&self, id: &SilenceId) -> Result<(), AlertmanagerError> {
        let url = self.url(&format!("api/v2/silence/{id}"));
        let (status, body) = self
            .send(self.request(reqwest::Method::DELETE, url))
            .await?;
        match status {
            200 => Ok(()),
            _ => Err(self.failure(status, &body, Some(id.as_str()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn error_bodies_of_every_shape_read_as_one_line() {
        let token = Secret::new("am-token-0123456789");
        let cases = [
            // api.go: a JSON string.
            (
                r#""Failed to create silence: end time can't be in the past""#,
                "Failed to create silence: end time can't be in the past",
            ),
            (
                r#""invalid silence: invalid label matcher 0 in set 0: invalid label name \"0x\"""#,
                r#"invalid silence: invalid label matcher 0 in set 0: invalid label name "0x""#,
            ),
            // go-swagger validation.
            (
                r#"{"code":602,"message":"comment in body is required"}"#,
                "comment in body is required",
            ),
            // A proxy's text, with a newline.
            ("Unauthorized\n", "Unauthorized"),
            ("", "no message"),
            ("   ", "no message"),
            (r#""""#, "no message"),
            // An object without a message is shown as it came.
            (r#"{"error":"x"}"#, r#"{"error":"x"}"#),
            // The token is never echoed.
            (
                r#""bad bearer am-token-0123456789""#,
                "bad bearer [redacted …6789]",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(error_message(body, Some(&token)), want, "{body}");
        }
    }

    #[test]
    fn silence_ids_are_uuids_only() {
        let ok = [
            "0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11",
            "0B5E5B23-6F7B-4D0E-9D8A-5A1F0C3E2B11",
        ];
        for id in ok {
            assert_eq!(
                SilenceId::parse(id).map(|s| s.to_string()),
                Some("0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11".to_string())
            );
        }
        for bad in [
            "",
            "0b5e5b23",
            "../../api/v2/status",
            "0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b1",
            "0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11/x",
            "0b5e5b23x6f7b-4d0e-9d8a-5a1f0c3e2b11",
            "gb5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11",
        ] {
            assert_eq!(SilenceId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_new_silence_has_the_api_v2_shape() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).expect("a time");
        let s = NewSilence {
            matchers: vec![
                Matcher::equal("alertname", "A"),
                Matcher::equal("cluster_id", "c"),
            ],
            starts_at: at,
            ends_at: at + chrono::Duration::hours(1),
            created_by: "alice (U1)".into(),
            comment: "why".into(),
        };
        let v = serde_json::to_value(&s).expect("serializes");
        assert_eq!(
            v,
            serde_json::json!({
                "matchers": [
                    {"name": "alertname", "value": "A", "isRegex": false, "isEqual": true},
                    {"name": "cluster_id", "value": "c", "isRegex": false, "isEqual": true}
                ],
                "startsAt": "2023-11-14T22:13:20Z",
                "endsAt": "2023-11-14T23:13:20Z",
                "createdBy": "alice (U1)",
                "comment": "why"
            })
        );
    }

    #[test]
    fn every_error_has_a_sentence_naming_alertmanager() {
        let errors = [
            AlertmanagerError::NotFound { id: "x".into() },
            AlertmanagerError::Unauthorized { status: 401 },
            AlertmanagerError::Refused {
                status: 400,
                message: "m".into(),
            },
            AlertmanagerError::Unavailable {
                status: 500,
                message: "m".into(),
            },
            AlertmanagerError::BadAnswer {
                status: 200,
                detail: "d".into(),
            },
        ];
        for e in errors {
            let s = e.user_message();
            assert!(s.contains("Alertmanager"), "{s}");
            assert!(s.ends_with('.'), "{s}");
            assert!(!s.contains('\n'), "{s}");
        }
    }

    proptest! {
        #[test]
        fn error_message_is_one_bounded_line_without_the_token(body in ".{0,600}") {
            let token = Secret::new("am-token-0123456789");
            let with_token = format!("{body}am-token-0123456789{body}");
            for b in [body.clone(), with_token, serde_json::to_string(&body).unwrap()] {
                let m = error_message(&b, Some(&token));
                prop_assert!(!m.contains('\n') && !m.contains('\r'));
                prop_assert!(m.chars().count() <= MAX_MESSAGE_CHARS + 1);
                prop_assert!(!m.contains("am-token-0123456789"));
                prop_assert!(!m.is_empty());
            }
        }
    }
}
