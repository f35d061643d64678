//! The door of the bot's Slack logic: what it does with each envelope after the transport has
//! acked it — de-duplicate it through the store, then dispatch it by what arrived.
//!
//! Every inbound is de-duplicated first (events by `event_id`, commands and clicks by envelope
//! id), so a redelivery never starts a second check. Then: a mention goes to [`super::mention`],
//! a slash command to [`super::slash_command`], a channel message to [`super::alert_message`],
//! a button click to [`super::button`], the 👎 form's submission to [`super::feedback`].
//! [`Handler::start_check`], shared by the first four, posts the message that will become the
//! diagnosis and hands the request to the coordinator.
//!
//! This module must NOT parse commands, decide who may act, render, or run a check or an
//! escalation: those live in the modules above, `blocks.rs`, the coordinator and
//! `escalation/`. It only turns Slack into requests.

use super::blocks;
use super::oncall::Oncall;
use super::transport::Inbound;
use super::web::{BotIdentity, SlackError, SlackWeb};
use crate::check::coordinator::Coordinator;
use crate::check::coordinator::Requested;
use crate::check::progress::ProgressView;
use crate::config::Config;
use crate::domain::CheckKey;
use crate::escalation::{Escalators, Workflow};
use crate::incident::Incidents;
use crate::silence::Silences;
use crate::store::{Clock, IncidentId, MessageRef, Requester, Waiter};
use crate::storm::Storms;
use anyhow::Result;
use slack_morphism::prelude::*;
use std::sync::Arc;

/// The bot's event handling. Cheap to clone.
#[derive(Clone)]
pub struct Handler {
    pub(super) config: Arc<Config>,
    pub(super) web: SlackWeb,
    pub(super) identity: BotIdentity,
    pub(super) coordinator: Coordinator,
    pub(super) escalation: Workflow,
    pub(super) oncall: Arc<Oncall>,
    pub(super) incidents: Incidents,
    /// The time "now" of reports (`/linkbot report`): the store's clock.
    pub(super) clock: Clock,
    pub(super) silences: Silences,
    pub(super) storms: Storms,
}

/// The workflows the handler drives: each decides what happens and in what order; the handler
/// turns envelopes into their calls and their outcomes into messages.
pub struct Workflows {
    /// Escalate and Page (PagerDuty, GitHub, team channels).
    pub escalators: Escalators,
    /// The incident lifecycle.
    pub incidents: Incidents,
    /// Silences in Alertmanager.
    pub silences: Silences,
    /// Storm mode.
    pub storms: Storms,
}

impl Handler {
    /// A handler for the bot whose identity `auth.test` returned.
    pub fn new(
        config: Arc<Config>,
        web: SlackWeb,
        identity: BotIdentity,
        coordinator: Coordinator,
        workflows: Workflows,
    ) -> Self {
        let Workflows {
            escalators,
            incidents,
            silences,
            storms,
        } = workflows;
        let escalation = Workflow::new(
            coordinator.store().clone(),
            escalators,
            config.escalation.clone(),
        );
        let oncall = Arc::new(Oncall::new(
            web.clone(),
            config.slack.oncall_usergroup.clone(),
        ));
        Handler {
            config,
            web,
            identity,
            coordinator,
            escalation,
            oncall,
            incidents,
            clock: Clock::system(),
            silences,
            storms,
        }
    }

    /// The same handler reading the time from `clock` (the store's: tests move it by hand).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Handles one inbound envelope (already acked). Errors are logged, never returned to Slack.
    pub async fn handle(&self, inbound: Inbound) {
        let result = match inbound {
            Inbound::Event {
                retry_attempt,
                event,
                ..
            } => Box::pin(self.on_event(retry_attempt, event)).await,
            Inbound::Command {
                envelope_id,
                command,
            } => Box::pin(self.on_command(&envelope_id, command)).await,
            Inbound::Interaction {
                envelope_id,
                interaction,
            } => Box::pin(self.on_interaction(&envelope_id, interaction)).await,
        };
        if let Err(e) = result {
            tracing::error!(error = format!("{e:#}"), "handling a Slack envelope failed");
        }
    }

    pub(super) fn watched(&self, channel: &str) -> bool {
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

    async fn on_event(&self, retry_attempt: u32, event: Box<SlackPushEventCallback>) -> Result<()> {
        if !self
            .first_seen(&format!("event:{}", event.event_id))
            .await?
        {
            tracing::info!(event_id = %event.event_id, retry_attempt, "redelivered event ignored");
            return Ok(());
        }
        // Each kind's future is boxed: the handler's own future stays small, and a burst of
        // envelopes waiting for Slack holds only the futures of what each one is doing.
        match &event.event {
            SlackEventCallbackBody::AppMention(m) => Box::pin(self.on_mention(m)).await,
            SlackEventCallbackBody::Message(m) => Box::pin(self.on_message_event(m)).await,
            SlackEventCallbackBody::Unknown(raw) => Box::pin(self.on_raw_event(raw)).await,
            _ => Ok(()),
        }
    }

    async fn on_command(&self, envelope_id: &str, cmd: Box<SlackCommandEvent>) -> Result<()> {
        if !self.first_seen(&format!("envelope:{envelope_id}")).await? {
            return Ok(());
        }
        Box::pin(self.on_slash_command(&cmd)).await
    }

    async fn on_interaction(
        &self,
        envelope_id: &str,
        interaction: Box<SlackInteractionEvent>,
    ) -> Result<()> {
        if !matches!(
            *interaction,
            SlackInteractionEvent::BlockActions(_) | SlackInteractionEvent::ViewSubmission(_)
        ) {
            return Ok(());
        }
        if !self.first_seen(&format!("envelope:{envelope_id}")).await? {
            return Ok(());
        }
        match &*interaction {
            SlackInteractionEvent::BlockActions(ev) => Box::pin(self.on_block_actions(ev)).await,
            // The 👎 form's answer (`feedback.rs`).
            SlackInteractionEvent::ViewSubmission(ev) => {
                Box::pin(self.on_view_submission(ev)).await
            }
            _ => Ok(()),
        }
    }

    /// Posts the message that will become the diagnosis, then hands the request over. With
    /// `incident`, the message is that incident's diagnosis (recorded before the check can
    /// finish, so its verdict is shown with the incident's status); without, a request for a
    /// location with an open incident joins that incident's timeline.
    pub(super) async fn start_check(
        &self,
        channel: &str,
        thread: &str,
        req: &CheckKey,
        requester: &Requester,
        fresh: bool,
        incident: Option<IncidentId>,
    ) -> Result<()> {
        let starting = ProgressView::new(req.clone());
        let (text, progress) = blocks::progress(&starting);
        // Every call below is boxed: this future is alive while a burst of requests waits for
        // Slack, so it keeps only the state of the call under way.
        let ts = match Box::pin(
            self.web
                .post_message(channel, Some(thread), &text, Some(progress)),
        )
        .await
        {
            Ok(ts) => ts,
            // Slack refused the Block Kit version: the same message as plain text.
            Err(e @ (SlackError::Api { .. } | SlackError::InvalidBlocks { .. })) => {
                tracing::error!(channel, code = e.code(), messages = ?e.response_messages(), "Slack refused the progress message; posting it as plain text: {e}");
                let plain = blocks::plain_progress(&starting);
                Box::pin(self.web.post_message(channel, Some(thread), &plain, None)).await?
            }
            Err(e) => return Err(e.into()),
        };
        let waiter = Waiter {
            channel: channel.to_string(),
            message_ts: ts.clone(),
            thread_ts: Some(thread.to_string()),
            user: requester.user.clone(),
        };
        let diagnosis = MessageRef {
            channel: channel.to_string(),
            ts: ts.clone(),
        };
        let store = self.coordinator.store();
        match incident {
            Some(id) => {
                if let Err(e) = Box::pin(store.set_incident_check(id, None, &diagnosis)).await {
                    tracing::warn!(error = %e, "cannot record the incident's diagnosis message");
                }
            }
            None => {
                let kind = requester.source.as_str();
                Box::pin(self.incidents.joined(req, kind, requester.user.as_deref())).await;
            }
        }
        match Box::pin(self.coordinator.request(req, requester, waiter, fresh)).await {
            Ok(outcome) => {
                tracing::info!(location = %req.location, environment = %req.environment, source = requester.source.as_str(), ?outcome, "check requested");
                if let Some(id) = incident {
                    let check_id = match &outcome {
                        Requested::Started(c) | Requested::Joined(c) => Some(*c),
                        Requested::Reused { .. } => store
                            .latest_finished(req)
                            .await
                            .ok()
                            .flatten()
                            .map(|d| d.check_id),
                    };
                    if let Err(e) =
                        Box::pin(store.set_incident_check(id, check_id, &diagnosis)).await
                    {
                        tracing::warn!(error = %e, "cannot record the incident's check");
                    }
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "could not start a check");
                let why = e
                    .chain()
                    .find_map(|c| c.downcast_ref::<crate::store::StoreError>())
                    .map(|s| s.user_message())
                    .unwrap_or("the bot's store is unavailable.");
                Box::pin(self.web.update(
                    channel,
                    &ts,
                    &format!("The check could not be started: {why} Try again in a minute."),
                    Some(Vec::new()),
                ))
                .await?;
                Ok(())
            }
        }
    }
}
