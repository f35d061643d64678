//! "Was this right?": feedback on a final diagnosis — the decisions, in order, over the store.
//!
//! Anyone in the channel may vote (no on-call restriction). A 👍 records a confirmation; a 👎
//! records the vote and opens a form asking what it actually was (a verdict code or "something
//! else") with an optional comment. Each person has one vote per diagnosis message: a second
//! click replaces the first. Every vote and answer is stored with the user, the check and the
//! incident, audited (`feedback`), and the message's count ([`Tally`]) is shown again.
//!
//! The 👎 form is matched to its message by what linkbot stored when it opened it — a random
//! token in the view's `private_metadata`, the user and the view id — never by identifiers the
//! submission carries: an unknown token, another user's form, another view or a second
//! submission is refused ([`Refused`]). The click itself was authorized before it got here
//! (`slack/button.rs`: the message must show a final result and offer the buttons).
//!
//! This module must NOT import slack-morphism, render Slack text, or import `config`: Slack is
//! behind [`FeedbackChannel`] (implemented in `slack/feedback.rs`), which receives typed values
//! that `slack/blocks.rs` renders.

use crate::diagnosis::verdict::VerdictCode;
use crate::domain::CheckKey;
use crate::store::{
    AuditEntry, AuditKind, CheckId, Feedback, FeedbackForm, IncidentId, MessageRef, NewVote, Store,
    Vote,
};
use anyhow::{Context, Result};
use std::sync::Arc;

/// The longest comment a 👎 form takes (the form's `max_length`; Slack's limit for a text input).
pub const MAX_COMMENT: usize = 3000;

/// The stored value of "something else" in the 👎 form.
pub const OTHER: &str = "other";

/// What a person says a diagnosis actually was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actual {
    /// One of the runbook's verdicts.
    Verdict(VerdictCode),
    /// None of them ("something else").
    Other,
}

impl Actual {
    /// Every choice the form offers, in order: the verdicts, then "something else".
    pub fn all() -> Vec<Actual> {
        VerdictCode::ALL
            .iter()
            .copied()
            .map(Actual::Verdict)
            .chain(std::iter::once(Actual::Other))
            .collect()
    }

    /// The stored value: the verdict code, or `other`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Actual::Verdict(v) => v.as_str(),
            Actual::Other => OTHER,
        }
    }

    /// What people read for it: the verdict's title, or "Something else".
    pub fn title(&self) -> &'static str {
        match self {
            Actual::Verdict(v) => v.title(),
            Actual::Other => "Something else",
        }
    }

    /// A stored or submitted value back; `None` for anything the form does not offer.
    pub fn parse(value: &str) -> Option<Actual> {
        if value == OTHER {
            return Some(Actual::Other);
        }
        VerdictCode::parse(value).map(Actual::Verdict)
    }
}

/// The count a diagnosis message shows: how many people said it was right, and wrong.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// 👍 votes.
    pub up: usize,
    /// 👎 votes.
    pub down: usize,
}

impl Tally {
    /// The count of a message's feedback rows (one per person).
    pub fn of(rows: &[Feedback]) -> Tally {
        rows.iter().fold(Tally::default(), |t, r| match r.vote {
            Vote::Up => Tally { up: t.up + 1, ..t },
            Vote::Down => Tally {
                down: t.down + 1,
                ..t
            },
        })
    }

    /// Whether nobody voted yet.
    pub fn is_empty(&self) -> bool {
        self.up == 0 && self.down == 0
    }
}

/// The answer of a 👎 form, validated: a choice the form offered and a comment within bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    actual: Actual,
    comment: Option<String>,
}

/// Why a 👎 form's answer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// No choice was made (Slack requires one; a forged submission may omit it).
    #[error("the form's answer has no choice")]
    NoChoice,
    /// A choice the form never offered.
    #[error("the form's answer is not one of its choices")]
    UnknownChoice,
    /// A comment longer than [`MAX_COMMENT`] characters.
    #[error("the comment has {0} characters, more than {MAX_COMMENT}")]
    CommentTooLong(usize),
}

impl AnswerError {
    /// One sentence for the person who sent it.
    pub fn user_message(&self) -> String {
        match self {
            AnswerError::NoChoice => {
                "Your feedback was not recorded: choose what it actually was.".into()
            }
            AnswerError::UnknownChoice => {
                "Your feedback was not recorded: that choice is not one the form offered.".into()
            }
            AnswerError::CommentTooLong(_) => format!(
                "Your feedback was not recorded: the comment is longer than {MAX_COMMENT} characters."
            ),
        }
    }
}

impl Answer {
    /// Validates a form's answer: `choice` must be a value the form offers, `comment` (blank
    /// means none) at most [`MAX_COMMENT`] characters.
    pub fn parse(choice: Option<&str>, comment: Option<&str>) -> Result<Answer, AnswerError> {
        let choice = choice.ok_or(AnswerError::NoChoice)?;
        let actual = Actual::parse(choice).ok_or(AnswerError::UnknownChoice)?;
        let comment = comment.filter(|c| !c.trim().is_empty());
        if let Some(c) = comment {
            let n = c.chars().count();
            if n > MAX_COMMENT {
                return Err(AnswerError::CommentTooLong(n));
            }
        }
        Ok(Answer {
            actual,
            comment: comment.map(str::to_string),
        })
    }

    /// What it actually was.
    pub fn actual(&self) -> Actual {
        self.actual
    }

    /// The comment, if any (outside text: escape it wherever it is shown).
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }
}

/// The Slack side of feedback (implemented in `slack/feedback.rs`).
#[async_trait::async_trait]
pub trait FeedbackChannel: Send + Sync {
    /// Opens the 👎 form for the clicking user (the click's trigger, once, within Slack's 3 s),
    /// about a diagnosis showing `shown`, carrying `token`. Returns the view id Slack gave it.
    async fn open_form(&self, token: &str, shown: VerdictCode) -> Result<String>;
    /// Shows the diagnosis `message` again with `tally`, keeping the rest of it.
    async fn show_tally(&self, message: &MessageRef, tally: &Tally) -> Result<()>;
}

/// A click on 👍 or 👎, already authorized against what its message shows.
#[derive(Debug, Clone)]
pub struct VoteRequest<'a> {
    /// The diagnosis message.
    pub message: &'a MessageRef,
    /// Who clicked (Slack user id).
    pub user: &'a str,
    /// Their Slack name, when the click carried it.
    pub user_name: Option<&'a str>,
    /// The result the store says the message shows.
    pub check_id: CheckId,
    /// Its location and environment.
    pub key: &'a CheckKey,
    /// Its verdict.
    pub verdict: VerdictCode,
    /// The incident whose diagnosis the message is, if any.
    pub incident_id: Option<IncidentId>,
    /// Right or wrong.
    pub vote: Vote,
}

/// What a vote did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voted {
    /// The message's count now.
    pub tally: Tally,
    /// For a 👎: whether the form opened (when it did not, the vote is still recorded).
    pub form: Option<FormOpened>,
}

/// Whether the 👎 form opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormOpened {
    /// It is open (its view id).
    Opened(String),
    /// Slack did not open it: one sentence why.
    Failed(String),
}

/// A 👎 form's submission, as the Slack layer parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// The token the form carried (`private_metadata`): it names the form linkbot opened.
    pub token: String,
    /// The view id Slack says was submitted.
    pub view_id: String,
    /// Who submitted it.
    pub user: String,
    /// The choice made (the selected option's value), if any.
    pub choice: Option<String>,
    /// The comment, if any.
    pub comment: Option<String>,
}

/// Why a submission was refused. Nothing was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No form linkbot opened (and still open) carries this token: forged, answered already,
    /// or too old. Nothing says which message it would be about.
    UnknownForm,
    /// The form exists but was opened for another user or as another view.
    NotTheForm(Box<FeedbackForm>),
    /// The answer is not valid (`form` says where to tell the user).
    BadAnswer(Box<FeedbackForm>, AnswerError),
    /// The user has no vote on the message any more (cannot happen unless rows were removed).
    NoVote(Box<FeedbackForm>),
}

/// What a submission did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    /// Recorded on the user's row; the message's count now.
    Recorded {
        /// The row as it now is.
        row: Box<Feedback>,
        /// The message's count.
        tally: Tally,
    },
    /// Refused: nothing recorded.
    Refused(Refused),
}

/// The feedback workflow over the store. Cheap to clone.
#[derive(Clone)]
pub struct Feedbacks {
    store: Arc<dyn Store>,
}

impl Feedbacks {
    /// The workflow over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Feedbacks { store }
    }

    /// The count of `message` (zero when the store cannot say: the count is informative).
    pub async fn tally(&self, message: &MessageRef) -> Tally {
        match self.store.feedback_for_message(message).await {
            Ok(rows) => Tally::of(&rows),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the feedback of a message");
                Tally::default()
            }
        }
    }

    /// A 👍 or 👎: records the vote (replacing the user's earlier one); for a 👎 then opens the
    /// form (Slack's trigger lasts 3 s, so nothing else comes first: the form's answer can only
    /// arrive once the vote it answers is recorded); then audits it and shows the new count.
    pub async fn vote(&self, req: &VoteRequest<'_>, chat: &dyn FeedbackChannel) -> Result<Voted> {
        let row = self
            .store
            .record_vote(&NewVote {
                message: req.message,
                user: req.user,
                user_name: req.user_name,
                check_id: Some(req.check_id),
                incident_id: req.incident_id,
                key: req.key,
                verdict: req.verdict.as_str(),
                vote: req.vote,
            })
            .await
            .context("recording the vote")?;
        let form = match req.vote {
            Vote::Up => None,
            Vote::Down => Some(self.open_form(req, chat).await?),
        };
        self.audit(&row, format!("vote {}", req.vote.as_str()))
            .await;
        let tally = self.shown_again(req.message, chat).await;
        Ok(Voted { tally, form })
    }

    /// Records the form first (so its submission is recognised, whenever it comes), then asks
    /// Slack to open it, then records the view id Slack gave it.
    async fn open_form(
        &self,
        req: &VoteRequest<'_>,
        chat: &dyn FeedbackChannel,
    ) -> Result<FormOpened> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.store
            .open_feedback_form(&token, req.message, req.user, req.key)
            .await
            .context("recording the feedback form")?;
        match chat.open_form(&token, req.verdict).await {
            Ok(view_id) => {
                if let Err(e) = self.store.set_feedback_form_view(&token, &view_id).await {
                    // The token alone still names the form; the view check is then skipped.
                    tracing::warn!(error = %e, "cannot record the feedback form's view id");
                }
                Ok(FormOpened::Opened(view_id))
            }
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "the feedback form did not open");
                Ok(FormOpened::Failed(format!("{e:#}")))
            }
        }
    }

    /// A 👎 form's submission: accepted only for a form linkbot opened for this user and view,
    /// once; then the answer is validated, recorded on the user's row, audited, and the count
    /// shown again.
    pub async fn answer(&self, sub: &Submission, chat: &dyn FeedbackChannel) -> Result<Answered> {
        let Some(form) = self
            .store
            .feedback_form(&sub.token)
            .await
            .context("reading the feedback form")?
        else {
            return Ok(Answered::Refused(Refused::UnknownForm));
        };
        let view_differs = form.view_id.as_deref().is_some_and(|v| v != sub.view_id);
        if form.user != sub.user || view_differs {
            return Ok(Answered::Refused(Refused::NotTheForm(Box::new(form))));
        }
        let answer = match Answer::parse(sub.choice.as_deref(), sub.comment.as_deref()) {
            Ok(a) => a,
            Err(e) => return Ok(Answered::Refused(Refused::BadAnswer(Box::new(form), e))),
        };
        if !self
            .store
            .take_feedback_form(&sub.token)
            .await
            .context("taking the feedback form")?
        {
            // Another delivery took it first.
            return Ok(Answered::Refused(Refused::UnknownForm));
        }
        let Some(row) = self
            .store
            .record_feedback_answer(
                &form.message,
                &sub.user,
                answer.actual().as_str(),
                answer.comment(),
            )
            .await
            .context("recording the feedback form's answer")?
        else {
            return Ok(Answered::Refused(Refused::NoVote(Box::new(form))));
        };
        let comment = answer
            .comment()
            .map(|c| {
                format!(
                    ": {}",
                    crate::format::clip(&crate::format::one_line(c), 300)
                )
            })
            .unwrap_or_default();
        self.audit(
            &row,
            format!("vote down, actually {}{comment}", answer.actual().as_str()),
        )
        .await;
        let tally = self.shown_again(&form.message, chat).await;
        Ok(Answered::Recorded {
            row: Box::new(row),
            tally,
        })
    }

    /// Audits a vote or an answer (a failure is logged: the vote itself is recorded).
    async fn audit(&self, row: &Feedback, detail: String) {
        let entry = AuditEntry {
            at: row.updated_at,
            kind: AuditKind::Feedback,
            actor: Some(row.user.clone()),
            channel: Some(row.message.channel.clone()),
            location: row.key.location.clone(),
            environment: row.key.environment,
            verdict: Some(row.verdict.clone()),
            target: None,
            link: None,
            detail: Some(detail),
        };
        if let Err(e) = self.store.append_audit(&entry).await {
            tracing::error!(error = %e, "could not record feedback in the audit log");
        }
    }

    /// Reads the message's count and shows it (a failure to show is logged).
    async fn shown_again(&self, message: &MessageRef, chat: &dyn FeedbackChannel) -> Tally {
        let tally = self.tally(message).await;
        if let Err(e) = chat.show_tally(message, &tally).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "could not show the feedback count"
            );
        }
        tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_choice_round_trips_and_nothing_else_parses() {
        let all = Actual::all();
        assert_eq!(all.len(), VerdictCode::ALL.len() + 1);
        assert_eq!(all.last(), Some(&Actual::Other));
        for a in &all {
            assert_eq!(Actual::parse(a.as_str()), Some(*a));
            assert!(!a.title().is_empty());
        }
        for bad in [
            "",
            "Other",
            "OTHER",
            " other",
            "api_key_invalid ",
            "region",
            "null",
        ] {
            assert_eq!(Actual::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn answers_are_validated_as_a_table() {
        let long = "x".repeat(MAX_COMMENT + 1);
        let max = "é".repeat(MAX_COMMENT);
        /// A choice, a comment, and what parsing them gives.
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Result<(Actual, Option<&'a str>), AnswerError>,
        );
        let cases: Vec<Case> = vec![
            (
                Some("region_mismatch"),
                None,
                Ok((Actual::Verdict(VerdictCode::RegionMismatch), None)),
            ),
            (
                Some("other"),
                Some("the carrier was down"),
                Ok((Actual::Other, Some("the carrier was down"))),
            ),
            (Some("other"), Some("   \n "), Ok((Actual::Other, None))),
            (
                Some("job_failed"),
                Some(max.as_str()),
                Ok((Actual::Verdict(VerdictCode::JobFailed), Some(max.as_str()))),
            ),
            (None, Some("no choice"), Err(AnswerError::NoChoice)),
            (
                Some("dba_was_asleep"),
                None,
                Err(AnswerError::UnknownChoice),
            ),
            (Some(""), None, Err(AnswerError::UnknownChoice)),
            (
                Some("other"),
                Some(long.as_str()),
                Err(AnswerError::CommentTooLong(MAX_COMMENT + 1)),
            ),
        ];
        for (choice, comment, want) in cases {
            let got = Answer::parse(choice, comment);
            match (&got, &want) {
                (Ok(a), Ok((actual, c))) => {
                    assert_eq!(a.actual(), *actual);
                    assert_eq!(a.comment(), *c);
                }
                (Err(e), Err(w)) => {
                    assert_eq!(e, w);
                    assert!(e
                        .user_message()
                        .starts_with("Your feedback was not recorded"));
                }
                _ => panic!("{choice:?} {comment:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    fn row(vote: Vote) -> Feedback {
        Feedback {
            message: MessageRef {
                channel: "C1".into(),
                ts: "1.1".into(),
            },
            user: "U1".into(),
            user_name: None,
            check_id: None,
            incident_id: None,
            key: CheckKey {
                location: crate::domain::LocationId::parse("c1hk4ek107l5au5mq8hg").expect("id"),
                environment: crate::domain::Environment::Prod,
            },
            verdict: "api_key_invalid".into(),
            vote,
            actual_verdict: None,
            comment: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn the_tally_counts_each_vote() {
        assert!(Tally::of(&[]).is_empty());
        let rows = [row(Vote::Up), row(Vote::Down), row(Vote::Up)];
        assert_eq!(Tally::of(&rows), Tally { up: 2, down: 1 });
    }

    proptest! {
        /// Any choice and comment: a value parses only when the form offers it, and a comment
        /// is kept only when it has text and fits.
        #[test]
        fn any_answer_is_accepted_only_as_offered(
            choice in proptest::option::of(prop_oneof![
                prop::sample::select(Actual::all().iter().map(|a| a.as_str().to_string()).collect::<Vec<_>>()),
                "\\PC{0,20}",
            ]),
            comment in proptest::option::of("\\PC{0,40}"),
        ) {
            let offered = choice.as_deref().and_then(Actual::parse);
            match Answer::parse(choice.as_deref(), comment.as_deref()) {
                Ok(a) => {
                    prop_assert_eq!(Some(a.actual()), offered);
                    prop_assert_eq!(a.comment().is_some(), comment.as_deref().is_some_and(|c| !c.trim().is_empty()));
                }
                Err(AnswerError::NoChoice) => prop_assert!(choice.is_none()),
                Err(AnswerError::UnknownChoice) => prop_assert!(choice.is_some() && offered.is_none()),
                Err(AnswerError::CommentTooLong(_)) => prop_assert!(false, "a short comment was refused"),
            }
        }
    }
}
