//! The Slack side of a storm: [`StormThreads`], the storm workflow's [`StormChannel`] (the storm
//! message posted and edited in place, the one-line pointer under each other alert, permalinks,
//! and a storm location's check started in its alert's thread), and the storm message's
//! buttons (Check all, Stop): on-call only, and only as the message offers them now.
//!
//! This module must NOT decide what a storm does (`storm/` does) or build Block Kit itself
//! (`blocks.rs` renders the [`StormView`]).

use super::blocks::{self, StormButtonValue};
use super::handler::Handler;
use crate::store::{
    AuditEntry, AuditKind, MessageRef, RequestSource, Requester, StormId, StormLocation,
};
use crate::storm::{Acted, StormAction, StormChannel, StormView};
use anyhow::Result;
use std::sync::Arc;

/// The storm's Slack side over a handler (for its Web API client and `start_check`).
#[derive(Clone)]
pub struct StormThreads {
    handler: Handler,
}

impl StormThreads {
    /// The storm's threads, posted through `handler`'s client.
    pub fn shared(handler: Handler) -> Arc<dyn StormChannel> {
        Arc::new(StormThreads { handler })
    }
}

#[async_trait::async_trait]
impl StormChannel for StormThreads {
    async fn post(&self, channel: &str, view: &StormView) -> Result<MessageRef> {
        let (text, blocks) = blocks::storm_message(view);
        let ts = self
            .handler
            .web
            .post_message(channel, None, &text, Some(blocks))
            .await?;
        Ok(MessageRef {
            channel: channel.to_string(),
            ts,
        })
    }

    async fn show(&self, message: &MessageRef, view: &StormView, urgent: bool) -> Result<bool> {
        let (text, blocks) = blocks::storm_message(view);
        let web = &self.handler.web;
        if urgent {
            web.update(&message.channel, &message.ts, &text, Some(blocks))
                .await?;
            return Ok(true);
        }
        Ok(web
            .update_progress(&message.channel, &message.ts, &text, Some(blocks))
            .await?)
    }

    async fn permalink(&self, message: &MessageRef) -> Option<String> {
        self.handler
            .web
            .permalink(&message.channel, &message.ts)
            .await
            .ok()
            .map(|u| u.to_string())
    }

    async fn point(&self, alert: &MessageRef, storm: StormId, link: Option<&str>) -> Result<()> {
        tracing::info!(%storm, alert = %alert.ts, "alert answered with a link to its storm");
        self.handler
            .web
            .post_message(
                &alert.channel,
                Some(&alert.ts),
                &blocks::storm_pointer(link),
                None,
            )
            .await?;
        Ok(())
    }

    async fn check(&self, location: &StormLocation) -> Result<()> {
        let store = self.handler.coordinator.store();
        // The location's incident (opened by its alert) gets this check as its diagnosis.
        let incident = store
            .open_incident(&location.key)
            .await
            .ok()
            .flatten()
            .map(|i| i.id);
        let requester = Requester {
            user: None,
            channel: Some(location.alert.channel.clone()),
            source: RequestSource::Alert,
        };
        self.handler
            .start_check(
                &location.alert.channel,
                &location.alert.ts,
                &location.key,
                &requester,
                false,
                incident,
            )
            .await
    }
}

impl Handler {
    /// A click on a storm message's button (`linkbot_storm:<action>`): on-call only, and only
    /// as the message offers it now (rendered again from the store); refused and audited
    /// otherwise.
    pub(super) async fn on_storm_click(
        &self,
        channel: &str,
        message_ts: &str,
        user: &str,
        action_id: &str,
        value: Option<&str>,
    ) -> Result<()> {
        if !self.watched(channel) {
            return Ok(());
        }
        let Some(value) = value.and_then(StormButtonValue::parse) else {
            tracing::warn!(action_id, "storm button value not ours: ignored");
            return Ok(());
        };
        if !self.oncall.may_act(user).await? {
            self.web
                .post_ephemeral(
                    channel,
                    user,
                    None,
                    "Only members of the on-call user group can check all or stop a storm's checks.",
                    None,
                )
                .await?;
            return Ok(());
        }
        let id = StormId(value.storm);
        let view = match self.storms.view(id).await {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "cannot read the clicked storm");
                self.web
                    .post_ephemeral(channel, user, None, "linkbot's store did not answer, so I did nothing. Try the button again in a minute.", None)
                    .await?;
                return Ok(());
            }
        };
        let store = self.coordinator.store();
        let message = match &view {
            Some(_) => store.storm(id).await.ok().flatten().and_then(|s| s.message),
            None => None,
        };
        let here = message
            .as_ref()
            .is_some_and(|m| m.channel == channel && m.ts == message_ts);
        let action = blocks::action_kind(action_id)
            .eq(blocks::ACTION_STORM)
            .then(|| action_id.split_once(':').map(|(_, a)| a))
            .flatten()
            .and_then(StormAction::parse);
        let offered = match (&view, action) {
            (Some(view), Some(action)) if here => {
                let (_, rendered) = blocks::storm_message(view);
                let wanted = blocks::offered_storm_buttons(&rendered);
                wanted
                    .iter()
                    .any(|(id, v)| id == action_id && *v == value)
                    .then_some(action)
            }
            _ => None,
        };
        let Some(action) = offered else {
            tracing::warn!(user, channel, action_id, storm = %id, "refused a storm click its message did not offer");
            let location = store
                .storm_locations(id)
                .await
                .ok()
                .and_then(|l| l.into_iter().next());
            if let Some(first) = location {
                let entry = AuditEntry {
                    at: chrono::Utc::now(),
                    kind: AuditKind::RefusedAction,
                    actor: Some(user.to_string()),
                    channel: Some(channel.to_string()),
                    location: first.key.location,
                    environment: first.key.environment,
                    verdict: None,
                    target: Some(crate::format::clip(action_id, 200)),
                    link: None,
                    detail: Some(format!("storm {id}: the message does not offer this now")),
                };
                if let Err(e) = store.append_audit(&entry).await {
                    tracing::error!(error = %e, "could not record a refused click in the audit log");
                }
            }
            self.web
                .post_ephemeral(
                    channel,
                    user,
                    None,
                    "That button does not match what the storm message offers now, so I did nothing.",
                    None,
                )
                .await?;
            return Ok(());
        };
        let chat = StormThreads::shared(self.clone());
        let said = match self.storms.act(id, action, user, chat).await? {
            Acted::CheckingAll => format!(
                ":arrow_forward: {} asked to check every location of this storm, within the build budget ({} a minute).",
                super::mrkdwn::user(user),
                self.storms.settings().max_builds_per_minute
            ),
            Acted::Stopped => format!(
                ":octagonal_sign: {} stopped this storm's checks.",
                super::mrkdwn::user(user)
            ),
            Acted::Nothing => {
                self.web
                    .post_ephemeral(channel, user, None, "The storm changed meanwhile, so I did nothing.", None)
                    .await?;
                return Ok(());
            }
        };
        self.web
            .post_message(channel, Some(message_ts), &said, None)
            .await?;
        Ok(())
    }
}
