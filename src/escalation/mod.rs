//! Escalation: turning a finished [`Report`] into a team-channel post, a PagerDuty page or a
//! GitHub issue — the workflow that decides what happens and in what order, and the two HTTP
//! clients that deliver them.
//!
//! [`workflow`] runs one escalation (target, result, actions, audit entry) and returns a typed
//! outcome; the chat it posts to is behind its `ReportChannel` trait. [`page_event`] and
//! [`issue_markdown`] are pure: they render what a human on the other side reads (every
//! runbook step and its evidence, the next actions, links). The clients in [`pagerduty`] and
//! [`github`] only put those values on the wire.
//!
//! This module must NOT decide who may escalate (the Slack layer authorizes a click before
//! calling the workflow), must NOT import slack-morphism, render Slack text or import `config`
//! (targets and clients are handed in), and must never carry a secret: a [`Report`] holds at
//! most a key fingerprint, and the routing key / token live only inside the clients, in a
//! [`crate::secret::Secret`], exposed at the one place they go on the wire.

pub mod github;
pub mod pagerduty;
pub mod workflow;

use crate::diagnosis::verdict::{Report, StepStatus, VerdictCode, RUNBOOK_URL};
use crate::net::Timeouts;
use crate::secret::Secret;
use serde::Serialize;
use std::fmt;
use std::time::Duration;

pub use github::{GitHubClient, IssueLink};
pub use pagerduty::{PageReceipt, PagerDutyClient};
pub use workflow::{EscalationTarget, Escalators, ReportChannel, Workflow};

/// The `User-Agent` every escalation request carries (GitHub refuses requests without one).
pub const USER_AGENT: &str = concat!("linkbot/", env!("CARGO_PKG_VERSION"));

/// The default bounds on one HTTP request to PagerDuty or GitHub: 10 s, connection included
/// (`[pagerduty]`/`[github]` `request_timeout_secs` / `connect_timeout_secs`).
pub const TIMEOUTS: Timeouts = Timeouts::new(Duration::from_secs(10), Duration::from_secs(10));

/// PagerDuty's limit on `payload.summary`, in characters.
pub const PAGE_SUMMARY_MAX_CHARS: usize = 1024;

/// GitHub's limit on an issue title, in characters.
pub const ISSUE_TITLE_MAX_CHARS: usize = 256;

/// GitHub's limit on an issue body is 65 536 characters; stay under it with room to spare.
pub const ISSUE_BODY_MAX_CHARS: usize = 60_000;

/// The outside system an escalation went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// PagerDuty Events API v2.
    PagerDuty,
    /// The GitHub REST API.
    GitHub,
}

impl System {
    /// The metric label (`pagerduty` / `github`).
    pub fn as_str(&self) -> &'static str {
        match self {
            System::PagerDuty => "pagerduty",
            System::GitHub => "github",
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            System::PagerDuty => "PagerDuty",
            System::GitHub => "GitHub",
        })
    }
}

/// Why an escalation did not go through. Never holds a token or routing key: messages that come
/// back from the APIs are scrubbed of them before they are stored here.
#[derive(Debug, thiserror::Error)]
pub enum EscalationError {
    /// The HTTP client could not be built (TLS setup).
    #[error("could not set up the {system} HTTP client")]
    Client {
        /// Which system.
        system: System,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// No answer: connection refused, DNS, TLS, or the per-request timeout.
    #[error("{system} did not answer ({kind})")]
    Transport {
        /// Which system.
        system: System,
        /// `timeout`, `connect` or `transport`.
        kind: &'static str,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The API answered with an error it will give again (4xx): retrying will not help.
    #[error("{system} refused the request with HTTP {status}: {message}")]
    Rejected {
        /// Which system.
        system: System,
        /// The HTTP status.
        status: u16,
        /// What the API said, scrubbed and shortened.
        message: String,
    },
    /// The API kept answering 429/5xx (or not at all) through every retry.
    #[error("{system} still failed after {attempts} attempts")]
    Exhausted {
        /// Which system.
        system: System,
        /// How many requests were sent.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Box<EscalationError>,
    },
    /// A transient failure (429/5xx) on a request that is not retried, or the last of a retry run.
    #[error("{system} answered HTTP {status}: {message}")]
    Unavailable {
        /// Which system.
        system: System,
        /// The HTTP status.
        status: u16,
        /// What the API said, scrubbed and shortened.
        message: String,
    },
    /// A success status with a body that is not what the API documents.
    #[error("{system} answered HTTP {status} with an unexpected body: {detail}")]
    BadAnswer {
        /// Which system.
        system: System,
        /// The HTTP status.
        status: u16,
        /// What was wrong with it.
        detail: String,
    },
    /// A configured repository that is not `owner/repo`.
    #[error("`{0}` is not a GitHub repository: expected `owner/repo`")]
    InvalidRepo(String),
}

impl EscalationError {
    /// The system the error came from.
    pub fn system(&self) -> System {
        match self {
            EscalationError::Client { system, .. }
            | EscalationError::Transport { system, .. }
            | EscalationError::Rejected { system, .. }
            | EscalationError::Exhausted { system, .. }
            | EscalationError::Unavailable { system, .. }
            | EscalationError::BadAnswer { system, .. } => *system,
            EscalationError::InvalidRepo(_) => System::GitHub,
        }
    }

    /// The low-cardinality metric outcome (`timeout`, `http_422`, `retries_exhausted`, …).
    pub fn kind(&self) -> String {
        match self {
            EscalationError::Client { .. } => "client".into(),
            EscalationError::Transport { kind, .. } => (*kind).into(),
            EscalationError::Rejected { status, .. }
            | EscalationError::Unavailable { status, .. } => format!("http_{status}"),
            EscalationError::Exhausted { .. } => "retries_exhausted".into(),
            EscalationError::BadAnswer { .. } => "bad_answer".into(),
            EscalationError::InvalidRepo(_) => "invalid_repo".into(),
        }
    }

    /// One sentence for the person who pressed the button: what happened and what to do.
    pub fn user_message(&self) -> String {
        match self {
            EscalationError::Client { system, .. } => {
                format!("linkbot could not set up its {system} client; the operators need to look at its logs.")
            }
            EscalationError::Transport { system, kind, source } => match (*kind, crate::net::explain_reqwest(source)) {
                ("timeout", _) => format!("{system} did not answer in time. Try again in a minute, or escalate by hand."),
                (_, Some(problem)) => format!("linkbot could not reach {system}: {problem}."),
                _ => format!("linkbot could not reach {system}. Try again in a minute, or escalate by hand."),
            },
            EscalationError::Rejected {
                system: System::PagerDuty,
                status,
                message,
            } => format!(
                "PagerDuty refused the page (HTTP {status}: {message}). Check PAGERDUTY_ROUTING_KEY and the service's integration, or page by hand."
            ),
            EscalationError::Rejected {
                system: System::GitHub,
                status,
                message,
            } => {
                let hint = match status {
                    401 => "GITHUB_TOKEN is missing, expired or revoked",
                    403 => "the token may not open issues in this repository, or GitHub is rate limiting",
                    404 => "the repository does not exist or the token cannot see it",
                    410 => "issues are turned off in this repository",
                    422 => "GitHub did not accept the issue's fields",
                    _ => "GitHub refused the request",
                };
                format!("GitHub did not open the issue: {hint} (HTTP {status}: {message}).")
            }
            EscalationError::Exhausted { system, attempts, last } => format!(
                "{system} still failed after {attempts} attempts ({}). Try again later, or escalate by hand.",
                last.short()
            ),
            EscalationError::Unavailable { system, status, .. } => {
                format!("{system} is unavailable (HTTP {status}). Try again later, or escalate by hand.")
            }
            EscalationError::BadAnswer { system, status, .. } => format!(
                "{system} answered HTTP {status} with something linkbot does not understand; check in {system} whether it went through."
            ),
            EscalationError::InvalidRepo(repo) => format!(
                "The escalation target's github_repo `{repo}` is not `owner/repo`: fix it in bot.toml."
            ),
        }
    }

    /// A few words on what went wrong, for inside another sentence.
    fn short(&self) -> String {
        match self {
            EscalationError::Transport { kind, .. } => (*kind).to_string(),
            EscalationError::Rejected { status, .. }
            | EscalationError::Unavailable { status, .. }
            | EscalationError::BadAnswer { status, .. } => format!("HTTP {status}"),
            other => other.kind(),
        }
    }
}

/// How often and how patiently a client retries 429/5xx and unanswered requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Requests sent at most, the first included (at least 1).
    pub attempts: u32,
    /// The wait before the first retry; doubled for each next one.
    pub first_delay: Duration,
    /// The longest wait between two requests (also caps a `Retry-After`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first retry): exponential with up to 25%
    /// jitter, or the server's `Retry-After` when it gave one, capped at `max_delay`.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.max_delay);
        }
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        let base = self.first_delay.saturating_mul(factor).min(self.max_delay);
        let jitter = base.mul_f64(fastrand::f64() * 0.25);
        (base + jitter).min(self.max_delay)
    }
}

/// Builds the HTTP client both escalation clients use: rustls, `User-Agent`, per-request timeout.
pub(crate) fn http_client(
    system: System,
    timeouts: Timeouts,
    net: &crate::net::Net,
) -> Result<reqwest::Client, EscalationError> {
    timeouts
        .apply(net.http_client())
        .user_agent(USER_AGENT)
        .build()
        .map_err(|source| EscalationError::Client { system, source })
}

/// Classifies a reqwest error that means "no usable answer".
pub(crate) fn transport_error(system: System, source: reqwest::Error) -> EscalationError {
    let kind = if source.is_timeout() {
        "timeout"
    } else if source.is_connect() {
        "connect"
    } else {
        "transport"
    };
    EscalationError::Transport {
        system,
        kind,
        source,
    }
}

/// Makes text from an outside API fit for an error: no control characters, no secret, short.
pub(crate) fn scrub(text: &str, secret: &Secret) -> String {
    crate::secret::scrub(text, Some(secret), 300)
}

/// Parses a `Retry-After` given in seconds.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A PagerDuty event's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The connector is down for a known reason someone must fix now.
    Critical,
    /// The check itself could not finish.
    Error,
    /// Worth a look.
    Warning,
    /// For the record.
    Info,
}

/// A link shown on the PagerDuty incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageLink {
    /// The URL.
    pub href: String,
    /// Its label.
    pub text: String,
}

/// The `payload` of a PagerDuty Events API v2 trigger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PagePayload {
    /// One line, at most [`PAGE_SUMMARY_MAX_CHARS`] characters.
    pub summary: String,
    /// Where the problem is (the tugboat, or the location).
    pub source: String,
    /// How bad.
    pub severity: Severity,
    /// The part that is broken.
    pub component: String,
    /// The cluster of components (the tugboat).
    pub group: String,
    /// The kind of problem (the verdict code).
    pub class: String,
    /// Everything else: verdict, regions, build, every step and its evidence.
    pub custom_details: serde_json::Value,
}

/// A page to send: everything but the routing key, which only the client holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PageEvent {
    /// One per location and environment, so repeated pages update one incident.
    pub dedup_key: String,
    /// What the incident shows.
    pub payload: PagePayload,
    /// Links shown on the incident (Jenkins build, Slack thread, runbook).
    pub links: Vec<PageLink>,
}

/// A GitHub issue to open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewIssue {
    /// At most [`ISSUE_TITLE_MAX_CHARS`] characters.
    pub title: String,
    /// Markdown, at most [`ISSUE_BODY_MAX_CHARS`] characters.
    pub body: String,
    /// Labels (GitHub drops them silently when the token may not set labels).
    pub labels: Vec<String>,
}

/// The dedup key for a report: `linkbot-<env>-<location>`, so every page about one location
/// updates the same incident.
pub fn dedup_key(report: &Report) -> String {
    match (&report.location, report.environment) {
        (Some(loc), Some(env)) => format!("linkbot-{env}-{loc}"),
        (Some(loc), None) => format!("linkbot-{loc}"),
        (None, _) => format!("linkbot-offline-{}", report.verdict.as_str()),
    }
}

fn severity_of(verdict: VerdictCode) -> Severity {
    match verdict {
        VerdictCode::ConfigMissing
        | VerdictCode::RegionMismatch
        | VerdictCode::ApiKeyInvalid
        | VerdictCode::ApiKeyAccepted => Severity::Critical,
        VerdictCode::IamUnreachable
        | VerdictCode::UnknownLocation
        | VerdictCode::LookupFailed
        | VerdictCode::JobFailed
        | VerdictCode::ArtifactMissing => Severity::Error,
    }
}

fn status_word(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Ok => "ok",
        StepStatus::Failed => "failed",
        StepStatus::Skipped => "skipped",
        StepStatus::Warning => "warning",
    }
}

use crate::format::{clip, one_line};

/// Text safe to put in a GitHub Markdown line: one line, `@` mentions (which would notify
/// people or teams) neutralised with a word joiner, at most `max` characters.
fn md_text(s: &str, max: usize) -> String {
    let line = one_line(s);
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '@' && chars.peek().is_some_and(|n| n.is_alphanumeric()) {
            out.push('\u{2060}');
        }
    }
    clip(&out, max)
}

/// A Markdown table cell: as [`md_text`], with `|` escaped.
fn md_cell(s: &str) -> String {
    md_text(s, 300).replace('|', "\\|")
}

/// A fenced code block whose fence is longer than any backtick run inside it.
fn fenced(content: &str, info: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in content.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat((longest + 1).max(3));
    format!(
        "{fence}{info}\n{}\n{fence}\n",
        content.trim_end_matches('\n')
    )
}

/// The last `max_lines` lines of a console, at most `max_chars` characters.
fn console_tail(tail: &str, max_lines: usize, max_chars: usize) -> String {
    let lines: Vec<&str> = tail.lines().collect();
    let start = lines.len().saturating_sub(max_lines);
    let kept = lines.get(start..).unwrap_or(&[]).join("\n");
    let cleaned: String = kept
        .chars()
        .filter(|c| *c == '\n' || *c == '\t' || !c.is_control())
        .collect();
    let count = cleaned.chars().count();
    if count <= max_chars {
        cleaned
    } else {
        let skip = count - max_chars;
        format!("…{}", cleaned.chars().skip(skip + 1).collect::<String>())
    }
}

fn http_link(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url.trim()).ok()?;
    matches!(parsed.scheme(), "http" | "https").then(|| parsed.to_string())
}

fn where_words(report: &Report) -> String {
    let location = report
        .location
        .as_ref()
        .map(|l| l.to_string())
        .unwrap_or_else(|| "an offline diagnosis".to_string());
    match &report.tugboat {
        Some(t) => format!("{location} ({t})"),
        None => location,
    }
}

/// The PagerDuty event for a report: one incident per location (see [`dedup_key`]), the
/// verdict and every step's evidence in `custom_details`, links to the build, the Slack thread
/// and the runbook. Holds no secret.
pub fn page_event(report: &Report, requested_by: &str, thread_link: Option<&str>) -> PageEvent {
    let summary = clip(
        &one_line(&format!(
            "[linkbot] {} on {}: {}",
            report.verdict.title(),
            where_words(report),
            report.summary
        )),
        PAGE_SUMMARY_MAX_CHARS,
    );
    let source = report
        .tugboat
        .as_ref()
        .map(|t| t.to_string())
        .or_else(|| report.location.as_ref().map(|l| l.to_string()))
        .unwrap_or_else(|| "linkbot".to_string());
    let steps: Vec<serde_json::Value> = report
        .steps
        .iter()
        .map(|s| {
            serde_json::json!({
                "step": s.title,
                "status": status_word(s.status),
                "evidence": s.evidence.iter().map(|e| clip(&one_line(e), 500)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let custom_details = serde_json::json!({
        "verdict": report.verdict.as_str(),
        "verdict_title": report.verdict.title(),
        "confirmed": report.confirmed,
        "summary": clip(&one_line(&report.summary), 1000),
        "location": report.location.as_ref().map(|l| l.to_string()),
        "environment": report.environment.map(|e| e.as_str()),
        "tugboat": report.tugboat.as_ref().map(|t| t.to_string()),
        "carrier": report.carrier.as_ref().map(|c| c.to_string()),
        "region_expected": report.region_expected.as_ref().map(|r| r.to_string()),
        "region_found": report.region_found.as_ref().map(|r| clip(&one_line(r), 100)),
        "build_url": report.build_url,
        "key_fingerprint": report.key_fingerprint,
        "steps": steps,
        "next_actions": report.next_actions,
        "requested_by": clip(&one_line(requested_by), 100),
        "slack_thread": thread_link,
        "checked_at": report.checked_at.to_rfc3339(),
    });
    let mut links = Vec::new();
    if let Some(href) = report.build_url.as_deref().and_then(http_link) {
        links.push(PageLink {
            href,
            text: "Jenkins build".into(),
        });
    }
    if let Some(href) = thread_link.and_then(http_link) {
        links.push(PageLink {
            href,
            text: "Slack thread".into(),
        });
    }
    links.push(PageLink {
        href: RUNBOOK_URL.into(),
        text: "Runbook".into(),
    });
    PageEvent {
        dedup_key: dedup_key(report),
        payload: PagePayload {
            summary,
            source,
            severity: severity_of(report.verdict),
            component: "satellite-link-connector".into(),
            group: report
                .tugboat
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_else(|| "unknown-tugboat".into()),
            class: report.verdict.as_str().into(),
            custom_details,
        },
        links,
    }
}

/// The GitHub issue for a report: a title naming the verdict, location and tugboat; a body with
/// the summary, a table of the facts, every runbook step with its status and evidence, the next
/// actions, the console tail in a fenced block, and links to the build, runbook and Slack
/// thread. Holds no secret.
pub fn issue_markdown(report: &Report, requested_by: &str, thread_link: Option<&str>) -> NewIssue {
    use std::fmt::Write as _;

    let title = clip(
        &one_line(&format!(
            "[linkbot] {} on {}",
            report.verdict.as_str(),
            where_words(report)
        )),
        ISSUE_TITLE_MAX_CHARS,
    );

    let none = "—".to_string();
    let or_none = |v: Option<String>| v.map(|s| md_cell(&s)).unwrap_or_else(|| none.clone());
    let mut body = String::new();
    let _ = writeln!(body, "## {}\n", md_text(report.verdict.title(), 200));
    let _ = writeln!(body, "{}\n", md_text(&report.summary, 2000));
    let certainty = if report.confirmed {
        "confirmed by IAM"
    } else {
        "from the artifacts"
    };
    let rows: Vec<(&str, String)> = vec![
        (
            "Verdict",
            format!("`{}` ({certainty})", report.verdict.as_str()),
        ),
        (
            "Location",
            or_none(report.location.as_ref().map(|l| format!("`{l}`"))),
        ),
        (
            "Environment",
            or_none(report.environment.map(|e| e.to_string())),
        ),
        (
            "Tugboat",
            or_none(report.tugboat.as_ref().map(|t| format!("`{t}`"))),
        ),
        (
            "Carrier",
            or_none(report.carrier.as_ref().map(|c| format!("`{c}`"))),
        ),
        (
            "Region expected",
            or_none(report.region_expected.as_ref().map(|r| r.to_string())),
        ),
        (
            "Region found",
            report
                .region_found
                .as_ref()
                .map(|r| md_cell(r))
                .unwrap_or_else(|| "(none in the ConfigMap)".into()),
        ),
        (
            "Jenkins build",
            or_none(report.build_url.as_deref().and_then(http_link)),
        ),
        (
            "IAM API key",
            or_none(
                report
                    .key_fingerprint
                    .as_ref()
                    .map(|f| format!("fingerprint `{f}`")),
            ),
        ),
        (
            "Checked at",
            report
                .checked_at
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
        ),
    ];
    let _ = writeln!(body, "| | |\n|---|---|");
    for (k, v) in rows {
        let _ = writeln!(body, "| {k} | {v} |");
    }

    let _ = writeln!(body, "\n## Runbook steps\n");
    if report.steps.is_empty() {
        let _ = writeln!(body, "No step was reached.");
    }
    for (i, step) in report.steps.iter().enumerate() {
        let _ = writeln!(
            body,
            "### {} {}. {} — {}\n",
            step.status.emoji(),
            i + 1,
            md_text(&step.title, 200),
            status_word(step.status)
        );
        if step.evidence.is_empty() {
            let _ = writeln!(body, "- (no evidence recorded)");
        }
        for e in &step.evidence {
            let _ = writeln!(body, "- {}", md_text(e, 1000));
        }
        body.push('\n');
    }

    if !report.next_actions.is_empty() {
        let _ = writeln!(body, "## Next actions\n");
        for (i, a) in report.next_actions.iter().enumerate() {
            let _ = writeln!(body, "{}. {}", i + 1, md_text(a, 1000));
        }
        body.push('\n');
    }

    if let Some(tail) = report
        .console_tail
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    {
        let _ = writeln!(body, "## Console tail\n");
        body.push_str(&fenced(&console_tail(tail, 80, 12_000), "text"));
        body.push('\n');
    }

    let _ = writeln!(body, "## Links\n");
    if let Some(build) = report.build_url.as_deref().and_then(http_link) {
        let _ = writeln!(body, "- Jenkins build: {build}");
    }
    match thread_link.and_then(http_link) {
        Some(thread) => {
            let _ = writeln!(body, "- Slack thread: {thread}");
        }
        None => {
            let _ = writeln!(
                body,
                "- Slack thread: (none: escalated from the command line)"
            );
        }
    }
    let _ = writeln!(body, "- Runbook: {RUNBOOK_URL}");
    let _ = writeln!(
        body,
        "\n_Opened by linkbot for {}._",
        md_text(requested_by, 100)
    );

    NewIssue {
        title,
        body: clip(&body, ISSUE_BODY_MAX_CHARS),
        labels: vec!["linkbot".into(), report.verdict.as_str().into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_outgrow_backticks_inside() {
        let block = fenced("a ```` b", "text");
        assert!(block.starts_with("`````text\n"), "{block}");
        assert!(block.ends_with("\n`````\n"), "{block}");
        assert!(fenced("plain", "").starts_with("```\n"));
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(clip("ééééé", 3), "éé…");
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 0), "…");
    }

    #[test]
    fn mentions_do_not_ping() {
        let t = md_text("ask @alice\nnow", 100);
        assert!(!t.contains("@alice"), "{t}");
        assert!(!t.contains('\n'));
        assert_eq!(md_text("a@ b", 10), "a@ b");
    }

    #[test]
    fn console_tail_keeps_the_end() {
        let text: String = (0..200).map(|i| format!("line {i}\n")).collect();
        let t = console_tail(&text, 3, 10_000);
        assert_eq!(t, "line 197\nline 198\nline 199");
        let short = console_tail("0123456789", 10, 5);
        assert_eq!(short.chars().count(), 5);
        assert!(short.ends_with('9'));
    }

    #[test]
    fn scrub_removes_the_secret() {
        let s = Secret::new("R0UTINGKEY1234567890abcdefghijkl");
        let out = scrub("bad key R0UTINGKEY1234567890abcdefghijkl\nsee docs", &s);
        assert_eq!(out, "bad key [redacted …ijkl] see docs");
    }

    #[test]
    fn retry_delays_grow_and_are_capped() {
        let p = RetryPolicy {
            attempts: 5,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        let d1 = p.delay(1, None);
        assert!(d1 >= Duration::from_millis(100) && d1 <= Duration::from_millis(125));
        assert!(p.delay(10, None) <= Duration::from_millis(300));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(60))),
            Duration::from_millis(300)
        );
    }
}
