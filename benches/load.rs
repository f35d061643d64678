//! Load benchmark: the real bot ([`linkbot::app::start`]) over loopback against the simulated
//! Slack, directory, Jenkins and IAM of [`linkbot::sim::world::World`].
//!
//! ```text
//! cargo bench --bench load -- [acks] [baseline] [rss] [polling] [storm] [storm2000] [parse] [all]
//!     [--quick] [--full] [--bot-process] [--rates=100,500,2000] [--web-latency-ms=N]
//! ```
//!
//! - `acks`: Socket Mode envelopes (`@linkbot help` mentions, which the bot answers with
//!   `chat.postMessage`) pushed at fixed rates (100, 500 and 2000 per second, 10 s each; 3 s with
//!   `--quick`); the fake Slack records the time from writing each envelope to reading its ack.
//!   The same rates first run against a minimal acking client (the "floor": what the fake,
//!   loopback and a bare WebSocket client cost on their own). `--bot-process` runs the bot in a
//!   child process instead of this one.
//! - `baseline`: the same rates against a bare slack-morphism 2.31 Socket Mode bot
//!   (`SlackClientSocketModeListener`: Nagle on, ack after the callback, which posts the reply).
//! - `--web-latency-ms=N` puts a proxy in front of the fake's Web API that holds every call N ms,
//!   as a round trip to real Slack would (for `acks` and `baseline`).
//! - `rss`: 1000 checks of distinct locations whose builds take 60 s, all in flight at once
//!   (`max_concurrent = 1000`); the bot runs alone in a child process (this binary, `bot-child`)
//!   so its VmRSS/VmHWM are its own; the sims' process is reported separately.
//!   `BENCH_CHILD_WRAPPER=heaptrack` runs that child under a profiler.
//! - `polling`: Jenkins requests per check and the delay from a build's end to its verdict, on
//!   60 s builds polled with the production minimum (1 s), plus the 10-minute numbers of the pure
//!   schedule. `--full` adds a real 10-minute build.
//! - `storm`: 2000 alert messages over 200 locations as fast as possible, storm mode off: builds triggered
//!   (must be 200) and the time until all 2000 alert threads hold a verdict.
//! - `storm2000`: storm mode (issue 12): 2000 alerts for 2000 distinct locations pushed over
//!   10 s, the bot alone in a child process pacing its Slack calls as in production, the fake
//!   Slack enforcing the method tiers over a real minute; observed for 2 minutes from the first
//!   alert: when the storm was declared, builds triggered, Jenkins requests a minute, Slack calls
//!   a minute by method and 429s, when the storm message showed its cause line, peak RSS, ack
//!   p50/p99. Then the same with `[storm] enabled = false`, for comparison.
//! - `parse`: ack latency of `@linkbot help` mentions at 200/s while 4 checks download and
//!   parse two 4 MiB artifacts each (a 4 MiB Secret of ~150k keys whose `slclient.toml` is a
//!   base64 TOML of tables, a 4 MiB ConfigMap), against the same rate with the bot idle.
//!   Target: p99 within 1 ms of idle.
//!
//! Every wait is bounded; the bench stops by itself. It only measures: it is not a test (nothing
//! fails on a missed target, the output says MET or NOT MET), and it never reaches beyond
//! 127.0.0.1.

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use linkbot::app::{self, Options};
use linkbot::config::{Config, Secrets};
use linkbot::diagnosis::verdict::VerdictCode;
use linkbot::jenkins::{next_poll, PollPolicy};
use linkbot::sim::jenkins::Behaviour;
use linkbot::sim::slack::{self as fake, SimSlackConfig, SimSlackState, SlackSim};
use linkbot::sim::world::{self, World, ALERT_BOT, ENGINEER, ONCALL_CHANNEL};
use linkbot::slack::budget::EditRate;
use serde_json::Value;
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const RATES: [u32; 3] = [100, 500, 2000];
const ACK_WAIT: Duration = Duration::from_secs(120);
const CONNECT_WAIT: Duration = Duration::from_secs(30);

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    // `cargo test --all-targets` runs bench binaries too, without `--bench`: the load benchmark
    // is minutes of release-mode work, so there it only says how to run it.
    if !args.iter().any(|a| a == "--bench" || !a.starts_with('-')) {
        println!("load benchmark: run it with `cargo bench --bench load [-- acks|baseline|rss|polling|storm|storm2000|parse|queued|all]`");
        return Ok(());
    }
    if args.first().map(String::as_str) == Some("bot-child") {
        let config = args.get(1).context("bot-child needs a config path")?;
        let pacing = Pacing::parse(args.get(2).map_or("unpaced", String::as_str))?;
        return runtime.block_on(bot_child(Path::new(config), pacing));
    }
    let flags = Flags {
        quick: args.iter().any(|a| a == "--quick"),
        full: args.iter().any(|a| a == "--full"),
        bot_process: args.iter().any(|a| a == "--bot-process"),
        paced: args.iter().any(|a| a == "--paced"),
        in_flight: args.iter().any(|a| a == "--in-flight"),
        unbudgeted: args.iter().any(|a| a == "--unbudgeted"),
        web_latency: Duration::from_millis(flag_value(&args, "--web-latency-ms=").unwrap_or(0)),
        rates: match args.iter().find_map(|a| a.strip_prefix("--rates=")) {
            Some(list) => list
                .split(',')
                .map(|r| r.trim().parse::<u32>().ok().filter(|r| *r > 0))
                .collect::<Option<Vec<u32>>>()
                .context("--rates= takes envelopes per second, e.g. --rates=100,500")?,
            None => RATES.to_vec(),
        },
    };
    // `cargo bench` passes `--bench`; anything starting with `-` is a flag.
    let mut chosen: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if chosen.is_empty() || chosen.contains(&"all") {
        chosen = vec![
            "acks",
            "baseline",
            "rss",
            "polling",
            "storm",
            "parse",
            "storm2000",
            "queued",
        ];
    }
    for name in &chosen {
        if ![
            "acks",
            "baseline",
            "rss",
            "polling",
            "storm",
            "parse",
            "storm2000",
            "queued",
        ]
        .contains(name)
        {
            bail!(
                "unknown scenario {name:?}: say acks, baseline, rss, polling, storm, parse, storm2000, queued or all"
            );
        }
    }
    app::rustls_provider();
    println!("linkbot load benchmark — {}", machine());
    runtime.block_on(async {
        for name in chosen {
            let started = Instant::now();
            match name {
                "acks" => acks(&flags).await?,
                "baseline" => baseline(&flags).await?,
                "rss" => rss(&flags).await?,
                "polling" => polling(&flags).await?,
                "storm" => storm().await?,
                "storm2000" => storm2000().await?,
                "queued" => queued().await?,
                "parse" => parse(&flags).await?,
                _ => {}
            }
            println!("({name} took {:.1} s)\n", started.elapsed().as_secs_f64());
        }
        anyhow::Ok(())
    })?;
    // Connections of the bots and sims may still be closing: do not wait for them.
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

fn flag_value(args: &[String], prefix: &str) -> Option<u64> {
    args.iter()
        .find_map(|a| a.strip_prefix(prefix))
        .and_then(|v| v.parse().ok())
}

struct Flags {
    /// Which rates `acks` and `baseline` run.
    rates: Vec<u32>,
    /// Delay added to every Web API call (a proxy in front of the fake), as real Slack's
    /// round trip would; 0: none.
    web_latency: Duration,
    quick: bool,
    full: bool,
    bot_process: bool,
    /// `rss` with Slack paced as in production (`--paced`) instead of not at all.
    paced: bool,
    /// `rss` stops the bot 20 s after every check is running, before any verdict
    /// (`--in-flight`): under a heap profiler, its peak is then the in-flight peak.
    in_flight: bool,
    /// `rss` without the edit budget (`--unbudgeted`): 1,000 progress edits a second, which
    /// production never sends (it always has the budget); the measure before 2026-12-01.
    unbudgeted: bool,
}

// ---------------------------------------------------------------------------------------------
// Measuring helpers

/// The machine, in one line.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or("?".into(), |kb| format!("{:.1} GiB", kb as f64 / 1048576.0));
    format!("{cpus} CPUs ({model}), {mem} RAM")
}

#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    n: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    // Nearest rank.
    let rank = |p: f64| {
        let i = ((p * v.len() as f64).ceil() as usize).saturating_sub(1);
        v.get(i).copied().unwrap_or_default()
    };
    Stats {
        n: v.len(),
        p50: rank(0.50),
        p99: rank(0.99),
        max: v.last().copied().unwrap_or_default(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

/// VmRSS and VmHWM (kB) of a process (`None`: this one).
#[derive(Clone, Copy, Debug, Default)]
struct Mem {
    rss_kb: u64,
    hwm_kb: u64,
    threads: u64,
}

fn mem_of(pid: Option<u32>) -> Mem {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".into(),
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Mem {
        rss_kb: field("VmRSS:"),
        hwm_kb: field("VmHWM:"),
        threads: field("Threads:"),
    }
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

/// Checks `pred` on the fake Slack's state every `every` until it holds or `timeout` passes.
/// For predicates that scan every message (too costly to re-run on each state change).
async fn poll_until(
    slack: &SlackSim,
    timeout: Duration,
    every: Duration,
    mut pred: impl FnMut(&SimSlackState) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if slack.wait_until(&mut pred, Duration::ZERO).await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// How many distinct threads of the on-call channel hold a verdict.
fn answered_threads(s: &SimSlackState) -> usize {
    s.messages()
        .iter()
        .filter(|m| m.channel == ONCALL_CHANNEL && world::is_verdict(m))
        .filter_map(|m| m.thread_ts.as_deref())
        .collect::<HashSet<_>>()
        .len()
}

/// [`answered_threads`] now.
async fn answered_count(slack: &SlackSim) -> usize {
    let mut n = 0;
    slack
        .wait_until(
            |s| {
                n = answered_threads(s);
                true
            },
            Duration::ZERO,
        )
        .await;
    n
}

/// `World::config_toml` with some `[check]` keys replaced.
fn config_toml(world: &World, store: &str, set: &[(&str, String)]) -> String {
    world
        .config_toml(store)
        .lines()
        .map(|line| {
            set.iter()
                .find(|(k, _)| line.starts_with(&format!("{k} = ")))
                .map_or_else(|| line.to_string(), |(k, v)| format!("{k} = {v}"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn options() -> Options {
    Options {
        lease: Duration::from_secs(30),
        resume_every: Duration::from_secs(10),
        shutdown_bound: Duration::from_secs(5),
        listen: Some(([127, 0, 0, 1], 0).into()),
        instance: "bench".into(),
        pace_slack: false,
        slack_edits: None,
    }
}

// ---------------------------------------------------------------------------------------------
// The bot: in this process, or alone in a child process (this binary, `bot-child`)

enum Bot {
    InProcess(Box<app::RunningBot>),
    Child {
        child: tokio::process::Child,
        pid: u32,
    },
}

impl Bot {
    async fn start(world: &World, toml: &str, own_process: bool) -> Result<Bot> {
        Bot::start_with(world, toml, own_process, Pacing::Unpaced).await
    }

    /// [`Bot::start`], the child's Slack calls paced as `pacing` says.
    async fn start_with(
        world: &World,
        toml: &str,
        own_process: bool,
        pacing: Pacing,
    ) -> Result<Bot> {
        if own_process {
            let path = world.dir().join("bot.toml");
            std::fs::write(&path, toml).context("writing bot.toml")?;
            // BENCH_CHILD_WRAPPER (e.g. `heaptrack`) runs the bot process under a profiler.
            let exe = std::env::current_exe()?;
            let mut cmd = match std::env::var("BENCH_CHILD_WRAPPER") {
                Ok(wrapper) if !wrapper.is_empty() => {
                    let mut c = tokio::process::Command::new(wrapper);
                    c.arg(exe);
                    c
                }
                _ => tokio::process::Command::new(exe),
            };
            cmd.arg("bot-child")
                .arg(&path)
                .arg(pacing.as_str())
                .envs(world.secret_env())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true);
            let mut child = cmd.spawn().context("starting the bot process")?;
            let pid = child.id().context("the bot process has no pid")?;
            let stdout = child.stdout.take().context("no stdout")?;
            let mut lines = BufReader::new(stdout).lines();
            // A wrapper may print lines of its own first.
            let ready = tokio::time::timeout(CONNECT_WAIT, async {
                while let Ok(Some(line)) = lines.next_line().await {
                    if line == "ready" {
                        return true;
                    }
                }
                false
            })
            .await;
            if ready != Ok(true) {
                bail!("the bot process did not get ready within {CONNECT_WAIT:?}");
            }
            Ok(Bot::Child { child, pid })
        } else {
            let config = Config::parse(toml).map_err(|p| anyhow::anyhow!("bad bot.toml: {p:?}"))?;
            let connections = config.slack.connections;
            let bot = app::start(Arc::new(config), world.secrets(), options()).await?;
            if !bot.wait_connected(connections, CONNECT_WAIT).await {
                bail!("the bot did not connect to the fake Slack");
            }
            Ok(Bot::InProcess(Box::new(bot)))
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Bot::InProcess(_) => None,
            Bot::Child { pid, .. } => Some(*pid),
        }
    }

    async fn stop(self) {
        match self {
            Bot::InProcess(bot) => {
                let _ = tokio::time::timeout(Duration::from_secs(15), bot.stop()).await;
            }
            Bot::Child { mut child, .. } => {
                // Closing stdin asks the child to stop gracefully.
                drop(child.stdin.take());
                if tokio::time::timeout(Duration::from_secs(15), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.kill().await;
                }
            }
        }
    }
}

/// How the bot paces its Slack calls in a bench.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pacing {
    /// Not at all: every call at once (fast, but no production bot sends that).
    Unpaced,
    /// Message edits through the production edit budget (Tier 3); posts not paced, so that a
    /// thousand checks can start within seconds.
    EditsBudgeted,
    /// As in production: Slack's tiers, the per-channel `chat.postMessage` pacing, the budget.
    Paced,
}

impl Pacing {
    fn as_str(self) -> &'static str {
        match self {
            Pacing::Unpaced => "unpaced",
            Pacing::EditsBudgeted => "edits-budgeted",
            Pacing::Paced => "paced",
        }
    }

    fn parse(s: &str) -> Result<Pacing> {
        [Pacing::Unpaced, Pacing::EditsBudgeted, Pacing::Paced]
            .into_iter()
            .find(|p| p.as_str() == s)
            .with_context(|| format!("unknown pacing {s:?}"))
    }
}

/// The child: the bot alone, configured from `path` and the environment, until stdin closes.
async fn bot_child(path: &Path, pacing: Pacing) -> Result<()> {
    app::rustls_provider();
    let config = Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let secrets = Secrets::from_env().map_err(|e| anyhow::anyhow!("{e}"))?;
    let connections = config.slack.connections;
    // Paced: as in production (Slack's tiers, the per-channel chat.postMessage pacing, the
    // Tier 3 edit budget).
    let options = Options {
        pace_slack: pacing == Pacing::Paced,
        slack_edits: (pacing == Pacing::EditsBudgeted).then_some(EditRate::TIER_3),
        ..options()
    };
    let bot = app::start(Arc::new(config), secrets, options).await?;
    if !bot.wait_connected(connections, CONNECT_WAIT).await {
        bail!("the bot did not connect");
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready")?;
        out.flush()?;
    }
    let mut sink = [0u8; 64];
    let mut stdin = tokio::io::stdin();
    while stdin.read(&mut sink).await.map(|n| n > 0).unwrap_or(false) {}
    bot.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// acks

fn help_mention(n: u32) -> Value {
    let text = format!("<@{}> help", fake::SIM_BOT_USER_ID);
    fake::app_mention(ONCALL_CHANNEL, ENGINEER, &text, &World::user_ts(n))
}

/// Pushes `rate × secs` help mentions at a fixed rate (a tokio interval: 1 ms timer resolution,
/// so at 2000/s envelopes leave in pairs each millisecond) and returns the ack latencies.
/// With `replies`, also waits until the bot answered each one (so rates do not overlap).
async fn run_rate(
    slack: &SlackSim,
    first: &mut u32,
    rate: u32,
    secs: f64,
    replies: bool,
) -> Result<(Stats, f64)> {
    let n = (f64::from(rate) * secs).round() as u32;
    let envelopes: Vec<Value> = (0..n).map(|i| help_mention(*first + i)).collect();
    *first += n;
    let acks_before = slack.acks().len();
    let msgs_before = slack.messages().len();
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / u64::from(rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    for envelope in envelopes {
        tick.tick().await;
        slack.push(envelope).await?;
    }
    let achieved = f64::from(n) / started.elapsed().as_secs_f64();
    let target = acks_before + n as usize;
    if !slack
        .wait_until(|s| s.acks().len() >= target, ACK_WAIT)
        .await
    {
        bail!(
            "only {} of {n} envelopes were acked",
            slack.acks().len() - acks_before
        );
    }
    let latencies: Vec<Duration> = slack.acks()[acks_before..]
        .iter()
        .filter_map(|a| a.latency)
        .collect();
    if replies {
        let want = msgs_before + n as usize;
        if !slack
            .wait_until(|s| s.messages().len() >= want, Duration::from_secs(120))
            .await
        {
            bail!(
                "the bot answered only {} of {n} mentions",
                slack.messages().len() - msgs_before
            );
        }
    }
    // Let the previous rate's work settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok((stats(latencies), achieved))
}

fn print_rates_header(title: &str) {
    println!("{title}");
    println!(
        "  {:>10} {:>10} {:>7} {:>10} {:>10} {:>10}",
        "rate/s", "achieved", "acks", "p50 ms", "p99 ms", "max ms"
    );
}

fn print_rate(rate: u32, achieved: f64, s: &Stats) {
    println!(
        "  {:>10} {:>10.0} {:>7} {:>10} {:>10} {:>10}",
        rate,
        achieved,
        s.n,
        ms(s.p50),
        ms(s.p99),
        ms(s.max)
    );
}

async fn rates(
    slack: &SlackSim,
    list: &[u32],
    secs: f64,
    replies: bool,
) -> Result<Vec<(u32, Stats)>> {
    let mut n = 1;
    // Warm-up (connections, allocator, SQLite): discarded.
    run_rate(slack, &mut n, 100, 2.0, replies).await?;
    let mut out = Vec::new();
    for &rate in list {
        let (s, achieved) = run_rate(slack, &mut n, rate, secs, replies).await?;
        print_rate(rate, achieved, &s);
        out.push((rate, s));
    }
    Ok(out)
}

/// The floor: a minimal client that acks each envelope as soon as it reads it (Nagle off).
async fn floor_client(slack_api: String, app_token: String, stop: CancellationToken) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Id {
        envelope_id: Option<String>,
    }
    let open: Value = reqwest::Client::new()
        .post(format!("{slack_api}/apps.connections.open"))
        .bearer_auth(app_token)
        .send()
        .await?
        .json()
        .await?;
    let url = open["url"]
        .as_str()
        .context("apps.connections.open gave no url")?;
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await?;
    loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            frame = ws.next() => frame,
        };
        match frame {
            Some(Ok(Message::Text(text))) => {
                if let Ok(Id {
                    envelope_id: Some(id),
                }) = serde_json::from_str::<Id>(text.as_str())
                {
                    ws.send(Message::text(format!("{{\"envelope_id\":\"{id}\"}}")))
                        .await?;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return Ok(()),
        }
    }
}

async fn floor(list: &[u32], secs: f64) -> Result<Vec<(u32, Stats)>> {
    let slack = SlackSim::start(SimSlackConfig::default()).await?;
    let stop = CancellationToken::new();
    for _ in 0..2 {
        let api = slack.base_url().as_str().trim_end_matches('/').to_string();
        let token = slack.app_token().expose().to_string();
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Err(e) = floor_client(api, token, stop).await {
                eprintln!("floor client: {e:#}");
            }
        });
    }
    if !slack.wait_connections(2, CONNECT_WAIT).await {
        bail!("the floor client did not connect");
    }
    print_rates_header(
        "Floor — the fake Slack + loopback + a minimal acking WebSocket client (2 connections):",
    );
    let out = rates(&slack, list, secs, false).await;
    stop.cancel();
    out
}

/// A proxy in front of the fake's Web API (`api`, e.g. `http://127.0.0.1:P/api`) that holds
/// every call for `delay` first, like a round trip to real Slack. Returns its URL and its stop.
async fn latency_proxy(api: &str, delay: Duration) -> Result<(String, CancellationToken)> {
    use axum::extract::{Request, State};
    use axum::response::{IntoResponse, Response};
    let origin = url::Url::parse(api)?.origin().ascii_serialization();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/api", listener.local_addr()?);
    let client = reqwest::Client::new();
    async fn forward(
        State((client, origin, delay)): State<(reqwest::Client, String, Duration)>,
        req: Request,
    ) -> Response {
        tokio::time::sleep(delay).await;
        let target = format!(
            "{origin}{}",
            req.uri().path_and_query().map_or("/", |p| p.as_str())
        );
        let method = req.method().clone();
        let headers = req.headers().clone();
        let Ok(body) = axum::body::to_bytes(req.into_body(), 16 << 20).await else {
            return axum::http::StatusCode::BAD_REQUEST.into_response();
        };
        let mut out = client.request(method, target).body(body);
        for name in [
            axum::http::header::CONTENT_TYPE,
            axum::http::header::AUTHORIZATION,
        ] {
            if let Some(v) = headers.get(&name) {
                out = out.header(name, v);
            }
        }
        match out.send().await {
            Ok(res) => {
                let status = res.status();
                let ctype = res.headers().get(axum::http::header::CONTENT_TYPE).cloned();
                let body = res.bytes().await.unwrap_or_default();
                let mut resp = (status, body).into_response();
                if let Some(ctype) = ctype {
                    resp.headers_mut()
                        .insert(axum::http::header::CONTENT_TYPE, ctype);
                }
                resp
            }
            Err(_) => axum::http::StatusCode::BAD_GATEWAY.into_response(),
        }
    }
    let app = axum::Router::new()
        .fallback(forward)
        .with_state((client, origin, delay));
    let stop = CancellationToken::new();
    let until = stop.clone().cancelled_owned();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(until)
            .await;
    });
    Ok((url, stop))
}

async fn acks(flags: &Flags) -> Result<()> {
    let secs = if flags.quick { 3.0 } else { 10.0 };
    println!(
        "== acks: Socket Mode ack latency (fake Slack: envelope written → ack read), {secs} s per rate, Web API latency {} ms ==",
        flags.web_latency.as_millis()
    );
    let floor = floor(&flags.rates, secs).await?;
    let world = World::start().await?;
    let mut toml = world.config_toml(&world.sqlite_url("acks"));
    let _proxy = if flags.web_latency.is_zero() {
        None
    } else {
        let fake = world.slack.base_url().to_string();
        let (url, stop) = latency_proxy(&fake, flags.web_latency).await?;
        toml = toml.replace(
            &format!("api_url = \"{fake}\""),
            &format!("api_url = \"{url}\""),
        );
        Some(stop.drop_guard())
    };
    let bot = Bot::start(&world, &toml, flags.bot_process).await?;
    let place = if flags.bot_process {
        "in its own process"
    } else {
        "in the bench process"
    };
    print_rates_header(&format!(
        "linkbot ({place}; 2 connections; each envelope an `@linkbot help` mention it answers with chat.postMessage):"
    ));
    let bot_stats = rates(&world.slack, &flags.rates, secs, true).await?;
    bot.stop().await;
    println!(
        "  The floor's share at each rate (fake + loopback + a client that does nothing else):"
    );
    for ((rate, f), (_, b)) in floor.iter().zip(&bot_stats) {
        println!(
            "    {rate:>5}/s: floor p50 {} ms / p99 {} ms; linkbot above the floor: p50 +{} ms, p99 +{} ms",
            ms(f.p50),
            ms(f.p99),
            ms(b.p50.saturating_sub(f.p50)),
            ms(b.p99.saturating_sub(f.p99))
        );
    }
    if let Some((_, s)) = bot_stats
        .iter()
        .find(|(r, _)| *r == 500)
        .filter(|_| flags.web_latency.is_zero())
    {
        let met = s.p50 <= Duration::from_millis(1) && s.p99 <= Duration::from_millis(2);
        println!(
            "  Target at 500/s: p50 ≤ 1 ms and p99 ≤ 2 ms — p50 {} ms, p99 {} ms: {}",
            ms(s.p50),
            ms(s.p99),
            if met { "MET" } else { "NOT MET" }
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// baseline: a bare slack-morphism Socket Mode bot

mod bare {
    use slack_morphism::prelude::*;
    use std::sync::Arc;

    pub type Connector =
        SlackClientHyperConnector<hyper_util::client::legacy::connect::HttpConnector>;

    pub static BOT_TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

    /// What a bare bot does with a mention: answer it in its thread, then return (→ ack).
    pub async fn on_push(
        event: SlackPushEventCallback,
        client: Arc<SlackClient<Connector>>,
        _state: SlackClientEventsUserState,
    ) -> UserCallbackResult<()> {
        if let SlackEventCallbackBody::AppMention(m) = event.event {
            let token = SlackApiToken::new(SlackApiTokenValue(
                BOT_TOKEN.get().cloned().unwrap_or_default(),
            ));
            let session = client.open_session(&token);
            let req = SlackApiChatPostMessageRequest::new(
                m.channel,
                SlackMessageContent::new().with_text(linkbot::slack::commands::USAGE.to_string()),
            )
            .with_thread_ts(m.origin.ts);
            session.chat_post_message(&req).await?;
        }
        Ok(())
    }

    /// Starts the listener with two connections against the fake at `api_url`.
    pub async fn start(
        api_url: &str,
        app_token: &str,
    ) -> anyhow::Result<SlackClientSocketModeListener<Connector>> {
        let connector = SlackClientHyperConnector::with_connector(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .with_slack_api_url(api_url);
        let client = Arc::new(SlackClient::new(connector));
        let env = Arc::new(SlackClientEventsListenerEnvironment::new(client));
        let callbacks = SlackSocketModeListenerCallbacks::new().with_push_events(on_push);
        let config = SlackClientSocketModeConfig::new()
            .with_max_connections_count(2)
            .with_initial_backoff_in_seconds(0);
        let listener = SlackClientSocketModeListener::new(&config, env, callbacks);
        listener
            .listen_for(&SlackApiToken::new(SlackApiTokenValue(
                app_token.to_string(),
            )))
            .await?;
        listener.start().await;
        Ok(listener)
    }
}

async fn baseline(flags: &Flags) -> Result<()> {
    let secs = if flags.quick { 3.0 } else { 10.0 };
    println!(
        "== baseline: a bare slack-morphism 2.31 Socket Mode bot (SlackClientSocketModeListener), {secs} s per rate, Web API latency {} ms ==",
        flags.web_latency.as_millis()
    );
    let slack = SlackSim::start(SimSlackConfig::default()).await?;
    let _ = bare::BOT_TOKEN.set(slack.bot_token().expose().to_string());
    let mut api = slack.base_url().as_str().trim_end_matches('/').to_string();
    let _proxy = if flags.web_latency.is_zero() {
        None
    } else {
        let (url, stop) = latency_proxy(&api, flags.web_latency).await?;
        api = url;
        Some(stop.drop_guard())
    };
    let listener = bare::start(&api, slack.app_token().expose()).await?;
    if !slack.wait_connections(2, CONNECT_WAIT).await {
        bail!("the slack-morphism listener did not connect");
    }
    print_rates_header("slack-morphism listener (Nagle on; acks after its callback, which posts the help text with chat.postMessage):");
    let out = rates(&slack, &flags.rates, secs, true).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), listener.shutdown()).await;
    out?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// rss

async fn rss(flags: &Flags) -> Result<()> {
    const CHECKS: u32 = 1000;
    const BUILD: Duration = Duration::from_secs(60);
    let slack = if flags.paced {
        "Slack paced as in production"
    } else if flags.unbudgeted {
        "Slack calls not paced, no edit budget"
    } else {
        "edits through the production budget, posts not paced"
    };
    println!("== rss: {CHECKS} checks in flight (distinct locations, 60 s builds, max_concurrent = {CHECKS}); the bot alone in a child process; {slack} ==");
    let world = World::start().await?;
    let locations: Vec<_> = (0..CHECKS)
        .map(|n| world.scenario_with(VerdictCode::RegionMismatch, n, World::timing(BUILD)))
        .collect();
    let toml = config_toml(
        &world,
        &world.sqlite_url("rss"),
        &[
            ("max_concurrent", CHECKS.to_string()),
            ("poll_interval_min_ms", "1000".into()),
            ("job_timeout_secs", "600".into()),
        ],
    );
    let sims_idle = mem_of(None);
    // `--paced`: Slack paced as in production (tiers, chat.postMessage per channel, the edit
    // budget): progress edits are deferred, not sent 1000 at a time; the verdicts then come at
    // Slack's pace, so the whole run below shows the ones answered within its window.
    let pacing = if flags.paced {
        Pacing::Paced
    } else if flags.unbudgeted {
        Pacing::Unpaced
    } else {
        Pacing::EditsBudgeted
    };
    let bot = Bot::start_with(&world, &toml, true, pacing).await?;
    let pid = bot.pid().context("child pid")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let bot_idle = mem_of(Some(pid));
    let envelopes: Vec<Value> = locations
        .iter()
        .enumerate()
        .map(|(i, loc)| {
            let text = format!("<@{}> check {loc}", fake::SIM_BOT_USER_ID);
            fake::app_mention(
                ONCALL_CHANNEL,
                ENGINEER,
                &text,
                &World::user_ts(i as u32 + 1),
            )
        })
        .collect();
    let started = Instant::now();
    for envelope in envelopes {
        world.slack.push(envelope).await?;
    }
    if !world
        .jenkins
        .wait_for_triggers(CHECKS as usize, Duration::from_secs(60))
        .await
    {
        bail!(
            "only {} of {CHECKS} builds were triggered within 60 s",
            world.jenkins.triggers().len()
        );
    }
    let all_running = started.elapsed();
    // Sample while every check is in flight (no verdict yet), then until all are answered.
    let mut peak_inflight = Mem::default();
    let mut samples = 0;
    let deadline = Instant::now() + BUILD + Duration::from_secs(90);
    let mut answered = 0;
    let (mut fds_at_peak, mut threads_at_peak) = (0, 0);
    while Instant::now() < deadline {
        let m = mem_of(Some(pid));
        answered = answered_count(&world.slack).await;
        if answered == 0 {
            if m.rss_kb > peak_inflight.rss_kb {
                fds_at_peak = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
                threads_at_peak = m.threads;
            }
            peak_inflight.rss_kb = peak_inflight.rss_kb.max(m.rss_kb);
            peak_inflight.hwm_kb = m.hwm_kb;
            samples += 1;
        }
        if answered >= CHECKS as usize
            || (flags.in_flight && started.elapsed() > all_running + Duration::from_secs(20))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let inflight_window = started.elapsed();
    let bot_end = mem_of(Some(pid));
    let sims_peak = mem_of(None);
    let jenkins_requests = world.jenkins.request_count();
    let jenkins_kinds: Vec<String> = [
        "trigger",
        "queue_list",
        "queue",
        "builds",
        "build",
        "artifact",
        "console",
    ]
    .iter()
    .map(|k| format!("{k} {}", world.jenkins.count(k)))
    .collect();
    bot.stop().await;
    println!("  all {CHECKS} builds triggered {:.1} s after the first mention; {samples} samples while all were in flight", all_running.as_secs_f64());
    println!(
        "  bot process at the peak: {fds_at_peak} open file descriptors, {threads_at_peak} threads"
    );
    println!(
        "  bot process  idle (connected):                 VmRSS {}",
        mib(bot_idle.rss_kb)
    );
    println!(
        "  bot process  peak with {CHECKS} checks in flight:   VmRSS {} (VmHWM then {})",
        mib(peak_inflight.rss_kb),
        mib(peak_inflight.hwm_kb)
    );
    println!(
        "  bot process  whole run incl. {} verdicts ({:.0} s): VmHWM {}",
        if answered >= CHECKS as usize {
            CHECKS.to_string()
        } else {
            format!("{answered} (NOT all)")
        },
        inflight_window.as_secs_f64(),
        mib(bot_end.hwm_kb)
    );
    println!(
        "  sims + driver (bench process): before {} → VmHWM {}",
        mib(sims_idle.rss_kb),
        mib(sims_peak.hwm_kb)
    );
    println!("  Jenkins requests for the {CHECKS} checks: {jenkins_requests}");
    println!("  Jenkins requests by kind: {}", jenkins_kinds.join(", "));
    let met = peak_inflight.hwm_kb <= 30 * 1024;
    println!(
        "  Target: peak RSS ≤ 30 MB with {CHECKS} checks in flight — {}: {}",
        mib(peak_inflight.hwm_kb),
        if met { "MET" } else { "NOT MET" }
    );
    Ok(())
}

/// How many distinct threads of the on-call channel hold a reply of the bot.
fn replied_threads(s: &SimSlackState) -> usize {
    s.messages()
        .iter()
        .filter(|m| m.channel == ONCALL_CHANNEL)
        .filter_map(|m| m.thread_ts.as_deref())
        .collect::<HashSet<_>>()
        .len()
}

/// `queued`: memory per request waiting for a slot. 10 checks run (10-minute builds,
/// `max_concurrent = 10`) and requests for other locations queue behind them, in steps of
/// 1000 up to 10,000; after each step, once every request's thread has its "waiting for a
/// slot" reply, the bot's VmRSS is read. The growth per request is the slope between the
/// first and the last step (the fixed costs of the first step cancel out).
async fn queued() -> Result<()> {
    const RUNNING: u32 = 10;
    const STEP: u32 = 1000;
    const QUEUED: u32 = 10_000;
    const BUILD: Duration = Duration::from_secs(600);
    println!("== queued: {QUEUED} requests waiting behind {RUNNING} running checks (10-minute builds, max_concurrent = {RUNNING}), in steps of {STEP}; the bot alone in a child process ==");
    let world = World::start().await?;
    let locations: Vec<_> = (0..RUNNING + QUEUED)
        .map(|n| world.scenario_with(VerdictCode::RegionMismatch, n, World::timing(BUILD)))
        .collect();
    let toml = config_toml(
        &world,
        &world.sqlite_url("queued"),
        &[
            ("max_concurrent", RUNNING.to_string()),
            ("poll_interval_min_ms", "1000".into()),
            ("job_timeout_secs", "1200".into()),
        ],
    );
    let bot = Bot::start_with(&world, &toml, true, Pacing::EditsBudgeted).await?;
    let pid = bot.pid().context("child pid")?;
    let mention = |i: usize| {
        let text = format!("<@{}> check {}", fake::SIM_BOT_USER_ID, locations[i]);
        fake::app_mention(
            ONCALL_CHANNEL,
            ENGINEER,
            &text,
            &World::user_ts(i as u32 + 1),
        )
    };
    // The running checks first.
    for i in 0..RUNNING as usize {
        world.slack.push(mention(i)).await?;
    }
    if !world
        .jenkins
        .wait_for_triggers(RUNNING as usize, Duration::from_secs(60))
        .await
    {
        bail!("the {RUNNING} running checks did not trigger their builds within 60 s");
    }
    let settle = || async {
        // Let replies in flight finish and the allocator settle before reading.
        tokio::time::sleep(Duration::from_secs(2)).await;
        mem_of(Some(pid))
    };
    let base = settle().await;
    println!(
        "  {RUNNING} running, none queued: VmRSS {}",
        mib(base.rss_kb)
    );
    let mut pushed = RUNNING as usize;
    let mut first: Option<(u32, u64)> = None;
    let mut last = (0, 0);
    for step in 1..=(QUEUED / STEP) {
        let target = (RUNNING + step * STEP) as usize;
        while pushed < target {
            world.slack.push(mention(pushed)).await?;
            pushed += 1;
        }
        if !poll_until(
            &world.slack,
            Duration::from_secs(120),
            Duration::from_millis(200),
            |s| replied_threads(s) >= target,
        )
        .await
        {
            bail!("the {target} requests were not all answered within 120 s");
        }
        let m = settle().await;
        let queued = step * STEP;
        println!(
            "  {queued:>5} queued: VmRSS {} (VmHWM {}), {} threads",
            mib(m.rss_kb),
            mib(m.hwm_kb),
            m.threads
        );
        first.get_or_insert((queued, m.rss_kb));
        last = (queued, m.rss_kb);
    }
    let triggered = world.jenkins.triggers().len();
    bot.stop().await;
    if let Some((q0, r0)) = first {
        let per = (last.1 as f64 - r0 as f64) * 1024.0 / f64::from(last.0 - q0);
        println!(
            "  growth per queued request ({q0} → {} queued): {per:.0} bytes",
            last.0
        );
    }
    println!("  builds triggered: {triggered} (only the running checks: {RUNNING})");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// polling

/// Walks a build through the pure schedule: (build polls, how late the end was seen).
fn schedule(length: Duration, estimated: Option<Duration>, policy: &PollPolicy) -> (u32, Duration) {
    let mut t = Duration::ZERO;
    let mut polls = 0;
    loop {
        polls += 1;
        if t >= length {
            return (polls, t - length);
        }
        t += next_poll(t, estimated, policy);
    }
}

struct Case {
    build: Duration,
    estimated: Duration,
}

async fn polling(flags: &Flags) -> Result<()> {
    println!("== polling: Jenkins requests per check and detection delay ==");
    let policy = PollPolicy::default();
    println!("  Pure schedule (linkbot::jenkins::next_poll, min 1 s, max 60 s); requests = build polls + trigger + 1 queue poll + 2 artifacts:");
    println!(
        "  {:>10} {:>10} {:>12} {:>10} {:>14}",
        "build s", "estimate", "build polls", "requests", "end seen late"
    );
    for (len, est) in [
        (600, Some(600)),
        (590, Some(600)),
        (610, Some(600)),
        (630, Some(600)),
        (900, Some(600)),
        (600, None),
    ] {
        let (polls, late) = schedule(
            Duration::from_secs(len),
            est.map(Duration::from_secs),
            &policy,
        );
        let est = est.map_or("none".into(), |e| format!("{e} s"));
        println!(
            "  {len:>10} {est:>10} {polls:>12} {:>10} {:>12.2} s",
            polls + 4,
            late.as_secs_f64()
        );
    }

    let cases = [
        Case {
            build: Duration::from_secs(60),
            estimated: Duration::from_secs(60),
        },
        Case {
            build: Duration::from_secs(57),
            estimated: Duration::from_secs(60),
        },
        Case {
            build: Duration::from_secs(66),
            estimated: Duration::from_secs(60),
        },
    ];
    println!("  Time-scaled live run: the real bot, poll_interval_min_ms = 1000 (production), 3 checks at once:");
    live_polling(&cases, Duration::from_secs(300)).await?;
    if flags.full {
        println!("  Full live run: one real 10-minute build, estimated 10 minutes:");
        live_polling(
            &[Case {
                build: Duration::from_secs(600),
                estimated: Duration::from_secs(600),
            }],
            Duration::from_secs(1800),
        )
        .await?;
    }
    Ok(())
}

async fn live_polling(cases: &[Case], job_timeout: Duration) -> Result<()> {
    const QUEUE: Duration = Duration::from_millis(50);
    let world = World::start().await?;
    let locations: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let b = Behaviour {
                queue_time: QUEUE,
                build_time: c.build,
                estimated: c.estimated,
                ..Behaviour::default()
            };
            world
                .scenario_with(VerdictCode::RegionMismatch, i as u32, b)
                .to_string()
        })
        .collect();
    let toml = config_toml(
        &world,
        &world.sqlite_url("polling"),
        &[
            ("poll_interval_min_ms", "1000".into()),
            ("job_timeout_secs", job_timeout.as_secs().to_string()),
        ],
    );
    let bot = Bot::start(&world, &toml, false).await?;
    let threads: Vec<String> = (0..cases.len())
        .map(|i| World::user_ts(i as u32 + 1))
        .collect();
    for (loc, ts) in locations.iter().zip(&threads) {
        let text = format!("<@{}> check {loc}", fake::SIM_BOT_USER_ID);
        world
            .slack
            .push(fake::app_mention(ONCALL_CHANNEL, ENGINEER, &text, ts))
            .await?;
    }
    let bound = cases.iter().map(|c| c.build).max().unwrap_or_default() + Duration::from_secs(60);
    // When each trigger arrived (by CLUSTERID), as the sim recorded it.
    let triggered = async {
        let mut at: Vec<(String, Instant)> = Vec::new();
        while at.len() < cases.len() {
            if !world
                .jenkins
                .wait_for_triggers(at.len() + 1, Duration::from_secs(30))
                .await
            {
                break;
            }
            let now = Instant::now();
            for t in world.jenkins.triggers().iter().skip(at.len()) {
                at.push((t.get("CLUSTERID").cloned().unwrap_or_default(), now));
            }
        }
        at
    };
    let verdicts = futures_util::future::join_all(threads.iter().map(|ts| async {
        world
            .wait_verdicts(ONCALL_CHANNEL, ts, 1, bound)
            .await
            .map(|_| Instant::now())
    }));
    let (triggered, verdicts) = tokio::join!(triggered, verdicts);
    bot.stop().await;

    // Attribute requests: the k-th trigger (of location triggers()[k]) made queue item 101 + k
    // and, queue times being equal, build k + 1.
    let mut per = vec![[0u32; 5]; cases.len()];
    let mut unattributed = 0;
    let mut triggers_seen = 0;
    for line in world.jenkins.requests() {
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .split('?')
            .next()
            .unwrap_or("");
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (k, kind) = if line.starts_with("POST") && path.ends_with("/buildWithParameters") {
            triggers_seen += 1;
            (Some(triggers_seen - 1), 0)
        } else if let ["queue", "item", id, ..] = segs.as_slice() {
            (id.parse::<usize>().ok().and_then(|i| i.checked_sub(101)), 1)
        } else {
            let n = segs
                .iter()
                .rev()
                .find_map(|s| s.parse::<usize>().ok())
                .and_then(|n| n.checked_sub(1));
            let kind = if path.contains("/artifact/") {
                3
            } else if path.ends_with("/consoleText") {
                4
            } else {
                2
            };
            (n, kind)
        };
        match k.and_then(|k| per.get_mut(k)) {
            Some(row) => row[kind] += 1,
            None => unattributed += 1,
        }
    }
    println!(
        "  {:>8} {:>9} {:>8} {:>7} {:>7} {:>9} {:>8} {:>9} {:>16}",
        "build s",
        "estimate",
        "trigger",
        "queue",
        "build",
        "artifact",
        "console",
        "requests",
        "detection delay"
    );
    let order: Vec<String> = world
        .jenkins
        .triggers()
        .iter()
        .map(|t| t.get("CLUSTERID").cloned().unwrap_or_default())
        .collect();
    for (i, c) in cases.iter().enumerate() {
        let loc = &locations[i];
        let row = order
            .iter()
            .position(|l| l == loc)
            .and_then(|k| per.get(k))
            .copied()
            .unwrap_or_default();
        let total: u32 = row.iter().sum();
        let delay = triggered
            .iter()
            .find(|(l, _)| l == loc)
            .zip(verdicts.get(i).copied().flatten())
            .map(|((_, at), seen)| seen.saturating_duration_since(*at + QUEUE + c.build));
        let delay = delay.map_or("no verdict".into(), |d| format!("{:.3} s", d.as_secs_f64()));
        println!(
            "  {:>8} {:>9} {:>8} {:>7} {:>7} {:>9} {:>8} {:>9} {:>16}",
            c.build.as_secs(),
            format!("{} s", c.estimated.as_secs()),
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            total,
            delay
        );
    }
    if unattributed > 0 {
        println!("  ({unattributed} requests not attributed to a check)");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// storm

async fn storm() -> Result<()> {
    const ALERTS: u32 = 2000;
    const LOCATIONS: u32 = 200;
    println!("== storm: {ALERTS} alerts over {LOCATIONS} locations, as fast as possible (World's bot.toml: max_concurrent 16) ==");
    let world = World::start().await?;
    let kinds = [
        VerdictCode::RegionMismatch,
        VerdictCode::ConfigMissing,
        VerdictCode::ApiKeyInvalid,
        VerdictCode::ApiKeyAccepted,
        VerdictCode::JobFailed,
        VerdictCode::ArtifactMissing,
    ];
    let locations: Vec<String> = (0..LOCATIONS)
        .map(|n| {
            world
                .scenario(kinds[n as usize % kinds.len()], n)
                .to_string()
        })
        .collect();
    // Storm mode off: this scenario measures every location built once (the follower); storm
    // mode is `storm2000`'s.
    let toml = world.config_toml(&world.sqlite_url("storm")) + "\n[storm]\nenabled = false\n";
    let bot = Bot::start(&world, &toml, false).await?;
    let envelopes: Vec<Value> = (0..ALERTS)
        .map(|i| {
            let loc = &locations[(i % LOCATIONS) as usize];
            let text = format!(
                "Labels:\n - alertname = SatelliteLinkConnectorDeployCannotgetIAMTokenFromIAMServer\n - severity = critical\n - cluster_id = {loc}\n - namespace = satellite-link\nAnnotations:\n - summary = \"Link connector is rebooting : no IAM Token can be retrieved from IAM Server\""
            );
            fake::message(ONCALL_CHANNEL, &text, &World::user_ts(i + 1), Some(ALERT_BOT), Some("A0ALERTMGR"), None)
        })
        .collect();
    let started = Instant::now();
    for envelope in envelopes {
        world.slack.push(envelope).await?;
    }
    let pushed = started.elapsed();
    let all_acked = world
        .slack
        .wait_until(
            |s| s.acks().len() >= ALERTS as usize,
            Duration::from_secs(30),
        )
        .await;
    let acked = started.elapsed();
    let answered = poll_until(
        &world.slack,
        Duration::from_secs(300),
        Duration::from_millis(20),
        |s| answered_threads(s) >= ALERTS as usize,
    )
    .await;
    let done = started.elapsed();
    // Any late trigger would show up now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let builds = world.jenkins.triggers().len();
    let distinct: HashSet<String> = world
        .jenkins
        .triggers()
        .iter()
        .filter_map(|t| t.get("CLUSTERID").cloned())
        .collect();
    let ack_stats = stats(
        world
            .slack
            .acks()
            .iter()
            .filter_map(|a| a.latency)
            .collect(),
    );
    let answered_now = answered_count(&world.slack).await;
    let posts = world.slack.calls("chat.postMessage").len();
    let updates = world.slack.calls("chat.update").len();
    let jenkins_requests = world.jenkins.request_count();
    let jenkins_kinds: Vec<String> = [
        "trigger",
        "queue_list",
        "queue",
        "builds",
        "build",
        "artifact",
        "console",
    ]
    .iter()
    .map(|k| format!("{k} {}", world.jenkins.count(k)))
    .collect();
    bot.stop().await;
    println!("  pushed {ALERTS} alerts in {:.3} s; all acked: {all_acked} after {:.3} s (ack p50 {} ms, p99 {} ms, max {} ms)", pushed.as_secs_f64(), acked.as_secs_f64(), ms(ack_stats.p50), ms(ack_stats.p99), ms(ack_stats.max));
    println!(
        "  threads answered with a verdict: {answered_now} of {ALERTS}{} after {:.2} s",
        if answered { "" } else { " (TIMED OUT)" },
        done.as_secs_f64()
    );
    println!("  Jenkins builds triggered: {builds} ({} distinct locations); Jenkins requests: {jenkins_requests}", distinct.len());
    println!("  Jenkins requests by kind: {}", jenkins_kinds.join(", "));
    println!("  Slack calls: chat.postMessage {posts}, chat.update {updates}");
    println!(
        "  Target: {LOCATIONS} builds for the {LOCATIONS}-location storm — {builds}: {}",
        if builds == LOCATIONS as usize && answered {
            "MET"
        } else {
            "NOT MET"
        }
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// storm2000: storm mode on and off

async fn storm2000() -> Result<()> {
    storm2000_run(true).await?;
    storm2000_run(false).await
}

/// What the storm message showed, and when (from the first alert).
fn storm_message_state(s: &SimSlackState) -> (bool, bool) {
    let mut declared = false;
    let mut cause = false;
    for m in s.messages() {
        if m.channel == ONCALL_CHANNEL
            && m.thread_ts.is_none()
            && m.ephemeral_to.is_none()
            && m.text.as_deref().unwrap_or("").starts_with("Alert storm")
        {
            declared = true;
            let blocks = m.blocks.as_ref().map(|b| b.to_string()).unwrap_or_default();
            cause |= blocks.contains("Cause —");
        }
    }
    (declared, cause)
}

async fn storm2000_run(on: bool) -> Result<()> {
    const ALERTS: u32 = 2000;
    const PUSH_OVER: Duration = Duration::from_secs(10);
    const OBSERVE: Duration = Duration::from_secs(120);
    const BUILD: Duration = Duration::from_secs(20);
    const METHODS: [&str; 6] = [
        "chat.postMessage",
        "chat.update",
        "chat.getPermalink",
        "chat.postEphemeral",
        "reactions.add",
        "usergroups.users.list",
    ];
    println!(
        "== storm2000, storm mode {}: {ALERTS} alerts for {ALERTS} locations over {} s; 20 s builds (api_key_accepted); the bot alone in a child process, Slack paced as in production; the fake Slack enforcing the tiers over 60 s; observed {} s ==",
        if on { "ON ([storm] defaults: threshold 20, window 300 s, sample 3, 10 builds/min)" } else { "OFF" },
        PUSH_OVER.as_secs(),
        OBSERVE.as_secs()
    );
    let world = World::start().await?;
    world.slack.enforce_tiers(Duration::from_secs(60));
    let locations: Vec<String> = (0..ALERTS)
        .map(|n| {
            world
                .scenario_with(VerdictCode::ApiKeyAccepted, n, World::timing(BUILD))
                .to_string()
        })
        .collect();
    // Jenkins polled with the production minimum (1 s), not the tests' 25 ms.
    let mut toml = config_toml(
        &world,
        &world.sqlite_url(if on { "storm-on" } else { "storm-off" }),
        &[("poll_interval_min_ms", "1000".into())],
    );
    if !on {
        toml.push_str("\n[storm]\nenabled = false\n");
    }
    let bot = Bot::start_with(&world, &toml, true, Pacing::Paced).await?;
    let pid = bot.pid().context("child pid")?;
    let envelopes: Vec<Value> = locations
        .iter()
        .enumerate()
        .map(|(i, loc)| {
            let text = format!(
                "Labels:\n - alertname = SatelliteLinkConnectorDeployCannotgetIAMTokenFromIAMServer\n - severity = critical\n - cluster_id = {loc}\nAnnotations:\n - summary = \"Link connector is rebooting : no IAM Token can be retrieved from IAM Server\""
            );
            fake::message(ONCALL_CHANNEL, &text, &World::user_ts(i as u32 + 1), Some(ALERT_BOT), Some("A0ALERTMGR"), None)
        })
        .collect();
    let started = Instant::now();
    let mut declared_at = None;
    let mut cause_at = None;
    let mut hwm_kb = 0;
    let observe = |declared_at: &mut Option<Duration>,
                   cause_at: &mut Option<Duration>,
                   hwm: &mut u64,
                   state: (bool, bool)| {
        if state.0 && declared_at.is_none() {
            *declared_at = Some(started.elapsed());
        }
        if state.1 && cause_at.is_none() {
            *cause_at = Some(started.elapsed());
        }
        *hwm = (*hwm).max(mem_of(Some(pid)).hwm_kb);
    };
    for (i, envelope) in envelopes.into_iter().enumerate() {
        tokio::time::sleep_until(started + PUSH_OVER * i as u32 / ALERTS).await;
        world.slack.push(envelope).await?;
        if i % 100 == 0 {
            let mut state = (false, false);
            world
                .slack
                .wait_until(
                    |s| {
                        state = storm_message_state(s);
                        true
                    },
                    Duration::ZERO,
                )
                .await;
            observe(&mut declared_at, &mut cause_at, &mut hwm_kb, state);
        }
    }
    let pushed = started.elapsed();
    while started.elapsed() < OBSERVE {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut state = (false, false);
        world
            .slack
            .wait_until(
                |s| {
                    state = storm_message_state(s);
                    true
                },
                Duration::ZERO,
            )
            .await;
        observe(&mut declared_at, &mut cause_at, &mut hwm_kb, state);
    }
    let elapsed = started.elapsed();
    let minutes = elapsed.as_secs_f64() / 60.0;
    let builds = world.jenkins.triggers().len();
    let jenkins_requests = world.jenkins.request_count();
    let ack_stats = stats(
        world
            .slack
            .acks()
            .iter()
            .filter_map(|a| a.latency)
            .collect(),
    );
    let (answered, verdicts) = {
        let mut counts = (0, 0);
        world
            .slack
            .wait_until(
                |s| {
                    let threads: HashSet<&str> = s
                        .messages()
                        .iter()
                        .filter(|m| m.channel == ONCALL_CHANNEL && m.ephemeral_to.is_none())
                        .filter_map(|m| m.thread_ts.as_deref())
                        .collect();
                    counts = (threads.len(), answered_threads(s));
                    true
                },
                Duration::ZERO,
            )
            .await;
        counts
    };
    let limited = world.slack.rate_limited();
    let calls: Vec<String> = METHODS
        .iter()
        .map(|m| {
            let n = world.slack.calls(m).len();
            format!(
                "{m} {n} ({:.1}/min, 429: {})",
                n as f64 / minutes,
                limited.get(*m).copied().unwrap_or(0)
            )
        })
        .collect();
    let secs = |d: Option<Duration>| {
        d.map_or("never".to_string(), |d| format!("{:.2} s", d.as_secs_f64()))
    };
    bot.stop().await;
    println!(
        "  pushed {ALERTS} alerts in {:.2} s; acks: {} (p50 {} ms, p99 {} ms, max {} ms)",
        pushed.as_secs_f64(),
        ack_stats.n,
        ms(ack_stats.p50),
        ms(ack_stats.p99),
        ms(ack_stats.max)
    );
    println!(
        "  storm declared: {} after the first alert; cause line: {}",
        secs(declared_at),
        secs(cause_at)
    );
    println!(
        "  Jenkins: {builds} builds triggered; {jenkins_requests} requests in {:.0} s ({:.0}/min)",
        elapsed.as_secs_f64(),
        jenkins_requests as f64 / minutes
    );
    println!("  Slack calls: {}", calls.join(", "));
    println!(
        "  Slack 429s (all methods): {}",
        limited.values().sum::<u64>()
    );
    println!("  alert threads answered (any bot message): {answered} of {ALERTS}; with a verdict: {verdicts}");
    println!("  bot peak RSS (VmHWM): {}", mib(hwm_kb));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// parse: acks while checks parse 4 MiB artifacts

/// `connector_getConnectorAPIKey.log` of just under `max` bytes: a Secret with many small data
/// keys, then an `slclient.toml` whose base64 TOML is nothing but tables.
fn big_secret_log(max: usize) -> Vec<u8> {
    let mut s = String::from(
        "+ kubectl get secret storage-secret-store -n kube-system -o yaml\napiVersion: v1\ndata:\n",
    );
    let mut i = 0;
    while s.len() < max * 3 / 4 {
        s.push_str(&format!("  key{i}: dmFsdWU=\n"));
        i += 1;
    }
    let mut toml = String::new();
    let mut t = 0;
    // base64 grows 4/3: leave room for the tail below.
    while (s.len() + toml.len() * 4 / 3) < max - 4096 {
        toml.push_str(&format!("[t{t}]\n"));
        t += 1;
    }
    s.push_str(&format!(
        "  slclient.toml: {}\nkind: Secret\nmetadata:\n  name: storage-secret-store\n  namespace: kube-system\ntype: Opaque\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, toml)
    ));
    s.into_bytes()
}

/// `connector_sl_configMap.log` of just under `max` bytes: many keys, then `region`.
fn big_configmap_log(max: usize) -> Vec<u8> {
    let mut s = String::from(
        "+ kubectl get configmap satellite-link-config -n satellite-link -o yaml\napiVersion: v1\ndata:\n",
    );
    let mut i = 0;
    while s.len() < max - 4096 {
        s.push_str(&format!("  key{i}: value-{i}\n"));
        i += 1;
    }
    s.push_str("  region: us-east\nkind: ConfigMap\nmetadata:\n  name: satellite-link-config\n");
    s.into_bytes()
}

async fn parse(flags: &Flags) -> Result<()> {
    const RATE: u32 = 200;
    const CHECKS: u32 = 4;
    let rounds: u32 = if flags.quick { 3 } else { 10 };
    let max = linkbot::config::DEFAULT_ARTIFACT_MAX_BYTES as usize;
    println!("== parse: ack latency at {RATE}/s, idle vs while {CHECKS} checks parse two 4 MiB artifacts each ({rounds} rounds) ==");
    let world = World::start().await?;
    let key_log = big_secret_log(max);
    let cm_log = big_configmap_log(max);
    println!(
        "  artifacts: {} + {} bytes (artifact_max_bytes {max})",
        key_log.len(),
        cm_log.len()
    );
    let toml = config_toml(
        &world,
        &world.sqlite_url("parse"),
        &[("poll_interval_min_ms", "250".into())],
    );
    let bot = Bot::start(&world, &toml, flags.bot_process).await?;
    let mut first = 1;
    // Idle: the same number of envelopes the busy windows will see, roughly.
    let (idle, _) = run_rate(
        &world.slack,
        &mut first,
        RATE,
        if flags.quick { 3.0 } else { 10.0 },
        true,
    )
    .await?;

    let mut busy: Vec<Duration> = Vec::new();
    let mut windows = Vec::new();
    for round in 0..rounds {
        let locations: Vec<String> = (0..CHECKS)
            .map(|i| {
                let loc = world.scenario(VerdictCode::ConfigMissing, 1000 + round * CHECKS + i);
                world.jenkins.set_behaviour(
                    loc.as_str(),
                    Behaviour {
                        artifacts: vec![
                            (
                                "logs/connector_getConnectorAPIKey.log".into(),
                                key_log.clone(),
                            ),
                            ("logs/connector_sl_configMap.log".into(), cm_log.clone()),
                        ],
                        ..Behaviour::default()
                    },
                );
                loc.to_string()
            })
            .collect();
        let answered_before = answered_count(&world.slack).await;
        let artifacts_before = world.jenkins.count("artifact");
        for loc in &locations {
            let text = format!("<@{}> check {loc}", fake::SIM_BOT_USER_ID);
            world
                .slack
                .push(fake::app_mention(
                    ONCALL_CHANNEL,
                    ENGINEER,
                    &text,
                    &World::user_ts(first),
                ))
                .await?;
            first += 1;
        }
        // The window opens when the first artifact is asked for and closes when all 4 verdicts
        // are posted: downloads and parses happen inside it.
        let deadline = Instant::now() + Duration::from_secs(60);
        while world.jenkins.count("artifact") == artifacts_before {
            if Instant::now() >= deadline {
                bail!("round {round}: no artifact was downloaded within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let acks_before = world.slack.acks().len();
        let msgs_before = world.slack.messages().len();
        let opened = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / u64::from(RATE)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut sent = 0usize;
        // Every 10th tick (50 ms) looks whether the 4 verdicts are out.
        loop {
            if sent % 10 == 0
                && answered_count(&world.slack).await >= answered_before + CHECKS as usize
            {
                break;
            }
            if opened.elapsed() > Duration::from_secs(120) {
                bail!("round {round}: the {CHECKS} checks did not all answer within 120 s");
            }
            tick.tick().await;
            world.slack.push(help_mention(first)).await?;
            first += 1;
            sent += 1;
        }
        let window = opened.elapsed();
        let target = acks_before + sent;
        if !world
            .slack
            .wait_until(|s| s.acks().len() >= target, ACK_WAIT)
            .await
        {
            bail!("round {round}: not every envelope was acked");
        }
        busy.extend(
            world.slack.acks()[acks_before..]
                .iter()
                .filter_map(|a| a.latency),
        );
        // Wait for the help answers (and the verdicts) so rounds do not overlap.
        let want = msgs_before + sent;
        world
            .slack
            .wait_until(|s| s.messages().len() >= want, Duration::from_secs(60))
            .await;
        windows.push((window, sent));
    }
    let rss = mem_of(bot.pid());
    bot.stop().await;
    let busy = stats(busy);
    println!(
        "  windows (first artifact download → 4th verdict): {}",
        windows
            .iter()
            .map(|(w, n)| format!("{:.0} ms/{n} acks", w.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  idle:    n {:>5}, p50 {} ms, p99 {} ms, max {} ms",
        idle.n,
        ms(idle.p50),
        ms(idle.p99),
        ms(idle.max)
    );
    println!(
        "  parsing: n {:>5}, p50 {} ms, p99 {} ms, max {} ms",
        busy.n,
        ms(busy.p50),
        ms(busy.p99),
        ms(busy.max)
    );
    println!(
        "  memory of {}: VmRSS {}, VmHWM {}",
        if flags.bot_process {
            "the bot process"
        } else {
            "the bench process (bot + sims)"
        },
        mib(rss.rss_kb),
        mib(rss.hwm_kb)
    );
    let met = busy.p99 <= idle.p99 + Duration::from_millis(1);
    println!(
        "  Target: p99 while parsing within 1 ms of idle — {} ms vs {} ms: {}",
        ms(busy.p99),
        ms(idle.p99),
        if met { "MET" } else { "NOT MET" }
    );
    Ok(())
}
