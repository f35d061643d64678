//! An `@linkbot …` mention: a command typed in a watched channel, answered in its thread.
//!
//! The mention's text is parsed once ([`super::commands::parse`]) and answered here, in the
//! thread: a check (handed to [`Handler::start_check`]), usage, the checks in flight, or why
//! the text is not a command. The slash command answers in a thread through the same
//! [`Handler::answer_in_thread`] once it has posted its thread's first message.
//!
//! This module must NOT de-duplicate (the handler did), parse anything but through
//! `commands.rs`, or render Block Kit (that is `blocks.rs`).

use super::commands::{self, Command};
use super::handler::Handler;
use super::mrkdwn;
use crate::domain::CheckKey;
use crate::store::{RequestSource, Requester};
use anyhow::Result;
use slack_morphism::prelude::*;

impl Handler {
    /// A mention: answered in its thread when in a watched channel, ignored elsewhere.
    pub(super) async fn on_mention(&self, m: &SlackAppMentionEvent) -> Result<()> {
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
        self.answer_in_thread(
            &channel,
            &user,
            &thread,
            commands::parse(&text),
            RequestSource::Mention,
        )
        .await
    }

    /// A command from `user` (a mention's, or a slash command's: parsed once, by the caller),
    /// answered in `thread`.
    pub(super) async fn answer_in_thread(
        &self,
        channel: &str,
        user: &str,
        thread: &str,
        command: Command,
        source: RequestSource,
    ) -> Result<()> {
        match command {
            Command::Check {
                location,
                environment,
            } => {
                let req = CheckKey {
                    location,
                    environment: environment.unwrap_or(self.config.check.default_environment),
                };
                if !self.config.environments.contains_key(&req.environment) {
                    let text = format!("The `{}` environment is not configured.", req.environment);
                    return self.reply(channel, thread, &text).await;
                }
                let requester = Requester {
                    user: Some(user.to_string()),
                    channel: Some(channel.to_string()),
                    source,
                };
                Box::pin(self.start_check(channel, thread, &req, &requester, false, None)).await
            }
            Command::Help => self.reply(channel, thread, commands::USAGE).await,
            Command::Report { since } => {
                Box::pin(self.answer_report(channel, Some(thread), user, since)).await
            }
            Command::Status => {
                let text = Box::pin(self.status_text()).await?;
                self.reply(channel, thread, &text).await
            }
            Command::Invalid(why) => {
                let text = format!("{why}\n\n{}", commands::USAGE);
                self.reply(channel, thread, &text).await
            }
        }
    }

    /// Posts `text` in `thread`. Boxed: every command's future stays small, so a burst of
    /// requests waiting for Slack holds only the state of the call under way.
    async fn reply(&self, channel: &str, thread: &str, text: &str) -> Result<()> {
        Box::pin(self.web.post_message(channel, Some(thread), text, None)).await?;
        Ok(())
    }

    /// The checks in flight, one line each (mrkdwn).
    pub(super) async fn status_text(&self) -> Result<String> {
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
}
