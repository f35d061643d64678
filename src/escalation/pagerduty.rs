//! The PagerDuty Events API v2 client: `POST {base}v2/enqueue` with a `trigger` event, and a
//! `resolve` event with the same `dedup_key` when the incident linkbot paged for resolves.
//!
//! Retries 429, 5xx and unanswered requests a bounded number of times with backoff: that is safe
//! because every page about one location carries the same `dedup_key`, so a repeat updates the
//! same incident instead of opening a second one.
//!
//! It must NOT build the event (see [`super::page_event`]) and must never let the routing key
//! out: it goes into the request body and nowhere else (not in errors, logs or `Debug`).

use super::{
    http_client, retry_after, scrub, transport_error, EscalationError, PageEvent, PageLink,
    PagePayload, RetryPolicy, System, TIMEOUTS,
};
use crate::domain::BaseUrl;
use crate::metrics::Metrics;
use crate::net::{Net, Timeouts};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;
use url::Url;

const SYSTEM: System = System::PagerDuty;

/// What PagerDuty said when it took an event (HTTP 202).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PageReceipt {
    /// The incident's dedup key (ours, echoed).
    pub dedup_key: String,
    /// `success`.
    pub status: String,
    /// `Event processed`.
    pub message: String,
}

/// Sends pages to one PagerDuty service (the one the routing key belongs to).
#[derive(Clone)]
pub struct PagerDutyClient {
    http: reqwest::Client,
    net: Net,
    enqueue_url: Url,
    routing_key: Secret,
    metrics: Metrics,
    retry: RetryPolicy,
}

impl fmt::Debug for PagerDutyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PagerDutyClient")
            .field("enqueue_url", &self.enqueue_url.as_str())
            .field("routing_key", &self.routing_key)
            .field("retry", &self.retry)
            .finish()
    }
}

#[derive(Serialize)]
struct Enqueue<'a> {
    routing_key: &'a str,
    event_action: &'static str,
    dedup_key: &'a str,
    /// Required by a trigger; a resolve carries none.
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a PagePayload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    links: Option<&'a [PageLink]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<&'static str>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
}

impl PagerDutyClient {
    /// A client for `{base}v2/enqueue` (`base` is `[pagerduty] url`) with the default timeout
    /// and retry policy.
    pub fn new(
        base: BaseUrl,
        routing_key: Secret,
        metrics: Metrics,
        net: &Net,
    ) -> Result<Self, EscalationError> {
        let enqueue_url = base.join("v2/enqueue").unwrap_or_else(|_| base.into_url());
        Ok(PagerDutyClient {
            http: http_client(SYSTEM, TIMEOUTS, net)?,
            net: net.clone(),
            enqueue_url,
            routing_key,
            metrics,
            retry: RetryPolicy::default(),
        })
    }

    /// The same client with another per-request timeout.
    pub fn with_timeout(self, timeout: Duration) -> Result<Self, EscalationError> {
        self.with_timeouts(Timeouts::new(timeout, timeout))
    }

    /// The same client with other bounds per request (its table in bot.toml).
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Result<Self, EscalationError> {
        self.http = http_client(SYSTEM, timeouts, &self.net)?;
        Ok(self)
    }

    /// The same client with another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Triggers (or updates, by `dedup_key`) an incident. Each HTTP attempt is counted in
    /// `linkbot_escalations{method="pagerduty"}` with its outcome.
    pub async fn trigger(&self, ev: &PageEvent) -> Result<PageReceipt, EscalationError> {
        self.enqueue(&Enqueue {
            routing_key: self.routing_key.expose(),
            event_action: "trigger",
            dedup_key: &ev.dedup_key,
            payload: Some(&ev.payload),
            links: Some(&ev.links),
            client: Some("linkbot"),
        })
        .await
    }

    /// Resolves the incident `dedup_key` names (the key the trigger carried). PagerDuty accepts
    /// a resolve for an incident already resolved, so a repeat is harmless; retried like a
    /// trigger.
    pub async fn resolve(&self, dedup_key: &str) -> Result<PageReceipt, EscalationError> {
        self.enqueue(&Enqueue {
            routing_key: self.routing_key.expose(),
            event_action: "resolve",
            dedup_key,
            payload: None,
            links: None,
            client: None,
        })
        .await
    }

    async fn enqueue(&self, body: &Enqueue<'_>) -> Result<PageReceipt, EscalationError> {
        let attempts = self.retry.attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (err, wait_hint) = match self.send_once(body).await {
                Ok(receipt) => {
                    Metrics::call(&self.metrics.escalations, SYSTEM.as_str(), "ok");
                    return Ok(receipt);
                }
                Err(Attempt::Final(err)) => {
                    Metrics::call(&self.metrics.escalations, SYSTEM.as_str(), &err.kind());
                    return Err(err);
                }
                Err(Attempt::Retry(err, hint)) => (err, hint),
            };
            Metrics::call(&self.metrics.escalations, SYSTEM.as_str(), &err.kind());
            if attempt >= attempts {
                return Err(if attempts == 1 {
                    err
                } else {
                    EscalationError::Exhausted {
                        system: SYSTEM,
                        attempts: attempt,
                        last: Box::new(err),
                    }
                });
            }
            let delay = self.retry.delay(attempt, wait_hint);
            tracing::warn!(attempt, ?delay, action = body.event_action, error = %err, "PagerDuty enqueue failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    async fn send_once(&self, body: &Enqueue<'_>) -> Result<PageReceipt, Attempt> {
        let resp = self
            .http
            .post(self.enqueue_url.clone())
            .json(body)
            .send()
            .await
            .map_err(|e| Attempt::Retry(transport_error(SYSTEM, e), None))?;
        let status = resp.status().as_u16();
        let hint = retry_after(resp.headers());
        let text = resp
            .text()
            .await
            .map_err(|e| Attempt::Retry(transport_error(SYSTEM, e), None))?;
        match status {
            202 | 200 => serde_json::from_str::<PageReceipt>(&text).map_err(|e| {
                Attempt::Final(EscalationError::BadAnswer {
                    system: SYSTEM,
                    status,
                    detail: e.to_string(),
                })
            }),
            429 | 500..=599 => Err(Attempt::Retry(
                EscalationError::Unavailable {
                    system: SYSTEM,
                    status,
                    message: self.message_of(&text),
                },
                hint,
            )),
            _ => Err(Attempt::Final(EscalationError::Rejected {
                system: SYSTEM,
                status,
                message: self.message_of(&text),
            })),
        }
    }

    /// PagerDuty's `message` and `errors`, scrubbed of the routing key.
    fn message_of(&self, text: &str) -> String {
        let raw = match serde_json::from_str::<ErrorBody>(text) {
            Ok(b) => {
                let errors: Vec<String> = b
                    .errors
                    .iter()
                    .map(|e| match e {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                match (b.message.is_empty(), errors.is_empty()) {
                    (false, false) => format!("{}: {}", b.message, errors.join("; ")),
                    (false, true) => b.message,
                    (true, false) => errors.join("; "),
                    (true, true) => "no message".into(),
                }
            }
            Err(_) if text.trim().is_empty() => "no message".into(),
            Err(_) => text.to_string(),
        };
        scrub(&raw, &self.routing_key)
    }
}

enum Attempt {
    Retry(EscalationError, Option<Duration>),
    Final(EscalationError),
}
