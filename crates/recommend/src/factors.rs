//! The form every recommender takes once trained: a global offset, user and item biases and
//! user and item factor vectors, `score(u, i) = global + b_u + b_i + p_u . q_i`. Baselines
//! use parts of it (the global mean; biases; popularity as item scores), matrix
//! factorisation and BPR all of it. Scoring and top-K run in plain Rust over these arrays.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// A trained factor model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FactorModel {
    /// Added to every score (the global mean rating for rating models).
    pub global: f32,
    /// One bias per user (empty: none).
    pub user_bias: Vec<f32>,
    /// One bias per item (empty: none).
    pub item_bias: Vec<f32>,
    /// Factor size (0: no factors).
    pub dim: usize,
    /// `users * dim` user factors.
    pub user_factors: Vec<f32>,
    /// `items * dim` item factors.
    pub item_factors: Vec<f32>,
    /// Whether scores are rating predictions (false for ranking-only models).
    pub predicts_ratings: bool,
}

impl FactorModel {
    /// Number of items scored.
    pub fn n_items(&self) -> usize {
        self.item_bias
            .len()
            .max(self.item_factors.len() / self.dim.max(1))
    }

    /// Factor vector of user `u` (empty without factors).
    pub fn user_vector(&self, u: u32) -> &[f32] {
        let d = self.dim;
        self.user_factors
            .get(u as usize * d..(u as usize + 1) * d)
            .unwrap_or(&[])
    }

    /// Factor vector of item `i` (empty without factors).
    pub fn item_vector(&self, i: u32) -> &[f32] {
        let d = self.dim;
        self.item_factors
            .get(i as usize * d..(i as usize + 1) * d)
            .unwrap_or(&[])
    }

    /// Score of item `i` for user `u`.
    pub fn score(&self, u: u32, i: u32) -> f32 {
        let bu = self.user_bias.get(u as usize).copied().unwrap_or(0.0);
        self.global + bu + self.item_score_part(i) + dot(self.user_vector(u), self.item_vector(i))
    }

    /// Score of item `i` for a user the model has no data for: the global and item parts.
    pub fn cold_score(&self, i: u32) -> f32 {
        self.global + self.item_score_part(i)
    }

    fn item_score_part(&self, i: u32) -> f32 {
        self.item_bias.get(i as usize).copied().unwrap_or(0.0)
    }

    /// Scores of every item for user `u`, into `out` (length [`Self::n_items`]).
    pub fn score_all(&self, u: u32, out: &mut [f32]) {
        let bu = self.user_bias.get(u as usize).copied().unwrap_or(0.0);
        let p = self.user_vector(u);
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.global
                + bu
                + self.item_score_part(i as u32)
                + dot(p, self.item_vector(i as u32));
        }
    }
}

/// Dot product (0 for empty vectors). Eight independent partial sums let the compiler
/// vectorise the loop.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail = n - n % 8;
    let rest: f32 = a[tail..].iter().zip(&b[tail..]).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + rest
}

/// A scored candidate; orders by score, then by lower index (so ties rank the lower index
/// first), then deterministically.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scored(f32, u32);

impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    /// "Greater" means ranked earlier.
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .total_cmp(&other.0)
            .then_with(|| other.1.cmp(&self.1))
    }
}

/// The `k` best `(item, score)` of `scores`, best first, skipping items in `exclude`
/// (sorted). Ties rank the lower item index first. NaN scores rank last.
pub fn top_k(scores: &[f32], k: usize, exclude: &[u32]) -> Vec<(u32, f32)> {
    top_k_of(
        scores
            .iter()
            .enumerate()
            .map(|(i, &s)| (i as u32, if s.is_nan() { f32::NEG_INFINITY } else { s })),
        k,
        exclude,
    )
}

fn top_k_of(it: impl Iterator<Item = (u32, f32)>, k: usize, exclude: &[u32]) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    // Min-heap of the best k so far (Reverse order on "ranked earlier").
    let mut heap: BinaryHeap<std::cmp::Reverse<Scored>> = BinaryHeap::with_capacity(k + 1);
    for (i, s) in it {
        if exclude.binary_search(&i).is_ok() {
            continue;
        }
        let c = Scored(s, i);
        if heap.len() < k {
            heap.push(std::cmp::Reverse(c));
        } else if let Some(worst) = heap.peek()
            && c > worst.0
        {
            heap.pop();
            heap.push(std::cmp::Reverse(c));
        }
    }
    let mut out: Vec<Scored> = heap.into_iter().map(|r| r.0).collect();
    out.sort_by(|a, b| b.cmp(a));
    out.into_iter().map(|s| (s.1, s.0)).collect()
}

/// Top-`k` items by `global + b_i + q_i . query` over an item table, computed in parallel
/// chunks (for large catalogues).
pub fn top_k_by_vector(
    model: &FactorModel,
    query: &[f32],
    k: usize,
    exclude: &[u32],
) -> Vec<(u32, f32)> {
    let n = model.n_items();
    let chunk = 65_536;
    let parts: Vec<Vec<(u32, f32)>> = (0..n.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let lo = c * chunk;
            let hi = (lo + chunk).min(n);
            top_k_of(
                (lo..hi).map(|i| {
                    let i = i as u32;
                    (i, model.cold_score(i) + dot(query, model.item_vector(i)))
                }),
                k,
                exclude,
            )
        })
        .collect();
    top_k_of(parts.into_iter().flatten(), k, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_breaks_ties_by_index_and_skips_excluded() {
        let s = [0.5, 0.9, 0.5, 0.1, 0.9];
        assert_eq!(top_k(&s, 3, &[]), vec![(1, 0.9), (4, 0.9), (0, 0.5)]);
        assert_eq!(top_k(&s, 2, &[1]), vec![(4, 0.9), (0, 0.5)]);
        // k larger than what is left.
        assert_eq!(top_k(&s, 10, &[0, 1, 2]).len(), 2);
        assert!(top_k(&s, 0, &[]).is_empty());
        // NaN ranks last.
        assert_eq!(top_k(&[f32::NAN, 0.0], 1, &[]), vec![(1, 0.0)]);
    }

    #[test]
    fn dot_matches_the_plain_sum_for_every_length() {
        for n in [0, 1, 7, 8, 9, 16, 23, 64] {
            let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| 1.0 - i as f32 * 0.25).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-3, "n = {n}");
        }
    }

    #[test]
    fn scores_add_global_biases_and_factors() {
        let m = FactorModel {
            global: 3.0,
            user_bias: vec![0.5, -0.5],
            item_bias: vec![0.1, 0.2],
            dim: 2,
            user_factors: vec![1.0, 0.0, 0.0, 1.0],
            item_factors: vec![2.0, 3.0, 4.0, 5.0],
            predicts_ratings: true,
        };
        assert!((m.score(0, 1) - (3.0 + 0.5 + 0.2 + 4.0)).abs() < 1e-6);
        let mut all = vec![0.0; 2];
        m.score_all(1, &mut all);
        assert!((all[0] - (3.0 - 0.5 + 0.1 + 3.0)).abs() < 1e-6);
        assert!((m.cold_score(1) - 3.2).abs() < 1e-6);
        let q = m.user_vector(0).to_vec();
        assert_eq!(top_k_by_vector(&m, &q, 1, &[]), vec![(1, 3.2 + 4.0)]);
    }
}
