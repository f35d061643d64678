//! What a person asked for: `@linkbot check <location> [prod|stage]`,
//! `/linkbot check|help|status|report [7d]`.
//!
//! Pure parsing of message text into a [`Command`]; Slack's formatting is stripped first and
//! nothing is ever triggered for invalid input — it becomes [`Command::Invalid`] with the
//! sentence to answer, in mrkdwn whose quoted input is escaped ([`super::mrkdwn`]), so it can be
//! posted as is. No I/O here.

use super::mrkdwn;
use crate::domain::{strip_slack_formatting, Environment, LocationId};
use crate::report::period::Since;

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run (or join) a check.
    Check {
        /// The location.
        location: LocationId,
        /// The environment, when named.
        environment: Option<Environment>,
    },
    /// Show usage.
    Help,
    /// List the checks in flight.
    Status,
    /// Post the report of the period from `since` to now, visibly.
    Report {
        /// Where the period starts (`7d` when not given).
        since: Since,
    },
    /// Not a valid request: answer with this sentence (and usage); mrkdwn, outside text escaped.
    Invalid(String),
}

/// How to use the bot, as shown for `help` and any unknown command (mrkdwn: `<` and `>` escaped,
/// as Slack requires even inside code spans).
pub const USAGE: &str = "*Usage*\n\
• `@linkbot check &lt;location-id&gt; [prod|stage]` — run the IAM-token runbook for a location and answer in a thread\n\
• `/linkbot check &lt;location-id&gt; [prod|stage]` — the same from anywhere in a watched channel\n\
• `/linkbot status` — the checks running now\n\
• `/linkbot report [7d]` — how often the alert fired, where, what it was, and how fast (posted in the channel)\n\
• `/linkbot help` — this message\n\
A location id is 20 characters of 0-9 and a-v, e.g. `c1hk4ek107l5au5mq8hg`. \
Alerts `SatelliteLinkConnectorDeployCannotgetIAMTokenFromIAMServer` in this channel are checked automatically.";

/// Parses the text of a mention (`<@U123> check …`) or of a slash command (`check …`).
pub fn parse(text: &str) -> Command {
    // Words, with mentions of anyone (`<@U…>`) dropped and formatting stripped from each word.
    let words: Vec<String> = text
        .split_whitespace()
        .filter(|w| !(w.starts_with("<@") && w.ends_with('>')))
        .map(strip_slack_formatting)
        .filter(|w| !w.is_empty())
        .take(16)
        .collect();
    let Some(verb) = words.first() else {
        return Command::Help;
    };
    match verb.to_ascii_lowercase().as_str() {
        "help" | "usage" | "?" => Command::Help,
        "status" => Command::Status,
        "report" => {
            if words.len() > 2 {
                return Command::Invalid(
                    "Too many words: say `report` or `report 7d` (30m, 24h, 7d; at most 92d)."
                        .into(),
                );
            }
            match words.get(1).map(|w| Since::parse(w)) {
                None => Command::Report {
                    since: Since::week(),
                },
                Some(Ok(since)) => Command::Report { since },
                Some(Err(_)) => Command::Invalid(format!(
                    "{} is not a period: say `report 7d` (a number of minutes, hours or days: 30m, 24h, 7d; at most 92d) or an RFC 3339 time.",
                    mrkdwn::code(&words[1].chars().take(40).collect::<String>())
                )),
            }
        }
        "check" | "diagnose" | "run" => {
            let Some(loc) = words.get(1) else {
                return Command::Invalid(
                    "Which location? Say `check &lt;location-id&gt;`, e.g. `check c1hk4ek107l5au5mq8hg`."
                        .into(),
                );
            };
            let location = match LocationId::parse(loc) {
                Ok(l) => l,
                Err(e) => return Command::Invalid(format!("{}.", mrkdwn::domain_error(&e))),
            };
            let environment = match words.get(2) {
                None => None,
                Some(e) => match Environment::parse(e) {
                    Ok(env) => Some(env),
                    Err(err) => {
                        return Command::Invalid(format!("{}.", mrkdwn::domain_error(&err)))
                    }
                },
            };
            if words.len() > 3 {
                return Command::Invalid(
                    "Too many words: say `check &lt;location-id&gt; [prod|stage]`.".into(),
                );
            }
            Command::Check {
                location,
                environment,
            }
        }
        other => {
            let shown: String = other.chars().filter(|c| !c.is_control()).take(30).collect();
            Command::Invalid(format!("I don't know {}.", mrkdwn::code(&shown)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LOC: &str = "c1hk4ek107l5au5mq8hg";

    #[test]
    fn commands_parse_as_an_engineer_types_them() {
        let check = |env| Command::Check {
            location: LocationId::parse(LOC).unwrap(),
            environment: env,
        };
        let cases: Vec<(&str, Command)> = vec![
            ("<@U111> check c1hk4ek107l5au5mq8hg", check(None)),
            (
                "<@U111>   CHECK   C1HK4EK107L5AU5MQ8HG  prod",
                check(Some(Environment::Prod)),
            ),
            (
                "check *c1hk4ek107l5au5mq8hg* stage",
                check(Some(Environment::Stage)),
            ),
            (
                "check `c1hk4ek107l5au5mq8hg` staging",
                check(Some(Environment::Stage)),
            ),
            (
                "<@U111> check <http://c1hk4ek107l5au5mq8hg|c1hk4ek107l5au5mq8hg>",
                check(None),
            ),
            ("<@U111>", Command::Help),
            ("", Command::Help),
            ("help", Command::Help),
            ("status", Command::Status),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), want, "{text:?}");
        }
    }

    #[test]
    fn report_takes_an_optional_period() {
        let cases = [
            (
                "report",
                Command::Report {
                    since: Since::week(),
                },
            ),
            (
                "REPORT 7d",
                Command::Report {
                    since: Since::week(),
                },
            ),
            (
                "<@U111> report `24h`",
                Command::Report {
                    since: Since::Ago(chrono::Duration::hours(24)),
                },
            ),
            (
                "report 2026-11-28T00:00:00Z",
                Command::Report {
                    since: Since::parse("2026-11-28T00:00:00Z").unwrap(),
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), want, "{text:?}");
        }
        for (text, expect) in [
            ("report 7x", "`7x` is not a period"),
            ("report last-week", "say `report 7d`"),
            ("report 7d now", "Too many words"),
            ("report <!channel>", "is not a period"),
        ] {
            match parse(text) {
                Command::Invalid(msg) => {
                    assert!(msg.contains(expect), "{text:?}: {msg}");
                    assert!(mrkdwn::live_tokens(&msg).is_empty(), "{text:?}: {msg}");
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn bad_requests_get_a_sentence_and_trigger_nothing() {
        let cases = [
            ("<@U111> check", "Which location"),
            ("check c1hk4ek107", "20 characters"),
            ("check c1hk4ek107l5au5mq8hg dev", "prod"),
            ("check c1hk4ek107l5au5mq8hg prod now", "Too many"),
            ("deploy everything", "don't know `deploy`"),
            ("check ../../etc/passwd", "20 characters"),
        ];
        for (text, expect) in cases {
            match parse(text) {
                Command::Invalid(msg) => assert!(msg.contains(expect), "{text:?}: {msg}"),
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn hostile_input_is_quoted_escaped_and_never_mentions() {
        for text in [
            "check x`<!channel>``",
            "<@U0LINKBOT> check x`<!channel>``",
            "check c1hk4ek107l5au5mq8hg `<!here>`",
            "`<!subteam^S123>` please",
            "check <https://evil.example|c1hk4ek107l5au5mq8hg>x",
            "```<@U999>```",
        ] {
            match parse(text) {
                Command::Invalid(msg) => {
                    assert!(mrkdwn::live_tokens(&msg).is_empty(), "{text:?}: {msg}");
                    // Every code span linkbot opened is closed: backticks come in pairs.
                    assert_eq!(msg.matches('`').count() % 2, 0, "{text:?}: {msg}");
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    proptest! {
        #[test]
        fn any_text_parses_without_panicking(s in "\\PC{0,200}") {
            let _ = parse(&s);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        /// Whatever people type, the answer holds no live mention or link.
        #[test]
        fn answers_to_any_input_hold_no_live_mention_or_link(
            s in "(check |<@U0LINKBOT> check |diagnose )?([<>!@#&`|*_~a-v0-9:^/. ]|\\PC){0,60}"
        ) {
            if let Command::Invalid(msg) = parse(&s) {
                prop_assert!(mrkdwn::live_tokens(&msg).is_empty(), "{}", msg);
            }
        }
    }
}
