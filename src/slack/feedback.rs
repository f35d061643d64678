//! "Was this right?" from Slack: a 👍 / 👎 click on a final diagnosis, and the 👎 form's
//! `view_submission`.
//!
//! A click is handled like every button (`button.rs` `authorize_click`: only in watched
//! channels, only as its message offered it, the message must show a result the store
//! recorded) but with no on-call restriction: anyone in the channel may vote. It is turned
//! into a call of the feedback workflow (`feedback/`), with Slack behind [`SlackFeedback`], its
//! `FeedbackChannel`: the 👎 form opened with the click's `trigger_id`, and the diagnosis
//! re-rendered with its count (everything else of the message rendered again as it was: the
//! report, its buttons, its incident status).
//!
//! A submission is parsed here ([`parse_submission`], pure, from slack-morphism's model) and
//! handed to the workflow, which trusts nothing it carries but the token it matches against what
//! it stored. Refusals are logged and, when linkbot knows where the form came from, said to the
//! user (ephemeral) and audited as `refused_action`.
//!
//! This module must NOT decide what feedback does (the workflow does) or build Block Kit itself.

use super::blocks::{self, ButtonValue};
use super::button::report_context;
use super::handler::Handler;
use super::web::SlackWeb;
use crate::config::Config;
use crate::diagnosis::verdict::{Report, VerdictCode};
use crate::feedback::{
    Answered, FeedbackChannel, Feedbacks, FormOpened, Refused, Submission, Tally, VoteRequest,
};
use crate::incident::IncidentStatus;
use crate::store::{AuditEntry, AuditKind, MessageRef, Store, Vote};
use anyhow::{Context, Result};
use slack_morphism::prelude::*;
use std::sync::Arc;

/// The most a form token may be (linkbot's are 32 hex characters).
const MAX_TOKEN: usize = 64;

/// What a submission is, before the workflow looks at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not linkbot's feedback form (another `callback_id`): ignored.
    NotOurs,
    /// The feedback form's submission.
    Feedback(Submission),
    /// The feedback form's `callback_id` with no usable token: refused.
    NoToken,
}

/// Reads a `view_submission` into a [`Submission`]: the `callback_id` says whether it is the
/// feedback form, `private_metadata` carries linkbot's token, `state.values` the choice (the
/// selected option's value) and the comment. Validates nothing it cannot see (that is
/// `feedback::Answer`, against the choices linkbot offers).
pub fn parse_submission(ev: &SlackInteractionViewSubmissionEvent) -> Parsed {
    let SlackView::Modal(modal) = &ev.view.view else {
        return Parsed::NotOurs;
    };
    if modal.callback_id.as_ref().map(|c| c.0.as_str()) != Some(blocks::CALLBACK_FEEDBACK) {
        return Parsed::NotOurs;
    }
    let token = modal.private_metadata.as_deref().unwrap_or("");
    if token.is_empty()
        || token.len() > MAX_TOKEN
        || !token.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Parsed::NoToken;
    }
    let value = |block: &str, action: &str| {
        ev.view
            .state_params
            .state
            .as_ref()?
            .values
            .get(&SlackBlockId(block.to_string()))?
            .get(&SlackActionId(action.to_string()))
            .cloned()
    };
    let choice = value(
        blocks::BLOCK_FEEDBACK_ACTUAL,
        blocks::ACTION_FEEDBACK_ACTUAL,
    )
    .and_then(|v| v.selected_option)
    .map(|o| o.value);
    let comment = value(
        blocks::BLOCK_FEEDBACK_COMMENT,
        blocks::ACTION_FEEDBACK_COMMENT,
    )
    .and_then(|v| v.value);
    Parsed::Feedback(Submission {
        token: token.to_string(),
        view_id: ev.view.state_params.id.0.clone(),
        user: ev.user.id.0.clone(),
        choice,
        comment,
    })
}

/// The Slack side of feedback on one click or submission: the form opened with the click's
/// trigger, and the diagnosis message shown again with its count.
pub struct SlackFeedback<'a> {
    web: &'a SlackWeb,
    config: &'a Config,
    store: &'a Arc<dyn Store>,
    /// The click's trigger (none for a submission, which opens no form).
    trigger_id: Option<String>,
}

#[async_trait::async_trait]
impl FeedbackChannel for SlackFeedback<'_> {
    async fn open_form(&self, token: &str, shown: VerdictCode) -> Result<String> {
        let trigger = self
            .trigger_id
            .as_deref()
            .context("no trigger to open the form with")?;
        self.web
            .open_view(trigger, blocks::feedback_form(shown, token))
            .await
            .map_err(|e| anyhow::anyhow!(e.user_message()))
    }

    async fn show_tally(&self, message: &MessageRef, tally: &Tally) -> Result<()> {
        let done = self
            .store
            .shown_result(&message.channel, &message.ts)
            .await?
            .context("the message shows no result any more")?;
        let report: Report =
            serde_json::from_value(done.report).context("the stored report is not readable")?;
        let incident = self
            .store
            .incident_for_message(&message.channel, &message.ts)
            .await?;
        let mut ctx = report_context(self.config, &report, None);
        if let Some(incident) = &incident {
            ctx = blocks::with_incident(ctx, &IncidentStatus::of(incident));
        }
        ctx.feedback = Some(*tally);
        self.web
            .update(
                &message.channel,
                &message.ts,
                &blocks::fallback_text(&report),
                Some(blocks::report(&report, &ctx)),
            )
            .await?;
        Ok(())
    }
}

/// The count of feedback on `message`, for anything that re-renders a diagnosis.
pub async fn tally_of(store: &Arc<dyn Store>, message: &MessageRef) -> Tally {
    Feedbacks::new(store.clone()).tally(message).await
}

impl Handler {
    /// A 👍 or 👎 click (already de-duplicated), authorized against what its message offered;
    /// anyone in a watched channel may vote.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn on_feedback_click(
        &self,
        ev: &SlackInteractionBlockActionsEvent,
        channel: &str,
        message_ts: &str,
        thread: &str,
        user: &str,
        action_id: &str,
        value: Option<&str>,
    ) -> Result<()> {
        let Some((value, _)) = value.and_then(ButtonValue::parse) else {
            tracing::warn!(action_id, "feedback button value not ours: ignored");
            return Ok(());
        };
        if !self.watched(channel) {
            return Ok(());
        }
        if !self
            .authorize_click(channel, message_ts, thread, user, action_id, &value)
            .await?
        {
            return Ok(());
        }
        let store = self.coordinator.store();
        let message = MessageRef {
            channel: channel.to_string(),
            ts: message_ts.to_string(),
        };
        let shown = async {
            let done = store.shown_result(channel, message_ts).await?;
            let incident = store.incident_for_message(channel, message_ts).await?;
            Ok::<_, crate::store::StoreError>((done, incident))
        }
        .await;
        let (done, incident) = match shown {
            Ok((Some(done), incident)) => (done, incident),
            Ok((None, _)) | Err(_) => {
                self.tell(channel, user, thread, STORE_DOWN).await;
                return Ok(());
            }
        };
        let Some(verdict) = VerdictCode::parse(&done.verdict) else {
            tracing::error!(verdict = %done.verdict, "a stored verdict linkbot does not know");
            return Ok(());
        };
        let vote = if blocks::action_kind(action_id) == blocks::ACTION_FEEDBACK_UP {
            Vote::Up
        } else {
            Vote::Down
        };
        let user_name = ev
            .user
            .as_ref()
            .and_then(|u| u.name.clone().or_else(|| u.username.clone()))
            .map(|n| crate::format::clip(&crate::format::one_line(&n), 100));
        let request = VoteRequest {
            message: &message,
            user,
            user_name: user_name.as_deref(),
            check_id: done.check_id,
            key: &done.key,
            verdict,
            incident_id: incident.as_ref().map(|i| i.id),
            vote,
        };
        let chat = SlackFeedback {
            web: &self.web,
            config: &self.config,
            store,
            trigger_id: Some(ev.trigger_id.0.clone()),
        };
        match Feedbacks::new(store.clone()).vote(&request, &chat).await {
            Ok(voted) => {
                tracing::info!(
                    vote = vote.as_str(),
                    up = voted.tally.up,
                    down = voted.tally.down,
                    "feedback recorded"
                );
                if let Some(FormOpened::Failed(why)) = voted.form {
                    self.tell(channel, user, thread, &blocks::feedback_form_failed(&why))
                        .await;
                }
            }
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "could not record feedback");
                self.tell(channel, user, thread, STORE_DOWN).await;
            }
        }
        Ok(())
    }

    /// A `view_submission` (already de-duplicated): the 👎 form's answer, recorded only for a
    /// form linkbot opened for this user and view.
    pub(super) async fn on_view_submission(
        &self,
        ev: &SlackInteractionViewSubmissionEvent,
    ) -> Result<()> {
        let submission = match parse_submission(ev) {
            Parsed::NotOurs => return Ok(()),
            Parsed::NoToken => {
                tracing::warn!(user = %ev.user.id, view = %ev.view.state_params.id, "refused a feedback form with no token linkbot gave");
                return Ok(());
            }
            Parsed::Feedback(s) => s,
        };
        let store = self.coordinator.store();
        let chat = SlackFeedback {
            web: &self.web,
            config: &self.config,
            store,
            trigger_id: None,
        };
        let answered = match Feedbacks::new(store.clone())
            .answer(&submission, &chat)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "could not record a feedback form");
                return Ok(());
            }
        };
        let (form, sentence, why) = match answered {
            Answered::Recorded { row, tally } => {
                tracing::info!(actual = row.actual_verdict.as_deref().unwrap_or("-"), "feedback form recorded");
                let actual = row
                    .actual_verdict
                    .as_deref()
                    .and_then(crate::feedback::Actual::parse)
                    .context("the recorded answer")?;
                self.tell(
                    &row.message.channel,
                    &submission.user,
                    &self.thread_of(&row.message).await,
                    &blocks::feedback_answered(actual, row.comment.as_deref(), &tally),
                )
                .await;
                return Ok(());
            }
            Answered::Refused(Refused::UnknownForm) => {
                tracing::warn!(user = %submission.user, view = %submission.view_id, "refused a feedback form linkbot did not open (or already took)");
                return Ok(());
            }
            Answered::Refused(Refused::NotTheForm(form)) => (
                form,
                "That form is not one linkbot opened for you, so nothing was recorded.".to_string(),
                "a form opened for another user or view".to_string(),
            ),
            Answered::Refused(Refused::BadAnswer(form, e)) => {
                let why = e.to_string();
                (form, e.user_message(), why)
            }
            Answered::Refused(Refused::NoVote(form)) => (
                form,
                "Your vote on this diagnosis is gone, so the form was not recorded. Click 👎 again."
                    .to_string(),
                "no vote to answer".to_string(),
            ),
        };
        let thread = self.thread_of(&form.message).await;
        self.tell(
            &form.message.channel,
            &submission.user,
            &thread,
            &blocks::feedback_refused(&sentence),
        )
        .await;
        tracing::warn!(user = %submission.user, %why, "refused a feedback form");
        let entry = AuditEntry {
            at: chrono::Utc::now(),
            kind: AuditKind::RefusedAction,
            actor: Some(submission.user.clone()),
            channel: Some(form.message.channel.clone()),
            location: form.key.location.clone(),
            environment: form.key.environment,
            verdict: None,
            target: Some("feedback form".into()),
            link: None,
            detail: Some(crate::format::clip(&why, 1000)),
        };
        if let Err(e) = store.append_audit(&entry).await {
            tracing::error!(error = %e, "could not record a refused feedback form in the audit log");
        }
        Ok(())
    }

    /// The thread a diagnosis message lives in (its waiter's thread), else the message itself.
    async fn thread_of(&self, message: &MessageRef) -> String {
        let store = self.coordinator.store();
        let thread = match store.shown_result(&message.channel, &message.ts).await {
            Ok(Some(done)) => store.waiters(done.check_id).await.ok().and_then(|ws| {
                ws.into_iter()
                    .find(|w| w.channel == message.channel && w.message_ts == message.ts)
                    .and_then(|w| w.thread_ts)
            }),
            _ => None,
        };
        thread.unwrap_or_else(|| message.ts.clone())
    }

    /// An ephemeral sentence to `user` in `thread` (a failure is logged).
    async fn tell(&self, channel: &str, user: &str, thread: &str, text: &str) {
        if let Err(e) = self
            .web
            .post_ephemeral(channel, user, Some(thread), text, None)
            .await
        {
            tracing::warn!(channel, error = %e, "could not answer a feedback click");
        }
    }
}

/// What a voter is told when the store did not take the vote.
const STORE_DOWN: &str =
    "linkbot's store did not answer, so your feedback was not recorded. Try again in a minute.";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    /// A `view_submission` payload as Slack sends it over Socket Mode.
    fn payload(callback_id: &str, metadata: &str, values: Value) -> Value {
        json!({
            "type": "view_submission",
            "team": {"id": "T0SIMTEAM", "domain": "sim"},
            "user": {"id": "U0ENGINEER", "username": "engineer", "name": "engineer", "team_id": "T0SIMTEAM"},
            "api_app_id": "A0LINKBOT",
            "token": "sim-verification-token",
            "trigger_id": "123.456.abc",
            "view": {
                "id": "V00000001",
                "team_id": "T0SIMTEAM",
                "type": "modal",
                "blocks": [],
                "private_metadata": metadata,
                "callback_id": callback_id,
                "state": {"values": values},
                "hash": "1700000000.abcdef",
                "title": {"type": "plain_text", "text": "Was this right?", "emoji": true},
                "clear_on_close": false,
                "notify_on_close": false,
                "close": {"type": "plain_text", "text": "Cancel", "emoji": true},
                "submit": {"type": "plain_text", "text": "Send", "emoji": true},
                "previous_view_id": null,
                "root_view_id": "V00000001",
                "app_id": "A0LINKBOT",
                "external_id": "",
                "app_installed_team_id": "T0SIMTEAM",
                "bot_id": "B0LINKBOT"
            },
            "response_urls": [],
            "is_enterprise_install": false,
            "enterprise": null
        })
    }

    fn values(choice: Option<&str>, comment: Option<&str>) -> Value {
        let selected = match choice {
            Some(v) => {
                json!({"text": {"type": "plain_text", "text": "x", "emoji": true}, "value": v})
            }
            None => Value::Null,
        };
        json!({
            "linkbot_feedback_actual": {"actual": {"type": "static_select", "selected_option": selected}},
            "linkbot_feedback_comment": {"comment": {"type": "plain_text_input", "value": comment}},
        })
    }

    fn parse(p: Value) -> Parsed {
        let ev: SlackInteractionEvent = serde_json::from_value(p).expect("slack-morphism reads it");
        let SlackInteractionEvent::ViewSubmission(ev) = ev else {
            panic!("not a view submission");
        };
        parse_submission(&ev)
    }

    #[test]
    fn submissions_parse_as_a_table() {
        let token = "0123456789abcdef0123456789abcdef";
        let sub = |choice: Option<&str>, comment: Option<&str>| {
            Parsed::Feedback(Submission {
                token: token.into(),
                view_id: "V00000001".into(),
                user: "U0ENGINEER".into(),
                choice: choice.map(str::to_string),
                comment: comment.map(str::to_string),
            })
        };
        let cases = [
            (
                payload(
                    "linkbot_feedback",
                    token,
                    values(Some("region_mismatch"), Some("it was the region <!here>")),
                ),
                sub(Some("region_mismatch"), Some("it was the region <!here>")),
            ),
            (
                payload("linkbot_feedback", token, values(Some("other"), None)),
                sub(Some("other"), None),
            ),
            // A forged choice is carried as is: the workflow refuses what it did not offer.
            (
                payload("linkbot_feedback", token, values(Some("dba"), None)),
                sub(Some("dba"), None),
            ),
            (
                payload("linkbot_feedback", token, values(None, None)),
                sub(None, None),
            ),
            (
                payload("linkbot_feedback", token, json!({})),
                sub(None, None),
            ),
            (
                payload("someone_elses_modal", token, json!({})),
                Parsed::NotOurs,
            ),
            (payload("linkbot_feedback", "", json!({})), Parsed::NoToken),
            (
                payload("linkbot_feedback", "../../etc", json!({})),
                Parsed::NoToken,
            ),
            (
                payload("linkbot_feedback", &"a".repeat(65), json!({})),
                Parsed::NoToken,
            ),
        ];
        for (p, want) in cases {
            let shown = p.to_string();
            assert_eq!(parse(p), want, "{shown}");
        }
    }

    proptest! {
        /// Whatever the metadata and values, parsing never panics and keeps only a token made of
        /// letters and digits.
        #[test]
        fn any_submission_parses_without_panic(
            metadata in "\\PC{0,80}",
            choice in proptest::option::of("\\PC{0,40}"),
            comment in proptest::option::of("\\PC{0,200}"),
        ) {
            match parse(payload("linkbot_feedback", &metadata, values(choice.as_deref(), comment.as_deref()))) {
                Parsed::Feedback(s) => {
                    prop_assert_eq!(&s.token, &metadata);
                    prop_assert!(s.token.bytes().all(|b| b.is_ascii_alphanumeric()));
                    prop_assert_eq!(s.choice, choice);
                    prop_assert_eq!(s.comment, comment);
                }
                Parsed::NoToken => prop_assert!(metadata.is_empty() || metadata.len() > MAX_TOKEN || !metadata.bytes().all(|b| b.is_ascii_alphanumeric())),
                Parsed::NotOurs => prop_assert!(false, "the feedback callback id was not recognised"),
            }
        }
    }
}
