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

pub use crate::format::clip;

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
}
