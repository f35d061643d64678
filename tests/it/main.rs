//! The integration tests, as one test binary: a 2-core CI links the library's test dependants
//! once, not once per file. Each module is one area and keeps its own module docs; `common` is the
//! one shared harness (a PostgreSQL schema per test, the binary's log capture).
//!
//! Run one area with a filter, e.g. `cargo test --test it bot::` or `cargo test --test it store::`.
//! All tests share one process: a test must not install a global (a tracing subscriber, an
//! environment variable); use `common` for what must be shared.

mod common;

mod architecture;
mod bot;
mod cli;
mod coordinator;
mod diagnosis;
mod edit_budget;
mod escalation;
mod faults;
mod feedback;
mod iam;
mod jenkins;
mod network;
mod production;
mod report;
mod server;
mod silence;
mod slack_transport;
mod store;
mod storm;
mod timeouts;
