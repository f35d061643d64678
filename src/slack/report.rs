//! The report in Slack: `/linkbot report [7d]` (and `@linkbot report`) answered with the
//! report of the period, posted visibly; and [`SlackReportPoster`], the Slack side of the weekly
//! post ([`crate::report::weekly::ReportPoster`]).
//!
//! The command is parsed once (`commands.rs`); the report is gathered from the store by
//! [`crate::report::gather`] and rendered by `report_blocks.rs`. A message Slack refuses is
//! posted again as plain text; a store that cannot answer gets a visible sentence. This module
//! must NOT compute any number of the report, nor render Block Kit itself.

use super::handler::Handler;
use super::report_blocks;
use super::web::{SlackError, SlackWeb};
use crate::report::period::{Period, Since};
use crate::report::weekly::ReportPoster;
use crate::report::{gather, PeriodReport};
use anyhow::Result;

/// Posts `report` in `channel` (in `thread` if given) with chat.postMessage; when Slack refuses
/// the blocks, the text version instead. Returns the message's `ts`.
pub async fn post_report(
    web: &SlackWeb,
    channel: &str,
    thread: Option<&str>,
    report: &PeriodReport,
) -> Result<String, SlackError> {
    let (text, blocks) = report_blocks::report(report);
    match web.post_message(channel, thread, &text, Some(blocks)).await {
        Ok(ts) => Ok(ts),
        Err(e @ (SlackError::Api { .. } | SlackError::InvalidBlocks { .. })) => {
            tracing::error!(channel, code = e.code(), messages = ?e.response_messages(), "Slack refused the report; posting it as plain text: {e}");
            web.post_message(channel, thread, &report_blocks::plain_text(report), None)
                .await
        }
        Err(e) => Err(e),
    }
}

/// The weekly post's Slack side: posts in the channel, visibly.
pub struct SlackReportPoster {
    web: SlackWeb,
}

impl SlackReportPoster {
    /// A poster through `web`.
    pub fn new(web: SlackWeb) -> Self {
        SlackReportPoster { web }
    }
}

#[async_trait::async_trait]
impl ReportPoster for SlackReportPoster {
    async fn post_report(&self, channel: &str, report: &PeriodReport) -> Result<String> {
        Ok(post_report(&self.web, channel, None, report).await?)
    }

    async fn post_failure(&self, channel: &str, sentence: &str) -> Result<String> {
        Ok(self.web.post_message(channel, None, sentence, None).await?)
    }
}

impl Handler {
    /// Answers `report [since]` from `user`: the report of the period up to now, posted visibly
    /// in `channel` (in `thread` for a mention). A period that cannot be reported on is told to
    /// `user` alone (a slash command) or in the thread (a mention); a store that cannot answer
    /// is said visibly.
    pub(super) async fn answer_report(
        &self,
        channel: &str,
        thread: Option<&str>,
        user: &str,
        since: Since,
    ) -> Result<()> {
        let period = match Period::up_to(since, self.clock.now()) {
            Ok(p) => p,
            Err(e) => {
                let why = super::mrkdwn::escape(&e.to_string());
                match thread {
                    Some(t) => self
                        .web
                        .post_message(channel, Some(t), &why, None)
                        .await
                        .map(drop)?,
                    None => {
                        self.web
                            .post_ephemeral(channel, user, None, &why, None)
                            .await?
                    }
                }
                return Ok(());
            }
        };
        match gather(&**self.coordinator.store(), period).await {
            Ok(report) => {
                post_report(&self.web, channel, thread, &report).await?;
            }
            Err(e) => {
                let sentence = format!("The report could not be made: {}", e.user_message());
                tracing::error!(
                    error = format!("{:#}", anyhow::Error::new(e)),
                    "cannot read the report's rows"
                );
                self.web
                    .post_message(channel, thread, &sentence, None)
                    .await?;
            }
        }
        Ok(())
    }
}
