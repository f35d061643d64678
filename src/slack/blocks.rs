//! Block Kit rendering: a report, a check in progress, and the buttons, as Slack JSON.
//!
//! Pure functions from values to `serde_json::Value` blocks, kept inside Block Kit's limits
//! (50 blocks, 3000 characters a section, 150 a header, 75 a button text, 2000 a button value,
//! and a total of text Slack still accepts), counted as strictly as the simulated Slack counts
//! them (`sim::blockkit`). Every interactive element has its own `action_id`
//! (`linkbot_escalate:<target>`, `linkbot_page:<target>`, `linkbot_rerun`); `button.rs`
//! dispatches on the part before `:` ([`action_kind`]). Also the text answers to an escalation
//! ([`escalated`], [`already_paged`]) and an incident's status and notices ([`incident_preface`],
//! [`incident_notice`]), and the silence controls: the report's "Silence…" `static_select`
//! (`linkbot_silence`, its own actions block) and the thread message showing a silence with its
//! Unsilence button ([`silence_notice`]). Every piece of text that did not come
//! from linkbot goes through [`super::mrkdwn`]. Posting is elsewhere. Reports hold no secret (a
//! key fingerprint at most), so neither does this.

use super::mrkdwn;
use crate::check::progress::{BuildState, ProgressView, Stage};
use crate::diagnosis::verdict::{Report, VerdictCode};
use crate::domain::{Environment, LocationId};
use crate::escalation::workflow::{Done, Escalated, Failed};
use crate::feedback::{Actual, Tally, MAX_COMMENT};
use crate::format::human;
use crate::incident::{Followup, IncidentStatus, Notice};
use crate::silence::SilenceFor;
use crate::store::{PageRecord, SilenceRecord, StormMode};
use crate::storm::{Agreement, Cause, StormAction, StormView};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// Block Kit's limits (sources in `sim::blockkit`).
const MAX_BLOCKS: usize = 50;
pub(super) const MAX_SECTION: usize = 3000;
pub(super) const MAX_HEADER: usize = 150;
const MAX_BUTTON_TEXT: usize = 75;
const MAX_CONFIRM_TEXT: usize = 300;
const MAX_ACTION_ID: usize = 255;
/// The most text all blocks of one message carry: Slack refuses much more than 13,000
/// characters in total (`msg_blocks_too_long`); the simulator draws the line at 12,000.
const MAX_TOTAL_TEXT: usize = 11_000;
/// Caps of the report's fixed parts, so that steps and console tail always keep room.
const MAX_SUMMARY: usize = 1000;
const MAX_FACTS: usize = 1500;
const MAX_NEXT_ACTIONS: usize = 1500;
const MAX_LINKS: usize = 1000;
const MAX_PREFACE: usize = 500;
const MAX_REGION_SHOWN: usize = 100;
/// Escalate buttons shown (the verdict's owners come first).
const MAX_ESCALATE_BUTTONS: usize = 5;

/// `action_id` prefix of the escalate buttons (`linkbot_escalate:<target>`, one per target).
pub const ACTION_ESCALATE: &str = "linkbot_escalate";
/// `action_id` prefix of the page button (`linkbot_page:<target>`).
pub const ACTION_PAGE: &str = "linkbot_page";
/// `action_id` of the re-run button.
pub const ACTION_RERUN: &str = "linkbot_rerun";
/// `block_id` of the report's buttons.
pub const BLOCK_ACTIONS: &str = "linkbot_actions";

/// What a clicked `action_id` asks for: the part before the first `:` (`linkbot_escalate` for
/// `linkbot_escalate:razee`). The target itself travels in the button's value.
pub fn action_kind(action_id: &str) -> &str {
    action_id.split(':').next().unwrap_or(action_id)
}

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
    /// A first line above the report, in mrkdwn built by linkbot (the escalation copy's
    /// "@x escalates this diagnosis to …"); outside text in it must already be escaped.
    pub preface: Option<String>,
    /// "Was this right?": the 👍 / 👎 buttons with the message's count ([`feedback_blocks`]);
    /// `None` on copies posted to a team's channel.
    pub feedback: Option<Tally>,
    /// Whether to offer "Silence…" (the environment has an `alertmanager_url`; not once the
    /// incident resolved).
    pub silence: bool,
}

/// Length as Slack's limits count it (UTF-16 code units: never fewer than characters).
fn slack_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Cuts `s` to at most `max` characters as Slack counts them (unlike `format::clip`, which
/// counts characters for text that is not Slack's) (UTF-16 code units), never inside
/// a character, ending with `…` when cut.
pub fn clip(s: &str, max: usize) -> String {
    if slack_len(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        if used + c.len_utf16() + 1 > max {
            break;
        }
        used += c.len_utf16();
        out.push(c);
    }
    if max > 0 {
        out.push('…');
    }
    out
}

/// Keeps the end of `s` (at most `max` as Slack counts), starting with `…` when cut: for
/// console tails, whose last lines matter most.
fn clip_start(s: &str, max: usize) -> String {
    if slack_len(s) <= max || max == 0 {
        return if max == 0 {
            String::new()
        } else {
            s.to_string()
        };
    }
    let mut kept: Vec<char> = Vec::new();
    let mut used = 0;
    for c in s.chars().rev() {
        if used + c.len_utf16() + 1 > max {
            break;
        }
        used += c.len_utf16();
        kept.push(c);
    }
    kept.push('…');
    kept.into_iter().rev().collect()
}

/// Text that is never empty nor blank (Slack refuses both).
pub(super) fn non_blank(s: String) -> String {
    if s.trim().is_empty() {
        "—".to_string()
    } else {
        s
    }
}

pub(super) fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": non_blank(clip(text, MAX_SECTION))}})
}

pub(super) fn context(text: &str) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": non_blank(clip(text, MAX_SECTION))}]})
}

pub(super) fn plain(text: &str, max: usize) -> Value {
    json!({"type": "plain_text", "text": non_blank(clip(text, max)), "emoji": true})
}

fn button(text: &str, action_id: String, value: &ButtonValue, style: Option<&str>) -> Value {
    let mut b = json!({
        "type": "button",
        "text": plain(text, MAX_BUTTON_TEXT),
        "action_id": action_id,
        "value": serde_json::to_string(value).unwrap_or_default(),
    });
    if let Some(s) = style {
        b["style"] = json!(s);
    }
    b
}

/// `<kind>:<target>`, at most 255 characters and unique within the message.
fn target_action_id(kind: &str, target: &str, used: &mut HashSet<String>) -> String {
    let base: String = format!("{kind}:{target}")
        .chars()
        .take(MAX_ACTION_ID - 4)
        .collect();
    let mut id = base.clone();
    let mut n = 2;
    while !used.insert(id.clone()) {
        id = format!("{base}:{n}");
        n += 1;
    }
    id
}

/// Characters of text all `blocks` carry, as Slack counts them (every `"text"` string).
fn text_len(blocks: &[Value]) -> usize {
    fn walk(v: &Value, total: &mut usize) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("text", Value::String(s)) => *total += slack_len(s),
                        _ => walk(v, total),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, total)),
            _ => {}
        }
    }
    let mut total = 0;
    blocks.iter().for_each(|b| walk(b, &mut total));
    total
}

/// The largest cap `c` such that the items, each cut to `c`, fit in `budget` in total.
fn fair_cap(sizes: &[usize], budget: usize) -> usize {
    let mut sorted = sizes.to_vec();
    sorted.sort_unstable();
    let mut left = budget;
    for (i, size) in sorted.iter().enumerate() {
        let remaining = sorted.len() - i;
        if size * remaining <= left {
            left -= size;
        } else {
            return left / remaining;
        }
    }
    usize::MAX
}

/// A text progress bar of `elapsed` against Jenkins' estimate: `▓▓▓▓░░░░░░ 2m10s of ~5m00s`.
pub fn progress_bar(elapsed: Duration, estimated: Option<Duration>) -> String {
    match estimated.filter(|e| !e.is_zero()) {
        None => format!("{} elapsed (no estimate)", human(elapsed)),
        Some(est) => {
            let ratio = (elapsed.as_secs_f64() / est.as_secs_f64()).clamp(0.0, 1.0);
            let filled = (ratio * 10.0).round() as usize;
            let over = if elapsed > est {
                " — running over the estimate"
            } else {
                ""
            };
            format!(
                "{}{} {} of ~{}{over}",
                "▓".repeat(filled),
                "░".repeat(10 - filled),
                human(elapsed),
                human(est)
            )
        }
    }
}

/// The stage lines of a running check, as mrkdwn: linkbot's sentences around its own values,
/// every piece of outside text (Jenkins' queue reason and result, the configured job name)
/// escaped. Shared by the Block Kit message and its plain-text fallback.
pub fn progress_lines(view: &ProgressView) -> Vec<String> {
    let mut lines = Vec::with_capacity(view.stages.len() + 1);
    if view.resumed {
        lines.push("Resumed after a bot restart.".to_string());
    }
    for stage in &view.stages {
        lines.push(match stage {
            Stage::WaitingForSlot { running } => format!(
                ":double_vertical_bar: Queued: {running} checks are running; this one starts as soon as one ends."
            ),
            Stage::LookingUp => format!(
                "Looking up `{}` in the {} cluster directory…",
                view.key.location, view.key.environment
            ),
            Stage::Located { tugboat, carrier } => format!(
                "✅ Tugboat `{}` (`{}`), carrier `{carrier}`",
                tugboat.dotted(),
                tugboat.kebab()
            ),
            Stage::Triggering { job } => format!("Triggering {}…", mrkdwn::escape(job)),
            Stage::JenkinsQueue { why } => format!(
                "Jenkins queue: {}",
                why.as_deref()
                    .map(mrkdwn::escape)
                    .unwrap_or_else(|| "waiting for an executor".into())
            ),
            Stage::Build {
                number,
                state: BuildState::Running { elapsed, estimated },
            } => format!(
                "Build #{number} running: {}",
                progress_bar(*elapsed, *estimated)
            ),
            Stage::Build {
                number,
                state: BuildState::Finished { result },
            } => format!("Build #{number} finished: {}", mrkdwn::escape(result)),
            Stage::ReadingArtifacts { elapsed } => {
                format!("Reading the artifacts… ({} so far)", human(*elapsed))
            }
        });
    }
    lines
}

/// The message while a check runs: a header line and the stage lines so far.
pub fn progress(view: &ProgressView) -> (String, Vec<Value>) {
    let (location, environment) = (&view.key.location, view.key.environment);
    let head = format!(
        ":hourglass_flowing_sand: Checking `{location}` ({environment}) — IAM token runbook"
    );
    let body = progress_lines(view)
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

/// One section of the middle of a report, cut to fit: `prefix`, then `body` (cut at its end, or
/// at its start for a console tail), then `suffix`.
struct Middle {
    prefix: String,
    body: String,
    suffix: String,
    keep_end: bool,
}

impl Middle {
    fn size(&self) -> usize {
        slack_len(&self.prefix) + slack_len(&self.body) + slack_len(&self.suffix)
    }

    fn render(&self, cap: usize) -> Value {
        let room = cap
            .min(MAX_SECTION)
            .saturating_sub(slack_len(&self.prefix) + slack_len(&self.suffix));
        let body = if self.keep_end {
            clip_start(&self.body, room)
        } else {
            clip(&self.body, room)
        };
        section(&format!("{}{body}{}", self.prefix, self.suffix))
    }
}

/// The verdict message: header, summary, facts, each step with its evidence, next actions,
/// links, and the buttons. Always within Slack's limits, whatever the report holds.
pub fn report(report: &Report, ctx: &ReportContext) -> Vec<Value> {
    let mut head = Vec::new();
    if let Some(p) = &ctx.preface {
        head.push(section(&clip(p, MAX_PREFACE)));
    }
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
    head.push(json!({
        "type": "header",
        "text": plain(&format!("{icon} {}{confirmed}", report.verdict.title()), MAX_HEADER)
    }));
    if let Some(age) = ctx.reused_age {
        head.push(context(&format!(
            ":recycle: Result from {} ago, reused. Press *Re-run check* for a fresh one.",
            human(age)
        )));
    }
    head.push(section(&clip(
        &format!(
            "*`{}`* — {}",
            report.verdict.as_str(),
            mrkdwn::escape_composed(&report.summary)
        ),
        MAX_SUMMARY,
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
        facts.push(format!(
            "*Region in ConfigMap:* {}",
            mrkdwn::code(&clip(r, MAX_REGION_SHOWN))
        ));
    }
    if let Some(k) = &report.key_fingerprint {
        facts.push(format!("*IAM API key:* {}", mrkdwn::code(&clip(k, 20))));
    }
    if !facts.is_empty() {
        head.push(section(&clip(&facts.join("\n"), MAX_FACTS)));
    }
    head.push(json!({"type": "divider"}));

    let mut middle: Vec<Middle> = report
        .steps
        .iter()
        .map(|step| Middle {
            prefix: format!(
                "{} *{}*\n",
                step.status.emoji(),
                mrkdwn::escape_composed(&clip(&step.title, 200))
            ),
            body: step
                .evidence
                .iter()
                .map(|e| format!("    {}", mrkdwn::escape_composed(e)))
                .collect::<Vec<_>>()
                .join("\n"),
            suffix: String::new(),
            keep_end: false,
        })
        .collect();
    if let Some(tail) = report.console_tail.as_deref().map(str::trim) {
        if !tail.is_empty() {
            middle.push(Middle {
                prefix: "*Console tail*\n```".into(),
                body: mrkdwn::escape(tail),
                suffix: "```".into(),
                keep_end: true,
            });
        }
    }

    let mut tail = Vec::new();
    if !report.next_actions.is_empty() {
        let actions = report
            .next_actions
            .iter()
            .map(|a| format!("• {}", mrkdwn::escape_composed(a)))
            .collect::<Vec<_>>()
            .join("\n");
        tail.push(section(&clip(
            &format!("*Next actions*\n{actions}"),
            MAX_NEXT_ACTIONS,
        )));
    }
    let mut links = Vec::new();
    if let Some(b) = &report.build_url {
        links.push(mrkdwn::link(b, "Jenkins build"));
    }
    if !ctx.runbook_url.is_empty() {
        links.push(mrkdwn::link(&ctx.runbook_url, "Runbook"));
    }
    links.push(format!(
        "checked {}",
        report.checked_at.format("%Y-%m-%d %H:%M UTC")
    ));
    // Cut whole links, never inside one (a cut link would show its raw markup).
    while links.len() > 1 && slack_len(&links.join(" · ")) > MAX_LINKS {
        links.remove(0);
    }
    tail.push(context(&links.join(" · ")));
    if let Some(actions) = buttons(report, ctx) {
        tail.push(actions);
    }
    if let Some(select) = silence_select(report, ctx) {
        tail.push(select);
    }
    tail.extend(feedback_blocks(report, ctx));

    // At most 50 blocks: cut steps (saying so), never the head, next actions, links or buttons.
    let cut_note =
        context("…some steps were cut to fit Slack's limits; see the JSON output for all.");
    let room = MAX_BLOCKS - head.len() - tail.len();
    let cut = middle.len() > room;
    if cut {
        middle.truncate(room - 1);
    }
    // At most MAX_TOTAL_TEXT of text: share what the fixed parts leave fairly among the steps.
    let fixed = text_len(&head)
        + text_len(&tail)
        + if cut {
            text_len(std::slice::from_ref(&cut_note))
        } else {
            0
        };
    let sizes: Vec<usize> = middle.iter().map(Middle::size).collect();
    let cap = fair_cap(&sizes, MAX_TOTAL_TEXT.saturating_sub(fixed));
    let mut blocks = head;
    blocks.extend(middle.iter().map(|m| m.render(cap)));
    if cut {
        blocks.push(cut_note);
    }
    blocks.extend(tail);
    blocks
}

/// The actions block: escalate to each target (owners first), page, re-run; each with its own
/// `action_id`. None on copies without buttons, or without a location to act on.
fn buttons(report: &Report, ctx: &ReportContext) -> Option<Value> {
    let (true, Some(location), Some(environment)) =
        (ctx.buttons, &report.location, report.environment)
    else {
        return None;
    };
    let value = |target: Option<&str>| ButtonValue {
        location: location.to_string(),
        environment,
        target: target.map(str::to_string),
    };
    let mut used = HashSet::new();
    let mut elements = Vec::new();
    for (i, t) in ctx.targets.iter().enumerate().take(MAX_ESCALATE_BUTTONS) {
        let style = (i == 0).then_some("primary");
        elements.push(button(
            &format!("Escalate → {}", t.title),
            target_action_id(ACTION_ESCALATE, &t.name, &mut used),
            &value(Some(&t.name)),
            style,
        ));
    }
    if let Some(p) = &ctx.page_target {
        let mut b = button(
            "Page (CIE)",
            target_action_id(ACTION_PAGE, &p.name, &mut used),
            &value(Some(&p.name)),
            Some("danger"),
        );
        b["confirm"] = json!({
            "title": plain("Page for a CIE?", 100),
            "text": {"type": "mrkdwn", "text": clip(&format!(
                "This triggers a PagerDuty incident for *{}* about `{location}`. Only for a customer-impacting event.",
                mrkdwn::escape(&clip(&p.title, 150))
            ), MAX_CONFIRM_TEXT)},
            "confirm": plain("Page", 30),
            "deny": plain("Cancel", 30),
            "style": "danger"
        });
        elements.push(b);
    }
    elements.push(button(
        "Re-run check",
        ACTION_RERUN.to_string(),
        &value(None),
        None,
    ));
    Some(json!({"type": "actions", "block_id": BLOCK_ACTIONS, "elements": elements}))
}

/// The most a plain-text report ([`plain_report`]) may hold: well inside Slack's 40,000
/// characters for `text` and short enough to read in a thread.
const MAX_PLAIN: usize = 3000;

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
        mrkdwn::escape_composed(&clip(&one_line(&report.summary), 500)),
    );
    match (&report.location, report.environment) {
        (Some(l), Some(e)) => out.push_str(&format!("\nLocation `{l}` ({e})")),
        (Some(l), None) => out.push_str(&format!("\nLocation `{l}`")),
        _ => {}
    }
    if !report.next_actions.is_empty() {
        out.push_str("\n*Next actions*");
        for action in report.next_actions.iter().take(10) {
            out.push_str(&format!(
                "\n• {}",
                mrkdwn::escape_composed(&clip(&one_line(action), 300))
            ));
        }
    }
    let mut links = Vec::new();
    if let Some(b) = &report.build_url {
        links.push(mrkdwn::link(&clip(b, 1000), "Jenkins build"));
    }
    if !runbook_url.is_empty() {
        links.push(mrkdwn::link(&clip(runbook_url, 1000), "Runbook"));
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

/// A check in progress as plain text (no blocks), for when Slack refuses the Block Kit one:
/// the same stage lines as [`progress`], escaped the same way.
pub fn plain_progress(view: &ProgressView) -> String {
    let (location, environment) = (&view.key.location, view.key.environment);
    let mut out = format!(":hourglass_flowing_sand: Checking `{location}` ({environment})");
    for line in progress_lines(view).iter().take(20) {
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
        mrkdwn::escape(&clip(reason, 500))
    )
}

/// The answer to a Page click on a result already paged (or being paged): who, and when, in
/// the reader's own time zone (Slack's date token, with a UTC fallback).
pub fn already_paged(record: &PageRecord) -> String {
    let by = mrkdwn::user(&record.paged_by);
    let at = record.paged_at.unwrap_or(record.claimed_at);
    let when = format!(
        "<!date^{}^{{time}}|{} UTC>",
        at.timestamp(),
        at.format("%H:%M")
    );
    match record.paged_at {
        Some(_) => format!(
            ":white_check_mark: Already paged by {by} at {when}: this result is paged once. To page again, Re-run the check and page its new result."
        ),
        None => format!(
            ":hourglass_flowing_sand: Already paged by {by} at {when}; PagerDuty has not answered yet, and the thread will say how it went."
        ),
    }
}

/// The thread's answer to an escalation or a page that was tried: who asked, what went
/// through, and what failed (outside text escaped).
pub fn escalated(requested_by: &str, outcome: &Escalated) -> String {
    let requested_by = mrkdwn::user(requested_by);
    let target_title = mrkdwn::escape(&outcome.target_title);
    let done: Vec<String> = outcome
        .done
        .iter()
        .map(|d| match d {
            Done::Paged { dedup_key } => format!(
                "paged *{target_title}* through PagerDuty (incident key {})",
                mrkdwn::code(dedup_key)
            ),
            Done::Posted { channel, link } => {
                let shown = mrkdwn::channel(channel);
                match link {
                    Some(l) => format!("posted to {shown} ({})", mrkdwn::link(l, "message")),
                    None => format!("posted to {shown}"),
                }
            }
            Done::IssueOpened { repo, issue } => format!(
                "opened {}",
                mrkdwn::link(&issue.html_url, &format!("{repo}#{}", issue.number))
            ),
        })
        .collect();
    let failed: Vec<String> = outcome
        .failed
        .iter()
        .map(|f| match f {
            Failed::PagerDuty(e) => format!("PagerDuty: {}", mrkdwn::escape(&e.user_message())),
            Failed::PagerDutyNotConfigured { target_title } => format!(
                "PagerDuty is not configured for {}",
                mrkdwn::escape(target_title)
            ),
            Failed::Channel { channel, error } => format!(
                "{}: {}",
                mrkdwn::channel(channel),
                mrkdwn::escape(&error.message)
            ),
            Failed::GitHub { repo, error } => format!(
                "GitHub {}: {}",
                mrkdwn::escape(repo.as_str()),
                mrkdwn::escape(&error.user_message())
            ),
            Failed::GitHubNotConfigured => "GitHub is not configured (GITHUB_TOKEN)".into(),
        })
        .collect();
    let mut text = if done.is_empty() {
        format!(
            ":x: {requested_by} tried to escalate to *{target_title}*, but nothing went through."
        )
    } else {
        format!(
            ":rotating_light: {requested_by} escalated to *{target_title}*: {}.",
            done.join("; ")
        )
    };
    if !failed.is_empty() {
        text.push_str(&format!("\n:warning: Failed: {}.", failed.join("; ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::verdict::{next_actions, Step, StepId, StepStatus, VerdictCode};
    use crate::domain::{Carrier, CheckKey, Region, Tugboat};
    use crate::store::CheckId;
    use chrono::TimeZone;

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
            preface: None,
            silence: true,
            feedback: Some(Tally { up: 12, down: 3 }),
        };
        let blocks = report(&sample(VerdictCode::RegionMismatch, 80), &ctx);
        assert!(blocks.len() <= MAX_BLOCKS);
        assert_eq!(
            crate::sim::blockkit::validate_message(Some("t"), Some(&Value::Array(blocks.clone()))),
            Ok(())
        );
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
            preface: None,
            silence: false,
            feedback: None,
        };
        let text = all_text(&report(&sample(VerdictCode::RegionMismatch, 2), &ctx));
        assert!(text.contains("us-east") && text.contains("us-south"));
        assert!(text.contains("Escalate → Razee team"));
        assert!(text.contains("\"linkbot_escalate:razee\""), "{text}");
        assert!(
            text.contains("\"linkbot_escalate:armada_bootstrap\""),
            "{text}"
        );
        assert!(text.contains("\"linkbot_page:satellite_link\""), "{text}");
        assert!(text.contains("\"linkbot_rerun\""), "{text}");
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
    fn action_kinds_are_the_part_before_the_colon() {
        assert_eq!(action_kind("linkbot_escalate:razee"), ACTION_ESCALATE);
        assert_eq!(action_kind("linkbot_page:satellite_link"), ACTION_PAGE);
        assert_eq!(action_kind("linkbot_rerun"), ACTION_RERUN);
        assert_eq!(action_kind("linkbot_escalate"), ACTION_ESCALATE);
    }

    #[test]
    fn clip_counts_as_slack_counts_and_never_splits_a_character() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "ab…");
        let emoji = "😀".repeat(10);
        let cut = clip(&emoji, 7);
        assert!(slack_len(&cut) <= 7, "{cut}");
        assert_eq!(cut, "😀😀😀…");
        assert_eq!(clip_start("abcdef", 4), "…def");
        assert_eq!(fair_cap(&[10, 10, 100], 60), 40);
        assert_eq!(fair_cap(&[10, 10], 60), usize::MAX);
    }

    mod every_rendering {
        use super::super::*;
        use crate::diagnosis::verdict::{next_actions, Step, StepId, StepStatus, VerdictCode};
        use crate::domain::{Carrier, CheckKey, Region, Tugboat};
        use crate::sim::blockkit::validate_message;
        use crate::slack::mrkdwn::{live_tokens, live_tokens_in};
        use proptest::prelude::*;

        /// Outside text: Unicode, mrkdwn metacharacters, mentions and links, fences.
        fn hostile() -> impl Strategy<Value = String> {
            prop_oneof![
                "\\PC{0,40}",
                "[<>!@#&`|*_~^: a-z]{0,40}",
                Just("x`<!channel>``".to_string()),
                Just(
                    "```<@U123>``` <https://evil.example|click> <!subteam^S1|@oncall>".to_string()
                ),
                Just("😀".repeat(30)),
            ]
        }

        /// Big outside text: up to 10 KB of it.
        fn big() -> impl Strategy<Value = String> {
            (hostile(), 0usize..10_240).prop_map(|(s, n)| {
                let unit = if s.is_empty() { "x".to_string() } else { s };
                unit.chars().cycle().take(n).collect()
            })
        }

        fn step() -> impl Strategy<Value = Step> {
            (
                prop::sample::select(vec![
                    StepId::Lookup,
                    StepId::Carrier,
                    StepId::Job,
                    StepId::ApiKey,
                    StepId::Region,
                    StepId::IamProbe,
                ]),
                prop::sample::select(vec![
                    StepStatus::Ok,
                    StepStatus::Failed,
                    StepStatus::Skipped,
                    StepStatus::Warning,
                ]),
                prop::collection::vec(prop_oneof![hostile(), big()], 0..4),
            )
                .prop_map(|(id, status, evidence)| Step::new(id, status, evidence))
        }

        fn report_value() -> impl Strategy<Value = Report> {
            (
                prop::sample::select(VerdictCode::ALL.to_vec()),
                any::<bool>(),
                prop_oneof![hostile(), big()],
                any::<bool>(),
                proptest::option::of(hostile()),
                proptest::option::of(prop_oneof![
                    Just("http://jenkins.example/job/x/5/".to_string()),
                    hostile()
                ]),
                proptest::option::of(prop_oneof![hostile(), big()]),
                prop::collection::vec(step(), 0..60),
            )
                .prop_map(
                    |(
                        verdict,
                        confirmed,
                        summary,
                        located,
                        region_found,
                        build_url,
                        console_tail,
                        steps,
                    )| {
                        let region = Region::parse("us-east").ok();
                        Report {
                            verdict,
                            confirmed,
                            summary,
                            location: located
                                .then(|| LocationId::parse("c1hk4ek107l5au5mq8hg").ok())
                                .flatten(),
                            environment: located.then_some(Environment::Prod),
                            tugboat: Tugboat::parse("prod-wdc04.carrier107").ok(),
                            carrier: Carrier::parse("prod-wdc04-carrier2").ok(),
                            next_actions: next_actions(verdict, region.as_ref()),
                            region_expected: region,
                            region_found,
                            build_url,
                            console_tail,
                            key_fingerprint: Some("…3`<!".into()),
                            steps,
                            checked_at: chrono::Utc::now(),
                        }
                    },
                )
        }

        fn context_value() -> impl Strategy<Value = ReportContext> {
            let target = ("[a-z_]{1,30}", prop_oneof![hostile(), "[A-Za-z ]{80,120}"])
                .prop_map(|(name, title)| TargetButton { name, title });
            (
                prop::collection::vec(target.clone(), 0..=12),
                proptest::option::of(target),
                proptest::option::of(0u64..1_000_000),
                any::<bool>(),
                proptest::option::of(hostile()),
                proptest::option::of((0usize..100_000, 0usize..100_000)),
            )
                .prop_map(
                    |(mut targets, page_target, age, buttons, preface, feedback)| {
                        // Names are `[escalation.<name>]` keys: unique.
                        let mut seen = HashSet::new();
                        targets.retain(|t| seen.insert(t.name.clone()));
                        ReportContext {
                            runbook_url: "https://runbook.example/iam-token".into(),
                            targets,
                            page_target,
                            reused_age: age.map(Duration::from_secs),
                            buttons,
                            // The escalation copy's first line, as the handler builds it.
                            preface: preface.map(|who| {
                                format!(
                                    ":rotating_light: {} escalates this diagnosis to *{}*. {}",
                                    crate::slack::mrkdwn::user(&who),
                                    crate::slack::mrkdwn::escape(&who),
                                    crate::slack::mrkdwn::link(
                                        "https://slack.example/archives/C1/p1",
                                        "Open the on-call thread"
                                    )
                                )
                            }),
                            silence: buttons,
                            feedback: feedback
                                .map(|(up, down)| crate::feedback::Tally { up, down }),
                        }
                    },
                )
        }

        fn live_in(blocks: &[Value]) -> Vec<String> {
            live_tokens_in(&Value::Array(blocks.to_vec()))
        }

        /// The live tokens linkbot itself puts in a report: its links only.
        fn own_tokens(tokens: &[String]) -> bool {
            tokens.iter().all(|t| {
                t.starts_with("<http://jenkins.example/job/x/5/|")
                    || t.starts_with("<https://runbook.example/")
                    || t.starts_with("<https://slack.example/")
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Every verdict, any context, hostile and huge text: Slack (as strictly as the
            /// simulator reads it) accepts the report, and nothing outside becomes live.
            #[test]
            fn every_report_passes_block_kit_and_holds_no_outside_mention(
                report in report_value(),
                ctx in context_value(),
            ) {
                let blocks = super::super::report(&report, &ctx);
                let text = fallback_text(&report);
                let checked = validate_message(Some(&text), Some(&Value::Array(blocks.clone())));
                prop_assert!(checked.is_ok(), "{:?}\n{}", checked, serde_json::to_string_pretty(&blocks).unwrap_or_default());
                let tokens = live_in(&blocks);
                prop_assert!(own_tokens(&tokens), "{:?}", tokens);
                // What slack-morphism sends (web.rs converts through its models) is what was
                // rendered: no field is dropped or changed on the way.
                for b in &blocks {
                    let model: slack_morphism::blocks::SlackBlock =
                        serde_json::from_value(b.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let sent = serde_json::to_value(&model).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(&sent, b);
                }
                // The buttons, when shown, are last and never cut.
                if ctx.buttons && report.location.is_some() {
                    prop_assert_eq!(&blocks[blocks.len() - 1]["type"], "actions");
                }
            }

            /// The progress message, at every stage, with hostile and huge outside text (job
            /// name, Jenkins' queue reason and result): Slack accepts it, nothing becomes live,
            /// no outside text opens a code span, and the plain version says the same, bounded.
            #[test]
            fn every_progress_message_passes_block_kit(
                stages in prop::collection::vec(stage(), 0..40),
                resumed in any::<bool>(),
            ) {
                let location = LocationId::parse("c1hk4ek107l5au5mq8hg").expect("valid id");
                for environment in [Environment::Prod, Environment::Stage] {
                    for n in [0, stages.len() / 2, stages.len()] {
                        let view = ProgressView {
                            key: CheckKey { environment, location: location.clone() },
                            resumed,
                            stages: stages[..n].to_vec(),
                        };
                        let (text, blocks) = progress(&view);
                        let checked = validate_message(Some(&text), Some(&Value::Array(blocks.clone())));
                        prop_assert!(checked.is_ok(), "{:?}", checked);
                        prop_assert!(live_in(&blocks).is_empty());
                        let lines = progress_lines(&view);
                        prop_assert_eq!(lines.len(), n + usize::from(resumed));
                        for line in &lines {
                            prop_assert!(line.matches('`').count() % 2 == 0, "{}", line);
                        }
                        let plain = plain_progress(&view);
                        prop_assert!(plain.chars().count() <= MAX_PLAIN);
                        prop_assert!(live_tokens(&plain).is_empty(), "{}", plain);
                    }
                }
            }
        }

        fn stage() -> impl Strategy<Value = Stage> {
            let outside = || prop_oneof![hostile(), big()];
            let duration = || (0u64..100_000).prop_map(Duration::from_secs);
            prop_oneof![
                (0usize..1000).prop_map(|running| Stage::WaitingForSlot { running }),
                Just(Stage::LookingUp),
                Just(Stage::Located {
                    tugboat: Tugboat::parse("prod-wdc04.carrier107").expect("valid"),
                    carrier: Carrier::parse("prod-wdc04-carrier2").expect("valid"),
                }),
                outside().prop_map(|job| Stage::Triggering { job }),
                proptest::option::of(outside()).prop_map(|why| Stage::JenkinsQueue { why }),
                (any::<u64>(), duration(), proptest::option::of(duration())).prop_map(
                    |(number, elapsed, estimated)| Stage::Build {
                        number,
                        state: BuildState::Running { elapsed, estimated },
                    }
                ),
                (any::<u64>(), outside()).prop_map(|(number, result)| Stage::Build {
                    number,
                    state: BuildState::Finished { result },
                }),
                duration().prop_map(|elapsed| Stage::ReadingArtifacts { elapsed }),
            ]
        }
    }

    fn view(stages: Vec<Stage>) -> ProgressView {
        ProgressView {
            key: CheckKey {
                environment: Environment::Prod,
                location: LocationId::parse("c1hk4ek107l5au5mq8hg").unwrap(),
            },
            resumed: false,
            stages,
        }
    }

    #[test]
    fn progress_bars_fill_with_time() {
        assert_eq!(
            progress_bar(Duration::from_secs(0), Some(Duration::from_secs(300))),
            "░░░░░░░░░░ 0.0s of ~5m00s"
        );
        assert!(
            progress_bar(Duration::from_secs(150), Some(Duration::from_secs(300)))
                .starts_with("▓▓▓▓▓░░░░░")
        );
        assert!(
            progress_bar(Duration::from_secs(400), Some(Duration::from_secs(300)))
                .contains("over the estimate")
        );
        assert!(progress_bar(Duration::from_secs(5), None).contains("no estimate"));
    }

    #[test]
    fn each_stage_reads_as_one_line() {
        let mut v = view(vec![
            Stage::LookingUp,
            Stage::Located {
                tugboat: Tugboat::parse("prod-wdc04.carrier107").unwrap(),
                carrier: Carrier::parse("prod-wdc04-carrier2").unwrap(),
            },
            Stage::Triggering {
                job: "armada-ha-master-get-info".into(),
            },
            Stage::JenkinsQueue { why: None },
            Stage::Build {
                number: 17,
                state: BuildState::Running {
                    elapsed: Duration::from_secs(150),
                    estimated: Some(Duration::from_secs(300)),
                },
            },
            Stage::ReadingArtifacts {
                elapsed: Duration::from_secs(65),
            },
        ]);
        v.resumed = true;
        assert_eq!(
            progress_lines(&v),
            vec![
                "Resumed after a bot restart.".to_string(),
                "Looking up `c1hk4ek107l5au5mq8hg` in the prod cluster directory…".into(),
                "✅ Tugboat `prod-wdc04.carrier107` (`prod-wdc04-carrier107`), carrier `prod-wdc04-carrier2`".into(),
                "Triggering armada-ha-master-get-info…".into(),
                "Jenkins queue: waiting for an executor".into(),
                "Build #17 running: ▓▓▓▓▓░░░░░ 2m30s of ~5m00s".into(),
                "Reading the artifacts… (1m05s so far)".into(),
            ]
        );
        assert_eq!(
            progress_lines(&view(vec![Stage::WaitingForSlot { running: 16 }])),
            vec![":double_vertical_bar: Queued: 16 checks are running; this one starts as soon as one ends.".to_string()]
        );
        let (text, blocks) = progress(&view(Vec::new()));
        assert_eq!(text, "Checking c1hk4ek107l5au5mq8hg (prod)…");
        assert_eq!(blocks[1]["text"]["text"], "• starting…");
    }

    #[test]
    fn outside_text_in_stages_is_escaped_in_blocks_and_plain_text() {
        let hostile = "<!channel> `x` & <https://evil|y>";
        let v = view(vec![
            Stage::Triggering {
                job: hostile.into(),
            },
            Stage::JenkinsQueue {
                why: Some(hostile.into()),
            },
            Stage::Build {
                number: 3,
                state: BuildState::Finished {
                    result: hostile.into(),
                },
            },
        ]);
        let escaped = "&lt;!channel&gt; ˋxˋ &amp; &lt;https://evil|y&gt;";
        let (_, blocks) = progress(&v);
        let body = blocks[1]["text"]["text"].as_str().unwrap();
        let plain = plain_progress(&v);
        for shown in [body, plain.as_str()] {
            assert!(!shown.contains(hostile), "{shown}");
            assert!(shown.contains(&format!("Triggering {escaped}…")), "{shown}");
            assert!(
                shown.contains(&format!("Jenkins queue: {escaped}")),
                "{shown}"
            );
            assert!(
                shown.contains(&format!("Build #3 finished: {escaped}")),
                "{shown}"
            );
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
            text.contains("a=1&amp;b=%3C2%3E%7Cx|Jenkins build>"),
            "{text}"
        );

        r.summary = "x".repeat(50_000);
        r.next_actions = vec!["y".repeat(10_000); 40];
        assert!(plain_report(&r, "").chars().count() <= MAX_PLAIN);
    }

    fn record(paged_by: &str, sent: bool) -> PageRecord {
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 11, 30, 23, 7, 5)
            .single()
            .expect("a time");
        PageRecord {
            check_id: CheckId(7),
            target: "satellite_link".into(),
            paged_by: paged_by.into(),
            claimed_at: at,
            paged_at: sent.then_some(at + chrono::Duration::seconds(2)),
            link: None,
        }
    }

    #[test]
    fn already_paged_names_who_and_when() {
        let sent = already_paged(&record("U0ENGINEER", true));
        assert!(
            sent.contains("Already paged by <@U0ENGINEER> at <!date^1796080027^{time}|23:07 UTC>"),
            "{sent}"
        );
        let on_its_way = already_paged(&record("U0ENGINEER", false));
        assert!(
            on_its_way.contains("Already paged by <@U0ENGINEER> at <!date^1796080025^")
                && on_its_way.contains("not answered yet"),
            "{on_its_way}"
        );
        // A stored name that is not a user id is shown as text, never as a mention.
        let odd = already_paged(&record("<!channel>", true));
        assert!(
            !odd.contains("<!channel>") && odd.contains("&lt;!channel&gt;"),
            "{odd}"
        );
    }

    #[test]
    fn an_escalation_answer_says_what_went_through_and_escapes_outside_text() {
        let outcome = Escalated {
            target_title: "Razee <!channel>".into(),
            done: vec![
                Done::Posted {
                    channel: crate::domain::SlackChannelId::parse("C0TEAM").unwrap(),
                    link: Some("https://slack.example/p1".into()),
                },
                Done::IssueOpened {
                    repo: crate::domain::GithubRepo::parse("razee-io/razee").unwrap(),
                    issue: crate::escalation::IssueLink {
                        number: 7,
                        html_url: "https://github.example/razee-io/razee/issues/7".into(),
                    },
                },
            ],
            failed: vec![Failed::PagerDutyNotConfigured {
                target_title: "Razee <!channel>".into(),
            }],
        };
        let text = escalated("U0ENGINEER", &outcome);
        assert_eq!(
            text,
            ":rotating_light: <@U0ENGINEER> escalated to *Razee &lt;!channel&gt;*: posted to <#C0TEAM> (<https://slack.example/p1|message>); opened <https://github.example/razee-io/razee/issues/7|razee-io/razee#7>.\n:warning: Failed: PagerDuty is not configured for Razee &lt;!channel&gt;."
        );
        let nothing = Escalated {
            target_title: "Razee".into(),
            done: vec![],
            failed: vec![Failed::GitHubNotConfigured],
        };
        assert_eq!(
            escalated("U0ENGINEER", &nothing),
            ":x: <@U0ENGINEER> tried to escalate to *Razee*, but nothing went through.\n:warning: Failed: GitHub is not configured (GITHUB_TOKEN)."
        );
    }
}

/// `HH:MM UTC` of a time.
fn hhmm(at: chrono::DateTime<chrono::Utc>) -> String {
    format!("{} UTC", at.format("%H:%M"))
}

/// The lines an incident puts above its diagnosis: resolved (with how long it was open), fixed
/// by a re-run, fired again ×N. `None` when there is nothing to say yet.
pub fn incident_preface(status: &IncidentStatus) -> Option<String> {
    let mut lines = Vec::new();
    if let (Some(at), Some(open_for)) = (status.resolved_at, status.open_for()) {
        lines.push(format!(
            "✅ *Resolved at {}* — open {} min",
            hhmm(at),
            open_for.num_minutes().max(0)
        ));
    }
    if let Some(at) = status.fixed_at {
        lines.push(format!(
            ":wrench: *Fixed* at {}: a re-run found the key working.",
            hhmm(at)
        ));
    }
    if status.repeats > 0 {
        let last = status
            .last_repeat_at
            .map(|at| format!(", last at {}", hhmm(at)))
            .unwrap_or_default();
        lines.push(format!(":repeat: Fired again ×{}{last}", status.repeats));
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// `ctx` for a diagnosis shown with its incident's `status`: the status lines first, and once
/// resolved no Escalate or Page button (Re-run stays).
pub fn with_incident(mut ctx: ReportContext, status: &IncidentStatus) -> ReportContext {
    if let Some(lines) = incident_preface(status) {
        ctx.preface = Some(match ctx.preface.take() {
            Some(p) => format!("{lines}\n{p}"),
            None => lines,
        });
    }
    if status.resolved_at.is_some() {
        ctx.targets.clear();
        ctx.page_target = None;
        ctx.silence = false;
    }
    ctx
}

/// The one-line reply an incident puts in a thread.
pub fn incident_notice(notice: &Notice) -> String {
    let pointer = |link: &Option<String>| match link {
        Some(url) => format!(" {}", mrkdwn::link(url, "See the diagnosis")),
        None => String::new(),
    };
    match notice {
        Notice::Repeat {
            count,
            diagnosis_link,
        } => format!(
            ":repeat: Fired again (×{count}): same incident, no new check.{}",
            pointer(diagnosis_link)
        ),
        Notice::Resolved {
            at,
            open_for,
            diagnosis_link,
            expired_silences,
            silence_failures,
            followups,
        } => format!(
            ":white_check_mark: Resolved at {} — open {} min.{}{}{}",
            hhmm(*at),
            open_for.num_minutes().max(0),
            pointer(diagnosis_link),
            resolved_silences_lines(expired_silences, silence_failures),
            followup_lines(followups)
        ),
        Notice::Changed { was, now, fixed } => {
            let tail = if *fixed { ": the key works" } else { "" };
            format!("was `{}`, now `{}`{tail}", was.as_str(), now.as_str())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Storms: the storm message, its buttons, and the one line under every other alert.

/// `action_id` kind of the storm message's buttons (`linkbot_storm:check_all`, `linkbot_storm:stop`).
pub const ACTION_STORM: &str = "linkbot_storm";
/// The most datacenters or regions named in the storm message (the rest are counted).
const MAX_STORM_PLACES: usize = 12;

/// What a storm button carries back when clicked (JSON in its `value`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StormButtonValue {
    /// The storm.
    #[serde(rename = "s")]
    pub storm: i64,
}

impl StormButtonValue {
    /// Parses a clicked storm button's value; `None` for anything not made by [`storm_message`].
    pub fn parse(value: &str) -> Option<StormButtonValue> {
        if value.len() > 2000 {
            return None;
        }
        serde_json::from_str(value).ok()
    }
}

fn places(list: &[(String, usize)]) -> String {
    let mut parts: Vec<String> = list
        .iter()
        .take(MAX_STORM_PLACES)
        .map(|(name, n)| format!("{} ×{n}", mrkdwn::escape(name)))
        .collect();
    if list.len() > MAX_STORM_PLACES {
        parts.push(format!("+{} more", list.len() - MAX_STORM_PLACES));
    }
    if parts.is_empty() {
        "not known yet".to_string()
    } else {
        parts.join(", ")
    }
}

/// The sentence saying what a cause the sample agrees on means.
pub fn storm_cause(cause: &Cause) -> String {
    // A real reason (one sampled location's), not the digit-stripped form it was compared by.
    let reason = mrkdwn::escape(&cause.shown);
    let code = cause.verdict.as_str();
    let meaning = match cause.verdict {
        VerdictCode::ApiKeyAccepted => "every sampled key works and the region is right: this is *not a key problem* — look at IAM or the connector side".to_string(),
        VerdictCode::IamUnreachable => format!("IAM is unreachable from every sampled location: {reason}"),
        VerdictCode::LookupFailed => format!("the directory lookup fails the same way everywhere: {reason}"),
        VerdictCode::JobFailed => format!("the Jenkins job fails the same way everywhere: {reason}"),
        VerdictCode::ConfigMissing
        | VerdictCode::ApiKeyInvalid
        | VerdictCode::RegionMismatch
        | VerdictCode::UnknownLocation
        | VerdictCode::ArtifactMissing => format!("every sampled location has the same verdict: {reason}"),
    };
    format!(
        ":dart: *Cause — the sample agrees ({n}/{n}):* `{code}`: {meaning}",
        n = cause.agreeing
    )
}

/// The storm message's plain text (notification and fallback).
pub fn storm_text(view: &StormView) -> String {
    let state = if view.active { "" } else { " (ended)" };
    let cause = match &view.agreement {
        Agreement::Agreed(c) => format!(" Cause: {}.", c.verdict.as_str()),
        _ => String::new(),
    };
    format!(
        "Alert storm{state}: {} locations in {} fired the IAM-token alert.{cause}",
        view.locations, view.environment
    )
}

/// The storm message: what fired where and when, IAM's health, the sample and what it says,
/// the verdicts so far, and the buttons the storm offers ([`StormView::offered`]).
pub fn storm_message(view: &StormView) -> (String, Vec<Value>) {
    let mut blocks = Vec::new();
    let title = if view.active {
        format!(":cyclone: Alert storm in {}", view.environment)
    } else {
        format!(":cyclone: Alert storm in {} — ended", view.environment)
    };
    blocks.push(json!({"type": "header", "text": plain(&title, MAX_HEADER)}));
    let mut facts = format!(
        "*{} locations* fired `{}` between {} and {}.\n*Datacenters:* {}\n*Regions:* {}",
        view.locations,
        super::alerts::ALERT_NAME,
        hhmm(view.first_firing),
        hhmm(view.last_firing),
        places(&view.datacenters),
        places(&view.regions),
    );
    if view.unlocated > 0 {
        facts.push_str(&format!(" ({} not located)", view.unlocated));
    }
    blocks.push(section(&facts));
    let iam = match &view.iam {
        None => ":hourglass: IAM token endpoint: probing…".to_string(),
        Some(Ok(())) => ":white_check_mark: IAM token endpoint: reachable.".to_string(),
        Some(Err(why)) => format!(
            ":x: IAM token endpoint: *unreachable* — {}",
            mrkdwn::escape(why)
        ),
    };
    blocks.push(section(&iam));
    let verdict_line = match &view.agreement {
        Agreement::Waiting { have, want } if *want == 0 => {
            ":hourglass: Choosing a sample spread over datacenters…".to_string()
        }
        Agreement::Waiting { have, want } => format!(
            ":hourglass: Checking a sample of {want} locations spread over datacenters ({have}/{want} verdicts)."
        ),
        Agreement::Agreed(cause) => storm_cause(cause),
        Agreement::Disagreed => match view.mode {
            StormMode::Budget => ":twisted_rightwards_arrows: The sample disagrees: checking the other locations within the build budget.".to_string(),
            StormMode::Stopped | StormMode::Sample => {
                ":twisted_rightwards_arrows: The sample disagrees.".to_string()
            }
        },
    };
    blocks.push(section(&verdict_line));
    if !view.sample.is_empty() {
        let lines: Vec<String> = view
            .sample
            .iter()
            .map(|s| {
                let dc = s
                    .datacenter
                    .as_deref()
                    .map(|d| format!(" ({})", mrkdwn::escape(d)))
                    .unwrap_or_default();
                let verdict = match (s.verdict, &s.reason) {
                    (Some(v), Some(r)) => {
                        format!("`{}` — {}", v.as_str(), mrkdwn::escape(r))
                    }
                    (Some(v), None) => format!("`{}`", v.as_str()),
                    (None, _) => "checking…".to_string(),
                };
                format!("• `{}`{dc}: {verdict}", s.location)
            })
            .collect();
        blocks.push(section(&format!("*Sample*\n{}", lines.join("\n"))));
    }
    let counts = if view.verdicts.is_empty() {
        "no verdict yet".to_string()
    } else {
        view.verdicts
            .iter()
            .map(|(v, n)| format!("`{}` ×{n}", v.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mode = match (view.active, view.mode) {
        (false, _) => format!(
            "Ended{} after a quiet window; every location is in the audit log.",
            view.ended_at
                .map(|t| format!(" at {}", hhmm(t)))
                .unwrap_or_default()
        ),
        (true, StormMode::Stopped) => "Stopped by on-call: no more checks.".to_string(),
        (true, StormMode::Budget) => "Checking the rest within the build budget.".to_string(),
        (true, StormMode::Sample) => {
            "Other alerts get a link to this message and no build.".to_string()
        }
    };
    blocks.push(context(&format!(
        "Verdicts: {counts} · checked {} of {} · {mode}",
        view.checked, view.locations
    )));
    let offered = view.offered();
    if !offered.is_empty() {
        let value = StormButtonValue { storm: view.id.0 };
        let value = serde_json::to_string(&value).unwrap_or_default();
        let elements: Vec<Value> = offered
            .iter()
            .map(|a| {
                let (label, style) = match a {
                    StormAction::CheckAll => ("Check all (within the budget)", "primary"),
                    StormAction::Stop => ("Stop", "danger"),
                };
                json!({
                    "type": "button",
                    "text": plain(label, MAX_BUTTON_TEXT),
                    "action_id": format!("{ACTION_STORM}:{}", a.as_str()),
                    "value": value,
                    "style": style,
                })
            })
            .collect();
        blocks.push(
            json!({"type": "actions", "block_id": "linkbot_storm_actions", "elements": elements}),
        );
    }
    (storm_text(view), blocks)
}

/// The storm buttons a rendered storm message offers: each button's `action_id` and value.
pub fn offered_storm_buttons(blocks: &[Value]) -> Vec<(String, StormButtonValue)> {
    blocks
        .iter()
        .filter(|b| b["type"] == "actions")
        .filter_map(|b| b["elements"].as_array())
        .flatten()
        .filter_map(|e| {
            let id = e["action_id"].as_str()?;
            let value = StormButtonValue::parse(e["value"].as_str()?)?;
            Some((id.to_string(), value))
        })
        .collect()
}

/// The one line under an alert that is part of a storm: no separate check, a link to the
/// storm message (`link`, when Slack gave one).
pub fn storm_pointer(link: Option<&str>) -> String {
    match link {
        Some(url) => format!(
            ":cyclone: Part of an alert storm: no separate check for this location. {}",
            mrkdwn::link(url, "See the storm message")
        ),
        None => ":cyclone: Part of an alert storm: no separate check for this location; see the storm message in the channel.".to_string(),
    }
}

#[cfg(test)]
mod storm_tests {
    use super::*;
    use crate::domain::LocationId;
    use crate::store::StormId;
    use crate::storm::SampleLine;
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    fn view(locations: usize, agreement: Agreement, mode: StormMode, active: bool) -> StormView {
        let at = Utc
            .with_ymd_and_hms(2026, 12, 1, 6, 0, 0)
            .single()
            .expect("time");
        StormView {
            id: StormId(7),
            environment: Environment::parse("prod").expect("env"),
            active,
            mode,
            locations,
            datacenters: (0..20).map(|i| (format!("dc{i:02}"), 20 - i)).collect(),
            regions: vec![("us-east".into(), 3)],
            unlocated: 2,
            first_firing: at,
            last_firing: at + chrono::Duration::minutes(3),
            ended_at: None,
            iam: Some(Err("IAM answered HTTP 503 <@U1>".into())),
            sample: vec![SampleLine {
                location: LocationId::parse("c1hk4ek107l5au5mq8hg").expect("id"),
                datacenter: Some("wdc04".into()),
                verdict: Some(VerdictCode::JobFailed),
                reason: Some("build failed <!channel>".into()),
            }],
            agreement,
            verdicts: vec![(VerdictCode::JobFailed, 1)],
            checked: 3,
            unchecked: locations.saturating_sub(3),
        }
    }

    #[test]
    fn the_storm_message_names_count_places_cause_and_buttons() {
        let cause = Cause {
            verdict: VerdictCode::ApiKeyAccepted,
            reason: "ok".into(),
            shown: "ok".into(),
            agreeing: 3,
        };
        let table = [
            (
                Agreement::Agreed(cause),
                StormMode::Sample,
                true,
                "not a key problem",
                vec!["linkbot_storm:check_all", "linkbot_storm:stop"],
            ),
            (
                Agreement::Disagreed,
                StormMode::Budget,
                true,
                "checking the other locations",
                vec!["linkbot_storm:stop"],
            ),
            (
                Agreement::Waiting { have: 1, want: 3 },
                StormMode::Stopped,
                true,
                "(1/3 verdicts)",
                vec!["linkbot_storm:check_all"],
            ),
            (
                Agreement::Disagreed,
                StormMode::Budget,
                false,
                "Ended",
                vec![],
            ),
        ];
        for (agreement, mode, active, says, buttons) in table {
            let v = view(40, agreement, mode, active);
            let (text, blocks) = storm_message(&v);
            assert!(text.contains("40 locations in prod"), "{text}");
            let all = serde_json::to_string(&blocks).expect("json");
            assert!(all.contains(says), "{says}: {all}");
            assert!(all.contains("+8 more"), "{all}");
            assert!(
                !all.contains("<@U1>") && !all.contains("<!channel>"),
                "{all}"
            );
            let ids: Vec<String> = blocks
                .iter()
                .filter(|b| b["type"] == "actions")
                .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
                .filter_map(|e| e["action_id"].as_str().map(str::to_string))
                .collect();
            assert_eq!(ids, buttons);
            crate::sim::blockkit::validate_message(Some(&text), Some(&Value::Array(blocks)))
                .expect("valid Block Kit");
        }
    }

    #[test]
    fn the_cause_and_the_sample_show_a_real_reason_not_the_compared_form() {
        let cause = Cause {
            verdict: VerdictCode::IamUnreachable,
            reason: "IAM answered HTTP # (BXNIM#E)".into(),
            shown: "IAM answered HTTP 503 (BXNIM0415E) `<!here>`".into(),
            agreeing: 3,
        };
        let mut v = view(40, Agreement::Agreed(cause), StormMode::Sample, true);
        v.sample[0].reason = Some("API key (…nB3w) rejected".into());
        let (_, blocks) = storm_message(&v);
        let all = serde_json::to_string(&blocks).expect("json");
        assert!(all.contains("IAM answered HTTP 503 (BXNIM0415E)"), "{all}");
        assert!(all.contains("API key (…nB3w) rejected"), "{all}");
        assert!(!all.contains('#'), "a compared form is shown: {all}");
        // Outside text, escaped like all of it: no mention, no code span broken.
        assert!(
            all.contains("&lt;!here&gt;") && !all.contains("`<!here>`"),
            "{all}"
        );
    }

    #[test]
    fn the_pointer_links_to_the_storm_message() {
        assert!(storm_pointer(Some("https://x.slack.com/archives/C1/p1"))
            .contains("<https://x.slack.com/archives/C1/p1|See the storm message>"));
        assert!(storm_pointer(None).contains("see the storm message"));
        assert!(!storm_pointer(Some("javascript:alert(1)")).contains("<javascript"));
    }

    proptest! {
        #[test]
        fn any_storm_message_is_valid_block_kit(
            n in 0usize..5000,
            reason in ".{0,4000}",
            why in ".{0,4000}",
            dcs in proptest::collection::vec(("[a-z]{3}[0-9]{2}", 1usize..100), 0..40),
            active in any::<bool>(),
        ) {
            let mut v = view(n, Agreement::Agreed(Cause { verdict: VerdictCode::LookupFailed, reason: reason.clone(), shown: reason.clone(), agreeing: 3 }), StormMode::Sample, active);
            v.iam = Some(Err(why));
            v.datacenters = dcs;
            v.sample[0].reason = Some(reason);
            let (text, blocks) = storm_message(&v);
            let checked = crate::sim::blockkit::validate_message(Some(&text), Some(&Value::Array(blocks)));
            prop_assert!(checked.is_ok(), "{:?}", checked);
        }
    }
}

#[cfg(test)]
mod incident_tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn at(h: u32, m: u32) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0)
            .single()
            .expect("a time")
    }

    #[test]
    fn the_preface_says_resolved_fixed_and_repeats() {
        let status = IncidentStatus {
            fired_at: at(10, 0),
            repeats: 2,
            last_repeat_at: Some(at(10, 8)),
            fixed_at: Some(at(10, 12)),
            resolved_at: Some(at(10, 23)),
        };
        assert_eq!(
            incident_preface(&status).as_deref(),
            Some(
                "✅ *Resolved at 10:23 UTC* — open 23 min\n:wrench: *Fixed* at 10:12 UTC: a re-run found the key working.\n:repeat: Fired again ×2, last at 10:08 UTC"
            )
        );
        let fresh = IncidentStatus {
            repeats: 0,
            last_repeat_at: None,
            fixed_at: None,
            resolved_at: None,
            ..status
        };
        assert_eq!(incident_preface(&fresh), None);
    }

    #[test]
    fn a_change_of_verdict_is_said_plainly() {
        use crate::diagnosis::verdict::VerdictCode;
        let n = Notice::Changed {
            was: VerdictCode::ApiKeyInvalid,
            now: VerdictCode::ApiKeyAccepted,
            fixed: true,
        };
        assert_eq!(
            incident_notice(&n),
            "was `api_key_invalid`, now `api_key_accepted`: the key works"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Silences: the report's "Silence…" select and the thread message showing a silence.

/// `action_id` of the report's "Silence…" select.
pub const ACTION_SILENCE: &str = "linkbot_silence";
/// `action_id` of the Unsilence button on a silence's message.
pub const ACTION_UNSILENCE: &str = "linkbot_unsilence";
/// `block_id` of the report's silence select.
pub const BLOCK_SILENCE: &str = "linkbot_silence";
/// `block_id` of a silence message's Unsilence button.
pub const BLOCK_UNSILENCE: &str = "linkbot_unsilence";
/// Block Kit's limit on an option's text (`sim::blockkit::MAX_OPTION_TEXT`).
const MAX_OPTION_TEXT: usize = 75;
/// Block Kit's limit on a select's placeholder.
const MAX_PLACEHOLDER: usize = 150;

/// What an option of the "Silence…" select carries back (JSON in the option's `value`, at
/// most 150 characters: a location is 20).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceValue {
    /// The location.
    #[serde(rename = "l")]
    pub location: String,
    /// The environment.
    #[serde(rename = "e")]
    pub environment: Environment,
    /// The choice's code (`1h`, `4h`, `24h`, `resolved`).
    #[serde(rename = "d")]
    pub choice: String,
}

impl SilenceValue {
    /// Parses a chosen option's value; `None` for anything [`report`] does not make.
    pub fn parse(value: &str) -> Option<(SilenceValue, LocationId, SilenceFor)> {
        if value.len() > 150 {
            return None;
        }
        let v: SilenceValue = serde_json::from_str(value).ok()?;
        let loc = LocationId::parse(&v.location).ok()?;
        let choice = SilenceFor::parse(&v.choice)?;
        Some((v, loc, choice))
    }
}

/// What the Unsilence button carries back: the silence's Alertmanager id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsilenceValue {
    /// Alertmanager's id of the silence.
    #[serde(rename = "s")]
    pub silence_id: String,
}

impl UnsilenceValue {
    /// Parses a clicked Unsilence button's value.
    pub fn parse(value: &str) -> Option<UnsilenceValue> {
        if value.len() > 2000 {
            return None;
        }
        let v: UnsilenceValue = serde_json::from_str(value).ok()?;
        crate::alertmanager::SilenceId::parse(&v.silence_id).map(|_| v)
    }
}

/// The "Silence…" select: one option per [`SilenceFor`], in its own actions block. None on
/// copies without buttons, where the environment has no Alertmanager, or without a location.
fn silence_select(report: &Report, ctx: &ReportContext) -> Option<Value> {
    let (true, true, Some(location), Some(environment)) = (
        ctx.buttons,
        ctx.silence,
        &report.location,
        report.environment,
    ) else {
        return None;
    };
    let options: Vec<Value> = SilenceFor::ALL
        .iter()
        .map(|choice| {
            let value = SilenceValue {
                location: location.to_string(),
                environment,
                choice: choice.as_str().to_string(),
            };
            json!({
                "text": plain(choice.label(), MAX_OPTION_TEXT),
                "value": serde_json::to_string(&value).unwrap_or_default(),
            })
        })
        .collect();
    Some(json!({
        "type": "actions",
        "block_id": BLOCK_SILENCE,
        "elements": [{
            "type": "static_select",
            "action_id": ACTION_SILENCE,
            "placeholder": plain("Silence…", MAX_PLACEHOLDER),
            "options": options,
        }]
    }))
}

/// `HH:MM UTC on YYYY-MM-DD`.
fn hhmm_day(at: chrono::DateTime<chrono::Utc>) -> String {
    format!("*{} UTC* on {}", at.format("%H:%M"), at.format("%Y-%m-%d"))
}

/// The thread message showing a silence: who silenced what, until when, its id (linked to
/// Alertmanager's UI when `link` is given) and, while active and once the store knows this
/// message (so a click on it can be authorized), the Unsilence button; once expired, who
/// expired it and when, with no button. The plain text (notifications) and blocks.
pub fn silence_notice(s: &SilenceRecord, link: Option<&str>) -> (String, Vec<Value>) {
    let id = match link {
        Some(url) => mrkdwn::link(url, &s.silence_id),
        None => mrkdwn::code(&s.silence_id),
    };
    let by = mrkdwn::user(&s.created_by);
    let what = format!("the alert for `{}` ({})", s.key.location, s.key.environment);
    let text = if s.active {
        let until = if s.until_resolved {
            format!(
                "until the incident resolves (at most until {})",
                hhmm_day(s.ends_at)
            )
        } else {
            format!("until {}", hhmm_day(s.ends_at))
        };
        format!(":no_bell: {by} silenced {what} in Alertmanager {until}. Silence {id}.")
    } else {
        let when = s
            .expired_at
            .map(|at| format!(" at {}", hhmm(at)))
            .unwrap_or_default();
        match s.expired_by.as_deref() {
            Some(crate::silence::EXPIRED_BY_LINKBOT) => format!(
                ":bell: Silence {id} of {what}, created by {by}, was expired by linkbot{when}: the incident resolved."
            ),
            Some(who) => format!(
                ":bell: Silence {id} of {what}, created by {by}, was expired by {}{when}.",
                mrkdwn::user(who)
            ),
            None => format!(":bell: Silence {id} of {what}, created by {by}, is expired."),
        }
    };
    let mut blocks = vec![section(&text)];
    if s.active && s.message.is_some() {
        let value = UnsilenceValue {
            silence_id: s.silence_id.clone(),
        };
        blocks.push(json!({
            "type": "actions",
            "block_id": BLOCK_UNSILENCE,
            "elements": [{
                "type": "button",
                "text": plain("Unsilence", MAX_BUTTON_TEXT),
                "action_id": ACTION_UNSILENCE,
                "value": serde_json::to_string(&value).unwrap_or_default(),
            }]
        }));
    }
    (clip(&text, MAX_SECTION), blocks)
}

/// The thread's answer when Alertmanager did not create a silence (`why`: its sentence).
pub fn silence_failed(requested_by: &str, why: &str) -> String {
    format!(
        ":x: {} asked to silence this alert, but it was not silenced: {}",
        mrkdwn::user(requested_by),
        mrkdwn::escape(&clip(why, 500))
    )
}

/// The thread's answer when Alertmanager took a silence the store could not record:
/// `expire_failed` is the sentence of expiring it again, when that failed too.
pub fn silence_not_recorded(silence_id: &str, expire_failed: Option<&str>) -> String {
    match expire_failed {
        None => format!(
            ":warning: Alertmanager accepted silence {}, but linkbot's store could not record it, so linkbot expired it again: the alert is not silenced. Try again in a minute.",
            mrkdwn::code(silence_id)
        ),
        Some(why) => format!(
            ":warning: Alertmanager accepted silence {}, but linkbot's store could not record it, and expiring it again failed too ({}): expire it in Alertmanager's UI.",
            mrkdwn::code(silence_id),
            mrkdwn::escape(&clip(why, 300))
        ),
    }
}

/// The thread's answer when Alertmanager did not expire a silence.
pub fn unsilence_failed(requested_by: &str, silence_id: &str, why: &str) -> String {
    format!(
        ":x: {} asked to expire silence {}, but it is still in force: {}",
        mrkdwn::user(requested_by),
        mrkdwn::code(silence_id),
        mrkdwn::escape(&clip(why, 500))
    )
}

/// The lines a resolve reply adds about the incident's silences (empty when there were none).
/// What the resolution did in PagerDuty and GitHub, a line each; a failure says what is left
/// to do by hand. `why` comes from outside (scrubbed by the clients) and is escaped here.
fn followup_lines(followups: &[Followup]) -> String {
    let mut out = String::new();
    for f in followups {
        out.push('\n');
        out.push_str(&match f {
            Followup::PagerDutyResolved { dedup_key } => format!(
                ":pager: Resolved the PagerDuty incident linkbot paged ({}).",
                mrkdwn::code(dedup_key)
            ),
            Followup::PagerDutyFailed { dedup_key, why } => format!(
                ":warning: Could not resolve the PagerDuty incident {}: {} Resolve it in PagerDuty.",
                mrkdwn::code(dedup_key),
                mrkdwn::escape(&clip(why, 300))
            ),
            Followup::IssueCommented { issue, closed } => format!(
                ":memo: Commented the resolution on {}{}",
                mrkdwn::code(issue),
                match closed {
                    Some(true) => " and closed it.",
                    Some(false) => "; closing it failed: close it by hand.",
                    None => ".",
                }
            ),
            Followup::IssueFailed { issue, why } => format!(
                ":warning: Could not comment on {}: {}",
                mrkdwn::code(issue),
                mrkdwn::escape(&clip(why, 300))
            ),
        });
    }
    out
}

fn resolved_silences_lines(expired: &[String], failed: &[(String, String)]) -> String {
    let mut out = String::new();
    if !expired.is_empty() {
        let ids: Vec<String> = expired.iter().map(|id| mrkdwn::code(id)).collect();
        out.push_str(&format!(
            "\n:bell: Expired the {} linkbot created for it in Alertmanager: {}.",
            if expired.len() == 1 {
                "silence"
            } else {
                "silences"
            },
            ids.join(", ")
        ));
    }
    for (id, why) in failed {
        out.push_str(&format!(
            "\n:warning: Could not expire silence {}: {}",
            mrkdwn::code(id),
            mrkdwn::escape(&clip(why, 300))
        ));
    }
    out
}

#[cfg(test)]
mod silence_tests {
    use super::*;
    use crate::diagnosis::verdict::VerdictCode;
    use crate::domain::CheckKey;
    use crate::store::MessageRef;
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    fn record(active: bool, until_resolved: bool, expired_by: Option<&str>) -> SilenceRecord {
        let message = Some(MessageRef {
            channel: "C0ONCALL".into(),
            ts: "1.2".into(),
        });
        let at = Utc
            .with_ymd_and_hms(2026, 12, 1, 9, 30, 0)
            .single()
            .unwrap();
        SilenceRecord {
            silence_id: "0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11".into(),
            key: CheckKey {
                location: LocationId::parse("c1hk4ek107l5au5mq8hg").unwrap(),
                environment: Environment::Prod,
            },
            incident_id: None,
            created_by: "U0ALICE".into(),
            created_by_name: "alice".into(),
            starts_at: at,
            ends_at: at + chrono::Duration::hours(4),
            until_resolved,
            thread: MessageRef {
                channel: "C0ONCALL".into(),
                ts: "1.1".into(),
            },
            message,
            active,
            expired_by: expired_by.map(str::to_string),
            expired_at: (!active).then(|| at + chrono::Duration::minutes(20)),
        }
    }

    fn ctx(silence: bool) -> ReportContext {
        ReportContext {
            runbook_url: "https://runbook".into(),
            buttons: true,
            silence,
            ..Default::default()
        }
    }

    fn a_report() -> Report {
        Report {
            verdict: VerdictCode::ApiKeyInvalid,
            confirmed: false,
            summary: "summary".into(),
            location: Some(LocationId::parse("c1hk4ek107l5au5mq8hg").unwrap()),
            environment: Some(Environment::Prod),
            tugboat: None,
            carrier: None,
            region_expected: None,
            region_found: None,
            build_url: None,
            console_tail: None,
            key_fingerprint: None,
            steps: Vec::new(),
            next_actions: Vec::new(),
            checked_at: Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).single().unwrap(),
        }
    }

    #[test]
    fn the_select_offers_each_duration_once_and_passes_the_validator() {
        let blocks = report(&a_report(), &ctx(true));
        crate::sim::blockkit::validate_message(Some("x"), Some(&json!(blocks)))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let select = blocks
            .iter()
            .find(|b| b["block_id"] == BLOCK_SILENCE)
            .expect("a silence block");
        let el = &select["elements"][0];
        assert_eq!(el["type"], "static_select");
        assert_eq!(el["action_id"], ACTION_SILENCE);
        assert_eq!(el["placeholder"]["text"], "Silence…");
        let options = el["options"].as_array().unwrap();
        let labels: Vec<&str> = options
            .iter()
            .map(|o| o["text"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            labels,
            [
                "1 hour",
                "4 hours",
                "24 hours",
                "Until resolved (at most 7 days)"
            ]
        );
        for (o, choice) in options.iter().zip(SilenceFor::ALL) {
            let (v, loc, parsed) = SilenceValue::parse(o["value"].as_str().unwrap()).unwrap();
            assert_eq!(loc.as_str(), "c1hk4ek107l5au5mq8hg");
            assert_eq!(v.environment, Environment::Prod);
            assert_eq!(parsed, choice);
        }
        // Not offered without Alertmanager, on copies without buttons, nor once resolved.
        for c in [
            ctx(false),
            ReportContext {
                buttons: false,
                ..ctx(true)
            },
        ] {
            assert!(!report(&a_report(), &c)
                .iter()
                .any(|b| b["block_id"] == BLOCK_SILENCE));
        }
        let resolved = with_incident(
            ctx(true),
            &IncidentStatus {
                fired_at: Utc::now(),
                repeats: 0,
                last_repeat_at: None,
                fixed_at: None,
                resolved_at: Some(Utc::now()),
            },
        );
        assert!(!report(&a_report(), &resolved)
            .iter()
            .any(|b| b["block_id"] == BLOCK_SILENCE));
    }

    #[test]
    fn silence_values_parse_only_what_the_select_makes() {
        let cases = [
            (
                r#"{"l":"c1hk4ek107l5au5mq8hg","e":"prod","d":"1h"}"#,
                Some(SilenceFor::OneHour),
            ),
            (
                r#"{"l":"c1hk4ek107l5au5mq8hg","e":"stage","d":"resolved"}"#,
                Some(SilenceFor::UntilResolved),
            ),
            (r#"{"l":"c1hk4ek107l5au5mq8hg","e":"prod","d":"2h"}"#, None),
            (r#"{"l":"not-a-location","e":"prod","d":"1h"}"#, None),
            (r#"{"l":"c1hk4ek107l5au5mq8hg","e":"dev","d":"1h"}"#, None),
            (r#"{"l":"c1hk4ek107l5au5mq8hg","e":"prod"}"#, None),
            ("1h", None),
            ("", None),
        ];
        for (value, want) in cases {
            assert_eq!(
                SilenceValue::parse(value).map(|(_, _, c)| c),
                want,
                "{value}"
            );
        }
        assert!(UnsilenceValue::parse(r#"{"s":"0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11"}"#).is_some());
        assert!(UnsilenceValue::parse(r#"{"s":"../status"}"#).is_none());
        assert!(UnsilenceValue::parse("x").is_none());
    }

    #[test]
    fn a_silence_message_says_who_until_when_and_offers_unsilence_while_active() {
        let link = "https://am.example/#/silences/0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11";
        let cases = [
            (
                record(true, false, None),
                ":no_bell: <@U0ALICE> silenced the alert for `c1hk4ek107l5au5mq8hg` (prod) in Alertmanager until *13:30 UTC* on 2026-12-01. Silence <https://am.example/#/silences/0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11|0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11>.",
                true,
            ),
            (
                record(true, true, None),
                ":no_bell: <@U0ALICE> silenced the alert for `c1hk4ek107l5au5mq8hg` (prod) in Alertmanager until the incident resolves (at most until *13:30 UTC* on 2026-12-01). Silence <https://am.example/#/silences/0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11|0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11>.",
                true,
            ),
            (
                record(false, false, Some("U0BOB")),
                ":bell: Silence <https://am.example/#/silences/0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11|0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11> of the alert for `c1hk4ek107l5au5mq8hg` (prod), created by <@U0ALICE>, was expired by <@U0BOB> at 09:50 UTC.",
                false,
            ),
            (
                record(false, true, Some("linkbot")),
                ":bell: Silence <https://am.example/#/silences/0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11|0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11> of the alert for `c1hk4ek107l5au5mq8hg` (prod), created by <@U0ALICE>, was expired by linkbot at 09:50 UTC: the incident resolved.",
                false,
            ),
        ];
        for (r, want, button) in cases {
            let (text, blocks) = silence_notice(&r, Some(link));
            assert_eq!(text, want);
            crate::sim::blockkit::validate_message(Some(&text), Some(&json!(blocks)))
                .unwrap_or_else(|e| panic!("{e:?}"));
            let offered = blocks.iter().any(|b| b["block_id"] == BLOCK_UNSILENCE);
            assert_eq!(offered, button, "{want}");
            if button {
                let b = &blocks[1]["elements"][0];
                assert_eq!(b["action_id"], ACTION_UNSILENCE);
                let v = UnsilenceValue::parse(b["value"].as_str().unwrap()).unwrap();
                assert_eq!(v.silence_id, r.silence_id);
            }
        }
        let (plain_id, _) = silence_notice(&record(true, false, None), None);
        assert!(
            plain_id.contains("Silence `0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11`."),
            "{plain_id}"
        );
        // Before the store knows which message shows it, no click could be authorized: no button.
        let unrecorded = SilenceRecord {
            message: None,
            ..record(true, false, None)
        };
        let (_, blocks) = silence_notice(&unrecorded, None);
        assert!(!blocks.iter().any(|b| b["block_id"] == BLOCK_UNSILENCE));
    }

    #[test]
    fn the_resolve_reply_says_what_was_done_in_pagerduty_and_github_and_what_failed() {
        let at = Utc
            .with_ymd_and_hms(2026, 12, 1, 10, 23, 0)
            .single()
            .unwrap();
        let with = |followups: Vec<Followup>| Notice::Resolved {
            at,
            open_for: chrono::Duration::minutes(23),
            diagnosis_link: None,
            expired_silences: vec![],
            silence_failures: vec![],
            followups,
        };
        let cases: Vec<(Vec<Followup>, &str)> = vec![
            (vec![], ":white_check_mark: Resolved at 10:23 UTC — open 23 min."),
            (
                vec![
                    Followup::PagerDutyResolved { dedup_key: "linkbot-prod-x".into() },
                    Followup::IssueCommented { issue: "org/r#2".into(), closed: None },
                ],
                ":white_check_mark: Resolved at 10:23 UTC — open 23 min.\n:pager: Resolved the PagerDuty incident linkbot paged (`linkbot-prod-x`).\n:memo: Commented the resolution on `org/r#2`.",
            ),
            (
                vec![Followup::IssueCommented { issue: "org/r#2".into(), closed: Some(true) }],
                ":white_check_mark: Resolved at 10:23 UTC — open 23 min.\n:memo: Commented the resolution on `org/r#2` and closed it.",
            ),
            (
                vec![
                    Followup::PagerDutyFailed {
                        dedup_key: "k".into(),
                        why: "PagerDuty answered HTTP 500 <!channel>.".into(),
                    },
                    Followup::IssueFailed { issue: "org/r#2".into(), why: "GitHub <@U1> said no.".into() },
                    Followup::IssueCommented { issue: "org/r#3".into(), closed: Some(false) },
                ],
                ":white_check_mark: Resolved at 10:23 UTC — open 23 min.\n:warning: Could not resolve the PagerDuty incident `k`: PagerDuty answered HTTP 500 &lt;!channel&gt;. Resolve it in PagerDuty.\n:warning: Could not comment on `org/r#2`: GitHub &lt;@U1&gt; said no.\n:memo: Commented the resolution on `org/r#3`; closing it failed: close it by hand.",
            ),
        ];
        for (followups, want) in cases {
            assert_eq!(incident_notice(&with(followups)), want);
        }
    }

    #[test]
    fn the_resolve_reply_lists_expired_silences_and_failures() {
        let n = Notice::Resolved {
            at: Utc
                .with_ymd_and_hms(2026, 12, 1, 10, 23, 0)
                .single()
                .unwrap(),
            open_for: chrono::Duration::minutes(23),
            diagnosis_link: None,
            expired_silences: vec!["a".into(), "b".into()],
            silence_failures: vec![("c".into(), "Alertmanager failed (HTTP 500: <boom>).".into())],
            followups: vec![],
        };
        assert_eq!(
            incident_notice(&n),
            ":white_check_mark: Resolved at 10:23 UTC — open 23 min.\n:bell: Expired the silences linkbot created for it in Alertmanager: `a`, `b`.\n:warning: Could not expire silence `c`: Alertmanager failed (HTTP 500: &lt;boom&gt;)."
        );
    }

    proptest! {
        #[test]
        fn failure_sentences_never_carry_live_markup(why in ".{0,400}", user in "U[A-Z0-9]{1,10}") {
            for text in [
                silence_failed(&user, &why),
                unsilence_failed(&user, "0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11", &why),
                silence_not_recorded("0b5e5b23-6f7b-4d0e-9d8a-5a1f0c3e2b11", Some(&why)),
            ] {
                let live = mrkdwn::live_tokens(&text);
                prop_assert!(live.iter().all(|t| t == &format!("<@{user}>")), "{live:?} in {text}");
                prop_assert!(crate::sim::blockkit::validate_message(Some(&text), None).is_ok());
            }
        }
    }
}

// ---- Feedback ("Was this right?") ----------------------------------------------------------

/// `action_id` of the 👍 button on a final diagnosis.
pub const ACTION_FEEDBACK_UP: &str = "linkbot_feedback_up";
/// `action_id` of the 👎 button on a final diagnosis.
pub const ACTION_FEEDBACK_DOWN: &str = "linkbot_feedback_down";
/// `block_id` of the feedback buttons.
pub const BLOCK_FEEDBACK: &str = "linkbot_feedback";
/// `callback_id` of the 👎 form (the modal).
pub const CALLBACK_FEEDBACK: &str = "linkbot_feedback";
/// `block_id` of the form's "What was it?" select.
pub const BLOCK_FEEDBACK_ACTUAL: &str = "linkbot_feedback_actual";
/// `action_id` of the form's "What was it?" select.
pub const ACTION_FEEDBACK_ACTUAL: &str = "actual";
/// `block_id` of the form's comment.
pub const BLOCK_FEEDBACK_COMMENT: &str = "linkbot_feedback_comment";
/// `action_id` of the form's comment.
pub const ACTION_FEEDBACK_COMMENT: &str = "comment";
/// Slack's limit for a modal's title, submit and close texts.
const MAX_MODAL_TITLE: usize = 24;
/// How much of a comment an answer repeats back.
const MAX_COMMENT_SHOWN: usize = 500;

/// Whether a clicked action kind is a feedback button.
pub fn is_feedback_action(kind: &str) -> bool {
    kind == ACTION_FEEDBACK_UP || kind == ACTION_FEEDBACK_DOWN
}

/// The count line of a diagnosis: "Was this right? Feedback: 👍 2 · 👎 1".
pub fn feedback_line(tally: &Tally) -> String {
    if tally.is_empty() {
        "Was this right? Say so with 👍 or 👎 (anyone may).".to_string()
    } else {
        format!(
            "Was this right? Feedback: 👍 {} · 👎 {}",
            tally.up, tally.down
        )
    }
}

/// The count line and the 👍 / 👎 buttons, when the context asks for feedback and the report
/// names what it is about. Their value is the report's location and environment, so a click is
/// authorized like every button (`button.rs` renders them again and compares).
fn feedback_blocks(report: &Report, ctx: &ReportContext) -> Vec<Value> {
    let (Some(tally), Some(location), Some(environment)) =
        (&ctx.feedback, &report.location, report.environment)
    else {
        return Vec::new();
    };
    let value = ButtonValue {
        location: location.to_string(),
        environment,
        target: None,
    };
    vec![
        context(&feedback_line(tally)),
        json!({"type": "actions", "block_id": BLOCK_FEEDBACK, "elements": [
            button("👍 Right", ACTION_FEEDBACK_UP.to_string(), &value, None),
            button("👎 Wrong", ACTION_FEEDBACK_DOWN.to_string(), &value, None),
        ]}),
    ]
}

/// The 👎 form (a modal for `views.open`): what the diagnosis said, a required "What was it?"
/// select of every verdict and "something else", and an optional comment of at most
/// [`MAX_COMMENT`] characters. `token` (linkbot's own, random) goes in `private_metadata`.
pub fn feedback_form(shown: crate::diagnosis::verdict::VerdictCode, token: &str) -> Value {
    let options: Vec<Value> = Actual::all()
        .iter()
        .map(|a| json!({"text": plain(a.title(), MAX_OPTION_TEXT), "value": a.as_str()}))
        .collect();
    json!({
        "type": "modal",
        "callback_id": CALLBACK_FEEDBACK,
        "private_metadata": token,
        "title": plain("Was this right?", MAX_MODAL_TITLE),
        "submit": plain("Send", MAX_MODAL_TITLE),
        "close": plain("Cancel", MAX_MODAL_TITLE),
        "blocks": [
            section(&format!(
                "linkbot said *`{}`* — {}. What was it really?",
                shown.as_str(),
                shown.title()
            )),
            {
                "type": "input",
                "block_id": BLOCK_FEEDBACK_ACTUAL,
                "label": plain("What was it?", MAX_SECTION),
                "element": {
                    "type": "static_select",
                    "action_id": ACTION_FEEDBACK_ACTUAL,
                    "placeholder": plain("Choose what it actually was", MAX_PLACEHOLDER),
                    "options": options,
                },
            },
            {
                "type": "input",
                "block_id": BLOCK_FEEDBACK_COMMENT,
                "optional": true,
                "label": plain("Comment", MAX_SECTION),
                "hint": plain("What you found or what fixed it; up to 3,000 characters.", MAX_SECTION),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ACTION_FEEDBACK_COMMENT,
                    "multiline": true,
                    "max_length": MAX_COMMENT,
                    "placeholder": plain("Optional", MAX_PLACEHOLDER),
                },
            },
        ],
    })
}

/// The answer to a 👎 whose form Slack did not open (the vote is recorded); `why` is linkbot's
/// own sentence or Slack's error (escaped here).
pub fn feedback_form_failed(why: &str) -> String {
    format!(
        "Your 👎 is recorded, but the form to say what it was did not open ({}). Click 👎 again to try once more.",
        mrkdwn::escape(&clip(why, 200))
    )
}

/// The answer to a submitted 👎 form: what was recorded, the comment repeated (escaped).
pub fn feedback_answered(actual: Actual, comment: Option<&str>, tally: &Tally) -> String {
    let mut out = format!(
        ":memo: Thanks — recorded: it was *{}* (`{}`). {}",
        actual.title(),
        actual.as_str(),
        feedback_line(tally)
    );
    if let Some(c) = comment {
        let quoted = mrkdwn::escape(&clip(c, MAX_COMMENT_SHOWN))
            .lines()
            .map(|l| format!("> {l}"))
            .collect::<Vec<_>>()
            .join("\n");
        out.push_str(&format!("\nYour comment:\n{quoted}"));
    }
    out
}

/// The answer to a 👎 form linkbot could not take; `why` is linkbot's own sentence.
pub fn feedback_refused(why: &str) -> String {
    format!(":warning: {why}")
}

#[cfg(test)]
mod feedback_tests {
    use super::*;
    use crate::diagnosis::verdict::VerdictCode;
    use crate::sim::blockkit::{validate_message, validate_view};
    use crate::slack::mrkdwn::live_tokens;
    use proptest::prelude::*;

    fn report() -> Report {
        Report {
            verdict: VerdictCode::ApiKeyInvalid,
            confirmed: false,
            summary: "s".into(),
            location: Some(LocationId::parse("c1hk4ek107l5au5mq8hg").expect("id")),
            environment: Some(Environment::Prod),
            tugboat: None,
            carrier: None,
            next_actions: Vec::new(),
            region_expected: None,
            region_found: None,
            build_url: None,
            console_tail: None,
            key_fingerprint: None,
            steps: Vec::new(),
            checked_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn the_count_line_reads_as_a_person_would_say_it() {
        let cases = [
            (
                Tally { up: 0, down: 0 },
                "Was this right? Say so with 👍 or 👎 (anyone may).",
            ),
            (
                Tally { up: 2, down: 1 },
                "Was this right? Feedback: 👍 2 · 👎 1",
            ),
            (
                Tally { up: 0, down: 7 },
                "Was this right? Feedback: 👍 0 · 👎 7",
            ),
        ];
        for (tally, want) in cases {
            assert_eq!(feedback_line(&tally), want);
        }
    }

    #[test]
    fn a_diagnosis_with_feedback_ends_with_the_count_and_two_buttons_and_a_copy_has_none() {
        let ctx = ReportContext {
            buttons: true,
            feedback: Some(Tally { up: 2, down: 1 }),
            ..Default::default()
        };
        let blocks = super::report(&report(), &ctx);
        assert_eq!(
            validate_message(Some("t"), Some(&Value::Array(blocks.clone()))),
            Ok(())
        );
        let n = blocks.len();
        assert_eq!(
            blocks[n - 2]["elements"][0]["text"],
            "Was this right? Feedback: 👍 2 · 👎 1"
        );
        let last = &blocks[n - 1];
        assert_eq!(last["block_id"], BLOCK_FEEDBACK);
        let ids: Vec<&str> = last["elements"]
            .as_array()
            .expect("elements")
            .iter()
            .filter_map(|e| e["action_id"].as_str())
            .collect();
        assert_eq!(ids, [ACTION_FEEDBACK_UP, ACTION_FEEDBACK_DOWN]);
        for e in last["elements"].as_array().expect("elements") {
            let (v, _) = ButtonValue::parse(e["value"].as_str().expect("a value")).expect("ours");
            assert_eq!(
                (v.location.as_str(), v.environment, v.target),
                ("c1hk4ek107l5au5mq8hg", Environment::Prod, None)
            );
        }
        // The escalation copy (no feedback asked) and a report without a location: none.
        let copy = super::report(&report(), &ReportContext::default());
        assert!(!serde_json::to_string(&copy)
            .expect("json")
            .contains("linkbot_feedback"));
        let mut nowhere = report();
        nowhere.location = None;
        let blocks = super::report(&nowhere, &ctx);
        assert!(!serde_json::to_string(&blocks)
            .expect("json")
            .contains("linkbot_feedback"));
    }

    #[test]
    fn the_form_offers_every_verdict_and_something_else_and_slack_accepts_it() {
        for shown in VerdictCode::ALL {
            let view = feedback_form(shown, "0123456789abcdef0123456789abcdef");
            assert_eq!(validate_view(&view), Ok(()), "{view}");
            let values: Vec<&str> = view["blocks"][1]["element"]["options"]
                .as_array()
                .expect("options")
                .iter()
                .filter_map(|o| o["value"].as_str())
                .collect();
            let want: Vec<&str> = Actual::all().iter().map(|a| a.as_str()).collect();
            assert_eq!(values, want);
            assert_eq!(view["blocks"][2]["element"]["max_length"], 3000);
            assert_eq!(view["blocks"][2]["optional"], true);
            assert_eq!(view["private_metadata"], "0123456789abcdef0123456789abcdef");
            assert_eq!(view["callback_id"], CALLBACK_FEEDBACK);
            // What slack-morphism sends (web.rs converts through its model) is what was built.
            let model: slack_morphism::prelude::SlackView =
                serde_json::from_value(view.clone()).expect("a modal slack-morphism reads");
            assert_eq!(serde_json::to_value(&model).expect("json"), view);
        }
    }

    proptest! {
        /// Any count, any comment: the answers stay plain mrkdwn with no live mention or link
        /// from the comment, and the diagnosis with its count passes Block Kit.
        #[test]
        fn answers_and_counts_hold_no_outside_mention(
            up in 0usize..1_000_000,
            down in 0usize..1_000_000,
            comment in proptest::option::of(prop_oneof![
                "\\PC{0,200}",
                Just("<!channel> <@U1> <https://evil.example|x> ``` &amp;".to_string()),
                Just("x".repeat(3000)),
            ]),
            actual in prop::sample::select(Actual::all()),
        ) {
            let tally = Tally { up, down };
            let text = feedback_answered(actual, comment.as_deref(), &tally);
            prop_assert!(live_tokens(&text).is_empty(), "{}", text);
            prop_assert!(text.chars().count() < 1200);
            let failed = feedback_form_failed(comment.as_deref().unwrap_or("expired_trigger_id"));
            prop_assert!(live_tokens(&failed).is_empty(), "{}", failed);
            let ctx = ReportContext { buttons: true, feedback: Some(tally), ..Default::default() };
            let blocks = super::report(&report(), &ctx);
            prop_assert_eq!(validate_message(Some("t"), Some(&Value::Array(blocks))), Ok(()));
        }
    }
}
