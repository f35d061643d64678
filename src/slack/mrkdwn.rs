//! Slack mrkdwn for text that did not come from linkbot: the one escaping function, and the few
//! constructs built around it (code spans, links, user and channel mentions).
//!
//! Slack turns `<!channel>`, `<!here>`, `<!subteam^…>`, `<@U…>`, `<#C…>` and `<url|label>` into
//! live mentions and links, and documents that `&`, `<` and `>` must be escaped as `&amp;`,
//! `&lt;` and `&gt;` in any other text (<https://docs.slack.dev/messaging/formatting-message-text#escaping>).
//! [`escape`] does that for every piece of outside text (user input, directory fields, Jenkins
//! console lines, artifact content, Slack names), and also replaces each backtick with
//! `ˋ` (U+02CB MODIFIER LETTER GRAVE ACCENT), which looks the same to a reader but can never
//! open or close a code span or a ``` fence: text shown inside linkbot's code spans stays inside.
//!
//! Live mentions and links are only built here, from linkbot's own values: [`link`] takes only
//! an http(s) URL that parses, [`user`] and [`channel`] only Slack ids. This module is pure and
//! must never pass outside text through unescaped.

use crate::domain::DomainError;

/// What a backtick in outside text becomes: U+02CB MODIFIER LETTER GRAVE ACCENT.
pub const BACKTICK_STAND_IN: char = '\u{02CB}';

/// Escapes outside text for mrkdwn: `&`, `<`, `>` as Slack documents, and every backtick
/// replaced by [`BACKTICK_STAND_IN`], so the text can neither mention, link, nor break out of a
/// code span or fence.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '`' => out.push(BACKTICK_STAND_IN),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text that linkbot composed around outside pieces (step evidence, summaries, progress
/// lines), keeping linkbot's own code spans: only `&`, `<` and `>` are escaped. An outside piece
/// can then shift where a code span ends (cosmetic) but can never form a mention or a link.
pub fn escape_composed(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Outside text as inline code: `` `text` ``, escaped; empty text shows as `(empty)`.
pub fn code(s: &str) -> String {
    if s.is_empty() {
        return "(empty)".into();
    }
    format!("`{}`", escape(s))
}

/// A link to `url` labelled `label`. Only an http(s) URL that parses becomes a live link (with
/// `|` and `&` encoded so neither can end it early); anything else is shown as escaped text.
pub fn link(url: &str, label: &str) -> String {
    match url::Url::parse(url.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {
            // The URL parser already percent-encodes `<`, `>`, `"`, spaces and controls.
            let href = u
                .as_str()
                .replace('|', "%7C")
                .replace('<', "%3C")
                .replace('>', "%3E")
                .replace('&', "&amp;");
            format!("<{href}|{}>", escape(label))
        }
        _ => format!("{} ({})", escape(label), code(url)),
    }
}

/// Whether `id` looks like a Slack id (`U0123ABC`): upper-case letters and digits only.
fn slack_id(id: &str) -> bool {
    (2..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A live mention of the user `id`, or the escaped id when it is not a Slack user id.
pub fn user(id: &str) -> String {
    if slack_id(id) && (id.starts_with('U') || id.starts_with('W')) {
        format!("<@{id}>")
    } else {
        code(id)
    }
}

/// A live link to the channel `id`, or the escaped id when it is not a Slack channel id.
pub fn channel(id: &str) -> String {
    if slack_id(id) && (id.starts_with('C') || id.starts_with('G') || id.starts_with('D')) {
        format!("<#{id}>")
    } else {
        code(id)
    }
}

/// A parse error for Slack: its sentence is linkbot's (with `<` and `>` escaped), the input it
/// quotes (inside a code span) is escaped with [`escape`].
pub fn domain_error(e: &DomainError) -> String {
    use DomainError as E;
    // The quoted input is put back after the sentence is escaped; input shown in errors never
    // holds control characters, so NUL cannot collide with it.
    const SLOT: &str = "\u{0}";
    let slot = || SLOT.to_string();
    let (sentence, input) = match e {
        E::LocationId(s) => (E::LocationId(slot()), s),
        E::Environment(s) => (E::Environment(slot()), s),
        E::Tugboat(s) => (E::Tugboat(slot()), s),
        E::Datacenter(s) => (E::Datacenter(slot()), s),
        E::Region(s) => (E::Region(slot()), s),
        E::Carrier(s) => (E::Carrier(slot()), s),
        E::UnknownDatacenter(s) => (E::UnknownDatacenter(slot()), s),
        E::BaseUrl(s) => (E::BaseUrl(slot()), s),
        E::SlackChannel(s) => (E::SlackChannel(slot()), s),
        E::GithubRepo(s) => (E::GithubRepo(slot()), s),
    };
    escape_composed(&sentence.to_string()).replace(SLOT, &escape(&input.replace(SLOT, "")))
}

/// Every `<…>` sequence in mrkdwn `text`: what Slack would parse as a mention (`<!…>`, `<@…>`,
/// `<#…>`) or a link (`<http…>`, or anything else in angle brackets). For tests and checks.
pub fn live_tokens(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else {
            break;
        };
        found.push(format!("<{}>", &after[..end]));
        rest = &after[end + 1..];
    }
    found
}

/// The live mentions and links in every `mrkdwn` text object of Block Kit JSON (`plain_text`
/// is never parsed for mentions or links). For tests and checks.
pub fn live_tokens_in(blocks: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if map.get("type").and_then(Value::as_str) == Some("mrkdwn") {
                    if let Some(text) = map.get("text").and_then(Value::as_str) {
                        out.extend(live_tokens(text));
                    }
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(blocks, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hostile_text_cannot_mention_link_or_leave_a_code_span() {
        let cases = [
            ("x`<!channel>`", "xˋ&lt;!channel&gt;ˋ"),
            ("<!here> & <@U123>", "&lt;!here&gt; &amp; &lt;@U123&gt;"),
            (
                "```<https://evil|click>```",
                "ˋˋˋ&lt;https://evil|click&gt;ˋˋˋ",
            ),
            ("&lt;!channel&gt;", "&amp;lt;!channel&amp;gt;"),
            ("plain", "plain"),
        ];
        for (input, want) in cases {
            assert_eq!(escape(input), want, "{input}");
            assert!(live_tokens(&escape(input)).is_empty(), "{input}");
        }
        assert_eq!(code("a`b"), "`aˋb`");
        assert_eq!(code(""), "(empty)");
    }

    #[test]
    fn links_mentions_and_channels_are_built_only_from_well_formed_values() {
        assert_eq!(
            link("http://jenkins/job/x/5/", "Jenkins build"),
            "<http://jenkins/job/x/5/|Jenkins build>"
        );
        assert_eq!(
            link("https://x.example/a?b=1&c=2", "<b>"),
            "<https://x.example/a?b=1&amp;c=2|&lt;b&gt;>"
        );
        // A URL that tries to end the link early or smuggle a mention stays one link.
        let evil = link("https://x.example/a|<!channel>", "build");
        assert_eq!(live_tokens(&evil).len(), 1, "{evil}");
        assert!(!evil.contains("<!channel>"), "{evil}");
        assert_eq!(
            link("javascript:alert(1)", "x"),
            "x (`javascript:alert(1)`)"
        );
        assert_eq!(user("U0SIMUSER"), "<@U0SIMUSER>");
        assert_eq!(user("U1>|<!channel"), "`U1&gt;|&lt;!channel`");
        assert_eq!(channel("C0ONCALL"), "<#C0ONCALL>");
        assert_eq!(channel("here"), "`here`");
        let e = crate::domain::LocationId::parse("x`<!channel>`").unwrap_err();
        let shown = domain_error(&e);
        assert!(live_tokens(&shown).is_empty(), "{shown}");
        assert!(shown.contains("is not a location id"), "{shown}");
        let tugboat = domain_error(&crate::domain::Tugboat::parse("a`<@U1>").unwrap_err());
        assert!(live_tokens(&tugboat).is_empty(), "{tugboat}");
        assert!(tugboat.contains("&lt;env&gt;"), "{tugboat}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn escaped_text_never_holds_a_live_token_or_a_backtick(s in "\\PC{0,64}|[<>!@#&`|a-z: ]{0,64}") {
            let e = escape(&s);
            prop_assert!(live_tokens(&e).is_empty());
            prop_assert!(!e.contains('`'));
            prop_assert!(!e.contains('<') && !e.contains('>'));
        }
    }
}
