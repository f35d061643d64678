//! A channel message: an alert from a configured source becomes checks in the alert's thread.
//!
//! Decodes a message event — slack-morphism's model, or the raw JSON when the model does not
//! match a message's shape — into the few fields the rules read ([`RawMessage`]), keeps only
//! messages from a configured alert source (bot or app id) in a watched channel, never our own,
//! and hands the text to [`super::alerts::classify`]: a firing alert opens the incident of each
//! location (at most 10) and starts its check, or repeats the open incident (no check: a pointer
//! reply) — unless it is part of a storm (`storm/`: the sample is checked, every other alert
//! gets a link to the storm message); a `[RESOLVED]` one resolves the incident of each location it names (nothing when none
//! is open); one without a location is answered. [`IncidentThreads`] is the Slack side of
//! `incident/` (edits, replies, permalinks, the ✅ reaction).
//!
//! This module must NOT de-duplicate (the handler did, by `event_id`) or parse alert text
//! itself (that is `alerts.rs`, pure).

use super::alerts::{self, Alert, AttachmentText};
use super::blocks;
use super::button::report_context;
use super::handler::Handler;
use super::storm::StormThreads;
use super::web::SlackWeb;
use crate::config::Config;
use crate::diagnosis::verdict::Report;
use crate::domain::CheckKey;
use crate::incident::{IncidentChannel, IncidentStatus, Notice};
use crate::store::{Fired, MessageRef, RequestSource, Requester, SilenceRecord, Store};
use crate::storm::Route;
use anyhow::Result;
use chrono::{DateTime, Utc};
use slack_morphism::prelude::*;
use std::sync::Arc;

/// The reaction a resolved alert gets.
pub const RESOLVED_REACTION: &str = "white_check_mark";

/// The Slack side of an incident: its diagnosis message edited with its status, one-line
/// replies, permalinks and the ✅ reaction. Cheap to clone.
#[derive(Clone)]
pub struct IncidentThreads {
    web: SlackWeb,
    config: Arc<Config>,
    /// Where the diagnosis's feedback count is read, to keep it when the message is re-shown.
    store: Arc<dyn Store>,
}

impl IncidentThreads {
    /// Incident threads posted through `web`, reading feedback counts from `store`.
    pub fn new(web: SlackWeb, config: Arc<Config>, store: Arc<dyn Store>) -> Self {
        IncidentThreads { web, config, store }
    }
}

#[async_trait::async_trait]
impl IncidentChannel for IncidentThreads {
    async fn show(
        &self,
        diagnosis: &MessageRef,
        report: &Report,
        status: &IncidentStatus,
    ) -> Result<()> {
        let mut ctx = blocks::with_incident(report_context(&self.config, report, None), status);
        ctx.feedback = Some(super::feedback::tally_of(&self.store, diagnosis).await);
        let text = blocks::fallback_text(report);
        self.web
            .update(
                &diagnosis.channel,
                &diagnosis.ts,
                &text,
                Some(blocks::report(report, &ctx)),
            )
            .await?;
        Ok(())
    }

    async fn permalink(&self, message: &MessageRef) -> Option<String> {
        self.web
            .permalink(&message.channel, &message.ts)
            .await
            .ok()
            .map(|u| u.to_string())
    }

    async fn reply(&self, message: &MessageRef, notice: &Notice) -> Result<()> {
        self.web
            .post_message(
                &message.channel,
                Some(&message.ts),
                &blocks::incident_notice(notice),
                None,
            )
            .await?;
        Ok(())
    }

    async fn react_resolved(&self, message: &MessageRef) -> Result<()> {
        self.web
            .add_reaction(&message.channel, &message.ts, RESOLVED_REACTION)
            .await?;
        Ok(())
    }

    async fn show_silence(&self, silence: &SilenceRecord) -> Result<()> {
        super::silence::show_silence(&self.web, &self.config, silence).await?;
        Ok(())
    }
}

/// The time of a Slack message `ts` (`seconds.micros`), when it reads as one.
fn message_time(ts: &str) -> Option<DateTime<Utc>> {
    let (secs, micros) = ts.split_once('.').unwrap_or((ts, "0"));
    let secs: i64 = secs.parse().ok()?;
    let micros: u32 = format!("{micros:0<6}").get(..6)?.parse().ok()?;
    DateTime::from_timestamp(secs, micros * 1000)
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
    /// A message event in slack-morphism's model.
    pub(super) async fn on_message_event(&self, m: &SlackMessageEvent) -> Result<()> {
        match from_model(m) {
            Some(msg) => self.on_message(msg).await,
            None => Ok(()),
        }
    }

    /// An event slack-morphism's model did not match: a message, if it has a message's shape.
    pub(super) async fn on_raw_event(&self, raw: &serde_json::Value) -> Result<()> {
        match raw_message(raw) {
            Some(msg) => self.on_message(msg).await,
            None => Ok(()),
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
                starts_at,
            } => {
                let environment = environment.unwrap_or(self.config.check.default_environment);
                let thread = msg.thread_ts.clone().unwrap_or_else(|| msg.ts.clone());
                let alert = MessageRef {
                    channel: msg.channel.clone(),
                    ts: msg.ts.clone(),
                };
                // Never later than now: a skewed clock must not make durations negative.
                let fired_at = starts_at
                    .or_else(|| message_time(&msg.ts))
                    .map_or_else(Utc::now, |t| t.min(Utc::now()));
                let chat = IncidentThreads::new(
                    self.web.clone(),
                    self.config.clone(),
                    self.coordinator.store().clone(),
                );
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
                    let incident = match self.incidents.fired(&req, &alert, fired_at).await {
                        Ok(Fired::Repeat(incident)) => {
                            tracing::info!(location = %req.location, repeats = incident.repeat_count, "alert repeats its open incident: no check");
                            self.incidents.repeated(&incident, &alert, &chat).await?;
                            continue;
                        }
                        Ok(Fired::Opened(incident)) => Some(incident.id),
                        // Without the store the check still runs (and says what is wrong).
                        Err(e) => {
                            tracing::error!(error = format!("{e:#}"), "cannot record the incident");
                            None
                        }
                    };
                    // Storm mode: one storm for many locations at once; a storm's alert that is
                    // not in its sample gets a link to the storm message and no build.
                    let in_thread = MessageRef {
                        channel: msg.channel.clone(),
                        ts: thread.clone(),
                    };
                    let storm_chat = StormThreads::shared(self.clone());
                    if let Route::Pointed(storm_message) =
                        self.storms.fired(&req, &in_thread, storm_chat).await
                    {
                        if let (Some(id), Some(m)) = (incident, &storm_message) {
                            let store = self.coordinator.store();
                            if let Err(e) = store.set_incident_check(id, None, m).await {
                                tracing::warn!(error = %e, "cannot point the incident at its storm");
                            }
                        }
                        continue;
                    }
                    self.start_check(&msg.channel, &thread, &req, &requester, false, incident)
                        .await?;
                }
                Ok(())
            }
            Alert::Resolved {
                locations,
                environment,
            } => {
                let environment = environment.unwrap_or(self.config.check.default_environment);
                let by = MessageRef {
                    channel: msg.channel.clone(),
                    ts: msg.ts.clone(),
                };
                let chat = IncidentThreads::new(
                    self.web.clone(),
                    self.config.clone(),
                    self.coordinator.store().clone(),
                );
                for location in locations.into_iter().take(10) {
                    let key = CheckKey {
                        location,
                        environment,
                    };
                    match self.incidents.resolve(&key, &by, &chat).await {
                        Ok(Some((incident, done))) => {
                            tracing::info!(location = %key.location, incident = %incident.id, ?done, "incident resolved")
                        }
                        Ok(None) => {
                            tracing::info!(location = %key.location, "resolved alert with no open incident: nothing to do")
                        }
                        Err(e) => {
                            tracing::error!(
                                error = format!("{e:#}"),
                                "could not resolve the incident"
                            )
                        }
                    }
                }
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
}
