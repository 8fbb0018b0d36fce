//! `speech.train`: trains the speech CNN ([`crate::model`]), or an ensemble of them, on
//! every fold of a split (and optionally a final model on all data) through the shared
//! loop, keeping each fold's held-out predictions; and the speech model directory (its
//! manifest section, saving and loading).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use profundo_core::augment::Augment2dConfig;
use profundo_core::backend;
use profundo_core::manifest::{
    Domain, ModelManifest, ModelSection, load_weights, save_weights, weights_file,
};
use profundo_core::train::{Examples, TrainConfig, predict_proba};
use profundo_pipeline::ParamError;
use profundo_pipeline::StageError;
use profundo_pipeline::artifacts::{FeatureSet, FoldModel, Split, TrainedClassifier};
use profundo_pipeline::registry::{Artifact, Slot, StageContext, TypedStage, input};
use profundo_pipeline::stages::{
    ClassificationSummary, FoldTraining, TrainingRecord, check_valid_fraction, cut_validation,
    fold_seed, held_out_predictions, log_history, member_tag, sanitize, test_views,
};
use serde::{Deserialize, Serialize};

use crate::input::FeatureConfig;
use crate::model::{BatchNormScope, ConvClassifier, ConvClassifierConfig, ConvEnsemble};
use crate::{Result, SpeechError};

/// The speech section of a model manifest: everything the recognizer needs besides the
/// weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeechModel {
    /// One network configuration per ensemble member (`model.safetensors`,
    /// `model-1.safetensors`, ...); their probabilities are averaged.
    pub networks: Vec<ConvClassifierConfig>,
    /// Shape of one input, `[channels, rows, frames]`.
    pub input_shape: [usize; 3],
    /// Class names in output order.
    pub labels: Vec<String>,
    /// How clips become inputs.
    pub features: FeatureConfig,
    /// Batch norm over mixed speakers or per speaker.
    pub batch_norm: BatchNormScope,
    /// Test-time views averaged into every prediction (e.g. `speed=0.9`).
    pub views: Vec<String>,
    /// How the model was trained.
    pub training: SpeechTraining,
}

/// How a speech model was trained.
pub type SpeechTraining = TrainingRecord<Augment2dConfig>;

impl ModelSection for SpeechModel {
    const DOMAIN: Domain = Domain::Speech;
    type Metrics = ClassificationSummary;
}

/// A speech model's manifest.
pub type SpeechManifest = ModelManifest<SpeechModel>;

/// Writes the members of an ensemble and `manifest` into `dir` (weights first, manifest
/// last).
pub fn save_ensemble(
    dir: &Path,
    members: &[ConvClassifier],
    manifest: &SpeechManifest,
) -> Result<()> {
    if members.len() != manifest.model.networks.len() {
        return Err(SpeechError::Config(format!(
            "{} networks but {} configurations in the manifest",
            members.len(),
            manifest.model.networks.len()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| profundo_core::CoreError::io(dir, e))?;
    for (i, model) in members.iter().enumerate() {
        save_weights(&dir.join(weights_file(i)), model)?;
    }
    Ok(manifest.save(dir)?)
}

/// Loads a speech model directory (one network or an ensemble) onto `device`.
pub fn load_ensemble(dir: &Path, device: &Device) -> Result<(ConvEnsemble, SpeechManifest)> {
    let manifest = SpeechManifest::load(dir)?;
    let m = &manifest.model;
    if m.networks.is_empty() {
        return Err(SpeechError::Config(format!(
            "{}: `model.networks` lists no network",
            dir.join(profundo_core::manifest::MANIFEST_FILE).display()
        )));
    }
    let mut members = Vec::new();
    for (i, cfg) in m.networks.iter().enumerate() {
        let model = cfg.init(m.input_shape, m.labels.len(), device);
        members.push(load_weights(&dir.join(weights_file(i)), model)?);
    }
    Ok((ConvEnsemble { members }, manifest))
}

/// Parameters of `speech.train`.
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

/// Trains the speech classifier per fold.
pub struct TrainSpeech;

impl TypedStage for TrainSpeech {
    type Params = TrainParams;
    const KIND: &'static str = "speech.train";
    const DOC: &'static str = "Train the speech CNN (or an ensemble) on each fold of a split (+ an optional final model on all data)";
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

    fn check(p: &Self::Params) -> Result<(), ParamError> {
        p.model.check().map_err(|e| ParamError::core("model", e))?;
        for m in &p.ensemble {
            m.check().map_err(|e| ParamError::core("ensemble", e))?;
        }
        p.training
            .check()
            .map_err(|e| ParamError::core("training", e))?;
        check_valid_fraction(p.valid_fraction)
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let fs: &FeatureSet = input(inputs, 0)?;
        let split: &Split = input(inputs, 1)?;
        let features: FeatureConfig =
            fs.settings("speech feature settings (speech.log_mel or speech.mfcc)")?;
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
                log_history(ctx, &tag, &out.history);
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
            let predictions =
                held_out_predictions(ctx, &fold, &fs.items.items, &labels, &test, probs);
            let rel = format!("fold-{}", sanitize(&fold));
            let dir = models_root.join(&rel);
            let section = SpeechModel {
                networks: configs.iter().map(|c| (*c).clone()).collect(),
                input_shape: fs.shape,
                labels: fs.items.labels.clone(),
                features: features.clone(),
                batch_norm: p.batch_norm,
                views: views.iter().map(|(name, _)| name.clone()).collect(),
                training: SpeechTraining {
                    config: p.training.clone(),
                    augment: p.augment.clone(),
                    fold: fold.clone(),
                    train_items: train.len(),
                    valid_items: valid.len(),
                    best_epoch,
                    stop,
                    seed,
                    backend: ctx.backend.to_string(),
                },
            };
            let manifest = ModelManifest::new(&p.task, &fs.fingerprint, section);
            save_ensemble(&dir, &members, &manifest)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tensor};
    use profundo_core::backend::BackendKind;
    use profundo_core::train::{StopReason, TrainRun};

    fn manifest(networks: Vec<ConvClassifierConfig>, shape: [usize; 3]) -> SpeechManifest {
        let features = serde_json::from_value(serde_json::json!({
            "frames": shape[2], "kind": "speech.log_mel", "n_mfcc": null, "normalize": "band",
            "trim_db": null,
            "mel": {"f_max": null, "f_min": 0.0, "hop_length": 128, "n_fft": 256,
                    "n_mels": shape[1], "sample_rate": 8000, "top_db": 80.0}
        }))
        .unwrap();
        SpeechManifest::new(
            "test",
            "x",
            SpeechModel {
                networks,
                input_shape: shape,
                labels: vec!["a".into(), "b".into(), "c".into()],
                features,
                batch_norm: BatchNormScope::Pooled,
                views: Vec::new(),
                training: SpeechTraining {
                    config: TrainConfig::default(),
                    augment: Augment2dConfig::default(),
                    fold: "final".into(),
                    train_items: 12,
                    valid_items: 0,
                    best_epoch: 2,
                    stop: StopReason::Completed,
                    seed: 3,
                    backend: "flex".into(),
                },
            },
        )
    }

    #[test]
    fn a_saved_model_reloads_with_identical_outputs() {
        let plain = backend::device(BackendKind::Flex, "cpu").unwrap();
        let train = plain.clone().autodiff();
        for temporal in [false, true] {
            let cfg = ConvClassifierConfig {
                channels: vec![4, 8],
                kernel: 3,
                dropout: 0.1,
                temporal,
            };
            let shape = [1, 6, 10];
            // A few training steps, so batch-norm running statistics differ from their
            // initial values and must be saved too.
            let labels: Vec<usize> = (0..12).map(|i| i % 3).collect();
            let x: Vec<f32> = (0..12 * 60)
                .map(|i| ((i * 37) % 17) as f32 / 17.0 + (i / 60 % 3) as f32)
                .collect();
            let idx: Vec<usize> = (0..12).collect();
            let out = TrainRun {
                data: Examples {
                    x: &x,
                    shape,
                    labels: &labels,
                    groups: None,
                },
                train: &idx,
                valid: &[],
                config: &TrainConfig {
                    epochs: 2,
                    batch_size: 4,
                    ..Default::default()
                },
                augment: &Augment2dConfig::default(),
                seed: 3,
                device: &train,
                checkpoints: None,
                label: "t",
            }
            .fit(cfg.init(shape, 3, &train))
            .unwrap();
            let model = out.model.valid();
            let dir = tempfile::tempdir().unwrap();
            save_ensemble(
                dir.path(),
                std::slice::from_ref(&model),
                &manifest(vec![cfg.clone()], shape),
            )
            .unwrap();
            let (loaded, m) = load_ensemble(dir.path(), &plain).unwrap();
            assert_eq!(loaded.members.len(), 1);
            assert_eq!(m.model.labels.len(), 3);
            let loaded = &loaded.members[0];
            let fresh = cfg.init(shape, 3, &plain);
            let x = Tensor::<4>::random([2, 1, 6, 10], Distribution::Default, &plain);
            let a: Vec<f32> = model.forward(x.clone()).into_data().try_to_vec().unwrap();
            let b: Vec<f32> = loaded.forward(x.clone()).into_data().try_to_vec().unwrap();
            let c: Vec<f32> = fresh.forward(x).into_data().try_to_vec().unwrap();
            assert_eq!(a.len(), 6);
            assert_eq!(a, b, "temporal = {temporal}: reloaded outputs differ");
            assert_ne!(a, c, "a fresh network must differ from the trained one");
        }
    }

    #[test]
    fn an_ensemble_reloads_with_identical_mean_probabilities() {
        let device = backend::device(BackendKind::Flex, "cpu").unwrap();
        let shape = [1, 6, 10];
        let a = ConvClassifierConfig {
            channels: vec![4, 8],
            kernel: 3,
            dropout: 0.0,
            temporal: true,
        };
        let b = ConvClassifierConfig {
            channels: vec![6],
            kernel: 3,
            dropout: 0.0,
            temporal: false,
        };
        let ens = ConvEnsemble {
            members: vec![a.init(shape, 3, &device), b.init(shape, 3, &device)],
        };
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(vec![a.clone(), b], shape);
        save_ensemble(dir.path(), &ens.members, &m).unwrap();
        assert!(dir.path().join("model-1.safetensors").is_file());
        let (loaded, _) = load_ensemble(dir.path(), &device).unwrap();
        assert_eq!(loaded.members.len(), 2);
        let x = Tensor::<4>::random([3, 1, 6, 10], Distribution::Default, &device);
        let p: Vec<f32> = ens
            .probabilities(x.clone())
            .into_data()
            .try_to_vec()
            .unwrap();
        let q: Vec<f32> = loaded.probabilities(x).into_data().try_to_vec().unwrap();
        assert_eq!(p, q);
        for row in p.chunks(3) {
            assert!(
                (row.iter().sum::<f32>() - 1.0).abs() < 1e-5,
                "mean probabilities sum to 1"
            );
        }
        // One network fewer than the manifest lists is refused, naming both counts.
        let err = save_ensemble(dir.path(), &ens.members[..1], &m)
            .unwrap_err()
            .to_string();
        assert!(err.contains("1 networks but 2"), "{err}");
    }
}
