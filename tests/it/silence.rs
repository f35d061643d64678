//! Silencing the alert from its thread, against the simulated Alertmanager (API v2 silences):
//! the client on the wire and its errors, the simulator's strictness, and the real bot end to
//! end — "Silence…" by an on-call member (the exact matchers, times and comment Alertmanager
//! receives, the id in the thread), Unsilence, a non-member and a forged choice refused with no
//! call, the incident's silences expired at resolution, Alertmanager's 400 and 500 told in the
//! thread, and the silence never half-recorded when the store fails. Every Slack payload passes
//! the strict Block Kit validator (the simulated Slack refuses anything else) and no payload or
//! log line carries `ALERTMANAGER_TOKEN`.

use crate::common;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use linkbot::alertmanager::{
    AlertmanagerClient, AlertmanagerError, Matcher, NewSilence, SilenceId, SilenceState,
};
use linkbot::app::{self, RunningBot};
use linkbot::diagnosis::verdict::VerdictCode;
use linkbot::domain::{BaseUrl, Environment, LocationId};
use linkbot::net::{Net, Timeouts};
use linkbot::secret::Secret;
use linkbot::silence::{Asked, SilenceChannel, SilenceFor, Silenced, Silences};
use linkbot::sim;
use linkbot::sim::slack::{self as fake, SimMessage};
use linkbot::sim::world::{self, World, ALERT_BOT, ENGINEER, ONCALL_CHANNEL, VISITOR};
use linkbot::slack::alerts::ALERT_NAME;
use linkbot::slack::blocks::{
    SilenceValue, UnsilenceValue, ACTION_SILENCE, ACTION_UNSILENCE, BLOCK_SILENCE, BLOCK_UNSILENCE,
};
use linkbot::store::{AuditKind, CheckKey, MessageRef, SilenceRecord};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The bound on any single wait.
const WAIT: Duration = Duration::from_secs(15);
const TOKEN: &str = "am-test-bearer-0123456789";

fn client(sim: &sim::alertmanager::AlertmanagerSim, token: Option<&str>) -> AlertmanagerClient {
    AlertmanagerClient::new(
        BaseUrl::new(sim.base_url()).unwrap(),
        token.map(Secret::new),
        Timeouts::new(Duration::from_secs(5), Duration::from_secs(2)),
        &Net::direct(),
    )
    .unwrap()
}

fn new_silence(starts: DateTime<Utc>, ends: DateTime<Utc>) -> NewSilence {
    NewSilence {
        matchers: vec![
            Matcher::equal("alertname", ALERT_NAME),
            Matcher::equal("cluster_id", "c1hk4ek107l5au5mq8hg"),
        ],
        starts_at: starts,
        ends_at: ends,
        created_by: "alice (U0ALICE)".into(),
        comment: "test".into(),
    }
}

/// Every way an error can be shown: none may hold the token.
fn shown(err: &AlertmanagerError) -> String {
    let mut all = vec![err.to_string(), format!("{err:?}"), err.user_message()];
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        all.push(s.to_string());
        source = s.source();
    }
    all.join("\n")
}

// ---------------------------------------------------------------------------------------------
// The client and the simulator

#[tokio::test]
async fn the_client_creates_reads_and_expires_a_silence_with_the_api_v2_shapes() {
    let am = sim::alertmanager::start(Some(TOKEN)).await.unwrap();
    let c = client(&am, Some(TOKEN));
    let now = Utc::now();
    let id = c
        .create(&new_silence(now, now + chrono::Duration::hours(1)))
        .await
        .unwrap();
    let reqs = am.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/api/v2/silences");
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let body = reqs[0].json().unwrap();
    assert_eq!(
        body["matchers"],
        json!([
            {"name": "alertname", "value": ALERT_NAME, "isRegex": false, "isEqual": true},
            {"name": "cluster_id", "value": "c1hk4ek107l5au5mq8hg", "isRegex": false, "isEqual": true}
        ])
    );
    assert_eq!(body["createdBy"], "alice (U0ALICE)");
    assert!(body.get("id").is_none(), "a new silence carries no id");

    let got = c.get(&id).await.unwrap();
    assert_eq!(got.id, id.as_str());
    assert_eq!(got.state(), SilenceState::Active);
    assert_eq!(got.created_by, "alice (U0ALICE)");

    c.expire(&id).await.unwrap();
    assert_eq!(c.get(&id).await.unwrap().state(), SilenceState::Expired);
    assert_eq!(am.silences()[0].state(Utc::now()), "expired");
    // Expiring again is fine (Alertmanager answers 200).
    c.expire(&id).await.unwrap();

    // An id it does not know: 404 on GET and DELETE.
    let unknown = SilenceId::parse("0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11").unwrap();
    assert!(matches!(
        c.get(&unknown).await,
        Err(AlertmanagerError::NotFound { .. })
    ));
    assert!(matches!(
        c.expire(&unknown).await,
        Err(AlertmanagerError::NotFound { .. })
    ));
}

#[tokio::test]
async fn alertmanagers_refusals_and_failures_become_one_sentence_without_the_token() {
    let am = sim::alertmanager::start(Some(TOKEN)).await.unwrap();
    let c = client(&am, Some(TOKEN));
    let now = Utc::now();
    // As the real one validates: the API's checks, as JSON strings.
    let cases = [
        (
            new_silence(now, now - chrono::Duration::minutes(1)),
            "Alertmanager refused the request (HTTP 400: Failed to create silence: start time must be before end time).",
        ),
        (
            new_silence(now - chrono::Duration::hours(2), now - chrono::Duration::hours(1)),
            "Alertmanager refused the request (HTTP 400: Failed to create silence: end time can't be in the past).",
        ),
        (
            NewSilence {
                matchers: vec![Matcher::equal("cluster-id", "x")],
                ..new_silence(now, now + chrono::Duration::hours(1))
            },
            "Alertmanager refused the request (HTTP 400: invalid silence: invalid label matcher 0 in set 0: invalid label name \"cluster-id\").",
        ),
        (
            NewSilence {
                matchers: vec![Matcher::equal("alertname", "")],
                ..new_silence(now, now + chrono::Duration::hours(1))
            },
            "Alertmanager refused the request (HTTP 400: invalid silence: matcher set 0: at least one matcher must not match the empty string).",
        ),
        (
            NewSilence {
                matchers: vec![],
                ..new_silence(now, now + chrono::Duration::hours(1))
            },
            "Alertmanager refused the request (HTTP 422: matchers in body should have at least 1 items).",
        ),
    ];
    for (silence, want) in cases {
        let err = c.create(&silence).await.unwrap_err();
        assert_eq!(err.user_message(), want);
    }
    assert!(am.silences().is_empty(), "a refused silence was kept");

    // A 500 with Alertmanager's message, and one that echoes the token.
    am.answer_next(500, &format!("\"failed to persist: {TOKEN}\""));
    let err = c
        .create(&new_silence(now, now + chrono::Duration::hours(1)))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        AlertmanagerError::Unavailable { status: 500, .. }
    ));
    assert!(
        err.user_message()
            .starts_with("Alertmanager failed (HTTP 500: failed to persist: [redacted"),
        "{}",
        err.user_message()
    );
    assert!(!shown(&err).contains(TOKEN), "{}", shown(&err));

    // No token, a wrong one: 401, named by the variable to fix.
    for token in [None, Some("wrong-token-value")] {
        let err = client(&am, token)
            .create(&new_silence(now, now + chrono::Duration::hours(1)))
            .await
            .unwrap_err();
        assert!(
            matches!(err, AlertmanagerError::Unauthorized { status: 401 }),
            "{err:?}"
        );
        assert!(err.user_message().contains("ALERTMANAGER_TOKEN"));
    }

    // Unreachable, and no answer in time.
    let stalled = sim::Stalled::start().await.unwrap();
    let slow = AlertmanagerClient::new(
        BaseUrl::new(stalled.base_url()).unwrap(),
        Some(Secret::new(TOKEN)),
        Timeouts::new(Duration::from_millis(300), Duration::from_millis(300)),
        &Net::direct(),
    )
    .unwrap();
    let err = slow
        .create(&new_silence(now, now + chrono::Duration::hours(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AlertmanagerError::Transport {
                kind: "timeout",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err
        .user_message()
        .starts_with("Alertmanager did not answer in time"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let gone = AlertmanagerClient::new(
        BaseUrl::parse(&url).unwrap(),
        None,
        Timeouts::new(Duration::from_secs(2), Duration::from_secs(1)),
        &Net::direct(),
    )
    .unwrap();
    let err = gone
        .create(&new_silence(now, now + chrono::Duration::hours(1)))
        .await
        .unwrap_err();
    assert!(
        err.user_message().contains("Alertmanager"),
        "{}",
        err.user_message()
    );
}

#[tokio::test]
async fn the_simulator_answers_bad_bodies_as_alertmanager_does() {
    let am = sim::alertmanager::start(None).await.unwrap();
    let http = reqwest::Client::new();
    let url = am.base_url().join("api/v2/silences").unwrap();
    let now = Utc::now();
    let good = json!({
        "matchers": [{"name": "alertname", "value": "A", "isRegex": false}],
        "startsAt": now.to_rfc3339(),
        "endsAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
        "createdBy": "alice",
        "comment": "c",
    });
    let without = |field: &str| {
        let mut v = good.clone();
        v.as_object_mut().unwrap().remove(field);
        v
    };
    let mut no_is_regex = good.clone();
    no_is_regex["matchers"][0]
        .as_object_mut()
        .unwrap()
        .remove("isRegex");
    let mut regex = good.clone();
    regex["matchers"][0]["isRegex"] = json!(true);
    let cases: Vec<(String, u16, Value)> = vec![
        ("{".into(), 400, json!(400)),
        (
            without("comment").to_string(),
            422,
            json!({"code": 602, "message": "comment in body is required"}),
        ),
        (
            without("createdBy").to_string(),
            422,
            json!({"code": 602, "message": "createdBy in body is required"}),
        ),
        (
            without("endsAt").to_string(),
            422,
            json!({"code": 602, "message": "endsAt in body is required"}),
        ),
        (
            without("matchers").to_string(),
            422,
            json!({"code": 602, "message": "matchers in body is required"}),
        ),
        (
            without("startsAt").to_string(),
            422,
            json!({"code": 602, "message": "startsAt in body is required"}),
        ),
        (
            no_is_regex.to_string(),
            422,
            json!({"code": 602, "message": "matchers.0.isRegex in body is required"}),
        ),
        (regex.to_string(), 400, json!("refused")),
    ];
    for (body, status, want) in cases {
        let resp = http
            .post(url.clone())
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{body}");
        let got: Value = resp.json().await.unwrap();
        match want {
            Value::Object(_) => assert_eq!(got, want, "{body}"),
            Value::Number(code) => assert_eq!(got["code"], json!(code), "{body}"),
            _ => assert!(got.is_string(), "{body}: {got}"),
        }
    }
    assert!(am.silences().is_empty());
    // A path id that is not a UUID: go-swagger's 422; an unknown one: 404 with no body.
    let bad = http
        .get(am.base_url().join("api/v2/silence/not-a-uuid").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);
    let unknown = http
        .delete(
            am.base_url()
                .join("api/v2/silence/0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11")
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    assert_eq!(unknown.text().await.unwrap(), "");
    // The good one passes, with its start moved to now when it is in the past.
    let mut earlier = good.clone();
    earlier["startsAt"] = json!((now - chrono::Duration::minutes(5)).to_rfc3339());
    let ok = http.post(url).json(&earlier).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let id: Value = ok.json().await.unwrap();
    assert!(SilenceId::parse(id["silenceID"].as_str().unwrap()).is_some());
    assert!(am.silences()[0].starts_at >= now);
}

// ---------------------------------------------------------------------------------------------
// The workflow when the store fails after Alertmanager accepted

/// The chat side, recording what it was asked to show.
#[derive(Default)]
struct Recorded {
    shown: Mutex<Vec<SilenceRecord>>,
}

#[async_trait]
impl SilenceChannel for Recorded {
    async fn thread_link(&self) -> Option<String> {
        Some("https://sim.slack.example/archives/C0ONCALL/p1800000000000001".into())
    }
    async fn show(&self, silence: &SilenceRecord) -> anyhow::Result<String> {
        self.shown.lock().unwrap().push(silence.clone());
        Ok("1800000000.999999".into())
    }
}

#[tokio::test]
async fn a_silence_the_store_cannot_record_is_expired_again_and_said() {
    let am = sim::alertmanager::start(Some(TOKEN)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let store = linkbot::store::open(&url).await.unwrap();
    // The store breaks between Alertmanager's answer and the row: every insert is refused.
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(
            "CREATE TRIGGER no_silences BEFORE INSERT ON silences \
             BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let mut clients = BTreeMap::new();
    clients.insert(Environment::Prod, client(&am, Some(TOKEN)));
    let silences = Silences::new(store.clone(), clients);
    let key = CheckKey {
        location: LocationId::parse("c1hk4ek107l5au5mq8hg").unwrap(),
        environment: Environment::Prod,
    };
    let thread = MessageRef {
        channel: ONCALL_CHANNEL.into(),
        ts: "1800000000.000001".into(),
    };
    let asked = Asked {
        actor: "U0ALICE",
        actor_name: "alice",
        key: &key,
        alert_name: ALERT_NAME,
        choice: SilenceFor::OneHour,
        thread: &thread,
    };
    let chat = Recorded::default();
    let Silenced::NotRecorded {
        silence_id,
        expired,
    } = silences.silence(&asked, &chat).await
    else {
        panic!("the silence was not reported unrecorded");
    };
    assert!(expired.is_ok(), "{expired:?}");
    let reqs = am.requests();
    let calls: Vec<(String, String)> = reqs
        .iter()
        .map(|r| (r.method.to_string(), r.path.clone()))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST".to_string(), "/api/v2/silences".to_string()),
            (
                "DELETE".to_string(),
                format!("/api/v2/silence/{silence_id}")
            ),
        ]
    );
    assert_eq!(am.silences()[0].state(Utc::now()), "expired");
    assert!(
        chat.shown.lock().unwrap().is_empty(),
        "an unrecorded silence was shown"
    );
    assert_eq!(store.silence(silence_id.as_str()).await.unwrap(), None);
    let audit = store.audit(None, None, 10).await.unwrap();
    assert_eq!(audit[0].kind, AuditKind::Silence);
    assert!(
        audit[0]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("expired again"),
        "{audit:?}"
    );
    let said = linkbot::slack::blocks::silence_not_recorded(silence_id.as_str(), None);
    assert!(said.contains("expired it again"), "{said}");

    // Without an alertmanager_url for the environment nothing is asked of anyone.
    let stage = CheckKey {
        environment: Environment::Stage,
        ..key.clone()
    };
    let asked = Asked {
        key: &stage,
        ..asked
    };
    assert!(matches!(
        silences.silence(&asked, &chat).await,
        Silenced::NotConfigured
    ));
    assert_eq!(am.requests().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// The bot end to end

struct Harness {
    world: World,
    bot: RunningBot,
}

async fn start() -> Harness {
    // The log capture is installed before the bot logs anything (`finish` searches it).
    common::logs();
    let world = World::start().await.expect("the simulated world starts");
    let config = world
        .config(&world.sqlite_url("bot"))
        .expect("the simulated bot.toml is valid");
    let connections = config.slack.connections;
    let options = crate::common::bot_options("silence-test");
    let bot = app::start(Arc::new(config), world.secrets(), options)
        .await
        .expect("the bot starts");
    assert!(bot.wait_connected(connections, WAIT).await);
    Harness { world, bot }
}

fn alert_text(loc: &LocationId) -> String {
    format!("Labels:\n - alertname = {ALERT_NAME}\n - cluster_id = {loc}\n - severity = critical")
}

impl Harness {
    async fn push(&self, envelope: Value) {
        self.world
            .slack
            .push(envelope)
            .await
            .expect("a live Socket Mode connection");
    }

    /// `@linkbot check <loc>` by the engineer as user message `n`; its verdict.
    async fn checked(&self, loc: &LocationId, n: u32) -> (String, SimMessage) {
        let ts = World::user_ts(n);
        let text = format!("<@{}> check {loc}", fake::SIM_BOT_USER_ID);
        self.push(fake::app_mention(ONCALL_CHANNEL, ENGINEER, &text, &ts))
            .await;
        let verdict = self
            .world
            .wait_verdicts(ONCALL_CHANNEL, &ts, 1, WAIT)
            .await
            .expect("a verdict")
            .pop()
            .expect("one verdict");
        (ts, verdict)
    }

    /// Chooses `choice` in the "Silence…" select of `message`, as `user`, with the option the
    /// message offers (or `forged`, when given, as a forger would send it).
    async fn choose(
        &self,
        thread: &str,
        message: &SimMessage,
        choice: SilenceFor,
        user: &str,
        forged: Option<&str>,
    ) {
        let option = silence_options(message)
            .into_iter()
            .find(|(_, v)| SilenceValue::parse(v).is_some_and(|(_, _, c)| c == choice))
            .expect("the message offers the choice");
        let value = forged.map(str::to_string).unwrap_or(option.1);
        self.push(fake::select_action(
            ONCALL_CHANNEL,
            user,
            &message.ts,
            BLOCK_SILENCE,
            ACTION_SILENCE,
            &option.0,
            &value,
            Some(thread),
        ))
        .await;
    }

    /// Clicks Unsilence on `message` as `user`.
    async fn unsilence(&self, thread: &str, message: &SimMessage, user: &str) {
        let value = message
            .blocks
            .iter()
            .flat_map(|b| b.as_array().into_iter().flatten())
            .filter(|b| b["block_id"] == BLOCK_UNSILENCE)
            .flat_map(|b| b["elements"].as_array().into_iter().flatten())
            .find_map(|e| e["value"].as_str().map(str::to_string))
            .expect("an Unsilence button");
        self.push(fake::block_actions(
            ONCALL_CHANNEL,
            user,
            &message.ts,
            ACTION_UNSILENCE,
            &value,
            Some(thread),
        ))
        .await;
    }

    /// Waits for a visible message in `thread` whose text contains `needle`.
    async fn wait_text(&self, thread: &str, needle: &str) -> SimMessage {
        let found = |m: &SimMessage| {
            m.channel == ONCALL_CHANNEL
                && m.thread_ts.as_deref() == Some(thread)
                && m.ephemeral_to.is_none()
                && m.text.as_deref().unwrap_or("").contains(needle)
        };
        let ok = self
            .world
            .slack
            .wait_until(|s| s.messages().iter().any(found), WAIT)
            .await;
        assert!(
            ok,
            "{needle:?} never appeared in thread {thread}:\n{}",
            self.world
                .thread(ONCALL_CHANNEL, thread)
                .iter()
                .map(world::render_message)
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        self.world
            .slack
            .messages()
            .into_iter()
            .find(found)
            .expect("just seen")
    }

    /// Waits until message `ts` shows `needle`.
    async fn wait_shown(&self, ts: &str, needle: &str) -> SimMessage {
        let ok = self
            .world
            .slack
            .wait_until(
                |s| {
                    s.message(ONCALL_CHANNEL, ts)
                        .is_some_and(|m| format!("{:?} {:?}", m.text, m.blocks).contains(needle))
                },
                WAIT,
            )
            .await;
        assert!(ok, "message {ts} never showed {needle:?}");
        self.world
            .slack
            .messages()
            .into_iter()
            .find(|m| m.ts == ts && m.ephemeral_to.is_none())
            .expect("the message")
    }

    /// Waits until message `ts` offers Unsilence (once the store knows the message); returns it.
    async fn wait_unsilence_offered(&self, ts: &str) -> SimMessage {
        let ok = self
            .world
            .slack
            .wait_until(
                |s| {
                    s.message(ONCALL_CHANNEL, ts)
                        .is_some_and(|m| unsilence_buttons(m) == 1)
                },
                WAIT,
            )
            .await;
        assert!(ok, "message {ts} never offered Unsilence");
        self.world
            .slack
            .messages()
            .into_iter()
            .find(|m| m.ts == ts && m.ephemeral_to.is_none())
            .expect("the message")
    }

    /// Waits until `user` was shown `n` ephemeral messages; returns them.
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

    /// Nothing Slack was sent or logged carries a secret; Slack refused nothing; the bot stops.
    async fn finish(self) {
        let secrets = self.world.all_secret_values();
        let am_token = self.world.secrets().alertmanager_token.unwrap();
        assert!(secrets.iter().any(|s| s == am_token.expose()));
        for m in self.world.slack.messages() {
            let text = format!("{:?}", m.versions);
            for s in &secrets {
                assert!(
                    !text.contains(s.as_str()),
                    "a secret reached Slack in {}",
                    m.ts
                );
            }
        }
        for method in [
            "chat.postMessage",
            "chat.update",
            "chat.postEphemeral",
            "chat.getPermalink",
        ] {
            for params in self.world.slack.calls(method) {
                assert!(!params.to_string().contains(am_token.expose()), "{method}");
            }
        }
        assert!(
            !common::all_logs().contains(am_token.expose()),
            "ALERTMANAGER_TOKEN was logged"
        );
        let refusals = self.world.slack.refusals();
        assert!(
            refusals.is_empty(),
            "Slack refused what the bot sent: {refusals:#?}"
        );
        tokio::time::timeout(Duration::from_secs(10), self.bot.stop())
            .await
            .expect("the bot stops within its bound");
    }
}

/// The options a message's "Silence…" select offers: (text, value).
fn silence_options(m: &SimMessage) -> Vec<(String, String)> {
    m.blocks
        .iter()
        .flat_map(|b| b.as_array().into_iter().flatten())
        .filter(|b| b["block_id"] == BLOCK_SILENCE)
        .flat_map(|b| b["elements"].as_array().into_iter().flatten())
        .filter(|e| e["type"] == "static_select" && e["action_id"] == ACTION_SILENCE)
        .flat_map(|e| e["options"].as_array().into_iter().flatten())
        .filter_map(|o| {
            Some((
                o["text"]["text"].as_str()?.to_string(),
                o["value"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// The Unsilence buttons a message offers now.
fn unsilence_buttons(m: &SimMessage) -> usize {
    m.blocks
        .iter()
        .flat_map(|b| b.as_array().into_iter().flatten())
        .flat_map(|b| b["elements"].as_array().into_iter().flatten())
        .filter(|e| e["action_id"] == ACTION_UNSILENCE)
        .count()
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("a time"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_call_member_silences_from_the_thread_and_unsilences() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let (thread, verdict) = h.checked(&loc, 1).await;
    let offered: Vec<String> = silence_options(&verdict)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        offered,
        [
            "1 hour",
            "4 hours",
            "24 hours",
            "Until resolved (at most 7 days)"
        ]
    );
    assert!(world::render_message(&verdict).contains("[Silence… ▾]"));

    let before = Utc::now();
    let started = std::time::Instant::now();
    h.choose(&thread, &verdict, SilenceFor::FourHours, ENGINEER, None)
        .await;
    let notice = h.wait_text(&thread, "silenced the alert").await;
    let after = Utc::now();
    let notice = h.wait_unsilence_offered(&notice.ts).await;
    println!(
        "silence: choice pushed → Alertmanager called and the thread shows it with Unsilence in {:?}",
        started.elapsed()
    );

    // Alertmanager received exactly this silence.
    let reqs = h.world.alertmanager.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path.as_str()),
        ("POST", "/api/v2/silences")
    );
    let body = reqs[0].json().expect("JSON");
    assert_eq!(
        body["matchers"],
        json!([
            {"name": "alertname", "value": ALERT_NAME, "isRegex": false, "isEqual": true},
            {"name": "cluster_id", "value": loc.as_str(), "isRegex": false, "isEqual": true}
        ])
    );
    let (starts, ends) = (time(&body["startsAt"]), time(&body["endsAt"]));
    assert!(
        starts >= before - chrono::Duration::milliseconds(1) && starts <= after,
        "{starts}"
    );
    assert_eq!(ends - starts, chrono::Duration::hours(4));
    let name = ENGINEER.to_lowercase();
    assert_eq!(body["createdBy"], format!("{name} ({ENGINEER})"));
    let comment = body["comment"].as_str().unwrap();
    let permalink = format!("/archives/{ONCALL_CHANNEL}/p{}", thread.replace('.', ""));
    assert!(
        comment.contains(&permalink),
        "no thread permalink in {comment:?}"
    );
    assert!(comment.contains(loc.as_str()), "{comment}");

    // The thread shows who, until when (HH:MM UTC) and the id, with Unsilence.
    let sim_silence = h.world.alertmanager.silences().pop().expect("a silence");
    let text = notice.text.clone().unwrap_or_default();
    assert!(text.contains(&format!("<@{ENGINEER}>")), "{text}");
    assert!(
        text.contains(&format!("*{} UTC*", ends.format("%H:%M"))),
        "{text}"
    );
    assert!(text.contains(&sim_silence.id), "{text}");
    assert_eq!(unsilence_buttons(&notice), 1);
    let record = h
        .bot
        .store
        .silence(&sim_silence.id)
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(record.created_by, ENGINEER);
    assert_eq!(record.starts_at, starts);
    assert_eq!(record.ends_at, ends);
    assert!(record.active && !record.until_resolved);
    assert_eq!(
        record.message.as_ref().map(|m| m.ts.as_str()),
        Some(notice.ts.as_str())
    );

    // Someone off call clicks Unsilence: refused, nothing asked of Alertmanager.
    h.unsilence(&thread, &notice, VISITOR).await;
    let refused = h.ephemerals(VISITOR, 1).await;
    assert!(
        refused[0].text.as_deref().unwrap_or("").contains("on-call"),
        "{refused:?}"
    );
    assert_eq!(
        h.world.alertmanager.requests().len(),
        1,
        "a non-member reached Alertmanager"
    );

    // Unsilence: DELETE, the silence expired, the message says by whom, without the button.
    h.unsilence(&thread, &notice, ENGINEER).await;
    let expired = h.wait_shown(&notice.ts, "was expired by").await;
    assert_eq!(unsilence_buttons(&expired), 0);
    let reqs = h.world.alertmanager.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].method, "DELETE");
    assert_eq!(reqs[1].path, format!("/api/v2/silence/{}", sim_silence.id));
    assert_eq!(
        h.world.alertmanager.silences()[0].state(Utc::now()),
        "expired"
    );
    let record = h.bot.store.silence(&sim_silence.id).await.unwrap().unwrap();
    assert!(!record.active);
    assert_eq!(record.expired_by.as_deref(), Some(ENGINEER));

    // A second click on a stale copy: already expired, no call.
    h.unsilence(&thread, &notice, ENGINEER).await;
    let told = h.ephemerals(ENGINEER, 1).await;
    assert!(
        told[0]
            .text
            .as_deref()
            .unwrap_or("")
            .contains("already expired"),
        "{told:?}"
    );
    assert_eq!(h.world.alertmanager.requests().len(), 2);

    // Both are in the audit log.
    let audit = h.bot.store.audit(None, Some(&loc), 20).await.unwrap();
    let kinds: Vec<AuditKind> = audit.iter().map(|e| e.kind).collect();
    assert!(
        kinds.contains(&AuditKind::Silence) && kinds.contains(&AuditKind::Unsilence),
        "{kinds:?}"
    );
    assert!(
        audit
            .iter()
            .any(|e| e.kind == AuditKind::RefusedAction && e.actor.as_deref() == Some(VISITOR)),
        "the refused Unsilence is not audited: {audit:?}"
    );
    let silenced = audit.iter().find(|e| e.kind == AuditKind::Silence).unwrap();
    assert_eq!(silenced.actor.as_deref(), Some(ENGINEER));
    assert_eq!(silenced.target.as_deref(), Some("4h"));
    assert!(silenced
        .link
        .as_deref()
        .unwrap_or("")
        .contains(&sim_silence.id));
    let table = linkbot::audit_table::render_audit(&audit);
    assert!(
        table.contains("silence ") && table.contains("unsilence"),
        "{table}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_member_and_a_forged_choice_are_refused_with_no_call_to_alertmanager() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let (thread, verdict) = h.checked(&loc, 1).await;

    // Someone off call.
    h.choose(&thread, &verdict, SilenceFor::OneHour, VISITOR, None)
        .await;
    let refused = h.ephemerals(VISITOR, 1).await;
    assert!(
        refused[0].text.as_deref().unwrap_or("").contains("on-call"),
        "{refused:?}"
    );

    // An on-call member sending a choice the message did not offer: another location.
    let other = world::location_for(VerdictCode::ConfigMissing, 7);
    let forged = serde_json::to_string(&SilenceValue {
        location: other.to_string(),
        environment: Environment::Prod,
        choice: "1h".into(),
    })
    .unwrap();
    h.choose(
        &thread,
        &verdict,
        SilenceFor::OneHour,
        ENGINEER,
        Some(&forged),
    )
    .await;
    let told = h.ephemerals(ENGINEER, 1).await;
    assert!(
        told[0]
            .text
            .as_deref()
            .unwrap_or("")
            .contains("does not match"),
        "{told:?}"
    );
    // A forged Unsilence value on the verdict (which shows no silence).
    let value = serde_json::to_string(&UnsilenceValue {
        silence_id: "0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11".into(),
    })
    .unwrap();
    h.push(fake::block_actions(
        ONCALL_CHANNEL,
        ENGINEER,
        &verdict.ts,
        ACTION_UNSILENCE,
        &value,
        Some(&thread),
    ))
    .await;
    h.ephemerals(ENGINEER, 2).await;

    // Each was answered, so none can still reach Alertmanager.
    assert!(
        h.world.alertmanager.requests().is_empty(),
        "Alertmanager was called"
    );
    let audit = h.bot.store.audit(None, None, 20).await.unwrap();
    let refusals: Vec<_> = audit
        .iter()
        .filter(|e| e.kind == AuditKind::RefusedAction)
        .collect();
    assert_eq!(refusals.len(), 2, "{audit:?}");
    assert!(refusals
        .iter()
        .any(|e| e.actor.as_deref() == Some(VISITOR) && e.location == loc));
    assert!(refusals
        .iter()
        .any(|e| e.actor.as_deref() == Some(ENGINEER) && e.location == other));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolving_the_incident_expires_its_silences_and_says_so() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::RegionMismatch, 0);
    let alert_ts = World::user_ts(1);
    h.push(fake::message(
        ONCALL_CHANNEL,
        &alert_text(&loc),
        &alert_ts,
        Some(ALERT_BOT),
        Some("A0ALERTMGR"),
        None,
    ))
    .await;
    let verdict = h
        .world
        .wait_verdicts(ONCALL_CHANNEL, &alert_ts, 1, WAIT)
        .await
        .expect("the alert's diagnosis")
        .pop()
        .unwrap();
    h.choose(
        &alert_ts,
        &verdict,
        SilenceFor::UntilResolved,
        ENGINEER,
        None,
    )
    .await;
    let notice = h.wait_text(&alert_ts, "until the incident resolves").await;
    let notice = h.wait_unsilence_offered(&notice.ts).await;
    let body = h.world.alertmanager.requests()[0].json().unwrap();
    assert_eq!(
        time(&body["endsAt"]) - time(&body["startsAt"]),
        chrono::Duration::days(7)
    );
    let id = h.world.alertmanager.silences()[0].id.clone();
    assert_eq!(
        h.world.alertmanager.silences()[0].state(Utc::now()),
        "active"
    );

    // [RESOLVED]: the silence expired in Alertmanager, the reply says so, the notice too.
    let resolved_ts = World::user_ts(2);
    h.push(fake::message(
        ONCALL_CHANNEL,
        &format!("[RESOLVED]\n{}", alert_text(&loc)),
        &resolved_ts,
        Some(ALERT_BOT),
        Some("A0ALERTMGR"),
        None,
    ))
    .await;
    let reply = h.wait_text(&resolved_ts, "Resolved at").await;
    let text = reply.text.unwrap_or_default();
    assert!(
        text.contains("Expired the silence linkbot created"),
        "{text}"
    );
    assert!(text.contains(&id), "{text}");
    assert_eq!(
        h.world.alertmanager.silences()[0].state(Utc::now()),
        "expired"
    );
    let deletes: Vec<_> = h
        .world
        .alertmanager
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].path, format!("/api/v2/silence/{id}"));
    let shown = h.wait_shown(&notice.ts, "expired by linkbot").await;
    assert_eq!(unsilence_buttons(&shown), 0);
    let record = h.bot.store.silence(&id).await.unwrap().unwrap();
    assert_eq!(record.expired_by.as_deref(), Some("linkbot"));
    // The resolved diagnosis no longer offers Silence….
    let diagnosis = h.wait_shown(&verdict.ts, "Resolved at").await;
    assert!(silence_options(&diagnosis).is_empty());
    let timeline = linkbot::incident::timeline(h.bot.store.as_ref(), &loc)
        .await
        .unwrap()
        .unwrap();
    assert!(
        timeline.events.iter().any(|e| e.event.kind == "silence"),
        "{timeline:?}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanagers_400_and_500_are_one_clear_sentence_in_the_thread() {
    let h = start().await;
    let loc = h.world.scenario(VerdictCode::ApiKeyInvalid, 0);
    let (thread, verdict) = h.checked(&loc, 1).await;

    h.world.alertmanager.answer_next(
        400,
        "\"Failed to create silence: end time can't be in the past\"",
    );
    h.choose(&thread, &verdict, SilenceFor::OneHour, ENGINEER, None)
        .await;
    let said = h.wait_text(&thread, "HTTP 400").await;
    assert_eq!(
        said.text.unwrap_or_default(),
        format!(":x: <@{ENGINEER}> asked to silence this alert, but it was not silenced: Alertmanager refused the request (HTTP 400: Failed to create silence: end time can't be in the past).")
    );

    h.world
        .alertmanager
        .answer_next(500, "\"<!channel> storage failed\"");
    h.choose(&thread, &verdict, SilenceFor::OneHour, ENGINEER, None)
        .await;
    let said = h.wait_text(&thread, "HTTP 500").await;
    let text = said.text.unwrap_or_default();
    assert!(
        text.contains("Alertmanager failed (HTTP 500: &lt;!channel&gt; storage failed)"),
        "{text}"
    );
    assert!(!text.contains("<!channel>"), "{text}");

    assert!(h.world.alertmanager.silences().is_empty());
    let audit = h.bot.store.audit(None, Some(&loc), 20).await.unwrap();
    let failed = audit
        .iter()
        .filter(|e| {
            e.kind == AuditKind::Silence && e.detail.as_deref().unwrap_or("").starts_with("failed")
        })
        .count();
    assert_eq!(failed, 2, "{audit:?}");
    h.finish().await;
}
