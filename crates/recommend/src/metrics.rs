//! The field's metrics: RMSE and MAE for rating prediction; HR@K, NDCG@K, Recall@K, MAP@K
//! and catalogue coverage for top-K ranking (RecBole's definitions, full ranking).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// Root mean squared error and mean absolute error of `(prediction, truth)` pairs.
pub fn rmse_mae(pairs: &[(f32, f32)]) -> (f64, f64) {
    if pairs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = pairs.len() as f64;
    let (se, ae) = pairs.iter().fold((0.0f64, 0.0f64), |(se, ae), &(p, t)| {
        let d = (p - t) as f64;
        (se + d * d, ae + d.abs())
    });
    ((se / n).sqrt(), ae / n)
}

/// Ranking metrics of one user at one cut-off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UserRanking {
    /// 1 if any relevant item is in the top K.
    pub hit: f64,
    /// Relevant items in the top K over all relevant items.
    pub recall: f64,
    /// Discounted cumulative gain over the ideal one (binary relevance).
    pub ndcg: f64,
    /// Average precision at K: precision at each hit, over `min(|relevant|, K)`.
    pub ap: f64,
}

/// Metrics of `ranked` (best first; only its first `k` count) against `relevant`. A user
/// with no relevant item has no defined metrics: `None`.
pub fn rank_user(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> Option<UserRanking> {
    if relevant.is_empty() || k == 0 {
        return None;
    }
    let (mut hits, mut dcg, mut ap) = (0usize, 0.0f64, 0.0f64);
    for (pos, item) in ranked.iter().take(k).enumerate() {
        if relevant.contains(item) {
            hits += 1;
            dcg += 1.0 / ((pos + 2) as f64).log2();
            ap += hits as f64 / (pos + 1) as f64;
        }
    }
    let ideal_n = relevant.len().min(k);
    let idcg: f64 = (0..ideal_n).map(|p| 1.0 / ((p + 2) as f64).log2()).sum();
    Some(UserRanking {
        hit: f64::from(hits > 0),
        recall: hits as f64 / relevant.len() as f64,
        ndcg: dcg / idcg,
        ap: ap / ideal_n as f64,
    })
}

/// Means over users at one cut-off, plus catalogue coverage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RankingSummary {
    /// The cut-off.
    pub k: usize,
    /// Hit rate.
    pub hr: f64,
    /// Normalised discounted cumulative gain.
    pub ndcg: f64,
    /// Recall.
    pub recall: f64,
    /// Mean average precision.
    pub map: f64,
    /// Distinct items recommended to any evaluated user, over the catalogue size.
    pub coverage: f64,
    /// Users evaluated.
    pub users: usize,
}

/// Accumulates per-user rankings at several cut-offs.
#[derive(Debug, Clone)]
pub struct RankingAccumulator {
    ks: Vec<usize>,
    sums: Vec<UserRanking>,
    seen: Vec<HashSet<u32>>,
    users: usize,
    catalogue: usize,
}

impl RankingAccumulator {
    /// An accumulator for cut-offs `ks` over a catalogue of `catalogue` items.
    pub fn new(ks: &[usize], catalogue: usize) -> Self {
        Self {
            ks: ks.to_vec(),
            sums: vec![UserRanking::default(); ks.len()],
            seen: vec![HashSet::new(); ks.len()],
            users: 0,
            catalogue,
        }
    }

    /// The largest cut-off (how long the ranked lists must be).
    pub fn max_k(&self) -> usize {
        self.ks.iter().copied().max().unwrap_or(0)
    }

    /// Adds one user's ranked list; users without relevant items are skipped.
    pub fn add(&mut self, ranked: &[u32], relevant: &HashSet<u32>) {
        if relevant.is_empty() {
            return;
        }
        self.users += 1;
        for (j, &k) in self.ks.iter().enumerate() {
            if let Some(r) = rank_user(ranked, relevant, k) {
                let s = &mut self.sums[j];
                s.hit += r.hit;
                s.recall += r.recall;
                s.ndcg += r.ndcg;
                s.ap += r.ap;
            }
            self.seen[j].extend(ranked.iter().take(k));
        }
    }

    /// Means per cut-off.
    pub fn summary(&self) -> Vec<RankingSummary> {
        let n = self.users.max(1) as f64;
        self.ks
            .iter()
            .enumerate()
            .map(|(j, &k)| RankingSummary {
                k,
                hr: self.sums[j].hit / n,
                ndcg: self.sums[j].ndcg / n,
                recall: self.sums[j].recall / n,
                map: self.sums[j].ap / n,
                coverage: self.seen[j].len() as f64 / self.catalogue.max(1) as f64,
                users: self.users,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u32]) -> HashSet<u32> {
        v.iter().copied().collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn rmse_and_mae_by_hand() {
        let (rmse, mae) = rmse_mae(&[(3.0, 4.0), (5.0, 2.0)]);
        assert!(close(rmse, (5.0f64).sqrt()));
        assert!(close(mae, 2.0));
        assert!(rmse_mae(&[]).0.is_nan());
    }

    #[test]
    fn ranking_metrics_by_hand() {
        // Relevant {1, 3}; ranked [1, 2, 3]: hits at positions 1 and 3.
        let r = rank_user(&[1, 2, 3], &set(&[1, 3]), 3).unwrap();
        let dcg = 1.0 + 1.0 / 4f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2();
        assert!(close(r.ndcg, dcg / idcg));
        assert!(close(r.hit, 1.0));
        assert!(close(r.recall, 1.0));
        // AP = (1/1 + 2/3) / min(2, 3).
        assert!(close(r.ap, (1.0 + 2.0 / 3.0) / 2.0));
        // At K = 1 only the first position counts; the ideal has one position.
        let r1 = rank_user(&[1, 2, 3], &set(&[1, 3]), 1).unwrap();
        assert!(close(r1.ndcg, 1.0) && close(r1.recall, 0.5) && close(r1.ap, 1.0));
        // A miss.
        let r0 = rank_user(&[5, 6], &set(&[1]), 2).unwrap();
        assert_eq!(r0, UserRanking::default());
    }

    #[test]
    fn users_without_test_items_and_k_beyond_the_catalogue() {
        assert!(rank_user(&[1, 2], &set(&[]), 10).is_none());
        // K = 10 over a 2-item list: ideal DCG over min(|rel|, K) = 1 position.
        let r = rank_user(&[2, 1], &set(&[1]), 10).unwrap();
        assert!(close(r.ndcg, 1.0 / 3f64.log2()));
        assert!(close(r.ap, 0.5));
        let mut acc = RankingAccumulator::new(&[1, 10], 4);
        acc.add(&[2, 1], &set(&[1]));
        acc.add(&[3], &set(&[])); // skipped: no relevant item
        acc.add(&[1, 3], &set(&[1]));
        let s = acc.summary();
        assert_eq!(s[0].users, 2);
        assert!(close(s[0].hr, 0.5));
        assert!(close(s[1].hr, 1.0));
        // Items shown at K = 1: {2, 1} of 4; at K = 10: {2, 1, 3}.
        assert!(close(s[0].coverage, 0.5));
        assert!(close(s[1].coverage, 0.75));
    }
}
