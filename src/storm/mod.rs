//! Storm mode: when more than `[storm] threshold` distinct locations fire within `window_secs`
//! in one environment, one storm is declared (the store decides, so replicas agree), and the
//! alerts are handled as one event instead of one build each.
//!
//! The storm posts one message in the channel (count, datacenters, regions, first and last
//! firing, the IAM health probe, the sample and what it says), edited in place as alerts and
//! verdicts arrive (coalesced: at most one edit per [`REFRESH_EVERY`] per replica). It checks a
//! sample of locations spread over datacenters through the normal check path (the caller's
//! `start_check`); every other alert gets one line linking to the storm message, and no build.
//! When the sample agrees on a cause the message says so; when it disagrees, the rest is
//! checked within `max_builds_per_minute` (one budgeted checker per storm across replicas:
//! its `epoch`). On-call may press Check all or Stop. After a window with no new location the
//! storm ends and every location goes to the audit.
//!
//! A storm outlives the replica that runs it. Each alert waiting for its pointer is a row in
//! the store, claimed by the replica posting it and marked answered once posted, so a pointer
//! not posted when a process stopped (or crashed, or Slack refused it) is posted by the next
//! process or another replica, once. The budgeted checker is a lease: each location it claims
//! renews its heartbeat, and a replica watching the storm takes it over (a new epoch) when the
//! heartbeat is older than [`StormSettings::pump_timeout`]. Every background task of this
//! module is tied to the bot's shutdown ([`Storms::stop`]): none runs on after it.
//!
//! This module must NOT import slack-morphism, render Slack text, or import `config`: Slack is
//! behind [`StormChannel`] (implemented in `slack/storm.rs`), which receives the typed
//! [`StormView`]; where a location is and whether IAM answers come through [`Survey`].

mod active;
mod locate;
pub mod model;

pub use model::{
    agreement, choose_sample, reason_of, reason_text, Agreement, Candidate, Cause, SampleLine,
    StormAction, StormSettings, StormView,
};

use crate::check::Engine;
use crate::diagnosis::verdict::Report;
use crate::domain::CheckKey;
use crate::metrics::{Metrics, STORM_BUDGET, STORM_SAMPLE};
use crate::store::{
    AuditEntry, AuditKind, MessageRef, Store, StormFiring, StormId, StormLocation, StormMode,
    Whereabouts,
};
use anyhow::{Context, Result};
use chrono::Utc;
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

/// The shortest time between two edits of a storm message by one replica.
pub const REFRESH_EVERY: Duration = Duration::from_secs(3);

/// What showing the storm message did.
struct Shown {
    /// The storm is still active.
    active: bool,
    /// Slack's edit budget deferred the edit: show it again next round.
    deferred: bool,
}
/// How long an alert waits for the storm message to be posted (by the replica that declared
/// the storm) before it is answered without the link.
const MESSAGE_WAIT: Duration = Duration::from_secs(20);
/// How many locations are looked up at once when a storm is declared, and by each storm's
/// worker locating the locations that join it later (`locate.rs`).
const LOCATE_AT_ONCE: usize = 4;
/// How long a replica holds an alert's pointer reply while posting it; a replica that died
/// meanwhile leaves a claim that expires after this, and another posts the pointer.
const POINTER_CLAIM: Duration = Duration::from_secs(30);
/// How many pointer replies Slack may refuse in a row before a round of posting stops.
const POINTER_REFUSALS: usize = 3;
/// How far back a starting replica looks for storms with alerts still waiting for their
/// pointer (an ended storm's alert answered a day late helps nobody).
const RESUME_SINCE: Duration = Duration::from_secs(24 * 3600);

/// Where a location is and whether IAM answers (implemented by the check engine).
#[async_trait::async_trait]
pub trait Survey: Send + Sync {
    /// Where `key`'s location is: its datacenter and region (one directory lookup, no build).
    async fn locate(&self, key: &CheckKey) -> Whereabouts;
    /// Whether IAM's token endpoint answers (`Err`: why not).
    async fn iam_health(&self) -> Result<(), String>;
}

#[async_trait::async_trait]
impl Survey for Engine {
    async fn locate(&self, key: &CheckKey) -> Whereabouts {
        let (dc, region) = Engine::locate(self, key).await;
        Whereabouts {
            datacenter: dc.map(|d| d.to_string()),
            region: region.map(|r| r.to_string()),
        }
    }

    async fn iam_health(&self) -> Result<(), String> {
        Engine::iam_health(self).await
    }
}

/// The Slack side of a storm (implemented in `slack/storm.rs`).
#[async_trait::async_trait]
pub trait StormChannel: Send + Sync {
    /// Posts the storm message in `channel`.
    async fn post(&self, channel: &str, view: &StormView) -> Result<MessageRef>;
    /// Shows `view` in the storm message. While the storm is active the edit is deferrable,
    /// like a check's progress (`Ok(false)`: Slack's edit budget had no token to spare; show
    /// the latest state later), so the verdicts of its checks go first; the ended storm's
    /// final state is urgent.
    async fn show(&self, message: &MessageRef, view: &StormView, urgent: bool) -> Result<bool>;
    /// The permalink of a message, when Slack gives one.
    async fn permalink(&self, message: &MessageRef) -> Option<String>;
    /// Answers the alert `alert` with one line pointing at the storm (`link`, when known).
    async fn point(&self, alert: &MessageRef, storm: StormId, link: Option<&str>) -> Result<()>;
    /// Starts the normal check of `location` in its alert's thread.
    async fn check(&self, location: &StormLocation) -> Result<()>;
}

/// What to do with a firing alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Check it as usual (no storm, or it is in the sample).
    Check,
    /// It is part of a storm and was answered with a link to its message (`None` when the
    /// message was not posted in time): no build.
    Pointed(Option<MessageRef>),
}

/// What an on-call click did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acted {
    /// The storm now checks the rest within the budget.
    CheckingAll,
    /// The storm checks no more.
    Stopped,
    /// The storm was no longer in a state where this applies (ended, or changed meanwhile).
    Nothing,
}

#[derive(Default)]
struct Local {
    /// One refresher per storm on this replica: a notified task editing its message.
    refreshers: Mutex<HashMap<StormId, Arc<Notify>>>,
    /// Storms this replica watches (their end, waiting pointers, the budgeted checker).
    watched: Mutex<HashSet<StormId>>,
    /// One pointer poster per storm on this replica: a notified task claiming the storm's
    /// waiting alerts in the store and answering them one at a time, so they never fill
    /// Slack's per-channel queue ahead of the sample's threads and the verdicts.
    pointers: Mutex<HashMap<StormId, Arc<Notify>>>,
    /// Lookups of where joining locations are, per storm (see `locate.rs`).
    locators: locate::Locators,
    /// This replica's storm tasks.
    tasks: Tasks,
    /// What each storm's message last showed the sample saying (an edit changing it is urgent).
    agreements: Mutex<HashMap<StormId, Agreement>>,
}

/// The background tasks of the storms on this replica, tied to the bot's shutdown: cancelled,
/// each ends at its next await, and `live` counts those not ended yet.
struct Tasks {
    stop: CancellationToken,
    live: Arc<watch::Sender<usize>>,
}

impl Default for Tasks {
    fn default() -> Self {
        Tasks {
            stop: CancellationToken::new(),
            live: Arc::new(watch::channel(0).0),
        }
    }
}

/// Counts one live task; uncounted when the task ends, however it ends.
struct LiveTask(Arc<watch::Sender<usize>>);

impl Drop for LiveTask {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The storm workflow. Cheap to clone.
#[derive(Clone)]
pub struct Storms {
    settings: StormSettings,
    store: Arc<dyn Store>,
    survey: Arc<dyn Survey>,
    /// This replica's name in the store's claims (pointer replies, the budgeted checker).
    instance: Arc<str>,
    local: Arc<Local>,
    metrics: Metrics,
}

impl Storms {
    /// A workflow with `[storm]` settings over `store`, run by replica `instance`, counting
    /// in `metrics`.
    pub fn new(
        settings: StormSettings,
        store: Arc<dyn Store>,
        survey: Arc<dyn Survey>,
        instance: &str,
        metrics: Metrics,
    ) -> Self {
        Storms {
            settings,
            store,
            survey,
            instance: instance.into(),
            local: Arc::new(Local::default()),
            metrics,
        }
    }

    /// Runs `task` in the background until it ends or the storms stop ([`Storms::stop`]);
    /// nothing once they stopped.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let tasks = &self.local.tasks;
        if tasks.stop.is_cancelled() {
            return;
        }
        tasks.live.send_modify(|n| *n += 1);
        let live = LiveTask(tasks.live.clone());
        let stop = tasks.stop.clone();
        tokio::spawn(async move {
            let _live = live;
            tokio::select! {
                biased;
                _ = stop.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// Takes up the storms the store holds (on start): answers the alerts still waiting for
    /// their pointer (a process stopped or crashed before posting them) and watches the active
    /// storms (their end, and their budgeted checker should its replica be gone).
    pub fn resume(&self, chat: Arc<dyn StormChannel>) {
        let this = self.clone();
        self.spawn(async move {
            match this.store.storms_to_resume(RESUME_SINCE).await {
                Ok(storms) => {
                    for storm in storms {
                        tracing::info!(storm = %storm.id, active = storm.active, "taking up a storm");
                        if storm.active {
                            this.watch(storm.id, chat.clone());
                        }
                        this.point(storm.id, chat.clone());
                    }
                }
                // The next firing of a storm's alert, or a watching replica, takes it up.
                Err(e) => tracing::error!(
                    error = %e,
                    "cannot read the storms to take up: alerts waiting for their storm pointer stay unanswered until a replica watches their storm"
                ),
            }
        });
    }

    /// Stops this replica's storm tasks (on shutdown): each ends at its next await, and no
    /// storm task calls Slack or the store after this returns (waiting at most `bound`). The
    /// pointer replies it had claimed are handed back, so another replica or the next process
    /// posts them at once; its budgeted checker is taken over when its heartbeat is stale.
    pub async fn stop(&self, bound: Duration) {
        self.local.tasks.stop.cancel();
        let mut live = self.local.tasks.live.subscribe();
        let stopped = tokio::time::timeout(bound, live.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok());
        if !stopped {
            tracing::warn!(
                tasks = self.running(),
                "storm tasks did not stop within the bound"
            );
        }
        match self.store.release_storm_pointers(&self.instance).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(alerts = n, "handed storm pointer replies back to the store"),
            Err(e) => {
                tracing::warn!(error = %e, "could not hand storm pointer replies back; they are posted when their claim expires")
            }
        }
    }

    /// Stops this replica's storm tasks at once, handing nothing back (as a killed process).
    pub fn abandon(&self) {
        self.local.tasks.stop.cancel();
    }

    /// How many storm tasks run on this replica.
    pub fn running(&self) -> usize {
        *self.local.tasks.live.borrow()
    }

    /// The settings.
    pub fn settings(&self) -> &StormSettings {
        &self.settings
    }

    /// The view of storm `id` as stored.
    pub async fn view(&self, id: StormId) -> Result<Option<StormView>> {
        let Some(storm) = self.store.storm(id).await? else {
            return Ok(None);
        };
        let locations = self.store.storm_locations(id).await?;
        Ok(Some(StormView::of(&storm, &locations)))
    }

    /// A first firing for `key` (its incident just opened): counted; declares a storm when it
    /// crosses the threshold, or joins the active one. Without storm mode, or when the store
    /// cannot count, the alert is checked as usual.
    pub async fn fired(
        &self,
        key: &CheckKey,
        alert: &MessageRef,
        chat: Arc<dyn StormChannel>,
    ) -> Route {
        if !self.settings.enabled {
            return Route::Check;
        }
        let fired = match self
            .store
            .storm_fired(key, alert, self.settings.window, self.settings.threshold)
            .await
        {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot count the alert for storm mode; checking it");
                return Route::Check;
            }
        };
        if let Some(ended) = fired.ended {
            let this = self.clone();
            let chat = chat.clone();
            self.spawn(async move { this.ended(ended.id, chat).await });
        }
        match fired.firing {
            StormFiring::Calm => Route::Check,
            StormFiring::Declared(storm, locations) => {
                tracing::warn!(storm = %storm.id, environment = %storm.environment, locations = locations.len(), "alert storm declared");
                self.metrics.storm_declared(storm.environment);
                self.metrics.set_storms_active(storm.environment, 1);
                match self.declare(storm.id, key, alert, locations, chat).await {
                    Ok(route) => route,
                    Err(e) => {
                        tracing::error!(
                            error = format!("{e:#}"),
                            "declaring the storm failed; checking the alert"
                        );
                        Route::Check
                    }
                }
            }
            StormFiring::Joined { storm, new } => {
                self.watch(storm.id, chat.clone());
                if new {
                    self.locate_joined(storm.id, key, chat.clone());
                    self.refresh(storm.id, chat.clone());
                }
                let message = match storm.message {
                    Some(m) => Some(m),
                    None => self.wait_for_message(storm.id).await,
                };
                // Its alert waits for its pointer in the store (since `storm_fired`).
                self.point(storm.id, chat.clone());
                Route::Pointed(message)
            }
        }
    }

    /// The storm was declared by this firing: post its message, locate the locations, choose
    /// the sample and start the checks it needs, probe IAM once, watch for its end.
    async fn declare(
        &self,
        id: StormId,
        key: &CheckKey,
        alert: &MessageRef,
        locations: Vec<StormLocation>,
        chat: Arc<dyn StormChannel>,
    ) -> Result<Route> {
        // First what on-call needs most: the one message saying this is a storm.
        let view = self.view(id).await?.context("the storm just declared")?;
        let message = chat.post(&alert.channel, &view).await?;
        self.store.set_storm_message(id, &message).await?;
        self.watch(id, chat.clone());
        // Where each location is (lookups, no builds), to spread the sample.
        let located: Vec<(StormLocation, Whereabouts)> = futures_util::stream::iter(locations)
            .map(|l| async move {
                let at = self.survey.locate(&l.key).await;
                (l, at)
            })
            .buffer_unordered(LOCATE_AT_ONCE)
            .collect()
            .await;
        let mut candidates = Vec::with_capacity(located.len());
        for (l, at) in &located {
            if let Err(e) = self
                .store
                .set_storm_whereabouts(id, &l.key.location, at)
                .await
            {
                tracing::warn!(error = %e, "cannot record where a storm location is");
            }
            candidates.push(Candidate {
                location: l.key.location.clone(),
                datacenter: at.datacenter.clone(),
                checked: l.checked,
                fired_at: l.fired_at,
            });
        }
        let sample = choose_sample(&candidates, self.settings.sample as usize);
        let to_check = self.store.set_storm_sample(id, &sample).await?;
        // A location checked before the storm may have finished before it was declared: its
        // verdict counts (the sink counts only verdicts shown while the storm is active).
        for (l, _) in located.iter().filter(|(l, _)| l.checked) {
            self.backfill(l).await;
        }
        self.evaluate(id, chat.clone()).await;
        tracing::info!(storm = %id, sample = ?sample.iter().map(|l| l.as_str()).collect::<Vec<_>>(), new_checks = to_check.len(), "storm sample chosen");
        self.refresh(id, chat.clone());
        // IAM's health, once per storm (in its own task: the alert's answer does not wait).
        let this = self.clone();
        let probe_chat = chat.clone();
        self.spawn(async move {
            let health = this.survey.iam_health().await;
            if let Err(e) = this
                .store
                .set_storm_iam(id, &model::iam_stored(&health))
                .await
            {
                tracing::warn!(error = %e, "cannot record the storm's IAM probe");
            }
            this.refresh(id, probe_chat);
        });
        let mut route = None;
        // Every one is started: the alert's own by the caller, the others here.
        self.metrics
            .storm_checks_started(STORM_SAMPLE, to_check.len() as u64);
        for l in &to_check {
            if l.key == *key {
                route = Some(Route::Check);
            } else if let Err(e) = chat.check(l).await {
                tracing::error!(error = format!("{e:#}"), location = %l.key.location, "could not start a sampled check");
            }
        }
        match route {
            Some(r) => Ok(r),
            None => {
                self.store
                    .storm_point(id, &key.location)
                    .await
                    .context("recording that the declaring alert waits for its pointer")?;
                self.point(id, chat.clone());
                Ok(Route::Pointed(Some(message)))
            }
        }
    }

    /// Records on its storm the verdict `location` reached before the storm was declared.
    async fn backfill(&self, location: &StormLocation) {
        let since = location.fired_at
            - chrono::Duration::from_std(self.settings.window).unwrap_or_default();
        let done = match self.store.latest_finished(&location.key).await {
            Ok(Some(done)) if done.finished_at >= since => done,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a storm location's result");
                return;
            }
        };
        let Ok(report) = serde_json::from_value::<Report>(done.report) else {
            return;
        };
        let at = Whereabouts {
            datacenter: report.tugboat.as_ref().map(|t| t.datacenter().to_string()),
            region: report.region_expected.as_ref().map(|r| r.to_string()),
        };
        if let Err(e) = self
            .store
            .storm_verdict(
                &location.key,
                report.verdict.as_str(),
                &reason_of(&report),
                &reason_text(&report),
                &at,
            )
            .await
        {
            tracing::warn!(error = %e, "cannot record a verdict on its storm");
        }
    }

    /// Waits (bounded) for the replica that declared storm `id` to post its message.
    async fn wait_for_message(&self, id: StormId) -> Option<MessageRef> {
        let deadline = tokio::time::Instant::now() + MESSAGE_WAIT;
        let mut every = Duration::from_millis(50);
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(every).await;
            every = (every * 2).min(Duration::from_secs(1));
            match self.store.storm(id).await {
                Ok(Some(s)) if s.message.is_some() => return s.message,
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(e) => tracing::warn!(error = %e, "cannot read the storm"),
            }
        }
        None
    }

    /// Answers storm `id`'s alerts waiting for their pointer soon (one poster task per storm
    /// on this replica; the store says which alerts wait, and which replica posts each).
    fn point(&self, id: StormId, chat: Arc<dyn StormChannel>) {
        let mut pointers = lock(&self.local.pointers);
        if let Some(n) = pointers.get(&id) {
            n.notify_one();
            return;
        }
        let notify = Arc::new(Notify::new());
        notify.notify_one();
        pointers.insert(id, notify.clone());
        drop(pointers);
        let this = self.clone();
        self.spawn(async move { this.post_pointers(id, notify, chat).await });
    }

    /// Posts storm `id`'s waiting pointer replies one at a time, each claimed in the store
    /// first (once across replicas) and marked answered once posted; each time it is notified,
    /// until the storm has ended. A reply Slack refused keeps its claim until it expires, then
    /// a round (of a replica watching the storm, or of the next process) tries it again; a
    /// round stops after a few refusals in a row (Slack is down: no point going on).
    async fn post_pointers(&self, id: StormId, notify: Arc<Notify>, chat: Arc<dyn StormChannel>) {
        let mut link: Option<String> = None;
        loop {
            notify.notified().await;
            let mut refused = 0;
            while refused < POINTER_REFUSALS {
                let waiting = match self
                    .store
                    .claim_storm_pointer(id, &self.instance, POINTER_CLAIM)
                    .await
                {
                    Ok(Some(l)) => l,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, storm = %id, "cannot claim a storm alert's pointer; trying on the next round");
                        break;
                    }
                };
                if link.is_none() {
                    let message = match self.store.storm(id).await {
                        Ok(Some(s)) if s.message.is_some() => s.message,
                        _ => self.wait_for_message(id).await,
                    };
                    if let Some(m) = &message {
                        link = chat.permalink(m).await;
                    }
                }
                if let Err(e) = chat.point(&waiting.alert, id, link.as_deref()).await {
                    refused += 1;
                    tracing::error!(
                        error = format!("{e:#}"),
                        storm = %id,
                        alert = %waiting.alert.ts,
                        retry_in = ?POINTER_CLAIM,
                        "could not answer an alert of the storm; it is tried again when its claim expires"
                    );
                    continue;
                }
                refused = 0;
                self.metrics.storm_alerts_linked.inc();
                if let Err(e) = self.store.storm_pointed(id, &waiting.key.location).await {
                    tracing::warn!(error = %e, storm = %id, "cannot record a storm alert's pointer: it may be posted again");
                }
            }
            let ended = match self.store.storm(id).await {
                Ok(Some(s)) => !s.active,
                Ok(None) => true,
                Err(_) => false,
            };
            if ended {
                lock(&self.local.pointers).remove(&id);
                return;
            }
        }
    }

    /// A verdict was shown for a location: when it belongs to its environment's active storm,
    /// it is counted there; once the sample has every verdict and disagrees, the rest is
    /// checked within the budget.
    pub async fn verdict(&self, report: &Report, chat: Arc<dyn StormChannel>) {
        if !self.settings.enabled {
            return;
        }
        let (Some(location), Some(environment)) = (&report.location, report.environment) else {
            return;
        };
        let key = CheckKey {
            location: location.clone(),
            environment,
        };
        let at = Whereabouts {
            datacenter: report.tugboat.as_ref().map(|t| t.datacenter().to_string()),
            region: report.region_expected.as_ref().map(|r| r.to_string()),
        };
        let id = match self
            .store
            .storm_verdict(
                &key,
                report.verdict.as_str(),
                &reason_of(report),
                &reason_text(report),
                &at,
            )
            .await
        {
            Ok(Some(id)) => id,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot record a verdict on its storm");
                return;
            }
        };
        self.evaluate(id, chat).await;
    }

    /// When the sample has every verdict and they disagree, starts checking the rest within
    /// the budget (once: the storm's mode moves from `sample` to `budget` in one statement);
    /// then the message shows the latest state.
    async fn evaluate(&self, id: StormId, chat: Arc<dyn StormChannel>) {
        // A replica showing the storm's verdicts watches it too (its end, its checker).
        self.watch(id, chat.clone());
        match self.view(id).await {
            Ok(Some(view)) => {
                if view.mode == StormMode::Sample && view.agreement == Agreement::Disagreed {
                    match self
                        .store
                        .set_storm_mode(id, &[StormMode::Sample], StormMode::Budget)
                        .await
                    {
                        Ok(Some(storm)) => {
                            tracing::info!(storm = %id, "the sample disagrees: checking the rest within the budget");
                            self.pump(id, storm.epoch, chat.clone());
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot start checking the rest"),
                    }
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot read the storm"),
        }
        self.refresh(id, chat);
    }

    /// What an on-call member's click asks of storm `id` (the caller checked membership and
    /// that the message offered it). Audited.
    pub async fn act(
        &self,
        id: StormId,
        action: StormAction,
        actor: &str,
        chat: Arc<dyn StormChannel>,
    ) -> Result<Acted> {
        let changed = match action {
            StormAction::CheckAll => {
                self.store
                    .set_storm_mode(
                        id,
                        &[StormMode::Sample, StormMode::Stopped],
                        StormMode::Budget,
                    )
                    .await?
            }
            StormAction::Stop => {
                self.store
                    .set_storm_mode(
                        id,
                        &[StormMode::Sample, StormMode::Budget],
                        StormMode::Stopped,
                    )
                    .await?
            }
        };
        let Some(storm) = changed else {
            return Ok(Acted::Nothing);
        };
        let first = self
            .store
            .storm_locations(id)
            .await?
            .into_iter()
            .next()
            .context("a storm without locations")?;
        self.store
            .append_audit(&AuditEntry {
                at: Utc::now(),
                kind: AuditKind::Storm,
                actor: Some(actor.to_string()),
                channel: storm.message.as_ref().map(|m| m.channel.clone()),
                location: first.key.location,
                environment: storm.environment,
                verdict: None,
                target: None,
                link: None,
                detail: Some(format!("storm {id}: {}", action.as_str())),
            })
            .await
            .context("auditing the storm action")?;
        self.watch(id, chat.clone());
        self.refresh(id, chat.clone());
        Ok(match action {
            StormAction::CheckAll => {
                self.pump(id, storm.epoch, chat);
                Acted::CheckingAll
            }
            StormAction::Stop => Acted::Stopped,
        })
    }

    /// Checks the rest of storm `id` within the budget while it is at `epoch`: one location
    /// claimed (once across replicas; each claim renews this replica's heartbeat as the
    /// storm's checker), its check started, then a pause of [`StormSettings::build_interval`].
    /// A replica watching the storm takes over (a new epoch) if the heartbeat goes stale.
    fn pump(&self, id: StormId, epoch: i64, chat: Arc<dyn StormChannel>) {
        let this = self.clone();
        self.spawn(async move {
            let mut failures = 0;
            loop {
                let next = match this.store.claim_storm_check(id, epoch, &this.instance).await {
                    Ok(Some(l)) => l,
                    Ok(None) => break,
                    // A store that keeps failing ends the checking here; a watching replica
                    // takes it over once the heartbeat is stale.
                    Err(e) if failures >= 3 => {
                        tracing::error!(error = %e, storm = %id, "cannot claim the storm's next check; checking stops");
                        break;
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, "cannot claim the storm's next check; trying later");
                        tokio::time::sleep(this.settings.build_interval()).await;
                        continue;
                    }
                };
                failures = 0;
                match chat.check(&next).await {
                    Ok(()) => this.metrics.storm_checks_started(STORM_BUDGET, 1),
                    Err(e) => {
                        tracing::error!(error = format!("{e:#}"), location = %next.key.location, "could not start a storm check")
                    }
                }
                this.refresh(id, chat.clone());
                tokio::time::sleep(this.settings.build_interval()).await;
            }
            tracing::info!(storm = %id, epoch, "storm checks within the budget: done or stopped");
        });
    }

    /// Edits storm `id`'s message soon (coalesced: at most once per [`REFRESH_EVERY`] on
    /// this replica, always with the latest state).
    pub fn refresh(&self, id: StormId, chat: Arc<dyn StormChannel>) {
        let mut refreshers = lock(&self.local.refreshers);
        if let Some(n) = refreshers.get(&id) {
            n.notify_one();
            return;
        }
        let notify = Arc::new(Notify::new());
        notify.notify_one();
        refreshers.insert(id, notify.clone());
        drop(refreshers);
        let this = self.clone();
        self.spawn(async move {
            loop {
                notify.notified().await;
                let ended = match this.show(id, chat.as_ref()).await {
                    Ok(Shown { active, deferred }) => {
                        if deferred {
                            // Slack's edit budget kept it for verdicts: try again next round.
                            notify.notify_one();
                        }
                        !active
                    }
                    Err(e) => {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "could not edit the storm message"
                        );
                        false
                    }
                };
                if ended {
                    lock(&this.local.refreshers).remove(&id);
                    break;
                }
                tokio::time::sleep(REFRESH_EVERY).await;
            }
        });
    }

    /// Shows the latest state in storm `id`'s message: whether the storm is still active, and
    /// whether the edit was deferred (Slack's edit budget).
    async fn show(&self, id: StormId, chat: &dyn StormChannel) -> Result<Shown> {
        let Some(storm) = self.store.storm(id).await? else {
            return Ok(Shown {
                active: false,
                deferred: false,
            });
        };
        let Some(message) = &storm.message else {
            return Ok(Shown {
                active: storm.active,
                deferred: false,
            });
        };
        let locations = self.store.storm_locations(id).await?;
        let view = StormView::of(&storm, &locations);
        // Counts are deferrable like progress; what the sample says when it changes (the cause
        // line on-call waits for) and the end are urgent, like a verdict.
        let news = lock(&self.local.agreements).get(&id) != Some(&view.agreement);
        let shown = chat.show(message, &view, !storm.active || news).await?;
        if shown {
            lock(&self.local.agreements).insert(id, view.agreement.clone());
        }
        if !storm.active {
            lock(&self.local.agreements).remove(&id);
        }
        Ok(Shown {
            active: storm.active,
            deferred: !shown,
        })
    }

    /// Watches storm `id` (once per replica) while it is active: every
    /// [`StormSettings::watch_every`] it answers alerts still waiting for their pointer, takes
    /// over the budgeted checker when its heartbeat is stale, and ends the storm after a window
    /// with no new location.
    fn watch(&self, id: StormId, chat: Arc<dyn StormChannel>) {
        if !lock(&self.local.watched).insert(id) {
            return;
        }
        let this = self.clone();
        self.spawn(async move {
            this.watching(id, chat).await;
            lock(&this.local.watched).remove(&id);
        });
    }

    async fn watching(&self, id: StormId, chat: Arc<dyn StormChannel>) {
        let every = self.settings.watch_every();
        loop {
            let storm = match self.store.storm(id).await {
                Ok(Some(s)) if s.active => s,
                Ok(_) => return,
                // The next firing watches again (and ends a quiet storm itself).
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the storm; not watching it");
                    return;
                }
            };
            self.point(id, chat.clone());
            if storm.mode == StormMode::Budget {
                match self
                    .store
                    .take_storm_pump(id, &self.instance, self.settings.pump_timeout())
                    .await
                {
                    Ok(Some(taken)) => {
                        tracing::warn!(storm = %id, previous = ?storm.pumped_by, epoch = taken.epoch, "the storm's budgeted checker went quiet: taking it over");
                        self.pump(id, taken.epoch, chat.clone());
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot look at the storm's checker"),
                }
            }
            let quiet_at = storm.last_firing_at
                + chrono::Duration::from_std(self.settings.window).unwrap_or_default();
            let wait = (quiet_at - Utc::now()).to_std().unwrap_or_default();
            if wait > every {
                tokio::time::sleep(every).await;
                continue;
            }
            tokio::time::sleep(wait + Duration::from_millis(50)).await;
            match self.store.end_quiet_storm(id, self.settings.window).await {
                Ok(Some(_)) => {
                    self.ended(id, chat.clone()).await;
                    return;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot end the quiet storm"),
            }
        }
    }

    /// Storm `id` ended (this replica ended it: once): every location goes to the audit, and
    /// the message shows the end.
    async fn ended(&self, id: StormId, chat: Arc<dyn StormChannel>) {
        let result: Result<()> = async {
            let storm = self.store.storm(id).await?.context("the ended storm")?;
            self.metrics.storm_ended(storm.environment);
            // From the store: the firing that ended it may have declared the next one.
            self.observe_active().await;
            let locations = self.store.storm_locations(id).await?;
            tracing::warn!(storm = %id, locations = locations.len(), "alert storm ended");
            let at = Utc::now();
            for l in &locations {
                let role = if l.sample {
                    "sampled"
                } else if l.checked {
                    "checked"
                } else {
                    "linked to the storm"
                };
                self.store
                    .append_audit(&AuditEntry {
                        at,
                        kind: AuditKind::Storm,
                        actor: None,
                        channel: Some(l.alert.channel.clone()),
                        location: l.key.location.clone(),
                        environment: storm.environment,
                        verdict: l.verdict.clone(),
                        target: None,
                        link: None,
                        detail: Some(format!(
                            "storm {id} of {} locations ended: {role}",
                            locations.len()
                        )),
                    })
                    .await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = format!("{e:#}"), "could not record the storm's end");
        }
        // The pointer poster answers what still waits, then ends; the lookup worker looks up
        // what is queued, then ends.
        self.point(id, chat.clone());
        self.local.locators.forget(id);
        self.refresh(id, chat);
    }
}
