//! Everything Slack: the Web API client ([`web`]), the Socket Mode transport ([`transport`]),
//! and the bot's Slack-facing logic (commands, alerts, Block Kit, one file per kind of inbound).
//!
//! This is the only part of linkbot that may import `slack_morphism`. The plumbing modules
//! (`web`, `transport`) move bytes and models and decide nothing; the logic modules
//! (`commands`, `alerts`, `blocks`, `mrkdwn`) are pure; `handler` de-duplicates each envelope
//! and dispatches it by what arrived (`dispatch` bounds how many run per channel and kind) — `mention`, `slash_command`, `alert_message`, `button`
//! (and `silence`, for the Silence… select and Unsilence; `feedback`, for 👍 / 👎 and the 👎
//! form's submission) — with `oncall` (who may act) beside them; `sink` shows check progress
//! and results; `report` posts the report of a period (`/linkbot report`, the weekly post),
//! rendered by the pure `report_blocks`.

pub mod alert_message;
pub mod alerts;
pub mod blocks;
pub mod budget;
pub mod button;
pub mod commands;
pub mod dispatch;
pub mod feedback;
pub mod handler;
pub mod mention;
pub mod mrkdwn;
pub mod oncall;
pub mod report;
pub mod report_blocks;
pub mod silence;
pub mod sink;
pub mod slash_command;
pub mod storm;
pub mod transport;
pub mod web;
