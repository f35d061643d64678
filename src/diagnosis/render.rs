//! Text and JSON renderings of a [`Report`], for the terminal (`linkbot check`/`diagnose`) and
//! for `--format json` (the object of SPEC §2/§4).
//!
//! Pure formatting: no I/O, no decisions (those are in `rules`), and nothing that is not already
//! in the report — a report never holds a secret, only a key fingerprint. Text that came from
//! outside (console tails, evidence) is shown without control characters, so it cannot drive
//! the terminal.

use super::verdict::{Report, RUNBOOK_URL};
use chrono::SecondsFormat;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// How many console lines the text rendering shows at most.
const CONSOLE_TAIL_LINES: usize = 30;

/// A terminal-readable block: header (code, title, "confirmed by IAM"), the facts that are known,
/// each step with its evidence, the next actions, the console tail, the runbook link.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let confirmed = if report.confirmed {
        " (confirmed by IAM)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "{} — {}{confirmed}",
        report.verdict.as_str(),
        report.verdict.title()
    );
    let _ = writeln!(out, "{}", one_line(&report.summary));
    out.push('\n');

    let mut facts: Vec<(&str, String)> = Vec::new();
    if let Some(l) = &report.location {
        facts.push(("Location", l.to_string()));
    }
    if let Some(e) = &report.environment {
        facts.push(("Environment", e.to_string()));
    }
    if let Some(t) = &report.tugboat {
        facts.push((
            "Tugboat",
            format!("{} (Jenkins: {})", t.dotted(), t.kebab()),
        ));
    }
    if let Some(c) = &report.carrier {
        facts.push(("Carrier", c.to_string()));
    }
    if let Some(r) = &report.region_expected {
        facts.push(("Tugboat region", r.to_string()));
    }
    if let Some(r) = &report.region_found {
        facts.push(("ConfigMap region", one_line(r)));
    }
    if let Some(b) = &report.build_url {
        facts.push(("Build", one_line(b)));
    }
    if let Some(k) = &report.key_fingerprint {
        facts.push(("Key fingerprint", one_line(k)));
    }
    for (label, value) in &facts {
        let _ = writeln!(out, "{:<18}{value}", format!("{label}:"));
    }
    if !facts.is_empty() {
        out.push('\n');
    }

    if !report.steps.is_empty() {
        out.push_str("Steps:\n");
        for step in &report.steps {
            let _ = writeln!(out, "  {} {}", step.status.emoji(), one_line(&step.title));
            for line in &step.evidence {
                let _ = writeln!(out, "       {}", one_line(line));
            }
        }
        out.push('\n');
    }

    if !report.next_actions.is_empty() {
        out.push_str("Next actions:\n");
        for action in &report.next_actions {
            let _ = writeln!(out, "  - {}", one_line(action));
        }
        out.push('\n');
    }

    if let Some(tail) = &report.console_tail {
        let lines: Vec<&str> = tail.lines().collect();
        let shown = lines
            .get(lines.len().saturating_sub(CONSOLE_TAIL_LINES)..)
            .unwrap_or(&[]);
        if !shown.is_empty() {
            let _ = writeln!(out, "Console tail (last {} lines):", shown.len());
            for line in shown {
                let _ = writeln!(out, "    {}", one_line(line));
            }
            out.push('\n');
        }
    }

    let _ = writeln!(out, "Runbook: {RUNBOOK_URL}");
    out
}

/// The JSON object of `--format json`: `verdict` (code), `title`, `confirmed`, `summary`,
/// `location`, `environment`, `tugboat` (dotted), `tugboat_kebab`, `carrier`, `region_expected`,
/// `region_found`, `build_url`, `steps` (`id`, `title`, `status`, `evidence`), `next_actions`,
/// `console_tail`, `key_fingerprint`, `checked_at` (RFC 3339), `runbook_url`. Null where absent.
pub fn json(report: &Report) -> Value {
    let steps: Vec<Value> = report
        .steps
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "title": s.title,
                "status": s.status,
                "evidence": s.evidence,
            })
        })
        .collect();
    json!({
        "verdict": report.verdict.as_str(),
        "title": report.verdict.title(),
        "confirmed": report.confirmed,
        "summary": report.summary,
        "location": report.location.as_ref().map(|l| l.as_str()),
        "environment": report.environment.map(|e| e.as_str()),
        "tugboat": report.tugboat.as_ref().map(|t| t.dotted()),
        "tugboat_kebab": report.tugboat.as_ref().map(|t| t.kebab()),
        "carrier": report.carrier.as_ref().map(|c| c.as_str()),
        "region_expected": report.region_expected.as_ref().map(|r| r.as_str()),
        "region_found": report.region_found,
        "build_url": report.build_url,
        "steps": steps,
        "next_actions": report.next_actions,
        "console_tail": report.console_tail,
        "key_fingerprint": report.key_fingerprint,
        "checked_at": report.checked_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        "runbook_url": RUNBOOK_URL,
    })
}

/// One line of untrusted text fit for a terminal: ANSI escape sequences and other control
/// characters removed (a tab becomes a space).
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ params final-byte; other escapes: drop ESC and the next char.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\t' | '\n' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_control_sequences_are_removed() {
        assert_eq!(one_line("\u{1b}[31mred\u{1b}[0m\tok\r"), "red ok");
        assert_eq!(one_line("a\u{7}b\u{1b}Xc"), "abc");
        assert_eq!(one_line("trailing \u{1b}["), "trailing ");
    }
}
