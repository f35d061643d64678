//! The durable store, one suite run against both backends: SQLite on a temporary file and
//! PostgreSQL from `LINKBOT_TEST_DATABASE_URL` (each test in a schema of its own, dropped at the
//! end). Without that variable the PostgreSQL tests say `skipped: …` on stderr and pass, unless
//! `LINKBOT_REQUIRE_POSTGRES=1`, which makes them fail. Time is moved by hand, never slept on.

use crate::common;

use chrono::{DateTime, TimeZone, Utc};
use linkbot::domain::{Environment, LocationId};
use linkbot::store::{
    open, open_with_clock, AuditEntry, AuditKind, CheckId, CheckKey, Claim, Clock, FinishOutcome,
    Fired, MessageRef, NewVote, PageClaim, RequestSource, Requester, SilenceRecord, Store,
    StoreError, StormFiring, StormMode, Vote, Waiter, Whereabouts, FEEDBACK_FORM_RETENTION,
};
use serde_json::json;
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TEST_TIMEOUT: Duration = Duration::from_secs(60);
const LEASE: Duration = Duration::from_secs(60);
const TTL: Duration = Duration::from_secs(600);

/// A database for one test: its URL and a hand-driven clock shared by every store opened on it.
#[derive(Clone)]
pub(crate) struct TestDb {
    pub(crate) url: String,
    now_ms: Arc<AtomicI64>,
}

impl TestDb {
    pub(crate) fn clock(&self) -> Clock {
        let now = self.now_ms.clone();
        Clock::from_fn(move || {
            DateTime::from_timestamp_millis(now.load(Ordering::SeqCst)).unwrap_or_default()
        })
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock().now()
    }

    fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).expect("small duration");
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock to `at`.
    pub(crate) fn set(&self, at: DateTime<Utc>) {
        self.now_ms.store(at.timestamp_millis(), Ordering::SeqCst);
    }

    /// A store on this database (a "replica" when opened twice).
    pub(crate) async fn open(&self) -> Arc<dyn Store> {
        match open_with_clock(&self.url, self.clock()).await {
            Ok(store) => store,
            Err(e) => panic!("open {}: {e:?}", self.url),
        }
    }
}

fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

impl TestDb {
    /// A database at `url` whose clock starts at `at` (for tests outside this suite).
    pub(crate) fn for_url(url: String, at: DateTime<Utc>) -> TestDb {
        TestDb {
            url,
            now_ms: Arc::new(AtomicI64::new(at.timestamp_millis())),
        }
    }
}

fn new_db(url: String) -> TestDb {
    TestDb {
        url,
        now_ms: Arc::new(AtomicI64::new(start_time().timestamp_millis())),
    }
}

/// Runs `body` bounded in time; a panic inside it is re-raised after cleanup.
async fn run_bounded<F, Fut>(db: TestDb, body: F) -> Result<(), String>
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let task = tokio::spawn(body(db));
    match tokio::time::timeout(TEST_TIMEOUT, task).await {
        Err(_) => Err(format!("test did not finish within {TEST_TIMEOUT:?}")),
        Ok(Err(join)) if join.is_panic() => {
            let payload = join.into_panic();
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "test panicked".into());
            Err(msg)
        }
        Ok(Err(join)) => Err(format!("test task failed: {join}")),
        Ok(Ok(())) => Ok(()),
    }
}

pub(crate) async fn on_sqlite<F, Fut>(body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("linkbot.db").display());
    let result = run_bounded(new_db(url), body).await;
    drop(dir);
    if let Err(msg) = result {
        panic!("{msg}");
    }
}

pub(crate) async fn on_postgres<F, Fut>(body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(schema) = common::postgres_schema(TEST_TIMEOUT).await else {
        return;
    };
    let url = schema.url.clone();

    let result = run_bounded(new_db(url), body).await;

    schema.drop_schema(TEST_TIMEOUT).await;
    if let Err(msg) = result {
        panic!("{msg}");
    }
}

/// Each body below becomes `sqlite::<name>` and `postgres::<name>`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::on_sqlite(super::$name).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::on_postgres(super::$name).await
                }
            )*
        }
    };
}

on_both_backends!(
    migrations_are_idempotent,
    claim_starts_joins_reuses_then_expires,
    concurrent_claims_from_two_replicas_start_exactly_one,
    expired_lease_is_taken_over_with_stage_job_and_waiters,
    leases_are_renewed_together_and_a_lost_one_is_left_out,
    claim_on_an_expired_lease_takes_the_check_over,
    finish_appends_exactly_one_audit_entry,
    waiter_after_finish_is_refused_and_result_stays_readable,
    set_stage_without_job_keeps_the_job,
    audit_filters_by_since_and_location,
    first_seen_is_true_once_across_instances,
    in_flight_lists_running_checks_with_waiters,
    reopening_keeps_everything,
    a_message_shows_the_result_it_waited_for_or_was_shown,
    one_result_is_paged_once_across_replicas,
    a_failed_or_abandoned_page_can_be_claimed_again,
    refused_actions_are_audited,
    upgrading_from_version_1_keeps_the_audit_log,
    an_incident_opens_once_counts_repeats_and_resolves_once,
    an_incident_records_its_check_verdict_fix_page_and_issue,
    incidents_survive_a_restart_and_resolve_once_across_replicas,
    a_silence_is_recorded_found_by_its_message_and_expired_once,
    feedback_is_one_row_per_user_and_message_and_a_later_vote_replaces_it,
    a_feedback_form_is_found_by_its_token_taken_once_and_forgotten_when_old,
    a_storm_is_declared_once_across_replicas_and_ends_once,
    storm_checks_are_claimed_once_per_epoch_and_modes_move_as_asked,
    storm_pointers_are_claimed_once_released_and_answered_across_replicas,
    a_stale_storm_checker_is_taken_over_once,
    a_storm_keeps_the_reason_text_and_the_report_finds_the_incidents_it_pointed,
);

// ---- helpers -----------------------------------------------------------------------------

fn loc(s: &str) -> LocationId {
    LocationId::parse(s).expect("valid location id")
}

fn key(location: &str, environment: Environment) -> CheckKey {
    CheckKey {
        environment,
        location: loc(location),
    }
}

const LOC_A: &str = "c1hk4ek107l5au5mq8hg";
const LOC_B: &str = "c2aaaaaaaaaaaaaaaaaa";

fn alice() -> Requester {
    Requester {
        user: Some("U0ALICE".into()),
        channel: Some("C0ONCALL".into()),
        source: RequestSource::Mention,
    }
}

fn waiter(ts: &str) -> Waiter {
    Waiter {
        channel: "C0ONCALL".into(),
        message_ts: ts.into(),
        thread_ts: Some("1700000000.000100".into()),
        user: Some("U0ALICE".into()),
    }
}

fn report(verdict: &str) -> serde_json::Value {
    json!({ "verdict": verdict, "steps": [{ "id": "config", "status": "ok", "evidence": "key …ab12" }] })
}

async fn claim(store: &dyn Store, key: &CheckKey, owner: &str, ttl: Duration) -> Claim {
    store
        .claim_check(key, owner, LEASE, ttl, &alice())
        .await
        .expect("claim_check")
}

async fn start(store: &dyn Store, key: &CheckKey, owner: &str) -> CheckId {
    match claim(store, key, owner, TTL).await {
        Claim::Started(id) => id,
        other => panic!("expected Started, got {other:?}"),
    }
}

async fn finish(store: &dyn Store, id: CheckId, owner: &str, verdict: &str) -> FinishOutcome {
    store
        .finish_check(
            id,
            owner,
            verdict,
            &report(verdict),
            Some("https://jenkins/job/1/"),
        )
        .await
        .expect("finish_check")
}

fn escalation(at: DateTime<Utc>, location: &str, target: &str) -> AuditEntry {
    AuditEntry {
        at,
        kind: AuditKind::Escalation,
        actor: Some("U0BOB".into()),
        channel: Some("C0ONCALL".into()),
        location: loc(location),
        environment: Environment::Prod,
        verdict: Some("config_missing".into()),
        target: Some(target.into()),
        link: Some("https://github.com/org/repo/issues/7".into()),
        detail: None,
    }
}

// ---- the suite ---------------------------------------------------------------------------

async fn migrations_are_idempotent(db: TestDb) {
    // Two replicas starting together, then a third later: the schema is applied once.
    let (a, b) = tokio::join!(db.open(), db.open());
    let k = key(LOC_A, Environment::Prod);
    let id = start(&*a, &k, "a").await;
    let c = db.open().await;
    c.ping().await.expect("ping");
    assert_eq!(claim(&*c, &k, "c", TTL).await, Claim::Joined(id));
    assert_eq!(b.in_flight().await.expect("in_flight").len(), 1);
}

async fn claim_starts_joins_reuses_then_expires(db: TestDb) {
    let store = db.open().await;
    let k = key(LOC_A, Environment::Prod);
    let first = start(&*store, &k, "a").await;
    assert_eq!(claim(&*store, &k, "b", TTL).await, Claim::Joined(first));
    // Another environment for the same location is another check.
    let stage_key = key(LOC_A, Environment::Stage);
    let other = start(&*store, &stage_key, "a").await;
    assert_ne!(other, first);

    db.advance(Duration::from_secs(30));
    let finished_at = db.now();
    assert!(matches!(
        finish(&*store, first, "a", "api_key_invalid").await,
        FinishOutcome::Recorded { .. }
    ));

    db.advance(TTL - Duration::from_secs(1));
    match claim(&*store, &k, "b", TTL).await {
        Claim::Fresh(f) => {
            assert_eq!(f.check_id, first);
            assert_eq!(f.key, k);
            assert_eq!(f.finished_at, finished_at);
            assert_eq!(f.started_at, start_time());
            assert_eq!(f.verdict, "api_key_invalid");
            assert_eq!(f.report, report("api_key_invalid"));
            assert_eq!(f.build_url.as_deref(), Some("https://jenkins/job/1/"));
        }
        other => panic!("expected Fresh, got {other:?}"),
    }
    // Re-run: a zero TTL never reuses.
    let rerun = start_again(&*store, &k, Duration::ZERO).await;
    assert_ne!(rerun, first);
    finish(&*store, rerun, "b", "config_missing").await;

    // Once older than the TTL, the result is not reused.
    db.advance(TTL + Duration::from_secs(1));
    let later = start_again(&*store, &k, TTL).await;
    assert!(later != first && later != rerun);

    // A failure to run the runbook is never reused, however fresh: the next request retries.
    finish(&*store, later, "b", "job_failed").await;
    let retry = start_again(&*store, &k, TTL).await;
    assert!(retry != later);
}

async fn start_again(store: &dyn Store, k: &CheckKey, ttl: Duration) -> CheckId {
    match claim(store, k, "b", ttl).await {
        Claim::Started(id) => id,
        other => panic!("expected Started, got {other:?}"),
    }
}

async fn concurrent_claims_from_two_replicas_start_exactly_one(db: TestDb) {
    let replicas = [db.open().await, db.open().await];
    let k = key(LOC_A, Environment::Prod);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = replicas[i % 2].clone();
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("replica-{}", i % 2);
            store
                .claim_check(&k, &owner, LEASE, TTL, &alice())
                .await
                .expect("claim_check")
        }));
    }
    let mut started = Vec::new();
    let mut joined = Vec::new();
    for t in tasks {
        match t.await.expect("claim task") {
            Claim::Started(id) => started.push(id),
            Claim::Joined(id) => joined.push(id),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(started.len(), 1, "exactly one claim starts the check");
    assert_eq!(joined.len(), 49);
    assert!(joined.iter().all(|id| *id == started[0]));
    assert_eq!(replicas[0].in_flight().await.expect("in_flight").len(), 1);
}

/// A process renews every check it drives in one call: the ones it still holds are extended
/// (so they are not taken over when the old lease would have expired), a check another
/// replica took over is left out, and ids past the statement's chunk of 500 count the same.
async fn leases_are_renewed_together_and_a_lost_one_is_left_out(db: TestDb) {
    let me = db.open().await;
    let other = db.open().await;
    let a = start(&*me, &key(LOC_A, Environment::Prod), "me").await;
    let b = start(&*me, &key(LOC_B, Environment::Prod), "me").await;
    let c = start(&*me, &key(LOC_A, Environment::Stage), "me").await;
    // `c`'s lease expires and another replica takes it over; `a` and `b` are renewed first.
    db.advance(LEASE / 2);
    let mut ids = vec![a, b];
    // 1,000 ids nobody holds around them: more than one statement's worth.
    ids.extend((1..=1000).map(|n| CheckId(1_000_000 + n)));
    ids.push(c);
    let mut kept = me
        .renew_leases(&ids[..1002], "me", LEASE)
        .await
        .expect("renew");
    kept.sort_by_key(|i| i.0);
    assert_eq!(kept, vec![a, b]);
    db.advance(LEASE / 2 + Duration::from_secs(1));
    let taken = other
        .take_over_expired("other", LEASE)
        .await
        .expect("take over");
    assert_eq!(
        taken.iter().map(|t| t.check_id).collect::<Vec<_>>(),
        vec![c],
        "only the check whose lease was not renewed is taken over"
    );
    let mut kept = me.renew_leases(&ids, "me", LEASE).await.expect("renew");
    kept.sort_by_key(|i| i.0);
    assert_eq!(kept, vec![a, b], "the lost check is left out");
    assert!(me
        .renew_leases(&[], "me", LEASE)
        .await
        .expect("renew")
        .is_empty());
}

async fn expired_lease_is_taken_over_with_stage_job_and_waiters(db: TestDb) {
    let old = db.open().await;
    let new = db.open().await;
    let k = key(LOC_A, Environment::Prod);
    let id = start(&*old, &k, "old").await;
    let job = json!({ "queue_item": 42, "build": 7, "url": "https://jenkins/job/x/7/" });
    assert!(old
        .set_stage(id, "old", "job_running", Some(&job))
        .await
        .expect("set_stage"));
    assert!(old
        .add_waiter(id, &waiter("1.1"))
        .await
        .expect("add_waiter"));
    assert!(old
        .add_waiter(id, &waiter("2.2"))
        .await
        .expect("add_waiter"));
    assert!(
        old.add_waiter(id, &waiter("1.1"))
            .await
            .expect("add_waiter"),
        "duplicate is fine"
    );

    // A live lease is not taken over, and the holder never takes over its own check.
    assert!(new
        .take_over_expired("new", LEASE)
        .await
        .expect("take over")
        .is_empty());
    db.advance(LEASE + Duration::from_secs(1));
    assert!(old
        .take_over_expired("old", LEASE)
        .await
        .expect("take over")
        .is_empty());

    let taken = new
        .take_over_expired("new", LEASE)
        .await
        .expect("take over");
    assert_eq!(taken.len(), 1);
    let f = &taken[0];
    assert_eq!(f.check_id, id);
    assert_eq!(f.key, k);
    assert_eq!(f.stage, "job_running");
    assert_eq!(f.job.as_ref(), Some(&job));
    assert_eq!(f.owner, "new");
    assert_eq!(f.lease_expires_at, db.now() + chrono::Duration::seconds(60));
    assert_eq!(f.requested_by, alice());
    assert_eq!(f.waiters, vec![waiter("1.1"), waiter("2.2")]);
    // Taken once only.
    assert!(new
        .take_over_expired("third", LEASE)
        .await
        .expect("take over")
        .is_empty());

    // The old holder has lost it: every write says so and changes nothing.
    assert!(!old
        .set_stage(id, "old", "artifacts", None)
        .await
        .expect("set_stage"));
    assert!(old
        .renew_leases(&[id], "old", LEASE)
        .await
        .expect("renew")
        .is_empty());
    assert_eq!(
        finish(&*old, id, "old", "job_failed").await,
        FinishOutcome::LeaseLost
    );
    assert!(old.audit(None, None, 10).await.expect("audit").is_empty());

    assert_eq!(
        new.renew_leases(&[id], "new", LEASE).await.expect("renew"),
        vec![id]
    );
    match finish(&*new, id, "new", "region_mismatch").await {
        FinishOutcome::Recorded { waiters } => {
            assert_eq!(waiters, vec![waiter("1.1"), waiter("2.2")])
        }
        other => panic!("expected Recorded, got {other:?}"),
    }
    let result = new.finished(id).await.expect("finished").expect("a result");
    assert_eq!(result.verdict, "region_mismatch");
}

async fn claim_on_an_expired_lease_takes_the_check_over(db: TestDb) {
    let store = db.open().await;
    let k = key(LOC_A, Environment::Prod);
    let id = start(&*store, &k, "dead").await;
    let job = json!({ "queue_item": 9 });
    assert!(store
        .set_stage(id, "dead", "job_queued", Some(&job))
        .await
        .expect("set_stage"));
    db.advance(LEASE);
    match claim(&*store, &k, "alive", TTL).await {
        Claim::TakenOver(f) => {
            assert_eq!(f.check_id, id);
            assert_eq!(f.owner, "alive");
            assert_eq!(f.stage, "job_queued");
            assert_eq!(f.job, Some(job));
        }
        other => panic!("expected TakenOver, got {other:?}"),
    }
    assert!(store
        .renew_leases(&[id], "dead", LEASE)
        .await
        .expect("renew")
        .is_empty());
    assert_eq!(claim(&*store, &k, "other", TTL).await, Claim::Joined(id));
}

async fn finish_appends_exactly_one_audit_entry(db: TestDb) {
    let store = db.open().await;
    let k = key(LOC_A, Environment::Stage);
    let id = start(&*store, &k, "a").await;
    db.advance(Duration::from_secs(90));
    finish(&*store, id, "a", "config_missing").await;
    // A second finish (retry after a timeout, say) writes nothing.
    assert_eq!(
        finish(&*store, id, "a", "config_missing").await,
        FinishOutcome::LeaseLost
    );

    let entries = store.audit(None, None, 100).await.expect("audit");
    assert_eq!(
        entries,
        vec![AuditEntry {
            at: db.now(),
            kind: AuditKind::Check,
            actor: Some("U0ALICE".into()),
            channel: Some("C0ONCALL".into()),
            location: loc(LOC_A),
            environment: Environment::Stage,
            verdict: Some("config_missing".into()),
            target: None,
            link: Some("https://jenkins/job/1/".into()),
            detail: Some("via mention".into()),
        }]
    );
}

async fn waiter_after_finish_is_refused_and_result_stays_readable(db: TestDb) {
    let store = db.open().await;
    let k = key(LOC_A, Environment::Prod);
    let id = start(&*store, &k, "a").await;
    assert_eq!(store.finished(id).await.expect("finished"), None);
    finish(&*store, id, "a", "api_key_accepted").await;
    assert!(!store
        .add_waiter(id, &waiter("3.3"))
        .await
        .expect("add_waiter"));
    assert!(!store
        .add_waiter(CheckId(999_999), &waiter("3.3"))
        .await
        .expect("add_waiter"));
    assert!(store.waiters(id).await.expect("waiters").is_empty());
    let result = store
        .finished(id)
        .await
        .expect("finished")
        .expect("a result");
    assert_eq!(result.verdict, "api_key_accepted");
    assert_eq!(
        store.finished(CheckId(999_999)).await.expect("finished"),
        None
    );
}

async fn set_stage_without_job_keeps_the_job(db: TestDb) {
    let store = db.open().await;
    let id = start(&*store, &key(LOC_A, Environment::Prod), "a").await;
    let job = json!({ "build": 12 });
    assert!(store
        .set_stage(id, "a", "job_running", Some(&job))
        .await
        .expect("set_stage"));
    assert!(store
        .set_stage(id, "a", "artifacts", None)
        .await
        .expect("set_stage"));
    assert!(!store
        .set_stage(id, "intruder", "artifacts", None)
        .await
        .expect("set_stage"));
    let running = store.in_flight().await.expect("in_flight");
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].stage, "artifacts");
    assert_eq!(running[0].job, Some(job));
}

async fn audit_filters_by_since_and_location(db: TestDb) {
    let store = db.open().await;
    let t0 = start_time();
    let at = |mins: i64| t0 + chrono::Duration::minutes(mins);
    store
        .append_audit(&escalation(at(0), LOC_A, "razee"))
        .await
        .expect("append");
    store
        .append_audit(&escalation(at(10), LOC_B, "satellite_link"))
        .await
        .expect("append");
    store
        .append_audit(&escalation(at(20), LOC_A, "pagerduty"))
        .await
        .expect("append");

    let targets = |entries: Vec<AuditEntry>| -> Vec<String> {
        entries.into_iter().filter_map(|e| e.target).collect()
    };
    let all = store.audit(None, None, 100).await.expect("audit");
    assert_eq!(all[0], escalation(at(20), LOC_A, "pagerduty"));
    assert_eq!(
        targets(all),
        ["pagerduty", "satellite_link", "razee"],
        "newest first"
    );
    let since = store.audit(Some(at(10)), None, 100).await.expect("audit");
    assert_eq!(targets(since), ["pagerduty", "satellite_link"]);
    let for_a = store
        .audit(None, Some(&loc(LOC_A)), 100)
        .await
        .expect("audit");
    assert_eq!(targets(for_a), ["pagerduty", "razee"]);
    let both = store
        .audit(Some(at(5)), Some(&loc(LOC_A)), 100)
        .await
        .expect("audit");
    assert_eq!(targets(both), ["pagerduty"]);
    let limited = store.audit(None, None, 1).await.expect("audit");
    assert_eq!(targets(limited), ["pagerduty"]);
}

async fn first_seen_is_true_once_across_instances(db: TestDb) {
    let a = db.open().await;
    let b = db.open().await;
    assert!(a.first_seen("envelope:abc").await.expect("first_seen"));
    assert!(!a.first_seen("envelope:abc").await.expect("first_seen"));
    assert!(!b.first_seen("envelope:abc").await.expect("first_seen"));
    assert!(b.first_seen("event:Ev1").await.expect("first_seen"));

    let (x, y) = tokio::join!(a.first_seen("race"), b.first_seen("race"));
    assert_eq!(
        u8::from(x.expect("first_seen")) + u8::from(y.expect("first_seen")),
        1,
        "exactly one of two racing replicas handles the event"
    );

    // Keys are forgotten after a day.
    db.advance(Duration::from_secs(25 * 60 * 60));
    assert!(b.first_seen("envelope:abc").await.expect("first_seen"));
}

async fn in_flight_lists_running_checks_with_waiters(db: TestDb) {
    let store = db.open().await;
    assert!(store.in_flight().await.expect("in_flight").is_empty());
    let a = start(&*store, &key(LOC_A, Environment::Prod), "a").await;
    db.advance(Duration::from_secs(1));
    let b = start(&*store, &key(LOC_B, Environment::Prod), "a").await;
    db.advance(Duration::from_secs(1));
    let done = start(&*store, &key(LOC_B, Environment::Stage), "a").await;
    store
        .add_waiter(b, &waiter("5.5"))
        .await
        .expect("add_waiter");
    finish(&*store, done, "a", "unknown_location").await;

    let running = store.in_flight().await.expect("in_flight");
    let ids: Vec<CheckId> = running.iter().map(|f| f.check_id).collect();
    assert_eq!(ids, [a, b], "oldest first, finished ones left out");
    assert_eq!(running[0].stage, "started");
    assert_eq!(running[0].requested_by.source, RequestSource::Mention);
    assert!(running[0].waiters.is_empty());
    assert_eq!(running[1].waiters, vec![waiter("5.5")]);
}

async fn reopening_keeps_everything(db: TestDb) {
    let store = db.open().await;
    let k = key(LOC_A, Environment::Prod);
    let running = start(&*store, &k, "before-restart").await;
    let job = json!({ "queue_item": 5 });
    store
        .set_stage(running, "before-restart", "job_queued", Some(&job))
        .await
        .expect("set_stage");
    store
        .add_waiter(running, &waiter("7.7"))
        .await
        .expect("add_waiter");
    let other = start(&*store, &key(LOC_B, Environment::Prod), "before-restart").await;
    finish(&*store, other, "before-restart", "api_key_invalid").await;
    store
        .append_audit(&escalation(db.now(), LOC_B, "razee"))
        .await
        .expect("append");
    assert!(store.first_seen("envelope:1").await.expect("first_seen"));
    let in_flight_before = store.in_flight().await.expect("in_flight");
    let audit_before = store.audit(None, None, 100).await.expect("audit");
    store.close().await;
    drop(store);

    let store = db.open().await;
    assert_eq!(
        store.in_flight().await.expect("in_flight"),
        in_flight_before
    );
    assert_eq!(
        store.audit(None, None, 100).await.expect("audit"),
        audit_before
    );
    assert_eq!(audit_before.len(), 2);
    assert!(!store.first_seen("envelope:1").await.expect("first_seen"));
    assert_eq!(
        claim(&*store, &k, "after-restart", TTL).await,
        Claim::Joined(running)
    );
    assert!(matches!(
        claim(
            &*store,
            &key(LOC_B, Environment::Prod),
            "after-restart",
            TTL
        )
        .await,
        Claim::Fresh(_)
    ));
    // The restarted bot (a new owner) resumes the check once the old lease runs out.
    db.advance(LEASE);
    let resumed = store
        .take_over_expired("after-restart", LEASE)
        .await
        .expect("take over");
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].job, Some(job));
    assert_eq!(resumed[0].waiters, vec![waiter("7.7")]);
}

async fn a_message_shows_the_result_it_waited_for_or_was_shown(db: TestDb) {
    let store = db.open().await;
    let k = key(LOC_A, Environment::Prod);
    let id = start(&*store, &k, "a").await;
    store
        .add_waiter(id, &waiter("1.1"))
        .await
        .expect("add_waiter");
    // Still running: the message shows progress, no result (and no buttons).
    assert_eq!(
        store.shown_result("C0ONCALL", "1.1").await.expect("shown"),
        None
    );
    assert!(!store
        .record_shown(id, &waiter("9.9"))
        .await
        .expect("record_shown"));
    finish(&*store, id, "a", "api_key_invalid").await;
    let shown = store
        .shown_result("C0ONCALL", "1.1")
        .await
        .expect("shown")
        .expect("the message shows the result it waited for");
    assert_eq!((shown.check_id, &shown.key), (id, &k));
    assert_eq!(shown.verdict, "api_key_invalid");

    // A reused result shown in a new message (it never waited): recorded, then found.
    assert_eq!(
        store.shown_result("C0ONCALL", "2.2").await.expect("shown"),
        None
    );
    assert!(store
        .record_shown(id, &waiter("2.2"))
        .await
        .expect("record_shown"));
    assert!(store
        .record_shown(id, &waiter("2.2"))
        .await
        .expect("record_shown twice"));
    let reused = store
        .shown_result("C0ONCALL", "2.2")
        .await
        .expect("shown")
        .expect("the reused result");
    assert_eq!(reused.check_id, id);
    // An unknown check is not recorded.
    assert!(!store
        .record_shown(CheckId(999_999), &waiter("3.3"))
        .await
        .expect("record_shown unknown"));

    // The same ts in another channel, or an unknown ts, shows nothing.
    assert_eq!(
        store.shown_result("C0OTHER", "1.1").await.expect("shown"),
        None
    );
    assert_eq!(
        store.shown_result("C0ONCALL", "4.4").await.expect("shown"),
        None
    );
    // Another location's message shows that location's result.
    let other = start(&*store, &key(LOC_B, Environment::Stage), "a").await;
    store
        .add_waiter(other, &waiter("5.5"))
        .await
        .expect("add_waiter");
    finish(&*store, other, "a", "config_missing").await;
    let b = store
        .shown_result("C0ONCALL", "5.5")
        .await
        .expect("shown")
        .expect("B's result");
    assert_eq!(b.key, key(LOC_B, Environment::Stage));
}

async fn finished_check(store: &dyn Store, k: &CheckKey) -> CheckId {
    let id = match claim(store, k, "a", Duration::ZERO).await {
        Claim::Started(id) => id,
        other => panic!("expected Started, got {other:?}"),
    };
    finish(store, id, "a", "api_key_invalid").await;
    id
}

async fn one_result_is_paged_once_across_replicas(db: TestDb) {
    let replicas = [db.open().await, db.open().await];
    let k = key(LOC_A, Environment::Prod);
    let id = finished_check(&*replicas[0], &k).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = replicas[i % 2].clone();
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            let user = format!("U{i}");
            let claim = store
                .claim_page(id, &k, "satellite_link", &user, Duration::from_secs(300))
                .await
                .expect("claim_page");
            (user, claim)
        }));
    }
    let mut winners = Vec::new();
    let mut told = Vec::new();
    for t in tasks {
        match t.await.expect("claim task") {
            (user, PageClaim::Claimed { claim }) => winners.push((user, claim)),
            (_, PageClaim::Taken(record)) => told.push(record),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one click pages");
    let (winner, claim) = winners.pop().expect("a winner");
    assert_eq!(told.len(), 19);
    for r in &told {
        assert_eq!(r.check_id, id);
        assert_eq!(r.paged_by, winner, "the others are told who pages");
        assert_eq!(r.claimed_at, db.now());
        assert_eq!(r.target, "satellite_link");
    }

    db.advance(Duration::from_secs(2));
    assert!(replicas[1]
        .page_sent(id, &claim, "pagerduty:linkbot-prod-x")
        .await
        .expect("page_sent"));
    match replicas[0]
        .claim_page(id, &k, "satellite_link", "U99", Duration::from_secs(300))
        .await
        .expect("claim_page")
    {
        PageClaim::Taken(r) => {
            assert_eq!(r.paged_by, winner);
            assert_eq!(r.paged_at, Some(db.now()));
            assert_eq!(r.link.as_deref(), Some("pagerduty:linkbot-prod-x"));
        }
        other => panic!("a sent page was claimed again: {other:?}"),
    }
    // A sent page is never handed over, however old.
    db.advance(Duration::from_secs(24 * 60 * 60));
    assert!(matches!(
        replicas[1]
            .claim_page(id, &k, "satellite_link", "U98", Duration::from_secs(300))
            .await
            .expect("claim_page"),
        PageClaim::Taken(_)
    ));
    // A newer result of the same location is a new incident: it may be paged.
    let newer = finished_check(&*replicas[0], &k).await;
    assert!(matches!(
        replicas[0]
            .claim_page(newer, &k, "satellite_link", "U98", Duration::from_secs(300))
            .await
            .expect("claim_page"),
        PageClaim::Claimed { .. }
    ));
}

async fn a_failed_or_abandoned_page_can_be_claimed_again(db: TestDb) {
    let store = db.open().await;
    let k = key(LOC_A, Environment::Prod);
    let id = finished_check(&*store, &k).await;
    let stale = Duration::from_secs(300);
    let claim_as = |user: &'static str| {
        let store = store.clone();
        let k = k.clone();
        async move {
            store
                .claim_page(id, &k, "satellite_link", user, stale)
                .await
                .expect("claim_page")
        }
    };
    let PageClaim::Claimed { claim: first } = claim_as("U1").await else {
        panic!("the first click claims the page");
    };
    assert!(
        matches!(claim_as("U2").await, PageClaim::Taken(r) if r.paged_by == "U1" && r.paged_at.is_none())
    );
    // PagerDuty refused it: the row goes, the next click may try again.
    assert!(store.page_failed(id, &first).await.expect("page_failed"));
    let PageClaim::Claimed { claim: second } = claim_as("U2").await else {
        panic!("a failed page can be tried again");
    };
    assert!(!store.page_failed(id, &first).await.expect("page_failed"));
    assert!(!store
        .page_sent(id, &first, "pagerduty:x")
        .await
        .expect("page_sent"));

    // U2's process died mid-page: within the bound the page is still U2's…
    db.advance(stale - Duration::from_secs(1));
    assert!(matches!(claim_as("U3").await, PageClaim::Taken(r) if r.paged_by == "U2"));
    // …after it, the next click takes it, and U2's late answer changes nothing.
    db.advance(Duration::from_secs(2));
    let PageClaim::Claimed { claim: third } = claim_as("U3").await else {
        panic!("an abandoned page is handed on");
    };
    assert!(!store
        .page_sent(id, &second, "pagerduty:late")
        .await
        .expect("page_sent"));
    assert!(store
        .page_sent(id, &third, "pagerduty:x")
        .await
        .expect("page_sent"));
    assert!(
        matches!(claim_as("U4").await, PageClaim::Taken(r) if r.paged_by == "U3" && r.link.as_deref() == Some("pagerduty:x"))
    );
}

async fn refused_actions_are_audited(db: TestDb) {
    let store = db.open().await;
    let refused = AuditEntry {
        kind: AuditKind::RefusedAction,
        target: Some("dba (page)".into()),
        link: None,
        detail: Some("the message offered other targets".into()),
        ..escalation(db.now(), LOC_B, "x")
    };
    store.append_audit(&refused).await.expect("append");
    assert_eq!(
        store
            .audit(None, Some(&loc(LOC_B)), 10)
            .await
            .expect("audit"),
        vec![refused]
    );
}

async fn upgrading_from_version_1_keeps_the_audit_log(db: TestDb) {
    // A database written by the previous release: only migration 1, with an audit entry.
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = if db.url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    std::fs::copy(
        format!(
            "{}/migrations/{backend}/0001_init.sql",
            env!("CARGO_MANIFEST_DIR")
        ),
        dir.path().join("0001_init.sql"),
    )
    .expect("copy migration 1");
    let v1 = sqlx::migrate::Migrator::new(dir.path())
        .await
        .expect("migration 1");
    let insert = "INSERT INTO audit (at, kind, actor, channel, location, environment, verdict, \
         target, link, detail) VALUES (1714564800000, 'escalation', 'U0BOB', 'C0ONCALL', \
         'c2aaaaaaaaaaaaaaaaaa', 'prod', 'config_missing', 'razee', 'https://x/1', NULL)";
    if backend == "sqlite" {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)
            .expect("url")
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.expect("pool");
        v1.run(&pool).await.expect("apply migration 1");
        sqlx::query(insert).execute(&pool).await.expect("insert");
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
        v1.run(&pool).await.expect("apply migration 1");
        sqlx::query(insert).execute(&pool).await.expect("insert");
        pool.close().await;
    }

    let store = db.open().await;
    let entries = store.audit(None, None, 10).await.expect("audit");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].target.as_deref(), Some("razee"));
    assert_eq!(entries[0].kind, AuditKind::Escalation);
    // The upgraded log takes the new kind, and new ids follow the old ones.
    store
        .append_audit(&AuditEntry {
            kind: AuditKind::RefusedAction,
            ..escalation(db.now(), LOC_B, "dba")
        })
        .await
        .expect("append a refused action");
    assert_eq!(store.audit(None, None, 10).await.expect("audit").len(), 2);
}

// ---- backend-independent -----------------------------------------------------------------

fn chain(e: &StoreError) -> String {
    let mut out = format!("{e} | {e:?}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(&format!(" | {s}"));
        source = s.source();
    }
    out
}

#[tokio::test]
async fn an_unsupported_url_is_refused_clearly() {
    let err = tokio::time::timeout(TEST_TIMEOUT, open("mysql://root:hunter2@db/linkbot"))
        .await
        .expect("bounded")
        .err()
        .expect("mysql is not supported");
    assert!(matches!(err, StoreError::UnsupportedUrl { .. }));
    assert!(err.to_string().contains("sqlite://"), "{err}");
    assert!(!chain(&err).contains("hunter2"));
}

#[tokio::test]
async fn open_errors_never_show_the_password() {
    // A "database" that hangs up on every connection (a refused connection would be retried
    // until the pool's 30 s deadline, as when a database is still starting).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hang_up = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            drop(conn);
        }
    });
    let url =
        format!("postgres://linkbot:hunter2secret@127.0.0.1:{port}/linkbot?password=hunter2secret");
    let err = tokio::time::timeout(TEST_TIMEOUT, open(&url))
        .await
        .expect("bounded")
        .err()
        .expect("the fake database hangs up");
    hang_up.abort();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    let all = chain(&err);
    assert!(!all.contains("hunter2secret"), "{all}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.user_message().contains("LINKBOT_STORE_URL"));
}

#[tokio::test]
async fn sqlite_creates_the_file_on_first_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("new.db");
    assert!(!path.exists());
    let store = tokio::time::timeout(TEST_TIMEOUT, open(&format!("sqlite://{}", path.display())))
        .await
        .expect("bounded")
        .expect("open");
    assert!(path.exists());
    store.close().await;
}

#[tokio::test]
async fn sqlite_in_a_missing_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("no/such/dir/x.db").display());
    let err = tokio::time::timeout(TEST_TIMEOUT, open(&url))
        .await
        .expect("bounded")
        .err()
        .expect("cannot create a file in a missing directory");
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("x.db"), "{err}");
}

#[tokio::test]
async fn sqlite_in_memory_works_for_one_process() {
    let store = tokio::time::timeout(TEST_TIMEOUT, open("sqlite::memory:"))
        .await
        .expect("bounded")
        .expect("open");
    let k = key(LOC_A, Environment::Prod);
    let id = start(&*store, &k, "a").await;
    assert_eq!(claim(&*store, &k, "b", TTL).await, Claim::Joined(id));
}

/// A store's commits stay visible to other processes after another process opened the file
/// and closed it again (an operator's `linkbot status` while the bot runs). SQLite's
/// last-connection clean-up (checkpoint the WAL into the file, then delete `-wal` and `-shm`)
/// runs in whichever process gets the exclusive lock on the database file at close, so it
/// relies on every open store holding its shared lock there. A store that lost that lock
/// (POSIX drops all of a process's locks on a file when any descriptor of it is closed) goes
/// on committing into a deleted WAL: no other process sees those writes until it closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_commits_stay_visible_to_other_processes_after_one_came_and_went() {
    let body = async {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("shared.db").display());
        let store = open(&url).await.expect("open");
        let k = key(LOC_A, Environment::Prod);
        let id = start(&*store, &k, "bot").await;
        assert_eq!(in_flight_in_another_process(&url).await, 1);

        assert!(matches!(
            finish(&*store, id, "bot", "healthy").await,
            FinishOutcome::Recorded { .. }
        ));
        assert_eq!(
            in_flight_in_another_process(&url).await,
            0,
            "another process still sees the finished check running"
        );
        store.close().await;
    };
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("the test finishes in time");
}

/// Turns [`other_process_counts_the_checks_in_flight`] on: the URL of the store it reads.
const OTHER_PROCESS_URL: &str = "LINKBOT_TEST_OTHER_PROCESS_URL";

/// Runs [`other_process_counts_the_checks_in_flight`] in a process of its own (this test binary
/// again) and returns the count it printed.
async fn in_flight_in_another_process(url: &str) -> usize {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args([
        "--exact",
        "store::other_process_counts_the_checks_in_flight",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(OTHER_PROCESS_URL, url)
    .kill_on_drop(true);
    let out = tokio::time::timeout(TEST_TIMEOUT, cmd.output())
        .await
        .expect("the other process finishes in time")
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split_once("in flight: "))
        .and_then(|(_, n)| n.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no count printed: {stdout}"))
}

/// Not a test of its own: the other process of
/// `sqlite_commits_stay_visible_to_other_processes_after_one_came_and_went`, which runs it with
/// [`OTHER_PROCESS_URL`] set. Opens the store, prints how many checks are in flight and closes
/// the store cleanly (every connection, so SQLite's last-connection clean-up runs here).
#[tokio::test]
#[ignore = "the other process of a SQLite test, which runs it"]
async fn other_process_counts_the_checks_in_flight() {
    let Ok(url) = std::env::var(OTHER_PROCESS_URL) else {
        return;
    };
    let store = open(&url).await.expect("open");
    let n = store.in_flight().await.expect("in_flight").len();
    store.close().await;
    println!("in flight: {n}");
}

// ---- incidents ---------------------------------------------------------------------------

fn msg(channel: &str, ts: &str) -> MessageRef {
    MessageRef {
        channel: channel.into(),
        ts: ts.into(),
    }
}

async fn fire(store: &dyn Store, k: &CheckKey, ts: &str, at: DateTime<Utc>) -> Fired {
    store
        .fire_incident(k, &msg("C0ALERTS", ts), at)
        .await
        .expect("fire_incident")
}

async fn an_incident_opens_once_counts_repeats_and_resolves_once(db: TestDb) {
    let store = db.open().await;
    let k = key(LOC_A, Environment::Prod);
    let fired_at = db.now() - chrono::Duration::minutes(3);
    let Fired::Opened(first) = fire(&*store, &k, "1.1", fired_at).await else {
        panic!("the first firing opens the incident");
    };
    assert!(first.open);
    assert_eq!(first.fired_at, fired_at);
    assert_eq!(first.alert, msg("C0ALERTS", "1.1"));
    assert_eq!(first.repeat_count, 0);
    // Another environment of the same location is another incident.
    assert!(matches!(
        fire(&*store, &key(LOC_A, Environment::Stage), "1.2", db.now()).await,
        Fired::Opened(_)
    ));
    db.advance(Duration::from_secs(60));
    for n in 1..=2 {
        let Fired::Repeat(again) = fire(&*store, &k, &format!("2.{n}"), db.now()).await else {
            panic!("a firing while open repeats it");
        };
        assert_eq!((again.id, again.repeat_count), (first.id, n));
        assert_eq!(again.last_repeat_at, Some(db.now()));
        assert_eq!(again.alert, first.alert, "the first alert message stays");
    }
    db.advance(Duration::from_secs(60));
    let resolved = store
        .resolve_incident(&k, &msg("C0ALERTS", "3.1"))
        .await
        .expect("resolve")
        .expect("the open incident resolves");
    assert_eq!(resolved.id, first.id);
    assert!(!resolved.open);
    assert_eq!(resolved.resolved_at, Some(db.now()));
    assert_eq!(resolved.resolve_message, Some(msg("C0ALERTS", "3.1")));
    // Resolving again, or a key with no incident: nothing.
    assert_eq!(
        store
            .resolve_incident(&k, &msg("C0ALERTS", "3.2"))
            .await
            .expect("resolve"),
        None
    );
    assert_eq!(
        store
            .resolve_incident(&key(LOC_B, Environment::Prod), &msg("C0ALERTS", "3.3"))
            .await
            .expect("resolve"),
        None
    );
    assert_eq!(store.open_incident(&k).await.expect("open"), None);
    // The next firing opens a new incident.
    let Fired::Opened(next) = fire(&*store, &k, "4.1", db.now()).await else {
        panic!("a firing after resolution opens a new incident");
    };
    assert_ne!(next.id, first.id);
    let kinds: Vec<String> = store
        .incident_events(first.id)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["fired", "repeat", "repeat", "resolved"]);
}

async fn an_incident_records_its_check_verdict_fix_page_and_issue(db: TestDb) {
    let store = db.open().await;
    let k = key(LOC_A, Environment::Prod);
    let Fired::Opened(incident) = fire(&*store, &k, "1.1", db.now()).await else {
        panic!("opened");
    };
    let check = start(&*store, &k, "a").await;
    let diagnosis = msg("C0ALERTS", "1.5");
    assert!(store
        .set_incident_check(incident.id, None, &diagnosis)
        .await
        .expect("set the diagnosis message"));
    assert!(store
        .set_incident_check(incident.id, Some(check), &diagnosis)
        .await
        .expect("set check"));
    let shown = store
        .incident_for_message("C0ALERTS", "1.5")
        .await
        .expect("by message")
        .expect("the diagnosis message names the incident");
    assert_eq!((shown.id, shown.check_id), (incident.id, Some(check)));
    db.advance(Duration::from_secs(90));
    let diagnosed = store
        .incident_verdict(incident.id, "api_key_invalid")
        .await
        .expect("verdict")
        .expect("incident");
    assert_eq!(diagnosed.verdict.as_deref(), Some("api_key_invalid"));
    assert_eq!(diagnosed.diagnosed_at, Some(db.now()));
    // Only the first verdict is the incident's diagnosis.
    db.advance(Duration::from_secs(10));
    let later = store
        .incident_verdict(incident.id, "api_key_accepted")
        .await
        .expect("verdict")
        .expect("incident");
    assert_eq!(later.verdict.as_deref(), Some("api_key_invalid"));
    assert!(store
        .incident_fixed(incident.id, "api_key_accepted")
        .await
        .expect("fixed"));
    assert!(!store
        .incident_fixed(incident.id, "api_key_accepted")
        .await
        .expect("fixed once"));
    assert!(store
        .incident_paged(&k, "linkbot-prod-x", "U0BOB")
        .await
        .expect("paged"));
    assert!(store
        .incident_issue(&k, "org/repo", 7, "U0BOB")
        .await
        .expect("issue"));
    assert!(!store
        .incident_paged(&key(LOC_B, Environment::Prod), "k", "U0BOB")
        .await
        .expect("no incident, nothing recorded"));
    store
        .add_incident_event(incident.id, "rerun", Some("U0ALICE"), Some("check 9"))
        .await
        .expect("event");
    let now = store
        .open_incident(&k)
        .await
        .expect("open")
        .expect("still open");
    assert_eq!(now.pagerduty_dedup_key.as_deref(), Some("linkbot-prod-x"));
    assert_eq!(now.github_issue, Some(("org/repo".to_string(), 7)));
    assert_eq!(now.fixed_at, Some(db.now()));
    let events = store.incident_events(incident.id).await.expect("events");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "fired",
            "check_started",
            "verdict",
            "fixed",
            "page",
            "issue",
            "rerun"
        ]
    );
    assert_eq!(events[4].actor.as_deref(), Some("U0BOB"));
    assert_eq!(
        store
            .latest_incident(&loc(LOC_A))
            .await
            .expect("latest")
            .map(|i| i.id),
        Some(incident.id)
    );
}

async fn incidents_survive_a_restart_and_resolve_once_across_replicas(db: TestDb) {
    let k = key(LOC_A, Environment::Prod);
    let opened = {
        let store = db.open().await;
        let Fired::Opened(i) = fire(&*store, &k, "1.1", db.now()).await else {
            panic!("opened");
        };
        store.close().await;
        i
    };
    let replicas = [db.open().await, db.open().await];
    assert_eq!(
        replicas[1]
            .open_incident(&k)
            .await
            .expect("open")
            .map(|i| i.id),
        Some(opened.id),
        "the incident survives a restart"
    );
    // Both replicas fire a repeat and resolve together: one repeat each, one resolution.
    let mut tasks = Vec::new();
    for (n, store) in replicas.iter().enumerate() {
        let store = store.clone();
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            store
                .resolve_incident(&k, &msg("C0ALERTS", &format!("9.{n}")))
                .await
                .expect("resolve")
        }));
    }
    let mut won = 0;
    for t in tasks {
        if t.await.expect("task").is_some() {
            won += 1;
        }
    }
    assert_eq!(won, 1, "two replicas resolve the incident once");
    let events = replicas[0]
        .incident_events(opened.id)
        .await
        .expect("events");
    assert_eq!(events.iter().filter(|e| e.kind == "resolved").count(), 1);
}

// ---- silences ----------------------------------------------------------------------------

fn silence(
    id: &str,
    k: &CheckKey,
    incident: Option<linkbot::store::IncidentId>,
    at: DateTime<Utc>,
) -> SilenceRecord {
    SilenceRecord {
        silence_id: id.into(),
        key: k.clone(),
        incident_id: incident,
        created_by: "U0ALICE".into(),
        created_by_name: "alice".into(),
        starts_at: at,
        ends_at: at + chrono::Duration::days(7),
        until_resolved: true,
        thread: msg("C0ONCALL", "1.1"),
        message: None,
        active: true,
        expired_by: None,
        expired_at: None,
    }
}

async fn a_silence_is_recorded_found_by_its_message_and_expired_once(db: TestDb) {
    let k = key(LOC_A, Environment::Prod);
    let store = db.open().await;
    let Fired::Opened(incident) = fire(&*store, &k, "1.1", db.now()).await else {
        panic!("opened");
    };
    let mine = silence(
        "0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11",
        &k,
        Some(incident.id),
        db.now(),
    );
    let other = SilenceRecord {
        silence_id: "1c6f6c34-7a8c-4e1f-8e9b-6b2a1d4f3c22".into(),
        until_resolved: false,
        ..silence("x", &key(LOC_B, Environment::Prod), None, db.now())
    };
    // Made from a mention while no incident was open: "until resolved" ones go with the next
    // resolution of their location; timed ones, and other keys, do not.
    let loose_until = silence("2d7a7d45-8b9d-4f2a-9fac-7c3b2e5a4d33", &k, None, db.now());
    let loose_timed = SilenceRecord {
        silence_id: "3e8b8e56-9cae-4a3b-8abd-8d4c3f6b5e44".into(),
        until_resolved: false,
        ..loose_until.clone()
    };
    let stage = SilenceRecord {
        silence_id: "4f9c9f67-adbf-4b4c-9bce-9e5d4a7c6f55".into(),
        ..silence("x", &key(LOC_A, Environment::Stage), None, db.now())
    };
    for s in [&mine, &other, &loose_until, &loose_timed, &stage] {
        store.record_silence(s).await.expect("record");
    }
    // One id, one row: Alertmanager's id is unique.
    assert!(store.record_silence(&mine).await.is_err());
    assert_eq!(
        store.silence(&mine.silence_id).await.expect("read"),
        Some(mine.clone())
    );

    // Found by the message that shows it, once that message is recorded.
    assert_eq!(
        store
            .silence_for_message("C0ONCALL", "2.2")
            .await
            .expect("read"),
        None
    );
    assert!(store
        .set_silence_message(&mine.silence_id, "2.2")
        .await
        .expect("set"));
    assert!(!store
        .set_silence_message("unknown", "2.3")
        .await
        .expect("set"));
    let shown = store
        .silence_for_message("C0ONCALL", "2.2")
        .await
        .expect("read")
        .expect("found");
    assert_eq!(shown.message, Some(msg("C0ONCALL", "2.2")));
    assert_eq!(shown.silence_id, mine.silence_id);

    // The incident's active silences: its own, and the loose "until resolved" one of its key.
    let active: Vec<String> = store
        .active_silences(incident.id, &k)
        .await
        .expect("active")
        .into_iter()
        .map(|s| s.silence_id)
        .collect();
    assert_eq!(
        active,
        [mine.silence_id.clone(), loose_until.silence_id.clone()]
    );

    // Two replicas expire it together: one gets it.
    db.advance(Duration::from_secs(60));
    let replicas = [db.open().await, db.open().await];
    let mut tasks = Vec::new();
    for (n, s) in replicas.iter().enumerate() {
        let s = s.clone();
        let id = mine.silence_id.clone();
        tasks.push(tokio::spawn(async move {
            s.expire_silence(&id, &format!("U{n}"))
                .await
                .expect("expire")
        }));
    }
    let mut won = Vec::new();
    for t in tasks {
        if let Some(r) = t.await.expect("task") {
            won.push(r);
        }
    }
    assert_eq!(won.len(), 1, "expired once across replicas");
    assert!(!won[0].active);
    assert_eq!(won[0].expired_at, Some(db.now()));
    let left = store
        .active_silences(incident.id, &k)
        .await
        .expect("active");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].silence_id, loose_until.silence_id);
    assert_eq!(
        store
            .expire_silence(&mine.silence_id, "U9")
            .await
            .expect("again"),
        None
    );

    // Both audit kinds are accepted by the upgraded log.
    for kind in [AuditKind::Silence, AuditKind::Unsilence] {
        store
            .append_audit(&AuditEntry {
                kind,
                ..escalation(db.now(), LOC_A, "4h")
            })
            .await
            .expect("append");
    }
    let kinds: Vec<AuditKind> = store
        .audit(None, Some(&loc(LOC_A)), 10)
        .await
        .expect("audit")
        .iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&AuditKind::Silence) && kinds.contains(&AuditKind::Unsilence));
}

// ---- feedback ("Was this right?") ---------------------------------------------------------

fn vote<'a>(
    m: &'a MessageRef,
    k: &'a CheckKey,
    check: CheckId,
    user: &'a str,
    v: Vote,
) -> NewVote<'a> {
    NewVote {
        message: m,
        user,
        user_name: Some("someone"),
        check_id: Some(check),
        incident_id: None,
        key: k,
        verdict: "api_key_invalid",
        vote: v,
    }
}

async fn feedback_is_one_row_per_user_and_message_and_a_later_vote_replaces_it(db: TestDb) {
    let store = db.open().await;
    let k = key(LOC_A, Environment::Prod);
    let check = finished_check(&*store, &k).await;
    let m = msg("C0ONCALL", "1.100");
    let first = db.now();
    let alice = store
        .record_vote(&vote(&m, &k, check, "U0ALICE", Vote::Up))
        .await
        .expect("alice votes");
    assert_eq!(
        (
            alice.vote,
            alice.created_at,
            alice.updated_at,
            alice.check_id
        ),
        (Vote::Up, first, first, Some(check))
    );
    assert_eq!(alice.key, k);
    assert_eq!(alice.user_name.as_deref(), Some("someone"));
    db.advance(Duration::from_secs(1));
    store
        .record_vote(&vote(&m, &k, check, "U0BOB", Vote::Down))
        .await
        .expect("bob votes");
    db.advance(Duration::from_secs(1));
    let answered = store
        .record_feedback_answer(&m, "U0BOB", "region_mismatch", Some("it was <the> region"))
        .await
        .expect("answer")
        .expect("bob's row");
    assert_eq!(answered.actual_verdict.as_deref(), Some("region_mismatch"));
    assert_eq!(answered.comment.as_deref(), Some("it was <the> region"));
    assert_eq!(answered.vote, Vote::Down);
    // A second 👎 keeps the answer until a new form is answered; a 👍 replaces all of it.
    let again = store
        .record_vote(&vote(&m, &k, check, "U0BOB", Vote::Down))
        .await
        .expect("bob again");
    assert_eq!(again.actual_verdict.as_deref(), Some("region_mismatch"));
    db.advance(Duration::from_secs(1));
    let changed = store
        .record_vote(&vote(&m, &k, check, "U0BOB", Vote::Up))
        .await
        .expect("bob changes his mind");
    assert_eq!(
        (changed.vote, changed.actual_verdict, changed.comment),
        (Vote::Up, None, None)
    );
    assert_eq!(changed.created_at, first + chrono::Duration::seconds(1));
    assert_eq!(changed.updated_at, db.now());
    let rows = store.feedback_for_message(&m).await.expect("rows");
    let who: Vec<(&str, Vote)> = rows.iter().map(|r| (r.user.as_str(), r.vote)).collect();
    assert_eq!(who, [("U0ALICE", Vote::Up), ("U0BOB", Vote::Up)]);
    // No row, no answer; another message has no feedback.
    assert_eq!(
        store
            .record_feedback_answer(&m, "U0CAROL", "other", None)
            .await
            .expect("answer"),
        None
    );
    assert!(store
        .feedback_for_message(&msg("C0ONCALL", "1.200"))
        .await
        .expect("rows")
        .is_empty());
    // Feedback has its own audit kind, read back as written.
    let entry = AuditEntry {
        kind: AuditKind::Feedback,
        target: None,
        link: None,
        detail: Some("vote down, actually other: a comment".into()),
        ..escalation(db.now(), LOC_A, "x")
    };
    store.append_audit(&entry).await.expect("append feedback");
    assert!(store
        .audit(None, Some(&loc(LOC_A)), 10)
        .await
        .expect("audit")
        .contains(&entry));
}

async fn a_feedback_form_is_found_by_its_token_taken_once_and_forgotten_when_old(db: TestDb) {
    let replicas = [db.open().await, db.open().await];
    let k = key(LOC_B, Environment::Stage);
    let m = msg("C0ONCALL", "2.100");
    replicas[0]
        .open_feedback_form("tok1", &m, "U0BOB", &k)
        .await
        .expect("open");
    let form = replicas[1]
        .feedback_form("tok1")
        .await
        .expect("read")
        .expect("the form");
    assert_eq!(
        (
            form.message.clone(),
            form.user.as_str(),
            form.key.clone(),
            form.view_id.clone()
        ),
        (m.clone(), "U0BOB", k.clone(), None)
    );
    assert_eq!(form.created_at, db.now());
    assert!(replicas[1]
        .set_feedback_form_view("tok1", "V0001")
        .await
        .expect("view"));
    assert!(!replicas[1]
        .set_feedback_form_view("nope", "V0001")
        .await
        .expect("view"));
    assert_eq!(
        replicas[0]
            .feedback_form("tok1")
            .await
            .expect("read")
            .and_then(|f| f.view_id),
        Some("V0001".to_string())
    );
    assert_eq!(replicas[0].feedback_form("nope").await.expect("read"), None);
    // Two replicas take it at once: exactly one does, and then it is gone.
    let mut tasks = Vec::new();
    for store in &replicas {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.take_feedback_form("tok1").await.expect("take")
        }));
    }
    let mut took = 0;
    for t in tasks {
        if t.await.expect("task") {
            took += 1;
        }
    }
    assert_eq!(took, 1, "a form is taken once");
    assert_eq!(replicas[0].feedback_form("tok1").await.expect("read"), None);
    // A form past the retention is refused, and forgotten when the next one opens.
    replicas[0]
        .open_feedback_form("tok2", &m, "U0BOB", &k)
        .await
        .expect("open");
    db.advance(FEEDBACK_FORM_RETENTION + Duration::from_secs(1));
    assert_eq!(replicas[0].feedback_form("tok2").await.expect("read"), None);
    replicas[1]
        .open_feedback_form("tok3", &m, "U0BOB", &k)
        .await
        .expect("open");
    assert!(!replicas[0].take_feedback_form("tok2").await.expect("take"));
    assert!(replicas[0].take_feedback_form("tok3").await.expect("take"));
}

// ---- storms (migration 0008) ----------------------------------------------------------------

/// A valid location id for storm location `n`.
fn storm_loc(n: usize) -> LocationId {
    loc(&format!("c9st{n:016}"))
}

async fn a_storm_is_declared_once_across_replicas_and_ends_once(db: TestDb) {
    let replicas = [db.open().await, db.open().await];
    const WINDOW: Duration = Duration::from_secs(300);
    // 40 first firings of 40 locations, from two replicas at once, threshold 10.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = replicas[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let k = CheckKey {
                location: storm_loc(i),
                environment: Environment::Prod,
            };
            let fired = store
                .storm_fired(&k, &msg("C1", &format!("{i}.000100")), WINDOW, 10)
                .await
                .expect("storm_fired");
            (i, fired)
        }));
    }
    let mut calm = 0;
    let mut declared = Vec::new();
    let mut joined = 0;
    for t in tasks {
        let (_, fired) = t.await.expect("task");
        assert!(fired.ended.is_none());
        match fired.firing {
            StormFiring::Calm => calm += 1,
            StormFiring::Declared(storm, locations) => declared.push((storm, locations)),
            StormFiring::Joined { new, .. } => {
                assert!(new);
                joined += 1
            }
        }
    }
    assert_eq!(calm, 10, "the first 10 locations are no storm");
    assert_eq!(declared.len(), 1, "exactly one storm declared");
    assert_eq!(joined, 29);
    let (storm, at_declaration) = &declared[0];
    assert_eq!(at_declaration.len(), 11, "the window's locations");
    assert_eq!(
        at_declaration.iter().filter(|l| !l.checked).count(),
        1,
        "only the declaring one unchecked"
    );
    let all = replicas[1]
        .storm_locations(storm.id)
        .await
        .expect("locations");
    assert_eq!(all.len(), 40);
    assert_eq!(
        replicas[0]
            .active_storm(Environment::Prod)
            .await
            .expect("active")
            .map(|s| s.id),
        Some(storm.id)
    );
    assert_eq!(
        replicas[0]
            .active_storm(Environment::Stage)
            .await
            .expect("active"),
        None
    );
    // The message is recorded once.
    assert!(replicas[0]
        .set_storm_message(storm.id, &msg("C1", "9.1"))
        .await
        .expect("set"));
    assert!(!replicas[1]
        .set_storm_message(storm.id, &msg("C1", "9.2"))
        .await
        .expect("set"));
    // A repeat firing joins without being new.
    let again = replicas[1]
        .storm_fired(
            &CheckKey {
                location: storm_loc(3),
                environment: Environment::Prod,
            },
            &msg("C1", "3.2"),
            WINDOW,
            10,
        )
        .await
        .expect("storm_fired");
    assert!(matches!(
        again.firing,
        StormFiring::Joined { new: false, .. }
    ));
    // A verdict is recorded on the active storm's location.
    let k3 = CheckKey {
        location: storm_loc(3),
        environment: Environment::Prod,
    };
    let at = Whereabouts {
        datacenter: Some("wdc04".into()),
        region: Some("us-east".into()),
    };
    assert_eq!(
        replicas[0]
            .storm_verdict(&k3, "config_missing", "why", "why 7", &at)
            .await
            .expect("verdict"),
        Some(storm.id)
    );
    // Not quiet yet: nothing ends; after a quiet window exactly one replica ends it.
    assert!(replicas[0]
        .end_quiet_storm(storm.id, WINDOW)
        .await
        .expect("end")
        .is_none());
    db.advance(WINDOW + Duration::from_secs(1));
    let (a, b) = tokio::join!(
        replicas[0].end_quiet_storm(storm.id, WINDOW),
        replicas[1].end_quiet_storm(storm.id, WINDOW)
    );
    let ended: Vec<_> = [a.expect("end"), b.expect("end")]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(ended.len(), 1, "the storm ends once");
    assert!(!ended[0].active);
    // After the end, a firing starts counting again (no storm joined).
    let next = replicas[0]
        .storm_fired(
            &CheckKey {
                location: storm_loc(99),
                environment: Environment::Prod,
            },
            &msg("C1", "99.1"),
            WINDOW,
            10,
        )
        .await
        .expect("storm_fired");
    assert_eq!(next.firing, StormFiring::Calm);
    assert!(replicas[0]
        .storm_verdict(&k3, "config_missing", "why", "why 7", &at)
        .await
        .expect("verdict")
        .is_none());
}

async fn storm_checks_are_claimed_once_per_epoch_and_modes_move_as_asked(db: TestDb) {
    let replicas = [db.open().await, db.open().await];
    const WINDOW: Duration = Duration::from_secs(300);
    let mut storm = None;
    for i in 0..8 {
        let k = CheckKey {
            location: storm_loc(i),
            environment: Environment::Stage,
        };
        if let StormFiring::Declared(s, _) = replicas[0]
            .storm_fired(&k, &msg("C1", &format!("{i}.1")), WINDOW, 2)
            .await
            .expect("storm_fired")
            .firing
        {
            storm = Some(s);
        }
    }
    let storm = storm.expect("declared at the third location");
    assert_eq!(storm.mode, StormMode::Sample);
    // The sample: the declaring location (unchecked) is returned to be checked; the others not.
    let to_check = replicas[0]
        .set_storm_sample(storm.id, &[storm_loc(0), storm_loc(2)])
        .await
        .expect("sample");
    assert_eq!(
        to_check
            .iter()
            .map(|l| l.key.location.clone())
            .collect::<Vec<_>>(),
        vec![storm_loc(2)]
    );
    // Not checking within the budget: nothing to claim.
    assert!(replicas[0]
        .claim_storm_check(storm.id, storm.epoch, "a")
        .await
        .expect("claim")
        .is_none());
    let budget = replicas[1]
        .set_storm_mode(storm.id, &[StormMode::Sample], StormMode::Budget)
        .await
        .expect("mode")
        .expect("moved");
    assert_eq!(budget.epoch, storm.epoch + 1);
    assert!(
        replicas[0]
            .set_storm_mode(storm.id, &[StormMode::Sample], StormMode::Budget)
            .await
            .expect("mode")
            .is_none(),
        "moves once"
    );
    // Both replicas claim concurrently: each unchecked location once (8 - 3 checked = 5).
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = replicas[i % 2].clone();
        let (id, epoch) = (storm.id, budget.epoch);
        tasks.push(tokio::spawn(async move {
            store
                .claim_storm_check(id, epoch, "a")
                .await
                .expect("claim")
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        if let Some(l) = t.await.expect("task") {
            claimed.push(l.key.location);
        }
    }
    claimed.sort();
    claimed.dedup();
    assert_eq!(claimed.len(), 5, "{claimed:?}");
    // A stale epoch claims nothing; Stop then Check all raises the epoch again.
    let stopped = replicas[0]
        .set_storm_mode(
            storm.id,
            &[StormMode::Sample, StormMode::Budget],
            StormMode::Stopped,
        )
        .await
        .expect("mode")
        .expect("stopped");
    assert_eq!(stopped.mode, StormMode::Stopped);
    let again = replicas[0]
        .set_storm_mode(storm.id, &[StormMode::Stopped], StormMode::Budget)
        .await
        .expect("mode")
        .expect("budget");
    assert_eq!(again.epoch, budget.epoch + 1);
    assert!(replicas[1]
        .claim_storm_check(storm.id, budget.epoch, "b")
        .await
        .expect("claim")
        .is_none());
}

// ---- storm lifecycle (migration 0009) ------------------------------------------------------

/// A storm of `Environment::Stage` declared at the third of `n` locations (threshold 2).
async fn stage_storm(store: &dyn Store, n: usize) -> linkbot::store::Storm {
    let mut storm = None;
    for i in 0..n {
        let k = CheckKey {
            location: storm_loc(i),
            environment: Environment::Stage,
        };
        if let StormFiring::Declared(s, _) = store
            .storm_fired(
                &k,
                &msg("C1", &format!("{i}.1")),
                Duration::from_secs(300),
                2,
            )
            .await
            .expect("storm_fired")
            .firing
        {
            storm = Some(s);
        }
    }
    storm.expect("declared at the third location")
}

async fn storm_pointers_are_claimed_once_released_and_answered_across_replicas(db: TestDb) {
    const CLAIM: Duration = Duration::from_secs(30);
    let replicas = [db.open().await, db.open().await];
    // Locations 0..2 make the storm (the declaration waits for no pointer); 3..6 join it.
    let storm = stage_storm(replicas[0].as_ref(), 3).await;
    assert!(replicas[0]
        .claim_storm_pointer(storm.id, "a", CLAIM)
        .await
        .expect("claim")
        .is_none());
    replicas[0]
        .storm_point(storm.id, &storm_loc(2))
        .await
        .expect("the declaring alert waits");
    for i in 3..6 {
        let k = CheckKey {
            location: storm_loc(i),
            environment: Environment::Stage,
        };
        replicas[1]
            .storm_fired(
                &k,
                &msg("C1", &format!("{i}.1")),
                Duration::from_secs(300),
                2,
            )
            .await
            .expect("joined");
    }
    assert_eq!(
        replicas[1]
            .storms_to_resume(Duration::from_secs(3600))
            .await
            .expect("resume")
            .iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        vec![storm.id]
    );
    // Both replicas claim at once: each waiting alert once, in firing order per replica.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = replicas[i % 2].clone();
        let owner = ["a", "b"][i % 2];
        tasks.push(tokio::spawn(async move {
            store
                .claim_storm_pointer(storm.id, owner, CLAIM)
                .await
                .expect("claim")
                .map(|l| (l, owner))
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        if let Some(c) = t.await.expect("task") {
            claimed.push(c);
        }
    }
    let mut locations: Vec<_> = claimed
        .iter()
        .map(|(l, _)| l.key.location.clone())
        .collect();
    locations.sort();
    assert_eq!(
        locations,
        (2..6).map(storm_loc).collect::<Vec<_>>(),
        "each waiting alert claimed once"
    );
    let alert_of_4 = claimed
        .iter()
        .find(|(l, _)| l.key.location == storm_loc(4))
        .map(|(l, _)| l.alert.clone());
    assert_eq!(alert_of_4, Some(msg("C1", "4.1")));
    // 2 is posted; 3, 4 and 5 stay claimed (a post Slack refused keeps its claim until it
    // expires).
    replicas[0]
        .storm_pointed(storm.id, &storm_loc(2))
        .await
        .expect("posted");
    assert!(replicas[1]
        .claim_storm_pointer(storm.id, "b", CLAIM)
        .await
        .expect("claim")
        .is_none());
    // "a" stops gracefully and hands its claims back; "b" dies and its claims expire.
    let held_by_a = claimed
        .iter()
        .filter(|(l, o)| *o == "a" && l.key.location != storm_loc(2))
        .count();
    assert_eq!(
        replicas[0]
            .release_storm_pointers("a")
            .await
            .expect("release"),
        held_by_a as u64
    );
    let mut after_release = Vec::new();
    while let Some(l) = replicas[0]
        .claim_storm_pointer(storm.id, "c", CLAIM)
        .await
        .expect("claim")
    {
        after_release.push(l.key.location);
    }
    assert_eq!(after_release.len(), held_by_a, "{after_release:?}");
    db.advance(CLAIM + Duration::from_secs(1));
    let mut after_expiry = Vec::new();
    while let Some(l) = replicas[0]
        .claim_storm_pointer(storm.id, "c", CLAIM)
        .await
        .expect("claim")
    {
        replicas[0]
            .storm_pointed(storm.id, &l.key.location)
            .await
            .expect("posted");
        after_expiry.push(l.key.location);
    }
    after_expiry.sort();
    assert_eq!(after_expiry, (3..6).map(storm_loc).collect::<Vec<_>>());
    // A location the budget checks is answered by its check; one firing again under another
    // alert waits again, under that alert.
    let budget = replicas[0]
        .set_storm_mode(storm.id, &[StormMode::Sample], StormMode::Budget)
        .await
        .expect("mode")
        .expect("budget");
    let mut checked = Vec::new();
    while let Some(l) = replicas[0]
        .claim_storm_check(storm.id, budget.epoch, "a")
        .await
        .expect("claim")
    {
        checked.push(l.key.location);
    }
    assert_eq!(checked.len(), 4, "{checked:?}");
    assert!(replicas[0]
        .claim_storm_pointer(storm.id, "a", CLAIM)
        .await
        .expect("claim")
        .is_none());
    replicas[1]
        .storm_fired(
            &CheckKey {
                location: storm_loc(4),
                environment: Environment::Stage,
            },
            &msg("C1", "4.2"),
            Duration::from_secs(300),
            2,
        )
        .await
        .expect("again");
    let refired = replicas[0]
        .claim_storm_pointer(storm.id, "a", CLAIM)
        .await
        .expect("claim")
        .expect("the alert that fired again");
    assert_eq!(refired.alert, msg("C1", "4.2"));
    replicas[0]
        .storm_pointed(storm.id, &storm_loc(4))
        .await
        .expect("posted");
    // Nothing waits: an ended storm is not taken up again.
    db.advance(Duration::from_secs(301));
    replicas[0]
        .end_quiet_storm(storm.id, Duration::from_secs(300))
        .await
        .expect("end")
        .expect("ended");
    assert!(replicas[0]
        .storms_to_resume(Duration::from_secs(3600))
        .await
        .expect("resume")
        .is_empty());
}

async fn a_stale_storm_checker_is_taken_over_once(db: TestDb) {
    const STALE: Duration = Duration::from_secs(10);
    let replicas = [db.open().await, db.open().await, db.open().await];
    let storm = stage_storm(replicas[0].as_ref(), 6).await;
    // Not checking within the budget: nothing to take over.
    assert!(replicas[1]
        .take_storm_pump(storm.id, "b", STALE)
        .await
        .expect("take")
        .is_none());
    let budget = replicas[0]
        .set_storm_mode(storm.id, &[StormMode::Sample], StormMode::Budget)
        .await
        .expect("mode")
        .expect("budget");
    let first = replicas[0]
        .claim_storm_check(storm.id, budget.epoch, "a")
        .await
        .expect("claim")
        .expect("a location");
    let pumped = replicas[1]
        .storm(storm.id)
        .await
        .expect("storm")
        .expect("storm");
    assert_eq!(pumped.pumped_by.as_deref(), Some("a"));
    assert_eq!(pumped.pumped_at, Some(db.now()));
    // A fresh heartbeat is not taken over.
    db.advance(STALE / 2);
    assert!(replicas[1]
        .take_storm_pump(storm.id, "b", STALE)
        .await
        .expect("take")
        .is_none());
    // "a" dies: once stale, one of two replicas takes over, at a new epoch.
    db.advance(STALE);
    let (b, c) = tokio::join!(
        replicas[1].take_storm_pump(storm.id, "b", STALE),
        replicas[2].take_storm_pump(storm.id, "c", STALE)
    );
    let taken: Vec<_> = [b.expect("take"), c.expect("take")]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(taken.len(), 1, "taken over once");
    let taken = &taken[0];
    assert_eq!(taken.epoch, budget.epoch + 1);
    let owner = taken.pumped_by.clone().expect("the new checker");
    // The old checker claims nothing more; the new one checks the rest, each location once.
    assert!(replicas[0]
        .claim_storm_check(storm.id, budget.epoch, "a")
        .await
        .expect("claim")
        .is_none());
    let mut rest = Vec::new();
    while let Some(l) = replicas[1]
        .claim_storm_check(storm.id, taken.epoch, &owner)
        .await
        .expect("claim")
    {
        rest.push(l.key.location);
    }
    assert!(!rest.contains(&first.key.location));
    assert_eq!(
        rest.len(),
        3,
        "6 locations, 2 checked before the storm, 1 by `a`: {rest:?}"
    );
    // Nothing left unchecked: a stale heartbeat is not taken over.
    db.advance(STALE * 2);
    assert!(replicas[2]
        .take_storm_pump(storm.id, "c", STALE)
        .await
        .expect("take")
        .is_none());
}

/// Migration 0010 and the report: a storm location keeps its reason both as compared and as
/// said; the report's rows name the incidents whose alert the storm answered with a pointer and
/// never checked (not those checked before the storm, nor one the sample takes).
async fn a_storm_keeps_the_reason_text_and_the_report_finds_the_incidents_it_pointed(db: TestDb) {
    let store = db.open().await;
    const WINDOW: Duration = Duration::from_secs(300);
    let mut incidents = Vec::new();
    for i in 0..4 {
        let k = CheckKey {
            location: storm_loc(100 + i),
            environment: Environment::Stage,
        };
        let ts = format!("{i}.000200");
        let Fired::Opened(incident) = fire(&*store, &k, &ts, db.now()).await else {
            panic!("a first firing opens its incident");
        };
        incidents.push(incident.id);
        store
            .storm_fired(&k, &msg("C0ALERTS", &ts), WINDOW, 2)
            .await
            .expect("storm_fired");
    }
    // Two checked before the storm, the third declared it, the fourth joined: 2 and 3 pointed.
    let storm = store
        .active_storm(Environment::Stage)
        .await
        .expect("active")
        .expect("a storm");
    let k0 = CheckKey {
        location: storm_loc(100),
        environment: Environment::Stage,
    };
    store
        .storm_verdict(
            &k0,
            "iam_unreachable",
            "IAM answered HTTP # (BXNIM#E)",
            "IAM answered HTTP 503 (BXNIM0415E)",
            &Whereabouts::default(),
        )
        .await
        .expect("verdict");
    let first = store
        .storm_locations(storm.id)
        .await
        .expect("locations")
        .into_iter()
        .find(|l| l.key == k0)
        .expect("the location");
    assert_eq!(
        first.reason.as_deref(),
        Some("IAM answered HTTP # (BXNIM#E)")
    );
    assert_eq!(
        first.reason_text.as_deref(),
        Some("IAM answered HTTP 503 (BXNIM0415E)")
    );
    let period = (
        db.now() - chrono::Duration::hours(1),
        db.now() + chrono::Duration::minutes(1),
    );
    let rows = store.report_rows(period.0, period.1).await.expect("rows");
    assert_eq!(rows.storm_linked, vec![incidents[2], incidents[3]]);
    // The sample takes the third: checked, so no longer merely linked.
    store
        .set_storm_sample(storm.id, &[storm_loc(102)])
        .await
        .expect("sample");
    let rows = store.report_rows(period.0, period.1).await.expect("rows");
    assert_eq!(rows.storm_linked, vec![incidents[3]]);
}
