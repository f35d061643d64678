//! One check per (environment, location) at a time, across requests, restarts and replicas.
//!
//! The [`Coordinator`] turns a request into a store claim: start a new check (and drive it),
//! join the one in flight, or reuse a fresh result. Whoever drives a check updates every waiter
//! recorded in the store — including waiters added by other replicas — so every requesting
//! thread gets the answer. Checks whose holder died (lease expired) are taken over and resumed
//! from their persisted Jenkins handle. It knows nothing of Slack: progress goes to a [`Sink`]
//! as a typed [`ProgressView`] (never text), results as a [`Report`]. Each check it drives
//! runs in its [`check_span`], so every log line inside carries the check's id and location.

use super::progress::ProgressView;
use super::{check_span, Engine, Progress, ResumePoint};
use crate::diagnosis::verdict::Report;
use crate::domain::CheckKey;
use crate::jenkins::{JobHandle, JobProgress};
use crate::store::{CheckId, Claim, FinishOutcome, InFlight, Requester, Store, Waiter};
use anyhow::{Context, Result};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tracing::Instrument;

/// Where the progress and the result of a check are shown (Slack messages, in the bot).
#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    /// Shows where a running check has got to (its stages so far) to its waiters. `false` when
    /// the edit was deferred (Slack's edit budget had no token to spare for progress): show the
    /// latest view again later. Verdicts and failures are never deferred.
    async fn progress(&self, waiters: &[Waiter], progress: &ProgressView) -> bool;
    /// Shows the finished report to its waiters; `reused_age` is set for a reused result.
    async fn finished(&self, waiters: &[Waiter], report: &Report, reused_age: Option<Duration>);
    /// Tells the waiters that the check ended without a report (the store or the engine
    /// failed): `reason` is one line for people. No waiter may stay on a progress message.
    async fn failed(&self, waiters: &[Waiter], key: &CheckKey, reason: &str);
}

/// What became of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Requested {
    /// A new check was started.
    Started(CheckId),
    /// The request joined the check already running.
    Joined(CheckId),
    /// A fresh result was reused.
    Reused {
        /// Its age.
        age: Duration,
    },
}

/// Hands requests to the store and drives the checks this process holds.
#[derive(Clone)]
pub struct Coordinator {
    /// Shared: each check clones the coordinator, and an `Engine` clone copies its clients'
    /// maps and strings (about 5 KB a check in flight, the largest part, by heaptrack).
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    sink: Arc<dyn Sink>,
    owner: String,
    lease: Duration,
    slots: Arc<Semaphore>,
    tasks: Arc<Mutex<tokio::task::JoinSet<()>>>,
    /// The checks this process drives, whose leases one renewer extends together.
    held: Arc<Held>,
}

/// The checks a process holds, renewed together: one `UPDATE` per lease/3 for all of them,
/// instead of a renewal task per check (issue 12, part 4: memory per check in flight).
#[derive(Default)]
struct Held {
    state: Mutex<HeldState>,
}

#[derive(Default)]
struct HeldState {
    ids: std::collections::HashSet<CheckId>,
    /// A renewer task is running (it stops when nothing is held).
    renewing: bool,
}

/// Holds a check's lease while it lives: dropping it (the check ended, or was aborted on
/// shutdown) stops its renewals.
struct LeaseGuard {
    held: Arc<Held>,
    id: CheckId,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let mut st = self.held.state.lock().unwrap_or_else(|e| e.into_inner());
        st.ids.remove(&self.id);
    }
}

impl Coordinator {
    /// A coordinator whose checks are leased to `owner` for `lease` at a time.
    pub fn new(
        engine: Engine,
        store: Arc<dyn Store>,
        sink: Arc<dyn Sink>,
        owner: String,
        lease: Duration,
    ) -> Self {
        let slots = Arc::new(Semaphore::new(engine.config().check.max_concurrent));
        Coordinator {
            engine: Arc::new(engine),
            store,
            sink,
            owner,
            lease,
            slots,
            tasks: Arc::new(Mutex::new(tokio::task::JoinSet::new())),
            held: Arc::new(Held::default()),
        }
    }

    /// Keeps the lease of check `id` until the guard is dropped: the process's one renewer
    /// extends it with the others every lease/3 (started here when it is not running).
    fn hold(&self, id: CheckId) -> LeaseGuard {
        let start = {
            let mut st = self.held.state.lock().unwrap_or_else(|e| e.into_inner());
            st.ids.insert(id);
            !std::mem::replace(&mut st.renewing, true)
        };
        if start {
            let held = self.held.clone();
            let store = self.store.clone();
            let owner = self.owner.clone();
            let lease = self.lease;
            let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            // In the task set, so that shutdown's `abort_all` stops the renewals too: a
            // renewal after the leases were handed back would delay their takeover.
            tasks.spawn(renew_held(held, store, owner, lease));
        }
        LeaseGuard {
            held: self.held.clone(),
            id,
        }
    }

    /// The store behind the coordinator.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Requests a check whose progress and result go to `waiter`. `fresh` skips result reuse
    /// (a Re-run), but still joins a check already running.
    pub async fn request(
        &self,
        req: &CheckKey,
        requester: &Requester,
        waiter: Waiter,
        fresh: bool,
    ) -> Result<Requested> {
        let ttl = if fresh {
            Duration::ZERO
        } else {
            self.engine.config().check.result_ttl
        };
        let claim = self
            .store
            .claim_check(req, &self.owner, self.lease, ttl, requester)
            .await
            .context("claiming the check in the store")?;
        match claim {
            Claim::Started(id) => {
                self.store
                    .add_waiter(id, &waiter)
                    .await
                    .context("recording the waiter")?;
                self.spawn_drive(id, req.clone(), None, vec![waiter]);
                Ok(Requested::Started(id))
            }
            Claim::TakenOver(check) => {
                // Its holder died: we hold it now and resume it from its persisted job.
                let id = check.check_id;
                self.store
                    .add_waiter(id, &waiter)
                    .await
                    .context("recording the waiter")?;
                self.resume(*check, vec![waiter]);
                Ok(Requested::Joined(id))
            }
            Claim::Joined(id) => {
                let waiting = self
                    .store
                    .add_waiter(id, &waiter)
                    .await
                    .context("recording the waiter")?;
                if !waiting {
                    // It finished between our claim and add_waiter: answer this waiter ourselves.
                    let done = self.store.finished(id).await?;
                    if done.is_some() {
                        self.record_shown(id, &waiter).await;
                    }
                    match done.map(|d| serde_json::from_value::<Report>(d.report)) {
                        Some(Ok(report)) => self.sink.finished(&[waiter], &report, None).await,
                        other => {
                            // Never leave this waiter on its progress message.
                            tracing::error!(
                                check_id = id.0,
                                unreadable = matches!(other, Some(Err(_))),
                                "a joined check ended without a readable result"
                            );
                            self.sink
                                .failed(
                                    &[waiter],
                                    req,
                                    "its result could not be read back from the bot's store.",
                                )
                                .await;
                        }
                    }
                }
                Ok(Requested::Joined(id))
            }
            Claim::Fresh(done) => {
                let age = (chrono::Utc::now() - done.finished_at)
                    .to_std()
                    .unwrap_or_default();
                match serde_json::from_value::<Report>(done.report) {
                    Ok(report) => {
                        self.record_shown(done.check_id, &waiter).await;
                        self.sink.finished(&[waiter], &report, Some(age)).await;
                        Ok(Requested::Reused { age })
                    }
                    Err(e) => {
                        // A stored report this version cannot read: run a fresh check instead.
                        tracing::warn!(error = %e, "stored report unreadable; running a fresh check");
                        Box::pin(self.request(req, requester, waiter, true)).await
                    }
                }
            }
        }
    }

    /// Records that `waiter`'s message shows the finished check `id` without having waited for
    /// it, so its buttons can be authorized. Not recorded (the store said why in the log), its
    /// buttons are refused with a sentence: the result is still shown.
    async fn record_shown(&self, id: CheckId, waiter: &Waiter) {
        if let Err(e) = self.store.record_shown(id, waiter).await {
            tracing::warn!(check_id = id.0, error = %e, "could not record which result a message shows; its buttons will be refused");
        }
    }

    /// Takes over checks whose holder died (or this process before a restart) and resumes them.
    pub async fn resume_expired(&self) -> Result<usize> {
        let taken = self
            .store
            .take_over_expired(&self.owner, self.lease)
            .await?;
        let n = taken.len();
        for check in taken {
            self.resume(check, Vec::new());
        }
        Ok(n)
    }

    fn resume(&self, check: InFlight, known: Vec<Waiter>) {
        let InFlight {
            check_id, key, job, ..
        } = check;
        let resume = job.and_then(|j| serde_json::from_value::<ResumePoint>(j).ok());
        let span = check_span(&key, Some(check_id.0));
        span.in_scope(|| tracing::info!(resumed_job = resume.is_some(), "resuming a check"));
        self.drive_in(span, check_id, key, resume, known);
    }

    /// Stops every check this process drives (shutdown): their state stays in the store.
    pub fn abort_all(&self) {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .abort_all();
    }

    /// Drives the check in a task of its own, and makes sure it ends visibly: when the drive
    /// fails (store error) or its task dies (a panic), every waiter known is told so through
    /// [`Sink::failed`] instead of staying on its progress message. `known` are the waiters
    /// this process knows without asking the store (the one that started the check).
    fn spawn_drive(
        &self,
        id: CheckId,
        req: CheckKey,
        resume: Option<ResumePoint>,
        known: Vec<Waiter>,
    ) {
        let span = check_span(&req, Some(id.0));
        self.drive_in(span, id, req, resume, known);
    }

    /// [`Self::spawn_drive`] in the check's `span`, already made.
    fn drive_in(
        &self,
        span: tracing::Span,
        id: CheckId,
        req: CheckKey,
        resume: Option<ResumePoint>,
        known: Vec<Waiter>,
    ) {
        let this = self.clone();
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        // Reap finished tasks so the set stays small.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(
            async move {
                let known = Arc::new(Mutex::new(known));
                // One task per check: a panic in the drive is caught here, in place (aborting
                // the task on shutdown drops the drive with it; the check is resumed later).
                let drive =
                    std::panic::AssertUnwindSafe(this.drive(id, req.clone(), resume, &known));
                let reason = match futures_util::FutureExt::catch_unwind(drive).await {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => {
                        tracing::error!(error = format!("{e:#}"), "check failed to complete");
                        "the bot's store failed while the check ran."
                    }
                    Err(_panic) => {
                        tracing::error!("the check's task panicked (a bug)");
                        "an internal error stopped it (a bug in linkbot)."
                    }
                };
                let waiters = Box::pin(this.waiters_or(id, &known)).await;
                Box::pin(this.sink.failed(&waiters, &req, reason)).await;
            }
            .instrument(span),
        );
    }

    /// The check's waiters from the store, or the ones this process knows when the store
    /// cannot answer (within a bound: the answer must not wait on a store that hangs).
    async fn waiters_or(&self, id: CheckId, known: &Mutex<Vec<Waiter>>) -> Vec<Waiter> {
        match tokio::time::timeout(Duration::from_secs(10), self.store.waiters(id)).await {
            Ok(Ok(waiters)) if !waiters.is_empty() => waiters,
            other => {
                if let Ok(Err(e)) = other {
                    tracing::warn!(error = %e, "could not read the waiters; answering the ones known");
                }
                known.lock().unwrap_or_else(|e| e.into_inner()).clone()
            }
        }
    }

    async fn drive(
        &self,
        id: CheckId,
        req: CheckKey,
        resume: Option<ResumePoint>,
        known: &Arc<Mutex<Vec<Waiter>>>,
    ) -> Result<()> {
        // A store that fails now must not stop the check: its waiters are read again for each
        // progress edit and with the result.
        let waiters = match Box::pin(self.store.waiters(id)).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the check's waiters yet");
                Vec::new()
            }
        };
        remember(known, &waiters);
        let resumed = resume.is_some();
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let busy = self.engine.config().check.max_concurrent;
                // Deferred under Slack's edit budget, the line is skipped: the check's own
                // progress follows once it has a slot.
                let _shown = Box::pin(
                    self.sink
                        .progress(&waiters, &ProgressView::waiting_for_slot(req.clone(), busy)),
                )
                .await;
                self.slots
                    .clone()
                    .acquire_owned()
                    .await
                    .context("semaphore closed")?
            }
        };

        // Keep the lease while the check runs (the process's one renewer extends it with the
        // others); the guard lets go when this future ends or is dropped on shutdown.
        let lease = self.hold(id);

        // Progress events come synchronously from the engine into a latest-value slot (no queue:
        // only the newest view, stage and Jenkins handle are kept); the reporter, polled in this
        // same task, persists the handle and turns the view into at most one Slack edit per
        // interval.
        let slot = Arc::new(ProgressSlot::new(ProgressView::new(req.clone()), resumed));
        let report = {
            let slot_in = slot.clone();
            let progress = move |p: Progress| slot_in.push(&p);
            let run = async {
                let report = self.engine.run(&req, resume, &progress).await;
                slot.close();
                report
            };
            let (report, ()) = tokio::join!(run, self.report_progress(id, &slot, known));
            report
        };
        drop(permit);

        let json = serde_json::to_value(&report).context("serialising the report")?;
        // The lease is still renewed while the result waits for the store.
        let known_now = known.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let outcome = Box::pin(self.record(id, &report, &json, &known_now)).await;
        // The stored form is not needed to show the verdict (which may wait for Slack's budget).
        drop(json);
        drop(lease);
        match outcome {
            Ok(FinishOutcome::Recorded { waiters }) => {
                Box::pin(self.sink.finished(&waiters, &report, None)).await
            }
            Ok(FinishOutcome::LeaseLost) => {
                tracing::warn!("lease lost before the result was recorded: the new holder answers")
            }
            Err(e) => {
                // The store stayed down past the retry budget. The verdict exists: show it
                // (again) rather than a failure. The check stays running in the store; once its
                // lease expires it is resumed and recorded then.
                tracing::error!(
                    error = format!("{e:#}"),
                    "could not record the result; answering the waiters known"
                );
                let waiters = Box::pin(self.waiters_or(id, known)).await;
                Box::pin(self.sink.finished(&waiters, &report, None)).await
            }
        }
        Ok(())
    }
}

impl Coordinator {
    /// Persists the check's stage and Jenkins handle as they change, and shows its latest view
    /// to its waiters at most once per interval (1 s per waiter, up to 30 s: each waiter is one
    /// `chat.update`), until the engine is done (what is left to persist is persisted; a view
    /// not yet shown is dropped: the verdict follows). A view Slack's edit budget deferred stays
    /// due and is tried again after the interval.
    async fn report_progress(&self, id: CheckId, slot: &ProgressSlot, known: &Mutex<Vec<Waiter>>) {
        let mut last_edit: Option<Instant> = None;
        let mut interval = Duration::from_secs(1);
        loop {
            let (persist, closed) = slot.take_persist();
            if let Some((stage, job)) = persist {
                if let Ok(false) =
                    Box::pin(self.store.set_stage(id, &self.owner, stage, job.as_ref())).await
                {
                    tracing::warn!("lease lost while persisting the check's stage");
                }
                continue;
            }
            if closed {
                return;
            }
            let due = last_edit.is_none_or(|t| t.elapsed() >= interval);
            if due {
                if let Some(view) = slot.take_view() {
                    let waiters = match Box::pin(self.store.waiters(id)).await {
                        Ok(waiters) => {
                            remember(known, &waiters);
                            waiters
                        }
                        Err(_) => known.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                    };
                    interval = Duration::from_secs(waiters.len().clamp(1, 30) as u64);
                    if !Box::pin(self.sink.progress(&waiters, &view)).await {
                        // Deferred by Slack's edit budget: due again after the interval.
                        slot.still_due();
                    }
                    last_edit = Some(Instant::now());
                    continue;
                }
            }
            // Wait for news, or for the interval when a view is due.
            let wait = if slot.view_due() {
                interval.saturating_sub(last_edit.map(|t| t.elapsed()).unwrap_or_default())
            } else {
                Duration::MAX
            };
            let _ = tokio::time::timeout(wait, slot.changed.notified()).await;
        }
    }

    /// Records a check's result, retrying while the store fails (a database restarting, a
    /// full or read-only disk) for up to [`STORE_RETRY_BUDGET`], with backoff. When the first
    /// attempt fails, the waiters are shown the verdict at once: the verdict does not need the
    /// store, and no thread may be left on its progress message because the store is down.
    /// The result is recorded (audit entry included) once the store is back, or — if the budget
    /// runs out — never: the check stays `running` in the store, whole, and is resumed from its
    /// Jenkins build when its lease expires (by another replica, or this bot's next run).
    async fn record(
        &self,
        id: CheckId,
        report: &Report,
        json: &serde_json::Value,
        known: &[Waiter],
    ) -> Result<FinishOutcome> {
        let started = Instant::now();
        let mut backoff = STORE_RETRY_FIRST;
        let mut shown = false;
        loop {
            let attempt = self
                .store
                .finish_check(
                    id,
                    &self.owner,
                    report.verdict.as_str(),
                    json,
                    report.build_url.as_deref(),
                )
                .await;
            let e = match attempt {
                Ok(outcome) => return Ok(outcome),
                Err(e) => e,
            };
            if !shown {
                shown = true;
                let waiters =
                    match tokio::time::timeout(crate::store::PING_TIMEOUT, self.store.waiters(id))
                        .await
                    {
                        Ok(Ok(w)) => w,
                        _ => known.to_vec(),
                    };
                tracing::warn!(
                    error = format!("{:#}", anyhow::Error::new(e)),
                    "cannot record the result in the store: showing it now, retrying the record"
                );
                self.sink.finished(&waiters, report, None).await;
            } else if started.elapsed() >= STORE_RETRY_BUDGET {
                return Err(anyhow::Error::new(e).context(format!(
                    "recording the result (gave up after {:?}; the check stays in flight and is resumed)",
                    started.elapsed()
                )));
            } else {
                tracing::debug!(error = %e, "recording the result failed again");
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(STORE_RETRY_MAX_WAIT);
        }
    }
}

/// How long a finished check's result is retried against a failing store.
pub const STORE_RETRY_BUDGET: Duration = Duration::from_secs(120);
/// The first wait before retrying the store; doubled each time up to [`STORE_RETRY_MAX_WAIT`].
const STORE_RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between two attempts to record a result.
const STORE_RETRY_MAX_WAIT: Duration = Duration::from_secs(5);

/// The stage name stored for `linkbot status`.
fn stage_of(p: &Progress) -> &'static str {
    match p {
        Progress::LookingUp => "lookup",
        Progress::Triggering { .. } => "triggering",
        Progress::Job(ResumePoint {
            job: JobHandle::Queued(_),
            ..
        }) => "queued",
        Progress::Job(ResumePoint {
            job: JobHandle::Build(_),
            ..
        }) => "running",
        Progress::Jenkins(JobProgress::Queued { .. }) => "queued",
        Progress::Jenkins(JobProgress::Running { .. }) => "running",
        Progress::Jenkins(JobProgress::Finished { .. }) | Progress::ReadingArtifacts => "artifacts",
    }
}

/// Adds `waiters` to the ones known without the store (deduplicated by message).
fn remember(known: &Mutex<Vec<Waiter>>, waiters: &[Waiter]) {
    let mut known = known.lock().unwrap_or_else(|e| e.into_inner());
    for w in waiters {
        if !known
            .iter()
            .any(|k| k.channel == w.channel && k.message_ts == w.message_ts)
        {
            known.push(w.clone());
        }
    }
}

/// Aborts a spawned task when dropped.
/// The latest progress of a check, between the engine (which pushes events synchronously)
/// and its reporter: the view with every event applied, whether it changed since it was last
/// taken, and the stage and Jenkins handle still to persist. A few hundred bytes per check, and
/// never a queue: a burst of events costs no memory.
struct ProgressSlot {
    state: Mutex<SlotState>,
    changed: tokio::sync::Notify,
}

struct SlotState {
    view: ProgressView,
    view_dirty: bool,
    /// The stage last pushed (persisted when it changes).
    stage: &'static str,
    /// The stage and newest Jenkins handle not yet persisted.
    persist: Option<(&'static str, Option<serde_json::Value>)>,
    started: Instant,
    closed: bool,
}

impl ProgressSlot {
    fn new(mut view: ProgressView, resumed: bool) -> Self {
        view.resumed = resumed;
        ProgressSlot {
            state: Mutex::new(SlotState {
                view,
                view_dirty: false,
                stage: "starting",
                persist: None,
                started: Instant::now(),
                closed: false,
            }),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies an event from the engine (synchronous, never waits on I/O). `notify_one` keeps a
    /// permit when the reporter is busy, so no event is missed.
    fn push(&self, p: &Progress) {
        {
            let mut st = self.lock();
            let job = match p {
                Progress::Job(point) => serde_json::to_value(point).ok(),
                _ => None,
            };
            let next_stage = stage_of(p);
            if job.is_some() || next_stage != st.stage {
                st.stage = next_stage;
                // A newer handle supersedes one not yet persisted; a stage change keeps it.
                let job = job.or_else(|| st.persist.take().and_then(|(_, j)| j));
                st.persist = Some((next_stage, job));
            }
            let elapsed = st.started.elapsed();
            if st.view.apply(p, elapsed) {
                st.view_dirty = true;
            }
        }
        self.changed.notify_one();
    }

    /// The engine is done.
    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_one();
    }

    /// The stage and handle to persist, if any, and whether the engine is done.
    fn take_persist(&self) -> (Option<(&'static str, Option<serde_json::Value>)>, bool) {
        let mut st = self.lock();
        (st.persist.take(), st.closed)
    }

    /// The view, when it changed since it was last taken.
    fn take_view(&self) -> Option<ProgressView> {
        let mut st = self.lock();
        std::mem::take(&mut st.view_dirty).then(|| st.view.clone())
    }

    /// The view taken could not be shown: it is due again.
    fn still_due(&self) {
        self.lock().view_dirty = true;
    }

    fn view_due(&self) -> bool {
        self.lock().view_dirty
    }
}

/// The process's one lease renewer: every lease/3, one `UPDATE` extends the leases of every
/// check held ([`Store::renew_leases`]); a check whose lease another replica took is dropped
/// from the set (its drive finds out when it records its result). Ends when nothing is held.
async fn renew_held(held: Arc<Held>, store: Arc<dyn Store>, owner: String, lease: Duration) {
    loop {
        tokio::time::sleep(lease / 3).await;
        let ids: Vec<CheckId> = {
            let mut st = held.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.ids.is_empty() {
                st.renewing = false;
                return;
            }
            st.ids.iter().copied().collect()
        };
        match store.renew_leases(&ids, &owner, lease).await {
            Ok(kept) => {
                let kept: std::collections::HashSet<CheckId> = kept.into_iter().collect();
                let lost: Vec<CheckId> = ids.into_iter().filter(|i| !kept.contains(i)).collect();
                if !lost.is_empty() {
                    let mut st = held.state.lock().unwrap_or_else(|e| e.into_inner());
                    for id in &lost {
                        st.ids.remove(id);
                    }
                    tracing::warn!(
                        lost = ?lost.iter().map(|i| i.0).collect::<Vec<_>>(),
                        "lease lost: another replica took the check over"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, checks = ids.len(), "lease renewal failed"),
        }
    }
}
