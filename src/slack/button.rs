//! A button click on a report: escalate to a team, page it, or re-run the check; 👍 / 👎 go on
//! to `feedback.rs` (anyone may vote), authorized here like every button.
//!
//! Who may act is enforced here: only in watched channels, only members of the on-call user
//! group when one is configured ([`super::oncall`]), and a click only as its message offered it
//! — the buttons are rendered again from the result the store says that message shows
//! ([`report_context`] + `blocks::report`); a forged or stale value is refused and audited
//! (`refused_action`). "Silence…" and Unsilence go on to `slack/silence.rs`, which authorizes
//! them the same way ([`Handler::rendered_again`]). A re-run starts a fresh check in the
//! thread. An escalation or a page is
//! turned into a call of the escalation workflow (`escalation/workflow.rs`, which decides what
//! happens and in what order), with Slack behind [`ThreadReports`], its `ReportChannel`; its
//! typed outcome is rendered (`blocks.rs`) into the thread or to the user.
//!
//! A click on a storm message's button (`linkbot_storm:…`) goes to [`super::storm`].
//!
//! This module must NOT decide what an escalation does (the workflow does) or render Block Kit
//! itself.

use super::blocks::{self, ButtonValue, ReportContext, TargetButton};
use super::handler::Handler;
use super::mrkdwn;
use super::web::SlackWeb;
use crate::config::{Config, EscalationTarget};
use crate::diagnosis::verdict::Report;
use crate::domain::CheckKey;
use crate::domain::{LocationId, SlackChannelId};
use crate::escalation::workflow::{Action, Outcome, PostFailed, Preface, ReportChannel, Request};
use crate::incident::IncidentStatus;
use crate::store::{AuditEntry, AuditKind, FinishedCheck, RequestSource, Requester, StoreError};
use anyhow::{Context, Result};
use slack_morphism::prelude::*;
use std::time::Duration;

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
        silence: silence_offered(config, report),
        // "Was this right?" on every final diagnosis; the count is the caller's to fill in.
        feedback: Some(crate::feedback::Tally::default()),
    }
}

/// Whether a report offers "Silence…": its environment has an `alertmanager_url`.
fn silence_offered(config: &Config, report: &Report) -> bool {
    report
        .environment
        .and_then(|e| config.environments.get(&e))
        .is_some_and(|env| env.alertmanager_url.is_some())
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

impl Handler {
    /// Button clicks (already de-duplicated): each one acts only when its user may act and its
    /// message offered it.
    pub(super) async fn on_block_actions(
        &self,
        ev: &SlackInteractionBlockActionsEvent,
    ) -> Result<()> {
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
            if kind == blocks::ACTION_STORM {
                self.on_storm_click(
                    &channel,
                    &message_ts,
                    &user,
                    &action_id,
                    action.value.as_deref(),
                )
                .await?;
                continue;
            }
            // "Silence…" and Unsilence: `slack/silence.rs`.
            if kind == blocks::ACTION_SILENCE || kind == blocks::ACTION_UNSILENCE {
                let who = ev.user.as_ref();
                let name = who
                    .and_then(|u| u.username.clone().or_else(|| u.name.clone()))
                    .unwrap_or_else(|| user.clone());
                let click = super::silence::Click {
                    user: &user,
                    user_name: &name,
                    channel: &channel,
                    message_ts: &message_ts,
                    thread: &thread,
                };
                self.on_silence_action(action, &click).await?;
                continue;
            }
            // 👍 / 👎: anyone in the channel may vote (`feedback.rs`).
            if blocks::is_feedback_action(kind) {
                self.on_feedback_click(
                    ev,
                    &channel,
                    &message_ts,
                    &thread,
                    &user,
                    &action_id,
                    action.value.as_deref(),
                )
                .await?;
                continue;
            }
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
            if !self.oncall.may_act(&user).await? {
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
                    self.start_check(&channel, &thread, &req, &requester, true, None)
                        .await?;
                }
                id => {
                    let action = if id == blocks::ACTION_PAGE {
                        Action::Page
                    } else {
                        Action::Escalate
                    };
                    let request = Request {
                        actor: &user,
                        channel: &channel,
                        location: &location,
                        environment: value.environment,
                        target: value.target.as_deref(),
                        action,
                    };
                    self.escalate(&request, &thread).await?;
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
    pub(super) async fn authorize_click(
        &self,
        channel: &str,
        message_ts: &str,
        thread: &str,
        user: &str,
        action_id: &str,
        value: &ButtonValue,
    ) -> Result<bool> {
        let store = self.coordinator.store();
        let (shown, rendered) = match self.rendered_again(channel, message_ts).await {
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
        let (sentence, why) = match &rendered {
            None => (
                "I can't tell what this message offered (it shows no result I recorded), so I did nothing. Run the check again and use the buttons on its answer.",
                "the message shows no result the store knows".to_string(),
            ),
            Some((report, rendered)) => {
                let offered = offered_buttons(rendered);
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

    /// What a message shows, rendered again server-side: the result the store says it shows
    /// and, when it is an incident's diagnosis, with the incident's status (once resolved, the
    /// message no longer offers Escalate, Page or Silence). `None` when it shows no result the
    /// store knows. Clicks are authorized against these blocks, never against the click.
    pub(super) async fn rendered_again(
        &self,
        channel: &str,
        message_ts: &str,
    ) -> Result<
        (
            Option<FinishedCheck>,
            Option<(Report, Vec<serde_json::Value>)>,
        ),
        StoreError,
    > {
        let store = self.coordinator.store();
        let shown = store.shown_result(channel, message_ts).await?;
        let incident = store.incident_for_message(channel, message_ts).await?;
        let report = shown
            .as_ref()
            .and_then(|done| serde_json::from_value::<Report>(done.report.clone()).ok());
        let rendered = report.map(|report| {
            let mut ctx = report_context(&self.config, &report, None);
            if let Some(incident) = &incident {
                ctx = blocks::with_incident(ctx, &IncidentStatus::of(incident));
            }
            let blocks = blocks::report(&report, &ctx);
            (report, blocks)
        });
        Ok((shown, rendered))
    }

    /// Runs an escalation or a page of the latest result of a location through the workflow,
    /// and tells the thread (or, when nothing was done, the user) how it went.
    async fn escalate(&self, request: &Request<'_>, thread: &str) -> Result<()> {
        let chat = ThreadReports {
            web: &self.web,
            runbook_url: &self.config.check.runbook_url,
            channel: request.channel,
            thread,
        };
        let ephemeral = match self.escalation.run(request, &chat).await? {
            Outcome::Escalated(outcome) => {
                let text = blocks::escalated(request.actor, &outcome);
                self.web
                    .post_message(request.channel, Some(thread), &text, None)
                    .await?;
                return Ok(());
            }
            Outcome::UnknownTarget => "That escalation target is no longer configured.".to_string(),
            Outcome::NoResult => {
                "There is no finished check of this location to escalate yet.".to_string()
            }
            Outcome::AlreadyPaged(record) => blocks::already_paged(&record),
            Outcome::StoreUnavailable => "linkbot's store did not answer, so nothing was paged. Try again in a minute, or page by hand.".to_string(),
        };
        self.web
            .post_ephemeral(
                request.channel,
                request.actor,
                Some(thread),
                &ephemeral,
                None,
            )
            .await?;
        Ok(())
    }
}

/// The Slack side of an escalation asked from a thread: the thread's permalink, and posting the
/// report (Block Kit, with a preface linking back) to a team's channel.
pub struct ThreadReports<'a> {
    /// The Web API client.
    pub web: &'a SlackWeb,
    /// The runbook link shown in the report.
    pub runbook_url: &'a str,
    /// The channel the escalation was asked in.
    pub channel: &'a str,
    /// Its thread.
    pub thread: &'a str,
}

#[async_trait::async_trait]
impl ReportChannel for ThreadReports<'_> {
    async fn thread_link(&self) -> Option<String> {
        self.web
            .permalink(self.channel, self.thread)
            .await
            .ok()
            .map(|u| u.to_string())
    }

    async fn post_report(
        &self,
        channel: &SlackChannelId,
        report: &Report,
        preface: Preface<'_>,
    ) -> Result<Option<String>, PostFailed> {
        let ctx = ReportContext {
            runbook_url: self.runbook_url.to_string(),
            preface: Some(format!(
                ":rotating_light: {} escalates this diagnosis to *{}*.{}",
                mrkdwn::user(preface.requested_by),
                mrkdwn::escape(preface.target_title),
                preface
                    .thread_link
                    .map(|l| format!(" {}", mrkdwn::link(l, "Open the on-call thread")))
                    .unwrap_or_default()
            )),
            ..Default::default()
        };
        let blocks = blocks::report(report, &ctx);
        let ts = self
            .web
            .post_message(channel, None, &blocks::fallback_text(report), Some(blocks))
            .await
            .map_err(|e| PostFailed {
                message: e.user_message(),
                source: Box::new(e),
            })?;
        Ok(self
            .web
            .permalink(channel, &ts)
            .await
            .ok()
            .map(|u| u.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Environment;

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
