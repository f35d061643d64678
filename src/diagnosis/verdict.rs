//! The verdict and its evidence: the value every renderer (text, JSON, Slack) turns into output.
//!
//! Pure data and the rules that depend only on the verdict (its owner team, its next actions).
//! No I/O, no rendering, and never a secret: a key appears here only as a fingerprint.

use crate::domain::{Carrier, Environment, LocationId, Region, Tugboat};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt;

/// Defines [`VerdictCode`] and [`VerdictCode::ALL`] from one list, so a new variant can never be
/// missing from `ALL` (which result reuse and the config's `owns` validation walk).
macro_rules! verdict_codes {
    ($($(#[doc = $doc:literal])* $variant:ident => $code:literal,)*) => {
        /// The outcome of a check (SPEC §4). The serialized form is the contract's `verdict` code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum VerdictCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl VerdictCode {
            /// Every code, in the order of SPEC §4.
            pub const ALL: [VerdictCode; [$(VerdictCode::$variant),*].len()] =
                [$(VerdictCode::$variant),*];

            /// The snake_case code of SPEC §4.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(VerdictCode::$variant => $code,)*
                }
            }
        }
    };
}

verdict_codes! {
    /// No `slclient.toml`, undecodable, or no non-empty `iam_api_key`.
    ConfigMissing => "config_missing",
    /// ConfigMap `region` absent or different from the tugboat's region.
    RegionMismatch => "region_mismatch",
    /// Key present, region right: the key is bad (likely, or confirmed by IAM).
    ApiKeyInvalid => "api_key_invalid",
    /// The IAM probe accepted the key: not a key problem.
    ApiKeyAccepted => "api_key_accepted",
    /// The IAM probe got a 5xx or no answer.
    IamUnreachable => "iam_unreachable",
    /// The directory does not know the location.
    UnknownLocation => "unknown_location",
    /// Directory error or unparseable answer.
    LookupFailed => "lookup_failed",
    /// Jenkins refused, the build failed/aborted/was cancelled, or timed out.
    JobFailed => "job_failed",
    /// A needed artifact is not in the build.
    ArtifactMissing => "artifact_missing",
}

impl VerdictCode {
    /// Parses a code as printed by [`VerdictCode::as_str`].
    pub fn parse(s: &str) -> Option<VerdictCode> {
        VerdictCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// A short human title for headers.
    pub fn title(&self) -> &'static str {
        match self {
            VerdictCode::ConfigMissing => "Missing config: no IAM API key in slclient.toml",
            VerdictCode::RegionMismatch => "Improper region config",
            VerdictCode::ApiKeyInvalid => "Bad IAM API key",
            VerdictCode::ApiKeyAccepted => "IAM accepts the key: not a key problem",
            VerdictCode::IamUnreachable => "IAM unreachable: could not verify the key",
            VerdictCode::UnknownLocation => "Unknown location",
            VerdictCode::LookupFailed => "Directory lookup failed",
            VerdictCode::JobFailed => "Jenkins job failed",
            VerdictCode::ArtifactMissing => "Artifact missing from the build",
        }
    }

    /// Whether the runbook reached a diagnosis (as opposed to a failure to run it).
    pub fn is_diagnosis(&self) -> bool {
        match self {
            VerdictCode::ConfigMissing
            | VerdictCode::RegionMismatch
            | VerdictCode::ApiKeyInvalid
            | VerdictCode::ApiKeyAccepted
            | VerdictCode::IamUnreachable => true,
            VerdictCode::UnknownLocation
            | VerdictCode::LookupFailed
            | VerdictCode::JobFailed
            | VerdictCode::ArtifactMissing => false,
        }
    }
}

impl fmt::Display for VerdictCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one runbook step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// The step passed.
    Ok,
    /// The step found the problem (or could not be done).
    Failed,
    /// The step was not reached.
    Skipped,
    /// The step passed with something worth a look.
    Warning,
}

impl StepStatus {
    /// The emoji shown before the step in Slack and text output.
    pub fn emoji(&self) -> &'static str {
        match self {
            StepStatus::Ok => "✅",
            StepStatus::Failed => "❌",
            StepStatus::Skipped => "⏭️",
            StepStatus::Warning => "⚠️",
        }
    }
}

/// Which runbook step a [`Step`] reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepId {
    /// 1: resolve the tugboat in the cluster directory.
    Lookup,
    /// 2a: choose the first available carrier in the tugboat's datacenter.
    Carrier,
    /// 2b: run the Jenkins job.
    Job,
    /// 3: `slclient.toml` holds a non-empty `iam_api_key`.
    ApiKey,
    /// 4: the ConfigMap's `region` is the tugboat's region.
    Region,
    /// 5 (optional): ask IAM whether it accepts the key.
    IamProbe,
}

impl StepId {
    /// The step's title as the runbook names it.
    pub fn title(&self) -> &'static str {
        match self {
            StepId::Lookup => "Resolve the tugboat (cluster directory)",
            StepId::Carrier => "Choose the first available carrier",
            StepId::Job => "Run armada-ha-master-get-info",
            StepId::ApiKey => "IAM API key in slclient.toml",
            StepId::Region => "Region in the satellite-link ConfigMap",
            StepId::IamProbe => "IAM accepts the key",
        }
    }
}

/// One runbook step with its status and the evidence a human would check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Step {
    /// Which step.
    pub id: StepId,
    /// The step's title.
    pub title: String,
    /// How it went.
    pub status: StepStatus,
    /// What was seen, one fact a line. Never a secret.
    pub evidence: Vec<String>,
}

impl Step {
    /// A step with its runbook title.
    pub fn new(id: StepId, status: StepStatus, evidence: Vec<String>) -> Self {
        Step {
            id,
            title: id.title().to_string(),
            status,
            evidence,
        }
    }
}

/// The full result of one check: what every renderer shows. Serializes to the JSON of SPEC §4
/// (and back, so the store can keep it for reuse and escalation).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Report {
    /// The verdict code.
    pub verdict: VerdictCode,
    /// True when IAM itself confirmed the verdict.
    pub confirmed: bool,
    /// One sentence saying what was found.
    pub summary: String,
    /// The location checked (absent for an offline `diagnose`).
    pub location: Option<LocationId>,
    /// The environment checked (absent for an offline `diagnose`).
    pub environment: Option<Environment>,
    /// The tugboat, once resolved.
    pub tugboat: Option<Tugboat>,
    /// The carrier passed to Jenkins, once chosen.
    pub carrier: Option<Carrier>,
    /// The tugboat's region.
    pub region_expected: Option<Region>,
    /// The region the ConfigMap holds (raw, as found; absent when it had none).
    pub region_found: Option<String>,
    /// The Jenkins build, once known.
    pub build_url: Option<String>,
    /// The last lines of the build's console, for failed builds.
    pub console_tail: Option<String>,
    /// A fingerprint of the IAM API key (`…` + last 4), never the key.
    pub key_fingerprint: Option<String>,
    /// Each runbook step with its evidence.
    pub steps: Vec<Step>,
    /// What to do next, with the region filled in.
    pub next_actions: Vec<String>,
    /// When the check finished.
    pub checked_at: DateTime<Utc>,
}

/// What to do next for a verdict (SPEC §4), with the region filled into the `ibmcloud` commands.
pub fn next_actions(verdict: VerdictCode, region: Option<&Region>) -> Vec<String> {
    let region = region.map(|r| r.as_str()).unwrap_or("<REGION>");
    let v: Vec<String> = match verdict {
        VerdictCode::ConfigMissing => vec![
            "The ConfigMap/secret comes from `cluster-updater` in the location control plane: check that it is healthy on the tugboat.".into(),
            "If the cause is not clear, escalate to the Razee team.".into(),
        ],
        VerdictCode::RegionMismatch => vec![
            "The ConfigMap is written by `cluster-updater` and `satellite-alert-autoresolver-server`: check that both are working.".into(),
            "`cluster-updater` problem: escalate to the Razee team. `satellite-alert-autoresolver-server` problem: escalate to armada-bootstrap.".into(),
        ],
        VerdictCode::ApiKeyInvalid => vec![
            "The customer (possibly an IBM service team) rotates the location's IAM API key:".into(),
            format!("`ibmcloud target -r {region}`"),
            "`ibmcloud target -g <RESOURCE_GROUP>`".into(),
            format!("`ibmcloud ks api-key reset --region {region}`"),
            "Then issue a master refresh so the ConfigMap gets the new key.".into(),
        ],
        VerdictCode::ApiKeyAccepted => vec![
            "IAM accepts the key, so the key is not the problem: escalate to the Satellite Link squad.".into(),
        ],
        VerdictCode::IamUnreachable => vec![
            "IAM did not answer: retry the check later and look at the IBM Cloud IAM status.".into(),
        ],
        VerdictCode::UnknownLocation => vec![
            "Check the location id and the environment (prod or stage).".into(),
        ],
        VerdictCode::LookupFailed => vec![
            "Retry the check; if the directory keeps failing, escalate.".into(),
        ],
        VerdictCode::JobFailed => vec![
            "Open the build and read the console tail; retry the check.".into(),
        ],
        VerdictCode::ArtifactMissing => vec![
            "Open the build: the job did not produce the artifact the runbook reads.".into(),
        ],
    };
    v
}

/// What IBM Cloud IAM said when asked to turn the key into a token (the optional probe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IamOutcome {
    /// IAM refused the key (HTTP 400/401, e.g. `BXNIM0415E`): the key is bad, confirmed.
    Rejected {
        /// IAM's error code and message, never the key.
        detail: String,
    },
    /// IAM issued a token: the key is good.
    Accepted,
    /// IAM answered 5xx, or did not answer in time.
    Unreachable {
        /// What went wrong.
        detail: String,
    },
}

/// The runbook this bot automates.
pub const RUNBOOK_URL: &str = "https://github.com/ibm-argonauts/runbooks/satellite-link/satellite-link-connector-deploy-cannot-get-iam-token-from-iam-server";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_match_the_spec() {
        for code in VerdictCode::ALL {
            assert_eq!(VerdictCode::parse(code.as_str()), Some(code));
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
        }
    }

    #[test]
    fn all_holds_every_variant_once_in_declaration_order() {
        // Exhaustive, no `_`: a new variant does not compile until it gets a position here,
        // and the assertions below fail until `ALL` holds it at that position.
        fn position(code: VerdictCode) -> usize {
            match code {
                VerdictCode::ConfigMissing => 0,
                VerdictCode::RegionMismatch => 1,
                VerdictCode::ApiKeyInvalid => 2,
                VerdictCode::ApiKeyAccepted => 3,
                VerdictCode::IamUnreachable => 4,
                VerdictCode::UnknownLocation => 5,
                VerdictCode::LookupFailed => 6,
                VerdictCode::JobFailed => 7,
                VerdictCode::ArtifactMissing => 8,
            }
        }
        const VARIANTS: usize = 9;
        assert_eq!(VerdictCode::ALL.len(), VARIANTS);
        for (i, code) in VerdictCode::ALL.into_iter().enumerate() {
            assert_eq!(position(code), i, "{code} is out of place in ALL");
        }
    }

    #[test]
    fn bad_key_actions_carry_the_region() {
        let r = Region::parse("us-east").unwrap();
        let actions = next_actions(VerdictCode::ApiKeyInvalid, Some(&r)).join("\n");
        assert!(actions.contains("ibmcloud target -r us-east"));
        assert!(actions.contains("ibmcloud ks api-key reset --region us-east"));
    }
}
