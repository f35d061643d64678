//! Storm mode end to end (issue 12 part 1): the real bot against the simulated world, with a
//! small `[storm]` (threshold 2–3, sample 2) so a handful of alerts make a storm.
//!
//! What a person in the channel would check: one storm message (count, datacenters, the cause
//! once the sample agrees), only the sampled locations built (Jenkins triggers counted), every
//! alert thread answered, the rest checked within the budget when the sample disagrees, Check
//! all / Stop for on-call only and only as offered, a mention still checked on its own, the end
//! after a quiet window in the audit — also with two replicas on one store — and what an
//! operator scraping `/metrics` sees (storms declared, active and ended, alerts linked, sample
//! and budget checks). A storm outlives its replica: pointers not posted before a stop are
//! posted by the next bot (once, with two replicas), the storm's tasks stop with the bot, and
//! the budgeted checker of a killed replica is taken over by the other. Every wait is bounded;
//! nothing is timed.

use crate::common;
use linkbot::app::{self, RunningBot};
use linkbot::config::StormSettings;
use linkbot::diagnosis::verdict::VerdictCode;
use linkbot::domain::{CheckKey, Environment, LocationId};
use linkbot::report::period::Period;
use linkbot::report::{gather, render};
use linkbot::sim::slack::{self as fake, Failure, SimMessage, SimSlackState};
use linkbot::sim::world::{self, World, ALERT_BOT, ENGINEER, ONCALL_CHANNEL, VISITOR};
use linkbot::slack::alerts::ALERT_NAME;
use linkbot::store::AuditKind;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The bound on any single wait.
const WAIT: Duration = Duration::from_secs(30);
/// The bound on a whole test.
const TEST_BOUND: Duration = Duration::from_secs(120);
/// A build long enough that the checks started before the storm are still running when it is
/// declared (the store's results are counted either way).
const BUILD: Duration = Duration::from_millis(600);

fn settings(threshold: u32, window: Duration) -> StormSettings {
    StormSettings {
        enabled: true,
        threshold,
        window,
        sample: 2,
        max_builds_per_minute: 600,
    }
}

async fn start_bot(
    world: &World,
    store_url: &str,
    instance: &str,
    storm: StormSettings,
) -> RunningBot {
    start_bot_with(world, store_url, common::bot_options(instance), storm).await
}

/// [`start_bot`] with `options` (e.g. [`common::restart_options`]).
async fn start_bot_with(
    world: &World,
    store_url: &str,
    options: app::Options,
    storm: StormSettings,
) -> RunningBot {
    let mut config = world
        .config(store_url)
        .expect("the world's bot.toml parses");
    config.storm = storm;
    let connections = config.slack.connections;
    let instance = options.instance.clone();
    let bot = app::start(Arc::new(config), world.secrets(), options)
        .await
        .unwrap_or_else(|e| panic!("{instance} did not start: {e:#}"));
    assert!(
        bot.wait_connected(connections, WAIT).await,
        "{instance} did not open its Socket Mode connections"
    );
    bot
}

async fn bounded<F: Future<Output = ()>>(body: F) {
    if tokio::time::timeout(TEST_BOUND, body).await.is_err() {
        panic!("test did not finish within {TEST_BOUND:?}");
    }
}

/// Alertmanager's alert for `loc` as user message `n`; returns its ts (its thread).
async fn alert(world: &World, loc: &LocationId, n: u32) -> String {
    let ts = World::user_ts(n);
    let text = format!(
        "Labels:\n - alertname = {ALERT_NAME}\n - severity = critical\n - cluster_id = {loc}\nAnnotations:\n - summary = \"Link connector is rebooting\""
    );
    world
        .slack
        .push(fake::message(
            ONCALL_CHANNEL,
            &text,
            &ts,
            Some(ALERT_BOT),
            Some("A0ALERTMGR"),
            None,
        ))
        .await
        .expect("a live Socket Mode connection");
    ts
}

fn latest(m: &SimMessage) -> String {
    format!(
        "{}\n{}",
        m.text.clone().unwrap_or_default(),
        m.blocks.clone().unwrap_or(Value::Null)
    )
}

fn is_storm_message(m: &SimMessage) -> bool {
    m.channel == ONCALL_CHANNEL
        && m.thread_ts.is_none()
        && m.ephemeral_to.is_none()
        && m.text.as_deref().unwrap_or("").starts_with("Alert storm")
}

fn storm_messages(s: &SimSlackState) -> Vec<SimMessage> {
    s.messages()
        .iter()
        .filter(|m| is_storm_message(m))
        .cloned()
        .collect()
}

/// Waits until the (one) storm message's latest version satisfies `pred`; returns it.
async fn wait_storm(world: &World, what: &str, pred: impl Fn(&str) -> bool) -> SimMessage {
    let ok = world
        .slack
        .wait_until(|s| storm_messages(s).iter().any(|m| pred(&latest(m))), WAIT)
        .await;
    let all: Vec<String> = world
        .slack
        .messages()
        .iter()
        .filter(|m| is_storm_message(m))
        .map(latest)
        .collect();
    assert!(
        ok,
        "the storm message never showed {what}; it shows:\n{all:#?}"
    );
    world
        .slack
        .messages()
        .into_iter()
        .find(|m| is_storm_message(m) && pred(&latest(m)))
        .expect("the storm message just seen")
}

fn visible(s: &SimSlackState, ts: &str) -> Vec<SimMessage> {
    s.thread(ONCALL_CHANNEL, ts)
        .into_iter()
        .filter(|m| m.ephemeral_to.is_none())
        .cloned()
        .collect()
}

fn has_verdict(s: &SimSlackState, ts: &str) -> bool {
    visible(s, ts).iter().any(world::is_verdict)
}

/// What every pointer reply says.
const POINTER: &str = "Part of an alert storm";

fn has_pointer(s: &SimSlackState, ts: &str) -> bool {
    visible(s, ts)
        .iter()
        .any(|m| m.text.as_deref().unwrap_or("").contains(POINTER))
}

fn triggered(world: &World) -> Vec<String> {
    world
        .jenkins
        .triggers()
        .iter()
        .filter_map(|t| t.get("CLUSTERID").cloned())
        .collect()
}

fn digits(ts: &str) -> String {
    ts.chars().filter(char::is_ascii_digit).collect()
}

/// The storm buttons the message offers now (action ids).
fn offered(m: &SimMessage) -> Vec<String> {
    m.blocks
        .iter()
        .flat_map(|b| b.as_array().into_iter().flatten())
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().into_iter().flatten())
        .filter_map(|e| e["action_id"].as_str().map(str::to_string))
        .collect()
}

fn storm_value(m: &SimMessage) -> String {
    m.blocks
        .iter()
        .flat_map(|b| b.as_array().into_iter().flatten())
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().into_iter().flatten())
        .find_map(|e| e["value"].as_str().map(str::to_string))
        .unwrap_or_else(|| r#"{"s":1}"#.to_string())
}

async fn click(world: &World, storm: &SimMessage, user: &str, action: &str, value: &str) {
    world
        .slack
        .push(fake::block_actions(
            ONCALL_CHANNEL,
            user,
            &storm.ts,
            &format!("linkbot_storm:{action}"),
            value,
            None,
        ))
        .await
        .expect("a live Socket Mode connection");
}

/// The end of a test: Slack refused nothing the bot sent, and the bot stops within its bound.
async fn finish(world: &World, bot: RunningBot) {
    assert_no_refusals(world);
    tokio::time::timeout(Duration::from_secs(10), bot.stop())
        .await
        .expect("stops");
}

fn assert_no_refusals(world: &World) {
    let refusals = world.slack.refusals();
    assert!(
        refusals.is_empty(),
        "Slack refused what the bot sent: {refusals:#?}"
    );
}

/// `n` locations that all end in `verdict` (builds of [`BUILD`]).
fn locations(world: &World, verdict: VerdictCode, from: u32, n: u32) -> Vec<LocationId> {
    (from..from + n)
        .map(|i| world.scenario_with(verdict, i, World::timing(BUILD)))
        .collect()
}

/// Crossing the threshold with one or two bots on `store_url`: one storm, the sample only
/// built, every thread answered, the cause written.
async fn storm_on(store_url: String, replicas: usize) {
    let world = World::start().await.expect("the world starts");
    let mut bots = Vec::new();
    for i in 0..replicas {
        bots.push(
            start_bot(
                &world,
                &store_url,
                &format!("storm-{i}"),
                settings(3, Duration::from_secs(60)),
            )
            .await,
        );
    }
    let locs = locations(&world, VerdictCode::ConfigMissing, 0, 8);
    let mut threads = Vec::new();
    for (i, loc) in locs.iter().enumerate() {
        threads.push(alert(&world, loc, 10 + i as u32).await);
    }
    // The storm message counts every location and, the sample agreeing, says the cause.
    let storm = wait_storm(&world, "8 locations and the cause", |t| {
        t.contains("8 locations")
            && t.contains("Cause — the sample agrees (2/2)")
            && t.contains("config_missing")
    })
    .await;
    assert!(latest(&storm).contains("wdc04"), "{}", latest(&storm));
    // Every alert thread is answered: the 3 checked before the storm with their verdict, the
    // other 5 with one line linking to the storm message.
    let answered = world
        .slack
        .wait_until(
            |s| {
                let verdicts = threads.iter().filter(|t| has_verdict(s, t)).count();
                let pointers = threads.iter().filter(|t| has_pointer(s, t)).count();
                verdicts == 3 && pointers == 5 && threads.iter().all(|t| !visible(s, t).is_empty())
            },
            WAIT,
        )
        .await;
    assert!(
        answered,
        "not every thread was answered (3 verdicts, 5 pointers)"
    );
    assert_eq!(
        world
            .slack
            .messages()
            .iter()
            .filter(|m| is_storm_message(m))
            .count(),
        1,
        "one storm message"
    );
    for t in &threads {
        for m in world.thread(ONCALL_CHANNEL, t) {
            let text = m.text.clone().unwrap_or_default();
            if text.contains("Part of an alert storm") {
                assert!(
                    text.contains(&digits(&storm.ts)),
                    "the pointer does not link the storm message: {text}"
                );
            }
        }
    }
    // Only the locations checked before the storm were built (the sample is among them).
    let built = triggered(&world);
    assert_eq!(built.len(), 3, "builds: {built:?}");
    let mut with_verdict: Vec<String> = threads
        .iter()
        .zip(&locs)
        .filter(|(t, _)| {
            !world
                .thread(ONCALL_CHANNEL, t)
                .iter()
                .all(|m| !world::is_verdict(m))
        })
        .map(|(_, l)| l.to_string())
        .collect();
    let mut built_sorted = built.clone();
    built_sorted.sort();
    with_verdict.sort();
    assert_eq!(
        built_sorted, with_verdict,
        "the built locations are the answered ones"
    );
    // A pointed alert is an incident pointing to the storm message.
    let store = &bots[0].store;
    let (pointed, _) = locs
        .iter()
        .zip(&threads)
        .find(|(l, _)| !built.contains(&l.to_string()))
        .expect("a pointed location");
    let incident = store
        .open_incident(&CheckKey {
            location: pointed.clone(),
            environment: Environment::Prod,
        })
        .await
        .expect("the store answers")
        .expect("the pointed alert has its incident");
    assert_eq!(incident.diagnosis.map(|d| d.ts), Some(storm.ts.clone()));
    // The report counts the 5 pointed alerts as linked to the storm, not as undiagnosed:
    // they were not checked on purpose.
    let now = chrono::Utc::now();
    let period = Period::new(
        now - chrono::Duration::hours(1),
        now + chrono::Duration::minutes(1),
    )
    .expect("a period");
    let report = gather(&**store, period).await.expect("the report's rows");
    let mix: Vec<(&str, usize)> = report
        .verdicts
        .iter()
        .map(|c| (c.verdict.as_str(), c.count))
        .collect();
    assert_eq!(
        mix,
        [("linked_to_storm", 5), ("config_missing", 3)],
        "{}",
        render::text(&report)
    );
    assert!(
        render::text(&report).contains("linked to a storm"),
        "{}",
        render::text(&report)
    );
    assert_no_refusals(&world);
    for bot in bots {
        tokio::time::timeout(Duration::from_secs(10), bot.stop())
            .await
            .expect("the bot stops within its bound");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_the_threshold_declares_one_storm_builds_only_the_sample_and_answers_every_alert()
{
    bounded(async {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("storm.db").display());
        storm_on(url, 1).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_a_sqlite_file_declare_one_storm() {
    bounded(async {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("storm.db").display());
        storm_on(url, 2).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_a_postgres_schema_declare_one_storm() {
    let Some(schema) = common::postgres_schema(WAIT).await else {
        return;
    };
    let url = schema.url.clone();
    let result = tokio::time::timeout(TEST_BOUND, tokio::spawn(storm_on(url, 2))).await;
    schema.drop_schema(WAIT).await;
    match result {
        Err(_) => panic!("test did not finish within {TEST_BOUND:?}"),
        Ok(Err(join)) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Ok(Err(join)) => panic!("test task failed: {join}"),
        Ok(Ok(())) => {}
    }
}

/// Pushes the two alerts checked before the storm and waits until both checks started, so
/// which locations are checked before the storm does not depend on handling order.
async fn two_before_the_storm(
    world: &World,
    first: &LocationId,
    second: &LocationId,
) -> Vec<String> {
    let a = alert(world, first, 1).await;
    let b = alert(world, second, 2).await;
    let started = world
        .slack
        .wait_until(
            |s| !visible(s, &a).is_empty() && !visible(s, &b).is_empty(),
            WAIT,
        )
        .await;
    assert!(started, "the two first alerts were not answered");
    vec![a, b]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disagreeing_sample_checks_the_rest_within_the_budget() {
    bounded(async {
        let world = World::start().await.expect("the world starts");
        let bot = start_bot(
            &world,
            &world.sqlite_url("storm"),
            "storm",
            settings(2, Duration::from_secs(60)),
        )
        .await;
        let a = world.scenario_with(VerdictCode::ConfigMissing, 0, World::timing(BUILD));
        let b = world.scenario_with(VerdictCode::RegionMismatch, 0, World::timing(BUILD));
        let mut threads = two_before_the_storm(&world, &a, &b).await;
        let rest = locations(&world, VerdictCode::ApiKeyAccepted, 0, 4);
        for (i, loc) in rest.iter().enumerate() {
            threads.push(alert(&world, loc, 10 + i as u32).await);
        }
        // The sample (the two checked before the storm) disagrees: the rest is checked, and
        // the message counts the verdicts as they come.
        wait_storm(&world, "the disagreement", |t| {
            t.contains("The sample disagrees")
        })
        .await;
        let storm = wait_storm(&world, "every verdict counted", |t| {
            t.contains("checked 6 of 6") && t.contains("`api_key_accepted` ×4")
        })
        .await;
        assert!(!latest(&storm).contains("Cause —"), "{}", latest(&storm));
        let all = world
            .slack
            .wait_until(|s| threads.iter().all(|t| has_verdict(s, t)), WAIT)
            .await;
        assert!(all, "not every location got its verdict");
        assert_eq!(triggered(&world).len(), 6, "each location built once");
        // The four built within the budget are counted as such; the sample cost no build.
        let budget = |m: &str| metric(m, "linkbot_storm_checks_total", &["kind=\"budget\""]);
        let m = common::scrape_until(bot.ops_addr, WAIT, |m| budget(m) == 4.0).await;
        assert_eq!(budget(&m), 4.0, "{m}");
        assert_eq!(
            metric(&m, "linkbot_storm_checks_total", &["kind=\"sample\""]),
            0.0,
            "{m}"
        );
        finish(&world, bot).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_all_and_stop_are_for_on_call_and_only_as_offered() {
    bounded(async {
        let world = World::start().await.expect("the world starts");
        let bot = start_bot(&world, &world.sqlite_url("storm"), "storm", settings(2, Duration::from_secs(60))).await;
        let locs = locations(&world, VerdictCode::ConfigMissing, 0, 5);
        let mut threads = two_before_the_storm(&world, &locs[0], &locs[1]).await;
        for (i, loc) in locs[2..].iter().enumerate() {
            threads.push(alert(&world, loc, 10 + i as u32).await);
        }
        let storm = wait_storm(&world, "the cause and both buttons", |t| {
            t.contains("5 locations") && t.contains("Cause —") && t.contains("linkbot_storm:stop")
        })
        .await;
        assert_eq!(offered(&storm), vec!["linkbot_storm:check_all", "linkbot_storm:stop"]);
        let value = storm_value(&storm);

        // Not on call: refused, nothing changes.
        click(&world, &storm, VISITOR, "stop", &value).await;
        let refused = world
            .slack
            .wait_until(
                |s| s.messages().iter().any(|m| m.ephemeral_to.as_deref() == Some(VISITOR) && m.text.as_deref().unwrap_or("").contains("on-call")),
                WAIT,
            )
            .await;
        assert!(refused, "the visitor was not told");

        // On call: Stop; the message then offers Check all only.
        click(&world, &storm, ENGINEER, "stop", &value).await;
        let stopped = wait_storm(&world, "Stopped", |t| t.contains("Stopped by on-call")).await;
        assert_eq!(offered(&stopped), vec!["linkbot_storm:check_all"]);
        let said = world
            .slack
            .wait_until(
                |s| s.thread(ONCALL_CHANNEL, &storm.ts).iter().any(|m| m.text.as_deref().unwrap_or("").contains("stopped this storm's checks")),
                WAIT,
            )
            .await;
        assert!(said, "the storm's thread does not say who stopped it");

        // Stop again is no longer offered: refused and audited.
        click(&world, &storm, ENGINEER, "stop", &value).await;
        let told = world
            .slack
            .wait_until(
                |s| s.messages().iter().any(|m| m.ephemeral_to.as_deref() == Some(ENGINEER) && m.text.as_deref().unwrap_or("").contains("does not match")),
                WAIT,
            )
            .await;
        assert!(told, "a click the message no longer offers was not refused");
        let audit = bot.store.audit(None, None, 500).await.expect("the audit");
        assert!(audit.iter().any(|e| e.kind == AuditKind::RefusedAction && e.actor.as_deref() == Some(ENGINEER)), "{audit:#?}");
        assert!(audit.iter().any(|e| e.kind == AuditKind::Storm && e.detail.as_deref().is_some_and(|d| d.ends_with(": stop"))), "{audit:#?}");
        assert_eq!(triggered(&world).len(), 2, "nothing built after Stop");

        // Check all: the rest is checked (within the budget).
        click(&world, &storm, ENGINEER, "check_all", &value).await;
        let all = world
            .slack
            .wait_until(|s| threads.iter().all(|t| has_verdict(s, t)), WAIT)
            .await;
        assert!(all, "Check all did not check every location");
        assert_eq!(triggered(&world).len(), 5);
        let audit = bot.store.audit(None, None, 500).await.expect("the audit");
        assert!(audit.iter().any(|e| e.kind == AuditKind::Storm && e.actor.as_deref() == Some(ENGINEER) && e.detail.as_deref().is_some_and(|d| d.ends_with(": check_all"))), "{audit:#?}");
        assert_no_refusals(&world);
        tokio::time::timeout(Duration::from_secs(10), bot.stop()).await.expect("stops");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_during_a_storm_gets_its_own_check_and_the_storm_ends_after_a_quiet_window() {
    bounded(async {
        let world = World::start().await.expect("the world starts");
        let window = Duration::from_secs(3);
        let bot = start_bot(
            &world,
            &world.sqlite_url("storm"),
            "storm",
            settings(2, window),
        )
        .await;
        let locs = locations(&world, VerdictCode::ConfigMissing, 0, 4);
        let mut threads = two_before_the_storm(&world, &locs[0], &locs[1]).await;
        for (i, loc) in locs[2..].iter().enumerate() {
            threads.push(alert(&world, loc, 10 + i as u32).await);
        }
        let answered = world
            .slack
            .wait_until(
                |s| has_pointer(s, &threads[2]) && has_pointer(s, &threads[3]),
                WAIT,
            )
            .await;
        assert!(answered, "the storm's other alerts were not answered");
        // The two checked before the storm may still be starting their builds: wait for both,
        // then no other (the storm's alerts were answered with a pointer, not a build).
        assert!(
            world.jenkins.wait_for_triggers(2, WAIT).await,
            "the two alerts before the storm were not built"
        );
        assert_eq!(triggered(&world).len(), 2);

        // A mention for a location of the storm: checked on its own, in its own thread.
        let ts = World::user_ts(50);
        let text = format!("<@{}> check {}", fake::SIM_BOT_USER_ID, locs[3]);
        world
            .slack
            .push(fake::app_mention(ONCALL_CHANNEL, ENGINEER, &text, &ts))
            .await
            .expect("a live Socket Mode connection");
        let mention = world.wait_verdicts(ONCALL_CHANNEL, &ts, 1, WAIT).await;
        assert!(mention.is_some(), "the mention got no verdict");
        assert_eq!(triggered(&world).len(), 3, "the mention was built");

        // No new location for a window: the storm ends, every location in the audit.
        let ended = wait_storm(&world, "its end", |t| t.contains("Ended at")).await;
        assert!(
            offered(&ended).is_empty(),
            "an ended storm offers no button"
        );
        // The end is audited before the message shows it.
        let audit = bot.store.audit(None, None, 500).await.expect("the audit");
        let storm: Vec<_> = audit
            .iter()
            .filter(|e| e.kind == AuditKind::Storm)
            .collect();
        for l in &locs {
            assert!(
                storm.iter().any(|e| &e.location == l),
                "{l} is not in the storm's audit: {storm:#?}"
            );
        }
        // Ended once, and no longer active.
        let m = common::scrape_until(bot.ops_addr, WAIT, |m| {
            metric(m, "linkbot_storm_ended_total", &[PROD]) == 1.0
                && metric(m, "linkbot_storm_active", &[PROD]) == 0.0
        })
        .await;
        assert_eq!(metric(&m, "linkbot_storm_ended_total", &[PROD]), 1.0, "{m}");
        assert_eq!(metric(&m, "linkbot_storm_active", &[PROD]), 0.0, "{m}");
        assert_eq!(
            metric(&m, "linkbot_storms_declared_total", &[PROD]),
            1.0,
            "{m}"
        );
        finish(&world, bot).await;
    })
    .await;
}

/// `[storm]` with threshold 3 and a sample of 3.
fn sample_of_three() -> StormSettings {
    StormSettings {
        sample: 3,
        ..settings(3, Duration::from_secs(60))
    }
}

/// Three wdc04 locations alert one after the other (each checked as usual, in order), then one
/// in dal10 declares the storm (threshold 3): the sample takes one location per datacenter in
/// turn, so it builds the dal10 one although three wdc04 checks run. Returns the wdc04
/// locations, the dal10 one, and the four alert threads.
async fn three_in_wdc04_then_one_in_dal10(
    world: &World,
) -> (Vec<LocationId>, LocationId, Vec<String>) {
    use linkbot::sim::directory::ClusterAnswer;
    world
        .directory
        .set_carriers("dal10", &[("prod-dal10-carrier5", "available")]);
    let wdc = locations(world, VerdictCode::ConfigMissing, 0, 3);
    let mut threads = Vec::new();
    for (i, loc) in wdc.iter().enumerate() {
        let ts = alert(world, loc, 1 + i as u32).await;
        let answered = world
            .slack
            .wait_until(|s| !visible(s, &ts).is_empty(), WAIT)
            .await;
        assert!(answered, "alert {i} was not answered");
        threads.push(ts);
    }
    let dal = world.scenario_with(VerdictCode::ConfigMissing, 10, World::timing(BUILD));
    world.directory.set_cluster(
        dal.as_str(),
        ClusterAnswer::Json("prod-dal10.carrier5".into()),
    );
    threads.push(alert(world, &dal, 10).await);
    (wdc, dal, threads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_spreads_over_datacenters_and_builds_a_location_it_needs() {
    bounded(async {
        let world = World::start().await.expect("the world starts");
        let bot = start_bot(
            &world,
            &world.sqlite_url("storm"),
            "storm",
            sample_of_three(),
        )
        .await;
        let (wdc, dal, threads) = three_in_wdc04_then_one_in_dal10(&world).await;
        let shown = wait_storm(&world, "a sample over both datacenters, agreeing", |t| {
            t.contains("(dal10)")
                && t.contains("(wdc04)")
                && t.contains("Cause — the sample agrees (3/3)")
        })
        .await;
        assert!(latest(&shown).contains("dal10 ×1"), "{}", latest(&shown));
        let all = world
            .slack
            .wait_until(|s| threads.iter().all(|t| has_verdict(s, t)), WAIT)
            .await;
        assert!(
            all,
            "the sampled dal10 location got no verdict in its thread"
        );
        let mut built = triggered(&world);
        built.sort();
        let mut want: Vec<String> = wdc.iter().chain([&dal]).map(|l| l.to_string()).collect();
        want.sort();
        assert_eq!(
            built, want,
            "the three checked before the storm and the sampled dal10 one"
        );
        finish(&world, bot).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pointers_not_posted_before_a_stop_are_posted_once_by_the_next_replicas() {
    bounded(async {
        let world = World::start().await.expect("the world starts");
        let url = world.sqlite_url("storm");
        let storm = settings(2, Duration::from_secs(5));
        // Slack refuses every pointer reply of the first bot: they are pending when it stops.
        world.slack.fail_matching(
            "chat.postMessage",
            POINTER,
            Failure::Error("internal_error".into()),
        );
        let first = start_bot_with(&world, &url, common::restart_options("storm-a"), storm).await;
        let locs = locations(&world, VerdictCode::ConfigMissing, 0, 6);
        let mut threads = two_before_the_storm(&world, &locs[0], &locs[1]).await;
        for (i, loc) in locs[2..].iter().enumerate() {
            threads.push(alert(&world, loc, 10 + i as u32).await);
        }
        let pointed = &threads[2..];
        let tried = world
            .slack
            .wait_until(
                |s| {
                    pointed.iter().all(|t| {
                        s.calls("chat.postMessage").iter().any(|c| {
                            c["thread_ts"].as_str() == Some(t.as_str())
                                && c.to_string().contains(POINTER)
                        })
                    })
                },
                WAIT,
            )
            .await;
        assert!(tried, "the first bot did not try every pointer reply");
        // The sample's checks are done: the next bots have no verdict or alert of the storm to
        // handle, only what the store says is owed.
        let checked = world
            .slack
            .wait_until(|s| threads[..2].iter().all(|t| has_verdict(s, t)), WAIT)
            .await;
        assert!(checked, "the sample was not checked");
        tokio::time::timeout(Duration::from_secs(10), first.stop())
            .await
            .expect("stops");
        assert!(
            pointed.iter().all(|t| shown_pointers(&world, t) == 0),
            "a refused pointer was shown"
        );

        // Slack answers again; two replicas start on the store together.
        world.slack.clear_failing();
        let (b, c) = tokio::join!(
            start_bot_with(&world, &url, common::restart_options("storm-b"), storm),
            start_bot_with(&world, &url, common::restart_options("storm-c"), storm),
        );
        let answered = world
            .slack
            .wait_until(|s| pointed.iter().all(|t| has_pointer(s, t)), WAIT)
            .await;
        assert!(
            answered,
            "the pending pointer replies were not posted after the restart"
        );
        // After the storm's end (every waiting pointer was looked at once more), each alert
        // thread has exactly one pointer, and the checked ones none.
        wait_storm(&world, "its end", |t| t.contains("Ended at")).await;
        for t in pointed {
            assert_eq!(
                shown_pointers(&world, t),
                1,
                "thread {t}: {:#?}",
                world.thread(ONCALL_CHANNEL, t)
            );
        }
        for t in &threads[..2] {
            assert_eq!(
                shown_pointers(&world, t),
                0,
                "a checked alert got a pointer too"
            );
            assert!(world
                .thread(ONCALL_CHANNEL, t)
                .iter()
                .any(world::is_verdict));
        }
        assert_no_refusals(&world);
        for bot in [b, c] {
            tokio::time::timeout(Duration::from_secs(10), bot.stop())
                .await
                .expect("stops");
        }
    })
    .await;
}

/// How many pointer replies thread `ts` shows.
fn shown_pointers(world: &World, ts: &str) -> usize {
    world
        .thread(ONCALL_CHANNEL, ts)
        .iter()
        .filter(|m| m.ephemeral_to.is_none())
        .filter(|m| m.text.as_deref().unwrap_or("").contains(POINTER))
        .count()
}

/// The Slack methods storm tasks call (pointer replies, message edits, permalinks, checks).
const STORM_METHODS: [&str; 3] = ["chat.postMessage", "chat.update", "chat.getPermalink"];

/// How many calls of [`STORM_METHODS`] Slack has seen.
fn storm_calls(s: &SimSlackState) -> usize {
    STORM_METHODS.iter().map(|m| s.calls(m).len()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_bot_s_storm_tasks_make_no_more_calls() {
    bounded(async {
        let world = World::start().await.expect("the world starts");
        // One budgeted build a second: the checker still has work when the bot stops.
        let storm = StormSettings {
            max_builds_per_minute: 60,
            ..settings(2, Duration::from_secs(60))
        };
        let bot = start_bot(&world, &world.sqlite_url("storm"), "storm", storm).await;
        let a = world.scenario_with(VerdictCode::ConfigMissing, 0, World::timing(BUILD));
        let b = world.scenario_with(VerdictCode::RegionMismatch, 0, World::timing(BUILD));
        two_before_the_storm(&world, &a, &b).await;
        let rest = locations(&world, VerdictCode::ApiKeyAccepted, 0, 8);
        for (i, loc) in rest.iter().enumerate() {
            alert(&world, loc, 10 + i as u32).await;
        }
        wait_storm(&world, "the disagreement", |t| {
            t.contains("The sample disagrees")
        })
        .await;
        let budgeted = world
            .slack
            .wait_until(|_| triggered(&world).len() >= 3, WAIT)
            .await;
        assert!(budgeted, "the rest was not being checked");
        let storms = bot.storms();
        assert!(storms.running() > 0, "no storm task runs during a storm");
        tokio::time::timeout(Duration::from_secs(10), bot.stop())
            .await
            .expect("stops");
        assert_eq!(storms.running(), 0, "storm tasks run on after the stop");
        // Had they run on, the checker would start the next check within a build interval
        // (a thread message and a Jenkins build) and the refresher edit the storm message.
        let calls: usize = STORM_METHODS
            .iter()
            .map(|m| world.slack.calls(m).len())
            .sum();
        let builds = triggered(&world).len();
        let called = world
            .slack
            .wait_until(|s| storm_calls(s) > calls, Duration::from_secs(4))
            .await;
        assert!(!called, "a storm task called Slack after the bot stopped");
        assert_eq!(
            triggered(&world).len(),
            builds,
            "a build started after the stop"
        );
        assert_ne!(
            builds, 10,
            "the checker had finished before the stop: nothing was shown"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_s_budgeted_checks_are_taken_over_by_the_other() {
    bounded(async {
        let world = World::start().await.expect("the world starts");
        let url = world.sqlite_url("storm");
        // A build every 3 s: the checker is killed between two of them.
        let storm = StormSettings {
            max_builds_per_minute: 20,
            ..settings(2, Duration::from_secs(120))
        };
        let mut bots = vec![
            start_bot_with(&world, &url, common::restart_options("storm-a"), storm).await,
            start_bot_with(&world, &url, common::restart_options("storm-b"), storm).await,
        ];
        let a = world.scenario_with(VerdictCode::ConfigMissing, 0, World::timing(BUILD));
        let b = world.scenario_with(VerdictCode::RegionMismatch, 0, World::timing(BUILD));
        let mut threads = two_before_the_storm(&world, &a, &b).await;
        let rest = locations(&world, VerdictCode::ApiKeyAccepted, 0, 4);
        for (i, loc) in rest.iter().enumerate() {
            threads.push(alert(&world, loc, 10 + i as u32).await);
        }
        // The sample disagrees; the first location of the rest is checked by one replica.
        let first = world
            .slack
            .wait_until(
                |s| threads.iter().filter(|t| has_verdict(s, t)).count() >= 3,
                WAIT,
            )
            .await;
        assert!(first, "the rest was not being checked");
        let storm_row = bots[0]
            .store
            .active_storm(Environment::Prod)
            .await
            .expect("the store answers")
            .expect("the active storm");
        let pumper = storm_row
            .pumped_by
            .clone()
            .expect("a replica checks the rest");
        let names = ["storm-a", "storm-b"];
        let dead = names
            .iter()
            .position(|n| *n == pumper)
            .expect("the checker is one of the two");
        // The checker dies between two builds, without finishing or handing anything back.
        bots.remove(dead).kill();
        let survivor = bots.pop().expect("the other replica");
        let all = world
            .slack
            .wait_until(
                |s| threads.iter().all(|t| has_verdict(s, t)),
                Duration::from_secs(45),
            )
            .await;
        assert!(all, "the rest was not checked after the checker died");
        let mut built = triggered(&world);
        assert_eq!(built.len(), 6, "each location built once: {built:?}");
        built.sort();
        built.dedup();
        assert_eq!(built.len(), 6, "a location was built twice");
        let taken = survivor
            .store
            .storm(storm_row.id)
            .await
            .expect("the store answers")
            .expect("the storm");
        assert_eq!(taken.pumped_by.as_deref(), Some(names[1 - dead]));
        assert!(
            taken.epoch > storm_row.epoch,
            "the takeover starts a new epoch"
        );
        tokio::time::timeout(Duration::from_secs(10), survivor.stop())
            .await
            .expect("stops");
    })
    .await;
}

/// `name{labels}` in a scraped exposition.
fn metric(exposition: &str, name: &str, labels: &[&str]) -> f64 {
    common::metric(exposition, name, labels)
}

const PROD: &str = "environment=\"prod\"";
const STAGE: &str = "environment=\"stage\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_storm_shows_on_metrics_with_its_sample_checks_and_linked_alerts() {
    bounded(async {
        let world = World::start().await.expect("the world starts");
        let bot = start_bot(
            &world,
            &world.sqlite_url("storm"),
            "storm",
            sample_of_three(),
        )
        .await;
        // Before any storm, every storm series is there at 0 (so `increase()` sees the first).
        let before = common::scrape_until(bot.ops_addr, WAIT, |_| true).await;
        for (name, labels) in [
            ("linkbot_storms_declared_total", PROD),
            ("linkbot_storm_active", PROD),
            ("linkbot_storm_ended_total", PROD),
            ("linkbot_storm_checks_total", "kind=\"sample\""),
            ("linkbot_storm_checks_total", "kind=\"budget\""),
            ("linkbot_storm_alerts_linked_total", ""),
        ] {
            assert!(
                before
                    .lines()
                    .any(|l| l.starts_with(name) && l.contains(labels)),
                "{name}{{{labels}}} is not exposed before a storm:\n{before}"
            );
            assert_eq!(metric(&before, name, &[labels]), 0.0, "{before}");
        }
        // The sample builds the dal10 location; three more alerts get a pointer, no build.
        let (_, _, mut threads) = three_in_wdc04_then_one_in_dal10(&world).await;
        // The dal10 alert declares the storm (before the next ones are handled).
        let declared = world
            .slack
            .wait_until(|s| !visible(s, &threads[3]).is_empty(), WAIT)
            .await;
        assert!(declared, "the dal10 alert was not answered");
        let more = locations(&world, VerdictCode::ConfigMissing, 20, 3);
        for (i, loc) in more.iter().enumerate() {
            threads.push(alert(&world, loc, 20 + i as u32).await);
        }
        let answered = world
            .slack
            .wait_until(
                |s| {
                    threads[..4].iter().all(|t| has_verdict(s, t))
                        && threads[4..].iter().all(|t| has_pointer(s, t))
                },
                WAIT,
            )
            .await;
        assert!(
            answered,
            "not every thread was answered (4 verdicts, then 3 pointers)"
        );
        assert_eq!(
            triggered(&world).len(),
            4,
            "three before the storm, one sampled"
        );
        let linked = |m: &str| metric(m, "linkbot_storm_alerts_linked_total", &[]);
        let sampled = |m: &str| metric(m, "linkbot_storm_checks_total", &["kind=\"sample\""]);
        let m = common::scrape_until(bot.ops_addr, WAIT, |m| {
            linked(m) == 3.0 && sampled(m) == 1.0
        })
        .await;
        assert_eq!(linked(&m), 3.0, "alerts linked to the storm:\n{m}");
        assert_eq!(sampled(&m), 1.0, "the one sample build:\n{m}");
        assert_eq!(
            metric(&m, "linkbot_storms_declared_total", &[PROD]),
            1.0,
            "{m}"
        );
        assert_eq!(
            metric(&m, "linkbot_storms_declared_total", &[STAGE]),
            0.0,
            "{m}"
        );
        assert_eq!(metric(&m, "linkbot_storm_active", &[PROD]), 1.0, "{m}");
        assert_eq!(metric(&m, "linkbot_storm_active", &[STAGE]), 0.0, "{m}");
        assert_eq!(
            metric(&m, "linkbot_storm_checks_total", &["kind=\"budget\""]),
            0.0,
            "{m}"
        );
        assert_eq!(metric(&m, "linkbot_storm_ended_total", &[PROD]), 0.0, "{m}");
        finish(&world, bot).await;
    })
    .await;
}

/// The storm message's cause and sample show what the checks actually said (IAM's HTTP status
/// and error code), not the digit-stripped form the sample's verdicts are compared by.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cause_and_the_sample_show_the_real_reason_not_the_compared_form() {
    bounded(async {
        let world = World::start().await.expect("the world starts");
        world.iam.set_unavailable(true);
        let bot = start_bot(
            &world,
            &world.sqlite_url("storm"),
            "storm",
            settings(3, Duration::from_secs(60)),
        )
        .await;
        let locs: Vec<LocationId> = (0..5)
            .map(|i| world.scenario_with(VerdictCode::IamUnreachable, i, World::timing(BUILD)))
            .collect();
        for (i, loc) in locs.iter().enumerate() {
            alert(&world, loc, 10 + i as u32).await;
        }
        let shown = wait_storm(&world, "the cause agreed on", |t| {
            t.contains("Cause — the sample agrees (2/2)")
        })
        .await;
        let text = latest(&shown);
        assert!(
            text.contains("IAM answered HTTP 503"),
            "the real reason is not shown: {text}"
        );
        assert!(
            !text.contains("HTTP #") && !text.contains("#E"),
            "the compared form is shown: {text}"
        );
        finish(&world, bot).await;
    })
    .await;
}

/// Locations that join a storm after it was declared are located too (a directory lookup, no
/// build), by the storm's one worker at most 4 at a time, while their alerts are answered
/// without waiting for it; then the message's datacenter count covers every location.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locations_joining_a_storm_are_located_off_the_answer_path_a_few_at_a_time() {
    bounded(async {
        let world = World::start().await.expect("the world starts");
        let bot = start_bot(
            &world,
            &world.sqlite_url("storm"),
            "storm",
            settings(3, Duration::from_secs(60)),
        )
        .await;
        // Four alerts: three checked as usual, the fourth declares the storm (located then).
        let first = locations(&world, VerdictCode::ConfigMissing, 0, 4);
        for (i, loc) in first.iter().enumerate() {
            alert(&world, loc, 10 + i as u32).await;
        }
        wait_storm(&world, "the declared four located and the cause", |t| {
            t.contains("wdc04 ×4") && t.contains("Cause — the sample agrees (2/2)")
        })
        .await;
        // While the directory holds every lookup, ten more join: each is answered at once.
        world.directory.hold_clusters(true);
        world.directory.reset_max_clusters_in_flight();
        let more = locations(&world, VerdictCode::ConfigMissing, 20, 10);
        let mut threads = Vec::new();
        for (i, loc) in more.iter().enumerate() {
            threads.push(alert(&world, loc, 20 + i as u32).await);
        }
        let answered = world
            .slack
            .wait_until(|s| threads.iter().all(|t| has_pointer(s, t)), WAIT)
            .await;
        assert!(
            answered,
            "an alert waited for its location's lookup to be answered"
        );
        assert!(
            world.directory.wait_clusters_in_flight(4, WAIT).await,
            "the joining locations were not looked up (in flight: {})",
            world.directory.clusters_in_flight()
        );
        // Counted at once, located once the directory answers.
        wait_storm(&world, "14 locations, 10 not located yet", |t| {
            t.contains("14 locations") && t.contains("(10 not located)")
        })
        .await;
        world.directory.hold_clusters(false);
        let shown = wait_storm(&world, "every location located", |t| {
            t.contains("wdc04 ×14")
        })
        .await;
        assert!(
            !latest(&shown).contains("not located"),
            "{}",
            latest(&shown)
        );
        assert_eq!(
            world.directory.max_clusters_in_flight(),
            4,
            "the storm's lookups were not bounded to 4 at a time"
        );
        assert_eq!(triggered(&world).len(), 3, "no build for a lookup");
        finish(&world, bot).await;
    })
    .await;
}
