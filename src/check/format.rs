//! Short human text for durations and build progress, shared by the check's stage lines and
//! the Slack renderer. Pure formatting; no I/O and no Slack markup.

use std::time::Duration;

pub use crate::format::human;

/// A text progress bar of `elapsed` against Jenkins' estimate: `▓▓▓▓░░░░░░ 2m10s of ~5m00s`.
pub fn progress_bar(elapsed: Duration, estimated: Option<Duration>) -> String {
    match estimated.filter(|e| !e.is_zero()) {
        None => format!("{} elapsed (no estimate)", human(elapsed)),
        Some(est) => {
            let ratio = (elapsed.as_secs_f64() / est.as_secs_f64()).clamp(0.0, 1.0);
            let filled = (ratio * 10.0).round() as usize;
            let over = if elapsed > est {
                " — running over the estimate"
            } else {
                ""
            };
            format!(
                "{}{} {} of ~{}{over}",
                "▓".repeat(filled),
                "░".repeat(10 - filled),
                human(elapsed),
                human(est)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_bars_fill_with_time() {
        assert_eq!(
            progress_bar(Duration::from_secs(0), Some(Duration::from_secs(300))),
            "░░░░░░░░░░ 0.0s of ~5m00s"
        );
        assert!(
            progress_bar(Duration::from_secs(150), Some(Duration::from_secs(300)))
                .starts_with("▓▓▓▓▓░░░░░")
        );
        assert!(
            progress_bar(Duration::from_secs(400), Some(Duration::from_secs(300)))
                .contains("over the estimate")
        );
        assert!(progress_bar(Duration::from_secs(5), None).contains("no estimate"));
    }
}
