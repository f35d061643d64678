//! The report's numbers from hand-made rows: each fact counted once, rows outside the period
//! ignored. `sample()` is shared with the renderers' tests.

use super::period::Period;
use super::*;
use crate::domain::{Environment, LocationId};
use crate::store::{
    AuditEntry, AuditKind, CheckId, CheckOutcome, FeedbackVote, Incident, IncidentId, MessageRef,
    PageRecord,
};
use proptest::prelude::*;

pub(super) const L1: &str = "c1hk4ek107l5au5mq8hg";
pub(super) const L2: &str = "c2aaaaaaaaaaaaaaaaaa";
pub(super) const L3: &str = "c3bbbbbbbbbbbbbbbbbb";

pub(super) fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn key(loc: &str, env: Environment) -> CheckKey {
    CheckKey {
        environment: env,
        location: LocationId::parse(loc).unwrap(),
    }
}

fn incident(
    id: i64,
    loc: &str,
    env: Environment,
    fired: &str,
    diagnosed: Option<(&str, &str)>,
    resolved: Option<&str>,
) -> Incident {
    Incident {
        id: IncidentId(id),
        key: key(loc, env),
        open: resolved.is_none(),
        alert: MessageRef {
            channel: "C0ONCALL".into(),
            ts: format!("{id}.0"),
        },
        fired_at: t(fired),
        check_id: None,
        diagnosis: None,
        verdict: diagnosed.map(|(v, _)| v.to_string()),
        diagnosed_at: diagnosed.map(|(_, at)| t(at)),
        repeat_count: 0,
        last_repeat_at: None,
        fixed_at: None,
        resolved_at: resolved.map(t),
        resolve_message: None,
        pagerduty_dedup_key: None,
        github_issue: None,
    }
}

fn check(id: i64, verdict: &str, finished: &str, build: Option<&str>) -> CheckOutcome {
    CheckOutcome {
        check_id: CheckId(id),
        key: key(L1, Environment::Prod),
        finished_at: t(finished),
        verdict: verdict.into(),
        build_url: build.map(String::from),
    }
}

fn escalation(target: &str, at: &str) -> AuditEntry {
    AuditEntry {
        at: t(at),
        kind: AuditKind::Escalation,
        actor: Some("U0ENGINEER".into()),
        channel: Some("C0ONCALL".into()),
        location: LocationId::parse(L1).unwrap(),
        environment: Environment::Prod,
        verdict: Some("api_key_invalid".into()),
        target: Some(target.into()),
        link: None,
        detail: None,
    }
}

fn page(id: i64, paged: Option<&str>) -> PageRecord {
    PageRecord {
        check_id: CheckId(id),
        target: "satellite_link".into(),
        paged_by: "U0ENGINEER".into(),
        claimed_at: t("2026-11-20T00:00:00Z"),
        paged_at: paged.map(t),
        link: Some("pagerduty:x".into()),
    }
}

fn vote(verdict: &str, up: bool, at: &str) -> FeedbackVote {
    FeedbackVote {
        verdict: verdict.into(),
        up,
        at: t(at),
    }
}

pub(super) fn period() -> Period {
    Period::new(t("2026-11-24T09:00:00Z"), t("2026-12-01T09:00:00Z")).unwrap()
}

/// Rows of one week, with a row of each kind just outside it.
pub(super) fn sample_rows() -> ReportRows {
    use Environment::{Prod, Stage};
    ReportRows {
        incidents: vec![
            // Before the period, resolved before it too: counts nowhere.
            incident(
                1,
                L2,
                Prod,
                "2026-11-20T10:00:00Z",
                Some(("config_missing", "2026-11-20T10:02:00Z")),
                Some("2026-11-21T10:00:00Z"),
            ),
            incident(
                2,
                L1,
                Prod,
                "2026-11-25T10:00:00Z",
                Some(("api_key_invalid", "2026-11-25T10:05:00Z")),
                Some("2026-11-25T11:00:00Z"),
            ),
            incident(
                3,
                L1,
                Prod,
                "2026-11-27T08:00:00Z",
                Some(("api_key_invalid", "2026-11-27T08:20:00Z")),
                Some("2026-11-27T10:00:00Z"),
            ),
            incident(
                4,
                L2,
                Prod,
                "2026-11-27T12:00:00Z",
                Some(("region_mismatch", "2026-11-27T12:01:00Z")),
                None,
            ),
            incident(5, L3, Stage, "2026-11-30T23:00:00Z", None, None),
            // At the period's end: excluded.
            incident(6, L3, Stage, "2026-12-01T09:00:00Z", None, None),
        ],
        checks: vec![
            check(1, "api_key_invalid", "2026-11-25T10:05:00Z", None),
            check(2, "api_key_invalid", "2026-11-27T08:20:00Z", None),
            check(3, "region_mismatch", "2026-11-27T12:01:00Z", None),
            check(
                4,
                "job_failed",
                "2026-11-28T12:00:00Z",
                Some("https://jenkins.example/job/x/7/"),
            ),
            check(5, "lookup_failed", "2026-11-29T12:00:00Z", None),
            check(
                6,
                "job_failed",
                "2026-11-23T12:00:00Z",
                Some("https://jenkins.example/job/x/1/"),
            ),
        ],
        escalations: vec![
            escalation("razee", "2026-11-23T09:00:00Z"),
            escalation("razee", "2026-11-25T10:10:00Z"),
            escalation("razee", "2026-11-26T10:10:00Z"),
            escalation("satellite_link", "2026-11-27T08:30:00Z"),
            escalation("satellite_link (page)", "2026-11-27T08:31:00Z"),
        ],
        pages: vec![
            page(2, Some("2026-11-27T08:31:00Z")),
            page(1, Some("2026-11-20T10:05:00Z")),
        ],
        feedback: vec![
            vote("api_key_invalid", true, "2026-11-25T10:30:00Z"),
            vote("api_key_invalid", false, "2026-11-27T09:00:00Z"),
            vote("region_mismatch", true, "2026-11-27T13:00:00Z"),
            vote("region_mismatch", false, "2026-11-22T13:00:00Z"),
        ],
        storm_linked: Vec::new(),
    }
}

/// The report of [`sample_rows`].
pub(super) fn sample() -> PeriodReport {
    compute(period(), &sample_rows())
}

#[test]
fn an_incident_a_storm_answered_with_a_pointer_is_linked_to_the_storm_not_undiagnosed() {
    // Incident 5 fired in the period without a verdict; 4 has one (a verdict wins).
    let rows = ReportRows {
        storm_linked: vec![IncidentId(5), IncidentId(4)],
        ..sample_rows()
    };
    let r = compute(period(), &rows);
    assert_eq!(
        mix(&r),
        [
            ("api_key_invalid", 2),
            ("region_mismatch", 1),
            (STORM_LINKED, 1)
        ]
    );
    let text = render::text(&r);
    assert!(text.contains("linked to a storm"), "{text}");
    assert!(!text.contains(UNDIAGNOSED), "{text}");
}

#[test]
fn every_number_comes_from_the_rows_of_the_period() {
    let r = sample();
    assert_eq!((r.opened, r.resolved), (4, 2));
    assert_eq!(
        mix(&r),
        [
            ("api_key_invalid", 2),
            ("region_mismatch", 1),
            (UNDIAGNOSED, 1)
        ]
    );
    let mins = |m: u64| Some(Duration::from_secs(m * 60));
    assert_eq!(
        r.time_to_diagnosis,
        Percentiles {
            measured: 3,
            p50: mins(5),
            p90: mins(20)
        }
    );
    assert_eq!(
        r.time_to_resolution,
        Percentiles {
            measured: 2,
            p50: mins(60),
            p90: mins(120)
        }
    );
    assert_eq!(r.pages_sent, 1);
    let teams: Vec<(&str, usize, usize)> = r
        .escalations
        .iter()
        .map(|t| (t.team.as_str(), t.escalated, t.paged))
        .collect();
    assert_eq!(teams, [("razee", 2, 0), ("satellite_link", 1, 1)]);
    let top: Vec<(&str, Environment, usize)> = r
        .top_locations
        .iter()
        .map(|l| (l.key.location.as_str(), l.key.environment, l.incidents))
        .collect();
    assert_eq!(
        top,
        [
            (L1, Environment::Prod, 2),
            (L2, Environment::Prod, 1),
            (L3, Environment::Stage, 1)
        ]
    );
    assert_eq!(
        r.job_failures,
        JobFailures {
            failed: 1,
            checks: 5,
            builds: vec!["https://jenkins.example/job/x/7/".into()]
        }
    );
    let precision: Vec<(&str, usize, usize)> = r
        .feedback
        .iter()
        .map(|p| (p.verdict.as_str(), p.up, p.total))
        .collect();
    assert_eq!(
        precision,
        [("region_mismatch", 1, 1), ("api_key_invalid", 1, 2)]
    );
    let days: Vec<usize> = r.per_day.iter().map(|d| d.incidents).collect();
    assert_eq!(days, [0, 1, 0, 2, 0, 0, 1, 0]);
    assert_eq!(r.chart(), "▁▅▁█▁▁▅▁");
}

#[test]
fn at_most_five_locations_most_incidents_first() {
    let mut rows = ReportRows::default();
    let locs = [
        "a0000000000000000000",
        "b0000000000000000000",
        "c0000000000000000000",
        "d0000000000000000000",
        "e0000000000000000000",
        "f0000000000000000000",
        "g0000000000000000000",
    ];
    for (n, loc) in locs.iter().enumerate() {
        for k in 0..=(n % 3) {
            rows.incidents.push(incident(
                (n * 10 + k) as i64,
                loc,
                Environment::Prod,
                "2026-11-26T10:00:00Z",
                None,
                None,
            ));
        }
    }
    let r = compute(period(), &rows);
    let top: Vec<(&str, usize)> = r
        .top_locations
        .iter()
        .map(|l| (l.key.location.as_str(), l.incidents))
        .collect();
    assert_eq!(
        top,
        [
            ("c0000000000000000000", 3),
            ("f0000000000000000000", 3),
            ("b0000000000000000000", 2),
            ("e0000000000000000000", 2),
            ("a0000000000000000000", 1),
        ]
    );
}

#[test]
fn an_empty_store_gives_an_empty_report() {
    let r = compute(period(), &ReportRows::default());
    assert_eq!((r.opened, r.resolved, r.pages_sent), (0, 0, 0));
    assert_eq!(r.time_to_diagnosis.p50, None);
    assert_eq!(r.per_day.len(), 8);
    assert_eq!(r.chart(), "▁▁▁▁▁▁▁▁");
}

proptest! {
    /// Whatever the rows, the report's counts add up: the days sum to the incidents opened,
    /// the verdict mix too, and no location shows more than were opened.
    #[test]
    fn counts_add_up(fired in proptest::collection::vec((0i64..(9 * 86_400), 0usize..3, proptest::option::of(0i64..7200)), 0..60)) {
        let base = t("2026-11-23T09:00:00Z");
        let locs = [L1, L2, L3];
        let rows = ReportRows {
            incidents: fired
                .iter()
                .enumerate()
                .map(|(i, (at, loc, diag))| {
                    let fired_at = base + chrono::Duration::seconds(*at);
                    let mut inc = incident(i as i64, locs[*loc], Environment::Prod, "2026-01-01T00:00:00Z", None, None);
                    inc.fired_at = fired_at;
                    inc.verdict = diag.map(|_| "api_key_invalid".into());
                    inc.diagnosed_at = diag.map(|d| fired_at + chrono::Duration::seconds(d));
                    inc
                })
                .collect(),
            ..ReportRows::default()
        };
        let r = compute(period(), &rows);
        let inside = rows.incidents.iter().filter(|i| period().contains(i.fired_at)).count();
        prop_assert_eq!(r.opened, inside);
        prop_assert_eq!(r.per_day.iter().map(|d| d.incidents).sum::<usize>(), inside);
        prop_assert_eq!(r.verdicts.iter().map(|c| c.count).sum::<usize>(), inside);
        prop_assert!(r.top_locations.len() <= TOP_LOCATIONS);
        prop_assert!(r.top_locations.iter().all(|l| l.incidents <= inside));
        prop_assert!(r.time_to_diagnosis.measured <= inside);
        prop_assert_eq!(r.chart().chars().count(), r.per_day.len());
    }
}

/// The report's verdict mix as (verdict, count), in its order.
fn mix(r: &PeriodReport) -> Vec<(&str, usize)> {
    r.verdicts
        .iter()
        .map(|c| (c.verdict.as_str(), c.count))
        .collect()
}
