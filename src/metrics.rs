//! Prometheus metrics: one registry, shared by every client and the bot, served at `/metrics`.
//!
//! Labels are low-cardinality by construction (verdict codes, Slack method names, error kinds):
//! never a location id, a user, or anything secret.

use crate::domain::Environment;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// `linkbot_storm_checks_total{kind}`: a check of the storm's sample.
pub const STORM_SAMPLE: &str = "sample";
/// `linkbot_storm_checks_total{kind}`: a check of the rest, within the build budget.
pub const STORM_BUDGET: &str = "budget";

fn env_label(environment: Environment) -> EnvironmentLabel {
    EnvironmentLabel {
        environment: environment.as_str().to_string(),
    }
}

/// A verdict label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabel {
    /// The verdict code.
    pub verdict: String,
}

/// A call to an outside system: which method, and the outcome (`ok` or an error kind).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabel {
    /// The API method or endpoint kind (`chat.update`, `queue`, `build`, …).
    pub method: String,
    /// `ok`, or the kind of error (`http_5xx`, `timeout`, `ratelimited`, …).
    pub outcome: String,
}

/// A request Slack refused: which method, and Slack's error code (`invalid_blocks`, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectedLabel {
    /// The Web API method.
    pub method: String,
    /// Slack's error code, reduced to `[a-z0-9_]` and 40 characters (codes are a fixed set).
    pub error: String,
}

/// An environment label (`prod`, `stage`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EnvironmentLabel {
    /// The environment.
    pub environment: String,
}

/// Which storm decision started a build: `sample` (the storm's sample) or `budget` (the rest,
/// within `max_builds_per_minute`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StormCheckLabel {
    /// `sample` or `budget`.
    pub kind: String,
}

/// Labels of the incident histograms: environment and verdict code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IncidentLabel {
    pub environment: String,
    pub verdict: String,
}

/// A histogram family over incidents (seconds from 1 s to about 18 h), by environment and
/// verdict, exposed only once it holds a sample.
#[derive(Clone, Debug)]
pub struct Incidents {
    name: &'static str,
    help: &'static str,
    family: Family<IncidentLabel, Histogram, fn() -> Histogram>,
    observed: Arc<AtomicBool>,
}

fn incident_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 17))
}

impl Incidents {
    fn new(name: &'static str, help: &'static str) -> Self {
        Incidents {
            name,
            help,
            family: Family::new_with_constructor(incident_histogram),
            observed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Records `seconds` for one incident of `environment` with `verdict`.
    pub fn observe(&self, environment: &str, verdict: &str, seconds: f64) {
        self.family
            .get_or_create(&IncidentLabel {
                environment: environment.to_string(),
                verdict: verdict.to_string(),
            })
            .observe(seconds);
        self.observed.store(true, Ordering::Release);
    }
}

impl Collector for Incidents {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if !self.observed.load(Ordering::Acquire) {
            return Ok(());
        }
        let metric =
            encoder.encode_descriptor(self.name, self.help, None, self.family.metric_type())?;
        self.family.encode(metric)
    }
}

/// Every metric linkbot exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Finished checks by verdict.
    pub checks: Family<VerdictLabel, Counter>,
    /// How long checks took, seconds.
    pub check_duration: Histogram,
    /// Checks running now.
    pub in_flight: Gauge,
    /// Jenkins calls by method and outcome.
    pub jenkins_calls: Family<CallLabel, Counter>,
    /// Directory calls by method and outcome.
    pub directory_calls: Family<CallLabel, Counter>,
    /// Slack Web API calls by method and outcome.
    pub slack_calls: Family<CallLabel, Counter>,
    /// Time from an envelope's arrival to its ack being written, seconds.
    pub ack_latency: Histogram,
    /// Socket Mode reconnects.
    pub reconnects: Counter,
    /// Escalations by target kind and outcome.
    pub escalations: Family<CallLabel, Counter>,
    /// Requests Slack refused (`ok: false`), by method and error code:
    /// `linkbot_slack_rejected_total`.
    pub slack_rejected: Family<RejectedLabel, Counter>,
    /// Messages that could not be shown in their thread at all (Block Kit, plain-text edit
    /// and plain-text post all failed): `linkbot_slack_undelivered_total`.
    pub undelivered: Counter,
    /// Alert fired → verdict shown, per incident.
    pub time_to_diagnosis: Incidents,
    /// Alert fired → resolved, per incident.
    pub time_to_resolution: Incidents,
    /// Storms declared, by environment (counted by the one replica that declared each):
    /// `linkbot_storms_declared_total`.
    pub storms_declared: Family<EnvironmentLabel, Counter>,
    /// Active storms by environment, as the store has them (every replica reports the same
    /// value; aggregate with `max`): `linkbot_storm_active`.
    pub storm_active: Family<EnvironmentLabel, Gauge>,
    /// Alerts answered with a line pointing at their storm instead of a build:
    /// `linkbot_storm_alerts_linked_total`.
    pub storm_alerts_linked: Counter,
    /// Checks storm mode started, by `kind` (`sample`, `budget`): `linkbot_storm_checks_total`.
    pub storm_checks: Family<StormCheckLabel, Counter>,
    /// Storms ended after a quiet window, by environment (counted once, by the replica that
    /// ended each): `linkbot_storm_ended_total`.
    pub storms_ended: Family<EnvironmentLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("linkbot");
        let checks = Family::<VerdictLabel, Counter>::default();
        registry.register("checks", "Finished checks by verdict", checks.clone());
        let check_duration = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "check_duration_seconds",
            "Check duration",
            check_duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register("checks_in_flight", "Checks running now", in_flight.clone());
        let jenkins_calls = Family::<CallLabel, Counter>::default();
        registry.register("jenkins_calls", "Jenkins API calls", jenkins_calls.clone());
        let directory_calls = Family::<CallLabel, Counter>::default();
        registry.register(
            "directory_calls",
            "Cluster directory calls",
            directory_calls.clone(),
        );
        let slack_calls = Family::<CallLabel, Counter>::default();
        registry.register("slack_calls", "Slack Web API calls", slack_calls.clone());
        let ack_latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "envelope_ack_latency_seconds",
            "Socket Mode envelope ack latency",
            ack_latency.clone(),
        );
        let reconnects = Counter::default();
        registry.register(
            "socket_reconnects",
            "Socket Mode reconnects",
            reconnects.clone(),
        );
        let storms_declared = Family::<EnvironmentLabel, Counter>::default();
        registry.register(
            "storms_declared",
            "Alert storms declared, by environment",
            storms_declared.clone(),
        );
        let storm_active = Family::<EnvironmentLabel, Gauge>::default();
        registry.register(
            "storm_active",
            "Alert storms active now, by environment (read from the store: the same on every replica)",
            storm_active.clone(),
        );
        let storm_alerts_linked = Counter::default();
        registry.register(
            "storm_alerts_linked",
            "Alerts answered with a line pointing at their storm instead of a build",
            storm_alerts_linked.clone(),
        );
        let storm_checks = Family::<StormCheckLabel, Counter>::default();
        registry.register(
            "storm_checks",
            "Checks started by storm mode: its sample, or the rest within the build budget",
            storm_checks.clone(),
        );
        let storms_ended = Family::<EnvironmentLabel, Counter>::default();
        registry.register(
            "storm_ended",
            "Alert storms ended after a quiet window, by environment",
            storms_ended.clone(),
        );
        // Every environment and kind starts at 0, so `increase()` sees the first storm (and
        // the families are never empty: see `time_to_diagnosis` below).
        for env in Environment::ALL {
            let label = EnvironmentLabel {
                environment: env.as_str().to_string(),
            };
            let _zero = storms_declared.get_or_create(&label);
            let _zero = storm_active.get_or_create(&label);
            let _zero = storms_ended.get_or_create(&label);
        }
        for kind in [STORM_SAMPLE, STORM_BUDGET] {
            let _zero = storm_checks.get_or_create(&StormCheckLabel { kind: kind.into() });
        }
        let slack_rejected = Family::<RejectedLabel, Counter>::default();
        registry.register(
            "slack_rejected",
            "Slack Web API requests Slack refused, by method and error code",
            slack_rejected.clone(),
        );
        // The refusals a message can meet start at 0, so an alert on their increase sees them
        // from the first one on (and the family is never empty).
        for method in ["chat.postMessage", "chat.update"] {
            for error in ["invalid_blocks", "msg_too_long"] {
                let _zero = slack_rejected.get_or_create(&RejectedLabel {
                    method: method.into(),
                    error: error.into(),
                });
            }
        }
        let undelivered = Counter::default();
        registry.register(
            "slack_undelivered",
            "Messages that could not be shown in their Slack thread at all",
            undelivered.clone(),
        );
        let escalations = Family::<CallLabel, Counter>::default();
        registry.register(
            "escalations",
            "Escalations by target kind",
            escalations.clone(),
        );
        // Shown once an incident was measured: an empty family is valid OpenMetrics, but
        // parsers such as openmetrics-parser 0.5 mis-read one that is followed by another.
        let time_to_diagnosis = Incidents::new(
            "time_to_diagnosis_seconds",
            "Incidents: alert fired to verdict shown",
        );
        registry.register_collector(Box::new(time_to_diagnosis.clone()));
        let time_to_resolution = Incidents::new(
            "time_to_resolution_seconds",
            "Incidents: alert fired to resolved",
        );
        registry.register_collector(Box::new(time_to_resolution.clone()));
        Metrics {
            storms_declared,
            storm_active,
            storm_alerts_linked,
            storm_checks,
            storms_ended,
            time_to_diagnosis,
            time_to_resolution,
            registry: Arc::new(registry),
            checks,
            check_duration,
            in_flight,
            jenkins_calls,
            directory_calls,
            slack_calls,
            ack_latency,
            reconnects,
            escalations,
            slack_rejected,
            undelivered,
        }
    }

    /// Counts one request Slack refused with `code`.
    pub fn rejected(&self, method: &str, code: &str) {
        let error: String = code
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect::<String>()
            .to_ascii_lowercase();
        self.slack_rejected
            .get_or_create(&RejectedLabel {
                method: method.to_string(),
                error,
            })
            .inc();
    }

    /// Counts one storm declared in `environment`.
    pub fn storm_declared(&self, environment: Environment) {
        self.storms_declared
            .get_or_create(&env_label(environment))
            .inc();
    }

    /// Counts one storm ended in `environment`.
    pub fn storm_ended(&self, environment: Environment) {
        self.storms_ended
            .get_or_create(&env_label(environment))
            .inc();
    }

    /// Sets how many storms are active in `environment`.
    pub fn set_storms_active(&self, environment: Environment, active: i64) {
        self.storm_active
            .get_or_create(&env_label(environment))
            .set(active);
    }

    /// Counts `n` checks storm mode started, of `kind` ([`STORM_SAMPLE`], [`STORM_BUDGET`]).
    pub fn storm_checks_started(&self, kind: &str, n: u64) {
        self.storm_checks
            .get_or_create(&StormCheckLabel {
                kind: kind.to_string(),
            })
            .inc_by(n);
    }

    /// Counts one call in `family`.
    pub fn call(family: &Family<CallLabel, Counter>, method: &str, outcome: &str) {
        family
            .get_or_create(&CallLabel {
                method: method.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
