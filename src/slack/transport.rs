//! The Socket Mode transport: owns the WebSockets to Slack and acks every envelope first.
//!
//! slack-morphism's own Socket Mode listener acks an envelope only after the handler returns
//! (SPEC §8); linkbot must ack well inside Slack's 3-second deadline whatever the handlers do, so
//! this module replaces that listener. It keeps slack-morphism for the payload models (and the
//! Web API for `apps.connections.open`) and does the socket work itself:
//!
//! - [`run`] keeps [`TransportConfig::connections`] connections open (Slack hands each envelope to
//!   one of them). Each connection: `apps.connections.open` with the app token → WebSocket with
//!   Nagle disabled (`connect_async_with_config(url, None, true)`, so a small ack frame leaves at
//!   once instead of waiting for the peer's delayed ACK) → `hello` → read loop.
//! - Per text frame: a minimal parse (`type`, `envelope_id`, `retry_attempt`, `payload.event_id`
//!   — the rest of the payload is skipped, not decoded), the envelope is recorded in a bounded
//!   de-duplication memory shared by all connections (by envelope id, and by event id so an
//!   Events API redelivery with a new envelope id is recognised), and the ack
//!   `{"envelope_id":"…"}` is written and flushed **before** the payload is decoded into models.
//!   `Metrics::ack_latency` records frame-read → ack-flushed. Duplicates are acked and dropped.
//! - New envelopes go, as raw frames, to one forwarder task that decodes them into [`Inbound`]
//!   and `send().await`s them on the bot's channel. The reader never waits on the bot: the queue
//!   between reader and forwarder is unbounded on purpose. Blocking the reader on a full channel
//!   would stop it reading, hence acking, and Slack would redeliver everything after 3 s — more
//!   load exactly when the bot is slow. The queue is bounded in practice by Slack's own delivery
//!   rate; backpressure belongs in the bot (e.g. `max_concurrent` checks), not in the socket.
//! - `disconnect` frames: `refresh_requested`/`warning` (and any other reason) replace the
//!   connection at once, while the old socket keeps being read and acked until Slack closes it
//!   (or [`TransportConfig::drain_timeout`]), so envelopes in flight are not lost;
//!   `too_many_websockets` replaces it after a backoff. Closed sockets, errors, a missing `hello`
//!   or silence longer than 3 × [`TransportConfig::ping_interval`] (we ping; Slack's pings are
//!   answered by tungstenite) reconnect with exponential backoff and jitter, counted in
//!   `Metrics::reconnects`.
//! - The number of live connections (`hello` received, not yet told to disconnect) is published
//!   on the `connected` watch channel, for `/readyz`.
//! - A refused app token (`invalid_auth`…) ends [`run`] with that error: retrying cannot help.
//!   Anything else that fails while opening (a 5xx, a timed-out `apps.connections.open`, a
//!   handshake that does not finish within [`TransportConfig::hello_timeout`]) is retried with
//!   the same backoff, with a warning each time; opening as a whole is bounded too.
//!
//! Envelopes acked but still queued when `shutdown` fires are offered to the bot without waiting
//! and otherwise dropped (Slack will not redeliver an acked envelope). Slash-command acks carry
//! no response payload: the bot answers with `chat.postEphemeral`.
//!
//! This module must NOT interpret events (commands, alerts, buttons): it only delivers them.

use crate::metrics::Metrics;
use crate::secret::Secret;
use crate::slack::web::{SlackError, SlackWeb};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use slack_morphism::events::{SlackCommandEvent, SlackInteractionEvent, SlackPushEventCallback};
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// One envelope from Slack, already acked, decoded into slack-morphism's models.
#[derive(Clone, Debug)]
pub enum Inbound {
    /// An Events API event (`app_mention`, `message`, …).
    Event {
        /// The Socket Mode envelope id.
        envelope_id: String,
        /// 0 for a first delivery; > 0 for Slack's redelivery of an event it thinks was missed.
        retry_attempt: u32,
        /// The event callback (team, event id, the event itself).
        event: Box<SlackPushEventCallback>,
    },
    /// A slash command (`/linkbot …`).
    Command {
        /// The Socket Mode envelope id.
        envelope_id: String,
        /// The command, its text, channel and user.
        command: Box<SlackCommandEvent>,
    },
    /// An interaction (`block_actions` from a button, a view submission, …).
    Interaction {
        /// The Socket Mode envelope id.
        envelope_id: String,
        /// The interaction payload.
        interaction: Box<SlackInteractionEvent>,
    },
}

impl Inbound {
    /// The Socket Mode envelope id.
    pub fn envelope_id(&self) -> &str {
        match self {
            Inbound::Event { envelope_id, .. }
            | Inbound::Command { envelope_id, .. }
            | Inbound::Interaction { envelope_id, .. } => envelope_id,
        }
    }

    /// The Socket Mode envelope type: `events_api`, `slash_commands` or `interactive`.
    pub fn envelope_type(&self) -> &'static str {
        match self {
            Inbound::Event { .. } => "events_api",
            Inbound::Command { .. } => "slash_commands",
            Inbound::Interaction { .. } => "interactive",
        }
    }

    /// The span its handling runs in, so every log line about it carries its envelope id and
    /// type (a check it starts runs in a span of its own, see `check::check_span`).
    pub fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "envelope",
            envelope_id = self.envelope_id(),
            envelope_type = self.envelope_type()
        )
    }
}

/// How the transport connects.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// How many WebSockets to keep open (Slack allows up to 10; 2 gives overlap on refresh).
    pub connections: usize,
    /// First reconnect delay (before jitter).
    pub backoff_min: Duration,
    /// Largest reconnect delay (before jitter).
    pub backoff_max: Duration,
    /// How often we ping Slack; 3 intervals without any frame means the socket is dead.
    pub ping_interval: Duration,
    /// Longest wait for the WebSocket handshake, and then for `hello`.
    pub hello_timeout: Duration,
    /// Longest time an old socket keeps being read after Slack's `disconnect`.
    pub drain_timeout: Duration,
    /// How many recent envelope ids and event ids are remembered to drop duplicates.
    pub dedupe_capacity: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            connections: 2,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            ping_interval: Duration::from_secs(10),
            hello_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            dedupe_capacity: 20_000,
        }
    }
}

/// The fields read before the ack; everything else in the frame is skipped, not decoded.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: Option<String>,
    envelope_id: Option<String>,
    retry_attempt: Option<u32>,
    reason: Option<String>,
    payload: Option<PayloadHead>,
}

#[derive(Deserialize)]
struct PayloadHead {
    event_id: Option<String>,
}

/// Fallback when a frame's other fields have unexpected shapes: still enough to ack it.
#[derive(Deserialize)]
struct IdOnly {
    envelope_id: String,
}

impl Head {
    fn parse(frame: &str) -> Option<Head> {
        match serde_json::from_str::<Head>(frame) {
            Ok(head) => Some(head),
            Err(_) => serde_json::from_str::<IdOnly>(frame).ok().map(|id| Head {
                kind: None,
                envelope_id: Some(id.envelope_id),
                retry_attempt: None,
                reason: None,
                payload: None,
            }),
        }
    }
}

#[derive(Deserialize)]
struct WithPayload<T> {
    payload: T,
}

/// Decodes one Socket Mode envelope frame (`events_api`, `slash_commands`, `interactive`) into
/// an [`Inbound`]. The transport calls this after acking; tests can call it on fixtures. The
/// error never contains the payload text.
pub fn parse_inbound(frame: &str) -> Result<Inbound, SlackError> {
    let head: Head = serde_json::from_str(frame).map_err(|source| SlackError::Envelope {
        what: "not a Socket Mode frame",
        source: Some(source),
    })?;
    let envelope_id = head.envelope_id.ok_or(SlackError::Envelope {
        what: "no envelope_id",
        source: None,
    })?;
    let bad_payload = |source| SlackError::Envelope {
        what: "payload does not match its envelope type",
        source: Some(source),
    };
    match head.kind.as_deref() {
        Some("events_api") => {
            let env: WithPayload<SlackPushEventCallback> =
                serde_json::from_str(frame).map_err(bad_payload)?;
            Ok(Inbound::Event {
                envelope_id,
                retry_attempt: head.retry_attempt.unwrap_or(0),
                event: Box::new(env.payload),
            })
        }
        Some("slash_commands") => {
            let env: WithPayload<SlackCommandEvent> =
                serde_json::from_str(frame).map_err(bad_payload)?;
            Ok(Inbound::Command {
                envelope_id,
                command: Box::new(env.payload),
            })
        }
        Some("interactive") => {
            let env: WithPayload<SlackInteractionEvent> =
                serde_json::from_str(frame).map_err(bad_payload)?;
            Ok(Inbound::Interaction {
                envelope_id,
                interaction: Box::new(env.payload),
            })
        }
        _ => Err(SlackError::Envelope {
            what: "unsupported envelope type",
            source: None,
        }),
    }
}

/// Bounded memory of recently seen envelope ids and event ids.
struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Seen {
    fn new(capacity: usize) -> Seen {
        Seen {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records the ids; true when neither was seen before.
    fn first_time(&mut self, envelope_id: &str, event_id: Option<&str>) -> bool {
        let envelope_key = format!("envelope:{envelope_id}");
        let event_key = event_id.map(|e| format!("event:{e}"));
        let seen = self.set.contains(&envelope_key)
            || event_key.as_ref().is_some_and(|k| self.set.contains(k));
        self.remember(envelope_key);
        if let Some(key) = event_key {
            self.remember(key);
        }
        !seen
    }

    fn remember(&mut self, key: String) {
        if self.set.insert(key.clone()) {
            self.order.push_back(key);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// An acked envelope waiting to be decoded and handed to the bot.
struct Pending {
    envelope_id: String,
    frame: Utf8Bytes,
}

struct Shared {
    web: SlackWeb,
    app_token: Secret,
    cfg: TransportConfig,
    metrics: Metrics,
    stop: CancellationToken,
    connected: watch::Sender<usize>,
    seen: Mutex<Seen>,
    forward: mpsc::UnboundedSender<Pending>,
}

impl Shared {
    fn first_time(&self, envelope_id: &str, event_id: Option<&str>) -> bool {
        match self.seen.lock() {
            Ok(mut seen) => seen.first_time(envelope_id, event_id),
            Err(poisoned) => poisoned.into_inner().first_time(envelope_id, event_id),
        }
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a connection stopped being the live one for its slot.
enum Ended {
    /// Shutdown (or the bot stopped listening).
    Stopped,
    /// Slack asked for a new connection (`disconnect` with this reason).
    Refresh(String),
    /// The connection failed; `had_hello` says whether it ever became live.
    Failed { error: SlackError, had_hello: bool },
}

/// Runs Socket Mode until `shutdown` is cancelled or the bot drops the receiver of `out`
/// (both → `Ok(())`), or Slack refuses the app token (→ the `Auth` error).
///
/// `web` is used only for `apps.connections.open` with `app_token`. Every envelope is acked
/// before it is decoded and sent on `out` as an [`Inbound`]; duplicates are dropped. `connected`
/// carries the number of live connections (0 when `run` returns).
pub async fn run(
    web: SlackWeb,
    app_token: Secret,
    cfg: TransportConfig,
    out: mpsc::Sender<Inbound>,
    metrics: Metrics,
    shutdown: CancellationToken,
    connected: watch::Sender<usize>,
) -> Result<(), SlackError> {
    let stop = shutdown.child_token();
    let (forward_tx, forward_rx) = mpsc::unbounded_channel();
    let slots = cfg.connections.max(1);
    let shared = Arc::new(Shared {
        web,
        app_token,
        seen: Mutex::new(Seen::new(cfg.dedupe_capacity)),
        cfg,
        metrics,
        stop: stop.clone(),
        connected,
        forward: forward_tx,
    });
    let forwarder = tokio::spawn(forward(forward_rx, out, stop.clone()));
    let mut tasks = JoinSet::new();
    for slot in 0..slots {
        tasks.spawn(run_slot(shared.clone(), slot));
    }
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                stop.cancel();
                if result.is_ok() {
                    result = Err(err);
                }
            }
            Err(join_error) => {
                tracing::error!(error = %join_error, "Socket Mode connection task failed");
                stop.cancel();
            }
        }
    }
    stop.cancel();
    shared.connected.send_replace(0);
    drop(shared);
    if let Err(join_error) = forwarder.await {
        tracing::error!(error = %join_error, "Socket Mode forwarder failed");
    }
    result
}

/// Decodes acked frames and hands them to the bot, in arrival order.
async fn forward(
    mut rx: mpsc::UnboundedReceiver<Pending>,
    out: mpsc::Sender<Inbound>,
    stop: CancellationToken,
) {
    loop {
        let pending = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            next = rx.recv() => match next {
                Some(pending) => pending,
                None => break,
            },
        };
        let Some(inbound) = decode(&pending) else {
            continue;
        };
        tokio::select! {
            biased;
            _ = stop.cancelled() => {
                let _ = out.try_send(inbound);
                break;
            }
            permit = out.reserve() => match permit {
                Ok(permit) => permit.send(inbound),
                Err(_) => {
                    tracing::info!("the bot stopped taking Slack events; stopping Socket Mode");
                    stop.cancel();
                    return;
                }
            }
        }
    }
    // Acked already: offer what is queued without waiting.
    while let Ok(pending) = rx.try_recv() {
        if let Some(inbound) = decode(&pending) {
            if out.try_send(inbound).is_err() {
                break;
            }
        }
    }
}

fn decode(pending: &Pending) -> Option<Inbound> {
    match parse_inbound(pending.frame.as_str()) {
        Ok(inbound) => Some(inbound),
        Err(err) => {
            let (what, category, line, column) = match &err {
                SlackError::Envelope { what, source } => (
                    *what,
                    source.as_ref().map(|s| format!("{:?}", s.classify())),
                    source.as_ref().map(|s| s.line()),
                    source.as_ref().map(|s| s.column()),
                ),
                _ => ("unexpected", None, None, None),
            };
            // The payload text (user messages, verification token) is never logged.
            tracing::warn!(
                envelope_id = pending.envelope_id.as_str(),
                what,
                category,
                line,
                column,
                "acked a Slack envelope linkbot cannot decode; dropped"
            );
            None
        }
    }
}

/// Exponential backoff with equal jitter: a delay in [d/2, d), d doubling up to `max`.
/// Also paces the Web API retries of the sink (`handler.rs`).
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            attempt: 0,
        }
    }

    pub(crate) fn next(&mut self) -> Duration {
        let full = self
            .min
            .saturating_mul(2u32.saturating_pow(self.attempt))
            .min(self.max.max(self.min));
        self.attempt = (self.attempt + 1).min(20);
        let half = full / 2;
        half + half.mul_f64(fastrand::f64())
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// One connection slot: connect, serve, and reconnect until stopped.
async fn run_slot(sh: Arc<Shared>, slot: usize) -> Result<(), SlackError> {
    let mut backoff = Backoff::new(sh.cfg.backoff_min, sh.cfg.backoff_max);
    // `apps.connections.open` is bounded by the Web API timeout and the handshake by
    // `hello_timeout`; this outer bound makes sure no step of opening can hang a slot.
    let open_bound = sh.web.request_timeout() + sh.cfg.hello_timeout.saturating_mul(2);
    loop {
        let opened = tokio::select! {
            biased;
            _ = sh.stop.cancelled() => return Ok(()),
            opened = tokio::time::timeout(open_bound, open(&sh)) => match opened {
                Ok(opened) => opened,
                Err(_) => Err(SlackError::Timeout {
                    method: "apps.connections.open",
                    after: open_bound,
                }),
            },
        };
        let opening = opened.is_err();
        let ended = match opened {
            Err(error) if error.is_fatal() => {
                tracing::error!(
                    slot,
                    kind = error.kind(),
                    "Socket Mode cannot connect: {error}"
                );
                return Err(error);
            }
            Err(error) => Ended::Failed {
                error,
                had_hello: false,
            },
            Ok(ws) => {
                let (release_tx, release_rx) = oneshot::channel();
                tokio::spawn(serve(sh.clone(), slot, ws, release_tx));
                release_rx.await.unwrap_or(Ended::Failed {
                    error: SlackError::SocketProtocol("connection task ended unexpectedly"),
                    had_hello: false,
                })
            }
        };
        match ended {
            Ended::Stopped => return Ok(()),
            Ended::Refresh(reason) => {
                tracing::info!(
                    slot,
                    reason = reason.as_str(),
                    "Slack asked for a new connection"
                );
                backoff.reset();
                sh.metrics.reconnects.inc();
            }
            Ended::Failed { error, had_hello } => {
                if had_hello {
                    backoff.reset();
                }
                let delay = backoff.next();
                if opening {
                    tracing::warn!(
                        slot,
                        kind = error.kind(),
                        retry_in_ms = delay.as_millis() as u64,
                        "could not open a Socket Mode connection; retrying: {error}"
                    );
                } else {
                    tracing::warn!(
                        slot,
                        kind = error.kind(),
                        retry_in_ms = delay.as_millis() as u64,
                        "Socket Mode connection lost: {error}"
                    );
                }
                sh.metrics.reconnects.inc();
                tokio::select! {
                    biased;
                    _ = sh.stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// `apps.connections.open`, then the WebSocket handshake with Nagle disabled.
async fn open(sh: &Shared) -> Result<Ws, SlackError> {
    let url = sh.web.connections_open(&sh.app_token).await?;
    // The URL carries a one-time ticket: it is not logged.
    let net = sh.web.net();
    let host = url.host_str().unwrap_or("").to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let handshake = async {
        // TCP directly or through the proxy's CONNECT tunnel (Nagle off either way), then TLS
        // with our trust roots for wss://.
        let tcp = net
            .connect(url.scheme(), &host, port)
            .await
            .map_err(|e| tokio_tungstenite::tungstenite::Error::Io(std::io::Error::other(e)))?;
        let connector = if url.scheme() == "wss" {
            tokio_tungstenite::Connector::Rustls(net.tls())
        } else {
            tokio_tungstenite::Connector::Plain
        };
        tokio_tungstenite::client_async_tls_with_config(url.as_str(), tcp, None, Some(connector))
            .await
    };
    match tokio::time::timeout(sh.cfg.hello_timeout, handshake).await {
        Err(_) => Err(SlackError::SocketProtocol("WebSocket handshake timed out")),
        Ok(Err(source)) => {
            if let Some(problem) = crate::net::explain(&source, &host) {
                tracing::error!(%problem, "Socket Mode WebSocket could not be opened");
            }
            Err(SlackError::WebSocket {
                source: Box::new(source),
            })
        }
        Ok(Ok((ws, _response))) => Ok(ws),
    }
}

/// What a text frame asks of the read loop.
enum Control {
    Continue,
    Hello,
    Disconnect(String),
    Broken(SlackError),
}

/// Tells the slot this connection is no longer its live one (once), and updates the live count.
fn release(
    sh: &Shared,
    live: &mut bool,
    release: &mut Option<oneshot::Sender<Ended>>,
    ended: Ended,
) {
    if *live {
        *live = false;
        sh.connected.send_modify(|n| *n = n.saturating_sub(1));
    }
    if let Some(tx) = release.take() {
        let _ = tx.send(ended);
    }
}

/// The read loop of one WebSocket.
async fn serve(sh: Arc<Shared>, slot: usize, mut ws: Ws, release_tx: oneshot::Sender<Ended>) {
    let mut releaser = Some(release_tx);
    let mut live = false;
    let mut hello_seen = false;
    let hello_deadline = tokio::time::sleep(sh.cfg.hello_timeout);
    tokio::pin!(hello_deadline);
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    let mut ping = tokio::time::interval(sh.cfg.ping_interval.max(Duration::from_millis(100)));
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut last_seen = Instant::now();

    let ended = loop {
        tokio::select! {
            biased;
            _ = sh.stop.cancelled() => {
                let _ = ws.close(None).await;
                break Ended::Stopped;
            }
            frame = ws.next() => {
                let read_at = Instant::now();
                last_seen = read_at;
                match frame {
                    Some(Ok(Message::Text(text))) => match handle_text(&sh, &mut ws, text, read_at).await {
                        Control::Continue => {}
                        Control::Hello => {
                            hello_seen = true;
                            if !live && releaser.is_some() {
                                live = true;
                                sh.connected.send_modify(|n| *n += 1);
                                tracing::info!(slot, "Socket Mode connected");
                            }
                        }
                        Control::Disconnect(reason) => {
                            let ended = if reason == "too_many_websockets" {
                                Ended::Failed {
                                    error: SlackError::SocketProtocol("Slack says too many websockets"),
                                    had_hello: false,
                                }
                            } else {
                                Ended::Refresh(reason)
                            };
                            release(&sh, &mut live, &mut releaser, ended);
                            drain_deadline.get_or_insert(tokio::time::Instant::now() + sh.cfg.drain_timeout);
                        }
                        Control::Broken(error) => break Ended::Failed { error, had_hello: hello_seen },
                    },
                    Some(Ok(Message::Binary(_))) => {
                        tracing::warn!(slot, "ignored a binary Socket Mode frame");
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break Ended::Failed {
                        error: SlackError::SocketProtocol("Slack closed the connection"),
                        had_hello: hello_seen,
                    },
                    Some(Err(source)) => break Ended::Failed {
                        error: SlackError::WebSocket { source: Box::new(source) },
                        had_hello: hello_seen,
                    },
                }
            }
            _ = ping.tick() => {
                if last_seen.elapsed() > sh.cfg.ping_interval.max(Duration::from_millis(100)).saturating_mul(3) {
                    break Ended::Failed {
                        error: SlackError::SocketProtocol("no traffic from Slack"),
                        had_hello: hello_seen,
                    };
                }
                if let Err(source) = ws.send(Message::Ping(Vec::new().into())).await {
                    break Ended::Failed { error: SlackError::WebSocket { source: Box::new(source) }, had_hello: hello_seen };
                }
            }
            _ = &mut hello_deadline, if !hello_seen => {
                break Ended::Failed {
                    error: SlackError::SocketProtocol("no hello from Slack"),
                    had_hello: false,
                };
            }
            _ = async { if let Some(at) = drain_deadline { tokio::time::sleep_until(at).await } }, if drain_deadline.is_some() => {
                let _ = ws.close(None).await;
                break Ended::Stopped;
            }
        }
    };
    release(&sh, &mut live, &mut releaser, ended);
}

/// One text frame: control frames are reported; envelopes are recorded, acked, and queued.
async fn handle_text(sh: &Shared, ws: &mut Ws, text: Utf8Bytes, read_at: Instant) -> Control {
    let Some(head) = Head::parse(text.as_str()) else {
        tracing::warn!(
            len = text.len(),
            "ignored a Socket Mode frame that is not a JSON object"
        );
        return Control::Continue;
    };
    match head.kind.as_deref() {
        Some("hello") => return Control::Hello,
        Some("disconnect") => return Control::Disconnect(head.reason.unwrap_or_default()),
        _ => {}
    }
    let Some(envelope_id) = head.envelope_id else {
        tracing::warn!(
            kind = head.kind.as_deref(),
            "ignored a Socket Mode frame without envelope_id"
        );
        return Control::Continue;
    };
    let event_id = head.payload.as_ref().and_then(|p| p.event_id.as_deref());
    let first = sh.first_time(&envelope_id, event_id);
    let ack = format!(
        "{{\"envelope_id\":{}}}",
        serde_json::Value::String(envelope_id.clone())
    );
    let acked = ws.send(Message::text(ack)).await;
    if acked.is_ok() {
        sh.metrics
            .ack_latency
            .observe(read_at.elapsed().as_secs_f64());
    }
    // Delivered even when the ack could not be written: Slack may redeliver it, and the
    // de-duplication memory then drops the redelivery.
    if first {
        let _ = sh.forward.send(Pending {
            envelope_id: envelope_id.clone(),
            frame: text,
        });
    } else {
        tracing::debug!(
            envelope_id = envelope_id.as_str(),
            retry_attempt = head.retry_attempt.unwrap_or(0),
            "acked and dropped a duplicate envelope"
        );
    }
    match acked {
        Ok(()) => Control::Continue,
        Err(source) => Control::Broken(SlackError::WebSocket {
            source: Box::new(source),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupe_remembers_envelope_and_event_ids_within_capacity() {
        let mut seen = Seen::new(4);
        assert!(seen.first_time("a", Some("Ev1")));
        assert!(!seen.first_time("a", Some("Ev1")), "same envelope");
        assert!(
            !seen.first_time("b", Some("Ev1")),
            "redelivery: new envelope, same event"
        );
        assert!(seen.first_time("c", None));
        assert!(seen.first_time("d", None));
        assert!(seen.first_time("e", None));
        // capacity 4: the oldest keys are forgotten
        assert!(seen.first_time("a", None));
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let first = b.next();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..10 {
            let d = b.next();
            assert!(d <= Duration::from_millis(1000), "{d:?}");
        }
        let capped = b.next();
        assert!(capped >= Duration::from_millis(500), "{capped:?}");
        b.reset();
        assert!(b.next() <= Duration::from_millis(100));
    }

    #[test]
    fn frames_that_are_not_envelopes_are_refused_without_their_content() {
        let cases = [
            ("not json", "secret-text-1"),
            (r#"{"type":"hello","num_connections":1}"#, ""),
            (
                r#"{"type":"events_api","envelope_id":"x","payload":{"text":"secret-text-2"}}"#,
                "secret-text-2",
            ),
            (
                r#"{"type":"slash_commands","envelope_id":"x","payload":42}"#,
                "",
            ),
            (r#"{"type":"mystery","envelope_id":"x","payload":{}}"#, ""),
        ];
        for (frame, hidden) in cases {
            let err = parse_inbound(frame).err();
            let Some(err) = err else {
                panic!("{frame} should not parse")
            };
            assert!(matches!(err, SlackError::Envelope { .. }), "{frame}");
            if !hidden.is_empty() {
                assert!(!err.to_string().contains(hidden));
                assert!(!err.user_message().contains(hidden));
            }
        }
    }

    #[test]
    fn head_parse_survives_odd_fields() {
        let head = Head::parse(
            r#"{"envelope_id":"e1","type":"events_api","retry_attempt":"one","payload":[]}"#,
        );
        assert_eq!(head.and_then(|h| h.envelope_id).as_deref(), Some("e1"));
        assert!(Head::parse("[1,2]").is_none());
    }
}
