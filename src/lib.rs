//! linkbot: from a Satellite Link "cannot get IAM token" alert to a diagnosis in one Slack thread.
//!
//! See `ARCHITECTURE.md` for the code map. The binary (`src/main.rs`) only parses the command
//! line and calls into this library, so tests drive everything through it.

pub mod config;
pub mod diagnosis;
pub mod domain;
pub mod escalation;
pub mod metrics;
pub mod secret;
pub mod server;
pub mod sim;
