//! What the bot does with each Slack envelope, after the transport has acked it.
//!
//! Mentions and slash commands become checks (or usage), alert messages from configured
//! sources become checks in the alert's thread, and button clicks escalate, page or re-run.
//! Every inbound is de-duplicated through the store first, so a redelivery never starts a
//! second check. Who may act is enforced here: checks only in configured channels, escalations
//! and re-runs only by the on-call user group (when configured), and a click only as its message
//! offered it (the buttons are rendered again from the result the store says that message
//! shows; a forged value is refused and audited). A result is paged once: the page is claimed in
//! the store, so concurrent clicks on any replica send one PagerDuty trigger. The check itself
//! is the coordinator's; this module only turns Slack into requests and results into messages.

use super::alerts::{self, Alert, AttachmentText};
use super::blocks::{self, ButtonValue, ReportContext, TargetButton};
use super::commands::{self, Command};
use super::mrkdwn;
use super::transport::Backoff;
use super::transport::Inbound;
use super::web::{BotIdentity, SlackError, SlackWeb};
use crate::check::coordinator::{Coordinator, Sink};
use crate::check::progress::ProgressView;
use crate::config::{Config, EscalationTarget};
use crate::diagnosis::verdict::Report;
use crate::domain::{Environment, LocationId};
use crate::escalation::github::GitHubClient;
use crate::escalation::pagerduty::PagerDutyClient;
use crate::store::{
    AuditEntry, AuditKind, CheckKey, PageClaim, PageRecord, RequestSource, Requester, Waiter,
};
use anyhow::{Context, Result};
use slack_morphism::prelude::*;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the on-call group's member list is trusted before it is fetched again.
const ONCALL_CACHE: Duration = Duration::from_secs(300);

/// The on-call group's members and when they were fetched.
type OncallMembers = (Instant, HashSet<String>);

/// The escalation clients that are configured (each needs its secret).
#[derive(Clone, Default)]
pub struct Escalators {
    /// PagerDuty, when `PAGERDUTY_ROUTING_KEY` is set.
    pub pagerduty: Option<PagerDutyClient>,
    /// GitHub, when `GITHUB_TOKEN` is set.
    pub github: Option<GitHubClient>,
}

/// The bot's event handling. Cheap to clone.
#[derive(Clone)]
pub struct Handler {
    config: Arc<Config>,
    web: SlackWeb,
    identity: BotIdentity,
    coordinator: Coordinator,
    escalators: Escalators,
    oncall: Arc<Mutex<Option<OncallMembers>>>,
}

/// Renders check progress and results into the waiting Slack messages.
pub struct SlackSink {
    config: Arc<Config>,
    web: SlackWeb,
}

impl SlackSink {
    /// A sink posting through `web`.
    pub fn new(config: Arc<Config>, web: SlackWeb) -> Self {
        SlackSink { config, web }
    }
}

/// The escalation buttons for a report: the verdict's owners first, then the other targets.
pub fn report_context(
    config: &Config,
    report: &Report,
    reused_age: Option<Duration>,
) -> ReportContext {
    let owners: Vec<&EscalationTarget> = config.owners(report.verdict).collect();
    let mut targets: Vec<&EscalationTarget> = config
        .escalation
        .iter()
        .filter(|t| t.slack_channel.is_some() || t.github_repo.is_some())
        .collect();
    targets.sort_by_key(|t| {
        owners
            .iter()
            .position(|o| o.name == t.name)
            .unwrap_or(owners.len())
    });
    let button = |t: &EscalationTarget| TargetButton {
        name: t.name.clone(),
        title: t.title.clone(),
    };
    // Page the first owner with PagerDuty, else any target with PagerDuty.
    let page_target = owners
        .iter()
        .copied()
        .find(|t| t.pagerduty)
        .or_else(|| config.escalation.iter().find(|t| t.pagerduty))
        .map(button);
    ReportContext {
        runbook_url: config.check.runbook_url.clone(),
        targets: targets.into_iter().map(button).collect(),
        page_target,
        reused_age,
        buttons: true,
        preface: None,
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
    ) -> Result<(), SlackError> {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        let mut tries = 1;
        loop {
            match self
                .web
                .update(&w.channel, &w.message_ts, text, Some(blocks.clone()))
                .await
            {
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
    ) {
        let first = match self.update_retrying(w, text, blocks).await {
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
        let edited = match self.update_retrying(w, plain, Vec::new()).await {
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

#[async_trait::async_trait]
impl Sink for SlackSink {
    async fn progress(&self, waiters: &[Waiter], progress: &ProgressView) {
        let (text, blocks) = blocks::progress(progress);
        let plain = blocks::plain_progress(progress);
        for w in waiters {
            // One try: the next progress edit comes soon, and the verdict retries on its own.
            match self
                .web
                .update(&w.channel, &w.message_ts, &text, Some(blocks.clone()))
                .await
            {
                Ok(()) => {}
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
    }

    async fn finished(&self, waiters: &[Waiter], report: &Report, reused_age: Option<Duration>) {
        let ctx = report_context(&self.config, report, reused_age);
        let blocks = blocks::report(report, &ctx);
        let text = blocks::fallback_text(report);
        let plain = blocks::plain_report(report, &self.config.check.runbook_url);
        for w in waiters {
            self.show(w, "verdict", &text, blocks.clone(), &plain).await;
        }
    }

    async fn failed(&self, waiters: &[Waiter], key: &CheckKey, reason: &str) {
        let plain = blocks::plain_failure(&key.location, key.environment, reason);
        for w in waiters {
            self.show(w, "failure", &plain, Vec::new(), &plain).await;
        }
    }
}

fn attachment_text(a: &SlackMessageAttachment) -> AttachmentText {
    AttachmentText {
        title: a.title.clone(),
        pretext: None,
        text: a.text.clone(),
        fallback: a.fallback.clone(),
        fields: a
            .fields
            .iter()
            .flatten()
            .map(|f| {
                (
                    f.title.clone().unwrap_or_default(),
                    f.value.clone().unwrap_or_default(),
                )
            })
            .collect(),
    }
}

/// How long a page claimed but never reported sent or failed (its replica died mid-page) keeps
/// other clicks away: longer than the PagerDuty client's whole retry budget.
const PAGE_CLAIM_STALE: Duration = Duration::from_secs(300);

/// The answer to a Page click on a result already paged (or being paged): who, and when, in
/// the reader's own time zone (Slack's date token, with a UTC fallback).
fn already_paged(record: &PageRecord) -> String {
    let by = mrkdwn::user(&record.paged_by);
    let at = record.paged_at.unwrap_or(record.claimed_at);
    let when = format!(
        "<!date^{}^{{time}}|{} UTC>",
        at.timestamp(),
        at.format("%H:%M")
    );
    match record.paged_at {
        Some(_) => format!(
            ":white_check_mark: Already paged by {by} at {when}: this result is paged once. To page again, Re-run the check and page its new result."
        ),
        None => format!(
            ":hourglass_flowing_sand: Already paged by {by} at {when}; PagerDuty has not answered yet, and the thread will say how it went."
        ),
    }
}

/// The buttons a rendered message offers: each button's `action_id` and parsed value.
fn offered_buttons(blocks: &[serde_json::Value]) -> Vec<(String, ButtonValue)> {
    blocks
        .iter()
        .filter(|b| b["type"] == "actions")
        .filter_map(|b| b["elements"].as_array())
        .flatten()
        .filter(|e| e["type"] == "button")
        .filter_map(|e| {
            let id = e["action_id"].as_str()?;
            let (value, _) = ButtonValue::parse(e["value"].as_str()?)?;
            Some((id.to_string(), value))
        })
        .collect()
}

/// The parts of a channel message the alert rules read, from a raw event (used when
/// slack-morphism's model does not match a message's shape).
fn raw_message(v: &serde_json::Value) -> Option<RawMessage> {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    if s("type").as_deref() != Some("message") {
        return None;
    }
    let attachments = v
        .get("attachments")
        .and_then(|a| a.as_array())
        .map(|list| {
            list.iter()
                .map(|a| {
                    let g = |k: &str| a.get(k).and_then(|x| x.as_str()).map(str::to_string);
                    AttachmentText {
                        title: g("title"),
                        pretext: g("pretext"),
                        text: g("text"),
                        fallback: g("fallback"),
                        fields: a
                            .get("fields")
                            .and_then(|f| f.as_array())
                            .map(|fs| {
                                fs.iter()
                                    .map(|f| {
                                        let t = f
                                            .get("title")
                                            .and_then(|x| x.as_str())
                                            .unwrap_or("")
                                            .to_string();
                                        let val = f
                                            .get("value")
                                            .and_then(|x| x.as_str())
                                            .unwrap_or("")
                                            .to_string();
                                        (t, val)
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Some(RawMessage {
        channel: s("channel")?,
        ts: s("ts")?,
        thread_ts: s("thread_ts"),
        subtype: s("subtype"),
        user: s("user"),
        bot_id: s("bot_id"),
        app_id: s("app_id").or_else(|| {
            v.get("bot_profile")
                .and_then(|b| b.get("app_id"))
                .and_then(|x| x.as_str())
                .map(str::to_string)
        }),
        text: s("text").unwrap_or_default(),
        attachments,
    })
}

/// A channel message, reduced to what the bot reads.
#[derive(Debug, Clone)]
struct RawMessage {
    channel: String,
    ts: String,
    thread_ts: Option<String>,
    subtype: Option<String>,
    user: Option<String>,
    bot_id: Option<String>,
    app_id: Option<String>,
    text: String,
    attachments: Vec<AttachmentText>,
}

fn from_model(m: &SlackMessageEvent) -> Option<RawMessage> {
    let bot_profile_app = m.sender.bot_profile.as_ref().map(|b| b.app_id.clone());
    Some(RawMessage {
        channel: m.origin.channel.as_ref()?.to_string(),
        ts: m.origin.ts.to_string(),
        thread_ts: m.origin.thread_ts.as_ref().map(|t| t.to_string()),
        subtype: m.subtype.as_ref().map(|s| {
            serde_json::to_value(s)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "other".into())
        }),
        user: m.sender.user.as_ref().map(|u| u.to_string()),
        bot_id: m.sender.bot_id.as_ref().map(|b| b.to_string()),
        app_id: bot_profile_app,
        text: m
            .content
            .as_ref()
            .and_then(|c| c.text.clone())
            .unwrap_or_default(),
        attachments: m
            .content
            .as_ref()
            .and_then(|c| c.attachments.as_ref())
            .map(|a| a.iter().map(attachment_text).collect())
            .unwrap_or_default(),
    })
}

impl Handler {
    /// A handler for the bot whose identity `auth.test` returned.
    pub fn new(
        config: Arc<Config>,
        web: SlackWeb,
        identity: BotIdentity,
        coordinator: Coordinator,
        escalators: Escalators,
    ) -> Self {
        Handler {
            config,
            web,
            identity,
            coordinator,
            escalators,
            oncall: Arc::new(Mutex::new(None)),
        }
    }

    /// Handles one inbound envelope (already acked). Errors are logged, never returned to Slack.
    pub async fn handle(&self, inbound: Inbound) {
        let result = match inbound {
            Inbound::Event {
                retry_attempt,
                event,
                ..
            } => self.on_event(retry_attempt, *event).await,
            Inbound::Command {
                envelope_id,
                command,
            } => self.on_command(&envelope_id, *command).await,
            Inbound::Interaction {
                envelope_id,
                interaction,
            } => self.on_interaction(&envelope_id, *interaction).await,
        };
        if let Err(e) = result {
            tracing::error!(error = format!("{e:#}"), "handling a Slack envelope failed");
        }
    }

    fn watched(&self, channel: &str) -> bool {
        self.config
            .slack
            .channels
            .iter()
            .any(|c| c.as_str() == channel)
    }

    /// Whether this delivery is new. When the store cannot say (down, full, read-only), the
    /// delivery is handled as new rather than dropped: the person then gets an answer (the
    /// check itself needs the store, so it answers with the store's problem), never silence.
    /// A redelivery in that window can at worst repeat that answer; it cannot start a second
    /// check, which only the store's claim decides.
    async fn first_seen(&self, key: &str) -> Result<bool> {
        match self.coordinator.store().first_seen(key).await {
            Ok(seen) => Ok(seen),
            Err(e) => {
                tracing::warn!(
                    key,
                    error = format!("{:#}", anyhow::Error::new(e)),
                    "cannot record the delivery in the store; handling it as new"
                );
                Ok(true)
            }
        }
    }

    async fn on_event(&self, retry_attempt: u32, event: SlackPushEventCallback) -> Result<()> {
        if !self
            .first_seen(&format!("event:{}", event.event_id))
            .await?
        {
            tracing::info!(event_id = %event.event_id, retry_attempt, "redelivered event ignored");
            return Ok(());
        }
        match event.event {
            SlackEventCallbackBody::AppMention(m) => {
                let channel = m.channel.to_string();
                if !self.watched(&channel) {
                    tracing::info!(%channel, "mention in a channel that is not configured: ignored");
                    return Ok(());
                }
                let user = m.user.to_string();
                let ts = m.origin.ts.to_string();
                let thread = m
                    .origin
                    .thread_ts
                    .as_ref()
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| ts.clone());
                let text = m.content.text.clone().unwrap_or_default();
                self.on_request(&channel, &user, &thread, &text, RequestSource::Mention)
                    .await
            }
            SlackEventCallbackBody::Message(m) => match from_model(&m) {
                Some(msg) => self.on_message(msg).await,
                None => Ok(()),
            },
            SlackEventCallbackBody::Unknown(raw) => match raw_message(&raw) {
                Some(msg) => self.on_message(msg).await,
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// A channel message: only alerts from configured sources in watched channels matter.
    async fn on_message(&self, msg: RawMessage) -> Result<()> {
        if !self.watched(&msg.channel) {
            return Ok(());
        }
        // Never react to ourselves; edits, deletions and joins are not alerts.
        let ours = msg.bot_id.is_some() && msg.bot_id == self.identity.bot_id
            || msg.user.as_deref() == Some(self.identity.user_id.as_str());
        if ours || matches!(msg.subtype.as_deref(), Some(s) if s != "bot_message") {
            return Ok(());
        }
        // An app posting with chat.postMessage has bot_id and no subtype: filter on the sender.
        let from_source = self.config.slack.alert_sources.iter().any(|s| {
            Some(s.as_str()) == msg.bot_id.as_deref() || Some(s.as_str()) == msg.app_id.as_deref()
        });
        if !from_source {
            return Ok(());
        }
        match alerts::classify(&msg.text, &msg.attachments) {
            Alert::Firing {
                locations,
                environment,
            } => {
                let environment = environment.unwrap_or(self.config.check.default_environment);
                let thread = msg.thread_ts.clone().unwrap_or_else(|| msg.ts.clone());
                for location in locations.into_iter().take(10) {
                    let req = CheckKey {
                        location,
                        environment,
                    };
                    let requester = Requester {
                        user: None,
                        channel: Some(msg.channel.clone()),
                        source: RequestSource::Alert,
                    };
                    self.start_check(&msg.channel, &thread, &req, &requester, false)
                        .await?;
                }
                Ok(())
            }
            Alert::Resolved => {
                tracing::info!(channel = %msg.channel, "resolved alert: no check");
                Ok(())
            }
            Alert::NoLocation(why) => {
                let thread = msg.thread_ts.clone().unwrap_or_else(|| msg.ts.clone());
                self.web
                    .post_message(
                        &msg.channel,
                        Some(&thread),
                        // `why` quotes the alert's text escaped (alerts::classify).
                        &format!(":warning: I can't check this alert: {why}."),
                        None,
                    )
                    .await?;
                Ok(())
            }
            Alert::NotOurs => Ok(()),
        }
    }

    /// A mention or slash command text from `user`, answered in `thread`.
    async fn on_request(
        &self,
        channel: &str,
        user: &str,
        thread: &str,
        text: &str,
        source: RequestSource,
    ) -> Result<()> {
        match commands::parse(text) {
            Command::Check {
                location,
                environment,
            } => {
                let req = CheckKey {
                    location,
                    environment: environment.unwrap_or(self.config.check.default_environment),
                };
                if !self.config.environments.contains_key(&req.environment) {
                    self.web
                        .post_message(
                            channel,
                            Some(thread),
                            &format!("The `{}` environment is not configured.", req.environment),
                            None,
                        )
                        .await?;
                    return Ok(());
                }
                let requester = Requester {
                    user: Some(user.to_string()),
                    channel: Some(channel.to_string()),
                    source,
                };
                self.start_check(channel, thread, &req, &requester, false)
                    .await
            }
            Command::Help => {
                self.web
                    .post_message(channel, Some(thread), commands::USAGE, None)
                    .await?;
                Ok(())
            }
            Command::Status => {
                let text = self.status_text().await?;
                self.web
                    .post_message(channel, Some(thread), &text, None)
                    .await?;
                Ok(())
            }
            Command::Invalid(why) => {
                self.web
                    .post_message(
                        channel,
                        Some(thread),
                        &format!("{why}\n\n{}", commands::USAGE),
                        None,
                    )
                    .await?;
                Ok(())
            }
        }
    }

    async fn status_text(&self) -> Result<String> {
        let checks = self.coordinator.store().in_flight().await?;
        if checks.is_empty() {
            return Ok("No checks are running.".into());
        }
        let now = chrono::Utc::now();
        let lines: Vec<String> = checks
            .iter()
            .map(|c| {
                let age = (now - c.started_at).to_std().unwrap_or_default();
                format!(
                    "• `{}` ({}) — {} for {}",
                    c.key.location,
                    c.key.environment,
                    mrkdwn::escape_composed(&c.stage),
                    crate::format::human(age)
                )
            })
            .collect();
        Ok(format!(
            "*Checks running ({})*\n{}",
            checks.len(),
            lines.join("\n")
        ))
    }

    /// Posts the message that will become the diagnosis, then hands the request over.
    async fn start_check(
        &self,
        channel: &str,
        thread: &str,
        req: &CheckKey,
        requester: &Requester,
        fresh: bool,
    ) -> Result<()> {
        let starting = ProgressView::new(req.clone());
        let (text, progress) = blocks::progress(&starting);
        let ts = match self
            .web
            .post_message(channel, Some(thread), &text, Some(progress))
            .await
        {
            Ok(ts) => ts,
            // Slack refused the Block Kit version: the same message as plain text.
            Err(e @ (SlackError::Api { .. } | SlackError::InvalidBlocks { .. })) => {
                tracing::error!(channel, code = e.code(), messages = ?e.response_messages(), "Slack refused the progress message; posting it as plain text: {e}");
                let plain = blocks::plain_progress(&starting);
                self.web
                    .post_message(channel, Some(thread), &plain, None)
                    .await?
            }
            Err(e) => return Err(e.into()),
        };
        let waiter = Waiter {
            channel: channel.to_string(),
            message_ts: ts.clone(),
            thread_ts: Some(thread.to_string()),
            user: requester.user.clone(),
        };
        match self
            .coordinator
            .request(req, requester, waiter, fresh)
            .await
        {
            Ok(outcome) => {
                tracing::info!(location = %req.location, environment = %req.environment, source = requester.source.as_str(), ?outcome, "check requested");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "could not start a check");
                let why = e
                    .chain()
                    .find_map(|c| c.downcast_ref::<crate::store::StoreError>())
                    .map(|s| s.user_message())
                    .unwrap_or("the bot's store is unavailable.");
                self.web
                    .update(
                        channel,
                        &ts,
                        &format!("The check could not be started: {why} Try again in a minute."),
                        Some(Vec::new()),
                    )
                    .await?;
                Ok(())
            }
        }
    }

    async fn on_command(&self, envelope_id: &str, cmd: SlackCommandEvent) -> Result<()> {
        if !self.first_seen(&format!("envelope:{envelope_id}")).await? {
            return Ok(());
        }
        let channel = cmd.channel_id.to_string();
        let user = cmd.user_id.to_string();
        let text = cmd.text.clone().unwrap_or_default();
        if !self.watched(&channel) {
            let allowed: Vec<String> = self
                .config
                .slack
                .channels
                .iter()
                .map(|c| mrkdwn::channel(c))
                .collect();
            self.web
                .post_ephemeral(
                    &channel,
                    &user,
                    None,
                    &format!("linkbot runs checks only in {}.", allowed.join(", ")),
                    None,
                )
                .await?;
            return Ok(());
        }
        match commands::parse(&text) {
            Command::Check {
                location,
                environment,
            } => {
                let env = environment.unwrap_or(self.config.check.default_environment);
                self.web
                    .post_ephemeral(
                        &channel,
                        &user,
                        None,
                        &format!(
                            "Checking `{location}` ({env}): follow the thread in this channel."
                        ),
                        None,
                    )
                    .await?;
                let root = self
                    .web
                    .post_message(
                        &channel,
                        None,
                        &format!(
                            ":mag: {} asked for a check of `{location}` ({env}).",
                            mrkdwn::user(&user)
                        ),
                        None,
                    )
                    .await?;
                self.on_request(&channel, &user, &root, &text, RequestSource::Slash)
                    .await
            }
            Command::Status => {
                let text = self.status_text().await?;
                self.web
                    .post_ephemeral(&channel, &user, None, &text, None)
                    .await?;
                Ok(())
            }
            Command::Help => {
                self.web
                    .post_ephemeral(&channel, &user, None, commands::USAGE, None)
                    .await?;
                Ok(())
            }
            Command::Invalid(why) => {
                self.web
                    .post_ephemeral(
                        &channel,
                        &user,
                        None,
                        &format!("{why}\n\n{}", commands::USAGE),
                        None,
                    )
                    .await?;
                Ok(())
            }
        }
    }

    /// Whether `user` may escalate and re-run.
    async fn may_act(&self, user: &str) -> Result<bool> {
        let Some(group) = &self.config.slack.oncall_usergroup else {
            return Ok(true);
        };
        {
            let cached = self.oncall.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, members)) = cached.as_ref() {
                if at.elapsed() < ONCALL_CACHE {
                    return Ok(members.contains(user));
                }
            }
        }
        let members: HashSet<String> = self
            .web
            .usergroup_members(group)
            .await?
            .into_iter()
            .collect();
        let ok = members.contains(user);
        *self.oncall.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), members));
        Ok(ok)
    }

    async fn on_interaction(
        &self,
        envelope_id: &str,
        interaction: SlackInteractionEvent,
    ) -> Result<()> {
        let SlackInteractionEvent::BlockActions(ev) = interaction else {
            return Ok(());
        };
        if !self.first_seen(&format!("envelope:{envelope_id}")).await? {
            return Ok(());
        }
        let user = ev
            .user
            .as_ref()
            .map(|u| u.id.to_string())
            .unwrap_or_default();
        let (channel, message_ts) = match &ev.container {
            SlackInteractionActionContainer::Message(m) => (
                m.channel_id
                    .as_ref()
                    .map(|c| c.to_string())
                    .or_else(|| ev.channel.as_ref().map(|c| c.id.to_string())),
                m.message_ts.to_string(),
            ),
            _ => return Ok(()),
        };
        let Some(channel) = channel else {
            return Ok(());
        };
        let thread = ev
            .message
            .as_ref()
            .and_then(|m| m.origin.thread_ts.as_ref().map(|t| t.to_string()))
            .unwrap_or_else(|| message_ts.clone());
        for action in ev.actions.iter().flatten() {
            let action_id = action.action_id.to_string();
            // Each button has its own id (`linkbot_escalate:razee`): dispatch on the kind.
            let kind = blocks::action_kind(&action_id);
            if ![
                blocks::ACTION_ESCALATE,
                blocks::ACTION_PAGE,
                blocks::ACTION_RERUN,
            ]
            .contains(&kind)
            {
                continue;
            }
            let Some((value, location)) = action.value.as_deref().and_then(ButtonValue::parse)
            else {
                tracing::warn!(action_id, "button value not ours: ignored");
                continue;
            };
            if !self.watched(&channel) {
                continue;
            }
            if !self.may_act(&user).await? {
                self.web
                    .post_ephemeral(
                        &channel,
                        &user,
                        Some(&thread),
                        "Only members of the on-call user group can escalate or re-run checks.",
                        None,
                    )
                    .await?;
                continue;
            }
            if !self
                .authorize_click(&channel, &message_ts, &thread, &user, &action_id, &value)
                .await?
            {
                continue;
            }
            match kind {
                blocks::ACTION_RERUN => {
                    let req = CheckKey {
                        location,
                        environment: value.environment,
                    };
                    let requester = Requester {
                        user: Some(user.clone()),
                        channel: Some(channel.clone()),
                        source: RequestSource::Rerun,
                    };
                    self.start_check(&channel, &thread, &req, &requester, true)
                        .await?;
                }
                id => {
                    let page = id == blocks::ACTION_PAGE;
                    self.escalate(
                        &channel,
                        &thread,
                        &user,
                        &location,
                        value.environment,
                        value.target.as_deref(),
                        page,
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Whether a click is one of the buttons its message offered. The buttons are rendered again,
    /// server-side, from the result the store says the message (`channel`, `message_ts`) shows
    /// and from the config; the click's action id and value must equal one of them. Anything
    /// else — a forged or stale value naming another location, environment or target, or a
    /// message the store does not know — is refused with an ephemeral sentence and audited as
    /// `refused_action`. Checks no action id format: it compares with what was rendered.
    async fn authorize_click(
        &self,
        channel: &str,
        message_ts: &str,
        thread: &str,
        user: &str,
        action_id: &str,
        value: &ButtonValue,
    ) -> Result<bool> {
        let store = self.coordinator.store();
        let shown = match store.shown_result(channel, message_ts).await {
            Ok(shown) => shown,
            Err(e) => {
                tracing::error!(
                    error = format!("{:#}", anyhow::Error::new(e)),
                    "could not read which result a clicked message shows"
                );
                self.web
                    .post_ephemeral(
                        channel,
                        user,
                        Some(thread),
                        "linkbot's store did not answer, so I did nothing. Try the button again in a minute.",
                        None,
                    )
                    .await?;
                return Ok(false);
            }
        };
        let report = shown
            .as_ref()
            .and_then(|done| serde_json::from_value::<Report>(done.report.clone()).ok());
        let (sentence, why) = match &report {
            None => (
                "I can't tell what this message offered (it shows no result I recorded), so I did nothing. Run the check again and use the buttons on its answer.",
                "the message shows no result the store knows".to_string(),
            ),
            Some(report) => {
                let ctx = report_context(&self.config, report, None);
                let offered = offered_buttons(&blocks::report(report, &ctx));
                if offered
                    .iter()
                    .any(|(id, offered)| id == action_id && offered == value)
                {
                    return Ok(true);
                }
                let list: Vec<String> = offered
                    .iter()
                    .map(|(id, _)| id.clone())
                    .collect();
                (
                    "That button does not match what this message offered, so I did nothing. Use the buttons on the latest answer in the thread.",
                    format!(
                        "the message shows {} ({}) and offered {}",
                        report.location.as_ref().map(|l| l.as_str()).unwrap_or("no location"),
                        report.environment.map(|e| e.as_str()).unwrap_or("no environment"),
                        list.join(", ")
                    ),
                )
            }
        };
        tracing::warn!(user, channel, action_id, %why, "refused a click its message did not offer");
        let asked = crate::format::clip(
            &crate::format::one_line(&format!(
                "{} {}",
                blocks::action_kind(action_id),
                value.target.as_deref().unwrap_or("-")
            )),
            200,
        );
        let entry = AuditEntry {
            at: chrono::Utc::now(),
            kind: AuditKind::RefusedAction,
            actor: Some(user.to_string()),
            channel: Some(channel.to_string()),
            // What was asked for: the value's location and environment.
            location: LocationId::parse(&value.location).context("the clicked location")?,
            environment: value.environment,
            verdict: shown.as_ref().map(|done| done.verdict.clone()),
            target: Some(asked),
            link: None,
            detail: Some(crate::format::clip(&why, 1000)),
        };
        if let Err(e) = store.append_audit(&entry).await {
            tracing::error!(error = %e, "could not record a refused click in the audit log");
        }
        self.web
            .post_ephemeral(channel, user, Some(thread), sentence, None)
            .await?;
        Ok(false)
    }

    /// Escalates the latest report of a location to a target, and records it in the thread.
    #[allow(clippy::too_many_arguments)]
    async fn escalate(
        &self,
        channel: &str,
        thread: &str,
        user: &str,
        location: &LocationId,
        environment: Environment,
        target: Option<&str>,
        page: bool,
    ) -> Result<()> {
        let Some(target) = target
            .and_then(|t| self.config.escalation_target(t))
            .cloned()
        else {
            self.web
                .post_ephemeral(
                    channel,
                    user,
                    Some(thread),
                    "That escalation target is no longer configured.",
                    None,
                )
                .await?;
            return Ok(());
        };
        let key = CheckKey {
            environment,
            location: location.clone(),
        };
        let Some((check_id, report)) = self
            .coordinator
            .store()
            .latest_finished(&key)
            .await?
            .and_then(|done| {
                let report = serde_json::from_value::<Report>(done.report).ok()?;
                Some((done.check_id, report))
            })
        else {
            self.web
                .post_ephemeral(
                    channel,
                    user,
                    Some(thread),
                    "There is no finished check of this location to escalate yet.",
                    None,
                )
                .await?;
            return Ok(());
        };
        let thread_link = self
            .web
            .permalink(channel, thread)
            .await
            .ok()
            .map(|u| u.to_string());
        let requested_by = mrkdwn::user(user);
        let target_title = mrkdwn::escape(&target.title);
        let mut done: Vec<String> = Vec::new();
        let mut failed: Vec<String> = Vec::new();
        let mut links: Vec<String> = Vec::new();

        if page {
            match (&self.escalators.pagerduty, target.pagerduty) {
                (Some(pd), true) => {
                    // One page per incident: the latest result of this location, claimed in
                    // the store so concurrent clicks on any replica page once.
                    let claim = match self
                        .coordinator
                        .store()
                        .claim_page(check_id, &key, &target.name, user, PAGE_CLAIM_STALE)
                        .await
                    {
                        Ok(PageClaim::Claimed { claim }) => claim,
                        Ok(PageClaim::Taken(record)) => {
                            self.web
                                .post_ephemeral(
                                    channel,
                                    user,
                                    Some(thread),
                                    &already_paged(&record),
                                    None,
                                )
                                .await?;
                            return Ok(());
                        }
                        Err(e) => {
                            tracing::error!(
                                error = format!("{:#}", anyhow::Error::new(e)),
                                "could not claim a page in the store"
                            );
                            self.web
                                .post_ephemeral(
                                    channel,
                                    user,
                                    Some(thread),
                                    "linkbot's store did not answer, so nothing was paged. Try again in a minute, or page by hand.",
                                    None,
                                )
                                .await?;
                            return Ok(());
                        }
                    };
                    let ev = crate::escalation::page_event(&report, user, thread_link.as_deref());
                    let sent = pd.trigger(&ev).await;
                    let store = self.coordinator.store();
                    let recorded = match &sent {
                        Ok(receipt) => {
                            store
                                .page_sent(
                                    check_id,
                                    &claim,
                                    &format!("pagerduty:{}", receipt.dedup_key),
                                )
                                .await
                        }
                        Err(_) => store.page_failed(check_id, &claim).await,
                    };
                    if let Err(e) = recorded {
                        tracing::error!(error = %e, "could not record how a page went in the store");
                    }
                    match sent {
                        Ok(receipt) => {
                            done.push(format!(
                                "paged *{target_title}* through PagerDuty (incident key {})",
                                mrkdwn::code(&receipt.dedup_key)
                            ));
                            links.push(format!("pagerduty:{}", receipt.dedup_key));
                        }
                        Err(e) => {
                            failed.push(format!("PagerDuty: {}", mrkdwn::escape(&e.user_message())))
                        }
                    }
                }
                _ => failed.push(format!("PagerDuty is not configured for {target_title}")),
            }
        } else {
            if let Some(team_channel) = &target.slack_channel {
                let ctx = ReportContext {
                    runbook_url: self.config.check.runbook_url.clone(),
                    preface: Some(format!(
                        ":rotating_light: {requested_by} escalates this diagnosis to *{target_title}*.{}",
                        thread_link
                            .as_ref()
                            .map(|l| format!(" {}", mrkdwn::link(l, "Open the on-call thread")))
                            .unwrap_or_default()
                    )),
                    ..Default::default()
                };
                let blocks = blocks::report(&report, &ctx);
                match self
                    .web
                    .post_message(
                        team_channel,
                        None,
                        &blocks::fallback_text(&report),
                        Some(blocks),
                    )
                    .await
                {
                    Ok(ts) => {
                        let link = self
                            .web
                            .permalink(team_channel, &ts)
                            .await
                            .ok()
                            .map(|u| u.to_string());
                        let shown = mrkdwn::channel(team_channel);
                        done.push(match &link {
                            Some(l) => {
                                format!("posted to {shown} ({})", mrkdwn::link(l, "message"))
                            }
                            None => format!("posted to {shown}"),
                        });
                        links.extend(link);
                    }
                    Err(e) => failed.push(format!(
                        "{}: {}",
                        mrkdwn::channel(team_channel),
                        mrkdwn::escape(&e.user_message())
                    )),
                }
            }
            if let Some(repo) = &target.github_repo {
                match &self.escalators.github {
                    Some(gh) => {
                        let issue = crate::escalation::issue_markdown(
                            &report,
                            user,
                            thread_link.as_deref(),
                        );
                        match gh.open_issue(repo, &issue).await {
                            Ok(link) => {
                                done.push(format!(
                                    "opened {}",
                                    mrkdwn::link(
                                        link.html_url.as_str(),
                                        &format!("{repo}#{}", link.number)
                                    )
                                ));
                                links.push(link.html_url.to_string());
                            }
                            Err(e) => failed.push(format!(
                                "GitHub {}: {}",
                                mrkdwn::escape(repo.as_str()),
                                mrkdwn::escape(&e.user_message())
                            )),
                        }
                    }
                    None => failed.push("GitHub is not configured (GITHUB_TOKEN)".into()),
                }
            }
        }

        let mut text = if done.is_empty() {
            format!(":x: {requested_by} tried to escalate to *{target_title}*, but nothing went through.")
        } else {
            format!(
                ":rotating_light: {requested_by} escalated to *{target_title}*: {}.",
                done.join("; ")
            )
        };
        if !failed.is_empty() {
            text.push_str(&format!("\n:warning: Failed: {}.", failed.join("; ")));
        }
        // Record first: the page, issue or post already happened, so the audit log must have it
        // even when telling the thread fails.
        let entry = AuditEntry {
            at: chrono::Utc::now(),
            kind: AuditKind::Escalation,
            actor: Some(user.to_string()),
            channel: Some(channel.to_string()),
            location: location.clone(),
            environment,
            verdict: Some(report.verdict.as_str().to_string()),
            target: Some(if page {
                format!("{} (page)", target.name)
            } else {
                target.name.clone()
            }),
            link: (!links.is_empty()).then(|| links.join(" ")),
            detail: (!failed.is_empty()).then(|| failed.join("; ")),
        };
        if let Err(e) = self.coordinator.store().append_audit(&entry).await {
            tracing::error!(error = %e, "could not record an escalation in the audit log");
        }
        self.web
            .post_message(channel, Some(thread), &text, None)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CheckId;
    use chrono::TimeZone;

    fn record(paged_by: &str, sent: bool) -> PageRecord {
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 11, 30, 23, 7, 5)
            .single()
            .expect("a time");
        PageRecord {
            check_id: CheckId(7),
            target: "satellite_link".into(),
            paged_by: paged_by.into(),
            claimed_at: at,
            paged_at: sent.then_some(at + chrono::Duration::seconds(2)),
            link: None,
        }
    }

    #[test]
    fn already_paged_names_who_and_when() {
        let sent = already_paged(&record("U0ENGINEER", true));
        assert!(
            sent.contains("Already paged by <@U0ENGINEER> at <!date^1796080027^{time}|23:07 UTC>"),
            "{sent}"
        );
        let on_its_way = already_paged(&record("U0ENGINEER", false));
        assert!(
            on_its_way.contains("Already paged by <@U0ENGINEER> at <!date^1796080025^")
                && on_its_way.contains("not answered yet"),
            "{on_its_way}"
        );
        // A stored name that is not a user id is shown as text, never as a mention.
        let odd = already_paged(&record("<!channel>", true));
        assert!(
            !odd.contains("<!channel>") && odd.contains("&lt;!channel&gt;"),
            "{odd}"
        );
    }

    #[test]
    fn offered_buttons_reads_every_button_of_a_rendered_message() {
        let blocks = vec![
            serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": "x"}}),
            serde_json::json!({"type": "actions", "elements": [
                {"type": "button", "action_id": "a", "value": r#"{"l":"c1hk4ek107l5au5mq8hg","e":"prod","t":"razee"}"#},
                {"type": "button", "action_id": "b", "value": "not ours"},
                {"type": "static_select", "action_id": "c", "value": r#"{"l":"c1hk4ek107l5au5mq8hg","e":"prod"}"#},
                {"type": "button", "action_id": "d", "value": r#"{"l":"c1hk4ek107l5au5mq8hg","e":"stage"}"#}
            ]}),
        ];
        let offered = offered_buttons(&blocks);
        let ids: Vec<&str> = offered.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["a", "d"]);
        assert_eq!(offered[0].1.target.as_deref(), Some("razee"));
        assert_eq!(offered[1].1.environment, Environment::Stage);
    }
}
