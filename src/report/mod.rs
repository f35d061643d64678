//! The report of a period (`linkbot report`, `/linkbot report [7d]`, the weekly post): how often
//! the alert fired, where, what it usually was, how fast linkbot diagnosed it, how it was
//! escalated, how healthy the Jenkins job was, and how often people said the diagnosis was right.
//!
//! Decide, then act: [`gather`] reads the period's rows from the store ([`Store::report_rows`],
//! one query per fact, one read transaction) and [`compute`] — pure — turns them into one
//! [`PeriodReport`] value; `render.rs` prints it as text, JSON or markdown and
//! `slack/report_blocks.rs` as Block Kit. `weekly.rs` posts it once a week from one replica.
//!
//! What this module must NOT do: know Slack (the weekly post goes through its [`weekly::ReportPoster`]
//! trait), read the configuration or the environment, or read a clock: "now" is always given.

pub mod period;
pub mod render;
pub mod stats;
pub mod weekly;

use crate::diagnosis::verdict::VerdictCode;
use crate::domain::CheckKey;
use crate::escalation::workflow::PAGE_TARGET_SUFFIX;
use crate::store::{ReportRows, Store, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use period::Period;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How many locations the report lists (those with the most incidents).
pub const TOP_LOCATIONS: usize = 5;

/// What an incident without a verdict (its check failed or still runs) counts as in the mix.
pub const UNDIAGNOSED: &str = "undiagnosed";

/// What an incident counts as in the mix when its alert was answered with a pointer to an
/// alert storm and never checked: not diagnosed on purpose (the storm's sample was), so not
/// [`UNDIAGNOSED`].
pub const STORM_LINKED: &str = "linked_to_storm";

/// The report of one period: every number it shows, computed from the store's rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodReport {
    /// Where the period starts (included).
    pub since: DateTime<Utc>,
    /// Where it ends (excluded).
    pub until: DateTime<Utc>,
    /// Incidents that fired in the period.
    pub opened: usize,
    /// Incidents that resolved in the period (whenever they fired).
    pub resolved: usize,
    /// The first verdict of the incidents opened, most frequent first.
    pub verdicts: Vec<Count>,
    /// Fired → first verdict, over the incidents opened that were diagnosed.
    pub time_to_diagnosis: Percentiles,
    /// Fired → resolved, over the incidents resolved in the period.
    pub time_to_resolution: Percentiles,
    /// Pages PagerDuty accepted in the period.
    pub pages_sent: usize,
    /// Escalate and Page clicks of the period by team (`[escalation.<team>]`), most first.
    pub escalations: Vec<TeamEscalations>,
    /// The locations with the most incidents opened (at most [`TOP_LOCATIONS`]).
    pub top_locations: Vec<LocationCount>,
    /// Checks of the period that ended `job_failed`: the health of the Jenkins job itself.
    pub job_failures: JobFailures,
    /// 👍 / all feedback per verdict shown, in the order of the verdict codes.
    pub feedback: Vec<Precision>,
    /// Incidents opened per UTC day of the period, first day first.
    pub per_day: Vec<DayCount>,
}

/// How many times something (a verdict code) occurred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Count {
    /// The verdict code (or [`UNDIAGNOSED`], or [`STORM_LINKED`]).
    pub verdict: String,
    /// How many.
    pub count: usize,
}

/// p50 and p90 of a set of durations (nearest rank, [`stats::percentile`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    /// How many durations were measured.
    pub measured: usize,
    /// The median, in milliseconds; `None` when nothing was measured.
    #[serde(serialize_with = "opt_ms")]
    pub p50: Option<Duration>,
    /// The 90th percentile, in milliseconds; `None` when nothing was measured.
    #[serde(serialize_with = "opt_ms")]
    pub p90: Option<Duration>,
}

fn opt_ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        None => s.serialize_none(),
    }
}

impl Percentiles {
    fn of(values: &[Duration]) -> Percentiles {
        Percentiles {
            measured: values.len(),
            p50: stats::percentile(values, 50),
            p90: stats::percentile(values, 90),
        }
    }
}

/// One team's escalations in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeamEscalations {
    /// The team (`[escalation.<team>]` key).
    pub team: String,
    /// Escalate clicks (posted to the team's channel and/or a GitHub issue).
    pub escalated: usize,
    /// Page clicks.
    pub paged: usize,
}

/// A location and its incidents in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocationCount {
    /// The location and environment.
    #[serde(flatten)]
    pub key: CheckKey,
    /// Incidents opened.
    pub incidents: usize,
}

/// The Jenkins job's failures among the checks of the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobFailures {
    /// Checks that ended `job_failed`.
    pub failed: usize,
    /// Checks that finished in the period.
    pub checks: usize,
    /// The builds of the failed checks (when one ran), newest last, at most 5.
    pub builds: Vec<String>,
}

/// How often people said a verdict was right.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Precision {
    /// The verdict the diagnosis showed.
    pub verdict: String,
    /// 👍 votes.
    pub up: usize,
    /// All votes (👍 and 👎).
    pub total: usize,
    /// up / total.
    pub precision: f64,
}

/// Incidents opened on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayCount {
    /// The day.
    pub date: NaiveDate,
    /// Incidents opened that day.
    pub incidents: usize,
}

impl PeriodReport {
    /// The per-day counts as one line of bars (`▁▂▃▄▅▆▇█`), one per day.
    pub fn chart(&self) -> String {
        let counts: Vec<usize> = self.per_day.iter().map(|d| d.incidents).collect();
        stats::bar_chart(&counts)
    }
}

/// Reads the rows of `period` from the store and computes its report.
pub async fn gather(store: &dyn Store, period: Period) -> Result<PeriodReport, StoreError> {
    let rows = store.report_rows(period.since(), period.until()).await?;
    Ok(compute(period, &rows))
}

/// Where a verdict code sorts: the order of SPEC §4, then unknown codes by name.
fn verdict_rank(code: &str) -> (usize, String) {
    let known = VerdictCode::parse(code)
        .and_then(|v| VerdictCode::ALL.iter().position(|c| *c == v))
        .unwrap_or(VerdictCode::ALL.len());
    (known, code.to_string())
}

/// The report of `period` from its rows. Rows outside the period (a caller's mistake) are
/// ignored, so every number is about the period alone.
pub fn compute(period: Period, rows: &ReportRows) -> PeriodReport {
    let opened: Vec<_> = rows
        .incidents
        .iter()
        .filter(|i| period.contains(i.fired_at))
        .collect();
    let resolved: Vec<_> = rows
        .incidents
        .iter()
        .filter(|i| i.resolved_at.is_some_and(|t| period.contains(t)))
        .collect();
    let elapsed = |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).to_std().unwrap_or_default();

    let storm_linked: std::collections::HashSet<_> = rows.storm_linked.iter().collect();
    let mut mix: BTreeMap<String, usize> = BTreeMap::new();
    for i in &opened {
        let shown = match &i.verdict {
            Some(v) => v.clone(),
            None if storm_linked.contains(&i.id) => STORM_LINKED.into(),
            None => UNDIAGNOSED.into(),
        };
        *mix.entry(shown).or_default() += 1;
    }
    let mut verdicts: Vec<Count> = mix
        .into_iter()
        .map(|(verdict, count)| Count { verdict, count })
        .collect();
    verdicts.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| verdict_rank(&a.verdict).cmp(&verdict_rank(&b.verdict)))
    });

    let to_diagnosis: Vec<Duration> = opened
        .iter()
        .filter_map(|i| i.diagnosed_at.map(|d| elapsed(i.fired_at, d)))
        .collect();
    let to_resolution: Vec<Duration> = resolved
        .iter()
        .filter_map(|i| i.resolved_at.map(|r| elapsed(i.fired_at, r)))
        .collect();

    let mut teams: BTreeMap<String, TeamEscalations> = BTreeMap::new();
    for e in rows.escalations.iter().filter(|e| period.contains(e.at)) {
        let target = e.target.as_deref().unwrap_or("-");
        let (team, page) = match target.strip_suffix(PAGE_TARGET_SUFFIX) {
            Some(team) => (team, true),
            None => (target, false),
        };
        let t = teams
            .entry(team.to_string())
            .or_insert_with(|| TeamEscalations {
                team: team.to_string(),
                escalated: 0,
                paged: 0,
            });
        if page {
            t.paged += 1;
        } else {
            t.escalated += 1;
        }
    }
    let mut escalations: Vec<TeamEscalations> = teams.into_values().collect();
    escalations.sort_by(|a, b| {
        (b.escalated + b.paged)
            .cmp(&(a.escalated + a.paged))
            .then_with(|| a.team.cmp(&b.team))
    });

    // Keyed by (location id, environment): ties then sort by location id, so the list is stable.
    let mut by_location: BTreeMap<(&str, crate::domain::Environment), LocationCount> =
        BTreeMap::new();
    for i in &opened {
        by_location
            .entry((i.key.location.as_str(), i.key.environment))
            .or_insert_with(|| LocationCount {
                key: i.key.clone(),
                incidents: 0,
            })
            .incidents += 1;
    }
    let mut top_locations: Vec<LocationCount> = by_location.into_values().collect();
    // Most incidents first (a stable sort keeps the ties in key order).
    top_locations.sort_by_key(|l| std::cmp::Reverse(l.incidents));
    top_locations.truncate(TOP_LOCATIONS);

    let checks: Vec<_> = rows
        .checks
        .iter()
        .filter(|c| period.contains(c.finished_at))
        .collect();
    let failed: Vec<_> = checks
        .iter()
        .filter(|c| c.verdict == VerdictCode::JobFailed.as_str())
        .collect();
    let builds: Vec<String> = failed.iter().filter_map(|c| c.build_url.clone()).collect();
    let job_failures = JobFailures {
        failed: failed.len(),
        checks: checks.len(),
        builds: builds[builds.len().saturating_sub(5)..].to_vec(),
    };

    let mut votes: BTreeMap<(usize, String), (usize, usize)> = BTreeMap::new();
    for v in rows.feedback.iter().filter(|v| period.contains(v.at)) {
        let entry = votes.entry(verdict_rank(&v.verdict)).or_default();
        entry.0 += usize::from(v.up);
        entry.1 += 1;
    }
    let feedback = votes
        .into_iter()
        .map(|((_, verdict), (up, total))| Precision {
            verdict,
            up,
            total,
            precision: up as f64 / total as f64,
        })
        .collect();

    let per_day = period
        .days()
        .into_iter()
        .map(|date| DayCount {
            date,
            incidents: opened
                .iter()
                .filter(|i| i.fired_at.date_naive() == date)
                .count(),
        })
        .collect();

    PeriodReport {
        since: period.since(),
        until: period.until(),
        opened: opened.len(),
        resolved: resolved.len(),
        verdicts,
        time_to_diagnosis: Percentiles::of(&to_diagnosis),
        time_to_resolution: Percentiles::of(&to_resolution),
        pages_sent: rows
            .pages
            .iter()
            .filter(|p| p.paged_at.is_some_and(|t| period.contains(t)))
            .count(),
        escalations,
        top_locations,
        job_failures,
        feedback,
        per_day,
    }
}

#[cfg(test)]
mod tests;
