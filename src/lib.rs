//! linkbot: from a Satellite Link "cannot get IAM token" alert to a diagnosis in one Slack thread.
//!
//! See `ARCHITECTURE.md` for the code map. The binary (`src/main.rs`) only parses the command
//! line and calls into this library, so tests drive everything through it.

pub mod alertmanager;
pub mod app;
pub mod audit_table;
pub mod check;
pub mod cli;
pub mod config;
pub mod demo;
pub mod diagnosis;
pub mod directory;
pub mod domain;
pub mod escalation;
pub mod feedback;
pub mod format;
pub mod iam;
pub mod incident;
pub mod jenkins;
pub mod metrics;
pub mod net;
pub mod report;
pub mod secret;
pub mod server;
pub mod silence;
pub mod sim;
pub mod slack;
pub mod store;
pub mod storm;
pub mod telemetry;
