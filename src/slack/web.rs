//! The Slack Web API client: the seven methods linkbot calls, over slack-morphism's hyper client.
//!
//! [`SlackWeb`] wraps `SlackClient<SlackClientHyperConnector<…>>` with three things the crate does
//! not do on its own:
//! - a connector that speaks plain `http://` and HTTP/1.1 as well as HTTPS/HTTP 2, so `api_url`
//!   can point at the local fake (`SlackClientHyperConnector::new()` is HTTPS + HTTP/2 only);
//! - rate control: slack-morphism's `SlackApiRateControlConfig` with `max_retries`, because
//!   without `max_retries` the crate does *not* retry a 429 at all. With it, a 429 is retried
//!   after exactly its `Retry-After` (up to [`MAX_RETRIES`] times). Method tiers are applied per
//!   team, which the crate only does when the token carries a team id: [`SlackWeb::auth_test`]
//!   records it and later calls use it (tier 3 `chat.update`: 50 a minute; tier 2
//!   `usergroups.users.list`: 20 a minute). `chat.postMessage` is limited per channel (Slack's
//!   documented 1/s per channel, bursts of 10 here) instead of the crate's single global 1/s
//!   bucket with no burst, which would serialise every channel behind each other.
//!   [`SlackWeb::without_pacing`] turns the client-side pacing off (demo, tests);
//! - an edit budget ([`super::budget`]) in front of `chat.update`, so that a verdict never waits
//!   behind progress edits: [`SlackWeb::update`] is urgent, [`SlackWeb::update_progress`] is
//!   deferred (answers `false`, no call) when it would eat into what urgent edits need;
//! - errors as [`SlackError`], with a short [`SlackError::user_message`] for Slack users and the
//!   crate's error as `#[source]` for the logs, and a call counter in `Metrics::slack_calls`.
//!
//! Tokens are [`Secret`]s: they are exposed only to build the `Authorization` header, and never
//! appear in errors, `Debug` output or logs. This module must NOT contain bot logic (what to post,
//! who may act): it only carries requests.

use super::budget::{EditBudget, EditKind, EditRate};
use crate::metrics::Metrics;
use crate::net::{Net, NetConnector};
use crate::secret::Secret;
use slack_morphism::api::{
    SlackApiAppsConnectionOpenRequest, SlackApiChatGetPermalinkRequest,
    SlackApiChatPostEphemeralRequest, SlackApiChatPostMessageRequest,
    SlackApiChatPostMessageResponse, SlackApiChatUpdateRequest, SlackApiReactionsAddRequest,
    SlackApiUserGroupsUsersListRequest, SlackApiViewsOpenRequest,
};
use slack_morphism::blocks::{SlackBlock, SlackView};
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::{
    SlackApiMethodRateControlConfig, SlackApiRateControlConfig, SlackApiRateControlLimit,
    SlackApiRateControlSpecialLimit, SlackClientHyperConnector,
};
use slack_morphism::{
    SlackApiToken, SlackApiTokenValue, SlackChannelId, SlackClient, SlackMessageContent,
    SlackReactionName, SlackTeamId, SlackTriggerId, SlackTs, SlackUserGroupId, SlackUserId,
};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::watch;
use url::Url;

/// How many times a call answered HTTP 429 is retried (each after its `Retry-After`).
pub const MAX_RETRIES: usize = 3;

/// The default bound on one Web API call (`[slack] request_timeout_secs`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

type Connector = SlackClientHyperConnector<hyper_rustls::HttpsConnector<NetConnector>>;

/// Who linkbot is in the workspace, from `auth.test`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BotIdentity {
    /// The bot user's id (`U…`): mentions of the bot are `<@user_id>`.
    pub user_id: String,
    /// The bot id (`B…`) its own messages carry, when the token is a bot token.
    pub bot_id: Option<String>,
    /// The workspace id (`T…`).
    pub team_id: String,
}

/// A failed Slack call. `Display` is for logs; [`SlackError::user_message`] is for Slack users.
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    /// Slack refused the token (`invalid_auth`, `not_authed`, `token_revoked`, missing scope…).
    #[error("Slack refused the token for {method}: {code}")]
    Auth {
        /// The API method.
        method: &'static str,
        /// Slack's error code.
        code: String,
        /// The client error.
        #[source]
        source: Box<SlackClientError>,
    },
    /// Slack answered `ok: false` with another error code.
    #[error("Slack API {method} answered `{code}`")]
    Api {
        /// The API method.
        method: &'static str,
        /// Slack's error code (`channel_not_found`, `message_not_found`, …).
        code: String,
        /// Slack's `response_metadata.messages` (for `invalid_blocks`: what is wrong and where,
        /// e.g. `[ERROR] must be unique [json-pointer:/blocks/9/elements/1/action_id]`).
        messages: Vec<String>,
        /// The client error.
        #[source]
        source: Box<SlackClientError>,
    },
    /// No answer within the configured `[slack] request_timeout_secs`.
    #[error("Slack API {method} did not answer within {}s", after.as_secs_f32())]
    Timeout {
        /// The API method.
        method: &'static str,
        /// The bound that passed.
        after: Duration,
    },
    /// Still rate limited after [`MAX_RETRIES`] retries.
    #[error("Slack API {method} is rate limited")]
    RateLimited {
        /// The API method.
        method: &'static str,
        /// Slack's last `Retry-After`.
        retry_after: Option<Duration>,
        /// The client error.
        #[source]
        source: Box<SlackClientError>,
    },
    /// An HTTP status other than 200/429.
    #[error("Slack API {method} failed with HTTP {status}")]
    Http {
        /// The API method.
        method: &'static str,
        /// The HTTP status code.
        status: u16,
        /// The client error.
        #[source]
        source: Box<SlackClientError>,
    },
    /// The request did not get an answer (connection refused, TLS, timeout…).
    #[error("could not reach the Slack API for {method}")]
    Transport {
        /// The API method.
        method: &'static str,
        /// The client error.
        #[source]
        source: Box<SlackClientError>,
    },
    /// The answer was not what the method returns.
    #[error("unexpected answer from Slack API {method}")]
    Protocol {
        /// The API method.
        method: &'static str,
        /// The client error.
        #[source]
        source: Box<SlackClientError>,
    },
    /// A Block Kit block given to a method is not valid.
    #[error("block #{index} is not valid Block Kit: {reason}")]
    InvalidBlocks {
        /// Position of the block in the list.
        index: usize,
        /// What is wrong, without the block's content.
        reason: &'static str,
        /// The decoding error, when there is one.
        #[source]
        source: Option<serde_json::Error>,
    },
    /// The HTTP client could not be built (no usable TLS roots for an `https` URL).
    #[error("the Slack HTTP client could not be set up")]
    Setup {
        /// The I/O error from loading TLS roots.
        #[source]
        source: std::io::Error,
    },
    /// The Socket Mode WebSocket could not be opened or broke.
    #[error("Socket Mode WebSocket failed")]
    WebSocket {
        /// The WebSocket error.
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// The Socket Mode peer did not follow the protocol (no `hello`, silent connection…).
    #[error("Socket Mode protocol: {0}")]
    SocketProtocol(&'static str),
    /// A Socket Mode frame that is not a usable envelope.
    #[error("Socket Mode frame is not a usable envelope: {what}")]
    Envelope {
        /// What is wrong, without the frame's content.
        what: &'static str,
        /// The decoding error, when there is one.
        #[source]
        source: Option<serde_json::Error>,
    },
}

impl SlackError {
    /// One sentence for a Slack user or the terminal; never a token, never a payload.
    pub fn user_message(&self) -> String {
        match self {
            SlackError::Auth { code, .. } => format!(
                "Slack refused linkbot's token ({code}); an operator must check SLACK_BOT_TOKEN and SLACK_APP_TOKEN."
            ),
            SlackError::Api { code, .. } => format!("Slack refused the request ({code})."),
            SlackError::RateLimited { .. } => {
                "Slack is rate limiting linkbot right now; try again in a minute.".to_string()
            }
            SlackError::Http { .. } | SlackError::Transport { .. } => {
                "Slack could not be reached; try again shortly.".to_string()
            }
            SlackError::Timeout { .. } => {
                "Slack did not answer in time; try again shortly.".to_string()
            }
            SlackError::Protocol { .. } => {
                "Slack gave an answer linkbot does not understand; try again shortly.".to_string()
            }
            SlackError::InvalidBlocks { .. } => {
                "linkbot built a message Slack would not accept (a bug); the details are in the logs."
                    .to_string()
            }
            SlackError::Setup { .. } => {
                "linkbot could not set up its connection to Slack (TLS roots); see the logs.".to_string()
            }
            SlackError::WebSocket { .. } | SlackError::SocketProtocol(_) => {
                "The Socket Mode connection to Slack failed; linkbot reconnects on its own.".to_string()
            }
            SlackError::Envelope { .. } => "Slack sent an event linkbot could not read.".to_string(),
        }
    }

    /// A low-cardinality label for metrics: `auth`, `api_error`, `ratelimited`, `http_error`,
    /// `transport`, `timeout`, `protocol`, `invalid_input`, `setup`, `socket`.
    pub fn kind(&self) -> &'static str {
        match self {
            SlackError::Auth { .. } => "auth",
            SlackError::Api { .. } => "api_error",
            SlackError::RateLimited { .. } => "ratelimited",
            SlackError::Http { .. } => "http_error",
            SlackError::Transport { .. } => "transport",
            SlackError::Timeout { .. } => "timeout",
            SlackError::Protocol { .. } | SlackError::Envelope { .. } => "protocol",
            SlackError::InvalidBlocks { .. } => "invalid_input",
            SlackError::Setup { .. } => "setup",
            SlackError::WebSocket { .. } | SlackError::SocketProtocol(_) => "socket",
        }
    }

    /// Whether retrying cannot help (the token is refused, the client cannot be built).
    pub fn is_fatal(&self) -> bool {
        matches!(self, SlackError::Auth { .. } | SlackError::Setup { .. })
    }

    /// Whether Slack refused the token itself (revoked, invalid, deactivated workspace…), as
    /// opposed to a scope or permission missing for one method: the bot cannot work at all.
    pub fn is_token_refused(&self) -> bool {
        matches!(self, SlackError::Auth { code, .. } if matches!(
            code.as_str(),
            "invalid_auth" | "not_authed" | "account_inactive" | "token_revoked" | "token_expired"
        ))
    }

    /// Whether the same call may succeed if tried again shortly: HTTP 5xx, no answer, a
    /// timeout. A refusal (`ok: false`) is not: Slack would refuse the same request again.
    pub fn is_retryable(&self) -> bool {
        match self {
            SlackError::Http { status, .. } => *status >= 500,
            SlackError::Transport { .. } | SlackError::Timeout { .. } => true,
            _ => false,
        }
    }

    /// Slack's `response_metadata.messages` for a refused call (empty when there are none).
    pub fn response_messages(&self) -> &[String] {
        match self {
            SlackError::Api { messages, .. } => messages,
            _ => &[],
        }
    }

    /// One line naming a fatal cause and its fix, for the process's last words.
    pub fn fatal_line(&self) -> String {
        let var = match self {
            SlackError::Auth {
                method: "apps.connections.open",
                ..
            } => Some("SLACK_APP_TOKEN"),
            SlackError::Auth { .. } => Some("SLACK_BOT_TOKEN"),
            _ => None,
        };
        match var {
            Some(var) => format!("{self}: check {var}"),
            None => self.to_string(),
        }
    }

    /// Slack's error code (`channel_not_found`, `invalid_auth`, …) when Slack answered one.
    pub fn code(&self) -> Option<&str> {
        match self {
            SlackError::Auth { code, .. } | SlackError::Api { code, .. } => Some(code),
            SlackError::RateLimited { .. } => Some("ratelimited"),
            _ => None,
        }
    }

    fn from_client(method: &'static str, client_error: SlackClientError) -> SlackError {
        let source = Box::new(client_error);
        match source.as_ref() {
            SlackClientError::ApiError(api) if is_auth_code(&api.code) => SlackError::Auth {
                method,
                code: api.code.clone(),
                source,
            },
            SlackClientError::ApiError(api) => SlackError::Api {
                method,
                code: api.code.clone(),
                messages: response_messages(api.http_response_body.as_deref()),
                source,
            },
            SlackClientError::RateLimitError(rate) => SlackError::RateLimited {
                method,
                retry_after: rate.retry_after,
                source,
            },
            SlackClientError::HttpError(http) => SlackError::Http {
                method,
                status: http.status_code.as_u16(),
                source,
            },
            SlackClientError::HttpProtocolError(_) | SlackClientError::EndOfStream(_) => {
                SlackError::Transport { method, source }
            }
            _ => SlackError::Protocol { method, source },
        }
    }
}

/// `response_metadata.messages` of an error answer, at most 20 of at most 300 characters each
/// (they name JSON pointers and limits, never message content, but a log line stays bounded).
fn response_messages(body: Option<&str>) -> Vec<String> {
    let Some(body) = body else {
        return Vec::new();
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        return Vec::new();
    };
    value
        .pointer("/response_metadata/messages")
        .and_then(serde_json::Value::as_array)
        .map(|messages| {
            messages
                .iter()
                .filter_map(serde_json::Value::as_str)
                .take(20)
                .map(|m| m.chars().take(300).collect())
                .collect()
        })
        .unwrap_or_default()
}

fn is_auth_code(code: &str) -> bool {
    matches!(
        code,
        "invalid_auth"
            | "not_authed"
            | "account_inactive"
            | "token_revoked"
            | "token_expired"
            | "not_allowed_token_type"
            | "missing_scope"
            | "no_permission"
    )
}

/// The right to send one urgent `chat.update` now, from [`SlackWeb::edit_turn`].
#[must_use = "a turn not used is a slot of Slack's edit budget spent for nothing"]
#[derive(Debug)]
pub struct EditTurn(Option<tokio::time::Instant>);

/// The Slack Web API client. Cheap to clone (the HTTP pool and rate limiter are shared).
#[derive(Clone)]
pub struct SlackWeb {
    client: SlackClient<Connector>,
    bot_token: Secret,
    team_id: Arc<OnceLock<String>>,
    pacing: bool,
    metrics: Metrics,
    api_url: String,
    net: Net,
    timeout: Duration,
    refused: Arc<watch::Sender<Option<String>>>,
    /// The `chat.update` budget; `None`: unlimited (tests and the demo against the simulator).
    edits: Option<Arc<EditBudget>>,
}

impl fmt::Debug for SlackWeb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackWeb")
            .field("api_url", &self.api_url)
            .field("bot_token", &self.bot_token)
            .finish()
    }
}

impl SlackWeb {
    /// A client for the Web API at `api_url` (e.g. `https://slack.com/api`, or the fake's
    /// `http://127.0.0.1:…/api`), calling with `bot_token`.
    ///
    /// Connections follow `net`: its trust roots, and its proxy (a CONNECT tunnel) when one
    /// applies to the API host.
    pub fn new(
        api_url: &Url,
        bot_token: Secret,
        metrics: Metrics,
        net: &Net,
    ) -> Result<SlackWeb, SlackError> {
        // Another component may have installed a provider already; either way one is there.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*net.tls()).clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(net.hyper_connector(crate::net::SLACK_CONNECTIONS));
        let api_url = api_url.as_str().trim_end_matches('/').to_string();
        let connector = SlackClientHyperConnector::with_connector(https)
            .with_slack_api_url(&api_url)
            .with_rate_control(SlackApiRateControlConfig::new().with_max_retries(MAX_RETRIES));
        Ok(SlackWeb {
            client: SlackClient::new(connector),
            bot_token,
            team_id: Arc::new(OnceLock::new()),
            pacing: true,
            metrics,
            api_url,
            net: net.clone(),
            timeout: DEFAULT_REQUEST_TIMEOUT,
            refused: Arc::new(watch::Sender::new(None)),
            edits: Some(Arc::new(EditBudget::new(EditRate::TIER_3))),
        })
    }

    /// The trust and proxy settings this client connects with (the Socket Mode transport
    /// uses the same).
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// The sentence for a certificate or proxy failure behind `err`, naming the API host.
    pub fn network_problem(&self, err: &SlackError) -> Option<String> {
        let host = Url::parse(&self.api_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "the Slack API".into());
        match err {
            SlackError::Transport { source, .. } => match source.as_ref() {
                SlackClientError::HttpProtocolError(p) => p
                    .cause
                    .as_deref()
                    .and_then(|c| crate::net::explain(c, &host)),
                other => crate::net::explain(other, &host),
            },
            _ => None,
        }
    }

    /// Turns off client-side pacing (method tiers and the per-channel `chat.postMessage`
    /// limit), keeping the 429 `Retry-After` retries. For the demo and tests against the fake,
    /// where Slack's real limits would only slow things down.
    pub fn without_pacing(mut self) -> SlackWeb {
        self.pacing = false;
        self.edits = None;
        self
    }

    /// Keeps `chat.update` within `rate` (Tier 3, 50 a minute, unless told otherwise), with
    /// progress edits deferred before any urgent edit waits; `None` lifts the budget.
    pub fn with_edit_budget(mut self, rate: Option<EditRate>) -> SlackWeb {
        self.edits = rate.map(|r| Arc::new(EditBudget::new(r)));
        self
    }

    /// Bounds every call (rate-limit waits included) by `timeout`; a call still unanswered
    /// then fails with [`SlackError::Timeout`].
    pub fn with_request_timeout(mut self, timeout: Duration) -> SlackWeb {
        self.timeout = timeout;
        self
    }

    /// The metrics the client counts its calls in.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The bound on one call.
    pub fn request_timeout(&self) -> Duration {
        self.timeout
    }

    /// Becomes `Some(one line naming the cause)` the first time Slack refuses a token
    /// (`invalid_auth`, `token_revoked`, …) on any call: the bot cannot work any more.
    pub fn token_refused(&self) -> watch::Receiver<Option<String>> {
        self.refused.subscribe()
    }

    /// Awaits `call` within the request timeout, then counts and logs its outcome.
    async fn call<T>(
        &self,
        method: &'static str,
        call: impl Future<Output = Result<T, SlackClientError>>,
    ) -> Result<T, SlackError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => self.finish(method, result),
            Err(_) => {
                let err = SlackError::Timeout {
                    method,
                    after: self.timeout,
                };
                Metrics::call(&self.metrics.slack_calls, method, err.kind());
                tracing::warn!(method, kind = err.kind(), "{err}");
                Err(err)
            }
        }
    }

    fn token(&self, secret: &Secret, with_team: bool) -> SlackApiToken {
        let token = SlackApiToken::new(SlackApiTokenValue(secret.expose().to_string()));
        match self.team_id.get() {
            Some(team) if with_team && self.pacing => token.with_team_id(SlackTeamId(team.clone())),
            _ => token,
        }
    }

    fn finish<T>(
        &self,
        method: &'static str,
        result: Result<T, SlackClientError>,
    ) -> Result<T, SlackError> {
        match result {
            Ok(value) => {
                Metrics::call(&self.metrics.slack_calls, method, "ok");
                Ok(value)
            }
            Err(source) => {
                let err = SlackError::from_client(method, source);
                Metrics::call(&self.metrics.slack_calls, method, err.kind());
                if let SlackError::Api { code, messages, .. } = &err {
                    // Slack refused the request itself: retrying the same one cannot help.
                    self.metrics.rejected(method, code);
                    tracing::error!(
                        method,
                        code = code.as_str(),
                        messages = ?messages,
                        "Slack refused the request"
                    );
                } else {
                    tracing::warn!(
                        method,
                        kind = err.kind(),
                        code = err.code(),
                        "Slack API call failed"
                    );
                }
                if err.is_token_refused() {
                    let line = err.fatal_line();
                    self.refused.send_if_modified(|current| {
                        current.is_none() && {
                            *current = Some(line);
                            true
                        }
                    });
                }
                Err(err)
            }
        }
    }

    fn invalid(&self, method: &'static str, err: SlackError) -> SlackError {
        Metrics::call(&self.metrics.slack_calls, method, err.kind());
        err
    }

    /// `auth.test`: who the bot token belongs to. Also enables per-team method tiers.
    pub async fn auth_test(&self) -> Result<BotIdentity, SlackError> {
        let token = self.token(&self.bot_token, false);
        let session = self.client.open_session(&token);
        let res = self.call("auth.test", session.auth_test()).await?;
        let team_id = res.team_id.0;
        let _ = self.team_id.set(team_id.clone());
        Ok(BotIdentity {
            user_id: res.user_id.0,
            bot_id: res.bot_id.map(|b| b.0),
            team_id,
        })
    }

    /// `apps.connections.open` with the app-level token: a fresh Socket Mode WebSocket URL.
    /// The URL carries a one-time ticket: do not log it.
    pub async fn connections_open(&self, app_token: &Secret) -> Result<Url, SlackError> {
        let token = self.token(app_token, false);
        let session = self.client.open_session(&token);
        let req = SlackApiAppsConnectionOpenRequest::new();
        let res = self
            .call("apps.connections.open", session.apps_connections_open(&req))
            .await?;
        Ok(res.url.0)
    }

    /// `chat.postMessage`: posts `text` (the notification/fallback text) with optional Block Kit
    /// `blocks` in `channel`, in the thread `thread_ts` when given. Returns the message's `ts`.
    pub async fn post_message(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        text: &str,
        blocks: Option<Vec<serde_json::Value>>,
    ) -> Result<String, SlackError> {
        const METHOD: &str = "chat.postMessage";
        let content = content(text, blocks).map_err(|e| self.invalid(METHOD, e))?;
        let req = SlackApiChatPostMessageRequest::new(SlackChannelId(channel.to_string()), content)
            .opt_thread_ts(thread_ts.map(|t| SlackTs(t.to_string())));
        // Slack: about 1 message per second per channel, short bursts allowed (10 here).
        let per_channel = SlackApiMethodRateControlConfig::new().with_special_rate_limit(
            SlackApiRateControlSpecialLimit::new(
                format!("{METHOD}:{channel}").into(),
                SlackApiRateControlLimit::new(10, Duration::from_secs(10)),
            ),
        );
        let token = self.token(&self.bot_token, true);
        let session = self.client.open_session(&token);
        let res: SlackApiChatPostMessageResponse = self
            .call(
                METHOD,
                session.http_session_api.http_post(
                    METHOD,
                    &req,
                    self.pacing.then_some(&per_channel),
                ),
            )
            .await?;
        Ok(res.ts.0)
    }

    /// `chat.update`: replaces the text and blocks of the message `ts` in `channel`. An urgent
    /// edit: it goes before any progress edit, waiting only when urgent edits alone use up the
    /// budget.
    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: Option<Vec<serde_json::Value>>,
    ) -> Result<(), SlackError> {
        let turn = self.edit_turn().await;
        self.update_in_turn(turn, channel, ts, text, blocks).await
    }

    /// Waits for the right to send one urgent edit (Slack's edit budget): an urgent edit
    /// waits for its turn (booked in order: a verdict is late rather than lost); the call
    /// itself is then bounded by the request timeout. Timing the turn out would throw the
    /// verdict away and, retried, book turn after turn. Taking the turn before rendering
    /// means a verdict waiting for it holds its report, not its rendered message.
    pub async fn edit_turn(&self) -> EditTurn {
        match &self.edits {
            Some(budget) => EditTurn(budget.admit(EditKind::Urgent).await),
            None => EditTurn(None),
        }
    }

    /// [`SlackWeb::update`] in a turn already taken ([`SlackWeb::edit_turn`]).
    pub async fn update_in_turn(
        &self,
        turn: EditTurn,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: Option<Vec<serde_json::Value>>,
    ) -> Result<(), SlackError> {
        let result = self.send_update(channel, ts, text, blocks).await;
        self.answered(turn.0);
        result
    }

    /// Tells the edit budget when the edit booked for `at` was answered.
    fn answered(&self, at: Option<tokio::time::Instant>) {
        if let (Some(budget), Some(at)) = (&self.edits, at) {
            budget.answered(at, tokio::time::Instant::now());
        }
    }

    /// A progress edit (`chat.update`): `Ok(false)`, with no call, when the budget has no token
    /// to spare for it now; its check sends its latest state later.
    pub async fn update_progress(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: Option<Vec<serde_json::Value>>,
    ) -> Result<bool, SlackError> {
        let at = match &self.edits {
            Some(budget) => match budget.admit(EditKind::Progress).await {
                Some(at) => Some(at),
                None => {
                    Metrics::call(&self.metrics.slack_calls, "chat.update", "deferred");
                    return Ok(false);
                }
            },
            None => None,
        };
        let result = self.send_update(channel, ts, text, blocks).await;
        self.answered(at);
        result?;
        Ok(true)
    }

    async fn send_update(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: Option<Vec<serde_json::Value>>,
    ) -> Result<(), SlackError> {
        const METHOD: &str = "chat.update";
        let content = content(text, blocks).map_err(|e| self.invalid(METHOD, e))?;
        let req = SlackApiChatUpdateRequest::new(
            SlackChannelId(channel.to_string()),
            content,
            SlackTs(ts.to_string()),
        );
        let token = self.token(&self.bot_token, true);
        let session = self.client.open_session(&token);
        self.call(METHOD, session.chat_update(&req)).await?;
        Ok(())
    }

    /// `chat.postEphemeral`: a message only `user` sees, in `channel` (in a thread when given).
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        thread_ts: Option<&str>,
        text: &str,
        blocks: Option<Vec<serde_json::Value>>,
    ) -> Result<(), SlackError> {
        const METHOD: &str = "chat.postEphemeral";
        let content = content(text, blocks).map_err(|e| self.invalid(METHOD, e))?;
        let req = SlackApiChatPostEphemeralRequest::new(
            SlackChannelId(channel.to_string()),
            SlackUserId(user.to_string()),
            content,
        )
        .opt_thread_ts(thread_ts.map(|t| SlackTs(t.to_string())));
        let token = self.token(&self.bot_token, true);
        let session = self.client.open_session(&token);
        self.call(METHOD, session.chat_post_ephemeral(&req)).await?;
        Ok(())
    }

    /// `chat.getPermalink`: the link to the message `ts` in `channel`.
    pub async fn permalink(&self, channel: &str, ts: &str) -> Result<Url, SlackError> {
        let req = SlackApiChatGetPermalinkRequest::new(
            SlackChannelId(channel.to_string()),
            SlackTs(ts.to_string()),
        );
        let token = self.token(&self.bot_token, true);
        let session = self.client.open_session(&token);
        Ok(self
            .call("chat.getPermalink", session.chat_get_permalink(&req))
            .await?
            .permalink)
    }

    /// `reactions.add`: the bot reacts with `name` (an emoji name without colons, e.g.
    /// `white_check_mark`) to the message `ts` in `channel`. Slack's `already_reacted` is not
    /// an error: the reaction is there, which is what was asked.
    pub async fn add_reaction(
        &self,
        channel: &str,
        ts: &str,
        name: &str,
    ) -> Result<(), SlackError> {
        let req = SlackApiReactionsAddRequest::new(
            SlackChannelId(channel.to_string()),
            SlackReactionName(name.to_string()),
            SlackTs(ts.to_string()),
        );
        let token = self.token(&self.bot_token, true);
        let session = self.client.open_session(&token);
        match self
            .call("reactions.add", session.reactions_add(&req))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("already_reacted") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `views.open`: opens the modal `view` (Block Kit JSON) for the user whose interaction gave
    /// `trigger_id` (usable once, within 3 s). Returns the view id Slack gave it.
    pub async fn open_view(
        &self,
        trigger_id: &str,
        view: serde_json::Value,
    ) -> Result<String, SlackError> {
        const METHOD: &str = "views.open";
        let view: SlackView = serde_json::from_value(view).map_err(|source| {
            self.invalid(
                METHOD,
                SlackError::InvalidBlocks {
                    index: 0,
                    reason: "the view is not decodable as a modal",
                    source: Some(source),
                },
            )
        })?;
        let req = SlackApiViewsOpenRequest::new(SlackTriggerId(trigger_id.to_string()), view);
        let token = self.token(&self.bot_token, true);
        let session = self.client.open_session(&token);
        let res = self.call(METHOD, session.views_open(&req)).await?;
        Ok(res.view.state_params.id.0)
    }

    /// `usergroups.users.list`: the user ids (`U…`) in the user group `group_id` (`S…`).
    /// Slack allows about 20 calls a minute (tier 2): callers should cache the answer.
    pub async fn usergroup_members(&self, group_id: &str) -> Result<Vec<String>, SlackError> {
        let req = SlackApiUserGroupsUsersListRequest::new(SlackUserGroupId(group_id.to_string()));
        let token = self.token(&self.bot_token, true);
        let session = self.client.open_session(&token);
        let res = self
            .call("usergroups.users.list", session.usergroups_users_list(&req))
            .await?;
        Ok(res.users.into_iter().map(|u| u.0).collect())
    }
}

/// Text plus optional Block Kit JSON as slack-morphism content.
fn content(
    text: &str,
    blocks: Option<Vec<serde_json::Value>>,
) -> Result<SlackMessageContent, SlackError> {
    let blocks = blocks.map(to_blocks).transpose()?;
    Ok(SlackMessageContent::new()
        .with_text(text.to_string())
        .opt_blocks(blocks))
}

/// Converts Block Kit JSON values to slack-morphism blocks. A block whose `type` the crate does
/// not model, or whose fields do not match its type (which the crate would keep as an opaque
/// `Unknown` block and Slack would then refuse), is an error here, naming only its position.
fn to_blocks(values: Vec<serde_json::Value>) -> Result<Vec<SlackBlock>, SlackError> {
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            if !value.is_object() {
                return Err(SlackError::InvalidBlocks {
                    index,
                    reason: "a block must be a JSON object",
                    source: None,
                });
            }
            match serde_json::from_value::<SlackBlock>(value) {
                Ok(SlackBlock::Unknown(_)) => Err(SlackError::InvalidBlocks {
                    index,
                    reason: "unknown block type, or fields that do not match the type",
                    source: None,
                }),
                Ok(block) => Ok(block),
                Err(source) => Err(SlackError::InvalidBlocks {
                    index,
                    reason: "not decodable as a block",
                    source: Some(source),
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn valid_blocks_convert_and_invalid_ones_name_their_position() {
        let ok = to_blocks(vec![
            json!({"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}),
            json!({"type": "divider"}),
            json!({"type": "actions", "elements": [{"type": "button", "action_id": "rerun",
                "text": {"type": "plain_text", "text": "Re-run"}, "value": "x"}]}),
        ]);
        assert_eq!(ok.map(|b| b.len()).ok(), Some(3));

        let cases = [
            json!("section"),
            json!({"type": "no_such_block"}),
            json!({"type": "header", "text": 42}),
            json!({"text": "no type"}),
        ];
        for bad in cases {
            let err = to_blocks(vec![json!({"type": "divider"}), bad.clone()]).err();
            match err {
                Some(SlackError::InvalidBlocks { index, .. }) => assert_eq!(index, 1, "{bad}"),
                other => panic!("{bad}: expected InvalidBlocks, got {other:?}"),
            }
        }
    }

    #[test]
    fn debug_never_shows_the_token() {
        let url = Url::parse("http://127.0.0.1:9/api").expect("static url");
        let web = SlackWeb::new(
            &url,
            Secret::new("xoxb-very-secret-value"),
            Metrics::new(),
            &Net::direct(),
        )
        .expect("client builds");
        assert!(!format!("{web:?}").contains("very-secret"));
    }

    fn api_error(code: &str, body: &str) -> SlackError {
        SlackError::from_client(
            "chat.update",
            SlackClientError::ApiError(
                slack_morphism::errors::SlackClientApiError::new(code.to_string())
                    .with_http_response_body(body.to_string()),
            ),
        )
    }

    #[test]
    fn refusals_keep_slacks_messages_and_say_whether_retrying_or_going_on_can_help() {
        let refused = api_error(
            "invalid_blocks",
            r#"{"ok":false,"error":"invalid_blocks","response_metadata":{"messages":["[ERROR] must be unique [json-pointer:/blocks/9/elements/1/action_id]"]}}"#,
        );
        assert_eq!(
            refused.response_messages(),
            ["[ERROR] must be unique [json-pointer:/blocks/9/elements/1/action_id]"]
        );
        assert!(!refused.is_retryable() && !refused.is_token_refused());
        assert!(api_error("msg_too_long", "not json")
            .response_messages()
            .is_empty());

        let revoked = api_error("token_revoked", r#"{"ok":false,"error":"token_revoked"}"#);
        assert!(revoked.is_token_refused() && revoked.is_fatal());
        assert!(revoked.fatal_line().ends_with("check SLACK_BOT_TOKEN"));
        // A missing scope is refused for one method, not the token as a whole.
        assert!(!api_error("missing_scope", "{}").is_token_refused());

        let timeout = SlackError::Timeout {
            method: "chat.update",
            after: Duration::from_secs(10),
        };
        assert!(timeout.is_retryable() && !timeout.is_fatal());
        assert_eq!(timeout.kind(), "timeout");
        assert_eq!(
            timeout.to_string(),
            "Slack API chat.update did not answer within 10s"
        );
    }
}
