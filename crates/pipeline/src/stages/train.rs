//! `train.classifier`: trains a convolutional classifier on every fold of a split (and
//! optionally a final model on all data), keeping each fold's held-out predictions.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use profundo_core::augment::Augment2dConfig;
use profundo_core::augment::Augmenter;
use profundo_core::backend;
use profundo_core::manifest::{Manifest, save_conv_ensemble};
use profundo_core::model::{BatchNormScope, Classifier, ConvClassifierConfig};
use profundo_core::train::{
    Checkpointer, Examples, TrainConfig, TrainOutcome, predict_proba, train_classifier,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::StageError;
use crate::artifacts::{FeatureSet, FoldModel, ItemMeta, Prediction, Split, TrainedClassifier};
use crate::registry::{Artifact, Slot, StageContext, TypedStage, input};

/// Parameters of `train.classifier`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrainParams {
    /// The network.
    pub model: ConvClassifierConfig,
    /// Further networks trained on the same data; their class probabilities are averaged
    /// with `model`'s (an ensemble), in evaluation and in the exported model.
    pub ensemble: Vec<ConvClassifierConfig>,
    /// Optimisation settings.
    pub training: TrainConfig,
    /// On-the-fly augmentation of the 2-D inputs (time shift, SpecAugment masks).
    pub augment: Augment2dConfig,
    /// Fraction of training items (by original item) held out to pick the best epoch and
    /// stop early; never the test items.
    pub valid_fraction: f64,
    /// Also train a `final` model on all items (test folds included) for export.
    pub final_fit: bool,
    /// Train only these folds (default: all).
    pub folds: Vec<String>,
    /// Task name written to the model manifest.
    pub task: String,
    /// Batch norm over mixed groups (`"pooled"`) or per group (`"group"`: each training
    /// batch holds one speaker's items, and each held-out speaker is normalised with the
    /// statistics of all its items, unlabelled; the exported model does the same for
    /// several clips of one speaker).
    pub batch_norm: BatchNormScope,
}

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            model: ConvClassifierConfig::default(),
            ensemble: Vec::new(),
            training: TrainConfig::default(),
            augment: Augment2dConfig::default(),
            valid_fraction: 0.1,
            final_fit: false,
            folds: Vec::new(),
            task: "classification".into(),
            batch_norm: BatchNormScope::Pooled,
        }
    }
}

/// Trains a classifier per fold.
pub struct TrainClassifier;

impl TypedStage for TrainClassifier {
    type Params = TrainParams;
    const KIND: &'static str = "train.classifier";
    const DOC: &'static str =
        "Train a conv classifier on each fold of a split (+ an optional final model on all data)";
    const INPUTS: &'static [Slot] = &[
        Slot {
            name: "features",
            accepts: &[FeatureSet::TYPE],
            optional: false,
        },
        Slot {
            name: "split",
            accepts: &[Split::TYPE],
            optional: false,
        },
    ];
    const OUTPUT: &'static str = TrainedClassifier::TYPE;

    fn check(p: &Self::Params) -> Result<(), (String, String)> {
        p.model
            .check()
            .map_err(|e| ("model".to_string(), e.to_string()))?;
        for m in &p.ensemble {
            m.check()
                .map_err(|e| ("ensemble".to_string(), e.to_string()))?;
        }
        p.training
            .check()
            .map_err(|e| ("training".to_string(), e.to_string()))?;
        if !(0.0..0.9).contains(&p.valid_fraction) {
            return Err((
                "valid_fraction".into(),
                format!("must be in [0, 0.9), got {}", p.valid_fraction),
            ));
        }
        Ok(())
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let fs: &FeatureSet = input(inputs, 0)?;
        let split: &Split = input(inputs, 1)?;
        let labels = fs.items.label_ids();
        let groups = (p.batch_norm == BatchNormScope::Group).then(|| fs.items.group_ids());
        let data = Examples {
            x: &fs.data,
            shape: fs.shape,
            labels: &labels,
            groups: groups.as_deref(),
        };
        let device = backend::train_device(ctx.backend, &ctx.device)?;
        let plain = device.clone().inner();

        let mut jobs: Vec<(String, Vec<usize>, Vec<usize>)> = Vec::new();
        for fold in &split.folds {
            if !p.folds.is_empty() && !p.folds.contains(&fold.name) {
                continue;
            }
            let (train, test) = fold.partition(&fs.items.items);
            jobs.push((fold.name.clone(), train, test));
        }
        if jobs.is_empty() {
            return Err(StageError::Other(format!(
                "no fold selected; folds of the split: {}",
                split
                    .folds
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if p.final_fit {
            let all = &fs.items.items;
            jobs.push((
                "final".into(),
                (0..all.len()).filter(|&i| !all[i].is_view()).collect(),
                Vec::new(),
            ));
        }
        let models_root = ctx.work_dir.join("models");
        let mut models = Vec::new();
        for (fold, train_all, test) in jobs {
            let seed = fold_seed(ctx.seed, &fold);
            let (train, valid) =
                cut_validation(&fs.items.items, &train_all, p.valid_fraction, seed);
            let views = test_views(&fs.items.items, &test);
            ctx.log(&format!(
                "fold {fold}: {} train, {} valid, {} test items, {} test-time views each",
                train.len(),
                valid.len(),
                test.len(),
                views.len()
            ));
            let configs: Vec<&ConvClassifierConfig> =
                std::iter::once(&p.model).chain(&p.ensemble).collect();
            let fold_training = FoldTraining {
                data,
                train: &train,
                valid: &valid,
                config: &p.training,
                augment: &p.augment,
                device: &device,
            };
            let t0 = Instant::now();
            let mut members = Vec::with_capacity(configs.len());
            // History, best epoch and stop reason reported for the fold: member 0's.
            let mut first = None;
            // Held-out probabilities of every member on the test items and on each view.
            let mut parts: Vec<Vec<Vec<f32>>> = Vec::new();
            for (k, cfg) in configs.iter().enumerate() {
                // Member 0 keeps the fold's seed and checkpoint folder, so a single model
                // trains exactly as it would without an ensemble.
                let tag = member_tag(&fold, k);
                let out = fold_training.member(ctx, &tag, seed.wrapping_add(k as u64), |d| {
                    cfg.init(fs.shape, fs.items.labels.len(), d)
                })?;
                for r in &out.history {
                    ctx.log(&format!(
                        "fold {tag} epoch {}: loss {:.4} acc {:.4} valid_loss {} valid_acc {} lr {:.2e}",
                        r.epoch,
                        r.train_loss,
                        r.train_accuracy,
                        r.valid_loss.map_or("-".into(), |v| format!("{v:.4}")),
                        r.valid_accuracy.map_or("-".into(), |v| format!("{v:.4}")),
                        r.lr
                    ));
                }
                let model = out.model.valid();
                // The test items, then each of their views (a view's items pass through
                // together, so batch norm per speaker sees one speaker in one view).
                for idx in std::iter::once(&test).chain(views.iter().map(|(_, v)| v)) {
                    parts.push(predict_proba(&model, data, idx, 256, &plain));
                }
                members.push(model);
                if k == 0 {
                    first = Some((out.history, out.best_epoch, out.stop));
                }
            }
            let probs = profundo_core::metrics::mean_rows(parts);
            let seconds = t0.elapsed().as_secs_f64();
            let (history, best_epoch, stop) =
                first.ok_or_else(|| StageError::Other("no network to train".into()))?;
            let predictions: Vec<Prediction> = test
                .iter()
                .zip(probs)
                .map(|(&i, probs)| Prediction {
                    name: fs.items.items[i].name.clone(),
                    group: fs.items.items[i].group.clone(),
                    truth: labels[i],
                    probs,
                })
                .collect();
            if !predictions.is_empty() {
                let hits = predictions
                    .iter()
                    .filter(|pr| argmax(&pr.probs) == pr.truth)
                    .count();
                ctx.log(&format!(
                    "fold {fold}: held-out accuracy {:.4} ({hits}/{})",
                    hits as f64 / predictions.len() as f64,
                    predictions.len()
                ));
            }
            let rel = format!("fold-{}", sanitize(&fold));
            let dir = models_root.join(&rel);
            let manifest = Manifest {
                format: 1,
                kind: "conv_classifier".into(),
                task: p.task.clone(),
                profundo_version: profundo_core::VERSION.into(),
                created: chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                model: serde_json::to_value(&configs).unwrap_or_default(),
                input_shape: fs.shape,
                labels: fs.items.labels.clone(),
                features: serde_json::from_str(&fs.extractor).unwrap_or_default(),
                training: serde_json::json!({
                    "config": p.training,
                    "augment": p.augment,
                    "fold": fold,
                    "train_items": train.len(),
                    "valid_items": valid.len(),
                    "best_epoch": best_epoch,
                    "stop": stop,
                    "seed": seed,
                    "backend": ctx.backend.to_string(),
                    "batch_norm": p.batch_norm,
                    "views": views.iter().map(|(name, _)| name).collect::<Vec<_>>(),
                }),
                metrics: serde_json::json!({}),
                dataset_fingerprint: fs.fingerprint.clone(),
                decision: serde_json::Value::Null,
            };
            save_conv_ensemble(&dir, &members, &manifest)?;
            profundo_core::fsutil::write_json_atomic(&dir.join("history.json"), &history)?;
            profundo_core::plots::training_curves(
                &dir.join("training.png"),
                &format!("{} — fold {fold}", ctx.stage),
                &history,
            )?;
            models.push(FoldModel {
                fold,
                model_dir: rel,
                history,
                best_epoch,
                stop,
                seconds,
                predictions,
            });
        }
        Ok(Arc::new(TrainedClassifier {
            labels: fs.items.labels.clone(),
            protocol: split.protocol.clone(),
            models,
            root: models_root,
        }))
    }
}

/// The test-time views of the held-out items (`ItemMeta::view`): for each view name,
/// in name order, the index of every test item's view, in `test`'s order. A view that some
/// test item lacks is left out. With no test items, every view name present is kept.
pub fn test_views(items: &[ItemMeta], test: &[usize]) -> Vec<(String, Vec<usize>)> {
    let mut of: HashMap<(&str, &str), usize> = HashMap::new();
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for (i, it) in items.iter().enumerate() {
        if let Some(v) = it.view.as_deref() {
            of.insert((it.origin(), v), i);
            names.insert(v);
        }
    }
    names
        .into_iter()
        .filter_map(|v| {
            let idx: Option<Vec<usize>> = test
                .iter()
                .map(|&t| of.get(&(items[t].name.as_str(), v)).copied())
                .collect();
            idx.map(|idx| (v.to_string(), idx))
        })
        .collect()
}

/// Index of the largest value.
pub fn argmax(v: &[f32]) -> usize {
    profundo_core::metrics::top_k_indices(v, 1)
        .first()
        .copied()
        .unwrap_or(0)
}

/// A fold name made safe for a directory name.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What every network of one fold trains on: the examples, the fold's training and
/// validation items, the training settings and the augmentation.
pub struct FoldTraining<'a> {
    /// The examples (all items; `train` and `valid` index them).
    pub data: Examples<'a>,
    /// Items fitted on.
    pub train: &'a [usize],
    /// Items that pick the best epoch.
    pub valid: &'a [usize],
    /// Epochs, batch size, optimiser and schedule.
    pub config: &'a TrainConfig,
    /// On-the-fly augmentation of the training batches.
    pub augment: &'a dyn Augmenter,
    /// The training (autodiff) device.
    pub device: &'a Device,
}

impl FoldTraining<'_> {
    /// Trains one network tagged `tag` (see [`member_tag`]): seeds the device with `seed`,
    /// builds the model with `init`, and trains it with checkpoints under the stage's
    /// `checkpoints/<tag>`, so an interrupted run resumes it; a resume is logged.
    pub fn member<M: Classifier>(
        &self,
        ctx: &mut StageContext,
        tag: &str,
        seed: u64,
        init: impl FnOnce(&Device) -> M,
    ) -> Result<TrainOutcome<M>, StageError> {
        self.device.seed(seed);
        let model = init(self.device);
        let ck = Checkpointer::new(&ctx.work_dir.join("checkpoints").join(tag));
        let out = train_classifier(
            model,
            self.data,
            self.train,
            self.valid,
            self.config,
            self.augment,
            seed,
            self.device,
            Some(&ck),
            &format!("{}:{tag}", ctx.stage),
        )?;
        if let Some(e) = out.resumed_from {
            ctx.log(&format!(
                "fold {tag}: resumed from the checkpoint after epoch {e}"
            ));
        }
        Ok(out)
    }
}

/// The tag of ensemble member `k` of fold `fold` (its checkpoint folder and log label):
/// member 0 keeps the fold's own, so a single model resumes exactly as before ensembles.
pub fn member_tag(fold: &str, k: usize) -> String {
    match k {
        0 => fold.to_string(),
        _ => format!("{fold}-m{k}"),
    }
}

/// The seed of one fold: the pipeline seed mixed with the fold name.
pub fn fold_seed(seed: u64, fold: &str) -> u64 {
    let h = blake3::hash(fold.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    seed ^ u64::from_le_bytes(b)
}

/// Splits training indices into (train, valid), holding out `fraction` of the original
/// items together with their augmented copies (so validation never sees a near-duplicate
/// of a training item), and validating on originals only.
pub fn cut_validation(
    items: &[crate::artifacts::ItemMeta],
    train: &[usize],
    fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    if fraction <= 0.0 {
        return (train.to_vec(), Vec::new());
    }
    let mut origins: Vec<&str> = train.iter().map(|&i| items[i].origin()).collect();
    origins.sort();
    origins.dedup();
    origins.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x5EED));
    let n_valid = ((origins.len() as f64) * fraction).round() as usize;
    let held: std::collections::HashSet<&str> = origins[..n_valid.min(origins.len())]
        .iter()
        .copied()
        .collect();
    let (mut t, mut v) = (Vec::new(), Vec::new());
    for &i in train {
        if held.contains(items[i].origin()) {
            if !items[i].is_augmented() {
                v.push(i);
            }
        } else {
            t.push(i);
        }
    }
    (t, v)
}
