//! Block Kit rendering: a report, a check in progress, and the buttons, as Slack JSON.
//!
//! Pure functions from values to `serde_json::Value` blocks, kept inside Block Kit's limits
//! (50 blocks, 3000 characters a section, 150 a header, 75 a button text, 2000 a button value).
//! Posting is elsewhere. Reports hold no secret (a key fingerprint at most), so neither does this.

use crate::check::format::human;
use crate::diagnosis::verdict::Report;
use crate::domain::{Environment, LocationId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

/// Block Kit's limits.
const MAX_BLOCKS: usize = 50;
const MAX_SECTION: usize = 3000;
const MAX_HEADER: usize = 150;
const MAX_BUTTON_TEXT: usize = 75;

/// `action_id` of the escalate buttons (one per target).
pub const ACTION_ESCALATE: &str = "linkbot_escalate";
/// `action_id` of the page button.
pub const ACTION_PAGE: &str = "linkbot_page";
/// `action_id` of the re-run button.
pub const ACTION_RERUN: &str = "linkbot_rerun";

/// What a button carries back when clicked (JSON in the button's `value`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ButtonValue {
    /// The location.
    #[serde(rename = "l")]
    pub location: String,
    /// The environment.
    #[serde(rename = "e")]
    pub environment: Environment,
    /// The escalation target (`[escalation.<t>]`), for escalate/page.
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl ButtonValue {
    /// Parses a clicked button's value; `None` for anything not made by [`report`].
    pub fn parse(value: &str) -> Option<(ButtonValue, LocationId)> {
        if value.len() > 2000 {
            return None;
        }
        let v: ButtonValue = serde_json::from_str(value).ok()?;
        let loc = LocationId::parse(&v.location).ok()?;
        Some((v, loc))
    }
}

/// An escalation target as a button shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetButton {
    /// `[escalation.<name>]`.
    pub name: String,
    /// Its title.
    pub title: String,
}

/// What the report's surroundings add: links, buttons, reuse.
#[derive(Debug, Clone, Default)]
pub struct ReportContext {
    /// The runbook link.
    pub runbook_url: String,
    /// Escalation targets, the verdict's owner first.
    pub targets: Vec<TargetButton>,
    /// The target paged by "Page (CIE)", if any has PagerDuty.
    pub page_target: Option<TargetButton>,
    /// Set when a fresh result is reused: its age.
    pub reused_age: Option<Duration>,
    /// Whether to show the buttons (not on the copy posted to a team's channel).
    pub buttons: bool,
}

/// Cuts `s` to at most `max` characters, ending with `…` when cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Escapes text for mrkdwn (`&`, `<`, `>`), so hostile text cannot ping or link.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION)}})
}

fn context(text: &str) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, MAX_SECTION)}]})
}

fn button(text: &str, action_id: &str, value: &ButtonValue, style: Option<&str>) -> Value {
    let mut b = json!({
        "type": "button",
        "text": {"type": "plain_text", "text": clip(text, MAX_BUTTON_TEXT), "emoji": true},
        "action_id": action_id,
        "value": serde_json::to_string(value).unwrap_or_default(),
    });
    if let Some(s) = style {
        b["style"] = json!(s);
    }
    b
}

/// The message while a check runs: a header line and the stage lines so far.
pub fn progress(
    location: &LocationId,
    environment: Environment,
    lines: &[String],
) -> (String, Vec<Value>) {
    let head = format!(
        ":hourglass_flowing_sand: Checking `{location}` ({environment}) — IAM token runbook"
    );
    let body = lines
        .iter()
        .map(|l| format!("• {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    let text = format!("Checking {location} ({environment})…");
    (
        text,
        vec![
            section(&head),
            section(if body.is_empty() {
                "• starting…"
            } else {
                &body
            }),
        ],
    )
}

/// The plain-text fallback of a report (notifications, screen readers).
pub fn fallback_text(report: &Report) -> String {
    let loc = report.location.as_ref().map(|l| l.as_str()).unwrap_or("?");
    format!(
        "{}: {} — {}",
        loc,
        report.verdict.as_str(),
        report.verdict.title()
    )
}

/// The verdict message: header, summary, facts, each step with its evidence, next actions,
/// links, and the buttons.
pub fn report(report: &Report, ctx: &ReportContext) -> Vec<Value> {
    let mut blocks = Vec::new();
    let icon = if report.verdict.is_diagnosis() {
        "🩺"
    } else {
        "⚠️"
    };
    let confirmed = if report.confirmed {
        " (confirmed by IAM)"
    } else {
        ""
    };
    blocks.push(json!({
        "type": "header",
        "text": {"type": "plain_text", "text": clip(&format!("{icon} {}{confirmed}", report.verdict.title()), MAX_HEADER), "emoji": true}
    }));
    if let Some(age) = ctx.reused_age {
        blocks.push(context(&format!(
            ":recycle: Result from {} ago, reused. Press *Re-run check* for a fresh one.",
            human(age)
        )));
    }
    blocks.push(section(&format!(
        "*`{}`* — {}",
        report.verdict.as_str(),
        escape(&report.summary)
    )));

    let mut facts = Vec::new();
    if let Some(l) = &report.location {
        facts.push(format!("*Location:* `{l}`"));
    }
    if let Some(e) = report.environment {
        facts.push(format!("*Environment:* {e}"));
    }
    if let Some(t) = &report.tugboat {
        facts.push(format!("*Tugboat:* `{}` (`{}`)", t.dotted(), t.kebab()));
    }
    if let Some(c) = &report.carrier {
        facts.push(format!("*Carrier:* `{c}`"));
    }
    if let Some(r) = &report.region_expected {
        facts.push(format!("*Region expected:* `{r}`"));
    }
    if let Some(r) = &report.region_found {
        facts.push(format!("*Region in ConfigMap:* `{}`", escape(r)));
    }
    if let Some(k) = &report.key_fingerprint {
        facts.push(format!("*IAM API key:* `{k}`"));
    }
    if !facts.is_empty() {
        blocks.push(section(&facts.join("\n")));
    }
    blocks.push(json!({"type": "divider"}));

    for step in &report.steps {
        let evidence = step
            .evidence
            .iter()
            .map(|e| format!("    {}", escape(e)))
            .collect::<Vec<_>>()
            .join("\n");
        blocks.push(section(&format!(
            "{} *{}*\n{}",
            step.status.emoji(),
            step.title,
            evidence
        )));
    }

    if let Some(tail) = &report.console_tail {
        let tail = clip(tail.trim(), MAX_SECTION - 40);
        blocks.push(section(&format!(
            "*Console tail*\n```{}```",
            tail.replace("```", "'''")
        )));
    }
    if !report.next_actions.is_empty() {
        let actions = report
            .next_actions
            .iter()
            .map(|a| format!("• {a}"))
            .collect::<Vec<_>>()
            .join("\n");
        blocks.push(section(&format!("*Next actions*\n{actions}")));
    }
    let mut links = Vec::new();
    if let Some(b) = &report.build_url {
        links.push(format!("<{b}|Jenkins build>"));
    }
    if !ctx.runbook_url.is_empty() {
        links.push(format!("<{}|Runbook>", ctx.runbook_url));
    }
    links.push(format!(
        "checked {}",
        report.checked_at.format("%Y-%m-%d %H:%M UTC")
    ));
    blocks.push(context(&links.join(" · ")));

    if let (true, Some(location), Some(environment)) =
        (ctx.buttons, &report.location, report.environment)
    {
        let value = |target: Option<&str>| ButtonValue {
            location: location.to_string(),
            environment,
            target: target.map(str::to_string),
        };
        let mut elements = Vec::new();
        for (i, t) in ctx.targets.iter().enumerate().take(5) {
            let style = (i == 0).then_some("primary");
            elements.push(button(
                &format!("Escalate → {}", t.title),
                ACTION_ESCALATE,
                &value(Some(&t.name)),
                style,
            ));
        }
        if let Some(p) = &ctx.page_target {
            let mut b = button(
                "Page (CIE)",
                ACTION_PAGE,
                &value(Some(&p.name)),
                Some("danger"),
            );
            b["confirm"] = json!({
                "title": {"type": "plain_text", "text": "Page for a CIE?"},
                "text": {"type": "mrkdwn", "text": clip(&format!("This triggers a PagerDuty incident for *{}* about `{location}`. Only for a customer-impacting event.", p.title), 300)},
                "confirm": {"type": "plain_text", "text": "Page"},
                "deny": {"type": "plain_text", "text": "Cancel"},
                "style": "danger"
            });
            elements.push(b);
        }
        elements.push(button("Re-run check", ACTION_RERUN, &value(None), None));
        blocks
            .push(json!({"type": "actions", "block_id": "linkbot_actions", "elements": elements}));
    }

    if blocks.len() > MAX_BLOCKS {
        // Keep the head and the actions; say what was cut.
        let actions = blocks.pop();
        blocks.truncate(MAX_BLOCKS - 2);
        blocks.push(context(
            "…some steps were cut to fit Slack's limits; see the JSON output for all.",
        ));
        blocks.extend(actions);
    }
    blocks
}

/// The most a plain-text report ([`plain_report`]) may hold: well inside Slack's 40,000
/// characters for `text` and short enough to read in a thread.
const MAX_PLAIN: usize = 3000;

/// A `<url|label>` mrkdwn link to a URL that came from outside: `&`, `<`, `>` escaped and a
/// `|` percent-encoded so the URL cannot end the link early or add a label of its own.
fn plain_link(url: &str, label: &str) -> String {
    format!("<{}|{label}>", escape(url).replace('|', "%7C"))
}

/// The report as one plain-text message, no blocks: what is posted when Slack refuses the
/// Block Kit version (`invalid_blocks`, `msg_too_long`…), so a thread is never left silent.
/// The verdict, its one-line reason, the next actions and the links (Jenkins build, runbook);
/// text from outside is escaped for mrkdwn, and the whole stays under [`MAX_PLAIN`] characters.
pub fn plain_report(report: &Report, runbook_url: &str) -> String {
    let one_line = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let confirmed = if report.confirmed {
        " (confirmed by IAM)"
    } else {
        ""
    };
    let mut out = format!(
        "*`{}`* — {}{confirmed}\n{}",
        report.verdict.as_str(),
        report.verdict.title(),
        escape(&clip(&one_line(&report.summary), 500)),
    );
    match (&report.location, report.environment) {
        (Some(l), Some(e)) => out.push_str(&format!("\nLocation `{l}` ({e})")),
        (Some(l), None) => out.push_str(&format!("\nLocation `{l}`")),
        _ => {}
    }
    if !report.next_actions.is_empty() {
        out.push_str("\n*Next actions*");
        for action in report.next_actions.iter().take(10) {
            out.push_str(&format!("\n• {}", escape(&clip(&one_line(action), 300))));
        }
    }
    let mut links = Vec::new();
    if let Some(b) = &report.build_url {
        links.push(plain_link(&clip(b, 1000), "Jenkins build"));
    }
    if !runbook_url.is_empty() {
        links.push(plain_link(&clip(runbook_url, 1000), "Runbook"));
    }
    if !links.is_empty() {
        out.push_str(&format!("\n{}", links.join(" · ")));
    }
    out.push_str(
        "\n_(plain version: Slack refused the full message; details are in the bot's logs)_",
    );
    if out.chars().count() > MAX_PLAIN {
        out = clip(&out, MAX_PLAIN);
    }
    out
}

/// A check in progress as plain text (no blocks), for when Slack refuses the Block Kit one.
pub fn plain_progress(location: &LocationId, environment: Environment, lines: &[String]) -> String {
    let mut out = format!(":hourglass_flowing_sand: Checking `{location}` ({environment})");
    for line in lines.iter().take(20) {
        out.push_str(&format!("\n• {}", clip(line, 300)));
    }
    clip(&out, MAX_PLAIN)
}

/// The answer when a check ended without a verdict (the bot's store or engine failed): says
/// so and how to try again, so the thread never stays on a progress message. `reason` is one
/// line for people (escaped here).
pub fn plain_failure(location: &LocationId, environment: Environment, reason: &str) -> String {
    format!(
        ":warning: The check of `{location}` ({environment}) ended without a verdict: {}\nNothing was concluded about the location. Try again with `@linkbot check {location} {environment}`; if it keeps failing, the bot's logs have the details.",
        escape(&clip(reason, 500))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::verdict::{next_actions, Step, StepId, StepStatus, VerdictCode};
    use crate::domain::{Region, Tugboat};

    fn sample(verdict: VerdictCode, steps: usize) -> Report {
        let region = Region::parse("us-east").unwrap();
        Report {
            verdict,
            confirmed: false,
            summary: "summary <!channel> & more".into(),
            location: Some(LocationId::parse("c1hk4ek107l5au5mq8hg").unwrap()),
            environment: Some(Environment::Prod),
            tugboat: Some(Tugboat::parse("prod-wdc04.carrier107").unwrap()),
            carrier: None,
            next_actions: next_actions(verdict, Some(&region)),
            region_expected: Some(region),
            region_found: Some("us-south".into()),
            build_url: Some("http://jenkins/job/x/5/".into()),
            console_tail: None,
            key_fingerprint: Some("…3fLp".into()),
            steps: (0..steps)
                .map(|i| {
                    Step::new(
                        StepId::Job,
                        StepStatus::Ok,
                        vec![format!("evidence {i} {}", "x".repeat(4000))],
                    )
                })
                .collect(),
            checked_at: chrono::Utc::now(),
        }
    }

    fn all_text(blocks: &[Value]) -> String {
        serde_json::to_string(blocks).unwrap()
    }

    #[test]
    fn reports_stay_inside_block_kit_limits() {
        let ctx = ReportContext {
            runbook_url: "https://runbook".into(),
            targets: vec![TargetButton {
                name: "razee".into(),
                title: "R".repeat(200),
            }],
            page_target: Some(TargetButton {
                name: "satellite_link".into(),
                title: "Satellite Link squad".into(),
            }),
            reused_age: None,
            buttons: true,
        };
        let blocks = report(&sample(VerdictCode::RegionMismatch, 80), &ctx);
        assert!(blocks.len() <= MAX_BLOCKS);
        for b in &blocks {
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(t.chars().count() <= MAX_SECTION);
            }
            for e in b["elements"].as_array().into_iter().flatten() {
                if let Some(t) = e["text"]["text"].as_str() {
                    if e["type"] == "button" {
                        assert!(t.chars().count() <= MAX_BUTTON_TEXT, "{t}");
                    }
                }
            }
        }
        assert_eq!(blocks.last().unwrap()["type"], "actions");
    }

    #[test]
    fn the_report_shows_both_regions_the_buttons_and_escapes_text() {
        let ctx = ReportContext {
            runbook_url: "https://runbook".into(),
            targets: vec![
                TargetButton {
                    name: "razee".into(),
                    title: "Razee team".into(),
                },
                TargetButton {
                    name: "armada_bootstrap".into(),
                    title: "armada-bootstrap".into(),
                },
            ],
            page_target: Some(TargetButton {
                name: "satellite_link".into(),
                title: "Satellite Link squad".into(),
            }),
            reused_age: Some(Duration::from_secs(125)),
            buttons: true,
        };
        let text = all_text(&report(&sample(VerdictCode::RegionMismatch, 2), &ctx));
        assert!(text.contains("us-east") && text.contains("us-south"));
        assert!(text.contains("Escalate → Razee team"));
        assert!(text.contains("Page (CIE)") && text.contains("\"confirm\""));
        assert!(text.contains("Re-run check"));
        assert!(text.contains("2m05s ago"));
        assert!(text.contains("&lt;!channel&gt;"), "mrkdwn must be escaped");
        assert!(text.contains("<http://jenkins/job/x/5/|Jenkins build>"));
    }

    #[test]
    fn button_values_round_trip_and_refuse_garbage() {
        let v = ButtonValue {
            location: "c1hk4ek107l5au5mq8hg".into(),
            environment: Environment::Stage,
            target: Some("razee".into()),
        };
        let s = serde_json::to_string(&v).unwrap();
        assert_eq!(ButtonValue::parse(&s).unwrap().0, v);
        for bad in [
            "",
            "clicked",
            "{}",
            "{\"l\":\"nope\",\"e\":\"prod\"}",
            "{\"l\":\"c1hk4ek107l5au5mq8hg\",\"e\":\"dev\"}",
        ] {
            assert!(ButtonValue::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_plain_report_has_the_verdict_reason_actions_and_links_escaped_and_bounded() {
        let mut r = sample(VerdictCode::ApiKeyInvalid, 3);
        r.build_url = Some("http://jenkins/job/x/5/?a=1&b=<2>|x".into());
        let text = plain_report(&r, "https://runbook.example/x");
        assert!(text.contains("`api_key_invalid`"), "{text}");
        assert!(
            text.contains("summary &lt;!channel&gt; &amp; more"),
            "{text}"
        );
        assert!(
            text.contains("ibmcloud ks api-key reset --region us-east"),
            "{text}"
        );
        assert!(text.contains("|Jenkins build>"), "{text}");
        assert!(
            text.contains("<https://runbook.example/x|Runbook>"),
            "{text}"
        );
        assert!(
            !text.contains("<2>") && !text.contains("<!channel>"),
            "{text}"
        );
        assert!(
            text.contains("&amp;b=&lt;2&gt;%7Cx|Jenkins build>"),
            "{text}"
        );

        r.summary = "x".repeat(50_000);
        r.next_actions = vec!["y".repeat(10_000); 40];
        assert!(plain_report(&r, "").chars().count() <= MAX_PLAIN);
    }
}
