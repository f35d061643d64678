//! Pure logic: artifact parsing, the runbook's rules, the verdict, and its text/JSON rendering.
//!
//! Nothing here does I/O or knows about Slack, Jenkins or the directory: it takes bytes and
//! domain values and returns values. Secrets read from artifacts stay inside [`crate::secret::Secret`].

pub mod artifacts;
pub mod render;
pub mod rules;
pub mod verdict;
