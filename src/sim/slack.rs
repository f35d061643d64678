//! A fake Slack on 127.0.0.1 that speaks the real protocols: the Web API over HTTP and Socket
//! Mode over WebSocket, for the tests and `linkbot demo`.
//!
//! Start it with [`SlackSim::start`], point the bot's `[slack] api_url` at
//! [`SlackSim::base_url`] and use [`SlackSim::bot_token`] / [`SlackSim::app_token`]:
//! - Web API (`/api/<method>`; JSON bodies, form bodies and GET query strings, as slack-morphism
//!   sends them): `auth.test`, `apps.connections.open` (app token; returns a one-time
//!   `ws://127.0.0.1:…/link/?ticket=N`), `chat.postMessage` (increasing `ts`), `chat.update`
//!   (every version kept), `chat.postEphemeral`, `chat.getPermalink`, `usergroups.users.list`,
//!   `views.open` (a modal, with a `trigger_id` from an envelope pushed here, usable once and
//!   within 3 s — [`SlackSim::set_trigger_ttl`] shortens that for tests; a view over 250 KB, or a
//!   repeated `external_id`, is refused as Slack refuses it).
//!   Messages and views are checked against Slack's Block Kit rules ([`super::blockkit`]) and
//!   refused exactly as Slack refuses them: HTTP 200, `{"ok":false,"error":"invalid_blocks",
//!   "response_metadata":{"messages":["[ERROR] … [json-pointer:/blocks/…]"]}}` (`msg_too_long`,
//!   `msg_blocks_too_long`, `invalid_arguments` for views); every refusal is recorded
//!   ([`SimSlackState::refusals`]).
//!   A wrong or missing token answers `invalid_auth`/`not_authed`; an unknown method
//!   `unknown_method`. [`SlackSim::fail_next`] injects failures (HTTP 429 + `Retry-After`, a refusal
//!   with `response_metadata.messages`, a bare 5xx, a stall); [`SlackSim::fail_matching`] fails
//!   every call carrying a given text until cleared. `chat.update` without `blocks`
//!   keeps the message's blocks and an empty list removes them, as Slack documents.
//! - Socket Mode: each connection gets a `hello` (with the fields slack-morphism's models
//!   require). [`SlackSim::push`] sends an envelope to one live connection (round robin) and the
//!   ack is recorded with the time from send to ack ([`SimAck`]). [`SlackSim::disconnect_all`]
//!   sends `disconnect` then closes gracefully, still reading acks; [`SlackSim::drop_all`] cuts
//!   TCP without a frame. TCP_NODELAY is set so the fake adds no Nagle delay of its own.
//! - Envelope builders ([`app_mention`], [`message`], [`slash_command`], [`block_actions`],
//!   [`view_submission`] with [`view_state`], [`with_retry`]) return realistic envelopes
//!   modelled on Slack's own SDK fixtures, using the default ids of [`SimSlackConfig`].
//! - Everything is recorded for assertions; `wait_*` helpers wake on a `Notify`, never poll.
//!
//! The sim stops when the handle is dropped (or [`SlackSim::shutdown`]). It is a test double:
//! it must NOT be used by production code paths, and it never reaches beyond 127.0.0.1. It does
//! not import slack-morphism: payloads are built with `serde_json`.

use super::blockkit::{self, Refusal};
use crate::secret::Secret;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as WsRequest, Response as WsResponse,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use url::Url;

/// Default team id of the fake workspace.
pub const SIM_TEAM_ID: &str = "T0SIMTEAM";
/// Default app id of linkbot in the fake workspace.
pub const SIM_APP_ID: &str = "A0LINKBOT";
/// Default bot user id of linkbot.
pub const SIM_BOT_USER_ID: &str = "U0LINKBOT";
/// Default bot id of linkbot.
pub const SIM_BOT_ID: &str = "B0LINKBOT";

/// How long [`SlackSim::push`] waits for a live connection.
const PUSH_WAIT: Duration = Duration::from_secs(5);
/// How long a connection told to disconnect keeps reading acks before it closes TCP.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Identity and credentials of the fake workspace.
#[derive(Clone, Debug)]
pub struct SimSlackConfig {
    /// The bot token (`xoxb-…`) chat.*, auth.test and usergroups.* accept.
    pub bot_token: String,
    /// The app-level token (`xapp-…`) apps.connections.open accepts.
    pub app_token: String,
    /// Team id.
    pub team_id: String,
    /// App id (in `hello` and envelopes).
    pub app_id: String,
    /// Bot user id (`auth.test` user_id, author of posted messages).
    pub bot_user_id: String,
    /// Bot id (`auth.test` bot_id).
    pub bot_id: String,
}

impl Default for SimSlackConfig {
    fn default() -> Self {
        SimSlackConfig {
            bot_token: "xoxb-sim-0000-bot-token".to_string(),
            app_token: "xapp-sim-0000-app-token".to_string(),
            team_id: SIM_TEAM_ID.to_string(),
            app_id: SIM_APP_ID.to_string(),
            bot_user_id: SIM_BOT_USER_ID.to_string(),
            bot_id: SIM_BOT_ID.to_string(),
        }
    }
}

/// A failure [`SlackSim::fail_next`] makes a method answer instead of its normal answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// HTTP 429, `Retry-After: retry_after_secs`, body `{"ok":false,"error":"ratelimited"}`.
    RateLimited {
        /// Seconds in the `Retry-After` header.
        retry_after_secs: u64,
    },
    /// HTTP 200 with `{"ok":false,"error":<code>}`.
    Error(String),
    /// HTTP 200 with `{"ok":false,"error":<code>,"response_metadata":{"messages":[…]}}`, as
    /// Slack answers `invalid_blocks` (each message names a JSON pointer).
    Rejected {
        /// Slack's error code.
        code: String,
        /// `response_metadata.messages`.
        messages: Vec<String>,
    },
    /// A bare HTTP status (e.g. 500) with an empty body.
    Status(u16),
    /// No answer for this long (a stalled Slack), then the normal answer. A client that
    /// gives up earlier just closes the connection.
    Stall(Duration),
}

/// One version of a message's content.
#[derive(Clone, Debug, PartialEq)]
pub struct SimMessageVersion {
    /// Text.
    pub text: Option<String>,
    /// Block Kit blocks (the JSON array as posted).
    pub blocks: Option<Value>,
}

/// A message the bot posted.
#[derive(Clone, Debug, PartialEq)]
pub struct SimMessage {
    /// Channel id.
    pub channel: String,
    /// The message's `ts` (for an ephemeral message, its `message_ts`).
    pub ts: String,
    /// The thread it was posted in, if any.
    pub thread_ts: Option<String>,
    /// Current text.
    pub text: Option<String>,
    /// Current blocks.
    pub blocks: Option<Value>,
    /// Author (the bot user id).
    pub user: String,
    /// Every version, oldest first: the post, then each `chat.update`.
    pub versions: Vec<SimMessageVersion>,
    /// For `chat.postEphemeral`: the only user who sees it.
    pub ephemeral_to: Option<String>,
}

/// A recorded Web API call (tokens are not recorded).
#[derive(Clone, Debug, PartialEq)]
pub struct SimCall {
    /// The method (`chat.update`).
    pub method: String,
    /// The parameters, from JSON body, form body and query string merged.
    pub params: Value,
}

/// A call the sim refused as Slack would (Block Kit, text length, trigger id).
#[derive(Clone, Debug, PartialEq)]
pub struct SimRefusal {
    /// The method (`chat.update`).
    pub method: String,
    /// Slack's error code (`invalid_blocks`).
    pub error: String,
    /// `response_metadata.messages` (`[ERROR] … [json-pointer:…]`).
    pub messages: Vec<String>,
}

/// A modal opened with `views.open`.
#[derive(Clone, Debug, PartialEq)]
pub struct SimView {
    /// The view id the sim gave it.
    pub id: String,
    /// The trigger id it was opened with.
    pub trigger_id: String,
    /// The user whose interaction issued the trigger (the one who sees the modal).
    pub user: Option<String>,
    /// The view as sent.
    pub view: Value,
}

/// A trigger id Slack issued: when, and for whom.
#[derive(Clone, Debug)]
struct Trigger {
    issued: Instant,
    user: Option<String>,
}

/// How long a trigger id can be exchanged: 3 s after Slack sent the interaction carrying it
/// (docs.slack.dev, modals; views.open answers `expired_trigger_id` after that).
pub const TRIGGER_TTL: Duration = Duration::from_secs(3);

/// [views.open] "view_too_large: … the provided view is greater than 250kb."
pub const MAX_VIEW_BYTES: usize = 250 * 1024;

/// A recorded Socket Mode ack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimAck {
    /// The acked envelope id.
    pub envelope_id: String,
    /// Time from the fake writing the envelope to reading its ack (None for an envelope this
    /// connection never sent).
    pub latency: Option<Duration>,
    /// Which connection carried it.
    pub connection: u64,
}

/// Errors of the sim's own API.
#[derive(Debug, thiserror::Error)]
pub enum SimSlackError {
    /// No live Socket Mode connection appeared within the wait.
    #[error("no live Socket Mode connection to push to")]
    NoConnection,
    /// The envelope has no string `envelope_id`.
    #[error("the envelope has no envelope_id")]
    NoEnvelopeId,
    /// Binding or serving failed.
    #[error("the Slack sim could not start")]
    Io(#[from] std::io::Error),
    /// The bound address did not form a URL.
    #[error("the Slack sim could not form its URL")]
    Url(#[from] url::ParseError),
}

enum ConnCmd {
    Send { envelope_id: String, frame: String },
    Disconnect { reason: String },
    Warn { reason: String },
    Drop,
}

struct Conn {
    id: u64,
    tx: mpsc::UnboundedSender<ConnCmd>,
    live: bool,
}

/// Everything the fake has seen, for [`SlackSim::wait_until`] predicates.
#[derive(Default)]
pub struct SimSlackState {
    messages: Vec<SimMessage>,
    calls: Vec<SimCall>,
    acks: Vec<SimAck>,
    pushed: Vec<String>,
    conns: Vec<Conn>,
    connections_opened: u64,
    rr: usize,
    next_ts: u64,
    next_conn: u64,
    tickets: HashSet<String>,
    usergroups: HashMap<String, Vec<String>>,
    failures: HashMap<String, VecDeque<Failure>>,
    /// Failures answered to every call of a method whose parameters contain a text, until
    /// cleared ([`SlackSim::fail_matching`]).
    failing: Vec<(String, String, Failure)>,
    refusals: Vec<SimRefusal>,
    /// Trigger ids Slack issued (with each interaction and slash command): when, and for whom.
    triggers: HashMap<String, Trigger>,
    used_triggers: HashSet<String>,
    /// `external_id`s of the views opened (unique per workspace).
    external_ids: HashSet<String>,
    /// How long a trigger id lasts, when a test changed it (else [`TRIGGER_TTL`]).
    trigger_ttl: Option<Duration>,
    views: Vec<SimView>,
    /// Messages people posted (pushed as events), which Slack knows and the bot may react to.
    people_messages: HashSet<(String, String)>,
    reactions: Vec<SimReaction>,
    /// Slack's per-method tiers, enforced when set ([`SlackSim::enforce_tiers`]).
    tiers: Option<Tiers>,
}

/// Slack's documented Web API tiers, per method per app per workspace: Tier 1 "1+ per minute",
/// Tier 2 "20+", Tier 3 "50+", Tier 4 "100+". The fake takes the floor of each ("when you
/// cannot tell, refuse") and counts calls in a sliding window, answering HTTP 429 with
/// `Retry-After` past it.
/// `chat.postMessage` (Special tier: about one a second per channel, "short bursts >1 allowed",
/// with no documented burst size) and `auth.test` are not counted.
#[derive(Debug)]
struct Tiers {
    window: Duration,
    sent: HashMap<&'static str, VecDeque<std::time::Instant>>,
    refused: HashMap<String, u64>,
}

/// The tier's allowance of a method per window (a minute at Slack), `None` when not counted.
pub fn tier_allowance(method: &str) -> Option<u32> {
    match method {
        // Tier 1, "1+ per minute; a small amount of burst behavior is tolerated": the
        // smallest burst, 2 (the transport opens its two connections at start).
        "apps.connections.open" => Some(2),
        "usergroups.users.list" => Some(20),
        "chat.update" | "reactions.add" => Some(50),
        "chat.postEphemeral" | "chat.getPermalink" | "views.open" => Some(100),
        _ => None,
    }
}

impl Tiers {
    /// Counts a call of `method` now: `Err(retry_after_secs)` when it is over its allowance.
    fn admit(&mut self, method: &str) -> Result<(), u64> {
        let Some(limit) = tier_allowance(method) else {
            return Ok(());
        };
        let Some(key) = METHODS.iter().find(|m| **m == method) else {
            return Ok(());
        };
        let now = std::time::Instant::now();
        let sent = self.sent.entry(key).or_default();
        while sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            sent.pop_front();
        }
        if sent.len() < limit as usize {
            sent.push_back(now);
            return Ok(());
        }
        *self.refused.entry(method.to_string()).or_default() += 1;
        let oldest = sent.front().copied().unwrap_or(now);
        let left = self.window.saturating_sub(now.duration_since(oldest));
        Err(left.as_secs().max(1))
    }
}

/// A reaction the bot added with `reactions.add`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimReaction {
    /// The message's channel.
    pub channel: String,
    /// The message's ts.
    pub ts: String,
    /// The emoji name, without colons (`white_check_mark`).
    pub name: String,
}

impl SimSlackState {
    /// Every message posted (including ephemeral ones), in posting order.
    pub fn messages(&self) -> &[SimMessage] {
        &self.messages
    }

    /// How many calls of `method` the enforced tiers answered 429 ([`SlackSim::enforce_tiers`]).
    pub fn rate_limited(&self, method: &str) -> u64 {
        self.tiers
            .as_ref()
            .and_then(|t| t.refused.get(method).copied())
            .unwrap_or(0)
    }

    /// Every reaction the bot added, in order.
    pub fn reactions(&self) -> &[SimReaction] {
        &self.reactions
    }

    /// The non-ephemeral message `ts` in `channel`.
    pub fn message(&self, channel: &str, ts: &str) -> Option<&SimMessage> {
        self.messages
            .iter()
            .find(|m| m.channel == channel && m.ts == ts && m.ephemeral_to.is_none())
    }

    /// Messages posted in the thread `thread_ts` of `channel`, in order.
    pub fn thread(&self, channel: &str, thread_ts: &str) -> Vec<&SimMessage> {
        self.messages
            .iter()
            .filter(|m| m.channel == channel && m.thread_ts.as_deref() == Some(thread_ts))
            .collect()
    }

    /// Parameters of every call to `method` (including failed and retried attempts).
    pub fn calls(&self, method: &str) -> Vec<&Value> {
        self.calls
            .iter()
            .filter(|c| c.method == method)
            .map(|c| &c.params)
            .collect()
    }

    /// Every call refused for what it carried (Block Kit, text length, trigger id), in order.
    pub fn refusals(&self) -> &[SimRefusal] {
        &self.refusals
    }

    /// Every modal opened with `views.open`, in order.
    pub fn views(&self) -> &[SimView] {
        &self.views
    }

    /// Every ack received, in order (an envelope acked twice appears twice).
    pub fn acks(&self) -> &[SimAck] {
        &self.acks
    }

    /// Whether `envelope_id` was acked.
    pub fn acked(&self, envelope_id: &str) -> bool {
        self.acks.iter().any(|a| a.envelope_id == envelope_id)
    }

    /// Envelope ids pushed so far, in order.
    pub fn pushed(&self) -> &[String] {
        &self.pushed
    }

    /// Live Socket Mode connections (hello sent, not told to disconnect, not closed).
    pub fn connection_count(&self) -> usize {
        self.conns.iter().filter(|c| c.live).count()
    }

    /// How many Socket Mode connections were ever accepted.
    pub fn connections_opened(&self) -> u64 {
        self.connections_opened
    }

    fn next_ts(&mut self) -> String {
        self.next_ts += 1;
        let micros_total = self.next_ts * 100;
        format!(
            "{}.{:06}",
            1_700_000_000 + micros_total / 1_000_000,
            micros_total % 1_000_000
        )
    }
}

struct Inner {
    cfg: SimSlackConfig,
    state: Mutex<SimSlackState>,
    changed: Notify,
    http_base: String,
    ws_base: String,
    api_url: Url,
    stop: CancellationToken,
    /// TCP connections accepted by the Web API (plain HTTP only).
    web_connections: std::sync::atomic::AtomicU64,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, SimSlackState> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Runs `f` on the state and wakes every waiter.
    fn update<T>(&self, f: impl FnOnce(&mut SimSlackState) -> T) -> T {
        let out = f(&mut self.lock());
        self.changed.notify_waiters();
        out
    }

    /// Waits until `f` returns `Some`, re-checking on every state change, until `deadline`.
    async fn wait_for<T>(
        &self,
        deadline: Instant,
        mut f: impl FnMut(&mut SimSlackState) -> Option<T>,
    ) -> Option<T> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(out) = f(&mut self.lock()) {
                return Some(out);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return f(&mut self.lock());
            }
        }
    }
}

/// The running fake Slack. Dropping it stops both servers.
pub struct SlackSim {
    inner: Arc<Inner>,
}

impl Drop for SlackSim {
    fn drop(&mut self) {
        self.inner.stop.cancel();
    }
}

impl SlackSim {
    /// Binds the Web API and the Socket Mode listener on `127.0.0.1:0` and starts serving.
    pub async fn start(cfg: SimSlackConfig) -> Result<SlackSim, SimSlackError> {
        SlackSim::start_with_tls(cfg, None).await
    }

    /// The same, serving the Web API over HTTPS and Socket Mode over WSS with `tls` when given.
    pub async fn start_with_tls(
        cfg: SimSlackConfig,
        tls: Option<super::tls::SimTls>,
    ) -> Result<SlackSim, SimSlackError> {
        let http = TcpListener::bind("127.0.0.1:0").await?;
        let ws = TcpListener::bind("127.0.0.1:0").await?;
        let stop = CancellationToken::new();
        let (http_scheme, ws_scheme) = if tls.is_some() {
            ("https", "wss")
        } else {
            ("http", "ws")
        };
        let http_base = format!("{http_scheme}://{}", http.local_addr()?);
        let inner = Arc::new(Inner {
            cfg,
            state: Mutex::new(SimSlackState::default()),
            changed: Notify::new(),
            api_url: Url::parse(&format!("{http_base}/api"))?,
            http_base,
            ws_base: format!("{ws_scheme}://{}", ws.local_addr()?),
            stop: stop.clone(),
            web_connections: std::sync::atomic::AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/api/{method}", any(api))
            .with_state(inner.clone());
        let http_stop = stop.clone();
        let http_tls = tls.clone();
        let counted = inner.clone();
        tokio::spawn(async move {
            let served = match http_tls {
                None => {
                    let http = http.tap_io(move |tcp| {
                        let _ = tcp.set_nodelay(true);
                        counted
                            .web_connections
                            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    });
                    axum::serve(http, app)
                        .with_graceful_shutdown(http_stop.cancelled_owned())
                        .await
                }
                Some(tls) => {
                    super::tls::serve(http, app, Some(tls), http_stop.cancelled_owned()).await
                }
            };
            if let Err(err) = served {
                tracing::warn!(error = %err, "Slack sim HTTP server stopped");
            }
        });
        tokio::spawn(accept_loop(ws, inner.clone(), tls));
        Ok(SlackSim { inner })
    }

    /// The Web API base URL (`http://127.0.0.1:PORT/api`): the bot's `[slack] api_url`.
    pub fn base_url(&self) -> Url {
        self.inner.api_url.clone()
    }

    /// The bot token the sim accepts.
    pub fn bot_token(&self) -> Secret {
        Secret::new(self.inner.cfg.bot_token.clone())
    }

    /// The app-level token the sim accepts for `apps.connections.open`.
    pub fn app_token(&self) -> Secret {
        Secret::new(self.inner.cfg.app_token.clone())
    }

    /// The workspace identity in use.
    pub fn config(&self) -> &SimSlackConfig {
        &self.inner.cfg
    }

    /// Sets the members of user group `id` for `usergroups.users.list`.
    pub fn set_usergroup(&self, id: &str, members: &[&str]) {
        let members = members.iter().map(|m| m.to_string()).collect();
        self.inner
            .update(|s| s.usergroups.insert(id.to_string(), members));
    }

    /// How many TCP connections the Web API accepted so far (plain HTTP only): how many a
    /// client opened, since a pooled connection is accepted once.
    pub fn web_connections_accepted(&self) -> u64 {
        self.inner
            .web_connections
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Enforces Slack's method tiers ([`tier_allowance`]) in a sliding `window`: a minute is
    /// Slack's; tests scale it down so that a storm of edits takes seconds. A call past its
    /// allowance is answered 429 `ratelimited` with `Retry-After` and counted
    /// ([`SlackSim::rate_limited`]).
    pub fn enforce_tiers(&self, window: Duration) {
        self.inner.update(|s| {
            s.tiers = Some(Tiers {
                window,
                sent: HashMap::new(),
                refused: HashMap::new(),
            })
        });
    }

    /// How many calls of each method the enforced tiers answered 429.
    pub fn rate_limited(&self) -> HashMap<String, u64> {
        self.inner
            .lock()
            .tiers
            .as_ref()
            .map(|t| t.refused.clone())
            .unwrap_or_default()
    }

    /// Makes the next `n` calls to `method` answer `failure`.
    pub fn fail_next(&self, method: &str, n: usize, failure: Failure) {
        self.inner.update(|s| {
            let queue = s.failures.entry(method.to_string()).or_default();
            queue.extend(std::iter::repeat_n(failure, n));
        });
    }

    /// Makes every call to `method` whose parameters contain `needle` (as JSON text) answer
    /// `failure`, until [`SlackSim::clear_failing`].
    pub fn fail_matching(&self, method: &str, needle: &str, failure: Failure) {
        self.inner.update(|s| {
            s.failing
                .push((method.to_string(), needle.to_string(), failure));
        });
    }

    /// Ends every [`SlackSim::fail_matching`].
    pub fn clear_failing(&self) {
        self.inner.update(|s| s.failing.clear());
    }

    /// A snapshot of every message posted.
    pub fn messages(&self) -> Vec<SimMessage> {
        self.inner.lock().messages.clone()
    }

    /// Parameters of every call to `method`, in order (failed and retried attempts included).
    pub fn calls(&self, method: &str) -> Vec<Value> {
        self.inner
            .lock()
            .calls(method)
            .into_iter()
            .cloned()
            .collect()
    }

    /// Every call refused so far for what it carried (see [`SimSlackState::refusals`]).
    pub fn refusals(&self) -> Vec<SimRefusal> {
        self.inner.lock().refusals.clone()
    }

    /// Every modal opened so far.
    pub fn views(&self) -> Vec<SimView> {
        self.inner.lock().views.clone()
    }

    /// Every reaction the bot added, in order.
    pub fn reactions(&self) -> Vec<SimReaction> {
        self.inner.lock().reactions.clone()
    }

    /// Every ack received so far.
    pub fn acks(&self) -> Vec<SimAck> {
        self.inner.lock().acks.clone()
    }

    /// Live Socket Mode connections.
    pub fn connection_count(&self) -> usize {
        self.inner.lock().connection_count()
    }

    /// Waits (at most `timeout`) until `pred` holds for the state; true if it did.
    pub async fn wait_until(
        &self,
        mut pred: impl FnMut(&SimSlackState) -> bool,
        timeout: Duration,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        self.inner
            .wait_for(deadline, |s| pred(s).then_some(()))
            .await
            .is_some()
    }

    /// Waits (at most `timeout`) for the ack of `envelope_id`.
    pub async fn wait_ack(&self, envelope_id: &str, timeout: Duration) -> Option<SimAck> {
        let deadline = Instant::now() + timeout;
        self.inner
            .wait_for(deadline, |s| {
                s.acks
                    .iter()
                    .find(|a| a.envelope_id == envelope_id)
                    .cloned()
            })
            .await
    }

    /// Waits (at most `timeout`) until at least `n` connections are live.
    pub async fn wait_connections(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(|s| s.connection_count() >= n, timeout)
            .await
    }

    /// Sets how long a trigger id can be exchanged (Slack: [`TRIGGER_TTL`]); `Duration::ZERO`
    /// makes every `views.open` answer `expired_trigger_id`, as if the bot had waited too long
    /// (tests use this instead of sleeping).
    pub fn set_trigger_ttl(&self, ttl: Duration) {
        self.inner.update(|s| s.trigger_ttl = Some(ttl));
    }

    /// Sends `envelope` to one live connection (round robin), waiting up to 5 s for one.
    /// Returns its envelope id.
    pub async fn push(&self, envelope: Value) -> Result<String, SimSlackError> {
        let envelope_id = envelope
            .get("envelope_id")
            .and_then(Value::as_str)
            .ok_or(SimSlackError::NoEnvelopeId)?
            .to_string();
        let frame = envelope.to_string();
        // Slack issues a trigger id with each interaction and slash command; views.open takes
        // only those, once.
        if let Some(trigger) = envelope
            .pointer("/payload/trigger_id")
            .and_then(Value::as_str)
        {
            let trigger = trigger.to_string();
            let user = envelope
                .pointer("/payload/user/id")
                .or_else(|| envelope.pointer("/payload/user_id"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let issued = Trigger {
                issued: Instant::now(),
                user,
            };
            self.inner.update(|s| s.triggers.insert(trigger, issued));
        }
        // A message event is a message Slack now holds: the bot may react to it.
        if let (Some(channel), Some(ts)) = (
            envelope
                .pointer("/payload/event/channel")
                .and_then(Value::as_str),
            envelope
                .pointer("/payload/event/ts")
                .and_then(Value::as_str),
        ) {
            let key = (channel.to_string(), ts.to_string());
            self.inner.update(|s| s.people_messages.insert(key));
        }
        let deadline = Instant::now() + PUSH_WAIT;
        let sent = self
            .inner
            .wait_for(deadline, |s| {
                let live: Vec<usize> = (0..s.conns.len()).filter(|&i| s.conns[i].live).collect();
                if live.is_empty() {
                    return None;
                }
                for k in 0..live.len() {
                    let i = live[(s.rr + k) % live.len()];
                    let cmd = ConnCmd::Send {
                        envelope_id: envelope_id.clone(),
                        frame: frame.clone(),
                    };
                    if s.conns[i].tx.send(cmd).is_ok() {
                        s.rr = s.rr.wrapping_add(k + 1);
                        s.pushed.push(envelope_id.clone());
                        return Some(());
                    }
                    s.conns[i].live = false;
                }
                None
            })
            .await;
        self.inner.changed.notify_waiters();
        sent.map(|()| envelope_id)
            .ok_or(SimSlackError::NoConnection)
    }

    /// Sends `{"type":"disconnect","reason":reason,…}` on every live connection, then closes
    /// them gracefully (acks still in flight are read for a short grace period).
    pub fn disconnect_all(&self, reason: &str) {
        self.inner.update(|s| {
            for conn in s.conns.iter_mut().filter(|c| c.live) {
                conn.live = false;
                let _ = conn.tx.send(ConnCmd::Disconnect {
                    reason: reason.to_string(),
                });
            }
        });
    }

    /// Sends a `disconnect` frame with `reason` on every live connection but keeps them open and
    /// still chosen by [`SlackSim::push`], as Slack does when it warns before refreshing a
    /// connection: the client must keep reading (and acking) the old sockets until it closes them.
    pub fn warn_disconnect_all(&self, reason: &str) {
        self.inner.update(|s| {
            for conn in s.conns.iter().filter(|c| c.live) {
                let _ = conn.tx.send(ConnCmd::Warn {
                    reason: reason.to_string(),
                });
            }
        });
    }

    /// Closes every connection's TCP stream without a WebSocket frame.
    pub fn drop_all(&self) {
        self.inner.update(|s| {
            for conn in s.conns.iter_mut() {
                conn.live = false;
                let _ = conn.tx.send(ConnCmd::Drop);
            }
        });
    }

    /// Stops both servers and closes every connection.
    pub fn shutdown(self) {
        self.inner.stop.cancel();
    }
}

// ---------------------------------------------------------------------------------------------
// Web API

async fn api(
    State(inner): State<Arc<Inner>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let mut params = Map::new();
    if let Some(query) = query.as_deref() {
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            params.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") {
        if let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(&body) {
            params.extend(object);
        }
    } else if !body.is_empty() {
        for (k, v) in url::form_urlencoded::parse(&body) {
            params.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    // Form bodies carry JSON arrays as strings.
    for key in ["blocks", "attachments", "view"] {
        if let Some(Value::String(text)) = params.get(key) {
            if let Ok(parsed) = serde_json::from_str::<Value>(text) {
                params.insert(key.to_string(), parsed);
            }
        }
    }
    let form_token = match params.remove("token") {
        Some(Value::String(token)) => Some(token),
        _ => None,
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
        .or(form_token);
    inner.handle(&method, token.as_deref(), params).await
}

fn ok(mut body: Value) -> Response {
    if let Some(object) = body.as_object_mut() {
        object.insert("ok".to_string(), Value::Bool(true));
    }
    Json(body).into_response()
}

fn slack_error(code: &str) -> Response {
    Json(json!({"ok": false, "error": code})).into_response()
}

/// Slack's answer to a call refused for what it carried.
fn refused(s: &mut SimSlackState, method: &str, refusal: &Refusal) -> Response {
    let messages = refusal.messages();
    s.refusals.push(SimRefusal {
        method: method.to_string(),
        error: refusal.error().to_string(),
        messages: messages.clone(),
    });
    let mut body = json!({"ok": false, "error": refusal.error()});
    if !messages.is_empty() {
        body["response_metadata"] = json!({ "messages": messages });
    }
    Json(body).into_response()
}

fn str_param<'a>(params: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    params
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

const METHODS: [&str; 9] = [
    "auth.test",
    "apps.connections.open",
    "chat.postMessage",
    "chat.update",
    "chat.postEphemeral",
    "chat.getPermalink",
    "usergroups.users.list",
    "views.open",
    "reactions.add",
];

impl Inner {
    async fn handle(
        &self,
        method: &str,
        token: Option<&str>,
        params: Map<String, Value>,
    ) -> Response {
        if !METHODS.contains(&method) {
            return slack_error("unknown_method");
        }
        let response = self.update(|s| {
            s.calls.push(SimCall {
                method: method.to_string(),
                params: Value::Object(params.clone()),
            });
            if let Some(failure) = s.failures.get_mut(method).and_then(VecDeque::pop_front) {
                return Err(failure);
            }
            if !s.failing.is_empty() {
                let carried = Value::Object(params.clone()).to_string();
                if let Some((_, _, failure)) = s
                    .failing
                    .iter()
                    .find(|(m, needle, _)| m == method && carried.contains(needle.as_str()))
                {
                    return Err(failure.clone());
                }
            }
            if let Some(Err(retry_after_secs)) = s.tiers.as_mut().map(|t| t.admit(method)) {
                return Err(Failure::RateLimited { retry_after_secs });
            }
            Ok(self.answer(s, method, token, &params))
        });
        match response {
            Ok(response) => response,
            Err(Failure::RateLimited { retry_after_secs }) => {
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(json!({"ok": false, "error": "ratelimited"})),
                )
                    .into_response();
                if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
            Err(Failure::Error(code)) => slack_error(&code),
            Err(Failure::Rejected { code, messages }) => Json(json!({
                "ok": false,
                "error": code,
                "response_metadata": { "messages": messages },
            }))
            .into_response(),
            Err(Failure::Status(status)) => StatusCode::from_u16(status)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                .into_response(),
            Err(Failure::Stall(pause)) => {
                tokio::select! {
                    _ = self.stop.cancelled() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
                self.update(|s| self.answer(s, method, token, &params))
            }
        }
    }

    /// The normal answer: the token checked, then the method's work.
    fn answer(
        &self,
        s: &mut SimSlackState,
        method: &str,
        token: Option<&str>,
        params: &Map<String, Value>,
    ) -> Response {
        let expected = if method == "apps.connections.open" {
            &self.cfg.app_token
        } else {
            &self.cfg.bot_token
        };
        match token {
            None => slack_error("not_authed"),
            Some(t) if t != expected => slack_error("invalid_auth"),
            Some(_) => self.dispatch(s, method, params),
        }
    }

    fn bot_message(
        &self,
        ts: &str,
        thread_ts: Option<&str>,
        text: Option<&str>,
        blocks: Option<&Value>,
    ) -> Value {
        let mut message = json!({
            "type": "message",
            "ts": ts,
            "user": self.cfg.bot_user_id,
            "bot_id": self.cfg.bot_id,
            "app_id": self.cfg.app_id,
            "team": self.cfg.team_id,
            "text": text.unwrap_or(""),
        });
        if let Some(object) = message.as_object_mut() {
            if let Some(blocks) = blocks {
                object.insert("blocks".to_string(), blocks.clone());
            }
            if let Some(thread_ts) = thread_ts {
                object.insert(
                    "thread_ts".to_string(),
                    Value::String(thread_ts.to_string()),
                );
            }
        }
        message
    }

    fn dispatch(
        &self,
        s: &mut SimSlackState,
        method: &str,
        params: &Map<String, Value>,
    ) -> Response {
        let text = str_param(params, "text").map(str::to_string);
        let blocks = params.get("blocks").filter(|b| b.is_array()).cloned();
        if method.starts_with("chat.") && method != "chat.getPermalink" {
            let raw_text = params.get("text").and_then(Value::as_str);
            if let Err(refusal) = blockkit::validate_message(raw_text, params.get("blocks")) {
                return refused(s, method, &refusal);
            }
        }
        match method {
            "auth.test" => ok(json!({
                "url": format!("{}/", self.http_base),
                "team": "Sim Team",
                "user": "linkbot",
                "team_id": self.cfg.team_id,
                "user_id": self.cfg.bot_user_id,
                "bot_id": self.cfg.bot_id,
                "is_enterprise_install": false,
            })),
            "apps.connections.open" => {
                s.connections_opened += 1;
                let ticket = format!("sim-ticket-{}", s.connections_opened);
                s.tickets.insert(ticket.clone());
                ok(json!({ "url": format!("{}/link/?ticket={ticket}", self.ws_base) }))
            }
            "chat.postMessage" | "chat.postEphemeral" => {
                let Some(channel) = str_param(params, "channel") else {
                    return slack_error("channel_not_found");
                };
                let ephemeral_to = if method == "chat.postEphemeral" {
                    match str_param(params, "user") {
                        Some(user) => Some(user.to_string()),
                        None => return slack_error("user_not_found"),
                    }
                } else {
                    None
                };
                if text.is_none() && blocks.is_none() {
                    return slack_error("no_text");
                }
                let thread_ts = str_param(params, "thread_ts").map(str::to_string);
                let ts = s.next_ts();
                let version = SimMessageVersion {
                    text: text.clone(),
                    blocks: blocks.clone(),
                };
                s.messages.push(SimMessage {
                    channel: channel.to_string(),
                    ts: ts.clone(),
                    thread_ts: thread_ts.clone(),
                    text: text.clone(),
                    blocks: blocks.clone(),
                    user: self.cfg.bot_user_id.clone(),
                    versions: vec![version],
                    ephemeral_to: ephemeral_to.clone(),
                });
                if ephemeral_to.is_some() {
                    ok(json!({ "message_ts": ts }))
                } else {
                    let message = self.bot_message(
                        &ts,
                        thread_ts.as_deref(),
                        text.as_deref(),
                        blocks.as_ref(),
                    );
                    ok(json!({ "channel": channel, "ts": ts, "message": message }))
                }
            }
            "chat.update" => {
                let (Some(channel), Some(ts)) =
                    (str_param(params, "channel"), str_param(params, "ts"))
                else {
                    return slack_error("message_not_found");
                };
                if text.is_none() && blocks.is_none() {
                    return slack_error("no_text");
                }
                let Some(found) = s
                    .messages
                    .iter_mut()
                    .find(|m| m.channel == channel && m.ts == ts && m.ephemeral_to.is_none())
                else {
                    return slack_error("message_not_found");
                };
                // As Slack documents for chat.update: without `blocks` the message keeps its
                // blocks; an empty list removes them.
                let blocks = match blocks {
                    None => found.blocks.clone(),
                    Some(Value::Array(list)) if list.is_empty() => None,
                    given => given,
                };
                found.text = text.clone();
                found.blocks = blocks.clone();
                found.versions.push(SimMessageVersion {
                    text: text.clone(),
                    blocks: blocks.clone(),
                });
                let thread_ts = found.thread_ts.clone();
                let mut message = self.bot_message(ts, None, text.as_deref(), blocks.as_ref());
                if let Some(object) = message.as_object_mut() {
                    object.remove("ts");
                    object.remove("type");
                }
                let mut body = json!({ "channel": channel, "ts": ts, "text": text.unwrap_or_default(), "message": message });
                if let (Some(object), Some(thread_ts)) = (body.as_object_mut(), thread_ts) {
                    object.insert("thread_ts".to_string(), Value::String(thread_ts));
                }
                ok(body)
            }
            "chat.getPermalink" => {
                let (Some(channel), Some(ts)) = (
                    str_param(params, "channel"),
                    str_param(params, "message_ts"),
                ) else {
                    return slack_error("message_not_found");
                };
                // Messages people post (mentions, alerts) are not recorded here, but Slack has a
                // permalink for them too: any well-formed ts gets one.
                if ts.is_empty() || !ts.chars().all(|c| c.is_ascii_digit() || c == '.') {
                    return slack_error("message_not_found");
                }
                let thread = s.message(channel, ts).and_then(|m| m.thread_ts.clone());
                let digits: String = ts.chars().filter(char::is_ascii_digit).collect();
                let mut permalink = format!("{}/archives/{channel}/p{digits}", self.http_base);
                if let Some(thread_ts) = &thread {
                    permalink.push_str(&format!("?thread_ts={thread_ts}&cid={channel}"));
                }
                ok(json!({ "channel": channel, "permalink": permalink }))
            }
            "reactions.add" => {
                // Slack's order: the item, then the name, then the message, then duplicates.
                let (Some(channel), Some(ts)) =
                    (str_param(params, "channel"), str_param(params, "timestamp"))
                else {
                    return slack_error("no_item_specified");
                };
                let well_formed_ts = ts.split_once('.').is_some_and(|(a, b)| {
                    !a.is_empty()
                        && !b.is_empty()
                        && a.bytes().all(|c| c.is_ascii_digit())
                        && b.bytes().all(|c| c.is_ascii_digit())
                });
                if !well_formed_ts {
                    return slack_error("bad_timestamp");
                }
                // Emoji names are lower case letters, digits, `_`, `-`, `+` and `'`; colons
                // (`:white_check_mark:`) are not part of the name.
                let name = str_param(params, "name").unwrap_or("");
                let valid_name = !name.is_empty()
                    && name.len() <= 100
                    && name.bytes().all(|c| {
                        c.is_ascii_lowercase()
                            || c.is_ascii_digit()
                            || matches!(c, b'_' | b'-' | b'+' | b'\'')
                    });
                if !valid_name {
                    return slack_error("invalid_name");
                }
                let key = (channel.to_string(), ts.to_string());
                if s.message(channel, ts).is_none() && !s.people_messages.contains(&key) {
                    return slack_error("message_not_found");
                }
                let reaction = SimReaction {
                    channel: channel.to_string(),
                    ts: ts.to_string(),
                    name: name.to_string(),
                };
                if s.reactions.contains(&reaction) {
                    return slack_error("already_reacted");
                }
                s.reactions.push(reaction);
                ok(json!({}))
            }
            "views.open" => {
                let Some(trigger) = str_param(params, "trigger_id") else {
                    let refusal = Refusal::InvalidArguments(vec![blockkit::Problem {
                        pointer: "/trigger_id".into(),
                        message: "missing required field".into(),
                    }]);
                    return refused(s, method, &refusal);
                };
                // [views.open] errors: a trigger is exchanged once (`exchanged_trigger_id`),
                // within 3 s of its interaction (`expired_trigger_id`), and only one Slack
                // issued (`invalid_trigger_id`).
                let unusable = if s.used_triggers.contains(trigger) {
                    Some("exchanged_trigger_id")
                } else {
                    match s.triggers.get(trigger) {
                        None => Some("invalid_trigger_id"),
                        Some(t) if t.issued.elapsed() >= s.trigger_ttl.unwrap_or(TRIGGER_TTL) => {
                            Some("expired_trigger_id")
                        }
                        Some(_) => None,
                    }
                };
                if let Some(error) = unusable {
                    s.refusals.push(SimRefusal {
                        method: method.into(),
                        error: error.into(),
                        messages: Vec::new(),
                    });
                    return slack_error(error);
                }
                let Some(view) = params.get("view") else {
                    let refusal = Refusal::InvalidArguments(vec![blockkit::Problem {
                        pointer: "/view".into(),
                        message: "missing required field".into(),
                    }]);
                    return refused(s, method, &refusal);
                };
                if view.to_string().len() > MAX_VIEW_BYTES {
                    s.refusals.push(SimRefusal {
                        method: method.into(),
                        error: "view_too_large".into(),
                        messages: Vec::new(),
                    });
                    return slack_error("view_too_large");
                }
                if let Err(refusal) = blockkit::validate_view(view) {
                    return refused(s, method, &refusal);
                }
                // [views.open] "external_id … must be unique for all views on a team".
                if let Some(external) = view.get("external_id").and_then(Value::as_str) {
                    if !s.external_ids.insert(external.to_string()) {
                        s.refusals.push(SimRefusal {
                            method: method.into(),
                            error: "duplicate_external_id".into(),
                            messages: Vec::new(),
                        });
                        return slack_error("duplicate_external_id");
                    }
                }
                let trigger = trigger.to_string();
                let user = s.triggers.remove(&trigger).and_then(|t| t.user);
                s.used_triggers.insert(trigger.clone());
                let id = format!("V{:08}", s.views.len() + 1);
                s.views.push(SimView {
                    id: id.clone(),
                    trigger_id: trigger,
                    user,
                    view: view.clone(),
                });
                ok(json!({ "view": opened_view(&self.cfg, &id, view) }))
            }
            "usergroups.users.list" => {
                let Some(group) = str_param(params, "usergroup") else {
                    return slack_error("no_such_subteam");
                };
                match s.usergroups.get(group) {
                    Some(users) => ok(json!({ "users": users })),
                    None => slack_error("no_such_subteam"),
                }
            }
            _ => slack_error("unknown_method"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Socket Mode

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>, tls: Option<super::tls::SimTls>) {
    loop {
        let accepted = tokio::select! {
            _ = inner.stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let inner = inner.clone();
                match tls.clone() {
                    None => {
                        tokio::spawn(connection(stream, inner));
                    }
                    // wss://: the WebSocket handshake only after a full TLS handshake.
                    Some(tls) => {
                        tokio::spawn(async move {
                            if let Some(stream) = tls.accept(stream).await {
                                connection(stream, inner).await;
                            }
                        });
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "Slack sim could not accept a WebSocket"),
        }
    }
}

// tungstenite's handshake callback type fixes the large `ErrorResponse` error.
#[allow(clippy::result_large_err)]
async fn connection<S>(stream: S, inner: Arc<Inner>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let ticket_inner = inner.clone();
    let check_ticket = move |req: &WsRequest,
                             resp: WsResponse|
          -> Result<WsResponse, ErrorResponse> {
        let ticket = req
            .uri()
            .query()
            .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "ticket"))
            .map(|(_, v)| v.into_owned());
        let valid = req.uri().path().starts_with("/link")
            && ticket.is_some_and(|t| ticket_inner.lock().tickets.remove(&t));
        if valid {
            Ok(resp)
        } else {
            let mut refused = ErrorResponse::new(Some("invalid or used ticket".to_string()));
            *refused.status_mut() = StatusCode::UNAUTHORIZED;
            Err(refused)
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, check_ticket).await else {
        return;
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (id, live_now) = inner.update(|s| {
        s.next_conn += 1;
        let id = s.next_conn;
        s.conns.push(Conn { id, tx, live: true });
        (id, s.connection_count())
    });
    let hello = json!({
        "type": "hello",
        "num_connections": live_now,
        "debug_info": {"host": "applink-sim", "build_number": 1, "approximate_connection_time": 18060},
        "connection_info": {"app_id": inner.cfg.app_id},
    });
    if ws.send(Message::text(hello.to_string())).await.is_err() {
        inner.update(|s| s.conns.retain(|c| c.id != id));
        return;
    }
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    let mut closing_until: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = inner.stop.cancelled() => break,
            cmd = rx.recv(), if closing_until.is_none() => match cmd {
                Some(ConnCmd::Send { envelope_id, frame }) => {
                    sent_at.insert(envelope_id, Instant::now());
                    if ws.send(Message::text(frame)).await.is_err() {
                        break;
                    }
                }
                Some(ConnCmd::Disconnect { reason }) => {
                    let _ = ws.send(Message::text(disconnect_frame(&reason))).await;
                    let _ = ws.close(None).await;
                    closing_until = Some(Instant::now() + CLOSE_GRACE);
                }
                Some(ConnCmd::Warn { reason }) => {
                    if ws.send(Message::text(disconnect_frame(&reason))).await.is_err() {
                        break;
                    }
                }
                Some(ConnCmd::Drop) | None => break,
            },
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let envelope_id = serde_json::from_str::<Value>(text.as_str())
                        .ok()
                        .and_then(|v| v.get("envelope_id").and_then(Value::as_str).map(str::to_string));
                    if let Some(envelope_id) = envelope_id {
                        let latency = sent_at.get(&envelope_id).map(|t| t.elapsed());
                        inner.update(|s| s.acks.push(SimAck { envelope_id, latency, connection: id }));
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            _ = async { if let Some(at) = closing_until { tokio::time::sleep_until(at).await } }, if closing_until.is_some() => break,
        }
    }
    inner.update(|s| s.conns.retain(|c| c.id != id));
}

fn disconnect_frame(reason: &str) -> String {
    json!({
        "type": "disconnect",
        "reason": reason,
        "debug_info": {"host": "applink-sim"},
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// Envelope builders

fn new_envelope_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn new_event_id() -> String {
    let tail: String = (0..10)
        .map(|_| {
            let n = fastrand::u8(0..36);
            char::from_digit(u32::from(n), 36)
                .unwrap_or('0')
                .to_ascii_uppercase()
        })
        .collect();
    format!("Ev{tail}")
}

fn event_time(ts: &str) -> i64 {
    ts.split('.')
        .next()
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp())
}

fn rich_text(text: &str) -> Value {
    json!([{
        "type": "rich_text",
        "block_id": "sim",
        "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}],
    }])
}

fn events_api(event: Value, ts: &str) -> Value {
    json!({
        "envelope_id": new_envelope_id(),
        "payload": {
            "token": "sim-verification-token",
            "team_id": SIM_TEAM_ID,
            "api_app_id": SIM_APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": new_event_id(),
            "event_time": event_time(ts),
            "authorizations": [{
                "enterprise_id": null,
                "team_id": SIM_TEAM_ID,
                "user_id": SIM_BOT_USER_ID,
                "is_bot": true,
                "is_enterprise_install": false,
            }],
            "is_ext_shared_channel": false,
            "event_context": "4-sim",
        },
        "type": "events_api",
        "accepts_response_payload": false,
        "retry_attempt": 0,
        "retry_reason": "",
    })
}

/// An `events_api` envelope with an `app_mention` by `user` in `channel` (e.g. text
/// `"<@U0LINKBOT> check c1hk4ek107l5au5mq8hg"`).
pub fn app_mention(channel: &str, user: &str, text: &str, ts: &str) -> Value {
    events_api(
        json!({
            "client_msg_id": uuid::Uuid::new_v4().to_string(),
            "type": "app_mention",
            "text": text,
            "user": user,
            "ts": ts,
            "team": SIM_TEAM_ID,
            "blocks": rich_text(text),
            "channel": channel,
            "event_ts": ts,
        }),
        ts,
    )
}

/// An `events_api` envelope with a `message` in `channel`:
/// - `bot_id` None: a person's message (user `U0SIMUSER`);
/// - `bot_id` Some, `app_id` Some: an app's message — `bot_id`, `app_id`, `bot_profile`, no
///   `subtype` (what `chat.postMessage` by an app produces);
/// - `bot_id` Some, `app_id` None: a legacy integration's `subtype: bot_message` (incoming
///   webhooks, e.g. Alertmanager's Slack receiver), with `username`.
///
/// `attachments` (e.g. Alertmanager's `[{title, text, fields, …}]`) is added when given.
pub fn message(
    channel: &str,
    text: &str,
    ts: &str,
    bot_id: Option<&str>,
    app_id: Option<&str>,
    attachments: Option<Value>,
) -> Value {
    let mut event = json!({
        "type": "message",
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "channel_type": "channel",
    });
    if let Some(object) = event.as_object_mut() {
        match (bot_id, app_id) {
            (None, _) => {
                object.insert("user".into(), json!("U0SIMUSER"));
                object.insert("team".into(), json!(SIM_TEAM_ID));
                object.insert(
                    "client_msg_id".into(),
                    json!(uuid::Uuid::new_v4().to_string()),
                );
                object.insert("blocks".into(), rich_text(text));
            }
            (Some(bot_id), Some(app_id)) => {
                object.insert("bot_id".into(), json!(bot_id));
                object.insert("app_id".into(), json!(app_id));
                object.insert("user".into(), json!(format!("U{bot_id}")));
                object.insert("team".into(), json!(SIM_TEAM_ID));
                object.insert(
                    "bot_profile".into(),
                    json!({"id": bot_id, "deleted": false, "name": "alerts", "updated": 1_607_307_935,
                           "app_id": app_id, "team_id": SIM_TEAM_ID}),
                );
            }
            (Some(bot_id), None) => {
                object.insert("subtype".into(), json!("bot_message"));
                object.insert("bot_id".into(), json!(bot_id));
                object.insert("username".into(), json!("alertmanager"));
            }
        }
        if let Some(attachments) = attachments {
            object.insert("attachments".into(), attachments);
        }
    }
    events_api(event, ts)
}

/// A `slash_commands` envelope: `user` ran `command` (e.g. `/linkbot`) with `text` in `channel`.
pub fn slash_command(channel: &str, user: &str, command: &str, text: &str) -> Value {
    json!({
        "envelope_id": new_envelope_id(),
        "payload": {
            "token": "sim-verification-token",
            "team_id": SIM_TEAM_ID,
            "team_domain": "sim",
            "channel_id": channel,
            "channel_name": "oncall",
            "user_id": user,
            "user_name": user.to_lowercase(),
            "command": command,
            "text": text,
            "api_app_id": SIM_APP_ID,
            "is_enterprise_install": "false",
            "response_url": format!("http://127.0.0.1:9/commands/{SIM_TEAM_ID}/1/sim"),
            "trigger_id": format!("{}.{}.sim", fastrand::u32(..), fastrand::u32(..)),
        },
        "type": "slash_commands",
        "accepts_response_payload": true,
    })
}

/// An `interactive` envelope: `user` clicked the button `action_id` (with `value`) on the bot's
/// message `message_ts` in `channel`; `thread_ts` is the thread the message is in, if any.
pub fn block_actions(
    channel: &str,
    user: &str,
    message_ts: &str,
    action_id: &str,
    value: &str,
    thread_ts: Option<&str>,
) -> Value {
    let mut message = json!({
        "bot_id": SIM_BOT_ID,
        "type": "message",
        "text": "linkbot diagnosis",
        "user": SIM_BOT_USER_ID,
        "ts": message_ts,
        "app_id": SIM_APP_ID,
        "team": SIM_TEAM_ID,
    });
    if let (Some(object), Some(thread_ts)) = (message.as_object_mut(), thread_ts) {
        object.insert("thread_ts".into(), json!(thread_ts));
    }
    json!({
        "envelope_id": new_envelope_id(),
        "payload": {
            "type": "block_actions",
            "user": {"id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": SIM_TEAM_ID},
            "api_app_id": SIM_APP_ID,
            "token": "sim-verification-token",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": false},
            "trigger_id": format!("{}.{}.sim", fastrand::u32(..), fastrand::u32(..)),
            "team": {"id": SIM_TEAM_ID, "domain": "sim"},
            "enterprise": null,
            "is_enterprise_install": false,
            "channel": {"id": channel, "name": "oncall"},
            "message": message,
            "state": {"values": {}},
            "response_url": format!("http://127.0.0.1:9/actions/{SIM_TEAM_ID}/1/sim"),
            "actions": [{
                "action_id": action_id,
                "block_id": "linkbot_actions",
                "text": {"type": "plain_text", "text": action_id},
                "value": value,
                "type": "button",
                "action_ts": format!("{}.000001", chrono::Utc::now().timestamp()),
            }],
        },
        "type": "interactive",
        "accepts_response_payload": false,
    })
}

/// An `interactive` envelope: `user` chose the option (`text`, `value`) of the `static_select`
/// `action_id` in block `block_id` of the bot's message `message_ts`, as Slack sends it (the
/// action carries `selected_option` and no `value`).
#[allow(clippy::too_many_arguments)]
pub fn select_action(
    channel: &str,
    user: &str,
    message_ts: &str,
    block_id: &str,
    action_id: &str,
    text: &str,
    value: &str,
    thread_ts: Option<&str>,
) -> Value {
    let mut envelope = block_actions(channel, user, message_ts, action_id, value, thread_ts);
    envelope["payload"]["actions"] = json!([{
        "action_id": action_id,
        "block_id": block_id,
        "type": "static_select",
        "selected_option": {
            "text": {"type": "plain_text", "text": text, "emoji": true},
            "value": value,
        },
        "placeholder": {"type": "plain_text", "text": "Silence…", "emoji": true},
        "action_ts": format!("{}.000002", chrono::Utc::now().timestamp()),
    }]);
    envelope
}

/// A view as Slack answers `views.open` and sends it back in a `view_submission`: the view as
/// given, with the fields Slack adds (`id`, `team_id`, `state`, `hash`, …) and the optional
/// ones filled in as Slack fills them.
fn opened_view(cfg: &SimSlackConfig, id: &str, view: &Value) -> Value {
    let mut answer = view.clone();
    if let Some(object) = answer.as_object_mut() {
        object.insert("id".into(), json!(id));
        object.insert("team_id".into(), json!(cfg.team_id));
        object.insert("app_id".into(), json!(cfg.app_id));
        object.insert("bot_id".into(), json!(cfg.bot_id));
        object.insert("app_installed_team_id".into(), json!(cfg.team_id));
        object.insert("state".into(), json!({"values": {}}));
        object.insert(
            "hash".into(),
            json!(format!(
                "{}.{:08x}",
                chrono::Utc::now().timestamp(),
                fastrand::u32(..)
            )),
        );
        object.insert("previous_view_id".into(), Value::Null);
        object.insert("root_view_id".into(), json!(id));
        for key in ["private_metadata", "callback_id", "external_id"] {
            object.entry(key).or_insert(json!(""));
        }
        for key in ["clear_on_close", "notify_on_close"] {
            object.entry(key).or_insert(Value::Bool(false));
        }
    }
    answer
}

/// The `state.values` of a submitted view: for each `(action_id, value)` answer, the input
/// block holding that `action_id` in `view` gets the value as Slack reports it — a
/// `static_select` its `selected_option` (text from the view's option with that value; a value
/// the view never offered keeps the value as text, as a forger would send it), a
/// `plain_text_input` its `value`. Answers naming no element of the view are left out.
pub fn view_state(view: &SimView, answers: &[(&str, &str)]) -> Value {
    let mut values = Map::new();
    let blocks = view.view["blocks"].as_array().cloned().unwrap_or_default();
    for b in blocks.iter().filter(|b| b["type"] == "input") {
        let element = &b["element"];
        let Some(action_id) = element["action_id"].as_str() else {
            continue;
        };
        let Some((_, answer)) = answers.iter().find(|(a, _)| *a == action_id) else {
            continue;
        };
        let ty = element["type"].as_str().unwrap_or_default();
        let state = match ty {
            "static_select" => {
                let text = element["options"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|o| o["value"] == *answer)
                    .map(|o| o["text"].clone())
                    .unwrap_or_else(
                        || json!({"type": "plain_text", "text": answer, "emoji": true}),
                    );
                json!({"type": ty, "selected_option": {"text": text, "value": answer}})
            }
            _ => json!({"type": ty, "value": answer}),
        };
        let block_id = b["block_id"].as_str().unwrap_or_default().to_string();
        let mut element_state = Map::new();
        element_state.insert(action_id.to_string(), state);
        values.insert(block_id, Value::Object(element_state));
    }
    Value::Object(values)
}

/// An `interactive` envelope: `user` submitted the modal `view` (as opened with `views.open`)
/// with `state_values` (see [`view_state`]), as Slack sends a `view_submission` over Socket Mode.
pub fn view_submission(view: &SimView, user: &str, state_values: Value) -> Value {
    let cfg = SimSlackConfig::default();
    let mut submitted = opened_view(&cfg, &view.id, &view.view);
    submitted["state"] = json!({ "values": state_values });
    json!({
        "envelope_id": new_envelope_id(),
        "payload": {
            "type": "view_submission",
            "team": {"id": SIM_TEAM_ID, "domain": "sim"},
            "user": {"id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": SIM_TEAM_ID},
            "api_app_id": SIM_APP_ID,
            "token": "sim-verification-token",
            "trigger_id": format!("{}.{}.sim", fastrand::u32(..), fastrand::u32(..)),
            "view": submitted,
            "response_urls": [],
            "is_enterprise_install": false,
            "enterprise": null,
        },
        "type": "interactive",
        "accepts_response_payload": true,
    })
}

/// Slack's redelivery of `envelope`: a new envelope id, the same payload (same event id), and
/// `retry_attempt`/`retry_reason` set.
pub fn with_retry(envelope: &Value, attempt: u32) -> Value {
    let mut retry = envelope.clone();
    if let Some(object) = retry.as_object_mut() {
        object.insert("envelope_id".into(), json!(new_envelope_id()));
        object.insert("retry_attempt".into(), json!(attempt));
        object.insert("retry_reason".into(), json!("timeout"));
    }
    retry
}

/// The envelope id of an envelope built here (or any Socket Mode envelope).
pub fn envelope_id(envelope: &Value) -> Option<&str> {
    envelope.get("envelope_id").and_then(Value::as_str)
}
