//! The report (`linkbot report`, `/linkbot report [7d]`, the weekly post) against a seeded
//! store, on both backends (SQLite on a temporary file, PostgreSQL from
//! `LINKBOT_TEST_DATABASE_URL`), and the real bot against the simulated Slack.
//!
//! - Its numbers match a seeded store exactly, computed from the store, in text and in JSON,
//!   and from the real binary (`--format text|json|markdown`); a bad `--since` is refused with
//!   the fix.
//! - `/linkbot report 7d` is posted visibly in the channel and passes the strict Block Kit
//!   validator; a bad period is answered to its user alone.
//! - The weekly post: two replicas on one store, their clocks at the slot, post it once; a
//!   restart in the posting minute does not post again; a claim whose holder died is taken over
//!   after its bound, never before. Time is set by hand (the store's `Clock`), never waited for.

use crate::store::{on_postgres, on_sqlite, TestDb};
use chrono::{DateTime, Duration as Span, Utc};
use linkbot::app::{self, Options, RunningBot};
use linkbot::config::ReportConfig;
use linkbot::domain::{CheckKey, Environment, LocationId, SlackChannelId};
use linkbot::report::period::Period;
use linkbot::report::weekly::{ReportPoster, SlotOutcome, Weekly, WeeklyAt, STALE_CLAIM};
use linkbot::report::{gather, render, PeriodReport};
use linkbot::sim::slack::{self as fake, SimMessage};
use linkbot::sim::world::{World, ENGINEER, ONCALL_CHANNEL};
use linkbot::store::{
    AuditEntry, AuditKind, Claim, Clock, MessageRef, PageClaim, ReportSlotClaim, RequestSource,
    Requester, Store,
};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The bound on any one wait.
const WAIT: Duration = Duration::from_secs(20);

const L1: &str = "c1hk4ek107l5au5mq8hg";
const L2: &str = "c2aaaaaaaaaaaaaaaaaa";
const L3: &str = "c3bbbbbbbbbbbbbbbbbb";
const FAILED_BUILD: &str = "https://jenkins.example/job/x/7/";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("a test time")
        .with_timezone(&Utc)
}

fn key(loc: &str, env: Environment) -> CheckKey {
    CheckKey {
        environment: env,
        location: LocationId::parse(loc).expect("a test location"),
    }
}

fn mins(m: i64) -> Span {
    Span::minutes(m)
}

// ---- seeding -------------------------------------------------------------------------------

/// Seeds one week of known facts whose period starts at `base`, through the store's own
/// methods with the clock set at each fact's time; the feedback (written by another workflow)
/// is inserted afterwards by [`seed_feedback`]. A fact of each kind lies before `base`.
async fn seed(db: &TestDb, store: &dyn Store, base: DateTime<Utc>) {
    let day = Span::days(1);
    let l1 = key(L1, Environment::Prod);
    let l2 = key(L2, Environment::Prod);
    let l3 = key(L3, Environment::Stage);
    let mut n = 0;
    // (key, fired, verdict and minutes to it, minutes to resolution)
    let incidents = [
        (
            &l2,
            base - day * 4,
            Some(("config_missing", 2)),
            Some(24 * 60),
        ),
        (&l1, base + day, Some(("api_key_invalid", 5)), Some(60)),
        (
            &l1,
            base + day * 3,
            Some(("api_key_invalid", 20)),
            Some(120),
        ),
        (
            &l2,
            base + day * 3 + Span::hours(4),
            Some(("region_mismatch", 1)),
            None,
        ),
        (&l3, base + day * 4 + Span::hours(14), None, None),
    ];
    for (k, fired, verdict, resolve) in incidents {
        n += 1;
        db.set(fired);
        let alert = MessageRef {
            channel: ONCALL_CHANNEL.into(),
            ts: format!("{n}.000100"),
        };
        let incident = match store.fire_incident(k, &alert, fired).await.expect("fire") {
            linkbot::store::Fired::Opened(i) => i,
            other => panic!("seeding opened no incident: {other:?}"),
        };
        if let Some((code, after)) = verdict {
            db.set(fired + mins(after));
            store
                .incident_verdict(incident.id, code)
                .await
                .expect("verdict");
        }
        if let Some(after) = resolve {
            db.set(fired + mins(after));
            let by = MessageRef {
                channel: ONCALL_CHANNEL.into(),
                ts: format!("{n}.000200"),
            };
            assert!(store
                .resolve_incident(k, &by)
                .await
                .expect("resolve")
                .is_some());
        }
    }

    // Checks: (key, started, finished, verdict, build)
    let checks = [
        (
            &l1,
            base + day,
            base + day + mins(5),
            "api_key_invalid",
            None,
        ),
        (
            &l2,
            base + day * 2 - mins(4),
            base + day * 2,
            "job_failed",
            Some(FAILED_BUILD),
        ),
        (
            &l3,
            base + day * 2,
            base + day * 2 + Span::hours(1),
            "lookup_failed",
            None,
        ),
        (
            &l3,
            base - day,
            base - day + mins(3),
            "job_failed",
            Some("https://jenkins.example/job/x/1/"),
        ),
    ];
    let requester = Requester {
        user: Some(ENGINEER.into()),
        channel: Some(ONCALL_CHANNEL.into()),
        source: RequestSource::Mention,
    };
    let mut ids = Vec::new();
    for (k, started, finished, verdict, build) in checks {
        db.set(started);
        let Claim::Started(id) = store
            .claim_check(
                k,
                "seed",
                Duration::from_secs(60),
                Duration::ZERO,
                &requester,
            )
            .await
            .expect("claim")
        else {
            panic!("seeding could not start a check");
        };
        db.set(finished);
        store
            .finish_check(
                id,
                "seed",
                verdict,
                &serde_json::json!({"verdict": verdict}),
                build,
            )
            .await
            .expect("finish");
        ids.push(id);
    }

    // Escalations: Escalate and Page clicks (audit entries), one before the period.
    for (target, at) in [
        ("razee", base + day + mins(10)),
        ("razee", base + day * 2),
        ("satellite_link", base + day * 3 + mins(30)),
        ("satellite_link (page)", base + day * 3 + mins(31)),
        ("razee", base - day * 2),
    ] {
        store
            .append_audit(&AuditEntry {
                at,
                kind: AuditKind::Escalation,
                actor: Some(ENGINEER.into()),
                channel: Some(ONCALL_CHANNEL.into()),
                location: l1.location.clone(),
                environment: l1.environment,
                verdict: Some("api_key_invalid".into()),
                target: Some(target.into()),
                link: None,
                detail: None,
            })
            .await
            .expect("audit");
    }

    // Pages PagerDuty accepted: one in the period, one before it.
    for (id, at) in [(ids[0], base + day * 3 + mins(31)), (ids[3], base - day)] {
        db.set(at);
        let PageClaim::Claimed { claim } = store
            .claim_page(id, &l1, "satellite_link", ENGINEER, Duration::from_secs(60))
            .await
            .expect("claim page")
        else {
            panic!("seeding could not claim a page");
        };
        assert!(store
            .page_sent(id, &claim, "pagerduty:x")
            .await
            .expect("sent"));
    }
}

/// The feedback rows (the 👍/👎 workflow writes them): inserted with SQL while no store of this
/// process has the database open (closing a second SQLite handle would drop the store's locks).
async fn seed_feedback(url: &str, base: DateTime<Utc>) {
    let day = Span::days(1);
    let rows = [
        ("1", "U1", "api_key_invalid", "up", base + day + mins(30)),
        (
            "2",
            "U2",
            "api_key_invalid",
            "down",
            base + day * 3 + Span::hours(1),
        ),
        (
            "3",
            "U1",
            "region_mismatch",
            "up",
            base + day * 3 + Span::hours(5),
        ),
        ("4", "U1", "region_mismatch", "down", base - day),
    ];
    let insert = "INSERT INTO feedback (channel, message_ts, user_id, environment, location, \
         verdict, vote, created_at, updated_at) VALUES ($1, $2, $3, 'prod', $4, $5, $6, $7, $7)";
    if url.starts_with("sqlite") {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).expect("url");
        let pool = sqlx::SqlitePool::connect_with(options).await.expect("pool");
        for (ts, user, verdict, vote, at) in rows {
            sqlx::query(insert)
                .bind(ONCALL_CHANNEL)
                .bind(ts)
                .bind(user)
                .bind(L1)
                .bind(verdict)
                .bind(vote)
                .bind(at.timestamp_millis())
                .execute(&pool)
                .await
                .expect("insert feedback");
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("pool");
        for (ts, user, verdict, vote, at) in rows {
            sqlx::query(insert)
                .bind(ONCALL_CHANNEL)
                .bind(ts)
                .bind(user)
                .bind(L1)
                .bind(verdict)
                .bind(vote)
                .bind(at.timestamp_millis())
                .execute(&pool)
                .await
                .expect("insert feedback");
        }
        pool.close().await;
    }
}

/// Seeds everything for a period starting at `base`; the store is closed when this returns.
async fn seed_all(db: &TestDb, base: DateTime<Utc>) {
    let store = db.open().await;
    seed(db, &*store, base).await;
    store.close().await;
    seed_feedback(&db.url, base).await;
}

/// Every number of the seeded week, as a person reading the report would check them.
fn assert_seeded_numbers(r: &PeriodReport) {
    assert_eq!((r.opened, r.resolved), (4, 2), "incidents opened, resolved");
    let mix: Vec<(&str, usize)> = r
        .verdicts
        .iter()
        .map(|c| (c.verdict.as_str(), c.count))
        .collect();
    assert_eq!(
        mix,
        [
            ("api_key_invalid", 2),
            ("region_mismatch", 1),
            ("undiagnosed", 1)
        ]
    );
    let m = |m: u64| Some(Duration::from_secs(m * 60));
    assert_eq!(r.time_to_diagnosis.measured, 3);
    assert_eq!(
        (r.time_to_diagnosis.p50, r.time_to_diagnosis.p90),
        (m(5), m(20))
    );
    assert_eq!(r.time_to_resolution.measured, 2);
    assert_eq!(
        (r.time_to_resolution.p50, r.time_to_resolution.p90),
        (m(60), m(120))
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
    assert_eq!((r.job_failures.failed, r.job_failures.checks), (1, 3));
    assert_eq!(r.job_failures.builds, [FAILED_BUILD]);
    let precision: Vec<(&str, usize, usize)> = r
        .feedback
        .iter()
        .map(|p| (p.verdict.as_str(), p.up, p.total))
        .collect();
    assert_eq!(
        precision,
        [("region_mismatch", 1, 1), ("api_key_invalid", 1, 2)]
    );
    assert_eq!(r.per_day.iter().map(|d| d.incidents).sum::<usize>(), 4);
}

/// Text with every run of spaces made one, so tests do not depend on column widths.
fn words(s: &str) -> String {
    s.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The lines of the text report that carry the seeded numbers.
const SEEDED_TEXT: [&str; 12] = [
    "Incidents 4 opened, 2 resolved",
    "Time to diagnosis p50 5m00s, p90 20m00s (3 measured)",
    "Time to resolution p50 1h00m, p90 2h00m (2 measured)",
    "Pages sent 1",
    "Escalations razee 2, satellite_link 1 + 1 page",
    "Jenkins job 1 of 3 checks ended job_failed (33%)",
    "api_key_invalid 2 Bad IAM API key",
    "region_mismatch 1 Improper region config",
    "c1hk4ek107l5au5mq8hg prod 2",
    "c3bbbbbbbbbbbbbbbbbb stage 1",
    "api_key_invalid 1/2 50%",
    "region_mismatch 1/1 100%",
];

// ---- the numbers, on both backends -------------------------------------------------------

async fn the_numbers_match_a_seeded_store_in_text_and_json(db: TestDb) {
    let base = t("2026-11-24T09:00:00Z");
    seed_all(&db, base).await;
    let store = db.open().await;
    let period = Period::new(base, base + Span::days(7)).expect("a week");
    let r = gather(&*store, period).await.expect("the report's rows");
    assert_seeded_numbers(&r);
    // Per UTC day: Nov 25 one, Nov 27 two, Nov 28 one.
    let days: Vec<usize> = r.per_day.iter().map(|d| d.incidents).collect();
    assert_eq!(days, [0, 1, 0, 2, 1, 0, 0, 0]);
    assert_eq!(r.chart(), "▁▅▁█▅▁▁▁");

    let text = words(&render::text(&r));
    for want in SEEDED_TEXT {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    assert!(
        text.contains("Per day ▁▅▁█▅▁▁▁ (Nov 24 → Dec 1, at most 2 a day)"),
        "{text}"
    );

    let json: serde_json::Value = serde_json::from_str(&render::json(&r)).expect("JSON");
    assert_eq!(json["opened"], 4);
    assert_eq!(json["resolved"], 2);
    assert_eq!(
        json["verdicts"][0],
        serde_json::json!({"verdict": "api_key_invalid", "count": 2})
    );
    assert_eq!(
        json["time_to_diagnosis"],
        serde_json::json!({"measured": 3, "p50": 300_000, "p90": 1_200_000})
    );
    assert_eq!(
        json["time_to_resolution"],
        serde_json::json!({"measured": 2, "p50": 3_600_000, "p90": 7_200_000})
    );
    assert_eq!(json["pages_sent"], 1);
    assert_eq!(
        json["escalations"][1],
        serde_json::json!({"team": "satellite_link", "escalated": 1, "paged": 1})
    );
    assert_eq!(
        json["top_locations"][0],
        serde_json::json!({"environment": "prod", "location": L1, "incidents": 2})
    );
    assert_eq!(
        json["job_failures"],
        serde_json::json!({"failed": 1, "checks": 3, "builds": [FAILED_BUILD]})
    );
    assert_eq!(
        json["feedback"][1],
        serde_json::json!({"verdict": "api_key_invalid", "up": 1, "total": 2, "precision": 0.5})
    );
    assert_eq!(
        json["per_day"][3],
        serde_json::json!({"date": "2026-11-27", "incidents": 2})
    );
    assert_eq!(json["chart"], "▁▅▁█▅▁▁▁");

    // A period with nothing in it says so, with zeros, not an error.
    let empty = Period::new(base - Span::days(30), base - Span::days(20)).expect("a period");
    let r = gather(&*store, empty).await.expect("rows");
    assert_eq!(
        (r.opened, r.resolved, r.pages_sent, r.job_failures.checks),
        (0, 0, 0, 0)
    );
}

async fn a_weekly_slot_is_posted_once_and_a_dead_claim_is_taken_over_after_its_bound(db: TestDb) {
    let slot = t("2026-11-30T09:00:00Z");
    db.set(slot + Span::seconds(5));
    let (a, b) = (db.open().await, db.open().await);
    // Two replicas claim at once: exactly one wins.
    let (ca, cb) = tokio::join!(
        a.claim_report_slot(slot, ONCALL_CHANNEL, "replica-a", STALE_CLAIM),
        b.claim_report_slot(slot, ONCALL_CHANNEL, "replica-b", STALE_CLAIM)
    );
    let (ca, cb) = (ca.expect("claim a"), cb.expect("claim b"));
    let (winner, claim, loser) = match (&ca, &cb) {
        (ReportSlotClaim::Claimed { claim }, ReportSlotClaim::Taken { .. }) => {
            (&a, claim.clone(), &b)
        }
        (ReportSlotClaim::Taken { .. }, ReportSlotClaim::Claimed { claim }) => {
            (&b, claim.clone(), &a)
        }
        other => panic!("not exactly one claim: {other:?}"),
    };
    assert!(winner
        .finish_report_slot(slot, &claim, Some("111.000100"))
        .await
        .expect("posted"));
    // Later, and after a restart (a new store, a new owner), the slot stays posted.
    let stale = Span::from_std(STALE_CLAIM).expect("the bound");
    db.set(slot + stale + Span::hours(1));
    let restarted = db.open().await;
    for store in [loser, &restarted] {
        let again = store
            .claim_report_slot(slot, ONCALL_CHANNEL, "replica-c", STALE_CLAIM)
            .await
            .expect("claim");
        assert!(
            matches!(again, ReportSlotClaim::Taken { posted: true, .. }),
            "{again:?}"
        );
    }

    // The next week: the holder dies between claiming and posting.
    let next = slot + Span::days(7);
    db.set(next);
    let ReportSlotClaim::Claimed { claim: dead } = a
        .claim_report_slot(next, ONCALL_CHANNEL, "replica-a", STALE_CLAIM)
        .await
        .expect("claim")
    else {
        panic!("the first claim of a slot is the caller's");
    };
    db.set(next + stale / 2);
    let early = b
        .claim_report_slot(next, ONCALL_CHANNEL, "replica-b", STALE_CLAIM)
        .await
        .expect("claim");
    assert_eq!(
        early,
        ReportSlotClaim::Taken {
            owner: "replica-a".into(),
            posted: false
        },
        "a live claim is never taken over"
    );
    db.set(next + stale + Span::seconds(1));
    let ReportSlotClaim::Claimed { claim: taken } = b
        .claim_report_slot(next, ONCALL_CHANNEL, "replica-b", STALE_CLAIM)
        .await
        .expect("claim")
    else {
        panic!("a stale claim is taken over");
    };
    // The dead holder's claim no longer counts; the new one posts.
    assert!(!a
        .finish_report_slot(next, &dead, Some("1.1"))
        .await
        .expect("finish"));
    assert!(b
        .finish_report_slot(next, &taken, Some("2.2"))
        .await
        .expect("finish"));
    // A failed post drops the claim, so the slot can be tried again.
    let third = next + Span::days(7);
    db.set(third);
    let ReportSlotClaim::Claimed { claim } = a
        .claim_report_slot(third, ONCALL_CHANNEL, "replica-a", STALE_CLAIM)
        .await
        .expect("claim")
    else {
        panic!("claim");
    };
    assert!(a
        .finish_report_slot(third, &claim, None)
        .await
        .expect("dropped"));
    assert!(matches!(
        b.claim_report_slot(third, ONCALL_CHANNEL, "replica-b", STALE_CLAIM)
            .await
            .expect("claim"),
        ReportSlotClaim::Claimed { .. }
    ));
}

/// A Slack side that refuses the first `fail` posts, then records what it posts.
struct FlakyPoster {
    fail: std::sync::atomic::AtomicUsize,
    posted: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl ReportPoster for FlakyPoster {
    async fn post_report(&self, channel: &str, report: &PeriodReport) -> anyhow::Result<String> {
        use std::sync::atomic::Ordering;
        if self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            anyhow::bail!("Slack could not be reached");
        }
        let mut posted = self.posted.lock().expect("lock");
        posted.push(format!("{channel}: {} opened", report.opened));
        Ok(format!("{}.000100", posted.len()))
    }

    async fn post_failure(&self, channel: &str, sentence: &str) -> anyhow::Result<String> {
        let mut posted = self.posted.lock().expect("lock");
        posted.push(format!("{channel}: {sentence}"));
        Ok(format!("{}.000100", posted.len()))
    }
}

async fn a_failed_weekly_post_is_tried_again_then_posted_once(db: TestDb) {
    let slot = t("2026-11-30T09:00:00Z");
    seed_all(&db, slot - Span::days(7)).await;
    db.set(slot + Span::seconds(3));
    let poster = Arc::new(FlakyPoster {
        fail: 1.into(),
        posted: Default::default(),
    });
    let weekly = Weekly {
        store: db.open().await,
        poster: poster.clone(),
        channel: ONCALL_CHANNEL.into(),
        at: WeeklyAt::parse("Mon 09:00").expect("weekly_at"),
        owner: "replica-a".into(),
        clock: db.clock(),
        events: tokio::sync::watch::channel(None).0,
    };
    // Slack down: nothing posted, the claim is dropped, so the next tick tries again.
    let first = weekly.post_slot(slot).await;
    assert!(matches!(first, SlotOutcome::Failed { .. }), "{first:?}");
    assert!(poster.posted.lock().expect("lock").is_empty());
    let second = weekly.post_slot(slot).await;
    assert!(matches!(second, SlotOutcome::Posted { .. }), "{second:?}");
    let third = weekly.post_slot(slot).await;
    assert!(
        matches!(third, SlotOutcome::Taken { posted: true, .. }),
        "{third:?}"
    );
    // The week before the slot: the seeded numbers.
    assert_eq!(
        *poster.posted.lock().expect("lock"),
        [format!("{ONCALL_CHANNEL}: 4 opened")]
    );
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_weekly_post_is_tried_again_then_posted_once() {
        super::on_sqlite(super::a_failed_weekly_post_is_tried_again_then_posted_once).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_numbers_match_a_seeded_store_in_text_and_json() {
        super::on_sqlite(super::the_numbers_match_a_seeded_store_in_text_and_json).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_weekly_slot_is_posted_once_and_a_dead_claim_is_taken_over_after_its_bound() {
        super::on_sqlite(
            super::a_weekly_slot_is_posted_once_and_a_dead_claim_is_taken_over_after_its_bound,
        )
        .await
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_weekly_post_is_tried_again_then_posted_once() {
        super::on_postgres(super::a_failed_weekly_post_is_tried_again_then_posted_once).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_numbers_match_a_seeded_store_in_text_and_json() {
        super::on_postgres(super::the_numbers_match_a_seeded_store_in_text_and_json).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_weekly_slot_is_posted_once_and_a_dead_claim_is_taken_over_after_its_bound() {
        super::on_postgres(
            super::a_weekly_slot_is_posted_once_and_a_dead_claim_is_taken_over_after_its_bound,
        )
        .await
    }
}

// ---- the command line ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linkbot_report_prints_the_seeded_numbers_as_text_json_and_markdown() {
    use crate::cli::{linkbot, text};
    let world = World::start().await.expect("the world starts");
    let url = world.sqlite_url("report");
    let config = world.dir().join("bot.toml");
    std::fs::write(&config, world.config_toml(&url)).expect("bot.toml");
    let config = config.to_str().expect("utf-8 path");
    // The binary reads the system clock: the week ends now, and starts six days ago.
    let base =
        DateTime::from_timestamp(Utc::now().timestamp() / 60 * 60 - 6 * 86_400, 0).expect("a time");
    let db = crate::store::TestDb::for_url(url.clone(), base);
    seed_all(&db, base).await;
    let since = base.to_rfc3339();

    let out = linkbot(&["report", "--config", config, "--since", &since], &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let printed = words(&String::from_utf8_lossy(&out.stdout));
    for want in SEEDED_TEXT {
        assert!(printed.contains(want), "{want:?} not in\n{printed}");
    }

    let out = linkbot(
        &[
            "report", "--config", config, "--since", &since, "--format", "json",
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(
        (json["opened"].as_u64(), json["resolved"].as_u64()),
        (Some(4), Some(2))
    );
    assert_eq!(json["time_to_diagnosis"]["p90"], 1_200_000);
    assert_eq!(json["pages_sent"], 1);
    assert_eq!(json["job_failures"]["failed"], 1);

    let out = linkbot(
        &[
            "report", "--config", config, "--since", &since, "--format", "markdown",
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.starts_with("## linkbot report — "), "{md}");
    for want in [
        "| Incidents | 4 opened, 2 resolved |",
        "| `api_key_invalid` | 2 | Bad IAM API key |",
        "| `c1hk4ek107l5au5mq8hg` | prod | 2 |",
        "| `api_key_invalid` | 1 | 2 | 50% |",
    ] {
        assert!(md.contains(want), "{want:?} not in\n{md}");
    }

    // Bad periods: one line with the fix, non-zero status, nothing printed on stdout.
    for (since, fix) in [
        ("7x", "a duration ends in m, h or d (30m, 24h, 7d)"),
        ("last-week", "is neither an RFC 3339 time"),
        ("400d", "a report covers at most 92 days"),
        (
            "2999-01-01T00:00:00Z",
            "give a time in the past or a duration",
        ),
    ] {
        let out = linkbot(&["report", "--config", config, "--since", since], &[]).await;
        assert!(!out.status.success(), "--since {since} was accepted");
        assert!(out.stdout.is_empty(), "--since {since}: {}", text(&out));
        assert!(text(&out).contains(fix), "--since {since}: {}", text(&out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_weekly_at_is_refused_with_its_line_key_and_fix() {
    use crate::cli::{linkbot, text};
    let world = World::start().await.expect("the world starts");
    let good = world.config_toml(&world.sqlite_url("cli"));
    for (value, fix) in [
        (
            "Mon 9am",
            "`9am` is not a time of day: use 24-hour HH:MM in UTC",
        ),
        (
            "Lundi 09:00",
            "`Lundi` is not a day of the week: use Mon, Tue",
        ),
        ("every monday", "`every` is not a day of the week"),
    ] {
        let path = world.dir().join("bad.toml");
        let toml = format!("{good}\n[report]\nchannel = \"C0ONCALL\"\nweekly_at = \"{value}\"\n");
        let line = 1 + toml
            .lines()
            .position(|l| l.starts_with("weekly_at"))
            .expect("the line");
        std::fs::write(&path, toml).expect("bad.toml");
        let out = linkbot(&["config", "check", path.to_str().expect("utf-8")], &[]).await;
        assert!(!out.status.success(), "weekly_at = {value:?} was accepted");
        let said = text(&out);
        assert!(
            said.contains(&format!("bad.toml:{line}: report.weekly_at: ")),
            "{said}"
        );
        assert!(said.contains(fix), "{said}");
    }
}

// ---- Slack ---------------------------------------------------------------------------------

fn options(instance: &str) -> Options {
    crate::common::bot_options(instance)
}

/// A bot on `store_url` with `[report]` posting to the on-call channel on Mondays at 09:00,
/// its clock fixed at `now`.
async fn start_bot(
    world: &World,
    store_url: &str,
    instance: &str,
    now: DateTime<Utc>,
) -> RunningBot {
    let mut config = world
        .config(store_url)
        .expect("the world's bot.toml parses");
    config.report = Some(ReportConfig {
        channel: SlackChannelId::parse(ONCALL_CHANNEL).expect("channel"),
        weekly_at: WeeklyAt::parse("Mon 09:00").expect("weekly_at"),
    });
    let connections = config.slack.connections;
    let bot = app::start_with_clock(
        Arc::new(config),
        world.secrets(),
        options(instance),
        Clock::from_fn(move || now),
    )
    .await
    .unwrap_or_else(|e| panic!("{instance} did not start: {e:#}"));
    assert!(
        bot.wait_connected(connections, WAIT).await,
        "{instance} did not open its Socket Mode connections"
    );
    bot
}

/// Whether `m` is a visible report in the on-call channel (the weekly post, `/linkbot report`).
fn is_report(m: &SimMessage) -> bool {
    m.channel == ONCALL_CHANNEL
        && m.ephemeral_to.is_none()
        && m.text
            .as_deref()
            .unwrap_or("")
            .starts_with("linkbot report")
}

/// The bot's visible reports in the on-call channel.
fn reports(world: &World) -> Vec<SimMessage> {
    world
        .slack
        .messages()
        .into_iter()
        .filter(is_report)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_report_is_posted_visibly_in_the_channel_within_block_kit_limits() {
    let world = World::start().await.expect("the world starts");
    let url = world.sqlite_url("bot");
    // Seeded a week before the bot's "now": the numbers of the seeded store.
    let base = t("2026-11-24T09:00:00Z");
    let now = base + Span::days(7);
    let db = crate::store::TestDb::for_url(url.clone(), base);
    seed_all(&db, base).await;
    let bot = start_bot(&world, &url, "report-test", now - Span::hours(1)).await;

    world
        .slack
        .push(fake::slash_command(
            ONCALL_CHANNEL,
            ENGINEER,
            "/linkbot",
            "report 7d",
        ))
        .await
        .expect("a live Socket Mode connection");
    assert!(
        world
            .slack
            .wait_until(|s| s.messages().iter().any(is_report), WAIT)
            .await,
        "no report answered /linkbot report 7d: {:?}",
        world.slack.messages()
    );
    let posted = reports(&world);
    assert_eq!(posted.len(), 1, "{posted:?}");
    let m = &posted[0];
    assert_eq!(
        m.thread_ts, None,
        "the report is a message of the channel, not a thread reply"
    );
    assert!(
        world.slack.calls("chat.postEphemeral").is_empty(),
        "nothing was ephemeral"
    );
    assert!(
        world.slack.refusals().is_empty(),
        "Slack refused: {:?}",
        world.slack.refusals()
    );
    let blocks = m.blocks.clone().expect("Block Kit");
    assert!(
        linkbot::sim::blockkit::validate_message(m.text.as_deref(), Some(&blocks)).is_ok(),
        "the strict validator refuses the report"
    );
    let shown = serde_json::to_string(&blocks).expect("JSON");
    for want in [
        "4 opened, 2 resolved",
        "p50 5m00s, p90 20m00s (3 measured)",
        "razee 2, satellite_link 1 + 1 page",
        "1 of 3 checks ended job_failed (33%)",
        "`api_key_invalid` 1/2 (50%)",
        "`c1hk4ek107l5au5mq8hg` (prod) 2",
    ] {
        assert!(shown.contains(want), "{want:?} not in {shown}");
    }
    assert!(linkbot::slack::mrkdwn::live_tokens_in(&blocks)
        .iter()
        .all(|l| l.starts_with("<https://jenkins.example/")));

    // Bad periods are answered to the user alone, with the fix.
    for (words, fix) in [
        ("report 7x", "is not a period"),
        ("report 400d", "at most 92 days"),
    ] {
        world
            .slack
            .push(fake::slash_command(
                ONCALL_CHANNEL,
                ENGINEER,
                "/linkbot",
                words,
            ))
            .await
            .expect("a live Socket Mode connection");
        let fix = fix.to_string();
        assert!(
            world
                .slack
                .wait_until(
                    |s| s
                        .messages()
                        .iter()
                        .any(|m| m.ephemeral_to.as_deref() == Some(ENGINEER)
                            && m.text.as_deref().unwrap_or("").contains(&fix)),
                    WAIT
                )
                .await,
            "{words:?} was not answered with {fix:?}"
        );
    }
    assert_eq!(reports(&world).len(), 1, "a bad period posted a report");
    bot.stop().await;
}

/// Two replicas on `url`, clocks in the posting minute of a slot: one posts; a restart in the
/// same minute does not post again.
async fn weekly_is_posted_once(world: &World, url: &str) {
    let slot = t("2026-11-30T09:00:00Z");
    let a = start_bot(world, url, "replica-a", slot + Span::seconds(10)).await;
    let b = start_bot(world, url, "replica-b", slot + Span::seconds(12)).await;
    let seen_a = a
        .wait_weekly(slot, WAIT)
        .await
        .expect("replica-a looked at the slot");
    let seen_b = b
        .wait_weekly(slot, WAIT)
        .await
        .expect("replica-b looked at the slot");
    let posted = [&seen_a, &seen_b]
        .iter()
        .filter(|o| matches!(o, SlotOutcome::Posted { .. }))
        .count();
    assert_eq!(posted, 1, "replica-a: {seen_a:?}, replica-b: {seen_b:?}");
    assert!(
        world
            .slack
            .wait_until(|s| s.messages().iter().any(is_report), WAIT)
            .await,
        "the weekly report never appeared"
    );
    // Restart the replica that posted, still in the posting minute.
    let (poster, other) = if matches!(seen_a, SlotOutcome::Posted { .. }) {
        (a, b)
    } else {
        (b, a)
    };
    poster.stop().await;
    let restarted = start_bot(world, url, "replica-a2", slot + Span::seconds(40)).await;
    let again = restarted
        .wait_weekly(slot, WAIT)
        .await
        .expect("the restarted replica looked at the slot");
    assert!(
        matches!(again, SlotOutcome::Taken { posted: true, .. }),
        "{again:?}"
    );
    let posted = reports(world);
    assert_eq!(
        posted.len(),
        1,
        "the weekly report was posted {} times",
        posted.len()
    );
    assert_eq!(posted[0].thread_ts, None);
    let text = posted[0].text.as_deref().unwrap_or("");
    assert!(
        text.contains("2026-11-23 09:00 → 2026-11-30 09:00 UTC (7 days)"),
        "{text}"
    );
    assert!(
        world.slack.refusals().is_empty(),
        "{:?}",
        world.slack.refusals()
    );
    restarted.stop().await;
    other.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weekly_report_is_posted_once_by_two_replicas_on_one_sqlite_file() {
    let world = World::start().await.expect("the world starts");
    let url = world.sqlite_url("shared");
    tokio::time::timeout(Duration::from_secs(90), weekly_is_posted_once(&world, &url))
        .await
        .expect("the test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weekly_report_is_posted_once_by_two_replicas_on_one_postgres() {
    let Some(schema) = crate::common::postgres_schema(WAIT).await else {
        return;
    };
    let world = World::start().await.expect("the world starts");
    let url = schema.url.clone();
    let done =
        tokio::time::timeout(Duration::from_secs(90), weekly_is_posted_once(&world, &url)).await;
    schema.drop_schema(WAIT).await;
    done.expect("the test finished in time");
}
