//! The cluster directory: the service behind `@xo cluster <location-id>` (one per environment).
//!
//! Resolves a location to its tugboat (`ActualDatacenterCluster`) and lists the carriers of a
//! datacenter. Accepts the JSON answer and XO's text form (`Field: value` lines). This module
//! only talks HTTP and parses; it does not decide verdicts (the check does).

use crate::domain::{BaseUrl, Carrier, Datacenter, LocationId, Tugboat};
use crate::metrics::Metrics;
use crate::net::{Net, NetError, Timeouts};
use crate::secret::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use url::Url;

/// The largest directory answer read; anything larger is refused as unparseable.
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// The default bounds on one directory request: 20 s, 5 s to connect (`[directory]
/// request_timeout_secs` / `connect_timeout_secs`).
pub const TIMEOUTS: Timeouts = Timeouts::new(Duration::from_secs(20), Duration::from_secs(5));

/// What went wrong asking the directory.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The directory answered 404: it does not know the location.
    #[error("the directory does not know location {0}")]
    UnknownLocation(LocationId),
    /// The directory answered with an unexpected HTTP status.
    #[error("the directory answered HTTP {status} to {what}")]
    Status {
        /// The status code.
        status: u16,
        /// Which request.
        what: &'static str,
    },
    /// The request did not complete (connection refused, timeout, …).
    #[error("the directory could not be reached for {what}")]
    Transport {
        /// Which request.
        what: &'static str,
        /// The cause.
        #[source]
        source: reqwest::Error,
        /// The certificate or proxy sentence for it, when that is the cause.
        network: Option<String>,
    },
    /// The answer could not be understood.
    #[error("the directory's answer to {what} could not be understood: {detail}")]
    Unparseable {
        /// Which request.
        what: &'static str,
        /// What was wrong with it.
        detail: String,
    },
}

impl DirectoryError {
    /// One sentence for a person, without transport details.
    pub fn user_message(&self) -> String {
        match self {
            DirectoryError::UnknownLocation(l) => {
                format!("The cluster directory does not know location `{l}`.")
            }
            DirectoryError::Status { status, what } => {
                format!("The cluster directory answered HTTP {status} to the {what} request.")
            }
            DirectoryError::Transport { what, network, .. } => match network {
                Some(problem) => format!(
                    "The cluster directory could not be reached for the {what} request: {problem}."
                ),
                None => {
                    format!("The cluster directory could not be reached for the {what} request.")
                }
            },
            DirectoryError::Unparseable { what, detail } => {
                format!("The cluster directory's {what} answer could not be understood: {detail}.")
            }
        }
    }
}

/// What the directory says about a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// `ActualDatacenterCluster`, parsed.
    pub tugboat: Tugboat,
    /// Every `Field: value` the directory returned, for evidence (`Name`, `State`, …).
    pub fields: BTreeMap<String, String>,
}

/// One carrier of a datacenter as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierEntry {
    /// The carrier's name.
    pub name: Carrier,
    /// Its status as given (`available`, `maintenance`, …).
    pub status: String,
}

impl CarrierEntry {
    /// "Available" means `available`, `normal` or `deployed`, case-insensitively (SPEC §3).
    pub fn is_available(&self) -> bool {
        matches!(
            self.status.trim().to_ascii_lowercase().as_str(),
            "available" | "normal" | "deployed"
        )
    }
}

/// A client for one environment's cluster directory.
#[derive(Clone)]
pub struct DirectoryClient {
    http: reqwest::Client,
    base: Url,
    token: Option<Secret>,
    metrics: Metrics,
    net: Net,
}

impl DirectoryClient {
    /// A client for the directory at `base` (`{base}cluster/{id}`, `{base}carriers/{dc}`).
    /// Trust and proxy come from `net`.
    pub fn new(
        base: BaseUrl,
        token: Option<Secret>,
        metrics: Metrics,
        net: &Net,
    ) -> Result<Self, NetError> {
        DirectoryClient::with_timeouts(base, token, metrics, TIMEOUTS, net)
    }

    /// The same, with other bounds per request (`[directory]` in bot.toml).
    pub fn with_timeouts(
        base: BaseUrl,
        token: Option<Secret>,
        metrics: Metrics,
        timeouts: Timeouts,
        net: &Net,
    ) -> Result<Self, NetError> {
        let http = Net::build(
            timeouts
                .apply(net.http_client())
                .user_agent(concat!("linkbot/", env!("CARGO_PKG_VERSION"))),
        )?;
        Ok(DirectoryClient {
            http,
            base: base.into_url(),
            token,
            metrics,
            net: net.clone(),
        })
    }

    async fn get(&self, path: &str, what: &'static str) -> Result<(u16, String), DirectoryError> {
        let url = self
            .base
            .join(path)
            .map_err(|e| DirectoryError::Unparseable {
                what,
                detail: format!("bad URL ({e})"),
            })?;
        let mut req = self
            .http
            .get(url)
            .header("Accept", "application/json, text/plain");
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose());
        }
        let resp = req.send().await.map_err(|source| {
            Metrics::call(&self.metrics.directory_calls, what, "transport");
            let network = self.net.explain_reqwest(&source);
            DirectoryError::Transport {
                what,
                source,
                network,
            }
        })?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        let mut resp = resp;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|source| DirectoryError::Transport {
                what,
                source,
                network: None,
            })?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                Metrics::call(&self.metrics.directory_calls, what, "too_large");
                return Err(DirectoryError::Unparseable {
                    what,
                    detail: format!("the answer is larger than {MAX_ANSWER_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        let outcome = if (200..300).contains(&status) {
            "ok".to_string()
        } else {
            format!("http_{status}")
        };
        Metrics::call(&self.metrics.directory_calls, what, &outcome);
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Resolves a location to its tugboat.
    pub async fn cluster(&self, location: &LocationId) -> Result<ClusterInfo, DirectoryError> {
        let (status, body) = self.get(&format!("cluster/{location}"), "cluster").await?;
        match status {
            200 => parse_cluster(&body),
            404 => Err(DirectoryError::UnknownLocation(location.clone())),
            s => Err(DirectoryError::Status {
                status: s,
                what: "cluster",
            }),
        }
    }

    /// The carriers of a datacenter in preference order, or `None` when the directory has no
    /// carriers endpoint (404), so the caller falls back to `[carriers]`.
    pub async fn carriers(
        &self,
        dc: &Datacenter,
    ) -> Result<Option<Vec<CarrierEntry>>, DirectoryError> {
        let (status, body) = self.get(&format!("carriers/{dc}"), "carriers").await?;
        match status {
            200 => parse_carriers(&body).map(Some),
            404 => Ok(None),
            s => Err(DirectoryError::Status {
                status: s,
                what: "carriers",
            }),
        }
    }
}

/// Parses a cluster answer: a JSON object, or XO's text form (`Field: value` per line).
pub fn parse_cluster(body: &str) -> Result<ClusterInfo, DirectoryError> {
    let unparseable = |detail: String| DirectoryError::Unparseable {
        what: "cluster",
        detail,
    };
    let trimmed = body.trim_start_matches('\u{feff}').trim();
    let mut fields = BTreeMap::new();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let value: serde_json::Value = serde_json::from_str(trimmed)
            .map_err(|e| unparseable(format!("invalid JSON ({e})")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| unparseable("not a JSON object".into()))?;
        for (k, v) in obj {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => continue,
                other => other.to_string(),
            };
            fields.insert(k.clone(), s);
        }
    } else {
        for line in trimmed.lines() {
            if let Some((k, v)) = line.split_once(':') {
                let k = k.trim().trim_start_matches(['-', '*', ' ']).trim();
                if !k.is_empty() && !k.contains(' ') {
                    fields.insert(k.to_string(), v.trim().trim_matches('`').to_string());
                }
            }
        }
    }
    let raw = fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("ActualDatacenterCluster"))
        .map(|(_, v)| v.clone())
        .ok_or_else(|| unparseable("no `ActualDatacenterCluster` field".into()))?;
    let tugboat = Tugboat::parse(&raw).map_err(|e| unparseable(e.to_string()))?;
    // Keep evidence small and printable.
    fields.retain(|k, v| k.len() <= 64 && v.len() <= 256);
    Ok(ClusterInfo { tugboat, fields })
}

#[derive(Deserialize)]
struct RawCarrier {
    #[serde(alias = "name")]
    #[serde(rename = "Name")]
    name: String,
    #[serde(alias = "status")]
    #[serde(rename = "Status", default)]
    status: String,
}

/// Parses a carriers answer: a JSON array of `{"Name", "Status"}` in preference order.
pub fn parse_carriers(body: &str) -> Result<Vec<CarrierEntry>, DirectoryError> {
    let raw: Vec<RawCarrier> =
        serde_json::from_str(body.trim()).map_err(|e| DirectoryError::Unparseable {
            what: "carriers",
            detail: format!("expected a JSON array of {{\"Name\", \"Status\"}} ({e})"),
        })?;
    raw.into_iter()
        .map(|c| {
            Ok(CarrierEntry {
                name: Carrier::parse(&c.name).map_err(|e| DirectoryError::Unparseable {
                    what: "carriers",
                    detail: e.to_string(),
                })?,
                status: c.status,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const JSON: &str =
        include_str!("../../tests/fixtures/directory/cluster-c1hk4ek107l5au5mq8hg.json");
    const TEXT: &str =
        include_str!("../../tests/fixtures/directory/cluster-c1hk4ek107l5au5mq8hg.txt");
    const CARRIERS: &str = include_str!("../../tests/fixtures/directory/carriers-wdc04.json");

    #[test]
    fn json_and_text_answers_give_the_same_tugboat() {
        let a = parse_cluster(JSON).unwrap();
        let b = parse_cluster(TEXT).unwrap();
        assert_eq!(a.tugboat.dotted(), "prod-wdc04.carrier107");
        assert_eq!(a.tugboat, b.tugboat);
        assert_eq!(
            b.fields.get("Datacenter").map(String::as_str),
            Some("wdc04")
        );
    }

    #[test]
    fn bad_cluster_answers_are_clear_errors() {
        let cases = [
            ("", "ActualDatacenterCluster"),
            ("{", "invalid JSON"),
            ("[1,2]", "not a JSON object"),
            ("{\"Name\": \"x\"}", "ActualDatacenterCluster"),
            (
                "{\"ActualDatacenterCluster\": \"nonsense\"}",
                "not a tugboat",
            ),
            ("{\"ActualDatacenterCluster\": 7}", "not a tugboat"),
            ("<html>502 Bad Gateway</html>", "ActualDatacenterCluster"),
        ];
        for (body, expect) in cases {
            let err = parse_cluster(body).unwrap_err().to_string();
            assert!(err.contains(expect), "{body:?}: {err}");
        }
    }

    #[test]
    fn the_first_available_carrier_is_chosen_in_order() {
        let list = parse_carriers(CARRIERS).unwrap();
        let first = list.iter().find(|c| c.is_available()).unwrap();
        assert_eq!(first.name.as_str(), "prod-wdc04-carrier2");
        for (status, ok) in [
            ("AVAILABLE", true),
            ("normal", true),
            ("Deployed", true),
            ("maintenance", false),
            ("", false),
        ] {
            let c = CarrierEntry {
                name: Carrier::parse("c1").unwrap(),
                status: status.into(),
            };
            assert_eq!(c.is_available(), ok, "{status}");
        }
        assert!(parse_carriers("{}").is_err());
        assert!(parse_carriers("[{\"Name\": \"bad name!\"}]").is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,300}") {
            let _ = parse_cluster(&s);
            let _ = parse_carriers(&s);
        }
    }
}
