//! Everything Slack: the Web API client ([`web`]), the Socket Mode transport ([`transport`]),
//! and the bot's Slack-facing logic (commands, alerts, Block Kit, the event handler).
//!
//! This is the only part of linkbot that may import `slack_morphism`. The plumbing modules
//! (`web`, `transport`) move bytes and models and decide nothing; the logic modules
//! (`commands`, `alerts`, `blocks`, `mrkdwn`) are pure; `handler` turns envelopes into checks,
//! escalations and messages.

pub mod alerts;
pub mod blocks;
pub mod commands;
pub mod handler;
pub mod mrkdwn;
pub mod transport;
pub mod web;
