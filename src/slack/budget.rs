//! The `chat.update` budget: how many message edits linkbot sends to Slack, and which go first.
//!
//! Slack allows `chat.update` at Tier 3, "50+ per minute" per app per workspace. slack-morphism's
//! own rate control reserves a slot for every call in the order the calls are made, so in an
//! alert storm a verdict would wait behind every progress edit queued before it (2,000 checks:
//! minutes). This budget sits in front of it and tells two kinds of edits apart:
//!
//! - an **urgent** edit (a verdict, a fallback, an incident or escalation edit: anything but
//!   progress) always goes: it takes a token, and waits only when urgent edits alone use up the
//!   rate;
//! - a **progress** edit goes only when a token is free *now* above a reserve kept for urgent
//!   edits, and no urgent edit waits; otherwise it is deferred, not queued, and its check sends
//!   its latest state later (the coordinator keeps only the latest view of each check).
//!
//! The bucket holds at most `capacity` tokens (a fifth of the window's allowance: the burst) and
//! refills at `(per_window − capacity) / window`, so no sliding window of that length ever holds
//! more than `per_window` edits, which is how the simulated Slack counts them. The budget is per
//! process: replicas of one app share Slack's allowance (see README).
//!
//! Pure arithmetic over [`Instant`]s handed in; the one async function only sleeps. It must not
//! know what an edit shows.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// An allowance: at most `per_window` edits in any `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EditRate {
    /// Edits allowed in one window.
    pub per_window: u32,
    /// The window.
    pub window: Duration,
}

impl EditRate {
    /// Slack's Tier 3 (`chat.update`): 50 per minute.
    pub const TIER_3: EditRate = EditRate {
        per_window: 50,
        window: Duration::from_secs(60),
    };
}

/// Whether an edit may be deferred.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EditKind {
    /// A verdict, a fallback, an incident, feedback or escalation edit: always sent.
    Urgent,
    /// A check's progress: sent only when it takes nothing from urgent edits.
    Progress,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens available (negative: reserved ahead by waiting urgent edits).
    tokens: f64,
    last: Instant,
    /// Urgent edits granted a token they must still wait for.
    urgent_waiting: u32,
}

/// The token bucket for `chat.update`. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct EditBudget {
    capacity: f64,
    /// Tokens per second.
    refill: f64,
    /// Tokens progress edits must leave for urgent ones.
    reserve: f64,
    bucket: Mutex<Bucket>,
}

impl EditBudget {
    /// A budget for `rate`, full.
    pub fn new(rate: EditRate) -> EditBudget {
        // At least 2 a window: one for the burst, one for the refill.
        let per_window = f64::from(rate.per_window.max(2));
        let capacity = (per_window / 5.0).max(1.0).floor();
        let window = rate.window.as_secs_f64().max(0.001);
        let refill = (per_window - capacity) / window;
        // Half the burst stays for urgent edits: a verdict after a flood of progress edits
        // finds a token at once.
        let reserve = (capacity / 2.0).floor();
        EditBudget {
            capacity,
            refill,
            reserve,
            bucket: Mutex::new(Bucket {
                tokens: capacity,
                last: Instant::now(),
                urgent_waiting: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.bucket.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.refill).min(self.capacity);
        b.last = now;
    }

    /// A progress edit at `now`: `true` (a token taken) when one is free above the reserve and
    /// no urgent edit is waiting; `false` means defer it.
    pub fn try_progress(&self, now: Instant) -> bool {
        let mut b = self.lock();
        self.refill(&mut b, now);
        if b.urgent_waiting == 0 && b.tokens >= 1.0 + self.reserve {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// An urgent edit at `now`: takes a token (ahead of every progress edit) and returns how
    /// long to wait before sending, zero when one was free. Call [`EditBudget::urgent_sent`]
    /// once the wait is over.
    pub fn reserve_urgent(&self, now: Instant) -> Duration {
        let mut b = self.lock();
        self.refill(&mut b, now);
        b.tokens -= 1.0;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            b.urgent_waiting += 1;
            Duration::from_secs_f64(-b.tokens / self.refill)
        }
    }

    /// An urgent edit that waited ([`EditBudget::reserve_urgent`] returned more than zero) is
    /// being sent.
    pub fn urgent_sent(&self) {
        let mut b = self.lock();
        b.urgent_waiting = b.urgent_waiting.saturating_sub(1);
    }

    /// Waits for the right to send an edit of `kind`: `false` for a progress edit to defer.
    pub async fn admit(&self, kind: EditKind) -> bool {
        match kind {
            EditKind::Progress => self.try_progress(Instant::now()),
            EditKind::Urgent => {
                let wait = self.reserve_urgent(Instant::now());
                if !wait.is_zero() {
                    // Dropped mid-wait (its caller gave up): the reservation is spent anyway,
                    // which only errs on the side of fewer edits.
                    let _guard = WaitGuard(self);
                    tokio::time::sleep(wait).await;
                }
                true
            }
        }
    }
}

/// Marks a waiting urgent edit as sent, however its wait ends.
struct WaitGuard<'a>(&'a EditBudget);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.urgent_sent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn tier_3_bursts_ten_then_refills_forty_a_minute() {
        let budget = EditBudget::new(EditRate::TIER_3);
        let t0 = Instant::now();
        // The burst is 10; progress leaves 5 of them for urgent edits.
        let progress = (0..20).filter(|_| budget.try_progress(t0)).count();
        assert_eq!(progress, 5);
        // Urgent edits still go at once: the reserve.
        for _ in 0..5 {
            assert_eq!(budget.reserve_urgent(t0), Duration::ZERO);
        }
        // The next urgent one waits for the refill: 40 a minute, 1.5 s a token.
        let wait = budget.reserve_urgent(t0);
        assert_eq!(wait, Duration::from_millis(1500));
        // While it waits, no progress edit goes, even once a token arrives.
        assert!(!budget.try_progress(t0 + Duration::from_secs(3)));
        budget.urgent_sent();
    }

    #[test]
    fn a_verdict_after_a_flood_of_progress_goes_at_once() {
        let budget = EditBudget::new(EditRate::TIER_3);
        let t0 = Instant::now();
        // 2,000 checks ask for a progress edit every second for a minute.
        let mut sent = 0;
        for s in 0..60u64 {
            for _ in 0..2000 {
                if budget.try_progress(t0 + Duration::from_secs(s)) {
                    sent += 1;
                }
            }
        }
        assert!(sent <= 50, "{sent} progress edits in a minute");
        assert_eq!(
            budget.reserve_urgent(t0 + Duration::from_secs(60)),
            Duration::ZERO,
            "the verdict waits for no progress edit"
        );
    }

    #[test]
    fn urgent_edits_beyond_the_rate_wait_in_order() {
        let budget = EditBudget::new(EditRate {
            per_window: 10,
            window: Duration::from_secs(8),
        });
        let t0 = Instant::now();
        // capacity 2, refill 8 per 8 s = 1/s.
        let waits: Vec<Duration> = (0..5).map(|_| budget.reserve_urgent(t0)).collect();
        assert_eq!(
            waits,
            vec![Duration::ZERO, Duration::ZERO, ms(1000), ms(2000), ms(3000)]
        );
    }

    proptest! {
        /// Whatever the mix and timing of edits, no sliding window holds more than the
        /// allowance (the simulated Slack's rule), counting each edit when it is sent.
        #[test]
        fn no_window_holds_more_than_the_allowance(
            per_window in 2u32..120,
            window_ms in 100u64..5000,
            steps in proptest::collection::vec((0u64..400, any::<bool>()), 1..300),
        ) {
            let rate = EditRate { per_window, window: ms(window_ms) };
            let budget = EditBudget::new(rate);
            let t0 = Instant::now();
            let mut now = t0;
            let mut sent: Vec<Instant> = Vec::new();
            for (gap, urgent) in steps {
                now += ms(gap);
                if urgent {
                    let wait = budget.reserve_urgent(now);
                    if !wait.is_zero() {
                        budget.urgent_sent();
                    }
                    sent.push(now + wait);
                } else if budget.try_progress(now) {
                    sent.push(now);
                }
            }
            sent.sort();
            for (i, start) in sent.iter().enumerate() {
                let end = *start + rate.window;
                let within = sent[i..].iter().take_while(|t| **t < end).count();
                prop_assert!(
                    within as u32 <= per_window,
                    "{within} edits within {:?} from {:?} (allowance {per_window})",
                    rate.window,
                    start.duration_since(t0)
                );
            }
        }
    }
}
