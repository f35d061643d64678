//! The report of a period ([`PeriodReport`]) as a Slack message: Block Kit within Slack's
//! limits, and the plain text posted instead when Slack refuses the blocks.
//!
//! Pure: values in, JSON out; posting is `slack/report.rs`. Every piece of text that did not
//! come from linkbot (verdict codes and team names read from the store, build URLs) goes
//! through [`super::mrkdwn`]; only block kinds the strict validator (`sim::blockkit`) checks
//! are used: header, section (text and fields), context.

use super::blocks::{clip, context, non_blank, plain, section, MAX_HEADER, MAX_SECTION};
use super::mrkdwn;
use crate::report::render::{self, percent, verdict_title};
use crate::report::PeriodReport;
use serde_json::{json, Value};

/// Lines shown per list (verdicts, teams, feedback); the rest are counted in one line.
const MAX_LINES: usize = 12;
/// The most text of one list or one field of names read from the store, so the whole message
/// stays far below Slack's total (`msg_blocks_too_long`) whatever the store holds.
const MAX_LIST: usize = 1500;
/// The most text of the failed builds' links.
const MAX_LINKS: usize = 1000;
/// A section field's limit (Slack: 2000 characters).
const MAX_FIELD: usize = 2000;
/// The plain-text fallback's limit.
const MAX_PLAIN: usize = 3000;

/// The message: its notification text (mrkdwn, escaped) and its blocks.
pub fn report(r: &PeriodReport) -> (String, Vec<Value>) {
    let title = format!(
        "linkbot report · {} → {}",
        r.since.format("%b %-d %H:%M"),
        r.until.format("%b %-d %H:%M UTC")
    );
    let mut blocks = vec![
        json!({"type": "header", "text": plain(&title, MAX_HEADER)}),
        context(&mrkdwn::escape(&format!(
            "{} · incidents of the alert, their diagnoses, escalations and feedback",
            render::period_line(r)
        ))),
    ];
    let field = |label: &str, value: &str| json!({"type": "mrkdwn", "text": non_blank(clip(&format!("*{label}*\n{value}"), MAX_FIELD))});
    blocks.push(json!({
        "type": "section",
        "fields": [
            field("Incidents", &format!("{} opened, {} resolved", r.opened, r.resolved)),
            field("Pages sent", &r.pages_sent.to_string()),
            field("Time to diagnosis", &render::percentiles(&r.time_to_diagnosis)),
            field("Time to resolution", &render::percentiles(&r.time_to_resolution)),
            field("Escalations", &clip(&mrkdwn::escape(&render::escalations(r)), MAX_LIST)),
            field("Jenkins job", &render::job_failures(r)),
        ],
    }));
    blocks.push(section(&format!(
        "*Incidents per day*\n{}\n{}",
        mrkdwn::code(&r.chart()),
        mrkdwn::escape(&render::chart_legend(r))
    )));
    blocks.push(section(&list(
        "*Verdict mix* (incidents opened)",
        r.verdicts.iter().map(|v| {
            format!(
                "{} {} — {}",
                mrkdwn::code(&v.verdict),
                v.count,
                mrkdwn::escape(verdict_title(&v.verdict))
            )
        }),
        "none",
    )));
    blocks.push(section(&list(
        "*Top locations*",
        r.top_locations.iter().map(|l| {
            format!(
                "{} ({}) {}",
                mrkdwn::code(l.key.location.as_str()),
                l.key.environment,
                l.incidents
            )
        }),
        "none",
    )));
    blocks.push(section(&list(
        "*Feedback precision* (👍 / all)",
        r.feedback.iter().map(|f| {
            format!(
                "{} {}/{} ({}%)",
                mrkdwn::code(&f.verdict),
                f.up,
                f.total,
                percent(f.up, f.total)
            )
        }),
        "no feedback",
    )));
    if !r.job_failures.builds.is_empty() {
        // Whole links only (a cut link would leave a dangling `<`), as many as fit.
        let mut links: Vec<String> = Vec::new();
        for b in &r.job_failures.builds {
            let link = mrkdwn::link(b, "build");
            if links.iter().map(|l| l.len() + 3).sum::<usize>() + link.len() > MAX_LINKS {
                break;
            }
            links.push(link);
        }
        if !links.is_empty() {
            blocks.push(context(&format!(
                "Failed Jenkins builds: {}",
                links.join(" · ")
            )));
        }
    }
    let text = mrkdwn::escape(&format!(
        "linkbot report, {}: {} incidents opened, {} resolved",
        render::period_line(r),
        r.opened,
        r.resolved
    ));
    (text, blocks)
}

/// `title` then one bullet per line (at most [`MAX_LINES`], then how many more), or `empty`.
fn list(title: &str, lines: impl Iterator<Item = String>, empty: &str) -> String {
    let lines: Vec<String> = lines.collect();
    let mut out = title.to_string();
    if lines.is_empty() {
        out.push('\n');
        out.push_str(empty);
    }
    for l in lines.iter().take(MAX_LINES) {
        out.push_str("\n• ");
        out.push_str(l);
    }
    if lines.len() > MAX_LINES {
        out.push_str(&format!("\n… and {} more", lines.len() - MAX_LINES));
    }
    clip(&out, MAX_LIST.min(MAX_SECTION))
}

/// What is posted when Slack refuses the blocks: the text report in a code block, escaped.
pub fn plain_text(r: &PeriodReport) -> String {
    let body = clip(&mrkdwn::escape(&render::text(r)), MAX_PLAIN - 6);
    format!("```{body}```")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::period::Period;
    use crate::report::{compute, PeriodReport};
    use crate::store::{AuditEntry, AuditKind, FeedbackVote, ReportRows};
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// A report whose store-read texts (verdicts, team names, builds) are `hostile`.
    fn hostile_report(hostile: &str, n: usize) -> PeriodReport {
        let period = Period::new(t("2026-11-24T09:00:00Z"), t("2026-12-01T09:00:00Z")).unwrap();
        let at = t("2026-11-25T09:00:00Z");
        let rows = ReportRows {
            escalations: (0..n)
                .map(|i| AuditEntry {
                    at,
                    kind: AuditKind::Escalation,
                    actor: None,
                    channel: None,
                    location: crate::domain::LocationId::parse("c1hk4ek107l5au5mq8hg").unwrap(),
                    environment: crate::domain::Environment::Prod,
                    verdict: None,
                    target: Some(format!("{hostile}{i}")),
                    link: None,
                    detail: None,
                })
                .collect(),
            feedback: (0..n)
                .map(|i| FeedbackVote {
                    verdict: format!("{hostile}{i}"),
                    up: i % 2 == 0,
                    at,
                })
                .collect(),
            ..ReportRows::default()
        };
        let mut r = compute(period, &rows);
        r.job_failures.builds = vec![format!("https://jenkins.example/{hostile}")];
        r
    }

    #[test]
    fn the_message_holds_every_fact() {
        let (text, blocks) = report(&hostile_report("team", 2));
        let all = serde_json::to_string(&blocks).unwrap();
        for want in [
            "linkbot report · Nov 24 09:00 → Dec 1 09:00 UTC",
            "*Incidents*\\n0 opened, 0 resolved",
            "*Time to diagnosis*\\nnone measured",
            "team0 1, team1 1",
            "*Incidents per day*\\n`▁▁▁▁▁▁▁▁`",
            "`team0` 1/1 (100%)",
            "`team1` 0/1 (0%)",
        ] {
            assert!(all.contains(want), "{want:?} not in {all}");
        }
        assert!(text.contains("0 incidents opened"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Whatever the store holds, the message stays within Slack's limits and carries no
        /// live mention or link but the build links linkbot made.
        #[test]
        fn any_stored_text_stays_escaped_and_within_limits(
            hostile in "([<>!@#&`|*_~a-z0-9:^/. ]|\\PC){0,300}",
            n in 0usize..40,
        ) {
            let r = hostile_report(&hostile, n);
            let (text, blocks) = report(&r);
            prop_assert!(mrkdwn::live_tokens(&text).is_empty(), "{}", text);
            let live = mrkdwn::live_tokens_in(&Value::Array(blocks.clone()));
            prop_assert!(live.iter().all(|l| l.starts_with("<https://jenkins.example/")), "{:?}", live);
            let v = crate::sim::blockkit::validate_message(Some(&text), Some(&Value::Array(blocks)));
            prop_assert!(v.is_ok(), "{:?}", v.err().map(|e| e.error()));
            let p = plain_text(&r);
            prop_assert!(p.chars().count() <= MAX_PLAIN);
            prop_assert!(mrkdwn::live_tokens(&p).is_empty());
        }
    }
}
