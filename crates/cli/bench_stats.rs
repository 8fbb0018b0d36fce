//! The statistics behind every published speed comparison: per-round ratios of two sides
//! timed in alternation, their median, and a bootstrap interval for that median.
//!
//! A shared machine drifts (other tenants, frequency, caches), so two sides timed one after
//! the other in long blocks compare the machine's moods as much as the code. Timing them in
//! short alternating bursts (A B, B A, A B, ...) exposes both sides to the same drift, and
//! the ratio of each round's two bursts cancels most of it. The spread of those ratios then
//! says how sure the comparison is.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Resamples of the bootstrap.
const RESAMPLES: usize = 2000;

/// The median of `xs` (the mean of the middle two for an even count); NaN when empty.
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The 95% interval of the median of all values in `groups` by a two-stage (cluster)
/// bootstrap: each of 2,000 resamples draws as many groups as there are, with replacement,
/// then each drawn group's values with replacement, and takes the median of the pooled
/// draw; the interval is the 2.5th and 97.5th percentiles of those medians (a fixed seed,
/// so a run's table is reproducible from its timings). A group is one session of freshly
/// started worker processes: rounds within a session share the processes' state (memory
/// layout, library choices), which can differ from one process to the next by more than
/// rounds differ, so only resampling whole sessions gives an interval that the next run's
/// sessions fall in. With one group this is the plain bootstrap of the median.
pub fn clustered_median_interval(groups: &[Vec<f64>]) -> (f64, f64) {
    let groups: Vec<&Vec<f64>> = groups.iter().filter(|g| !g.is_empty()).collect();
    if groups.iter().map(|g| g.len()).sum::<usize>() < 2 {
        let all: Vec<f64> = groups.iter().flat_map(|g| g.iter().copied()).collect();
        let m = median(&all);
        return (m, m);
    }
    let mut rng = StdRng::seed_from_u64(0x5eed_b007);
    let mut pooled = Vec::new();
    let mut medians: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            pooled.clear();
            for _ in 0..groups.len() {
                let g = groups[rng.random_range(0..groups.len())];
                for _ in 0..g.len() {
                    pooled.push(g[rng.random_range(0..g.len())]);
                }
            }
            median(&pooled)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    let at = |p: f64| medians[((RESAMPLES - 1) as f64 * p).round() as usize];
    (at(0.025), at(0.975))
}

/// How profundo compares with the other side, given the interval of the time ratio
/// (profundo / other): only an interval that excludes 1.0 is a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The whole interval is below 1.0: profundo is faster.
    Ahead,
    /// The whole interval is above 1.0: profundo is slower.
    Behind,
    /// The interval contains 1.0: no difference this run can show.
    Tie,
}

impl Verdict {
    /// The verdict for a ratio interval.
    pub fn of(lo: f64, hi: f64) -> Self {
        if hi < 1.0 {
            Self::Ahead
        } else if lo > 1.0 {
            Self::Behind
        } else {
            Self::Tie
        }
    }

    /// The word in the table.
    pub fn word(self) -> &'static str {
        match self {
            Self::Ahead => "ahead",
            Self::Behind => "behind",
            Self::Tie => "tie",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One session of rounds: the plain bootstrap of the median.
    fn median_interval(xs: &[f64]) -> (f64, f64) {
        clustered_median_interval(&[xs.to_vec()])
    }

    #[test]
    fn medians_of_odd_even_and_empty_samples() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn the_interval_brackets_the_median_and_narrows_with_more_rounds() {
        // Ratios around 1.2 with a spread of +-0.1, as a noisy machine gives them.
        let noisy = |n: usize| -> Vec<f64> {
            (0..n)
                .map(|i| 1.2 + 0.1 * ((i * 37 % 11) as f64 / 5.0 - 1.0))
                .collect()
        };
        let few = noisy(8);
        let many = noisy(64);
        let (lo, hi) = median_interval(&few);
        assert!(lo <= median(&few) && median(&few) <= hi, "{lo} {hi}");
        let (lo2, hi2) = median_interval(&many);
        assert!(hi2 - lo2 < hi - lo, "{lo2}..{hi2} vs {lo}..{hi}");
        assert!(lo2 > 1.0, "clearly slower: {lo2}");
        assert_eq!(Verdict::of(lo2, hi2), Verdict::Behind);
        // The same timings give the same interval.
        assert_eq!(median_interval(&few), (lo, hi));
    }

    #[test]
    fn sessions_that_disagree_widen_the_interval_beyond_their_rounds() {
        // Four sessions, each steady within itself (+-0.1%) but at its own level: the
        // rounds alone claim more certainty than the sessions support.
        let steady = |x: f64| vec![x, x * 1.001, x * 0.999, x, x * 1.0005, x * 0.9995];
        let groups = vec![steady(0.95), steady(1.0), steady(1.05), steady(1.1)];
        let pooled: Vec<f64> = groups.concat();
        let (lo, hi) = median_interval(&pooled);
        let (clo, chi) = clustered_median_interval(&groups);
        assert!(chi - clo > 1.5 * (hi - lo), "{clo}..{chi} vs {lo}..{hi}");
        assert!(clo <= lo && chi >= hi, "{clo}..{chi} vs {lo}..{hi}");
        // Sessions that agree give about the rounds' interval.
        let agree = vec![steady(0.8), steady(0.8), steady(0.8)];
        let (alo, ahi) = clustered_median_interval(&agree);
        assert!(ahi - alo < 0.01 && alo > 0.79, "{alo}..{ahi}");
        assert_eq!(
            clustered_median_interval(&[steady(0.7)]),
            median_interval(&steady(0.7))
        );
    }

    #[test]
    fn constant_ratios_give_a_point_and_one_round_no_spread() {
        assert_eq!(median_interval(&[0.8; 10]), (0.8, 0.8));
        assert_eq!(median_interval(&[1.3]), (1.3, 1.3));
        assert_eq!(Verdict::of(0.8, 0.8), Verdict::Ahead);
        assert_eq!(Verdict::of(0.95, 1.02), Verdict::Tie);
    }
}
