//! The period a report covers, parsed at the boundary: `--since` of `linkbot report` and
//! `linkbot audit`, and the word after `/linkbot report` (RFC 3339, or a duration back from now:
//! `30m`, `24h`, `7d`).
//!
//! Pure parsing into [`Since`] and [`Period`] (private fields, valid once built). The time "now"
//! is always given by the caller, so nothing here reads a clock. What this module must NOT do:
//! I/O, or render anything for Slack (callers escape what they quote).

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

/// The longest period a report covers: one line of per-day bars stays readable.
pub const MAX_DAYS: i64 = 92;

/// Why a `--since` (or the word after `/linkbot report`) is not a start of a period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinceError {
    /// Neither a time nor a number followed by a unit.
    #[error(
        "`{0}` is neither an RFC 3339 time (2026-11-28T00:00:00Z) nor a duration (30m, 24h, 7d)"
    )]
    NotATime(String),
    /// A number with a unit other than m, h or d.
    #[error("`{0}`: a duration ends in m, h or d (30m, 24h, 7d)")]
    Unit(String),
}

/// Why a period cannot be reported on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// It starts at or after its end (a time in the future).
    #[error("the period starts at {since} UTC, which is not before its end ({until} UTC): give a time in the past or a duration (7d)")]
    Empty {
        /// The start asked for.
        since: String,
        /// The end (now).
        until: String,
    },
    /// It is longer than [`MAX_DAYS`].
    #[error("the period is {days} days long: a report covers at most {MAX_DAYS} days (e.g. 30d)")]
    TooLong {
        /// Its length in whole days.
        days: i64,
    },
}

/// The start of a period as written: a fixed time, or a duration back from "now".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// A fixed time (RFC 3339).
    At(DateTime<Utc>),
    /// This long before now.
    Ago(Duration),
}

impl Since {
    /// A week back: the default of `linkbot report` and `/linkbot report`.
    pub fn week() -> Since {
        Since::Ago(Duration::days(7))
    }

    /// Parses RFC 3339 (`2026-11-28T00:00:00Z`) or a duration back from now (`30m`, `24h`,
    /// `7d`; a whole number from 1 to 99,999).
    pub fn parse(s: &str) -> Result<Since, SinceError> {
        let s = s.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(Since::At(t.with_timezone(&Utc)));
        }
        let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let n: i64 = num
            .parse()
            .ok()
            .filter(|n| *n > 0 && *n < 100_000)
            .ok_or_else(|| SinceError::NotATime(s.chars().take(40).collect()))?;
        match unit {
            "m" => Ok(Since::Ago(Duration::minutes(n))),
            "h" => Ok(Since::Ago(Duration::hours(n))),
            "d" => Ok(Since::Ago(Duration::days(n))),
            _ => Err(SinceError::Unit(s.chars().take(40).collect())),
        }
    }

    /// The time this names, given the time now.
    pub fn resolve(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Since::At(t) => *t,
            Since::Ago(d) => now - *d,
        }
    }
}

/// Parses `--since` against the time `now` (see [`Since::parse`]).
pub fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, SinceError> {
    Since::parse(s).map(|since| since.resolve(now))
}

/// A period `[since, until)`: not empty, at most [`MAX_DAYS`] long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Period {
    since: DateTime<Utc>,
    until: DateTime<Utc>,
}

impl Period {
    /// The period from `since` to `until`.
    pub fn new(since: DateTime<Utc>, until: DateTime<Utc>) -> Result<Period, PeriodError> {
        if since >= until {
            return Err(PeriodError::Empty {
                since: since.format("%Y-%m-%d %H:%M").to_string(),
                until: until.format("%Y-%m-%d %H:%M").to_string(),
            });
        }
        let days = (until - since).num_days();
        if until - since > Duration::days(MAX_DAYS) {
            return Err(PeriodError::TooLong { days });
        }
        Ok(Period { since, until })
    }

    /// The period from `since` up to `now`.
    pub fn up_to(since: Since, now: DateTime<Utc>) -> Result<Period, PeriodError> {
        Period::new(since.resolve(now), now)
    }

    /// Where it starts (included).
    pub fn since(&self) -> DateTime<Utc> {
        self.since
    }

    /// Where it ends (excluded).
    pub fn until(&self) -> DateTime<Utc> {
        self.until
    }

    /// Whether `t` falls in it.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.since <= t && t < self.until
    }

    /// The UTC days it touches, first to last (a 7-day period starting at 09:00 touches 8).
    pub fn days(&self) -> Vec<NaiveDate> {
        let first = self.since.date_naive();
        let last = (self.until - Duration::milliseconds(1)).date_naive();
        first
            .iter_days()
            .take_while(|d| *d <= last)
            .collect::<Vec<_>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn since_reads_times_and_durations() {
        let now = t("2026-12-01T09:00:00Z");
        let cases = [
            ("7d", Ok(t("2026-11-24T09:00:00Z"))),
            ("24h", Ok(t("2026-11-30T09:00:00Z"))),
            ("30m", Ok(t("2026-12-01T08:30:00Z"))),
            (" 2d ", Ok(t("2026-11-29T09:00:00Z"))),
            ("2026-11-28T00:00:00Z", Ok(t("2026-11-28T00:00:00Z"))),
            ("2026-11-28T01:00:00+01:00", Ok(t("2026-11-28T00:00:00Z"))),
            ("7x", Err(SinceError::Unit("7x".into()))),
            ("7 d", Err(SinceError::Unit("7 d".into()))),
            ("d", Err(SinceError::NotATime("d".into()))),
            ("0d", Err(SinceError::NotATime("0d".into()))),
            ("100000d", Err(SinceError::NotATime("100000d".into()))),
            ("-7d", Err(SinceError::NotATime("-7d".into()))),
            ("", Err(SinceError::NotATime(String::new()))),
            ("last week", Err(SinceError::NotATime("last week".into()))),
        ];
        for (input, want) in cases {
            assert_eq!(parse_since(input, now), want, "{input:?}");
        }
    }

    #[test]
    fn errors_say_what_to_write() {
        assert!(SinceError::Unit("7x".into())
            .to_string()
            .contains("ends in m, h or d"));
        assert!(SinceError::NotATime("x".into())
            .to_string()
            .contains("RFC 3339"));
    }

    #[test]
    fn periods_are_never_empty_nor_too_long() {
        let now = t("2026-12-01T09:00:00Z");
        assert!(Period::up_to(Since::week(), now).is_ok());
        assert!(matches!(
            Period::up_to(Since::At(t("2026-12-02T00:00:00Z")), now),
            Err(PeriodError::Empty { .. })
        ));
        assert!(matches!(
            Period::up_to(Since::At(now), now),
            Err(PeriodError::Empty { .. })
        ));
        assert!(Period::up_to(Since::Ago(Duration::days(MAX_DAYS)), now).is_ok());
        assert_eq!(
            Period::up_to(Since::Ago(Duration::days(400)), now),
            Err(PeriodError::TooLong { days: 400 })
        );
    }

    #[test]
    fn days_are_the_utc_dates_touched() {
        let p = Period::new(t("2026-11-24T09:00:00Z"), t("2026-12-01T09:00:00Z")).unwrap();
        let days = p.days();
        assert_eq!(days.len(), 8);
        assert_eq!(days[0].to_string(), "2026-11-24");
        assert_eq!(days[7].to_string(), "2026-12-01");
        let p = Period::new(t("2026-11-24T00:00:00Z"), t("2026-12-01T00:00:00Z")).unwrap();
        assert_eq!(p.days().len(), 7);
        assert!(p.contains(t("2026-11-24T00:00:00Z")));
        assert!(!p.contains(t("2026-12-01T00:00:00Z")));
    }

    proptest! {
        #[test]
        fn any_text_parses_without_panicking(s in "\\PC{0,40}") {
            let _ = Since::parse(&s);
        }

        #[test]
        fn a_duration_goes_back_exactly_that_far(n in 1i64..100_000, unit in "[mhd]") {
            let now = t("2026-12-01T09:00:00Z");
            let got = parse_since(&format!("{n}{unit}"), now).unwrap();
            let per = match unit.as_str() { "m" => 60, "h" => 3600, _ => 86_400 };
            prop_assert_eq!((now - got).num_seconds(), n * per);
        }

        #[test]
        fn every_instant_of_a_period_falls_on_one_of_its_days(
            start in 0i64..10_000_000, len in 1i64..(MAX_DAYS * 86_400), at in 0.0f64..1.0,
        ) {
            let since = t("2026-01-01T00:00:00Z") + Duration::seconds(start);
            let p = Period::new(since, since + Duration::seconds(len)).unwrap();
            let inside = since + Duration::milliseconds(((len * 1000) as f64 * at) as i64);
            prop_assume!(p.contains(inside));
            prop_assert!(p.days().contains(&inside.date_naive()));
        }
    }
}
