//! Slack plumbing: the Web API client ([`web`]) and the Socket Mode transport ([`transport`]).
//!
//! This is the only part of linkbot that may import `slack_morphism`: everything else talks to
//! Slack through the types exported here. These modules move bytes and models; they must NOT
//! decide anything about commands, alerts, buttons or who may act — that is the bot's logic.

pub mod transport;
pub mod web;
