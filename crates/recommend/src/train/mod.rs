//! Fitting recommenders on one fold's training interactions.
//!
//! - Baselines (closed form, plain Rust): the global mean; regularised user and item biases
//!   (alternating least squares, as Surprise's `BaselineOnly`); popularity (items scored by
//!   their training count).
//! - Biased matrix factorisation (and SVD++, its implicit-feedback extension) for explicit
//!   ratings and BPR matrix factorisation for implicit feedback, all Burn modules trained with Adam on mini-batches; the epoch with
//!   the best score on a validation cut of the training interactions is kept (validation
//!   RMSE for MF, validation NDCG@10 for BPR) and training stops after `patience` epochs
//!   without improvement. BPR draws each negative uniformly among the items the user has
//!   no interaction with in the rows being fitted: a fitted positive is never a negative,
//!   and a validation item is drawn like any unseen item, as a test item is.

use profundo_pipeline::ParamError;
use std::collections::HashSet;
use std::time::Instant;

use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams, SgdConfig};
use burn::tensor::activation::{log_sigmoid, log_softmax};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::dataset::Interactions;
use crate::error::{RecommendError, Result};
use crate::factors::FactorModel;
use crate::metrics::RankingAccumulator;

mod neural;
use neural::*;
pub use neural::{FactorNet, sample_negative};

/// Which recommender to fit.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Predicts the global mean rating.
    GlobalMean,
    /// Global mean plus regularised user and item biases.
    Biases,
    /// Ranks items by how often they were rated in training.
    Popularity,
    /// Biased matrix factorisation (explicit ratings, RMSE).
    #[default]
    Mf,
    /// Matrix factorisation with item biases trained with the BPR pairwise loss (implicit
    /// feedback, ranking).
    Bpr,
    /// SVD++ (Koren 2008): biased matrix factorisation whose user vector adds the
    /// normalised sum of implicit factors of the items the user rated in training
    /// (explicit ratings, RMSE). Saved as plain factors: each user's vector is folded once
    /// training ends, so serving is the same as `mf`.
    Svdpp,
}

impl ModelKind {
    /// The name used in pipelines (`mf`, `bpr`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::GlobalMean => "global_mean",
            ModelKind::Biases => "biases",
            ModelKind::Popularity => "popularity",
            ModelKind::Mf => "mf",
            ModelKind::Bpr => "bpr",
            ModelKind::Svdpp => "svdpp",
        }
    }

    /// Whether the model is trained with Burn (has epochs).
    pub fn is_neural(self) -> bool {
        matches!(self, ModelKind::Mf | ModelKind::Bpr | ModelKind::Svdpp)
    }

    /// Whether a trained (neural) model of this kind predicts ratings (`mf`, `svdpp`);
    /// `bpr` only ranks.
    pub fn rates(self) -> bool {
        matches!(self, ModelKind::Mf | ModelKind::Svdpp)
    }
}

/// How parameters are updated.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam on the batch-mean loss.
    #[default]
    Adam,
    /// Plain SGD on the batch-summed loss: every example moves its own rows by `lr` times
    /// its gradient, as in the classic (Funk) SGD for matrix factorisation.
    Sgd,
}

/// The loss a ranking model (`bpr`) is trained with.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RankingLoss {
    /// Bayesian personalised ranking: `-log sigmoid(x_ui - x_uj)` against one sampled
    /// negative item.
    #[default]
    Bpr,
    /// Sampled softmax: the positive item's score against `negatives` sampled items in one
    /// softmax, `-log softmax(x_ui; x_uj1..x_ujK)` (uniform sampling, so no correction).
    Softmax,
}

/// Hyper-parameters of every model kind (each uses the ones that apply to it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FitConfig {
    /// Factor size (MF, BPR).
    pub factors: usize,
    /// L2 penalty on the factors of each example (MF, BPR).
    pub reg: f32,
    /// L2 penalty on the biases of each example (MF, BPR).
    pub reg_bias: f32,
    /// Standard deviation of the initial factors.
    pub init_std: f32,
    /// Maximum epochs (MF, BPR).
    pub epochs: usize,
    /// Examples per step (MF, BPR).
    pub batch_size: usize,
    /// Learning rate (MF, BPR).
    pub lr: f64,
    /// `adam` or `sgd` (MF, BPR).
    pub optimizer: OptimizerKind,
    /// The learning rate is multiplied by this after every epoch (1 = constant).
    pub lr_decay: f64,
    /// Stop after this many epochs without validation improvement (0 = never).
    pub patience: usize,
    /// Fraction of the training interactions held out to pick the epoch (MF, BPR).
    pub valid_fraction: f64,
    /// Wall-clock limit per training run in seconds.
    pub budget_s: Option<f64>,
    /// After choosing the number of epochs on the validation cut, fit again on all the
    /// training interactions for that many epochs (MF, BPR).
    pub refit: bool,
    /// Biases: regulariser of the user biases (Surprise's `reg_u`).
    pub reg_user: f32,
    /// Biases: regulariser of the item biases (Surprise's `reg_i`).
    pub reg_item: f32,
    /// Biases: alternating least-squares sweeps.
    pub iterations: usize,
    /// BPR: the ranking loss, `bpr` (pairwise, one negative) or `softmax` (sampled).
    pub loss: RankingLoss,
    /// BPR with `loss = "softmax"`: negatives sampled per positive.
    pub negatives: usize,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            factors: 64,
            reg: 0.05,
            reg_bias: 0.01,
            init_std: 0.1,
            epochs: 40,
            batch_size: 512,
            lr: 0.005,
            optimizer: OptimizerKind::Adam,
            lr_decay: 1.0,
            patience: 5,
            valid_fraction: 0.05,
            budget_s: None,
            refit: false,
            reg_user: 15.0,
            reg_item: 10.0,
            iterations: 10,
            loss: RankingLoss::Bpr,
            negatives: 16,
        }
    }
}

impl FitConfig {
    /// Checks the settings: `Err((field, message))`.
    pub fn check(&self, kind: ModelKind) -> std::result::Result<(), ParamError> {
        let bad = |f: &str, m: String| Err(ParamError::rule(f, m));
        if kind.is_neural() {
            if self.factors == 0 {
                return bad("factors", "must be at least 1".into());
            }
            if self.epochs == 0 {
                return bad("epochs", "must be at least 1".into());
            }
            if self.batch_size == 0 {
                return bad("batch_size", "must be at least 1".into());
            }
            if !(self.lr.is_finite() && self.lr > 0.0) {
                return bad("lr", format!("must be positive, got {}", self.lr));
            }
            if !(self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
                return bad(
                    "lr_decay",
                    format!("must be in (0, 1], got {}", self.lr_decay),
                );
            }
            if !(self.reg >= 0.0 && self.reg_bias >= 0.0 && self.init_std >= 0.0) {
                return bad("reg", "penalties and init_std must be non-negative".into());
            }
            if self.loss == RankingLoss::Softmax && self.negatives == 0 {
                return bad("negatives", "must be at least 1".into());
            }
            if !(0.0..0.5).contains(&self.valid_fraction) {
                return bad(
                    "valid_fraction",
                    format!("must be in [0, 0.5), got {}", self.valid_fraction),
                );
            }
        }
        if !(self.reg_user >= 0.0 && self.reg_item >= 0.0) {
            return bad("reg_user", "must be non-negative".into());
        }
        if let Some(b) = self.budget_s
            && (b.is_nan() || b <= 0.0)
        {
            return bad("budget_s", format!("must be positive, got {b}"));
        }
        Ok(())
    }
}

/// One epoch of a neural model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss (data term).
    pub train_loss: f64,
    /// Validation score: RMSE for MF (lower is better), NDCG@10 for BPR (higher is better).
    pub valid: Option<f64>,
    /// Seconds.
    pub seconds: f64,
}

/// A fitted model and how it was fitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fitted {
    /// The model.
    pub model: FactorModel,
    /// Epochs (empty for baselines).
    pub history: Vec<EpochLog>,
    /// The epoch kept (0 for baselines).
    pub best_epoch: usize,
    /// Why training ended.
    pub stop: String,
    /// Interactions fitted on and held out for validation.
    pub fit_rows: usize,
    /// Validation interactions.
    pub valid_rows: usize,
    /// Seconds.
    pub seconds: f64,
}

/// Fits `kind` on `train` rows of `d`.
pub fn fit(
    d: &Interactions,
    train: &[u32],
    kind: ModelKind,
    cfg: &FitConfig,
    seed: u64,
    device: &Device,
    label: &str,
) -> Result<Fitted> {
    let t0 = Instant::now();
    let baseline = |model: FactorModel| Fitted {
        model,
        history: Vec::new(),
        best_epoch: 0,
        stop: "closed form".into(),
        fit_rows: train.len(),
        valid_rows: 0,
        seconds: t0.elapsed().as_secs_f64(),
    };
    if train.is_empty() {
        return Err(RecommendError::Config(
            "the training split has no interactions".into(),
        ));
    }
    match kind {
        ModelKind::GlobalMean => Ok(baseline(FactorModel {
            global: mean_rating(d, train),
            item_bias: vec![0.0; d.items.len()],
            predicts_ratings: true,
            ..Default::default()
        })),
        ModelKind::Biases => Ok(baseline(biases(d, train, cfg))),
        ModelKind::Popularity => Ok(baseline(popularity(d, train))),
        ModelKind::Mf | ModelKind::Bpr | ModelKind::Svdpp => {
            neural(d, train, kind, cfg, seed, device, label)
        }
    }
}

/// Mean rating of `rows`.
pub fn mean_rating(d: &Interactions, rows: &[u32]) -> f32 {
    let s: f64 = rows.iter().map(|&r| d.rating[r as usize] as f64).sum();
    (s / rows.len().max(1) as f64) as f32
}

/// Popularity: each item scored by its number of training interactions.
pub fn popularity(d: &Interactions, train: &[u32]) -> FactorModel {
    let mut counts = vec![0.0f32; d.items.len()];
    for &r in train {
        counts[d.item[r as usize] as usize] += 1.0;
    }
    FactorModel {
        item_bias: counts,
        predicts_ratings: false,
        ..Default::default()
    }
}

/// Regularised user and item biases by alternating least squares.
pub fn biases(d: &Interactions, train: &[u32], cfg: &FitConfig) -> FactorModel {
    let mu = mean_rating(d, train);
    let (nu, ni) = (d.users.len(), d.items.len());
    let (mut bu, mut bi) = (vec![0.0f32; nu], vec![0.0f32; ni]);
    for _ in 0..cfg.iterations.max(1) {
        let (mut num, mut cnt) = (vec![0.0f64; ni], vec![0usize; ni]);
        for &r in train {
            let (u, i) = (d.user[r as usize] as usize, d.item[r as usize] as usize);
            num[i] += (d.rating[r as usize] - mu - bu[u]) as f64;
            cnt[i] += 1;
        }
        for i in 0..ni {
            bi[i] = (num[i] / (cfg.reg_item as f64 + cnt[i] as f64)) as f32;
        }
        let (mut num, mut cnt) = (vec![0.0f64; nu], vec![0usize; nu]);
        for &r in train {
            let (u, i) = (d.user[r as usize] as usize, d.item[r as usize] as usize);
            num[u] += (d.rating[r as usize] - mu - bi[i]) as f64;
            cnt[u] += 1;
        }
        for u in 0..nu {
            bu[u] = (num[u] / (cfg.reg_user as f64 + cnt[u] as f64)) as f32;
        }
    }
    FactorModel {
        global: mu,
        user_bias: bu,
        item_bias: bi,
        predicts_ratings: true,
        ..Default::default()
    }
}

/// Items of each user in `rows`, sorted.
pub fn items_by_user(d: &Interactions, rows: &[u32]) -> Vec<Vec<u32>> {
    let mut by = vec![Vec::new(); d.users.len()];
    for &r in rows {
        by[d.user[r as usize] as usize].push(d.item[r as usize]);
    }
    for v in &mut by {
        v.sort_unstable();
        v.dedup();
    }
    by
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negatives_are_never_training_positives() {
        let mut rng = StdRng::seed_from_u64(1);
        let seen = vec![0, 2, 3, 4, 5, 6, 8];
        for _ in 0..500 {
            let j = sample_negative(&mut rng, 10, &seen);
            assert!(j < 10 && seen.binary_search(&j).is_err(), "{j}");
        }
        let sparse = vec![5];
        for _ in 0..200 {
            assert_ne!(sample_negative(&mut rng, 1000, &sparse), 5);
        }
    }
}
