//! The incident lifecycle: one alert for one (environment, location), from its first firing to
//! its resolution — the decisions, in order, over the store and the escalation clients.
//!
//! A first firing opens the incident (the Slack layer then starts its check and records the
//! diagnosis message on it); a further firing while it is open is a *repeat*: no check, the
//! diagnosis re-shown with "fired again ×N" and a pointer reply under the new alert. A verdict
//! shown in the incident's diagnosis message becomes its diagnosis (time to diagnosis). A
//! `[RESOLVED]` message resolves it once (one store statement across replicas): the diagnosis is
//! re-shown with the resolved line and without Escalate/Page, both threads get a pointer, the
//! alert gets ✅, PagerDuty is resolved only if linkbot paged, and the GitHub issue linkbot
//! opened gets a comment (and is closed when its team says `close_issue_on_resolve`). A re-run
//! whose verdict differs from the incident's says so, and `api_key_accepted` after a key or
//! region verdict marks the incident fixed. Every step lands in the incident's timeline. The
//! silences linkbot created for the incident are expired at resolution (`crate::silence`), and
//! the resolve reply says so, or says which could not be.
//!
//! This module must NOT import slack-morphism, render Slack text, or import `config`: Slack is
//! behind [`IncidentChannel`] (implemented in `slack/alert_message.rs`), which receives typed
//! values ([`IncidentStatus`], [`Notice`]) that `slack/blocks.rs` renders.

use crate::diagnosis::verdict::{Report, VerdictCode};
use crate::escalation::{EscalationTarget, Escalators};
use crate::metrics::Metrics;
use crate::silence::Silences;
use crate::store::{CheckKey, Fired, Incident, IncidentEvent, MessageRef, SilenceRecord, Store};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;

/// What the diagnosis message says about its incident, above the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentStatus {
    /// When the alert fired.
    pub fired_at: DateTime<Utc>,
    /// How many further firings joined it.
    pub repeats: i64,
    /// When the last one came.
    pub last_repeat_at: Option<DateTime<Utc>>,
    /// When a re-run found it fixed.
    pub fixed_at: Option<DateTime<Utc>>,
    /// When it resolved: Escalate and Page are no longer offered.
    pub resolved_at: Option<DateTime<Utc>>,
}

impl IncidentStatus {
    /// The status of `incident` as stored.
    pub fn of(incident: &Incident) -> Self {
        IncidentStatus {
            fired_at: incident.fired_at,
            repeats: incident.repeat_count,
            last_repeat_at: incident.last_repeat_at,
            fixed_at: incident.fixed_at,
            resolved_at: incident.resolved_at,
        }
    }

    /// How long the incident was open, once resolved.
    pub fn open_for(&self) -> Option<chrono::Duration> {
        self.resolved_at.map(|r| r - self.fired_at)
    }
}

/// A one-line reply the incident puts in a thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Under a repeated alert: it joined the open incident.
    Repeat {
        /// How many repeats so far.
        count: i64,
        /// The diagnosis message's permalink, when Slack gave one.
        diagnosis_link: Option<String>,
    },
    /// In the alert's and the `[RESOLVED]` message's threads.
    Resolved {
        /// When.
        at: DateTime<Utc>,
        /// How long it was open.
        open_for: chrono::Duration,
        /// The diagnosis message's permalink, when Slack gave one.
        diagnosis_link: Option<String>,
        /// Alertmanager ids of the silences linkbot expired with it.
        expired_silences: Vec<String>,
        /// Silences it could not expire: id and the sentence saying why.
        silence_failures: Vec<(String, String)>,
        /// What linkbot did in PagerDuty and GitHub for it, and what failed (never silent: a
        /// page left open or an issue not commented is said in the thread).
        followups: Vec<Followup>,
    },
    /// Under a re-run whose verdict differs from the incident's diagnosis.
    Changed {
        /// The incident's diagnosis.
        was: VerdictCode,
        /// The re-run's verdict.
        now: VerdictCode,
        /// Whether this marks the incident fixed.
        fixed: bool,
    },
}

/// What the resolution of an incident did outside Slack, said in its threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followup {
    /// The page linkbot sent was resolved (PagerDuty Events v2 `resolve`, same `dedup_key`).
    PagerDutyResolved {
        /// The page's `dedup_key`.
        dedup_key: String,
    },
    /// PagerDuty did not take the resolve: the incident stays open there.
    PagerDutyFailed {
        /// The page's `dedup_key`.
        dedup_key: String,
        /// One sentence (scrubbed).
        why: String,
    },
    /// The issue linkbot opened got the resolution comment (and was closed, when `closed`).
    IssueCommented {
        /// `owner/repo#n`.
        issue: String,
        /// `Some(true)` closed, `Some(false)` closing failed, `None` not asked to close.
        closed: Option<bool>,
    },
    /// GitHub did not take the comment.
    IssueFailed {
        /// `owner/repo#n`.
        issue: String,
        /// One sentence (scrubbed).
        why: String,
    },
}

/// The Slack side of an incident (implemented in `slack/alert_message.rs`).
#[async_trait::async_trait]
pub trait IncidentChannel: Send + Sync {
    /// Shows `report` again in the diagnosis message, with `status` above it.
    async fn show(
        &self,
        diagnosis: &MessageRef,
        report: &Report,
        status: &IncidentStatus,
    ) -> Result<()>;
    /// The permalink of a message, when Slack gives one.
    async fn permalink(&self, message: &MessageRef) -> Option<String>;
    /// Replies one line in the thread of `message`.
    async fn reply(&self, message: &MessageRef, notice: &Notice) -> Result<()>;
    /// Marks `message` (the alert) resolved with a ✅ reaction.
    async fn react_resolved(&self, message: &MessageRef) -> Result<()>;
    /// Shows `silence` (just expired at resolution) again in its thread message.
    async fn show_silence(&self, silence: &SilenceRecord) -> Result<()>;
}

/// What a resolution did, for the logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Resolution {
    /// Whether PagerDuty took the `resolve` (only tried when linkbot paged).
    pub pagerduty_resolved: Option<bool>,
    /// Whether GitHub took the comment (only tried when linkbot opened an issue).
    pub github_commented: Option<bool>,
    /// Whether the issue was closed (only tried when its team asks for it).
    pub github_closed: Option<bool>,
    /// Silences expired with the incident.
    pub silences_expired: usize,
    /// Silences that could not be expired.
    pub silences_failed: usize,
}

/// One event of a timeline with the time since the previous one and since the firing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    /// The event.
    #[serde(flatten)]
    pub event: IncidentEvent,
    /// Milliseconds since the previous event (0 for the first).
    pub since_previous_ms: i64,
    /// Milliseconds since the alert fired.
    pub since_fired_ms: i64,
}

/// An incident and its timeline, for `linkbot audit --timeline`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timeline {
    /// The incident.
    pub incident: Incident,
    /// Its events, oldest first.
    pub events: Vec<TimelineEntry>,
}

/// The incident workflow over the store, the escalation clients and the configured targets.
/// Cheap to clone.
#[derive(Clone)]
pub struct Incidents {
    store: Arc<dyn Store>,
    escalators: Escalators,
    targets: Arc<[EscalationTarget]>,
    metrics: Metrics,
    silences: Option<Silences>,
}

/// A verdict that says the key or the region was wrong: what a working key later fixes.
fn key_or_region(v: VerdictCode) -> bool {
    match v {
        VerdictCode::ApiKeyInvalid | VerdictCode::RegionMismatch => true,
        VerdictCode::ConfigMissing
        | VerdictCode::ApiKeyAccepted
        | VerdictCode::IamUnreachable
        | VerdictCode::UnknownLocation
        | VerdictCode::LookupFailed
        | VerdictCode::JobFailed
        | VerdictCode::ArtifactMissing => false,
    }
}

impl Incidents {
    /// A workflow with these clients and `[escalation.*]` targets.
    pub fn new(
        store: Arc<dyn Store>,
        escalators: Escalators,
        targets: Vec<EscalationTarget>,
        metrics: Metrics,
    ) -> Self {
        Incidents {
            store,
            escalators,
            targets: targets.into(),
            metrics,
            silences: None,
        }
    }

    /// The same workflow, expiring the incident's silences through `silences` at resolution.
    pub fn with_silences(mut self, silences: Silences) -> Self {
        self.silences = Some(silences);
        self
    }

    /// The store the incidents live in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A firing alert for `key`: opens its incident, or counts a repeat of the open one.
    pub async fn fired(
        &self,
        key: &CheckKey,
        alert: &MessageRef,
        fired_at: DateTime<Utc>,
    ) -> Result<Fired> {
        self.store
            .fire_incident(key, alert, fired_at)
            .await
            .context("recording the alert's incident")
    }

    /// The report the incident's check reached, if it finished.
    async fn report_of(&self, incident: &Incident) -> Option<Report> {
        let check_id = incident.check_id?;
        let done = self.store.finished(check_id).await.ok()??;
        serde_json::from_value(done.report).ok()
    }

    /// A repeat joined `incident`: re-show its diagnosis with the count (when it has one) and
    /// point the new alert at it. No check, no new diagnosis.
    pub async fn repeated(
        &self,
        incident: &Incident,
        alert: &MessageRef,
        chat: &dyn IncidentChannel,
    ) -> Result<()> {
        let status = IncidentStatus::of(incident);
        if let (Some(diagnosis), Some(report)) =
            (&incident.diagnosis, self.report_of(incident).await)
        {
            if let Err(e) = chat.show(diagnosis, &report, &status).await {
                tracing::warn!(error = format!("{e:#}"), "could not show the repeat count");
            }
        }
        let target = incident.diagnosis.as_ref().unwrap_or(&incident.alert);
        let notice = Notice::Repeat {
            count: incident.repeat_count,
            diagnosis_link: chat.permalink(target).await,
        };
        chat.reply(alert, &notice).await
    }

    /// The verdict `report` is about to be shown in `message`: when that message is an
    /// incident's diagnosis, it becomes the incident's diagnosis (first verdict only, time to
    /// diagnosis measured) and the status to show with it is returned.
    pub async fn shown(&self, message: &MessageRef, report: &Report) -> Option<IncidentStatus> {
        let incident = match self
            .store
            .incident_for_message(&message.channel, &message.ts)
            .await
        {
            Ok(found) => found?,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the incident of a diagnosis message");
                return None;
            }
        };
        if incident.verdict.is_some() {
            return Some(IncidentStatus::of(&incident));
        }
        let verdict = report.verdict.as_str();
        match self.store.incident_verdict(incident.id, verdict).await {
            Ok(Some(now)) => {
                if let Some(at) = now.diagnosed_at {
                    let secs = (at - now.fired_at).num_milliseconds().max(0) as f64 / 1000.0;
                    self.metrics.time_to_diagnosis.observe(
                        now.key.environment.as_str(),
                        verdict,
                        secs,
                    );
                }
                Some(IncidentStatus::of(&now))
            }
            Ok(None) => Some(IncidentStatus::of(&incident)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot record the incident's verdict");
                Some(IncidentStatus::of(&incident))
            }
        }
    }

    /// A request (mention, slash command, re-run) for `key`: joins the open incident's
    /// timeline. Returns the incident it joined.
    pub async fn joined(
        &self,
        key: &CheckKey,
        kind: &str,
        actor: Option<&str>,
    ) -> Option<Incident> {
        let incident = self.store.open_incident(key).await.ok()??;
        if let Err(e) = self
            .store
            .add_incident_event(incident.id, kind, actor, None)
            .await
        {
            tracing::warn!(error = %e, "cannot record a request on the incident");
        }
        Some(incident)
    }

    /// A re-run's verdict for `key` was shown: when it differs from the open incident's
    /// diagnosis, returns what to say; `api_key_accepted` after a key or region verdict marks
    /// the incident fixed (and re-shows its diagnosis with the fixed line).
    pub async fn rechecked(
        &self,
        key: &CheckKey,
        report: &Report,
        chat: &dyn IncidentChannel,
    ) -> Option<Notice> {
        let incident = self.store.open_incident(key).await.ok()??;
        let was = VerdictCode::ALL
            .iter()
            .copied()
            .find(|v| Some(v.as_str()) == incident.verdict.as_deref())?;
        let now = report.verdict;
        if was == now {
            return None;
        }
        let fixed = now == VerdictCode::ApiKeyAccepted && key_or_region(was);
        if fixed {
            let detail = format!("was {}, now {}", was.as_str(), now.as_str());
            match self.store.incident_fixed(incident.id, &detail).await {
                Ok(true) => {
                    if let Ok(Some(updated)) = self.store.open_incident(key).await {
                        if let (Some(diagnosis), Some(shown)) =
                            (&updated.diagnosis, self.report_of(&updated).await)
                        {
                            let status = IncidentStatus::of(&updated);
                            if let Err(e) = chat.show(diagnosis, &shown, &status).await {
                                tracing::warn!(error = format!("{e:#}"), "could not show the fix");
                            }
                        }
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot record the fix on the incident"),
            }
        }
        Some(Notice::Changed { was, now, fixed })
    }

    /// A `[RESOLVED]` message `by` for `key`: resolves the open incident (once, whichever
    /// replica asks) and does everything a resolution does. `None` when no incident was open:
    /// nothing is done.
    pub async fn resolve(
        &self,
        key: &CheckKey,
        by: &MessageRef,
        chat: &dyn IncidentChannel,
    ) -> Result<Option<(Incident, Resolution)>> {
        let Some(incident) = self
            .store
            .resolve_incident(key, by)
            .await
            .context("resolving the incident")?
        else {
            return Ok(None);
        };
        let status = IncidentStatus::of(&incident);
        let open_for = status.open_for().unwrap_or_default();
        let at = incident.resolved_at.unwrap_or_else(Utc::now);
        self.metrics.time_to_resolution.observe(
            incident.key.environment.as_str(),
            incident.verdict.as_deref().unwrap_or("undiagnosed"),
            open_for.num_milliseconds().max(0) as f64 / 1000.0,
        );

        // The diagnosis, when there is one yet; a check still running shows the resolved line
        // with its verdict when it comes (`shown`).
        if let (Some(diagnosis), Some(report)) =
            (&incident.diagnosis, self.report_of(&incident).await)
        {
            if let Err(e) = chat.show(diagnosis, &report, &status).await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "could not mark the diagnosis resolved"
                );
            }
        }
        // The silences linkbot created for it: expired before the reply, which says so.
        let silences = match &self.silences {
            Some(s) => s.expire_for_incident(incident.id, &incident.key).await,
            None => Default::default(),
        };
        for expired in &silences.expired {
            if let Err(e) = chat.show_silence(expired).await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "could not show a silence expired at resolution"
                );
            }
        }
        let link = chat
            .permalink(incident.diagnosis.as_ref().unwrap_or(&incident.alert))
            .await;
        // PagerDuty and GitHub first, so that the replies say what was done there, and what
        // failed (a page left open must not be silent).
        let mut followups = Vec::new();
        let mut done = Resolution {
            silences_expired: silences.expired.len(),
            silences_failed: silences.failed.len(),
            ..Resolution::default()
        };
        if let (Some(dedup_key), Some(pd)) =
            (&incident.pagerduty_dedup_key, &self.escalators.pagerduty)
        {
            let sent = pd.resolve(dedup_key).await;
            if let Err(e) = &sent {
                tracing::warn!(error = %e, "PagerDuty did not take the resolve");
            }
            done.pagerduty_resolved = Some(sent.is_ok());
            followups.push(match &sent {
                Ok(_) => Followup::PagerDutyResolved {
                    dedup_key: dedup_key.clone(),
                },
                Err(e) => Followup::PagerDutyFailed {
                    dedup_key: dedup_key.clone(),
                    why: e.user_message(),
                },
            });
            self.event(
                &incident,
                "pagerduty_resolve",
                Some(dedup_key),
                sent.is_ok(),
            )
            .await;
        }
        if let (Some((repo, number)), Some(gh)) = (&incident.github_issue, &self.escalators.github)
        {
            match (
                crate::domain::GithubRepo::parse(repo),
                u64::try_from(*number),
            ) {
                (Ok(repo), Ok(number)) => {
                    let body = resolution_comment(at, open_for, link.as_deref());
                    let commented = gh.comment(&repo, number, &body).await;
                    if let Err(e) = &commented {
                        tracing::warn!(error = %e, "GitHub did not take the comment");
                    }
                    done.github_commented = Some(commented.is_ok());
                    let detail = format!("{repo}#{number}");
                    self.event(
                        &incident,
                        "github_comment",
                        Some(&detail),
                        commented.is_ok(),
                    )
                    .await;
                    let mut closed_ok = None;
                    let close = self
                        .targets
                        .iter()
                        .any(|t| t.close_issue_on_resolve && t.github_repo.as_ref() == Some(&repo));
                    if close {
                        let closed = gh.close(&repo, number).await;
                        if let Err(e) = &closed {
                            tracing::warn!(error = %e, "GitHub did not close the issue");
                        }
                        done.github_closed = Some(closed.is_ok());
                        closed_ok = Some(closed.is_ok());
                        self.event(&incident, "github_close", Some(&detail), closed.is_ok())
                            .await;
                    }
                    followups.push(match &commented {
                        Ok(_) => Followup::IssueCommented {
                            issue: detail.clone(),
                            closed: closed_ok,
                        },
                        Err(e) => Followup::IssueFailed {
                            issue: detail.clone(),
                            why: e.user_message(),
                        },
                    });
                }
                _ => tracing::warn!(repo, number, "the incident's issue is not readable"),
            }
        }
        let notice = Notice::Resolved {
            at,
            open_for,
            diagnosis_link: link.clone(),
            expired_silences: silences
                .expired
                .iter()
                .map(|s| s.silence_id.clone())
                .collect(),
            silence_failures: silences.failed.clone(),
            followups,
        };
        for thread in [&incident.alert, by] {
            if let Err(e) = chat.reply(thread, &notice).await {
                tracing::warn!(error = format!("{e:#}"), "could not reply to a resolution");
            }
        }
        if let Err(e) = chat.react_resolved(&incident.alert).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "could not react to the resolved alert"
            );
        }

        Ok(Some((incident, done)))
    }

    async fn event(&self, incident: &Incident, kind: &str, detail: Option<&str>, ok: bool) {
        let detail = match (detail, ok) {
            (Some(d), true) => d.to_string(),
            (Some(d), false) => format!("{d} (failed)"),
            (None, true) => "ok".into(),
            (None, false) => "failed".into(),
        };
        if let Err(e) = self
            .store
            .add_incident_event(incident.id, kind, None, Some(&detail))
            .await
        {
            tracing::warn!(error = %e, kind, "cannot record an incident event");
        }
    }
}

/// The GitHub comment a resolution leaves on the issue linkbot opened (GitHub markdown).
pub fn resolution_comment(
    at: DateTime<Utc>,
    open_for: chrono::Duration,
    thread: Option<&str>,
) -> String {
    let mut body = format!(
        "✅ The alert resolved at {} UTC, after {} min open.",
        at.format("%Y-%m-%d %H:%M"),
        open_for.num_minutes()
    );
    if let Some(link) = thread {
        body.push_str(&format!(" Diagnosis thread: {link}"));
    }
    body
}

/// The timeline of the newest incident of `location`, with durations between its events.
pub async fn timeline(
    store: &dyn Store,
    location: &crate::domain::LocationId,
) -> Result<Option<Timeline>> {
    let Some(incident) = store
        .latest_incident(location)
        .await
        .context("reading the incident")?
    else {
        return Ok(None);
    };
    let events = store
        .incident_events(incident.id)
        .await
        .context("reading the incident's timeline")?;
    let mut previous: Option<DateTime<Utc>> = None;
    let events = events
        .into_iter()
        .map(|event| {
            let since_previous_ms = previous
                .map(|p| (event.at - p).num_milliseconds())
                .unwrap_or(0);
            previous = Some(event.at);
            TimelineEntry {
                since_fired_ms: (event.at - incident.fired_at).num_milliseconds(),
                since_previous_ms,
                event,
            }
        })
        .collect();
    Ok(Some(Timeline { incident, events }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resolution_comment_says_when_and_how_long() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).expect("a time");
        let body = resolution_comment(at, chrono::Duration::minutes(23), Some("https://x/p1"));
        assert_eq!(
            body,
            "✅ The alert resolved at 2023-11-14 22:13 UTC, after 23 min open. Diagnosis thread: https://x/p1"
        );
    }

    #[test]
    fn only_key_and_region_verdicts_are_fixed_by_a_working_key() {
        for v in VerdictCode::ALL {
            let expected = matches!(v, VerdictCode::ApiKeyInvalid | VerdictCode::RegionMismatch);
            assert_eq!(key_or_region(v), expected, "{}", v.as_str());
        }
    }
}
