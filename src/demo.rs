//! `linkbot demo`: the real bot, in process, against simulated Slack, directory, Jenkins, IAM,
//! PagerDuty, GitHub and Alertmanager on loopback — one scenario per verdict, escalations, an
//! incident, silences, "Was this right?" feedback (👍, and 👎 with its form submitted), and an
//! alert storm (30 stage locations while IAM is down, default `[storm]`) — printed as
//! transcripts.
//!
//! Nothing here is a shortcut around the product: the bot is started with [`crate::app::start`]
//! exactly as `linkbot run` starts it, and every envelope goes over a real WebSocket. This
//! module only scripts what people and Alertmanager do, and prints what Slack shows.

use crate::app::{self, Options};
use crate::diagnosis::verdict::VerdictCode;
use crate::sim::slack as fake;
use crate::sim::world::{
    self, World, ALERT_BOT, ENGINEER, ONCALL_CHANNEL, RAZEE_CHANNEL, SATLINK_CHANNEL, VISITOR,
};
use crate::slack::blocks::{
    ButtonValue, SilenceValue, ACTION_ESCALATE, ACTION_FEEDBACK_DOWN, ACTION_FEEDBACK_UP,
    ACTION_PAGE, ACTION_RERUN, ACTION_SILENCE, ACTION_UNSILENCE, BLOCK_SILENCE,
};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// How a scenario reaches the bot.
enum Trigger {
    Mention,
    Slash,
    AlertText,
    AlertAttachment,
}

struct Scenario {
    verdict: VerdictCode,
    trigger: Trigger,
    story: &'static str,
}

const SCENARIOS: [Scenario; 9] = [
    Scenario {
        verdict: VerdictCode::ConfigMissing,
        trigger: Trigger::AlertAttachment,
        story: "Alertmanager fires; the storage secret has no iam_api_key",
    },
    Scenario {
        verdict: VerdictCode::RegionMismatch,
        trigger: Trigger::AlertText,
        story: "the seed's text alert; the ConfigMap says us-south for a us-east tugboat",
    },
    Scenario {
        verdict: VerdictCode::ApiKeyInvalid,
        trigger: Trigger::Mention,
        story: "an engineer asks; key present, region right, IAM rejects the key",
    },
    Scenario {
        verdict: VerdictCode::ApiKeyAccepted,
        trigger: Trigger::Slash,
        story: "/linkbot check; IAM accepts the key, so it is not a key problem",
    },
    Scenario {
        verdict: VerdictCode::IamUnreachable,
        trigger: Trigger::Mention,
        story: "key present, region right, IAM answers 503",
    },
    Scenario {
        verdict: VerdictCode::UnknownLocation,
        trigger: Trigger::Mention,
        story: "a typo'd location the directory does not know",
    },
    Scenario {
        verdict: VerdictCode::LookupFailed,
        trigger: Trigger::Mention,
        story: "the directory answers 500",
    },
    Scenario {
        verdict: VerdictCode::JobFailed,
        trigger: Trigger::Mention,
        story: "the Jenkins build fails",
    },
    Scenario {
        verdict: VerdictCode::ArtifactMissing,
        trigger: Trigger::Mention,
        story: "the build has no connector_sl_configMap.log",
    },
];

fn rule(out: &mut dyn Write, title: &str) -> Result<()> {
    writeln!(out, "\n{}\n{title}\n{}", "═".repeat(96), "═".repeat(96))?;
    Ok(())
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| format!("{by}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the demo, writing the transcripts to `out`.
pub async fn run(out: &mut dyn Write) -> Result<()> {
    app::rustls_provider();
    let started = Instant::now();
    let world = World::start().await?;
    let config = Arc::new(world.config(&world.sqlite_url("demo"))?);
    let options = Options {
        lease: Duration::from_secs(10),
        resume_every: Duration::from_secs(2),
        shutdown_bound: Duration::from_secs(5),
        listen: Some(([127, 0, 0, 1], 0).into()),
        instance: "demo".into(),
        pace_slack: false,
        slack_edits: None,
    };
    let bot = app::start(config.clone(), world.secrets(), options).await?;
    if !bot.wait_connected(1, WAIT).await {
        bail!("the bot did not connect to the simulated Slack");
    }
    writeln!(out, "linkbot demo — the real bot against simulated Slack, cluster directory, Jenkins, IAM, PagerDuty and GitHub on 127.0.0.1")?;
    writeln!(
        out,
        "Slack {}  ·  ops server http://{}/metrics  ·  on-call channel {ONCALL_CHANNEL}",
        world.slack.base_url(),
        bot.ops_addr
    )?;

    let mut threads = Vec::new();
    for (i, s) in SCENARIOS.iter().enumerate() {
        let n = i as u32 + 1;
        let loc = world.scenario(s.verdict, 0);
        world
            .iam
            .set_unavailable(s.verdict == VerdictCode::IamUnreachable);
        let ts = World::user_ts(n);
        let (who, said, thread) = match s.trigger {
            Trigger::Mention => {
                let text = format!("<@{}> check {loc}", fake::SIM_BOT_USER_ID);
                world
                    .slack
                    .push(fake::app_mention(ONCALL_CHANNEL, ENGINEER, &text, &ts))
                    .await?;
                (format!("<@{ENGINEER}>"), text, ts)
            }
            Trigger::AlertText => {
                let text = format!(
                    "Labels:\n - alertname = SatelliteLinkConnectorDeployCannotgetIAMTokenFromIAMServer\n - alert_situation = SatelliteLinkConnectorDeployCannotgetIAMTokenFromIAMServer\n - service = satellite-link\n - severity = critical\n - cluster_id = {loc}\n - namespace = satellite-link\nAnnotations:\n - summary = \"Link connector is rebooting : no IAM Token can be retrieved from IAM Server\""
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
                    .await?;
                ("alertmanager".into(), text, ts)
            }
            Trigger::AlertAttachment => {
                let attachments = json!([{
                    "color": "danger",
                    "title": "[FIRING:1] SatelliteLinkConnectorDeployCannotgetIAMTokenFromIAMServer (critical satellite-link)",
                    "text": format!("*Alert:* Link connector is rebooting : no IAM Token can be retrieved from IAM Server\n*Details:*\n  • *alertname:* `SatelliteLinkConnectorDeployCannotgetIAMTokenFromIAMServer`\n  • *cluster_id:* `{loc}`\n  • *severity:* `critical`"),
                    "fallback": "[FIRING:1] SatelliteLinkConnectorDeployCannotgetIAMTokenFromIAMServer",
                }]);
                world
                    .slack
                    .push(fake::message(
                        ONCALL_CHANNEL,
                        "",
                        &ts,
                        Some(ALERT_BOT),
                        Some("A0ALERTMGR"),
                        Some(attachments.clone()),
                    ))
                    .await?;
                (
                    "alertmanager".into(),
                    format!(
                        "(attachment) {}",
                        attachments[0]["title"].as_str().unwrap_or("")
                    ),
                    ts,
                )
            }
            Trigger::Slash => {
                let before = world.slack.messages().len();
                world
                    .slack
                    .push(fake::slash_command(
                        ONCALL_CHANNEL,
                        ENGINEER,
                        "/linkbot",
                        &format!("check {loc}"),
                    ))
                    .await?;
                let root = wait_root(&world, before, loc.as_str()).await?;
                (
                    format!("<@{ENGINEER}>"),
                    format!("/linkbot check {loc}"),
                    root,
                )
            }
        };
        let verdicts = world
            .wait_verdicts(ONCALL_CHANNEL, &thread, 1, WAIT)
            .await
            .with_context(|| format!("no verdict for {} within {WAIT:?}", s.verdict))?;
        let shown = world::verdict_code(&verdicts[0]);
        if shown != Some(s.verdict) {
            bail!("scenario {} ended in {shown:?}", s.verdict);
        }
        rule(out, &format!("{n}. {} — {}", s.verdict, s.story))?;
        writeln!(out, "{who}: {}", indent(&said, "  ").trim_start())?;
        print_thread(out, &world, &thread)?;
        threads.push((s.verdict, loc, thread));
    }
    world.iam.set_unavailable(false);

    // Buttons: escalate config_missing to the Razee team, page and open an issue for the bad key.
    let find = |v: VerdictCode| {
        threads
            .iter()
            .find(|t| t.0 == v)
            .cloned()
            .context("scenario thread")
    };
    let (_, loc, thread) = find(VerdictCode::ConfigMissing)?;
    click(
        &world,
        &thread,
        &loc,
        ACTION_ESCALATE,
        Some("razee"),
        ENGINEER,
    )
    .await?;
    wait_text(&world, &thread, "escalated to").await?;
    rule(
        out,
        "10. Escalate → Razee team (button), by an on-call engineer",
    )?;
    print_thread(out, &world, &thread)?;
    print_channel(out, &world, RAZEE_CHANNEL)?;

    let (_, loc, thread) = find(VerdictCode::ApiKeyInvalid)?;
    click(
        &world,
        &thread,
        &loc,
        ACTION_PAGE,
        Some("satellite_link"),
        ENGINEER,
    )
    .await?;
    wait_text(&world, &thread, "PagerDuty").await?;
    click(
        &world,
        &thread,
        &loc,
        ACTION_ESCALATE,
        Some("satellite_link"),
        ENGINEER,
    )
    .await?;
    wait_text(&world, &thread, "opened").await?;
    click(
        &world,
        &thread,
        &loc,
        ACTION_ESCALATE,
        Some("satellite_link"),
        VISITOR,
    )
    .await?;
    wait_ephemeral(&world, VISITOR).await?;
    rule(
        out,
        "11. Page (CIE) and Escalate → Satellite Link squad; a visitor's click is refused",
    )?;
    print_thread(out, &world, &thread)?;
    for m in world
        .slack
        .messages()
        .iter()
        .filter(|m| m.ephemeral_to.as_deref() == Some(VISITOR))
    {
        writeln!(
            out,
            "  (only {VISITOR} sees) {}",
            m.text.as_deref().unwrap_or("")
        )?;
    }
    if let Some(page) = world.pagerduty.requests().last().and_then(|r| r.json()) {
        writeln!(
            out,
            "\n  PagerDuty received: event_action={} dedup_key={} summary={:?}",
            page["event_action"], page["dedup_key"], page["payload"]["summary"]
        )?;
    }
    for issue in world.github.issues() {
        writeln!(
            out,
            "  GitHub issue opened in {} #{}: {:?}",
            issue.repo, issue.number, issue.title
        )?;
        let steps = issue.body.lines().filter(|l| l.starts_with("### ")).count();
        writeln!(out, "    its body carries {steps} runbook steps with their evidence, the next actions and the links")?;
    }
    print_channel(out, &world, SATLINK_CHANNEL)?;

    // Re-run, a resolved alert and a redelivered envelope.
    let builds_before = world.jenkins.triggers().len();
    let (_, loc, thread) = find(VerdictCode::RegionMismatch)?;
    click(&world, &thread, &loc, ACTION_RERUN, None, ENGINEER).await?;
    world
        .wait_verdicts(ONCALL_CHANNEL, &thread, 2, WAIT)
        .await
        .context("the re-run gave no second verdict")?;
    let resolved_ts = World::user_ts(90);
    world
        .slack
        .push(fake::message(
            ONCALL_CHANNEL,
            &format!("[RESOLVED]\nLabels:\n - alertname = SatelliteLinkConnectorDeployCannotgetIAMTokenFromIAMServer\n - cluster_id = {loc}"),
            &resolved_ts,
            Some(ALERT_BOT),
            Some("A0ALERTMGR"),
            None,
        ))
        .await?;
    let mention = fake::app_mention(
        ONCALL_CHANNEL,
        ENGINEER,
        &format!("<@{}> check {loc}", fake::SIM_BOT_USER_ID),
        &World::user_ts(91),
    );
    let id = world.slack.push(mention.clone()).await?;
    let retry = fake::with_retry(&mention, 1);
    let retry_id = world.slack.push(retry).await?;
    world.slack.wait_ack(&id, WAIT).await.context("no ack")?;
    world
        .slack
        .wait_ack(&retry_id, WAIT)
        .await
        .context("no ack for the redelivery")?;
    world
        .wait_verdicts(ONCALL_CHANNEL, &World::user_ts(91), 1, WAIT)
        .await
        .context("no answer to the mention")?;
    rule(
        out,
        "12. Re-run, a [RESOLVED] alert, and a Slack redelivery",
    )?;
    writeln!(out, "Re-run (button) on the region_mismatch thread: a fresh build ran and a second verdict was posted.")?;
    writeln!(
        out,
        "[RESOLVED] alert: no check; {} bot message(s) in its thread (the pointer to the resolved diagnosis).",
        world.thread(ONCALL_CHANNEL, &resolved_ts).len()
    )?;
    writeln!(
        out,
        "Mention + its redelivery (retry_attempt=1): {} answer(s) in the thread; the fresh result was reused, not rebuilt.",
        world.thread(ONCALL_CHANNEL, &World::user_ts(91)).len()
    )?;
    writeln!(
        out,
        "Jenkins builds for these three: {}",
        world.jenkins.triggers().len() - builds_before
    )?;

    // 13. One incident from first firing to resolution (issue 10).
    let loc = world.scenario(VerdictCode::ApiKeyInvalid, 7);
    let alert_text = format!("Labels:\n - alertname = SatelliteLinkConnectorDeployCannotgetIAMTokenFromIAMServer\n - severity = critical\n - cluster_id = {loc}");
    let alert_ts = World::user_ts(100);
    let push_alert = |text: String, ts: String| {
        fake::message(
            ONCALL_CHANNEL,
            &text,
            &ts,
            Some(ALERT_BOT),
            Some("A0ALERTMGR"),
            None,
        )
    };
    world
        .slack
        .push(push_alert(alert_text.clone(), alert_ts.clone()))
        .await?;
    world
        .wait_verdicts(ONCALL_CHANNEL, &alert_ts, 1, WAIT)
        .await
        .context("no diagnosis for the incident's alert")?;
    let repeat_ts = World::user_ts(101);
    world
        .slack
        .push(push_alert(alert_text.clone(), repeat_ts.clone()))
        .await?;
    wait_text(&world, &repeat_ts, "Fired again").await?;
    // Silenced for 4 hours from the thread, unsilenced, then silenced until it resolves.
    select_silence(&world, &alert_ts, "4h", ENGINEER).await?;
    wait_text(&world, &alert_ts, "silenced the alert").await?;
    click_unsilence(&world, &alert_ts, ENGINEER).await?;
    wait_text(&world, &alert_ts, "was expired by").await?;
    select_silence(&world, &alert_ts, "resolved", ENGINEER).await?;
    wait_text(&world, &alert_ts, "until the incident resolves").await?;
    click(
        &world,
        &alert_ts,
        &loc,
        ACTION_PAGE,
        Some("satellite_link"),
        ENGINEER,
    )
    .await?;
    wait_text(&world, &alert_ts, "PagerDuty").await?;
    click(
        &world,
        &alert_ts,
        &loc,
        ACTION_ESCALATE,
        Some("satellite_link"),
        ENGINEER,
    )
    .await?;
    wait_text(&world, &alert_ts, "opened").await?;
    // The key is rotated; a re-run finds it working.
    world.set_scenario(
        &loc,
        VerdictCode::ApiKeyAccepted,
        crate::sim::jenkins::Behaviour::default(),
        true,
    );
    click(&world, &alert_ts, &loc, ACTION_RERUN, None, ENGINEER).await?;
    wait_text(&world, &alert_ts, "the key works").await?;
    let resolved_ts = World::user_ts(102);
    let resolving = Instant::now();
    world
        .slack
        .push(push_alert(
            format!("[RESOLVED]\n{alert_text}"),
            resolved_ts.clone(),
        ))
        .await?;
    wait_text(&world, &resolved_ts, "Resolved at").await?;
    let resolved_in = resolving.elapsed();
    let settled = world
        .slack
        .wait_until(|s| s.reactions().iter().any(|r| r.ts == alert_ts), WAIT)
        .await;
    if !settled {
        bail!("the resolved alert got no ✅");
    }
    let timeline = loop {
        let t = crate::incident::timeline(&*bot.store, &loc).await?;
        if let Some(t) = t.filter(|t| t.events.iter().any(|e| e.event.kind == "github_comment")) {
            break t;
        }
        if resolving.elapsed() > WAIT {
            bail!("the resolution never reached GitHub");
        }
        // The demo polls (bounded); the tests wait on the simulators' own signals.
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    rule(
        out,
        "13. An incident: alert → diagnosis, a repeat, silence + unsilence, page + issue, a fix found by a re-run, [RESOLVED]",
    )?;
    writeln!(out, "The alert's thread:")?;
    print_thread(out, &world, &alert_ts)?;
    writeln!(
        out,
        "The silence messages above, as they read while in force (before Unsilence / resolution):"
    )?;
    for m in world.thread(ONCALL_CHANNEL, &alert_ts) {
        // The version offering Unsilence: posted, then edited once the store knew the message.
        let Some(shown) = m
            .versions
            .iter()
            .find(|v| format!("{:?}", v.blocks).contains(ACTION_UNSILENCE))
        else {
            continue;
        };
        let as_shown = crate::sim::slack::SimMessage {
            text: shown.text.clone(),
            blocks: shown.blocks.clone(),
            ..m.clone()
        };
        writeln!(
            out,
            "{}",
            indent(&world::render_message(&as_shown), "    │ ")
        )?;
    }
    writeln!(out, "The repeat's thread:")?;
    print_thread(out, &world, &repeat_ts)?;
    writeln!(
        out,
        "The [RESOLVED] message's thread ({resolved_in:?} after it arrived):"
    )?;
    print_thread(out, &world, &resolved_ts)?;
    writeln!(
        out,
        "  reactions on the alert: {:?}",
        world
            .slack
            .reactions()
            .iter()
            .filter(|r| r.ts == alert_ts)
            .map(|r| r.name.clone())
            .collect::<Vec<_>>()
    )?;
    if let Some(resolve) = world.pagerduty.requests().last().and_then(|r| r.json()) {
        writeln!(
            out,
            "  PagerDuty received: event_action={} dedup_key={}",
            resolve["event_action"], resolve["dedup_key"]
        )?;
    }
    for r in world.alertmanager.requests() {
        let what = r
            .json()
            .map(|b| {
                format!(
                    " matchers={} startsAt={} endsAt={} createdBy={}",
                    b["matchers"], b["startsAt"], b["endsAt"], b["createdBy"]
                )
            })
            .unwrap_or_default();
        writeln!(
            out,
            "  Alertmanager received: {} {}{what}",
            r.method, r.path
        )?;
    }
    for issue in world.github.issues() {
        for c in &issue.comments {
            writeln!(
                out,
                "  GitHub comment on {} #{}: {c}",
                issue.repo, issue.number
            )?;
        }
    }
    writeln!(out, "Timeline (linkbot audit --location {loc} --timeline):")?;
    writeln!(
        out,
        "{}",
        indent(&crate::audit_table::render_timeline(&timeline), "  ")
    )?;

    // 14. "Was this right?" (issue 11): a 👍 by a visitor, a 👎 with its form by an engineer.
    let (_, loc, thread) = find(VerdictCode::ApiKeyInvalid)?;
    let diagnosis = world
        .thread(ONCALL_CHANNEL, &thread)
        .into_iter()
        .rev()
        .find(world::is_verdict)
        .context("no diagnosis to give feedback on")?;
    click(&world, &thread, &loc, ACTION_FEEDBACK_UP, None, VISITOR).await?;
    wait_shown(&world, &diagnosis.ts, "👍 1 · 👎 0").await?;
    let views_before = world.slack.views().len();
    click(&world, &thread, &loc, ACTION_FEEDBACK_DOWN, None, ENGINEER).await?;
    if !world
        .slack
        .wait_until(|s| s.views().len() > views_before, WAIT)
        .await
    {
        bail!("the 👎 form did not open");
    }
    let form = world
        .slack
        .views()
        .last()
        .cloned()
        .context("the opened form")?;
    let comment =
        "The key was fine; the ConfigMap said us-south. cluster-updater fixed it <!here>.";
    let answers = fake::view_state(
        &form,
        &[("actual", "region_mismatch"), ("comment", comment)],
    );
    world
        .slack
        .push(fake::view_submission(&form, ENGINEER, answers))
        .await?;
    wait_shown(&world, &diagnosis.ts, "👍 1 · 👎 1").await?;
    wait_ephemeral_saying(&world, ENGINEER, "Thanks — recorded").await?;
    rule(
        out,
        "14. Was this right? 👍 by a visitor; 👎 by an engineer, with the form saying what it was",
    )?;
    writeln!(
        out,
        "{VISITOR} clicked 👍 (no on-call membership needed); {ENGINEER} clicked 👎 and Slack showed the form:"
    )?;
    writeln!(out, "{}", indent(&render_form(&form.view), "    ▢ "))?;
    writeln!(
        out,
        "{ENGINEER} chose \"Improper region config\" and wrote: {comment:?}"
    )?;
    let shown = world
        .slack
        .messages()
        .into_iter()
        .find(|m| m.ts == diagnosis.ts)
        .context("the diagnosis")?;
    writeln!(out, "The diagnosis now ends with:")?;
    let rendered = world::render_message(&shown);
    let tail: Vec<&str> = rendered.lines().rev().take(2).collect();
    for line in tail.into_iter().rev() {
        writeln!(out, "    │ {line}")?;
    }
    for m in world.slack.messages().iter().filter(|m| {
        m.ephemeral_to.as_deref() == Some(ENGINEER)
            && m.text
                .as_deref()
                .unwrap_or("")
                .contains("Thanks — recorded")
    }) {
        writeln!(
            out,
            "  (only {ENGINEER} sees)\n{}",
            indent(&world::render_message(m), "    ")
        )?;
    }

    // 15. An alert storm (issue 12): IAM goes down, 30 stage locations fire within seconds.
    storm(out, &world, &bot).await?;

    rule(out, "Summary")?;
    let acks = world.slack.acks();
    let mut lat: Vec<Duration> = acks.iter().filter_map(|a| a.latency).collect();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    writeln!(
        out,
        "Scenarios: {} verdicts, every one as expected.",
        SCENARIOS.len()
    )?;
    writeln!(
        out,
        "Jenkins builds triggered: {}",
        world.jenkins.triggers().len()
    )?;
    writeln!(
        out,
        "Socket Mode envelopes acked: {} (p50 {:?}, max {:?})",
        acks.len(),
        pct(0.5),
        pct(1.0)
    )?;
    // The report of the demo's week, as `/linkbot report 7d` posts it in the channel.
    writeln!(out, "\n/linkbot report 7d — posted in the channel:")?;
    world
        .slack
        .push(fake::slash_command(
            ONCALL_CHANNEL,
            ENGINEER,
            "/linkbot",
            "report 7d",
        ))
        .await?;
    let is_report = |m: &fake::SimMessage| {
        m.thread_ts.is_none()
            && m.ephemeral_to.is_none()
            && m.text
                .as_deref()
                .unwrap_or("")
                .starts_with("linkbot report")
    };
    if !world
        .slack
        .wait_until(|s| s.messages().iter().any(is_report), WAIT)
        .await
    {
        bail!("/linkbot report 7d posted no report");
    }
    if let Some(m) = world.slack.messages().into_iter().find(is_report) {
        writeln!(out, "{}", indent(&world::render_message(&m), "  │ "))?;
    }

    let leaked: Vec<String> = world
        .all_secret_values()
        .into_iter()
        .filter(|s| {
            world
                .slack
                .messages()
                .iter()
                .any(|m| format!("{:?}{:?}", m.text, m.blocks).contains(s.as_str()))
        })
        .collect();
    writeln!(
        out,
        "Secrets found in any Slack message: {}",
        if leaked.is_empty() {
            "none".to_string()
        } else {
            format!("{} (BUG)", leaked.len())
        }
    )?;
    writeln!(out, "Audit log:")?;
    let entries = bot.store.audit(None, None, 100).await?;
    writeln!(
        out,
        "{}",
        indent(&crate::audit_table::render_audit(&entries), "  ")
    )?;
    writeln!(
        out,
        "Demo finished in {:.1}s.",
        started.elapsed().as_secs_f64()
    )?;
    bot.stop().await;
    if !leaked.is_empty() {
        bail!("a secret reached Slack");
    }
    Ok(())
}

fn print_thread(out: &mut dyn Write, world: &World, thread: &str) -> Result<()> {
    for m in world.thread(ONCALL_CHANNEL, thread) {
        if m.ephemeral_to.is_some() {
            continue;
        }
        let edits = m.versions.len().saturating_sub(1);
        let note = if edits > 0 {
            format!("  (edited {edits}× as the check advanced)")
        } else {
            String::new()
        };
        writeln!(out, "  ↳ linkbot{note}:")?;
        writeln!(out, "{}", indent(&world::render_message(&m), "    │ "))?;
    }
    Ok(())
}

/// Prints what the bot posted in a team's channel (an escalation).
fn print_channel(out: &mut dyn Write, world: &World, channel: &str) -> Result<()> {
    writeln!(out, "\n  In <#{channel}>:")?;
    for m in world
        .slack
        .messages()
        .iter()
        .filter(|m| m.channel == channel)
    {
        writeln!(out, "{}", indent(&world::render_message(m), "    │ "))?;
    }
    Ok(())
}

async fn wait_root(world: &World, before: usize, loc: &str) -> Result<String> {
    let ok = world
        .slack
        .wait_until(
            |s| {
                s.messages()[before..].iter().any(|m| {
                    m.thread_ts.is_none()
                        && m.ephemeral_to.is_none()
                        && m.text.as_deref().unwrap_or("").contains(loc)
                })
            },
            WAIT,
        )
        .await;
    if !ok {
        bail!("the slash command posted no message");
    }
    world
        .slack
        .messages()
        .into_iter()
        .skip(before)
        .find(|m| {
            m.thread_ts.is_none()
                && m.ephemeral_to.is_none()
                && m.text.as_deref().unwrap_or("").contains(loc)
        })
        .map(|m| m.ts)
        .context("root message")
}

async fn click(
    world: &World,
    thread: &str,
    loc: &crate::domain::LocationId,
    action: &str,
    target: Option<&str>,
    user: &str,
) -> Result<()> {
    let verdict = world
        .thread(ONCALL_CHANNEL, thread)
        .into_iter()
        .rev()
        .find(world::is_verdict)
        .context("no verdict message to click on")?;
    let value = ButtonValue {
        location: loc.to_string(),
        environment: crate::domain::Environment::Prod,
        target: target.map(str::to_string),
    };
    let value = serde_json::to_string(&value)?;
    // Each button has its own action_id: `linkbot_escalate:<target>`, as the report renders it.
    let action_id = match target {
        Some(t) => format!("{action}:{t}"),
        None => action.to_string(),
    };
    world
        .slack
        .push(fake::block_actions(
            ONCALL_CHANNEL,
            user,
            &verdict.ts,
            &action_id,
            &value,
            Some(thread),
        ))
        .await?;
    Ok(())
}

/// Chooses the option `code` (`4h`, `resolved`…) of the "Silence…" select of the latest verdict
/// in `thread`, as the verdict offers it.
async fn select_silence(world: &World, thread: &str, code: &str, user: &str) -> Result<()> {
    let verdict = world
        .thread(ONCALL_CHANNEL, thread)
        .into_iter()
        .rev()
        .find(world::is_verdict)
        .context("no verdict message to silence from")?;
    let option = verdict
        .blocks
        .iter()
        .flat_map(|b| b.as_array().into_iter().flatten())
        .filter(|b| b["block_id"] == BLOCK_SILENCE)
        .flat_map(|b| b["elements"][0]["options"].as_array().into_iter().flatten())
        .find(|o| {
            o["value"]
                .as_str()
                .and_then(SilenceValue::parse)
                .is_some_and(|(v, _, _)| v.choice == code)
        })
        .context("the verdict offers no such silence")?;
    world
        .slack
        .push(fake::select_action(
            ONCALL_CHANNEL,
            user,
            &verdict.ts,
            BLOCK_SILENCE,
            ACTION_SILENCE,
            option["text"]["text"].as_str().unwrap_or_default(),
            option["value"].as_str().unwrap_or_default(),
            Some(thread),
        ))
        .await?;
    Ok(())
}

/// Clicks Unsilence on the latest message of `thread` that offers it (waiting for one).
async fn click_unsilence(world: &World, thread: &str, user: &str) -> Result<()> {
    let offered = world
        .slack
        .wait_until(
            |s| {
                s.thread(ONCALL_CHANNEL, thread)
                    .iter()
                    .any(|m| format!("{:?}", m.blocks).contains(ACTION_UNSILENCE))
            },
            WAIT,
        )
        .await;
    if !offered {
        bail!("no Unsilence button appeared in the thread");
    }
    let (ts, value) = world
        .thread(ONCALL_CHANNEL, thread)
        .into_iter()
        .rev()
        .find_map(|m| {
            let value = m
                .blocks
                .iter()
                .flat_map(|b| b.as_array().into_iter().flatten())
                .flat_map(|b| b["elements"].as_array().into_iter().flatten())
                .find(|e| e["action_id"] == ACTION_UNSILENCE)?["value"]
                .as_str()?
                .to_string();
            Some((m.ts.clone(), value))
        })
        .context("no Unsilence button in the thread")?;
    world
        .slack
        .push(fake::block_actions(
            ONCALL_CHANNEL,
            user,
            &ts,
            ACTION_UNSILENCE,
            &value,
            Some(thread),
        ))
        .await?;
    Ok(())
}

async fn wait_text(world: &World, thread: &str, needle: &str) -> Result<()> {
    let ok = world
        .slack
        .wait_until(
            |s| {
                s.thread(ONCALL_CHANNEL, thread)
                    .iter()
                    .any(|m| m.text.as_deref().unwrap_or("").contains(needle))
            },
            WAIT,
        )
        .await;
    if !ok {
        bail!("nothing saying {needle:?} appeared in the thread");
    }
    Ok(())
}

/// Waits until the message `ts` shows `needle` (its latest version).
async fn wait_shown(world: &World, ts: &str, needle: &str) -> Result<()> {
    let ok = world
        .slack
        .wait_until(
            |s| {
                s.message(ONCALL_CHANNEL, ts)
                    .is_some_and(|m| world::render_message(m).contains(needle))
            },
            WAIT,
        )
        .await;
    if !ok {
        bail!("the message {ts} never showed {needle:?}");
    }
    Ok(())
}

/// Waits for an ephemeral answer to `user` that says `needle`.
async fn wait_ephemeral_saying(world: &World, user: &str, needle: &str) -> Result<()> {
    let ok = world
        .slack
        .wait_until(
            |s| {
                s.messages().iter().any(|m| {
                    m.ephemeral_to.as_deref() == Some(user)
                        && m.text.as_deref().unwrap_or("").contains(needle)
                })
            },
            WAIT,
        )
        .await;
    if !ok {
        bail!("no ephemeral answer to {user} saying {needle:?}");
    }
    Ok(())
}

/// A modal as a person reads it: its title, each block's text, label, and choices.
fn render_form(view: &serde_json::Value) -> String {
    let mut lines = vec![format!(
        "[{}]  ({} / {})",
        view["title"]["text"].as_str().unwrap_or(""),
        view["submit"]["text"].as_str().unwrap_or(""),
        view["close"]["text"].as_str().unwrap_or("")
    )];
    for b in view["blocks"].as_array().into_iter().flatten() {
        if let Some(t) = b["text"]["text"].as_str() {
            lines.push(t.to_string());
        }
        if let Some(label) = b["label"]["text"].as_str() {
            let optional = if b["optional"] == true {
                " (optional)"
            } else {
                ""
            };
            lines.push(format!("{label}{optional}:"));
        }
        let options: Vec<&str> = b["element"]["options"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["text"]["text"].as_str())
            .collect();
        if !options.is_empty() {
            lines.push(format!("  ▾ {}", options.join(" | ")));
        }
        if b["element"]["type"] == "plain_text_input" {
            lines.push(format!(
                "  ▭ multiline text, at most {} characters",
                b["element"]["max_length"]
            ));
        }
    }
    lines.join("\n")
}

async fn wait_ephemeral(world: &World, user: &str) -> Result<()> {
    if world
        .slack
        .wait_until(
            |s| {
                s.messages()
                    .iter()
                    .any(|m| m.ephemeral_to.as_deref() == Some(user))
            },
            WAIT,
        )
        .await
    {
        Ok(())
    } else {
        bail!("no ephemeral answer to {user}")
    }
}

/// The storm scenario's datacenters (all in us-east, where the ConfigMap's region is right).
const STORM_DCS: [&str; 3] = ["wdc06", "wdc07", "mon01"];

/// The datacenter of the storm scenario's `i`th alert (from 0) with `threshold`: the first
/// `threshold` alternate between wdc06 and wdc07, the one crossing the threshold is in mon01,
/// then 2 more in wdc06 and the rest in mon01.
fn storm_dc(i: u32, threshold: u32) -> &'static str {
    if i < threshold {
        STORM_DCS[(i % 2) as usize]
    } else if i == threshold || i > threshold + 2 {
        STORM_DCS[2]
    } else {
        STORM_DCS[0]
    }
}

/// How many alerts the storm scenario fires.
const STORM_ALERTS: u32 = 30;

/// Scenario 15: IAM is down and 30 stage locations fire the IAM-token alert within seconds.
/// With the default `[storm]` (threshold 20, sample 3), the first 20 are checked as usual, the
/// 21st declares the storm, the sample spreads over the three datacenters (so it builds the
/// one mon01 location), the other alerts get one line each, and the sample agrees on the cause.
async fn storm(out: &mut dyn Write, world: &World, bot: &app::RunningBot) -> Result<()> {
    use crate::sim::directory::ClusterAnswer;
    let settings = crate::storm::StormSettings::default();
    let threshold = settings.threshold;
    world.iam.set_unavailable(true);
    for dc in STORM_DCS {
        let carrier = format!("stage-{dc}-carrier1");
        world
            .directory
            .set_carriers(dc, &[(carrier.as_str(), "available")]);
    }
    let locs: Vec<crate::domain::LocationId> = (0..STORM_ALERTS)
        .map(|i| {
            let loc = world.scenario(VerdictCode::IamUnreachable, 100 + i);
            world.directory.set_cluster(
                loc.as_str(),
                ClusterAnswer::Json(format!("stage-{}.carrier1", storm_dc(i, threshold))),
            );
            loc
        })
        .collect();
    let builds_before = world.jenkins.triggers().len();
    let fire = |i: u32| {
        let text = format!(
            "Labels:\n - alertname = {}\n - environment = stage\n - severity = critical\n - cluster_id = {}",
            crate::slack::alerts::ALERT_NAME,
            locs[i as usize]
        );
        fake::message(
            ONCALL_CHANNEL,
            &text,
            &World::user_ts(200 + i),
            Some(ALERT_BOT),
            Some("A0ALERTMGR"),
            None,
        )
    };
    let answered = |s: &fake::SimSlackState, i: u32| {
        s.thread(ONCALL_CHANNEL, &World::user_ts(200 + i))
            .iter()
            .any(|m| m.ephemeral_to.is_none())
    };
    let is_storm = |m: &fake::SimMessage| {
        m.thread_ts.is_none()
            && m.ephemeral_to.is_none()
            && m.text.as_deref().unwrap_or("").starts_with("Alert storm")
    };
    let started = Instant::now();
    // The first `threshold` one after the other (each answered before the next), so which
    // locations the storm's first window holds does not depend on handling order.
    for i in 0..threshold {
        world.slack.push(fire(i)).await?;
        if !world.slack.wait_until(|s| answered(s, i), WAIT).await {
            bail!("storm alert {i} was not answered");
        }
    }
    world.slack.push(fire(threshold)).await?;
    if !world
        .slack
        .wait_until(|s| s.messages().iter().any(is_storm), WAIT)
        .await
    {
        bail!("crossing the threshold posted no storm message");
    }
    for i in threshold + 1..STORM_ALERTS {
        world.slack.push(fire(i)).await?;
    }
    let fired_in = started.elapsed();
    let pointer = |m: &fake::SimMessage| {
        m.text
            .as_deref()
            .unwrap_or("")
            .contains("Part of an alert storm")
    };
    let pointed = |s: &fake::SimSlackState, i: u32| {
        s.thread(ONCALL_CHANNEL, &World::user_ts(200 + i))
            .iter()
            .any(|m| pointer(m))
    };
    let built = |s: &fake::SimSlackState, i: u32| {
        s.thread(ONCALL_CHANNEL, &World::user_ts(200 + i))
            .iter()
            .any(|m| world::is_verdict(m))
    };
    let settled = world
        .slack
        .wait_until(
            |s| {
                let shown = s
                    .messages()
                    .iter()
                    .filter(|m| is_storm(m))
                    .map(world::render_message)
                    .any(|t| {
                        t.contains(&format!("{STORM_ALERTS} locations"))
                            && t.contains("Cause — the sample agrees")
                            && t.contains("*unreachable*")
                            // The alerts after the declaration are located too (a lookup each).
                            && !t.contains("not located")
                    });
                shown && (0..STORM_ALERTS).all(|i| built(s, i) || pointed(s, i))
            },
            WAIT,
        )
        .await;
    if !settled {
        bail!("the storm message never showed the count, every location located, IAM's state and the cause, or an alert went unanswered");
    }
    let message = world
        .slack
        .messages()
        .into_iter()
        .find(|m| is_storm(m))
        .context("the storm message")?;
    let answers = |i: &u32| world.thread(ONCALL_CHANNEL, &World::user_ts(200 + i));
    let pointers: Vec<u32> = (0..STORM_ALERTS)
        .filter(|i| answers(i).iter().any(pointer))
        .collect();
    let checked = (0..STORM_ALERTS)
        .filter(|i| answers(i).iter().any(world::is_verdict))
        .count();
    let builds = world.jenkins.triggers().len() - builds_before;
    // The pointer replies are counted once Slack answered them.
    let linked = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("linkbot_storm_alerts_linked_total"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<usize>().ok())
            .unwrap_or(0)
    };
    let counting = Instant::now();
    let metrics = loop {
        let m = bot.metrics.render();
        if linked(&m) == pointers.len() {
            break m;
        }
        if counting.elapsed() > WAIT {
            bail!(
                "linkbot_storm_alerts_linked_total never reached {}",
                pointers.len()
            );
        }
        // The demo polls (bounded); the tests wait on the simulators' own signals.
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    rule(
        out,
        &format!("15. An alert storm — IAM is down; {STORM_ALERTS} stage locations fire the IAM-token alert within seconds"),
    )?;
    writeln!(
        out,
        "alertmanager: {STORM_ALERTS} alerts (environment = stage) in {}, {} and {} within {:.1}s; IAM answers 503.",
        STORM_DCS[0],
        STORM_DCS[1],
        STORM_DCS[2],
        fired_in.as_secs_f64()
    )?;
    writeln!(
        out,
        "[storm] as by default: threshold {threshold}, sample {}, window {}s. The first {threshold} alerts are checked as usual;\nalert {} (in {}) crosses the threshold and declares the storm.",
        settings.sample,
        settings.window.as_secs(),
        threshold + 1,
        storm_dc(threshold, threshold)
    )?;
    writeln!(
        out,
        "\nThe storm message in the channel (posted at once, then edited in place as alerts and verdicts arrived):"
    )?;
    writeln!(
        out,
        "{}",
        indent(&world::render_message(&message), "    │ ")
    )?;
    writeln!(
        out,
        "\n{} of the {} alerts answered with one line instead of a build (each still opens its incident):",
        pointers.len().min(2),
        pointers.len()
    )?;
    for i in pointers.iter().take(2) {
        writeln!(
            out,
            "  alertmanager: … cluster_id = {} ({})",
            locs[*i as usize],
            storm_dc(*i, threshold)
        )?;
        for m in world.thread(ONCALL_CHANNEL, &World::user_ts(200 + i)) {
            writeln!(out, "    ↳ linkbot: {}", world::render_message(&m))?;
        }
    }
    writeln!(
        out,
        "\nJenkins builds for the {STORM_ALERTS} alerts: {builds} — {threshold} checked as usual before the threshold was crossed, {} for the sample\n(the sample takes one location per datacenter; only {} had no check running). {} verdicts shown, {} pointers.",
        builds.saturating_sub(threshold as usize),
        storm_dc(threshold, threshold),
        checked,
        pointers.len()
    )?;
    writeln!(out, "/metrics, the storm's lines:")?;
    // Sorted: a family's series come in hash order.
    let mut lines: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("linkbot_storm"))
        .collect();
    lines.sort();
    for line in lines {
        writeln!(out, "  {line}")?;
    }
    world.iam.set_unavailable(false);
    Ok(())
}
