//! The coordinator's end paths with a store that fails on demand: whatever fails while a
//! check runs, every waiter it knows hears how the check ended (a verdict or a failure), and
//! none is left on its progress message. The engine runs against the simulated directory and
//! Jenkins; the sink records what it was asked to show.

use chrono::{DateTime, Utc};
use linkbot::check::coordinator::{Coordinator, Requested, Sink};
use linkbot::check::progress::{ProgressView, Stage};
use linkbot::check::Engine;
use linkbot::diagnosis::verdict::{Report, VerdictCode};
use linkbot::domain::{Environment, LocationId};
use linkbot::metrics::Metrics;
use linkbot::sim::world::World;
use linkbot::store::{
    AuditEntry, CheckId, CheckKey, Claim, Feedback, FeedbackForm, FinishOutcome, FinishedCheck,
    Fired, InFlight, Incident, IncidentEvent, IncidentId, MessageRef, NewVote, PageClaim,
    RequestSource, Requester, SilenceRecord, Store, StoreError, Storm, StormFired, StormId,
    StormLocation, StormMode, Waiter, Whereabouts,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

const WAIT: Duration = Duration::from_secs(15);

/// A real SQLite store whose `waiters` fails while `fail_waiters` is set.
struct FailingStore {
    inner: Arc<dyn Store>,
    fail_waiters: AtomicBool,
}

fn broken(op: &'static str) -> StoreError {
    StoreError::Query {
        op,
        source: sqlx::Error::PoolClosed,
    }
}

#[async_trait::async_trait]
impl Store for FailingStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn claim_check(
        &self,
        key: &CheckKey,
        owner: &str,
        lease: Duration,
        ttl: Duration,
        requested_by: &Requester,
    ) -> Result<Claim, StoreError> {
        self.inner
            .claim_check(key, owner, lease, ttl, requested_by)
            .await
    }
    async fn add_waiter(&self, check_id: CheckId, waiter: &Waiter) -> Result<bool, StoreError> {
        self.inner.add_waiter(check_id, waiter).await
    }
    async fn waiters(&self, check_id: CheckId) -> Result<Vec<Waiter>, StoreError> {
        if self.fail_waiters.load(Ordering::SeqCst) {
            return Err(broken("waiters"));
        }
        self.inner.waiters(check_id).await
    }
    async fn set_stage(
        &self,
        check_id: CheckId,
        owner: &str,
        stage: &str,
        job: Option<&serde_json::Value>,
    ) -> Result<bool, StoreError> {
        self.inner.set_stage(check_id, owner, stage, job).await
    }
    async fn renew_leases(
        &self,
        check_ids: &[CheckId],
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<CheckId>, StoreError> {
        self.inner.renew_leases(check_ids, owner, lease).await
    }
    async fn finish_check(
        &self,
        check_id: CheckId,
        owner: &str,
        verdict: &str,
        report: &serde_json::Value,
        build_url: Option<&str>,
    ) -> Result<FinishOutcome, StoreError> {
        self.inner
            .finish_check(check_id, owner, verdict, report, build_url)
            .await
    }
    async fn finished(&self, check_id: CheckId) -> Result<Option<FinishedCheck>, StoreError> {
        self.inner.finished(check_id).await
    }
    async fn in_flight(&self) -> Result<Vec<InFlight>, StoreError> {
        self.inner.in_flight().await
    }
    async fn take_over_expired(
        &self,
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<InFlight>, StoreError> {
        self.inner.take_over_expired(owner, lease).await
    }
    async fn latest_finished(&self, key: &CheckKey) -> Result<Option<FinishedCheck>, StoreError> {
        self.inner.latest_finished(key).await
    }
    async fn record_shown(&self, check_id: CheckId, message: &Waiter) -> Result<bool, StoreError> {
        self.inner.record_shown(check_id, message).await
    }
    async fn shown_result(
        &self,
        channel: &str,
        message_ts: &str,
    ) -> Result<Option<FinishedCheck>, StoreError> {
        self.inner.shown_result(channel, message_ts).await
    }
    async fn claim_page(
        &self,
        check_id: CheckId,
        key: &CheckKey,
        target: &str,
        user: &str,
        stale: Duration,
    ) -> Result<PageClaim, StoreError> {
        self.inner
            .claim_page(check_id, key, target, user, stale)
            .await
    }
    async fn page_sent(
        &self,
        check_id: CheckId,
        claim: &str,
        link: &str,
    ) -> Result<bool, StoreError> {
        self.inner.page_sent(check_id, claim, link).await
    }
    async fn page_failed(&self, check_id: CheckId, claim: &str) -> Result<bool, StoreError> {
        self.inner.page_failed(check_id, claim).await
    }
    async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        self.inner.release_leases(owner).await
    }
    async fn first_seen(&self, event_key: &str) -> Result<bool, StoreError> {
        self.inner.first_seen(event_key).await
    }
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.inner.append_audit(entry).await
    }
    async fn audit(
        &self,
        since: Option<DateTime<Utc>>,
        location: Option<&LocationId>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.inner.audit(since, location, limit).await
    }
    async fn fire_incident(
        &self,
        key: &CheckKey,
        alert: &MessageRef,
        fired_at: DateTime<Utc>,
    ) -> Result<Fired, StoreError> {
        self.inner.fire_incident(key, alert, fired_at).await
    }
    async fn open_incident(&self, key: &CheckKey) -> Result<Option<Incident>, StoreError> {
        self.inner.open_incident(key).await
    }
    async fn latest_incident(&self, location: &LocationId) -> Result<Option<Incident>, StoreError> {
        self.inner.latest_incident(location).await
    }
    async fn incident_for_message(
        &self,
        channel: &str,
        ts: &str,
    ) -> Result<Option<Incident>, StoreError> {
        self.inner.incident_for_message(channel, ts).await
    }
    async fn set_incident_check(
        &self,
        id: IncidentId,
        check_id: Option<CheckId>,
        diagnosis: &MessageRef,
    ) -> Result<bool, StoreError> {
        self.inner.set_incident_check(id, check_id, diagnosis).await
    }
    async fn incident_verdict(
        &self,
        id: IncidentId,
        verdict: &str,
    ) -> Result<Option<Incident>, StoreError> {
        self.inner.incident_verdict(id, verdict).await
    }
    async fn incident_fixed(&self, id: IncidentId, detail: &str) -> Result<bool, StoreError> {
        self.inner.incident_fixed(id, detail).await
    }
    async fn incident_paged(
        &self,
        key: &CheckKey,
        dedup_key: &str,
        actor: &str,
    ) -> Result<bool, StoreError> {
        self.inner.incident_paged(key, dedup_key, actor).await
    }
    async fn incident_issue(
        &self,
        key: &CheckKey,
        repo: &str,
        number: i64,
        actor: &str,
    ) -> Result<bool, StoreError> {
        self.inner.incident_issue(key, repo, number, actor).await
    }
    async fn resolve_incident(
        &self,
        key: &CheckKey,
        by: &MessageRef,
    ) -> Result<Option<Incident>, StoreError> {
        self.inner.resolve_incident(key, by).await
    }
    async fn add_incident_event(
        &self,
        id: IncidentId,
        kind: &str,
        actor: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        self.inner.add_incident_event(id, kind, actor, detail).await
    }
    async fn incident_events(&self, id: IncidentId) -> Result<Vec<IncidentEvent>, StoreError> {
        self.inner.incident_events(id).await
    }
    // The report (delegated).
    async fn report_rows(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<linkbot::store::ReportRows, StoreError> {
        self.inner.report_rows(since, until).await
    }
    async fn claim_report_slot(
        &self,
        slot: DateTime<Utc>,
        channel: &str,
        owner: &str,
        stale: Duration,
    ) -> Result<linkbot::store::ReportSlotClaim, StoreError> {
        self.inner
            .claim_report_slot(slot, channel, owner, stale)
            .await
    }
    async fn finish_report_slot(
        &self,
        slot: DateTime<Utc>,
        claim: &str,
        posted_ts: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.inner.finish_report_slot(slot, claim, posted_ts).await
    }
    async fn record_silence(&self, silence: &SilenceRecord) -> Result<(), StoreError> {
        self.inner.record_silence(silence).await
    }
    async fn set_silence_message(
        &self,
        silence_id: &str,
        message_ts: &str,
    ) -> Result<bool, StoreError> {
        self.inner.set_silence_message(silence_id, message_ts).await
    }
    async fn silence_for_message(
        &self,
        channel: &str,
        ts: &str,
    ) -> Result<Option<SilenceRecord>, StoreError> {
        self.inner.silence_for_message(channel, ts).await
    }
    async fn silence(&self, silence_id: &str) -> Result<Option<SilenceRecord>, StoreError> {
        self.inner.silence(silence_id).await
    }
    async fn active_silences(
        &self,
        id: IncidentId,
        key: &CheckKey,
    ) -> Result<Vec<SilenceRecord>, StoreError> {
        self.inner.active_silences(id, key).await
    }
    async fn expire_silence(
        &self,
        silence_id: &str,
        by: &str,
    ) -> Result<Option<SilenceRecord>, StoreError> {
        self.inner.expire_silence(silence_id, by).await
    }
    async fn record_vote(&self, vote: &NewVote<'_>) -> Result<Feedback, StoreError> {
        self.inner.record_vote(vote).await
    }
    async fn record_feedback_answer(
        &self,
        message: &MessageRef,
        user: &str,
        actual_verdict: &str,
        comment: Option<&str>,
    ) -> Result<Option<Feedback>, StoreError> {
        self.inner
            .record_feedback_answer(message, user, actual_verdict, comment)
            .await
    }
    async fn feedback_for_message(
        &self,
        message: &MessageRef,
    ) -> Result<Vec<Feedback>, StoreError> {
        self.inner.feedback_for_message(message).await
    }
    async fn open_feedback_form(
        &self,
        token: &str,
        message: &MessageRef,
        user: &str,
        key: &CheckKey,
    ) -> Result<(), StoreError> {
        self.inner
            .open_feedback_form(token, message, user, key)
            .await
    }
    async fn set_feedback_form_view(&self, token: &str, view_id: &str) -> Result<bool, StoreError> {
        self.inner.set_feedback_form_view(token, view_id).await
    }
    async fn feedback_form(&self, token: &str) -> Result<Option<FeedbackForm>, StoreError> {
        self.inner.feedback_form(token).await
    }
    async fn take_feedback_form(&self, token: &str) -> Result<bool, StoreError> {
        self.inner.take_feedback_form(token).await
    }
    async fn storm_fired(
        &self,
        key: &CheckKey,
        alert: &MessageRef,
        window: Duration,
        threshold: u32,
    ) -> Result<StormFired, StoreError> {
        self.inner.storm_fired(key, alert, window, threshold).await
    }
    async fn storm(&self, id: StormId) -> Result<Option<Storm>, StoreError> {
        self.inner.storm(id).await
    }
    async fn active_storm(&self, environment: Environment) -> Result<Option<Storm>, StoreError> {
        self.inner.active_storm(environment).await
    }
    async fn storm_locations(&self, id: StormId) -> Result<Vec<StormLocation>, StoreError> {
        self.inner.storm_locations(id).await
    }
    async fn set_storm_message(
        &self,
        id: StormId,
        message: &MessageRef,
    ) -> Result<bool, StoreError> {
        self.inner.set_storm_message(id, message).await
    }
    async fn set_storm_iam(&self, id: StormId, health: &str) -> Result<(), StoreError> {
        self.inner.set_storm_iam(id, health).await
    }
    async fn set_storm_whereabouts(
        &self,
        id: StormId,
        location: &LocationId,
        at: &Whereabouts,
    ) -> Result<(), StoreError> {
        self.inner.set_storm_whereabouts(id, location, at).await
    }
    async fn set_storm_sample(
        &self,
        id: StormId,
        locations: &[LocationId],
    ) -> Result<Vec<StormLocation>, StoreError> {
        self.inner.set_storm_sample(id, locations).await
    }
    async fn storm_verdict(
        &self,
        key: &CheckKey,
        verdict: &str,
        reason: &str,
        reason_text: &str,
        at: &Whereabouts,
    ) -> Result<Option<StormId>, StoreError> {
        self.inner
            .storm_verdict(key, verdict, reason, reason_text, at)
            .await
    }
    async fn set_storm_mode(
        &self,
        id: StormId,
        from: &[StormMode],
        to: StormMode,
    ) -> Result<Option<Storm>, StoreError> {
        self.inner.set_storm_mode(id, from, to).await
    }
    async fn claim_storm_check(
        &self,
        id: StormId,
        epoch: i64,
        owner: &str,
    ) -> Result<Option<StormLocation>, StoreError> {
        self.inner.claim_storm_check(id, epoch, owner).await
    }
    async fn take_storm_pump(
        &self,
        id: StormId,
        owner: &str,
        stale: Duration,
    ) -> Result<Option<Storm>, StoreError> {
        self.inner.take_storm_pump(id, owner, stale).await
    }
    async fn storm_point(&self, id: StormId, location: &LocationId) -> Result<(), StoreError> {
        self.inner.storm_point(id, location).await
    }
    async fn claim_storm_pointer(
        &self,
        id: StormId,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<StormLocation>, StoreError> {
        self.inner.claim_storm_pointer(id, owner, lease).await
    }
    async fn storm_pointed(&self, id: StormId, location: &LocationId) -> Result<(), StoreError> {
        self.inner.storm_pointed(id, location).await
    }
    async fn release_storm_pointers(&self, owner: &str) -> Result<u64, StoreError> {
        self.inner.release_storm_pointers(owner).await
    }
    async fn storms_to_resume(&self, since: Duration) -> Result<Vec<Storm>, StoreError> {
        self.inner.storms_to_resume(since).await
    }
    async fn end_quiet_storm(
        &self,
        id: StormId,
        quiet: Duration,
    ) -> Result<Option<Storm>, StoreError> {
        self.inner.end_quiet_storm(id, quiet).await
    }
    async fn close(&self) {
        self.inner.close().await
    }
}

/// What a sink was asked to show, per waiter message.
#[derive(Debug, Clone, PartialEq)]
enum Shown {
    Verdict(VerdictCode),
    Failure(String),
}

#[derive(Default)]
struct RecordingSink {
    shown: Mutex<Vec<(String, Shown)>>,
    changed: Notify,
    /// Panics when asked to show the "Queued" line: a bug that kills the check's task.
    panic_when_queued: AtomicBool,
    /// The messages shown a progress past the slot queue (their check holds a slot).
    running: Mutex<Vec<String>>,
}

impl RecordingSink {
    fn record(&self, waiters: &[Waiter], shown: Shown) {
        let mut all = self.shown.lock().unwrap();
        for w in waiters {
            all.push((w.message_ts.clone(), shown.clone()));
        }
        self.changed.notify_waiters();
    }

    /// Waits (bounded) until `message_ts` was shown a progress past the slot queue: its check
    /// holds a slot.
    async fn holds_a_slot(&self, message_ts: &str) {
        let seen = tokio::time::timeout(WAIT, async {
            loop {
                let notified = self.changed.notified();
                if self
                    .running
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|ts| ts == message_ts)
                {
                    return;
                }
                notified.await;
            }
        })
        .await;
        seen.unwrap_or_else(|_| panic!("message {message_ts} never showed its check running"))
    }

    /// Waits (bounded) until `message_ts` was shown an end (verdict or failure); returns it.
    async fn end_of(&self, message_ts: &str) -> Shown {
        let found = tokio::time::timeout(WAIT, async {
            loop {
                let notified = self.changed.notified();
                if let Some((_, s)) = self
                    .shown
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|(ts, _)| ts == message_ts)
                {
                    return s.clone();
                }
                notified.await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("message {message_ts} was left on its progress"))
    }
}

#[async_trait::async_trait]
impl Sink for RecordingSink {
    async fn progress(&self, waiters: &[Waiter], progress: &ProgressView) -> bool {
        let queued = progress
            .stages
            .iter()
            .any(|s| matches!(s, Stage::WaitingForSlot { .. }));
        if queued && self.panic_when_queued.load(Ordering::SeqCst) {
            panic!("injected: the sink fails on the queued line");
        }
        if !queued && !progress.stages.is_empty() {
            let mut running = self.running.lock().unwrap();
            running.extend(waiters.iter().map(|w| w.message_ts.clone()));
            self.changed.notify_waiters();
        }
        true
    }
    async fn finished(&self, waiters: &[Waiter], report: &Report, _: Option<Duration>) {
        self.record(waiters, Shown::Verdict(report.verdict));
    }
    async fn failed(&self, waiters: &[Waiter], _: &CheckKey, reason: &str) {
        self.record(waiters, Shown::Failure(reason.to_string()));
    }
}

fn waiter(ts: &str) -> Waiter {
    Waiter {
        channel: "C0ONCALL".into(),
        message_ts: ts.into(),
        thread_ts: Some("1800000000.000001".into()),
        user: Some("U0ENGINEER".into()),
    }
}

/// A coordinator over the simulated world's directory and Jenkins, with `store` and `sink`.
fn coordinator(
    world: &World,
    config: linkbot::config::Config,
    store: Arc<dyn Store>,
    sink: Arc<RecordingSink>,
) -> Coordinator {
    let engine = Engine::new(
        Arc::new(config),
        &world.secrets(),
        &linkbot::net::Net::direct(),
        Metrics::new(),
    )
    .expect("an engine");
    Coordinator::new(
        engine,
        store,
        sink,
        "coord-test".into(),
        Duration::from_secs(10),
    )
}

/// Asks for a check of `location` (prod) whose answer goes to the message `ts`.
async fn ask(coordinator: &Coordinator, location: LocationId, ts: &str) -> Requested {
    let requester = Requester {
        user: Some("U0ENGINEER".into()),
        channel: Some("C0ONCALL".into()),
        source: RequestSource::Mention,
    };
    let req = CheckKey {
        location,
        environment: Environment::Prod,
    };
    coordinator
        .request(&req, &requester, waiter(ts), false)
        .await
        .expect("the request is taken")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_whose_store_fails_while_it_runs_still_ends_on_its_verdict() {
    let world = World::start().await.expect("the simulated world starts");
    let config = world.config(&world.sqlite_url("coord")).unwrap();
    let inner = linkbot::store::open(&world.sqlite_url("coord"))
        .await
        .unwrap();
    let store = Arc::new(FailingStore {
        inner,
        fail_waiters: AtomicBool::new(false),
    });
    let sink = Arc::new(RecordingSink::default());
    let coordinator = coordinator(&world, config, store.clone(), sink.clone());

    // A healthy store: the verdict.
    let started = ask(
        &coordinator,
        world.scenario(VerdictCode::ConfigMissing, 0),
        "1.000001",
    )
    .await;
    assert!(matches!(started, Requested::Started(_)), "{started:?}");
    assert_eq!(
        sink.end_of("1.000001").await,
        Shown::Verdict(VerdictCode::ConfigMissing)
    );

    // The store fails once the check is claimed: the drive cannot read its waiters. The
    // check goes on without them, and the waiter that asked still hears how it ended, from
    // the waiters the result is recorded with.
    store.fail_waiters.store(true, Ordering::SeqCst);
    ask(
        &coordinator,
        world.scenario(VerdictCode::ApiKeyInvalid, 1),
        "1.000002",
    )
    .await;
    assert_eq!(
        sink.end_of("1.000002").await,
        Shown::Verdict(VerdictCode::ApiKeyInvalid)
    );
    coordinator.abort_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_whose_task_dies_tells_its_waiter_instead_of_leaving_it_on_progress() {
    let world = World::start().await.expect("the simulated world starts");
    let mut config = world.config(&world.sqlite_url("panic")).unwrap();
    config.check.max_concurrent = 1;
    let store = linkbot::store::open(&world.sqlite_url("panic"))
        .await
        .unwrap();
    let sink = Arc::new(RecordingSink::default());
    sink.panic_when_queued.store(true, Ordering::SeqCst);
    let coordinator = coordinator(&world, config, store, sink.clone());

    // The only slot is taken by a slow build; the second check queues, and showing that
    // panics inside its task.
    let slow = world.scenario_with(
        VerdictCode::ConfigMissing,
        0,
        World::timing(Duration::from_secs(2)),
    );
    ask(&coordinator, slow, "2.000001").await;
    // Only once it holds the slot is the second asked: else the second may take the slot
    // first, and the slow one would queue (and its task die) instead.
    sink.holds_a_slot("2.000001").await;
    ask(
        &coordinator,
        world.scenario(VerdictCode::ApiKeyInvalid, 1),
        "2.000002",
    )
    .await;
    match sink.end_of("2.000002").await {
        Shown::Failure(reason) => assert!(reason.contains("internal error"), "{reason}"),
        other => panic!("expected a failure answer, got {other:?}"),
    }
    // The first check is not disturbed.
    assert_eq!(
        sink.end_of("2.000001").await,
        Shown::Verdict(VerdictCode::ConfigMissing)
    );
    coordinator.abort_all();
}

/// Log lines written to memory, as `LINKBOT_LOG_FORMAT=json` writes them to stderr.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Captured {
    type Writer = Captured;
    fn make_writer(&'w self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .expect("UTF-8 logs")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

// One thread: the capturing subscriber is this thread's default, and every task of the
// coordinator runs here.
#[tokio::test(flavor = "current_thread")]
async fn every_log_line_inside_a_check_carries_its_location_id_and_build() {
    // The binary's global subscriber first: installed later, by another test on another thread,
    // it rebuilds every callsite's interest while this thread's default is set, and this test
    // was once seen capturing nothing under load.
    crate::common::logs();
    let logs = Captured::default();
    let _default =
        tracing::subscriber::set_default(linkbot::telemetry::json_subscriber("info", logs.clone()));
    let world = World::start().await.expect("the simulated world starts");
    let config = world.config(&world.sqlite_url("spans")).unwrap();
    let store = linkbot::store::open(&world.sqlite_url("spans"))
        .await
        .unwrap();
    let sink = Arc::new(RecordingSink::default());
    let coordinator = coordinator(&world, config, store, sink.clone());

    let location = world.scenario(VerdictCode::ConfigMissing, 3);
    let Requested::Started(id) = ask(&coordinator, location.clone(), "3.000001").await else {
        panic!("a new check starts");
    };
    assert_eq!(
        sink.end_of("3.000001").await,
        Shown::Verdict(VerdictCode::ConfigMissing)
    );
    coordinator.abort_all();

    let lines = logs.lines();
    let finished = lines
        .iter()
        .find(|l| l["message"] == "check finished")
        .unwrap_or_else(|| panic!("the engine logged its end: {lines:#?}"));
    let check = finished["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|s| s["name"] == "check"))
        .unwrap_or_else(|| panic!("the line is inside the check's span: {finished:#}"));
    assert_eq!(check["location"], location.as_str(), "{finished:#}");
    assert_eq!(check["environment"], "prod", "{finished:#}");
    assert_eq!(check["check_id"], id.0, "{finished:#}");
    assert!(
        check["build"].as_u64().is_some_and(|b| b > 0),
        "the build number is recorded once known: {finished:#}"
    );
    // The fields the span carries are not repeated on the line itself.
    for field in ["location", "environment", "check_id"] {
        assert!(
            finished.get(field).is_none(),
            "{field} repeated: {finished:#}"
        );
    }
}
