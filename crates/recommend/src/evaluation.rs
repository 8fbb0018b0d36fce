//! The field's protocols on one fold.
//!
//! - Rating prediction: RMSE and MAE over every test interaction, predictions clipped to the
//!   rating scale. A user (item) with no training interaction gets no user (item) term.
//! - Top-K, full ranking (RecBole's "full" mode): for each user with test interactions, every
//!   item of the catalogue except the user's training items is ranked; the test items are
//!   the relevant ones. Users with no training interaction (cold start) get the most popular
//!   training items, as the app answers them, and are counted.

use std::collections::HashSet;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::Interactions;
use crate::factors::{FactorModel, dot, top_k};
use crate::metrics::{RankingAccumulator, RankingSummary, rmse_mae};
use crate::train::{items_by_user, popularity};

/// The cut-offs reported.
pub const CUTOFFS: [usize; 3] = [5, 10, 20];

/// Results on one fold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldEvaluation {
    /// RMSE (rating models only).
    pub rmse: Option<f64>,
    /// MAE (rating models only).
    pub mae: Option<f64>,
    /// Ranking metrics per cut-off.
    pub ranking: Vec<RankingSummary>,
    /// Users ranked with the model.
    pub warm_users: usize,
    /// Users with test items but no training item (answered with popularity).
    pub cold_users: usize,
}

impl FoldEvaluation {
    /// The ranking metrics at cut-off `k`.
    pub fn at(&self, k: usize) -> Option<&RankingSummary> {
        self.ranking.iter().find(|r| r.k == k)
    }
}

/// Rating prediction for `(u, i)`: terms of unseen users and items are left out.
pub fn predict_rating(
    m: &FactorModel,
    u: u32,
    i: u32,
    user_known: bool,
    item_known: bool,
    scale: (f32, f32),
) -> f32 {
    let mut p = m.global;
    if user_known {
        p += m.user_bias.get(u as usize).copied().unwrap_or(0.0);
    }
    if item_known {
        p += m.item_bias.get(i as usize).copied().unwrap_or(0.0);
    }
    if user_known && item_known {
        p += dot(m.user_vector(u), m.item_vector(i));
    }
    p.clamp(scale.0, scale.1)
}

/// What every model's evaluation on one fold shares: who rated what in training, the test
/// items of each user, the fold's popularity list. Built once per fold.
pub struct FoldContext<'a> {
    d: &'a Interactions,
    test: &'a [u32],
    ks: Vec<usize>,
    seen: Vec<Vec<u32>>,
    item_known: Vec<bool>,
    relevant: Vec<Vec<u32>>,
    users: Vec<usize>,
    popular: Vec<u32>,
    /// The popularity baseline of the fold (items scored by training interactions).
    pub popularity: FactorModel,
}

impl<'a> FoldContext<'a> {
    /// The context of `test` rows of `d`, for models fitted on `train`, at cut-offs `ks`.
    pub fn new(d: &'a Interactions, train: &[u32], test: &'a [u32], ks: &[usize]) -> Self {
        let seen = items_by_user(d, train);
        let mut item_known = vec![false; d.items.len()];
        for &r in train {
            item_known[d.item[r as usize] as usize] = true;
        }
        let relevant = items_by_user(d, test);
        let users = (0..relevant.len())
            .filter(|&u| !relevant[u].is_empty())
            .collect();
        let popularity = popularity(d, train);
        let max_k = ks.iter().copied().max().unwrap_or(0);
        let popular = top_k(&popularity.item_bias, max_k, &[])
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        Self {
            d,
            test,
            ks: ks.to_vec(),
            seen,
            item_known,
            relevant,
            users,
            popular,
            popularity,
        }
    }

    /// Evaluates `m` on the fold.
    pub fn evaluate(&self, m: &FactorModel) -> FoldEvaluation {
        let d = self.d;
        let (rmse, mae) = if m.predicts_ratings && !self.test.is_empty() {
            let pairs: Vec<(f32, f32)> = self
                .test
                .iter()
                .map(|&r| {
                    let r = r as usize;
                    let (u, i) = (d.user[r], d.item[r]);
                    let p = predict_rating(
                        m,
                        u,
                        i,
                        !self.seen[u as usize].is_empty(),
                        self.item_known[i as usize],
                        d.scale,
                    );
                    (p, d.rating[r])
                })
                .collect();
            let (a, b) = rmse_mae(&pairs);
            (Some(a), Some(b))
        } else {
            (None, None)
        };
        let mut acc = RankingAccumulator::new(&self.ks, d.items.len());
        let ranked = rank_users(m, &self.users, &self.seen, acc.max_k(), &self.popular);
        let mut cold = 0;
        for (k, &u) in self.users.iter().enumerate() {
            cold += usize::from(self.seen[u].is_empty());
            let rel: HashSet<u32> = self.relevant[u].iter().copied().collect();
            acc.add(&ranked[k], &rel);
        }
        FoldEvaluation {
            rmse,
            mae,
            ranking: acc.summary(),
            warm_users: self.users.len() - cold,
            cold_users: cold,
        }
    }
}

/// Evaluates `m` (fitted on `train`) on `test` rows of `d` at cut-offs `ks`.
pub fn evaluate_fold(
    m: &FactorModel,
    d: &Interactions,
    train: &[u32],
    test: &[u32],
    ks: &[usize],
) -> FoldEvaluation {
    FoldContext::new(d, train, test, ks).evaluate(m)
}

/// The top `k` items of each user in `users`, their `seen` items excluded; a user who has
/// seen nothing gets `cold` (the popularity list).
pub fn rank_users(
    m: &FactorModel,
    users: &[usize],
    seen: &[Vec<u32>],
    k: usize,
    cold: &[u32],
) -> Vec<Vec<u32>> {
    let n_items = m.n_items();
    users
        .par_iter()
        .map_init(
            || vec![0.0f32; n_items],
            |scores, &u| {
                if seen[u].is_empty() {
                    return cold.to_vec();
                }
                m.score_all(u as u32, scores);
                top_k(scores, k, &seen[u])
                    .into_iter()
                    .map(|(i, _)| i)
                    .collect()
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::RawTable;

    #[test]
    fn training_items_are_never_ranked_and_cold_users_get_popularity() {
        // u1 rated a, b in training and c in test; u2 rated a in training; u3 only in test.
        let rows = [
            ("u1", "a"),
            ("u1", "b"),
            ("u2", "a"),
            ("u1", "c"),
            ("u3", "a"),
        ];
        let d = Interactions::from_raw(
            &RawTable {
                path: "t".into(),
                users: rows.iter().map(|r| r.0).collect::<Vec<_>>().into(),
                items: rows.iter().map(|r| r.1).collect::<Vec<_>>().into(),
                ratings: vec![4.0; 5],
                times: (0..5).collect(),
                explicit: true,
            },
            None,
        );
        // A model that scores items a > b > c for everyone.
        let m = FactorModel {
            item_bias: vec![3.0, 2.0, 1.0],
            ..Default::default()
        };
        let e = evaluate_fold(&m, &d, &[0, 1, 2], &[3, 4], &[1]);
        // u1: a and b excluded, so c is ranked first: a hit. u3 is cold: popularity puts
        // a (2 training interactions) first: a hit.
        assert_eq!((e.warm_users, e.cold_users), (1, 1));
        assert_eq!(e.at(1).unwrap().hr, 1.0);
        assert!(e.rmse.is_none());
    }

    #[test]
    fn unseen_users_and_items_get_no_terms() {
        let m = FactorModel {
            global: 3.0,
            user_bias: vec![1.0],
            item_bias: vec![0.5],
            dim: 1,
            user_factors: vec![2.0],
            item_factors: vec![2.0],
            predicts_ratings: true,
        };
        assert_eq!(predict_rating(&m, 0, 0, true, true, (1.0, 5.0)), 5.0);
        assert_eq!(predict_rating(&m, 0, 0, false, true, (1.0, 5.0)), 3.5);
        assert_eq!(predict_rating(&m, 0, 0, false, false, (1.0, 5.0)), 3.0);
    }
}
