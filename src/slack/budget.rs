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
//! The budget is a sliding log of the edits granted in the last window (at most
//! `per_window` send times, including urgent edits booked for later): an edit is granted when
//! fewer than `per_window` fall in the window that ends when it is sent, which is exactly how
//! the simulated Slack counts them, so linkbot can use the whole allowance (50 a minute, steady)
//! and never exceed it. Progress edits also pass a token bucket (a burst of a fifth of the
//! allowance, then the rest spread over the window), so they are spread out rather than spent
//! in one burst that would leave a verdict waiting for the whole window; and they leave a
//! reserve of free slots for urgent edits. The budget is per process: replicas of one app share Slack's allowance (see README).
//!
//! Pure arithmetic over [`Instant`]s handed in; the one async function only sleeps. It must not
//! know what an edit shows.

use std::collections::VecDeque;
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

/// The edits granted in the last window, oldest first (send times; an urgent edit that waits
/// is booked at the time it may go).
#[derive(Debug)]
struct Log {
    sent: VecDeque<Instant>,
    /// Progress tokens (the bucket that spreads progress edits out).
    tokens: f64,
    /// When `tokens` was last refilled.
    refilled: Instant,
    /// Urgent edits granted a slot they must still wait for.
    urgent_waiting: u32,
}

/// The sliding-window budget for `chat.update`. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct EditBudget {
    rate: EditRate,
    /// Free slots progress edits must leave for urgent ones.
    reserve: usize,
    /// The progress bucket's size and refill (tokens per second).
    burst: f64,
    refill: f64,
    log: Mutex<Log>,
}

impl EditBudget {
    /// A budget for `rate`, with nothing sent yet.
    pub fn new(rate: EditRate) -> EditBudget {
        let rate = EditRate {
            per_window: rate.per_window.max(1),
            window: rate.window.max(Duration::from_millis(1)),
        };
        // A tenth of the allowance (5 of Tier 3's 50) stays for urgent edits: a verdict after
        // a flood of progress edits finds a slot at once.
        let reserve = (rate.per_window / 10) as usize;
        let per_window = f64::from(rate.per_window);
        let burst = (per_window / 5.0).floor().max(1.0);
        let refill = (per_window - burst).max(1.0) / rate.window.as_secs_f64();
        EditBudget {
            rate,
            reserve,
            burst,
            refill,
            log: Mutex::new(Log {
                sent: VecDeque::with_capacity(rate.per_window as usize),
                tokens: burst,
                refilled: Instant::now(),
                urgent_waiting: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets edits that left the window ending at `now` (keeping at most one window's worth).
    fn expire(&self, log: &mut Log, now: Instant) {
        while let Some(first) = log.sent.front() {
            if *first + self.rate.window <= now || log.sent.len() > self.rate.per_window as usize {
                log.sent.pop_front();
            } else {
                break;
            }
        }
    }

    /// A progress edit at `now`: `true` (a slot taken) when the progress bucket has a token, a
    /// slot is free above the reserve and no urgent edit is waiting; `false` means defer it.
    pub fn try_progress(&self, now: Instant) -> bool {
        let mut log = self.lock();
        self.expire(&mut log, now);
        let elapsed = now.saturating_duration_since(log.refilled).as_secs_f64();
        log.tokens = (log.tokens + elapsed * self.refill).min(self.burst);
        log.refilled = now;
        if log.urgent_waiting == 0
            && log.tokens >= 1.0
            && log.sent.back().is_none_or(|last| *last <= now)
            && log.sent.len() + 1 + self.reserve <= self.rate.per_window as usize
        {
            log.tokens -= 1.0;
            log.sent.push_back(now);
            true
        } else {
            false
        }
    }

    /// An urgent edit at `now`: takes a slot (ahead of every progress edit) and returns how
    /// long to wait before sending, zero when one was free. Call [`EditBudget::urgent_sent`]
    /// once the wait is over.
    pub fn reserve_urgent(&self, now: Instant) -> Duration {
        let mut log = self.lock();
        self.expire(&mut log, now);
        let per_window = self.rate.per_window as usize;
        // After the last edit booked (urgent edits keep their order), and once the window
        // ending then holds fewer than `per_window`: when the oldest of the last `per_window`
        // has left it. With fewer than that in the log, every window holds fewer.
        let mut at = log.sent.back().map_or(now, |last| (*last).max(now));
        if log.sent.len() >= per_window {
            at = at.max(log.sent[log.sent.len() - per_window] + self.rate.window);
        }
        log.sent.push_back(at);
        if at > now {
            log.urgent_waiting += 1;
        }
        at - now
    }

    /// An urgent edit that waited ([`EditBudget::reserve_urgent`] returned more than zero) is
    /// being sent.
    pub fn urgent_sent(&self) {
        let mut log = self.lock();
        log.urgent_waiting = log.urgent_waiting.saturating_sub(1);
    }

    /// An urgent edit booked for `at` will not be sent (its caller gave up while it waited):
    /// its slot is given back, so an abandoned wait never delays the edits after it.
    pub fn urgent_cancelled(&self, at: Instant) {
        let mut log = self.lock();
        log.urgent_waiting = log.urgent_waiting.saturating_sub(1);
        if let Some(i) = log.sent.iter().rposition(|t| *t == at) {
            log.sent.remove(i);
        }
    }

    /// Waits for the right to send an edit of `kind`: the time it was booked for, `None` for a
    /// progress edit to defer. An urgent edit waits for its turn however long the edits booked
    /// before it take (its turn is known when it is booked: at most a window per `per_window`
    /// edits ahead). Once the call is answered, say so with [`EditBudget::answered`].
    pub async fn admit(&self, kind: EditKind) -> Option<Instant> {
        match kind {
            EditKind::Progress => {
                let now = Instant::now();
                self.try_progress(now).then_some(now)
            }
            EditKind::Urgent => {
                let now = Instant::now();
                let wait = self.reserve_urgent(now);
                if !wait.is_zero() {
                    let mut guard = WaitGuard {
                        budget: self,
                        at: now + wait,
                        sent: false,
                    };
                    tokio::time::sleep(wait).await;
                    guard.sent = true;
                }
                Some(now + wait)
            }
        }
    }

    /// The edit booked for `at` was answered at `now` (or failed then): it is counted from
    /// then. Slack counts an edit when it arrives, which is after it was booked (a connection
    /// to wait for, the client's own pacing), and before it is answered: counting from the
    /// answer, the next window never holds more than Slack's.
    pub fn answered(&self, at: Instant, now: Instant) {
        let mut log = self.lock();
        let Some(mut i) = log.sent.iter().rposition(|t| *t == at) else {
            return;
        };
        if now <= at {
            return;
        }
        log.sent[i] = now;
        // Keep the log in order.
        while i + 1 < log.sent.len() && log.sent[i + 1] < log.sent[i] {
            log.sent.swap(i, i + 1);
            i += 1;
        }
    }
}

/// Marks a waiting urgent edit as sent, or gives its slot back when the wait is dropped.
struct WaitGuard<'a> {
    budget: &'a EditBudget,
    at: Instant,
    sent: bool,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        if self.sent {
            self.budget.urgent_sent();
        } else {
            self.budget.urgent_cancelled(self.at);
        }
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
    fn tier_3_spreads_progress_and_lets_urgent_edits_use_the_whole_allowance() {
        let budget = EditBudget::new(EditRate::TIER_3);
        let t0 = Instant::now();
        // Progress: a burst of 10, then the bucket is empty.
        let progress = (0..20).filter(|_| budget.try_progress(t0)).count();
        assert_eq!(progress, 10);
        // Urgent edits take the other 40 slots of the minute at once.
        for _ in 0..40 {
            assert_eq!(budget.reserve_urgent(t0), Duration::ZERO);
        }
        // The 51st edit of the window goes when the first leaves it.
        assert_eq!(budget.reserve_urgent(t0), Duration::from_secs(60));
        // While it waits, no progress edit goes, even once the bucket has a token again.
        assert!(!budget.try_progress(t0 + Duration::from_secs(3)));
        budget.urgent_sent();
    }

    #[test]
    fn a_flood_of_verdicts_gets_fifty_a_minute() {
        let budget = EditBudget::new(EditRate::TIER_3);
        let t0 = Instant::now();
        let waits: Vec<Duration> = (0..1000).map(|_| budget.reserve_urgent(t0)).collect();
        let within_ten_minutes = waits
            .iter()
            .filter(|w| **w < Duration::from_secs(600))
            .count();
        assert_eq!(within_ten_minutes, 500);
        assert!(
            waits.windows(2).all(|w| w[0] <= w[1]),
            "urgent edits keep their order"
        );
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
    fn an_abandoned_urgent_wait_gives_its_slot_back() {
        let budget = EditBudget::new(EditRate {
            per_window: 2,
            window: Duration::from_secs(10),
        });
        let t0 = Instant::now();
        assert_eq!(budget.reserve_urgent(t0), Duration::ZERO);
        assert_eq!(budget.reserve_urgent(t0), Duration::ZERO);
        // The third is booked for when the first leaves the window; its caller gives up.
        let wait = budget.reserve_urgent(t0);
        assert_eq!(wait, Duration::from_secs(10));
        budget.urgent_cancelled(t0 + wait);
        // The next one takes that turn, not the one after it.
        assert_eq!(budget.reserve_urgent(t0), Duration::from_secs(10));
        budget.urgent_sent();
        // And progress is not held back by the abandoned wait once the window has room.
        assert!(budget.try_progress(t0 + Duration::from_secs(20)));
    }

    #[test]
    fn an_edit_is_counted_from_its_answer_so_a_slow_call_delays_the_next_window() {
        let budget = EditBudget::new(EditRate {
            per_window: 2,
            window: Duration::from_secs(10),
        });
        let t0 = Instant::now();
        assert_eq!(budget.reserve_urgent(t0), Duration::ZERO);
        assert_eq!(budget.reserve_urgent(t0), Duration::ZERO);
        // The first call took 3 s to be answered: Slack may have counted it as late as that.
        budget.answered(t0, t0 + Duration::from_secs(3));
        // The next goes when the earlier of the two leaves the window: the second, at 10 s;
        // the one after, when the slow one does, at 13 s.
        assert_eq!(budget.reserve_urgent(t0), Duration::from_secs(10));
        assert_eq!(budget.reserve_urgent(t0), Duration::from_secs(13));
    }

    #[test]
    fn urgent_edits_beyond_the_rate_wait_in_order() {
        let budget = EditBudget::new(EditRate {
            per_window: 10,
            window: Duration::from_secs(8),
        });
        let t0 = Instant::now();
        let mut waits = vec![budget.reserve_urgent(t0)];
        // Two more at 1 s and 2 s: the window then holds 3.
        waits.push(budget.reserve_urgent(t0 + ms(1000)) + ms(1000));
        waits.push(budget.reserve_urgent(t0 + ms(2000)) + ms(2000));
        waits.extend((0..9).map(|_| budget.reserve_urgent(t0 + ms(2000)) + ms(2000)));
        // Seven more fit at 2 s; then each goes when one of the first three leaves the window.
        let mut expected = vec![Duration::ZERO, ms(1000)];
        expected.extend(std::iter::repeat_n(ms(2000), 8));
        expected.extend([ms(8000), ms(9000)]);
        assert_eq!(waits, expected);
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
