//! Production behaviour, end to end: the real bot ([`linkbot::app::start`]) and the real binary
//! against the simulated world ([`World`]) on loopback.
//!
//! - Restarts: a bot killed (`kill -9`) or stopped (SIGTERM) in the middle of a check is
//!   started again; the check is resumed from the Jenkins build persisted in the store, the
//!   verdict lands in the original Slack message, Jenkins ran one build, the audit log has the
//!   check once. The restart-to-verdict / restart-to-resume times are printed (`--nocapture`).
//! - Replicas on one PostgreSQL (`LINKBOT_TEST_DATABASE_URL`, each test in a schema of its own;
//!   unset: skipped, or failed with `LINKBOT_REQUIRE_POSTGRES=1`): an alert storm makes one
//!   build and every alert thread gets the verdict; a replica that dies mid-check has its check
//!   finished by the other.
//! - Operations: `/metrics` parsed by a real OpenMetrics parser, `/healthz`, `/readyz`.
//! - The command line over the store (`audit`, `status`) and `check`, whose logs never carry a
//!   secret.
//!
//! No sleep is used as synchronisation: every wait is on a condition, bounded by a timeout.

use crate::common;

use base64::Engine as _;
use linkbot::app::{self, Options, RunningBot};
use linkbot::diagnosis::verdict::VerdictCode;
use linkbot::domain::{Environment, LocationId};
use linkbot::sim::slack::{self as fake, Failure, SimMessage};
use linkbot::sim::world::{self, World, ALERT_BOT, ENGINEER, IAM_KEY, ONCALL_CHANNEL};
use linkbot::slack::blocks::{ButtonValue, ACTION_PAGE};
use linkbot::store::{AuditEntry, AuditKind, Store};
use openmetrics_parser::openmetrics::parse_openmetrics;
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};
use std::future::Future;
use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long any one condition is waited for.
const WAIT: Duration = Duration::from_secs(20);
/// How long a whole test may take.
const TEST_BOUND: Duration = Duration::from_secs(60);
/// A build slow enough to kill the bot while it runs.
const SLOW_BUILD: Duration = Duration::from_secs(3);
/// A short lease, so a killed bot's check is taken over quickly.
const SHORT_LEASE: Duration = Duration::from_secs(2);

// ---- helpers -----------------------------------------------------------------------------

/// Runs a test body bounded in time.
async fn bounded<F: Future<Output = ()>>(body: F) {
    if tokio::time::timeout(TEST_BOUND, body).await.is_err() {
        panic!("test did not finish within {TEST_BOUND:?}");
    }
}

fn options(instance: &str, lease: Duration) -> Options {
    Options {
        lease,
        resume_every: Duration::from_millis(200),
        shutdown_bound: Duration::from_secs(6),
        listen: Some(([127, 0, 0, 1], 0).into()),
        instance: instance.into(),
        pace_slack: false,
        slack_edits: None,
    }
}

/// Starts a bot on `store_url` and waits until both its Socket Mode connections are up.
async fn start_bot(world: &World, store_url: &str, instance: &str, lease: Duration) -> RunningBot {
    let config = Arc::new(
        world
            .config(store_url)
            .expect("the world's bot.toml parses"),
    );
    let bot = app::start(config, world.secrets(), options(instance, lease))
        .await
        .unwrap_or_else(|e| panic!("{instance} did not start: {e:#}"));
    assert!(
        bot.wait_connected(2, WAIT).await,
        "{instance} did not open its Socket Mode connections"
    );
    bot
}

/// `@linkbot check <loc>` by an engineer in the on-call channel; returns the message's ts.
async fn mention(world: &World, loc: &LocationId, n: u32) -> String {
    let ts = World::user_ts(n);
    let text = format!("<@{}> check {loc}", fake::SIM_BOT_USER_ID);
    world
        .slack
        .push(fake::app_mention(ONCALL_CHANNEL, ENGINEER, &text, &ts))
        .await
        .expect("the mention reaches a bot");
    ts
}

/// Alertmanager's alert for `loc` (the seed's text form) at `ts`.
async fn alert(world: &World, loc: &LocationId, ts: &str) {
    let text = format!(
        "Labels:\n - alertname = SatelliteLinkConnectorDeployCannotgetIAMTokenFromIAMServer\n - severity = critical\n - cluster_id = {loc}\nAnnotations:\n - summary = \"Link connector is rebooting : no IAM Token can be retrieved from IAM Server\""
    );
    world
        .slack
        .push(fake::message(
            ONCALL_CHANNEL,
            &text,
            ts,
            Some(ALERT_BOT),
            Some("A0ALERTMGR"),
            None,
        ))
        .await
        .expect("the alert reaches a bot");
}

/// Waits until the thread's progress message shows the Jenkins build running; returns its ts.
async fn wait_build_running(world: &World, thread: &str) -> String {
    let running = |m: &SimMessage| world::render_message(m).contains("Build #");
    let ok = world
        .slack
        .wait_until(
            |s| s.thread(ONCALL_CHANNEL, thread).into_iter().any(running),
            WAIT,
        )
        .await;
    assert!(
        ok,
        "the build never showed as running: {:#?}",
        world.thread(ONCALL_CHANNEL, thread)
    );
    world
        .thread(ONCALL_CHANNEL, thread)
        .into_iter()
        .find(|m| running(m))
        .map(|m| m.ts)
        .expect("the running message")
}

/// Waits until the message `ts` says a restarted (or other) bot resumed its check.
async fn wait_resumed(world: &World, ts: &str) {
    let ok = world
        .slack
        .wait_until(
            |s| {
                s.message(ONCALL_CHANNEL, ts).is_some_and(|m| {
                    world::render_message(m).contains("Resumed after a bot restart")
                })
            },
            WAIT,
        )
        .await;
    assert!(ok, "no bot ever said it resumed the check");
}

/// Waits for the verdict in `thread`.
async fn wait_verdict(world: &World, thread: &str) {
    if world
        .wait_verdicts(ONCALL_CHANNEL, thread, 1, WAIT)
        .await
        .is_none()
    {
        panic!(
            "no verdict in thread {thread} within {WAIT:?}: {:#?}",
            world.thread(ONCALL_CHANNEL, thread)
        );
    }
}

/// The thread holds exactly one bot message: the one posted at the start (`original_ts`),
/// edited in place into the verdict `want`. Returns it.
fn assert_answered_in_place(
    world: &World,
    thread: &str,
    original_ts: &str,
    want: VerdictCode,
) -> SimMessage {
    let msgs: Vec<SimMessage> = world
        .thread(ONCALL_CHANNEL, thread)
        .into_iter()
        .filter(|m| m.ephemeral_to.is_none())
        .collect();
    assert_eq!(msgs.len(), 1, "one bot message in the thread: {msgs:#?}");
    let m = &msgs[0];
    assert_eq!(m.ts, original_ts, "the verdict is in the original message");
    assert!(world::is_verdict(m), "{}", world::render_message(m));
    assert_eq!(world::verdict_code(m), Some(want));
    assert!(
        m.versions
            .iter()
            .any(|v| format!("{:?}", v.blocks).contains("Build #")),
        "the same message showed the build running before the verdict"
    );
    m.clone()
}

/// An alert storm for one location is one incident (issue 10): waits until the thread of the
/// alert that opened it holds the verdict `want` and every other alert thread holds exactly one
/// bot message, the pointer to that incident ("Fired again"), and no second verdict anywhere.
async fn wait_storm_answered(world: &World, threads: &[String], want: VerdictCode) {
    let answers = |s: &fake::SimSlackState, ts: &str| -> Vec<SimMessage> {
        s.thread(ONCALL_CHANNEL, ts)
            .into_iter()
            .filter(|m| m.ephemeral_to.is_none())
            .cloned()
            .collect()
    };
    let ok = world
        .slack
        .wait_until(
            |s| {
                threads
                    .iter()
                    .filter(|ts| {
                        answers(s, ts)
                            .iter()
                            .any(|m| world::verdict_code(m) == Some(want))
                    })
                    .count()
                    == 1
                    && threads.iter().all(|ts| answers(s, ts).len() == 1)
            },
            WAIT,
        )
        .await;
    let shown: Vec<Vec<String>> = threads
        .iter()
        .map(|ts| {
            world
                .thread(ONCALL_CHANNEL, ts)
                .iter()
                .map(world::render_message)
                .collect()
        })
        .collect();
    assert!(ok, "not one verdict and a pointer per repeat: {shown:#?}");
    for ts in threads {
        let msgs: Vec<SimMessage> = world
            .thread(ONCALL_CHANNEL, ts)
            .into_iter()
            .filter(|m| m.ephemeral_to.is_none())
            .collect();
        assert_eq!(msgs.len(), 1, "one answer per alert thread: {msgs:#?}");
        if !world::is_verdict(&msgs[0]) {
            let text = msgs[0].text.clone().unwrap_or_default();
            assert!(text.contains("Fired again"), "thread {ts}: {text}");
        }
    }
}

/// Jenkins ran exactly one build, for `loc`.
fn assert_one_build(world: &World, loc: &LocationId) {
    let triggers = world.jenkins.triggers();
    assert_eq!(triggers.len(), 1, "one Jenkins build: {triggers:#?}");
    assert_eq!(
        triggers[0].get("CLUSTERID").map(String::as_str),
        Some(loc.as_str())
    );
}

/// The audit log has the check of `loc` exactly once, with its verdict and the build link.
async fn assert_audited_once(
    store: &Arc<dyn Store>,
    loc: &LocationId,
    want: VerdictCode,
) -> AuditEntry {
    let entries = store
        .audit(None, Some(loc), 100)
        .await
        .expect("the audit log reads");
    let checks: Vec<&AuditEntry> = entries
        .iter()
        .filter(|e| e.kind == AuditKind::Check)
        .collect();
    assert_eq!(checks.len(), 1, "the check is audited once: {entries:#?}");
    let entry = checks[0].clone();
    assert_eq!(entry.verdict.as_deref(), Some(want.as_str()));
    let link = entry.link.clone().unwrap_or_default();
    assert!(
        link.ends_with("/job/armada-ha-master-get-info/1/"),
        "the audit entry links the one build: {link}"
    );
    let running = store.in_flight().await.expect("in-flight checks read");
    assert!(running.is_empty(), "nothing left in flight: {running:#?}");
    entry
}

/// `GET url` → (status, body).
async fn get(url: &str) -> Result<(u16, String), reqwest::Error> {
    let resp = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

/// Polls `url` until `pred(status, body)` holds (bounded by [`WAIT`]); returns the last answer.
async fn poll_until(url: &str, pred: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = get(url).await;
        if let Ok((status, body)) = &answer {
            if pred(*status, body) {
                return (*status, body.clone());
            }
        }
        assert!(
            Instant::now() < deadline,
            "{url} never gave the expected answer; last: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn number(v: &OpenMetricsValue) -> f64 {
    match v {
        OpenMetricsValue::Counter(c) => c.value.as_f64(),
        OpenMetricsValue::Gauge(g) => g.as_f64(),
        OpenMetricsValue::Histogram(h) => h.count.unwrap_or(0) as f64,
        other => panic!("unexpected value {other:?}"),
    }
}

type Exposition = MetricsExposition<OpenMetricsType, OpenMetricsValue>;

fn parse_metrics(body: &str) -> Exposition {
    parse_openmetrics(body).unwrap_or_else(|e| panic!("not valid OpenMetrics: {e}\n{body}"))
}

/// The sum of every sample of a family (of the given type) whose `label` is `want` (any, if None).
fn metric(exp: &Exposition, name: &str, ty: OpenMetricsType, label: Option<(&str, &str)>) -> f64 {
    let family = exp
        .families
        .get(name)
        .unwrap_or_else(|| panic!("no family {name}"));
    assert_eq!(family.family_type, ty, "{name}");
    family
        .iter_samples()
        .filter(|s| match label {
            None => true,
            Some((label, want)) => {
                s.get_labelset()
                    .ok()
                    .and_then(|l| l.get_label_value(label).map(str::to_string))
                    .as_deref()
                    == Some(want)
            }
        })
        .map(|s| number(&s.value))
        .sum()
}

/// Runs the `linkbot` binary with only `env` in its environment; bounded.
async fn linkbot(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_linkbot"));
    cmd.args(args).env_clear().kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::time::timeout(WAIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("linkbot {args:?} did not finish within {WAIT:?}"))
        .expect("the linkbot binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes the world's `bot.toml` (store at `store_url`) into its scratch folder.
fn write_config(world: &World, store_url: &str) -> PathBuf {
    let path = world.dir().join("bot.toml");
    std::fs::write(&path, world.config_toml(store_url)).expect("writing bot.toml");
    path
}

/// A PostgreSQL schema of its own for `body` (URL with `search_path` set), dropped afterwards.
/// Without `LINKBOT_TEST_DATABASE_URL` the test is skipped, or fails with
/// `LINKBOT_REQUIRE_POSTGRES=1`.
async fn on_postgres<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(schema) = common::postgres_schema(WAIT).await else {
        return;
    };
    let url = schema.url.clone();

    // Spawned so that a failing body still lets the schema be dropped.
    let result = tokio::time::timeout(TEST_BOUND, tokio::spawn(body(url))).await;

    schema.drop_schema(WAIT).await;
    match result {
        Err(_) => panic!("test did not finish within {TEST_BOUND:?}"),
        Ok(Err(join)) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Ok(Err(join)) => panic!("test task failed: {join}"),
        Ok(Ok(())) => {}
    }
}

// ---- restarts on SQLite --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_check_the_restarted_bot_finishes_it_in_the_original_message() {
    bounded(async {
        let world = World::start().await.expect("the world starts");
        let url = world.sqlite_url("kill");
        let loc = world.scenario_with(VerdictCode::ApiKeyInvalid, 1, World::timing(SLOW_BUILD));

        let a = start_bot(&world, &url, "bot-a", SHORT_LEASE).await;
        let thread = mention(&world, &loc, 1).await;
        let original = wait_build_running(&world, &thread).await;
        a.kill();

        let restarted = Instant::now();
        let b = start_bot(&world, &url, "bot-b", SHORT_LEASE).await;
        wait_resumed(&world, &original).await;
        let resume_time = restarted.elapsed();
        wait_verdict(&world, &thread).await;
        println!(
            "kill -9 → restart → resumed: {resume_time:?}, verdict: {:?} (lease {SHORT_LEASE:?}, build {SLOW_BUILD:?})",
            restarted.elapsed()
        );

        let verdict = assert_answered_in_place(&world, &thread, &original, VerdictCode::ApiKeyInvalid);
        assert!(
            world::render_message(&verdict).contains("resumed after a restart"),
            "the restarted bot resumed the persisted build rather than starting over:\n{}",
            world::render_message(&verdict)
        );
        assert_one_build(&world, &loc);
        assert_audited_once(&b.store, &loc, VerdictCode::ApiKeyInvalid).await;
        b.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_mid_check_the_restarted_bot_resumes_it_at_once() {
    bounded(async {
        let world = World::start().await.expect("the world starts");
        let url = world.sqlite_url("stop");
        let loc = world.scenario_with(VerdictCode::RegionMismatch, 2, World::timing(SLOW_BUILD));
        // A long lease: resuming sooner than it proves the stopped bot handed the check back.
        let lease = Duration::from_secs(15);

        let a = start_bot(&world, &url, "bot-a", lease).await;
        let thread = mention(&world, &loc, 2).await;
        let original = wait_build_running(&world, &thread).await;
        let stopping = Instant::now();
        a.stop().await;
        let stopped_in = stopping.elapsed();
        assert!(stopped_in < Duration::from_secs(6), "stop took {stopped_in:?}");

        let restarted = Instant::now();
        let b = start_bot(&world, &url, "bot-b", lease).await;
        wait_resumed(&world, &original).await;
        let resume_time = restarted.elapsed();
        wait_verdict(&world, &thread).await;
        let verdict_time = restarted.elapsed();
        println!(
            "graceful stop ({stopped_in:?}) → restart → resumed: {resume_time:?}, verdict: {verdict_time:?} (lease {lease:?})"
        );
        assert!(
            resume_time < lease / 3,
            "resumed after {resume_time:?}: the lease ({lease:?}) was waited out instead of handed back"
        );

        assert_answered_in_place(&world, &thread, &original, VerdictCode::RegionMismatch);
        assert_one_build(&world, &loc);
        assert_audited_once(&b.store, &loc, VerdictCode::RegionMismatch).await;
        b.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bot_and_an_alert_storm_make_one_build_and_answer_every_alert() {
    bounded(async {
        let world = World::start().await.expect("the world starts");
        let url = world.sqlite_url("storm");
        let loc = world.scenario_with(
            VerdictCode::RegionMismatch,
            9,
            World::timing(Duration::from_secs(1)),
        );
        let bot = start_bot(&world, &url, "bot-storm", SHORT_LEASE).await;
        let threads: Vec<String> = (0..20).map(|i| World::user_ts(200 + i)).collect();
        let storm = Instant::now();
        for ts in &threads {
            alert(&world, &loc, ts).await;
        }
        wait_storm_answered(&world, &threads, VerdictCode::RegionMismatch).await;
        println!(
            "alert storm of {} on one bot: every thread answered in {:?}",
            threads.len(),
            storm.elapsed()
        );
        assert_one_build(&world, &loc);
        assert_audited_once(&bot.store, &loc, VerdictCode::RegionMismatch).await;
        bot.stop().await;
    })
    .await
}

/// Shutdown aborts tasks that may be inside a store call (the resumer, the checks). An abort
/// that lands inside SQLite's `BEGIN IMMEDIATE` once left the connection holding the file's
/// write lock, so the stopping bot's `release_leases` waited out the 15 s busy timeout and
/// failed, and the restarted bot then waited out the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_call_aborted_mid_transaction_leaves_the_sqlite_file_writable() {
    bounded(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("linkbot.db").display());
        let store = linkbot::store::open(&url).await.expect("the store opens");
        for i in 0..2000u32 {
            let s = store.clone();
            let call = tokio::spawn(async move {
                let _ = s.take_over_expired("bot-a", SHORT_LEASE).await;
            });
            // Abort at a different point of the call each time.
            for _ in 0..(i % 40) {
                tokio::task::yield_now().await;
            }
            call.abort();
            let _ = call.await;
            let released =
                tokio::time::timeout(Duration::from_secs(2), store.release_leases("bot-a")).await;
            assert!(
                matches!(released, Ok(Ok(_))),
                "after abort #{i} the file stayed locked: {released:?}"
            );
        }
    })
    .await
}

// ---- replicas on PostgreSQL ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_and_an_alert_storm_make_one_build_and_answer_every_alert() {
    on_postgres(|url| async move {
        let world = World::start().await.expect("the world starts");
        let loc = world.scenario_with(
            VerdictCode::ConfigMissing,
            3,
            World::timing(Duration::from_secs(1)),
        );
        let a = start_bot(&world, &url, "replica-a", SHORT_LEASE).await;
        let b = start_bot(&world, &url, "replica-b", SHORT_LEASE).await;
        assert!(world.slack.wait_connections(4, WAIT).await);

        let threads: Vec<String> = (0..20).map(|i| World::user_ts(300 + i)).collect();
        let storm = Instant::now();
        for ts in &threads {
            alert(&world, &loc, ts).await;
        }
        wait_storm_answered(&world, &threads, VerdictCode::ConfigMissing).await;
        println!(
            "alert storm of {}: every thread answered in {:?}",
            threads.len(),
            storm.elapsed()
        );
        assert_one_build(&world, &loc);
        assert_audited_once(&a.store, &loc, VerdictCode::ConfigMissing).await;
        // Slack spread the storm over both replicas' connections. (Read from the text, not
        // with openmetrics-parser: a replica that finished no check has an empty family, which
        // that parser mis-reads; see tests/server.rs.)
        for bot in [&a, &b] {
            let text = bot.metrics.render();
            let acked: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix("linkbot_envelope_ack_latency_seconds_count "))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("no ack latency count in:\n{text}"));
            assert!(acked > 0.0, "each replica handled part of the storm");
        }
        a.stop().await;
        b.stop().await;
    })
    .await
}

/// How many envelopes `bot` acked (from its metrics text).
fn acked(bot: &RunningBot) -> f64 {
    let text = bot.metrics.render();
    text.lines()
        .find_map(|l| l.strip_prefix("linkbot_envelope_ack_latency_seconds_count "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_clicks_spread_over_two_replicas_page_once() {
    on_postgres(|url| async move {
        let world = World::start().await.expect("the world starts");
        let loc = world.scenario(VerdictCode::ApiKeyInvalid, 5);
        let a = start_bot(&world, &url, "replica-a", SHORT_LEASE).await;
        let b = start_bot(&world, &url, "replica-b", SHORT_LEASE).await;
        assert!(world.slack.wait_connections(4, WAIT).await);
        let thread = mention(&world, &loc, 50).await;
        wait_verdict(&world, &thread).await;
        let shown = world
            .thread(ONCALL_CHANNEL, &thread)
            .into_iter()
            .find(world::is_verdict)
            .expect("the verdict");
        let before = [acked(&a), acked(&b)];

        // Four clicks at once: Slack's round robin hands two to each replica's connections.
        let value = serde_json::to_string(&ButtonValue {
            location: loc.to_string(),
            environment: Environment::Prod,
            target: Some("satellite_link".into()),
        })
        .expect("a button value");
        let action_id = format!("{ACTION_PAGE}:satellite_link");
        let click = || {
            world.slack.push(fake::block_actions(
                ONCALL_CHANNEL,
                ENGINEER,
                &shown.ts,
                &action_id,
                &value,
                Some(&thread),
            ))
        };
        let pushed = tokio::join!(click(), click(), click(), click());
        for p in [pushed.0, pushed.1, pushed.2, pushed.3] {
            p.expect("a live Socket Mode connection");
        }
        let told = |s: &fake::SimSlackState| {
            s.messages()
                .iter()
                .filter(|m| {
                    m.ephemeral_to.as_deref() == Some(ENGINEER)
                        && m.text.as_deref().unwrap_or("").contains("Already paged by")
                })
                .count()
        };
        let page_lines = |s: &fake::SimSlackState| {
            s.thread(ONCALL_CHANNEL, &thread)
                .iter()
                .filter(|m| {
                    m.ephemeral_to.is_none()
                        && m.text.as_deref().unwrap_or("").contains("PagerDuty")
                })
                .count()
        };
        // Every click is answered: one page line, three "already paged".
        let answered = world
            .slack
            .wait_until(|s| told(s) >= 3 && page_lines(s) >= 1, WAIT)
            .await;
        assert!(
            answered,
            "not every click was answered: {:#?}",
            world.thread(ONCALL_CHANNEL, &thread)
        );
        assert_eq!(world.pagerduty.requests().len(), 1, "more than one page");
        assert!(
            world
                .slack
                .wait_until(|s| page_lines(s) == 1 && told(s) == 3, WAIT)
                .await
        );
        assert!(
            acked(&a) > before[0] && acked(&b) > before[1],
            "both replicas handled clicks"
        );
        let escalations = a
            .store
            .audit(None, Some(&loc), 100)
            .await
            .expect("the audit log")
            .into_iter()
            .filter(|e| e.kind == AuditKind::Escalation)
            .count();
        assert_eq!(escalations, 1);
        a.stop().await;
        b.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_dies_mid_check_has_it_finished_by_the_other() {
    on_postgres(|url| async move {
        let world = World::start().await.expect("the world starts");
        let loc = world.scenario_with(VerdictCode::ApiKeyInvalid, 4, World::timing(SLOW_BUILD));

        // Only A is connected when the mention arrives, so A runs the check.
        let a = start_bot(&world, &url, "replica-a", SHORT_LEASE).await;
        let thread = mention(&world, &loc, 4).await;
        let original = wait_build_running(&world, &thread).await;
        let b = start_bot(&world, &url, "replica-b", SHORT_LEASE).await;
        let running = b.store.in_flight().await.expect("in flight");
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].owner, "replica-a", "B leaves a live lease alone");

        a.kill();
        let killed = Instant::now();
        wait_resumed(&world, &original).await;
        let resume_time = killed.elapsed();
        wait_verdict(&world, &thread).await;
        println!(
            "replica killed → the other replica resumed: {resume_time:?}, verdict: {:?} (lease {SHORT_LEASE:?}, build {SLOW_BUILD:?})",
            killed.elapsed()
        );

        let verdict = assert_answered_in_place(&world, &thread, &original, VerdictCode::ApiKeyInvalid);
        assert!(world::render_message(&verdict).contains("resumed after a restart"));
        assert_one_build(&world, &loc);
        assert_audited_once(&b.store, &loc, VerdictCode::ApiKeyInvalid).await;
        b.stop().await;
    })
    .await
}

// ---- operations HTTP -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_check_and_readiness_through_shutdown() {
    bounded(async {
        let world = World::start().await.expect("the world starts");
        let url = world.sqlite_url("metrics");
        let loc = world.scenario(VerdictCode::ConfigMissing, 5);
        let bot = start_bot(&world, &url, "bot-metrics", SHORT_LEASE).await;
        let base = format!("http://{}", bot.ops_addr);

        assert_eq!(
            get(&format!("{base}/healthz")).await.expect("healthz").0,
            200
        );
        poll_until(&format!("{base}/readyz"), |s, _| s == 200).await;

        let thread = mention(&world, &loc, 5).await;
        wait_verdict(&world, &thread).await;

        let (status, body) = get(&format!("{base}/metrics")).await.expect("metrics");
        assert_eq!(status, 200);
        let exp = parse_metrics(&body);
        let counter = OpenMetricsType::Counter;
        assert_eq!(
            metric(
                &exp,
                "linkbot_checks",
                counter,
                Some(("verdict", "config_missing"))
            ),
            1.0,
            "{body}"
        );
        assert_eq!(metric(&exp, "linkbot_checks", counter, None), 1.0, "{body}");
        assert_eq!(
            metric(
                &exp,
                "linkbot_check_duration_seconds",
                OpenMetricsType::Histogram,
                None
            ),
            1.0
        );
        assert!(
            metric(
                &exp,
                "linkbot_jenkins_calls",
                counter,
                Some(("outcome", "ok"))
            ) > 0.0
        );
        assert!(
            metric(
                &exp,
                "linkbot_slack_calls",
                counter,
                Some(("method", "chat.update"))
            ) > 0.0
        );
        assert!(
            metric(
                &exp,
                "linkbot_envelope_ack_latency_seconds",
                OpenMetricsType::Histogram,
                None
            ) > 0.0
        );
        assert_eq!(
            metric(
                &exp,
                "linkbot_checks_in_flight",
                OpenMetricsType::Gauge,
                None
            ),
            0.0
        );

        // Shutdown: keep a handler busy (Slack answers its post with a 429 and Retry-After 2 s),
        // then stop. While the bot drains, /readyz says why it is not ready.
        let posts = world.slack.calls("chat.postMessage").len();
        world.slack.fail_next(
            "chat.postMessage",
            1,
            Failure::RateLimited {
                retry_after_secs: 2,
            },
        );
        let late = world.scenario(VerdictCode::ConfigMissing, 6);
        mention(&world, &late, 6).await;
        assert!(
            world
                .slack
                .wait_until(|s| s.calls("chat.postMessage").len() > posts, WAIT)
                .await
        );
        let stopping = Instant::now();
        let stop = tokio::spawn(bot.stop());
        let (status, body) = poll_until(&format!("{base}/readyz"), |s, _| s != 200).await;
        assert_eq!(status, 503);
        assert!(body.contains("shutting down"), "{body}");
        tokio::time::timeout(WAIT, stop)
            .await
            .expect("stop finishes")
            .expect("stop task");
        assert!(
            stopping.elapsed() < Duration::from_secs(7),
            "{:?}",
            stopping.elapsed()
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_socket_mode_is_down() {
    bounded(async {
        let world = World::start().await.expect("the world starts");
        let url = world.sqlite_url("socket");
        let bot = start_bot(&world, &url, "bot-socket", SHORT_LEASE).await;
        let base = format!("http://{}", bot.ops_addr);
        poll_until(&format!("{base}/readyz"), |s, _| s == 200).await;

        // Slack drops every socket and refuses new ones for the rest of the test.
        world
            .slack
            .fail_next("apps.connections.open", 10_000, Failure::Status(500));
        world.slack.drop_all();
        let (status, body) = poll_until(&format!("{base}/readyz"), |s, _| s != 200).await;
        assert_eq!(status, 503);
        assert!(body.contains("Socket Mode not connected"), "{body}");
        assert_eq!(
            get(&format!("{base}/healthz")).await.expect("healthz").0,
            200
        );
        bot.kill();
    })
    .await
}

// ---- the command line ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_and_status_read_the_store_the_bot_wrote() {
    bounded(async {
        let world = World::start().await.expect("the world starts");
        let url = world.sqlite_url("cli");
        let config = write_config(&world, &url);
        let config = config.to_str().expect("UTF-8 path");
        let loc = world.scenario_with(
            VerdictCode::RegionMismatch,
            7,
            World::timing(Duration::from_secs(2)),
        );
        let bot = start_bot(&world, &url, "bot-cli", SHORT_LEASE).await;
        let thread = mention(&world, &loc, 7).await;
        wait_build_running(&world, &thread).await;

        let status = linkbot(&["status", "--config", config], &[]).await;
        assert!(status.status.success(), "{}", stderr(&status));
        let out = stdout(&status);
        assert!(out.contains(loc.as_str()), "{out}");
        assert!(out.contains("bot-cli") && out.contains("mention"), "{out}");

        wait_verdict(&world, &thread).await;
        let status = linkbot(&["status", "--config", config], &[]).await;
        assert!(status.status.success());
        assert_eq!(stdout(&status).trim(), "No checks in flight.");

        let audit = linkbot(&["audit", "--config", config], &[]).await;
        assert!(audit.status.success(), "{}", stderr(&audit));
        let out = stdout(&audit);
        let line = out
            .lines()
            .find(|l| l.contains(loc.as_str()))
            .unwrap_or_else(|| panic!("the check is not listed:\n{out}"));
        let build = format!(
            "{}job/Containers-Runtime/job/armada-cruiser-automated-recovery/job/armada-ha-master-get-info/1/",
            world.jenkins.base_url()
        );
        for want in ["check", "region_mismatch", ENGINEER, ONCALL_CHANNEL, build.as_str()] {
            assert!(line.contains(want), "{want} missing from: {line}");
        }

        let listed = |o: &Output| stdout(o).contains(loc.as_str());
        let since_hour = linkbot(&["audit", "--config", config, "--since", "1h"], &[]).await;
        assert!(since_hour.status.success() && listed(&since_hour));
        let future = linkbot(
            &["audit", "--config", config, "--since", "2999-01-01T00:00:00Z"],
            &[],
        )
        .await;
        assert!(future.status.success());
        assert_eq!(stdout(&future).trim(), "No audit entries.");
        let this = linkbot(&["audit", "--config", config, "--location", loc.as_str()], &[]).await;
        assert!(this.status.success() && listed(&this));
        let other = world::location_for(VerdictCode::ConfigMissing, 99);
        let other = linkbot(&["audit", "--config", config, "--location", other.as_str()], &[]).await;
        assert!(other.status.success());
        assert_eq!(stdout(&other).trim(), "No audit entries.");

        let bad = linkbot(&["audit", "--config", config, "--since", "yesterday"], &[]).await;
        assert!(!bad.status.success());
        let err = stderr(&bad);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line: {err}");
        assert!(lines[0].contains("yesterday"), "{err}");
        assert!(stdout(&bad).is_empty());

        bot.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_from_the_terminal_logs_json_and_never_a_secret() {
    bounded(async {
        let world = World::start().await.expect("the world starts");
        let config = write_config(&world, &world.sqlite_url("check"));
        let loc = world.scenario(VerdictCode::ApiKeyInvalid, 8);
        let mut env: Vec<(&str, String)> = world.secret_env();
        env.push(("LINKBOT_LOG_FORMAT", "json".into()));
        env.push(("RUST_LOG", "debug".into()));
        let out = linkbot(
            &[
                "check",
                loc.as_str(),
                "--config",
                config.to_str().expect("UTF-8 path"),
                "--format",
                "json",
            ],
            &env,
        )
        .await;
        let (so, se) = (stdout(&out), stderr(&out));
        assert!(out.status.success(), "{se}");

        let report: serde_json::Value = serde_json::from_str(so.trim()).expect("one JSON object");
        assert_eq!(report["verdict"], "api_key_invalid");
        assert_eq!(report["confirmed"], true);
        assert_eq!(report["location"], loc.as_str());

        let logs: Vec<serde_json::Value> = se
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
            })
            .collect();
        assert!(
            logs.iter().any(|l| l["level"] == "DEBUG"),
            "debug logging was on, so the secret check below means something"
        );
        let finished = logs
            .iter()
            .find(|l| l["message"] == "check finished")
            .expect("the engine logged its end");
        // It is inside the check's span, which carries the location and the build number.
        let check = finished["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|s| s["name"] == "check"))
            .unwrap_or_else(|| panic!("inside the check's span: {finished}"));
        assert_eq!(check["location"], loc.as_str(), "{finished}");
        assert_eq!(check["environment"], "prod", "{finished}");
        assert!(check["build"].as_u64().is_some(), "{finished}");

        let mut secrets = world.all_secret_values();
        assert!(secrets.iter().any(|s| s == IAM_KEY));
        // The storage secret's slclient.toml as the artifact carries it (base64 of the TOML).
        let artifact = String::from_utf8(linkbot::sim::artifacts::api_key_log(Some(IAM_KEY)))
            .expect("UTF-8 artifact");
        let encoded = artifact
            .lines()
            .find_map(|l| l.trim().strip_prefix("slclient.toml: "))
            .expect("the artifact holds slclient.toml");
        secrets.push(encoded.to_string());
        let (user, token) = {
            let env = world.secret_env();
            let find = |k: &str| {
                env.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            (find("JENKINS_USER"), find("JENKINS_API_TOKEN"))
        };
        secrets.push(base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}")));
        for secret in &secrets {
            assert!(!so.contains(secret.as_str()), "a secret is on stdout");
            assert!(!se.contains(secret.as_str()), "a secret is in the logs");
        }
    })
    .await
}

// ---- incidents across restarts and replicas (issue 10) ---------------------------------------

/// A `[RESOLVED]` alert for `loc` (seed text form), as message `ts`.
async fn resolved(world: &World, loc: &LocationId, ts: &str) {
    let text = format!(
        "[RESOLVED]\nLabels:\n - alertname = SatelliteLinkConnectorDeployCannotgetIAMTokenFromIAMServer\n - severity = critical\n - cluster_id = {loc}"
    );
    world
        .slack
        .push(fake::message(
            ONCALL_CHANNEL,
            &text,
            ts,
            Some(ALERT_BOT),
            Some("A0ALERTMGR"),
            None,
        ))
        .await
        .expect("the resolve reaches a bot");
}

/// Waits until the message `ts` shows "Resolved at" and the alert `alert_ts` has its ✅.
async fn wait_marked_resolved(world: &World, verdict_ts: &str, alert_ts: &str) {
    let ok = world
        .slack
        .wait_until(
            |s| {
                s.message(ONCALL_CHANNEL, verdict_ts)
                    .is_some_and(|m| format!("{:?}", m.blocks).contains("Resolved at"))
                    && s.reactions()
                        .iter()
                        .any(|r| r.ts == alert_ts && r.name == "white_check_mark")
            },
            WAIT,
        )
        .await;
    assert!(
        ok,
        "the thread was not marked resolved: {:#?}",
        world.thread(ONCALL_CHANNEL, alert_ts)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_survives_a_restart_between_firing_and_resolution() {
    bounded(async {
        let world = World::start().await.expect("the world starts");
        let url = world.sqlite_url("incident-restart");
        let loc = world.scenario(VerdictCode::ConfigMissing, 4);
        let a = start_bot(&world, &url, "bot-a", SHORT_LEASE).await;
        let alert_ts = World::user_ts(400);
        alert(&world, &loc, &alert_ts).await;
        wait_verdict(&world, &alert_ts).await;
        a.stop().await;

        let b = start_bot(&world, &url, "bot-b", SHORT_LEASE).await;
        resolved(&world, &loc, &World::user_ts(401)).await;
        let verdict_ts = world
            .thread(ONCALL_CHANNEL, &alert_ts)
            .into_iter()
            .find(world::is_verdict)
            .expect("the diagnosis")
            .ts;
        wait_marked_resolved(&world, &verdict_ts, &alert_ts).await;
        assert_one_build(&world, &loc);
        b.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_resolve_an_incident_once() {
    on_postgres(|url| async move {
        let world = World::start().await.expect("the world starts");
        let loc = world.scenario(VerdictCode::RegionMismatch, 5);
        let a = start_bot(&world, &url, "replica-a", SHORT_LEASE).await;
        let b = start_bot(&world, &url, "replica-b", SHORT_LEASE).await;
        assert!(world.slack.wait_connections(4, WAIT).await);
        let alert_ts = World::user_ts(500);
        alert(&world, &loc, &alert_ts).await;
        wait_verdict(&world, &alert_ts).await;
        // Two [RESOLVED] messages at once (spread over both replicas' connections): the
        // incident is resolved once — one line in the alert's thread, one ✅.
        let (r1, r2) = (World::user_ts(501), World::user_ts(502));
        resolved(&world, &loc, &r1).await;
        resolved(&world, &loc, &r2).await;
        let verdict_ts = world
            .thread(ONCALL_CHANNEL, &alert_ts)
            .into_iter()
            .find(world::is_verdict)
            .expect("the diagnosis")
            .ts;
        wait_marked_resolved(&world, &verdict_ts, &alert_ts).await;
        // A later envelope handled by both replicas: a check in another thread.
        let barrier = world.scenario(VerdictCode::ApiKeyAccepted, 6);
        let barrier_ts = mention(&world, &barrier, 503).await;
        wait_verdict(&world, &barrier_ts).await;
        let lines = world
            .thread(ONCALL_CHANNEL, &alert_ts)
            .iter()
            .filter(|m| m.text.as_deref().unwrap_or("").contains("Resolved at"))
            .count();
        assert_eq!(lines, 1, "{:#?}", world.thread(ONCALL_CHANNEL, &alert_ts));
        let ticks = world
            .slack
            .reactions()
            .iter()
            .filter(|r| r.ts == alert_ts)
            .count();
        assert_eq!(ticks, 1);
        let answered = [&r1, &r2]
            .iter()
            .filter(|ts| !world.thread(ONCALL_CHANNEL, ts).is_empty())
            .count();
        assert_eq!(answered, 1, "only the resolve that closed it is answered");
        a.stop().await;
        b.stop().await;
    })
    .await
}
