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
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

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
    /// Storms whose end this replica watches.
    watched: Mutex<HashSet<StormId>>,
    /// Pointer replies waiting, per storm: one task posts them one at a time, so they never
    /// fill Slack's per-channel queue ahead of the sample's threads and the verdicts, and a
    /// waiting pointer costs its two message refs, not a task.
    pointers: Mutex<HashMap<StormId, mpsc::UnboundedSender<Pointer>>>,
    /// Lookups of where joining locations are, per storm (see `locate.rs`).
    locators: locate::Locators,
}

/// A pointer reply to post: under `alert`, to the storm message when known.
struct Pointer {
    alert: MessageRef,
    message: Option<MessageRef>,
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
    local: Arc<Local>,
    metrics: Metrics,
}

impl Storms {
    /// A workflow with `[storm]` settings over `store`, counting in `metrics`.
    pub fn new(
        settings: StormSettings,
        store: Arc<dyn Store>,
        survey: Arc<dyn Survey>,
        metrics: Metrics,
    ) -> Self {
        Storms {
            settings,
            store,
            survey,
            local: Arc::new(Local::default()),
            metrics,
        }
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
            tokio::spawn(async move { this.ended(ended.id, chat).await });
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
                self.point(alert, storm.id, message.as_ref(), chat.clone());
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
        tokio::spawn(async move {
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
                self.point(alert, id, Some(&message), chat.clone());
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

    /// Queues the pointer reply under `alert` (posted in order by the storm's pointer task).
    fn point(
        &self,
        alert: &MessageRef,
        id: StormId,
        message: Option<&MessageRef>,
        chat: Arc<dyn StormChannel>,
    ) {
        let pointer = Pointer {
            alert: alert.clone(),
            message: message.cloned(),
        };
        let mut pointers = lock(&self.local.pointers);
        let pointer = match pointers.get(&id) {
            Some(tx) => match tx.send(pointer) {
                Ok(()) => return,
                // Its task ended (the storm ended here): a new one posts it.
                Err(mpsc::error::SendError(p)) => p,
            },
            None => pointer,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(pointer);
        pointers.insert(id, tx);
        drop(pointers);
        let this = self.clone();
        tokio::spawn(async move { this.post_pointers(id, rx, chat).await });
    }

    /// Posts storm `id`'s pointer replies one at a time, until the storm ends on this replica.
    async fn post_pointers(
        &self,
        id: StormId,
        mut queue: mpsc::UnboundedReceiver<Pointer>,
        chat: Arc<dyn StormChannel>,
    ) {
        let mut link: Option<String> = None;
        while let Some(p) = queue.recv().await {
            if link.is_none() {
                if let Some(m) = &p.message {
                    link = chat.permalink(m).await;
                }
            }
            match chat.point(&p.alert, id, link.as_deref()).await {
                Ok(()) => {
                    self.metrics.storm_alerts_linked.inc();
                }
                Err(e) => tracing::error!(
                    error = format!("{e:#}"),
                    "could not answer an alert of the storm"
                ),
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
    /// claimed (once across replicas), its check started, then a pause of
    /// [`StormSettings::build_interval`].
    fn pump(&self, id: StormId, epoch: i64, chat: Arc<dyn StormChannel>) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut failures = 0;
            loop {
                let next = match this.store.claim_storm_check(id, epoch).await {
                    Ok(Some(l)) => l,
                    Ok(None) => break,
                    // A store that keeps failing (or closed on shutdown) ends the checking;
                    // on-call can press Stop, then Check all, to start it again.
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
        tokio::spawn(async move {
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
        let shown = chat
            .show(message, &StormView::of(&storm, &locations), !storm.active)
            .await?;
        Ok(Shown {
            active: storm.active,
            deferred: !shown,
        })
    }

    /// Watches storm `id` (once per replica) and ends it after a window with no new location.
    fn watch(&self, id: StormId, chat: Arc<dyn StormChannel>) {
        if !lock(&self.local.watched).insert(id) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let storm = match this.store.storm(id).await {
                    Ok(Some(s)) if s.active => s,
                    Ok(_) => break,
                    // The next firing watches again (and ends a quiet storm itself).
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the storm; not watching it");
                        break;
                    }
                };
                let quiet_at = storm.last_firing_at
                    + chrono::Duration::from_std(this.settings.window).unwrap_or_default();
                let wait = (quiet_at - Utc::now()).to_std().unwrap_or_default();
                tokio::time::sleep(wait + Duration::from_millis(50)).await;
                match this.store.end_quiet_storm(id, this.settings.window).await {
                    Ok(Some(_)) => {
                        this.ended(id, chat.clone()).await;
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot end the quiet storm"),
                }
            }
            lock(&this.local.watched).remove(&id);
        });
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
        // The pointer task posts what is queued, then ends; so does the lookup worker.
        lock(&self.local.pointers).remove(&id);
        self.local.locators.forget(id);
        self.refresh(id, chat);
    }
}
