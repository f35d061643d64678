//! Jenkins' remote access API: trigger the runbook's job, follow it from the queue to a finished
//! build, download its artifacts, and read the tail of its console when it fails.
//!
//! Speaks real Jenkins (SPEC §3, §8): nested `job/A/job/B/job/C` paths, HTTP basic auth with a
//! user and API token, one crumb retry on a 403 that asks for one, bounded retries of idempotent
//! GETs, and URLs always resolved against the configured base (a Jenkins behind a proxy may report
//! another host). Polling is cheap and adaptive (see [`poll`]) and shared: one follower per
//! client polls every build in flight with one job-level request per tick (see `follow`). This
//! module does not decide verdicts, does not parse artifacts, and never logs or returns the API
//! token.

pub mod api;
mod follow;
pub mod poll;

pub use follow::MIN_FAILED_POLLS;
pub use poll::{next_poll, next_queue_poll, PollPolicy};

use crate::domain::{BaseUrl, Carrier, LocationId, Tugboat};
use crate::metrics::Metrics;
use crate::net::{Net, NetError, Timeouts};
use crate::secret::Secret;
use reqwest::header::{
    HeaderName, HeaderValue, ACCEPT, CONTENT_LENGTH, COOKIE, LOCATION, SET_COOKIE,
};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use url::Url;

/// The default bounds on one HTTP request to Jenkins: 30 s, body included; 10 s to connect
/// (`[jenkins] request_timeout_secs` / `connect_timeout_secs`).
pub const TIMEOUTS: Timeouts = Timeouts::new(Duration::from_secs(30), Duration::from_secs(10));
/// How many times a failed idempotent request is retried (so at most 4 attempts).
pub const MAX_RETRIES: u32 = 3;
/// How many console lines a failed build's error carries.
pub const CONSOLE_TAIL_LINES: usize = 30;
/// The most of a console kept while streaming it (only its tail is shown).
const CONSOLE_KEEP_BYTES: usize = 64 * 1024;
/// The most of a console read at all; past this the tail shown is of what was read.
const CONSOLE_MAX_READ: u64 = 16 * 1024 * 1024;
/// The most of a JSON answer (or an error page) read.
const MAX_JSON_BYTES: u64 = 2 * 1024 * 1024;
/// How many recent builds are searched for a queue item that Jenkins has forgotten.
const BUILDS_SEARCHED: u32 = 100;
/// How many builds Jenkins lists under a job's `builds` (its newest); `allBuilds` lists all.
const JENKINS_BUILDS_LIMIT: u32 = 100;

/// The parameters of the runbook's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildParams {
    /// `BRANCH`.
    pub branch: String,
    /// `ENV_Branch`.
    pub env_branch: String,
    /// `CLUSTERID`: the location id.
    pub cluster_id: LocationId,
    /// `TUGBOAT`, sent in kebab case.
    pub tugboat: Tugboat,
    /// `CARRIER_NAME`.
    pub carrier: Carrier,
}

impl BuildParams {
    /// The form fields of `buildWithParameters`, in a stable order.
    pub fn form(&self) -> [(&'static str, String); 5] {
        [
            ("BRANCH", self.branch.clone()),
            ("ENV_Branch", self.env_branch.clone()),
            ("CLUSTERID", self.cluster_id.to_string()),
            ("TUGBOAT", self.tugboat.kebab()),
            ("CARRIER_NAME", self.carrier.to_string()),
        ]
    }
}

/// A queue item: the handle Jenkins gives a triggered job until it starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRef {
    /// The queue item id.
    pub id: u64,
    /// `{base}queue/item/{id}/`.
    pub url: Url,
}

/// A build of the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRef {
    /// The build number.
    pub number: u64,
    /// `{base}job/…/{number}/`: the link shown to people.
    pub url: Url,
}

/// Where a job is: persisted by the store so a restarted bot resumes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobHandle {
    /// Still in the queue (or not yet seen to leave it).
    Queued(QueueRef),
    /// A build exists.
    Build(BuildRef),
}

/// What a queue item says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueState {
    /// Waiting; `why` is Jenkins' reason ("Waiting for next available executor").
    Waiting {
        /// Jenkins' reason, when it gave one.
        why: Option<String>,
    },
    /// Left the queue and became this build.
    Started(BuildRef),
    /// Cancelled before it started.
    Cancelled {
        /// Jenkins' reason, when it gave one.
        why: Option<String>,
    },
}

/// What a build says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildState {
    /// Whether it is still running.
    pub building: bool,
    /// `SUCCESS`, `UNSTABLE`, `FAILURE`, `ABORTED`, `NOT_BUILT`; `None` while running.
    pub result: Option<String>,
    /// Jenkins' `estimatedDuration`, when it has history.
    pub estimated: Option<Duration>,
    /// When it started (`timestamp`), milliseconds since the epoch.
    pub started_at_ms: Option<i64>,
    /// How long it took, once finished.
    pub duration: Option<Duration>,
    /// `artifacts[].relativePath`.
    pub artifacts: Vec<String>,
}

/// Progress reported by [`JenkinsClient::wait`] after every poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobProgress {
    /// Still queued.
    Queued {
        /// The queue item.
        queue: QueueRef,
        /// Jenkins' reason.
        why: Option<String>,
    },
    /// Running; persist `build` so a restart resumes it.
    Running {
        /// The build.
        build: BuildRef,
        /// How long it has been running.
        elapsed: Duration,
        /// How long Jenkins expects it to take.
        estimated: Option<Duration>,
    },
    /// Finished (any result).
    Finished {
        /// The build.
        build: BuildRef,
        /// Its result.
        result: String,
    },
}

/// A build that finished `SUCCESS` or `UNSTABLE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedBuild {
    /// The build.
    pub build: BuildRef,
    /// `SUCCESS` or `UNSTABLE`.
    pub result: String,
    /// `artifacts[].relativePath`.
    pub artifacts: Vec<String>,
}

/// Why one Jenkins request failed. Never carries the API token. Cloned when one job-level poll
/// answers for every build followed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum JenkinsError {
    /// Jenkins answered with an error status.
    #[error("Jenkins answered HTTP {status} to the {method} request")]
    Http {
        /// Which request (`trigger`, `queue`, `build`, `artifact`, `console`, `crumb`, `builds`).
        method: &'static str,
        /// The status code.
        status: u16,
    },
    /// The request did not complete (connection refused, reset, timed out).
    #[error("the {method} request to Jenkins did not complete")]
    Transport {
        /// Which request.
        method: &'static str,
        /// The cause.
        #[source]
        source: Arc<reqwest::Error>,
        /// The certificate or proxy sentence for it, when that is the cause.
        network: Option<String>,
    },
    /// Jenkins' answer could not be understood.
    #[error("Jenkins' answer to the {method} request could not be understood: {what}")]
    Unexpected {
        /// Which request.
        method: &'static str,
        /// What was wrong.
        what: String,
    },
    /// An artifact is larger than allowed.
    #[error("the artifact is larger than the {limit} bytes allowed{}", size.map(|s| format!(" ({s} bytes)")).unwrap_or_default())]
    TooLarge {
        /// The limit.
        limit: u64,
        /// Its size, when Jenkins said it up front.
        size: Option<u64>,
    },
    /// The trigger was accepted but named no queue item (`Location: …/queue/item/N/`).
    #[error("Jenkins accepted the trigger but did not say which queue item it created")]
    NoLocation,
}

impl JenkinsError {
    /// The metrics outcome: `http_<status>`, `timeout`, `transport`, `unexpected`, `too_large`,
    /// `no_location`.
    pub fn kind(&self) -> String {
        match self {
            JenkinsError::Http { status, .. } => format!("http_{status}"),
            JenkinsError::Transport { source, .. } if source.is_timeout() => "timeout".to_string(),
            JenkinsError::Transport { .. } => "transport".to_string(),
            JenkinsError::Unexpected { .. } => "unexpected".to_string(),
            JenkinsError::TooLarge { .. } => "too_large".to_string(),
            JenkinsError::NoLocation => "no_location".to_string(),
        }
    }

    /// A fault that may pass by itself: Jenkins (or the proxy before it) answered 5xx, or the
    /// request timed out or lost its connection. Not: a 4xx, a certificate or proxy refusal, an
    /// answer not understood, an artifact too large.
    pub fn is_passing(&self) -> bool {
        match self {
            JenkinsError::Http { status, .. } => (500..=599).contains(status),
            JenkinsError::Transport { network, .. } => network.is_none(),
            JenkinsError::Unexpected { .. }
            | JenkinsError::TooLarge { .. }
            | JenkinsError::NoLocation => false,
        }
    }

    /// The HTTP status, when Jenkins answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            JenkinsError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// One sentence for a person, without transport details.
    pub fn user_message(&self) -> String {
        match self {
            JenkinsError::Http { method: "trigger", status: 400 } => {
                "Jenkins refused the job's parameters (HTTP 400): check that the job takes BRANCH, ENV_Branch, CLUSTERID, TUGBOAT and CARRIER_NAME.".to_string()
            }
            JenkinsError::Http { status: 401, .. } => {
                "Jenkins refused the credentials (HTTP 401): check JENKINS_USER and JENKINS_API_TOKEN.".to_string()
            }
            JenkinsError::Http { method, status: 403 } => {
                format!("Jenkins denied the {method} request (HTTP 403): the Jenkins user may lack permission on the job.")
            }
            JenkinsError::Http { method: "trigger", status: 404 } => {
                "Jenkins does not know the job (HTTP 404): check `jenkins_job` in bot.toml.".to_string()
            }
            JenkinsError::Http { method, status } if *status >= 500 => {
                format!("Jenkins is failing (HTTP {status} to the {method} request); try again later.")
            }
            JenkinsError::Http { method, status } => format!("Jenkins answered HTTP {status} to the {method} request."),
            JenkinsError::Transport { method, source, .. } if source.is_timeout() => {
                format!("Jenkins did not answer the {method} request in time.")
            }
            JenkinsError::Transport { method, network, .. } => match network {
                Some(problem) => format!("Jenkins could not be reached for the {method} request: {problem}."),
                None => format!("Jenkins could not be reached for the {method} request."),
            },
            JenkinsError::Unexpected { method, what } => {
                format!("Jenkins' answer to the {method} request could not be understood: {what}.")
            }
            JenkinsError::TooLarge { limit, .. } => format!("An artifact is larger than the {limit} bytes linkbot reads."),
            JenkinsError::NoLocation => "Jenkins accepted the job but did not say which queue item it created.".to_string(),
        }
    }
}

/// Why a job did not give a usable build.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Jenkins refused to trigger the job.
    #[error("Jenkins refused the trigger")]
    Refused(#[source] JenkinsError),
    /// The queue item was cancelled before a build started.
    #[error("queue item {} was cancelled", queue.id)]
    Cancelled {
        /// The queue item.
        queue: QueueRef,
        /// Jenkins' last reason for waiting, if any.
        why: Option<String>,
    },
    /// The build finished `FAILURE`, `ABORTED` or `NOT_BUILT`.
    #[error("build #{} finished {result}", build.number)]
    Failed {
        /// The build.
        build: BuildRef,
        /// Its result.
        result: String,
        /// The last lines of its console (secrets redacted), when they could be read.
        console_tail: Option<String>,
    },
    /// The job did not finish within the timeout (queue and build together).
    #[error("the job did not finish within {}s", waited.as_secs())]
    TimedOut {
        /// Where the job was when time ran out.
        handle: JobHandle,
        /// How long was waited.
        waited: Duration,
    },
    /// The queue item or build disappeared.
    #[error("the job was lost: {detail}")]
    Lost {
        /// The last handle.
        handle: JobHandle,
        /// What happened.
        detail: String,
    },
    /// Jenkins could not be asked about the job.
    #[error("polling the job failed")]
    Api {
        /// What the poll got.
        #[source]
        source: JenkinsError,
        /// Where the job was: the build, once it started, is still worth a link.
        handle: JobHandle,
        /// How long the polls had been failing (zero when the first failure ended it).
        failing_for: Duration,
        /// How many polls failed in a row.
        failed_polls: u32,
    },
}

impl JobError {
    /// One sentence for a person.
    pub fn user_message(&self) -> String {
        match self {
            JobError::Refused(e) => format!("Jenkins did not start the job. {}", e.user_message()),
            JobError::Cancelled { queue, why } => match why {
                Some(w) => format!(
                    "The Jenkins job was cancelled in the queue (item {}; it was waiting: {}).",
                    queue.id,
                    api::shown(w)
                ),
                None => format!(
                    "The Jenkins job was cancelled in the queue (item {}).",
                    queue.id
                ),
            },
            JobError::Failed { build, result, .. } => {
                format!("Jenkins build #{} finished {result}.", build.number)
            }
            JobError::TimedOut { handle, waited } => {
                let at = match handle {
                    JobHandle::Queued(q) => format!("still queued as item {}", q.id),
                    JobHandle::Build(b) => format!("build #{} still running", b.number),
                };
                format!(
                    "The Jenkins job did not finish within {} ({at}).",
                    crate::format::human(*waited)
                )
            }
            JobError::Lost { detail, .. } => {
                format!("linkbot lost track of the Jenkins job: {detail}.")
            }
            JobError::Api {
                source: e,
                failing_for,
                failed_polls,
                ..
            } => {
                let lasted = if *failed_polls > 1 {
                    format!(
                        " ({failed_polls} polls in a row over {}, each retried)",
                        crate::format::human(*failing_for)
                    )
                } else {
                    String::new()
                };
                format!(
                    "Jenkins could not be asked about the job{lasted}. {}",
                    e.user_message()
                )
            }
        }
    }

    /// The build, when there was one (for the link).
    pub fn build(&self) -> Option<&BuildRef> {
        match self {
            JobError::Failed { build, .. } => Some(build),
            JobError::TimedOut {
                handle: JobHandle::Build(b),
                ..
            }
            | JobError::Lost {
                handle: JobHandle::Build(b),
                ..
            }
            | JobError::Api {
                handle: JobHandle::Build(b),
                ..
            } => Some(b),
            _ => None,
        }
    }
}

/// A crumb and the session it belongs to.
struct Crumb {
    field: HeaderName,
    value: HeaderValue,
    cookie: Option<HeaderValue>,
}

struct Inner {
    http: reqwest::Client,
    net: Net,
    base: Url,
    job_url: Url,
    user: Option<String>,
    token: Option<Secret>,
    policy: PollPolicy,
    metrics: Metrics,
    crumb: Mutex<Option<Crumb>>,
    /// Follows every build in flight with one job-level poll per tick (see [`follow`]).
    follower: follow::Follower,
}

/// A client for one Jenkins job. Cheap to clone.
#[derive(Clone)]
pub struct JenkinsClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for JenkinsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JenkinsClient")
            .field("job_url", &self.inner.job_url.as_str())
            .field("user", &self.inner.user)
            .field("token", &self.inner.token.as_ref().map(|t| t.fingerprint()))
            .finish()
    }
}

/// `{base}job/A/job/B/job/C/`, each segment percent-encoded.
pub fn job_url(base: &Url, job: &[String]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        for segment in job {
            path.push("job").push(segment);
        }
        path.push("");
    }
    url
}

fn http_client(net: &Net, timeouts: Timeouts) -> Result<reqwest::Client, NetError> {
    Net::build(
        timeouts
            .apply(net.http_client())
            .user_agent(concat!("linkbot/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none()),
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl JenkinsClient {
    /// A client for the job at `job` (folders then name) under `base`, with basic auth when
    /// `user` is given. Credentials written into `base` (`https://user:token@host/`) are moved
    /// out of the URL so no error or log can show them.
    pub fn new(
        base: BaseUrl,
        job: Vec<String>,
        user: Option<String>,
        token: Option<Secret>,
        policy: PollPolicy,
        metrics: Metrics,
        net: &Net,
    ) -> Result<Self, NetError> {
        let mut base = base.into_url();
        let mut user = user;
        let mut token = token;
        if !base.username().is_empty() || base.password().is_some() {
            if user.is_none() && !base.username().is_empty() {
                user = Some(base.username().to_string());
            }
            if token.is_none() {
                token = base.password().map(Secret::new);
            }
            let _ = base.set_username("");
            let _ = base.set_password(None);
        }
        let job_url = job_url(&base, &job);
        Ok(JenkinsClient {
            inner: Arc::new(Inner {
                http: http_client(net, TIMEOUTS)?,
                net: net.clone(),
                base,
                job_url,
                user,
                token,
                policy,
                metrics,
                crumb: Mutex::new(None),
                follower: follow::Follower::default(),
            }),
        })
    }

    /// The same client with another per-request timeout (tests use short ones); connecting
    /// keeps its default bound, cut to `timeout` when that is shorter.
    pub fn with_request_timeout(self, timeout: Duration) -> Result<Self, NetError> {
        self.with_timeouts(Timeouts::new(timeout, TIMEOUTS.connect.min(timeout)))
    }

    /// The same client with other bounds per request (`[jenkins]` in bot.toml).
    pub fn with_timeouts(self, timeouts: Timeouts) -> Result<Self, NetError> {
        let i = &self.inner;
        Ok(JenkinsClient {
            inner: Arc::new(Inner {
                http: http_client(&i.net, timeouts)?,
                net: i.net.clone(),
                base: i.base.clone(),
                job_url: i.job_url.clone(),
                user: i.user.clone(),
                token: i.token.clone(),
                policy: i.policy,
                metrics: i.metrics.clone(),
                crumb: Mutex::new(None),
                follower: follow::Follower::default(),
            }),
        })
    }

    /// `{base}job/…/`: the job's URL.
    pub fn job_url(&self) -> &Url {
        &self.inner.job_url
    }

    /// The polling policy.
    pub fn policy(&self) -> &PollPolicy {
        &self.inner.policy
    }

    fn count(&self, method: &str, outcome: &str) {
        Metrics::call(&self.inner.metrics.jenkins_calls, method, outcome);
    }

    /// Counts the final outcome of one call.
    fn counted<T>(
        &self,
        method: &'static str,
        r: Result<T, JenkinsError>,
    ) -> Result<T, JenkinsError> {
        match &r {
            Ok(_) => self.count(method, "ok"),
            Err(e) => self.count(method, &e.kind()),
        }
        r
    }

    fn authed(&self, req: RequestBuilder) -> RequestBuilder {
        match (&self.inner.user, &self.inner.token) {
            (Some(user), token) => req.basic_auth(user, token.as_ref().map(Secret::expose)),
            (None, _) => req,
        }
    }

    fn with_crumb(&self, mut req: RequestBuilder) -> RequestBuilder {
        let guard = self.inner.crumb.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = guard.as_ref() {
            req = req.header(c.field.clone(), c.value.clone());
            if let Some(cookie) = &c.cookie {
                req = req.header(COOKIE, cookie.clone());
            }
        }
        req
    }

    /// Sends a request with auth, retrying what is safe to retry, and fetching a crumb once when
    /// a 403 asks for one. Counts every attempt it retries; the caller counts the final outcome.
    /// Returns the response only for a success or redirect status.
    async fn send(
        &self,
        method: &'static str,
        idempotent: bool,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, JenkinsError> {
        let mut attempt = 0;
        let mut crumb_fetched = false;
        loop {
            let mut req = self.authed(build());
            if !idempotent {
                req = self.with_crumb(req);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(source) => {
                    // An untrusted certificate or a proxy refusing us will not heal in a
                    // second: no retry, the sentence goes to the thread at once.
                    let network = self.inner.net.explain_reqwest(&source);
                    // A refused connection never reached Jenkins: safe to retry even for a POST.
                    if attempt < MAX_RETRIES
                        && network.is_none()
                        && (idempotent || source.is_connect())
                    {
                        self.count(
                            method,
                            if source.is_timeout() {
                                "timeout"
                            } else {
                                "transport"
                            },
                        );
                        tracing::debug!(method, attempt, error = %source, "Jenkins request failed; retrying");
                        tokio::time::sleep(self.inner.policy.retry_backoff(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(JenkinsError::Transport {
                        method,
                        source: Arc::new(source),
                        network,
                    });
                }
            };
            let status = resp.status();
            if status.is_success() || status.is_redirection() {
                return Ok(resp);
            }
            if status == StatusCode::FORBIDDEN && !idempotent && !crumb_fetched {
                let body = read_capped(resp, 64 * 1024).await.unwrap_or_default();
                if api::asks_for_crumb(&body) {
                    self.count(method, "http_403");
                    tracing::debug!(
                        method,
                        "Jenkins asked for a crumb; fetching one and retrying once"
                    );
                    Box::pin(self.fetch_crumb()).await?;
                    crumb_fetched = true;
                    continue;
                }
                return Err(JenkinsError::Http {
                    method,
                    status: 403,
                });
            }
            if status.is_server_error() && idempotent && attempt < MAX_RETRIES {
                self.count(method, &format!("http_{}", status.as_u16()));
                tracing::debug!(
                    method,
                    status = status.as_u16(),
                    attempt,
                    "Jenkins answered 5xx; retrying"
                );
                tokio::time::sleep(self.inner.policy.retry_backoff(attempt)).await;
                attempt += 1;
                continue;
            }
            return Err(JenkinsError::Http {
                method,
                status: status.as_u16(),
            });
        }
    }

    /// Fetches a crumb (and the session cookie it is bound to) for the next POSTs.
    async fn fetch_crumb(&self) -> Result<(), JenkinsError> {
        const M: &str = "crumb";
        let r = async {
            let url = self.inner.base.join("crumbIssuer/api/json").map_err(|e| {
                JenkinsError::Unexpected {
                    method: M,
                    what: format!("bad URL ({e})"),
                }
            })?;
            let resp = self
                .send(M, true, || {
                    self.inner
                        .http
                        .get(url.clone())
                        .header(ACCEPT, "application/json")
                })
                .await?;
            let cookie: Vec<String> = resp
                .headers()
                .get_all(SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|v| v.split(';').next())
                .map(|kv| kv.trim().to_string())
                .filter(|kv| kv.contains('='))
                .collect();
            let body = read_json_body(M, resp).await?;
            let (field, crumb) = api::parse_crumb(&body)?;
            let bad = |what: &str| JenkinsError::Unexpected {
                method: M,
                what: format!("the crumb's {what} cannot be sent as a header"),
            };
            let field = HeaderName::from_bytes(field.as_bytes()).map_err(|_| bad("field name"))?;
            let mut value = HeaderValue::from_str(&crumb).map_err(|_| bad("value"))?;
            value.set_sensitive(true);
            let cookie = if cookie.is_empty() {
                None
            } else {
                let mut v = HeaderValue::from_str(&cookie.join("; ")).map_err(|_| bad("cookie"))?;
                v.set_sensitive(true);
                Some(v)
            };
            *self.inner.crumb.lock().unwrap_or_else(|e| e.into_inner()) = Some(Crumb {
                field,
                value,
                cookie,
            });
            Ok(())
        }
        .await;
        self.counted(M, r)
    }

    /// Triggers the job: `POST {job}buildWithParameters` with the five parameters. Never retried
    /// once the request may have reached Jenkins, so a job is never started twice.
    pub async fn trigger(&self, p: &BuildParams) -> Result<QueueRef, JenkinsError> {
        const M: &str = "trigger";
        let r = async {
            let url = self
                .inner
                .job_url
                .join("buildWithParameters")
                .map_err(|e| JenkinsError::Unexpected {
                    method: M,
                    what: format!("bad URL ({e})"),
                })?;
            let form = p.form();
            let resp = self
                .send(M, false, || self.inner.http.post(url.clone()).form(&form))
                .await?;
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or(JenkinsError::NoLocation)?;
            let id = api::parse_queue_location(location)?;
            Ok(QueueRef {
                id,
                url: api::queue_url(&self.inner.base, id)?,
            })
        }
        .await;
        self.counted(M, r)
    }

    async fn get_json(&self, method: &'static str, url: Url) -> Result<Vec<u8>, JenkinsError> {
        let resp = self
            .send(method, true, || {
                self.inner
                    .http
                    .get(url.clone())
                    .header(ACCEPT, "application/json")
            })
            .await?;
        read_json_body(method, resp).await
    }

    /// Polls a queue item: `GET {queue url}api/json`. A 404 (Jenkins forgets left items after
    /// about 5 minutes) is `JenkinsError::Http { status: 404 }`.
    pub async fn queue_state(&self, q: &QueueRef) -> Result<QueueState, JenkinsError> {
        const M: &str = "queue";
        let r = async {
            let url = join(M, &q.url, "api/json")?;
            let body = self.get_json(M, url).await?;
            api::parse_queue_item(&body, &self.inner.job_url)
        }
        .await;
        self.counted(M, r)
    }

    /// Polls a build: `GET {build url}api/json?tree=…`.
    pub async fn build_state(&self, b: &BuildRef) -> Result<BuildState, JenkinsError> {
        const M: &str = "build";
        let r = async {
            let url = join(
                M,
                &b.url,
                "api/json?tree=building,result,estimatedDuration,timestamp,duration,number,url,artifacts[relativePath]",
            )?;
            let body = self.get_json(M, url).await?;
            api::parse_build(&body)
        }
        .await;
        self.counted(M, r)
    }

    /// The whole queue, once for every followed item:
    /// `GET {base}queue/api/json?tree=items[id,why,cancelled,executable[number,url],task[name]]`.
    pub async fn queue_listing(&self) -> Result<BTreeMap<u64, QueueState>, JenkinsError> {
        const M: &str = "queue";
        let r = async {
            let url = self
                .inner
                .base
                .join(
                    "queue/api/json?tree=items[id,why,cancelled,executable[number,url],task[name]]",
                )
                .map_err(|e| JenkinsError::Unexpected {
                    method: M,
                    what: format!("bad URL ({e})"),
                })?;
            let body = self.get_json(M, url).await?;
            api::parse_queue_listing(&body, &self.inner.job_url)
        }
        .await;
        self.counted(M, r)
    }

    /// The job-level poll, once for every followed build: the `window` newest builds with their
    /// state, `GET {job}api/json?tree=builds[number,queueId,building,result,duration,
    /// estimatedDuration,timestamp,artifacts[relativePath]]{0,window}`. Jenkins' `builds` holds
    /// at most the 100 newest, so a wider window asks `allBuilds` (with the same range, which
    /// Jenkins applies while it walks the builds).
    pub async fn job_builds(&self, window: u32) -> Result<Vec<api::JobBuild>, JenkinsError> {
        const M: &str = "builds";
        let r = async {
            let list = if window <= JENKINS_BUILDS_LIMIT {
                "builds"
            } else {
                "allBuilds"
            };
            let url = join(
                M,
                &self.inner.job_url,
                &format!("api/json?tree={list}[number,queueId,building,result,duration,estimatedDuration,timestamp,artifacts[relativePath]]{{0,{window}}}"),
            )?;
            let body = self.get_json(M, url).await?;
            api::parse_job_builds(&body)
        }
        .await;
        self.counted(M, r)
    }

    /// Finds the build a forgotten queue item became, among the job's recent builds.
    async fn build_of_queue_item(&self, q: &QueueRef) -> Result<Option<BuildRef>, JenkinsError> {
        const M: &str = "builds";
        let r = async {
            let url = join(
                M,
                &self.inner.job_url,
                &format!("api/json?tree=builds[number,queueId]{{0,{BUILDS_SEARCHED}}}"),
            )?;
            let body = self.get_json(M, url).await?;
            let builds = api::parse_builds(&body)?;
            match builds.into_iter().find(|(_, queue)| *queue == q.id) {
                Some((number, _)) => Ok(Some(BuildRef {
                    number,
                    url: api::build_url(&self.inner.job_url, number)?,
                })),
                None => Ok(None),
            }
        }
        .await;
        self.counted(M, r)
    }

    /// Downloads an artifact (`GET {build url}artifact/<relativePath>`), streamed and refused
    /// with [`JenkinsError::TooLarge`] as soon as it passes `max_bytes`.
    pub async fn artifact(
        &self,
        b: &BuildRef,
        relative_path: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, JenkinsError> {
        const M: &str = "artifact";
        let r = async {
            let url = api::artifact_url(&b.url, relative_path)?;
            let resp = self
                .send(M, true, || self.inner.http.get(url.clone()))
                .await?;
            if let Some(size) = content_length(&resp).filter(|s| *s > max_bytes) {
                return Err(JenkinsError::TooLarge {
                    limit: max_bytes,
                    size: Some(size),
                });
            }
            read_capped(resp, max_bytes).await.map_err(|e| match e {
                ReadError::TooLarge => JenkinsError::TooLarge {
                    limit: max_bytes,
                    size: None,
                },
                ReadError::Transport(source) => JenkinsError::Transport {
                    method: M,
                    source: Arc::new(source),
                    network: None,
                },
            })
        }
        .await;
        self.counted(M, r)
    }

    /// The last `max_lines` lines of a build's console (`GET {build url}consoleText`), read as a
    /// stream keeping only its tail, with secret-looking values redacted.
    pub async fn console_tail(
        &self,
        b: &BuildRef,
        max_lines: usize,
    ) -> Result<String, JenkinsError> {
        const M: &str = "console";
        let r = async {
            let url = join(M, &b.url, "consoleText")?;
            let mut resp = self
                .send(M, true, || self.inner.http.get(url.clone()))
                .await?;
            let mut tail: Vec<u8> = Vec::new();
            let mut read: u64 = 0;
            while let Some(chunk) =
                resp.chunk()
                    .await
                    .map_err(|source| JenkinsError::Transport {
                        method: M,
                        source: Arc::new(source),
                        network: None,
                    })?
            {
                read += chunk.len() as u64;
                tail.extend_from_slice(&chunk);
                if tail.len() > 2 * CONSOLE_KEEP_BYTES {
                    tail.drain(..tail.len() - CONSOLE_KEEP_BYTES);
                }
                if read > CONSOLE_MAX_READ {
                    break;
                }
            }
            Ok(api::console_tail_of(&tail, max_lines))
        }
        .await;
        self.counted(M, r)
    }

    /// Follows a job from `start` until its build finishes, reporting progress after every poll,
    /// bounded by `timeout` overall (queue and build). SUCCESS and UNSTABLE are a
    /// [`FinishedBuild`]; any other result is [`JobError::Failed`] with the console tail.
    pub async fn wait(
        &self,
        start: JobHandle,
        timeout: Duration,
        on_progress: &(dyn Fn(&JobProgress) + Send + Sync),
    ) -> Result<FinishedBuild, JobError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut current = start;
        let outcome =
            tokio::time::timeout(timeout, self.follow(&mut current, deadline, on_progress)).await;
        match outcome {
            Ok(r) => r,
            Err(_) => Err(JobError::TimedOut {
                handle: current,
                waited: started.elapsed(),
            }),
        }
    }

    async fn follow(
        &self,
        current: &mut JobHandle,
        deadline: Instant,
        on_progress: &(dyn Fn(&JobProgress) + Send + Sync),
    ) -> Result<FinishedBuild, JobError> {
        let mut followed = self
            .inner
            .follower
            .register(self, current.clone(), deadline);
        loop {
            let seen = followed.next().await;
            match seen {
                follow::Seen::Pending => continue,
                follow::Seen::Progress(p) => {
                    if let JobProgress::Running { build, .. } = &p {
                        *current = JobHandle::Build(build.clone());
                    }
                    on_progress(&p);
                }
                follow::Seen::Finished {
                    build,
                    result,
                    artifacts,
                } => {
                    *current = JobHandle::Build(build.clone());
                    on_progress(&JobProgress::Finished {
                        build: build.clone(),
                        result: result.clone(),
                    });
                    drop(followed);
                    return match result.as_str() {
                        "SUCCESS" | "UNSTABLE" => Ok(FinishedBuild {
                            build,
                            result,
                            artifacts,
                        }),
                        _ => {
                            let console_tail =
                                Box::pin(self.console_tail(&build, CONSOLE_TAIL_LINES))
                                    .await
                                    .ok();
                            Err(JobError::Failed {
                                build,
                                result,
                                console_tail,
                            })
                        }
                    };
                }
                follow::Seen::Cancelled { queue, why } => {
                    return Err(JobError::Cancelled { queue, why })
                }
                follow::Seen::Lost { handle, detail } => {
                    return Err(JobError::Lost { handle, detail })
                }
                follow::Seen::PollFailed {
                    handle,
                    error,
                    failing_for,
                    failed_polls,
                } => {
                    return Err(JobError::Api {
                        source: error,
                        handle,
                        failing_for,
                        failed_polls,
                    })
                }
            }
        }
    }
}

fn join(method: &'static str, url: &Url, rest: &str) -> Result<Url, JenkinsError> {
    let bad = |e: String| JenkinsError::Unexpected {
        method,
        what: format!("bad URL ({e})"),
    };
    BaseUrl::new(url.clone())
        .map_err(|e| bad(e.to_string()))?
        .join(rest)
        .map_err(|e| bad(e.to_string()))
}

fn content_length(resp: &Response) -> Option<u64> {
    resp.headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

enum ReadError {
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads a body, giving up as soon as it passes `max` bytes.
async fn read_capped(mut resp: Response, max: u64) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Transport)? {
        if (body.len() + chunk.len()) as u64 > max {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn read_json_body(method: &'static str, resp: Response) -> Result<Vec<u8>, JenkinsError> {
    read_capped(resp, MAX_JSON_BYTES)
        .await
        .map_err(|e| match e {
            ReadError::TooLarge => JenkinsError::Unexpected {
                method,
                what: format!("the answer is larger than {MAX_JSON_BYTES} bytes"),
            },
            ReadError::Transport(source) => JenkinsError::Transport {
                method,
                source: Arc::new(source),
                network: None,
            },
        })
}
