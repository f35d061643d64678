//! `SlackSink`: the coordinator's [`Sink`] — check progress and results rendered (by
//! `blocks.rs`) into every waiting Slack message, edited in place.
//!
//! A verdict shown in an incident's diagnosis message is shown with the incident's status
//! (resolved, fixed, repeats: `incident/` records it as the incident's diagnosis); a new
//! verdict for a location with an open incident that differs from its diagnosis says so in the
//! thread ("was `X`, now `Y`"). Once shown, a new verdict is counted on its location's storm
//! (`storm/`), if it is in one.
//!
//! A verdict Slack refuses, or that keeps meeting 5xx, is shown as plain text
//! (`blocks::plain_report`); when even that edit fails it is posted in the thread, so a thread
//! is never silent. This module must NOT decide anything about the check (the coordinator
//! does) or build Block Kit itself.

use super::alert_message::IncidentThreads;
use super::blocks;
use super::button::report_context;
use super::transport::Backoff;
use super::web::{EditTurn, SlackError, SlackWeb};
use crate::check::coordinator::Sink;
use crate::check::progress::ProgressView;
use crate::config::Config;
use crate::diagnosis::verdict::Report;
use crate::domain::CheckKey;
use crate::incident::Incidents;
use crate::store::{MessageRef, Waiter};
use crate::storm::{StormChannel, Storms};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Renders check progress and results into the waiting Slack messages.
pub struct SlackSink {
    config: Arc<Config>,
    web: SlackWeb,
    incidents: Incidents,
    storms: Storms,
    /// The storm's Slack side, set once the handler exists ([`SlackSink::set_storm_channel`]).
    storm_chat: OnceLock<Arc<dyn StormChannel>>,
}

impl SlackSink {
    /// A sink posting through `web`, consulting `incidents` and `storms` for each verdict.
    pub fn new(config: Arc<Config>, web: SlackWeb, incidents: Incidents, storms: Storms) -> Self {
        SlackSink {
            config,
            web,
            incidents,
            storms,
            storm_chat: OnceLock::new(),
        }
    }

    /// The storm's Slack side (it needs the handler, built after the sink).
    pub fn set_storm_channel(&self, chat: Arc<dyn StormChannel>) {
        let _ = self.storm_chat.set(chat);
    }
}

/// How many times a `chat.update` that got no usable answer (HTTP 5xx, no answer, timeout)
/// is tried in all, with jittered backoff between tries, before the plain-text fallback.
const UPDATE_TRIES: u32 = 3;

impl SlackSink {
    /// `chat.update`, tried again after a jittered backoff while Slack answers 5xx or nothing
    /// (up to [`UPDATE_TRIES`] tries). A refusal is returned at once: it would not change.
    async fn update_retrying(
        &self,
        w: &Waiter,
        text: &str,
        blocks: Vec<serde_json::Value>,
        mut turn: Option<EditTurn>,
    ) -> Result<(), SlackError> {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        let mut tries = 1;
        loop {
            let attempt = match turn.take() {
                Some(turn) => {
                    self.web
                        .update_in_turn(turn, &w.channel, &w.message_ts, text, Some(blocks.clone()))
                        .await
                }
                None => {
                    self.web
                        .update(&w.channel, &w.message_ts, text, Some(blocks.clone()))
                        .await
                }
            };
            match attempt {
                Err(e) if e.is_retryable() && tries < UPDATE_TRIES => {
                    let delay = backoff.next();
                    tracing::warn!(
                        channel = %w.channel,
                        kind = e.kind(),
                        retry_in_ms = delay.as_millis() as u64,
                        "chat.update failed; trying again: {e}"
                    );
                    tokio::time::sleep(delay).await;
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    /// Shows `text` + `blocks` in the waiter's message; when Slack refuses them (or keeps
    /// failing), shows `plain` instead, with no blocks (an empty list, so Slack drops the old
    /// ones); when even the edit fails, posts `plain` as a new message in the thread. Every
    /// step that fails is logged; if nothing could be shown, at error level and counted in
    /// `linkbot_slack_undelivered_total`.
    async fn show(
        &self,
        w: &Waiter,
        what: &'static str,
        text: &str,
        blocks: Vec<serde_json::Value>,
        plain: &str,
        turn: Option<EditTurn>,
    ) {
        let first = match self.update_retrying(w, text, blocks, turn).await {
            Ok(()) => return,
            Err(e) => e,
        };
        if first.is_token_refused() {
            tracing::error!(channel = %w.channel, what, "could not show a message: {first}");
            self.web.metrics().undelivered.inc();
            return;
        }
        tracing::error!(
            channel = %w.channel,
            what,
            kind = first.kind(),
            code = first.code(),
            messages = ?first.response_messages(),
            "Slack did not take the message; showing the plain-text version: {first}"
        );
        let edited = match self.update_retrying(w, plain, Vec::new(), None).await {
            Ok(()) => return,
            Err(e) => e,
        };
        tracing::error!(channel = %w.channel, what, kind = edited.kind(), code = edited.code(), "the plain-text edit failed too; posting it in the thread: {edited}");
        let thread = w.thread_ts.as_deref().unwrap_or(&w.message_ts);
        if let Err(e) = self
            .web
            .post_message(&w.channel, Some(thread), plain, None)
            .await
        {
            self.web.metrics().undelivered.inc();
            tracing::error!(
                channel = %w.channel,
                what,
                kind = e.kind(),
                code = e.code(),
                "nothing could be shown in the thread: {e}"
            );
        }
    }
}

impl SlackSink {
    /// Compares a new verdict shown in `w` with the open incident's diagnosis, and says so in
    /// `w`'s thread when it differs.
    async fn recheck(&self, w: &Waiter, report: &Report) {
        let (Some(location), Some(environment)) = (&report.location, report.environment) else {
            return;
        };
        let key = CheckKey {
            location: location.clone(),
            environment,
        };
        let chat = IncidentThreads::new(
            self.web.clone(),
            self.config.clone(),
            self.incidents.store().clone(),
        );
        if let Some(notice) = self.incidents.rechecked(&key, report, &chat).await {
            let thread = w.thread_ts.as_deref().unwrap_or(&w.message_ts);
            if let Err(e) = self
                .web
                .post_message(
                    &w.channel,
                    Some(thread),
                    &blocks::incident_notice(&notice),
                    None,
                )
                .await
            {
                tracing::warn!(channel = %w.channel, error = %e, "could not say the verdict changed");
            }
        }
    }
}

#[async_trait::async_trait]
impl Sink for SlackSink {
    async fn progress(&self, waiters: &[Waiter], progress: &ProgressView) -> bool {
        let (text, blocks) = blocks::progress(progress);
        let plain = blocks::plain_progress(progress);
        let mut all_shown = true;
        for w in waiters {
            // One try: the next progress edit comes soon, and the verdict retries on its own.
            // A progress edit is the first thing Slack's edit budget defers.
            match self
                .web
                .update_progress(&w.channel, &w.message_ts, &text, Some(blocks.clone()))
                .await
            {
                Ok(true) => {}
                Ok(false) => all_shown = false,
                Err(e @ (SlackError::Api { .. } | SlackError::InvalidBlocks { .. })) => {
                    tracing::error!(channel = %w.channel, code = e.code(), messages = ?e.response_messages(), "Slack refused a progress message; showing it as plain text: {e}");
                    if let Err(e) = self
                        .web
                        .update(&w.channel, &w.message_ts, &plain, Some(Vec::new()))
                        .await
                    {
                        tracing::warn!(channel = %w.channel, error = %e, "could not update a progress message");
                    }
                }
                Err(e) => {
                    tracing::warn!(channel = %w.channel, error = %e, "could not update a progress message")
                }
            }
        }
        all_shown
    }

    async fn finished(&self, waiters: &[Waiter], report: &Report, reused_age: Option<Duration>) {
        // Slack's edit budget first, then the rendering: a verdict waiting for its turn (a
        // thousand builds ending together) holds its report, not its rendered message.
        let mut turn = match waiters {
            [] => None,
            _ => Some(self.web.edit_turn().await),
        };
        let ctx = report_context(&self.config, report, reused_age);
        let blocks = blocks::report(report, &ctx);
        let text = blocks::fallback_text(report);
        let plain = blocks::plain_report(report, &self.config.check.runbook_url);
        let mut rechecked = false;
        for w in waiters {
            let turn = match turn.take() {
                Some(turn) => turn,
                None => self.web.edit_turn().await,
            };
            let message = MessageRef {
                channel: w.channel.clone(),
                ts: w.message_ts.clone(),
            };
            match self.incidents.shown(&message, report).await {
                Some(status) => {
                    let ctx = blocks::with_incident(ctx.clone(), &status);
                    let preface = blocks::incident_preface(&status);
                    let plain = match preface {
                        Some(p) => format!("{p}\n{plain}"),
                        None => plain.clone(),
                    };
                    let blocks = blocks::report(report, &ctx);
                    self.show(w, "verdict", &text, blocks, &plain, Some(turn))
                        .await;
                }
                None => {
                    self.show(w, "verdict", &text, blocks.clone(), &plain, Some(turn))
                        .await;
                    // A new result for a location with an open incident (a re-run, a
                    // request): say plainly when it differs from the incident's diagnosis.
                    if reused_age.is_none() && !rechecked {
                        rechecked = true;
                        self.recheck(w, report).await;
                    }
                }
            }
        }
        // Then (never before the verdict is shown) a verdict for a location of an active storm
        // counts there; a reused result does not: it was counted when it was reached.
        if reused_age.is_none() {
            if let Some(chat) = self.storm_chat.get() {
                self.storms.verdict(report, chat.clone()).await;
            }
        }
    }

    async fn failed(&self, waiters: &[Waiter], key: &CheckKey, reason: &str) {
        let plain = blocks::plain_failure(&key.location, key.environment, reason);
        for w in waiters {
            self.show(w, "failure", &plain, Vec::new(), &plain, None)
                .await;
        }
    }
}
