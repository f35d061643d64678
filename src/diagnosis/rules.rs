//! The runbook's rules (SPEC §1 steps 3-5, §4): from the two artifacts and the tugboat's region
//! to a [`Diagnosis`], and how an optional IAM probe refines it ([`apply_iam`]).
//!
//! Pure: no I/O, no clock except the `checked_at` stamp of [`Report::offline`]. The IAM API key
//! found in the artifact is carried in a [`Secret`] for the probe; everything a human sees
//! (summary, evidence) names it at most by its fingerprint.

use super::artifacts::{
    find_api_key, find_region, ApiKeyFinding, KeyTable, MissingRegion, RegionFinding,
};
use super::verdict::{next_actions, IamOutcome, Report, Step, StepId, StepStatus, VerdictCode};
use crate::domain::Region;
use crate::secret::Secret;
use chrono::Utc;

/// How many characters of an IAM probe detail are kept.
const MAX_DETAIL_CHARS: usize = 200;

/// What the runbook's rules concluded from the artifacts (and, after [`apply_iam`], from IAM).
///
/// `Debug` is safe to log: the key is a [`Secret`], whose `Debug` redacts.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    /// The verdict: `config_missing`, `region_mismatch`, `api_key_invalid`, or after the IAM
    /// probe `api_key_accepted` / `iam_unreachable`.
    pub verdict: VerdictCode,
    /// True when IAM's answer is what the verdict rests on (rejected or accepted the key).
    pub confirmed: bool,
    /// One sentence saying what was found. Never a secret.
    pub summary: String,
    /// The runbook steps: [`StepId::ApiKey`], [`StepId::Region`], then [`StepId::IamProbe`] if probed.
    pub steps: Vec<Step>,
    /// The region the ConfigMap holds (normalised), when it had one.
    pub region_found: Option<String>,
    /// The IAM API key, when one was found: for the IAM probe only.
    pub key: Option<Secret>,
    /// The key's fingerprint (`…` + last 4), when one was found.
    pub key_fingerprint: Option<String>,
}

/// Applies the runbook to the two artifacts: `api_key_log` is `connector_getConnectorAPIKey.log`,
/// `configmap_log` is `connector_sl_configMap.log`, `expected` the region of the tugboat's
/// datacenter. Both steps are always evaluated and reported, whatever the verdict.
pub fn diagnose(api_key_log: &[u8], configmap_log: &[u8], expected: &Region) -> Diagnosis {
    let key_finding = find_api_key(api_key_log);
    let region_finding = find_region(configmap_log);

    let (key_step, key, key_problem) = match key_finding {
        ApiKeyFinding::Present {
            key,
            table,
            toml_bytes,
        } => {
            let fp = key.fingerprint();
            let mut evidence = vec![
                format!("slclient.toml decoded ({toml_bytes} bytes)"),
                format!("{} iam_api_key present ({fp})", table.label()),
            ];
            if table == KeyTable::TopLevel {
                evidence.push(
                    "It is at the top level, not in [Bluemix] where the storage secret usually keeps it.".into(),
                );
            }
            (
                Step::new(StepId::ApiKey, StepStatus::Ok, evidence),
                Some(key),
                None,
            )
        }
        ApiKeyFinding::Missing(why) => {
            let mut evidence = Vec::new();
            if let Some(bytes) = why.toml_bytes() {
                evidence.push(format!("slclient.toml decoded ({bytes} bytes)"));
            }
            let explained = why.explain();
            evidence.push(explained.clone());
            (
                Step::new(StepId::ApiKey, StepStatus::Failed, evidence),
                None,
                Some(explained),
            )
        }
    };

    let expected_str = expected.as_str();
    let (region_step, region_found, region_problem) = match region_finding {
        RegionFinding::Found(found) if found == expected_str => (
            Step::new(
                StepId::Region,
                StepStatus::Ok,
                vec![format!(
                    "ConfigMap region `{found}`, tugboat's region `{expected_str}`: they match"
                )],
            ),
            Some(found),
            None,
        ),
        RegionFinding::Found(found) => {
            let problem = format!(
                "The satellite-link ConfigMap says region `{found}` but the tugboat is in `{expected_str}`."
            );
            (
                Step::new(
                    StepId::Region,
                    StepStatus::Failed,
                    vec![format!(
                        "ConfigMap region `{found}`, tugboat's region `{expected_str}`"
                    )],
                ),
                Some(found),
                Some(problem),
            )
        }
        RegionFinding::Absent(why) => {
            let problem = absent_region_sentence(&why, expected_str);
            (
                Step::new(
                    StepId::Region,
                    StepStatus::Failed,
                    vec![why.explain(), format!("tugboat's region `{expected_str}`")],
                ),
                None,
                Some(problem),
            )
        }
    };

    let key_fingerprint = key.as_ref().map(Secret::fingerprint);
    let (verdict, summary) = match (&key_problem, &region_problem) {
        (Some(k), Some(r)) => (
            VerdictCode::ConfigMissing,
            format!("slclient.toml has no usable IAM API key: {k} Also: {r}"),
        ),
        (Some(k), None) => (
            VerdictCode::ConfigMissing,
            format!("slclient.toml has no usable IAM API key: {k}"),
        ),
        (None, Some(r)) => (VerdictCode::RegionMismatch, r.clone()),
        (None, None) => (
            VerdictCode::ApiKeyInvalid,
            format!(
                "The IAM API key is present ({}) and the region is right (`{expected_str}`), so the key itself is likely bad.",
                key_fingerprint.as_deref().unwrap_or("…")
            ),
        ),
    };

    Diagnosis {
        verdict,
        confirmed: false,
        summary,
        steps: vec![key_step, region_step],
        region_found,
        key,
        key_fingerprint,
    }
}

fn absent_region_sentence(why: &MissingRegion, expected: &str) -> String {
    format!(
        "The satellite-link ConfigMap gives no region (the tugboat is in `{expected}`): {}",
        why.explain()
    )
}

/// Refines an `api_key_invalid` diagnosis with what IAM said about the key: rejected → confirmed
/// `api_key_invalid`; accepted → `api_key_accepted`; unreachable → `iam_unreachable`. Adds a
/// [`StepId::IamProbe`] step. Any other verdict is returned unchanged.
pub fn apply_iam(d: Diagnosis, outcome: &IamOutcome) -> Diagnosis {
    if d.verdict != VerdictCode::ApiKeyInvalid {
        return d;
    }
    let fp = d.key_fingerprint.clone().unwrap_or_else(|| "…".into());
    let scrub = |detail: &str| scrub_detail(detail, d.key.as_ref());
    let (verdict, confirmed, summary, step) = match outcome {
        IamOutcome::Rejected { detail } => {
            let detail = scrub(detail);
            (
                VerdictCode::ApiKeyInvalid,
                true,
                format!("IAM rejected the IAM API key ({fp}): {detail}. The key is bad."),
                Step::new(
                    StepId::IamProbe,
                    StepStatus::Failed,
                    vec![format!("IAM refused the key ({fp}): {detail}")],
                ),
            )
        }
        IamOutcome::Accepted => (
            VerdictCode::ApiKeyAccepted,
            true,
            format!(
                "IAM accepts the IAM API key ({fp}) and the region is right: this is not a key problem."
            ),
            Step::new(
                StepId::IamProbe,
                StepStatus::Ok,
                vec![format!("IAM issued a token for the key ({fp})")],
            ),
        ),
        IamOutcome::Unreachable { detail } => {
            let detail = scrub(detail);
            (
                VerdictCode::IamUnreachable,
                false,
                format!(
                    "The key ({fp}) is present and the region is right, but IAM could not be asked whether it accepts the key: {detail}."
                ),
                Step::new(
                    StepId::IamProbe,
                    StepStatus::Failed,
                    vec![format!("IAM did not answer: {detail}")],
                ),
            )
        }
    };
    let mut steps = d.steps;
    steps.push(step);
    Diagnosis {
        verdict,
        confirmed,
        summary,
        steps,
        ..d
    }
}

/// An IAM detail fit to show ([`crate::secret::scrub`]: the key replaced by its fingerprint
/// should an IAM client ever have let it in), without a final full stop.
fn scrub_detail(detail: &str, key: Option<&Secret>) -> String {
    let scrubbed = crate::secret::scrub(detail, key, MAX_DETAIL_CHARS);
    let out = scrubbed.trim_end_matches('.');
    if out.is_empty() {
        "no detail".into()
    } else {
        out.to_string()
    }
}

impl Report {
    /// The report of an offline diagnosis (`linkbot diagnose --dir … --region …`): no location,
    /// environment, tugboat, carrier or build; the expected region is the one given.
    pub fn offline(d: &Diagnosis, expected: &Region) -> Report {
        Report {
            verdict: d.verdict,
            confirmed: d.confirmed,
            summary: d.summary.clone(),
            location: None,
            environment: None,
            tugboat: None,
            carrier: None,
            region_expected: Some(expected.clone()),
            region_found: d.region_found.clone(),
            build_url: None,
            console_tail: None,
            key_fingerprint: d.key_fingerprint.clone(),
            steps: d.steps.clone(),
            next_actions: next_actions(d.verdict, Some(expected)),
            checked_at: Utc::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_KEY: &str = "kq2V8hN0Zt1mWcXb3fLp9RyA6uJdE4sG7oHiQ5vTnB2w";

    fn invalid() -> Diagnosis {
        Diagnosis {
            verdict: VerdictCode::ApiKeyInvalid,
            confirmed: false,
            summary: "likely bad".into(),
            steps: vec![],
            region_found: Some("us-east".into()),
            key: Some(Secret::new(SECRET_KEY)),
            key_fingerprint: Some(Secret::new(SECRET_KEY).fingerprint()),
        }
    }

    #[test]
    fn iam_outcomes_refine_only_a_likely_bad_key() {
        let rejected = apply_iam(
            invalid(),
            &IamOutcome::Rejected {
                detail: "BXNIM0415E".into(),
            },
        );
        assert_eq!(rejected.verdict, VerdictCode::ApiKeyInvalid);
        assert!(rejected.confirmed);
        assert_eq!(rejected.steps.last().map(|s| s.id), Some(StepId::IamProbe));

        let accepted = apply_iam(invalid(), &IamOutcome::Accepted);
        assert_eq!(accepted.verdict, VerdictCode::ApiKeyAccepted);

        let down = apply_iam(
            invalid(),
            &IamOutcome::Unreachable {
                detail: "HTTP 503".into(),
            },
        );
        assert_eq!(down.verdict, VerdictCode::IamUnreachable);
        assert!(!down.confirmed);
        assert!(down.summary.contains("HTTP 503"));

        let mut other = invalid();
        other.verdict = VerdictCode::RegionMismatch;
        let same = apply_iam(other.clone(), &IamOutcome::Accepted);
        assert_eq!(same, other);
    }

    #[test]
    fn a_key_leaked_into_an_iam_detail_is_replaced_by_its_fingerprint() {
        let d = apply_iam(
            invalid(),
            &IamOutcome::Rejected {
                detail: format!("bad apikey {SECRET_KEY}\u{1b}[0m"),
            },
        );
        let all = format!("{d:?}");
        assert!(!all.contains(SECRET_KEY), "{all}");
        assert!(d.summary.contains("…nB2w"), "{}", d.summary);
    }
}
