//! A string that must never be shown: Slack tokens, API tokens, the customer's IAM API key.
//!
//! [`Secret`] wraps `secrecy::SecretString`; its `Debug` and `Display` print `[redacted]`, and
//! the only way to the value is [`Secret::expose`], which call sites use at the exact point the
//! value goes on the wire. The most any human-facing output may show is [`Secret::fingerprint`].
//! This module must not grow any other way of reaching the inner value.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// A secret string whose `Debug`/`Display` redact.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a value; the caller's copy should be dropped right after.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }

    /// The value itself, for the one place it is put on the wire (an HTTP header or form body).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.expose_secret().is_empty()
    }

    /// A safe way to tell two secrets apart in output: `…` and the last 4 characters
    /// (or only `…` when the value is 8 characters or shorter, which would give too much away).
    pub fn fingerprint(&self) -> String {
        let chars: Vec<char> = self.0.expose_secret().chars().collect();
        if chars.len() <= 8 {
            "…".to_string()
        } else {
            let tail: String = chars[chars.len() - 4..].iter().collect();
            format!("…{tail}")
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Makes text from outside (an API's error, IAM's detail, a console line) fit to show: control
/// characters become spaces, `secret` (when given and not empty) becomes `[redacted …abcd]` (its
/// fingerprint), surrounding space is trimmed, and at most `max_chars` characters are kept,
/// ending in `…` when cut. The secret is replaced before cutting, so no part of it survives.
/// The one scrubber of the crate: clients and the diagnosis use it, none writes its own.
pub fn scrub(text: &str, secret: Option<&Secret>, max_chars: usize) -> String {
    let mut s: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        s = s.replace(
            secret.expose(),
            &format!("[redacted {}]", secret.fingerprint()),
        );
    }
    crate::format::clip(s.trim(), max_chars)
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("xoxb-1234-very-secret-token");
        assert!(!format!("{s:?}").contains("very-secret"));
        assert!(!format!("{s}").contains("very-secret"));
        assert_eq!(s.expose(), "xoxb-1234-very-secret-token");
    }

    #[test]
    fn scrub_removes_the_secret_before_cutting() {
        let key = Secret::new("R0UTINGKEY1234567890abcdefghijkl");
        assert_eq!(
            scrub(
                "bad key R0UTINGKEY1234567890abcdefghijkl\nsee docs",
                Some(&key),
                300
            ),
            "bad key [redacted …ijkl] see docs"
        );
        // Cut in the middle of where the key was: still no part of it.
        let cut = scrub(
            &format!("{}{}", "x".repeat(20), key.expose()),
            Some(&key),
            25,
        );
        assert!(!cut.contains("R0UTING"), "{cut}");
        assert_eq!(cut.chars().count(), 25);
        assert!(cut.ends_with('…'));
        assert_eq!(scrub("  a\u{7}b  ", None, 10), "a b");
        assert_eq!(scrub("text", Some(&Secret::new("")), 10), "text");
    }

    #[test]
    fn fingerprint_shows_at_most_the_last_four_characters() {
        assert_eq!(Secret::new("kq2V8hN0Zt1mWcXb3fLp").fingerprint(), "…3fLp");
        assert_eq!(Secret::new("short").fingerprint(), "…");
        assert_eq!(Secret::new("").fingerprint(), "…");
    }
}
