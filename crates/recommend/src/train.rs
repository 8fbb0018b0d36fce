//! Fitting recommenders on one fold's training interactions.
//!
//! - Baselines (closed form, plain Rust): the global mean; regularised user and item biases
//!   (alternating least squares, as Surprise's `BaselineOnly`); popularity (items scored by
//!   their training count).
//! - Biased matrix factorisation for explicit ratings and BPR matrix factorisation for
//!   implicit feedback, both Burn modules trained with Adam on mini-batches; the epoch with
//!   the best score on a validation cut of the training interactions is kept (validation
//!   RMSE for MF, validation NDCG@10 for BPR) and training stops after `patience` epochs
//!   without improvement. BPR draws each negative uniformly among the items the user has
//!   no training interaction with, so a training positive is never a negative.

use std::collections::HashSet;
use std::time::Instant;

use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams, SgdConfig};
use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::dataset::Interactions;
use crate::error::{RecommendError, Result};
use crate::factors::FactorModel;
use crate::metrics::RankingAccumulator;

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
        }
    }

    /// Whether the model is trained with Burn (has epochs).
    pub fn is_neural(self) -> bool {
        matches!(self, ModelKind::Mf | ModelKind::Bpr)
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
        }
    }
}

impl FitConfig {
    /// Checks the settings: `Err((field, message))`.
    pub fn check(&self, kind: ModelKind) -> std::result::Result<(), (String, String)> {
        let bad = |f: &str, m: String| Err((f.to_string(), m));
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
        ModelKind::Mf | ModelKind::Bpr => neural(d, train, kind, cfg, seed, device, label),
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

/// User and item factors with biases, as a Burn module.
#[derive(Module, Debug)]
pub struct FactorNet {
    user: Param<Tensor<2>>,
    item: Param<Tensor<2>>,
    user_bias: Param<Tensor<1>>,
    item_bias: Param<Tensor<1>>,
}

impl FactorNet {
    /// Random factors (normal, `std`) and zero biases.
    pub fn new(users: usize, items: usize, dim: usize, std: f32, device: &Device) -> Self {
        let normal = Distribution::Normal(0.0, std as f64);
        Self {
            user: Param::from_tensor(Tensor::random([users, dim], normal, device)),
            item: Param::from_tensor(Tensor::random([items, dim], normal, device)),
            user_bias: Param::from_tensor(Tensor::zeros([users], device)),
            item_bias: Param::from_tensor(Tensor::zeros([items], device)),
        }
    }

    /// The plain arrays of the module.
    pub fn export(&self, global: f32, kind: ModelKind) -> FactorModel {
        let vec1 = |t: Tensor<1>| -> Vec<f32> { t.into_data().try_to_vec().unwrap_or_default() };
        let vec2 = |t: Tensor<2>| -> Vec<f32> { t.into_data().try_to_vec().unwrap_or_default() };
        let dim = self.user.val().dims()[1];
        FactorModel {
            global,
            user_bias: if kind == ModelKind::Mf {
                vec1(self.user_bias.val())
            } else {
                Vec::new()
            },
            item_bias: vec1(self.item_bias.val()),
            dim,
            user_factors: vec2(self.user.val()),
            item_factors: vec2(self.item.val()),
            predicts_ratings: kind == ModelKind::Mf,
        }
    }

    /// Rating predictions for the pairs `(u[k], i[k])` and the per-example L2 terms
    /// (factors, biases).
    pub fn predict(
        &self,
        u: Tensor<1, Int>,
        i: Tensor<1, Int>,
        global: f32,
    ) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
        let pu = self.user.val().select(0, u.clone());
        let qi = self.item.val().select(0, i.clone());
        let bu = self.user_bias.val().select(0, u);
        let bi = self.item_bias.val().select(0, i);
        let dot = (pu.clone() * qi.clone()).sum_dim(1).squeeze_dim::<1>(1);
        let pred = dot + bu.clone() + bi.clone() + global;
        let reg_f = (pu.powi_scalar(2) + qi.powi_scalar(2))
            .sum_dim(1)
            .squeeze_dim::<1>(1);
        let reg_b = bu.powi_scalar(2) + bi.powi_scalar(2);
        (pred, reg_f, reg_b)
    }

    /// BPR: `x_uij = p_u . (q_i - q_j) + b_i - b_j` and the per-example L2 terms.
    fn pairwise(
        &self,
        u: Tensor<1, Int>,
        i: Tensor<1, Int>,
        j: Tensor<1, Int>,
    ) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
        let pu = self.user.val().select(0, u);
        let qi = self.item.val().select(0, i.clone());
        let qj = self.item.val().select(0, j.clone());
        let bi = self.item_bias.val().select(0, i);
        let bj = self.item_bias.val().select(0, j);
        let x = (pu.clone() * (qi.clone() - qj.clone()))
            .sum_dim(1)
            .squeeze_dim::<1>(1)
            + bi.clone()
            - bj.clone();
        let reg_f = (pu.powi_scalar(2) + qi.powi_scalar(2) + qj.powi_scalar(2))
            .sum_dim(1)
            .squeeze_dim::<1>(1);
        let reg_b = bi.powi_scalar(2) + bj.powi_scalar(2);
        (x, reg_f, reg_b)
    }
}

fn ints(v: impl Iterator<Item = u32>, device: &Device) -> Tensor<1, Int> {
    let data: Vec<i64> = v.map(i64::from).collect();
    let n = data.len();
    Tensor::from_data(TensorData::new(data, [n]), device)
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

/// Validation RMSE of a rating model.
fn valid_rmse(m: &FactorModel, d: &Interactions, valid: &[u32]) -> f64 {
    let (lo, hi) = d.scale;
    let pairs: Vec<(f32, f32)> = valid
        .iter()
        .map(|&r| {
            let r = r as usize;
            (m.score(d.user[r], d.item[r]).clamp(lo, hi), d.rating[r])
        })
        .collect();
    crate::metrics::rmse_mae(&pairs).0
}

/// Validation NDCG@10 of a ranking model: each validation user's held-out items ranked
/// among all items minus their fitted items.
fn valid_ndcg(m: &FactorModel, d: &Interactions, fit_items: &[Vec<u32>], valid: &[u32]) -> f64 {
    let valid_items = items_by_user(d, valid);
    let users: Vec<usize> = (0..valid_items.len())
        .filter(|&u| !valid_items[u].is_empty() && !fit_items[u].is_empty())
        .collect();
    let ranked = crate::evaluation::rank_users(m, &users, fit_items, 10, &[]);
    let mut acc = RankingAccumulator::new(&[10], m.n_items());
    for (k, &u) in users.iter().enumerate() {
        let rel: HashSet<u32> = valid_items[u].iter().copied().collect();
        acc.add(&ranked[k], &rel);
    }
    acc.summary()[0].ndcg
}

fn neural(
    d: &Interactions,
    train: &[u32],
    kind: ModelKind,
    cfg: &FitConfig,
    seed: u64,
    device: &Device,
    label: &str,
) -> Result<Fitted> {
    let t0 = Instant::now();
    let (fit_rows, valid) = crate::split::cut_validation(train, cfg.valid_fraction, seed);
    let run = Epochs {
        d,
        kind,
        cfg,
        seed,
        device,
        label,
        negatives_from: items_by_user(d, train),
    };
    let mut out = run.run(&fit_rows, &valid, cfg.epochs)?;
    let mut fitted_on = fit_rows.len();
    if cfg.refit && !valid.is_empty() {
        // The number of epochs was chosen on the validation cut; fit again on all the
        // training interactions for that many epochs.
        let again = run.run(train, &[], out.best_epoch)?;
        out.model = again.model;
        out.stop = format!("{}, refitted on all training data", out.stop);
        fitted_on = train.len();
    }
    Ok(Fitted {
        model: out.model,
        history: out.history,
        best_epoch: out.best_epoch,
        stop: out.stop,
        fit_rows: fitted_on,
        valid_rows: valid.len(),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// What one training run of a factor network returns.
struct EpochsOutcome {
    model: FactorModel,
    history: Vec<EpochLog>,
    best_epoch: usize,
    stop: String,
}

/// One training run of a factor network: its data and settings.
struct Epochs<'a> {
    d: &'a Interactions,
    kind: ModelKind,
    cfg: &'a FitConfig,
    seed: u64,
    device: &'a Device,
    label: &'a str,
    /// Items that are never drawn as a user's negatives (all their training items).
    negatives_from: Vec<Vec<u32>>,
}

impl Epochs<'_> {
    /// Trains on `fit_rows` for up to `epochs`, keeping the epoch that scores best on
    /// `valid` (the last one without validation rows).
    fn run(&self, fit_rows: &[u32], valid: &[u32], epochs: usize) -> Result<EpochsOutcome> {
        let (d, kind, cfg, seed, device, label) = (
            self.d,
            self.kind,
            self.cfg,
            self.seed,
            self.device,
            self.label,
        );
        let global = if kind == ModelKind::Mf {
            mean_rating(d, fit_rows)
        } else {
            0.0
        };
        let fit_items = items_by_user(d, fit_rows);
        let n_items = d.items.len() as u32;
        device.seed(seed);
        let mut net = FactorNet::new(
            d.users.len(),
            d.items.len(),
            cfg.factors,
            cfg.init_std,
            device,
        );
        let mut optim = match cfg.optimizer {
            OptimizerKind::Adam => AdamConfig::new().init(),
            OptimizerKind::Sgd => SgdConfig::new().init(),
        };
        let t0 = Instant::now();
        let mut history = Vec::new();
        let (mut best, mut best_epoch, mut best_score) = (None, 0usize, f64::NEG_INFINITY);
        let mut stop = "completed".to_string();
        let mut order = fit_rows.to_vec();
        for epoch in 1..=epochs {
            let te = Instant::now();
            let mut rng =
                StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ epoch as u64);
            order.copy_from_slice(fit_rows);
            order.shuffle(&mut rng);
            let mut loss_sum = 0.0f64;
            let lr = cfg.lr * cfg.lr_decay.powi(epoch as i32 - 1);
            for (b, batch) in order.chunks(cfg.batch_size).enumerate() {
                let u = ints(batch.iter().map(|&r| d.user[r as usize]), device);
                let i = ints(batch.iter().map(|&r| d.item[r as usize]), device);
                let (data_loss, reg_f, reg_b) = if kind == ModelKind::Mf {
                    let target: Vec<f32> = batch.iter().map(|&r| d.rating[r as usize]).collect();
                    let y = Tensor::<1>::from_data(TensorData::new(target, [batch.len()]), device);
                    let (pred, reg_f, reg_b) = net.predict(u, i, global);
                    ((pred - y).powi_scalar(2).mean(), reg_f, reg_b)
                } else {
                    let negatives: Vec<u32> = batch
                        .iter()
                        .map(|&r| {
                            let seen = &self.negatives_from[d.user[r as usize] as usize];
                            sample_negative(&mut rng, n_items, seen)
                        })
                        .collect();
                    let j = ints(negatives.into_iter(), device);
                    let (x, reg_f, reg_b) = net.pairwise(u, i, j);
                    (log_sigmoid(x).mean().neg(), reg_f, reg_b)
                };
                let value = data_loss.clone().into_scalar::<f32>();
                if !value.is_finite() {
                    return Err(RecommendError::Training(format!(
                        "{label}: loss {value} at epoch {epoch}, batch {}; lower `lr`",
                        b + 1
                    )));
                }
                loss_sum += value as f64 * batch.len() as f64;
                let loss = data_loss + reg_f.mean() * cfg.reg + reg_b.mean() * cfg.reg_bias;
                let loss = match cfg.optimizer {
                    OptimizerKind::Adam => loss,
                    OptimizerKind::Sgd => loss * batch.len() as f32,
                };
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(lr, net, grads);
            }
            let snapshot = net.valid().export(global, kind);
            let (valid_score, score) = if valid.is_empty() {
                (None, epoch as f64)
            } else if kind == ModelKind::Mf {
                let v = valid_rmse(&snapshot, d, valid);
                (Some(v), -v)
            } else {
                let v = valid_ndcg(&snapshot, d, &fit_items, valid);
                (Some(v), v)
            };
            let rec = EpochLog {
                epoch,
                train_loss: loss_sum / fit_rows.len().max(1) as f64,
                valid: valid_score,
                seconds: te.elapsed().as_secs_f64(),
            };
            tracing::info!(
                "{label}: epoch {epoch:>3} loss {:.4}{} ({:.1}s)",
                rec.train_loss,
                valid_score.map_or(String::new(), |v| format!(
                    " | valid {} {v:.4}",
                    if kind == ModelKind::Mf {
                        "rmse"
                    } else {
                        "ndcg@10"
                    }
                )),
                rec.seconds
            );
            history.push(rec);
            if score > best_score {
                best_score = score;
                best_epoch = epoch;
                best = Some(snapshot);
            }
            if cfg.patience > 0 && !valid.is_empty() && epoch - best_epoch >= cfg.patience {
                stop = "early stopping".into();
                break;
            }
            if cfg
                .budget_s
                .is_some_and(|b| t0.elapsed().as_secs_f64() >= b)
            {
                stop = "budget".into();
                break;
            }
        }
        let model =
            best.ok_or_else(|| RecommendError::Training(format!("{label}: no epoch ran")))?;
        Ok(EpochsOutcome {
            model,
            history,
            best_epoch,
            stop,
        })
    }
}

/// An item drawn uniformly among those not in `seen` (sorted). When the user has seen
/// every item there is no valid negative; the draw then repeats a random item, which the
/// loss treats as a tie.
pub fn sample_negative(rng: &mut StdRng, n_items: u32, seen: &[u32]) -> u32 {
    let free = n_items as usize - seen.len().min(n_items as usize);
    if free == 0 {
        return rng.random_range(0..n_items);
    }
    if seen.len() * 2 < n_items as usize {
        // Rejection sampling: fast while most items are unseen.
        loop {
            let j = rng.random_range(0..n_items);
            if seen.binary_search(&j).is_err() {
                return j;
            }
        }
    }
    // Dense histories: pick the k-th unseen item directly.
    let mut k = rng.random_range(0..free as u32);
    let mut j = 0u32;
    for &s in seen {
        if j + k < s {
            break;
        }
        k -= s - j;
        j = s + 1;
    }
    j + k
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
