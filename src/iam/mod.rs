//! The optional IBM Cloud IAM probe: asks IAM to turn the customer's API key into a token, to
//! confirm (or rule out) "the key is bad".
//!
//! The key is put in exactly one place, the form body of `POST {iam_url}identity/token`; it never
//! appears in an error, a log line or the outcome, and neither does the token IAM returns (it is
//! not even parsed out). This module only asks; the rules decide what the answer means.

use crate::diagnosis::verdict::IamOutcome;
use crate::domain::BaseUrl;
use crate::metrics::Metrics;
use crate::net::{Net, NetError, Timeouts};
use crate::secret::Secret;
use reqwest::header::ACCEPT;
use std::time::Duration;
use url::Url;

/// How long the probe waits for IAM.
pub const TIMEOUTS: Timeouts = Timeouts::new(Duration::from_secs(15), Duration::from_secs(5));
/// The most of IAM's answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The grant type IAM wants for an API key.
const GRANT_TYPE: &str = "urn:ibm:params:oauth:grant-type:apikey";

/// A client for IAM's token endpoint.
#[derive(Clone, Debug)]
pub struct IamClient {
    http: reqwest::Client,
    net: Net,
    token_url: Url,
}

impl IamClient {
    /// A client for IAM at `url` (e.g. `https://iam.cloud.ibm.com`).
    ///
    /// `metrics` is accepted for symmetry with the other clients; IAM calls are not counted
    /// until the registry has a family for them.
    pub fn new(url: BaseUrl, metrics: Metrics, net: &Net) -> Result<Self, NetError> {
        let _ = metrics;
        IamClient::with_timeouts(url, TIMEOUTS, net)
    }

    /// The same, with another timeout (tests use short ones); connecting keeps its default
    /// bound, cut to `timeout` when that is shorter.
    pub fn with_timeout(url: BaseUrl, timeout: Duration, net: &Net) -> Result<Self, NetError> {
        IamClient::with_timeouts(url, Timeouts::new(timeout, TIMEOUTS.connect), net)
    }

    /// The same, with other bounds per request (`[iam]` in bot.toml).
    pub fn with_timeouts(url: BaseUrl, timeouts: Timeouts, net: &Net) -> Result<Self, NetError> {
        let http = Net::build(
            timeouts
                .apply(net.http_client())
                .user_agent(concat!("linkbot/", env!("CARGO_PKG_VERSION")))
                .redirect(reqwest::redirect::Policy::none()),
        )?;
        let token_url = url
            .join("identity/token")
            .unwrap_or_else(|_| url.into_url());
        Ok(IamClient {
            http,
            net: net.clone(),
            token_url,
        })
    }

    /// Asks IAM whether it accepts `key`: 200 with an `access_token` is Accepted; 400/401 is
    /// Rejected with IAM's `errorCode` and `errorMessage`; 5xx, a timeout or no connection is
    /// Unreachable. Anything else is Unreachable with the status, since it proves nothing about
    /// the key.
    pub async fn probe(&self, key: &Secret) -> IamOutcome {
        let form = [("grant_type", GRANT_TYPE), ("apikey", key.expose())];
        let sent = self
            .http
            .post(self.token_url.clone())
            .header(ACCEPT, "application/json")
            .form(&form)
            .send()
            .await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                return IamOutcome::Unreachable {
                    detail: self.unreachable(&e),
                }
            }
        };
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_ANSWER_BYTES => {
                    body.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => break,
                Ok(None) => break,
                Err(_) => {
                    return IamOutcome::Unreachable {
                        detail: format!("IAM's answer (HTTP {status}) was cut off"),
                    }
                }
            }
        }
        classify(status, &body, key)
    }

    /// Whether IAM's token endpoint answers, without a key: IAM answers a request with no
    /// `apikey` HTTP 400 (`BXNIM0109E`, property missing), which proves it up. 5xx, another
    /// status, a timeout or no connection is why not, in a sentence.
    pub async fn health(&self) -> Result<(), String> {
        let sent = self
            .http
            .post(self.token_url.clone())
            .header(ACCEPT, "application/json")
            .form(&[("grant_type", GRANT_TYPE)])
            .send()
            .await;
        match sent {
            Err(e) => Err(self.unreachable(&e)),
            Ok(resp) => match resp.status().as_u16() {
                200 | 400 | 401 => Ok(()),
                s => Err(format!("IAM answered HTTP {s}")),
            },
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> String {
        if e.is_timeout() {
            "IAM did not answer in time".to_string()
        } else if let Some(problem) = self.net.explain_reqwest(e) {
            format!("IAM could not be reached: {problem}")
        } else {
            format!("IAM could not be reached at {}", self.host())
        }
    }

    fn host(&self) -> String {
        self.token_url.host_str().unwrap_or("its URL").to_string()
    }
}

/// What IAM's answer means. Never returns the key or the token.
pub fn classify(status: u16, body: &[u8], key: &Secret) -> IamOutcome {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        json.as_ref()
            .and_then(|j| j.get(k))
            .and_then(|v| v.as_str())
            .map(|s| crate::secret::scrub(s, Some(key), 200))
    };
    match status {
        200 => {
            if json
                .as_ref()
                .and_then(|j| j.get("access_token"))
                .and_then(|t| t.as_str())
                .is_some_and(|t| !t.is_empty())
            {
                IamOutcome::Accepted
            } else {
                IamOutcome::Unreachable {
                    detail: "IAM answered HTTP 200 without an access token".to_string(),
                }
            }
        }
        400 | 401 => {
            let detail = match (field("errorCode"), field("errorMessage")) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c,
                (None, Some(m)) => format!("HTTP {status}: {m}"),
                (None, None) => format!("HTTP {status}"),
            };
            IamOutcome::Rejected { detail }
        }
        s if s >= 500 => IamOutcome::Unreachable {
            detail: match field("errorCode") {
                Some(c) => format!("IAM answered HTTP {s} ({c})"),
                None => format!("IAM answered HTTP {s}"),
            },
        },
        s => IamOutcome::Unreachable {
            detail: format!("IAM answered HTTP {s}, which says nothing about the key"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_echoed_across_the_length_cut_leaves_no_part_behind() {
        let key = Secret::new("kq2V8hN0Zt1mWcXb3fLpSECRETKEY");
        let message = format!("{}{}", "x".repeat(190), key.expose());
        let body = serde_json::json!({"errorCode": "BXNIM0109E", "errorMessage": message});
        let IamOutcome::Rejected { detail } = classify(400, body.to_string().as_bytes(), &key)
        else {
            panic!("not rejected")
        };
        assert!(!detail.contains("kq2V8h"), "{detail}");
    }

    #[test]
    fn answers_are_classified_without_the_key_or_the_token() {
        let key = Secret::new("kq2V8hN0Zt1mWcXb3fLpSECRETKEY");
        let ok = br#"{"access_token":"eyJhbGciOiJTOPSECRET","refresh_token":"not_supported","token_type":"Bearer","expires_in":3600}"#;
        assert_eq!(classify(200, ok, &key), IamOutcome::Accepted);
        let bad = br#"{"context":{"requestId":"abc"},"errorCode":"BXNIM0415E","errorMessage":"Provided API key could not be found.","errorDetails":"kq2V8hN0Zt1mWcXb3fLpSECRETKEY"}"#;
        assert_eq!(
            classify(400, bad, &key),
            IamOutcome::Rejected {
                detail: "BXNIM0415E: Provided API key could not be found.".to_string()
            }
        );
        let echo = br#"{"errorCode":"BXNIM0109E","errorMessage":"Property missing or empty: kq2V8hN0Zt1mWcXb3fLpSECRETKEY"}"#;
        let IamOutcome::Rejected { detail } = classify(400, echo, &key) else {
            panic!("not rejected")
        };
        assert!(
            !detail.contains("SECRETKEY") && detail.contains("[redacted …TKEY]"),
            "{detail}"
        );
        assert_eq!(
            classify(401, b"not json", &key),
            IamOutcome::Rejected {
                detail: "HTTP 401".to_string()
            }
        );
        assert!(matches!(
            classify(503, b"", &key),
            IamOutcome::Unreachable { .. }
        ));
        assert!(matches!(
            classify(200, b"{}", &key),
            IamOutcome::Unreachable { .. }
        ));
        assert!(matches!(
            classify(404, b"", &key),
            IamOutcome::Unreachable { .. }
        ));
        let all = format!("{:?}", [classify(200, ok, &key), classify(400, bad, &key)]);
        assert!(
            !all.contains("TOPSECRET") && !all.contains("SECRETKEY"),
            "{all}"
        );
    }
}
