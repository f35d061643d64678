//! When to poll Jenkins next: pure arithmetic on elapsed and expected time, no I/O, no clock.
//!
//! A build is polled sparsely while it is far from its expected end (about a third of the
//! remaining time), at the minimum interval in a short window around the expected end, and with a
//! gentle back-off when it overruns a lot. A queue item is polled at the minimum interval,
//! backing off to about five times it. This module must not sleep, read a clock or talk HTTP:
//! the caller measures time and waits.

use std::time::Duration;

/// How often Jenkins may be polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPolicy {
    /// The shortest wait between two polls; polling is never denser than this.
    pub min: Duration,
    /// The longest wait between two polls.
    pub max: Duration,
}

impl Default for PollPolicy {
    /// 1 s to 60 s.
    fn default() -> Self {
        PollPolicy {
            min: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl PollPolicy {
    /// The policy for a configured minimum (`[check] poll_interval_min_ms`): at most 60 s
    /// between polls, or `min` when it is longer.
    pub fn with_min(min: Duration) -> Self {
        PollPolicy {
            min,
            max: Duration::from_secs(60).max(min),
        }
    }

    /// `max`, or `min` when `max` was set below it.
    fn ceiling(&self) -> Duration {
        self.max.max(self.min)
    }

    /// How long before the expected end polling becomes dense: 10 × `min` (10 s when `min` is 1 s).
    fn dense_before(&self) -> Duration {
        self.min.saturating_mul(10)
    }

    /// How long past the expected end polling stays dense: 20 × `min` (20 s when `min` is 1 s).
    fn dense_after(&self) -> Duration {
        self.min.saturating_mul(20)
    }

    /// The longest wait once a build has overrun its estimate: 15 × `min` (15 s), at most `max`.
    fn overrun_cap(&self) -> Duration {
        self.min.saturating_mul(15).min(self.ceiling())
    }

    /// The longest wait between two queue polls: 5 × `min` (5 s), at most `max`.
    fn queue_cap(&self) -> Duration {
        self.min.saturating_mul(5).min(self.ceiling())
    }

    /// How long the follower keeps polling through a passing fault (Jenkins or its proxy
    /// answering 5xx, timeouts) before the checks it concerns end with `job_failed`: 30 × `min`
    /// (30 s when `min` is 1 s), enough for a Jenkins restart behind its proxy, short of what
    /// makes an engineer wonder whether the bot is stuck.
    pub fn outage_budget(&self) -> Duration {
        self.min.saturating_mul(30)
    }

    /// The wait before the next poll after `failed` (1-based) polls failed in a row: `min`
    /// doubled each time (1 s, 2 s, 4 s when `min` is 1 s), at most 5 × `min` and `max`.
    pub fn outage_backoff(&self, failed: u32) -> Duration {
        self.min
            .saturating_mul(1u32 << failed.saturating_sub(1).min(10))
            .min(self.min.saturating_mul(5))
            .min(self.ceiling())
    }

    /// The wait before retry `attempt` (0-based) of a failed idempotent request:
    /// `min`/4 doubled each time (250 ms, 500 ms, 1 s when `min` is 1 s), at least 10 ms.
    pub fn retry_backoff(&self, attempt: u32) -> Duration {
        let base = (self.min / 4).max(Duration::from_millis(10));
        base.saturating_mul(1u32 << attempt.min(10))
            .min(self.ceiling())
    }
}

fn clamp(d: Duration, lo: Duration, hi: Duration) -> Duration {
    d.max(lo).min(hi.max(lo))
}

/// How long to wait before the next poll of a running build.
///
/// `elapsed` is how long the build has been running; `estimated` is Jenkins'
/// `estimatedDuration` (`None` when Jenkins has no history). Before the estimate the wait is a
/// third of the remaining time, clamped to `[min, max]`; from 10 × `min` before the estimate to
/// 20 × `min` after it, `min`; beyond that half the extra overrun (×1.5 per poll), up to 15 × `min`.
/// With no estimate it backs off from `min` to `max` (a quarter of the elapsed time).
pub fn next_poll(elapsed: Duration, estimated: Option<Duration>, policy: &PollPolicy) -> Duration {
    let (min, max) = (policy.min, policy.ceiling());
    let Some(estimated) = estimated.filter(|e| !e.is_zero()) else {
        return clamp(elapsed / 4, min, max);
    };
    if elapsed < estimated {
        let remaining = estimated - elapsed;
        if remaining > policy.dense_before() {
            return clamp(remaining / 3, min, max);
        }
        return min;
    }
    let overrun = elapsed - estimated;
    if overrun <= policy.dense_after() {
        return min;
    }
    clamp(
        (overrun - policy.dense_after()) / 2,
        min,
        policy.overrun_cap(),
    )
}

/// How long to wait before the next poll of a queue item that has been waiting `waited`:
/// `min`, growing by half the waited time, up to 5 × `min`.
pub fn next_queue_poll(waited: Duration, policy: &PollPolicy) -> Duration {
    clamp(waited / 2, policy.min, policy.queue_cap())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks a build of `length` through `next_poll`, polling at 0 and after every wait; returns
    /// how many polls it took and how late the end was seen.
    fn simulate(
        length: Duration,
        estimated: Option<Duration>,
        policy: &PollPolicy,
    ) -> (u32, Duration) {
        let mut t = Duration::ZERO;
        let mut polls = 0;
        loop {
            polls += 1;
            if t >= length {
                return (polls, t - length);
            }
            t += next_poll(t, estimated, policy);
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn a_ten_minute_build_on_estimate_costs_at_most_40_polls_and_its_end_is_seen_within_2_s() {
        let policy = PollPolicy::default();
        let (polls, late) = simulate(S(600), Some(S(600)), &policy);
        assert!(polls <= 40, "{polls} polls");
        assert!(late <= S(2), "end seen {late:?} late");
        // The schedule is deterministic: 24 polls (10 sparse, 14 dense), the end seen < 1 s late.
        assert_eq!(polls, 24);
        assert!(late < S(1), "{late:?}");
    }

    #[test]
    fn a_build_that_ends_a_little_early_or_late_is_seen_quickly() {
        let policy = PollPolicy::default();
        for length in [595, 598, 605, 615] {
            let (polls, late) = simulate(S(length), Some(S(600)), &policy);
            assert!(polls <= 45, "{length}s: {polls} polls");
            assert!(late <= S(2), "{length}s: seen {late:?} late");
        }
    }

    #[test]
    fn a_build_that_overruns_a_lot_backs_off_gently_and_stays_cheap() {
        let policy = PollPolicy::default();
        let (polls, late) = simulate(S(1800), Some(S(600)), &policy);
        assert!(polls <= 140, "{polls} polls");
        assert!(late <= S(15), "seen {late:?} late");
        assert_eq!(next_poll(S(3000), Some(S(600)), &policy), S(15));
    }

    #[test]
    fn without_an_estimate_polling_backs_off_from_min_to_max() {
        let policy = PollPolicy::default();
        assert_eq!(next_poll(Duration::ZERO, None, &policy), S(1));
        assert_eq!(next_poll(S(40), None, &policy), S(10));
        assert_eq!(next_poll(S(3600), None, &policy), S(60));
        let (polls, _) = simulate(S(600), None, &policy);
        assert!(polls <= 40, "{polls} polls");
        // A zero estimate (Jenkins' "no history") is no estimate.
        assert_eq!(next_poll(S(40), Some(Duration::ZERO), &policy), S(10));
    }

    #[test]
    fn waits_stay_within_the_policy() {
        let policy = PollPolicy {
            min: Duration::from_millis(50),
            max: S(2),
        };
        for elapsed_ms in (0..100_000).step_by(137) {
            for est in [None, Some(S(1)), Some(S(30)), Some(S(600))] {
                let w = next_poll(Duration::from_millis(elapsed_ms), est, &policy);
                assert!(
                    w >= policy.min && w <= policy.max,
                    "{elapsed_ms} {est:?} {w:?}"
                );
            }
        }
        // A max below min is read as min.
        let odd = PollPolicy {
            min: S(5),
            max: S(1),
        };
        assert_eq!(next_poll(S(100), Some(S(1000)), &odd), S(5));
    }

    #[test]
    fn queue_polls_start_at_min_and_back_off_to_five_times_it() {
        let policy = PollPolicy::default();
        assert_eq!(next_queue_poll(Duration::ZERO, &policy), S(1));
        assert_eq!(next_queue_poll(S(4), &policy), S(2));
        assert_eq!(next_queue_poll(S(600), &policy), S(5));
    }

    #[test]
    fn outage_backoff_doubles_from_min_up_to_five_min() {
        let policy = PollPolicy::default();
        let waits: Vec<u64> = (1..=6)
            .map(|n| policy.outage_backoff(n).as_millis() as u64)
            .collect();
        assert_eq!(waits, vec![1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(policy.outage_budget(), S(30));
        let tight = PollPolicy {
            min: S(1),
            max: S(3),
        };
        assert_eq!(tight.outage_backoff(4), S(3), "never past max");
        assert_eq!(tight.outage_backoff(u32::MAX), S(3), "no overflow");
    }

    #[test]
    fn retry_backoff_doubles_from_a_quarter_of_min() {
        let policy = PollPolicy::default();
        assert_eq!(policy.retry_backoff(0), Duration::from_millis(250));
        assert_eq!(policy.retry_backoff(2), S(1));
    }
}
