//! Face verification and identification metrics: ROC, AUC, equal error rate, TAR at a
//! fixed FAR, and threshold choice. A pair is accepted as "same person" when its score is
//! at least the threshold; higher scores mean more similar.

use serde::{Deserialize, Serialize};

/// One operating point: accept when `score >= threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    /// The threshold.
    pub threshold: f64,
    /// Fraction of impostor pairs accepted.
    pub far: f64,
    /// Fraction of genuine pairs accepted.
    pub tar: f64,
}

/// The verification summary of a set of genuine and impostor scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Number of genuine (same person) pairs.
    pub genuine_pairs: usize,
    /// Number of impostor (different people) pairs.
    pub impostor_pairs: usize,
    /// Area under the ROC curve (ties count one half).
    pub auc: f64,
    /// Equal error rate (FAR = FRR, interpolated on the ROC curve).
    pub eer: f64,
    /// A threshold at the equal error rate.
    pub eer_threshold: f64,
    /// True accept rate at FAR <= 1%.
    pub tar_at_far_1e2: f64,
    /// True accept rate at FAR <= 0.1%.
    pub tar_at_far_1e3: f64,
}

/// The ROC curve, from the strictest threshold (nothing accepted) to the loosest
/// (everything accepted); one point per distinct score.
pub fn roc(genuine: &[f64], impostor: &[f64]) -> Vec<RocPoint> {
    let mut all: Vec<(f64, bool)> = genuine
        .iter()
        .map(|&s| (s, true))
        .chain(impostor.iter().map(|&s| (s, false)))
        .filter(|(s, _)| !s.is_nan())
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (ng, ni) = (genuine.len().max(1) as f64, impostor.len().max(1) as f64);
    let mut points = vec![RocPoint {
        threshold: f64::INFINITY,
        far: 0.0,
        tar: 0.0,
    }];
    let (mut g, mut im) = (0usize, 0usize);
    let mut i = 0;
    while i < all.len() {
        let t = all[i].0;
        while i < all.len() && all[i].0 == t {
            if all[i].1 {
                g += 1;
            } else {
                im += 1;
            }
            i += 1;
        }
        points.push(RocPoint {
            threshold: t,
            far: im as f64 / ni,
            tar: g as f64 / ng,
        });
    }
    points
}

/// Area under the ROC curve: the probability that a genuine pair outscores an impostor
/// pair, ties counting one half.
pub fn auc(points: &[RocPoint]) -> f64 {
    points
        .windows(2)
        .map(|w| (w[1].far - w[0].far) * (w[1].tar + w[0].tar) / 2.0)
        .sum()
}

/// The equal error rate and a threshold there, interpolating between the two ROC points
/// where FAR - FRR changes sign. Returns `(eer, threshold)`.
pub fn eer(points: &[RocPoint]) -> (f64, f64) {
    let d = |p: &RocPoint| p.far - (1.0 - p.tar);
    for i in 1..points.len() {
        let (a, b) = (&points[i - 1], &points[i]);
        if d(a) < 0.0 && d(b) >= 0.0 {
            let alpha = -d(a) / (d(b) - d(a));
            let eer = a.far + alpha * (b.far - a.far);
            // Thresholds in (next score, b's score] all give point b; when b itself is the
            // equal-error point, take the middle of that range, else the middle of a and b.
            let threshold = if d(b) == 0.0 {
                match points.get(i + 1) {
                    Some(n) => (b.threshold + n.threshold) / 2.0,
                    None => b.threshold,
                }
            } else if a.threshold.is_finite() {
                (a.threshold + b.threshold) / 2.0
            } else {
                b.threshold
            };
            return (eer, threshold);
        }
    }
    (0.0, points.last().map_or(0.0, |p| p.threshold))
}

/// The highest true accept rate among thresholds whose FAR is at most `far`.
pub fn tar_at_far(points: &[RocPoint], far: f64) -> f64 {
    points
        .iter()
        .filter(|p| p.far <= far + 1e-12)
        .map(|p| p.tar)
        .fold(0.0, f64::max)
}

/// The loosest threshold whose FAR is at most `far` (the highest true accept rate within
/// that false accept budget), half-way to the next score, which would exceed it.
pub fn threshold_at_far(points: &[RocPoint], far: f64) -> f64 {
    let within = points
        .iter()
        .rposition(|p| p.far <= far + 1e-12)
        .unwrap_or(0);
    let p = points[within].threshold;
    match points.get(within + 1) {
        Some(next) if p.is_finite() => (p + next.threshold) / 2.0,
        Some(next) => next.threshold + 1e-9,
        None => p,
    }
}

/// The full verification summary.
pub fn verification(genuine: &[f64], impostor: &[f64]) -> Verification {
    let points = roc(genuine, impostor);
    let (eer, eer_threshold) = eer(&points);
    Verification {
        genuine_pairs: genuine.len(),
        impostor_pairs: impostor.len(),
        auc: auc(&points),
        eer,
        eer_threshold,
        tar_at_far_1e2: tar_at_far(&points, 1e-2),
        tar_at_far_1e3: tar_at_far(&points, 1e-3),
    }
}

/// Scores of all unordered pairs `(i, j)`, `i < j`, split by whether the labels match.
pub fn pair_scores(labels: &[&str], score: impl Fn(usize, usize) -> f64) -> (Vec<f64>, Vec<f64>) {
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for i in 0..labels.len() {
        for j in i + 1..labels.len() {
            let s = score(i, j);
            if labels[i] == labels[j] {
                genuine.push(s);
            } else {
                impostor.push(s);
            }
        }
    }
    (genuine, impostor)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENUINE: [f64; 3] = [0.9, 0.8, 0.4];
    const IMPOSTOR: [f64; 4] = [0.7, 0.3, 0.2, 0.1];

    #[test]
    fn auc_counts_the_genuine_pairs_that_outscore_impostors() {
        // 0.9 and 0.8 beat all four impostors, 0.4 beats three: 11 of 12.
        let v = verification(&GENUINE, &IMPOSTOR);
        assert!((v.auc - 11.0 / 12.0).abs() < 1e-12, "{}", v.auc);
        assert_eq!((v.genuine_pairs, v.impostor_pairs), (3, 4));
        // Ties count one half.
        assert!((verification(&[0.5], &[0.5]).auc - 0.5).abs() < 1e-12);
        assert!((verification(&[1.0, 0.5], &[0.5, 0.0]).auc - 0.875).abs() < 1e-12);
    }

    #[test]
    fn eer_interpolates_where_false_accepts_meet_false_rejects() {
        // At t=0.7: FAR 1/4, FRR 1/3; at t=0.4: FAR 1/4, FRR 0 -> crossing at 1/4.
        let (e, t) = eer(&roc(&GENUINE, &IMPOSTOR));
        assert!((e - 0.25).abs() < 1e-12, "{e}");
        assert!((t - 0.55).abs() < 1e-12, "{t}");
        // Perfect separation: EER 0 with a threshold between the classes.
        let (e, t) = eer(&roc(&[0.9, 0.8], &[0.2, 0.1]));
        assert_eq!(e, 0.0);
        assert!(t > 0.2 && t <= 0.8, "{t}");
    }

    #[test]
    fn tar_at_far_takes_the_best_threshold_within_the_false_accept_budget() {
        let p = roc(&GENUINE, &IMPOSTOR);
        assert!((tar_at_far(&p, 0.0) - 2.0 / 3.0).abs() < 1e-12);
        assert!((tar_at_far(&p, 0.25) - 1.0).abs() < 1e-12);
        assert_eq!(tar_at_far(&roc(&[0.1], &[0.9]), 0.5), 0.0);
    }

    #[test]
    fn pairs_are_split_by_label() {
        let labels = ["a", "b", "a"];
        let (g, i) = pair_scores(&labels, |i, j| (i * 10 + j) as f64);
        assert_eq!(g, vec![2.0]);
        assert_eq!(i, vec![1.0, 12.0]);
    }

    #[test]
    fn threshold_at_far_stays_within_the_budget() {
        // Genuine 0.9, 0.8, 0.4; impostors 0.7, 0.3, 0.2, 0.1 (4 impostors: FAR steps of 25%).
        let points = roc(&[0.9, 0.8, 0.4], &[0.7, 0.3, 0.2, 0.1]);
        // FAR 0: accept the two genuine scores above 0.7 only.
        let t = threshold_at_far(&points, 0.0);
        assert!((t - 0.75).abs() < 1e-12, "{t}");
        // FAR 25%: one impostor (0.7) may pass; 0.4 is genuine, 0.3 the next impostor.
        let t = threshold_at_far(&points, 0.25);
        assert!((t - 0.35).abs() < 1e-12, "{t}");
        // Everything allowed: the loosest point.
        assert_eq!(threshold_at_far(&points, 1.0), 0.1);
    }
}
