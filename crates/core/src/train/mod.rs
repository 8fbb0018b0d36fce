//! One shared training loop for classifiers: seeded determinism, per-epoch metrics, early
//! stopping, a checkpoint every epoch, resume after an interruption, NaN/inf detection,
//! learning-rate schedules and a wall-clock budget.
//!
//! Determinism: every epoch draws its shuffling and augmentation from an RNG seeded by
//! `(seed, epoch)` and re-seeds the device before the epoch, so an interrupted run resumed
//! from its last checkpoint follows exactly the path of an uninterrupted one.

mod checkpoint;
mod schedule;

use std::path::Path;
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

pub use checkpoint::{Checkpointer, State as CheckpointState};
pub use schedule::{LrPlan, Schedule};

use crate::augment::Augmenter;
use crate::model::{Classifier, NormStats};
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

/// Training examples in memory: `n` items of `shape = [channels, rows, cols]` each.
#[derive(Debug, Clone, Copy)]
pub struct Examples<'a> {
    /// Concatenated item values, `n * channels * rows * cols`.
    pub x: &'a [f32],
    /// Shape of one item.
    pub shape: [usize; 3],
    /// Class index of each item.
    pub labels: &'a [usize],
    /// Group index of each item (its speaker), for batch norm per group
    /// ([`crate::model::BatchNormScope::Group`]): every training batch then holds one
    /// group's items, and evaluation passes each group's items as one batch normalised
    /// with their own statistics. `None`: batches mix groups, evaluation uses the running
    /// statistics.
    pub groups: Option<&'a [usize]>,
}

impl Examples<'_> {
    fn item_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// A batch tensor of the items at `idx`, optionally augmented.
    fn batch(
        &self,
        idx: &[usize],
        device: &Device,
        augment: Option<(&dyn Augmenter, &mut StdRng)>,
    ) -> Tensor<4> {
        let len = self.item_len();
        let mut buf = Vec::with_capacity(idx.len() * len);
        for &i in idx {
            buf.extend_from_slice(&self.x[i * len..(i + 1) * len]);
        }
        if let Some((cfg, rng)) = augment {
            for item in buf.chunks_mut(len) {
                cfg.apply(item, self.shape, rng);
            }
        }
        let [c, h, w] = self.shape;
        Tensor::from_data(TensorData::new(buf, [idx.len(), c, h, w]), device)
    }

    fn targets(&self, idx: &[usize], device: &Device) -> Tensor<1, Int> {
        let t: Vec<i64> = idx.iter().map(|&i| self.labels[i] as i64).collect();
        Tensor::from_data(TensorData::new(t, [idx.len()]), device)
    }

    /// How many training batches an epoch over `train` has ([`Self::training_batches`]).
    fn batch_count(&self, train: &[usize], batch_size: usize) -> usize {
        match self.groups {
            None => train.len().div_ceil(batch_size),
            Some(groups) => group_items(train, groups)
                .iter()
                .map(|items| items.len().div_ceil(batch_size))
                .sum(),
        }
    }

    /// One epoch's training batches of `order` (already shuffled): consecutive chunks of
    /// `batch_size`, or with groups, each group's items in order chunked on their own and
    /// the chunks shuffled.
    fn training_batches(
        &self,
        order: &[usize],
        batch_size: usize,
        rng: &mut StdRng,
    ) -> Vec<Vec<usize>> {
        let Some(groups) = self.groups else {
            return order.chunks(batch_size).map(<[usize]>::to_vec).collect();
        };
        let mut batches: Vec<Vec<usize>> = group_items(order, groups)
            .iter()
            .flat_map(|items| items.chunks(batch_size).map(<[usize]>::to_vec))
            .collect();
        batches.shuffle(rng);
        batches
    }

    /// How evaluation passes `idx` through batch norm: one pass per chunk of `batch_size`
    /// with the running statistics, or one pass per group with its own statistics
    /// ([`NormStats::for_group`]). Each pass: its positions in `idx`, its items, the stats.
    fn evaluation_batches(
        &self,
        idx: &[usize],
        batch_size: usize,
    ) -> Vec<(Vec<usize>, Vec<usize>, NormStats)> {
        let positions: Vec<usize> = (0..idx.len()).collect();
        let passes: Vec<(Vec<usize>, NormStats)> = match self.groups {
            None => positions
                .chunks(batch_size.max(1))
                .map(|c| (c.to_vec(), NormStats::Running))
                .collect(),
            Some(groups) => {
                let of_position: Vec<usize> = idx.iter().map(|&i| groups[i]).collect();
                group_items(&positions, &of_position)
                    .into_iter()
                    .map(|g| {
                        let stats = NormStats::for_group(g.len());
                        (g, stats)
                    })
                    .collect()
            }
        };
        passes
            .into_iter()
            .map(|(pos, stats)| {
                let items = pos.iter().map(|&k| idx[k]).collect();
                (pos, items, stats)
            })
            .collect()
    }
}

/// The entries of `idx` split by their group `groups[i]`, groups in order of first
/// appearance, each keeping `idx`'s order.
fn group_items(idx: &[usize], groups: &[usize]) -> Vec<Vec<usize>> {
    let mut slot: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    let mut out: Vec<Vec<usize>> = Vec::new();
    for &i in idx {
        let k = *slot.entry(groups[i]).or_insert_with(|| {
            out.push(Vec::new());
            out.len() - 1
        });
        out[k].push(i);
    }
    out
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

/// The result of [`train_classifier`].
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

/// Trains `model` (created on the autodiff `device`) on `train` items, choosing the best
/// epoch on `valid` items. With `checkpoints`, saves every epoch there and resumes from it.
#[allow(clippy::too_many_arguments)]
pub fn train_classifier<M: Classifier>(
    model: M,
    data: Examples<'_>,
    train: &[usize],
    valid: &[usize],
    cfg: &TrainConfig,
    augment: &dyn Augmenter,
    seed: u64,
    device: &Device,
    checkpoints: Option<&Checkpointer>,
    label: &str,
) -> Result<TrainOutcome<M>> {
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
    let mut optim = AdamWConfig::new()
        .with_weight_decay(cfg.weight_decay as f32)
        .with_grad_clipping(cfg.grad_clip.map(GradientClippingConfig::Norm))
        .init();
    let loss_fn = {
        let c = CrossEntropyLossConfig::new();
        let c = if cfg.label_smoothing > 0.0 {
            c.with_smoothing(Some(cfg.label_smoothing))
        } else {
            c
        };
        c.init(device)
    };
    let plain = device.clone().inner();

    let mut model = model;
    let mut state = checkpoint::State::default();
    // Replaced after the first epoch. Not a snapshot: that would initialise lazily
    // initialised parameters now, before the epoch's seeding, and change the run.
    let mut best = model.clone();
    let mut resumed_from = None;
    if let Some(ck) = checkpoints
        && let Some(saved) = ck.load_state()?
    {
        // The restored best epoch gets statistics of its own, not the model's.
        let (m, o, b) = ck.restore(&saved, model.clone(), optim, snapshot(&model))?;
        model = m;
        optim = o;
        best = b;
        resumed_from = Some(saved.epochs_done);
        tracing::info!("{label}: resuming after epoch {}", saved.epochs_done);
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

    let mut progress = Progress::new(label, (cfg.epochs * steps_per_epoch) as u64);
    progress.inc((state.epochs_done * steps_per_epoch) as u64, "resumed");
    let started = Instant::now();
    let mut stop = StopReason::Completed;
    let mut order = train.to_vec();
    for epoch in state.epochs_done + 1..=cfg.epochs {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(epoch_seed(seed, epoch));
        device.seed(epoch_seed(seed, epoch));
        order.copy_from_slice(train);
        order.shuffle(&mut rng);
        let batches = data.training_batches(&order, cfg.batch_size, &mut rng);
        let (mut loss_sum, mut hits, mut lr) = (0.0f64, 0usize, cfg.lr);
        for (b, idx) in batches.iter().map(Vec::as_slice).enumerate() {
            let step = (epoch - 1) * steps_per_epoch + b;
            lr = plan.at(step);
            let aug = augment.is_active().then_some((augment, &mut rng));
            let x = data.batch(idx, device, aug);
            let y = data.targets(idx, device);
            let logits = model.train_logits(x, y.clone());
            let loss = loss_fn.forward(logits.clone(), y.clone());
            let value = loss.clone().into_scalar::<f32>();
            if !value.is_finite() {
                progress.finish();
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
        let (valid_loss, valid_accuracy) = if valid.is_empty() {
            (None, None)
        } else {
            let (l, a) = evaluate(&model.valid(), data, valid, cfg.batch_size, &plain);
            (Some(l), Some(a))
        };
        let rec = EpochRecord {
            epoch,
            lr,
            train_loss: loss_sum / train.len() as f64,
            train_accuracy: hits as f64 / train.len() as f64,
            valid_loss,
            valid_accuracy,
            seconds: t0.elapsed().as_secs_f64(),
        };
        progress.println(&format!(
            "{label}: epoch {epoch:>3} lr {:.2e} loss {:.4} acc {:.4}{} ({:.1}s)",
            rec.lr,
            rec.train_loss,
            rec.train_accuracy,
            match (rec.valid_loss, rec.valid_accuracy) {
                (Some(l), Some(a)) => format!(" | valid loss {l:.4} acc {a:.4}"),
                _ => String::new(),
            },
            rec.seconds
        ));
        let score = (
            rec.valid_accuracy.unwrap_or(0.0),
            -rec.valid_loss.unwrap_or(rec.train_loss),
        );
        if valid.is_empty() || state.best_epoch == 0 || score > state.best_score() {
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
        if let Some(ck) = checkpoints {
            ck.save(&state, &model, &optim, &best)?;
        }
        if done {
            break;
        }
    }
    progress.finish();
    tracing::debug!(
        "{label}: trained in {:.1}s",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ConvClassifierConfig;

    /// One 4-channel 3x3 conv block over `[1, 4, 4]` inputs.
    fn tiny_net(classes: usize, device: &Device) -> crate::model::ConvClassifier {
        ConvClassifierConfig {
            channels: vec![4],
            kernel: 3,
            dropout: 0.0,
            temporal: false,
        }
        .init([1, 4, 4], classes, device)
    }

    fn tiny(
        x: Vec<f32>,
        labels: Vec<usize>,
        epochs: usize,
    ) -> Result<TrainOutcome<crate::model::ConvClassifier>> {
        let cfg = TrainConfig {
            epochs,
            batch_size: 4,
            lr: 0.05,
            ..TrainConfig::default()
        };
        tiny_with(x, labels, cfg)
    }

    fn tiny_with(
        x: Vec<f32>,
        labels: Vec<usize>,
        cfg: TrainConfig,
    ) -> Result<TrainOutcome<crate::model::ConvClassifier>> {
        let device = crate::backend::train_device(crate::backend::BackendKind::Flex, "cpu")?;
        device.seed(1);
        let model = tiny_net(2, &device);
        let data = Examples {
            x: &x,
            shape: [1, 4, 4],
            labels: &labels,
            groups: None,
        };
        let idx: Vec<usize> = (0..labels.len()).collect();
        train_classifier(
            model,
            data,
            &idx,
            &idx,
            &cfg,
            &crate::augment::Augment2dConfig::default(),
            1,
            &device,
            None,
            "test",
        )
    }

    #[test]
    fn nan_inputs_stop_training_with_a_clear_error() {
        let mut x = vec![0.5f32; 8 * 16];
        x[3] = f32::NAN;
        let err = tiny(x, vec![0, 1, 0, 1, 0, 1, 0, 1], 2)
            .err()
            .expect("must fail")
            .to_string();
        assert!(
            err.contains("loss became NaN") && err.contains("epoch 1, batch 1"),
            "{err}"
        );
    }

    #[test]
    fn the_budget_stops_training_after_the_epoch_that_exceeds_it() {
        let labels: Vec<usize> = (0..8).map(|i| i % 2).collect();
        let cfg = TrainConfig {
            epochs: 5,
            batch_size: 4,
            budget_s: Some(1e-9),
            ..TrainConfig::default()
        };
        let out = tiny_with(vec![0.1; 8 * 16], labels, cfg).unwrap();
        assert_eq!(out.history.len(), 1);
        assert_eq!(out.stop, StopReason::Budget);
    }

    #[test]
    fn group_batches_hold_one_group_each_and_cover_every_item_once() {
        let groups = [0, 1, 2, 0, 1, 2, 0, 1, 0, 0, 2];
        let labels = vec![0; groups.len()];
        let x = vec![0.0; groups.len()];
        let mut data = Examples {
            x: &x,
            shape: [1, 1, 1],
            labels: &labels,
            groups: Some(&groups),
        };
        let order = [10, 3, 7, 0, 5, 1, 9, 8, 2, 6, 4];
        let mut rng = StdRng::seed_from_u64(1);
        let batches = data.training_batches(&order, 2, &mut rng);
        // Group 0 has 5 items (3 batches), group 1 three (2), group 2 three (2).
        assert_eq!(batches.len(), 7);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..groups.len()).collect::<Vec<_>>());
        for b in &batches {
            assert!(
                b.len() <= 2 && b.iter().all(|&i| groups[i] == groups[b[0]]),
                "{b:?}"
            );
        }
        data.groups = None;
        let mixed = data.training_batches(&order, 4, &mut rng);
        assert_eq!(
            mixed,
            vec![vec![10, 3, 7, 0], vec![5, 1, 9, 8], vec![2, 6, 4]]
        );
    }

    #[test]
    fn grouped_prediction_normalises_each_group_alone_and_keeps_the_order() {
        let device = crate::backend::device(crate::backend::BackendKind::Flex, "cpu").unwrap();
        device.seed(2);
        let model = tiny_net(3, &device);
        // Two groups on different scales, interleaved.
        let groups = [0, 1, 0, 1, 0, 1];
        let x: Vec<f32> = (0..6 * 16)
            .map(|k| {
                let item = k / 16;
                let scale = if groups[item] == 0 { 1.0 } else { 5.0 };
                scale * ((k * 7919 % 23) as f32 / 23.0 - 0.5)
            })
            .collect();
        let labels = vec![0; 6];
        let mut data = Examples {
            x: &x,
            shape: [1, 4, 4],
            labels: &labels,
            groups: Some(&groups),
        };
        let idx = [5, 0, 3, 2];
        let got = predict_proba(&model, data, &idx, 256, &device);
        for (k, &i) in idx.iter().enumerate() {
            let members: Vec<usize> = idx
                .iter()
                .copied()
                .filter(|&j| groups[j] == groups[i])
                .collect();
            let probs = burn::tensor::activation::softmax(
                model.forward_with(
                    data.batch(&members, &device, None),
                    NormStats::for_group(members.len()),
                ),
                1,
            );
            let rows: Vec<f32> = probs.into_data().try_to_vec().unwrap();
            let at = members.iter().position(|&j| j == i).unwrap();
            let want = &rows[at * 3..at * 3 + 3];
            let diff = got[k]
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(diff < 1e-6, "item {i}: {:?} against {want:?}", got[k]);
        }
        data.groups = None;
        let running = predict_proba(&model, data, &idx, 256, &device);
        assert_ne!(got, running, "without groups, the running statistics");
    }

    /// Every float the module holds (weights and batch-norm running statistics), in order.
    fn float_values<M: burn::module::Module>(model: &M) -> Vec<f32> {
        struct Collect(Vec<f32>);
        impl burn::module::ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                self.0.extend(
                    param
                        .val()
                        .into_data()
                        .try_to_vec::<f32>()
                        .unwrap_or_default(),
                );
            }
        }
        let mut c = Collect(Vec::new());
        // `valid` folds pending running-statistic updates in first.
        model.valid().visit(&mut c);
        c.0
    }

    #[test]
    fn the_kept_best_epoch_does_not_follow_the_training_models_batch_norm_statistics() {
        let device =
            crate::backend::train_device(crate::backend::BackendKind::Flex, "cpu").unwrap();
        device.seed(3);
        let model = tiny_net(2, &device);
        let kept = snapshot(&model);
        let cloned = model.clone();
        let before = float_values(&kept);
        let x: Vec<f32> = (0..2 * 16).map(|k| (k % 7) as f32 - 2.0).collect();
        // A training-mode forward pass updates the running statistics.
        let _ = model.logits(Tensor::from_data(TensorData::new(x, [2, 1, 4, 4]), &device));
        let after = float_values(&model);
        assert_ne!(after, before, "the forward pass moves the statistics");
        assert_eq!(float_values(&cloned), after, "a clone shares them");
        assert_eq!(float_values(&kept), before, "a snapshot keeps its own");
    }

    #[test]
    fn a_resumed_run_ends_as_the_uninterrupted_one_with_or_without_validation_items() {
        for valid in [4, 0] {
            resume_matches_uninterrupted(valid);
        }
    }

    /// Trains 4 epochs on 16 items, the last `valid` of them held out, once without a stop
    /// and once stopped after the first epoch and resumed from its checkpoint.
    fn resume_matches_uninterrupted(valid: usize) {
        let labels: Vec<usize> = (0..16).map(|i| i % 2).collect();
        let x: Vec<f32> = (0..16 * 16)
            .map(|k| ((k * 31) % 17) as f32 / 8.0 - 1.0)
            .collect();
        let cfg = TrainConfig {
            epochs: 4,
            batch_size: 4,
            lr: 0.05,
            ..TrainConfig::default()
        };
        let device =
            crate::backend::train_device(crate::backend::BackendKind::Flex, "cpu").unwrap();
        // One initialisation for both runs: tests running in parallel share the device's
        // random generator.
        let initial = tiny_net(2, &device);
        let run = |cfg: &TrainConfig, dir: &Path| {
            let data = Examples {
                x: &x,
                shape: [1, 4, 4],
                labels: &labels,
                groups: None,
            };
            let idx: Vec<usize> = (0..16 - valid).collect();
            let valid: Vec<usize> = (16 - valid..16).collect();
            train_classifier(
                snapshot(&initial),
                data,
                &idx,
                &valid,
                cfg,
                &crate::augment::Augment2dConfig::default(),
                1,
                &device,
                Some(&Checkpointer::new(dir)),
                "test",
            )
            .unwrap()
        };
        let tmp = tempfile::tempdir().unwrap();
        let whole = run(&cfg, &tmp.path().join("whole"));
        assert_eq!(whole.history.len(), 4);

        // Stop after one epoch (the budget), mark the checkpoint unfinished, resume.
        let cut = tmp.path().join("cut");
        let first = TrainConfig {
            budget_s: Some(1e-9),
            ..cfg.clone()
        };
        assert_eq!(run(&first, &cut).history.len(), 1);
        let mut state = Checkpointer::new(&cut).load_state().unwrap().unwrap();
        (state.finished, state.stop) = (false, None);
        crate::fsutil::write_json_atomic(&cut.join("state.json"), &state).unwrap();
        let resumed = run(&cfg, &cut);
        assert_eq!(resumed.resumed_from, Some(1));
        let untimed = |h: &[EpochRecord]| -> Vec<EpochRecord> {
            h.iter()
                .map(|r| EpochRecord {
                    seconds: 0.0,
                    ..r.clone()
                })
                .collect()
        };
        assert_eq!(
            untimed(&resumed.history),
            untimed(&whole.history),
            "{valid} validation items"
        );
        assert_eq!(resumed.best_epoch, whole.best_epoch);
        assert_eq!(float_values(&resumed.model), float_values(&whole.model));
    }

    #[test]
    fn a_separable_toy_problem_is_learned() {
        // Class 1 items are bright, class 0 dark.
        let labels: Vec<usize> = (0..16).map(|i| i % 2).collect();
        let x: Vec<f32> = labels
            .iter()
            .flat_map(|&l| std::iter::repeat_n(if l == 1 { 1.0 } else { -1.0 }, 16))
            .collect();
        let out = tiny(x, labels, 8).unwrap();
        assert_eq!(out.history.len(), 8);
        let best = out.history[out.best_epoch - 1].valid_accuracy.unwrap();
        assert_eq!(best, 1.0, "{:?}", out.history);
    }
}
