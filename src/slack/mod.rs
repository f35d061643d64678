//! TEMP (replaced at merge)
pub mod alerts;
pub mod blocks;
pub mod commands;
