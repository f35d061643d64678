//! The report as text (`linkbot report`, the Slack fallback), JSON and markdown.
//!
//! Pure functions of a [`PeriodReport`]. Durations go through the one formatter
//! ([`crate::format::human`]). Text and markdown are not escaped for Slack: the Slack side
//! escapes whatever it posts (`slack/report_blocks.rs`). Nothing here does I/O.

use super::{Percentiles, PeriodReport, STORM_LINKED, UNDIAGNOSED};
use crate::diagnosis::verdict::VerdictCode;
use crate::format::human;

/// `2026-11-24 09:00 → 2026-12-01 09:00 UTC (7 days)`.
pub fn period_line(r: &PeriodReport) -> String {
    let length = r.until - r.since;
    let span = if length.num_days() >= 1 && length.num_hours() % 24 == 0 {
        format!("{} days", length.num_days())
    } else {
        human(length.to_std().unwrap_or_default())
    };
    format!(
        "{} → {} UTC ({span})",
        r.since.format("%Y-%m-%d %H:%M"),
        r.until.format("%Y-%m-%d %H:%M")
    )
}

/// `p50 4m05s, p90 6m10s (6 measured)`, or `none measured`.
pub fn percentiles(p: &Percentiles) -> String {
    match (p.p50, p.p90) {
        (Some(p50), Some(p90)) => format!(
            "p50 {}, p90 {} ({} measured)",
            human(p50),
            human(p90),
            p.measured
        ),
        _ => "none measured".to_string(),
    }
}

/// `2 of 9 checks (22%)`.
pub fn job_failures(r: &PeriodReport) -> String {
    let j = &r.job_failures;
    if j.checks == 0 {
        return "no checks finished".to_string();
    }
    format!(
        "{} of {} checks ended job_failed ({}%)",
        j.failed,
        j.checks,
        percent(j.failed, j.checks)
    )
}

/// `razee 2, satellite_link 1 + 1 page`, or `none`.
pub fn escalations(r: &PeriodReport) -> String {
    if r.escalations.is_empty() {
        return "none".to_string();
    }
    r.escalations
        .iter()
        .map(|t| match (t.escalated, t.paged) {
            (e, 0) => format!("{} {e}", t.team),
            (0, p) => format!("{} {p} page{}", t.team, plural(p)),
            (e, p) => format!("{} {e} + {p} page{}", t.team, plural(p)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first and last day under the bars: `Nov 24 → Dec 1, at most 3 a day`.
pub fn chart_legend(r: &PeriodReport) -> String {
    let (Some(first), Some(last)) = (r.per_day.first(), r.per_day.last()) else {
        return String::new();
    };
    let max = r.per_day.iter().map(|d| d.incidents).max().unwrap_or(0);
    format!(
        "{} → {}, at most {max} a day",
        first.date.format("%b %-d"),
        last.date.format("%b %-d")
    )
}

/// A verdict's title, for the codes linkbot knows.
pub fn verdict_title(code: &str) -> &'static str {
    match VerdictCode::parse(code) {
        Some(v) => v.title(),
        None if code == UNDIAGNOSED => "no verdict (the check failed or is running)",
        None if code == STORM_LINKED => {
            "linked to a storm (answered with a pointer to the storm message, not checked)"
        }
        None => "",
    }
}

/// `part` of `whole` in whole percent, rounded (0 when `whole` is 0).
pub fn percent(part: usize, whole: usize) -> usize {
    (part * 100 + whole / 2).checked_div(whole).unwrap_or(0)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The report as plain text (what `linkbot report` prints).
pub fn text(r: &PeriodReport) -> String {
    let mut out = format!("linkbot report — {}\n\n", period_line(r));
    let row = |out: &mut String, label: &str, value: String| {
        out.push_str(&format!("{label:<20}{value}\n"));
    };
    row(
        &mut out,
        "Incidents",
        format!("{} opened, {} resolved", r.opened, r.resolved),
    );
    row(
        &mut out,
        "Per day",
        format!("{}  ({})", r.chart(), chart_legend(r)),
    );
    row(
        &mut out,
        "Time to diagnosis",
        percentiles(&r.time_to_diagnosis),
    );
    row(
        &mut out,
        "Time to resolution",
        percentiles(&r.time_to_resolution),
    );
    row(&mut out, "Pages sent", r.pages_sent.to_string());
    row(&mut out, "Escalations", escalations(r));
    row(&mut out, "Jenkins job", job_failures(r));

    out.push_str("\nVerdict mix (incidents opened)\n");
    if r.verdicts.is_empty() {
        out.push_str("  none\n");
    }
    for v in &r.verdicts {
        out.push_str(&format!(
            "  {:<18} {:>4}  {}\n",
            v.verdict,
            v.count,
            verdict_title(&v.verdict)
        ));
    }
    out.push_str("\nTop locations\n");
    if r.top_locations.is_empty() {
        out.push_str("  none\n");
    }
    for l in &r.top_locations {
        out.push_str(&format!(
            "  {}  {:<5} {:>4}\n",
            l.key.location,
            l.key.environment.as_str(),
            l.incidents
        ));
    }
    out.push_str("\nFeedback precision (👍 / all)\n");
    if r.feedback.is_empty() {
        out.push_str("  no feedback\n");
    }
    for f in &r.feedback {
        out.push_str(&format!(
            "  {:<18} {:>3}/{:<3} {:>3}%\n",
            f.verdict,
            f.up,
            f.total,
            percent(f.up, f.total)
        ));
    }
    if !r.job_failures.builds.is_empty() {
        out.push_str("\nFailed Jenkins builds\n");
        for b in &r.job_failures.builds {
            out.push_str(&format!("  {b}\n"));
        }
    }
    out
}

/// The report as one JSON object (every number of [`PeriodReport`]; durations in ms).
pub fn json(r: &PeriodReport) -> String {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["chart"] = serde_json::Value::String(r.chart());
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// The report as markdown (a GitHub issue, a wiki page).
pub fn markdown(r: &PeriodReport) -> String {
    let mut out = format!("## linkbot report — {}\n\n", period_line(r));
    out.push_str("| | |\n|---|---|\n");
    let mut row = |label: &str, value: String| {
        out.push_str(&format!("| {label} | {} |\n", cell(&value)));
    };
    row(
        "Incidents",
        format!("{} opened, {} resolved", r.opened, r.resolved),
    );
    row("Per day", format!("`{}` ({})", r.chart(), chart_legend(r)));
    row("Time to diagnosis", percentiles(&r.time_to_diagnosis));
    row("Time to resolution", percentiles(&r.time_to_resolution));
    row("Pages sent", r.pages_sent.to_string());
    row("Escalations", escalations(r));
    row("Jenkins job", job_failures(r));

    out.push_str("\n### Verdict mix\n\n| Verdict | Incidents | |\n|---|---:|---|\n");
    for v in &r.verdicts {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            cell(&v.verdict),
            v.count,
            cell(verdict_title(&v.verdict))
        ));
    }
    out.push_str("\n### Top locations\n\n| Location | Environment | Incidents |\n|---|---|---:|\n");
    for l in &r.top_locations {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            l.key.location, l.key.environment, l.incidents
        ));
    }
    out.push_str(
        "\n### Feedback precision\n\n| Verdict | 👍 | All | Precision |\n|---|---:|---:|---:|\n",
    );
    for f in &r.feedback {
        out.push_str(&format!(
            "| `{}` | {} | {} | {}% |\n",
            cell(&f.verdict),
            f.up,
            f.total,
            percent(f.up, f.total)
        ));
    }
    out
}

/// Text fit for a markdown table cell: no `|`, no newline, no backtick.
fn cell(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '|' => '¦',
            '`' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;
    use proptest::prelude::*;

    /// Text with every run of spaces made one, so tests do not depend on column widths.
    fn words(s: &str) -> String {
        s.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn text_shows_every_number() {
        let r = sample();
        let t = words(&text(&r));
        for want in [
            "linkbot report — 2026-11-24 09:00 → 2026-12-01 09:00 UTC (7 days)",
            "Incidents 4 opened, 2 resolved",
            "Per day ▁▅▁█▁▁▅▁ (Nov 24 → Dec 1, at most 2 a day)",
            "Time to diagnosis p50 5m00s, p90 20m00s (3 measured)",
            "Time to resolution p50 1h00m, p90 2h00m (2 measured)",
            "Pages sent 1",
            "Escalations razee 2, satellite_link 1 + 1 page",
            "Jenkins job 1 of 5 checks ended job_failed (20%)",
            "api_key_invalid 2 Bad IAM API key",
            "region_mismatch 1 Improper region config",
            "undiagnosed 1 no verdict (the check failed or is running)",
            "c1hk4ek107l5au5mq8hg prod 2",
            "api_key_invalid 1/2 50%",
            "region_mismatch 1/1 100%",
            "https://jenkins.example/job/x/7/",
        ] {
            assert!(t.contains(want), "{want:?} not in\n{t}");
        }
    }

    #[test]
    fn json_holds_the_numbers_and_the_chart() {
        let r = sample();
        let v: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(v["opened"], 4);
        assert_eq!(v["resolved"], 2);
        assert_eq!(v["time_to_diagnosis"]["p50"], 300_000);
        assert_eq!(v["time_to_resolution"]["p90"], 7_200_000);
        assert_eq!(v["top_locations"][0]["location"], "c1hk4ek107l5au5mq8hg");
        assert_eq!(v["top_locations"][0]["environment"], "prod");
        assert_eq!(v["feedback"][1]["verdict"], "api_key_invalid");
        assert_eq!(v["feedback"][1]["precision"], 0.5);
        assert_eq!(v["chart"], r.chart());
    }

    #[test]
    fn markdown_is_tables() {
        let m = markdown(&sample());
        assert!(m.starts_with("## linkbot report — "));
        assert!(m.contains("| Incidents | 4 opened, 2 resolved |"));
        assert!(m.contains("| `api_key_invalid` | 2 | Bad IAM API key |"));
        assert!(m.contains("| `c1hk4ek107l5au5mq8hg` | prod | 2 |"));
        assert!(m.contains("| `api_key_invalid` | 1 | 2 | 50% |"));
    }

    #[test]
    fn an_empty_period_says_so() {
        let mut r = sample();
        r.opened = 0;
        r.verdicts.clear();
        r.top_locations.clear();
        r.feedback.clear();
        r.escalations.clear();
        r.job_failures.checks = 0;
        r.time_to_diagnosis = Percentiles {
            measured: 0,
            p50: None,
            p90: None,
        };
        let t = text(&r);
        for want in [
            "none measured",
            "no checks finished",
            "Escalations         none",
            "no feedback",
        ] {
            assert!(t.contains(want), "{want:?} not in\n{t}");
        }
    }

    proptest! {
        #[test]
        fn a_cell_never_breaks_its_table(s in "\\PC{0,60}|[|`\\n]{0,5}") {
            let c = cell(&s);
            prop_assert!(!c.contains('|') && !c.contains('`') && !c.contains('\n'));
        }
    }
}
