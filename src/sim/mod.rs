//! Simulated outside systems shared by the demo and the tests; nothing else may depend on it.

pub mod slack;
