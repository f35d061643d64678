//! The weekly post: `[report] weekly_at = "Mon 09:00"` (UTC) posts the report of the 7 days
//! before that time to `[report] channel`, from exactly one replica.
//!
//! [`WeeklyAt`] is the parsed time of the week, and the slot arithmetic is pure. [`Weekly`] is
//! the timer's work: on each tick it asks whether the latest slot is due (at most
//! [`CATCH_UP`] late, e.g. after a restart), claims the slot in the store
//! ([`Store::claim_report_slot`], keyed by the slot, so a second replica or a process restarted
//! in the posting minute finds it taken), gathers the report and posts it through
//! [`ReportPoster`] (the Slack side, implemented in `slack/report.rs`), then records the post.
//! A claim whose holder died before posting is taken over after [`STALE_CLAIM`]. The time comes
//! from the store's [`Clock`], so tests set it at the slot and need no waiting.
//!
//! What this module must NOT do: import Slack or the configuration, or post without a claim.

use super::period::Period;
use super::{gather, PeriodReport};
use crate::store::{Clock, ReportSlotClaim, Store};
use chrono::{DateTime, Datelike, Duration as Span, NaiveTime, Timelike, Utc, Weekday};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How late a slot may still be posted (the bot was down at its time).
pub const CATCH_UP: Duration = Duration::from_secs(12 * 3600);

/// After this long unposted, a slot's claim is taken over (its holder died mid-post).
pub const STALE_CLAIM: Duration = Duration::from_secs(10 * 60);

/// The longest the timer sleeps between looks at the clock.
pub const TICK: Duration = Duration::from_secs(60);

/// The period a weekly report covers: the 7 days before its slot.
pub const WEEK: Span = Span::days(7);

/// A time of the week, in UTC: `Mon 09:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklyAt {
    day: Weekday,
    time: NaiveTime,
}

/// Why a `weekly_at` is not a time of the week.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeeklyAtError {
    /// Not two words.
    #[error("`{0}` is not a day and a time: write e.g. \"Mon 09:00\" (UTC)")]
    Shape(String),
    /// The first word is not a day of the week.
    #[error("`{0}` is not a day of the week: use Mon, Tue, Wed, Thu, Fri, Sat or Sun")]
    Day(String),
    /// The second word is not `HH:MM`.
    #[error("`{0}` is not a time of day: use 24-hour HH:MM in UTC, e.g. 09:00 or 17:30")]
    Time(String),
}

impl WeeklyAt {
    /// Parses `Mon 09:00`: a day (`Mon`…`Sun`, or its full English name, any case) and a
    /// 24-hour `HH:MM` (UTC).
    pub fn parse(s: &str) -> Result<WeeklyAt, WeeklyAtError> {
        let shown = |s: &str| s.chars().take(40).collect::<String>();
        let words: Vec<&str> = s.split_whitespace().collect();
        let [day, time] = words.as_slice() else {
            return Err(WeeklyAtError::Shape(shown(s)));
        };
        let day = match day.to_ascii_lowercase().as_str() {
            "mon" | "monday" => Weekday::Mon,
            "tue" | "tuesday" => Weekday::Tue,
            "wed" | "wednesday" => Weekday::Wed,
            "thu" | "thursday" => Weekday::Thu,
            "fri" | "friday" => Weekday::Fri,
            "sat" | "saturday" => Weekday::Sat,
            "sun" | "sunday" => Weekday::Sun,
            _ => return Err(WeeklyAtError::Day(shown(day))),
        };
        let bad_time = || WeeklyAtError::Time(shown(time));
        let (h, m) = time.split_once(':').ok_or_else(bad_time)?;
        let two_digits = |x: &str| x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit());
        if !(two_digits(h) && two_digits(m)) {
            return Err(bad_time());
        }
        let (h, m) = (
            h.parse().map_err(|_| bad_time())?,
            m.parse().map_err(|_| bad_time())?,
        );
        let time = NaiveTime::from_hms_opt(h, m, 0).ok_or_else(bad_time)?;
        Ok(WeeklyAt { day, time })
    }

    /// The latest slot at or before `now`.
    pub fn last_slot(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let back = (7 + now.weekday().num_days_from_monday() - self.day.num_days_from_monday()) % 7;
        let day = now.date_naive() - Span::days(i64::from(back));
        let slot = day.and_time(self.time).and_utc();
        if slot > now {
            slot - WEEK
        } else {
            slot
        }
    }

    /// The first slot after `now`.
    pub fn next_slot(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.last_slot(now) + WEEK
    }
}

impl fmt::Display for WeeklyAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:02}:{:02}",
            self.day,
            self.time.hour(),
            self.time.minute()
        )
    }
}

/// The Slack side of the weekly post.
#[async_trait::async_trait]
pub trait ReportPoster: Send + Sync {
    /// Posts `report` visibly in `channel`; returns the message's `ts`.
    async fn post_report(&self, channel: &str, report: &PeriodReport) -> anyhow::Result<String>;

    /// Posts, visibly in `channel`, the sentence saying why the report could not be made.
    async fn post_failure(&self, channel: &str, sentence: &str) -> anyhow::Result<String>;
}

/// What one look at a slot came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotOutcome {
    /// This replica posted the report (`ts`), or the sentence saying why it could not.
    Posted {
        /// The message.
        ts: String,
    },
    /// Another claim holds the slot (`posted`: done; otherwise being posted, or its holder died
    /// and it will be taken over once stale).
    Taken {
        /// Who holds it.
        owner: String,
        /// Whether it was posted.
        posted: bool,
    },
    /// Claiming or posting failed; the slot is tried again at the next tick.
    Failed {
        /// Why (for logs and tests).
        why: String,
    },
}

/// One look at a slot, published for tests and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotEvent {
    /// The slot.
    pub slot: DateTime<Utc>,
    /// What came of it.
    pub outcome: SlotOutcome,
}

/// The weekly post of one replica.
pub struct Weekly {
    /// The store (claims and rows).
    pub store: Arc<dyn Store>,
    /// Where reports are posted.
    pub poster: Arc<dyn ReportPoster>,
    /// The channel id.
    pub channel: String,
    /// When.
    pub at: WeeklyAt,
    /// This replica's name (the claim's owner).
    pub owner: String,
    /// The time (the store's clock).
    pub clock: Clock,
    /// Every look at a slot is sent here.
    pub events: watch::Sender<Option<SlotEvent>>,
}

impl Weekly {
    /// Looks at the clock every [`TICK`] (or at the next slot, if sooner) and posts each slot
    /// once, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut done: Option<DateTime<Utc>> = None;
        loop {
            let now = self.clock.now();
            let slot = self.at.last_slot(now);
            let due = (now - slot).to_std().is_ok_and(|late| late < CATCH_UP);
            if due && done != Some(slot) {
                let outcome = self.post_slot(slot).await;
                if matches!(
                    outcome,
                    SlotOutcome::Posted { .. } | SlotOutcome::Taken { posted: true, .. }
                ) {
                    done = Some(slot);
                }
                self.events.send_replace(Some(SlotEvent { slot, outcome }));
            }
            let until_next = (self.at.next_slot(now) - now).to_std().unwrap_or_default();
            let wait = until_next.clamp(Duration::from_secs(1), TICK);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Claims `slot`, then posts its report (or why it could not be made) and records it.
    pub async fn post_slot(&self, slot: DateTime<Utc>) -> SlotOutcome {
        let claim = match self
            .store
            .claim_report_slot(slot, &self.channel, &self.owner, STALE_CLAIM)
            .await
        {
            Ok(ReportSlotClaim::Claimed { claim }) => claim,
            Ok(ReportSlotClaim::Taken { owner, posted }) => {
                tracing::info!(%slot, %owner, posted, "the weekly report is another replica's");
                return SlotOutcome::Taken { owner, posted };
            }
            Err(e) => {
                tracing::warn!(%slot, error = format!("{:#}", anyhow::Error::new(e)), "cannot claim the weekly report; trying again at the next tick");
                return SlotOutcome::Failed {
                    why: "claim failed".into(),
                };
            }
        };
        let posted = match self.report(slot).await {
            Ok(report) => self.poster.post_report(&self.channel, &report).await,
            Err(sentence) => self.poster.post_failure(&self.channel, &sentence).await,
        };
        match posted {
            Ok(ts) => {
                match self.store.finish_report_slot(slot, &claim, Some(&ts)).await {
                    Ok(true) => {}
                    // The post took longer than STALE_CLAIM and another replica took the slot
                    // over: it may post too. Said loudly; the bound is far above a post's time.
                    Ok(false) => {
                        tracing::warn!(%slot, "the weekly report was posted after its claim went stale")
                    }
                    // Posted: the claim stays `posting` and is taken over only after
                    // STALE_CLAIM, by when the slot's catch-up window has not ended: a second
                    // post is possible only if the store stays unwritable that long.
                    Err(e) => {
                        tracing::error!(%slot, error = %e, "the weekly report was posted but the store could not record it")
                    }
                }
                tracing::info!(%slot, channel = %self.channel, %ts, "posted the weekly report");
                SlotOutcome::Posted { ts }
            }
            Err(e) => {
                tracing::error!(%slot, error = format!("{e:#}"), "cannot post the weekly report; trying again at the next tick");
                if let Err(e) = self.store.finish_report_slot(slot, &claim, None).await {
                    tracing::warn!(%slot, error = %e, "cannot drop the weekly report's claim; it is taken over once stale");
                }
                SlotOutcome::Failed {
                    why: format!("{e:#}"),
                }
            }
        }
    }

    /// The report of the week before `slot`, or the sentence saying why it cannot be made.
    async fn report(&self, slot: DateTime<Utc>) -> Result<PeriodReport, String> {
        let period = Period::new(slot - WEEK, slot).map_err(|e| e.to_string())?;
        gather(&*self.store, period).await.map_err(|e| {
            let sentence = format!(
                "The weekly report could not be made: {} Ask for it with `/linkbot report 7d`.",
                e.user_message()
            );
            tracing::error!(
                error = format!("{:#}", anyhow::Error::new(e)),
                "cannot read the weekly report's rows"
            );
            sentence
        })
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
    fn weekly_at_reads_a_day_and_a_utc_time() {
        let ok = [
            ("Mon 09:00", "Mon 09:00"),
            ("mon 09:00", "Mon 09:00"),
            ("  Friday   17:30 ", "Fri 17:30"),
            ("SUN 00:00", "Sun 00:00"),
            ("Wed 23:59", "Wed 23:59"),
        ];
        for (input, want) in ok {
            assert_eq!(
                WeeklyAt::parse(input).map(|w| w.to_string()),
                Ok(want.to_string()),
                "{input:?}"
            );
        }
        let bad = [
            ("", WeeklyAtError::Shape(String::new())),
            ("Mon", WeeklyAtError::Shape("Mon".into())),
            (
                "Mon 09:00 UTC",
                WeeklyAtError::Shape("Mon 09:00 UTC".into()),
            ),
            ("Mo 09:00", WeeklyAtError::Day("Mo".into())),
            ("09:00 Mon", WeeklyAtError::Day("09:00".into())),
            ("Mon 9:00", WeeklyAtError::Time("9:00".into())),
            ("Mon 24:00", WeeklyAtError::Time("24:00".into())),
            ("Mon 09:60", WeeklyAtError::Time("09:60".into())),
            ("Mon 0900", WeeklyAtError::Time("0900".into())),
            ("Mon 09:00:00", WeeklyAtError::Time("09:00:00".into())),
            ("Mon +9:00", WeeklyAtError::Time("+9:00".into())),
        ];
        for (input, want) in bad {
            assert_eq!(WeeklyAt::parse(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn slots_are_the_weekly_instants_around_now() {
        let at = WeeklyAt::parse("Mon 09:00").unwrap();
        let cases = [
            // (now, last slot)
            ("2026-11-30T09:00:00Z", "2026-11-30T09:00:00Z"), // Monday, at the slot
            ("2026-11-30T09:00:30Z", "2026-11-30T09:00:00Z"),
            ("2026-11-30T08:59:59Z", "2026-11-23T09:00:00Z"), // just before
            ("2026-12-01T05:00:00Z", "2026-11-30T09:00:00Z"), // Tuesday
            ("2026-12-06T23:59:00Z", "2026-11-30T09:00:00Z"), // Sunday
        ];
        for (now, want) in cases {
            assert_eq!(at.last_slot(t(now)), t(want), "{now}");
            assert_eq!(at.next_slot(t(now)), t(want) + WEEK, "{now}");
        }
    }

    proptest! {
        #[test]
        fn any_text_parses_without_panicking(s in "\\PC{0,30}") {
            let _ = WeeklyAt::parse(&s);
        }

        #[test]
        fn the_last_slot_is_the_right_day_and_time_within_a_week(
            secs in 0i64..(20 * 365 * 86_400), day in 0u32..7, h in 0u32..24, m in 0u32..60,
        ) {
            let now = t("2020-01-01T00:00:00Z") + Span::seconds(secs);
            let text = format!(
                "{} {h:02}:{m:02}",
                ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][day as usize]
            );
            let at = WeeklyAt::parse(&text).unwrap();
            prop_assert_eq!(at.to_string(), text);
            let slot = at.last_slot(now);
            prop_assert!(slot <= now && now - slot < WEEK);
            prop_assert_eq!(slot.weekday().num_days_from_monday(), day);
            prop_assert_eq!((slot.hour(), slot.minute(), slot.second()), (h, m, 0));
            prop_assert!(at.next_slot(now) > now);
        }
    }
}
