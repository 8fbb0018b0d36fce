//! Training the Transformer: Adam with warm-up then inverse-square-root decay (or cosine),
//! label-smoothed cross-entropy over non-padding tokens, gradient-norm clipping, a
//! wall-clock budget, dev BLEU at intervals (the best model is kept), and checkpoints that
//! let an interrupted run continue where it stopped.

use profundo_pipeline::ParamError;
use std::path::Path;
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor};
use profundo_core::fsutil::{read_json, write_json_atomic};
use profundo_core::seed::derive as derive_seed;
use profundo_core::train::{CheckpointState as State, Checkpointer};
use serde::{Deserialize, Serialize};

use crate::batching::{Direction, Example, batches};
use crate::decode::{DecodeConfig, Specials, decode};
use crate::error::{Result, TranslateError};
use crate::model::{ModelConfig, Padded, Seq2Seq};
use crate::sacrebleu::corpus_bleu;
use crate::tokenizer::Subword;

/// Learning-rate schedule after warm-up.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// `lr x sqrt(warmup / step)` (the Transformer paper's decay).
    #[default]
    InverseSqrt,
    /// Cosine from `lr` to zero over `epochs` epochs.
    Cosine,
}

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Passes over the training data at most.
    pub epochs: usize,
    /// Padded tokens (source + target) per batch.
    pub batch_tokens: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// Decay after warm-up.
    pub schedule: LrSchedule,
    /// Label smoothing of the cross-entropy.
    pub label_smoothing: f32,
    /// Clip the global gradient norm to this (0 = off).
    pub grad_clip: f32,
    /// Stop after this many minutes of training (over all sessions), then evaluate.
    pub budget_minutes: Option<f64>,
    /// Measure dev BLEU (greedy) every this many minutes of training, and at the end of
    /// every epoch; the best model is kept.
    pub eval_minutes: f64,
    /// Dev sentences per direction used for that BLEU (0 = all).
    pub dev_sentences: usize,
    /// Save a checkpoint at most this many minutes apart (and at every evaluation).
    pub checkpoint_minutes: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 30,
            batch_tokens: 3072,
            lr: 1e-3,
            warmup_steps: 400,
            schedule: LrSchedule::InverseSqrt,
            label_smoothing: 0.1,
            grad_clip: 1.0,
            budget_minutes: None,
            eval_minutes: 5.0,
            dev_sentences: 500,
            checkpoint_minutes: 5.0,
        }
    }
}

impl TrainConfig {
    /// Checks the settings; the error names the field.
    pub fn check(&self) -> std::result::Result<(), ParamError> {
        let bad = |f: &str, m: String| Err(ParamError::rule(f, m));
        if self.epochs == 0 {
            return bad("epochs", "must be positive".into());
        }
        if self.batch_tokens < 16 {
            return bad(
                "batch_tokens",
                format!("must be at least 16, got {}", self.batch_tokens),
            );
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", format!("must be positive, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad(
                "label_smoothing",
                format!("must be in [0, 1), got {}", self.label_smoothing),
            );
        }
        if self.budget_minutes.is_some_and(|b| b.is_nan() || b <= 0.0) {
            return bad("budget_minutes", "must be positive".into());
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(self.eval_minutes) || !positive(self.checkpoint_minutes) {
            return bad(
                "eval_minutes",
                "eval_minutes and checkpoint_minutes must be positive".into(),
            );
        }
        Ok(())
    }

    /// Learning rate at optimizer step `step` (1-based) of `total` planned steps.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        let step = step.max(1) as f64;
        let warm = self.warmup_steps.max(1) as f64;
        if step < warm {
            return self.lr * step / warm;
        }
        match self.schedule {
            LrSchedule::InverseSqrt => self.lr * (warm / step).sqrt(),
            LrSchedule::Cosine => {
                let span = (total as f64 - warm).max(1.0);
                let t = ((step - warm) / span).min(1.0);
                self.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

/// One dev evaluation during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevPoint {
    /// Optimizer steps so far.
    pub step: usize,
    /// Epochs (fractional) so far.
    pub epoch: f64,
    /// Training minutes so far.
    pub minutes: f64,
    /// Mean training loss since the previous point.
    pub train_loss: f64,
    /// Dev BLEU (greedy) per direction, in `directions` order.
    pub dev_bleu: Vec<f64>,
    /// Their mean.
    pub mean_bleu: f64,
}

/// Where training stands; saved with every checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Optimizer steps done.
    pub step: usize,
    /// Current epoch (0-based).
    pub epoch: usize,
    /// Batches of the current epoch done.
    pub batch: usize,
    /// Training seconds over all sessions.
    pub elapsed_s: f64,
    /// Dev evaluations.
    pub curve: Vec<DevPoint>,
    /// Index into `curve` of the best model (by mean dev BLEU).
    pub best: Option<usize>,
    /// Why training ended (None while it runs).
    pub stop: Option<String>,
}

/// The result of [`train`].
pub struct Trained {
    /// The model of the best dev evaluation (inference device).
    pub model: Seq2Seq,
    /// The whole history.
    pub progress: Progress,
    /// Whether this call continued an interrupted run.
    pub resumed: bool,
}

/// Dev data for model selection: per direction, source ids and reference texts.
pub struct DevSet {
    /// The direction.
    pub direction: Direction,
    /// Model inputs.
    pub sources: Vec<Vec<u32>>,
    /// References.
    pub references: Vec<String>,
}

/// Label-smoothed cross-entropy, mean over non-padding targets (and their count).
pub fn smoothed_loss(logits: Tensor<3>, targets: &Padded, smoothing: f32) -> Tensor<1> {
    let [b, t, v] = logits.dims();
    let lp = log_softmax(logits.reshape([b * t, v]), 1);
    let tgt = targets.ids.clone().reshape([b * t, 1]);
    let nll = lp.clone().gather(1, tgt).reshape([b * t]).neg();
    let uniform = lp.mean_dim(1).reshape([b * t]).neg();
    let per = nll * (1.0 - smoothing as f64) + uniform * smoothing as f64;
    let keep = targets.mask.clone().reshape([b * t]).bool_not().float();
    let n = keep.clone().sum();
    (per * keep).sum() / n.clamp_min(1.0)
}

/// Source, target-in (`<s>` + target) and target-out (target + `</s>`) tensors of a batch.
pub fn batch_tensors(
    examples: &[Example],
    ids: &[u32],
    sp: Specials,
    device: &Device,
) -> (Padded, Tensor<2, Int>, Padded) {
    let src: Vec<Vec<u32>> = ids
        .iter()
        .map(|&i| examples[i as usize].src.clone())
        .collect();
    let (mut tin, mut tout) = (Vec::new(), Vec::new());
    for &i in ids {
        let t = &examples[i as usize].tgt;
        let mut a = Vec::with_capacity(t.len() + 1);
        a.push(sp.bos);
        a.extend(t);
        let mut b = t.clone();
        b.push(sp.eos);
        tin.push(a);
        tout.push(b);
    }
    (
        Padded::new(&src, sp.pad, device),
        Padded::new(&tin, sp.pad, device).ids,
        Padded::new(&tout, sp.pad, device),
    )
}

/// Greedy dev BLEU per direction.
pub fn dev_bleu(
    model: &Seq2Seq,
    dev: &[DevSet],
    tok: &Subword,
    device: &Device,
) -> Result<Vec<f64>> {
    let sp = specials(tok);
    let mut out = Vec::new();
    for d in dev {
        let hyps = decode(model, &d.sources, &DecodeConfig::default(), sp, device);
        let texts = hyps
            .iter()
            .map(|h| tok.decode(h))
            .collect::<Result<Vec<_>>>()?;
        let bleu = corpus_bleu(&texts, &d.references)
            .map_err(|e| TranslateError::Training(e.to_string()))?;
        out.push(bleu.score);
    }
    Ok(out)
}

/// The special ids of `tok`.
pub fn specials(tok: &Subword) -> Specials {
    Specials {
        pad: tok.pad,
        bos: tok.bos,
        eos: tok.eos,
    }
}

const PROGRESS: &str = "progress";

/// Trains a model of `cfg` on `examples`, choosing the best by dev BLEU; checkpoints in
/// `checkpoints` (continued from there when a previous run left one).
#[allow(clippy::too_many_arguments)]
pub fn train(
    model_cfg: &ModelConfig,
    cfg: &TrainConfig,
    examples: &[Example],
    dev: &[DevSet],
    tok: &Subword,
    seed: u64,
    device: &Device,
    checkpoints: &Path,
) -> Result<Trained> {
    let sp = specials(tok);
    let infer_device = device.clone().inner();
    // Initialisation and every step's dropout draw from the device's generator, seeded
    // per step: identical runs repeat exactly, and a resumed one continues as it would have.
    device.seed(derive_seed(seed, "translate.init", 0));
    let mut model = model_cfg.init(tok.vocab_size(), device);
    let mut optim = AdamConfig::new()
        .with_beta_2(0.98)
        .with_epsilon(1e-9)
        .with_grad_clipping(
            (cfg.grad_clip > 0.0).then_some(GradientClippingConfig::Norm(cfg.grad_clip)),
        )
        .init();
    let mut best = model.clone();
    let ck = Checkpointer::new(checkpoints);
    let mut progress = Progress::default();
    let mut resumed = false;
    let saved = ck.load_state()?;
    let mut saves = saved.as_ref().map_or(0, |s| s.epochs_done);
    if let Some(state) = saved {
        let (m, o, b) = ck.restore(&state, model, optim, best)?;
        (model, optim, best) = (m, o, b);
        progress = read_json(&checkpoints.join(format!("{PROGRESS}-{}.json", state.epochs_done)))?;
        resumed = true;
        tracing::info!(
            "resuming at step {} (epoch {}, {:.1} min trained)",
            progress.step,
            progress.epoch + 1,
            progress.elapsed_s / 60.0
        );
        if progress.stop.is_some() {
            return Ok(Trained {
                model: best.valid(),
                progress,
                resumed,
            });
        }
    }
    let per_epoch = batches(examples, cfg.batch_tokens, seed).len();
    let total_steps = per_epoch * cfg.epochs;
    let budget_s = cfg.budget_minutes.map(|m| m * 60.0);
    let session = Instant::now();
    let base_elapsed = progress.elapsed_s;
    let mut last_eval = progress.curve.last().map_or(0.0, |p| p.minutes * 60.0);
    let mut last_save = base_elapsed;
    let (mut loss_sum, mut loss_n) = (0.0f64, 0usize);
    let mut last_log = Instant::now();
    let mut save = |progress: &Progress,
                    model: &Seq2Seq,
                    optim: &burn::optim::ModuleOptimizer,
                    best: &Seq2Seq|
     -> Result<()> {
        saves += 1;
        write_json_atomic(
            &checkpoints.join(format!("{PROGRESS}-{saves}.json")),
            progress,
        )?;
        let state = State {
            epochs_done: saves,
            elapsed_s: progress.elapsed_s,
            ..State::default()
        };
        ck.save(&state, model, optim, best)?;
        let _ = std::fs::remove_file(checkpoints.join(format!("{PROGRESS}-{}.json", saves - 1)));
        Ok(())
    };
    while progress.epoch < cfg.epochs && progress.stop.is_none() {
        let order = batches(
            examples,
            cfg.batch_tokens,
            seed.wrapping_add(progress.epoch as u64),
        );
        while progress.batch < order.len() {
            let ids = &order[progress.batch];
            device.seed(derive_seed(seed, "translate.step", progress.step as u64));
            let (src, tin, tout) = batch_tensors(examples, ids, sp, device);
            let memory = model.encode(&src);
            let logits = model.forward(&memory, tin);
            let loss = smoothed_loss(logits, &tout, cfg.label_smoothing);
            let value = loss.clone().into_scalar::<f32>() as f64;
            if !value.is_finite() {
                return Err(TranslateError::Training(format!(
                    "loss became {value} at step {}: lower `lr` or raise `warmup_steps`",
                    progress.step + 1
                )));
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            progress.step += 1;
            model = optim.step(cfg.lr_at(progress.step, total_steps), model, grads);
            progress.batch += 1;
            loss_sum += value;
            loss_n += 1;
            progress.elapsed_s = base_elapsed + session.elapsed().as_secs_f64();
            if last_log.elapsed().as_secs() >= 30 {
                tracing::info!(
                    "epoch {} batch {}/{} step {}: loss {:.3}, {:.1} min",
                    progress.epoch + 1,
                    progress.batch,
                    order.len(),
                    progress.step,
                    loss_sum / loss_n.max(1) as f64,
                    progress.elapsed_s / 60.0
                );
                last_log = Instant::now();
            }
            let out_of_budget = budget_s.is_some_and(|b| progress.elapsed_s >= b);
            let epoch_end = progress.batch == order.len();
            if out_of_budget {
                progress.stop = Some("budget".into());
            } else if epoch_end && progress.epoch + 1 == cfg.epochs {
                progress.stop = Some("completed".into());
            }
            let eval_due = progress.elapsed_s - last_eval >= cfg.eval_minutes * 60.0;
            if eval_due || epoch_end || progress.stop.is_some() {
                let inference = model.valid();
                let bleu = dev_bleu(&inference, dev, tok, &infer_device)?;
                let mean = bleu.iter().sum::<f64>() / bleu.len().max(1) as f64;
                let point = DevPoint {
                    step: progress.step,
                    epoch: progress.epoch as f64 + progress.batch as f64 / order.len() as f64,
                    minutes: progress.elapsed_s / 60.0,
                    train_loss: loss_sum / loss_n.max(1) as f64,
                    dev_bleu: bleu,
                    mean_bleu: mean,
                };
                tracing::info!(
                    "step {} ({:.2} epochs, {:.1} min): train loss {:.3}, dev BLEU {:.2}",
                    point.step,
                    point.epoch,
                    point.minutes,
                    point.train_loss,
                    point.mean_bleu
                );
                let better = progress
                    .best
                    .is_none_or(|b| mean > progress.curve[b].mean_bleu);
                progress.curve.push(point);
                if better {
                    progress.best = Some(progress.curve.len() - 1);
                    best = model.clone();
                }
                (loss_sum, loss_n) = (0.0, 0);
                last_eval = progress.elapsed_s;
            }
            if epoch_end {
                progress.epoch += 1;
                progress.batch = 0;
            }
            if progress.stop.is_some()
                || eval_due
                || epoch_end
                || progress.elapsed_s - last_save >= cfg.checkpoint_minutes * 60.0
            {
                save(&progress, &model, &optim, &best)?;
                last_save = progress.elapsed_s;
            }
            if progress.stop.is_some() || epoch_end {
                break;
            }
        }
    }
    Ok(Trained {
        model: best.valid(),
        progress,
        resumed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn the_schedule_warms_up_then_decays() {
        let cfg = TrainConfig {
            lr: 1e-3,
            warmup_steps: 100,
            ..TrainConfig::default()
        };
        assert!((cfg.lr_at(50, 1000) - 5e-4).abs() < 1e-12);
        assert!((cfg.lr_at(100, 1000) - 1e-3).abs() < 1e-12);
        assert!((cfg.lr_at(400, 1000) - 5e-4).abs() < 1e-12);
        let cos = TrainConfig {
            schedule: LrSchedule::Cosine,
            ..cfg
        };
        assert!((cos.lr_at(550, 1000) - 5e-4).abs() < 1e-9);
        assert!(cos.lr_at(1000, 1000).abs() < 1e-12);
    }

    #[test]
    fn smoothed_loss_ignores_padding_and_matches_a_hand_computation() {
        let device = Device::flex();
        // Two positions, vocabulary 2; the second target is padding (id 0).
        let logits = Tensor::<3>::from_data(
            TensorData::new(vec![0.0f32, 0.0, 5.0, -5.0], [1, 2, 2]),
            &device,
        );
        let targets = Padded::new(&[vec![1, 0]], 0, &device);
        let targets = Padded {
            mask: Tensor::from_data(TensorData::new(vec![false, true], [1, 2]), &device),
            ..targets
        };
        let l: f32 = smoothed_loss(logits, &targets, 0.2).into_scalar();
        // Position 0: uniform logits, -log(0.5) for both terms.
        assert!((l - std::f32::consts::LN_2).abs() < 1e-5, "{l}");
    }

    #[test]
    fn a_budget_stops_training_and_a_finished_run_resumes_without_training_again() {
        let langs = vec!["en".to_string(), "es".to_string()];
        let pairs = [
            ("hello world", "hola mundo"),
            ("good morning", "buenos días"),
        ];
        let texts: Vec<&str> = pairs.iter().flat_map(|(a, b)| [*a, *b]).collect();
        let tok = Subword::train(texts.into_iter(), &langs, 300, 1).unwrap();
        let mut examples = Vec::new();
        for (en, es) in pairs {
            let src = crate::batching::source_ids(&tok, es, "en", 16).unwrap();
            examples.push(Example {
                src,
                tgt: tok.encode(en).unwrap(),
            });
        }
        let dev = vec![DevSet {
            direction: "es-en".parse().unwrap(),
            sources: examples.iter().map(|e| e.src.clone()).collect(),
            references: pairs.iter().map(|p| p.0.to_string()).collect(),
        }];
        let model = ModelConfig {
            d_model: 16,
            heads: 2,
            d_ff: 32,
            encoder_layers: 1,
            decoder_layers: 1,
            dropout: 0.0,
            max_len: 16,
        };
        let cfg = TrainConfig {
            epochs: 5,
            batch_tokens: 16,
            warmup_steps: 1,
            budget_minutes: Some(1e-9),
            ..TrainConfig::default()
        };
        let device = Device::flex().autodiff();
        let dir = tempfile::tempdir().unwrap();
        let a = train(&model, &cfg, &examples, &dev, &tok, 3, &device, dir.path()).unwrap();
        assert_eq!(a.progress.stop.as_deref(), Some("budget"));
        assert_eq!(
            (a.progress.step, a.progress.curve.len(), a.resumed),
            (1, 1, false)
        );
        let b = train(&model, &cfg, &examples, &dev, &tok, 3, &device, dir.path()).unwrap();
        assert!(b.resumed);
        assert_eq!(
            b.progress, a.progress,
            "a finished run is loaded, not trained again"
        );
    }
}
