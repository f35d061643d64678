//! The pure parts of a storm: its settings, the sample (spread over datacenters), whether the
//! sample agrees on a cause, and the storm message's model ([`StormView`]) with the actions it
//! offers.
//!
//! This module must NOT do I/O or render Slack text: `slack/blocks.rs` renders a [`StormView`].

use crate::diagnosis::verdict::{Report, VerdictCode};
use crate::domain::{Environment, LocationId};
use crate::store::{Storm, StormId, StormLocation, StormMode};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

/// `[storm]` in bot.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StormSettings {
    /// Whether storm mode is on (`enabled`, default true).
    pub enabled: bool,
    /// A storm is more than this many distinct locations firing within `window` (default 20).
    pub threshold: u32,
    /// The window (default 300 s); a storm ends after a window with no new location firing.
    pub window: Duration,
    /// How many locations, spread over datacenters, are checked (default 3).
    pub sample: u32,
    /// The build budget once the rest is checked (default 10 a minute).
    pub max_builds_per_minute: u32,
}

impl Default for StormSettings {
    fn default() -> Self {
        StormSettings {
            enabled: true,
            threshold: 20,
            window: Duration::from_secs(300),
            sample: 3,
            max_builds_per_minute: 10,
        }
    }
}

impl StormSettings {
    /// The time between two budgeted builds.
    pub fn build_interval(&self) -> Duration {
        Duration::from_secs(60) / self.max_builds_per_minute.max(1)
    }

    /// How long the budgeted checker may go without claiming a location (its heartbeat)
    /// before another replica takes it over: three build intervals, at least 5 s.
    pub fn pump_timeout(&self) -> Duration {
        (self.build_interval() * 3).max(Duration::from_secs(5))
    }

    /// How often a replica watching an active storm looks at it: alerts still waiting for
    /// their pointer, a budgeted checker that stopped renewing its heartbeat, the storm's end.
    pub fn watch_every(&self) -> Duration {
        self.pump_timeout() / 2
    }
}

/// A location the sample may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The location.
    pub location: LocationId,
    /// Its datacenter, when known.
    pub datacenter: Option<String>,
    /// Whether a check already runs for it (taking it costs no build).
    pub checked: bool,
    /// When it fired.
    pub fired_at: DateTime<Utc>,
}

/// Up to `n` locations spread over datacenters: one from each datacenter in turn (the most
/// affected first; locations of unknown datacenter form one group, last), preferring within a
/// datacenter a location already being checked, then the earliest firing.
pub fn choose_sample(candidates: &[Candidate], n: usize) -> Vec<LocationId> {
    let mut groups: BTreeMap<Option<&str>, Vec<&Candidate>> = BTreeMap::new();
    for c in candidates {
        groups.entry(c.datacenter.as_deref()).or_default().push(c);
    }
    let mut groups: Vec<(Option<&str>, Vec<&Candidate>)> = groups.into_iter().collect();
    for (_, members) in &mut groups {
        members.sort_by(|a, b| {
            (!a.checked, a.fired_at, a.location.as_str()).cmp(&(
                !b.checked,
                b.fired_at,
                b.location.as_str(),
            ))
        });
        members.dedup_by(|a, b| a.location == b.location);
    }
    groups.sort_by(|(da, a), (db, b)| {
        (da.is_none(), std::cmp::Reverse(a.len()), *da).cmp(&(
            db.is_none(),
            std::cmp::Reverse(b.len()),
            *db,
        ))
    });
    let mut out: Vec<LocationId> = Vec::new();
    let mut round = 0;
    while out.len() < n {
        let mut took = false;
        for (_, members) in &groups {
            if out.len() == n {
                break;
            }
            if let Some(c) = members.get(round) {
                if !out.contains(&c.location) {
                    out.push(c.location.clone());
                }
                took = true;
            }
        }
        if !took {
            break;
        }
        round += 1;
    }
    out
}

/// The reason a verdict was reached, location-neutral, so two locations failing the same way
/// compare equal: the report's summary with the location, tugboat, carrier and build link
/// taken out and every run of digits read as `#`.
pub fn reason_of(report: &Report) -> String {
    let mut s = report.summary.clone();
    let mut replace = |what: Option<String>, with: &str| {
        if let Some(w) = what.filter(|w| !w.is_empty()) {
            s = s.replace(&w, with);
        }
    };
    replace(report.build_url.clone(), "<build>");
    replace(
        report.location.as_ref().map(|l| l.to_string()),
        "<location>",
    );
    replace(report.tugboat.as_ref().map(|t| t.to_string()), "<tugboat>");
    replace(report.carrier.as_ref().map(|c| c.to_string()), "<carrier>");
    let mut out = String::with_capacity(s.len());
    let mut in_digits = false;
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(ch);
            in_digits = false;
        }
    }
    out.chars().take(300).collect()
}

/// The reason a verdict was reached as the report says it (what on-call reads): the report's
/// summary on one line, at most 300 characters. Unlike [`reason_of`], nothing is taken out, so
/// it is never compared, only shown.
pub fn reason_text(report: &Report) -> String {
    let line = report
        .summary
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    line.chars().take(300).collect()
}

/// A cause the whole sample agrees on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The verdict every sampled location reached.
    pub verdict: VerdictCode,
    /// Their common reason (location-neutral, see [`reason_of`]): what they agree on.
    pub reason: String,
    /// What the message shows for it: the first sampled location's reason as its report said
    /// it ([`reason_text`]); the location-neutral form only when that was not recorded.
    pub shown: String,
    /// How many sampled locations agree.
    pub agreeing: usize,
}

/// What the sample says so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agreement {
    /// Not every sampled location has a verdict yet.
    Waiting {
        /// Verdicts so far.
        have: usize,
        /// Sampled locations.
        want: usize,
    },
    /// Every sampled location reached the same verdict (and, where the verdict is a failure
    /// with a reason, the same reason).
    Agreed(Cause),
    /// They differ: the rest is checked within the budget.
    Disagreed,
}

/// Verdicts whose reason must match too for the sample to agree (the same lookup or job
/// failure everywhere, not two different ones).
fn reason_matters(v: VerdictCode) -> bool {
    match v {
        VerdictCode::LookupFailed | VerdictCode::JobFailed | VerdictCode::ArtifactMissing => true,
        VerdictCode::ConfigMissing
        | VerdictCode::ApiKeyInvalid
        | VerdictCode::ApiKeyAccepted
        | VerdictCode::RegionMismatch
        | VerdictCode::IamUnreachable
        | VerdictCode::UnknownLocation => false,
    }
}

/// Whether the sample's verdicts (`None`: not finished) agree on a cause.
pub fn agreement(sample: &[(Option<VerdictCode>, String)]) -> Agreement {
    let have = sample.iter().filter(|(v, _)| v.is_some()).count();
    if sample.is_empty() || have < sample.len() {
        return Agreement::Waiting {
            have,
            want: sample.len(),
        };
    }
    let (Some(first), reason) = &sample[0] else {
        return Agreement::Disagreed;
    };
    let same = sample
        .iter()
        .all(|(v, r)| *v == Some(*first) && (!reason_matters(*first) || r == reason));
    if same {
        Agreement::Agreed(Cause {
            verdict: *first,
            reason: reason.clone(),
            shown: reason.clone(),
            agreeing: sample.len(),
        })
    } else {
        Agreement::Disagreed
    }
}

/// A button of the storm message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StormAction {
    /// Check every location not checked yet, within the build budget.
    CheckAll,
    /// Check no more.
    Stop,
}

impl StormAction {
    /// The part of the `action_id` after `linkbot_storm:`.
    pub fn as_str(&self) -> &'static str {
        match self {
            StormAction::CheckAll => "check_all",
            StormAction::Stop => "stop",
        }
    }

    /// The action named by `s` (see [`StormAction::as_str`]).
    pub fn parse(s: &str) -> Option<StormAction> {
        [StormAction::CheckAll, StormAction::Stop]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// One sampled location, as the storm message lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleLine {
    /// The location.
    pub location: LocationId,
    /// Its datacenter, when known.
    pub datacenter: Option<String>,
    /// Its verdict, once reached.
    pub verdict: Option<VerdictCode>,
    /// The verdict's reason as its report said it (what is shown; see [`reason_text`]), or
    /// its location-neutral form when that was not recorded.
    pub reason: Option<String>,
}

/// Everything the storm message shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StormView {
    /// The storm.
    pub id: StormId,
    /// Its environment.
    pub environment: Environment,
    /// Whether it is still going on.
    pub active: bool,
    /// What it is doing about its locations.
    pub mode: StormMode,
    /// How many distinct locations fired in it.
    pub locations: usize,
    /// Located locations per datacenter, the most affected first.
    pub datacenters: Vec<(String, usize)>,
    /// Located locations per region, the most affected first.
    pub regions: Vec<(String, usize)>,
    /// Locations whose datacenter is not known.
    pub unlocated: usize,
    /// The first firing counted in it.
    pub first_firing: DateTime<Utc>,
    /// The last new location firing in it.
    pub last_firing: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// What the IAM health probe found: `Ok` reachable, `Err` why not; `None` not yet.
    pub iam: Option<Result<(), String>>,
    /// The sample, in the order it was chosen.
    pub sample: Vec<SampleLine>,
    /// What the sample says.
    pub agreement: Agreement,
    /// Verdicts of every location checked, the most frequent first.
    pub verdicts: Vec<(VerdictCode, usize)>,
    /// Locations a check was started for.
    pub checked: usize,
    /// Locations not checked (only answered with a link).
    pub unchecked: usize,
}

/// The stored form of the IAM probe's finding.
pub fn iam_stored(health: &Result<(), String>) -> String {
    match health {
        Ok(()) => "ok".to_string(),
        Err(why) => format!("down: {why}"),
    }
}

fn iam_read(stored: &str) -> Result<(), String> {
    match stored.strip_prefix("down: ") {
        Some(why) => Err(why.to_string()),
        None => Ok(()),
    }
}

fn counted(counts: BTreeMap<String, usize>) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = counts.into_iter().collect();
    v.sort_by(|(a, x), (b, y)| y.cmp(x).then_with(|| a.cmp(b)));
    v
}

impl StormView {
    /// The view of `storm` with its `locations` (as stored).
    pub fn of(storm: &Storm, locations: &[StormLocation]) -> StormView {
        let mut dcs = BTreeMap::new();
        let mut regions = BTreeMap::new();
        let mut verdicts: BTreeMap<&str, usize> = BTreeMap::new();
        let mut unlocated = 0;
        let mut checked = 0;
        for l in locations {
            match &l.datacenter {
                Some(dc) => *dcs.entry(dc.clone()).or_insert(0) += 1,
                None => unlocated += 1,
            }
            if let Some(r) = &l.region {
                *regions.entry(r.clone()).or_insert(0) += 1;
            }
            if let Some(v) = &l.verdict {
                *verdicts.entry(v.as_str()).or_insert(0) += 1;
            }
            if l.checked {
                checked += 1;
            }
        }
        let mut verdicts: Vec<(VerdictCode, usize)> = verdicts
            .into_iter()
            .filter_map(|(v, n)| VerdictCode::parse(v).map(|v| (v, n)))
            .collect();
        verdicts.sort_by(|(a, x), (b, y)| y.cmp(x).then_with(|| a.as_str().cmp(b.as_str())));
        let sample: Vec<SampleLine> = locations
            .iter()
            .filter(|l| l.sample)
            .map(|l| SampleLine {
                location: l.key.location.clone(),
                datacenter: l.datacenter.clone(),
                verdict: l.verdict.as_deref().and_then(VerdictCode::parse),
                reason: l.reason_text.clone().or_else(|| l.reason.clone()),
            })
            .collect();
        // Compared by the location-neutral reason; shown with a real one.
        let mut agreement = agreement(
            &locations
                .iter()
                .filter(|l| l.sample)
                .map(|l| {
                    (
                        l.verdict.as_deref().and_then(VerdictCode::parse),
                        l.reason.clone().unwrap_or_default(),
                    )
                })
                .collect::<Vec<_>>(),
        );
        if let Agreement::Agreed(cause) = &mut agreement {
            if let Some(shown) = sample.first().and_then(|s| s.reason.clone()) {
                cause.shown = shown;
            }
        }
        StormView {
            id: storm.id,
            environment: storm.environment,
            active: storm.active,
            mode: storm.mode,
            locations: locations.len(),
            datacenters: counted(dcs),
            regions: counted(regions),
            unlocated,
            first_firing: storm.first_firing_at,
            last_firing: storm.last_firing_at,
            ended_at: storm.ended_at,
            iam: storm.iam_health.as_deref().map(iam_read),
            sample,
            agreement,
            verdicts,
            checked,
            unchecked: locations.len() - checked,
        }
    }

    /// The buttons the message offers: none once the storm ended; Check all while some
    /// location is unchecked and the storm is not checking the rest already; Stop while it
    /// may still build.
    pub fn offered(&self) -> Vec<StormAction> {
        if !self.active {
            return Vec::new();
        }
        let mut out = Vec::new();
        if self.unchecked > 0 && self.mode != StormMode::Budget {
            out.push(StormAction::CheckAll);
        }
        if self.mode != StormMode::Stopped {
            out.push(StormAction::Stop);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn loc(n: u32) -> LocationId {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
        let mut s = String::from("c1hk4ek107l5au");
        let mut x = n;
        for _ in 0..6 {
            s.push(ALPHABET[(x % 32) as usize] as char);
            x /= 32;
        }
        LocationId::parse(&s).expect("valid id")
    }

    fn cand(n: u32, dc: Option<&str>, checked: bool) -> Candidate {
        Candidate {
            location: loc(n),
            datacenter: dc.map(str::to_string),
            checked,
            fired_at: DateTime::from_timestamp(1_700_000_000 + i64::from(n), 0).expect("time"),
        }
    }

    #[test]
    fn the_sample_spreads_over_datacenters_and_prefers_running_checks() {
        // (candidates, n, expected)
        let table: Vec<(Vec<Candidate>, usize, Vec<u32>)> = vec![
            (vec![], 3, vec![]),
            (
                vec![
                    cand(1, Some("wdc04"), false),
                    cand(2, Some("wdc04"), false),
                    cand(3, Some("dal10"), false),
                ],
                2,
                vec![1, 3],
            ),
            // The most affected datacenter first; within it a running check before an earlier firing.
            (
                vec![
                    cand(1, Some("dal10"), false),
                    cand(2, Some("wdc04"), false),
                    cand(3, Some("wdc04"), true),
                    cand(4, None, true),
                ],
                3,
                vec![3, 1, 4],
            ),
            // Fewer datacenters than the sample: a second round.
            (
                vec![
                    cand(1, Some("wdc04"), false),
                    cand(2, Some("wdc04"), false),
                    cand(3, Some("wdc04"), false),
                ],
                2,
                vec![1, 2],
            ),
            (vec![cand(1, None, false)], 3, vec![1]),
        ];
        for (candidates, n, want) in table {
            let want: Vec<LocationId> = want.into_iter().map(loc).collect();
            assert_eq!(choose_sample(&candidates, n), want, "{candidates:?}");
        }
    }

    proptest! {
        #[test]
        fn the_sample_is_distinct_bounded_and_covers_as_many_datacenters_as_it_can(
            spec in proptest::collection::vec((0u32..40, proptest::option::of(0u8..6), any::<bool>()), 0..60),
            n in 0usize..8,
        ) {
            let candidates: Vec<Candidate> = spec
                .iter()
                .map(|(i, dc, c)| cand(*i, dc.map(|d| format!("dc{d}")).as_deref(), *c))
                .collect();
            let sample = choose_sample(&candidates, n);
            let distinct: std::collections::BTreeSet<_> = candidates.iter().map(|c| c.location.clone()).collect();
            prop_assert_eq!(sample.len(), n.min(distinct.len()));
            let unique: std::collections::BTreeSet<_> = sample.iter().cloned().collect();
            prop_assert_eq!(unique.len(), sample.len());
            for s in &sample {
                prop_assert!(distinct.contains(s));
            }
            // Every group (datacenter, or unknown) a candidate's first occurrence is in:
            let groups: std::collections::BTreeSet<_> = candidates.iter().map(|c| c.datacenter.clone()).collect();
            let covered: std::collections::BTreeSet<_> = sample
                .iter()
                .filter_map(|s| candidates.iter().find(|c| &c.location == s).map(|c| c.datacenter.clone()))
                .collect();
            // With unique ids per group, the sample covers min(n, groups) groups.
            let ids_unique_per_group = candidates.iter().all(|c| candidates.iter().filter(|d| d.location == c.location).all(|d| d.datacenter == c.datacenter));
            if ids_unique_per_group {
                prop_assert_eq!(covered.len(), n.min(groups.len()));
            }
        }

        #[test]
        fn agreement_is_agreed_only_when_every_verdict_is_in_and_equal(
            codes in proptest::collection::vec(proptest::option::of(0usize..VerdictCode::ALL.len()), 0..6),
        ) {
            let sample: Vec<(Option<VerdictCode>, String)> = codes
                .iter()
                .map(|c| (c.map(|i| VerdictCode::ALL[i]), "same reason".to_string()))
                .collect();
            let all_in = !sample.is_empty() && sample.iter().all(|(v, _)| v.is_some());
            let all_same = sample.windows(2).all(|w| w[0].0 == w[1].0);
            match agreement(&sample) {
                Agreement::Waiting { have, want } => {
                    prop_assert!(!all_in);
                    prop_assert_eq!(want, sample.len());
                    prop_assert!(have < want || want == 0);
                }
                Agreement::Agreed(cause) => {
                    prop_assert!(all_in && all_same);
                    prop_assert_eq!(cause.agreeing, sample.len());
                }
                Agreement::Disagreed => prop_assert!(all_in && !all_same),
            }
        }
    }

    #[test]
    fn failures_agree_only_on_the_same_reason() {
        let table = [
            (
                vec![
                    (
                        Some(VerdictCode::JobFailed),
                        "Jenkins build # failed".to_string(),
                    ),
                    (
                        Some(VerdictCode::JobFailed),
                        "Jenkins build # failed".to_string(),
                    ),
                ],
                true,
            ),
            (
                vec![
                    (
                        Some(VerdictCode::JobFailed),
                        "Jenkins build # failed".to_string(),
                    ),
                    (
                        Some(VerdictCode::JobFailed),
                        "the queue item was cancelled".to_string(),
                    ),
                ],
                false,
            ),
            (
                vec![
                    (Some(VerdictCode::ApiKeyAccepted), "a".to_string()),
                    (Some(VerdictCode::ApiKeyAccepted), "b".to_string()),
                ],
                true,
            ),
            (
                vec![
                    (Some(VerdictCode::IamUnreachable), "a".to_string()),
                    (Some(VerdictCode::ApiKeyAccepted), "a".to_string()),
                ],
                false,
            ),
        ];
        for (sample, agreed) in table {
            assert_eq!(
                matches!(agreement(&sample), Agreement::Agreed(_)),
                agreed,
                "{sample:?}"
            );
        }
    }

    #[test]
    fn the_reason_is_location_neutral() {
        let report = Report {
            verdict: VerdictCode::JobFailed,
            confirmed: false,
            summary: "Build 1234 of c1hk4ek107l5au5mq8hg failed".into(),
            location: Some(LocationId::parse("c1hk4ek107l5au5mq8hg").expect("id")),
            environment: None,
            tugboat: None,
            carrier: None,
            region_expected: None,
            region_found: None,
            build_url: None,
            console_tail: None,
            key_fingerprint: None,
            steps: Vec::new(),
            next_actions: Vec::new(),
            checked_at: Utc::now(),
        };
        assert_eq!(reason_of(&report), "Build # of <location> failed");
    }

    #[test]
    fn the_sample_is_compared_by_the_neutral_reason_and_shows_the_real_one() {
        let storm = Storm {
            id: StormId(1),
            environment: Environment::parse("stage").expect("env"),
            active: true,
            mode: StormMode::Sample,
            epoch: 0,
            declared_at: Utc::now(),
            first_firing_at: Utc::now(),
            last_firing_at: Utc::now(),
            message: None,
            iam_health: None,
            ended_at: None,
            pumped_by: None,
            pumped_at: None,
        };
        let at = |n: u32, text: Option<&str>| StormLocation {
            key: crate::domain::CheckKey {
                location: loc(n),
                environment: storm.environment,
            },
            fired_at: Utc::now(),
            alert: crate::store::MessageRef {
                channel: "C1".into(),
                ts: format!("{n}.1"),
            },
            datacenter: Some("wdc06".into()),
            region: None,
            sample: true,
            checked: true,
            verdict: Some("lookup_failed".into()),
            reason: Some("the directory answered HTTP # (XO#)".into()),
            reason_text: text.map(str::to_string),
        };
        let view = StormView::of(
            &storm,
            &[
                at(1, Some("the directory answered HTTP 502 (XO17)")),
                at(2, Some("the directory answered HTTP 502 (XO18)")),
            ],
        );
        let Agreement::Agreed(cause) = &view.agreement else {
            panic!("the same neutral reason agrees: {:?}", view.agreement);
        };
        assert_eq!(cause.reason, "the directory answered HTTP # (XO#)");
        assert_eq!(cause.shown, "the directory answered HTTP 502 (XO17)");
        let shown: Vec<_> = view.sample.iter().map(|s| s.reason.clone()).collect();
        assert_eq!(
            shown,
            vec![
                Some("the directory answered HTTP 502 (XO17)".to_string()),
                Some("the directory answered HTTP 502 (XO18)".to_string())
            ]
        );
        // A verdict recorded before the text was stored still shows its neutral form.
        let old = StormView::of(&storm, &[at(1, None)]);
        assert_eq!(
            old.sample[0].reason.as_deref(),
            Some("the directory answered HTTP # (XO#)")
        );
    }

    #[test]
    fn the_reason_text_is_the_summary_on_one_line() {
        let report = Report {
            verdict: VerdictCode::IamUnreachable,
            confirmed: false,
            summary: "IAM answered HTTP 503\n (BXNIM0415E)".into(),
            location: Some(LocationId::parse("c1hk4ek107l5au5mq8hg").expect("id")),
            environment: None,
            tugboat: None,
            carrier: None,
            region_expected: None,
            region_found: None,
            build_url: None,
            console_tail: None,
            key_fingerprint: None,
            steps: Vec::new(),
            next_actions: Vec::new(),
            checked_at: Utc::now(),
        };
        assert_eq!(reason_text(&report), "IAM answered HTTP 503 (BXNIM0415E)");
        // What the sample is compared by stays location- and digit-neutral.
        assert!(!reason_of(&report).chars().any(|c| c.is_ascii_digit()));
    }

    #[test]
    fn actions_follow_the_mode() {
        let storm = Storm {
            id: StormId(1),
            environment: Environment::parse("prod").expect("env"),
            active: true,
            mode: StormMode::Sample,
            epoch: 0,
            declared_at: Utc::now(),
            first_firing_at: Utc::now(),
            last_firing_at: Utc::now(),
            message: None,
            iam_health: Some(iam_stored(&Err("IAM answered HTTP 503".into()))),
            ended_at: None,
            pumped_by: None,
            pumped_at: None,
        };
        let location = StormLocation {
            key: crate::domain::CheckKey {
                location: loc(1),
                environment: storm.environment,
            },
            fired_at: Utc::now(),
            alert: crate::store::MessageRef {
                channel: "C1".into(),
                ts: "1.1".into(),
            },
            datacenter: Some("wdc04".into()),
            region: Some("us-east".into()),
            sample: false,
            checked: false,
            verdict: None,
            reason: None,
            reason_text: None,
        };
        let view = StormView::of(&storm, std::slice::from_ref(&location));
        assert_eq!(view.iam, Some(Err("IAM answered HTTP 503".into())));
        assert_eq!(
            view.offered(),
            vec![StormAction::CheckAll, StormAction::Stop]
        );
        let budget = Storm {
            mode: StormMode::Budget,
            ..storm.clone()
        };
        assert_eq!(
            StormView::of(&budget, std::slice::from_ref(&location)).offered(),
            vec![StormAction::Stop]
        );
        let stopped = Storm {
            mode: StormMode::Stopped,
            ..storm.clone()
        };
        assert_eq!(
            StormView::of(&stopped, std::slice::from_ref(&location)).offered(),
            vec![StormAction::CheckAll]
        );
        let ended = Storm {
            active: false,
            ..storm
        };
        assert!(StormView::of(&ended, &[location]).offered().is_empty());
        for a in [StormAction::CheckAll, StormAction::Stop] {
            assert_eq!(StormAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(StormAction::parse("check"), None);
    }
}
