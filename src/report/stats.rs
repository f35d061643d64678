//! The two small computations the report draws on: nearest-rank percentiles of durations, and
//! a one-line Unicode bar chart of counts (`▁▂▃▄▅▆▇█`).
//!
//! Pure functions of their inputs; no I/O, no time, no markup.

use std::time::Duration;

/// The bars, lowest first: `▁` is a zero, `█` the highest count.
pub const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The `p`-th percentile (1–100) of `values` by the nearest-rank method: the smallest value
/// such that at least `p`% of the values are at most it (p50 of 1, 2, 3, 4 is 2; p90 of ten
/// values is the ninth). `None` when there are no values.
pub fn percentile(values: &[Duration], p: u8) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let p = usize::from(p.clamp(1, 100));
    // ceil(p/100 · n), at least 1: the rank of the value, 1-based.
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// One bar per count: `▁` for zero; otherwise scaled to the highest count (which gets `█`),
/// never lower than `▂`, so a day with one incident never looks like a day with none.
pub fn bar_chart(counts: &[usize]) -> String {
    let max = counts.iter().copied().max().unwrap_or(0);
    counts
        .iter()
        .map(|&c| {
            if c == 0 || max == 0 {
                BARS[0]
            } else {
                // 1..=7, rounded to the nearest level, the highest count always at 7.
                let level = (c * 7 + max / 2) / max;
                BARS[level.clamp(1, 7)]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let cases: [(&[u64], u8, Option<u64>); 9] = [
            (&[], 50, None),
            (&[7], 50, Some(7)),
            (&[7], 90, Some(7)),
            (&[4, 1, 3, 2], 50, Some(2)),
            (&[4, 1, 3, 2], 90, Some(4)),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50, Some(5)),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90, Some(9)),
            (&[10, 20, 30], 50, Some(20)),
            (&[10, 20, 30], 100, Some(30)),
        ];
        for (values, p, want) in cases {
            assert_eq!(
                percentile(&secs(values), p),
                want.map(Duration::from_secs),
                "p{p} of {values:?}"
            );
        }
    }

    #[test]
    fn bars_are_scaled_to_the_highest_count() {
        let cases: [(&[usize], &str); 7] = [
            (&[], ""),
            (&[0, 0, 0], "▁▁▁"),
            (&[1], "█"),
            (&[0, 1, 2, 4, 8], "▁▂▃▅█"),
            (&[3, 0, 7, 1, 1, 2, 0], "▄▁█▂▂▃▁"),
            (&[1, 100], "▂█"),
            (&[5, 5], "██"),
        ];
        for (counts, want) in cases {
            assert_eq!(bar_chart(counts), want, "{counts:?}");
        }
    }

    proptest! {
        #[test]
        fn a_percentile_is_one_of_the_values_and_grows_with_p(
            values in proptest::collection::vec(0u64..1_000_000, 1..200),
            p in 1u8..=100, q in 1u8..=100,
        ) {
            let d = secs(&values);
            let at_p = percentile(&d, p).unwrap();
            prop_assert!(d.contains(&at_p));
            let (lo, hi) = if p <= q { (p, q) } else { (q, p) };
            prop_assert!(percentile(&d, lo).unwrap() <= percentile(&d, hi).unwrap());
            // At least p% of the values are at most the p-th percentile.
            let at_most = d.iter().filter(|v| **v <= at_p).count();
            prop_assert!(at_most * 100 >= usize::from(p) * d.len());
        }

        #[test]
        fn one_bar_per_count_ordered_like_the_counts(
            counts in proptest::collection::vec(0usize..1000, 0..100),
        ) {
            let chart: Vec<char> = bar_chart(&counts).chars().collect();
            prop_assert_eq!(chart.len(), counts.len());
            let level = |c: char| BARS.iter().position(|b| *b == c).unwrap();
            for (i, &c) in counts.iter().enumerate() {
                prop_assert_eq!(c == 0, chart[i] == BARS[0]);
                for (j, &d) in counts.iter().enumerate() {
                    if c <= d {
                        prop_assert!(level(chart[i]) <= level(chart[j]));
                    }
                }
            }
            if let Some(max) = counts.iter().max().filter(|m| **m > 0) {
                let i = counts.iter().position(|c| c == max).unwrap();
                prop_assert_eq!(chart[i], '█');
            }
        }
    }
}
