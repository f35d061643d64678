//! Simulated outside systems shared by the demo and the tests; nothing else may depend on it.
//!
//! Each simulator listens on `127.0.0.1:0`, speaks the real system's protocol, records what it
//! was sent for assertions, and fails on demand. [`world`] starts them all together.

pub mod artifacts;
pub mod directory;
pub mod github;
pub mod iam;
pub mod jenkins;
pub mod pagerduty;
pub mod slack;
pub mod world;
