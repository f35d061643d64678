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
    engine: Engine,
    store: Arc<dyn Store>,
    sink: Arc<dyn Sink>,
    owner: String,
    lease: Duration,
    slots: Arc<Semaphore>,
    tasks: Arc<Mutex<tokio::task::JoinSet<()>>>,
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
            engine,
            store,
            sink,
            owner,
            lease,
            slots,
            tasks: Arc::new(Mutex::new(tokio::task::JoinSet::new())),
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
                // The drive runs in a task of its own so a panic in it is caught here; aborting
                // this task (shutdown) aborts it too.
                let mut drive = AbortOnDrop(tokio::spawn({
                    let this = this.clone();
                    let req = req.clone();
                    let known = known.clone();
                    async move { this.drive(id, req, resume, &known).await }.in_current_span()
                }));
                let reason = match (&mut drive.0).await {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => {
                        tracing::error!(error = format!("{e:#}"), "check failed to complete");
                        "the bot's store failed while the check ran."
                    }
                    Err(join) if join.is_panic() => {
                        tracing::error!("the check's task panicked (a bug)");
                        "an internal error stopped it (a bug in linkbot)."
                    }
                    // Aborted: shutdown hands the check back to the store; it is resumed.
                    Err(_) => return,
                };
                let waiters = this.waiters_or(id, &known).await;
                this.sink.failed(&waiters, &req, reason).await;
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
        let waiters = match self.store.waiters(id).await {
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
                let _shown = self
                    .sink
                    .progress(&waiters, &ProgressView::waiting_for_slot(req.clone(), busy))
                    .await;
                self.slots
                    .clone()
                    .acquire_owned()
                    .await
                    .context("semaphore closed")?
            }
        };

        // Progress events come synchronously from the engine; a task turns them into at most
        // one Slack edit per second (always the latest) and persists the Jenkins handle.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
        let reporter = {
            let this = self.clone();
            let req = req.clone();
            let known = known.clone();
            tokio::spawn(
                async move {
                    let mut view = ProgressView::new(req);
                    view.resumed = resumed;
                    let mut last_edit: Option<Instant> = None;
                    let mut pending = false;
                    // Each waiter costs one chat.update (Slack allows ~50 a minute): space the
                    // progress edits out as more threads wait on the same check.
                    let mut interval = Duration::from_secs(1);
                    let mut stage = "starting";
                    let started = Instant::now();
                    loop {
                        let next = if pending {
                            let wait = interval
                                .saturating_sub(last_edit.map(|t| t.elapsed()).unwrap_or_default());
                            match tokio::time::timeout(wait, rx.recv()).await {
                                Ok(m) => m.map(Some),
                                Err(_) => Some(None),
                            }
                        } else {
                            rx.recv().await.map(Some)
                        };
                        match next {
                            None => break,
                            Some(Some(p)) => {
                                // Persist the stage when it changes, and the Jenkins handle with it.
                                let job = match &p {
                                    Progress::Job(point) => serde_json::to_value(point).ok(),
                                    _ => None,
                                };
                                let next_stage = stage_of(&p);
                                if job.is_some() || next_stage != stage {
                                    stage = next_stage;
                                    if let Ok(false) = this
                                        .store
                                        .set_stage(id, &this.owner, stage, job.as_ref())
                                        .await
                                    {
                                        tracing::warn!(
                                            "lease lost while persisting the check's stage"
                                        );
                                    }
                                }
                                if !view.apply(&p, started.elapsed()) {
                                    continue;
                                }
                                pending = true;
                            }
                            Some(None) => {}
                        }
                        let due = last_edit.map(|t| t.elapsed() >= interval).unwrap_or(true);
                        if pending && due {
                            let waiters = match this.store.waiters(id).await {
                                Ok(waiters) => {
                                    remember(&known, &waiters);
                                    waiters
                                }
                                Err(_) => known.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                            };
                            interval = Duration::from_secs(waiters.len().clamp(1, 30) as u64);
                            // Deferred by Slack's edit budget: keep the latest view pending and
                            // try again after the interval (never queue an edit).
                            pending = !this.sink.progress(&waiters, &view).await;
                            last_edit = Some(Instant::now());
                        }
                    }
                }
                .in_current_span(),
            )
        };

        // Keep the lease while the check runs. The guard stops the renewals when this future
        // ends or is dropped (aborted on shutdown): a detached renewer would keep extending a
        // lease that shutdown just handed back, or that a dead process can no longer honour.
        let renew = AbortOnDrop({
            let store = self.store.clone();
            let owner = self.owner.clone();
            let lease = self.lease;
            tokio::spawn(
                async move {
                    loop {
                        tokio::time::sleep(lease / 3).await;
                        match store.renew_lease(id, &owner, lease).await {
                            Ok(true) => {}
                            Ok(false) => {
                                tracing::warn!("lease lost: another replica took the check over");
                                return;
                            }
                            Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
                        }
                    }
                }
                .in_current_span(),
            )
        });

        let progress = move |p: Progress| {
            let _ = tx.send(p);
        };
        let report = self.engine.run(&req, resume, &progress).await;
        drop(progress);
        let _ = reporter.await;
        drop(permit);

        let json = serde_json::to_value(&report).context("serialising the report")?;
        // The lease is still renewed while the result waits for the store.
        let known_now = known.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let outcome = self.record(id, &report, &json, &known_now).await;
        drop(renew);
        match outcome {
            Ok(FinishOutcome::Recorded { waiters }) => {
                self.sink.finished(&waiters, &report, None).await
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
                let waiters = self.waiters_or(id, known).await;
                self.sink.finished(&waiters, &report, None).await
            }
        }
        Ok(())
    }
}

impl Coordinator {
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
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
