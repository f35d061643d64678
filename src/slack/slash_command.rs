//! A `/linkbot …` slash command: answered to its user alone, a check run in a new thread.
//!
//! The command text is parsed once ([`super::commands::parse`]). Outside a watched channel it
//! is refused with the channels that are watched; `check` is acknowledged to the user, opens a
//! thread in the channel, and is answered there by [`Handler::answer_in_thread`] (the same
//! path as a mention) with the command already parsed; `report [7d]` is posted visibly in the
//! channel (`report.rs`); `status`, `help` and invalid text are answered to the user only.
//!
//! This module must NOT de-duplicate (the handler did) or parse text a second time.

use super::commands::{self, Command};
use super::handler::Handler;
use super::mrkdwn;
use crate::store::RequestSource;
use anyhow::Result;
use slack_morphism::prelude::*;

impl Handler {
    /// A slash command (already de-duplicated): parsed once, answered to its user, and a check
    /// run in a new thread of the channel.
    pub(super) async fn on_slash_command(&self, cmd: &SlackCommandEvent) -> Result<()> {
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
        let command = commands::parse(&text);
        match &command {
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
                self.answer_in_thread(&channel, &user, &root, command, RequestSource::Slash)
                    .await
            }
            Command::Report { since } => self.answer_report(&channel, None, &user, *since).await,
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
}
