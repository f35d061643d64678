//! The Slack bot end to end: the real bot ([`linkbot::app::start`], as `linkbot run` starts it)
//! against the simulated world — a fake Slack speaking the Web API over HTTP and Socket Mode
//! over a WebSocket, plus the directory, Jenkins, IAM, PagerDuty and GitHub fakes — asserting
//! what people in Slack (and the on-call teams) would see.
//!
//! Each test has its own world and bot, is bounded in time (every wait has a timeout) and stops
//! its bot at the end. "Nothing happened" is never concluded from a sleep: the test waits for a
//! later, slower event instead (a barrier check answered in another thread).

use linkbot::app::{self, RunningBot};
use linkbot::config::Config;
use linkbot::diagnosis::verdict::{Report, VerdictCode};
use linkbot::domain::{Environment, LocationId};
use linkbot::sim::slack::{self as fake, Failure, SimMessage};
use linkbot::sim::world::{
    self, World, ALERT_BOT, ENGINEER, IAM_KEY, ONCALL_CHANNEL, OTHER_CHANNEL, RAZEE_CHANNEL,
    SATLINK_CHANNEL, SATLINK_REPO, VISITOR,
};
use linkbot::slack::alerts::ALERT_NAME;
use linkbot::slack::blocks::{
    action_kind, ButtonValue, ACTION_ESCALATE, ACTION_FEEDBACK_DOWN, ACTION_FEEDBACK_UP,
    ACTION_PAGE, ACTION_RERUN,
};
use linkbot::slack::commands::USAGE;
use linkbot::store::{AuditKind, CheckKey};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The bound on any single wait.
const WAIT: Duration = Duration::from_secs(15);

/// Every Web API method the fake Slack serves (for the "no secret in any call" scan).
const SLACK_METHODS: [&str; 7] = [
    "auth.test",
    "apps.connections.open",
    "chat.postMessage",
    "chat.update",
    "chat.postEphemeral",
    "chat.getPermalink",
    "usergroups.users.list",
];

// ---------------------------------------------------------------------------------------------
// Shared setup

/// One world and one bot connected to it.
struct Harness {
    world: World,
    bot: RunningBot,
    barriers: u32,
}

async fn start() -> Harness {
    start_with(|_| {}).await
}

/// Starts a world and the bot, with `tweak` applied to the world's `bot.toml`.
async fn start_with(tweak: impl FnOnce(&mut Config)) -> Harness {
    let world = World::start().await.expect("the simulated world starts");
    let mut config = world
        .config(&world.sqlite_url("bot"))
        .expect("the simulated bot.toml is valid");
    tweak(&mut config);
    let connections = config.slack.connections;
    let options = crate::common::bot_options("bot-test");
    let bot = app::start(Arc::new(config), world.secrets(), options)
        .await
        .expect("the bot starts");
    assert!(
        bot.wait_connected(connections, WAIT).await,
        "the bot did not open {connections} Socket Mode connections"
    );
    Harness {
        world,
        bot,
        barriers: 0,
    }
}

/// The seed's text form of the alert.
fn alert_text(loc: &LocationId) -> String {
    format!(
        "Labels:\n - alertname = {ALERT_NAME}\n - alert_situation = {ALERT_NAME}\n - service = satellite-link\n - severity = critical\n - cluster_id = {loc}\n - namespace = satellite-link\nAnnotations:\n - summary = \"Link connector is rebooting : no IAM Token can be retrieved from IAM Server\""
    )
}

/// Alertmanager's Slack receiver form: one attachment with title, text and fields.
fn alert_attachments(loc: &LocationId) -> Value {
    json!([{
        "color": "danger",
        "title": format!("[FIRING:1] {ALERT_NAME} (critical satellite-link)"),
        "title_link": "http://alertmanager.example/#/alerts",
        "text": "*Alert:* Link connector is rebooting : no IAM Token can be retrieved from IAM Server\n*Severity:* `critical`",
        "fields": [
            {"title": "alertname", "value": ALERT_NAME, "short": true},
            {"title": "cluster_id", "value": loc.as_str(), "short": true},
        ],
        "fallback": format!("[FIRING:1] {ALERT_NAME}"),
    }])
}

/// Digits of a Slack `ts` (as in a permalink's `p…`).
fn digits(ts: &str) -> String {
    ts.chars().filter(char::is_ascii_digit).collect()
}

/// Everything a Slack message ever showed, every version, text and blocks.
fn all_versions(m: &SimMessage) -> String {
    m.versions
        .iter()
        .map(|v| format!("{:?}\n{}", v.text, v.blocks.clone().unwrap_or(Value::Null)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).copied().unwrap_or_default()
}

impl Harness {
    /// An `@linkbot <words>` mention by `user` in `channel`, posted as user message `n`.
    /// Returns the mention's `ts` (the thread the answer goes to) and the envelope.
    async fn mention(&self, channel: &str, user: &str, words: &str, n: u32) -> (String, Value) {
        let ts = World::user_ts(n);
        let text = format!("<@{}> {words}", fake::SIM_BOT_USER_ID);
        let envelope = fake::app_mention(channel, user, &text, &ts);
        self.world
            .slack
            .push(envelope.clone())
            .await
            .expect("a live Socket Mode connection");
        (ts, envelope)
    }

    /// A message by Alertmanager (an alert source) in `channel`, as user message `n`.
    async fn alert(
        &self,
        channel: &str,
        text: &str,
        attachments: Option<Value>,
        n: u32,
    ) -> (String, Value) {
        let ts = World::user_ts(n);
        let envelope = fake::message(
            channel,
            text,
            &ts,
            Some(ALERT_BOT),
            Some("A0ALERTMGR"),
            attachments,
        );
        self.world
            .slack
            .push(envelope.clone())
            .await
            .expect("a live Socket Mode connection");
        (ts, envelope)
    }

    /// `/linkbot <text>` by `user` in `channel`.
    async fn slash(&self, channel: &str, user: &str, text: &str) {
        self.world
            .slack
            .push(fake::slash_command(channel, user, "/linkbot", text))
            .await
            .expect("a live Socket Mode connection");
    }

    /// Waits for `n` verdicts in the thread; panics with the thread's content if they never come.
    async fn verdicts(&self, channel: &str, thread: &str, n: usize) -> Vec<SimMessage> {
        match self.world.wait_verdicts(channel, thread, n, WAIT).await {
            Some(v) => v,
            None => panic!(
                "no {n} verdict(s) in thread {thread} of {channel} within {WAIT:?}; the thread holds:\n{}",
                self.render_thread(channel, thread)
            ),
        }
    }

    /// Waits for one verdict in the thread and returns it.
    async fn verdict(&self, channel: &str, thread: &str) -> SimMessage {
        self.verdicts(channel, thread, 1)
            .await
            .pop()
            .expect("one verdict")
    }

    fn render_thread(&self, channel: &str, thread: &str) -> String {
        self.world
            .thread(channel, thread)
            .iter()
            .map(world::render_message)
            .collect::<Vec<_>>()
            .join("\n---\n")
    }

    /// The bot's visible (non-ephemeral) messages in a thread.
    fn posts(&self, channel: &str, thread: &str) -> Vec<SimMessage> {
        self.world
            .thread(channel, thread)
            .into_iter()
            .filter(|m| m.ephemeral_to.is_none())
            .collect()
    }

    /// Waits for a message in `channel` (any thread, ephemeral or not) matching `pred`.
    async fn wait_message(
        &self,
        what: &str,
        mut pred: impl FnMut(&SimMessage) -> bool,
    ) -> SimMessage {
        let ok = self
            .world
            .slack
            .wait_until(|s| s.messages().iter().any(&mut pred), WAIT)
            .await;
        assert!(ok, "{what}: no such message within {WAIT:?}");
        self.world
            .slack
            .messages()
            .into_iter()
            .find(pred)
            .expect("the message just seen")
    }

    /// Waits for a visible message in the thread whose text contains `needle`.
    async fn wait_text(&self, channel: &str, thread: &str, needle: &str) -> SimMessage {
        let (c, t) = (channel.to_string(), thread.to_string());
        self.wait_message(&format!("{needle:?} in thread {thread}"), move |m| {
            m.channel == c
                && m.thread_ts.as_deref() == Some(t.as_str())
                && m.ephemeral_to.is_none()
                && m.text.as_deref().unwrap_or("").contains(needle)
        })
        .await
    }

    /// Waits until `user` has been shown `n` ephemeral messages; returns them.
    async fn ephemerals(&self, user: &str, n: usize) -> Vec<SimMessage> {
        let mine = |m: &SimMessage| m.ephemeral_to.as_deref() == Some(user);
        let ok = self
            .world
            .slack
            .wait_until(
                |s| s.messages().iter().filter(|m| mine(m)).count() >= n,
                WAIT,
            )
            .await;
        assert!(ok, "{user} was not shown {n} ephemeral message(s)");
        self.world
            .slack
            .messages()
            .into_iter()
            .filter(mine)
            .collect()
    }

    /// Clicks a button of the latest verdict in `thread`.
    async fn click(
        &self,
        thread: &str,
        loc: &LocationId,
        action: &str,
        target: Option<&str>,
        user: &str,
    ) {
        let verdict = self
            .world
            .thread(ONCALL_CHANNEL, thread)
            .into_iter()
            .rev()
            .find(world::is_verdict)
            .expect("a verdict to click on");
        let value = value(loc, Environment::Prod, target);
        // The action_id the message offers for this kind and target (`linkbot_escalate:razee`);
        // the value stays the one built here, so a test can still send a forged one.
        let offered = verdict
            .blocks
            .iter()
            .flat_map(|b| b.as_array().into_iter().flatten())
            .flat_map(|b| b["elements"].as_array().into_iter().flatten())
            .filter_map(|e| {
                let id = e["action_id"].as_str()?;
                let t = e["value"]
                    .as_str()
                    .and_then(|v| serde_json::from_str::<ButtonValue>(v).ok())
                    .and_then(|v| v.target);
                (action_kind(id) == action && t.as_deref() == target).then(|| id.to_string())
            })
            .next();
        let action_id = offered.unwrap_or_else(|| match target {
            Some(t) => format!("{action}:{t}"),
            None => action.to_string(),
        });
        push_click(self, thread, &verdict.ts, &action_id, &value, user).await;
    }

    /// Jenkins builds triggered for `loc`.
    fn builds_for(&self, loc: &LocationId) -> usize {
        self.world
            .jenkins
            .triggers()
            .iter()
            .filter(|t| t.get("CLUSTERID").map(String::as_str) == Some(loc.as_str()))
            .count()
    }

    /// A check answered in another thread, pushed after everything before it: once its verdict
    /// is in, any envelope pushed earlier has long been handled (a check takes hundreds of
    /// milliseconds of simulated Jenkins; ignoring an envelope takes microseconds).
    async fn barrier(&mut self) {
        self.barriers += 1;
        let n = 900 + self.barriers;
        let loc = self.world.scenario(VerdictCode::ApiKeyAccepted, n);
        let (ts, _) = self
            .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), n)
            .await;
        let v = self.verdict(ONCALL_CHANNEL, &ts).await;
        assert_eq!(world::verdict_code(&v), Some(VerdictCode::ApiKeyAccepted));
    }

    /// The last report the store holds for `loc` (prod).
    async fn stored_report(&self, loc: &LocationId) -> Report {
        let key = CheckKey {
            environment: Environment::Prod,
            location: loc.clone(),
        };
        let done = self
            .bot
            .store
            .latest_finished(&key)
            .await
            .expect("the store answers")
            .expect("a finished check");
        serde_json::from_value(done.report).expect("a readable report")
    }

    /// No Slack payload — any version of any message, any call's parameters — carries a secret.
    fn assert_no_secrets_in_slack(&self) {
        let secrets = self.world.all_secret_values();
        assert!(secrets.iter().any(|s| s == IAM_KEY));
        for m in self.world.slack.messages() {
            let shown = all_versions(&m);
            for s in &secrets {
                assert!(
                    !shown.contains(s.as_str()),
                    "a secret (…{}) reached Slack in message {} of {}",
                    &s[s.len().saturating_sub(4)..],
                    m.ts,
                    m.channel
                );
            }
        }
        for method in SLACK_METHODS {
            for params in self.world.slack.calls(method) {
                let sent = params.to_string();
                for s in &secrets {
                    assert!(
                        !sent.contains(s.as_str()),
                        "a secret (…{}) was sent to Slack in a {method} call",
                        &s[s.len().saturating_sub(4)..]
                    );
                }
            }
        }
    }

    /// Every envelope pushed was acked; the latencies are printed. Then the bot stops.
    async fn finish(self, name: &str) {
        let all_acked = self
            .world
            .slack
            .wait_until(
                |s| !s.pushed().is_empty() && s.pushed().iter().all(|id| s.acked(id)),
                WAIT,
            )
            .await;
        assert!(all_acked, "{name}: an envelope was never acked");
        let mut lat: Vec<Duration> = self
            .world
            .slack
            .acks()
            .iter()
            .filter_map(|a| a.latency)
            .collect();
        lat.sort();
        println!(
            "{name}: {} envelope(s) acked, ack latency p50 {:?}, max {:?}",
            lat.len(),
            pct(&lat, 0.5),
            pct(&lat, 1.0)
        );
        self.assert_no_secrets_in_slack();
        let refusals = self.world.slack.refusals();
        assert!(
            refusals.is_empty(),
            "{name}: Slack refused what the bot sent: {refusals:#?}"
        );
        tokio::time::timeout(Duration::from_secs(10), self.bot.stop())
            .await
            .expect("the bot stops within its bound");
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_is_answered_in_its_thread_by_one_message_edited_into_the_verdict() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let (thread, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), 1)
        .await;

    let v = h.verdict(ONCALL_CHANNEL, &thread).await;
    assert_eq!(world::verdict_code(&v), Some(VerdictCode::ApiKeyInvalid));
    let shown = world::render_message(&v);
    assert!(shown.contains(loc.as_str()), "{shown}");
    assert!(
        shown.contains("ibmcloud ks api-key reset --region us-east"),
        "{shown}"
    );
    assert!(
        shown.contains("/job/armada-ha-master-get-info/"),
        "no Jenkins link: {shown}"
    );
    assert!(shown.contains("[Re-run check]"), "{shown}");
    // One message, edited in place from "checking" through the stages to the verdict.
    assert_eq!(h.posts(ONCALL_CHANNEL, &thread).len(), 1);
    let first = v.versions.first().expect("a first version");
    assert!(
        first.text.as_deref().unwrap_or("").contains(loc.as_str()),
        "{first:?}"
    );
    assert!(
        v.versions.len() >= 3,
        "only {} version(s)",
        v.versions.len()
    );
    assert!(
        v.versions[..v.versions.len() - 1].iter().any(|ver| ver
            .blocks
            .as_ref()
            .is_some_and(|b| b.to_string().contains("Looking up"))),
        "no progress edit before the verdict"
    );
    assert_eq!(h.builds_for(&loc), 1);
    h.finish("mention").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_command_acks_ephemerally_then_posts_in_the_channel_and_threads_the_verdict() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::ApiKeyAccepted, 0);
    h.slash(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"))
        .await;

    let ack = h.ephemerals(ENGINEER, 1).await.remove(0);
    assert_eq!(ack.channel, ONCALL_CHANNEL);
    assert!(
        ack.text.as_deref().unwrap_or("").contains(loc.as_str()),
        "{ack:?}"
    );
    let l = loc.to_string();
    let root = h
        .wait_message("the visible message of the slash command", |m| {
            m.channel == ONCALL_CHANNEL
                && m.thread_ts.is_none()
                && m.ephemeral_to.is_none()
                && m.text.as_deref().unwrap_or("").contains(&l)
        })
        .await;
    assert!(root
        .text
        .as_deref()
        .unwrap_or("")
        .contains(&format!("<@{ENGINEER}>")));
    let order: Vec<String> = h
        .world
        .slack
        .messages()
        .iter()
        .map(|m| m.ts.clone())
        .collect();
    let pos = |ts: &str| order.iter().position(|t| t == ts);
    assert!(
        pos(&ack.ts) < pos(&root.ts),
        "the ephemeral ack came after the channel message"
    );

    let v = h.verdict(ONCALL_CHANNEL, &root.ts).await;
    assert_eq!(world::verdict_code(&v), Some(VerdictCode::ApiKeyAccepted));
    assert_eq!(h.builds_for(&loc), 1);
    h.finish("slash").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_in_both_forms_are_answered_in_their_threads_and_resolved_ones_are_not() {
    let mut h = start().await;
    let text_loc = h.world.scenario(VerdictCode::RegionMismatch, 0);
    let att_loc = h.world.scenario(VerdictCode::ConfigMissing, 0);
    let resolved_loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);

    let (text_thread, _) = h
        .alert(ONCALL_CHANNEL, &alert_text(&text_loc), None, 1)
        .await;
    let (att_thread, _) = h
        .alert(ONCALL_CHANNEL, "", Some(alert_attachments(&att_loc)), 2)
        .await;
    let resolved = format!("[RESOLVED]\n{}", alert_text(&resolved_loc));
    let (resolved_thread, _) = h.alert(ONCALL_CHANNEL, &resolved, None, 3).await;
    let mut resolved_att = alert_attachments(&resolved_loc);
    resolved_att[0]["title"] = json!(format!("[RESOLVED] {ALERT_NAME} (critical satellite-link)"));
    let (resolved_att_thread, _) = h.alert(ONCALL_CHANNEL, "", Some(resolved_att), 4).await;

    let v = h.verdict(ONCALL_CHANNEL, &text_thread).await;
    assert_eq!(world::verdict_code(&v), Some(VerdictCode::RegionMismatch));
    assert!(world::render_message(&v).contains("us-south"));
    let v = h.verdict(ONCALL_CHANNEL, &att_thread).await;
    assert_eq!(world::verdict_code(&v), Some(VerdictCode::ConfigMissing));
    h.barrier().await;

    assert!(h.world.thread(ONCALL_CHANNEL, &resolved_thread).is_empty());
    assert!(h
        .world
        .thread(ONCALL_CHANNEL, &resolved_att_thread)
        .is_empty());
    assert_eq!(h.builds_for(&resolved_loc), 0);
    assert_eq!((h.builds_for(&text_loc), h.builds_for(&att_loc)), (1, 1));
    h.finish("alerts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_storm_for_one_location_runs_one_build_and_answers_every_thread() {
    // Issue 10: the first alert opens the incident and gets the diagnosis; every further one
    // repeats it — no build, no second diagnosis, a one-line pointer to the diagnosis instead.
    let h = start().await;
    let loc = h.world.scenario_with(
        VerdictCode::ConfigMissing,
        0,
        World::timing(Duration::from_millis(800)),
    );
    let pushed_at = Instant::now();
    let mut threads = Vec::new();
    for n in 1..=20 {
        // Both forms, interleaved, as a flapping Alertmanager would send them.
        let (ts, _) = if n % 2 == 0 {
            h.alert(ONCALL_CHANNEL, &alert_text(&loc), None, n).await
        } else {
            h.alert(ONCALL_CHANNEL, "", Some(alert_attachments(&loc)), n)
                .await
        };
        threads.push(ts);
    }
    println!("alert storm: 20 alerts pushed in {:?}", pushed_at.elapsed());

    // Which alert opened the incident depends on which envelope was handled first.
    let visible = |s: &fake::SimSlackState, ts: &str| -> Vec<SimMessage> {
        s.thread(ONCALL_CHANNEL, ts)
            .into_iter()
            .filter(|m| m.ephemeral_to.is_none())
            .cloned()
            .collect()
    };
    let ok = h
        .world
        .slack
        .wait_until(
            |s| {
                threads
                    .iter()
                    .filter(|ts| visible(s, ts).iter().any(world::is_verdict))
                    .count()
                    == 1
                    && threads.iter().all(|ts| visible(s, ts).len() == 1)
            },
            WAIT,
        )
        .await;
    assert!(
        ok,
        "one verdict and 19 pointers did not arrive within {WAIT:?}"
    );
    let first = threads
        .iter()
        .find(|ts| h.posts(ONCALL_CHANNEL, ts).iter().any(world::is_verdict))
        .expect("the thread with the diagnosis")
        .clone();
    let diagnosis = h.verdict(ONCALL_CHANNEL, &first).await;
    assert_eq!(
        world::verdict_code(&diagnosis),
        Some(VerdictCode::ConfigMissing)
    );
    for ts in threads.iter().filter(|ts| **ts != first) {
        let posts = h.posts(ONCALL_CHANNEL, ts);
        assert_eq!(posts.len(), 1, "thread {ts}");
        let text = posts[0].text.clone().unwrap_or_default();
        assert!(text.contains("Fired again"), "thread {ts}: {text}");
        // A repeat handled before the diagnosis message existed points at the opening alert.
        assert!(
            text.contains(&digits(&diagnosis.ts)) || text.contains(&digits(&first)),
            "thread {ts} links neither the diagnosis nor its alert: {text}"
        );
    }
    let counted = h
        .world
        .slack
        .wait_until(
            |s| {
                s.message(ONCALL_CHANNEL, &diagnosis.ts)
                    .is_some_and(|m| all_versions(m).contains("Fired again ×19"))
            },
            WAIT,
        )
        .await;
    assert!(counted, "the diagnosis never showed the 19 repeats");
    assert_eq!(h.builds_for(&loc), 1, "an alert storm flooded Jenkins");
    assert_eq!(h.world.jenkins.triggers().len(), 1);
    h.finish("alert storm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_envelope_never_starts_a_second_check() {
    // No result reuse: a redelivery handled as new would start a second build.
    let mut h = start_with(|c| c.check.result_ttl = Duration::ZERO).await;
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let alert_loc = h.world.scenario(VerdictCode::RegionMismatch, 0);

    // A mention redelivered while its check runs.
    let (thread, mention) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), 1)
        .await;
    h.world
        .slack
        .push(fake::with_retry(&mention, 1))
        .await
        .expect("pushed");
    // An alert redelivered after its verdict is in.
    let (alert_thread, alert) = h
        .alert(ONCALL_CHANNEL, &alert_text(&alert_loc), None, 2)
        .await;
    h.verdict(ONCALL_CHANNEL, &thread).await;
    h.verdict(ONCALL_CHANNEL, &alert_thread).await;
    h.world
        .slack
        .push(fake::with_retry(&alert, 2))
        .await
        .expect("pushed");
    h.world
        .slack
        .push(fake::with_retry(&mention, 3))
        .await
        .expect("pushed");
    h.barrier().await;

    assert_eq!(h.posts(ONCALL_CHANNEL, &thread).len(), 1);
    assert_eq!(h.posts(ONCALL_CHANNEL, &alert_thread).len(), 1);
    assert_eq!(h.builds_for(&loc), 1);
    assert_eq!(h.builds_for(&alert_loc), 1);
    h.finish("redelivery").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_checked_in_a_channel_that_is_not_configured() {
    let mut h = start().await;
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    h.mention(OTHER_CHANNEL, ENGINEER, &format!("check {loc}"), 1)
        .await;
    h.alert(OTHER_CHANNEL, &alert_text(&loc), None, 2).await;
    h.alert(OTHER_CHANNEL, "", Some(alert_attachments(&loc)), 3)
        .await;
    h.slash(OTHER_CHANNEL, ENGINEER, &format!("check {loc}"))
        .await;

    // The slash command is told where checks run, privately.
    let refusal = h.ephemerals(ENGINEER, 1).await.remove(0);
    assert_eq!(refusal.channel, OTHER_CHANNEL);
    assert!(
        refusal
            .text
            .as_deref()
            .unwrap_or("")
            .contains(&format!("<#{ONCALL_CHANNEL}>")),
        "{refusal:?}"
    );
    h.barrier().await;
    let visible: Vec<SimMessage> = h
        .world
        .slack
        .messages()
        .into_iter()
        .filter(|m| m.channel == OTHER_CHANNEL && m.ephemeral_to.is_none())
        .collect();
    assert!(
        visible.is_empty(),
        "the bot posted in {OTHER_CHANNEL}: {visible:?}"
    );
    assert_eq!(h.builds_for(&loc), 0);
    assert!(
        !h.world
            .directory
            .requests()
            .iter()
            .any(|r| r.contains(loc.as_str())),
        "the directory was asked about {loc}"
    );
    h.finish("unconfigured channel").await;
}

// ---------------------------------------------------------------------------------------------
// Buttons

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_call_member_escalates_to_pagerduty_github_and_the_team_channel() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let other = h.world.scenario(VerdictCode::ApiKeyInvalid, 1);
    let (thread, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), 1)
        .await;
    let (other_thread, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {other}"), 2)
        .await;
    let v = h.verdict(ONCALL_CHANNEL, &thread).await;
    assert!(world::render_message(&v).contains("[Escalate → Satellite Link squad]"));
    h.verdict(ONCALL_CHANNEL, &other_thread).await;

    // Page (CIE): one PagerDuty trigger per click, deduplicated per location.
    h.click(&thread, &loc, ACTION_PAGE, Some("satellite_link"), ENGINEER)
        .await;
    let paged = h.wait_text(ONCALL_CHANNEL, &thread, "PagerDuty").await;
    h.click(
        &other_thread,
        &other,
        ACTION_PAGE,
        Some("satellite_link"),
        ENGINEER,
    )
    .await;
    h.wait_text(ONCALL_CHANNEL, &other_thread, "PagerDuty")
        .await;
    let pages = h
        .world
        .pagerduty
        .wait_for_requests(2, WAIT)
        .await
        .expect("two pages");
    let page = pages[0].json().expect("a JSON event");
    assert_eq!(page["event_action"], "trigger");
    let key = page["dedup_key"].as_str().expect("a dedup_key").to_string();
    assert!(
        key.contains(loc.as_str()),
        "dedup_key {key} does not name {loc}"
    );
    let other_key = pages[1].json().expect("a JSON event")["dedup_key"]
        .as_str()
        .expect("a dedup_key")
        .to_string();
    assert!(other_key.contains(other.as_str()) && other_key != key);
    let summary = page["payload"]["summary"].as_str().unwrap_or("");
    assert!(summary.contains(loc.as_str()), "{summary}");
    let thread_link = page["payload"]["custom_details"]["slack_thread"]
        .as_str()
        .unwrap_or("");
    assert!(
        thread_link.ends_with(&format!("/archives/{ONCALL_CHANNEL}/p{}", digits(&thread))),
        "the page does not link the thread: {thread_link:?}"
    );
    assert_eq!(page["payload"]["custom_details"]["requested_by"], ENGINEER);
    let paged_text = paged.text.unwrap_or_default();
    assert!(
        paged_text.contains(&format!("<@{ENGINEER}>")),
        "{paged_text}"
    );
    assert!(paged_text.contains(&key), "{paged_text}");
    // Paging the same result again pages no one: the clicker is told who paged it, and when.
    h.click(&thread, &loc, ACTION_PAGE, Some("satellite_link"), ENGINEER)
        .await;
    let told = h.ephemerals(ENGINEER, 1).await;
    let told = told[0].text.as_deref().unwrap_or("");
    assert!(
        told.contains(&format!("Already paged by <@{ENGINEER}> at <!date^")),
        "{told}"
    );
    assert_eq!(
        h.world.pagerduty.requests().len(),
        2,
        "the result was paged twice"
    );
    assert_eq!(
        h.posts(ONCALL_CHANNEL, &thread)
            .iter()
            .filter(|m| m.text.as_deref().unwrap_or("").contains("PagerDuty"))
            .count(),
        1
    );

    // Escalate: the team channel gets the diagnosis with a link back, GitHub an issue.
    h.click(
        &thread,
        &loc,
        ACTION_ESCALATE,
        Some("satellite_link"),
        ENGINEER,
    )
    .await;
    let recorded = h.wait_text(ONCALL_CHANNEL, &thread, "opened").await;
    let team_post = h
        .world
        .slack
        .messages()
        .into_iter()
        .find(|m| m.channel == SATLINK_CHANNEL)
        .expect("a post in the team channel");
    let team_shown = world::render_message(&team_post);
    assert!(
        team_shown.contains(&format!("<@{ENGINEER}> escalates")),
        "{team_shown}"
    );
    assert!(
        team_shown.contains(&format!("/archives/{ONCALL_CHANNEL}/p{}", digits(&thread))),
        "no permalink to the on-call thread: {team_shown}"
    );
    assert_eq!(
        world::verdict_code(&team_post),
        Some(VerdictCode::ApiKeyInvalid)
    );
    assert!(
        !team_shown.contains("[Re-run check]"),
        "buttons in the team channel"
    );

    let issues = h.world.github.issues();
    assert_eq!(issues.len(), 1);
    let issue = &issues[0];
    assert_eq!(issue.repo, SATLINK_REPO);
    assert!(issue.title.contains("api_key_invalid") && issue.title.contains(loc.as_str()));
    let report = h.stored_report(&loc).await;
    assert!(report.steps.len() >= 5, "only {} steps", report.steps.len());
    for step in &report.steps {
        assert!(
            issue.body.contains(&step.title),
            "step {:?} missing",
            step.title
        );
        for e in &step.evidence {
            assert!(
                issue.body.contains(&format!("- {e}")),
                "evidence {e:?} missing"
            );
        }
    }
    assert!(issue
        .body
        .contains(&format!("/archives/{ONCALL_CHANNEL}/p{}", digits(&thread))));
    assert!(!issue.body.contains(IAM_KEY));

    let text = recorded.text.unwrap_or_default();
    assert!(
        text.contains(&format!(
            "<@{ENGINEER}> escalated to *Satellite Link squad*"
        )),
        "{text}"
    );
    assert!(text.contains(&format!("<#{SATLINK_CHANNEL}>")), "{text}");
    assert!(
        text.contains(&format!(
            "/archives/{SATLINK_CHANNEL}/p{}",
            digits(&team_post.ts)
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{SATLINK_REPO}/issues/{}", issue.number))
            && text.contains(&format!("{SATLINK_REPO}#{}", issue.number)),
        "{text}"
    );

    // The audit log has who escalated, where, and the links.
    let audit = h
        .bot
        .store
        .audit(None, Some(&loc), 100)
        .await
        .expect("the audit log");
    let escalations: Vec<_> = audit
        .iter()
        .filter(|e| e.kind == AuditKind::Escalation)
        .collect();
    // The page and the escalation; the repeated Page paged no one, so it is not an escalation.
    assert_eq!(escalations.len(), 2, "{escalations:?}");
    assert!(escalations
        .iter()
        .all(|e| e.actor.as_deref() == Some(ENGINEER)));
    assert!(escalations.iter().any(|e| {
        e.target.as_deref() == Some("satellite_link")
            && e.link.as_deref().is_some_and(|l| l.contains("/issues/"))
    }));
    for r in h
        .world
        .pagerduty
        .requests()
        .iter()
        .chain(h.world.github.requests().iter())
    {
        assert!(
            !r.dump().contains(IAM_KEY),
            "the IAM key left in an escalation"
        );
    }
    h.finish("escalate").await;
}

/// Pushes a click on message `ts` of `thread` with any value (as a forger would send it).
/// Clicks a button of kind `action` carrying `value`, with the `action_id` linkbot gives such a
/// button (`linkbot_page:<target>`), so a forged value is not given away by its id.
async fn click_value(
    h: &Harness,
    thread: &str,
    ts: &str,
    action: &str,
    value: &ButtonValue,
    user: &str,
) {
    let action_id = match &value.target {
        Some(t) if action != ACTION_RERUN => format!("{action}:{t}"),
        _ => action.to_string(),
    };
    push_click(h, thread, ts, &action_id, value, user).await;
}

/// Pushes a `block_actions` envelope for `action_id` with `value`.
async fn push_click(
    h: &Harness,
    thread: &str,
    ts: &str,
    action: &str,
    value: &ButtonValue,
    user: &str,
) {
    let value = serde_json::to_string(value).expect("a button value");
    h.world
        .slack
        .push(fake::block_actions(
            ONCALL_CHANNEL,
            user,
            ts,
            action,
            &value,
            Some(thread),
        ))
        .await
        .expect("a live Socket Mode connection");
}

fn value(loc: &LocationId, environment: Environment, target: Option<&str>) -> ButtonValue {
    ButtonValue {
        location: loc.to_string(),
        environment,
        target: target.map(str::to_string),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_the_message_did_not_offer_is_refused_audited_and_reaches_no_one() {
    // Razee can be paged too, but the verdict below offers Page only for its owner.
    let h = start_with(|c| {
        for t in &mut c.escalation {
            if t.name == "razee" {
                t.pagerduty = true;
            }
        }
    })
    .await;
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let other = h.world.scenario(VerdictCode::ApiKeyInvalid, 1);
    // Every forged target has a result to escalate, so only the authorization stops it.
    let (thread, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), 1)
        .await;
    let (other_thread, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {other}"), 2)
        .await;
    let (stage_thread, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc} stage"), 3)
        .await;
    let shown = h.verdict(ONCALL_CHANNEL, &thread).await;
    h.verdict(ONCALL_CHANNEL, &other_thread).await;
    h.verdict(ONCALL_CHANNEL, &stage_thread).await;
    let builds_before = h.world.jenkins.triggers().len();

    let prod = Environment::Prod;
    let forged = [
        // Another location's page, from this message.
        (
            ACTION_PAGE,
            value(&other, prod, Some("satellite_link")),
            &shown.ts,
        ),
        // Another environment.
        (
            ACTION_PAGE,
            value(&loc, Environment::Stage, Some("satellite_link")),
            &shown.ts,
        ),
        // A team the message offered no Page for, and one it offered nothing for.
        (ACTION_PAGE, value(&loc, prod, Some("razee")), &shown.ts),
        (ACTION_ESCALATE, value(&loc, prod, Some("dba")), &shown.ts),
        // A Re-run of another location.
        (ACTION_RERUN, value(&other, prod, None), &shown.ts),
    ];
    let never_posted = "1700000099.000001".to_string();
    for (action, v, ts) in &forged {
        click_value(&h, &thread, ts, action, v, ENGINEER).await;
    }
    // A message the bot never posted, with a value it would have offered.
    click_value(
        &h,
        &thread,
        &never_posted,
        ACTION_PAGE,
        &value(&loc, prod, Some("satellite_link")),
        ENGINEER,
    )
    .await;

    let refusals = h.ephemerals(ENGINEER, forged.len() + 1).await;
    for r in &refusals {
        assert_eq!(r.thread_ts.as_deref(), Some(thread.as_str()));
        assert!(
            r.text.as_deref().unwrap_or("").contains("so I did nothing"),
            "{r:?}"
        );
    }
    assert!(
        h.world.pagerduty.requests().is_empty(),
        "PagerDuty was called"
    );
    assert!(h.world.github.requests().is_empty(), "GitHub was called");
    assert!(
        !h.world
            .slack
            .messages()
            .iter()
            .any(|m| m.channel == SATLINK_CHANNEL || m.channel == RAZEE_CHANNEL),
        "a team channel was posted to"
    );
    assert_eq!(
        h.posts(ONCALL_CHANNEL, &thread).len(),
        1,
        "the thread was told something"
    );
    assert_eq!(
        h.world.jenkins.triggers().len(),
        builds_before,
        "a forged Re-run ran"
    );

    let audit = h
        .bot
        .store
        .audit(None, None, 100)
        .await
        .expect("the audit log");
    let refused: Vec<_> = audit
        .iter()
        .filter(|e| e.kind == AuditKind::RefusedAction)
        .collect();
    assert_eq!(refused.len(), forged.len() + 1, "{refused:?}");
    assert!(refused
        .iter()
        .all(|e| e.actor.as_deref() == Some(ENGINEER)
            && e.channel.as_deref() == Some(ONCALL_CHANNEL)));
    assert!(audit.iter().all(|e| e.kind != AuditKind::Escalation));
    // What was asked is on record: the other location, the stage environment, the targets.
    assert!(refused.iter().any(|e| e.location == other
        && e.target.as_deref() == Some(&format!("{ACTION_PAGE} satellite_link")[..])));
    assert!(refused.iter().any(|e| e.environment == Environment::Stage));
    assert!(refused.iter().any(|e| e.target.as_deref()
        == Some(&format!("{ACTION_PAGE} razee")[..])
        && e.detail
            .as_deref()
            .is_some_and(|d| d.contains(loc.as_str()))));
    assert!(refused
        .iter()
        .any(|e| e.target.as_deref() == Some(&format!("{ACTION_ESCALATE} dba")[..])));

    // The buttons the message did offer still work.
    h.click(&thread, &loc, ACTION_PAGE, Some("satellite_link"), ENGINEER)
        .await;
    h.wait_text(ONCALL_CHANNEL, &thread, "PagerDuty").await;
    assert_eq!(h.world.pagerduty.requests().len(), 1);
    h.finish("forged clicks").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_rapid_page_clicks_page_once_and_the_others_are_told_who_paged() {
    let h = start().await;
    let second = "U0SECONDONCALL";
    h.world
        .slack
        .set_usergroup(world::ONCALL_GROUP, &[ENGINEER, second]);
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let (thread, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), 1)
        .await;
    let shown = h.verdict(ONCALL_CHANNEL, &thread).await;
    let page = value(&loc, Environment::Prod, Some("satellite_link"));

    // Three clicks pushed at once, without waiting for any answer.
    tokio::join!(
        click_value(&h, &thread, &shown.ts, ACTION_PAGE, &page, ENGINEER),
        click_value(&h, &thread, &shown.ts, ACTION_PAGE, &page, second),
        click_value(&h, &thread, &shown.ts, ACTION_PAGE, &page, ENGINEER),
    );
    // Every click is answered: one page line in the thread, two "already paged" ephemerals.
    let paged = h.wait_text(ONCALL_CHANNEL, &thread, "PagerDuty").await;
    let answered = h
        .world
        .slack
        .wait_until(
            |s| {
                s.messages()
                    .iter()
                    .filter(|m| {
                        m.ephemeral_to.is_some()
                            && m.text.as_deref().unwrap_or("").contains("Already paged by")
                    })
                    .count()
                    >= 2
            },
            WAIT,
        )
        .await;
    assert!(
        answered,
        "the other two clicks were not told the result was paged"
    );
    let paged_text = paged.text.unwrap_or_default();
    let pager = [ENGINEER, second]
        .into_iter()
        .find(|u| paged_text.contains(&format!("<@{u}> escalated")))
        .unwrap_or_else(|| panic!("who paged? {paged_text}"));
    for m in h.world.slack.messages() {
        if m.ephemeral_to.is_some() {
            let text = m.text.as_deref().unwrap_or("");
            assert!(
                text.contains(&format!("Already paged by <@{pager}> at ")),
                "{text}"
            );
        }
    }
    assert_eq!(h.world.pagerduty.requests().len(), 1, "more than one page");
    assert_eq!(
        h.posts(ONCALL_CHANNEL, &thread)
            .iter()
            .filter(|m| m.text.as_deref().unwrap_or("").contains("PagerDuty"))
            .count(),
        1,
        "more than one page line in the thread"
    );
    let audit = h
        .bot
        .store
        .audit(None, Some(&loc), 100)
        .await
        .expect("the audit log");
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.kind == AuditKind::Escalation)
            .count(),
        1
    );

    // A newer result is a new incident: Re-run, then Page on its answer pages again.
    h.click(&thread, &loc, ACTION_RERUN, None, ENGINEER).await;
    h.verdicts(ONCALL_CHANNEL, &thread, 2).await;
    h.click(&thread, &loc, ACTION_PAGE, Some("satellite_link"), ENGINEER)
        .await;
    let both = h
        .world
        .pagerduty
        .wait_for_requests(2, WAIT)
        .await
        .expect("a second page");
    assert_eq!(both.len(), 2);
    h.finish("rapid pages").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_is_audited_even_when_slack_refuses_the_thread_message() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let (thread, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), 1)
        .await;
    h.verdict(ONCALL_CHANNEL, &thread).await;
    let posts_before = h.world.slack.calls("chat.postMessage").len();
    h.world
        .slack
        .fail_next("chat.postMessage", 1, Failure::Error("fatal_error".into()));

    h.click(&thread, &loc, ACTION_PAGE, Some("satellite_link"), ENGINEER)
        .await;
    // The page goes out, then Slack refuses the message that would record it in the thread.
    h.world
        .pagerduty
        .wait_for_requests(1, WAIT)
        .await
        .expect("the page was sent");
    let refused = h
        .world
        .slack
        .wait_until(|s| s.calls("chat.postMessage").len() > posts_before, WAIT)
        .await;
    assert!(refused, "the thread message was never attempted");
    assert_eq!(h.posts(ONCALL_CHANNEL, &thread).len(), 1);

    // The page happened, so the audit log has it.
    let audit = h
        .bot
        .store
        .audit(None, Some(&loc), 100)
        .await
        .expect("the audit log");
    let page = audit
        .iter()
        .find(|e| e.kind == AuditKind::Escalation)
        .expect("the page is in the audit log");
    assert_eq!(page.actor.as_deref(), Some(ENGINEER));
    assert_eq!(page.target.as_deref(), Some("satellite_link (page)"));
    assert!(page
        .link
        .as_deref()
        .is_some_and(|l| l.contains(loc.as_str())));
    h.finish("audit before thread").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_off_call_is_refused_and_nothing_is_escalated_or_rerun() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let (thread, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), 1)
        .await;
    h.verdict(ONCALL_CHANNEL, &thread).await;

    h.click(
        &thread,
        &loc,
        ACTION_ESCALATE,
        Some("satellite_link"),
        VISITOR,
    )
    .await;
    h.click(&thread, &loc, ACTION_PAGE, Some("satellite_link"), VISITOR)
        .await;
    h.click(&thread, &loc, ACTION_RERUN, None, VISITOR).await;
    let refusals = h.ephemerals(VISITOR, 3).await;
    for r in &refusals {
        assert_eq!(r.thread_ts.as_deref(), Some(thread.as_str()));
        assert!(r.text.as_deref().unwrap_or("").contains("on-call"), "{r:?}");
    }
    // Each click was answered with its refusal, so none of them can still act.
    assert!(
        h.world.pagerduty.requests().is_empty(),
        "PagerDuty was called"
    );
    assert!(h.world.github.requests().is_empty(), "GitHub was called");
    assert!(
        !h.world
            .slack
            .messages()
            .iter()
            .any(|m| m.channel == SATLINK_CHANNEL || m.channel == RAZEE_CHANNEL),
        "a team channel was posted to"
    );
    assert_eq!(h.posts(ONCALL_CHANNEL, &thread).len(), 1);
    assert_eq!(h.builds_for(&loc), 1);
    h.finish("non-member").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_result_is_reused_with_its_age_and_rerun_forces_a_new_build() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::RegionMismatch, 0);
    let (first, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), 1)
        .await;
    let v = h.verdict(ONCALL_CHANNEL, &first).await;
    assert!(!world::render_message(&v).contains("reused"));

    let (second, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), 2)
        .await;
    let reused = h.verdict(ONCALL_CHANNEL, &second).await;
    let shown = world::render_message(&reused);
    assert_eq!(
        world::verdict_code(&reused),
        Some(VerdictCode::RegionMismatch)
    );
    let age = shown
        .split("Result from ")
        .nth(1)
        .and_then(|rest| rest.split(" ago, reused").next())
        .unwrap_or_else(|| panic!("no reuse note with an age: {shown}"));
    assert!(
        age.ends_with('s')
            && age
                .trim_end_matches('s')
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.'),
        "age {age:?}"
    );
    assert!(shown.contains("[Re-run check]"), "{shown}");
    assert_eq!(h.builds_for(&loc), 1, "a fresh result was not reused");

    h.click(&second, &loc, ACTION_RERUN, None, ENGINEER).await;
    let both = h.verdicts(ONCALL_CHANNEL, &second, 2).await;
    let rerun = both.last().expect("the re-run's verdict");
    assert_ne!(rerun.ts, reused.ts);
    assert_eq!(
        world::verdict_code(rerun),
        Some(VerdictCode::RegionMismatch)
    );
    assert!(!world::render_message(rerun).contains("reused"));
    assert_eq!(h.builds_for(&loc), 2, "Re-run did not run a new build");
    h.finish("reuse and re-run").await;
}

// ---------------------------------------------------------------------------------------------
// Connection trouble

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_dropped_mid_check_reconnects_and_the_thread_still_gets_its_verdict() {
    let h = start().await;
    let loc = h.world.scenario_with(
        VerdictCode::ApiKeyInvalid,
        0,
        World::timing(Duration::from_millis(1500)),
    );
    let (thread, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), 1)
        .await;
    assert!(
        h.world.jenkins.wait_for_triggers(1, WAIT).await,
        "no build started"
    );
    let opened_before = h
        .world
        .slack
        .wait_until(|s| s.connections_opened() >= 2, WAIT)
        .await;
    assert!(opened_before);

    h.world.slack.drop_all();
    // The sockets were cut while the build ran: no verdict yet.
    assert!(
        !h.world
            .thread(ONCALL_CHANNEL, &thread)
            .iter()
            .any(world::is_verdict),
        "the build finished before the sockets were cut; the test proves nothing"
    );
    let reconnected = h
        .world
        .slack
        .wait_until(
            |s| s.connections_opened() >= 4 && s.connection_count() >= 2,
            WAIT,
        )
        .await;
    assert!(
        reconnected,
        "the bot did not reconnect after its sockets were cut"
    );

    let v = h.verdict(ONCALL_CHANNEL, &thread).await;
    assert_eq!(world::verdict_code(&v), Some(VerdictCode::ApiKeyInvalid));
    assert_eq!(h.builds_for(&loc), 1);
    // Envelopes flow over the new connections.
    let later = h.world.scenario(VerdictCode::ConfigMissing, 0);
    let (later_thread, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {later}"), 2)
        .await;
    h.verdict(ONCALL_CHANNEL, &later_thread).await;
    h.finish("socket drop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_update_is_retried_after_retry_after_and_the_verdict_lands() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::ConfigMissing, 0);
    h.world.slack.fail_next(
        "chat.update",
        1,
        Failure::RateLimited {
            retry_after_secs: 1,
        },
    );
    let asked = Instant::now();
    let (thread, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), 1)
        .await;
    let v = h.verdict(ONCALL_CHANNEL, &thread).await;
    let took = asked.elapsed();
    assert_eq!(world::verdict_code(&v), Some(VerdictCode::ConfigMissing));

    let updates = h.world.slack.calls("chat.update");
    assert!(updates.len() >= 2, "{updates:?}");
    // The refused call was sent again, unchanged.
    for k in ["channel", "ts", "text", "blocks"] {
        assert_eq!(updates[0][k], updates[1][k], "the retry changed {k}");
    }
    assert!(
        took >= Duration::from_secs(1),
        "Retry-After was not honoured ({took:?})"
    );
    assert_eq!(h.posts(ONCALL_CHANNEL, &thread).len(), 1);
    h.finish("rate limit").await;
}

// ---------------------------------------------------------------------------------------------
// Secrets, usage, bad input, ignored messages, acks

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_slack_payload_ever_carries_the_iam_key_or_a_token() {
    let h = start().await;
    let cases = [
        (VerdictCode::ApiKeyInvalid, 1),
        (VerdictCode::ApiKeyAccepted, 2),
        (VerdictCode::RegionMismatch, 3),
        (VerdictCode::JobFailed, 4),
    ];
    let mut threads = Vec::new();
    for (verdict, n) in cases {
        let loc = h.world.scenario(verdict, 0);
        let (ts, _) = h
            .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), n)
            .await;
        threads.push((verdict, loc, ts));
    }
    for (verdict, _, ts) in &threads {
        let v = h.verdict(ONCALL_CHANNEL, ts).await;
        assert_eq!(world::verdict_code(&v), Some(*verdict));
    }
    // The key really reached the bot (it asked IAM with it) and only its fingerprint is shown.
    assert!(h.world.iam.request_count() >= 2, "IAM was never asked");
    let (_, loc, ts) = &threads[0];
    let v = h.verdict(ONCALL_CHANNEL, ts).await;
    let tail = &IAM_KEY[IAM_KEY.len() - 4..];
    assert!(world::render_message(&v).contains(&format!("…{tail}")));
    // Escalating copies the diagnosis to a team channel; that copy is scanned too.
    h.click(ts, loc, ACTION_ESCALATE, Some("satellite_link"), ENGINEER)
        .await;
    h.wait_text(ONCALL_CHANNEL, ts, "escalated").await;
    assert!(h
        .world
        .slack
        .messages()
        .iter()
        .any(|m| m.channel == SATLINK_CHANNEL));
    // finish() scans every version of every message and every call's parameters.
    h.finish("secrets").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_and_unknown_commands_answer_with_usage() {
    let h = start().await;
    let (help, _) = h.mention(ONCALL_CHANNEL, ENGINEER, "help", 1).await;
    let (bare, _) = h.mention(ONCALL_CHANNEL, ENGINEER, "", 2).await;
    let (unknown, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, "frobnicate the carrier please", 3)
        .await;
    for thread in [&help, &bare, &unknown] {
        h.wait_text(ONCALL_CHANNEL, thread, USAGE).await;
    }
    h.slash(ONCALL_CHANNEL, ENGINEER, "help").await;
    h.slash(ONCALL_CHANNEL, ENGINEER, "dance").await;
    let answers = h.ephemerals(ENGINEER, 2).await;
    for a in &answers {
        assert!(a.text.as_deref().unwrap_or("").contains(USAGE), "{a:?}");
    }
    assert!(h.world.jenkins.triggers().is_empty());
    h.finish("usage").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_location_is_answered_with_what_a_valid_one_looks_like() {
    let h = start().await;
    let bad = [
        "c1hk4ek1",                      // too short
        "c1hk4ek1020000000000x",         // too long
        "c1hk4ek1020000000w00",          // `w` is not in 0-v
        "../../etc/passwd",              // path
        "<script>alert(1)</script>",     // hostile
        "c1hk4ek1020000000000;rm -rf /", // injection
    ];
    let mut threads = Vec::new();
    for (i, id) in bad.iter().enumerate() {
        let (ts, _) = h
            .mention(
                ONCALL_CHANNEL,
                ENGINEER,
                &format!("check {id}"),
                i as u32 + 1,
            )
            .await;
        threads.push(ts);
    }
    h.slash(ONCALL_CHANNEL, ENGINEER, "check ZZZ").await;
    for ts in &threads {
        let answer = h
            .wait_text(ONCALL_CHANNEL, ts, "20 characters of 0-9 and a-v")
            .await;
        assert!(answer
            .text
            .as_deref()
            .unwrap_or("")
            .contains("c1hk4ek107l5au5mq8hg"));
        assert!(!world::is_verdict(&answer));
    }
    let slash = h.ephemerals(ENGINEER, 1).await.remove(0);
    assert!(slash
        .text
        .as_deref()
        .unwrap_or("")
        .contains("20 characters of 0-9 and a-v"));
    assert!(
        h.world.jenkins.triggers().is_empty(),
        "a malformed id triggered a build"
    );
    assert!(
        h.world.directory.requests().is_empty(),
        "a malformed id was looked up"
    );

    // Control: Slack's formatting and upper case are stripped from a valid id.
    let loc = h.world.scenario(VerdictCode::ApiKeyAccepted, 0);
    let (ts, _) = h
        .mention(
            ONCALL_CHANNEL,
            ENGINEER,
            &format!("check *`{}`*", loc.as_str().to_uppercase()),
            50,
        )
        .await;
    h.verdict(ONCALL_CHANNEL, &ts).await;
    assert_eq!(h.builds_for(&loc), 1);
    h.finish("malformed").await;
}

/// Live mentions and links (`<!…>`, `<@…>`, `<#…>`, `<http…>`) in every text and mrkdwn block
/// of every `chat.*` call the bot made.
fn live_tokens_sent(h: &Harness) -> Vec<String> {
    use linkbot::slack::mrkdwn::{live_tokens, live_tokens_in};
    let mut tokens = Vec::new();
    for method in ["chat.postMessage", "chat.update", "chat.postEphemeral"] {
        for call in h.world.slack.calls(method) {
            tokens.extend(call["text"].as_str().map(live_tokens).unwrap_or_default());
            tokens.extend(live_tokens_in(&call["blocks"]));
        }
    }
    tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_never_becomes_a_live_mention_in_any_slack_payload() {
    let h = start().await;
    let hostile = [
        "check x`<!channel>``",
        "`<!here>` please",
        "check <!subteam^S0ONCALL|@oncall>",
        "```<@U0BOSS>``` <https://evil.example|click here>",
        "check c1hk4ek107l5au5mq8hg `<!channel>`",
    ];
    for (i, words) in hostile.iter().enumerate() {
        let (ts, _) = h
            .mention(ONCALL_CHANNEL, ENGINEER, words, i as u32 + 1)
            .await;
        h.wait_text(ONCALL_CHANNEL, &ts, USAGE).await;
    }
    for words in hostile {
        h.slash(ONCALL_CHANNEL, ENGINEER, words).await;
    }
    h.ephemerals(ENGINEER, hostile.len()).await;
    let (alert, _) = h
        .alert(
            ONCALL_CHANNEL,
            &format!("Labels:\n - alertname = {ALERT_NAME}\n - cluster_id = x`<!channel>``"),
            None,
            40,
        )
        .await;
    h.wait_text(ONCALL_CHANNEL, &alert, "can't check this alert")
        .await;

    let tokens = live_tokens_sent(&h);
    assert!(
        tokens
            .iter()
            .all(|t| !t.starts_with("<!") && !t.contains("evil.example") && !t.contains("U0BOSS")),
        "an outside mention or link went live: {tokens:?}"
    );
    // What is left is linkbot's own: the asker's mention and the configured channels.
    let own = format!("<@{ENGINEER}>");
    assert!(
        tokens.iter().all(|t| *t == own || t.starts_with("<#")),
        "{tokens:?}"
    );
    assert!(h.world.jenkins.triggers().is_empty());
    h.finish("hostile text").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bots_own_messages_and_edited_messages_are_ignored() {
    // Even with the bot itself listed as an alert source, it never answers its own messages.
    let h = start_with(|c| {
        c.slack.alert_sources.push(fake::SIM_BOT_ID.to_string());
        c.slack.alert_sources.push(fake::SIM_APP_ID.to_string());
    })
    .await;
    let own_loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let edited_loc = h.world.scenario(VerdictCode::RegionMismatch, 0);
    let control_loc = h.world.scenario(VerdictCode::ConfigMissing, 0);

    let own_ts = World::user_ts(1);
    h.world
        .slack
        .push(fake::message(
            ONCALL_CHANNEL,
            &alert_text(&own_loc),
            &own_ts,
            Some(fake::SIM_BOT_ID),
            Some(fake::SIM_APP_ID),
            None,
        ))
        .await
        .expect("pushed");

    // Alertmanager edits its earlier message: a `message_changed` event.
    let (orig_ts, edit_ts) = (World::user_ts(2), World::user_ts(3));
    let mut edited = fake::message(ONCALL_CHANNEL, "", &edit_ts, None, None, None);
    edited["payload"]["event"] = json!({
        "type": "message",
        "subtype": "message_changed",
        "hidden": true,
        "channel": ONCALL_CHANNEL,
        "ts": edit_ts,
        "event_ts": edit_ts,
        "channel_type": "channel",
        "message": {
            "type": "message",
            "subtype": "bot_message",
            "bot_id": ALERT_BOT,
            "username": "alertmanager",
            "text": alert_text(&edited_loc),
            "ts": orig_ts,
            "edited": {"user": ALERT_BOT, "ts": edit_ts},
        },
        "previous_message": {
            "type": "message",
            "subtype": "bot_message",
            "bot_id": ALERT_BOT,
            "text": "(older text)",
            "ts": orig_ts,
        },
    });
    h.world.slack.push(edited).await.expect("pushed");

    // The same alert from Alertmanager itself is answered (and is the barrier).
    let (control, _) = h
        .alert(ONCALL_CHANNEL, &alert_text(&control_loc), None, 4)
        .await;
    h.verdict(ONCALL_CHANNEL, &control).await;

    assert!(h.world.thread(ONCALL_CHANNEL, &own_ts).is_empty());
    assert!(h.world.thread(ONCALL_CHANNEL, &orig_ts).is_empty());
    assert!(h.world.thread(ONCALL_CHANNEL, &edit_ts).is_empty());
    assert_eq!(h.builds_for(&own_loc), 0, "the bot answered itself");
    assert_eq!(h.builds_for(&edited_loc), 0, "an edit started a check");
    assert_eq!(h.builds_for(&control_loc), 1);
    h.finish("ignored").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_envelope_is_acked() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::ApiKeyAccepted, 0);
    let mut ids = Vec::new();
    let mut thread = String::new();
    for n in 1..=8u32 {
        let (ts, m) = h
            .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), n)
            .await;
        ids.push(fake::envelope_id(&m).expect("an id").to_string());
        thread = ts;
        let (_, a) = h
            .alert(ONCALL_CHANNEL, &alert_text(&loc), None, 100 + n)
            .await;
        ids.push(fake::envelope_id(&a).expect("an id").to_string());
        let chatter = fake::message(
            ONCALL_CHANNEL,
            "anyone seen this?",
            &World::user_ts(200 + n),
            None,
            None,
            None,
        );
        ids.push(h.world.slack.push(chatter).await.expect("pushed"));
        let slash = fake::slash_command(ONCALL_CHANNEL, ENGINEER, "/linkbot", "status");
        ids.push(h.world.slack.push(slash).await.expect("pushed"));
        let garbage = fake::block_actions(
            ONCALL_CHANNEL,
            ENGINEER,
            &World::user_ts(n),
            "linkbot_rerun",
            "not json",
            None,
        );
        ids.push(h.world.slack.push(garbage).await.expect("pushed"));
        let mut unknown = fake::message(
            ONCALL_CHANNEL,
            "",
            &World::user_ts(300 + n),
            None,
            None,
            None,
        );
        unknown["payload"]["event"] = json!({"type": "reaction_added", "user": ENGINEER, "reaction": "eyes",
            "item": {"type": "message", "channel": ONCALL_CHANNEL, "ts": World::user_ts(n)}, "event_ts": World::user_ts(300 + n)});
        ids.push(h.world.slack.push(unknown).await.expect("pushed"));
    }
    let all = h
        .world
        .slack
        .wait_until(|s| ids.iter().all(|id| s.acked(id)), WAIT)
        .await;
    assert!(all, "not every envelope was acked");
    let acks = h.world.slack.acks();
    let mut lat: Vec<Duration> = acks
        .iter()
        .filter(|a| ids.contains(&a.envelope_id))
        .filter_map(|a| a.latency)
        .collect();
    lat.sort();
    assert_eq!(
        lat.len(),
        ids.len(),
        "an envelope was acked more or less than once"
    );
    println!(
        "every_envelope_is_acked: {} envelopes of 6 kinds, ack latency p50 {:?}, max {:?}",
        lat.len(),
        pct(&lat, 0.5),
        pct(&lat, 1.0)
    );
    // Slack's deadline, not a tight bound.
    assert!(pct(&lat, 1.0) < Duration::from_secs(3));
    // The work after the acks still happens.
    h.verdict(ONCALL_CHANNEL, &thread).await;
    h.finish("acks").await;
}

// ---------------------------------------------------------------------------------------------
// Never silent: refusals, Slack 5xx, internal errors, stalls

impl Harness {
    /// Waits for the bot's message in `thread` to show plain text only (no blocks) holding
    /// every one of `needles`; returns it.
    async fn plain_answer(&self, thread: &str, needles: &[&str]) -> SimMessage {
        let t = thread.to_string();
        let needles: Vec<String> = needles.iter().map(|n| n.to_string()).collect();
        self.wait_message(
            &format!("a plain-text answer in thread {thread}"),
            move |m| {
                m.channel == ONCALL_CHANNEL
                    && m.thread_ts.as_deref() == Some(t.as_str())
                    && m.ephemeral_to.is_none()
                    && m.blocks.is_none()
                    && needles
                        .iter()
                        .all(|n| m.text.as_deref().unwrap_or("").contains(n.as_str()))
            },
        )
        .await
    }

    /// The chat.update calls made for the message `ts`.
    fn updates_of(&self, ts: &str) -> Vec<Value> {
        self.world
            .slack
            .calls("chat.update")
            .into_iter()
            .filter(|c| c["ts"] == ts)
            .collect()
    }

    /// The ops server's answer to `path`: status and body.
    async fn ops(&self, path: &str) -> (u16, String) {
        let url = format!("http://{}{path}", self.bot.ops_addr);
        let resp = tokio::time::timeout(WAIT, reqwest::get(&url))
            .await
            .expect("the ops server answers in time")
            .expect("the ops server answers");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Polls `path` (bounded by `WAIT`) until it answers `status`; returns the body.
    async fn ops_until(&self, path: &str, status: u16) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let (got, body) = self.ops(path).await;
            if got == status {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never answered {status} within {WAIT:?}; last {got} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The value of `linkbot_slack_rejected_total{method,error}` in an exposition (0 if absent).
fn rejected_count(exposition: &str, method: &str, error: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with("linkbot_slack_rejected_total{"))
        .filter(|l| {
            l.contains(&format!("method=\"{method}\"")) && l.contains(&format!("error=\"{error}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_slack_refuses_arrives_as_plain_text_with_its_code_next_actions_and_links() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let (first, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), 1)
        .await;
    h.verdict(ONCALL_CHANNEL, &first).await;

    // The next requests reuse that result: their only chat.update is the verdict's, and Slack
    // refuses it, once with Block Kit's complaint and once as too long.
    let refusals = [
        (
            Failure::Rejected {
                code: "invalid_blocks".into(),
                messages: vec![
                    "[ERROR] must be unique [json-pointer:/blocks/9/elements/1/action_id]".into(),
                ],
            },
            "invalid_blocks",
        ),
        (Failure::Error("msg_too_long".into()), "msg_too_long"),
    ];
    for (n, (failure, code)) in (2..).zip(refusals) {
        h.world.slack.fail_next("chat.update", 1, failure);
        let (thread, _) = h
            .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), n)
            .await;
        let plain = h
            .plain_answer(
                &thread,
                &[
                    "`api_key_invalid`",
                    "ibmcloud ks api-key reset --region us-east",
                    "|Jenkins build>",
                    "|Runbook>",
                ],
            )
            .await;
        let text = plain.text.clone().unwrap_or_default();
        assert!(text.contains("Next actions"), "{code}: {text}");
        // The progress message itself became the answer: one message, nothing left behind.
        let posts = h.posts(ONCALL_CHANNEL, &thread);
        assert_eq!(
            posts.len(),
            1,
            "{code}: {}",
            h.render_thread(ONCALL_CHANNEL, &thread)
        );
        let updates = h.updates_of(&plain.ts);
        assert_eq!(
            updates.len(),
            2,
            "{code}: the refused edit, then the plain one"
        );
        assert!(
            updates[0]["blocks"].is_array(),
            "{code}: the refused edit had blocks"
        );
        assert_eq!(
            updates[1]["blocks"],
            json!([]),
            "{code}: the plain edit must clear the blocks (Slack keeps them otherwise)"
        );
    }

    let (status, metrics) = h.ops("/metrics").await;
    assert_eq!(status, 200);
    for code in ["invalid_blocks", "msg_too_long"] {
        assert_eq!(
            rejected_count(&metrics, "chat.update", code),
            1.0,
            "{code} not counted in:\n{metrics}"
        );
    }
    h.finish("refused verdict").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_update_answered_503_is_retried_then_falls_back_to_plain_text() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::RegionMismatch, 0);
    let (first, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), 1)
        .await;
    h.verdict(ONCALL_CHANNEL, &first).await;

    // Two 503s: the third try lands the full verdict.
    h.world
        .slack
        .fail_next("chat.update", 2, Failure::Status(503));
    let (second, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), 2)
        .await;
    let v = h.verdict(ONCALL_CHANNEL, &second).await;
    assert_eq!(world::verdict_code(&v), Some(VerdictCode::RegionMismatch));
    assert_eq!(h.updates_of(&v.ts).len(), 3, "two 503s, then the verdict");

    // Slack keeps failing: after three tries, the plain-text version.
    h.world
        .slack
        .fail_next("chat.update", 3, Failure::Status(503));
    let asked = Instant::now();
    let (third, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), 3)
        .await;
    let plain = h.plain_answer(&third, &["`region_mismatch`"]).await;
    println!(
        "503: plain-text fallback shown {:?} after asking",
        asked.elapsed()
    );
    let updates = h.updates_of(&plain.ts);
    assert_eq!(
        updates.len(),
        4,
        "three tries with blocks, then the plain edit"
    );
    assert_eq!(h.posts(ONCALL_CHANNEL, &third).len(), 1);
    h.finish("slack 503").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_whose_result_the_store_cannot_record_still_ends_on_its_verdict() {
    let h = start().await;
    // The store refuses to finish any check, as a full disk or a broken database would.
    let pool = sqlx::SqlitePool::connect(&h.world.sqlite_url("bot"))
        .await
        .expect("the bot's SQLite file opens");
    sqlx::query(
        "CREATE TRIGGER refuse_finish BEFORE UPDATE OF state ON checks \
         WHEN NEW.state = 'finished' BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
    )
    .execute(&pool)
    .await
    .expect("the trigger is created");

    let loc = h.world.scenario(VerdictCode::ConfigMissing, 0);
    let (thread, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), 1)
        .await;
    let v = h.verdict(ONCALL_CHANNEL, &thread).await;
    assert_eq!(world::verdict_code(&v), Some(VerdictCode::ConfigMissing));
    // No message in the thread is left on a progress state.
    for m in h.posts(ONCALL_CHANNEL, &thread) {
        assert!(
            world::is_verdict(&m),
            "a message stayed on progress:\n{}",
            world::render_message(&m)
        );
    }
    pool.close().await;
    h.finish("store cannot record").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_connections_open_is_retried_and_healthz_fails_while_disconnected_too_long() {
    let h = start_with(|c| {
        c.slack.connections = 1;
        c.slack.request_timeout = Duration::from_secs(1);
        c.unhealthy_after_disconnected = Duration::from_secs(1);
    })
    .await;
    let (status, body) = h.ops("/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok"));
    let opened = h.world.slack.calls("apps.connections.open").len();

    // Slack stops answering apps.connections.open (three times, each far longer than the
    // bot's timeout) and the socket drops.
    h.world.slack.fail_next(
        "apps.connections.open",
        3,
        Failure::Stall(Duration::from_secs(120)),
    );
    h.world.slack.drop_all();
    let dropped = Instant::now();

    // Disconnected for longer than the bound: /healthz says so, /readyz too.
    let body = h.ops_until("/healthz", 503).await;
    let unhealthy_after = dropped.elapsed();
    assert!(
        body.starts_with("unhealthy: Socket Mode has been disconnected"),
        "{body}"
    );
    assert_eq!(body.trim().lines().count(), 1, "{body}");
    assert_eq!(h.ops("/readyz").await.0, 503);

    // Each stalled call times out and is retried; once Slack answers, the bot is back.
    assert!(
        h.bot.wait_connected(1, Duration::from_secs(30)).await,
        "the bot did not reconnect after the stall"
    );
    let reconnected_after = dropped.elapsed();
    assert!(h.world.slack.calls("apps.connections.open").len() >= opened + 4);
    h.ops_until("/healthz", 200).await;
    println!(
        "stall: /healthz 503 after {unhealthy_after:?}, reconnected after {reconnected_after:?} \
         ({} apps.connections.open calls)",
        h.world.slack.calls("apps.connections.open").len() - opened
    );

    // And it works.
    let loc = h.world.scenario(VerdictCode::ApiKeyAccepted, 0);
    let (thread, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), 1)
        .await;
    h.verdict(ONCALL_CHANNEL, &thread).await;
    h.finish("stalled connections.open").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_that_cannot_be_started_says_so_with_no_progress_left_behind() {
    let h = start().await;
    // The store cannot record who waits: the check cannot be started.
    let pool = sqlx::SqlitePool::connect(&h.world.sqlite_url("bot"))
        .await
        .expect("the bot's SQLite file opens");
    sqlx::query("ALTER TABLE waiters RENAME TO waiters_gone")
        .execute(&pool)
        .await
        .expect("the table is renamed");
    let loc = h.world.scenario(VerdictCode::ConfigMissing, 0);
    let (thread, _) = h
        .mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), 1)
        .await;
    // Slack keeps a message's blocks when chat.update sends none: the answer must clear them,
    // or the thread would still show "Checking…".
    let m = h.plain_answer(&thread, &["could not be started"]).await;
    assert_eq!(h.posts(ONCALL_CHANNEL, &thread).len(), 1);
    assert!(m.blocks.is_none(), "{}", world::render_message(&m));
    sqlx::query("ALTER TABLE waiters_gone RENAME TO waiters")
        .execute(&pool)
        .await
        .expect("the table is back");
    pool.close().await;
    h.finish("cannot start").await;
}

// ---------------------------------------------------------------------------------------------
// Incidents (issue 10): first firing → repeats → re-run → resolution

/// The seed's text form of a `[RESOLVED]` alert.
fn resolved_text(loc: &LocationId) -> String {
    format!("[RESOLVED]\n{}", alert_text(loc))
}

/// Alertmanager's attachment form of a `[RESOLVED]` alert naming every location of `locs`.
fn resolved_attachments(locs: &[&LocationId]) -> Value {
    let mut fields = vec![json!({"title": "alertname", "value": ALERT_NAME, "short": true})];
    for loc in locs {
        fields.push(json!({"title": "cluster_id", "value": loc.as_str(), "short": true}));
    }
    json!([{
        "color": "good",
        "title": format!("[RESOLVED] {ALERT_NAME} (critical satellite-link)"),
        "text": "*Alert:* Link connector is rebooting",
        "fields": fields,
        "fallback": format!("[RESOLVED] {ALERT_NAME}"),
    }])
}

impl Harness {
    /// Waits until the message `ts` has shown `needle` (in any version); returns it as it is now.
    async fn wait_shown(&self, ts: &str, needle: &str) -> SimMessage {
        let ok = self
            .world
            .slack
            .wait_until(
                |s| {
                    s.message(ONCALL_CHANNEL, ts)
                        .is_some_and(|m| all_versions(m).contains(needle))
                },
                WAIT,
            )
            .await;
        assert!(
            ok,
            "message {ts} never showed {needle:?}; it shows:\n{}",
            self.world
                .slack
                .messages()
                .iter()
                .find(|m| m.ts == ts)
                .map(world::render_message)
                .unwrap_or_default()
        );
        self.world
            .slack
            .messages()
            .into_iter()
            .find(|m| m.channel == ONCALL_CHANNEL && m.ts == ts && m.ephemeral_to.is_none())
            .expect("the message")
    }

    /// Waits until the bot reacted `name` on the message `ts`.
    async fn wait_reaction(&self, ts: &str, name: &str) {
        let ok = self
            .world
            .slack
            .wait_until(
                |s| {
                    s.reactions()
                        .iter()
                        .any(|r| r.channel == ONCALL_CHANNEL && r.ts == ts && r.name == name)
                },
                WAIT,
            )
            .await;
        assert!(ok, "no :{name}: on {ts} within {WAIT:?}");
    }
}

/// The action kinds a message's buttons offer now (its latest version).
fn offered_actions(m: &SimMessage) -> Vec<String> {
    m.blocks
        .iter()
        .flat_map(|b| b.as_array().into_iter().flatten())
        .flat_map(|b| b["elements"].as_array().into_iter().flatten())
        .filter_map(|e| {
            e["action_id"]
                .as_str()
                .map(|id| action_kind(id).to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_joins_the_incident_and_resolve_marks_the_thread_without_paging_anyone() {
    let mut h = start().await;
    let loc = h.world.scenario(VerdictCode::RegionMismatch, 0);
    let (alert_ts, _) = h.alert(ONCALL_CHANNEL, &alert_text(&loc), None, 1).await;
    let diagnosis = h.verdict(ONCALL_CHANNEL, &alert_ts).await;
    assert_eq!(
        world::verdict_code(&diagnosis),
        Some(VerdictCode::RegionMismatch)
    );
    let before = offered_actions(&diagnosis);
    assert!(before.iter().any(|a| a == ACTION_ESCALATE), "{before:?}");

    // A repeat (Alertmanager's attachment form): no build, no diagnosis, a pointer, a count.
    let (repeat_ts, _) = h
        .alert(ONCALL_CHANNEL, "", Some(alert_attachments(&loc)), 2)
        .await;
    let pointer = h.wait_text(ONCALL_CHANNEL, &repeat_ts, "Fired again").await;
    assert!(
        pointer
            .text
            .as_deref()
            .unwrap_or("")
            .contains(&digits(&diagnosis.ts)),
        "the pointer does not link the diagnosis: {pointer:?}"
    );
    assert_eq!(h.posts(ONCALL_CHANNEL, &repeat_ts).len(), 1);
    h.wait_shown(&diagnosis.ts, "Fired again ×1").await;
    h.barrier().await;
    assert_eq!(h.builds_for(&loc), 1, "a repeat started a build");
    assert_eq!(
        h.posts(ONCALL_CHANNEL, &alert_ts).len(),
        1,
        "a second diagnosis"
    );

    // [RESOLVED], seed text form: the diagnosis edited in place, both threads told, ✅.
    let started = Instant::now();
    let (resolved_ts, _) = h.alert(ONCALL_CHANNEL, &resolved_text(&loc), None, 3).await;
    let resolved = h.wait_shown(&diagnosis.ts, "Resolved at").await;
    println!(
        "incident: [RESOLVED] pushed → diagnosis edited in {:?}",
        started.elapsed()
    );
    let shown = world::render_message(&resolved);
    assert!(shown.contains("open "), "{shown}");
    assert!(shown.contains("us-south"), "the evidence stays: {shown}");
    assert_eq!(
        world::verdict_code(&resolved),
        Some(VerdictCode::RegionMismatch)
    );
    let after = offered_actions(&resolved);
    assert_eq!(
        after,
        [ACTION_RERUN, ACTION_FEEDBACK_UP, ACTION_FEEDBACK_DOWN],
        "only Re-run and feedback stay: {after:?}"
    );
    // A client still showing the old buttons clicks Escalate: the message no longer offers it.
    click_value(
        &h,
        &alert_ts,
        &diagnosis.ts,
        ACTION_ESCALATE,
        &value(&loc, Environment::Prod, Some("razee")),
        ENGINEER,
    )
    .await;
    let refusal = h.ephemerals(ENGINEER, 1).await;
    assert!(
        refusal[0]
            .text
            .as_deref()
            .unwrap_or("")
            .contains("does not match what this message offered"),
        "a stale Escalate on a resolved incident was not refused: {refusal:?}"
    );
    let in_alert = h.wait_text(ONCALL_CHANNEL, &alert_ts, "Resolved at").await;
    assert!(in_alert
        .text
        .as_deref()
        .unwrap_or("")
        .contains(&digits(&diagnosis.ts)));
    let in_resolved = h
        .wait_text(ONCALL_CHANNEL, &resolved_ts, "Resolved at")
        .await;
    assert!(in_resolved
        .text
        .as_deref()
        .unwrap_or("")
        .contains(&digits(&diagnosis.ts)));
    println!(
        "incident: [RESOLVED] pushed → both threads answered in {:?}",
        started.elapsed()
    );
    h.wait_reaction(&alert_ts, "white_check_mark").await;
    // Nobody paged and no issue was opened: neither PagerDuty nor GitHub hears of it.
    h.barrier().await;
    assert!(h.world.pagerduty.requests().is_empty());
    assert!(h.world.github.issues().is_empty());
    assert!(h.world.github.requests().is_empty());
    assert_eq!(h.builds_for(&loc), 1, "a resolve started a build");

    // The histograms count this incident once each.
    let (_, metrics) = h.ops("/metrics").await;
    let labels = ["environment=\"prod\"", "verdict=\"region_mismatch\""];
    assert_eq!(
        crate::common::metric(&metrics, "linkbot_time_to_diagnosis_seconds_count", &labels),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        crate::common::metric(
            &metrics,
            "linkbot_time_to_resolution_seconds_count",
            &labels
        ),
        1.0,
        "{metrics}"
    );
    h.assert_no_secrets_in_slack();
    h.finish("incident resolve").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_after_a_page_and_an_issue_resolves_the_page_and_comments_on_the_issue() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let (alert_ts, _) = h
        .alert(ONCALL_CHANNEL, "", Some(alert_attachments(&loc)), 1)
        .await;
    let diagnosis = h.verdict(ONCALL_CHANNEL, &alert_ts).await;
    assert_eq!(
        world::verdict_code(&diagnosis),
        Some(VerdictCode::ApiKeyInvalid)
    );
    h.click(
        &alert_ts,
        &loc,
        ACTION_PAGE,
        Some("satellite_link"),
        ENGINEER,
    )
    .await;
    let pages = h
        .world
        .pagerduty
        .wait_for_requests(1, WAIT)
        .await
        .expect("a page");
    let dedup_key = pages[0].json().expect("JSON")["dedup_key"]
        .as_str()
        .expect("a dedup_key")
        .to_string();
    h.wait_text(ONCALL_CHANNEL, &alert_ts, "PagerDuty").await;
    h.click(
        &alert_ts,
        &loc,
        ACTION_ESCALATE,
        Some("satellite_link"),
        ENGINEER,
    )
    .await;
    h.wait_text(ONCALL_CHANNEL, &alert_ts, "issue").await;
    assert_eq!(h.world.github.issues().len(), 1);

    // [RESOLVED], attachment form.
    let (resolved_ts, _) = h
        .alert(ONCALL_CHANNEL, "", Some(resolved_attachments(&[&loc])), 2)
        .await;
    h.wait_shown(&diagnosis.ts, "Resolved at").await;
    let pages = h
        .world
        .pagerduty
        .wait_for_requests(2, WAIT)
        .await
        .expect("the resolve");
    let resolve = pages[1].json().expect("JSON");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], dedup_key.as_str());
    let gh = h
        .world
        .github
        .wait_for_requests(2, WAIT)
        .await
        .expect("the comment");
    assert!(gh[1].path.ends_with("/comments"), "{}", gh[1].path);
    let body = gh[1].json().expect("JSON")["body"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(body.contains("resolved at"), "{body}");
    assert!(
        body.contains(&digits(&diagnosis.ts)),
        "the comment links the thread: {body}"
    );
    // close_issue_on_resolve is off: nothing closes it (checked after the timeline below).
    // The replies come once PagerDuty and GitHub answered, and say what was done there (so
    // the timeline below is complete when they are in).
    let reply = h
        .wait_text(ONCALL_CHANNEL, &resolved_ts, "Resolved at")
        .await;
    let reply = world::render_message(&reply);
    assert!(
        reply.contains("Resolved the PagerDuty incident") && reply.contains(&dedup_key),
        "{reply}"
    );
    assert!(reply.contains("Commented the resolution on"), "{reply}");
    h.wait_reaction(&alert_ts, "white_check_mark").await;

    // The timeline holds every step, in order.
    let timeline = linkbot::incident::timeline(&*h.bot.store, &loc)
        .await
        .expect("the store answers")
        .expect("an incident");
    let kinds: Vec<&str> = timeline
        .events
        .iter()
        .map(|e| e.event.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "fired",
            "check_started",
            "verdict",
            "page",
            "issue",
            "resolved",
            "pagerduty_resolve",
            "github_comment"
        ],
        "{timeline:?}"
    );
    assert_eq!(
        h.world.github.requests().len(),
        2,
        "the issue was not closed"
    );
    h.finish("incident page and issue").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_pagerduty_will_not_resolve_is_said_in_the_thread_not_only_logged() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let (alert_ts, _) = h
        .alert(ONCALL_CHANNEL, "", Some(alert_attachments(&loc)), 1)
        .await;
    h.verdict(ONCALL_CHANNEL, &alert_ts).await;
    h.click(
        &alert_ts,
        &loc,
        ACTION_PAGE,
        Some("satellite_link"),
        ENGINEER,
    )
    .await;
    h.wait_text(ONCALL_CHANNEL, &alert_ts, "PagerDuty").await;
    let paged = h.world.pagerduty.requests().len();
    // PagerDuty refuses everything from now on: the resolve (and its retries) fail.
    h.world.pagerduty.fail_next(20, 500);
    let (resolved_ts, _) = h
        .alert(ONCALL_CHANNEL, "", Some(resolved_attachments(&[&loc])), 2)
        .await;
    for thread in [&resolved_ts, &alert_ts] {
        let reply = h
            .wait_text(
                ONCALL_CHANNEL,
                thread,
                "Could not resolve the PagerDuty incident",
            )
            .await;
        let reply = world::render_message(&reply);
        assert!(
            reply.contains("Resolve it in PagerDuty") && reply.contains("500"),
            "{reply}"
        );
    }
    assert!(
        h.world.pagerduty.requests().len() > paged,
        "the resolve was tried"
    );
    h.finish("pagerduty refuses the resolve").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_with_close_issue_on_resolve_closes_the_issue() {
    let h = start_with(|c| {
        for t in &mut c.escalation {
            if t.name == "satellite_link" {
                t.close_issue_on_resolve = true;
            }
        }
    })
    .await;
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let (alert_ts, _) = h.alert(ONCALL_CHANNEL, &alert_text(&loc), None, 1).await;
    let diagnosis = h.verdict(ONCALL_CHANNEL, &alert_ts).await;
    h.click(
        &alert_ts,
        &loc,
        ACTION_ESCALATE,
        Some("satellite_link"),
        ENGINEER,
    )
    .await;
    h.wait_text(ONCALL_CHANNEL, &alert_ts, "issue").await;
    h.alert(ONCALL_CHANNEL, &resolved_text(&loc), None, 2).await;
    h.wait_shown(&diagnosis.ts, "Resolved at").await;
    let gh = h
        .world
        .github
        .wait_for_requests(3, WAIT)
        .await
        .expect("the comment and the close");
    assert!(gh[1].path.ends_with("/comments"), "{}", gh[1].path);
    assert_eq!(gh[2].method, reqwest::Method::PATCH);
    assert_eq!(gh[2].json().expect("JSON")["state"], "closed");
    assert!(
        h.world.pagerduty.requests().is_empty(),
        "nobody paged: no resolve"
    );
    h.finish("incident close issue").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grouped_resolve_closes_several_incidents() {
    let h = start().await;
    let a = h.world.scenario(VerdictCode::ConfigMissing, 0);
    let b = h.world.scenario(VerdictCode::RegionMismatch, 0);
    let (a_ts, _) = h.alert(ONCALL_CHANNEL, &alert_text(&a), None, 1).await;
    let (b_ts, _) = h
        .alert(ONCALL_CHANNEL, "", Some(alert_attachments(&b)), 2)
        .await;
    let a_diag = h.verdict(ONCALL_CHANNEL, &a_ts).await;
    let b_diag = h.verdict(ONCALL_CHANNEL, &b_ts).await;
    let (resolved_ts, _) = h
        .alert(ONCALL_CHANNEL, "", Some(resolved_attachments(&[&a, &b])), 3)
        .await;
    h.wait_shown(&a_diag.ts, "Resolved at").await;
    h.wait_shown(&b_diag.ts, "Resolved at").await;
    h.wait_reaction(&a_ts, "white_check_mark").await;
    h.wait_reaction(&b_ts, "white_check_mark").await;
    let ok = h
        .world
        .slack
        .wait_until(|s| s.thread(ONCALL_CHANNEL, &resolved_ts).len() == 2, WAIT)
        .await;
    assert!(ok, "the [RESOLVED] thread should point at both diagnoses");
    for store_loc in [&a, &b] {
        let key = CheckKey {
            environment: Environment::Prod,
            location: store_loc.clone(),
        };
        assert_eq!(h.bot.store.open_incident(&key).await.expect("store"), None);
    }
    h.finish("grouped resolve").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_before_the_verdict_is_shown_with_it_and_one_with_no_incident_does_nothing() {
    let mut h = start().await;
    let slow = h.world.scenario_with(
        VerdictCode::ConfigMissing,
        0,
        World::timing(Duration::from_millis(1500)),
    );
    let (alert_ts, _) = h.alert(ONCALL_CHANNEL, &alert_text(&slow), None, 1).await;
    // Resolved while its check still runs (the progress message is there, no verdict yet).
    h.wait_message("the progress message", |m| {
        m.thread_ts.as_deref() == Some(alert_ts.as_str())
    })
    .await;
    let (resolved_ts, _) = h
        .alert(ONCALL_CHANNEL, &resolved_text(&slow), None, 2)
        .await;
    h.wait_text(ONCALL_CHANNEL, &resolved_ts, "Resolved at")
        .await;
    h.wait_reaction(&alert_ts, "white_check_mark").await;
    let verdict = h.verdict(ONCALL_CHANNEL, &alert_ts).await;
    let verdict = h.wait_shown(&verdict.ts, "Resolved at").await;
    assert_eq!(
        world::verdict_code(&verdict),
        Some(VerdictCode::ConfigMissing)
    );
    assert_eq!(
        offered_actions(&verdict),
        [ACTION_RERUN, ACTION_FEEDBACK_UP, ACTION_FEEDBACK_DOWN]
    );

    // A [RESOLVED] for a location with no incident: no answer, no check.
    let quiet = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let (quiet_ts, _) = h
        .alert(ONCALL_CHANNEL, &resolved_text(&quiet), None, 3)
        .await;
    h.barrier().await;
    assert!(h.world.thread(ONCALL_CHANNEL, &quiet_ts).is_empty());
    assert_eq!(h.builds_for(&quiet), 0);
    assert!(!h.world.slack.reactions().iter().any(|r| r.ts == quiet_ts));
    h.finish("resolve before verdict").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_that_fixes_the_incident_says_so_and_marks_it_fixed() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let (alert_ts, _) = h.alert(ONCALL_CHANNEL, &alert_text(&loc), None, 1).await;
    let diagnosis = h.verdict(ONCALL_CHANNEL, &alert_ts).await;
    assert_eq!(
        world::verdict_code(&diagnosis),
        Some(VerdictCode::ApiKeyInvalid)
    );
    // Someone rotates the key; the re-run finds it working.
    h.world.set_scenario(
        &loc,
        VerdictCode::ApiKeyAccepted,
        linkbot::sim::jenkins::Behaviour::default(),
        true,
    );
    h.click(&alert_ts, &loc, ACTION_RERUN, None, ENGINEER).await;
    h.wait_text(
        ONCALL_CHANNEL,
        &alert_ts,
        "was `api_key_invalid`, now `api_key_accepted`: the key works",
    )
    .await;
    h.wait_shown(&diagnosis.ts, "Fixed").await;
    let key = CheckKey {
        environment: Environment::Prod,
        location: loc.clone(),
    };
    let incident = h
        .bot
        .store
        .open_incident(&key)
        .await
        .expect("store")
        .expect("still open until it resolves");
    assert!(incident.fixed_at.is_some());
    assert_eq!(incident.verdict.as_deref(), Some("api_key_invalid"));
    let timeline = linkbot::incident::timeline(&*h.bot.store, &loc)
        .await
        .expect("store")
        .expect("incident");
    let kinds: Vec<&str> = timeline
        .events
        .iter()
        .map(|e| e.event.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        ["fired", "check_started", "verdict", "rerun", "fixed"]
    );
    h.finish("fix by rerun").await;
}

/// A burst of envelopes in one channel runs at most `PER_LANE` handlers at once (the rest wait
/// as parsed envelopes, not as handler futures holding a Slack call each), and a mention in
/// another channel is not held up behind it. Then every mention of the burst is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_in_one_channel_runs_a_bounded_number_of_handlers_and_other_channels_go_on() {
    use linkbot::slack::dispatch::PER_LANE;
    let h = start_with(|c| {
        c.slack
            .channels
            .push(linkbot::domain::SlackChannelId::parse(SATLINK_CHANNEL).expect("a channel id"));
        c.slack.request_timeout = Duration::from_secs(30);
    })
    .await;
    let posts_in = |channel: &str| {
        h.world
            .slack
            .calls("chat.postMessage")
            .iter()
            .filter(|c| c["channel"] == channel)
            .count()
    };
    // Slack holds the first PER_LANE replies for 10 s.
    h.world.slack.fail_next(
        "chat.postMessage",
        PER_LANE,
        Failure::Stall(Duration::from_secs(10)),
    );
    let burst = PER_LANE as u32 + 4;
    let mut threads = Vec::new();
    for n in 1..=burst {
        threads.push(h.mention(ONCALL_CHANNEL, ENGINEER, "help", n).await.0);
    }
    assert!(
        h.world
            .slack
            .wait_until(|s| s.calls("chat.postMessage").len() >= PER_LANE, WAIT)
            .await,
        "the first {PER_LANE} replies never reached Slack"
    );
    // Another channel is answered while the burst's replies are held.
    let (other, _) = h.mention(SATLINK_CHANNEL, ENGINEER, "help", 100).await;
    assert!(
        h.world
            .slack
            .wait_until(
                |s| s.messages().iter().any(|m| m.channel == SATLINK_CHANNEL
                    && m.thread_ts.as_deref() == Some(other.as_str())),
                WAIT
            )
            .await,
        "a mention in another channel waited behind the burst"
    );
    // Meanwhile only PER_LANE of the burst's mentions reached Slack: the rest wait their turn.
    assert_eq!(posts_in(ONCALL_CHANNEL), PER_LANE);
    // Once Slack answers, every mention of the burst is answered, once.
    for thread in &threads {
        assert!(
            h.world
                .slack
                .wait_until(
                    |s| s.messages().iter().any(|m| m.channel == ONCALL_CHANNEL
                        && m.thread_ts.as_deref() == Some(thread.as_str())),
                    WAIT * 2
                )
                .await,
            "mention {thread} of the burst was never answered"
        );
    }
    assert_eq!(posts_in(ONCALL_CHANNEL), burst as usize);
    h.finish("burst in one channel").await;
}

/// Builds that end together do not all hold their artifacts at once: a few checks per parse
/// thread download, parse and drop theirs, the others wait their turn with nothing loaded
/// (1,000 builds ending together would otherwise hold 2,000 artifacts of up to
/// `artifact_max_bytes` each). Every check still reaches its verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_ending_together_download_their_artifacts_a_few_at_a_time() {
    use linkbot::check::ARTIFACT_TURNS_PER_THREAD;
    let h = start().await;
    let parse_threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .max(1);
    let turns = parse_threads * ARTIFACT_TURNS_PER_THREAD;
    let checks = (turns * 2 + 2) as u32;
    h.world
        .jenkins
        .set_artifact_delay(Duration::from_millis(300));
    let mut threads = Vec::new();
    for n in 0..checks {
        let loc = h.world.scenario_with(
            VerdictCode::RegionMismatch,
            n,
            World::timing(Duration::from_millis(800)),
        );
        threads.push(
            h.mention(ONCALL_CHANNEL, ENGINEER, &format!("check {loc}"), n + 1)
                .await
                .0,
        );
    }
    for thread in &threads {
        let verdict = h.verdict(ONCALL_CHANNEL, thread).await;
        assert_eq!(
            world::verdict_code(&verdict),
            Some(VerdictCode::RegionMismatch)
        );
    }
    let most = h.world.jenkins.most_downloads_at_once();
    assert!(
        (1..=turns).contains(&most),
        "{most} artifact downloads at once for {checks} builds ending together (turns: {turns})"
    );
    h.finish("artifacts a few at a time").await;
}
