//! Classification metrics, each checked against hand-computed cases in the tests below.

use serde::{Deserialize, Serialize};

/// Fraction of predictions equal to the truth (0 for empty input).
pub fn accuracy(truth: &[usize], pred: &[usize]) -> f64 {
    assert_eq!(
        truth.len(),
        pred.len(),
        "truth and predictions differ in length"
    );
    if truth.is_empty() {
        return 0.0;
    }
    let hits = truth.iter().zip(pred).filter(|(t, p)| t == p).count();
    hits as f64 / truth.len() as f64
}

/// Fraction of rows whose true class is among the `k` highest scores.
///
/// `scores` holds one row of `n_classes` scores per example. Ties are broken towards the
/// lower class index, so the result never depends on sort stability.
pub fn top_k_accuracy(truth: &[usize], scores: &[Vec<f32>], k: usize) -> f64 {
    assert_eq!(
        truth.len(),
        scores.len(),
        "truth and scores differ in length"
    );
    if truth.is_empty() {
        return 0.0;
    }
    let hits = truth
        .iter()
        .zip(scores)
        .filter(|(t, row)| top_k_indices(row, k).contains(t))
        .count();
    hits as f64 / truth.len() as f64
}

/// Indices of the `k` largest values, best first (ties: lower index first).
pub fn top_k_indices(row: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// A confusion matrix: `counts[truth][pred]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// Class names, in index order.
    pub labels: Vec<String>,
    /// `counts[t][p]`: examples of true class `t` predicted as `p`.
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// Counts `(truth, pred)` pairs over `labels.len()` classes.
    pub fn new(labels: &[String], truth: &[usize], pred: &[usize]) -> Self {
        let n = labels.len();
        let mut counts = vec![vec![0u64; n]; n];
        for (&t, &p) in truth.iter().zip(pred) {
            counts[t][p] += 1;
        }
        Self {
            labels: labels.to_vec(),
            counts,
        }
    }

    /// Precision, recall, F1 and support per class.
    ///
    /// A class never predicted has precision 0; a class absent from the truth has recall 0
    /// (scikit-learn's `zero_division=0`).
    pub fn per_class(&self) -> Vec<ClassScores> {
        let n = self.labels.len();
        (0..n)
            .map(|c| {
                let tp = self.counts[c][c] as f64;
                let predicted: u64 = (0..n).map(|t| self.counts[t][c]).sum();
                let support: u64 = self.counts[c].iter().sum();
                let precision = ratio(tp, predicted as f64);
                let recall = ratio(tp, support as f64);
                let f1 = ratio(2.0 * precision * recall, precision + recall);
                ClassScores {
                    label: self.labels[c].clone(),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect()
    }

    /// Unweighted mean F1 over the classes that occur in the truth.
    pub fn macro_f1(&self) -> f64 {
        let scores: Vec<_> = self
            .per_class()
            .into_iter()
            .filter(|s| s.support > 0)
            .collect();
        if scores.is_empty() {
            return 0.0;
        }
        scores.iter().map(|s| s.f1).sum::<f64>() / scores.len() as f64
    }
}

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    /// Class name.
    pub label: String,
    /// TP / (TP + FP).
    pub precision: f64,
    /// TP / (TP + FN).
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Number of true examples of the class.
    pub support: u64,
}

fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 { 0.0 } else { num / den }
}

/// Mean and (population) standard deviation.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// The element-wise mean of several sets of rows of the same shape, summed in the order
/// given (e.g. the class probabilities of ensemble members, or of a clip and its test-time
/// views); empty when `parts` is.
pub fn mean_rows(parts: impl IntoIterator<Item = Vec<Vec<f32>>>) -> Vec<Vec<f32>> {
    let mut parts = parts.into_iter();
    let Some(mut sum) = parts.next() else {
        return Vec::new();
    };
    let mut n = 1usize;
    for part in parts {
        for (acc, row) in sum.iter_mut().zip(part) {
            acc.iter_mut().zip(row).for_each(|(a, b)| *a += b);
        }
        n += 1;
    }
    if n > 1 {
        sum.iter_mut().flatten().for_each(|v| *v /= n as f32);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_rows_averages_element_wise() {
        let a = vec![vec![1.0, 2.0], vec![3.0, 4.0]];
        let b = vec![vec![3.0, 0.0], vec![1.0, 8.0]];
        assert_eq!(
            mean_rows([a.clone(), b]),
            vec![vec![2.0, 1.0], vec![2.0, 6.0]]
        );
        assert_eq!(mean_rows([a.clone()]), a);
        assert!(mean_rows(Vec::<Vec<Vec<f32>>>::new()).is_empty());
    }

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn accuracy_counts_hits() {
        assert_eq!(accuracy(&[0, 1, 2, 2], &[0, 1, 1, 2]), 0.75);
        assert_eq!(accuracy(&[], &[]), 0.0);
    }

    #[test]
    fn top_k_uses_the_k_best_scores_with_stable_ties() {
        let scores = vec![
            vec![0.1, 0.7, 0.2],
            vec![0.5, 0.5, 0.0],
            vec![0.2, 0.3, 0.5],
        ];
        // Row 0: truth 2 is second best. Row 1: tie between 0 and 1 -> 0 ranks first.
        // Row 2: truth 0 is last.
        assert_eq!(top_k_accuracy(&[2, 1, 0], &scores, 1), 0.0);
        assert!((top_k_accuracy(&[2, 1, 0], &scores, 2) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(top_k_accuracy(&[2, 1, 0], &scores, 3), 1.0);
        assert_eq!(top_k_indices(&[0.5, 0.5, 0.0], 1), vec![0]);
    }

    #[test]
    fn confusion_and_f1_match_hand_computation() {
        // truth: 0 0 0 1 1 2 ; pred: 0 0 1 1 2 2
        let cm = ConfusionMatrix::new(&labels(3), &[0, 0, 0, 1, 1, 2], &[0, 0, 1, 1, 2, 2]);
        assert_eq!(cm.counts, vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]);
        let s = cm.per_class();
        // class 0: P = 2/2, R = 2/3, F1 = 0.8
        assert!((s[0].precision - 1.0).abs() < 1e-12);
        assert!((s[0].recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((s[0].f1 - 0.8).abs() < 1e-12);
        // class 1: P = 1/2, R = 1/2, F1 = 0.5 ; class 2: P = 1/2, R = 1, F1 = 2/3
        assert!((s[1].f1 - 0.5).abs() < 1e-12);
        assert!((s[2].f1 - 2.0 / 3.0).abs() < 1e-12);
        assert!((cm.macro_f1() - (0.8 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn classes_without_predictions_or_support_score_zero() {
        let cm = ConfusionMatrix::new(&labels(3), &[0, 0], &[0, 1]);
        let s = cm.per_class();
        assert_eq!(s[1].precision, 0.0);
        assert_eq!(s[2].support, 0);
        // Only class 0 occurs in the truth: macro-F1 = F1(0) = 2*(1*0.5)/(1.5).
        assert!((cm.macro_f1() - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn mean_std_is_population() {
        let (m, s) = mean_std(&[1.0, 3.0]);
        assert_eq!((m, s), (2.0, 1.0));
    }
}
