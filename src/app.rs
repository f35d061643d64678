//! The running bot: wires config, store, engine, Slack, escalation and the ops server together.
//!
//! [`start`] builds everything from a [`Config`] and [`Secrets`] and returns a [`RunningBot`]
//! that tests and the demo drive directly; [`run`] is `start` plus waiting for SIGTERM/SIGINT,
//! or for a fatal error (a token Slack refuses), which ends it with that error: the process
//! exits non-zero with one line naming the cause instead of running on, deaf.
//! Shutdown stops taking envelopes, hands in-flight checks back to the store (their Jenkins
//! handle is already persisted) so a restart or another replica resumes them, and exits
//! within a bound. The timers (resumer, readiness, the storm gauge, the weekly report) stop
//! with the shutdown token; the storms' background tasks stop once the envelopes in hand are
//! handled, and hand their claims back to the store. No business logic lives here.

use crate::alertmanager::AlertmanagerClient;
use crate::check::coordinator::Coordinator;
use crate::check::Engine;
use crate::config::{Config, Secrets};
use crate::escalation::github::GitHubClient;
use crate::escalation::pagerduty::PagerDutyClient;
use crate::escalation::Escalators;
use crate::incident::Incidents;
use crate::metrics::Metrics;
use crate::report::weekly::{SlotEvent, SlotOutcome, Weekly};
use crate::server::{Readiness, ReadyChecks};
use crate::silence::Silences;
use crate::slack::dispatch::Dispatcher;
use crate::slack::handler::{Handler, Workflows};
use crate::slack::report::SlackReportPoster;
use crate::slack::sink::SlackSink;
use crate::slack::storm::StormThreads;
use crate::slack::transport::{self, Inbound, TransportConfig};
use crate::slack::web::{BotIdentity, SlackWeb};
use crate::store::{Clock, Store};
use crate::storm::Storms;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Knobs that are not in `bot.toml` (tests and the demo shorten them).
#[derive(Debug, Clone)]
pub struct Options {
    /// A check's lease in the store; a dead holder's checks are taken over after this.
    pub lease: Duration,
    /// How often expired checks are looked for.
    pub resume_every: Duration,
    /// How long shutdown may take.
    pub shutdown_bound: Duration,
    /// Bind the ops server here instead of `[server] listen` (tests use `127.0.0.1:0`).
    pub listen: Option<SocketAddr>,
    /// A name for this replica in the store's leases.
    pub instance: String,
    /// Pace Web API calls to Slack's method tiers (off only against the simulator).
    pub pace_slack: bool,
    /// The `chat.update` budget (progress edits deferred before a verdict waits). `None`:
    /// Slack's Tier 3 (50 a minute) when `pace_slack`, no budget otherwise. Tests and benches
    /// set a shorter window to see it work in seconds.
    pub slack_edits: Option<crate::slack::budget::EditRate>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lease: Duration::from_secs(30),
            resume_every: Duration::from_secs(10),
            shutdown_bound: Duration::from_secs(10),
            listen: None,
            instance: crate::config::instance_name(),
            pace_slack: true,
            slack_edits: None,
        }
    }
}

/// A bot that is running. Dropping it does not stop it: call [`RunningBot::stop`].
pub struct RunningBot {
    shutdown: CancellationToken,
    server_stop: CancellationToken,
    coordinator: Coordinator,
    storms: Storms,
    task: tokio::task::JoinHandle<()>,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub ops_addr: SocketAddr,
    /// Who the bot is in Slack.
    pub identity: BotIdentity,
    /// The bot's metrics.
    pub metrics: Metrics,
    /// The bot's store.
    pub store: Arc<dyn Store>,
    connected: watch::Receiver<usize>,
    fatal: watch::Receiver<Option<String>>,
    weekly: watch::Receiver<Option<SlotEvent>>,
}

impl RunningBot {
    /// Waits until `n` Socket Mode connections are up, or `timeout` passes.
    pub async fn wait_connected(&self, n: usize, timeout: Duration) -> bool {
        let mut rx = self.connected.clone();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits until the bot cannot go on (Slack refused a token, Socket Mode gave up) and
    /// returns one line naming the cause; never returns while the bot can work.
    pub async fn fatal(&self) -> String {
        let mut rx = self.fatal.clone();
        let line = match rx.wait_for(Option::is_some).await {
            Ok(line) => line.clone(),
            Err(_) => None,
        };
        match line {
            Some(line) => line,
            None => std::future::pending().await,
        }
    }

    /// Waits until the weekly report's timer has looked at `slot` (posted it, found it taken,
    /// or failed), or `timeout` passes.
    pub async fn wait_weekly(
        &self,
        slot: chrono::DateTime<chrono::Utc>,
        timeout: Duration,
    ) -> Option<SlotOutcome> {
        let mut rx = self.weekly.clone();
        let seen = tokio::time::timeout(
            timeout,
            rx.wait_for(|e| e.as_ref().is_some_and(|e| e.slot == slot)),
        )
        .await
        .ok()?
        .ok()?
        .clone();
        seen.map(|e| e.outcome)
    }

    /// The storm workflow (tests count its background tasks: none after [`RunningBot::stop`]).
    pub fn storms(&self) -> Storms {
        self.storms.clone()
    }

    /// Stops gracefully (as on SIGTERM) and waits for it, within the shutdown bound.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Stops at once, like `kill -9`: nothing is handed back, the leases just expire.
    pub fn kill(self) {
        // The checks run in tasks of their own: stop them (and their lease renewals) too, or
        // they would live on and keep their leases as no killed process can.
        self.coordinator.abort_all();
        self.storms.abandon();
        self.task.abort();
        self.shutdown.cancel();
        self.server_stop.cancel();
    }
}

/// Starts the bot: store, `auth.test`, Socket Mode, the ops server, resuming orphaned checks,
/// and the weekly report when `[report]` is configured.
pub async fn start(config: Arc<Config>, secrets: Secrets, options: Options) -> Result<RunningBot> {
    start_with_clock(config, secrets, options, Clock::system()).await
}

/// [`start`] with the time read from `clock` (by the store, reports and the weekly post's
/// timer): tests set it at a weekly slot instead of waiting for one.
pub async fn start_with_clock(
    config: Arc<Config>,
    secrets: Secrets,
    options: Options,
    clock: Clock,
) -> Result<RunningBot> {
    rustls_provider();
    let metrics = Metrics::new();
    let store = crate::store::open_with_clock(&config.resolved_store_url(&secrets), clock.clone())
        .await
        .context("opening the store")?;

    let bot_token = secrets
        .slack_bot_token
        .clone()
        .context("SLACK_BOT_TOKEN (or SLACK_BOT_TOKEN_FILE) is not set")?;
    let app_token = secrets
        .slack_app_token
        .clone()
        .context("SLACK_APP_TOKEN (or SLACK_APP_TOKEN_FILE) is not set")?;
    let net = crate::net::Net::for_bot(&config, &secrets)
        .context("setting up TLS trust and the proxy for outbound connections")?;
    tracing::info!(trust = ?net.summary(), proxy = %net.proxy_summary(), "outbound connections set up");
    let web = SlackWeb::new(&config.slack.api_url, bot_token, metrics.clone(), &net)
        .context("building the Slack client")?;
    let web = if options.pace_slack {
        web
    } else {
        web.without_pacing()
    };
    let web = match options.slack_edits {
        Some(rate) => web.with_edit_budget(Some(rate)),
        None => web,
    };
    let web = web.with_request_timeout(config.slack.request_timeout);
    let identity = match web.auth_test().await {
        Ok(identity) => identity,
        // A certificate or proxy problem is the whole story: say it, with its fix.
        Err(e) => match web.network_problem(&e) {
            Some(problem) => anyhow::bail!("auth.test: {problem}"),
            None => {
                // slack-morphism's error text spans lines (it adds the body): the chain goes to
                // the log, the process ends with one line.
                tracing::error!(error = ?e, "auth.test with SLACK_BOT_TOKEN failed");
                anyhow::bail!("auth.test with SLACK_BOT_TOKEN: {}", e.fatal_line());
            }
        },
    };
    tracing::info!(user_id = %identity.user_id, "connected to Slack as the bot user");

    let engine = Engine::new(config.clone(), &secrets, &net, metrics.clone())
        .context("building the directory, Jenkins and IAM clients")?;
    let escalators = Escalators {
        pagerduty: secrets
            .pagerduty_routing_key
            .clone()
            .map(|k| {
                PagerDutyClient::new(config.pagerduty_url.clone(), k, metrics.clone(), &net)?
                    .with_timeouts(config.timeouts.pagerduty)
            })
            .transpose()
            .context("building the PagerDuty client")?,
        github: secrets
            .github_token
            .clone()
            .map(|t| {
                GitHubClient::new(config.github_api_url.clone(), t, metrics.clone(), &net)?
                    .with_timeouts(config.timeouts.github)
            })
            .transpose()
            .context("building the GitHub client")?,
    };
    // One Alertmanager client per environment with an `alertmanager_url` (Silence…).
    let mut alertmanagers = std::collections::BTreeMap::new();
    for (env, env_config) in &config.environments {
        if let Some(url) = &env_config.alertmanager_url {
            let client = AlertmanagerClient::new(
                url.clone(),
                secrets.alertmanager_token.clone(),
                config.timeouts.alertmanager,
                &net,
            )
            .with_context(|| format!("building the Alertmanager client of {env}"))?;
            alertmanagers.insert(*env, client);
        }
    }
    let silences = Silences::new(store.clone(), alertmanagers);
    let incidents = Incidents::new(
        store.clone(),
        escalators.clone(),
        config.escalation.clone(),
        metrics.clone(),
    )
    .with_silences(silences.clone());
    let storms = Storms::new(
        config.storm,
        store.clone(),
        Arc::new(engine.clone()),
        &options.instance,
        metrics.clone(),
    );
    let sink = Arc::new(SlackSink::new(
        config.clone(),
        web.clone(),
        incidents.clone(),
        storms.clone(),
    ));
    let coordinator = Coordinator::new(
        engine,
        store.clone(),
        sink.clone(),
        options.instance.clone(),
        options.lease,
    );
    let handler = Handler::new(
        config.clone(),
        web.clone(),
        identity.clone(),
        coordinator.clone(),
        Workflows {
            escalators,
            incidents,
            silences,
            storms: storms.clone(),
        },
    )
    .with_clock(clock.clone());
    sink.set_storm_channel(StormThreads::shared(handler.clone()));
    // Storms a previous process (or a dead replica) left: their waiting pointer replies, their
    // end, their budgeted checker.
    storms.resume(StormThreads::shared(handler.clone()));

    let shutdown = CancellationToken::new();
    // The ops server outlives the rest of the shutdown, so `/readyz` says "shutting down" (and
    // `/healthz`, `/metrics` answer) while in-flight work drains; it stops last.
    let server_stop = CancellationToken::new();
    let (connected_tx, connected_rx) = watch::channel(0usize);
    // Set once, with one line naming the cause, when the bot cannot go on.
    let (fatal_tx, fatal_rx) = watch::channel(None::<String>);
    let fatal_tx = Arc::new(fatal_tx);
    {
        // A token Slack refuses on any call (revoked, workspace deactivated…) is fatal.
        let mut refused = web.token_refused();
        let fatal_tx = fatal_tx.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                r = refused.wait_for(Option::is_some) => {
                    if let Ok(line) = r {
                        let line = line.clone().unwrap_or_default();
                        set_fatal(&fatal_tx, line);
                    }
                }
            }
        });
    }

    // Ops server.
    let listen = options.listen.unwrap_or(config.listen);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the ops server to {listen}"))?;
    let ops_addr = listener.local_addr()?;
    // Readiness: config loaded (we are here), store answering, Socket Mode connected.
    let (ready_tx, ready_rx) = watch::channel(Readiness::not_ready("starting"));
    {
        let store = store.clone();
        let mut connected = connected_rx.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let checks = ReadyChecks {
                    config_loaded: true,
                    store_reachable: store.ping().await.is_ok(),
                    socket_connected: *connected.borrow_and_update() > 0,
                };
                ready_tx.send_replace(if shutdown.is_cancelled() {
                    Readiness::not_ready("shutting down")
                } else {
                    checks.readiness()
                });
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        ready_tx.send_replace(Readiness::not_ready("shutting down"));
                        return;
                    }
                    r = connected.changed() => if r.is_err() { return },
                    // Each round pings the store (bounded by PING_TIMEOUT): /readyz follows a
                    // store outage and its end within about a second.
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
    }
    let liveness =
        crate::server::Liveness::track(connected_rx.clone(), config.unhealthy_after_disconnected);
    let server = tokio::spawn(crate::server::serve_with(
        listener,
        metrics.clone(),
        ready_rx,
        liveness,
        server_stop.clone(),
    ));

    // Socket Mode.
    let (tx, mut rx) = mpsc::channel::<Inbound>(1024);
    let transport_cfg = TransportConfig {
        connections: config.slack.connections,
        hello_timeout: config.slack.connect_timeout,
        ..TransportConfig::default()
    };
    let transport = {
        let run = transport::run(
            web.clone(),
            app_token,
            transport_cfg,
            tx,
            metrics.clone(),
            shutdown.clone(),
            connected_tx,
        );
        let fatal_tx = fatal_tx.clone();
        tokio::spawn(async move {
            // Socket Mode ends on its own only when retrying cannot help (a refused token).
            if let Err(e) = run.await {
                tracing::error!(kind = e.kind(), "Socket Mode stopped for good: {e}");
                set_fatal(&fatal_tx, e.fatal_line());
            }
        })
    };

    // `linkbot_storm_active` follows the store (a storm may end on another replica).
    storms.track_active(shutdown.clone());

    // Resume what a previous run (or a dead replica) left in flight, now and periodically.
    let resumer = {
        let coordinator = coordinator.clone();
        let shutdown = shutdown.clone();
        let every = options.resume_every;
        tokio::spawn(async move {
            loop {
                match coordinator.resume_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(checks = n, "resumed checks left in flight"),
                    Err(e) => tracing::warn!(
                        error = format!("{e:#}"),
                        "looking for checks to resume failed"
                    ),
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        })
    };

    // The weekly report: one replica posts each slot (a claim in the store).
    let (weekly_tx, weekly_rx) = watch::channel(None::<SlotEvent>);
    let weekly = config.report.as_ref().map(|r| {
        let weekly = Weekly {
            store: store.clone(),
            poster: Arc::new(SlackReportPoster::new(web.clone())),
            channel: r.channel.to_string(),
            at: r.weekly_at,
            owner: options.instance.clone(),
            clock: clock.clone(),
            events: weekly_tx,
        };
        tracing::info!(channel = %r.channel, weekly_at = %r.weekly_at, "the weekly report is on");
        tokio::spawn(weekly.run(shutdown.clone()))
    });

    let task = {
        let shutdown = shutdown.clone();
        let server_stop = server_stop.clone();
        let coordinator = coordinator.clone();
        let store = store.clone();
        let storms = storms.clone();
        let instance = options.instance.clone();
        let bound = options.shutdown_bound;
        tokio::spawn(async move {
            // At most a few handlers per lane (channel and kind of envelope), the rest waiting
            // as parsed envelopes: a burst holds no handler futures beyond those running.
            let mut dispatcher = Dispatcher::new(handler);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    // Reap each handler as it ends (and start the next of its lane): a finished
                    // task keeps its whole future allocated until it is joined.
                    Some(()) = dispatcher.join_next(), if !dispatcher.is_idle() => {}
                    inbound = rx.recv() => match inbound {
                        Some(inbound) => dispatcher.offer(inbound),
                        None => break,
                    },
                }
            }
            tracing::info!("shutting down: no new envelopes");
            // Let handlers that already started finish their Slack calls, and the envelopes
            // waiting for their lane be handled, within the bound.
            let _ = tokio::time::timeout(bound / 2, async {
                while dispatcher.join_next().await.is_some() {}
            })
            .await;
            if dispatcher.waiting() > 0 {
                tracing::error!(
                    envelopes = dispatcher.waiting(),
                    "stopped before handling every acked envelope; Slack will not redeliver them"
                );
            }
            // The storms' tasks (pointer replies, message edits, the budgeted checker, the
            // watchers) stop here: what they left is in the store for the next process.
            storms.stop(bound / 10).await;
            resumer.abort();
            if let Some(weekly) = weekly {
                // Stopped by the shutdown token; a post under way is cut (its claim goes stale).
                weekly.abort();
            }
            // Checks in flight: their Jenkins handle is in the store; hand them back so the
            // next process (or another replica) resumes them without waiting for the lease.
            coordinator.abort_all();
            match store.release_leases(&instance).await {
                Ok(n) if n > 0 => {
                    tracing::info!(checks = n, "handed in-flight checks back to the store")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not hand checks back; they resume when their lease expires")
                }
            }
            let _ = tokio::time::timeout(bound * 2 / 5, async {
                let _ = transport.await;
                server_stop.cancel();
                let _ = server.await;
            })
            .await;
            server_stop.cancel();
            tracing::info!("stopped");
        })
    };

    Ok(RunningBot {
        shutdown,
        server_stop,
        coordinator,
        storms,
        task,
        ops_addr,
        identity,
        metrics,
        store,
        connected: connected_rx,
        fatal: fatal_rx,
        weekly: weekly_rx,
    })
}

/// Records the first fatal cause; later ones are only logged by their sources.
fn set_fatal(tx: &watch::Sender<Option<String>>, line: String) {
    tx.send_if_modified(|f| {
        f.is_none() && {
            *f = Some(line);
            true
        }
    });
}

/// Runs the bot until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn run(config: Arc<Config>, secrets: Secrets) -> Result<()> {
    let bot = start(config, secrets, Options::default()).await?;
    tracing::info!(ops = %bot.ops_addr, "linkbot is running");
    tokio::select! {
        _ = wait_for_signal() => {
            bot.stop().await;
            Ok(())
        }
        line = bot.fatal() => {
            // Exit non-zero with the cause, so the orchestrator shows it and restarts.
            tracing::error!(cause = line.as_str(), "linkbot cannot go on; stopping");
            bot.stop().await;
            Err(anyhow::anyhow!(line))
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Installs rustls' ring provider once (reqwest and hyper-rustls both need one).
pub fn rustls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
