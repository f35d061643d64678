//! The Socket Mode transport and the Web API client against the fake Slack (`sim::slack`):
//! real WebSockets and HTTP on 127.0.0.1, no sleeps as synchronisation, every wait bounded.

use linkbot::metrics::Metrics;
use linkbot::net::Net;
use linkbot::secret::Secret;
use linkbot::sim::slack::{
    self as sim, Failure, SimSlackConfig, SlackSim, SIM_BOT_ID, SIM_BOT_USER_ID, SIM_TEAM_ID,
};
use linkbot::slack::transport::{self, parse_inbound, Inbound, TransportConfig};
use linkbot::slack::web::{SlackError, SlackWeb};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

fn test_config(connections: usize) -> TransportConfig {
    TransportConfig {
        connections,
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ping_interval: Duration::from_secs(5),
        hello_timeout: Duration::from_secs(2),
        drain_timeout: Duration::from_secs(3),
        dedupe_capacity: 10_000,
    }
}

struct Harness {
    sim: SlackSim,
    metrics: Metrics,
    rx: mpsc::Receiver<Inbound>,
    connected: watch::Receiver<usize>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), SlackError>>,
}

impl Harness {
    async fn start(connections: usize) -> Harness {
        let sim = SlackSim::start(SimSlackConfig::default())
            .await
            .expect("sim starts");
        let metrics = Metrics::new();
        let web = SlackWeb::new(
            &sim.base_url(),
            sim.bot_token(),
            metrics.clone(),
            &Net::direct(),
        )
        .expect("client");
        let (tx, rx) = mpsc::channel(64);
        let (connected_tx, connected) = watch::channel(0);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(transport::run(
            web,
            sim.app_token(),
            test_config(connections),
            tx,
            metrics.clone(),
            shutdown.clone(),
            connected_tx,
        ));
        let mut h = Harness {
            sim,
            metrics,
            rx,
            connected,
            shutdown,
            task,
        };
        h.wait_connected(connections).await;
        h
    }

    async fn wait_connected(&mut self, n: usize) {
        let seen = tokio::time::timeout(WAIT, self.connected.wait_for(|c| *c == n)).await;
        assert!(
            matches!(seen, Ok(Ok(_))),
            "transport never reported {n} live connections"
        );
        assert!(
            self.sim.wait_connections(n, WAIT).await,
            "sim never saw {n} connections"
        );
    }

    async fn next(&mut self) -> Inbound {
        match tokio::time::timeout(WAIT, self.rx.recv()).await {
            Ok(Some(inbound)) => inbound,
            Ok(None) => panic!("transport stopped delivering"),
            Err(_) => panic!("no envelope delivered within {WAIT:?}"),
        }
    }

    /// Pushes a fresh sentinel and returns every delivery up to and including it, so a test
    /// can assert that nothing else (a duplicate) was delivered before it.
    async fn deliveries_until_sentinel(&mut self) -> Vec<String> {
        let sentinel = self
            .sim
            .push(sim::app_mention(
                "C0SENTINEL",
                "U0SENT",
                "sentinel",
                "1700000999.000100",
            ))
            .await
            .expect("push sentinel");
        let mut ids = Vec::new();
        loop {
            let inbound = self.next().await;
            let id = inbound.envelope_id().to_string();
            ids.push(id.clone());
            if id == sentinel {
                return ids;
            }
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let ended = tokio::time::timeout(WAIT, self.task).await;
        assert!(
            matches!(ended, Ok(Ok(Ok(())))),
            "transport did not stop cleanly"
        );
    }
}

fn event_json(inbound: &Inbound) -> Value {
    match inbound {
        Inbound::Event { event, .. } => serde_json::to_value(event).expect("model serialises"),
        other => panic!("expected an event, got {other:?}"),
    }
}

#[tokio::test]
async fn hello_brings_every_connection_live_and_shutdown_stops_cleanly() {
    let h = Harness::start(2).await;
    assert_eq!(*h.connected.borrow(), 2);
    assert_eq!(h.sim.connection_count(), 2);
    let mut connected = h.connected.clone();
    h.stop().await;
    assert_eq!(*connected.borrow_and_update(), 0);
}

#[tokio::test]
async fn an_envelope_is_acked_then_delivered_once_with_its_content() {
    let mut h = Harness::start(2).await;
    let envelope = sim::app_mention(
        "C0ONCALL",
        "U0ALICE",
        "<@U0LINKBOT> check c1hk4ek107l5au5mq8hg",
        "1700000001.000100",
    );
    let id = h.sim.push(envelope).await.expect("push");
    let ack = h.sim.wait_ack(&id, WAIT).await.expect("acked");
    assert!(ack.latency.is_some());

    let inbound = h.next().await;
    assert_eq!(inbound.envelope_id(), id);
    let Inbound::Event { retry_attempt, .. } = &inbound else {
        panic!("not an event")
    };
    assert_eq!(*retry_attempt, 0);
    let event = event_json(&inbound);
    assert_eq!(event["event"]["type"], "app_mention");
    assert_eq!(event["event"]["channel"], "C0ONCALL");
    assert_eq!(event["event"]["user"], "U0ALICE");
    assert_eq!(
        event["event"]["text"],
        "<@U0LINKBOT> check c1hk4ek107l5au5mq8hg"
    );

    let rest = h.deliveries_until_sentinel().await;
    assert_eq!(
        rest.len(),
        1,
        "the first envelope was delivered again: {rest:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_burst_of_200_is_acked_and_delivered_exactly_once() {
    let mut h = Harness::start(2).await;
    let mut pushed = HashSet::new();
    for i in 0..200 {
        let ts = format!("1700001000.{:06}", i);
        let id = h
            .sim
            .push(sim::message(
                "C0ONCALL",
                &format!("burst {i}"),
                &ts,
                None,
                None,
                None,
            ))
            .await
            .expect("push");
        pushed.insert(id);
    }
    let mut delivered = HashSet::new();
    for _ in 0..200 {
        let inbound = h.next().await;
        assert!(
            delivered.insert(inbound.envelope_id().to_string()),
            "delivered twice"
        );
    }
    assert_eq!(delivered, pushed);
    assert!(h.sim.wait_until(|s| s.acks().len() >= 200, WAIT).await);
    let acked: Vec<String> = h.sim.acks().into_iter().map(|a| a.envelope_id).collect();
    let unique: HashSet<&String> = acked.iter().collect();
    assert_eq!(acked.len(), 200, "some envelope was acked twice");
    assert_eq!(unique.len(), 200);
    // both connections carried part of the burst
    let per_conn: HashSet<u64> = h.sim.acks().iter().map(|a| a.connection).collect();
    assert_eq!(per_conn.len(), 2);
    assert_eq!(h.deliveries_until_sentinel().await.len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn the_same_envelope_twice_is_acked_twice_and_delivered_once() {
    let mut h = Harness::start(1).await;
    let envelope = sim::app_mention(
        "C0ONCALL",
        "U0ALICE",
        "<@U0LINKBOT> help",
        "1700000002.000100",
    );
    let id = h.sim.push(envelope.clone()).await.expect("push");
    h.sim.push(envelope).await.expect("push again");
    assert!(
        h.sim
            .wait_until(
                |s| s.acks().iter().filter(|a| a.envelope_id == id).count() == 2,
                WAIT
            )
            .await
    );
    let delivered = h.deliveries_until_sentinel().await;
    assert_eq!(
        delivered.iter().filter(|d| **d == id).count(),
        1,
        "{delivered:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_redelivery_with_a_new_envelope_id_and_the_same_event_is_dropped() {
    let mut h = Harness::start(1).await;
    let original = sim::app_mention(
        "C0ONCALL",
        "U0ALICE",
        "<@U0LINKBOT> check x",
        "1700000003.000100",
    );
    let first = h.sim.push(original.clone()).await.expect("push");
    let retry = h
        .sim
        .push(sim::with_retry(&original, 1))
        .await
        .expect("push retry");
    assert!(
        h.sim.wait_ack(&retry, WAIT).await.is_some(),
        "the redelivery must be acked too"
    );
    let delivered = h.deliveries_until_sentinel().await;
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    assert_eq!(delivered[0], first);
    h.stop().await;
}

#[tokio::test]
async fn a_redelivery_of_an_event_never_seen_is_delivered_with_its_retry_attempt() {
    let mut h = Harness::start(1).await;
    let lost = sim::app_mention(
        "C0ONCALL",
        "U0ALICE",
        "<@U0LINKBOT> check y",
        "1700000004.000100",
    );
    let retry = h.sim.push(sim::with_retry(&lost, 2)).await.expect("push");
    let inbound = h.next().await;
    assert_eq!(inbound.envelope_id(), retry);
    assert!(matches!(
        inbound,
        Inbound::Event {
            retry_attempt: 2,
            ..
        }
    ));
    h.stop().await;
}

#[tokio::test]
async fn disconnect_mid_burst_loses_nothing_and_acks_nothing_twice() {
    let mut h = Harness::start(2).await;
    let opened_before = h.metrics.reconnects.get();
    let mut pushed = Vec::new();
    for i in 0..60 {
        if i == 30 {
            h.sim.disconnect_all("refresh_requested");
        }
        let ts = format!("1700002000.{:06}", i);
        // After the disconnect, push waits for the replacement connections.
        let id = h
            .sim
            .push(sim::message(
                "C0ONCALL",
                &format!("m{i}"),
                &ts,
                None,
                None,
                None,
            ))
            .await
            .expect("push");
        pushed.push(id);
    }
    let mut delivered = HashSet::new();
    for _ in 0..60 {
        let inbound = h.next().await;
        assert!(
            delivered.insert(inbound.envelope_id().to_string()),
            "delivered twice"
        );
    }
    assert_eq!(delivered, pushed.iter().cloned().collect::<HashSet<_>>());
    assert!(
        h.sim
            .wait_until(|s| pushed.iter().all(|id| s.acked(id)), WAIT)
            .await,
        "an envelope was never acked"
    );
    let mut counts: HashMap<String, usize> = HashMap::new();
    for ack in h.sim.acks() {
        *counts.entry(ack.envelope_id).or_default() += 1;
    }
    assert!(counts.values().all(|c| *c == 1), "acked twice: {counts:?}");
    h.wait_connected(2).await;
    assert!(h.metrics.reconnects.get() >= opened_before + 2);
    assert_eq!(h.deliveries_until_sentinel().await.len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn envelopes_sent_on_a_warned_connection_are_still_acked_while_it_drains() {
    let mut h = Harness::start(2).await;
    h.sim.warn_disconnect_all("warning");
    // The transport opens replacements at once; the warned sockets stay open (and live for
    // the fake) until the transport's drain timeout.
    assert!(
        h.sim
            .wait_until(
                |s| s.connections_opened() >= 4 && s.connection_count() >= 4,
                WAIT
            )
            .await,
        "no replacement connections"
    );
    h.wait_connected(2).await;
    let mut pushed = HashSet::new();
    for i in 0..40 {
        let ts = format!("1700004000.{:06}", i);
        pushed.insert(
            h.sim
                .push(sim::message("C0ONCALL", "x", &ts, None, None, None))
                .await
                .expect("push"),
        );
    }
    let mut delivered = HashSet::new();
    for _ in 0..40 {
        assert!(
            delivered.insert(h.next().await.envelope_id().to_string()),
            "delivered twice"
        );
    }
    assert_eq!(delivered, pushed);
    assert!(
        h.sim
            .wait_until(|s| pushed.iter().all(|id| s.acked(id)), WAIT)
            .await
    );
    let acks = h.sim.acks();
    assert_eq!(acks.len(), 40, "acked twice");
    let old_connections_acked = acks.iter().filter(|a| a.connection <= 2).count();
    assert!(
        old_connections_acked > 0,
        "the warned connections carried nothing"
    );
    // After the drain the old sockets are closed by the transport.
    assert!(
        h.sim.wait_until(|s| s.connection_count() == 2, WAIT).await,
        "old sockets never closed"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_tcp_drop_reconnects_and_later_envelopes_are_delivered() {
    let mut h = Harness::start(2).await;
    h.sim.drop_all();
    assert!(
        h.sim
            .wait_until(
                |s| s.connections_opened() >= 4 && s.connection_count() == 2,
                WAIT
            )
            .await,
        "no reconnect after the drop"
    );
    h.wait_connected(2).await;
    let id = h
        .sim
        .push(sim::slash_command(
            "C0ONCALL", "U0ALICE", "/linkbot", "status",
        ))
        .await
        .expect("push");
    let inbound = h.next().await;
    assert_eq!(inbound.envelope_id(), id);
    assert!(h.metrics.reconnects.get() >= 2);
    h.stop().await;
}

#[tokio::test]
async fn a_refused_app_token_ends_the_transport_with_a_clear_error() {
    let slack = SlackSim::start(SimSlackConfig::default())
        .await
        .expect("sim");
    let web = SlackWeb::new(
        &slack.base_url(),
        slack.bot_token(),
        Metrics::new(),
        &Net::direct(),
    )
    .expect("client");
    let (tx, _rx) = mpsc::channel(1);
    let (connected_tx, _connected) = watch::channel(0);
    let run = transport::run(
        web,
        Secret::new("xapp-wrong-app-token-4242"),
        test_config(2),
        tx,
        Metrics::new(),
        CancellationToken::new(),
        connected_tx,
    );
    let result = tokio::time::timeout(WAIT, run).await.expect("returns");
    let err = result.expect_err("must fail");
    assert!(err.is_fatal());
    assert_eq!(err.code(), Some("invalid_auth"));
    assert!(!format!("{err} {err:?} {}", err.user_message()).contains("wrong-app-token"));
}

#[tokio::test]
async fn chat_update_waits_out_a_429_and_then_succeeds() {
    let slack = SlackSim::start(SimSlackConfig::default())
        .await
        .expect("sim");
    let metrics = Metrics::new();
    let web = SlackWeb::new(
        &slack.base_url(),
        slack.bot_token(),
        metrics.clone(),
        &Net::direct(),
    )
    .expect("client");
    let ts = web
        .post_message("C0ONCALL", None, "starting", None)
        .await
        .expect("post");
    slack.fail_next(
        "chat.update",
        1,
        Failure::RateLimited {
            retry_after_secs: 1,
        },
    );
    let started = Instant::now();
    let updated = tokio::time::timeout(WAIT, web.update("C0ONCALL", &ts, "done", None)).await;
    let elapsed = started.elapsed();
    assert!(matches!(updated, Ok(Ok(()))), "{updated:?}");
    assert!(
        elapsed >= Duration::from_millis(950),
        "retried before Retry-After: {elapsed:?}"
    );
    assert_eq!(slack.calls("chat.update").len(), 2, "one 429, one retry");
    let message = slack
        .messages()
        .into_iter()
        .find(|m| m.ts == ts)
        .expect("message");
    assert_eq!(message.text.as_deref(), Some("done"));
    assert!(metrics
        .render()
        .contains(r#"method="chat.update",outcome="ok""#));
}

#[tokio::test]
async fn a_429_that_outlasts_the_retries_is_a_rate_limit_error() {
    let slack = SlackSim::start(SimSlackConfig::default())
        .await
        .expect("sim");
    let web = SlackWeb::new(
        &slack.base_url(),
        slack.bot_token(),
        Metrics::new(),
        &Net::direct(),
    )
    .expect("client");
    slack.fail_next(
        "usergroups.users.list",
        10,
        Failure::RateLimited {
            retry_after_secs: 0,
        },
    );
    let result = tokio::time::timeout(WAIT, web.usergroup_members("S0ONCALL"))
        .await
        .expect("bounded");
    assert!(
        matches!(result, Err(SlackError::RateLimited { .. })),
        "{result:?}"
    );
    assert_eq!(
        slack.calls("usergroups.users.list").len(),
        1 + linkbot::slack::web::MAX_RETRIES
    );
}

#[tokio::test]
async fn a_bad_bot_token_is_a_clear_error_without_the_token() {
    let slack = SlackSim::start(SimSlackConfig::default())
        .await
        .expect("sim");
    let metrics = Metrics::new();
    let web = SlackWeb::new(
        &slack.base_url(),
        Secret::new("xoxb-not-the-right-token-9876"),
        metrics.clone(),
        &Net::direct(),
    )
    .expect("client");
    let err = web.auth_test().await.expect_err("refused");
    assert!(matches!(err, SlackError::Auth { .. }), "{err:?}");
    assert_eq!(err.code(), Some("invalid_auth"));
    assert!(err.user_message().contains("SLACK_BOT_TOKEN"));
    let mut everything = format!("{err}\n{err:?}\n{}\n{web:?}", err.user_message());
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        everything.push_str(&format!("\n{s}\n{s:?}"));
        source = s.source();
    }
    assert!(!everything.contains("not-the-right-token"), "{everything}");
    assert!(metrics
        .render()
        .contains(r#"method="auth.test",outcome="auth""#));
}

#[tokio::test]
async fn web_api_round_trips() {
    let slack = SlackSim::start(SimSlackConfig::default())
        .await
        .expect("sim");
    let web = SlackWeb::new(
        &slack.base_url(),
        slack.bot_token(),
        Metrics::new(),
        &Net::direct(),
    )
    .expect("client");

    let me = web.auth_test().await.expect("auth.test");
    assert_eq!(me.user_id, SIM_BOT_USER_ID);
    assert_eq!(me.bot_id.as_deref(), Some(SIM_BOT_ID));
    assert_eq!(me.team_id, SIM_TEAM_ID);

    let url = web
        .connections_open(&slack.app_token())
        .await
        .expect("connections.open");
    assert_eq!(url.scheme(), "ws");
    assert!(
        web.connections_open(&slack.bot_token()).await.is_err(),
        "bot token must not open sockets"
    );

    let blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": "*Looking up* `c1hk4ek107l5au5mq8hg`"}}),
        json!({"type": "actions", "elements": [{"type": "button", "action_id": "rerun",
            "text": {"type": "plain_text", "text": "Re-run check"}, "value": "c1hk4ek107l5au5mq8hg"}]}),
    ];
    let parent = web
        .post_message(
            "C0ONCALL",
            None,
            "Checking c1hk4ek107l5au5mq8hg",
            Some(blocks.clone()),
        )
        .await
        .expect("post");
    let reply = web
        .post_message("C0ONCALL", Some(&parent), "step 1", None)
        .await
        .expect("reply");
    assert!(reply > parent, "ts must increase: {parent} then {reply}");
    web.update("C0ONCALL", &reply, "step 2", Some(blocks.clone()))
        .await
        .expect("update 1");
    web.update("C0ONCALL", &reply, "verdict", None)
        .await
        .expect("update 2");
    web.post_ephemeral(
        "C0ONCALL",
        "U0BOB",
        Some(&parent),
        "Only on-call may escalate.",
        None,
    )
    .await
    .expect("ephemeral");

    let messages = slack.messages();
    assert_eq!(messages.len(), 3);
    let top = &messages[0];
    assert_eq!(
        (top.channel.as_str(), top.thread_ts.as_deref()),
        ("C0ONCALL", None)
    );
    assert_eq!(
        top.blocks.as_ref().and_then(|b| b.as_array()).map(Vec::len),
        Some(2)
    );
    assert_eq!(
        top.blocks
            .as_ref()
            .map(|b| b[1]["elements"][0]["action_id"].clone()),
        Some(json!("rerun"))
    );
    let threaded = &messages[1];
    assert_eq!(threaded.thread_ts.as_deref(), Some(parent.as_str()));
    let texts: Vec<Option<&str>> = threaded
        .versions
        .iter()
        .map(|v| v.text.as_deref())
        .collect();
    assert_eq!(texts, vec![Some("step 1"), Some("step 2"), Some("verdict")]);
    assert_eq!(threaded.text.as_deref(), Some("verdict"));
    assert_eq!(messages[2].ephemeral_to.as_deref(), Some("U0BOB"));
    assert_eq!(messages[2].thread_ts.as_deref(), Some(parent.as_str()));

    let link = web.permalink("C0ONCALL", &reply).await.expect("permalink");
    assert!(link.path().starts_with("/archives/C0ONCALL/p"), "{link}");
    assert_eq!(
        link.query_pairs()
            .find(|(k, _)| k == "thread_ts")
            .map(|(_, v)| v.into_owned()),
        Some(parent.clone())
    );

    slack.set_usergroup("S0ONCALL", &["U0ALICE", "U0CAROL"]);
    assert_eq!(
        web.usergroup_members("S0ONCALL").await.expect("members"),
        vec!["U0ALICE", "U0CAROL"]
    );
    let missing = web
        .usergroup_members("S0NOPE")
        .await
        .expect_err("unknown group");
    assert_eq!(missing.code(), Some("no_such_subteam"));

    let gone = web
        .update("C0ONCALL", "1.000000", "x", None)
        .await
        .expect_err("no such message");
    assert!(matches!(gone, SlackError::Api { .. }));
    assert_eq!(gone.code(), Some("message_not_found"));

    let calls_before = slack.calls("chat.postMessage").len();
    let bad = web
        .post_message(
            "C0ONCALL",
            None,
            "x",
            Some(vec![json!({"type": "section", "text": 7})]),
        )
        .await
        .expect_err("invalid blocks");
    assert!(matches!(bad, SlackError::InvalidBlocks { index: 0, .. }));
    assert_eq!(
        slack.calls("chat.postMessage").len(),
        calls_before,
        "nothing sent for bad blocks"
    );
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/slack/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn wrap(kind: &str, payload: &str) -> String {
    format!(
        r#"{{"envelope_id":"wrapped-1","payload":{payload},"type":"{kind}","accepts_response_payload":false}}"#
    )
}

#[test]
fn slack_fixtures_parse_into_inbound_variants() {
    let mention = parse_inbound(&fixture("socket_mode_events_api_app_mention_envelope.json"))
        .expect("mention");
    assert_eq!(
        mention.envelope_id(),
        "cda4159a-72a5-4744-aba3-4d66eb52682b"
    );
    assert_eq!(event_json(&mention)["event"]["type"], "app_mention");

    let message =
        parse_inbound(&fixture("socket_mode_events_api_message_envelope.json")).expect("message");
    assert!(matches!(
        message,
        Inbound::Event {
            retry_attempt: 0,
            ..
        }
    ));
    assert_eq!(event_json(&message)["event"]["text"], "<@U111> Hi here!");

    let retried = parse_inbound(&fixture(
        "socket_mode_events_api_message_retry_timeout_envelope.json",
    ))
    .expect("retry");
    assert!(matches!(
        retried,
        Inbound::Event {
            retry_attempt: 1,
            ..
        }
    ));

    match parse_inbound(&fixture("socket_mode_slash_commands_envelope.json")).expect("command") {
        Inbound::Command {
            envelope_id,
            command,
        } => {
            assert_eq!(envelope_id, "1d3c79ab-0ffb-41f3-a080-d19e85f53649");
            let command = serde_json::to_value(&command).expect("serialises");
            assert_eq!(command["command"], "/hello-socket-mode");
            assert_eq!(command["channel_id"], "C111");
        }
        other => panic!("expected a command, got {other:?}"),
    }

    let large = parse_inbound(&fixture(
        "socket_mode_interactive_block_actions_view_large_envelope.json",
    ))
    .expect("large");
    assert!(matches!(large, Inbound::Interaction { .. }));

    let button = parse_inbound(&wrap(
        "interactive",
        &fixture("interactive_block_actions_message_button.json"),
    ))
    .expect("button");
    match button {
        Inbound::Interaction { interaction, .. } => {
            let v = serde_json::to_value(&interaction).expect("serialises");
            assert_eq!(v["type"], "block_actions");
            assert_eq!(v["actions"][0]["action_id"], "button");
            assert_eq!(v["container"]["message_ts"], "1678252213.679169");
        }
        other => panic!("expected an interaction, got {other:?}"),
    }

    for name in [
        "events_api_app_mention_with_text.json",
        "events_api_bot_message_classic.json",
        "events_api_message_changed_by_bot.json",
        "events_api_message_from_app_bot_profile.json",
    ] {
        let inbound = parse_inbound(&wrap("events_api", &fixture(name)))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(matches!(inbound, Inbound::Event { .. }), "{name}");
    }
    let classic = parse_inbound(&wrap(
        "events_api",
        &fixture("events_api_bot_message_classic.json"),
    ))
    .expect("classic");
    assert_eq!(event_json(&classic)["event"]["bot_id"], "B888");

    for control in [
        "socket_mode_hello.json",
        "socket_mode_disconnect_too_many_websockets.json",
        "web_api_error_ratelimited_429.json",
    ] {
        assert!(
            parse_inbound(&fixture(control)).is_err(),
            "{control} is not an envelope"
        );
    }
}

#[test]
fn sim_envelope_builders_parse_into_the_expected_variants() {
    let attachments = json!([{"title": "[FIRING:1] SatelliteLinkConnectorDeployCannotgetIAMTokenFromIAMServer",
        "text": "cluster_id = c1hk4ek107l5au5mq8hg", "fallback": "x", "color": "danger"}]);
    let cases: Vec<(Value, &str)> = vec![
        (
            sim::app_mention("C1", "U1", "<@U0LINKBOT> help", "1700000000.000100"),
            "app_mention",
        ),
        (
            sim::message("C1", "hi", "1700000000.000200", None, None, None),
            "message",
        ),
        (
            sim::message(
                "C1",
                "",
                "1700000000.000300",
                Some("B0AM"),
                None,
                Some(attachments.clone()),
            ),
            "message",
        ),
        (
            sim::message(
                "C1",
                "alert",
                "1700000000.000400",
                Some("B0APP"),
                Some("A0APP"),
                Some(attachments),
            ),
            "message",
        ),
    ];
    for (envelope, kind) in cases {
        let inbound = parse_inbound(&envelope.to_string()).expect("parses");
        assert_eq!(Some(inbound.envelope_id()), sim::envelope_id(&envelope));
        assert_eq!(event_json(&inbound)["event"]["type"], kind);
    }
    let legacy =
        parse_inbound(&sim::message("C1", "", "1.2", Some("B0AM"), None, None).to_string())
            .expect("legacy");
    assert_eq!(event_json(&legacy)["event"]["subtype"], "bot_message");

    let command = parse_inbound(
        &sim::slash_command("C1", "U1", "/linkbot", "check c1hk4ek107l5au5mq8hg").to_string(),
    )
    .expect("command");
    let Inbound::Command { command, .. } = command else {
        panic!("not a command")
    };
    let command = serde_json::to_value(&command).expect("serialises");
    assert_eq!(command["text"], "check c1hk4ek107l5au5mq8hg");

    let click = sim::block_actions(
        "C1",
        "U1",
        "1700000000.000500",
        "escalate",
        "razee",
        Some("1700000000.000100"),
    );
    let Inbound::Interaction { interaction, .. } =
        parse_inbound(&click.to_string()).expect("click")
    else {
        panic!("not an interaction")
    };
    let v = serde_json::to_value(&interaction).expect("serialises");
    assert_eq!(v["actions"][0]["value"], "razee");
    assert_eq!(v["message"]["thread_ts"], "1700000000.000100");
    assert_eq!(v["user"]["id"], "U1");

    let original = sim::app_mention("C1", "U1", "x", "1700000000.000600");
    let retry = sim::with_retry(&original, 1);
    assert_ne!(sim::envelope_id(&retry), sim::envelope_id(&original));
    assert_eq!(
        retry["payload"]["event_id"],
        original["payload"]["event_id"]
    );
    assert!(matches!(
        parse_inbound(&retry.to_string()),
        Ok(Inbound::Event {
            retry_attempt: 1,
            ..
        })
    ));
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Not a benchmark: prints the ack latency the fake sees for 500 envelopes at about 500/s.
#[tokio::test]
async fn ack_latency_for_500_envelopes_at_500_per_second_is_reported() {
    let mut h = Harness::start(2).await;
    let consumer = {
        let mut rx = std::mem::replace(&mut h.rx, mpsc::channel(1).1);
        tokio::spawn(async move {
            let mut n = 0usize;
            while n < 500 {
                match tokio::time::timeout(WAIT, rx.recv()).await {
                    Ok(Some(_)) => n += 1,
                    _ => break,
                }
            }
            n
        })
    };
    let mut ticker = tokio::time::interval(Duration::from_millis(2));
    let mut ids = Vec::new();
    for i in 0..500 {
        ticker.tick().await;
        let ts = format!("1700003000.{:06}", i);
        let envelope = sim::app_mention("C0ONCALL", "U0ALICE", "<@U0LINKBOT> status", &ts);
        ids.push(h.sim.push(envelope).await.expect("push"));
    }
    assert!(
        h.sim
            .wait_until(|s| ids.iter().all(|id| s.acked(id)), WAIT)
            .await
    );
    assert_eq!(consumer.await.expect("consumer"), 500);
    let mut latencies: Vec<Duration> = h.sim.acks().into_iter().filter_map(|a| a.latency).collect();
    latencies.sort();
    assert_eq!(latencies.len(), 500);
    println!(
        "ack latency seen by the fake, 500 envelopes at ~500/s over 2 connections: p50 = {:?}, p99 = {:?}, max = {:?}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
    );
    h.stop().await;
}

#[tokio::test]
async fn post_message_is_paced_per_channel_unless_pacing_is_off() {
    let slack = SlackSim::start(SimSlackConfig::default())
        .await
        .expect("sim");
    let web = SlackWeb::new(
        &slack.base_url(),
        slack.bot_token(),
        Metrics::new(),
        &Net::direct(),
    )
    .expect("client");
    for i in 0..10 {
        web.post_message("C0BURST", None, &format!("m{i}"), None)
            .await
            .expect("post");
    }
    let started = Instant::now();
    web.post_message("C0BURST", None, "m10", None)
        .await
        .expect("post 11");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the 11th post in a second was not paced"
    );

    let unpaced = SlackWeb::new(
        &slack.base_url(),
        slack.bot_token(),
        Metrics::new(),
        &Net::direct(),
    )
    .expect("client")
    .without_pacing();
    for i in 0..11 {
        unpaced
            .post_message("C0OTHER", None, &format!("n{i}"), None)
            .await
            .expect("post");
    }
    assert_eq!(
        slack.calls("chat.postMessage").len(),
        22,
        "no 429 retries were needed"
    );
}

/// Posts `params` as JSON to the sim's `method` with the bot token, as Slack's clients do.
async fn raw_call(sim: &SlackSim, method: &str, params: Value) -> (u16, Value) {
    let url = format!("{}/{method}", sim.base_url());
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(sim.bot_token().expose())
        .json(&params)
        .timeout(WAIT)
        .send()
        .await
        .expect("the sim answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

#[tokio::test]
async fn the_sim_refuses_invalid_block_kit_exactly_as_slack_answers() {
    let sim = SlackSim::start(SimSlackConfig::default())
        .await
        .expect("sim");
    let button = |id: &str| json!({"type": "button", "text": {"type": "plain_text", "text": "Escalate"}, "action_id": id, "value": "v"});
    let duplicate = json!([
        {"type": "section", "text": {"type": "mrkdwn", "text": "*verdict*"}},
        {"type": "actions", "elements": [button("linkbot_escalate"), button("linkbot_escalate")]},
    ]);
    let (status, body) = raw_call(
        &sim,
        "chat.postMessage",
        json!({"channel": "C0ONCALL", "text": "t", "blocks": duplicate}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], false);
    assert_eq!(body["error"], "invalid_blocks");
    let messages: Vec<&str> = body["response_metadata"]["messages"]
        .as_array()
        .expect("response_metadata.messages")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        messages.iter().any(|m| m.starts_with("[ERROR] ")
            && m.ends_with("[json-pointer:/blocks/1/elements/1/action_id]")),
        "{messages:?}"
    );
    assert!(sim.messages().is_empty(), "a refused message was recorded");

    let (_, too_long) = raw_call(
        &sim,
        "chat.postMessage",
        json!({"channel": "C0ONCALL", "text": "x".repeat(40_001)}),
    )
    .await;
    assert_eq!(too_long["error"], "msg_too_long");

    // The real client gets the refusal as an error, and the same blocks with unique ids pass.
    let web = SlackWeb::new(
        &sim.base_url(),
        sim.bot_token(),
        Metrics::new(),
        &Net::direct(),
    )
    .expect("client");
    let refused = web
        .post_message("C0ONCALL", None, "t", duplicate.as_array().cloned())
        .await;
    assert!(
        format!("{:?}", refused.expect_err("refused")).contains("invalid_blocks"),
        "the client did not surface invalid_blocks"
    );
    let ts = web
        .post_message(
            "C0ONCALL",
            None,
            "t",
            Some(vec![json!({"type": "actions", "elements": [
                button("linkbot_escalate:razee"), button("linkbot_escalate:satellite_link")
            ]})]),
        )
        .await
        .expect("unique action ids are accepted");
    let update = web
        .update("C0ONCALL", &ts, "t", duplicate.as_array().cloned())
        .await;
    assert!(update.is_err(), "chat.update accepted duplicate action ids");
    let ephemeral = web
        .post_ephemeral(
            "C0ONCALL",
            "U0SIMUSER",
            None,
            "t",
            Some(vec![
                json!({"type": "section", "text": {"type": "mrkdwn", "text": ""}}),
            ]),
        )
        .await;
    assert!(ephemeral.is_err(), "chat.postEphemeral accepted empty text");
    let errors: Vec<String> = sim.refusals().into_iter().map(|r| r.error).collect();
    assert_eq!(
        errors,
        [
            "invalid_blocks",
            "msg_too_long",
            "invalid_blocks",
            "invalid_blocks",
            "invalid_blocks"
        ]
    );
}

#[tokio::test]
async fn views_open_takes_a_valid_modal_with_a_trigger_id_slack_issued_once() {
    let mut h = Harness::start(1).await;
    let click = sim::block_actions(
        "C0ONCALL",
        "U0SIMUSER",
        "1700000000.000100",
        "linkbot_feedback",
        "v",
        None,
    );
    let trigger = click["payload"]["trigger_id"]
        .as_str()
        .expect("a trigger id")
        .to_string();
    h.sim.push(click).await.expect("pushed");
    h.next().await;
    let modal = json!({
        "type": "modal",
        "callback_id": "linkbot_feedback",
        "title": {"type": "plain_text", "text": "What was it really?"},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [{"type": "input", "block_id": "comment", "label": {"type": "plain_text", "text": "Comment"},
            "element": {"type": "plain_text_input", "action_id": "comment", "multiline": true}}],
    });

    let (_, missing) = raw_call(&h.sim, "views.open", json!({"view": modal})).await;
    assert_eq!(missing["error"], "invalid_arguments");
    let (_, unknown) = raw_call(
        &h.sim,
        "views.open",
        json!({"trigger_id": "123.456.forged", "view": modal}),
    )
    .await;
    assert_eq!(unknown["error"], "invalid_trigger_id");

    let mut bad = modal.clone();
    bad["title"]["text"] = json!("A title longer than 24 chars");
    let (status, refused) = raw_call(
        &h.sim,
        "views.open",
        json!({"trigger_id": trigger, "view": bad}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(refused["error"], "invalid_arguments");
    assert!(
        refused["response_metadata"]["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m
                .as_str()
                .is_some_and(|m| m.ends_with("[json-pointer:/view/title/text]"))),
        "{refused}"
    );

    let (_, opened) = raw_call(
        &h.sim,
        "views.open",
        json!({"trigger_id": trigger, "view": modal}),
    )
    .await;
    assert_eq!(opened["ok"], true, "{opened}");
    assert_eq!(opened["view"]["callback_id"], "linkbot_feedback");
    assert_eq!(h.sim.views().len(), 1);
    let (_, again) = raw_call(
        &h.sim,
        "views.open",
        json!({"trigger_id": trigger, "view": modal}),
    )
    .await;
    assert_eq!(again["error"], "exchanged_trigger_id");
    h.stop().await;
}

#[tokio::test]
async fn reactions_go_on_messages_slack_holds_once_and_by_name() {
    let mut h = Harness::start(1).await;
    let web = SlackWeb::new(
        &h.sim.base_url(),
        h.sim.bot_token(),
        Metrics::new(),
        &Net::direct(),
    )
    .expect("client");
    // A message a person (or Alertmanager) posted: Slack holds it once its event went out.
    let alert_ts = "1700000123.000200";
    h.sim
        .push(linkbot::sim::slack::app_mention(
            "C0ONCALL",
            "U0ALICE",
            "<@U0LINKBOT> hello",
            alert_ts,
        ))
        .await
        .expect("pushed");
    h.next().await;
    let ours = web
        .post_message("C0ONCALL", None, "a diagnosis", None)
        .await
        .expect("posted");

    web.add_reaction("C0ONCALL", alert_ts, "white_check_mark")
        .await
        .expect("react to a person's message");
    web.add_reaction("C0ONCALL", &ours, "white_check_mark")
        .await
        .expect("react to our own message");
    // Again: Slack says already_reacted, which is what was asked for.
    web.add_reaction("C0ONCALL", alert_ts, "white_check_mark")
        .await
        .expect("a repeat is not an error");
    assert_eq!(h.sim.reactions().len(), 2, "{:?}", h.sim.reactions());

    for (channel, ts, name, code) in [
        ("C0ONCALL", alert_ts, ":white_check_mark:", "invalid_name"),
        ("C0ONCALL", alert_ts, "", "invalid_name"),
        (
            "C0ONCALL",
            "1700000999.000100",
            "white_check_mark",
            "message_not_found",
        ),
        ("C0OTHER", alert_ts, "white_check_mark", "message_not_found"),
        ("C0ONCALL", "yesterday", "white_check_mark", "bad_timestamp"),
    ] {
        let err = web
            .add_reaction(channel, ts, name)
            .await
            .expect_err("Slack refuses it");
        assert_eq!(err.code(), Some(code), "{channel} {ts} {name}: {err}");
    }
    assert_eq!(h.sim.reactions().len(), 2);
    h.stop().await;
}
