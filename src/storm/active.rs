//! `linkbot_storm_active`: how many storms are active, per environment, as the store has them.
//!
//! A storm may be declared by one replica and ended by another, so a gauge each replica moved
//! on its own decisions would be wrong on both. The store is the one truth: every replica sets
//! the gauge from it on a timer (and at once when it declares or ends a storm itself), so each
//! reports the same value and a dashboard aggregates with `max`.
//!
//! This module must NOT decide anything about a storm (only read whether one is active) or
//! keep a count of its own.

use super::Storms;
use crate::domain::Environment;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the gauge is read from the store.
pub const ACTIVE_EVERY: Duration = Duration::from_secs(5);

impl Storms {
    /// Sets `linkbot_storm_active` from the store, for every environment. An environment the
    /// store cannot answer for keeps its last value (logged).
    pub async fn observe_active(&self) {
        for environment in Environment::ALL {
            match self.store.active_storm(environment).await {
                Ok(storm) => self
                    .metrics
                    .set_storms_active(environment, i64::from(storm.is_some())),
                Err(e) => {
                    tracing::warn!(error = %e, %environment, "cannot read the active storm for the gauge")
                }
            }
        }
    }

    /// Keeps `linkbot_storm_active` true to the store (every [`ACTIVE_EVERY`]), in a storm
    /// task of its own (so [`Storms::stop`] ends it too), until `shutdown`.
    pub fn track_active(&self, shutdown: CancellationToken) {
        if !self.settings.enabled {
            return;
        }
        let this = self.clone();
        self.spawn(async move {
            loop {
                this.observe_active().await;
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(ACTIVE_EVERY) => {}
                }
            }
        });
    }
}
