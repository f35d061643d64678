//! A click on a diagnosis' "Silence…" select, or on the Unsilence button of a silence's message.
//!
//! Who may act is enforced here, as for the report's buttons: only in watched channels, only
//! members of the on-call user group ([`super::oncall`]; anyone else is refused before any call
//! to Alertmanager, and the refusal is audited), and only as the message offered it. A choice of
//! the select must be one of the options the diagnosis offers when rendered again from the store
//! ([`Handler::rendered_again`]); an Unsilence click must name the silence the store recorded for
//! that very message. Anything else is refused and audited (`refused_action`). Then the silence
//! workflow (`crate::silence`) acts, with Slack behind [`ThreadSilences`], and its outcome is
//! told in the thread (failures as one sentence) or, when nothing was done, to the user.
//!
//! This module must NOT talk to Alertmanager or the store's silences itself (the workflow does)
//! or build Block Kit (`blocks.rs` does).

use super::blocks::{self, SilenceValue, UnsilenceValue};
use super::handler::Handler;
use super::mrkdwn;
use super::web::SlackWeb;
use crate::config::Config;
use crate::domain::{Environment, LocationId};
use crate::silence::{self, Asked, SilenceChannel, Silenced, Unsilenced};
use crate::store::{AuditEntry, AuditKind, CheckKey, MessageRef, SilenceRecord};
use anyhow::Result;
use slack_morphism::prelude::*;

/// Where a silence control was clicked, and by whom.
#[derive(Debug, Clone, Copy)]
pub struct Click<'a> {
    /// The Slack user id.
    pub user: &'a str,
    /// Their Slack name (`createdBy` in Alertmanager).
    pub user_name: &'a str,
    /// The channel.
    pub channel: &'a str,
    /// The message clicked on.
    pub message_ts: &'a str,
    /// Its thread.
    pub thread: &'a str,
}

/// The controls a rendered message offers in its selects: each select's `action_id` and the
/// value of each of its options.
fn offered_options(blocks: &[serde_json::Value]) -> Vec<(String, String)> {
    blocks
        .iter()
        .filter(|b| b["type"] == "actions")
        .filter_map(|b| b["elements"].as_array())
        .flatten()
        .filter(|e| e["type"] == "static_select")
        .flat_map(|e| {
            let id = e["action_id"].as_str().unwrap_or_default().to_string();
            e["options"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |o| Some((id.clone(), o["value"].as_str()?.to_string())))
        })
        .collect()
}

/// The Alertmanager UI link of a silence, from the environment's `alertmanager_url`.
fn ui_link(config: &Config, silence: &SilenceRecord) -> Option<String> {
    config
        .environments
        .get(&silence.key.environment)
        .and_then(|e| e.alertmanager_url.as_ref())
        .map(|base| silence::ui_link(base, &silence.silence_id))
}

/// Shows `silence` in its thread: posts its message, or edits the one it has. Its `ts`.
pub(super) async fn show_silence(
    web: &SlackWeb,
    config: &Config,
    silence: &SilenceRecord,
) -> Result<String> {
    let (text, blocks) = blocks::silence_notice(silence, ui_link(config, silence).as_deref());
    match &silence.message {
        Some(m) => {
            web.update(&m.channel, &m.ts, &text, Some(blocks)).await?;
            Ok(m.ts.clone())
        }
        None => Ok(web
            .post_message(
                &silence.thread.channel,
                Some(&silence.thread.ts),
                &text,
                Some(blocks),
            )
            .await?),
    }
}

/// The Slack side of a silence asked from a thread: its permalink, and the silence's message.
pub struct ThreadSilences<'a> {
    /// The Web API client.
    pub web: &'a SlackWeb,
    /// The configuration (Alertmanager's UI link).
    pub config: &'a Config,
    /// The thread's channel.
    pub channel: &'a str,
    /// The thread.
    pub thread: &'a str,
}

#[async_trait::async_trait]
impl SilenceChannel for ThreadSilences<'_> {
    async fn thread_link(&self) -> Option<String> {
        self.web
            .permalink(self.channel, self.thread)
            .await
            .ok()
            .map(|u| u.to_string())
    }

    async fn show(&self, silence: &SilenceRecord) -> Result<String> {
        show_silence(self.web, self.config, silence).await
    }
}

impl Handler {
    /// A "Silence…" choice or an Unsilence click (already de-duplicated).
    pub(super) async fn on_silence_action(
        &self,
        action: &SlackInteractionActionInfo,
        click: &Click<'_>,
    ) -> Result<()> {
        if !self.watched(click.channel) {
            return Ok(());
        }
        let action_id = action.action_id.to_string();
        let silencing = blocks::action_kind(&action_id) == blocks::ACTION_SILENCE;
        if !self.oncall.may_act(click.user).await? {
            let key = if silencing {
                action
                    .selected_option
                    .as_ref()
                    .and_then(|o| SilenceValue::parse(&o.value))
                    .map(|(v, location, _)| (location, v.environment))
            } else {
                self.silence_of(click)
                    .await
                    .map(|s| (s.key.location, s.key.environment))
            };
            if let Some((location, environment)) = key {
                self.refuse_silence(
                    click,
                    &action_id,
                    location,
                    environment,
                    "not a member of the on-call user group",
                )
                .await;
            }
            self.web
                .post_ephemeral(
                    click.channel,
                    click.user,
                    Some(click.thread),
                    "Only members of the on-call user group can silence or unsilence this alert.",
                    None,
                )
                .await?;
            return Ok(());
        }
        if silencing {
            self.silence_chosen(action, click).await
        } else {
            self.unsilence_clicked(action, click).await
        }
    }

    /// The silence the clicked message shows, if the store knows one.
    async fn silence_of(&self, click: &Click<'_>) -> Option<SilenceRecord> {
        self.coordinator
            .store()
            .silence_for_message(click.channel, click.message_ts)
            .await
            .ok()
            .flatten()
    }

    /// Audits a refused silence control (`refused_action`, with why).
    async fn refuse_silence(
        &self,
        click: &Click<'_>,
        action_id: &str,
        location: LocationId,
        environment: Environment,
        why: &str,
    ) {
        tracing::warn!(
            user = click.user,
            channel = click.channel,
            action_id,
            why,
            "refused a silence control"
        );
        let entry = AuditEntry {
            at: chrono::Utc::now(),
            kind: AuditKind::RefusedAction,
            actor: Some(click.user.to_string()),
            channel: Some(click.channel.to_string()),
            location,
            environment,
            verdict: None,
            target: Some(crate::format::clip(
                &crate::format::one_line(blocks::action_kind(action_id)),
                200,
            )),
            link: None,
            detail: Some(crate::format::clip(why, 1000)),
        };
        if let Err(e) = self.coordinator.store().append_audit(&entry).await {
            tracing::error!(error = %e, "could not record a refused silence control in the audit log");
        }
    }

    async fn store_did_not_answer(&self, click: &Click<'_>) -> Result<()> {
        self.web
            .post_ephemeral(
                click.channel,
                click.user,
                Some(click.thread),
                "linkbot's store did not answer, so I did nothing. Try again in a minute.",
                None,
            )
            .await?;
        Ok(())
    }

    /// A choice of the "Silence…" select: authorized against the options the message offers
    /// when rendered again, then the silence workflow.
    async fn silence_chosen(
        &self,
        action: &SlackInteractionActionInfo,
        click: &Click<'_>,
    ) -> Result<()> {
        let action_id = action.action_id.to_string();
        let Some(chosen) = action.selected_option.as_ref().map(|o| o.value.clone()) else {
            tracing::warn!(
                action_id,
                "a silence select without a chosen option: ignored"
            );
            return Ok(());
        };
        let Some((value, location, choice)) = SilenceValue::parse(&chosen) else {
            tracing::warn!(action_id, "silence option value not ours: ignored");
            return Ok(());
        };
        let rendered = match self.rendered_again(click.channel, click.message_ts).await {
            Ok((_, rendered)) => rendered,
            Err(e) => {
                tracing::error!(
                    error = format!("{:#}", anyhow::Error::new(e)),
                    "could not read which result a clicked message shows"
                );
                return self.store_did_not_answer(click).await;
            }
        };
        let offered = rendered
            .as_ref()
            .map(|(_, blocks)| offered_options(blocks))
            .unwrap_or_default();
        if !offered
            .iter()
            .any(|(id, v)| id == &action_id && v == &chosen)
        {
            let why = match &rendered {
                None => "the message shows no result the store knows".to_string(),
                Some(_) => format!(
                    "the message did not offer this choice (offered {} option(s))",
                    offered.len()
                ),
            };
            self.refuse_silence(click, &action_id, location, value.environment, &why)
                .await;
            self.web
                .post_ephemeral(
                    click.channel,
                    click.user,
                    Some(click.thread),
                    "That choice does not match what this message offered, so nothing was silenced. Use the Silence… menu on the latest answer in the thread.",
                    None,
                )
                .await?;
            return Ok(());
        }
        let key = CheckKey {
            location,
            environment: value.environment,
        };
        let thread = MessageRef {
            channel: click.channel.to_string(),
            ts: click.thread.to_string(),
        };
        let asked = Asked {
            actor: click.user,
            actor_name: click.user_name,
            key: &key,
            alert_name: super::alerts::ALERT_NAME,
            choice,
            thread: &thread,
        };
        let chat = ThreadSilences {
            web: &self.web,
            config: &self.config,
            channel: click.channel,
            thread: click.thread,
        };
        let text = match self.silences.silence(&asked, &chat).await {
            Silenced::Created(record) => {
                tracing::info!(silence = %record.silence_id, location = %key.location, "silenced");
                return Ok(());
            }
            Silenced::NotConfigured => {
                self.web
                    .post_ephemeral(
                        click.channel,
                        click.user,
                        Some(click.thread),
                        &format!("Silencing is not configured for {}: bot.toml has no `alertmanager_url` in `[environments.{}]`.", key.environment, key.environment),
                        None,
                    )
                    .await?;
                return Ok(());
            }
            Silenced::Failed(e) => blocks::silence_failed(click.user, &e.user_message()),
            Silenced::NotRecorded {
                silence_id,
                expired,
            } => blocks::silence_not_recorded(
                silence_id.as_str(),
                expired.err().map(|e| e.user_message()).as_deref(),
            ),
        };
        self.web
            .post_message(click.channel, Some(click.thread), &text, None)
            .await?;
        Ok(())
    }

    /// An Unsilence click: authorized against the silence the store recorded for that message
    /// (its message rendered again), then the silence workflow.
    async fn unsilence_clicked(
        &self,
        action: &SlackInteractionActionInfo,
        click: &Click<'_>,
    ) -> Result<()> {
        let action_id = action.action_id.to_string();
        let Some(value) = action.value.as_deref().and_then(UnsilenceValue::parse) else {
            tracing::warn!(action_id, "unsilence value not ours: ignored");
            return Ok(());
        };
        let record = match self
            .coordinator
            .store()
            .silence_for_message(click.channel, click.message_ts)
            .await
        {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(
                    error = format!("{:#}", anyhow::Error::new(e)),
                    "could not read which silence a clicked message shows"
                );
                return self.store_did_not_answer(click).await;
            }
        };
        let Some(record) = record else {
            tracing::warn!(
                user = click.user,
                "an Unsilence click on a message showing no silence"
            );
            self.web
                .post_ephemeral(
                    click.channel,
                    click.user,
                    Some(click.thread),
                    "I can't tell which silence this message shows, so I did nothing.",
                    None,
                )
                .await?;
            return Ok(());
        };
        let (_, rendered) = blocks::silence_notice(&record, None);
        let offered = rendered
            .iter()
            .filter_map(|b| b["elements"].as_array())
            .flatten()
            .filter(|e| e["action_id"] == action_id.as_str())
            .filter_map(|e| e["value"].as_str().and_then(UnsilenceValue::parse))
            .any(|v| v == value);
        if !offered {
            if !record.active {
                // A stale button: the silence was expired meanwhile. Show it as it is now.
                if let Err(e) = show_silence(&self.web, &self.config, &record).await {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "could not show an expired silence"
                    );
                }
                self.web
                    .post_ephemeral(
                        click.channel,
                        click.user,
                        Some(click.thread),
                        "This silence is already expired.",
                        None,
                    )
                    .await?;
                return Ok(());
            }
            self.refuse_silence(
                click,
                &action_id,
                record.key.location.clone(),
                record.key.environment,
                &format!(
                    "the message shows silence {}, not the one clicked",
                    record.silence_id
                ),
            )
            .await;
            self.web
                .post_ephemeral(
                    click.channel,
                    click.user,
                    Some(click.thread),
                    "That button does not match the silence this message shows, so I did nothing.",
                    None,
                )
                .await?;
            return Ok(());
        }
        let chat = ThreadSilences {
            web: &self.web,
            config: &self.config,
            channel: click.channel,
            thread: click.thread,
        };
        let (thread_text, ephemeral) = match self.silences.unsilence(&record, click.user, &chat).await {
            Unsilenced::Expired(record) => {
                tracing::info!(silence = %record.silence_id, "unsilenced");
                (None, None)
            }
            Unsilenced::AlreadyExpired(record) => {
                if let Err(e) = show_silence(&self.web, &self.config, &record).await {
                    tracing::warn!(error = format!("{e:#}"), "could not show an expired silence");
                }
                (None, Some("This silence is already expired.".to_string()))
            }
            Unsilenced::NotConfigured(record) => (
                None,
                Some(format!(
                    "Silencing is no longer configured for {}: expire silence {} in Alertmanager's UI.",
                    record.key.environment,
                    mrkdwn::code(&record.silence_id)
                )),
            ),
            Unsilenced::Failed(record, e) => (
                Some(blocks::unsilence_failed(click.user, &record.silence_id, &e.user_message())),
                None,
            ),
            Unsilenced::NotRecorded(record) => (
                Some(format!(
                    ":warning: Silence {} was expired in Alertmanager, but linkbot's store could not record it, so this message still offers Unsilence.",
                    mrkdwn::code(&record.silence_id)
                )),
                None,
            ),
        };
        if let Some(text) = thread_text {
            self.web
                .post_message(click.channel, Some(click.thread), &text, None)
                .await?;
        }
        if let Some(text) = ephemeral {
            self.web
                .post_ephemeral(click.channel, click.user, Some(click.thread), &text, None)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_options_reads_every_option_of_every_select() {
        let blocks = vec![
            serde_json::json!({"type": "actions", "elements": [
                {"type": "button", "action_id": "b", "value": "x"},
                {"type": "static_select", "action_id": "s", "options": [
                    {"text": {"type": "plain_text", "text": "1"}, "value": "one"},
                    {"text": {"type": "plain_text", "text": "2"}, "value": "two"}
                ]}
            ]}),
            serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": "x"}}),
        ];
        assert_eq!(
            offered_options(&blocks),
            [
                ("s".to_string(), "one".to_string()),
                ("s".to_string(), "two".to_string())
            ]
        );
    }
}
