//! "Was this right?" end to end: the real bot against the simulated world, asserting what
//! people see (the count on the diagnosis, the form, the answers), what the store and the audit
//! log hold, and that a vote or a form linkbot did not offer is refused.
//!
//! Every wait is bounded; "nothing was recorded" is concluded from a later, visible answer to
//! the same person (Slack-side), never from a sleep.

use linkbot::app::{self, RunningBot};
use linkbot::diagnosis::verdict::VerdictCode;
use linkbot::domain::{Environment, LocationId};
use linkbot::sim::slack::{self as fake, SimMessage, SimView};
use linkbot::sim::world::{self, World, ENGINEER, ONCALL_CHANNEL, VISITOR};
use linkbot::slack::blocks::{ButtonValue, ACTION_FEEDBACK_DOWN, ACTION_FEEDBACK_UP};
use linkbot::slack::mrkdwn::live_tokens;
use linkbot::store::{AuditKind, Feedback, MessageRef, Vote};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The bound on any single wait.
const WAIT: Duration = Duration::from_secs(15);

/// One world and one bot connected to it.
struct Harness {
    world: World,
    bot: RunningBot,
}

async fn start() -> Harness {
    let world = World::start().await.expect("the simulated world starts");
    let config = world
        .config(&world.sqlite_url("bot"))
        .expect("the simulated bot.toml is valid");
    let connections = config.slack.connections;
    let options = crate::common::bot_options("feedback-test");
    let bot = app::start(Arc::new(config), world.secrets(), options)
        .await
        .expect("the bot starts");
    assert!(bot.wait_connected(connections, WAIT).await);
    Harness { world, bot }
}

impl Harness {
    /// `@linkbot check <loc>` by the engineer as user message `n`; waits for the diagnosis.
    async fn diagnosis(&self, loc: &LocationId, n: u32) -> (String, SimMessage) {
        let ts = World::user_ts(n);
        let text = format!("<@{}> check {loc}", fake::SIM_BOT_USER_ID);
        self.world
            .slack
            .push(fake::app_mention(ONCALL_CHANNEL, ENGINEER, &text, &ts))
            .await
            .expect("a live Socket Mode connection");
        let v = self
            .world
            .wait_verdicts(ONCALL_CHANNEL, &ts, 1, WAIT)
            .await
            .expect("a diagnosis")
            .pop()
            .expect("one");
        (ts, v)
    }

    /// `user` clicks the feedback button `action_id` on message `ts` of `thread`.
    async fn click(&self, thread: &str, ts: &str, loc: &LocationId, action_id: &str, user: &str) {
        let value = serde_json::to_string(&ButtonValue {
            location: loc.to_string(),
            environment: Environment::Prod,
            target: None,
        })
        .expect("a value");
        self.world
            .slack
            .push(fake::block_actions(
                ONCALL_CHANNEL,
                user,
                ts,
                action_id,
                &value,
                Some(thread),
            ))
            .await
            .expect("a live Socket Mode connection");
    }

    /// Waits until message `ts` shows `needle`; returns it.
    async fn shown(&self, ts: &str, needle: &str) -> SimMessage {
        let ok = self
            .world
            .slack
            .wait_until(
                |s| {
                    s.message(ONCALL_CHANNEL, ts)
                        .is_some_and(|m| world::render_message(m).contains(needle))
                },
                WAIT,
            )
            .await;
        let m = self
            .world
            .slack
            .messages()
            .into_iter()
            .find(|m| m.ts == ts && m.ephemeral_to.is_none())
            .expect("the message");
        assert!(
            ok,
            "{ts} never showed {needle:?}; it shows:\n{}",
            world::render_message(&m)
        );
        m
    }

    /// Waits for the `n`th view opened; returns it.
    async fn view(&self, n: usize) -> SimView {
        let ok = self
            .world
            .slack
            .wait_until(|s| s.views().len() >= n, WAIT)
            .await;
        assert!(ok, "no {n} view(s) opened");
        self.world.slack.views()[n - 1].clone()
    }

    /// Submits `view` as `user` with `answers` (action id, value).
    async fn submit(&self, view: &SimView, user: &str, answers: &[(&str, &str)]) {
        let state = fake::view_state(view, answers);
        self.world
            .slack
            .push(fake::view_submission(view, user, state))
            .await
            .expect("a live Socket Mode connection");
    }

    /// Waits until `user` was told something ephemeral containing `needle`; returns it.
    async fn told(&self, user: &str, needle: &str) -> String {
        let pred = |m: &SimMessage| {
            m.ephemeral_to.as_deref() == Some(user)
                && m.text.as_deref().unwrap_or("").contains(needle)
        };
        let ok = self
            .world
            .slack
            .wait_until(|s| s.messages().iter().any(pred), WAIT)
            .await;
        let said: Vec<String> = self
            .world
            .slack
            .messages()
            .into_iter()
            .filter(|m| m.ephemeral_to.as_deref() == Some(user))
            .filter_map(|m| m.text)
            .collect();
        assert!(ok, "{user} was never told {needle:?}; was told {said:?}");
        said.into_iter()
            .find(|t| t.contains(needle))
            .expect("just seen")
    }

    async fn rows(&self, ts: &str) -> Vec<Feedback> {
        self.bot
            .store
            .feedback_for_message(&MessageRef {
                channel: ONCALL_CHANNEL.into(),
                ts: ts.into(),
            })
            .await
            .expect("the store answers")
    }

    /// Every envelope acked, no refusal of what the bot sent (every message and view passed the
    /// strict Block Kit validator) except those `allowed`, no secret in Slack; the bot stops.
    async fn finish(self, allowed: &[&str]) {
        let acked = self
            .world
            .slack
            .wait_until(|s| s.pushed().iter().all(|id| s.acked(id)), WAIT)
            .await;
        assert!(acked, "an envelope was never acked");
        let refused: Vec<_> = self
            .world
            .slack
            .refusals()
            .into_iter()
            .filter(|r| !allowed.contains(&r.error.as_str()))
            .collect();
        assert!(
            refused.is_empty(),
            "Slack refused what the bot sent: {refused:#?}"
        );
        let secrets = self.world.all_secret_values();
        for m in self.world.slack.messages() {
            let shown = format!("{:?}", m.versions);
            assert!(secrets.iter().all(|s| !shown.contains(s.as_str())));
        }
        for v in self.world.slack.views() {
            let shown = v.view.to_string();
            assert!(secrets.iter().all(|s| !shown.contains(s.as_str())));
        }
        tokio::time::timeout(Duration::from_secs(10), self.bot.stop())
            .await
            .expect("the bot stops within its bound");
    }
}

/// Polls `cond` every 20 ms until it holds (for what only the logs show); fails after `wait`.
async fn poll(wait: Duration, what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + wait;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {wait:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The message's blocks without the feedback count line (what a vote must leave as it was).
fn without_count(blocks: &Value) -> Vec<Value> {
    blocks
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| {
            !(b["type"] == "context"
                && b["elements"][0]["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("Was this right?")))
        })
        .cloned()
        .collect()
}

fn offered_ids(m: &SimMessage) -> Vec<String> {
    m.blocks
        .iter()
        .flat_map(|b| b.as_array().into_iter().flatten())
        .flat_map(|b| b["elements"].as_array().into_iter().flatten())
        .filter_map(|e| e["action_id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thumbs_up_and_down_with_the_form_are_recorded_counted_and_audited() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let (thread, diagnosis) = h.diagnosis(&loc, 1).await;
    let ids = offered_ids(&diagnosis);
    assert!(
        ids.iter().any(|i| i == ACTION_FEEDBACK_UP)
            && ids.iter().any(|i| i == ACTION_FEEDBACK_DOWN),
        "{ids:?}"
    );
    let before = world::render_message(&diagnosis);
    assert!(
        before.contains("Was this right?") && before.contains("[👍 Right] [👎 Wrong]"),
        "{before}"
    );

    // A visitor (not in the on-call group) says it was right.
    h.click(&thread, &diagnosis.ts, &loc, ACTION_FEEDBACK_UP, VISITOR)
        .await;
    h.shown(&diagnosis.ts, "Feedback: 👍 1 · 👎 0").await;

    // The engineer says it was wrong: the form opens for them, with every verdict and "other".
    h.click(&thread, &diagnosis.ts, &loc, ACTION_FEEDBACK_DOWN, ENGINEER)
        .await;
    let form = h.view(1).await;
    assert_eq!(form.user.as_deref(), Some(ENGINEER));
    assert_eq!(form.view["callback_id"], "linkbot_feedback");
    let options: Vec<&str> = form.view["blocks"][1]["element"]["options"]
        .as_array()
        .expect("a select")
        .iter()
        .filter_map(|o| o["value"].as_str())
        .collect();
    let mut want: Vec<&str> = VerdictCode::ALL.iter().map(|v| v.as_str()).collect();
    want.push("other");
    assert_eq!(options, want);
    let token = form.view["private_metadata"].as_str().expect("a token");
    assert!(
        token.len() >= 32 && !token.contains(loc.as_str()),
        "{token}"
    );
    h.shown(&diagnosis.ts, "Feedback: 👍 1 · 👎 1").await;

    let comment = "The ConfigMap said us-south <!channel> `x` & <https://evil.example|here>";
    h.submit(
        &form,
        ENGINEER,
        &[("actual", "region_mismatch"), ("comment", comment)],
    )
    .await;
    let thanks = h.told(ENGINEER, "Thanks — recorded").await;
    assert!(
        thanks.contains("Improper region config") && thanks.contains("`region_mismatch`"),
        "{thanks}"
    );
    assert!(
        thanks.contains("&lt;!channel&gt;"),
        "the comment is escaped: {thanks}"
    );
    assert!(live_tokens(&thanks).is_empty(), "{thanks}");

    let rows = h.rows(&diagnosis.ts).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let visitor = rows
        .iter()
        .find(|r| r.user == VISITOR)
        .expect("the visitor's vote");
    assert_eq!(
        (visitor.vote, visitor.actual_verdict.as_deref()),
        (Vote::Up, None)
    );
    let engineer = rows
        .iter()
        .find(|r| r.user == ENGINEER)
        .expect("the engineer's vote");
    assert_eq!(engineer.vote, Vote::Down);
    assert_eq!(engineer.actual_verdict.as_deref(), Some("region_mismatch"));
    assert_eq!(engineer.comment.as_deref(), Some(comment));
    assert_eq!(engineer.verdict, "api_key_invalid");
    assert_eq!(engineer.key.location, loc);
    assert!(engineer.check_id.is_some());

    // The count is on the message and everything else of it is as it was.
    let now = h.shown(&diagnosis.ts, "Feedback: 👍 1 · 👎 1").await;
    assert_eq!(
        without_count(now.blocks.as_ref().expect("blocks")),
        without_count(diagnosis.blocks.as_ref().expect("blocks")),
    );

    // Audited: each vote and the answer, by whom.
    let audit = h
        .bot
        .store
        .audit(None, Some(&loc), 100)
        .await
        .expect("audit");
    let feedback: Vec<_> = audit
        .iter()
        .filter(|e| e.kind == AuditKind::Feedback)
        .collect();
    assert_eq!(feedback.len(), 3, "{feedback:?}");
    assert!(feedback
        .iter()
        .any(|e| e.actor.as_deref() == Some(VISITOR) && e.detail.as_deref() == Some("vote up")));
    assert!(feedback.iter().any(|e| e.actor.as_deref() == Some(ENGINEER)
        && e.detail
            .as_deref()
            .is_some_and(|d| d.starts_with("vote down, actually region_mismatch: The ConfigMap"))));
    let table = linkbot::audit_table::render_audit(&audit);
    assert!(table.contains("feedback"), "{table}");
    h.finish(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_vote_replaces_the_first() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::RegionMismatch, 0);
    let (thread, diagnosis) = h.diagnosis(&loc, 1).await;
    h.click(&thread, &diagnosis.ts, &loc, ACTION_FEEDBACK_UP, ENGINEER)
        .await;
    h.shown(&diagnosis.ts, "👍 1 · 👎 0").await;
    h.click(&thread, &diagnosis.ts, &loc, ACTION_FEEDBACK_DOWN, ENGINEER)
        .await;
    // Answered as soon as the form shows (before the count is re-rendered): the vote it
    // answers is already recorded.
    let form = h.view(1).await;
    h.submit(&form, ENGINEER, &[("actual", "other")]).await;
    h.told(ENGINEER, "Thanks — recorded").await;
    h.shown(&diagnosis.ts, "👍 0 · 👎 1").await;
    let rows = h.rows(&diagnosis.ts).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0].vote,
            rows[0].actual_verdict.as_deref(),
            rows[0].comment.as_deref()
        ),
        (Vote::Down, Some("other"), None)
    );
    // Back to 👍: the one row says so, the form's answer is gone.
    h.click(&thread, &diagnosis.ts, &loc, ACTION_FEEDBACK_UP, ENGINEER)
        .await;
    h.shown(&diagnosis.ts, "👍 1 · 👎 0").await;
    let rows = h.rows(&diagnosis.ts).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].vote, rows[0].actual_verdict.as_deref()),
        (Vote::Up, None)
    );
    h.finish(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_on_a_message_showing_no_result_is_refused_and_audited() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let (thread, diagnosis) = h.diagnosis(&loc, 1).await;
    // A message the bot never posted, then the bot's own first message of another thread that
    // the store knows as no result (a mention's thread root is a person's message).
    let never_posted = "1700000099.000001";
    h.click(&thread, never_posted, &loc, ACTION_FEEDBACK_UP, VISITOR)
        .await;
    h.click(&thread, &thread, &loc, ACTION_FEEDBACK_DOWN, VISITOR)
        .await;
    let refusals = {
        let ok = h
            .world
            .slack
            .wait_until(
                |s| {
                    s.messages()
                        .iter()
                        .filter(|m| m.ephemeral_to.as_deref() == Some(VISITOR))
                        .count()
                        >= 2
                },
                WAIT,
            )
            .await;
        assert!(ok, "the visitor was not told twice");
        h.world
            .slack
            .messages()
            .into_iter()
            .filter(|m| m.ephemeral_to.as_deref() == Some(VISITOR))
            .collect::<Vec<_>>()
    };
    for r in &refusals {
        assert!(
            r.text.as_deref().unwrap_or("").contains("so I did nothing"),
            "{r:?}"
        );
    }
    assert!(
        h.world.slack.views().is_empty(),
        "a form opened for a refused click"
    );
    assert!(h.rows(never_posted).await.is_empty());
    assert!(h.rows(&thread).await.is_empty());
    let audit = h
        .bot
        .store
        .audit(None, Some(&loc), 100)
        .await
        .expect("audit");
    let refused: Vec<_> = audit
        .iter()
        .filter(|e| e.kind == AuditKind::RefusedAction)
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.iter().all(|e| e.actor.as_deref() == Some(VISITOR)));
    assert!(audit.iter().all(|e| e.kind != AuditKind::Feedback));
    // The diagnosis itself still takes votes.
    h.click(&thread, &diagnosis.ts, &loc, ACTION_FEEDBACK_UP, VISITOR)
        .await;
    h.shown(&diagnosis.ts, "👍 1 · 👎 0").await;
    h.finish(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_replayed_or_someone_elses_form_is_refused() {
    crate::common::logs();
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let (thread, diagnosis) = h.diagnosis(&loc, 1).await;
    h.click(&thread, &diagnosis.ts, &loc, ACTION_FEEDBACK_DOWN, ENGINEER)
        .await;
    let form = h.view(1).await;
    h.shown(&diagnosis.ts, "👍 0 · 👎 1").await;

    // Someone else submits the engineer's form: refused, told, audited.
    h.submit(&form, VISITOR, &[("actual", "job_failed")]).await;
    h.told(VISITOR, "not one linkbot opened for you").await;
    // A choice the form never offered: refused, and the form stays open for a real answer.
    h.submit(&form, ENGINEER, &[("actual", "dba_was_asleep")])
        .await;
    h.told(ENGINEER, "not one the form offered").await;
    // A forged view: linkbot never opened a form with this token.
    let mut forged = form.clone();
    forged.id = "V99999999".into();
    forged.view["private_metadata"] = Value::String("0000000000000000feedfacefeedface".into());
    h.submit(&forged, "U0FORGER", &[("actual", "other")]).await;
    // The real answer is recorded once; a replay of it is refused.
    h.submit(&form, ENGINEER, &[("actual", "config_missing")])
        .await;
    h.told(ENGINEER, "Thanks — recorded").await;
    h.submit(&form, ENGINEER, &[("actual", "other")]).await;
    // Neither can be told to anyone (nothing says where they came from): the log says so.
    poll(WAIT, "the forged and the replayed form refused", || {
        let logs = crate::common::all_logs();
        logs.contains("U0FORGER")
            && logs
                .matches("refused a feedback form linkbot did not open")
                .count()
                >= 2
    })
    .await;
    let rows = h.rows(&diagnosis.ts).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].user, ENGINEER);
    assert_eq!(rows[0].actual_verdict.as_deref(), Some("config_missing"));
    let audit = h
        .bot
        .store
        .audit(None, Some(&loc), 100)
        .await
        .expect("audit");
    let refused: Vec<_> = audit
        .iter()
        .filter(|e| e.kind == AuditKind::RefusedAction)
        .collect();
    assert_eq!(
        refused.len(),
        2,
        "someone else's form and the unknown choice: {refused:?}"
    );
    assert!(refused.iter().any(|e| e.actor.as_deref() == Some(VISITOR)));
    assert!(!audit.iter().any(|e| e.actor.as_deref() == Some("U0FORGER")));
    h.finish(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_trigger_keeps_the_vote_and_says_the_form_did_not_open() {
    let h = start().await;
    h.world.slack.set_trigger_ttl(Duration::ZERO);
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let (thread, diagnosis) = h.diagnosis(&loc, 1).await;
    h.click(&thread, &diagnosis.ts, &loc, ACTION_FEEDBACK_DOWN, ENGINEER)
        .await;
    let told = h.told(ENGINEER, "did not open").await;
    assert!(told.contains("expired_trigger_id"), "{told}");
    h.shown(&diagnosis.ts, "👍 0 · 👎 1").await;
    assert!(h.world.slack.views().is_empty());
    let rows = h.rows(&diagnosis.ts).await;
    assert_eq!((rows.len(), rows[0].vote), (1, Vote::Down));
    let expired = h.world.slack.refusals();
    assert!(
        expired
            .iter()
            .all(|r| r.method == "views.open" && r.error == "expired_trigger_id"),
        "{expired:?}"
    );
    h.finish(&["expired_trigger_id"]).await;
}

/// One Web API call to the simulated Slack as a client would make it.
async fn raw_call(h: &Harness, method: &str, params: Value) -> Value {
    let url = format!("{}/{method}", h.world.slack.base_url());
    reqwest::Client::new()
        .post(url)
        .bearer_auth(h.world.slack.bot_token().expose())
        .json(&params)
        .timeout(WAIT)
        .send()
        .await
        .expect("the sim answers")
        .json()
        .await
        .expect("a JSON answer")
}

/// A click the bot ignores (an action that is not linkbot's): it only issues a trigger id.
async fn trigger(h: &Harness) -> String {
    let click = fake::block_actions(
        ONCALL_CHANNEL,
        ENGINEER,
        "1700000001.000100",
        "sim_probe",
        "v",
        None,
    );
    let trigger = click["payload"]["trigger_id"]
        .as_str()
        .expect("a trigger id")
        .to_string();
    h.world.slack.push(click).await.expect("pushed");
    trigger
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_views_open_refuses_what_slack_refuses() {
    let h = start().await;
    let modal = linkbot::slack::blocks::feedback_form(VerdictCode::ConfigMissing, "abc123");
    // Over 250 KB: refused, and the trigger is still usable.
    let first = trigger(&h).await;
    let mut huge = modal.clone();
    huge["blocks"] = Value::Array(
        (0..100)
            .map(|i| serde_json::json!({"type": "section", "block_id": format!("b{i}"), "text": {"type": "mrkdwn", "text": "x".repeat(2900)}}))
            .collect(),
    );
    huge.as_object_mut().map(|o| o.remove("submit"));
    let answer = raw_call(
        &h,
        "views.open",
        serde_json::json!({"trigger_id": first, "view": huge}),
    )
    .await;
    assert_eq!(answer["error"], "view_too_large", "{answer}");
    // An external_id is unique in the workspace.
    let mut named = modal.clone();
    named["external_id"] = Value::String("linkbot-feedback-1".into());
    let answer = raw_call(
        &h,
        "views.open",
        serde_json::json!({"trigger_id": first, "view": named}),
    )
    .await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["view"]["private_metadata"], "abc123");
    assert!(answer["view"]["hash"].is_string() && answer["view"]["state"]["values"].is_object());
    let second = trigger(&h).await;
    let answer = raw_call(
        &h,
        "views.open",
        serde_json::json!({"trigger_id": second, "view": named}),
    )
    .await;
    assert_eq!(answer["error"], "duplicate_external_id", "{answer}");
    // A trigger past its life is refused as expired.
    h.world.slack.set_trigger_ttl(Duration::ZERO);
    let answer = raw_call(
        &h,
        "views.open",
        serde_json::json!({"trigger_id": second, "view": modal}),
    )
    .await;
    assert_eq!(answer["error"], "expired_trigger_id", "{answer}");
    h.finish(&[
        "view_too_large",
        "duplicate_external_id",
        "expired_trigger_id",
    ])
    .await;
}
