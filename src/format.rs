//! Short human text: durations (the one formatter every layer uses: stage lines, Block Kit,
//! Jenkins' messages), cutting text to a length and folding it onto one line. Pure formatting: no I/O, no markup, no other
//! module's types, so a client may use it without importing `check/` or `slack/`.

use std::time::Duration;

/// Formats a duration as `1h05m`, `4m05s`, `12s`, or `3.4s` under ten seconds.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s >= 10 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", d.subsec_millis() / 100)
    }
}

/// Cuts `s` to at most `max` characters, ending with `…` when cut. Never splits a character.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// One line of untrusted text: control characters (newlines included) become spaces.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_counts_characters_not_bytes() {
        assert_eq!(clip("héllo", 5), "héllo");
        assert_eq!(clip("héllo wörld", 6), "héllo…");
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        let cases = [
            (Duration::from_millis(400), "0.4s"),
            (Duration::from_millis(9_950), "9.9s"),
            (Duration::from_secs(12), "12s"),
            (Duration::from_secs(245), "4m05s"),
            (Duration::from_secs(3_900), "1h05m"),
        ];
        for (d, want) in cases {
            assert_eq!(human(d), want);
        }
    }
}
