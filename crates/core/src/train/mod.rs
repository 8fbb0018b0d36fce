//! One shared training loop for classifiers: seeded determinism, per-epoch metrics, early
//! stopping, a checkpoint every epoch, resume after an interruption, NaN/inf detection,
//! learning-rate schedules and a wall-clock budget.
//!
//! Determinism: every epoch draws its shuffling and augmentation from an RNG seeded by
//! `(seed, epoch)` and re-seeds the device before the epoch, so an interrupted run resumed
//! from its last checkpoint follows exactly the path of an uninterrupted one.

mod checkpoint;
mod examples;
mod schedule;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

pub use checkpoint::{Checkpointer, State as CheckpointState};
pub use examples::Examples;
pub use schedule::{LrPlan, Schedule};

use crate::augment::Augmenter;
use crate::model::Classifier;
use crate::progress::Progress;
use crate::{CoreError, Result};

/// Training hyper-parameters, as written in a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Maximum number of passes over the training data.
    pub epochs: usize,
    /// Examples per optimisation step.
    pub batch_size: usize,
    /// Peak learning rate (AdamW).
    pub lr: f64,
    /// Decoupled weight decay (AdamW).
    pub weight_decay: f64,
    /// Learning-rate schedule after warm-up.
    pub schedule: Schedule,
    /// Linear warm-up length in epochs.
    pub warmup_epochs: usize,
    /// For `schedule = "step"`: epochs between decays.
    pub lr_step_epochs: usize,
    /// For `schedule = "step"`: decay factor.
    pub lr_gamma: f64,
    /// Stop when validation accuracy has not improved for this many epochs (0 = never).
    pub patience: usize,
    /// Wall-clock limit in seconds; training stops after the epoch that exceeds it.
    pub budget_s: Option<f64>,
    /// Label smoothing of the cross-entropy loss (0 = off).
    pub label_smoothing: f32,
    /// Clip the gradient norm to this value.
    pub grad_clip: Option<f32>,
    /// Which epoch's weights training returns: the best on the validation items
    /// (`"best"`, the default) or the last (`"last"`: the validation items are only
    /// watched, e.g. when they are too few to pick an epoch reliably; `patience` then never
    /// stops early).
    #[serde(skip_serializing_if = "Keep::is_best")]
    pub keep: Keep,
}

/// Which epoch's weights [`TrainRun::fit`] returns ([`TrainConfig::keep`]).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// The epoch with the best validation accuracy (the last without validation items).
    #[default]
    Best,
    /// The last epoch.
    Last,
}

impl Keep {
    /// Whether this is the default, [`Keep::Best`] (left out of serialised settings, so
    /// that cache keys and manifests written before the option existed stay the same).
    pub fn is_best(&self) -> bool {
        *self == Keep::Best
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 30,
            batch_size: 32,
            lr: 2e-3,
            weight_decay: 1e-4,
            schedule: Schedule::Cosine,
            warmup_epochs: 1,
            lr_step_epochs: 10,
            lr_gamma: 0.5,
            patience: 0,
            budget_s: None,
            label_smoothing: 0.0,
            grad_clip: None,
            keep: Keep::Best,
        }
    }
}

impl TrainConfig {
    /// Checks the settings before any work is done.
    pub fn check(&self) -> Result<()> {
        let bad = |name, message: String| Err(CoreError::InvalidConfig { name, message });
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", format!("must be a positive number, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad(
                "label_smoothing",
                format!("must be in [0, 1), got {}", self.label_smoothing),
            );
        }
        if let Some(b) = self.budget_s
            && (b.is_nan() || b <= 0.0)
        {
            return bad("budget_s", format!("must be positive, got {b}"));
        }
        Ok(())
    }
}

/// What one epoch measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy (on augmented inputs).
    pub train_accuracy: f64,
    /// Validation loss, when a validation set exists.
    pub valid_loss: Option<f64>,
    /// Validation accuracy, when a validation set exists.
    pub valid_accuracy: Option<f64>,
    /// Wall-clock seconds of the epoch.
    pub seconds: f64,
}

/// Why training ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// All epochs ran.
    Completed,
    /// Validation accuracy stopped improving.
    EarlyStopping,
    /// The wall-clock budget ran out.
    Budget,
}

/// The result of [`TrainRun::fit`].
pub struct TrainOutcome<M> {
    /// The model of the best epoch (by validation accuracy, else the last).
    pub model: M,
    /// One record per epoch run.
    pub history: Vec<EpochRecord>,
    /// The epoch whose weights `model` holds.
    pub best_epoch: usize,
    /// Why training ended.
    pub stop: StopReason,
    /// Whether the run continued from a checkpoint.
    pub resumed_from: Option<usize>,
}

/// One run of the shared loop: what to fit on and how. [`TrainRun::fit`] trains a model.
#[derive(Clone, Copy)]
pub struct TrainRun<'a> {
    /// The examples; `train` and `valid` index them.
    pub data: Examples<'a>,
    /// Items fitted on.
    pub train: &'a [usize],
    /// Items that pick the best epoch and stop early (may be empty).
    pub valid: &'a [usize],
    /// Epochs, batch size, optimiser and schedule.
    pub config: &'a TrainConfig,
    /// On-the-fly augmentation of the training batches.
    pub augment: &'a dyn Augmenter,
    /// Seeds every epoch's shuffling, augmentation and device RNG (with the epoch).
    pub seed: u64,
    /// The training (autodiff) device.
    pub device: &'a Device,
    /// Where to save every epoch and resume from; none: no checkpoints.
    pub checkpoints: Option<&'a Checkpointer>,
    /// Names the run in progress lines and logs.
    pub label: &'a str,
}

/// The mean loss and accuracy of one epoch's training batches.
struct EpochFit {
    loss: f64,
    accuracy: f64,
    lr: f64,
}

impl TrainRun<'_> {
    /// Trains `model` (created on the autodiff device) on the `train` items, keeping the
    /// best epoch on the `valid` items; with checkpoints, saves every epoch and resumes
    /// from the last one saved.
    pub fn fit<M: Classifier>(&self, model: M) -> Result<TrainOutcome<M>> {
        let (cfg, data, train, valid) = (self.config, self.data, self.train, self.valid);
        cfg.check()?;
        if train.is_empty() {
            return Err(CoreError::InvalidConfig {
                name: "train",
                message: "the training split is empty".into(),
            });
        }
        let steps_per_epoch = data.batch_count(train, cfg.batch_size);
        let plan = LrPlan {
            base: cfg.lr,
            schedule: cfg.schedule,
            warmup_steps: cfg.warmup_epochs * steps_per_epoch,
            total_steps: cfg.epochs * steps_per_epoch,
            steps_per_epoch,
            step_epochs: cfg.lr_step_epochs,
            gamma: cfg.lr_gamma,
        };
        let smoothing = (cfg.label_smoothing > 0.0).then_some(cfg.label_smoothing);
        let loss_fn = CrossEntropyLossConfig::new()
            .with_smoothing(smoothing)
            .init(self.device);
        let mut optim = AdamWConfig::new()
            .with_weight_decay(cfg.weight_decay as f32)
            .with_grad_clipping(cfg.grad_clip.map(GradientClippingConfig::Norm))
            .init();
        let plain = self.device.clone().inner();

        let mut model = model;
        let mut state = checkpoint::State::default();
        // Replaced after the first epoch. Not a snapshot: that would initialise lazily
        // initialised parameters now, before the epoch's seeding, and change the run.
        let mut best = model.clone();
        let mut resumed_from = None;
        if let Some(ck) = self.checkpoints
            && let Some(saved) = ck.load_state()?
        {
            // The restored best epoch gets statistics of its own, not the model's.
            let (m, o, b) = ck.restore(&saved, model.clone(), optim, snapshot(&model))?;
            (model, optim, best) = (m, o, b);
            resumed_from = Some(saved.epochs_done);
            tracing::info!("{}: resuming after epoch {}", self.label, saved.epochs_done);
            state = saved;
        }
        if state.finished {
            return Ok(TrainOutcome {
                model: best,
                best_epoch: state.best_epoch,
                stop: state.stop.unwrap_or(StopReason::Completed),
                history: state.history,
                resumed_from,
            });
        }

        let mut progress = Progress::new(self.label, (cfg.epochs * steps_per_epoch) as u64);
        progress.inc((state.epochs_done * steps_per_epoch) as u64, "resumed");
        let started = Instant::now();
        let mut stop = StopReason::Completed;
        for epoch in state.epochs_done + 1..=cfg.epochs {
            let t0 = Instant::now();
            let fit = match self.epoch(epoch, &plan, &loss_fn, model, &mut optim, &mut progress) {
                Ok(fit) => fit,
                Err(e) => {
                    progress.finish();
                    return Err(e);
                }
            };
            model = fit.0;
            let fit = fit.1;
            let (valid_loss, valid_accuracy) = if valid.is_empty() {
                (None, None)
            } else {
                let (l, a) = evaluate(&model.valid(), data, valid, cfg.batch_size, &plain);
                (Some(l), Some(a))
            };
            let rec = EpochRecord {
                epoch,
                lr: fit.lr,
                train_loss: fit.loss,
                train_accuracy: fit.accuracy,
                valid_loss,
                valid_accuracy,
                seconds: t0.elapsed().as_secs_f64(),
            };
            progress.println(&self.epoch_line(&rec));
            let score = (
                rec.valid_accuracy.unwrap_or(0.0),
                -rec.valid_loss.unwrap_or(rec.train_loss),
            );
            let keep_this = match cfg.keep {
                Keep::Last => true,
                Keep::Best => {
                    valid.is_empty() || state.best_epoch == 0 || score > state.best_score()
                }
            };
            if keep_this {
                best = snapshot(&model);
                state.best_epoch = epoch;
                state.best = Some(score);
            }
            state.epochs_done = epoch;
            state.elapsed_s += rec.seconds;
            state.history.push(rec);
            let patience_out =
                cfg.patience > 0 && !valid.is_empty() && epoch - state.best_epoch >= cfg.patience;
            let budget_out = cfg.budget_s.is_some_and(|b| state.elapsed_s >= b);
            if patience_out {
                stop = StopReason::EarlyStopping;
            } else if budget_out {
                stop = StopReason::Budget;
            }
            let done = patience_out || budget_out || epoch == cfg.epochs;
            state.finished = done;
            state.stop = done.then_some(stop);
            if let Some(ck) = self.checkpoints {
                ck.save(&state, &model, &optim, &best)?;
            }
            if done {
                break;
            }
        }
        progress.finish();
        tracing::debug!(
            "{}: trained in {:.1}s",
            self.label,
            started.elapsed().as_secs_f64()
        );
        Ok(TrainOutcome {
            model: best,
            history: state.history,
            best_epoch: state.best_epoch,
            stop,
            resumed_from,
        })
    }

    /// One pass over the training items in an order and with augmentation drawn from
    /// `(seed, epoch)`; returns the stepped model and what the epoch measured.
    fn epoch<M: Classifier>(
        &self,
        epoch: usize,
        plan: &LrPlan,
        loss_fn: &CrossEntropyLoss,
        mut model: M,
        optim: &mut ModuleOptimizer,
        progress: &mut Progress,
    ) -> Result<(M, EpochFit)> {
        let (cfg, data, device) = (self.config, self.data, self.device);
        let steps_per_epoch = plan.steps_per_epoch;
        let mut rng = StdRng::seed_from_u64(epoch_seed(self.seed, epoch));
        device.seed(epoch_seed(self.seed, epoch));
        let mut order = self.train.to_vec();
        order.shuffle(&mut rng);
        let batches = data.training_batches(&order, cfg.batch_size, &mut rng);
        let (mut loss_sum, mut hits, mut lr) = (0.0f64, 0usize, cfg.lr);
        for (b, idx) in batches.iter().map(Vec::as_slice).enumerate() {
            let step = (epoch - 1) * steps_per_epoch + b;
            lr = plan.at(step);
            let aug = self.augment.is_active().then_some((self.augment, &mut rng));
            let x = data.batch(idx, device, aug);
            let y = data.targets(idx, device);
            let logits = model.train_logits(x, y.clone());
            let loss = loss_fn.forward(logits.clone(), y.clone());
            let value = loss.clone().into_scalar::<f32>();
            if !value.is_finite() {
                return Err(CoreError::NonFiniteLoss {
                    value,
                    epoch,
                    batch: b + 1,
                });
            }
            hits += count_hits(logits.argmax(1).flatten(0, 1), &y);
            loss_sum += value as f64 * idx.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            progress.inc(1, &format!("epoch {epoch} loss {value:.3}"));
        }
        let n = self.train.len() as f64;
        Ok((
            model,
            EpochFit {
                loss: loss_sum / n,
                accuracy: hits as f64 / n,
                lr,
            },
        ))
    }

    fn epoch_line(&self, rec: &EpochRecord) -> String {
        format!(
            "{}: epoch {:>3} lr {:.2e} loss {:.4} acc {:.4}{} ({:.1}s)",
            self.label,
            rec.epoch,
            rec.lr,
            rec.train_loss,
            rec.train_accuracy,
            match (rec.valid_loss, rec.valid_accuracy) {
                (Some(l), Some(a)) => format!(" | valid loss {l:.4} acc {a:.4}"),
                _ => String::new(),
            },
            rec.seconds
        )
    }
}

/// A copy of `model` that shares no state with it. `Clone` on a module shares batch norm's
/// running statistics (Burn keeps them behind an `Arc`), so a clone kept as the best epoch
/// would go on following the training model's statistics while its weights stay put.
/// `valid` also folds in the statistics' pending update, which a checkpoint then records.
fn snapshot<M: Classifier>(model: &M) -> M {
    model.valid().train()
}

fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(epoch as u64)
}

fn count_hits(pred: Tensor<1, Int>, truth: &Tensor<1, Int>) -> usize {
    pred.equal(truth.clone()).int().sum().into_scalar::<i64>() as usize
}

/// Mean cross-entropy loss and accuracy of `model` (validation mode) on the items `idx`
/// (batch norm per group when `data` has groups).
pub fn evaluate<M: Classifier>(
    model: &M,
    data: Examples<'_>,
    idx: &[usize],
    batch_size: usize,
    device: &Device,
) -> (f64, f64) {
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let (mut loss_sum, mut hits) = (0.0f64, 0usize);
    for (_, chunk, stats) in data.evaluation_batches(idx, batch_size) {
        let logits = model.logits_with(data.batch(&chunk, device, None), stats);
        let y = data.targets(&chunk, device);
        loss_sum += loss_fn
            .forward(logits.clone(), y.clone())
            .into_scalar::<f32>() as f64
            * chunk.len() as f64;
        hits += count_hits(logits.argmax(1).flatten(0, 1), &y);
    }
    let n = idx.len().max(1) as f64;
    (loss_sum / n, hits as f64 / n)
}

/// Class probabilities of `model` (validation mode) for the items `idx`, one row each in
/// `idx`'s order (batch norm per group when `data` has groups).
pub fn predict_proba<M: Classifier>(
    model: &M,
    data: Examples<'_>,
    idx: &[usize],
    batch_size: usize,
    device: &Device,
) -> Vec<Vec<f32>> {
    let mut rows = vec![Vec::new(); idx.len()];
    for (positions, chunk, stats) in data.evaluation_batches(idx, batch_size) {
        let logits = model.logits_with(data.batch(&chunk, device, None), stats);
        let classes = logits.dims()[1];
        let probs = burn::tensor::activation::softmax(logits, 1);
        let flat: Vec<f32> = probs.into_data().try_to_vec().unwrap_or_default();
        for (&k, row) in positions.iter().zip(flat.chunks(classes)) {
            rows[k] = row.to_vec();
        }
    }
    rows
}

/// Convenience: whether `dir` holds a checkpoint of a finished training run.
pub fn is_finished(dir: &Path) -> bool {
    Checkpointer::new(dir)
        .load_state()
        .ok()
        .flatten()
        .is_some_and(|s| s.finished)
}
