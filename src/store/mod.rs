//! The durable store: in-flight checks, the Slack messages waiting for them, the de-dup of Slack
//! deliveries, and the audit log — so nothing is lost on restart and one check runs per location.
//!
//! One [`Store`] trait, two backends chosen by the URL given to [`open`]:
//! - `sqlite://<file>` (the default `sqlite://linkbot.db`; the file is created on first start,
//!   WAL mode, every write transaction is `BEGIN IMMEDIATE`): one replica.
//! - `postgres://…` / `postgresql://…`: several replicas sharing the work. "One check per
//!   location" holds across them: a claim runs in one transaction under a per-key advisory lock,
//!   and a unique partial index on `(environment, location) WHERE state = 'running'` makes a
//!   second running check impossible even for a buggy caller.
//!
//! **One implementation.** Both backends are `sql::SqlStore`, where every query and row mapping
//! is written once; `sqlite.rs` and `postgres.rs` are its `sql::Dialect`s and hold only what
//! really differs (connecting and migrating, how a write transaction begins, row and key locks,
//! the JSON cast). A schema or query change is made in `sql.rs` (and both migration folders).
//!
//! **Leases.** The replica running a check (its `owner`, a string unique per process, e.g.
//! `hostname:uuid`) holds a lease and renews it ([`Store::renew_leases`]). A lease that expired
//! means the holder died: another replica (or the restarted bot, which has a new owner id) takes
//! the check over with [`Store::take_over_expired`] — or a new request for the same location
//! does, through [`Claim::TakenOver`] — and resumes it from the persisted stage and job handle.
//! Every write about a running check names its owner; once the check was taken over, the old
//! owner's writes do nothing and say so (`false` / [`FinishOutcome::LeaseLost`]). Leases compare
//! the replicas' own clocks, so keep clocks in sync (NTP) and leases far longer than any skew.
//!
//! **Incidents.** One alert for one (environment, location) from first firing to
//! resolution: at most one open per key (a unique partial index), repeats counted on it, its
//! resolution one `UPDATE … WHERE state = 'open'` so replicas resolve it once, and its
//! timeline in `incident_events`.
//!
//! **Clicks.** Every Slack message showing a result is recorded against its check (as a waiter,
//! or with [`Store::record_shown`] for a reused result), so a click is matched to the result its
//! message showed ([`Store::shown_result`]), never to what the click's value claims. A result is
//! paged once: [`Store::claim_page`] decides among concurrent clicks on any replica in one
//! statement on the `pages` row of that check, which also says who paged and when.
//!
//! **Feedback.** One row per (diagnosis message, Slack user) in `feedback`, upserted so a
//! person's second vote replaces the first ([`Store::record_vote`]); the 👎 forms linkbot opened
//! are kept by their random token in `feedback_forms` until answered (taken once, by a `DELETE`
//! whose row count decides among replicas) or [`FEEDBACK_FORM_RETENTION`] old.
//!
//! **Schema.** Versioned migrations in `migrations/sqlite/` and `migrations/postgres/` are
//! embedded in the binary (`include_str!`) and applied at open by sqlx's own [`Migrator`] (its
//! `_sqlx_migrations` table, checksums, one transaction per migration, a Postgres advisory lock
//! so replicas starting together apply them once). The binary reads no file at run time. Times
//! are stored as UTC unix milliseconds (`BIGINT`), so they come back at millisecond precision.
//!
//! **What this module must NOT do:** store a secret. The Jenkins job handle and the report are
//! opaque JSON to the store, and callers must never put a secret in them (the report carries at
//! most a key fingerprint). It must not show the database URL's password: errors and `Debug`
//! show the URL only through [`redact_url`]. It knows nothing of Slack, Jenkins or verdicts.

mod postgres;
mod sql;
mod sqlite;
mod storms;

use crate::domain::{Environment, LocationId};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::Serialize;
use sql::SqlStore;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How long [`Store::ping`] waits for the database. The pools wait up to 30 s for a connection
/// (retrying a refused one, as while a database restarts), which `/readyz` must not: it says
/// "store unreachable" as soon as one ping goes unanswered this long.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a recorded Slack event key is remembered by [`Store::first_seen`].
pub const EVENT_KEY_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// The id of one check (a row in the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CheckId(pub i64);

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

pub use crate::domain::CheckKey;
pub use storms::{Storm, StormFired, StormFiring, StormId, StormLocation, StormMode, Whereabouts};

/// The id of one incident (a row in the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct IncidentId(pub i64);

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A Slack message an incident points at: its channel and `ts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageRef {
    /// The channel id.
    pub channel: String,
    /// The message's `ts`.
    pub ts: String,
}

/// One alert for one (environment, location), from its first firing to its resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    /// The incident.
    pub id: IncidentId,
    /// Its location and environment.
    pub key: CheckKey,
    /// Whether it is still open (not resolved).
    pub open: bool,
    /// The first firing alert message.
    pub alert: MessageRef,
    /// When the alert fired (Alertmanager's `startsAt`, else the message's time).
    pub fired_at: DateTime<Utc>,
    /// The check the first firing started (or joined).
    pub check_id: Option<CheckId>,
    /// The message showing the diagnosis (edited on repeats, fixes and resolution).
    pub diagnosis: Option<MessageRef>,
    /// The first verdict reached for it.
    pub verdict: Option<String>,
    /// When that verdict was recorded.
    pub diagnosed_at: Option<DateTime<Utc>>,
    /// How many further firings joined it.
    pub repeat_count: i64,
    /// When the last of them arrived.
    pub last_repeat_at: Option<DateTime<Utc>>,
    /// When a re-run found it fixed (`api_key_accepted` after a key or region verdict).
    pub fixed_at: Option<DateTime<Utc>>,
    /// When it resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// The `[RESOLVED]` message that closed it.
    pub resolve_message: Option<MessageRef>,
    /// The PagerDuty `dedup_key` of the page linkbot sent for it, if it paged.
    pub pagerduty_dedup_key: Option<String>,
    /// The GitHub issue linkbot opened for it (`owner/repo`, number), if any.
    pub github_issue: Option<(String, i64)>,
}

/// The answer to [`Store::fire_incident`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    /// No incident was open for the key: this alert opened one.
    Opened(Incident),
    /// The alert repeats the open incident (its repeat count and time now include it).
    Repeat(Incident),
}

/// One line of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened (`fired`, `check_started`, `verdict`, `repeat`, `escalation`, `page`,
    /// `issue`, `rerun`, `fixed`, `resolved`).
    pub kind: String,
    /// Who (Slack user id), when a person acted.
    pub actor: Option<String>,
    /// A short note (verdict code, link, count). Never a secret.
    pub detail: Option<String>,
}

/// Where a check request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestSource {
    /// `@linkbot check …` in a channel.
    Mention,
    /// `/linkbot check …`.
    Slash,
    /// An alert message in a watched channel.
    Alert,
    /// `linkbot check` on a terminal.
    Cli,
    /// The Re-run button.
    Rerun,
}

impl RequestSource {
    /// The lower-case name stored and shown.
    pub fn as_str(&self) -> &'static str {
        match self {
            RequestSource::Mention => "mention",
            RequestSource::Slash => "slash",
            RequestSource::Alert => "alert",
            RequestSource::Cli => "cli",
            RequestSource::Rerun => "rerun",
        }
    }

    /// The source named by [`RequestSource::as_str`], if any.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Mention,
            Self::Slash,
            Self::Alert,
            Self::Cli,
            Self::Rerun,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Who asked for a check; recorded in the audit entry when it finishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requester {
    /// The Slack user id, if a person asked.
    pub user: Option<String>,
    /// The Slack channel id, if asked in Slack.
    pub channel: Option<String>,
    /// How the request came in.
    pub source: RequestSource,
}

/// A Slack message waiting for a check's verdict: the message to edit in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiter {
    /// The channel id.
    pub channel: String,
    /// The `ts` of the message to edit (`chat.update`).
    pub message_ts: String,
    /// The thread the message lives in, if any.
    pub thread_ts: Option<String>,
    /// The user who asked, to mention or to send ephemerals to.
    pub user: Option<String>,
}

/// A check that is running (or whose holder died): everything needed to resume it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InFlight {
    /// The check.
    pub check_id: CheckId,
    /// Its location and environment.
    pub key: CheckKey,
    /// The last stage the owner persisted (opaque to the store, e.g. `job_running`).
    pub stage: String,
    /// The last Jenkins job handle the owner persisted (queue item / build), opaque JSON.
    pub job: Option<serde_json::Value>,
    /// The process holding the lease.
    pub owner: String,
    /// When the lease runs out unless renewed.
    pub lease_expires_at: DateTime<Utc>,
    /// When the check started.
    pub started_at: DateTime<Utc>,
    /// Who asked first.
    pub requested_by: Requester,
    /// The Slack messages to edit with the verdict, in the order they were added.
    pub waiters: Vec<Waiter>,
}

/// A finished check and its result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinishedCheck {
    /// The check.
    pub check_id: CheckId,
    /// Its location and environment.
    pub key: CheckKey,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished (the age of a reused result is measured from here).
    pub finished_at: DateTime<Utc>,
    /// The verdict code.
    pub verdict: String,
    /// The report, opaque JSON.
    pub report: serde_json::Value,
    /// The Jenkins build, if one ran.
    pub build_url: Option<String>,
}

/// The answer to [`Store::claim_check`].
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// No check was running and no fresh result exists: the caller now owns a new check and
    /// must run it (renewing its lease), then [`Store::finish_check`] it.
    Started(CheckId),
    /// A check for this key is running under a live lease: add a [`Waiter`] and wait for it.
    Joined(CheckId),
    /// A result younger than the TTL exists: show it with its age and a Re-run button.
    Fresh(Box<FinishedCheck>),
    /// A check was running but its holder's lease had expired: it is now leased to the caller,
    /// who must resume it from its persisted stage and job (as after [`Store::take_over_expired`]).
    TakenOver(Box<InFlight>),
}

/// The answer to [`Store::finish_check`].
#[derive(Debug, Clone, PartialEq)]
pub enum FinishOutcome {
    /// The result and its audit entry are recorded; these are all the messages to edit. No
    /// waiter can be added after this (a late [`Store::add_waiter`] returns `false`).
    Recorded {
        /// The Slack messages waiting for the verdict.
        waiters: Vec<Waiter>,
    },
    /// The caller no longer owns the check (another owner took it over, or it is already
    /// finished): nothing was written.
    LeaseLost,
}

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditKind {
    /// A check finished.
    Check,
    /// Someone escalated.
    Escalation,
    /// A click asked for something its message did not offer (a forged or stale button): refused.
    RefusedAction,
    /// Someone silenced the alert in Alertmanager from a thread (or tried: see `detail`).
    Silence,
    /// A silence linkbot created was expired: by someone's Unsilence, or at resolution.
    Unsilence,
    /// Someone said whether a diagnosis was right (👍 / 👎, and the 👎 form's answer).
    Feedback,
    /// A storm: its end (one entry per location) and what on-call did with it (Check all, Stop).
    Storm,
}

impl AuditKind {
    /// The lower-case name stored and shown.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuditKind::Check => "check",
            AuditKind::Escalation => "escalation",
            AuditKind::RefusedAction => "refused_action",
            AuditKind::Silence => "silence",
            AuditKind::Unsilence => "unsilence",
            AuditKind::Feedback => "feedback",
            AuditKind::Storm => "storm",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "check" => Some(AuditKind::Check),
            "escalation" => Some(AuditKind::Escalation),
            "refused_action" => Some(AuditKind::RefusedAction),
            "silence" => Some(AuditKind::Silence),
            "unsilence" => Some(AuditKind::Unsilence),
            "feedback" => Some(AuditKind::Feedback),
            "storm" => Some(AuditKind::Storm),
            _ => None,
        }
    }
}

/// One line of the audit log. Times are kept at millisecond precision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// A check or an escalation.
    pub kind: AuditKind,
    /// Who (Slack user id), if a person.
    pub actor: Option<String>,
    /// Where (Slack channel id), if in Slack.
    pub channel: Option<String>,
    /// The location.
    pub location: LocationId,
    /// The environment.
    pub environment: Environment,
    /// The verdict code.
    pub verdict: Option<String>,
    /// The escalation target (config key), for escalations.
    pub target: Option<String>,
    /// The Jenkins build (checks) or the page / issue / message (escalations).
    pub link: Option<String>,
    /// A short free-text note (e.g. `via alert`). Never a secret.
    pub detail: Option<String>,
}

/// The page of one check result: who claimed it, when, and whether PagerDuty took it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageRecord {
    /// The check result being paged (the "incident").
    pub check_id: CheckId,
    /// The escalation target paged (config key).
    pub target: String,
    /// Who clicked Page (Slack user id).
    pub paged_by: String,
    /// When the page was claimed.
    pub claimed_at: DateTime<Utc>,
    /// When PagerDuty accepted it; `None` while the page is on its way.
    pub paged_at: Option<DateTime<Utc>>,
    /// What PagerDuty returned (e.g. `pagerduty:<dedup key>`), once sent.
    pub link: Option<String>,
}

/// The answer to [`Store::claim_page`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageClaim {
    /// The caller holds this result's page: send it, then call [`Store::page_sent`] or
    /// [`Store::page_failed`] with `claim`.
    Claimed {
        /// Names this claim in the later calls (a claim taken over after it went stale no
        /// longer matches).
        claim: String,
    },
    /// This result was already paged, or is being paged right now: do not page again.
    Taken(PageRecord),
}

// ---- the report (`linkbot report`, `/linkbot report`, the weekly post) ---------------------

/// A finished check as the report counts it: its verdict and build, not its report JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckOutcome {
    /// The check.
    pub check_id: CheckId,
    /// Its location and environment.
    pub key: CheckKey,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// The verdict code.
    pub verdict: String,
    /// The Jenkins build, if one ran.
    pub build_url: Option<String>,
}

/// One person's feedback on one diagnosis, as the report counts it (the `feedback` table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedbackVote {
    /// The verdict the diagnosis showed.
    pub verdict: String,
    /// 👍 (`true`) or 👎.
    pub up: bool,
    /// When the vote was last given.
    pub at: DateTime<Utc>,
}

/// Everything the report of a period is computed from, read by [`Store::report_rows`] in one
/// read transaction (one query per fact), for the period `[since, until)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReportRows {
    /// Incidents that fired or resolved in the period, oldest firing first.
    pub incidents: Vec<Incident>,
    /// Checks that finished in the period, oldest first.
    pub checks: Vec<CheckOutcome>,
    /// Escalation audit entries of the period (Escalate and Page clicks), oldest first.
    pub escalations: Vec<AuditEntry>,
    /// Pages PagerDuty accepted in the period (`pages` rows in state `paged`), oldest first.
    pub pages: Vec<PageRecord>,
    /// Feedback votes given (or last changed) in the period.
    pub feedback: Vec<FeedbackVote>,
    /// Incidents fired in the period whose alert was answered with a pointer to a storm and
    /// never checked (their storm location is unchecked): deliberately not diagnosed.
    pub storm_linked: Vec<IncidentId>,
}

/// The answer to [`Store::claim_report_slot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportSlotClaim {
    /// The caller posts this slot's report, then calls [`Store::finish_report_slot`] with `claim`.
    Claimed {
        /// Names this claim (a claim taken over after it went stale no longer matches).
        claim: String,
    },
    /// Another claim holds the slot (or it was posted): do not post.
    Taken {
        /// Who claimed it (a replica's instance name).
        owner: String,
        /// Whether its report was posted (`false`: it is being posted right now).
        posted: bool,
    },
}

/// A silence linkbot created in Alertmanager from a Slack thread (a row of `silences`): written
/// only once Alertmanager accepted it, expired once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SilenceRecord {
    /// Alertmanager's id of the silence.
    pub silence_id: String,
    /// The location and environment it silences.
    pub key: CheckKey,
    /// The incident open for that key when it was created (expired when that one resolves).
    pub incident_id: Option<IncidentId>,
    /// Who created it (Slack user id).
    pub created_by: String,
    /// Their Slack name, as sent to Alertmanager.
    pub created_by_name: String,
    /// From when.
    pub starts_at: DateTime<Utc>,
    /// Until when, as created.
    pub ends_at: DateTime<Utc>,
    /// "Until resolved": at most 7 days, expired by linkbot when its incident resolves.
    pub until_resolved: bool,
    /// The thread it was asked from (channel and thread `ts`).
    pub thread: MessageRef,
    /// The thread message showing it (and its Unsilence button), once posted.
    pub message: Option<MessageRef>,
    /// Whether linkbot still counts it in force (not expired by anyone through linkbot).
    pub active: bool,
    /// Who expired it (Slack user id, or `linkbot` at resolution).
    pub expired_by: Option<String>,
    /// When.
    pub expired_at: Option<DateTime<Utc>>,
}

// ---- Feedback on diagnoses ("Was this right?") ----------------------------------------------

/// How long a feedback form linkbot opened can still be answered: older forms are refused and
/// forgotten.
pub const FEEDBACK_FORM_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// A person's vote on a diagnosis: right (👍) or wrong (👎).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vote {
    /// 👍: the diagnosis was right.
    Up,
    /// 👎: it was not (the form then says what it was).
    Down,
}

impl Vote {
    /// `up` / `down`, as stored.
    pub fn as_str(&self) -> &'static str {
        match self {
            Vote::Up => "up",
            Vote::Down => "down",
        }
    }

    /// The stored name back; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "up" => Some(Vote::Up),
            "down" => Some(Vote::Down),
            _ => None,
        }
    }
}

/// One person's feedback on one diagnosis message (a row of `feedback`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Feedback {
    /// The diagnosis message.
    pub message: MessageRef,
    /// Who (Slack user id).
    pub user: String,
    /// Their Slack name, when the click carried it.
    pub user_name: Option<String>,
    /// The check whose result the message showed.
    pub check_id: Option<CheckId>,
    /// The incident whose diagnosis the message is, if any.
    pub incident_id: Option<IncidentId>,
    /// The location and environment of the diagnosis.
    pub key: CheckKey,
    /// The verdict code the message showed.
    pub verdict: String,
    /// Right or wrong.
    pub vote: Vote,
    /// What the person says it actually was (a verdict code or `other`), from the 👎 form.
    pub actual_verdict: Option<String>,
    /// Their comment, from the 👎 form (outside text: escape it wherever it is shown).
    pub comment: Option<String>,
    /// The first vote.
    pub created_at: DateTime<Utc>,
    /// The latest change.
    pub updated_at: DateTime<Utc>,
}

/// A vote to record with [`Store::record_vote`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVote<'a> {
    /// The diagnosis message.
    pub message: &'a MessageRef,
    /// Who (Slack user id).
    pub user: &'a str,
    /// Their Slack name, when known.
    pub user_name: Option<&'a str>,
    /// The check whose result the message shows.
    pub check_id: Option<CheckId>,
    /// The incident whose diagnosis the message is, if any.
    pub incident_id: Option<IncidentId>,
    /// The location and environment.
    pub key: &'a CheckKey,
    /// The verdict code the message shows.
    pub verdict: &'a str,
    /// Right or wrong.
    pub vote: Vote,
}

/// A 👎 form (modal) linkbot opened: who for, about which message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedbackForm {
    /// The random token put in the view's `private_metadata`.
    pub token: String,
    /// The diagnosis message the form is about.
    pub message: MessageRef,
    /// The user it was opened for.
    pub user: String,
    /// The location and environment of the diagnosis.
    pub key: CheckKey,
    /// The view id Slack gave it, once `views.open` answered.
    pub view_id: Option<String>,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
}

/// Where the store reads the time: the system clock, or a test's hand-driven one.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    /// The system clock (UTC).
    pub fn system() -> Self {
        Clock(Arc::new(Utc::now))
    }

    /// A clock that asks `now` for the time (tests use it to move time without sleeping).
    pub fn from_fn(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Clock(Arc::new(now))
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }

    fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// Why a store operation failed. `Display` and the source chain go to logs and never contain the
/// database password; [`StoreError::user_message`] is the sentence for a person.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported backend.
    #[error("store URL `{shown}` is not supported: use `sqlite://<file>` or `postgres://…`")]
    UnsupportedUrl {
        /// The URL with any password and query removed.
        shown: String,
    },
    /// The database could not be opened or reached.
    #[error("cannot open the store at {target}")]
    Open {
        /// The URL with any password and query removed.
        target: String,
        /// What sqlx said.
        #[source]
        source: sqlx::Error,
    },
    /// The database file, or the folder SQLite keeps its journal in, cannot be written (a
    /// read-only volume or file): found when opening it failed, by trying to open it for writing.
    #[error("the store at {target} is read-only for linkbot")]
    ReadOnly {
        /// The URL with any password and query removed.
        target: String,
        /// Why the file cannot be written (e.g. `Read-only file system`).
        #[source]
        source: std::io::Error,
    },
    /// The schema could not be brought up to date.
    #[error("cannot apply the store's schema migrations at {target}")]
    Migrate {
        /// The URL with any password and query removed.
        target: String,
        /// What the migrator said.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A statement failed.
    #[error("store operation `{op}` failed")]
    Query {
        /// Which [`Store`] method.
        op: &'static str,
        /// What sqlx said.
        #[source]
        source: sqlx::Error,
    },
    /// A stored value could not be read back (e.g. edited by hand).
    #[error("the store holds a value linkbot cannot read: {what}")]
    Corrupt {
        /// Which value, and why.
        what: String,
    },
}

impl StoreError {
    /// A short sentence for a person (Slack, terminal); the details stay in the logs.
    pub fn user_message(&self) -> &'static str {
        match self {
            StoreError::UnsupportedUrl { .. } => {
                "The store URL is not supported: set `[store] url` (or LINKBOT_STORE_URL) to sqlite://<file> or postgres://…."
            }
            StoreError::Migrate { .. } => {
                "linkbot cannot prepare its store's tables; the logs say why."
            }
            StoreError::Query { .. } | StoreError::Open { .. } if self.disk_full() => {
                "linkbot's store is out of disk space: nothing can be recorded until space is freed on its volume."
            }
            StoreError::ReadOnly { .. } => {
                "linkbot's store is read-only: its database file or volume cannot be written."
            }
            StoreError::Query { .. } | StoreError::Open { .. } if self.read_only() => {
                "linkbot's store is read-only: its database file or volume cannot be written."
            }
            StoreError::Query { .. } => "linkbot's store did not answer; try again shortly.",
            StoreError::Open { .. } => {
                "linkbot cannot open its store: check `[store] url` / LINKBOT_STORE_URL and that the database is up."
            }
            StoreError::Corrupt { .. } => {
                "linkbot's store holds a record it cannot read; the logs say which."
            }
        }
    }
}

impl StoreError {
    /// The SQLite primary result code behind the error, if SQLite gave one.
    fn sqlite_code(&self) -> Option<i64> {
        let source = match self {
            StoreError::Query { source, .. } | StoreError::Open { source, .. } => source,
            _ => return None,
        };
        let sqlx::Error::Database(db) = source else {
            return None;
        };
        db.try_downcast_ref::<sqlx::sqlite::SqliteError>()?;
        // sqlx reports SQLite's extended code; its low byte is the primary code.
        db.code()?.parse::<i64>().ok().map(|c| c & 0xff)
    }

    /// Whether the database's volume is full (SQLITE_FULL; PostgreSQL's `53100 disk_full`).
    pub fn disk_full(&self) -> bool {
        self.sqlite_code() == Some(13) || self.postgres_code().as_deref() == Some("53100")
    }

    /// Whether the database refuses writes because it, or its volume, is read-only
    /// (SQLITE_READONLY; PostgreSQL's `25006 read_only_sql_transaction`, e.g. a standby).
    pub fn read_only(&self) -> bool {
        self.sqlite_code() == Some(8) || self.postgres_code().as_deref() == Some("25006")
    }

    fn postgres_code(&self) -> Option<String> {
        let (StoreError::Query { source, .. } | StoreError::Open { source, .. }) = self else {
            return None;
        };
        let sqlx::Error::Database(db) = source else {
            return None;
        };
        db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
        db.code().map(|c| c.into_owned())
    }
}

/// SQL condition on `verdict` that a reusable result meets: only diagnoses
/// ([`VerdictCode::is_diagnosis`]) are reused within the TTL. Built from our own constants.
pub(crate) fn reusable_verdict_sql() -> String {
    let codes: Vec<String> = crate::diagnosis::verdict::VerdictCode::ALL
        .iter()
        .filter(|v| v.is_diagnosis())
        .map(|v| format!("'{}'", v.as_str()))
        .collect();
    format!("verdict IN ({})", codes.join(", "))
}

/// The durable store. Implementations are safe to share between tasks (and, for PostgreSQL,
/// between replicas). Callers must never pass a secret in any argument.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Checks that the database answers (for `/readyz`), within [`PING_TIMEOUT`].
    async fn ping(&self) -> Result<(), StoreError>;

    /// One check per (environment, location), atomically: join the check in flight (lease not
    /// expired, or already held by `owner`), take it over if its lease expired, reuse a finished result younger than `ttl`
    /// (pass `Duration::ZERO` to force a new check, e.g. for Re-run), or start a new check
    /// owned by `owner` with a lease of `lease`.
    async fn claim_check(
        &self,
        key: &CheckKey,
        owner: &str,
        lease: Duration,
        ttl: Duration,
        requested_by: &Requester,
    ) -> Result<Claim, StoreError>;

    /// Records a Slack message waiting for the check's verdict. `false` when the check is not
    /// running any more (read its result with [`Store::finished`]); adding the same
    /// (channel, message_ts) twice records it once.
    async fn add_waiter(&self, check_id: CheckId, waiter: &Waiter) -> Result<bool, StoreError>;

    /// The messages waiting for a check, in the order they were added.
    async fn waiters(&self, check_id: CheckId) -> Result<Vec<Waiter>, StoreError>;

    /// Persists how far the check got and (when `Some`) its Jenkins job handle; `None` keeps
    /// the job handle already stored. `false` if `owner` no longer holds the check.
    async fn set_stage(
        &self,
        check_id: CheckId,
        owner: &str,
        stage: &str,
        job: Option<&serde_json::Value>,
    ) -> Result<bool, StoreError>;

    /// Extends the leases of `check_ids` to now + `lease`, in one statement per 500 checks (a
    /// process renews every check it drives together). Returns the ones `owner` still holds;
    /// any other was taken over (or ended): stop working on it.
    async fn renew_leases(
        &self,
        check_ids: &[CheckId],
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<CheckId>, StoreError>;

    /// Records the result and appends the check's audit entry (exactly once per check), and
    /// returns every waiter to notify — all in one transaction.
    async fn finish_check(
        &self,
        check_id: CheckId,
        owner: &str,
        verdict: &str,
        report: &serde_json::Value,
        build_url: Option<&str>,
    ) -> Result<FinishOutcome, StoreError>;

    /// A finished check's result; `None` if it is unknown or still running.
    async fn finished(&self, check_id: CheckId) -> Result<Option<FinishedCheck>, StoreError>;

    /// Every running check, oldest first (for `linkbot status`).
    async fn in_flight(&self) -> Result<Vec<InFlight>, StoreError>;

    /// Checks whose lease expired and whose owner is not `owner` (the holder died): re-leased to
    /// `owner` for `lease` and returned, with their stage, job and waiters, to be resumed. Call
    /// at start and then periodically (e.g. every lease/2).
    async fn take_over_expired(
        &self,
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<InFlight>, StoreError>;

    /// Records that a Slack message shows the finished result of `check_id` although it never
    /// waited for it (a reused result, or one that finished before the message could wait), so
    /// a click on its buttons can be matched to what it showed ([`Store::shown_result`]).
    /// `false` (nothing recorded) when the check is unknown or not finished.
    async fn record_shown(&self, check_id: CheckId, message: &Waiter) -> Result<bool, StoreError>;

    /// The finished check whose result the Slack message (`channel`, `message_ts`) shows — the
    /// one it waited for, or the one recorded by [`Store::record_shown`]; `None` when the
    /// message shows no finished result (unknown to the store, or its check still running).
    async fn shown_result(
        &self,
        channel: &str,
        message_ts: &str,
    ) -> Result<Option<FinishedCheck>, StoreError>;

    /// Claims the page of one check result, atomically across tasks and replicas: exactly one
    /// of any number of concurrent callers gets [`PageClaim::Claimed`]; the others (and every
    /// later caller) get the [`PageRecord`] of who paged. A claim still unsent after `stale`
    /// (its holder died mid-page) is handed to the next caller.
    async fn claim_page(
        &self,
        check_id: CheckId,
        key: &CheckKey,
        target: &str,
        user: &str,
        stale: Duration,
    ) -> Result<PageClaim, StoreError>;

    /// Marks a claimed page as accepted by PagerDuty, with its `link`. `false` if `claim` no
    /// longer holds the page.
    async fn page_sent(
        &self,
        check_id: CheckId,
        claim: &str,
        link: &str,
    ) -> Result<bool, StoreError>;

    /// Drops a claimed page that did not go through, so the next click may page again. `false`
    /// if `claim` no longer holds the page.
    async fn page_failed(&self, check_id: CheckId, claim: &str) -> Result<bool, StoreError>;

    /// The newest finished check of a location (whatever its age): what an escalation sends.
    async fn latest_finished(&self, key: &CheckKey) -> Result<Option<FinishedCheck>, StoreError>;

    /// Hands every running check held by `owner` back (lease expired now), on graceful
    /// shutdown, so a restarted process or another replica resumes them at once. Returns how many.
    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError>;

    /// De-dup of Slack envelopes/events across restarts and replicas: `true` only the first time
    /// `event_key` is recorded. Keys are forgotten after [`EVENT_KEY_RETENTION`].
    async fn first_seen(&self, event_key: &str) -> Result<bool, StoreError>;

    /// Appends an audit entry (escalations; check entries are written by `finish_check`).
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// Audit entries at or after `since`, for `location` if given, newest first, at most `limit`.
    async fn audit(
        &self,
        since: Option<DateTime<Utc>>,
        location: Option<&LocationId>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    /// A firing alert for `key`: opens its incident (alert message, `fired_at`) when none is
    /// open, or counts a repeat of the open one — atomically across tasks and replicas, with
    /// its timeline event (`fired` / `repeat`).
    async fn fire_incident(
        &self,
        key: &CheckKey,
        alert: &MessageRef,
        fired_at: DateTime<Utc>,
    ) -> Result<Fired, StoreError>;

    /// The open incident of `key`, if any.
    async fn open_incident(&self, key: &CheckKey) -> Result<Option<Incident>, StoreError>;

    /// The newest incident of `location` (open or resolved, any environment).
    async fn latest_incident(&self, location: &LocationId) -> Result<Option<Incident>, StoreError>;

    /// The newest incident whose diagnosis is shown by message (`channel`, `ts`).
    async fn incident_for_message(
        &self,
        channel: &str,
        ts: &str,
    ) -> Result<Option<Incident>, StoreError>;

    /// Records the message showing an incident's diagnosis and, when `Some`, the check it
    /// started or joined (with a `check_started` event; `None` keeps the check recorded).
    /// `false` when the incident is unknown.
    async fn set_incident_check(
        &self,
        id: IncidentId,
        check_id: Option<CheckId>,
        diagnosis: &MessageRef,
    ) -> Result<bool, StoreError>;

    /// Records the incident's first verdict and when it came (with a `verdict` event); a later
    /// verdict changes nothing. Returns the incident as it now is.
    async fn incident_verdict(
        &self,
        id: IncidentId,
        verdict: &str,
    ) -> Result<Option<Incident>, StoreError>;

    /// Marks an open incident fixed (first time only, with a `fixed` event). `false` when it
    /// was already fixed, or is not open.
    async fn incident_fixed(&self, id: IncidentId, detail: &str) -> Result<bool, StoreError>;

    /// Records on the open incident of `key` the PagerDuty `dedup_key` linkbot paged with.
    async fn incident_paged(
        &self,
        key: &CheckKey,
        dedup_key: &str,
        actor: &str,
    ) -> Result<bool, StoreError>;

    /// Records on the open incident of `key` the GitHub issue linkbot opened.
    async fn incident_issue(
        &self,
        key: &CheckKey,
        repo: &str,
        number: i64,
        actor: &str,
    ) -> Result<bool, StoreError>;

    /// Resolves the open incident of `key` (by the `[RESOLVED]` message `by`) in one
    /// `UPDATE … WHERE state = 'open'`: of any number of concurrent callers on any replica,
    /// exactly one gets the incident; `None` when none was open.
    async fn resolve_incident(
        &self,
        key: &CheckKey,
        by: &MessageRef,
    ) -> Result<Option<Incident>, StoreError>;

    /// Appends an event to an incident's timeline.
    async fn add_incident_event(
        &self,
        id: IncidentId,
        kind: &str,
        actor: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), StoreError>;

    /// An incident's timeline, oldest first.
    async fn incident_events(&self, id: IncidentId) -> Result<Vec<IncidentEvent>, StoreError>;

    // ---- the report ----------------------------------------------------------------------

    /// The rows the report of `[since, until)` is computed from, in one read transaction (one
    /// query per fact: incidents, checks, escalations, pages, feedback).
    async fn report_rows(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<ReportRows, StoreError>;

    /// Claims the weekly report of `slot` (the slot's time, e.g. Monday 09:00 UTC) for `owner`,
    /// atomically across replicas: exactly one of any number of callers gets
    /// [`ReportSlotClaim::Claimed`]; the others (and every later caller, a restarted process
    /// too) get [`ReportSlotClaim::Taken`]. A claim left unposted after `stale` (its holder died
    /// mid-post) is handed to the next caller.
    async fn claim_report_slot(
        &self,
        slot: DateTime<Utc>,
        channel: &str,
        owner: &str,
        stale: Duration,
    ) -> Result<ReportSlotClaim, StoreError>;

    /// Ends a claim of [`Store::claim_report_slot`]: `Some(ts)` records the posted message (the
    /// slot is done for good); `None` drops the claim so the slot may be tried again. `false`
    /// when `claim` no longer holds the slot.
    async fn finish_report_slot(
        &self,
        slot: DateTime<Utc>,
        claim: &str,
        posted_ts: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Records a silence Alertmanager accepted (`active`; `message` and the expiry fields of
    /// `silence` are ignored: set later).
    async fn record_silence(&self, silence: &SilenceRecord) -> Result<(), StoreError>;

    /// Records the thread message (in the silence's channel) that shows silence `silence_id`.
    /// `false` when the silence is unknown.
    async fn set_silence_message(
        &self,
        silence_id: &str,
        message_ts: &str,
    ) -> Result<bool, StoreError>;

    /// The silence shown by message (`channel`, `ts`), if any.
    async fn silence_for_message(
        &self,
        channel: &str,
        ts: &str,
    ) -> Result<Option<SilenceRecord>, StoreError>;

    /// Silence `silence_id` (Alertmanager's id), if linkbot created it.
    async fn silence(&self, silence_id: &str) -> Result<Option<SilenceRecord>, StoreError>;

    /// The silences still active that were created for incident `id` (the one open for `key`),
    /// and the "until resolved" ones of `key` created while no incident was open; oldest first.
    async fn active_silences(
        &self,
        id: IncidentId,
        key: &CheckKey,
    ) -> Result<Vec<SilenceRecord>, StoreError>;

    /// Marks silence `silence_id` expired by `by`, once: of concurrent callers on any replica,
    /// one gets the record; `None` when it is unknown or already expired.
    async fn expire_silence(
        &self,
        silence_id: &str,
        by: &str,
    ) -> Result<Option<SilenceRecord>, StoreError>;

    // ---- Feedback on diagnoses ("Was this right?") ----

    /// Records `vote` as the user's feedback on its message: the first vote inserts the user's
    /// row, a later one replaces it (one row per message and user); a 👍 clears the answer of
    /// an earlier 👎 form, a 👎 keeps it until a new form is answered. Returns the row.
    async fn record_vote(&self, vote: &NewVote<'_>) -> Result<Feedback, StoreError>;

    /// Records the answer of a 👎 form on the user's row of `message` (the vote becomes 👎):
    /// what it actually was and the comment. `None` when the user has no row for the message.
    async fn record_feedback_answer(
        &self,
        message: &MessageRef,
        user: &str,
        actual_verdict: &str,
        comment: Option<&str>,
    ) -> Result<Option<Feedback>, StoreError>;

    /// Every feedback row of `message`, oldest first.
    async fn feedback_for_message(&self, message: &MessageRef)
        -> Result<Vec<Feedback>, StoreError>;

    /// Records a 👎 form opened for `user` about `message` under `token`; forms older than
    /// [`FEEDBACK_FORM_RETENTION`] are forgotten on the way.
    async fn open_feedback_form(
        &self,
        token: &str,
        message: &MessageRef,
        user: &str,
        key: &CheckKey,
    ) -> Result<(), StoreError>;

    /// Records the view id Slack gave the form `token`. `false` when the token is unknown.
    async fn set_feedback_form_view(&self, token: &str, view_id: &str) -> Result<bool, StoreError>;

    /// The form opened under `token`, if it is recorded, not yet answered and not older than
    /// [`FEEDBACK_FORM_RETENTION`].
    async fn feedback_form(&self, token: &str) -> Result<Option<FeedbackForm>, StoreError>;

    /// Takes the form `token` (it can be answered once): `true` for the one caller, across
    /// tasks and replicas, that took it.
    async fn take_feedback_form(&self, token: &str) -> Result<bool, StoreError>;

    // --- Storms (migrations 0008, 0009; the decisions are `storm/`'s) ---

    /// A first firing for `key` (its alert `alert`), in one transaction serialised per
    /// environment: ends the environment's active storm first when no new location fired in
    /// it for `window`; records the firing; joins the active storm, or declares one when more
    /// than `threshold` distinct locations fired within `window` (at most one active storm per
    /// environment, across replicas: a unique partial index). A location joining the active
    /// storm waits for its pointer reply (see [`Store::claim_storm_pointer`]), and so does a
    /// location of it firing again under another alert; the locations of a declaration do not
    /// (their checks answer them, and the declaring one is decided by the caller).
    async fn storm_fired(
        &self,
        key: &CheckKey,
        alert: &MessageRef,
        window: Duration,
        threshold: u32,
    ) -> Result<StormFired, StoreError>;

    /// The storm `id`.
    async fn storm(&self, id: StormId) -> Result<Option<Storm>, StoreError>;

    /// The active storm of `environment`, if any.
    async fn active_storm(&self, environment: Environment) -> Result<Option<Storm>, StoreError>;

    /// Every location of storm `id`, in firing order.
    async fn storm_locations(&self, id: StormId) -> Result<Vec<StormLocation>, StoreError>;

    /// Records the storm's message (once: `false` when it already has one).
    async fn set_storm_message(
        &self,
        id: StormId,
        message: &MessageRef,
    ) -> Result<bool, StoreError>;

    /// Records what the IAM health probe found.
    async fn set_storm_iam(&self, id: StormId, health: &str) -> Result<(), StoreError>;

    /// Records where `location` is in storm `id` (when not known yet).
    async fn set_storm_whereabouts(
        &self,
        id: StormId,
        location: &LocationId,
        at: &Whereabouts,
    ) -> Result<(), StoreError>;

    /// Puts `locations` in storm `id`'s sample; those not checked yet are marked checked and
    /// returned (the caller starts their checks).
    async fn set_storm_sample(
        &self,
        id: StormId,
        locations: &[LocationId],
    ) -> Result<Vec<StormLocation>, StoreError>;

    /// A verdict for `key`: recorded on the location in its environment's active storm (with
    /// where the check found it), with its reason both location-neutral (`reason`, what the
    /// sample is compared by) and as the report said it (`reason_text`, what is shown;
    /// migration 0010); the storm's id when it is in one.
    async fn storm_verdict(
        &self,
        key: &CheckKey,
        verdict: &str,
        reason: &str,
        reason_text: &str,
        at: &Whereabouts,
    ) -> Result<Option<StormId>, StoreError>;

    /// Moves active storm `id` from one of `from` to `to` (to `budget`: raising its epoch).
    /// The storm as changed, or `None` when it was not active in one of `from`.
    async fn set_storm_mode(
        &self,
        id: StormId,
        from: &[StormMode],
        to: StormMode,
    ) -> Result<Option<Storm>, StoreError>;

    /// Claims the next unchecked location of active storm `id` for `owner`, while it checks
    /// within the budget at `epoch`: marked checked (its check answers its alert) and returned
    /// (once, across replicas). Each claim renews `owner`'s heartbeat as the storm's budgeted
    /// checker (see [`Store::take_storm_pump`]).
    async fn claim_storm_check(
        &self,
        id: StormId,
        epoch: i64,
        owner: &str,
    ) -> Result<Option<StormLocation>, StoreError>;

    /// Takes over the budgeted checking of active storm `id` for `owner` when its checker's
    /// heartbeat is older than `stale` (it died) and a location is left unchecked: the epoch is
    /// raised, so the old checker's claims fail. The storm as taken, once across replicas.
    async fn take_storm_pump(
        &self,
        id: StormId,
        owner: &str,
        stale: Duration,
    ) -> Result<Option<Storm>, StoreError>;

    /// Marks `location`'s alert in storm `id` as waiting for its pointer reply (a storm's
    /// declaring alert that is not in the sample; other alerts joining a storm wait from the
    /// start, see [`Store::storm_fired`]).
    async fn storm_point(&self, id: StormId, location: &LocationId) -> Result<(), StoreError>;

    /// Claims, for `owner` until now + `lease`, the first alert of storm `id` (in firing order)
    /// waiting for its pointer reply and not claimed by a live claim: once across replicas.
    /// `None` when none waits. A claim whose post failed is left to expire: the alert is
    /// claimed again (and its pointer tried again) after `lease`.
    async fn claim_storm_pointer(
        &self,
        id: StormId,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<StormLocation>, StoreError>;

    /// Records that `location`'s alert in storm `id` got its pointer reply (its claim ends).
    async fn storm_pointed(&self, id: StormId, location: &LocationId) -> Result<(), StoreError>;

    /// Releases every pointer claim `owner` holds (on graceful shutdown: another replica, or
    /// the next process, posts them without waiting for the claims to expire).
    async fn release_storm_pointers(&self, owner: &str) -> Result<u64, StoreError>;

    /// The storms a starting replica takes up: every active one, and those with an alert still
    /// waiting for its pointer whose last firing is not older than `since`.
    async fn storms_to_resume(&self, since: Duration) -> Result<Vec<Storm>, StoreError>;

    /// Ends active storm `id` if no new location fired in it for `quiet`; the storm as ended
    /// (once, across replicas).
    async fn end_quiet_storm(
        &self,
        id: StormId,
        quiet: Duration,
    ) -> Result<Option<Storm>, StoreError>;

    /// Closes the connections (on shutdown); later calls fail.
    async fn close(&self);
}

/// Opens the store named by `url` (`sqlite://…` or `postgres://…`), creating a SQLite file if
/// missing, and applies pending migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_with_clock(url, Clock::system()).await
}

/// [`open`] with a given clock (tests move time by hand).
pub async fn open_with_clock(url: &str, clock: Clock) -> Result<Arc<dyn Store>, StoreError> {
    let scheme = url
        .trim_start()
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match scheme.as_str() {
        "sqlite" => Ok(Arc::new(
            SqlStore::<sqlite::SqliteDialect>::open(url, clock).await?,
        )),
        "postgres" | "postgresql" => Ok(Arc::new(
            SqlStore::<postgres::PgDialect>::open(url, clock).await?,
        )),
        _ => Err(StoreError::UnsupportedUrl {
            shown: redact_url(url),
        }),
    }
}

/// The URL fit for logs: password replaced by `redacted`, query (which may carry
/// `password=`) and fragment dropped; an unparseable URL shows only its scheme.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url.trim()) {
        Ok(mut u) => {
            if u.password().is_some() {
                // Fails only for URLs that cannot have a password, which then have none.
                let _ = u.set_password(Some("redacted"));
            }
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => {
            let scheme: String = url
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                .take(20)
                .collect();
            format!("{scheme}:[unparseable URL]")
        }
    }
}

// ---- shared by the backends -------------------------------------------------------------

/// One embedded migration file.
struct EmbeddedMigration {
    version: i64,
    description: &'static str,
    sql: &'static str,
}

/// Migrations compiled into the binary, handed to sqlx's [`Migrator`].
#[derive(Debug)]
struct Embedded(&'static [EmbeddedMigration]);

impl fmt::Debug for EmbeddedMigration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.version, self.description)
    }
}

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        let migrations = self
            .0
            .iter()
            .map(|m| {
                Migration::new(
                    m.version,
                    Cow::Borrowed(m.description),
                    MigrationType::Simple,
                    Cow::Borrowed(m.sql),
                    false,
                )
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

async fn migrator(
    migrations: &'static [EmbeddedMigration],
) -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded(migrations)).await
}

/// Runs `SELECT 1` on `pool`, failing once [`PING_TIMEOUT`] passes without an answer.
async fn ping_pool<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> Result<(), StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    match tokio::time::timeout(PING_TIMEOUT, async {
        let mut conn = pool.acquire().await?;
        sqlx::query("SELECT 1").execute(&mut *conn).await
    })
    .await
    {
        Ok(done) => done.map(drop).map_err(query_error("ping")),
        Err(_) => Err(query_error("ping")(sqlx::Error::PoolTimedOut)),
    }
}

fn query_error(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { op, source }
}

/// A duration as whole milliseconds, saturating.
fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn time_from_ms(ms: i64, what: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt {
        what: format!("{what}: {ms} is not a time"),
    })
}

fn json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

fn json_from_text(text: &str, what: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: format!("{what} is not JSON ({e})"),
    })
}

/// Reads columns from a row of either backend, turning decode errors into [`StoreError`].
trait Cols {
    fn int(&self, col: &'static str) -> Result<i64, StoreError>;
    fn opt_int(&self, col: &'static str) -> Result<Option<i64>, StoreError>;
    fn text(&self, col: &'static str) -> Result<String, StoreError>;
    fn opt_text(&self, col: &'static str) -> Result<Option<String>, StoreError>;
}

fn decode_error(col: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::Corrupt {
        what: format!("column `{col}`: {e}"),
    }
}

macro_rules! impl_cols {
    ($row:ty) => {
        impl Cols for $row {
            fn int(&self, col: &'static str) -> Result<i64, StoreError> {
                sqlx::Row::try_get::<i64, _>(self, col).map_err(decode_error(col))
            }
            fn opt_int(&self, col: &'static str) -> Result<Option<i64>, StoreError> {
                sqlx::Row::try_get::<Option<i64>, _>(self, col).map_err(decode_error(col))
            }
            fn text(&self, col: &'static str) -> Result<String, StoreError> {
                sqlx::Row::try_get::<String, _>(self, col).map_err(decode_error(col))
            }
            fn opt_text(&self, col: &'static str) -> Result<Option<String>, StoreError> {
                sqlx::Row::try_get::<Option<String>, _>(self, col).map_err(decode_error(col))
            }
        }
    };
}
impl_cols!(sqlx::sqlite::SqliteRow);
impl_cols!(sqlx::postgres::PgRow);

fn key_from_row(row: &impl Cols) -> Result<CheckKey, StoreError> {
    let env = row.text("environment")?;
    Ok(CheckKey {
        environment: Environment::parse(&env).map_err(|e| StoreError::Corrupt {
            what: e.to_string(),
        })?,
        location: location_from_row(row)?,
    })
}

/// The row's `location` column, parsed.
fn location_from_row(row: &impl Cols) -> Result<LocationId, StoreError> {
    LocationId::parse(&row.text("location")?).map_err(|e| StoreError::Corrupt {
        what: e.to_string(),
    })
}

/// An [`InFlight`] from a row with the columns of `IN_FLIGHT_COLUMNS` (waiters added later).
fn in_flight_from_row(row: &impl Cols) -> Result<InFlight, StoreError> {
    let source = row.text("requested_by_source")?;
    Ok(InFlight {
        check_id: CheckId(row.int("id")?),
        key: key_from_row(row)?,
        stage: row.text("stage")?,
        job: row
            .opt_text("job")?
            .map(|j| json_from_text(&j, "job handle"))
            .transpose()?,
        owner: row.text("owner")?,
        lease_expires_at: time_from_ms(row.int("lease_expires_at")?, "lease_expires_at")?,
        started_at: time_from_ms(row.int("started_at")?, "started_at")?,
        requested_by: Requester {
            user: row.opt_text("requested_by_user")?,
            channel: row.opt_text("requested_by_channel")?,
            source: RequestSource::parse(&source).ok_or_else(|| StoreError::Corrupt {
                what: format!("unknown request source `{source}`"),
            })?,
        },
        waiters: Vec::new(),
    })
}

/// A [`FinishedCheck`] from a row with the columns of `FINISHED_COLUMNS`.
fn finished_from_row(row: &impl Cols) -> Result<FinishedCheck, StoreError> {
    let report = row.opt_text("report")?.unwrap_or_else(|| "null".into());
    Ok(FinishedCheck {
        check_id: CheckId(row.int("id")?),
        key: key_from_row(row)?,
        started_at: time_from_ms(row.int("started_at")?, "started_at")?,
        finished_at: time_from_ms(row.int("finished_at")?, "finished_at")?,
        verdict: row.opt_text("verdict")?.unwrap_or_default(),
        report: json_from_text(&report, "report")?,
        build_url: row.opt_text("build_url")?,
    })
}

fn waiter_from_row(row: &impl Cols) -> Result<Waiter, StoreError> {
    Ok(Waiter {
        channel: row.text("channel")?,
        message_ts: row.text("message_ts")?,
        thread_ts: row.opt_text("thread_ts")?,
        user: row.opt_text("user_id")?,
    })
}

fn audit_from_row(row: &impl Cols) -> Result<AuditEntry, StoreError> {
    let kind = row.text("kind")?;
    let key = key_from_row(row)?;
    Ok(AuditEntry {
        at: time_from_ms(row.int("at")?, "audit time")?,
        kind: AuditKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
            what: format!("unknown audit kind `{kind}`"),
        })?,
        actor: row.opt_text("actor")?,
        channel: row.opt_text("channel")?,
        location: key.location,
        environment: key.environment,
        verdict: row.opt_text("verdict")?,
        target: row.opt_text("target")?,
        link: row.opt_text("link")?,
        detail: row.opt_text("detail")?,
    })
}

fn opt_time(row: &impl Cols, col: &'static str) -> Result<Option<DateTime<Utc>>, StoreError> {
    row.opt_int(col)?
        .map(|ms| time_from_ms(ms, col))
        .transpose()
}

fn message_ref(channel: Option<String>, ts: Option<String>) -> Option<MessageRef> {
    Some(MessageRef {
        channel: channel?,
        ts: ts?,
    })
}

/// An [`Incident`] from a row with the columns of `sql::INCIDENT_COLUMNS`.
fn incident_from_row(row: &impl Cols) -> Result<Incident, StoreError> {
    let github_issue = match (row.opt_text("github_repo")?, row.opt_int("github_number")?) {
        (Some(repo), Some(n)) => Some((repo, n)),
        _ => None,
    };
    Ok(Incident {
        id: IncidentId(row.int("id")?),
        key: key_from_row(row)?,
        open: row.text("state")? == "open",
        alert: MessageRef {
            channel: row.text("alert_channel")?,
            ts: row.text("alert_ts")?,
        },
        fired_at: time_from_ms(row.int("fired_at")?, "fired_at")?,
        check_id: row.opt_int("check_id")?.map(CheckId),
        diagnosis: message_ref(
            row.opt_text("diagnosis_channel")?,
            row.opt_text("diagnosis_ts")?,
        ),
        verdict: row.opt_text("verdict")?,
        diagnosed_at: opt_time(row, "diagnosed_at")?,
        repeat_count: row.int("repeat_count")?,
        last_repeat_at: opt_time(row, "last_repeat_at")?,
        fixed_at: opt_time(row, "fixed_at")?,
        resolved_at: opt_time(row, "resolved_at")?,
        resolve_message: message_ref(
            row.opt_text("resolve_channel")?,
            row.opt_text("resolve_ts")?,
        ),
        pagerduty_dedup_key: row.opt_text("pagerduty_dedup_key")?,
        github_issue,
    })
}

/// A [`SilenceRecord`] from a row with the columns of `sql::SILENCE_COLUMNS`.
fn silence_from_row(row: &impl Cols) -> Result<SilenceRecord, StoreError> {
    let channel = row.text("channel")?;
    Ok(SilenceRecord {
        silence_id: row.text("silence_id")?,
        key: key_from_row(row)?,
        incident_id: row.opt_int("incident_id")?.map(IncidentId),
        created_by: row.text("created_by")?,
        created_by_name: row.text("created_by_name")?,
        starts_at: time_from_ms(row.int("starts_at")?, "starts_at")?,
        ends_at: time_from_ms(row.int("ends_at")?, "ends_at")?,
        until_resolved: row.int("until_resolved")? != 0,
        thread: MessageRef {
            channel: channel.clone(),
            ts: row.text("thread_ts")?,
        },
        message: message_ref(Some(channel), row.opt_text("message_ts")?),
        active: row.text("state")? == "active",
        expired_by: row.opt_text("expired_by")?,
        expired_at: opt_time(row, "expired_at")?,
    })
}

fn incident_event_from_row(row: &impl Cols) -> Result<IncidentEvent, StoreError> {
    Ok(IncidentEvent {
        at: time_from_ms(row.int("at")?, "incident event time")?,
        kind: row.text("kind")?,
        actor: row.opt_text("actor")?,
        detail: row.opt_text("detail")?,
    })
}

/// How many times [`Store::claim_page`] retries when the row it lost to vanished (its page
/// failed) between its two statements.
const CLAIM_PAGE_ATTEMPTS: usize = 3;

/// A [`Feedback`] from a row with the columns of `sql::FEEDBACK_COLUMNS`.
fn feedback_from_row(row: &impl Cols) -> Result<Feedback, StoreError> {
    let vote = row.text("vote")?;
    Ok(Feedback {
        message: MessageRef {
            channel: row.text("channel")?,
            ts: row.text("message_ts")?,
        },
        user: row.text("user_id")?,
        user_name: row.opt_text("user_name")?,
        check_id: row.opt_int("check_id")?.map(CheckId),
        incident_id: row.opt_int("incident_id")?.map(IncidentId),
        key: key_from_row(row)?,
        verdict: row.text("verdict")?,
        vote: Vote::parse(&vote).ok_or_else(|| StoreError::Corrupt {
            what: format!("unknown vote `{vote}`"),
        })?,
        actual_verdict: row.opt_text("actual_verdict")?,
        comment: row.opt_text("comment")?,
        created_at: time_from_ms(row.int("created_at")?, "created_at")?,
        updated_at: time_from_ms(row.int("updated_at")?, "updated_at")?,
    })
}

/// A [`FeedbackForm`] from a row with the columns of `sql::FEEDBACK_FORM_COLUMNS`.
fn feedback_form_from_row(row: &impl Cols) -> Result<FeedbackForm, StoreError> {
    Ok(FeedbackForm {
        token: row.text("token")?,
        message: MessageRef {
            channel: row.text("channel")?,
            ts: row.text("message_ts")?,
        },
        user: row.text("user_id")?,
        key: key_from_row(row)?,
        view_id: row.opt_text("view_id")?,
        created_at: time_from_ms(row.int("created_at")?, "created_at")?,
    })
}

fn page_row_vanished(check_id: CheckId) -> StoreError {
    StoreError::Corrupt {
        what: format!("the page of check {check_id} kept vanishing while it was claimed"),
    }
}

/// A [`PageRecord`] from a row of `pages`.
fn page_from_row(row: &impl Cols) -> Result<PageRecord, StoreError> {
    let paged_at = match row.opt_int("paged_at")? {
        Some(ms) => Some(time_from_ms(ms, "paged_at")?),
        None => None,
    };
    Ok(PageRecord {
        check_id: CheckId(row.int("check_id")?),
        target: row.text("target")?,
        paged_by: row.text("paged_by")?,
        claimed_at: time_from_ms(row.int("claimed_at")?, "claimed_at")?,
        paged_at,
        link: row.opt_text("link")?,
    })
}

/// A [`CheckOutcome`] from a row of `sql::CHECK_OUTCOME_COLUMNS`.
fn check_outcome_from_row(row: &impl Cols) -> Result<CheckOutcome, StoreError> {
    Ok(CheckOutcome {
        check_id: CheckId(row.int("id")?),
        key: key_from_row(row)?,
        finished_at: time_from_ms(row.int("finished_at")?, "finished_at")?,
        verdict: row.opt_text("verdict")?.unwrap_or_default(),
        build_url: row.opt_text("build_url")?,
    })
}

/// A [`FeedbackVote`] from a row of `feedback` (`verdict`, `vote`, `updated_at`).
fn feedback_vote_from_row(row: &impl Cols) -> Result<FeedbackVote, StoreError> {
    let vote = row.text("vote")?;
    Ok(FeedbackVote {
        verdict: row.text("verdict")?,
        up: match vote.as_str() {
            "up" => true,
            "down" => false,
            other => {
                return Err(StoreError::Corrupt {
                    what: format!("unknown feedback vote `{other}`"),
                })
            }
        },
        at: time_from_ms(row.int("updated_at")?, "feedback time")?,
    })
}

/// A token naming one page claim (unique enough: a claim is compared only with the one row).
fn new_page_claim(now_ms: i64) -> String {
    format!("{now_ms:x}-{:016x}", fastrand::u64(..))
}

/// The audit entry written when a check finishes.
fn check_audit_detail(source: &str) -> String {
    format!("via {source}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_passwords_and_query() {
        let cases = [
            (
                "postgres://u:hunter2@db:5432/x",
                "postgres://u:redacted@db:5432/x",
            ),
            (
                "postgres://u@db/x?password=hunter2&sslmode=require",
                "postgres://u@db/x",
            ),
            ("sqlite://linkbot.db", "sqlite://linkbot.db"),
            ("sqlite::memory:", "sqlite::memory:"),
            ("post gres://u:hunter2@db", "post:[unparseable URL]"),
        ];
        for (url, want) in cases {
            let got = redact_url(url);
            assert_eq!(got, want, "{url}");
            assert!(!got.contains("hunter2"));
        }
    }

    #[test]
    fn request_source_round_trips() {
        for s in ["mention", "slash", "alert", "cli", "rerun"] {
            assert_eq!(RequestSource::parse(s).map(|k| k.as_str()), Some(s));
        }
        assert_eq!(RequestSource::parse("MENTION"), None);
    }
}
