//! The store's rows for storms (migrations 0008 and 0009): the firings the threshold counts, the
//! storm (at most one active per environment) with the lease of its budgeted checker, and its
//! locations with the claim on each alert's pointer reply, and how rows map to these types.
//!
//! This module must NOT decide anything about a storm (that is `storm/`): it only names what
//! the store keeps. The queries are in `sql.rs`, written once for both dialects.

use super::{key_from_row, message_ref, opt_time, time_from_ms, Cols, MessageRef, StoreError};
use crate::domain::{CheckKey, Environment};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt;

/// The id of one storm (a row in the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct StormId(pub i64);

impl fmt::Display for StormId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a storm is doing about its locations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StormMode {
    /// Waiting for the sample's verdicts; nothing else is built.
    Sample,
    /// Checking the rest within the build budget.
    Budget,
    /// Checking no more (an on-call member pressed Stop).
    Stopped,
}

impl StormMode {
    /// The name stored.
    pub fn as_str(&self) -> &'static str {
        match self {
            StormMode::Sample => "sample",
            StormMode::Budget => "budget",
            StormMode::Stopped => "stopped",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "sample" => Ok(StormMode::Sample),
            "budget" => Ok(StormMode::Budget),
            "stopped" => Ok(StormMode::Stopped),
            other => Err(StoreError::Corrupt {
                what: format!("storm mode `{other}`"),
            }),
        }
    }
}

/// One storm: many locations of one environment firing within the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Storm {
    /// The storm.
    pub id: StormId,
    /// Its environment.
    pub environment: Environment,
    /// Whether it is still going on (not ended by a quiet window).
    pub active: bool,
    /// What it is doing about its locations.
    pub mode: StormMode,
    /// The generation of its budgeted checking (raised each time checking starts).
    pub epoch: i64,
    /// When the threshold was crossed.
    pub declared_at: DateTime<Utc>,
    /// The first firing counted in it.
    pub first_firing_at: DateTime<Utc>,
    /// The last new location firing in it.
    pub last_firing_at: DateTime<Utc>,
    /// Its message in the channel, once posted.
    pub message: Option<MessageRef>,
    /// What the one IAM health probe found (a sentence), once known.
    pub iam_health: Option<String>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// The replica checking the rest within the budget, once one claimed a location.
    pub pumped_by: Option<String>,
    /// When its budgeted checker last showed it is alive (its lease's heartbeat).
    pub pumped_at: Option<DateTime<Utc>>,
}

/// One location of a storm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StormLocation {
    /// The location (and the storm's environment).
    pub key: CheckKey,
    /// When its alert arrived.
    pub fired_at: DateTime<Utc>,
    /// Its alert message.
    pub alert: MessageRef,
    /// Its datacenter, once looked up or checked.
    pub datacenter: Option<String>,
    /// Its region, once known.
    pub region: Option<String>,
    /// Whether it is in the storm's sample.
    pub sample: bool,
    /// Whether a check was started for it (before the storm, as the sample, or in the budget).
    pub checked: bool,
    /// Its verdict code, once its check finished.
    pub verdict: Option<String>,
    /// The verdict's reason in one line (the report's summary, location-neutral): what the
    /// sample's verdicts are compared by.
    pub reason: Option<String>,
    /// The same reason as the report said it (digits, key and location kept): what the storm
    /// message shows. `None` for verdicts recorded before migration 0010.
    pub reason_text: Option<String>,
}

/// Where a location is, as far as a storm needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Whereabouts {
    /// The datacenter.
    pub datacenter: Option<String>,
    /// Its region.
    pub region: Option<String>,
}

/// The answer to [`super::Store::storm_fired`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StormFiring {
    /// No storm: the alert is handled on its own.
    Calm,
    /// This firing crossed the threshold and declared `storm`, with every location of its
    /// window (the firing's own included, not yet checked; the others were checked as they came).
    Declared(Storm, Vec<StormLocation>),
    /// A storm is active in the environment; `new` when this location was not in it yet.
    Joined {
        /// The storm.
        storm: Storm,
        /// Whether the location joined it now.
        new: bool,
    },
}

/// What [`super::Store::storm_fired`] found: the firing's place, and a storm it ended first
/// (its quiet window had passed: the caller records its end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StormFired {
    /// The firing's place.
    pub firing: StormFiring,
    /// A storm this call ended because no new location had fired for a window.
    pub ended: Option<Storm>,
}

pub(super) fn storm_from_row(row: &impl Cols) -> Result<Storm, StoreError> {
    let env = row.text("environment")?;
    Ok(Storm {
        id: StormId(row.int("id")?),
        environment: Environment::parse(&env).map_err(|e| StoreError::Corrupt {
            what: e.to_string(),
        })?,
        active: row.text("state")? == "active",
        mode: StormMode::parse(&row.text("mode")?)?,
        epoch: row.int("epoch")?,
        declared_at: time_from_ms(row.int("declared_at")?, "declared_at")?,
        first_firing_at: time_from_ms(row.int("first_firing_at")?, "first_firing_at")?,
        last_firing_at: time_from_ms(row.int("last_firing_at")?, "last_firing_at")?,
        message: message_ref(
            row.opt_text("message_channel")?,
            row.opt_text("message_ts")?,
        ),
        iam_health: row.opt_text("iam_health")?,
        ended_at: opt_time(row, "ended_at")?,
        pumped_by: row.opt_text("pumped_by")?,
        pumped_at: opt_time(row, "pumped_at")?,
    })
}

pub(super) fn storm_location_from_row(row: &impl Cols) -> Result<StormLocation, StoreError> {
    Ok(StormLocation {
        key: key_from_row(row)?,
        fired_at: time_from_ms(row.int("fired_at")?, "fired_at")?,
        alert: MessageRef {
            channel: row.text("alert_channel")?,
            ts: row.text("alert_ts")?,
        },
        datacenter: row.opt_text("datacenter")?,
        region: row.opt_text("region")?,
        sample: row.int("sample")? != 0,
        checked: row.int("checked")? != 0,
        verdict: row.opt_text("verdict")?,
        reason: row.opt_text("reason")?,
        reason_text: row.opt_text("reason_text")?,
    })
}
