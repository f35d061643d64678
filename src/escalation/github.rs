//! The GitHub REST client for the issues linkbot opens: `POST {api}repos/{owner}/{repo}/issues`
//! to open one, `POST …/issues/{number}/comments` to comment on it when its incident resolves,
//! and `PATCH …/issues/{number}` to close it (only when the team asked for that).
//!
//! Sends `User-Agent` (GitHub refuses requests without one), `Authorization: Bearer`,
//! `Accept: application/vnd.github+json` and `X-GitHub-Api-Version: 2022-11-28`.
//! It does NOT retry: opening an issue or a comment is not idempotent, and a 5xx may still have
//! created it, so a failure is reported and the person decides.
//!
//! It must NOT build the issue (see [`super::issue_markdown`]) and must never let the token out:
//! it goes into the `Authorization` header (marked sensitive) and nowhere else.

use super::{http_client, scrub, transport_error, EscalationError, NewIssue, System, TIMEOUTS};
use crate::domain::{BaseUrl, GithubRepo};
use crate::metrics::Metrics;
use crate::net::{Net, Timeouts};
use crate::secret::Secret;
use serde::Deserialize;
use std::fmt;
use std::time::Duration;
use url::Url;

const SYSTEM: System = System::GitHub;

/// The GitHub REST API version this client speaks.
pub const API_VERSION: &str = "2022-11-28";

/// The issue GitHub opened.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IssueLink {
    /// The issue number in its repository.
    pub number: u64,
    /// The issue's web page.
    pub html_url: String,
}

/// The comment GitHub added.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CommentLink {
    /// The comment's id.
    pub id: u64,
    /// The comment's web page.
    pub html_url: String,
}

/// Opens, comments on and closes issues with one token.
#[derive(Clone)]
pub struct GitHubClient {
    http: reqwest::Client,
    net: Net,
    api_base: Url,
    token: Secret,
    metrics: Metrics,
}

impl fmt::Debug for GitHubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubClient")
            .field("api_base", &self.api_base.as_str())
            .field("token", &self.token)
            .finish()
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
}

impl GitHubClient {
    /// A client for `api_base` (`[github] api_url`, e.g. `https://api.github.com`) with the
    /// default timeout.
    pub fn new(
        api_base: BaseUrl,
        token: Secret,
        metrics: Metrics,
        net: &Net,
    ) -> Result<Self, EscalationError> {
        Ok(GitHubClient {
            http: http_client(SYSTEM, TIMEOUTS, net)?,
            net: net.clone(),
            api_base: api_base.into_url(),
            token,
            metrics,
        })
    }

    /// The same client with another per-request timeout.
    pub fn with_timeout(self, timeout: Duration) -> Result<Self, EscalationError> {
        self.with_timeouts(Timeouts::new(timeout, timeout))
    }

    /// The same client with other bounds per request (its table in bot.toml).
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Result<Self, EscalationError> {
        self.http = http_client(SYSTEM, timeouts, &self.net)?;
        Ok(self)
    }

    /// Opens an issue in `repo` (`owner/repo`). Counted in
    /// `linkbot_escalations{method="github"}` with its outcome.
    pub async fn open_issue(
        &self,
        repo: &GithubRepo,
        issue: &NewIssue,
    ) -> Result<IssueLink, EscalationError> {
        let result = self.open_issue_once(repo, issue).await;
        self.count(&result);
        result
    }

    async fn open_issue_once(
        &self,
        repo: &GithubRepo,
        issue: &NewIssue,
    ) -> Result<IssueLink, EscalationError> {
        let (status, text) = self
            .send(reqwest::Method::POST, repo, &["issues"], issue, 201)
            .await?;
        let link: IssueLink = self.answer(status, &text)?;
        web_page(status, &link.html_url)?;
        Ok(link)
    }

    /// Comments `body` (GitHub markdown) on issue `number` of `repo`. Counted in
    /// `linkbot_escalations{method="github"}` with its outcome.
    pub async fn comment(
        &self,
        repo: &GithubRepo,
        number: u64,
        body: &str,
    ) -> Result<CommentLink, EscalationError> {
        let n = number.to_string();
        let result = async {
            let (status, text) = self
                .send(
                    reqwest::Method::POST,
                    repo,
                    &["issues", &n, "comments"],
                    &serde_json::json!({ "body": body }),
                    201,
                )
                .await?;
            let link: CommentLink = self.answer(status, &text)?;
            web_page(status, &link.html_url)?;
            Ok(link)
        }
        .await;
        self.count(&result);
        result
    }

    /// Closes issue `number` of `repo` as completed. Closing a closed issue is not an error.
    pub async fn close(&self, repo: &GithubRepo, number: u64) -> Result<(), EscalationError> {
        let n = number.to_string();
        let result = self
            .send(
                reqwest::Method::PATCH,
                repo,
                &["issues", &n],
                &serde_json::json!({ "state": "closed", "state_reason": "completed" }),
                200,
            )
            .await
            .map(|_| ());
        self.count(&result);
        result
    }

    fn count<T>(&self, result: &Result<T, EscalationError>) {
        let outcome = match result {
            Ok(_) => "ok".to_string(),
            Err(e) => e.kind(),
        };
        Metrics::call(&self.metrics.escalations, SYSTEM.as_str(), &outcome);
    }

    /// One request to `{api}repos/{owner}/{repo}/{path…}`; the status and body when the status
    /// is `expect`, else the error GitHub's answer says.
    async fn send(
        &self,
        method: reqwest::Method,
        repo: &GithubRepo,
        path: &[&str],
        body: &impl serde::Serialize,
        expect: u16,
    ) -> Result<(u16, String), EscalationError> {
        let mut url = self.api_base.clone();
        url.path_segments_mut()
            .map_err(|_| EscalationError::InvalidRepo(repo.to_string()))?
            .pop_if_empty()
            .extend(["repos", repo.owner(), repo.name()])
            .extend(path);
        let resp = self
            .http
            .request(method, url)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
            .json(body)
            .send()
            .await
            .map_err(|e| transport_error(SYSTEM, e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| transport_error(SYSTEM, e))?;
        match status {
            s if s == expect => Ok((status, text)),
            429 | 500..=599 => Err(EscalationError::Unavailable {
                system: SYSTEM,
                status,
                message: self.message_of(&text),
            }),
            _ => Err(EscalationError::Rejected {
                system: SYSTEM,
                status,
                message: self.message_of(&text),
            }),
        }
    }

    fn answer<T: serde::de::DeserializeOwned>(
        &self,
        status: u16,
        text: &str,
    ) -> Result<T, EscalationError> {
        serde_json::from_str(text).map_err(|e| EscalationError::BadAnswer {
            system: SYSTEM,
            status,
            detail: e.to_string(),
        })
    }

    /// GitHub's `message` and its validation `errors`, scrubbed of the token.
    fn message_of(&self, text: &str) -> String {
        let raw = match serde_json::from_str::<ErrorBody>(text) {
            Ok(b) => {
                let details: Vec<String> = b
                    .errors
                    .iter()
                    .map(|e| match e {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Object(o) => {
                            let get = |k: &str| o.get(k).and_then(|v| v.as_str()).unwrap_or("");
                            let msg = get("message");
                            if !msg.is_empty() {
                                msg.to_string()
                            } else {
                                format!("{} {}", get("field"), get("code"))
                                    .trim()
                                    .to_string()
                            }
                        }
                        other => other.to_string(),
                    })
                    .collect();
                if details.is_empty() {
                    b.message
                } else {
                    format!("{} ({})", b.message, details.join("; "))
                }
            }
            Err(_) => text.to_string(),
        };
        let raw = if raw.trim().is_empty() {
            "no message".to_string()
        } else {
            raw
        };
        scrub(&raw, &self.token)
    }
}

/// A page GitHub answered must be a URL: it is shown in Slack as a link.
fn web_page(status: u16, html_url: &str) -> Result<(), EscalationError> {
    match Url::parse(html_url) {
        Ok(_) => Ok(()),
        Err(_) => Err(EscalationError::BadAnswer {
            system: SYSTEM,
            status,
            detail: "html_url is not a URL".into(),
        }),
    }
}
